//! Groups: the logical service each process belongs to, and what is tracked per group.
//!
//! `naming` derives a zero-config name (systemd unit, container, else comm), `rules` applies
//! the named groups of `--config.file`, and `table` keeps the groups alive between scans:
//! the cap on automatic groups, retention of empty ones, restart and exit counting.
//! `reader` is the one file that reads /proc (a process's cgroup and cmdline, to name its
//! group); the rest works on what it is handed.

pub mod live;
pub mod naming;
pub mod reader;
pub mod rules;
pub mod table;

pub use naming::{auto_group, auto_group_name, NameSource};
pub use rules::{GroupRule, GroupRules, ProcessFields, RuleField};
pub use table::{GroupTable, InstanceKey, TableSettings};

/// The group a process belongs to before the cap on automatic groups: the first rule of
/// the config file that matches, else the zero-config name; and where the name came from.
pub fn group_name(rules: &GroupRules, process: ProcessFields<'_>) -> (String, NameSource) {
    match rules.classify(process) {
        Some(name) => (name, NameSource::Rule),
        None => auto_group(process.cgroup, process.comm),
    }
}

/// The group that collects automatic groups beyond `--groups.max`.
pub const OTHER_GROUP: &str = "other";
