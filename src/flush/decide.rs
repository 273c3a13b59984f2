//! Decide, the second step of a flush, pure (it reads the state and
//! changes nothing): what the policy says of the state (send, hold, wait),
//! whether a recovery notice goes and with what, and which failures are
//! posted to Alertmanager: a [`Plan`] for dispatch.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::flush::flusher::Flusher;
use crate::policy::{Decision, Facts, Phase, Recovery, Tally};
use crate::store::state::State;

pub(super) struct Plan {
    pub(super) decision: Decision,
    pub(super) recovery: Recovery,
    pub(super) alerts: Option<BTreeSet<String>>,
}

impl Flusher {
    /// `tally`, kept from the last flush, covers the first records: only those after
    /// it are added; returned for the next.
    pub(super) fn decide(
        &self,
        state: &State,
        tally: Option<Tally>,
        phase: Phase,
        now: OffsetDateTime,
        run: u64,
    ) -> (Plan, Tally) {
        let mut tally = tally.unwrap_or_default();
        tally.extend(&self.policy, &state.pending[tally.len()..]);
        let facts = Facts {
            now,
            last_sent: state.last_sent,
            history: &state.history,
            run,
        };
        let decision = self.policy.decide_tally(&tally, phase, &facts);
        // Recovery notices go by email: none without a transport.
        let recovery = match self.transport {
            Some(_) => self
                .policy
                .recovery(self.notify_recovery, phase, &decision, &facts),
            None => Recovery::Nothing,
        };
        let alerts = self.alerts_worth(state, &tally, phase, &facts);
        let plan = Plan {
            decision,
            recovery,
            alerts,
        };
        (plan, tally)
    }

    /// At the flush that ends a run, those the policy would report (and
    /// [`Alerts::post`](crate::flush::destination::Alerts::post) adds those firing the
    /// run saw again); at another, the firing ones when due again (see
    /// [`alerts_due`](Flusher::alerts_due)).
    fn alerts_worth(
        &self,
        state: &State,
        tally: &Tally,
        phase: Phase,
        facts: &Facts<'_>,
    ) -> Option<BTreeSet<String>> {
        self.alerts.as_ref()?;
        match phase {
            Phase::Flush => Some(self.policy.worth_reporting(tally, facts)),
            Phase::Run if self.alerts_due_now() => Some(
                (state.alerts.iter())
                    .filter(|(_, p)| p.resolved.is_none())
                    .map(|(key, _)| key.clone())
                    .collect(),
            ),
            Phase::Run | Phase::Checkpoint => None,
        }
    }
}
