//! The event log file (`<state.dir>/events.jsonl`): one event per line, oldest first,
//! kept across exporter restarts and reboots. Owns appending, compaction and streaming the
//! file to readers; must not decide which events a reader wants (`filter`), which a
//! compaction keeps (`retention`), what an event is (`model`), or how the directory is
//! opened (`state_dir`: no link is followed).
//!
//! Appending is one `write` of whole lines to a file opened with `O_APPEND`, then
//! `fdatasync`, so a crash leaves at worst a torn last line, which reading skips and
//! counts, and the next append starts on a line of its own. An event leaves the in-memory
//! queue only once it is written: a full disk or a read-only mount keeps it pending
//! (bounded at `--events.max`, exits dropped first, counted) and the next append or scan
//! writes it. Exits and restarts pass the per-group rate limit (`throttle`) first.
//!
//! The file is bounded: when one kind of event reaches twice its budget the file is
//! rewritten atomically with the newest `--events.max` of each kind (`retention`), and
//! what was dropped is noted in `events.trimmed.json`. Reading streams the file through a
//! fixed buffer; reads take turns, and a query repeated before the log changes is served
//! from the previous answer, so concurrent requests share the work and memory stays
//! bounded by what they return.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::filter::{EventFilter, Newest};
use super::lines::{for_each_event, for_each_line, LogLine};
use super::model::{Event, EventHead, EventKind};
use super::retention::{Census, Plan, Trimmed};
use super::shared_scan::{unbox, Accumulate, Done, SharedScan};
use super::throttle::Throttle;
use crate::state_dir::StateDir;

/// The event log's file name in `--state.dir`.
pub const EVENTS_FILE: &str = "events.jsonl";
/// What compactions dropped, beside the log.
pub const TRIMMED_FILE: &str = "events.trimmed.json";
/// Most events one query returns (when it sets no smaller limit).
pub const QUERY_CAP: usize = 10_000;

/// The events a query selected.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selected {
    /// The newest matching events, oldest first.
    pub events: Vec<Event>,
    /// Events that matched, before the limit.
    pub matched: usize,
    /// Lines that are not events (a torn last line after a crash, a hand edit).
    pub skipped: usize,
}

#[derive(Debug)]
pub struct EventLog {
    dir: Arc<StateDir>,
    max: usize,
    inner: Mutex<Inner>,
    /// Readers waiting at the same time share one pass over the file.
    scan: SharedScan,
    /// The last query's answer.
    answered: Arc<Mutex<Option<Answered>>>,
}

#[derive(Debug)]
struct Inner {
    census: Census,
    /// The file ends inside a line (a crash mid-write): the next append starts a new one.
    torn: bool,
    failing: bool,
    write_errors: u64,
    /// Events not yet written, oldest first; they leave only once a write succeeds.
    pending: Vec<Event>,
    /// Pending events dropped because the queue was full.
    dropped: u64,
    /// Changes with every write: a cached answer is for one generation.
    generation: u64,
    throttle: Throttle,
    trimmed: Trimmed,
}

#[derive(Debug)]
struct Answered {
    filter: EventFilter,
    generation: u64,
    answer: Arc<Selected>,
}

impl EventLog {
    /// The log in `dir`, keeping the newest `max` events of each kind. The file is read
    /// once, a line at a time, to count what it holds.
    pub fn open(dir: Arc<StateDir>, max: usize) -> Self {
        let (census, torn) = survey(&dir).unwrap_or_default();
        let trimmed = dir
            .read(TRIMMED_FILE)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            dir,
            max: max.max(1),
            inner: Mutex::new(Inner {
                census,
                torn,
                failing: false,
                write_errors: 0,
                pending: Vec::new(),
                dropped: 0,
                generation: 0,
                throttle: Throttle::default(),
                trimmed,
            }),
            scan: SharedScan::default(),
            answered: Arc::new(Mutex::new(None)),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(EVENTS_FILE)
    }

    /// Appends events (after any still pending, exits and restarts past the rate limit,
    /// with the bursts that are due) in one write; compacts when a kind reaches twice its
    /// budget. When the write fails the events stay pending and the error is counted,
    /// and logged when the log starts failing.
    pub fn append(&self, events: &[Event]) -> std::io::Result<()> {
        let mut inner = crate::sync::lock(&self.inner);
        for event in events {
            if inner.throttle.admit(event) {
                inner.pending.push(event.clone());
            }
        }
        let due = inner.throttle.due(crate::clock::unix_now(), false);
        inner.pending.extend(due);
        self.write_pending(&mut inner)
    }

    /// Writes what is pending and the bursts that are due, if anything; with `all`, every
    /// burst counted so far (the exporter is stopping).
    pub fn flush(&self) -> std::io::Result<()> {
        self.flush_bursts(false)
    }

    /// `flush` with every burst counted so far, for a clean stop.
    pub fn close(&self) -> std::io::Result<()> {
        self.flush_bursts(true)
    }

    fn flush_bursts(&self, all: bool) -> std::io::Result<()> {
        let mut inner = crate::sync::lock(&self.inner);
        let due = inner.throttle.due(crate::clock::unix_now(), all);
        inner.pending.extend(due);
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

    pub fn write_errors(&self) -> u64 {
        crate::sync::lock(&self.inner).write_errors
    }

    /// What compactions have dropped, per kind.
    pub fn trimmed(&self) -> Trimmed {
        crate::sync::lock(&self.inner).trimmed.clone()
    }

    fn write_pending(&self, inner: &mut Inner) -> std::io::Result<()> {
        if inner.pending.is_empty() {
            return Ok(());
        }
        let text = encode(&inner.pending, inner.torn);
        // Synced: the exits just before a crash or a panic on OOM are the ones wanted.
        let mut opened = false;
        let result = self
            .dir
            .open_append(EVENTS_FILE)
            .and_then(|mut file| {
                opened = true;
                file.write_all(&text)?;
                file.sync_data()
            })
            .and_then(|()| {
                inner.torn = false;
                inner.pending.clear();
                let census = &mut inner.census;
                for_each_line(&text[..], |line| {
                    census.add(EventHead::parse(line).as_ref());
                    Ok(())
                })?;
                inner.generation += 1;
                if inner.census.needs_compaction(self.max) {
                    self.compact(inner)?;
                }
                Ok(())
            });
        // Part of the text may be in the file: start the next append on a new line.
        inner.torn |= result.is_err() && opened;
        self.note_result(inner, &result);
        result
    }

    /// Counts a failed write and logs when the log starts or stops failing.
    fn note_result(&self, inner: &mut Inner, result: &std::io::Result<()>) {
        match result {
            Ok(()) if inner.failing => {
                tracing::info!(path = %self.path().display(), "the event log is written again");
                inner.failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                inner.write_errors += 1;
                self.bound_pending(inner);
                if !inner.failing {
                    tracing::warn!(path = %self.path().display(), error = %e, pending = inner.pending.len(),
                        "cannot write the event log (check --state.dir); events are kept in memory until it can be written; metrics are unaffected");
                    inner.failing = true;
                }
            }
        }
    }

    /// Keeps at most `max` pending events: exits go first, then bursts and restarts, then
    /// the oldest; OOM kills and reboots last.
    fn bound_pending(&self, inner: &mut Inner) {
        let rank = |e: &Event| match e.kind {
            EventKind::Exit { .. } => 0,
            EventKind::Burst { .. } | EventKind::Restart { .. } => 1,
            _ => 2,
        };
        while inner.pending.len() > self.max {
            let lowest = inner.pending.iter().map(rank).min().unwrap_or(0);
            let victim = inner
                .pending
                .iter()
                .position(|e| rank(e) == lowest)
                .unwrap_or(0);
            inner.pending.remove(victim);
            inner.dropped += 1;
        }
    }

    /// Rewrites the file with the newest `max` of each kind (`retention`), streaming it
    /// twice, and notes what was dropped.
    fn compact(&self, inner: &mut Inner) -> std::io::Result<()> {
        let mut census = Census::default();
        self.stream_lines(|line| {
            census.add(EventHead::parse(line).as_ref());
            Ok(())
        })?;
        let mut plan = Plan::new(&census, self.max, inner.trimmed.clone());
        let mut kept = Census::default();
        self.dir.replace(EVENTS_FILE, |file| {
            let mut out = std::io::BufWriter::new(file);
            self.stream_lines(|line| {
                let head = EventHead::parse(line);
                if !plan.keep(head.as_ref()) {
                    return Ok(());
                }
                kept.add(head.as_ref());
                out.write_all(line)?;
                out.write_all(b"\n")
            })?;
            out.flush()
        })?;
        inner.census = kept;
        inner.generation += 1;
        inner.trimmed = plan.trimmed();
        let record = serde_json::to_vec(&inner.trimmed).unwrap_or_default();
        self.dir
            .replace(TRIMMED_FILE, |file| file.write_all(&record))
    }

    /// Every line of the file, through a fixed buffer; a missing file has none.
    fn stream_lines(
        &self,
        each: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<usize> {
        match self.dir.open_read(EVENTS_FILE)? {
            Some(file) => for_each_line(file, each),
            None => Ok(0),
        }
    }

    /// Calls `each` with every event of the log, oldest first, the pending ones last;
    /// returns how many lines are not events.
    pub fn visit(&self, mut each: impl FnMut(&LogLine<'_>)) -> std::io::Result<usize> {
        self.visit_all(&mut each)
    }

    /// A file that cannot be opened (the directory is gone or unwritable: the write
    /// errors say so) reads as empty, so that what is pending is still seen.
    fn visit_all(&self, each: &mut dyn FnMut(&LogLine<'_>)) -> std::io::Result<usize> {
        let mut skipped = match self.dir.open_read(EVENTS_FILE) {
            Ok(Some(file)) => for_each_event(file, |line| {
                each(line);
                Ok(())
            })?,
            Ok(None) => 0,
            Err(e) if crate::sync::lock(&self.inner).pending.is_empty() => return Err(e),
            Err(_) => 0,
        };
        let pending = {
            let inner = crate::sync::lock(&self.inner);
            encode(&inner.pending, false)
        };
        skipped += for_each_event(&pending[..], |line| {
            each(line);
            Ok(())
        })?;
        Ok(skipped)
    }

    /// Feeds `gatherer` every event of the log (`visit`), in a pass shared with the
    /// readers waiting at the same time; returns it with the lines that are not events.
    pub fn gather<A: Accumulate>(&self, gatherer: A) -> std::io::Result<(A, usize)> {
        self.scan.gather(gatherer, &|each| self.visit_all(each))
    }

    /// `gather` without waiting: `done` is called with the gatherer from the thread that
    /// runs the pass (this one, when no pass is running).
    pub fn submit(&self, gatherer: Box<dyn Accumulate>, done: Done) {
        self.scan
            .submit(gatherer, done, &|each| self.visit_all(each));
    }

    /// The events `filter` selects, the newest `limit` (at most `QUERY_CAP`), given to
    /// `answer` (from the thread that ran the pass). The same query asked again before the
    /// log changes gets the same answer without a read.
    pub fn query_then(
        &self,
        filter: &EventFilter,
        answer: impl FnOnce(std::io::Result<Arc<Selected>>) + Send + 'static,
    ) {
        let generation = self.generation();
        if let Some(answered) = crate::sync::lock(&self.answered).as_ref() {
            if answered.generation == generation && answered.filter == *filter {
                return answer(Ok(answered.answer.clone()));
            }
        }
        let (cache, filter_kept) = (self.answered.clone(), filter.clone());
        let done: Done = Box::new(move |gathered| {
            let selected = gathered.and_then(|(newest, skipped)| {
                let newest: Newest = unbox(newest)?;
                let matched = newest.matched;
                let (events, unparsed) = newest.into_events();
                Ok(Arc::new(Selected {
                    matched: matched - unparsed,
                    skipped: skipped + unparsed,
                    events,
                }))
            });
            if let Ok(selected) = &selected {
                *crate::sync::lock(&cache) = Some(Answered {
                    filter: filter_kept,
                    generation,
                    answer: selected.clone(),
                });
            }
            answer(selected);
        });
        self.submit(Box::new(Newest::new(filter.clone(), QUERY_CAP)), done);
    }

    /// `query_then`, waiting for the answer on this thread.
    pub fn query(&self, filter: &EventFilter) -> std::io::Result<Arc<Selected>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.query_then(filter, move |answer| {
            let _ = sender.send(answer);
        });
        receiver.recv().map_err(std::io::Error::other)?
    }

    /// Changes whenever what `visit` would see changes.
    fn generation(&self) -> u64 {
        let inner = crate::sync::lock(&self.inner);
        inner.generation.wrapping_mul(1 << 20) ^ inner.pending.len() as u64
    }
}

/// The lines of `events`, after a newline when the file ends inside a line.
fn encode(events: &[Event], torn: bool) -> Vec<u8> {
    let mut text = Vec::new();
    if torn {
        text.push(b'\n');
    }
    for event in events {
        if serde_json::to_writer(&mut text, event).is_ok() {
            text.push(b'\n');
        }
    }
    text
}

/// What the file holds, by kind, and whether it ends inside a line.
fn survey(dir: &StateDir) -> std::io::Result<(Census, bool)> {
    let Some(mut file) = dir.open_read(EVENTS_FILE)? else {
        return Ok((Census::default(), false));
    };
    let torn = match file.seek(SeekFrom::End(-1)) {
        Ok(_) => {
            let mut last = [0u8; 1];
            std::io::Read::read_exact(&mut file, &mut last)?;
            last[0] != b'\n'
        }
        Err(_) => false,
    };
    file.seek(SeekFrom::Start(0))?;
    let mut census = Census::default();
    let overlong = for_each_line(file, |line| {
        census.add(EventHead::parse(line).as_ref());
        Ok(())
    })?;
    census.unreadable += overlong;
    Ok((census, torn))
}

/// Reads the events of a log file that need not be this process's (`oomwatch events`,
/// `why`), without following a link, keeping those `keep` wants; returns them oldest
/// first with the count of lines that are not events. A missing file is an empty log.
pub fn read_file_events(
    path: &std::path::Path,
    mut keep: impl FnMut(&LogLine<'_>) -> bool,
) -> std::io::Result<(Vec<Event>, usize)> {
    let Some(file) = crate::state_dir::read_file(path)? else {
        return Ok((Vec::new(), 0));
    };
    let mut events = Vec::new();
    let mut unparsed = 0;
    let skipped = for_each_event(file, |line| {
        if keep(line) {
            match line.event() {
                Some(event) => events.push(event),
                None => unparsed += 1,
            }
        }
        Ok(())
    })?;
    Ok((events, skipped + unparsed))
}

/// Parses an event log's bytes: one event per line; other lines are skipped and counted.
pub fn parse_events(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut unparsed = 0;
    let skipped = for_each_event(bytes, |line| {
        match line.event() {
            Some(event) => events.push(event),
            None => unparsed += 1,
        }
        Ok(())
    })
    .unwrap_or(0);
    (events, skipped + unparsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::fixtures::{exit, kill};
    use crate::exit_reason::ExitReason;

    fn open(path: &std::path::Path, max: usize) -> EventLog {
        EventLog::open(Arc::new(StateDir::unchecked(path)), max)
    }

    fn all(log: &EventLog) -> Selected {
        Selected::clone(&log.query(&EventFilter::default()).expect("query"))
    }

    fn pids(selected: &Selected) -> Vec<u32> {
        selected
            .events
            .iter()
            .filter_map(|e| e.kind.process().map(|(pid, _)| pid))
            .collect()
    }

    #[test]
    fn events_round_trip_and_each_kind_stays_bounded() {
        let dir = tempfile::tempdir().expect("temp");
        let log = open(dir.path(), 3);
        for pid in 1..=7 {
            log.append(&[exit(pid)]).expect("append");
        }
        // Compacted at 6 exits to the newest 3, then one more.
        let read = all(&log);
        assert_eq!(pids(&read), [4, 5, 6, 7]);
        assert_eq!(read.events[0], exit(4));
        let line = std::fs::read_to_string(log.path()).expect("text");
        assert!(line.contains(r#""type":"exit""#) && line.contains(r#""signal":"SIGSEGV""#));
        let trimmed = log.trimmed().of("exit").expect("trimmed");
        assert_eq!((trimmed.events, trimmed.through), (3, exit(3).time));
        // Reopened, it knows what the file holds and what was dropped.
        let again = open(dir.path(), 3);
        assert_eq!(again.trimmed(), log.trimmed());
        again.append(&[exit(8), exit(9)]).expect("append");
        assert_eq!(pids(&all(&again)), [7, 8, 9]);
    }

    #[test]
    fn an_exit_flood_never_evicts_a_kill_and_clean_exits_go_first() {
        let dir = tempfile::tempdir().expect("temp");
        let log = open(dir.path(), 4);
        let clean = |pid: u32| Event {
            time: 1_700_000_000.0 + f64::from(pid),
            kind: EventKind::exit("true", pid, "true", ExitReason::ExitedOk, None),
        };
        log.append(&[kill(1, "api", 1_700_000_000.0), exit(2)])
            .expect("append");
        log.append(&(3..=9).map(clean).collect::<Vec<_>>())
            .expect("append");
        log.append(&[exit(10)]).expect("append");
        // 8 exits, twice the budget: 4 go, the clean ones first (3..=6); the crash at 2
        // stays.
        assert_eq!(pids(&all(&log)), [1, 2, 7, 8, 9, 10]);
        // Thousands of exits from many groups: the kill is still there.
        for round in 0..50u32 {
            let flood: Vec<Event> = (0..100u32)
                .map(|i| Event {
                    time: 1_700_000_100.0 + f64::from(round),
                    kind: EventKind::exit(
                        &format!("g{i}"),
                        round * 100 + i,
                        "sh",
                        ExitReason::Killed,
                        None,
                    ),
                })
                .collect();
            log.append(&flood).expect("append");
        }
        let kills = EventFilter {
            types: vec!["oom_kill".into()],
            ..EventFilter::default()
        };
        assert_eq!(pids(&log.query(&kills).expect("query")), [1]);
        assert!(all(&log).events.len() <= 1 + 2 * 4, "bounded");
    }

    #[test]
    fn a_torn_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("temp");
        let log = open(dir.path(), 10);
        log.append(&[exit(1)]).expect("append");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        file.write_all(br#"{"time":1,"type":"ex"#).expect("tear");
        let read = all(&log);
        assert_eq!((read.events.len(), read.skipped), (1, 1));
        // The next run starts a new line instead of gluing onto the torn one.
        open(dir.path(), 10).append(&[exit(2)]).expect("append");
        let read = all(&open(dir.path(), 10));
        assert_eq!((read.events.len(), read.skipped), (2, 1));
    }

    #[test]
    fn an_unwritable_log_keeps_its_events_until_it_can_be_written() {
        let dir = tempfile::tempdir().expect("temp");
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "x").expect("write");
        let log = open(&blocker.join("state"), 2);
        assert!(log.append(&[exit(1)]).is_err());
        assert!(log.append(&[exit(2), kill(3, "api", 5.0)]).is_err());
        assert_eq!(log.pending(), 2, "bounded at --events.max");
        assert_eq!(log.dropped(), 1, "an exit went, not the kill");
        // Pending events are seen by readers already.
        assert_eq!(pids(&all(&log)), [2, 3]);
        // The directory can be made: the pending events are written, in order.
        std::fs::remove_file(&blocker).expect("remove");
        log.flush().expect("flush");
        assert_eq!(log.pending(), 0);
        assert_eq!(pids(&all(&log)), [2, 3]);
        assert_eq!(log.write_errors(), 2, "each failed write counted");
        let text = std::fs::read_to_string(log.path()).expect("written");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_repeated_query_shares_the_answer_until_the_log_changes() {
        let dir = tempfile::tempdir().expect("temp");
        let log = open(dir.path(), 10);
        log.append(&[exit(1), exit(2)]).expect("append");
        let filter = EventFilter {
            limit: Some(1),
            ..EventFilter::default()
        };
        let first = log.query(&filter).expect("query");
        assert!(Arc::ptr_eq(&first, &log.query(&filter).expect("query")));
        assert_eq!((pids(&first), first.matched), (vec![2], 2));
        log.append(&[exit(3)]).expect("append");
        let after = log.query(&filter).expect("query");
        assert_eq!(pids(&after), [3]);
    }

    #[test]
    fn a_churning_group_becomes_a_burst_record_on_close() {
        let dir = tempfile::tempdir().expect("temp");
        let log = open(dir.path(), 1000);
        let now = crate::clock::unix_now();
        let churn: Vec<Event> = (0..500u32)
            .map(|pid| Event {
                time: now + f64::from(pid) / 1000.0,
                kind: EventKind::exit("sleep", pid, "sleep", ExitReason::Killed, None),
            })
            .collect();
        log.append(&churn).expect("append");
        log.close().expect("close");
        let read = all(&log);
        let logged = read
            .events
            .iter()
            .filter(|e| e.kind.type_name() == "exit")
            .count();
        let counted: u64 = read
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Burst { count, .. } => Some(*count),
                _ => None,
            })
            .sum();
        assert_eq!(logged as u64 + counted, 500, "every exit logged or counted");
        assert!(logged <= 21, "{logged}");
    }
}
