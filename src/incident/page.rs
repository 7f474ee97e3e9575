//! The incident page served at `/`: one server-rendered HTML document an operator reads
//! during an incident, from the latest scan's snapshot and the event log. No scripts, no
//! external assets (the style sheet is inline), and it refreshes itself with a meta tag.
//!
//! Sections, short ones first: the host (boot, uptime, last reboot and its cause, memory,
//! PSI, OOM kills this boot), the latest OOM kills with 24-hour counts, the next OOM
//! victims, the services nearest their memory limit, and the timeline of recent events.
//! Everything that comes from the host or the log (group names, command names, cgroup
//! paths, evidence) is escaped; this file does no I/O.

use std::fmt::Write;

use super::format::{ago, bytes, describe, duration, utc};
use super::page_events::PageEvents;
use crate::cgroupfs::MemcgEvent;
use crate::events::{Event, EventKind};
use crate::procfs::host::{MemInfo, MemoryPressure};
use crate::snapshot::{GroupMemory, Snapshot};

/// Services shown in the memory-limit table.
const LIMIT_ROWS: usize = 10;

/// What one page is drawn from.
#[derive(Debug)]
pub struct PageInput<'a> {
    pub snapshot: &'a Snapshot,
    /// What the page shows of the event log.
    pub events: &'a PageEvents,
    /// Now and the snapshot's time, seconds since the epoch.
    pub now: f64,
    pub scanned_at: f64,
    pub telemetry_path: &'a str,
    pub refresh_seconds: u64,
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a1a1a;background:#fff}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #eee;vertical-align:top}\
th{background:#f4f4f4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em;margin:0}dt{font-weight:600}dd{margin:0}\
.bad{color:#b00020;font-weight:600}.warn{color:#9a5b00;font-weight:600}.ok{color:#1e6b2e}\
.muted{color:#666}code{font-size:.95em}meter{width:8em}nav a{margin-right:1em}td.t,td.e,td.p{white-space:nowrap}";

/// Renders the whole page.
pub fn render(input: &PageInput<'_>) -> String {
    let snapshot = input.snapshot;
    let host = snapshot
        .boot
        .as_ref()
        .and_then(|b| b.hostname.as_deref())
        .unwrap_or("this host");
    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{refresh}\">\
<title>oomwatch: {host}</title><style>{STYLE}</style></head>\n<body>\n\
<header><h1>oomwatch on {host}</h1>\n<p class=\"muted\">Which process died, why, and what will die next. \
As of {now} (scan {age} old); refreshes every {refresh} s. Times are UTC.</p>\n\
<nav><a href=\"{metrics}\">Metrics</a><a href=\"/api/v1/events\">Events (JSON)</a>\
<a href=\"/-/healthy\">Health</a><a href=\"/-/ready\">Readiness</a></nav></header>\n",
        refresh = input.refresh_seconds,
        host = escape(host),
        now = utc(input.now),
        age = duration((input.now - input.scanned_at).max(0.0)),
        metrics = escape(input.telemetry_path),
    );
    // The short sections first, the long timeline last.
    host_section(&mut html, input);
    kills_section(&mut html, input);
    victims_section(&mut html, snapshot);
    limits_section(&mut html, &snapshot.group_memory);
    timeline_section(&mut html, input);
    let failed: Vec<&str> = snapshot
        .collectors
        .iter()
        .filter(|c| !c.success)
        .map(|c| c.name)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"warn\" id=\"failing\">Sources failing now (their parts are missing; see the exporter's log): {}</p>",
            escape(&failed.join(", "))
        );
    }
    let _ = write!(
        html,
        "<footer><p class=\"muted\">oomwatch {} (revision {})</p></footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        env!("OOMWATCH_REVISION"),
    );
    html
}

fn host_section(html: &mut String, input: &PageInput<'_>) {
    let snapshot = input.snapshot;
    html.push_str("<section id=\"host\"><h2>Host</h2><dl>\n");
    let mut rows = boot_rows(input);
    rows.extend(
        snapshot
            .memory
            .as_ref()
            .map(memory_rows)
            .into_iter()
            .flatten(),
    );
    rows.extend(snapshot.pressure.as_ref().map(pressure_row));
    rows.push(("OOM kills this boot", oom_kills_row(snapshot)));
    for (term, value) in rows {
        let _ = writeln!(html, "<dt>{term}</dt><dd>{value}</dd>");
    }
    html.push_str("</dl></section>\n");
}

/// The boot, the last reboot with its cause, and the boots seen.
fn boot_rows(input: &PageInput<'_>) -> Vec<(&'static str, String)> {
    let Some(boot) = &input.snapshot.boot else {
        return vec![(
            "Boot",
            "<span class=\"warn\">unknown (the boot collector failed or is off)</span>".into(),
        )];
    };
    let btime = boot.boot_time_seconds as f64;
    let history = &boot.history;
    let last = match &history.last_reboot {
        Some(reboot) => {
            let (class, verdict) = match reboot.unexpected {
                true => ("bad", "unexpected"),
                false => ("ok", "expected"),
            };
            let downtime = reboot
                .downtime_seconds
                .map_or_else(String::new, |d| format!(", down {}", duration(d)));
            format!(
                "{} ({}): <span class=\"{class}\">{verdict}, {}</span>{downtime}<br><span class=\"muted\">{}</span>",
                utc(reboot.at),
                ago(input.now, reboot.at),
                escape(&reboot.cause),
                escape(&reboot.evidence),
            )
        }
        None => "none seen since this state directory was created".into(),
    };
    vec![
        (
            "Booted",
            format!("{} (up {})", utc(btime), duration(input.now - btime)),
        ),
        ("Last reboot", last),
        (
            "Boots seen",
            format!(
                "{} ({} unexpected reboots)",
                history.boots_total, history.unexpected_reboots_total
            ),
        ),
    ]
}

/// Memory available (coloured by its share of the total) and swap.
fn memory_rows(memory: &MemInfo) -> [(&'static str, String); 2] {
    let available = match memory.available_bytes {
        Some(available) if memory.total_bytes > 0 => {
            let share = available as f64 / memory.total_bytes as f64;
            let class = if share < 0.1 {
                "bad"
            } else if share < 0.2 {
                "warn"
            } else {
                "ok"
            };
            format!(
                "<span class=\"{class}\">{} available</span> of {} ({:.0}%)",
                bytes(available),
                bytes(memory.total_bytes),
                share * 100.0
            )
        }
        _ => format!(
            "{} total (MemAvailable not reported)",
            bytes(memory.total_bytes)
        ),
    };
    let swap = if memory.swap_total_bytes > 0 {
        format!(
            "{} free of {}",
            bytes(memory.swap_free_bytes),
            bytes(memory.swap_total_bytes)
        )
    } else {
        "none".into()
    };
    [("Memory", available), ("Swap", swap)]
}

/// Memory pressure averages, marked when tasks waited 10% of the last 10 s or more.
fn pressure_row(pressure: &MemoryPressure) -> (&'static str, String) {
    let averages = |avg: Option<[f64; 3]>| {
        avg.map_or_else(
            || "n/a".to_owned(),
            |[a10, a60, a300]| format!("{a10:.2}% / {a60:.2}% / {a300:.2}%"),
        )
    };
    let busy = pressure.waiting_avg.is_some_and(|[a10, _, _]| a10 >= 10.0);
    (
        "Memory pressure (PSI)",
        format!(
            "<span class=\"{}\">some {}</span>, full {} <span class=\"muted\">(avg10 / avg60 / avg300)</span>",
            if busy { "warn" } else { "ok" },
            averages(pressure.waiting_avg),
            averages(pressure.stalled_avg)
        ),
    )
}

/// The kernel's OOM kill count this boot, and whether the kernel log explains it.
fn oom_kills_row(snapshot: &Snapshot) -> String {
    let kills = snapshot.vmstat_oom_kills.map(|k| k.to_string());
    let kmsg = snapshot.kmsg.as_ref().map(|k| {
        let unexplained = snapshot
            .vmstat_oom_kills
            .map(|v| k.ledger.unattributed_this_boot(v));
        let read = if k.up {
            "<span class=\"ok\">kernel log read</span>".to_owned()
        } else {
            "<span class=\"bad\">kernel log not read: victims are not named</span>".to_owned()
        };
        match unexplained {
            Some(u) if u > 0 => {
                format!("{read}; <span class=\"warn\">{u} not explained by it</span>")
            }
            _ => read,
        }
    });
    match (kills, kmsg) {
        (Some(kills), Some(kmsg)) => format!("{kills} ({kmsg})"),
        (Some(kills), None) => kills,
        (None, _) => "unknown (/proc/vmstat unread)".into(),
    }
}

/// The last 24 hours in counts, and the latest OOM kills: on a busy host, exits would push
/// the last kill out of the timeline, which is why kills get a section of their own.
fn kills_section(html: &mut String, input: &PageInput<'_>) {
    let day = &input.events.day;
    let _ = write!(
        html,
        "<section id=\"kills\"><h2>Latest OOM kills</h2>\n<p id=\"last-day\">Last 24 h: {} OOM kills, {} userspace OOM kills, \
{} restarts, {} exits ({} of them clean, code 0), {} reboots.",
        day.oom_kills,
        day.userspace_kills,
        day.restarts,
        day.exits,
        day.clean_exits,
        day.reboots,
    );
    for (kind, through) in &input.events.incomplete {
        let _ = write!(
            html,
            " <span class=\"warn\" id=\"truncated-{kind}\">Incomplete: the log dropped older {kind} events (--events.max), the counts miss those before {}.</span>",
            escape(&utc(*through)),
            kind = escape(kind),
        );
    }
    html.push_str("</p>\n");
    let kills: Vec<&Event> = input.events.latest_kills.iter().collect();
    if kills.is_empty() {
        html.push_str("<p>No OOM kill in the event log.</p>\n");
    } else {
        event_table(html, &kills, input.now);
    }
    html.push_str("</section>\n");
}

/// Every kind of event, newest first, clean exits left out.
fn timeline_section(html: &mut String, input: &PageInput<'_>) {
    let shown: Vec<&Event> = input.events.timeline.iter().collect();
    let _ = write!(
        html,
        "<section id=\"timeline\"><h2>Recent events</h2>\n\
<p class=\"muted\">Newest first, clean exits left out: {} of the {} events in the log; \
<a href=\"/api/v1/events\">all as JSON</a>, filter with <code>?type=oom_kill&amp;group=…&amp;since=1h</code>.",
        shown.len(),
        input.events.total
    );
    if input.events.skipped > 0 {
        let _ = write!(html, " {} unreadable lines skipped.", input.events.skipped);
    }
    html.push_str("</p>\n");
    if shown.is_empty() {
        html.push_str("<p>No events to show: no OOM kill, restart, failed exit or reboot has been recorded.</p></section>\n");
        return;
    }
    event_table(html, &shown, input.now);
    html.push_str("</section>\n");
}

/// A table of events, in the order given.
fn event_table(html: &mut String, events: &[&Event], now: f64) {
    html.push_str("<table><thead><tr><th>Time</th><th>Event</th><th>Group</th><th>Process</th><th>Details</th></tr></thead><tbody>\n");
    for event in events {
        let (title, details) = describe(event);
        let class = match &event.kind {
            EventKind::OomKill(_) | EventKind::UserspaceKill { .. } => "bad",
            EventKind::Reboot {
                unexpected: true, ..
            } => "bad",
            EventKind::Exit { .. } | EventKind::Restart { .. } | EventKind::Burst { .. } => "warn",
            EventKind::Reboot { .. } => "",
        };
        let process = event
            .kind
            .process()
            .map_or_else(String::new, |(pid, comm)| format!("{pid} {}", escape(comm)));
        let _ = writeln!(
            html,
            "<tr class=\"event {type}\"><td class=\"t\">{time}<br><span class=\"muted\">{ago}</span></td><td class=\"e {class}\">{title}</td><td>{group}</td><td class=\"p\">{process}</td><td>{details}</td></tr>",
            r#type = event.kind.type_name(),
            time = utc(event.time),
            ago = ago(now, event.time),
            title = escape(&title),
            group = escape(event.kind.group().unwrap_or("(host)")),
            details = escape(&details),
        );
    }
    html.push_str("</tbody></table>\n");
}

fn victims_section(html: &mut String, snapshot: &Snapshot) {
    html.push_str("<section id=\"victims\"><h2>Next OOM victims</h2>\n");
    let Some(processes) = &snapshot.processes else {
        html.push_str(
            "<p class=\"warn\">Unknown: the processes collector failed or is off.</p></section>\n",
        );
        return;
    };
    html.push_str("<p class=\"muted\">The processes the kernel would kill first in a host-wide OOM: highest oom_score first.</p>\n\
<table><thead><tr><th class=\"n\">PID</th><th>Command</th><th>Group</th><th class=\"n\">oom_score</th><th class=\"n\">oom_score_adj</th><th class=\"n\">RSS</th></tr></thead><tbody>\n");
    for p in &processes.top {
        let _ = writeln!(
            html,
            "<tr class=\"victim\"><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            p.pid,
            escape(&p.comm),
            escape(&p.group),
            p.oom_score,
            p.oom_score_adj,
            bytes(p.resident_bytes),
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn limits_section(html: &mut String, groups: &[GroupMemory]) {
    html.push_str("<section id=\"limits\"><h2>Nearest their memory limit</h2>\n");
    // A hard limit, else memory.high: the wall the service meets first.
    let mut limited: Vec<(&GroupMemory, u64, f64)> = groups
        .iter()
        .filter_map(|g| {
            let high = g.signals.as_ref().and_then(|s| s.high_bytes);
            let limit = g.limit_bytes.or(high).filter(|&l| l > 0)?;
            Some((g, limit, g.usage_bytes as f64 / limit as f64))
        })
        .collect();
    limited.sort_by(|a, b| b.2.total_cmp(&a.2));
    if limited.is_empty() {
        html.push_str("<p>No service runs under a memory cgroup limit (or the cgroups collector is off).</p></section>\n");
        return;
    }
    html.push_str("<p class=\"muted\">Usage of the cgroup that sets the tightest limit over the service (memory.high where it has no hard limit); the kernel kills inside it when usage reaches the limit. \
Before that it throttles at memory.high (throttling events since the service's cgroup counts began) and the service stalls on memory (its own PSI, share of the last 10 s: some / full).</p>\n\
<table><thead><tr><th>Group</th><th class=\"n\">Usage</th><th class=\"n\">Limit</th><th class=\"n\">Used</th><th></th><th class=\"n\">Headroom</th><th class=\"n\">memory.high</th><th class=\"n\">Throttled</th><th class=\"n\">Pressure</th><th class=\"n\">OOM kills in cgroup</th></tr></thead><tbody>\n");
    for (group, limit, share) in limited.iter().take(LIMIT_ROWS) {
        let class = if *share >= 0.9 {
            "bad"
        } else if *share >= 0.75 {
            "warn"
        } else {
            ""
        };
        let _ = writeln!(
            html,
            "<tr class=\"limit\"><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n {class}\">{:.0}%</td>\
<td><meter min=\"0\" max=\"1\" low=\"0.75\" high=\"0.9\" optimum=\"0\" value=\"{:.3}\"></meter></td><td class=\"n\">{}</td>{}<td class=\"n\">{}</td></tr>",
            escape(&group.group),
            bytes(group.usage_bytes),
            bytes(*limit),
            share * 100.0,
            share.min(1.0),
            bytes(limit.saturating_sub(group.usage_bytes)),
            pre_oom_cells(group),
            group.oom_kills.map_or_else(|| "-".to_owned(), |k| k.to_string()),
        );
    }
    html.push_str("</tbody></table></section>\n");
}

/// memory.high, throttling events and pressure of a group's own cgroup: the signals before
/// the kill, marked when the service is being throttled or stalls 10% of the time or more.
fn pre_oom_cells(group: &GroupMemory) -> String {
    let Some(s) = &group.signals else {
        return "<td class=\"n muted\">-</td><td class=\"n muted\">-</td><td class=\"n muted\">-</td>".into();
    };
    let high = s.high_bytes.map_or_else(|| "-".to_owned(), bytes);
    let throttled = s
        .events
        .iter()
        .find(|(e, _)| *e == MemcgEvent::High)
        .map(|(_, n)| *n);
    let throttled_cell = match throttled {
        Some(n) if n > 0 => format!("<td class=\"n warn\">{n}</td>"),
        Some(n) => format!("<td class=\"n\">{n}</td>"),
        None => "<td class=\"n muted\">-</td>".into(),
    };
    let pressure_cell = match s.pressure_avg10 {
        Some([some, full]) => format!(
            "<td class=\"n{}\">{some:.1}% / {full:.1}%</td>",
            if some >= 10.0 { " warn" } else { "" }
        ),
        None => "<td class=\"n muted\">-</td>".into(),
    };
    format!("<td class=\"n\">{high}</td>{throttled_cell}{pressure_cell}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OomKillEvent;
    use crate::exit_reason::ExitReason;
    use crate::snapshot::{ProcessRow, ProcessesSample};

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">&'x'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;x&#39;"
        );
    }

    #[test]
    fn the_page_shows_kills_victims_and_limits_with_names_escaped() {
        let snapshot = Snapshot {
            processes: Some(ProcessesSample {
                top: vec![ProcessRow {
                    pid: 42,
                    comm: "<script>".into(),
                    group: "api.service".into(),
                    oom_score: 900,
                    oom_score_adj: 500,
                    resident_bytes: 700 << 20,
                }],
                ..ProcessesSample::default()
            }),
            group_memory: vec![
                GroupMemory {
                    group: "db".into(),
                    limit_bytes: Some(1 << 30),
                    usage_bytes: 990 << 20,
                    oom_kills: Some(2),
                    signals: Some(crate::snapshot::GroupMemcgSignals {
                        events: vec![(MemcgEvent::High, 812), (MemcgEvent::Max, 4)],
                        high_bytes: Some(900 << 20),
                        pressure_avg10: Some([12.5, 3.0]),
                        ..Default::default()
                    }),
                },
                GroupMemory {
                    group: "free".into(),
                    limit_bytes: None,
                    usage_bytes: 5,
                    oom_kills: None,
                    signals: None,
                },
            ],
            ..Snapshot::default()
        };
        let clean = Event {
            time: 1_700_000_001.0,
            kind: EventKind::exit("api.service", 43, "sh", ExitReason::ExitedOk, None),
        };
        let events = [
            Event {
                time: 1_700_000_000.0,
                kind: EventKind::OomKill(Box::new(OomKillEvent {
                    group: "api.service".into(),
                    pid: 41,
                    comm: "java".into(),
                    constraint: "memcg".into(),
                    anon_rss_bytes: Some(64 << 20),
                    ..OomKillEvent::default()
                })),
            },
            clean,
        ];
        let html = render(&PageInput {
            snapshot: &snapshot,
            events: &PageEvents::from_events(&events, 1_700_000_060.0),
            now: 1_700_000_060.0,
            scanned_at: 1_700_000_059.0,
            telemetry_path: "/metrics",
            refresh_seconds: 30,
        });
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains(
            "OOM kill</td><td>api.service</td><td class=\"p\">41 java</td><td>RSS 64 MiB"
        ));
        assert!(html.contains(
            "Last 24 h: 1 OOM kills, 0 userspace OOM kills, 0 restarts, 1 exits (1 of them clean, code 0), 0 reboots."
        ));
        assert!(
            !html.contains("exited_ok"),
            "clean exits are left out of the timeline"
        );
        assert!(html.contains("2023-11-14 22:13:20Z<br><span class=\"muted\">1m 0s ago"));
        assert!(html.contains("<td>db</td><td class=\"n\">990 MiB</td><td class=\"n\">1.0 GiB</td><td class=\"n bad\">97%</td>"));
        assert!(
            html.contains("<td class=\"n\">900 MiB</td><td class=\"n warn\">812</td><td class=\"n warn\">12.5% / 3.0%</td><td class=\"n\">2</td></tr>"),
            "throttling and pressure beside the limit"
        );
        assert!(
            !html.contains("<td>free</td>"),
            "unlimited groups are not listed"
        );
        assert!(html.contains("href=\"/metrics\""));
    }
}
