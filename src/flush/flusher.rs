//! One flush: lock the state file, add this process's new records, decide,
//! send, keep what was not sent, unlock. The records it takes stay owned
//! until they are stored or given back, even if something in it panics.
//!
//! With `notify_recovery`, a flush of the guard (its `flush()` or its drop,
//! [`Phase::Flush`]) ends the run: each failure reported by email as
//! persisting that this run did not see is over (`History::end_run`), and a
//! notice says so, in the digest that goes out or in an email of its own
//! ([`Policy::recovery`]). With `flush_every`, the worker's flush at the end
//! of each period is that same flush ([`Flusher::end_period`]), after which
//! the next flush starts a new run. A checkpoint or the batch worker's
//! flush does not end the run, and a run that never reaches the guard's
//! flush (killed, `process::exit`) says nothing is over.

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;

use crate::capture::buffer::Buffer;
use crate::capture::layer::SendingScope;
use crate::capture::record::Record;
use crate::clock::Clock;
use crate::digest::summary::Late;
use crate::digest::{Composer, Rendered};
use crate::error::{Error, ErrorKind, display_safely, panicked};
use crate::flush::deadline::{Outstanding, send_before};
use crate::flush::outcome::Outcome;
use crate::policy::{Decision, Facts, Phase, Policy, Recovery, Tally};
use crate::store::file::{StateLock, StateStore};
use crate::store::history::fingerprint_of;
use crate::store::kept::{Cache, Loaded, Stamp};
use crate::store::state::State;
use crate::transport::{Email, Transport};

pub(crate) struct Flusher {
    pub(crate) store: StateStore,
    pub(crate) policy: Policy,
    pub(crate) composer: Composer,
    /// Where digests go; `None` when Alertmanager is the only destination.
    pub(crate) transport: Option<Arc<dyn Transport>>,
    /// Where alerts go, if anywhere.
    #[cfg(feature = "alertmanager")]
    pub(crate) alerts: Option<crate::alerts::Poster>,
    /// Most records kept pending; the oldest beyond it are dropped.
    pub(crate) max_pending: usize,
    /// Most bytes the records may take in one email (their text lines, in
    /// the text part and the attached log, see `Composer::render`); a larger
    /// digest is split.
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
    /// The state as this process last read or wrote it, so that the next
    /// flush reads only what other processes appended since, and what the
    /// policy reads of its records.
    pub(crate) cache: Kept,
    /// Whether a failure reported by email and now over gets a notice.
    pub(crate) notify_recovery: bool,
    /// The send to `transport` abandoned at its deadline, while it runs.
    pub(crate) outstanding: Outstanding,
    /// When the firing alerts (or resolutions not yet accepted) in the
    /// state file are to be posted again, so that Alertmanager does not
    /// resolve them at their `endsAt` while they last: a third of the
    /// resolve window after they were last posted (a ninth after a post
    /// failed). `None` when none is known to be firing.
    pub(crate) alerts_due: Option<Instant>,
    /// When this process built the layer: the firing alerts it finds in
    /// the state file were posted before that.
    #[cfg(feature = "alertmanager")]
    pub(crate) started: Instant,
}

/// What a flush keeps in memory for the next one.
#[derive(Default)]
pub(crate) struct Kept {
    /// The state and the stamp of the files it was read from or written to.
    pub(crate) files: Cache,
    /// The policy's running figures of the first [`Tally::len`] pending
    /// records of that state, so that a later flush adds only the new ones
    /// (made anew when records leave, or the state is read whole).
    pub(crate) tally: Option<Tally>,
}

/// What one flush writes: the facts to append, whether the snapshot must
/// be rewritten instead, and the stamp of the files when the state was read
/// (updated at each write; `None` once what is on disk is unknown).
struct Commit {
    /// The run that started in this flush, if one did, and when.
    run: Option<(u64, Option<OffsetDateTime>)>,
    new_records: usize,
    dropped: u64,
    /// The oldest records trimmed at `max_pending`, and the dropped count
    /// that adds (see `journal::Fact::Trim`).
    trim: Option<(u64, u64)>,
    rewrite: bool,
    stamp: Option<Stamp>,
    /// When the state's times were clamped (see `State::clamp_future`).
    clamped_at: Option<OffsetDateTime>,
}

/// This flush's records, owned from the moment they leave the buffer until
/// they are stored: dropped before [`stored`](Taken::stored) (an error, or a
/// panic unwinding through the flush, in our code or in code we call), it
/// gives them back to the buffer, so nothing a flush took can be lost.
///
/// The records are the last `count` of `state.pending`: of an otherwise
/// empty state until the state file is loaded, then of the loaded state.
struct Taken<'a> {
    buffer: &'a Buffer,
    state: State,
    count: usize,
    /// Records the buffer dropped (or this flush trimmed), not yet reported.
    dropped: u64,
}

impl<'a> Taken<'a> {
    /// Takes every record out of `buffer`, with its count of dropped ones.
    fn from_buffer(buffer: &'a Buffer) -> Self {
        let mut taken = Taken {
            buffer,
            state: State::default(),
            count: 0,
            dropped: 0,
        };
        // Once `drain` returns, the records are owned by `taken`.
        taken.state.pending = buffer.drain();
        taken.count = taken.state.pending.len();
        taken.dropped = buffer.take_dropped();
        taken
    }

    /// This run's records, ready to be stored on their own (a parked file).
    fn records(&self) -> &[Record] {
        &self.state.pending[self.state.pending.len() - self.count..]
    }

    /// Puts the loaded state under this run's records.
    fn merge_into(&mut self, mut loaded: State) {
        // The merged list is kept for the run: room for an eighth more, not
        // twice as much as doubling would leave (a large list grows in place
        // where the allocator can).
        let (len, new) = (loaded.pending.len(), self.state.pending.len());
        if loaded.pending.capacity() - len < new {
            loaded.pending.reserve_exact(new.max(len / 8));
        }
        loaded.pending.append(&mut self.state.pending);
        self.state = loaded;
    }

    /// The records are stored: nothing to give back any more.
    fn stored(&mut self) {
        self.count = 0;
        self.dropped = 0;
    }

    /// Gives the records back to the buffer after `error` and says so.
    fn give_back(&mut self, error: Error) -> Outcome {
        let at = self.state.pending.len() - self.count;
        let records = self.state.pending.split_off(at);
        let dropped = std::mem::take(&mut self.dropped);
        self.count = 0;
        give_back(self.buffer, records, dropped, error, at)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.count > 0 || self.dropped > 0 {
            let at = self.state.pending.len().saturating_sub(self.count);
            self.buffer
                .restore(self.state.pending.split_off(at), self.dropped);
        }
    }
}

impl Flusher {
    /// [`flush`](Self::flush), with a panic inside it (in this crate or in
    /// code it calls) turned into [`Outcome::Failed`]: by then the records it
    /// took are stored or back in `buffer`.
    pub(crate) fn flush_caught(&mut self, buffer: &Buffer, phase: Phase) -> Outcome {
        match catch_unwind(AssertUnwindSafe(|| self.flush(buffer, phase))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let pending = buffer.len();
                let then = format!(
                    "this run's {pending} records are kept in memory for the next flush (and \
                     written to stderr if none succeeds); this is a bug in tracing-email, please \
                     report it"
                );
                Outcome::Failed {
                    error: panicked("the flush panicked", payload, &then),
                    pending,
                }
            }
        }
    }

    /// Ends the run, as the guard's flush at a cron job's exit does
    /// (`flush_every`'s period): the same flush, of phase
    /// [`Phase::Flush`], after which the next flush starts a new run. What
    /// it sent counts in the outcome of the guard's next `flush()`.
    pub(crate) fn end_period(&mut self, buffer: &Buffer) -> Outcome {
        let outcome = self.flush_caught(buffer, Phase::Flush);
        self.run = None;
        if let Outcome::Sent { records, emails } = outcome {
            self.sent_during_run.0 += records;
            self.sent_during_run.1 += emails;
        }
        outcome
    }

    /// When the firing alerts are to be posted again, if any are firing.
    pub(crate) fn alerts_due(&self) -> Option<Instant> {
        self.alerts_due
    }

    /// Reads the state file for the alerts an earlier process left firing,
    /// if no flush of this one has yet: they are then due a third of their
    /// resolve window after this process started (see
    /// [`alerts_due`](Flusher::alerts_due)). Creates nothing: without a
    /// state file there is nothing to look for.
    pub(crate) fn find_firing(&mut self) {
        #[cfg(feature = "alertmanager")]
        if let Some(poster) = &self.alerts
            && self.alerts_due.is_none()
            && self.store.path().is_file()
            && let Ok(lock) = self.store.lock()
            && let Ok(loaded) = self.store.load(&lock)
            && !loaded.state.alerts.is_empty()
        {
            self.alerts_due = Some(self.started + poster.window(&loaded.state) / 3);
        }
    }

    /// Whether the firing alerts are due to be posted again now.
    pub(crate) fn alerts_due_now(&self) -> bool {
        self.alerts_due.is_some_and(|due| due <= Instant::now())
    }

    /// Runs one flush over the state file and the records in `buffer`.
    ///
    /// Records taken from `buffer` are either in the state file (or a parked
    /// file beside it) when this returns, or back in `buffer`, so a failure
    /// never loses them.
    ///
    /// A panic inside (in this crate or in code it calls) unwinds out of it,
    /// but gives the records back first; [`flush_caught`](Self::flush_caught)
    /// turns it into an outcome.
    pub(crate) fn flush(&mut self, buffer: &Buffer, phase: Phase) -> Outcome {
        let _sending = SendingScope::enter();
        // The clock is asked first: if it panics, the panic hook's record
        // of that (`capture_panics`) is among the records taken below.
        let asked = self.now(phase);
        let mut taken = Taken::from_buffer(buffer);
        if phase != Phase::Flush && taken.count == 0 && taken.dropped == 0 && !self.alerts_due_now()
        {
            return Outcome::Nothing;
        }
        let state_lock = match self.store.lock() {
            Ok(l) => l,
            Err(error) if error.kind() == ErrorKind::Busy => {
                return self.park(taken, error);
            }
            Err(error) => return taken.give_back(error),
        };
        // "Now" is read again once the lock is held: what other processes
        // stored while this flush waited for it, and what was logged here
        // since the clock was first asked, is not after it (and is not
        // taken for times written under a clock that was ahead).
        let now = asked.and_then(|_| self.now(phase));
        let mut commit = Commit {
            run: None,
            new_records: 0,
            dropped: 0,
            trim: None,
            rewrite: false,
            stamp: None,
            clamped_at: None,
        };
        let outcome = self.flush_locked(&state_lock, &mut taken, phase, now, &mut commit);
        // The state stays in memory for the next flush only when it is
        // exactly what is on disk.
        if let Some(stamp) = commit.stamp
            && taken.count == 0
            && taken.dropped == 0
        {
            self.cache.files.kept = Some((std::mem::take(&mut taken.state), stamp));
            self.cache.files.clamped_at = commit.clamped_at;
        } else {
            self.cache.tally = None;
        }
        outcome
    }

    /// The part of [`flush`](Self::flush) under the lock.
    fn flush_locked(
        &mut self,
        state_lock: &StateLock,
        taken: &mut Taken<'_>,
        phase: Phase,
        now: Result<OffsetDateTime, Error>,
        commit: &mut Commit,
    ) -> Outcome {
        let kept = self.cache.files.kept.take();
        let clamped_at = self.cache.files.clamped_at.take();
        let tally = self.cache.tally.take();
        let Loaded {
            state,
            parked,
            stamp,
            repair,
            kept,
        } = match self.store.load_cached(state_lock, kept) {
            Ok(loaded) => loaded,
            Err(error) => return taken.give_back(error),
        };
        commit.stamp = Some(stamp);
        taken.merge_into(state);
        let (count, dropped) = (taken.count, taken.dropped);
        let state = &mut taken.state;
        let runs_before = state.history.runs;
        // The panic hook's checkpoint reads the system clock, not the
        // layer's: a run it registers has no start time.
        let started = now
            .as_ref()
            .ok()
            .copied()
            .filter(|_| phase != Phase::Checkpoint);
        let (run, new_run) = self.register_run(state, started);
        let mut changed = count > 0 || dropped > 0 || !parked.is_empty() || new_run || repair;
        commit.run = new_run.then_some((run, started));
        commit.dropped = dropped;
        // A renumbered history (see `History::start_run_at`) is not a plain
        // next run: only a rewrite says it.
        commit.rewrite =
            repair || !parked.is_empty() || (new_run && runs_before.checked_add(1) != Some(run));
        let old_len = state.pending.len() - count;
        crate::store::history::check_fingerprint_fields(
            &state.pending[old_len..],
            &self.policy.fingerprint_fields,
            self.policy.level(),
            &state.history,
        );
        let level = crate::capture::record::severity(self.policy.level());
        for record in &mut state.pending[old_len..] {
            record.run = Some(run);
            if crate::capture::record::severity(record.level) >= level {
                let fp = fingerprint_of(record, &self.policy.fingerprint_fields);
                state
                    .history
                    .observe(run, &fp, record.level, record.timestamp);
            }
        }
        state.dropped = state.dropped.saturating_add(dropped);
        let excess = state.pending.len().saturating_sub(self.max_pending);
        if excess > 0 {
            state.pending.drain(..excess);
            state.dropped = state.dropped.saturating_add(excess as u64);
            // Stored even without new records (a lower `max_pending`): the
            // state kept in memory must be the one on disk.
            changed = true;
        }
        // The guard's flush ends the run: reported failures it did not see
        // are over. What this changes is written by a rewrite (the journal
        // holds runs, records, drops and trims only). With notices off, none is kept.
        if self.notify_recovery {
            // Reported as persisting: at `consecutive_runs`, else at two
            // runs in a row.
            let persisting = self.policy.consecutive_runs.unwrap_or(2);
            if phase == Phase::Flush && state.history.end_run(run, persisting) {
                changed = true;
                commit.rewrite = true;
            }
        } else if !state.history.resolved.is_empty() {
            state.history.resolved.clear();
            changed = true;
            commit.rewrite = true;
        }
        // Of this run's records, those trimmed above are counted as dropped.
        let trimmed_new = excess.saturating_sub(old_len).min(count);
        taken.count = count - trimmed_new;
        taken.dropped = dropped.saturating_add(trimmed_new as u64);
        // The oldest records leave by a trim line (of those that were
        // stored: this run's trimmed ones are never written), so a state
        // that stays at `max_pending` appends only what is new.
        commit.trim = (excess > 0).then(|| ((excess - trimmed_new) as u64, excess as u64));
        #[cfg(test)]
        {
            commit.rewrite |= tests::NO_JOURNAL.with(std::cell::Cell::get);
        }
        commit.new_records = taken.count;
        #[cfg(test)]
        tests::panic_if_asked();

        let now = match now {
            Ok(now) => now,
            // Nothing can be decided without the time; this run's records
            // are stored all the same.
            Err(error) => {
                if changed
                    && let Err(failed) = self.save_or_give_back(state_lock, taken, &parked, commit)
                {
                    return failed;
                }
                return Outcome::Failed {
                    error,
                    pending: taken.state.pending.len(),
                };
            }
        };
        // Records kept in memory were clamped at an earlier now: if the
        // clock has not gone back since, only the others need a look.
        let clamped = match clamped_at {
            Some(at) if at <= now => kept.saturating_sub(excess),
            _ => 0,
        };
        let mut moved = false;
        if self.store.clamp_future_from(&mut taken.state, now, clamped) {
            changed = true;
            commit.rewrite = true;
            moved = true;
        }
        commit.clamped_at = Some(now);
        let state = &mut taken.state;
        // The tally of the kept records still holds if they are all still
        // here, in their place, with their times: only the records after it
        // are added.
        let mut tally = tally
            .filter(|t| t.len() <= kept && excess == 0 && !(moved && clamped < t.len()))
            .unwrap_or_else(|| Tally::new(&self.policy));
        tally.extend(&self.policy, &state.pending[tally.len()..]);
        let facts = Facts {
            now,
            last_sent: state.last_sent,
            history: &state.history,
            run,
        };
        let decision = self.policy.decide_tally(&tally, phase, &facts);
        // Records leave only by a send or by alerts accepted, which make it anew.
        self.cache.tally = Some(tally);
        // Recovery notices go by email: none without a transport.
        let recovery = match self.transport {
            Some(_) => self
                .policy
                .recovery(self.notify_recovery, phase, &decision, &facts),
            None => Recovery::Nothing,
        };
        #[cfg(feature = "alertmanager")]
        let worth = self.alerts_worth(state, phase, &facts);
        #[cfg(not(feature = "alertmanager"))]
        let worth: Option<()> = None;
        if decision == Decision::Nothing && worth.is_none() && recovery == Recovery::Nothing {
            return if changed {
                self.save_or_give_back(state_lock, taken, &parked, commit)
                    .err()
                    .unwrap_or(Outcome::Nothing)
            } else {
                Outcome::Nothing
            };
        }
        // This run's records are made durable before anything is sent, so a
        // crash during the send loses nothing.
        if changed && let Err(failed) = self.save_or_give_back(state_lock, taken, &parked, commit) {
            return failed;
        }
        let state = &mut taken.state;
        let deadline = crate::clock::instant_after(self.send_deadline);
        #[cfg(feature = "alertmanager")]
        let alerted = worth.map(|worth| {
            self.post_alerts(
                state_lock, state, &worth, &decision, run, now, deadline, commit,
            )
        });
        #[cfg(not(feature = "alertmanager"))]
        let alerted: Option<Result<Outcome, Error>> = worth.map(|()| Ok(Outcome::Nothing));
        let alerted = match alerted {
            // Alertmanager is the only destination: its outcome is the flush's.
            Some(Ok(outcome)) if self.transport.is_none() => return outcome,
            Some(Err(error)) if self.transport.is_none() => {
                return Outcome::Failed {
                    error,
                    pending: state.pending.len(),
                };
            }
            Some(result) => result.err(),
            None => None,
        };
        let outcome = match decision {
            _ if recovery == Recovery::Alone => {
                let held = match &decision {
                    Decision::Hold(waiting_for) => Some(waiting_for.clone()),
                    _ => None,
                };
                self.send_recovery(state_lock, state, (now, deadline), held, commit)
            }
            Decision::Nothing => match recovery {
                Recovery::Wait { until } => Outcome::Waiting {
                    pending: state.pending.len(),
                    until,
                },
                _ => Outcome::Nothing,
            },
            Decision::Hold(waiting_for) => Outcome::Held {
                pending: state.pending.len(),
                waiting_for,
            },
            Decision::Wait { until } => Outcome::Waiting {
                pending: state.pending.len(),
                until,
            },
            Decision::Send { records, per_email } => {
                let outcome = self.send(
                    state_lock,
                    state,
                    (records, per_email),
                    recovery == Recovery::WithDigest,
                    now,
                    deadline,
                    commit,
                );
                if phase == Phase::Run
                    && let Outcome::Sent { records, emails } = outcome
                {
                    self.sent_during_run.0 += records;
                    self.sent_during_run.1 += emails;
                }
                outcome
            }
        };
        // Alertmanager did not accept the alerts: the flush failed, whatever
        // the email did (said in the error), and the alerts are posted again.
        match (alerted, outcome) {
            (None, outcome) => outcome,
            (
                Some(error),
                Outcome::Failed {
                    error: first,
                    pending,
                },
            ) => Outcome::Failed {
                error: first.context(|e| format!("{e}; and {error}")),
                pending,
            },
            (Some(error), outcome) => Outcome::Failed {
                error: error.context(|e| match &outcome {
                    Outcome::Sent { .. } => format!("{e} (the digest went out: {outcome})"),
                    _ => e.to_string(),
                }),
                pending: taken.state.pending.len(),
            },
        }
    }

    /// Posts this flush's alerts (see [`crate::alerts::Poster::flush`]) and
    /// saves what changed. With Alertmanager as the only destination, the
    /// records of the failures it accepted leave the state file, and so do
    /// the records the policy sends (`decision`), as an email would take
    /// them: its outcome is the flush's.
    #[cfg(feature = "alertmanager")]
    #[allow(clippy::too_many_arguments)]
    fn post_alerts(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        worth: &std::collections::BTreeSet<String>,
        decision: &Decision,
        run: u64,
        now: OffsetDateTime,
        deadline: Instant,
        commit: &mut Commit,
    ) -> Result<Outcome, Error> {
        let Some(poster) = &self.alerts else {
            return Ok(Outcome::Nothing);
        };
        let level = self.policy.level();
        let fields = &self.policy.fingerprint_fields;
        let before = (state.alerts.clone(), state.alert_post.clone());
        // Alone, Alertmanager reports what an email would: every failure
        // among the records the policy sends.
        let send = match (&self.transport, decision) {
            (None, Decision::Send { records, .. }) => *records,
            _ => 0,
        };
        let sent: Vec<String> = self
            .failures_in(&state.pending[..send])
            .map(|fp| fp.key.clone())
            .collect();
        let mut worth = std::borrow::Cow::Borrowed(worth);
        if !sent.is_empty() {
            worth.to_mut().extend(sent.iter().cloned());
        }
        let posted = poster.flush(state, &worth, run, now, deadline, level, fields);
        self.alerts_due = (!state.alerts.is_empty()).then(|| {
            let part = if posted.is_ok() { 3 } else { 9 };
            Instant::now() + poster.window(state) / part
        });
        let mut removed = 0;
        if let Ok(posting) = &posted
            && self.transport.is_none()
        {
            let min = crate::capture::record::severity(level);
            state.history.reported(sent.iter().map(String::as_str), now);
            let mut i = 0;
            state.pending.retain(|r| {
                i += 1;
                let gone = i <= send
                    || (crate::capture::record::severity(r.level) >= min
                        && posting
                            .firing
                            .contains(fingerprint_of(r, fields).key.as_str()));
                !gone
            });
            removed = i - state.pending.len();
            if removed > 0 {
                // The kept tally counted the records that left.
                self.cache.tally = None;
            }
            if send > 0 {
                state.dropped = 0;
            }
        }
        // The post's answer changes at every post: saved with it.
        if state.alerts != before.0 || state.alert_post != before.1 || removed > 0 {
            match self.store.save(state_lock, state) {
                Ok(stamp) => {
                    state.generation = stamp.generation;
                    commit.stamp = Some(stamp);
                }
                Err(e) => {
                    commit.stamp = None;
                    return Err(e);
                }
            }
        }
        let posting = posted?;
        let (firing, resolved) = (posting.firing.len(), posting.resolved);
        if self.transport.is_none() && (removed > 0 || firing + resolved > 0) {
            return Ok(Outcome::Alerted {
                records: removed,
                firing,
                resolved,
            });
        }
        Ok(match decision {
            Decision::Nothing => Outcome::Nothing,
            Decision::Hold(waiting_for) => Outcome::Held {
                pending: state.pending.len(),
                waiting_for: waiting_for.clone(),
            },
            Decision::Wait { until } => Outcome::Waiting {
                pending: state.pending.len(),
                until: *until,
            },
            Decision::Send { .. } => Outcome::Alerted {
                records: removed,
                firing,
                resolved,
            },
        })
    }

    /// The failures this flush posts to Alertmanager as firing, if it posts:
    /// at the flush that ends a run, those the policy would report (and
    /// [`Poster::flush`](crate::alerts::Poster::flush) adds those firing
    /// that the run saw again); at another flush, when the firing ones are
    /// due to be posted again (see [`alerts_due`](Flusher::alerts_due)),
    /// those firing. Alerts found firing in the state file, posted by an
    /// earlier process, are due a third of their resolve window after this
    /// one started.
    #[cfg(feature = "alertmanager")]
    fn alerts_worth(
        &mut self,
        state: &State,
        phase: Phase,
        facts: &Facts<'_>,
    ) -> Option<std::collections::BTreeSet<String>> {
        let poster = self.alerts.as_ref()?;
        let firing = || state.alerts.iter().filter(|(_, p)| p.resolved.is_none());
        if self.alerts_due.is_none() && !state.alerts.is_empty() {
            self.alerts_due = Some(self.started + poster.window(state) / 3);
        }
        match phase {
            Phase::Flush => Some(self.policy.worth_reporting(&state.pending, facts)),
            Phase::Run if self.alerts_due_now() => {
                Some(firing().map(|(key, _)| key.clone()).collect())
            }
            Phase::Run | Phase::Checkpoint => None,
        }
    }

    /// This run's number: taken from the state's history at the first flush
    /// (and again if that flush could not save it), which notes the run as
    /// started `at` (this flush's time, when the clock could be read).
    /// Returns it and whether it is new.
    fn register_run(&mut self, state: &mut State, at: Option<OffsetDateTime>) -> (u64, bool) {
        match self.run {
            Some(run) if state.history.runs >= run => (run, false),
            _ => {
                let run = state.history.start_run_at(at);
                self.run = Some(run);
                (run, true)
            }
        }
    }

    /// The time now, from the clock, within the years a record can hold (as
    /// on the event path). A panic in the clock (user code) is an error that
    /// says so. The panic hook's checkpoint does not ask the clock: it never
    /// sends, so needs no time, and a panic inside a panic hook aborts the
    /// process.
    fn now(&self, phase: Phase) -> Result<OffsetDateTime, Error> {
        let now = if phase == Phase::Checkpoint {
            SystemTime::now()
        } else {
            crate::clock::catch_now(&*self.clock).map_err(|payload| {
                panicked(
                    "the clock panicked",
                    payload,
                    "this run's records are kept in the state file and nothing was sent; fix the \
                     Clock given to the builder",
                )
            })?
        };
        Ok(crate::clock::datetime(now))
    }

    /// Saves the state with this run's records; on failure gives them back
    /// to the buffer and returns the outcome to report.
    ///
    /// What this flush added is appended to the journal, or the snapshot is
    /// rewritten when records left (see [`StateStore::commit`]).
    fn save_or_give_back(
        &self,
        state_lock: &StateLock,
        taken: &mut Taken<'_>,
        parked: &[std::path::PathBuf],
        commit: &mut Commit,
    ) -> Result<(), Outcome> {
        let state = &taken.state;
        let written = match commit.stamp {
            Some(stamp) => {
                let new = &state.pending[state.pending.len() - commit.new_records..];
                let append = crate::store::journal::Append {
                    run: commit.run,
                    level: self.policy.level(),
                    fields: &self.policy.fingerprint_fields,
                    records: new,
                    dropped: commit.dropped,
                    trim: commit.trim,
                };
                self.store
                    .commit(state_lock, state, stamp, &append, commit.rewrite)
            }
            None => self.store.save(state_lock, state),
        };
        match written {
            Ok(stamp) => {
                taken.state.generation = stamp.generation;
                commit.stamp = Some(stamp);
                taken.stored();
                self.store.remove_parked(parked);
                Ok(())
            }
            Err(error) => {
                commit.stamp = None;
                Err(taken.give_back(error))
            }
        }
    }

    /// The state file stayed locked: the records go to a parked file beside
    /// it, for the next flush to merge.
    fn park(&self, mut taken: Taken<'_>, busy: Error) -> Outcome {
        let count = taken.count;
        match self.store.park(taken.records(), taken.dropped) {
            Ok(path) => {
                taken.stored();
                Outcome::Failed {
                    error: Error::new(
                        ErrorKind::Busy,
                        format!(
                            "{busy}; this run's {count} records were saved to {} and the next flush \
                         merges them",
                            path.display()
                        ),
                    ),
                    pending: count,
                }
            }
            Err(_) => taken.give_back(busy),
        }
    }

    /// The failures among `records` that an email of them reports: the
    /// fingerprints of those at the policy's level, one per record.
    fn failures_in<'r>(
        &self,
        records: &'r [Record],
    ) -> impl Iterator<Item = std::borrow::Cow<'r, crate::store::history::Fingerprint>> {
        let min = crate::capture::record::severity(self.policy.level());
        let fields = &self.policy.fingerprint_fields;
        records
            .iter()
            .filter(move |r| crate::capture::record::severity(r.level) >= min)
            .map(move |r| fingerprint_of(r, fields))
    }

    /// Sends the email that only says failures are over (the history's
    /// `resolved`), and saves: once accepted they are forgotten and it
    /// counts as the last email sent; else they wait for the next flush.
    /// `held`: what the records still pending wait for.
    fn send_recovery(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        (now, deadline): (OffsetDateTime, Instant),
        held: Option<crate::policy::WaitingFor>,
        commit: &mut Commit,
    ) -> Outcome {
        let failures = state.history.resolved.len();
        let Some(transport) = &self.transport else {
            return Outcome::Nothing;
        };
        let result = self
            .composer
            .compose_recovery(&state.history.resolved)
            .and_then(|email| send_before(transport, &self.outstanding, email, deadline, send));
        let error = result.err();
        if error.is_none() {
            state.history.resolved.clear();
            state.last_sent = Some(now);
        }
        state.last_error = error.as_ref().map(display_safely);
        state.last_error_at = error.as_ref().map(|_| now);
        let saved = self.store.save(state_lock, state).map(|stamp| {
            state.generation = stamp.generation;
            commit.stamp = Some(stamp);
        });
        if saved.is_err() {
            commit.stamp = None;
        }
        let pending = state.pending.len();
        match (error, saved) {
            (Some(error), _) => Outcome::Failed {
                error: error.context(|e| {
                    format!("{e}; the notice that failures are over is sent by the next flush")
                }),
                pending,
            },
            (None, Ok(())) => Outcome::Resolved {
                failures,
                pending,
                waiting_for: held,
            },
            (None, Err(e)) => Outcome::Failed {
                pending,
                error: Error::explained(
                    ErrorKind::State,
                    format!(
                        "sent the notice that failures are over, but could not record that in \
                         the state file ({e}); a later run may send it again"
                    ),
                    e,
                ),
            },
        }
    }

    /// Sends the oldest `count` pending records of `state` (emails of
    /// `per_email` records, each split to stay within `max_email_bytes`),
    /// oldest first, within the send deadline, and stops at the first
    /// failure. Changes nothing: returns the records and emails the
    /// transport accepted (always the oldest ones) and the error, if one
    /// stopped it. `with_resolved`: the first email also says that the
    /// history's `resolved` failures are over. Without a transport
    /// (Alertmanager alone), nothing is sent.
    pub(crate) fn deliver(
        &self,
        state: &State,
        (count, per_email): (usize, Option<usize>),
        with_resolved: bool,
        deadline: Instant,
    ) -> (usize, usize, Option<Error>) {
        let Some(transport) = &self.transport else {
            return (0, 0, None);
        };
        let mut sent = 0;
        let mut emails = 0;
        for batch in ranges(count, per_email.unwrap_or(count)) {
            let parts = split_by_size(
                &state.pending[batch.clone()],
                self.max_email_bytes,
                &self.composer,
            );
            let total = parts.len();
            for (i, (part, shown)) in parts.into_iter().enumerate() {
                let records = &state.pending[batch.start + part.start..batch.start + part.end];
                let dropped = if emails == 0 { state.dropped } else { 0 };
                let numbered = (total > 1).then_some((i + 1, total));
                let resolved = if with_resolved && emails == 0 {
                    &state.history.resolved[..]
                } else {
                    &[]
                };
                let late = state.last_error.as_deref().map(|error| Late {
                    error,
                    at: state.last_error_at,
                });
                let result = self
                    .composer
                    .compose_with(
                        records,
                        &shown,
                        dropped,
                        numbered,
                        &state.history,
                        resolved,
                        late,
                    )
                    .and_then(|email| {
                        send_before(transport, &self.outstanding, email, deadline, send)
                    });
                match result {
                    Ok(()) => {
                        sent += records.len();
                        emails += 1;
                    }
                    Err(e) => return (sent, emails, Some(e)),
                }
            }
        }
        (sent, emails, None)
    }

    /// Sends the oldest `count` pending records, removes those whose email
    /// was accepted, and saves. `with_resolved`: the first email also says
    /// that the history's `resolved` failures are over, and they are
    /// forgotten once it is accepted. `deadline` is shared with the alerts
    /// posted before, within one send_deadline for the whole flush.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        (count, per_email): (usize, Option<usize>),
        with_resolved: bool,
        now: OffsetDateTime,
        deadline: Instant,
        commit: &mut Commit,
    ) -> Outcome {
        let (sent, emails, error) =
            self.deliver(state, (count, per_email), with_resolved, deadline);
        if sent > 0 {
            if with_resolved {
                state.history.resolved.clear();
            }
            let reported: Vec<_> = self.failures_in(&state.pending[..sent]).collect();
            state
                .history
                .reported(reported.iter().map(|fp| fp.key.as_str()), now);
            state.pending.drain(..sent);
            self.cache.tally = None;
            state.last_sent = Some(now);
            state.dropped = 0;
        }
        // The error may hold the transport's own, whose Display is user code.
        state.last_error = error.as_ref().map(display_safely);
        state.last_error_at = error.as_ref().map(|_| now);
        let saved = self.store.save(state_lock, state).map(|stamp| {
            state.generation = stamp.generation;
            commit.stamp = Some(stamp);
        });
        if saved.is_err() {
            commit.stamp = None;
        }
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
                error: Error::explained(
                    ErrorKind::State,
                    format!(
                        "sent {sent} records, but could not record that in the state file ({e}); \
                         they may be sent again by a later run"
                    ),
                    e,
                ),
            },
        }
    }
}

/// A digest's delivery: the transport's `send`.
fn send(transport: &dyn Transport, email: &Email) -> Result<(), crate::transport::BoxError> {
    transport.send(email)
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
        error.context(|error| {
            format!(
                "{error}; this run's {count} records are kept in memory for the next flush \
                 (and written to stderr if none succeeds)"
            )
        })
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

/// Splits `records` into consecutive parts whose digest lines (in the text
/// part and the attached log) stay within `max_bytes` (a record larger than
/// that goes alone).
/// Each record is rendered once and measured; a part comes with its records
/// listed one by one (its newest `detail_lines`) rendered, for
/// [`Composer::compose`], and the others' dropped once measured.
fn split_by_size(
    records: &[Record],
    max_bytes: usize,
    composer: &Composer,
) -> Vec<(Range<usize>, Vec<Rendered>)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    let mut shown = VecDeque::new();
    for (i, record) in records.iter().enumerate() {
        let rendered = composer.render(record);
        let bytes = rendered.bytes();
        if i > start && size + bytes > max_bytes {
            parts.push((start..i, Vec::from(std::mem::take(&mut shown))));
            start = i;
            size = 0;
        }
        size += bytes;
        shown.push_back(rendered);
        if shown.len() > composer.detail_lines {
            shown.pop_front();
        }
    }
    if start < records.len() || parts.is_empty() {
        parts.push((start..records.len(), Vec::from(shown)));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use crate::sync::lock;
    pub(super) use std::cell::Cell;
    use tracing::Level;

    thread_local! {
        /// Makes flushes on this thread panic in the middle, as a bug in
        /// this crate would: after this run's records are merged into the
        /// loaded state, before anything is decided or saved.
        static PANIC: Cell<bool> = const { Cell::new(false) };
        /// Makes flushes on this thread rewrite the snapshot every time, as
        /// before the journal.
        pub(super) static NO_JOURNAL: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn panic_if_asked() {
        if PANIC.with(Cell::get) {
            panic!("injected for a test");
        }
    }

    fn record(message: &str) -> Record {
        let mut r = record_at(Level::WARN);
        r.message = message.to_owned();
        r
    }

    fn messages(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn taken_records_go_back_to_the_buffer_when_a_panic_unwinds() {
        let buffer = Buffer::new(100);
        buffer.push(record("a"));
        buffer.push(record("b"));
        buffer.restore(Vec::new(), 3);
        let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut taken = Taken::from_buffer(&buffer);
            assert_eq!((taken.count, taken.dropped), (2, 3));
            // Meanwhile the event path goes on.
            buffer.push(record("c"));
            let mut loaded = State::default();
            loaded.pending.push(record("on disk"));
            taken.merge_into(loaded);
            assert_eq!(messages(taken.records()), ["a", "b"]);
            panic!("in the middle of a flush");
        }));
        assert!(panic.is_err());
        // Back, ahead of what came since, with the count of dropped ones;
        // the loaded state's record is not (it is on disk).
        assert_eq!(buffer.take_dropped(), 3);
        assert_eq!(messages(&buffer.drain()), ["a", "b", "c"]);
    }

    #[test]
    fn stored_records_are_not_given_back() {
        let buffer = Buffer::new(100);
        buffer.push(record("a"));
        let mut taken = Taken::from_buffer(&buffer);
        taken.stored();
        drop(taken);
        assert_eq!((buffer.len(), buffer.take_dropped()), (0, 0));
    }

    /// A guard that holds (streaks of 5 runs, by feed), into `dir`.
    fn holding_guard(dir: &std::path::Path) -> crate::FlushGuard {
        holding_guard_with(dir, crate::SystemClock)
    }

    /// [`holding_guard`] reading time from `clock`.
    fn holding_guard_with(dir: &std::path::Path, clock: impl crate::Clock) -> crate::FlushGuard {
        holding_guard_at(dir, clock, usize::MAX)
    }

    /// [`holding_guard_with`] keeping at most `max_pending` records.
    fn holding_guard_at(
        dir: &std::path::Path,
        clock: impl crate::Clock,
        max_pending: usize,
    ) -> crate::FlushGuard {
        let (_layer, guard) = crate::EmailLayer::builder("flush-test")
            .clock(clock)
            .transport(crate::FileDrop::new(dir.join("outbox")))
            .state_file(dir.join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(usize::MAX, Level::ERROR)
            .consecutive_runs(50)
            .fingerprint_fields(["feed"])
            .max_pending(max_pending)
            .checkpoint_interval(None)
            .build()
            .unwrap();
        guard
    }

    /// At `max_pending`, flushes that trim the oldest records append trim
    /// lines, and the journal loads as the rewritten snapshot does: the
    /// newest records, in order, and every trimmed one counted as dropped
    /// (this flush's own trimmed records too, when it brings more than the
    /// limit).
    #[test]
    fn trimming_at_max_pending_appends_and_replays_as_a_rewrite_does() {
        let with = tempfile::tempdir().unwrap();
        let without = tempfile::tempdir().unwrap();
        let clock =
            crate::ManualClock::new(std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000));
        for (dir, no_journal) in [(with.path(), false), (without.path(), true)] {
            NO_JOURNAL.with(|c| c.set(no_journal));
            let mut n = 0;
            for run in 0..3 {
                let guard = holding_guard_at(dir, clock.clone(), 10);
                // 7 records, then 4, then 13 (more than the limit).
                for count in [7, 4, 13] {
                    for _ in 0..count {
                        n += 1;
                        let mut r = record(&format!("run {run} #{n}"));
                        r.timestamp = OffsetDateTime::from_unix_timestamp(n).unwrap();
                        guard.shared.buffer.push(r);
                    }
                    let want = n.min(10) as usize;
                    assert!(
                        matches!(guard.flush(), Outcome::Held { pending, .. } if pending == want)
                    );
                }
                drop(guard);
            }
            NO_JOURNAL.with(|c| c.set(false));
        }
        let journal = std::fs::read_to_string(with.path().join("state.json.journal")).unwrap();
        assert!(journal.contains("{\"@\":\"trim\",\"count\":"), "{journal}");
        let load = |dir: &std::path::Path| {
            let store = StateStore::new(dir.join("state.json"), Duration::from_secs(5));
            let lock = store.lock().unwrap();
            let mut state = store.load(&lock).unwrap().state;
            state.generation = 0;
            state
        };
        let (a, b) = (load(with.path()), load(without.path()));
        let newest: Vec<String> = (63..=72).map(|n| format!("run 2 #{n}")).collect();
        assert_eq!(messages(&a.pending), newest);
        assert_eq!(a.dropped, 72 - 10);
        assert_eq!(a, b);
    }

    /// The same runs and flushes, appended to the journal or rewriting the
    /// snapshot each time, load as the same state.
    #[test]
    fn replaying_the_journal_equals_rewriting_the_snapshot() {
        let with = tempfile::tempdir().unwrap();
        let without = tempfile::tempdir().unwrap();
        let load = |dir: &std::path::Path| {
            let store = StateStore::new(dir.join("state.json"), Duration::from_secs(5));
            let lock = store.lock().unwrap();
            let mut state = store.load(&lock).unwrap().state;
            state.generation = 0;
            state
        };
        // Runs an hour and a fraction of a second apart, the same in both.
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let run_start = |run: i64| start + Duration::from_millis(3_600_250) * run as u32;
        for (dir, no_journal) in [(with.path(), false), (without.path(), true)] {
            NO_JOURNAL.with(|c| c.set(no_journal));
            let mut n = 0;
            let clock = crate::ManualClock::new(start);
            for run in 0..4 {
                clock.set(run_start(run));
                let guard = holding_guard_with(dir, clock.clone());
                for flush in 0..3 {
                    clock.advance(Duration::from_secs(60));
                    for level in [Level::INFO, Level::WARN, Level::ERROR] {
                        n += 1;
                        let mut r = record(&format!("run {run} flush {flush} #{n}"));
                        r.level = level;
                        r.timestamp = OffsetDateTime::from_unix_timestamp(n).unwrap();
                        // Some feeds fail every run, some only in some.
                        let feed = format!("feed {}", (n + run * flush) % 4);
                        r.fields = crate::capture::record::Fields::from_vec(vec![(
                            "feed".into(),
                            feed.into(),
                        )]);
                        guard.shared.buffer.push(r);
                    }
                    if flush == 1 {
                        guard.shared.buffer.restore(Vec::new(), 2);
                    }
                    assert!(matches!(guard.flush(), Outcome::Held { .. }));
                }
                drop(guard);
            }
            NO_JOURNAL.with(|c| c.set(false));
        }
        assert!(with.path().join("state.json.journal").exists());
        assert!(!without.path().join("state.json.journal").exists());
        let (a, b) = (load(with.path()), load(without.path()));
        assert_eq!(a.pending.len(), 36);
        assert_eq!(a.dropped, 8);
        assert_eq!(a.history.runs, 4);
        assert!(!a.history.streaks.is_empty());
        // The strips too: the journal's runs and records rebuild them, gaps
        // (a run without a feed) included.
        let strips: Vec<Vec<bool>> = a
            .history
            .recent
            .keys()
            .filter_map(|k| a.history.recent_runs(k, 24))
            .collect();
        assert!(strips.iter().any(|s| s.contains(&false)), "{strips:?}");
        // When each run started: its first flush, read from the journal's
        // run lines as from the snapshot.
        let starts: Vec<OffsetDateTime> = (0..4)
            .map(|run| crate::clock::datetime(run_start(run) + Duration::from_secs(60)))
            .collect();
        assert_eq!(a.history.run_starts, starts);
        assert_eq!(a, b);
    }

    /// Each period's flush (`flush_every`) ends a run as a process exit
    /// does: a failure seen in three periods has a streak of three, a
    /// checkpoint between them counts in its period, a period without it
    /// breaks the streak, and the journal replays to what was kept.
    #[test]
    fn each_period_is_a_run_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let guard = holding_guard(dir.path());
        let failing = || {
            let mut r = record("feed failed");
            r.level = Level::ERROR;
            r.fields = crate::capture::record::Fields::from_vec(vec![("feed".into(), "A".into())]);
            r
        };
        let streak = |flusher: &Flusher| {
            let state = &flusher.cache.files.kept.as_ref().unwrap().0;
            let runs = state.history.streaks.values().map(|s| s.runs).max();
            (state.history.runs, runs)
        };
        for period in 1..=3 {
            guard.shared.buffer.push(failing());
            let mut flusher = lock(&guard.flusher);
            // A checkpoint within the period starts its run, not one more.
            flusher.flush_caught(&guard.shared.buffer, Phase::Run);
            guard.shared.buffer.push(failing());
            assert!(matches!(
                flusher.end_period(&guard.shared.buffer),
                Outcome::Held { .. }
            ));
            assert_eq!(streak(&flusher), (period, Some(period)));
        }
        let mut flusher = lock(&guard.flusher);
        flusher.end_period(&guard.shared.buffer);
        guard.shared.buffer.push(failing());
        flusher.end_period(&guard.shared.buffer);
        assert_eq!(streak(&flusher), (5, Some(1)));
        let kept = flusher.cache.files.kept.as_ref().unwrap().0.clone();
        drop(flusher);
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock).unwrap().state, kept);
        assert_eq!(kept.pending.len(), 7);
    }

    /// A holding flush reads only what others appended: the kept state is
    /// brought up to date from the journal's tail, and equals a full load.
    #[test]
    fn a_second_process_appending_is_seen_by_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let one = holding_guard(dir.path());
        let two = holding_guard(dir.path());
        for (i, guard) in [&one, &two, &one, &two, &one].into_iter().enumerate() {
            let mut r = record(&format!("#{i}"));
            r.timestamp = OffsetDateTime::from_unix_timestamp(i as i64).unwrap();
            guard.shared.buffer.push(r);
            assert!(matches!(guard.flush(), Outcome::Held { pending, .. } if pending == i + 1));
        }
        let flusher = lock(&one.flusher);
        let kept = flusher.cache.files.kept.as_ref().unwrap().0.clone();
        // The policy's running figures, fed only the new records at each
        // flush, are those of the whole state.
        let mut fresh = Tally::new(&flusher.policy);
        fresh.extend(&flusher.policy, &kept.pending);
        assert_eq!(flusher.cache.tally.as_ref(), Some(&fresh));
        drop(flusher);
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock).unwrap().state, kept);
        assert_eq!(messages(&kept.pending), ["#0", "#1", "#2", "#3", "#4"]);
    }

    /// At `max_pending`, another process's trim lines shift the kept
    /// records: the tally and the clamping of the kept view start afresh
    /// rather than take the trimmed records for still pending.
    #[test]
    fn others_trims_are_not_taken_for_kept_records() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::SystemClock;
        let one = holding_guard_at(dir.path(), clock, 3);
        let two = holding_guard_at(dir.path(), clock, 3);
        // `one` fills the state with errors, `two` trims them with records
        // that are not, then `one` flushes with nothing new (no trim of
        // its own), and again with a record.
        let steps = [&one, &one, &one, &two, &two, &one, &one, &two, &one];
        for (i, guard) in steps.into_iter().enumerate() {
            if i != 5 {
                let mut r = record(&format!("#{i}"));
                r.level = if i < 3 { Level::ERROR } else { Level::INFO };
                // The guard fingerprints by `feed`: without it, the flush
                // prints a note that no record has the field.
                r.fields.push("feed".into(), format!("feed {i}").into());
                r.timestamp = OffsetDateTime::from_unix_timestamp(i as i64).unwrap();
                guard.shared.buffer.push(r);
            }
            assert!(matches!(guard.flush(), Outcome::Held { .. }));
            let flusher = lock(&guard.flusher);
            let kept = &flusher.cache.files.kept.as_ref().unwrap().0;
            let mut fresh = Tally::new(&flusher.policy);
            fresh.extend(&flusher.policy, &kept.pending);
            assert_eq!(flusher.cache.tally.as_ref(), Some(&fresh), "after #{i}");
        }
        let flusher = lock(&one.flusher);
        let kept = &flusher.cache.files.kept.as_ref().unwrap().0;
        assert_eq!(messages(&kept.pending), ["#6", "#7", "#8"]);
    }

    /// With `repeat_after` the tally groups records by failure: fed one
    /// flush at a time, it is the tally of the whole kept state, and a flush
    /// that sends makes it anew from what is left.
    #[test]
    fn the_tally_kept_between_flushes_is_that_of_the_whole_state() {
        let dir = tempfile::tempdir().unwrap();
        let (_layer, guard) = crate::EmailLayer::builder("flush-test")
            .transport(crate::FileDrop::new(dir.path().join("outbox")))
            .state_file(dir.path().join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(12, Level::WARN)
            .fingerprint_fields(["feed"])
            .repeat_after(Duration::from_secs(3600))
            .max_pending(usize::MAX)
            .checkpoint_interval(None)
            .build()
            .unwrap();
        let check = |pending: usize| {
            let flusher = lock(&guard.flusher);
            let kept = &flusher.cache.files.kept.as_ref().unwrap().0;
            assert_eq!(kept.pending.len(), pending);
            let mut fresh = Tally::new(&flusher.policy);
            fresh.extend(&flusher.policy, &kept.pending);
            assert_eq!(flusher.cache.tally.as_ref(), Some(&fresh));
        };
        for flush in 0..3 {
            for i in 0..3 {
                let mut r = record(&format!("#{flush}.{i}"));
                r.level = [Level::INFO, Level::WARN, Level::ERROR][i];
                r.fields
                    .push("feed".into(), format!("feed {}", (flush + i) % 2).into());
                guard.shared.buffer.push(r);
            }
            assert!(matches!(guard.flush(), Outcome::Held { .. }));
            check(3 * (flush + 1));
        }
        for i in 0..4 {
            let mut r = record(&format!("last {i}"));
            r.fields.push("feed".into(), "feed 2".into());
            guard.shared.buffer.push(r);
        }
        // 6 warnings or errors held, 4 of "feed 2" and 2 more make 12.
        for _ in 0..2 {
            guard.shared.buffer.push(record("more"));
        }
        assert!(matches!(guard.flush(), Outcome::Sent { records: 15, .. }));
        // Records left: the tally is made anew by the next flush.
        assert!(lock(&guard.flusher).cache.tally.is_none());
        guard.shared.buffer.push(record("after"));
        assert!(matches!(guard.flush(), Outcome::Held { .. }));
        check(1);
    }

    /// A guard whose policy sends at every flush, into `dir`.
    fn guard(dir: &std::path::Path) -> crate::FlushGuard {
        let (_layer, guard) = crate::EmailLayer::builder("flush-test")
            .transport(crate::FileDrop::new(dir.join("outbox")))
            .state_file(dir.join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(1, Level::WARN)
            .checkpoint_interval(None)
            .build()
            .unwrap();
        guard
    }

    fn pending_in(dir: &std::path::Path) -> usize {
        crate::StateFile::open(dir.join("state.json"))
            .snapshot()
            .unwrap()
            .pending
            .len()
    }

    #[test]
    fn a_panic_inside_a_flush_is_an_outcome_and_loses_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let guard = guard(dir.path());
        // A record already on disk, held by an earlier failed send.
        guard.shared.buffer.push(record("on disk"));
        std::fs::write(dir.path().join("outbox"), "a file: sending fails").unwrap();
        assert!(guard.flush().is_failed());
        assert_eq!(pending_in(dir.path()), 1);
        std::fs::remove_file(dir.path().join("outbox")).unwrap();

        guard.shared.buffer.push(record("first"));
        guard.shared.buffer.push(record("second"));
        PANIC.with(|p| p.set(true));
        let outcome = guard.flush();
        PANIC.with(|p| p.set(false));
        match &outcome {
            Outcome::Failed { error, pending: 2 } => {
                assert_eq!(error.kind(), ErrorKind::Panic);
                assert!(
                    error
                        .to_string()
                        .starts_with("the flush panicked: injected for a test; this run's 2"),
                    "{error}"
                );
            }
            other => panic!("{other}"),
        }
        // Back in memory, not on disk; the lock is not poisoned.
        assert_eq!(guard.shared.buffer.len(), 2);
        assert_eq!(pending_in(dir.path()), 1);
        assert!(!guard.flusher.is_poisoned());

        // The next flush stores and sends each record once.
        let outcome = guard.flush();
        assert!(
            matches!(
                outcome,
                Outcome::Sent {
                    records: 3,
                    emails: 1
                }
            ),
            "{outcome}"
        );
        assert_eq!(pending_in(dir.path()), 0);
        let outbox: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .collect();
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn a_guard_whose_flush_panics_drops_without_panicking() {
        let stderr = crate::tests::stderr_of_own_process(
            "flush::flusher::tests::a_guard_whose_flush_panics_drops_without_panicking",
            || {
                let dir = tempfile::tempdir().unwrap();
                let guard = guard(dir.path());
                guard.shared.buffer.push(record("first"));
                let shared = Arc::clone(&guard.shared);
                PANIC.with(|p| p.set(true));
                drop(guard);
                PANIC.with(|p| p.set(false));
                // The last resort took them: none is left unreported.
                assert_eq!(shared.buffer.len(), 0);
                assert!(!dir.path().join("state.json").exists());
            },
        );
        // To stderr, after saying why, as JSON lines that read back (the
        // injected panic's own message aside).
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("tracing-email: "))
            .collect();
        assert_eq!(said.len(), 2, "{stderr}");
        assert!(
            said[0].contains("the flush panicked: injected for a test"),
            "{stderr}"
        );
        let records: Vec<Record> = stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{stderr}");
        assert_eq!(records[0].message, "first");
    }

    #[test]
    fn a_flush_computes_each_records_fingerprint_once() {
        let dir = tempfile::tempdir().unwrap();
        // Every use of the fingerprint at once: streaks observed, quiet
        // failures (`repeat_after`) in the decision, the digest's summary,
        // and what was reported.
        let (_layer, guard) = crate::EmailLayer::builder("flush-test")
            .transport(crate::FileDrop::new(dir.path().join("outbox")))
            .state_file(dir.path().join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(5, Level::WARN)
            .fingerprint_fields(["feed"])
            .repeat_after(Duration::from_secs(3600))
            .checkpoint_interval(None)
            .build()
            .unwrap();
        for i in 0..5 {
            let mut r = record("feed failed");
            r.fields.push("feed".into(), i.into());
            guard.shared.buffer.push(r);
        }
        crate::store::history::COMPUTED.with(|n| n.set(0));
        assert!(matches!(
            guard.flush(),
            Outcome::Sent {
                records: 5,
                emails: 1
            }
        ));
        assert_eq!(crate::store::history::COMPUTED.with(Cell::get), 5);
    }

    #[test]
    fn ranges_cover_everything_in_order() {
        assert_eq!(ranges(25, 10).collect::<Vec<_>>(), [0..10, 10..20, 20..25]);
        assert_eq!(ranges(3, 3).collect::<Vec<_>>(), vec![0..3]);
        assert_eq!(ranges(0, 3).count(), 0);
    }

    #[test]
    fn big_digests_are_split_into_parts_within_the_size() {
        let composer = crate::digest::compose::tests::composer();
        let records: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = record_at(Level::WARN);
                r.message = format!("{i:0>100}");
                r
            })
            .collect();
        let ranges = |max_bytes| -> Vec<Range<usize>> {
            split_by_size(&records, max_bytes, &composer)
                .into_iter()
                .map(|(range, _)| range)
                .collect()
        };
        let one = composer.render(&records[0]).bytes();
        assert_eq!(ranges(one * 3), [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(ranges(usize::MAX), vec![0..10]);
        // A record larger than the limit still goes, alone.
        assert_eq!(
            ranges(1),
            [0..1, 1..2, 2..3, 3..4, 4..5, 5..6, 6..7, 7..8, 8..9, 9..10]
        );
        // Each part comes with its shown records rendered: the newest
        // `detail_lines`.
        let composer = Composer {
            detail_lines: 2,
            ..composer
        };
        let parts = split_by_size(&records, one * 3, &composer);
        let texts: Vec<Vec<String>> = parts
            .iter()
            .map(|(_, shown)| shown.iter().map(|r| format!("{r:?}")).collect())
            .collect();
        let expected: Vec<Vec<String>> = [1..3, 4..6, 7..9, 9..10]
            .into_iter()
            .map(|shown| {
                records[shown]
                    .iter()
                    .map(|r| format!("{:?}", composer.render(r)))
                    .collect()
            })
            .collect();
        assert_eq!(texts, expected);
    }
}
