//! `oomwatch scan` as an operator runs it: on the fixture logs in every format (files,
//! standard input, gzip), as a table and as JSON lines with the documented keys, with the
//! documented exit codes (0 kills found, 1 none, 2 unreadable input).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::fixture;

fn scan(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .arg("scan")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
    }
    child.wait_with_output().expect("output")
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

const KEYS: [&str; 17] = [
    "kind",
    "pid",
    "comm",
    "uid",
    "constraint",
    "global",
    "memcg",
    "task_memcg",
    "total_vm_kb",
    "anon_rss_kb",
    "file_rss_kb",
    "shmem_rss_kb",
    "pgtables_kb",
    "oom_score_adj",
    "invoker",
    "time",
    "line",
];

#[test]
fn the_real_kill_is_found_once_in_every_format() {
    let mut seen = Vec::new();
    for form in [
        "dmesg",
        "dmesg-T",
        "dmesg-iso",
        "syslog",
        "journal",
        "journal-iso",
        "kmsg",
    ] {
        let path = fixture(&format!("kmsg/real-6.18-memcg-v1.{form}"));
        let out = scan(&["--format", "json", path.to_str().expect("utf-8")], None);
        assert_eq!(out.status.code(), Some(0), "{form}");
        let rows = json_rows(&out);
        assert_eq!(rows.len(), 1, "{form}: {rows:?}");
        let row = &rows[0];
        for key in KEYS {
            assert!(row.get(key).is_some(), "{form}: key {key} missing");
        }
        assert_eq!(row["kind"], "kernel");
        assert_eq!(row["pid"], 6438);
        assert_eq!(row["comm"], "oom (fix) 1:[2]");
        assert_eq!(row["global"], false);
        assert_eq!(row["anon_rss_kb"], 50944);
        assert!(
            row.get("killer").is_none(),
            "killer only on userspace kills"
        );
        let mut same = row.clone();
        same["time"] = serde_json::Value::Null;
        same["line"] = serde_json::Value::Null;
        seen.push(same);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "the same kill in every format"
    );
}

#[test]
fn userspace_kills_are_marked_with_their_killer() {
    let path = fixture("kmsg/userspace-killers.syslog");
    let out = scan(&["--format", "json", path.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(0));
    let rows = json_rows(&out);
    // The fixture also holds one kernel kill whose victim is earlyoom itself: that one
    // stays a kernel kill, with no killer.
    let (user, kernel): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r["kind"] == "userspace");
    assert_eq!(kernel.len(), 1);
    assert_eq!(kernel[0]["comm"], "earlyoom");
    assert!(kernel[0].get("killer").is_none());
    assert_eq!(user.len(), 7, "{user:?}");
    assert!(user.iter().all(|r| r["killer"].is_string()));
    let killers: std::collections::BTreeSet<_> =
        user.iter().filter_map(|r| r["killer"].as_str()).collect();
    assert!(
        killers.contains("systemd-oomd") && killers.contains("earlyoom"),
        "{killers:?}"
    );
}

#[test]
fn stdin_gzip_table_and_exit_codes() {
    let plain = std::fs::read(fixture("kmsg/v4.4-global.dmesg")).expect("fixture");
    let out = scan(&[], Some(&plain));
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("LINE"), "{table}");
    assert!(
        table.contains("mysqld") && table.contains("global"),
        "{table}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("compress");
    let compressed = gz.finish().expect("gzip");
    let dir = tempfile::tempdir().expect("temp");
    let file = dir.path().join("messages.1.gz");
    std::fs::write(&file, &compressed).expect("write");
    let out = scan(&[file.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), table);

    let out = scan(&[], Some(b"Nov 18 10:00:00 host kernel: nothing to see\n"));
    assert_eq!(out.status.code(), Some(1));
    let out = scan(&["/nonexistent/messages"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/messages"));
}

#[test]
fn reaper_lines_and_tables_are_not_kills_and_a_panic_is_a_panic() {
    for (name, kills, panics) in [
        ("kmsg/v4.9-global-reaper.dmesg-T", 1, 0),
        ("kmsg/v6.8-global-panic-on-oom.dmesg", 0, 1),
        ("kmsg/v5.15-memcg-nokillable.dmesg", 0, 0),
        ("kmsg/v4.19-memcg-oomgroup.syslog", 3, 0),
    ] {
        let out = scan(
            &["--format", "json", fixture(name).to_str().expect("utf-8")],
            None,
        );
        let rows = json_rows(&out);
        let kind = |k: &str| rows.iter().filter(|r| r["kind"] == k).count();
        assert_eq!(kind("kernel"), kills, "{name}");
        assert_eq!(kind("panic"), panics, "{name}");
        assert_eq!(rows.len(), kills + panics, "{name}");
        assert_eq!(
            out.status.code(),
            Some(if kills + panics > 0 { 0 } else { 1 }),
            "{name}"
        );
    }
    let panic = fixture("kmsg/v6.8-global-panic-on-oom.dmesg");
    let out = scan(&["--format", "json", panic.to_str().expect("utf-8")], None);
    let rows = json_rows(&out);
    assert_eq!(
        rows[0]["panic"],
        "Out of memory: system-wide panic_on_oom is enabled"
    );
    assert!(rows[0]["pid"].is_null());
    let table = scan(&[panic.to_str().expect("utf-8")], None);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("PANIC") && text.contains("kernel panic: Out of memory"),
        "{text}"
    );
}

#[test]
fn a_program_line_is_never_a_kernel_kill() {
    // `dmesg -r` shows each record's priority: `<14>` is user.info, a program's write to
    // /dev/kmsg; the same words from the kernel (`<3>`) are a kill. A syslog tag other
    // than `kernel` and a kmsg record of facility 1 are programs too.
    let text =
        b"<14>[  5.000001] Out of memory: Killed process 11 (a) total-vm:1kB, anon-rss:1kB\n\
                 Nov 18 10:12:13 h myapp[5]: Out of memory: Killed process 12 (b) total-vm:1kB\n\
                 14,7,8,-;Out of memory: Killed process 13 (c) total-vm:1kB\n\
                 <3>[  6.000001] Out of memory: Killed process 14 (d) total-vm:1kB, anon-rss:1kB\n";
    let out = scan(&["--format", "json"], Some(text));
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], 14);
}

#[test]
fn rows_stream_out_as_their_reports_end() {
    // A summary whose kill line is missing is printed when the input ends; a burst of
    // them, one row each.
    let text = b"Jul 31 09:20:22 h kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/a,task=Web Content,pid=23405,uid=1000\n\
                 Jul 31 09:20:22 h kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/a,task=Isolated Web Co,pid=22987,uid=1000\n";
    let out = scan(&["--format", "json"], Some(text));
    let rows = json_rows(&out);
    let pids: Vec<_> = rows.iter().map(|r| r["pid"].clone()).collect();
    assert_eq!(pids, [23405, 22987]);
    assert_eq!(rows[1]["comm"], "Isolated Web Co");
    assert!(rows[1]["anon_rss_kb"].is_null());
}
