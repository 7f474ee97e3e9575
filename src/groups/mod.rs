//! Groups: the logical service each process belongs to, and what is tracked per group.
//!
//! `naming` derives a zero-config name (systemd unit, container, else comm), `rules` applies
//! the named groups of `--config.file`, and `table` keeps the groups alive between scans:
//! the cap on automatic groups, retention of empty ones, restart and exit counting.
//! `reader` is the one file that reads /proc (a process's cgroup and cmdline, to name its
//! group) and `pods` lists the kubelet's log directories (a Kubernetes node's namespace,
//! pod and container names, parsed by `kubernetes`); the rest works on what it is handed.

pub mod kubernetes;
pub mod live;
pub mod naming;
pub mod pods;
pub mod reader;
pub mod rules;
pub mod table;

pub use naming::{auto_group, auto_group_name, auto_group_with, NameSource};
pub use rules::{GroupRule, GroupRules, ProcessFields, RuleField};
pub use table::{GroupTable, InstanceKey, TableSettings};

/// The group a process belongs to before the cap on automatic groups: the first rule of
/// the config file that matches, else the zero-config name; and where the name came from.
pub fn group_name(rules: &GroupRules, process: ProcessFields<'_>) -> (String, NameSource) {
    match rules.classify(process) {
        Some(name) => (name, NameSource::Rule),
        None => auto_group_with(process.cgroup, process.comm, |kube| rules.pod_name(kube)),
    }
}

/// The group that collects automatic groups beyond `--groups.max`.
pub const OTHER_GROUP: &str = "other";
