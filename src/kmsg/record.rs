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

use super::text::Source;

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
    ///
    /// The split is journald's: it forwards a program's message as `identifier[pid]: `
    /// then the message, and both the identifier and the message are the program's own
    /// text. So the name is everything before the first `[digits]:` (whatever it holds),
    /// and a record with no `[digits]:` at all is the only untagged one.
    pub fn source(&self) -> (Source<'_>, &str) {
        let message: &str = &self.message;
        if self.facility == 0 {
            return (Source::Kernel, message);
        }
        // oomd's own record, whose cgroup path may hold a `[digits]:` of its own: read as
        // oomd's, untagged or not, so that its writer is checked rather than the line
        // lost under a made-up name.
        if message.starts_with("oomd kill: ") {
            return (Source::Program(""), message);
        }
        match pid_tags(message).next() {
            Some(tag) => (Source::Program(&message[..tag.start]), tag.rest(message)),
            None => (Source::Program(""), message),
        }
    }

    /// Who wrote the record, as far as its text can tell: see [`Writer`].
    pub fn writer(&self) -> Writer {
        if self.facility == 0 {
            return Writer::Kernel;
        }
        let mut tags = pid_tags(&self.message);
        match (tags.next(), tags.next()) {
            (None, _) => Writer::Untagged,
            (Some(tag), None) => match self.message[tag.digits.clone()].parse() {
                Ok(pid) => Writer::Pid(pid),
                Err(_) => Writer::Unknown,
            },
            (Some(_), Some(_)) => Writer::Unknown,
        }
    }
}

/// The writer of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Facility 0: the kernel (userspace writes to `/dev/kmsg` are given facility 1).
    Kernel,
    /// A userspace record without any `[digits]:`: written straight into `/dev/kmsg`,
    /// which only root can open for writing (journald always adds `[pid]: `).
    Untagged,
    /// The one `[digits]:` of a journald-forwarded record: the sender's pid, from its
    /// socket credentials.
    Pid(u32),
    /// More than one `[digits]:` (the program's own text holds one too, so which is
    /// journald's cannot be told), or a pid past u32: never trusted.
    Unknown,
}

/// A `[digits]:` in a message: where it starts and where its digits are.
struct PidTag {
    start: usize,
    digits: std::ops::Range<usize>,
}

impl PidTag {
    /// The message after the tag and its one space.
    fn rest<'m>(&self, message: &'m str) -> &'m str {
        let after = &message[self.digits.end + 2..];
        after.strip_prefix(' ').unwrap_or(after)
    }
}

/// Every `[digits]:` in `message`, in order.
fn pid_tags(message: &str) -> impl Iterator<Item = PidTag> + '_ {
    let bytes = message.as_bytes();
    bytes.iter().enumerate().filter_map(move |(start, &b)| {
        if b != b'[' {
            return None;
        }
        let first = start + 1;
        let len = bytes[first..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = first + len;
        (len > 0 && bytes.get(end..end + 2) == Some(b"]:")).then_some(PidTag {
            start,
            digits: first..end,
        })
    })
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
    fn the_writer_is_journalds_one_pid_tag_or_no_one() {
        let writer = |text: &str| {
            let line = format!("14,7,8,-;{text}");
            let r = parse_record(line.as_bytes()).expect("record");
            let (source, rest) = r.source();
            let name = match source {
                Source::Program(name) => name.to_owned(),
                other => panic!("{other:?}"),
            };
            (r.writer(), (name, rest.to_owned()))
        };
        assert_eq!(
            writer("earlyoom[45]: sending SIGTERM"),
            (
                Writer::Pid(45),
                ("earlyoom".into(), "sending SIGTERM".into())
            )
        );
        assert_eq!(writer("oomd kill: 1 2 3 /x 4").0, Writer::Untagged);
        // The identifier and the message are the program's text: a second tag in either
        // leaves journald's unknown.
        for forged in [
            "earlyoom[1]: sending SIGTERM to process 5 uid 0 \"x\":[4567]: hi",
            "oomd[1]:[4567]: oomd kill: 1 2 3 /a 4",
            "nohang[1]: Sending SIGKILL[4567]:  to the victim",
        ] {
            assert_eq!(writer(forged).0, Writer::Unknown, "{forged}");
        }
        // A tag is a tag wherever it is: not an untagged line. oomd's record is read as
        // oomd's, with the tag's writer to check (an identifier `oomd kill: …` is
        // journald's forwarding of someone's message).
        let (who, (name, rest)) = writer("oomd kill: 1 2 3 /x 4[4567]: x");
        assert_eq!(who, Writer::Pid(4567));
        assert_eq!(
            (name.as_str(), rest.as_str()),
            ("", "oomd kill: 1 2 3 /x 4[4567]: x")
        );
        assert_eq!(writer("earlyoom[1][4567]: x").1 .0, "earlyoom[1]");
        // oomd's record stays oomd's whatever its cgroup path holds.
        let (who, (name, _)) = writer("oomd kill: 1 2 3 /user.slice/x[1]:y 4");
        assert_eq!((who, name.as_str()), (Writer::Pid(1), ""));
        // Past u32: unknown, never untagged.
        assert_eq!(writer("earlyoom[99999999999]: x").0, Writer::Unknown);
        // The kernel.
        let r = parse_record(b"6,7,8,-;oomd kill: 1 2 3 /x 4").expect("record");
        assert_eq!(r.writer(), Writer::Kernel);
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
