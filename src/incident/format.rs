//! How the incident view writes values for people: sizes in binary units, durations in
//! their two largest units, times in UTC, and each event as a title and a line of
//! details. Shared by the page, `oomwatch events` and `oomwatch why`, so the three say the
//! same thing the same way. Pure; no HTML here (the page escapes what it takes).

use crate::events::{Event, EventKind, OomKillEvent};

/// `1536` -> `1.5 KiB`; one decimal below 10 units, none above.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if value < 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.0} {}", UNITS[unit]),
    }
}

/// `3725.0` -> `1h 2m`: the two largest units; under a minute, whole seconds.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    let total = seconds.round() as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// Seconds since the epoch as `2025-06-01 12:34:56Z` (UTC; no time zone database needed).
pub fn utc(epoch_seconds: f64) -> String {
    if !epoch_seconds.is_finite() {
        return "?".into();
    }
    let secs = epoch_seconds.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `now - then` as `5m 3s ago`; a time in the future (a stepped clock) says `in the future`.
pub fn ago(now: f64, then: f64) -> String {
    if then > now + 1.0 {
        return "in the future".into();
    }
    format!("{} ago", duration(now - then))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An event in words: a short title (`OOM kill`, `exit: crashed`, `reboot`) and the
/// details an SRE needs to judge it.
pub fn describe(event: &Event) -> (String, String) {
    match &event.kind {
        EventKind::OomKill(kill) => ("OOM kill".into(), kill_details(kill)),
        EventKind::UserspaceKill {
            killer,
            cgroup,
            reason,
            ..
        } => (
            format!("{killer} kill"),
            format!("cgroup {cgroup} killed for {reason}"),
        ),
        EventKind::Restart {
            gap_seconds, after, ..
        } => {
            let after =
                after.map_or_else(String::new, |reason| format!("after {}; ", reason.label()));
            let gap = gap_seconds.map_or_else(String::new, |gap| {
                format!("back at most {} after the last sighting", duration(gap))
            });
            (
                "restart".into(),
                format!("{after}{gap}").trim_end_matches("; ").to_owned(),
            )
        }
        EventKind::Exit {
            reason,
            code,
            signal,
            core_dumped,
            ..
        } => {
            let mut details = Vec::new();
            if let Some(signal) = signal {
                details.push(format!("signal {signal}"));
            }
            if let Some(code) = code {
                details.push(format!("exit code {code}"));
            }
            if *core_dumped {
                details.push("core dumped".into());
            }
            if details.is_empty() {
                details.push("no exit status (seen gone between scans)".into());
            }
            (format!("exit: {}", reason.label()), details.join(", "))
        }
        EventKind::Burst {
            of,
            count,
            reasons,
            since,
            ..
        } => {
            let mut details = format!(
                "{count} more {of}s than the log takes one by one, from {} to {}",
                utc(*since),
                utc(event.time)
            );
            if !reasons.is_empty() {
                let by: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                details.push_str(&format!(": {}", by.join(", ")));
            }
            (format!("burst: {count} {of}s"), details)
        }
        EventKind::Reboot {
            unexpected,
            cause,
            evidence,
            downtime_seconds,
            ..
        } => {
            let title = match unexpected {
                true => format!("reboot, unexpected: {cause}"),
                false => format!("reboot: {cause}"),
            };
            let mut details = Vec::new();
            if let Some(down) = downtime_seconds {
                details.push(format!("down {}", duration(*down)));
            }
            if !evidence.is_empty() {
                details.push(evidence.clone());
            }
            (title, details.join("; "))
        }
    }
}

/// The kernel's numbers of one kill, in words.
pub fn kill_details(kill: &OomKillEvent) -> String {
    let mut parts = Vec::new();
    if let Some(rss) = kill.rss_bytes() {
        let part = |name: &str, v: Option<u64>| v.map(|v| format!("{name} {}", bytes(v)));
        let split: Vec<String> = [
            part("anon", kill.anon_rss_bytes),
            part("file", kill.file_rss_bytes),
            part("shmem", kill.shmem_rss_bytes),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.push(format!("RSS {} ({})", bytes(rss), split.join(", ")));
    }
    match (kill.constraint.as_str(), &kill.memcg) {
        ("memcg", Some(memcg)) => parts.push(format!("cgroup {memcg} hit its memory limit")),
        ("memcg", None) => parts.push("a memory cgroup hit its limit".into()),
        ("global", _) => parts.push("the host ran out of memory".into()),
        (other, _) => parts.push(format!("constraint {other}")),
    }
    if let Some(task_memcg) = kill
        .task_memcg
        .as_ref()
        .filter(|t| Some(*t) != kill.memcg.as_ref())
    {
        parts.push(format!("victim in {task_memcg}"));
    }
    if let Some(adj) = kill.oom_score_adj {
        parts.push(format!("oom_score_adj {adj}"));
    }
    if let Some(invoker) = &kill.invoker {
        parts.push(format!("triggered by {invoker}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_reason::{ExitReason, WaitStatus};

    #[test]
    fn sizes_durations_and_times_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(185.0), "3m 5s");
        assert_eq!(duration(3725.0), "1h 2m");
        assert_eq!(duration(90_000.0), "1d 1h");
        assert_eq!(utc(0.0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_709_210_096.7), "2024-02-29 12:34:56Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00Z");
        assert_eq!(ago(100.0, 40.0), "1m 0s ago");
        assert_eq!(ago(100.0, 200.0), "in the future");
    }

    #[test]
    fn events_are_described_with_their_numbers() {
        let kill = Event {
            time: 0.0,
            kind: EventKind::OomKill(Box::new(OomKillEvent {
                group: "api".into(),
                pid: 7,
                comm: "java".into(),
                constraint: "memcg".into(),
                memcg: Some("/kubepods/pod1".into()),
                task_memcg: Some("/kubepods/pod1/c1".into()),
                invoker: Some("java".into()),
                anon_rss_bytes: Some(500 << 20),
                file_rss_bytes: Some(12 << 20),
                shmem_rss_bytes: Some(0),
                oom_score_adj: Some(-998),
                ..OomKillEvent::default()
            })),
        };
        let (title, details) = describe(&kill);
        assert_eq!(title, "OOM kill");
        assert_eq!(
            details,
            "RSS 512 MiB (anon 500 MiB, file 12 MiB, shmem 0 B), cgroup /kubepods/pod1 hit its \
             memory limit, victim in /kubepods/pod1/c1, oom_score_adj -998, triggered by java"
        );
        let crash = Event {
            time: 0.0,
            kind: EventKind::exit(
                "db",
                1,
                "mysqld",
                ExitReason::Crashed,
                Some(WaitStatus::Signaled {
                    signal: 11,
                    core_dumped: true,
                }),
            ),
        };
        assert_eq!(
            describe(&crash),
            ("exit: crashed".into(), "signal SIGSEGV, core dumped".into())
        );
        let reboot = Event {
            time: 0.0,
            kind: EventKind::Reboot {
                boot_id: "b".into(),
                previous_boot_id: None,
                unexpected: true,
                cause: "kernel_panic".into(),
                evidence: "pstore holds a panic record".into(),
                downtime_seconds: Some(75.0),
            },
        };
        assert_eq!(
            describe(&reboot),
            (
                "reboot, unexpected: kernel_panic".into(),
                "down 1m 15s; pstore holds a panic record".into()
            )
        );
    }
}
