//! Real OOM kills on the real kernel: a scratch memory cgroup (v1 or v2, under this test's
//! own cgroup) with a small limit, and children that allocate until the kernel kills them,
//! while oomwatch runs on the real /proc and /dev/kmsg. Checks that the kill is counted
//! once, named (comm, constraint memcg, group), measured (RSS at death), that the new
//! vmstat kills are all explained by the log, that a burst of 20 counts 20, and that a
//! SIGKILLed exporter comes back with every count unchanged. Each run names its victims
//! after its own pid: the ring buffer still holds earlier runs' kills, and a fresh state
//! dir replays them (older ones may be overwritten: that is what `unattributed` shows, so
//! the tests compare it before and after, not with zero). Needs root and a writable memory cgroup: without them
//! it fails, never skips. The tests share one kernel counter, so they run one at a time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, require, sample, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

/// /proc/vmstat oom_kill is host-wide: the two tests must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

const LIMIT: u64 = 64 * 1024 * 1024;

fn vmstat_oom_kills() -> f64 {
    let bytes = std::fs::read("/proc/vmstat").expect("vmstat");
    oomwatch::procfs::host::parse_vmstat_oom_kill(&bytes).expect("oom_kill in /proc/vmstat") as f64
}

/// tail under a name of its own: `tail /dev/zero` holds an ever longer line.
fn hog(dir: &Path, name: &str) -> PathBuf {
    common::named_program(dir, "/usr/bin/tail", name)
}

fn preconditions() {
    require(rustix::process::geteuid().is_root(), "running as root");
}

/// A scrape once the exporter has replayed the ring buffer (`oomwatch_kmsg_up` 1).
fn scrape_when_caught_up(exporter: &Exporter) -> String {
    eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "the kernel log was not read within 10 s:\n{}",
            exporter.log()
        )
    })
}

fn kills(body: &str, comm: &str) -> f64 {
    sample(
        body,
        "oomwatch_oom_kills_total",
        &[("comm", comm), ("constraint", "memcg")],
    )
    .unwrap_or(0.0)
}

#[test]
fn a_real_oom_kill_is_counted_named_and_kept() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let args = ["--state.dir", state.to_str().expect("utf-8")];
    let exporter = Exporter::start(&args);
    let before = scrape_when_caught_up(&exporter);
    let vmstat_before = sample(&before, "oomwatch_vmstat_oom_kills_total", &[]).expect("vmstat");
    let unattributed_before = sample(&before, "oomwatch_oom_kills_unattributed", &[]).expect("gap");
    let comm = format!("oomhog{}", std::process::id() % 1_000_000);
    let comm = comm.as_str();
    assert_eq!(kills(&before, comm), 0.0);

    let cgroup = ScratchCgroup::create(&format!("oomwatch-test-{}", std::process::id()), LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let program = hog(dir.path(), comm);
    let mut child = cgroup.spawn(&program, &["/dev/zero"]).expect("hog starts");
    let status = child.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed the hog"
    );

    let after = eventually(Duration::from_secs(5), || {
        let body = exporter.scrape();
        (kills(&body, comm) == 1.0).then_some(body)
    })
    .unwrap_or_else(|| panic!("the kill was not counted within 5 s:\n{}", exporter.log()));
    assert_eq!(
        sample(&after, "oomwatch_vmstat_oom_kills_total", &[]),
        Some(vmstat_before + 1.0)
    );
    let anon = sample(
        &after,
        "oomwatch_oom_last_victim_rss_bytes",
        &[("comm", comm), ("kind", "anon")],
    )
    .expect("victim rss");
    assert!(anon > (LIMIT / 2) as f64, "anon rss at death {anon}");
    let named = [("group", comm), ("comm", comm), ("constraint", "memcg")];
    assert_eq!(
        sample(&after, "oomwatch_oom_kills_total", &named),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "oomwatch_oom_kills_unattributed", &[]),
        Some(unattributed_before),
        "the new kill is explained by the kernel log"
    );
    let when = sample(
        &after,
        "oomwatch_oom_last_kill_timestamp_seconds",
        &[("comm", comm)],
    )
    .expect("kill time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - when).abs() < 120.0, "kill time {when}, now {now}");
    drop(cgroup);

    // SIGKILL: no chance to flush. The replayed ring buffer must not count it again.
    exporter.kill();
    let exporter = Exporter::start(&args);
    scrape_when_caught_up(&exporter);
    let back = exporter.scrape();
    assert_eq!(
        kills(&back, comm),
        1.0,
        "counted once across a SIGKILL restart"
    );
    assert_eq!(
        sample(&back, "oomwatch_oom_kills_unattributed", &[]),
        Some(unattributed_before)
    );
    assert!(exporter.stop().success());
}

#[test]
fn a_burst_of_twenty_kills_counts_twenty() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let args = ["--state.dir", state.to_str().expect("utf-8")];
    let exporter = Exporter::start(&args);
    let before = scrape_when_caught_up(&exporter);
    let unattributed_before = sample(&before, "oomwatch_oom_kills_unattributed", &[]).expect("gap");
    let comm = format!("oomburst{}", std::process::id() % 1_000_000);
    let comm = comm.as_str();
    let vmstat_before = vmstat_oom_kills();
    let cgroup = ScratchCgroup::create(&format!("oomwatch-burst-{}", std::process::id()), LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let program = hog(dir.path(), comm);
    let children: Vec<_> = (0..20)
        .map(|_| cgroup.spawn(&program, &["/dev/zero"]).expect("hog starts"))
        .collect();
    for mut child in children {
        let status = child.wait().expect("hog ends");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
    assert_eq!(
        vmstat_oom_kills(),
        vmstat_before + 20.0,
        "the kernel made 20 kills"
    );
    let body = eventually(Duration::from_secs(5), || {
        let body = exporter.scrape();
        (kills(&body, comm) == 20.0).then_some(body)
    })
    .unwrap_or_else(|| panic!("20 kills were not counted within 5 s:\n{}", exporter.log()));
    assert_eq!(
        sample(&body, "oomwatch_oom_kills_unattributed", &[]),
        Some(unattributed_before)
    );
    drop(cgroup);
    exporter.kill();
    let exporter = Exporter::start(&args);
    let back = scrape_when_caught_up(&exporter);
    assert_eq!(kills(&back, comm), 20.0);
    assert!(exporter.stop().success());
}
