//! The incident view: what an operator reads during an incident, on the page at `/` and
//! from `oomwatch events` and `oomwatch why` on the host's shell. Everything here is
//! drawn from a snapshot, the event log and the state file handed in; the server and the
//! commands do the reading.

pub mod format;
pub mod page;
pub mod page_events;
pub mod why;
