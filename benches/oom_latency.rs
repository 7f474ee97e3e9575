//! Benchmark (not a test) of how soon a real OOM kill shows on /metrics: the release
//! exporter runs with its defaults on 127.0.0.1; each trial makes a scratch memory cgroup
//! with a 32 MiB limit, starts a victim in it (the binary's `drill-victim`, comm
//! `oomwatch-drill`) that allocates until the kernel kills it, and from the moment the
//! victim is reaped scrapes every 5 ms until `oomwatch_oom_kills_total{comm="oomwatch-drill"}`
//! has grown. Prints each trial's delay and the median and maximum. Before the kills it
//! also measures the exporter's CPU time over 30 s without scrapes (no polling loops: it
//! should be about zero, whatever the host does). Needs root (or a
//! delegated cgroup) and /dev/kmsg. Run with `cargo bench --bench oom_latency`;
//! `OOM_LATENCY_TRIALS` sets the number of trials (default 10).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oomwatch::scratch_cgroup::ScratchCgroup;
use support::{get_metrics, process_cpu_ticks, BenchResult};

const LIMIT_BYTES: u64 = 32 << 20;
const POLL: Duration = Duration::from_millis(5);
const GIVE_UP: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(30);

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The drill victim's kills as the exporter counts them.
fn victim_kills(addr: SocketAddr) -> BenchResult<f64> {
    let body = get_metrics(addr)?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("oomwatch_oom_kills_total{") && l.contains("comm=\"oomwatch-drill\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

fn main() -> BenchResult<()> {
    let trials: usize = std::env::var("OOM_LATENCY_TRIALS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(10);
    let binary = env!("CARGO_BIN_EXE_oomwatch");
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let state = tempfile::tempdir()?;
    let exporter = Exporter(
        Command::new(binary)
            .args([
                "--web.listen-address",
                &addr.to_string(),
                "--log.level",
                "warn",
            ])
            .arg("--state.dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .spawn()?,
    );
    let started = Instant::now();
    while get_metrics(addr).is_err() {
        if started.elapsed() > GIVE_UP {
            return Err("oomwatch did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = exporter.0.id().to_string();
    let (user0, sys0) = process_cpu_ticks(&pid)?;
    std::thread::sleep(IDLE);
    let (user1, sys1) = process_cpu_ticks(&pid)?;
    let hz = rustix::param::clock_ticks_per_second().max(1) as f64;
    println!("## Idle, and an OOM kill to /metrics\n");
    println!(
        "Idle: {:.2} s of CPU over {} s without scrapes ({:.2}% of a core).\n",
        (user1 + sys1 - user0 - sys0) as f64 / hz,
        IDLE.as_secs(),
        100.0 * (user1 + sys1 - user0 - sys0) as f64 / hz / IDLE.as_secs_f64()
    );
    println!("| trial | reaped to visible | scrapes polled |");
    println!("|---:|---:|---:|");
    let mut delays = Vec::new();
    for trial in 1..=trials {
        let before = victim_kills(addr)?;
        let cgroup = ScratchCgroup::create(
            &format!("oomwatch-latency-{}-{trial}", std::process::id()),
            LIMIT_BYTES,
        )?;
        let max = (LIMIT_BYTES * 4).to_string();
        let mut victim = cgroup.spawn(binary.as_ref(), &["drill-victim", "--max-bytes", &max])?;
        let status = victim.wait()?;
        let reaped = Instant::now();
        if std::os::unix::process::ExitStatusExt::signal(&status) != Some(9) {
            return Err(format!("trial {trial}: the victim was not killed ({status})").into());
        }
        let mut polls = 0;
        loop {
            polls += 1;
            if victim_kills(addr)? > before {
                break;
            }
            if reaped.elapsed() > GIVE_UP {
                return Err(format!("trial {trial}: the kill never showed").into());
            }
            std::thread::sleep(POLL);
        }
        let delay = reaped.elapsed();
        drop(cgroup);
        println!(
            "| {trial} | {:.1} ms | {polls} |",
            delay.as_secs_f64() * 1e3
        );
        delays.push(delay);
    }
    delays.sort_unstable();
    let median = delays[delays.len() / 2];
    let max = delays[delays.len() - 1];
    println!(
        "\nmedian {:.1} ms, max {:.1} ms over {trials} kills (goal: <= 1 s)",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    Ok(())
}
