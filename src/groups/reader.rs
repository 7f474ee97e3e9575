//! Reads the group of one process from `/proc/<pid>`: its `cgroup` (and `cmdline` when a
//! rule matches on it) through the pinned `PidDir`, then `group_name`. The one place that
//! reads /proc to name a group, shared by the scan and the process-events listener so
//! both put a process in the same group.

use super::naming::NameSource;
use super::rules::{group_name, GroupRules, ProcessFields};
use crate::procfs::pid::{join_cmdline, parse_pid_cgroup, PidCgroups};
use crate::procfs::reader::{PidDir, PidReadError, ReadBuf};
use crate::procfs::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum NameReadError {
    #[error(transparent)]
    Read(#[from] PidReadError),
    #[error(transparent)]
    Malformed(#[from] ParseError),
}

/// The group (before the cap on automatic groups) of the process `dir` whose comm is
/// `comm`, and where its name came from. `cgroups` sees the parsed cgroup file first (the
/// scan takes the memory cgroup from it). `buf` and `cmdline` are the caller's reused
/// buffers.
pub fn read_group_name(
    dir: &PidDir,
    comm: &str,
    rules: &GroupRules,
    buf: &mut ReadBuf,
    cmdline: &mut String,
    cgroups: impl FnOnce(&PidCgroups<'_>),
) -> Result<(String, NameSource), NameReadError> {
    let parsed = parse_pid_cgroup(dir.read(c"cgroup", buf)?)?;
    cgroups(&parsed);
    let naming = parsed
        .naming_path()
        .map(|path| String::from_utf8_lossy(path).into_owned());
    let cmdline = if rules.needs_cmdline() {
        join_cmdline(dir.read(c"cmdline", buf)?, cmdline);
        Some(cmdline.as_str())
    } else {
        None
    };
    let process = ProcessFields {
        comm,
        cmdline,
        cgroup: naming.as_deref(),
    };
    Ok(group_name(rules, process))
}
