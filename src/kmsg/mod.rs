//! The kernel log, parsed: `/dev/kmsg` records and log text lines, and the OOM reports
//! in them turned into one event per kill.
//!
//! The parsers: `record` (kmsg records), `text` (dmesg, syslog, journal lines),
//! `kernel_lines` (single kernel OOM messages), `userspace` (systemd-oomd, earlyoom, oomd,
//! nohang) and `oom` (the assembler that joins a report's lines into events); `bounds`
//! holds the size caps they share. All are pure: none opens a file or keeps anything
//! unbounded. Counting the kills is `kills`'s; reading the device is the kmsg collector's
//! follower. This file only declares and re-exports.

pub mod bounds;
pub mod kernel_lines;
pub mod oom;
pub mod record;
pub mod text;
pub mod userspace;

pub use bounds::{MAX_COMM, MAX_PATH, MAX_TIME, MAX_WORD};
pub use oom::{KernelKill, NoKillable, OomAssembler, OomEvent, OomPanic};
pub use record::{parse_record, split_records, Record, RecordError, SplitRecords};
pub use text::{parse_text_line, split_program, Source, TextLine};
pub use userspace::UserspaceKill;
