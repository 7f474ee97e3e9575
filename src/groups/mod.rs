//! Groups: the logical service each process belongs to, and what is tracked per group.
//!
//! `naming` derives a zero-config name (systemd unit, container, else comm), `rules` applies
//! the named groups of `--config.file`, and `table` keeps the groups alive between scans:
//! the cap on automatic groups, retention of empty ones, and restart counting. None of
//! these files reads /proc; the processes collector hands them what it read.

pub mod live;
pub mod naming;
pub mod rules;
pub mod table;

pub use naming::auto_group_name;
pub use rules::{GroupRule, GroupRules, RuleField};
pub use table::{GroupTable, InstanceKey, TableSettings};

/// The group that collects automatic groups beyond `--groups.max`.
pub const OTHER_GROUP: &str = "other";
