//! What the event log keeps when it is compacted: retention by importance. Each kind of
//! event has a budget of its own (`--events.max` each), so no kind can push another out:
//! a flood of exits (a churning process, a busy host's commands) never evicts an OOM
//! kill, a reboot or a restart, and restarts never evict kills. Within a budget the
//! oldest go first, clean exits (code 0) before the other exits. A burst record (`burst`)
//! counts in the budget of what it stands for. Lines that are not events go.
//!
//! What was dropped is remembered (`Trimmed`: per kind, how many and the newest time), so
//! readers can say that their counts before that time are incomplete. Decides by each
//! line's parsed head, never by matching bytes. Pure; must not read or write the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::EventHead;

/// The kinds of event with a budget of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Kill,
    Reboot,
    Restart,
    Exit,
}

pub const CLASSES: [Class; 4] = [Class::Kill, Class::Reboot, Class::Restart, Class::Exit];

impl Class {
    /// The class of a line; userspace killers' kills (`userspace_kill`) are kills, and a
    /// type this version does not know is kept with the kills (never the first to go).
    pub fn of(head: &EventHead<'_>) -> Self {
        match head.counts_as() {
            "restart" => Class::Restart,
            "exit" => Class::Exit,
            "reboot" => Class::Reboot,
            _ => Class::Kill,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The lines of a log by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    lines: [usize; 4],
    clean_exits: usize,
    /// Lines that are not events.
    pub unreadable: usize,
}

impl Census {
    /// Counts one line; `None` for a line that is not an event.
    pub fn add(&mut self, head: Option<&EventHead<'_>>) {
        match head {
            Some(head) => {
                self.lines[Class::of(head).index()] += 1;
                self.clean_exits += usize::from(head.is_clean_exit());
            }
            None => self.unreadable += 1,
        }
    }

    pub fn lines(&self, class: Class) -> usize {
        self.lines[class.index()]
    }

    pub fn total(&self) -> usize {
        self.lines.iter().sum::<usize>() + self.unreadable
    }

    /// Whether the log should be compacted: a class at twice its budget, or as many
    /// unreadable lines as a budget.
    pub fn needs_compaction(&self, max: usize) -> bool {
        self.lines.iter().any(|&n| n >= 2 * max) || self.unreadable >= max
    }
}

/// Which lines a compaction drops, taken in file order (oldest first).
#[derive(Debug, Clone)]
pub struct Plan {
    drop: [usize; 4],
    drop_clean: usize,
    trimmed: Trimmed,
}

impl Plan {
    /// Keeps the newest `max` of each class, dropping clean exits first among the exits.
    pub fn new(census: &Census, max: usize, trimmed: Trimmed) -> Self {
        let mut drop = [0; 4];
        for class in CLASSES {
            drop[class.index()] = census.lines(class).saturating_sub(max);
        }
        let exits = &mut drop[Class::Exit.index()];
        let drop_clean = (*exits).min(census.clean_exits);
        *exits -= drop_clean;
        Self {
            drop,
            drop_clean,
            trimmed,
        }
    }

    /// Whether the next line (its head, None when it is not an event) is kept.
    pub fn keep(&mut self, head: Option<&EventHead<'_>>) -> bool {
        let Some(head) = head else {
            return false;
        };
        let class = Class::of(head);
        let budget = if head.is_clean_exit() && self.drop_clean > 0 {
            &mut self.drop_clean
        } else if head.is_clean_exit() {
            return true;
        } else {
            &mut self.drop[class.index()]
        };
        if *budget == 0 {
            return true;
        }
        *budget -= 1;
        self.trimmed
            .note(head.counts_as(), head.time, head.weight());
        false
    }

    /// What has been dropped so far, this compaction and earlier ones.
    pub fn trimmed(self) -> Trimmed {
        self.trimmed
    }
}

/// What compactions dropped, per event type (a burst under the type it stands for, a
/// userspace kill as `userspace_kill`, though it shares the kills' budget): kept beside
/// the log (`events.trimmed.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trimmed(BTreeMap<String, TrimmedClass>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TrimmedClass {
    /// Events dropped (a burst counts as many as it stands for).
    pub events: u64,
    /// The newest dropped: the log is complete for this class only after it.
    pub through: f64,
}

impl Trimmed {
    fn note(&mut self, type_name: &str, time: f64, weight: u64) {
        let entry = self.0.entry(type_name.to_owned()).or_default();
        entry.events += weight.max(1);
        entry.through = entry.through.max(time);
    }

    /// What was dropped of the events of `type_name`.
    pub fn of(&self, type_name: &str) -> Option<TrimmedClass> {
        self.0.get(type_name).copied()
    }

    /// The classes whose events since `since` may be missing, with the time before which.
    pub fn incomplete_since(&self, since: f64) -> Vec<(&str, f64)> {
        self.0
            .iter()
            .filter(|(_, t)| t.through >= since)
            .map(|(name, t)| (name.as_str(), t.through))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: &'static str, time: f64, reason: Option<&str>) -> EventHead<'static> {
        let line = match reason {
            Some(r) => format!(r#"{{"time":{time},"type":"{kind}","reason":"{r}"}}"#),
            None => format!(r#"{{"time":{time},"type":"{kind}"}}"#),
        };
        let leaked: &'static [u8] = Box::leak(line.into_bytes().into_boxed_slice());
        EventHead::parse(leaked).expect("head")
    }

    #[test]
    fn each_class_keeps_its_newest_and_exits_never_evict_kills() {
        // One kill, then 10 exits (4 clean), then one restart: max 3.
        let mut lines = vec![head("oom_kill", 1.0, None)];
        for t in 0..10 {
            let reason = if t % 3 == 0 { "exited_ok" } else { "killed" };
            lines.push(head("exit", 10.0 + f64::from(t), Some(reason)));
        }
        lines.push(head("restart", 30.0, None));
        let mut census = Census::default();
        for line in &lines {
            census.add(Some(line));
        }
        census.add(None);
        assert!(census.needs_compaction(3));
        assert!(!census.needs_compaction(6));
        let mut plan = Plan::new(&census, 3, Trimmed::default());
        let kept: Vec<(String, f64)> = lines
            .iter()
            .filter(|h| plan.keep(Some(h)))
            .map(|h| (h.kind.to_string(), h.time))
            .collect();
        assert!(!plan.keep(None), "an unreadable line goes");
        // 7 exits over: the 4 clean ones (10, 13, 16, 19), then the 3 oldest others
        // (11, 12, 14).
        assert_eq!(
            kept,
            [
                ("oom_kill".to_owned(), 1.0),
                ("exit".to_owned(), 15.0),
                ("exit".to_owned(), 17.0),
                ("exit".to_owned(), 18.0),
                ("restart".to_owned(), 30.0)
            ]
        );
        let trimmed = plan.trimmed();
        let exits = trimmed.of("exit").expect("exits dropped");
        assert_eq!((exits.events, exits.through), (7, 19.0));
        assert_eq!(trimmed.of("oom_kill"), None);
        assert_eq!(trimmed.incomplete_since(15.0), [("exit", 19.0)]);
        assert!(trimmed.incomplete_since(19.5).is_empty());
    }

    #[test]
    fn a_dropped_userspace_kill_is_noted_as_one() {
        // Three userspace kills and one OOM kill, max 2: the two oldest userspace kills
        // go, and are noted as what they were.
        let lines = [
            head("userspace_kill", 1.0, Some("memory-pressure")),
            head("userspace_kill", 2.0, Some("memory-pressure")),
            head("oom_kill", 3.0, None),
            head("userspace_kill", 4.0, Some("memory-used")),
        ];
        let mut census = Census::default();
        for line in &lines {
            census.add(Some(line));
        }
        let mut plan = Plan::new(&census, 2, Trimmed::default());
        let kept = lines.iter().filter(|h| plan.keep(Some(h))).count();
        assert_eq!(kept, 2);
        let trimmed = plan.trimmed();
        let dropped = trimmed
            .of("userspace_kill")
            .expect("userspace kills dropped");
        assert_eq!((dropped.events, dropped.through), (2, 2.0));
        assert_eq!(trimmed.of("oom_kill"), None);
    }

    #[test]
    fn a_burst_counts_in_the_budget_of_what_it_stands_for() {
        let burst: &'static [u8] =
            br#"{"time":5,"type":"burst","group":"g","of":"exit","count":900,"since":1}"#;
        let head = EventHead::parse(burst).expect("head");
        assert_eq!(Class::of(&head), Class::Exit);
        assert_eq!(head.weight(), 900);
        let mut census = Census::default();
        census.add(Some(&head));
        assert_eq!(census.lines(Class::Exit), 1);
    }
}
