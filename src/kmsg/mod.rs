//! The kernel log, parsed: `/dev/kmsg` records and log text lines, and the OOM reports
//! in them turned into one event per kill.
//!
//! The parsers: `record` (kmsg records), `text` (one dmesg, syslog or journal line:
//! where its message starts, its time and writer; `stamps` for the time stamps),
//! `reader` (text as people paste it: broken lines rejoined, glued records split),
//! `kernel_lines` (the kernel's own OOM messages, anchored at the start of a message;
//! `kill_line` for the kill line, `anchors` for what the forms share), `userspace`
//! (systemd-oomd, earlyoom, oomd, nohang) and `oom` (the assembler that joins a report's
//! lines into events; `report` for its state, `outcome` for what it reports); `bounds`
//! holds the size caps they share. All are pure: none opens a file or keeps
//! anything unbounded. The forms, rules and kernel sources are in docs/kernel-log.md.
//! Counting the kills is `kills`'s; reading the device is the kmsg collector's
//! follower. This file only declares and re-exports.

mod anchors;
pub mod bounds;
pub mod kernel_lines;
pub mod kill_line;
pub mod oom;
pub mod outcome;
pub mod reader;
pub mod record;
mod report;
mod stamps;
pub mod text;
pub mod userspace;

pub use bounds::{MAX_COMM, MAX_PATH, MAX_TIME, MAX_WORD};
pub use oom::OomAssembler;
pub use outcome::{KernelKill, KillKind, NoKillable, OomEvent, OomPanic, Pushed};
pub use reader::{Message, TextReader};
pub use record::{parse_record, split_records, Record, RecordError, SplitRecords, Writer};
pub use text::{parse_text_line, split_program, LineKind, Source, TextLine};
pub use userspace::UserspaceKill;
