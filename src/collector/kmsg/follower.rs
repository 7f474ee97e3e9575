//! The kernel-log follower: a thread that reads `/dev/kmsg` (`--path.kmsg`) from the
//! oldest record in the ring buffer, then each new record as the kernel writes it, and
//! hands every record to the intake. Owns the device: opening it, draining it, sleeping
//! between bursts, reopening after a failure; must not interpret a record.
//!
//! The device is read non-blocking and drained; between bursts the thread sleeps in
//! `poll()`, so it costs nothing while the kernel is quiet. EPIPE (records overwritten
//! before they were read) is counted by the intake from the sequence gap and reading goes
//! on. A regular file given as `--path.kmsg` (fixtures, tests) is read from its start and
//! then followed by polling for growth every 250 ms; the device never is polled that way.
//! When the log cannot be opened (no CAP_SYSLOG under dmesg_restrict, a container) the
//! thread says once what to grant, keeps `oomwatch_kmsg_up` at 0, and retries every 30 s.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{fstat, open, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::intake::{Intake, IntakeLinks};
use crate::kmsg::record::split_records;

const REOPEN_DELAY: Duration = Duration::from_secs(30);
const FILE_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// Larger than any kmsg record (the kernel's limit is 1024 bytes of text plus metadata).
const RECORD_BUFFER: usize = 16 * 1024;
/// The kernel log device's numbers (`mem` major, `kmsg` minor).
const KMSG_MAJOR: u32 = 1;
const KMSG_MINOR: u32 = 11;

pub struct Follower {
    pub path: PathBuf,
    pub links: IntakeLinks,
}

impl Follower {
    /// Starts the follower thread.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kmsg".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let mut warned = false;
        loop {
            match open(
                &self.path,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    warned = false;
                    self.follow(&fd);
                }
                Err(errno) => {
                    self.links.shared.set_up(false);
                    if !warned {
                        warn_unreadable(&self.path, errno);
                        warned = true;
                    }
                }
            }
            std::thread::sleep(REOPEN_DELAY);
        }
    }

    /// Reads an opened log until it fails.
    fn follow(&self, fd: &OwnedFd) {
        let kind = match log_kind(fd) {
            Ok(kind) => kind,
            Err(why) => {
                self.links.shared.set_up(false);
                tracing::error!(path = %self.path.display(), why,
                    "--path.kmsg is neither the kernel log device nor a regular file of records; OOM victims are not named");
                return;
            }
        };
        tracing::info!(path = %self.path.display(), "reading the kernel log");
        let device = kind == LogKind::Device;
        let mut intake = Intake::new(&self.links, device);
        let result = if device {
            follow_device(&mut intake, fd)
        } else {
            follow_file(&mut intake, fd)
        };
        self.links.shared.set_up(false);
        if let Err(errno) = result {
            tracing::error!(path = %self.path.display(), error = %errno,
                "reading the kernel log failed; OOM victims are not named until it works again");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogKind {
    /// The kernel log device (character device 1:11): one record per read.
    Device,
    /// A regular file of records, one per line (fixtures, tests).
    File,
}

/// What was opened: only the kernel log device or a regular file is read. Anything else
/// (`/dev/zero`, a pipe, a directory) would be read without end or not at all.
fn log_kind(fd: &OwnedFd) -> Result<LogKind, &'static str> {
    let stat = fstat(fd).map_err(|_| "cannot stat it")?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(LogKind::File),
        FileType::CharacterDevice
            if rustix::fs::major(stat.st_rdev) == KMSG_MAJOR
                && rustix::fs::minor(stat.st_rdev) == KMSG_MINOR =>
        {
            Ok(LogKind::Device)
        }
        FileType::CharacterDevice => Err("a character device other than /dev/kmsg (1:11)"),
        _ => Err("not a character device or a regular file"),
    }
}

fn warn_unreadable(path: &std::path::Path, errno: Errno) {
    let hint = match errno {
        Errno::PERM => {
            "grant CAP_SYSLOG (kernel.dmesg_restrict=1 hides /dev/kmsg from other users), or run as root; in a container the device must be allowed too (Kubernetes: privileged; docker: --privileged or --device /dev/kmsg)"
        }
        Errno::ACCESS => {
            "grant CAP_SYSLOG (kernel.dmesg_restrict=1 hides /dev/kmsg from other users), or run as root"
        }
        Errno::NOENT => {
            "the kernel log device is missing; in a container, mount the host's /dev/kmsg"
        }
        _ => "check --path.kmsg",
    };
    tracing::warn!(path = %path.display(), error = %errno, hint,
        "cannot read the kernel log: OOM kills are counted from /proc/vmstat only, without victims; oomwatch_kmsg_up is 0");
}

/// Drains the device record by record (one `read` is one record), sleeping in `poll()`
/// once it is empty.
fn follow_device(intake: &mut Intake<'_>, fd: &OwnedFd) -> Result<(), Errno> {
    let mut buf = vec![0u8; RECORD_BUFFER];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => wait_readable(intake, fd)?,
            Ok(n) => intake.handle(&buf[..n]),
            Err(Errno::AGAIN) => wait_readable(intake, fd)?,
            // Overwritten before they were read: the sequence gap counts them.
            Err(Errno::PIPE) | Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// Persists what the drained burst changed, then sleeps until the kernel writes.
fn wait_readable(intake: &mut Intake<'_>, fd: &OwnedFd) -> Result<(), Errno> {
    intake.caught_up();
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match poll(&mut fds, None) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Reads a file of records (one per line) from its start, then polls it for growth. A
/// partial record waits in `carry` for the rest of its line; a "line" longer than any
/// record is not one, and is dropped up to its end.
fn follow_file(intake: &mut Intake<'_>, fd: &OwnedFd) -> Result<(), Errno> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut carry = LineCarry::default();
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) | Err(Errno::AGAIN) => {
                intake.caught_up();
                std::thread::sleep(FILE_FOLLOW_INTERVAL);
            }
            Ok(n) => carry.push(&chunk[..n], |record| {
                for record in split_records(record) {
                    intake.handle(record);
                }
            }),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// The bytes of a record still being written, bounded by `RECORD_BUFFER`.
#[derive(Debug, Default)]
struct LineCarry {
    partial: Vec<u8>,
    /// Inside an over-long line: skip to its end.
    skipping: bool,
}

impl LineCarry {
    /// Hands every whole line of `partial` + `bytes` to `each` (one call per run of whole
    /// lines); keeps the unfinished tail. Each byte is scanned once.
    fn push(&mut self, mut bytes: &[u8], mut each: impl FnMut(&[u8])) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline + 1);
            if std::mem::take(&mut self.skipping) {
                self.partial.clear();
            } else if self.partial.is_empty() {
                // The whole lines of this chunk at once.
                let last = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let (lines, tail) = bytes.split_at(newline + 1 + last);
                each(lines);
                bytes = tail;
                continue;
            } else {
                self.partial.extend_from_slice(line);
                each(&self.partial);
                self.partial.clear();
            }
            bytes = rest;
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > RECORD_BUFFER {
            self.partial.clear();
            self.skipping = true;
            tracing::debug!("skipping a line longer than any kernel log record");
            return;
        }
        self.partial.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut carry = LineCarry::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            carry.push(chunk, |lines| seen.push(lines.to_vec()));
        }
        (seen, carry.partial.len())
    }

    #[test]
    fn whole_lines_pass_and_a_partial_one_waits() {
        let (seen, left) = lines(&[b"a\nb\nc", b"d\ne", b"f\n"]);
        assert_eq!(
            seen,
            [b"a\nb\n".to_vec(), b"cd\n".to_vec(), b"ef\n".to_vec()]
        );
        assert_eq!(left, 0);
    }

    #[test]
    fn a_file_without_newlines_holds_no_more_than_a_record() {
        let zeros = vec![0u8; 64 * 1024];
        let mut carry = LineCarry::default();
        let mut calls = 0;
        for _ in 0..100 {
            carry.push(&zeros, |_| calls += 1);
            assert!(carry.partial.len() <= RECORD_BUFFER);
        }
        assert_eq!(calls, 0);
        // The over-long line ends; the next one is read.
        carry.push(b"\nnext\n", |_| calls += 1);
        assert_eq!(calls, 1);
    }

    #[test]
    fn only_the_kernel_log_device_or_a_regular_file_is_followed() {
        let open = |path: &str| {
            open(
                path,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .expect("open")
        };
        assert!(log_kind(&open("/dev/zero")).is_err());
        assert!(log_kind(&open("/dev/null")).is_err());
        let file = tempfile::NamedTempFile::new().expect("temp");
        assert_eq!(
            log_kind(&open(file.path().to_str().expect("utf-8"))),
            Ok(LogKind::File)
        );
        if let Ok(kmsg) = open_kmsg() {
            assert_eq!(log_kind(&kmsg), Ok(LogKind::Device));
        }
    }

    fn open_kmsg() -> Result<OwnedFd, Errno> {
        open(
            "/dev/kmsg",
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }
}
