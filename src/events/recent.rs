//! The newest few lines of a stream, kept as the bytes they were read as and parsed into
//! events only at the end: a reader that wants the newest `n` of a million lines parses
//! `n`, not a million, so twenty readers sharing one pass cost little more than one.
//! Buffers are reused as lines fall out. Owns that ring; must not read the log or choose
//! lines (the gatherers in `filter` and `incident::page_events` do).

use std::collections::VecDeque;

use super::model::Event;

/// The newest `keep` lines offered, oldest first.
#[derive(Debug)]
pub struct RecentLines {
    keep: usize,
    lines: VecDeque<Vec<u8>>,
}

impl RecentLines {
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            lines: VecDeque::new(),
        }
    }

    /// Keeps a copy of `raw`, dropping the oldest line when full (its buffer is reused).
    pub fn push(&mut self, raw: &[u8]) {
        if self.keep == 0 {
            return;
        }
        let mut buffer = match self.lines.len() == self.keep {
            true => self.lines.pop_front().unwrap_or_default(),
            false => Vec::new(),
        };
        buffer.clear();
        buffer.extend_from_slice(raw);
        self.lines.push_back(buffer);
    }

    /// The lines kept, parsed, oldest first, and how many did not parse (a field this
    /// version misreads: the head was read, the whole event was not).
    pub fn into_events(self) -> (Vec<Event>, usize) {
        let mut unparsed = 0;
        let events = self
            .lines
            .into_iter()
            .filter_map(|raw| {
                let event = serde_json::from_slice(&raw).ok();
                unparsed += usize::from(event.is_none());
                event
            })
            .collect();
        (events, unparsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_parses_them_at_the_end() {
        let mut recent = RecentLines::new(2);
        let reboot = |time: u32, cause: &str| {
            format!(
                r#"{{"time":{time},"type":"reboot","boot_id":"b","unexpected":false,"cause":{cause},"evidence":"e"}}"#
            )
        };
        recent.push(reboot(1, "\"unknown\"").as_bytes());
        recent.push(reboot(2, "7").as_bytes());
        recent.push(reboot(3, "\"unknown\"").as_bytes());
        let (events, unparsed) = recent.into_events();
        assert_eq!(events.iter().map(|e| e.time).collect::<Vec<_>>(), [3.0]);
        assert_eq!(unparsed, 1, "the second line's cause is not a reboot cause");
        let mut none = RecentLines::new(0);
        none.push(reboot(1, "\"unknown\"").as_bytes());
        assert_eq!(none.into_events(), (vec![], 0));
    }
}
