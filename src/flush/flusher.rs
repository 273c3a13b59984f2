//! One flush, the orchestration of its steps: lock the state file, ingest
//! this process's new records (`ingest`), decide (`decide`), dispatch
//! (`dispatch`), keep what was not sent, unlock. The records it takes stay owned
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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;

use crate::capture::buffer::Buffer;
use crate::capture::layer::SendingScope;
use crate::clock::Clock;
use crate::digest::Composer;
use crate::error::{Error, ErrorKind, panicked};
use crate::flush::deadline::Outstanding;
use crate::flush::outcome::Outcome;
use crate::flush::taken::{Commit, Taken};
use crate::policy::{Phase, Policy, Tally};
use crate::store::file::{StateLock, StateStore};
use crate::store::kept::Stamp;
use crate::store::state::State;
use crate::transport::Transport;

pub(crate) struct Flusher {
    pub(crate) store: StateStore,
    pub(crate) policy: Policy,
    pub(crate) composer: Composer,
    /// `None` when Alertmanager is the only destination.
    pub(crate) transport: Option<Arc<dyn Transport>>,
    pub(crate) alerts: Option<Box<dyn crate::flush::destination::Alerts>>,
    pub(crate) max_pending: usize,
    /// Of the records' text lines per email (see `Composer::render`); larger splits.
    pub(crate) max_email_bytes: usize,
    pub(crate) send_deadline: Duration,
    /// Since the guard last reported an outcome.
    pub(crate) sent_during_run: (usize, usize),
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) run: Option<u64>,
    /// As last read or written: the next flush reads only what others appended since.
    pub(crate) cache: Kept,
    pub(crate) notify_recovery: bool,
    pub(crate) outstanding: Outstanding,
    /// Re-post before Alertmanager resolves them at `endsAt`: a third of the
    /// window after the last post (a ninth after a failure).
    pub(crate) alerts_due: Option<Instant>,
    /// Firing alerts found in the state file were posted before this.
    pub(crate) started: Instant,
}

#[derive(Default)]
pub(crate) struct Kept {
    /// The state as last read or written, with the stamp of its files.
    pub(crate) files: Option<(State, Stamp)>,
    /// None of its records lies after it (see [`State::clamp_future_from`]).
    pub(crate) clamped_at: Option<OffsetDateTime>,
    /// Of the first [`Tally::len`] pending records: a later flush adds only the new ones.
    pub(crate) tally: Option<Tally>,
}

impl Flusher {
    /// By then the records it took are stored or back in `buffer`.
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

    /// `flush_every`'s period; what it sent counts in the guard's next `flush()` outcome.
    pub(crate) fn end_period(&mut self, buffer: &Buffer) -> Outcome {
        let outcome = self.flush_caught(buffer, Phase::Flush);
        self.run = None;
        self.count_sent(&outcome);
        outcome
    }

    /// If no flush of this process has yet. Creates nothing.
    pub(crate) fn find_firing(&mut self) {
        if self.alerts.is_some()
            && self.alerts_due.is_none()
            && self.store.path().is_file()
            && let Ok(lock) = self.store.lock()
            && let Ok(loaded) = self.store.load(&lock, None)
        {
            self.note_firing(&loaded.state);
        }
    }

    /// Posted by an earlier process: due a third of the resolve window after start.
    pub(super) fn note_firing(&mut self, state: &State) {
        if let Some(alerts) = &self.alerts
            && self.alerts_due.is_none()
            && !state.alerts.is_empty()
        {
            self.alerts_due = Some(self.started + alerts.window(state) / 3);
        }
    }

    pub(crate) fn alerts_due_now(&self) -> bool {
        self.alerts_due.is_some_and(|due| due <= Instant::now())
    }

    /// Records taken from `buffer` are stored (or parked) when this returns, or back in
    /// `buffer`, also when a panic unwinds out ([`flush_caught`](Self::flush_caught)).
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
        let mut commit = Commit::default();
        let outcome = self.flush_locked(&state_lock, &mut taken, phase, now, &mut commit);
        // The state stays in memory for the next flush only when it is
        // exactly what is on disk.
        if let Some(stamp) = commit.stamp
            && taken.count == 0
            && taken.dropped == 0
        {
            self.cache.files = Some((std::mem::take(&mut taken.state), stamp));
            self.cache.clamped_at = commit.clamped_at;
        } else {
            self.cache.tally = None;
        }
        outcome
    }

    /// This run's records are durable before anything is sent: a crash loses nothing.
    fn flush_locked(
        &mut self,
        lock: &StateLock,
        taken: &mut Taken<'_>,
        phase: Phase,
        now: Result<OffsetDateTime, Error>,
        commit: &mut Commit,
    ) -> Outcome {
        let asked = now.as_ref().ok().copied();
        let (run, tally) = match self.ingest(lock, taken, phase, asked, commit) {
            Ok(ingested) => ingested,
            Err(failed) => return failed,
        };
        let now = match now {
            Ok(now) => now,
            // Nothing can be decided without the time; this run's records
            // are stored all the same.
            Err(error) => {
                let saved = self.save_or_give_back(lock, taken, commit);
                return saved.err().unwrap_or(Outcome::Failed {
                    error,
                    pending: taken.state.pending.len(),
                });
            }
        };
        self.note_firing(&taken.state);
        let (plan, tally) = self.decide(&taken.state, tally, phase, now, run);
        // Records leave only by a send or by alerts accepted, which make it anew.
        self.cache.tally = Some(tally);
        if let Err(failed) = self.save_or_give_back(lock, taken, commit) {
            return failed;
        }
        self.dispatch(lock, &mut taken.state, plan, phase, (run, now), commit)
    }

    /// A panic in the clock (user code) is an error. The panic hook's checkpoint does
    /// not ask it: a panic inside a panic hook aborts.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::Record;
    use crate::policy::tests::record_at;
    use crate::sync::lock;
    use std::cell::Cell;
    use tracing::Level;

    /// Alertmanager as a flush sees it, which panics when asked for its
    /// resolve window while `.0` is set: as a bug in this crate would, in
    /// the middle of a flush, once this run's records are merged into the
    /// loaded state, before anything is saved (a flush that knows of no
    /// firing alert asks for the window of those in the state file).
    struct Panicking(Arc<std::sync::atomic::AtomicBool>);

    impl crate::flush::destination::Alerts for Panicking {
        fn window(&self, _: &State) -> Duration {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                panic!("injected for a test");
            }
            Duration::from_secs(3600)
        }

        fn post(
            &self,
            _: &mut State,
            _: &std::collections::BTreeSet<String>,
            _: (u64, OffsetDateTime, Instant),
            _: &crate::policy::Policy,
        ) -> Result<crate::flush::destination::Posting, Error> {
            Ok(Default::default())
        }
    }

    /// [`guard`] into `dir`, whose state file holds a firing alert, and the
    /// switch that makes its flushes panic (see [`Panicking`]) once its
    /// `alerts_due` is `None`.
    fn panicking_guard(
        dir: &std::path::Path,
    ) -> (crate::FlushGuard, Arc<std::sync::atomic::AtomicBool>) {
        let store = StateStore::new(dir.join("state.json"), Duration::from_secs(5));
        let mut state = State::new();
        let posted = crate::store::state::FiringAlert {
            failure: "feed".into(),
            severity: "error".into(),
            since: OffsetDateTime::UNIX_EPOCH,
            runs: 1,
            resolved: None,
            labels: Default::default(),
            last_accepted: None,
            last_post: None,
        };
        state.alerts.insert("feed".into(), posted);
        store.save(&store.lock().unwrap(), &state).unwrap();
        let guard = guard(dir);
        let panics = Arc::new(std::sync::atomic::AtomicBool::new(false));
        lock(&guard.flusher).alerts = Some(Box::new(Panicking(Arc::clone(&panics))));
        (guard, panics)
    }

    /// Rewrites the snapshot from the state the last flush of `guard` kept
    /// in memory, as a flush that rewrites it instead of appending to the
    /// journal does (the journal goes), and keeps that state in memory.
    fn rewrite(guard: &crate::FlushGuard) {
        let mut flusher = lock(&guard.flusher);
        let store = flusher.store.clone();
        let kept = flusher.cache.files.as_mut();
        let (state, stamp) = kept.expect("a flush that stored its state");
        *stamp = store.save(&store.lock().unwrap(), state).unwrap();
        state.generation = stamp.generation;
    }

    fn record(message: &str) -> Record {
        let mut r = record_at(Level::WARN);
        r.message = message.to_owned();
        r
    }

    fn messages(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    /// A guard that holds (streaks of 5 runs, by feed), into `dir`.
    fn holding_guard(dir: &std::path::Path) -> crate::FlushGuard {
        holding_guard_with(dir, crate::clock::SystemClock)
    }

    /// [`holding_guard`] reading time from `clock`.
    fn holding_guard_with(
        dir: &std::path::Path,
        clock: impl crate::clock::Clock,
    ) -> crate::FlushGuard {
        holding_guard_at(dir, clock, usize::MAX)
    }

    /// [`holding_guard_with`] keeping at most `max_pending` records.
    fn holding_guard_at(
        dir: &std::path::Path,
        clock: impl crate::clock::Clock,
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
        let clock = crate::clock::ManualClock::new(
            std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        );
        for (dir, no_journal) in [(with.path(), false), (without.path(), true)] {
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
                    if no_journal {
                        rewrite(&guard);
                    }
                }
                drop(guard);
            }
        }
        let journal = std::fs::read_to_string(with.path().join("state.json.journal")).unwrap();
        assert!(journal.contains("{\"@\":\"trim\",\"count\":"), "{journal}");
        let (a, b) = (loaded(with.path()), loaded(without.path()));
        let newest: Vec<String> = (63..=72).map(|n| format!("run 2 #{n}")).collect();
        assert_eq!(messages(&a.pending), newest);
        assert_eq!(a.dropped, 72 - 10);
        assert_eq!(a, b);
    }

    /// The state `dir/state.json` loads as, its generation (which differs
    /// between two files of the same content) set to 0.
    fn loaded(dir: &std::path::Path) -> crate::store::state::State {
        let store = StateStore::new(dir.join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        let mut state = store.load(&lock, None).unwrap().state;
        state.generation = 0;
        state
    }

    /// The same runs and flushes, appended to the journal or rewriting the
    /// snapshot each time, load as the same state.
    #[test]
    fn replaying_the_journal_equals_rewriting_the_snapshot() {
        let with = tempfile::tempdir().unwrap();
        let without = tempfile::tempdir().unwrap();
        // Runs an hour and a fraction of a second apart, the same in both.
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let run_start = |run: i64| start + Duration::from_millis(3_600_250) * run as u32;
        for (dir, no_journal) in [(with.path(), false), (without.path(), true)] {
            let mut n = 0;
            let clock = crate::clock::ManualClock::new(start);
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
                    if no_journal {
                        rewrite(&guard);
                    }
                }
                drop(guard);
            }
        }
        assert!(with.path().join("state.json.journal").exists());
        assert!(!without.path().join("state.json.journal").exists());
        let (a, b) = (loaded(with.path()), loaded(without.path()));
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
            let state = &flusher.cache.files.as_ref().unwrap().0;
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
        let kept = flusher.cache.files.as_ref().unwrap().0.clone();
        drop(flusher);
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock, None).unwrap().state, kept);
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
        let kept = flusher.cache.files.as_ref().unwrap().0.clone();
        // The policy's running figures, fed only the new records at each
        // flush, are those of the whole state.
        let mut fresh = Tally::default();
        fresh.extend(&flusher.policy, &kept.pending);
        assert_eq!(flusher.cache.tally.as_ref(), Some(&fresh));
        drop(flusher);
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock, None).unwrap().state, kept);
        assert_eq!(messages(&kept.pending), ["#0", "#1", "#2", "#3", "#4"]);
    }

    /// At `max_pending`, another process's trim lines shift the kept
    /// records: the tally and the clamping of the kept view start afresh
    /// rather than take the trimmed records for still pending.
    #[test]
    fn others_trims_are_not_taken_for_kept_records() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::clock::SystemClock;
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
            let kept = &flusher.cache.files.as_ref().unwrap().0;
            let mut fresh = Tally::default();
            fresh.extend(&flusher.policy, &kept.pending);
            assert_eq!(flusher.cache.tally.as_ref(), Some(&fresh), "after #{i}");
        }
        let flusher = lock(&one.flusher);
        let kept = &flusher.cache.files.as_ref().unwrap().0;
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
            let kept = &flusher.cache.files.as_ref().unwrap().0;
            assert_eq!(kept.pending.len(), pending);
            let mut fresh = Tally::default();
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
        crate::inspect::StateFile::open(dir.join("state.json"))
            .snapshot()
            .unwrap()
            .pending
            .len()
    }

    #[test]
    fn a_panic_inside_a_flush_is_an_outcome_and_loses_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let (guard, panics) = panicking_guard(dir.path());
        // A record already on disk, held by an earlier failed send.
        guard.shared.buffer.push(record("on disk"));
        std::fs::write(dir.path().join("outbox"), "a file: sending fails").unwrap();
        assert!(guard.flush().is_failed());
        assert_eq!(pending_in(dir.path()), 1);
        std::fs::remove_file(dir.path().join("outbox")).unwrap();

        guard.shared.buffer.push(record("first"));
        guard.shared.buffer.push(record("second"));
        lock(&guard.flusher).alerts_due = None;
        panics.store(true, std::sync::atomic::Ordering::SeqCst);
        let outcome = guard.flush();
        panics.store(false, std::sync::atomic::Ordering::SeqCst);
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
                let (guard, panics) = panicking_guard(dir.path());
                guard.shared.buffer.push(record("first"));
                let shared = Arc::clone(&guard.shared);
                panics.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(guard);
                // The last resort took them: none is left unreported, and
                // none reached the state file.
                assert_eq!(shared.buffer.len(), 0);
                assert_eq!(pending_in(dir.path()), 0);
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
}
