//! Groups: the logical service each process belongs to, and what is tracked per group.
//!
//! `naming` derives a zero-config name (systemd unit, container, else comm), `rules` applies
//! the named groups of `--config.file`, and `table` keeps the groups alive between scans:
//! the cap on automatic groups, which of them have series, retention of empty ones, exit
//! counting; `memcg` carries each group's memory cgroup counters across the cgroup's
//! re-creations; `restarts` decides, per group, which replaced instances were restarts.
//! `reader` is the one file that reads /proc (a process's cgroup and cmdline, to name its
//! group) and `pods` lists the kubelet's log directories (a Kubernetes node's namespace,
//! pod and container names, parsed by `kubernetes`); the rest works on what it is handed.

pub mod kubernetes;
pub mod live;
pub mod memcg;
pub mod naming;
pub mod pods;
pub mod reader;
pub mod restarts;
pub mod rules;
pub mod table;

pub use naming::{auto_group, auto_group_name, auto_group_with, pod_names, NameSource};
pub use rules::{group_name, GroupRule, GroupRules, ProcessFields, RuleField};
pub use table::{GroupTable, InstanceKey, TableSettings, OTHER_GROUP};
