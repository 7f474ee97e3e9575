//! `oomwatch drill`: tests the user's own OOM pipeline with a real, contained OOM kill. It
//! makes a scratch memory cgroup with a small limit under its own cgroup, starts a victim
//! in it (this binary, renamed `oomwatch-drill`) that allocates until the kernel's OOM
//! killer takes it, reports whether the kernel killed it, and with `--exporter.url`
//! whether that oomwatch counted it (over http or https, with basic auth: `drill_http`),
//! then names the alert rule of `alerts/oomwatch.rules.yml` the kill fires. The cgroup is
//! removed whatever happens. Without the right to make a cgroup, or when the exporter
//! cannot be asked before the kill, it refuses, saying what is missing, and makes no kill.
//! Exit 0 when every check passed, 1 when one failed, 2 when the drill could not run.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::drill_http::{Client, ClientFlags};
use crate::cli::DrillArgs;
use crate::scratch_cgroup::ScratchCgroup;

/// The victim's command name, as the kernel log and oomwatch's metrics show it.
pub const VICTIM_COMM: &str = "oomwatch-drill";

/// The victim: touches memory a MiB at a time until it is killed. It stops by itself at
/// `max_bytes` so that a cgroup that does not limit it cannot hurt the host.
pub fn victim(max_bytes: u64) -> u8 {
    let _ = rustix::thread::set_name(c"oomwatch-drill");
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    while total < max_bytes {
        held.push(vec![0x5a; 1 << 20]);
        total += 1 << 20;
    }
    eprintln!("oomwatch drill: the victim reached {max_bytes} bytes without being killed");
    3
}

/// Runs the drill as its flags say; returns the exit code.
pub fn run(args: &DrillArgs) -> u8 {
    let timeout =
        match crate::duration::parse_duration("--exporter.timeout", &args.exporter_timeout) {
            Ok(timeout) => timeout,
            Err(e) => {
                eprintln!("oomwatch drill: {e}");
                return 2;
            }
        };
    let flags = ClientFlags {
        config_file: args.http_config_file.clone(),
        ca_file: args.tls_ca_file.clone(),
        insecure_skip_verify: args.tls_insecure_skip_verify,
        username: args.basic_auth_username.clone(),
        password_file: args.basic_auth_password_file.clone(),
    };
    let client = match args
        .exporter_url
        .as_deref()
        .map(|url| Client::new(url, &flags))
    {
        None => None,
        Some(Ok(client)) => Some(client),
        Some(Err(e)) => {
            eprintln!("oomwatch drill: {e}");
            return 2;
        }
    };
    drill(args.limit_mib << 20, client.as_ref(), timeout)
}

/// The drill itself: the kill, then the exporter's count of it.
fn drill(limit_bytes: u64, exporter: Option<&Client>, timeout: Duration) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("oomwatch drill: cannot find this program to start the victim: {e}");
            return 2;
        }
    };
    // Asked before the kill: an exporter that cannot be reached gets no kill to miss.
    let before = match exporter.map(counted_kills).transpose() {
        Ok(before) => before,
        Err(e) => {
            eprintln!("oomwatch drill: --exporter.url: {e} (no kill was made)");
            return 2;
        }
    };
    let cgroup = match ScratchCgroup::create(
        &format!("oomwatch-drill-{}", std::process::id()),
        limit_bytes,
    ) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            eprintln!("oomwatch drill: cannot make a scratch memory cgroup: {e}");
            return 2;
        }
    };
    println!(
        "scratch cgroup {} with a {} MiB limit",
        cgroup.path(),
        limit_bytes >> 20
    );
    let max = (limit_bytes.saturating_mul(4)).to_string();
    let mut child = match cgroup.spawn(&exe, &["drill-victim", "--max-bytes", &max]) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("oomwatch drill: cannot start the victim: {e}");
            return 2;
        }
    };
    let pid = child.id();
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("oomwatch drill: waiting for the victim: {e}");
            return 2;
        }
    };
    let oom_kills = cgroup.oom_kills();
    drop(cgroup);
    let sigkill = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    match (sigkill, oom_kills) {
        (true, Some(n)) if n > 0 => {
            println!("ok: the kernel OOM-killed the victim {VICTIM_COMM} (pid {pid})")
        }
        // Kernels before 4.13 keep no per-cgroup count: SIGKILL is the evidence left.
        (true, None) => println!(
            "ok: the victim {VICTIM_COMM} (pid {pid}) was SIGKILLed (this kernel keeps no per-cgroup OOM kill count to confirm it)"
        ),
        _ => {
            println!(
                "FAILED: the victim (pid {pid}) ended with {status}; the cgroup's OOM kill count is {oom_kills:?}"
            );
            return 1;
        }
    }
    print_expected_alert();
    let (Some(client), Some(before)) = (exporter, before) else {
        return 0;
    };
    let url = client.url();
    let deadline = Instant::now() + timeout;
    loop {
        match counted_kills(client) {
            Ok(now) if now > before => {
                println!(
                    "ok: oomwatch at {url} counted it (oomwatch_oom_kills_total{{comm=\"{VICTIM_COMM}\"}} {before} -> {now})"
                );
                return 0;
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Ok(now) => {
                println!("FAILED: oomwatch at {url} did not count the kill within {timeout:?} (still {now})");
                return 1;
            }
            Err(e) => {
                println!("FAILED: {e}");
                return 1;
            }
        }
    }
}

/// The drill victim's kills counted by the exporter (summed over labels).
fn counted_kills(client: &Client) -> Result<f64, super::drill_http::ClientError> {
    let body = client.get()?;
    let victim = format!("comm=\"{VICTIM_COMM}\"");
    Ok(body
        .lines()
        .filter(|l| l.starts_with("oomwatch_oom_kills_total{"))
        .filter(|l| l.contains(&victim))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum())
}

/// The shipped alert rules, as built into this binary.
const RULES: &str = include_str!("../../alerts/oomwatch.rules.yml");

/// The alert that pages for the drill's kill (a memcg kill of a named victim), and the
/// host-level one it fires too, which deploy/alertmanager inhibits while the first fires.
const EXPECTED_ALERT: &str = "OOMProcessKilled";
const ALSO_FIRING: &str = "OOMKillOnHost";

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(default)]
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// An alerting rule of the shipped file by name: (expression on one line, severity).
fn shipped_rule(name: &str) -> Option<(String, String)> {
    let file: RuleFile = serde_norway::from_str(RULES).ok()?;
    let rule = file
        .groups
        .into_iter()
        .flat_map(|g| g.rules)
        .find(|r| r.alert.as_deref() == Some(name))?;
    let expr = rule.expr.split_whitespace().collect::<Vec<_>>().join(" ");
    let severity = rule.labels.get("severity").cloned().unwrap_or_default();
    Some((expr, severity))
}

fn print_expected_alert() {
    let Some((expr, severity)) = shipped_rule(EXPECTED_ALERT) else {
        return;
    };
    println!(
        "expect: with Prometheus loading alerts/oomwatch.rules.yml, {EXPECTED_ALERT} (severity {severity}) fires for comm=\"{VICTIM_COMM}\" at its next evaluation after a scrape, and stays for 30 minutes:"
    );
    println!("  {EXPECTED_ALERT}: {expr}");
    if let Some((expr, _)) = shipped_rule(ALSO_FIRING) {
        println!(
            "  {ALSO_FIRING}: {expr}   (also true; deploy/alertmanager/alertmanager.yml inhibits it while {EXPECTED_ALERT} fires)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_alerts_are_in_the_shipped_rules_and_watch_what_the_kill_moves() {
        let (expr, severity) = shipped_rule(EXPECTED_ALERT).expect("OOMProcessKilled shipped");
        assert!(
            expr.contains("oomwatch_oom_last_kill_timestamp_seconds"),
            "{expr}"
        );
        assert!(!severity.is_empty());
        let (expr, _) = shipped_rule(ALSO_FIRING).expect("OOMKillOnHost shipped");
        assert!(expr.contains("oomwatch_vmstat_oom_kills_total"), "{expr}");
    }
}
