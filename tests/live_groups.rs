//! Restarts, exits and groups on the real host, under the seeds' watchdog loop (`while
//! true; do pgrep -x NAME || start NAME; sleep 1; done`): a service OOM-killed ~5 s after
//! each start in a scratch memory cgroup counts one restart per kill and one `oom_killed`
//! exit each; an `exit 1` crash loop counts its restarts and `exited_error` exits; a clean
//! loop (`while true; do napper 3; done`) counts no restart and gets no series; 10,000
//! processes ended while the exporter runs are settled with their real reasons; a process
//! in a cgroup under `user@1000.service` named `mysql.service` is never in the system's
//! `mysql.service` group. Needs root and a writable memory cgroup: it fails, never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{eventually, named_program, require, sample, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

/// The tests load the host; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn preconditions() {
    require(rustix::process::geteuid().is_root(), "running as root");
}

/// The exporter with `groups` (name, comm regex) configured and `extra` flags, once it
/// reads process events and the kernel log.
fn start(dir: &Path, groups: &[(&str, &str)], extra: &[&str]) -> Exporter {
    let config = dir.join("oomwatch.yml");
    let mut text = String::from("groups:\n");
    for (name, comm) in groups {
        text.push_str(&format!("  - name: {name}\n    comm: '{comm}'\n"));
    }
    std::fs::write(&config, text).expect("config");
    let state = dir.join("state");
    let mut args = vec![
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args);
    eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_exit_events_up", &[]) == Some(1.0)
            && sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("the exporter did not come up:\n{}", exporter.log()));
    exporter
}

fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(body, name, labels).unwrap_or(0.0)
}

fn exits(body: &str, group: &str, reason: &str) -> f64 {
    value(
        body,
        "oomwatch_group_exits_total",
        &[("group", group), ("reason", reason)],
    )
}

fn restarts(body: &str, group: &str) -> f64 {
    value(body, "oomwatch_group_restarts_total", &[("group", group)])
}

/// The seeds' watchdog: starts `start` whenever no process is named `name`, every second,
/// and appends a line to `starts` for each start.
fn watchdog(dir: &Path, name: &str, start: &str, starts: &Path) -> Child {
    let shell = named_program(dir, "/bin/bash", "oomw-watchdog");
    let script = format!(
        "while true; do\n  if ! pgrep -x {name} >/dev/null; then\n    echo start >> {starts}\n    {start}\n  fi\n  sleep 1\ndone\n",
        starts = starts.display()
    );
    Command::new(shell)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("the watchdog starts")
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Waits until `settled` holds for a scrape, scraping every 500 ms.
fn settled(exporter: &Exporter, timeout: Duration, mut check: impl FnMut(&str) -> bool) -> String {
    eventually(timeout, || {
        let body = exporter.scrape();
        check(&body).then_some(body)
    })
    .unwrap_or_else(|| panic!("not settled:\n{}\n{}", exporter.scrape(), exporter.log()))
}

#[test]
fn a_service_oom_killed_seconds_after_each_start_counts_a_restart_per_kill() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    // Named after this run: the ring buffer still holds earlier runs' kills.
    let name = format!("oomwcms{}", std::process::id() % 100_000);
    let exporter = start(dir.path(), &[("cms", &format!("^{name}$"))], &[]);
    let cgroup = ScratchCgroup::create(&format!("oomwatch-cms-{}", std::process::id()), 64 << 20)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let procs = cgroup_procs(&cgroup);
    // The service: up for ~5 s, then it eats memory until the kernel kills it.
    let cms = named_program(dir.path(), "/usr/bin/python3", &name);
    let code = "import time\ntime.sleep(5)\nb = []\nwhile True: b.append(bytearray(1 << 20))\n";
    let start = format!(
        "(echo $BASHPID > {procs}; exec {cms} -c '{code}') &",
        procs = procs.display(),
        cms = cms.display()
    );
    let starts = dir.path().join("starts");
    let watchdog = watchdog(dir.path(), &name, &start, &starts);
    let kills = 4;
    let deadline = Instant::now() + Duration::from_secs(90);
    while cgroup.oom_kills().unwrap_or(0) < kills {
        assert!(
            Instant::now() < deadline,
            "only {:?} kills in 90 s",
            cgroup.oom_kills()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(watchdog);
    let started = lines(&starts) as f64;
    let body = settled(&exporter, Duration::from_secs(15), |body| {
        exits(body, "cms", "oom_killed") >= kills as f64 && restarts(body, "cms") >= started - 1.0
    });
    println!(
        "watchdog: {started} starts, {kills} OOM kills; oomwatch_group_restarts_total {} , exits oom_killed {}",
        restarts(&body, "cms"),
        exits(&body, "cms", "oom_killed")
    );
    assert_eq!(exits(&body, "cms", "oom_killed"), kills as f64);
    assert_eq!(
        restarts(&body, "cms"),
        started - 1.0,
        "a restart per start after a kill"
    );
    assert_eq!(exits(&body, "cms", "unknown"), 0.0);
    assert_eq!(
        value(
            &body,
            "oomwatch_oom_kills_total",
            &[
                ("group", "cms"),
                ("comm", name.as_str()),
                ("constraint", "memcg")
            ]
        ),
        kills as f64
    );
    // The restart events say what they followed.
    let events = exporter
        .request("GET", "/api/v1/events?type=restart&group=cms")
        .body;
    assert!(events.contains("\"after\":\"oom_killed\""), "{events}");
    // What the operator asks: why did cms vanish? The latest death is an OOM kill of the
    // watchdog's program, and it came back.
    let state = dir.path().join("state");
    let config = dir.path().join("oomwatch.yml");
    let why = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(["why", "cms", "--state.dir"])
        .arg(&state)
        .arg("--config.file")
        .arg(&config)
        .output()
        .expect("oomwatch why runs");
    let answer = String::from_utf8_lossy(&why.stdout);
    println!("oomwatch why cms:\n{answer}");
    assert_eq!(why.status.code(), Some(0), "{answer}");
    assert!(answer.contains("OOM killer"), "{answer}");
    assert!(answer.contains(&name), "{answer}");
    kill_all(&cgroup);
}

#[test]
fn an_exit_1_crash_loop_counts_and_a_clean_loop_does_not() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    // The default --groups.min-age (30 s): a command run again and again never lives it.
    let exporter = start(dir.path(), &[("crasher", "^oomw-crash$")], &[]);
    // A crash loop: the service exits 1 after 2 s, the watchdog starts it again.
    let crash = named_program(dir.path(), "/bin/sh", "oomw-crash");
    let start = format!("{} -c 'sleep 2; exit 1' &", crash.display());
    let starts = dir.path().join("starts");
    let crash_watchdog = watchdog(dir.path(), "oomw-crash", &start, &starts);
    // A clean loop: a command run again and again, exiting 0.
    let napper = named_program(dir.path(), "/usr/bin/sleep", "oomw-napper");
    let loop_shell = named_program(dir.path(), "/bin/bash", "oomw-naploop");
    let clean = Command::new(loop_shell)
        .arg("-c")
        .arg(format!("while true; do {} 3; done", napper.display()))
        .spawn()
        .expect("the clean loop starts");
    std::thread::sleep(Duration::from_secs(16));
    stop(crash_watchdog);
    stop(clean);
    let started = lines(&starts) as f64;
    assert!(started >= 4.0, "{started} starts");
    let body = settled(&exporter, Duration::from_secs(15), |body| {
        restarts(body, "crasher") >= started - 1.0 - 1.0
            && exits(body, "crasher", "exited_error") >= started - 1.0
    });
    let crash_exits = exits(&body, "crasher", "exited_error");
    println!(
        "crash loop: {started} starts, {crash_exits} exited_error, {} restarts",
        restarts(&body, "crasher")
    );
    // The last start may still be running or may have ended after the watchdog stopped.
    assert!(restarts(&body, "crasher") >= crash_exits - 1.0);
    assert!(restarts(&body, "crasher") <= crash_exits);
    assert_eq!(exits(&body, "crasher", "unknown"), 0.0);
    // The clean loop: no restart, and no series for its automatic group. The per-process
    // rows (the next OOM victims, the largest by RSS) name any process of the host with its
    // group, the napper too when it ranks (on this host every process's oom_score is 666:
    // the ranking ties), so they are not the group's series.
    let group_series: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("group=\"oomw-napper\"") && !l.starts_with("oomwatch_process_"))
        .collect();
    assert!(
        group_series.is_empty(),
        "a clean loop's command gets no series: {group_series:#?}"
    );
}

#[test]
fn ten_thousand_exits_are_settled_with_their_real_reasons() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let exporter = start(dir.path(), &[("tenk", "^oomw-tenk$")], &[]);
    let napper = named_program(dir.path(), "/usr/bin/sleep", "oomw-tenk");
    let before = exporter.scrape();
    let lost_before: f64 = ["dropped", "unnamed", "overflow", "untracked"]
        .iter()
        .map(|c| value(&before, "oomwatch_exit_events_lost_total", &[("cause", c)]))
        .sum();
    // 10,000 processes, half ended by SIGTERM, half by SIGKILL.
    let spawner = format!(
        "import os, signal, subprocess, time\n\
         procs = [subprocess.Popen(['{napper}', '600']) for _ in range(10000)]\n\
         print('started', flush=True)\n\
         input()\n\
         for i, p in enumerate(procs):\n    p.send_signal(signal.SIGTERM if i % 2 else signal.SIGKILL)\n\
         for p in procs:\n    p.wait()\n",
        napper = napper.display()
    );
    let mut python = Command::new("python3")
        .arg("-c")
        .arg(spawner)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::BufRead;
        let out = python.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("started");
        assert_eq!(line.trim(), "started");
    }
    settled(&exporter, Duration::from_secs(60), |body| {
        value(body, "oomwatch_group_processes", &[("group", "tenk")]) == 10_000.0
    });
    {
        use std::io::Write;
        let mut stdin = python.stdin.take().expect("stdin");
        stdin.write_all(b"\n").expect("go");
    }
    assert!(python.wait().expect("python ends").success());
    let body = settled(&exporter, Duration::from_secs(60), |body| {
        exits(body, "tenk", "terminated")
            + exits(body, "tenk", "killed")
            + exits(body, "tenk", "unknown")
            >= 10_000.0
    });
    let lost: f64 = ["dropped", "unnamed", "overflow", "untracked"]
        .iter()
        .map(|c| value(&body, "oomwatch_exit_events_lost_total", &[("cause", c)]))
        .sum::<f64>()
        - lost_before;
    println!(
        "10,000 exits: terminated {}, killed {}, unknown {}, lost {lost}, inferred {}",
        exits(&body, "tenk", "terminated"),
        exits(&body, "tenk", "killed"),
        exits(&body, "tenk", "unknown"),
        value(
            &body,
            "oomwatch_exits_inferred_total",
            &[("cause", "no_event")]
        )
    );
    assert_eq!(exits(&body, "tenk", "terminated"), 5_000.0);
    assert_eq!(exits(&body, "tenk", "killed"), 5_000.0);
    assert_eq!(exits(&body, "tenk", "unknown"), 0.0);
    assert_eq!(exits(&body, "tenk", "oom_killed"), 0.0);
}

#[test]
fn a_user_unit_never_lands_in_a_system_units_group() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    // Series for the new groups at once.
    let exporter = start(dir.path(), &[], &["--groups.min-age", "1s"]);
    let base = ScratchCgroup::create(&format!("oomwatch-units-{}", std::process::id()), 256 << 20)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let base_dir = PathBuf::from(cgroup_procs(&base).parent().expect("dir"));
    // What `systemd-run --user --unit=mysql` makes for uid 1000, and the system's own unit.
    let user =
        base_dir.join("user.slice/user-1000.slice/user@1000.service/app.slice/mysql.service");
    let system = base_dir.join("system.slice/mysql.service");
    let mut children = Vec::new();
    for (cgroup, name) in [(&user, "oomw-usersql"), (&system, "oomw-syssql")] {
        std::fs::create_dir_all(cgroup).expect("create the cgroup");
        let program = named_program(dir.path(), "/usr/bin/sleep", name);
        let child = Command::new(program).arg("600").spawn().expect("starts");
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string()).expect("move it");
        // First among the next victims, so its group shows on its own series.
        std::fs::write(format!("/proc/{}/oom_score_adj", child.id()), "1000").expect("adj");
        children.push(child);
    }
    let body = settled(&exporter, Duration::from_secs(15), |body| {
        value(
            body,
            "oomwatch_group_processes",
            &[("group", "user@1000/mysql.service")],
        ) == 1.0
            && value(
                body,
                "oomwatch_group_processes",
                &[("group", "mysql.service")],
            ) == 1.0
    });
    let group_of = |comm: &str| {
        body.lines()
            .find(|l| {
                l.starts_with("oomwatch_process_oom_score{")
                    && l.contains(&format!("comm=\"{comm}\""))
            })
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(
        group_of("oomw-usersql").contains("group=\"user@1000/mysql.service\""),
        "{body}"
    );
    assert!(
        group_of("oomw-syssql").contains("group=\"mysql.service\""),
        "{body}"
    );
    for child in children {
        stop(child);
    }
    // Empty the nested cgroups so the scratch one can be removed.
    std::thread::sleep(Duration::from_millis(200));
    for cgroup in [&user, &system] {
        let mut dir = cgroup.clone();
        while dir != base_dir {
            let _ = std::fs::remove_dir(&dir);
            dir.pop();
        }
    }
}

/// The `cgroup.procs` file of a scratch memory cgroup.
fn cgroup_procs(cgroup: &ScratchCgroup) -> PathBuf {
    let roots = oomwatch::roots::Roots::default();
    let hierarchy = oomwatch::cgroupfs::MemoryHierarchy::detect(&roots).expect("memory cgroups");
    let mount = match hierarchy {
        oomwatch::cgroupfs::MemoryHierarchy::V1 { mount }
        | oomwatch::cgroupfs::MemoryHierarchy::V2 { mount } => mount,
    };
    mount
        .join(cgroup.path().trim_start_matches('/'))
        .join("cgroup.procs")
}

/// Kills what is left in the scratch cgroup, so that it can be removed.
fn kill_all(cgroup: &ScratchCgroup) {
    for pid in cgroup.pids() {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("pid"),
            rustix::process::Signal::KILL,
        );
    }
}
