//! What an event is: the vocabulary of the event log (OOM kills with the kernel's
//! numbers, userspace killers' kills, restarts, exits with their reason, bursts, reboots
//! with their cause) and its JSON form, one object per line. Pure data; must not touch a
//! file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exit_reason::{signal_name, ExitReason, WaitStatus};
use crate::kmsg::oom::KernelKill;
use crate::units::kib_opt_to_bytes;

/// One event, as a line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, seconds since the epoch.
    pub time: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The kernel's OOM killer killed a process: the kernel's own report of it. Logged
    /// once per kill: `seq` (the `Killed process` record's kmsg sequence number) and
    /// `boot_id` let a restarted exporter's replay of the ring buffer skip it.
    OomKill(Box<OomKillEvent>),
    /// A service came back: an instance of the group ended (abnormally, or as the group's
    /// restart rules say) and this new one started within the restart window.
    Restart {
        group: String,
        /// The new instance.
        pid: u32,
        comm: String,
        /// From the dead instance's last sighting to the new one's start: the service was
        /// down at most this long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_seconds: Option<f64>,
        /// How the dead instance ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ExitReason>,
    },
    /// An instance of a group ended.
    Exit {
        group: String,
        pid: u32,
        comm: String,
        reason: ExitReason,
        /// The exit code of a normal exit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u8>,
        /// The signal that ended it, by name (`SIGKILL`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        core_dumped: bool,
    },
    /// A userspace OOM killer killed a cgroup: systemd-oomd's `Killed` signal on D-Bus,
    /// with the cgroup it killed and its reason (`memory-pressure`, `memory-used`).
    UserspaceKill {
        group: String,
        /// `systemd-oomd`.
        killer: String,
        cgroup: String,
        reason: String,
    },
    /// More exits or restarts of one group than the log takes one by one (a process
    /// churning, a crash loop): counted here instead, one record per group and minute at
    /// most. `time` is the last one counted.
    Burst {
        group: String,
        /// What was counted instead of logged: `exit` or `restart`.
        of: String,
        count: u64,
        /// For exits: how many ended each way (`killed`, `exited_ok`, ...).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        reasons: BTreeMap<String, u64>,
        /// The first one counted.
        since: f64,
    },
    /// The host booted again (a new boot_id); `time` is the new boot's start.
    Reboot {
        boot_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_boot_id: Option<String>,
        unexpected: bool,
        /// `clean_shutdown`, `no_clean_shutdown`, `kernel_panic`, `oops` or `unknown`.
        cause: String,
        /// What the decision rests on, in words.
        evidence: String,
        /// From the previous boot's last sign of life to this boot's start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        downtime_seconds: Option<f64>,
    },
}

/// One kernel OOM kill as the kernel reported it. Sizes are bytes (the kernel prints kB);
/// a field the report's kernel version does not print is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OomKillEvent {
    pub group: String,
    pub pid: u32,
    pub comm: String,
    /// `memcg`, `global`, `cpuset`, `mempolicy` or `unknown`.
    pub constraint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The memory cgroup that ran out of memory (`oom_memcg=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcg: Option<String>,
    /// The victim's own memory cgroup (`task_memcg=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_memcg: Option<String>,
    /// For a memory.oom.group member: the cgroup killed as a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_group: Option<String>,
    /// The command whose allocation invoked the OOM killer: the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_vm_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shmem_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgtables_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The boot the kill happened in, and its `Killed process` record's sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub seq: u64,
}

impl OomKillEvent {
    /// The kernel's report of a kill as the log keeps it: sizes in bytes, the constraint
    /// as its label, with the victim's group, the boot and the record's sequence number.
    pub fn from_kernel(kill: &KernelKill, group: &str, boot_id: Option<String>, seq: u64) -> Self {
        Self {
            group: group.to_owned(),
            pid: kill.pid,
            comm: kill.comm.clone(),
            constraint: kill.constraint_label().to_owned(),
            uid: kill.uid,
            memcg: kill.memcg.clone(),
            task_memcg: kill.task_memcg.clone(),
            oom_group: kill.oom_group.clone(),
            invoker: kill.invoker.clone(),
            total_vm_bytes: kib_opt_to_bytes(kill.total_vm_kb),
            anon_rss_bytes: kib_opt_to_bytes(kill.anon_rss_kb),
            file_rss_bytes: kib_opt_to_bytes(kill.file_rss_kb),
            shmem_rss_bytes: kib_opt_to_bytes(kill.shmem_rss_kb),
            pgtables_bytes: kib_opt_to_bytes(kill.pgtables_kb),
            oom_score_adj: kill.oom_score_adj,
            boot_id,
            seq,
        }
    }

    /// The victim's resident memory at its death (anon + file + shmem), when reported.
    pub fn rss_bytes(&self) -> Option<u64> {
        let parts = [
            self.anon_rss_bytes,
            self.file_rss_bytes,
            self.shmem_rss_bytes,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

/// The few fields of a log line that decide where it goes (its type, time, group, an
/// exit's reason, a burst's kind and count, a kill's boot and sequence number), read
/// without building the whole event: what the log's compaction, counts and filters need.
/// Other fields are skipped unread.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventHead<'a> {
    pub time: f64,
    #[serde(rename = "type", borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub group: Option<std::borrow::Cow<'a, str>>,
    /// An exit's reason; None where `reason` is not an exit's (a userspace kill's
    /// `memory-pressure`), so that such a line is still an event.
    #[serde(default, deserialize_with = "exit_reason_or_none")]
    pub reason: Option<ExitReason>,
    /// A burst's kind (`exit`, `restart`) and count.
    #[serde(default, borrow)]
    pub of: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default, borrow)]
    pub boot_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
}

/// An exit's reason from a `reason` field, None for any other string.
fn exit_reason_or_none<'de, D>(deserializer: D) -> Result<Option<ExitReason>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let label: Option<std::borrow::Cow<'de, str>> = Deserialize::deserialize(deserializer)?;
    Ok(label.and_then(|label| ExitReason::from_label(&label)))
}

impl<'a> EventHead<'a> {
    /// The head of one line of the log; None when the line is not an event.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(line).ok()
    }

    /// An exit with code 0.
    pub fn is_clean_exit(&self) -> bool {
        self.kind == "exit" && self.reason == Some(ExitReason::ExitedOk)
    }

    /// How many events the line stands for: a burst's count, else one.
    pub fn weight(&self) -> u64 {
        match self.kind.as_ref() {
            "burst" => self.count.unwrap_or(0),
            _ => 1,
        }
    }

    /// The type of event the line counts as: a burst counts as what it stands for.
    pub fn counts_as(&self) -> &str {
        match (self.kind.as_ref(), self.of.as_deref()) {
            ("burst", Some(of)) => of,
            (kind, _) => kind,
        }
    }
}

/// The event types, as `type` spells them in the log, the API and the CLI.
pub const EVENT_TYPES: [&str; 6] = [
    "oom_kill",
    "userspace_kill",
    "restart",
    "exit",
    "reboot",
    "burst",
];

impl EventKind {
    /// The `type` field of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::OomKill(_) => "oom_kill",
            EventKind::UserspaceKill { .. } => "userspace_kill",
            EventKind::Restart { .. } => "restart",
            EventKind::Exit { .. } => "exit",
            EventKind::Reboot { .. } => "reboot",
            EventKind::Burst { .. } => "burst",
        }
    }

    /// The group the event happened to; None for host events (reboots).
    pub fn group(&self) -> Option<&str> {
        match self {
            EventKind::OomKill(kill) => Some(&kill.group),
            EventKind::Restart { group, .. }
            | EventKind::Exit { group, .. }
            | EventKind::UserspaceKill { group, .. }
            | EventKind::Burst { group, .. } => Some(group),
            EventKind::Reboot { .. } => None,
        }
    }

    /// The process the event happened to, with its command name.
    pub fn process(&self) -> Option<(u32, &str)> {
        match self {
            EventKind::OomKill(kill) => Some((kill.pid, &kill.comm)),
            EventKind::Restart { pid, comm, .. } | EventKind::Exit { pid, comm, .. } => {
                Some((*pid, comm))
            }
            EventKind::Reboot { .. }
            | EventKind::UserspaceKill { .. }
            | EventKind::Burst { .. } => None,
        }
    }

    /// An exit, with its wait status when the kernel reported one.
    pub fn exit(
        group: &str,
        pid: u32,
        comm: &str,
        reason: ExitReason,
        status: Option<WaitStatus>,
    ) -> Self {
        let (code, signal, core_dumped) = match status {
            Some(WaitStatus::Exited { code }) => (Some(code), None, false),
            Some(WaitStatus::Signaled {
                signal,
                core_dumped,
            }) => (None, Some(signal_name(signal).to_owned()), core_dumped),
            None => (None, None, false),
        };
        EventKind::Exit {
            group: group.to_owned(),
            pid,
            comm: comm.to_owned(),
            reason,
            code,
            signal,
            core_dumped,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Events for the event-log tests.
    use super::*;

    pub fn exit(pid: u32) -> Event {
        Event {
            time: 1_700_000_000.0 + f64::from(pid),
            kind: EventKind::exit(
                "db",
                pid,
                "mysqld",
                ExitReason::Crashed,
                Some(WaitStatus::Signaled {
                    signal: 11,
                    core_dumped: true,
                }),
            ),
        }
    }

    pub fn kill(pid: u32, group: &str, time: f64) -> Event {
        Event {
            time,
            kind: EventKind::OomKill(Box::new(OomKillEvent {
                group: group.into(),
                pid,
                comm: "java".into(),
                constraint: "memcg".into(),
                anon_rss_bytes: Some(100 << 20),
                file_rss_bytes: Some(2 << 20),
                shmem_rss_bytes: Some(0),
                oom_score_adj: Some(300),
                seq: 7,
                ..OomKillEvent::default()
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::kill;
    use super::*;
    use crate::events::log::parse_events;

    #[test]
    fn oom_kills_and_restarts_round_trip() {
        let restart = Event {
            time: 5.0,
            kind: EventKind::Restart {
                group: "api".into(),
                pid: 9,
                comm: "java".into(),
                gap_seconds: Some(3.5),
                after: None,
            },
        };
        let events = [kill(8, "api", 4.0), restart];
        let text: Vec<u8> = events
            .iter()
            .flat_map(|e| {
                let mut line = serde_json::to_vec(e).expect("json");
                line.push(b'\n');
                line
            })
            .collect();
        let line = String::from_utf8_lossy(&text);
        assert!(line.contains(r#""type":"oom_kill""#), "{line}");
        assert!(line.contains(r#""anon_rss_bytes":104857600"#), "{line}");
        assert!(line.contains(r#""type":"restart""#), "{line}");
        let (read, skipped) = parse_events(&text);
        assert_eq!((read.as_slice(), skipped), (&events[..], 0));
        match &read[0].kind {
            EventKind::OomKill(kill) => assert_eq!(kill.rss_bytes(), Some(102 << 20)),
            other => panic!("not a kill: {other:?}"),
        }
    }

    #[test]
    fn a_userspace_kill_has_a_head_though_its_reason_is_not_an_exits() {
        let event = Event {
            time: 7.0,
            kind: EventKind::UserspaceKill {
                group: "squeezed.service".into(),
                killer: "systemd-oomd".into(),
                cgroup: "/pressure.slice/squeezed.service".into(),
                reason: "memory-pressure".into(),
            },
        };
        let line = serde_json::to_vec(&event).expect("json");
        let head = EventHead::parse(&line).expect("a userspace kill is an event");
        assert_eq!(
            (head.kind.as_ref(), head.group.as_deref(), head.reason),
            ("userspace_kill", Some("squeezed.service"), None)
        );
        let exit = serde_json::to_vec(&fixtures::exit(3)).expect("json");
        let head = EventHead::parse(&exit).expect("an exit");
        assert_eq!(head.reason, Some(ExitReason::Crashed));
    }
}
