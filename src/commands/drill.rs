//! `oomwatch drill`: tests the user's own OOM pipeline with a real, contained OOM kill. It
//! makes a scratch memory cgroup with a small limit under its own cgroup, starts a victim
//! in it (this binary, renamed `oomwatch-drill`) that allocates until the kernel's OOM
//! killer takes it, reports whether the kernel killed it, and with `--exporter URL`
//! whether that oomwatch counted it. The cgroup is removed whatever happens. Without the
//! right to make a cgroup it refuses, saying what is missing. Exit 0 when every check
//! passed, 1 when one failed, 2 when the drill could not run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::scratch_cgroup::ScratchCgroup;

/// The victim's command name, as the kernel log and oomwatch's metrics show it.
pub const VICTIM_COMM: &str = "oomwatch-drill";

/// The victim: touches memory a MiB at a time until it is killed. It stops by itself at
/// `max_bytes` so that a cgroup that does not limit it cannot hurt the host.
pub fn victim(max_bytes: u64) -> u8 {
    let _ = rustix::thread::set_name(c"oomwatch-drill");
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    while total < max_bytes {
        held.push(vec![0x5a; 1 << 20]);
        total += 1 << 20;
    }
    eprintln!("oomwatch drill: the victim reached {max_bytes} bytes without being killed");
    3
}

/// Runs the drill; returns the exit code.
pub fn run(limit_bytes: u64, exporter: Option<&str>, timeout: Duration) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("oomwatch drill: cannot find this program to start the victim: {e}");
            return 2;
        }
    };
    let before = match exporter.map(counted_kills).transpose() {
        Ok(before) => before,
        Err(e) => {
            eprintln!("oomwatch drill: --exporter: {e}");
            return 2;
        }
    };
    let cgroup = match ScratchCgroup::create(
        &format!("oomwatch-drill-{}", std::process::id()),
        limit_bytes,
    ) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            eprintln!("oomwatch drill: cannot make a scratch memory cgroup: {e}");
            return 2;
        }
    };
    println!(
        "scratch cgroup {} with a {} MiB limit",
        cgroup.path(),
        limit_bytes >> 20
    );
    let max = (limit_bytes.saturating_mul(4)).to_string();
    let mut child = match cgroup.spawn(&exe, &["drill-victim", "--max-bytes", &max]) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("oomwatch drill: cannot start the victim: {e}");
            return 2;
        }
    };
    let pid = child.id();
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("oomwatch drill: waiting for the victim: {e}");
            return 2;
        }
    };
    let oom_kills = cgroup.oom_kills();
    drop(cgroup);
    let sigkill = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    match (sigkill, oom_kills) {
        (true, Some(n)) if n > 0 => {
            println!("ok: the kernel OOM-killed the victim {VICTIM_COMM} (pid {pid})")
        }
        // Kernels before 4.13 keep no per-cgroup count: SIGKILL is the evidence left.
        (true, None) => println!(
            "ok: the victim {VICTIM_COMM} (pid {pid}) was SIGKILLed (this kernel keeps no per-cgroup OOM kill count to confirm it)"
        ),
        _ => {
            println!(
                "FAILED: the victim (pid {pid}) ended with {status}; the cgroup's OOM kill count is {oom_kills:?}"
            );
            return 1;
        }
    }
    let (Some(url), Some(before)) = (exporter, before) else {
        return 0;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match counted_kills(url) {
            Ok(now) if now > before => {
                println!(
                    "ok: oomwatch at {url} counted it (oomwatch_oom_kills_total{{comm=\"{VICTIM_COMM}\"}} {before} -> {now})"
                );
                return 0;
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Ok(now) => {
                println!("FAILED: oomwatch at {url} did not count the kill within {timeout:?} (still {now})");
                return 1;
            }
            Err(e) => {
                println!("FAILED: oomwatch at {url}: {e}");
                return 1;
            }
        }
    }
}

/// The drill victim's kills counted by the exporter at `url` (summed over labels).
fn counted_kills(url: &str) -> Result<f64, String> {
    let body = http_get(url)?;
    let victim = format!("comm=\"{VICTIM_COMM}\"");
    Ok(body
        .lines()
        .filter(|l| l.starts_with("oomwatch_oom_kills_total{"))
        .filter(|l| l.contains(&victim))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum())
}

/// A plain-HTTP GET (the drill talks to an exporter on the same host or network).
fn http_get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let mut stream = TcpStream::connect(authority).map_err(|e| format!("{authority}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_owned())
}
