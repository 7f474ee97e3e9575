//! The shipped alert rules and Alertmanager example, checked by the real tools:
//! `promtool check rules` and `promtool test rules` (Debian package `prometheus`), and
//! `amtool check-config` (`prometheus-alertmanager`). Also that every alert carries
//! severity, summary, description and a runbook_url, built one way (the external label
//! `oomwatch_runbook_base` or the project's docs/runbook.md, then an anchor that is a
//! section of docs/runbook.md), and that every runbook section belongs to an alert. The shipped
//! Alertmanager example is also run for real: alerts posted to it reach the receiver of
//! their severity, and the inhibitions hold: the host-level OOM alert under the per-group one
//! and the host out of memory, a storm under the host out of memory, a group's restart loop
//! and crashes under its crash loop.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Every alert's runbook link starts with this: the external label `oomwatch_runbook_base`
/// when Prometheus sets one, else the project's own runbook (README, "Alerts and dashboards").
const RUNBOOK_BASE: &str = r#"{{ or $externalLabels.oomwatch_runbook_base "https://github.com/oomwatch/oomwatch/blob/main/docs/runbook.md" }}"#;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (scripts/test.sh installs it): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// The `.yml` files directly in `dir`, relative to the crate root, sorted.
fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

#[test]
fn promtool_checks_and_unit_tests_every_rule_file() {
    let rules = yaml_files("alerts");
    assert!(!rules.is_empty());
    for file in &rules {
        let checked = run("promtool", &["check", "rules", file]);
        assert!(checked.contains("SUCCESS"), "{file}: {checked}");
    }
    let tests = yaml_files("alerts/tests");
    assert!(!tests.is_empty());
    for file in &tests {
        let tested = run("promtool", &["test", "rules", file]);
        assert!(tested.contains("SUCCESS"), "{file}: {tested}");
    }
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    let checked = run(
        "amtool",
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
}

#[test]
fn every_alert_is_documented_and_has_a_runbook_section() {
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(root().join("alerts/oomwatch.rules.yml")).expect("rules"),
    )
    .expect("YAML");
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).expect("runbook");
    let sections: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|s| s.trim().to_lowercase())
        .collect();
    let tests =
        std::fs::read_to_string(root().join("alerts/tests/oomwatch.test.yml")).expect("tests");
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            alerts.push(name.to_lowercase());
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description", "runbook_url"] {
                let value = rule["annotations"][key].as_str().unwrap_or_default();
                assert!(!value.is_empty(), "{name}: no {key}");
            }
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default();
            let anchor = url.rsplit_once('#').map(|(_, a)| a).unwrap_or_default();
            assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
            assert_eq!(
                url,
                format!("{RUNBOOK_BASE}#{anchor}"),
                "{name}: the runbook link is the configurable base and the anchor"
            );
            assert!(
                sections.contains(&anchor.to_owned()),
                "{name}: no runbook section"
            );
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "{name}: no promtool unit test"
            );
        }
    }
    for section in &sections {
        assert!(
            alerts.contains(section),
            "runbook section {section:?} has no alert"
        );
    }
}

/// Posts alerts to Alertmanager's v2 API.
fn post_alerts(alertmanager: std::net::SocketAddr, alerts: &serde_json::Value) {
    use std::io::{Read, Write};
    let body = alerts.to_string();
    let mut stream = std::net::TcpStream::connect(alertmanager).expect("connect");
    write!(
        stream,
        "POST /api/v2/alerts HTTP/1.1\r\nHost: {alertmanager}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("post");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn the_shipped_alertmanager_config_routes_by_severity_and_inhibits_live() {
    let dir = tempfile::tempdir().expect("temp");
    let webhook = common::servers::Webhook::start();
    let shipped = std::fs::read_to_string(root().join("deploy/alertmanager/alertmanager.yml"))
        .expect("example");
    // Only the receivers' address and the waits change; routes and inhibitions are as shipped.
    let config = shipped
        .replace("http://127.0.0.1:9095", &format!("http://{}", webhook.addr))
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s");
    assert_ne!(config, shipped);
    let am = common::servers::alertmanager_with_config(dir.path(), &config);
    let alert = |name: &str, instance: &str, severity: &str| serde_json::json!({"labels": {"alertname": name, "instance": instance, "severity": severity, "group": "cms"}});
    let other_group = |name: &str, instance: &str| serde_json::json!({"labels": {"alertname": name, "instance": instance, "severity": "warning", "group": "api"}});
    post_alerts(
        am.addr,
        &serde_json::json!([
            alert("OOMProcessKilled", "host-a", "warning"),
            alert("OOMKillOnHost", "host-a", "warning"),
            alert("OOMKillOnHost", "host-b", "warning"),
            alert("UnexpectedReboot", "host-c", "critical"),
            alert("HostRebooted", "host-c", "info"),
            alert("OOMKillsUnexplained", "host-d", "info"),
            alert("HostOutOfMemory", "host-e", "critical"),
            alert("OOMKillStorm", "host-e", "critical"),
            alert("OOMKillOnHost", "host-e", "warning"),
            alert("ServiceCrashLoop", "host-f", "warning"),
            alert("ServiceRestartLoop", "host-f", "warning"),
            alert("ServiceCrashed", "host-f", "warning"),
            other_group("ServiceRestartLoop", "host-f"),
        ]),
    );
    let names = |path: &str| -> Vec<(String, String)> {
        let mut names: Vec<(String, String)> = webhook
            .alerts_at(Some(path))
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    a["labels"]["instance"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let expected_chat = vec![
        pair("OOMKillOnHost", "host-b"),
        pair("OOMProcessKilled", "host-a"),
        pair("ServiceCrashLoop", "host-f"),
        // The other group's restart loop on the same host is not inhibited.
        pair("ServiceRestartLoop", "host-f"),
    ];
    let expected_pager = vec![
        pair("HostOutOfMemory", "host-e"),
        pair("UnexpectedReboot", "host-c"),
    ];
    let expected_ticket = vec![pair("OOMKillsUnexplained", "host-d")];
    let arrived = common::eventually(Duration::from_secs(30), || {
        (names("/chat") == expected_chat
            && names("/pager") == expected_pager
            && names("/ticket") == expected_ticket)
            .then_some(())
    });
    assert!(
        arrived.is_some(),
        "chat {:?}, pager {:?}, ticket {:?}",
        names("/chat"),
        names("/pager"),
        names("/ticket")
    );
    // Give a wrongly routed or uninhibited notification time to show up, then look again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        names("/chat"),
        expected_chat,
        "host-a's OOMKillOnHost is inhibited"
    );
    assert_eq!(
        names("/pager"),
        expected_pager,
        "host-e's OOMKillStorm is inhibited by HostOutOfMemory"
    );
    assert_eq!(
        names("/ticket"),
        expected_ticket,
        "HostRebooted is inhibited by UnexpectedReboot"
    );
    let listed = common::request(am.addr, "GET", "/api/v2/alerts", &[]);
    let listed: serde_json::Value = serde_json::from_str(&listed.body).expect("json");
    let inhibited: Vec<&str> = listed
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| {
            !a["status"]["inhibitedBy"]
                .as_array()
                .is_none_or(|v| v.is_empty())
        })
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    let mut inhibited = inhibited;
    inhibited.sort_unstable();
    assert_eq!(
        inhibited,
        [
            "HostRebooted",
            "OOMKillOnHost",
            "OOMKillOnHost",
            "OOMKillStorm",
            "ServiceCrashed",
            "ServiceRestartLoop"
        ],
        "{inhibited:?}"
    );
}
