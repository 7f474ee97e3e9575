//! The D-Bus sources on a host without systemd or a system bus (the development host: no
//! /run/dbus/system_bus_socket): the `oomd` and `systemd` collectors report
//! `oomwatch_collector_success 0`, each says why in one log line that does not repeat at
//! every scrape, every other source is served as before, and the persisted systemd-oomd
//! kills are still served. What a real systemd shows is tests/vm.rs's part.

mod common;

use std::time::Duration;

use common::{eventually, require, sample, Exporter};

#[test]
fn without_a_system_bus_the_dbus_sources_say_not_available_once_and_the_rest_goes_on() {
    require(
        !std::path::Path::new("/run/dbus/system_bus_socket").exists()
            && std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_none(),
        "a host without a D-Bus system bus (this test shows the degrade path)",
    );
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    // A systemd-oomd kill persisted by an earlier run stays served.
    std::fs::write(
        state.join("state.json"),
        r#"{"version":1,"oomd":{"kills":[{"group":"web.service","kills":2,"last_kill_seconds":1700000000.0,"last_cgroup":"/system.slice/web.service","last_reason":"memory-pressure"}]}}"#,
    )
    .expect("seed state");
    let exporter = Exporter::start(&["--state.dir", state.to_str().expect("utf-8")]);
    let body = eventually(Duration::from_secs(10), || {
        let body = exporter.scrape();
        (sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "oomd")],
        ) == Some(0.0))
        .then_some(body)
    })
    .unwrap_or_else(|| panic!("no oomd collector at 0:\n{}", exporter.scrape()));
    assert_eq!(
        sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "systemd")]
        ),
        Some(0.0)
    );
    for other in ["vmstat", "meminfo", "processes", "cgroups"] {
        assert_eq!(
            sample(&body, "oomwatch_collector_success", &[("collector", other)]),
            Some(1.0),
            "{other} goes on"
        );
    }
    assert_eq!(
        sample(
            &body,
            "oomwatch_userspace_oom_kills_total",
            &[("killer", "systemd-oomd"), ("group", "web.service")]
        ),
        Some(2.0)
    );
    assert!(!body.contains("oomwatch_systemd_unit_result"));
    for _ in 0..3 {
        exporter.scrape();
    }
    let log = exporter.log();
    for said in [
        "collector=oomd error=\"systemd-oomd\\'s kills are not available: no D-Bus system bus at unix:path=/run/dbus/system_bus_socket",
        "collector=systemd error=\"systemd\\'s unit verdicts are not available: no D-Bus system bus at unix:path=/run/dbus/system_bus_socket",
    ] {
        assert_eq!(
            log.matches(said).count(),
            1,
            "one line saying {said:?}:\n{log}"
        );
    }
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("D-Bus"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(exporter.stop().success());
}
