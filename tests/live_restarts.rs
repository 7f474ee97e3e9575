//! Live test on the real /proc: a configured group whose process a test watchdog kills and
//! restarts twice shows `oomwatch_group_restarts_total` 2 and processes 1; the count
//! survives a SIGKILL of the exporter; a process given oom_score_adj 1000 comes first in
//! the top-K. The services are links to /bin/sleep under distinctive names (so their comm
//! is theirs alone: a per-run suffix keeps a concurrent run of this file, by another user,
//! out of this one), started by the test and killed when dropped, a failed test included.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::{eventually, sample, Exporter};

struct Service {
    binary: PathBuf,
    comm: String,
}

/// A running service instance, killed and reaped when dropped.
struct Running(Child);

impl Running {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Service {
    /// `prefix` plus this run's suffix, within the kernel's 15-byte comm.
    fn install(dir: &Path, prefix: &str) -> Self {
        let comm = format!("{prefix}{}", std::process::id() % 100_000);
        assert!(comm.len() <= 15, "{comm}");
        let binary = common::named_program(dir, "/bin/sleep", &comm);
        Self { binary, comm }
    }

    fn start(&self) -> Running {
        Running(
            Command::new(&self.binary)
                .arg("600")
                .spawn()
                .expect("service starts"),
        )
    }
}

fn kill(child: Running) {
    drop(child);
}

fn processes(exposition: &str, group: &str) -> Option<f64> {
    sample(exposition, "oomwatch_group_processes", &[("group", group)])
}

fn restarts(exposition: &str, group: &str) -> Option<f64> {
    sample(
        exposition,
        "oomwatch_group_restarts_total",
        &[("group", group)],
    )
}

#[test]
fn watchdog_restarts_are_counted_and_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp");
    let service = Service::install(dir.path(), "oomw-svc");
    let config = dir.path().join("oomwatch.yml");
    let rules = format!("groups:\n  - name: svc\n    comm: '^{}$'\n", service.comm);
    std::fs::write(&config, rules).expect("config");
    let state = dir.path().join("state");
    let args = [
        "--config.file",
        config.to_str().expect("utf-8"),
        "--state.dir",
        state.to_str().expect("utf-8"),
        "--restarts.min-age",
        "1s",
    ];
    let exporter = Exporter::start(&args);
    let before = exporter.scrape();
    assert_eq!(
        processes(&before, "svc"),
        Some(0.0),
        "a configured group exists while down"
    );

    // The watchdog's log: PID present...
    let first = service.start();
    std::thread::sleep(Duration::from_millis(1500));
    let up = exporter.scrape();
    assert_eq!(processes(&up, "svc"), Some(1.0));
    assert_eq!(restarts(&up, "svc"), Some(0.0));

    // ... PID gone, "NOT running" (seen by a scrape) ...
    kill(first);
    let down = exporter.scrape();
    assert_eq!(processes(&down, "svc"), Some(0.0));
    assert_eq!(restarts(&down, "svc"), Some(0.0));

    // ... started again: a restart once the kill is settled (a SIGKILL waits up to 3 s
    // for the kernel log to say whether the OOM killer sent it).
    let second = service.start();
    let again = eventually(Duration::from_secs(6), || {
        let body = exporter.scrape();
        (restarts(&body, "svc") == Some(1.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the restart was not counted:\n{}", exporter.scrape()));
    assert_eq!(processes(&again, "svc"), Some(1.0));

    // A death and a restart between two scrapes count too. The instance is seen alive past
    // --restarts.min-age first: without the exit listener (not root) its end is `unknown`,
    // a restart only after a service seen up that long.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(processes(&exporter.scrape(), "svc"), Some(1.0));
    kill(second);
    let third = service.start();
    let twice = eventually(Duration::from_secs(6), || {
        let body = exporter.scrape();
        (restarts(&body, "svc") == Some(2.0)).then_some(body)
    })
    .unwrap_or_else(|| panic!("the second restart was not counted:\n{}", exporter.scrape()));
    assert_eq!(processes(&twice, "svc"), Some(1.0));

    // The exporter dies without a chance to flush; it comes back with the count.
    exporter.kill();
    let exporter = Exporter::start(&args);
    let back = exporter.scrape();
    assert_eq!(restarts(&back, "svc"), Some(2.0));
    assert_eq!(processes(&back, "svc"), Some(1.0));
    assert!(exporter.stop().success());
    kill(third);
}

#[test]
fn oom_score_adj_1000_comes_first_in_the_top_k() {
    let dir = tempfile::tempdir().expect("temp");
    let service = Service::install(dir.path(), "oomw-rsk");
    let child = service.start();
    // Raising one's own oom_score_adj needs no privilege.
    std::fs::write(format!("/proc/{}/oom_score_adj", child.id()), "1000\n").expect("set adj");
    let state = dir.path().join("state");
    let exporter = Exporter::start(&["--state.dir", state.to_str().expect("utf-8")]);
    let pid = child.id().to_string();
    let first = eventually(Duration::from_secs(5), || {
        let body = exporter.scrape();
        let line = body
            .lines()
            .find(|l| l.starts_with("oomwatch_process_oom_score{"))?
            .to_owned();
        line.contains(&format!("pid=\"{pid}\"")).then_some(line)
    })
    .expect("the process with adj 1000 is the first next victim");
    assert!(
        first.contains(&format!("comm=\"{}\"", service.comm)),
        "{first}"
    );
    let body = exporter.scrape();
    let labels = [("pid", pid.as_str()), ("comm", service.comm.as_str())];
    assert_eq!(
        sample(&body, "oomwatch_process_oom_score_adj", &labels),
        Some(1000.0)
    );
    let score = sample(&body, "oomwatch_process_oom_score", &labels).expect("score");
    assert!(score >= 1000.0, "oom_score {score}");
    assert!(exporter.stop().success());
    kill(child);
}
