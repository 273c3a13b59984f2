//! When to send: a pure function from the pending records, the time and
//! the history of runs to a decision. No I/O, no clock of its own: everything
//! it needs is in its arguments, so every combination is unit-tested. The
//! records are read through their [`Tally`] (running figures a flush keeps
//! and feeds only the new records), so a decision costs O(1) in them; a test
//! checks it against the same decision made from every record.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::{Record, severity};
use crate::store::history::{Fingerprint, History, Streak, fingerprint_of};

pub(crate) use crate::settings::PolicyConfig as Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The batch worker: only full batches go out.
    Run,
    /// The guard's flush or drop, or the end of a `flush_every` period.
    Flush,
    /// The panic hook: stores records, never sends.
    Checkpoint,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) now: OffsetDateTime,
    pub(crate) last_sent: Option<OffsetDateTime>,
    pub(crate) history: &'a History,
    pub(crate) run: u64,
}

/// What the policy does with the pending records at a flush: its decision,
/// public as [`inspect::Verdict`](crate::inspect::Verdict), which
/// [`Snapshot::verdict`](crate::inspect::Snapshot::verdict) gives for a flush now.
/// Each case is the [`Outcome`](crate::Outcome) a flush now would have if
/// the send succeeded: `Nothing`, `Hold` → `Held`, `Wait` → `Waiting`,
/// `Send` → `Sent`. (How the flush splits the records into emails is its own
/// business and not part of it.)
///
/// ```
/// use tracing_email::inspect::Verdict;
///
/// fn explain(verdict: &Verdict) -> String {
///     match verdict {
///         Verdict::Hold { waiting_for } => format!("holds: {waiting_for}"),
///         Verdict::Send { records } => format!("sends {records}"),
///         other => format!("{other:?}"),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Nothing is pending.
    Nothing,
    /// Hold: no rule is met; `waiting_for` says what the rule closest to
    /// sending waits for.
    Hold {
        /// What the policy waits for.
        waiting_for: WaitingFor,
    },
    /// A rule is met, but `min_interval` keeps the next email until then.
    Wait {
        /// When the next email may go.
        until: OffsetDateTime,
    },
    /// Send this many records, the oldest (in emails of at most the
    /// policy's `batch` records); keep the rest.
    Send {
        /// Records that would be sent.
        records: usize,
    },
}

/// What held records wait for: of the policy's rules, the one closest to
/// sending, in its own terms. Carried by
/// [`Outcome::Held`](crate::Outcome::Held) and
/// [`Verdict::Hold`](crate::inspect::Verdict::Hold); its `Display` is the reason a
/// person reads. A failure labelled by its message is quoted: `"feed
/// failed" seen in 1 of the 3 runs in a row needed`.
///
/// ```
/// use tracing_email::inspect::WaitingFor;
///
/// let streak = WaitingFor::Streak {
///     label: Some(r#"url "b.json""#.into()),
///     runs: 2,
///     needed: 3,
///     level: tracing::Level::WARN,
/// };
/// assert_eq!(streak.to_string(), r#"url "b.json" failed 2 of the 3 runs in a row needed"#);
/// let by_message = WaitingFor::Streak {
///     label: Some("feed failed".into()),
///     runs: 1,
///     needed: 3,
///     level: tracing::Level::WARN,
/// };
/// assert_eq!(by_message.to_string(), r#""feed failed" seen in 1 of the 3 runs in a row needed"#);
///
/// let threshold = WaitingFor::Threshold { counted: 3, needed: 5, level: tracing::Level::WARN };
/// assert_eq!(threshold.to_string(), "3 of the 5 warnings or errors needed");
///
/// fn explain(w: &WaitingFor) -> String {
///     match w {
///         WaitingFor::Quiet { label, until: Some(until), .. } => {
///             format!("{label} was reported; a reminder may go at {until}")
///         }
///         other => other.to_string(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitingFor {
    /// `threshold(needed, level)`: `counted` pending records are at `level`
    /// or above (and not quieted by `repeat_after`).
    Threshold {
        /// Pending records that count.
        counted: usize,
        /// Records the threshold needs.
        needed: usize,
        /// The threshold's level.
        level: Level,
    },
    /// `consecutive_runs(needed)`: the longest streak of this run not yet
    /// reported, the failure `label` seen in each of the last `runs` runs;
    /// `label` is `None` (and `runs` 0) when this run saw no such failure at
    /// `level` or above.
    Streak {
        /// The failure (its fingerprint's label), e.g. `url "b.json"`.
        label: Option<String>,
        /// Consecutive runs that saw it, this one included.
        runs: u64,
        /// Runs the rule needs.
        needed: u64,
        /// The level at or above which failures count.
        level: Level,
    },
    /// A failure that meets a rule was already reported at `reported` and is
    /// quiet: until `until` with `repeat_after`, or with `until: None`
    /// (`consecutive_runs` without `repeat_after`) until a run without it
    /// ends its streak. Its records wait and ride along in the next digest
    /// that goes out.
    Quiet {
        /// The failure (its fingerprint's label).
        label: String,
        /// When a digest holding it was last sent.
        reported: OffsetDateTime,
        /// When it may trigger again (`repeat_after`), if ever during this
        /// streak.
        until: Option<OffsetDateTime>,
    },
    /// `batch(size)`: `counted` records pending toward the next full batch
    /// (only during the run; at a flush a batch sends its remainder).
    Batch {
        /// Records pending toward the batch.
        counted: usize,
        /// The batch size.
        size: usize,
    },
    /// `immediately_at(level)`: no pending record is at `level` or above.
    Level {
        /// The rule's level.
        level: Level,
    },
    /// `max_age(d)`: the oldest record that counts was logged at `since`;
    /// a flush from `sends_at` on sends it.
    Age {
        /// When the oldest counted record was logged.
        since: OffsetDateTime,
        /// When it will have been pending `max_age`.
        sends_at: OffsetDateTime,
    },
}

/// `url "b.json" failed`, or the message quoted: `"feed failed" seen in`.
fn failed(label: &str) -> String {
    match label.find(" \"") {
        Some(at) if at > 0 && label.ends_with('"') => format!("{label} failed"),
        _ => format!("{label:?} seen in"),
    }
}

/// `warnings or errors`.
fn at_or_above(level: Level) -> String {
    match level {
        Level::ERROR => "errors".to_owned(),
        Level::WARN => "warnings or errors".to_owned(),
        other => format!("records at {other} or above"),
    }
}

const NO_REMINDER: &str = "a run without it (consecutive_runs reports a failure once; \
                           repeat_after brings reminders)";

impl std::fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::capture::record::utc_time as t;
        match self {
            Self::Threshold {
                counted,
                needed,
                level,
            } => {
                let records = at_or_above(*level);
                write!(f, "{counted} of the {needed} {records} needed")
            }
            Self::Streak {
                label,
                runs,
                needed,
                level,
            } => match label {
                Some(label) => {
                    let failed = failed(label);
                    write!(f, "{failed} {runs} of the {needed} runs in a row needed")
                }
                None => write!(
                    f,
                    "no failure ({}) in this run; one in {needed} runs in a row is needed",
                    at_or_above(*level)
                ),
            },
            Self::Quiet {
                label,
                reported,
                until,
            } => {
                let until = until.map_or(NO_REMINDER.to_owned(), |u| t(u) + " (repeat_after)");
                let reported = t(*reported);
                write!(f, "{label} reported at {reported}, quiet until {until}")
            }
            Self::Batch { counted, size } => {
                write!(f, "{counted} of the {size} records a batch needs")
            }
            Self::Level { level } => write!(f, "no record at {level} or above (immediately_at)"),
            Self::Age { since, sends_at } => write!(
                f,
                "the oldest counted record is from {}; max_age sends it at a flush from {} on",
                t(*since),
                t(*sends_at)
            ),
        }
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn after(at: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    at.checked_add(to_time(d))
}

fn quiet_reason(s: &Streak, until: Option<OffsetDateTime>) -> Option<WaitingFor> {
    Some(WaitingFor::Quiet {
        label: s.label.clone(),
        reported: s.reported?,
        until,
    })
}

impl Policy {
    /// The threshold's level, else WARN (also for consecutive runs and max age).
    pub(crate) fn level(&self) -> Level {
        self.threshold.map_or(Level::WARN, |(_, level)| level)
    }

    pub(crate) fn counts(&self, level: Level) -> bool {
        severity(level) >= severity(self.level())
    }

    /// What history, flush and Alertmanager go by; `None` below the policy's level.
    pub(crate) fn failure_of<'r>(&self, record: &'r Record) -> Option<Cow<'r, Fingerprint>> {
        self.counts(record.level)
            .then(|| fingerprint_of(record, &self.fingerprint_fields))
    }

    fn has_trigger(&self) -> bool {
        self.threshold.is_some()
            || self.immediately_at.is_some()
            || self.consecutive_runs.is_some()
            || self.max_age.is_some()
    }

    /// Sets the default rule, `threshold(1, WARN)`, when none is set: the
    /// policy the builder runs, and the one `inspect` judges by.
    pub(crate) fn set_default_rule(&mut self) {
        if !self.has_trigger() && self.batch.is_none() {
            self.threshold = Some((1, Level::WARN));
        }
    }

    /// `Some(None)`: quiet until a run without it. `consecutive_runs(k)` reports a
    /// streak once it went out at least `k` runs long; without `repeat_after` it
    /// stays quiet for the rest of it.
    pub(crate) fn quiet_until(
        &self,
        s: &Streak,
        now: OffsetDateTime,
    ) -> Option<Option<OffsetDateTime>> {
        let once =
            s.reported.is_some() && self.consecutive_runs.is_some_and(|k| s.reported_runs >= k);
        match self.repeat_after {
            None if once => Some(None),
            _ => self.repeat_quiet(s, now),
        }
    }

    /// The inner `None` is past the end of time.
    fn repeat_quiet(&self, s: &Streak, now: OffsetDateTime) -> Option<Option<OffsetDateTime>> {
        let until = after(s.reported?, self.repeat_after?);
        until.is_none_or(|u| now < u).then_some(until)
    }

    /// From the reported streaks (at most `MAX_STREAKS`), not the groups (as many as records).
    fn quiet_bands(&self, tally: &Tally, facts: &Facts<'_>) -> Vec<(usize, WaitingFor)> {
        if self.repeat_after.is_none() {
            return Vec::new();
        }
        let quiet = facts.history.streaks.iter().filter_map(|(key, s)| {
            let &id = tally.keyed.get(key.as_str())?;
            Some((id, quiet_reason(s, self.repeat_quiet(s, facts.now)?)?))
        });
        let mut quiet: Vec<_> = quiet.collect();
        quiet.sort_unstable_by_key(|(id, _)| tally.bands[*id].first);
        quiet
    }

    /// Over the tally less the `quiet` groups, in as many steps as there are of them.
    fn measure(&self, tally: &Tally, facts: &Facts<'_>, quiet: &[(usize, WaitingFor)]) -> Measure {
        let quiet_bands = || quiet.iter().map(|(id, _)| &tally.bands[*id]);
        let counted = tally.all.counted - quiet_bands().map(|b| b.counted).sum::<usize>();
        let urgent = tally.all.urgent - quiet_bands().map(|b| b.urgent).sum::<usize>();
        let loud = |id: &usize| !quiet.iter().any(|(q, _)| q == id);
        let first = tally.by_first.values().find(|id| loud(id));
        let oldest = first.and_then(|id| tally.bands[*id].first);
        let earliest = tally.by_earliest.iter().find(|(_, id)| loud(id));
        let aged = self.max_age.zip(earliest.map(|(t, _)| *t));
        let aged = aged.is_some_and(|(age, earliest)| facts.now - earliest >= to_time(age));
        let threshold = self.threshold.is_some_and(|(needed, _)| counted >= needed);
        Measure {
            counted,
            oldest: oldest.map(|(_, time)| time),
            met: (self.immediately_at.is_some() && urgent > 0) || aged || threshold,
        }
    }

    /// O(pending) to make the [`Tally`]; a flush keeps its tally between flushes.
    pub(crate) fn decide(&self, pending: &[Record], phase: Phase, facts: &Facts<'_>) -> Decision {
        let mut tally = Tally::default();
        tally.extend(self, pending);
        self.decide_tally(&tally, phase, facts)
    }

    /// O(1) in the records and groups; O(streaks) with `repeat_after` or `consecutive_runs`.
    pub(crate) fn decide_tally(&self, tally: &Tally, phase: Phase, facts: &Facts<'_>) -> Decision {
        if tally.len == 0 {
            return Decision::Nothing;
        }
        // Records that count: not of a failure reported too recently.
        let quiet_bands = self.quiet_bands(tally, facts);
        let measure = self.measure(tally, facts, &quiet_bands);
        let (longest, streak_met, mut quiet) = self.streaks(facts);
        let Some(send) = self.send(tally.len, phase, measure.met || streak_met) else {
            // A count rule that only quiet records would meet: they are the
            // reason, in the order of their first counted record.
            if self.repeat_after.is_some() && self.measure(tally, facts, &[]).met {
                let counted = quiet_bands
                    .into_iter()
                    .filter(|(id, _)| tally.bands[*id].first.is_some());
                quiet.extend(counted.map(|(_, reason)| reason));
            }
            return Decision::Hold {
                waiting_for: self.waiting_for(tally.len, facts, &measure, longest, quiet),
            };
        };
        match self.interval_until(facts) {
            Some(until) => Decision::Wait { until },
            None => send,
        }
    }

    /// The longest streak not quiet, whether it meets `consecutive_runs`, and the quiet ones:
    /// reported ones count once per streak, again after `repeat_after`.
    fn streaks<'h>(&self, facts: &Facts<'h>) -> (Option<&'h Streak>, bool, Vec<WaitingFor>) {
        let (mut longest, mut quiet): (Option<&Streak>, _) = (None, Vec::new());
        let Some(k) = self.consecutive_runs else {
            return (None, false, quiet);
        };
        for s in facts.history.streaks.values() {
            if s.last_run != facts.run || !self.counts(s.level) {
                continue;
            }
            let reported = s.runs >= k && s.reported_runs >= k;
            match reported.then(|| self.quiet_until(s, facts.now)).flatten() {
                Some(until) => quiet.extend(quiet_reason(s, until)),
                _ if longest.is_none_or(|l| s.runs > l.runs) => longest = Some(s),
                _ => {}
            }
        }
        (longest, longest.is_some_and(|s| s.runs >= k), quiet)
    }

    /// All at a flush when a rule is met, else the full batches; never at a checkpoint.
    fn send(&self, n: usize, phase: Phase, met: bool) -> Option<Decision> {
        // A batch with no other rule sends its remainder at flush.
        let batch_only = self.batch.is_some() && !self.has_trigger();
        let records = match phase {
            Phase::Checkpoint => 0,
            Phase::Flush if met || batch_only => n,
            _ => self.batch.map_or(0, |size| n / size * size),
        };
        (records > 0).then_some(Decision::Send { records })
    }

    /// Saturates: a `last_sent` near year 9999 waits until then rather than overflow.
    fn interval_until(&self, facts: &Facts<'_>) -> Option<OffsetDateTime> {
        let last = facts.last_sent?.checked_add(to_time(self.min_interval?));
        let until = last.unwrap_or(crate::clock::LATEST);
        (facts.now < until).then_some(until)
    }

    /// A quiet failure first (the soonest to trigger), else the furthest along.
    fn waiting_for(
        &self,
        n: usize,
        facts: &Facts<'_>,
        m: &Measure,
        longest: Option<&Streak>,
        quiet: Vec<WaitingFor>,
    ) -> WaitingFor {
        let soonest = |q: &WaitingFor| match q {
            WaitingFor::Quiet { until, .. } => (until.is_none(), *until),
            _ => (true, None),
        };
        if let Some(q) = quiet.into_iter().min_by_key(soonest) {
            return q;
        }
        let fallback = WaitingFor::Threshold {
            counted: m.counted,
            needed: 1,
            level: self.level(),
        };
        // The first of the furthest along.
        self.unmet(n, m, longest)
            .into_iter()
            .flatten()
            .map(|w| (self.progress(&w, facts.now), w))
            .reduce(|best, next| if next.0 > best.0 { next } else { best })
            .map_or(fallback, |(_, w)| w)
    }

    fn unmet(&self, n: usize, m: &Measure, longest: Option<&Streak>) -> [Option<WaitingFor>; 5] {
        [
            self.threshold.map(|(needed, level)| WaitingFor::Threshold {
                counted: m.counted,
                needed,
                level,
            }),
            self.consecutive_runs.map(|needed| WaitingFor::Streak {
                label: longest.map(|s| s.label.clone()),
                runs: longest.map_or(0, |s| s.runs),
                needed,
                level: self.level(),
            }),
            self.batch.map(|size| WaitingFor::Batch {
                counted: n % size.max(1),
                size,
            }),
            self.max_age
                .zip(m.oldest)
                .map(|(age, since)| WaitingFor::Age {
                    since,
                    sends_at: after(since, age).unwrap_or(since),
                }),
            self.immediately_at.map(|level| WaitingFor::Level { level }),
        ]
    }

    fn progress(&self, w: &WaitingFor, now: OffsetDateTime) -> f64 {
        let ratio = |counted: u64, needed: u64| match needed {
            0 => 1.0,
            _ => counted as f64 / needed as f64,
        };
        match *w {
            WaitingFor::Threshold {
                counted, needed, ..
            } => ratio(counted as u64, needed as u64),
            WaitingFor::Streak { runs, needed, .. } => ratio(runs, needed),
            WaitingFor::Batch { counted, size } => ratio(counted as u64, size as u64),
            WaitingFor::Age { since, .. } => {
                let waited = (now - since).max(time::Duration::ZERO);
                let wanted = self.max_age.map_or(time::Duration::ZERO, to_time);
                waited.as_seconds_f64() / wanted.as_seconds_f64().max(f64::MIN_POSITIVE)
            }
            WaitingFor::Level { .. } | WaitingFor::Quiet { .. } => 0.0,
        }
    }

    /// This run's failures the rules would report on their own (one alert each);
    /// with `batch` alone, every one. `min_interval` and `repeat_after` do not count
    /// (Alertmanager has `repeat_interval`).
    #[cfg_attr(not(feature = "alertmanager"), allow(dead_code))]
    pub(crate) fn worth_reporting(&self, tally: &Tally, facts: &Facts<'_>) -> BTreeSet<String> {
        let every = !self.has_trigger();
        (facts.history.streaks.iter())
            .filter(|(_, s)| s.last_run == facts.run && self.counts(s.level))
            .filter(|(key, s)| {
                // Its own pending records: how many, and the oldest's time.
                let own = tally.keyed.get(key.as_str()).map(|&id| &tally.bands[id]);
                let (count, oldest) = (own.map(|b| b.counted), own.and_then(|b| b.earliest));
                every
                    || self.consecutive_runs.is_some_and(|k| s.runs >= k)
                    || self
                        .immediately_at
                        .is_some_and(|l| severity(s.level) >= severity(l))
                    || self
                        .threshold
                        .is_some_and(|(needed, _)| count.unwrap_or(0) >= needed)
                    || (self.max_age.zip(oldest))
                        .is_some_and(|(age, oldest)| facts.now - oldest >= to_time(age))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Pure: notices go only at a flush, with the digest or alone, under `min_interval`.
    pub(crate) fn recovery(
        &self,
        notify: bool,
        phase: Phase,
        decision: &Decision,
        facts: &Facts<'_>,
    ) -> Recovery {
        if !notify || facts.history.resolved.is_empty() || phase != Phase::Flush {
            return Recovery::Nothing;
        }
        match (decision, self.interval_until(facts)) {
            (Decision::Send { .. }, _) => Recovery::WithDigest,
            (&Decision::Wait { until }, _) | (_, Some(until)) => Recovery::Wait { until },
            _ => Recovery::Alone,
        }
    }
}

struct Measure {
    counted: usize,
    oldest: Option<OffsetDateTime>,
    met: bool,
}

/// Running figures over all and by fingerprint (`repeat_after` and alerts go per
/// failure), groups ordered so quiet ones are skipped in as many steps as there
/// are. Records leave from the front only, after which it is made anew.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    len: usize,
    all: Band,
    keyed: HashMap<String, usize>,
    bands: Vec<Band>,
    by_first: BTreeMap<usize, usize>,
    by_earliest: BTreeSet<(OffsetDateTime, usize)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Band {
    counted: usize,
    first: Option<(usize, OffsetDateTime)>,
    earliest: Option<OffsetDateTime>,
    urgent: usize,
}

impl Band {
    fn add(&mut self, at: usize, time: OffsetDateTime, counts: bool, urgent: bool) {
        self.urgent += usize::from(urgent);
        if counts {
            self.counted += 1;
            self.first.get_or_insert((at, time));
            self.earliest = Some(self.earliest.map_or(time, |e| e.min(time)));
        }
    }
}

impl Tally {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `policy` must be the one the tally was made for.
    pub(crate) fn extend(&mut self, policy: &Policy, records: &[Record]) {
        for record in records {
            let (at, time, level) = (self.len, record.timestamp, record.level);
            self.len += 1;
            let counts = policy.counts(level);
            let urgent = policy
                .immediately_at
                .is_some_and(|u| severity(level) >= severity(u));
            if !(counts || urgent) {
                continue;
            }
            self.all.add(at, time, counts, urgent);
            let fp = fingerprint_of(record, &policy.fingerprint_fields);
            let id = self.keyed.get(&fp.key).copied().unwrap_or_else(|| {
                self.bands.push(Band::default());
                self.keyed.insert(fp.key.clone(), self.bands.len() - 1);
                self.bands.len() - 1
            });
            let band = &mut self.bands[id];
            let (first, earliest) = (band.first, band.earliest);
            band.add(at, time, counts, urgent);
            if first.is_none() && counts {
                self.by_first.insert(at, id);
            }
            if band.earliest != earliest {
                if let Some(e) = earliest {
                    self.by_earliest.remove(&(e, id));
                }
                self.by_earliest.insert((time, id));
            }
        }
    }
}

/// Recovery notices due (see `History::end_run`), beside the [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// None is due, or not now (only a flush sends them).
    Nothing,
    /// They ride in the digest's first email, as a "Resolved" section.
    WithDigest,
    /// One short email of their own.
    Alone,
    /// `min_interval`: a later flush retries.
    Wait { until: OffsetDateTime },
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::capture::record::Fields;
    use std::borrow::Cow;

    impl Facts<'static> {
        /// Facts with no history, at the Unix epoch: for the simplest decisions.
        pub(crate) fn none() -> Self {
            static EMPTY: std::sync::OnceLock<History> = std::sync::OnceLock::new();
            Facts {
                now: OffsetDateTime::UNIX_EPOCH,
                last_sent: None,
                history: EMPTY.get_or_init(History::default),
                run: 0,
            }
        }
    }

    impl Policy {
        /// Whether the fingerprint `key` was reported too recently to trigger.
        fn quiet(&self, key: &str, facts: &Facts<'_>) -> bool {
            let s = facts.history.streaks.get(key);
            s.and_then(|s| self.repeat_quiet(s, facts.now)).is_some()
        }

        /// The failure of `key` as quiet by `repeat_after`, if it is.
        fn quieted(&self, key: &str, facts: &Facts<'_>) -> Option<WaitingFor> {
            let s = facts.history.streaks.get(key)?;
            quiet_reason(s, self.repeat_quiet(s, facts.now)?)
        }

        /// The decision as it was made before the tally: from scratch, over
        /// every pending record (the reference the tally is checked against).
        /// Measures the count rules over the pending records that `counts`.
        fn measure_scan(&self, pending: &[Record], counts: &[bool], facts: &Facts<'_>) -> Measure {
            let min = severity(self.level());
            let counted_records = || {
                pending
                    .iter()
                    .zip(counts)
                    .filter(|(r, c)| **c && severity(r.level) >= min)
                    .map(|(r, _)| r)
            };
            let counted = counted_records().count();
            let oldest = counted_records().next().map(|r| r.timestamp);
            let urgent = self.immediately_at.is_some_and(|level| {
                pending
                    .iter()
                    .zip(counts)
                    .any(|(r, c)| *c && severity(r.level) >= severity(level))
            });
            let aged = self.max_age.is_some_and(|age| {
                counted_records().any(|r| facts.now - r.timestamp >= to_time(age))
            });
            let threshold = self.threshold.is_some_and(|(needed, _)| counted >= needed);
            Measure {
                counted,
                oldest,
                met: urgent || aged || threshold,
            }
        }

        /// Decides over `pending` (oldest first), with the same streaks,
        /// sends and interval as [`decide_tally`](Policy::decide_tally).
        pub(crate) fn decide_scan(
            &self,
            pending: &[Record],
            phase: Phase,
            facts: &Facts<'_>,
        ) -> Decision {
            let n = pending.len();
            if n == 0 {
                return Decision::Nothing;
            }
            let min = severity(self.level());
            // Records that count: not of a failure reported too recently
            // (`repeat_after`).
            let fingerprints: Vec<Option<Cow<'_, Fingerprint>>> = pending
                .iter()
                .map(|r| {
                    self.repeat_after
                        .is_some()
                        .then(|| fingerprint_of(r, &self.fingerprint_fields))
                })
                .collect();
            let keys: Vec<Option<&str>> = fingerprints
                .iter()
                .map(|fp| fp.as_ref().map(|fp| fp.key.as_str()))
                .collect();
            let loud: Vec<bool> = keys
                .iter()
                .map(|k| k.as_ref().is_none_or(|k| !self.quiet(k, facts)))
                .collect();
            let measure = self.measure_scan(pending, &loud, facts);
            let (longest, streak_met, mut quiet) = self.streaks(facts);
            let Some(send) = self.send(n, phase, measure.met || streak_met) else {
                // A count rule that only quiet records would meet: they are the
                // reason.
                if self.repeat_after.is_some()
                    && self.measure_scan(pending, &vec![true; n], facts).met
                {
                    let mut seen = std::collections::BTreeSet::new();
                    for ((r, key), loud) in pending.iter().zip(&keys).zip(&loud) {
                        let Some(key) =
                            key.filter(|k| !*loud && severity(r.level) >= min && seen.insert(*k))
                        else {
                            continue;
                        };
                        quiet.extend(self.quieted(key, facts));
                    }
                }
                return Decision::Hold {
                    waiting_for: self.waiting_for(n, facts, &measure, longest, quiet),
                };
            };
            match self.interval_until(facts) {
                Some(until) => Decision::Wait { until },
                None => send,
            }
        }
    }

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
            run: None,
            memo: Default::default(),
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

    fn th(counted: usize, needed: usize, level: Level) -> Decision {
        Decision::Hold {
            waiting_for: WaitingFor::Threshold {
                counted,
                needed,
                level,
            },
        }
    }

    fn streak(label: Option<&str>, runs: u64, needed: u64) -> Decision {
        Decision::Hold {
            waiting_for: WaitingFor::Streak {
                label: label.map(str::to_owned),
                runs,
                needed,
                level: W,
            },
        }
    }

    fn send_all(n: usize) -> Decision {
        Decision::Send { records: n }
    }

    #[test]
    fn nothing_pending_is_nothing_for_every_policy_and_phase() {
        for p in [threshold(5, W), batch(10), Policy::default()] {
            for phase in [Phase::Run, Phase::Flush] {
                assert_eq!(p.decide(&[], phase, &Facts::none()), Decision::Nothing);
            }
        }
    }

    #[test]
    fn threshold_holds_below_and_sends_everything_at_or_above() {
        let p = threshold(3, W);
        assert_eq!(
            p.decide(&pending(&[W, I, W, I, D]), Phase::Flush, &Facts::none()),
            th(2, 3, W)
        );
        // INFO and DEBUG ride along once the threshold is met.
        assert_eq!(
            p.decide(&pending(&[W, I, W, I, E]), Phase::Flush, &Facts::none()),
            send_all(5)
        );
        assert_eq!(
            p.decide(&pending(&[W, W, W, W]), Phase::Flush, &Facts::none()),
            send_all(4)
        );
    }

    #[test]
    fn threshold_counts_levels_at_or_above_only() {
        let p = threshold(1, E);
        assert_eq!(
            p.decide(&pending(&[W, W, W, I]), Phase::Flush, &Facts::none()),
            th(0, 1, E)
        );
        let p = threshold(2, I);
        assert_eq!(
            p.decide(&pending(&[D, D, D]), Phase::Flush, &Facts::none()),
            th(0, 2, I)
        );
        assert_eq!(
            p.decide(&pending(&[D, I, E]), Phase::Flush, &Facts::none()),
            send_all(3)
        );
    }

    #[test]
    fn threshold_never_sends_during_the_run() {
        let p = threshold(1, W);
        assert_eq!(
            p.decide(&pending(&[E, E, E]), Phase::Run, &Facts::none()),
            th(3, 1, W)
        );
    }

    #[test]
    fn batch_sends_full_batches_during_the_run_and_the_rest_at_flush() {
        let p = batch(10);
        let records = pending(&[I; 25]);
        assert_eq!(
            p.decide(&records, Phase::Run, &Facts::none()),
            Decision::Send { records: 20 }
        );
        assert_eq!(
            p.decide(&records[..9], Phase::Run, &Facts::none()),
            Decision::Hold {
                waiting_for: WaitingFor::Batch {
                    counted: 9,
                    size: 10
                }
            }
        );
        assert_eq!(
            p.decide(&records[..5], Phase::Flush, &Facts::none()),
            Decision::Send { records: 5 }
        );
        assert_eq!(
            p.decide(&records, Phase::Flush, &Facts::none()),
            Decision::Send { records: 25 }
        );
    }

    #[test]
    fn a_checkpoint_never_sends() {
        let all = Policy {
            threshold: Some((1, W)),
            batch: Some(1),
            immediately_at: Some(I),
            ..Policy::default()
        };
        assert_eq!(
            all.decide(&pending(&[E, E]), Phase::Checkpoint, &Facts::none()),
            th(2, 1, W)
        );
        assert_eq!(
            all.decide(&[], Phase::Checkpoint, &Facts::none()),
            Decision::Nothing
        );
    }

    #[test]
    fn batch_of_one_sends_every_record() {
        assert_eq!(
            batch(1).decide(&pending(&[I, I, I]), Phase::Run, &Facts::none()),
            Decision::Send { records: 3 }
        );
    }

    #[test]
    fn immediately_at_sends_at_flush_whatever_the_count() {
        let p = Policy {
            threshold: Some((100, W)),
            immediately_at: Some(E),
            ..Policy::default()
        };
        assert_eq!(
            p.decide(&pending(&[I, W, W]), Phase::Flush, &Facts::none()),
            th(2, 100, W)
        );
        assert_eq!(
            p.decide(&pending(&[I, E, W]), Phase::Flush, &Facts::none()),
            send_all(3)
        );
        assert_eq!(
            p.decide(&pending(&[I, E, W]), Phase::Run, &Facts::none()),
            th(2, 100, W)
        );
    }

    #[test]
    fn immediately_at_alone_holds_lower_levels() {
        let p = Policy {
            immediately_at: Some(W),
            ..Policy::default()
        };
        assert_eq!(
            p.decide(&pending(&[I, I]), Phase::Flush, &Facts::none()),
            Decision::Hold {
                waiting_for: WaitingFor::Level { level: W }
            }
        );
        assert_eq!(
            p.decide(&pending(&[I, E]), Phase::Flush, &Facts::none()),
            send_all(2)
        );
    }

    #[test]
    fn batch_with_threshold_holds_the_remainder_until_the_threshold() {
        let p = Policy {
            threshold: Some((2, E)),
            batch: Some(4),
            ..Policy::default()
        };
        // Full batches always go; the remainder waits for the threshold.
        assert_eq!(
            p.decide(&pending(&[I, I, I, I, I, E]), Phase::Flush, &Facts::none()),
            Decision::Send { records: 4 }
        );
        assert_eq!(
            p.decide(&pending(&[I, E]), Phase::Flush, &Facts::none()),
            th(1, 2, E)
        );
        assert_eq!(
            p.decide(&pending(&[E, I, E]), Phase::Flush, &Facts::none()),
            Decision::Send { records: 3 }
        );
    }

    // ---- fingerprints, runs and time ------------------------------------

    use crate::store::history::{Fingerprint, History, fingerprint};
    use time::OffsetDateTime as T;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(hours: i64) -> T {
        T::UNIX_EPOCH + time::Duration::hours(hours)
    }

    /// A record of the feed `feed` at `level`, logged at hour `hours`.
    fn feed(feed: &str, level: Level, hours: i64) -> Record {
        let mut r = record_at(level);
        r.message = "feed failed".into();
        r.fields.push("feed".into(), serde_json::json!(feed));
        r.timestamp = at(hours);
        r
    }

    fn by_feed() -> Policy {
        Policy {
            fingerprint_fields: vec!["feed".into()],
            ..Policy::default()
        }
    }

    /// The history after runs 1..=runs.len(), where run i saw `runs[i]`.
    fn history(policy: &Policy, runs: &[&[Record]]) -> History {
        let mut h = History::default();
        for records in runs {
            let run = h.start_run();
            for r in *records {
                let fp = fingerprint(r, &policy.fingerprint_fields);
                h.observe(run, &fp, r.level, r.timestamp);
            }
        }
        h
    }

    fn facts(h: &History, now: T, last_sent: Option<T>) -> Facts<'_> {
        Facts {
            now,
            last_sent,
            history: h,
            run: h.runs,
        }
    }

    fn key(policy: &Policy, r: &Record) -> Fingerprint {
        fingerprint(r, &policy.fingerprint_fields)
    }

    /// The failures worth an alert of their own: each rule, failure by
    /// failure, and only those seen in this run.
    #[test]
    fn worth_reporting_applies_each_rule_to_each_failure_seen_in_this_run() {
        let a = |h| feed("Radio Café", W, h);
        let b = |h| feed("Jazz FM", W, h);
        let c = |h| feed("Gone", W, h);
        let keys = |p: &Policy, pending: &[Record], h: &History, now| {
            let mut tally = Tally::default();
            tally.extend(p, pending);
            let worth = p.worth_reporting(&tally, &facts(h, now, None));
            let mut labels: Vec<String> =
                worth.iter().map(|k| h.streaks[k].label.clone()).collect();
            labels.sort();
            labels
        };
        // Radio Café in runs 1-3, Jazz FM in 3 only, Gone in 1-2 only.
        let runs: [&[Record]; 3] = [&[a(1), c(1)], &[a(2), c(2)], &[a(3), b(3), b(3)]];
        let pending = [a(1), c(1), a(2), c(2), a(3), b(3), b(3)];
        let streak = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let h = history(&streak, &runs);
        assert_eq!(keys(&streak, &pending, &h, at(4)), [r#"feed "Radio Café""#]);
        // A threshold counts each failure's own records.
        let threshold = Policy {
            threshold: Some((2, W)),
            ..by_feed()
        };
        assert_eq!(
            keys(&threshold, &pending, &h, at(4)),
            [r#"feed "Jazz FM""#, r#"feed "Radio Café""#]
        );
        let three = Policy {
            threshold: Some((3, W)),
            ..by_feed()
        };
        assert_eq!(keys(&three, &pending, &h, at(4)), [r#"feed "Radio Café""#]);
        // immediately_at: every failure at that level; below it, none.
        let now = Policy {
            immediately_at: Some(W),
            threshold: Some((100, W)),
            ..by_feed()
        };
        assert_eq!(keys(&now, &pending, &h, at(4)).len(), 2);
        let errors = Policy {
            immediately_at: Some(Level::ERROR),
            threshold: Some((100, W)),
            ..by_feed()
        };
        assert!(keys(&errors, &pending, &h, at(4)).is_empty());
        // max_age: a failure whose oldest pending record is old enough.
        let aged = Policy {
            max_age: Some(2 * HOUR),
            threshold: Some((100, W)),
            ..by_feed()
        };
        assert_eq!(keys(&aged, &pending, &h, at(4)), [r#"feed "Radio Café""#]);
        // Records below the policy's level never count.
        let infos = [feed("Radio Café", Level::INFO, 3)];
        let h = history(&three, &[&infos]);
        assert!(keys(&now, &infos, &h, at(4)).is_empty());
    }

    #[test]
    fn consecutive_runs_sends_when_one_failure_is_in_each_of_the_last_k_runs() {
        let p = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let b = |h| feed("Ääniraita", W, h);
        // Radio Café in runs 1, 2, 3: sends.
        let h = history(&p, &[&[a(1)], &[a(2), b(2)], &[a(3)]]);
        let pending = [a(1), a(2), b(2), a(3)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(3), None)),
            send_all(4)
        );
        // Two runs only: holds, and says how far the longest streak got.
        let h = history(&p, &[&[a(1)], &[a(2)]]);
        assert_eq!(
            p.decide(&pending[..2], Phase::Flush, &facts(&h, at(2), None)),
            streak(Some(r#"feed "Radio Café""#), 2, 3)
        );
        // Many different one-off failures never add up.
        let h = history(&p, &[&[a(1)], &[b(2)], &[a(3)], &[b(4)]]);
        let pending = [a(1), b(2), a(3), b(4)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(4), None)),
            streak(Some(r#"feed "Ääniraita""#), 1, 3)
        );
    }

    #[test]
    fn a_run_without_the_failure_resets_its_streak() {
        let p = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let h = history(&p, &[&[a(1)], &[a(2)], &[], &[a(4)], &[a(5)]]);
        let pending = [a(1), a(2), a(4), a(5)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(5), None)),
            streak(Some(r#"feed "Radio Café""#), 2, 3)
        );
    }

    /// What three runs of a program logging one WARN failure each make of
    /// `consecutive_runs(2)` with a threshold at `level`: each run's
    /// outcome, and the failures the state file then tracks. Through the
    /// crate's own flushes, so that what decides which records a streak
    /// counts is the crate's, not the test's.
    fn three_warn_runs(level: Level) -> (Vec<crate::Outcome>, Vec<(String, u64)>) {
        use tracing_subscriber::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let outcomes = (0..3)
            .map(|_| {
                let (layer, guard) = crate::EmailLayer::builder("policy-test")
                    .transport(crate::FileDrop::new(dir.path().join("outbox")))
                    .state_file(dir.path().join("state.json"))
                    .from("robot@example.com")
                    .to("me@example.com")
                    .consecutive_runs(2)
                    .threshold(100, level)
                    .fingerprint_fields(["feed"])
                    .build()
                    .unwrap();
                let subscriber = tracing_subscriber::registry().with(layer);
                tracing::subscriber::with_default(subscriber, || {
                    tracing::warn!(feed = "Radio Café", "feed failed");
                });
                guard.flush()
            })
            .collect();
        let snapshot = crate::inspect::StateFile::open(dir.path().join("state.json"))
            .snapshot()
            .unwrap();
        let failures = snapshot.failures.into_iter().map(|f| (f.label, f.runs));
        (outcomes, failures.collect())
    }

    #[test]
    fn consecutive_runs_counts_only_the_policy_level() {
        // WARN streaks do not count when the policy's level is ERROR: the
        // records wait for the threshold, and no streak is kept.
        let (outcomes, failures) = three_warn_runs(E);
        for (n, outcome) in outcomes.iter().enumerate() {
            let pending = n + 1;
            assert!(
                matches!(
                    outcome,
                    crate::Outcome::Held {
                        pending: p,
                        waiting_for: WaitingFor::Threshold { counted: 0, needed: 100, level: E },
                    } if *p == pending
                ),
                "run {pending}: {outcome}"
            );
        }
        assert_eq!(failures, []);
        // At the policy's level WARN, the same runs make a streak that sends
        // at the second run.
        let (outcomes, failures) = three_warn_runs(W);
        assert!(
            matches!(outcomes[1], crate::Outcome::Sent { records: 2, .. }),
            "{}",
            outcomes[1]
        );
        assert_eq!(failures, [(r#"feed "Radio Café""#.to_owned(), 3)]);
    }

    #[test]
    fn repeat_after_keeps_a_reported_failure_quiet_until_the_reminder() {
        let p = Policy {
            consecutive_runs: Some(2),
            repeat_after: Some(24 * HOUR),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let mut h = history(&p, &[&[a(1)], &[a(2)]]);
        assert_eq!(
            p.decide(&[a(1), a(2)], Phase::Flush, &facts(&h, at(2), None)),
            send_all(2)
        );
        h.reported([key(&p, &a(2)).key.as_str()], at(2));
        // It keeps failing: quiet for a day…
        let run = h.start_run();
        h.observe(run, &key(&p, &a(3)), W, at(3));
        assert_eq!(
            p.decide(&[a(3)], Phase::Flush, &facts(&h, at(3), Some(at(2)))),
            Decision::Hold {
                waiting_for: WaitingFor::Quiet {
                    label: r#"feed "Radio Café""#.into(),
                    reported: at(2),
                    until: Some(at(26)),
                }
            }
        );
        // …then reminds once the day has passed.
        let run = h.start_run();
        h.observe(run, &key(&p, &a(26)), W, at(26));
        assert_eq!(
            p.decide(
                &[a(3), a(26)],
                Phase::Flush,
                &facts(&h, at(26), Some(at(2)))
            ),
            send_all(2)
        );
    }

    /// Runs one more run that sees `records`, as a flush does.
    fn run_with(p: &Policy, h: &mut History, records: &[Record]) {
        let run = h.start_run();
        for r in records {
            h.observe(run, &key(p, r), r.level, r.timestamp);
        }
    }

    #[test]
    fn consecutive_runs_alone_reports_a_streak_once_until_it_breaks() {
        let p = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let mut h = history(&p, &[&[a(1)], &[a(2)], &[a(3)]]);
        assert_eq!(
            p.decide(&[a(1), a(2), a(3)], Phase::Flush, &facts(&h, at(3), None)),
            send_all(3)
        );
        h.reported([key(&p, &a(3)).key.as_str()], at(3));
        // Runs 4 and 5 still see it: reported once, no email; its records
        // wait.
        for hour in [4, 5] {
            run_with(&p, &mut h, &[a(hour)]);
            assert_eq!(
                p.decide(
                    &[a(4), a(hour)],
                    Phase::Flush,
                    &facts(&h, at(hour), Some(at(3)))
                ),
                Decision::Hold {
                    waiting_for: WaitingFor::Quiet {
                        label: r#"feed "Radio Café""#.into(),
                        reported: at(3),
                        until: None,
                    }
                },
                "run {hour}"
            );
        }
        // A run without it ends the streak; a new one is reported again
        // once it lasts 3 runs.
        run_with(&p, &mut h, &[]);
        for hour in [7, 8] {
            run_with(&p, &mut h, &[a(hour)]);
        }
        assert_eq!(
            p.decide(
                &[a(4), a(5), a(7), a(8)],
                Phase::Flush,
                &facts(&h, at(8), Some(at(3)))
            ),
            streak(Some(r#"feed "Radio Café""#), 2, 3)
        );
        run_with(&p, &mut h, &[a(9)]);
        assert_eq!(
            p.decide(
                &[a(4), a(5), a(7), a(8), a(9)],
                Phase::Flush,
                &facts(&h, at(9), Some(at(3)))
            ),
            send_all(5)
        );
    }

    #[test]
    fn a_failure_that_rode_along_early_is_still_reported_when_it_persists() {
        let p = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let b = |h| feed("Ääniraita", W, h);
        // Radio Café's third run sends Ääniraita's second along.
        let mut h = history(&p, &[&[a(1)], &[a(2), b(2)], &[a(3), b(3)]]);
        assert_eq!(
            p.decide(
                &[a(1), a(2), b(2), a(3), b(3)],
                Phase::Flush,
                &facts(&h, at(3), None)
            ),
            send_all(5)
        );
        h.reported(
            [key(&p, &a(3)).key.as_str(), key(&p, &b(3)).key.as_str()],
            at(3),
        );
        // Ääniraita's third run: reported as failing for 3 runs, once.
        run_with(&p, &mut h, &[a(4), b(4)]);
        assert_eq!(
            p.decide(&[a(4), b(4)], Phase::Flush, &facts(&h, at(4), Some(at(3)))),
            send_all(2)
        );
        h.reported(
            [key(&p, &a(4)).key.as_str(), key(&p, &b(4)).key.as_str()],
            at(4),
        );
        run_with(&p, &mut h, &[a(5), b(5)]);
        assert!(matches!(
            p.decide(&[a(5), b(5)], Phase::Flush, &facts(&h, at(5), Some(at(4)))),
            Decision::Hold {
                waiting_for: WaitingFor::Quiet { until: None, .. }
            }
        ));
    }

    #[test]
    fn a_hold_names_the_rule_closest_to_sending() {
        let a = |h| feed("Radio Café", W, h);
        let b = |h| feed("Ääniraita", W, h);
        let p = Policy {
            threshold: Some((5, W)),
            consecutive_runs: Some(3),
            ..by_feed()
        };
        // 3 of 5 records, 2 of 3 runs: the streak is closer.
        let h = history(&p, &[&[a(1)], &[a(2), b(2)]]);
        assert_eq!(
            p.decide(&[a(1), a(2), b(2)], Phase::Flush, &facts(&h, at(2), None)),
            streak(Some(r#"feed "Radio Café""#), 2, 3)
        );
        // 4 of 5 records, 1 of 3 runs: the threshold is.
        let h = history(&p, &[&[a(1), b(1), feed("x", W, 1), feed("y", E, 1)]]);
        let pending = [a(1), b(1), feed("x", W, 1), feed("y", E, 1)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(1), None)),
            th(4, 5, W)
        );
        // No failure in this run: the streak rule says so.
        let p = Policy {
            consecutive_runs: Some(3),
            ..by_feed()
        };
        let h = history(&p, &[&[a(1)], &[]]);
        assert_eq!(
            p.decide(
                &[a(1), feed("x", I, 2)],
                Phase::Flush,
                &facts(&h, at(2), None)
            ),
            streak(None, 0, 3)
        );
    }

    #[test]
    fn waiting_for_says_what_the_rule_waits_for_in_its_own_terms() {
        let t = |h: i64| at(24 * 365 * 57 + h);
        let cases = [
            (
                WaitingFor::Threshold {
                    counted: 3,
                    needed: 5,
                    level: W,
                },
                "3 of the 5 warnings or errors needed".to_owned(),
            ),
            (
                WaitingFor::Threshold {
                    counted: 0,
                    needed: 2,
                    level: I,
                },
                "0 of the 2 records at INFO or above needed".to_owned(),
            ),
            (
                WaitingFor::Streak {
                    label: Some(r#"url "b.json""#.into()),
                    runs: 2,
                    needed: 3,
                    level: W,
                },
                r#"url "b.json" failed 2 of the 3 runs in a row needed"#.to_owned(),
            ),
            // A failure labelled by its message: quoted, not "feed failed
            // failed".
            (
                WaitingFor::Streak {
                    label: Some("feed failed".into()),
                    runs: 1,
                    needed: 3,
                    level: W,
                },
                r#""feed failed" seen in 1 of the 3 runs in a row needed"#.to_owned(),
            ),
            (
                WaitingFor::Streak {
                    label: None,
                    runs: 0,
                    needed: 3,
                    level: E,
                },
                "no failure (errors) in this run; one in 3 runs in a row is needed".to_owned(),
            ),
            (
                WaitingFor::Quiet {
                    label: r#"url "b.json""#.into(),
                    reported: t(7),
                    until: Some(t(31)),
                },
                format!(
                    r#"url "b.json" reported at {}, quiet until {} (repeat_after)"#,
                    crate::capture::record::utc_time(t(7)),
                    crate::capture::record::utc_time(t(31))
                ),
            ),
            (
                WaitingFor::Quiet {
                    label: "disk almost full".into(),
                    reported: t(7),
                    until: None,
                },
                format!(
                    "disk almost full reported at {}, quiet until a run without it \
                     (consecutive_runs reports a failure once; repeat_after brings reminders)",
                    crate::capture::record::utc_time(t(7))
                ),
            ),
            (
                WaitingFor::Batch {
                    counted: 7,
                    size: 10,
                },
                "7 of the 10 records a batch needs".to_owned(),
            ),
            (
                WaitingFor::Level { level: E },
                "no record at ERROR or above (immediately_at)".to_owned(),
            ),
            (
                WaitingFor::Age {
                    since: t(0),
                    sends_at: t(24),
                },
                format!(
                    "the oldest counted record is from {}; max_age sends it at a flush from {} on",
                    crate::capture::record::utc_time(t(0)),
                    crate::capture::record::utc_time(t(24))
                ),
            ),
        ];
        for (waiting, text) in cases {
            assert_eq!(waiting.to_string(), text);
        }
        assert!(
            crate::capture::record::utc_time(t(7)).ends_with(" UTC"),
            "times say their zone"
        );
    }

    #[test]
    fn a_quiet_failure_rides_along_when_another_triggers() {
        let p = Policy {
            consecutive_runs: Some(2),
            repeat_after: Some(24 * HOUR),
            ..by_feed()
        };
        let a = |h| feed("Radio Café", W, h);
        let b = |h| feed("Ääniraita", W, h);
        let mut h = history(&p, &[&[a(1)], &[a(2), b(2)]]);
        h.reported([key(&p, &a(2)).key.as_str()], at(2));
        let run = h.start_run();
        h.observe(run, &key(&p, &a(3)), W, at(3));
        h.observe(run, &key(&p, &b(3)), W, at(3));
        // Ääniraita's second run triggers; Radio Café's records go too.
        assert_eq!(
            p.decide(&[a(3), b(3)], Phase::Flush, &facts(&h, at(3), Some(at(2)))),
            send_all(2)
        );
    }

    #[test]
    fn repeat_after_also_quiets_threshold_and_immediately_at() {
        let a = |h| feed("Radio Café", E, h);
        let base = Policy {
            repeat_after: Some(24 * HOUR),
            ..by_feed()
        };
        let mut h = history(&base, &[&[a(1)]]);
        h.reported([key(&base, &a(1)).key.as_str()], at(1));
        let f = facts(&h, at(2), Some(at(1)));
        for p in [
            Policy {
                threshold: Some((1, W)),
                ..base.clone()
            },
            Policy {
                immediately_at: Some(E),
                ..base.clone()
            },
        ] {
            assert_eq!(
                p.decide(&[a(2)], Phase::Flush, &f),
                Decision::Hold {
                    waiting_for: WaitingFor::Quiet {
                        label: r#"feed "Radio Café""#.into(),
                        reported: at(1),
                        until: Some(at(25)),
                    }
                },
                "{p:?}"
            );
        }
        // A different failure is not quiet.
        let other = feed("Ääniraita", E, 2);
        let p = Policy {
            immediately_at: Some(E),
            ..base.clone()
        };
        assert_eq!(p.decide(&[a(2), other], Phase::Flush, &f), send_all(2));
    }

    #[test]
    fn min_interval_makes_any_send_wait() {
        let hold_until = at(1) + time::Duration::hours(2);
        for p in [
            Policy {
                threshold: Some((1, W)),
                ..Policy::default()
            },
            Policy {
                immediately_at: Some(W),
                ..Policy::default()
            },
            Policy {
                batch: Some(1),
                ..Policy::default()
            },
        ] {
            let p = Policy {
                min_interval: Some(2 * HOUR),
                ..p
            };
            let h = History::default();
            let pending = [feed("x", W, 2)];
            assert_eq!(
                p.decide(&pending, Phase::Flush, &facts(&h, at(2), Some(at(1)))),
                Decision::Wait { until: hold_until },
                "{p:?}"
            );
            assert!(matches!(
                p.decide(&pending, Phase::Flush, &facts(&h, at(3), Some(at(1)))),
                Decision::Send { .. }
            ));
            // Never sent before: no wait.
            assert!(matches!(
                p.decide(&pending, Phase::Flush, &facts(&h, at(2), None)),
                Decision::Send { .. }
            ));
        }
        // During the run, batches wait too.
        let p = Policy {
            batch: Some(1),
            min_interval: Some(2 * HOUR),
            ..Policy::default()
        };
        let h = History::default();
        assert_eq!(
            p.decide(
                &[feed("x", I, 2)],
                Phase::Run,
                &facts(&h, at(2), Some(at(1)))
            ),
            Decision::Wait { until: hold_until }
        );
    }

    /// Times from the edges of what a state file can hold (RFC 3339: years
    /// 0000 to 9999, offsets up to ±23:59) and a few ordinary ones.
    pub(crate) fn extreme_times() -> Vec<T> {
        use time::format_description::well_known::Rfc3339;
        [
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00+23:59",
            "0000-01-01T00:00:00-23:59",
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00Z",
            "2026-11-22T04:00:00.5+02:00",
            "2099-01-01T00:00:00Z",
            "9999-12-31T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59.999999999+23:59",
            "9999-12-31T23:59:59.999999999-23:59",
        ]
        .iter()
        .map(|s| T::parse(s, &Rfc3339).unwrap())
        .collect()
    }

    /// Durations from a nanosecond to the largest there is.
    pub(crate) fn extreme_durations() -> Vec<Duration> {
        vec![
            Duration::from_nanos(1),
            Duration::from_secs(1),
            HOUR,
            crate::settings::TEN_YEARS,
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ]
    }

    #[test]
    fn a_last_sent_near_year_9999_plus_min_interval_waits_without_overflow() {
        let last = T::parse(
            "9999-12-31T23:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let p = Policy {
            threshold: Some((1, W)),
            min_interval: Some(2 * HOUR),
            ..Policy::default()
        };
        let h = History::default();
        let pending = [feed("x", W, 0)];
        for now in [at(0), last] {
            assert_eq!(
                p.decide(&pending, Phase::Flush, &facts(&h, now, Some(last))),
                Decision::Wait {
                    until: crate::clock::LATEST
                },
                "{now}"
            );
        }
        // A clock at the very end: the wait is over.
        assert_eq!(
            p.decide(
                &pending,
                Phase::Flush,
                &facts(&h, crate::clock::LATEST, Some(last))
            ),
            send_all(1)
        );
    }

    #[test]
    fn no_time_and_no_duration_makes_the_policy_panic() {
        let mut decisions = 0;
        for &when in &extreme_times() {
            for &d in &extreme_durations() {
                let p = Policy {
                    threshold: Some((1, W)),
                    consecutive_runs: Some(2),
                    repeat_after: Some(d),
                    min_interval: Some(d),
                    max_age: Some(d),
                    ..by_feed()
                };
                let mut r = feed("Radio Café", W, 0);
                r.timestamp = when;
                let mut h = history(&p, &[&[r.clone()], &[r.clone()]]);
                h.reported([key(&p, &r).key.as_str()], when);
                for &now in &extreme_times() {
                    for last_sent in [None, Some(when)] {
                        let f = facts(&h, now, last_sent);
                        for phase in [Phase::Run, Phase::Flush, Phase::Checkpoint] {
                            let _ = p.decide(std::slice::from_ref(&r), phase, &f);
                            decisions += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(decisions, 11 * 7 * 11 * 2 * 3);
    }

    #[test]
    fn once_times_ahead_are_taken_as_now_nothing_waits_longer_than_its_rule() {
        // Any state file time, any clock, any duration: after the flush's
        // clamp, a wait ends at most `min_interval` from now, a reported
        // failure is quiet at most `repeat_after` from now, and a record
        // counts for `max_age` as if logged now at the latest.
        for &when in &extreme_times() {
            for &now in &extreme_times() {
                for &d in &extreme_durations() {
                    let p = Policy {
                        threshold: Some((1, W)),
                        repeat_after: Some(d),
                        min_interval: Some(d),
                        ..by_feed()
                    };
                    let mut r = feed("Radio Café", W, 0);
                    r.timestamp = when;
                    let mut state = crate::store::state::State {
                        pending: vec![r.clone()],
                        last_sent: Some(when),
                        history: history(&p, &[&[r.clone()]]),
                        ..Default::default()
                    };
                    state.history.reported([key(&p, &r).key.as_str()], when);
                    state.clamp_future_from(now, 0);
                    assert!(state.last_sent <= Some(now));
                    assert!(state.pending[0].timestamp <= now);
                    let f = facts(&state.history, now, state.last_sent);
                    let latest = now.checked_add(to_time(d)).unwrap_or(crate::clock::LATEST);
                    match p.decide(&state.pending, Phase::Flush, &f) {
                        Decision::Wait { until } => {
                            assert!(until <= latest, "{when} {now} {d:?}: {until}")
                        }
                        Decision::Send { .. } | Decision::Hold { .. } => {}
                        Decision::Nothing => panic!("a record is pending"),
                    }
                    // One duration later by the clock, nothing holds back.
                    if let Some(later) = now.checked_add(to_time(d)) {
                        if later > crate::clock::LATEST {
                            continue;
                        }
                        let f = facts(&state.history, later, state.last_sent);
                        assert!(
                            matches!(
                                p.decide(&state.pending, Phase::Flush, &f),
                                Decision::Send { .. }
                            ),
                            "{when} {now} {d:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn max_age_counts_a_record_from_the_future_once_it_is_taken_as_now() {
        let p = Policy {
            threshold: Some((5, W)),
            max_age: Some(24 * HOUR),
            ..Policy::default()
        };
        let h = History::default();
        let mut state = crate::store::state::State {
            pending: vec![feed("x", W, 24 * 365 * 80)], // logged "in 2049"
            ..Default::default()
        };
        assert_eq!(state.clamp_future_from(at(0), 0), ["pending.time"]);
        assert!(matches!(
            p.decide(&state.pending, Phase::Flush, &facts(&h, at(23), None)),
            Decision::Hold { .. }
        ));
        assert_eq!(
            p.decide(&state.pending, Phase::Flush, &facts(&h, at(24), None)),
            send_all(1)
        );
    }

    #[test]
    fn max_age_sends_a_slow_trickle_eventually() {
        let p = Policy {
            threshold: Some((5, W)),
            max_age: Some(24 * HOUR),
            ..Policy::default()
        };
        let h = History::default();
        let pending = [feed("x", W, 0), feed("y", I, 0)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(23), None)),
            Decision::Hold {
                waiting_for: WaitingFor::Age {
                    since: at(0),
                    sends_at: at(24),
                }
            }
        );
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(24), None)),
            send_all(2)
        );
        // An old record below the level does not count.
        let pending = [feed("y", I, 0)];
        assert_eq!(
            p.decide(&pending, Phase::Flush, &facts(&h, at(48), None)),
            th(0, 5, W)
        );
        // Only at a flush.
        assert!(matches!(
            p.decide(&[feed("x", W, 0)], Phase::Run, &facts(&h, at(48), None)),
            Decision::Hold { .. }
        ));
    }

    #[test]
    fn rules_combine_any_met_rule_sends() {
        let a = |h| feed("Radio Café", W, h);
        // threshold + consecutive_runs: either is enough.
        let p = Policy {
            threshold: Some((3, W)),
            consecutive_runs: Some(2),
            ..by_feed()
        };
        let h = history(&p, &[&[a(1)], &[a(2)]]);
        assert_eq!(
            p.decide(&[a(1), a(2)], Phase::Flush, &facts(&h, at(2), None)),
            send_all(2)
        );
        let b = |h| feed("Ääniraita", W, h);
        let c = |h| feed("ポッドキャスト", W, h);
        let h = history(&p, &[&[a(1), b(1), c(1)]]);
        assert_eq!(
            p.decide(&[a(1), b(1), c(1)], Phase::Flush, &facts(&h, at(1), None)),
            send_all(3)
        );
        // batch + consecutive_runs: full batches go; the rest waits for the streak.
        let p = Policy {
            batch: Some(2),
            consecutive_runs: Some(2),
            ..by_feed()
        };
        let h = history(&p, &[&[a(1), b(1), c(1)]]);
        assert_eq!(
            p.decide(&[a(1), b(1), c(1)], Phase::Flush, &facts(&h, at(1), None)),
            Decision::Send { records: 2 }
        );
        // max_age + consecutive_runs + min_interval: the age triggers, the
        // interval still rules.
        let p = Policy {
            consecutive_runs: Some(5),
            max_age: Some(HOUR),
            min_interval: Some(4 * HOUR),
            ..by_feed()
        };
        let h = history(&p, &[&[a(1)]]);
        assert_eq!(
            p.decide(&[a(1)], Phase::Flush, &facts(&h, at(3), Some(at(1)))),
            Decision::Wait { until: at(5) }
        );
        assert_eq!(
            p.decide(&[a(1)], Phase::Flush, &facts(&h, at(5), Some(at(1)))),
            send_all(1)
        );
    }

    /// A history with one recovery notice due (the feed failed three runs,
    /// was reported, and the fourth ended without it).
    fn with_resolved() -> History {
        let p = by_feed();
        let mut h = history(
            &p,
            &[&[feed("a", W, 1)], &[feed("a", W, 2)], &[feed("a", W, 3)]],
        );
        h.reported([key(&p, &feed("a", W, 3)).key.as_str()], at(3));
        let run = h.start_run();
        assert!(h.end_run(run, 3));
        h
    }

    #[test]
    fn recovery_notices_go_at_a_flush_with_a_digest_or_alone_under_min_interval() {
        let due = with_resolved();
        let none = history(&by_feed(), &[&[feed("a", W, 1)]]);
        let send = Decision::Send { records: 1 };
        let hold = Decision::Hold {
            waiting_for: WaitingFor::Threshold {
                counted: 0,
                needed: 5,
                level: W,
            },
        };
        let wait = Decision::Wait { until: at(9) };
        let decisions = [Decision::Nothing, hold, wait, send];
        for interval in [None, Some(2 * HOUR)] {
            let p = Policy {
                min_interval: interval,
                ..by_feed()
            };
            for last_sent in [None, Some(at(3)), Some(at(1))] {
                for phase in [Phase::Run, Phase::Flush, Phase::Checkpoint] {
                    for decision in &decisions {
                        for notify in [false, true] {
                            for h in [&due, &none] {
                                let f = facts(h, at(4), last_sent);
                                let got = p.recovery(notify, phase, decision, &f);
                                let too_recent = interval.is_some() && last_sent == Some(at(3));
                                let expected =
                                    if !notify || h.resolved.is_empty() || phase != Phase::Flush {
                                        Recovery::Nothing
                                    } else {
                                        match decision {
                                            Decision::Send { .. } => Recovery::WithDigest,
                                            Decision::Wait { until } => {
                                                Recovery::Wait { until: *until }
                                            }
                                            _ if too_recent => Recovery::Wait { until: at(5) },
                                            _ => Recovery::Alone,
                                        }
                                    };
                                assert_eq!(
                                    got, expected,
                                    "{interval:?} {last_sent:?} {phase:?} {decision:?} {notify}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // A last email near the end of time waits until then, not overflow.
        let p = Policy {
            min_interval: Some(HOUR),
            ..by_feed()
        };
        let f = facts(&due, at(4), Some(crate::clock::LATEST));
        assert_eq!(
            p.recovery(true, Phase::Flush, &Decision::Nothing, &f),
            Recovery::Wait {
                until: crate::clock::LATEST
            }
        );
    }

    /// A small seeded generator (xorshift64*), for the random states below.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
        }

        fn maybe<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
            (self.below(2) == 0).then(|| value(self))
        }

        fn level(&mut self) -> Level {
            [Level::TRACE, D, I, W, E][self.below(5) as usize]
        }
    }

    /// The tally's decision is the decision made from scratch over every
    /// record, for any policy, records, history and time: random states
    /// from a fixed seed, the tally fed in chunks as flushes feed it.
    #[test]
    fn the_tally_decides_as_a_scan_of_every_record_does() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4000 {
            let level = rng.level();
            let p = Policy {
                threshold: rng.maybe(|r| (1 + r.below(6) as usize, level)),
                immediately_at: rng.maybe(Rng::level),
                consecutive_runs: rng.maybe(|r| 1 + r.below(3)),
                repeat_after: rng.maybe(|r| HOUR * (1 + r.below(48) as u32)),
                max_age: rng.maybe(|r| HOUR * (1 + r.below(48) as u32)),
                batch: if rng.below(4) == 0 {
                    Some(1 + rng.below(5) as usize)
                } else {
                    None
                },
                min_interval: rng.maybe(|r| HOUR * r.below(4) as u32),
                fingerprint_fields: if rng.below(2) == 0 {
                    vec!["feed".into()]
                } else {
                    Vec::new()
                },
                ..Policy::default()
            };
            let mut h = History::default();
            let mut pending = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let run = h.start_run();
                for _ in 0..rng.below(8) {
                    let name = ["Radio Café", "Ääniraita", "ポッドキャスト"][rng.below(3) as usize];
                    let mut r = feed(name, rng.level(), rng.below(72) as i64);
                    if rng.below(2) == 0 {
                        r.message = "feed timed out".into();
                    }
                    if severity(r.level) >= severity(p.level()) {
                        h.observe(run, &key(&p, &r), r.level, r.timestamp);
                    }
                    pending.push(r);
                }
                if rng.below(2) == 0 && !pending.is_empty() {
                    let r = &pending[rng.below(pending.len() as u64) as usize];
                    h.reported([key(&p, r).key.as_str()], at(rng.below(72) as i64));
                }
            }
            let now = at(rng.below(100) as i64);
            let last_sent = rng.maybe(|r| at(r.below(100) as i64));
            let f = facts(&h, now, last_sent);
            let mut tally = Tally::default();
            while tally.len() < pending.len() {
                let end = (tally.len() + 1 + rng.below(4) as usize).min(pending.len());
                let from = tally.len();
                tally.extend(&p, &pending[from..end]);
            }
            for phase in [Phase::Run, Phase::Flush, Phase::Checkpoint] {
                let expected = p.decide_scan(&pending, phase, &f);
                assert_eq!(
                    p.decide_tally(&tally, phase, &f),
                    expected,
                    "{p:?} {phase:?} at {now} over {pending:#?} with {h:#?}"
                );
                let kind = match expected {
                    Decision::Hold { waiting_for: w } => format!("{w:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_owned(),
                    other => format!("{other:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_owned(),
                };
                seen.insert(kind);
            }
        }
        // Every kind of decision was compared.
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                "Age",
                "Batch",
                "Level",
                "Nothing",
                "Quiet",
                "Send",
                "Streak",
                "Threshold",
                "Wait"
            ]
        );
    }
}
