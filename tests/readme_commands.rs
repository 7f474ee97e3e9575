//! The README's first screen, held to what it promises.
//!
//! - `rust-version` in Cargo.toml is the true minimum of the locked tree: the highest
//!   rust-version any locked package of the normal and build dependency graph declares
//!   (from `cargo metadata --locked --offline`, for this host's platform), and the README
//!   and its Run it command name that version.
//! - Test it lists every package the full run installs (scripts/test.sh's own list).
//! - Run it, its command text read from README.md, works as root where there is no sudo:
//!   run by bash in a fresh clone of this working tree (committed, changed and new files),
//!   it leaves a serving exporter; the README's curl line finds the metrics; it is stopped
//!   by the PID the command wrote.
//! - Test it `--quick` passes as a user who is not root (`nobody`, in a mount namespace
//!   that shows it its own HOME, the machine's cargo and rustup homes read-only and a
//!   target directory of its own), on another fresh clone.
//!
//! The last two build the whole crate again (a release build, then clippy and the test
//! builds), so their target directories persist in the test-tools cache (`$OOMWATCH_TOOLS`,
//! else `~/.cache/oomwatch-test-tools`, under `readme/`) and rebuild only this crate after
//! the first run; a lock there keeps two runs from building at once. scripts/test.sh runs
//! them in a step of their own (`readme_` tests, one at a time, timings printed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::require;

/// A Rust version as `(major, minor, patch)`; "1.85" is 1.85.0.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.trim().split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("a version: {text:?}"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

fn shown((major, minor, patch): (u64, u64, u64)) -> String {
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

#[test]
fn rust_version_is_the_true_minimum_of_the_locked_tree() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(cargo())
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked --offline:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let packages: std::collections::HashMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p))
        .collect();
    let nodes: std::collections::HashMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let root = metadata["resolve"]["root"].as_str().expect("root");

    // Walk what a build of the binary compiles: normal and build edges, never dev ones.
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let built = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if built {
                stack.push(dep["pkg"].as_str().expect("pkg"));
            }
        }
    }
    let declared = |id: &str| packages[id]["rust_version"].as_str().map(version);
    let own = declared(root).expect("Cargo.toml declares rust-version");
    let mut needs: Vec<((u64, u64, u64), String)> = seen
        .iter()
        .filter(|id| **id != root)
        .filter_map(|id| {
            let p = packages[id];
            let name = p["name"].as_str().unwrap_or_default();
            let number = p["version"].as_str().unwrap_or_default();
            declared(id).map(|v| (v, format!("{name} {number}")))
        })
        .collect();
    needs.sort();
    let (floor, _) = needs.last().cloned().expect("dependencies");
    let at_floor: Vec<&str> = needs
        .iter()
        .filter(|(v, _)| *v == floor)
        .map(|(_, p)| p.as_str())
        .collect();
    println!(
        "rust-version {} declared; {} locked packages built, the highest declared is {} ({})",
        shown(own),
        seen.len() - 1,
        shown(floor),
        at_floor.join(", ")
    );
    assert!(
        own >= floor,
        "Cargo.toml claims rust-version {} but locked dependencies need {}: {}",
        shown(own),
        shown(floor),
        at_floor.join(", ")
    );
    assert_eq!(
        own,
        floor,
        "Cargo.toml claims rust-version {} but the locked tree needs only {} ({}): lower it \
         to the true minimum (clippy's incompatible_msrv checks our own code against it)",
        shown(own),
        shown(floor),
        at_floor.join(", ")
    );
    let readme = std::fs::read_to_string(manifest.join("README.md")).expect("README");
    assert!(
        readme.contains(&format!("Rust {}", shown(own))),
        "the README names the Rust version it needs (Rust {})",
        shown(own)
    );
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README")
}

/// The paragraph that starts with `marker` (up to its code block).
fn paragraph<'a>(readme: &'a str, marker: &str) -> &'a str {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in the README"));
    let rest = &readme[start..];
    &rest[..rest.find("```").unwrap_or(rest.len())]
}

/// The first ```sh block after `marker`, its lines joined as a shell reads them.
fn command_after(readme: &str, marker: &str) -> String {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in the README"));
    let block = readme[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("a sh block after {marker}"));
    block.trim().to_owned()
}

/// The backticked spans of `text`.
fn spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn readme_names_the_rust_version_in_its_run_it_command() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"')
        .to_owned();
    let command = command_after(&readme(), "**Run it**");
    assert!(
        command.contains(&format!("printf '{declared}\\n")),
        "the Run it command checks cargo against {declared}: {command}"
    );
}

#[test]
fn the_readme_lists_every_package_the_full_run_installs() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test.sh"))
            .expect("scripts/test.sh");
    let list = script
        .split("packages=(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("packages=( ... ) in scripts/test.sh");
    let readme = readme();
    let test_it = paragraph(&readme, "**Test it**");
    let named: Vec<&str> = test_it
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .collect();
    for package in list.split_whitespace().chain(["nodejs", "npm"]) {
        assert!(
            named.contains(&package),
            "the README's Test it does not say that the full run installs {package}"
        );
    }
    assert!(test_it.contains("disposable machine or VM"), "{test_it}");
}

/// Where the nested builds keep their target directories between runs.
fn cache() -> PathBuf {
    let tools = std::env::var_os("OOMWATCH_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/oomwatch-test-tools"))
        })
        .expect("OOMWATCH_TOOLS or HOME");
    let dir = tools.join("readme");
    std::fs::create_dir_all(&dir).expect("cache dir");
    dir
}

/// An exclusive lock on the cache, held while alive: one nested build at a time.
struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    fn take() -> Self {
        let file = std::fs::File::create(cache().join("lock")).expect("lock file");
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        Self { _file: file }
    }
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh clone of this working tree at `dest`: its commits, then its uncommitted changes
/// and new files, so that what is tested is what is here.
fn clone_working_tree(dest: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    if dest.exists() {
        std::fs::remove_dir_all(dest).expect("remove the old clone");
    }
    run_ok(
        Command::new("git")
            .arg("clone")
            .arg("--quiet")
            .arg(source)
            .arg(dest),
    );
    let diff = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(source)
            .args(["diff", "HEAD", "--binary"]),
    );
    if !diff.is_empty() {
        let patch = dest.join(".git/working-tree.patch");
        std::fs::write(&patch, diff).expect("patch");
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(dest)
                .arg("apply")
                .arg(&patch),
        );
    }
    let untracked = run_ok(Command::new("git").arg("-C").arg(source).args([
        "ls-files",
        "--others",
        "--exclude-standard",
    ]));
    for file in untracked.lines() {
        let to = dest.join(file);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(source.join(file), &to).expect("copy an untracked file");
    }
}

/// Runs `bash -c command` in `dir` with its output to `log`, within `deadline`; returns
/// whether it succeeded and how long it took.
fn bash(command: &mut Command, log: &Path, deadline: Duration) -> (bool, Duration) {
    let file = std::fs::File::create(log).expect("log");
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("bash runs");
    let status = common::wait_with_deadline(&mut child, deadline);
    (status.success(), started.elapsed())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The exporter the Run it command left running, stopped (and its files removed) on drop.
struct Started {
    pid: Option<i32>,
    target: PathBuf,
}

impl Started {
    fn alive(&self) -> bool {
        self.pid
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// SIGTERM by PID, then wait for it to go; true when it went within 20 s.
    fn stop(&mut self) -> bool {
        let Some(pid) = self.pid.take() else {
            return true;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let gone = common::eventually(Duration::from_secs(20), || {
            (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
        gone.is_some()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(self.target.join("state"));
        let _ = std::fs::remove_file(self.target.join("oomwatch.pid"));
    }
}

#[test]
fn readme_run_it_serves_as_root_without_sudo() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root: Run it is tried as root on a host without sudo",
    );
    // Another test's VM may forward :9721 for a while; wait for it, then refuse.
    let free = || std::net::TcpListener::bind("0.0.0.0:9721").is_ok();
    if !free() {
        println!("port 9721 is in use: waiting up to 10 minutes for it");
    }
    require(
        common::eventually(Duration::from_secs(600), || free().then_some(())).is_some(),
        "port 9721 free on every address: the README's Run it serves on :9721 (`ss -ltnp | grep 9721` names what holds it)",
    );
    let readme = readme();
    let command = command_after(&readme, "**Run it**");
    let then = paragraph(&readme, "Then, in the same shell:");
    let curl = spans(then)
        .into_iter()
        .find(|s| s.starts_with("curl "))
        .expect("a curl line after Run it")
        .to_owned();

    let _lock = CacheLock::take();
    let work = cache().join("run-it");
    let (clone, target) = (work.join("clone"), work.join("target"));
    clone_working_tree(&clone);
    std::fs::create_dir_all(&target).expect("target");
    std::os::unix::fs::symlink(&target, clone.join("target")).expect("link target");
    // A host without sudo: the first `sudo` the command runs fails as it would there.
    let no_sudo = work.join("no-sudo");
    std::fs::create_dir_all(&no_sudo).expect("mkdir");
    std::fs::write(
        no_sudo.join("sudo"),
        "#!/bin/sh\necho 'sudo: command not found' >&2\nexit 127\n",
    )
    .expect("write");
    run_ok(Command::new("chmod").arg("755").arg(no_sudo.join("sudo")));
    let path = format!(
        "{}:{}",
        no_sudo.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let log = work.join("run-it.log");
    let (ok, took) = bash(
        Command::new("bash")
            .arg("-c")
            .arg(&command)
            .current_dir(&clone)
            .env("PATH", &path),
        &log,
        Duration::from_secs(45 * 60),
    );
    let pid = std::fs::read_to_string(target.join("oomwatch.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let mut started = Started {
        pid,
        target: target.clone(),
    };
    println!(
        "README Run it, as root without sudo, in {}: {} in {:.0} s (apt-get update and install, cargo build --release --locked into {})",
        clone.display(),
        if ok { "ok" } else { "FAILED" },
        took.as_secs_f64(),
        target.display()
    );
    println!("{}", tail(&log, 4));
    assert!(ok, "the Run it command failed:\n{}", tail(&log, 40));
    assert!(
        started.alive(),
        "no oomwatch at the PID it wrote ({pid:?}):\n{}",
        tail(&target.join("oomwatch.log"), 20)
    );

    let answer = common::eventually(Duration::from_secs(30), || {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&curl)
            .current_dir(&clone)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("oomwatch_process_oom_score{").then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "the README's curl line found no metrics: {curl}\n{}",
            tail(&target.join("oomwatch.log"), 20)
        )
    });
    println!(
        "$ {curl}   ({} lines)\n{}",
        answer.lines().count(),
        answer.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(started.stop(), "oomwatch did not stop on SIGTERM");
    let server_log = std::fs::read_to_string(target.join("oomwatch.log")).expect("its log");
    assert!(server_log.contains("message=listening"), "{server_log}");
    drop(started);
    let _ = std::fs::remove_dir_all(&clone);
}

#[test]
fn readme_test_it_quick_passes_as_a_non_root_user() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to show nobody a home, the cargo homes and a target dir of its own)",
    );
    let readme = readme();
    let command = command_after(&readme, "**Test it**");
    let quick = spans(paragraph(&readme, "**Test it**"))
        .into_iter()
        .find(|s| s.ends_with("--quick"))
        .expect("the Test it paragraph names the --quick command")
        .to_owned();
    assert_eq!(
        quick,
        format!("{command} --quick"),
        "the quick command is the test command's"
    );

    let _lock = CacheLock::take();
    let work = cache().join("quick");
    let (clone, target, home) = (work.join("clone"), work.join("target"), work.join("home"));
    clone_working_tree(&clone);
    if home.exists() {
        std::fs::remove_dir_all(&home).expect("old home");
    }
    for dir in [&target, &home] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    for dir in [&clone, &target, &home] {
        run_ok(
            Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir),
        );
    }
    let home_of = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(default))
    };
    let (cargo_home, rustup_home) = (
        home_of("CARGO_HOME", ".cargo"),
        home_of("RUSTUP_HOME", ".rustup"),
    );
    // The user's view, at fixed paths under /mnt in a mount namespace of its own (fixed, so
    // that cargo's fingerprints match between runs).
    let script = format!(
        r#"set -eu
mount -t tmpfs -o mode=755 tmpfs /mnt
mkdir /mnt/src /mnt/target /mnt/home /mnt/cargo /mnt/rustup
mount --bind '{clone}' /mnt/src
mount --bind '{target}' /mnt/target
mount --bind '{home}' /mnt/home
mount --bind -o ro '{cargo}' /mnt/cargo
mount --bind -o ro '{rustup}' /mnt/rustup
cd /mnt/src
exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
  env -i HOME=/mnt/home CARGO_HOME=/mnt/cargo RUSTUP_HOME=/mnt/rustup CARGO_TARGET_DIR=/mnt/target \
  PATH=/mnt/cargo/bin:/usr/local/bin:/usr/bin:/bin bash -c "$1""#,
        clone = clone.display(),
        target = target.display(),
        home = home.display(),
        cargo = cargo_home.display(),
        rustup = rustup_home.display(),
    );
    let log = work.join("quick.log");
    let (ok, took) = bash(
        Command::new("unshare").args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            &script,
            "bash",
            &quick,
        ]),
        &log,
        Duration::from_secs(45 * 60),
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let results: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect();
    let passed: usize = results
        .iter()
        .filter_map(|l| {
            l.split("ok. ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    println!(
        "README Test it --quick, as nobody (HOME, CARGO_HOME read-only, CARGO_TARGET_DIR {}): {} in {:.0} s, {} test binaries, {passed} tests passed",
        target.display(),
        if ok { "ok" } else { "FAILED" },
        took.as_secs_f64(),
        results.len()
    );
    for step in text.lines().filter(|l| l.starts_with("== ")) {
        println!("  {step}");
    }
    assert!(ok, "{quick} as nobody failed:\n{}", tail(&log, 60));
    assert!(
        text.contains("== clippy") && !results.is_empty(),
        "{}",
        tail(&log, 30)
    );
    assert!(
        !text.contains("sudo"),
        "--quick asked for sudo:\n{}",
        tail(&log, 30)
    );
    let _ = std::fs::remove_dir_all(&clone);
}
