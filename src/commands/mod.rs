//! Subcommands other than serving: tools an operator runs on a host's shell during an
//! incident. Each reads its input, prints, and returns the process exit code.

pub mod drill;
pub mod drill_http;
pub mod events;
pub mod scan_log;
pub mod why;
