//! The exporter's own series: the process-events listener's health, state directory
//! errors, each collector's success and duration, and the build. Draws from the snapshot
//! only.

use super::family::Family;
use crate::exits::{ExitsStatus, LostCause};
use crate::snapshot::Snapshot;

/// The exporter's own version, for `oomwatch_build_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
}

impl BuildInfo {
    pub const CURRENT: Self = Self {
        version: env!("CARGO_PKG_VERSION"),
        revision: env!("OOMWATCH_REVISION"),
    };
}

/// The process-events listener's health.
pub(super) fn exit_events(f: &mut Family<'_, '_>, e: &ExitsStatus) -> Result<(), std::fmt::Error> {
    f.gauge(
        "oomwatch_exit_events_up",
        "1 while process events (fork, exec, exit) are received from the kernel; 0 means exits are inferred from scans as unknown.",
        Some(i64::from(e.up)),
    )?;
    f.counters(
        "oomwatch_exit_events_lost_total",
        "Exits that could not be accounted to a group: dropped (the kernel could not deliver events), unnamed (the process exited before its program could be read), overflow (more exits between two scrapes than the queue holds), untracked (a process the listener never knew ended: it started before the listener named the host's processes, or its fork event was lost).",
        LostCause::ALL
            .iter()
            .zip(e.lost)
            .map(|(cause, n)| ([("cause", cause.label())], n)),
    )?;
    f.counter(
        "oomwatch_exit_events_received_total",
        "Process events (fork, exec, comm, exit) received from the kernel.",
        Some(e.events),
    )?;
    Ok(())
}

/// The exporter itself: its state directory, each collector's outcome, its build.
pub(super) fn exporter(
    f: &mut Family<'_, '_>,
    s: &Snapshot,
    build: &BuildInfo,
) -> Result<(), std::fmt::Error> {
    f.counter(
        "oomwatch_state_write_errors_total",
        "Failed writes of the state file or the event log (see --state.dir).",
        Some(s.state.write_errors),
    )?;
    f.counter(
        "oomwatch_state_writes_total",
        "Writes of the state file since the exporter started (each one a new file, fsync'd, renamed into place): counts change it at once, the heartbeat every --state.heartbeat-interval.",
        Some(s.state.writes),
    )?;
    f.gauge(
        "oomwatch_events_pending",
        "Events kept in memory because the event log cannot be written now (a full disk, a read-only --state.dir); written when it can be.",
        Some(s.state.events_pending),
    )?;
    f.counter(
        "oomwatch_events_dropped_total",
        "Events lost because the event log could not be written and the in-memory queue was full (--events.max; exits go first, OOM kills and reboots last). Metrics are unaffected.",
        Some(s.state.events_dropped),
    )?;
    f.counter(
        "oomwatch_state_recovered_total",
        "Corrupt state files moved aside at start.",
        Some(s.state.recovered),
    )?;

    let c = &s.collectors;
    f.gauges(
        "oomwatch_collector_success",
        "1 when the collector's source was read in this scrape, 0 when it failed.",
        c.iter()
            .map(|o| ([("collector", o.name)], i64::from(o.success))),
    )?;
    f.gauges(
        "oomwatch_collector_duration_seconds",
        "Time the collector took in this scrape.",
        c.iter()
            .map(|o| ([("collector", o.name)], o.duration_seconds)),
    )?;
    f.gauges(
        "oomwatch_build_info",
        "The oomwatch build; always 1.",
        Some((
            [("version", build.version), ("revision", build.revision)],
            1,
        )),
    )?;
    Ok(())
}
