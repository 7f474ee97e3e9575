//! Restart detection for one group: which ended top-level instances were replaced by a
//! new one, and which of those replacements are restarts an SRE pages on.
//!
//! A restart is a new top-level instance after an abnormal end (`oom_killed`, `killed`,
//! `crashed`, `other_signal`, `exited_error`), whatever the old instance's age: the
//! watchdog case, "PID present, PID gone, NOT running, started again", even when the
//! service is OOM-killed seconds after each start. An instance that ended cleanly
//! (`exited_ok`, or `terminated`: asked to stop) is not restarted when another starts: a
//! shell loop running a command again is no crash loop. A configured group may opt in to
//! count every re-start (`restarts: every`); then a clean end counts too, when the instance
//! had lived `--restarts.min-age`. An end whose reason is not known (`unknown`: no exit
//! event) counts when the instance had lived `--restarts.min-age` and no other top-level
//! instance of the group lived on (one shell of many closing is not a restart).
//!
//! Deaths come from the exit accounting, each once with its reason, whether a scan ever
//! saw the instance or not (a service killed seconds after each start lives and dies
//! between two scrapes). New instances come from scans and from the process-events
//! listener's starts (an exec into the group under a parent of another group), the same
//! instance counted once. The new instance must start after the dead one ended (or was
//! last seen alive, for an end inferred from a scan), and within `RESTART_WINDOW_SECS` of
//! it: a service down longer was stopped, not restarted. A death waits here for its
//! successor, persisted, so a restart while oomwatch itself was down counts once. Times
//! are seconds since boot. Owns this bookkeeping; must not know the group table's caps or
//! how exits are read.

use serde::{Deserialize, Serialize};

use crate::exit_reason::{ExitReason, MIN_SERVICE_SECS};

/// A new instance this long after the last one died is a start, not a restart.
pub const RESTART_WINDOW_SECS: f64 = 900.0;
/// Deaths and new instances kept per group while they wait; beyond, the oldest go.
const MAX_WAITING: usize = 64;
/// A new instance may be stamped this much before the dead one's end (clock ticks against
/// event stamps).
const START_TOLERANCE_SECS: f64 = 0.05;
/// How long a new instance waits, from when it was noted, for the death it may follow to
/// be settled: the exit accounting settles a death within `INFER_AFTER_SECS` (5 s) of the
/// scan that found the instance gone.
const ARRIVAL_WAIT_SECS: f64 = 120.0;

/// What decides whether a replacement is a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartRules {
    /// `--restarts.min-age`: a clean or unknown end younger than this is no restart.
    pub min_age_secs: f64,
    /// The group counts every re-start, clean ends included (`restarts: every`).
    pub every: bool,
    /// Named in the config file: any non-zero exit is a failure of its service. For an
    /// automatic group, only one after `MIN_SERVICE_SECS` (a command failing at once is no
    /// crash).
    pub configured: bool,
}

/// A top-level instance that ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Death {
    pid: u32,
    /// When it ended, or the last time it was seen alive when the end was inferred.
    ended_secs: f64,
    /// How long it had lived, when known.
    lived_secs: Option<f64>,
    /// Another top-level instance of the group lived on when it ended.
    others_alive: bool,
    reason: ExitReason,
}

/// A new top-level instance, not yet matched with a death.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Arrival {
    pid: u32,
    start_secs: f64,
    /// When it was noted (a scan's uptime): it waits `ARRIVAL_WAIT_SECS` from then.
    #[serde(default)]
    noted_secs: f64,
}

/// A restart counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restart {
    /// The new instance, and when it started (seconds since boot).
    pub pid: u32,
    pub start_secs: f64,
    /// From the dead instance's last sighting to the new one's start.
    pub gap_secs: f64,
    /// How the dead instance ended.
    pub after: ExitReason,
}

/// One group's deaths and new instances waiting to be matched; persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartState {
    #[serde(default)]
    deaths: Vec<Death>,
    #[serde(default)]
    arrivals: Vec<Arrival>,
    /// New instances already matched: a start seen again (by a scan after the listener,
    /// say) is not a new arrival.
    #[serde(default)]
    matched: Vec<Arrival>,
}

/// One end of a top-level instance, as the exit accounting settled it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    pub pid: u32,
    /// When it ended, or the last time it was seen alive when the end was inferred.
    pub ended_secs: f64,
    /// How long it had lived, when known.
    pub lived_secs: Option<f64>,
    /// Another top-level instance of the group lived on.
    pub others_alive: bool,
    pub reason: ExitReason,
}

impl RestartState {
    /// A top-level instance ended; it may be replaced.
    pub fn ended(&mut self, end: Ended) {
        push_bounded(
            &mut self.deaths,
            Death {
                pid: end.pid,
                ended_secs: end.ended_secs,
                lived_secs: end.lived_secs,
                others_alive: end.others_alive,
                reason: end.reason,
            },
        );
    }

    /// A new top-level instance that started at `start_secs` was noted at `now_secs` (by a
    /// scan, or from the listener's starts); the same instance reported twice counts once.
    pub fn started(&mut self, pid: u32, start_secs: f64, now_secs: f64) {
        let same = |a: &Arrival| a.pid == pid && (a.start_secs - start_secs).abs() < 1.0;
        if self.arrivals.iter().any(same) || self.matched.iter().any(same) {
            return;
        }
        let arrival = Arrival {
            pid,
            start_secs,
            noted_secs: now_secs,
        };
        push_bounded(&mut self.arrivals, arrival);
    }

    /// Matches deaths with the new instances after them; returns the restarts. Deaths past
    /// the window without a successor, deaths that are no restart, and new instances that
    /// no waiting death can precede are forgotten.
    pub fn resolve(&mut self, now_secs: f64, rules: RestartRules) -> Vec<Restart> {
        let mut restarts = Vec::new();
        let (arrivals, matched) = (&mut self.arrivals, &mut self.matched);
        self.deaths.retain(|death| {
            if !counts_as_restart(death, rules) {
                return false;
            }
            let successor = arrivals.iter().position(|a| {
                a.start_secs >= death.ended_secs - START_TOLERANCE_SECS
                    && a.start_secs - death.ended_secs <= RESTART_WINDOW_SECS
            });
            if let Some(index) = successor {
                let arrival = arrivals.remove(index);
                push_bounded(matched, arrival);
                restarts.push(Restart {
                    pid: arrival.pid,
                    start_secs: arrival.start_secs,
                    gap_secs: (arrival.start_secs - death.ended_secs).max(0.0),
                    after: death.reason,
                });
                return false;
            }
            now_secs - death.ended_secs <= RESTART_WINDOW_SECS
        });
        // A new instance can only follow a death that has been or will be settled: keep
        // it while the window after its start lasts (its predecessor's exit may be settled
        // up to a few seconds after the scan that saw it start).
        arrivals.retain(|a| now_secs - a.noted_secs <= ARRIVAL_WAIT_SECS);
        restarts
    }

    /// Forgets what belongs to the previous boot (instances and their uptime stamps).
    pub fn start_new_boot(&mut self) {
        self.deaths.clear();
        self.arrivals.clear();
        self.matched.clear();
    }

    /// No death is waiting for a successor.
    pub fn is_idle(&self) -> bool {
        self.deaths.is_empty()
    }
}

/// Whether a death, replaced, is a restart.
fn counts_as_restart(death: &Death, rules: RestartRules) -> bool {
    let lived = death.lived_secs.is_some_and(|l| l >= rules.min_age_secs);
    if death.reason == ExitReason::ExitedError && !rules.configured {
        death.lived_secs.is_some_and(|l| l >= MIN_SERVICE_SECS)
    } else if death.reason.is_abnormal() {
        true
    } else if death.reason == ExitReason::Unknown {
        lived && !death.others_alive
    } else {
        rules.every && lived && !death.others_alive
    }
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_WAITING {
        list.remove(0);
    }
    list.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: RestartRules = RestartRules {
        min_age_secs: 30.0,
        every: false,
        configured: false,
    };

    fn end(pid: u32, at: f64, lived: f64, reason: ExitReason) -> Ended {
        Ended {
            pid,
            ended_secs: at,
            lived_secs: Some(lived),
            others_alive: false,
            reason,
        }
    }

    /// One cycle: the instance `pid` lived `lived` s, ended at `at` by `reason`, and its
    /// successor started 2 s later.
    fn cycle(
        state: &mut RestartState,
        pid: u32,
        at: f64,
        lived: f64,
        reason: ExitReason,
    ) -> Vec<Restart> {
        state.ended(end(pid, at, lived, reason));
        state.started(pid + 1, at + 2.0, at + 2.0);
        state.resolve(at + 3.0, RULES)
    }

    #[test]
    fn an_abnormal_end_is_a_restart_whatever_the_instance_lived() {
        for reason in [
            ExitReason::OomKilled,
            ExitReason::Killed,
            ExitReason::Crashed,
            ExitReason::OtherSignal,
            ExitReason::ExitedError,
        ] {
            let mut state = RestartState::default();
            let restarts = cycle(&mut state, 10, 100.0, 6.0, reason);
            assert_eq!(restarts.len(), 1, "{reason:?}");
            assert_eq!((restarts[0].pid, restarts[0].gap_secs), (11, 2.0));
            assert_eq!(restarts[0].after, reason);
            assert!(state.deaths.is_empty() && state.arrivals.is_empty());
        }
    }

    #[test]
    fn a_command_failing_at_once_is_no_restart_of_an_automatic_group() {
        let mut state = RestartState::default();
        // `pgrep` finding nothing, in a loop.
        assert!(cycle(&mut state, 10, 100.0, 0.01, ExitReason::ExitedError).is_empty());
        let configured = RestartRules {
            configured: true,
            ..RULES
        };
        state.ended(end(20, 200.0, 0.01, ExitReason::ExitedError));
        state.started(21, 200.5, 200.5);
        assert_eq!(state.resolve(201.0, configured).len(), 1);
    }

    #[test]
    fn a_clean_end_is_no_restart_unless_the_group_counts_every_one() {
        let mut state = RestartState::default();
        for reason in [ExitReason::ExitedOk, ExitReason::Terminated] {
            assert!(cycle(&mut state, 20, 100.0, 35.0, reason).is_empty());
        }
        assert!(state.deaths.is_empty(), "no death left waiting");
        let every = RestartRules {
            every: true,
            ..RULES
        };
        state.ended(end(30, 200.0, 35.0, ExitReason::ExitedOk));
        state.started(31, 201.0, 201.0);
        assert_eq!(state.resolve(202.0, every).len(), 1);
        // Too young for the anti-noise age, or of unknown age.
        state.ended(end(40, 300.0, 3.0, ExitReason::ExitedOk));
        state.ended(Ended {
            lived_secs: None,
            ..end(42, 300.0, 0.0, ExitReason::ExitedOk)
        });
        state.started(41, 301.0, 301.0);
        assert!(state.resolve(302.0, every).is_empty());
    }

    #[test]
    fn an_unknown_end_counts_only_for_a_long_lived_sole_instance() {
        let mut state = RestartState::default();
        assert!(cycle(&mut state, 50, 100.0, 5.0, ExitReason::Unknown).is_empty());
        assert_eq!(
            cycle(&mut state, 60, 200.0, 65.0, ExitReason::Unknown).len(),
            1
        );
        state.ended(Ended {
            others_alive: true,
            ..end(70, 300.0, 65.0, ExitReason::Unknown)
        });
        state.started(71, 302.0, 302.0);
        assert!(
            state.resolve(303.0, RULES).is_empty(),
            "another instance lived on"
        );
    }

    #[test]
    fn a_successor_seen_before_its_predecessors_end_is_settled_still_pairs() {
        let mut state = RestartState::default();
        // The scan sees the new instance; the old one's exit is settled 5 s later.
        state.started(81, 101.0, 101.0);
        assert!(state.resolve(101.5, RULES).is_empty());
        state.ended(end(80, 100.0, 6.0, ExitReason::OomKilled));
        assert_eq!(state.resolve(106.0, RULES).len(), 1);
        // The same instance reported again (the listener, then a scan): no second arrival.
        state.started(81, 101.2, 101.2);
        state.ended(end(90, 200.0, 6.0, ExitReason::Crashed));
        assert!(state.resolve(201.0, RULES).is_empty());
        state.started(91, 205.0, 205.0);
        assert_eq!(state.resolve(206.0, RULES).len(), 1);
    }

    #[test]
    fn a_service_down_past_the_window_was_stopped_and_a_first_start_is_none() {
        let mut state = RestartState::default();
        state.started(1, 10.0, 10.0);
        assert!(state.resolve(11.0, RULES).is_empty());
        state.ended(end(2, 100.0, 6.0, ExitReason::Killed));
        assert!(
            state.resolve(101.0, RULES).is_empty(),
            "a start before the death is none"
        );
        assert!(state
            .resolve(100.0 + RESTART_WINDOW_SECS + 1.0, RULES)
            .is_empty());
        state.started(
            3,
            100.0 + RESTART_WINDOW_SECS + 2.0,
            100.0 + RESTART_WINDOW_SECS + 2.0,
        );
        assert!(state
            .resolve(100.0 + RESTART_WINDOW_SECS + 3.0, RULES)
            .is_empty());
    }

    #[test]
    fn waiting_lists_are_bounded() {
        let mut state = RestartState::default();
        for pid in 0..200 {
            state.ended(end(pid, f64::from(pid), 1.0, ExitReason::Killed));
            state.started(pid + 1000, f64::from(pid) - 10.0, f64::from(pid));
        }
        assert!(state.deaths.len() <= MAX_WAITING && state.arrivals.len() <= MAX_WAITING);
    }
}
