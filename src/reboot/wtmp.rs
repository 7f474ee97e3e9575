//! wtmp (`/var/log/wtmp` under `--path.rootfs`): the login accounting file where init
//! writes a `reboot` record at each boot and a `shutdown` record at each clean shutdown
//! (`last -x`). A boot with no shutdown record before the next boot ended uncleanly.
//! Pure parser of the glibc `struct utmp` layout (384 bytes a record on Linux) and the
//! verdict over the records; no I/O. wtmpdb, the SQLite file newer distributions moved
//! to, is read by `super::wtmpdb` into the same records.

/// glibc's `sizeof(struct utmp)` on Linux (x86_64, aarch64 and the other 64-bit ABIs, with
/// 32-bit time fields kept for compatibility).
pub const RECORD_SIZE: usize = 384;
const RUN_LVL: i16 = 1;
const BOOT_TIME: i16 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WtmpKind {
    Boot,
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WtmpRecord {
    pub kind: WtmpKind,
    /// Seconds since the epoch.
    pub time: f64,
}

/// The boot and shutdown records of a wtmp file, in file order; other records (logins)
/// and a truncated last record are skipped.
pub fn parse(bytes: &[u8]) -> Vec<WtmpRecord> {
    bytes
        .chunks_exact(RECORD_SIZE)
        .filter_map(|record| {
            let kind = i16::from_ne_bytes([record[0], record[1]]);
            let user = &record[44..76];
            let user = &user[..user.iter().position(|&b| b == 0).unwrap_or(user.len())];
            let kind = match (kind, user) {
                (BOOT_TIME, _) => WtmpKind::Boot,
                (RUN_LVL, b"shutdown") => WtmpKind::Shutdown,
                _ => return None,
            };
            let seconds = i32::from_ne_bytes([record[340], record[341], record[342], record[343]]);
            let micros = i32::from_ne_bytes([record[344], record[345], record[346], record[347]]);
            Some(WtmpRecord {
                kind,
                time: f64::from(seconds) + f64::from(micros) / 1e6,
            })
        })
        .collect()
}

/// What wtmp says of the boot that ended before the boot that started at `current_boot`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WtmpVerdict {
    /// A shutdown record follows the previous boot's record.
    CleanShutdown { at: f64 },
    /// The previous boot's record is followed by the next boot without a shutdown.
    NoShutdown { previous_boot: f64 },
}

/// Finds the previous boot's record (the last boot record from before `current_boot`; the
/// current boot's own record carries its start time or later) and says whether a shutdown
/// record follows it. None when wtmp holds no record of that boot.
pub fn previous_boot_verdict(records: &[WtmpRecord], current_boot: f64) -> Option<WtmpVerdict> {
    let before: Vec<&WtmpRecord> = records
        .iter()
        .filter(|r| r.time < current_boot - 1.0)
        .collect();
    let previous_boot = before.iter().rposition(|r| r.kind == WtmpKind::Boot)?;
    let boot_time = before[previous_boot].time;
    let shutdown = before[previous_boot + 1..]
        .iter()
        .rev()
        .find(|r| r.kind == WtmpKind::Shutdown)
        .map(|r| r.time);
    Some(match shutdown {
        Some(at) => WtmpVerdict::CleanShutdown { at },
        None => WtmpVerdict::NoShutdown {
            previous_boot: boot_time,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: i16, user: &str, time: i32) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_SIZE];
        r[0..2].copy_from_slice(&kind.to_ne_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[340..344].copy_from_slice(&time.to_ne_bytes());
        r
    }

    #[test]
    fn boots_shutdowns_and_logins() {
        let mut file = Vec::new();
        file.extend(record(BOOT_TIME, "reboot", 1000));
        file.extend(record(7, "alice", 1100));
        file.extend(record(RUN_LVL, "runlevel", 1001));
        file.extend(record(RUN_LVL, "shutdown", 5000));
        file.extend(record(BOOT_TIME, "reboot", 5100));
        file.extend(&[1, 2, 3]); // a torn last write
        let records = parse(&file);
        assert_eq!(records.len(), 3);
        assert_eq!(
            previous_boot_verdict(&records, 5090.0),
            Some(WtmpVerdict::CleanShutdown { at: 5000.0 })
        );
        let mut crashed = file.clone();
        crashed.truncate(RECORD_SIZE * 5);
        crashed.extend(record(BOOT_TIME, "reboot", 9000));
        let records = parse(&crashed);
        assert_eq!(
            previous_boot_verdict(&records, 8990.0),
            Some(WtmpVerdict::NoShutdown {
                previous_boot: 5100.0
            })
        );
        assert_eq!(previous_boot_verdict(&[], 10.0), None);
    }
}
