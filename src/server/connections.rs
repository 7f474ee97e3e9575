//! The server's connection slots: at most `capacity` connections open at once, where a
//! connection that has not sent a whole request header yet (a new one, one between
//! requests, a slow or silent one) is idle and can be closed to make room for a new
//! connection, the longest idle first, as nginx reuses its idle connections when it runs
//! out. A flood of idle connections then only pushes out other idle connections: a
//! scrape, which sends its request as soon as it connects, is busy from its header to its
//! response and is never closed for room. A new connection is refused only when every
//! slot is busy. Owns the slots and the order of idleness; must not touch sockets (the
//! server closes a connection when its slot's `closed` fires).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::limits::{MAX_CONNECTIONS, OTHER_DESCRIPTORS};

/// Connections the server holds at once under an open-file limit of `open_files`: the
/// bound in `limits`, lowered so that the connections and the other descriptors fit (an
/// accept that fails for want of a descriptor would make no room); at least 64.
pub fn capacity_for(open_files: u64) -> usize {
    let room = open_files.saturating_sub(OTHER_DESCRIPTORS).max(64);
    usize::try_from(room).map_or(MAX_CONNECTIONS, |room| room.min(MAX_CONNECTIONS))
}

#[derive(Debug)]
pub struct Connections {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Slots taken.
    open: usize,
    next_id: u64,
    /// Orders idleness: a connection's place in `idle` is taken when it becomes idle.
    next_idle: u64,
    /// Idle connections, the longest idle first.
    idle: BTreeMap<u64, u64>,
    /// Every connection holding a slot, by id.
    connections: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Its key in `idle` while it is idle.
    idle_since: Option<u64>,
    close: Arc<Notify>,
}

/// How a new connection got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A free slot.
    Free,
    /// The slot of the longest-idle connection, which was told to close.
    ClosedIdle,
}

impl Connections {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots taken now.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    /// A slot for a new connection, idle until its first request header: a free one, else
    /// the longest-idle connection's; None when every slot is busy.
    pub fn admit(self: &Arc<Self>) -> Option<(Slot, Admitted)> {
        let mut inner = self.lock();
        let admitted = if inner.open < self.capacity {
            inner.open += 1;
            Admitted::Free
        } else {
            let (_, oldest) = inner.idle.pop_first()?;
            // Its slot passes to the new connection: `open` stays as it is.
            if let Some(entry) = inner.connections.remove(&oldest) {
                entry.close.notify_one();
            }
            Admitted::ClosedIdle
        };
        let id = inner.next_id;
        inner.next_id += 1;
        let close = Arc::new(Notify::new());
        inner.connections.insert(
            id,
            Entry {
                idle_since: None,
                close: close.clone(),
            },
        );
        inner.mark_idle(id);
        drop(inner);
        let slot = Slot {
            connections: self.clone(),
            id,
            close,
        };
        Some((slot, admitted))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }
}

impl Inner {
    fn mark_idle(&mut self, id: u64) {
        let key = self.next_idle;
        if let Some(entry) = self.connections.get_mut(&id) {
            if entry.idle_since.is_none() {
                entry.idle_since = Some(key);
                self.idle.insert(key, id);
                self.next_idle += 1;
            }
        }
    }

    fn mark_busy(&mut self, id: u64) {
        if let Some(key) = self
            .connections
            .get_mut(&id)
            .and_then(|entry| entry.idle_since.take())
        {
            self.idle.remove(&key);
        }
    }
}

/// One connection's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Marks the connection busy (a request header has arrived) until the guard drops.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        self.connections.lock().mark_busy(self.id);
        BusyGuard(self.clone())
    }

    /// Resolves when the slot was given to a new connection: close this one.
    pub async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.connections.lock();
        if let Some(entry) = inner.connections.remove(&self.id) {
            if let Some(key) = entry.idle_since {
                inner.idle.remove(&key);
            }
            inner.open -= 1;
        }
        // Else it was closed for room, and its slot is the new connection's.
    }
}

/// Keeps a connection busy; idle again when dropped (its response is written).
#[derive(Debug)]
pub struct BusyGuard(Arc<Slot>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.connections.lock().mark_idle(self.0.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_first_then_the_longest_idle_is_closed() {
        let connections = Connections::new(2);
        let (first, how) = connections.admit().expect("free");
        assert_eq!(how, Admitted::Free);
        let (second, _) = connections.admit().expect("free");
        let (third, how) = connections.admit().expect("room made");
        assert_eq!(how, Admitted::ClosedIdle);
        assert_eq!(connections.open(), 2);
        // The first was told to close (the permit waits for it); dropping it frees nothing.
        futures_ready(first.closed());
        drop(first);
        assert_eq!(connections.open(), 2);
        drop(second);
        drop(third);
        assert_eq!(connections.open(), 0);
    }

    #[test]
    fn busy_connections_are_never_closed_for_room() {
        let connections = Connections::new(2);
        let (scrape, _) = connections.admit().expect("free");
        let scrape = Arc::new(scrape);
        let busy = scrape.busy();
        let (idle, _) = connections.admit().expect("free");
        // The idle one goes, though the busy one is older.
        let (_newer, how) = connections.admit().expect("room made");
        assert_eq!(how, Admitted::ClosedIdle);
        futures_ready(idle.closed());
        // Everything left is busy or newly idle: the next takes the idle newcomer's slot,
        // and once all are busy, a new connection is refused.
        let (newest, _) = connections.admit().expect("room made");
        let newest = Arc::new(newest);
        let _newest_busy = newest.busy();
        assert!(connections.admit().is_none(), "every slot is busy");
        // A finished request makes its connection idle, and so closable, again.
        drop(busy);
        let (_after, how) = connections.admit().expect("room made");
        assert_eq!(how, Admitted::ClosedIdle);
        futures_ready(scrape.closed());
    }

    #[test]
    fn the_capacity_fits_the_open_file_limit() {
        assert_eq!(capacity_for(1 << 20), MAX_CONNECTIONS);
        assert_eq!(capacity_for(3072), 2048);
        assert_eq!(capacity_for(1024), 64);
        assert_eq!(capacity_for(u64::MAX), MAX_CONNECTIONS);
    }

    /// Polls `future` once and asserts it is ready.
    fn futures_ready(future: impl std::future::Future<Output = ()>) {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        assert!(future.as_mut().poll(&mut context).is_ready());
    }
}
