//! What a flush did: the [`Outcome`] and the one line it reads as.

use std::fmt;

use crate::error::Error;
use crate::policy::{Decision, WaitingFor};
use crate::say::plural;

/// What a flush did.
///
/// Its `Display` is one line a person understands, e.g.
/// `held 3 records for a later run: 2 of the 5 warnings or errors needed`.
///
/// | the state file holds…                                   | outcome   |
/// |----------------------------------------------------------|-----------|
/// | no record                                                | `Nothing` |
/// | records, but the policy's rules are not met              | `Held`    |
/// | records a rule sends, but `min_interval` has not passed  | `Waiting` |
/// | records the policy sends, and the server accepts         | `Sent`    |
/// | only a notice that failures are over (`notify_recovery`)  | `Resolved`|
/// | alerts Alertmanager accepted, with no email transport    | `Alerted` |
/// | records that could not be sent or stored                 | `Failed`  |
///
/// ```
/// use tracing_email::{Outcome, inspect::WaitingFor};
///
/// let waiting_for = WaitingFor::Threshold { counted: 2, needed: 5, level: tracing::Level::WARN };
/// let outcome = Outcome::Held { pending: 3, waiting_for };
/// assert_eq!(
///     outcome.to_string(),
///     "held 3 records for a later run: 2 of the 5 warnings or errors needed"
/// );
/// assert!(!outcome.is_failed());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// No record was pending: nothing to send or keep.
    Nothing,
    /// The records were saved for a later run: no rule of the policy is
    /// met, and `waiting_for` says what the rule closest to sending waits
    /// for, in its own terms (records for a threshold, runs for a streak, a
    /// time for a failure already reported).
    Held {
        /// Records now pending in the state file.
        pending: usize,
        /// What the policy waits for.
        waiting_for: WaitingFor,
    },
    /// A rule is met, but the last email went out less than `min_interval`
    /// ago: the records wait, and a flush from `until` on sends them.
    Waiting {
        /// Records now pending in the state file.
        pending: usize,
        /// When the next email may go.
        until: time::OffsetDateTime,
    },
    /// The server accepted `emails` emails holding `records` records, which
    /// are no longer pending.
    Sent {
        /// Records sent.
        records: usize,
        /// Emails sent.
        emails: usize,
    },
    /// The server accepted the email that says `failures` failures reported
    /// earlier are over (`notify_recovery`); no record went with it:
    /// `pending` records are still held, waiting for `waiting_for` when a
    /// rule holds them.
    ///
    /// ```
    /// use tracing_email::{Outcome, inspect::WaitingFor};
    ///
    /// let waiting_for = WaitingFor::Threshold { counted: 2, needed: 5, level: tracing::Level::WARN };
    /// let outcome = Outcome::Resolved { failures: 1, pending: 3, waiting_for: Some(waiting_for) };
    /// assert_eq!(
    ///     outcome.to_string(),
    ///     "sent the notice that 1 failure is over; held 3 records for a later run: \
    ///      2 of the 5 warnings or errors needed"
    /// );
    /// ```
    Resolved {
        /// Failures said to be over.
        failures: usize,
        /// Records still pending in the state file.
        pending: usize,
        /// What the policy waits for to send them, if a rule holds them.
        waiting_for: Option<WaitingFor>,
    },
    /// Alertmanager (the only destination: no email transport) accepted
    /// `firing` firing and `resolved` resolved alerts; `records` records of
    /// the failures they report, or that the policy would have sent, are no
    /// longer pending.
    Alerted {
        /// Records no longer pending.
        records: usize,
        /// Firing alerts posted.
        firing: usize,
        /// Resolved alerts posted.
        resolved: usize,
    },
    /// Sending or storing failed, or something panicked during the flush.
    /// Every record that was not accepted by the server is kept (`pending`
    /// of them) and a later flush tries again.
    Failed {
        /// What went wrong.
        error: Error,
        /// Records still pending.
        pending: usize,
    },
}

impl Outcome {
    /// Whether this is [`Outcome::Sent`].
    ///
    /// ```
    /// assert!(tracing_email::Outcome::Sent { records: 5, emails: 1 }.is_sent());
    /// ```
    pub fn is_sent(&self) -> bool {
        matches!(self, Outcome::Sent { .. })
    }

    /// Whether this is [`Outcome::Alerted`].
    ///
    /// ```
    /// let o = tracing_email::Outcome::Alerted { records: 2, firing: 1, resolved: 0 };
    /// assert!(o.is_alerted());
    /// assert_eq!(o.to_string(), "Alertmanager accepted 1 firing and 0 resolved alert; 2 records delivered");
    /// ```
    pub fn is_alerted(&self) -> bool {
        matches!(self, Outcome::Alerted { .. })
    }

    /// Whether this is [`Outcome::Failed`].
    ///
    /// ```
    /// assert!(!tracing_email::Outcome::Nothing.is_failed());
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    pub(crate) fn unless_sent(decision: Decision, pending: usize, sent: Outcome) -> Outcome {
        match decision {
            Decision::Nothing => Outcome::Nothing,
            Decision::Hold { waiting_for } => Outcome::Held {
                pending,
                waiting_for,
            },
            Decision::Wait { until } => Outcome::Waiting { pending, until },
            Decision::Send { .. } => sent,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let records = |n: &usize| plural(*n, "record", "records");
        match self {
            Outcome::Nothing => f.write_str("nothing to send: no records are pending"),
            Outcome::Held {
                pending: n,
                waiting_for,
            } => {
                write!(f, "held {} for a later run: {waiting_for}", records(n))
            }
            Outcome::Waiting { pending: n, until } => write!(
                f,
                "held {} for a later run: an email went out less than min_interval ago, the \
                 next may go at {}",
                records(n),
                crate::capture::record::utc_time(*until)
            ),
            Outcome::Sent { records: n, emails } => {
                let emails = plural(*emails, "email", "emails");
                write!(f, "sent {} in {emails}", records(n))
            }
            Outcome::Resolved {
                failures: n,
                pending,
                waiting_for,
            } => {
                let failures = plural(*n, "failure is", "failures are");
                write!(f, "sent the notice that {failures} over")?;
                match (pending, waiting_for) {
                    (0, _) => f.write_str("; no record is pending"),
                    (n, Some(why)) => write!(f, "; held {} for a later run: {why}", records(n)),
                    (n, None) => write!(f, "; {} still held for a later run", records(n)),
                }
            }
            Outcome::Alerted {
                records: n,
                firing,
                resolved,
            } => write!(
                f,
                "Alertmanager accepted {firing} firing and {resolved} resolved alert{}; {} \
                 delivered",
                if firing + resolved == 1 { "" } else { "s" },
                records(n)
            ),
            Outcome::Failed { error, pending: n } => {
                write!(f, "not sent, {} kept for a later run: {error}", records(n))
            }
        }
    }
}
