//! The kernel log's series: OOM kills per victim, the latest kill of each with its RSS,
//! the kills /proc/vmstat counts that the log did not explain, userspace killers, and
//! the log's health. Draws from the snapshot's ledger only.

use std::collections::BTreeMap;

use super::family::Family;
use crate::kills::ledger::VictimTally;
use crate::kills::oomd::OomdLedger;
use crate::snapshot::{KmsgSample, UnitRow};

/// Kills by userspace OOM killers: from the kernel log (any killer whose lines journald
/// forwards) and from systemd-oomd's D-Bus signal, summed per killer and group (a kill is
/// in one of the two: the kernel log's copy of a kill D-Bus delivered is not counted).
pub(super) fn userspace(
    f: &mut Family<'_, '_>,
    kmsg: Option<&KmsgSample>,
    oomd: Option<&OomdLedger>,
    oomd_forged_signals: Option<u64>,
) -> Result<(), std::fmt::Error> {
    let mut tallies: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for u in kmsg.iter().flat_map(|k| k.ledger.userspace.iter()) {
        *tallies.entry((&u.killer, &u.group)).or_default() += u.kills;
    }
    for t in oomd.iter().flat_map(|o| o.kills.iter()) {
        *tallies.entry(("systemd-oomd", &t.group)).or_default() += t.kills;
    }
    f.counters(
        "oomwatch_userspace_oom_kills_total",
        "Kills by userspace OOM killers (systemd-oomd live from its D-Bus Killed signal; systemd-oomd, earlyoom, oomd, nohang from their lines in the kernel log), never counted as kernel kills.",
        tallies
            .iter()
            .map(|((killer, group), n)| ([("killer", *killer), ("group", *group)], *n)),
    )?;
    let kmsg_rejected = kmsg
        .iter()
        .flat_map(|k| k.ledger.userspace_rejected.iter())
        .map(|(killer, n)| ([("killer", killer.as_str()), ("source", "kmsg")], *n));
    let dbus_rejected =
        oomd_forged_signals.map(|n| ([("killer", "systemd-oomd"), ("source", "dbus")], n));
    f.counters(
        "oomwatch_userspace_oom_kills_rejected_total",
        "Claims of userspace OOM kills that the killer did not make, never counted as kills: source=dbus, Killed signals sent by a bus client that does not own org.freedesktop.oom1 (since the exporter started); source=kmsg, killer lines in the kernel log whose writer (the pid journald forwarded them with) is neither root nor the killer's own service (persisted).",
        dbus_rejected.into_iter().chain(kmsg_rejected),
    )?;
    f.gauges(
        "oomwatch_userspace_oom_last_kill_timestamp_seconds",
        "Time of systemd-oomd's latest kill of the group, from its D-Bus Killed signal, with its reason (memory-pressure, memory-used).",
        oomd.iter().flat_map(|o| o.kills.iter()).map(|t| {
            let labels = [
                ("killer", "systemd-oomd"),
                ("group", t.group.as_str()),
                ("reason", t.last_reason.as_str()),
            ];
            (labels, t.last_kill_seconds)
        }),
    )
}

/// systemd's verdict on each unit-named group.
pub(super) fn units(f: &mut Family<'_, '_>, units: &[UnitRow]) -> Result<(), std::fmt::Error> {
    f.gauges(
        "oomwatch_systemd_unit_result",
        "1 for systemd's verdict on how the group's unit last ended (its Result: success, exit-code, signal, core-dump, oom-kill, timeout, watchdog, ...).",
        units.iter().filter_map(|u| {
            let result = u.verdict.result.as_deref()?;
            Some(([("group", &*u.group), ("result", result)], 1))
        }),
    )?;
    f.gauges(
        "oomwatch_systemd_unit_restarts",
        "systemd's NRestarts for the group's unit: restarts by Restart= since it was last started by hand (systemd resets it then, so it is not a counter).",
        units
            .iter()
            .filter_map(|u| Some(([("group", &*u.group)], u.verdict.restarts?))),
    )?;
    f.counters(
        "oomwatch_systemd_unit_oom_kills_total",
        "systemd's OOMKills for the group's unit: its processes the kernel's OOM killer killed (systemd 259+).",
        units
            .iter()
            .filter_map(|u| Some(([("group", &*u.group)], u.verdict.oom_kills?))),
    )?;
    f.counters(
        "oomwatch_systemd_unit_managed_oom_kills_total",
        "systemd's ManagedOOMKills for the group's unit: kills by systemd-oomd (systemd 259+).",
        units
            .iter()
            .filter_map(|u| Some(([("group", &*u.group)], u.verdict.managed_oom_kills?))),
    )
}

/// The kernel-log series: kills per victim, the latest kill of each, and the log's health.
pub(super) fn kills(
    f: &mut Family<'_, '_>,
    k: &KmsgSample,
    vmstat_oom_kills: Option<u64>,
) -> Result<(), std::fmt::Error> {
    let mut victims: Vec<&VictimTally> = k.ledger.victims_since(k.victims_since).collect();
    victims.sort_by(|a, b| {
        (&a.group, &a.comm, &a.constraint).cmp(&(&b.group, &b.comm, &b.constraint))
    });
    f.counters(
        "oomwatch_oom_kills_total",
        "OOM kills read from the kernel log, by victim; never goes down across restarts and reboots.",
        victims.iter().map(|v| {
            let labels = [
                ("group", v.group.as_str()),
                ("comm", v.comm.as_str()),
                ("constraint", v.constraint.as_str()),
            ];
            (labels, v.kills)
        }),
    )?;
    // The latest kill per (group, comm), whatever its constraint.
    let mut latest: BTreeMap<(&str, &str), &VictimTally> = BTreeMap::new();
    for v in &victims {
        let slot = latest.entry((&v.group, &v.comm)).or_insert(v);
        if v.last_kill_seconds > slot.last_kill_seconds {
            *slot = v;
        }
    }
    f.gauges(
        "oomwatch_oom_last_kill_timestamp_seconds",
        "Time of the latest OOM kill of this victim, seconds since the epoch.",
        latest
            .iter()
            .map(|((group, comm), v)| ([("group", *group), ("comm", *comm)], v.last_kill_seconds)),
    )?;
    f.gauges(
        "oomwatch_oom_last_kill_memcg_info",
        "1 for the memory cgroup that ran out in the latest OOM kill of this victim (its limit was hit); absent for a global OOM.",
        latest.iter().filter_map(|((group, comm), v)| {
            let memcg = v.last_memcg.as_deref()?;
            Some(([("group", *group), ("comm", *comm), ("memcg", memcg)], 1))
        }),
    )?;
    f.gauges(
        "oomwatch_oom_last_victim_rss_bytes",
        "Resident memory of the latest victim when it was killed, by kind (anon, file, shmem).",
        latest.iter().flat_map(|((group, comm), v)| {
            let rss = v.last_rss;
            [
                ("anon", rss.anon_bytes),
                ("file", rss.file_bytes),
                ("shmem", rss.shmem_bytes),
            ]
            .into_iter()
            .filter_map(move |(kind, bytes)| {
                Some(([("group", *group), ("comm", *comm), ("kind", kind)], bytes?))
            })
        }),
    )?;
    f.gauge(
        "oomwatch_oom_kills_unattributed",
        "OOM kills in /proc/vmstat since boot that the kernel log did not explain (rotated out before oomwatch read them, or unparsed); never below 0.",
        vmstat_oom_kills.map(|v| k.ledger.unattributed_this_boot(v)),
    )?;
    f.counter(
        "oomwatch_kmsg_unverified_kills_total",
        "Kill lines in the kernel log that the kernel's own OOM kill counters (/proc/vmstat, the memory cgroup's) do not back: someone made the kernel print text that looks like a kill, or the parser misread a line. Never counted as kills.",
        Some(k.ledger.unverified_kills),
    )?;
    f.gauge(
        "oomwatch_kmsg_up",
        "1 while the kernel log is being read.",
        Some(i64::from(k.up)),
    )?;
    f.counter(
        "oomwatch_kmsg_records_lost_total",
        "Kernel log records overwritten in the ring buffer before oomwatch read them.",
        Some(k.ledger.records_lost),
    )
}
