//! The per-instance cache behind the `processes` collector's hot path, and the two ways
//! it reads a process.
//!
//! A process instance `(pid, start ticks)` seen for the first time takes the full path:
//! `/proc/<pid>` is pinned with an `O_PATH` descriptor, and `stat`, `cgroup` (once, to
//! name its group and memory cgroup), `statm`, `oom_score` and `oom_score_adj` are read
//! through it. The instance then stays cached with its `oom_score_adj` held open (a
//! `Pin`), within a descriptor budget. Each later scan reads a pinned instance with one
//! open and one `pread`: `<pid>/statm` by path, then `oom_score_adj` through the pin,
//! whose success proves the statm just read was the same instance's.
//!
//! What such a scan skips, and why that is exact:
//! - `stat` (comm, ppid, start time): the start time never changes; the comm changes only
//!   by exec or a rename, which the process-events listener journals (`take_renamed`);
//!   the ppid changes only when the parent dies, which the scan sees (the parent is no
//!   longer among this scan's instances, or its pid now names a younger process). Those
//!   instances, and all of them while the journal is incomplete (listener down, events
//!   lost), read stat again.
//! - `oom_score`: the kernel computes it from RSS + swap entries + page-table pages,
//!   oom_score_adj and the host's RAM + swap pages. It is read again when statm's size
//!   or resident pages, oom_score_adj or the host's total changed, and in any case every
//!   `SCORE_REFRESH_SCANS` scans (rotating over pids), which bounds the staleness of what
//!   statm cannot show: swap entries and page tables changing while size and RSS stay put
//!   (a page swapped out as another is faulted in, khugepaged collapsing a range). The
//!   score moves one point per about 0.15% of the host's memory, so such drift is rare
//!   and small; the top-K and group maxima stay exact between changes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::capacity::shrink_map;
use crate::cgroupfs::MemoryHierarchy;
use crate::exits::ExitsShared;
use crate::groups::reader::{read_group_name, NameReadError};
use crate::groups::{GroupRules, GroupTable};
use crate::limits::RESERVED_DESCRIPTORS;
use crate::procfs::pid::{parse_oom_value, parse_pid_stat, parse_statm, Statm};
use crate::procfs::reader::{PidDir, PidReadError, Pin, ProcDir, ReadBuf};
use crate::procfs::ParseError;

/// Every pinned instance's oom_score is read at least once per this many scans.
pub(super) const SCORE_REFRESH_SCANS: u64 = 16;

/// An instance's comm, group and memory cgroup, as cached.
type Identity = (Arc<str>, Arc<str>, Option<Arc<str>>);

/// One process as this scan read it.
#[derive(Debug)]
pub(super) struct Row {
    pub pid: u32,
    pub ppid: u32,
    pub start_ticks: u64,
    pub comm: Arc<str>,
    pub group: Arc<str>,
    pub memcg: Option<Arc<str>>,
    pub resident_pages: u64,
    pub oom_score: i32,
    pub oom_score_adj: i32,
    /// ppid was read from stat in this scan (not carried from an earlier one).
    pub ppid_fresh: bool,
}

/// Why one process was left out of a scan.
#[derive(Debug, thiserror::Error)]
pub(super) enum ProcessError {
    #[error(transparent)]
    Read(#[from] PidReadError),
    #[error("pid {pid}: {source}")]
    Malformed { pid: u32, source: ParseError },
}

fn invalid(pid: u32, source: ParseError) -> ProcessError {
    ProcessError::Malformed { pid, source }
}

/// What naming a new instance needs besides the process: the scan's rules, the memory
/// cgroup hierarchy and the group table.
pub(super) struct Classifier<'a> {
    pub hierarchy: Option<&'a MemoryHierarchy>,
    pub rules: &'a GroupRules,
    pub table: &'a mut GroupTable,
}

/// What oom_score was last read against (with the host's RAM + swap, which the reader
/// keeps once for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ScoreBasis {
    statm: Statm,
    adj: i32,
}

/// What is cached per live instance between scans.
#[derive(Debug)]
struct CachedInstance {
    start_ticks: u64,
    ppid: u32,
    kernel_thread: bool,
    comm: Arc<str>,
    group: Arc<str>,
    memcg: Option<Arc<str>>,
    pin: Option<Pin>,
    basis: ScoreBasis,
    oom_score: i32,
    /// The scan that last saw it (a wrapping count: only equality with the current
    /// scan matters).
    seen_in_scan: u32,
    /// stat must be read again: the process was renamed, or its parent changed.
    stat_stale: bool,
}

/// How the instances of one scan were read, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Instances read through their pin (statm by path, oom_score_adj by pread).
    pub pinned: u64,
    /// Instances read in full through a fresh `/proc/<pid>` descriptor.
    pub full: u64,
    /// oom_score files read (every full read, and pinned ones whose basis changed).
    pub scores: u64,
    /// stat files read again for a pinned instance whose parent changed.
    pub reparented: u64,
}

/// The per-instance cache and the reads of one scan.
#[derive(Debug)]
pub(super) struct InstanceReader {
    instances: HashMap<u32, CachedInstance>,
    memcgs: HashMap<Box<str>, Arc<str>>,
    /// Instances gone since the last scan, by pid, with their comm.
    departed: HashMap<u32, Arc<str>>,
    /// Interned command names: the instances of one program share theirs.
    comms: HashMap<Box<str>, Arc<str>>,
    renamed: Vec<u32>,
    buf: ReadBuf,
    cmdline: String,
    /// Pins held: counted at each end_scan, plus those opened since (so a pin closed
    /// mid-scan frees its room at the next count).
    pins: u64,
    pins_max: u64,
    /// The group of kernel threads (never shown; one shared name).
    kernel_group: Arc<str>,
    scan: u32,
    total_pages: u64,
    /// The host's RAM + swap changed since the last scan: every score is read again.
    total_changed: bool,
    /// The rename journal was incomplete: every instance reads stat this scan.
    stat_all: bool,
    counts: ReadCounts,
}

impl InstanceReader {
    /// `pins_max` (`--processes.max-pinned`) is lowered to what RLIMIT_NOFILE leaves after
    /// the server's connections.
    pub fn new(pins_max: u64) -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let allowed = limit.map_or(pins_max, |l| l.saturating_sub(RESERVED_DESCRIPTORS));
        Self {
            instances: HashMap::new(),
            memcgs: HashMap::new(),
            departed: HashMap::new(),
            comms: HashMap::new(),
            renamed: Vec::new(),
            buf: ReadBuf::default(),
            cmdline: String::new(),
            pins: 0,
            kernel_group: Arc::from(""),
            pins_max: pins_max.min(allowed),
            scan: 0,
            total_pages: 0,
            total_changed: false,
            stat_all: true,
            counts: ReadCounts::default(),
        }
    }

    /// Starts a scan: takes the listener's rename journal (all of stat is read when there
    /// is none or it is incomplete) and the host's RAM + swap pages when known.
    pub fn begin_scan(&mut self, exits: Option<&ExitsShared>, total_pages: Option<u64>) {
        self.scan = self.scan.wrapping_add(1);
        self.counts = ReadCounts::default();
        self.departed.clear();
        let complete = exits.is_some_and(|exits| exits.take_renamed(&mut self.renamed));
        self.stat_all = !complete;
        for tgid in &self.renamed {
            if let Some(cached) = self.instances.get_mut(tgid) {
                cached.stat_stale = true;
            }
        }
        self.total_changed = false;
        if let Some(total) = total_pages.filter(|total| *total != self.total_pages) {
            self.total_changed = self.total_pages != 0;
            self.total_pages = total;
        }
    }

    pub fn counts(&self) -> ReadCounts {
        self.counts
    }

    pub fn pins(&self) -> u64 {
        self.pins
    }

    /// Reads one listed pid; Ok(None) for kernel threads.
    pub fn read(
        &mut self,
        dir: &ProcDir,
        pid: u32,
        classifier: &mut Classifier<'_>,
    ) -> Result<Option<Row>, ProcessError> {
        let clock = ScanClock {
            scan: self.scan,
            total_changed: self.total_changed,
        };
        let trusted = !self.stat_all;
        if let Some(cached) = self
            .instances
            .get_mut(&pid)
            .filter(|c| trusted && c.pin.is_some() && !c.stat_stale)
        {
            match read_pinned(cached, dir, pid, clock, &mut self.buf, &mut self.counts)? {
                Pinned::Read(row) => return Ok(row),
                Pinned::Replaced => self.forget(pid),
            }
        }
        let pid_dir = dir.open_pid(pid)?;
        let previous = self.instances.remove(&pid);
        match self.read_full(&pid_dir, classifier, previous.as_ref()) {
            Ok((mut fresh, row)) => {
                match previous {
                    // The same instance read again: it keeps its pin.
                    Some(old) if old.start_ticks == fresh.start_ticks => {
                        fresh.pin = fresh.pin.or(old.pin);
                    }
                    Some(old) => self.departed_as(pid, old),
                    None => {}
                }
                self.instances.insert(pid, fresh);
                Ok(row)
            }
            Err(e) => {
                // Left as it was: unseen this scan, end_scan counts it as departed.
                if let Some(old) = previous {
                    self.instances.insert(pid, old);
                }
                Err(e)
            }
        }
    }

    /// Reads one process in full through its pinned directory; `previous` is what the
    /// cache held under its pid. Returns what to cache and the row.
    fn read_full(
        &mut self,
        dir: &PidDir,
        classifier: &mut Classifier<'_>,
        previous: Option<&CachedInstance>,
    ) -> Result<(CachedInstance, Option<Row>), ProcessError> {
        let pid = dir.pid();
        let stat_bytes = dir.read_small(c"stat", &mut self.buf)?;
        let stat = parse_pid_stat(stat_bytes).map_err(|e| invalid(pid, e))?;
        let (ppid, start_ticks, kernel_thread) = (stat.ppid, stat.start_ticks, stat.kernel_thread);
        let same_instance = previous.filter(|c| c.start_ticks == start_ticks);
        // Its cgroup is read again only under a new name. comm is compared as it was
        // stored (lossy UTF-8), so a name the kernel cut inside a multi-byte character
        // still hits the cache.
        let (comm, group, memcg) =
            match same_instance.filter(|c| *String::from_utf8_lossy(stat.comm) == *c.comm) {
                Some(c) => (c.comm.clone(), c.group.clone(), c.memcg.clone()),
                None => {
                    let comm = intern(&mut self.comms, &String::from_utf8_lossy(stat.comm));
                    self.identify(dir, classifier, comm, kernel_thread)?
                }
            };
        // The instance's pin if it has one; else a new one, counted against the budget.
        let held = same_instance.and_then(|c| c.pin.as_ref());
        let fresh_pin = match held {
            None if self.pins < self.pins_max => dir.pin().ok(),
            _ => None,
        };
        self.pins += u64::from(fresh_pin.is_some());
        let (basis, score) = if kernel_thread {
            (ScoreBasis::default(), 0)
        } else {
            self.read_risk(dir, held.or(fresh_pin.as_ref()), same_instance)?
        };
        self.counts.full += 1;
        let row = (!kernel_thread).then(|| Row {
            pid,
            ppid,
            start_ticks,
            comm: comm.clone(),
            group: group.clone(),
            memcg: memcg.clone(),
            resident_pages: basis.statm.resident_pages,
            oom_score: score,
            oom_score_adj: basis.adj,
            ppid_fresh: true,
        });
        let cached = CachedInstance {
            start_ticks,
            ppid,
            kernel_thread,
            comm,
            group,
            memcg,
            pin: fresh_pin,
            basis,
            oom_score: score,
            seen_in_scan: self.scan,
            stat_stale: false,
        };
        Ok((cached, row))
    }

    /// A newly named instance's group and memory cgroup (kernel threads share one group).
    fn identify(
        &mut self,
        dir: &PidDir,
        classifier: &mut Classifier<'_>,
        comm: Arc<str>,
        kernel_thread: bool,
    ) -> Result<Identity, ProcessError> {
        if kernel_thread {
            return Ok((comm, self.kernel_group.clone(), None));
        }
        let (group, memcg) = self.classify(dir, &comm, classifier)?;
        Ok((comm, group, memcg))
    }

    /// Reads statm and oom_score_adj (through the pin when there is one), and oom_score
    /// unless the cached score's inputs did not move (the same rule as the pinned path).
    fn read_risk(
        &mut self,
        dir: &PidDir,
        pin: Option<&Pin>,
        same_instance: Option<&CachedInstance>,
    ) -> Result<(ScoreBasis, i32), ProcessError> {
        let pid = dir.pid();
        let statm =
            parse_statm(dir.read_small(c"statm", &mut self.buf)?).map_err(|e| invalid(pid, e))?;
        let adj = match pin {
            Some(pin) => read_adj(pin, pid, &mut self.buf)?,
            None => parse_oom_value(
                "oom_score_adj",
                dir.read_small(c"oom_score_adj", &mut self.buf)?,
            )
            .map_err(|e| invalid(pid, e))?,
        };
        let basis = ScoreBasis { statm, adj };
        let (scan, total_changed) = (self.scan, self.total_changed);
        let known =
            same_instance.filter(|c| c.basis == basis && !total_changed && !refresh_due(scan, pid));
        let score = match known {
            Some(c) => c.oom_score,
            None => {
                self.counts.scores += 1;
                parse_oom_value("oom_score", dir.read_small(c"oom_score", &mut self.buf)?)
                    .map_err(|e| invalid(pid, e))?
            }
        };
        Ok((basis, score))
    }

    /// Decides the group and memory cgroup of a newly seen instance.
    fn classify(
        &mut self,
        dir: &PidDir,
        comm: &str,
        classifier: &mut Classifier<'_>,
    ) -> Result<(Arc<str>, Option<Arc<str>>), ProcessError> {
        let memcgs = &mut self.memcgs;
        let hierarchy = classifier.hierarchy;
        let mut memcg = None;
        let (name, _) = read_group_name(
            dir,
            comm,
            classifier.rules,
            &mut self.buf,
            &mut self.cmdline,
            |cgroups| {
                let path = match hierarchy {
                    Some(MemoryHierarchy::V1 { .. }) => cgroups.memory_v1,
                    Some(MemoryHierarchy::V2 { .. }) => cgroups.unified,
                    None => None,
                }
                .filter(|path| *path != b"/")
                .map(String::from_utf8_lossy);
                memcg = path.map(|path| intern(memcgs, &path));
            },
        )
        .map_err(|e| match e {
            NameReadError::Read(e) => ProcessError::Read(e),
            NameReadError::Malformed(e) => invalid(dir.pid(), e),
        })?;
        Ok((classifier.table.admit(&name), memcg))
    }

    /// After the reads of a scan: a pinned instance whose parent is no longer the one it
    /// had (not among this scan's instances, or its pid now names a younger process) was
    /// reparented, and reads stat again for its new ppid.
    pub fn check_parents(&mut self, dir: &ProcDir, rows: &mut [Row]) {
        let scan = self.scan;
        for row in rows.iter_mut().filter(|r| !r.ppid_fresh && r.ppid != 0) {
            let parent_start = self
                .instances
                .get(&row.ppid)
                .filter(|parent| parent.seen_in_scan == scan)
                .map(|parent| parent.start_ticks);
            if parent_start.is_some_and(|start| start <= row.start_ticks) {
                continue;
            }
            let Some(cached) = self.instances.get_mut(&row.pid) else {
                continue;
            };
            let Ok(bytes) = dir.read_pid_file(row.pid, "stat", &mut self.buf) else {
                continue;
            };
            let Ok(stat) = parse_pid_stat(bytes) else {
                continue;
            };
            if stat.start_ticks != cached.start_ticks {
                continue;
            }
            let ppid = stat.ppid;
            let confirmed = cached
                .pin
                .as_ref()
                .is_some_and(|pin| pin.read(row.pid, &mut self.buf).is_ok());
            if confirmed {
                cached.ppid = ppid;
                row.ppid = ppid;
                self.counts.reparented += 1;
            }
        }
    }

    /// Ends a scan: forgets the instances it did not see (into `departed`), and gives
    /// back the memory of tables a burst of processes grew.
    pub fn end_scan(&mut self) {
        let scan = self.scan;
        let (departed, mut pins) = (&mut self.departed, 0);
        self.instances.retain(|&pid, c| {
            let alive = c.seen_in_scan == scan;
            if alive {
                pins += u64::from(c.pin.is_some());
            } else if !c.kernel_thread {
                departed.insert(pid, c.comm.clone());
            }
            alive
        });
        self.pins = pins;
        self.memcgs
            .retain(|_, interned| Arc::strong_count(interned) > 1);
        self.comms
            .retain(|_, interned| Arc::strong_count(interned) > 1);
        shrink_map(&mut self.instances);
        shrink_map(&mut self.memcgs);
        shrink_map(&mut self.comms);
    }

    /// Instances gone since the last scan, with their comm.
    pub fn departed(&self) -> &HashMap<u32, Arc<str>> {
        &self.departed
    }

    /// Drops the cached instance under `pid`, remembering it as departed.
    fn forget(&mut self, pid: u32) {
        if let Some(gone) = self.instances.remove(&pid) {
            self.departed_as(pid, gone);
        }
    }

    /// Remembers `gone`, the instance that was `pid`, as departed (its pin closes).
    fn departed_as(&mut self, pid: u32, gone: CachedInstance) {
        if !gone.kernel_thread {
            self.departed.insert(pid, gone.comm);
        }
    }
}

/// What reading a pinned instance found.
enum Pinned {
    /// The instance, or None for a kernel thread.
    Read(Option<Row>),
    /// The pinned instance is gone and the pid may name another process.
    Replaced,
}

/// Reads a cached instance through its pin; `Replaced` when the pid now names another
/// process.
fn read_pinned(
    cached: &mut CachedInstance,
    dir: &ProcDir,
    pid: u32,
    clock: ScanClock,
    buf: &mut ReadBuf,
    counts: &mut ReadCounts,
) -> Result<Pinned, ProcessError> {
    let Some(pin) = cached.pin.as_ref() else {
        return Ok(Pinned::Replaced);
    };
    if cached.kernel_thread {
        return match read_adj(pin, pid, buf) {
            Ok(_) => {
                cached.seen_in_scan = clock.scan;
                Ok(Pinned::Read(None))
            }
            Err(ProcessError::Read(PidReadError::Vanished)) => Ok(Pinned::Replaced),
            Err(e) => Err(e),
        };
    }
    let statm = parse_statm(dir.read_pid_file(pid, "statm", buf)?).map_err(|e| invalid(pid, e))?;
    let adj = match read_adj(pin, pid, buf) {
        Err(ProcessError::Read(PidReadError::Vanished)) => return Ok(Pinned::Replaced),
        other => other?,
    };
    let basis = ScoreBasis { statm, adj };
    if basis != cached.basis || clock.total_changed || refresh_due(clock.scan, pid) {
        let score = parse_oom_value("oom_score", dir.read_pid_file(pid, "oom_score", buf)?)
            .map_err(|e| invalid(pid, e))?;
        // The score was read by path: it is this instance's if the pin still reads.
        match read_adj(pin, pid, buf) {
            Err(ProcessError::Read(PidReadError::Vanished)) => return Ok(Pinned::Replaced),
            other => other?,
        };
        cached.oom_score = score;
        cached.basis = basis;
        counts.scores += 1;
    }
    cached.seen_in_scan = clock.scan;
    counts.pinned += 1;
    Ok(Pinned::Read(Some(Row {
        pid,
        ppid: cached.ppid,
        start_ticks: cached.start_ticks,
        comm: cached.comm.clone(),
        group: cached.group.clone(),
        memcg: cached.memcg.clone(),
        resident_pages: statm.resident_pages,
        oom_score: cached.oom_score,
        oom_score_adj: adj,
        ppid_fresh: false,
    })))
}

/// The scan being read, as the pinned path needs it.
#[derive(Debug, Clone, Copy)]
struct ScanClock {
    scan: u32,
    total_changed: bool,
}

fn read_adj(pin: &Pin, pid: u32, buf: &mut ReadBuf) -> Result<i32, ProcessError> {
    parse_oom_value("oom_score_adj", pin.read(pid, buf)?).map_err(|e| invalid(pid, e))
}

/// Whether `pid`'s oom_score is due for its periodic re-read in `scan`.
fn refresh_due(scan: u32, pid: u32) -> bool {
    u64::from(scan.wrapping_add(pid)) % SCORE_REFRESH_SCANS == 0
}

/// The shared copy of `value` in `table`, made on first use.
fn intern(table: &mut HashMap<Box<str>, Arc<str>>, value: &str) -> Arc<str> {
    match table.get(value) {
        Some(interned) => interned.clone(),
        None => {
            let interned: Arc<str> = Arc::from(value);
            table.insert(Box::from(value), interned.clone());
            interned
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::table::TableSettings;
    use std::path::Path;
    use std::process::{Child, Command};

    struct Scan {
        dir: ProcDir,
        reader: InstanceReader,
        table: GroupTable,
        rules: GroupRules,
        exits: ExitsShared,
    }

    impl Scan {
        fn new(max_pinned: u64) -> Self {
            let settings = TableSettings {
                max_auto_groups: 200,
                retention_secs: 3600.0,
                promote_after_secs: 0.0,
                restart_min_age_secs: 0.0,
                clock_ticks: 100,
            };
            let exits = ExitsShared::default();
            exits.set_up(true); // a listener that missed nothing: the journal is trusted
            let mut renamed = Vec::new();
            exits.take_renamed(&mut renamed);
            Self {
                dir: ProcDir::open(Path::new("/proc")).expect("procfs"),
                reader: InstanceReader::new(max_pinned),
                table: GroupTable::new(settings, [], Default::default()),
                rules: GroupRules::default(),
                exits,
            }
        }

        /// One scan of the given pids; their rows by pid.
        fn run(&mut self, pids: &[u32]) -> HashMap<u32, Row> {
            self.reader.begin_scan(Some(&self.exits), None);
            let mut classifier = Classifier {
                hierarchy: None,
                rules: &self.rules,
                table: &mut self.table,
            };
            let mut rows: Vec<Row> = pids
                .iter()
                .filter_map(|&pid| self.reader.read(&self.dir, pid, &mut classifier).ok()?)
                .collect();
            self.reader.check_parents(&self.dir, &mut rows);
            self.reader.end_scan();
            rows.into_iter().map(|r| (r.pid, r)).collect()
        }
    }

    fn ppid_of(pid: u32) -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        after
            .split(' ')
            .nth(1)
            .expect("ppid")
            .parse()
            .expect("number")
    }

    /// Waits until a just-started `sleep` is asleep with a steady statm (the dynamic loader
    /// done), so that two scans of it see the same memory.
    fn settled(pid: u32) {
        let read = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}"));
        for _ in 0..200 {
            let before = read("statm").expect("statm");
            std::thread::sleep(std::time::Duration::from_millis(20));
            let stat = read("stat").expect("stat");
            let state = stat[stat.rfind(')').expect("comm") + 2..].chars().next();
            if state == Some('S') && read("statm").expect("statm") == before {
                return;
            }
        }
        panic!("sleep {pid} never settled");
    }

    fn reap(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn known_instances_are_read_through_their_pin_and_stat_only_when_it_changed() {
        let child = Command::new("sleep").arg("60").spawn().expect("sleep");
        let pid = child.id();
        settled(pid);
        let mut scan = Scan::new(1024);
        let first = scan.run(&[pid]);
        assert_eq!(first[&pid].comm.as_ref(), "sleep");
        assert_eq!(scan.reader.counts().full, 1);
        assert_eq!(scan.reader.pins(), 1);
        let second = scan.run(&[pid]);
        assert_eq!(scan.reader.counts().pinned, 1, "read through the pin");
        assert_eq!(second[&pid].resident_pages, first[&pid].resident_pages);
        assert_eq!(second[&pid].oom_score, first[&pid].oom_score);

        // A rename the listener journaled makes the next scan read it in full.
        scan.exits.note_renamed(pid);
        scan.run(&[pid]);
        assert_eq!(scan.reader.counts().full, 1, "re-read after a rename");
        scan.run(&[pid]);
        assert_eq!(scan.reader.counts().pinned, 1);

        // So does an incomplete journal, for everyone.
        scan.exits.renames_lost();
        scan.run(&[pid]);
        assert_eq!(scan.reader.counts().full, 1);

        // A changed oom_score_adj is read through the pin and re-reads the score.
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), "500").expect("adj");
        let raised = scan.run(&[pid]);
        assert_eq!(raised[&pid].oom_score_adj, 500);
        assert_eq!(scan.reader.counts().scores, 1);
        assert!(raised[&pid].oom_score > first[&pid].oom_score);
        reap(child);
        assert!(scan.run(&[pid]).is_empty(), "gone");
        assert_eq!(scan.reader.pins(), 0, "its pin is closed");
        assert_eq!(
            scan.reader.departed().get(&pid).map(|c| c.as_ref()),
            Some("sleep")
        );
    }

    #[test]
    fn a_reparented_instance_reads_its_new_parent() {
        // sh starts a sleep in the background and waits; killing sh hands the sleep to
        // init (or a subreaper), which stat must then show.
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(shell.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("sleep's pid");
        let sleep: u32 = line.trim().parse().expect("pid");
        let mut scan = Scan::new(1024);
        let pids = [shell.id(), sleep];
        assert_eq!(scan.run(&pids)[&sleep].ppid, shell.id());
        scan.run(&pids);
        assert_eq!(scan.reader.counts().pinned, 2);
        reap(shell);
        let new_parent = ppid_of(sleep);
        assert_ne!(new_parent, pids[0]);
        let rows = scan.run(&pids);
        assert_eq!(rows[&sleep].ppid, new_parent);
        assert_eq!(scan.reader.counts().reparented, 1);
        let _ = Command::new("kill").arg(sleep.to_string()).status();
    }

    #[test]
    fn pins_stay_within_their_budget() {
        let children: Vec<Child> = (0..4)
            .map(|_| Command::new("sleep").arg("60").spawn().expect("sleep"))
            .collect();
        let pids: Vec<u32> = children.iter().map(Child::id).collect();
        let mut scan = Scan::new(2);
        assert_eq!(scan.run(&pids).len(), 4);
        assert_eq!(scan.reader.pins(), 2);
        let rows = scan.run(&pids);
        assert_eq!(rows.len(), 4, "the unpinned are read in full");
        let counts = scan.reader.counts();
        assert_eq!((counts.pinned, counts.full), (2, 2));
        for child in children {
            reap(child);
        }
        scan.run(&pids);
        assert_eq!(scan.reader.pins(), 0);
    }
}
