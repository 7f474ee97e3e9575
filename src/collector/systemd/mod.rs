//! systemd over D-Bus: two collectors fed by one thread. `oomd` serves the kills
//! systemd-oomd announces with its `Killed` signal (systemd 252+), received live whether or
//! not journald forwards its log to the kernel's; `systemd` serves systemd's own verdict on
//! each unit-named group (`Result`, `NRestarts`, and on systemd 259+ `OOMKills`,
//! `ManagedOOMKills`). The `bus` thread owns the connection (the kmsg follower's pattern:
//! connect, follow, reconnect every 30 s, one log line when the bus is not there); this
//! file owns what the thread shares with the collectors. Without a system bus (no systemd,
//! a container without /run/dbus) both report `oomwatch_collector_success 0`, each says
//! why in one log line (the scan logs a collector's error once, when it appears or
//! changes), and everything else goes on.

pub mod bus;
pub mod oomd;
pub mod subscription;
pub mod units;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::Duration;

use crate::dbus::UnitVerdict;
use crate::kills::oomd::OomdLedger;

/// A question to the bus thread: systemd's verdict on these units, answered in order
/// (None for a unit systemd did not answer for).
#[derive(Debug)]
pub struct UnitsRequest {
    pub units: Vec<String>,
    pub reply: mpsc::SyncSender<Result<Vec<Option<UnitVerdict>>, String>>,
}

/// What the bus thread shares with the collectors.
#[derive(Debug)]
pub struct SystemdShared {
    bus_up: AtomicBool,
    oomd_up: AtomicBool,
    /// `Killed` signals another bus client sent, since the exporter started.
    forged: AtomicU64,
    /// systemd-oomd's kills, as persisted.
    ledger: Mutex<OomdLedger>,
    /// Why the bus is not connected, in words for the collectors' one log line each.
    why_down: Mutex<String>,
    /// The thread's first connection attempt is over (connected or not).
    tried: (Mutex<bool>, Condvar),
    requests: tokio::sync::mpsc::UnboundedSender<UnitsRequest>,
    receiver: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<UnitsRequest>>>,
}

impl SystemdShared {
    /// Starts from the kills persisted in the state file.
    pub fn new(ledger: OomdLedger) -> Self {
        let (requests, receiver) = tokio::sync::mpsc::unbounded_channel();
        Self {
            bus_up: AtomicBool::new(false),
            oomd_up: AtomicBool::new(false),
            forged: AtomicU64::new(0),
            ledger: Mutex::new(ledger),
            why_down: Mutex::new("the D-Bus thread has not connected yet".into()),
            tried: (Mutex::new(false), Condvar::new()),
            requests,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Connected to the system bus now.
    pub fn bus_up(&self) -> bool {
        self.bus_up.load(Ordering::Relaxed)
    }

    /// Subscribed to systemd-oomd's `Killed` signal now.
    pub fn oomd_up(&self) -> bool {
        self.oomd_up.load(Ordering::Relaxed)
    }

    /// `Killed` signals not sent by systemd-oomd, since the exporter started (not
    /// persisted: a flood of them must not become a flood of state writes).
    pub fn forged(&self) -> u64 {
        self.forged.load(Ordering::Relaxed)
    }

    pub(crate) fn count_forged(&self) {
        self.forged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_up(&self, bus: bool, oomd: bool) {
        self.bus_up.store(bus, Ordering::Relaxed);
        self.oomd_up.store(oomd, Ordering::Relaxed);
    }

    /// Not connected, and why.
    pub(crate) fn set_down(&self, why: String) {
        self.set_up(false, false);
        *crate::sync::lock(&self.why_down) = why;
    }

    /// The first connection attempt is over: the collectors can say how it went.
    pub(crate) fn mark_tried(&self) {
        let (tried, changed) = &self.tried;
        *crate::sync::lock(tried) = true;
        changed.notify_all();
    }

    /// Waits up to `timeout` for the thread's first connection attempt, so that the first
    /// scrape reports the bus as it is rather than "not yet".
    pub fn wait_first_attempt(&self, timeout: Duration) {
        let (tried, changed) = &self.tried;
        let guard = crate::sync::lock(tried);
        let _ = changed.wait_timeout_while(guard, timeout, |tried| !*tried);
    }

    /// Why the bus is not connected (or the signal not followed), in words.
    pub fn why_down(&self) -> String {
        crate::sync::lock(&self.why_down).clone()
    }

    /// systemd-oomd's kills as counted now.
    pub fn ledger(&self) -> OomdLedger {
        crate::sync::lock(&self.ledger).clone()
    }

    pub(crate) fn set_ledger(&self, ledger: OomdLedger) {
        *crate::sync::lock(&self.ledger) = ledger;
    }

    /// The requests, for the one bus thread.
    pub(crate) fn take_receiver(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<UnitsRequest>> {
        crate::sync::lock(&self.receiver).take()
    }

    /// Asks the bus thread for systemd's verdict on `units`; an error when the bus is not
    /// connected or the answer takes longer than `timeout`.
    pub fn verdicts(
        &self,
        units: Vec<String>,
        timeout: Duration,
    ) -> Result<Vec<Option<UnitVerdict>>, String> {
        if !self.bus_up() {
            return Err(self.why_down());
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(UnitsRequest { units, reply })
            .map_err(|_| "the D-Bus thread is not running".to_owned())?;
        answer
            .recv_timeout(timeout)
            .map_err(|_| format!("systemd did not answer within {} s", timeout.as_secs()))?
    }
}
