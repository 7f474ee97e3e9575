//! pstore (`<sysfs>/fs/pstore`): records the kernel saved across a reboot, such as the
//! log of a panic or an oops (`dmesg-ramoops-N`, `dmesg-efi-…`, `dmesg-erst-…`). A record
//! whose time falls in the previous boot says how that boot ended. `classify` is pure;
//! `read_records` lists the directory.

use std::path::Path;
use std::time::UNIX_EPOCH;

/// How a pstore record says the kernel died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    Panic,
    Oops,
}

impl CrashKind {
    /// The `cause` label of `oomwatch_last_reboot_unexpected`.
    pub fn cause(self) -> &'static str {
        match self {
            Self::Panic => "kernel_panic",
            Self::Oops => "oops",
        }
    }
}

/// One pstore record: its file name, when it was written, what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct PstoreRecord {
    pub name: String,
    /// Seconds since the epoch (the backend sets the file time to the record's time).
    pub written_at: f64,
    pub crash: Option<CrashKind>,
}

/// What a dmesg pstore record says: a panic wins over an oops (a panic often follows one).
pub fn classify(content: &[u8]) -> Option<CrashKind> {
    let text = String::from_utf8_lossy(content);
    if text.contains("Kernel panic - not syncing") || text.contains("Panic#") {
        Some(CrashKind::Panic)
    } else if text.contains("Oops") || text.contains("BUG: ") || text.contains("Oops#") {
        Some(CrashKind::Oops)
    } else {
        None
    }
}

/// Reads the dmesg records in the pstore directory; a missing directory is no record.
pub fn read_records(dir: &Path) -> Vec<PstoreRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records: Vec<PstoreRecord> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("dmesg-") {
                return None;
            }
            let written_at = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()?
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_secs_f64();
            // A record is at most a few hundred KiB; read only its head and tail would
            // miss the panic line, so read it whole, bounded.
            let content = std::fs::read(entry.path()).ok()?;
            let content = &content[..content.len().min(4 * 1024 * 1024)];
            Some(PstoreRecord {
                name,
                written_at,
                crash: classify(content),
            })
        })
        .collect();
    records.sort_by(|a, b| a.written_at.total_cmp(&b.written_at));
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_oopses() {
        let panic = b"Panic#1 Part1\n<0>[ 12.3] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(classify(panic), Some(CrashKind::Panic));
        let oops = b"Oops#1 Part1\n<4>[ 5.1] BUG: kernel NULL pointer dereference\n";
        assert_eq!(classify(oops), Some(CrashKind::Oops));
        assert_eq!(classify(b"Dump#1 Part1\nnothing bad\n"), None);
    }
}
