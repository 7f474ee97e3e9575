//! Every fixture in `tests/fixtures/kmsg/` yields exactly the expected events, field by field; the
//! one real OOM report gives the same kill in every log format. This file owns those
//! expectations (see `tests/fixtures/kmsg/SOURCES.md` for what each fixture is); it must not
//! reimplement any parsing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kmsg_support;

use kmsg_support::{events, kills, without_position};
use oomwatch::kmsg::{KernelKill, KillKind, NoKillable, OomEvent, OomPanic, UserspaceKill};

fn kill(pid: u32, comm: &str) -> KernelKill {
    KernelKill {
        pid,
        comm: comm.to_owned(),
        uid: None,
        constraint: None,
        global: None,
        memcg: None,
        task_memcg: None,
        oom_group: None,
        total_vm_kb: None,
        anon_rss_kb: None,
        file_rss_kb: None,
        shmem_rss_kb: None,
        pgtables_kb: None,
        oom_score_adj: None,
        invoker: None,
        at: 0,
        time: None,
        kind: KillKind::Victim,
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Asserts the fixture's kernel kills, ignoring `at`/`time`, and that it has no other
/// events than kills and repeated kill lines (see `repeated_kill_lines`).
fn assert_kills(name: &str, expected: &[KernelKill]) {
    let ev = events(name);
    let got: Vec<KernelKill> = kills(&ev).into_iter().map(without_position).collect();
    assert_eq!(got, expected, "{name}");
    let others: Vec<&OomEvent> = ev
        .iter()
        .filter(|e| !matches!(e, OomEvent::Kill(_) | OomEvent::RepeatedKill { .. }))
        .collect();
    assert!(
        others.is_empty(),
        "{name}: unexpected non-kill events {others:#?}"
    );
}

/// The pids of the repeated `Killed process` lines (memory.oom.group kills the victim a
/// second time; /proc/vmstat counts both, oomwatch counts one kill and one repeat).
fn repeated_kill_lines(name: &str) -> Vec<u32> {
    events(name)
        .iter()
        .filter_map(|e| match e {
            OomEvent::RepeatedKill { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

const REAL_MEMCG: &str = "/process_api/b509ffaada24f5d380cce6f029899fef/kmsgparse-fixture";

fn real_kill() -> KernelKill {
    KernelKill {
        uid: Some(0),
        constraint: s("CONSTRAINT_MEMCG"),
        global: Some(false),
        memcg: s(REAL_MEMCG),
        task_memcg: s(REAL_MEMCG),
        total_vm_kb: Some(60952),
        anon_rss_kb: Some(50944),
        file_rss_kb: Some(6752),
        shmem_rss_kb: Some(0),
        pgtables_kb: Some(164),
        oom_score_adj: Some(0),
        invoker: s("oom (fix) 1:[2]"),
        ..kill(6438, "oom (fix) 1:[2]")
    }
}

#[test]
fn real_capture_as_kmsg_records() {
    let ev = events("real-6.18-memcg-v1.kmsg");
    assert_eq!(ev.len(), 1);
    let OomEvent::Kill(k) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        k.at, 418,
        "position is the kmsg seq of the Killed process record"
    );
    assert_eq!(k.time.as_deref(), Some("294385120"));
    assert_eq!(without_position(k.clone()), real_kill());
}

#[test]
fn real_capture_is_the_same_kill_in_every_format() {
    for name in [
        "real-6.18-memcg-v1.kmsg",
        "real-6.18-memcg-v1.dmesg",
        "real-6.18-memcg-v1.dmesg-T",
        "real-6.18-memcg-v1.dmesg-iso",
        "real-6.18-memcg-v1.syslog",
        "real-6.18-memcg-v1.journal",
        "real-6.18-memcg-v1.journal-iso",
    ] {
        assert_kills(name, &[real_kill()]);
    }
    let k = &kills(&events("real-6.18-memcg-v1.dmesg-T"))[0];
    assert_eq!(
        (k.at, k.time.as_deref()),
        (80, Some("Sun Nov 22 02:54:31 2026"))
    );
    let k = &kills(&events("real-6.18-memcg-v1.dmesg"))[0];
    assert_eq!(k.time.as_deref(), Some("294.385120"));
}

#[test]
fn v2_6_32_selection_then_child_is_one_kill_of_the_child() {
    assert_kills(
        "v2.6.32-global-child.dmesg",
        &[KernelKill {
            global: Some(true),
            total_vm_kb: Some(480_000),
            anon_rss_kb: Some(199_996),
            file_rss_kb: Some(4),
            invoker: s("java"),
            ..kill(2593, "java-child")
        }],
    );
}

#[test]
fn rhel6_vendor_uid_form() {
    assert_kills(
        "rhel6-2.6.32-global.syslog",
        &[KernelKill {
            uid: Some(500),
            global: Some(true),
            total_vm_kb: Some(2_820_860),
            anon_rss_kb: Some(1_070_404),
            file_rss_kb: Some(176),
            invoker: s("mysqld"),
            ..kill(2592, "java")
        }],
    );
}

#[test]
fn v3_10_global_journal() {
    assert_kills(
        "v3.10-rhel7-global.journal",
        &[KernelKill {
            global: Some(true),
            total_vm_kb: Some(4_446_352),
            anon_rss_kb: Some(4_053_140),
            file_rss_kb: Some(68),
            invoker: s("keystone-all"),
            ..kill(43805, "keystone-all")
        }],
    );
}

#[test]
fn rhel7_memcg_with_comm_then_uid_form() {
    let cg = "/system.slice/docker-3f2a9c1e.scope";
    assert_kills(
        "rhel7-3.10-memcg-vendor.syslog",
        &[KernelKill {
            uid: Some(1000),
            global: Some(false),
            memcg: s(cg),
            task_memcg: s(cg),
            total_vm_kb: Some(3_380_840),
            anon_rss_kb: Some(521_504),
            file_rss_kb: Some(2444),
            shmem_rss_kb: Some(0),
            invoker: s("C2 CompilerThre"),
            ..kill(4242, "java")
        }],
    );
}

#[test]
fn v4_4_global_without_shmem() {
    assert_kills(
        "v4.4-global.dmesg",
        &[KernelKill {
            global: Some(true),
            total_vm_kb: Some(1_185_244),
            anon_rss_kb: Some(884_128),
            file_rss_kb: Some(0),
            invoker: s("mysqld"),
            ..kill(1534, "mysqld")
        }],
    );
}

#[test]
fn v4_9_reaper_line_is_not_a_second_kill() {
    assert_kills(
        "v4.9-global-reaper.dmesg-T",
        &[KernelKill {
            global: Some(true),
            total_vm_kb: Some(3_649_380),
            anon_rss_kb: Some(2_601_876),
            file_rss_kb: Some(15408),
            shmem_rss_kb: Some(0),
            invoker: s("Web Content"),
            ..kill(3172, "Web Content")
        }],
    );
}

#[test]
fn v4_19_oom_group_dedupes_the_victim_and_counts_members() {
    assert_eq!(repeated_kill_lines("v4.19-memcg-oomgroup.syslog"), [9001]);
    let group = KernelKill {
        global: Some(false),
        memcg: s("/kubepods/pod-a"),
        invoker: s("worker"),
        ..kill(0, "")
    };
    assert_kills(
        "v4.19-memcg-oomgroup.syslog",
        &[
            KernelKill {
                task_memcg: s("/kubepods/pod-a/c1"),
                total_vm_kb: Some(320_000),
                anon_rss_kb: Some(241_000),
                file_rss_kb: Some(664),
                shmem_rss_kb: Some(0),
                ..kill(9001, "worker")
            },
            KernelKill {
                // A member: the group line names the cgroup it is killed with.
                oom_group: s("/kubepods/pod-a"),
                total_vm_kb: Some(48000),
                anon_rss_kb: Some(20400),
                file_rss_kb: Some(80),
                shmem_rss_kb: Some(0),
                kind: KillKind::GroupMember,
                ..kill(9002, "sidecar")
            },
            KernelKill {
                oom_group: s("/kubepods/pod-a"),
                total_vm_kb: Some(8000),
                anon_rss_kb: Some(384),
                file_rss_kb: Some(16),
                shmem_rss_kb: Some(0),
                kind: KillKind::GroupMember,
                ..kill(9003, "runc:[2:INIT]")
            },
        ]
        .map(|k| KernelKill {
            global: group.global,
            memcg: group.memcg.clone(),
            invoker: group.invoker.clone(),
            ..k
        }),
    );
}

#[test]
fn v5_1_constraint_none_with_oom_memcg_is_a_memcg_kill() {
    let cg = "/kubepods/burstable/pod6c1e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6/0f3b9a7c5d1e";
    assert_kills(
        "v5.1-memcg-constraint-none.dmesg",
        &[KernelKill {
            uid: Some(1000),
            constraint: s("CONSTRAINT_NONE"),
            global: Some(false),
            memcg: s(cg),
            task_memcg: s(cg),
            total_vm_kb: Some(4_493_824),
            anon_rss_kb: Some(1_037_696),
            file_rss_kb: Some(708),
            shmem_rss_kb: Some(0),
            invoker: s("java"),
            ..kill(30412, "java")
        }],
    );
}

#[test]
fn v5_4_global_summary_and_kill_are_one() {
    assert_kills(
        "v5.4-global.journal",
        &[KernelKill {
            uid: Some(1000),
            constraint: s("CONSTRAINT_NONE"),
            global: Some(true),
            task_memcg: s("/user.slice/user-1000.slice/session-3.scope"),
            total_vm_kb: Some(3_936_784),
            anon_rss_kb: Some(3_879_720),
            file_rss_kb: Some(4),
            shmem_rss_kb: Some(0),
            invoker: s("stress"),
            ..kill(2719, "stress")
        }],
    );
}

#[test]
fn v5_10_memcg_v2_all_fields() {
    let cg = "/system.slice/php8.2-fpm.service";
    assert_kills(
        "v5.10-memcg-v2.dmesg",
        &[KernelKill {
            uid: Some(33),
            constraint: s("CONSTRAINT_MEMCG"),
            global: Some(false),
            memcg: s(cg),
            task_memcg: s(cg),
            total_vm_kb: Some(1_244_488),
            anon_rss_kb: Some(1_039_180),
            file_rss_kb: Some(864),
            shmem_rss_kb: Some(0),
            pgtables_kb: Some(2248),
            oom_score_adj: Some(0),
            invoker: s("php-fpm8.2"),
            ..kill(51234, "php-fpm8.2")
        }],
    );
}

#[test]
fn v5_15_comm_with_parentheses_and_kworker_invoker() {
    assert_kills(
        "v5.15-global-parens.syslog",
        &[KernelKill {
            uid: Some(101),
            constraint: s("CONSTRAINT_NONE"),
            global: Some(true),
            task_memcg: s("/system.slice/systemd-resolved.service"),
            total_vm_kb: Some(24916),
            anon_rss_kb: Some(2660),
            file_rss_kb: Some(1424),
            shmem_rss_kb: Some(0),
            pgtables_kb: Some(84),
            oom_score_adj: Some(0),
            invoker: s("kworker/u8:1"),
            ..kill(612, "((resolved))")
        }],
    );
}

#[test]
fn v5_15_memcg_no_killable_is_not_a_kill() {
    let ev = events("v5.15-memcg-nokillable.dmesg");
    assert_eq!(
        ev,
        vec![OomEvent::NoKillable(NoKillable {
            global: Some(false),
            memcg: s("/system.slice/postgresql@14-main.service"),
            invoker: s("postgres"),
            at: 18,
            time: s("812.004490"),
        })]
    );
}

#[test]
fn v6_1_kmsg_oom_group_with_escaped_stats_record() {
    assert_eq!(repeated_kill_lines("v6.1-memcg-oomgroup.kmsg"), [12001]);
    let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7a1b.slice";
    assert_kills(
        "v6.1-memcg-oomgroup.kmsg",
        &[
            KernelKill {
                uid: Some(1000),
                task_memcg: Some(format!("{pod}/cri-containerd-aa11.scope")),
                total_vm_kb: Some(11_501_240),
                anon_rss_kb: Some(1_031_040),
                file_rss_kb: Some(1400),
                pgtables_kb: Some(2336),
                ..kill(12001, "node")
            },
            KernelKill {
                uid: Some(0),
                oom_group: s(pod),
                total_vm_kb: Some(1_232_896),
                anon_rss_kb: Some(7812),
                file_rss_kb: Some(384),
                pgtables_kb: Some(140),
                kind: KillKind::GroupMember,
                ..kill(12010, "runc:[2:INIT]")
            },
        ]
        .map(|k| KernelKill {
            constraint: s("CONSTRAINT_MEMCG"),
            global: Some(false),
            memcg: s(pod),
            shmem_rss_kb: Some(0),
            oom_score_adj: Some(985),
            invoker: s("node"),
            ..k
        }),
    );
    let ev = events("v6.1-memcg-oomgroup.kmsg");
    let at: Vec<u64> = kills(&ev).iter().map(|k| k.at).collect();
    assert_eq!(at, vec![88142, 88145]);
}

#[test]
fn v6_8_panic_on_oom() {
    assert_eq!(
        events("v6.8-global-panic-on-oom.dmesg"),
        vec![OomEvent::Panic(OomPanic {
            reason: "Out of memory: system-wide panic_on_oom is enabled".into(),
            at: 19,
            time: s("3301.772310"),
        })]
    );
}

#[test]
fn v6_8_no_killable_then_deadlock_panic() {
    assert_eq!(
        events("v6.8-global-deadlocked.dmesg"),
        vec![
            OomEvent::NoKillable(NoKillable {
                global: Some(true),
                memcg: None,
                invoker: s("init"),
                at: 11,
                time: s("120.500150"),
            }),
            OomEvent::Panic(OomPanic {
                reason: "System is deadlocked on memory".into(),
                at: 12,
                time: s("120.500160"),
            }),
        ]
    );
}

fn us(killer: &str, pid: Option<u32>, comm: Option<&str>, cg: Option<&str>, at: u64) -> OomEvent {
    OomEvent::Userspace(UserspaceKill {
        killer: killer.into(),
        pid,
        comm: comm.map(Into::into),
        // earlyoom 1.6+ names the victim's uid; the fixture's victims run as 1000.
        uid: (killer == "earlyoom").then_some(1000),
        unit_or_cgroup: cg.map(Into::into),
        at,
        time: None,
    })
}

#[test]
fn userspace_killers_and_a_kernel_kill_of_earlyoom() {
    let ev: Vec<OomEvent> = events("userspace-killers.syslog")
        .into_iter()
        .map(|e| match e {
            OomEvent::Userspace(mut u) => {
                assert!(u.time.is_some());
                u.time = None;
                OomEvent::Userspace(u)
            }
            OomEvent::Kill(k) => OomEvent::Kill(without_position(k)),
            e => e,
        })
        .collect();
    assert_eq!(
        ev,
        vec![
            us(
                "systemd-oomd",
                None,
                None,
                Some("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-2210.scope"),
                3
            ),
            us("systemd-oomd", None, None, Some("/system.slice/build.service"), 5),
            us("earlyoom", Some(4711), Some("Web Content"), None, 8),
            us("earlyoom", Some(5120), Some("java"), None, 12),
            OomEvent::Kill(KernelKill {
                uid: Some(0),
                constraint: s("CONSTRAINT_NONE"),
                global: Some(true),
                task_memcg: s("/system.slice/earlyoom.service"),
                total_vm_kb: Some(2500),
                anon_rss_kb: Some(1400),
                file_rss_kb: Some(900),
                shmem_rss_kb: Some(0),
                pgtables_kb: Some(44),
                oom_score_adj: Some(-100),
                invoker: s("earlyoom"),
                ..kill(701, "earlyoom")
            }),
            us(
                "systemd-oomd",
                None,
                None,
                Some("/user.slice/user-1000.slice/session-2.scope"),
                17
            ),
            us("nohang", Some(6001), Some("chrome"), None, 24),
            us("oomd", None, None, Some("/workload.slice/batch.service"), 27),
        ]
    );
}
