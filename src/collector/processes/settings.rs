//! The processes collector's settings, from the validated configuration: how many next
//! victims get series, the group table's caps and restart rules, the config file's group
//! rules, and the pin budget. Plain data.

use crate::groups::{GroupRules, TableSettings};

/// What the collector needs besides the roots.
#[derive(Debug, Clone)]
pub struct ProcessesSettings {
    /// `--processes.top`: how many next victims get per-process series.
    pub top_k: usize,
    /// `--processes.top-rss`: how many of the largest processes by RSS get series.
    pub top_rss: usize,
    pub table: TableSettings,
    pub rules: GroupRules,
    pub page_size: u64,
    /// `--processes.max-pinned`: most instances held open between scans.
    pub max_pinned: u64,
}
