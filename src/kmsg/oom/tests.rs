//! What a report's lines mean together: one kill per victim, no context carried from
//! one event to another, summary-only kills emitted when their report ends.

use super::*;
use crate::kmsg::record::parse_record;

pub(super) fn feed(lines: &[&str]) -> Vec<OomEvent> {
    let mut a = OomAssembler::new();
    let mut out: Vec<OomEvent> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| a.push(Source::Kernel, l, i as u64 + 1, None))
        .collect();
    out.extend(a.finish());
    out
}

/// Feeds `/dev/kmsg` records as the follower reads them.
fn feed_records(records: &[&str]) -> Vec<OomEvent> {
    let mut a = OomAssembler::new();
    let mut out = Vec::new();
    for rec in records {
        let r = parse_record(rec.as_bytes()).expect("record");
        let (source, msg) = r.source();
        out.extend(a.push(source, msg, r.seq, None));
    }
    out
}

pub(super) fn kills(events: &[OomEvent]) -> Vec<&KernelKill> {
    events
        .iter()
        .filter_map(|e| match e {
            OomEvent::Kill(k) => Some(k),
            _ => None,
        })
        .collect()
}

pub(super) fn pids(events: &[OomEvent]) -> Vec<u32> {
    kills(events).iter().map(|k| k.pid).collect()
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
    assert_eq!((k.at, k.kind), (3, KillKind::Victim));
}

#[test]
fn a_kill_is_emitted_on_its_own_line() {
    let mut a = OomAssembler::new();
    let _ = a.push(
        Source::Kernel,
        "x invoked oom-killer: gfp_mask=0x0, order=0",
        1,
        None,
    );
    let _ = a.push(Source::Kernel, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=7,uid=0", 2, None);
    let ev: Vec<_> = a
        .push(
            Source::Kernel,
            "Out of memory: Killed process 7 (x) total-vm:1kB",
            3,
            None,
        )
        .collect();
    assert_eq!(pids(&ev), [7]);
    assert_eq!(a.finish(), None);
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
fn constraint_none_with_oom_memcg_is_memcg_and_5_0_child_consumes_the_summary() {
    let ev = feed(&[
        "java invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=999",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=abc,mems_allowed=0,oom_memcg=/kubepods/pod1/abc,task_memcg=/kubepods/pod1/abc,task=java,pid=7,uid=1000",
        "Memory cgroup out of memory: Kill process 7 (java) score 1999 or sacrifice child",
        "Killed process 8 (java-child) total-vm:10kB, anon-rss:5kB, file-rss:0kB, shmem-rss:0kB",
    ]);
    let k = kills(&ev);
    assert_eq!(
        pids(&ev),
        [8],
        "the summary named the selected parent, not a second kill"
    );
    assert_eq!(k[0].global, Some(false));
    assert_eq!(k[0].memcg.as_deref(), Some("/kubepods/pod1/abc"));
    assert_eq!((k[0].uid, k[0].task_memcg.as_deref()), (None, None));
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
    assert_eq!(pids(&ev), [10, 11]);
    assert_eq!(k[1].memcg.as_deref(), Some("/pod"));
    assert_eq!(
        (k[1].global, k[1].kind),
        (Some(false), KillKind::GroupMember)
    );
    assert_eq!(k[1].task_memcg, None);
    assert_eq!(k[1].uid, Some(0));
    let repeats = ev
        .iter()
        .filter(|e| matches!(e, OomEvent::RepeatedKill { .. }))
        .count();
    assert_eq!(repeats, 2);
}

/// Pod X's memory.oom.group kill, then pod Y's OOM whose report header the kernel
/// rate-limited (`oom_kill_process` prints only the kill line then): Y's kill must get
/// none of X's context. As the follower reads them, `/dev/kmsg` records.
const POD_X: [&str; 6] = [
    "4,88121,902113004418,-;node invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=985",
    "6,88141,902113004558,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-aa11.scope,mems_allowed=0,oom_memcg=/kubepods.slice/pod-x.slice,task_memcg=/kubepods.slice/pod-x.slice/cri-containerd-aa11.scope,task=node,pid=12001,uid=1000",
    "3,88142,902113004565,-;Memory cgroup out of memory: Killed process 12001 (node) total-vm:11501240kB, anon-rss:1031040kB, file-rss:1400kB, shmem-rss:0kB, UID:1000 pgtables:2336kB oom_score_adj:985",
    "6,88143,902113004572,-;Tasks in /kubepods.slice/pod-x.slice are going to be killed due to memory.oom.group set",
    "3,88144,902113004579,-;Memory cgroup out of memory: Killed process 12001 (node) total-vm:11501240kB, anon-rss:1031040kB, file-rss:1400kB, shmem-rss:0kB, UID:1000 pgtables:2336kB oom_score_adj:985",
    "3,88145,902113004586,-;Memory cgroup out of memory: Killed process 12010 (runc:[2:INIT]) total-vm:1232896kB, anon-rss:7812kB, file-rss:384kB, shmem-rss:0kB, UID:0 pgtables:140kB oom_score_adj:985",
];
const POD_Y_KILL: &str = "3,88151,902113904111,-;Memory cgroup out of memory: Killed process 13007 (python) total-vm:86512kB, anon-rss:64640kB, file-rss:6144kB, shmem-rss:0kB, UID:65532 pgtables:192kB oom_score_adj:992";

#[test]
fn storm_header_less_kill_after_a_group_kill_gets_no_context() {
    for between in [
        "6,88146,902115004593,-;oom_reaper: reaped process 12001 (node), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        "4,88146,902115004593,-;IPv4: martian source 10.0.0.1 from 10.0.0.2, on dev eth0",
        "6,88146,902115004593,-;Tasks state (memory values in pages):",
    ] {
        let mut records = POD_X.to_vec();
        records.push(between);
        records.push(POD_Y_KILL);
        let ev = feed_records(&records);
        let k = kills(&ev);
        assert_eq!(pids(&ev), [12001, 12010, 13007], "{between}");
        let y = k[2];
        assert_eq!(
            (y.memcg.as_deref(), y.task_memcg.as_deref(), y.invoker.as_deref(), y.constraint.as_deref()),
            (None, None, None, None),
            "{between}"
        );
        assert_eq!((y.kind, y.global, y.uid), (KillKind::Victim, Some(false), Some(65532)));
        assert_eq!(k[1].memcg.as_deref(), Some("/kubepods.slice/pod-x.slice"));
    }
    // A header-less kill of another kind (`Out of memory:`) is another event even with
    // nothing between.
    let mut records = POD_X.to_vec();
    records.push("3,88151,902113904111,-;Out of memory: Killed process 13008 (java) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0");
    let ev = feed_records(&records);
    let y = kills(&ev)[2];
    assert_eq!(
        (y.pid, y.memcg.as_deref(), y.invoker.as_deref()),
        (13008, None, None)
    );
}

#[test]
fn a_repeated_victim_after_an_interleaved_reaper_line_is_still_one_kill() {
    // Before 5.18 the reaper was not delayed; its line can fall inside the group pass.
    let ev = feed(&[
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/test1,task_memcg=/test1,task=a.out,pid=9188,uid=0",
        "Memory cgroup out of memory: Killed process 9188 (a.out) total-vm:14456kB, anon-rss:10324kB, file-rss:504kB, shmem-rss:0kB",
        "Tasks in /test1 are going to be killed due to memory.oom.group set",
        "oom_reaper: reaped process 9188 (a.out), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        "Memory cgroup out of memory: Killed process 9182 (a.out) total-vm:14456kB, anon-rss:76kB, file-rss:588kB, shmem-rss:0kB",
        "Memory cgroup out of memory: Killed process 9188 (a.out) total-vm:14456kB, anon-rss:10324kB, file-rss:504kB, shmem-rss:0kB",
    ]);
    assert_eq!(pids(&ev), [9188, 9182]);
    // The member after the reaper line cannot be told from another event's kill: it
    // keeps no context rather than risk a wrong one.
    assert_eq!(kills(&ev)[1].memcg, None);
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
    assert_eq!(pids(&ev), [1, 2, 3]);
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
fn invoker_named_like_a_summary_is_kept() {
    let ev = feed(&[
        "oom-kill:x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x invoked oom-k,pid=5,uid=0",
        "Out of memory: Killed process 5 (x invoked oom-k) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0",
    ]);
    let k = kills(&ev);
    assert_eq!(pids(&ev), [5]);
    assert_eq!(k[0].invoker.as_deref(), Some("oom-kill:x"));
    assert_eq!(k[0].task_memcg.as_deref(), Some("/"));
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
fn shared_memory_kills_are_kills_vmstat_does_not_count() {
    let ev = feed(&[
        "fool-sysrq-f invoked oom-killer: gfp_mask=0x280da, order=0, oom_score_adj=0",
        "Out of memory: Kill process 4802 (fool-sysrq-f) score 874 or sacrifice child",
        "Killed process 4802 (fool-sysrq-f) total-vm:2170956kB, anon-rss:1562884kB, file-rss:0kB",
        "Kill process 4803 (fool-sysrq-f) sharing same memory",
        "Kill process 4803 (fool-sysrq-f) sharing same memory",
        "kworker/3:2 invoked oom-killer: gfp_mask=0x2000d0, order=0, oom_score_adj=0",
        "Out of memory: Kill process 4803 (fool-sysrq-f) score 874 or sacrifice child",
        "Killed process 4803 (fool-sysrq-f) total-vm:2170956kB, anon-rss:1563232kB, file-rss:0kB",
    ]);
    let k = kills(&ev);
    assert_eq!(pids(&ev), [4802, 4803, 4803]);
    assert_eq!(
        (k[1].kind, k[1].invoker.as_deref(), k[1].anon_rss_kb),
        (KillKind::SharedMemory, Some("fool-sysrq-f"), None)
    );
    assert!(!k[1].counted_by_vmstat() && k[0].counted_by_vmstat() && k[2].counted_by_vmstat());
    assert_eq!(k[2].invoker.as_deref(), Some("kworker/3:2"));
    // A lone one, its report not in view.
    let ev = feed(&["Kill process 10732 (a.out) sharing same memory"]);
    assert_eq!(
        (pids(&ev), kills(&ev)[0].invoker.clone()),
        (vec![10732], None)
    );
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
        .is_empty());
    // A kernel kill of a process *named* earlyoom is a kernel kill.
    let ev: Vec<_> = a
        .push(
            Source::Kernel,
            "Out of memory: Killed process 6 (earlyoom) total-vm:1kB",
            2,
            None,
        )
        .collect();
    assert_eq!(kills(&ev)[0].comm, "earlyoom");
    // The forged mount option of issue 16, as the kernel's own record: no kill.
    let forged = "3,900,1000,-;tmpfs: Unknown parameter 'Memory: Killed process 123 (mysqld) total-vm:9000000kB anon-rss:8000000kB file-rss:0kB shmem-rss:0kB UID:0 pgtables:1kB oom_score_adj:0 x'";
    assert!(feed_records(&[forged]).is_empty());
}
