//! Throughput of the process-events path the listener runs on every event: parse a
//! netlink datagram (`parse_datagram`), count gaps (`LossCounter`), apply it to the
//! `ProcessTracker`. The stream is 1.2M events: 400k processes, each forked, exec'd into
//! a program of its own group and exited, as the kernel encodes them. Naming an exec is
//! I/O in the exporter (`ProcfsNamer` reads /proc); here a table stands in for it, and
//! the real namer is timed separately over the live /proc. Run with
//! `cargo bench --bench exits`; it measures, it asserts only that nothing was lost.

use std::time::Instant;

use oomwatch::exits::connector::{parse_datagram, LossCounter, CN_IDX_PROC};
use oomwatch::exits::namer::ProcfsNamer;
use oomwatch::exits::tracker::{Comm, Named, Namer, Outcome, ProcessTracker};
use oomwatch::groups::{GroupRules, NameSource};

const FORK: u32 = 0x1;
const EXEC: u32 = 0x2;
const EXIT: u32 = 0x8000_0000;

/// One datagram as the kernel sends it: nlmsghdr, cn_msg, proc_event.
fn datagram(out: &mut Vec<u8>, seq: u32, what: u32, fields: [u32; 6]) {
    let payload_len = 16 + 24;
    let len = 16 + 20 + payload_len;
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out.extend_from_slice(&1u32.to_ne_bytes()); // CN_VAL_PROC
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&(payload_len as u16).to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&what.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // cpu
    out.extend_from_slice(&u64::from(seq).to_ne_bytes());
    for field in fields {
        out.extend_from_slice(&field.to_ne_bytes());
    }
}

/// Names every exec'd process `worker-<pid % 50>` under a rule, as a table would.
struct TableNamer;

impl Namer for TableNamer {
    fn name(&mut self, tgid: u32) -> Option<Named> {
        Some(Named {
            group: format!("worker-{}", tgid % 50),
            source: NameSource::Rule,
            comm: Comm::new(b"worker"),
            ppid: 1,
            kernel_thread: false,
        })
    }
}

fn main() {
    const PROCESSES: u32 = 400_000;
    let mut datagrams: Vec<Vec<u8>> = Vec::with_capacity(3 * PROCESSES as usize);
    let mut seq = 0u32;
    for i in 0..PROCESSES {
        let pid = 1000 + (i % 30_000);
        for (what, fields) in [
            (FORK, [1, 1, pid, pid, 0, 0]),
            (EXEC, [pid, pid, 0, 0, 0, 0]),
            (EXIT, [pid, pid, (i % 4) << 8, 17, 1, 1]),
        ] {
            let mut bytes = Vec::with_capacity(76);
            datagram(&mut bytes, seq, what, fields);
            datagrams.push(bytes);
            seq += 1;
        }
    }

    let mut tracker = ProcessTracker::default();
    tracker.insert(
        1,
        Named {
            group: "init".into(),
            source: NameSource::Comm,
            comm: Comm::new(b"systemd"),
            ppid: 0,
            kernel_thread: false,
        },
    );
    let mut namer = TableNamer;
    let mut losses = LossCounter::default();
    let (mut exits, mut lost) = (0u64, 0u64);
    let started = Instant::now();
    for bytes in &datagrams {
        for message in parse_datagram(bytes).flatten() {
            lost += losses.observe(&message);
            if let Outcome::Exit(record) =
                tracker.handle(&message.event, message.timestamp_ns, &mut namer)
            {
                exits += u64::from(record.pid > 0);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = datagrams.len() as f64;
    assert_eq!(lost, 0);
    assert_eq!(exits, u64::from(PROCESSES));
    println!(
        "parse + track: {:.0} events/s ({:.0} ns/event), {} top-level exits",
        events / elapsed,
        elapsed / events * 1e9,
        exits
    );

    // The real namer over the live /proc: what each exec costs in the exporter.
    let mut procfs = match ProcfsNamer::open(std::path::Path::new("/proc"), GroupRules::default()) {
        Ok(namer) => namer,
        Err(e) => {
            eprintln!("bench: cannot open /proc: {e}");
            std::process::exit(1);
        }
    };
    let mut pids = Vec::new();
    if let Err(e) = procfs.list_pids(&mut pids) {
        eprintln!("bench: cannot list /proc: {e}");
        std::process::exit(1);
    }
    let rounds = (100_000 / pids.len().max(1)).max(1);
    let started = Instant::now();
    let mut named = 0u64;
    for _ in 0..rounds {
        for &pid in &pids {
            named += u64::from(procfs.name(pid).is_some());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "naming from /proc: {:.1} us/exec over {} names ({} processes)",
        elapsed / named.max(1) as f64 * 1e6,
        named,
        pids.len()
    );
}
