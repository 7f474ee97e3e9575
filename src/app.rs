//! `run`: wires the validated configuration into state, collectors, the scanner and the
//! server; records the boot (and how the previous one ended) and a heartbeat; shuts down
//! in order (stop serving, then write the clean-stop marker). Nothing here parses.

use std::sync::Arc;

use crate::collector::boot::{read_boot_id, BootCollector};
use crate::collector::cgroups::CgroupsCollector;
use crate::collector::exits::ExitsCollector;
use crate::collector::kmsg::KmsgCollector;
use crate::collector::meminfo::MeminfoCollector;
use crate::collector::pressure::PressureCollector;
use crate::collector::processes::{ProcessesCollector, ProcessesLinks};
use crate::collector::vmstat::VmstatCollector;
use crate::collector::Collector;
use crate::config::Config;
use crate::events::{Event, EventKind, EventLog};
use crate::exits::listener::Listener;
use crate::exits::ExitsShared;
use crate::groups::live::LivePids;
use crate::kmsg::attribution::VictimNamer;
use crate::kmsg::follower::{Follower, KmsgShared};
use crate::procfs::host::parse_stat_btime;
use crate::reboot::history::Evidence;
use crate::reboot::{pstore, wtmp, wtmpdb};
use crate::scan::Scanner;
use crate::server::handlers::Handler;
use crate::server::scrape::SharedScrape;
use crate::server::{self, ServeError};
use crate::state::{LoadOutcome, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the exporter until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), RunError> {
    raise_open_file_limit();
    let (state, outcome) = StateStore::open(&config.state_dir);
    match &outcome {
        LoadOutcome::Recovered { moved_to, reason } => tracing::warn!(
            moved_to = %moved_to.display(), reason = %reason,
            "the state file was corrupt and was moved aside; counters restart from zero"
        ),
        LoadOutcome::Fresh => {
            tracing::info!(dir = %config.state_dir.display(), "new state directory")
        }
        LoadOutcome::Loaded => {}
        LoadOutcome::Unusable { reason } => tracing::error!(
            dir = %config.state_dir.display(), reason = %reason,
            "the state directory (--state.dir) is unusable; serving on state kept in memory: \
             counts restart from zero and will not survive a restart until this is fixed"
        ),
    }
    let state = Arc::new(state);
    let events = Arc::new(EventLog::open(&config.state_dir, config.events_max));
    // The boot's start (btime), read once: it dates the boot and the kernel log's kills.
    let btime = std::fs::read(config.roots.proc_file("stat"))
        .ok()
        .and_then(|bytes| parse_stat_btime(&bytes).ok())
        .map(|btime| btime as f64);
    let boot_id = start_boot(&config, &state, &events, btime);
    start_heartbeat(state.clone(), config.heartbeat_interval);

    let live = Arc::new(LivePids::default());
    let kmsg = Arc::new(KmsgShared::new(state.snapshot().kmsg));
    if config.collectors.contains(&"kmsg") {
        let log = (events.clone(), boot_id);
        start_kmsg_follower(&config, &state, &kmsg, &live, btime, log);
    }
    let exits = Arc::new(ExitsShared::default());
    if config.collectors.contains(&"exits") {
        let listener = Listener {
            procfs: config.roots.procfs().to_path_buf(),
            rules: config.processes.rules.clone(),
            shared: exits.clone(),
        };
        if let Err(e) = listener.spawn() {
            tracing::error!(error = %e, "cannot start the process-events thread; exits are inferred from scans");
        }
    }
    let links = ProcessesLinks {
        state: state.clone(),
        live: live.clone(),
        exits: config.collectors.contains(&"exits").then(|| exits.clone()),
        kmsg: config.collectors.contains(&"kmsg").then(|| kmsg.clone()),
        events: events.clone(),
    };
    let collectors = build_collectors(&config, &state, &links, &kmsg, &exits);
    let scanner = Scanner::new(collectors, state.clone()).with_event_log(events.clone());
    let scrape = SharedScrape::new(scanner);
    let handler = Arc::new(
        Handler::new(
            config.telemetry_path.clone(),
            config.max_requests,
            scrape,
            &config.web,
        )
        .with_event_log(events),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let listeners = server::bind(&config.listen).await?;
        for listener in &listeners {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(address = %address, telemetry_path = %config.telemetry_path, "listening");
            }
        }
        handler.set_ready(true);
        server::serve(
            listeners,
            handler.clone(),
            config.web.tls.clone(),
            shutdown_signal(),
        )
        .await;
        Ok::<_, RunError>(())
    })?;
    // The clean-stop marker: the next boot will know this one was shut down on purpose.
    state.update(|s| s.boot.clean_stop = Some(unix_now()));
    tracing::info!("stopped");
    Ok(())
}

/// Records the current boot in the state. The first start in a new boot (a boot_id other
/// than the state's; btime never decides) classifies how the previous boot ended, counts
/// the reboot (in the state and the event log), and forgets the previous boot's instances
/// and kernel log position. Returns the boot_id, when it can be read.
fn start_boot(
    config: &Config,
    state: &StateStore,
    events: &EventLog,
    started_at: Option<f64>,
) -> Option<String> {
    let boot_id = match read_boot_id(&config.roots) {
        Ok(boot_id) => boot_id,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the boot_id; reboots cannot be detected");
            return None;
        }
    };
    let known = state.read(|s| s.boot_id.clone());
    let rebooted = known.as_ref().is_some_and(|known| *known != boot_id);
    // Outside the state lock: reading pstore and wtmp is I/O. At the first start the
    // pstore records already there are read too, to be remembered as no evidence.
    let evidence = match (rebooted, started_at) {
        (true, Some(started_at)) => gather_evidence(config, started_at),
        _ if known.is_none() => Evidence {
            pstore: pstore_records(config),
            ..Evidence::default()
        },
        _ => Evidence::default(),
    };
    let mut reboot = None;
    state.update(|s| {
        match (&s.boot_id, started_at) {
            (None, Some(started_at)) => {
                s.boot.first_boot(started_at);
                s.boot.remember_pstore(&evidence.pstore);
            }
            (Some(previous), Some(started_at)) if *previous != boot_id => {
                let event = s
                    .boot
                    .new_boot(Some(previous.clone()), started_at, &evidence);
                if event.unexpected {
                    tracing::warn!(previous_boot_id = %previous, cause = %event.cause,
                        evidence = %event.evidence, downtime_seconds = ?event.downtime_seconds,
                        "the previous boot ended unexpectedly");
                } else {
                    tracing::info!(previous_boot_id = %previous, cause = %event.cause,
                        evidence = %event.evidence, downtime_seconds = ?event.downtime_seconds,
                        "first start in a new boot");
                }
                s.groups.start_new_boot();
                s.kmsg.start_new_boot();
                reboot = Some(event);
            }
            // Without btime the reboot cannot be dated, but the previous boot's instances
            // and kernel log position must still be forgotten, or this boot's records
            // would be taken for replays and its kills lost.
            (Some(previous), None) if *previous != boot_id => {
                tracing::warn!(previous_boot_id = %previous,
                    "a new boot, but /proc/stat has no btime: the reboot is not classified");
                s.groups.start_new_boot();
                s.kmsg.start_new_boot();
            }
            // A state file from before the boot history existed.
            (Some(_), Some(started_at)) if s.boot.boots_total == 0 => s.boot.first_boot(started_at),
            _ => {}
        }
        s.boot_id = Some(boot_id.clone());
        // This run has not stopped yet; it is alive now.
        s.boot.clean_stop = None;
        s.boot.last_heartbeat = Some(unix_now());
    });
    if let Some(event) = reboot {
        events.append(&[Event {
            time: event.at,
            kind: EventKind::Reboot {
                boot_id: boot_id.clone(),
                previous_boot_id: event.previous_boot_id,
                unexpected: event.unexpected,
                cause: event.cause,
                evidence: event.evidence,
                downtime_seconds: event.downtime_seconds,
            },
        }]);
    }
    Some(boot_id)
}

fn pstore_records(config: &Config) -> Vec<pstore::PstoreRecord> {
    pstore::read_records(&[
        &config.roots.sysfs().join("fs/pstore"),
        &config.roots.root_file("/var/lib/systemd/pstore"),
    ])
}

fn gather_evidence(config: &Config, started_at: f64) -> Evidence {
    let pstore = pstore_records(config);
    // wtmpdb where the distribution moved to it (Debian 13, recent Ubuntu): when its
    // database exists it alone speaks, as the legacy file there is stale or absent; a
    // database that gives no verdict (a pending WAL, a malformed file) gives none.
    let wtmpdb_path = config.roots.root_file(wtmpdb::PATH);
    let mut from_wtmpdb = false;
    let wtmp = match wtmpdb::read_verdict(&wtmpdb_path, started_at) {
        Ok(verdict) => {
            from_wtmpdb = true;
            verdict
        }
        Err(e) if e.is_not_found() => {
            let wtmp_path = config.roots.root_file("/var/log/wtmp");
            match std::fs::read(&wtmp_path) {
                Ok(bytes) => wtmp::previous_boot_verdict(&wtmp::parse(&bytes), started_at),
                Err(e) => {
                    tracing::debug!(path = %wtmp_path.display(), error = %e, "no wtmp evidence");
                    None
                }
            }
        }
        Err(e @ wtmpdb::ReadError::Pending { .. }) => {
            tracing::info!(error = %e, "no wtmpdb evidence");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "no wtmpdb evidence");
            None
        }
    };
    Evidence {
        pstore,
        wtmp,
        wtmpdb: from_wtmpdb,
    }
}

/// Raises the soft open-file limit to the hard one (as Go programs do at start), so
/// connections and /proc descriptors are bounded by the hard limit the operator set, not
/// by a 1024 soft default.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Records the exporter's last sign of life every `interval`, on its own thread.
fn start_heartbeat(state: Arc<StateStore>, interval: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            state.update(|s| s.boot.last_heartbeat = Some(unix_now()));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the heartbeat thread; the downtime of a crash will be overstated");
    }
}

fn start_kmsg_follower(
    config: &Config,
    state: &Arc<StateStore>,
    shared: &Arc<KmsgShared>,
    live: &Arc<LivePids>,
    btime: Option<f64>,
    (events, boot_id): (Arc<EventLog>, Option<String>),
) {
    let boot_time_seconds = btime.unwrap_or_else(|| {
        tracing::warn!("cannot read btime from /proc/stat; OOM kill times count from the epoch");
        0.0
    });
    let follower = Follower {
        path: config.kmsg_path.clone(),
        state: state.clone(),
        shared: shared.clone(),
        namer: VictimNamer {
            rules: config.processes.rules.clone(),
            live: live.clone(),
            clock_ticks: config.processes.table.clock_ticks,
        },
        boot_time_seconds,
        events,
        boot_id,
    };
    if let Err(e) = follower.spawn() {
        tracing::error!(error = %e, "cannot start the kernel log thread; OOM victims will not be named");
    }
}

fn build_collectors(
    config: &Config,
    state: &Arc<StateStore>,
    links: &ProcessesLinks,
    kmsg: &Arc<KmsgShared>,
    exits: &Arc<ExitsShared>,
) -> Vec<Box<dyn Collector>> {
    let roots = &config.roots;
    config
        .collectors
        .iter()
        .filter_map(|name| -> Option<Box<dyn Collector>> {
            Some(match *name {
                "vmstat" => Box::new(VmstatCollector::new(roots.clone())),
                "meminfo" => Box::new(MeminfoCollector::new(roots.clone())),
                "pressure" => Box::new(PressureCollector::new(roots.clone())),
                "boot" => Box::new(BootCollector::new(roots.clone(), state.clone())),
                "processes" => Box::new(ProcessesCollector::new(
                    roots.clone(),
                    config.processes.clone(),
                    links.clone(),
                )),
                "exits" => Box::new(ExitsCollector::new(exits.clone())),
                "cgroups" => Box::new(CgroupsCollector::new(roots.clone())),
                "kmsg" => Box::new(KmsgCollector::new(kmsg.clone())),
                _ => return None,
            })
        })
        .collect()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}
