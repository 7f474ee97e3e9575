//! The shipped systemd unit (deploy/systemd/oomwatch.service): `systemd-analyze verify`
//! accepts it with nothing to say, its offline security review stays low, it grants exactly
//! the capabilities the README's least-privilege section names and sets none of the
//! sandboxing options that would hide /proc, /sys or /dev/kmsg from the exporter, and the
//! real binary given only those capabilities as an unprivileged user reads every source.
//! systemd is not PID 1 here, so the unit itself is not started; the last test reproduces
//! its user and capabilities with setpriv instead.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::deploy::{
    on_path, repo_file, scrape_with_every_source, systemd_verify, unit_directives, unit_value,
    verify_root,
};
use common::{require, sample, Exporter};

const UNIT: &str = "deploy/systemd/oomwatch.service";

fn unit_text() -> String {
    std::fs::read_to_string(repo_file(UNIT)).expect("the unit file")
}

fn capability_set(value: &str) -> BTreeSet<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

/// The path ExecStart runs (its first word).
fn exec_path(directives: &[(String, String)]) -> String {
    let exec = unit_value(directives, "ExecStart").expect("ExecStart");
    exec.split_whitespace()
        .next()
        .expect("a program")
        .to_owned()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_silently() {
    require(on_path("systemd-analyze"), "systemd-analyze on PATH");
    let directives = unit_directives(&unit_text());
    let root = verify_root(
        std::path::Path::new(env!("CARGO_BIN_EXE_oomwatch")),
        &exec_path(&directives),
    );
    let unit = root.path().join("etc/systemd/system/oomwatch.service");
    std::fs::copy(repo_file(UNIT), &unit).expect("install the unit");
    let (ok, printed) = systemd_verify(root.path(), &unit);
    assert!(ok && printed.trim().is_empty(), "verify:\n{printed}");

    // The check is able to fail: a misspelt value is reported.
    let broken = unit_text().replace("ProtectHome=yes", "ProtectHome=bogus");
    std::fs::write(&unit, broken).expect("write");
    let (_, printed) = systemd_verify(root.path(), &unit);
    assert!(
        printed.contains("ProtectHome") || printed.contains("protect home"),
        "{printed}"
    );
}

#[test]
fn offline_security_review_rates_the_sandbox_ok() {
    require(on_path("systemd-analyze"), "systemd-analyze on PATH");
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30", "--no-pager"])
        .arg(repo_file(UNIT))
        .output()
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&output.stdout);
    // 30 is "3.0": systemd 252 reads the threshold in tenths of the displayed level.
    assert!(output.status.success(), "exposure above 3.0:\n{text}");
    assert!(
        text.contains("Overall exposure level for oomwatch.service"),
        "{text}"
    );
}

#[test]
fn unit_grants_the_readmes_capabilities_and_leaves_the_sources_visible() {
    let directives = unit_directives(&unit_text());
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    let privilege = readme
        .split("## Least privilege")
        .nth(1)
        .expect("a Least privilege section");
    let named = privilege
        .split("`AmbientCapabilities=")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the README names the unit's AmbientCapabilities");
    let named = capability_set(named);
    assert_eq!(
        capability_set(unit_value(&directives, "AmbientCapabilities").expect("ambient")),
        named
    );
    assert_eq!(
        capability_set(unit_value(&directives, "CapabilityBoundingSet").expect("bounding")),
        named,
        "the bounding set is what is granted, no more"
    );
    assert_eq!(unit_value(&directives, "NoNewPrivileges"), Some("yes"));
    assert_eq!(unit_value(&directives, "ProtectSystem"), Some("strict"));
    assert_eq!(unit_value(&directives, "StateDirectory"), Some("oomwatch"));
    let exec = unit_value(&directives, "ExecStart").expect("ExecStart");
    assert!(exec.contains("--state.dir=/var/lib/oomwatch"), "{exec}");
    assert_eq!(unit_value(&directives, "DeviceAllow"), Some("/dev/kmsg r"));
    // Options that would blind the exporter are not set to their hiding values.
    for (key, hiding) in [
        ("ProtectKernelLogs", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("PrivateUsers", "yes"),
        ("PrivateNetwork", "yes"),
    ] {
        assert_ne!(unit_value(&directives, key), Some(hiding), "{key}={hiding}");
    }
}

#[test]
fn the_units_capabilities_alone_let_nobody_read_every_source() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to drop to nobody with setpriv)",
    );
    require(on_path("setpriv"), "setpriv on PATH");
    let directives = unit_directives(&unit_text());
    let caps: Vec<String> =
        capability_set(unit_value(&directives, "AmbientCapabilities").expect("caps"))
            .iter()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect();
    let caps = caps.join(",");
    let state = tempfile::tempdir().expect("temp");
    let state_dir = state.path().join("state");
    std::fs::create_dir(&state_dir).expect("state dir");
    for (program, args) in [
        ("chown", vec!["nobody:", state_dir.to_str().expect("utf-8")]),
        ("chmod", vec!["755", state.path().to_str().expect("utf-8")]),
    ] {
        assert!(Command::new(program)
            .args(&args)
            .status()
            .expect("runs")
            .success());
    }
    let inheritable = format!("--inh-caps=-all,{caps}");
    let ambient = format!("--ambient-caps={caps}");
    let bounding = format!("--bounding-set=-all,{caps}");
    let exporter = Exporter::start_via(
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &inheritable,
            &ambient,
            &bounding,
            "--no-new-privs",
        ],
        &["--state.dir", state_dir.to_str().expect("utf-8")],
    );
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", exporter.pid())).expect("status");
    assert!(status.contains("Uid:\t65534\t"), "not nobody:\n{status}");
    let body = scrape_with_every_source(
        &exporter,
        &["processes", "vmstat", "meminfo", "boot", "kmsg", "exits"],
    );
    assert_eq!(
        sample(&body, "oomwatch_exit_events_up", &[]),
        Some(1.0),
        "{}",
        exporter.log()
    );
    assert!(exporter.stop().success());
    assert!(
        state_dir.join("state.json").exists(),
        "state written by nobody"
    );
}
