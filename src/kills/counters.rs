//! The kernel's own counts of OOM kills, read when the kernel log names a kill: the host's
//! (`/proc/vmstat` `oom_kill`, 4.13+) and the victim's memory cgroup's. Thin reads through
//! the roots; must not decide anything (`verify` does).

use crate::cgroupfs::{MemcgKillCount, MemoryHierarchy};
use crate::procfs::host::parse_vmstat_oom_kill;
use crate::roots::Roots;

#[derive(Debug, Clone)]
pub struct KernelCounters {
    roots: Roots,
    hierarchy: Option<MemoryHierarchy>,
}

impl KernelCounters {
    pub fn new(roots: Roots) -> Self {
        Self {
            hierarchy: MemoryHierarchy::detect(&roots),
            roots,
        }
    }

    /// `/proc/vmstat` `oom_kill` now; None on kernels before 4.13 or when unreadable.
    pub fn vmstat_oom_kills(&self) -> Option<u64> {
        let bytes = std::fs::read(self.roots.proc_file("vmstat")).ok()?;
        parse_vmstat_oom_kill(&bytes).ok()
    }

    /// The memory cgroup's own kill count now; None when it cannot be known.
    pub fn memcg_oom_kills(&self, cgroup: &str) -> Option<MemcgKillCount> {
        self.hierarchy.as_ref()?.oom_kill_count(cgroup)
    }
}
