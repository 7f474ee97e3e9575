//! What the benchmarks share: the idle children that make a host of N processes (killed
//! and reaped on drop), the kernel and rlimit checks they need, machine facts, and CPU
//! time from /proc, and the optimized raw /proc reader (`raw_proc`) every benchmark of a
//! /proc pass is compared against. Not a benchmark itself.

#![allow(dead_code)] // each benchmark uses its own part

pub mod raw_proc;

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

pub type BenchResult<T> = Result<T, Box<dyn Error>>;

const DEFAULT_COUNTS: [usize; 3] = [0, 1_000, 10_000];
/// Room left under pid_max / threads-max / RLIMIT_NPROC for everything else on the host.
const HEADROOM: u64 = 2_000;

/// GET /metrics over HTTP/1.0 (the server closes when done); returns the whole response.
pub fn get_metrics(addr: SocketAddr) -> BenchResult<Vec<u8>> {
    get(addr, "/metrics")
}

/// GET `path` over HTTP/1.0; returns the whole response, an error unless it is a 200.
pub fn get(addr: SocketAddr, path: &str) -> BenchResult<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: bench\r\nAccept: text/plain\r\n\r\n").as_bytes(),
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    if !response.starts_with(b"HTTP/1.0 200") && !response.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&response[..response.len().min(200)]).into_owned();
        return Err(format!("{addr}: {head}").into());
    }
    Ok(response)
}

/// The extra-process counts to measure: `variable` (`0,100`) or 0, 1,000 and 10,000.
pub fn counts_from_env(variable: &str) -> BenchResult<Vec<usize>> {
    match std::env::var(variable) {
        Ok(list) => Ok(list
            .split(',')
            .map(|n| n.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{variable}={list:?}: {e}"))?),
        Err(_) => Ok(DEFAULT_COUNTS.to_vec()),
    }
}

/// The `sleep 3600` children; dropping this kills (SIGKILL) and reaps them all.
#[derive(Default)]
pub struct Children {
    running: Vec<Child>,
}

impl Children {
    pub fn grow_to(&mut self, count: usize) -> BenchResult<()> {
        let mut sleep = Command::new("sleep");
        sleep
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let before = self.running.len();
        while self.running.len() < count {
            let child = sleep
                .spawn()
                .map_err(|e| format!("spawning idle child #{}: {e}", self.running.len() + 1))?;
            self.running.push(child);
        }
        if count > before {
            eprintln!(
                "bench: spawned {} children in {:.2} s",
                count - before,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Kills every child first (so none lingers while others are reaped), then reaps.
    pub fn kill_and_reap(&mut self) -> usize {
        for child in &mut self.running {
            // An already-dead child is fine: wait() below still reaps it.
            let _ = child.kill();
        }
        let mut reaped = 0;
        for mut child in self.running.drain(..) {
            if child.wait().is_ok() {
                reaped += 1;
            }
        }
        reaped
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.running.is_empty() {
            let reaped = self.kill_and_reap();
            eprintln!("bench: cleanup killed and reaped {reaped} children");
        }
    }
}

pub fn read_trimmed(path: &str) -> BenchResult<String> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .to_owned())
}

fn read_u64(path: &str) -> BenchResult<u64> {
    let text = read_trimmed(path)?;
    Ok(text.parse().map_err(|e| format!("{path}: {text:?}: {e}"))?)
}

pub fn print_machine_facts() -> BenchResult<()> {
    let cpus = std::thread::available_parallelism()?.get();
    let meminfo = read_trimmed("/proc/meminfo")?;
    let mem_total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap_or("MemTotal: ?");
    println!(
        "machine: {cpus} CPUs, {}, kernel {}, page size {} B, CLK_TCK {}",
        mem_total
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "),
        read_trimmed("/proc/sys/kernel/osrelease")?,
        rustix::param::page_size(),
        rustix::param::clock_ticks_per_second(),
    );
    Ok(())
}

/// Threads now alive on the host (the 4th field of /proc/loadavg, "running/total").
fn host_threads() -> BenchResult<u64> {
    let loadavg = read_trimmed("/proc/loadavg")?;
    let total = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').nth(1))
        .ok_or_else(|| format!("/proc/loadavg: unexpected {loadavg:?}"))?;
    Ok(total.parse()?)
}

/// Fails early, naming the sysctl, when the host cannot hold the children. The sysctls
/// are host-wide, so this benchmark reports them and never changes them.
pub fn check_kernel_limits(extra: u64) -> BenchResult<()> {
    let pid_max = read_u64("/proc/sys/kernel/pid_max")?;
    let threads_max = read_u64("/proc/sys/kernel/threads-max")?;
    let threads = host_threads()?;
    let need = threads + extra + HEADROOM;
    println!(
        "kernel: pid_max {pid_max}, threads-max {threads_max}, threads now {threads}, \
         need about {need} (unchanged)"
    );
    for (name, limit) in [
        ("kernel.pid_max", pid_max),
        ("kernel.threads-max", threads_max),
    ] {
        if limit < need {
            return Err(format!("{name} is {limit}, below the {need} this run needs").into());
        }
    }
    Ok(())
}

/// Raises the soft limit (up to the hard one) where it is below what the run needs.
pub fn raise_rlimits(extra: u64) -> BenchResult<()> {
    let need_nproc = host_threads()? + extra + HEADROOM;
    // Children hold no descriptors in this process; spawning needs a pipe at a time.
    let need_nofile = 1_024;
    for (name, resource, need) in [
        ("RLIMIT_NPROC", Resource::Nproc, need_nproc),
        ("RLIMIT_NOFILE", Resource::Nofile, need_nofile),
    ] {
        let old = getrlimit(resource);
        let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string());
        if old.current.is_none_or(|soft| soft >= need) {
            println!(
                "{name}: soft {} hard {} >= {need} needed (unchanged)",
                show(old.current),
                show(old.maximum)
            );
            continue;
        }
        let raised = old.maximum.map_or(need, |hard| need.min(hard));
        setrlimit(
            resource,
            Rlimit {
                current: Some(raised),
                maximum: old.maximum,
            },
        )
        .map_err(|e| format!("raising {name} soft limit to {raised}: {e}"))?;
        println!(
            "{name}: soft {} -> {raised} (hard {})",
            show(old.current),
            show(old.maximum)
        );
    }
    Ok(())
}

/// This process's user and system CPU time in clock ticks (`/proc/self/stat` 14, 15).
pub fn cpu_ticks() -> BenchResult<(u64, u64)> {
    process_cpu_ticks("self")
}

/// A process's user and system CPU time in clock ticks (`/proc/<pid>/stat` 14, 15).
pub fn process_cpu_ticks(pid: &str) -> BenchResult<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("/proc/self/stat: no comm")?;
    // Fields after comm start at field 3 (state); utime is field 14, stime 15.
    let mut fields = after_comm.split_whitespace().skip(11);
    let mut next =
        || -> BenchResult<u64> { Ok(fields.next().ok_or("/proc/self/stat: short")?.parse()?) };
    Ok((next()?, next()?))
}
