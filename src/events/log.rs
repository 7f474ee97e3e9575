//! The event log file (`<state.dir>/events.jsonl`): one event per line, oldest first,
//! kept across exporter restarts and reboots. Owns appending, compaction and reading the
//! file; must not decide which events a reader wants (`filter`) or what an event is
//! (`model`).
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

use super::model::Event;
use crate::atomic_file::write_atomically_with;

/// The event log's file name in `--state.dir`.
pub const EVENTS_FILE: &str = "events.jsonl";

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
    /// Events not yet written (the file could not be written), oldest first; they leave
    /// only once a write succeeds.
    pending: Vec<Event>,
    /// Pending events dropped because the queue was full (exits first).
    dropped: u64,
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
                pending: Vec::new(),
                dropped: 0,
            }),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(EVENTS_FILE)
    }

    /// Appends events after any still pending, in one write; compacts when the file holds
    /// twice the maximum. When the write fails the events stay pending (bounded: exits are
    /// dropped first, and counted) and are written by the next `append` or `flush`; the
    /// error is counted and logged when the log starts failing.
    pub fn append(&self, events: &[Event]) -> std::io::Result<()> {
        let mut inner = crate::sync::lock(&self.inner);
        inner.pending.extend_from_slice(events);
        self.write_pending(&mut inner)
    }

    /// Writes what is pending, if anything.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut inner = crate::sync::lock(&self.inner);
        self.write_pending(&mut inner)
    }

    /// Events waiting for a successful write.
    pub fn pending(&self) -> usize {
        crate::sync::lock(&self.inner).pending.len()
    }

    /// Pending events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        crate::sync::lock(&self.inner).dropped
    }

    fn write_pending(&self, inner: &mut Inner) -> std::io::Result<()> {
        if inner.pending.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        if inner.torn {
            text.push(b'\n');
        }
        for event in &inner.pending {
            if serde_json::to_writer(&mut text, event).is_ok() {
                text.push(b'\n');
            }
        }
        // Synced: the exits just before a crash or a panic on OOM are the ones wanted.
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())
            .and_then(|mut file| {
                file.write_all(&text)?;
                file.sync_data()
            })
            .and_then(|()| {
                inner.torn = false;
                inner.lines += inner.pending.len();
                inner.pending.clear();
                if inner.lines >= 2 * self.max {
                    inner.lines = self.compact()?;
                }
                Ok(())
            });
        match &result {
            Ok(()) if inner.failing => {
                tracing::info!(path = %self.path().display(), "the event log is written again");
                inner.failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                // Part of the text may be in the file: start the next append on a new line.
                inner.torn = true;
                inner.write_errors += 1;
                self.bound_pending(inner);
                if !inner.failing {
                    tracing::warn!(path = %self.path().display(), error = %e, pending = inner.pending.len(),
                        "cannot write the event log (check --state.dir); events are kept in memory until it can be written; metrics are unaffected");
                    inner.failing = true;
                }
            }
        }
        result
    }

    /// Keeps at most `max` pending events: the oldest exits go first, then the oldest.
    fn bound_pending(&self, inner: &mut Inner) {
        while inner.pending.len() > self.max {
            let victim = inner
                .pending
                .iter()
                .position(|e| matches!(e.kind, super::model::EventKind::Exit { .. }))
                .unwrap_or(0);
            inner.pending.remove(victim);
            inner.dropped += 1;
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
    use crate::events::model::fixtures::exit;
    use crate::events::model::EventKind;
    use crate::exit_reason::ExitReason;

    #[test]
    fn events_round_trip_and_the_log_stays_bounded() {
        let dir = tempfile::tempdir().expect("temp");
        let log = EventLog::open(dir.path(), 3);
        for pid in 1..=7 {
            log.append(&[exit(pid)]).expect("append");
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
        again.append(&[exit(8), exit(9)]).expect("append");
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
        log.append(&[exit(1)]).expect("append");
        log.append(&(2..=7).map(clean).collect::<Vec<_>>())
            .expect("append");
        log.append(&[exit(8)]).expect("append");
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
        log.append(&(9..=12).map(exit).collect::<Vec<_>>())
            .expect("append");
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
        log.append(&[exit(1)]).expect("append");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        file.write_all(br#"{"time":1,"type":"ex"#).expect("tear");
        let read = log.read().expect("read");
        assert_eq!((read.events.len(), read.skipped), (1, 1));
        // The next run starts a new line instead of gluing onto the torn one.
        EventLog::open(dir.path(), 10)
            .append(&[exit(2)])
            .expect("append");
        let read = log.read().expect("read");
        assert_eq!((read.events.len(), read.skipped), (2, 1));
    }

    #[test]
    fn an_unwritable_log_keeps_its_events_until_it_can_be_written() {
        let dir = tempfile::tempdir().expect("temp");
        let missing = dir.path().join("missing");
        let log = EventLog::open(&missing, 2);
        assert!(log.append(&[exit(1)]).is_err());
        assert!(log.append(&[exit(2), exit(3)]).is_err());
        assert_eq!(log.pending(), 2, "bounded at --events.max");
        assert_eq!(log.dropped(), 1);
        // The directory appears: the pending events are written, in order.
        std::fs::create_dir_all(&missing).expect("mkdir");
        log.flush().expect("flush");
        assert_eq!(log.pending(), 0);
        let pids: Vec<u32> = log
            .read()
            .expect("read")
            .events
            .iter()
            .filter_map(|e| e.kind.process().map(|(pid, _)| pid))
            .collect();
        assert_eq!(pids, [2, 3]);
        assert_eq!(log.write_errors(), 2, "each failed write counted");
    }
}
