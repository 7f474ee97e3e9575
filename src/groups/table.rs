//! The group table: which groups exist, and the restarts counted on each.
//!
//! A process instance is `(pid, start ticks)`. Per group, the table remembers the top-level
//! instances (whose parent is not in the group) seen by the last scan. A restart is counted
//! when every top-level instance is gone, at least one of them having lived
//! `--restarts.min-age`, and a new top-level instance (started since the last scan) started
//! within `RESTART_WINDOW_SECS` of the dead one's last sighting: the watchdog pattern "PID present, PID gone, NOT
//! running, started again". Workers forking under a master are not top-level; short-lived
//! `sleep 1` loops never reach the minimum age; one shell of many closing, or one exec
//! session of a container ending, is no restart while the others live on.
//!
//! Each top-level instance the scan saw and no longer sees is returned by `observe` as
//! vanished, for the exit accounting; the exits it settles are counted here per reason,
//! next to the restarts.
//!
//! Automatic groups are capped (`--groups.max`, the rest folds into `other`) and dropped
//! after staying empty for `--groups.retention`; groups named in the config file always
//! exist. The table converts to and from its persisted form, so counts survive exporter
//! restarts. Times are seconds since boot (uptime), immune to wall-clock steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::exit_reason::ExitReason;

/// One process instance: a pid reused by another program is a different instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    pub pid: u32,
    pub start_ticks: u64,
}

/// The group that collects automatic groups beyond `--groups.max`.
pub const OTHER_GROUP: &str = "other";

/// A new instance this long after the last one died is a start, not a restart.
pub const RESTART_WINDOW_SECS: f64 = 900.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSettings {
    /// `--groups.max`: automatic groups beyond this fold into `other`.
    pub max_auto_groups: usize,
    /// `--groups.retention`: an automatic group empty this long is dropped.
    pub retention_secs: f64,
    /// `--restarts.min-age`: an instance younger than this at its death is no restart.
    pub restart_min_age_secs: f64,
    /// Kernel clock ticks per second (`getconf CLK_TCK`).
    pub clock_ticks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct TrackedInstance {
    #[serde(flatten)]
    key: InstanceKey,
    /// Uptime at the last scan that saw it alive.
    last_seen_secs: f64,
}

/// The persisted form of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub restarts: u64,
    /// Deaths of long-lived instances not yet followed by a new instance.
    #[serde(default)]
    pub pending_deaths: u32,
    /// Uptime when the oldest pending death was last seen alive.
    #[serde(default)]
    pub pending_since_secs: Option<f64>,
    #[serde(default)]
    top_level: Vec<TrackedInstance>,
    #[serde(default)]
    empty_since_secs: Option<f64>,
    /// Exits of top-level instances, by reason.
    #[serde(default)]
    pub exits: BTreeMap<ExitReason, u64>,
}

/// A top-level instance the last scan saw and this one does not.
#[derive(Debug, Clone, PartialEq)]
pub struct VanishedInstance {
    pub group: Arc<str>,
    pub key: InstanceKey,
    /// Uptime at the last scan that saw it alive.
    pub last_seen_secs: f64,
}

/// A new top-level instance counted as a restart of its group.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartedInstance {
    pub group: Arc<str>,
    pub key: InstanceKey,
    /// From the dead instance's last sighting to this one's start, in seconds.
    pub gap_secs: f64,
}

/// One group as the table holds it.
#[derive(Debug, Clone, Copy)]
pub struct GroupView<'a> {
    pub name: &'a Arc<str>,
    pub restarts: u64,
    /// Named in the config file: it always exists.
    pub configured: bool,
    pub exits: &'a BTreeMap<ExitReason, u64>,
}

/// The persisted form of the whole table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupsState {
    /// Uptime ticks at the start of the last scan: instances started later are new.
    #[serde(default)]
    pub last_scan_ticks: Option<u64>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupState>,
}

impl GroupsState {
    /// Forgets what belongs to the previous boot (instances, pending deaths, uptime
    /// stamps); restart counts are kept so the counters never go down.
    pub fn start_new_boot(&mut self) {
        self.last_scan_ticks = None;
        for group in self.groups.values_mut() {
            group.pending_deaths = 0;
            group.pending_since_secs = None;
            group.top_level.clear();
            group.empty_since_secs = None;
        }
    }
}

#[derive(Debug, Clone)]
struct GroupEntry {
    configured: bool,
    state: GroupState,
    /// The buffer the last scan's instances move to while the new ones are compared with
    /// them, kept so that a steady scan allocates nothing for them.
    previous: Vec<TrackedInstance>,
}

/// Whether `key` is among `now`: by binary search on pid when `now` is in ascending pid
/// order (`sorted`, as a scan lists them; a pid names one live instance), else by looking
/// at each.
fn contains(now: &[InstanceKey], sorted: bool, key: &InstanceKey) -> bool {
    if sorted {
        now.binary_search_by_key(&key.pid, |k| k.pid)
            .is_ok_and(|i| now.get(i) == Some(key))
    } else {
        now.contains(key)
    }
}

/// The live group table.
#[derive(Debug, Clone)]
pub struct GroupTable {
    settings: TableSettings,
    groups: BTreeMap<Arc<str>, GroupEntry>,
    auto_groups: usize,
    last_scan_ticks: Option<u64>,
    /// Something other than a time stamp changed since `take_changed` was last called.
    changed: bool,
    /// A group was added or dropped since `take_names_changed` was last called.
    names_changed: bool,
    /// Restarts counted since `take_restarted` was last called.
    restarted: Vec<RestartedInstance>,
}

impl GroupTable {
    /// Builds the table from its persisted form and the config file's fixed group names.
    pub fn new<'a>(
        settings: TableSettings,
        configured: impl IntoIterator<Item = &'a str>,
        persisted: GroupsState,
    ) -> Self {
        let mut table = Self {
            settings,
            groups: BTreeMap::new(),
            auto_groups: 0,
            last_scan_ticks: persisted.last_scan_ticks,
            changed: false,
            names_changed: true,
            restarted: Vec::new(),
        };
        for name in configured {
            table.groups.insert(
                Arc::from(name),
                GroupEntry {
                    configured: true,
                    state: GroupState::default(),
                    previous: Vec::new(),
                },
            );
        }
        for (name, mut state) in persisted.groups {
            state.top_level.sort_unstable_by_key(|t| t.key.pid);
            match table.groups.get_mut(name.as_str()) {
                Some(entry) => entry.state = state,
                None if table.auto_groups < settings.max_auto_groups || name == OTHER_GROUP => {
                    table.auto_groups += usize::from(name != OTHER_GROUP);
                    let entry = GroupEntry {
                        configured: false,
                        state,
                        previous: Vec::new(),
                    };
                    table.groups.insert(Arc::from(name), entry);
                }
                None => {}
            }
        }
        table
    }

    /// The group a newly seen process goes into: `name` if it exists or fits under the
    /// cap, else `other`.
    pub fn admit(&mut self, name: &str) -> Arc<str> {
        if let Some((existing, _)) = self.groups.get_key_value(name) {
            return existing.clone();
        }
        let name = if self.auto_groups < self.settings.max_auto_groups && name != OTHER_GROUP {
            self.auto_groups += 1;
            name
        } else {
            OTHER_GROUP
        };
        let key: Arc<str> = Arc::from(name);
        self.changed = true;
        self.names_changed = true;
        self.groups
            .entry(key.clone())
            .or_insert_with(|| GroupEntry {
                configured: false,
                state: GroupState::default(),
                previous: Vec::new(),
            });
        key
    }

    /// Applies one scan: `top_level` holds, per group, its top-level instances now alive.
    /// `now_secs` is the uptime at the start of the scan. Returns the top-level instances
    /// that were alive at the last scan and are gone now.
    pub fn observe(
        &mut self,
        now_secs: f64,
        top_level: &HashMap<Arc<str>, Vec<InstanceKey>>,
    ) -> Vec<VanishedInstance> {
        let mut vanished = Vec::new();
        let restarted = &mut self.restarted;
        let settings = self.settings;
        let ticks = settings.clock_ticks.max(1) as f64;
        let baseline = self.last_scan_ticks;
        let mut dropped = 0;
        let mut changed = false;
        let groups_before = self.groups.len();
        self.groups.retain(|name, entry| {
            let now: &[InstanceKey] = top_level.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let state = &mut entry.state;
            let previous = &mut entry.previous;
            std::mem::swap(previous, &mut state.top_level);
            let previous = &*previous;
            let sorted = now.is_sorted_by_key(|k| k.pid);
            let is_now = |key: &InstanceKey| contains(now, sorted, key);
            vanished.extend(previous.iter().filter(|p| !is_now(&p.key)).map(|p| {
                VanishedInstance {
                    group: name.clone(),
                    key: p.key,
                    last_seen_secs: p.last_seen_secs,
                }
            }));
            if previous.iter().any(|p| is_now(&p.key)) {
                // An instance lived on: the service was never down, so one that ended
                // was not restarted (a closed shell, an exec session, one of a pool).
                state.pending_deaths = 0;
                state.pending_since_secs = None;
            } else {
                for gone in previous {
                    let age = gone.last_seen_secs - gone.key.start_ticks as f64 / ticks;
                    if age >= settings.restart_min_age_secs {
                        state.pending_deaths = state.pending_deaths.saturating_add(1);
                        state.pending_since_secs.get_or_insert(gone.last_seen_secs);
                    }
                }
            }
            // New top-level instances, counted when they started within the window after
            // the dead one was last seen alive: judged by start time, not by when this
            // scan ran, so a restart that happened while oomwatch itself was down for
            // longer than the window still counts once.
            let appeared: Vec<&InstanceKey> = match (baseline, state.pending_since_secs) {
                (Some(baseline), Some(since)) => now
                    .iter()
                    .filter(|key| key.start_ticks >= baseline)
                    .filter(|key| !previous.iter().any(|p| p.key == **key))
                    .filter(|key| key.start_ticks as f64 / ticks - since <= RESTART_WINDOW_SECS)
                    .collect(),
                _ => Vec::new(),
            };
            let restarts = state
                .pending_deaths
                .min(u32::try_from(appeared.len()).unwrap_or(u32::MAX));
            if let Some(since) = state.pending_since_secs {
                restarted.extend(appeared.iter().take(restarts as usize).map(|&&key| {
                    RestartedInstance {
                        group: name.clone(),
                        key,
                        gap_secs: (key.start_ticks as f64 / ticks - since).max(0.0),
                    }
                }));
            }
            state.restarts += u64::from(restarts);
            state.pending_deaths -= restarts;
            // A service that stayed down longer than the window was stopped, not restarted:
            // anything starting from now on starts past the window.
            if state.pending_deaths == 0
                || state
                    .pending_since_secs
                    .is_some_and(|since| now_secs - since > RESTART_WINDOW_SECS)
            {
                state.pending_deaths = 0;
                state.pending_since_secs = None;
            }
            changed |= previous.len() != now.len()
                || previous.iter().zip(now).any(|(p, n)| p.key != *n)
                || restarts > 0;
            state.top_level.clear();
            state
                .top_level
                .extend(now.iter().map(|&key| TrackedInstance {
                    key,
                    last_seen_secs: now_secs,
                }));
            if !sorted {
                state.top_level.sort_unstable_by_key(|t| t.key.pid);
            }
            if !now.is_empty() || entry.configured {
                changed |= state.empty_since_secs.take().is_some();
                return true;
            }
            let since = *state.empty_since_secs.get_or_insert_with(|| {
                changed = true;
                now_secs
            });
            let keep = now_secs - since < settings.retention_secs;
            if !keep && &**name != OTHER_GROUP {
                dropped += 1;
            }
            changed |= !keep;
            keep
        });
        self.auto_groups -= dropped;
        self.names_changed |= self.groups.len() != groups_before;
        self.changed |= changed;
        self.last_scan_ticks = Some((now_secs * ticks) as u64);
        vanished
    }

    /// Counts one exit of `group`, which must exist (`contains` or `admit` first).
    pub fn count_exit(&mut self, group: &str, reason: ExitReason) {
        if let Some(entry) = self.groups.get_mut(group) {
            *entry.state.exits.entry(reason).or_default() += 1;
            self.changed = true;
        }
    }

    /// True (once) when the table changed in more than its time stamps since the last
    /// call: counts, instances, or the set of groups. Only then is it worth persisting
    /// right away; time stamps alone can wait for the next periodic write.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The restarts counted since the last call, for the event log.
    pub fn take_restarted(&mut self) -> Vec<RestartedInstance> {
        std::mem::take(&mut self.restarted)
    }

    /// Every group with its restart count, by name.
    pub fn restarts(&self) -> impl Iterator<Item = (&Arc<str>, u64)> {
        self.groups.iter().map(|(name, e)| (name, e.state.restarts))
    }

    /// Whether the last scan saw `pid` as a top-level instance of `group`.
    pub fn watches(&self, group: &str, pid: u32) -> bool {
        self.groups.get(group).is_some_and(|entry| {
            entry
                .state
                .top_level
                .binary_search_by_key(&pid, |t| t.key.pid)
                .is_ok()
        })
    }

    /// Every group by name.
    pub fn groups(&self) -> impl Iterator<Item = GroupView<'_>> {
        self.groups.iter().map(|(name, e)| GroupView {
            name,
            restarts: e.state.restarts,
            configured: e.configured,
            exits: &e.state.exits,
        })
    }

    /// The names of every group.
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.groups.keys()
    }

    /// True (once) when a group was added or dropped since the last call (and at first).
    pub fn take_names_changed(&mut self) -> bool {
        std::mem::take(&mut self.names_changed)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The persisted form of the table.
    pub fn to_state(&self) -> GroupsState {
        GroupsState {
            last_scan_ticks: self.last_scan_ticks,
            groups: self
                .groups
                .iter()
                .map(|(name, e)| (name.to_string(), e.state.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 100;

    fn settings() -> TableSettings {
        TableSettings {
            max_auto_groups: 3,
            retention_secs: 60.0,
            restart_min_age_secs: 30.0,
            clock_ticks: HZ,
        }
    }

    fn key(pid: u32, start_secs: u64) -> InstanceKey {
        InstanceKey {
            pid,
            start_ticks: start_secs * HZ,
        }
    }

    fn scan(
        table: &mut GroupTable,
        now: u64,
        group: &str,
        instances: &[InstanceKey],
    ) -> Vec<VanishedInstance> {
        let mut seen = HashMap::new();
        if !instances.is_empty() {
            seen.insert(table.admit(group), instances.to_vec());
        }
        table.observe(now as f64, &seen)
    }

    fn restarts(table: &GroupTable, group: &str) -> u64 {
        table
            .restarts()
            .find(|(name, _)| &***name == group)
            .map(|(_, r)| r)
            .unwrap_or(0)
    }

    #[test]
    fn watchdog_restart_counts_once_even_when_death_and_start_are_seen_apart() {
        let mut table = GroupTable::new(settings(), ["mysql"], GroupsState::default());
        scan(&mut table, 100, "mysql", &[key(10, 50)]);
        scan(&mut table, 115, "mysql", &[]); // gone: lived 65 s
        assert_eq!(restarts(&table, "mysql"), 0);
        scan(&mut table, 130, "mysql", &[key(11, 120)]);
        assert_eq!(restarts(&table, "mysql"), 1);
        let restarted = table.take_restarted();
        assert_eq!(restarted.len(), 1);
        assert_eq!(
            (&*restarted[0].group, restarted[0].key),
            ("mysql", key(11, 120))
        );
        assert_eq!(
            restarted[0].gap_secs, 20.0,
            "last seen alive at 100, new at 120"
        );
        assert!(table.take_restarted().is_empty());
        scan(&mut table, 160, "mysql", &[key(11, 120)]);
        assert_eq!(restarts(&table, "mysql"), 1);
        // Death and restart between two scans.
        scan(&mut table, 200, "mysql", &[key(12, 190)]);
        assert_eq!(restarts(&table, "mysql"), 2);
    }

    #[test]
    fn vanished_instances_are_returned_and_exits_are_counted_and_kept() {
        let mut table = GroupTable::new(settings(), ["svc"], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10), key(2, 20)]);
        let gone = scan(&mut table, 115, "svc", &[key(2, 20)]);
        assert_eq!(
            gone,
            [VanishedInstance {
                group: Arc::from("svc"),
                key: key(1, 10),
                last_seen_secs: 100.0
            }]
        );
        table.take_changed();
        table.count_exit("svc", ExitReason::Crashed);
        table.count_exit("nope", ExitReason::Crashed);
        assert!(table.take_changed());
        let saved = table.to_state();
        let back = GroupTable::new(settings(), ["svc"], saved);
        let view = back.groups().find(|g| &**g.name == "svc").expect("svc");
        assert_eq!(view.exits.get(&ExitReason::Crashed), Some(&1));
    }

    #[test]
    fn short_lived_instances_and_first_sightings_are_not_restarts() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        scan(&mut table, 100, "sleep", &[key(20, 99)]);
        scan(&mut table, 101, "sleep", &[key(21, 100)]);
        scan(&mut table, 102, "sleep", &[key(22, 101)]);
        assert_eq!(restarts(&table, "sleep"), 0);
        // A group first seen with an old process: no restart.
        scan(&mut table, 103, "nginx", &[key(5, 1)]);
        assert_eq!(restarts(&table, "nginx"), 0);
    }

    #[test]
    fn an_instance_ending_while_others_live_on_is_no_restart() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        // Two long shells; one closes, a new one opens later.
        scan(&mut table, 100, "bash", &[key(1, 10), key(2, 20)]);
        scan(&mut table, 200, "bash", &[key(2, 20)]);
        scan(&mut table, 300, "bash", &[key(2, 20), key(3, 250)]);
        assert_eq!(restarts(&table, "bash"), 0);
    }

    #[test]
    fn a_service_down_past_the_window_was_stopped_not_restarted() {
        let mut table = GroupTable::new(settings(), ["svc"], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10)]);
        scan(&mut table, 200, "svc", &[]);
        scan(&mut table, 2000, "svc", &[key(2, 1990)]);
        assert_eq!(restarts(&table, "svc"), 0);
    }

    #[test]
    fn a_restart_while_oomwatch_was_down_past_the_window_counts_once() {
        let mut table = GroupTable::new(settings(), ["svc"], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10)]);
        let saved = table.to_state();
        // oomwatch is down for an hour; the service died and came back at once.
        let mut back = GroupTable::new(settings(), ["svc"], saved.clone());
        scan(&mut back, 3700, "svc", &[key(2, 105)]);
        assert_eq!(restarts(&back, "svc"), 1);
        scan(&mut back, 3715, "svc", &[key(2, 105)]);
        assert_eq!(restarts(&back, "svc"), 1);
        // It came back only long after dying: a start, not a restart.
        let mut late = GroupTable::new(settings(), ["svc"], saved);
        scan(&mut late, 3700, "svc", &[key(3, 3000)]);
        assert_eq!(restarts(&late, "svc"), 0);
    }

    #[test]
    fn a_pid_reused_by_a_new_instance_is_a_new_instance() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        scan(&mut table, 100, "redis", &[key(30, 10)]);
        scan(&mut table, 150, "redis", &[key(30, 140)]);
        assert_eq!(restarts(&table, "redis"), 1);
    }

    #[test]
    fn counts_survive_the_persisted_form_and_are_not_doubled() {
        let mut table = GroupTable::new(settings(), ["svc"], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(40, 10)]);
        let saved = table.to_state();
        // The exporter is down while the service restarts; it comes back twice.
        for _ in 0..2 {
            let mut back = GroupTable::new(settings(), ["svc"], saved.clone());
            scan(&mut back, 300, "svc", &[key(41, 250)]);
            assert_eq!(restarts(&back, "svc"), 1);
            let again = back.to_state();
            let mut third = GroupTable::new(settings(), ["svc"], again);
            scan(&mut third, 315, "svc", &[key(41, 250)]);
            assert_eq!(restarts(&third, "svc"), 1);
        }
    }

    #[test]
    fn new_boot_keeps_counts_and_forgets_instances() {
        let mut table = GroupTable::new(settings(), ["svc"], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(40, 10)]);
        scan(&mut table, 200, "svc", &[key(41, 150)]);
        let mut state = table.to_state();
        state.start_new_boot();
        let mut rebooted = GroupTable::new(settings(), ["svc"], state);
        scan(&mut rebooted, 20, "svc", &[key(40, 5)]);
        assert_eq!(restarts(&rebooted, "svc"), 1);
    }

    #[test]
    fn only_real_changes_ask_for_a_write() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10)]);
        assert!(table.take_changed(), "a new group and instance");
        scan(&mut table, 115, "svc", &[key(1, 10)]);
        assert!(!table.take_changed(), "only time stamps moved");
        scan(&mut table, 130, "svc", &[key(1, 10), key(2, 120)]);
        assert!(table.take_changed(), "a new instance");
    }

    #[test]
    fn cap_folds_into_other_and_retention_frees_slots() {
        let mut table = GroupTable::new(settings(), ["fixed"], GroupsState::default());
        assert!(table.take_names_changed(), "the first set is news");
        assert!(!table.take_names_changed());
        let names: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| table.admit(n))
            .collect();
        assert_eq!(
            names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["a", "b", "c", "other", "other"]
        );
        assert!(table.contains("fixed"));
        table.observe(10.0, &HashMap::new());
        table.observe(80.0, &HashMap::new());
        assert!(
            !table.contains("a"),
            "empty auto group dropped after retention"
        );
        assert!(table.take_names_changed(), "groups were added and dropped");
        assert!(table.contains("fixed"), "configured groups always exist");
        assert_eq!(&*table.admit("f"), "f");
    }
}
