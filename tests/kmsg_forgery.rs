//! Forged OOM kills, made for real: the kernel echoes user input inside its own records,
//! and any local user with a user namespace can make it print `tmpfs: Unknown parameter
//! 'Memory: Killed process <pid> (<comm>) …'` by mounting a tmpfs with that option. Run
//! as `nobody` against the real exporter on the real /proc and /dev/kmsg, the forgery must
//! change no kill count, name no victim, turn no exit into `oom_killed`, leave
//! `oomwatch_oom_kills_unattributed` at or above 0, and show in
//! `oomwatch_kmsg_unverified_kills_total`. A flood of 10,000 forged lines after a real OOM
//! kill leaves the real victim's series and event in place. Needs root, unprivileged user
//! namespaces and a writable memory cgroup: without them it fails, never skips.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, require, sample, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

/// The tests read host-wide kernel counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const NOBODY: &str = "65534";

fn preconditions() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    require(
        max.trim().parse::<u64>().unwrap_or(0) > 0,
        "user namespaces enabled (user.max_user_namespaces > 0)",
    );
}

/// Runs `python3 -c script` as nobody inside a new user and mount namespace, where it may
/// call mount(2): the way any local user reaches the kernel's mount-option parser.
fn as_nobody_in_a_user_namespace(script: &str) {
    let status = Command::new("setpriv")
        .args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "unshare",
            "-Urm",
            "python3",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .status()
        .expect("setpriv runs");
    assert!(status.success(), "the forging script failed: {status}");
}

/// A python script that makes the kernel print each option in `options` in a tmpfs
/// `Unknown parameter` record (the option text up to its first comma).
fn forging_script(options: &str) -> String {
    format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         for option in {options}:\n    libc.mount(b'none', b'/tmp', b'tmpfs', 0, option.encode())\n"
    )
}

fn scrape_when_caught_up(exporter: &Exporter) -> String {
    eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0)
            && sample(&body, "oomwatch_exit_events_up", &[]) == Some(1.0))
        .then_some(body)
    })
    .unwrap_or_else(|| panic!("the exporter did not come up:\n{}", exporter.log()))
}

fn start(dir: &Path, group: &str, comm: &str) -> Exporter {
    let config = dir.join("oomwatch.yml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: {group}\n    comm: '^{comm}$'\n"),
    )
    .expect("config");
    let state = dir.join("state");
    Exporter::start(&[
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
    ])
}

fn unverified(body: &str) -> f64 {
    sample(body, "oomwatch_kmsg_unverified_kills_total", &[]).expect("unverified kills series")
}

/// Every `oomwatch_oom_kills_total` sample line.
fn kill_series(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.starts_with("oomwatch_oom_kills_total{"))
        .map(str::to_owned)
        .collect()
}

fn logged_kill_pids(exporter: &Exporter) -> Vec<u64> {
    let body = exporter
        .request("GET", "/api/v1/events?type=oom_kill&limit=100000")
        .body;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["pid"].as_u64())
        .collect()
}

#[test]
fn a_forged_kill_of_a_live_service_changes_nothing_but_the_unverified_count() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let comm = format!("oomwfrg{}", std::process::id() % 100_000);
    let group = "forge-target";
    let exporter = start(dir.path(), group, &comm);
    let program = common::named_program(dir.path(), "/usr/bin/sleep", &comm);
    let mut service = Command::new(&program)
        .arg("600")
        .spawn()
        .expect("the service starts");
    let pid = service.id();
    // Seen by a scan, so the forged line names a live process of a known group.
    let before = eventually(Duration::from_secs(10), || {
        let body = scrape_when_caught_up(&exporter);
        (sample(&body, "oomwatch_group_processes", &[("group", group)]) == Some(1.0))
            .then_some(body)
    })
    .unwrap_or_else(|| panic!("the service was not seen:\n{}", exporter.log()));

    // Each form the old parser accepted after a short prefix holding "emory", with the
    // kernel's own report prefixes inside a tmpfs message, and a forged summary line.
    let options = format!(
        "['Memory: Killed process {pid} ({comm}) total-vm:9000000kB', \
         'Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:9000000kB', \
         'Out of memory: Killed process {pid} ({comm}) total-vm:9000000kB', \
         'oom-kill:constraint=CONSTRAINT_NONE']"
    );
    as_nobody_in_a_user_namespace(&forging_script(&options));
    // The service is killed (SIGKILL) right after: its exit must say `killed`.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill -9");
    let _ = service.wait();

    let after = eventually(Duration::from_secs(20), || {
        let body = exporter.scrape();
        let settled = sample(
            &body,
            "oomwatch_group_exits_total",
            &[("group", group), ("reason", "killed")],
        ) == Some(1.0);
        (settled && unverified(&body) >= unverified(&before) + 4.0).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "the kill -9 was not settled as `killed`, or the forged lines were not counted as unverified:\n{}\n{}",
            exporter.scrape(),
            exporter.log()
        )
    });
    assert_eq!(
        unverified(&after),
        unverified(&before) + 4.0,
        "each forged line counted once as unverified"
    );
    assert_eq!(kill_series(&after), kill_series(&before), "no kill counted");
    let named = format!("comm=\"{comm}\"");
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("oomwatch_oom_") && l.contains(&named)),
        "no victim series for the forged comm"
    );
    assert_eq!(
        sample(
            &after,
            "oomwatch_group_exits_total",
            &[("group", group), ("reason", "oom_killed")]
        ),
        Some(0.0),
        "the forgery did not make the kill -9 an OOM kill"
    );
    let unattributed = sample(&after, "oomwatch_oom_kills_unattributed", &[]).expect("gauge");
    assert!(unattributed >= 0.0, "unattributed {unattributed}");
    assert_eq!(
        sample(&after, "oomwatch_vmstat_oom_kills_total", &[]),
        sample(&before, "oomwatch_vmstat_oom_kills_total", &[]),
        "no real kill happened meanwhile"
    );
    assert!(!logged_kill_pids(&exporter).contains(&u64::from(pid)));
    assert!(
        exporter.log().contains("is not backed by the kernel"),
        "the forgery is logged:\n{}",
        exporter.log()
    );
}

#[test]
fn a_flood_of_forged_kills_leaves_every_real_victim_in_place() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let comm = format!("oomwreal{}", std::process::id() % 100_000);
    let exporter = start(dir.path(), "real-victim", &comm);
    scrape_when_caught_up(&exporter);

    // A real OOM kill in a scratch memory cgroup.
    let cgroup = ScratchCgroup::create(
        &format!("oomwatch-forgery-{}", std::process::id()),
        64 << 20,
    )
    .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let hog = common::named_program(dir.path(), "/usr/bin/tail", &comm);
    let mut child = cgroup.spawn(&hog, &["/dev/zero"]).expect("hog starts");
    let status = child.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed the hog"
    );
    let real = [("group", "real-victim"), ("comm", comm.as_str())];
    let before = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_oom_kills_total", &real) == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the real kill was not counted:\n{}", exporter.log()));
    let real_pid = child.id();
    assert!(logged_kill_pids(&exporter).contains(&u64::from(real_pid)));

    // 10,000 forged kills, each of another victim, in one process.
    as_nobody_in_a_user_namespace(&forging_script(
        "(f'Memory: Killed process {i + 100000} (forged{i}) total-vm:1kB' for i in range(10000))",
    ));
    let after = eventually(Duration::from_secs(60), || {
        let body = exporter.scrape();
        let lost = sample(&body, "oomwatch_kmsg_records_lost_total", &[]).unwrap_or(0.0)
            - sample(&before, "oomwatch_kmsg_records_lost_total", &[]).unwrap_or(0.0);
        (unverified(&body) - unverified(&before) + lost >= 10_000.0).then_some(body)
    })
    .unwrap_or_else(|| panic!("the flood was not read:\n{}", exporter.log()));
    let lost = sample(&after, "oomwatch_kmsg_records_lost_total", &[]).unwrap_or(0.0)
        - sample(&before, "oomwatch_kmsg_records_lost_total", &[]).unwrap_or(0.0);
    println!(
        "10,000 forged lines: {} counted unverified, {lost} records lost",
        unverified(&after) - unverified(&before)
    );
    assert_eq!(sample(&after, "oomwatch_oom_kills_total", &real), Some(1.0));
    assert_eq!(
        kill_series(&after),
        kill_series(&before),
        "no forged victim"
    );
    assert!(
        sample(
            &after,
            "oomwatch_oom_last_victim_rss_bytes",
            &[("comm", comm.as_str()), ("kind", "anon")]
        )
        .is_some(),
        "the real victim's RSS series is kept"
    );
    assert!(logged_kill_pids(&exporter).contains(&u64::from(real_pid)));
    // The real kill is also kept across a SIGKILL of the exporter and a restart.
    exporter.kill();
    let again = start(dir.path(), "real-victim", &comm);
    let body = scrape_when_caught_up(&again);
    assert_eq!(sample(&body, "oomwatch_oom_kills_total", &real), Some(1.0));
    assert!(unverified(&body) >= unverified(&after), "persisted");
}

/// `oomwatch_userspace_oom_kills_rejected_total{source="kmsg",killer}` in `body`.
fn rejected(body: &str, killer: &str) -> f64 {
    sample(
        body,
        "oomwatch_userspace_oom_kills_rejected_total",
        &[("killer", killer), ("source", "kmsg")],
    )
    .unwrap_or(0.0)
}

/// Writes `message` into the real /dev/kmsg as journald (`ForwardToKMsg=yes`) forwards a
/// program's journal message: `<14>identifier[pid]: message`, where the identifier is what
/// the program logged under (anyone may say `earlyoom`) and the pid comes from the
/// program's socket credentials.
fn forward_as_journald(identifier: &str, pid: u32, message: &str) {
    use std::io::Write;
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("/dev/kmsg opens for writing (root)");
    // With its newline, as journald writes it: the kernel holds a record without one
    // open for a continuation, unseen by readers until the next record.
    kmsg.write_all(format!("<14>{identifier}[{pid}]: {message}\n").as_bytes())
        .expect("one record written");
}

/// Runs python as nobody under the process name `comm` and makes it segfault: the
/// kernel prints `<comm>[<pid>]: segfault at 0 …` (debug.exception-trace, on by default).
fn segfault_as_nobody_named(comm: &str) {
    let script = format!(
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.prctl(15, {comm:?}.encode(), 0, 0, 0)\nctypes.string_at(0)\n"
    );
    let status = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["/usr/bin/python3", "-c", &script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("python runs");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(11),
        "it segfaulted"
    );
}

/// Any user can log under earlyoom's name, and journald forwards it to the kernel log
/// with that user's pid. Only a line whose writer is root or the killer's own service
/// counts: a line of nobody's process, of a process gone before it could be checked, of
/// a root process not named after the killer, or whose record holds a second `[pid]:`,
/// counts only as rejected. The real chain (logger as nobody, journald, the kernel log)
/// runs in tests/vm.rs; here root writes the record journald would write, for real
/// processes of nobody and of root, into the real /dev/kmsg.
#[test]
fn a_userspace_killers_line_counts_only_when_the_killer_wrote_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    preconditions();
    let dir = tempfile::tempdir().expect("temp");
    let comm = format!("oomwfake{}", std::process::id() % 100_000);
    let exporter = start(dir.path(), "fake-victim", &comm);
    let before = scrape_when_caught_up(&exporter);
    let victim = [("killer", "earlyoom"), ("group", "fake-victim")];
    // Each of another victim pid: earlyoom's SIGTERM and SIGKILL of one pid are one kill.
    let line = |victim: u32| {
        format!(
            "sending SIGTERM to process {victim} uid 1000 \"{comm}\": badness 900, VmRSS 2048 MiB"
        )
    };

    // nobody's process, alive, logging under earlyoom's name.
    let mut nobody = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["sleep", "60"])
        .spawn()
        .expect("nobody's sleep");
    // setpriv drops to nobody, then becomes sleep: only then is the pid nobody's.
    let status = format!("/proc/{}/status", nobody.id());
    eventually(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        (text.contains("Name:\tsleep") && text.contains("Uid:\t65534\t65534")).then_some(())
    })
    .expect("nobody's sleep runs");
    // A process that is gone by the time the line is read.
    let mut gone = Command::new("true").spawn().expect("true");
    let gone_pid = gone.id();
    gone.wait().expect("true ends");
    forward_as_journald("earlyoom", nobody.id(), &line(4242));
    forward_as_journald("earlyoom", gone_pid, &line(4243));
    // The identifier is the program's text too: nobody's process names itself
    // `earlyoom[<root's pid>]: <a kill line>:`, and journald adds nobody's own pid after.
    // A copy, so that its program is earlyoom too (as it would be run by hand from a
    // root shell, in a session).
    let earlyoom = dir.path().join("earlyoom");
    std::fs::copy("/usr/bin/sleep", &earlyoom).expect("a copy of sleep named earlyoom");
    let mut root = Command::new(&earlyoom)
        .arg("60")
        .spawn()
        .expect("root's earlyoom");
    let identifier = format!("earlyoom[{}]: {}:", root.id(), line(4245));
    forward_as_journald(&identifier, nobody.id(), "hi");
    // Root, but not earlyoom: any root process (an sshd child) may come to hold a pid.
    let mut root_sleep = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("root's sleep");
    forward_as_journald("earlyoom", root_sleep.id(), &line(4246));
    // A process named like oomd's record makes the kernel print its name first.
    segfault_as_nobody_named("oomd kill: 1 2");
    let body = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (rejected(&body, "earlyoom") - rejected(&before, "earlyoom") >= 4.0
            && rejected(&body, "oomd") - rejected(&before, "oomd") >= 1.0)
            .then_some(body)
    })
    .unwrap_or_else(|| panic!("the forged lines were not rejected:\n{}", exporter.log()));
    assert_eq!(
        rejected(&body, "earlyoom") - rejected(&before, "earlyoom"),
        4.0
    );
    let _ = root_sleep.kill();
    let _ = root_sleep.wait();
    assert_eq!(rejected(&body, "oomd") - rejected(&before, "oomd"), 1.0);
    assert!(
        !body.contains("oomwatch_userspace_oom_kills_total{killer=\"oomd\""),
        "no oomd kill from a kernel record"
    );
    assert_eq!(
        sample(&body, "oomwatch_userspace_oom_kills_total", &victim),
        None,
        "no kill from nobody's line"
    );
    assert!(
        exporter.log().contains("was not written by that killer"),
        "the rejection is logged:\n{}",
        exporter.log()
    );
    let _ = nobody.kill();
    let _ = nobody.wait();

    // The same line from root's earlyoom counts.
    forward_as_journald("earlyoom", root.id(), &line(4244));
    let counted = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(&body, "oomwatch_userspace_oom_kills_total", &victim) == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("root's line was not counted:\n{}", exporter.log()));
    assert_eq!(
        rejected(&counted, "earlyoom") - rejected(&before, "earlyoom"),
        4.0
    );
    let _ = root.kill();
    let _ = root.wait();

    // Both counts survive a SIGKILL of the exporter, and the replay counts nothing again.
    exporter.kill();
    let again = start(dir.path(), "fake-victim", &comm);
    let body = scrape_when_caught_up(&again);
    assert_eq!(
        sample(&body, "oomwatch_userspace_oom_kills_total", &victim),
        Some(1.0)
    );
    assert_eq!(rejected(&body, "earlyoom"), rejected(&counted, "earlyoom"));
}
