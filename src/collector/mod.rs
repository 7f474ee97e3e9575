//! Collectors: one per source, each with the same small interface, registered in one
//! table with its default on/off state (`--collector.<name>` / `--no-collector.<name>`).
//!
//! A collector reads its source through the roots, parses with the pure parsers, and
//! writes its part of the snapshot. A collector that fails returns an error: the scan goes
//! on, its `oomwatch_collector_success` is 0, and the error is logged when it first
//! appears or changes (not on every scrape).

pub mod boot;
pub mod cgroups;
pub mod exits;
pub mod kmsg;
pub mod meminfo;
pub mod pressure;
pub mod processes;
pub mod vmstat;

use std::path::{Path, PathBuf};

use crate::procfs::ParseError;
use crate::snapshot::Snapshot;

/// One source of metrics.
pub trait Collector: Send {
    fn name(&self) -> &'static str;
    /// Reads the source and writes this collector's part of `out`.
    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError>;
}

/// A collector's name, default, and what it reads: the table the flags are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorSpec {
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub help: &'static str,
}

/// Every collector, in the order a scan runs them (cgroups uses what processes found).
pub const COLLECTORS: &[CollectorSpec] = &[
    CollectorSpec {
        name: "vmstat",
        enabled_by_default: true,
        help: "host OOM kill count from /proc/vmstat",
    },
    CollectorSpec {
        name: "meminfo",
        enabled_by_default: true,
        help: "host memory and swap from /proc/meminfo",
    },
    CollectorSpec {
        name: "pressure",
        enabled_by_default: true,
        help: "memory pressure stall time from /proc/pressure/memory (PSI)",
    },
    CollectorSpec {
        name: "boot",
        enabled_by_default: true,
        help: "boot time and boot_id",
    },
    CollectorSpec {
        name: "processes",
        enabled_by_default: true,
        help: "per-process OOM risk (top-K), groups and restarts from /proc/<pid>",
    },
    CollectorSpec {
        name: "exits",
        enabled_by_default: true,
        help: "exit code, signal or OOM kill of each instance, from the kernel's process-events connector (netlink)",
    },
    CollectorSpec {
        name: "cgroups",
        enabled_by_default: true,
        help: "memory cgroup limit, usage and OOM kills per group (v1 and v2)",
    },
    CollectorSpec {
        name: "kmsg",
        enabled_by_default: true,
        help: "every OOM kill named, from the kernel log (--path.kmsg)",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Unavailable(String),
}

/// Reads a whole procfs or sysfs file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CollectError> {
    std::fs::read(path).map_err(|source| CollectError::Read {
        path: path.to_path_buf(),
        source,
    })
}
