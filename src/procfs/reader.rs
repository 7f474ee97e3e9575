//! The thin, race-safe reader of `/proc/<pid>/*` files.
//!
//! `ProcDir` keeps procfs open and lists pids; `PidDir` pins one process with an `O_PATH`
//! directory descriptor, so every file read through it belongs to the same process even
//! if its pid is reused meanwhile: a dead process reads as `Vanished`, never as another
//! program's data. Files are read into one caller-owned buffer, reused across processes.
//! No parsing happens here.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, Mode, OFlags, RawDir, CWD};
use rustix::io::Errno;

/// The largest per-process file oomwatch reads; longer content is cut at this size.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Why a per-process file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PidReadError {
    /// The process exited (ENOENT, ESRCH): skipped and counted, not an error.
    #[error("the process exited while it was read")]
    Vanished,
    /// procfs refused the read (hidepid, or another user's file without the capability).
    #[error("permission denied reading {path}")]
    PermissionDenied { path: String },
    #[error("reading {path}: {source}")]
    Io { path: String, source: Errno },
}

fn classify(errno: Errno, path: impl FnOnce() -> String) -> PidReadError {
    match errno {
        Errno::NOENT | Errno::SRCH => PidReadError::Vanished,
        Errno::ACCESS | Errno::PERM => PidReadError::PermissionDenied { path: path() },
        source => PidReadError::Io {
            path: path(),
            source,
        },
    }
}

/// Bytes of directory entries one `getdents64` fills: about 1,300 pids.
const LISTING_BUFFER: usize = 32 * 1024;

/// An open procfs root that lists the pids in it.
pub struct ProcDir {
    root: PathBuf,
    fd: OwnedFd,
    /// A second descriptor on the root, read with `getdents64` into `listing_buf`, so a
    /// listing allocates nothing (the `Dir` iterator makes a `CString` per entry).
    listing: OwnedFd,
    listing_buf: Vec<MaybeUninit<u8>>,
}

impl std::fmt::Debug for ProcDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcDir").field("root", &self.root).finish()
    }
}

impl ProcDir {
    /// Opens procfs at `root` (`--path.procfs`).
    pub fn open(root: &Path) -> Result<Self, std::io::Error> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = openat(CWD, root, flags, Mode::empty())?;
        let listing = openat(&fd, ".", flags, Mode::empty())?;
        Ok(Self {
            root: root.to_path_buf(),
            fd,
            listing,
            listing_buf: vec![MaybeUninit::uninit(); LISTING_BUFFER],
        })
    }

    /// Lists the pids now in procfs into `out` (cleared first), in directory order.
    pub fn list_pids(&mut self, out: &mut Vec<u32>) -> Result<(), std::io::Error> {
        out.clear();
        rustix::fs::seek(&self.listing, rustix::fs::SeekFrom::Start(0))?;
        let mut entries = RawDir::new(&self.listing, &mut self.listing_buf);
        while let Some(entry) = entries.next() {
            if let Some(pid) = pid_from_name(entry?.file_name()) {
                out.push(pid);
            }
        }
        Ok(())
    }

    /// Pins the process `pid`; reads through the result see only that process.
    pub fn open_pid(&self, pid: u32) -> Result<PidDir, PidReadError> {
        let name = DecimalName::new(pid);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match openat(&self.fd, name.as_str(), flags, Mode::empty()) {
            Ok(fd) => Ok(PidDir { pid, fd }),
            Err(errno) => Err(classify(errno, || {
                format!("{}/{}", self.root.display(), name.as_str())
            })),
        }
    }
}

impl ProcDir {
    /// Reads the small file `<pid>/<name>` (one that fits a page: stat, statm, oom_score)
    /// by its path under procfs, without pinning the process first. The result may belong
    /// to a new process that reused the pid: callers confirm the instance afterwards
    /// through a `Pin` (see `Pin::read`).
    pub fn read_pid_file<'b>(
        &self,
        pid: u32,
        name: &str,
        buf: &'b mut ReadBuf,
    ) -> Result<&'b [u8], PidReadError> {
        let mut path = PidFilePath::default();
        let path = path.of(pid, name);
        let described = || format!("{}/{path}", self.root.display());
        let fd = openat(
            &self.fd,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| classify(errno, described))?;
        buf.fill_small(&fd)
            .map_err(|errno| classify(errno, described))
    }
}

/// `<pid>/<name>` spelled into a stack buffer, so the hot path does not allocate.
struct PidFilePath {
    bytes: [u8; 40],
}

impl Default for PidFilePath {
    fn default() -> Self {
        Self { bytes: [0; 40] }
    }
}

impl PidFilePath {
    /// The path; a name too long for the buffer is cut (no procfs file name is).
    fn of(&mut self, pid: u32, name: &str) -> &str {
        let digits = DecimalName::new(pid);
        let mut len = 0;
        for part in [digits.as_str().as_bytes(), b"/", name.as_bytes()] {
            let room = self.bytes.len() - len;
            let take = part.len().min(room);
            self.bytes[len..len + take].copy_from_slice(&part[..take]);
            len += take;
        }
        std::str::from_utf8(&self.bytes[..len]).unwrap_or("")
    }
}

/// Parses a procfs entry name made of digits only into a pid.
fn pid_from_name(name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.first().is_some_and(|b| *b == b'0') {
        return None;
    }
    super::parse_u64(bytes).and_then(|v| u32::try_from(v).ok())
}

/// A pid spelled in decimal without allocating.
struct DecimalName {
    digits: [u8; 10],
    start: usize,
}

impl DecimalName {
    fn new(mut value: u32) -> Self {
        let mut digits = [b'0'; 10];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or("0")
    }
}

/// One pinned process directory, `/proc/<pid>`.
#[derive(Debug)]
pub struct PidDir {
    pid: u32,
    fd: OwnedFd,
}

impl PidDir {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the whole file `name` (at most `MAX_FILE_BYTES`) into `buf` and returns it.
    pub fn read<'b>(&self, name: &CStr, buf: &'b mut ReadBuf) -> Result<&'b [u8], PidReadError> {
        let fd = self.open(name)?;
        buf.fill_from(&fd, MAX_FILE_BYTES)
            .map_err(|errno| classify(errno, || self.describe(name)))
    }

    /// Reads a small file (stat, statm, oom_score, oom_score_adj) in one `read`.
    pub fn read_small<'b>(
        &self,
        name: &CStr,
        buf: &'b mut ReadBuf,
    ) -> Result<&'b [u8], PidReadError> {
        let fd = self.open(name)?;
        buf.fill_small(&fd)
            .map_err(|errno| classify(errno, || self.describe(name)))
    }

    /// Opens this process's `oom_score_adj` and keeps it open as a `Pin`.
    pub fn pin(&self) -> Result<Pin, PidReadError> {
        let fd = self.open(c"oom_score_adj")?;
        Ok(Pin { fd })
    }

    fn open(&self, name: &CStr) -> Result<OwnedFd, PidReadError> {
        openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| classify(errno, || self.describe(name)))
    }

    fn describe(&self, name: &CStr) -> String {
        format!("{}/{}", self.pid, name.to_string_lossy())
    }
}

/// One process instance held between scans by its open `oom_score_adj`.
///
/// A procfs file descriptor stays bound to the process it was opened for: once that
/// process is gone, reads fail with ESRCH even if the pid was reused. So a successful
/// `read` proves the instance is still the one pinned, and returns its current
/// `oom_score_adj` at the same time. `oom_score_adj` is chosen because its reads allocate
/// no buffer that stays with the open file (stat, statm and oom_score are seq files,
/// each of which would keep a page of kernel memory per descriptor); a pin costs one
/// `struct file` and the dentry and inode of that file.
#[derive(Debug)]
pub struct Pin {
    fd: OwnedFd,
}

impl Pin {
    /// Reads `oom_score_adj` of `pid`, the process pinned, again (`pread` at offset 0);
    /// `Vanished` once the process is gone.
    pub fn read<'b>(&self, pid: u32, buf: &'b mut ReadBuf) -> Result<&'b [u8], PidReadError> {
        buf.pread_small(&self.fd)
            .map_err(|errno| classify(errno, || format!("{pid}/oom_score_adj")))
    }
}

/// A reusable read buffer: grows to the largest file read, then stays that size.
#[derive(Debug, Default)]
pub struct ReadBuf {
    data: Vec<u8>,
}

impl ReadBuf {
    /// Reads a small procfs file in one `read`: procfs produces stat, statm, oom_score
    /// and oom_score_adj whole in a single read when the buffer holds them, so a read
    /// shorter than the buffer is the whole file. A full buffer falls back to reading to
    /// the end.
    pub fn fill_small(&mut self, fd: &OwnedFd) -> Result<&[u8], Errno> {
        let read = self.read_page(|page| rustix::io::read(fd, page))?;
        if read < self.data.len() {
            return Ok(&self.data[..read]);
        }
        self.fill_rest(fd, read, MAX_FILE_BYTES)
    }

    /// `fill_small` at offset 0 of an open file, without moving its offset.
    pub fn pread_small(&mut self, fd: &OwnedFd) -> Result<&[u8], Errno> {
        let read = self.read_page(|page| rustix::io::pread(fd, page, 0))?;
        if read < self.data.len() {
            return Ok(&self.data[..read]);
        }
        // oom_score_adj is a few bytes: a full page is not that file.
        Err(Errno::FBIG)
    }

    /// One `read` into the whole buffer (at least a page), retried on EINTR.
    fn read_page(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        self.reserve_page();
        loop {
            match read(&mut self.data[..]) {
                Err(Errno::INTR) => continue,
                other => return other,
            }
        }
    }

    /// Reads `fd` to its end (or to `limit` bytes) and returns what was read.
    pub fn fill_from(&mut self, fd: &OwnedFd, limit: usize) -> Result<&[u8], Errno> {
        self.reserve_page();
        self.fill_rest(fd, 0, limit)
    }

    fn reserve_page(&mut self) {
        if self.data.is_empty() {
            self.data.resize(4096, 0);
        }
    }

    /// Reads on after the first `filled` bytes, to the end or to `limit` bytes.
    fn fill_rest(&mut self, fd: &OwnedFd, mut filled: usize, limit: usize) -> Result<&[u8], Errno> {
        while filled < limit {
            if filled == self.data.len() {
                let grown = (self.data.len() * 2).min(limit);
                self.data.resize(grown, 0);
            }
            let end = self.data.len().min(limit);
            match rustix::io::read(fd, &mut self.data[filled..end]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(errno),
            }
        }
        Ok(&self.data[..filled])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_names() {
        assert_eq!(DecimalName::new(0).as_str(), "0");
        assert_eq!(DecimalName::new(4242).as_str(), "4242");
        assert_eq!(DecimalName::new(u32::MAX).as_str(), "4294967295");
    }

    #[test]
    fn only_numeric_entries_are_pids() {
        assert_eq!(pid_from_name(c"123"), Some(123));
        assert_eq!(pid_from_name(c"self"), None);
        assert_eq!(pid_from_name(c"0123"), None);
        assert_eq!(pid_from_name(c"99999999999"), None);
    }

    #[test]
    fn reads_the_live_self_process() {
        let mut dir = ProcDir::open(Path::new("/proc")).expect("procfs");
        let mut pids = Vec::new();
        dir.list_pids(&mut pids).expect("lists");
        let me = std::process::id();
        assert!(pids.contains(&me));
        let pinned = dir.open_pid(me).expect("pins self");
        let mut buf = ReadBuf::default();
        let stat = pinned.read(c"stat", &mut buf).expect("reads stat");
        assert!(stat.starts_with(format!("{me} (").as_bytes()));
        assert!(matches!(
            dir.open_pid(u32::MAX),
            Err(PidReadError::Vanished)
        ));
    }

    #[test]
    fn large_files_are_read_whole_up_to_the_limit() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), vec![b'x'; 10_000]).expect("write");
        let fd = openat(CWD, file.path(), OFlags::RDONLY, Mode::empty()).expect("open");
        let mut buf = ReadBuf::default();
        assert_eq!(buf.fill_from(&fd, 1 << 20).expect("read").len(), 10_000);
        let fd = openat(CWD, file.path(), OFlags::RDONLY, Mode::empty()).expect("open");
        assert_eq!(buf.fill_from(&fd, 8192).expect("read").len(), 8192);
    }
}
