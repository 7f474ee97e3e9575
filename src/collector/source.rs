//! What every collector is: a `Collector` reads its source and writes its part of the
//! snapshot, or fails with a `CollectError` that names the file. Owns that interface and
//! the one whole-file read the small collectors share; must not know any collector.

use std::path::{Path, PathBuf};

use crate::procfs::ParseError;
use crate::snapshot::Snapshot;

/// One source of metrics.
pub trait Collector: Send {
    fn name(&self) -> &'static str;
    /// Reads the source and writes this collector's part of `out`.
    fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError>;
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Unavailable(String),
}

/// Reads a whole procfs or sysfs file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CollectError> {
    std::fs::read(path).map_err(|source| CollectError::Read {
        path: path.to_path_buf(),
        source,
    })
}
