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
//! The new instance must start after the dead one was last seen alive, and within
//! `RESTART_WINDOW_SECS` of it: a service down longer was stopped, not restarted. A death
//! waits here for its reason (the exit accounting settles it within seconds) and for its
//! successor; both are persisted, so a restart while oomwatch itself was down counts once.
//! Times are seconds since boot. Owns this bookkeeping; must not know the group table's
//! caps or how exits are read.

use serde::{Deserialize, Serialize};

use super::table::InstanceKey;
use crate::exit_reason::ExitReason;

/// A new instance this long after the last one died is a start, not a restart.
pub const RESTART_WINDOW_SECS: f64 = 900.0;
/// Deaths and new instances kept per group while they wait; beyond, the oldest go.
const MAX_WAITING: usize = 64;
/// A new instance may be stamped this much before the dead one's last sighting (clock
/// ticks against the scan's uptime).
const START_TOLERANCE_SECS: f64 = 0.05;

/// What decides whether a replacement is a restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartRules {
    /// `--restarts.min-age`: a clean or unknown end younger than this is no restart.
    pub min_age_secs: f64,
    /// The group counts every re-start, clean ends included (`restarts: every`).
    pub every: bool,
}

/// A top-level instance that ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Death {
    #[serde(flatten)]
    key: InstanceKey,
    /// Uptime at the last scan that saw it alive.
    last_seen_secs: f64,
    /// How long it had lived then.
    lived_secs: f64,
    /// Another top-level instance of the group lived on when it ended.
    others_alive: bool,
    /// How it ended, once the exit accounting has settled it.
    reason: Option<ExitReason>,
}

/// A new top-level instance, not yet matched with a death.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Arrival {
    #[serde(flatten)]
    key: InstanceKey,
    start_secs: f64,
}

/// A restart counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restart {
    /// The new instance.
    pub key: InstanceKey,
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
}

impl RestartState {
    /// A top-level instance the last scan saw is gone.
    pub fn ended(
        &mut self,
        key: InstanceKey,
        last_seen_secs: f64,
        lived_secs: f64,
        others_alive: bool,
    ) {
        push_bounded(
            &mut self.deaths,
            Death {
                key,
                last_seen_secs,
                lived_secs,
                others_alive,
                reason: None,
            },
        );
    }

    /// A new top-level instance appeared. It can only replace a death already seen or
    /// still to be seen in this scan, so it waits only while a death does.
    pub fn started(&mut self, key: InstanceKey, start_secs: f64) {
        push_bounded(&mut self.arrivals, Arrival { key, start_secs });
    }

    /// The exit accounting settled how `pid` ended; true when it was one of these deaths.
    pub fn settled(&mut self, pid: u32, reason: ExitReason) -> bool {
        match self
            .deaths
            .iter_mut()
            .find(|d| d.key.pid == pid && d.reason.is_none())
        {
            Some(death) => {
                death.reason = Some(reason);
                true
            }
            None => false,
        }
    }

    /// Matches settled deaths with the new instances after them; returns the restarts.
    /// Deaths past the window without a successor, deaths that are no restart, and new
    /// instances that no waiting death can precede are forgotten.
    pub fn resolve(&mut self, now_secs: f64, rules: RestartRules) -> Vec<Restart> {
        let mut restarts = Vec::new();
        let arrivals = &mut self.arrivals;
        self.deaths.retain(|death| {
            let Some(reason) = death.reason else {
                return true; // its exit is not settled yet
            };
            if !counts_as_restart(death, reason, rules) {
                return false;
            }
            let successor = arrivals.iter().position(|a| {
                a.start_secs >= death.last_seen_secs - START_TOLERANCE_SECS
                    && a.start_secs - death.last_seen_secs <= RESTART_WINDOW_SECS
            });
            if let Some(index) = successor {
                let arrival = arrivals.remove(index);
                restarts.push(Restart {
                    key: arrival.key,
                    gap_secs: (arrival.start_secs - death.last_seen_secs).max(0.0),
                    after: reason,
                });
                return false;
            }
            now_secs - death.last_seen_secs <= RESTART_WINDOW_SECS
        });
        let deaths = &self.deaths;
        arrivals.retain(|a| {
            deaths
                .iter()
                .any(|d| a.start_secs >= d.last_seen_secs - START_TOLERANCE_SECS)
        });
        restarts
    }

    /// Forgets what belongs to the previous boot (instances and their uptime stamps).
    pub fn start_new_boot(&mut self) {
        self.deaths.clear();
        self.arrivals.clear();
    }

    /// Nothing is waiting.
    pub fn is_idle(&self) -> bool {
        self.deaths.is_empty() && self.arrivals.is_empty()
    }
}

/// Whether a death, replaced, is a restart.
fn counts_as_restart(death: &Death, reason: ExitReason, rules: RestartRules) -> bool {
    let lived = death.lived_secs >= rules.min_age_secs;
    if reason.is_abnormal() {
        true
    } else if reason == ExitReason::Unknown {
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
    };

    fn key(pid: u32) -> InstanceKey {
        InstanceKey {
            pid,
            start_ticks: u64::from(pid),
        }
    }

    /// One cycle: the instance `pid` lived `lived` s, died at `at`, ended by `reason`, and
    /// its successor started 2 s later.
    fn cycle(
        state: &mut RestartState,
        pid: u32,
        at: f64,
        lived: f64,
        reason: ExitReason,
    ) -> Vec<Restart> {
        state.ended(key(pid), at, lived, false);
        state.started(key(pid + 1), at + 2.0);
        assert!(state.settled(pid, reason));
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
            assert_eq!(restarts[0].gap_secs, 2.0);
            assert_eq!(restarts[0].after, reason);
            assert!(state.is_idle());
        }
    }

    #[test]
    fn a_clean_end_is_no_restart_unless_the_group_counts_every_one() {
        let mut state = RestartState::default();
        for reason in [ExitReason::ExitedOk, ExitReason::Terminated] {
            assert!(cycle(&mut state, 20, 100.0, 35.0, reason).is_empty());
        }
        assert!(state.is_idle(), "nothing left waiting");
        let every = RestartRules {
            every: true,
            ..RULES
        };
        state.ended(key(30), 200.0, 35.0, false);
        state.started(key(31), 201.0);
        state.settled(30, ExitReason::ExitedOk);
        assert_eq!(state.resolve(202.0, every).len(), 1);
        // Too young for the anti-noise age.
        state.ended(key(40), 300.0, 3.0, false);
        state.started(key(41), 301.0);
        state.settled(40, ExitReason::ExitedOk);
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
        state.ended(key(70), 300.0, 65.0, true);
        state.started(key(71), 302.0);
        state.settled(70, ExitReason::Unknown);
        assert!(
            state.resolve(303.0, RULES).is_empty(),
            "another instance lived on"
        );
    }

    #[test]
    fn a_death_waits_for_its_reason_and_its_successor() {
        let mut state = RestartState::default();
        state.ended(key(80), 100.0, 6.0, false);
        state.started(key(81), 101.0);
        assert!(
            state.resolve(101.5, RULES).is_empty(),
            "the reason is not known yet"
        );
        state.settled(80, ExitReason::OomKilled);
        assert_eq!(state.resolve(104.0, RULES).len(), 1);
        // The successor is seen only after the reason.
        state.ended(key(90), 200.0, 6.0, false);
        state.settled(90, ExitReason::Crashed);
        assert!(state.resolve(201.0, RULES).is_empty());
        state.started(key(91), 205.0);
        assert_eq!(state.resolve(206.0, RULES).len(), 1);
    }

    #[test]
    fn a_service_down_past_the_window_was_stopped_and_a_first_start_is_none() {
        let mut state = RestartState::default();
        state.started(key(1), 10.0);
        assert!(state.resolve(11.0, RULES).is_empty());
        assert!(state.is_idle(), "a first start waits for nothing");
        state.ended(key(2), 100.0, 6.0, false);
        state.settled(2, ExitReason::Killed);
        assert!(state.resolve(101.0, RULES).is_empty());
        assert!(state
            .resolve(100.0 + RESTART_WINDOW_SECS + 1.0, RULES)
            .is_empty());
        state.started(key(3), 100.0 + RESTART_WINDOW_SECS + 2.0);
        assert!(state
            .resolve(100.0 + RESTART_WINDOW_SECS + 3.0, RULES)
            .is_empty());
    }

    #[test]
    fn waiting_lists_are_bounded() {
        let mut state = RestartState::default();
        for pid in 0..200 {
            state.ended(key(pid), f64::from(pid), 1.0, false);
            state.started(key(pid + 1000), f64::from(pid));
        }
        assert!(state.deaths.len() <= MAX_WAITING && state.arrivals.len() <= MAX_WAITING);
    }
}
