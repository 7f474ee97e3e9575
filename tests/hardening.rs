//! The exporter under load and faults, on the real host and all on 127.0.0.1: 200
//! concurrent scrapes (answered, or 503 beyond `--web.max-requests`; memory bounded),
//! 1,000 idle and slowloris connections (closed by the header timeout while scrapes are
//! still answered), 1,000 scrapes during heavy process churn, a flood of 100k kernel-log
//! records, a full state filesystem, SIGTERM in the middle of scrapes, and the binary run
//! as an unprivileged user.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, fixture, request, require, sample, Exporter, OPENMETRICS_ACCEPT};

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn start_real(state: &std::path::Path, extra: &[&str]) -> Exporter {
    let mut args = vec!["--state.dir", state.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

fn scrape_status(exporter: &Exporter) -> u16 {
    request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept", OPENMETRICS_ACCEPT)],
    )
    .status
}

#[test]
fn two_hundred_concurrent_scrapes_are_answered_or_refused_and_memory_stays_bounded() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = start_real(state.path(), &["--web.max-requests", "10"]);
    exporter.scrape();
    let before = rss_bytes(exporter.pid());
    for _round in 0..3 {
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..200)
                .map(|_| scope.spawn(|| scrape_status(&exporter)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scraper"))
                .collect()
        });
        let ok = statuses.iter().filter(|&&s| s == 200).count();
        let refused = statuses.iter().filter(|&&s| s == 503).count();
        assert_eq!(ok + refused, 200, "only 200 or 503: {statuses:?}");
        assert!(ok >= 10, "at least the allowed scrapes are served: {ok}");
    }
    let after = rss_bytes(exporter.pid());
    println!(
        "RSS {:.1} MiB before, {:.1} MiB after 3 rounds of 200 concurrent scrapes",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    assert!(
        after < 64 << 20,
        "RSS {} MiB after 600 concurrent scrapes (was {} MiB)",
        after >> 20,
        before >> 20
    );
    assert!(!exporter.log().contains("panicked"));
    assert!(exporter.stop().success());
}

#[test]
fn idle_and_slowloris_connections_are_closed_by_the_header_timeout() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = start_real(state.path(), &[]);
    let mut connections = Vec::new();
    for i in 0..1000 {
        let mut stream = TcpStream::connect(exporter.addr).expect("connect");
        if i % 2 == 1 {
            // Slowloris: a request line and one header, then nothing more.
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .expect("partial request");
        }
        connections.push(stream);
    }
    // While they hang, scrapes are answered.
    for _ in 0..5 {
        assert_eq!(scrape_status(&exporter), 200);
    }
    // The header timeout (10 s) closes every one of them.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(25);
    for (i, stream) in connections.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "connection {i} still open after 25 s");
        stream.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 1024];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                // hyper may answer 408 before closing; read on to the close.
                Ok(_) => continue,
                // Other tests' children exiting deliver SIGCHLD to this process.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = closed {
            panic!(
                "connection {i} ({}) was not closed by the server within {:?} of the first: {e}",
                if i % 2 == 1 { "slowloris" } else { "idle" },
                started.elapsed()
            );
        }
    }
    assert_eq!(scrape_status(&exporter), 200);
    assert!(exporter.stop().success());
}

#[test]
fn a_thousand_scrapes_during_heavy_process_churn() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = start_real(state.path(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let spawned = spawned.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if Command::new("/bin/true").status().is_ok() {
                        spawned.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut failures = Vec::new();
    for i in 0..1000 {
        let status = scrape_status(&exporter);
        if status != 200 {
            failures.push((i, status));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for churner in churners {
        churner.join().expect("churner");
    }
    let exits_per_second = spawned.load(Ordering::Relaxed) as f64 / elapsed;
    println!("1000 scrapes in {elapsed:.1} s during {exits_per_second:.0} exits/s");
    assert!(failures.is_empty(), "failed scrapes: {failures:?}");
    assert!(
        exits_per_second >= 100.0,
        "churn too light to prove anything: {exits_per_second:.0} exits/s"
    );
    let log = exporter.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(exporter.stop().success());
}

/// The real 6.18 kernel's kill report, repeated into `records` records with fresh
/// sequence numbers and one record skipped between copies (a counted loss).
fn kmsg_flood(path: &std::path::Path, records: usize) -> (u64, u64) {
    let report = std::fs::read_to_string(fixture("kmsg/real-6.18-memcg-v1.kmsg")).expect("fixture");
    let lines: Vec<&str> = report.lines().filter(|l| !l.starts_with(' ')).collect();
    let mut out = String::with_capacity(records * 120);
    let (mut seq, mut ts, mut written, mut copies) = (1000u64, 1_000_000u64, 0usize, 0u64);
    while written + lines.len() <= records {
        for line in &lines {
            let (head, message) = line.split_once(';').expect("record");
            let prio = head.split(',').next().expect("prio");
            out.push_str(&format!("{prio},{seq},{ts},-;{message}\n"));
            seq += 1;
            ts += 10;
            written += 1;
        }
        seq += 1; // one record lost between copies
        ts += 5_000_000;
        copies += 1;
    }
    std::fs::write(path, out).expect("write flood");
    (copies, copies - 1)
}

#[test]
fn a_flood_of_100k_kernel_log_records_is_drained_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp");
    let flood = dir.path().join("kmsg");
    let (kills, lost) = kmsg_flood(&flood, 100_000);
    let state = dir.path().join("state");
    let exporter = start_real(
        &state,
        &[
            "--path.kmsg",
            flood.to_str().expect("utf-8"),
            "--no-collector.exits",
        ],
    );
    let counted = eventually(Duration::from_secs(60), || {
        let body = exporter.scrape();
        let total: f64 = body
            .lines()
            .filter(|l| l.starts_with("oomwatch_oom_kills_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (total as u64 == kills).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "not all {kills} kills were counted; log:\n{}",
            exporter.log()
        )
    });
    assert_eq!(
        sample(&counted, "oomwatch_kmsg_records_lost_total", &[]),
        Some(lost as f64)
    );
    let rss = rss_bytes(exporter.pid());
    println!(
        "{kills} kills in 100k records counted, {lost} records lost counted, RSS {:.1} MiB",
        rss as f64 / 1048576.0
    );
    assert!(rss < 48 << 20, "RSS {} MiB after the flood", rss >> 20);
    assert!(exporter.stop().success());
}

#[test]
fn a_full_state_filesystem_is_reported_and_recovered_never_torn() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to mount a tmpfs)",
    );
    let mount = tempfile::tempdir().expect("mount point");
    let mount_path = mount.path().to_str().expect("utf-8").to_owned();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", &mount_path])
        .status()
        .expect("mount runs");
    require(mounted.success(), "mounting a tmpfs");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_path);
    let state = mount.path().join("state");
    let exporter = start_real(&state, &["--state.heartbeat-interval", "200ms"]);
    exporter.scrape();
    // Fill the filesystem to the last block.
    let filler = mount.path().join("filler");
    {
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
    }
    let errors = eventually(Duration::from_secs(5), || {
        sample(&exporter.scrape(), "oomwatch_state_write_errors_total", &[]).filter(|e| *e >= 1.0)
    })
    .expect("write errors on a full filesystem are counted");
    assert!(errors >= 1.0);
    // What is on disk is the last whole state, never a torn one.
    let text = std::fs::read_to_string(state.join("state.json")).expect("state");
    let _: serde_json::Value = serde_json::from_str(&text).expect("a whole state file");
    std::fs::remove_file(&filler).expect("free space");
    eventually(Duration::from_secs(5), || {
        exporter
            .log()
            .contains("state directory writable again")
            .then_some(())
    })
    .expect("recovers when space is free again");
    assert!(exporter.stop().success());
    let text = std::fs::read_to_string(state.join("state.json")).expect("state");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("a whole state file");
    assert!(
        saved["boot"]["clean_stop"].is_number(),
        "the clean stop was flushed: {text}"
    );
}

#[test]
fn sigterm_during_scrapes_finishes_them_flushes_state_and_exits_0() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = start_real(state.path(), &[]);
    let addr = exporter.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let scrapers: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            let outcomes = outcomes.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // After the listener closes, connecting fails: that ends the loop.
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        break;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let result = common::exchange(
                        &mut stream,
                        &addr.to_string(),
                        "GET",
                        "/metrics",
                        &[("Accept", OPENMETRICS_ACCEPT)],
                    );
                    outcomes
                        .lock()
                        .expect("outcomes")
                        .push(result.map(|r| (r.status, r.body.contains("# EOF"))));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let status = exporter.stop();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for scraper in scrapers {
        scraper.join().expect("scraper");
    }
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(12), "stopping took {took:?}");
    let outcomes = outcomes.lock().expect("outcomes");
    let complete = outcomes
        .iter()
        .filter(|o| matches!(o, Ok((200, true))))
        .count();
    assert!(complete >= 8, "scrapes before the signal: {complete}");
    // Every answer that came was whole: a 200 always carries the full exposition.
    for outcome in outcomes.iter().flatten() {
        assert!(outcome.0 != 200 || outcome.1, "a 200 without # EOF");
    }
    let text = std::fs::read_to_string(state.path().join("state.json")).expect("state");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("state json");
    assert!(saved["boot"]["clean_stop"].is_number(), "{text}");
}

#[test]
fn unprivileged_it_serves_reports_what_is_missing_and_says_what_to_grant() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to drop to nobody with setpriv)",
    );
    let restricted = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    let state = tempfile::tempdir().expect("temp");
    let state_dir = state.path().join("state");
    std::fs::create_dir(&state_dir).expect("state dir");
    let chown = Command::new("chown")
        .args(["nobody:", state_dir.to_str().expect("utf-8")])
        .status()
        .expect("chown runs");
    assert!(chown.success());
    // The temp dir itself must be traversable by nobody.
    let chmod = Command::new("chmod")
        .args(["755", state.path().to_str().expect("utf-8")])
        .status()
        .expect("chmod runs");
    assert!(chmod.success());
    let exporter = Exporter::start_via(
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ],
        &["--state.dir", state_dir.to_str().expect("utf-8")],
    );
    let uid = std::fs::read_to_string(format!("/proc/{}/status", exporter.pid()))
        .expect("status")
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(str::to_owned)
        .expect("uid line");
    assert!(!uid.contains("\t0\t"), "still root: {uid}");
    let body = exporter.scrape();
    for _ in 0..3 {
        assert_eq!(scrape_status(&exporter), 200);
    }
    // Every process is still seen: oom_score, statm and cgroup are world-readable.
    assert_eq!(
        sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "processes")]
        ),
        Some(1.0)
    );
    assert!(body.contains("oomwatch_process_oom_score{"));
    if restricted {
        assert_eq!(
            sample(
                &body,
                "oomwatch_collector_success",
                &[("collector", "kmsg")]
            ),
            Some(0.0)
        );
        assert_eq!(sample(&body, "oomwatch_kmsg_up", &[]), Some(0.0));
        let log = exporter.log();
        let hints = log.matches("CAP_SYSLOG").count();
        assert_eq!(hints, 1, "one log line says what to grant:\n{log}");
    }
    assert!(!exporter.log().contains("panicked"));
    assert!(exporter.stop().success());
    let text = std::fs::read_to_string(state_dir.join("state.json")).expect("state written");
    let _: serde_json::Value = serde_json::from_str(&text).expect("state json");
}

/// One row of the README's least-privilege table: the collectors it covers and the
/// capabilities it says they need on this host: those named outside parentheses and before
/// "Optional:" (parentheses hold notes and conditions this host does not vary, such as
/// hidepid); a CAP_SYSLOG needed "while `kernel.dmesg_restrict=1`" is not needed while it
/// is 0.
struct PrivilegeRow {
    source: String,
    collectors: Vec<String>,
    needs: std::collections::BTreeSet<String>,
    /// The row needs the D-Bus system bus: its collectors succeed only on a host that has
    /// one (a host without systemd shows them at 0 whatever is granted).
    bus: bool,
}

/// The host has a D-Bus system bus (its socket), as the exporter looks for it.
fn host_has_system_bus() -> bool {
    std::path::Path::new("/run/dbus/system_bus_socket").exists()
}

fn privilege_table() -> Vec<PrivilegeRow> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let section = readme
        .split("## Least privilege")
        .nth(1)
        .expect("a Least privilege section")
        .split("\n## ")
        .next()
        .expect("section");
    let restricted = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
        .map(|v| v.trim() == "1")
        .unwrap_or(true);
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        rows.first().map(|h| h.join(",")).as_deref(),
        Some("source,collector,needs"),
        "the table's header"
    );
    rows.iter()
        .skip(2)
        .map(|cells| {
            assert_eq!(cells.len(), 3, "a row of three cells: {cells:?}");
            let mut depth = 0usize;
            let required: String = cells[2]
                .split("Optional:")
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        _ => return depth == 0,
                    }
                    false
                })
                .collect();
            let conditional = required.contains("while `kernel.dmesg_restrict=1`");
            let needs = required
                .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .filter(|w| w.starts_with("CAP_"))
                .filter(|w| !(conditional && *w == "CAP_SYSLOG" && !restricted))
                .map(str::to_owned)
                .collect();
            PrivilegeRow {
                bus: required.contains("the D-Bus system bus"),
                source: cells[0].clone(),
                collectors: cells[1]
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                needs,
            }
        })
        .collect()
}

/// The exporter as `nobody` with exactly `caps` (ambient, inheritable and bounding).
fn start_as_nobody_with(
    caps: &std::collections::BTreeSet<String>,
    state: &std::path::Path,
) -> Exporter {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let list = list.join(",");
    let mut wrapper = vec![
        "setpriv".to_owned(),
        "--reuid=nobody".to_owned(),
        "--regid=nogroup".to_owned(),
        "--clear-groups".to_owned(),
        "--no-new-privs".to_owned(),
    ];
    if list.is_empty() {
        wrapper.extend([
            "--inh-caps=-all".to_owned(),
            "--bounding-set=-all".to_owned(),
        ]);
    } else {
        wrapper.extend([
            format!("--inh-caps=-all,{list}"),
            format!("--ambient-caps={list}"),
            format!("--bounding-set=-all,{list}"),
        ]);
    }
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Exporter::start_via(&wrapper, &["--state.dir", state.to_str().expect("utf-8")])
}

#[test]
fn the_readmes_least_privilege_table_is_what_this_kernel_requires() {
    use std::collections::BTreeSet;
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to drop to nobody with setpriv)",
    );
    let table = privilege_table();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // Every capability set the table names, none first, all together last.
    let mut sets: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
    for row in &table {
        if !row.collectors.is_empty() && !sets.contains(&row.needs) {
            sets.push(row.needs.clone());
        }
    }
    let all: BTreeSet<String> = table.iter().flat_map(|r| r.needs.clone()).collect();
    if !sets.contains(&all) {
        sets.push(all);
    }
    let state = tempfile::tempdir().expect("temp");
    Command::new("chmod")
        .args(["755", state.path().to_str().expect("utf-8")])
        .status()
        .expect("chmod runs");
    for (i, caps) in sets.iter().enumerate() {
        let dir = state.path().join(format!("state-{i}"));
        std::fs::create_dir(&dir).expect("state dir");
        let chown = Command::new("chown")
            .args(["nobody:", dir.to_str().expect("utf-8")])
            .status()
            .expect("chown runs");
        assert!(chown.success());
        let exporter = start_as_nobody_with(caps, &dir);
        let expected =
            |row: &PrivilegeRow| row.needs.is_subset(caps) && (!row.bus || host_has_system_bus());
        let mut last = String::new();
        let settled = eventually(Duration::from_secs(20), || {
            last = exporter.scrape();
            table
                .iter()
                .flat_map(|row| row.collectors.iter().map(move |c| (row, c)))
                .all(|(row, c)| {
                    let got = sample(&last, "oomwatch_collector_success", &[("collector", c)]);
                    got == Some(if expected(row) { 1.0 } else { 0.0 })
                })
                .then_some(())
        });
        let mut report = Vec::new();
        for row in &table {
            for c in &row.collectors {
                let got = sample(&last, "oomwatch_collector_success", &[("collector", c)]);
                report.push(format!(
                    "  {c:<10} table says it needs {:?} ({}), granted {:?}: success {:?}",
                    row.needs, row.source, caps, got
                ));
            }
        }
        let seen: Vec<String> = table
            .iter()
            .flat_map(|row| row.collectors.iter())
            .map(|c| {
                let got = sample(&last, "oomwatch_collector_success", &[("collector", c)]);
                format!("{c}={}", got.map_or("-".to_owned(), |v| v.to_string()))
            })
            .collect();
        println!(
            "kernel {}, nobody with {caps:?}: {}",
            kernel.trim(),
            seen.join(" ")
        );
        assert!(
            settled.is_some(),
            "the README's least-privilege table is not what kernel {} requires:\n{}\nlog:\n{}",
            kernel.trim(),
            report.join("\n"),
            exporter.log()
        );
        // Every collector this exporter reports is a row of the table.
        for line in last
            .lines()
            .filter(|l| l.starts_with("oomwatch_collector_success{"))
        {
            let name = line
                .split("collector=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("a collector label");
            assert!(
                table.iter().any(|r| r.collectors.iter().any(|c| c == name)),
                "collector {name} is in no row of the README's least-privilege table"
            );
        }
        assert!(exporter.stop().success());
    }
}
