//! Golden end-to-end test: the real binary on the fixture host (tests/fixtures/host: several
//! groups, a kernel thread, a pid reused by another program, a process that vanished, a
//! comm with parentheses, v1 and v2 cgroup layouts, no PSI, a kernel log file with three
//! OOM kills and a gap of overwritten records), /metrics compared with the
//! checked-in files in tests/golden. `UPDATE_GOLDEN=1 cargo test --test e2e_golden`
//! rewrites them; review the diff before committing.

mod common;

use std::time::Duration;

use common::{eventually, fixture, sample, Exporter};

/// Drops what differs between runs: collector durations and the build revision.
fn normalise(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|l| !l.starts_with("oomwatch_collector_duration_seconds{"))
        .map(|l| {
            if l.starts_with("oomwatch_build_info{") {
                "oomwatch_build_info{version=\"VERSION\",revision=\"REVISION\"} 1".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn run_layout(layout: &str) -> String {
    let state = tempfile::tempdir().expect("state dir");
    std::fs::copy(fixture("host/state.json"), state.path().join("state.json")).expect("seed state");
    let args = [
        "--path.procfs".to_owned(),
        fixture("host/proc").display().to_string(),
        "--path.sysfs".to_owned(),
        fixture(&format!("host/sys-{layout}")).display().to_string(),
        "--path.rootfs".to_owned(),
        fixture("host").display().to_string(),
        "--state.dir".to_owned(),
        state.path().display().to_string(),
        "--config.file".to_owned(),
        fixture("host/oomwatch.yml").display().to_string(),
        "--path.kmsg".to_owned(),
        fixture("host/kmsg").display().to_string(),
        // Process events describe the real host, not the fixture's processes.
        "--no-collector.exits".to_owned(),
        // The fixture's kills are from 2023: shown whatever the date of the run.
        "--oom.victims-retention=100000d".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    // The kernel log file is replayed by its own thread: wait until it has caught up
    // (from its log, so that the golden scrape is the exporter's first scan).
    eventually(Duration::from_secs(10), || {
        exporter
            .log()
            .contains("kernel log caught up")
            .then_some(())
    })
    .expect("the fixture kernel log is read");
    let first = exporter.scrape();
    // A second scrape must not count the restart again.
    let second = exporter.scrape();
    let restarts = [("group", "redis-server")];
    assert_eq!(
        sample(&second, "oomwatch_group_restarts_total", &restarts),
        Some(5.0)
    );
    assert!(exporter.stop().success());
    // Nor must a restart of the exporter on the same state.
    let exporter = Exporter::start(&args);
    let third = exporter.scrape();
    assert_eq!(
        sample(&third, "oomwatch_group_restarts_total", &restarts),
        Some(5.0)
    );
    drop(exporter);
    normalise(&first)
}

fn check_golden(layout: &str) {
    let actual = run_layout(layout);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("e2e-cgroup-{layout}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    });
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .map(|l| format!("- {l}"))
            .chain(
                actual
                    .lines()
                    .filter(|l| !expected.lines().any(|e| e == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "/metrics differs from {} (UPDATE_GOLDEN=1 regenerates it):\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}

#[test]
fn golden_exposition_cgroup_v1() {
    check_golden("v1");
}

#[test]
fn golden_exposition_cgroup_v2() {
    check_golden("v2");
}
