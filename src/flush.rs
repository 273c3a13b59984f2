//! One flush: lock the state file, add this process's new records, decide,
//! send, keep what was not sent, unlock. Also the background worker that
//! checkpoints records and sends batches during the run, off the event path.

use std::ops::Range;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::buffer::{Buffer, lock};
use crate::clock::Clock;
use crate::digest::Composer;
use crate::error::{Error, ErrorKind};
use crate::guard::Outcome;
use crate::history::fingerprint;
use crate::layer::{SendingScope, Shared, Signal};
use crate::policy::{Decision, Facts, Phase, Policy};
use crate::record::Record;
use crate::state::{Loaded, State, StateLock, StateStore};
use crate::transport::{Email, Transport};

pub(crate) struct Flusher {
    pub(crate) store: StateStore,
    pub(crate) policy: Policy,
    pub(crate) composer: Composer,
    pub(crate) transport: Arc<dyn Transport>,
    /// Most records kept pending; the oldest beyond it are dropped.
    pub(crate) max_pending: usize,
    /// Most bytes the records may take in one email (their text lines and
    /// HTML rows, see `Composer::line_bytes`); a larger digest is split.
    pub(crate) max_email_bytes: usize,
    /// The longest one flush may spend sending.
    pub(crate) send_deadline: Duration,
    /// Records and emails the worker sent since the guard last reported an
    /// outcome.
    pub(crate) sent_during_run: (usize, usize),
    /// Where "now" comes from.
    pub(crate) clock: Arc<dyn Clock>,
    /// This run's number in the state file's history, once it has one.
    pub(crate) run: Option<u64>,
}

/// This flush's records, taken from the buffer: they must end up either in
/// the state file or back in the buffer. The records are the last `count`
/// of the pending list.
struct Taken {
    count: usize,
    dropped: u64,
}

impl Flusher {
    /// Runs one flush over the state file and the records in `buffer`.
    ///
    /// Records taken from `buffer` are either in the state file (or a parked
    /// file beside it) when this returns, or back in `buffer`, so a failure
    /// never loses them.
    pub(crate) fn flush(&mut self, buffer: &Buffer, phase: Phase) -> Outcome {
        let _sending = SendingScope::enter();
        let new = buffer.drain();
        let dropped = buffer.take_dropped();
        if phase != Phase::Flush && new.is_empty() && dropped == 0 {
            return Outcome::Nothing;
        }
        let state_lock = match self.store.lock() {
            Ok(l) => l,
            Err(error) if error.kind() == ErrorKind::Busy => {
                return self.park(buffer, new, dropped, error);
            }
            Err(error) => return give_back(buffer, new, dropped, error, 0),
        };
        let Loaded { mut state, parked } = match self.store.load(&state_lock) {
            Ok(loaded) => loaded,
            Err(error) => return give_back(buffer, new, dropped, error, 0),
        };
        let count = new.len();
        let (run, new_run) = self.register_run(&mut state);
        let changed = count > 0 || dropped > 0 || !parked.is_empty() || new_run;
        let old_len = state.pending.len();
        let level = crate::record::severity(self.policy.level());
        for mut record in new {
            record.run = Some(run);
            if crate::record::severity(record.level) >= level {
                let fp = fingerprint(&record, &self.policy.fingerprint_fields);
                state
                    .history
                    .observe(run, &fp, record.level, record.timestamp);
            }
            state.pending.push(record);
        }
        state.dropped += dropped;
        let excess = state.pending.len().saturating_sub(self.max_pending);
        if excess > 0 {
            state.pending.drain(..excess);
            state.dropped += excess as u64;
        }
        // Of this run's records, those trimmed above are counted as dropped.
        let trimmed_new = excess.saturating_sub(old_len).min(count);
        let taken = Taken {
            count: count - trimmed_new,
            dropped: dropped + trimmed_new as u64,
        };

        let now = OffsetDateTime::from(self.clock.now());
        let facts = Facts {
            now,
            last_sent: state.last_sent,
            history: &state.history,
            run,
        };
        let decision = self.policy.decide(&state.pending, phase, &facts);
        if decision == Decision::Nothing {
            return if changed {
                self.save_or_give_back(buffer, &state_lock, &mut state, taken, &parked)
                    .err()
                    .unwrap_or(Outcome::Nothing)
            } else {
                Outcome::Nothing
            };
        }
        // This run's records are made durable before anything is sent, so a
        // crash during the send loses nothing.
        if changed
            && let Err(failed) =
                self.save_or_give_back(buffer, &state_lock, &mut state, taken, &parked)
        {
            return failed;
        }
        match decision {
            Decision::Nothing => Outcome::Nothing,
            Decision::Hold(waiting_for) => Outcome::Held {
                pending: state.pending.len(),
                waiting_for,
            },
            Decision::Wait { until } => Outcome::Waiting {
                pending: state.pending.len(),
                until,
            },
            Decision::Send { records, per_email } => {
                let outcome = self.send(&state_lock, &mut state, records, per_email, now);
                if phase == Phase::Run
                    && let Outcome::Sent { records, emails } = outcome
                {
                    self.sent_during_run.0 += records;
                    self.sent_during_run.1 += emails;
                }
                outcome
            }
        }
    }

    /// This run's number: taken from the state's history at the first flush
    /// (and again if that flush could not save it). Returns it and whether
    /// it is new.
    fn register_run(&mut self, state: &mut State) -> (u64, bool) {
        match self.run {
            Some(run) if state.history.runs >= run => (run, false),
            _ => {
                let run = state.history.start_run();
                self.run = Some(run);
                (run, true)
            }
        }
    }

    /// Saves `state`; on failure puts this run's records (still at the end
    /// of `state.pending`) back into `buffer` and returns the outcome to
    /// report.
    fn save_or_give_back(
        &self,
        buffer: &Buffer,
        state_lock: &StateLock,
        state: &mut State,
        taken: Taken,
        parked: &[std::path::PathBuf],
    ) -> Result<(), Outcome> {
        match self.store.save(state_lock, state) {
            Ok(()) => {
                self.store.remove_parked(parked);
                Ok(())
            }
            Err(error) => {
                let at = state.pending.len() - taken.count;
                let records = state.pending.split_off(at);
                let kept_on_disk = state.pending.len();
                Err(give_back(
                    buffer,
                    records,
                    taken.dropped,
                    error,
                    kept_on_disk,
                ))
            }
        }
    }

    /// The state file stayed locked: the records go to a parked file beside
    /// it, for the next flush to merge.
    fn park(&self, buffer: &Buffer, new: Vec<Record>, dropped: u64, busy: Error) -> Outcome {
        let count = new.len();
        match self.store.park(&new, dropped) {
            Ok(path) => Outcome::Failed {
                error: Error::new(
                    ErrorKind::Busy,
                    format!(
                        "{busy}; this run's {count} records were saved to {} and the next flush \
                         merges them",
                        path.display()
                    ),
                ),
                pending: count,
            },
            Err(_) => give_back(buffer, new, dropped, busy, 0),
        }
    }

    /// Sends the oldest `count` pending records, removes those whose email
    /// was accepted, and saves.
    fn send(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        count: usize,
        per_email: Option<usize>,
        now: OffsetDateTime,
    ) -> Outcome {
        let deadline = Instant::now() + self.send_deadline;
        let mut sent = 0;
        let mut emails = 0;
        let mut error = None;
        'send: for batch in ranges(count, per_email.unwrap_or(count)) {
            let parts = split_by_size(
                &state.pending[batch.clone()],
                self.max_email_bytes,
                &self.composer,
            );
            let total = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                let records = &state.pending[batch.start + part.start..batch.start + part.end];
                let dropped = if emails == 0 { state.dropped } else { 0 };
                let numbered = (total > 1).then_some((i + 1, total));
                let result = self
                    .composer
                    .compose(records, dropped, numbered, &state.history)
                    .and_then(|email| send_before(&self.transport, email, deadline));
                match result {
                    Ok(()) => {
                        sent += records.len();
                        emails += 1;
                    }
                    Err(e) => {
                        error = Some(e);
                        break 'send;
                    }
                }
            }
        }
        if sent > 0 {
            let level = crate::record::severity(self.policy.level());
            let reported: Vec<String> = state.pending[..sent]
                .iter()
                .filter(|r| crate::record::severity(r.level) >= level)
                .map(|r| fingerprint(r, &self.policy.fingerprint_fields).key)
                .collect();
            state
                .history
                .reported(reported.iter().map(String::as_str), now);
            state.pending.drain(..sent);
            state.last_sent = Some(now);
            state.dropped = 0;
        }
        state.last_error = error.as_ref().map(ToString::to_string);
        let saved = self.store.save(state_lock, state);
        match (error, saved) {
            (Some(error), _) => Outcome::Failed {
                error,
                pending: state.pending.len(),
            },
            (None, Ok(())) => Outcome::Sent {
                records: sent,
                emails,
            },
            (None, Err(e)) => Outcome::Failed {
                pending: state.pending.len() + sent,
                error: Error::new(
                    ErrorKind::State,
                    format!(
                        "sent {sent} records, but could not record that in the state file ({e}); \
                         they may be sent again by a later run"
                    ),
                ),
            },
        }
    }
}

/// Puts records back into the buffer after a failure and says so.
fn give_back(
    buffer: &Buffer,
    records: Vec<Record>,
    dropped: u64,
    error: Error,
    on_disk: usize,
) -> Outcome {
    let count = records.len();
    buffer.restore(records, dropped);
    let error = if count > 0 {
        Error::new(
            error.kind(),
            format!(
                "{error}; this run's {count} records are kept in memory for the next flush \
                 (and written to stderr if none succeeds)"
            ),
        )
    } else {
        error
    };
    Outcome::Failed {
        error,
        pending: on_disk + count,
    }
}

/// `0..count` in consecutive ranges of at most `size`.
fn ranges(count: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = size.max(1);
    (0..count.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(count))
}

/// Splits `records` into consecutive parts whose digest lines (and HTML
/// rows) stay within `max_bytes` (a record larger than that goes alone).
fn split_by_size(records: &[Record], max_bytes: usize, composer: &Composer) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, record) in records.iter().enumerate() {
        let bytes = composer.line_bytes(record);
        if i > start && size + bytes > max_bytes {
            parts.push(start..i);
            start = i;
            size = 0;
        }
        size += bytes;
    }
    if start < records.len() || parts.is_empty() {
        parts.push(start..records.len());
    }
    parts
}

/// Sends `email` on a thread of its own and waits for it until `deadline`:
/// a server that answers slowly (lettre's timeout applies to each read, not
/// to the whole exchange) or a transport that panics cannot hold the flush
/// past it. An abandoned send may still complete; its records stay pending
/// and may then be sent twice, never zero times.
fn send_before(
    transport: &Arc<dyn Transport>,
    email: Email,
    deadline: Instant,
) -> Result<(), Error> {
    let wrap = |e: crate::transport::BoxError| match e.downcast::<Error>() {
        Ok(ours) => *ours,
        Err(other) => Error::with_source(ErrorKind::Send, "could not send the digest", other),
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let late = || {
        Error::new(
            ErrorKind::Send,
            "the send did not finish before the send deadline; the records are kept and a later \
             flush tries again",
        )
    };
    if remaining.is_zero() {
        return Err(late());
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let worker = Arc::clone(transport);
    let spawned = std::thread::Builder::new()
        .name("tracing-email-send".into())
        .spawn(move || {
            let _sending = SendingScope::enter();
            let _ = tx.send(worker.send(&email));
        });
    if let Err(e) = spawned {
        return Err(Error::with_source(
            ErrorKind::Send,
            "could not start a thread to send the digest",
            e,
        ));
    }
    match rx.recv_timeout(remaining) {
        Ok(result) => result.map_err(wrap),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(late()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
            ErrorKind::Send,
            "the transport panicked while sending; the records are kept",
        )),
    }
}

/// Runs, off the event path, a flush of phase `Run` whenever the layer
/// signals a full batch, and every `checkpoint` while records are waiting.
pub(crate) fn spawn_worker(
    shared: Arc<Shared>,
    flusher: Arc<Mutex<Flusher>>,
    signal: Arc<Signal>,
    checkpoint: Option<Duration>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tracing-email".into())
        .spawn(move || {
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
                    let _ = lock(&flusher).flush(&shared.buffer, Phase::Run);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use tracing::Level;

    #[test]
    fn ranges_cover_everything_in_order() {
        assert_eq!(ranges(25, 10).collect::<Vec<_>>(), [0..10, 10..20, 20..25]);
        assert_eq!(ranges(3, 3).collect::<Vec<_>>(), vec![0..3]);
        assert_eq!(ranges(0, 3).count(), 0);
    }

    #[test]
    fn big_digests_are_split_into_parts_within_the_size() {
        let composer = crate::digest::tests::composer();
        let records: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = record_at(Level::WARN);
                r.message = format!("{i:0>100}");
                r
            })
            .collect();
        let one = composer.line_bytes(&records[0]);
        let parts = split_by_size(&records, one * 3, &composer);
        assert_eq!(parts, [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(split_by_size(&records, usize::MAX, &composer), vec![0..10]);
        // A record larger than the limit still goes, alone.
        assert_eq!(split_by_size(&records[..2], 1, &composer), [0..1, 1..2]);
    }
}
