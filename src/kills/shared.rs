//! What the kernel-log follower shares with the scans: whether the log is being read,
//! the kill ledger (shared by `Arc`, copied only when a scrape still holds the old one),
//! and the latest OOM victims for the exit accounting. Owns the locking; must not read
//! the log or decide what counts as a kill.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ledger::KillLedger;

/// Victims kept for matching exits with kills (a few minutes of even a kill storm).
const RECENT_VICTIMS: usize = 512;

/// An OOM victim the kernel log named.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentVictim {
    pub pid: u32,
    pub comm: String,
    /// The kernel log's time stamp, seconds since boot.
    pub uptime_secs: f64,
}

/// What the follower shares with the scrapes.
#[derive(Debug, Default)]
pub struct KmsgShared {
    up: AtomicBool,
    /// systemd-oomd's kills are received live on D-Bus: its kernel-log lines (journald
    /// `ForwardToKMsg=yes`) are then the same kills again, not counted.
    oomd_live: AtomicBool,
    /// Shared with scrapes by `Arc`: a scrape takes a reference, and the follower copies
    /// the ledger only when it changes one that a scrape still holds.
    ledger: Mutex<Arc<KillLedger>>,
    /// The latest OOM victims, replayed ones included, for the exit accounting.
    victims: Mutex<VecDeque<RecentVictim>>,
}

impl KmsgShared {
    /// Starts from the ledger persisted in the state file.
    pub fn new(ledger: KillLedger) -> Self {
        Self {
            up: AtomicBool::new(false),
            oomd_live: AtomicBool::new(false),
            ledger: Mutex::new(Arc::new(ledger)),
            victims: Mutex::default(),
        }
    }

    /// The latest OOM victims the kernel log named, oldest first.
    pub fn recent_victims(&self) -> Vec<RecentVictim> {
        let victims = crate::sync::lock(&self.victims);
        victims.iter().cloned().collect()
    }

    /// Remembers a victim the kernel log named, forgetting the oldest beyond a bound.
    pub fn note_victim(&self, victim: RecentVictim) {
        let mut victims = crate::sync::lock(&self.victims);
        if victims.len() >= RECENT_VICTIMS {
            victims.pop_front();
        }
        victims.push_back(victim);
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Says whether the log is read to its end now; returns what it was.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed)
    }

    /// Whether systemd-oomd's kills are received on D-Bus now.
    pub fn oomd_live(&self) -> bool {
        self.oomd_live.load(Ordering::Relaxed)
    }

    /// Says whether systemd-oomd's kills are received on D-Bus now.
    pub fn set_oomd_live(&self, live: bool) {
        self.oomd_live.store(live, Ordering::Relaxed);
    }

    /// The ledger as it is now (shared, not copied).
    pub fn ledger(&self) -> Arc<KillLedger> {
        self.lock().clone()
    }

    /// The ledger, locked, for the follower to change (`Arc::make_mut`).
    pub fn lock(&self) -> MutexGuard<'_, Arc<KillLedger>> {
        crate::sync::lock(&self.ledger)
    }
}
