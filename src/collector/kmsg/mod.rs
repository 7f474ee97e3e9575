//! The `kmsg` collector: the OOM kills the kernel-log follower has counted, as they are
//! now. It reads no file itself: its source is the `follower` thread, which owns the
//! kernel log and hands each record to the `intake`.

pub mod follower;
pub mod intake;

use std::sync::Arc;

use crate::collector::source::{CollectError, Collector};
use crate::kills::shared::KmsgShared;
use crate::snapshot::{KmsgSample, Snapshot};

#[derive(Debug)]
pub struct KmsgCollector {
    shared: Arc<KmsgShared>,
    /// `--oom.victims-retention`, in seconds.
    retention_secs: f64,
}

impl KmsgCollector {
    pub fn new(shared: Arc<KmsgShared>, retention_secs: f64) -> Self {
        Self {
            shared,
            retention_secs,
        }
    }
}

impl Collector for KmsgCollector {
    fn name(&self) -> &'static str {
        "kmsg"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let up = self.shared.up();
        // The counts are served either way: they are persisted, and still true.
        out.kmsg = Some(KmsgSample {
            up,
            ledger: self.shared.ledger(),
            victims_since: crate::clock::unix_now() - self.retention_secs,
        });
        if up {
            Ok(())
        } else {
            Err(CollectError::Unavailable(
                "the kernel log is not being read (see the log line that says why)".into(),
            ))
        }
    }
}
