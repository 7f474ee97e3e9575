//! The event log and the state directory under attack and under a busy host, on the real
//! kernel with the real binary (issue 18):
//!
//! - an unprivileged churn loop (`while :; do sleep 100 & kill -9 $!; done` as nobody) for
//!   60 s never evicts a real OOM kill from the API, the page or `oomwatch why`, and the
//!   churn is one burst record a minute, not thousands of lines;
//! - a kill made while the state directory's disk (a 1 MiB tmpfs) is full is served from
//!   memory at once, written to the log when space returns, and, when the exporter is
//!   SIGKILLed before that, written by the next run (re-read from the kernel log), once;
//! - a state directory others can write is refused naming `--state.dir`; with the opt-out,
//!   links planted by nobody under the state files' names are never followed;
//! - 20 concurrent API requests and page views on a 100 MB log keep the exporter under
//!   64 MiB (its peak RSS, VmHWM).
//!
//! Real OOM kills need root and a writable memory cgroup; without them these tests fail,
//! never skip. They share the kernel's counters, so they run one at a time.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{eventually, require, sample, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

static SERIAL: Mutex<()> = Mutex::new(());

const LIMIT: u64 = 64 * 1024 * 1024;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require(rustix::process::geteuid().is_root(), "running as root");
    guard
}

/// A scrape once the exporter has replayed the ring buffer.
fn caught_up(exporter: &Exporter) -> String {
    eventually(Duration::from_secs(15), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the kernel log was not read:\n{}", exporter.log()))
}

/// A real OOM kill of a `tail /dev/zero` named `comm` in a scratch memory cgroup; returns
/// its pid.
fn oom_kill(dir: &Path, comm: &str) -> u32 {
    let cgroup = ScratchCgroup::create(&format!("oomwatch-log-{comm}"), LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let program = common::named_program(dir, "/usr/bin/tail", comm);
    let mut child = cgroup.spawn(&program, &["/dev/zero"]).expect("hog starts");
    let pid = child.id();
    let status = child.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed the hog"
    );
    pid
}

fn api_kills(exporter: &Exporter) -> String {
    let response = exporter.request("GET", "/api/v1/events?type=oom_kill&limit=100");
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

fn why(state: &Path, target: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(["why", target, "--state.dir", state.to_str().expect("utf-8")])
        .output()
        .expect("oomwatch why runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A shell loop run as nobody in a process group of its own, killed with it on drop.
struct AsNobody(Child);

impl AsNobody {
    fn start(script: &str) -> Self {
        let child = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                script,
            ])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv runs");
        Self(child)
    }
}

impl Drop for AsNobody {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_raw(self.0.id() as i32).expect("pid");
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

/// OOM-kills a process named `<prefix><test pid>` in a scratch cgroup under `dir` and
/// waits until the API serves the kill; its comm and pid.
fn kill_and_see_it_served(exporter: &Exporter, dir: &Path, prefix: &str) -> (String, u32) {
    let comm = format!("{prefix}{}", std::process::id() % 100_000);
    let pid = oom_kill(dir, &comm);
    eventually(Duration::from_secs(10), || {
        api_kills(exporter)
            .contains(&kill_key(pid, &comm))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the kill of {comm} is not in the API:\n{}", exporter.log()));
    (comm, pid)
}

#[test]
fn a_minute_of_unprivileged_churn_never_evicts_an_oom_kill() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let exporter = Exporter::start(&["--state.dir", state.to_str().expect("utf-8")]);
    caught_up(&exporter);
    let (comm, pid) = kill_and_see_it_served(&exporter, dir.path(), "churnhog");

    // The churn: hundreds of SIGKILLed exits a second, every one an abnormal end of a
    // program of its own (each child is killed once it has exec'd `sleep`; killed before
    // its exec it would be a forked shell dying inside the shell's group, no instance).
    let churn = AsNobody::start(
        "while :; do sleep 100 & p=$!; c=; until [ \"$c\" = sleep ]; do read c < /proc/$p/comm; done; kill -9 $p; done",
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        exporter.scrape();
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(churn);
    let body = exporter.scrape();
    let killed = sample(
        &body,
        "oomwatch_group_exits_total",
        &[("group", "sleep"), ("reason", "killed")],
    )
    .expect("the churn's exits are counted");
    assert!(killed > 3000.0, "{killed} exits in 60 s");

    assert!(
        api_kills(&exporter).contains(&kill_key(pid, &comm)),
        "the kill left the API"
    );
    let page = exporter.request("GET", "/");
    assert!(page.body.contains(&comm), "the kill left the page");
    assert!(
        why(&state, &comm).contains("OOM kill"),
        "the kill left why:\n{}",
        why(&state, &comm)
    );
    // The churn is counted in bursts, not logged line by line.
    let log = std::fs::read_to_string(state.join("events.jsonl")).expect("log");
    let sleep_lines = log
        .lines()
        .filter(|l| l.contains(r#""group":"sleep""#))
        .count();
    let bursts: u64 = log
        .lines()
        .filter(|l| l.contains(r#""type":"burst""#) && l.contains(r#""of":"exit""#))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["count"].as_u64())
        .sum();
    assert!(sleep_lines < 200, "{sleep_lines} lines for the churn");
    assert!(bursts > 2000, "{bursts} exits counted in burst records");
    assert!(exporter.stop().success());
}

/// A tmpfs of 1 MiB, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        require(status.success(), "mounting a tmpfs");
        Self(at.to_path_buf())
    }

    /// Fills the disk with a file; returns it. The log is first padded with empty lines
    /// (which readers skip) to a page boundary: an append into the slack of its last page
    /// would need no new space, and the full disk would not be full for it.
    fn fill(&self, log: &Path) -> PathBuf {
        let size = std::fs::metadata(log).map_or(0, |m| m.len());
        let pad = (4096 - size % 4096) % 4096;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .expect("the log exists");
        file.write_all(&vec![b'\n'; pad as usize]).expect("pad");
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Lines of this run's kill of `pid` (named `comm`) in the log: the replay at start logs
/// the boot's earlier kills too, and pids are reused.
fn logged_kill(state: &Path, pid: u32, comm: &str) -> usize {
    std::fs::read_to_string(state.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""type":"oom_kill""#) && l.contains(&kill_key(pid, comm)))
        .count()
}

/// How an OOM kill of `pid` named `comm` reads in the log and the API.
fn kill_key(pid: u32, comm: &str) -> String {
    format!("\"pid\":{pid},\"comm\":\"{comm}\"")
}

#[test]
fn a_kill_during_a_full_disk_is_logged_when_space_returns_and_after_a_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp");
    let disk = SmallDisk::mount(&dir.path().join("disk"));
    let state = disk.0.join("state");
    let args = [
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--no-collector.exits",
    ];
    let exporter = Exporter::start(&args);
    caught_up(&exporter);

    // Full: the kill is counted and served from memory, not yet written.
    let filler = disk.fill(&state.join("events.jsonl"));
    let comm = format!("diskhog{}", std::process::id() % 100_000);
    let first = oom_kill(dir.path(), &comm);
    eventually(Duration::from_secs(10), || {
        api_kills(&exporter)
            .contains(&kill_key(first, &comm))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the pending kill is not served:\n{}", exporter.log()));
    assert_eq!(
        logged_kill(&state, first, &comm),
        0,
        "written on a full disk?"
    );
    let body = exporter.scrape();
    let errors = sample(&body, "oomwatch_state_write_errors_total", &[]);
    assert!(errors.unwrap_or(0.0) > 0.0, "the failed writes are counted");
    let pending = sample(&body, "oomwatch_events_pending", &[]);
    assert!(pending.unwrap_or(0.0) >= 1.0, "the kill waits: {pending:?}");

    // Space returns: the next scrape writes it.
    std::fs::remove_file(&filler).expect("free space");
    eventually(Duration::from_secs(10), || {
        exporter.scrape();
        (logged_kill(&state, first, &comm) == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the kill was not written:\n{}", exporter.log()));
    let body = exporter.scrape();
    assert_eq!(sample(&body, "oomwatch_events_pending", &[]), Some(0.0));
    assert_eq!(
        sample(&body, "oomwatch_events_dropped_total", &[]),
        Some(0.0)
    );

    // Full again, a kill, and the exporter dies before space returns.
    let filler = disk.fill(&state.join("events.jsonl"));
    let second = oom_kill(dir.path(), &comm);
    eventually(Duration::from_secs(10), || {
        api_kills(&exporter)
            .contains(&kill_key(second, &comm))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the second kill is not served:\n{}", exporter.log()));
    exporter.kill();
    assert_eq!(logged_kill(&state, second, &comm), 0);
    std::fs::remove_file(&filler).expect("free space");
    let exporter = Exporter::start(&args);
    caught_up(&exporter);
    eventually(Duration::from_secs(10), || {
        exporter.scrape();
        (logged_kill(&state, second, &comm) == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the restart did not log the kill:\n{}", exporter.log()));
    assert_eq!(
        logged_kill(&state, first, &comm),
        1,
        "logged once, not again"
    );
    let body = exporter.scrape();
    assert_eq!(
        sample(
            &body,
            "oomwatch_oom_kills_total",
            &[("comm", comm.as_str()), ("constraint", "memcg")]
        ),
        Some(2.0),
        "both kills counted once"
    );
    assert!(exporter.stop().success());
}

fn as_nobody(args: &[&str]) {
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(args)
        .status()
        .expect("setpriv runs");
    assert!(status.success(), "as nobody: {args:?}");
}

#[test]
fn a_state_dir_others_can_write_is_refused_and_planted_links_are_never_followed() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    // Root's files the attacker wants written.
    let victims: Vec<PathBuf> = ["shadow", "passwd", "cron"]
        .iter()
        .map(|name| {
            let path = dir.path().join(name);
            std::fs::write(&path, "precious\n").expect("victim");
            path
        })
        .collect();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod 777");

    // Refused, naming the flag, before anything is written.
    let output = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--state.dir",
            state.to_str().expect("utf-8"),
        ])
        .output()
        .expect("oomwatch runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--state.dir") && stderr.contains("writable by group or others"),
        "{stderr}"
    );
    assert!(stderr.contains("--state.dir.allow-insecure"), "{stderr}");
    assert_eq!(std::fs::read_dir(&state).expect("list").count(), 0);

    // The attack: nobody plants links under every name oomwatch writes.
    let plant = |target: &Path, name: &str| {
        let link = state.join(name);
        as_nobody(&[
            "ln",
            "-s",
            target.to_str().expect("utf-8"),
            link.to_str().expect("utf-8"),
        ]);
    };
    plant(&victims[0], "events.jsonl");
    plant(&victims[1], "state.json");
    plant(&victims[2], ".state.json.tmp");
    plant(&victims[2], "events.trimmed.json");

    // Opted out: oomwatch runs, and writes nothing through the links.
    let exporter = Exporter::start(&[
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--state.dir.allow-insecure",
    ]);
    caught_up(&exporter);
    let _ = kill_and_see_it_served(&exporter, dir.path(), "linkhog");
    exporter.scrape();
    let log = exporter.log();
    assert!(exporter.stop().success());
    for victim in &victims {
        assert_eq!(
            std::fs::read_to_string(victim).expect("victim"),
            "precious\n",
            "{} was written through a link; log:\n{log}",
            victim.display()
        );
    }
    assert!(
        log.contains("a symbolic link; not used"),
        "the refusal is said:\n{log}"
    );
    // A state file that is not oomwatch's own is neither followed nor overwritten.
    let kept = std::fs::symlink_metadata(state.join("state.json")).expect("state.json");
    assert!(kept.file_type().is_symlink());
}

/// VmHWM (peak RSS) of a process, bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// A log of `bytes` of ordinary events: exits of many groups, with a kill now and then.
fn write_large_log(path: &Path, bytes: usize) -> usize {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("log"));
    let (mut written, mut lines) = (0, 0);
    let start = 1_790_000_000.0;
    while written < bytes {
        let time = start + lines as f64;
        let line = if lines % 1000 == 0 {
            format!(
                r#"{{"time":{time},"type":"oom_kill","group":"java-{g}","pid":{lines},"comm":"java","constraint":"memcg","memcg":"/kubepods/burstable/pod{g}/c","anon_rss_bytes":1073741824,"seq":{lines}}}"#,
                g = lines % 97
            )
        } else {
            format!(
                r#"{{"time":{time},"type":"exit","group":"worker-{g}.service","pid":{lines},"comm":"worker","reason":"killed","signal":"SIGKILL"}}"#,
                g = lines % 89
            )
        };
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
        written += line.len() + 1;
        lines += 1;
    }
    out.flush().expect("flush");
    lines
}

#[test]
fn twenty_concurrent_requests_on_a_100_mb_log_stay_under_64_mib() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let lines = write_large_log(&state.join("events.jsonl"), 100 << 20);
    // A budget above what the file holds: the file stays 100 MB for the test.
    let exporter = Exporter::start(&[
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--events.max",
        "10000000",
        "--web.max-requests",
        "100",
    ]);
    exporter.scrape();
    let paths = [
        "/api/v1/events?limit=1",
        "/api/v1/events?type=oom_kill&limit=5",
        "/api/v1/events",
        "/",
    ];
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let exporter = &exporter;
                scope.spawn(move || exporter.request("GET", paths[i % paths.len()]))
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            let response = handle.join().expect("request");
            assert_eq!(response.status, 200, "{}: {}", paths[i % 4], response.body);
            if paths[i % 4] == "/api/v1/events?limit=1" {
                let body: serde_json::Value = serde_json::from_str(&response.body).expect("json");
                // The file's lines, and what the exporter logged since it started.
                let matched = body["matched"].as_u64().expect("matched");
                assert!(
                    matched >= lines as u64 && matched < lines as u64 + 1000,
                    "{matched}"
                );
                assert_eq!(body["events"].as_array().map(Vec::len), Some(1));
            }
        }
    });
    let peak = peak_rss(exporter.pid());
    eprintln!(
        "20 concurrent requests on a {} MiB log ({lines} lines): peak RSS {:.1} MiB, {:.1} s",
        100,
        peak as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    assert!(peak < 64 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(exporter.stop().success());
}
