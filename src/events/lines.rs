//! Reading the event log a line at a time through one fixed buffer, whatever the file's
//! size: a line longer than `MAX_LINE` (no event is; a hand edit or garbage is) is skipped
//! and counted without being held. Each line comes with its head (`EventHead`), so callers
//! decide on type, time and group before building a whole event. Owns the reading loop;
//! must not decide which lines a reader keeps (`filter`, `retention`).

use std::io::{BufRead, BufReader, Read};

use super::model::{Event, EventHead};

/// The longest line read as an event; an OOM kill with long cgroup paths is ~1 KiB.
pub const MAX_LINE: usize = 64 * 1024;
/// The read buffer.
const BUFFER: usize = 64 * 1024;

/// One line of the log that is an event, as read.
#[derive(Debug)]
pub struct LogLine<'a> {
    pub head: EventHead<'a>,
    pub raw: &'a [u8],
}

impl LogLine<'_> {
    /// The whole event; None when only its head parses (a field this version misreads).
    pub fn event(&self) -> Option<Event> {
        serde_json::from_slice(self.raw).ok()
    }
}

/// Calls `each` with every non-empty line of `reader` (without its newline) no longer than
/// `MAX_LINE`, a final line without a newline included; returns how many longer lines were
/// skipped.
pub fn for_each_line(
    reader: impl Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<usize> {
    let mut reader = BufReader::with_capacity(BUFFER, reader);
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut skipped = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if overlong {
                skipped += 1;
            } else if !line.is_empty() {
                each(&line)?;
            }
            return Ok(skipped);
        }
        let Some(end) = memchr::memchr(b'\n', buf) else {
            if !overlong && line.len() + buf.len() <= MAX_LINE {
                line.extend_from_slice(buf);
            } else {
                overlong = true;
                line = Vec::new();
            }
            let used = buf.len();
            reader.consume(used);
            continue;
        };
        if overlong || line.len() + end > MAX_LINE {
            skipped += 1;
        } else if line.is_empty() {
            if end > 0 {
                each(&buf[..end])?;
            }
        } else {
            line.extend_from_slice(&buf[..end]);
            each(&line)?;
        }
        line.clear();
        overlong = false;
        reader.consume(end + 1);
    }
}

/// Calls `each` with every line of `reader` that is an event; returns how many lines were
/// not (too long, torn by a crash, edited by hand).
pub fn for_each_event(
    reader: impl Read,
    mut each: impl FnMut(&LogLine<'_>) -> std::io::Result<()>,
) -> std::io::Result<usize> {
    let mut unreadable = 0;
    let overlong = for_each_line(reader, |raw| {
        match EventHead::parse(raw) {
            Some(head) => each(&LogLine { head, raw })?,
            None => unreadable += 1,
        }
        Ok(())
    })?;
    Ok(overlong + unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let mut seen = Vec::new();
        let skipped = for_each_line(input, |line| {
            seen.push(line.to_vec());
            Ok(())
        })
        .expect("read");
        (seen, skipped)
    }

    #[test]
    fn lines_are_split_across_buffers_and_long_ones_skipped() {
        let mut input = Vec::new();
        input.extend_from_slice(b"a\n\nb\n");
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        input.extend_from_slice(b"\n");
        let long_ok = vec![b'y'; MAX_LINE];
        input.extend_from_slice(&long_ok);
        input.extend_from_slice(b"\n");
        input.extend(std::iter::repeat_n(b'z', 3 * BUFFER));
        input.extend_from_slice(b"\ntail");
        let (seen, skipped) = lines(&input);
        assert_eq!(
            seen,
            [b"a".to_vec(), b"b".to_vec(), long_ok, b"tail".to_vec()]
        );
        assert_eq!(skipped, 2);
    }

    #[test]
    fn a_line_that_is_not_an_event_is_counted() {
        let input = b"{\"time\":1,\"type\":\"reboot\",\"boot_id\":\"b\",\"unexpected\":false,\"cause\":\"c\",\"evidence\":\"e\"}\n{\"time\":2,\"type\":\"ex\n";
        let mut heads = Vec::new();
        let skipped = for_each_event(&input[..], |line| {
            heads.push((line.head.time, line.head.kind.to_string()));
            assert!(line.event().is_some());
            Ok(())
        })
        .expect("read");
        assert_eq!(heads, [(1.0, "reboot".to_owned())]);
        assert_eq!(skipped, 1);
    }
}
