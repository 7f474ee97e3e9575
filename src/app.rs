//! `run`: wires the validated configuration into the listeners, state, the event log, the
//! threads that feed the collectors (kernel log, process events, D-Bus, heartbeat), the
//! collectors, the scanner and the server; shuts down in order (stop serving, then write
//! the clean-stop marker). The listeners are bound first, so a start that cannot listen
//! (a port in use) fails before the state directory is created or written. Nothing here
//! parses or decides; each step is a call into the module that owns it.

use std::sync::Arc;

use crate::collector::boot::startup::{record_boot, record_clean_stop, start_heartbeat};
use crate::collector::kmsg::follower::Follower;
use crate::collector::kmsg::intake::IntakeLinks;
use crate::collector::processes::ProcessesLinks;
use crate::collector::systemd::bus::BusThread;
use crate::collector::systemd::SystemdShared;
use crate::collector::{registry, Sources};
use crate::config::Config;
use crate::events::EventLog;
use crate::exits::listener::Listener;
use crate::exits::ExitsShared;
use crate::groups::live::LivePids;
use crate::kills::attribution::VictimNamer;
use crate::kills::counters::KernelCounters;
use crate::kills::shared::KmsgShared;
use crate::procfs::host::parse_stat_btime;
use crate::scan::Scanner;
use crate::server::handlers::Handler;
use crate::server::scrape::SharedScrape;
use crate::server::{self, ServeError};
use crate::state::{LoadOutcome, StateStore};
use crate::state_dir::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    StateDir(#[from] crate::state_dir::StateDirError),
}

impl RunError {
    /// The process's exit code: 2 for what the operator must fix in the flags, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::StateDir(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the exporter until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), RunError> {
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    // Before anything is written: a port in use leaves the state directory untouched.
    let listeners = runtime.block_on(server::bind(&config.listen))?;
    let dir = Arc::new(StateDir::open(
        &config.state_dir,
        config.state_dir_strictness,
    )?);
    let state = Arc::new(open_state(&config, dir.clone()));
    let events = Arc::new(EventLog::open(dir, config.events_max));
    // The boot's start (btime), read once: it dates the boot and the kernel log's kills.
    let btime = std::fs::read(config.roots.proc_file("stat"))
        .ok()
        .and_then(|bytes| parse_stat_btime(&bytes).ok())
        .map(|btime| btime as f64);
    let boot_id = record_boot(&config.roots, &state, &events, btime);
    start_heartbeat(state.clone(), config.heartbeat_interval);

    let sources = start_sources(&config, &state, &events, btime, boot_id);
    let collectors = registry::build(&config.collectors, &sources);
    let scanner = Scanner::new(collectors, state.clone()).with_event_log(events.clone());
    let handler = Arc::new(
        Handler::new(
            config.telemetry_path.clone(),
            config.max_requests,
            SharedScrape::new(scanner),
            &config.web,
        )
        .with_event_log(events.clone()),
    );
    serve(&runtime, &config, listeners, handler);
    if let Err(e) = events.close() {
        tracing::warn!(error = %e, pending = events.pending(), "cannot write the last events at stop; a restart re-reads the kernel log's kills");
    }
    record_clean_stop(&state);
    tracing::info!("stopped");
    Ok(())
}

/// Opens the state directory, saying what was found there.
fn open_state(config: &Config, dir: Arc<StateDir>) -> StateStore {
    let (state, outcome) = StateStore::open(dir);
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
    state
}

/// Starts the threads that feed the enabled collectors (the kernel-log follower, the
/// process-events listener) and returns what the collectors are built from.
fn start_sources(
    config: &Config,
    state: &Arc<StateStore>,
    events: &Arc<EventLog>,
    btime: Option<f64>,
    boot_id: Option<String>,
) -> Sources {
    let enabled = |name| config.collectors.contains(&name);
    let live = Arc::new(LivePids::default());
    let kmsg = Arc::new(KmsgShared::new(state.snapshot().kmsg));
    if enabled("kmsg") {
        start_kmsg_follower(
            config,
            state,
            &kmsg,
            &live,
            btime,
            (events.clone(), boot_id),
        );
    }
    let exits = Arc::new(ExitsShared::default());
    if enabled("exits") {
        let listener = Listener {
            procfs: config.roots.procfs().to_path_buf(),
            rules: config.processes.rules.clone(),
            shared: exits.clone(),
        };
        if let Err(e) = listener.spawn() {
            tracing::error!(error = %e, "cannot start the process-events thread; exits are inferred from scans");
        }
    }
    let systemd = Arc::new(SystemdShared::new(state.snapshot().oomd));
    if enabled("oomd") || enabled("systemd") {
        let socket = config.roots.root_file("/run/dbus/system_bus_socket");
        let env = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok();
        let bus = BusThread {
            address: crate::dbus::system_bus_address(env.as_deref(), &socket),
            shared: systemd.clone(),
            kmsg: kmsg.clone(),
            state: state.clone(),
            events: events.clone(),
            rules: config.processes.rules.clone(),
            oomd: enabled("oomd"),
        };
        match bus.spawn() {
            Ok(_) => systemd.wait_first_attempt(std::time::Duration::from_secs(2)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the D-Bus thread; systemd-oomd's kills and systemd's unit verdicts are not available")
            }
        }
    }
    let links = ProcessesLinks {
        state: state.clone(),
        live,
        exits: enabled("exits").then(|| exits.clone()),
        kmsg: enabled("kmsg").then(|| kmsg.clone()),
        events: events.clone(),
    };
    Sources {
        roots: config.roots.clone(),
        processes: config.processes.clone(),
        links,
        kmsg,
        victims_retention_secs: config.victims_retention.as_secs_f64(),
        exits,
        systemd,
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
        links: IntakeLinks {
            state: state.clone(),
            shared: shared.clone(),
            namer: VictimNamer {
                rules: config.processes.rules.clone(),
                live: live.clone(),
                clock_ticks: config.processes.table.clock_ticks,
            },
            counters: KernelCounters::new(config.roots.clone()),
            victims_retention_secs: config.victims_retention.as_secs_f64(),
            boot_time_seconds,
            events,
            boot_id,
            proc_root: config.roots.procfs().to_path_buf(),
        },
    };
    if let Err(e) = follower.spawn() {
        tracing::error!(error = %e, "cannot start the kernel log thread; OOM victims will not be named");
    }
}

/// Serves on the bound listeners until a shutdown signal.
fn serve(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    listeners: Vec<tokio::net::TcpListener>,
    handler: Arc<Handler>,
) {
    for listener in &listeners {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(address = %address, telemetry_path = %config.telemetry_path, "listening");
        }
    }
    handler.set_ready(true);
    runtime.block_on(server::serve(
        listeners,
        handler.clone(),
        config.web.tls.clone(),
        shutdown_signal(),
    ));
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
