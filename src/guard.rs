//! The guard that flushes at the end of the run: `main` holds it, and its
//! drop runs the last flush (or hands it to the worker).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::capture::layer::{SendingScope, Shared};
use crate::error::Error;
use crate::flush::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::worker::finish;
use crate::policy::Phase;
use crate::sync::lock;

/// Flushes the pending records when dropped: keep it alive until the end of
/// `main`. Made by [`Builder::build`](crate::Builder::build).
///
/// Dropping it flushes once (and stops the batch worker, if any).
/// [`flush`](FlushGuard::flush) flushes now and returns the [`Outcome`]; the
/// drop after it then only flushes if records came in since. A record is never
/// sent twice by the same process, nor stored twice.
///
/// ```
/// use tracing_email::{EmailLayer, FileDrop, Outcome, inspect::WaitingFor};
/// use tracing_subscriber::prelude::*;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let (layer, guard) = EmailLayer::builder("my-app")
///     .transport(FileDrop::new(dir.path().join("outbox")))
///     .state_file(dir.path().join("state.json"))
///     .from("robot@example.com")
///     .to("me@example.com")
///     .threshold(2, tracing::Level::WARN)
///     .build()?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::warn!("first");
/// });
/// let outcome = guard.flush();
/// assert!(matches!(
///     outcome,
///     Outcome::Held { pending: 1, waiting_for: WaitingFor::Threshold { counted: 1, needed: 2, .. } }
/// ));
/// assert_eq!(outcome.to_string(), "held 1 record for a later run: 1 of the 2 warnings or errors needed");
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[must_use = "dropping the guard flushes at once; keep it until the end of main"]
pub struct FlushGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) flusher: Arc<Mutex<Flusher>>,
    pub(crate) worker: Option<JoinHandle<()>>,
    pub(crate) flushed: AtomicBool,
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("buffered", &self.shared.buffer.len())
            .field("state_file", &lock(&self.flusher).store.path())
            .finish_non_exhaustive()
    }
}

impl FlushGuard {
    /// Flushes now: adds the records captured since the last flush to the
    /// state file, decides, sends if the policy says so, and returns what
    /// happened. Blocks for as long as the send takes.
    ///
    /// Never panics: a panic inside the flush (in your `Clock` or
    /// `Transport`, or in this crate) is an [`Outcome::Failed`] with
    /// [`ErrorKind::Panic`](crate::ErrorKind::Panic), and the records the
    /// flush took are stored or kept in memory for the next flush.
    ///
    /// ```
    /// # use tracing_email::{EmailLayer, FileDrop};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (_layer, guard) = EmailLayer::builder("my-app")
    /// #     .transport(FileDrop::new(dir.path().join("outbox")))
    /// #     .state_file(dir.path().join("state.json"))
    /// #     .from("robot@example.com").to("me@example.com").build()?;
    /// let outcome = guard.flush();
    /// eprintln!("{outcome}");
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn flush(&self) -> Outcome {
        let mut flusher = lock(&self.flusher);
        self.flushed.store(true, Ordering::SeqCst);
        let outcome = flusher.flush_caught(&self.shared.buffer, Phase::Flush);
        let (records, emails) = std::mem::take(&mut flusher.sent_during_run);
        match outcome {
            Outcome::Sent {
                records: r,
                emails: e,
            } => Outcome::Sent {
                records: r + records,
                emails: e + emails,
            },
            Outcome::Nothing if emails > 0 => Outcome::Sent { records, emails },
            other => other,
        }
    }

    /// Looks into the state file without changing it: what is pending, and
    /// what this guard's policy would do at a flush now
    /// ([`Snapshot::verdict`](crate::inspect::Snapshot::verdict)). Records captured
    /// since the last flush are not in the file yet and not counted.
    ///
    /// ```
    /// # use tracing_email::{EmailLayer, FileDrop, inspect::Verdict};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (_layer, guard) = EmailLayer::builder("my-app")
    /// #     .transport(FileDrop::new(dir.path().join("outbox")))
    /// #     .state_file(dir.path().join("state.json"))
    /// #     .from("robot@example.com").to("me@example.com").build()?;
    /// let snapshot = guard.snapshot()?;
    /// assert_eq!(snapshot.verdict, Some(Verdict::Nothing));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<crate::inspect::Snapshot, Error> {
        let flusher = lock(&self.flusher);
        let now = crate::clock::catch_now(&*flusher.clock).map_err(|payload| {
            let then = "no verdict can be given; fix the Clock given to the builder";
            crate::error::panicked("the clock panicked", payload, then)
        })?;
        let now = crate::clock::datetime(now);
        let file = crate::inspect::StateFile::open(flusher.store.path());
        let mut snapshot = file.read(Some((&flusher.policy, now, flusher.run)))?;
        snapshot.unflushed = self.shared.buffer.len();
        Ok(snapshot)
    }

    /// The path of the state file.
    ///
    /// ```
    /// # use tracing_email::{EmailLayer, FileDrop};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("my-app.json");
    /// # let (_layer, guard) = EmailLayer::builder("my-app")
    /// #     .transport(FileDrop::new("outbox")).state_file(&path)
    /// #     .from("robot@example.com").to("me@example.com").build()?;
    /// assert_eq!(guard.state_file(), path);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn state_file(&self) -> std::path::PathBuf {
        lock(&self.flusher).store.path().to_path_buf()
    }
}

impl Drop for FlushGuard {
    /// Never panics: a flush that panics is an outcome printed on stderr,
    /// and a poisoned lock is taken as it is.
    fn drop(&mut self) {
        // From now on nothing would flush a new record: refuse it, and say so.
        self.shared.guard_dropped.store(true, Ordering::Relaxed);
        let flushed = self.flushed.load(Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let signal = &self.shared.signal;
            // Dropped on the worker's own thread (a panic hook while a flush
            // there panics): it cannot join itself, and its flush holds the
            // flusher. It runs this last flush when that flush is over.
            let here = worker.thread().id() == std::thread::current().id();
            {
                let mut state = lock(&signal.state);
                state.stop = true;
                if here {
                    state.finish = Some(flushed);
                }
            }
            signal.cond.notify_all();
            if here {
                return;
            }
            let _ = worker.join();
        }
        finish(&self.shared, &self.flusher, flushed);
        // Closing the transport's pooled connections logs (lettre's QUIT):
        // that is this crate at work, not a record logged after the guard.
        let _closing = SendingScope::enter();
        let transport = lock(&self.flusher).transport.take();
        drop(transport);
    }
}
