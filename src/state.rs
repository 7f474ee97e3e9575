//! The persisted state file (`<state.dir>/state.json`): versioned, written atomically
//! (temp file, fsync, rename, fsync of the directory), and tolerant of corruption.
//!
//! A corrupt, empty or truncated file is moved aside (`state.json.corrupt-<unix time>`)
//! with a warning and counted, never a crash. A directory that cannot be created or written,
//! or a file that cannot be read, keeps the exporter serving on state kept in memory: the
//! error is counted and logged when it starts and when it clears, and an unreadable file
//! is never overwritten.
//! The file is only rewritten when its content changed. This module knows the shape of the
//! state, not what the collectors do with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::groups::memcg::MemcgLedger;
use crate::groups::table::GroupsState;
use crate::kills::ledger::KillLedger;
use crate::kills::oomd::OomdLedger;
use crate::reboot::history::BootHistory;
use crate::state_dir::StateDir;

/// The state file format; bump on an incompatible change.
pub const STATE_VERSION: u32 = 1;
const FILE_NAME: &str = "state.json";

/// Everything oomwatch remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    /// The boot the rest of the state belongs to.
    #[serde(default)]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub groups: GroupsState,
    /// OOM kills read from the kernel log.
    #[serde(default)]
    pub kmsg: KillLedger,
    /// Boots, reboots and the exporter's signs of life.
    #[serde(default)]
    pub boot: BootHistory,
    /// Per group, its memory cgroup's event and pressure counters, carried across the
    /// cgroup's re-creations.
    #[serde(default)]
    pub memcg: MemcgLedger,
    /// systemd-oomd's kills received on D-Bus.
    #[serde(default)]
    pub oomd: OomdLedger,
}

/// How the state file was found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    Fresh,
    Loaded,
    /// The file was unreadable as state and was moved to the named path.
    Recovered {
        moved_to: PathBuf,
        reason: String,
    },
    /// The directory cannot be created, or the file exists but cannot be read: oomwatch
    /// runs on state kept in memory. An unreadable file is never overwritten (its counts
    /// would be lost); a directory that appears later is written to.
    Unusable {
        reason: String,
    },
}

/// The state file and its single writer.
#[derive(Debug)]
pub struct StateStore {
    dir: Arc<StateDir>,
    inner: Mutex<Inner>,
    write_errors: AtomicU64,
    /// Successful writes of the state file since start.
    writes: AtomicU64,
    recovered: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    state: PersistedState,
    written: Vec<u8>,
    failing: bool,
    /// The file exists but could not be read: never overwrite it.
    keep_existing: bool,
}

impl StateStore {
    /// Loads the state file of the state directory. Never fails: what cannot be used is
    /// reported in the outcome, and oomwatch serves anyway.
    pub fn open(dir: Arc<StateDir>) -> (Self, LoadOutcome) {
        let mut keep_existing = false;
        let (state, written, outcome) = match dir.fd().and_then(|_| dir.read(FILE_NAME)) {
            Ok(Some(bytes)) => match decode(&bytes) {
                Ok(state) => (state, bytes, LoadOutcome::Loaded),
                Err(reason) => {
                    let moved_to = set_aside(&dir);
                    (
                        PersistedState::default(),
                        Vec::new(),
                        LoadOutcome::Recovered { moved_to, reason },
                    )
                }
            },
            Ok(None) => (PersistedState::default(), Vec::new(), LoadOutcome::Fresh),
            Err(e) => {
                // A directory that cannot be opened may appear later; a file that is
                // there but cannot be read is never overwritten.
                keep_existing = dir.is_open();
                (
                    PersistedState::default(),
                    Vec::new(),
                    LoadOutcome::Unusable {
                        reason: e.to_string(),
                    },
                )
            }
        };
        let recovered = u64::from(matches!(outcome, LoadOutcome::Recovered { .. }));
        let store = Self {
            dir,
            inner: Mutex::new(Inner {
                state,
                written,
                failing: matches!(outcome, LoadOutcome::Unusable { .. }),
                keep_existing,
            }),
            write_errors: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            recovered: AtomicU64::new(recovered),
        };
        (store, outcome)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A copy of the state as last updated.
    pub fn snapshot(&self) -> PersistedState {
        self.lock().state.clone()
    }

    /// Reads part of the state without copying the rest.
    pub fn read<R>(&self, look: impl FnOnce(&PersistedState) -> R) -> R {
        look(&self.lock().state)
    }

    /// Changes the state in memory only: the next `update` (the heartbeat's at the
    /// latest) writes it. For what the kernel still holds if the exporter dies first.
    pub fn stage(&self, change: impl FnOnce(&mut PersistedState)) {
        change(&mut self.lock().state);
    }

    /// Changes the state and writes it out if its content changed. A failed write is
    /// counted and logged; the in-memory state keeps the change and is retried next time.
    pub fn update<R>(&self, change: impl FnOnce(&mut PersistedState) -> R) -> R {
        let mut inner = self.lock();
        let result = change(&mut inner.state);
        inner.state.version = STATE_VERSION;
        let encoded = match serde_json::to_vec_pretty(&inner.state) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the state; not written");
                return result;
            }
        };
        if encoded == inner.written {
            return result;
        }
        if inner.keep_existing {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            return result;
        }
        match self.dir.replace(FILE_NAME, |file| file.write_all(&encoded)) {
            Ok(()) => {
                if inner.failing {
                    tracing::info!(dir = %self.dir.path().display(), "state directory writable again");
                }
                inner.failing = false;
                inner.written = encoded;
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                if !inner.failing {
                    tracing::error!(dir = %self.dir.path().display(), error = %e,
                        "cannot write the state file; counts will not survive a restart until this is fixed");
                }
                inner.failing = true;
            }
        }
        result
    }

    /// State writes that failed since start (`oomwatch_state_write_errors_total`).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// State file writes since start (`oomwatch_state_writes_total`).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Corrupt state files set aside since start (`oomwatch_state_recovered_total`).
    pub fn recovered(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state torn (it is replaced
        // whole), so a poisoned lock is still usable.
        crate::sync::lock(&self.inner)
    }
}

/// Decodes a state file's bytes; the error says what is wrong with them.
pub fn decode(bytes: &[u8]) -> Result<PersistedState, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".into());
    }
    let state: PersistedState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "format version {} is not {STATE_VERSION}",
            state.version
        ));
    }
    Ok(state)
}

fn set_aside(dir: &StateDir) -> PathBuf {
    let stamp = crate::clock::unix_now() as u64;
    let name = format!("{FILE_NAME}.corrupt-{stamp}");
    if let Err(e) = dir.rename(FILE_NAME, &name) {
        tracing::warn!(path = %dir.path().join(FILE_NAME).display(), error = %e, "cannot move the corrupt state file aside; it will be overwritten");
    }
    dir.path().join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> (StateStore, LoadOutcome) {
        StateStore::open(Arc::new(StateDir::unchecked(path)))
    }

    #[test]
    fn an_unusable_directory_or_file_keeps_serving_in_memory_and_loses_nothing() {
        let dir = tempfile::tempdir().expect("temp");
        // The directory cannot be created (a file is in the way).
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").expect("write");
        let (store, outcome) = open(&blocker.join("state"));
        assert!(
            matches!(outcome, LoadOutcome::Unusable { .. }),
            "{outcome:?}"
        );
        store.update(|s| s.boot.boots_total = 3);
        assert_eq!(store.read(|s| s.boot.boots_total), 3);
        assert_eq!(store.write_errors(), 1);
        // The file exists but cannot be read (here: it is a directory): never overwritten.
        let odd = dir.path().join("odd");
        std::fs::create_dir_all(odd.join(FILE_NAME)).expect("dir");
        let (store, outcome) = open(&odd);
        assert!(
            matches!(outcome, LoadOutcome::Unusable { .. }),
            "{outcome:?}"
        );
        store.update(|s| s.boot.boots_total = 4);
        assert_eq!(store.write_errors(), 1);
        assert!(
            odd.join(FILE_NAME).is_dir(),
            "the unreadable state was replaced"
        );
        assert_eq!(
            std::fs::read_dir(&odd).expect("list").count(),
            1,
            "no file left"
        );
    }

    #[test]
    fn round_trip_and_unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("temp");
        let (store, outcome) = open(dir.path());
        assert_eq!(outcome, LoadOutcome::Fresh);
        store.update(|s| s.boot_id = Some("b".into()));
        let path = dir.path().join(FILE_NAME);
        let first = std::fs::metadata(&path)
            .expect("written")
            .modified()
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.update(|s| s.boot_id = Some("b".into()));
        let second = std::fs::metadata(&path)
            .expect("written")
            .modified()
            .expect("mtime");
        assert_eq!(first, second);
        let (again, outcome) = open(dir.path());
        assert_eq!(outcome, LoadOutcome::Loaded);
        assert_eq!(again.snapshot().boot_id.as_deref(), Some("b"));
    }

    #[test]
    fn a_staged_change_waits_for_the_next_write() {
        let dir = tempfile::tempdir().expect("temp");
        let (store, _) = open(dir.path());
        store.update(|s| s.boot_id = Some("b".into()));
        let path = dir.path().join(FILE_NAME);
        let on_disk = || decode(&std::fs::read(&path).expect("read")).expect("decode");
        store.stage(|s| s.boot.boots_total = 7);
        assert_eq!(store.read(|s| s.boot.boots_total), 7, "served at once");
        assert_eq!(on_disk().boot.boots_total, 0, "not written yet");
        store.update(|s| s.boot_id = Some("c".into()));
        assert_eq!(
            on_disk().boot.boots_total,
            7,
            "written with the next change"
        );
    }

    #[test]
    fn corrupt_empty_and_truncated_files_are_set_aside() {
        for content in [
            &b""[..],
            b"{\"version\":1,\"boot",
            b"\x00\xff garbage",
            b"{\"version\":99}",
        ] {
            let dir = tempfile::tempdir().expect("temp");
            std::fs::write(dir.path().join(FILE_NAME), content).expect("write");
            let (store, outcome) = open(dir.path());
            let LoadOutcome::Recovered { moved_to, .. } = outcome else {
                panic!("not recovered: {outcome:?}");
            };
            assert!(moved_to.exists());
            assert_eq!(std::fs::read(&moved_to).expect("kept"), content);
            assert_eq!(store.recovered(), 1);
            assert_eq!(store.snapshot(), PersistedState::default());
        }
    }

    #[test]
    fn unwritable_directory_is_counted_not_fatal() {
        let dir = tempfile::tempdir().expect("temp");
        let (store, _) = open(dir.path());
        std::fs::remove_dir_all(dir.path()).expect("remove");
        store.update(|s| s.boot_id = Some("x".into()));
        assert_eq!(store.write_errors(), 1);
        assert_eq!(store.snapshot().boot_id.as_deref(), Some("x"));
    }
}
