//! The event log (`<state.dir>/events.jsonl`): what happened to processes and to the host
//! (exits with their reason, reboots with their cause), one JSON object per line, oldest
//! first, kept across exporter restarts and reboots.
//!
//! Appending is one `write` of whole lines to a file opened with `O_APPEND`, then
//! `fdatasync`, so a crash leaves at worst a torn last line, which reading skips and
//! counts, and the next append starts on a line of its own. The file is bounded:
//! when it holds twice `--events.max` lines it is rewritten atomically with the newest
//! `--events.max`. A log that cannot be written keeps the exporter running; the error is
//! logged once and counted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::exits::reason::{signal_name, ExitReason, WaitStatus};
use crate::state::write_atomically;

const FILE_NAME: &str = "events.jsonl";

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

impl EventKind {
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
        let existing = std::fs::read(dir.join(FILE_NAME)).unwrap_or_default();
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
        self.dir.join(FILE_NAME)
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

    /// Keeps the newest `max` lines; returns how many the file now holds.
    fn compact(&self) -> std::io::Result<usize> {
        let bytes = std::fs::read(self.path())?;
        let lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let keep = &lines[lines.len().saturating_sub(self.max)..];
        let mut text = Vec::with_capacity(bytes.len() / 2);
        for line in keep {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        write_atomically(&self.dir, FILE_NAME, &text)?;
        Ok(keep.len())
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
                EventKind::Reboot { .. } => 0,
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

    #[test]
    fn an_unwritable_log_is_counted_not_fatal() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(&dir.path().join("missing"), 10);
        log.append(&[exit(1)]);
        assert_eq!(log.write_errors(), 1);
    }
}
