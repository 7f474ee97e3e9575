//! Collectors: one per source, each with the same small interface (`source`), registered
//! in one table with its default on/off state and its constructor (`registry`;
//! `--collector.<name>` / `--no-collector.<name>`).
//!
//! A collector reads its source through the roots, parses with the pure parsers, and
//! writes its part of the snapshot. A collector that fails returns an error: the scan goes
//! on, its `oomwatch_collector_success` is 0, and the error is logged when it first
//! appears or changes (not on every scrape). The kmsg collector's source is a thread that
//! follows the kernel log (`kmsg::follower`); the boot collector's start records the boot
//! (`boot::startup`); the oomd and systemd collectors share a D-Bus thread
//! (`systemd::bus`). This file only declares and re-exports.

pub mod boot;
pub mod cgroups;
pub mod exits;
pub mod kmsg;
pub mod meminfo;
pub mod pressure;
pub mod processes;
pub mod registry;
pub mod source;
pub mod systemd;
pub mod vmstat;

pub use registry::{CollectorSpec, Sources, COLLECTORS};
pub use source::{CollectError, Collector};
