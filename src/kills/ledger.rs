//! The OOM kill ledger: what the kernel log has told oomwatch so far, in the form kept in
//! the state file. Counts per victim (group, comm, constraint) and per userspace killer
//! never go down across exporter restarts and reboots (a victim not killed for
//! `--oom.victims-retention` is forgotten, and at most `MAX_VICTIMS` are kept); the last
//! kmsg sequence number handled in this boot makes the replay of the ring buffer after a
//! restart count nothing twice. Only kills the kernel's counters back are counted here;
//! the others are counted apart as unverified (`kills::verify`). Pure data and
//! bookkeeping; the intake feeds it and persists it.

use serde::{Deserialize, Serialize};

/// Most victims kept; beyond, the one killed longest ago is forgotten (its series go).
pub const MAX_VICTIMS: usize = 4096;

/// Makes room for one more entry in a list bounded at `max`: while it is full, the entry
/// whose `time` is oldest is forgotten.
pub fn make_room<T>(items: &mut Vec<T>, max: usize, time: impl Fn(&T) -> f64) {
    while items.len() >= max.max(1) {
        let oldest = items
            .iter()
            .enumerate()
            .min_by(|a, b| time(a.1).total_cmp(&time(b.1)))
            .map(|(i, _)| i);
        match oldest {
            Some(oldest) => {
                items.swap_remove(oldest);
            }
            None => return,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KillLedger {
    /// The last kmsg sequence number handled in this boot; None before the first.
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Kernel OOM kills read from the log in this boot (compared with /proc/vmstat).
    #[serde(default)]
    pub kernel_kills_this_boot: u64,
    /// Repeated `Killed process` lines of one victim in this boot (memory.oom.group): not
    /// kills, but /proc/vmstat counts them, so they explain vmstat's count too.
    #[serde(default)]
    pub repeated_kill_lines_this_boot: u64,
    /// Kills of this boot that /proc/vmstat does not count (`sharing same memory` kills of
    /// processes that share the victim's memory, kernels up to 4.x).
    #[serde(default)]
    pub uncounted_kills_this_boot: u64,
    /// Kill lines in the kernel log that the kernel's own counters do not back (a forgery
    /// through text the kernel echoed, or a misread line), ever; never counted as kills.
    #[serde(default)]
    pub unverified_kills: u64,
    /// The sequence number of the newest kill of this boot written to the event log, so a
    /// replay of the ring buffer logs no kill twice (even once the log compacted it away).
    #[serde(default)]
    pub last_logged_seq: Option<u64>,
    /// Records overwritten in the ring buffer before oomwatch read them, ever.
    #[serde(default)]
    pub records_lost: u64,
    #[serde(default)]
    pub victims: Vec<VictimTally>,
    #[serde(default)]
    pub userspace: Vec<UserspaceTally>,
    /// Userspace killers' lines their killer did not write (`kills::writer`), per killer
    /// (a fixed few names, so bounded).
    #[serde(default)]
    pub userspace_rejected: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VictimTally {
    pub group: String,
    pub comm: String,
    /// `memcg`, `global`, `cpuset`, `mempolicy` or `unknown`.
    pub constraint: String,
    pub kills: u64,
    /// Wall-clock time of the latest kill, seconds since the epoch.
    pub last_kill_seconds: f64,
    pub last_rss: RssAtDeath,
    /// The memory cgroup that ran out in the latest kill (None for a global OOM).
    #[serde(default)]
    pub last_memcg: Option<String>,
}

/// The victim's resident memory when it was killed, from the kernel's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssAtDeath {
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserspaceTally {
    pub killer: String,
    pub group: String,
    pub kills: u64,
}

/// One kernel kill, attributed.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributedKill {
    /// False for a kill /proc/vmstat does not count (a `sharing same memory` kill).
    pub counted_by_vmstat: bool,
    pub group: String,
    pub comm: String,
    pub constraint: &'static str,
    pub at_seconds: f64,
    pub rss: RssAtDeath,
    /// The memory cgroup that ran out (`oom_memcg=`, or the `limit of` path).
    pub memcg: Option<String>,
}

/// What handling one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Already handled before a restart: replayed, not counted again.
    Replayed,
    /// New; `lost` records between the last one handled and this one were overwritten.
    New { lost: u64 },
    /// The first record this boot that oomwatch reads; `earlier` records of this boot
    /// rotated out before oomwatch first ran in it. They are history, not a loss: counting
    /// them would make a first install on a long-running host report millions of lost
    /// records. A kill among them still shows as unexplained against /proc/vmstat.
    First { earlier: u64 },
}

impl KillLedger {
    /// A new boot: its sequence numbers start again at 0; counts are kept.
    pub fn start_new_boot(&mut self) {
        self.last_seq = None;
        self.last_logged_seq = None;
        self.kernel_kills_this_boot = 0;
        self.repeated_kill_lines_this_boot = 0;
        self.uncounted_kills_this_boot = 0;
    }

    /// The vmstat kills of this boot that the kernel log explains.
    pub fn explained_this_boot(&self) -> u64 {
        self.kernel_kills_this_boot
            .saturating_sub(self.uncounted_kills_this_boot)
            .saturating_add(self.repeated_kill_lines_this_boot)
    }

    /// The vmstat kills of this boot that the kernel log does not explain (never below 0:
    /// the log can only explain what the counters back).
    pub fn unattributed_this_boot(&self, vmstat_oom_kills: u64) -> u64 {
        vmstat_oom_kills.saturating_sub(self.explained_this_boot())
    }

    /// Checks a record's sequence number and advances the ledger past it.
    pub fn advance(&mut self, seq: u64) -> SeqCheck {
        let Some(last) = self.last_seq else {
            self.last_seq = Some(seq);
            return SeqCheck::First { earlier: seq };
        };
        if seq <= last {
            return SeqCheck::Replayed;
        }
        let lost = seq.saturating_sub(last.saturating_add(1));
        self.records_lost += lost;
        self.last_seq = Some(seq);
        SeqCheck::New { lost }
    }

    /// Counts a kill the kernel's counters back. `retention_secs`: victims whose latest
    /// kill is older than this (before `kill.at_seconds`) are forgotten first.
    pub fn count_kill(&mut self, kill: AttributedKill, retention_secs: f64) {
        self.kernel_kills_this_boot += 1;
        self.uncounted_kills_this_boot += u64::from(!kill.counted_by_vmstat);
        let horizon = kill.at_seconds - retention_secs;
        self.victims.retain(|v| v.last_kill_seconds >= horizon);
        let existing = self.victims.iter_mut().find(|v| {
            v.group == kill.group && v.comm == kill.comm && v.constraint == kill.constraint
        });
        match existing {
            Some(tally) => {
                tally.kills += 1;
                if kill.at_seconds >= tally.last_kill_seconds {
                    tally.last_kill_seconds = kill.at_seconds;
                    tally.last_rss = kill.rss;
                    tally.last_memcg = kill.memcg;
                }
            }
            None => {
                make_room(&mut self.victims, MAX_VICTIMS, |v| v.last_kill_seconds);
                self.victims.push(VictimTally {
                    group: kill.group,
                    comm: kill.comm,
                    constraint: kill.constraint.to_owned(),
                    kills: 1,
                    last_kill_seconds: kill.at_seconds,
                    last_rss: kill.rss,
                    last_memcg: kill.memcg,
                });
            }
        }
    }

    /// Counts a kill line the kernel's counters do not back.
    pub fn count_unverified(&mut self) {
        self.unverified_kills += 1;
    }

    /// Counts a repeated kill line (memory.oom.group kills its victim again).
    pub fn count_repeated_kill_line(&mut self) {
        self.repeated_kill_lines_this_boot += 1;
    }

    /// The victims whose latest kill is at or after `since` (the retention's horizon).
    pub fn victims_since(&self, since: f64) -> impl Iterator<Item = &VictimTally> {
        self.victims
            .iter()
            .filter(move |v| v.last_kill_seconds >= since)
    }

    /// Counts a userspace killer's line that the killer did not write.
    pub fn count_rejected_userspace(&mut self, killer: &str) {
        *self
            .userspace_rejected
            .entry(killer.to_owned())
            .or_default() += 1;
    }

    /// Counts a userspace killer's kill of `group`.
    pub fn count_userspace(&mut self, killer: &str, group: &str) {
        let existing = self
            .userspace
            .iter()
            .position(|u| u.killer == killer && u.group == group);
        match existing {
            Some(index) => self.userspace[index].kills += 1,
            None if self.userspace.len() < MAX_VICTIMS => self.userspace.push(UserspaceTally {
                killer: killer.to_owned(),
                group: group.to_owned(),
                kills: 1,
            }),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: f64 = 7.0 * 86400.0;

    fn kill(comm: &str, at: f64) -> AttributedKill {
        AttributedKill {
            counted_by_vmstat: true,
            group: "svc".into(),
            comm: comm.into(),
            constraint: "memcg",
            at_seconds: at,
            rss: RssAtDeath {
                anon_bytes: Some(at as u64),
                ..RssAtDeath::default()
            },
            memcg: Some("/svc".into()),
        }
    }

    #[test]
    fn sequence_numbers_skip_replays_and_count_gaps() {
        let mut ledger = KillLedger::default();
        // A ring buffer that wrapped before oomwatch ever ran: history, not a loss.
        assert_eq!(ledger.advance(340), SeqCheck::First { earlier: 340 });
        assert_eq!(ledger.advance(341), SeqCheck::New { lost: 0 });
        assert_eq!(ledger.advance(345), SeqCheck::New { lost: 3 });
        assert_eq!(ledger.advance(345), SeqCheck::Replayed);
        assert_eq!(ledger.advance(342), SeqCheck::Replayed);
        assert_eq!(ledger.records_lost, 3);
        ledger.start_new_boot();
        assert_eq!(ledger.advance(10), SeqCheck::First { earlier: 10 });
        assert_eq!(ledger.advance(20), SeqCheck::New { lost: 9 });
        assert_eq!(ledger.records_lost, 12);
    }

    #[test]
    fn kills_add_up_and_the_latest_rss_wins() {
        let mut ledger = KillLedger::default();
        ledger.count_kill(kill("java", 10.0), WEEK);
        ledger.count_kill(kill("java", 30.0), WEEK);
        ledger.count_kill(kill("java", 20.0), WEEK);
        ledger.count_kill(kill("python3", 5.0), WEEK);
        assert_eq!(ledger.kernel_kills_this_boot, 4);
        assert_eq!(ledger.victims.len(), 2);
        let java = &ledger.victims[0];
        assert_eq!(java.kills, 3);
        assert_eq!(java.last_kill_seconds, 30.0);
        assert_eq!(java.last_rss.anon_bytes, Some(30));
        ledger.start_new_boot();
        assert_eq!(ledger.kernel_kills_this_boot, 0);
        assert_eq!(ledger.victims[0].kills, 3, "counts survive a reboot");
    }

    #[test]
    fn victims_are_bounded() {
        let mut ledger = KillLedger::default();
        for i in 0..MAX_VICTIMS + 10 {
            ledger.count_kill(kill(&format!("c{i}"), i as f64), WEEK);
        }
        assert_eq!(ledger.victims.len(), MAX_VICTIMS);
        assert!(ledger.victims.iter().all(|v| v.comm != "c0"));
    }

    #[test]
    fn old_victims_are_forgotten_and_uncounted_kills_explain_nothing() {
        let mut ledger = KillLedger::default();
        ledger.count_kill(kill("old", 0.0), WEEK);
        ledger.count_kill(kill("new", WEEK + 10.0), WEEK);
        let names: Vec<&str> = ledger.victims.iter().map(|v| v.comm.as_str()).collect();
        assert_eq!(names, ["new"], "a victim past the retention is dropped");
        assert_eq!(ledger.victims_since(WEEK + 11.0).count(), 0);
        let shared = AttributedKill {
            counted_by_vmstat: false,
            ..kill("sharer", WEEK + 20.0)
        };
        ledger.count_kill(shared, WEEK);
        ledger.count_repeated_kill_line();
        assert_eq!(ledger.kernel_kills_this_boot, 3);
        assert_eq!(
            ledger.explained_this_boot(),
            3,
            "2 counted kills + 1 repeated line"
        );
        assert_eq!(ledger.unattributed_this_boot(5), 2);
        assert_eq!(ledger.unattributed_this_boot(1), 0, "never below zero");
    }
}
