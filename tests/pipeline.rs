//! The page, for real: oomwatch on the real /proc and /dev/kmsg, Prometheus (Debian
//! package, scraping and evaluating every 5 s, loading alerts/) and Alertmanager (Debian
//! package) sending to a webhook receiver run by this test, all on 127.0.0.1. A real OOM
//! kill in a scratch memory cgroup must arrive at the webhook as OOMProcessKilled with the
//! victim's comm and group within 60 s; an unexpected reboot, staged with a second
//! oomwatch on a fixture host whose state says its previous boot never stopped cleanly,
//! must arrive as UnexpectedReboot. Servers are stopped by PID and the cgroup removed even
//! when the test fails (both on drop). Needs root: fails, never skips, without it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::host::Host;
use common::servers::{alertmanager, prometheus, query, Webhook};
use common::{eventually, require, Exporter};
use oomwatch::scratch_cgroup::ScratchCgroup;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn find_alert<'a>(
    alerts: &'a [serde_json::Value],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| {
        a["labels"]["alertname"] == name
            && a["status"] == "firing"
            && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
    })
}

#[test]
fn a_real_oom_kill_and_an_unexpected_reboot_page_through_alertmanager() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let dir = tempfile::tempdir().expect("temp");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/oomwatch.rules.yml");

    // oomwatch on the live host.
    let live_state = dir.path().join("live-state");
    let live = Exporter::start(&["--state.dir", live_state.to_str().expect("utf-8")]);

    // A second oomwatch on a fixture host whose previous boot ended without a clean stop.
    let host = Host::new();
    let booted = now() - 60.0;
    host.boot("5c1e7a2b-9d3f-4e8a-b6c1-2f4d6e8a0b1c", booted);
    let rebooted_state = dir.path().join("rebooted-state");
    std::fs::create_dir_all(&rebooted_state).expect("state dir");
    std::fs::write(
        rebooted_state.join("state.json"),
        format!(
            r#"{{"version":1,"boot_id":"00000000-0000-4000-8000-00000000abcd",
               "boot":{{"boots_total":3,"boot_started_at":{},"last_heartbeat":{}}}}}"#,
            booted - 86_400.0,
            booted - 300.0
        ),
    )
    .expect("seed state");
    let rebooted = host.start(&rebooted_state);

    let webhook = Webhook::start();
    let am = alertmanager(dir.path(), webhook.addr);
    let prom = prometheus(dir.path(), &[live.addr, rebooted.addr], &rules, am.addr);
    eventually(Duration::from_secs(30), || {
        let up = query(prom.addr, "up{job=\"oomwatch\"} == 1");
        (up.len() == 2).then_some(())
    })
    .expect("Prometheus scrapes both exporters");

    // A real OOM kill, named after this run.
    let comm = format!("oompage{}", std::process::id() % 100_000);
    let program = dir.path().join(&comm);
    std::fs::copy("/usr/bin/tail", &program).expect("copy tail");
    let cgroup = ScratchCgroup::create(&format!("oomwatch-page-{}", std::process::id()), 64 << 20)
        .expect("scratch memory cgroup (root and a writable memory controller are required)");
    let killed_at = Instant::now();
    let mut child = cgroup.spawn(&program, &["/dev/zero"]).expect("hog starts");
    let status = child.wait().expect("hog ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    drop(cgroup);

    let page = eventually(Duration::from_secs(60), || {
        let alerts = webhook.alerts();
        find_alert(
            &alerts,
            "OOMProcessKilled",
            &[("comm", &comm), ("group", &comm)],
        )
        .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "no OOMProcessKilled for {comm} within 60 s; received: {:?}\nexporter log:\n{}",
            webhook.alerts(),
            live.log()
        )
    });
    assert!(killed_at.elapsed() < Duration::from_secs(60));
    assert_eq!(page["labels"]["severity"], "warning");
    let summary = page["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains(&comm), "{summary}");
    assert!(page["annotations"]["runbook_url"]
        .as_str()
        .unwrap_or_default()
        .ends_with("docs/runbook.md#oomprocesskilled"));

    let instance = rebooted.addr.to_string();
    let reboot = eventually(Duration::from_secs(60), || {
        let alerts = webhook.alerts();
        find_alert(&alerts, "UnexpectedReboot", &[("instance", &instance)]).cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "no UnexpectedReboot within 60 s; received: {:?}",
            webhook.alerts()
        )
    });
    assert_eq!(reboot["labels"]["cause"], "no_clean_shutdown");
    assert_eq!(reboot["labels"]["severity"], "critical");

    drop(prom);
    drop(am);
}
