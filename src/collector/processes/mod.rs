//! The `processes` collector: one pass over `/proc/<pid>` that yields the top-K next OOM
//! victims, the per-group aggregates, and the restarts counted by the group table.
//!
//! `instances` reads each process, cheaply for the instances it already knows (a pinned
//! `oom_score_adj` and statm; stat and oom_score only when they can have changed), and
//! caches what is immutable per instance `(pid, start ticks)`: its cgroup, and so its group
//! and memory cgroup. `summary` turns the rows into the sample. A process that exits
//! mid-read is skipped and counted, never an error.
//!
//! Each scan also settles the exits since the last one: the top-level exits the
//! process-events listener queued and the top-level instances this scan found gone go
//! through the exit accounting, and each settled exit is counted on its group and written
//! to the event log, as is each restart the group table counted.

mod instances;
mod settings;
mod summary;

pub use instances::ReadCounts;
pub use settings::ProcessesSettings;

use std::sync::Arc;

use crate::cgroupfs::MemoryHierarchy;
use crate::collector::source::{read_file, CollectError, Collector};
use crate::events::{Event, EventKind, EventLog};
use crate::exits::accounting::{ExitAccounting, Vanished};
use crate::exits::ExitsShared;
use crate::groups::live::LivePids;
use crate::groups::table::{InstanceEnd, VanishedInstance};
use crate::groups::GroupTable;
use crate::kills::shared::KmsgShared;
use crate::procfs::host::{parse_stat_btime, parse_uptime};
use crate::procfs::reader::{PidReadError, ProcDir};
use crate::roots::Roots;
use crate::snapshot::{ProcessesSample, Snapshot};
use crate::state::StateStore;
use instances::{Classifier, InstanceReader, ProcessError, Row};
use summary::{summarise, TopLevel};

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
    reader: InstanceReader,
    top_level: TopLevel,
    pids: Vec<u32>,
    rows: Vec<Row>,
    vanished: u64,
    unreadable_logged: bool,
    /// The pid and comm of each exit settled by this scan: a restart whose new instance
    /// died before any scan saw it alive is named from its exit.
    ended: Vec<(u32, String)>,
    /// Uptime of the last state write.
    last_persisted: Option<f64>,
}

/// How stale the last-seen times in the state file may grow when nothing else changes.
const STATE_REFRESH_SECS: f64 = 60.0;

impl std::fmt::Debug for ProcessesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessesCollector")
            .field("roots", &self.roots)
            .field("reader", &self.reader)
            .finish()
    }
}

impl ProcessesCollector {
    pub fn new(roots: Roots, settings: ProcessesSettings, links: ProcessesLinks) -> Self {
        let persisted = links.state.snapshot().groups;
        let table = GroupTable::new(settings.table, settings.rules.fixed_groups(), persisted);
        let reader = InstanceReader::new(settings.max_pinned);
        Self {
            hierarchy: MemoryHierarchy::detect(&roots),
            roots,
            settings,
            links,
            table,
            accounting: ExitAccounting::default(),
            proc_dir: None,
            reader,
            top_level: TopLevel::default(),
            pids: Vec::new(),
            rows: Vec::new(),
            vanished: 0,
            unreadable_logged: false,
            ended: Vec::new(),
            last_persisted: None,
        }
    }

    /// How the last scan read its instances, and how many are pinned now.
    pub fn read_counts(&self) -> (ReadCounts, u64) {
        (self.reader.counts(), self.reader.pins())
    }

    /// Settles the exits since the last scan, counts them on their groups and logs them.
    fn settle_exits(&mut self, vanished: Vec<VanishedInstance>, now_secs: f64) {
        let departed = self.reader.departed();
        let listening = self.links.exits.as_ref().is_some_and(|exits| exits.up());
        let ticks = self.settings.table.clock_ticks.max(1) as f64;
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
                start_secs: gone.key.start_ticks as f64 / ticks,
            })
            .collect();
        let mut settled = self
            .accounting
            .settle(records, vanished, &victims, now_secs, listening);
        let table = &self.table;
        self.accounting
            .forget_unwatched(|group, pid| table.watches(group, pid));
        settled.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
        let wall_now = crate::clock::unix_now();
        let mut events = Vec::with_capacity(settled.len());
        self.ended.clear();
        for exit in settled {
            self.ended.push((exit.pid, exit.comm.to_string()));
            // A group no scan has seen (or one forgotten since) is created by an exit only
            // when the exit is abnormal: a unit crash-looping between scrapes counts; a
            // passing command that finished well takes no slot under --groups.max.
            let group = if self.table.contains(&exit.group) {
                exit.group.clone()
            } else if exit
                .reason
                .promotes(exit.started_secs.map(|start| exit.at_secs - start))
            {
                self.table.admit(&exit.group)
            } else {
                continue;
            };
            let end = InstanceEnd {
                pid: exit.pid,
                reason: exit.reason,
                ended_secs: exit.earliest_secs,
                started_secs: exit.started_secs,
            };
            self.table.exit_settled(&group, end, now_secs);
            tracing::debug!(group = %group, pid = exit.pid, comm = %exit.comm,
                reason = exit.reason.label(), status = ?exit.status, "instance ended");
            events.push(Event {
                time: wall_now - (now_secs - exit.at_secs).max(0.0),
                kind: EventKind::exit(&group, exit.pid, &exit.comm, exit.reason, exit.status),
            });
        }
        self.note_starts(now_secs);
        self.table.resolve(now_secs);
        // A failed write stays pending in the log, retried at the next append or flush.
        let _ = self.links.events.append(&events);
        if let Some(exits) = self
            .links
            .exits
            .as_ref()
            .filter(|_| self.table.take_names_changed())
        {
            exits.set_known_groups(self.table.names().cloned().collect());
        }
    }

    /// Hands the listener's starts of top-level instances to the group table.
    fn note_starts(&mut self, now_secs: f64) {
        let Some(exits) = &self.links.exits else {
            return;
        };
        for start in exits.drain_starts() {
            if self.table.contains(&start.group) {
                let at = start.boottime_ns as f64 / 1e9;
                tracing::debug!(group = %start.group, pid = start.pid, at, "instance started");
                self.table
                    .instance_started(&start.group, start.pid, at, now_secs);
            }
        }
    }

    /// Writes the restarts this scan counted to the event log, at the new instance's start.
    fn log_restarts(&mut self, rows: &[Row], btime: u64) {
        let events: Vec<Event> = self
            .table
            .take_restarted()
            .into_iter()
            .map(|restart| {
                let comm = rows
                    .iter()
                    .find(|r| r.pid == restart.pid)
                    .map(|r| r.comm.to_string())
                    .or_else(|| {
                        let ended = self.ended.iter().find(|(pid, _)| *pid == restart.pid);
                        ended.map(|(_, comm)| comm.clone())
                    })
                    .unwrap_or_default();
                tracing::info!(group = %restart.group, pid = restart.pid, comm = %comm,
                    gap_seconds = restart.gap_secs, after = restart.after.label(), "restart");
                Event {
                    time: btime as f64 + restart.start_secs,
                    kind: EventKind::Restart {
                        group: restart.group.to_string(),
                        pid: restart.pid,
                        comm,
                        gap_seconds: Some(restart.gap_secs),
                        after: Some(restart.after),
                    },
                }
            })
            .collect();
        // A failed write stays pending in the log, retried at the next append or flush.
        let _ = self.links.events.append(&events);
    }

    fn read_uptime(&self) -> Result<f64, CollectError> {
        Ok(parse_uptime(&read_file(&self.roots.proc_file("uptime"))?)?)
    }
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
        let pids = self.list_pids()?;
        let total_pages = out.memory.as_ref().map(|m| {
            m.total_bytes.saturating_add(m.swap_total_bytes) / self.settings.page_size.max(1)
        });
        let rows = self.read_rows(&pids, total_pages);
        self.pids = pids;

        let vanished = self.top_level.observe(&rows, &mut self.table, now_secs);
        self.settle_exits(vanished, now_secs);
        self.log_restarts(&rows, btime);
        let sample = summarise(&rows, &self.table, btime, &self.settings);
        self.links
            .live
            .publish(rows.iter().map(|r| (r.pid, r.start_ticks, r.group.clone())));
        self.persist(now_secs);
        self.rows = rows;
        out.processes = Some(ProcessesSample {
            vanished_total: self.vanished,
            pinned: self.reader.pins(),
            exits_inferred: self.accounting.inferred_total(),
            ..sample
        });
        Ok(())
    }
}

impl ProcessesCollector {
    /// The pids in /proc, ascending, in the buffer kept from the last scan.
    fn list_pids(&mut self) -> Result<Vec<u32>, CollectError> {
        let read_error = |source| CollectError::Read {
            path: self.roots.procfs().to_path_buf(),
            source,
        };
        if self.proc_dir.is_none() {
            self.proc_dir = Some(ProcDir::open(self.roots.procfs()).map_err(read_error)?);
        }
        let mut pids = std::mem::take(&mut self.pids);
        let listed = match self.proc_dir.as_mut() {
            Some(dir) => dir.list_pids(&mut pids),
            None => Ok(()),
        };
        // procfs lists pids in ascending order; sorting an already sorted list is one
        // pass, and the rows (in this order) are then searched by pid.
        pids.sort_unstable();
        if let Err(source) = listed {
            self.proc_dir = None;
            self.pids = pids;
            return Err(CollectError::Read {
                path: self.roots.procfs().to_path_buf(),
                source,
            });
        }
        Ok(pids)
    }

    /// Reads every process into a row (the row buffer is kept from the last scan); a
    /// process gone mid-read is counted, one that cannot be read is logged once.
    fn read_rows(&mut self, pids: &[u32], total_pages: Option<u64>) -> Vec<Row> {
        self.reader
            .begin_scan(self.links.exits.as_deref(), total_pages);
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        let mut unreadable = 0u64;
        let mut first_error = None;
        if let Some(dir) = self.proc_dir.as_ref() {
            let mut classifier = Classifier {
                hierarchy: self.hierarchy.as_ref(),
                rules: &self.settings.rules,
                table: &mut self.table,
            };
            for &pid in pids {
                match self.reader.read(dir, pid, &mut classifier) {
                    Ok(Some(row)) => rows.push(row),
                    Ok(None) => {}
                    Err(ProcessError::Read(PidReadError::Vanished)) => self.vanished += 1,
                    Err(e) => {
                        unreadable += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            self.reader.check_parents(dir, &mut rows);
        }
        self.reader.end_scan();
        if let Some(e) = first_error.filter(|_| !self.unreadable_logged) {
            tracing::warn!(processes = unreadable, error = %e,
                "some processes could not be read and are left out (grant CAP_SYS_PTRACE or run as root if this is a permission error)");
            self.unreadable_logged = true;
        }
        rows
    }

    /// Writes the group table when counts or instances changed, and at least every
    /// STATE_REFRESH so the last-seen times on disk stay close to the truth.
    fn persist(&mut self, now_secs: f64) {
        let due = self
            .last_persisted
            .is_none_or(|at| now_secs - at >= STATE_REFRESH_SECS);
        if self.table.take_changed() || due {
            let groups = self.table.to_state();
            self.links.state.update(|s| s.groups = groups);
            self.last_persisted = Some(now_secs);
        }
    }
}
