//! Dispatch to Alertmanager: posts a flush's alerts and saves what that
//! changed; alone, it takes the records an email would.

use std::collections::BTreeSet;
use std::time::Instant;

use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::error::Error;
use crate::flush::destination::Posting;
use crate::flush::flusher::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::taken::Commit;
use crate::policy::Decision;
use crate::store::file::StateLock;
use crate::store::state::State;

impl Flusher {
    /// With Alertmanager the only destination, the records of the failures it
    /// accepted leave, and so do those the policy sends, as an email would take them.
    pub(super) fn post_alerts(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        (worth, decision): (&BTreeSet<String>, &Decision),
        (run, now, deadline): (u64, OffsetDateTime, Instant),
        commit: &mut Commit,
    ) -> Result<Outcome, Error> {
        let Some(poster) = &self.alerts else {
            return Ok(Outcome::Nothing);
        };
        // Alone, Alertmanager reports what an email would: every failure
        // among the records the policy sends.
        let send = match (&self.transport, decision) {
            (None, Decision::Send { records, .. }) => *records,
            _ => 0,
        };
        let sent: Vec<String> = state.pending[..send]
            .iter()
            .filter_map(|r| self.policy.failure_of(r))
            .map(|fp| fp.key.clone())
            .collect();
        let worth: BTreeSet<String> = worth.iter().chain(&sent).cloned().collect();
        let posted = poster.post(state, &worth, (run, now, deadline), &self.policy);
        self.alerts_due = (!state.alerts.is_empty()).then(|| {
            let part = if posted.is_ok() { 3 } else { 9 };
            Instant::now() + poster.window(state) / part
        });
        let removed = match &posted {
            Ok(posting) if self.transport.is_none() => {
                self.take_accepted(state, (send, &sent), &posting.firing, now)
            }
            _ => 0,
        };
        // A post, accepted or not, changed the alerts kept and noted its
        // answer: saved with them. Nothing to post is the empty Posting.
        let posted_nothing = matches!(&posted, Ok(p) if *p == Posting::default());
        if !posted_nothing || removed > 0 {
            commit.save(&self.store, state_lock, state)?;
        }
        let posting = posted?;
        let alerted = Outcome::Alerted {
            records: removed,
            firing: posting.firing.len(),
            resolved: posting.resolved,
        };
        // Alone, it says what went; else the email's outcome is the flush's.
        if self.transport.is_none() && (removed > 0 || !posted_nothing) {
            return Ok(alerted);
        }
        let pending = state.pending.len();
        Ok(Outcome::unless_sent(decision.clone(), pending, alerted))
    }

    /// The first `send` records, and those at the policy's level whose failure is
    /// `firing`. Returns how many left.
    fn take_accepted(
        &mut self,
        state: &mut State,
        (send, sent): (usize, &[String]),
        firing: &BTreeSet<String>,
        now: OffsetDateTime,
    ) -> usize {
        state.history.reported(sent.iter().map(String::as_str), now);
        let before = state.pending.len();
        state.pending.drain(..send);
        // After the first `send`: the records of a failure not firing, or below the level.
        let kept = |r: &Record| {
            self.policy
                .failure_of(r)
                .is_none_or(|fp| !firing.contains(&fp.key))
        };
        state.pending.retain(kept);
        let removed = before - state.pending.len();
        if removed > 0 {
            // The kept tally counted the records that left.
            self.cache.tally = None;
        }
        if send > 0 {
            state.dropped = 0;
        }
        removed
    }
}
