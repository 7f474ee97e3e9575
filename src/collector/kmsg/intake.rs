//! The kernel-log intake: each record the follower reads goes through the OOM report
//! assembler, and each kill it yields is checked against the kernel's own counters
//! (`kills::verify`); a verified kill is named (its group), counted in the ledger, noted
//! for the exit accounting and logged with the kernel's numbers, and a kill line the
//! counters do not back is counted apart as unverified and logged once. Owns the
//! bookkeeping of one open log (what is unsaved, what is logged); must not open or read
//! the device.
//!
//! `oomwatch_kmsg_up` turns 1 once the replay of the ring buffer has caught up with the
//! kernel. Kills are written to the state file as soon as a burst is drained, with the
//! last sequence number handled, so a restart replays the ring buffer without counting
//! anything twice. Each verified kill goes to the event log once; until the log has it,
//! the state file keeps the ledger as it was before that kill (the replay position does
//! not pass a kill that is not in the log), so a restart counts and logs it again rather
//! than losing it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::events::{Event, EventKind, EventLog, OomKillEvent};
use crate::kills::attribution::VictimNamer;
use crate::kills::counters::KernelCounters;
use crate::kills::ledger::{AttributedKill, KillLedger, RssAtDeath, SeqCheck};
use crate::kills::shared::{KmsgShared, RecentVictim};
use crate::kills::verify::{Counts, KillVerifier, Unbacked, Verdict};
use crate::kills::writer::check_writer;
use crate::kmsg::kernel_lines::classify;
use crate::kmsg::oom::{KernelKill, KillKind, OomAssembler, OomEvent};
use crate::kmsg::record::{parse_record, Record, Writer};
use crate::kmsg::text::Source;
use crate::kmsg::userspace::is_killer_tag;
use crate::kmsg::UserspaceKill;
use crate::logging::LogLimit;
use crate::state::StateStore;
use crate::units::kib_opt_to_bytes;

/// How long a burst of records that held no kill may stay unpersisted.
const SEQ_PERSIST_INTERVAL: Duration = Duration::from_secs(30);
/// Kills held for the event log before a write, during a long replay or a kill storm.
const UNLOGGED_KILLS: usize = 256;
/// Unverified kill lines are logged in full at most once per this long.
const UNVERIFIED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Where the intake's results go.
pub struct IntakeLinks {
    pub state: Arc<StateStore>,
    pub shared: Arc<KmsgShared>,
    pub namer: VictimNamer,
    /// The kernel's counts of OOM kills, read to verify each kill line.
    pub counters: KernelCounters,
    /// `--oom.victims-retention`: a victim not killed for this long is forgotten.
    pub victims_retention_secs: f64,
    /// Boot time, seconds since the epoch, to turn record time stamps into wall time.
    pub boot_time_seconds: f64,
    /// Where each kill is logged with the kernel's numbers.
    pub events: Arc<EventLog>,
    /// The current boot, stamped on logged kills; None when it could not be read.
    pub boot_id: Option<String>,
    /// The proc file system (`--path.procfs`), where the writer of a userspace killer's
    /// line is looked up (`kills::writer`).
    pub proc_root: std::path::PathBuf,
}

/// One open kernel log: the assembler and the persistence bookkeeping.
pub struct Intake<'l> {
    links: &'l IntakeLinks,
    /// Reading this machine's own kernel log (not a file of records from elsewhere).
    live: bool,
    assembler: OomAssembler,
    /// The assembler of lines under a killer's name that the killer did not write.
    quarantine: OomAssembler,
    verifier: KillVerifier,
    unsaved_kills: bool,
    unsaved_seq: bool,
    saved_at: Instant,
    /// The newest kill of this boot in the event log (or about to be).
    logged_through: Option<u64>,
    /// Kills not yet written to the event log, oldest first.
    unlogged: Vec<Event>,
    /// The ledger as it was before the oldest kill in `unlogged`: what the state file
    /// may hold while that kill is not in the event log.
    durable: Option<KillLedger>,
    unverified_log: LogLimit,
    rejected_log: LogLimit,
    /// Kills counted while replaying the ring buffer (logged as one line at the catch-up).
    replayed_kills: u64,
    /// The last record a previous run handled, when this one resumes after it.
    resumed_at: Option<u64>,
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
            quarantine: OomAssembler::new(),
            verifier: KillVerifier::default(),
            unsaved_kills: behind,
            unsaved_seq: false,
            saved_at: Instant::now(),
            logged_through,
            unlogged: Vec::new(),
            durable: None,
            unverified_log: LogLimit::new(UNVERIFIED_LOG_INTERVAL),
            rejected_log: LogLimit::new(UNVERIFIED_LOG_INTERVAL),
            replayed_kills: 0,
            resumed_at: links.shared.ledger().last_seq,
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
        // A line under a killer's name whose writer is not the killer goes to an
        // assembler of its own: it can neither count nor disturb the real killer's lines
        // (earlyoom's SIGTERM-then-SIGKILL, nohang's victim named before its kill).
        let untrusted = self.untrusted_writer(&record, source, printk_uptime);
        let assembler = match untrusted {
            Some(_) => &mut self.quarantine,
            None => &mut self.assembler,
        };
        let events: Vec<OomEvent> = assembler.push(source, message, record.seq, None).collect();
        // Seen before a restart: the assembler has its context, nothing is counted.
        if !self.advance(record.seq) {
            return;
        }
        if events.is_empty() && self.live && embeds_kill_line(source, message) {
            self.on_unverified(&Unbacked::Embedded, record.seq, message);
        }
        // A record may complete two events: a summary-only kill whose report it ended,
        // then its own.
        for event in events {
            match (event, &untrusted) {
                (OomEvent::Userspace(kill), Some(why)) => self.on_rejected(&kill.killer, why),
                // The kernel printed it: a process name at the start of a kernel
                // message (`<comm>[<pid>]: segfault at …`) can look like oomd's record.
                (OomEvent::Userspace(kill), None)
                    if self.live && record.writer() == Writer::Kernel =>
                {
                    self.on_rejected(&kill.killer, "the kernel wrote the record (a process name echoed at the start of a kernel message), not the killer");
                }
                (OomEvent::Kill(kill), _) => self.on_kill(kill, record.seq, printk_uptime),
                (OomEvent::RepeatedKill { pid, .. }, _) => self.on_repeated_kill(pid),
                (other, _) => self.on_other(other),
            }
        }
    }

    /// Moves the ledger past `seq`; false when the record was handled before a restart.
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

    /// A kill line: verified against the kernel's counters, then named, counted, noted
    /// for the exit accounting and queued for the event log.
    fn on_kill(&mut self, mut kill: KernelKill, seq: u64, printk_uptime: f64) {
        let mut verdict = self.verify(&kill, seq);
        if matches!(verdict, Verdict::Unverified(Unbacked::Cgroup { .. }))
            && kill.kind == KillKind::GroupMember
        {
            // Read as a member of the memory.oom.group pass just before it, but that
            // cgroup's own count does not back it: a header-less kill of another cgroup
            // (the kernel rate-limits the header, not the kill line). It keeps no context
            // of that event, and the host count alone judges it.
            kill.oom_group = None;
            kill.memcg = None;
            kill.invoker = None;
            kill.constraint = None;
            kill.global = None;
            verdict = self.verify(&kill, seq);
        }
        if let Verdict::Unverified(why) = verdict {
            let line = format!("Killed process {} ({})", kill.pid, kill.comm);
            self.on_unverified(&why, seq, &line);
            return;
        }
        let kill_uptime = self.kill_uptime(printk_uptime);
        if self.live {
            // Replayed kills too: an exit while oomwatch was down is matched after it.
            self.links.shared.note_victim(RecentVictim {
                pid: kill.pid,
                comm: kill.comm.clone(),
                uptime_secs: kill_uptime,
            });
        }
        let group = self.links.namer.group(&kill, kill_uptime);
        let at_seconds = self.wall_time(printk_uptime);
        if self.logged_through.is_none_or(|logged| seq > logged) {
            self.queue_for_log(&kill, &group, at_seconds, seq);
        }
        if self.links.shared.up() {
            tracing::warn!(pid = kill.pid, comm = %kill.comm, group = %group,
                constraint = kill.constraint_label(), memcg = kill.memcg.as_deref().unwrap_or(""),
                anon_rss_kb = kill.anon_rss_kb.unwrap_or(0), "OOM kill");
        } else {
            // A replay: one line for all of them at the catch-up.
            tracing::debug!(pid = kill.pid, comm = %kill.comm, group = %group, "OOM kill (replayed)");
            self.replayed_kills += 1;
        }
        let mut guard = self.links.shared.lock();
        count_kill(
            Arc::make_mut(&mut guard),
            kill,
            group,
            at_seconds,
            self.links.victims_retention_secs,
        );
        self.unsaved_kills = true;
    }

    /// The verdict of the kernel's counters, read now (after the line: the kernel counts a
    /// kill before it prints it). Records from a file (`--path.kmsg` naming a regular file:
    /// fixtures, another machine's log) are not this host's, and its counters cannot judge
    /// them.
    fn verify(&mut self, kill: &KernelKill, seq: u64) -> Verdict {
        if !self.live {
            return Verdict::Verified;
        }
        if !kill.counted_by_vmstat() {
            return self.verifier.verify_uncounted(seq);
        }
        let counters = &self.links.counters;
        // A group member's own cgroup is its group's or below: that count includes it.
        let cgroup = kill.task_memcg.as_deref().or(kill.oom_group.as_deref());
        let counts = Counts {
            vmstat: counters.vmstat_oom_kills(),
            cgroup: cgroup.and_then(|cgroup| counters.memcg_oom_kills(cgroup)),
        };
        let ledger = self.links.shared.ledger();
        self.verifier.verify_counted(&ledger, seq, cgroup, counts)
    }

    /// An event the end of a file of records completed (the record it came from is
    /// already past the ledger).
    fn on_finished(&mut self, event: OomEvent) {
        match event {
            // Counted by the run that read this far before, at its own end.
            OomEvent::Kill(kill) if self.resumed_at.is_some_and(|last| kill.at <= last) => {}
            OomEvent::Kill(kill) => {
                let seq = kill.at;
                // A kmsg record's time is its stamp in microseconds since boot.
                let uptime = kill
                    .time
                    .as_deref()
                    .and_then(|t| t.parse::<f64>().ok())
                    .map_or(0.0, |usec| usec / 1e6);
                self.on_kill(kill, seq, uptime);
            }
            OomEvent::RepeatedKill { pid, .. } => self.on_repeated_kill(pid),
            // Only a file of records ends (`caught_up`), and its writers are not checked.
            other => self.on_other(other),
        }
    }

    /// memory.oom.group killed its victim again: not a kill, but /proc/vmstat counts it.
    fn on_repeated_kill(&mut self, pid: u32) {
        tracing::debug!(
            pid,
            "the same victim killed again with its memory.oom.group"
        );
        let counts = Counts {
            vmstat: self.links.counters.vmstat_oom_kills(),
            cgroup: None,
        };
        let mut guard = self.links.shared.lock();
        let ledger = Arc::make_mut(&mut guard);
        if self.verifier.verify_repeat(ledger, counts) {
            ledger.count_repeated_kill_line();
            self.unsaved_kills = true;
        }
    }

    /// Why the writer of a userspace line under a killer's name is not that killer
    /// (`kills::writer`); None for any other line, and for any line of a file of
    /// records (not this machine's log: its writers cannot be looked up).
    fn untrusted_writer(
        &self,
        record: &Record<'_>,
        source: Source<'_>,
        printk_uptime: f64,
    ) -> Option<String> {
        let Source::Program(name) = source else {
            return None;
        };
        if !self.live || !is_killer_tag(name) {
            return None;
        }
        let writer = record.writer();
        // oomd writes its record straight into /dev/kmsg; journald forwards a message
        // with no name as `[pid]: `, which any service's process can send.
        if name.is_empty() && writer != Writer::Untagged {
            return Some("it has no name but journald's [pid]: (oomd writes its records straight into /dev/kmsg, never through journald)".into());
        }
        // The killer's name as it counts its kills (nohang-desktop is nohang's).
        let killer = name.strip_suffix("-desktop").unwrap_or(name);
        // The record's printk stamp on the boot clock, where process start times are.
        let written_at =
            printk_uptime + (crate::clock::boottime_now() - crate::clock::monotonic_now());
        let ticks = self.links.namer.clock_ticks;
        check_writer(&self.links.proc_root, writer, killer, written_at, ticks).err()
    }

    /// Userspace kills, panics on OOM and reports without a killable process.
    fn on_other(&mut self, event: OomEvent) {
        match event {
            // Received live on D-Bus (collector/systemd): the same kill again.
            OomEvent::Userspace(kill)
                if kill.killer == "systemd-oomd"
                    && self.links.shared.up()
                    && self.links.shared.oomd_live() =>
            {
                tracing::debug!("systemd-oomd kill in the kernel log: counted from D-Bus");
            }
            OomEvent::Userspace(kill) => self.on_userspace(&kill),
            OomEvent::Panic(panic) => {
                tracing::error!(reason = %panic.reason, "the kernel log shows a panic on OOM");
            }
            OomEvent::NoKillable(none) => {
                tracing::warn!(
                    memcg = none.memcg.as_deref().unwrap_or(""),
                    "the OOM killer found no killable process"
                );
            }
            OomEvent::Kill(_) | OomEvent::RepeatedKill { .. } => {}
        }
    }

    /// Counts a userspace killer's kill in its victim's group.
    fn on_userspace(&mut self, kill: &UserspaceKill) {
        let comm = kill.comm.as_deref().unwrap_or("");
        let group = self
            .links
            .namer
            .by_name(comm, kill.unit_or_cgroup.as_deref());
        tracing::warn!(killer = %kill.killer, group = %group, "userspace OOM kill");
        let mut guard = self.links.shared.lock();
        Arc::make_mut(&mut guard).count_userspace(&kill.killer, &group);
        self.unsaved_kills = true;
    }

    /// Counts a userspace killer's line that the killer did not write, and logs it (in
    /// full at most once a minute, with how many were not logged since).
    fn on_rejected(&mut self, killer: &str, why: &str) {
        {
            let mut guard = self.links.shared.lock();
            Arc::make_mut(&mut guard).count_rejected_userspace(killer);
        }
        self.unsaved_kills = true;
        let Some(quiet) = self.rejected_log.admit() else {
            tracing::debug!(
                killer,
                why,
                "a userspace OOM killer's line not written by that killer"
            );
            return;
        };
        tracing::warn!(killer, why, not_logged_since = quiet,
            "a userspace OOM killer's line in the kernel log was not written by that killer: not counted as a kill (oomwatch_userspace_oom_kills_rejected_total)");
    }

    /// Counts a kill line the counters do not back, and logs it (in full at most once a
    /// minute, with how many were not logged since).
    fn on_unverified(&mut self, why: &Unbacked, seq: u64, text: &str) {
        {
            let mut guard = self.links.shared.lock();
            Arc::make_mut(&mut guard).count_unverified();
        }
        self.unsaved_kills = true;
        let Some(quiet) = self.unverified_log.admit() else {
            return;
        };
        let shown: String = text.chars().take(512).collect();
        tracing::warn!(seq, reason = %why, record = %shown.escape_debug(),
            not_logged_since = quiet,
            "a kill line in the kernel log is not backed by the kernel's OOM kill counters: not counted as a kill (oomwatch_kmsg_unverified_kills_total)");
    }

    /// A kill's time since boot: a record read as it is written is stamped now on
    /// CLOCK_BOOTTIME (the clock of exit events, scans and /proc start times; the printk
    /// clock drifts from it over weeks and stops during suspend); a replayed one keeps its
    /// printk stamp.
    fn kill_uptime(&self, printk_uptime: f64) -> f64 {
        if self.live && self.links.shared.up() {
            crate::clock::boottime_now()
        } else {
            printk_uptime
        }
    }

    /// Queues a kill for the event log, with the kernel's numbers; the first one queued
    /// marks the ledger that may be persisted until the log has it.
    fn queue_for_log(&mut self, kill: &KernelKill, group: &str, at_seconds: f64, seq: u64) {
        if self.durable.is_none() {
            // Before this record: a restart replays it, counts it and logs it again.
            let mut before = KillLedger::clone(&self.links.shared.ledger());
            before.last_seq = seq.checked_sub(1);
            self.durable = Some(before);
        }
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

    /// Hands the queued kills to the event log. Once the log holds nothing pending, the
    /// newest is noted in the ledger (the state write that follows makes it durable) and
    /// the state may hold the ledger as it is; until then it holds the one from before the
    /// oldest unwritten kill (`durable`).
    fn write_kills(&mut self) {
        let written = self.links.events.append(&self.unlogged).is_ok();
        self.unlogged.clear();
        if !written || self.durable.is_none() {
            return;
        }
        self.durable = None;
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
        if !self.live {
            // A file of records read to its end: a report whose kill line is missing
            // ends here (on the live log its line may still come).
            if let Some(event) = self.assembler.finish() {
                self.on_finished(event);
            }
        }
        self.write_kills();
        self.persist();
        if self.live {
            let vmstat = self.links.counters.vmstat_oom_kills();
            self.verifier.freeze(&self.links.shared.ledger(), vmstat);
        }
        if !self.links.shared.set_up(true) {
            let ledger = self.links.shared.ledger();
            tracing::info!(
                last_seq = ?ledger.last_seq,
                kills_this_boot = ledger.kernel_kills_this_boot,
                kills_replayed = self.replayed_kills,
                unverified = ledger.unverified_kills,
                "kernel log caught up; following new records"
            );
        }
    }

    /// Writes the ledger when kills are unsaved, or when only the position moved and the
    /// last write is older than `SEQ_PERSIST_INTERVAL`. While kills wait for the event log,
    /// the ledger from before them is written instead.
    fn persist(&mut self) {
        let due = self.unsaved_seq && self.saved_at.elapsed() >= SEQ_PERSIST_INTERVAL;
        if !self.unsaved_kills && !due {
            return;
        }
        let ledger = match &self.durable {
            Some(durable) => durable.clone(),
            None => KillLedger::clone(&self.links.shared.ledger()),
        };
        self.links.state.update(|s| s.kmsg = ledger);
        self.unsaved_kills = false;
        self.unsaved_seq = false;
        self.saved_at = Instant::now();
    }
}

/// The newest kill of this boot in the event log. The state file knows what was logged
/// unless the exporter died between the log write and the state write; the log knows
/// unless it compacted the kill away.
fn newest_logged_kill(links: &IntakeLinks) -> Option<u64> {
    let mut newest = None;
    links
        .events
        .visit(|line| {
            let head = &line.head;
            if head.kind == "oom_kill" && head.boot_id.as_deref() == links.boot_id.as_deref() {
                newest = newest.max(head.seq);
            }
        })
        .ok()?;
    newest
}

/// A kernel record that is not an OOM report line but carries a kill line's words in its
/// text: the kernel echoed someone's input (a mount option, a file name), or the parser
/// does not know the form. Never a kill; counted as unverified.
fn embeds_kill_line(source: Source<'_>, message: &str) -> bool {
    const FORMS: [&str; 4] = [
        "Killed process ",
        "oom-kill:",
        " invoked oom-killer:",
        "Kill process ",
    ];
    matches!(source, Source::Kernel)
        && FORMS.iter().any(|form| message.contains(form))
        && classify(message).is_none()
}

fn count_kill(
    ledger: &mut KillLedger,
    kill: KernelKill,
    group: String,
    at_seconds: f64,
    retention_secs: f64,
) {
    let constraint = kill.constraint_label();
    ledger.count_kill(
        AttributedKill {
            memcg: kill.memcg.clone(),
            counted_by_vmstat: kill.counted_by_vmstat(),
            constraint,
            group,
            comm: kill.comm,
            at_seconds,
            rss: RssAtDeath {
                anon_bytes: kib_opt_to_bytes(kill.anon_rss_kb),
                file_bytes: kib_opt_to_bytes(kill.file_rss_kb),
                shmem_bytes: kib_opt_to_bytes(kill.shmem_rss_kb),
            },
        },
        retention_secs,
    );
}
