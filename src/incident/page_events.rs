//! What the incident page shows of the event log, gathered in one pass over its lines with
//! bounded memory whatever the log's size: the last 24 hours in counts (a burst record
//! counts as the exits or restarts it stands for), the latest OOM kills (the kernel's and
//! userspace killers'), the newest events of the timeline (clean exits left out), and
//! whether compactions dropped events of the last 24 hours (the counts are then a floor).
//! Owns that selection; must not read the log (`events::EventLog::visit` feeds it) or
//! render HTML (`page`).

use crate::events::recent::RecentLines;
use crate::events::retention::Trimmed;
use crate::events::{Event, LogLine};

/// Events shown in the timeline; the API has the rest.
pub const TIMELINE_EVENTS: usize = 30;
/// OOM kills (the kernel's and userspace killers') shown in their own section.
pub const LATEST_KILLS: usize = 5;
const DAY_SECONDS: f64 = 86_400.0;

/// Counts of the last 24 hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub oom_kills: u64,
    pub userspace_kills: u64,
    pub restarts: u64,
    pub exits: u64,
    pub clean_exits: u64,
    pub reboots: u64,
}

/// The page's view of the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageEvents {
    pub day: DayCounts,
    /// The newest OOM kills, the kernel's and userspace killers', newest first.
    pub latest_kills: Vec<Event>,
    /// The newest events but clean exits, newest first.
    pub timeline: Vec<Event>,
    /// Events in the log (bursts count as one line).
    pub total: usize,
    /// Lines that are not events.
    pub skipped: usize,
    /// Kinds of which compactions dropped events of the last 24 hours, with the time
    /// before which the log is incomplete.
    pub incomplete: Vec<(String, f64)>,
}

/// Gathers a `PageEvents` from lines given oldest first.
#[derive(Debug)]
pub struct Gatherer {
    day_ago: f64,
    day: DayCounts,
    kills: RecentLines,
    timeline: RecentLines,
    total: usize,
}

impl Gatherer {
    pub fn new(now: f64) -> Self {
        Self {
            day_ago: now - DAY_SECONDS,
            day: DayCounts::default(),
            kills: RecentLines::new(LATEST_KILLS),
            timeline: RecentLines::new(TIMELINE_EVENTS),
            total: 0,
        }
    }

    /// Takes the next line.
    pub fn offer(&mut self, line: &LogLine<'_>) {
        let head = &line.head;
        self.total += 1;
        if head.time >= self.day_ago {
            let count = match head.counts_as() {
                "oom_kill" => Some(&mut self.day.oom_kills),
                "userspace_kill" => Some(&mut self.day.userspace_kills),
                "restart" => Some(&mut self.day.restarts),
                "exit" => Some(&mut self.day.exits),
                "reboot" => Some(&mut self.day.reboots),
                _ => None,
            };
            if let Some(count) = count {
                *count += head.weight();
            }
            self.day.clean_exits += u64::from(head.is_clean_exit());
        }
        if head.is_clean_exit() {
            return;
        }
        if head.kind == "oom_kill" || head.kind == "userspace_kill" {
            self.kills.push(line.raw);
        }
        self.timeline.push(line.raw);
    }

    /// The page's view; `skipped` lines were not events, `trimmed` is what compactions
    /// dropped.
    pub fn finish(self, skipped: usize, trimmed: &Trimmed) -> PageEvents {
        let (kills, _) = self.kills.into_events();
        let (timeline, unparsed) = self.timeline.into_events();
        PageEvents {
            day: self.day,
            latest_kills: kills.into_iter().rev().collect(),
            timeline: timeline.into_iter().rev().collect(),
            total: self.total,
            skipped: skipped + unparsed,
            incomplete: trimmed
                .incomplete_since(self.day_ago)
                .into_iter()
                .map(|(kind, through)| (kind.to_owned(), through))
                .collect(),
        }
    }
}

impl crate::events::shared_scan::Accumulate for Gatherer {
    fn offer(&mut self, line: &LogLine<'_>) {
        Gatherer::offer(self, line);
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl PageEvents {
    /// The view of events held in memory, oldest first (for tests and tools).
    pub fn from_events(events: &[Event], now: f64) -> Self {
        let mut text = Vec::new();
        for event in events {
            if serde_json::to_writer(&mut text, event).is_ok() {
                text.push(b'\n');
            }
        }
        let mut gatherer = Gatherer::new(now);
        let skipped = crate::events::lines::for_each_event(&text[..], |line| {
            gatherer.offer(line);
            Ok(())
        })
        .unwrap_or(0);
        gatherer.finish(skipped, &Trimmed::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::fixtures::{exit, kill};
    use crate::events::EventKind;
    use crate::exit_reason::ExitReason;

    #[test]
    fn counts_the_day_and_keeps_the_newest_few() {
        let now = 1_700_100_000.0;
        let mut events = vec![kill(1, "api", now - 2.0 * DAY_SECONDS)];
        for pid in 2..50 {
            events.push(kill(pid, "api", now - 100.0 + f64::from(pid)));
        }
        events.push(Event {
            time: now - 10.0,
            kind: EventKind::exit("sh", 99, "sh", ExitReason::ExitedOk, None),
        });
        events.push(Event {
            time: now - 5.0,
            kind: EventKind::Burst {
                group: "sleep".into(),
                of: "exit".into(),
                count: 1234,
                reasons: Default::default(),
                since: now - 60.0,
            },
        });
        events.push(exit(7));
        let page = PageEvents::from_events(&events, now);
        assert_eq!(
            page.day.oom_kills, 48,
            "the kill of two days ago is not counted"
        );
        assert_eq!((page.day.exits, page.day.clean_exits), (1 + 1234, 1));
        assert_eq!(page.latest_kills.len(), LATEST_KILLS);
        assert_eq!(page.latest_kills[0].kind.process().map(|p| p.0), Some(49));
        assert_eq!(page.timeline.len(), TIMELINE_EVENTS);
        assert_eq!(page.timeline[0], exit(7));
        assert_eq!(page.timeline[1].kind.type_name(), "burst");
        assert_eq!(page.total, events.len());
    }

    #[test]
    fn a_userspace_kill_is_counted_and_listed_with_the_kills() {
        let now = 1_700_100_000.0;
        let userspace = Event {
            time: now - 30.0,
            kind: EventKind::UserspaceKill {
                group: "squeezed.service".into(),
                killer: "systemd-oomd".into(),
                cgroup: "/pressure.slice/squeezed.service".into(),
                reason: "memory-pressure".into(),
            },
        };
        let events = [kill(3, "api", now - 60.0), userspace.clone(), exit(7)];
        let page = PageEvents::from_events(&events, now);
        assert_eq!((page.day.oom_kills, page.day.userspace_kills), (1, 1));
        assert_eq!(page.latest_kills.len(), 2);
        assert_eq!(page.latest_kills[0], userspace);
        assert_eq!(page.latest_kills[1].kind.type_name(), "oom_kill");
    }
}
