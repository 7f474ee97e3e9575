//! The kernel-log intake: each record the follower reads goes through the OOM report
//! assembler, and each kill it yields is named (its group), counted in the ledger, noted
//! for the exit accounting and logged with the kernel's numbers. Owns the bookkeeping of
//! one open log (what is unsaved, what is logged); must not open or read the device.
//!
//! `oomwatch_kmsg_up` turns 1 once the replay of the ring buffer has caught up with the
//! kernel. Kills are written to the state file as soon as a burst is drained, with the
//! last sequence number handled, so a restart replays the ring buffer without counting
//! anything twice. Each kill also goes to the event log with the kernel's numbers, once: a
//! kill whose sequence number is not above the newest one logged in this boot (from the
//! state file and the log itself) is a replay. Logging a kill that the ledger had counted
//! before (an upgrade from a version without kill events) is intended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::events::{Event, EventKind, EventLog, OomKillEvent};
use crate::kills::attribution::VictimNamer;
use crate::kills::ledger::{AttributedKill, KillLedger, RssAtDeath, SeqCheck};
use crate::kills::shared::{KmsgShared, RecentVictim};
use crate::kmsg::oom::{KernelKill, OomAssembler, OomEvent};
use crate::kmsg::record::parse_record;
use crate::state::StateStore;
use crate::units::kib_opt_to_bytes;

/// How long a burst of records that held no kill may stay unpersisted.
const SEQ_PERSIST_INTERVAL: Duration = Duration::from_secs(30);
/// Kills held for the event log before a write, during a long replay or a kill storm.
const UNLOGGED_KILLS: usize = 256;

/// Where the intake's results go.
pub struct IntakeLinks {
    pub state: Arc<StateStore>,
    pub shared: Arc<KmsgShared>,
    pub namer: VictimNamer,
    /// Boot time, seconds since the epoch, to turn record time stamps into wall time.
    pub boot_time_seconds: f64,
    /// Where each kill is logged with the kernel's numbers.
    pub events: Arc<EventLog>,
    /// The current boot, stamped on logged kills; None when it could not be read.
    pub boot_id: Option<String>,
}

/// One open kernel log: the assembler and the persistence bookkeeping.
pub struct Intake<'l> {
    links: &'l IntakeLinks,
    /// Reading this machine's own kernel log (not a file of records from elsewhere).
    live: bool,
    assembler: OomAssembler,
    unsaved_kills: bool,
    unsaved_seq: bool,
    saved_at: Instant,
    /// The newest kill of this boot in the event log (or about to be).
    logged_through: Option<u64>,
    /// Kills not yet written to the event log.
    unlogged: Vec<Event>,
}

impl<'l> Intake<'l> {
    pub fn new(links: &'l IntakeLinks, live: bool) -> Self {
        let in_state = links.shared.ledger().last_logged_seq;
        let logged_through = in_state.max(newest_logged_kill(links));
        // The log knew better than the state: the state learns it with the next write.
        let behind = logged_through != in_state;
        if behind {
            let mut guard = links.shared.lock();
            Arc::make_mut(&mut guard).last_logged_seq = logged_through;
        }
        Self {
            links,
            live,
            assembler: OomAssembler::new(),
            unsaved_kills: behind,
            unsaved_seq: false,
            saved_at: Instant::now(),
            logged_through,
            unlogged: Vec::new(),
        }
    }

    /// Takes one kmsg record.
    pub fn handle(&mut self, bytes: &[u8]) {
        let record = match parse_record(bytes) {
            Ok(record) => record,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a malformed kernel log record");
                return;
            }
        };
        let (source, message) = record.source();
        let printk_uptime = record.ts_usec as f64 / 1e6;
        // A record may complete two events: a summary-only kill whose report it ended,
        // then its own.
        let mut handled = Vec::new();
        for event in self.assembler.push(source, message, record.seq, None) {
            let event = Some(event);
            let kill_uptime = self.kill_uptime(&event, printk_uptime);
            let attributed = match &event {
                Some(OomEvent::Kill(kill)) => {
                    Some(self.attribute(kill, kill_uptime, printk_uptime, record.seq))
                }
                _ => None,
            };
            handled.push((event, attributed));
        }
        if self.advance(record.seq) {
            for (event, attributed) in handled {
                self.count(event, attributed);
            }
        }
    }

    /// A kill's time since boot: a record read as it is written is stamped now on
    /// CLOCK_BOOTTIME (the clock of exit events, scans and /proc start times; the printk
    /// clock drifts from it over weeks and stops during suspend); a replayed one keeps its
    /// printk stamp.
    fn kill_uptime(&self, event: &Option<OomEvent>, printk_uptime: f64) -> f64 {
        match event {
            Some(OomEvent::Kill(_)) if self.live && self.links.shared.up() => {
                crate::clock::boottime_now()
            }
            _ => printk_uptime,
        }
    }

    /// Names a kill's group and wall-clock time, notes the victim for the exit
    /// accounting, and queues the kill for the event log unless it was logged before.
    fn attribute(
        &mut self,
        kill: &KernelKill,
        kill_uptime: f64,
        printk_uptime: f64,
        seq: u64,
    ) -> (String, f64) {
        if self.live {
            // Replayed kills too: an exit while oomwatch was down is matched after it.
            self.links.shared.note_victim(RecentVictim {
                pid: kill.pid,
                comm: kill.comm.clone(),
                uptime_secs: kill_uptime,
            });
        }
        let group = self.links.namer.group(kill, kill_uptime);
        let at_seconds = self.wall_time(printk_uptime);
        if self.logged_through.is_none_or(|logged| seq > logged) {
            self.log_kill(kill, &group, at_seconds, seq);
        }
        (group, at_seconds)
    }

    /// Moves the ledger past `seq`; false when the record was handled before a restart
    /// (the assembler has its context, nothing is counted).
    fn advance(&mut self, seq: u64) -> bool {
        let mut guard = self.links.shared.lock();
        match Arc::make_mut(&mut guard).advance(seq) {
            SeqCheck::Replayed => return false,
            SeqCheck::New { lost } if lost > 0 => tracing::warn!(
                lost,
                "kernel log records were overwritten before oomwatch read them"
            ),
            SeqCheck::First { earlier } if earlier > 0 => tracing::info!(
                first_seq = seq,
                "the kernel log of this boot starts here; earlier records rotated out before oomwatch first ran"
            ),
            _ => {}
        }
        self.unsaved_seq = true;
        true
    }

    /// Counts what the assembler found in the ledger.
    fn count(&mut self, event: Option<OomEvent>, attributed: Option<(String, f64)>) {
        let mut guard = self.links.shared.lock();
        let ledger = Arc::make_mut(&mut guard);
        match event {
            Some(OomEvent::Kill(kill)) => {
                let (group, at_seconds) = attributed.unwrap_or_default();
                count_kill(ledger, kill, group, at_seconds);
                self.unsaved_kills = true;
            }
            Some(OomEvent::Userspace(kill)) => {
                let comm = kill.comm.as_deref().unwrap_or("");
                let group = self
                    .links
                    .namer
                    .by_name(comm, kill.unit_or_cgroup.as_deref());
                tracing::warn!(killer = %kill.killer, group = %group, "userspace OOM kill");
                ledger.count_userspace(&kill.killer, &group);
                self.unsaved_kills = true;
            }
            Some(OomEvent::Panic(panic)) => {
                tracing::error!(reason = %panic.reason, "the kernel log shows a panic on OOM");
            }
            Some(OomEvent::RepeatedKill { pid, .. }) => {
                tracing::debug!(
                    pid,
                    "the same victim killed again with its memory.oom.group"
                );
                ledger.repeated_kill_lines_this_boot += 1;
                self.unsaved_kills = true;
            }
            Some(OomEvent::NoKillable(none)) => {
                tracing::warn!(
                    memcg = none.memcg.as_deref().unwrap_or(""),
                    "the OOM killer found no killable process"
                );
            }
            None => {}
        }
    }

    /// Queues a kill for the event log, with the kernel's numbers.
    fn log_kill(&mut self, kill: &KernelKill, group: &str, at_seconds: f64, seq: u64) {
        let event = OomKillEvent::from_kernel(kill, group, self.links.boot_id.clone(), seq);
        self.unlogged.push(Event {
            time: at_seconds,
            kind: EventKind::OomKill(Box::new(event)),
        });
        self.logged_through = Some(seq);
        if self.unlogged.len() >= UNLOGGED_KILLS {
            self.write_kills();
        }
    }

    /// Writes the queued kills to the event log, then notes the newest in the ledger (the
    /// state write that follows makes it durable): the log first, so a crash between the
    /// two leaves the kill in the log, where the next start finds it.
    fn write_kills(&mut self) {
        if self.unlogged.is_empty() {
            return;
        }
        self.links.events.append(&self.unlogged);
        self.unlogged.clear();
        let mut guard = self.links.shared.lock();
        Arc::make_mut(&mut guard).last_logged_seq = self.logged_through;
        self.unsaved_kills = true;
    }

    /// The wall-clock time of a record stamped `uptime` seconds after boot. For the live
    /// log, from the monotonic clock the record's stamp uses (see
    /// `clock::wall_time_of_monotonic`). For a file of records from elsewhere: boot time
    /// plus the stamp.
    fn wall_time(&self, uptime: f64) -> f64 {
        if self.live {
            crate::clock::wall_time_of_monotonic(uptime)
        } else {
            self.links.boot_time_seconds + uptime
        }
    }

    /// Everything written so far is read: persist, and say the log is up (only now, so
    /// `oomwatch_kmsg_up` 1 means the counts are current, not mid-replay).
    pub fn caught_up(&mut self) {
        self.write_kills();
        self.persist();
        if !self.links.shared.set_up(true) {
            let ledger = self.links.shared.ledger();
            tracing::info!(
                last_seq = ?ledger.last_seq,
                kills_this_boot = ledger.kernel_kills_this_boot,
                "kernel log caught up; following new records"
            );
        }
    }

    /// Writes the ledger when kills are unsaved, or when only the position moved and the
    /// last write is older than `SEQ_PERSIST_INTERVAL`.
    fn persist(&mut self) {
        let due = self.unsaved_seq && self.saved_at.elapsed() >= SEQ_PERSIST_INTERVAL;
        if !self.unsaved_kills && !due {
            return;
        }
        let ledger = self.links.shared.ledger();
        self.links
            .state
            .update(|s| s.kmsg = KillLedger::clone(&ledger));
        self.unsaved_kills = false;
        self.unsaved_seq = false;
        self.saved_at = Instant::now();
    }
}

/// The newest kill of this boot in the event log. The state file knows what was logged
/// unless the exporter died between the log write and the state write; the log knows
/// unless it compacted the kill away.
fn newest_logged_kill(links: &IntakeLinks) -> Option<u64> {
    let read = links.events.read().ok()?;
    read.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::OomKill(kill) if kill.boot_id == links.boot_id => Some(kill.seq),
            _ => None,
        })
        .max()
}

fn count_kill(ledger: &mut KillLedger, kill: KernelKill, group: String, at_seconds: f64) {
    let constraint = kill.constraint_label();
    tracing::warn!(pid = kill.pid, comm = %kill.comm, group = %group,
        constraint, memcg = kill.memcg.as_deref().unwrap_or(""),
        anon_rss_kb = kill.anon_rss_kb.unwrap_or(0), "OOM kill");
    ledger.count_kill(AttributedKill {
        constraint,
        group,
        comm: kill.comm,
        at_seconds,
        rss: RssAtDeath {
            anon_bytes: kib_opt_to_bytes(kill.anon_rss_kb),
            file_bytes: kib_opt_to_bytes(kill.file_rss_kb),
            shmem_bytes: kib_opt_to_bytes(kill.shmem_rss_kb),
        },
    });
}
