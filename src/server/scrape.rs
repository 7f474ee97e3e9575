//! Shared scrapes: the scan and its encoding run on a blocking thread, and scrapes that
//! arrive while one is in flight wait for it and share its result instead of starting a
//! second scan. The exposition is encoded whole before any scrape sees it.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use crate::metrics::{render, BuildInfo};
use crate::scan::Scanner;

type Outcome = Option<Result<Bytes, String>>;

pub struct SharedScrape {
    scanner: Mutex<Scanner>,
    in_flight: Mutex<Option<watch::Receiver<Outcome>>>,
}

impl std::fmt::Debug for SharedScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedScrape").finish_non_exhaustive()
    }
}

/// Clears the in-flight slot when the scan ends, even if it panicked.
struct ClearOnDrop(Arc<SharedScrape>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        *lock(&self.0.in_flight) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedScrape {
    pub fn new(scanner: Scanner) -> Arc<Self> {
        Arc::new(Self {
            scanner: Mutex::new(scanner),
            in_flight: Mutex::new(None),
        })
    }

    /// The exposition of a scan that is in flight now, or of a new one.
    pub async fn exposition(self: &Arc<Self>) -> Result<Bytes, String> {
        let mut receiver = {
            let mut slot = lock(&self.in_flight);
            match slot.as_ref() {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    *slot = Some(receiver.clone());
                    let shared = self.clone();
                    tokio::task::spawn_blocking(move || {
                        let clear = ClearOnDrop(shared.clone());
                        let result = shared.scan_and_render();
                        drop(clear);
                        let _ = sender.send(Some(result));
                    });
                    receiver
                }
            }
        };
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the scan ended without a result".to_owned())?;
        outcome.clone().unwrap_or_else(|| Err("no result".into()))
    }

    /// Runs one scan and encodes it, on the calling (blocking) thread.
    pub fn scan_and_render(&self) -> Result<Bytes, String> {
        let snapshot = lock(&self.scanner).scan();
        render(Arc::new(snapshot), BuildInfo::CURRENT)
            .map(Bytes::from)
            .map_err(|_| "encoding the exposition failed".to_owned())
    }
}
