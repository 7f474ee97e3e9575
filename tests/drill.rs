//! `oomwatch drill` as a user runs it: as root against a running oomwatch it makes a real,
//! contained OOM kill and reports that the kernel killed the victim, that oomwatch counted
//! it, and the alert rule the kill fires (as alerts/oomwatch.rules.yml writes it); against
//! an exporter serving TLS with basic auth (certificates made by rcgen), given by flags or
//! by a Prometheus HTTP client config file, the same; with wrong credentials or an
//! untrusted certificate it refuses before making any kill; as an unprivileged user it
//! refuses with a clear message and exit 2. Needs root: fails, never skips, without it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::tls::tls_basic_auth_web_config;
use common::{require, Exporter};

fn drill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oomwatch"))
        .arg("drill")
        .args(args)
        .output()
        .expect("runs")
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `OOMProcessKilled`'s expression in the shipped rules, on one line.
fn shipped_expr(alert: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/oomwatch.rules.yml"),
    )
    .expect("rules");
    let rules: serde_json::Value = serde_norway::from_str(&text).expect("yaml");
    let expr = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .find(|r| r["alert"] == alert)
        .and_then(|r| r["expr"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{alert} in the shipped rules"));
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A successful drill against `url`: killed, counted, and the alert named.
fn assert_counted(out: &Output, url: &str) {
    let text = shown(out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok: the kernel OOM-killed the victim oomwatch-drill"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok: oomwatch at {url} counted it")),
        "{text}"
    );
    let expected = format!("OOMProcessKilled: {}", shipped_expr("OOMProcessKilled"));
    assert!(text.contains(&expected), "{expected} in:\n{text}");
}

#[test]
fn the_drill_makes_a_real_kill_that_oomwatch_counts() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let state = tempfile::tempdir().expect("temp");
    let exporter = Exporter::start(&["--state.dir", state.path().to_str().expect("utf-8")]);
    let url = format!("http://{}/metrics", exporter.addr);
    let out = drill(&["--exporter.url", &url, "--exporter.timeout", "20s"]);
    assert_counted(&out, &url);
    // The scratch cgroup is gone.
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    assert!(!own.contains("oomwatch-drill"));
    assert!(exporter.stop().success());
}

#[test]
fn the_drill_reaches_an_exporter_behind_tls_and_basic_auth() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let dir = tempfile::tempdir().expect("temp");
    let web_config = tls_basic_auth_web_config(dir.path(), "prometheus", "drill-secret");
    std::fs::write(dir.path().join("password"), "drill-secret\n").expect("write");
    std::fs::write(dir.path().join("wrong"), "guess\n").expect("write");
    let state = dir.path().join("state");
    let exporter = Exporter::start(&[
        "--web.config.file",
        web_config.to_str().expect("utf-8"),
        "--state.dir",
        state.to_str().expect("utf-8"),
    ]);
    let url = format!("https://{}/metrics", exporter.addr);
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();
    let (ca, password, wrong) = (path("ca.crt"), path("password"), path("wrong"));

    // Refusals come before any kill: nothing is made that no one could count.
    let refusals: [(&str, Vec<&str>, &str); 3] = [
        (
            "a wrong password",
            vec![
                "--exporter.tls.ca-file",
                &ca,
                "--exporter.basic-auth.username",
                "prometheus",
                "--exporter.basic-auth.password-file",
                &wrong,
            ],
            "401",
        ),
        ("no credentials", vec!["--exporter.tls.ca-file", &ca], "401"),
        (
            "a certificate the system's CAs do not trust",
            vec![
                "--exporter.basic-auth.username",
                "prometheus",
                "--exporter.basic-auth.password-file",
                &password,
            ],
            "certificate",
        ),
    ];
    for (what, flags, says) in refusals {
        let mut args = vec!["--exporter.url", url.as_str()];
        args.extend(flags);
        let out = drill(&args);
        let text = shown(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {text}");
        assert!(text.contains(says), "{what}: {says} in {text}");
        assert!(text.contains("no kill was made"), "{what}: {text}");
        assert!(!text.contains("scratch cgroup"), "{what}: {text}");
    }

    // Flags: the CA file and basic auth.
    let out = drill(&[
        "--exporter.url",
        &url,
        "--exporter.tls.ca-file",
        &ca,
        "--exporter.basic-auth.username",
        "prometheus",
        "--exporter.basic-auth.password-file",
        &password,
        "--exporter.timeout",
        "20s",
    ]);
    assert_counted(&out, &url);

    // A Prometheus HTTP client config file; insecure_skip_verify instead of the CA.
    let client_config = dir.path().join("http.yml");
    std::fs::write(
        &client_config,
        "basic_auth:\n  username: prometheus\n  password_file: password\n\
         tls_config:\n  insecure_skip_verify: true\n",
    )
    .expect("write");
    let out = drill(&[
        "--exporter.url",
        &url,
        "--exporter.http-config.file",
        client_config.to_str().expect("utf-8"),
        "--exporter.timeout",
        "20s",
    ]);
    assert_counted(&out, &url);
    assert!(exporter.stop().success());
}

#[test]
fn without_the_right_to_make_a_cgroup_the_drill_refuses() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (to drop to nobody)",
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_oomwatch"))
        .arg("drill")
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(out.status.code(), Some(2), "{:?}", out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot make a scratch memory cgroup"),
        "{stderr}"
    );
    assert!(
        stderr.contains("needs root or a delegated cgroup subtree"),
        "{stderr}"
    );
}
