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
        tracing::info!(path = %self.path.display(), "reading the kernel log");
        let device = fstat(fd)
            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::CharacterDevice);
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

fn warn_unreadable(path: &std::path::Path, errno: Errno) {
    let hint = match errno {
        Errno::PERM | Errno::ACCESS => {
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

/// Reads a file of records (one per line) from its start, then polls it for growth.
fn follow_file(intake: &mut Intake<'_>, fd: &OwnedFd) -> Result<(), Errno> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) | Err(Errno::AGAIN) => {
                intake.caught_up();
                std::thread::sleep(FILE_FOLLOW_INTERVAL);
            }
            Ok(n) => {
                carry.extend_from_slice(&chunk[..n]);
                // Only whole lines; a record still being written stays in `carry`.
                let complete = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                for record in split_records(&carry[..complete]) {
                    intake.handle(record);
                }
                carry.drain(..complete);
            }
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}
