//! oomwatch: a Prometheus exporter that says which process died, why (OOM kill, reboot,
//! crash), and what will die next.
//!
//! The flow: `roots` names every path; readers in `procfs` and `cgroupfs` do thin I/O;
//! their pure parsers turn bytes into values; each `collector` fills its part of a
//! `snapshot`; `groups` and `state` keep what must outlive one scan; `metrics` renders a
//! snapshot; `server` serves it. `cli` and `config` turn flags into the one validated
//! `Config` that `app::run` starts from.

// No unwrap() or expect() in shipped code: every failure is a typed error or a counted,
// logged event. Tests may use them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod atomic_file;
pub mod capacity;
pub mod cgroupfs;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod commands;
pub mod config;
pub mod dbus;
pub mod duration;
pub mod events;
pub mod exit_reason;
pub mod exits;
pub mod groups;
pub mod incident;
pub mod kills;
pub mod kmsg;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod procfs;
pub mod reboot;
pub mod roots;
pub mod scan;
pub mod scratch_cgroup;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod state_dir;
pub mod sync;
pub mod terminal_text;
pub mod units;
pub mod yaml_nesting;
