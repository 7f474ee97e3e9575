//! Per group, the counters of the memory cgroup it owns (its events, its pressure stall
//! totals), carried across the cgroup's re-creations: systemd removes a unit's cgroup when
//! the unit stops and makes a new one, counting from 0, when it starts again, so a
//! counter read from the cgroup alone would go down at every restart. The ledger keeps,
//! per group, what earlier cgroups had counted when they went away (`carried`) and the
//! latest reading of the present one (`last`, with its inode); a group's total is the
//! sum. Kept in the state file (`memcg`), so a restart of the exporter goes on from it.
//! Pure bookkeeping: the cgroups collector reads the files and hands the readings in.
//!
//! Bounded: at most `MAX_GROUPS` groups; beyond, the group read longest ago is forgotten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most groups whose cgroup counters are kept (more than `--groups.max` and the
/// configured groups of any sane config).
pub const MAX_GROUPS: usize = 1024;

/// The counters of every group, by group name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemcgLedger {
    #[serde(default)]
    pub groups: BTreeMap<String, GroupCounters>,
    /// What changed since `take_changed` (a new reading time alone is no change).
    #[serde(skip)]
    changed: Change,
}

/// What a reading changed, and so how soon the state file needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    #[default]
    None,
    /// Only the latest readings of present cgroups moved, and none of an OOM count. The
    /// kernel keeps those counts while the cgroup lives, so the state file may take them
    /// at its next write (the heartbeat's): a reading lost to a crash matters only if the
    /// cgroup is also re-created before the exporter is back, and then costs at most one
    /// heartbeat's worth of throttling and pressure counts.
    Readings,
    /// What was carried from earlier cgroups, which cgroup is read, which groups are kept,
    /// or an OOM count (`URGENT`): written before it is served.
    Urgent,
}

/// Counters whose every move is written before it is served: OOM, rare and what an SRE
/// pages on. `high`, `max` and the pressure totals move at every scrape of a throttled
/// cgroup, so they wait for the next write.
const URGENT: [&str; 3] = ["oom", "oom_kill", "oom_group_kill"];

/// One group's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupCounters {
    /// The cgroup read last, and its directory's inode (another inode under the same path
    /// is a new cgroup).
    pub cgroup: String,
    pub inode: u64,
    /// Counts of the cgroups the group lived in before, by counter name.
    #[serde(default)]
    pub carried: BTreeMap<String, u64>,
    /// The latest reading of the present cgroup, by counter name.
    #[serde(default)]
    pub last: BTreeMap<String, u64>,
    /// When it was read last, seconds since the epoch (the bound forgets the oldest).
    #[serde(default)]
    pub read_at: f64,
}

/// One reading of a group's cgroup: which cgroup, and its counters by name.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub cgroup: &'a str,
    pub inode: u64,
    pub counters: &'a [(&'a str, u64)],
}

impl MemcgLedger {
    /// Takes a reading of `group`'s cgroup; returns the group's totals (carried plus
    /// read), by counter, in the reading's order. A new cgroup (another path or inode)
    /// carries the old one's last counts; a counter read lower than before in the same
    /// cgroup (v1's `memory.failcnt` can be reset by writing 0 to it) carries its last
    /// count too, so no total ever goes down.
    pub fn observe(&mut self, group: &str, reading: Reading<'_>, now: f64) -> Vec<u64> {
        if !self.groups.contains_key(group) && self.groups.len() >= MAX_GROUPS {
            let oldest = self
                .groups
                .iter()
                .min_by(|a, b| a.1.read_at.total_cmp(&b.1.read_at))
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.groups.remove(&oldest);
            }
            self.changed = Change::Urgent;
        }
        let entry = self.groups.entry(group.to_owned()).or_default();
        if entry.cgroup != reading.cgroup || entry.inode != reading.inode {
            for (name, value) in std::mem::take(&mut entry.last) {
                *entry.carried.entry(name).or_default() += value;
            }
            entry.cgroup = reading.cgroup.to_owned();
            entry.inode = reading.inode;
            self.changed = Change::Urgent;
        }
        entry.read_at = now;
        let changed = &mut self.changed;
        reading
            .counters
            .iter()
            .map(|&(name, value)| {
                let last = entry.last.entry(name.to_owned()).or_default();
                if value < *last {
                    *entry.carried.entry(name.to_owned()).or_default() += *last;
                    *changed = Change::Urgent;
                } else if *last != value {
                    let change = match URGENT.contains(&name) {
                        true => Change::Urgent,
                        false => Change::Readings,
                    };
                    *changed = (*changed).max(change);
                }
                *last = value;
                entry
                    .carried
                    .get(name)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(value)
            })
            .collect()
    }

    /// What changed since the last call (how soon the state file needs writing).
    pub fn take_changed(&mut self) -> Change {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ledger: &mut MemcgLedger, cgroup: &str, inode: u64, high: u64, max: u64) -> Vec<u64> {
        let counters = [("high", high), ("max", max)];
        let reading = Reading {
            cgroup,
            inode,
            counters: &counters,
        };
        ledger.observe("api.service", reading, inode as f64)
    }

    #[test]
    fn a_recreated_cgroup_adds_on_top_and_nothing_goes_down() {
        let mut ledger = MemcgLedger::default();
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 10, 5, 1),
            [5, 1]
        );
        assert_eq!(ledger.take_changed(), Change::Urgent, "a new group");
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 10, 5, 1),
            [5, 1]
        );
        assert_eq!(
            ledger.take_changed(),
            Change::None,
            "the same counts again are no change"
        );
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 10, 9, 1),
            [9, 1]
        );
        assert_eq!(
            ledger.take_changed(),
            Change::Readings,
            "a count of the same cgroup moved: the kernel still has it"
        );
        let counters = [("high", 9), ("max", 1), ("oom_kill", 1)];
        let reading = Reading {
            cgroup: "/system.slice/api.service",
            inode: 10,
            counters: &counters,
        };
        assert_eq!(ledger.observe("api.service", reading, 10.0), [9, 1, 1]);
        assert_eq!(ledger.take_changed(), Change::Urgent, "an OOM kill");
        // systemd restarted the unit: a new cgroup under the same path counts from 0.
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 11, 0, 0),
            [9, 1]
        );
        assert_eq!(
            ledger.take_changed(),
            Change::Urgent,
            "a new cgroup: the old one's counts exist nowhere else now"
        );
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 11, 2, 3),
            [11, 4]
        );
        // v1's failcnt reset by hand in the same cgroup.
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 11, 2, 0),
            [11, 4]
        );
        assert_eq!(
            read(&mut ledger, "/system.slice/api.service", 11, 2, 1),
            [11, 5]
        );
        // Moved to another cgroup path.
        assert_eq!(read(&mut ledger, "/other", 11, 1, 0), [12, 5]);
        // Survives the state file.
        let json = serde_json::to_string(&ledger).expect("json");
        let mut again: MemcgLedger = serde_json::from_str(&json).expect("back");
        assert_eq!(read(&mut again, "/other", 11, 1, 0), [12, 5]);
    }

    #[test]
    fn the_group_read_longest_ago_goes_first() {
        let mut ledger = MemcgLedger::default();
        for i in 0..MAX_GROUPS + 5 {
            let reading = Reading {
                cgroup: "/x",
                inode: 1,
                counters: &[("oom", 1)],
            };
            ledger.observe(&format!("g{i}"), reading, i as f64);
        }
        assert_eq!(ledger.groups.len(), MAX_GROUPS);
        assert!(!ledger.groups.contains_key("g0"));
        assert!(ledger.groups.contains_key(&format!("g{}", MAX_GROUPS + 4)));
    }
}
