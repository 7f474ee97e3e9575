//! The memory cgroup's early signals, on the real kernel: a scratch memory cgroup (v1 on
//! the development host, v2 elsewhere) with a small limit, a configured group that alone
//! lives in it (a sleeper and a hog, both named after this run), and oomwatch on the real
//! /proc and /sys. The hog allocates until the limit: the group's `max` events rise on v2
//! (and `oom`, `oom_kill`); on v1 the OOM killer is first disabled for the cgroup, so the
//! hog stops at the limit, `under_oom` reads 1 and `max`/`memsw_max` show the kernel's
//! `memory.failcnt`/`memory.memsw.failcnt` as they stand, then the killer is enabled
//! again and the kernel kills it: `oom_kill` rises. Then the cgroup is removed and made again under the same path (as
//! systemd does for a unit that restarts), and the exporter is SIGKILLed and started
//! again: no counter goes down, and the new cgroup's counts add on top. Needs root and a
//! writable memory cgroup: without them it fails, never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use common::{eventually, named_program, require, sample, Exporter};
use oomwatch::cgroupfs::MemoryHierarchy;
use oomwatch::roots::Roots;
use oomwatch::scratch_cgroup::ScratchCgroup;

const LIMIT: u64 = 32 * 1024 * 1024;

fn event(body: &str, group: &str, event: &str) -> Option<f64> {
    sample(
        body,
        "oomwatch_group_memory_events_total",
        &[("group", group), ("event", event)],
    )
}

/// The directory of a cgroup path, under the host's memory hierarchy.
fn cgroup_dir(path: &str) -> (PathBuf, u8) {
    let hierarchy = MemoryHierarchy::detect(&Roots::default()).expect("a memory hierarchy");
    let version = hierarchy.version();
    let mount = match hierarchy {
        MemoryHierarchy::V1 { mount } | MemoryHierarchy::V2 { mount } => mount,
    };
    (mount.join(path.trim_start_matches('/')), version)
}

/// Charges the limit refused: `max` (v2 memory.max; v1 memory.failcnt) and, on v1 with
/// swap accounting, `memsw_max` (memory.memsw.failcnt: the scratch cgroup's memory+swap
/// limit equals its memory limit, so that counter is the one a hog without swap hits).
fn refused(body: &str, group: &str) -> f64 {
    event(body, group, "max").unwrap_or(0.0) + event(body, group, "memsw_max").unwrap_or(0.0)
}

fn kernel_count(dir: &Path, file: &str, key: Option<&str>) -> u64 {
    let text = std::fs::read_to_string(dir.join(file)).expect("cgroup file");
    let value = match key {
        Some(key) => text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{key} not in {file}: {text}")),
        None => text.trim(),
    };
    value.trim().parse().expect("number")
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_cgroup_driven_to_its_limit_raises_its_groups_counters_and_they_never_go_down() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let dir = tempfile::tempdir().expect("temp");
    let name = format!("memhog{}", std::process::id() % 1_000_000);
    let config = dir.path().join("oomwatch.yml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: {name}\n    comm: '^{name}$'\n"),
    )
    .expect("config");
    let state = dir.path().join("state");
    let args = [
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
    ];
    let exporter = Exporter::start(&args);
    let cgroup_name = format!("oomwatch-memcg-{}", std::process::id());
    let cgroup = ScratchCgroup::create(&cgroup_name, LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let (memcg, version) = cgroup_dir(cgroup.path());
    let sleeper = named_program(dir.path(), "/usr/bin/sleep", &name);
    let keeper = cgroup.spawn(&sleeper, &["600"]).expect("sleeper starts");
    let owned = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        event(&body, &name, "oom_kill").map(|_| body)
    })
    .unwrap_or_else(|| {
        panic!(
            "the group's cgroup counters never showed:\n{}",
            exporter.scrape()
        )
    });
    assert_eq!(event(&owned, &name, "oom_kill"), Some(0.0));

    // The hog: tail under the group's name (tail /dev/zero holds an ever longer line).
    let hog_dir = dir.path().join("hog");
    std::fs::create_dir(&hog_dir).expect("dir");
    let hog = named_program(&hog_dir, "/usr/bin/tail", &name);
    let killed = if version == 1 {
        // The OOM killer off for this cgroup: the hog stops at the limit, under OOM.
        std::fs::write(memcg.join("memory.oom_control"), "1").expect("oom_kill_disable");
        let hog = cgroup.spawn(&hog, &["/dev/zero"]).expect("hog starts");
        eventually(Duration::from_secs(20), || {
            let body = exporter.scrape();
            (sample(
                &body,
                "oomwatch_group_memory_under_oom",
                &[("group", &name)],
            ) == Some(1.0))
            .then_some(())
        })
        .unwrap_or_else(|| panic!("under_oom never read 1:\n{}", exporter.scrape()));
        // The hog is stopped: the kernel's counts stand still, and oomwatch shows them.
        // (Some kernels count no v1 failcnt at all: 6.18 reads 0 at the limit, the
        // page counter's track_failcnt left unset; then 0 is the truth shown.)
        let failcnt = kernel_count(&memcg, "memory.failcnt", None);
        let memsw_failcnt = memcg
            .join("memory.memsw.failcnt")
            .exists()
            .then(|| kernel_count(&memcg, "memory.memsw.failcnt", None));
        let stuck = exporter.scrape();
        assert_eq!(
            event(&stuck, &name, "max"),
            Some(failcnt as f64),
            "memory.failcnt"
        );
        assert_eq!(
            event(&stuck, &name, "memsw_max"),
            memsw_failcnt.map(|n| n as f64),
            "memory.memsw.failcnt"
        );
        eprintln!("under OOM: memory.failcnt {failcnt}, memory.memsw.failcnt {memsw_failcnt:?}");
        // The killer on again: the kernel kills the hog.
        std::fs::write(memcg.join("memory.oom_control"), "0").expect("oom_kill_disable");
        hog
    } else {
        cgroup.spawn(&hog, &["/dev/zero"]).expect("hog starts")
    };
    let mut killed = killed;
    let status = killed.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed the hog"
    );
    let kernel_kills = cgroup.oom_kills().expect("the cgroup's oom_kill count");
    assert_eq!(kernel_kills, 1);
    let after_kill = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (event(&body, &name, "oom_kill") == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("oom_kill never read 1:\n{}", exporter.scrape()));
    let max_before = refused(&after_kill, &name);
    if version == 2 {
        assert!(max_before > 0.0, "the hog hit the limit: {max_before}");
    }
    if version == 1 {
        assert_eq!(
            sample(
                &after_kill,
                "oomwatch_group_memory_under_oom",
                &[("group", &name)]
            ),
            Some(0.0)
        );
    } else {
        assert!(event(&after_kill, &name, "oom").is_some_and(|n| n >= 1.0));
    }
    stop(keeper);
    drop(cgroup);

    // The same cgroup path made again, counting from 0, and the exporter SIGKILLed and
    // started again on its state directory: the totals go on from where they were.
    exporter.kill();
    let cgroup = ScratchCgroup::create(&cgroup_name, LIMIT).expect("the cgroup again");
    let keeper = cgroup.spawn(&sleeper, &["600"]).expect("sleeper starts");
    let exporter = Exporter::start(&args);
    let again = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        event(&body, &name, "oom_kill").map(|_| body)
    })
    .unwrap_or_else(|| panic!("no counters after the restart:\n{}", exporter.scrape()));
    assert_eq!(cgroup.oom_kills(), Some(0), "a new cgroup counts from 0");
    assert_eq!(event(&again, &name, "oom_kill"), Some(1.0));
    assert_eq!(refused(&again, &name), max_before);
    // New events in the new cgroup add on top.
    let mut hog = cgroup.spawn(&hog, &["/dev/zero"]).expect("hog starts");
    hog.wait().expect("hog ends");
    let more = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (event(&body, &name, "oom_kill") == Some(2.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the second kill was not added:\n{}", exporter.scrape()));
    assert!(refused(&more, &name) >= max_before);
    if version == 2 {
        assert!(refused(&more, &name) > max_before);
    }
    eprintln!(
        "cgroup v{version}: {}",
        more.lines()
            .filter(|l| l.contains(&format!("group=\"{name}\"")) && l.contains("memory"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    stop(keeper);
    drop(cgroup);
    assert!(exporter.stop().success());
}
