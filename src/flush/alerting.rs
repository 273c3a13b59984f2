//! Dispatch to Alertmanager: posts a flush's alerts and saves what that
//! changed; alone, it takes the records an email would.

use std::collections::BTreeSet;
use std::time::Instant;

use time::OffsetDateTime;

use crate::error::Error;
use crate::flush::flusher::Flusher;
use crate::flush::outcome::Outcome;
use crate::flush::taken::Commit;
use crate::policy::Decision;
use crate::store::file::StateLock;
use crate::store::history::fingerprint_of;
use crate::store::state::State;

impl Flusher {
    /// Posts this flush's alerts (see [`crate::alerts::Poster::flush`]) and
    /// saves what changed. With Alertmanager as the only destination, the
    /// records of the failures it accepted leave the state file, and so do
    /// the records the policy sends (`decision`), as an email would take
    /// them: its outcome is the flush's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn post_alerts(
        &mut self,
        state_lock: &StateLock,
        state: &mut State,
        worth: &BTreeSet<String>,
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
}
