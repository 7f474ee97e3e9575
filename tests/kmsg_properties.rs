//! Property tests: the parsers never panic on any input (random bytes, long lines, lines
//! built from OOM-report fragments, many parentheses), kmsg records round-trip through
//! the kernel's escaping, and the assembler's memory stays bounded however long it is
//! fed. This file owns those properties; single formats are tested beside their parsers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use oomwatch::kmsg::{
    parse_record, parse_text_line, split_records, OomAssembler, OomEvent, Source, TextReader,
    MAX_COMM, MAX_PATH, MAX_TIME, MAX_WORD,
};
use proptest::prelude::*;

/// The kernel's `msg_add_ext_text` escaping.
fn kernel_escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in bytes {
        if !(b' '..127).contains(&c) || c == b'\\' {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

/// Fragments of real OOM reports, so random lines hit the deep paths of the parsers.
const FRAGMENTS: &[&str] = &[
    "Killed process ",
    "Out of memory: ",
    "Memory cgroup out of memory: ",
    "Kill process ",
    " score 1 or sacrifice child",
    " invoked oom-killer: ",
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0",
    ",oom_memcg=/a",
    ",global_oom",
    ",task_memcg=/b",
    ",task=x",
    ",pid=12",
    ",uid=0",
    " total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:5 pgtables:6kB oom_score_adj:-7",
    ", UID 5, (",
    "(",
    ")",
    "12345",
    " ",
    ",",
    ":",
    "Task in /x killed as a result of limit of /y",
    "Tasks in /g are going to be killed due to memory.oom.group set",
    "Memory cgroup stats for /s:",
    "Mem-Info:",
    "Out of memory and no killable processes...",
    "Kernel panic - not syncing: Out of memory",
    "oomd kill: 1 2 3 /c 4",
    "sending SIGTERM to process 9 uid 0 \"n\": badness 1",
    "Killed /u.scope due to memory pressure",
    "  PID: 7, name: z, x",
    "  Sending SIGKILL to the victim",
    "\u{4e2d}",
    "\\x41",
    "[  1.000001] ",
    "Nov 18 10:12:13 h kernel: ",
    "6,1,2,-;",
];

fn fragment_line() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            1 => ".{0,12}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn source() -> impl Strategy<Value = Source<'static>> {
    prop_oneof![
        Just(Source::Kernel),
        Just(Source::Unknown),
        Just(Source::Program("systemd-oomd")),
        Just(Source::Program("earlyoom")),
        Just(Source::Program("oomd")),
        Just(Source::Program("nohang")),
        Just(Source::Program("bash")),
    ]
}

/// Upper bound of `OomAssembler::heap_bytes`: the capped strings of context (invoker,
/// constraint, memcg, task memcg from `Task in`; the summary's task, task memcg and time)
/// and one capped nohang victim name.
const HEAP_BOUND: usize =
    MAX_COMM + MAX_WORD + 2 * MAX_PATH + (MAX_COMM + MAX_PATH + MAX_TIME) + MAX_COMM;

/// Upper bound of `TextReader::heap_bytes`: one held record (a failed join may double its
/// buffer once) and its time.
const READER_BOUND: usize = 2 * oomwatch::kmsg::reader::MAX_RECORD + MAX_TIME;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_record_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_record(&bytes);
        for rec in split_records(&bytes) {
            let _ = parse_record(rec);
        }
    }

    #[test]
    fn parse_record_with_valid_header_never_panics(
        prio in any::<u32>(), seq in any::<u64>(), ts in any::<u64>(),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut rec = format!("{prio},{seq},{ts},-;").into_bytes();
        rec.extend_from_slice(&tail);
        let r = parse_record(&rec).unwrap();
        prop_assert_eq!((r.seq, r.ts_usec), (seq, ts));
        prop_assert_eq!(u64::from(r.level), u64::from(prio & 7));
        prop_assert_eq!(r.facility, prio >> 3);
    }

    #[test]
    fn record_round_trips(
        level in 0u8..8, facility in 0u32..(1 << 28), seq in any::<u64>(), ts in any::<u64>(),
        message in prop::collection::vec(any::<u8>(), 0..512),
        dict in prop::collection::vec("[A-Z]{1,8}=[a-z0-9]{0,8}", 0..3),
    ) {
        let prio = (u64::from(facility) << 3) | u64::from(level);
        let mut rec = format!("{prio},{seq},{ts},-;").into_bytes();
        rec.extend_from_slice(&kernel_escape(&message));
        rec.push(b'\n');
        for d in &dict {
            rec.extend_from_slice(format!(" {d}\n").as_bytes());
        }
        let r = parse_record(&rec).unwrap();
        prop_assert_eq!(r.level, level);
        prop_assert_eq!(r.facility, facility);
        prop_assert_eq!(r.seq, seq);
        prop_assert_eq!(r.ts_usec, ts);
        let want = String::from_utf8_lossy(&message);
        prop_assert_eq!(r.message.as_ref(), want.as_ref());
    }

    #[test]
    fn split_records_round_trips(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..128), 0..16),
    ) {
        let mut buf = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            buf.extend_from_slice(format!("6,{i},{i},-;").as_bytes());
            buf.extend_from_slice(&kernel_escape(m));
            buf.extend_from_slice(b"\n SUBSYSTEM=x\n");
        }
        let parsed: Vec<_> = split_records(&buf).map(|r| parse_record(r).unwrap()).collect();
        prop_assert_eq!(parsed.len(), messages.len());
        for (i, (r, m)) in parsed.iter().zip(&messages).enumerate() {
            prop_assert_eq!(r.seq, i as u64);
            let want = String::from_utf8_lossy(m);
            prop_assert_eq!(r.message.as_ref(), want.as_ref());
        }
    }

    #[test]
    fn text_lines_never_panic_and_only_slice(line in prop_oneof![".{0,400}", fragment_line()]) {
        let t = parse_text_line(&line);
        let range = line.as_ptr() as usize..=line.as_ptr() as usize + line.len();
        prop_assert!(range.contains(&(t.message.as_ptr() as usize)));
        prop_assert!(t.message.len() <= line.len());
        if let Some(time) = t.time {
            prop_assert!(range.contains(&(time.as_ptr() as usize)));
        }
    }

    #[test]
    fn assembler_never_panics_and_stays_bounded(
        lines in prop::collection::vec((source(), fragment_line()), 0..200),
    ) {
        let mut a = OomAssembler::new();
        let mut reader = TextReader::new();
        for (i, (src, line)) in lines.iter().enumerate() {
            for event in a.push(*src, line, i as u64, Some(line)) {
                if let OomEvent::Kill(k) = event {
                    prop_assert!(k.comm.len() <= MAX_COMM);
                    prop_assert!(k.memcg.as_ref().map_or(0, String::len) <= MAX_PATH);
                }
            }
            prop_assert!(a.heap_bytes() <= HEAP_BOUND);
            // The same line as text, through the text reader.
            reader.push_line(line, i as u64, &mut |m| {
                let _ = a.push(m.source, m.text, m.at, m.time);
            });
            prop_assert!(reader.heap_bytes() <= READER_BOUND);
        }
        reader.finish(&mut |m| {
            let _ = a.push(m.source, m.text, m.at, m.time);
        });
        let _ = a.finish();
    }

    #[test]
    fn many_parentheses(n in 0usize..2000, m in 0usize..2000) {
        let comm = format!("{}{}", "(".repeat(n), ")".repeat(m));
        let line = format!("Out of memory: Killed process 5 ({comm}) total-vm:1kB, anon-rss:1kB");
        let mut a = OomAssembler::new();
        let events: Vec<OomEvent> = a.push(Source::Kernel, &line, 1, None).collect();
        // A comm is at most 64 bytes: a longer one is no kill line at all.
        if n + m <= 64 {
            match events.as_slice() {
                [OomEvent::Kill(k)] => {
                    prop_assert_eq!(k.pid, 5);
                    prop_assert_eq!(k.comm.len(), n + m);
                    prop_assert_eq!(k.total_vm_kb, Some(1));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
        let _ = a.push(Source::Kernel, &format!("oom-kill:constraint=({comm}),task={comm},pid=1,uid=2"), 2, None);
        let _ = a.push(Source::Kernel, &format!("Kill process 1 ({comm}) score 2 or sacrifice child"), 3, None);
        let _ = a.finish();
    }
}

/// Tiny deterministic generator so the long run is reproducible without proptest's
/// shrinking (100k lines per case would be too slow to shrink).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn hundred_thousand_random_lines_keep_state_bounded() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut a = OomAssembler::new();
    let huge = "/x".repeat(10_000);
    let mut max_heap = 0;
    let mut kills = 0u64;
    for i in 0..100_000u64 {
        let mut line = match rng.below(8) {
            0 => format!("Out of memory: Killed process {} (", rng.below(1 << 20)),
            1 => format!("x invoked oom-killer: gfp_mask=0x0, order=0{huge}"),
            2 => format!(
                "oom-kill:constraint=C,oom_memcg={huge},task_memcg={huge},task=a,pid=1,uid=0"
            ),
            3 => format!("Task in {huge} killed as a result of limit of {huge}"),
            _ => String::new(),
        };
        for _ in 0..rng.below(12) {
            match rng.below(10) {
                0 => line.push_str(&huge),
                1 => line.push_str(&"(".repeat(rng.below(300))),
                2 => line.push_str(&")".repeat(rng.below(300))),
                _ => line.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            }
        }
        let src = match rng.below(4) {
            0 => Source::Program("nohang"),
            1 => Source::Program("earlyoom"),
            _ => Source::Kernel,
        };
        for event in a.push(src, &line, i, Some(&huge)) {
            if matches!(event, OomEvent::Kill(_)) {
                kills += 1;
            }
        }
        max_heap = max_heap.max(a.heap_bytes());
    }
    assert!(max_heap <= HEAP_BOUND, "{max_heap} > {HEAP_BOUND}");
    // The generator does produce kill lines, so the deep paths ran.
    assert!(kills > 0);
}

#[test]
fn very_long_lines_do_not_panic_nor_take_long() {
    let started = std::time::Instant::now();
    let long = "Killed process 1 (".to_owned() + &"a) b(".repeat(200_000) + ") total-vm:1kB";
    let mut a = OomAssembler::new();
    for event in a.push(Source::Kernel, &long, 1, None) {
        assert!(matches!(event, OomEvent::Kill(k) if k.comm.len() <= MAX_COMM));
    }
    let t = parse_text_line(&long);
    assert_eq!(t.source, Source::Unknown);
    // Many forms glued on one long line, and a long line of fragments, through the
    // text reader: linear work.
    let glued = "Out of memory: Killed process 1 (a) total-vm:1kB ".repeat(1_300);
    let fragments = FRAGMENTS.concat().repeat(100);
    let mut reader = TextReader::new();
    let mut kills = 0;
    for line in [glued.as_str(), fragments.as_str(), &long] {
        reader.push_line(line, 1, &mut |m| {
            kills += a.push(m.source, m.text, m.at, m.time).count();
        });
    }
    assert!(kills >= 1_300, "{kills}");
    let mut rec = b"6,1,2,-;".to_vec();
    rec.extend(std::iter::repeat_n(b'\\', 1_000_000));
    assert_eq!(parse_record(&rec).unwrap().message.len(), 1_000_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
