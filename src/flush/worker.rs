//! The flushes that are not the guard's: the background worker, which
//! checkpoints new records, sends full batches, keeps firing alerts alive
//! and ends each period's run (`flush_every`), off the event path, on a
//! pure [`Schedule`]; and the guard's last flush, which the worker runs
//! itself when the guard is dropped on its thread.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::layer::{Shared, Signal};
use crate::flush::Flusher;
use crate::policy::Phase;
use crate::sync::lock;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) checkpoint: Option<Duration>,
    pub(crate) period: Option<Duration>,
    /// A second after the start, the worker looks for those an earlier process left firing.
    pub(crate) alerts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// The layer's signal: a flush of phase `Run`.
    Batch,
    Checkpoint,
    /// The flush that ends the run (phase `Flush`).
    Period,
    /// Re-post before Alertmanager's `endsAt` (phase `Run`). The first, a second
    /// after the start, looks for those an earlier process left.
    Alerts,
}

/// Pure, fed the time, so its rules are tested without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    timing: Timing,
    /// Ticks are `start + k × period`.
    start: Instant,
    checkpoint: Option<Instant>,
    period: Option<Instant>,
    alerts: Option<Instant>,
}

impl Schedule {
    pub(crate) fn new(timing: Timing, now: Instant) -> Self {
        Schedule {
            timing,
            start: now,
            checkpoint: timing.checkpoint.map(|every| now + every),
            period: timing.period.map(|every| now + every),
            alerts: timing.alerts.then_some(now + ALERTS_RETRY),
        }
    }

    /// At the same time a period goes first: its flush stores and posts too.
    pub(crate) fn next(&self) -> Option<(Instant, Job)> {
        [
            (self.period, Job::Period),
            (self.alerts, Job::Alerts),
            (self.checkpoint, Job::Checkpoint),
        ]
        .into_iter()
        .filter_map(|(at, job)| Some((at?, job)))
        .min_by_key(|(at, _)| *at)
    }

    pub(crate) fn done(&mut self, job: Job, now: Instant, alerts: Option<Instant>) {
        // Every flush stores the records: the next checkpoint is a whole
        // interval later.
        self.checkpoint = self.timing.checkpoint.map(|every| now + every);
        if job == Job::Period
            && let Some(every) = self.timing.period
        {
            self.period = Some(next_tick(self.start, every, now));
        }
        // A flush that could not post (the state file locked or gone) leaves
        // them due: tried again a second later, not in a busy loop.
        self.alerts = alerts.map(|at| at.max(now + ALERTS_RETRY));
    }
}

const ALERTS_RETRY: Duration = Duration::from_secs(1);

/// k ≥ 1: a flush that overran ticks skips them rather than run back to back.
pub(crate) fn next_tick(start: Instant, every: Duration, now: Instant) -> Instant {
    let every = every.max(Duration::from_millis(1));
    let since = now.saturating_duration_since(start);
    let ticks = since.as_nanos() / every.as_nanos() + 1;
    let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
    start + every.saturating_mul(ticks)
}

/// A panic in a flush ends that flush, not the worker. If the guard is dropped
/// on this thread (a panic hook while a flush here panics), it can neither join
/// nor flush: the worker runs the guard's last flush itself when its flush is over.
pub(crate) fn spawn_worker(
    shared: Arc<Shared>,
    flusher: Arc<Mutex<Flusher>>,
    timing: Timing,
) -> std::io::Result<JoinHandle<()>> {
    /// Even when the worker ends by a panic.
    struct Finish {
        shared: Arc<Shared>,
        flusher: Arc<Mutex<Flusher>>,
    }
    impl Drop for Finish {
        fn drop(&mut self) {
            let handed_over = lock(&self.shared.signal.state).finish.take();
            if let Some(flushed) = handed_over {
                finish(&self.shared, &self.flusher, flushed);
            }
        }
    }
    std::thread::Builder::new()
        .name("tracing-email".into())
        .spawn(move || {
            // Its drop runs the last flush handed over, even if a job panics.
            let work = Finish { shared, flusher };
            let mut schedule = Schedule::new(timing, Instant::now());
            while let Some(job) = wait_for_job(&work.shared.signal, &schedule) {
                let alerts = run_job(&work.shared, &work.flusher, job);
                schedule.done(job, Instant::now(), alerts);
            }
        })
}

fn wait_for_job(signal: &Signal, schedule: &Schedule) -> Option<Job> {
    let mut state = lock(&signal.state);
    loop {
        if state.stop {
            return None;
        }
        if state.wake {
            state.wake = false;
            return Some(Job::Batch);
        }
        let due = schedule
            .next()
            .map(|(at, job)| (at.saturating_duration_since(Instant::now()), job));
        state = match due {
            Some((left, job)) if left.is_zero() => return Some(job),
            Some((left, _)) => {
                signal
                    .cond
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => signal
                .cond
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

fn run_job(shared: &Shared, flusher: &Mutex<Flusher>, job: Job) -> Option<Instant> {
    let mut flusher = lock(flusher);
    if job == Job::Period {
        say_failed(&flusher.end_period(&shared.buffer));
    } else {
        if job == Job::Alerts {
            flusher.find_firing();
        }
        if shared.buffer.len() > 0 || flusher.alerts_due_now() {
            let _ = flusher.flush_caught(&shared.buffer, Phase::Run);
        }
    }
    flusher.alerts_due
}

/// Unless it `flushed` and no record came in since; then stderr as last resort.
pub(crate) fn finish(shared: &Shared, flusher: &Mutex<Flusher>, flushed: bool) {
    if !flushed || shared.buffer.len() > 0 {
        say_failed(&lock(flusher).flush_caught(&shared.buffer, Phase::Flush));
    }
    last_resort(&shared.buffer);
}

/// A flush no caller sees (a period's, the guard's drop).
fn say_failed(outcome: &crate::flush::outcome::Outcome) {
    if outcome.is_failed() {
        // The error may hold a transport's own, whose Display is user code.
        let line = crate::error::display_safely(outcome);
        crate::say::say!("{line}");
    }
}

pub(crate) fn last_resort(buffer: &crate::capture::buffer::Buffer) {
    let left = buffer.drain();
    if !left.is_empty() {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "tracing-email: {} could not be stored; here they are as JSON lines:",
            crate::say::plural(left.len(), "record", "records")
        );
        for record in left {
            let _ = match serde_json::to_string(&record) {
                Ok(line) => writeln!(out, "{line}"),
                Err(_) => writeln!(out, "{record:?}"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timing(checkpoint: Option<u64>, period: Option<u64>) -> Timing {
        Timing {
            checkpoint: checkpoint.map(Duration::from_secs),
            period: period.map(Duration::from_secs),
            alerts: false,
        }
    }

    #[test]
    fn nothing_timed_waits_for_the_signal_alone() {
        let t0 = Instant::now();
        assert_eq!(Schedule::new(Timing::default(), t0).next(), None);
    }

    #[test]
    fn periods_tick_from_the_start_and_checkpoints_from_the_last_flush() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(Some(1), Some(5)), t0);
        assert_eq!(s.next(), Some((t0 + S, Job::Checkpoint)));
        // A checkpoint that took 300 ms: the next one a whole interval later.
        s.done(Job::Checkpoint, t0 + S * 13 / 10, None);
        assert_eq!(s.next(), Some((t0 + S * 23 / 10, Job::Checkpoint)));
        for k in 3..5 {
            s.done(Job::Checkpoint, t0 + S * k, None);
        }
        // Due at the same time as a checkpoint, the period goes first.
        assert_eq!(s.next(), Some((t0 + 5 * S, Job::Period)));
        // A period's flush that took 400 ms: the next period still ends at
        // 10 s, not 10.4 s, so periods do not drift.
        s.done(Job::Period, t0 + S * 54 / 10, None);
        assert_eq!(s.next(), Some((t0 + S * 64 / 10, Job::Checkpoint)));
        let mut later = s;
        later.timing.checkpoint = None;
        later.checkpoint = None;
        assert_eq!(later.next(), Some((t0 + 10 * S, Job::Period)));
    }

    #[test]
    fn a_period_flush_that_overran_ticks_skips_them() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(None, Some(2)), t0);
        // The flush of the period ending at 2 s took until 7.5 s (a slow
        // mail server): the ticks at 4 and 6 s are skipped, not run back to
        // back.
        s.done(Job::Period, t0 + S * 75 / 10, None);
        assert_eq!(s.next(), Some((t0 + 8 * S, Job::Period)));
        assert_eq!(next_tick(t0, 2 * S, t0), t0 + 2 * S);
        assert_eq!(next_tick(t0, 2 * S, t0 + 2 * S), t0 + 4 * S);
        assert_eq!(next_tick(t0, 2 * S, t0 + S * 39 / 10), t0 + 4 * S);
    }

    #[test]
    fn firing_alerts_are_posted_again_when_due_even_between_periods() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(Some(1), Some(3600)), t0);
        // A flush posted an alert whose window is 30 s: due again in 10 s.
        s.done(Job::Checkpoint, t0 + S, Some(t0 + 11 * S));
        for k in 2..11 {
            assert_eq!(s.next(), Some((t0 + k * S, Job::Checkpoint)));
            s.done(Job::Checkpoint, t0 + k * S, Some(t0 + 11 * S));
        }
        assert_eq!(s.next(), Some((t0 + 11 * S, Job::Alerts)));
        // Posted again: due 10 s later; once none fires, never.
        s.done(Job::Alerts, t0 + 11 * S, Some(t0 + 21 * S));
        assert_eq!(s.alerts, Some(t0 + 21 * S));
        s.done(Job::Checkpoint, t0 + 12 * S, None);
        assert_eq!(s.next(), Some((t0 + 13 * S, Job::Checkpoint)));
        assert_eq!(s.period, Some(t0 + 3600 * S));
    }

    #[test]
    fn with_alerts_the_first_look_is_a_second_after_the_start() {
        let t0 = Instant::now();
        let alerts = Timing {
            alerts: true,
            ..timing(Some(5), None)
        };
        let mut s = Schedule::new(alerts, t0);
        assert_eq!(s.next(), Some((t0 + S, Job::Alerts)));
        // None was found firing: no more looks.
        s.done(Job::Alerts, t0 + S, None);
        assert_eq!(s.next(), Some((t0 + 6 * S, Job::Checkpoint)));
    }

    #[test]
    fn alerts_still_due_after_a_flush_are_tried_again_a_second_later() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(None, None), t0);
        // The flush could not post (the state file was locked): the alerts
        // are as due as before, or a tiny resolve window made them due at once.
        s.done(Job::Alerts, t0 + 5 * S, Some(t0 + 4 * S));
        assert_eq!(s.next(), Some((t0 + 6 * S, Job::Alerts)));
        s.done(Job::Alerts, t0 + 6 * S, Some(t0 + 6 * S + S / 100));
        assert_eq!(s.next(), Some((t0 + 7 * S, Job::Alerts)));
    }

    #[test]
    fn a_batch_flush_moves_the_checkpoint_but_not_the_period() {
        let t0 = Instant::now();
        let mut s = Schedule::new(timing(Some(1), Some(2)), t0);
        s.done(Job::Batch, t0 + S / 2, None);
        assert_eq!(s.next(), Some((t0 + S * 15 / 10, Job::Checkpoint)));
        s.done(Job::Batch, t0 + S * 19 / 10, None);
        assert_eq!(s.next(), Some((t0 + 2 * S, Job::Period)));
    }
}
