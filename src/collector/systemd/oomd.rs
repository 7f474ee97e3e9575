//! The `oomd` collector: systemd-oomd's kills as the D-Bus thread counted them (persisted,
//! so served even while the bus is away), and whether its `Killed` signal is followed now
//! (`oomwatch_collector_success{collector="oomd"}`), and how many `Killed` signals other
//! bus clients forged. Reads nothing itself.

use std::sync::Arc;

use super::SystemdShared;
use crate::collector::source::{CollectError, Collector};
use crate::snapshot::Snapshot;

#[derive(Debug)]
pub struct OomdCollector {
    shared: Arc<SystemdShared>,
}

impl OomdCollector {
    pub fn new(shared: Arc<SystemdShared>) -> Self {
        Self { shared }
    }
}

impl Collector for OomdCollector {
    fn name(&self) -> &'static str {
        "oomd"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        out.oomd = Some(self.shared.ledger());
        out.oomd_forged_signals = Some(self.shared.forged());
        if self.shared.oomd_up() {
            Ok(())
        } else {
            Err(CollectError::Unavailable(format!(
                "systemd-oomd's kills are not available: {}",
                self.shared.why_down()
            )))
        }
    }
}
