//! `oomwatch why <name|pid>`: why did it vanish? Reads the event log and the state file in
//! `--state.dir` and the live processes under `--path.procfs` directly (the exporter need
//! not be running), and prints the answer `incident::why` works out: the latest deaths of
//! that service with their cause, its restarts, and the OOM risk of its live instances.
//! Groups are named as the exporter names them (`--config.file` for named groups, the
//! kubelet's directories under `--path.rootfs` for pod containers). Exit 0
//! when the name or pid is known, 1 when nothing is known of it, 2 when the state
//! directory cannot be read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::events::state_dir_or_default;
use crate::cgroupfs::{tightest_limit, MemoryHierarchy};
use crate::cli::WhyArgs;
use crate::clock::unix_now;
use crate::config::load_group_rules;
use crate::events::{read_file_events, Event, EVENTS_FILE};
use crate::groups::pods::PodNames;
use crate::groups::reader::read_group_name;
use crate::groups::GroupRules;
use crate::incident::why::{explain, named_groups, LiveInstance, Target};
use crate::procfs::pid::{parse_oom_value, parse_pid_stat, parse_statm_resident_pages};
use crate::procfs::reader::{PidDir, ProcDir, ReadBuf};
use crate::roots::Roots;
use crate::state::{decode, PersistedState};

/// What `why` reads.
#[derive(Debug, Clone)]
pub struct WhyInputs {
    pub state_dir: PathBuf,
    pub roots: Roots,
    pub rules: GroupRules,
    /// Deaths and restarts shown.
    pub max_deaths: usize,
}

/// Runs `oomwatch why`; returns the exit code.
pub fn run(args: &WhyArgs) -> u8 {
    let roots = args.paths.roots();
    // Groups named as the exporter names them, pod containers included.
    let rules = match &args.config_file {
        Some(path) => load_group_rules(path).map_err(|e| e.to_string()),
        None => Ok(GroupRules::default()),
    }
    .map(|rules| rules.with_pod_names(Arc::new(PodNames::new(&roots))));
    match (rules, state_dir_or_default(args.state_dir.as_ref())) {
        (Ok(rules), Ok(state_dir)) => {
            let inputs = WhyInputs {
                state_dir,
                roots,
                rules,
                max_deaths: args.deaths,
            };
            answer(&args.target, &inputs, unix_now())
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("oomwatch why: {e}");
            2
        }
    }
}

/// Prints the answer for `target`; returns the exit code.
pub fn answer(target: &str, inputs: &WhyInputs, now: f64) -> u8 {
    let state = match read_state(&inputs.state_dir) {
        Ok(state) => state,
        Err(message) => {
            eprintln!("oomwatch why: {message}; check --state.dir");
            return 2;
        }
    };
    let live = read_live(&inputs.roots, &inputs.rules);
    let target = Target::parse(target);
    let events_path = inputs.state_dir.join(EVENTS_FILE);
    let (events, extent) = match read_relevant(&events_path, &target, &state, &live) {
        Ok(read) => read,
        Err(e) => {
            eprintln!(
                "oomwatch why: cannot read {} ({e}); check --state.dir",
                events_path.display()
            );
            return 2;
        }
    };
    let mut explanation = explain(&target, &events, &state, &live, inputs.max_deaths);
    (explanation.events_in_log, explanation.log_starts) = extent;
    print!("{}", explanation.to_text(now));
    if explanation.groups.is_empty() {
        1
    } else {
        0
    }
}

/// How many events the log holds, and the oldest one's time.
type LogExtent = (usize, Option<f64>);

/// The events of the log that concern `target` (those of the groups it names, in the log,
/// the state or now, and the reboots), streamed twice so that only they are held; with
/// how many events the log holds and the oldest one's time.
fn read_relevant(
    path: &Path,
    target: &Target,
    state: &PersistedState,
    live: &[LiveInstance],
) -> std::io::Result<(Vec<Event>, LogExtent)> {
    let mut groups: BTreeSet<String> = named_groups(target, &[], state, live);
    let (mut count, mut first) = (0, None);
    read_file_events(path, |line| {
        count += 1;
        first = first.or(Some(line.head.time));
        if let Some(group) = line.event().and_then(|e| target.group_named_by(&e)) {
            groups.insert(group);
        }
        false
    })?;
    let (events, _) = read_file_events(path, |line| {
        line.head.kind == "reboot"
            || line
                .head
                .group
                .as_deref()
                .is_some_and(|g| groups.contains(g))
    })?;
    Ok((events, (count, first)))
}

/// The state file; a missing one is an empty state (nothing counted yet).
fn read_state(dir: &Path) -> Result<PersistedState, String> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PersistedState::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Every user-space process now, with its group, OOM figures and memory limit, ranked by
/// oom_score (1: the kernel's first choice). Processes that vanish or cannot be read are
/// left out.
fn read_live(roots: &Roots, rules: &GroupRules) -> Vec<LiveInstance> {
    let Ok(mut proc_dir) = ProcDir::open(roots.procfs()) else {
        eprintln!(
            "oomwatch why: cannot list {}; live instances are not shown (check --path.procfs)",
            roots.procfs().display()
        );
        return Vec::new();
    };
    let mut pids = Vec::new();
    if proc_dir.list_pids(&mut pids).is_err() {
        return Vec::new();
    }
    let hierarchy = MemoryHierarchy::detect(roots);
    let page_size = rustix::param::page_size() as u64;
    let (mut buf, mut cmdline) = (ReadBuf::default(), String::new());
    let mut live: Vec<LiveInstance> = pids
        .iter()
        .filter_map(|&pid| {
            let dir = proc_dir.open_pid(pid).ok()?;
            read_instance(&dir, rules, hierarchy.as_ref(), &mut buf, &mut cmdline)
        })
        .map(|mut l| {
            l.resident_bytes = l.resident_bytes.saturating_mul(page_size);
            l
        })
        .collect();
    live.sort_by(|a, b| {
        b.oom_score
            .cmp(&a.oom_score)
            .then(b.resident_bytes.cmp(&a.resident_bytes))
    });
    for (i, l) in live.iter_mut().enumerate() {
        l.rank = i + 1;
    }
    live
}

/// One process; None for kernel threads and processes gone or unreadable. RSS in pages.
fn read_instance(
    dir: &PidDir,
    rules: &GroupRules,
    hierarchy: Option<&MemoryHierarchy>,
    buf: &mut ReadBuf,
    cmdline: &mut String,
) -> Option<LiveInstance> {
    let stat = parse_pid_stat(dir.read(c"stat", buf).ok()?).ok()?;
    if stat.kernel_thread {
        return None;
    }
    let comm = String::from_utf8_lossy(stat.comm).into_owned();
    let resident_pages = parse_statm_resident_pages(dir.read(c"statm", buf).ok()?).ok()?;
    let oom_score = parse_oom_value("oom_score", dir.read(c"oom_score", buf).ok()?).ok()?;
    let oom_score_adj =
        parse_oom_value("oom_score_adj", dir.read(c"oom_score_adj", buf).ok()?).ok()?;
    let mut memcg = None;
    let (group, _) = read_group_name(dir, &comm, rules, buf, cmdline, |cgroups| {
        let path = match hierarchy {
            Some(MemoryHierarchy::V1 { .. }) => cgroups.memory_v1,
            Some(MemoryHierarchy::V2 { .. }) => cgroups.unified,
            None => None,
        };
        memcg = path
            .filter(|path| *path != b"/")
            .map(|path| String::from_utf8_lossy(path).into_owned());
    })
    .ok()?;
    let limit = match (hierarchy, &memcg) {
        (Some(hierarchy), Some(memcg)) => tightest_limit(memcg, |c| hierarchy.read(c).ok()),
        _ => None,
    };
    Some(LiveInstance {
        pid: dir.pid(),
        comm,
        group,
        oom_score,
        oom_score_adj,
        resident_bytes: resident_pages,
        rank: 0,
        memcg,
        limit,
    })
}
