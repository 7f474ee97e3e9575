//! The optimized raw /proc reader the benchmarks compare against: the fastest way to read
//! a few files of every process, which a collector can approach but not beat. /proc is
//! listed with getdents64 into a reused buffer (no entry is allocated), each file is
//! opened relative to a /proc descriptor by a path built on the stack, read into a reused
//! buffer, and closed: no heap allocation in a pass. Not a collector: it keeps nothing.

use std::ffi::CStr;
use std::mem::MaybeUninit;

use rustix::fd::OwnedFd;
use rustix::fs::{openat, seek, Mode, OFlags, RawDir, SeekFrom, CWD};

/// One file of every pid, read whole.
pub struct RawProcReader {
    proc_dir: OwnedFd,
    entries: Vec<MaybeUninit<u8>>,
    data: Vec<u8>,
}

impl RawProcReader {
    pub fn new() -> std::io::Result<Self> {
        let proc_dir = openat(
            CWD,
            c"/proc",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            proc_dir,
            entries: vec![MaybeUninit::uninit(); 64 * 1024],
            data: vec![0; 64 * 1024],
        })
    }

    /// Reads `files` (names like `c"statm"`) of every pid; returns the pids whose files
    /// were all read (one that exits mid-pass is skipped) and the bytes read.
    pub fn pass(&mut self, files: &[&CStr]) -> std::io::Result<(u64, usize)> {
        seek(&self.proc_dir, SeekFrom::Start(0))?;
        let mut dir = RawDir::new(&self.proc_dir, &mut self.entries);
        let (mut pids, mut bytes) = (0, 0);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
                continue;
            }
            let mut all = true;
            for file in files {
                match read_one(&self.proc_dir, name, file, &mut self.data) {
                    Some(n) => bytes += n,
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            pids += u64::from(all);
        }
        Ok((pids, bytes))
    }
}

/// Opens `<pid>/<file>` under /proc (the path built in a stack buffer), reads it whole
/// into `data`, closes it; None when it is gone.
fn read_one(proc_dir: &OwnedFd, pid: &[u8], file: &CStr, data: &mut [u8]) -> Option<usize> {
    let mut path = [0u8; 64];
    let file = file.to_bytes_with_nul();
    let len = pid.len() + 1 + file.len();
    if len > path.len() {
        return None;
    }
    path[..pid.len()].copy_from_slice(pid);
    path[pid.len()] = b'/';
    path[pid.len() + 1..len].copy_from_slice(file);
    let path = CStr::from_bytes_with_nul(&path[..len]).ok()?;
    let fd = openat(
        proc_dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut total = 0;
    loop {
        match rustix::io::read(&fd, &mut data[..]) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(_) => return None,
        }
    }
}
