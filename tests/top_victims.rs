//! Live test on the real /proc that the cheap scan never gets the next OOM victims wrong.
//!
//! A scan reads a known instance through its pinned `oom_score_adj` and its statm, and
//! reads oom_score and stat again only when they can have changed (see
//! src/collector/processes/instances.rs). Here six real processes with high
//! oom_score_adj (so they are the host's top victims) go through what changes a score or
//! a name between two scrapes: oom_score_adj raised, RSS grown, an exemption with -1000,
//! a rename by prctl, a death. After each, the exported top-K (pid, comm, oom_score,
//! oom_score_adj, resident bytes, in order) must equal what /proc says when every file is
//! read, and the exporter must be holding its pins.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{eventually, sample, Exporter};

const TOP: usize = 4;

/// A python process that grows by 64 MiB on SIGUSR1 and names itself `renamed-victim`
/// (prctl PR_SET_NAME) on SIGUSR2; it prints a line after each, and one when ready.
const VICTIM: &str = r#"
import ctypes, signal, sys
blocks = []
def grow(*_):
    block = bytearray(64 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    blocks.append(block)
    print("grown", flush=True)
def rename(*_):
    ctypes.CDLL(None).prctl(15, b"renamed-victim", 0, 0, 0)
    print("renamed", flush=True)
signal.signal(signal.SIGUSR1, grow)
signal.signal(signal.SIGUSR2, rename)
print("ready", flush=True)
while True:
    signal.pause()
"#;

struct Victim {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Victim {
    fn start(adj: i32) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", VICTIM])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut victim = Self { child, out };
        victim.expect_line("ready");
        victim.set_adj(adj);
        victim
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn set_adj(&self, adj: i32) {
        std::fs::write(
            format!("/proc/{}/oom_score_adj", self.pid()),
            adj.to_string(),
        )
        .expect("write oom_score_adj");
    }

    fn signal(&mut self, signal: rustix::process::Signal, then: &str) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal");
        self.expect_line(then);
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("victim output");
        assert_eq!(line.trim(), want, "victim {} said {line:?}", self.pid());
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One next victim as exported or as /proc says: pid, comm, score, adj, resident bytes.
type Entry = (u32, String, i64, i64, u64);

/// The exported top-K, best first.
fn exported(exposition: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = exposition
        .lines()
        .filter(|line| line.starts_with("oomwatch_process_oom_score{"))
        .filter_map(|line| {
            let label = |key: &str| {
                let start = line.find(&format!("{key}=\""))? + key.len() + 2;
                let end = start + line[start..].find('"')?;
                Some(line[start..end].to_owned())
            };
            let pid: u32 = label("pid")?.parse().ok()?;
            let labels = [("pid", pid.to_string())];
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let adj = sample(exposition, "oomwatch_process_oom_score_adj", &labels)?;
            let rss = sample(
                exposition,
                "oomwatch_process_resident_memory_bytes",
                &labels,
            )?;
            let score: f64 = line.rsplit_once(' ')?.1.parse().ok()?;
            Some((pid, label("comm")?, score as i64, adj as i64, rss as u64))
        })
        .collect();
    entries.sort_by(rank);
    entries
}

/// The exporter's order: oom_score, then RSS, descending; then pid ascending.
fn rank(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    b.2.cmp(&a.2).then(b.4.cmp(&a.4)).then(a.0.cmp(&b.0))
}

/// The top-K of every process, from all of /proc read in full.
fn truth() -> Vec<Entry> {
    let page = rustix::param::page_size() as u64;
    let mut all: Vec<Entry> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let read = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}")).ok();
            let stat = read("stat")?;
            let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
            let flags: u64 = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(6)?
                .parse()
                .ok()?;
            if flags & 0x0020_0000 != 0 {
                return None; // a kernel thread
            }
            let resident: u64 = read("statm")?.split(' ').nth(1)?.parse().ok()?;
            let score = read("oom_score")?.trim().parse().ok()?;
            let adj = read("oom_score_adj")?.trim().parse().ok()?;
            Some((pid, comm, score, adj, resident * page))
        })
        .collect();
    all.sort_by(rank);
    all.truncate(TOP);
    all
}

/// The next scrape must equal /proc: every change here is in the kernel before the step
/// returns, and a scan must never lag behind one.
fn agrees(exporter: &Exporter, step: &str) {
    let export = exported(&exporter.scrape());
    let truth = truth();
    assert_eq!(
        export, truth,
        "{step}: exported top-{TOP} differs from /proc"
    );
}

/// Scrapes until the export equals /proc, for a change the exporter learns from a process
/// event that may arrive just after the scan.
fn agrees_soon(exporter: &Exporter, step: &str) {
    let mut last = (Vec::new(), Vec::new());
    let agreed = eventually(Duration::from_secs(5), || {
        let export = exported(&exporter.scrape());
        let truth = truth();
        let same = export == truth;
        last = (export, truth);
        same.then_some(())
    });
    assert!(
        agreed.is_some(),
        "{step}: exported top-{TOP} {:?} differs from /proc {:?}",
        last.0,
        last.1
    );
}

#[test]
fn the_cheap_scan_keeps_the_top_victims_exact_through_every_change() {
    common::require(
        rustix::process::geteuid().is_root(),
        "root (to write oom_score_adj)",
    );
    let state = tempfile::tempdir().expect("state dir");
    let exporter = Exporter::start(&[
        "--state.dir",
        state.path().to_str().expect("utf-8"),
        "--processes.top",
        &TOP.to_string(),
    ]);
    let mut victims: Vec<Victim> = [990, 980, 970, 960, 950, 940].map(Victim::start).into();
    agrees(&exporter, "six victims started");
    let pinned = sample(&exporter.scrape(), "oomwatch_processes_pinned", &[]).unwrap_or(0.0);
    assert!(pinned >= 6.0, "the exporter pins what it scans: {pinned}");

    victims[5].set_adj(995);
    agrees(&exporter, "the last raised to oom_score_adj 995");

    victims[1].set_adj(970);
    victims[2].signal(rustix::process::Signal::USR1, "grown");
    victims[2].signal(rustix::process::Signal::USR1, "grown");
    agrees(&exporter, "two equal adjs, one grown by 128 MiB");

    // Lowering it below where it started (-1000, the exemption) needs CAP_SYS_RESOURCE,
    // which a container may withhold; back to 0 drops it as far down the ranking.
    victims[5].set_adj(0);
    agrees(&exporter, "the first lowered to oom_score_adj 0");

    victims[0].signal(rustix::process::Signal::USR2, "renamed");
    agrees_soon(&exporter, "the first renamed by prctl");
    let renamed = victims[0].pid().to_string();
    let exposition = exporter.scrape();
    let labels = [
        ("pid", renamed.as_str()),
        ("comm", "renamed-victim"),
        ("group", "renamed-victim"),
    ];
    assert!(
        sample(&exposition, "oomwatch_process_oom_score", &labels).is_some(),
        "the rename moves it to its new comm group"
    );

    let dead = victims.remove(0);
    drop(dead);
    agrees(&exporter, "the first killed");

    let pinned_after = sample(&exporter.scrape(), "oomwatch_processes_pinned", &[]).unwrap_or(0.0);
    assert!(
        pinned_after >= 5.0,
        "pins held after the changes: {pinned_after}"
    );
    exporter.stop();
}
