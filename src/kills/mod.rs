//! The OOM kills oomwatch counts from the kernel log: the ledger kept in the state file
//! (`ledger`), whether the kernel's own counters back a named kill (`verify`, with the
//! counts read by `counters`), the naming of a victim's group (`attribution`), and what the
//! kernel-log follower shares with the scans (`shared`), and systemd-oomd's kills
//! received on D-Bus (`oomd`), and whether a userspace killer's kernel-log line was written by
//! the killer (`writer`). Parsing the log is
//! `kmsg`'s; reading the device is the kmsg collector's follower. This file only declares.

pub mod attribution;
pub mod counters;
pub mod ledger;
pub mod oomd;
pub mod shared;
pub mod verify;
pub mod writer;
