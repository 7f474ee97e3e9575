//! The one table of collectors: each row's name (`--collector.<name>`), default, help and
//! constructor. The flags, the enabled list and the scan are all made from it, so a
//! collector exists in one place. Owns the table and what collectors are built from; must
//! not read a source.

use std::sync::Arc;

use super::boot::BootCollector;
use super::cgroups::CgroupsCollector;
use super::exits::ExitsCollector;
use super::kmsg::KmsgCollector;
use super::meminfo::MeminfoCollector;
use super::pressure::PressureCollector;
use super::processes::{ProcessesCollector, ProcessesLinks, ProcessesSettings};
use super::source::Collector;
use super::systemd::oomd::OomdCollector;
use super::systemd::units::SystemdUnitsCollector;
use super::systemd::SystemdShared;
use super::vmstat::VmstatCollector;
use crate::exits::ExitsShared;
use crate::kills::shared::KmsgShared;
use crate::roots::Roots;

/// What the collectors are built from: the roots, the processes collector's settings, and
/// the handles shared with the threads that feed them.
#[derive(Debug, Clone)]
pub struct Sources {
    pub roots: Roots,
    pub processes: ProcessesSettings,
    pub links: ProcessesLinks,
    pub kmsg: Arc<KmsgShared>,
    /// `--oom.victims-retention`, in seconds.
    pub victims_retention_secs: f64,
    pub exits: Arc<ExitsShared>,
    /// What the D-Bus thread shares (systemd-oomd's kills, systemd's unit verdicts).
    pub systemd: Arc<SystemdShared>,
}

/// A collector's name, default, what it reads, and how it is built: the table the flags
/// and the scan are both made from.
#[derive(Debug, Clone, Copy)]
pub struct CollectorSpec {
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub help: &'static str,
    pub build: fn(&Sources) -> Box<dyn Collector>,
}

/// Every collector, in the order a scan runs them (cgroups and systemd use what processes
/// found).
pub const COLLECTORS: &[CollectorSpec] = &[
    CollectorSpec {
        name: "vmstat",
        enabled_by_default: true,
        help: "host OOM kill count from /proc/vmstat",
        build: |s| Box::new(VmstatCollector::new(s.roots.clone())),
    },
    CollectorSpec {
        name: "meminfo",
        enabled_by_default: true,
        help: "host memory and swap from /proc/meminfo",
        build: |s| Box::new(MeminfoCollector::new(s.roots.clone())),
    },
    CollectorSpec {
        name: "pressure",
        enabled_by_default: true,
        help: "memory pressure stall time from /proc/pressure/memory (PSI)",
        build: |s| Box::new(PressureCollector::new(s.roots.clone())),
    },
    CollectorSpec {
        name: "boot",
        enabled_by_default: true,
        help: "boot time and boot_id",
        build: |s| Box::new(BootCollector::new(s.roots.clone(), s.links.state.clone())),
    },
    CollectorSpec {
        name: "processes",
        enabled_by_default: true,
        help: "per-process OOM risk (top-K), groups and restarts from /proc/<pid>",
        build: |s| {
            Box::new(ProcessesCollector::new(
                s.roots.clone(),
                s.processes.clone(),
                s.links.clone(),
            ))
        },
    },
    CollectorSpec {
        name: "exits",
        enabled_by_default: true,
        help: "exit code, signal or OOM kill of each instance, from the kernel's process-events connector (netlink)",
        build: |s| Box::new(ExitsCollector::new(s.exits.clone())),
    },
    CollectorSpec {
        name: "cgroups",
        enabled_by_default: true,
        help: "memory cgroup limit, usage, OOM kills and early signals (memory.events, memory.high, swap, pressure) per group (v1 and v2)",
        build: |s| Box::new(CgroupsCollector::new(s.roots.clone(), s.links.state.clone())),
    },
    CollectorSpec {
        name: "systemd",
        enabled_by_default: true,
        help: "systemd's verdict on each unit-named group (Result, NRestarts; OOMKills, ManagedOOMKills on systemd 259+), over D-Bus",
        build: |s| Box::new(SystemdUnitsCollector::new(s.systemd.clone())),
    },
    CollectorSpec {
        name: "oomd",
        enabled_by_default: true,
        help: "systemd-oomd's kills, live from its D-Bus Killed signal (systemd 252+), without ForwardToKMsg",
        build: |s| Box::new(OomdCollector::new(s.systemd.clone())),
    },
    CollectorSpec {
        name: "kmsg",
        enabled_by_default: true,
        help: "every OOM kill named, from the kernel log (--path.kmsg)",
        build: |s| Box::new(KmsgCollector::new(s.kmsg.clone(), s.victims_retention_secs)),
    },
];

/// The enabled collectors, built, in scan order.
pub fn build(enabled: &[&'static str], sources: &Sources) -> Vec<Box<dyn Collector>> {
    COLLECTORS
        .iter()
        .filter(|spec| enabled.contains(&spec.name))
        .map(|spec| (spec.build)(sources))
        .collect()
}
