//! Userspace OOM killers, recognised from their own log lines: systemd-oomd, earlyoom,
//! Facebook's oomd and nohang.
//!
//! This file owns those line formats and the little state two of them need (earlyoom's
//! SIGTERM-then-SIGKILL of one process is one kill; nohang names its victim a few lines
//! before it signals it). A line counts only when it comes from the killer itself (its
//! syslog/journal tag, or its `name[pid]: ` in kmsg); the one exception is oomd's
//! `oomd kill: ` record, which oomd writes straight into `/dev/kmsg` without a tag (so it
//! is accepted from an untagged kmsg writer, and from `dmesg` text, where the writer
//! cannot be seen) and which the kernel never prints. It must never report a kernel kill,
//! and must not match kernel messages that merely mention these programs.
//!
//! The formats, with the programs' sources and versions, are in docs/kernel-log.md
//! ("Userspace killers").

use super::bounds::{bounded, MAX_COMM, MAX_PATH, MAX_TIME};
use super::text::Source;

/// Whether a program logging under `name` may report a kill (the names
/// [`UserspaceTracker`] reads lines from; `""` is an untagged kmsg writer).
pub fn is_killer_tag(name: &str) -> bool {
    matches!(
        name,
        "systemd-oomd" | "earlyoom" | "oomd" | "nohang" | "nohang-desktop" | ""
    )
}

/// A kill done by a userspace OOM killer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserspaceKill {
    /// `systemd-oomd`, `earlyoom`, `oomd` or `nohang`.
    pub killer: String,
    /// The victim's pid, when the killer logs one (earlyoom, nohang).
    pub pid: Option<u32>,
    /// The victim's name, when the killer logs one (earlyoom, nohang).
    pub comm: Option<String>,
    /// The victim's uid, when the killer logs one (earlyoom 1.6+).
    pub uid: Option<u32>,
    /// The killed unit's cgroup, when the killer works on cgroups (systemd-oomd, oomd).
    pub unit_or_cgroup: Option<String>,
    /// The opaque position passed with the line that completed the kill.
    pub at: u64,
    /// That line's time as printed.
    pub time: Option<String>,
}

/// State carried between lines for the killers that need it. Bounded: one pid and one
/// pending victim name of at most `MAX_COMM` bytes.
#[derive(Debug, Clone, Default)]
pub struct UserspaceTracker {
    earlyoom_last_pid: Option<u32>,
    nohang_victim: Option<(u32, String)>,
}

impl UserspaceTracker {
    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.nohang_victim.as_ref().map_or(0, |(_, s)| s.capacity())
    }

    /// Looks at one line; returns the kill it reports, if any.
    pub fn push(
        &mut self,
        source: Source<'_>,
        message: &str,
        at: u64,
        time: Option<&str>,
    ) -> Option<UserspaceKill> {
        let found = match source {
            Source::Program(name) => self.program_line(name, message),
            Source::Kernel | Source::Unknown => oomd_kill(message),
        }?;
        Some(UserspaceKill {
            killer: found.killer.to_owned(),
            pid: found.pid,
            comm: found.comm.map(|c| bounded(&c, MAX_COMM)),
            uid: found.uid,
            unit_or_cgroup: found.cgroup.map(|c| bounded(c, MAX_PATH)),
            at,
            time: time.map(|t| bounded(t, MAX_TIME)),
        })
    }

    fn program_line<'a>(&mut self, name: &str, message: &'a str) -> Option<Found<'a>> {
        match name {
            "systemd-oomd" => systemd_oomd_kill(message),
            "earlyoom" => {
                let (signal, found) = earlyoom_kill(message)?;
                let pid = found.pid;
                let repeat = signal == "SIGKILL" && pid.is_some() && pid == self.earlyoom_last_pid;
                self.earlyoom_last_pid = pid;
                (!repeat).then_some(found)
            }
            "oomd" => message
                .find("oomd kill: ")
                .and_then(|i| oomd_kill(&message[i..])),
            "nohang" | "nohang-desktop" => self.nohang_line(message),
            // An untagged userspace kmsg record: oomd writes its kills that way.
            "" => oomd_kill(message),
            _ => None,
        }
    }

    fn nohang_line<'a>(&mut self, message: &'a str) -> Option<Found<'a>> {
        let line = message.trim();
        if let Some(rest) = line.strip_prefix("PID:") {
            let rest = rest.trim_start();
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let pid: u32 = rest[..digits].parse().ok()?;
            let after = &rest[digits..];
            let name = after
                .strip_prefix(", name: ")
                .or_else(|| after.strip_prefix(", Name: "))?;
            let name = name.split(", ").next().unwrap_or(name);
            self.nohang_victim = Some((pid, bounded(name, MAX_COMM)));
            return None;
        }
        if line.starts_with("Sending SIG") && line.ends_with(" to the victim") {
            let victim = self.nohang_victim.take();
            return Some(Found {
                killer: "nohang",
                pid: victim.as_ref().map(|v| v.0),
                comm: victim.map(|v| std::borrow::Cow::Owned(v.1)),
                uid: None,
                cgroup: None,
            });
        }
        None
    }
}

/// A recognised kill, borrowing what it can.
struct Found<'a> {
    killer: &'static str,
    pid: Option<u32>,
    comm: Option<std::borrow::Cow<'a, str>>,
    uid: Option<u32>,
    cgroup: Option<&'a str>,
}

fn systemd_oomd_kill(message: &str) -> Option<Found<'_>> {
    let cgroup = if let Some(rest) = message.strip_prefix("Killed ") {
        rest.split_once(" due to ")?.0
    } else if let Some(rest) = message.strip_prefix("Marked ") {
        rest.split_once(" for killing due to ")?.0
    } else {
        return None;
    };
    if cgroup.is_empty() {
        return None;
    }
    Some(Found {
        killer: "systemd-oomd",
        pid: None,
        comm: None,
        uid: None,
        cgroup: Some(cgroup),
    })
}

/// Returns the signal and the kill: `sending SIGTERM to process <pid> uid <uid> "<name>":
/// ...` (1.6+; no `uid` before), or `Killing process '<name>' with signal <n>, pid: <pid>,
/// ...` (before 1.6).
fn earlyoom_kill(message: &str) -> Option<(&str, Found<'_>)> {
    if let Some(rest) = message.strip_prefix("Killing process '") {
        return earlyoom_old_kill(rest);
    }
    let rest = message.strip_prefix("sending ")?;
    let (signal, rest) = rest.split_once(" to process ")?;
    if !signal.starts_with("SIG") {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let pid: u32 = rest[..digits].parse().ok()?;
    let mut rest = &rest[digits..];
    let mut uid = None;
    if let Some(r) = rest.strip_prefix(" uid ") {
        let n = r
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'-')
            .count();
        uid = r[..n].parse().ok();
        rest = &r[n..];
    }
    let quoted = rest.strip_prefix(" \"")?;
    let name = match quoted.find("\": ") {
        Some(end) => &quoted[..end],
        None => &quoted[..quoted.rfind('"')?],
    };
    Some((
        signal,
        Found {
            killer: "earlyoom",
            pid: Some(pid),
            comm: Some(std::borrow::Cow::Borrowed(name)),
            uid,
            cgroup: None,
        },
    ))
}

/// The part after `Killing process '` of the pre-1.6 form; signal 9 is SIGKILL.
fn earlyoom_old_kill(rest: &str) -> Option<(&str, Found<'_>)> {
    let (name, rest) = rest.split_once("' with signal ")?;
    let (signal, rest) = rest.split_once(", pid: ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let pid: u32 = rest[..digits].parse().ok()?;
    let signal = if signal == "9" { "SIGKILL" } else { "SIGTERM" };
    Some((
        signal,
        Found {
            killer: "earlyoom",
            pid: Some(pid),
            comm: Some(std::borrow::Cow::Borrowed(name)),
            uid: None,
            cgroup: None,
        },
    ))
}

fn oomd_kill(message: &str) -> Option<Found<'_>> {
    let rest = message.strip_prefix("oomd kill: ")?;
    if rest.contains("killer:(dry)") {
        return None;
    }
    Some(Found {
        killer: "oomd",
        pid: None,
        comm: None,
        uid: None,
        cgroup: rest.split_whitespace().nth(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(t: &mut UserspaceTracker, source: Source<'_>, msg: &str) -> Option<UserspaceKill> {
        t.push(source, msg, 1, Some("t"))
    }

    #[test]
    fn systemd_oomd() {
        let mut t = UserspaceTracker::default();
        let k = one(&mut t, Source::Program("systemd-oomd"), "Killed /system.slice/foo.service due to memory pressure for /system.slice being 82.13% > 50.00% for > 20s with reclaim activity").unwrap();
        assert_eq!(k.killer, "systemd-oomd");
        assert_eq!(
            k.unit_or_cgroup.as_deref(),
            Some("/system.slice/foo.service")
        );
        assert_eq!((k.pid, k.at, k.time.as_deref()), (None, 1, Some("t")));
        let k = one(&mut t, Source::Program("systemd-oomd"), "Killed /user.slice/a.scope due to memory used (1) / total (2) and swap used (3) / total (4) being more than 90.00%").unwrap();
        assert_eq!(k.unit_or_cgroup.as_deref(), Some("/user.slice/a.scope"));
        let k = one(&mut t, Source::Program("systemd-oomd"), "Marked /user.slice/b.scope for killing due to memory pressure for /user.slice being 60.00% > 50.00% for > 20s with reclaim activity").unwrap();
        assert_eq!(k.unit_or_cgroup.as_deref(), Some("/user.slice/b.scope"));
        assert!(one(
            &mut t,
            Source::Program("systemd-oomd"),
            "Considered 3 cgroups for killing, top candidates were:"
        )
        .is_none());
        // The same words from the kernel or another program are not systemd-oomd kills.
        assert!(one(&mut t, Source::Kernel, "Killed /a due to memory pressure").is_none());
        assert!(one(
            &mut t,
            Source::Program("bash"),
            "Killed /a due to memory pressure"
        )
        .is_none());
    }

    #[test]
    fn earlyoom_term_then_kill_is_one() {
        let mut t = UserspaceTracker::default();
        let s = Source::Program("earlyoom");
        assert!(one(
            &mut t,
            s,
            "low memory! at or below SIGTERM limits: mem  9.87%, swap 0.00%"
        )
        .is_none());
        let k = one(
            &mut t,
            s,
            "sending SIGTERM to process 1234 uid 1000 \"firefox\": badness 900, VmRSS 2048 MiB",
        )
        .unwrap();
        assert_eq!(
            (k.killer.as_str(), k.pid, k.comm.as_deref()),
            ("earlyoom", Some(1234), Some("firefox"))
        );
        assert!(one(
            &mut t,
            s,
            "sending SIGKILL to process 1234 uid 1000 \"firefox\": badness 900, VmRSS 2048 MiB"
        )
        .is_none());
        let k = one(&mut t, s, "sending SIGKILL to process 99 uid 0 \"a \"b\"\": oom_score 5, VmRSS 1 MiB, cmdline \"x\": y\"").unwrap();
        assert_eq!(k.comm.as_deref(), Some("a \"b\""));
        assert!(one(
            &mut t,
            s,
            "sending 0 (no-op signal) to process 1 uid 0 \"x\": badness 0"
        )
        .is_none());
        assert!(one(
            &mut t,
            Source::Kernel,
            "sending SIGTERM to process 5 uid 0 \"x\": badness 1"
        )
        .is_none());
    }

    #[test]
    fn oomd_and_nohang() {
        let mut t = UserspaceTracker::default();
        let k = one(&mut t, Source::Program(""), "oomd kill: 81.28 80.05 42.78 /workload.slice/a.service 1000 ruleset:[protect] killer:kill_by_memory_size_or_growth v2").unwrap();
        assert_eq!(
            k.unit_or_cgroup.as_deref(),
            Some("/workload.slice/a.service")
        );
        assert!(one(
            &mut t,
            Source::Kernel,
            "oomd kill: 1 2 3 /a 4 ruleset:[x] killer:(dry)kill_by_pressure v2"
        )
        .is_none());
        assert!(one(&mut t, Source::Kernel, "note: oomd kill: 1 2 3 /a 4").is_none());
        assert!(one(&mut t, Source::Program("bash"), "oomd kill: 1 2 3 /a 4").is_none());
        assert!(one(&mut t, Source::Unknown, "oomd kill: 1 2 3 /a 4").is_some());
        let s = Source::Program("nohang");
        assert!(one(
            &mut t,
            s,
            "  PID:       4321, name: chrome, state: S, EUID: 1000, SID: 1 (x), lifetime: 1 h"
        )
        .is_none());
        let k = one(&mut t, s, "  Sending SIGTERM to the victim").unwrap();
        assert_eq!(
            (k.killer.as_str(), k.pid, k.comm.as_deref()),
            ("nohang", Some(4321), Some("chrome"))
        );
        let k = one(&mut t, s, "  Sending SIGKILL to the victim").unwrap();
        assert_eq!(k.pid, None);
    }
}
