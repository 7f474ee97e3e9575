//! The OOM event assembler: a state machine fed kernel-log messages in order that emits
//! one [`OomEvent`] per OOM kill, as soon as the kill's own line arrives.
//!
//! This file owns what a report's lines mean *together*: which context (invoker,
//! constraint, memcg paths, uid) belongs to which kill, when a second `Killed process`
//! line is the same kill, when an event is over. Single-line formats live in
//! `kernel_lines.rs` and `userspace.rs`. It must not do I/O, must not wait for lines
//! after a kill before emitting it, and must keep its state bounded whatever it is fed:
//! strings are capped and the per-event pid memory is a fixed ring.
//!
//! Rules, from mm/oom_kill.c and mm/memcontrol.c across 2.6-6.x:
//! - `<comm> invoked oom-killer:` starts an event and clears the previous one.
//! - The `oom-kill:` summary (5.0+), `Task in X killed as a result of limit of Y`
//!   (3.x-4.x), `Memory cgroup stats for X:` and `<msg>: Kill process N ... score` (the
//!   pre-5.3 selection line) are context, never kills.
//! - `Killed process` is the kill. A second `Killed process` with a pid already killed in
//!   the same event (memory.oom.group kills the victim again) is not a new kill; another
//!   pid after `Tasks in X are going to be killed due to memory.oom.group set` is, with
//!   the event's context.
//! - Without a group line, a `Killed process` line after the event's kill starts a new
//!   event of its own (the kernel rate-limits the report header, not the kill line), so
//!   it does not inherit the previous event's memcg.
//! - Global vs memcg: `oom_memcg=` (memcg; `/` would be the root, i.e. global) or
//!   `global_oom` in the summary; else the `<msg>:` prefix of the kill or selection line
//!   (`Memory cgroup out of memory` vs `Out of memory`); else a `Task in`/`Memory limit
//!   reached`/`Memory cgroup stats` line (memcg) or `Mem-Info:` (printed only for a
//!   non-memcg OOM); else `CONSTRAINT_MEMCG`. Never from
//!   `CONSTRAINT_NONE` alone: 5.0 and 5.1 print it for memcg OOMs too.

use super::bounds::{bounded, MAX_COMM, MAX_PATH, MAX_TIME, MAX_WORD};
use super::kernel_lines::{classify, KernelLine, Killed, Summary};
use super::text::Source;
use super::userspace::{UserspaceKill, UserspaceTracker};

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

/// A kill by the kernel OOM killer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelKill {
    pub pid: u32,
    /// The victim's command name as printed (at most [`MAX_COMM`] bytes).
    pub comm: String,
    pub uid: Option<u32>,
    /// `CONSTRAINT_NONE`, `CONSTRAINT_MEMCG`, ... as printed in the `oom-kill:` summary.
    pub constraint: Option<String>,
    /// `Some(true)`: the whole system (or a cpuset/mempolicy) ran out; `Some(false)`: a
    /// memory cgroup hit its limit; `None`: the log does not say.
    pub global: Option<bool>,
    /// The memory cgroup that ran out (`oom_memcg=`, or the `limit of` path).
    pub memcg: Option<String>,
    /// The victim's memory cgroup; for a memory.oom.group member, the cgroup the
    /// `Tasks in <cg> are going to be killed` line names, which holds it.
    pub task_memcg: Option<String>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// The command name of the task whose allocation invoked the OOM killer.
    pub invoker: Option<String>,
    /// The position passed with the `Killed process` line.
    pub at: u64,
    /// That line's time as printed.
    pub time: Option<String>,
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

/// Where the current event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// No event.
    #[default]
    Idle,
    /// Context seen, kill not yet.
    Open,
    /// The event's kill was emitted.
    Closed,
    /// memory.oom.group: every new pid is a kill of this event.
    Group,
}

/// Pids already killed in the current event. Fixed size: a memory.oom.group event that
/// kills more processes than this forgets the oldest, which only matters if the kernel
/// prints one of those again after that many others.
#[derive(Debug, Clone)]
struct PidRing {
    pids: [u32; Self::SIZE],
    len: usize,
    next: usize,
}

impl PidRing {
    const SIZE: usize = 256;

    fn new() -> Self {
        PidRing {
            pids: [0; Self::SIZE],
            len: 0,
            next: 0,
        }
    }

    fn contains(&self, pid: u32) -> bool {
        self.pids[..self.len].contains(&pid)
    }

    fn insert(&mut self, pid: u32) {
        self.pids[self.next] = pid;
        self.next = (self.next + 1) % Self::SIZE;
        self.len = (self.len + 1).min(Self::SIZE);
    }

    fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

/// What the current event's lines said before its kill.
#[derive(Debug, Clone, Default)]
struct Context {
    invoker: Option<String>,
    constraint: Option<String>,
    /// From the summary: `Some(false)` for `oom_memcg=`, `Some(true)` for `global_oom`.
    summary_global: Option<bool>,
    /// From the `<msg>:` of the selection line.
    selection_global: Option<bool>,
    /// A memcg-only line (`Task in`, `Memory limit reached`, stats) was seen.
    memcg_hint: bool,
    /// `Mem-Info:` was seen: the report is not a memcg OOM.
    global_hint: bool,
    memcg: Option<String>,
    /// Set by the summary, which names one task.
    summary_pid: Option<u32>,
    summary_uid: Option<u32>,
    summary_task_memcg: Option<String>,
    /// From `Task in X killed as a result of limit of Y`: X, about the selected task.
    task_in_memcg: Option<String>,
    selected_pid: Option<u32>,
    /// The `<msg>:` memcg flag of the event's first kill line; a memory.oom.group kill
    /// of the same event repeats it.
    kill_prefix: Option<bool>,
    /// From `Tasks in <cg> are going to be killed due to memory.oom.group set`: the
    /// cgroup every following member of the event is killed in.
    oom_group: Option<String>,
}

impl Context {
    fn heap_bytes(&self) -> usize {
        [
            &self.invoker,
            &self.constraint,
            &self.memcg,
            &self.summary_task_memcg,
            &self.task_in_memcg,
            &self.oom_group,
        ]
        .iter()
        .map(|s| s.as_ref().map_or(0, String::capacity))
        .sum()
    }

    fn global(&self, kill_prefix: Option<bool>) -> Option<bool> {
        self.summary_global
            .or(kill_prefix.map(|memcg| !memcg))
            .or(self.selection_global)
            .or(self.memcg_hint.then_some(false))
            .or(self.global_hint.then_some(true))
            .or_else(|| (self.constraint.as_deref() == Some("CONSTRAINT_MEMCG")).then_some(false))
    }
}

/// Joins kernel-log lines into OOM events. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct OomAssembler {
    phase: Phase,
    ctx: Context,
    killed: PidRing,
    userspace: UserspaceTracker,
}

impl Default for OomAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl OomAssembler {
    /// An assembler with no event in progress.
    pub fn new() -> Self {
        OomAssembler {
            phase: Phase::Idle,
            ctx: Context::default(),
            killed: PidRing::new(),
            userspace: UserspaceTracker::default(),
        }
    }

    /// Bytes this assembler holds on the heap (its fixed part is `size_of::<Self>()`).
    /// Bounded by a few capped strings whatever is pushed.
    pub fn heap_bytes(&self) -> usize {
        self.ctx.heap_bytes() + self.userspace.heap_bytes()
    }

    /// Feeds one message. `at` is an opaque position (kmsg seq, or 1-based text line)
    /// and `time` the time as printed, if any. Returns the event this line completes.
    ///
    /// Kernel formats are looked for in `Source::Kernel` and `Source::Unknown` lines
    /// (never in a program's); userspace killers only in lines from their own program
    /// (and oomd's untagged kmsg record).
    pub fn push(
        &mut self,
        source: Source<'_>,
        message: &str,
        at: u64,
        time: Option<&str>,
    ) -> Option<OomEvent> {
        match source {
            Source::Program(_) => self
                .userspace
                .push(source, message, at, time)
                .map(OomEvent::Userspace),
            Source::Kernel | Source::Unknown => match classify(message) {
                Some(line) => self.kernel_line(line, at, time),
                None if message.starts_with("oomd kill: ") => self
                    .userspace
                    .push(source, message, at, time)
                    .map(OomEvent::Userspace),
                None => None,
            },
        }
    }

    fn reset(&mut self) {
        self.ctx = Context::default();
        self.killed.clear();
        self.phase = Phase::Idle;
    }

    /// Context lines after the event's kill belong to a new event whose header was lost
    /// or rate-limited.
    fn open(&mut self) {
        if matches!(self.phase, Phase::Closed | Phase::Group) {
            self.reset();
        }
        self.phase = Phase::Open;
    }

    fn kernel_line(
        &mut self,
        line: KernelLine<'_>,
        at: u64,
        time: Option<&str>,
    ) -> Option<OomEvent> {
        match line {
            KernelLine::Invoked { comm } => {
                self.reset();
                self.phase = Phase::Open;
                self.ctx.invoker = Some(bounded(comm, MAX_COMM));
                None
            }
            KernelLine::Summary(s) => {
                self.open();
                self.summary(&s);
                None
            }
            KernelLine::TaskIn { task_memcg, memcg } => {
                self.open();
                self.ctx.memcg_hint = true;
                self.ctx.task_in_memcg = Some(bounded(task_memcg, MAX_PATH));
                if self.ctx.memcg.is_none() {
                    self.ctx.memcg = Some(bounded(memcg, MAX_PATH));
                }
                None
            }
            KernelLine::LimitReached { memcg } | KernelLine::MemcgStats { memcg } => {
                // Stats lines come in the middle of a report; they never start one.
                if self.phase == Phase::Open {
                    self.ctx.memcg_hint = true;
                    if self.ctx.memcg.is_none() {
                        self.ctx.memcg = Some(bounded(memcg, MAX_PATH));
                    }
                }
                None
            }
            KernelLine::MemInfo => {
                if self.phase == Phase::Open {
                    self.ctx.global_hint = true;
                }
                None
            }
            KernelLine::Selected { pid, memcg_prefix } => {
                self.open();
                self.ctx.selected_pid = Some(pid);
                if let Some(memcg) = memcg_prefix {
                    self.ctx.selection_global = Some(!memcg);
                }
                None
            }
            KernelLine::Group { cgroup } => {
                if self.phase != Phase::Idle {
                    self.phase = Phase::Group;
                    self.ctx.oom_group = Some(bounded(cgroup, MAX_PATH));
                }
                None
            }
            KernelLine::Killed(k) => self.killed(&k, at, time),
            KernelLine::NoKillable => {
                let event = NoKillable {
                    global: self.ctx.global(None),
                    memcg: self.ctx.memcg.clone(),
                    invoker: self.ctx.invoker.clone(),
                    at,
                    time: time.map(|t| bounded(t, MAX_TIME)),
                };
                self.phase = Phase::Closed;
                Some(OomEvent::NoKillable(event))
            }
            KernelLine::Panic { reason } => {
                self.reset();
                Some(OomEvent::Panic(OomPanic {
                    reason: bounded(reason, MAX_WORD),
                    at,
                    time: time.map(|t| bounded(t, MAX_TIME)),
                }))
            }
        }
    }

    fn summary(&mut self, s: &Summary<'_>) {
        let ctx = &mut self.ctx;
        if let Some(c) = s.constraint {
            ctx.constraint = Some(bounded(c, MAX_WORD));
        }
        if let Some(m) = s.oom_memcg {
            // The root memcg has no limit, so `oom_memcg=/` would be a system-wide OOM.
            ctx.summary_global = Some(m == "/");
            ctx.memcg = Some(bounded(m, MAX_PATH));
        } else if s.global_oom {
            ctx.summary_global = Some(true);
        }
        ctx.summary_pid = s.pid;
        ctx.summary_uid = s.uid;
        ctx.summary_task_memcg = s.task_memcg.map(|t| bounded(t, MAX_PATH));
    }

    fn killed(&mut self, k: &Killed<'_>, at: u64, time: Option<&str>) -> Option<OomEvent> {
        match self.phase {
            Phase::Group | Phase::Closed if self.killed.contains(k.pid) => {
                return Some(OomEvent::RepeatedKill { pid: k.pid, at })
            }
            Phase::Closed => self.reset(),
            // A group kill repeats its event's `<msg>:`; another one is a new event
            // whose report header was rate-limited.
            Phase::Group
                if k.memcg_prefix.is_some()
                    && self.ctx.kill_prefix.is_some()
                    && k.memcg_prefix != self.ctx.kill_prefix =>
            {
                self.reset()
            }
            _ => {}
        }
        let ctx = &self.ctx;
        let summary_matches = ctx.summary_pid == Some(k.pid);
        let selection_matches = ctx.selected_pid.is_none_or(|p| p == k.pid);
        let in_group = self.phase == Phase::Group;
        let task_memcg = if in_group {
            // The group line names the members' cgroup; without it, a member that no scan
            // saw alive would be named by its comm alone.
            ctx.oom_group.clone()
        } else if summary_matches {
            ctx.summary_task_memcg.clone()
        } else if selection_matches && ctx.summary_pid.is_none() {
            ctx.task_in_memcg.clone()
        } else {
            None
        };
        let kill = KernelKill {
            pid: k.pid,
            comm: bounded(k.comm, MAX_COMM),
            uid: k.uid.or(if summary_matches {
                ctx.summary_uid
            } else {
                None
            }),
            constraint: ctx.constraint.clone(),
            global: ctx.global(k.memcg_prefix),
            memcg: ctx.memcg.clone(),
            task_memcg,
            total_vm_kb: k.total_vm_kb,
            anon_rss_kb: k.anon_rss_kb,
            file_rss_kb: k.file_rss_kb,
            shmem_rss_kb: k.shmem_rss_kb,
            pgtables_kb: k.pgtables_kb,
            oom_score_adj: k.oom_score_adj,
            invoker: ctx.invoker.clone(),
            at,
            time: time.map(|t| bounded(t, MAX_TIME)),
        };
        self.killed.insert(k.pid);
        if self.ctx.kill_prefix.is_none() {
            self.ctx.kill_prefix = k.memcg_prefix;
        }
        if !in_group {
            self.phase = Phase::Closed;
        }
        Some(OomEvent::Kill(kill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Vec<OomEvent> {
        let mut a = OomAssembler::new();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| a.push(Source::Kernel, l, i as u64 + 1, None))
            .collect()
    }

    fn kills(events: &[OomEvent]) -> Vec<&KernelKill> {
        events
            .iter()
            .filter_map(|e| match e {
                OomEvent::Kill(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn summary_and_killed_are_one_kill() {
        let ev = feed(&[
            "stress invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=stress,pid=42,uid=1000",
            "Out of memory: Killed process 42 (stress) total-vm:100kB, anon-rss:90kB, file-rss:1kB, shmem-rss:0kB, UID:1000 pgtables:4kB oom_score_adj:0",
            "oom_reaper: reaped process 42 (stress), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.len(), 1);
        let k = k[0];
        assert_eq!((k.pid, k.comm.as_str(), k.uid), (42, "stress", Some(1000)));
        assert_eq!(k.global, Some(true));
        assert_eq!(k.memcg, None);
        assert_eq!(k.task_memcg.as_deref(), Some("/user.slice"));
        assert_eq!(k.invoker.as_deref(), Some("stress"));
        assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_NONE"));
        assert_eq!(k.at, 3);
    }

    #[test]
    fn old_kernel_selection_then_child_victim() {
        let ev = feed(&[
            "java invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=0",
            "Out of memory: kill process 2592 (java) score 1234 or a child",
            "Killed process 2593 (java-child) vsz:200kB, anon-rss:100kB, file-rss:4kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.len(), 1);
        assert_eq!((k[0].pid, k[0].comm.as_str()), (2593, "java-child"));
        assert_eq!(k[0].global, Some(true));
    }

    #[test]
    fn constraint_none_with_oom_memcg_is_memcg() {
        let ev = feed(&[
            "java invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=999",
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=abc,mems_allowed=0,oom_memcg=/kubepods/pod1/abc,task_memcg=/kubepods/pod1/abc,task=java,pid=7,uid=1000",
            "Memory cgroup out of memory: Kill process 7 (java) score 1999 or sacrifice child",
            "Killed process 7 (java) total-vm:10kB, anon-rss:5kB, file-rss:0kB, shmem-rss:0kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].global, Some(false));
        assert_eq!(k[0].memcg.as_deref(), Some("/kubepods/pod1/abc"));
        assert_eq!(k[0].uid, Some(1000));
    }

    #[test]
    fn oom_group_dedupes_same_pid_and_counts_others() {
        let ev = feed(&[
            "node invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=985",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/pod,task_memcg=/pod/c1,task=node,pid=10,uid=1000",
            "Memory cgroup out of memory: Killed process 10 (node) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:1kB oom_score_adj:985",
            "Tasks in /pod are going to be killed due to memory.oom.group set",
            "Memory cgroup out of memory: Killed process 10 (node) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:1kB oom_score_adj:985",
            "Memory cgroup out of memory: Killed process 11 (sidecar) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:-998",
            "Memory cgroup out of memory: Killed process 11 (sidecar) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:-998",
        ]);
        let k = kills(&ev);
        assert_eq!(k.iter().map(|k| k.pid).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(k[1].memcg.as_deref(), Some("/pod"));
        assert_eq!(k[1].global, Some(false));
        assert_eq!(k[1].task_memcg.as_deref(), Some("/pod"));
        assert_eq!(k[1].uid, Some(0));
    }

    #[test]
    fn kill_with_other_prefix_after_group_is_a_new_event() {
        let ev = feed(&[
            "a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/pod,task_memcg=/pod,task=a,pid=1,uid=0",
            "Memory cgroup out of memory: Killed process 1 (a) total-vm:1kB",
            "Tasks in /pod are going to be killed due to memory.oom.group set",
            "Memory cgroup out of memory: Killed process 2 (b) total-vm:1kB",
            "Out of memory: Killed process 3 (c) total-vm:1kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.iter().map(|k| k.pid).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(k[1].memcg.as_deref(), Some("/pod"));
        assert_eq!((k[2].memcg.as_deref(), k[2].global), (None, Some(true)));
    }

    #[test]
    fn duplicate_killed_line_without_group_line_is_one_kill() {
        let ev = feed(&[
            "Out of memory: Killed process 5 (a) total-vm:1kB",
            "Out of memory: Killed process 5 (a) total-vm:1kB",
        ]);
        assert_eq!(kills(&ev).len(), 1);
    }

    #[test]
    fn ratelimited_kill_does_not_inherit_previous_memcg() {
        let ev = feed(&[
            "a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=a,pid=1,uid=0",
            "Memory cgroup out of memory: Killed process 1 (a) total-vm:1kB",
            "Out of memory: Killed process 2 (b) total-vm:1kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.len(), 2);
        assert_eq!(k[1].memcg, None);
        assert_eq!(k[1].global, Some(true));
        assert_eq!(k[1].invoker, None);
    }

    #[test]
    fn pre_5_memcg_context() {
        let ev = feed(&[
            "java invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0",
            "java cpuset=/ mems_allowed=0",
            "Task in /docker/abc killed as a result of limit of /docker/abc",
            "memory: usage 524288kB, limit 524288kB, failcnt 100",
            "Memory cgroup stats for /docker/abc: cache:0KB rss:524288KB",
            "[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
            "[ 4242]  1000  4242   300000   131072     300        0             0 java",
            "Memory cgroup out of memory: Kill process 4242 (java) score 1000 or sacrifice child",
            "Killed process 4242 (java) total-vm:1200000kB, anon-rss:524000kB, file-rss:288kB",
        ]);
        let k = kills(&ev);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].global, Some(false));
        assert_eq!(k[0].memcg.as_deref(), Some("/docker/abc"));
        assert_eq!(k[0].task_memcg.as_deref(), Some("/docker/abc"));
        assert_eq!(k[0].constraint, None);
    }

    #[test]
    fn panic_and_no_killable() {
        let ev = feed(&[
            "a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "Out of memory and no killable processes...",
            "Kernel panic - not syncing: System is deadlocked on memory",
        ]);
        assert_eq!(ev.len(), 2);
        match &ev[0] {
            OomEvent::NoKillable(n) => {
                assert_eq!(n.invoker.as_deref(), Some("a"));
                assert_eq!(n.at, 2);
            }
            e => panic!("{e:?}"),
        }
        match &ev[1] {
            OomEvent::Panic(p) => assert_eq!(p.reason, "System is deadlocked on memory"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn program_lines_never_make_kernel_kills() {
        let mut a = OomAssembler::new();
        assert!(a
            .push(
                Source::Program("earlyoom"),
                "Out of memory: Killed process 5 (a) total-vm:1kB",
                1,
                None
            )
            .is_none());
        // A kernel kill of a process *named* earlyoom is a kernel kill.
        match a.push(
            Source::Kernel,
            "Out of memory: Killed process 6 (earlyoom) total-vm:1kB",
            2,
            None,
        ) {
            Some(OomEvent::Kill(k)) => assert_eq!(k.comm, "earlyoom"),
            e => panic!("{e:?}"),
        }
    }
}
