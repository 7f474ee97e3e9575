//! The kernel's own OOM messages, one at a time: each form the kernel has printed from
//! 2.2 to 6.x (mm/oom_kill.c, mm/memcontrol.c, vendor variants), recognised only when it
//! starts at the start of the message. The forms, the versions that print them and the
//! evidence are in docs/kernel-log.md.
//!
//! This file owns turning one message into a typed [`KernelLine`] that borrows from it,
//! and the measures the text reader needs to rejoin broken lines ([`form_quality`],
//! [`glued_at`]). It must not keep state across lines or allocate (the assembler in
//! `oom.rs` decides what a line means for the event), must never look for a form in the
//! middle of another message (the kernel echoes user text inside its own records), and
//! must reject look-alikes: tasks-table rows, `oom_reaper` lines as kills, prose. The
//! kill line itself is `kill_line.rs`'s; the beginnings all forms share are `anchors.rs`'s.

pub use super::anchors::starts_form;
use super::anchors::{
    after_message, digits_prefix, is_form_start, leading_u32, split_comm, strip_space, COMM_WINDOW,
};
use super::kill_line::{kill_scan, kill_tail, kill_tail_scan};
pub use super::kill_line::{parse_killed, FieldScan, Killed};

/// One kernel message that matters to OOM accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelLine<'a> {
    /// `<comm> invoked oom-killer: gfp_mask=...` (2.6.2x+), or `oom-killer: gfp_mask=`
    /// without a name (2.6.9-2.6.1x): a new OOM event starts.
    Invoked { comm: Option<&'a str> },
    /// `oom-kill:constraint=...,task=...,pid=...,uid=...` (5.0+).
    Summary(Summary<'a>),
    /// `,oom_memcg=...` or `,global_oom,...`: the second half of a summary that a 4.20-rc
    /// kernel printed as two records (a missing `KERN_CONT`).
    SummaryTail(Summary<'a>),
    /// `Task in <task_memcg> killed as a result of limit of <memcg>` (2.6.3x-4.x memcg OOM).
    TaskIn { task_memcg: &'a str, memcg: &'a str },
    /// `Memory limit reached of cgroup <memcg>` (4.x memcg OOM without a victim).
    LimitReached { memcg: &'a str },
    /// `Memory cgroup stats for <memcg>:` (memcg OOM, all versions).
    MemcgStats { memcg: &'a str },
    /// `Mem-Info:`, the start of `show_mem()`, which the report prints only for an OOM
    /// that is not a memcg OOM.
    MemInfo,
    /// `<msg>: Kill process N (comm) score S or sacrifice child` and older spellings: the
    /// chosen task, which a child may replace; never a kill by itself.
    Selected {
        pid: u32,
        memcg_prefix: Option<bool>,
    },
    /// `Tasks in <cg> are going to be killed due to memory.oom.group set` (4.19+).
    Group { cgroup: &'a str },
    /// `[<msg>: ]Killed process N (comm) ...`: the kill.
    Killed(Killed<'a>),
    /// `Kill process N (comm) sharing same memory` (2.6.36-4.x): a process killed with
    /// the victim because it shares its memory.
    Shared { pid: u32, comm: &'a str },
    /// `<msg>: OOM victim N (comm) is already exiting. Skip ...`: no kill happened.
    Skipped { pid: u32 },
    /// `oom_reaper: reaped process N (comm), now ...` (4.6+): N was killed.
    Reaped { pid: u32 },
    /// `Out of memory and no killable processes...`.
    NoKillable,
    /// `Kernel panic - not syncing: <reason>` where the reason is about memory.
    Panic { reason: &'a str },
}

/// Fields of the `oom-kill:` one-line summary. Values are as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary<'a> {
    pub constraint: Option<&'a str>,
    /// `oom_memcg=` (present for a memcg OOM).
    pub oom_memcg: Option<&'a str>,
    /// The bare `global_oom` token (present for a system-wide OOM).
    pub global_oom: bool,
    pub task_memcg: Option<&'a str>,
    pub task: Option<&'a str>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
}

/// Classifies one kernel message; `None` for anything that is not one of the forms at
/// the start of `msg`.
pub fn classify(msg: &str) -> Option<KernelLine<'_>> {
    match msg.as_bytes().first()? {
        b'O' | b'M' | b'K' | b'N' | b'o' | b'T' | b',' => {
            if let Some(line) = fixed_form(msg) {
                return Some(line);
            }
        }
        _ => {}
    }
    invoked(msg)
}

/// The forms that start with fixed text.
fn fixed_form(msg: &str) -> Option<KernelLine<'_>> {
    if let Some(body) = msg.strip_prefix("oom-kill:constraint=") {
        let mut s = parse_summary(body);
        s.constraint = Some(body.split(',').next().unwrap_or(body));
        return Some(KernelLine::Summary(s));
    }
    if msg.starts_with(",oom_memcg=") || msg.starts_with(",global_oom") {
        return Some(KernelLine::SummaryTail(parse_summary(msg)));
    }
    if let Some(reason) = msg.strip_prefix("Kernel panic - not syncing: ") {
        return is_memory_panic(reason).then_some(KernelLine::Panic {
            reason: reason.trim_end(),
        });
    }
    if let Some(line) = memcg_form(msg) {
        return Some(line);
    }
    if msg.starts_with("Out of memory and no killable processes") {
        return Some(KernelLine::NoKillable);
    }
    if let Some(rest) = msg.strip_prefix("oom_reaper: reaped process ") {
        let (pid, rest) = leading_u32(rest)?;
        return rest.starts_with(" (").then_some(KernelLine::Reaped { pid });
    }
    if let Some(rest) = msg.strip_prefix("Kill process ") {
        return shared(rest);
    }
    if let Some(k) = parse_killed(msg) {
        return Some(KernelLine::Killed(k));
    }
    after_message(msg).and_then(|(memcg_prefix, rest)| selected_or_skipped(rest, memcg_prefix))
}

/// The memcg report's context lines.
fn memcg_form(msg: &str) -> Option<KernelLine<'_>> {
    if let Some(rest) = msg.strip_prefix("Memory cgroup stats for ") {
        return memcg_stats_path(rest).map(|memcg| KernelLine::MemcgStats { memcg });
    }
    if msg.trim_end() == "Mem-Info:" {
        return Some(KernelLine::MemInfo);
    }
    if let Some(rest) = msg.strip_prefix("Memory limit reached of cgroup ") {
        return Some(KernelLine::LimitReached {
            memcg: rest.trim_end(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Task in ") {
        let (task_memcg, memcg) = rest.split_once(" killed as a result of limit of ")?;
        return Some(KernelLine::TaskIn {
            task_memcg,
            memcg: memcg.trim_end(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Tasks in ") {
        let cgroup = rest
            .trim_end()
            .strip_suffix(" are going to be killed due to memory.oom.group set")?;
        return Some(KernelLine::Group { cgroup });
    }
    None
}

/// `<comm> invoked oom-killer:` with the comm at most [`COMM_WINDOW`] bytes, or the old
/// nameless `oom-killer: gfp_mask=`.
fn invoked(msg: &str) -> Option<KernelLine<'_>> {
    if msg.starts_with("oom-killer: gfp_mask=") {
        return Some(KernelLine::Invoked { comm: None });
    }
    const NEEDLE: &[u8] = b" invoked oom-killer:";
    let b = msg.as_bytes();
    let end = b.len().min(COMM_WINDOW + NEEDLE.len());
    // Every kmsg record goes through here, so look only at the few `-` in the window
    // (the one of `oom-killer` is 12 bytes into the needle).
    let mut from = 13;
    let pos = loop {
        let dash = from + b.get(from..end)?.iter().position(|&c| c == b'-')?;
        let start = dash - 12;
        if b.get(start..start + NEEDLE.len()) == Some(NEEDLE) {
            break start;
        }
        from = dash + 1;
    };
    let after = &msg[pos + NEEDLE.len()..];
    if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(KernelLine::Invoked {
        comm: Some(&msg[..pos]),
    })
}

fn is_memory_panic(reason: &str) -> bool {
    reason.starts_with("Out of memory")
        || reason.starts_with("out of memory")
        || reason.starts_with("System is deadlocked on memory")
}

/// `/a/b:` (6.x, stats on the following lines) or `/a/b: cache:0KB rss:...` (3.x-5.x).
fn memcg_stats_path(rest: &str) -> Option<&str> {
    let rest = rest.trim_end();
    if let Some(i) = rest.find(": ") {
        return Some(&rest[..i]);
    }
    rest.strip_suffix(':')
}

/// `<msg>: Kill process N (comm) score S or sacrifice child` (2.6.3x-5.2),
/// `<msg>: kill process N (comm) score S or a child` (2.6.32-2.6.35),
/// `Out of Memory: Kill process N (comm) score S and children.` (2.6.1x-2.6.2x), and
/// `<msg>: OOM victim N (comm) is already exiting. Skip` (6.x).
fn selected_or_skipped(rest: &str, memcg_prefix: Option<bool>) -> Option<KernelLine<'_>> {
    if let Some(r) = rest.strip_prefix("OOM victim ") {
        let (pid, r) = leading_u32(r)?;
        let r = r.strip_prefix(" (")?;
        split_comm(r, |after| after.starts_with(" is already exiting. Skip"))?;
        return Some(KernelLine::Skipped { pid });
    }
    let r = rest
        .strip_prefix("Kill process ")
        .or_else(|| rest.strip_prefix("kill process "))?;
    let (pid, r) = leading_u32(r)?;
    let r = strip_space(r)?.strip_prefix('(')?;
    split_comm(r, |after| {
        let t = after.trim_start();
        t.len() < after.len() && (t.starts_with("score ") || t.starts_with("with score "))
    })?;
    Some(KernelLine::Selected { pid, memcg_prefix })
}

/// `N (comm) sharing same memory` after `Kill process `.
fn shared(rest: &str) -> Option<KernelLine<'_>> {
    let (pid, r) = leading_u32(rest)?;
    let r = r.strip_prefix(" (")?;
    let (comm, _) = split_comm(r, |after| after.trim_end() == " sharing same memory")?;
    Some(KernelLine::Shared { pid, comm })
}

/// The body after `oom-kill:constraint=` (or a split second half). Values may hold
/// commas (nodemask ranges, cgroup names, the comm), so the known keys are found from
/// both ends instead of splitting on commas.
pub fn parse_summary(body: &str) -> Summary<'_> {
    let mut s = Summary::default();
    let mut head = body;
    if let Some(u) = body.rfind(",uid=") {
        s.uid = digits_prefix(&body[u + 5..]).and_then(|d| d.parse().ok());
        let before_uid = &body[..u];
        if let Some(p) = before_uid.rfind(",pid=") {
            s.pid = digits_prefix(&before_uid[p + 5..]).and_then(|d| d.parse().ok());
            let before_pid = &before_uid[..p];
            if let Some(t) = task_key(before_pid) {
                s.task = Some(&before_pid[t + 6..]);
                head = &before_pid[..t];
            } else {
                head = before_pid;
            }
        } else {
            head = before_uid;
        }
    } else if let Some(t) = body.rfind(",task=") {
        // Cut before `,pid=` (an author's elision, a lost record): the task alone.
        let task = body[t + 6..].trim_end_matches(['\u{2026}', '.']);
        s.task = Some(task.strip_suffix(',').unwrap_or(task)).filter(|t| !t.is_empty());
        head = &body[..t];
    }
    memcg_keys(head, &mut s);
    s
}

/// `oom_memcg=`, `task_memcg=` and `global_oom` in the part before `task=`.
fn memcg_keys<'a>(head: &'a str, s: &mut Summary<'a>) {
    let tm_key = ",task_memcg=";
    let mut search_from = 0;
    if let Some(o) = head.find(",oom_memcg=") {
        let start = o + ",oom_memcg=".len();
        let end = head[start..].find(tm_key).map_or(head.len(), |i| start + i);
        s.oom_memcg = Some(&head[start..end]);
        search_from = end;
    }
    let tm_pos = head[search_from..].find(tm_key).map(|i| search_from + i);
    if let Some(t) = tm_pos {
        s.task_memcg = Some(&head[t + tm_key.len()..]);
    }
    let before_tm = &head[..tm_pos.unwrap_or(head.len())];
    s.global_oom = s.oom_memcg.is_none()
        && (before_tm.ends_with(",global_oom") || before_tm.contains(",global_oom,"));
}

/// Position of the `,task=` that starts the comm: the leftmost one within a comm's reach
/// of `,pid=`, else the last one.
fn task_key(before_pid: &str) -> Option<usize> {
    const KEY: &str = ",task=";
    let mut window = before_pid.len().saturating_sub(KEY.len() + COMM_WINDOW);
    while !before_pid.is_char_boundary(window) {
        window += 1;
    }
    before_pid[window..]
        .find(KEY)
        .map(|i| window + i)
        .or_else(|| before_pid.rfind(KEY))
}

/// How completely `msg` reads as a kernel form, for rejoining a message that a log
/// writer or a reader broke over lines: `None` when `msg` is not (the start of) a form;
/// otherwise a score that grows with every part of the form that parses (a kill line's
/// fields, a summary's keys, a selection line's ending). A form cut before it could be
/// recognised (`Out`, `Task in /a killed as`, `Killed process 12`) scores 0.
pub fn form_quality(msg: &str) -> Option<i32> {
    let msg = msg.trim_end();
    match classify(msg) {
        Some(KernelLine::Killed(_)) => Some(10 + kill_scan(msg).map_or(0, |s| s.fields - s.strays)),
        Some(KernelLine::Summary(_) | KernelLine::SummaryTail(_)) => {
            let keys = [
                "nodemask=",
                "cpuset=",
                "mems_allowed=",
                "oom_memcg=",
                "global_oom",
                "task_memcg=",
                "task=",
                ",pid=",
                ",uid=",
            ];
            Some(10 + keys.iter().filter(|k| msg.contains(*k)).count() as i32)
        }
        Some(KernelLine::Selected { .. }) => Some(10 + i32::from(selection_end(msg).is_some())),
        Some(_) => Some(10),
        None if msg.len() >= 3 && is_form_start(msg) => Some(0),
        None => None,
    }
}

/// End of a selection line's known ending (`or sacrifice child`, `or a child`, `and
/// children.`), when it is complete.
fn selection_end(msg: &str) -> Option<usize> {
    let score = msg.find(" score ")? + " score ".len();
    let digits = msg[score..].bytes().take_while(u8::is_ascii_digit).count();
    let after = &msg[score + digits..];
    ["or sacrifice child", "or a child", "and children."]
        .iter()
        .find_map(|end| {
            let t = after.trim_start();
            t.starts_with(end).then(|| msg.len() - t.len() + end.len())
        })
}

/// Where a second form glued onto the end of this one starts (a mail client or console
/// that joined records: `... or a child Killed process 9 (x) ...`): only after a
/// selection line's ending, a `sharing same memory` kill or a kill line's last field.
pub fn glued_at(msg: &str) -> Option<usize> {
    let start = match classify(msg)? {
        KernelLine::Selected { .. } => selection_end(msg)?,
        KernelLine::Killed(_) => {
            let tail = kill_tail(msg)?;
            let offset = msg.len() - tail.len();
            offset + kill_tail_scan(tail).glued?
        }
        _ => return None,
    };
    let rest = &msg[start..];
    let t = rest.trim_start();
    (!t.is_empty() && starts_form(t)).then(|| msg.len() - t.len())
}

#[cfg(test)]
mod tests;
