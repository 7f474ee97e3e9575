//! `oomwatch scan` streams: the bytes it holds while reading a log do not grow with the
//! number of kills in it. A generated log of ten thousand and of a hundred thousand
//! OOM reports (every report form, some broken over lines, some summary-only) goes
//! through the scan's own reading loop (`scan_log::scan_stream`), and the live heap
//! (bytes allocated minus bytes freed, counted by a counting global allocator) is sampled
//! as each row comes out. It owns only that measurement; the rows themselves are checked
//! by the corpus and fixture tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::io::Read;

use oomwatch::commands::scan_log::scan_stream;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Report templates; `{p}` is a pid, each template holds the given number of kills.
const REPORTS: [(&str, usize); 5] = [
    (
        "[ 1.000000] a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n\
         [ 1.000001] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/pod/{p},task_memcg=/pod/{p}/c,task=worker,pid={p},uid=0\n\
         [ 1.000002] Memory cgroup out of memory: Killed process {p} (worker) total-vm:1000kB, anon-rss:900kB, file-rss:1kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0\n\
         [ 1.000003] oom_reaper: reaped process {p} (worker), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB\n",
        1,
    ),
    (
        "Jul 31 09:20:22 h kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=user.slice,mems_allowed=0,global_oom,task_memcg=/user.slice/app.scope,task=Web Content,pid={p},uid=1000\n\
         Jul 31 09:20:22 h kernel: RAX: fffffffffffffb00 RBX: 0000611ed3033d40 RCX: 0000000000000780\n",
        1,
    ),
    (
        "> [  54.447927] Out of memory: Kill process {p} (CRI_main) score 180 or\n\
         > sacrifice child\n\
         > [  54.528280] Killed process {p} (CRI_main) total-vm:51832kB,\n\
         > anon-rss:3140kB, file-rss:1592kB, shmem-rss:236kB\n\
         > [  54.528281] Kill process 1{p} (CRI_main) sharing same memory\n",
        2,
    ),
    (
        "[ 2.000000] Memory cgroup out of memory: Killed process {p} (node) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0\n\
         [ 2.000001] Tasks in /kubepods.slice/pod-x.slice are going to be killed due to memory.oom.group set\n\
         [ 2.000002] Memory cgroup out of memory: Killed process {p} (node) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0\n\
         [ 2.000003] Memory cgroup out of memory: Killed process 2{p} (sidecar) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0\n\
         [ 2.000004] oom_reaper: reaped process {p} (node), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB\n",
        2,
    ),
    (
        "Feb 16 13:58:29 h earlyoom[1233]: sending SIGTERM to process {p} uid 1000 \"cluster\": badness 1264, VmRSS 23964 MiB\n",
        1,
    ),
];

/// A log of `reports` reports, made as it is read (the input itself is never in memory).
struct Log {
    left: usize,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Log {
    fn new(reports: usize) -> Self {
        Log {
            left: reports,
            next: 0,
            buf: Vec::with_capacity(4096),
            pos: 0,
        }
    }

    fn kills(reports: usize) -> usize {
        (0..reports).map(|i| REPORTS[i % REPORTS.len()].1).sum()
    }
}

impl Read for Log {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(0);
            }
            self.left -= 1;
            let (template, _) = REPORTS[self.next % REPORTS.len()];
            let pid = 1000 + self.next % 50_000;
            self.next += 1;
            self.buf.clear();
            self.buf
                .extend_from_slice(template.replace("{p}", &pid.to_string()).as_bytes());
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `(rows, most live heap bytes seen as a row came out)`.
fn scan(reports: usize) -> (usize, isize) {
    let region = Region::new(ALLOCATOR);
    let mut peak = 0isize;
    let mut rows = 0usize;
    let found = scan_stream(Log::new(reports), &mut |row| {
        rows += 1;
        std::hint::black_box(&row);
        let change = region.change();
        let live = change.bytes_allocated as isize - change.bytes_deallocated as isize;
        peak = peak.max(live);
        Ok(())
    })
    .expect("scan");
    assert_eq!(found, rows);
    (rows, peak)
}

#[test]
fn scan_memory_does_not_grow_with_the_number_of_kills() {
    let (small_rows, small_peak) = scan(10_000);
    assert_eq!(small_rows, Log::kills(10_000));
    let (big_rows, big_peak) = scan(100_000);
    assert_eq!(big_rows, Log::kills(100_000));
    eprintln!(
        "live heap at most {small_peak} bytes over {small_rows} rows, {big_peak} bytes over {big_rows} rows"
    );
    assert!(
        big_peak <= small_peak + 16 * 1024,
        "{big_peak} bytes for {big_rows} rows vs {small_peak} for {small_rows}"
    );
    assert!(big_peak < 256 * 1024, "{big_peak}");
}
