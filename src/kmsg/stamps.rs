//! The time stamps, priorities and caller ids that log writers put before a kernel
//! message: `dmesg` brackets (monotonic, relative, `-T` in any language), `<N>`, `dmesg
//! -x` names, printk caller ids, syslog and journal dates in any language, ISO 8601, unix
//! time, clocks and zones.
//!
//! This file owns recognising one such element at the start of a slice and its length.
//! It must not decide where a message starts (that is `text.rs`), allocate or keep state.

/// Longest bracketed stamp (`[dim. 19 avril 18:03:30 2026]`).
const MAX_BRACKET: usize = 48;

/// `dmesg -x`: `kern  :err   : ` -> ("kern", length).
pub(super) fn decoded_prefix(line: &str) -> Option<(&str, usize)> {
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
    let r2 = r[colon2 + 1..].strip_prefix(' ')?;
    Some((fac, line.len() - r2.len()))
}

/// `<N>` with N of 1-3 digits: `(length, N)`.
pub(super) fn prio_at(s: &str) -> Option<(usize, u32)> {
    let r = s.strip_prefix('<')?;
    let n = r.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 3 || r.as_bytes().get(n) != Some(&b'>') {
        return None;
    }
    Some((n + 2, r[..n].parse().ok()?))
}

/// A bracketed time: `[  294.385120]`, `[  +0.000082]`, `[Oct28 16:58]`,
/// `[Sun Nov 22 02:54:31 2026]` and its other languages. `(length, stamp trimmed)`.
pub(super) fn bracket_stamp(s: &str) -> Option<(usize, &str)> {
    let r = s.strip_prefix('[')?;
    let mut end = r.len().min(MAX_BRACKET);
    while !r.is_char_boundary(end) {
        end -= 1;
    }
    let close = r[..end].find(']')?;
    let inner = r[..close].trim();
    let relative = inner.strip_prefix('+').unwrap_or(inner);
    let ok = is_monotonic(relative) || is_human_stamp(inner);
    ok.then_some((close + 2, inner))
}

/// `[  294.385120]` with the six decimals `dmesg` always prints: the only bracket
/// trusted to start a record glued in the middle of a line.
pub(super) fn dmesg_stamp_len(s: &str) -> Option<usize> {
    let (len, inner) = bracket_stamp(s)?;
    let (_, frac) = inner.split_once('.')?;
    (frac.len() == 6 && is_monotonic(inner)).then_some(len)
}

/// A bracketed wall-clock stamp: words, digits and a clock (`16:58`, `02:54:31`).
pub(super) fn is_human_stamp(inner: &str) -> bool {
    let b = inner.as_bytes();
    let has_clock = b.windows(5).any(|w| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_digit()
            && w[2] == b':'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
    });
    has_clock
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | ':' | '.' | ',' | '+' | '-'))
}

/// `[T123]`, `[ T6736]`, `[C3]`: the printk caller id (`CONFIG_PRINTK_CALLER`).
pub(super) fn caller_id_len(s: &str) -> usize {
    let Some(r) = s.strip_prefix('[') else {
        return 0;
    };
    let t = r.trim_start_matches(' ');
    let Some(d) = t.strip_prefix(['T', 'C']) else {
        return 0;
    };
    let n = d.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || d.as_bytes().get(n) != Some(&b']') {
        return 0;
    }
    s.len() - d.len() + n + 1
}

/// A syslog or journal stamp starting at byte `i`: `Nov  8 10:12:13[.frac]`, any
/// language's month word (`апр 28`, `sep 03`), `Sat Jan 25 09:40:15 2020`, ISO 8601
/// (`2024-11-18T10:12:13.1+00:00`, `2024-04-29T14:55:41,678628+02:00`), `Mon 2024-11-18
/// 10:12:13`, `1731924733.123456` (short-unix) or a bare clock. Its length.
pub(super) fn date_at(line: &str, i: usize) -> Option<usize> {
    let s = &line[i..];
    if let Some(n) = unix_stamp_len(s) {
        return s[n..].starts_with(' ').then_some(n);
    }
    let c = date_clock_offset(s)?;
    let clock = clock_len(&s[c..])?;
    let mut end = c + clock;
    end += zone_len(&s[end..]);
    let iso_date = c >= 11 && s.get(c - 11..).and_then(iso_date_len).is_some();
    if iso_date && s.as_bytes()[c - 1] == b' ' {
        // `journalctl -o short-full`: `Mon 2024-11-18 10:12:13 UTC`.
        end += zone_name_len(&s[end..]);
    }
    if let Some(year) = s[end..].strip_prefix(' ') {
        let n = year.bytes().take_while(u8::is_ascii_digit).count();
        if n == 4 && (year.len() == 4 || year[4..].starts_with(' ')) {
            end += 5;
        }
    }
    Some(end)
}

/// Where the clock of a stamp starting at `s` is: after a date (month word and day in
/// either order, an optional weekday, or an ISO date), or right at the start.
pub(super) fn date_clock_offset(s: &str) -> Option<usize> {
    if clock_len(s).is_some() {
        return Some(0);
    }
    let mut rest = s;
    for _ in 0..3 {
        if let Some(iso) = iso_date_len(rest) {
            let sep = rest.as_bytes().get(iso)?;
            return (matches!(sep, b'T' | b' ') && clock_len(&rest[iso + 1..]).is_some())
                .then(|| s.len() - rest.len() + iso + 1);
        }
        let (tok, after) = split_token(rest)?;
        if !(is_date_word(tok) || is_day(tok)) {
            return None;
        }
        rest = after;
        if clock_len(rest).is_some() {
            return Some(s.len() - rest.len());
        }
    }
    None
}

/// `(first token, rest after the spaces that follow it)`.
pub(super) fn split_token(s: &str) -> Option<(&str, &str)> {
    let sp = s.find(' ')?;
    Some((&s[..sp], s[sp..].trim_start_matches(' ')))
}

pub(super) fn is_day(tok: &str) -> bool {
    !tok.is_empty() && tok.len() <= 2 && tok.bytes().all(|b| b.is_ascii_digit())
}

/// A month or weekday word in any language: 2-12 letters, maybe a final `.`.
pub(super) fn is_date_word(tok: &str) -> bool {
    let w = tok.strip_suffix('.').unwrap_or(tok);
    let n = w.chars().count();
    (2..=12).contains(&n) && w.chars().all(char::is_alphabetic)
}

/// `YYYY-MM-DD`.
pub(super) fn iso_date_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let ok = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    ok.then_some(10)
}

/// `1731924733.123456`: at least 9 digits, a dot, digits.
pub(super) fn unix_stamp_len(s: &str) -> Option<usize> {
    let a = s.bytes().take_while(u8::is_ascii_digit).count();
    if a < 9 || s.as_bytes().get(a) != Some(&b'.') {
        return None;
    }
    let f = s[a + 1..].bytes().take_while(u8::is_ascii_digit).count();
    (f > 0).then_some(a + 1 + f)
}

/// A time zone after a clock: `Z`, `+00:00`, `+0000`, `-05:00`.
pub(super) fn zone_len(s: &str) -> usize {
    if s.starts_with('Z') {
        return 1;
    }
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if digits(1..3) && b.get(3) == Some(&b':') && digits(4..6) {
        6
    } else if digits(1..5) {
        5
    } else {
        0
    }
}

/// ` UTC`, ` CEST`: a zone name after a journal stamp; its length with the space.
pub(super) fn zone_name_len(s: &str) -> usize {
    let Some(r) = s.strip_prefix(' ') else {
        return 0;
    };
    let n = r.bytes().take_while(u8::is_ascii_uppercase).count();
    if (2..=5).contains(&n) && r[n..].starts_with(' ') {
        n + 1
    } else {
        0
    }
}

/// `hh:mm:ss` with an optional `.fraction` or `,fraction`; its length.
pub(super) fn clock_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if !(d(0)
        && d(1)
        && b.get(2) == Some(&b':')
        && d(3)
        && d(4)
        && b.get(5) == Some(&b':')
        && d(6)
        && d(7))
    {
        return None;
    }
    if d(8) {
        return None;
    }
    let mut end = 8;
    if matches!(b.get(8), Some(b'.' | b',')) && d(9) {
        end = 9;
        while d(end) {
            end += 1;
        }
    }
    Some(end)
}

/// `12345.678901` (digits, a dot, digits).
pub(super) fn is_monotonic(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => all_digits(a) && all_digits(b),
        None => false,
    }
}

pub(super) fn is_english_month(s: &str) -> bool {
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

pub(super) fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
