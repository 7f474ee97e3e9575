//! The state of one OOM report while the assembler reads it: where the event stands
//! (its phase), what its lines said before its kill (context, the summary), and the pids
//! it killed (a fixed ring).
//!
//! This file owns that state and its bounds; `oom.rs` decides how each line changes it.
//! It must not read lines itself, and must keep every string capped (the callers store
//! only `bounds::bounded` strings) and the pid memory fixed.

/// Where the current event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// No event.
    #[default]
    Idle,
    /// Context seen, kill not yet.
    Open,
    /// The event's kill was emitted.
    Closed,
    /// memory.oom.group: every new pid of the pass is a kill of this event.
    Group,
}

/// Pids already killed in the current event. Fixed size: a memory.oom.group event that
/// kills more processes than this forgets the oldest, which only matters if the kernel
/// prints one of those again after that many others.
#[derive(Debug, Clone)]
pub(super) struct PidRing {
    pids: [u32; Self::SIZE],
    len: usize,
    next: usize,
}

impl PidRing {
    const SIZE: usize = 256;

    pub(super) fn new() -> Self {
        PidRing {
            pids: [0; Self::SIZE],
            len: 0,
            next: 0,
        }
    }

    pub(super) fn contains(&self, pid: u32) -> bool {
        self.pids[..self.len].contains(&pid)
    }

    pub(super) fn insert(&mut self, pid: u32) {
        self.pids[self.next] = pid;
        self.next = (self.next + 1) % Self::SIZE;
        self.len = (self.len + 1).min(Self::SIZE);
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

/// What the event's `oom-kill:` summary said.
#[derive(Debug, Clone, Default)]
pub(super) struct SummaryInfo {
    pub(super) pid: Option<u32>,
    pub(super) uid: Option<u32>,
    pub(super) task: Option<String>,
    pub(super) task_memcg: Option<String>,
    /// It names a victim whose `Killed process` line has not come yet.
    pub(super) pending: bool,
    pub(super) at: u64,
    pub(super) time: Option<String>,
}

impl SummaryInfo {
    /// Whether a kill line of `pid` / `comm` is the summary's victim: the same pid, or,
    /// when the pid was cut off, the same name (or no name either).
    pub(super) fn names(&self, pid: u32, comm: &str) -> bool {
        match self.pid {
            Some(p) => p == pid,
            None => self.task.as_deref().is_none_or(|t| t == comm),
        }
    }
}

/// What the current event's lines said before its kill.
#[derive(Debug, Clone, Default)]
pub(super) struct Context {
    pub(super) invoker: Option<String>,
    pub(super) constraint: Option<String>,
    /// From the summary: `Some(false)` for `oom_memcg=`, `Some(true)` for `global_oom`.
    pub(super) summary_global: Option<bool>,
    /// From the `<msg>:` of the selection line.
    pub(super) selection_global: Option<bool>,
    /// A memcg-only line (`Task in`, `Memory limit reached`, stats) was seen.
    pub(super) memcg_hint: bool,
    /// `Mem-Info:` was seen: the report is not a memcg OOM.
    pub(super) global_hint: bool,
    pub(super) memcg: Option<String>,
    pub(super) summary: Option<SummaryInfo>,
    /// From `Task in X killed as a result of limit of Y`: X.
    pub(super) task_in_memcg: Option<String>,
    pub(super) selected_pid: Option<u32>,
    /// The `<msg>:` memcg flag of the event's first kill line; a memory.oom.group kill
    /// of the same event repeats it.
    pub(super) kill_prefix: Option<bool>,
    /// Kernel lines since a pending summary, without a report form.
    pub(super) quiet_lines: u32,
    /// From `Tasks in <cg> are going to be killed due to memory.oom.group set`: the
    /// cgroup its members are killed with.
    pub(super) oom_group: Option<String>,
}

impl Context {
    pub(super) fn heap_bytes(&self) -> usize {
        let summary = self.summary.as_ref().map_or(0, |s| {
            [&s.task, &s.task_memcg, &s.time]
                .iter()
                .map(|v| v.as_ref().map_or(0, String::capacity))
                .sum()
        });
        [
            &self.invoker,
            &self.constraint,
            &self.memcg,
            &self.task_in_memcg,
            &self.oom_group,
        ]
        .iter()
        .map(|s| s.as_ref().map_or(0, String::capacity))
        .sum::<usize>()
            + summary
    }

    pub(super) fn global(&self, kill_prefix: Option<bool>) -> Option<bool> {
        self.summary_global
            .or(kill_prefix.map(|memcg| !memcg))
            .or(self.selection_global)
            .or(self.memcg_hint.then_some(false))
            .or(self.global_hint.then_some(true))
            .or_else(|| (self.constraint.as_deref() == Some("CONSTRAINT_MEMCG")).then_some(false))
    }

    pub(super) fn pending_summary(&self) -> Option<&SummaryInfo> {
        self.summary.as_ref().filter(|s| s.pending)
    }
}
