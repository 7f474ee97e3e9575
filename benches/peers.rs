//! Benchmark (not a test) of a full scrape over 127.0.0.1, side by side on one host: oomwatch
//! (release build, default collectors), node_exporter (Debian `prometheus-node-exporter`,
//! only vmstat, stat, pressure, meminfo and processes), process-exporter (Debian
//! `prometheus-process-exporter`, every process grouped by comm, and a few named groups),
//! and a raw floor (this process lists /proc and reads statm, oom_score and oom_score_adj of
//! every pid with the optimized reader of `support::raw_proc`: no allocation), with 0,
//! 1,000 and 10,000 extra idle processes.
//!
//! Per exporter and count: 3 warm-up scrapes, then 20 timed ones: median and p95 wall
//! time, CPU time per scrape (the exporter's utime + stime from /proc/<pid>/stat over the
//! batch), RSS after (VmRSS). The table goes to
//! stdout as Markdown; `scripts/bench.sh` (which installs the peers) puts it into
//! docs/performance.md with the other benchmarks. `PEERS_BENCH_COUNTS=0,100` overrides the
//! counts. It changes the host (thousands of children), so it is never part of the tests.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::raw_proc::RawProcReader;
use support::{
    check_kernel_limits, counts_from_env, cpu_ticks, print_machine_facts, process_cpu_ticks,
    raise_rlimits, BenchResult, Children,
};

const WARMUP: usize = 3;
const TIMED: usize = 20;
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const PROCESS_EXPORTER: &str = "/usr/bin/prometheus-process-exporter";

/// One exporter under test, running.
struct Exporter {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> BenchResult<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// GET /metrics; returns the response length.
fn scrape(addr: SocketAddr) -> BenchResult<usize> {
    Ok(support::get_metrics(addr)?.len())
}

fn start(
    name: &'static str,
    program: &str,
    args: &[String],
    addr: SocketAddr,
) -> BenchResult<Exporter> {
    if !Path::new(program).exists() {
        return Err(format!(
            "{program} is missing: apt-get install prometheus-node-exporter prometheus-process-exporter (scripts/bench.sh does)"
        )
        .into());
    }
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let exporter = Exporter { name, child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} did not answer on {addr} within 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(exporter)
}

fn start_all(dir: &Path) -> BenchResult<Vec<Exporter>> {
    let by_comm = dir.join("by-comm.yml");
    std::fs::write(
        &by_comm,
        "process_names:\n  - name: \"{{.Comm}}\"\n    cmdline:\n    - '.+'\n",
    )?;
    let few = dir.join("few.yml");
    std::fs::write(
        &few,
        "process_names:\n  - name: sleepers\n    comm: [sleep]\n  - name: shells\n    comm: [bash, sh]\n  - name: exporters\n    comm: [oomwatch, prometheus-node]\n",
    )?;
    let mut exporters = Vec::new();
    let addr = free_addr()?;
    let state = dir.join("oomwatch-state");
    std::fs::create_dir(&state)?;
    write_event_log(&state.join("events.jsonl"), EVENT_LOG_BYTES)?;
    exporters.push(start(
        "oomwatch",
        env!("CARGO_BIN_EXE_oomwatch"),
        &[
            "--web.listen-address".into(),
            addr.to_string(),
            "--state.dir".into(),
            state.display().to_string(),
            "--log.level".into(),
            "warn".into(),
            // Above what the log holds: it stays EVENT_LOG_BYTES for the API burst.
            "--events.max".into(),
            "1000000".into(),
        ],
        addr,
    )?);
    let addr = free_addr()?;
    let mut node_args = vec![
        format!("--web.listen-address={addr}"),
        "--collector.disable-defaults".into(),
    ];
    for collector in ["vmstat", "stat", "pressure", "meminfo", "processes"] {
        node_args.push(format!("--collector.{collector}"));
    }
    exporters.push(start("node_exporter", NODE_EXPORTER, &node_args, addr)?);
    for (name, config) in [
        ("process-exporter (every comm)", &by_comm),
        ("process-exporter (3 groups)", &few),
    ] {
        let addr = free_addr()?;
        let args = [
            "-web.listen-address".to_owned(),
            addr.to_string(),
            "-config.path".to_owned(),
            config.display().to_string(),
        ];
        exporters.push(start(name, PROCESS_EXPORTER, &args, addr)?);
    }
    Ok(exporters)
}

/// A realistic large event log for the API burst: exits of 89 services, an OOM kill in
/// every thousand lines.
const EVENT_LOG_BYTES: usize = 8 << 20;
/// Requests of the API burst, all at once: the newest event, the newest kills, a full
/// query and the incident page, in turn.
const API_BURST: usize = 40;
const API_PATHS: [&str; 4] = [
    "/api/v1/events?limit=1",
    "/api/v1/events?type=oom_kill&limit=5",
    "/api/v1/events",
    "/",
];

fn write_event_log(path: &Path, bytes: usize) -> BenchResult<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut lines) = (0, 0u64);
    while written < bytes {
        let time = 1_790_000_000 + lines;
        let line = if lines % 1000 == 0 {
            format!(
                r#"{{"time":{time},"type":"oom_kill","group":"java-{g}","pid":{lines},"comm":"java","constraint":"memcg","memcg":"/kubepods/pod{g}/c","anon_rss_bytes":1073741824,"seq":{lines}}}"#,
                g = lines % 97
            )
        } else {
            format!(
                r#"{{"time":{time},"type":"exit","group":"worker-{g}.service","pid":{lines},"comm":"worker","reason":"killed","signal":"SIGKILL"}}"#,
                g = lines % 89
            )
        };
        writeln!(out, "{line}")?;
        written += line.len() + 1;
        lines += 1;
    }
    out.flush()?;
    Ok(())
}

/// oomwatch's RSS and peak RSS (KiB) after `API_BURST` concurrent API and page requests
/// on its `EVENT_LOG_BYTES` log, and the burst's wall time.
fn api_burst(exporter: &Exporter) -> BenchResult<(u64, u64, Duration)> {
    let started = Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..API_BURST)
            .map(|i| {
                let path = API_PATHS[i % API_PATHS.len()];
                scope.spawn(move || {
                    support::get(exporter.addr, path)
                        .map(|body| body.len())
                        .map_err(|e| format!("{path}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a request thread panicked".into()))
            })
            .collect()
    });
    let wall = started.elapsed();
    for result in results {
        result.map_err(|e| format!("API burst: {e}"))?;
    }
    let pid = exporter.child.id();
    let rss = rss_kib(pid).ok_or("oomwatch's VmRSS")?;
    let peak = status_kib(pid, "VmHWM:").ok_or("oomwatch's VmHWM")?;
    Ok((rss, peak, wall))
}

/// What one exporter (or the floor) cost at one process count.
struct Row {
    extra: usize,
    name: String,
    median: Duration,
    p95: Duration,
    cpu_per_scrape: f64,
    rss_kib: Option<u64>,
    bytes: usize,
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn percentiles(mut walls: Vec<Duration>) -> (Duration, Duration) {
    walls.sort();
    let at = |q: f64| walls[((walls.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn measure(exporter: &Exporter, extra: usize) -> BenchResult<Row> {
    for _ in 0..WARMUP {
        scrape(exporter.addr)?;
    }
    let pid = exporter.child.id().to_string();
    let (u0, s0) = process_cpu_ticks(&pid)?;
    let mut walls = Vec::with_capacity(TIMED);
    let mut bytes = 0;
    for _ in 0..TIMED {
        let started = Instant::now();
        bytes = scrape(exporter.addr)?;
        walls.push(started.elapsed());
    }
    let (u1, s1) = process_cpu_ticks(&pid)?;
    let ticks = (u1 + s1 - u0 - s0) as f64;
    let (median, p95) = percentiles(walls);
    Ok(Row {
        extra,
        name: exporter.name.to_owned(),
        median,
        p95,
        cpu_per_scrape: ticks / rustix::param::clock_ticks_per_second() as f64 / TIMED as f64,
        rss_kib: rss_kib(exporter.child.id()),
        bytes,
    })
}

/// The raw floor: the optimized reader (`support::raw_proc`) reads statm, oom_score and
/// oom_score_adj of every pid, allocating nothing.
fn floor_pass(reader: &mut RawProcReader) -> BenchResult<usize> {
    Ok(reader.pass(&[c"statm", c"oom_score", c"oom_score_adj"])?.1)
}

fn measure_floor(extra: usize) -> BenchResult<Row> {
    let mut reader = RawProcReader::new()?;
    for _ in 0..WARMUP {
        floor_pass(&mut reader)?;
    }
    let (u0, s0) = cpu_ticks()?;
    let mut walls = Vec::with_capacity(TIMED);
    let mut bytes = 0;
    for _ in 0..TIMED {
        let started = Instant::now();
        bytes = floor_pass(&mut reader)?;
        walls.push(started.elapsed());
    }
    let (u1, s1) = cpu_ticks()?;
    let ticks = (u1 + s1 - u0 - s0) as f64;
    let (median, p95) = percentiles(walls);
    Ok(Row {
        extra,
        name: "raw floor (statm, oom_score, oom_score_adj)".into(),
        median,
        p95,
        cpu_per_scrape: ticks / rustix::param::clock_ticks_per_second() as f64 / TIMED as f64,
        rss_kib: None,
        bytes,
    })
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| extra processes | exporter | median wall | p95 wall | CPU / scrape | RSS after | response | CPU vs floor | CPU oomwatch / this |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let floor = rows
            .iter()
            .find(|r| r.extra == row.extra && r.name.starts_with("raw floor"))
            .map(|r| r.cpu_per_scrape);
        let ours = rows
            .iter()
            .find(|r| r.extra == row.extra && r.name == "oomwatch")
            .map(|r| r.cpu_per_scrape);
        let ratio = |a: Option<f64>, b: f64| match a {
            Some(a) if a > 0.0 && b > 0.0 => format!("{:.2}x", b / a),
            _ => "-".into(),
        };
        let versus = |ours: Option<f64>| match ours {
            Some(o) if row.cpu_per_scrape > 0.0 => format!("{:.2}x", o / row.cpu_per_scrape),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.3} s | {} | {} KiB | {} | {} |\n",
            row.extra,
            row.name,
            row.median.as_secs_f64() * 1e3,
            row.p95.as_secs_f64() * 1e3,
            row.cpu_per_scrape,
            row.rss_kib
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            row.bytes / 1024,
            ratio(floor, row.cpu_per_scrape),
            versus(ours),
        ));
    }
    out
}

fn main() -> BenchResult<()> {
    let counts = counts_from_env("PEERS_BENCH_COUNTS")?;
    let max_extra = counts.iter().copied().max().unwrap_or(0);
    println!("## oomwatch and its peers: one full scrape\n");
    print_machine_facts()?;
    check_kernel_limits(max_extra as u64)?;
    raise_rlimits(max_extra as u64)?;
    let dir = tempfile::tempdir()?;
    let exporters = start_all(dir.path())?;
    let mut children = Children::default();
    let mut rows = Vec::new();
    for &extra in &counts {
        children.grow_to(extra)?;
        eprintln!("peers bench: {extra} extra processes; measuring");
        rows.push(measure_floor(extra)?);
        for exporter in &exporters {
            rows.push(measure(exporter, extra)?);
        }
    }
    // At the largest count, after its 20 scrapes: the API burst on the large log.
    let oomwatch = exporters
        .iter()
        .find(|e| e.name == "oomwatch")
        .ok_or("oomwatch is not running")?;
    let rss_before = rss_kib(oomwatch.child.id()).ok_or("oomwatch's VmRSS")?;
    let (rss_after, peak, wall) = api_burst(oomwatch)?;
    drop(exporters);
    let reaped = children.kill_and_reap();
    eprintln!("peers bench: killed and reaped {reaped} children");
    println!(
        "Each row: {TIMED} scrapes of `/metrics` over 127.0.0.1 after {WARMUP} warm-up \
         scrapes, with that many extra idle `sleep` processes on the host. CPU per scrape is \
         the exporter's utime + stime over the batch (10 ms ticks) divided by {TIMED}. The raw \
         floor is the optimized reader in the benchmark itself: it lists /proc with getdents \
         into a reused buffer and opens, reads (into a reused buffer) and closes statm, \
         oom_score and oom_score_adj of every pid, allocating nothing. node_exporter runs only its vmstat, stat, pressure, \
         meminfo and processes collectors; process-exporter runs once with every process \
         grouped by comm and once with three named groups. oomwatch runs with its default \
         collectors (it also reads stat and cgroup of each new instance, follows the kernel \
         log and process events).\n"
    );
    println!("{}", table(&rows));
    println!(
        "oomwatch at {max_extra} extra processes, after its scrapes: RSS {:.1} MiB; then \
         {API_BURST} concurrent requests ({}) on an event log of {} MiB took {:.2} s: RSS after \
         {:.1} MiB, peak RSS (VmHWM) over the whole run {:.1} MiB.\n",
        rss_before as f64 / 1024.0,
        API_PATHS.join(", "),
        EVENT_LOG_BYTES >> 20,
        wall.as_secs_f64(),
        rss_after as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    Ok(())
}
