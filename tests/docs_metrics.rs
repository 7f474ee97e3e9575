//! Shipped text matches the binary: every metric named in README.md, docs/, alerts/ and
//! dashboards/ exists in
//! what the exporter emits (the golden files of the fixture hosts, a live scrape, which has
//! PSI, a fixture host just after a reboot, and the rendering of what only a systemd host
//! has), and every metric the exporter emits is documented in docs/metrics.md.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::Exporter;

/// Sample names in an exposition (counters with their `_total`).
fn emitted(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `oomwatch_*` names in the shipped text that are not metrics: the external label the alert
/// rules read for their runbook links (README, "Alerts and dashboards"). Never emitted.
const NOT_METRICS: [&str; 1] = ["oomwatch_runbook_base"];

/// `oomwatch_*` names mentioned in a text.
fn mentioned(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("oomwatch_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        // `oomwatch_group_(a|b)` in a grep pattern is a prefix, not a metric.
        let prefix = tail[end..].starts_with('(');
        if name.len() > "oomwatch_".len() && !prefix {
            names.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn systemd_host_exposition() -> String {
    use oomwatch::dbus::UnitVerdict;
    use oomwatch::kills::oomd::OomdLedger;
    use oomwatch::snapshot::{Snapshot, UnitRow};
    let mut oomd = OomdLedger::default();
    oomd.count(
        "web.service",
        "/system.slice/web.service",
        "memory-pressure",
        1.7e9,
    );
    let snapshot = Snapshot {
        units: vec![UnitRow {
            group: "web.service".into(),
            verdict: UnitVerdict {
                result: Some("oom-kill".into()),
                restarts: Some(2),
                oom_kills: Some(3),
                managed_oom_kills: Some(1),
            },
        }],
        oomd: Some(oomd),
        ..Snapshot::default()
    };
    oomwatch::metrics::render(
        std::sync::Arc::new(snapshot),
        oomwatch::metrics::BuildInfo::CURRENT,
    )
    .expect("renders")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn documented_metrics_match_the_exporter() {
    let state = tempfile::tempdir().expect("temp");
    let live = Exporter::start(&["--state.dir", state.path().to_str().expect("utf-8")]);
    let mut names = emitted(&live.scrape());
    // A fixture host after an unexpected reboot, for the series that only exist then.
    let rebooted = tempfile::tempdir().expect("temp");
    std::fs::write(
        rebooted.path().join("state.json"),
        r#"{"version":1,"boot_id":"00000000-0000-4000-8000-000000000000",
            "boot":{"boots_total":1,"boot_started_at":1699990000,"last_heartbeat":1699999000}}"#,
    )
    .expect("seed state");
    let after_reboot = Exporter::start(&[
        "--path.procfs",
        common::fixture("host/proc").to_str().expect("utf-8"),
        "--path.sysfs",
        common::fixture("host/sys-v2").to_str().expect("utf-8"),
        "--state.dir",
        rebooted.path().to_str().expect("utf-8"),
        "--config.file",
        common::fixture("host/oomwatch.yml")
            .to_str()
            .expect("utf-8"),
    ]);
    let body = after_reboot.scrape();
    assert!(body.contains("oomwatch_last_reboot_unexpected{cause=\"no_clean_shutdown\"} 1"));
    names.extend(emitted(&body));
    for golden in [
        "tests/golden/e2e-cgroup-v1.txt",
        "tests/golden/e2e-cgroup-v2.txt",
    ] {
        names.extend(emitted(&read(golden)));
    }
    // What only a systemd host shows (the VM bench checks the values against systemd's):
    // the renderer's output for a snapshot with every field of a unit's verdict, as
    // systemd 259+ answers (OOMKills and ManagedOOMKills are absent before), and a
    // systemd-oomd kill from its D-Bus signal.
    names.extend(emitted(&systemd_host_exposition()));
    // The golden files leave the per-collector durations out; the live scrape has them.
    assert!(names.contains("oomwatch_collector_duration_seconds"));

    let catalogue = read("docs/metrics.md");
    let documented = mentioned(&catalogue);
    let undocumented: Vec<_> = names.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "emitted but not in docs/metrics.md: {undocumented:?}"
    );

    let mut shipped: Vec<String> = [
        "README.md",
        "docs/metrics.md",
        "docs/configuration.md",
        "docs/runbook.md",
        "alerts/oomwatch.rules.yml",
        "alerts/tests/oomwatch.test.yml",
        "alerts/tests/runbook_base.test.yml",
    ]
    .map(String::from)
    .to_vec();
    let dashboards = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    if let Ok(entries) = std::fs::read_dir(&dashboards) {
        for entry in entries.flatten() {
            shipped.push(format!(
                "dashboards/{}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    for name in NOT_METRICS {
        assert!(!names.contains(name), "{name} is a label, not a metric");
    }
    for doc in &shipped {
        let unknown: Vec<_> = mentioned(&read(doc))
            .into_iter()
            .filter(|n| !names.contains(n) && !NOT_METRICS.contains(&n.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{doc} names metrics the exporter does not emit: {unknown:?}"
        );
    }
}
