//! The page, for real: oomwatch on the real /proc and /dev/kmsg, Prometheus (Debian
//! package, scraping and evaluating every 5 s, loading alerts/) and Alertmanager (Debian
//! package) sending to a webhook receiver run by this test, all on 127.0.0.1.
//!
//! - A real OOM kill in a scratch memory cgroup must arrive at the webhook as
//!   OOMProcessKilled for the victim's group within 60 s, naming the victim and the memory
//!   cgroup whose limit it hit.
//! - An unexpected reboot, staged with a second oomwatch on a fixture host whose state
//!   says its previous boot never stopped cleanly, must arrive as UnexpectedReboot.
//! - Then every query of the shipped dashboards, with its variables substituted, must
//!   return at least one series from this Prometheus. For that the test also stages what
//!   the panels look for: a watchdog-style restart of a configured service and a second
//!   (clean) reboot of the fixture host, each more than a minute after Prometheus first
//!   saw it (annotations compare with one minute before). The fixture host has a memory
//!   hog protected with oom_score_adj -1000 and cgroup limits (this sandbox can neither
//!   lower oom_score_adj nor has a limit on its own cgroup).
//! - Every dashboard variable (`label_values(selector, label)`) has values, and the group
//!   picker's selector matches a group that only has kills: the OOM victim's group, once
//!   its own series are gone (the live exporter keeps an empty automatic group's series for
//!   1 s, not 1 h).
//!
//! Servers are stopped by PID and the cgroup removed even when the test fails (on drop).
//! Needs root: fails, never skips, without it.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::dashboards::{dashboard_queries, dashboard_variables};
use common::host::Host;
use common::servers::{alertmanager, free_port, label_values, prometheus, query, Webhook};
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

/// A child killed and reaped on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper(dir: &Path, comm: &str) -> Process {
    let binary = common::named_program(dir, "/bin/sleep", comm);
    Process(Command::new(&binary).arg("600").spawn().expect("starts"))
}

#[test]
fn a_real_oom_kill_and_an_unexpected_reboot_page_and_every_dashboard_query_answers() {
    require(rustix::process::geteuid().is_root(), "running as root");
    let dir = tempfile::tempdir().expect("temp");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/oomwatch.rules.yml");
    let run = std::process::id() % 100_000;

    // oomwatch on the live host, with a configured service and a protected process.
    let svc_comm = format!("oomsvc{run}");
    let config = dir.path().join("oomwatch.yml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: pipeline-svc\n    comm: '^{svc_comm}$'\n"),
    )
    .expect("config");
    let mut svc = sleeper(dir.path(), &svc_comm);
    let live_state = dir.path().join("live-state");
    let live = Exporter::start(&[
        "--state.dir",
        live_state.to_str().expect("utf-8"),
        "--config.file",
        config.to_str().expect("utf-8"),
        "--restarts.min-age",
        "1s",
        // An empty automatic group keeps its series 1 s, so that the OOM victim's group soon
        // has kills only (the group picker must list it).
        "--groups.retention",
        "1s",
    ]);

    // A second oomwatch on a fixture host whose previous boot ended without a clean stop,
    // on a fixed port so that it can come back there after a second reboot.
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
    let fixed = free_port().to_string();
    let fixture_flags = [
        "--web.listen-address",
        fixed.as_str(),
        "--no-collector.kmsg",
    ];
    let rebooted = host.start_with(&rebooted_state, &fixture_flags);

    let webhook = Webhook::start();
    let am = alertmanager(dir.path(), webhook.addr);
    let fixed_addr = fixed.parse().expect("addr");
    let prom = prometheus(dir.path(), &[live.addr, fixed_addr], &rules, am.addr);
    eventually(Duration::from_secs(30), || {
        (query(prom.addr, "up{job=\"oomwatch\"} == 1").len() == 2).then_some(())
    })
    .expect("Prometheus scrapes both exporters");
    let first_scrape = Instant::now();

    // The unexpected reboot pages.
    let reboot = eventually(Duration::from_secs(60), || {
        find_alert(
            &webhook.alerts(),
            "UnexpectedReboot",
            &[("instance", &fixed)],
        )
        .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "no UnexpectedReboot within 60 s; received: {:?}",
            webhook.alerts()
        )
    });
    assert_eq!(reboot["labels"]["cause"], "no_clean_shutdown");
    assert_eq!(reboot["labels"]["severity"], "critical");

    // A minute of history, then a watchdog restart and a clean reboot of the fixture host.
    std::thread::sleep(Duration::from_secs(65).saturating_sub(first_scrape.elapsed()));
    drop(svc);
    std::thread::sleep(Duration::from_secs(6)); // a scrape sees it down
    svc = sleeper(dir.path(), &svc_comm);
    assert!(rebooted.stop().success());
    host.boot("5c1e7a2b-9d3f-4e8a-b6c1-000000000002", now() - 20.0);
    let _rebooted_again = host.start_with(&rebooted_state, &fixture_flags);

    // A real OOM kill, named after this run.
    let comm = format!("oompage{run}");
    let program = common::named_program(dir.path(), "/usr/bin/tail", &comm);
    let memcg = format!("oomwatch-page-{}", std::process::id());
    let cgroup = ScratchCgroup::create(&memcg, 64 << 20)
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
        find_alert(&webhook.alerts(), "OOMProcessKilled", &[("group", &comm)]).cloned()
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
    // One alert per group: the victim, its kill and the memory cgroup whose limit it hit are
    // in the text; the group has no process left.
    let description = page["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    for expected in [
        format!("killed processes of {comm} on"),
        "1 time(s) in the last 30 minutes".to_owned(),
        "By constraint: memcg 1".to_owned(),
        format!("Victims: {comm} (RSS at death"),
        format!("{memcg})."),
        format!("{comm} is not running now."),
    ] {
        assert!(
            description.contains(&expected),
            "{expected:?} in {description}"
        );
    }
    assert!(page["labels"]["comm"].is_null(), "{page}");
    assert!(page["annotations"]["runbook_url"]
        .as_str()
        .unwrap_or_default()
        .ends_with("docs/runbook.md#oomprocesskilled"));

    // Prometheus has seen the restart and the second boot.
    eventually(Duration::from_secs(30), || {
        let restarted = query(
            prom.addr,
            "oomwatch_group_restarts_total{group=\"pipeline-svc\"} >= 1",
        );
        let booted = query(
            prom.addr,
            &format!("oomwatch_boots_total{{instance=\"{fixed}\"}} >= 5"),
        );
        (!restarted.is_empty() && !booted.is_empty()).then_some(())
    })
    .expect("the restart and the reboot are scraped");

    // Every dashboard query answers.
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let empty: Vec<String> = queries
        .iter()
        .filter(|(_, _, expr)| query(prom.addr, expr).is_empty())
        .map(|(file, title, expr)| format!("{file} / {title}: {expr}"))
        .collect();
    assert!(
        empty.is_empty(),
        "dashboard queries with no series:\n{}",
        empty.join("\n")
    );

    // Every dashboard variable has values over the last hour, as Grafana asks for them.
    let variables = dashboard_variables();
    assert!(variables.len() >= 6, "{variables:?}");
    for (file, name, label, selector) in &variables {
        let values = label_values(prom.addr, label, selector, now() - 3600.0, now());
        assert!(!values.is_empty(), "{file}: variable {name}: {selector}");
    }
    // The group picker lists the OOM victim's group when only its kills remain. (The label
    // API answers from whole blocks, so an hour's range still holds its ended series: the
    // selector itself is asked, at this instant, once they are gone.)
    let gone = format!("oomwatch_group_processes{{group=\"{comm}\"}}");
    eventually(Duration::from_secs(30), || {
        query(prom.addr, &gone).is_empty().then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{comm}'s group series are still there: {:?}",
            query(prom.addr, &gone)
        )
    });
    for (file, _, label, selector) in variables.iter().filter(|v| v.1 == "group") {
        let values = label_values(prom.addr, label, selector, now() - 3600.0, now());
        assert!(values.contains(&comm), "{file}: {comm} not in {values:?}");
        let now_matched: Vec<String> = query(prom.addr, selector)
            .iter()
            .filter_map(|s| s["metric"][label.as_str()].as_str().map(str::to_owned))
            .collect();
        assert!(
            now_matched.contains(&comm),
            "{file}: the group picker's {selector} does not match {comm}, which has kills only: {now_matched:?}"
        );
    }
    drop(svc);
}
