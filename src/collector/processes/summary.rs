//! What one scan's rows become: the top-level instances fed to the group table, the
//! per-group aggregates, the group cgroups and the top-K next OOM victims.

use std::collections::HashMap;
use std::sync::Arc;

use super::instances::Row;
use super::settings::ProcessesSettings;
use crate::groups::table::GroupView;
use crate::groups::table::VanishedInstance;
use crate::groups::{GroupTable, InstanceKey};
use crate::snapshot::{GroupCgroup, GroupRow, ProcessRow, ProcessesSample};
use crate::units::pages_to_bytes;

/// The per-group lists of top-level instances, kept between scans so that a steady scan
/// allocates nothing for them.
#[derive(Debug, Default)]
pub(super) struct TopLevel {
    by_group: HashMap<Arc<str>, Vec<InstanceKey>>,
}

impl TopLevel {
    /// Feeds the top-level instances of one scan (those whose parent is not in their
    /// group) to the group table; returns the ones gone since the last scan. `rows` are
    /// in ascending pid order.
    pub fn observe(
        &mut self,
        rows: &[Row],
        table: &mut GroupTable,
        now_secs: f64,
    ) -> Vec<VanishedInstance> {
        self.by_group.retain(|group, keys| {
            keys.clear();
            table.contains(group)
        });
        for row in rows {
            let parent = rows
                .binary_search_by_key(&row.ppid, |r| r.pid)
                .ok()
                .and_then(|i| rows.get(i));
            if parent.is_some_and(|p| p.group == row.group) {
                continue;
            }
            let key = InstanceKey {
                pid: row.pid,
                start_ticks: row.start_ticks,
            };
            match self.by_group.get_mut(&row.group) {
                Some(keys) => keys.push(key),
                None => {
                    self.by_group.insert(row.group.clone(), vec![key]);
                }
            }
        }
        table.observe(now_secs, &self.by_group)
    }
}

/// One group's processes, summed over a scan.
#[derive(Default)]
struct Aggregate {
    processes: u64,
    resident_pages: u64,
    score_max: Option<i32>,
    adj_min: Option<i32>,
    oldest_ticks: Option<u64>,
    /// Processes per memory cgroup.
    memcgs: HashMap<Arc<str>, u32>,
}

impl Aggregate {
    fn add(&mut self, row: &Row) {
        self.processes += 1;
        self.resident_pages = self.resident_pages.saturating_add(row.resident_pages);
        self.score_max = self.score_max.max(Some(row.oom_score));
        self.adj_min = Some(
            self.adj_min
                .map_or(row.oom_score_adj, |m| m.min(row.oom_score_adj)),
        );
        self.oldest_ticks = Some(
            self.oldest_ticks
                .map_or(row.start_ticks, |m| m.min(row.start_ticks)),
        );
        if let Some(memcg) = &row.memcg {
            *self.memcgs.entry(memcg.clone()).or_default() += 1;
        }
    }

    /// The memory cgroup most of the group lives in; ties go to the smaller path.
    fn home(&self) -> Option<&Arc<str>> {
        self.memcgs
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(cgroup, _)| cgroup)
    }
}

/// Turns the rows of one scan and the group table into the top-K, group rows and group
/// cgroups.
pub(super) fn summarise(
    rows: &[Row],
    table: &GroupTable,
    btime: u64,
    settings: &ProcessesSettings,
) -> ProcessesSample {
    let mut aggregates: HashMap<Arc<str>, Aggregate> = HashMap::new();
    for row in rows {
        aggregates.entry(row.group.clone()).or_default().add(row);
    }
    // How many groups have processes in each memory cgroup.
    let mut groups_per_memcg: HashMap<&Arc<str>, u32> = HashMap::new();
    for agg in aggregates.values() {
        for memcg in agg.memcgs.keys() {
            *groups_per_memcg.entry(memcg).or_default() += 1;
        }
    }
    // Only groups with series: a group not yet useful (`--groups.min-age`) shows its
    // processes in the top-K under its name, and nothing else.
    let group_cgroups = table
        .groups()
        .filter(|view| view.promoted)
        .filter_map(|view| {
            let agg = aggregates.get(view.name)?;
            let cgroup = agg.home()?;
            Some(GroupCgroup {
                group: view.name.clone(),
                cgroup: cgroup.clone(),
                owned: agg.memcgs.len() == 1 && groups_per_memcg.get(cgroup) == Some(&1),
            })
        })
        .collect();
    let empty = Aggregate::default();
    let groups = table
        .groups()
        .filter(|view| view.promoted)
        .map(|view| {
            group_row(
                view,
                aggregates.get(view.name).unwrap_or(&empty),
                btime,
                settings,
            )
        })
        .collect();
    ProcessesSample {
        top: top_victims(rows, settings.top_k, settings.page_size),
        top_rss: largest(rows, settings.top_rss, settings.page_size),
        groups,
        vanished_total: 0,
        pinned: 0,
        exits_inferred: [0; 2],
        group_cgroups,
    }
}

fn group_row(
    view: GroupView<'_>,
    agg: &Aggregate,
    btime: u64,
    settings: &ProcessesSettings,
) -> GroupRow {
    let ticks = settings.table.clock_ticks.max(1) as f64;
    GroupRow {
        name: view.name.clone(),
        processes: agg.processes,
        resident_bytes: pages_to_bytes(agg.resident_pages, settings.page_size),
        oom_score_max: agg.score_max,
        oom_score_adj_min: agg.adj_min,
        start_time_seconds: agg.oldest_ticks.map(|t| btime as f64 + t as f64 / ticks),
        restarts: view.restarts,
        configured: view.configured,
        exits: view.exits.iter().map(|(r, n)| (*r, *n)).collect(),
    }
}

/// The `k` processes with the highest oom_score; ties go to the larger RSS, then the
/// lower pid, so the selection is stable between scans.
fn top_victims(rows: &[Row], k: usize, page_size: u64) -> Vec<ProcessRow> {
    best_k(rows, k, page_size, |a, b| {
        b.oom_score
            .cmp(&a.oom_score)
            .then(b.resident_pages.cmp(&a.resident_pages))
            .then(a.pid.cmp(&b.pid))
    })
}

/// The `k` processes with the most resident memory; ties go to the lower pid.
fn largest(rows: &[Row], k: usize, page_size: u64) -> Vec<ProcessRow> {
    best_k(rows, k, page_size, |a, b| {
        b.resident_pages
            .cmp(&a.resident_pages)
            .then(a.pid.cmp(&b.pid))
    })
}

/// The `k` rows first by `rank`. One pass that keeps only the best `k` so far: nothing
/// the size of the host is allocated.
fn best_k(
    rows: &[Row],
    k: usize,
    page_size: u64,
    rank: impl Fn(&Row, &Row) -> std::cmp::Ordering,
) -> Vec<ProcessRow> {
    let mut best: Vec<&Row> = Vec::with_capacity(k);
    if k == 0 {
        return Vec::new();
    }
    for row in rows {
        let full = best.len() == k;
        if full && best.last().is_some_and(|worst| rank(row, worst).is_ge()) {
            continue;
        }
        let at = best.partition_point(|kept| rank(kept, row).is_lt());
        if full {
            best.pop();
        }
        best.insert(at, row);
    }
    best.into_iter()
        .map(|r| ProcessRow {
            pid: r.pid,
            comm: r.comm.clone(),
            group: r.group.clone(),
            oom_score: r.oom_score,
            oom_score_adj: r.oom_score_adj,
            resident_bytes: pages_to_bytes(r.resident_pages, page_size),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, score: i32, pages: u64) -> Row {
        Row {
            pid,
            ppid: 1,
            start_ticks: 100,
            comm: Arc::from("x"),
            group: Arc::from("g"),
            memcg: None,
            resident_pages: pages,
            oom_score: score,
            oom_score_adj: 0,
            ppid_fresh: true,
        }
    }

    #[test]
    fn the_one_pass_top_k_equals_a_full_sort() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let rows: Vec<Row> = (0..(round % 40) as u32)
                .map(|pid| row(pid, next(5) as i32 * 300, next(4)))
                .collect();
            let mut sorted: Vec<&Row> = rows.iter().collect();
            sorted.sort_by(|a, b| {
                b.oom_score
                    .cmp(&a.oom_score)
                    .then(b.resident_pages.cmp(&a.resident_pages))
                    .then(a.pid.cmp(&b.pid))
            });
            for k in [1, 3, 10, 50] {
                let want: Vec<u32> = sorted.iter().take(k).map(|r| r.pid).collect();
                let got: Vec<u32> = top_victims(&rows, k, 4096).iter().map(|r| r.pid).collect();
                assert_eq!(got, want, "round {round}, k {k}");
            }
        }
    }

    #[test]
    fn top_k_is_exact_and_ties_are_stable() {
        let rows = vec![
            row(5, 10, 1),
            row(3, 900, 1),
            row(4, 10, 7),
            row(2, 10, 7),
            row(9, 0, 0),
        ];
        let top = top_victims(&rows, 3, 4096);
        let pids: Vec<_> = top.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [3, 2, 4]);
        assert_eq!(top_victims(&rows, 10, 4096).len(), 5);
        assert!(top_victims(&rows, 0, 4096).is_empty());
    }

    #[test]
    fn the_largest_by_rss_where_scores_tie() {
        let rows: Vec<Row> = [(1, 5), (2, 900), (3, 40), (4, 900), (5, 0)]
            .into_iter()
            .map(|(pid, pages)| row(pid, 666, pages))
            .collect();
        let pids: Vec<u32> = largest(&rows, 3, 4096).iter().map(|r| r.pid).collect();
        assert_eq!(pids, [2, 4, 3]);
        assert_eq!(largest(&rows, 1, 4096)[0].resident_bytes, 900 * 4096);
        assert!(largest(&rows, 0, 4096).is_empty());
    }
}
