//! The Kubernetes manifests in deploy/kubernetes/: the DaemonSet validated offline against
//! the Kubernetes API schemas by kubernetes-validate (PyPI; strict: no unknown fields), the
//! PodMonitor and PrometheusRule against the Prometheus Operator's API types as shipped by
//! @kubernetes-models/prometheus-operator (npm); the PrometheusRule is alerts/ wrapped, kept
//! identical by this test (`UPDATE_GOLDEN=1` rewrites it), and its rules pass promtool.
//! Both validators are shown to reject a broken document, so a pass means something.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::deploy::{on_path, printed as text, repo_file};
use common::require;

const RULES: &str = "alerts/oomwatch.rules.yml";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/prometheusrule.yaml";
/// The oldest and the newest Kubernetes the DaemonSet is checked against.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

fn tools() -> PathBuf {
    std::env::var_os("OOMWATCH_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/oomwatch-test-tools"))
        })
        .expect("OOMWATCH_TOOLS or HOME")
}

/// The PrometheusRule that carries alerts/oomwatch.rules.yml: the rule file's text,
/// comments included, indented under `spec`.
fn render_prometheus_rule(rules: &str) -> String {
    let mut out = String::from(
        "# Generated from alerts/oomwatch.rules.yml by tests/deploy_kubernetes.rs\n\
         # (UPDATE_GOLDEN=1 cargo test --test deploy_kubernetes); edit the rule file, not this.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: oomwatch\n  namespace: monitoring\n  labels:\n    app.kubernetes.io/name: oomwatch\n\
         spec:\n",
    );
    for line in rules.lines() {
        if !line.is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn prometheus_rule_is_the_alert_rules_unchanged() {
    require(on_path("promtool"), "promtool on PATH");
    let rules = std::fs::read_to_string(repo_file(RULES)).expect("rules");
    let rendered = render_prometheus_rule(&rules);
    let path = repo_file(PROMETHEUS_RULE);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).expect("write the PrometheusRule");
    }
    let committed = std::fs::read_to_string(&path).expect("the PrometheusRule");
    assert!(
        committed == rendered,
        "{PROMETHEUS_RULE} differs from {RULES}: UPDATE_GOLDEN=1 cargo test --test deploy_kubernetes"
    );
    // The same data, read as YAML, and promtool accepts the spec as a rule file.
    let resource = yaml(&path);
    assert_eq!(resource["spec"], yaml(&repo_file(RULES)));
    let spec = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(
        spec.path(),
        serde_json::to_string(&resource["spec"]).expect("json"),
    )
    .expect("write");
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(spec.path())
        .output()
        .expect("promtool runs");
    assert!(checked.status.success(), "{}", text(&checked));
}

fn kubernetes_validate(version: &str, file: &Path) -> Output {
    Command::new(tools().join("venv/bin/kubernetes-validate"))
        .args(["--strict", "--no-warn", "-k", version])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs")
}

#[test]
fn daemonset_is_valid_for_the_kubernetes_api() {
    let validator = tools().join("venv/bin/kubernetes-validate");
    require(
        validator.exists(),
        "kubernetes-validate (scripts/test.sh installs it)",
    );
    let daemonset = repo_file("deploy/kubernetes/daemonset.yaml");
    for version in KUBERNETES_VERSIONS {
        let output = kubernetes_validate(version, &daemonset);
        assert!(output.status.success(), "{version}: {}", text(&output));
        assert!(
            text(&output).contains("passed for resource daemonset/oomwatch"),
            "{}",
            text(&output)
        );
    }
    // A misspelt field fails the strict check.
    let broken = tempfile::NamedTempFile::new().expect("temp");
    let misspelt = std::fs::read_to_string(&daemonset)
        .expect("read")
        .replace("hostPID: true", "hostPid: true");
    std::fs::write(broken.path(), misspelt).expect("write");
    let output = kubernetes_validate(KUBERNETES_VERSIONS[1], broken.path());
    assert!(
        !output.status.success(),
        "hostPid accepted: {}",
        text(&output)
    );
}

/// Runs the npm package's validators over `documents`; the exit status and what it said.
fn validate_operator_resources(documents: &serde_json::Value) -> (bool, String) {
    let modules = tools().join("npm/node_modules");
    let mut child = Command::new("node")
        .arg(repo_file("tests/common/validate_operator_crds.mjs"))
        .arg(&modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let input = serde_json::to_vec(documents).expect("json");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input).expect("write");
    let output = child.wait_with_output().expect("node exits");
    (output.status.success(), text(&output))
}

#[test]
fn podmonitor_and_prometheus_rule_are_valid_for_the_operator() {
    require(on_path("node"), "node on PATH");
    let package = tools().join("npm/node_modules/@kubernetes-models/prometheus-operator");
    require(
        package.exists(),
        "@kubernetes-models/prometheus-operator (scripts/test.sh installs it)",
    );
    let podmonitor = yaml(&repo_file("deploy/kubernetes/podmonitor.yaml"));
    let rule = yaml(&repo_file(PROMETHEUS_RULE));
    let (ok, said) = validate_operator_resources(&serde_json::json!([podmonitor, rule]));
    assert!(ok, "{said}");
    assert!(
        said.contains("valid PodMonitor/oomwatch")
            && said.contains("valid PrometheusRule/oomwatch"),
        "{said}"
    );

    // The PodMonitor's port is one the DaemonSet's container names.
    let daemonset = yaml(&repo_file("deploy/kubernetes/daemonset.yaml"));
    let ports = &daemonset["spec"]["template"]["spec"]["containers"][0]["ports"];
    let port = &podmonitor["spec"]["podMetricsEndpoints"][0]["port"];
    assert!(
        ports
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| &p["name"] == port),
        "{port}"
    );
    assert_eq!(
        podmonitor["spec"]["selector"]["matchLabels"],
        daemonset["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .map(|name| serde_json::json!({"app.kubernetes.io/name": name}))
            .expect("pod label")
    );

    // The validator rejects what the operator would: a rule group without a name.
    let mut broken = rule.clone();
    broken["spec"]["groups"][0]
        .as_object_mut()
        .expect("group")
        .remove("name");
    let (ok, said) = validate_operator_resources(&serde_json::json!([broken]));
    assert!(!ok && said.contains("name"), "{said}");
}
