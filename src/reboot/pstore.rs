//! pstore (`<sysfs>/fs/pstore`, and systemd-pstore's archive under `--path.rootfs`):
//! records the kernel saved across a reboot, such as the
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
    } else if text.contains("Oops") || text.contains("BUG: ") {
        Some(CrashKind::Oops)
    } else {
        None
    }
}

/// Lists the dmesg records of pstore directories: `<sysfs>/fs/pstore` as the kernel
/// mounts it, and systemd-pstore's archive `/var/lib/systemd/pstore`, where early boot
/// moves the records (as files, or as `<record id>/dmesg.txt`), so a panic is still found
/// when systemd got there first. Oldest first; unreadable entries are skipped.
pub fn read_records(dirs: &[&Path]) -> Vec<PstoreRecord> {
    let mut records = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                // systemd-pstore: one directory per reassembled record.
                let inner = path.join("dmesg.txt");
                records.extend(record(&inner, format!("{name}/dmesg.txt")));
            } else if name.starts_with("dmesg") {
                records.extend(record(&path, name));
            }
        }
    }
    records.sort_by(|a, b| a.written_at.total_cmp(&b.written_at));
    records
}

fn record(path: &Path, name: String) -> Option<PstoreRecord> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let written_at = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    // A record is at most a few hundred KiB; the panic line can be anywhere in it, so
    // it is read whole, bounded.
    let mut content = Vec::new();
    file.take(4 * 1024 * 1024).read_to_end(&mut content).ok()?;
    Some(PstoreRecord {
        name,
        written_at,
        crash: classify(&content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_from_pstore_and_from_the_systemd_archive() {
        let sysfs = tempfile::tempdir().expect("temp");
        let archive = tempfile::tempdir().expect("temp");
        let write = |path: &Path, text: &str, at: u64| {
            std::fs::write(path, text).expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(path)
                .expect("open");
            file.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(at))
                .expect("mtime");
        };
        write(
            &sysfs.path().join("dmesg-ramoops-0"),
            "Oops: 0002 [#1] SMP\n",
            300,
        );
        write(
            &sysfs.path().join("console-ramoops-0"),
            "Kernel panic\n",
            100,
        );
        let reassembled = archive.path().join("1700000000000");
        std::fs::create_dir(&reassembled).expect("dir");
        write(
            &reassembled.join("dmesg.txt"),
            "<0>Kernel panic - not syncing: Out of memory and no killable processes\n",
            200,
        );
        write(
            &archive.path().join("dmesg-efi-170000000001"),
            "nothing\n",
            100,
        );
        let records = read_records(&[sysfs.path(), archive.path(), Path::new("/nonexistent")]);
        let found: Vec<(&str, f64, Option<CrashKind>)> = records
            .iter()
            .map(|r| (r.name.as_str(), r.written_at, r.crash))
            .collect();
        assert_eq!(
            found,
            [
                ("dmesg-efi-170000000001", 100.0, None),
                ("1700000000000/dmesg.txt", 200.0, Some(CrashKind::Panic)),
                ("dmesg-ramoops-0", 300.0, Some(CrashKind::Oops)),
            ]
        );
    }

    #[test]
    fn panics_and_oopses() {
        let panic = b"Panic#1 Part1\n<0>[ 12.3] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(classify(panic), Some(CrashKind::Panic));
        let oops = b"Oops#1 Part1\n<4>[ 5.1] BUG: kernel NULL pointer dereference\n";
        assert_eq!(classify(oops), Some(CrashKind::Oops));
        assert_eq!(classify(b"Dump#1 Part1\nnothing bad\n"), None);
    }
}
