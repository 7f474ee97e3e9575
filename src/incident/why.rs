//! `oomwatch why <name|pid>`, the answer: which groups the name or pid means, their latest
//! deaths with the cause (OOM kill with the kernel's numbers, signal, exit code, reboot),
//! their restarts, the counts kept in the state file, and the OOM risk of the instances
//! alive now, as text for a terminal (names with their control characters escaped). Pure:
//! the command reads the state directory and /proc and hands them in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::format::{ago, bytes, describe, duration, utc};
use crate::events::{Event, EventKind};
use crate::exit_reason::ExitReason;
use crate::kills::ledger::VictimTally;
use crate::state::PersistedState;
use crate::terminal_text::escape_controls;

/// What the operator asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    /// A group (`nginx.service`, or `nginx` for it) or a command name.
    Name(String),
}

impl Target {
    /// All digits is a pid; anything else a name.
    pub fn parse(text: &str) -> Self {
        match text.parse::<u32>() {
            Ok(pid) if !text.starts_with('+') => Target::Pid(pid),
            _ => Target::Name(text.to_owned()),
        }
    }
}

/// A process alive now, as the command read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveInstance {
    pub pid: u32,
    pub comm: String,
    pub group: String,
    pub oom_score: i32,
    pub oom_score_adj: i32,
    pub resident_bytes: u64,
    /// 1 for the process the kernel would kill first in a host-wide OOM.
    pub rank: usize,
    pub memcg: Option<String>,
    /// The tightest memory limit over its cgroup and that cgroup's usage.
    pub limit: Option<(u64, u64)>,
}

/// The answer, before it is written out.
#[derive(Debug)]
pub struct Explanation<'a> {
    pub target: &'a Target,
    /// The groups the target names, by name.
    pub groups: BTreeSet<String>,
    /// OOM kills, exits and reboots, newest first (an exit that only repeats an OOM kill
    /// of the same process is folded into it).
    pub deaths: Vec<&'a Event>,
    pub restarts: Vec<&'a Event>,
    /// From the state file, summed over the groups.
    pub restarts_total: u64,
    pub exits_total: BTreeMap<ExitReason, u64>,
    pub kernel_kills: Vec<&'a VictimTally>,
    pub live: Vec<&'a LiveInstance>,
    /// Events in the log, and the oldest one's time: how far back the log reaches.
    pub events_in_log: usize,
    pub log_starts: Option<f64>,
}

/// Works out the answer. `events` oldest first, as the log holds them.
pub fn explain<'a>(
    target: &'a Target,
    events: &'a [Event],
    state: &'a PersistedState,
    live: &'a [LiveInstance],
    max_deaths: usize,
) -> Explanation<'a> {
    let groups = named_groups(target, events, state, live);
    let ours = |e: &Event| e.kind.group().is_some_and(|g| groups.contains(g));
    let mut deaths: Vec<&Event> = events
        .iter()
        .rev()
        .filter(|e| match &e.kind {
            EventKind::OomKill(_) | EventKind::Exit { .. } | EventKind::UserspaceKill { .. } => {
                ours(e) && !repeats_a_kill(e, events)
            }
            EventKind::Reboot { .. } => !groups.is_empty(),
            EventKind::Restart { .. } | EventKind::Burst { .. } => false,
        })
        .collect();
    // By time: an exit is logged when a scrape settles it, after a kill received live.
    deaths.sort_by(|a, b| b.time.total_cmp(&a.time));
    deaths.truncate(max_deaths);
    let restarts: Vec<&Event> = events
        .iter()
        .rev()
        .filter(|e| matches!(e.kind, EventKind::Restart { .. }) && ours(e))
        .take(max_deaths)
        .collect();
    let (restarts_total, exits_total) = state_totals(state, &groups);
    Explanation {
        target,
        deaths,
        restarts,
        restarts_total,
        exits_total,
        kernel_kills: state
            .kmsg
            .victims
            .iter()
            .filter(|v| groups.contains(&v.group))
            .collect(),
        live: live.iter().filter(|l| groups.contains(&l.group)).collect(),
        groups,
        events_in_log: events.len(),
        log_starts: events.first().map(|e| e.time),
    }
}

/// The groups a target means: the groups a pid was seen in (in the log or alive), or the
/// groups and commands a name matches (`nginx` for `nginx.service`) in the log, among the
/// live processes, the state file's groups and its kernel-log victims.
pub fn named_groups(
    target: &Target,
    events: &[Event],
    state: &PersistedState,
    live: &[LiveInstance],
) -> BTreeSet<String> {
    let mut groups = BTreeSet::new();
    match target {
        Target::Pid(pid) => {
            groups.extend(events.iter().filter_map(|e| target.group_named_by(e)));
            groups.extend(
                live.iter()
                    .filter(|l| l.pid == *pid)
                    .map(|l| l.group.clone()),
            );
        }
        Target::Name(name) => {
            let names = |group: &str, comm: &str| names_service(name, group, comm);
            groups.extend(events.iter().filter_map(|e| target.group_named_by(e)));
            groups.extend(
                live.iter()
                    .filter(|l| names(&l.group, &l.comm))
                    .map(|l| l.group.clone()),
            );
            groups.extend(state.groups.groups.keys().filter(|g| names(g, "")).cloned());
            groups.extend(
                state
                    .kmsg
                    .victims
                    .iter()
                    .filter(|v| names(&v.group, &v.comm))
                    .map(|v| v.group.clone()),
            );
        }
    }
    groups
}

/// A name means a group of that name, a unit of that name (`nginx` for `nginx.service`),
/// or the group of a command of that name.
fn names_service(name: &str, group: &str, comm: &str) -> bool {
    group == name || group.strip_suffix(".service") == Some(name) || comm == name
}

impl Target {
    /// The group of `event` when the event is about this target (its pid, or a group or
    /// command of its name): how the log itself tells which groups a target means. An
    /// event of a whole group (a userspace killer's kill of its cgroup) names it by name.
    pub fn group_named_by(&self, event: &Event) -> Option<String> {
        let group = event.kind.group()?;
        let named = match (self, event.kind.process()) {
            (Target::Pid(wanted), Some((pid, _))) => pid == *wanted,
            (Target::Pid(_), None) => false,
            (Target::Name(name), process) => {
                names_service(name, group, process.map_or("", |(_, comm)| comm))
            }
        };
        named.then(|| group.to_owned())
    }
}

/// An `oom_killed` exit of a process whose OOM kill is in the log (within 5 minutes), or a
/// SIGKILL of a group a userspace killer killed (within a minute): the same death, told
/// once by the kill.
fn repeats_a_kill(exit: &Event, events: &[Event]) -> bool {
    match &exit.kind {
        EventKind::Exit {
            reason: ExitReason::OomKilled,
            pid,
            ..
        } => events.iter().any(|k| match &k.kind {
            EventKind::OomKill(kill) => kill.pid == *pid && (k.time - exit.time).abs() < 300.0,
            _ => false,
        }),
        // A SIGKILL of the group within a minute of a userspace killer's kill of its
        // cgroup: that kill, seen again as the exit it caused.
        EventKind::Exit {
            reason: ExitReason::Killed,
            group,
            ..
        } => events.iter().any(|k| match &k.kind {
            EventKind::UserspaceKill { group: killed, .. } => {
                killed == group && (k.time - exit.time).abs() < 60.0
            }
            _ => false,
        }),
        _ => false,
    }
}

/// The restarts and exits the state file counted for these groups.
fn state_totals(
    state: &PersistedState,
    groups: &BTreeSet<String>,
) -> (u64, BTreeMap<ExitReason, u64>) {
    let mut exits_total = BTreeMap::new();
    let mut restarts_total = 0;
    for (name, group) in &state.groups.groups {
        if groups.contains(name) {
            restarts_total += group.restarts;
            for (reason, count) in &group.exits {
                *exits_total.entry(*reason).or_default() += count;
            }
        }
    }
    (restarts_total, exits_total)
}

impl Explanation<'_> {
    /// The answer as text for a terminal: the verdict first, then the evidence.
    pub fn to_text(&self, now: f64) -> String {
        let mut out = String::new();
        let asked = match self.target {
            Target::Pid(pid) => format!("pid {pid}"),
            Target::Name(name) => escape_controls(name).into_owned(),
        };
        if self.groups.is_empty() {
            let reach = self.log_starts.map_or_else(
                || "the event log is empty".to_owned(),
                |t| {
                    format!(
                        "the event log holds {} events since {}",
                        self.events_in_log,
                        utc(t)
                    )
                },
            );
            let _ = writeln!(
                out,
                "{asked}: no group, command or pid of that name is known ({reach}); no process of that name is running now."
            );
            return out;
        }
        let groups: Vec<_> = self.groups.iter().map(|g| escape_controls(g)).collect();
        let _ = writeln!(out, "{asked}: group {}", groups.join(", "));
        out.push('\n');
        let _ = writeln!(out, "Answer: {}", self.verdict(now));
        out.push('\n');
        self.write_deaths(&mut out, now);
        self.write_restarts(&mut out, now);
        self.write_counts(&mut out);
        self.write_risk(&mut out);
        out
    }

    fn write_deaths(&self, out: &mut String, now: f64) {
        out.push_str("Latest deaths, newest first:\n");
        if self.deaths.is_empty() {
            out.push_str("  none recorded\n");
        }
        for event in &self.deaths {
            let (title, details) = describe(event);
            let what = match (event.kind.process(), &event.kind) {
                (Some((pid, comm)), _) => {
                    format!(
                        "pid {pid} {}; {}",
                        escape_controls(comm),
                        escape_controls(&details)
                    )
                }
                // A cgroup killed whole: the details name it.
                (None, EventKind::UserspaceKill { .. }) => escape_controls(&details).into_owned(),
                (None, _) => format!("(host); {}", escape_controls(&details)),
            };
            let _ = writeln!(
                out,
                "  {}  {:>14}  {}: {}",
                utc(event.time),
                ago(now, event.time),
                escape_controls(&title),
                what.trim_end_matches("; ")
            );
        }
    }

    fn write_restarts(&self, out: &mut String, now: f64) {
        out.push_str("\nRestarts, newest first:\n");
        if self.restarts.is_empty() {
            out.push_str("  none recorded\n");
        }
        for event in &self.restarts {
            let (_, details) = describe(event);
            let process = event
                .kind
                .process()
                .map_or_else(String::new, |(pid, comm)| match comm.is_empty() {
                    true => format!("pid {pid}"),
                    false => format!("pid {pid} {}", escape_controls(comm)),
                });
            let _ = writeln!(
                out,
                "  {}  {:>14}  restarted as {process}; {}",
                utc(event.time),
                ago(now, event.time),
                escape_controls(&details)
            );
        }
    }

    fn write_counts(&self, out: &mut String) {
        let exits: Vec<String> = self
            .exits_total
            .iter()
            .map(|(reason, n)| format!("{} {n}", reason.label()))
            .collect();
        let kills: u64 = self.kernel_kills.iter().map(|v| v.kills).sum();
        let _ = writeln!(
            out,
            "\nCounted since the state directory was created: {} restarts; exits: {}; kernel OOM kills: {kills}.",
            self.restarts_total,
            if exits.is_empty() { "none".to_owned() } else { exits.join(", ") },
        );
    }

    fn write_risk(&self, out: &mut String) {
        out.push_str("\nOOM risk now:\n");
        if self.live.is_empty() {
            out.push_str("  not running: no live process of this group\n");
            return;
        }
        let _ = writeln!(
            out,
            "  {:>7}  {:<16} {:>9} {:>13} {:>10} {:>5}  MEMORY LIMIT",
            "PID", "COMMAND", "OOM_SCORE", "OOM_SCORE_ADJ", "RSS", "RANK"
        );
        for l in &self.live {
            let limit = match l.limit {
                Some((limit, usage)) if limit > 0 => format!(
                    "{} of {} used ({:.0}%) in {}",
                    bytes(usage),
                    bytes(limit),
                    usage as f64 / limit as f64 * 100.0,
                    escape_controls(l.memcg.as_deref().unwrap_or("?"))
                ),
                _ => "none (host memory)".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:>7}  {:<16} {:>9} {:>13} {:>10} {:>5}  {limit}",
                l.pid,
                escape_controls(&l.comm),
                l.oom_score,
                l.oom_score_adj,
                bytes(l.resident_bytes),
                l.rank
            );
        }
        out.push_str("  (RANK 1: the first process the kernel would kill in a host-wide OOM)\n");
    }

    /// One sentence: the latest death and what followed.
    fn verdict(&self, now: f64) -> String {
        let running = match self.live.len() {
            0 => "It is not running now.".to_owned(),
            1 => "1 instance is running now.".to_owned(),
            n => format!("{n} instances are running now."),
        };
        let Some(death) = self.deaths.first() else {
            return format!("no death recorded in the event log. {running}");
        };
        let when = format!("{} ({})", ago(now, death.time), utc(death.time));
        let (title, details) = describe(death);
        let (title, details) = (escape_controls(&title), escape_controls(&details));
        let what = match &death.kind {
            EventKind::OomKill(kill) => format!(
                "pid {} ({}) was killed by the kernel's OOM killer {when}: {details}.",
                kill.pid,
                escape_controls(&kill.comm)
            ),
            EventKind::Exit { pid, comm, .. } => format!(
                "pid {pid} ({}) ended {when}: {title} ({details}).",
                escape_controls(comm)
            ),
            EventKind::UserspaceKill {
                killer,
                cgroup,
                reason,
                ..
            } => format!(
                "its cgroup {} was killed by {} (a userspace OOM killer, not the kernel) {when}, for {}.",
                escape_controls(cgroup),
                escape_controls(killer),
                escape_controls(reason)
            ),
            _ => format!("the host rebooted {when}: {title} ({details})."),
        };
        let back = self
            .restarts
            .iter()
            .rev()
            .find(|r| r.time >= death.time)
            .and_then(|r| r.kind.process().map(|(pid, _)| (r.time, pid)))
            .map_or_else(String::new, |(time, pid)| {
                format!(
                    " It came back as pid {pid} {} later.",
                    duration(time - death.time)
                )
            });
        format!("{what}{back} {running}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OomKillEvent;
    use crate::exit_reason::WaitStatus;

    fn staged() -> Vec<Event> {
        vec![
            Event {
                time: 1000.0,
                kind: EventKind::Reboot {
                    boot_id: "b2".into(),
                    previous_boot_id: Some("b1".into()),
                    unexpected: false,
                    cause: "clean_shutdown".into(),
                    evidence: "the clean-stop marker".into(),
                    downtime_seconds: Some(30.0),
                },
            },
            Event {
                time: 2000.0,
                kind: EventKind::OomKill(Box::new(OomKillEvent {
                    group: "api.service".into(),
                    pid: 41,
                    comm: "java".into(),
                    constraint: "memcg".into(),
                    memcg: Some("/system.slice/api.service".into()),
                    anon_rss_bytes: Some(1 << 30),
                    file_rss_bytes: Some(0),
                    shmem_rss_bytes: Some(0),
                    oom_score_adj: Some(0),
                    ..OomKillEvent::default()
                })),
            },
            Event {
                time: 2000.5,
                kind: EventKind::exit(
                    "api.service",
                    41,
                    "java",
                    ExitReason::OomKilled,
                    Some(WaitStatus::Signaled {
                        signal: 9,
                        core_dumped: false,
                    }),
                ),
            },
            Event {
                time: 2010.0,
                kind: EventKind::Restart {
                    group: "api.service".into(),
                    pid: 77,
                    comm: "java".into(),
                    gap_seconds: Some(10.0),
                    after: None,
                },
            },
            Event {
                time: 2500.0,
                kind: EventKind::exit("db", 5, "mysqld", ExitReason::Crashed, None),
            },
        ]
    }

    #[test]
    fn a_userspace_kill_is_the_death_and_its_sigkill_is_folded_into_it() {
        // The exit is settled and logged after the kill received live on D-Bus, but
        // happened before it.
        let events = vec![
            Event {
                time: 3007.0,
                kind: EventKind::UserspaceKill {
                    group: "squeezed.service".into(),
                    killer: "systemd-oomd".into(),
                    cgroup: "/pressure.slice/squeezed.service".into(),
                    reason: "memory-pressure".into(),
                },
            },
            Event {
                time: 3000.0,
                kind: EventKind::exit(
                    "squeezed.service",
                    9,
                    "awk",
                    ExitReason::Killed,
                    Some(WaitStatus::Signaled {
                        signal: 9,
                        core_dumped: false,
                    }),
                ),
            },
        ];
        let state = PersistedState::default();
        let target = Target::parse("squeezed");
        let answer = explain(&target, &events, &state, &[], 10);
        assert_eq!(answer.deaths.len(), 1, "the SIGKILL is the same death");
        let text = answer.to_text(3020.0);
        assert!(
            text.contains("Answer: its cgroup /pressure.slice/squeezed.service was killed by systemd-oomd (a userspace OOM killer, not the kernel) 13s ago (1970-01-01 00:50:07Z), for memory-pressure."),
            "{text}"
        );
        assert!(
            text.contains("systemd-oomd kill: cgroup /pressure.slice/squeezed.service killed for memory-pressure\n"),
            "{text}"
        );
    }

    #[test]
    fn why_names_the_kill_and_the_restart_for_a_name_or_a_pid() {
        let events = staged();
        let state = PersistedState::default();
        let live = [LiveInstance {
            pid: 77,
            comm: "java".into(),
            group: "api.service".into(),
            oom_score: 680,
            oom_score_adj: 0,
            resident_bytes: 900 << 20,
            rank: 1,
            memcg: Some("/system.slice/api.service".into()),
            limit: Some((1 << 30, 950 << 20)),
        }];
        for asked in ["api", "api.service", "java", "41"] {
            let target = Target::parse(asked);
            let why = explain(&target, &events, &state, &live, 10);
            assert_eq!(
                why.groups.iter().collect::<Vec<_>>(),
                ["api.service"],
                "{asked}"
            );
            // The exit repeats the kill: folded. The reboot is host context.
            assert_eq!(why.deaths.len(), 2, "{asked}");
            let text = why.to_text(2600.0);
            assert!(
                text.contains(
                    "Answer: pid 41 (java) was killed by the kernel's OOM killer 10m 0s ago \
                 (1970-01-01 00:33:20Z): RSS 1.0 GiB (anon 1.0 GiB, file 0 B, shmem 0 B), cgroup \
                 /system.slice/api.service hit its memory limit, oom_score_adj 0. It came back as \
                 pid 77 10s later. 1 instance is running now."
                ),
                "{text}"
            );
            assert!(text.contains("restarted as pid 77 java"), "{text}");
            assert!(
                text.contains("950 MiB of 1.0 GiB used (93%) in /system.slice/api.service"),
                "{text}"
            );
        }
        let unknown = Target::parse("nginx");
        let text = explain(&unknown, &events, &state, &live, 10).to_text(2600.0);
        assert!(text.starts_with("nginx: no group, command or pid of that name is known (the event log holds 5 events since 1970-01-01 00:16:40Z)"), "{text}");
        let kind = EventKind::exit("g\u{1b}[2J", 9, "c\r\nx\u{9b}", ExitReason::Crashed, None);
        let hostile = [Event { time: 2000.0, kind }];
        let text = explain(&Target::Pid(9), &hostile, &state, &[], 10).to_text(2600.0);
        assert!(text.starts_with("pid 9: group g\\x1b[2J\n"), "{text}");
        assert!(text.contains("pid 9 (c\\x0d\\x0ax\\x9b) ended"), "{text}");
        assert!(!text.contains(['\u{1b}', '\r', '\u{9b}']), "{text}");
        let db = Target::parse("db");
        let text = explain(&db, &events, &state, &[], 10).to_text(2600.0);
        assert!(text.contains("Answer: pid 5 (mysqld) ended 1m 40s ago (1970-01-01 00:41:40Z): exit: crashed (no exit status (seen gone between scans)). It is not running now."), "{text}");
    }
}
