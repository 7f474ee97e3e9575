//! Atomic file replacement inside an opened directory: a reader sees the old content or
//! the new, never a torn file (a temporary file, fsync, rename over the target, fsync of
//! the directory). The temporary file is created exclusively (`O_EXCL | O_NOFOLLOW`) under
//! a random name, so nothing planted in the directory (a link, a file under the expected
//! name) is ever opened or truncated. Owns how a file is replaced; must not know what the
//! file holds or how the directory was opened (`state_dir`).

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{openat, renameat, unlinkat, AtFlags, Mode, OFlags};

/// How many random names are tried before giving up (each collision is a file someone
/// else made: a stale temporary file, or a planted one).
const TEMP_NAME_TRIES: usize = 8;

/// Replaces `name` in the directory `dir` with what `write` puts into a fresh temporary
/// file, atomically. `name` must be a plain file name (no `/`).
pub fn replace_in(
    dir: BorrowedFd<'_>,
    name: &str,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (temp, mut file) = create_temp(dir, name)?;
    let result = (|| {
        write(&mut file)?;
        file.sync_all()?;
        renameat(dir, temp.as_str(), dir, name)?;
        rustix::fs::fsync(dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = unlinkat(dir, temp.as_str(), AtFlags::empty());
    }
    result
}

/// Creates `.<name>.<random>.tmp` exclusively, mode 0600; returns its name and file.
fn create_temp(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<(String, std::fs::File)> {
    let mut last = None;
    for _ in 0..TEMP_NAME_TRIES {
        let temp = format!(".{name}.{}.tmp", random_suffix()?);
        match openat(
            dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((temp, std::fs::File::from(fd))),
            Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
            Err(errno) => return Err(errno.into()),
        }
    }
    Err(last.unwrap_or(rustix::io::Errno::EXIST).into())
}

/// 16 hex digits from the system's random source.
fn random_suffix() -> std::io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("no random bytes from the system"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `content` as `name` in `dir`, atomically.
pub fn write_in(dir: impl AsFd, name: &str, content: &[u8]) -> std::io::Result<()> {
    replace_in(dir.as_fd(), name, |file| file.write_all(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(path: &std::path::Path) -> std::os::fd::OwnedFd {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir")
    }

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp");
        let fd = open_dir(dir.path());
        write_in(&fd, "f", b"one").expect("write");
        write_in(&fd, "f", b"two").expect("write");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn a_planted_link_under_the_old_temporary_name_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        // The fixed temporary name of earlier versions, planted as a link.
        std::os::unix::fs::symlink(&victim, dir.path().join(".f.tmp")).expect("link");
        let fd = open_dir(dir.path());
        write_in(&fd, "f", b"new").expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"new");
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file() {
        let dir = tempfile::tempdir().expect("temp");
        let fd = open_dir(dir.path());
        let result = replace_in(fd.as_fd(), "f", |_| Err(std::io::Error::other("full")));
        assert!(result.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
