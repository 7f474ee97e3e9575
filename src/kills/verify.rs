//! Whether a kill the kernel log names is backed by the kernel's own counters. The kernel
//! raises `/proc/vmstat` `oom_kill` and the victim memory cgroup's `oom_kill` before it
//! prints the kill line (mm/oom_kill.c `__oom_kill_process`), so by the time the line is
//! read, its kill is counted. A named kill is verified when the host count holds one more
//! kill than the log has already explained this boot, and, where the victim's cgroup still
//! exists, when that cgroup's count holds one more than the kills already charged to it.
//! A kill beyond what the counters explain is unverified: someone made the kernel print
//! text that looks like a kill, or the parser misread a line; it is counted apart and
//! never as a kill.
//!
//! The kills the host count holds but the log never explained (rotated out before
//! oomwatch read them, or unparsed: `oomwatch_oom_kills_unattributed`) are history. Once
//! the replay of the ring buffer has caught up, that history is frozen (`freeze`): a kill
//! read from then on must be backed by a rise of the host count beyond it, so old
//! unexplained kills lend no credit to a new line. Only the lines replayed from before the
//! catch-up can draw on the history, and a real kill counted in the instant of the freeze
//! whose line comes just after is accepted within `FREEZE_GRACE`. Kill records the ring
//! buffer overwrote while oomwatch was reading (`oomwatch_kmsg_records_lost_total`) leave
//! their rise unexplained, and that much credit stays, as stated in docs/metrics.md.
//!
//! Pure: the counts are read by the caller (`counters`) and handed in.

use std::collections::HashMap;

use super::ledger::KillLedger;
use crate::cgroupfs::MemcgKillCount;

/// Memory cgroups whose charges are remembered; beyond, the least recently charged goes.
const MAX_CHARGED_CGROUPS: usize = 4096;
/// A kill the host count does not include (a `sharing same memory` kill) is verified by
/// the verified kill it follows in the same report, within this many records.
const SAME_REPORT_RECORDS: u64 = 4096;
/// After the freeze, a kill the frozen history would refuse but the whole count backs is
/// still accepted for this long: the kernel counts a kill a few microseconds before it
/// prints it, and the freeze may fall between the two.
pub const FREEZE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The verdict on one kill line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    Unverified(Unbacked),
}

/// Why a kill line is not backed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbacked {
    #[error("/proc/vmstat oom_kill is {vmstat}, and the kernel log has already explained {explained} kills this boot")]
    Host { vmstat: u64, explained: u64 },
    #[error("the memory cgroup {cgroup} counts {kills} OOM kills, and {charged} were already charged to it")]
    Cgroup {
        cgroup: String,
        kills: u64,
        charged: u64,
    },
    #[error("a kill vmstat does not count, with no verified kill before it in its report")]
    Orphan,
    #[error("a kill line inside another kernel message")]
    Embedded,
}

/// What the kernel's counters said when a kill line was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `/proc/vmstat` `oom_kill`; None where the kernel keeps none (before 4.13).
    pub vmstat: Option<u64>,
    /// The victim's memory cgroup's count, when it still exists.
    pub cgroup: Option<MemcgKillCount>,
}

#[derive(Debug, Clone, Copy)]
struct Charge {
    inode: u64,
    charged: u64,
    last_used: u64,
}

/// The charges per memory cgroup, kept in memory for this run.
#[derive(Debug, Default)]
pub struct KillVerifier {
    charges: HashMap<String, Charge>,
    uses: u64,
    last_verified_seq: Option<u64>,
    /// The host count's unexplained kills when the replay caught up, and when.
    frozen: Option<(u64, std::time::Instant)>,
}

impl KillVerifier {
    /// Judges a kill that /proc/vmstat counts (a victim, or a memory.oom.group member),
    /// printed in record `seq`, of a task in memory cgroup `cgroup`.
    pub fn verify_counted(
        &mut self,
        ledger: &KillLedger,
        seq: u64,
        cgroup: Option<&str>,
        counts: Counts,
    ) -> Verdict {
        if let Err(why) = self.host_backs(ledger, counts.vmstat) {
            return Verdict::Unverified(why);
        }
        if let (Some(cgroup), Some(count)) = (cgroup, counts.cgroup) {
            if let Err(why) = self.charge(cgroup, count) {
                return Verdict::Unverified(why);
            }
        }
        self.last_verified_seq = Some(seq);
        Verdict::Verified
    }

    /// Judges a kill /proc/vmstat does not count (`sharing same memory`): backed by the
    /// verified kill of its own report.
    pub fn verify_uncounted(&mut self, seq: u64) -> Verdict {
        match self.last_verified_seq {
            Some(last) if seq >= last && seq - last <= SAME_REPORT_RECORDS => Verdict::Verified,
            _ => Verdict::Unverified(Unbacked::Orphan),
        }
    }

    /// Judges a repeated kill line (memory.oom.group kills its victim again), which
    /// /proc/vmstat counts: true when the host count backs it.
    pub fn verify_repeat(&mut self, ledger: &KillLedger, counts: Counts) -> bool {
        self.host_backs(ledger, counts.vmstat).is_ok()
    }

    /// The replay has caught up: the host count's kills that the log has not explained by
    /// now are history, and back no later line.
    pub fn freeze(&mut self, ledger: &KillLedger, vmstat: Option<u64>) {
        if self.frozen.is_none() {
            let history = vmstat.map_or(0, |v| ledger.unattributed_this_boot(v));
            self.frozen = Some((history, std::time::Instant::now()));
        }
    }

    fn host_backs(&mut self, ledger: &KillLedger, vmstat: Option<u64>) -> Result<(), Unbacked> {
        let explained = ledger.explained_this_boot();
        let Some(vmstat) = vmstat else {
            return Ok(());
        };
        let history = match &mut self.frozen {
            // A kill of the instant of the freeze: it was in the history, it is not now.
            Some((history, at)) if *history > 0 && at.elapsed() < FREEZE_GRACE => {
                if vmstat.saturating_sub(*history) <= explained && vmstat > explained {
                    *history -= 1;
                }
                *history
            }
            Some((history, _)) => *history,
            None => 0,
        };
        if vmstat.saturating_sub(history) <= explained {
            return Err(Unbacked::Host { vmstat, explained });
        }
        Ok(())
    }

    fn charge(&mut self, cgroup: &str, count: MemcgKillCount) -> Result<(), Unbacked> {
        self.uses += 1;
        let uses = self.uses;
        if !self.charges.contains_key(cgroup) && self.charges.len() >= MAX_CHARGED_CGROUPS {
            let oldest = self
                .charges
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.charges.remove(&oldest);
            }
        }
        let charge = self.charges.entry(cgroup.to_owned()).or_insert(Charge {
            inode: count.inode,
            charged: 0,
            last_used: uses,
        });
        if charge.inode != count.inode {
            *charge = Charge {
                inode: count.inode,
                charged: 0,
                last_used: uses,
            };
        }
        charge.last_used = uses;
        if count.kills <= charge.charged {
            return Err(Unbacked::Cgroup {
                cgroup: cgroup.to_owned(),
                kills: count.kills,
                charged: charge.charged,
            });
        }
        charge.charged += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(ledger: &mut KillLedger) {
        ledger.kernel_kills_this_boot += 1;
    }

    #[test]
    fn the_host_count_backs_each_kill_once() {
        let mut verifier = KillVerifier::default();
        let mut ledger = KillLedger::default();
        let host = |vmstat| Counts {
            vmstat: Some(vmstat),
            cgroup: None,
        };
        assert_eq!(
            verifier.verify_counted(&ledger, 10, None, host(1)),
            Verdict::Verified
        );
        counted(&mut ledger);
        // A second kill line while vmstat still says 1: a forgery or a misread.
        assert_eq!(
            verifier.verify_counted(&ledger, 11, None, host(1)),
            Verdict::Unverified(Unbacked::Host {
                vmstat: 1,
                explained: 1
            })
        );
        assert_eq!(
            verifier.verify_counted(&ledger, 12, None, host(2)),
            Verdict::Verified
        );
        counted(&mut ledger);
        // No vmstat (a kernel before 4.13): nothing to check against.
        assert_eq!(
            verifier.verify_counted(&ledger, 13, None, Counts::default()),
            Verdict::Verified
        );
        assert!(verifier.verify_repeat(&ledger, host(3)));
        assert!(!verifier.verify_repeat(&ledger, host(2)));
    }

    #[test]
    fn history_lends_no_credit_once_the_replay_has_caught_up() {
        let mut verifier = KillVerifier::default();
        let mut ledger = KillLedger::default();
        let host = |vmstat| Counts {
            vmstat: Some(vmstat),
            cgroup: None,
        };
        // 10 kills this boot, 1 of them in the log oomwatch read.
        assert_eq!(
            verifier.verify_counted(&ledger, 1, None, host(10)),
            Verdict::Verified
        );
        counted(&mut ledger);
        verifier.freeze(&ledger, Some(10));
        // Past the grace of the freeze, a line with no new kill behind it is refused,
        // although 9 kills of the boot were never explained.
        verifier.frozen = verifier
            .frozen
            .map(|(history, at)| (history, at - FREEZE_GRACE));
        assert!(matches!(
            verifier.verify_counted(&ledger, 2, None, host(10)),
            Verdict::Unverified(Unbacked::Host { .. })
        ));
        // A new kill raises the count: backed.
        assert_eq!(
            verifier.verify_counted(&ledger, 3, None, host(11)),
            Verdict::Verified
        );
    }

    #[test]
    fn a_kill_counted_in_the_instant_of_the_freeze_is_still_backed() {
        let mut verifier = KillVerifier::default();
        let ledger = KillLedger::default();
        // The kernel counted a kill; its line is not read yet when the replay catches up.
        verifier.freeze(&ledger, Some(1));
        let host = Counts {
            vmstat: Some(1),
            cgroup: None,
        };
        assert_eq!(
            verifier.verify_counted(&ledger, 5, None, host),
            Verdict::Verified
        );
    }

    #[test]
    fn the_cgroup_count_backs_its_own_kills_and_a_new_cgroup_starts_again() {
        let mut verifier = KillVerifier::default();
        let ledger = KillLedger::default();
        let cg = |kills, inode| Counts {
            vmstat: Some(100),
            cgroup: Some(MemcgKillCount { kills, inode }),
        };
        let db = Some("/system.slice/db.service");
        assert_eq!(
            verifier.verify_counted(&ledger, 1, db, cg(2, 7)),
            Verdict::Verified
        );
        assert_eq!(
            verifier.verify_counted(&ledger, 2, db, cg(2, 7)),
            Verdict::Verified
        );
        assert!(matches!(
            verifier.verify_counted(&ledger, 3, db, cg(2, 7)),
            Verdict::Unverified(Unbacked::Cgroup {
                kills: 2,
                charged: 2,
                ..
            })
        ));
        // Recreated under the same path: counts from 0 again.
        assert_eq!(
            verifier.verify_counted(&ledger, 4, db, cg(1, 8)),
            Verdict::Verified
        );
    }

    #[test]
    fn a_kill_vmstat_does_not_count_needs_a_verified_kill_of_its_report() {
        let mut verifier = KillVerifier::default();
        assert_eq!(
            verifier.verify_uncounted(5),
            Verdict::Unverified(Unbacked::Orphan)
        );
        let ledger = KillLedger::default();
        let host = Counts {
            vmstat: Some(1),
            cgroup: None,
        };
        assert_eq!(
            verifier.verify_counted(&ledger, 10, None, host),
            Verdict::Verified
        );
        assert_eq!(verifier.verify_uncounted(11), Verdict::Verified);
        assert_eq!(
            verifier.verify_uncounted(10 + SAME_REPORT_RECORDS + 1),
            Verdict::Unverified(Unbacked::Orphan)
        );
    }

    #[test]
    fn charged_cgroups_are_bounded() {
        let mut verifier = KillVerifier::default();
        let ledger = KillLedger::default();
        for i in 0..MAX_CHARGED_CGROUPS + 10 {
            let counts = Counts {
                vmstat: None,
                cgroup: Some(MemcgKillCount { kills: 1, inode: 1 }),
            };
            let cgroup = format!("/c{i}");
            verifier.verify_counted(&ledger, i as u64, Some(&cgroup), counts);
        }
        assert_eq!(verifier.charges.len(), MAX_CHARGED_CGROUPS);
    }
}
