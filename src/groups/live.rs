//! The live pid map: which group each process instance belonged to at the last scan,
//! published by the processes collector and read by the kernel-log follower to name the
//! group of an OOM victim (which is dead by the time its kill is read).

use std::sync::{Arc, Mutex};

/// `(pid, start ticks, group)` of every instance of the last scan, in ascending pid order
/// (a sorted list takes a third less memory than a map on a host of many processes).
#[derive(Debug, Default)]
pub struct LivePids {
    instances: Mutex<Vec<(u32, u64, Arc<str>)>>,
}

impl LivePids {
    /// Replaces the list with the instances of one scan: `(pid, start ticks, group)`.
    pub fn publish(&self, instances: impl Iterator<Item = (u32, u64, Arc<str>)>) {
        let mut list = crate::sync::lock(&self.instances);
        list.clear();
        list.extend(instances);
        if !list.is_sorted_by_key(|(pid, _, _)| *pid) {
            list.sort_unstable_by_key(|(pid, _, _)| *pid);
        }
    }

    /// The group of `pid` if the instance seen under that pid started no later than
    /// `not_after_ticks` (so a pid reused after the kill is not taken for the victim).
    pub fn group_of(&self, pid: u32, not_after_ticks: u64) -> Option<Arc<str>> {
        let list = crate::sync::lock(&self.instances);
        let at = list.binary_search_by_key(&pid, |(pid, _, _)| *pid).ok()?;
        list.get(at)
            .filter(|(_, start, _)| *start <= not_after_ticks)
            .map(|(_, _, group)| group.clone())
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
