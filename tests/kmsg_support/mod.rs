//! Test helpers shared by the integration tests: read a fixture and run it through the
//! parsers the way the exporter will (kmsg files record by record, text files line by
//! line). Only tests use this; it must not hold expectations.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use oomwatch::kmsg::{parse_record, split_records, KernelKill, OomAssembler, OomEvent, TextReader};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kmsg")
        .join(name)
}

pub fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// All events of a fixture, read the way the exporter and `oomwatch scan` read them:
/// `.kmsg` files as records (`at` = seq, `time` = ts_usec), anything else as text through
/// the text reader (`at` = 1-based line number); the end of the input ends the last
/// report.
pub fn events(name: &str) -> Vec<OomEvent> {
    let bytes = read_fixture(name);
    if name.ends_with(".kmsg") {
        return record_events(&bytes);
    }
    text_events(&String::from_utf8_lossy(&bytes))
}

/// The events of a buffer of kmsg records.
pub fn record_events(bytes: &[u8]) -> Vec<OomEvent> {
    let mut asm = OomAssembler::new();
    let mut out = Vec::new();
    for rec in split_records(bytes) {
        let r = parse_record(rec).unwrap_or_else(|e| panic!("{e}"));
        let ts = r.ts_usec.to_string();
        let (source, msg) = r.source();
        out.extend(asm.push(source, msg, r.seq, Some(&ts)));
    }
    out.extend(asm.finish());
    out
}

/// The events of log text.
pub fn text_events(text: &str) -> Vec<OomEvent> {
    let mut asm = OomAssembler::new();
    let mut reader = TextReader::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        reader.push_line(line, i as u64 + 1, &mut |m| {
            out.extend(asm.push(m.source, m.text, m.at, m.time));
        });
    }
    reader.finish(&mut |m| out.extend(asm.push(m.source, m.text, m.at, m.time)));
    out.extend(asm.finish());
    out
}

pub fn kills(events: &[OomEvent]) -> Vec<KernelKill> {
    events
        .iter()
        .filter_map(|e| match e {
            OomEvent::Kill(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// A kill with the position fields cleared, to compare the same report across formats.
pub fn without_position(mut k: KernelKill) -> KernelKill {
    k.at = 0;
    k.time = None;
    k
}
