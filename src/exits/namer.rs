//! Names a process for the tracker: its comm, parent and kernel-thread flag from
//! `/proc/<pid>/stat`, and its group through `groups::reader`, as the scan does.

use std::path::Path;

use super::tracker::{Comm, Named, Namer};
use crate::groups::reader::read_group_name;
use crate::groups::GroupRules;
use crate::procfs::pid::parse_pid_stat;
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
        let comm_text = comm.as_str();
        let (group, source) = read_group_name(
            dir,
            &comm_text,
            &self.rules,
            &mut self.buf,
            &mut self.cmdline,
            |_| {},
        )
        .ok()?;
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
