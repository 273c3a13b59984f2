//! Ingest, the first step of a flush: the state file is loaded under its
//! lock, this run's records are merged into it, the run is registered, each
//! record observed in the history, the oldest trimmed at `max_pending` and
//! times from a clock that was ahead clamped; then saved ([`Commit`]) or,
//! when the file stayed locked, parked beside it.

use time::OffsetDateTime;

use crate::error::{Error, ErrorKind};
use crate::flush::flusher::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::taken::{Commit, Taken};
use crate::policy::{Phase, Tally};
use crate::store::file::StateLock;
use crate::store::state::State;

impl Flusher {
    /// Returns this run's number and the policy's tally of the records kept in
    /// memory, while it still holds. On failure the records are given back.
    pub(super) fn ingest(
        &mut self,
        lock: &StateLock,
        taken: &mut Taken<'_>,
        phase: Phase,
        now: Option<OffsetDateTime>,
        commit: &mut Commit,
    ) -> Result<(u64, Option<Tally>), Outcome> {
        let cached = self.cache.files.take();
        let clamped_at = self.cache.clamped_at.take();
        let tally = self.cache.tally.take();
        let loaded = self.store.load(lock, cached);
        let loaded = loaded.map_err(|error| taken.give_back(error))?;
        commit.stamp = Some(loaded.stamp);
        taken.merge_into(loaded.state);
        commit.changed = loaded.repair || !loaded.parked.is_empty();
        commit.rewrite = commit.changed;
        commit.parked = loaded.parked;
        let run = self.add_run(taken, phase, now, commit);
        let tally = now.and_then(|now| {
            let kept = (loaded.kept, clamped_at, tally);
            self.clamp(&mut taken.state, kept, now, commit)
        });
        Ok((run, tally))
    }

    fn add_run(
        &mut self,
        taken: &mut Taken<'_>,
        phase: Phase,
        now: Option<OffsetDateTime>,
        commit: &mut Commit,
    ) -> u64 {
        let (count, dropped) = (taken.count, taken.dropped);
        let runs_before = taken.state.history.runs;
        // The panic hook's checkpoint reads the system clock, not the
        // layer's: a run it registers has no start time.
        let started = now.filter(|_| phase != Phase::Checkpoint);
        let (run, new_run) = self.register_run(&mut taken.state, started);
        commit.changed |= count > 0 || dropped > 0 || new_run;
        commit.run = new_run.then_some((run, started));
        commit.dropped = dropped;
        // A renumbered history (see `History::start_run_at`) is not a plain
        // next run: only a rewrite says it.
        commit.rewrite |= new_run && runs_before.checked_add(1) != Some(run);
        let old_len = taken.state.pending.len() - count;
        self.observe(&mut taken.state, old_len, run);
        let excess = self.trim(&mut taken.state, dropped);
        // Stored even without new records (a lower `max_pending`): the
        // state kept in memory must be the one on disk.
        commit.changed |= excess > 0;
        commit.changed |= self.end_run(&mut taken.state, phase, run, commit);
        trimmed(taken, commit, excess, old_len);
        run
    }

    fn observe(&self, state: &mut State, old_len: usize, run: u64) {
        crate::store::history::check_fingerprint_fields(
            &state.pending[old_len..],
            &self.policy.fingerprint_fields,
            self.policy.level(),
            &state.history,
        );
        for record in &mut state.pending[old_len..] {
            record.run = Some(run);
            if let Some(fp) = self.policy.failure_of(record) {
                state
                    .history
                    .observe(run, &fp, record.level, record.timestamp);
            }
        }
    }

    fn trim(&self, state: &mut State, dropped: u64) -> usize {
        let excess = state.pending.len().saturating_sub(self.max_pending);
        state.pending.drain(..excess);
        state.dropped = state
            .dropped
            .saturating_add(dropped)
            .saturating_add(excess as u64);
        excess
    }

    /// Reported failures this run did not see are over. Written by a rewrite (the
    /// journal holds runs, records, drops and trims only).
    fn end_run(&self, state: &mut State, phase: Phase, run: u64, commit: &mut Commit) -> bool {
        let ended = if self.notify_recovery {
            // Reported as persisting: at `consecutive_runs`, else at two
            // runs in a row.
            let persisting = self.policy.consecutive_runs.unwrap_or(2);
            phase == Phase::Flush && state.history.end_run(run, persisting)
        } else {
            !std::mem::take(&mut state.history.resolved).is_empty()
        };
        commit.rewrite |= ended;
        ended
    }

    /// A clock that was ahead. The tally in `kept` is returned only if its records
    /// are all still here, in their place, with their times.
    fn clamp(
        &self,
        state: &mut State,
        (kept, clamped_at, tally): (usize, Option<OffsetDateTime>, Option<Tally>),
        now: OffsetDateTime,
        commit: &mut Commit,
    ) -> Option<Tally> {
        let excess = commit.trim.map_or(0, |(_, excess)| excess as usize);
        // Records kept in memory were clamped at an earlier now: if the
        // clock has not gone back since, only the others need a look.
        let clamped = match clamped_at {
            Some(at) if at <= now => kept.saturating_sub(excess),
            _ => 0,
        };
        let moved = self.store.clamp_future_from(state, now, clamped);
        commit.changed |= moved;
        commit.rewrite |= moved;
        commit.clamped_at = Some(now);
        tally.filter(|t| t.len() <= kept && excess == 0 && !(moved && clamped < t.len()))
    }

    /// Taken at the first flush (again if it could not save); also whether it is new.
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

    /// On failure gives the records back to the buffer. Appends to the journal,
    /// or rewrites when records left (see
    /// [`StateStore::commit`](crate::store::file::StateStore::commit)).
    pub(super) fn save_or_give_back(
        &self,
        state_lock: &StateLock,
        taken: &mut Taken<'_>,
        commit: &mut Commit,
    ) -> Result<(), Outcome> {
        if !commit.changed {
            return Ok(());
        }
        let state = &taken.state;
        let written = match commit.stamp {
            Some(stamp) => {
                let append = crate::store::journal::Append {
                    run: commit.run,
                    level: self.policy.level(),
                    fields: &self.policy.fingerprint_fields,
                    records: taken.records(),
                    dropped: commit.dropped,
                    trim: commit.trim,
                };
                self.store
                    .commit(state_lock, state, stamp, &append, commit.rewrite)
            }
            None => self.store.save(state_lock, state),
        };
        match commit.noted(&mut taken.state, written) {
            Ok(()) => {
                taken.stored();
                self.store.remove_parked(&commit.parked);
                Ok(())
            }
            Err(error) => Err(taken.give_back(error)),
        }
    }

    pub(super) fn park(&self, mut taken: Taken<'_>, busy: Error) -> Outcome {
        let count = taken.count;
        let Ok(path) = self.store.park(taken.records(), taken.dropped) else {
            return taken.give_back(busy);
        };
        taken.stored();
        let error = format!(
            "{busy}; this run's {count} records were saved to {} and the next flush merges them",
            path.display()
        );
        let error = Error::new(ErrorKind::Busy, error);
        Outcome::Failed {
            error,
            pending: count,
        }
    }
}

/// Of the `excess` oldest, those at `old_len` or after.
fn trimmed(taken: &mut Taken<'_>, commit: &mut Commit, excess: usize, old_len: usize) {
    let (count, dropped) = (taken.count, taken.dropped);
    let trimmed_new = excess.saturating_sub(old_len).min(count);
    taken.count = count - trimmed_new;
    taken.dropped = dropped.saturating_add(trimmed_new as u64);
    // The oldest records leave by a trim line (of those that were stored:
    // this run's trimmed ones are never written), so a state that stays at
    // `max_pending` appends only what is new.
    commit.trim = (excess > 0).then(|| ((excess - trimmed_new) as u64, excess as u64));
}
