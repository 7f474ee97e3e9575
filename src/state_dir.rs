//! The state directory (`--state.dir`), opened as a directory descriptor and used only
//! through it: every file is opened relative to it with `O_NOFOLLOW`, must be a regular
//! file with one link, owned by oomwatch's user, and is replaced atomically (`atomic_file`).
//! A link or a FIFO planted under a state file's name is refused, never followed, so a user
//! who can write the directory cannot make oomwatch (root) write or truncate another file.
//!
//! Like sshd's StrictModes, a directory owned by another user, or writable by group or
//! others, or under a directory that is (without the sticky bit), is refused with an error
//! naming `--state.dir`, unless the operator opts out (`--state.dir.allow-insecure`); the
//! files are then still opened as above. The directory is created (0755) when missing. A
//! directory that cannot be opened now (a read-only or missing mount) is retried at each
//! use: oomwatch serves on state kept in memory meanwhile. Owns opening the directory and
//! its files safely; must not know what the files hold.
//!
//! Readers that only list the state of another user (`oomwatch events`, `why`) use
//! `read_file`: no link followed, no ownership asked.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{fstat, openat, FileType, Mode, OFlags, Stat};

/// Why the state directory is refused: it names the flag and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("--state.dir {path}: owned by uid {owner}, not by oomwatch's user (uid {euid}) or root; another user could replace the state files. Use a directory of oomwatch's own (chown it), or pass --state.dir.allow-insecure")]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("--state.dir {path}: {which} is writable by group or others (mode {mode:04o}); another user could plant links or files in it. Fix it (chmod go-w {which}), or pass --state.dir.allow-insecure")]
    Writable {
        path: PathBuf,
        which: String,
        mode: u32,
    },
    #[error("--state.dir {path}: {which} is owned by uid {owner}, neither root nor oomwatch's user (uid {euid}); its owner could replace the state directory. Use another directory, or pass --state.dir.allow-insecure")]
    AncestorOwner {
        path: PathBuf,
        which: String,
        owner: u32,
        euid: u32,
    },
}

/// What a directory check refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Refuse directories other users can change (the default).
    Strict,
    /// Accept them (`--state.dir.allow-insecure`); files are still opened safely.
    AllowInsecure,
}

/// The state directory and its descriptor, opened at first use and kept.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    strictness: Strictness,
    fd: Mutex<Option<Arc<OwnedFd>>>,
}

/// Why a file in the directory was not opened.
fn refused(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{}: {why}; not used", path.display()),
    )
}

impl StateDir {
    /// The directory at `path`, checked (and created when missing). A directory other
    /// users can change is an error (unless allowed); one that cannot be opened now is
    /// not: `is_open` is false and each use tries again.
    pub fn open(path: &Path, strictness: Strictness) -> Result<Self, StateDirError> {
        let dir = Self {
            path: path.to_path_buf(),
            strictness,
            fd: Mutex::new(None),
        };
        match dir.open_now() {
            Ok(Err(refusal)) => Err(refusal),
            Ok(Ok(fd)) => {
                *crate::sync::lock(&dir.fd) = Some(fd);
                Ok(dir)
            }
            Err(_) => Ok(dir),
        }
    }

    /// A directory used without checks, for tests and throwaway runs of this crate's own
    /// temporary directories.
    pub fn unchecked(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            strictness: Strictness::AllowInsecure,
            fd: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory is open (else its uses fail and are retried).
    pub fn is_open(&self) -> bool {
        crate::sync::lock(&self.fd).is_some()
    }

    /// The directory's descriptor, opening (and checking) it if not yet done.
    pub fn fd(&self) -> std::io::Result<Arc<OwnedFd>> {
        let mut slot = crate::sync::lock(&self.fd);
        if let Some(fd) = slot.as_ref() {
            return Ok(fd.clone());
        }
        let fd = self.open_now()?.map_err(|refusal| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal.to_string())
        })?;
        *slot = Some(fd.clone());
        Ok(fd)
    }

    /// Creates the directory if missing, opens and checks it.
    fn open_now(&self) -> std::io::Result<Result<Arc<OwnedFd>, StateDirError>> {
        if !self.path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&self.path)?;
        }
        let fd = rustix::fs::open(
            &self.path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if self.strictness == Strictness::Strict {
            if let Err(refusal) =
                check_dir(&self.path, &fstat(&fd)?).and_then(|()| check_ancestors(&self.path))
            {
                return Ok(Err(refusal));
            }
        }
        Ok(Ok(Arc::new(fd)))
    }

    /// Opens `name` for appending, creating it (0644) if missing.
    pub fn open_append(&self, name: &str) -> std::io::Result<std::fs::File> {
        let dir = self.fd()?;
        let fd = openat(
            dir.as_fd(),
            name,
            OFlags::WRONLY
                | OFlags::APPEND
                | OFlags::CREATE
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| self.explain(name, e))?;
        self.owned_regular(name, &fd)?;
        Ok(std::fs::File::from(fd))
    }

    /// Opens `name` for reading; `None` when it does not exist.
    pub fn open_read(&self, name: &str) -> std::io::Result<Option<std::fs::File>> {
        let dir = self.fd()?;
        match openat(
            dir.as_fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                self.owned_regular(name, &fd)?;
                Ok(Some(std::fs::File::from(fd)))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(self.explain(name, e)),
        }
    }

    /// Reads `name` whole; `None` when it does not exist.
    pub fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(mut file) = self.open_read(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Replaces `name` atomically with what `write` writes.
    pub fn replace(
        &self,
        name: &str,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let dir = self.fd()?;
        crate::atomic_file::replace_in(dir.as_fd(), name, write)
    }

    /// Renames `from` to `to` within the directory (a link is renamed, not followed).
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let dir = self.fd()?;
        Ok(rustix::fs::renameat(dir.as_fd(), from, dir.as_fd(), to)?)
    }

    /// A file opened here must be oomwatch's own regular file, with no other link to it
    /// (a hard link to another file would make an append or a read reach it).
    fn owned_regular(&self, name: &str, fd: &OwnedFd) -> std::io::Result<()> {
        let stat = fstat(fd)?;
        let path = self.path.join(name);
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refused(&path, "not a regular file"));
        }
        if stat.st_nlink != 1 {
            return Err(refused(&path, "has more than one link"));
        }
        let euid = rustix::process::geteuid().as_raw();
        if stat.st_uid != euid && euid != 0 {
            return Err(refused(&path, "owned by another user"));
        }
        Ok(())
    }

    /// Says which file and why, for the errors a planted name makes.
    fn explain(&self, name: &str, errno: rustix::io::Errno) -> std::io::Error {
        let path = self.path.join(name);
        match errno {
            rustix::io::Errno::LOOP => refused(&path, "a symbolic link"),
            rustix::io::Errno::NXIO => refused(&path, "a FIFO or socket"),
            other => std::io::Error::new(
                std::io::Error::from(other).kind(),
                format!("{}: {other}", path.display()),
            ),
        }
    }
}

/// The directory itself: owned by oomwatch's user or root, not writable by group/others.
fn check_dir(path: &Path, stat: &Stat) -> Result<(), StateDirError> {
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid && stat.st_uid != 0 {
        return Err(StateDirError::Owner {
            path: path.to_path_buf(),
            owner: stat.st_uid,
            euid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: path.to_path_buf(),
            which: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// Every directory above it (links resolved): owned by root or oomwatch's user, and not
/// writable by group/others unless sticky (like /tmp: others cannot rename what is ours).
fn check_ancestors(path: &Path) -> Result<(), StateDirError> {
    let euid = rustix::process::geteuid().as_raw();
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    for ancestor in real.ancestors().skip(1) {
        let Ok(stat) = rustix::fs::stat(ancestor) else {
            continue;
        };
        let which = ancestor.display().to_string();
        if stat.st_uid != 0 && stat.st_uid != euid {
            return Err(StateDirError::AncestorOwner {
                path: path.to_path_buf(),
                which,
                owner: stat.st_uid,
                euid,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(StateDirError::Writable {
                path: path.to_path_buf(),
                which,
                mode,
            });
        }
    }
    Ok(())
}

/// Reads a state file of a directory that need not be the reader's (`oomwatch events`,
/// `why`): no link followed, a regular file only; `None` when it does not exist.
pub fn read_file(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => {
            if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
                return Err(refused(path, "not a regular file"));
            }
            Ok(Some(std::fs::File::from(fd)))
        }
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(rustix::io::Errno::LOOP) => Err(refused(path, "a symbolic link")),
        Err(e) => Err(std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_directory_writable_by_others_is_refused_naming_the_flag() {
        let base = tempfile::tempdir().expect("temp");
        let dir = base.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        chmod(&dir, 0o777);
        let error = StateDir::open(&dir, Strictness::Strict).expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("--state.dir") && text.contains("0777"),
            "{text}"
        );
        assert!(text.contains("--state.dir.allow-insecure"), "{text}");
        // Opted out, it is used.
        assert!(StateDir::open(&dir, Strictness::AllowInsecure)
            .expect("allowed")
            .is_open());
        chmod(&dir, 0o755);
        assert!(StateDir::open(&dir, Strictness::Strict)
            .expect("ok")
            .is_open());
    }

    #[test]
    fn a_group_writable_parent_without_sticky_bit_is_refused() {
        let base = tempfile::tempdir().expect("temp");
        let parent = base.path().join("shared");
        std::fs::create_dir(&parent).expect("mkdir");
        chmod(&parent, 0o775);
        let error = StateDir::open(&parent.join("state"), Strictness::Strict).expect_err("refused");
        assert!(
            matches!(error, StateDirError::Writable { ref which, .. } if which.ends_with("shared")),
            "{error}"
        );
        // Sticky, like /tmp: accepted.
        chmod(&parent, 0o1777);
        StateDir::open(&parent.join("state"), Strictness::Strict).expect("sticky parent");
    }

    #[test]
    fn planted_links_and_fifos_are_refused_not_followed() {
        let base = tempfile::tempdir().expect("temp");
        let victim = base.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        let dir = base.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        std::os::unix::fs::symlink(&victim, dir.join("log")).expect("symlink");
        std::fs::hard_link(&victim, dir.join("hard")).expect("hard link");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .expect("fifo");
        let state = StateDir::open(&dir, Strictness::Strict).expect("open");
        for name in ["log", "hard", "fifo"] {
            let error = state.open_append(name).expect_err(name);
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{name}: {error}"
            );
            assert!(state.open_read(name).is_err(), "{name}");
            assert!(state.read(name).is_err(), "{name}");
        }
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert!(read_file(&dir.join("log")).is_err());
        // A replace goes around the link: the link is replaced, the target untouched.
        state
            .replace("log", |f| std::io::Write::write_all(f, b"new"))
            .expect("replace");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(dir.join("log")).expect("read"), b"new");
    }

    #[test]
    fn a_missing_directory_is_created_and_one_that_cannot_be_is_retried() {
        let base = tempfile::tempdir().expect("temp");
        let blocker = base.path().join("file");
        std::fs::write(&blocker, "x").expect("write");
        let state =
            StateDir::open(&blocker.join("state"), Strictness::Strict).expect("not refused");
        assert!(!state.is_open());
        assert!(state.open_append("x").is_err());
        let fresh = StateDir::open(&base.path().join("a/b"), Strictness::Strict).expect("created");
        assert!(fresh.is_open());
        fresh.open_append("events").expect("append");
        assert_eq!(fresh.read("events").expect("read"), Some(Vec::new()));
        assert_eq!(fresh.read("none").expect("read"), None);
    }
}
