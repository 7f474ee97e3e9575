//! Naming an OOM victim's group and the kill's constraint, with the same rules as the
//! processes collector: the group the last scan saw that pid (and start time) in, else
//! the config file's rules and the zero-config name from the victim's cgroup (task_memcg)
//! and comm. A group that died keeps its name: the kill is counted on it all the same.

use std::sync::Arc;

use crate::groups::live::LivePids;
use crate::groups::{group_name, GroupRules, ProcessFields};
use crate::kmsg::oom::KernelKill;

#[derive(Debug, Clone)]
pub struct VictimNamer {
    pub rules: GroupRules,
    pub live: Arc<LivePids>,
    /// Kernel clock ticks per second, to compare a kill's time with start ticks.
    pub clock_ticks: u64,
}

impl VictimNamer {
    /// The victim's group; `uptime_secs` is when the kernel logged the kill.
    pub fn group(&self, kill: &KernelKill, uptime_secs: f64) -> String {
        let ticks = (uptime_secs * self.clock_ticks as f64) as u64;
        if let Some(group) = self.live.group_of(kill.pid, ticks) {
            return group.to_string();
        }
        let cgroup = kill.task_memcg.as_deref().or(kill.oom_group.as_deref());
        self.by_name(&kill.comm, cgroup)
    }

    /// The group a process of this comm in this cgroup would be in.
    pub fn by_name(&self, comm: &str, cgroup: Option<&str>) -> String {
        let process = ProcessFields {
            comm,
            cmdline: None,
            cgroup,
        };
        group_name(&self.rules, process).0
    }
}
