//! Benchmark (not a test) of one full pass of the `processes` collector over the live
//! `/proc`, with 0, 1,000 and 10,000 extra idle processes (`sleep 3600` children).
//!
//! For each count it times the first (cold) scan of a fresh collector, then, after a
//! warm-up, at least 20 scans (more while under a second of wall time), reporting median
//! and p95 wall time and mean CPU time per scan from `/proc/self/stat`. The same run times
//! a "raw floor": the optimized raw reader of `support::raw_proc` (no allocation) reads
//! statm, oom_score and oom_score_adj of every pid (and a second floor that also reads
//! stat, the collector's fourth file).
//! The collector runs as the exporter runs it: with the process-events listener (so the
//! rename journal lets known instances skip stat) and pins within `--processes.max-pinned`.
//! Also counted: heap allocations per steady scan (a counting global allocator), and
//! the kernel memory the pins hold (the filp, dentry and proc inode a pin keeps from
//! being freed, sized from /proc/slabinfo).
//! Results go to stdout as a Markdown table. It raises RLIMIT_NPROC/NOFILE only when they
//! are too low, never touches sysctls, and kills and reaps every child it started, also
//! on error or panic. Run with `cargo bench --bench scan`; `SCAN_BENCH_COUNTS=0,100`
//! overrides the counts. It must not be part of `cargo test`: it changes the host.

use std::ffi::CStr;
use std::path::Path;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oomwatch::collector::processes::{ProcessesCollector, ProcessesLinks, ProcessesSettings};
use oomwatch::collector::Collector;
use oomwatch::events::EventLog;
use oomwatch::exits::listener::Listener;
use oomwatch::exits::ExitsShared;
use oomwatch::groups::live::LivePids;
use oomwatch::groups::{GroupRules, TableSettings};
use oomwatch::roots::Roots;
use oomwatch::snapshot::Snapshot;
use oomwatch::state::StateStore;

mod support;

use support::raw_proc::RawProcReader;
use support::{
    check_kernel_limits, counts_from_env, cpu_ticks, print_machine_facts, raise_rlimits,
    BenchResult, Children,
};

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

const MIN_TIMED_SCANS: usize = 20;
const MAX_TIMED_SCANS: usize = 2_000;
/// Keep timing past `MIN_TIMED_SCANS` until this much wall time, so CPU time (counted in
/// 10 ms clock ticks by the kernel) is measured over enough ticks to mean something.
const MIN_BATCH_WALL: Duration = Duration::from_secs(1);

fn main() -> BenchResult<()> {
    let counts = counts_from_env("SCAN_BENCH_COUNTS")?;
    let max_extra = counts.iter().copied().max().unwrap_or(0);
    println!("## oomwatch processes-collector scan benchmark\n");
    print_machine_facts()?;
    check_kernel_limits(max_extra as u64)?;
    raise_rlimits(max_extra as u64)?;

    let exits = Arc::new(ExitsShared::default());
    Listener {
        procfs: "/proc".into(),
        rules: GroupRules::default(),
        shared: exits.clone(),
    }
    .spawn()?;
    let started = Instant::now();
    while !exits.up() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the process-events listener did not come up (run as root)".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut children = Children::default();
    let mut rows = Vec::new();
    for &extra in &counts {
        children.grow_to(extra)?;
        eprintln!("scan bench: {extra} extra processes running; measuring");
        rows.push(measure(extra, &exits)?);
    }
    let reaped = children.kill_and_reap();
    eprintln!("scan bench: killed and reaped {reaped} children");
    print_table(&rows);
    Ok(())
}

/// Wall times of a batch plus the CPU it burnt.
struct Batch {
    walls: Vec<Duration>,
    user: Duration,
    system: Duration,
    /// What the last pass saw (processes, or pids read by a floor).
    seen: u64,
    /// Heap allocations per pass.
    allocations: f64,
}

impl Batch {
    fn percentile(&self, pct: usize) -> Duration {
        let mut sorted = self.walls.clone();
        sorted.sort_unstable();
        let rank = (sorted.len() * pct).div_ceil(100).max(1);
        sorted.get(rank - 1).copied().unwrap_or_default()
    }

    fn cpu_per_pass(&self) -> Duration {
        (self.user + self.system) / self.walls.len().max(1) as u32
    }
}

/// Runs `pass` at least `MIN_TIMED_SCANS` times and until `MIN_BATCH_WALL` has passed.
fn time_batch(mut pass: impl FnMut() -> BenchResult<u64>) -> BenchResult<Batch> {
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let tick = |t: u64| Duration::from_nanos(t * 1_000_000_000 / ticks);
    // Reserved up front: the batch's own bookkeeping allocates nothing while it is timed.
    let mut walls = Vec::with_capacity(MAX_TIMED_SCANS);
    let mut seen = 0;
    let (user0, sys0) = cpu_ticks()?;
    let region = stats_alloc::Region::new(ALLOCATOR);
    let batch_start = Instant::now();
    while walls.len() < MIN_TIMED_SCANS
        || (batch_start.elapsed() < MIN_BATCH_WALL && walls.len() < MAX_TIMED_SCANS)
    {
        let start = Instant::now();
        seen = pass()?;
        walls.push(start.elapsed());
    }
    let allocations = region.change().allocations as f64 / walls.len().max(1) as f64;
    let (user1, sys1) = cpu_ticks()?;
    Ok(Batch {
        walls,
        user: tick(user1 - user0),
        system: tick(sys1 - sys0),
        seen,
        allocations,
    })
}

struct Row {
    extra: usize,
    cold_wall: Duration,
    cold_cpu: Duration,
    scan: Batch,
    floor: Batch,
    floor_with_stat: Batch,
    pins: u64,
    /// Kernel memory one pin holds, in bytes.
    pin_bytes: u64,
}

fn new_collector(state_dir: &Path, exits: &Arc<ExitsShared>) -> BenchResult<ProcessesCollector> {
    let (state, _outcome) = StateStore::open(Arc::new(oomwatch::state_dir::StateDir::unchecked(
        state_dir,
    )));
    let settings = ProcessesSettings {
        top_k: 10,
        top_rss: 10,
        table: TableSettings {
            max_auto_groups: 200,
            retention_secs: 3600.0,
            promote_after_secs: 30.0,
            restart_min_age_secs: 30.0,
            clock_ticks: rustix::param::clock_ticks_per_second(),
        },
        rules: GroupRules::default(),
        page_size: rustix::param::page_size() as u64,
        max_pinned: 32768,
    };
    let links = ProcessesLinks {
        state: Arc::new(state),
        live: Arc::new(LivePids::default()),
        exits: Some(exits.clone()),
        kmsg: None,
        events: Arc::new(EventLog::open(
            Arc::new(oomwatch::state_dir::StateDir::unchecked(state_dir)),
            1000,
        )),
    };
    Ok(ProcessesCollector::new(Roots::default(), settings, links))
}

/// One scan; returns the processes it saw (summed over the groups).
fn scan_once(collector: &mut ProcessesCollector) -> BenchResult<u64> {
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot)?;
    let sample = snapshot
        .processes
        .ok_or("the processes collector left no sample")?;
    Ok(sample.groups.iter().map(|g| g.processes).sum())
}

/// The raw floor: the optimized reader (`support::raw_proc`: getdents into a reused buffer,
/// each file opened by a stack-built path, read into a reused buffer, closed; no
/// allocation) reads each file of every pid; returns the pids whose files were all read
/// (one that exits mid-pass is skipped, as the collector does).
fn floor_once(reader: &mut RawProcReader, files: &[&CStr]) -> BenchResult<u64> {
    Ok(reader.pass(files)?.0)
}

/// What a pin keeps allocated in the kernel: its `struct file`, and the dentry and procfs
/// inode of the `oom_score_adj` it holds, which could otherwise be reclaimed.
fn pin_bytes() -> BenchResult<u64> {
    let slabinfo = std::fs::read_to_string("/proc/slabinfo")?;
    let size = |cache: &str| {
        slabinfo.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == cache).then(|| fields.nth(2)?.parse::<u64>().ok())?
        })
    };
    Ok(["filp", "dentry", "proc_inode_cache"]
        .iter()
        .filter_map(|cache| size(cache))
        .sum())
}

fn measure(extra: usize, exits: &Arc<ExitsShared>) -> BenchResult<Row> {
    let state_dir = tempfile::tempdir()?;
    let mut collector = new_collector(state_dir.path(), exits)?;
    let (user0, sys0) = cpu_ticks()?;
    let start = Instant::now();
    scan_once(&mut collector)?;
    let cold_wall = start.elapsed();
    let (user1, sys1) = cpu_ticks()?;
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let cold_cpu = Duration::from_nanos((user1 + sys1 - user0 - sys0) * 1_000_000_000 / ticks);

    scan_once(&mut collector)?; // warm-up: the cold scan filled the cache, this settles it
    let scan = time_batch(|| scan_once(&mut collector))?;
    let (_, pins) = collector.read_counts();

    let three = [c"statm", c"oom_score", c"oom_score_adj"];
    let four = [c"stat", c"statm", c"oom_score", c"oom_score_adj"];
    let mut reader = RawProcReader::new()?;
    floor_once(&mut reader, &three)?;
    let floor = time_batch(|| floor_once(&mut reader, &three))?;
    floor_once(&mut reader, &four)?;
    let floor_with_stat = time_batch(|| floor_once(&mut reader, &four))?;
    Ok(Row {
        extra,
        cold_wall,
        cold_cpu,
        scan,
        floor,
        floor_with_stat,
        pins,
        pin_bytes: pin_bytes()?,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "Wall times in ms per pass; CPU is the mean per pass over the batch (user+sys from \
         /proc/self/stat, 10 ms ticks); floor = the optimized raw reader: getdents of /proc \
         into a reused buffer, then open, read into a reused buffer and close statm, \
         oom_score, oom_score_adj per pid (floor allocs shows it allocates nothing); \
         floor+stat also reads stat. allocs = heap allocations per steady scan; pinned = processes held open, and the kernel memory \
         the pins hold (filp + dentry + proc inode each).\n"
    );
    println!(
        "| extra procs | procs seen | cold scan (CPU) | scans | scan median | scan p95 | \
         scan CPU (user/sys) | us/proc (median) | floor pids | floor median | floor p95 | \
         floor CPU | scan/floor | floor+stat median | scan/floor+stat | CPU scan/floor | \
         allocs/scan | floor allocs | pinned (kernel memory) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let scan_median = row.scan.percentile(50);
        let floor_median = row.floor.percentile(50);
        let floor4_median = row.floor_with_stat.percentile(50);
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
        let per_proc_us = scan_median.as_secs_f64() * 1e6 / row.scan.seen.max(1) as f64;
        let (user, system) = (row.scan.user.as_secs_f64(), row.scan.system.as_secs_f64());
        let user_pct = 100.0 * user / (user + system).max(1e-12);
        println!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} ({:.0}/{:.0}%) | {:.1} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {} ({:.1} MiB) |",
            row.extra,
            row.scan.seen,
            ms(row.cold_wall),
            ms(row.cold_cpu),
            row.scan.walls.len(),
            ms(scan_median),
            ms(row.scan.percentile(95)),
            ms(row.scan.cpu_per_pass()),
            user_pct,
            100.0 - user_pct,
            per_proc_us,
            row.floor.seen,
            ms(floor_median),
            ms(row.floor.percentile(95)),
            ms(row.floor.cpu_per_pass()),
            ratio(scan_median, floor_median),
            ms(floor4_median),
            ratio(scan_median, floor4_median),
            ratio(row.scan.cpu_per_pass(), row.floor.cpu_per_pass()),
            row.scan.allocations,
            row.floor.allocations,
            row.pins,
            (row.pins * row.pin_bytes) as f64 / (1 << 20) as f64,
        );
    }
}
