//! Renders a snapshot as OpenMetrics text through prometheus-client.
//!
//! Every series is drawn from the snapshot handed in (one scan), through a
//! `prometheus_client::collector::Collector`, so nothing accumulates between scrapes here.
//! Metric names are written as in the catalogue (docs/metrics.md); the unit suffix
//! (`_bytes`, `_seconds`) and the counter suffix (`_total`) are split off for the encoder,
//! which writes them back with the matching `# UNIT` line. The whole exposition is encoded
//! into one buffer before anything is sent: a scrape never sees half of it.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use std::collections::BTreeMap;

use crate::exits::reason::ExitReason;
use crate::exits::LostCause;
use crate::kmsg::ledger::VictimTally;
use crate::snapshot::{GroupRow, KmsgSample, ProcessRow, Snapshot};

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

/// The Content-Type of the OpenMetrics exposition, served to clients that accept it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Content-Type of the Prometheus text format 0.0.4, served to every other client.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites an OpenMetrics exposition from `render` into the Prometheus text format 0.0.4:
/// counter families take their sample name (`_total`), and `# UNIT` and `# EOF` go.
/// Samples and label escaping are the same in both formats.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut text = String::with_capacity(openmetrics.len());
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.push(name);
                text.push_str("# TYPE ");
                text.push_str(name);
                text.push_str("_total counter\n");
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    // HELP comes before TYPE in each family: rename the counters' HELP lines too.
    if counters.is_empty() {
        return text;
    }
    let mut renamed = String::with_capacity(text.len() + 8 * counters.len());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if counters.contains(&name) {
                renamed.push_str("# HELP ");
                renamed.push_str(name);
                renamed.push_str("_total");
                renamed.push_str(&rest[name.len()..]);
                renamed.push('\n');
                continue;
            }
        }
        renamed.push_str(line);
        renamed.push('\n');
    }
    renamed
}

/// Encodes the snapshot as a complete OpenMetrics exposition (ending in `# EOF`).
pub fn render(snapshot: Arc<Snapshot>, build: BuildInfo) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotMetrics { snapshot, build }));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// The kernel-log series: kills per victim, the latest kill of each, and the log's health.
fn render_kmsg(
    f: &mut Family<'_, '_>,
    k: &KmsgSample,
    vmstat_oom_kills: Option<u64>,
) -> Result<(), std::fmt::Error> {
    let mut victims: Vec<&VictimTally> = k.ledger.victims.iter().collect();
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
        "OOM kills in /proc/vmstat since boot minus kills the kernel log explained (0 when every kill was named).",
        vmstat_oom_kills.map(|v| v as i64 - k.ledger.explained_this_boot() as i64),
    )?;
    let mut userspace: Vec<_> = k.ledger.userspace.iter().collect();
    userspace.sort_by(|a, b| (&a.killer, &a.group).cmp(&(&b.killer, &b.group)));
    f.counters(
        "oomwatch_userspace_oom_kills_total",
        "Kills by userspace OOM killers (systemd-oomd, earlyoom, ...) seen in the kernel log, never counted as kernel kills.",
        userspace.iter().map(|u| {
            let labels = [("killer", u.killer.as_str()), ("group", u.group.as_str())];
            (labels, u.kills)
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let om = "# HELP a_total_x x\n# HELP c Kills.\n# TYPE c counter\nc_total 3\n\
# HELP g_bytes Size.\n# TYPE g_bytes gauge\n# UNIT g_bytes bytes\ng_bytes{l=\"v\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a_total_x x\n# HELP c_total Kills.\n# TYPE c_total counter\nc_total 3\n\
# HELP g_bytes Size.\n# TYPE g_bytes gauge\ng_bytes{l=\"v\"} 1\n"
        );
    }
}

#[derive(Debug)]
struct SnapshotMetrics {
    snapshot: Arc<Snapshot>,
    build: BuildInfo,
}

/// Splits a catalogue name into the encoder's base name and unit.
fn split_unit(name: &str) -> (&str, Option<&'static Unit>) {
    if let Some(base) = name.strip_suffix("_bytes") {
        (base, Some(&Unit::Bytes))
    } else if let Some(base) = name.strip_suffix("_seconds") {
        (base, Some(&Unit::Seconds))
    } else {
        (name, None)
    }
}

/// Writes one metric family; families with no series are left out entirely.
struct Family<'e, 'w> {
    encoder: &'e mut DescriptorEncoder<'w>,
}

impl Family<'_, '_> {
    /// Encodes `series` under `name` (a catalogue name: its `_total`, `_bytes` or
    /// `_seconds` suffix is split off for the encoder, which writes it back).
    fn family<L, M>(
        &mut self,
        name: &str,
        help: &str,
        metric_type: MetricType,
        series: impl IntoIterator<Item = (L, M)>,
    ) -> Result<(), std::fmt::Error>
    where
        L: EncodeLabelSet,
        M: EncodeMetric,
    {
        let mut series = series.into_iter().peekable();
        if series.peek().is_none() {
            return Ok(());
        }
        let mut metric = self.descriptor(name, help, metric_type)?;
        for (labels, value) in series {
            value.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// One unlabelled sample, written without a label set.
    fn single<M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        metric_type: MetricType,
        value: Option<M>,
    ) -> Result<(), std::fmt::Error> {
        let Some(value) = value else { return Ok(()) };
        value.encode(self.descriptor(name, help, metric_type)?)
    }

    /// HELP and TYPE for `name` (a counter's `_total` and the unit suffix split off, as the
    /// encoder adds them back).
    fn descriptor<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        metric_type: MetricType,
    ) -> Result<MetricEncoder<'s>, std::fmt::Error> {
        let name = match metric_type {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let (base, unit) = split_unit(name);
        self.encoder
            .encode_descriptor(base, help, unit, metric_type)
    }

    fn gauge<V: EncodeGaugeValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        value: Option<V>,
    ) -> Result<(), std::fmt::Error> {
        self.single(name, help, MetricType::Gauge, value.map(ConstGauge::new))
    }

    fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) -> Result<(), std::fmt::Error> {
        let series = series.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
        self.family(name, help, MetricType::Gauge, series)
    }

    fn counter<V: EncodeCounterValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        value: Option<V>,
    ) -> Result<(), std::fmt::Error> {
        self.single(
            name,
            help,
            MetricType::Counter,
            value.map(ConstCounter::new),
        )
    }

    fn counters<L: EncodeLabelSet, V: EncodeCounterValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) -> Result<(), std::fmt::Error> {
        let series = series.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
        self.family(name, help, MetricType::Counter, series)
    }
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.snapshot;
        let mut f = Family {
            encoder: &mut encoder,
        };

        f.counter(
            "oomwatch_vmstat_oom_kills_total",
            "OOM kills since boot, from /proc/vmstat oom_kill: the ground truth count.",
            s.vmstat_oom_kills,
        )?;

        let memory = s.memory.as_ref();
        f.gauge(
            "oomwatch_memory_total_bytes",
            "Host memory (MemTotal).",
            memory.map(|m| m.total_bytes),
        )?;
        f.gauge(
            "oomwatch_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable).",
            memory.and_then(|m| m.available_bytes),
        )?;
        f.gauge(
            "oomwatch_swap_total_bytes",
            "Swap space (SwapTotal).",
            memory.map(|m| m.swap_total_bytes),
        )?;
        f.gauge(
            "oomwatch_swap_free_bytes",
            "Unused swap space (SwapFree).",
            memory.map(|m| m.swap_free_bytes),
        )?;

        let pressure = s.pressure.as_ref();
        f.counter(
            "oomwatch_memory_pressure_waiting_seconds_total",
            "Time at least one task waited on memory (PSI memory some total).",
            pressure.map(|p| p.waiting_seconds),
        )?;
        f.counter(
            "oomwatch_memory_pressure_stalled_seconds_total",
            "Time all non-idle tasks stalled on memory at once (PSI memory full total).",
            pressure.map(|p| p.stalled_seconds),
        )?;

        let boot = s.boot.as_ref();
        f.gauge(
            "oomwatch_boot_time_seconds",
            "Boot time from /proc/stat btime, seconds since the epoch (moves with clock steps; reboots are decided by boot_id).",
            boot.map(|b| b.boot_time_seconds as i64),
        )?;
        f.gauges(
            "oomwatch_boot_info",
            "The current boot, named by its boot_id; always 1.",
            boot.map(|b| ([("boot_id", b.boot_id.as_str())], 1)),
        )?;
        let history = boot.map(|b| &b.history);
        f.counter(
            "oomwatch_boots_total",
            "Boots seen since the state directory was created (decided by boot_id, persisted).",
            history.map(|h| h.boots_total),
        )?;
        f.counter(
            "oomwatch_unexpected_reboots_total",
            "Reboots not preceded by a clean shutdown: crash, power loss, panic, watchdog reset (persisted).",
            history.map(|h| h.unexpected_reboots_total),
        )?;
        let last = history.and_then(|h| h.last_reboot.as_ref());
        f.gauges(
            "oomwatch_last_reboot_unexpected",
            "1 when the last reboot was unexpected, with its cause (no_clean_shutdown, kernel_panic, oops); 0 for clean_shutdown or unknown.",
            last.map(|r| ([("cause", r.cause.as_str())], i64::from(r.unexpected))),
        )?;
        f.gauge(
            "oomwatch_last_downtime_seconds",
            "From the previous boot's last sign of life (oomwatch's heartbeat) to this boot's start.",
            last.and_then(|r| r.downtime_seconds),
        )?;

        if let Some(p) = &s.processes {
            let top = &p.top;
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
            )?;

            let g = &p.groups;
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
                "Times a long-lived top-level instance of the group was replaced by a new one.",
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
            f.counter(
                "oomwatch_processes_vanished_total",
                "Processes that exited while they were being read (skipped, not errors).",
                Some(p.vanished_total),
            )?;
            f.gauge(
                "oomwatch_processes_pinned",
                "Processes held open between scans (one descriptor each, bounded by --processes.max-pinned and the open-file limit).",
                Some(p.pinned),
            )?;
        }

        let gm = &s.group_memory;
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

        if let Some(k) = &s.kmsg {
            render_kmsg(&mut f, k, s.vmstat_oom_kills)?;
        }
        if let Some(e) = &s.exits {
            f.gauge(
                "oomwatch_exit_events_up",
                "1 while process events (fork, exec, exit) are received from the kernel; 0 means exits are inferred from scans as unknown.",
                Some(i64::from(e.up)),
            )?;
            f.counters(
                "oomwatch_exit_events_lost_total",
                "Exits that could not be accounted to a group: dropped (the kernel could not deliver events), unnamed (the process exited before its program could be read), overflow (more exits between two scrapes than the queue holds).",
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
        }

        f.counter(
            "oomwatch_state_write_errors_total",
            "Failed writes of the state file or the event log (see --state.dir).",
            Some(s.state.write_errors),
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
                [
                    ("version", self.build.version),
                    ("revision", self.build.revision),
                ],
                1,
            )),
        )?;
        Ok(())
    }
}
