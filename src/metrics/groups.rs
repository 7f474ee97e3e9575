//! The processes' and groups' series: the top-K next victims, each group's processes,
//! memory, OOM risk, restarts and exits, and its memory cgroup. Draws from the snapshot
//! only; labels are borrowed, so a scrape allocates nothing per series.

use super::family::Family;
use crate::exit_reason::ExitReason;
use crate::exits::accounting::InferredCause;
use crate::groups::pod_names;
use crate::snapshot::{GroupMemory, GroupRow, ProcessRow, ProcessesSample};

/// The next victims (top-K by oom_score) and every group's figures.
pub(super) fn processes(
    f: &mut Family<'_, '_>,
    p: &ProcessesSample,
) -> Result<(), std::fmt::Error> {
    next_victims(f, &p.top)?;
    f.gauges(
        "oomwatch_process_largest_resident_memory_bytes",
        "Resident memory (statm) of the --processes.top-rss largest processes: what is eating memory, whatever their oom_score.",
        p.top_rss.iter().map(|r| {
            (
                ([("pid", r.pid)], [("comm", &*r.comm), ("group", &*r.group)]),
                r.resident_bytes,
            )
        }),
    )?;
    groups(f, &p.groups)?;
    f.counter(
        "oomwatch_processes_vanished_total",
        "Processes that exited while they were being read (skipped, not errors).",
        Some(p.vanished_total),
    )?;
    f.counters(
        "oomwatch_exits_inferred_total",
        "Exits settled from a scan (the instance was gone) rather than from its exit event, by why: no_listener (no process-events listener: reason unknown, or oom_killed when the kernel log named it), no_event (the listener was up but no event came within 5 s).",
        InferredCause::ALL
            .iter()
            .zip(p.exits_inferred)
            .map(|(cause, n)| ([("cause", cause.label())], n)),
    )?;
    f.gauge(
        "oomwatch_processes_pinned",
        "Processes held open between scans (one descriptor each, bounded by --processes.max-pinned and the open-file limit).",
        Some(p.pinned),
    )
}

/// The top-K processes by oom_score, with their pid: the only series that carry one.
fn next_victims(f: &mut Family<'_, '_>, top: &[ProcessRow]) -> Result<(), std::fmt::Error> {
    type ProcessLabels<'a> = ([(&'a str, u32); 1], [(&'a str, &'a str); 2]);
    fn labels(r: &ProcessRow) -> ProcessLabels<'_> {
        ([("pid", r.pid)], [("comm", &*r.comm), ("group", &*r.group)])
    }
    f.gauges(
        "oomwatch_process_oom_score",
        "oom_score of the processes most likely to be killed next (the top-K by oom_score).",
        top.iter().map(|r| (labels(r), r.oom_score)),
    )?;
    f.gauges(
        "oomwatch_process_oom_score_adj",
        "oom_score_adj of the top-K processes by oom_score (-1000 exempts from the OOM killer).",
        top.iter().map(|r| (labels(r), r.oom_score_adj)),
    )?;
    f.gauges(
        "oomwatch_process_resident_memory_bytes",
        "Resident memory (statm) of the top-K processes by oom_score.",
        top.iter().map(|r| (labels(r), r.resident_bytes)),
    )
}

/// Each group: processes, memory, OOM risk, start, restarts, exits; and the Kubernetes
/// names of pod-named groups, for joins with kube-state-metrics.
fn groups(f: &mut Family<'_, '_>, g: &[GroupRow]) -> Result<(), std::fmt::Error> {
    f.gauges(
        "oomwatch_group_info",
        "1 for each automatic group named after a Kubernetes pod's container, with the pod's namespace, pod and container (empty for a pod's other processes), for joins with kube-state-metrics.",
        g.iter().filter(|r| !r.configured).filter_map(|r| {
            let pod = pod_names(&r.name)?;
            let labels = [
                ("group", &*r.name),
                ("namespace", pod.namespace),
                ("pod", pod.pod),
                ("container", pod.container.unwrap_or("")),
            ];
            Some((labels, 1))
        }),
    )?;
    f.gauges(
        "oomwatch_group_processes",
        "Processes in the group now (0 while the service is down).",
        g.iter().map(|r| (group_label(&r.name), r.processes)),
    )?;
    f.gauges(
        "oomwatch_group_configured",
        "1 for groups named in --config.file: they always exist, so 0 processes means the service is down.",
        g.iter()
            .filter(|r| r.configured)
            .map(|r| (group_label(&r.name), 1)),
    )?;
    f.gauges(
        "oomwatch_group_resident_memory_bytes",
        "Summed resident memory of the group's processes.",
        g.iter().map(|r| (group_label(&r.name), r.resident_bytes)),
    )?;
    f.gauges(
        "oomwatch_group_oom_score_max",
        "Highest oom_score in the group.",
        g.iter()
            .filter_map(|r| Some((group_label(&r.name), r.oom_score_max?))),
    )?;
    f.gauges(
        "oomwatch_group_oom_score_adj_min",
        "Lowest oom_score_adj in the group.",
        g.iter()
            .filter_map(|r| Some((group_label(&r.name), r.oom_score_adj_min?))),
    )?;
    f.gauges(
        "oomwatch_group_start_time_seconds",
        "Start of the group's oldest process, seconds since the epoch.",
        g.iter()
            .filter_map(|r| Some((group_label(&r.name), r.start_time_seconds?))),
    )?;
    f.counters(
        "oomwatch_group_restarts_total",
        "Times a top-level instance of the group ended and a new one started: every end that was not a clean exit (an OOM kill, a signal, a crash, an error exit of a service) followed by a start, and a replaced instance that lived --restarts.min-age.",
        g.iter().map(|r| (group_label(&r.name), r.restarts)),
    )?;
    f.counters(
        "oomwatch_group_exits_total",
        "Exits of the group's top-level instances by reason: oom_killed, killed, crashed, terminated, other_signal, exited_ok, exited_error, unknown (gone with no exit event). Every reason for configured groups, the reasons seen for others.",
        g.iter().flat_map(|r| {
            exit_series(r).into_iter().map(move |(reason, n)| {
                ((group_label(&r.name), [("reason", reason.label())]), n)
            })
        }),
    )?;
    Ok(())
}

/// Each group's memory cgroup: its tightest limit, usage and OOM kills.
pub(super) fn group_memory(
    f: &mut Family<'_, '_>,
    gm: &[GroupMemory],
) -> Result<(), std::fmt::Error> {
    f.gauges(
        "oomwatch_group_memory_limit_bytes",
        "Tightest memory cgroup limit over the group's cgroup and its ancestors.",
        gm.iter()
            .filter_map(|r| Some((group_label(&r.group), r.limit_bytes?))),
    )?;
    f.gauges(
        "oomwatch_group_memory_usage_bytes",
        "Memory usage of the cgroup that sets the group's tightest limit (its own cgroup when unlimited).",
        gm.iter().map(|r| (group_label(&r.group), r.usage_bytes)),
    )?;
    f.counters(
        "oomwatch_cgroup_oom_kills_total",
        "OOM kills the kernel counted in the group's memory cgroup (memory.events / memory.oom_control); resets when the cgroup is recreated.",
        gm.iter().filter_map(|r| Some((group_label(&r.group), r.oom_kills?))),
    )?;
    memcg_signals(f, gm)
}

/// The early signals of each cgroup a group owns: events before a kill, memory.high,
/// swap, pressure.
fn memcg_signals(f: &mut Family<'_, '_>, gm: &[GroupMemory]) -> Result<(), std::fmt::Error> {
    let owned = || {
        gm.iter()
            .filter_map(|r| Some((group_label(&r.group), r.signals.as_ref()?)))
    };
    f.counters(
        "oomwatch_group_memory_events_total",
        "Events of the memory cgroup the group owns, by event: high (allocations throttled and pushed into reclaim above memory.high: the service is slowed down), max (usage hit the hard limit memory.max, or on cgroup v1 memory.limit_in_bytes (memory.failcnt): allocations failed until reclaim freed memory), oom (reclaim failed at the limit: the OOM killer was invoked), oom_kill (processes the OOM killer killed in it), oom_group_kill (the whole cgroup killed at once, memory.oom.group), low (memory.low protection was breached: reclaimed although protected), memsw_max (cgroup v1: memory+swap hit memory.memsw.limit_in_bytes). Carried across the cgroup's re-creations: never goes down.",
        owned().flat_map(|(group, s)| {
            s.events
                .iter()
                .map(move |(event, n)| ((group, [("event", event.label())]), *n))
        }),
    )?;
    f.gauges(
        "oomwatch_group_memory_high_bytes",
        "memory.high of the memory cgroup the group owns: above it, allocations are throttled (cgroup v2; absent when unset).",
        owned().filter_map(|(group, s)| Some((group, s.high_bytes?))),
    )?;
    f.gauges(
        "oomwatch_group_swap_usage_bytes",
        "Swap used by the memory cgroup the group owns (memory.swap.current; cgroup v1: memory.memsw.usage_in_bytes less memory.usage_in_bytes).",
        owned().filter_map(|(group, s)| Some((group, s.swap_bytes?))),
    )?;
    f.counters(
        "oomwatch_group_memory_pressure_waiting_seconds_total",
        "Time at least one task of the group's memory cgroup waited on memory (its memory.pressure some total; cgroup v2 with PSI). Carried across the cgroup's re-creations.",
        owned().filter_map(|(group, s)| Some((group, s.pressure_seconds?[0]))),
    )?;
    f.counters(
        "oomwatch_group_memory_pressure_stalled_seconds_total",
        "Time all non-idle tasks of the group's memory cgroup stalled on memory at once (its memory.pressure full total). Carried across the cgroup's re-creations.",
        owned().filter_map(|(group, s)| Some((group, s.pressure_seconds?[1]))),
    )?;
    f.gauges(
        "oomwatch_group_memory_under_oom",
        "1 while the group's memory cgroup is stuck at its limit with its tasks stopped (cgroup v1 memory.oom_control under_oom, with the OOM killer disabled by oom_kill_disable), 0 otherwise.",
        owned().filter_map(|(group, s)| Some((group, i64::from(s.under_oom?)))),
    )
}

/// The `group` label, borrowed: no allocation per series per scrape.
fn group_label(name: &str) -> [(&'static str, &str); 1] {
    [("group", name)]
}

/// A group's exit counts to render: every reason for a configured group (so a first
/// exit is an increase from 0), only the reasons seen for an automatic one.
fn exit_series(row: &GroupRow) -> Vec<(ExitReason, u64)> {
    if !row.configured {
        return row.exits.clone();
    }
    ExitReason::ALL
        .into_iter()
        .map(|reason| {
            let seen = row.exits.iter().find(|(r, _)| *r == reason);
            (reason, seen.map_or(0, |(_, n)| *n))
        })
        .collect()
}
