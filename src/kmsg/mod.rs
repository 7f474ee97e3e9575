//! The kernel log: parsing `/dev/kmsg` records and log text lines, and turning the OOM
//! reports in them into one event per kill.
//!
//! The pure parsers: `record` (kmsg records), `text` (dmesg, syslog, journal lines),
//! `kernel_lines` (single kernel OOM messages), `userspace` (systemd-oomd, earlyoom, oomd,
//! nohang) and `oom` (the assembler that joins a report's lines into events); none of them
//! opens a file or keeps anything unbounded. Around them: `ledger` (the persisted count of
//! kills), `attribution` (naming a victim's group) and `follower` (the only part that does
//! I/O: the thread that reads `/dev/kmsg`). This file holds the re-exports and the size
//! caps every part shares.

pub mod attribution;
pub mod follower;
pub mod kernel_lines;
pub mod ledger;
pub mod oom;
pub mod record;
pub mod text;
pub mod userspace;

pub use oom::{KernelKill, NoKillable, OomAssembler, OomEvent, OomPanic};
pub use record::{parse_record, split_records, Record, RecordError, SplitRecords};
pub use text::{parse_text_line, split_program, Source, TextLine};
pub use userspace::UserspaceKill;

/// Longest command name kept (the kernel's is 15 bytes; escaped or vendor forms are longer).
pub const MAX_COMM: usize = 64;
/// Longest cgroup path kept.
pub const MAX_PATH: usize = 4096;
/// Longest printed time kept.
pub const MAX_TIME: usize = 64;
/// Longest other short value kept (constraint names, panic reasons).
pub const MAX_WORD: usize = 256;

/// `s` as an owned string of at most `max` bytes, cut at a character boundary.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounded_cuts_at_char_boundary() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("a\u{4e2d}b", 2), "a");
        assert_eq!(bounded("", 0), "");
    }
}
