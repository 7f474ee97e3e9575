//! The `pressure` collector: memory PSI totals, the early warning before the OOM killer
//! runs. Kernels without PSI (before 4.20, or booted with psi=0) have no
//! `/proc/pressure/memory`: the series are then absent and the collector reports failure.

use crate::collector::source::{read_file, CollectError, Collector};
use crate::procfs::host::parse_memory_pressure;
use crate::roots::Roots;
use crate::snapshot::Snapshot;

#[derive(Debug)]
pub struct PressureCollector {
    roots: Roots,
}

impl PressureCollector {
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
        let path = self.roots.proc_file("pressure/memory");
        let bytes = read_file(&path).map_err(|e| match e {
            CollectError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                CollectError::Unavailable(format!(
                    "{} does not exist: the kernel has no PSI (needs 4.20+ and CONFIG_PSI, not psi=0)",
                    path.display()
                ))
            }
            other => other,
        })?;
        out.pressure = Some(parse_memory_pressure(&bytes)?);
        Ok(())
    }
}
