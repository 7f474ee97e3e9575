//! Locks that outlive a panic: every mutex in oomwatch guards data that is replaced whole
//! or updated in one step, so a panic on another thread cannot leave it torn, and the
//! exporter goes on with the data as it is rather than failing every later scrape.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
