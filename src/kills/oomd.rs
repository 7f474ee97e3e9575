//! The kills systemd-oomd announced on D-Bus (its `Killed` signal), per group, in the form
//! kept in the state file (`oomd`): counts never go down across exporter restarts and
//! reboots. Kept apart from the kernel log's ledger (`ledger`), which counts userspace
//! killers only from the lines journald forwards to the kernel log; while the D-Bus
//! subscription is live, the kernel log's systemd-oomd lines are left to it, so one kill
//! is counted once. Pure data and bookkeeping; the D-Bus thread feeds it.
//!
//! Bounded like the kernel log's victims: at most `MAX_VICTIMS` groups, the one killed
//! longest ago forgotten first.

use serde::{Deserialize, Serialize};

use super::ledger::{make_room, MAX_VICTIMS};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OomdLedger {
    #[serde(default)]
    pub kills: Vec<OomdTally>,
}

/// systemd-oomd's kills of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomdTally {
    pub group: String,
    pub kills: u64,
    /// The latest kill: when (seconds since the epoch), which cgroup, and oomd's reason
    /// (`memory-pressure`, `memory-used`).
    pub last_kill_seconds: f64,
    pub last_cgroup: String,
    pub last_reason: String,
}

impl OomdLedger {
    /// Counts one kill of `group`'s `cgroup` for `reason` at `at` (seconds since the epoch).
    pub fn count(&mut self, group: &str, cgroup: &str, reason: &str, at: f64) {
        if let Some(tally) = self.kills.iter_mut().find(|t| t.group == group) {
            tally.kills += 1;
            tally.last_kill_seconds = at;
            cgroup.clone_into(&mut tally.last_cgroup);
            reason.clone_into(&mut tally.last_reason);
            return;
        }
        make_room(&mut self.kills, MAX_VICTIMS, |t| t.last_kill_seconds);
        self.kills.push(OomdTally {
            group: group.to_owned(),
            kills: 1,
            last_kill_seconds: at,
            last_cgroup: cgroup.to_owned(),
            last_reason: reason.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_add_up_per_group_and_the_latest_reason_wins() {
        let mut ledger = OomdLedger::default();
        ledger.count("a.service", "/a.slice/a.service", "memory-pressure", 10.0);
        ledger.count("a.service", "/a.slice/a.service", "memory-used", 20.0);
        ledger.count("b.scope", "/user.slice/b.scope", "memory-used", 15.0);
        assert_eq!(ledger.kills.len(), 2);
        assert_eq!(ledger.kills[0].kills, 2);
        assert_eq!(ledger.kills[0].last_reason, "memory-used");
        let json = serde_json::to_string(&ledger).expect("json");
        assert_eq!(
            serde_json::from_str::<OomdLedger>(&json).expect("back"),
            ledger
        );
    }

    #[test]
    fn bounded() {
        let mut ledger = OomdLedger::default();
        for i in 0..MAX_VICTIMS + 3 {
            ledger.count(&format!("g{i}"), "/x", "memory-used", i as f64);
        }
        assert_eq!(ledger.kills.len(), MAX_VICTIMS);
        assert!(ledger.kills.iter().all(|t| t.group != "g0"));
    }
}
