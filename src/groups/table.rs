//! The group table: which groups exist and have series, and what is counted on each
//! (restarts, exits by reason).
//!
//! A process instance is `(pid, start ticks)`. Per group, the table remembers the
//! top-level instances (whose parent is not in the group) seen by the last scan, and hands
//! the ones that ended and the new ones to the group's restart detector (`restarts`).
//! Each top-level instance the scan saw and no longer sees is returned by `observe` as
//! vanished, for the exit accounting; the exits it settles come back through
//! `exit_settled`, counted per reason and told to the restart detector; `resolve` then
//! counts the restarts.
//!
//! Automatic groups are tracked up to `--groups.max` (the rest folds into `other`) and
//! get series only once useful: an instance lived `--groups.min-age`, died abnormally, or
//! restarted. A group that never became useful is forgotten as soon as it is empty; one
//! that did keeps its series for `--groups.retention` after its last process. Groups named
//! in the config file always exist. The table converts to and from its persisted form, so
//! counts survive exporter restarts. Times are seconds since boot (uptime), immune to
//! wall-clock steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::restarts::{Ended, Restart, RestartRules, RestartState};
use crate::exit_reason::ExitReason;

/// One process instance: a pid reused by another program is a different instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    pub pid: u32,
    pub start_ticks: u64,
}

/// The group that collects automatic groups beyond `--groups.max`.
pub const OTHER_GROUP: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSettings {
    /// `--groups.max`: automatic groups beyond this fold into `other`.
    pub max_auto_groups: usize,
    /// `--groups.retention`: an automatic group empty this long is dropped.
    pub retention_secs: f64,
    /// `--groups.min-age`: an automatic group gets series once an instance lived this long.
    pub promote_after_secs: f64,
    /// `--restarts.min-age`: a clean or unknown end younger than this is no restart.
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

fn yes() -> bool {
    true
}

/// The persisted form of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub restarts: u64,
    /// Has series: an instance lived `--groups.min-age`, died abnormally or restarted.
    #[serde(default = "yes")]
    pub promoted: bool,
    #[serde(default)]
    top_level: Vec<TrackedInstance>,
    #[serde(default)]
    empty_since_secs: Option<f64>,
    /// Exits of top-level instances, by reason.
    #[serde(default)]
    pub exits: BTreeMap<ExitReason, u64>,
    /// Deaths and new instances waiting to be matched as restarts.
    #[serde(default)]
    restart: RestartState,
}

impl Default for GroupState {
    fn default() -> Self {
        Self {
            restarts: 0,
            promoted: true,
            top_level: Vec::new(),
            empty_since_secs: None,
            exits: BTreeMap::new(),
            restart: RestartState::default(),
        }
    }
}

/// How an instance ended, as the exit accounting settled it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceEnd {
    pub pid: u32,
    pub reason: ExitReason,
    /// When it ended (seconds since boot), or the last sighting for an inferred end.
    pub ended_secs: f64,
    /// When it started, when known.
    pub started_secs: Option<f64>,
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
    pub pid: u32,
    /// When the new instance started, seconds since boot.
    pub start_secs: f64,
    /// From the dead instance's last sighting to this one's start, in seconds.
    pub gap_secs: f64,
    /// How the dead instance ended.
    pub after: ExitReason,
}

/// One group as the table holds it.
#[derive(Debug, Clone, Copy)]
pub struct GroupView<'a> {
    pub name: &'a Arc<str>,
    pub restarts: u64,
    /// Named in the config file: it always exists.
    pub configured: bool,
    /// Has series (always true for configured groups).
    pub promoted: bool,
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
    /// Forgets what belongs to the previous boot (instances, waiting deaths, uptime
    /// stamps); counts are kept so the counters never go down.
    pub fn start_new_boot(&mut self) {
        self.last_scan_ticks = None;
        for group in self.groups.values_mut() {
            group.top_level.clear();
            group.restart.start_new_boot();
            group.empty_since_secs = None;
        }
    }
}

#[derive(Debug, Clone)]
struct GroupEntry {
    configured: bool,
    /// Counts every re-start, clean ends included (`restarts: every` in the config file).
    every_restart: bool,
    state: GroupState,
    /// The buffer the last scan's instances move to while the new ones are compared with
    /// them, kept so that a steady scan allocates nothing for them.
    previous: Vec<TrackedInstance>,
    /// Top-level instances recent scans found gone, for their age when their exit is
    /// settled (up to `INFER_AFTER_SECS` later); bounded.
    gone: Vec<TrackedInstance>,
}

/// Instances remembered per group after a scan found them gone.
const GONE_KEPT: usize = 64;

impl GroupEntry {
    fn new(configured: bool, every_restart: bool, state: GroupState) -> Self {
        Self {
            configured,
            every_restart,
            state,
            previous: Vec::new(),
            gone: Vec::new(),
        }
    }
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
    /// Builds the table from its persisted form and the config file's fixed group names,
    /// each with whether it counts every re-start.
    pub fn new<'a>(
        settings: TableSettings,
        configured: impl IntoIterator<Item = (&'a str, bool)>,
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
        for (name, every_restart) in configured {
            let entry = GroupEntry::new(true, every_restart, GroupState::default());
            table.groups.insert(Arc::from(name), entry);
        }
        for (name, mut state) in persisted.groups {
            state.top_level.sort_unstable_by_key(|t| t.key.pid);
            match table.groups.get_mut(name.as_str()) {
                Some(entry) => {
                    entry.state = GroupState {
                        promoted: true,
                        ..state
                    }
                }
                None if table.auto_groups < settings.max_auto_groups || name == OTHER_GROUP => {
                    table.auto_groups += usize::from(name != OTHER_GROUP);
                    table
                        .groups
                        .insert(Arc::from(name), GroupEntry::new(false, false, state));
                }
                None => {}
            }
        }
        table
    }

    /// The group a newly seen process goes into: `name` if it exists or fits under the
    /// cap, else `other`. A new automatic group has no series until it is useful.
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
        self.groups.entry(key.clone()).or_insert_with(|| {
            let state = GroupState {
                // `other` is a bucket, not a service: it always has series.
                promoted: name == OTHER_GROUP,
                ..GroupState::default()
            };
            GroupEntry::new(false, false, state)
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
        let settings = self.settings;
        let ticks = settings.clock_ticks.max(1) as f64;
        let baseline = self.last_scan_ticks;
        let mut changed = false;
        for (name, entry) in &mut self.groups {
            let now: &[InstanceKey] = top_level.get(name).map(Vec::as_slice).unwrap_or(&[]);
            changed |= observe_group(
                name,
                entry,
                now,
                now_secs,
                baseline,
                &mut vanished,
                settings,
            );
        }
        self.changed |= changed;
        self.last_scan_ticks = Some((now_secs * ticks) as u64);
        vanished
    }

    /// The exit accounting settled how an instance of `group` ended: counted by reason,
    /// handed to the restart detector (as an end, and as a start when its start is known,
    /// so that a successor no scan saw still pairs), and an abnormal end makes the group
    /// useful. `now_secs` is the scan's uptime. `group` must exist (`contains` or `admit`).
    pub fn exit_settled(&mut self, group: &str, end: InstanceEnd, now_secs: f64) {
        let ticks = self.settings.clock_ticks.max(1) as f64;
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        *entry.state.exits.entry(end.reason).or_default() += 1;
        let seen = entry
            .gone
            .iter()
            .chain(&entry.state.top_level)
            .find(|t| t.key.pid == end.pid)
            .map(|t| (t.key.start_ticks as f64 / ticks, t.last_seen_secs));
        let started = end.started_secs.or(seen.map(|(start, _)| start));
        if let Some(start) = started {
            entry.state.restart.started(end.pid, start, now_secs);
        }
        // An instance that was alive when this one ended, and still is (not its successor).
        let others_alive =
            entry.state.top_level.iter().any(|t| {
                t.key.pid != end.pid && (t.key.start_ticks as f64 / ticks) < end.ended_secs
            });
        let lived_secs = started.map(|start| end.ended_secs.max(seen.map_or(0.0, |s| s.1)) - start);
        entry.state.restart.ended(Ended {
            pid: end.pid,
            ended_secs: end.ended_secs,
            lived_secs,
            others_alive,
            reason: end.reason,
        });
        if end.reason.promotes(lived_secs) && !entry.state.promoted {
            entry.state.promoted = true;
            self.names_changed = true;
        }
        self.changed = true;
    }

    /// The process-events listener saw a new top-level instance of `group` start, at
    /// `start_secs` since boot, noted by the scan at `now_secs` (a scan may see it too: it
    /// counts once).
    pub fn instance_started(&mut self, group: &str, pid: u32, start_secs: f64, now_secs: f64) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.state.restart.started(pid, start_secs, now_secs);
        }
    }

    /// After the exits of a scan are settled: counts the restarts, and drops the groups
    /// that have been empty long enough (at once for one that never became useful).
    pub fn resolve(&mut self, now_secs: f64) {
        let settings = self.settings;
        let restarted = &mut self.restarted;
        let mut dropped = 0;
        let mut changed = false;
        let before = self.groups.len();
        self.groups.retain(|name, entry| {
            let rules = RestartRules {
                min_age_secs: settings.restart_min_age_secs,
                every: entry.every_restart,
                configured: entry.configured,
            };
            let restarts = entry.state.restart.resolve(now_secs, rules);
            if !restarts.is_empty() {
                changed = true;
                entry.state.restarts += restarts.len() as u64;
                entry.state.promoted = true;
                restarted.extend(restarts.into_iter().map(|r: Restart| RestartedInstance {
                    group: name.clone(),
                    pid: r.pid,
                    start_secs: r.start_secs,
                    gap_secs: r.gap_secs,
                    after: r.after,
                }));
            }
            let keep = keeps(name, entry, now_secs, settings.retention_secs);
            if !keep {
                changed = true;
                dropped += usize::from(&**name != OTHER_GROUP);
            }
            keep
        });
        self.auto_groups -= dropped;
        self.names_changed |= self.groups.len() != before;
        self.changed |= changed;
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

    /// Every group by name, with series or not.
    pub fn groups(&self) -> impl Iterator<Item = GroupView<'_>> {
        self.groups.iter().map(|(name, e)| GroupView {
            name,
            restarts: e.state.restarts,
            configured: e.configured,
            promoted: e.state.promoted || e.configured,
            exits: &e.state.exits,
        })
    }

    /// The names of every group.
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.groups.keys()
    }

    /// True (once) when a group was added, dropped or given series since the last call
    /// (and at first).
    pub fn take_names_changed(&mut self) -> bool {
        std::mem::take(&mut self.names_changed)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The persisted form of the table: the groups with series (a group that never became
    /// useful is not worth a restart's memory).
    pub fn to_state(&self) -> GroupsState {
        GroupsState {
            last_scan_ticks: self.last_scan_ticks,
            groups: self
                .groups
                .iter()
                .filter(|(_, e)| e.state.promoted || e.configured)
                .map(|(name, e)| (name.to_string(), e.state.clone()))
                .collect(),
        }
    }
}

/// One group's part of a scan: hands ended and new top-level instances to its restart
/// detector, makes it useful when an instance lived long enough, and keeps the instances
/// for the next scan. True when more than time stamps changed.
fn observe_group(
    name: &Arc<str>,
    entry: &mut GroupEntry,
    now: &[InstanceKey],
    now_secs: f64,
    baseline: Option<u64>,
    vanished: &mut Vec<VanishedInstance>,
    settings: TableSettings,
) -> bool {
    let ticks = settings.clock_ticks.max(1) as f64;
    let state = &mut entry.state;
    let previous = &mut entry.previous;
    let recently_gone = &mut entry.gone;
    std::mem::swap(previous, &mut state.top_level);
    let previous = &*previous;
    let sorted = now.is_sorted_by_key(|k| k.pid);
    let is_now = |key: &InstanceKey| contains(now, sorted, key);
    for gone in previous.iter().filter(|p| !is_now(&p.key)) {
        if recently_gone.len() >= GONE_KEPT {
            recently_gone.remove(0);
        }
        recently_gone.push(*gone);
        vanished.push(VanishedInstance {
            group: name.clone(),
            key: gone.key,
            last_seen_secs: gone.last_seen_secs,
        });
    }
    // New top-level instances: started since the last scan (judged by start time, so a
    // restart while oomwatch itself was down still counts once), not seen before.
    if let Some(baseline) = baseline {
        let appeared = now
            .iter()
            .filter(|key| key.start_ticks >= baseline)
            .filter(|key| !previous.iter().any(|p| p.key == **key));
        for key in appeared {
            state
                .restart
                .started(key.pid, key.start_ticks as f64 / ticks, now_secs);
        }
    }
    let mut changed =
        previous.len() != now.len() || previous.iter().zip(now).any(|(p, n)| p.key != *n);
    if !state.promoted
        && now
            .iter()
            .any(|k| now_secs - k.start_ticks as f64 / ticks >= settings.promote_after_secs)
    {
        state.promoted = true;
        changed = true;
    }
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
    } else if state.empty_since_secs.is_none() {
        state.empty_since_secs = Some(now_secs);
        changed = true;
    }
    changed
}

/// Whether a group stays: configured ones always; one with processes; a useful one for the
/// retention after its last process; one that never became useful only while an end of
/// it waits to be judged.
fn keeps(name: &str, entry: &GroupEntry, now_secs: f64, retention_secs: f64) -> bool {
    let state = &entry.state;
    let Some(since) = state.empty_since_secs else {
        return true;
    };
    if entry.configured {
        return true;
    }
    if state.promoted || name == OTHER_GROUP {
        return now_secs - since < retention_secs;
    }
    // Not useful (yet): kept only while an end of it waits to be judged.
    !state.restart.is_idle()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 100;

    fn settings() -> TableSettings {
        TableSettings {
            max_auto_groups: 3,
            retention_secs: 60.0,
            promote_after_secs: 30.0,
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

    /// One scan at uptime `now` that sees `instances` of `group` (and nothing else), with
    /// the exits `settled` (pid, reason) the accounting settles in it.
    fn scan_settling(
        table: &mut GroupTable,
        now: u64,
        group: &str,
        instances: &[InstanceKey],
        settled: &[(u32, ExitReason, u64)],
    ) -> Vec<VanishedInstance> {
        let mut seen = HashMap::new();
        if !instances.is_empty() {
            seen.insert(table.admit(group), instances.to_vec());
        }
        let gone = table.observe(now as f64, &seen);
        for &(pid, reason, ended) in settled {
            table.exit_settled(
                group,
                InstanceEnd {
                    pid,
                    reason,
                    ended_secs: ended as f64,
                    started_secs: None,
                },
                now as f64,
            );
        }
        table.resolve(now as f64);
        gone
    }

    fn scan(table: &mut GroupTable, now: u64, group: &str, instances: &[InstanceKey]) {
        scan_settling(table, now, group, instances, &[]);
    }

    fn restarts(table: &GroupTable, group: &str) -> u64 {
        table
            .restarts()
            .find(|(name, _)| &***name == group)
            .map(|(_, r)| r)
            .unwrap_or(0)
    }

    fn promoted(table: &GroupTable, group: &str) -> bool {
        table
            .groups()
            .find(|g| &**g.name == group)
            .is_some_and(|g| g.promoted)
    }

    fn crash(pid: u32, ended_secs: f64) -> InstanceEnd {
        InstanceEnd {
            pid,
            reason: ExitReason::Crashed,
            ended_secs,
            started_secs: None,
        }
    }

    fn configured(name: &str) -> [(&str, bool); 1] {
        [(name, false)]
    }

    #[test]
    fn watchdog_restart_counts_once_even_when_death_and_start_are_seen_apart() {
        let mut table = GroupTable::new(settings(), configured("mysql"), GroupsState::default());
        scan(&mut table, 100, "mysql", &[key(10, 50)]);
        scan_settling(
            &mut table,
            115,
            "mysql",
            &[],
            &[(10, ExitReason::Killed, 114)],
        );
        assert_eq!(restarts(&table, "mysql"), 0);
        scan(&mut table, 130, "mysql", &[key(11, 120)]);
        assert_eq!(restarts(&table, "mysql"), 1);
        let restarted = table.take_restarted();
        assert_eq!(restarted.len(), 1);
        assert_eq!(
            (&*restarted[0].group, restarted[0].pid, restarted[0].after),
            ("mysql", 11, ExitReason::Killed)
        );
        assert_eq!(restarted[0].gap_secs, 6.0, "ended at 114, new at 120");
        assert!(table.take_restarted().is_empty());
        scan(&mut table, 160, "mysql", &[key(11, 120)]);
        assert_eq!(restarts(&table, "mysql"), 1);
        // Death and restart between two scans, the exit settled in the same scan.
        scan_settling(
            &mut table,
            200,
            "mysql",
            &[key(12, 190)],
            &[(11, ExitReason::OomKilled, 185)],
        );
        assert_eq!(restarts(&table, "mysql"), 2);
    }

    #[test]
    fn a_service_oom_killed_seconds_after_each_start_counts_each_restart() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        // The watchdog's loop: started, killed 6 s later, started again 2 s after that.
        let mut now = 100;
        for pid in 1..=10u32 {
            let start = now;
            scan(&mut table, now + 1, "cms", &[key(pid, start)]);
            scan(&mut table, now + 6, "cms", &[key(pid, start)]);
            scan_settling(
                &mut table,
                now + 7,
                "cms",
                &[],
                &[(pid, ExitReason::OomKilled, now + 6)],
            );
            now += 8;
        }
        scan(&mut table, now + 1, "cms", &[key(11, now)]);
        assert_eq!(restarts(&table, "cms"), 10);
        assert!(
            promoted(&table, "cms"),
            "abnormal ends make the group useful"
        );
    }

    #[test]
    fn a_clean_loop_counts_no_restart_and_gets_no_series() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        // `while true; do napper 3; done`: each exits 0 after 3 s.
        for i in 0..20u32 {
            let start = 100 + u64::from(i) * 4;
            scan(&mut table, start + 1, "napper", &[key(i + 1, start)]);
            scan_settling(
                &mut table,
                start + 4,
                "napper",
                &[],
                &[(i + 1, ExitReason::ExitedOk, start + 3)],
            );
        }
        assert_eq!(restarts(&table, "napper"), 0);
        assert!(!promoted(&table, "napper"));
        assert!(
            !table.contains("napper"),
            "forgotten as soon as it is empty"
        );
        assert!(table.to_state().groups.is_empty());
    }

    #[test]
    fn an_exit_1_crash_loop_counts_and_a_long_lived_group_gets_series() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        scan(&mut table, 10, "svc", &[key(1, 5)]);
        assert!(!promoted(&table, "svc"));
        scan(&mut table, 40, "svc", &[key(1, 5)]);
        assert!(promoted(&table, "svc"), "an instance lived 35 s");
        scan_settling(
            &mut table,
            45,
            "svc",
            &[key(2, 44)],
            &[(1, ExitReason::ExitedError, 43)],
        );
        scan_settling(
            &mut table,
            50,
            "svc",
            &[key(3, 49)],
            &[(2, ExitReason::ExitedError, 48)],
        );
        assert_eq!(restarts(&table, "svc"), 2);
    }

    #[test]
    fn vanished_instances_are_returned_and_exits_are_counted_and_kept() {
        let mut table = GroupTable::new(settings(), configured("svc"), GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10), key(2, 20)]);
        let gone = scan_settling(&mut table, 115, "svc", &[key(2, 20)], &[]);
        assert_eq!(
            gone,
            [VanishedInstance {
                group: Arc::from("svc"),
                key: key(1, 10),
                last_seen_secs: 100.0
            }]
        );
        table.take_changed();
        table.exit_settled("svc", crash(1, 110.0), 115.0);
        table.exit_settled("nope", crash(1, 110.0), 115.0);
        assert!(table.take_changed());
        let saved = table.to_state();
        let back = GroupTable::new(settings(), configured("svc"), saved);
        let view = back.groups().find(|g| &**g.name == "svc").expect("svc");
        assert_eq!(view.exits.get(&ExitReason::Crashed), Some(&1));
    }

    #[test]
    fn without_exit_reasons_a_long_lived_sole_instance_still_restarts() {
        let mut table = GroupTable::new(settings(), [], GroupsState::default());
        // No process events: the accounting infers `unknown`.
        scan(&mut table, 100, "redis", &[key(30, 10)]);
        scan_settling(
            &mut table,
            150,
            "redis",
            &[key(31, 140)],
            &[(30, ExitReason::Unknown, 100)],
        );
        assert_eq!(restarts(&table, "redis"), 1);
        // Two long shells; one closes, a new one opens later: no restart.
        scan(&mut table, 100, "bash", &[key(1, 10), key(2, 20)]);
        scan_settling(
            &mut table,
            200,
            "bash",
            &[key(2, 20)],
            &[(1, ExitReason::Unknown, 100)],
        );
        scan(&mut table, 300, "bash", &[key(2, 20), key(3, 250)]);
        assert_eq!(restarts(&table, "bash"), 0);
    }

    #[test]
    fn a_service_down_past_the_window_was_stopped_not_restarted() {
        let mut table = GroupTable::new(settings(), configured("svc"), GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10)]);
        scan_settling(&mut table, 200, "svc", &[], &[(1, ExitReason::Killed, 150)]);
        scan(&mut table, 2000, "svc", &[key(2, 1990)]);
        assert_eq!(restarts(&table, "svc"), 0);
    }

    #[test]
    fn a_restart_while_oomwatch_was_down_counts_once() {
        let mut table = GroupTable::new(settings(), configured("svc"), GroupsState::default());
        scan(&mut table, 100, "svc", &[key(1, 10)]);
        let saved = table.to_state();
        // oomwatch is down for an hour; the service died and came back at once.
        for _ in 0..2 {
            let mut back = GroupTable::new(settings(), configured("svc"), saved.clone());
            scan(&mut back, 3700, "svc", &[key(2, 105)]);
            // Its exit event is long gone: inferred a few seconds later.
            scan_settling(
                &mut back,
                3715,
                "svc",
                &[key(2, 105)],
                &[(1, ExitReason::Unknown, 100)],
            );
            assert_eq!(restarts(&back, "svc"), 1);
            let again = back.to_state();
            let mut third = GroupTable::new(settings(), configured("svc"), again);
            scan(&mut third, 3730, "svc", &[key(2, 105)]);
            assert_eq!(restarts(&third, "svc"), 1);
        }
        // It came back only long after dying: a start, not a restart.
        let mut late = GroupTable::new(settings(), configured("svc"), saved);
        scan_settling(
            &mut late,
            3700,
            "svc",
            &[key(3, 3000)],
            &[(1, ExitReason::Unknown, 100)],
        );
        assert_eq!(restarts(&late, "svc"), 0);
    }

    #[test]
    fn new_boot_keeps_counts_and_forgets_instances() {
        let mut table = GroupTable::new(settings(), configured("svc"), GroupsState::default());
        scan(&mut table, 100, "svc", &[key(40, 10)]);
        scan_settling(
            &mut table,
            200,
            "svc",
            &[key(41, 150)],
            &[(40, ExitReason::Killed, 140)],
        );
        let mut state = table.to_state();
        state.start_new_boot();
        let mut rebooted = GroupTable::new(settings(), configured("svc"), state);
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
        let mut table = GroupTable::new(settings(), configured("fixed"), GroupsState::default());
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
        // Never useful: gone as soon as empty.
        table.observe(10.0, &HashMap::new());
        table.resolve(10.0);
        assert!(!table.contains("a"));
        // A useful one keeps its series for the retention.
        let useful = table.admit("u");
        table.exit_settled(&useful, crash(1, 15.0), 20.0);
        table.observe(20.0, &HashMap::new());
        table.resolve(20.0);
        assert!(table.contains("u"));
        table.observe(90.0, &HashMap::new());
        table.resolve(90.0);
        assert!(!table.contains("u"), "dropped after the retention");
        assert!(table.take_names_changed(), "groups were added and dropped");
        assert!(table.contains("fixed"), "configured groups always exist");
        assert_eq!(&*table.admit("f"), "f");
    }
}
