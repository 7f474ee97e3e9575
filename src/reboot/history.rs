//! The boot history kept in the state file, and the decision on how the previous boot
//! ended. While oomwatch runs it records a heartbeat (its last sign of life) and, when
//! stopped by SIGTERM or SIGINT, a clean-stop marker. On the first start in a new boot the previous
//! boot's end is classified from the strongest evidence: a pstore crash record, then
//! wtmpdb or wtmp, then the marker and heartbeat. Pure: the evidence is read by the caller.
//!
//! A pstore record decides one reboot only. systemd-pstore moves the kernel's records into
//! its archive (`/var/lib/systemd/pstore`) at boot and keeps them there, with a reassembled
//! `dmesg.txt` dated in the boot that archived it: by time alone, a panic that ended boot A
//! would also seem to end boot B. The records present at each judgement (and at the first
//! start) are remembered, and only records not seen before are evidence.

use serde::{Deserialize, Serialize};

use super::pstore::PstoreRecord;
use super::wtmp::WtmpVerdict;

/// Reboot events kept for the event log.
pub const MAX_REBOOT_EVENTS: usize = 64;
/// A clean-stop marker this close before the next boot started belongs to that shutdown;
/// an older one only says the exporter was stopped, not how the host went down.
pub const CLEAN_STOP_WINDOW_SECS: f64 = 600.0;
/// pstore records remembered as already judged (far more than a backend holds).
pub const MAX_PSTORE_SEEN: usize = 256;
/// Slack for clocks when matching records of the previous boot to its start.
const CLOCK_SLACK_SECS: f64 = 120.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootHistory {
    /// Boots seen since the state directory was created (the first run counts its own).
    #[serde(default)]
    pub boots_total: u64,
    #[serde(default)]
    pub unexpected_reboots_total: u64,
    /// Start (btime) of the boot the state belongs to, seconds since the epoch.
    #[serde(default)]
    pub boot_started_at: Option<f64>,
    /// The exporter's last sign of life in this boot.
    #[serde(default)]
    pub last_heartbeat: Option<f64>,
    /// Set when the exporter stopped on SIGTERM; cleared when it starts.
    #[serde(default)]
    pub clean_stop: Option<f64>,
    #[serde(default)]
    pub events: Vec<RebootEvent>,
    /// The pstore records present when the last reboot was judged (name and time), so
    /// that the same records never decide a later one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pstore_seen: Vec<String>,
}

/// How a pstore record is remembered: its name and its time, to the millisecond.
fn record_id(record: &PstoreRecord) -> String {
    format!("{}@{:.3}", record.name, record.written_at)
}

/// One reboot, as the event log and the metrics show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootEvent {
    /// Start of the new boot, seconds since the epoch.
    pub at: f64,
    pub previous_boot_id: Option<String>,
    pub unexpected: bool,
    /// `clean_shutdown`, `no_clean_shutdown`, `kernel_panic`, `oops` or `unknown`.
    pub cause: String,
    /// What the decision rests on, in words.
    pub evidence: String,
    /// From the previous boot's last sign of life to this boot's start.
    pub downtime_seconds: Option<f64>,
}

/// What was found outside the state file about the previous boot's end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub pstore: Vec<PstoreRecord>,
    pub wtmp: Option<WtmpVerdict>,
    /// `wtmp` came from wtmpdb's database, not the legacy file: the evidence says which.
    pub wtmpdb: bool,
}

impl BootHistory {
    /// The first start with this state directory: the current boot is boot 1.
    pub fn first_boot(&mut self, started_at: f64) {
        self.boots_total = self.boots_total.max(1);
        self.boot_started_at = Some(started_at);
    }

    /// The first start in a new boot: decides how the previous one ended and records it.
    pub fn new_boot(
        &mut self,
        previous_boot_id: Option<String>,
        started_at: f64,
        evidence: &Evidence,
    ) -> RebootEvent {
        let last_sign = match (self.last_heartbeat, self.clean_stop) {
            (Some(h), Some(c)) => Some(h.max(c)),
            (h, c) => h.or(c),
        };
        let (unexpected, cause, evidence_text) = self.decide(started_at, evidence);
        self.remember_pstore(&evidence.pstore);
        let evidence = evidence_text;
        let event = RebootEvent {
            at: started_at,
            previous_boot_id,
            unexpected,
            cause: cause.to_owned(),
            evidence,
            downtime_seconds: last_sign.map(|t| (started_at - t).max(0.0)),
        };
        self.boots_total += 1;
        self.unexpected_reboots_total += u64::from(unexpected);
        self.boot_started_at = Some(started_at);
        self.last_heartbeat = None;
        self.clean_stop = None;
        if self.events.len() >= MAX_REBOOT_EVENTS {
            self.events.remove(0);
        }
        self.events.push(event.clone());
        event
    }

    /// Remembers the pstore records present now as judged: they are no evidence for a
    /// later reboot. Called at each judgement and at the first start.
    pub fn remember_pstore(&mut self, records: &[PstoreRecord]) {
        self.pstore_seen = records
            .iter()
            .rev()
            .take(MAX_PSTORE_SEEN)
            .map(record_id)
            .collect();
    }

    fn decide(&self, started_at: f64, evidence: &Evidence) -> (bool, &'static str, String) {
        let previous_start = self.boot_started_at;
        // 1. A crash record written during the previous boot.
        let crash = evidence.pstore.iter().rev().find(|r| {
            r.crash.is_some()
                && !self.pstore_seen.contains(&record_id(r))
                && r.written_at <= started_at + CLOCK_SLACK_SECS
                && previous_start.is_none_or(|s| r.written_at >= s - CLOCK_SLACK_SECS)
        });
        if let Some(record) = crash {
            let kind = record.crash.map_or("unknown", |k| k.cause());
            return (
                true,
                kind,
                format!("pstore record {} of the previous boot", record.name),
            );
        }
        // 2. wtmp, when it holds the previous boot.
        let file = if evidence.wtmpdb { "wtmpdb" } else { "wtmp" };
        let wtmp_knows =
            |boot: f64| previous_start.is_none_or(|s| (boot - s).abs() <= CLOCK_SLACK_SECS);
        match evidence.wtmp {
            Some(WtmpVerdict::CleanShutdown { at }) if previous_start.is_none_or(|s| at >= s) => {
                return (
                    false,
                    "clean_shutdown",
                    format!("{file} shutdown record at {at:.0}"),
                );
            }
            Some(WtmpVerdict::NoShutdown { previous_boot }) if wtmp_knows(previous_boot) => {
                return (
                    true,
                    "no_clean_shutdown",
                    format!("{file}: the boot at {previous_boot:.0} has no shutdown record"),
                );
            }
            _ => {}
        }
        // 3. The exporter's own marker and heartbeat.
        match (self.clean_stop, self.last_heartbeat) {
            (Some(stop), _) if started_at - stop <= CLEAN_STOP_WINDOW_SECS => (
                false,
                "clean_shutdown",
                format!("oomwatch stopped cleanly at {stop:.0}"),
            ),
            (Some(stop), _) => (
                false,
                "unknown",
                format!(
                    "oomwatch stopped cleanly at {stop:.0}, {:.0} s before this boot: how the host went down is not known",
                    started_at - stop
                ),
            ),
            (None, Some(beat)) => (
                true,
                "no_clean_shutdown",
                format!("oomwatch's last heartbeat at {beat:.0} with no clean stop"),
            ),
            (None, None) => (false, "unknown", "no evidence of the previous boot's end".into()),
        }
    }

    /// The latest reboot, for `oomwatch_last_reboot_unexpected` and the downtime.
    pub fn last_reboot(&self) -> Option<&RebootEvent> {
        self.events.last()
    }
}

#[cfg(test)]
mod tests {
    use super::super::pstore::CrashKind;
    use super::*;

    fn running(started: f64, heartbeat: f64, stop: Option<f64>) -> BootHistory {
        let mut h = BootHistory::default();
        h.first_boot(started);
        h.last_heartbeat = Some(heartbeat);
        h.clean_stop = stop;
        h
    }

    #[test]
    fn clean_stop_then_reboot_is_expected() {
        let mut h = running(1000.0, 5000.0, Some(5010.0));
        let e = h.new_boot(Some("a".into()), 5100.0, &Evidence::default());
        assert!(!e.unexpected);
        assert_eq!(e.cause, "clean_shutdown");
        assert_eq!(e.downtime_seconds, Some(90.0));
        assert_eq!((h.boots_total, h.unexpected_reboots_total), (2, 0));
    }

    #[test]
    fn heartbeat_without_marker_is_unexpected() {
        let mut h = running(1000.0, 5000.0, None);
        let e = h.new_boot(Some("a".into()), 5300.0, &Evidence::default());
        assert!(e.unexpected);
        assert_eq!(e.cause, "no_clean_shutdown");
        assert_eq!(e.downtime_seconds, Some(300.0));
        assert_eq!(h.unexpected_reboots_total, 1);
    }

    #[test]
    fn an_old_marker_is_unknown() {
        let mut h = running(1000.0, 2000.0, Some(2000.0));
        let e = h.new_boot(None, 90000.0, &Evidence::default());
        assert_eq!((e.unexpected, e.cause.as_str()), (false, "unknown"));
    }

    #[test]
    fn pstore_beats_wtmp_beats_the_marker() {
        let panic = PstoreRecord {
            name: "dmesg-ramoops-0".into(),
            written_at: 4000.0,
            crash: Some(CrashKind::Panic),
        };
        let stale = PstoreRecord {
            written_at: 10.0,
            ..panic.clone()
        };
        let wtmp_clean = Some(WtmpVerdict::CleanShutdown { at: 4990.0 });
        let mut h = running(1000.0, 5000.0, Some(5000.0));
        let e = h.new_boot(
            None,
            5100.0,
            &Evidence {
                pstore: vec![panic],
                wtmp: wtmp_clean,
                ..Evidence::default()
            },
        );
        assert_eq!((e.unexpected, e.cause.as_str()), (true, "kernel_panic"));

        let mut h = running(1000.0, 5000.0, Some(5000.0));
        let crashed = Some(WtmpVerdict::NoShutdown {
            previous_boot: 1001.0,
        });
        let e = h.new_boot(
            None,
            5100.0,
            &Evidence {
                pstore: vec![stale],
                wtmp: crashed,
                ..Evidence::default()
            },
        );
        assert_eq!(
            (e.unexpected, e.cause.as_str()),
            (true, "no_clean_shutdown")
        );
        assert!(e.evidence.starts_with("wtmp: "), "{}", e.evidence);
        let mut h = running(1000.0, 5000.0, Some(5000.0));
        let e = h.new_boot(
            None,
            5100.0,
            &Evidence {
                wtmp: crashed,
                wtmpdb: true,
                ..Evidence::default()
            },
        );
        assert!(e.evidence.starts_with("wtmpdb: "), "{}", e.evidence);

        // wtmp that does not hold the previous boot is not evidence.
        let mut h = running(1000.0, 5000.0, Some(5000.0));
        let other = Some(WtmpVerdict::NoShutdown {
            previous_boot: 200.0,
        });
        let e = h.new_boot(
            None,
            5100.0,
            &Evidence {
                pstore: vec![],
                wtmp: other,
                ..Evidence::default()
            },
        );
        assert_eq!((e.unexpected, e.cause.as_str()), (false, "clean_shutdown"));
    }

    #[test]
    fn a_pstore_record_decides_one_reboot_only() {
        // Boot A panics; boot B starts at 5100 and systemd-pstore archives the record,
        // reassembling dmesg.txt dated in boot B; B is rebooted cleanly at 9000.
        let ramoops = PstoreRecord {
            name: "dmesg-ramoops-0".into(),
            written_at: 5090.0,
            crash: Some(CrashKind::Panic),
        };
        let reassembled = PstoreRecord {
            name: "dmesg.txt".into(),
            written_at: 5110.0,
            ..ramoops.clone()
        };
        let archive = vec![ramoops, reassembled];
        let mut h = running(1000.0, 5080.0, None);
        let e = h.new_boot(
            None,
            5100.0,
            &Evidence {
                pstore: archive.clone(),
                wtmp: None,
                ..Evidence::default()
            },
        );
        assert_eq!((e.unexpected, e.cause.as_str()), (true, "kernel_panic"));
        h.last_heartbeat = Some(8990.0);
        h.clean_stop = Some(8995.0);
        let clean = Some(WtmpVerdict::CleanShutdown { at: 8996.0 });
        let e = h.new_boot(
            None,
            9000.0,
            &Evidence {
                pstore: archive.clone(),
                wtmp: clean,
                ..Evidence::default()
            },
        );
        assert_eq!((e.unexpected, e.cause.as_str()), (false, "clean_shutdown"));

        // Records present at the first start are not evidence later either.
        let mut h = BootHistory::default();
        h.first_boot(5100.0);
        h.remember_pstore(&archive);
        h.last_heartbeat = Some(5200.0);
        let e = h.new_boot(
            None,
            5300.0,
            &Evidence {
                pstore: archive,
                wtmp: None,
                ..Evidence::default()
            },
        );
        assert_eq!(e.cause, "no_clean_shutdown");

        // Bounded, and survives the state file.
        let many: Vec<PstoreRecord> = (0..MAX_PSTORE_SEEN + 10)
            .map(|i| PstoreRecord {
                name: format!("dmesg-efi-{i}"),
                written_at: i as f64,
                crash: None,
            })
            .collect();
        h.remember_pstore(&many);
        assert_eq!(h.pstore_seen.len(), MAX_PSTORE_SEEN);
        let json = serde_json::to_string(&h).expect("json");
        let back: BootHistory = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, h);
    }

    #[test]
    fn events_are_bounded() {
        let mut h = BootHistory::default();
        for i in 0..MAX_REBOOT_EVENTS + 5 {
            h.new_boot(None, i as f64, &Evidence::default());
        }
        assert_eq!(h.events.len(), MAX_REBOOT_EVENTS);
        assert_eq!(h.boots_total, (MAX_REBOOT_EVENTS + 5) as u64);
    }
}
