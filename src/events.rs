//! The event log (`<state.dir>/events.jsonl`): what happened to processes and to the host
//! (OOM kills with the kernel's numbers, restarts, exits with their reason, reboots with
//! their cause), one JSON object per line, oldest first, kept across exporter restarts and
//! reboots. The incident page, `/api/v1/events`, `oomwatch events` and `oomwatch why` read
//! it; the filter they share lives here too.
//!
//! Appending is one `write` of whole lines to a file opened with `O_APPEND`, then
//! `fdatasync`, so a crash leaves at worst a torn last line, which reading skips and
//! counts, and the next append starts on a line of its own. The file is bounded:
//! when it holds twice `--events.max` lines it is rewritten atomically with the newest
//! `--events.max`. A log that cannot be written keeps the exporter running; the error is
//! logged once and counted.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::exits::reason::{signal_name, ExitReason, WaitStatus};
use crate::state::write_atomically_with;

/// The event log's file name in `--state.dir`.
pub const EVENTS_FILE: &str = "events.jsonl";

/// One event, as a line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, seconds since the epoch.
    pub time: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The kernel's OOM killer killed a process: the kernel's own report of it. Logged
    /// once per kill: `seq` (the `Killed process` record's kmsg sequence number) and
    /// `boot_id` let a restarted exporter's replay of the ring buffer skip it.
    OomKill(Box<OomKillEvent>),
    /// A service came back: every long-lived instance of the group had died, and this new
    /// one started within the restart window.
    Restart {
        group: String,
        /// The new instance.
        pid: u32,
        comm: String,
        /// From the dead instance's last sighting to the new one's start: the service was
        /// down at most this long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_seconds: Option<f64>,
    },
    /// An instance of a group ended.
    Exit {
        group: String,
        pid: u32,
        comm: String,
        reason: ExitReason,
        /// The exit code of a normal exit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u8>,
        /// The signal that ended it, by name (`SIGKILL`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        core_dumped: bool,
    },
    /// The host booted again (a new boot_id); `time` is the new boot's start.
    Reboot {
        boot_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_boot_id: Option<String>,
        unexpected: bool,
        /// `clean_shutdown`, `no_clean_shutdown`, `kernel_panic`, `oops` or `unknown`.
        cause: String,
        /// What the decision rests on, in words.
        evidence: String,
        /// From the previous boot's last sign of life to this boot's start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        downtime_seconds: Option<f64>,
    },
}

/// One kernel OOM kill as the kernel reported it. Sizes are bytes (the kernel prints kB);
/// a field the report's kernel version does not print is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OomKillEvent {
    pub group: String,
    pub pid: u32,
    pub comm: String,
    /// `memcg`, `global`, `cpuset`, `mempolicy` or `unknown`.
    pub constraint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The memory cgroup that ran out of memory (`oom_memcg=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcg: Option<String>,
    /// The victim's own memory cgroup (`task_memcg=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_memcg: Option<String>,
    /// The command whose allocation invoked the OOM killer: the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_vm_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shmem_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgtables_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The boot the kill happened in, and its `Killed process` record's sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub seq: u64,
}

impl OomKillEvent {
    /// The victim's resident memory at its death (anon + file + shmem), when reported.
    pub fn rss_bytes(&self) -> Option<u64> {
        let parts = [
            self.anon_rss_bytes,
            self.file_rss_bytes,
            self.shmem_rss_bytes,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

/// The event types, as `type` spells them in the log, the API and the CLI.
pub const EVENT_TYPES: [&str; 4] = ["oom_kill", "restart", "exit", "reboot"];

impl EventKind {
    /// The `type` field of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::OomKill(_) => "oom_kill",
            EventKind::Restart { .. } => "restart",
            EventKind::Exit { .. } => "exit",
            EventKind::Reboot { .. } => "reboot",
        }
    }

    /// The group the event happened to; None for host events (reboots).
    pub fn group(&self) -> Option<&str> {
        match self {
            EventKind::OomKill(kill) => Some(&kill.group),
            EventKind::Restart { group, .. } | EventKind::Exit { group, .. } => Some(group),
            EventKind::Reboot { .. } => None,
        }
    }

    /// The process the event happened to, with its command name.
    pub fn process(&self) -> Option<(u32, &str)> {
        match self {
            EventKind::OomKill(kill) => Some((kill.pid, &kill.comm)),
            EventKind::Restart { pid, comm, .. } | EventKind::Exit { pid, comm, .. } => {
                Some((*pid, comm))
            }
            EventKind::Reboot { .. } => None,
        }
    }

    /// An exit, with its wait status when the kernel reported one.
    pub fn exit(
        group: &str,
        pid: u32,
        comm: &str,
        reason: ExitReason,
        status: Option<WaitStatus>,
    ) -> Self {
        let (code, signal, core_dumped) = match status {
            Some(WaitStatus::Exited { code }) => (Some(code), None, false),
            Some(WaitStatus::Signaled {
                signal,
                core_dumped,
            }) => (None, Some(signal_name(signal).to_owned()), core_dumped),
            None => (None, None, false),
        };
        EventKind::Exit {
            group: group.to_owned(),
            pid,
            comm: comm.to_owned(),
            reason,
            code,
            signal,
            core_dumped,
        }
    }
}

/// What reading the log found.
#[derive(Debug, Default)]
pub struct ReadEvents {
    pub events: Vec<Event>,
    /// Lines that are not events (a torn last line after a crash, a hand edit).
    pub skipped: usize,
}

#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Lines in the file now (as far as this process knows).
    lines: usize,
    /// The file ends inside a line (a crash mid-write): the next append starts a new one.
    torn: bool,
    failing: bool,
    write_errors: u64,
}

impl EventLog {
    /// The log in `dir`, keeping at least the newest `max` events.
    pub fn open(dir: &Path, max: usize) -> Self {
        let existing = std::fs::read(dir.join(EVENTS_FILE)).unwrap_or_default();
        let lines = existing.iter().filter(|&&b| b == b'\n').count();
        Self {
            dir: dir.to_path_buf(),
            max: max.max(1),
            inner: Mutex::new(Inner {
                lines,
                torn: existing.last().is_some_and(|&b| b != b'\n'),
                failing: false,
                write_errors: 0,
            }),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(EVENTS_FILE)
    }

    /// Appends events; compacts when the file holds twice the maximum.
    pub fn append(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut text = Vec::new();
        for event in events {
            if serde_json::to_writer(&mut text, event).is_ok() {
                text.push(b'\n');
            }
        }
        let mut inner = crate::sync::lock(&self.inner);
        if inner.torn {
            text.insert(0, b'\n');
        }
        // Synced: the exits just before a crash or a panic on OOM are the ones wanted.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())
            .and_then(|mut file| {
                file.write_all(&text)?;
                file.sync_data()
            });
        let result = appended.and_then(|()| {
            inner.torn = false;
            inner.lines += events.len();
            if inner.lines >= 2 * self.max {
                inner.lines = self.compact()?;
            }
            Ok(())
        });
        match result {
            Ok(()) if inner.failing => {
                tracing::info!(path = %self.path().display(), "the event log is written again");
                inner.failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                // Part of the text may be in the file: start the next append on a new line.
                inner.torn = true;
                inner.write_errors += 1;
                if !inner.failing {
                    tracing::warn!(path = %self.path().display(), error = %e,
                        "cannot write the event log (check --state.dir); metrics are unaffected");
                    inner.failing = true;
                }
            }
        }
    }

    /// Keeps `max` lines, dropping the oldest clean exits (`exited_ok`) first: the
    /// commands a busy host runs by the thousand would otherwise push its OOM kills,
    /// reboots and crashes out of the log. Streams the file twice, a line at a time, so
    /// the log never sits in memory whole. Returns how many lines the file now holds.
    fn compact(&self) -> std::io::Result<usize> {
        let path = self.path();
        let (mut total, mut clean) = (0usize, 0usize);
        for_each_line(&path, |line| {
            total += 1;
            clean += usize::from(is_clean_exit(line));
            Ok(())
        })?;
        let excess = total.saturating_sub(self.max);
        let (mut drop_clean, mut drop_other) = (excess.min(clean), excess.saturating_sub(clean));
        let mut kept = 0;
        write_atomically_with(&self.dir, EVENTS_FILE, |file| {
            let mut out = std::io::BufWriter::new(file);
            for_each_line(&path, |line| {
                let dropping = if is_clean_exit(line) {
                    &mut drop_clean
                } else {
                    &mut drop_other
                };
                if *dropping > 0 {
                    *dropping -= 1;
                    return Ok(());
                }
                kept += 1;
                out.write_all(line)?;
                out.write_all(b"\n")
            })?;
            out.flush()
        })?;
        Ok(kept)
    }

    pub fn write_errors(&self) -> u64 {
        crate::sync::lock(&self.inner).write_errors
    }

    /// The newest `--events.max` events, oldest first.
    pub fn read(&self) -> std::io::Result<ReadEvents> {
        let mut read = read_events(&self.path())?;
        let excess = read.events.len().saturating_sub(self.max);
        read.events.drain(..excess);
        Ok(read)
    }
}

/// Calls `each` with every non-empty line of the file at `path` (without its newline),
/// reading through one reused buffer.
fn for_each_line(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if !text.is_empty() {
            each(text)?;
        }
    }
}

/// A line of this log recording an exit with code 0 (as `append` writes it).
fn is_clean_exit(line: &[u8]) -> bool {
    const CLEAN: &[u8] = br#""reason":"exited_ok""#;
    line.windows(CLEAN.len()).any(|window| window == CLEAN)
}

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

    /// The matching events, oldest first, the newest `limit` of them.
    pub fn apply(&self, events: Vec<Event>) -> Vec<Event> {
        let mut kept: Vec<Event> = events.into_iter().filter(|e| self.matches(e)).collect();
        if let Some(limit) = self.limit {
            kept.drain(..kept.len().saturating_sub(limit));
        }
        kept
    }
}

/// Why a filter's value was refused; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{name} {value:?}: unknown event type; use oom_kill, restart, exit or reboot")]
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
    crate::config::parse_duration(name, value)
        .map(|ago| now - ago.as_secs_f64())
        .map_err(|_| error())
}

/// Reads an event log file; a missing file is an empty log.
pub fn read_events(path: &Path) -> std::io::Result<ReadEvents> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_events(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ReadEvents::default()),
        Err(e) => Err(e),
    }
}

/// Parses an event log's bytes: one event per line; other lines are skipped and counted.
pub fn parse_events(bytes: &[u8]) -> ReadEvents {
    let mut read = ReadEvents::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Event>(line) {
            Ok(event) => read.events.push(event),
            Err(_) => read.skipped += 1,
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: u32) -> Event {
        Event {
            time: 1_700_000_000.0 + f64::from(pid),
            kind: EventKind::exit(
                "db",
                pid,
                "mysqld",
                ExitReason::Crashed,
                Some(WaitStatus::Signaled {
                    signal: 11,
                    core_dumped: true,
                }),
            ),
        }
    }

    #[test]
    fn events_round_trip_and_the_log_stays_bounded() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(dir.path(), 3);
        for pid in 1..=7 {
            log.append(&[exit(pid)]);
        }
        let read = log.read().expect("read");
        let pids: Vec<u32> = read
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Exit { pid, .. } => *pid,
                _ => 0,
            })
            .collect();
        assert_eq!(
            pids,
            [5, 6, 7],
            "compacted at 6 lines to the newest 3, then one more"
        );
        assert_eq!(read.events[0], exit(5));
        let line = std::fs::read_to_string(log.path()).expect("text");
        assert!(line.contains(r#""type":"exit""#) && line.contains(r#""signal":"SIGSEGV""#));
        // Reopened, it knows how long the file is.
        let again = EventLog::open(dir.path(), 3);
        again.append(&[exit(8), exit(9)]);
        assert_eq!(again.read().expect("read").events.len(), 3);
    }

    #[test]
    fn compaction_drops_clean_exits_before_anything_else() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(dir.path(), 4);
        let clean = |pid: u32| Event {
            time: 1_700_000_000.0 + f64::from(pid),
            kind: EventKind::exit("true", pid, "true", ExitReason::ExitedOk, None),
        };
        // A crash, then a flood of clean exits, then another crash: compacted at 8 lines.
        log.append(&[exit(1)]);
        log.append(&(2..=7).map(clean).collect::<Vec<_>>());
        log.append(&[exit(8)]);
        let kept: Vec<(u32, bool)> = log
            .read()
            .expect("read")
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Exit { pid, reason, .. } => {
                    Some((*pid, *reason == ExitReason::ExitedOk))
                }
                _ => None,
            })
            .collect();
        assert_eq!(kept, [(1, false), (6, true), (7, true), (8, false)]);
        // With no clean exit left to drop, the oldest of the rest go.
        log.append(&(9..=12).map(exit).collect::<Vec<_>>());
        let pids: Vec<u32> = log
            .read()
            .expect("read")
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Exit { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        assert_eq!(pids, [9, 10, 11, 12]);
    }

    #[test]
    fn a_torn_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(dir.path(), 10);
        log.append(&[exit(1)]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        file.write_all(br#"{"time":1,"type":"ex"#).expect("tear");
        let read = log.read().expect("read");
        assert_eq!((read.events.len(), read.skipped), (1, 1));
        // The next run starts a new line instead of gluing onto the torn one.
        EventLog::open(dir.path(), 10).append(&[exit(2)]);
        let read = log.read().expect("read");
        assert_eq!((read.events.len(), read.skipped), (2, 1));
    }

    fn kill(pid: u32, group: &str, time: f64) -> Event {
        Event {
            time,
            kind: EventKind::OomKill(Box::new(OomKillEvent {
                group: group.into(),
                pid,
                comm: "java".into(),
                constraint: "memcg".into(),
                anon_rss_bytes: Some(100 << 20),
                file_rss_bytes: Some(2 << 20),
                shmem_rss_bytes: Some(0),
                oom_score_adj: Some(300),
                seq: 7,
                ..OomKillEvent::default()
            })),
        }
    }

    #[test]
    fn oom_kills_and_restarts_round_trip() {
        let restart = Event {
            time: 5.0,
            kind: EventKind::Restart {
                group: "api".into(),
                pid: 9,
                comm: "java".into(),
                gap_seconds: Some(3.5),
            },
        };
        let events = [kill(8, "api", 4.0), restart];
        let text: Vec<u8> = events
            .iter()
            .flat_map(|e| {
                let mut line = serde_json::to_vec(e).expect("json");
                line.push(b'\n');
                line
            })
            .collect();
        let line = String::from_utf8_lossy(&text);
        assert!(line.contains(r#""type":"oom_kill""#), "{line}");
        assert!(line.contains(r#""anon_rss_bytes":104857600"#), "{line}");
        assert!(line.contains(r#""type":"restart""#), "{line}");
        let read = parse_events(&text);
        assert_eq!(read.events, events);
        match &read.events[0].kind {
            EventKind::OomKill(kill) => assert_eq!(kill.rss_bytes(), Some(102 << 20)),
            other => panic!("not a kill: {other:?}"),
        }
    }

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

    #[test]
    fn an_unwritable_log_is_counted_not_fatal() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(&dir.path().join("missing"), 10);
        log.append(&[exit(1)]);
        assert_eq!(log.write_errors(), 1);
    }
}
