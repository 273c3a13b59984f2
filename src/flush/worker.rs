//! The flushes that are not the guard's: the background worker, which
//! checkpoints new records and sends full batches during the run, off the
//! event path; and the guard's last flush, which the worker runs itself when
//! the guard is dropped on its thread.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::layer::{Shared, Signal};
use crate::flush::Flusher;
use crate::policy::Phase;
use crate::sync::lock;

/// Runs, off the event path, a flush of phase `Run` whenever the layer
/// signals a full batch, and every `checkpoint` while records are waiting.
///
/// A panic in a flush ends that flush, not the worker. If the guard is
/// dropped on this thread (a panic hook that drops it while a flush here
/// panics), the guard cannot join the thread it runs on nor flush while this
/// thread's flush holds the flusher: the worker runs the guard's last flush
/// itself when its current flush is over.
pub(crate) fn spawn_worker(
    shared: Arc<Shared>,
    flusher: Arc<Mutex<Flusher>>,
    signal: Arc<Signal>,
    checkpoint: Option<Duration>,
) -> std::io::Result<JoinHandle<()>> {
    /// Runs the guard's last flush, if it was handed over, when the worker
    /// ends (even by a panic).
    struct Finish {
        shared: Arc<Shared>,
        flusher: Arc<Mutex<Flusher>>,
        signal: Arc<Signal>,
    }
    impl Drop for Finish {
        fn drop(&mut self) {
            let handed_over = lock(&self.signal.state).finish.take();
            if let Some(flushed) = handed_over {
                finish(&self.shared, &self.flusher, flushed);
            }
        }
    }
    std::thread::Builder::new()
        .name("tracing-email".into())
        .spawn(move || {
            let _finish = Finish {
                shared: Arc::clone(&shared),
                flusher: Arc::clone(&flusher),
                signal: Arc::clone(&signal),
            };
            loop {
                {
                    let mut state = lock(&signal.state);
                    let started = Instant::now();
                    while !state.wake && !state.stop {
                        match checkpoint {
                            Some(every) => {
                                let left = every.saturating_sub(started.elapsed());
                                if left.is_zero() {
                                    break;
                                }
                                state = signal
                                    .cond
                                    .wait_timeout(state, left)
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .0;
                            }
                            None => {
                                state = signal
                                    .cond
                                    .wait(state)
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                            }
                        }
                    }
                    if state.stop {
                        return;
                    }
                    state.wake = false;
                }
                if shared.buffer.len() > 0 {
                    let _ = lock(&flusher).flush_caught(&shared.buffer, Phase::Run);
                }
            }
        })
}

/// The guard's last flush (unless it `flushed` and no record came in since),
/// then the last resort for records that could not be stored: stderr.
pub(crate) fn finish(shared: &Shared, flusher: &Mutex<Flusher>, flushed: bool) {
    if !flushed || shared.buffer.len() > 0 {
        let outcome = lock(flusher).flush_caught(&shared.buffer, Phase::Flush);
        if outcome.is_failed() {
            // The error may hold a transport's own, whose Display is user code.
            let line = crate::error::display_safely(&outcome);
            let _ = writeln!(std::io::stderr(), "tracing-email: {line}");
        }
    }
    last_resort(&shared.buffer);
}

/// The last resort for records that could not be stored: written to stderr
/// as JSON lines, taken out of `buffer`.
pub(crate) fn last_resort(buffer: &crate::capture::buffer::Buffer) {
    let left = buffer.drain();
    if !left.is_empty() {
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        let _ = writeln!(
            out,
            "tracing-email: {} could not be stored; here they are as JSON lines:",
            crate::flush::outcome::records(left.len())
        );
        for record in left {
            let _ = match serde_json::to_string(&record) {
                Ok(line) => writeln!(out, "{line}"),
                Err(_) => writeln!(out, "{record:?}"),
            };
        }
    }
}
