//! Live tests of exit reasons on the real kernel: real processes in a configured group end
//! with code 0, code 3, SIGSEGV, SIGTERM, SIGKILL and a real OOM kill in a scratch memory
//! cgroup, and each lands in its reason exactly once, in the metric and in the event log;
//! a churn of thousands of short-lived processes per second is counted or its losses are,
//! while scrapes keep answering; and in a pid namespace of its own (where the kernel
//! ignores its subscription) the exporter says so, infers exits from scans as `unknown`,
//! and still names an OOM kill from the kernel log.
//! Needs root and a writable memory cgroup controller (the scratch cgroup).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, named_program, require, sample, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

/// The OOM tests share the kernel's log and memory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
const LIMIT: u64 = 64 << 20;
const REASONS: [&str; 8] = [
    "oom_killed",
    "killed",
    "crashed",
    "terminated",
    "other_signal",
    "exited_ok",
    "exited_error",
    "unknown",
];

fn preconditions() {
    require(rustix::process::geteuid().is_root(), "running as root");
}

fn exits(body: &str, group: &str, reason: &str) -> f64 {
    sample(
        body,
        "oomwatch_group_exits_total",
        &[("group", group), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn lost(body: &str) -> f64 {
    ["dropped", "unnamed", "overflow"]
        .iter()
        .map(|cause| {
            sample(body, "oomwatch_exit_events_lost_total", &[("cause", cause)]).unwrap_or(0.0)
        })
        .sum()
}

/// An exporter whose config names one group by a comm regex.
fn start(dir: &Path, group: &str, comm_regex: &str, wrapper: &[&str]) -> Exporter {
    let config = dir.join("oomwatch.yml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: {group}\n    comm: '{comm_regex}'\n"),
    )
    .expect("config");
    let state = dir.join("state");
    let args = [
        "--config.file",
        config.to_str().expect("utf-8"),
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--restarts.min-age",
        "1s",
    ];
    Exporter::start_via(wrapper, &args)
}

/// A scrape once the kernel log has caught up and, when `events` is set, process events
/// are being received.
fn scrape_when_ready(exporter: &Exporter, events: bool) -> String {
    eventually(Duration::from_secs(20), || {
        let body = exporter.scrape();
        let kmsg = sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0);
        let exits = sample(&body, "oomwatch_exit_events_up", &[]) == Some(1.0);
        (kmsg && (exits || !events)).then_some(body)
    })
    .unwrap_or_else(|| panic!("not ready within 20 s:\n{}", exporter.log()))
}

/// The event log's events of one type (it also holds OOM kills, restarts and reboots).
fn event_log(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("state/events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .filter(|event| event["type"] == kind)
        .collect()
}

/// Runs `sh -c script` under the program name `program` and returns its wait status.
fn run_shell(program: &Path, script: &str) -> std::process::ExitStatus {
    Command::new(program)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .status()
        .expect("the shell runs")
}

fn oom_kill(hog: &Path, cgroup_name: &str, args: &[&str]) {
    let cgroup = ScratchCgroup::create(cgroup_name, LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let mut child = cgroup.spawn(hog, args).expect("hog starts");
    let status = child.wait().expect("hog ends");
    assert_eq!(status.signal(), Some(9), "the kernel killed the hog");
}

#[test]
fn each_way_of_ending_lands_in_its_reason_exactly_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let shell = named_program(dir.path(), "/bin/sh", "oomw-exit");
    let hog = named_program(dir.path(), "/usr/bin/tail", "oomw-exit-hog");
    let test_started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let exporter = start(dir.path(), "exitcase", "^oomw-exit", &[]);
    let before = scrape_when_ready(&exporter, true);
    for reason in REASONS {
        assert_eq!(
            sample(
                &before,
                "oomwatch_group_exits_total",
                &[("group", "exitcase"), ("reason", reason)]
            ),
            Some(0.0),
            "a configured group shows every reason from 0"
        );
    }

    // Each case, and what the kernel must report to the shell's parent.
    // Each lives 50 ms, as a service that fails at start still does: a process gone
    // within microseconds of its exec cannot be named (the churn test counts those).
    assert_eq!(run_shell(&shell, "sleep 0.05; exit 0").code(), Some(0));
    assert_eq!(run_shell(&shell, "sleep 0.05; exit 3").code(), Some(3));
    assert_eq!(
        run_shell(&shell, "ulimit -c 0; sleep 0.05; kill -SEGV $$").signal(),
        Some(11)
    );
    assert_eq!(
        run_shell(&shell, "sleep 0.05; kill -TERM $$").signal(),
        Some(15)
    );
    assert_eq!(
        run_shell(&shell, "sleep 0.05; kill -KILL $$").signal(),
        Some(9)
    );
    oom_kill(
        &hog,
        &format!("oomwatch-exits-{}", std::process::id()),
        &["/dev/zero"],
    );

    let want = [
        ("oom_killed", 1.0),
        ("killed", 1.0),
        ("crashed", 1.0),
        ("terminated", 1.0),
        ("other_signal", 0.0),
        ("exited_ok", 1.0),
        ("exited_error", 1.0),
        ("unknown", 0.0),
    ];
    let settled = |body: &str| {
        want.iter()
            .all(|(reason, n)| exits(body, "exitcase", reason) == *n)
    };
    let body = eventually(Duration::from_secs(15), || {
        let body = exporter.scrape();
        settled(&body).then_some(body)
    });
    let body = body.unwrap_or_else(|| {
        let last = exporter.scrape();
        let seen: Vec<_> = REASONS
            .iter()
            .map(|r| (*r, exits(&last, "exitcase", r)))
            .collect();
        panic!("reasons not settled: {seen:?}\n{}", exporter.log())
    });
    // `unnamed` counts any process on the host that lived too briefly; the kernel dropped
    // nothing, and the queue held everything.
    for cause in ["dropped", "overflow"] {
        let count = |b: &str| sample(b, "oomwatch_exit_events_lost_total", &[("cause", cause)]);
        assert_eq!(count(&body), count(&before), "{cause}");
    }
    // Later scans count nothing twice (a held SIGKILL, a vanished instance).
    std::thread::sleep(Duration::from_secs(4));
    exporter.scrape();
    let again = exporter.scrape();
    assert!(settled(&again), "counted exactly once:\n{again}");

    let mut logged: Vec<_> = event_log(dir.path(), "exit")
        .into_iter()
        .filter(|e| e["group"] == "exitcase")
        .collect();
    // The ring buffer still holds earlier runs' kills of this group: match by pid.
    let victim = logged
        .iter()
        .find(|e| e["reason"] == "oom_killed")
        .map(|e| e["pid"].clone())
        .expect("the OOM-killed exit");
    // The replay at start logs this boot's earlier kills too, and a busy host reuses pids:
    // only this test's kills count.
    let kills: Vec<_> = event_log(dir.path(), "oom_kill")
        .into_iter()
        .filter(|e| e["time"].as_f64().is_some_and(|t| t >= test_started - 1.0))
        .collect();
    assert_eq!(
        kills.iter().filter(|e| e["pid"] == victim).count(),
        1,
        "the OOM kill of pid {victim} is logged once beside its exit"
    );
    // A SIGKILL waits for the kernel log before it is written: order by time.
    logged.sort_by(|a, b| {
        a["time"]
            .as_f64()
            .partial_cmp(&b["time"].as_f64())
            .expect("times")
    });
    let summary: Vec<(String, String)> = logged
        .iter()
        .map(|e| {
            let detail = if let Some(code) = e["code"].as_u64() {
                format!("code {code}")
            } else {
                e["signal"].as_str().unwrap_or("").to_owned()
            };
            (e["reason"].as_str().unwrap_or("").to_owned(), detail)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("exited_ok", "code 0"),
        ("exited_error", "code 3"),
        ("crashed", "SIGSEGV"),
        ("terminated", "SIGTERM"),
        ("killed", "SIGKILL"),
        ("oom_killed", "SIGKILL"),
    ]
    .iter()
    .map(|(r, d)| (r.to_string(), d.to_string()))
    .collect();
    assert_eq!(summary, expected, "the event log, in order");
    assert!(logged
        .iter()
        .all(|e| e["pid"].as_u64().is_some() && e["time"].as_f64().is_some()));
    assert_eq!(logged[5]["comm"], "oomw-exit-hog");
}

#[test]
fn a_churn_of_short_lived_processes_is_counted_or_its_losses_are() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let program: PathBuf = named_program(dir.path(), "/bin/true", "oomw-churn");
    let exporter = Arc::new(start(dir.path(), "churn", "^oomw-churn$", &[]));
    let before = scrape_when_ready(&exporter, true);
    let received_before =
        sample(&before, "oomwatch_exit_events_received_total", &[]).unwrap_or(0.0);

    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = {
        let (exporter, stop, scrapes) = (exporter.clone(), stop.clone(), scrapes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exporter.scrape(); // panics unless 200
                scrapes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let started = Instant::now();
    let spawned = Arc::new(AtomicU64::new(0));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let (program, spawned) = (program.clone(), spawned.clone());
            std::thread::spawn(move || {
                while started.elapsed() < Duration::from_secs(3) {
                    let status = Command::new(&program).status().expect("spawn");
                    assert!(status.success());
                    spawned.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for spawner in spawners {
        spawner.join().expect("spawner");
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    scraper
        .join()
        .expect("every scrape during the churn answered 200");
    let n = spawned.load(Ordering::Relaxed) as f64;
    assert!(
        n / elapsed > 500.0,
        "the churn is real: {n} in {elapsed:.1} s"
    );

    let lost_before = lost(&before);
    let accounted = |body: &str| {
        exits(body, "churn", "exited_ok") + exits(body, "churn", "unknown") + lost(body)
            - lost_before
    };
    let body = eventually(Duration::from_secs(20), || {
        let body = exporter.scrape();
        (accounted(&body) >= n).then_some(body)
    })
    .unwrap_or_else(|| {
        let last = exporter.scrape();
        panic!(
            "{n} processes, {} accounted (exits and losses):\n{last}",
            accounted(&last)
        )
    });
    let ok = exits(&body, "churn", "exited_ok");
    let unknown = exits(&body, "churn", "unknown");
    assert!(
        ok + unknown <= n,
        "never more exits than processes: {ok} + {unknown} > {n}"
    );
    for reason in [
        "killed",
        "crashed",
        "terminated",
        "other_signal",
        "exited_error",
        "oom_killed",
    ] {
        assert_eq!(exits(&body, "churn", reason), 0.0, "{reason}");
    }
    let received =
        sample(&body, "oomwatch_exit_events_received_total", &[]).unwrap_or(0.0) - received_before;
    eprintln!(
        "churn: {n} processes in {elapsed:.1} s ({:.0}/s), {} scrapes; exited_ok {ok}, unknown {unknown}, \
lost {} (dropped {}, unnamed {}, overflow {}); {received} events ({:.0}/s)",
        n / elapsed,
        scrapes.load(Ordering::Relaxed),
        lost(&body) - lost_before,
        sample(&body, "oomwatch_exit_events_lost_total", &[("cause", "dropped")]).unwrap_or(0.0),
        sample(&body, "oomwatch_exit_events_lost_total", &[("cause", "unnamed")]).unwrap_or(0.0),
        sample(&body, "oomwatch_exit_events_lost_total", &[("cause", "overflow")]).unwrap_or(0.0),
        received / elapsed,
    );
}

#[test]
fn without_the_connector_exits_are_inferred_and_an_oom_kill_is_still_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    require(
        Path::new("/usr/bin/unshare").exists(),
        "unshare (util-linux) for a pid namespace of its own",
    );
    let dir = tempfile::tempdir().expect("temp");
    let sleeper = named_program(dir.path(), "/bin/sleep", "oomw-infer");
    let shell = named_program(dir.path(), "/bin/sh", "oomw-infer-hog");
    let memory = named_program(dir.path(), "/usr/bin/tail", "oomw-infer-mem");
    let exporter = start(
        dir.path(),
        "infer",
        "^oomw-infer",
        &["unshare", "--pid", "--fork", "--kill-child"],
    );
    let before = scrape_when_ready(&exporter, false);
    assert_eq!(sample(&before, "oomwatch_exit_events_up", &[]), Some(0.0));
    assert_eq!(
        sample(
            &before,
            "oomwatch_collector_success",
            &[("collector", "exits")]
        ),
        Some(0.0)
    );
    let said = eventually(Duration::from_secs(5), || {
        exporter.log().contains("pid namespaces").then_some(())
    });
    assert!(
        said.is_some(),
        "one log line says what is missing:\n{}",
        exporter.log()
    );

    // A SIGKILLed instance a scan saw: gone with no exit event, so `unknown`.
    let mut victim = Command::new(&sleeper).arg("600").spawn().expect("sleeper");
    std::thread::sleep(Duration::from_millis(1500));
    let alive = exporter.scrape();
    assert_eq!(
        sample(&alive, "oomwatch_group_processes", &[("group", "infer")]),
        Some(1.0)
    );
    victim.kill().expect("kill");
    victim.wait().expect("reap");
    // An instance a scan saw, OOM-killed later: the kernel log names it.
    let script = format!("sleep 3; exec {} /dev/zero", memory.display());
    let cgroup_name = format!("oomwatch-infer-{}", std::process::id());
    let cgroup = ScratchCgroup::create(&cgroup_name, LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let mut hog = cgroup.spawn(&shell, &["-c", &script]).expect("hog starts");
    std::thread::sleep(Duration::from_millis(1500));
    let hog_alive = exporter.scrape();
    assert_eq!(
        sample(
            &hog_alive,
            "oomwatch_group_processes",
            &[("group", "infer")]
        ),
        Some(1.0),
        "the hog is seen alive"
    );
    assert_eq!(hog.wait().expect("hog ends").signal(), Some(9));

    let body = eventually(Duration::from_secs(15), || {
        let body = exporter.scrape();
        (exits(&body, "infer", "unknown") == 1.0 && exits(&body, "infer", "oom_killed") == 1.0)
            .then_some(body)
    });
    let body =
        body.unwrap_or_else(|| panic!("not inferred:\n{}\n{}", exporter.scrape(), exporter.log()));
    for reason in [
        "killed",
        "crashed",
        "terminated",
        "exited_ok",
        "exited_error",
    ] {
        assert_eq!(exits(&body, "infer", reason), 0.0, "{reason}");
    }
    let logged: Vec<_> = event_log(dir.path(), "exit")
        .into_iter()
        .filter(|e| e["group"] == "infer")
        .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(logged, ["unknown", "oom_killed"]);
}
