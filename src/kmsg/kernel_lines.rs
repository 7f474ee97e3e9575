//! Recognisers for the single kernel messages that make up an OOM report, in every form
//! printed from 2.6 to 6.x (mm/oom_kill.c `dump_header`, `dump_oom_summary` /
//! `dump_oom_victim`, `oom_kill_process`, `__oom_kill_process`; mm/memcontrol.c
//! `mem_cgroup_print_oom_context`, `mem_cgroup_print_oom_info`,
//! `mem_cgroup_print_oom_meminfo`, `mem_cgroup_print_oom_group`; vendor variants).
//!
//! This file owns turning one message into a typed [`KernelLine`] that borrows from it.
//! It must not keep state across lines or allocate (the assembler in `oom.rs` decides
//! what a line means for the event), and it must reject look-alikes: the OOM reaper's
//! `reaped process` lines, tasks-table rows, `sharing same memory` kills of mm sharers.

/// One kernel message that matters to OOM accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelLine<'a> {
    /// `<comm> invoked oom-killer: gfp_mask=...`: a new OOM event starts.
    Invoked { comm: &'a str },
    /// `oom-kill:constraint=...,task=...,pid=...,uid=...` (5.0+).
    Summary(Summary<'a>),
    /// `Task in <task_memcg> killed as a result of limit of <memcg>` (3.x-4.x memcg OOM).
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
    /// `Tasks in <cg> are going to be killed due to memory.oom.group set`.
    Group { cgroup: &'a str },
    /// `[<msg>: ]Killed process N (comm) total-vm:...`: the kill.
    Killed(Killed<'a>),
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

/// Fields of a `Killed process` line. Memory values are kB as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Killed<'a> {
    /// Whether the `<msg>:` before `Killed process` names a memcg OOM (`Memory cgroup out
    /// of memory`) or not (`Out of memory...`); `None` when there is no prefix (< 5.3).
    pub memcg_prefix: Option<bool>,
    pub pid: u32,
    pub comm: &'a str,
    pub uid: Option<u32>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

/// Classifies one kernel message; `None` for anything that is not part of OOM accounting.
pub fn classify(msg: &str) -> Option<KernelLine<'_>> {
    // Fast reject: every line below contains "ill" (Killed, Kill, kill, killed, killable,
    // oom-killer, oom-kill:) or starts with "Mem" or "Kernel panic".
    let b = msg.as_bytes();
    let first = *b.first()?;
    if first != b'M' && first != b'K' && !msg.contains("ill") {
        return None;
    }
    if let Some(reason) = msg.strip_prefix("Kernel panic - not syncing: ") {
        return is_memory_panic(reason).then_some(KernelLine::Panic {
            reason: reason.trim_end(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Memory cgroup stats for ") {
        return memcg_stats_path(rest).map(|memcg| KernelLine::MemcgStats { memcg });
    }
    if msg == "Mem-Info:" {
        return Some(KernelLine::MemInfo);
    }
    if let Some(rest) = msg.strip_prefix("Memory limit reached of cgroup ") {
        return Some(KernelLine::LimitReached {
            memcg: rest.trim_end(),
        });
    }
    if !msg.contains("ill") {
        return None;
    }
    if let Some(body) = msg.strip_prefix("oom-kill:") {
        return Some(KernelLine::Summary(parse_summary(body)));
    }
    if msg.starts_with("Out of memory and no killable processes") {
        return Some(KernelLine::NoKillable);
    }
    if let Some(k) = parse_killed(msg) {
        return Some(KernelLine::Killed(k));
    }
    if let Some(s) = parse_selected(msg) {
        return Some(s);
    }
    if let Some(pos) = msg.find(" invoked oom-killer:") {
        // The comm is at most 15 bytes (60 when escaped); anything longer is not this line.
        if pos <= 256 {
            return Some(KernelLine::Invoked { comm: &msg[..pos] });
        }
        return None;
    }
    if let Some(rest) = msg.strip_prefix("Task in ") {
        let (task_memcg, memcg) = rest.split_once(" killed as a result of limit of ")?;
        return Some(KernelLine::TaskIn {
            task_memcg,
            memcg: memcg.trim_end(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Tasks in ") {
        let cgroup = rest.strip_suffix(" are going to be killed due to memory.oom.group set")?;
        return Some(KernelLine::Group { cgroup });
    }
    None
}

fn is_memory_panic(reason: &str) -> bool {
    reason.contains("ut of memory")
        || reason.contains("deadlocked on memory")
        || reason.contains("panic_on_oom")
}

/// `/a/b:` (6.x, stats on the following lines) or `/a/b: cache:0KB rss:...` (3.x-5.x).
fn memcg_stats_path(rest: &str) -> Option<&str> {
    let rest = rest.trim_end();
    if let Some(i) = rest.find(": ") {
        return Some(&rest[..i]);
    }
    rest.strip_suffix(':')
}

/// The prefix before `Killed process` / `Kill process` must be an OOM message: `Out of
/// memory`, `Out of Memory`, `Memory cgroup out of memory`, `Out of memory
/// (oom_kill_allocating_task)`, ...
fn oom_prefix(prefix: &str) -> Option<bool> {
    if prefix.len() > 96 {
        return None;
    }
    if prefix.starts_with("Memory cgroup") {
        return Some(true);
    }
    if prefix.contains("emory") {
        return Some(false);
    }
    None
}

/// Finds `needle` at the start of `msg` or right after a `<oom message>: ` prefix.
/// Returns `(memcg_prefix, rest after needle)`; `Err(())` when a prefix is present but not
/// an OOM message.
fn after_marker<'a>(msg: &'a str, needle: &str) -> Option<(Option<bool>, &'a str)> {
    if let Some(rest) = msg.strip_prefix(needle) {
        return Some((None, rest));
    }
    let with_colon = msg.find(needle)?;
    let prefix = msg[..with_colon].strip_suffix(": ")?;
    let memcg = oom_prefix(prefix)?;
    Some((Some(memcg), &msg[with_colon + needle.len()..]))
}

/// All forms of the kill line:
/// - `Killed process N (comm) total-vm:..kB, anon-rss:..kB, file-rss:..kB, shmem-rss:..kB,
///   UID:u pgtables:..kB oom_score_adj:a` (fields grow with the version; 5.3+ put `<msg>: `
///   in front);
/// - 2.6.32: `Killed process N (comm) vsz:..kB, anon-rss:..kB, file-rss:..kB`;
/// - 2.6.9 and earlier: `Out of Memory: Killed process N (comm).`;
/// - RHEL 5/6: `Killed process N, UID U, (comm) total-vm:...` and `..., (comm).`;
/// - RHEL 7 (later 3.10): `Killed process N (comm), UID U, total-vm:...`.
pub fn parse_killed(msg: &str) -> Option<Killed<'_>> {
    let (memcg_prefix, rest) = after_marker(msg, "Killed process ")?;
    let (pid, rest) = leading_u32(rest)?;
    let mut uid = None;
    let rest = if let Some(r) = rest.strip_prefix(", UID ") {
        let (u, r) = leading_u32(r)?;
        uid = Some(u);
        r.strip_prefix(", (")?
    } else {
        rest.strip_prefix(" (")?
    };
    let (comm, tail) = split_comm(rest, |after| {
        after.is_empty()
            || after == "."
            || after.starts_with(" total-vm")
            || after.starts_with(" vsz")
            || after.starts_with(',')
    })?;
    let mut k = Killed {
        memcg_prefix,
        pid,
        comm,
        uid,
        ..Killed::default()
    };
    parse_kill_fields(tail, &mut k);
    Some(k)
}

/// `(comm)` whose closing parenthesis is the LAST `)` followed by what `ok_after` accepts:
/// a comm may itself hold `(`, `)`, spaces, colons and commas.
fn split_comm(s: &str, ok_after: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    let mut end = s.len();
    while let Some(i) = s[..end].rfind(')') {
        let after = &s[i + 1..];
        if ok_after(after) {
            return Some((&s[..i], after));
        }
        end = i;
    }
    None
}

fn parse_kill_fields(tail: &str, k: &mut Killed<'_>) {
    let mut tokens = tail.split([',', ' ']).filter(|t| !t.is_empty());
    while let Some(tok) = tokens.next() {
        if tok == "UID" {
            if k.uid.is_none() {
                k.uid = tokens.next().and_then(|t| t.parse().ok());
            }
            continue;
        }
        let Some((key, value)) = tok.split_once(':') else {
            continue;
        };
        let kb = || {
            value
                .strip_suffix("kB")
                .unwrap_or(value)
                .parse::<u64>()
                .ok()
        };
        match key {
            "total-vm" | "vsz" => k.total_vm_kb = kb(),
            "anon-rss" => k.anon_rss_kb = kb(),
            "file-rss" => k.file_rss_kb = kb(),
            "shmem-rss" => k.shmem_rss_kb = kb(),
            "pgtables" => k.pgtables_kb = kb(),
            "UID" => k.uid = value.parse().ok(),
            "oom_score_adj" => k.oom_score_adj = value.parse().ok(),
            _ => {}
        }
    }
}

/// `<msg>: Kill process N (comm) score S or sacrifice child` (2.6.35-5.2),
/// `<msg>: kill process N (comm) score S or a child` (2.6.32),
/// `<msg>: Kill process N (comm) score S and children.` (older). Not `Kill process N
/// (comm) sharing same memory`, which has no score and kills an mm sharer.
fn parse_selected(msg: &str) -> Option<KernelLine<'_>> {
    let (memcg_prefix, rest) =
        after_marker(msg, "Kill process ").or_else(|| after_marker(msg, "kill process "))?;
    let (pid, rest) = leading_u32(rest)?;
    let rest = rest.strip_prefix(" (")?;
    split_comm(rest, |after| {
        after.starts_with(" score ") || after.starts_with(" with score ")
    })?;
    Some(KernelLine::Selected { pid, memcg_prefix })
}

/// The body after `oom-kill:`. Values may hold commas (nodemask ranges, cgroup names, the
/// comm), so the known keys are found from both ends instead of splitting on commas.
pub fn parse_summary(body: &str) -> Summary<'_> {
    let mut s = Summary::default();
    if let Some(v) = body.strip_prefix("constraint=") {
        s.constraint = Some(v.split(',').next().unwrap_or(v));
    }
    let mut head = body;
    if let Some(u) = body.rfind(",uid=") {
        s.uid = body[u + 5..].trim().parse().ok();
        let before_uid = &body[..u];
        if let Some(p) = before_uid.rfind(",pid=") {
            s.pid = before_uid[p + 5..].trim().parse().ok();
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
    }
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
    s
}

/// Position of the `,task=` that starts the comm: the leftmost one within a comm's reach
/// (15 bytes, 60 when escaped) of `,pid=`, else the last one.
fn task_key(before_pid: &str) -> Option<usize> {
    const KEY: &str = ",task=";
    let mut window = before_pid.len().saturating_sub(KEY.len() + 64);
    while !before_pid.is_char_boundary(window) {
        window += 1;
    }
    before_pid[window..]
        .find(KEY)
        .map(|i| window + i)
        .or_else(|| before_pid.rfind(KEY))
}

fn leading_u32(s: &str) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 10 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killed(msg: &str) -> Killed<'_> {
        match classify(msg) {
            Some(KernelLine::Killed(k)) => k,
            other => panic!("not a kill: {other:?} for {msg}"),
        }
    }

    #[test]
    fn modern_kill_line() {
        let k = killed("Memory cgroup out of memory: Killed process 6438 (oom (fix) 1:[2]) total-vm:60952kB, anon-rss:50944kB, file-rss:6752kB, shmem-rss:0kB, UID:0 pgtables:164kB oom_score_adj:0");
        assert_eq!(k.memcg_prefix, Some(true));
        assert_eq!(k.pid, 6438);
        assert_eq!(k.comm, "oom (fix) 1:[2]");
        assert_eq!(k.uid, Some(0));
        assert_eq!(k.total_vm_kb, Some(60952));
        assert_eq!(k.anon_rss_kb, Some(50944));
        assert_eq!(k.file_rss_kb, Some(6752));
        assert_eq!(k.shmem_rss_kb, Some(0));
        assert_eq!(k.pgtables_kb, Some(164));
        assert_eq!(k.oom_score_adj, Some(0));
    }

    #[test]
    fn comm_with_parentheses_takes_last_valid_paren() {
        let k = killed("Out of memory: Killed process 1 (((resolved))) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:5 pgtables:6kB oom_score_adj:-999");
        assert_eq!(k.comm, "((resolved))");
        assert_eq!(k.oom_score_adj, Some(-999));
        let k =
            killed("Killed process 2 (a) total-vm:9) total-vm:10kB, anon-rss:1kB, file-rss:0kB");
        assert_eq!(k.comm, "a) total-vm:9");
        assert_eq!(k.total_vm_kb, Some(10));
        let k = killed("Killed process 3 (runc:[2:INIT]) total-vm:1kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB");
        assert_eq!(k.comm, "runc:[2:INIT]");
        assert_eq!(
            killed("Killed process 4 (kworker/u8:1) total-vm:1kB").comm,
            "kworker/u8:1"
        );
        assert_eq!(
            killed("Killed process 5 (Web Content) total-vm:1kB").comm,
            "Web Content"
        );
    }

    #[test]
    fn vendor_and_old_forms() {
        let k = killed("Killed process 2592, UID 500, (java) total-vm:2820860kB, anon-rss:1070404kB, file-rss:176kB");
        assert_eq!((k.pid, k.comm, k.uid), (2592, "java", Some(500)));
        assert_eq!(k.anon_rss_kb, Some(1_070_404));
        let k = killed("Killed process 4242 (java), UID 1000, total-vm:100kB, anon-rss:50kB, file-rss:1kB, shmem-rss:0kB");
        assert_eq!((k.pid, k.comm, k.uid), (4242, "java", Some(1000)));
        let k = killed("Killed process 2593 (java) vsz:200kB, anon-rss:100kB, file-rss:4kB");
        assert_eq!(
            (k.total_vm_kb, k.anon_rss_kb, k.file_rss_kb),
            (Some(200), Some(100), Some(4))
        );
        let k = killed("Out of Memory: Killed process 2368 (jserver).");
        assert_eq!(
            (k.pid, k.comm, k.memcg_prefix),
            (2368, "jserver", Some(false))
        );
        let k = killed("Out of memory: Killed process 27837, UID 500, (java).");
        assert_eq!((k.pid, k.comm, k.uid), (27837, "java", Some(500)));
        let k =
            killed("Out of memory (oom_kill_allocating_task): Killed process 9 (x) total-vm:1kB");
        assert_eq!(k.memcg_prefix, Some(false));
        // The transient 5.4 spelling `UID %d`.
        assert_eq!(
            killed("Out of memory: Killed process 9 (x) total-vm:1kB, shmem-rss:0kB, UID 7").uid,
            Some(7)
        );
    }

    #[test]
    fn not_kills() {
        for msg in [
            "oom_reaper: reaped process 6438 (x), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
            "[   6438]     0  6438    15238    14424    12736     1688         0   167936        0             0 Killed process",
            "Kill process 77 (a) sharing same memory",
            "Memory cgroup stats for /a:",
            "Tasks state (memory values in pages):",
            "systemd[1]: Killed process 1 (a) total-vm:1kB",
            "foo: Killed process 1 (a) total-vm:1kB",
            "Killed process x (a)",
            "Killed process 1 a)",
            "Killed process 99999999999 (a)",
        ] {
            assert!(!matches!(classify(msg), Some(KernelLine::Killed(_))), "{msg}");
            assert!(!matches!(classify(msg), Some(KernelLine::Selected { .. })), "{msg}");
        }
    }

    #[test]
    fn selection_lines() {
        for (msg, pid, memcg) in [
            (
                "Out of memory: Kill process 1 (a) score 2 or sacrifice child",
                1,
                Some(false),
            ),
            (
                "Memory cgroup out of memory: Kill process 3 (b (c)) score 4 or sacrifice child",
                3,
                Some(true),
            ),
            (
                "Out of memory: kill process 5 (d) score 6 or a child",
                5,
                Some(false),
            ),
            (
                "Out of Memory: Kill process 7 (e) score 8 and children.",
                7,
                Some(false),
            ),
        ] {
            assert_eq!(
                classify(msg),
                Some(KernelLine::Selected {
                    pid,
                    memcg_prefix: memcg
                }),
                "{msg}"
            );
        }
    }

    #[test]
    fn summary_real_and_awkward() {
        let s = parse_summary("constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/p/k,task_memcg=/p/k,task=oom (fix) 1:[2],pid=6438,uid=0");
        assert_eq!(s.constraint, Some("CONSTRAINT_MEMCG"));
        assert_eq!(s.oom_memcg, Some("/p/k"));
        assert_eq!(s.task_memcg, Some("/p/k"));
        assert_eq!(s.task, Some("oom (fix) 1:[2]"));
        assert_eq!((s.pid, s.uid), (Some(6438), Some(0)));
        assert!(!s.global_oom);
        let s = parse_summary("constraint=CONSTRAINT_NONE,nodemask=0-1,3,cpuset=a,b,mems_allowed=0-1,3,global_oom,task_memcg=/user.slice/x,y,task=a,pid=5,pid=6,uid=7");
        assert!(s.global_oom);
        assert_eq!(s.oom_memcg, None);
        assert_eq!(s.task_memcg, Some("/user.slice/x,y"));
        assert_eq!(s.task, Some("a,pid=5"));
        assert_eq!((s.pid, s.uid), (Some(6), Some(7)));
        let s = parse_summary("constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=a,task=b,pid=1,uid=0");
        assert_eq!(s.task, Some("a,task=b"));
        assert_eq!(s.task_memcg, Some("/"));
        let s = parse_summary("garbage");
        assert_eq!(s, Summary::default());
    }

    #[test]
    fn context_lines() {
        assert_eq!(
            classify(
                "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
            ),
            Some(KernelLine::Invoked { comm: "python3" })
        );
        assert_eq!(
            classify("Task in /docker/abc killed as a result of limit of /docker"),
            Some(KernelLine::TaskIn {
                task_memcg: "/docker/abc",
                memcg: "/docker"
            })
        );
        assert_eq!(
            classify("Memory cgroup stats for /docker/abc: cache:0KB rss:100KB"),
            Some(KernelLine::MemcgStats {
                memcg: "/docker/abc"
            })
        );
        assert_eq!(
            classify("Memory cgroup stats for /a/b:"),
            Some(KernelLine::MemcgStats { memcg: "/a/b" })
        );
        assert_eq!(
            classify("Tasks in /k/pod are going to be killed due to memory.oom.group set"),
            Some(KernelLine::Group { cgroup: "/k/pod" })
        );
        assert_eq!(
            classify("Kernel panic - not syncing: System is deadlocked on memory"),
            Some(KernelLine::Panic {
                reason: "System is deadlocked on memory"
            })
        );
        assert_eq!(
            classify("Kernel panic - not syncing: Attempted to kill init!"),
            None
        );
        assert_eq!(classify("Mem-Info:"), Some(KernelLine::MemInfo));
        assert_eq!(
            classify("Out of memory and no killable processes..."),
            Some(KernelLine::NoKillable)
        );
    }
}
