//! The kernel-log follower: a thread that reads `/dev/kmsg` (`--path.kmsg`) from the
//! oldest record in the ring buffer, then each new record as the kernel writes it, and
//! turns OOM reports into counted, attributed kills in the ledger.
//!
//! The device is read non-blocking and drained; between bursts the thread sleeps in
//! `poll()`, so it costs nothing while the kernel is quiet. `oomwatch_kmsg_up` turns 1
//! once the replay of the ring buffer has caught up with the kernel. EPIPE (records overwritten
//! before they were read) is counted from the sequence gap and reading goes on. Kills are
//! written to the state file as soon as a burst is drained, with the last sequence number
//! handled, so a restart replays the ring buffer without counting anything twice. A
//! regular file given as `--path.kmsg` (fixtures, tests) is read from its start and then
//! followed by polling for growth every 250 ms; the device never is polled that way.
//! Each kill also goes to the event log with the kernel's numbers, once: a kill whose
//! sequence number is not above the newest one logged in this boot (from the state file
//! and the log itself) is a replay. Logging a kill that the ledger had counted before
//! (an upgrade from a version without kill events) is intended.
//! When the log cannot be opened (no CAP_SYSLOG under dmesg_restrict, a container) the
//! thread says once what to grant, keeps `oomwatch_kmsg_up` at 0, and retries every 30 s.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{fstat, open, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::attribution::{constraint_label, VictimNamer};
use super::ledger::{AttributedKill, KillLedger, RssAtDeath, SeqCheck};
use super::oom::{KernelKill, OomAssembler, OomEvent};
use super::record::{parse_record, split_records};
use crate::events::{Event, EventKind, EventLog, OomKillEvent};
use crate::exits::accounting::RecentVictim;
use crate::state::StateStore;

/// How long a burst of records that held no kill may stay unpersisted.
const SEQ_PERSIST_INTERVAL: Duration = Duration::from_secs(30);
const REOPEN_DELAY: Duration = Duration::from_secs(30);
const FILE_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// Larger than any kmsg record (the kernel's limit is 1024 bytes of text plus metadata).
const RECORD_BUFFER: usize = 16 * 1024;

/// Victims kept for matching exits with kills (a few minutes of even a kill storm).
const RECENT_VICTIMS: usize = 512;
/// Kills held for the event log before a write, during a long replay or a kill storm.
const UNLOGGED_KILLS: usize = 256;

/// What the follower shares with the scrapes.
#[derive(Debug, Default)]
pub struct KmsgShared {
    up: AtomicBool,
    /// Shared with scrapes by `Arc`: a scrape takes a reference, and the follower copies
    /// the ledger only when it changes one that a scrape still holds.
    ledger: Mutex<Arc<KillLedger>>,
    /// The latest OOM victims, replayed ones included, for the exit accounting.
    victims: Mutex<VecDeque<RecentVictim>>,
}

impl KmsgShared {
    /// Starts from the ledger persisted in the state file.
    pub fn new(ledger: KillLedger) -> Self {
        Self {
            up: AtomicBool::new(false),
            ledger: Mutex::new(Arc::new(ledger)),
            victims: Mutex::default(),
        }
    }

    /// The latest OOM victims the kernel log named, oldest first.
    pub fn recent_victims(&self) -> Vec<RecentVictim> {
        let victims = crate::sync::lock(&self.victims);
        victims.iter().cloned().collect()
    }

    fn note_victim(&self, victim: RecentVictim) {
        let mut victims = crate::sync::lock(&self.victims);
        if victims.len() >= RECENT_VICTIMS {
            victims.pop_front();
        }
        victims.push_back(victim);
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The ledger as it is now (shared, not copied).
    pub fn ledger(&self) -> Arc<KillLedger> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Arc<KillLedger>> {
        crate::sync::lock(&self.ledger)
    }
}

pub struct Follower {
    pub path: PathBuf,
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

impl Follower {
    /// Starts the follower thread.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kmsg".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let mut warned = false;
        loop {
            match open(
                &self.path,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    warned = false;
                    tracing::info!(path = %self.path.display(), "reading the kernel log");
                    let device = fstat(&fd).is_ok_and(|s| {
                        FileType::from_raw_mode(s.st_mode) == FileType::CharacterDevice
                    });
                    let mut reader = RecordReader::new(&self, device);
                    let result = if device {
                        reader.follow_device(&fd)
                    } else {
                        reader.follow_file(&fd)
                    };
                    self.shared.up.store(false, Ordering::Relaxed);
                    if let Err(errno) = result {
                        tracing::error!(path = %self.path.display(), error = %errno,
                            "reading the kernel log failed; OOM victims are not named until it works again");
                    }
                }
                Err(errno) => {
                    self.shared.up.store(false, Ordering::Relaxed);
                    if !warned {
                        let hint = match errno {
                            Errno::PERM | Errno::ACCESS => {
                                "grant CAP_SYSLOG (kernel.dmesg_restrict=1 hides /dev/kmsg from other users), or run as root"
                            }
                            Errno::NOENT => "the kernel log device is missing; in a container, mount the host's /dev/kmsg",
                            _ => "check --path.kmsg",
                        };
                        tracing::warn!(path = %self.path.display(), error = %errno, hint,
                            "cannot read the kernel log: OOM kills are counted from /proc/vmstat only, without victims; oomwatch_kmsg_up is 0");
                        warned = true;
                    }
                }
            }
            std::thread::sleep(REOPEN_DELAY);
        }
    }
}

/// One open kernel log: the assembler and the persistence bookkeeping.
struct RecordReader<'f> {
    follower: &'f Follower,
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

impl<'f> RecordReader<'f> {
    fn new(follower: &'f Follower, live: bool) -> Self {
        // The state file knows what was logged unless the exporter died between the log
        // write and the state write; the log knows unless it compacted the kill away.
        let in_state = follower.shared.ledger().last_logged_seq;
        let in_log = follower.events.read().ok().and_then(|read| {
            read.events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::OomKill(kill) if kill.boot_id == follower.boot_id => Some(kill.seq),
                    _ => None,
                })
                .max()
        });
        let logged_through = in_state.max(in_log);
        // The log knew better than the state: the state learns it with the next write.
        let behind = logged_through != in_state;
        if behind {
            let mut guard = follower.shared.lock();
            Arc::make_mut(&mut guard).last_logged_seq = logged_through;
        }
        Self {
            follower,
            live,
            assembler: OomAssembler::new(),
            unsaved_kills: behind,
            unsaved_seq: false,
            saved_at: Instant::now(),
            logged_through,
            unlogged: Vec::new(),
        }
    }

    fn follow_device(&mut self, fd: &OwnedFd) -> Result<(), Errno> {
        let mut buf = vec![0u8; RECORD_BUFFER];
        loop {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => self.wait_readable(fd)?,
                Ok(n) => self.handle(&buf[..n]),
                Err(Errno::AGAIN) => self.wait_readable(fd)?,
                // Overwritten before they were read: the sequence gap counts them.
                Err(Errno::PIPE) | Err(Errno::INTR) => {}
                Err(errno) => return Err(errno),
            }
        }
    }

    /// Persists what the drained burst changed, then sleeps until the kernel writes.
    fn wait_readable(&mut self, fd: &OwnedFd) -> Result<(), Errno> {
        self.caught_up();
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(errno) => Err(errno),
        }
    }

    fn follow_file(&mut self, fd: &OwnedFd) -> Result<(), Errno> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            match rustix::io::read(fd, &mut chunk) {
                Ok(0) | Err(Errno::AGAIN) => {
                    self.caught_up();
                    std::thread::sleep(FILE_FOLLOW_INTERVAL);
                }
                Ok(n) => {
                    carry.extend_from_slice(&chunk[..n]);
                    // Only whole lines; a record still being written stays in `carry`.
                    let complete = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    for record in split_records(&carry[..complete]) {
                        self.handle(record);
                    }
                    carry.drain(..complete);
                }
                Err(Errno::INTR) => {}
                Err(errno) => return Err(errno),
            }
        }
    }

    fn handle(&mut self, bytes: &[u8]) {
        let record = match parse_record(bytes) {
            Ok(record) => record,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a malformed kernel log record");
                return;
            }
        };
        let (source, message) = record.source();
        let event = self.assembler.push(source, message, record.seq, None);
        let shared = &self.follower.shared;
        // A kill's time since boot: a record read as it is written is stamped now on
        // CLOCK_BOOTTIME (the clock of exit events, scans and /proc start times; the printk
        // clock drifts from it over weeks and stops during suspend); a replayed one keeps
        // its printk stamp.
        let printk_uptime = record.ts_usec as f64 / 1e6;
        let kill_uptime = match &event {
            Some(OomEvent::Kill(_)) if self.live && shared.up() => {
                let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
                now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
            }
            _ => printk_uptime,
        };
        if let (Some(OomEvent::Kill(kill)), true) = (&event, self.live) {
            // Replayed kills too: an exit while oomwatch was down is matched after it.
            shared.note_victim(RecentVictim {
                pid: kill.pid,
                comm: kill.comm.clone(),
                uptime_secs: kill_uptime,
            });
        }
        // A kill's group and wall-clock time (from the printk stamp, see `wall_time`);
        // only kills need them, so the clocks are read for them alone.
        let follower: &'f Follower = self.follower;
        let namer = &follower.namer;
        let attributed = match &event {
            Some(OomEvent::Kill(kill)) => {
                let group = namer.group(kill, kill_uptime);
                let at_seconds = self.wall_time(printk_uptime);
                if self.logged_through.is_none_or(|logged| record.seq > logged) {
                    self.log_kill(kill, &group, at_seconds, record.seq);
                }
                Some((group, at_seconds))
            }
            _ => None,
        };
        let mut guard = shared.lock();
        let ledger = Arc::make_mut(&mut guard);
        match ledger.advance(record.seq) {
            // Seen before a restart: the assembler has its context, nothing is counted.
            SeqCheck::Replayed => return,
            SeqCheck::New { lost } => {
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "kernel log records were overwritten before oomwatch read them"
                    );
                }
                self.unsaved_seq = true;
            }
            SeqCheck::First { earlier } => {
                if earlier > 0 {
                    tracing::info!(
                        first_seq = record.seq,
                        "the kernel log of this boot starts here; earlier records rotated out before oomwatch first ran"
                    );
                }
                self.unsaved_seq = true;
            }
        }
        match event {
            Some(OomEvent::Kill(kill)) => {
                let (group, at_seconds) = attributed.unwrap_or_default();
                let constraint = constraint_label(&kill);
                let kb = |v: Option<u64>| v.map(|kb| kb.saturating_mul(1024));
                tracing::warn!(pid = kill.pid, comm = %kill.comm, group = %group,
                    constraint, memcg = kill.memcg.as_deref().unwrap_or(""),
                    anon_rss_kb = kill.anon_rss_kb.unwrap_or(0), "OOM kill");
                ledger.count_kill(AttributedKill {
                    constraint,
                    group,
                    comm: kill.comm,
                    at_seconds,
                    rss: RssAtDeath {
                        anon_bytes: kb(kill.anon_rss_kb),
                        file_bytes: kb(kill.file_rss_kb),
                        shmem_bytes: kb(kill.shmem_rss_kb),
                    },
                });
                self.unsaved_kills = true;
            }
            Some(OomEvent::Userspace(kill)) => {
                let comm = kill.comm.as_deref().unwrap_or("");
                let group = namer.by_name(comm, kill.unit_or_cgroup.as_deref());
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
        let kb = |v: Option<u64>| v.map(|kb| kb.saturating_mul(1024));
        self.unlogged.push(Event {
            time: at_seconds,
            kind: EventKind::OomKill(Box::new(OomKillEvent {
                group: group.to_owned(),
                pid: kill.pid,
                comm: kill.comm.clone(),
                constraint: constraint_label(kill).to_owned(),
                uid: kill.uid,
                memcg: kill.memcg.clone(),
                task_memcg: kill.task_memcg.clone(),
                invoker: kill.invoker.clone(),
                total_vm_bytes: kb(kill.total_vm_kb),
                anon_rss_bytes: kb(kill.anon_rss_kb),
                file_rss_bytes: kb(kill.file_rss_kb),
                shmem_rss_bytes: kb(kill.shmem_rss_kb),
                pgtables_bytes: kb(kill.pgtables_kb),
                oom_score_adj: kill.oom_score_adj,
                boot_id: self.follower.boot_id.clone(),
                seq,
            })),
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
        self.follower.events.append(&self.unlogged);
        self.unlogged.clear();
        let mut guard = self.follower.shared.lock();
        Arc::make_mut(&mut guard).last_logged_seq = self.logged_through;
        self.unsaved_kills = true;
    }

    /// The wall-clock time of a record stamped `uptime` seconds after boot. For the live
    /// log: now, minus how long ago that was on the monotonic clock (which the record's
    /// stamp uses), so a clock stepped since boot (NTP syncing late, a restored VM) does
    /// not move the kill. For a file of records from elsewhere: boot time plus the stamp.
    fn wall_time(&self, uptime: f64) -> f64 {
        if !self.live {
            return self.follower.boot_time_seconds + uptime;
        }
        let monotonic = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let monotonic = monotonic.tv_sec as f64 + monotonic.tv_nsec as f64 / 1e9;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        now - (monotonic - uptime).max(0.0)
    }

    /// Everything written so far is read: persist, and say the log is up (only now, so
    /// `oomwatch_kmsg_up` 1 means the counts are current, not mid-replay).
    fn caught_up(&mut self) {
        self.write_kills();
        self.persist();
        if !self.follower.shared.up.swap(true, Ordering::Relaxed) {
            let ledger = self.follower.shared.lock();
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
        let ledger = self.follower.shared.ledger();
        self.follower
            .state
            .update(|s| s.kmsg = KillLedger::clone(&ledger));
        self.unsaved_kills = false;
        self.unsaved_seq = false;
        self.saved_at = Instant::now();
    }
}
