//! The Debian package, built by cargo-deb from Cargo.toml's `[package.metadata.deb]`:
//! it holds the binary, the hardened unit, the default config (as conffiles), the alert
//! rules, dashboards and example configs under /usr/share/oomwatch; it installs with dpkg,
//! its binary serves the real host's metrics with the installed config, its unit and rule
//! files pass systemd-analyze and promtool where they were installed, and a purge leaves
//! nothing behind.
//!
//! To stay within the test command's time, the package is made from the binary this test
//! run built (`--no-build --profile dev`, stripped): the same code as a release, not
//! optimised. `cargo deb` alone builds the release package that ships.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::deploy::{
    build_deb, on_path, printed as text, scrape_with_every_source, systemd_verify,
};
use common::{require, Exporter};

const PACKAGE: &str = "oomwatch";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn installed() -> bool {
    let status = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    String::from_utf8_lossy(&status.stdout).contains("install ok installed")
}

/// Purges the package when dropped, so a failing test leaves the host as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = run("dpkg", &["--purge", PACKAGE]);
        }
    }
}

/// The regular files the package holds, as absolute paths.
fn package_files(deb: &Path) -> Vec<String> {
    let listing = run("dpkg-deb", &["--contents", deb.to_str().expect("utf-8")]);
    assert!(listing.status.success(), "{}", text(&listing));
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

#[test]
fn package_installs_serves_the_real_host_and_purges_cleanly() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (dpkg -i)",
    );
    for tool in [
        "cargo-deb",
        "dpkg",
        "dpkg-deb",
        "systemd-analyze",
        "promtool",
    ] {
        require(on_path(tool), &format!("{tool} on PATH"));
    }
    require(
        !installed(),
        "the oomwatch package is not installed on this host before the test",
    );
    let out = tempfile::tempdir().expect("temp");
    let deb = build_deb(out.path());

    let files = package_files(&deb);
    for expected in [
        "/usr/bin/oomwatch",
        "/usr/lib/systemd/system/oomwatch.service",
        "/etc/oomwatch/oomwatch.yml",
        "/etc/default/oomwatch",
        "/usr/share/oomwatch/alerts/oomwatch.rules.yml",
        "/usr/share/oomwatch/dashboards/oomwatch-overview.json",
        "/usr/share/oomwatch/dashboards/oomwatch-service.json",
        "/usr/share/oomwatch/alertmanager/alertmanager.yml",
        "/usr/share/oomwatch/prometheus/fleet.yml",
        "/usr/share/doc/oomwatch/README.md",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not in {files:?}"
        );
    }
    let control = run(
        "dpkg-deb",
        &["--field", deb.to_str().expect("utf-8"), "Depends"],
    );
    assert!(text(&control).contains("libc6"), "{}", text(&control));

    let guard = Installed;
    let install = run("dpkg", &["--install", deb.to_str().expect("utf-8")]);
    assert!(install.status.success(), "dpkg -i:\n{}", text(&install));
    assert!(installed());
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/oomwatch.conffiles")
        .expect("conffiles registered");
    assert!(
        conffiles.contains("/etc/oomwatch/oomwatch.yml"),
        "{conffiles}"
    );

    // The installed binary is the one this run built.
    let version = |binary: &str| text(&run(binary, &["--version"]));
    assert_eq!(
        version("/usr/bin/oomwatch"),
        version(env!("CARGO_BIN_EXE_oomwatch"))
    );

    // The unit as installed, where its ExecStart exists: verified against the real root.
    let (ok, printed) = systemd_verify(
        Path::new("/"),
        Path::new("/usr/lib/systemd/system/oomwatch.service"),
    );
    assert!(ok && printed.trim().is_empty(), "verify:\n{printed}");
    let rules = run(
        "promtool",
        &[
            "check",
            "rules",
            "/usr/share/oomwatch/alerts/oomwatch.rules.yml",
        ],
    );
    assert!(rules.status.success(), "{}", text(&rules));
    let fleet = run(
        "promtool",
        &[
            "check",
            "config",
            "--syntax-only",
            "/usr/share/oomwatch/prometheus/fleet.yml",
        ],
    );
    assert!(fleet.status.success(), "{}", text(&fleet));

    // The installed binary with the installed config, on the real host.
    let state = tempfile::tempdir().expect("state");
    let exporter = Exporter::start_binary_via(
        "/usr/bin/oomwatch",
        &[],
        &[
            "--config.file=/etc/oomwatch/oomwatch.yml",
            "--state.dir",
            state.path().to_str().expect("utf-8"),
        ],
    );
    let body = scrape_with_every_source(
        &exporter,
        &["processes", "vmstat", "meminfo", "boot", "kmsg"],
    );
    assert!(
        body.contains("oomwatch_process_oom_score{"),
        "next victims listed"
    );
    assert_eq!(exporter.request("GET", "/-/healthy").status, 200);
    assert!(exporter.stop().success());

    let purge = run("dpkg", &["--purge", PACKAGE]);
    assert!(purge.status.success(), "dpkg --purge:\n{}", text(&purge));
    drop(guard);
    assert!(!installed());
    for file in &files {
        assert!(!Path::new(file).exists(), "{file} left after purge");
    }
    for dir in [
        "/etc/oomwatch",
        "/usr/share/oomwatch",
        "/var/lib/oomwatch",
        "/etc/systemd/system/multi-user.target.wants/oomwatch.service",
    ] {
        assert!(!Path::new(dir).exists(), "{dir} left after purge");
    }
}
