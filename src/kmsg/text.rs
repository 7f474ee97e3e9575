//! One line of kernel-log *text*, whatever tool printed it and whatever was put in front
//! of it: `dmesg` (plain, `-T` in any language, `-r`, `-x`, `--time-format iso`, caller
//! ids), syslog files (BSD or RFC 3339 stamps, with or without a host, any language),
//! `journalctl` (short, -iso, -full, -monotonic, -unix), raw `/dev/kmsg` record lines,
//! and the same with a prefix nobody planned for (grep -H/-n file names, quote marks,
//! indentation, line numbers, comment marks, HTML tags).
//!
//! This file owns finding where the kernel message starts in such a line, by the log
//! formats' own stamps and tags, or by a kernel form right after junk; the time *as
//! printed* and who wrote the line ([`Source`]) come from the prefix when it is
//! understood. It also finds where a second record was glued onto a line
//! ([`glued_record`]). It only slices the input: no allocation, no I/O, no
//! interpretation of the message (that is `oom.rs`), no rejoining of broken lines (that
//! is `reader.rs`), no unescaping of `\xHH` in kmsg record lines (that is `record.rs`).
//! Formats and their sources are in docs/kernel-log.md ("Log text").

use super::anchors::starts_form;
use super::stamps::{
    all_digits, bracket_stamp, caller_id_len, clock_len, date_at, decoded_prefix, dmesg_stamp_len,
    is_english_month, is_monotonic, prio_at,
};

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The kernel (syslog tag `kernel`, kmsg facility 0, or a `dmesg` line that does not
    /// name a program).
    Kernel,
    /// A userspace program, by the name it logged under: the syslog/journal tag without
    /// `[pid]`, or, in `dmesg`/kmsg text, the `name[pid]: ` that userspace writers to
    /// `/dev/kmsg` put in front of their message. The name is empty for a kmsg record
    /// with a userspace facility that does not name its writer.
    Program(&'a str),
    /// Nothing recognisable before the message: plain text could be anyone's.
    Unknown,
}

/// How a line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A `prio,seq,ts;message` kmsg record line: one record, never split.
    KmsgRecord,
    /// A stamp, a tag or a kernel form starts a record on this line.
    Record,
    /// Nothing recognisable: the continuation of a broken line, or prose.
    Other,
}

/// A kernel-log text line split into its parts. Every field borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLine<'a> {
    /// The time exactly as printed (`294.384649`, `Sun Nov 22 02:54:31 2026`,
    /// `Nov 18 10:12:13`, `2024-11-18T10:12:13.123456+00:00`, a kmsg `ts_usec`, ...).
    pub time: Option<&'a str>,
    /// Who wrote the line.
    pub source: Source<'a>,
    /// The message, without time, host, tag or junk (the whole line for `Other`).
    pub message: &'a str,
    /// How the line starts.
    pub kind: LineKind,
    /// Byte offset of the message in the line.
    pub column: usize,
}

/// Longest syslog tag or program name accepted (longer is not a tag).
const MAX_TAG: usize = 128;
/// How far after a syslog stamp the tag is looked for (host, facility, harness junk).
const MAX_HEADER: usize = 256;

/// Splits one text line (a trailing `\n` / `\r\n` is ignored). Never fails: a line in no
/// known form comes back as `LineKind::Other`, `Source::Unknown`, with the whole line as
/// its message.
pub fn parse_text_line(line: &str) -> TextLine<'_> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(t) = kmsg_line(line) {
        return t;
    }
    match first_element(line) {
        Some(start) => parse_prefix(line, start),
        None => TextLine {
            time: None,
            source: Source::Unknown,
            message: line,
            kind: LineKind::Other,
            column: 0,
        },
    }
}

/// Splits `name[pid]: rest` (the form userspace writers to `/dev/kmsg` and the kernel's
/// own per-task messages use) into `(name, rest)`. The name may not contain spaces,
/// brackets or colons.
pub fn split_program(message: &str) -> Option<(&str, &str)> {
    let open = message.find('[')?;
    let name = &message[..open];
    if name.is_empty() || name.len() > MAX_TAG || name.bytes().any(|b| b == b' ' || b == b':') {
        return None;
    }
    let after = &message[open + 1..];
    let close = after.find(']')?;
    if close == 0 || !after[..close].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = after[close + 1..].strip_prefix(':')?;
    Some((name, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// A continuation line without its quote marks (`> `, `>>> `, `| `) and comment marks:
/// `(text, indentation)` where indentation is the whitespace before `text` once the
/// marks are gone.
pub fn strip_quote_marks(line: &str) -> (&str, usize) {
    let mut rest = line;
    loop {
        let t = rest.trim_start_matches([' ', '\t']);
        match t.as_bytes().first() {
            Some(b'>' | b'|' | b'#') => rest = &t[1..],
            Some(b'*') if t.len() == 1 || t.as_bytes().get(1) == Some(&b' ') => rest = &t[1..],
            _ => break,
        }
    }
    let t = rest.trim_start_matches([' ', '\t']);
    (t, rest.len() - t.len())
}

/// Where, in a record's message, another record glued onto it starts: its own `dmesg`
/// stamp (`[ 1234.567890]`), `<N>` priority or full syslog header (`Oct 14 10:22:40
/// host kernel: `), as consoles, flattened copies and terminal pastes leave them. Never 0:
/// what starts the message is the record itself.
pub fn glued_record(message: &str) -> Option<usize> {
    let b = message.as_bytes();
    let mut i = 1;
    while i < b.len() {
        let found = match b[i] {
            b'[' => dmesg_stamp_len(&message[i..]).is_some(),
            b'<' => prio_at(&message[i..]).is_some_and(|(len, _)| {
                message[i + len..]
                    .bytes()
                    .next()
                    .is_some_and(|c| c == b'[' || c.is_ascii_alphabetic())
            }),
            b':' if i >= 2 => {
                // A header at the very start is this record's own, not a glued one
                // (`Aug24 17:37:47 host kernel:` is one the line parser did not take).
                if let Some(start) = glued_syslog_header(message, i - 2).filter(|&s| s > 0) {
                    return Some(start);
                }
                false
            }
            _ => false,
        };
        if found {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `Oct 14 10:22:40 host kernel:` whose clock starts at `c` (a 3-letter English month,
/// possibly glued to the text before it, and a `kernel` tag): its start.
fn glued_syslog_header(message: &str, c: usize) -> Option<usize> {
    let clock = clock_len(message.get(c..)?)?;
    let b = message.as_bytes();
    // Back over ` 14 ` (or `  8 `) to the month.
    let mut d = c.checked_sub(1).filter(|&d| b[d] == b' ')?;
    let day_end = d;
    while d > 0 && b[d - 1].is_ascii_digit() {
        d -= 1;
    }
    if d == day_end || day_end - d > 2 {
        return None;
    }
    while d > 0 && b[d - 1] == b' ' {
        d -= 1;
    }
    let month = d.checked_sub(3)?;
    if !message.get(month..d).is_some_and(is_english_month) {
        return None;
    }
    let after = &message[c + clock..];
    header_tag(after)
        .is_some_and(|(tag, _)| tag == "kernel")
        .then_some(month)
}

/// `prio,seq,ts_usec,flags[,...];message`
fn kmsg_line(line: &str) -> Option<TextLine<'_>> {
    let b = line.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    // The header is short; do not scan a long line for ';'.
    let head_end = b.iter().take(128).position(|&c| c == b';')?;
    let head = &line[..head_end];
    let mut fields = head.split(',');
    let prio = fields.next()?;
    let seq = fields.next()?;
    let ts = fields.next()?;
    if !all_digits(prio) || !all_digits(seq) || !all_digits(ts) {
        return None;
    }
    let prio: u64 = prio.parse().ok()?;
    let message = &line[head_end + 1..];
    let (source, message) = source_for(Some(u32::try_from(prio >> 3).ok()?), message);
    Some(TextLine {
        time: Some(ts),
        source,
        message,
        kind: LineKind::KmsgRecord,
        column: line.len() - message.len(),
    })
}

/// Source of a message whose writer is known only by facility (`None`: unknown).
fn source_for(facility: Option<u32>, message: &str) -> (Source<'_>, &str) {
    match facility {
        Some(0) => (Source::Kernel, message),
        Some(_) => match split_program(message) {
            Some((name, rest)) => (Source::Program(name), rest),
            None => (Source::Program(""), message),
        },
        None => match split_program(message) {
            Some((name, rest)) => (Source::Program(name), rest),
            None => (Source::Kernel, message),
        },
    }
}

/// Where the first recognisable part of the line starts: a stamp, a priority, a
/// `kernel:` tag anywhere, or a kernel form right after junk (quote marks, indentation,
/// line numbers, comment marks).
fn first_element(line: &str) -> Option<usize> {
    let j = junk_end(line);
    if j < line.len() && element_at(line, j) {
        return Some(j);
    }
    let rest = &line[j..];
    if starts_form(rest) || invoked_at_start(rest) {
        return Some(j);
    }
    (j + 1..line.len()).find(|&i| element_at(line, i))
}

/// Whether a recognisable prefix element starts at byte `i`.
fn element_at(line: &str, i: usize) -> bool {
    if !line.is_char_boundary(i) {
        return false;
    }
    let b = line.as_bytes();
    match b[i] {
        b'[' => bracket_stamp(&line[i..]).is_some(),
        b'<' => prio_at(&line[i..]).is_some(),
        b'k' => (i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'|')) && kernel_tag(&line[i..]),
        c if c.is_ascii_digit() || c.is_ascii_alphabetic() || c >= 0x80 => {
            (i == 0 || !is_word_byte(b[i - 1])) && date_at(line, i).is_some()
        }
        _ => false,
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80
}

/// `kernel:` followed by a space or the end.
fn kernel_tag(s: &str) -> bool {
    s.strip_prefix("kernel:")
        .is_some_and(|r| r.is_empty() || r.starts_with(' '))
}

/// `<comm> invoked oom-killer:` at the start, the comm within a comm's reach.
fn invoked_at_start(s: &str) -> bool {
    let mut end = s.len().min(84);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].find(" invoked oom-killer:").is_some_and(|p| p > 0)
}

/// End of the junk before a line's content: whitespace, quote marks, comment marks, a
/// line number.
fn junk_end(line: &str) -> usize {
    let (t, _) = strip_quote_marks(line);
    let mut at = line.len() - t.len();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits <= 8 && t[digits..].starts_with([' ', '\t']) {
        let after = t[digits..].trim_start();
        let next = line.len() - after.len();
        if first_byte_starts_something(after) {
            at = next;
        }
    }
    at
}

fn first_byte_starts_something(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'[' | b'<')) || starts_form(s)
}

/// Parses the prefix elements from `start` (see [`first_element`]) up to the message.
fn parse_prefix(line: &str, start: usize) -> TextLine<'_> {
    let mut i = start;
    let mut facility = None;
    if let Some((len, prio)) = prio_at(&line[i..]) {
        facility = Some(prio >> 3);
        i += len;
    } else if let Some((fac, len)) = decoded_prefix(&line[i..]) {
        facility = Some(u32::from(fac != "kern"));
        i += len;
    }
    if bracket_stamp(&line[i..]).is_some() {
        return dmesg_rest(line, i, facility);
    }
    if kernel_tag(&line[i..]) {
        return after_kernel_tag(line, i + "kernel:".len(), None);
    }
    if let Some(len) = date_at(line, i) {
        return syslog_rest(line, i, i + len, facility);
    }
    let message = &line[i..];
    let (source, message) = match facility {
        Some(_) => source_for(facility, message),
        None => (Source::Unknown, message),
    };
    TextLine {
        time: None,
        source,
        message,
        kind: LineKind::Record,
        column: line.len() - message.len(),
    }
}

/// After a `[stamp]`: `[caller]`, then the message, which may still hold a journal
/// `host kernel:` (short-monotonic) or a userspace writer's `name[pid]:`.
fn dmesg_rest(line: &str, i: usize, facility: Option<u32>) -> TextLine<'_> {
    let (len, stamp) = bracket_stamp(&line[i..]).unwrap_or((0, ""));
    let mut j = i + len;
    j += caller_id_len(&line[j..]);
    let message = line[j..].strip_prefix(' ').unwrap_or(&line[j..]);
    let time = Some(stamp).filter(|s| !s.is_empty());
    if facility.is_none() && is_monotonic(stamp) {
        if let Some((source, msg)) = journal_host_tag(message) {
            return record(line, time, source, msg);
        }
    }
    let (source, message) = source_for(facility, message);
    record(line, time, source, message)
}

fn record<'a>(
    line: &'a str,
    time: Option<&'a str>,
    source: Source<'a>,
    message: &'a str,
) -> TextLine<'a> {
    TextLine {
        time,
        source,
        message,
        kind: LineKind::Record,
        column: line.len() - message.len(),
    }
}

/// `host kernel: msg` or `host name[pid]: msg` after a monotonic stamp
/// (`journalctl -o short-monotonic`); a kernel message that merely holds a colon is not.
fn journal_host_tag(rest: &str) -> Option<(Source<'_>, &str)> {
    let (host, after) = rest.split_once(' ')?;
    if host.is_empty() || host.contains(':') || host.contains('[') {
        return None;
    }
    let (tag, msg) = after.split_once(": ")?;
    if tag == "kernel" {
        return Some(source_for(None, strip_kernel_stamp(msg)));
    }
    let (name, msg2) = split_program(after)?;
    Some((Source::Program(name), msg2)).filter(|_| !tag.contains(' '))
}

/// After a `kernel:` tag: an optional kernel `[stamp]` and `[caller]`, then the message
/// (a userspace writer's `name[pid]:` there makes it that program's).
fn after_kernel_tag<'a>(line: &'a str, i: usize, time: Option<&'a str>) -> TextLine<'a> {
    let rest = line[i..].trim_start_matches(' ');
    let (rest, stamp) = match bracket_stamp(rest) {
        Some((len, stamp)) => {
            let r = &rest[len..];
            let r = &r[caller_id_len(r)..];
            (r.strip_prefix(' ').unwrap_or(r), Some(stamp))
        }
        None => (rest, None),
    };
    let (source, message) = source_for(None, rest);
    record(line, time.or(stamp), source, message)
}

/// After a syslog or journal stamp ending at `end`: `host [facility] tag: msg`, or, for
/// `dmesg --time-format iso` (comma before the fraction), the message itself.
fn syslog_rest(line: &str, start: usize, end: usize, facility: Option<u32>) -> TextLine<'_> {
    let time = Some(&line[start..end]);
    let rest = line[end..].strip_prefix(' ').unwrap_or(&line[end..]);
    if line[start..end].contains(',') && line.as_bytes()[start].is_ascii_digit() {
        let (source, message) = source_for(facility, rest);
        return record(line, time, source, message);
    }
    match header_tag(rest) {
        Some(("kernel", msg_at)) => after_kernel_tag(line, line.len() - rest.len() + msg_at, time),
        Some((tag, msg_at)) => {
            let name = tag.split_once('[').map_or(tag, |(n, _)| n);
            record(line, time, Source::Program(name), &rest[msg_at..])
        }
        None => record(line, time, Source::Unknown, rest.trim_start()),
    }
}

/// The tag after a syslog stamp: the first token ending in `:` (then a space or the
/// end) within [`MAX_HEADER`] bytes, host and harness words before it skipped. Returns
/// the tag (with any `[pid]`) and the offset of the message after it.
fn header_tag(rest: &str) -> Option<(&str, usize)> {
    let mut at = 0;
    let mut words = 0;
    for tok in rest.split(' ') {
        if at > MAX_HEADER || words >= 10 {
            return None;
        }
        if !tok.is_empty() {
            words += 1;
            if let Some(tag) = tok.strip_suffix(':') {
                let valid = !tag.is_empty()
                    && tag.len() <= MAX_TAG
                    && !tag.contains(':')
                    && (!tag.contains('[') || split_program(tok).is_some());
                return valid.then(|| (tag, (at + tok.len() + 1).min(rest.len())));
            }
        }
        at += tok.len() + 1;
    }
    None
}

/// Syslog copies of kernel lines may keep the kernel's own `[12345.678901] ` stamp.
fn strip_kernel_stamp(message: &str) -> &str {
    match bracket_stamp(message) {
        Some((len, stamp)) if is_monotonic(stamp) => {
            let r = &message[len..];
            let r = &r[caller_id_len(r)..];
            r.strip_prefix(' ').unwrap_or(r)
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests;
