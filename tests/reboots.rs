//! Reboots cannot happen on a test machine, so these tests drive the real binary across a
//! sequence of fixture hosts (the fixture /proc copied to a temp dir, with a new boot_id
//! and btime for each "boot") and one real state dir: a clean stop then a reboot is
//! expected; a SIGKILL then a reboot is unexpected with the downtime measured from the
//! last heartbeat; a pstore panic record says kernel_panic; an NTP-style btime step with
//! the same boot_id is no reboot; wtmp records made with `utmpdump -r` decide over the
//! exporter's own marker; a corrupt state file and a read-only state dir are survived.
//! Counts persist across all of it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, fixture, require, sample, Exporter};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A fixture host whose boot can be changed between exporter runs.
struct Host {
    root: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp");
        copy_tree(&fixture("host/proc"), &root.path().join("proc"));
        copy_tree(&fixture("host/sys-v2"), &root.path().join("sys"));
        std::fs::create_dir_all(root.path().join("var/log")).expect("mkdir");
        Self { root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn boot(&self, boot_id: &str, btime: f64) {
        std::fs::write(
            self.path("proc/sys/kernel/random/boot_id"),
            format!("{boot_id}\n"),
        )
        .expect("boot_id");
        let stat = std::fs::read_to_string(self.path("proc/stat")).expect("stat");
        let stat: String = stat
            .lines()
            .map(|l| {
                if l.starts_with("btime ") {
                    format!("btime {}", btime as u64)
                } else {
                    l.to_owned()
                }
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(self.path("proc/stat"), stat).expect("stat");
    }

    fn start(&self, state: &Path) -> Exporter {
        let arg = |p: PathBuf| p.to_str().expect("utf-8").to_owned();
        let args = [
            "--path.procfs".to_owned(),
            arg(self.path("proc")),
            "--path.sysfs".to_owned(),
            arg(self.path("sys")),
            "--path.rootfs".to_owned(),
            arg(self.root.path().to_path_buf()),
            "--path.kmsg".to_owned(),
            arg(self.path("no-kmsg")),
            "--state.dir".to_owned(),
            arg(state.to_path_buf()),
            "--state.heartbeat-interval".to_owned(),
            "200ms".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Exporter::start(&args)
    }

    /// wtmp from `utmpdump -r` text records: (type, user, line, time).
    fn wtmp(&self, records: &[(u8, &str, &str, f64)]) {
        let text: String = records
            .iter()
            .map(|(kind, user, line, time)| {
                let stamp = chrono_like(*time);
                format!("[{kind}] [00000] [~~  ] [{user:<8}] [{line:<12}] [6.1.0-test          ] [0.0.0.0        ] [{stamp}]\n")
            })
            .collect();
        let mut child = Command::new("utmpdump")
            .args(["-r", "-o"])
            .arg(self.path("var/log/wtmp"))
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("utmpdump (util-linux) runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        assert!(child.wait().expect("utmpdump").success());
    }
}

/// `YYYY-MM-DDTHH:MM:SS,000000+00:00` for utmpdump, from seconds since the epoch (UTC).
fn chrono_like(time: f64) -> String {
    let secs = time as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02},000000+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount_path])
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
