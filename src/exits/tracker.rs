//! The process tracker: every live process's group, kept current by fork, exec and comm
//! events, so the exit of a process that lived between two scans still has its group.
//!
//! A fork inherits the parent's group. An exec or a rename asks the `Namer` (which reads
//! `/proc/<pid>` with the same rules as the scan) for the new group; a process gone before
//! it could be read keeps the inherited group and is marked unnamed, and its exit is
//! counted as lost rather than guessed. A process is top-level (the instances restarts are
//! counted on) when it became its group's by an exec or a rename under a parent of another
//! group; a fork never is, so workers left behind by a dying master are not instances.
//! Processes found by a walk of /proc are judged by their parent at their exit. Threads are
//! ignored: only thread-group leaders are processes here.
//! Pure bookkeeping over events; the listener does the I/O.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::connector::{comm_str, ProcEvent};
use crate::exit_reason::WaitStatus;
use crate::groups::NameSource;

/// A process name as the kernel keeps it (at most 15 bytes), stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub fn new(name: &[u8]) -> Self {
        let len = name.len().min(16);
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&name[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..usize::from(self.len)])
    }
}

/// What the namer found for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub group: String,
    pub source: NameSource,
    pub comm: Comm,
    pub ppid: u32,
    pub kernel_thread: bool,
}

/// Names a process from `/proc/<tgid>`; None when it is gone or unreadable.
pub trait Namer {
    fn name(&mut self, tgid: u32) -> Option<Named>;
}

#[derive(Debug, Clone)]
enum Kind {
    User {
        group: Arc<str>,
        source: NameSource,
        /// False when an exec or rename could not be read: the group is the parent's.
        named: bool,
    },
    Kernel,
}

#[derive(Debug, Clone)]
struct Tracked {
    kind: Kind,
    comm: Comm,
    ppid: u32,
    /// Decided when it was named; None for processes found by a walk of /proc.
    top_level: Option<bool>,
    /// When it became a top-level instance (its exec or rename), nanoseconds since boot.
    started_ns: Option<u64>,
}

/// A named process's exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub pid: u32,
    pub comm: Comm,
    pub group: Arc<str>,
    pub source: NameSource,
    pub status: WaitStatus,
    /// Nanoseconds since boot (CLOCK_BOOTTIME, the clock of /proc/uptime) of the exit.
    pub boottime_ns: u64,
    /// A top-level instance: counted on its own. Otherwise a forked process whose parent
    /// left the group (a daemon's reparented child): its exit only tells how an instance
    /// the scan saw as top-level ended. Workers still under their master are not reported.
    pub top_level: bool,
    /// When it became a top-level instance (nanoseconds since boot), when the listener saw
    /// it happen.
    pub started_ns: Option<u64>,
}

/// A process that became a top-level instance of its group (an exec or a rename under a
/// parent of another group): a start, which may be a restart of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRecord {
    pub pid: u32,
    pub group: Arc<str>,
    pub source: NameSource,
    /// Nanoseconds since boot (CLOCK_BOOTTIME) of the exec or rename.
    pub boottime_ns: u64,
}

/// What one event meant for exit accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to count (a fork, a thread, a child exiting inside its group).
    None,
    Exit(ExitRecord),
    Start(StartRecord),
    /// A process exited whose group could not be read: it lived too briefly.
    UnnamedExit,
    /// A process exited that the tracker never knew (see `LostCause::Untracked`).
    UntrackedExit,
}

/// Interned group names beyond this are pruned of the ones no process uses.
const NAMES_PRUNE_AT: usize = 4096;

#[derive(Debug, Default)]
pub struct ProcessTracker {
    processes: HashMap<u32, Tracked>,
    names: HashMap<Box<str>, Arc<str>>,
}

impl ProcessTracker {
    /// Records a process found by a walk of /proc (at start, or to reconcile).
    pub fn insert(&mut self, tgid: u32, named: Named) {
        let tracked = self.tracked(named);
        self.processes.insert(tgid, tracked);
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    pub fn contains(&self, tgid: u32) -> bool {
        self.processes.contains_key(&tgid)
    }

    /// Forgets processes not in `live` (sorted): their exit events were lost.
    pub fn retain_live(&mut self, live: &[u32]) {
        self.processes
            .retain(|tgid, _| live.binary_search(tgid).is_ok());
        self.prune_names();
    }

    /// Applies one event stamped `boottime_ns` since boot.
    pub fn handle(
        &mut self,
        event: &ProcEvent,
        boottime_ns: u64,
        namer: &mut impl Namer,
    ) -> Outcome {
        match *event {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => self.on_fork(parent_tgid, child_tgid, namer),
            ProcEvent::Exec { pid, tgid } if pid == tgid => self.rename(tgid, boottime_ns, namer),
            ProcEvent::Comm { pid, tgid, comm } if pid == tgid => {
                // The scan groups by comm too: a rename may move the process.
                let unchanged = self
                    .processes
                    .get(&tgid)
                    .is_some_and(|t| t.comm == Comm::new(comm_str(&comm)));
                if unchanged {
                    return Outcome::None;
                }
                self.rename(tgid, boottime_ns, namer)
            }
            ProcEvent::Exit {
                pid,
                tgid,
                exit_code,
                parent_tgid,
            } if pid == tgid => self.on_exit(tgid, exit_code, parent_tgid, boottime_ns),
            // Threads, and events that do not change a process's group.
            _ => Outcome::None,
        }
    }

    /// A new process: it inherits its parent's group (not top-level under it), or is
    /// named from /proc when the parent is unknown.
    fn on_fork(&mut self, parent_tgid: u32, child_tgid: u32, namer: &mut impl Namer) -> Outcome {
        let inherited = self.processes.get(&parent_tgid).map(|parent| Tracked {
            ppid: parent_tgid,
            top_level: Some(false),
            started_ns: None,
            ..parent.clone()
        });
        let child = match inherited {
            Some(child) => Some(child),
            None => namer.name(child_tgid).map(|named| self.tracked(named)),
        };
        if let Some(child) = child {
            self.processes.insert(child_tgid, child);
        }
        Outcome::None
    }

    /// A process ended: an exit record when a scan could have taken it for an instance
    /// (top-level, or orphaned under a parent of another group).
    fn on_exit(
        &mut self,
        tgid: u32,
        exit_code: u32,
        parent_tgid: u32,
        boottime_ns: u64,
    ) -> Outcome {
        let Some(gone) = self.processes.remove(&tgid) else {
            return Outcome::UntrackedExit;
        };
        let Kind::User {
            group,
            source,
            named,
        } = gone.kind
        else {
            return Outcome::None;
        };
        if !named {
            return Outcome::UnnamedExit;
        }
        let parent = if parent_tgid != 0 {
            parent_tgid
        } else {
            gone.ppid
        };
        // Under a parent of another group now: the scan sees it as top-level.
        let orphaned = !self.in_group(parent, &group);
        let top_level = gone.top_level.unwrap_or(orphaned);
        if !top_level && !orphaned {
            // A worker under its master: no scan could take it for an instance.
            return Outcome::None;
        }
        Outcome::Exit(ExitRecord {
            pid: tgid,
            comm: gone.comm,
            group,
            source,
            status: WaitStatus::from_exit_code(exit_code),
            boottime_ns,
            top_level,
            started_ns: gone.started_ns,
        })
    }

    /// True when `pid` is a user process of `group`.
    fn in_group(&self, pid: u32, group: &Arc<str>) -> bool {
        matches!(
            self.processes.get(&pid),
            Some(Tracked { kind: Kind::User { group: g, .. }, .. }) if g == group
        )
    }

    /// Re-reads the group of `tgid` after an exec or a rename; it is top-level when its
    /// parent is in another group, and then a start of that group unless it was already
    /// a top-level instance of it.
    fn rename(&mut self, tgid: u32, boottime_ns: u64, namer: &mut impl Namer) -> Outcome {
        let Some(named) = namer.name(tgid) else {
            if let Some(Tracked {
                kind: Kind::User { named, .. },
                ..
            }) = self.processes.get_mut(&tgid)
            {
                *named = false;
            }
            return Outcome::None;
        };
        let mut tracked = self.tracked(named);
        let mut outcome = Outcome::None;
        if let Kind::User { group, source, .. } = &tracked.kind {
            let top_level = !self.in_group(tracked.ppid, group);
            tracked.top_level = Some(top_level);
            let was = self.processes.get(&tgid).is_some_and(|old| {
                old.top_level == Some(true)
                    && matches!(&old.kind, Kind::User { group: g, .. } if g == group)
            });
            if top_level {
                // A rename within the group keeps the instance's start.
                let kept = self.processes.get(&tgid).and_then(|old| old.started_ns);
                tracked.started_ns = if was { kept } else { Some(boottime_ns) };
            }
            if top_level && !was {
                outcome = Outcome::Start(StartRecord {
                    pid: tgid,
                    group: group.clone(),
                    source: *source,
                    boottime_ns,
                });
            }
        }
        self.processes.insert(tgid, tracked);
        outcome
    }

    fn tracked(&mut self, named: Named) -> Tracked {
        let kind = if named.kernel_thread {
            Kind::Kernel
        } else {
            Kind::User {
                group: self.intern(named.group),
                source: named.source,
                named: true,
            }
        };
        Tracked {
            kind,
            comm: named.comm,
            ppid: named.ppid,
            top_level: None,
            started_ns: None,
        }
    }

    fn intern(&mut self, name: String) -> Arc<str> {
        if let Some(interned) = self.names.get(name.as_str()) {
            return interned.clone();
        }
        if self.names.len() >= NAMES_PRUNE_AT {
            self.prune_names();
        }
        let interned: Arc<str> = Arc::from(name.as_str());
        self.names.insert(name.into_boxed_str(), interned.clone());
        interned
    }

    fn prune_names(&mut self) {
        self.names
            .retain(|_, interned| Arc::strong_count(interned) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names from a table, as /proc would.
    #[derive(Default)]
    struct TableNamer {
        names: HashMap<u32, Named>,
        asked: u32,
    }

    impl TableNamer {
        fn set(&mut self, tgid: u32, group: &str, ppid: u32) {
            self.names.insert(tgid, named(group, ppid, false));
        }
    }

    impl Namer for TableNamer {
        fn name(&mut self, tgid: u32) -> Option<Named> {
            self.asked += 1;
            self.names.get(&tgid).cloned()
        }
    }

    fn named(group: &str, ppid: u32, kernel_thread: bool) -> Named {
        Named {
            group: group.into(),
            source: NameSource::Rule,
            comm: Comm::new(group.as_bytes()),
            ppid,
            kernel_thread,
        }
    }

    fn fork(parent: u32, child: u32) -> ProcEvent {
        ProcEvent::Fork {
            parent_tgid: parent,
            child_pid: child,
            child_tgid: child,
        }
    }

    fn exit(tgid: u32, code: u32, parent: u32) -> ProcEvent {
        ProcEvent::Exit {
            pid: tgid,
            tgid,
            exit_code: code,
            parent_tgid: parent,
        }
    }

    /// The group and status of a top-level exit.
    fn exit_group(outcome: Outcome) -> Option<(String, WaitStatus)> {
        match outcome {
            Outcome::Exit(record) if record.top_level => {
                Some((record.group.to_string(), record.status))
            }
            _ => None,
        }
    }

    #[test]
    fn a_watchdogs_child_execs_into_its_service_and_its_death_is_top_level() {
        let mut tracker = ProcessTracker::default();
        let mut namer = TableNamer::default();
        tracker.insert(100, named("watchdog", 1, false));
        tracker.handle(&fork(100, 200), 1, &mut namer);
        assert_eq!(namer.asked, 0, "a fork inherits without reading /proc");
        namer.set(200, "mysql", 100);
        tracker.handle(
            &ProcEvent::Exec {
                pid: 200,
                tgid: 200,
            },
            2,
            &mut namer,
        );
        // mysqld forks a worker: same group, its exit is not top-level.
        tracker.handle(&fork(200, 201), 3, &mut namer);
        assert_eq!(
            exit_group(tracker.handle(&exit(201, 0, 200), 4, &mut namer)),
            None
        );
        let died = tracker.handle(&exit(200, 9, 100), 5, &mut namer);
        assert_eq!(
            exit_group(died),
            Some((
                "mysql".into(),
                WaitStatus::Signaled {
                    signal: 9,
                    core_dumped: false
                }
            ))
        );
        assert!(!tracker.contains(200));
    }

    #[test]
    fn workers_left_behind_by_their_master_are_not_instances_but_report_how_they_ended() {
        let mut tracker = ProcessTracker::default();
        let mut namer = TableNamer::default();
        tracker.insert(1, named("init", 0, false));
        namer.set(300, "redis", 1);
        tracker.handle(&fork(1, 300), 1, &mut namer);
        tracker.handle(
            &ProcEvent::Exec {
                pid: 300,
                tgid: 300,
            },
            1,
            &mut namer,
        );
        tracker.handle(&fork(300, 301), 2, &mut namer);
        // The master exits (daemonised, or stopped); the worker is reparented to 1.
        assert!(exit_group(tracker.handle(&exit(300, 0, 1), 3, &mut namer)).is_some());
        match tracker.handle(&exit(301, 11 | 0x80, 1), 4, &mut namer) {
            Outcome::Exit(record) => {
                assert!(!record.top_level, "a forked worker is no instance");
                assert_eq!(&*record.group, "redis");
            }
            other => panic!("{other:?}"),
        }
        // Processes found by a walk are judged by their parent at their exit.
        tracker.insert(400, named("redis", 1, false));
        assert!(exit_group(tracker.handle(&exit(400, 9, 1), 5, &mut namer)).is_some());
    }

    #[test]
    fn threads_and_kernel_threads_count_nothing_and_an_unknown_pid_is_untracked() {
        let mut tracker = ProcessTracker::default();
        let mut namer = TableNamer::default();
        tracker.insert(2, named("kthreadd", 0, true));
        tracker.insert(50, named("app", 1, false));
        let thread = ProcEvent::Fork {
            parent_tgid: 50,
            child_pid: 51,
            child_tgid: 50,
        };
        tracker.handle(&thread, 1, &mut namer);
        assert_eq!(tracker.len(), 2);
        let thread_exit = ProcEvent::Exit {
            pid: 51,
            tgid: 50,
            exit_code: 0,
            parent_tgid: 1,
        };
        assert_eq!(tracker.handle(&thread_exit, 2, &mut namer), Outcome::None);
        assert!(tracker.contains(50), "a thread's exit is not the process's");
        tracker.handle(&fork(2, 60), 3, &mut namer);
        assert_eq!(
            tracker.handle(&exit(60, 9, 2), 4, &mut namer),
            Outcome::None
        );
        assert_eq!(
            tracker.handle(&exit(999, 0, 1), 5, &mut namer),
            Outcome::UntrackedExit
        );
    }

    #[test]
    fn a_process_gone_before_it_was_named_is_an_unnamed_exit() {
        let mut tracker = ProcessTracker::default();
        let mut namer = TableNamer::default();
        tracker.insert(10, named("bash", 1, false));
        tracker.handle(&fork(10, 11), 1, &mut namer);
        tracker.handle(&ProcEvent::Exec { pid: 11, tgid: 11 }, 2, &mut namer);
        assert_eq!(
            tracker.handle(&exit(11, 0, 10), 3, &mut namer),
            Outcome::UnnamedExit
        );
    }

    #[test]
    fn a_rename_moves_the_process_and_a_same_name_comm_event_reads_nothing() {
        let mut tracker = ProcessTracker::default();
        let mut namer = TableNamer::default();
        tracker.insert(1, named("init", 0, false));
        tracker.insert(20, named("python", 1, false));
        let same = ProcEvent::Comm {
            pid: 20,
            tgid: 20,
            comm: *b"python\0\0\0\0\0\0\0\0\0\0",
        };
        tracker.handle(&same, 1, &mut namer);
        assert_eq!(namer.asked, 0);
        namer.set(20, "celery", 1);
        let renamed = ProcEvent::Comm {
            pid: 20,
            tgid: 20,
            comm: *b"celery\0\0\0\0\0\0\0\0\0\0",
        };
        tracker.handle(&renamed, 2, &mut namer);
        let gone = tracker.handle(&exit(20, 1 << 8, 1), 3, &mut namer);
        assert_eq!(exit_group(gone).map(|(g, _)| g).as_deref(), Some("celery"));
    }

    #[test]
    fn reconciling_forgets_processes_whose_exit_was_lost() {
        let mut tracker = ProcessTracker::default();
        for pid in [1, 5, 9] {
            tracker.insert(pid, named("x", 0, false));
        }
        tracker.retain_live(&[1, 9]);
        assert!(tracker.contains(1) && !tracker.contains(5) && tracker.contains(9));
    }
}
