//! The Debian package, built by cargo-deb from Cargo.toml's `[package.metadata.deb]`:
//! it holds the binary, the hardened unit, the default config (as conffiles), the alert
//! rules, dashboards and example configs under /usr/share/oomwatch; it installs with dpkg,
//! its binary serves the real host's metrics with the installed config, its unit and rule
//! files pass systemd-analyze and promtool where they were installed, and a purge leaves
//! nothing behind.
//!
//! All of it happens in a throwaway root, never on the host: a private mount namespace
//! (held by one `sleep` process) with an overlay whose lower layer is the host's `/` and
//! whose upper layer is a tmpfs, `/proc`, `/sys` and `/dev` bound in, and a fresh tmpfs on
//! `/run` so that no maintainer script reaches the host's systemd. dpkg runs chrooted there
//! with its own copy of the package database, so the test passes whether or not oomwatch
//! is installed (or running) on the host, and leaves the host's package state as it was;
//! when the host has it installed, the throwaway copy is purged first.
//!
//! To stay within the test command's time, the package is made from the binary this test
//! run built (`--no-build --profile dev`, stripped): the same code as a release, not
//! optimised. `cargo deb` alone builds the release package that ships.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::deploy::{build_deb, on_path, printed as text, scrape_with_every_source};
use common::{require, Exporter};

const PACKAGE: &str = "oomwatch";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// The package's dpkg status line on the real host ("" when unknown to dpkg).
fn host_status() -> String {
    text(&run(
        "dpkg-query",
        &["-W", "-f=${Status} ${Version}", PACKAGE],
    ))
}

/// A throwaway root: the host's `/` under a tmpfs overlay, in a mount namespace of its
/// own that lives as long as this value; everything written there vanishes with it.
struct Throwaway {
    holder: Child,
    dir: tempfile::TempDir,
}

impl Throwaway {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp");
        let base = dir.path().to_str().expect("utf-8").to_owned();
        let script = format!(
            "set -e; mount -t tmpfs tmpfs {base}; mkdir {base}/upper {base}/work {base}/root; \
             mount -t overlay overlay -o lowerdir=/,upperdir={base}/upper,workdir={base}/work {base}/root; \
             for d in proc sys dev; do mount --rbind /$d {base}/root/$d; done; \
             mount -t tmpfs tmpfs {base}/root/run; echo ready; exec sleep infinity"
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            panic!("the throwaway root could not be mounted (overlay over / on a tmpfs)");
        }
        Self { holder, dir }
    }

    /// The root as seen from inside the namespace.
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `nsenter` into the namespace (and `chroot` into the root when `chrooted`).
    fn wrapper(&self, chrooted: bool) -> Vec<String> {
        let mut w = vec![
            "nsenter".to_owned(),
            format!("--target={}", self.holder.id()),
            "--mount".to_owned(),
            // The holder's root, not the namespace's: right even when this test itself
            // runs chrooted.
            "--root".to_owned(),
            "--".to_owned(),
        ];
        if chrooted {
            w.extend(["chroot".to_owned(), self.root().display().to_string()]);
        }
        w
    }

    fn run(&self, chrooted: bool, args: &[&str]) -> Output {
        let wrapper = self.wrapper(chrooted);
        Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// Whether a path exists inside the throwaway root.
    fn exists(&self, path: &str) -> bool {
        self.run(true, &["test", "-e", path]).status.success()
            || self.run(true, &["test", "-L", path]).status.success()
    }

    fn installed(&self) -> bool {
        let out = self.run(true, &["dpkg-query", "-W", "-f=${Status}", PACKAGE]);
        text(&out).contains("install ok installed")
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
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
        "running as root (mount namespaces and dpkg)",
    );
    for tool in [
        "cargo-deb",
        "dpkg",
        "dpkg-deb",
        "systemd-analyze",
        "promtool",
        "unshare",
        "nsenter",
    ] {
        require(on_path(tool), &format!("{tool} on PATH"));
    }
    let host_before = host_status();
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

    let root = Throwaway::new();
    if root.installed() {
        // The host has oomwatch: purge the throwaway copy of it, not the host's.
        println!(
            "oomwatch is installed on the host ({host_before}); purged in the throwaway root only"
        );
        let purge = root.run(true, &["dpkg", "--purge", PACKAGE]);
        assert!(purge.status.success(), "{}", text(&purge));
    }
    let inside = root.root().join("tmp/oomwatch-test.deb");
    let copied = root.run(
        false,
        &[
            "cp",
            deb.to_str().expect("utf-8"),
            inside.to_str().expect("utf-8"),
        ],
    );
    assert!(copied.status.success(), "{}", text(&copied));
    let install = root.run(true, &["dpkg", "--install", "/tmp/oomwatch-test.deb"]);
    assert!(install.status.success(), "dpkg -i:\n{}", text(&install));
    assert!(root.installed());
    let conffiles = root.run(true, &["cat", "/var/lib/dpkg/info/oomwatch.conffiles"]);
    assert!(
        text(&conffiles).contains("/etc/oomwatch/oomwatch.yml"),
        "{}",
        text(&conffiles)
    );
    // The host saw none of it.
    assert_eq!(
        host_status(),
        host_before,
        "the host's package state changed"
    );
    assert!(
        !Path::new("/tmp/oomwatch-test.deb").exists(),
        "the throwaway root leaked into the host"
    );

    // The installed binary is the one this run built.
    let version = text(&root.run(true, &["/usr/bin/oomwatch", "--version"]));
    assert_eq!(
        version,
        text(&run(env!("CARGO_BIN_EXE_oomwatch"), &["--version"]))
    );

    // The unit as installed, where its ExecStart exists: verified against that root.
    let root_dir = root.root().display().to_string();
    let verify = root.run(
        false,
        &[
            "systemd-analyze",
            "verify",
            &format!("--root={root_dir}"),
            &format!("{root_dir}/usr/lib/systemd/system/oomwatch.service"),
        ],
    );
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "verify:\n{}",
        text(&verify)
    );
    let rules = root.run(
        true,
        &[
            "promtool",
            "check",
            "rules",
            "/usr/share/oomwatch/alerts/oomwatch.rules.yml",
        ],
    );
    assert!(rules.status.success(), "{}", text(&rules));
    let fleet = root.run(
        true,
        &[
            "promtool",
            "check",
            "config",
            "--syntax-only",
            "/usr/share/oomwatch/prometheus/fleet.yml",
        ],
    );
    assert!(fleet.status.success(), "{}", text(&fleet));

    // The installed binary with the installed config, on the real host's /proc, /sys and
    // /dev/kmsg, its state inside the throwaway root.
    let wrapper = root.wrapper(true);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let exporter = Exporter::start_binary_via(
        "/usr/bin/oomwatch",
        &wrapper,
        &[
            "--config.file=/etc/oomwatch/oomwatch.yml",
            "--state.dir=/tmp/oomwatch-test-state",
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

    let purge = root.run(true, &["dpkg", "--purge", PACKAGE]);
    assert!(purge.status.success(), "dpkg --purge:\n{}", text(&purge));
    assert!(!root.installed());
    for file in &files {
        assert!(!root.exists(file), "{file} left after purge");
    }
    for dir in [
        "/etc/oomwatch",
        "/usr/share/oomwatch",
        "/var/lib/oomwatch",
        "/etc/systemd/system/multi-user.target.wants/oomwatch.service",
    ] {
        assert!(!root.exists(dir), "{dir} left after purge");
    }
    drop(root);
    assert_eq!(
        host_status(),
        host_before,
        "the host's package state changed"
    );
}
