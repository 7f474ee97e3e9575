//! Which events a reader wants: by type, group and time, the newest `limit`; and the
//! parsing of those choices from flags and query parameters, each error naming the flag or
//! parameter. Pure; must not read the log.

use super::lines::LogLine;
use super::model::{Event, EventHead, EVENT_TYPES};
use super::recent::RecentLines;

/// Which events a reader wants: by type, group and time; the newest `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Types to keep (`EVENT_TYPES`); empty keeps every type.
    pub types: Vec<String>,
    /// Keep the events of this group only (host events have none and are left out).
    pub group: Option<String>,
    /// Keep events at or after this time, seconds since the epoch.
    pub since: Option<f64>,
    /// Keep events at or before this time.
    pub until: Option<f64>,
    /// Keep the newest this many.
    pub limit: Option<usize>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        let kind = &event.kind;
        (self.types.is_empty() || self.types.iter().any(|t| t == kind.type_name()))
            && self
                .group
                .as_deref()
                .is_none_or(|group| kind.group() == Some(group))
            && self.since.is_none_or(|since| event.time >= since)
            && self.until.is_none_or(|until| event.time <= until)
    }

    /// `matches` on a line's head, before the event is built.
    pub fn matches_head(&self, head: &EventHead<'_>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| *t == head.kind))
            && self
                .group
                .as_deref()
                .is_none_or(|group| head.group.as_deref() == Some(group))
            && self.since.is_none_or(|since| head.time >= since)
            && self.until.is_none_or(|until| head.time <= until)
    }

    /// The matching events, oldest first, the newest `limit` of them.
    pub fn apply(&self, events: Vec<Event>) -> Vec<Event> {
        let mut kept: Vec<Event> = events.into_iter().filter(|e| self.matches(e)).collect();
        if let Some(limit) = self.limit {
            kept.drain(..kept.len().saturating_sub(limit));
        }
        kept
    }
}

/// The newest `limit` events a filter keeps, gathered from lines given oldest first:
/// memory is bounded by `limit` (or `cap` without one), whatever the log's size. Lines
/// are kept as read and parsed at the end (`RecentLines`), so a pass parses only what is
/// answered.
#[derive(Debug)]
pub struct Newest {
    filter: EventFilter,
    kept: RecentLines,
    /// Lines whose head matched, before `limit`.
    pub matched: usize,
}

impl Newest {
    /// Gathers for `filter`, keeping at most `cap` events.
    pub fn new(filter: EventFilter, cap: usize) -> Self {
        Self {
            kept: RecentLines::new(filter.limit.unwrap_or(cap).min(cap)),
            filter,
            matched: 0,
        }
    }

    /// Offers the next line.
    pub fn offer(&mut self, line: &LogLine<'_>) {
        if self.filter.matches_head(&line.head) {
            self.matched += 1;
            self.kept.push(line.raw);
        }
    }

    /// The events kept, oldest first, and how many kept lines did not parse as a whole
    /// (they are not counted in `matched` either).
    pub fn into_events(self) -> (Vec<Event>, usize) {
        self.kept.into_events()
    }
}

impl super::shared_scan::Accumulate for Newest {
    fn offer(&mut self, line: &LogLine<'_>) {
        Newest::offer(self, line);
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// Why a filter's value was refused; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{name} {value:?}: unknown event type; use oom_kill, userspace_kill, restart, exit, reboot or burst")]
    Type { name: &'static str, value: String },
    #[error("{name} {value:?}: use a duration back from now (90s, 15m, 1h, 7d) or seconds since the epoch")]
    Time { name: &'static str, value: String },
}

/// Parses a comma-separated list of event types; `name` is the flag or parameter.
pub fn parse_types(name: &'static str, value: &str) -> Result<Vec<String>, FilterError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match EVENT_TYPES.contains(&t) {
            true => Ok(t.to_owned()),
            false => Err(FilterError::Type {
                name,
                value: t.to_owned(),
            }),
        })
        .collect()
}

/// Parses a point in time: a duration back from `now` (`1h`, `30m`, `1h30m`) or seconds
/// since the epoch (`1700000000`, `1700000000.5`). `name` is the flag or parameter.
pub fn parse_time(name: &'static str, value: &str, now: f64) -> Result<f64, FilterError> {
    let error = || FilterError::Time {
        name,
        value: value.to_owned(),
    };
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return value
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(error);
    }
    crate::duration::parse_duration(name, value)
        .map(|ago| now - ago.as_secs_f64())
        .map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::fixtures::{exit, kill};

    #[test]
    fn the_filter_keeps_type_group_time_and_the_newest() {
        let events = vec![
            kill(1, "api", 100.0),
            exit(2),
            kill(3, "db", 300.0),
            kill(4, "api", 400.0),
        ];
        let by_group = EventFilter {
            group: Some("api".into()),
            ..EventFilter::default()
        };
        let pids = |kept: Vec<Event>| -> Vec<u32> {
            kept.iter()
                .filter_map(|e| e.kind.process().map(|(pid, _)| pid))
                .collect()
        };
        assert_eq!(pids(by_group.apply(events.clone())), [1, 4]);
        let kills_since = EventFilter {
            types: parse_types("type", "oom_kill").expect("types"),
            since: Some(parse_time("since", "300", 0.0).expect("time")),
            ..EventFilter::default()
        };
        assert_eq!(pids(kills_since.apply(events.clone())), [3, 4]);
        let newest = EventFilter {
            limit: Some(1),
            until: Some(350.0),
            ..EventFilter::default()
        };
        assert_eq!(pids(newest.apply(events)), [3]);
        assert_eq!(parse_time("since", "1h", 7200.0), Ok(3600.0));
        assert!(matches!(
            parse_types("--type", "oom_kill,boom"),
            Err(FilterError::Type { .. })
        ));
        let err = parse_time("--since", "yesterday", 0.0).expect_err("bad");
        assert!(
            err.to_string().starts_with("--since \"yesterday\""),
            "{err}"
        );
    }
}
