//! The `systemd` collector: systemd's own verdict on each group named after a system unit
//! (`nginx.service`, a `.scope`): how it last ended (`Result`), how often `Restart=`
//! brought it back (`NRestarts`), and on systemd 259+ its kernel and systemd-oomd kill
//! counts. Asked of the D-Bus thread at each scrape, for the groups the `processes`
//! collector knows (groups retained while down included: a unit killed and not restarted
//! is the one whose verdict matters) and the groups systemd-oomd killed in the last hour.
//! Units of a user's manager (`user@1000/…`) are on that user's bus, not asked. Runs
//! after `processes`.

use std::sync::Arc;
use std::time::Duration;

use super::SystemdShared;
use crate::collector::source::{CollectError, Collector};
use crate::dbus::unit_interface;
use crate::snapshot::{Snapshot, UnitRow};

/// How long a scrape waits for systemd's answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct SystemdUnitsCollector {
    shared: Arc<SystemdShared>,
}

impl SystemdUnitsCollector {
    pub fn new(shared: Arc<SystemdShared>) -> Self {
        Self { shared }
    }
}

/// A group named after a unit of the system manager.
fn system_unit(group: &str) -> bool {
    !group.contains('/') && unit_interface(group).is_some()
}

impl Collector for SystemdUnitsCollector {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let Some(processes) = &out.processes else {
            return Err(CollectError::Unavailable(
                "the processes collector is disabled or failed; groups are unknown".into(),
            ));
        };
        // The groups the scan knows, and those systemd-oomd killed in the last hour (a unit
        // it killed may have ended before a scan saw it).
        let hour_ago = crate::clock::unix_now() - 3600.0;
        let mut groups: Vec<Arc<str>> = processes
            .groups
            .iter()
            .map(|g| g.name.clone())
            .filter(|name| system_unit(name))
            .collect();
        for killed in self.shared.ledger().kills {
            if killed.last_kill_seconds >= hour_ago
                && system_unit(&killed.group)
                && !groups.iter().any(|g| **g == *killed.group)
            {
                groups.push(Arc::from(killed.group));
            }
        }
        let units = groups.iter().map(|g| g.to_string()).collect();
        let verdicts = self.shared.verdicts(units, ANSWER_TIMEOUT).map_err(|why| {
            CollectError::Unavailable(format!("systemd's unit verdicts are not available: {why}"))
        })?;
        out.units = groups
            .into_iter()
            .zip(verdicts)
            .filter_map(|(group, verdict)| {
                Some(UnitRow {
                    group,
                    verdict: verdict?,
                })
            })
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_system_units_are_asked() {
        assert!(system_unit("nginx.service"));
        assert!(system_unit("session-3.scope"));
        assert!(!system_unit("user@1000/mysql.service"));
        assert!(!system_unit("default/api-7d/app"));
        assert!(!system_unit("java-cms"));
        assert!(!system_unit("hogs.slice"));
    }
}
