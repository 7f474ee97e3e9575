//! The `meminfo` collector: host memory total and available, swap total and free.

use crate::collector::source::{read_file, CollectError, Collector};
use crate::procfs::host::parse_meminfo;
use crate::roots::Roots;
use crate::snapshot::Snapshot;

#[derive(Debug)]
pub struct MeminfoCollector {
    roots: Roots,
}

impl MeminfoCollector {
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for MeminfoCollector {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let bytes = read_file(&self.roots.proc_file("meminfo"))?;
        out.memory = Some(parse_meminfo(&bytes)?);
        Ok(())
    }
}
