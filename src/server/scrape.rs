//! Shared scrapes: the scan and its encoding run on a blocking thread, and scrapes that
//! arrive while one is in flight wait for it and share its result instead of starting a
//! second scan. The exposition is encoded whole before any scrape sees it; its Prometheus
//! text form is derived at most once per scan, by the first scraper that asks for it. The
//! latest scan is kept with its snapshot, so the incident page is drawn from it instead of
//! scanning /proc again for each view.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::metrics::{openmetrics_to_text, render, BuildInfo};
use crate::scan::Scanner;
use crate::snapshot::Snapshot;
use crate::sync::lock;

/// One scan's exposition: OpenMetrics, and the text format made from it on demand.
#[derive(Debug)]
pub struct Exposition {
    /// UTF-8: made from a `String`.
    openmetrics: Bytes,
    text: OnceLock<Bytes>,
    snapshot: Arc<Snapshot>,
    /// When the scan ended: wall clock (for people) and monotonic (for its age).
    scanned_at: f64,
    scanned: Instant,
}

impl Exposition {
    /// The snapshot this exposition was rendered from.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// When the scan ended, seconds since the epoch.
    pub fn scanned_at(&self) -> f64 {
        self.scanned_at
    }

    pub fn openmetrics(&self) -> Bytes {
        self.openmetrics.clone()
    }

    /// The Prometheus text format (0.0.4), converted once per scan.
    pub fn text(&self) -> Bytes {
        self.text
            .get_or_init(|| {
                let openmetrics = std::str::from_utf8(&self.openmetrics).unwrap_or("");
                Bytes::from(openmetrics_to_text(openmetrics))
            })
            .clone()
    }
}

type Outcome = Option<Result<Arc<Exposition>, String>>;

pub struct SharedScrape {
    scanner: Mutex<Scanner>,
    in_flight: Mutex<Option<watch::Receiver<Outcome>>>,
    latest: Mutex<Option<Arc<Exposition>>>,
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

impl SharedScrape {
    pub fn new(scanner: Scanner) -> Arc<Self> {
        Arc::new(Self {
            scanner: Mutex::new(scanner),
            in_flight: Mutex::new(None),
            latest: Mutex::new(None),
        })
    }

    /// The latest scan if it is at most `max_age` old, else a new (or in-flight) one.
    pub async fn recent(self: &Arc<Self>, max_age: Duration) -> Result<Arc<Exposition>, String> {
        let latest = lock(&self.latest).clone();
        match latest {
            Some(latest) if latest.scanned.elapsed() <= max_age => Ok(latest),
            _ => self.exposition().await,
        }
    }

    /// The exposition of a scan that is in flight now, or of a new one.
    pub async fn exposition(self: &Arc<Self>) -> Result<Arc<Exposition>, String> {
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
    pub fn scan_and_render(&self) -> Result<Arc<Exposition>, String> {
        let snapshot = Arc::new(lock(&self.scanner).scan());
        let exposition = render(snapshot.clone(), BuildInfo::CURRENT)
            .map(|openmetrics| {
                Arc::new(Exposition {
                    openmetrics: Bytes::from(openmetrics),
                    text: OnceLock::new(),
                    snapshot,
                    scanned_at: crate::clock::unix_now(),
                    scanned: Instant::now(),
                })
            })
            .map_err(|_| "encoding the exposition failed".to_owned())?;
        *lock(&self.latest) = Some(exposition.clone());
        Ok(exposition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::{CollectError, Collector};
    use crate::snapshot::Snapshot;
    use crate::state::StateStore;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A collector that takes a while and counts its scans.
    struct Slow(Arc<AtomicU64>);

    impl Collector for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn collect(&mut self, out: &mut Snapshot) -> Result<(), CollectError> {
            let scan = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(300));
            out.vmstat_oom_kills = Some(scan);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_scan() {
        let dir = tempfile::tempdir().expect("temp");
        let (state, _) = StateStore::open(std::sync::Arc::new(
            crate::state_dir::StateDir::unchecked(dir.path()),
        ));
        let scans = Arc::new(AtomicU64::new(0));
        let collectors: Vec<Box<dyn Collector>> = vec![Box::new(Slow(scans.clone()))];
        let shared = SharedScrape::new(Scanner::new(collectors, Arc::new(state)));
        let (a, b, c) = tokio::join!(
            shared.exposition(),
            shared.exposition(),
            shared.exposition()
        );
        assert_eq!(scans.load(Ordering::SeqCst), 1);
        let a = a.expect("scraped").openmetrics();
        assert_eq!(a, b.expect("scraped").openmetrics());
        assert_eq!(a, c.expect("scraped").openmetrics());
        assert!(String::from_utf8_lossy(&a).contains("oomwatch_vmstat_oom_kills_total 1"));
        // A scrape after the shared one has finished runs a fresh scan.
        let later = shared.exposition().await.expect("scraped");
        assert_eq!(scans.load(Ordering::SeqCst), 2);
        let later = later.openmetrics();
        assert!(String::from_utf8_lossy(&later).contains("oomwatch_vmstat_oom_kills_total 2"));
        // A page view takes the latest scan while it is fresh, and scans when it is not.
        let page = shared
            .recent(Duration::from_secs(60))
            .await
            .expect("recent");
        assert_eq!(scans.load(Ordering::SeqCst), 2);
        assert_eq!(page.snapshot().vmstat_oom_kills, Some(2));
        let stale = shared.recent(Duration::ZERO).await.expect("rescanned");
        assert_eq!(scans.load(Ordering::SeqCst), 3);
        assert_eq!(stale.snapshot().vmstat_oom_kills, Some(3));
    }
}
