//! The VM bench: what only a real systemd host shows, on Debian guests booted by QEMU
//! (scripts/vm.sh, tests/common/vm.rs) and watched by a real Prometheus on this host that
//! scrapes them through their forwarded ports with deploy/prometheus/fleet.yml's file
//! discovery and relabelling, and evaluates alerts/.
//!
//! One test runs the fleet, because one Prometheus watches both guests and the dashboards
//! are checked per instance: a Debian 12 guest (systemd 252, kernel 6.1, wtmp) and a
//! Debian 13 guest (systemd 257, kernel 6.12, wtmpdb) run their programs at the same
//! time, a thread each. Each guest serves several checks where that keeps them honest:
//! one boot serves the package and the OOM kills; the reboots chain on one disk. On each:
//!
//! 1. The package built from this tree installs offline with apt; the hardened unit runs
//!    as the package's system user in a dynamic user's sandbox, with only its two
//!    capabilities, a system-call filter and a read-only system, and every collector
//!    (the D-Bus ones included) reports success; `systemctl stop` leaves the clean-stop
//!    marker; Prometheus scrapes it as its own `instance`.
//! 2. cgroup v2 OOM kills named by unit (Debian 12: a `systemd-run -p MemoryMax=` unit, a
//!    `.service` with `Restart=on-failure`, a memory.oom.group unit of several processes;
//!    Debian 13: the restarted service): named by the unit, counted once each, matching
//!    the kernel's own counts (vmstat, the slice's and the unit's memory.events, the
//!    `Killed process` lines) and systemd's verdicts; the exit reason, the restart,
//!    `oomwatch why` and the incident page say so.
//!    Then, before the kill (issue 21), on Debian 13 after the clean stop: a unit throttled
//!    at its `MemoryHigh=` (its `high` events, memory.high and pressure, the incident
//!    page's limits, ServiceThrottledAtMemoryHigh firing in Prometheus with `for:` cut to
//!    30 s), a unit at its `MemoryMax=` (`max`, `oom`, `oom_kill` as its memory.events
//!    says), a systemd-oomd kill received live over D-Bus with journald not forwarding to
//!    the kernel log (the group, the reason, the event log, `oomwatch why`), systemd's
//!    `Result` and `NRestarts` as `systemctl show` says, the ten largest processes by RSS;
//!    on Debian 12, a unit throttled for a few scrapes, so that the pre-OOM panels have
//!    data for both guests.
//! 3. Reboots for real, in a chain on one disk: a clean `systemctl reboot`; a power cut
//!    (QEMU killed, the same disk booted again) with its downtime; a kernel panic
//!    (sysrq, `panic=1`, ramoops in reserved guest memory kept across QEMU's reset); a
//!    clean reboot again (the panic's archived record must not count twice). Each verdict
//!    comes with the evidence of the release's own files (wtmp on 12, wtmpdb on 13, pstore
//!    for the panic), and UnexpectedReboot and HostRebooted fire and resolve in Prometheus.
//! 4. Every dashboard query returns data for each guest; then `apt-get purge` leaves
//!    nothing behind.
//!
//! What each step took is printed as it goes (and kept in
//! `<target>/test-artifacts/vm/timings.txt`, with each guest's console log).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::dashboards::dashboard_queries;
use common::deploy::{build_deb, repo_file};
use common::servers::{self, query, url_encode, Server};
use common::vm::{self, note, timed, unix_now, Guest};
use common::{eventually, request, sample};

/// How the hog units grow: the restarted service lives longer than `--restarts.min-age`
/// (30 s) before it grows, as a service that runs a while and then leaks does.
const HOG_SERVICE: &str = "[Unit]
Description=A service that outgrows its memory limit once, after a while
[Service]
Slice=hogs.slice
MemoryMax=48M
Restart=on-failure
RestartSec=1s
ExecStart=/bin/sh -c 'if [ -e /run/hog.grew ]; then exec sleep infinity; fi; touch /run/hog.grew; sleep 40; exec tail /dev/zero'
";

/// OOMPolicy=kill is systemd's memory.oom.group=1: the kernel kills the unit's
/// processes together.
const HOG_GROUP_SERVICE: &str = "[Unit]
Description=Several processes killed together (memory.oom.group)
[Service]
Slice=hogs.slice
MemoryMax=64M
OOMPolicy=kill
ExecStart=/bin/sh -c 'sleep infinity & sleep infinity & sleep 2; tail /dev/zero; wait'
";

/// An allocator that keeps a working set above its unit's `MemoryHigh=`: it holds 32 MiB and
/// makes a new 32 MiB string at every turn (mawk frees the old one), so every turn charges
/// its cgroup past memory.high and the kernel throttles it. Nothing is killed at
/// memory.high, so it runs until stopped. Installed as /usr/local/bin/squeeze.
const SQUEEZE: &str = "#!/bin/sh
exec awk 'BEGIN { s = \"x\"; for (i = 0; i < 25; i++) s = s s; while (1) t = s \"y\" }'
";

/// Writes /usr/local/bin/squeeze.
fn install_squeeze(guest: &Guest) {
    guest.sh(&format!(
        "cat > /usr/local/bin/squeeze <<'EOF'\n{SQUEEZE}EOF\nchmod 755 /usr/local/bin/squeeze"
    ));
}

/// The slice systemd-oomd watches, with a low pressure limit: a unit squeezed in it is
/// killed within seconds (with `DefaultMemoryPressureDurationSec=2s` in oomd.conf.d).
const PRESSURE_SLICE: &str = "[Unit]
Description=A slice systemd-oomd kills in when its memory pressure passes 10%
[Slice]
ManagedOOMMemoryPressure=kill
ManagedOOMMemoryPressureLimit=10%
";

/// The collectors the unit runs (the defaults): each must succeed on a real host.
fn collectors() -> Vec<&'static str> {
    oomwatch::collector::COLLECTORS
        .iter()
        .filter(|c| c.enabled_by_default)
        .map(|c| c.name)
        .collect()
}

/// One guest of the fleet: its release and what its files say about reboots.
struct Host {
    release: &'static str,
    name: &'static str,
    /// The file the reboot verdicts must come from (`wtmp` or `wtmpdb`).
    login_records: &'static str,
    /// The full OOM program (Debian 12), or only the restarted service.
    all_oom_kills: bool,
    /// The signals before the kill (issue 21): memory.high throttling with its alert, a
    /// unit at its MemoryMax, a systemd-oomd kill, systemd's verdicts. On one guest only;
    /// the other runs a throttled unit for a while, so that every dashboard query has data
    /// for it too.
    pre_oom: bool,
}

const HOSTS: [Host; 2] = [
    Host {
        release: "bookworm",
        name: "debian12",
        login_records: "wtmp",
        all_oom_kills: true,
        pre_oom: false,
    },
    Host {
        release: "trixie",
        name: "debian13",
        login_records: "wtmpdb",
        all_oom_kills: false,
        pre_oom: true,
    },
];

#[test]
fn debian_hosts_run_the_package_oom_kills_reboots_and_dashboards() {
    vm::require_prerequisites();
    let started = Instant::now();
    let out = tempfile::tempdir().expect("temp");
    let deb = timed("package built (cargo deb)", || build_deb(out.path()));
    // Both images at once: each build takes its own lock and mirror downloads overlap.
    std::thread::scope(|s| {
        for host in &HOSTS {
            s.spawn(move || vm::image(host.release));
        }
    });

    let addresses: Vec<SocketAddr> = HOSTS.iter().map(|_| vm::exporter_address()).collect();
    let prom_dir = tempfile::tempdir().expect("temp");
    let prometheus = fleet_prometheus(prom_dir.path(), &addresses);
    let fleet_started = unix_now();

    let guests: Vec<std::thread::Result<(Guest, Vec<String>)>> = std::thread::scope(|s| {
        let threads: Vec<_> = HOSTS
            .iter()
            .zip(&addresses)
            .map(|(host, &address)| {
                let deb = deb.as_path();
                let prometheus = &prometheus;
                s.spawn(move || run_host(host, address, deb, prometheus))
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    let mut alive = Vec::new();
    for (host, result) in HOSTS.iter().zip(guests) {
        match result {
            Ok(guest) => alive.push(guest),
            Err(panic) => {
                note(&format!("{}: FAILED (its error is above)", host.name));
                std::panic::resume_unwind(panic);
            }
        }
    }

    timed(
        "fleet: every dashboard query answers for each guest",
        || dashboards_answer_per_instance(prometheus.addr, fleet_started, &addresses),
    );
    std::thread::scope(|s| {
        for (guest, files) in &alive {
            s.spawn(move || timed(&format!("{}: purge", guest.name), || purge(guest, files)));
        }
    });
    note(&format!(
        "whole VM suite: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// One guest's program; returns the guest, alive with the package installed, and the
/// files the package installed.
fn run_host(
    host: &Host,
    address: SocketAddr,
    deb: &Path,
    prometheus: &Server,
) -> (Guest, Vec<String>) {
    let guest = Guest::boot(host.release, host.name, address);
    let files = timed(&format!("{}: package and unit", host.name), || {
        package_and_unit(&guest, deb, prometheus)
    });

    timed(&format!("{}: OOM kills named by unit", host.name), || {
        oom_kills(&guest, host.all_oom_kills)
    });
    if !host.pre_oom {
        timed(
            &format!("{}: a unit throttled at memory.high", host.name),
            || throttled_briefly(&guest),
        );
    }
    timed(&format!("{}: clean stop marker", host.name), || {
        clean_stop(&guest)
    });
    if host.pre_oom {
        timed(
            &format!("{}: before the kill, and systemd-oomd", host.name),
            || pre_oom(&guest, prometheus),
        );
        timed(&format!("{}: forged userspace kills", host.name), || {
            forged_userspace_kills(&guest)
        });
    }
    timed(&format!("{}: reboots", host.name), || {
        reboots(&guest, host, prometheus)
    });
    (guest, files)
}

/// While the test scrapes `scrapes` times a second apart: how many times the state file
/// was written (`oomwatch_state_writes_total`) and how far throttled.service's `high`
/// count moved. Nothing else is run in the guest meanwhile.
fn state_writes_during_scrapes(guest: &Guest, scrapes: u32) -> (f64, f64) {
    let read = |body: &str| {
        let writes = sample(body, "oomwatch_state_writes_total", &[]).expect("the writes counter");
        let high = sample(
            body,
            "oomwatch_group_memory_events_total",
            &[("group", "throttled.service"), ("event", "high")],
        )
        .unwrap_or(0.0);
        (writes, high)
    };
    let first = read(&guest.try_scrape().expect("a scrape"));
    let mut last = first;
    for _ in 0..scrapes {
        std::thread::sleep(Duration::from_secs(1));
        last = read(&guest.try_scrape().expect("a scrape"));
    }
    (last.0 - first.0, last.1 - first.1)
}

/// `oomwatch_userspace_oom_kills_rejected_total` for `killer` from `source`, 0 if absent.
fn rejected(body: &str, killer: &str, source: &str) -> f64 {
    sample(
        body,
        "oomwatch_userspace_oom_kills_rejected_total",
        &[("killer", killer), ("source", source)],
    )
    .unwrap_or(0.0)
}

/// Userspace kills forged as `nobody`, for real, while systemd-oomd runs:
/// - a `Killed` signal on systemd-oomd's interface and path, broadcast (the bus drops it)
///   and addressed to oomwatch's own connection (`busctl emit`, delivered whatever the
///   match rules: rejected, source dbus): no kill, no event;
/// - with journald forwarding to the kernel log (`ForwardToKMsg=yes`), earlyoom's kill
///   line logged under earlyoom's name by `logger` and by a process of nobody that stays
///   alive: rejected (source kmsg), no kill;
/// - the same line from a service named earlyoom.service running as a DynamicUser (not
///   root, as the real earlyoom's unit runs), its program named earlyoom: a userspace
///   kill.
fn forged_userspace_kills(guest: &Guest) {
    let as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups";
    let before = scrape_until(guest, "the exporter", |_| true);
    guest.sh("systemctl start systemd-oomd.service");
    let ours = guest.sh(
        "busctl --system list --unique --no-legend --no-pager | awk '$3 == \"oomwatch\" {print $1}'",
    );
    let ours = ours.trim();
    assert!(ours.starts_with(':'), "oomwatch's bus connection: {ours:?}");
    let emit = "emit /org/freedesktop/oom1 org.freedesktop.oom1.Manager Killed ss";
    guest.sh(&format!(
        "{as_nobody} busctl --system {emit} /system.slice/forged.service memory-pressure
{as_nobody} busctl --system --destination={ours} {emit} /system.slice/forged.service memory-used"
    ));
    // The bus itself drops the broadcast (the match rule names systemd-oomd's name as the
    // sender); the signal addressed to oomwatch's connection passes any match rule and
    // reaches oomwatch, which rejects it.
    let body = scrape_until(guest, "the forged Killed signal rejected", |body| {
        rejected(body, "systemd-oomd", "dbus") - rejected(&before, "systemd-oomd", "dbus") >= 1.0
    });
    let seen = rejected(&body, "systemd-oomd", "dbus") - rejected(&before, "systemd-oomd", "dbus");
    note(&format!(
        "{}: Killed signals sent by nobody: the broadcast dropped by the bus, the one to oomwatch's {ours} rejected by oomwatch (rejected: {seen})",
        guest.name
    ));
    assert_eq!(seen, 1.0, "the broadcast never reaches oomwatch");
    assert!(series(&body, "oomwatch_userspace_oom_kills_total")
        .iter()
        .all(|(labels, _)| !labels.contains("forged")));
    let events = guest.get("/api/v1/events?type=userspace_kill").body;
    assert!(!events.contains("forged"), "{events}");

    // The kernel log, as journald forwards to it.
    guest.sh(
        "mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nForwardToKMsg=yes\nMaxLevelKMsg=debug\n' > /etc/systemd/journald.conf.d/bench-kmsg.conf
systemctl restart systemd-journald",
    );
    let line = |victim: u32, comm: &str| {
        format!("sending SIGTERM to process {victim} uid 1000 \\\"{comm}\\\": badness 900, VmRSS 2048 MiB")
    };
    guest.sh(&format!(
        "{as_nobody} logger -t earlyoom \"{}\"
setsid {as_nobody} systemd-cat -t earlyoom sh -c 'echo \"{}\"; sleep 20' </dev/null >/dev/null 2>&1 &",
        line(4242, "forgedvictim"),
        line(4243, "forgedvictim")
    ));
    scrape_until(guest, "two forged earlyoom lines rejected", |body| {
        rejected(body, "earlyoom", "kmsg") - rejected(&before, "earlyoom", "kmsg") >= 2.0
    });
    let forwarded = guest.sh("dmesg | grep 'earlyoom\\[' | tail -n 3");
    note(&format!(
        "{}: earlyoom's line logged by nobody, forwarded by journald:\n{}",
        guest.name,
        forwarded.trim_end()
    ));
    guest.sh(&format!(
        "ln -sf /bin/sh /usr/local/bin/earlyoom
systemd-run --quiet --unit=earlyoom -p DynamicUser=yes -p SyslogIdentifier=earlyoom /usr/local/bin/earlyoom -c 'echo \"{}\"; sleep 30'",
        line(4244, "realvictim")
    ));
    let body = scrape_until(guest, "earlyoom.service's kill counted", |body| {
        sample(
            body,
            "oomwatch_userspace_oom_kills_total",
            &[("killer", "earlyoom"), ("group", "realvictim")],
        ) == Some(1.0)
    });
    assert_eq!(
        rejected(&body, "earlyoom", "kmsg") - rejected(&before, "earlyoom", "kmsg"),
        2.0,
        "only nobody's lines are rejected"
    );
    assert!(series(&body, "oomwatch_userspace_oom_kills_total")
        .iter()
        .all(|(labels, _)| !labels.contains("forgedvictim")));
    note(&format!(
        "{}: the same line from earlyoom.service (DynamicUser) counted as a userspace kill",
        guest.name
    ));
    guest.sh(
        "systemctl stop earlyoom.service 2>/dev/null; rm /etc/systemd/journald.conf.d/bench-kmsg.conf
systemctl restart systemd-journald",
    );
}

/// Prometheus configured as deploy/prometheus/fleet.yml says, with this test's paths and
/// short intervals, the rules from alerts/, and one file_sd target list naming `targets`.
fn fleet_prometheus(dir: &Path, targets: &[SocketAddr]) -> Server {
    let mut config =
        std::fs::read_to_string(repo_file("deploy/prometheus/fleet.yml")).expect("fleet.yml");
    let sd_dir = dir.join("targets");
    std::fs::create_dir_all(&sd_dir).expect("sd dir");
    let listed: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    std::fs::write(
        sd_dir.join("vm.yml"),
        format!(
            "- targets: [{}]\n  labels: {{env: vm}}\n",
            listed.join(", ")
        ),
    )
    .expect("targets file");
    for (from, to) in [
        ("scrape_interval: 30s", "scrape_interval: 5s".to_owned()),
        (
            "evaluation_interval: 30s",
            "evaluation_interval: 5s".to_owned(),
        ),
        ("scrape_timeout: 20s", "scrape_timeout: 4s".to_owned()),
        ("refresh_interval: 5m", "refresh_interval: 5s".to_owned()),
        (
            "/etc/prometheus/oomwatch/*.yml",
            format!("{}/*.yml", sd_dir.display()),
        ),
        (
            "/etc/prometheus/rules/oomwatch*.rules.yml",
            format!("{}/oomwatch*.rules.yml", test_rules(dir).display()),
        ),
    ] {
        assert!(
            config.contains(from),
            "deploy/prometheus/fleet.yml no longer says {from}"
        );
        config = config.replace(from, &to);
    }
    servers::prometheus_with_config(dir, &config)
}

/// alerts/ as shipped, but for the one wait the bench cannot afford: ServiceThrottledAtMemoryHigh
/// fires after 30 s of throttling instead of 10 minutes (its expression and everything
/// else unchanged; promtool tests the real duration).
fn test_rules(dir: &Path) -> std::path::PathBuf {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    let shipped = std::fs::read_to_string(repo_file("alerts/oomwatch.rules.yml")).expect("rules");
    let from = "      - alert: ServiceThrottledAtMemoryHigh\n        expr: rate(oomwatch_group_memory_events_total{event=\"high\"}[5m]) > 0\n        for: 10m\n";
    assert!(
        shipped.contains(from),
        "ServiceThrottledAtMemoryHigh is no longer as the bench expects"
    );
    let to = from.replace("for: 10m", "for: 30s");
    std::fs::write(
        rules_dir.join("oomwatch.rules.yml"),
        shipped.replace(from, &to),
    )
    .expect("rules copy");
    rules_dir
}

/// The instance label the fleet's relabelling gives a guest: its address without the port.
fn instance(guest: &Guest) -> String {
    guest.exporter.ip().to_string()
}

/// A scrape in which the exporter is up with every source read; waits for it.
fn scrape_ready(guest: &Guest) -> String {
    eventually(Duration::from_secs(120), || {
        let body = guest.try_scrape()?;
        let ready = sample(&body, "oomwatch_kmsg_up", &[]) == Some(1.0)
            && collectors().iter().all(|c| {
                sample(&body, "oomwatch_collector_success", &[("collector", c)]) == Some(1.0)
            });
        ready.then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "{}: the exporter never served with every collector at 1; last scrape:\n{}\nunit log:\n{}",
            guest.name,
            guest.try_scrape().unwrap_or_default(),
            String::from_utf8_lossy(
                &guest
                    .try_sh("journalctl -u oomwatch -b --no-pager | tail -n 40")
                    .stdout
            )
        )
    })
}

/// Polls the guest's exporter until `check` accepts a scrape.
fn scrape_until(guest: &Guest, what: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(Duration::from_secs(120), || {
        guest.try_scrape().filter(|body| check(body))
    })
    .unwrap_or_else(|| {
        panic!(
            "{}: {what} never showed; last scrape:\n{}",
            guest.name,
            guest.try_scrape().unwrap_or_default()
        )
    })
}

/// Every `name{...} value` sample: the label text and the value.
fn series(body: &str, name: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').unwrap_or((series, "}"));
            (metric == name).then(|| {
                (
                    labels.trim_end_matches('}').to_owned(),
                    value.parse().unwrap_or(f64::NAN),
                )
            })
        })
        .collect()
}

/// The value of a label in a label text (`a="b",c="d"`).
fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &labels[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn guest_number(guest: &Guest, script: &str) -> f64 {
    let text = guest.sh(script);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: `{script}` printed {text:?}", guest.name))
}

/// Step 1: the package, installed offline; the unit's sandbox as it runs; every source
/// read; Prometheus scraping it as its own instance. Returns the package's files.
fn package_and_unit(guest: &Guest, deb: &Path, prometheus: &Server) -> Vec<String> {
    guest.put(deb, "/root/oomwatch.deb");
    // The guest has no network: apt must find every dependency installed already.
    let install =
        guest.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y /root/oomwatch.deb 2>&1");
    assert!(install.contains("Setting up oomwatch"), "{install}");
    let files: Vec<String> = guest
        .sh("dpkg -L oomwatch | while read -r f; do if [ -f \"$f\" ]; then echo \"$f\"; fi; done")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(files.iter().any(|f| f == "/usr/bin/oomwatch"), "{files:?}");
    assert_eq!(
        guest.sh("systemctl is-enabled oomwatch; systemctl is-active oomwatch"),
        "enabled\nactive\n"
    );

    // The sandbox, as the kernel applies it to the running process.
    let pid = guest
        .sh("systemctl show -p MainPID --value oomwatch")
        .trim()
        .to_owned();
    let status = guest.sh(&format!("cat /proc/{pid}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{name} not in {status}"))
    };
    // The static system user the package made (dbus-daemon refuses dynamic users), in the
    // unit's dynamic-user sandbox: a system uid, not one of systemd's dynamic range.
    let uid: u32 = field("Uid").parse().expect("uid");
    let passwd = guest.sh("getent passwd oomwatch");
    assert_eq!(
        passwd.split(':').nth(2).and_then(|u| u.parse().ok()),
        Some(uid),
        "the unit runs as the package's user oomwatch: {passwd}"
    );
    assert!(
        uid < 1000 && !(61184..=65519).contains(&uid),
        "a system uid, not a dynamic one: {uid}"
    );
    // CAP_NET_ADMIN (12) and CAP_SYSLOG (34), no other.
    let caps = format!("{:016x}", (1u64 << 12) | (1u64 << 34));
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), caps, "{set}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "a system-call filter");
    // ProtectSystem=strict: the whole tree read-only but the state directory.
    let mounts = guest.sh(&format!("awk '{{print $5, $6}}' /proc/{pid}/mountinfo"));
    let options = |point: &str| {
        mounts
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("{point} ")))
            .unwrap_or_else(|| panic!("{point} not mounted in the unit:\n{mounts}"))
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(options("/"), "ro", "{mounts}");
    assert_eq!(options("/var/lib/private/oomwatch"), "rw", "{mounts}");
    assert_eq!(
        options("/var/lib/systemd/pstore"),
        "ro",
        "the pstore copies"
    );

    let body = scrape_ready(guest);
    assert_eq!(sample(&body, "oomwatch_exit_events_up", &[]), Some(1.0));
    assert_eq!(sample(&body, "oomwatch_boots_total", &[]), Some(1.0));
    let reported: BTreeSet<String> = series(&body, "oomwatch_collector_success")
        .iter()
        .filter_map(|(labels, _)| label(labels, "collector"))
        .collect();
    assert_eq!(
        reported,
        collectors().iter().map(|c| c.to_string()).collect(),
        "every collector reports (and each is 1, checked above)"
    );
    let cgroup = guest.sh(&format!("cat /proc/{pid}/cgroup"));
    assert_eq!(cgroup.trim(), "0::/system.slice/oomwatch.service");
    // The group has series once its instance lived --groups.min-age (30 s).
    let body = scrape_until(guest, "the oomwatch.service group", |body| {
        sample(
            body,
            "oomwatch_group_processes",
            &[("group", "oomwatch.service")],
        ) == Some(1.0)
    });
    assert!(
        sample(
            &body,
            "oomwatch_group_memory_limit_bytes",
            &[("group", "oomwatch.service")]
        ) == Some(256.0 * 1024.0 * 1024.0),
        "the unit's own MemoryMax=256M read from cgroup v2"
    );

    // Prometheus found it through file discovery, under the relabelled instance.
    let instance = instance(guest);
    eventually(Duration::from_secs(60), || {
        let up = query(
            prometheus.addr,
            &format!("up{{job=\"oomwatch\",instance=\"{instance}\",env=\"vm\"}} == 1"),
        );
        (!up.is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("Prometheus does not scrape {instance}"));
    files
}

/// The hog units, a reload, and the slice they share.
fn install_hogs(guest: &Guest) {
    guest.sh(&format!(
        "cat > /etc/systemd/system/hog.service <<'EOF'\n{HOG_SERVICE}EOF\ncat > /etc/systemd/system/hog-group.service <<'EOF'\n{HOG_GROUP_SERVICE}EOF\nsystemctl daemon-reload"
    ));
}

/// Step 2: OOM kills in memory cgroups that systemd made, named by unit.
fn oom_kills(guest: &Guest, all: bool) {
    install_hogs(guest);
    guest.sh("systemctl start hog.service");
    let hog_started = Instant::now();
    if all {
        // A transient unit whose main process lives on (OOMPolicy=continue), so its
        // cgroup and memory.events stay to be compared.
        guest.sh("systemd-run --quiet --unit=hog-run --slice=hogs.slice -p MemoryMax=32M -p OOMPolicy=continue /bin/sh -c 'tail /dev/zero; exec sleep infinity'");
        eventually(Duration::from_secs(60), || {
            let events = guest.sh("cat /sys/fs/cgroup/hogs.slice/hog-run.service/memory.events");
            events.lines().any(|l| l == "oom_kill 1").then_some(())
        })
        .expect("hog-run.service is OOM-killed");
        guest.sh("systemctl start hog-group.service");
        eventually(Duration::from_secs(60), || {
            (guest.sh("systemctl show -p Result --value hog-group") == "oom-kill\n").then_some(())
        })
        .expect("systemd says hog-group.service ended by an OOM kill");
    }
    // The restarted service: killed after 40 s, back 1 s later.
    eventually(Duration::from_secs(150), || {
        (guest.sh("systemctl show -p NRestarts --value hog") == "1\n").then_some(())
    })
    .unwrap_or_else(|| panic!("hog.service was not restarted by systemd"));
    note(&format!(
        "{}: hog.service killed and restarted after {:.1} s",
        guest.name,
        hog_started.elapsed().as_secs_f64()
    ));

    // The kernel's own account: every `Killed process` line, the victims (distinct
    // pids), vmstat, the slice's memory.events (hierarchical: every kill was in it).
    let dmesg = guest.sh("dmesg");
    let mut killed: BTreeMap<u32, String> = BTreeMap::new();
    let mut kill_lines = 0;
    for line in dmesg.lines() {
        if let Some(rest) = line.split("Killed process ").nth(1) {
            let (pid, rest) = rest.split_once(" (").expect("pid (comm)");
            let comm = rest.split_once(')').expect("comm)").0;
            killed.insert(pid.parse().expect("pid"), comm.to_owned());
            kill_lines += 1;
        }
    }
    let vmstat = guest_number(guest, "awk '$1 == \"oom_kill\" {print $2}' /proc/vmstat");
    let slice = guest_number(
        guest,
        "awk '$1 == \"oom_kill\" {print $2}' /sys/fs/cgroup/hogs.slice/memory.events",
    );
    assert_eq!(
        vmstat, kill_lines as f64,
        "vmstat counts each Killed process line"
    );
    assert_eq!(slice, vmstat, "all kills happened in hogs.slice");
    let expected_victims = if all { 1 + 1 + 2 } else { 1 };
    assert!(
        killed.len() >= expected_victims,
        "victims {killed:?}\n{dmesg}"
    );

    let body = scrape_until(guest, "every kill, the exits and the restart", |body| {
        let kills: f64 = series(body, "oomwatch_oom_kills_total")
            .iter()
            .map(|(_, v)| v)
            .sum();
        kills == killed.len() as f64
            && sample(
                body,
                "oomwatch_group_restarts_total",
                &[("group", "hog.service")],
            ) == Some(1.0)
            && sample(
                body,
                "oomwatch_group_exits_total",
                &[("group", "hog.service"), ("reason", "oom_killed")],
            ) == Some(1.0)
    });
    // Each victim once, named by its unit, never by its command.
    let named: Vec<(String, f64)> = series(&body, "oomwatch_oom_kills_total");
    let mut per_group: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, value) in &named {
        assert_eq!(
            label(labels, "constraint").as_deref(),
            Some("memcg"),
            "{labels}"
        );
        *per_group
            .entry(label(labels, "group").expect("group"))
            .or_default() += value;
    }
    let mut expected = BTreeMap::from([("hog.service".to_owned(), 1.0)]);
    if all {
        expected.insert("hog-run.service".to_owned(), 1.0);
        expected.insert("hog-group.service".to_owned(), (killed.len() - 2) as f64);
    }
    assert_eq!(
        per_group, expected,
        "kills by group: {named:?}\nvictims {killed:?}"
    );
    assert_eq!(
        sample(
            &body,
            "oomwatch_oom_kills_total",
            &[("group", "hog.service"), ("comm", "tail")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "oomwatch_vmstat_oom_kills_total", &[]),
        Some(vmstat)
    );
    assert_eq!(
        sample(&body, "oomwatch_oom_kills_unattributed", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &body,
            "oomwatch_group_exits_total",
            &[("group", "hog.service"), ("reason", "oom_killed")]
        ),
        Some(1.0)
    );
    if all {
        // memory.oom.group: several processes, each counted once; the repeated line of
        // the first victim is the kernel's, explained, not a second kill.
        assert!(
            expected["hog-group.service"] >= 2.0,
            "several members killed: {killed:?}"
        );
        // The main process's end is an OOM kill. Its children are reparented to PID 1 as
        // it dies, so each becomes a top-level instance of its own whose end counts too
        // (the kernel's second kill of the first victim, systemd's SIGTERM for the rest):
        // noted, not pinned.
        let ends = series(&body, "oomwatch_group_exits_total")
            .into_iter()
            .filter(|(labels, v)| labels.contains("group=\"hog-group.service\"") && *v > 0.0)
            .collect::<Vec<_>>();
        assert!(
            sample(
                &body,
                "oomwatch_group_exits_total",
                &[("group", "hog-group.service"), ("reason", "oom_killed")]
            )
            .is_some_and(|n| n >= 1.0),
            "{ends:?}"
        );
        note(&format!("{}: hog-group.service ends: {ends:?}", guest.name));
        // The unit whose cgroup lives on: oomwatch reads the same memory.events.
        let unit_kills = guest_number(
            guest,
            "awk '$1 == \"oom_kill\" {print $2}' /sys/fs/cgroup/hogs.slice/hog-run.service/memory.events",
        );
        assert_eq!(unit_kills, 1.0);
        assert_eq!(
            sample(
                &body,
                "oomwatch_cgroup_oom_kills_total",
                &[("group", "hog-run.service")]
            ),
            Some(unit_kills)
        );
        assert_eq!(
            sample(
                &body,
                "oomwatch_group_memory_limit_bytes",
                &[("group", "hog-run.service")]
            ),
            Some(32.0 * 1024.0 * 1024.0)
        );
        assert_eq!(
            sample(
                &body,
                "oomwatch_group_restarts_total",
                &[("group", "hog-group.service")]
            ),
            Some(0.0)
        );
    }

    // oomwatch why, on the guest's shell, from the unit's state directory.
    let why = guest.sh("oomwatch why hog --state.dir /var/lib/oomwatch");
    for expected in [
        "hog: group hog.service",
        "(tail) was killed by the kernel's OOM killer",
        "cgroup /hogs.slice/hog.service hit its memory limit",
        "restarted as pid",
        "1 restarts; exits: oom_killed 1; kernel OOM kills: 1.",
    ] {
        assert!(why.contains(expected), "{expected:?} not in:\n{why}");
    }
    // The incident page, through the forwarded port.
    let page = guest.get("/");
    assert_eq!(page.status, 200);
    let kills = section(&page.body, "kills");
    assert!(kills.contains("hog.service"), "{kills}");
    assert!(kills.contains("tail"), "{kills}");
    if all {
        assert!(kills.contains("hog-group.service"), "{kills}");
    }
}

/// The section of the incident page with this id.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id} in:\n{page}"));
    let rest = &page[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// On the guest without the pre-OOM program: a unit throttled at its `MemoryHigh=` until
/// oomwatch shows its memory.high (its group has series after 30 s), so that every
/// dashboard query has data for this guest too. After the OOM kills, which it would slow.
fn throttled_briefly(guest: &Guest) {
    install_squeeze(guest);
    guest.sh("systemd-run --quiet --unit=throttled -p MemoryHigh=24M -p CPUQuota=20% /usr/local/bin/squeeze");
    scrape_until(guest, "throttled.service's memory.high", |body| {
        sample(
            body,
            "oomwatch_group_memory_high_bytes",
            &[("group", "throttled.service")],
        ) == Some(24.0 * 1024.0 * 1024.0)
            && sample(
                body,
                "oomwatch_group_memory_events_total",
                &[("group", "throttled.service"), ("event", "high")],
            )
            .is_some_and(|n| n > 0.0)
    });
    // A few scrapes of Prometheus (every 5 s) with it, then stopped.
    std::thread::sleep(Duration::from_secs(12));
    guest.sh("systemctl stop throttled");
}

/// Step 2b (one guest): the signals before the kill, and a userspace killer.
/// - throttled.service runs above its `MemoryHigh=`: its `high` events and its own pressure
///   rise, and ServiceThrottledAtMemoryHigh fires in the host's Prometheus;
/// - maxed.service is driven into its `MemoryMax=` (its cgroup lives on, OOMPolicy=continue):
///   `max`, `oom` and `oom_kill` as its memory.events says;
/// - squeezed.service, in a slice systemd-oomd watches with a low pressure limit, is killed
///   by systemd-oomd: a userspace kill of its group, live from the D-Bus signal, with the
///   reason, in the event log and `oomwatch why`, and as systemd-oomd's own log says;
/// - systemd's `Result` and `NRestarts` for it and for hog.service match `systemctl show`.
///
/// A swap file lets reclaim scan anonymous memory (systemd-oomd kills only where reclaim
/// is active); the guest's swap is gone at its next boot.
fn pre_oom(guest: &Guest, prometheus: &Server) {
    install_squeeze(guest);
    guest.sh(&format!(
        "fallocate -l 256M /swapfile && chmod 600 /swapfile && mkswap -q /swapfile && swapon /swapfile
mkdir -p /etc/systemd/oomd.conf.d
printf '[OOM]\nDefaultMemoryPressureDurationSec=2s\n' > /etc/systemd/oomd.conf.d/bench.conf
cat > /etc/systemd/system/pressure.slice <<'EOF'
{PRESSURE_SLICE}EOF
systemctl daemon-reload
systemctl enable --now systemd-oomd.service >/dev/null 2>&1; systemctl restart systemd-oomd.service"
    ));
    // Live over D-Bus, not from the kernel log: journald does not forward to it here.
    let journald = guest.sh("systemd-analyze cat-config systemd/journald.conf");
    assert!(
        !journald
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("ForwardToKMsg=yes")),
        "{journald}"
    );
    let started = Instant::now();
    guest.sh("systemd-run --quiet --unit=throttled -p MemoryHigh=24M -p CPUQuota=30% /usr/local/bin/squeeze");
    // Without swap of its own, so that it hits its MemoryMax at once and leaves the swap
    // file to the others.
    guest.sh("systemd-run --quiet --unit=maxed --slice=hogs.slice -p MemoryMax=32M -p MemorySwapMax=0 -p OOMPolicy=continue /bin/sh -c 'tail /dev/zero; exec sleep infinity'");
    guest.sh("systemd-run --quiet --unit=squeezed --slice=pressure.slice -p MemoryHigh=16M /usr/local/bin/squeeze");

    // systemd-oomd's kill, live.
    eventually(Duration::from_secs(120), || {
        let state = guest.sh("systemctl show -p ActiveState --value squeezed");
        matches!(state.trim(), "failed" | "inactive").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "systemd-oomd did not kill squeezed.service:\n{}\n{}",
            guest.sh("systemctl status squeezed --no-pager; oomctl; cat /sys/fs/cgroup/pressure.slice/memory.pressure"),
            String::from_utf8_lossy(&guest.try_sh("journalctl -u systemd-oomd -b --no-pager | tail -n 20").stdout)
        )
    });
    note(&format!(
        "{}: systemd-oomd killed squeezed.service {:.1} s after it started",
        guest.name,
        started.elapsed().as_secs_f64()
    ));
    let oomd_log = guest.sh("journalctl -u systemd-oomd -b --no-pager -o cat");
    let said = oomd_log
        .lines()
        .find(|l| l.contains("Killed /pressure.slice/squeezed.service due to memory pressure"))
        .unwrap_or_else(|| panic!("systemd-oomd's log does not name the kill:\n{oomd_log}"))
        .to_owned();
    note(&format!("{}: systemd-oomd said: {said}", guest.name));
    let result = guest.sh("systemctl show -p Result --value squeezed");
    let result = result.trim().to_owned();
    note(&format!(
        "{}: systemd's Result for squeezed.service: {result}",
        guest.name
    ));
    assert_eq!(
        result, "oom-kill",
        "systemd's verdict on a unit systemd-oomd killed"
    );
    let body = scrape_until(
        guest,
        "the systemd-oomd kill and systemd's verdict",
        |body| {
            sample(
                body,
                "oomwatch_userspace_oom_kills_total",
                &[("killer", "systemd-oomd"), ("group", "squeezed.service")],
            ) == Some(1.0)
                && sample(
                    body,
                    "oomwatch_systemd_unit_result",
                    &[("group", "squeezed.service"), ("result", result.as_str())],
                ) == Some(1.0)
        },
    );
    assert!(
        sample(
            &body,
            "oomwatch_userspace_oom_last_kill_timestamp_seconds",
            &[("group", "squeezed.service"), ("reason", "memory-pressure")],
        )
        .is_some_and(|t| (unix_now() - t).abs() < 300.0),
        "the kill's time and reason"
    );
    assert_eq!(
        sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "oomd")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "oomwatch_collector_success",
            &[("collector", "systemd")]
        ),
        Some(1.0)
    );
    // Not the kernel's: no kernel kill of that group.
    assert!(series(&body, "oomwatch_oom_kills_total")
        .iter()
        .all(|(labels, _)| !labels.contains("squeezed")));
    let events = guest.get("/api/v1/events?type=userspace_kill");
    let events: serde_json::Value = serde_json::from_str(&events.body).expect("events JSON");
    let kill = events["events"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_else(|| panic!("no userspace_kill event: {events}"));
    assert_eq!(kill["group"], "squeezed.service", "{kill}");
    assert_eq!(kill["killer"], "systemd-oomd", "{kill}");
    assert_eq!(kill["cgroup"], "/pressure.slice/squeezed.service", "{kill}");
    assert_eq!(kill["reason"], "memory-pressure", "{kill}");
    let why = guest.sh("oomwatch why squeezed --state.dir /var/lib/oomwatch");
    for expected in [
        "squeezed: group squeezed.service",
        "was killed by systemd-oomd (a userspace OOM killer, not the kernel)",
        "for memory-pressure",
    ] {
        assert!(why.contains(expected), "{expected:?} not in:\n{why}");
    }

    // systemd's verdicts, as systemctl shows them (OOMKills and ManagedOOMKills only from
    // systemd 259: absent here).
    for unit in ["squeezed.service", "hog.service"] {
        let shown = guest.sh(&format!(
            "systemctl show -p Result -p NRestarts --value {unit}"
        ));
        let mut lines = shown.lines();
        let (result, restarts) = (
            lines.next().unwrap_or_default(),
            lines.next().unwrap_or_default(),
        );
        let body = guest.try_scrape().unwrap_or_default();
        assert_eq!(
            sample(
                &body,
                "oomwatch_systemd_unit_result",
                &[("group", unit), ("result", result)]
            ),
            Some(1.0),
            "{unit}: systemctl says Result={result}"
        );
        assert_eq!(
            sample(&body, "oomwatch_systemd_unit_restarts", &[("group", unit)]),
            restarts.parse().ok(),
            "{unit}: systemctl says NRestarts={restarts}"
        );
        note(&format!(
            "{}: {unit}: Result={result} NRestarts={restarts}, the same in oomwatch",
            guest.name
        ));
    }
    // OOMKills and ManagedOOMKills are systemd 259's: Debian 13 has 257, so none.
    let version = guest.sh("systemctl --version | head -n 1");
    let major: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("systemctl --version: {version}"));
    assert!(
        major < 259,
        "the bench expects systemd before 259: {version}"
    );
    let body = guest.try_scrape().unwrap_or_default();
    for name in [
        "oomwatch_systemd_unit_oom_kills_total",
        "oomwatch_systemd_unit_managed_oom_kills_total",
    ] {
        assert!(
            series(&body, name).is_empty() && body.contains("oomwatch_systemd_unit_result{"),
            "{name} on systemd {major}"
        );
    }

    // maxed.service at its MemoryMax: the kernel's own counts, as its memory.events says.
    let memory_events = guest.sh("cat /sys/fs/cgroup/hogs.slice/maxed.service/memory.events");
    let kernel = |key: &str| -> f64 {
        memory_events
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} not in {memory_events}"))
    };
    assert!(
        kernel("max") > 0.0 && kernel("oom") >= 1.0 && kernel("oom_kill") == 1.0,
        "{memory_events}"
    );
    let body = scrape_until(guest, "maxed.service's events", |body| {
        let event = |e| {
            sample(
                body,
                "oomwatch_group_memory_events_total",
                &[("group", "maxed.service"), ("event", e)],
            )
        };
        event("oom_kill") == Some(1.0) && event("max").is_some_and(|m| m > 0.0)
    });
    let event = |e| {
        sample(
            &body,
            "oomwatch_group_memory_events_total",
            &[("group", "maxed.service"), ("event", e)],
        )
        .unwrap_or(f64::NAN)
    };
    let again = guest.sh("cat /sys/fs/cgroup/hogs.slice/maxed.service/memory.events");
    assert!(
        again == memory_events,
        "maxed.service's counts moved:\n{memory_events}\n{again}"
    );
    assert_eq!(
        (event("max"), event("oom"), event("oom_kill")),
        (kernel("max"), kernel("oom"), kernel("oom_kill")),
        "{memory_events}"
    );
    note(&format!(
        "{}: maxed.service: max {} oom {} oom_kill {} (memory.events the same)",
        guest.name,
        event("max"),
        event("oom"),
        event("oom_kill")
    ));

    // throttled.service above its MemoryHigh: throttling and pressure, and the alert.
    let body = scrape_until(
        guest,
        "throttled.service's throttling and pressure",
        |body| {
            sample(
                body,
                "oomwatch_group_memory_events_total",
                &[("group", "throttled.service"), ("event", "high")],
            )
            .is_some_and(|n| n > 0.0)
                && sample(
                    body,
                    "oomwatch_group_memory_pressure_stalled_seconds_total",
                    &[("group", "throttled.service")],
                )
                .is_some_and(|s| s > 0.0)
        },
    );
    assert_eq!(
        sample(
            &body,
            "oomwatch_group_memory_high_bytes",
            &[("group", "throttled.service")]
        ),
        Some(24.0 * 1024.0 * 1024.0)
    );
    let instance = instance(guest);
    let fired = eventually(Duration::from_secs(150), || {
        let response = request(prometheus.addr, "GET", "/api/v1/alerts", &[]);
        let alerts: serde_json::Value = serde_json::from_str(&response.body).ok()?;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["state"] == "firing"
                    && a["labels"]["alertname"] == "ServiceThrottledAtMemoryHigh"
                    && a["labels"]["instance"] == instance.as_str()
                    && a["labels"]["group"] == "throttled.service"
            })
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!("ServiceThrottledAtMemoryHigh did not fire for throttled.service on {instance}")
    });
    note(&format!(
        "{}: ServiceThrottledAtMemoryHigh fired {:.1} s after the units started: {}",
        guest.name,
        started.elapsed().as_secs_f64(),
        fired["annotations"]["description"]
            .as_str()
            .unwrap_or_default()
    ));
    let page = guest.get("/");
    let limits = section(&page.body, "limits");
    assert!(limits.contains("<td>throttled.service</td>"), "{limits}");
    // Its counters move at every scrape; the state file takes them with the heartbeat
    // (every 15 s), not at every scrape.
    let scrapes = 30;
    let (writes, throttled) = state_writes_during_scrapes(guest, scrapes);
    note(&format!(
        "{}: {scrapes} scrapes a second apart while throttled.service was throttled {throttled} more times: {writes} state file writes",
        guest.name
    ));
    assert!(throttled > 0.0, "the counter moved meanwhile");
    assert!(
        writes * 3.0 < f64::from(scrapes),
        "{writes} state writes in {scrapes} scrapes"
    );
    // The largest processes by RSS: --processes.top-rss (10) of them on a real host.
    let body = guest.try_scrape().unwrap_or_default();
    let largest = series(&body, "oomwatch_process_largest_resident_memory_bytes");
    assert_eq!(largest.len(), 10, "{largest:?}");
    assert!(
        largest.iter().all(|(labels, rss)| *rss > 0.0
            && ["pid", "comm", "group"]
                .iter()
                .all(|k| label(labels, k).is_some())),
        "{largest:?}"
    );
    let mut by_rss = largest.clone();
    by_rss.sort_by(|a, b| b.1.total_cmp(&a.1));
    note(&format!(
        "{}: the largest processes by RSS: {}",
        guest.name,
        by_rss
            .iter()
            .take(3)
            .map(|(labels, rss)| format!("{{{labels}}} {rss}"))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    note(&format!(
        "{}: the pre-OOM series seen: {}",
        guest.name,
        body.lines()
            .filter(
                |l| ["throttled.service", "maxed.service", "squeezed.service"]
                    .iter()
                    .any(|g| l.contains(g))
                    && (l.contains("memory_events")
                        || l.contains("pressure")
                        || l.contains("high_bytes")
                        || l.contains("swap")
                        || l.contains("userspace")
                        || l.contains("systemd_unit"))
            )
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    guest.sh("systemctl stop throttled maxed; swapoff /swapfile; rm -f /swapfile");
}

/// `systemctl stop` leaves the clean-stop marker in the state file; the counts survive the
/// restart unchanged.
fn clean_stop(guest: &Guest) {
    let before = scrape_ready(guest);
    guest.sh("systemctl stop oomwatch");
    let state = guest.sh("cat /var/lib/private/oomwatch/state.json");
    let state: serde_json::Value = serde_json::from_str(&state).expect("state.json");
    let stopped = state["boot"]["clean_stop"].as_f64();
    assert!(
        stopped.is_some_and(|t| (unix_now() - t).abs() < 60.0),
        "clean_stop in {state}"
    );
    guest.sh("systemctl start oomwatch");
    let after = scrape_ready(guest);
    // oomwatch.service itself is left out: stopped and started again after living more
    // than --restarts.min-age, it counts as restarted by the README's rule (its clean exit
    // is one no running exporter can see).
    for name in ["oomwatch_oom_kills_total", "oomwatch_group_restarts_total"] {
        let counts = |body: &str| {
            series(body, name)
                .into_iter()
                .filter(|(labels, v)| *v > 0.0 && !labels.contains("\"oomwatch.service\""))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&after), counts(&before), "{name} across a restart");
    }
}

/// The reboot series of a scrape: boots, unexpected reboots, the cause label, downtime.
fn reboot_state(body: &str) -> (f64, f64, String, f64) {
    let causes = series(body, "oomwatch_last_reboot_unexpected");
    assert_eq!(causes.len(), 1, "{causes:?}");
    (
        sample(body, "oomwatch_boots_total", &[]).expect("boots"),
        sample(body, "oomwatch_unexpected_reboots_total", &[]).expect("unexpected"),
        label(&causes[0].0, "cause").expect("cause"),
        sample(body, "oomwatch_last_downtime_seconds", &[]).expect("downtime"),
    )
}

/// The latest reboot in the guest's event log.
fn last_reboot_event(guest: &Guest) -> serde_json::Value {
    let response = guest.get("/api/v1/events?type=reboot");
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("events JSON");
    body["events"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_else(|| panic!("no reboot event: {body}"))
}

/// Firing alerts `name` for `instance` (from Prometheus's alerts API): their cause label
/// and the value of their expression.
fn firing(prometheus: SocketAddr, name: &str, instance: &str) -> Vec<(String, f64)> {
    let response = request(prometheus, "GET", "/api/v1/alerts", &[]);
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("alerts JSON");
    body["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            a["state"] == "firing"
                && a["labels"]["alertname"] == name
                && a["labels"]["instance"] == instance
        })
        .map(|a| {
            (
                a["labels"]["cause"].as_str().unwrap_or_default().to_owned(),
                a["value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// Step 3: the reboot chain on one disk, each verdict checked in the exporter, its event
/// log and evidence, and the alerts in Prometheus.
fn reboots(guest: &Guest, host: &Host, prometheus: &Server) {
    let instance = instance(guest);
    let records = host.login_records;
    let clean_evidence = format!("{records} shutdown record at ");
    let chain: [(&str, f64, &str, String); 4] = [
        (
            "clean reboot",
            0.0,
            "clean_shutdown",
            clean_evidence.clone(),
        ),
        (
            "power cut",
            1.0,
            "no_clean_shutdown",
            format!("{records}: the boot at "),
        ),
        (
            "kernel panic",
            2.0,
            "kernel_panic",
            "pstore record ".to_owned(),
        ),
        (
            "clean reboot after the panic",
            2.0,
            "clean_shutdown",
            clean_evidence,
        ),
    ];
    for (boots, (what, unexpected, cause, evidence)) in (2..).zip(chain) {
        let step = Instant::now();
        let old_boot = guest.boot_id();
        let mut cut_at = None;
        match what {
            "power cut" => {
                // The last sign of life on disk just before the cut: the downtime runs
                // from it, or from a heartbeat written between this read and the cut.
                std::thread::sleep(Duration::from_secs(5));
                let state = guest.sh("cat /var/lib/private/oomwatch/state.json");
                let state: serde_json::Value = serde_json::from_str(&state).expect("state.json");
                let heartbeat = state["boot"]["last_heartbeat"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("no heartbeat in {state}"));
                cut_at = Some((heartbeat, guest.power_cut()));
                std::thread::sleep(Duration::from_secs(5));
                guest.boot_again();
            }
            "kernel panic" => {
                guest.sh("(sleep 1; echo c > /proc/sysrq-trigger) >/dev/null 2>&1 &");
            }
            _ => {
                let _ = guest.try_sh("systemctl reboot");
            }
        }
        guest.wait_for_new_boot(&old_boot);
        let body = scrape_until(guest, "the new boot", |body| {
            sample(body, "oomwatch_boots_total", &[]) == Some(f64::from(boots))
        });
        let (seen_boots, seen_unexpected, seen_cause, downtime) = reboot_state(&body);
        let event = last_reboot_event(guest);
        let said = event["evidence"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            (seen_boots, seen_unexpected, seen_cause.as_str()),
            (f64::from(boots), unexpected, cause),
            "{}: after the {what}: evidence {said:?}",
            guest.name
        );
        assert!(
            said.starts_with(&evidence),
            "{}: after the {what}, evidence {said:?} should start with {evidence:?}",
            guest.name
        );
        assert_eq!(event["cause"], cause);
        assert!((0.0..300.0).contains(&downtime), "downtime {downtime}");
        if let Some((heartbeat, cut_at)) = cut_at {
            // From the last heartbeat (every 15 s) to the new boot's start (whole seconds):
            // at least the real gap, at most the time since the heartbeat read before it.
            let boot_time = sample(&body, "oomwatch_boot_time_seconds", &[]).expect("btime");
            let gap = boot_time - cut_at;
            let since_heartbeat = boot_time - heartbeat;
            assert!(
                (gap - 1.5..=since_heartbeat + 1.5).contains(&downtime),
                "downtime {downtime:.1} s against a real gap of {gap:.1} s, {since_heartbeat:.1} s after the last heartbeat seen"
            );
            note(&format!(
                "{}: power cut: {gap:.1} s without power ({since_heartbeat:.1} s since the last heartbeat on disk), downtime reported {downtime:.1} s",
                guest.name
            ));
        }
        // The alerts, once Prometheus has this boot.
        // HostRebooted's value is the uptime: it fires for this boot, not an earlier one.
        eventually(Duration::from_secs(90), || {
            let since_step = step.elapsed().as_secs_f64();
            let rebooted = firing(prometheus.addr, "HostRebooted", &instance)
                .iter()
                .any(|(_, uptime)| *uptime < since_step);
            let unexpected_alerts: Vec<String> =
                firing(prometheus.addr, "UnexpectedReboot", &instance)
                    .into_iter()
                    .map(|(cause, _)| cause)
                    .collect();
            let scraped = !query(
                prometheus.addr,
                &format!("oomwatch_boots_total{{instance=\"{instance}\"}} == {boots}"),
            )
            .is_empty();
            let expected: Vec<String> = if unexpected_alerts_expected(cause) {
                vec![cause.to_owned()]
            } else {
                vec![]
            };
            (scraped && rebooted && unexpected_alerts == expected).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: after the {what}, HostRebooted {:?}, UnexpectedReboot {:?} (expected {cause})",
                guest.name,
                firing(prometheus.addr, "HostRebooted", &instance),
                firing(prometheus.addr, "UnexpectedReboot", &instance)
            )
        });
        let page = guest.get("/");
        let host_section = section(&page.body, "host");
        assert!(
            host_section.contains(cause) && host_section.contains(&said),
            "the incident page's host section after the {what}:\n{host_section}"
        );
        note(&format!(
            "{}: {what}: {cause} ({said}) in {:.1} s",
            guest.name,
            step.elapsed().as_secs_f64()
        ));
    }
}

fn unexpected_alerts_expected(cause: &str) -> bool {
    cause != "clean_shutdown"
}

/// Step 4: every query of the shipped dashboards, run over the fleet's lifetime as Grafana
/// runs its panels (a range query), has data for each guest.
fn dashboards_answer_per_instance(prometheus: SocketAddr, since: f64, guests: &[SocketAddr]) {
    let instances: BTreeSet<String> = guests.iter().map(|g| g.ip().to_string()).collect();
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let end = unix_now();
    let mut missing = Vec::new();
    let mut aggregates = 0;
    for (file, title, expr) in &queries {
        let response = request(
            prometheus,
            "GET",
            &format!(
                "/api/v1/query_range?query={}&start={since:.0}&end={end:.0}&step=10",
                url_encode(expr)
            ),
            &[],
        );
        let body: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{expr}: {e}: {}", response.body));
        assert_eq!(body["status"], "success", "{expr}: {}", response.body);
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let seen: BTreeSet<String> = result
            .iter()
            .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_owned))
            .collect();
        let aggregated =
            !result.is_empty() && result.iter().all(|s| s["metric"]["instance"].is_null());
        if !aggregated && seen != instances {
            missing.push(format!("{file} / {title}: {expr} (instances {seen:?})"));
        }
        aggregates += usize::from(aggregated);
    }
    note(&format!(
        "fleet: {} dashboard queries, {} with data for each of {instances:?}, {aggregates} fleet-wide aggregates with data",
        queries.len(),
        queries.len() - aggregates - missing.len()
    ));
    assert!(
        missing.is_empty(),
        "dashboard queries without data for every guest {instances:?}:\n{}",
        missing.join("\n")
    );
}

/// `apt-get purge` removes the package, its unit, its state and everything it installed.
fn purge(guest: &Guest, files: &[String]) {
    let output = guest.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y oomwatch 2>&1");
    assert!(
        output.contains("Purging configuration files for oomwatch"),
        "{output}"
    );
    let paths: Vec<String> = files
        .iter()
        .map(String::as_str)
        .chain([
            "/var/lib/oomwatch",
            "/var/lib/private/oomwatch",
            "/etc/oomwatch",
            "/usr/share/oomwatch",
            "/run/oomwatch",
            "/etc/systemd/system/multi-user.target.wants/oomwatch.service",
        ])
        .map(|f| format!("'{f}'"))
        .collect();
    let left = guest.sh(&format!(
        "for f in {}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then echo \"$f\"; fi; done",
        paths.join(" ")
    ));
    assert!(left.trim().is_empty(), "left after purge:\n{left}");
    assert!(
        !guest.try_sh("dpkg-query -W oomwatch").status.success(),
        "dpkg still knows the package"
    );
    assert!(
        guest.try_get("/metrics").is_err(),
        "nothing serves on :9721 after the purge"
    );
}
