//! The Alertmanager destination as a flush sees it: one small trait,
//! [`Alerts`], which `crate::alerts::Poster` implements, and what a post
//! was accepted for ([`Posting`]). A build without Alertmanager has none.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::error::Error;
use crate::policy::Policy;
use crate::store::state::State;

/// Where a flush posts its alerts (Alertmanager, `crate::alerts::Poster`):
/// the one small face the flush knows of it.
pub(crate) trait Alerts: std::any::Any + Send {
    /// How long a firing alert lasts unless posted again.
    fn window(&self, state: &State) -> Duration;

    /// Posts the failures `worth` reporting, and those firing that `run`
    /// saw again, as firing, and those over as resolved (the failures
    /// fingerprinted as `policy` says); notes in `state` what was accepted.
    fn post(
        &self,
        state: &mut State,
        worth: &BTreeSet<String>,
        at: (u64, OffsetDateTime, Instant),
        policy: &Policy,
    ) -> Result<Posting, Error>;
}

/// What one flush posted and Alertmanager accepted; the default when there
/// was nothing to post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Posting {
    /// Fingerprint keys of the firing alerts accepted.
    pub(crate) firing: BTreeSet<String>,
    /// Resolved alerts accepted.
    pub(crate) resolved: usize,
}
