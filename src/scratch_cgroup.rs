//! A scratch memory cgroup for making real, contained OOM kills: a child of the calling
//! process's own memory cgroup (v1 or v2, detected at run time) with a small limit and no
//! swap. Processes started in it allocate until the kernel's OOM killer takes them, and
//! nothing outside it is touched. Removing it (on drop) kills what is left in it first.
//! Used by the tests; it needs the right to create cgroups (root, or a delegated subtree).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::cgroupfs::MemoryHierarchy;
use crate::procfs::pid::parse_pid_cgroup;
use crate::roots::Roots;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("no memory cgroup hierarchy is mounted under /sys/fs/cgroup")]
    NoHierarchy,
    #[error("cannot find this process's memory cgroup in /proc/self/cgroup")]
    NoOwnCgroup,
    #[error("cannot {action} {path}: {source} (making a cgroup needs root or a delegated cgroup subtree)")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup v2 will not enable the memory controller under {cgroup} while other processes live in it (the no-internal-processes rule); run it in a cgroup of its own: `systemd-run --wait --pty -p Delegate=yes oomwatch drill`")]
    InternalProcesses { cgroup: String },
    #[error("the child {pid} did not stop before it could be moved into the cgroup")]
    ChildNotStopped { pid: u32 },
}

#[derive(Debug)]
pub struct ScratchCgroup {
    dir: PathBuf,
    /// The path as `/proc/<pid>/cgroup` and the kernel log print it.
    path: String,
}

fn io<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> ScratchError + 'p {
    move |source| ScratchError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl ScratchCgroup {
    /// Creates `<own memory cgroup>/<name>` with a limit of `limit_bytes` and no swap.
    pub fn create(name: &str, limit_bytes: u64) -> Result<Self, ScratchError> {
        let roots = Roots::default();
        let hierarchy = MemoryHierarchy::detect(&roots).ok_or(ScratchError::NoHierarchy)?;
        let own_cgroup = roots.proc_file("self/cgroup");
        let own = std::fs::read(&own_cgroup).map_err(io("read", &own_cgroup))?;
        let own = parse_pid_cgroup(&own).map_err(|_| ScratchError::NoOwnCgroup)?;
        let (mount, own_path) = match &hierarchy {
            MemoryHierarchy::V1 { mount } => (mount, own.memory_v1),
            MemoryHierarchy::V2 { mount } => (mount, own.unified),
        };
        let own_path = String::from_utf8_lossy(own_path.ok_or(ScratchError::NoOwnCgroup)?)
            .trim_end_matches('/')
            .to_owned();
        let parent = mount.join(own_path.trim_start_matches('/'));
        if let MemoryHierarchy::V2 { .. } = hierarchy {
            // The memory controller must be enabled for the parent's children.
            let control = parent.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).map_err(io("read", &control))?;
            if !enabled.split_whitespace().any(|c| c == "memory") {
                enable_memory_for_children(&parent, &own_path)?;
            }
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        let scratch = Self {
            dir,
            path: format!("{own_path}/{name}"),
        };
        let write = |file: &str, value: &str| {
            let path = scratch.dir.join(file);
            std::fs::write(&path, value).map_err(io("write", &path))
        };
        match hierarchy {
            MemoryHierarchy::V1 { .. } => {
                write("memory.limit_in_bytes", &limit_bytes.to_string())?;
                if scratch.dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", &limit_bytes.to_string())?;
                }
            }
            MemoryHierarchy::V2 { .. } => {
                write("memory.max", &limit_bytes.to_string())?;
                if scratch.dir.join("memory.swap.max").exists() {
                    write("memory.swap.max", "0")?;
                }
            }
        }
        Ok(scratch)
    }

    /// The cgroup path as the kernel prints it (`task_memcg=`, `/proc/<pid>/cgroup`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Starts `program args…` inside the cgroup: the child stops itself before exec,
    /// is moved in, then continued, so not one page is allocated outside the cgroup.
    pub fn spawn(&self, program: &Path, args: &[&str]) -> Result<Child, ScratchError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("kill -STOP $$; exec \"$0\" \"$@\"")
            .arg(program)
            .args(args)
            .spawn()
            .map_err(io("start", program))?;
        let pid = child.id();
        let stat = Roots::default().proc_file(&format!("{pid}/stat"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read(&stat).ok().and_then(|bytes| {
                crate::procfs::pid::parse_pid_stat(&bytes)
                    .ok()
                    .map(|s| s.state)
            });
            if state == Some(b'T') {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ScratchError::ChildNotStopped { pid });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let procs = self.dir.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, pid.to_string()) {
            // It is stopped outside the cgroup: it must not be left behind.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io("move the child into", &procs)(e));
        }
        signal(pid, rustix::process::Signal::CONT);
        Ok(child)
    }

    /// OOM kills the kernel counted in this cgroup (v2 `memory.events`, v1
    /// `memory.oom_control`); None where the kernel does not say (v1 before 4.13).
    pub fn oom_kills(&self) -> Option<u64> {
        ["memory.events", "memory.oom_control"]
            .iter()
            .find_map(|file| {
                let bytes = std::fs::read(self.dir.join(file)).ok()?;
                crate::cgroupfs::parse_keyed_counter(&bytes, b"oom_kill")
            })
    }

    /// The pids in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// Enables the v2 memory controller for the children of `parent`. cgroup v2 refuses
/// (EBUSY) while processes live in `parent` itself; when the only one is this process, it
/// moves itself into a leaf child first (as under `systemd-run -p Delegate=yes`).
fn enable_memory_for_children(parent: &Path, own_path: &str) -> Result<(), ScratchError> {
    let control = parent.join("cgroup.subtree_control");
    let busy =
        |e: &std::io::Error| e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error());
    match std::fs::write(&control, "+memory") {
        Ok(()) => return Ok(()),
        Err(e) if !busy(&e) => return Err(io("enable memory in", &control)(e)),
        Err(_) => {}
    }
    let procs = parent.join("cgroup.procs");
    let me = std::process::id().to_string();
    let members = std::fs::read_to_string(&procs).map_err(io("read", &procs))?;
    if !members.lines().all(|pid| pid.trim() == me) {
        return Err(ScratchError::InternalProcesses {
            cgroup: own_path.to_owned(),
        });
    }
    let leaf = parent.join("oomwatch-drill-self");
    if let Err(e) = std::fs::create_dir(&leaf) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(io("create", &leaf)(e));
        }
    }
    let leaf_procs = leaf.join("cgroup.procs");
    std::fs::write(&leaf_procs, &me).map_err(io("move oomwatch into", &leaf_procs))?;
    std::fs::write(&control, "+memory").map_err(io("enable memory in", &control))
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                signal(pid, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(cgroup = %self.dir.display(), error = %e, "cannot remove the scratch cgroup");
        }
    }
}
