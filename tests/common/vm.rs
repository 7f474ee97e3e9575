//! The VM test bench from the tests' side: real Debian guests booted by QEMU, driven
//! through `scripts/vm.sh` (build, boot, ssh, kill), the one implementation that a person
//! also uses by hand. A [`Guest`] lives in a temp directory (its qcow2 overlay over the
//! cached image, its console log); it is killed by its PID when dropped, whatever
//! happened, and its console log is kept under `<target>/test-artifacts/vm/` and printed
//! when the test is failing. Timings go to stderr as they happen (past the test harness's
//! capture, so a passing run shows them too) and to `<target>/test-artifacts/vm/timings.txt`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::deploy::{on_path, printed, repo_file};
use super::{eventually, exchange, require, Response, OPENMETRICS_ACCEPT};

/// The script every guest operation goes through.
pub fn script() -> PathBuf {
    repo_file("scripts/vm.sh")
}

/// What the bench needs on the host; missing, the test fails saying what to install
/// (scripts/test.sh installs all of it).
pub fn require_prerequisites() {
    require(
        rustix::process::geteuid().is_root(),
        "running as root (mmdebstrap builds the guest image)",
    );
    for tool in [
        "qemu-system-x86_64",
        "qemu-img",
        "mmdebstrap",
        "mkfs.ext4",
        "ssh",
        "ssh-keygen",
        "python3",
    ] {
        require(
            on_path(tool),
            &format!("{tool} on PATH (scripts/test.sh installs it)"),
        );
    }
}

/// `<target>/test-artifacts/vm`, made if missing.
pub fn artifact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_file("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo_file("").join(target)
    };
    let dir = target.join("test-artifacts").join("vm");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Seconds since the epoch, as the guests' clocks (set from the host's) count.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

static TIMINGS: Mutex<()> = Mutex::new(());

/// One line of the bench's progress, with its time: on stderr now, and in timings.txt.
pub fn note(line: &str) {
    let _guard = TIMINGS.lock();
    let line = format!("[vm] {line}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(artifact_dir().join("timings.txt"))
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Runs `step`, then notes how long it took.
pub fn timed<T>(what: &str, step: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = step();
    note(&format!("{what}: {:.1} s", started.elapsed().as_secs_f64()));
    value
}

fn vm_sh(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("scripts/vm.sh runs: {e}"))
}

/// The cached image of `release` (built now when missing): its directory.
pub fn image(release: &str) -> PathBuf {
    let output = timed(&format!("image {release} ready (cached or built)"), || {
        vm_sh(&["build", release])
    });
    let text = printed(&output);
    for line in text.lines().filter(|l| l.starts_with("vm.sh:")) {
        note(line);
    }
    assert!(output.status.success(), "vm.sh build {release}:\n{text}");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// A loopback address of its own for a guest's exporter, on the exporter's real port
/// (127.0.0.N:9721, N from 2): Prometheus's fleet relabelling strips the port, so guests
/// told apart by address keep their own `instance` as hosts of a fleet do.
pub fn exporter_address() -> SocketAddr {
    static NEXT: Mutex<u8> = Mutex::new(2);
    let mut next = NEXT.lock().expect("address lock");
    loop {
        let candidate: SocketAddr = format!("127.0.0.{}:9721", *next).parse().expect("addr");
        *next = next.checked_add(1).expect("a free loopback address");
        if TcpListener::bind(candidate).is_ok() {
            return candidate;
        }
    }
}

const GUEST_DIR_PREFIX: &str = "oomwatch-vm-";

/// Kills the guests of test processes that died without dropping them (killed by a
/// signal, say): a guest directory whose `owner.pid` names no live process. QEMU is
/// killed by the PID in its pidfile, and only if that process runs this guest's disk.
pub fn reap_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_guest = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(GUEST_DIR_PREFIX));
        let Ok(owner) = std::fs::read_to_string(dir.join("owner.pid")) else {
            continue;
        };
        let owner_alive = Path::new("/proc").join(owner.trim()).exists();
        if is_guest && !owner_alive {
            let output = vm_sh(&["kill", dir.to_str().unwrap_or_default()]);
            if output.status.success() {
                note(&format!(
                    "reaped the guest a dead test left in {}",
                    dir.display()
                ));
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

/// A booted guest. Killed by its QEMU PID when dropped.
pub struct Guest {
    pub name: String,
    pub release: String,
    pub exporter: SocketAddr,
    dir: tempfile::TempDir,
}

impl Guest {
    /// Boots a new guest of `release` (a qcow2 overlay over the cached image, so it starts
    /// clean; the image is built first if missing), its :9721 forwarded to `exporter`,
    /// and waits until it answers over SSH.
    pub fn boot(release: &str, name: &str, exporter: SocketAddr) -> Guest {
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(reap_orphans);
        let dir = tempfile::Builder::new()
            .prefix(GUEST_DIR_PREFIX)
            .suffix(&format!("-{name}"))
            .tempdir()
            .expect("guest dir");
        std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
            .expect("owner.pid");
        let guest = Guest {
            name: name.to_owned(),
            release: release.to_owned(),
            exporter,
            dir,
        };
        let path = guest.dir_str();
        let exporter = exporter.to_string();
        guest.run_vm_sh(
            &format!("boot {name} ({release})"),
            &[
                "boot",
                &path,
                release,
                "--exporter",
                &exporter,
                "--hostname",
                name,
            ],
        );
        guest
    }

    fn dir_str(&self) -> String {
        self.dir.path().to_str().expect("utf-8 path").to_owned()
    }

    fn run_vm_sh(&self, what: &str, args: &[&str]) {
        let output = timed(&format!("{}: {what}", self.name), || vm_sh(args));
        let said = String::from_utf8_lossy(&output.stderr);
        for line in said.lines().filter(|l| l.starts_with("vm.sh:")) {
            note(line);
        }
        assert!(
            output.status.success(),
            "{what}: vm.sh {args:?} failed:\n{}\n{}",
            printed(&output),
            self.console_tail(60)
        );
    }

    /// Boots the same disk again (after a power cut), and waits for SSH.
    pub fn boot_again(&self) {
        let path = self.dir_str();
        self.run_vm_sh("boot the same disk again", &["boot", &path]);
    }

    /// Waits until the guest answers over SSH (after a reboot it did by itself).
    pub fn wait(&self) {
        let path = self.dir_str();
        self.run_vm_sh("answers over SSH", &["wait", &path, "240"]);
    }

    /// Power cut: QEMU killed by its PID, the guest gets no word. Returns the time it died.
    pub fn power_cut(&self) -> f64 {
        let path = self.dir_str();
        self.run_vm_sh("power cut (QEMU killed)", &["kill", &path]);
        unix_now()
    }

    /// Runs `command` in the guest as root (a shell command line); its output, whatever
    /// the exit status.
    pub fn try_sh(&self, command: &str) -> Output {
        Command::new(script())
            .args(["ssh", &self.dir_str(), command])
            .stdin(Stdio::null())
            .output()
            .expect("vm.sh ssh runs")
    }

    /// Runs `command` in the guest as root; its stdout. Panics unless it exits 0.
    pub fn sh(&self, command: &str) -> String {
        let output = self.try_sh(command);
        assert!(
            output.status.success(),
            "in guest {}: `{command}` failed ({}):\n{}",
            self.name,
            output.status,
            printed(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Copies a host file into the guest.
    pub fn put(&self, local: &Path, remote: &str) {
        let file = std::fs::File::open(local).expect("file to copy");
        let output = Command::new(script())
            .args(["ssh", &self.dir_str(), &format!("cat > '{remote}'")])
            .stdin(file)
            .output()
            .expect("vm.sh ssh runs");
        assert!(
            output.status.success(),
            "copy {} to {remote}: {}",
            local.display(),
            printed(&output)
        );
    }

    /// The guest's boot_id.
    pub fn boot_id(&self) -> String {
        self.sh("cat /proc/sys/kernel/random/boot_id")
            .trim()
            .to_owned()
    }

    /// Waits until the guest answers with a boot_id other than `old` (it rebooted).
    pub fn wait_for_new_boot(&self, old: &str) -> String {
        let started = Instant::now();
        let boot_id = eventually(Duration::from_secs(240), || {
            let output = self.try_sh("cat /proc/sys/kernel/random/boot_id");
            let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            (output.status.success() && !id.is_empty() && id != old).then_some(id)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} did not come back with a new boot_id:\n{}",
                self.name,
                self.console_tail(60)
            )
        });
        note(&format!(
            "{}: back in a new boot after {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        ));
        boot_id
    }

    /// HTTP GET to the guest's exporter through the forwarded port; panics when it does
    /// not answer.
    pub fn get(&self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}", self.name))
    }

    /// HTTP GET to the guest's exporter; an error while it does not answer (the port is
    /// forwarded by QEMU whether or not anything listens in the guest).
    pub fn try_get(&self, path: &str) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&self.exporter, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        exchange(
            &mut stream,
            &self.exporter.to_string(),
            "GET",
            path,
            &[("Accept", OPENMETRICS_ACCEPT)],
        )
    }

    /// A scrape of the guest's exporter (None while it does not answer with 200).
    pub fn try_scrape(&self) -> Option<String> {
        let response = self.try_get("/metrics").ok()?;
        (response.status == 200).then_some(response.body)
    }

    /// The last `lines` lines of the serial console.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- console of guest {} (last {} lines) ---\n{}\n--- end of console ---",
            self.name,
            all.len() - start,
            all[start..].join("\n")
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = vm_sh(&["kill", &self.dir_str()]);
        let console = self.dir.path().join("console.log");
        let kept = artifact_dir().join(format!("{}-console.log", self.name));
        let _ = std::fs::copy(&console, &kept);
        if std::thread::panicking() {
            let _ = std::io::stderr().write_all(
                format!(
                    "{}\n(whole console log: {})\n",
                    self.console_tail(80),
                    kept.display()
                )
                .as_bytes(),
            );
        }
    }
}
