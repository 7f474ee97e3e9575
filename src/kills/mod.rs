//! The OOM kills oomwatch counts from the kernel log: the ledger kept in the state file
//! (`ledger`), the naming of a victim's group and the kill's constraint (`attribution`),
//! and what the kernel-log follower shares with the scans (`shared`). Parsing the log is
//! `kmsg`'s; reading the device is the kmsg collector's follower. This file only declares.

pub mod attribution;
pub mod ledger;
pub mod shared;
