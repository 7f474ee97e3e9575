//! The event log: what happened to processes and to the host (OOM kills with the
//! kernel's numbers, restarts, exits with their reason, reboots with their cause), kept in
//! `<state.dir>/events.jsonl` across exporter restarts and reboots. The incident page,
//! `/api/v1/events`, `oomwatch events` and `oomwatch why` read it.
//!
//! `model` is the vocabulary (pure data), `lines` reads the file a line at a time,
//! `retention` decides what a compaction keeps, `throttle` limits exits and restarts per
//! group, `log` the file (append, compaction, streaming reads), `filter` what a reader
//! asks for, `recent` keeps a reader's newest lines unparsed until the end, `shared_scan`
//! lets concurrent readers share one pass. This file only declares and re-exports.

pub mod filter;
pub mod lines;
pub mod log;
pub mod model;
pub mod recent;
pub mod retention;
pub mod shared_scan;
pub mod throttle;

pub use filter::{parse_time, parse_types, EventFilter, FilterError, Newest};
pub use lines::LogLine;
pub use log::{parse_events, read_file_events, EventLog, Selected, EVENTS_FILE, QUERY_CAP};
pub use model::{Event, EventKind, OomKillEvent, EVENT_TYPES};
