//! A victim whose name would drive the operator's terminal: a real process whose comm is
//! `e<pid>` ESC `[31m` CR LF `Z` (the kernel takes comm from the name exec'd, here a link
//! of that name to tail) is OOM-killed in a scratch memory cgroup while the real exporter
//! reads the kernel log; its automatic group is named after that comm too. `oomwatch
//! events` and `oomwatch why` then print the comm and the group with `\x1b`, `\x0d` and
//! `\x0a` instead of the raw bytes, and no row they print is faked by the CR or LF; the
//! JSON output keeps the name as JSON escapes it. Needs root and a writable memory cgroup:
//! without them it fails, never skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{eventually, named_program, require, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

/// The kernel's comm of the victim: 15 bytes at most, with ESC, CR and LF in it.
fn hostile_comm() -> String {
    format!("e{}\u{1b}[31m\r\nZ", std::process::id() % 100_000)
}

fn oomwatch(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(args)
        .output()
        .expect("oomwatch runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    (out.status.code().unwrap_or(-1), stdout)
}

/// No raw control character but the line ends, and each line is a whole line of ours.
fn assert_no_raw_controls(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && (c.is_control() || *c == '\u{7f}'))
        .collect();
    assert!(
        raw.is_empty(),
        "{what}: raw control characters {raw:?}:\n{text}"
    );
    for escape in ["\\x1b", "\\x0d", "\\x0a"] {
        assert!(text.contains(escape), "{what}: no {escape}:\n{text}");
    }
    assert!(
        !text.lines().any(|line| line.starts_with('Z')),
        "{what}: a row faked by the LF:\n{text}"
    );
}

#[test]
fn events_and_why_escape_a_victims_control_characters() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let state_arg = state.to_str().expect("utf-8");
    let exporter = Exporter::start(&["--state.dir", state_arg]);
    eventually(Duration::from_secs(20), || {
        let body = exporter.scrape();
        common::sample(&body, "oomwatch_kmsg_up", &[])
            .filter(|up| *up == 1.0)
            .map(|_| ())
    })
    .unwrap_or_else(|| panic!("the kernel log was not read:\n{}", exporter.log()));

    let comm = hostile_comm();
    assert!(comm.len() <= 15, "{comm:?} fits the kernel's comm");
    let program = named_program(dir.path(), "/usr/bin/tail", &comm);
    let cgroup = ScratchCgroup::create(
        &format!("oomwatch-escapes-{}", std::process::id()),
        64 << 20,
    )
    .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let mut victim = cgroup.spawn(&program, &["/dev/zero"]).expect("tail starts");
    let pid = victim.id();
    let status = victim.wait().expect("tail ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the kernel killed it"
    );
    drop(cgroup);

    // The kill, as the exporter logged it (JSON keeps the name as it is).
    let logged = eventually(Duration::from_secs(20), || logged_kill(&state, pid))
        .unwrap_or_else(|| panic!("the kill of {pid} was not logged:\n{}", exporter.log()));
    assert_eq!(logged["comm"], comm.as_str(), "{logged}");
    assert_eq!(
        logged["group"],
        comm.as_str(),
        "an automatic group named by comm"
    );

    let (code, table) = oomwatch(&["events", "--state.dir", state_arg, "--type", "oom_kill"]);
    assert_eq!(code, 0, "{table}");
    let row = table
        .lines()
        .find(|line| line.contains(&format!(" {pid} e")))
        .unwrap_or_else(|| panic!("no row for pid {pid}:\n{table}"));
    let escaped = format!("e{}\\x1b[31m\\x0d\\x0aZ", std::process::id() % 100_000);
    // The group, the process and (the victim allocated) the invoker.
    let cells: Vec<&str> = row.split_whitespace().collect();
    let pid_cell = pid.to_string();
    let expected = [escaped.as_str(), pid_cell.as_str(), escaped.as_str()];
    assert!(cells.windows(3).any(|w| w == expected), "{row}");
    assert!(row.contains(&format!("triggered by {escaped}")), "{row}");
    assert_no_raw_controls("oomwatch events", &table);

    let (code, why) = oomwatch(&["why", &pid.to_string(), "--state.dir", state_arg]);
    assert_eq!(code, 0, "{why}");
    assert!(
        why.starts_with(&format!("pid {pid}: group {escaped}\n")),
        "{why}"
    );
    assert!(
        why.contains(&format!(
            "pid {pid} ({escaped}) was killed by the kernel's OOM killer"
        )),
        "{why}"
    );
    assert_no_raw_controls("oomwatch why", &why);

    let (code, json) = oomwatch(&[
        "events",
        "--state.dir",
        state_arg,
        "--type",
        "oom_kill",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let same = json
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON lines"))
        .any(|event| event["pid"] == pid && event["comm"] == comm.as_str());
    assert!(
        same,
        "the JSON keeps the name, escaped as JSON does:\n{json}"
    );
    assert!(exporter.stop().success());
}

/// The event log's OOM kill of `pid`, if it is there yet.
fn logged_kill(state: &Path, pid: u32) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(state.join("events.jsonl")).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["type"] == "oom_kill" && event["pid"] == pid)
}
