//! Helpers for the tests of the shipped deployment files (deploy/, the Debian package, the
//! container image): where the repository's files are, what a systemd unit file says, and
//! `systemd-analyze verify` run offline against a scratch root that holds the unit, the
//! binary at the path its ExecStart names, and the distribution's own units; and the .deb
//! that cargo-deb makes from this test run's binary (installed on this host and in the VM
//! bench's guests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{eventually, sample, Exporter};

/// A file of the repository, by its path from the top.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every `Key=value` of a unit file, in order (comments and section headers left out).
pub fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The value of the last `key=` in a unit file (systemd's rule for single-valued keys).
pub fn unit_value<'a>(directives: &'a [(String, String)], key: &str) -> Option<&'a str> {
    directives
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// True when `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The .deb made from this test run's build of the binary.
pub fn build_deb(out: &Path) -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_oomwatch"));
    let target_dir = binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary sits in <target>/debug");
    let output = Command::new("cargo")
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--strip",
            "--fast",
            "--quiet",
        ])
        .arg("--output")
        .arg(out)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo deb runs");
    assert!(output.status.success(), "cargo deb:\n{}", printed(&output));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("output dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package: {debs:?}");
    debs.into_iter().next().expect("a .deb")
}

/// What a finished command printed, stdout then stderr.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `systemd-analyze verify` on `unit` under `root` and returns its exit status and
/// everything it printed. systemd 252 exits 0 on a directive it could not parse and only
/// warns ("…, ignoring"), so callers check that nothing was printed at all.
pub fn systemd_verify(root: &Path, unit: &Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .output()
        .expect("systemd-analyze runs");
    (output.status.success(), printed(&output))
}

/// A scratch root for `systemd_verify`: the host's /usr/lib/systemd/system (the targets a
/// service is ordered against), `binary` copied to `exec_path`, and /bin/sh (the unit's
/// ExecStartPre copies the pstore records with it).
pub fn verify_root(binary: &Path, exec_path: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp root");
    let units = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&units).expect("unit dir");
    let copied = Command::new("cp")
        .arg("-r")
        .arg("/usr/lib/systemd/system")
        .arg(&units)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "copy /usr/lib/systemd/system");
    let exec = root.path().join(exec_path.trim_start_matches('/'));
    std::fs::create_dir_all(exec.parent().expect("parent")).expect("bin dir");
    std::fs::copy(binary, &exec).expect("copy the binary");
    let shell = root.path().join("bin/sh");
    std::fs::create_dir_all(shell.parent().expect("parent")).expect("bin dir");
    std::fs::copy("/bin/sh", &shell).expect("copy /bin/sh");
    std::fs::create_dir_all(root.path().join("etc/systemd/system")).expect("etc dir");
    root
}

/// A scrape of `exporter` once the kernel log's follower is up (it is once it has read to
/// the end of the ring buffer), in which every one of `collectors` succeeded; panics with
/// the exporter's log otherwise.
pub fn scrape_with_every_source(exporter: &Exporter, collectors: &[&str]) -> String {
    let body = eventually(Duration::from_secs(20), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the kernel log never came up:\n{}", exporter.log()));
    for collector in collectors {
        assert_eq!(
            sample(
                &body,
                "oomwatch_collector_success",
                &[("collector", collector)]
            ),
            Some(1.0),
            "collector {collector}:\n{}",
            exporter.log()
        );
    }
    body
}
