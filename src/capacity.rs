//! Giving back the memory a burst took: a hash table keeps its largest capacity forever,
//! so the tables that grow with the host (processes, exits per minute) are shrunk once
//! they hold far less than they have room for.

use std::collections::HashMap;
use std::hash::Hash;

/// Tables smaller than this keep their room: shrinking them saves nothing that matters.
const KEEP_BELOW: usize = 1024;

/// Shrinks `map` to twice its length when it has room for more than four times that.
pub fn shrink_map<K: Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > KEEP_BELOW && map.capacity() > 4 * map.len() {
        map.shrink_to(2 * map.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_a_burst_grew_is_shrunk_once_it_empties() {
        let mut map: HashMap<u32, u64> = (0..100_000).map(|i| (i, 0)).collect();
        shrink_map(&mut map);
        assert!(map.capacity() >= 100_000, "full: kept");
        map.retain(|k, _| *k < 10);
        shrink_map(&mut map);
        assert!(map.capacity() < 2048, "room for {}", map.capacity());
    }
}
