//! `std::process::exit` before the guard's flush: an exit hook (`atexit`,
//! installed once, at the first `build()`) stores the records still in
//! memory of every layer whose guard has not been dropped. It only stores
//! them (appended to the journal, or in a parked file beside the state file
//! when the file or the flusher is busy), never sends, and waits for no
//! lock longer than [`WAIT`]: an exit called while a flush holds the locks
//! (from a transport, on this thread) cannot hang.

// Without `atexit` (not Unix) the hook is never installed.
#![cfg_attr(not(unix), allow(dead_code))]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::capture::layer::Shared;
use crate::flush::Flusher;
use crate::flush::taken::Taken;
use crate::policy::Phase;
use crate::store::file::StateStore;
use crate::sync::{lock, try_lock};

/// For the flusher (a worker's checkpoint ends within it) and the state file's lock.
const WAIT: Duration = Duration::from_secs(1);

struct Live {
    shared: Weak<Shared>,
    flusher: Weak<Mutex<Flusher>>,
    store: StateStore,
    /// A `fork`ed child that exits runs the hook too, but its copy of the records
    /// is not its own to store.
    pid: u32,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

/// Installs the hook on the first call; it waits less than `lock_timeout` if less.
pub(crate) fn register(
    shared: &Arc<Shared>,
    flusher: &Arc<Mutex<Flusher>>,
    path: &Path,
    lock_timeout: Duration,
) {
    install();
    let mut live = lock(&LIVE);
    live.retain(|l| l.shared.strong_count() > 0);
    live.push(Live {
        shared: Arc::downgrade(shared),
        flusher: Arc::downgrade(flusher),
        store: StateStore::new(path.to_owned(), lock_timeout.min(WAIT)),
        pid: std::process::id(),
    });
}

#[cfg(unix)]
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `at_exit` is a plain function that never unwinds (it
        // catches every panic), as `atexit` requires.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

/// Without `atexit` (not Unix), records logged since the last checkpoint are
/// lost by an exit that skips the guard's drop.
#[cfg(not(unix))]
fn install() {}

/// A panic may not unwind out of it (an `extern "C"` fn aborts).
#[cfg(unix)]
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        // Another thread registering at this very moment holds the list:
        // its layers are too young to hold records that matter.
        let Some(mut live) = try_lock(&LIVE) else {
            return;
        };
        for layer in std::mem::take(&mut *live) {
            store(&layer);
        }
    });
}

/// Unless its guard was dropped: through its flusher if free within [`WAIT`],
/// else a parked file; what neither can store goes to stderr.
fn store(layer: &Live) {
    let Some(shared) = layer
        .shared
        .upgrade()
        .filter(|_| layer.pid == std::process::id())
    else {
        return;
    };
    if shared.guard_dropped.load(Ordering::SeqCst) || shared.buffer.len() == 0 {
        return;
    }
    let flusher = layer.flusher.upgrade();
    match flusher.as_deref().and_then(lock_within) {
        Some(mut flusher) => {
            let store = std::mem::replace(&mut flusher.store, layer.store.clone());
            let _ = flusher.flush_caught(&shared.buffer, Phase::Checkpoint);
            flusher.store = store;
        }
        None => {
            // Given back to the buffer unless parked.
            let mut taken = Taken::from_buffer(&shared.buffer);
            if layer.store.park(taken.records(), taken.dropped).is_ok() {
                taken.stored();
            }
        }
    }
    crate::flush::worker::last_resort(&shared.buffer);
}

/// A flush on this very thread (an exit from a transport) or one that is sending
/// holds it longer.
fn lock_within(flusher: &Mutex<Flusher>) -> Option<MutexGuard<'_, Flusher>> {
    let until = Instant::now() + WAIT;
    loop {
        match try_lock(flusher) {
            Some(guard) => return Some(guard),
            None if Instant::now() >= until => return None,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
