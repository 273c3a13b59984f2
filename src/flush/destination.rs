//! The Alertmanager destination as a flush sees it: one small trait,
//! [`Alerts`], which `crate::alerts::Poster` implements, and what a post
//! was accepted for ([`Posting`]). A build without Alertmanager has none.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::error::Error;
use crate::policy::Policy;
use crate::store::state::State;

/// The one small face the flush knows of Alertmanager (`crate::alerts::Poster`).
pub(crate) trait Alerts: std::any::Any + Send {
    fn window(&self, state: &State) -> Duration;

    /// Also those firing that `run` saw again, as firing, and those over as
    /// resolved; notes in `state` what was accepted.
    fn post(
        &self,
        state: &mut State,
        worth: &BTreeSet<String>,
        at: (u64, OffsetDateTime, Instant),
        policy: &Policy,
    ) -> Result<Posting, Error>;
}

/// The default when there was nothing to post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Posting {
    pub(crate) firing: BTreeSet<String>,
    pub(crate) resolved: usize,
}
