//! The incident view end to end. After a real OOM kill in a scratch memory cgroup (and with
//! a live process holding memory under another cgroup's limit), the page at `/` is
//! rendered by a real headless Chromium and its DOM checked for what an operator needs
//! (the kill with its group, RSS and cgroup; the next victims; the service near its
//! limit); a screenshot is kept under `<target>/test-artifacts/` and its path printed.
//! The same kill is checked in `/api/v1/events`, in `oomwatch events` and `oomwatch why`
//! run on the exporter's state directory, and in the event log once only after a SIGKILL
//! restart. `oomwatch events` and `oomwatch why` are also checked on a staged state
//! directory (events written through the event log, counts through the state store).
//! Kills read from a file of kernel log records are logged once across SIGTERM and SIGKILL
//! restarts, and again only for a new boot. The live test needs root, a writable memory
//! cgroup and Debian's `chromium`: without them it fails, never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, fixture, require, sample, Exporter};
use oomwatch::events::{Event, EventKind, EventLog, OomKillEvent};
use oomwatch::exit_reason::{ExitReason, WaitStatus};
use oomwatch::scratch_cgroup::ScratchCgroup;
use oomwatch::state::StateStore;

const CHROMIUM: &str = "/usr/bin/chromium";
const LIMIT: u64 = 64 * 1024 * 1024;

fn oomwatch(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("oomwatch runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs headless Chromium on `url` with `args`; returns its standard output.
fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let status = common::wait_with_deadline(&mut child, Duration::from_secs(90));
    assert!(status.success(), "chromium failed: {status:?}");
    reader.join().expect("reader")
}

fn artifact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
    };
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// The section of the page with this id, up to the next section.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id} in:\n{dom}"));
    let rest = &dom[start..];
    let end = rest.find("</section>").unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn the_page_in_chromium_after_a_real_oom_kill() {
    require(rustix::process::geteuid().is_root(), "running as root");
    require(
        Path::new(CHROMIUM).exists(),
        "Debian's chromium installed (scripts/test.sh installs it)",
    );
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let state_arg = state.to_str().expect("utf-8");
    // The holder is seconds old: its group gets series at once, not after 30 s.
    let args = ["--state.dir", state_arg, "--groups.min-age", "1s"];
    let exporter = Exporter::start(&args);
    eventually(Duration::from_secs(10), || {
        (sample(&exporter.scrape(), "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("the kernel log was not read:\n{}", exporter.log()));

    let id = std::process::id() % 1_000_000;
    // A service holding memory under its cgroup's limit: the page's "nearest their limit".
    let held_name = format!("oomheld{id}");
    let held_cgroup = ScratchCgroup::create(&format!("oomwatch-held-{id}"), LIMIT)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let python = common::named_program(dir.path(), "/usr/bin/python3", &held_name);
    let mut held = held_cgroup
        .spawn(
            &python,
            &["-c", "import time\nb = b'x' * (40 << 20)\ntime.sleep(600)"],
        )
        .expect("the holder starts");
    // The real OOM kill.
    let victim = format!("oompage{id}");
    let kill_cgroup = ScratchCgroup::create(&format!("oomwatch-page-{id}"), LIMIT)
        .expect("scratch memory cgroup");
    let hog = common::named_program(dir.path(), "/usr/bin/tail", &victim);
    let mut child = kill_cgroup.spawn(&hog, &["/dev/zero"]).expect("hog starts");
    let status = child.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed the hog"
    );

    // The kill in the API, with the kernel's numbers.
    let query = format!("/api/v1/events?type=oom_kill&group={victim}&since=10m");
    let api = eventually(Duration::from_secs(10), || {
        let body = exporter.request("GET", &query).body;
        body.contains(&format!("\"comm\":\"{victim}\""))
            .then_some(body)
    })
    .unwrap_or_else(|| panic!("the kill is not in the API:\n{}", exporter.log()));
    let json: serde_json::Value = serde_json::from_str(&api).expect("json");
    let kill = &json["events"][0];
    assert_eq!(json["matched"], 1, "{api}");
    assert_eq!(kill["constraint"], "memcg");
    assert!(
        kill["anon_rss_bytes"].as_u64().expect("anon") > LIMIT / 2,
        "{api}"
    );
    assert!(
        kill["task_memcg"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!("oomwatch-page-{id}"))),
        "{api}"
    );
    // The holder must be seen by a scan before the page is drawn (a scrape scans).
    let holder_seen = || {
        let body = exporter.scrape();
        sample(
            &body,
            "oomwatch_group_memory_limit_bytes",
            &[("group", &held_name)],
        )
        .is_some()
        .then_some(())
    };
    eventually(Duration::from_secs(10), holder_seen)
        .unwrap_or_else(|| panic!("the holder's limit is not exported:\n{}", exporter.log()));

    // The page, in a real browser.
    let url = format!("http://{}/", exporter.addr);
    let profile = dir.path().join("chromium");
    let dom = chromium(&profile, &["--dump-dom"], &url);
    assert!(dom.contains("<h1>oomwatch on "), "{dom}");
    assert!(!dom.contains("<script"), "no scripts");
    assert!(dom.contains("http-equiv=\"refresh\""), "refreshes itself");
    let host = section(&dom, "host");
    for term in [
        "Booted",
        "Last reboot",
        "Memory",
        "Memory pressure (PSI)",
        "OOM kills this boot",
    ] {
        assert!(
            host.contains(&format!("<dt>{term}</dt>")),
            "{term} in {host}"
        );
    }
    let kills = section(&dom, "kills");
    assert!(kills.contains("Last 24 h: "), "{kills}");
    assert!(
        kills.contains(&format!("{victim}</td>")),
        "the kill among the latest: {kills}"
    );
    let timeline = section(&dom, "timeline");
    let row = timeline
        .split("<tr")
        .find(|row| row.contains("event oom_kill") && row.contains(&victim))
        .unwrap_or_else(|| panic!("no row for the kill of {victim} in:\n{timeline}"));
    assert!(row.contains("OOM kill"), "{row}");
    assert!(
        row.contains(&format!("<td>{victim}</td>")),
        "group in {row}"
    );
    assert!(
        row.contains("RSS ") && row.contains("MiB (anon "),
        "RSS in {row}"
    );
    assert!(
        row.contains(&format!("oomwatch-page-{id}")),
        "cgroup in {row}"
    );
    let victims = section(&dom, "victims");
    assert!(
        victims.contains("<th class=\"n\">oom_score_adj</th>"),
        "{victims}"
    );
    assert!(
        victims.matches("<tr class=\"victim\">").count() >= 1,
        "{victims}"
    );
    let limits = section(&dom, "limits");
    let held_row = limits
        .split("<tr")
        .find(|row| row.contains(&format!("<td>{held_name}</td>")))
        .unwrap_or_else(|| {
            panic!("{held_name} not among the services near their limit:\n{limits}")
        });
    assert!(held_row.contains("64 MiB"), "the limit in {held_row}");
    assert!(dom.contains("href=\"/metrics\""), "links to /metrics");

    // The screenshot, kept for people to look at.
    let png = artifact_dir().join("incident-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &profile,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
        ],
        &url,
    );
    let image = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(image[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(image[20..24].try_into().expect("height"));
    assert_eq!((width, height), (1280, 2000));
    assert!(
        image.len() > 20_000,
        "more than a blank page: {} bytes",
        image.len()
    );
    println!("screenshot: {}", png.display());

    // What a page view costs, drawn from the latest scan.
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let page = exporter.request("GET", "/");
        times.push(started.elapsed());
        assert_eq!(page.status, 200);
        size = page.body.len();
    }
    times.sort();
    println!(
        "page: {size} bytes, median {:?}, max {:?} over 20 views",
        times[10], times[19]
    );

    // The same kill from the shell, with the exporter running or not.
    let (code, text, err) = oomwatch(&["why", &victim, "--state.dir", state_arg]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(
        text.contains("was killed by the kernel's OOM killer"),
        "{text}"
    );
    assert!(
        text.contains(&format!("oomwatch-page-{id} hit its memory limit")),
        "{text}"
    );
    assert!(text.contains("not running"), "{text}");
    let (code, text, err) = oomwatch(&[
        "events",
        "--state.dir",
        state_arg,
        "--type",
        "oom_kill",
        "--group",
        &victim,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.lines().count(), 1, "{text}");

    // SIGKILLed and restarted, the exporter replays the ring buffer and logs nothing twice.
    exporter.kill();
    let exporter = Exporter::start(&args);
    eventually(Duration::from_secs(10), || {
        (sample(&exporter.scrape(), "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(())
    })
    .expect("caught up again");
    let log = std::fs::read_to_string(state.join("events.jsonl")).expect("event log");
    let logged = log
        .lines()
        .filter(|l| {
            l.contains("\"type\":\"oom_kill\"") && l.contains(&format!("\"comm\":\"{victim}\""))
        })
        .count();
    assert_eq!(
        logged, 1,
        "the kill is logged once across a SIGKILL restart"
    );
    assert!(exporter.stop().success());
    let _ = held.kill();
    let _ = held.wait();
}

/// The oom_kill events the API returns (all of them).
fn logged_kills(exporter: &Exporter) -> Vec<serde_json::Value> {
    let body = exporter
        .request("GET", "/api/v1/events?type=oom_kill&limit=100000")
        .body;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["events"].as_array().expect("events").clone()
}

/// Starts the exporter on a fixture host and a file of kernel log records, once it has
/// read the file to its end.
fn start_on_records(host: &common::host::Host, kmsg: &Path, state: &Path) -> Exporter {
    let arg = |p: PathBuf| p.to_str().expect("utf-8").to_owned();
    let args = [
        "--path.procfs".to_owned(),
        arg(host.path("proc")),
        "--path.sysfs".to_owned(),
        arg(host.path("sys")),
        "--path.rootfs".to_owned(),
        arg(host.path("")),
        "--path.kmsg".to_owned(),
        arg(kmsg.to_path_buf()),
        "--state.dir".to_owned(),
        arg(state.to_path_buf()),
        "--no-collector.exits".to_owned(),
        // The fixture host booted in 2023: its kills are shown whatever the date.
        "--oom.victims-retention=100000d".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    eventually(Duration::from_secs(10), || {
        (sample(&exporter.scrape(), "oomwatch_kmsg_up", &[]) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("the records were not read:\n{}", exporter.log()));
    exporter
}

#[test]
fn kills_are_logged_once_across_restarts_and_again_in_a_new_boot() {
    let host = common::host::Host::new();
    host.boot("11111111-2222-3333-4444-555555555555", 1_700_000_000.0);
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let kmsg = dir.path().join("kmsg");
    let records = std::fs::read_to_string(fixture("host/kmsg")).expect("fixture");
    std::fs::write(&kmsg, &records).expect("kmsg");

    let exporter = start_on_records(&host, &kmsg, &state);
    let kills = logged_kills(&exporter);
    let counted: f64 = exporter
        .scrape()
        .lines()
        .filter(|l| l.starts_with("oomwatch_oom_kills_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(kills.len() >= 3, "{kills:?}");
    assert_eq!(kills.len() as f64, counted, "one event per counted kill");
    let node = kills
        .iter()
        .find(|k| k["pid"] == 12001)
        .unwrap_or_else(|| panic!("no kill of pid 12001: {kills:?}"));
    assert_eq!(node["comm"], "node");
    assert_eq!(node["anon_rss_bytes"], 1_031_040u64 * 1024);
    assert_eq!(node["file_rss_bytes"], 1_400u64 * 1024);
    assert_eq!(node["total_vm_bytes"], 11_501_240u64 * 1024);
    assert_eq!(node["pgtables_bytes"], 2_336u64 * 1024);
    assert_eq!(
        (node["uid"].clone(), node["oom_score_adj"].clone()),
        (1000.into(), 985.into())
    );
    assert_eq!(node["boot_id"], "11111111-2222-3333-4444-555555555555");
    let first = kills.len();

    // SIGTERM, then SIGKILL: each restart replays the whole file and logs nothing again.
    assert!(exporter.stop().success());
    let exporter = start_on_records(&host, &kmsg, &state);
    assert_eq!(logged_kills(&exporter).len(), first, "after SIGTERM");
    exporter.kill();
    let exporter = start_on_records(&host, &kmsg, &state);
    assert_eq!(logged_kills(&exporter).len(), first, "after SIGKILL");
    // A kill the kernel writes now is logged, once.
    let last_seq: u64 = records
        .lines()
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .max()
        .expect("sequence numbers");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&kmsg)
        .expect("append");
    std::io::Write::write_all(
        &mut file,
        format!(
            "3,{},800000000,-;Out of memory: Killed process 31337 (late) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n",
            last_seq + 1
        )
        .as_bytes(),
    )
    .expect("append");
    let late = eventually(Duration::from_secs(10), || {
        let kills = logged_kills(&exporter);
        (kills.len() == first + 1).then_some(kills)
    })
    .unwrap_or_else(|| panic!("the new kill was not logged:\n{}", exporter.log()));
    assert_eq!(late[first]["comm"], "late");
    assert_eq!(late[first]["seq"], last_seq + 1);
    assert!(exporter.stop().success());

    // A new boot starts its sequence numbers again: its kills are new.
    host.boot("66666666-7777-8888-9999-000000000000", 1_700_100_000.0);
    std::fs::write(&kmsg, &records).expect("kmsg of the new boot");
    let exporter = start_on_records(&host, &kmsg, &state);
    let kills = logged_kills(&exporter);
    assert_eq!(kills.len(), 2 * first + 1, "{kills:?}");
    assert!(kills[first + 1..]
        .iter()
        .all(|k| k["boot_id"] == "66666666-7777-8888-9999-000000000000"));
    let reboots = exporter.request("GET", "/api/v1/events?type=reboot").body;
    assert!(
        reboots.contains("\"previous_boot_id\":\"11111111-2222-3333-4444-555555555555\""),
        "{reboots}"
    );
    assert!(exporter.stop().success());
}

/// Stages a history in a state directory through the exporter's own writers.
fn stage(state: &Path, now: f64) {
    let log = EventLog::open(
        Arc::new(oomwatch::state_dir::StateDir::unchecked(state)),
        100,
    );
    let mysql_kill = OomKillEvent {
        group: "mysql.service".into(),
        pid: 4242,
        comm: "mysqld".into(),
        constraint: "memcg".into(),
        uid: Some(27),
        memcg: Some("/system.slice/mysql.service".into()),
        task_memcg: Some("/system.slice/mysql.service".into()),
        oom_group: None,
        invoker: Some("mysqld".into()),
        total_vm_bytes: Some(5 << 30),
        anon_rss_bytes: Some(3900 << 20),
        file_rss_bytes: Some(12 << 20),
        shmem_rss_bytes: Some(0),
        pgtables_bytes: Some(8 << 20),
        oom_score_adj: Some(0),
        boot_id: Some("b".into()),
        seq: 900,
    };
    let _ = log.append(&[
        Event {
            time: now - 7200.0,
            kind: EventKind::Reboot {
                boot_id: "b".into(),
                previous_boot_id: Some("a".into()),
                unexpected: true,
                cause: "kernel_panic".into(),
                evidence: "pstore holds a panic record".into(),
                downtime_seconds: Some(95.0),
            },
        },
        Event {
            time: now - 3000.0,
            kind: EventKind::exit(
                "nginx.service",
                100,
                "nginx",
                ExitReason::Crashed,
                Some(WaitStatus::Signaled {
                    signal: 11,
                    core_dumped: true,
                }),
            ),
        },
        Event {
            time: now - 600.0,
            kind: EventKind::OomKill(Box::new(mysql_kill)),
        },
        Event {
            time: now - 599.9,
            kind: EventKind::exit(
                "mysql.service",
                4242,
                "mysqld",
                ExitReason::OomKilled,
                Some(WaitStatus::Signaled {
                    signal: 9,
                    core_dumped: false,
                }),
            ),
        },
        Event {
            time: now - 590.0,
            kind: EventKind::Restart {
                group: "mysql.service".into(),
                pid: 200,
                comm: "mysqld".into(),
                gap_seconds: Some(10.0),
                after: Some(ExitReason::OomKilled),
            },
        },
    ]);
    let (store, _) = StateStore::open(Arc::new(oomwatch::state_dir::StateDir::unchecked(state)));
    store.update(|s| {
        let mut groups: oomwatch::groups::table::GroupsState = serde_json::from_str(
            r#"{"groups":{"mysql.service":{"restarts":3,"exits":{"oom_killed":2,"crashed":1}}}}"#,
        )
        .expect("groups");
        std::mem::swap(&mut s.groups, &mut groups);
    });
}

#[test]
fn events_and_why_after_staged_events() {
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    stage(state, now);
    let state_arg = state.to_str().expect("utf-8");

    let (code, table, err) = oomwatch(&["events", "--state.dir", state_arg]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "a header and five events, oldest first:\n{table}"
    );
    assert!(lines[0].starts_with("TIME (UTC)"), "{table}");
    assert!(
        lines[1].contains("reboot, unexpected: kernel_panic") && lines[1].contains("down 1m 35s"),
        "{table}"
    );
    assert!(
        lines[2].contains("exit: crashed") && lines[2].contains("signal SIGSEGV, core dumped"),
        "{table}"
    );
    assert!(
        lines[3].contains("OOM kill") && lines[3].contains("4242 mysqld"),
        "{table}"
    );
    assert!(
        lines[3].contains("RSS 3.8 GiB (anon 3.8 GiB, file 12 MiB, shmem 0 B)"),
        "{table}"
    );
    assert!(
        lines[5].contains("restart") && lines[5].contains("200 mysqld"),
        "{table}"
    );

    let (code, json, err) = oomwatch(&[
        "events",
        "--state.dir",
        state_arg,
        "--since",
        "1h",
        "--group",
        "mysql.service",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let types: Vec<String> = json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["type"].as_str().expect("type").to_owned()
        })
        .collect();
    assert_eq!(types, ["oom_kill", "exit", "restart"], "{json}");
    let (code, kills, _) = oomwatch(&[
        "events",
        "--state.dir",
        state_arg,
        "--type",
        "oom_kill,reboot",
        "--limit",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    assert!(
        kills.contains("\"anon_rss_bytes\":4089446400") && kills.lines().count() == 1,
        "{kills}"
    );
    let (code, _, err) = oomwatch(&["events", "--state.dir", state_arg, "--since", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since \"yesterday\""), "{err}");

    // why, by name and by pid, with the live instance read from a fixture /proc.
    let procfs = fixture("host/proc");
    let sysfs = fixture("host/sys-v1");
    let roots = [
        "--state.dir",
        state_arg,
        "--path.procfs",
        procfs.to_str().expect("utf-8"),
        "--path.sysfs",
        sysfs.to_str().expect("utf-8"),
    ];
    for asked in ["mysql", "mysql.service", "mysqld", "4242"] {
        let mut args = vec!["why", asked];
        args.extend(roots);
        let (code, text, err) = oomwatch(&args);
        assert_eq!(code, 0, "{asked}: {text}{err}");
        let named = match asked.parse::<u32>() {
            Ok(pid) => format!("pid {pid}"),
            Err(_) => asked.to_owned(),
        };
        assert!(
            text.starts_with(&format!("{named}: group mysql.service\n")),
            "{text}"
        );
        assert!(
            text.contains("Answer: pid 4242 (mysqld) was killed by the kernel's OOM killer 10m"),
            "{text}"
        );
        assert!(text.contains("RSS 3.8 GiB (anon 3.8 GiB, file 12 MiB, shmem 0 B), cgroup /system.slice/mysql.service hit its memory limit, oom_score_adj 0, triggered by mysqld. It came back as pid 200 10s later. 1 instance is running now."), "{text}");
        assert!(
            text.contains("reboot, unexpected: kernel_panic: (host); down 1m 35s"),
            "{text}"
        );
        assert!(
            !text.contains("exit: oom_killed"),
            "the exit is folded into the kill: {text}"
        );
        assert!(text.contains("restarted as pid 200 mysqld"), "{text}");
        assert!(
            text.contains("3 restarts; exits: oom_killed 2, crashed 1"),
            "{text}"
        );
        let live = text
            .lines()
            .find(|l| l.trim_start().starts_with("200 "))
            .unwrap_or_else(|| panic!("no live row: {text}"));
        assert!(live.contains("mysqld") && live.contains("-1000"), "{live}");
        assert!(
            live.contains("3.4 GiB of 4.0 GiB used (86%) in /system.slice/mysql.service"),
            "{live}"
        );
    }
    let mut args = vec!["why", "postgres"];
    args.extend(roots);
    let (code, text, _) = oomwatch(&args);
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("postgres: no group, command or pid of that name is known (the event log holds 5 events since "), "{text}");
    let (code, _, err) = oomwatch(&["why", "mysql", "--state.dir", "/proc/nope/never"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--state.dir /proc/nope/never: no such directory"),
        "{err}"
    );
    let (code, _, err) = oomwatch(&["events", "--state.dir", "/proc/nope/never"]);
    assert_eq!(code, 2, "{err}");
}
