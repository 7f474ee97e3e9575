//! The `cgroups` collector: for each group that lives in a memory cgroup, the tightest
//! limit over that cgroup and its ancestors and the usage of the cgroup that sets it (OOM
//! risk is relative to that limit, not to host RAM), and, where the group alone owns its
//! cgroup, the OOM kills the kernel counted there. Runs after `processes`, whose
//! group-to-cgroup map it reads.

use std::collections::HashMap;

use crate::cgroupfs::{tightest_limit, CgroupReadError, MemcgSample, MemoryHierarchy};
use crate::collector::source::{CollectError, Collector};
use crate::roots::Roots;
use crate::snapshot::{GroupMemory, Snapshot};

#[derive(Debug)]
pub struct CgroupsCollector {
    roots: Roots,
    hierarchy: Option<MemoryHierarchy>,
}

impl CgroupsCollector {
    pub fn new(roots: Roots) -> Self {
        Self {
            hierarchy: MemoryHierarchy::detect(&roots),
            roots,
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
            rows.push(GroupMemory {
                group: home.group.clone(),
                limit_bytes: tightest.map(|(limit, _)| limit),
                usage_bytes: tightest.map_or(own.usage_bytes, |(_, usage)| usage),
                oom_kills: own.oom_kills.filter(|_| home.owned),
            });
        }
        out.group_memory = rows;
        Ok(())
    }
}
