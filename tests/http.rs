//! HTTP behaviour of the real binary: routes (the incident page and the event API among
//! them), methods, content negotiation, and the
//! exposition checked by two independent parsers (the Python prometheus_client OpenMetrics
//! parser, and `promtool check metrics` on the text format). Also the exit code and message
//! of bad flags and config files, a busy port that fails the start before the state
//! directory is created, and group rules in the regex crate's Unicode syntax (`(?i)`,
//! `\p{L}`).

mod common;

use std::process::Command;

use common::{fixture, request, Exporter, OPENMETRICS_ACCEPT};

fn fixture_exporter(state: &std::path::Path) -> Exporter {
    Exporter::start(&[
        "--path.procfs",
        fixture("host/proc").to_str().expect("utf-8"),
        "--path.sysfs",
        fixture("host/sys-v2").to_str().expect("utf-8"),
        "--state.dir",
        state.to_str().expect("utf-8"),
    ])
}

#[test]
fn routes_methods_and_content_types() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = fixture_exporter(state.path());

    let om = request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept", OPENMETRICS_ACCEPT)],
    );
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"));

    let text = exporter.request("GET", "/metrics");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(text
        .body
        .contains("# TYPE oomwatch_vmstat_oom_kills_total counter"));
    assert!(!text.body.contains("# EOF"));

    let refused = request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;q=0, text/plain")],
    );
    assert!(refused
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));

    let head = exporter.request("HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let post = exporter.request("POST", "/metrics");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    assert_eq!(exporter.request("GET", "/nope").status, 404);
    let landing = exporter.request("GET", "/");
    assert_eq!(landing.status, 200);
    assert_eq!(
        landing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(landing.body.contains("href=\"/metrics\""));
    assert!(landing.body.contains("<section id=\"victims\">"));
    assert!(exporter.request("HEAD", "/").body.is_empty());
    let api = exporter.request("GET", "/api/v1/events?type=oom_kill&since=1h");
    assert_eq!(api.status, 200);
    assert_eq!(api.header("content-type"), Some("application/json"));
    assert!(api.body.contains("\"matched\":"), "{}", api.body);
    let bad = exporter.request("GET", "/api/v1/events?since=soon");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("since \\\"soon\\\""), "{}", bad.body);
    assert_eq!(exporter.request("POST", "/api/v1/events").status, 405);
    assert_eq!(exporter.request("GET", "/-/healthy").status, 200);
    assert_eq!(exporter.request("GET", "/-/ready").status, 200);
    assert!(exporter.stop().success());
}

#[test]
fn exposition_passes_strict_parsers() {
    let state = tempfile::tempdir().expect("temp");
    // The live host, which has PSI and more variety than the fixture, and the fixture.
    let live = Exporter::start(&["--state.dir", state.path().to_str().expect("utf-8")]);
    let state2 = tempfile::tempdir().expect("temp");
    let fixed = fixture_exporter(state2.path());
    for exporter in [&live, &fixed] {
        let om = exporter.scrape();
        let parser = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
missing = [f.name for f in families if not f.documentation]
assert not missing, f"no HELP: {missing}"
print(len(families))
"#;
        // Debian's python3 with python3-prometheus-client, as the test command installs it.
        let out = run_with_stdin("/usr/bin/python3", &["-c", parser], &om);
        assert!(
            out.status.success(),
            "OpenMetrics parser rejected the exposition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("count");
        assert!(families >= 20, "only {families} families");

        let text = exporter.request("GET", "/metrics").body;
        let out = run_with_stdin("promtool", &["check", "metrics"], &text);
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (the test command installs it): {e}")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("output")
}

fn oomwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn bad_flags_and_config_exit_2_naming_what_to_fix() {
    let dir = tempfile::tempdir().expect("temp");
    let bad_yaml = dir.path().join("bad.yml");
    std::fs::write(&bad_yaml, "groups:\n  - name: x\n    comm: '('\n").expect("write");
    let bad_yaml = bad_yaml.to_str().expect("utf-8");
    let deep_yaml = dir.path().join("deep.yml");
    let deep = format!("groups: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(&deep_yaml, deep).expect("write");
    let deep_yaml = deep_yaml.to_str().expect("utf-8");
    for (args, expected) in [
        (
            vec!["--web.listen-address", "nowhere"],
            "--web.listen-address",
        ),
        (vec!["--restarts.min-age", "soon"], "--restarts.min-age"),
        (
            vec!["--config.file", "/nonexistent/oomwatch.yml"],
            "--config.file",
        ),
        (vec!["--config.file", bad_yaml], "bad regex"),
        (
            vec!["--config.file", deep_yaml],
            "groups: nested deeper than 64 levels at line 1",
        ),
        (
            vec!["--web.listen-address", "::1:9721"],
            "needs brackets around it before the port, as in [::1]:9721",
        ),
        (vec!["--collector.nosuch"], "--collector.nosuch"),
        (vec!["--processes.top", "many"], "--processes.top"),
    ] {
        let out = oomwatch(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = oomwatch(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("oomwatch "));
}

#[test]
fn an_unusable_state_dir_keeps_the_exporter_serving_and_says_so() {
    let dir = tempfile::tempdir().expect("temp");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let state = file.join("state");
    let exporter = fixture_exporter(&state);
    let body = exporter.scrape();
    let errors = common::sample(&body, "oomwatch_state_write_errors_total", &[])
        .expect("write errors exported");
    assert!(errors >= 1.0, "{errors}");
    assert!(body.contains("oomwatch_boot_time_seconds"));
    let log = exporter.log();
    assert!(
        log.contains("--state.dir") && log.contains("in memory"),
        "{log}"
    );
    assert!(exporter.stop().success());
    assert!(file.is_file(), "the file in the way was left alone");
}

#[test]
fn sigterm_stops_cleanly_and_a_busy_port_is_an_error() {
    let state = tempfile::tempdir().expect("temp");
    let exporter = fixture_exporter(state.path());
    let taken = exporter.addr.to_string();
    let out = oomwatch(&[
        "--web.listen-address",
        &taken,
        "--state.dir",
        state.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.listen-address"));
    let status = exporter.stop();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_busy_port_fails_the_start_before_the_state_dir_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let out = oomwatch(&[
        "--web.listen-address",
        &address,
        "--state.dir",
        state.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {address} (--web.listen-address)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(
        !state.exists(),
        "the state directory was created: {:?}",
        std::fs::read_dir(&state).map(|d| d.count())
    );
    assert!(!stderr.contains("new state directory"), "{stderr}");
}

#[test]
fn group_rules_take_case_insensitive_and_unicode_class_regexes() {
    let dir = tempfile::tempdir().expect("temp");
    let config = dir.path().join("oomwatch.yml");
    std::fs::write(
        &config,
        "groups:\n  - name: web\n    comm: '(?i)^NGINX$'\n  \
         - name: 'letters-$1'\n    comm: '^(\\p{L}+)-server$'\n",
    )
    .expect("write");
    let exporter = Exporter::start(&[
        "--path.procfs",
        fixture("host/proc").to_str().expect("utf-8"),
        "--path.sysfs",
        fixture("host/sys-v2").to_str().expect("utf-8"),
        "--state.dir",
        dir.path().join("state").to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
    ]);
    let body = exporter.scrape();
    // The fixture host runs three nginx processes and one redis-server.
    let processes = |group| common::sample(&body, "oomwatch_group_processes", &[("group", group)]);
    assert_eq!(processes("web"), Some(3.0), "{body}");
    assert_eq!(processes("letters-redis"), Some(1.0), "{body}");
    assert!(exporter.stop().success());
}
