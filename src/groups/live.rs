//! The live pid map: which group each process instance belonged to at the last scan,
//! published by the processes collector and read by the kernel-log follower to name the
//! group of an OOM victim (which is dead by the time its kill is read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct LivePids {
    map: Mutex<HashMap<u32, (u64, Arc<str>)>>,
}

impl LivePids {
    /// Replaces the map with the instances of one scan: `(pid, start ticks, group)`.
    pub fn publish(&self, instances: impl Iterator<Item = (u32, u64, Arc<str>)>) {
        let mut map = crate::sync::lock(&self.map);
        map.clear();
        map.extend(instances.map(|(pid, start, group)| (pid, (start, group))));
    }

    /// The group of `pid` if the instance seen under that pid started no later than
    /// `not_after_ticks` (so a pid reused after the kill is not taken for the victim).
    pub fn group_of(&self, pid: u32, not_after_ticks: u64) -> Option<Arc<str>> {
        let map = crate::sync::lock(&self.map);
        map.get(&pid)
            .filter(|(start, _)| *start <= not_after_ticks)
            .map(|(_, group)| group.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_instance_older_than_the_kill_is_the_victim() {
        let live = LivePids::default();
        live.publish([(10, 500, Arc::from("db")), (11, 900, Arc::from("web"))].into_iter());
        assert_eq!(live.group_of(10, 600).as_deref(), Some("db"));
        assert_eq!(live.group_of(11, 600), None);
        assert_eq!(live.group_of(12, 600), None);
    }
}
