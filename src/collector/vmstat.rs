//! The `vmstat` collector: the host's OOM kill count since boot (`/proc/vmstat` oom_kill),
//! the ground truth that the kernel-log counts are checked against.

use crate::collector::source::{read_file, CollectError, Collector};
use crate::procfs::host::parse_vmstat_oom_kill;
use crate::roots::Roots;
use crate::snapshot::Snapshot;

#[derive(Debug)]
pub struct VmstatCollector {
    roots: Roots,
}

impl VmstatCollector {
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for VmstatCollector {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let bytes = read_file(&self.roots.proc_file("vmstat"))?;
        out.vmstat_oom_kills = Some(parse_vmstat_oom_kill(&bytes)?);
        Ok(())
    }
}
