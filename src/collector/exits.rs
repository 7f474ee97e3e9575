//! The `exits` collector: whether the process-events listener is following the kernel,
//! and how many exits it could not account. The exits themselves are settled and counted
//! per group by the processes collector, which owns the groups; the listener thread owns
//! the socket. This collector reads nothing itself.

use std::sync::Arc;

use crate::collector::source::{CollectError, Collector};
use crate::exits::ExitsShared;
use crate::snapshot::Snapshot;

#[derive(Debug)]
pub struct ExitsCollector {
    shared: Arc<ExitsShared>,
}

impl ExitsCollector {
    pub fn new(shared: Arc<ExitsShared>) -> Self {
        Self { shared }
    }
}

impl Collector for ExitsCollector {
    fn name(&self) -> &'static str {
        "exits"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let status = self.shared.status();
        out.exits = Some(status);
        if status.up {
            Ok(())
        } else {
            Err(CollectError::Unavailable(
                "process events are not being received (see the log line that says why); exits are inferred from scans".into(),
            ))
        }
    }
}
