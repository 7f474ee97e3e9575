//! Exit reasons: how each instance of a group ended, from the kernel's process-events
//! connector.
//!
//! `connector` parses what the kernel sends (the reasons it settles into are `exit_reason`); `tracker` keeps every live process's group
//! from fork, exec and comm events; `namer` reads a new program's group from /proc with
//! the scan's rules; `listener` is the thread that owns the netlink socket and feeds
//! top-level exits into `ExitsShared`; `accounting` (run by the processes collector at
//! each scan) matches them with the kernel log's OOM victims and with the instances the
//! scan saw vanish, and settles each exit into one `reason`.

pub mod accounting;
pub mod connector;
pub mod listener;
pub mod namer;
pub mod tracker;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::groups::NameSource;
use tracker::{ExitRecord, StartRecord};

/// Exits waiting for the next scan; beyond, they are counted as lost (overflow).
pub const QUEUE_CAPACITY: usize = 32_768;

/// Renamed processes remembered between two scans; beyond, the journal is incomplete.
const RENAMES_CAPACITY: usize = 16_384;
/// Starts of top-level instances waiting for the next scan; beyond, the oldest go (a
/// start only pairs with a death as a restart, and a scan sees most starts anyway).
const STARTS_CAPACITY: usize = 8_192;
/// Comm-named groups the listener learnt of by an abnormal exit, before a scan knew them.
const LEARNT_GROUPS_CAPACITY: usize = 4_096;

/// Why an exit could not be accounted to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostCause {
    /// The kernel dropped events: the socket's receive buffer overflowed.
    Dropped,
    /// A process exited before oomwatch could read which program it was.
    Unnamed,
    /// More exits between two scans than the queue holds.
    Overflow,
    /// A process the listener did not know ended: it started before the listener named
    /// the host's processes and ended before it reached it, or its fork event was lost.
    Untracked,
}

impl LostCause {
    pub const ALL: [LostCause; 4] = [
        LostCause::Dropped,
        LostCause::Unnamed,
        LostCause::Overflow,
        LostCause::Untracked,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LostCause::Dropped => "dropped",
            LostCause::Unnamed => "unnamed",
            LostCause::Overflow => "overflow",
            LostCause::Untracked => "untracked",
        }
    }
}

/// What the listener thread shares with the scans.
#[derive(Debug, Default)]
pub struct ExitsShared {
    up: AtomicBool,
    lost: [AtomicU64; 4],
    events: AtomicU64,
    queue: Mutex<VecDeque<ExitRecord>>,
    starts: Mutex<VecDeque<StartRecord>>,
    /// Groups the scan's table holds: exits of comm-named groups outside it are not kept.
    known_groups: RwLock<Arc<HashSet<Arc<str>>>>,
    /// Comm-named groups not yet known to a scan whose instance ended abnormally: their
    /// exits and starts are kept from then on (a crash loop between two scrapes).
    learnt_groups: Mutex<HashSet<Arc<str>>>,
    renames: Mutex<RenameJournal>,
}

/// The processes whose program or name changed (exec, or a new comm of the main thread)
/// since the scan last asked, so the scan re-reads only their stat.
#[derive(Debug, Default)]
struct RenameJournal {
    tgids: Vec<u32>,
    /// No event was missed since the last `take_renamed` while the listener was up.
    complete: bool,
}

/// The listener's health, as a scan reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitsStatus {
    pub up: bool,
    /// Per `LostCause::ALL`.
    pub lost: [u64; 4],
    /// Process events handled since start.
    pub events: u64,
}

impl ExitsShared {
    pub fn status(&self) -> ExitsStatus {
        ExitsStatus {
            up: self.up.load(Ordering::Relaxed),
            lost: [0, 1, 2, 3].map(|i| self.lost[i].load(Ordering::Relaxed)),
            events: self.events.load(Ordering::Relaxed),
        }
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        // Whatever happened before (re)subscribing was not seen.
        self.renames_lost();
    }

    /// Notes that `tgid` exec'd or its main thread took a new name.
    pub(crate) fn note_renamed(&self, tgid: u32) {
        let mut journal = crate::sync::lock(&self.renames);
        if journal.tgids.len() >= RENAMES_CAPACITY {
            journal.complete = false;
        } else if journal.complete {
            journal.tgids.push(tgid);
        }
    }

    /// Notes that events were missed: the journal no longer knows every rename.
    pub(crate) fn renames_lost(&self) {
        let mut journal = crate::sync::lock(&self.renames);
        journal.complete = false;
        journal.tgids.clear();
    }

    /// Moves the renames since the last call into `into` (cleared first) and starts a
    /// new journal. True when `into` holds every rename of that period: the listener was
    /// up for all of it and missed no event; false when any process may have been renamed.
    pub fn take_renamed(&self, into: &mut Vec<u32>) -> bool {
        into.clear();
        let up = self.up();
        let mut journal = crate::sync::lock(&self.renames);
        let complete = std::mem::replace(&mut journal.complete, up) && up;
        std::mem::swap(&mut journal.tgids, into);
        if !complete {
            into.clear();
        }
        complete
    }

    pub(crate) fn count_lost(&self, cause: LostCause, n: u64) {
        let index = LostCause::ALL.iter().position(|c| *c == cause).unwrap_or(0);
        self.lost[index].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    /// Queues a top-level exit for the next scan, if its group can be counted: named by a
    /// rule or a cgroup, a comm-named group the scan already knows, or any group's abnormal
    /// end (which makes the group known from then on). A shell's every `grep` is a top-level
    /// instance of its own comm group; its clean end is not kept.
    pub(crate) fn push(&self, record: ExitRecord) {
        if record.source == NameSource::Comm && !self.knows(&record.group) {
            let lived = record
                .started_ns
                .map(|start| record.boottime_ns.saturating_sub(start) as f64 / 1e9);
            if !record.status.reason(false).promotes(lived) {
                return;
            }
            let mut learnt = crate::sync::lock(&self.learnt_groups);
            if learnt.len() >= LEARNT_GROUPS_CAPACITY {
                learnt.clear();
            }
            learnt.insert(record.group.clone());
        }
        let mut queue = crate::sync::lock(&self.queue);
        if queue.len() >= QUEUE_CAPACITY {
            drop(queue);
            self.count_lost(LostCause::Overflow, 1);
            return;
        }
        queue.push_back(record);
    }

    /// Queues the start of a top-level instance for the next scan, for a group whose exits
    /// are kept (see `push`).
    pub(crate) fn push_start(&self, record: StartRecord) {
        if record.source == NameSource::Comm && !self.knows(&record.group) {
            return;
        }
        let mut starts = crate::sync::lock(&self.starts);
        if starts.len() >= STARTS_CAPACITY {
            starts.pop_front();
        }
        starts.push_back(record);
    }

    /// Takes every queued start.
    pub fn drain_starts(&self) -> Vec<StartRecord> {
        let mut starts = crate::sync::lock(&self.starts);
        starts.drain(..).collect()
    }

    /// Takes every queued exit.
    pub fn drain(&self) -> Vec<ExitRecord> {
        let mut queue = crate::sync::lock(&self.queue);
        queue.drain(..).collect()
    }

    /// Publishes the groups the scan's table holds (which now include the learnt ones).
    pub fn set_known_groups(&self, groups: HashSet<Arc<str>>) {
        let mut known = self.known_groups.write().unwrap_or_else(|p| p.into_inner());
        *known = Arc::new(groups);
        crate::sync::lock(&self.learnt_groups).clear();
    }

    fn knows(&self, group: &str) -> bool {
        let known = self.known_groups.read().unwrap_or_else(|p| p.into_inner());
        known.contains(group) || crate::sync::lock(&self.learnt_groups).contains(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_reason::WaitStatus;
    use crate::exits::tracker::{Comm, StartRecord};

    fn record(group: &str, source: NameSource) -> ExitRecord {
        ExitRecord {
            pid: 1,
            comm: Comm::new(b"x"),
            group: Arc::from(group),
            source,
            status: WaitStatus::Exited { code: 0 },
            boottime_ns: 0,
            top_level: true,
            started_ns: None,
        }
    }

    #[test]
    fn comm_groups_are_kept_only_when_the_scan_knows_them() {
        let shared = ExitsShared::default();
        shared.push(record("grep", NameSource::Comm));
        shared.push(record("nginx.service", NameSource::Cgroup));
        shared.push(record("db", NameSource::Rule));
        shared.set_known_groups([Arc::from("redis-server")].into_iter().collect());
        shared.push(record("redis-server", NameSource::Comm));
        let groups: Vec<_> = shared.drain().iter().map(|r| r.group.to_string()).collect();
        assert_eq!(groups, ["nginx.service", "db", "redis-server"]);
        assert!(shared.drain().is_empty());
        // An unknown comm group's abnormal end is kept, and its next start too; a command
        // failing at once is not.
        let failing = ExitRecord {
            status: WaitStatus::Exited { code: 1 },
            started_ns: Some(0),
            boottime_ns: 1_000_000,
            ..record("pgrep", NameSource::Comm)
        };
        shared.push(failing);
        let crash = ExitRecord {
            status: WaitStatus::Signaled {
                signal: 9,
                core_dumped: false,
            },
            ..record("cms", NameSource::Comm)
        };
        shared.push(crash);
        shared.push_start(StartRecord {
            pid: 2,
            group: Arc::from("cms"),
            source: NameSource::Comm,
            boottime_ns: 0,
        });
        shared.push_start(StartRecord {
            pid: 3,
            group: Arc::from("grep"),
            source: NameSource::Comm,
            boottime_ns: 0,
        });
        assert_eq!(shared.drain().len(), 1);
        let starts: Vec<_> = shared.drain_starts().iter().map(|s| s.pid).collect();
        assert_eq!(starts, [2]);
    }

    #[test]
    fn the_rename_journal_is_complete_only_while_the_listener_was_up_throughout() {
        let shared = ExitsShared::default();
        let mut renamed = Vec::new();
        shared.note_renamed(7);
        assert!(!shared.take_renamed(&mut renamed), "down: unknown");
        shared.set_up(true);
        assert!(
            !shared.take_renamed(&mut renamed),
            "just subscribed: unknown"
        );
        shared.note_renamed(7);
        shared.note_renamed(9);
        assert!(shared.take_renamed(&mut renamed));
        assert_eq!(renamed, [7, 9]);
        assert!(shared.take_renamed(&mut renamed));
        assert!(renamed.is_empty());
        shared.note_renamed(3);
        shared.renames_lost();
        assert!(!shared.take_renamed(&mut renamed), "events were missed");
        assert!(renamed.is_empty());
        for tgid in 0..=RENAMES_CAPACITY as u32 {
            shared.note_renamed(tgid);
        }
        assert!(!shared.take_renamed(&mut renamed), "overflowed");
        assert!(shared.take_renamed(&mut renamed));
        shared.set_up(false);
        assert!(!shared.take_renamed(&mut renamed), "down again");
    }

    #[test]
    fn a_full_queue_counts_what_it_cannot_hold() {
        let shared = ExitsShared::default();
        for _ in 0..QUEUE_CAPACITY + 5 {
            shared.push(record("db", NameSource::Rule));
        }
        assert_eq!(shared.status().lost, [0, 0, 5, 0]);
        assert_eq!(shared.drain().len(), QUEUE_CAPACITY);
    }
}
