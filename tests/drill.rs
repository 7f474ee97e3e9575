//! `oomwatch drill` as a user runs it: as root against a running oomwatch it makes a real,
//! contained OOM kill and reports that the kernel killed the victim and that oomwatch
//! counted it; as an unprivileged user it refuses with a clear message and exit 2. Needs
//! root: fails, never skips, without it.

mod common;

use std::process::Command;

use common::{require, Exporter};

fn drill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .arg("drill")
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn the_drill_makes_a_real_kill_that_oomwatch_counts() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let state = tempfile::tempdir().expect("temp");
    let exporter = Exporter::start(&["--state.dir", state.path().to_str().expect("utf-8")]);
    let url = format!("http://{}/metrics", exporter.addr);
    let out = drill(&["--exporter", &url, "--timeout", "20s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: the kernel OOM-killed the victim oomwatch-drill"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok: oomwatch at {url} counted it")),
        "{stdout}"
    );
    // The scratch cgroup is gone.
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    assert!(!own.contains("oomwatch-drill"));
    assert!(exporter.stop().success());
}

#[test]
fn without_the_right_to_make_a_cgroup_the_drill_refuses() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to drop to nobody)",
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_oomwatch"))
        .arg("drill")
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(out.status.code(), Some(2), "{:?}", out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot make a scratch memory cgroup"),
        "{stderr}"
    );
    assert!(
        stderr.contains("needs root or a delegated cgroup subtree"),
        "{stderr}"
    );
}
