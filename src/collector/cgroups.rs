//! The `cgroups` collector: for each group that lives in a memory cgroup, the tightest
//! limit over that cgroup and its ancestors and the usage of the cgroup that sets it (OOM
//! risk is relative to that limit, not to host RAM), and, where the group alone owns its
//! cgroup, the OOM kills the kernel counted there and the cgroup's early signals: its
//! event counters (throttled at memory.high, hit memory.max, OOM), memory.high, swap and
//! pressure. Counters are carried across the cgroup's re-creations by the ledger in the
//! state file (`groups::memcg`): what was carried and OOM counts are written before they
//! are served, throttling and pressure readings with the next write (the heartbeat's). Runs after `processes`,
//! whose group-to-cgroup map it reads.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cgroupfs::{
    tightest_limit, CgroupReadError, MemcgSample, MemcgSignals, MemoryHierarchy,
};
use crate::collector::source::{CollectError, Collector};
use crate::groups::memcg::{Change, MemcgLedger, Reading};
use crate::roots::Roots;
use crate::snapshot::{GroupMemcgSignals, GroupMemory, Snapshot};
use crate::state::StateStore;

/// The ledger's names of the two pressure totals (microseconds).
const PRESSURE_SOME: &str = "pressure_some_us";
const PRESSURE_FULL: &str = "pressure_full_us";

#[derive(Debug)]
pub struct CgroupsCollector {
    roots: Roots,
    hierarchy: Option<MemoryHierarchy>,
    state: Arc<StateStore>,
    ledger: MemcgLedger,
}

impl CgroupsCollector {
    pub fn new(roots: Roots, state: Arc<StateStore>) -> Self {
        Self {
            hierarchy: MemoryHierarchy::detect(&roots),
            ledger: state.read(|s| s.memcg.clone()),
            roots,
            state,
        }
    }
}

impl Collector for CgroupsCollector {
    fn name(&self) -> &'static str {
        "cgroups"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let Some(hierarchy) = &self.hierarchy else {
            return Err(CollectError::Unavailable(format!(
                "no memory cgroup hierarchy under {} (neither a v1 memory controller nor a v2 hierarchy with memory enabled)",
                self.roots.cgroup_root().display()
            )));
        };
        let Some(processes) = &out.processes else {
            return Err(CollectError::Unavailable(
                "the processes collector is disabled or failed; groups are unknown".into(),
            ));
        };
        let mut cache: HashMap<&str, Option<MemcgSample>> = HashMap::new();
        let mut read = |cgroup| -> Option<MemcgSample> {
            *cache
                .entry(cgroup)
                .or_insert_with(|| match hierarchy.read(cgroup) {
                    Ok(sample) => Some(sample),
                    // The cgroup went away with its service between the scan and now.
                    Err(CgroupReadError::Missing { .. }) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "memory cgroup unreadable");
                        None
                    }
                })
        };
        let now = crate::clock::unix_now();
        let mut rows = Vec::new();
        for home in &processes.group_cgroups {
            let Some(own) = read(&home.cgroup) else {
                continue;
            };
            let tightest = tightest_limit(&home.cgroup, &mut read);
            // A cgroup shared with other groups and without a limit says nothing about
            // this group: its usage and kills are the other groups' too.
            if tightest.is_none() && !home.owned {
                continue;
            }
            // Early signals only from a cgroup the group owns: shared, they would be
            // counted for each group in it.
            let signals = home
                .owned
                .then(|| match hierarchy.signals(&home.cgroup) {
                    Ok(signals) => Some(signals),
                    Err(CgroupReadError::Missing { .. }) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "memory cgroup signals unreadable");
                        None
                    }
                })
                .flatten()
                .map(|s| carry(&mut self.ledger, &home.group, &home.cgroup, s, now));
            rows.push(GroupMemory {
                group: home.group.clone(),
                limit_bytes: tightest.map(|(limit, _)| limit),
                usage_bytes: tightest.map_or(own.usage_bytes, |(_, usage)| usage),
                oom_kills: own.oom_kills.filter(|_| home.owned),
                signals,
            });
        }
        out.group_memory = rows;
        // What was carried, and OOM counts, are durable before served: a restart of the
        // exporter goes on from them. Readings that only moved (memory.high throttling and
        // pressure move at every scrape) go with the state file's next write, at the
        // latest the heartbeat's.
        match self.ledger.take_changed() {
            Change::Urgent => {
                let ledger = self.ledger.clone();
                self.state.update(|s| s.memcg = ledger);
            }
            Change::Readings => {
                let ledger = self.ledger.clone();
                self.state.stage(|s| s.memcg = ledger);
            }
            Change::None => {}
        }
        Ok(())
    }
}

/// Adds a reading of the group's own cgroup to the ledger: the counters become the
/// group's totals across the cgroup's re-creations.
fn carry(
    ledger: &mut MemcgLedger,
    group: &str,
    cgroup: &str,
    s: MemcgSignals,
    now: f64,
) -> GroupMemcgSignals {
    let mut counters: Vec<(&str, u64)> = s.events.iter().map(|(e, n)| (e.label(), *n)).collect();
    if let Some([some, full]) = s.pressure_us {
        counters.push((PRESSURE_SOME, some));
        counters.push((PRESSURE_FULL, full));
    }
    let reading = Reading {
        cgroup,
        inode: s.inode,
        counters: &counters,
    };
    let totals = ledger.observe(group, reading, now);
    let events = s
        .events
        .iter()
        .zip(&totals)
        .map(|((event, _), total)| (*event, *total))
        .collect();
    let n = s.events.len();
    let pressure_seconds = s
        .pressure_us
        .and(totals.get(n).zip(totals.get(n + 1)))
        .map(|(some, full)| [*some as f64 / 1e6, *full as f64 / 1e6]);
    GroupMemcgSignals {
        events,
        high_bytes: s.high_bytes,
        swap_bytes: s.swap_bytes,
        pressure_seconds,
        pressure_avg10: s.pressure_avg10,
        under_oom: s.under_oom,
    }
}
