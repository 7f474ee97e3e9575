//! One scan: run every enabled collector in order into a fresh snapshot, time each, and
//! log a collector's error when it first appears or changes (a broken source must not
//! write a line per scrape). Runs on a blocking thread, never on the async reactor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::collector::Collector;
use crate::events::EventLog;
use crate::snapshot::{CollectorOutcome, Snapshot, StateHealth};
use crate::state::StateStore;

pub struct Scanner {
    collectors: Vec<Box<dyn Collector>>,
    state: Arc<StateStore>,
    /// Its write errors count with the state file's: both live in `--state.dir`.
    events: Option<Arc<EventLog>>,
    /// The last error each collector reported, to log changes only.
    last_errors: HashMap<&'static str, String>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.collectors.iter().map(|c| c.name()).collect();
        f.debug_struct("Scanner")
            .field("collectors", &names)
            .finish()
    }
}

impl Scanner {
    pub fn new(collectors: Vec<Box<dyn Collector>>, state: Arc<StateStore>) -> Self {
        Self {
            collectors,
            state,
            events: None,
            last_errors: HashMap::new(),
        }
    }

    /// Also reports the event log's failed writes.
    pub fn with_event_log(mut self, events: Arc<EventLog>) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs every collector once and returns what they found.
    pub fn scan(&mut self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for collector in &mut self.collectors {
            let name = collector.name();
            let started = Instant::now();
            let result = collector.collect(&mut snapshot);
            let duration_seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => {
                    if self.last_errors.remove(name).is_some() {
                        tracing::info!(collector = name, "collector recovered");
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.last_errors.get(name) != Some(&message) {
                        tracing::warn!(collector = name, error = %message, "collector failed; its metrics are left out and oomwatch_collector_success is 0");
                        self.last_errors.insert(name, message);
                    }
                }
            }
            snapshot.collectors.push(CollectorOutcome {
                name,
                success: !self.last_errors.contains_key(name),
                duration_seconds,
            });
        }
        if let Some(events) = &self.events {
            // Events a failed write left pending; the error is counted below.
            let _ = events.flush();
        }
        snapshot.state = StateHealth {
            write_errors: self.state.write_errors()
                + self
                    .events
                    .as_ref()
                    .map_or(0, |events| events.write_errors()),
            writes: self.state.writes(),
            recovered: self.state.recovered(),
            events_pending: self
                .events
                .as_ref()
                .map_or(0, |events| events.pending() as u64),
            events_dropped: self.events.as_ref().map_or(0, |events| events.dropped()),
        };
        snapshot
    }
}
