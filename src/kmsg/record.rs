//! `/dev/kmsg` records (Documentation/ABI/testing/dev-kmsg): one record is
//! `prio,seq,ts_usec,flags[,more];message\n` followed by optional dictionary lines that
//! start with a space (` SUBSYSTEM=...`).
//!
//! This file owns parsing one record's bytes into a [`Record`] (numbers, and the message
//! with the kernel's `\xHH` escapes undone), and cutting a file of many records into
//! record slices. It must not open or read anything, and must not interpret the message
//! (`oom.rs` does); it allocates only when the message has an escape or invalid UTF-8, and
//! never more than the input's length.

use std::borrow::Cow;
use std::fmt;

use super::text::{split_program, split_program_pid, Source};

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Syslog level, `prio & 7` (0 emerg ... 7 debug).
    pub level: u8,
    /// Syslog facility, `prio >> 3`: 0 is the kernel; userspace writers to `/dev/kmsg`
    /// get 1 (user) unless they say otherwise.
    pub facility: u32,
    /// The record's sequence number (gaps mean records were overwritten before reading).
    pub seq: u64,
    /// Monotonic microseconds since boot when the record was stored.
    pub ts_usec: u64,
    /// The message with `\xHH` escapes undone, as lossy UTF-8. Dictionary lines are not
    /// part of it.
    pub message: Cow<'a, str>,
}

impl Record<'_> {
    /// Who wrote the record and the message without any `name[pid]: ` prefix: facility 0
    /// is the kernel; another facility is a userspace writer, named if its message
    /// starts with `name[pid]: ` and `Program("")` if not, so that nothing a program
    /// writes into `/dev/kmsg` is taken for a kernel message.
    pub fn source(&self) -> (Source<'_>, &str) {
        let message: &str = &self.message;
        if self.facility == 0 {
            return (Source::Kernel, message);
        }
        match split_program(message) {
            Some((name, rest)) => (Source::Program(name), rest),
            None => (Source::Program(""), message),
        }
    }
}

impl Record<'_> {
    /// The pid in a userspace writer's `name[pid]: ` prefix (journald forwards with the
    /// sender's pid from its socket credentials); None for the kernel, a writer that
    /// names no pid, or a pid past u32.
    pub fn writer_pid(&self) -> Option<u32> {
        if self.facility == 0 {
            return None;
        }
        split_program_pid(&self.message).and_then(|(_, pid, _)| pid)
    }
}

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The record has no bytes before its first newline.
    Empty,
    /// No `;` separates the header from the message.
    MissingSemicolon,
    /// The priority field is missing, not a decimal number, or too large.
    BadPriority,
    /// The sequence-number field is missing, not a decimal number, or too large.
    BadSequence,
    /// The timestamp field is missing, not a decimal number, or too large.
    BadTimestamp,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordError::Empty => "empty kmsg record",
            RecordError::MissingSemicolon => "kmsg record has no ';' between header and message",
            RecordError::BadPriority => "kmsg record has a missing or non-numeric priority field",
            RecordError::BadSequence => {
                "kmsg record has a missing or non-numeric sequence-number field"
            }
            RecordError::BadTimestamp => "kmsg record has a missing or non-numeric timestamp field",
        })
    }
}

impl std::error::Error for RecordError {}

/// Parses one record as returned by one `read()` of `/dev/kmsg`. Anything after the first
/// newline (dictionary lines) is ignored, as is a `\r` before it. Header fields after the
/// timestamp (flags and any later ones) are not checked.
pub fn parse_record(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(RecordError::Empty);
    }
    let semi = line
        .iter()
        .position(|&b| b == b';')
        .ok_or(RecordError::MissingSemicolon)?;
    let mut fields = line[..semi].split(|&b| b == b',');
    let prio = fields
        .next()
        .and_then(parse_decimal)
        .ok_or(RecordError::BadPriority)?;
    let seq = fields
        .next()
        .and_then(parse_decimal)
        .ok_or(RecordError::BadSequence)?;
    let ts_usec = fields
        .next()
        .and_then(parse_decimal)
        .ok_or(RecordError::BadTimestamp)?;
    let facility = u32::try_from(prio >> 3).map_err(|_| RecordError::BadPriority)?;
    Ok(Record {
        // `& 7` keeps the value below 8, so the cast cannot truncate.
        level: (prio & 7) as u8,
        facility,
        seq,
        ts_usec,
        message: unescape(&line[semi + 1..]),
    })
}

/// Undoes the kernel's `\xHH` escaping (`msg_add_ext_text` escapes bytes below 0x20,
/// from 0x7f, and `\`) and decodes as lossy UTF-8. Borrows when there is nothing to do.
pub fn unescape(bytes: &[u8]) -> Cow<'_, str> {
    if !bytes.contains(&b'\\') {
        return String::from_utf8_lossy(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 2).and_then(|&c| hex(c)),
                bytes.get(i + 3).and_then(|&c| hex(c)),
            ) {
                out.push(hi << 4 | lo);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Cuts a buffer holding many records, one per line, each optionally followed by
/// dictionary lines that start with a space, into one slice per record (header line plus
/// its dictionary lines, without the final newline). Empty lines and dictionary lines
/// with no record before them are skipped.
pub fn split_records(buf: &[u8]) -> SplitRecords<'_> {
    SplitRecords { rest: buf }
}

/// Iterator returned by [`split_records`].
#[derive(Debug, Clone)]
pub struct SplitRecords<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SplitRecords<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, after) = split_line(self.rest);
            if line.is_empty() || line[0] == b' ' {
                self.rest = after;
                continue;
            }
            let start = self.rest;
            let mut end = line.len();
            let mut cursor = after;
            while cursor.first() == Some(&b' ') {
                let (dict, next) = split_line(cursor);
                // `dict` starts where `cursor` does; its end is an offset into `start`.
                end = start.len() - cursor.len() + dict.len();
                cursor = next;
            }
            self.rest = cursor;
            return Some(&start[..end]);
        }
    }
}

/// `(line without '\n', rest after '\n')`.
fn split_line(buf: &[u8]) -> (&[u8], &[u8]) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => (&buf[..i], &buf[i + 1..]),
        None => (buf, &[]),
    }
}

fn parse_decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_record() {
        let r = parse_record(b"3,418,294385120,-;Memory cgroup out of memory: Killed process 6438 (oom (fix) 1:[2]) total-vm:60952kB\n").unwrap();
        assert_eq!(r.level, 3);
        assert_eq!(r.facility, 0);
        assert_eq!(r.seq, 418);
        assert_eq!(r.ts_usec, 294_385_120);
        assert!(matches!(r.message, Cow::Borrowed(_)));
        assert_eq!(
            r.message,
            "Memory cgroup out of memory: Killed process 6438 (oom (fix) 1:[2]) total-vm:60952kB"
        );
        assert_eq!(r.source().0, Source::Kernel);
    }

    #[test]
    fn ignores_dictionary_and_extra_header_fields() {
        let r =
            parse_record(b"6,339,5,c,extra;usb 1-1: new device\n SUBSYSTEM=usb\n DEVICE=c189:1\n")
                .unwrap();
        assert_eq!(r.message, "usb 1-1: new device");
        assert_eq!((r.level, r.seq, r.ts_usec), (6, 339, 5));
    }

    #[test]
    fn unescapes() {
        let r = parse_record(b"6,1,2,-;a\\x0ab\\x5cc\\xe4\\xb8\\xad\\xZZ\\x4").unwrap();
        assert_eq!(r.message, "a\nb\\c\u{4e2d}\\xZZ\\x4");
        let r = parse_record(b"6,1,2,-;bad \\xff utf8").unwrap();
        assert_eq!(r.message, "bad \u{fffd} utf8");
    }

    #[test]
    fn userspace_writer() {
        let r = parse_record(b"30,7,8,-;systemd-oomd[612]: Killed /a due to b").unwrap();
        assert_eq!(r.facility, 3);
        assert_eq!(r.level, 6);
        assert_eq!(
            r.source(),
            (Source::Program("systemd-oomd"), "Killed /a due to b")
        );
        let r = parse_record(b"14,7,8,-;oomd kill: 1 2 3 /x 4").unwrap();
        assert_eq!(r.source(), (Source::Program(""), "oomd kill: 1 2 3 /x 4"));
        let r = parse_record(b"12,7,8,-;Killed process 1 (spoof) total-vm:1kB").unwrap();
        assert_eq!(r.source().0, Source::Program(""));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(parse_record(b""), Err(RecordError::Empty));
        assert_eq!(parse_record(b"\n x"), Err(RecordError::Empty));
        assert_eq!(parse_record(b"6,1,2,-"), Err(RecordError::MissingSemicolon));
        assert_eq!(parse_record(b"x,1,2,-;m"), Err(RecordError::BadPriority));
        assert_eq!(parse_record(b"6,,2,-;m"), Err(RecordError::BadSequence));
        assert_eq!(parse_record(b"6;m"), Err(RecordError::BadSequence));
        assert_eq!(parse_record(b"6,1,-2,-;m"), Err(RecordError::BadTimestamp));
        assert_eq!(
            parse_record(b"6,99999999999999999999,2,-;m"),
            Err(RecordError::BadSequence)
        );
        assert_eq!(
            parse_record(b"99999999999999999999,1,2,-;m"),
            Err(RecordError::BadPriority)
        );
        assert!(RecordError::MissingSemicolon.to_string().contains("';'"));
    }

    #[test]
    fn splits_records_with_dictionaries() {
        let buf = b" orphan\n6,1,2,-;a\n SUBSYSTEM=x\n\n6,2,3,-;b\n DEVICE=y\n K=v\n6,3,4,-;c";
        let v: Vec<&[u8]> = split_records(buf).collect();
        assert_eq!(
            v,
            vec![
                &b"6,1,2,-;a\n SUBSYSTEM=x"[..],
                &b"6,2,3,-;b\n DEVICE=y\n K=v"[..],
                &b"6,3,4,-;c"[..]
            ]
        );
        assert_eq!(parse_record(v[1]).unwrap().message, "b");
    }
}
