//! The guard that flushes at the end of the run, and the [`Outcome`] of a
//! flush.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::buffer::lock;
use crate::error::Error;
use crate::flush::Flusher;
use crate::layer::{Shared, Signal};
use crate::policy::{Phase, WaitingFor};

/// What a flush did.
///
/// Its `Display` is one line a person understands, e.g.
/// `held 3 records for a later run: 2 of the 5 warnings or errors needed`.
///
/// | the state file holds…                                   | outcome   |
/// |----------------------------------------------------------|-----------|
/// | no record                                                | `Nothing` |
/// | records, but the policy's rules are not met              | `Held`    |
/// | records a rule sends, but `min_interval` has not passed  | `Waiting` |
/// | records the policy sends, and the server accepts         | `Sent`    |
/// | records that could not be sent or stored                 | `Failed`  |
///
/// ```
/// use tracing_email::{Outcome, WaitingFor};
///
/// let waiting_for = WaitingFor::Threshold { counted: 2, needed: 5, level: tracing::Level::WARN };
/// let outcome = Outcome::Held { pending: 3, waiting_for };
/// assert_eq!(
///     outcome.to_string(),
///     "held 3 records for a later run: 2 of the 5 warnings or errors needed"
/// );
/// assert!(!outcome.is_failed());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// No record was pending: nothing to send or keep.
    Nothing,
    /// The records were saved for a later run: no rule of the policy is
    /// met, and `waiting_for` says what the rule closest to sending waits
    /// for, in its own terms (records for a threshold, runs for a streak, a
    /// time for a failure already reported).
    Held {
        /// Records now pending in the state file.
        pending: usize,
        /// What the policy waits for.
        waiting_for: WaitingFor,
    },
    /// A rule is met, but the last email went out less than `min_interval`
    /// ago: the records wait, and a flush from `until` on sends them.
    Waiting {
        /// Records now pending in the state file.
        pending: usize,
        /// When the next email may go.
        until: time::OffsetDateTime,
    },
    /// The server accepted `emails` emails holding `records` records, which
    /// are no longer pending.
    Sent {
        /// Records sent.
        records: usize,
        /// Emails sent.
        emails: usize,
    },
    /// Sending or storing failed, or something panicked during the flush.
    /// Every record that was not accepted by the server is kept (`pending`
    /// of them) and a later flush tries again.
    Failed {
        /// What went wrong.
        error: Error,
        /// Records still pending.
        pending: usize,
    },
}

impl Outcome {
    /// Whether this is [`Outcome::Sent`].
    ///
    /// ```
    /// assert!(tracing_email::Outcome::Sent { records: 5, emails: 1 }.is_sent());
    /// ```
    pub fn is_sent(&self) -> bool {
        matches!(self, Outcome::Sent { .. })
    }

    /// Whether this is [`Outcome::Failed`].
    ///
    /// ```
    /// assert!(!tracing_email::Outcome::Nothing.is_failed());
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

fn records(n: usize) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Nothing => f.write_str("nothing to send: no records are pending"),
            Outcome::Held {
                pending,
                waiting_for,
            } => write!(
                f,
                "held {} for a later run: {waiting_for}",
                records(*pending)
            ),
            Outcome::Waiting { pending, until } => write!(
                f,
                "held {} for a later run: an email went out less than min_interval ago, the \
                 next may go at {}",
                records(*pending),
                crate::record::utc_time(*until)
            ),
            Outcome::Sent { records: n, emails } => write!(
                f,
                "sent {} in {emails} email{}",
                records(*n),
                if *emails == 1 { "" } else { "s" }
            ),
            Outcome::Failed { error, pending } => write!(
                f,
                "not sent, {} kept for a later run: {error}",
                records(*pending)
            ),
        }
    }
}

/// Flushes the pending records when dropped: keep it alive until the end of
/// `main`. Made by [`Builder::build`](crate::Builder::build).
///
/// Dropping it flushes once (and stops the batch worker, if any).
/// [`flush`](FlushGuard::flush) flushes now and returns the [`Outcome`]; the
/// drop after it then only flushes if records came in since. A record is never
/// sent twice by the same process, nor stored twice.
///
/// ```
/// use tracing_email::{EmailLayer, FileDrop, Outcome, WaitingFor};
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
    pub(crate) worker: Option<(Arc<Signal>, JoinHandle<()>)>,
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
    /// ([`Snapshot::verdict`](crate::Snapshot::verdict)). Records captured
    /// since the last flush are not in the file yet and not counted.
    ///
    /// ```
    /// # use tracing_email::{EmailLayer, FileDrop, Verdict};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (_layer, guard) = EmailLayer::builder("my-app")
    /// #     .transport(FileDrop::new(dir.path().join("outbox")))
    /// #     .state_file(dir.path().join("state.json"))
    /// #     .from("robot@example.com").to("me@example.com").build()?;
    /// let snapshot = guard.snapshot()?;
    /// assert_eq!(snapshot.verdict, Some(Verdict::Nothing));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<crate::Snapshot, Error> {
        let flusher = lock(&self.flusher);
        let snapshot = crate::StateFile::open(flusher.store.path()).snapshot()?;
        let now = crate::clock::catch_now(&*flusher.clock).map_err(|payload| {
            crate::flush::drop_payload(payload);
            Error::new(
                crate::ErrorKind::Panic,
                "the clock panicked, so no verdict can be given; fix the Clock given to the \
                 builder",
            )
        })?;
        let now = crate::clock::datetime(now);
        let mut snapshot = snapshot.with_verdict(&flusher.policy, now, flusher.run);
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
        if let Some((signal, worker)) = self.worker.take() {
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
    }
}

/// The guard's last flush (unless it `flushed` and no record came in since),
/// then the last resort for records that could not be stored: stderr.
pub(crate) fn finish(shared: &Shared, flusher: &Mutex<Flusher>, flushed: bool) {
    if !flushed || shared.buffer.len() > 0 {
        let outcome = lock(flusher).flush_caught(&shared.buffer, Phase::Flush);
        if outcome.is_failed() {
            // The error may hold a transport's own, whose Display is user code.
            let line = crate::flush::display_safely(&outcome);
            let _ = writeln!(std::io::stderr(), "tracing-email: {line}");
        }
    }
    let left = shared.buffer.drain();
    if !left.is_empty() {
        let stderr = std::io::stderr();
        let mut out = stderr.lock();
        let _ = writeln!(
            out,
            "tracing-email: {} could not be stored; here they are as JSON lines:",
            records(left.len())
        );
        for record in left {
            let _ = match serde_json::to_string(&record) {
                Ok(line) => writeln!(out, "{line}"),
                Err(_) => writeln!(out, "{record:?}"),
            };
        }
    }
}
