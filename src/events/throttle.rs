//! The per-group rate limit on exits and restarts entering the event log. A group may log
//! `BURST` of each at once and `RATE_PER_MINUTE` a minute after that; beyond, its exits
//! (or restarts) are counted, by reason, and written as one `burst` record ("1,234 more
//! exits: 1,200 killed, 34 crashed") per group and minute at most. A process churning
//! hundreds of exits a second then costs the log a line a minute, and the metrics keep
//! every count. OOM kills and reboots are never limited. Owns the buckets and the
//! tallies, bounded in number; must not write the log.

use std::collections::{BTreeMap, HashMap};

use super::model::{Event, EventKind};

/// Exits (or restarts) of one group logged one by one before the limit applies.
const BURST: f64 = 20.0;
/// Then this many a minute.
const RATE_PER_MINUTE: f64 = 20.0;
/// A tally is written once it is this old (seconds), and then a new one starts.
const TALLY_SECONDS: f64 = 60.0;
/// Groups tracked at once; beyond, idle ones are forgotten and tallies written early.
const MAX_BUCKETS: usize = 1024;

/// The rate limit and its tallies.
#[derive(Debug, Default)]
pub struct Throttle {
    buckets: HashMap<(String, Limited), Bucket>,
}

/// The event kinds that are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Limited {
    Exit,
    Restart,
}

impl Limited {
    fn of(kind: &EventKind) -> Option<(Self, &str)> {
        match kind {
            EventKind::Exit { group, .. } => Some((Limited::Exit, group)),
            EventKind::Restart { group, .. } => Some((Limited::Restart, group)),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Limited::Exit => "exit",
            Limited::Restart => "restart",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: f64,
    tally: Option<Tally>,
}

#[derive(Debug)]
struct Tally {
    count: u64,
    reasons: BTreeMap<String, u64>,
    since: f64,
    last: f64,
}

impl Throttle {
    /// Whether `event` is logged now; when not, it is counted in its group's tally.
    pub fn admit(&mut self, event: &Event) -> bool {
        let Some((limited, group)) = Limited::of(&event.kind) else {
            return true;
        };
        let key = (group.to_owned(), limited);
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: BURST,
            refilled_at: event.time,
            tally: None,
        });
        let elapsed = (event.time - bucket.refilled_at).max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * RATE_PER_MINUTE / 60.0).min(BURST);
        bucket.refilled_at = bucket.refilled_at.max(event.time);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        let tally = bucket.tally.get_or_insert(Tally {
            count: 0,
            reasons: BTreeMap::new(),
            since: event.time,
            last: event.time,
        });
        tally.count += 1;
        tally.last = tally.last.max(event.time);
        if let EventKind::Exit { reason, .. } = &event.kind {
            *tally.reasons.entry(reason.label().to_owned()).or_default() += 1;
        }
        false
    }

    /// The tallies due at `now` (a minute old), as burst records; with `all`, every
    /// tally (the exporter is stopping). Idle buckets are forgotten when too many.
    pub fn due(&mut self, now: f64, all: bool) -> Vec<Event> {
        let crowded = self.buckets.len() > MAX_BUCKETS;
        let mut records = Vec::new();
        for ((group, limited), bucket) in &mut self.buckets {
            let ripe = bucket
                .tally
                .as_ref()
                .is_some_and(|t| all || crowded || now - t.since >= TALLY_SECONDS);
            if ripe {
                if let Some(tally) = bucket.tally.take() {
                    records.push(burst(group, *limited, tally));
                }
            }
        }
        if crowded {
            self.buckets.retain(|_, bucket| {
                let elapsed = (now - bucket.refilled_at).max(0.0);
                bucket.tokens + elapsed * RATE_PER_MINUTE / 60.0 < BURST
            });
            if self.buckets.len() > MAX_BUCKETS {
                self.buckets.clear();
            }
        }
        records.sort_by(|a, b| a.time.total_cmp(&b.time));
        records
    }
}

fn burst(group: &str, limited: Limited, tally: Tally) -> Event {
    Event {
        time: tally.last,
        kind: EventKind::Burst {
            group: group.to_owned(),
            of: limited.name().to_owned(),
            count: tally.count,
            reasons: tally.reasons,
            since: tally.since,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_reason::ExitReason;

    fn exit(group: &str, time: f64, reason: ExitReason) -> Event {
        Event {
            time,
            kind: EventKind::exit(group, 1, "sleep", reason, None),
        }
    }

    #[test]
    fn a_churning_group_logs_a_burst_then_a_tally_a_minute() {
        let mut throttle = Throttle::default();
        // 390 exits a second for 10 s, as `while :; do sleep 100 & kill $!; done` makes.
        let mut logged = 0;
        for i in 0..3900 {
            let time = 1000.0 + f64::from(i) / 390.0;
            let reason = if i % 2 == 0 {
                ExitReason::Killed
            } else {
                ExitReason::Terminated
            };
            logged += usize::from(throttle.admit(&exit("churn", time, reason)));
        }
        // The burst of 20, then 20 a minute: ~3 more in 10 s.
        assert!((20..=24).contains(&logged), "{logged}");
        assert!(
            throttle.due(1005.0, false).is_empty(),
            "not a minute old yet"
        );
        // Another group is not limited by this one.
        assert!(throttle.admit(&exit("db", 1010.0, ExitReason::Crashed)));
        let records = throttle.due(1061.0, false);
        assert_eq!(records.len(), 1);
        let EventKind::Burst {
            group,
            of,
            count,
            reasons,
            since,
        } = &records[0].kind
        else {
            panic!("not a burst: {records:?}");
        };
        assert_eq!((group.as_str(), of.as_str()), ("churn", "exit"));
        assert_eq!(*count as usize, 3900 - logged);
        assert_eq!(reasons.values().sum::<u64>(), *count);
        assert!(reasons.contains_key("killed") && reasons.contains_key("terminated"));
        assert!(*since > 1000.0 && records[0].time < 1010.0);
        assert!(throttle.due(1200.0, true).is_empty(), "written once");
    }

    #[test]
    fn kills_and_reboots_are_never_limited_and_buckets_stay_bounded() {
        let mut throttle = Throttle::default();
        for i in 0..10_000 {
            let kill = crate::events::model::fixtures::kill(i, "api", 5.0);
            assert!(throttle.admit(&kill));
        }
        for i in 0..(MAX_BUCKETS as u32 * 3) {
            for _ in 0..30 {
                throttle.admit(&exit(&format!("g{i}"), 1.0, ExitReason::Killed));
            }
        }
        let records = throttle.due(2.0, false);
        assert_eq!(records.len(), MAX_BUCKETS * 3, "every tally written early");
        assert!(throttle.buckets.len() <= MAX_BUCKETS);
    }
}
