//! One line of kernel-log *text*, whatever tool printed it: `dmesg` (plain, `-T`, `-r`,
//! `-x`, `--time-format iso`), syslog files (`/var/log/messages`, `kern.log`, BSD or
//! RFC 3339 stamps), `journalctl` (short, short-precise, short-iso, short-full,
//! short-monotonic, short-unix) and raw `/dev/kmsg` record lines.
//!
//! This file owns splitting such a line into the time *as printed*, who wrote it
//! ([`Source`]) and the message. It only slices the input: no allocation, no I/O, no
//! interpretation of the message (that is `oom.rs`), no unescaping of `\xHH` in kmsg
//! record lines (that is `record.rs`, which callers with real `/dev/kmsg` data use).

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
    /// Nothing recognisable: the whole line is the message.
    Unknown,
}

/// A kernel-log text line split into its parts. Every field borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLine<'a> {
    /// The time exactly as printed (`294.384649`, `Sun Nov 22 02:54:31 2026`,
    /// `Nov 18 10:12:13`, `2024-11-18T10:12:13.123456+00:00`, a kmsg `ts_usec`, ...).
    pub time: Option<&'a str>,
    /// Who wrote the line.
    pub source: Source<'a>,
    /// The message, without time, host or tag.
    pub message: &'a str,
}

/// Longest syslog tag or program name accepted (longer is not a tag).
const MAX_TAG: usize = 128;
/// Longest host name accepted in a syslog/journal prefix.
const MAX_HOST: usize = 255;

/// Splits one text line (a trailing `\n` / `\r\n` is ignored). Never fails: a line in no
/// known form comes back as `Source::Unknown` with the whole line as its message.
pub fn parse_text_line(line: &str) -> TextLine<'_> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);

    if let Some(t) = kmsg_line(line) {
        return t;
    }
    if let Some(t) = dmesg_line(line) {
        return t;
    }
    if let Some(t) = iso_line(line) {
        return t;
    }
    if let Some(t) = bsd_syslog_line(line) {
        return t;
    }
    if let Some(t) = full_line(line) {
        return t;
    }
    if let Some(t) = unix_line(line) {
        return t;
    }
    TextLine {
        time: None,
        source: Source::Unknown,
        message: line,
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
    })
}

/// `dmesg` in its bracketed forms, with an optional `<prio>` (`-r`) or `fac :lvl : `
/// (`-x`) in front; also `journalctl -o short-monotonic` (`[  1.2] host kernel: msg`).
fn dmesg_line(line: &str) -> Option<TextLine<'_>> {
    let mut rest = line;
    let mut facility: Option<u32> = None;
    if let Some(r) = rest.strip_prefix('<') {
        let close = r.find('>')?;
        let prio: u32 = r[..close].parse().ok()?;
        facility = Some(prio >> 3);
        rest = &r[close + 1..];
    } else if let Some((fac, r)) = decoded_prefix(rest) {
        facility = Some(if fac == "kern" { 0 } else { 1 });
        rest = r;
    }
    let inner_and_rest = rest.strip_prefix('[')?;
    let close = inner_and_rest.find(']')?;
    let inner = &inner_and_rest[..close];
    let stamp = inner.trim();
    if !(is_monotonic(stamp) || is_ctime(stamp)) {
        return None;
    }
    let after = &inner_and_rest[close + 1..];
    let message = after.strip_prefix(' ').unwrap_or(after);
    if facility.is_none() && is_monotonic(stamp) {
        if let Some((source, msg)) = host_tag(message, true) {
            return Some(TextLine {
                time: Some(stamp),
                source,
                message: msg,
            });
        }
    }
    let (source, message) = source_for(facility, message);
    Some(TextLine {
        time: Some(stamp),
        source,
        message,
    })
}

/// `dmesg -x`: `kern  :err   : ` -> ("kern", rest).
fn decoded_prefix(line: &str) -> Option<(&str, &str)> {
    let colon = line.find(':')?;
    if colon > 8 {
        return None;
    }
    let fac = line[..colon].trim_end();
    if fac.is_empty() || !fac.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let r = &line[colon + 1..];
    let colon2 = r.find(':')?;
    if colon2 > 8 {
        return None;
    }
    let lvl = r[..colon2].trim_end();
    if lvl.is_empty() || !lvl.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let r = r[colon2 + 1..].strip_prefix(' ')?;
    Some((fac, r))
}

/// Lines that start with an ISO 8601 stamp: `dmesg --time-format iso` (comma before the
/// fraction, no host) or RFC 3339 syslog / `journalctl -o short-iso[-precise]`.
fn iso_line(line: &str) -> Option<TextLine<'_>> {
    let b = line.as_bytes();
    if b.len() < 20
        || !b[..4].iter().all(u8::is_ascii_digit)
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
    {
        return None;
    }
    let sp = line.find(' ')?;
    let stamp = &line[..sp];
    let rest = &line[sp + 1..];
    if stamp.contains(',') {
        let (source, message) = source_for(None, rest);
        return Some(TextLine {
            time: Some(stamp),
            source,
            message,
        });
    }
    let (source, message) = host_tag(rest, false)?;
    Some(TextLine {
        time: Some(stamp),
        source,
        message,
    })
}

/// `Nov 18 10:12:13 host tag: msg` and `Nov  8 10:12:13.123456 host tag: msg`.
fn bsd_syslog_line(line: &str) -> Option<TextLine<'_>> {
    let b = line.as_bytes();
    if b.len() < 16 || !line.get(..3).is_some_and(is_month) || b[3] != b' ' {
        return None;
    }
    // Day: "18" or " 8".
    let (d0, d1) = (b[4], b[5]);
    if !(d0 == b' ' || d0.is_ascii_digit()) || !d1.is_ascii_digit() || b[6] != b' ' {
        return None;
    }
    let clock_end = clock_len(&line[7..])?;
    let stamp_end = 7 + clock_end;
    let stamp = &line[..stamp_end];
    let rest = line[stamp_end..].strip_prefix(' ')?;
    let (source, message) = host_tag(rest, false)?;
    Some(TextLine {
        time: Some(stamp),
        source,
        message,
    })
}

/// `journalctl -o short-full`: `Mon 2024-11-18 10:12:13 UTC host tag: msg`.
fn full_line(line: &str) -> Option<TextLine<'_>> {
    let b = line.as_bytes();
    if b.len() < 24 || !line.get(..3).is_some_and(is_weekday) || b[3] != b' ' {
        return None;
    }
    let d = &b[4..14];
    if !d[..4].iter().all(u8::is_ascii_digit) || d[4] != b'-' || d[7] != b'-' || b[14] != b' ' {
        return None;
    }
    let clock_end = 15 + clock_len(&line[15..])?;
    let tz_rest = line[clock_end..].strip_prefix(' ')?;
    let tz_end = tz_rest.find(' ')?;
    let stamp_end = clock_end + 1 + tz_end;
    let stamp = &line[..stamp_end];
    let (source, message) = host_tag(&line[stamp_end + 1..], false)?;
    Some(TextLine {
        time: Some(stamp),
        source,
        message,
    })
}

/// `journalctl -o short-unix`: `1731924733.123456 host tag: msg`.
fn unix_line(line: &str) -> Option<TextLine<'_>> {
    let sp = line.find(' ')?;
    let stamp = &line[..sp];
    if !is_monotonic(stamp) {
        return None;
    }
    let (source, message) = host_tag(&line[sp + 1..], true)?;
    Some(TextLine {
        time: Some(stamp),
        source,
        message,
    })
}

/// `host tag: msg` after a syslog/journal stamp. With `strict`, only `kernel` and
/// `name[pid]` tags are accepted (used where a dmesg message could look alike).
fn host_tag(rest: &str, strict: bool) -> Option<(Source<'_>, &str)> {
    let sp = rest.find(' ')?;
    let host = &rest[..sp];
    if host.is_empty() || host.len() > MAX_HOST || host.contains(':') {
        return None;
    }
    let after_host = &rest[sp + 1..];
    let colon = after_host.find(':')?;
    let tag = &after_host[..colon];
    if tag.is_empty() || tag.len() > MAX_TAG || tag.contains(' ') {
        return None;
    }
    let after = &after_host[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let message = after.strip_prefix(' ').unwrap_or(after);
    let (name, has_pid) = match tag.find('[') {
        Some(open) => {
            let pid = tag[open + 1..].strip_suffix(']')?;
            if pid.is_empty() || !all_digits(pid) {
                return None;
            }
            (&tag[..open], true)
        }
        None => (tag, false),
    };
    if name.is_empty() {
        return None;
    }
    if name == "kernel" {
        // What syslog got from the kernel log may be a userspace write to /dev/kmsg.
        return Some(source_for(None, strip_kernel_stamp(message)));
    }
    if strict && !has_pid {
        return None;
    }
    Some((Source::Program(name), message))
}

/// Syslog copies of kernel lines may keep the kernel's own `[12345.678901] ` stamp.
fn strip_kernel_stamp(message: &str) -> &str {
    if let Some(r) = message.strip_prefix('[') {
        if let Some(close) = r.find(']') {
            if is_monotonic(r[..close].trim()) {
                let after = &r[close + 1..];
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    message
}

/// `hh:mm:ss` with an optional `.fraction`; returns its length.
fn clock_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 8
        || !b[0].is_ascii_digit()
        || !b[1].is_ascii_digit()
        || b[2] != b':'
        || !b[3].is_ascii_digit()
        || !b[4].is_ascii_digit()
        || b[5] != b':'
        || !b[6].is_ascii_digit()
        || !b[7].is_ascii_digit()
    {
        return None;
    }
    let mut end = 8;
    if b.get(8) == Some(&b'.') {
        end = 9;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    Some(end)
}

/// `12345.678901` (digits, a dot, digits).
fn is_monotonic(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => !a.is_empty() && !b.is_empty() && all_digits(a) && all_digits(b),
        None => false,
    }
}

/// `Sun Nov 22 02:54:31 2026` as `dmesg -T` prints it.
fn is_ctime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b.len() <= 40
        && s.get(..3).is_some_and(is_weekday)
        && b[3] == b' '
        && s.get(4..7).is_some_and(is_month)
        && s.contains(':')
}

fn is_month(s: &str) -> bool {
    matches!(
        s,
        "Jan"
            | "Feb"
            | "Mar"
            | "Apr"
            | "May"
            | "Jun"
            | "Jul"
            | "Aug"
            | "Sep"
            | "Oct"
            | "Nov"
            | "Dec"
    )
}

fn is_weekday(s: &str) -> bool {
    matches!(s, "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun")
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> (Option<&str>, Source<'_>, &str) {
        let t = parse_text_line(line);
        (t.time, t.source, t.message)
    }

    #[test]
    fn dmesg_plain_and_human() {
        assert_eq!(
            p("[  294.385120] Memory cgroup out of memory: Killed process 6438 (x)"),
            (
                Some("294.385120"),
                Source::Kernel,
                "Memory cgroup out of memory: Killed process 6438 (x)"
            )
        );
        assert_eq!(
            p("[Sun Nov 22 02:54:31 2026] oom-kill:constraint=CONSTRAINT_MEMCG"),
            (
                Some("Sun Nov 22 02:54:31 2026"),
                Source::Kernel,
                "oom-kill:constraint=CONSTRAINT_MEMCG"
            )
        );
    }

    #[test]
    fn dmesg_raw_and_decoded() {
        assert_eq!(
            p("<3>[  294.385120] Out of memory: Killed process 1 (a)"),
            (
                Some("294.385120"),
                Source::Kernel,
                "Out of memory: Killed process 1 (a)"
            )
        );
        assert_eq!(
            p("<14>[  5.000001] oomd kill: 1.00 2.00 3.00 /a.slice 100 ruleset:[x]"),
            (
                Some("5.000001"),
                Source::Program(""),
                "oomd kill: 1.00 2.00 3.00 /a.slice 100 ruleset:[x]"
            )
        );
        assert_eq!(
            p("kern  :err   : [  294.385120] Out of memory: Killed process 1 (a)"),
            (
                Some("294.385120"),
                Source::Kernel,
                "Out of memory: Killed process 1 (a)"
            )
        );
    }

    #[test]
    fn dmesg_iso_has_no_host() {
        assert_eq!(
            p("2026-11-22T02:54:31,384649+00:00 oom (fix) 1:[2] invoked oom-killer: gfp_mask=0xcc0"),
            (
                Some("2026-11-22T02:54:31,384649+00:00"),
                Source::Kernel,
                "oom (fix) 1:[2] invoked oom-killer: gfp_mask=0xcc0"
            )
        );
    }

    #[test]
    fn syslog_forms() {
        assert_eq!(
            p("Nov 18 10:12:13 web1 kernel: [12345.678901] Out of memory: Killed process 7 (a)"),
            (
                Some("Nov 18 10:12:13"),
                Source::Kernel,
                "Out of memory: Killed process 7 (a)"
            )
        );
        assert_eq!(
            p("Nov  8 10:12:13 web1 kernel: Out of memory: Killed process 7 (a)"),
            (
                Some("Nov  8 10:12:13"),
                Source::Kernel,
                "Out of memory: Killed process 7 (a)"
            )
        );
        assert_eq!(
            p("2024-11-18T10:12:13.123456+00:00 web1 systemd-oomd[612]: Killed /a.scope due to x"),
            (
                Some("2024-11-18T10:12:13.123456+00:00"),
                Source::Program("systemd-oomd"),
                "Killed /a.scope due to x"
            )
        );
        assert_eq!(
            p("Nov 18 10:12:13.123456 web1 earlyoom[45]: low memory! at or below SIGTERM limits"),
            (
                Some("Nov 18 10:12:13.123456"),
                Source::Program("earlyoom"),
                "low memory! at or below SIGTERM limits"
            )
        );
    }

    #[test]
    fn journal_forms() {
        assert_eq!(
            p("2024-11-18T10:12:13+0000 web1 kernel: oom_reaper: reaped process 7 (a)"),
            (
                Some("2024-11-18T10:12:13+0000"),
                Source::Kernel,
                "oom_reaper: reaped process 7 (a)"
            )
        );
        assert_eq!(
            p("Mon 2024-11-18 10:12:13 UTC web1 kernel: Killed process 7 (a)"),
            (
                Some("Mon 2024-11-18 10:12:13 UTC"),
                Source::Kernel,
                "Killed process 7 (a)"
            )
        );
        assert_eq!(
            p("[  294.385120] web1 kernel: Killed process 7 (a)"),
            (Some("294.385120"), Source::Kernel, "Killed process 7 (a)")
        );
        assert_eq!(
            p("1731924733.123456 web1 kernel: Killed process 7 (a)"),
            (
                Some("1731924733.123456"),
                Source::Kernel,
                "Killed process 7 (a)"
            )
        );
        assert_eq!(p("-- Boot 0123abcd --").1, Source::Unknown);
    }

    #[test]
    fn kmsg_record_line() {
        assert_eq!(
            p("3,418,294385120,-;Memory cgroup out of memory: Killed process 6438 (x)\n"),
            (
                Some("294385120"),
                Source::Kernel,
                "Memory cgroup out of memory: Killed process 6438 (x)"
            )
        );
        assert_eq!(
            p("30,5,6,-;systemd-oomd[612]: Killed /a.scope due to x"),
            (
                Some("6"),
                Source::Program("systemd-oomd"),
                "Killed /a.scope due to x"
            )
        );
    }

    #[test]
    fn dmesg_kernel_message_that_looks_like_a_tag_stays_kernel() {
        // Two tokens before a colon, but no [pid]: not a journal host/tag.
        assert_eq!(
            p("[    1.0] usb 1-1: new high-speed USB device"),
            (
                Some("1.0"),
                Source::Kernel,
                "usb 1-1: new high-speed USB device"
            )
        );
        // A userspace writer to /dev/kmsg, as dmesg shows it.
        assert_eq!(
            p("[    1.0] systemd-oomd[612]: Killed /a due to b"),
            (
                Some("1.0"),
                Source::Program("systemd-oomd"),
                "Killed /a due to b"
            )
        );
    }

    #[test]
    fn unknown_is_whole_line() {
        assert_eq!(
            p("Killed process 7 (a) total-vm:1kB"),
            (None, Source::Unknown, "Killed process 7 (a) total-vm:1kB")
        );
        assert_eq!(p(""), (None, Source::Unknown, ""));
        // A tasks-table row without a time stays whole (its bracket has no '.').
        assert_eq!(p("[   6438]     0  6438 x").1, Source::Unknown);
    }

    #[test]
    fn split_program_forms() {
        assert_eq!(split_program("earlyoom[45]: x"), Some(("earlyoom", "x")));
        assert_eq!(split_program("a b[1]: x"), None);
        assert_eq!(split_program("a[x]: y"), None);
        assert_eq!(split_program("a[1] y"), None);
    }
}
