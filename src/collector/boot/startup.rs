//! What the boot source records at start, before the first scan: this boot in the state
//! file, and when it is the first start in a new boot, how the previous boot ended (with
//! the evidence of pstore, wtmp or wtmpdb) as a reboot event; then, while running, the
//! exporter's heartbeat, and at a clean stop the marker the next boot looks for. Owns
//! those writes; the verdict itself is `reboot::history`'s, reading the evidence is
//! `reboot`'s readers'.

use std::sync::Arc;
use std::time::Duration;

use super::read_boot_id;
use crate::clock::unix_now;
use crate::events::{Event, EventKind, EventLog};
use crate::reboot::history::{Evidence, RebootEvent};
use crate::reboot::{pstore, wtmp, wtmpdb};
use crate::roots::Roots;
use crate::state::{PersistedState, StateStore};

/// Records the current boot in the state. The first start in a new boot (a boot_id other
/// than the state's; btime never decides) classifies how the previous boot ended, counts
/// the reboot (in the state and the event log), and forgets the previous boot's instances
/// and kernel log position. Returns the boot_id, when it can be read.
pub fn record_boot(
    roots: &Roots,
    state: &StateStore,
    events: &EventLog,
    started_at: Option<f64>,
) -> Option<String> {
    let boot_id = match read_boot_id(roots) {
        Ok(boot_id) => boot_id,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the boot_id; reboots cannot be detected");
            return None;
        }
    };
    let known = state.read(|s| s.boot_id.clone());
    let rebooted = known.as_ref().is_some_and(|known| *known != boot_id);
    // Outside the state lock: reading pstore and wtmp is I/O. At the first start the
    // pstore records already there are read too, to be remembered as no evidence.
    let evidence = match (rebooted, started_at) {
        (true, Some(started_at)) => gather_evidence(roots, started_at),
        _ if known.is_none() => Evidence {
            pstore: pstore_records(roots),
            ..Evidence::default()
        },
        _ => Evidence::default(),
    };
    let reboot = state.update(|s| enter_boot(s, &boot_id, started_at, &evidence));
    if let Some(event) = reboot {
        // A failed write stays pending in the log, retried at the next append or flush.
        let _ = events.append(&[Event {
            time: event.at,
            kind: EventKind::Reboot {
                boot_id: boot_id.clone(),
                previous_boot_id: event.previous_boot_id,
                unexpected: event.unexpected,
                cause: event.cause,
                evidence: event.evidence,
                downtime_seconds: event.downtime_seconds,
            },
        }]);
    }
    Some(boot_id)
}

/// Moves the state into boot `boot_id`; the reboot event when this is a new boot that
/// can be dated.
fn enter_boot(
    s: &mut PersistedState,
    boot_id: &str,
    started_at: Option<f64>,
    evidence: &Evidence,
) -> Option<RebootEvent> {
    let mut reboot = None;
    match (&s.boot_id, started_at) {
        (None, Some(started_at)) => {
            s.boot.first_boot(started_at);
            s.boot.remember_pstore(&evidence.pstore);
        }
        (Some(previous), Some(started_at)) if previous != boot_id => {
            let event = s
                .boot
                .new_boot(Some(previous.clone()), started_at, evidence);
            log_reboot(previous, &event);
            s.groups.start_new_boot();
            s.kmsg.start_new_boot();
            reboot = Some(event);
        }
        // Without btime the reboot cannot be dated, but the previous boot's instances
        // and kernel log position must still be forgotten, or this boot's records
        // would be taken for replays and its kills lost.
        (Some(previous), None) if previous != boot_id => {
            tracing::warn!(previous_boot_id = %previous,
                "a new boot, but /proc/stat has no btime: the reboot is not classified");
            s.groups.start_new_boot();
            s.kmsg.start_new_boot();
        }
        // A state file from before the boot history existed.
        (Some(_), Some(started_at)) if s.boot.boots_total == 0 => s.boot.first_boot(started_at),
        _ => {}
    }
    s.boot_id = Some(boot_id.to_owned());
    // This run has not stopped yet; it is alive now.
    s.boot.clean_stop = None;
    s.boot.last_heartbeat = Some(unix_now());
    reboot
}

fn log_reboot(previous: &str, event: &RebootEvent) {
    if event.unexpected {
        tracing::warn!(previous_boot_id = %previous, cause = %event.cause,
            evidence = %event.evidence, downtime_seconds = ?event.downtime_seconds,
            "the previous boot ended unexpectedly");
    } else {
        tracing::info!(previous_boot_id = %previous, cause = %event.cause,
            evidence = %event.evidence, downtime_seconds = ?event.downtime_seconds,
            "first start in a new boot");
    }
}

/// What the host kept of how the previous boot ended: pstore records, and the wtmp (or
/// wtmpdb) verdict.
fn gather_evidence(roots: &Roots, started_at: f64) -> Evidence {
    let (wtmp, wtmpdb) = wtmp_verdict(roots, started_at);
    Evidence {
        pstore: pstore_records(roots),
        wtmp,
        wtmpdb,
    }
}

/// The pstore records the host keeps: the kernel's own (`/sys/fs/pstore`) and
/// systemd-pstore's archive.
fn pstore_records(roots: &Roots) -> Vec<pstore::PstoreRecord> {
    pstore::read_records(&[
        &roots.sysfs().join("fs/pstore"),
        &roots.root_file("/var/lib/systemd/pstore"),
    ])
}

/// wtmpdb where the distribution moved to it (Debian 13, recent Ubuntu): when its
/// database exists it alone speaks, as the legacy file there is stale or absent; a
/// database that gives no verdict (a pending WAL, a malformed file) gives none. Also
/// whether the verdict came from wtmpdb (for the evidence's words).
fn wtmp_verdict(roots: &Roots, started_at: f64) -> (Option<wtmp::WtmpVerdict>, bool) {
    let wtmpdb_path = roots.root_file(wtmpdb::PATH);
    let verdict = match wtmpdb::read_verdict(&wtmpdb_path, started_at) {
        Ok(verdict) => return (verdict, true),
        Err(e) if e.is_not_found() => {
            let wtmp_path = roots.root_file("/var/log/wtmp");
            match std::fs::read(&wtmp_path) {
                Ok(bytes) => wtmp::previous_boot_verdict(&wtmp::parse(&bytes), started_at),
                Err(e) => {
                    tracing::debug!(path = %wtmp_path.display(), error = %e, "no wtmp evidence");
                    None
                }
            }
        }
        Err(e @ wtmpdb::ReadError::Pending { .. }) => {
            tracing::info!(error = %e, "no wtmpdb evidence");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "no wtmpdb evidence");
            None
        }
    };
    (verdict, false)
}

/// Records the exporter's last sign of life every `interval`, on its own thread.
pub fn start_heartbeat(state: Arc<StateStore>, interval: Duration) {
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            state.update(|s| s.boot.last_heartbeat = Some(unix_now()));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the heartbeat thread; the downtime of a crash will be overstated");
    }
}

/// The clean-stop marker: the next boot will know this one was shut down on purpose.
pub fn record_clean_stop(state: &StateStore) {
    state.update(|s| s.boot.clean_stop = Some(unix_now()));
}
