//! The event log: what happened to processes and to the host (OOM kills with the
//! kernel's numbers, restarts, exits with their reason, reboots with their cause), kept in
//! `<state.dir>/events.jsonl` across exporter restarts and reboots. The incident page,
//! `/api/v1/events`, `oomwatch events` and `oomwatch why` read it.
//!
//! `model` is the vocabulary (pure data), `log` the file (append, compaction, reading),
//! `filter` what a reader asks for. This file only declares and re-exports.

pub mod filter;
pub mod log;
pub mod model;

pub use filter::{parse_time, parse_types, EventFilter, FilterError};
pub use log::{parse_events, read_events, EventLog, ReadEvents, EVENTS_FILE};
pub use model::{Event, EventKind, OomKillEvent, EVENT_TYPES};
