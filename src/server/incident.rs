//! The incident view over HTTP: the page at `/` and the event API at `/api/v1/events`.
//! This file turns a request into what `incident::page` and `events::EventFilter` take,
//! reads the event log (on a blocking thread), and builds the response body; routing,
//! auth and limits stay in `handlers`.
//!
//! `/api/v1/events` takes `type` (repeatable or comma-separated: oom_kill, userspace_kill,
//! restart, exit, reboot, burst), `group`, `since` and `until` (a duration back from now such as `1h`, or
//! seconds since the epoch) and `limit` (the newest N; default 1000). Events are oldest
//! first. An unknown parameter or a bad value is a 400 that names it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::scrape::SharedScrape;
use crate::events::shared_scan::{unbox, Done};
use crate::events::{parse_time, parse_types, Event, EventFilter, EventLog, Selected};
use crate::incident::page::{render, PageInput};
use crate::incident::page_events::{Gatherer, PageEvents};

/// A page view reuses a scan this recent instead of scanning again.
pub const PAGE_MAX_SCAN_AGE: Duration = Duration::from_secs(15);
/// How often the page reloads itself.
pub const PAGE_REFRESH_SECONDS: u64 = 30;
/// Events the API returns when the request sets no `limit`.
pub const DEFAULT_API_LIMIT: usize = 1000;

/// A bad query parameter, said so the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter {0:?}; use type, group, since, until or limit")]
    Unknown(String),
    #[error("parameter {0:?} is not valid percent-encoding or UTF-8")]
    Encoding(String),
    #[error("limit {0:?}: use a whole number")]
    Limit(String),
    #[error(transparent)]
    Filter(#[from] crate::events::FilterError),
}

/// Parses the API's query string into a filter; `now` anchors relative times.
pub fn parse_query(query: &str, now: f64) -> Result<EventFilter, QueryError> {
    let mut filter = EventFilter {
        limit: Some(DEFAULT_API_LIMIT),
        ..EventFilter::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| QueryError::Encoding(key.to_owned()))?;
        match key {
            "type" => filter.types.extend(parse_types("type", &value)?),
            "group" => filter.group = Some(value),
            "since" => filter.since = Some(parse_time("since", &value, now)?),
            "until" => filter.until = Some(parse_time("until", &value, now)?),
            "limit" => filter.limit = Some(value.parse().map_err(|_| QueryError::Limit(value))?),
            _ => return Err(QueryError::Unknown(key.to_owned())),
        }
    }
    Ok(filter)
}

/// Decodes `%XX` escapes (exactly two hex digits) and `+` (a space in a query); None for a
/// broken escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = hex_digit(*bytes.get(i + 1)?)?;
                let low = hex_digit(*bytes.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of one hex digit; None for anything else (a sign is not a digit).
fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

#[derive(Serialize)]
struct EventsBody<'a> {
    events: &'a [Event],
    /// Events that matched before `limit` kept the newest.
    matched: usize,
    /// Lines of the log that are not events (a torn line after a crash).
    skipped_lines: usize,
}

/// The API's JSON body for a query's answer.
pub fn events_json(selected: &Selected) -> Vec<u8> {
    let body = EventsBody {
        events: &selected.events,
        matched: selected.matched,
        skipped_lines: selected.skipped,
    };
    let mut json = serde_json::to_vec(&body).unwrap_or_default();
    json.push(b'\n');
    json
}

/// The JSON of the last answer served: concurrent requests the log answered with the same
/// `Selected` (a repeated query) share one body instead of each rendering its own.
#[derive(Debug, Default)]
pub struct ApiJson {
    last: std::sync::Mutex<Option<(Arc<Selected>, bytes::Bytes)>>,
}

impl ApiJson {
    /// The body for `selected`, rendered once per answer.
    pub fn render(&self, selected: &Arc<Selected>) -> bytes::Bytes {
        let mut last = crate::sync::lock(&self.last);
        if let Some((answer, body)) = last.as_ref() {
            if Arc::ptr_eq(answer, selected) {
                return body.clone();
            }
        }
        let body = bytes::Bytes::from(events_json(selected));
        *last = Some((selected.clone(), body.clone()));
        body
    }
}

/// Answers an API query from the log: the log is streamed and only the newest `limit`
/// kept (`EventLog::query_then`), in a pass shared with the other readers of the moment;
/// the request waits without holding a thread. No log configured is an empty one.
pub async fn query_log(
    events: Option<Arc<EventLog>>,
    filter: EventFilter,
) -> std::io::Result<Arc<Selected>> {
    let Some(events) = events else {
        return Ok(Arc::default());
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        events.query_then(&filter, move |answer| {
            let _ = sender.send(answer);
        })
    });
    receiver.await.map_err(std::io::Error::other)?
}

/// What the page shows of the log, gathered in a pass shared with the other readers.
async fn page_events(events: Option<Arc<EventLog>>, now: f64) -> std::io::Result<PageEvents> {
    let Some(events) = events else {
        return Ok(PageEvents::default());
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let trimmed = events.trimmed();
    tokio::task::spawn_blocking(move || {
        let done: Done = Box::new(move |gathered| {
            let _ = sender.send(gathered);
        });
        events.submit(Box::new(Gatherer::new(now)), done)
    });
    let (gathered, skipped) = receiver.await.map_err(std::io::Error::other)??;
    let gatherer: Gatherer = unbox(gathered)?;
    Ok(gatherer.finish(skipped, &trimmed))
}

/// Renders the page from the latest scan (or a new one when it is stale) and the log.
pub async fn page(
    scrape: &Arc<SharedScrape>,
    events: Option<Arc<EventLog>>,
    telemetry_path: &str,
) -> Result<String, String> {
    let exposition = scrape.recent(PAGE_MAX_SCAN_AGE).await?;
    let now = crate::clock::unix_now();
    let shown = page_events(events, now).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the event log for the incident page");
        PageEvents::default()
    });
    let telemetry_path = telemetry_path.to_owned();
    tokio::task::spawn_blocking(move || {
        render(&PageInput {
            snapshot: exposition.snapshot(),
            events: &shown,
            now,
            scanned_at: exposition.scanned_at(),
            telemetry_path: &telemetry_path,
            refresh_seconds: PAGE_REFRESH_SECONDS,
        })
    })
    .await
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::events::OomKillEvent;

    #[test]
    fn queries_parse_and_bad_ones_name_the_parameter() {
        let filter = parse_query(
            "type=oom_kill,exit&type=reboot&group=nginx%2Eservice&since=1h&limit=5",
            7200.0,
        )
        .expect("parses");
        assert_eq!(filter.types, ["oom_kill", "exit", "reboot"]);
        assert_eq!(filter.group.as_deref(), Some("nginx.service"));
        assert_eq!((filter.since, filter.limit), (Some(3600.0), Some(5)));
        assert_eq!(
            parse_query("", 0.0).expect("empty").limit,
            Some(DEFAULT_API_LIMIT)
        );
        assert_eq!(
            parse_query("group=a+b", 0.0)
                .expect("plus")
                .group
                .as_deref(),
            Some("a b")
        );
        let err = |q: &str| parse_query(q, 0.0).expect_err(q).to_string();
        assert!(err("pid=3").starts_with("unknown parameter \"pid\""));
        assert!(err("type=kill").starts_with("type \"kill\": unknown event type"));
        assert!(err("since=soon").starts_with("since \"soon\""));
        assert!(err("limit=-1").starts_with("limit \"-1\""));
        assert!(err("group=%zz").contains("\"group\""));
    }

    #[test]
    fn a_percent_escape_is_exactly_two_hex_digits() {
        assert_eq!(percent_decode("%41%2e%2E").as_deref(), Some("A.."));
        for broken in ["%+1", "%-1", "% 1", "%1", "%", "%4g", "%+f"] {
            assert_eq!(percent_decode(broken), None, "{broken:?}");
        }
        assert!(parse_query("group=%+1", 0.0).is_err());
    }

    #[test]
    fn the_body_says_what_matched_and_what_was_skipped() {
        let kill = |pid: u32| Event {
            time: f64::from(pid),
            kind: EventKind::OomKill(Box::new(OomKillEvent {
                group: "g".into(),
                pid,
                ..OomKillEvent::default()
            })),
        };
        let selected = Selected {
            events: vec![kill(2), kill(3)],
            matched: 3,
            skipped: 1,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&events_json(&selected)).expect("json");
        assert_eq!(body["matched"], 3);
        assert_eq!(body["skipped_lines"], 1);
        assert_eq!(body["events"][0]["pid"], 2);
        assert_eq!(body["events"][1]["type"], "oom_kill");
    }
}
