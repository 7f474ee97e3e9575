//! The single-message forms, each as a kernel prints it, and the look-alikes that must
//! not match (the forged mount option among them).

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
    let k = killed("Killed process 2 (a) total-vm:9) total-vm:10kB, anon-rss:1kB, file-rss:0kB");
    assert_eq!(k.comm, "a) total-vm:9");
    assert_eq!(k.total_vm_kb, Some(10));
    let k = killed(
        "Killed process 3 (runc:[2:INIT]) total-vm:1kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
    );
    assert_eq!(k.comm, "runc:[2:INIT]");
    assert_eq!(
        killed("Killed process 4 (kworker/u8:1) total-vm:1kB").comm,
        "kworker/u8:1"
    );
    assert_eq!(
        killed("Killed process 5 (Web Content) total-vm:1kB").comm,
        "Web Content"
    );
    // A comm is at most 64 bytes: no closing parenthesis that far away ends it.
    let far = format!("Killed process 6 (a) b{} total-vm:1kB", ")".repeat(100));
    assert!(!matches!(classify(&far), Some(KernelLine::Killed(_))));
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
    let k = killed("Out of memory (oom_kill_allocating_task): Killed process 9 (x) total-vm:1kB");
    assert_eq!(k.memcg_prefix, Some(false));
    let k = killed("No available memory (MPOL_BIND): Killed process 9 (x).");
    assert_eq!((k.pid, k.comm), (9, "x"));
    // The transient 5.4 spelling `UID %d`, and an Android vendor `oom_score_adj=`.
    assert_eq!(
        killed("Out of memory: Killed process 9 (x) total-vm:1kB, shmem-rss:0kB, UID 7").uid,
        Some(7)
    );
    assert_eq!(
        killed("Killed process 9 (x) total-vm:1kB, shmem-rss:0kB oom_score_adj=-900").oom_score_adj,
        Some(-900)
    );
    // 2.2: the process spared is named after the victim.
    let k = killed("Out of Memory: Killed process 106 (portmap), saved process 2165 (mke2fs).");
    assert_eq!((k.pid, k.comm), (106, "portmap"));
    // 2.4, with the next console record glued on.
    assert_eq!(
        killed("Out of Memory: Killed process 198 (perl).kernel BUG at swap_state.c:60!").comm,
        "perl"
    );
}

#[test]
fn a_value_cut_before_its_unit_is_unknown() {
    let k = killed("Memory cgroup out of memory: Killed process 1 (stress) total-vm:157064kB, anon-rss:101976kB, file-rss:204kB, shmem-rss:0kB, UID:0 pgtables:252");
    assert_eq!(
        (k.shmem_rss_kb, k.pgtables_kb, k.uid),
        (Some(0), None, Some(0))
    );
}

#[test]
fn forms_count_only_at_the_start_of_the_message() {
    for msg in [
        // The forged mount option of issue 16: the kernel echoes it inside its own record.
        "tmpfs: Unknown parameter 'Memory: Killed process 123 (mysqld) total-vm:9000000kB anon-rss:8000000kB file-rss:0kB shmem-rss:0kB UID:0 pgtables:1kB oom_score_adj:0 x'",
        "tmpfs: Unknown parameter 'Out of memory: Killed process 123 (mysqld) total-vm:1kB'",
        "tmpfs: Unknown parameter 'oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=5,uid=0'",
        "audit: name=\"Kill process 5 (x) sharing same memory\"",
        " Killed process 5 (x) total-vm:1kB",
        "foo: Killed process 1 (a) total-vm:1kB",
        "systemd[1]: Killed process 1 (a) total-vm:1kB",
        "Memory: Killed process 1 (a) total-vm:1kB",
        "oom_reaper: reaped process 6438 (x), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        "[   6438]     0  6438    15238    14424    12736     1688         0   167936        0             0 Killed process",
        "Memory cgroup stats for /a:",
        "Tasks state (memory values in pages):",
        "Killed process x (a)",
        "Killed process 1 a)",
        "Killed process 99999999999 (a)",
        "Out of memory: Killed process 1 a total-vm:1kB",
    ] {
        assert!(!matches!(classify(msg), Some(KernelLine::Killed(_))), "{msg}");
        assert!(!matches!(classify(msg), Some(KernelLine::Summary(_))), "{msg}");
        assert!(!matches!(classify(msg), Some(KernelLine::Shared { .. })), "{msg}");
        assert!(!matches!(classify(msg), Some(KernelLine::Selected { .. })), "{msg}");
    }
    // Nor a comm-length prefix before `invoked oom-killer:`.
    let far = format!("{} invoked oom-killer: gfp_mask=0x0", "x".repeat(80));
    assert_eq!(classify(&far), None);
}

#[test]
fn victims_named_like_other_forms_parse_as_what_they_are() {
    // An invoker whose comm begins with `oom-kill:` is an invoker.
    assert_eq!(
        classify(
            "oom-kill:x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
        ),
        Some(KernelLine::Invoked {
            comm: Some("oom-kill:x")
        })
    );
    // A victim whose name holds `invoked oom-killer:` is a kill (and the summary a summary).
    let k = killed("Out of memory: Killed process 5 (x invoked oom-killer:) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0");
    assert_eq!((k.pid, k.comm), (5, "x invoked oom-killer:"));
    match classify("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x invoked oom-killer: gfp_mask=,pid=5,uid=0") {
        Some(KernelLine::Summary(s)) => {
            assert_eq!(s.task, Some("x invoked oom-killer: gfp_mask="));
            assert_eq!(s.pid, Some(5));
        }
        other => panic!("{other:?}"),
    }
    // A victim named `oom-kill:x`.
    assert_eq!(
        killed("Out of memory: Killed process 6 (oom-kill:x) total-vm:1kB").comm,
        "oom-kill:x"
    );
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
    assert_eq!(
        classify("Kill process 1 (a) score 2 or sacrifice child"),
        None
    );
}

#[test]
fn shared_memory_skipped_and_reaped() {
    assert_eq!(
        classify("Kill process 14177 (a.out) sharing same memory"),
        Some(KernelLine::Shared {
            pid: 14177,
            comm: "a.out"
        })
    );
    assert_eq!(
        classify("Memory cgroup out of memory: OOM victim 7 (a) is already exiting. Skip killing the task"),
        Some(KernelLine::Skipped { pid: 7 })
    );
    assert_eq!(
        classify(
            "oom_reaper: reaped process 6438 (x), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"
        ),
        Some(KernelLine::Reaped { pid: 6438 })
    );
}

#[test]
fn summary_real_and_awkward() {
    let body = "CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/p/k,task_memcg=/p/k,task=oom (fix) 1:[2],pid=6438,uid=0";
    let line = format!("oom-kill:constraint={body}");
    let Some(KernelLine::Summary(s)) = classify(&line) else {
        panic!("not a summary");
    };
    assert_eq!(s.constraint, Some("CONSTRAINT_MEMCG"));
    assert_eq!(s.oom_memcg, Some("/p/k"));
    assert_eq!(s.task_memcg, Some("/p/k"));
    assert_eq!(s.task, Some("oom (fix) 1:[2]"));
    assert_eq!((s.pid, s.uid), (Some(6438), Some(0)));
    assert!(!s.global_oom);
    let s = parse_summary("CONSTRAINT_NONE,nodemask=0-1,3,cpuset=a,b,mems_allowed=0-1,3,global_oom,task_memcg=/user.slice/x,y,task=a,pid=5,pid=6,uid=7");
    assert!(s.global_oom);
    assert_eq!(s.oom_memcg, None);
    assert_eq!(s.task_memcg, Some("/user.slice/x,y"));
    assert_eq!(s.task, Some("a,pid=5"));
    assert_eq!((s.pid, s.uid), (Some(6), Some(7)));
    let s = parse_summary("CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=a,task=b,pid=1,uid=0");
    assert_eq!(s.task, Some("a,task=b"));
    assert_eq!(s.task_memcg, Some("/"));
    // Cut by an author before the pid.
    let s =
        parse_summary("CONSTRAINT_MEMCG,\u{2026},oom_memcg=/m,task_memcg=/m,task=memhog,\u{2026}");
    assert_eq!(
        (s.task, s.pid, s.oom_memcg),
        (Some("memhog"), None, Some("/m"))
    );
    assert_eq!(parse_summary("garbage"), Summary::default());
    // The second record of a split summary.
    match classify(",global_oom,task_memcg=/,task=firewalld,pid=5096,uid=0") {
        Some(KernelLine::SummaryTail(s)) => {
            assert!(s.global_oom);
            assert_eq!(
                (s.task, s.pid, s.task_memcg),
                (Some("firewalld"), Some(5096), Some("/"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn context_lines() {
    assert_eq!(
        classify(
            "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
        ),
        Some(KernelLine::Invoked {
            comm: Some("python3")
        })
    );
    assert_eq!(
        classify(
            "rs:main Q:Reg invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE), order=0"
        ),
        Some(KernelLine::Invoked {
            comm: Some("rs:main Q:Reg")
        })
    );
    assert_eq!(
        classify("oom-killer: gfp_mask=0xd2"),
        Some(KernelLine::Invoked { comm: None })
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

#[test]
fn quality_grows_with_what_parses() {
    let q = |s: &str| form_quality(s);
    assert_eq!(q("Read two things"), None);
    assert_eq!(q("Out"), Some(0));
    assert_eq!(q("Task in /foo killed as"), Some(0));
    assert_eq!(q("Killed process 2692"), Some(0));
    let short = q("Killed process 1 (a) total-vm:5331").unwrap_or_default();
    let joined = q("Killed process 1 (a) total-vm:5331kB, anon-rss:2kB").unwrap_or_default();
    let spaced = q("Killed process 1 (a) total-vm:5331 kB, anon-rss:2kB").unwrap_or_default();
    assert!(
        joined > short && joined > spaced,
        "{short} {joined} {spaced}"
    );
    assert!(
        q("Out of memory: kill process 1 (a) score 2 or a child")
            > q("Out of memory: kill process 1 (a) score 2 or a")
    );
}

#[test]
fn glued_forms_are_found_after_a_complete_one() {
    let s = "Memory cgroup out of memory: kill process 9139 (memcg_test_1) score 3 or a child Killed process 9139 (memcg_test_1) vsz:3456kB, anon-rss:448kB,";
    let at = glued_at(s).expect("glued");
    assert!(s[at..].starts_with("Killed process 9139"));
    let s = "Killed process 9139 (memcg_test_1) vsz:3456kB, anon-rss:448kB, file-rss:1088kB Memory cgroup out of memory: kill process 9140";
    let at = glued_at(s).expect("glued");
    assert!(s[at..].starts_with("Memory cgroup out of memory"));
    assert_eq!(
        glued_at("Killed process 1 (a) total-vm:1kB Unable to handle kernel paging"),
        None
    );
}
