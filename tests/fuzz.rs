//! Mutation fuzzing of every parser of outside input: /proc and cgroup files, kernel log
//! records and text lines (through the whole OOM report assembler), process-event
//! datagrams, wtmp, the wtmpdb SQLite file, pstore records, the config file, the web
//! config file, the state file and the event log.
//!
//! cargo-fuzz needs a nightly toolchain, which this machine cannot install, so this is a
//! small coverage-blind mutator run as an ordinary test: seeds come from the committed
//! fixtures (`tests/fixtures`) and a committed corpus (`fuzz/corpus/<target>/`); each
//! input is mutated (bit flips, interesting bytes and numbers, insertions, deletions,
//! duplications, splices with other seeds, truncation) and fed to the parser, which must
//! neither panic nor take long. Runs are deterministic per target (fixed RNG seed), time-
//! bounded (`OOMWATCH_FUZZ_SECONDS` per target, 20 by default; set it to 600 or more for a
//! long run), and print how many executions they made. A panicking input is written to
//! `target/fuzz-crashes/` and fails the test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oomwatch::kmsg::oom::OomAssembler;

/// xorshift64*: deterministic, fast, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"4294967295",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"-9223372036854775808",
    b"max",
    b"\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"(",
    b")",
    b"=",
    b"\0",
    b"\xff\xfe",
    b"\xe2\x82\xac",
    b"kB",
    b"Killed process ",
    b"oom-kill:",
    b"Out of memory",
    b"invoked oom-killer",
    b"total-vm:",
    b"anon-rss:",
    b"0::/",
    b"some avg10=",
    b"full avg10=",
];

fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let word = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, word.iter().copied());
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy = data[start..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(256)).min(other.len());
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            6 if len > 0 => data.truncate(rng.below(len)),
            7 if len > 0 => {
                // Replace a digit run with an interesting number.
                let i = rng.below(len);
                if data[i].is_ascii_digit() {
                    let mut end = i;
                    while end < data.len() && data[end].is_ascii_digit() {
                        end += 1;
                    }
                    let word = INTERESTING[rng.below(8)];
                    data.splice(i..end, word.iter().copied());
                }
            }
            _ => {
                let at = rng.below(len + 1);
                let byte = rng.next() as u8;
                data.insert(at, byte);
            }
        }
    }
    data
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Seeds: the committed corpus of the target, plus fixture files whose path matches.
fn seeds(target: &str, fixture_filter: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    collect_files(&root().join("fuzz/corpus").join(target), &mut files);
    let mut fixtures = Vec::new();
    collect_files(&root().join("tests/fixtures"), &mut fixtures);
    files.extend(
        fixtures
            .into_iter()
            .filter(|p| fixture_filter(&p.to_string_lossy())),
    );
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|bytes| bytes.len() <= 1 << 20)
        .collect();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    seeds
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("OOMWATCH_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(20.0);
    Duration::from_secs_f64(seconds)
}

/// Runs `parse` on the seeds, then on mutations of them until the budget is spent.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, parse: impl Fn(&[u8])) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15
        ^ target.len() as u64
        ^ target.bytes().map(u64::from).sum::<u64>());
    let started = Instant::now();
    let budget = budget();
    let mut executions = 0u64;
    let mut slowest = Duration::ZERO;
    let watchdog = Watchdog::start(target);
    let mut run = |input: &[u8]| {
        executions += 1;
        let began = Instant::now();
        watchdog.arm(input);
        let outcome = catch_unwind(AssertUnwindSafe(|| parse(input)));
        watchdog.disarm();
        slowest = slowest.max(began.elapsed());
        if outcome.is_err() {
            let dir = root().join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{executions}"));
            let _ = std::fs::write(&path, input);
            panic!(
                "{target}: the parser panicked on an input saved as {}",
                path.display()
            );
        }
    };
    for seed in &seeds {
        run(seed);
    }
    let mut current = seeds[0].clone();
    while started.elapsed() < budget {
        // Mostly mutate a fresh seed; sometimes keep mutating the last input.
        if rng.below(4) != 0 {
            current = seeds[rng.below(seeds.len())].clone();
        }
        current = mutate(&mut rng, &current, &seeds);
        if current.len() > 1 << 20 {
            current.truncate(1 << 20);
        }
        run(&current);
    }
    println!(
        "fuzz {target}: {executions} executions in {:.1} s from {} seeds, slowest {:?}",
        started.elapsed().as_secs_f64(),
        seeds.len(),
        slowest
    );
    assert!(
        slowest < Duration::from_secs(2),
        "{target}: one input took {slowest:?}"
    );
}

/// Longest one input may take before the run is called hung: the input is saved to
/// `target/fuzz-crashes/<target>-hang` and the process exits non-zero at once, so a
/// parser that loops forever fails the suite instead of stalling it.
const HANG: Duration = Duration::from_secs(30);

/// The input being parsed and since when.
type Running = std::sync::Arc<std::sync::Mutex<Option<(Instant, Vec<u8>)>>>;

/// Watches the input being parsed from a thread of its own (a hung parser cannot check
/// the clock itself).
struct Watchdog {
    current: Running,
}

impl Watchdog {
    fn start(target: &str) -> Self {
        let current: Running = Default::default();
        let watched = std::sync::Arc::clone(&current);
        let target = target.to_string();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let guard = watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((began, input)) = guard.as_ref() {
                if began.elapsed() > HANG {
                    let dir = root().join("target/fuzz-crashes");
                    let _ = std::fs::create_dir_all(&dir);
                    let path = dir.join(format!("{target}-hang"));
                    let _ = std::fs::write(&path, input);
                    eprintln!(
                        "{target}: the parser ran over {HANG:?} on one input (hung?), saved as {}",
                        path.display()
                    );
                    std::process::exit(101);
                }
            }
        });
        Watchdog { current }
    }

    fn arm(&self, input: &[u8]) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), input.to_vec()));
    }

    fn disarm(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[test]
fn fuzz_proc_pid_files() {
    let seeds = seeds("proc_pid", |p| {
        p.contains("/proc/")
            && ["/stat", "/statm", "/oom_score", "/cgroup"]
                .iter()
                .any(|f| p.ends_with(f))
    });
    fuzz("proc_pid", seeds, |bytes| {
        use oomwatch::procfs::pid::*;
        let _ = parse_pid_stat(bytes);
        let _ = parse_statm_resident_pages(bytes);
        let _ = parse_oom_value("oom_score_adj", bytes);
        if let Ok(cgroups) = parse_pid_cgroup(bytes) {
            let _ = format!("{cgroups:?}");
        }
        let cgroup = text(bytes);
        let _ = oomwatch::groups::naming::auto_group(Some(&cgroup), "comm");
    });
}

#[test]
fn fuzz_proc_host_files() {
    let seeds = seeds("proc_host", |p| {
        [
            "meminfo",
            "vmstat",
            "pressure/memory",
            "/proc/stat",
            "uptime",
            "boot_id",
        ]
        .iter()
        .any(|f| p.ends_with(f))
    });
    fuzz("proc_host", seeds, |bytes| {
        use oomwatch::procfs::host::*;
        let _ = parse_meminfo(bytes);
        let _ = parse_vmstat_oom_kill(bytes);
        let _ = parse_memory_pressure(bytes);
        let _ = parse_stat_btime(bytes);
        let _ = parse_uptime(bytes);
        let _ = parse_boot_id(bytes);
    });
}

#[test]
fn fuzz_cgroup_files() {
    let seeds = seeds("cgroup", |p| p.contains("/fs/cgroup/"));
    fuzz("cgroup", seeds, |bytes| {
        let _ = oomwatch::cgroupfs::parse_limit(bytes);
        let _ = oomwatch::cgroupfs::parse_keyed_counter(bytes, b"oom_kill");
        let _ = oomwatch::cgroupfs::parse_keyed_counter(bytes, b"under_oom");
    });
}

#[test]
fn fuzz_kmsg_records_through_the_assembler() {
    let seeds = seeds("kmsg", |p| p.ends_with(".kmsg"));
    fuzz("kmsg", seeds, |bytes| {
        let mut assembler = OomAssembler::new();
        for (at, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if let Ok(record) = oomwatch::kmsg::record::parse_record(line) {
                let (source, message) = record.source();
                for event in assembler.push(source, message, at as u64, None) {
                    let _ = format!("{event:?}");
                }
            }
        }
        let _ = assembler.finish();
    });
}

#[test]
fn fuzz_kernel_log_text_through_the_assembler() {
    let seeds = seeds("log_text", |p| {
        p.contains("/kmsg/") && !p.ends_with(".kmsg") && !p.ends_with(".md")
    });
    fuzz("log_text", seeds, |bytes| {
        let mut assembler = OomAssembler::new();
        let mut reader = oomwatch::kmsg::reader::TextReader::new();
        let text = text(bytes);
        for (at, line) in text.lines().enumerate() {
            let parsed = oomwatch::kmsg::text::parse_text_line(line);
            let _ = oomwatch::kmsg::text::glued_record(parsed.message);
            let _ = oomwatch::kmsg::kernel_lines::classify(line);
            let _ = oomwatch::kmsg::kernel_lines::form_quality(line);
            let _ = oomwatch::kmsg::kernel_lines::glued_at(line);
            reader.push_line(line, at as u64, &mut |m| {
                let _ = assembler.push(m.source, m.text, m.at, m.time).count();
            });
        }
        reader.finish(&mut |m| {
            let _ = assembler.push(m.source, m.text, m.at, m.time).count();
        });
        let _ = assembler.finish();
    });
}

#[test]
fn fuzz_process_event_datagrams() {
    fuzz("netlink", seeds("netlink", |_| false), |bytes| {
        for message in oomwatch::exits::connector::parse_datagram(bytes) {
            let _ = format!("{message:?}");
        }
    });
}

#[test]
fn fuzz_wtmp_and_pstore() {
    fuzz("wtmp", seeds("wtmp", |p| p.contains("pstore")), |bytes| {
        let records = oomwatch::reboot::wtmp::parse(bytes);
        let _ = oomwatch::reboot::wtmp::previous_boot_verdict(&records, 1.7e9);
        let _ = oomwatch::reboot::pstore::classify(bytes);
    });
}

/// The SQLite reader under wtmpdb evidence: seeds are real databases with wtmpdb's table
/// (`fuzz/corpus/wtmpdb/gen-seeds.py`), so most mutations hit page headers, cell pointers,
/// child and overflow page numbers, varints and record headers of a valid file.
#[test]
fn fuzz_wtmpdb() {
    fuzz("wtmpdb", seeds("wtmpdb", |_| false), |bytes| {
        use oomwatch::reboot::wtmpdb;
        let _ = wtmpdb::for_each_row(bytes, |row| {
            let _ = format!("{row:?}");
        });
        let _ = wtmpdb::previous_boot_verdict(bytes, 1.7e9 + 9.0 * 3600.0);
    });
}

#[test]
fn fuzz_config_file() {
    let seeds = seeds("config", |p| p.ends_with(".yml"));
    fuzz("config", seeds, |bytes| {
        let _ = oomwatch::config::parse_group_rules(&text(bytes));
    });
}

#[test]
fn fuzz_web_config_file() {
    fuzz("web_config", seeds("web_config", |_| false), |bytes| {
        let _ = oomwatch::server::web_config::parse(&text(bytes), Path::new("/etc/oomwatch"));
    });
}

#[test]
fn fuzz_state_file_and_event_log() {
    fuzz("state", seeds("state", |_| false), |bytes| {
        let _ = oomwatch::state::decode(bytes);
        let _ = oomwatch::events::parse_events(bytes);
    });
}
