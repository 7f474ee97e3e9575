//! Throughput of the kernel-log path the exporter runs on every record: split a buffer
//! of kmsg records, `parse_record`, `Record::source`, `OomAssembler::push`. The stream is
//! about 1M records: ordinary kernel chatter with the fixtures' OOM reports mixed in.
//! Also times the text path `oomwatch scan` runs (`TextReader`, which finds each line's
//! message and rejoins broken ones, then push) on the same stream as dmesg text.
//! Run with `cargo bench --bench kmsg`. It owns only the measurement: it reads
//! the fixtures and must not change what the parsers do.

use std::time::Instant;

use oomwatch::kmsg::{parse_record, split_records, Message, OomAssembler, OomEvent, TextReader};

/// Typical non-OOM kernel and kmsg-writer messages, a few with escapes or dictionaries,
/// a few containing "ill" so they take the slower classification path.
const CHATTER: &[(u32, &str, &str)] = &[
    (6, "EXT4-fs (vda): mounted filesystem 0a1b2c3d-0000-4000-8000-1234567890ab r/w with ordered data mode. Quota mode: none.", ""),
    (5, "audit: type=1400 audit(1731924733.120:88): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"snap.firefox\" name=\"/proc/pressure/memory\" pid=2210 comm=\"firefox\" requested_mask=\"r\" denied_mask=\"r\" fsuid=1000 ouid=0", ""),
    (6, "IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready", ""),
    (6, "usb 1-1: new high-speed USB device number 2 using xhci_hcd", "\n SUBSYSTEM=usb\n DEVICE=c189:1"),
    (4, "nf_conntrack: nf_conntrack: table full, dropping packet", ""),
    (6, "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.", ""),
    (6, "python3[123456]: segfault at 0 ip 00007f2b1c0e5a10 sp 00007ffd3f1e2a88 error 4 in libc.so.6[7f2b1c000000+195000] likely on CPU 3 (core 3, socket 0)", ""),
    (30, "systemd[1]: Started session-42.scope - Session 42 of User alice.", ""),
    (4, "nvme nvme0: I/O tag 12 (100c) QID 3 timeout, will reset controller", ""),
    (6, "br-9f1c2d: port 2(veth1a2b3c4) entered forwarding state", ""),
    (3, "ata1.00: failed command: READ FPDMA QUEUED", ""),
    (6, "kauditd_printk_skb: 12 callbacks suppressed", ""),
    (4, "hrtimer: interrupt took 123456 ns", ""),
    (6, "device-mapper: uevent: version 1.0.3", "\n SUBSYSTEM=misc"),
    (5, "random: crng init done", ""),
    (6, "Unit skill-test.service entered failed state\\x0a(continued line)", ""),
];

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kmsg/");
    let reports: Vec<Vec<u8>> = ["real-6.18-memcg-v1.kmsg", "v6.1-memcg-oomgroup.kmsg"]
        .iter()
        .filter_map(|f| std::fs::read(format!("{dir}{f}")).ok())
        .collect();
    if reports.len() != 2 {
        eprintln!("bench: fixtures not found under {dir}");
        std::process::exit(1);
    }

    // Build ~1M records: after every 20_000 chatter records, one OOM report.
    let mut buf = Vec::with_capacity(150 << 20);
    let mut seq = 0u64;
    let mut records = 0u64;
    let mut expected_kills = 0u64;
    while records < 1_000_000 {
        for i in 0..20_000usize {
            let (prio, msg, dict) = CHATTER[i % CHATTER.len()];
            buf.extend_from_slice(format!("{prio},{seq},{},-;{msg}{dict}\n", seq * 17).as_bytes());
            seq += 1;
            records += 1;
        }
        // The real report has one kill; the 6.1 oom.group report two.
        let which = (records / 20_000) as usize % 2;
        for rec in split_records(&reports[which]) {
            buf.extend_from_slice(rec);
            buf.push(b'\n');
            records += 1;
        }
        expected_kills += [1, 2][which];
    }

    // kmsg path.
    let mut best = f64::INFINITY;
    let mut kills = 0u64;
    let mut n = 0u64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut asm = OomAssembler::new();
        kills = 0;
        n = 0;
        for rec in split_records(&buf) {
            n += 1;
            let Ok(r) = parse_record(rec) else { continue };
            let (source, msg) = r.source();
            for event in asm.push(source, msg, r.seq, None) {
                if matches!(event, OomEvent::Kill(_)) {
                    kills += 1;
                }
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    if kills != expected_kills {
        eprintln!("bench: {kills} kills, expected {expected_kills}");
        std::process::exit(1);
    }
    println!(
        "kmsg path: {n} records ({:.1} MiB), {kills} kills, best of 5: {:.3} s = {:.2} M records/s",
        buf.len() as f64 / (1 << 20) as f64,
        best,
        n as f64 / best / 1e6
    );

    // Text path: the same stream as `dmesg` lines.
    let mut text = String::with_capacity(buf.len());
    for rec in split_records(&buf) {
        if let Ok(r) = parse_record(rec) {
            let ts = r.ts_usec;
            text.push_str(&format!(
                "[{:5}.{:06}] {}\n",
                ts / 1_000_000,
                ts % 1_000_000,
                r.message.replace('\n', " ")
            ));
        }
    }
    let mut best = f64::INFINITY;
    let mut lines = 0u64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut reader = TextReader::new();
        let mut asm = OomAssembler::new();
        kills = 0;
        lines = 0;
        let mut take = |m: Message<'_>| {
            for event in asm.push(m.source, m.text, m.at, m.time) {
                if matches!(event, OomEvent::Kill(_)) {
                    kills += 1;
                }
            }
        };
        for line in text.lines() {
            lines += 1;
            reader.push_line(line, lines, &mut take);
        }
        reader.finish(&mut take);
        best = best.min(start.elapsed().as_secs_f64());
    }
    if kills != expected_kills {
        eprintln!("bench: text path found {kills} kills, expected {expected_kills}");
        std::process::exit(1);
    }
    println!(
        "text path: {lines} dmesg lines, {kills} kills, best of 5: {:.3} s = {:.2} M lines/s",
        best,
        lines as f64 / best / 1e6
    );
}
