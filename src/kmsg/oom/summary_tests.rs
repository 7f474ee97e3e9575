//! Summary-only kills: a summary whose `Killed process` line is missing is one kill,
//! emitted when its report ends, and never a second kill when its line comes late.

use super::*;
use crate::kmsg::oom::tests::{feed, kills, pids};

#[test]
fn summary_only_kills_are_emitted_when_their_report_ends() {
    let s = |task: &str, pid: u32| {
        format!("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=user.slice,mems_allowed=0,global_oom,task_memcg=/user.slice/app.scope,task={task},pid={pid},uid=1000")
    };
    let (a, b) = (s("Web Content", 23405), s("Isolated Web Co", 22987));
    let mut asm = OomAssembler::new();
    assert!(asm.push(Source::Kernel, &a, 1, None).is_empty());
    let ev: Vec<_> = asm.push(Source::Kernel, &b, 2, None).collect();
    assert_eq!(pids(&ev), [23405], "the next report ends the first");
    let k = kills(&ev)[0];
    assert_eq!(
        (k.comm.as_str(), k.uid, k.kind, k.at),
        ("Web Content", Some(1000), KillKind::SummaryOnly, 1)
    );
    assert_eq!(
        (k.anon_rss_kb, k.task_memcg.as_deref()),
        (None, Some("/user.slice/app.scope"))
    );
    assert!(asm
        .push(
            Source::Kernel,
            "RAX: fffffffffffffb00 RBX: 0000611ed3033d40",
            3,
            None
        )
        .is_empty());
    match asm.finish() {
        Some(OomEvent::Kill(k)) => assert_eq!((k.pid, k.kind), (22987, KillKind::SummaryOnly)),
        other => panic!("{other:?}"),
    }
    assert_eq!(asm.finish(), None);
}

#[test]
fn summary_only_kill_and_the_next_events_kill_from_one_line() {
    let mut a = OomAssembler::new();
    let _ = a.push(Source::Kernel, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=x,pid=1,uid=0", 1, None);
    let ev: Vec<_> = a
        .push(
            Source::Kernel,
            "Memory cgroup out of memory: Killed process 2 (y) total-vm:1kB",
            2,
            None,
        )
        .collect();
    assert_eq!(pids(&ev), [1, 2]);
    let k = kills(&ev);
    assert_eq!(
        (k[0].kind, k[0].memcg.as_deref()),
        (KillKind::SummaryOnly, Some("/a"))
    );
    assert_eq!(
        (k[1].kind, k[1].memcg.as_deref(), k[1].global),
        (KillKind::Victim, None, Some(false))
    );
}

#[test]
fn a_skipped_victim_is_no_kill_and_a_reaped_one_is() {
    let summary = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=x,pid=1,uid=0";
    let ev = feed(&[
        summary,
        "Memory cgroup out of memory: OOM victim 1 (x) is already exiting. Skip killing the task",
    ]);
    assert_eq!(pids(&ev), Vec::<u32>::new());
    let mut a = OomAssembler::new();
    let _ = a.push(Source::Kernel, summary, 1, None);
    let ev: Vec<_> = a
        .push(
            Source::Kernel,
            "oom_reaper: reaped process 1 (x), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
            2,
            None,
        )
        .collect();
    assert_eq!(pids(&ev), [1]);
    // Its late kill line adds no second kill.
    assert!(a
        .push(
            Source::Kernel,
            "Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB",
            3,
            None
        )
        .is_empty());
}

#[test]
fn a_summary_whose_kill_line_never_comes_is_a_kill_after_a_while() {
    let mut a = OomAssembler::new();
    let _ = a.push(Source::Kernel, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=3,uid=0", 1, None);
    let mut got = Vec::new();
    for i in 0..SUMMARY_PATIENCE {
        got.extend(a.push(
            Source::Kernel,
            "usb 1-1: new high-speed USB device",
            u64::from(i) + 2,
            None,
        ));
    }
    assert_eq!(pids(&got), [3]);
    // Lines that are not the kernel's do not count toward it.
    let _ = a.push(Source::Kernel, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=y,pid=4,uid=0", 100, None);
    for i in 0..2 * SUMMARY_PATIENCE {
        assert!(a
            .push(Source::Unknown, "prose", u64::from(i) + 101, None)
            .is_empty());
    }
}

#[test]
fn a_split_summary_is_one_summary() {
    let ev = feed(&[
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0",
        ",global_oom,task_memcg=/,task=firewalld,pid=5096,uid=0",
    ]);
    let k = kills(&ev);
    assert_eq!(pids(&ev), [5096]);
    assert_eq!(
        (k[0].comm.as_str(), k[0].uid, k[0].global),
        ("firewalld", Some(0), Some(true))
    );
    assert_eq!(k[0].constraint.as_deref(), Some("CONSTRAINT_NONE"));
    // A tail with no head before it is nothing.
    assert!(pids(&feed(&[",global_oom,task_memcg=/,task=x,pid=1,uid=0"])).is_empty());
}

#[test]
fn a_late_summary_of_the_kill_just_emitted_is_no_second_kill() {
    // A newest-first journal prints the kill before its summary.
    let ev = feed(&[
        "Out of memory: Killed process 6439 (tracker-miner-f) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:4kB, UID:1000 pgtables:1kB oom_score_adj:0",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=tracker-miner-f,pid=6439,uid=1000",
        "dnsmasq invoked oom-killer: gfp_mask=0x1100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
    ]);
    assert_eq!(pids(&ev), [6439]);
}

#[test]
fn another_tasks_selection_line_ends_a_summary_only_report() {
    let ev = feed(&[
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/a,task=x,pid=1,uid=0",
        "Out of memory: Kill process 2 (y) score 180 or sacrifice child",
        "Killed process 2 (y) total-vm:51832kB, anon-rss:3140kB, file-rss:1592kB, shmem-rss:236kB",
    ]);
    let k = kills(&ev);
    assert_eq!(pids(&ev), [1, 2]);
    assert_eq!(
        (
            k[0].kind,
            k[1].task_memcg.as_deref(),
            k[1].constraint.as_deref()
        ),
        (KillKind::SummaryOnly, None, None)
    );
}
