//! The `boot` collector: boot time (`/proc/stat` btime, shown but never used to decide a
//! reboot, since it moves when NTP steps the clock), the boot_id that names this boot, and
//! the boot history from the state file (boots, unexpected reboots, the last one's cause
//! and downtime), which `startup` records at start; and the hostname, for the incident
//! page.

pub mod startup;

use crate::collector::source::{read_file, CollectError, Collector};
use crate::procfs::host::{parse_boot_id, parse_stat_btime};
use crate::roots::Roots;
use std::sync::Arc;

use crate::snapshot::{BootHistorySample, BootSample, Snapshot};
use crate::state::StateStore;

#[derive(Debug)]
pub struct BootCollector {
    roots: Roots,
    state: Arc<StateStore>,
    /// Read once: the boot_id cannot change while this process runs.
    boot_id: Option<String>,
    /// Read once: shown on the incident page, not exported.
    hostname: Option<Option<String>>,
}

impl BootCollector {
    pub fn new(roots: Roots, state: Arc<StateStore>) -> Self {
        Self {
            roots,
            state,
            boot_id: None,
            hostname: None,
        }
    }
}

/// Reads the current boot_id under the given roots.
pub fn read_boot_id(roots: &Roots) -> Result<String, CollectError> {
    let bytes = read_file(&roots.proc_file("sys/kernel/random/boot_id"))?;
    Ok(parse_boot_id(&bytes)?)
}

impl Collector for BootCollector {
    fn name(&self) -> &'static str {
        "boot"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let btime = parse_stat_btime(&read_file(&self.roots.proc_file("stat"))?)?;
        let boot_id = match &self.boot_id {
            Some(boot_id) => boot_id,
            None => self.boot_id.insert(read_boot_id(&self.roots)?),
        };
        let history = self.state.read(|s| BootHistorySample {
            boots_total: s.boot.boots_total,
            unexpected_reboots_total: s.boot.unexpected_reboots_total,
            last_reboot: s.boot.last_reboot().cloned(),
        });
        let hostname = self
            .hostname
            .get_or_insert_with(|| {
                let bytes = std::fs::read(self.roots.proc_file("sys/kernel/hostname")).ok()?;
                let name = String::from_utf8_lossy(&bytes).trim().to_owned();
                (!name.is_empty()).then_some(name)
            })
            .clone();
        out.boot = Some(BootSample {
            boot_time_seconds: btime,
            boot_id: boot_id.clone(),
            hostname,
            history,
        });
        Ok(())
    }
}
