//! Connections closed for room, refused or not accepted, told at most once per interval:
//! the first after a quiet interval at once, then everything since as one report when
//! the interval has passed, with the counts, so a flood of connections cannot flood the
//! log. Owns the counting and its timing; must not log (the server logs the `Tally` it
//! is handed).

use std::time::{Duration, Instant};

/// At most one report per this interval.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// What happened to connections since the last report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Idle connections closed to make room for new ones.
    pub closed_idle: u64,
    /// New connections closed at once: every slot was busy.
    pub refused: u64,
    /// Accepts that failed (out of descriptors, out of memory).
    pub accept_errors: u64,
}

impl Tally {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One of the things a `Tally` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ClosedIdle,
    Refused,
    AcceptError,
}

#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    last_report: Option<Instant>,
    pending: Tally,
}

impl RefusalLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_report: None,
            pending: Tally::default(),
        }
    }

    /// Counts one; returns the tally to report now when no report was made within the
    /// interval.
    pub fn note(&mut self, what: Refusal, now: Instant) -> Option<Tally> {
        let count = match what {
            Refusal::ClosedIdle => &mut self.pending.closed_idle,
            Refusal::Refused => &mut self.pending.refused,
            Refusal::AcceptError => &mut self.pending.accept_errors,
        };
        *count += 1;
        let quiet = self
            .last_report
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        quiet.then(|| self.take(now))
    }

    /// When the counts held back are due: one interval after the last report.
    pub fn due(&self) -> Option<Instant> {
        match (self.pending.is_empty(), self.last_report) {
            (false, Some(last)) => Some(last + self.interval),
            (false, None) => Some(Instant::now()),
            (true, _) => None,
        }
    }

    /// The counts held back, if any (when due, and at shutdown).
    pub fn flush(&mut self, now: Instant) -> Option<Tally> {
        (!self.pending.is_empty()).then(|| self.take(now))
    }

    fn take(&mut self, now: Instant) -> Tally {
        self.last_report = Some(now);
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_at_once_then_one_report_per_interval() {
        let start = Instant::now();
        let mut log = RefusalLog::new(Duration::from_secs(60));
        assert_eq!(log.due(), None);
        let first = log
            .note(Refusal::ClosedIdle, start)
            .expect("reported at once");
        assert_eq!(first.closed_idle, 1);
        // A flood: nothing more is reported within the interval.
        for i in 0..10_000u64 {
            let at = start + Duration::from_millis(i * 5);
            let what = if i % 2 == 0 {
                Refusal::ClosedIdle
            } else {
                Refusal::Refused
            };
            assert_eq!(log.note(what, at), None);
        }
        assert_eq!(log.due(), Some(start + Duration::from_secs(60)));
        let second = log
            .flush(start + Duration::from_secs(60))
            .expect("the rest");
        assert_eq!((second.closed_idle, second.refused), (5_000, 5_000));
        assert_eq!(log.due(), None);
        assert_eq!(log.flush(start + Duration::from_secs(61)), None);
        // Within the interval of that report, an accept error waits for the next.
        assert_eq!(
            log.note(Refusal::AcceptError, start + Duration::from_secs(90)),
            None
        );
        let third = log
            .note(Refusal::AcceptError, start + Duration::from_secs(120))
            .expect("an interval after the last report");
        assert_eq!(third.accept_errors, 2);
    }
}
