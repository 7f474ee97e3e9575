//! The shipped alert rules and Alertmanager example, checked by the real tools:
//! `promtool check rules` and `promtool test rules` (Debian package `prometheus`), and
//! `amtool check-config` (`prometheus-alertmanager`). Also that every alert carries
//! severity, summary, description and a runbook_url whose anchor is a section of
//! docs/runbook.md, and that every runbook section belongs to an alert.

use std::path::Path;
use std::process::Command;

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
            assert!(url.contains("docs/runbook.md#"), "{name}: {url}");
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
