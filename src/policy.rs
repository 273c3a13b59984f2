//! When to send: a pure function from the pending records to a decision.
//! No I/O, no clock, no state: everything it needs is in its arguments.

use tracing::Level;

use crate::record::{Record, severity};

/// The rules that decide when pending records are worth an email.
///
/// Set through the builder: [`threshold`](crate::Builder::threshold),
/// [`batch`](crate::Builder::batch) and
/// [`immediately_at`](crate::Builder::immediately_at). Any rule that is met
/// sends; with no rule set, the builder uses `threshold(1, Level::WARN)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Send everything at flush once at least `.0` records at `.1` or above
    /// are pending.
    pub(crate) threshold: Option<(usize, Level)>,
    /// Send an email of this many records as soon as that many are pending,
    /// during the run; at flush, send what is left.
    pub(crate) batch: Option<usize>,
    /// Send everything at flush if one record at this level or above is
    /// pending.
    pub(crate) immediately_at: Option<Level>,
}

/// When the decision is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// While the program runs (the batch worker): only full batches go out.
    Run,
    /// At a flush (the guard's `flush` or drop).
    Flush,
    /// A checkpoint that only stores records (the panic hook): never sends.
    Checkpoint,
}

/// What to do with the pending records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing is pending.
    Nothing,
    /// Keep everything for later: `counted` records count toward the
    /// threshold, `needed` are needed.
    Hold { counted: usize, needed: usize },
    /// Send the oldest `records` records, in emails of at most `per_email`
    /// records (one email for all when `None`); keep the rest.
    Send {
        records: usize,
        per_email: Option<usize>,
    },
}

fn at_least(records: &[Record], level: Level) -> usize {
    let min = severity(level);
    records.iter().filter(|r| severity(r.level) >= min).count()
}

impl Policy {
    /// Decides over `pending` (oldest first).
    pub(crate) fn decide(&self, pending: &[Record], phase: Phase) -> Decision {
        let n = pending.len();
        if n == 0 {
            return Decision::Nothing;
        }
        let full_batches = self.batch.map(|size| n / size * size).unwrap_or(0);
        let send_all = Decision::Send {
            records: n,
            per_email: self.batch,
        };
        let (counted, needed) = match (self.threshold, self.immediately_at) {
            (Some((needed, level)), _) => (at_least(pending, level), needed),
            (None, Some(level)) => (at_least(pending, level), 1),
            (None, None) => (0, self.batch.unwrap_or(1)),
        };
        if phase == Phase::Checkpoint {
            return Decision::Hold { counted, needed };
        }
        if phase == Phase::Flush {
            if let Some(level) = self.immediately_at
                && at_least(pending, level) > 0
            {
                return send_all;
            }
            if self.threshold.is_some() && counted >= needed {
                return send_all;
            }
            // A batch with no other rule sends its remainder at flush.
            if self.batch.is_some() && self.threshold.is_none() && self.immediately_at.is_none() {
                return send_all;
            }
        }
        if full_batches > 0 {
            return Decision::Send {
                records: full_batches,
                per_email: self.batch,
            };
        }
        Decision::Hold { counted, needed }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Fields;

    pub(crate) fn record_at(level: Level) -> Record {
        Record {
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            level,
            target: "test".into(),
            message: String::new(),
            fields: Fields::default(),
            module_path: None,
            file: None,
            line: None,
            spans: Vec::new(),
        }
    }

    fn pending(levels: &[Level]) -> Vec<Record> {
        levels.iter().map(|l| record_at(*l)).collect()
    }

    const W: Level = Level::WARN;
    const I: Level = Level::INFO;
    const E: Level = Level::ERROR;
    const D: Level = Level::DEBUG;

    fn threshold(n: usize, level: Level) -> Policy {
        Policy {
            threshold: Some((n, level)),
            ..Policy::default()
        }
    }

    fn batch(size: usize) -> Policy {
        Policy {
            batch: Some(size),
            ..Policy::default()
        }
    }

    fn send_all(n: usize) -> Decision {
        Decision::Send {
            records: n,
            per_email: None,
        }
    }

    #[test]
    fn nothing_pending_is_nothing_for_every_policy_and_phase() {
        for p in [threshold(5, W), batch(10), Policy::default()] {
            for phase in [Phase::Run, Phase::Flush] {
                assert_eq!(p.decide(&[], phase), Decision::Nothing);
            }
        }
    }

    #[test]
    fn threshold_holds_below_and_sends_everything_at_or_above() {
        let p = threshold(3, W);
        assert_eq!(
            p.decide(&pending(&[W, I, W, I, D]), Phase::Flush),
            Decision::Hold {
                counted: 2,
                needed: 3
            }
        );
        // INFO and DEBUG ride along once the threshold is met.
        assert_eq!(
            p.decide(&pending(&[W, I, W, I, E]), Phase::Flush),
            send_all(5)
        );
        assert_eq!(p.decide(&pending(&[W, W, W, W]), Phase::Flush), send_all(4));
    }

    #[test]
    fn threshold_counts_levels_at_or_above_only() {
        let p = threshold(1, E);
        assert_eq!(
            p.decide(&pending(&[W, W, W, I]), Phase::Flush),
            Decision::Hold {
                counted: 0,
                needed: 1
            }
        );
        let p = threshold(2, I);
        assert_eq!(
            p.decide(&pending(&[D, D, D]), Phase::Flush),
            Decision::Hold {
                counted: 0,
                needed: 2
            }
        );
        assert_eq!(p.decide(&pending(&[D, I, E]), Phase::Flush), send_all(3));
    }

    #[test]
    fn threshold_never_sends_during_the_run() {
        let p = threshold(1, W);
        assert_eq!(
            p.decide(&pending(&[E, E, E]), Phase::Run),
            Decision::Hold {
                counted: 3,
                needed: 1
            }
        );
    }

    #[test]
    fn batch_sends_full_batches_during_the_run_and_the_rest_at_flush() {
        let p = batch(10);
        let records = pending(&[I; 25]);
        assert_eq!(
            p.decide(&records, Phase::Run),
            Decision::Send {
                records: 20,
                per_email: Some(10)
            }
        );
        assert_eq!(
            p.decide(&records[..9], Phase::Run),
            Decision::Hold {
                counted: 0,
                needed: 10
            }
        );
        assert_eq!(
            p.decide(&records[..5], Phase::Flush),
            Decision::Send {
                records: 5,
                per_email: Some(10)
            }
        );
        assert_eq!(
            p.decide(&records, Phase::Flush),
            Decision::Send {
                records: 25,
                per_email: Some(10)
            }
        );
    }

    #[test]
    fn a_checkpoint_never_sends() {
        let all = Policy {
            threshold: Some((1, W)),
            batch: Some(1),
            immediately_at: Some(I),
        };
        assert_eq!(
            all.decide(&pending(&[E, E]), Phase::Checkpoint),
            Decision::Hold {
                counted: 2,
                needed: 1
            }
        );
        assert_eq!(all.decide(&[], Phase::Checkpoint), Decision::Nothing);
    }

    #[test]
    fn batch_of_one_sends_every_record() {
        assert_eq!(
            batch(1).decide(&pending(&[I, I, I]), Phase::Run),
            Decision::Send {
                records: 3,
                per_email: Some(1)
            }
        );
    }

    #[test]
    fn immediately_at_sends_at_flush_whatever_the_count() {
        let p = Policy {
            threshold: Some((100, W)),
            immediately_at: Some(E),
            batch: None,
        };
        assert_eq!(
            p.decide(&pending(&[I, W, W]), Phase::Flush),
            Decision::Hold {
                counted: 2,
                needed: 100
            }
        );
        assert_eq!(p.decide(&pending(&[I, E, W]), Phase::Flush), send_all(3));
        assert_eq!(
            p.decide(&pending(&[I, E, W]), Phase::Run),
            Decision::Hold {
                counted: 2,
                needed: 100
            }
        );
    }

    #[test]
    fn immediately_at_alone_holds_lower_levels() {
        let p = Policy {
            immediately_at: Some(W),
            ..Policy::default()
        };
        assert_eq!(
            p.decide(&pending(&[I, I]), Phase::Flush),
            Decision::Hold {
                counted: 0,
                needed: 1
            }
        );
        assert_eq!(p.decide(&pending(&[I, E]), Phase::Flush), send_all(2));
    }

    #[test]
    fn batch_with_threshold_holds_the_remainder_until_the_threshold() {
        let p = Policy {
            threshold: Some((2, E)),
            batch: Some(4),
            immediately_at: None,
        };
        // Full batches always go; the remainder waits for the threshold.
        assert_eq!(
            p.decide(&pending(&[I, I, I, I, I, E]), Phase::Flush),
            Decision::Send {
                records: 4,
                per_email: Some(4)
            }
        );
        assert_eq!(
            p.decide(&pending(&[I, E]), Phase::Flush),
            Decision::Hold {
                counted: 1,
                needed: 2
            }
        );
        assert_eq!(
            p.decide(&pending(&[E, I, E]), Phase::Flush),
            Decision::Send {
                records: 3,
                per_email: Some(4)
            }
        );
    }
}
