//! Settling exits at scan time: each exit gets exactly one reason, once.
//!
//! Two sources meet here. Exit events (from the listener) carry the wait status; a SIGKILL
//! is `oom_killed` when the kernel log named the same pid and comm as an OOM victim
//! within `OOM_MATCH_WINDOW_SECS` of the exit, and a SIGKILL nobody has explained yet is held
//! for `KERNEL_LOG_GRACE_SECS` so the kernel-log thread can catch up. A top-level exit counts
//! on its own; any other exit only settles an instance the scan saw as top-level (a
//! daemon's reparented child). Instances the scan saw vanish are settled by their event
//! (same pid and group) when one arrives; one still without an event `INFER_AFTER_SECS`
//! later (its events lost, or it ended before the listener knew it), or at once when no
//! listener runs, is settled from what is known, and counted by why it was inferred: `oom_killed` when the kernel log named it between its last sighting and now,
//! else `unknown`, and an event arriving after that is not counted again. Times are
//! seconds since boot (CLOCK_BOOTTIME); pure.

use std::collections::HashMap;
use std::sync::Arc;

use super::tracker::ExitRecord;
use crate::capacity::shrink_map;
use crate::exit_reason::{ExitReason, WaitStatus};
use crate::groups::NameSource;
use crate::kills::shared::RecentVictim;

/// How far apart an exit event and the kernel log's report of the kill may be stamped.
/// The two clocks (CLOCK_MONOTONIC, the printk clock) agree to well under a second on a
/// running host; the window is wide so a victim stuck in D state still matches.
pub const OOM_MATCH_WINDOW_SECS: f64 = 30.0;
/// How long a SIGKILL waits for the kernel log to name it before it is settled `killed`.
pub const KERNEL_LOG_GRACE_SECS: f64 = 3.0;
/// How long a vanished instance waits for its exit event before it is inferred.
pub const INFER_AFTER_SECS: f64 = 5.0;
/// How long a settled pid is remembered, to match it with its other source.
const REMEMBER_SECS: f64 = 120.0;

/// An instance the scan saw before and does not see now.
#[derive(Debug, Clone, PartialEq)]
pub struct Vanished {
    pub group: Arc<str>,
    pub pid: u32,
    pub comm: Option<Arc<str>>,
    /// Seconds since boot at the last scan that saw it alive.
    pub last_seen_secs: f64,
    /// Seconds since boot when it started.
    pub start_secs: f64,
}

/// One exit, settled.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledExit {
    pub group: Arc<str>,
    /// How the group was named; None when the scan's table gave it (a vanished instance).
    pub source: Option<NameSource>,
    pub pid: u32,
    pub comm: String,
    pub reason: ExitReason,
    /// None when inferred from a scan.
    pub status: Option<WaitStatus>,
    /// When it ended (the event's stamp, or the scan that found it gone), since boot.
    pub at_secs: f64,
    /// The earliest it can have ended: `at_secs` for an event, the last scan that saw it
    /// alive for an inferred end.
    pub earliest_secs: f64,
    /// When the instance started, seconds since boot, when known.
    pub started_secs: Option<f64>,
}

/// An exit event already taken, kept to match a vanished instance.
#[derive(Debug)]
struct Recorded {
    group: Arc<str>,
    at_secs: f64,
    /// The settlement of an exit that did not count on its own (not top-level), for the
    /// vanished instance it may turn out to be. Boxed: most records have none, and a
    /// busy host keeps a record per exit for `REMEMBER_SECS` (24,000 at 200 exits/s).
    pending: Option<Box<SettledExit>>,
}

#[derive(Debug, Default)]
pub struct ExitAccounting {
    /// SIGKILLs waiting for the kernel log.
    held: Vec<ExitRecord>,
    recorded: HashMap<u32, Recorded>,
    /// Vanished instances without an event yet, with when they were found gone.
    waiting: Vec<(Vanished, f64)>,
    /// Pids settled by inference, with their group and when: a late event is not counted.
    inferred: HashMap<u32, (Arc<str>, f64)>,
    /// Exits inferred since start, by `InferredCause`.
    inferred_total: [u64; 2],
}

/// Why an exit was inferred from a scan rather than read from its exit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferredCause {
    /// No process-events listener (`--no-collector.exits`, or it is down): there is no
    /// event to wait for, so the vanished instance is settled at once.
    NoListener,
    /// The listener was up, but no event came for the instance within
    /// `INFER_AFTER_SECS` (its events were lost, or it ended before the listener knew it).
    NoEvent,
}

impl InferredCause {
    pub const ALL: [InferredCause; 2] = [InferredCause::NoListener, InferredCause::NoEvent];

    pub fn label(self) -> &'static str {
        match self {
            InferredCause::NoListener => "no_listener",
            InferredCause::NoEvent => "no_event",
        }
    }
}

impl ExitAccounting {
    /// Settles what can be settled now: the exit events since the last call, the
    /// instances this scan found gone, against the kernel log's recent victims;
    /// `now_secs` since boot. `listening`: the process-events listener is up, so an event
    /// may still come for a vanished instance.
    pub fn settle(
        &mut self,
        records: Vec<ExitRecord>,
        vanished: Vec<Vanished>,
        victims: &[RecentVictim],
        now_secs: f64,
        listening: bool,
    ) -> Vec<SettledExit> {
        let mut settled = Vec::new();
        self.settle_records(records, victims, now_secs, &mut settled);
        self.waiting
            .extend(vanished.into_iter().map(|gone| (gone, now_secs)));
        self.settle_vanished(victims, now_secs, listening, &mut settled);
        self.recorded
            .retain(|_, r| now_secs - r.at_secs < REMEMBER_SECS);
        self.inferred
            .retain(|_, (_, at)| now_secs - *at < REMEMBER_SECS);
        // A burst of exits grew these; give the room back once it has passed.
        shrink_map(&mut self.recorded);
        shrink_map(&mut self.inferred);
        settled
    }

    /// How many exits were inferred, by cause (`InferredCause::ALL`'s order), since start.
    pub fn inferred_total(&self) -> [u64; 2] {
        self.inferred_total
    }

    /// The exit events (and the SIGKILLs held for the kernel log) that can be settled now.
    fn settle_records(
        &mut self,
        records: Vec<ExitRecord>,
        victims: &[RecentVictim],
        now_secs: f64,
        settled: &mut Vec<SettledExit>,
    ) {
        let mut candidates = std::mem::take(&mut self.held);
        candidates.extend(records);
        for record in candidates {
            if self
                .inferred
                .get(&record.pid)
                .is_some_and(|(group, _)| *group == record.group)
            {
                self.inferred.remove(&record.pid);
                continue; // counted when it was found gone without this event
            }
            let at_secs = record.boottime_ns as f64 / 1e9;
            let comm = record.comm.as_str().into_owned();
            let oom = victims.iter().any(|v| {
                v.pid == record.pid
                    && (v.uptime_secs - at_secs).abs() <= OOM_MATCH_WINDOW_SECS
                    && same_comm(&v.comm, &comm)
            });
            if record.status.is_sigkill() && !oom && now_secs - at_secs < KERNEL_LOG_GRACE_SECS {
                self.held.push(record);
                continue;
            }
            let exit = SettledExit {
                group: record.group.clone(),
                source: Some(record.source),
                pid: record.pid,
                comm,
                reason: record.status.reason(oom),
                status: Some(record.status),
                at_secs,
                earliest_secs: at_secs,
                started_secs: record.started_ns.map(|ns| ns as f64 / 1e9),
            };
            let pending = if record.top_level {
                settled.push(exit);
                None
            } else {
                Some(Box::new(exit))
            };
            self.recorded.insert(
                record.pid,
                Recorded {
                    group: record.group,
                    at_secs,
                    pending,
                },
            );
        }
    }

    /// The vanished instances settled by their event, or inferred: at once without a
    /// listener, else once `INFER_AFTER_SECS` passed without an event.
    fn settle_vanished(
        &mut self,
        victims: &[RecentVictim],
        now_secs: f64,
        listening: bool,
        settled: &mut Vec<SettledExit>,
    ) {
        let (recorded, inferred) = (&mut self.recorded, &mut self.inferred);
        let inferred_total = &mut self.inferred_total;
        self.waiting.retain(|(gone, found_at)| {
            if let Some(record) = recorded
                .get_mut(&gone.pid)
                .filter(|r| r.group == gone.group)
            {
                settled.extend(record.pending.take().map(|exit| *exit));
                return false;
            }
            if listening && now_secs - found_at < INFER_AFTER_SECS {
                return true; // its event may still be on its way
            }
            let cause = if listening {
                InferredCause::NoEvent
            } else {
                InferredCause::NoListener
            };
            inferred_total[cause as usize] += 1;
            let oom = victims.iter().any(|v| {
                v.pid == gone.pid
                    && v.uptime_secs >= gone.last_seen_secs - 1.0
                    && v.uptime_secs <= now_secs + 1.0
            });
            inferred.insert(gone.pid, (gone.group.clone(), now_secs));
            settled.push(SettledExit {
                group: gone.group.clone(),
                source: None,
                pid: gone.pid,
                comm: gone.comm.as_deref().unwrap_or("").to_owned(),
                reason: if oom {
                    ExitReason::OomKilled
                } else {
                    ExitReason::Unknown
                },
                status: None,
                at_secs: now_secs,
                earliest_secs: gone.last_seen_secs,
                started_secs: Some(gone.start_secs),
            });
            false
        });
    }
}

impl ExitAccounting {
    /// Forgets the exit records no vanished instance can claim: their process was not a
    /// top-level instance the last scan saw (`watched(group, pid)`), and no vanished
    /// instance is waiting for them. Most exits on a busy host are of processes no scan
    /// ever saw; keeping each for `REMEMBER_SECS` would hold tens of thousands.
    pub fn forget_unwatched(&mut self, watched: impl Fn(&str, u32) -> bool) {
        let waiting = &self.waiting;
        self.recorded.retain(|pid, record| {
            watched(&record.group, *pid) || waiting.iter().any(|(gone, _)| gone.pid == *pid)
        });
        shrink_map(&mut self.recorded);
    }
}

/// The kernel keeps 15 bytes of a comm; a longer one (from a rule's view) is cut alike.
fn same_comm(a: &str, b: &str) -> bool {
    let cut = |s: &str| -> Vec<u8> { s.bytes().take(15).collect() };
    cut(a) == cut(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::tracker::Comm;

    fn record(pid: u32, raw: u32, at_secs: f64) -> ExitRecord {
        ExitRecord {
            pid,
            comm: Comm::new(b"mysqld"),
            group: Arc::from("mysql"),
            source: NameSource::Rule,
            status: WaitStatus::from_exit_code(raw),
            boottime_ns: (at_secs * 1e9) as u64,
            top_level: true,
            started_ns: None,
        }
    }

    fn gone(pid: u32, last_seen_secs: f64) -> Vanished {
        Vanished {
            group: Arc::from("mysql"),
            pid,
            comm: Some(Arc::from("mysqld")),
            last_seen_secs,
            start_secs: 1.0,
        }
    }

    fn victim(pid: u32, at: f64) -> RecentVictim {
        RecentVictim {
            pid,
            comm: "mysqld".into(),
            uptime_secs: at,
        }
    }

    fn reasons(settled: &[SettledExit]) -> Vec<(u32, ExitReason)> {
        settled.iter().map(|s| (s.pid, s.reason)).collect()
    }

    #[test]
    fn an_event_settles_its_vanished_instance_exactly_once_in_any_order() {
        let mut accounting = ExitAccounting::default();
        // The event arrives before the scan that finds the instance gone.
        let first = accounting.settle(vec![record(10, 3 << 8, 99.0)], vec![], &[], 100.0, true);
        assert_eq!(reasons(&first), [(10, ExitReason::ExitedError)]);
        assert!(accounting
            .settle(vec![], vec![gone(10, 90.0)], &[], 115.0, true)
            .is_empty());
        // The scan finds it gone before the event is read.
        assert!(accounting
            .settle(vec![], vec![gone(11, 115.0)], &[], 130.0, true)
            .is_empty());
        let late = accounting.settle(vec![record(11, 0, 129.0)], vec![], &[], 145.0, true);
        assert_eq!(reasons(&late), [(11, ExitReason::ExitedOk)]);
        assert!(accounting
            .settle(vec![], vec![], &[], 160.0, true)
            .is_empty());
    }

    #[test]
    fn a_sigkill_waits_for_the_kernel_log_then_is_oom_killed_or_killed() {
        let mut accounting = ExitAccounting::default();
        assert!(accounting
            .settle(vec![record(20, 9, 199.5)], vec![], &[], 200.0, true)
            .is_empty());
        let named = accounting.settle(vec![], vec![], &[victim(20, 199.4)], 200.5, true);
        assert_eq!(reasons(&named), [(20, ExitReason::OomKilled)]);
        assert!(accounting
            .settle(vec![record(21, 9, 300.0)], vec![], &[], 300.5, true)
            .is_empty());
        let killed = accounting.settle(vec![], vec![], &[victim(20, 199.4)], 305.0, true);
        assert_eq!(reasons(&killed), [(21, ExitReason::Killed)]);
    }

    #[test]
    fn a_victim_of_another_comm_or_another_time_does_not_match() {
        let mut accounting = ExitAccounting::default();
        let other_comm = RecentVictim {
            comm: "java".into(),
            ..victim(30, 400.0)
        };
        let long_ago = victim(30, 100.0);
        let settled = accounting.settle(
            vec![record(30, 9, 400.0)],
            vec![],
            &[other_comm, long_ago],
            410.0,
            true,
        );
        assert_eq!(reasons(&settled), [(30, ExitReason::Killed)]);
    }

    #[test]
    fn without_a_listener_a_vanished_instance_is_inferred_at_once() {
        let mut accounting = ExitAccounting::default();
        let settled = accounting.settle(vec![], vec![gone(42, 500.0)], &[], 505.0, false);
        assert_eq!(reasons(&settled), [(42, ExitReason::Unknown)]);
        assert_eq!(accounting.inferred_total(), [1, 0]);
    }

    #[test]
    fn without_events_a_vanished_instance_is_inferred_after_a_while_and_not_again() {
        let mut accounting = ExitAccounting::default();
        assert!(accounting
            .settle(
                vec![],
                vec![gone(40, 500.0), gone(41, 500.0)],
                &[],
                515.0,
                true
            )
            .is_empty());
        // Scrapes in quick succession do not hurry the inference.
        assert!(accounting
            .settle(vec![], vec![], &[], 516.0, true)
            .is_empty());
        let inferred = accounting.settle(vec![], vec![], &[victim(41, 510.0)], 530.0, true);
        assert_eq!(
            reasons(&inferred),
            [(40, ExitReason::Unknown), (41, ExitReason::OomKilled)]
        );
        assert_eq!(inferred[0].source, None);
        assert_eq!(accounting.inferred_total(), [0, 2], "no event came");
        // The event, late: already counted.
        assert!(accounting
            .settle(vec![record(40, 0, 514.0)], vec![], &[], 545.0, true)
            .is_empty());
    }

    #[test]
    fn a_reparented_childs_exit_settles_its_vanished_instance_only() {
        let mut accounting = ExitAccounting::default();
        let child = ExitRecord {
            top_level: false,
            ..record(50, 11, 599.0)
        };
        assert!(
            accounting
                .settle(vec![child], vec![], &[], 600.0, true)
                .is_empty(),
            "not an instance on its own"
        );
        let settled = accounting.settle(vec![], vec![gone(50, 590.0)], &[], 615.0, true);
        assert_eq!(reasons(&settled), [(50, ExitReason::Crashed)]);
        // A worker no scan saw as an instance never counts.
        let worker = ExitRecord {
            top_level: false,
            ..record(51, 15, 620.0)
        };
        assert!(accounting
            .settle(vec![worker], vec![], &[], 621.0, true)
            .is_empty());
        assert!(accounting
            .settle(vec![], vec![], &[], 700.0, true)
            .is_empty());
    }

    #[test]
    fn records_no_vanished_instance_can_claim_are_forgotten() {
        let mut accounting = ExitAccounting::default();
        // pid 30 was a top-level instance the scan saw; pid 31 never was.
        let settled = accounting.settle(
            vec![record(30, 0, 99.0), record(31, 0, 99.0)],
            vec![],
            &[],
            100.0,
            true,
        );
        assert_eq!(settled.len(), 2);
        accounting.forget_unwatched(|_, pid| pid == 30);
        assert_eq!(accounting.recorded.len(), 1);
        // The watched one still settles its vanished instance without counting it twice.
        let later = accounting.settle(vec![], vec![gone(30, 99.0)], &[], 101.0, true);
        assert!(later.is_empty(), "{later:?}");
    }
}
