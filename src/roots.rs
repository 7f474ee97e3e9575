//! The one place where the host's filesystem roots are spelled.
//!
//! Every path oomwatch reads is built here from the roots given by `--path.procfs`,
//! `--path.sysfs` and `--path.rootfs`, so that every collector can run against a fixture
//! tree exactly as it runs against the live host. Nothing in this file opens a file.

use std::path::{Path, PathBuf};

/// The filesystem roots of the host being observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    procfs: PathBuf,
    sysfs: PathBuf,
    rootfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self::new("/proc", "/sys", "/")
    }
}

impl Roots {
    pub fn new(
        procfs: impl Into<PathBuf>,
        sysfs: impl Into<PathBuf>,
        rootfs: impl Into<PathBuf>,
    ) -> Self {
        Self {
            procfs: procfs.into(),
            sysfs: sysfs.into(),
            rootfs: rootfs.into(),
        }
    }

    /// The procfs mount (`--path.procfs`).
    pub fn procfs(&self) -> &Path {
        &self.procfs
    }

    /// A file directly under procfs, such as `vmstat` or `sys/kernel/random/boot_id`.
    pub fn proc_file(&self, relative: &str) -> PathBuf {
        self.procfs.join(relative)
    }

    /// The sysfs mount (`--path.sysfs`).
    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }

    /// The root of the cgroup filesystems (`<sysfs>/fs/cgroup`).
    pub fn cgroup_root(&self) -> PathBuf {
        self.sysfs.join("fs/cgroup")
    }

    /// The host's root filesystem (`--path.rootfs`), for files such as `/var/log/wtmp`.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// A file under the host's root filesystem; `absolute` is written as on the host.
    pub fn root_file(&self, absolute: &str) -> PathBuf {
        self.rootfs.join(absolute.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_configured_roots() {
        let roots = Roots::new("/host/proc", "/host/sys", "/host");
        assert_eq!(roots.proc_file("vmstat"), Path::new("/host/proc/vmstat"));
        assert_eq!(roots.cgroup_root(), Path::new("/host/sys/fs/cgroup"));
        assert_eq!(
            roots.root_file("/var/log/wtmp"),
            Path::new("/host/var/log/wtmp")
        );
    }
}
