//! The real binary under a flood of idle connections: 10,000 held open at once from
//! several threads, each thread closing its oldest and opening a new one without pause,
//! while 10 scrapes in a row must all be answered. Before the server closed idle
//! connections to make room, such a flood made scrapes fail and wrote one warning per
//! refused connection; now the refusals are one log line a minute with their counts.
//! Needs an open-file limit of 11,024 (raised here within the hard limit; the exporter
//! inherits it).

mod common;

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{exchange, require, Exporter, Response, OPENMETRICS_ACCEPT};

const FLOOD_THREADS: usize = 8;
/// Connections held open at once, over all threads.
const HELD: usize = 10_000;

/// Raises this process's soft open-file limit to `at_least` (the exporter started from it
/// inherits it), within the hard limit, which only a privileged process may raise.
fn raise_open_file_limit(at_least: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|current| current >= at_least) {
        return;
    }
    let wanted = Rlimit {
        current: Some(at_least),
        maximum: now.maximum.map(|maximum| maximum.max(at_least)),
    };
    let raised = setrlimit(Resource::Nofile, wanted).is_ok();
    require(
        raised,
        &format!(
            "an open-file limit of {at_least} for the flood's sockets (hard limit {:?}; raising it needs CAP_SYS_RESOURCE)",
            now.maximum
        ),
    );
}

/// One scrape on a fresh connection, with room for a busy machine.
fn scrape(addr: SocketAddr) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(20))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let accept = [("Accept", OPENMETRICS_ACCEPT)];
    exchange(&mut stream, &addr.to_string(), "GET", "/metrics", &accept)
}

/// Holds `held` idle connections to `addr`, closing the oldest for each new one, until
/// `stop`; counts the connections opened and the connects that failed.
fn flood(addr: SocketAddr, held: usize, stop: &AtomicBool, opened: &AtomicU64, failed: &AtomicU64) {
    let mut open = VecDeque::with_capacity(held + 1);
    while !stop.load(Ordering::Relaxed) {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => {
                open.push_back(stream);
                opened.fetch_add(1, Ordering::Relaxed);
                if open.len() > held {
                    open.pop_front();
                }
            }
            Err(_) => {
                failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// `key=value` of a logfmt line, as a number.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
        .and_then(|value| value.parse().ok())
}

#[test]
fn ten_scrapes_in_a_row_are_answered_during_a_flood_of_ten_thousand_idle_connections() {
    raise_open_file_limit(HELD as u64 + 1024);
    let dir = tempfile::tempdir().expect("temp");
    let state = dir.path().join("state");
    let exporter = Exporter::start(&["--state.dir", state.to_str().expect("utf-8")]);
    let addr = exporter.addr;
    assert_eq!(scrape(addr).expect("a scrape before the flood").status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..FLOOD_THREADS)
        .map(|_| {
            let (stop, opened, failed) = (stop.clone(), opened.clone(), failed.clone());
            std::thread::spawn(move || flood(addr, HELD / FLOOD_THREADS, &stop, &opened, &failed))
        })
        .collect();
    // The flood is at full size before the scrapes start.
    let filling = Instant::now();
    while opened.load(Ordering::Relaxed) < HELD as u64 {
        assert!(
            filling.elapsed() < Duration::from_secs(120),
            "the flood reached only {} connections in 120 s",
            opened.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let opened_before_scrapes = opened.load(Ordering::Relaxed);
    println!(
        "{opened_before_scrapes} connections opened in {:?}",
        filling.elapsed()
    );
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let outcome = scrape(addr).map(|response| (response.status, response.body));
        outcomes.push((outcome, started.elapsed()));
        // Spread over a few seconds of churn, as a scraper's interval would be.
        std::thread::sleep(Duration::from_millis(300));
    }
    let opened_during_scrapes = opened.load(Ordering::Relaxed) - opened_before_scrapes;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("flood thread");
    }
    let opened = opened.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    for (i, (outcome, took)) in outcomes.iter().enumerate() {
        let status = outcome.as_ref().map(|(status, _)| *status);
        println!("scrape {i}: {status:?} in {took:?}");
    }
    println!(
        "flood: {opened} connections opened ({opened_during_scrapes} during the scrapes), \
         {HELD} held at once by {FLOOD_THREADS} threads, {failed} connects failed"
    );
    for (i, (outcome, _)) in outcomes.iter().enumerate() {
        match outcome {
            Ok((200, body)) => assert!(body.contains("oomwatch_build_info"), "scrape {i}"),
            Ok((status, body)) => panic!("scrape {i}: {status} {body}"),
            Err(e) => panic!("scrape {i} failed: {e}\n{}", exporter.log()),
        }
    }
    assert!(
        opened_during_scrapes > 0,
        "the flood kept churning during the scrapes"
    );

    // The refusals: a line at the first, and one with the rest (at shutdown here, as the
    // test is shorter than the one-minute interval), each with its counts.
    let (status, log) = exporter.stop_with_log();
    assert!(status.success(), "{status:?}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("too many open connections"))
        .collect();
    println!("{} refusal lines:", lines.len());
    for line in &lines {
        println!("  {line}");
    }
    assert!(
        (1..=3).contains(&lines.len()),
        "{} refusal lines",
        lines.len()
    );
    let mut closed = 0;
    for line in &lines {
        assert!(line.contains("level=warn"), "{line}");
        closed += field(line, "closed_idle").expect("closed_idle=N");
        field(line, "refused").expect("refused=N");
        field(line, "accept_errors").expect("accept_errors=N");
    }
    // The exporter holds at most 4,096: the flood's others pushed idle ones out.
    assert!(
        closed >= (HELD - 4096) as u64,
        "{closed} idle connections closed for room"
    );
}
