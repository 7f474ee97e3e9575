//! What the OOM report assembler reports: a kernel kill with the kernel's numbers and
//! which line named it (and so whether /proc/vmstat counts it), a userspace kill, an OOM
//! panic, an OOM that found nothing to kill, a repeated kill line; and the small set of
//! events one pushed line yields.
//!
//! This file owns those types and the facts attached to them (the constraint label, what
//! vmstat counts: docs/kernel-log.md "What /proc/vmstat oom_kill counts"). It must not
//! parse anything.

use super::userspace::UserspaceKill;

/// One OOM outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomEvent {
    /// The kernel OOM killer killed a process.
    Kill(KernelKill),
    /// A userspace OOM killer killed a process or cgroup.
    Userspace(UserspaceKill),
    /// The kernel panicked because of an OOM (panic_on_oom, or nothing left to kill).
    Panic(OomPanic),
    /// The kernel OOM killer ran and found nothing it could kill.
    NoKillable(NoKillable),
    /// A second `Killed process` line for a victim already killed in this event
    /// (memory.oom.group kills the chosen victim again with its group). Not a second
    /// kill, but the kernel counts it in /proc/vmstat oom_kill all the same.
    RepeatedKill { pid: u32, at: u64 },
}

/// Which line of the report named the kill, and so whether /proc/vmstat counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillKind {
    /// The event's victim, from its own `Killed process` line (also a header-less one).
    #[default]
    Victim,
    /// A `Killed process` line of a memory.oom.group pass (after `Tasks in ... are going
    /// to be killed due to memory.oom.group set`, 4.19+).
    GroupMember,
    /// Named only by the `oom-kill:` summary (5.0+): its `Killed process` line is missing
    /// (grepped, filtered or lost), so the RSS fields are unknown.
    SummaryOnly,
    /// `Kill process N (x) sharing same memory` (2.6.36-4.x): killed because it shares
    /// the victim's memory. No kernel counts these in /proc/vmstat oom_kill.
    SharedMemory,
}

impl KillKind {
    /// Whether `/proc/vmstat oom_kill` (4.13+) and the memcg's `oom_kill` count this kill:
    /// they count each `__oom_kill_process` (victim, group members, the repeat of the
    /// victim), never the processes killed for sharing the victim's memory.
    pub fn counted_by_vmstat(self) -> bool {
        !matches!(self, KillKind::SharedMemory)
    }
}

/// A kill by the kernel OOM killer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelKill {
    pub pid: u32,
    /// The victim's command name as printed (at most [`MAX_COMM`](super::bounds::MAX_COMM) bytes; empty when a
    /// summary names only the pid).
    pub comm: String,
    pub uid: Option<u32>,
    /// `CONSTRAINT_NONE`, `CONSTRAINT_MEMCG`, ... as printed in the `oom-kill:` summary.
    pub constraint: Option<String>,
    /// `Some(true)`: the whole system (or a cpuset/mempolicy) ran out; `Some(false)`: a
    /// memory cgroup hit its limit; `None`: the log does not say.
    pub global: Option<bool>,
    /// The memory cgroup that ran out (`oom_memcg=`, or the `limit of` path).
    pub memcg: Option<String>,
    /// The victim's memory cgroup.
    pub task_memcg: Option<String>,
    /// For a memory.oom.group member: the cgroup its group line names (`Tasks in <cg> are
    /// going to be killed due to memory.oom.group set`), the member's own or an ancestor.
    pub oom_group: Option<String>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// The command name of the task whose allocation invoked the OOM killer.
    pub invoker: Option<String>,
    /// The position passed with the line that named the kill (the summary's for a
    /// [`KillKind::SummaryOnly`] kill).
    pub at: u64,
    /// That line's time as printed.
    pub time: Option<String>,
    /// Which line named the kill; see [`KillKind::counted_by_vmstat`].
    pub kind: KillKind,
}

impl KernelKill {
    /// The bounded constraint label of a kill: `memcg` when a memory cgroup's limit was hit,
    /// `cpuset` or `mempolicy` for those constraints, `global` for the whole machine, and
    /// `unknown` when the report does not say.
    pub fn constraint_label(&self) -> &'static str {
        if self.global == Some(false) {
            return "memcg";
        }
        match self.constraint.as_deref() {
            Some("CONSTRAINT_MEMCG") => "memcg",
            Some("CONSTRAINT_CPUSET") => "cpuset",
            Some("CONSTRAINT_MEMORY_POLICY") => "mempolicy",
            _ if self.global == Some(true) => "global",
            Some("CONSTRAINT_NONE") => "global",
            _ => "unknown",
        }
    }

    /// Whether /proc/vmstat `oom_kill` counts this kill ([`KillKind::counted_by_vmstat`]).
    pub fn counted_by_vmstat(&self) -> bool {
        self.kind.counted_by_vmstat()
    }
}

/// A kernel panic caused by an OOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomPanic {
    /// The panic message after `Kernel panic - not syncing: `.
    pub reason: String,
    pub at: u64,
    pub time: Option<String>,
}

/// `Out of memory and no killable processes...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoKillable {
    /// As for [`KernelKill::global`].
    pub global: Option<bool>,
    pub memcg: Option<String>,
    pub invoker: Option<String>,
    pub at: u64,
    pub time: Option<String>,
}

/// The events one pushed line produced, in order: at most two (a summary-only kill whose
/// report this line ended, then the line's own event). Iterate it; it allocates nothing.
#[derive(Debug, Default)]
pub struct Pushed {
    events: [Option<OomEvent>; 2],
    next: usize,
}

impl Pushed {
    pub(super) fn add(&mut self, event: Option<OomEvent>) {
        if let Some(slot) = self.events.iter_mut().find(|s| s.is_none()) {
            *slot = event;
        }
    }

    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.events[self.next..].iter().all(Option::is_none)
    }
}

impl Iterator for Pushed {
    type Item = OomEvent;

    fn next(&mut self) -> Option<OomEvent> {
        while self.next < self.events.len() {
            let slot = self.events[self.next].take();
            self.next += 1;
            if slot.is_some() {
                return slot;
            }
        }
        None
    }
}
