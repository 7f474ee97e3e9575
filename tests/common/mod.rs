//! Test harness shared by the integration tests: start the real `oomwatch` binary on
//! 127.0.0.1:0, learn its address from its log, talk HTTP to it with a minimal client,
//! stop it by PID (SIGTERM or SIGKILL), and read values out of an exposition.
//! Nothing here mocks the exporter; every test drives the built binary.

#![allow(dead_code)]

pub mod dashboards;
pub mod deploy;
pub mod host;
pub mod servers;
pub mod tls;
pub mod vm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fails loudly under CI=true, where every test must run; elsewhere too, since a skip
/// would hide a broken environment. Use for preconditions such as root or a cgroup.
pub fn require(condition: bool, what: &str) {
    assert!(
        condition,
        "precondition not met: {what} (this test never skips; CI={})",
        std::env::var("CI").unwrap_or_default()
    );
}

/// A program under a name of its own (so its comm is `name`), as a symlink to `target`.
/// A copy would be open for writing while a concurrent test forks, and exec'ing it then
/// fails with ETXTBSY; the kernel takes comm from the name exec'd, so a link is enough.
pub fn named_program(dir: &Path, target: &str, name: &str) -> PathBuf {
    let path = dir.join(name);
    if !path.exists() {
        std::os::unix::fs::symlink(target, &path).expect("link the program");
    }
    path
}

pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

pub struct Exporter {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Reads the log until the exporter's standard error closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Exporter {
    /// Starts the binary with `args` plus a loopback listener and debug logging, and waits
    /// until it says where it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_via(&[], args)
    }

    /// Like `start`, with the binary run by `wrapper` (`setpriv ...`, `runuser ...`).
    pub fn start_via(wrapper: &[&str], args: &[&str]) -> Self {
        Self::start_binary_via(env!("CARGO_BIN_EXE_oomwatch"), wrapper, args)
    }

    /// Like `start_via`, with another copy of the binary: the one a package installed, or
    /// the one inside a container image (`binary` is then the path inside the image).
    pub fn start_binary_via(binary: &str, wrapper: &[&str], args: &[&str]) -> Self {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.level",
                "debug",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("oomwatch starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line
                    .split("address=")
                    .nth(1)
                    .filter(|_| line.contains("message=listening"))
                {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "oomwatch did not start ({status:?}); log:\n{}",
                    log.lock().expect("log").join("\n")
                );
            }
        };
        Self {
            child: Some(child),
            addr,
            log,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn request(&self, method: &str, path: &str) -> Response {
        request(self.addr, method, path, &[])
    }

    /// GET the telemetry path as Prometheus does (OpenMetrics); panics unless 200.
    pub fn scrape(&self) -> String {
        let accept = [("Accept", OPENMETRICS_ACCEPT)];
        let response = request(self.addr, "GET", "/metrics", &accept);
        assert_eq!(response.status, 200, "scrape failed: {}", response.body);
        response.body
    }

    /// SIGTERM, then wait for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, rustix::process::Signal::TERM);
        wait_with_deadline(&mut child, Duration::from_secs(20))
    }

    /// SIGTERM, then the exit status and the whole log, to its last line.
    pub fn stop_with_log(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        signal(&child, rustix::process::Signal::TERM);
        let status = wait_with_deadline(&mut child, Duration::from_secs(20));
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader");
        }
        (status, self.log())
    }

    /// SIGKILL: the exporter gets no chance to flush anything.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal delivered");
}

pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {deadline:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Accept header Prometheus sends.
pub const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A minimal HTTP/1.1 client: one request, `Connection: close`, whole response read.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    exchange(&mut stream, &addr.to_string(), method, path, headers).expect("response")
}

/// Sends one request over any stream (plain TCP, TLS) and reads the whole response.
pub fn exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Joins the chunks of a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        body.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    body
}

/// The value of the sample `name{labels}` (labels given as a subset to match).
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Polls `check` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `YYYY-MM-DDTHH:MM:SS,000000+00:00` for utmpdump, from seconds since the epoch (UTC).
pub fn utmp_time(time: f64) -> String {
    let secs = time as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02},000000+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
