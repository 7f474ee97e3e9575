//! Reboots cannot happen on a test machine, so these tests drive the real binary across a
//! sequence of fixture hosts (the fixture /proc copied to a temp dir, with a new boot_id
//! and btime for each "boot") and one real state dir: a clean stop then a reboot is
//! expected; a SIGKILL then a reboot is unexpected with the downtime measured from the
//! last heartbeat; a pstore panic record says kernel_panic; an NTP-style btime step with
//! the same boot_id is no reboot; wtmp records made with `utmpdump -r` decide over the
//! exporter's own marker; a corrupt state file and a read-only state dir are survived.
//! Counts persist across all of it.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::host::Host;
use common::{eventually, require, sample};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn reboot_series(body: &str) -> (f64, f64, Option<String>, Option<f64>) {
    let boots = sample(body, "oomwatch_boots_total", &[]).expect("boots_total");
    let unexpected = sample(body, "oomwatch_unexpected_reboots_total", &[]).expect("unexpected");
    let cause = body
        .lines()
        .find(|l| l.starts_with("oomwatch_last_reboot_unexpected{"))
        .map(|l| l.to_owned());
    let downtime = sample(body, "oomwatch_last_downtime_seconds", &[]);
    (boots, unexpected, cause, downtime)
}

#[test]
fn boots_reboots_and_their_causes() {
    let host = Host::new();
    let state_dir = tempfile::tempdir().expect("state");
    let state = state_dir.path();
    let t0 = now();

    // Boot A: first start, then a clean stop (SIGTERM).
    host.boot("aaaaaaaa-0000-4000-8000-000000000001", t0 - 3600.0);
    let a = host.start(state);
    let body = a.scrape();
    assert_eq!(reboot_series(&body), (1.0, 0.0, None, None));
    assert!(a.stop().success());

    // Boot B, 30 s after the clean stop: expected.
    host.boot("bbbbbbbb-0000-4000-8000-000000000002", now() + 30.0);
    let b = host.start(state);
    let (boots, unexpected, cause, downtime) = reboot_series(&b.scrape());
    assert_eq!((boots, unexpected), (2.0, 0.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"clean_shutdown\"} 0")
    );
    let downtime = downtime.expect("downtime");
    assert!((29.0..=31.5).contains(&downtime), "downtime {downtime}");
    std::thread::sleep(Duration::from_millis(600)); // a few heartbeats

    // B dies without a word (SIGKILL); boot C starts 100 s later: unexpected.
    b.kill();
    let died = now();
    host.boot("cccccccc-0000-4000-8000-000000000003", died + 100.0);
    let c = host.start(state);
    let (boots, unexpected, cause, downtime) = reboot_series(&c.scrape());
    assert_eq!((boots, unexpected), (3.0, 1.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"no_clean_shutdown\"} 1")
    );
    let downtime = downtime.expect("downtime");
    // btime is whole seconds; the last heartbeat came at most one interval (0.2 s) before
    // the kill.
    let floor = (died + 100.0).floor() - died;
    assert!(
        (floor..=floor + 0.5).contains(&downtime),
        "downtime from the last heartbeat: {downtime}, expected {floor}..{}",
        floor + 0.5
    );
    assert!(
        c.log().contains("the previous boot ended unexpectedly"),
        "{}",
        c.log()
    );
    assert!(c.stop().success());

    // A panic recorded in pstore during C: kernel_panic, even though C stopped cleanly.
    let c_start = died + 100.0;
    let pstore = host.path("sys/fs/pstore");
    std::fs::create_dir_all(&pstore).expect("pstore");
    let record = pstore.join("dmesg-ramoops-0");
    std::fs::write(
        &record,
        "Panic#1 Part1\n<0>[ 812.1] Kernel panic - not syncing: hung_task: blocked tasks\n",
    )
    .expect("record");
    let file = std::fs::File::options()
        .write(true)
        .open(&record)
        .expect("open");
    file.set_modified(UNIX_EPOCH + Duration::from_secs_f64(c_start + 10.0))
        .expect("mtime");
    drop(file);
    host.boot("dddddddd-0000-4000-8000-000000000004", c_start + 200.0);
    let d = host.start(state);
    let (boots, unexpected, cause, _) = reboot_series(&d.scrape());
    assert_eq!((boots, unexpected), (4.0, 2.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"kernel_panic\"} 1")
    );
    assert!(d.stop().success());
    std::fs::remove_file(&record).expect("pstore cleared");

    // Each reboot entered the event log once: boot, previous boot, cause, evidence, downtime.
    let log = std::fs::read_to_string(state.join("events.jsonl")).expect("event log");
    let reboots: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .filter(|event: &serde_json::Value| event["type"] == "reboot")
        .collect();
    let summary: Vec<(&str, &str, &str, bool)> = reboots
        .iter()
        .map(|e| {
            (
                e["boot_id"].as_str().expect("boot_id"),
                e["previous_boot_id"].as_str().expect("previous"),
                e["cause"].as_str().expect("cause"),
                e["unexpected"].as_bool().expect("unexpected"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "bbbbbbbb-0000-4000-8000-000000000002",
                "aaaaaaaa-0000-4000-8000-000000000001",
                "clean_shutdown",
                false
            ),
            (
                "cccccccc-0000-4000-8000-000000000003",
                "bbbbbbbb-0000-4000-8000-000000000002",
                "no_clean_shutdown",
                true
            ),
            (
                "dddddddd-0000-4000-8000-000000000004",
                "cccccccc-0000-4000-8000-000000000003",
                "kernel_panic",
                true
            ),
        ]
    );
    let c_event = &reboots[1];
    assert!((c_event["time"].as_f64().expect("time") - (died + 100.0).floor()).abs() < 1.0);
    let c_downtime = c_event["downtime_seconds"].as_f64().expect("downtime");
    assert!((floor..=floor + 0.5).contains(&c_downtime), "{c_downtime}");
    assert!(!reboots[2]["evidence"]
        .as_str()
        .expect("evidence")
        .is_empty());

    // NTP steps the clock: btime moves by a few seconds, the boot_id stays. No reboot.
    host.boot("dddddddd-0000-4000-8000-000000000004", c_start + 203.5);
    let d2 = host.start(state);
    let (boots, unexpected, cause, _) = reboot_series(&d2.scrape());
    assert_eq!((boots, unexpected), (4.0, 2.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"kernel_panic\"} 1")
    );

    // D is killed, but wtmp holds D's boot and a shutdown record: wtmp decides, expected.
    d2.kill();
    let d_start = c_start + 200.0;
    let e_start = d_start + 1000.0;
    host.wtmp(&[
        (2, "reboot", "~", d_start),
        (1, "shutdown", "~~", e_start - 20.0),
        (2, "reboot", "~", e_start + 5.0),
    ]);
    host.boot("eeeeeeee-0000-4000-8000-000000000005", e_start);
    let e = host.start(state);
    let (boots, unexpected, cause, _) = reboot_series(&e.scrape());
    assert_eq!((boots, unexpected), (5.0, 2.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"clean_shutdown\"} 0")
    );
    assert!(e.stop().success());

    // E stopped cleanly, but wtmp shows E's boot with no shutdown record: unexpected.
    let f_start = e_start + 500.0;
    host.wtmp(&[
        (2, "reboot", "~", d_start),
        (1, "shutdown", "~~", e_start - 20.0),
        (2, "reboot", "~", e_start + 5.0),
        (2, "reboot", "~", f_start + 5.0),
    ]);
    host.boot("ffffffff-0000-4000-8000-000000000006", f_start);
    let f = host.start(state);
    let (boots, unexpected, cause, _) = reboot_series(&f.scrape());
    assert_eq!((boots, unexpected), (6.0, 3.0));
    assert_eq!(
        cause.as_deref(),
        Some("oomwatch_last_reboot_unexpected{cause=\"no_clean_shutdown\"} 1")
    );
    assert!(f.stop().success());

    // A corrupt state file: moved aside, counted, and the exporter serves.
    std::fs::write(
        state.join("state.json"),
        b"{\"version\":1,\"boot_id\":\"fff",
    )
    .expect("corrupt");
    let g = host.start(state);
    let body = g.scrape();
    assert_eq!(
        sample(&body, "oomwatch_state_recovered_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "oomwatch_boots_total", &[]),
        Some(1.0),
        "a fresh history, said so"
    );
    assert!(g.log().contains("moved aside"), "{}", g.log());
    assert!(std::fs::read_dir(state)
        .expect("state dir")
        .flatten()
        .any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("state.json.corrupt-")));
    assert!(g.stop().success());
}

#[test]
fn a_read_only_state_dir_keeps_the_exporter_serving() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to mount a tmpfs)",
    );
    let host = Host::new();
    host.boot("99999999-0000-4000-8000-000000000009", now() - 60.0);
    let mount = tempfile::tempdir().expect("mount point");
    let mount_path = mount.path().to_str().expect("utf-8");
    let mounted = Command::new("mount")
        // 0700: a tmpfs is 1777 by default, which the state directory check refuses.
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0700",
            "tmpfs",
            mount_path,
        ])
        .status()
        .expect("mount runs");
    require(mounted.success(), "mounting a tmpfs");
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount_path);

    let exporter = host.start(mount.path());
    assert_eq!(
        sample(&exporter.scrape(), "oomwatch_state_write_errors_total", &[]),
        Some(0.0)
    );
    let remount = |mode: &str| {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}"), mount_path])
            .status()
            .expect("remount");
        assert!(status.success(), "remount {mode}");
    };
    remount("ro");
    // The heartbeat (every 200 ms) now fails to write; scrapes go on.
    let errors = eventually(Duration::from_secs(5), || {
        let body = exporter.scrape();
        sample(&body, "oomwatch_state_write_errors_total", &[]).filter(|e| *e >= 1.0)
    })
    .expect("write errors are counted");
    assert!(errors >= 1.0);
    assert!(
        exporter.log().contains("cannot write the state file"),
        "{}",
        exporter.log()
    );
    remount("rw");
    eventually(Duration::from_secs(5), || {
        exporter
            .log()
            .contains("state directory writable again")
            .then_some(())
    })
    .expect("recovers when the directory is writable again");
    assert!(exporter.stop().success());
    // Never a torn file: what is there parses.
    let text = std::fs::read_to_string(mount.path().join("state.json")).expect("state");
    let _: serde_json::Value = serde_json::from_str(&text).expect("a whole state file");
}
