//! Dispatch, the last step of a flush: carries out a [`Plan`] once the
//! state is stored. Each destination has its own function: the email digest
//! ([`Flusher::send`], split by [`split_by_size`]), the recovery notice
//! ([`Flusher::send_recovery`]) and Alertmanager (`post_alerts`); each saves
//! what it changed, and their outcomes make the flush's.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::digest::Composer;
use crate::error::{Error, ErrorKind, display_safely};
use crate::flush::deadline::send_before;
use crate::flush::decide::Plan;
use crate::flush::flusher::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::taken::Commit;
use crate::policy::{Decision, Phase, Recovery};
use crate::store::file::StateLock;
use crate::store::state::State;
use crate::transport::{BoxError, Email, Transport};

/// How a digest or notice goes, for [`send_before`].
const SEND: fn(&dyn Transport, &Email) -> Result<(), BoxError> = <dyn Transport>::send;

impl Flusher {
    /// Posts the alerts, then the digest or recovery notice, within one send
    /// deadline. Alertmanager's failure fails the flush whatever the email did (said
    /// in the error), and the alerts are posted again.
    pub(super) fn dispatch(
        &mut self,
        lock: &StateLock,
        state: &mut State,
        plan: Plan,
        phase: Phase,
        (run, now): (u64, OffsetDateTime),
        commit: &mut Commit,
    ) -> Outcome {
        let deadline = crate::clock::instant_after(self.send_deadline);
        let alerted = plan.alerts.as_ref().map(|worth| {
            let at = (run, now, deadline);
            self.post_alerts(lock, state, (worth, &plan.decision), at, commit)
        });
        let pending = state.pending.len();
        let alerted = match alerted {
            // Alertmanager is the only destination: its outcome is the flush's.
            Some(result) if self.transport.is_none() => {
                return result.unwrap_or_else(|error| Outcome::Failed { error, pending });
            }
            Some(result) => result.err(),
            None => None,
        };
        let outcome = self.email(lock, state, plan, phase, (now, deadline), commit);
        with_alerts_error(alerted, outcome, state.pending.len())
    }

    fn email(
        &mut self,
        lock: &StateLock,
        state: &mut State,
        Plan {
            decision, recovery, ..
        }: Plan,
        phase: Phase,
        at: (OffsetDateTime, Instant),
        commit: &mut Commit,
    ) -> Outcome {
        let pending = state.pending.len();
        match (decision, recovery) {
            (decision, Recovery::Alone) => {
                let held = match decision {
                    Decision::Hold { waiting_for } => Some(waiting_for),
                    _ => None,
                };
                self.send_recovery(lock, state, at, held, commit)
            }
            (Decision::Nothing, Recovery::Wait { until }) => Outcome::Waiting { pending, until },
            (Decision::Send { records }, recovery) => {
                let with_resolved = recovery == Recovery::WithDigest;
                let count = (records, self.policy.batch);
                let outcome = self.send(lock, state, count, with_resolved, at, commit);
                if phase == Phase::Run {
                    self.count_sent(&outcome);
                }
                outcome
            }
            (decision, _) => Outcome::unless_sent(decision, pending, Outcome::Nothing),
        }
    }

    pub(super) fn count_sent(&mut self, outcome: &Outcome) {
        if let Outcome::Sent { records, emails } = outcome {
            self.sent_during_run.0 += records;
            self.sent_during_run.1 += emails;
        }
    }

    /// Once accepted the failures are forgotten; else they wait for the next flush.
    fn send_recovery(
        &mut self,
        lock: &StateLock,
        state: &mut State,
        (now, deadline): (OffsetDateTime, Instant),
        waiting_for: Option<crate::policy::WaitingFor>,
        commit: &mut Commit,
    ) -> Outcome {
        let failures = state.history.resolved.len();
        let Some(transport) = &self.transport else {
            return Outcome::Nothing;
        };
        let email = self.composer.compose_recovery(&state.history.resolved);
        let send = |email| send_before(transport, &self.outstanding, email, deadline, SEND);
        let sent = email.and_then(send);
        let failed = sent.is_err();
        if !failed {
            state.history.resolved.clear();
            state.last_sent = Some(now);
        }
        let done = Outcome::Resolved {
            failures,
            pending: state.pending.len(),
            waiting_for,
        };
        let what = ("the notice that failures are over", 0);
        match self.settle(lock, state, commit, (now, sent.err()), what, done) {
            // The error as stored stays the send's own.
            Outcome::Failed { error, pending } if failed => Outcome::Failed {
                error: error.context(|e| {
                    format!("{e}; the notice that failures are over is sent by the next flush")
                }),
                pending,
            },
            outcome => outcome,
        }
    }

    /// `done` when both went well; else the send's error, or the save's, which says
    /// that `sent` went out.
    pub(super) fn settle(
        &self,
        lock: &StateLock,
        state: &mut State,
        commit: &mut Commit,
        (now, error): (OffsetDateTime, Option<Error>),
        (what, sent): (&str, usize),
        done: Outcome,
    ) -> Outcome {
        // The error may hold the transport's own, whose Display is user code.
        state.last_error = error.as_ref().map(display_safely);
        state.last_error_at = error.as_ref().map(|_| now);
        let saved = commit.save(&self.store, lock, state);
        let pending = state.pending.len();
        match (error, saved) {
            (Some(error), _) => Outcome::Failed { error, pending },
            (None, Ok(())) => done,
            (None, Err(e)) => Outcome::Failed {
                pending: pending + sent,
                error: Error::explained(
                    ErrorKind::State,
                    format!(
                        "sent {what}, but could not record that in the state file ({e}), so a \
                         later run may send the same again"
                    ),
                    e,
                ),
            },
        }
    }

    /// Emails of `per_email` records, split to stay within `max_email_bytes`;
    /// stops at the first failure. Changes nothing: returns what was accepted
    /// (always the oldest) and the error. Without a transport, sends nothing.
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
        let send = |email| send_before(transport, &self.outstanding, email, deadline, SEND);
        let (mut sent, mut emails) = (0, 0);
        let late = state.last_error.as_deref();
        let late = late.map(|error| (error, state.last_error_at));
        for batch in ranges(count, per_email.unwrap_or(count)) {
            let pending = &state.pending[batch];
            let parts = split_by_size(pending, self.max_email_bytes, &self.composer);
            let total = parts.len();
            for (i, (part, shown)) in parts.into_iter().enumerate() {
                let records = &pending[part];
                let numbered = (total > 1).then_some((i + 1, total));
                // The first email reports the dropped records, and with_resolved, what is over.
                let first = emails == 0;
                let dropped = if first { state.dropped } else { 0 };
                let resolved = match with_resolved && first {
                    true => &state.history.resolved[..],
                    false => &[],
                };
                let history = &state.history;
                let email = self
                    .composer
                    .compose_with(records, &shown, dropped, numbered, history, resolved, late);
                if let Err(e) = email.and_then(send) {
                    return (sent, emails, Some(e));
                }
                (sent, emails) = (sent + records.len(), emails + 1);
            }
        }
        (sent, emails, None)
    }

    /// `with_resolved`: the first email says the `resolved` failures are over, and
    /// they are forgotten once accepted. `deadline` is shared with the alerts.
    fn send(
        &mut self,
        lock: &StateLock,
        state: &mut State,
        count: (usize, Option<usize>),
        with_resolved: bool,
        (now, deadline): (OffsetDateTime, Instant),
        commit: &mut Commit,
    ) -> Outcome {
        let (sent, emails, error) = self.deliver(state, count, with_resolved, deadline);
        if sent > 0 {
            if with_resolved {
                state.history.resolved.clear();
            }
            for record in &state.pending[..sent] {
                if let Some(fp) = self.policy.failure_of(record) {
                    state.history.reported([fp.key.as_str()], now);
                }
            }
            self.took(state, sent, now);
        }
        let done = Outcome::Sent {
            records: sent,
            emails,
        };
        let what = crate::say::plural(sent, "record", "records");
        self.settle(lock, state, commit, (now, error), (&what, sent), done)
    }

    pub(super) fn took(&mut self, state: &mut State, sent: usize, now: OffsetDateTime) {
        state.pending.drain(..sent);
        // The kept tally counted the records that left.
        self.cache.tally = None;
        state.last_sent = Some(now);
        state.dropped = 0;
    }
}

fn with_alerts_error(alerted: Option<Error>, outcome: Outcome, pending: usize) -> Outcome {
    let Some(error) = alerted else {
        return outcome;
    };
    let error = match outcome {
        Outcome::Failed {
            error: first,
            pending,
        } => {
            return Outcome::Failed {
                error: first.context(|e| format!("{e}; and {error}")),
                pending,
            };
        }
        Outcome::Sent { .. } => error.context(|e| format!("{e} (the digest went out: {outcome})")),
        _ => error,
    };
    Outcome::Failed { error, pending }
}

fn ranges(count: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = size.max(1);
    (0..count.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(count))
}

/// A record larger than `max_bytes` goes alone. Each is rendered once; only a
/// part's newest `detail_lines` stay rendered, for [`Composer::compose_with`].
fn split_by_size(
    records: &[Record],
    max_bytes: usize,
    composer: &Composer,
) -> Vec<(Range<usize>, Vec<String>)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    let mut shown = VecDeque::new();
    for (i, record) in records.iter().enumerate() {
        let rendered = composer.render(record);
        let bytes = composer.bytes(&rendered);
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
    use tracing::Level;

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
        let one = composer.bytes(&composer.render(&records[0]));
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
