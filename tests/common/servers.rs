//! Real Prometheus and Alertmanager (Debian packages), started by the tests on 127.0.0.1
//! ports and stopped by PID when dropped, even when the test fails; a webhook receiver
//! that records what Alertmanager sends; and a Prometheus query helper.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{eventually, request};

/// A child process killed and reaped on drop.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn start(
    name: &'static str,
    program: &str,
    args: &[String],
    addr: SocketAddr,
    log: &Path,
) -> Server {
    let log_file = std::fs::File::create(log).expect("log file");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (scripts/test.sh installs it): {e}")
        });
    let server = Server { name, addr, child };
    eventually(Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr)
            .ok()
            .and_then(|_| (request(addr, "GET", "/-/ready", &[]).status == 200).then_some(()))
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} did not become ready:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    server
}

/// Alertmanager with every alert routed to `webhook`, grouped per alert and instance and
/// sent after one second.
pub fn alertmanager(dir: &Path, webhook: SocketAddr) -> Server {
    alertmanager_with_config(
        dir,
        &format!(
            "route:\n  receiver: hook\n  group_by: [alertname, instance, comm, group]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{webhook}/\n"
        ),
    )
}

/// Alertmanager with the given configuration.
pub fn alertmanager_with_config(dir: &Path, config_text: &str) -> Server {
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, config_text).expect("config");
    let addr = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.join("am-data").display()),
        format!("--web.listen-address={addr}"),
        "--cluster.listen-address=".to_owned(),
    ];
    start(
        "alertmanager",
        "prometheus-alertmanager",
        &args,
        addr,
        &dir.join("alertmanager.log"),
    )
}

/// Prometheus scraping `targets` every 5 s, evaluating `rules` every 5 s, sending to
/// `alertmanager`.
pub fn prometheus(
    dir: &Path,
    targets: &[SocketAddr],
    rules: &Path,
    alertmanager: SocketAddr,
) -> Server {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    prometheus_with_config(
        dir,
        &format!(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nrule_files:\n  - '{}'\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\nscrape_configs:\n  - job_name: oomwatch\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        ),
    )
}

/// Prometheus with the given configuration (its file paths as the caller wrote them).
pub fn prometheus_with_config(dir: &Path, config_text: &str) -> Server {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, config_text).expect("config");
    let addr = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
        format!("--web.listen-address={addr}"),
    ];
    start(
        "prometheus",
        "prometheus",
        &args,
        addr,
        &dir.join("prometheus.log"),
    )
}

/// An HTTP receiver that records every request it gets: its path and body.
pub struct Webhook {
    pub addr: SocketAddr,
    bodies: Arc<Mutex<Vec<(String, String)>>>,
}

impl Webhook {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok() {
                    sink.lock()
                        .expect("lock")
                        .push((path, String::from_utf8_lossy(&body).into_owned()));
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { addr, bodies }
    }

    /// Every alert received so far (from every notification).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.alerts_at(None)
    }

    /// The alerts received on one path (one receiver), or on all with None.
    pub fn alerts_at(&self, path: Option<&str>) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| path.is_none_or(|path| p == path))
            .filter_map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok())
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// Percent-encodes a query string value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The values of `label` on the series `selector` matches between `start` and `end`
/// (seconds since the epoch), as Grafana's `label_values(selector, label)` asks for them
/// (`/api/v1/label/<label>/values` with `match[]`); panics on an error.
pub fn label_values(
    prometheus: SocketAddr,
    label: &str,
    selector: &str,
    start: f64,
    end: f64,
) -> Vec<String> {
    let response = request(
        prometheus,
        "GET",
        &format!(
            "/api/v1/label/{label}/values?match[]={}&start={start:.3}&end={end:.3}",
            url_encode(selector)
        ),
        &[],
    );
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{selector}: not JSON ({e}): {}", response.body));
    assert_eq!(body["status"], "success", "{selector}: {}", response.body);
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Runs an instant query; returns the result vector (panics on a query error).
pub fn query(prometheus: SocketAddr, promql: &str) -> Vec<serde_json::Value> {
    let response = request(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={}", url_encode(promql)),
        &[],
    );
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{promql}: not JSON ({e}): {}", response.body));
    assert_eq!(body["status"], "success", "{promql}: {}", response.body);
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
