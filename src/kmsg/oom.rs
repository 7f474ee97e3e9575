//! The OOM event assembler: a state machine fed kernel-log messages in order that emits
//! one [`OomEvent`] per OOM kill, as soon as the kill's own line arrives.
//!
//! This file owns what a report's lines mean *together*: which context (invoker,
//! constraint, memcg paths, uid) belongs to which kill, when a second `Killed process`
//! line is the same kill, when a report ends. Single-line forms live in
//! `kernel_lines.rs` and `userspace.rs`; the rules, with the kernel source behind each,
//! are in docs/kernel-log.md ("How a report is read"). It must not do I/O, must never
//! give one event's context to another event's kill, must not wait for lines after a
//! kill before emitting it (only a summary whose `Killed process` line is missing waits,
//! for the end of its report or [`OomAssembler::finish`]), and must keep its state
//! bounded whatever it is fed: strings are capped and the per-event pid memory is a
//! fixed ring. What it reports is `outcome.rs`'s; the state it keeps is `report.rs`'s.

use super::bounds::{bounded, MAX_COMM, MAX_PATH, MAX_TIME, MAX_WORD};
use super::kernel_lines::{classify, KernelLine, Killed, Summary};
pub use super::outcome::{KernelKill, KillKind, NoKillable, OomEvent, OomPanic, Pushed};
use super::report::{Context, Phase, PidRing, SummaryInfo};
use super::text::Source;
use super::userspace::UserspaceTracker;

/// Kernel lines without a report form after which a summary whose kill line has not come
/// is taken as a kill of its own (the `Killed process` record was lost).
const SUMMARY_PATIENCE: u32 = 64;

/// Joins kernel-log lines into OOM events. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct OomAssembler {
    phase: Phase,
    ctx: Context,
    /// Pids killed since the last report header (a header-less kill keeps them: the
    /// kernel prints a header for every event whose report it does not rate-limit).
    killed: PidRing,
    /// The pid of a summary-only kill among them (its late kill line is no new kill).
    summary_only: Option<u32>,
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
            summary_only: None,
            userspace: UserspaceTracker::default(),
        }
    }

    /// Bytes this assembler holds on the heap (its fixed part is `size_of::<Self>()`).
    /// Bounded by a few capped strings whatever is pushed.
    pub fn heap_bytes(&self) -> usize {
        self.ctx.heap_bytes() + self.userspace.heap_bytes()
    }

    /// Feeds one message. `at` is an opaque position (kmsg seq, or 1-based text line)
    /// and `time` the time as printed, if any. Returns the events this line completes
    /// (usually none or one; see [`Pushed`]).
    ///
    /// Kernel forms are looked for in `Source::Kernel` and `Source::Unknown` lines
    /// (never in a program's), at the start of `message` only; userspace killers only in
    /// lines from their own program (and oomd's untagged kmsg record).
    pub fn push(
        &mut self,
        source: Source<'_>,
        message: &str,
        at: u64,
        time: Option<&str>,
    ) -> Pushed {
        let mut out = Pushed::default();
        match source {
            Source::Program(_) => out.add(
                self.userspace
                    .push(source, message, at, time)
                    .map(OomEvent::Userspace),
            ),
            Source::Kernel | Source::Unknown => match classify(message) {
                Some(line) => self.kernel_line(line, at, time, &mut out),
                None if message.starts_with("oomd kill: ") => out.add(
                    self.userspace
                        .push(source, message, at, time)
                        .map(OomEvent::Userspace),
                ),
                None if source == Source::Kernel => self.other_kernel_line(&mut out),
                None => {}
            },
        }
        out
    }

    /// The end of the input: a summary whose kill line never came is a kill.
    pub fn finish(&mut self) -> Option<OomEvent> {
        let event = self.flush_summary();
        self.reset();
        event
    }

    fn reset(&mut self) {
        self.ctx = Context::default();
        self.killed.clear();
        self.summary_only = None;
        self.phase = Phase::Idle;
    }

    /// A new event starts with `line`'s report: the previous one's pending summary kill
    /// is emitted, and context lines after a kill belong to a new event whose header
    /// was lost or rate-limited.
    fn open(&mut self, out: &mut Pushed) {
        out.add(self.flush_summary());
        if matches!(self.phase, Phase::Closed | Phase::Group) {
            self.reset();
        }
        self.phase = Phase::Open;
    }

    /// A kernel line that is no report form: it ends a memory.oom.group pass, and counts
    /// toward giving up on a pending summary's kill line.
    fn other_kernel_line(&mut self, out: &mut Pushed) {
        if self.phase == Phase::Group {
            self.phase = Phase::Closed;
        }
        if self.ctx.pending_summary().is_some() {
            self.ctx.quiet_lines += 1;
            if self.ctx.quiet_lines >= SUMMARY_PATIENCE {
                out.add(self.flush_summary());
            }
        }
    }

    fn kernel_line(&mut self, line: KernelLine<'_>, at: u64, time: Option<&str>, out: &mut Pushed) {
        let in_pass = matches!(
            line,
            KernelLine::Killed(_) | KernelLine::Skipped { .. } | KernelLine::Group { .. }
        );
        if self.phase == Phase::Group && !in_pass {
            self.phase = Phase::Closed;
        }
        match line {
            KernelLine::Invoked { comm } => {
                out.add(self.flush_summary());
                self.reset();
                self.phase = Phase::Open;
                self.ctx.invoker = comm.map(|c| bounded(c, MAX_COMM));
            }
            KernelLine::Summary(s) => self.summary(&s, at, time, out),
            KernelLine::SummaryTail(s) => self.summary_tail(&s),
            KernelLine::Selected { pid, memcg_prefix } => {
                // 5.0-5.2 print the selection line of the summary's task after it, in the
                // same event; any other selection line starts an event.
                let same_event = self.phase == Phase::Open
                    && self
                        .ctx
                        .summary
                        .as_ref()
                        .is_some_and(|s| s.pid == Some(pid));
                if !same_event {
                    self.open(out);
                }
                self.ctx.selected_pid = Some(pid);
                if let Some(memcg) = memcg_prefix {
                    self.ctx.selection_global = Some(!memcg);
                }
            }
            KernelLine::Killed(k) => self.killed(&k, at, time, out),
            KernelLine::Shared { pid, comm } => out.add(self.shared(pid, comm, at, time)),
            KernelLine::Reaped { pid } => {
                if self
                    .ctx
                    .pending_summary()
                    .is_some_and(|s| s.pid == Some(pid))
                {
                    out.add(self.flush_summary());
                }
            }
            KernelLine::Skipped { pid } => {
                if let Some(s) = self.ctx.summary.as_mut().filter(|s| s.pid == Some(pid)) {
                    s.pending = false;
                }
            }
            KernelLine::Group { cgroup } => {
                if self.phase != Phase::Idle {
                    self.phase = Phase::Group;
                    self.ctx.oom_group = Some(bounded(cgroup, MAX_PATH));
                }
            }
            other => self.context_line(other, at, time, out),
        }
    }

    /// Lines that add to the current event's context, and the event's end.
    fn context_line(
        &mut self,
        line: KernelLine<'_>,
        at: u64,
        time: Option<&str>,
        out: &mut Pushed,
    ) {
        match line {
            KernelLine::TaskIn { task_memcg, memcg } => {
                self.open(out);
                self.ctx.memcg_hint = true;
                self.ctx.task_in_memcg = Some(bounded(task_memcg, MAX_PATH));
                if self.ctx.memcg.is_none() {
                    self.ctx.memcg = Some(bounded(memcg, MAX_PATH));
                }
            }
            // Stats lines come in the middle of a report; they never start one.
            KernelLine::LimitReached { memcg } | KernelLine::MemcgStats { memcg }
                if self.phase == Phase::Open =>
            {
                self.ctx.memcg_hint = true;
                if self.ctx.memcg.is_none() {
                    self.ctx.memcg = Some(bounded(memcg, MAX_PATH));
                }
            }
            KernelLine::MemInfo if self.phase == Phase::Open => self.ctx.global_hint = true,
            KernelLine::NoKillable => {
                out.add(self.flush_summary());
                out.add(Some(OomEvent::NoKillable(NoKillable {
                    global: self.ctx.global(None),
                    memcg: self.ctx.memcg.clone(),
                    invoker: self.ctx.invoker.clone(),
                    at,
                    time: time.map(|t| bounded(t, MAX_TIME)),
                })));
                self.phase = Phase::Closed;
            }
            KernelLine::Panic { reason } => {
                out.add(self.flush_summary());
                self.reset();
                out.add(Some(OomEvent::Panic(OomPanic {
                    reason: bounded(reason, MAX_WORD),
                    at,
                    time: time.map(|t| bounded(t, MAX_TIME)),
                })));
            }
            _ => {}
        }
    }

    fn summary(&mut self, s: &Summary<'_>, at: u64, time: Option<&str>, out: &mut Pushed) {
        let killed_just_now = matches!(self.phase, Phase::Closed | Phase::Group)
            && s.pid.is_some_and(|p| self.killed.contains(p));
        if killed_just_now {
            // The summary of the kill just emitted, printed or quoted after it
            // (newest-first journals): no second kill, and nothing left to add to it.
            return;
        }
        self.open(out);
        let ctx = &mut self.ctx;
        if let Some(c) = s.constraint {
            ctx.constraint = Some(bounded(c, MAX_WORD));
        }
        ctx.summary = Some(SummaryInfo {
            at,
            time: time.map(|t| bounded(t, MAX_TIME)),
            ..SummaryInfo::default()
        });
        self.summary_fields(s);
    }

    /// The second record of a summary that a 4.20-rc kernel split in two.
    fn summary_tail(&mut self, s: &Summary<'_>) {
        let cut = self.phase == Phase::Open
            && self
                .ctx
                .summary
                .as_ref()
                .is_some_and(|head| head.pid.is_none());
        if cut {
            self.summary_fields(s);
        }
    }

    fn summary_fields(&mut self, s: &Summary<'_>) {
        let ctx = &mut self.ctx;
        if let Some(m) = s.oom_memcg {
            // The root memcg has no limit, so `oom_memcg=/` would be a system-wide OOM.
            ctx.summary_global = Some(m == "/");
            ctx.memcg = Some(bounded(m, MAX_PATH));
        } else if s.global_oom {
            ctx.summary_global = Some(true);
        }
        let Some(info) = ctx.summary.as_mut() else {
            return;
        };
        if let Some(t) = s.task_memcg {
            info.task_memcg = Some(bounded(t, MAX_PATH));
        }
        if let Some(t) = s.task {
            info.task = Some(bounded(t, MAX_COMM));
        }
        info.pid = info.pid.or(s.pid);
        info.uid = info.uid.or(s.uid);
        info.pending = info.pid.is_some();
    }

    /// The pending summary's victim as a kill of its own (its `Killed process` line is
    /// missing), or nothing.
    fn flush_summary(&mut self) -> Option<OomEvent> {
        let s = self.ctx.summary.as_mut().filter(|s| s.pending)?;
        s.pending = false;
        let s = s.clone();
        let pid = s.pid?;
        let ctx = &self.ctx;
        let kill = KernelKill {
            oom_group: None,
            pid,
            comm: s.task.unwrap_or_default(),
            uid: s.uid,
            constraint: ctx.constraint.clone(),
            global: ctx.global(None),
            memcg: ctx.memcg.clone(),
            task_memcg: s.task_memcg,
            total_vm_kb: None,
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
            pgtables_kb: None,
            oom_score_adj: None,
            invoker: ctx.invoker.clone(),
            at: s.at,
            time: s.time,
            kind: KillKind::SummaryOnly,
        };
        self.killed.insert(pid);
        self.summary_only = Some(pid);
        self.phase = Phase::Closed;
        Some(OomEvent::Kill(kill))
    }

    fn killed(&mut self, k: &Killed<'_>, at: u64, time: Option<&str>, out: &mut Pushed) {
        match self.phase {
            Phase::Group | Phase::Closed if self.killed.contains(k.pid) => {
                if self.summary_only != Some(k.pid) {
                    out.add(Some(OomEvent::RepeatedKill { pid: k.pid, at }));
                }
                return;
            }
            // A kill line after the event's kill, without a header: another event whose
            // report was rate-limited. None of this event's context is its.
            Phase::Closed => {
                self.ctx = Context::default();
                self.phase = Phase::Idle;
            }
            // A group kill repeats its event's `<msg>:`; another one is a new event
            // whose report header was rate-limited.
            Phase::Group
                if k.memcg_prefix.is_some()
                    && self.ctx.kill_prefix.is_some()
                    && k.memcg_prefix != self.ctx.kill_prefix =>
            {
                self.reset()
            }
            Phase::Open => {
                // The summary named another victim and no selection line explains a
                // child: its kill line is missing, and this kill is another event's.
                let other_victim = self.ctx.pending_summary().is_some_and(|s| {
                    s.pid.is_some() && !s.names(k.pid, k.comm) && self.ctx.selected_pid.is_none()
                });
                if other_victim {
                    out.add(self.flush_summary());
                    self.reset();
                }
            }
            _ => {}
        }
        out.add(Some(OomEvent::Kill(self.kill_from_line(k, at, time))));
    }

    fn kill_from_line(&mut self, k: &Killed<'_>, at: u64, time: Option<&str>) -> KernelKill {
        let in_group = self.phase == Phase::Group;
        let ctx = &self.ctx;
        let summary = ctx
            .summary
            .as_ref()
            .filter(|s| !in_group && s.names(k.pid, k.comm));
        let task_memcg = if in_group {
            None
        } else if let Some(s) = summary {
            s.task_memcg.clone().or_else(|| ctx.task_in_memcg.clone())
        } else if ctx.summary.is_none() {
            ctx.task_in_memcg.clone()
        } else {
            None
        };
        let kill = KernelKill {
            // A member no scan saw alive is named by the unit it was killed with.
            oom_group: if in_group {
                ctx.oom_group.clone()
            } else {
                None
            },
            pid: k.pid,
            comm: bounded(k.comm, MAX_COMM),
            uid: k.uid.or(summary.and_then(|s| s.uid)),
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
            kind: if in_group {
                KillKind::GroupMember
            } else {
                KillKind::Victim
            },
        };
        if let Some(s) = self.ctx.summary.as_mut() {
            s.pending = false;
        }
        self.killed.insert(k.pid);
        if self.ctx.kill_prefix.is_none() {
            self.ctx.kill_prefix = k.memcg_prefix;
        }
        if !in_group {
            self.phase = Phase::Closed;
        }
        kill
    }

    /// `Kill process N (x) sharing same memory`: a kill of the current event (a lone
    /// one, when its report is not in view, has no context).
    fn shared(&mut self, pid: u32, comm: &str, at: u64, time: Option<&str>) -> Option<OomEvent> {
        if self.phase != Phase::Idle && self.killed.contains(pid) {
            return None;
        }
        let ctx = &self.ctx;
        let kill = KernelKill {
            oom_group: None,
            pid,
            comm: bounded(comm, MAX_COMM),
            uid: None,
            constraint: ctx.constraint.clone(),
            global: ctx.global(ctx.kill_prefix),
            memcg: ctx.memcg.clone(),
            task_memcg: None,
            total_vm_kb: None,
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
            pgtables_kb: None,
            oom_score_adj: None,
            invoker: ctx.invoker.clone(),
            at,
            time: time.map(|t| bounded(t, MAX_TIME)),
            kind: KillKind::SharedMemory,
        };
        self.killed.insert(pid);
        if self.phase == Phase::Idle {
            self.phase = Phase::Closed;
        }
        Some(OomEvent::Kill(kill))
    }
}

#[cfg(test)]
mod summary_tests;
#[cfg(test)]
mod tests;
