//! Live test on the real /proc that a steady scan allocates as much with 600 more
//! processes as without them: heap allocations are counted by a counting global allocator
//! (stats_alloc) around each scan of the `processes` collector, run as the exporter runs it
//! (with the process-events listener, so known instances take the pinned path). A scan's
//! allocations may grow with the number of groups and of changes, never with the number of
//! processes; docs/performance.md has the counts at 10,000.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use oomwatch::cli::Cli;
use oomwatch::collector::processes::{ProcessesCollector, ProcessesLinks};
use oomwatch::collector::Collector;
use oomwatch::config::Config;
use oomwatch::events::EventLog;
use oomwatch::exits::listener::Listener;
use oomwatch::exits::ExitsShared;
use oomwatch::groups::live::LivePids;
use oomwatch::groups::GroupRules;
use oomwatch::snapshot::Snapshot;
use oomwatch::state::StateStore;

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

const EXTRA: usize = 600;
const SCANS: usize = 10;

/// The collector with the exporter's default settings (as `oomwatch --state.dir DIR`
/// parses them), its exits from `exits`.
fn collector(state_dir: &std::path::Path, exits: &Arc<ExitsShared>) -> ProcessesCollector {
    let argv = [
        "oomwatch",
        "--state.dir",
        state_dir.to_str().expect("utf-8"),
    ];
    let args = Cli::try_parse_from(argv).expect("flags").serve;
    let config = Config::from_cli(&args).expect("config");
    let (state, _) = StateStore::open(Arc::new(oomwatch::state_dir::StateDir::unchecked(
        state_dir,
    )));
    let links = ProcessesLinks {
        state: Arc::new(state),
        live: Arc::new(LivePids::default()),
        exits: Some(exits.clone()),
        kmsg: None,
        events: Arc::new(EventLog::open(
            Arc::new(oomwatch::state_dir::StateDir::unchecked(state_dir)),
            config.events_max,
        )),
    };
    ProcessesCollector::new(config.roots, config.processes, links)
}

/// The fewest allocations over `SCANS` steady scans (after two to settle): the minimum,
/// because an unrelated process starting on the host makes one scan read it in full.
fn fewest_allocations(collector: &mut ProcessesCollector) -> (usize, u64) {
    for _ in 0..2 {
        collector.collect(&mut Snapshot::default()).expect("scan");
    }
    let mut fewest = usize::MAX;
    for _ in 0..SCANS {
        let mut snapshot = Snapshot::default();
        let region = stats_alloc::Region::new(ALLOCATOR);
        collector.collect(&mut snapshot).expect("scan");
        fewest = fewest.min(region.change().allocations);
        drop(snapshot);
    }
    (fewest, collector.read_counts().0.pinned)
}

#[test]
fn a_steady_scan_allocates_the_same_with_600_more_processes() {
    let exits = Arc::new(ExitsShared::default());
    Listener {
        procfs: "/proc".into(),
        rules: GroupRules::default(),
        shared: exits.clone(),
    }
    .spawn()
    .expect("listener thread");
    let started = Instant::now();
    while !exits.up() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the process-events listener did not come up (needs root; this test never skips)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = tempfile::tempdir().expect("state dir");
    let mut collector = collector(state.path(), &exits);
    let (without, pinned_without) = fewest_allocations(&mut collector);

    let children: Vec<Child> = (0..EXTRA)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep")
        })
        .collect();
    let (with, pinned_with) = fewest_allocations(&mut collector);
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!(
        "allocations per steady scan: {without} ({pinned_without} pinned reads), \
         {with} with {EXTRA} more processes ({pinned_with} pinned reads)"
    );
    assert!(
        pinned_with >= pinned_without + EXTRA as u64,
        "the extra processes were read through their pins"
    );
    assert!(
        with <= without + 20,
        "{with} allocations with {EXTRA} more processes against {without} without"
    );
}
