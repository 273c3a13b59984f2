//! One flush: lock the state file, add this process's new records, decide,
//! send, keep what was not sent, unlock. Also the batch worker that runs
//! flushes during the run, off the event path.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use time::OffsetDateTime;

use crate::buffer::{Buffer, lock};
use crate::digest::Composer;
use crate::error::{Error, ErrorKind};
use crate::guard::Outcome;
use crate::layer::{SendingScope, Shared, Signal};
use crate::policy::{Decision, Phase, Policy};
use crate::state::StateStore;
use crate::transport::Transport;

pub(crate) struct Flusher {
    pub(crate) store: StateStore,
    pub(crate) policy: Policy,
    pub(crate) composer: Composer,
    pub(crate) transport: Box<dyn Transport>,
    /// Records and emails the batch worker sent since the guard last
    /// reported an outcome.
    pub(crate) sent_during_run: (usize, usize),
}

impl Flusher {
    /// Runs one flush over the state file and the records in `buffer`.
    ///
    /// Records taken from `buffer` are either in the state file when this
    /// returns, or put back into `buffer` (when the file could not be
    /// written), so a failure never loses them.
    pub(crate) fn flush(&mut self, buffer: &Buffer, phase: Phase) -> Outcome {
        let _sending = SendingScope::enter();
        let new = buffer.drain();
        if phase == Phase::Run && new.is_empty() {
            return Outcome::Nothing;
        }
        let new_count = new.len();
        let give_back = |buffer: &Buffer, seqs: Vec<u64>, records: Vec<crate::Record>| {
            buffer.restore(seqs.into_iter().zip(records).collect());
        };
        let lock_and_load = self
            .store
            .lock()
            .and_then(|l| self.store.load(&l).map(|state| (l, state)));
        let (state_lock, mut state) = match lock_and_load {
            Ok(x) => x,
            Err(error) => {
                buffer.restore(new);
                return Outcome::Failed {
                    error,
                    pending: new_count,
                };
            }
        };
        let (seqs, records): (Vec<u64>, Vec<crate::Record>) = new.into_iter().unzip();
        state.pending.extend(records);

        // Makes this run's records durable before anything is sent, so a
        // crash during the send loses nothing.
        let save_new = |store: &StateStore, state: &mut crate::state::State, seqs: Vec<u64>| {
            if seqs.is_empty() {
                return Ok(());
            }
            store.save(&state_lock, state).map_err(|error| {
                let at = state.pending.len() - seqs.len();
                give_back(buffer, seqs, state.pending.split_off(at));
                Outcome::Failed {
                    error,
                    pending: state.pending.len() + new_count,
                }
            })
        };

        match self.policy.decide(&state.pending, phase) {
            Decision::Nothing => Outcome::Nothing,
            Decision::Hold { counted, needed } => {
                if let Err(failed) = save_new(&self.store, &mut state, seqs) {
                    return failed;
                }
                Outcome::Held {
                    pending: state.pending.len(),
                    counted,
                    needed,
                }
            }
            Decision::Send { records, per_email } => {
                if let Err(failed) = save_new(&self.store, &mut state, seqs) {
                    return failed;
                }
                let outcome = self.send(&state_lock, &mut state, records, per_email);
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

    /// Sends the oldest `count` pending records, removes those that were
    /// accepted, and saves.
    fn send(
        &mut self,
        state_lock: &crate::state::StateLock,
        state: &mut crate::state::State,
        count: usize,
        per_email: Option<usize>,
    ) -> Outcome {
        let per_email = per_email.unwrap_or(count).max(1);
        let mut sent = 0;
        let mut emails = 0;
        let mut error = None;
        for chunk in state.pending[..count].chunks(per_email) {
            let dropped = if emails == 0 { state.dropped } else { 0 };
            let result = self.composer.compose(chunk, dropped).and_then(|email| {
                self.transport.send(&email).map_err(|e| {
                    let e = match e.downcast::<Error>() {
                        Ok(ours) => return *ours,
                        Err(other) => other,
                    };
                    Error::with_source(ErrorKind::Send, "could not send the digest", e)
                })
            });
            match result {
                Ok(()) => {
                    sent += chunk.len();
                    emails += 1;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if sent > 0 {
            state.pending.drain(..sent);
            state.last_sent = Some(OffsetDateTime::now_utc());
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

/// Runs batch flushes whenever the layer signals that a batch is ready.
pub(crate) fn spawn_batch_worker(
    shared: Arc<Shared>,
    flusher: Arc<Mutex<Flusher>>,
    signal: Arc<Signal>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tracing-email-batch".into())
        .spawn(move || {
            loop {
                {
                    let mut state = lock(&signal.state);
                    while !state.wake && !state.stop {
                        state = signal
                            .cond
                            .wait(state)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                    if state.stop {
                        return;
                    }
                    state.wake = false;
                }
                let _ = lock(&flusher).flush(&shared.buffer, Phase::Run);
            }
        })
}
