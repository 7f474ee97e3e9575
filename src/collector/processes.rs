//! The `processes` collector: one pass over `/proc/<pid>` that yields the top-K next OOM
//! victims, the per-group aggregates, and the restarts counted by the group table.
//!
//! Hot path, hand-rolled: one `O_PATH` descriptor pins each process; `stat`, `statm`,
//! `oom_score` and `oom_score_adj` are read into one reused buffer every scan. What is
//! immutable for an instance `(pid, start ticks)` (its cgroup, and so its group and memory
//! cgroup) is read once and cached until the instance is gone or changes its comm by
//! exec. A process that exits mid-read is skipped and counted, never an error.
//!
//! Each scan also settles the exits since the last one: the top-level exits the
//! process-events listener queued and the top-level instances this scan found gone go
//! through the exit accounting, and each settled exit is counted on its group and written
//! to the event log.

use std::collections::HashMap;
use std::sync::Arc;

use super::{read_file, CollectError, Collector};
use crate::cgroupfs::MemoryHierarchy;
use crate::events::{Event, EventKind, EventLog};
use crate::exits::accounting::{ExitAccounting, Vanished};
use crate::exits::reason::ExitReason;
use crate::exits::ExitsShared;
use crate::groups::live::LivePids;
use crate::groups::reader::{read_group_name, NameReadError};
use crate::groups::table::VanishedInstance;
use crate::groups::NameSource;
use crate::groups::{GroupRules, GroupTable, InstanceKey, TableSettings};
use crate::kmsg::follower::KmsgShared;
use crate::procfs::host::{parse_stat_btime, parse_uptime};
use crate::procfs::pid::{parse_oom_value, parse_pid_stat, parse_statm_resident_pages};
use crate::procfs::reader::{PidDir, PidReadError, ProcDir, ReadBuf};
use crate::procfs::ParseError;
use crate::roots::Roots;
use crate::snapshot::{GroupCgroup, GroupRow, ProcessRow, ProcessesSample, Snapshot};
use crate::state::StateStore;

/// What the collector needs besides the roots.
#[derive(Debug, Clone)]
pub struct ProcessesSettings {
    /// `--processes.top`: how many next victims get per-process series.
    pub top_k: usize,
    pub table: TableSettings,
    pub rules: GroupRules,
    pub page_size: u64,
}

/// What is cached per live instance between scans.
#[derive(Debug)]
struct CachedInstance {
    start_ticks: u64,
    comm: Arc<str>,
    group: Arc<str>,
    memcg: Option<Arc<str>>,
    seen_in_scan: u64,
}

/// One process as this scan read it.
#[derive(Debug)]
struct Row {
    pid: u32,
    ppid: u32,
    start_ticks: u64,
    comm: Arc<str>,
    group: Arc<str>,
    memcg: Option<Arc<str>>,
    resident_pages: u64,
    oom_score: i32,
    oom_score_adj: i32,
}

/// What the collector shares with the other threads.
#[derive(Debug, Clone)]
pub struct ProcessesLinks {
    pub state: Arc<StateStore>,
    /// Receives the pid-to-group map of every scan (for naming OOM victims).
    pub live: Arc<LivePids>,
    /// The process-events listener's queue of exits; None when it is disabled.
    pub exits: Option<Arc<ExitsShared>>,
    /// The kernel log's recent OOM victims; None when it is disabled.
    pub kmsg: Option<Arc<KmsgShared>>,
    pub events: Arc<EventLog>,
}

pub struct ProcessesCollector {
    roots: Roots,
    settings: ProcessesSettings,
    hierarchy: Option<MemoryHierarchy>,
    links: ProcessesLinks,
    table: GroupTable,
    accounting: ExitAccounting,
    proc_dir: Option<ProcDir>,
    buf: ReadBuf,
    cmdline: String,
    pids: Vec<u32>,
    rows: Vec<Row>,
    instances: HashMap<u32, CachedInstance>,
    memcgs: HashMap<Box<str>, Arc<str>>,
    scan: u64,
    vanished: u64,
    unreadable_logged: bool,
    /// Uptime of the last state write.
    last_persisted: Option<f64>,
}

/// How stale the last-seen times in the state file may grow when nothing else changes.
const STATE_REFRESH_SECS: f64 = 60.0;

impl std::fmt::Debug for ProcessesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessesCollector")
            .field("roots", &self.roots)
            .field("instances", &self.instances.len())
            .finish()
    }
}

impl ProcessesCollector {
    pub fn new(roots: Roots, settings: ProcessesSettings, links: ProcessesLinks) -> Self {
        let persisted = links.state.snapshot().groups;
        let table = GroupTable::new(settings.table, settings.rules.fixed_names(), persisted);
        Self {
            hierarchy: MemoryHierarchy::detect(&roots),
            roots,
            settings,
            links,
            table,
            accounting: ExitAccounting::default(),
            proc_dir: None,
            buf: ReadBuf::default(),
            cmdline: String::new(),
            pids: Vec::new(),
            rows: Vec::new(),
            instances: HashMap::new(),
            memcgs: HashMap::new(),
            scan: 0,
            vanished: 0,
            unreadable_logged: false,
            last_persisted: None,
        }
    }

    /// Reads one process; Ok(None) for kernel threads.
    fn read_process(&mut self, dir: &PidDir) -> Result<Option<Row>, ProcessError> {
        let pid = dir.pid();
        let stat_bytes = dir.read(c"stat", &mut self.buf)?;
        let stat = parse_pid_stat(stat_bytes).map_err(|e| invalid(pid, e))?;
        if stat.kernel_thread {
            return Ok(None);
        }
        let (ppid, start_ticks) = (stat.ppid, stat.start_ticks);
        // The same instance as last scan: same start time and name. comm is compared as
        // it was stored (lossy UTF-8), so a name the kernel cut inside a multi-byte
        // character still hits the cache.
        let scan = self.scan;
        let cached = self
            .instances
            .get_mut(&pid)
            .filter(|c| {
                c.start_ticks == start_ticks && *String::from_utf8_lossy(stat.comm) == *c.comm
            })
            .map(|c| {
                c.seen_in_scan = scan;
                (c.comm.clone(), c.group.clone(), c.memcg.clone())
            });
        let hit = cached.is_some();
        let (comm, group, memcg) = match cached {
            Some(known) => known,
            None => {
                let comm: Arc<str> = Arc::from(String::from_utf8_lossy(stat.comm));
                let (group, memcg) = self.classify(dir, &comm)?;
                (comm, group, memcg)
            }
        };
        let resident_pages = parse_statm_resident_pages(dir.read(c"statm", &mut self.buf)?)
            .map_err(|e| invalid(pid, e))?;
        let oom_score = parse_oom_value("oom_score", dir.read(c"oom_score", &mut self.buf)?)
            .map_err(|e| invalid(pid, e))?;
        let oom_score_adj =
            parse_oom_value("oom_score_adj", dir.read(c"oom_score_adj", &mut self.buf)?)
                .map_err(|e| invalid(pid, e))?;
        if !hit {
            // Cached once the instance is read whole; a hit only had its scan renewed.
            self.instances.insert(
                pid,
                CachedInstance {
                    start_ticks,
                    comm: comm.clone(),
                    group: group.clone(),
                    memcg: memcg.clone(),
                    seen_in_scan: scan,
                },
            );
        }
        Ok(Some(Row {
            pid,
            ppid,
            start_ticks,
            comm,
            group,
            memcg,
            resident_pages,
            oom_score,
            oom_score_adj,
        }))
    }

    /// Decides the group and memory cgroup of a newly seen instance.
    fn classify(
        &mut self,
        dir: &PidDir,
        comm: &str,
    ) -> Result<(Arc<str>, Option<Arc<str>>), ProcessError> {
        let (hierarchy, memcgs) = (&self.hierarchy, &mut self.memcgs);
        let mut memcg = None;
        let (name, _) = read_group_name(
            dir,
            comm,
            &self.settings.rules,
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
                memcg = path.map(|path| match memcgs.get(path.as_ref()) {
                    Some(interned) => interned.clone(),
                    None => {
                        let interned: Arc<str> = Arc::from(path.as_ref());
                        memcgs.insert(Box::from(path.as_ref()), interned.clone());
                        interned
                    }
                });
            },
        )
        .map_err(|e| match e {
            NameReadError::Read(e) => ProcessError::Read(e),
            NameReadError::Malformed(e) => invalid(dir.pid(), e),
        })?;
        Ok((self.table.admit(&name), memcg))
    }

    /// Settles the exits since the last scan, counts them on their groups and logs them.
    fn settle_exits(
        &mut self,
        vanished: Vec<VanishedInstance>,
        departed: &HashMap<u32, Arc<str>>,
        now_secs: f64,
    ) {
        let records = self
            .links
            .exits
            .as_ref()
            .map(|exits| exits.drain())
            .unwrap_or_default();
        let victims = self
            .links
            .kmsg
            .as_ref()
            .map(|kmsg| kmsg.recent_victims())
            .unwrap_or_default();
        let vanished = vanished
            .into_iter()
            .map(|gone| Vanished {
                comm: departed.get(&gone.key.pid).cloned(),
                group: gone.group,
                pid: gone.key.pid,
                last_seen_secs: gone.last_seen_secs,
            })
            .collect();
        let mut settled = self
            .accounting
            .settle(records, vanished, &victims, now_secs);
        settled.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
        let wall_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut events = Vec::with_capacity(settled.len());
        for exit in settled {
            // A group no scan has seen is created by an exit only when a rule or a cgroup
            // names it and the exit is a failure: a unit crash-looping between scrapes
            // counts; a comm-named passing command, or a job container that finished
            // well, does not take a slot under --groups.max.
            let group = if self.table.contains(&exit.group) {
                exit.group.clone()
            } else if exit.source.is_some_and(|s| s != NameSource::Comm)
                && exit.reason != ExitReason::ExitedOk
            {
                self.table.admit(&exit.group)
            } else {
                continue;
            };
            self.table.count_exit(&group, exit.reason);
            tracing::info!(group = %group, pid = exit.pid, comm = %exit.comm,
                reason = exit.reason.label(), status = ?exit.status, "instance ended");
            events.push(Event {
                time: wall_now - (now_secs - exit.at_secs).max(0.0),
                kind: EventKind::exit(&group, exit.pid, &exit.comm, exit.reason, exit.status),
            });
        }
        self.links.events.append(&events);
        if let Some(exits) = self
            .links
            .exits
            .as_ref()
            .filter(|_| self.table.take_names_changed())
        {
            exits.set_known_groups(self.table.names().cloned().collect());
        }
    }

    fn read_uptime(&self) -> Result<f64, CollectError> {
        Ok(parse_uptime(&read_file(&self.roots.proc_file("uptime"))?)?)
    }
}

/// Why one process was left out of a scan.
#[derive(Debug, thiserror::Error)]
enum ProcessError {
    #[error(transparent)]
    Read(#[from] PidReadError),
    #[error("pid {pid}: {source}")]
    Malformed { pid: u32, source: ParseError },
}

fn invalid(pid: u32, source: ParseError) -> ProcessError {
    ProcessError::Malformed { pid, source }
}

impl Collector for ProcessesCollector {
    fn name(&self) -> &'static str {
        "processes"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let now_secs = self.read_uptime()?;
        // btime from the boot collector when it ran first in this scan: /proc/stat is
        // large on many-CPU hosts (a line per CPU and per interrupt), so read it once.
        let btime = match &out.boot {
            Some(boot) => boot.boot_time_seconds,
            None => parse_stat_btime(&read_file(&self.roots.proc_file("stat"))?)?,
        };
        if self.proc_dir.is_none() {
            let opened =
                ProcDir::open(self.roots.procfs()).map_err(|source| CollectError::Read {
                    path: self.roots.procfs().to_path_buf(),
                    source,
                })?;
            self.proc_dir = Some(opened);
        }
        let mut pids = std::mem::take(&mut self.pids);
        let listed = match self.proc_dir.as_mut() {
            Some(dir) => dir.list_pids(&mut pids),
            None => Ok(()),
        };
        if let Err(source) = listed {
            self.proc_dir = None;
            self.pids = pids;
            return Err(CollectError::Read {
                path: self.roots.procfs().to_path_buf(),
                source,
            });
        }
        self.scan += 1;
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        let mut unreadable = 0u64;
        let mut first_error = None;
        for &pid in &pids {
            let opened = match self.proc_dir.as_ref() {
                Some(dir) => dir.open_pid(pid),
                None => break,
            };
            let result = opened
                .map_err(ProcessError::from)
                .and_then(|dir| self.read_process(&dir));
            match result {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(ProcessError::Read(PidReadError::Vanished)) => self.vanished += 1,
                Err(e) => {
                    unreadable += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        self.pids = pids;
        let scan = self.scan;
        let mut departed: HashMap<u32, Arc<str>> = HashMap::new();
        self.instances.retain(|&pid, c| {
            let alive = c.seen_in_scan == scan;
            if !alive {
                departed.insert(pid, c.comm.clone());
            }
            alive
        });
        if let Some(e) = first_error {
            if !self.unreadable_logged {
                tracing::warn!(processes = unreadable, error = %e,
                    "some processes could not be read and are left out (grant CAP_SYS_PTRACE or run as root if this is a permission error)");
                self.unreadable_logged = true;
            }
        }

        let vanished = observe_top_level(&rows, &mut self.table, now_secs);
        self.settle_exits(vanished, &departed, now_secs);
        let sample = summarise(&rows, &self.table, btime, &self.settings);
        self.links
            .live
            .publish(rows.iter().map(|r| (r.pid, r.start_ticks, r.group.clone())));
        self.memcgs
            .retain(|_, interned| Arc::strong_count(interned) > 1);
        // Write the state when counts or instances changed, and at least every
        // STATE_REFRESH so the last-seen times on disk stay close to the truth.
        let due = self
            .last_persisted
            .is_none_or(|at| now_secs - at >= STATE_REFRESH_SECS);
        if self.table.take_changed() || due {
            let groups = self.table.to_state();
            self.links.state.update(|s| s.groups = groups);
            self.last_persisted = Some(now_secs);
        }
        self.rows = rows;
        out.processes = Some(ProcessesSample {
            vanished_total: self.vanished,
            ..sample
        });
        Ok(())
    }
}

/// Feeds the top-level instances of one scan (those whose parent is not in their group)
/// to the group table; returns the ones gone since the last scan.
fn observe_top_level(rows: &[Row], table: &mut GroupTable, now_secs: f64) -> Vec<VanishedInstance> {
    let by_pid: HashMap<u32, &Arc<str>> = rows.iter().map(|r| (r.pid, &r.group)).collect();
    let mut top_level: HashMap<Arc<str>, Vec<InstanceKey>> = HashMap::new();
    for row in rows {
        if by_pid.get(&row.ppid).is_some_and(|&g| *g == row.group) {
            continue;
        }
        top_level
            .entry(row.group.clone())
            .or_default()
            .push(InstanceKey {
                pid: row.pid,
                start_ticks: row.start_ticks,
            });
    }
    table.observe(now_secs, &top_level)
}

/// Turns the rows of one scan and the group table into the top-K, group rows and group
/// cgroups.
fn summarise(
    rows: &[Row],
    table: &GroupTable,
    btime: u64,
    settings: &ProcessesSettings,
) -> ProcessesSample {
    #[derive(Default)]
    struct Aggregate {
        processes: u64,
        resident_pages: u64,
        score_max: Option<i32>,
        adj_min: Option<i32>,
        oldest_ticks: Option<u64>,
        memcgs: HashMap<Arc<str>, u32>,
    }
    let mut aggregates: HashMap<Arc<str>, Aggregate> = HashMap::new();
    for row in rows {
        let agg = aggregates.entry(row.group.clone()).or_default();
        agg.processes += 1;
        agg.resident_pages += row.resident_pages;
        agg.score_max = agg.score_max.max(Some(row.oom_score));
        agg.adj_min = Some(
            agg.adj_min
                .map_or(row.oom_score_adj, |m| m.min(row.oom_score_adj)),
        );
        agg.oldest_ticks = Some(
            agg.oldest_ticks
                .map_or(row.start_ticks, |m| m.min(row.start_ticks)),
        );
        if let Some(memcg) = &row.memcg {
            *agg.memcgs.entry(memcg.clone()).or_default() += 1;
        }
    }

    let ticks = settings.table.clock_ticks.max(1) as f64;
    // How many groups have processes in each memory cgroup.
    let mut groups_per_memcg: HashMap<&Arc<str>, u32> = HashMap::new();
    for agg in aggregates.values() {
        for memcg in agg.memcgs.keys() {
            *groups_per_memcg.entry(memcg).or_default() += 1;
        }
    }
    let mut group_cgroups = Vec::new();
    let groups = table
        .groups()
        .map(|view| {
            let name = view.name;
            let agg = aggregates.get(name);
            // The memory cgroup most of the group lives in; ties go to the smaller path.
            let home = agg.and_then(|agg| {
                agg.memcgs
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            });
            if let (Some(agg), Some((cgroup, _))) = (agg, home) {
                group_cgroups.push(GroupCgroup {
                    group: name.clone(),
                    cgroup: (*cgroup).clone(),
                    owned: agg.memcgs.len() == 1 && groups_per_memcg.get(cgroup) == Some(&1),
                });
            }
            let empty = Aggregate::default();
            let agg = agg.unwrap_or(&empty);
            GroupRow {
                name: name.clone(),
                processes: agg.processes,
                resident_bytes: agg.resident_pages * settings.page_size,
                oom_score_max: agg.score_max,
                oom_score_adj_min: agg.adj_min,
                start_time_seconds: agg.oldest_ticks.map(|t| btime as f64 + t as f64 / ticks),
                restarts: view.restarts,
                configured: view.configured,
                exits: view.exits.iter().map(|(r, n)| (*r, *n)).collect(),
            }
        })
        .collect();

    ProcessesSample {
        top: top_victims(rows, settings.top_k, settings.page_size),
        groups,
        vanished_total: 0,
        group_cgroups,
    }
}

/// The `k` processes with the highest oom_score; ties go to the larger RSS, then the
/// lower pid, so the selection is stable between scans.
fn top_victims(rows: &[Row], k: usize, page_size: u64) -> Vec<ProcessRow> {
    let rank = |a: &&Row, b: &&Row| {
        b.oom_score
            .cmp(&a.oom_score)
            .then(b.resident_pages.cmp(&a.resident_pages))
            .then(a.pid.cmp(&b.pid))
    };
    let mut order: Vec<&Row> = rows.iter().collect();
    if k == 0 {
        return Vec::new();
    }
    if order.len() > k {
        order.select_nth_unstable_by(k - 1, rank);
        order.truncate(k);
    }
    order.sort_unstable_by(rank);
    order
        .into_iter()
        .map(|r| ProcessRow {
            pid: r.pid,
            comm: r.comm.clone(),
            group: r.group.clone(),
            oom_score: r.oom_score,
            oom_score_adj: r.oom_score_adj,
            resident_bytes: r.resident_pages * page_size,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, score: i32, pages: u64) -> Row {
        Row {
            pid,
            ppid: 1,
            start_ticks: 100,
            comm: Arc::from("x"),
            group: Arc::from("g"),
            memcg: None,
            resident_pages: pages,
            oom_score: score,
            oom_score_adj: 0,
        }
    }

    #[test]
    fn top_k_is_exact_and_ties_are_stable() {
        let rows = vec![
            row(5, 10, 1),
            row(3, 900, 1),
            row(4, 10, 7),
            row(2, 10, 7),
            row(9, 0, 0),
        ];
        let top = top_victims(&rows, 3, 4096);
        let pids: Vec<_> = top.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [3, 2, 4]);
        assert_eq!(top_victims(&rows, 10, 4096).len(), 5);
        assert!(top_victims(&rows, 0, 4096).is_empty());
    }
}
