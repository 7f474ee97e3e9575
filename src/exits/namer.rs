//! Reads which group a process belongs to from `/proc/<pid>` (`stat`, `cgroup`, and
//! `cmdline` when a rule needs it), with the same rules as the scan. Thin I/O around the
//! procfs parsers and `groups::group_name`.

use std::path::Path;

use super::tracker::{Comm, Named, Namer};
use crate::groups::{group_name, GroupRules, ProcessFields};
use crate::procfs::pid::{join_cmdline, parse_pid_cgroup, parse_pid_stat};
use crate::procfs::reader::{PidDir, ProcDir, ReadBuf};

pub struct ProcfsNamer {
    proc_dir: ProcDir,
    rules: GroupRules,
    buf: ReadBuf,
    cmdline: String,
}

impl ProcfsNamer {
    pub fn open(procfs: &Path, rules: GroupRules) -> std::io::Result<Self> {
        Ok(Self {
            proc_dir: ProcDir::open(procfs)?,
            rules,
            buf: ReadBuf::default(),
            cmdline: String::new(),
        })
    }

    /// Every pid in procfs now, sorted.
    pub fn list_pids(&mut self, out: &mut Vec<u32>) -> std::io::Result<()> {
        self.proc_dir.list_pids(out)?;
        out.sort_unstable();
        Ok(())
    }

    fn read(&mut self, dir: &PidDir) -> Option<Named> {
        let stat = dir.read(c"stat", &mut self.buf).ok()?;
        let stat = parse_pid_stat(stat).ok()?;
        let comm = Comm::new(stat.comm);
        let (ppid, kernel_thread) = (stat.ppid, stat.kernel_thread);
        if kernel_thread {
            return Some(Named {
                group: String::new(),
                source: crate::groups::NameSource::Comm,
                comm,
                ppid,
                kernel_thread,
            });
        }
        let cgroup = dir.read(c"cgroup", &mut self.buf).ok()?;
        let naming = parse_pid_cgroup(cgroup)
            .ok()?
            .naming_path()
            .map(|path| String::from_utf8_lossy(path).into_owned());
        let cmdline = if self.rules.needs_cmdline() {
            let bytes = dir.read(c"cmdline", &mut self.buf).ok()?;
            join_cmdline(bytes, &mut self.cmdline);
            Some(self.cmdline.as_str())
        } else {
            None
        };
        let comm_text = comm.as_str();
        let (group, source) = group_name(
            &self.rules,
            ProcessFields {
                comm: &comm_text,
                cmdline,
                cgroup: naming.as_deref(),
            },
        );
        Some(Named {
            group,
            source,
            comm,
            ppid,
            kernel_thread,
        })
    }
}

impl Namer for ProcfsNamer {
    fn name(&mut self, tgid: u32) -> Option<Named> {
        let dir = self.proc_dir.open_pid(tgid).ok()?;
        self.read(&dir)
    }
}
