//! The snapshot of one scan: plain data that the collectors fill and the renderer draws.
//!
//! A snapshot is built whole by one scan and never changed after; a scrape renders one
//! snapshot, so an exposition never mixes two scans. Fields are `Option` or empty where a
//! source failed or is disabled: its series are then absent and
//! `oomwatch_collector_success{collector}` is 0.

use std::sync::Arc;

use crate::cgroupfs::MemcgEvent;
use crate::dbus::UnitVerdict;
use crate::exit_reason::ExitReason;
use crate::exits::ExitsStatus;
use crate::kills::ledger::KillLedger;
use crate::kills::oomd::OomdLedger;
use crate::procfs::host::{MemInfo, MemoryPressure};
use crate::reboot::history::RebootEvent;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `/proc/vmstat` `oom_kill`.
    pub vmstat_oom_kills: Option<u64>,
    pub memory: Option<MemInfo>,
    pub pressure: Option<MemoryPressure>,
    pub boot: Option<BootSample>,
    pub processes: Option<ProcessesSample>,
    /// Memory cgroup figures per group, for the groups that map to a memory cgroup.
    pub group_memory: Vec<GroupMemory>,
    /// OOM kills read from the kernel log.
    pub kmsg: Option<KmsgSample>,
    /// The process-events listener's health.
    pub exits: Option<ExitsStatus>,
    /// systemd-oomd's kills received on D-Bus; None while the subscription is not live.
    pub oomd: Option<OomdLedger>,
    /// `Killed` signals that did not come from systemd-oomd, since the exporter started.
    pub oomd_forged_signals: Option<u64>,
    /// systemd's verdict on each unit-named group (`systemd` collector).
    pub units: Vec<UnitRow>,
    pub state: StateHealth,
    pub collectors: Vec<CollectorOutcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootSample {
    /// `/proc/stat` btime: shown, never used to decide that a reboot happened.
    pub boot_time_seconds: u64,
    pub boot_id: String,
    /// `/proc/sys/kernel/hostname`, for the incident page; None when unreadable.
    pub hostname: Option<String>,
    pub history: BootHistorySample,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BootHistorySample {
    pub boots_total: u64,
    pub unexpected_reboots_total: u64,
    /// None until a reboot has been seen with this state directory.
    pub last_reboot: Option<RebootEvent>,
}

#[derive(Debug, Clone, Default)]
pub struct ProcessesSample {
    /// The next OOM victims: the processes with the highest oom_score, best first.
    pub top: Vec<ProcessRow>,
    /// The largest processes by resident memory, largest first.
    pub top_rss: Vec<ProcessRow>,
    /// Every group, configured and automatic, by name.
    pub groups: Vec<GroupRow>,
    /// Processes that exited while they were read, since the exporter started.
    pub vanished_total: u64,
    /// Processes held open between scans by a descriptor on their oom_score_adj.
    pub pinned: u64,
    /// Exits inferred from scans since start, by `InferredCause::ALL`.
    pub exits_inferred: [u64; 2],
    /// Per group, the memory cgroup most of its processes live in (never the root).
    pub group_cgroups: Vec<GroupCgroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupCgroup {
    pub group: Arc<str>,
    /// The memory cgroup most of the group's processes live in.
    pub cgroup: Arc<str>,
    /// True when every process of the group lives there and no other group's does, so
    /// the cgroup's own figures (its OOM kills) are the group's.
    pub owned: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub pid: u32,
    pub comm: Arc<str>,
    pub group: Arc<str>,
    pub oom_score: i32,
    pub oom_score_adj: i32,
    pub resident_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub name: Arc<str>,
    pub processes: u64,
    pub resident_bytes: u64,
    /// None while the group has no process.
    pub oom_score_max: Option<i32>,
    pub oom_score_adj_min: Option<i32>,
    pub start_time_seconds: Option<f64>,
    pub restarts: u64,
    /// Named in the config file: it always exists, and 0 processes means it is down.
    pub configured: bool,
    /// Exits of top-level instances by reason; only reasons seen.
    pub exits: Vec<(ExitReason, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupMemory {
    pub group: Arc<str>,
    /// The tightest limit over the group's cgroup and its ancestors; None when unlimited.
    pub limit_bytes: Option<u64>,
    /// Usage of the cgroup that carries that limit (the group's own when unlimited).
    pub usage_bytes: u64,
    /// OOM kills counted by the kernel in the group's cgroup, when the group owns it.
    pub oom_kills: Option<u64>,
    /// The early signals of the cgroup the group owns; None when it shares it.
    pub signals: Option<GroupMemcgSignals>,
}

/// The early signals of the memory cgroup a group owns: counters carried across the
/// cgroup's re-creations (they never go down), and gauges as read now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMemcgSignals {
    /// Event counters the kernel keeps for this cgroup, by event.
    pub events: Vec<(MemcgEvent, u64)>,
    /// `memory.high`; None when unset (`max`) or on cgroup v1.
    pub high_bytes: Option<u64>,
    /// Swap in use by the cgroup.
    pub swap_bytes: Option<u64>,
    /// Pressure stall totals, seconds: `some` (waiting) and `full` (stalled).
    pub pressure_seconds: Option<[f64; 2]>,
    /// Pressure averages as read now, percent over 10 s: `some` and `full` (for the page).
    pub pressure_avg10: Option<[f64; 2]>,
    /// v1: tasks are stopped at the limit now.
    pub under_oom: Option<bool>,
}

/// systemd's verdict on the unit a group is named after.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub group: Arc<str>,
    pub verdict: UnitVerdict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KmsgSample {
    /// 1 while the kernel log is being read.
    pub up: bool,
    pub ledger: Arc<KillLedger>,
    /// Victims whose latest kill is older than this (seconds since the epoch) are past
    /// `--oom.victims-retention` and not shown.
    pub victims_since: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateHealth {
    pub write_errors: u64,
    /// State file writes since start.
    pub writes: u64,
    pub recovered: u64,
    /// Events waiting in memory for the event log to be writable.
    pub events_pending: u64,
    /// Pending events dropped because the queue was full (`--events.max`), since start.
    pub events_dropped: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorOutcome {
    pub name: &'static str,
    pub success: bool,
    pub duration_seconds: f64,
}
