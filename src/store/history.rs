//! What the state file remembers across runs beyond the pending records:
//! how many runs there were and when the recent ones started (how often the
//! app runs: the Alertmanager resolve window's default), and for each
//! fingerprint (one kind of failure) how many consecutive runs saw it and
//! when it was last reported, which of
//! the recent runs saw it (the digest's strip), and the reported failures
//! that are over and not yet said to be (`notify_recovery`). Pure data:
//! updated by the flush under the state lock, read by the policy.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::{Record, severity};
use crate::say::cut;

/// Beyond it, the fingerprints seen longest ago are forgotten first.
pub(crate) const MAX_STREAKS: usize = 1000;

pub(crate) use crate::capture::record::Fingerprint;

fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
thread_local! {
    pub(crate) static COMPUTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Kept with the record (in memory only): a record's identifying parts do not
/// change once captured. Everything that needs a fingerprint goes through here.
pub(crate) fn fingerprint_of<'r>(record: &'r Record, fields: &[String]) -> Cow<'r, Fingerprint> {
    let of = fnv1a(fields.iter().map(String::as_str));
    let (kept_for, kept) = &**record
        .memo
        .0
        .get_or_init(|| Box::new((of, fingerprint(record, fields))));
    if *kept_for == of {
        Cow::Borrowed(kept)
    } else {
        // Asked under other fields than the first time (not done by the
        // crate, whose flush and inspection each use one policy's fields).
        Cow::Owned(fingerprint(record, fields))
    }
}

/// Computes it anew: use [`fingerprint_of`].
pub(crate) fn fingerprint(record: &Record, fields: &[String]) -> Fingerprint {
    #[cfg(test)]
    COMPUTED.with(|n| n.set(n.get() + 1));
    let line = record.line.map(|l| l.to_string()).unwrap_or_default();
    let file = record.file.as_deref().unwrap_or("");
    let chosen: Vec<(&str, String)> = fields
        .iter()
        .filter_map(|name| {
            let value = field_value(record, name)?;
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            Some((name.as_str(), text))
        })
        .collect();
    let mut parts: Vec<&str> = vec![&record.target, file, &line];
    let label = if chosen.is_empty() {
        parts.push(&record.message);
        cut(&record.message, 80)
    } else {
        for (name, value) in &chosen {
            parts.extend([*name, value.as_str()]);
        }
        let labels: Vec<String> = chosen.iter().map(|(n, v)| format!("{n} {v:?}")).collect();
        labels.join(", ")
    };
    Fingerprint {
        key: format!("{:016x}", fnv1a(parts)),
        label,
    }
}

/// The event's own field, else the innermost span's (`#[instrument]` arguments).
pub(crate) fn field_value<'r>(record: &'r Record, name: &str) -> Option<&'r serde_json::Value> {
    record
        .fields
        .get(name)
        .or_else(|| record.spans.iter().rev().find_map(|s| s.fields.get(name)))
}

/// The bits of a [`Recent`] mask; a fingerprint not seen for that long is forgotten.
pub(crate) const RECENT_RUNS: u64 = 64;

pub(crate) const STRIP_RUNS: usize = 24;

pub(crate) const RUN_STARTS: usize = 16;

/// Updated with the streaks, so replaying the journal rebuilds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recent {
    pub(crate) run: u64,
    pub(crate) seen: u64,
}

/// A reported failure that a run ended without, its recovery notice not yet sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Resolved {
    pub(crate) key: String,
    pub(crate) label: String,
    #[serde(with = "crate::capture::record::level_serde")]
    pub(crate) level: Level,
    pub(crate) runs: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) last_seen: OffsetDateTime,
    pub(crate) run: u64,
}

/// One failure the state file follows across runs (one fingerprint: a
/// callsite and message, or a callsite and the values of the
/// `fingerprint_fields`), with its streak, as the state file keeps it.
/// Read-only; [`Snapshot::failures`](crate::inspect::Snapshot::failures) lists them.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
/// for f in &snapshot.failures {
///     match (f.reported, f.quiet_until) {
///         (None, _) => println!("{}: {} runs, not reported yet", f.label, f.runs),
///         (Some(at), Some(until)) => println!("{}: reported at {at}, quiet until {until}", f.label),
///         (Some(at), None) => println!("{}: reported at {at}", f.label),
///     }
/// }
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// What a person reads: `url "b.json"`, or the message.
    pub label: String,
    /// The most severe level it was seen at during this streak.
    #[serde(with = "crate::capture::record::level_serde")]
    pub level: Level,
    /// Consecutive runs that saw it, up to `last_run`.
    pub runs: u64,
    /// The last run that saw it. When it is not the state file's last run,
    /// the streak is over: the next run that sees it starts a new one.
    pub last_run: u64,
    /// When this streak's first record was logged.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When its latest record was logged.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// When a digest holding it was last sent, during this streak.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub reported: Option<OffsetDateTime>,
    /// A streak counts as reported for `consecutive_runs(k)` only once it went out
    /// at `k` runs or more, not when it merely rode along earlier.
    #[serde(default)]
    pub(crate) reported_runs: u64,
    /// Whether the policy keeps it from triggering an email now because it
    /// was reported (`repeat_after` not passed yet, or `consecutive_runs`
    /// without `repeat_after`, which reports a streak once). Known only for
    /// a snapshot taken with a policy; not kept in the state file.
    #[serde(skip)]
    pub quiet: bool,
    /// Until when it stays quiet (`repeat_after`); `None` while `quiet`
    /// means until a run without it ends the streak.
    #[serde(skip)]
    pub quiet_until: Option<OffsetDateTime>,
}

/// The history's name for a [`Failure`]: its quiet fields are filled only when inspected.
pub(crate) type Streak = Failure;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct History {
    pub(crate) runs: u64,
    /// Absent from older files (read as none); none for a run registered without a
    /// clock (the panic hook's checkpoint).
    #[serde(skip_serializing_if = "Vec::is_empty", with = "times")]
    pub(crate) run_starts: Vec<OffsetDateTime>,
    pub(crate) streaks: BTreeMap<String, Streak>,
    /// Absent from older files: read as none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) recent: BTreeMap<String, Recent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) resolved: Vec<Resolved>,
}

mod times {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use time::OffsetDateTime;

    #[derive(Serialize, Deserialize)]
    struct Rfc3339(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

    pub(super) fn serialize<S: Serializer>(
        times: &[OffsetDateTime],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(times.iter().map(|&t| Rfc3339(t)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<OffsetDateTime>, D::Error> {
        Ok(Vec::<Rfc3339>::deserialize(d)?
            .into_iter()
            .map(|t| t.0)
            .collect())
    }
}

impl History {
    #[cfg(test)]
    pub(crate) fn start_run(&mut self) -> u64 {
        self.start_run_at(None)
    }

    /// Streaks that missed the run before are over; a counter at `u64::MAX` is renumbered first.
    pub(crate) fn start_run_at(&mut self, at: Option<OffsetDateTime>) -> u64 {
        self.run_starts.extend(at);
        let excess = self.run_starts.len().saturating_sub(RUN_STARTS);
        self.run_starts.drain(..excess);
        let last = self.runs;
        renumber(&mut self.streaks, last, |s| &mut s.last_run);
        renumber(&mut self.recent, last, |r| &mut r.run);
        if last == u64::MAX {
            self.runs = 2;
        }
        self.runs += 1;
        let run = self.runs;
        self.streaks
            .retain(|_, s| s.last_run.saturating_add(1) >= run);
        self.recent.retain(|_, r| run - r.run < RECENT_RUNS);
        run
    }

    /// Observing the same run again changes only the times and level.
    pub(crate) fn observe(
        &mut self,
        run: u64,
        fingerprint: &Fingerprint,
        level: Level,
        time: OffsetDateTime,
    ) {
        self.note_recent(run, &fingerprint.key);
        // Failing again before its recovery was said: no longer over.
        self.resolved.retain(|r| r.key != fingerprint.key);
        match self.streaks.get_mut(&fingerprint.key) {
            Some(s) if s.last_run == run || s.last_run.checked_add(1) == Some(run) => {
                if s.last_run != run {
                    s.runs = s.runs.saturating_add(1);
                    s.last_run = run;
                }
                s.level = std::cmp::max_by_key(s.level, level, |l| severity(*l));
                s.last_seen = s.last_seen.max(time);
            }
            _ => {
                let streak = Streak {
                    label: fingerprint.label.clone(),
                    level,
                    runs: 1,
                    last_run: run,
                    since: time,
                    last_seen: time,
                    reported: None,
                    reported_runs: 0,
                    quiet: false,
                    quiet_until: None,
                };
                self.streaks.insert(fingerprint.key.clone(), streak);
                forget_oldest(&mut self.streaks, |s| (s.last_run, s.last_seen));
            }
        }
    }

    fn note_recent(&mut self, run: u64, key: &str) {
        match self.recent.get_mut(key) {
            Some(r) if run >= r.run => {
                // Past the mask's RECENT_RUNS bits, none is left.
                let shift = u32::try_from(run - r.run).unwrap_or(u32::MAX);
                r.seen = r.seen.checked_shl(shift).unwrap_or(0) | 1;
                r.run = run;
            }
            Some(r) => {
                // An earlier run (a record parked or replayed late).
                if r.run - run < RECENT_RUNS {
                    r.seen |= 1 << (r.run - run);
                }
            }
            None => {
                self.recent.insert(key.to_owned(), Recent { run, seen: 1 });
                forget_oldest(&mut self.recent, |r| r.run);
            }
        }
    }

    /// Oldest first; `None` when no recent run saw `key`.
    pub(crate) fn recent_runs(&self, key: &str, count: usize) -> Option<Vec<bool>> {
        let r = self.recent.get(key)?;
        let count = (count as u64).min(self.runs).min(RECENT_RUNS);
        let seen =
            |run| run <= r.run && r.run - run < RECENT_RUNS && (r.seen >> (r.run - run)) & 1 == 1;
        Some((0..count).rev().map(|i| seen(self.runs - i)).collect())
    }

    /// Failures reported while `persisting` runs long that this run did not see move
    /// to [`resolved`](History::resolved); shorter ones that rode along get no notice.
    pub(crate) fn end_run(&mut self, run: u64, persisting: u64) -> bool {
        let (over, kept): (BTreeMap<_, _>, _) = std::mem::take(&mut self.streaks)
            .into_iter()
            .partition(|(_, s)| {
                s.reported.is_some() && s.reported_runs >= persisting && s.last_run < run
            });
        self.streaks = kept;
        let any = !over.is_empty();
        for (key, s) in over {
            self.resolved.retain(|r| r.key != key);
            self.resolved.push(Resolved {
                key,
                label: s.label,
                level: s.level,
                runs: s.runs,
                since: s.since,
                last_seen: s.last_seen,
                run,
            });
        }
        let excess = self.resolved.len().saturating_sub(MAX_STREAKS);
        self.resolved.drain(..excess);
        any
    }

    pub(crate) fn reported<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
        now: OffsetDateTime,
    ) {
        for key in keys {
            if let Some(s) = self.streaks.get_mut(key) {
                s.reported = Some(now);
                s.reported_runs = s.runs;
            }
        }
    }
}

/// Runs past `last` become `last`; at the counter's end, renumbers from 2 (the last two runs).
fn renumber<V>(map: &mut BTreeMap<String, V>, last: u64, run: impl Fn(&mut V) -> &mut u64) {
    map.retain(|_, v| {
        let run = run(v);
        *run = (*run).min(last);
        last < u64::MAX || *run >= last - 1
    });
    if last == u64::MAX {
        for v in map.values_mut() {
            let run = run(v);
            *run = 2 - (last - *run);
        }
    }
}

fn forget_oldest<V, A: Ord>(map: &mut BTreeMap<String, V>, age: impl Fn(&V) -> A) {
    while map.len() > MAX_STREAKS {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| age(v))
            .map(|(k, _)| k.clone());
        map.remove(&oldest.unwrap_or_default()); // Some: the map is not empty
    }
}

/// `last 6 runs, oldest first: ✓✓✗✗✗✗`, `✗` for a run that saw the failure.
pub(crate) fn strip_text(runs: &[bool]) -> String {
    let last = crate::say::plural(runs.len(), "run", "runs");
    let strip: String = runs.iter().map(|&f| if f { '✗' } else { '✓' }).collect();
    format!("last {last}, oldest first: {strip}")
}

const MAX_CARRIED: usize = 12;

static UNMATCHED_SAID: AtomicBool = AtomicBool::new(false);

/// Once per process.
pub(crate) fn check_fingerprint_fields(
    records: &[Record],
    fields: &[String],
    level: Level,
    history: &History,
) {
    if !UNMATCHED_SAID.load(Ordering::Relaxed)
        && let Some(note) = unmatched_fields(records, fields, level, history)
        && !UNMATCHED_SAID.swap(true, Ordering::Relaxed)
    {
        crate::say::say!("{note}");
    }
}

/// When no record at `level` carries any of `fields`: a misspelt name merges
/// failures. E.g. `fingerprint_fields ["URL"]: no record at WARN or above has
/// any of them; they carry: url, status (did you mean "url"?). …`.
pub(crate) fn unmatched_fields(
    records: &[Record],
    fields: &[String],
    level: Level,
    history: &History,
) -> Option<String> {
    let carried = carried_fields(records, fields, level)?;
    // A streak labelled `url "…"` was told apart by one of the fields: they
    // match, only not in these records.
    let told_apart = |s: &Streak| {
        fields
            .iter()
            .any(|f| s.label.starts_with(&format!("{f} \"")))
    };
    if history.streaks.values().any(told_apart) {
        return None;
    }
    let records = if level == Level::ERROR {
        "ERROR record".to_owned()
    } else {
        format!("record at {level} or above")
    };
    Some(format!(
        "fingerprint_fields {fields:?}: no {records} has any of them; {}. Names must match \
         exactly (looked up in each event's fields, then in its spans' fields); until one \
         does, failures are told apart by callsite and message alone, and different failures \
         with the same message count as one.",
        they_carry(fields, &carried)
    ))
}

/// `None` when `fields` is empty, no record is at `level`, or one has one of `fields`.
fn carried_fields<'r>(
    records: &'r [Record],
    fields: &[String],
    level: Level,
) -> Option<Vec<&'r str>> {
    let min = severity(level);
    let mut at_level = records
        .iter()
        .filter(|r| severity(r.level) >= min)
        .peekable();
    if fields.is_empty() || at_level.peek().is_none() {
        return None;
    }
    let mut carried = Vec::new();
    for record in at_level {
        if fields.iter().any(|f| field_value(record, f).is_some()) {
            return None;
        }
        let spans = record.spans.iter().rev().flat_map(|s| s.fields.iter());
        for (name, _) in record.fields.iter().chain(spans) {
            if !carried.contains(&name) {
                carried.push(name);
            }
        }
    }
    Some(carried)
}

/// `they carry: url, status and 3 more (did you mean "url"?)`.
fn they_carry(fields: &[String], carried: &[&str]) -> String {
    if carried.is_empty() {
        return "they carry no fields".to_owned();
    }
    let mut out = format!(
        "they carry: {}",
        carried[..carried.len().min(MAX_CARRIED)].join(", ")
    );
    if carried.len() > MAX_CARRIED {
        let _ = write!(out, " and {} more", carried.len() - MAX_CARRIED);
    }
    let simple = |s: &str| s.to_lowercase().replace(['-', '.'], "_");
    let close: Vec<String> = fields
        .iter()
        .filter_map(|f| carried.iter().find(|c| simple(c) == simple(f)))
        .map(|c| format!("{c:?}"))
        .collect();
    if !close.is_empty() {
        let _ = write!(out, " (did you mean {}?)", close.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use serde_json::json;

    fn clamp_future(h: &mut History, now: OffsetDateTime) -> Vec<&'static str> {
        let history = std::mem::take(h);
        let mut state = crate::store::state::State {
            history,
            ..Default::default()
        };
        let moved = state.clamp_future_from(now, 0);
        *h = state.history;
        moved
    }

    fn fp(label: &str) -> Fingerprint {
        Fingerprint {
            key: label.to_owned(),
            label: label.to_owned(),
        }
    }

    const T: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn a_kept_fingerprint_is_read_back_only_for_the_fields_it_was_computed_for() {
        let mut a = record_at(Level::WARN);
        a.message = "feed failed".into();
        a.fields.push("feed".into(), json!("Radio Café"));
        let fields = ["feed".to_owned()];
        COMPUTED.with(|n| n.set(0));
        let first = fingerprint_of(&a, &fields);
        assert!(matches!(first, Cow::Borrowed(_)));
        assert_eq!(*fingerprint_of(&a, &fields), fingerprint(&a, &fields));
        // Under other fields: computed for them, not the one kept.
        assert_eq!(*fingerprint_of(&a, &[]), fingerprint(&a, &[]));
        assert_ne!(fingerprint_of(&a, &[]).key, first.key);
        // Once kept, once by hand; under other fields twice through
        // `fingerprint_of` (never kept) and once by hand.
        assert_eq!(COMPUTED.with(std::cell::Cell::get), 1 + 1 + 2 + 1);
        // Kept in memory only: the record, its copy and its serialised form
        // are as before.
        assert_eq!(a.clone(), a);
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains(&first.key), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), a);
    }

    #[test]
    fn fingerprints_follow_the_callsite_and_message_or_the_chosen_fields() {
        let mut a = record_at(Level::WARN);
        a.message = "feed failed: timed out after 30.2 s".into();
        a.fields.push("feed".into(), json!("Radio Café"));
        let mut b = a.clone();
        b.message = "feed failed: timed out after 31.7 s".into();
        assert_ne!(fingerprint(&a, &[]).key, fingerprint(&b, &[]).key);
        let fields = ["feed".to_owned()];
        assert_eq!(fingerprint(&a, &fields), fingerprint(&b, &fields));
        assert_eq!(fingerprint(&a, &fields).label, r#"feed "Radio Café""#);
        let mut c = a.clone();
        c.fields.set("feed".into(), json!("Ääniraita"));
        assert_ne!(fingerprint(&a, &fields).key, fingerprint(&c, &fields).key);
        let mut elsewhere = a.clone();
        elsewhere.line = Some(99);
        assert_ne!(
            fingerprint(&a, &fields).key,
            fingerprint(&elsewhere, &fields).key
        );
        // Without the field, the message decides.
        let mut plain = record_at(Level::WARN);
        plain.message = "disk almost full".into();
        assert_eq!(fingerprint(&plain, &fields).label, "disk almost full");
        // Stable across processes and versions: a fixed hash.
        assert_eq!(
            fingerprint(&plain, &[]).key,
            fingerprint(&plain.clone(), &[]).key
        );
        assert_eq!(fingerprint(&plain, &[]).key.len(), 16);
    }

    #[test]
    fn fingerprint_fields_are_looked_up_in_the_event_then_its_spans_innermost_first() {
        use crate::capture::record::{Fields, SpanRecord};
        let span = |name: &'static str, feed: &str| {
            std::sync::Arc::new(SpanRecord {
                name: name.into(),
                fields: Fields::from_vec(vec![("feed".into(), json!(feed))]),
            })
        };
        let fields = ["feed".to_owned()];
        let mut a = record_at(Level::WARN);
        a.message = "feed failed".into();
        a.spans = vec![span("run", "outer"), span("fetch", "Radio Café")];
        let mut b = a.clone();
        b.spans = vec![span("run", "outer"), span("fetch", "Ääniraita")];
        assert_eq!(fingerprint(&a, &fields).label, r#"feed "Radio Café""#);
        assert_ne!(fingerprint(&a, &fields).key, fingerprint(&b, &fields).key);
        // The event's own field comes first.
        a.fields.push("feed".into(), json!("own"));
        assert_eq!(fingerprint(&a, &fields).label, r#"feed "own""#);
        // A span field is a match: no note.
        assert_eq!(
            unmatched_fields(&[b], &fields, Level::WARN, &History::default()),
            None
        );
    }

    #[test]
    fn a_streak_grows_run_after_run_and_breaks_on_a_run_without_it() {
        let mut h = History::default();
        let feed = fp("feed");
        for expected in 1..=3 {
            let run = h.start_run();
            h.observe(run, &feed, Level::WARN, T);
            h.observe(run, &feed, Level::WARN, T); // twice in one run: once
            assert_eq!(h.streaks["feed"].runs, expected);
        }
        h.start_run(); // a run without it
        let run = h.start_run();
        assert!(
            !h.streaks.contains_key("feed"),
            "broken by the run without it"
        );
        h.observe(run, &feed, Level::ERROR, T);
        assert_eq!(h.streaks["feed"].runs, 1);
        assert_eq!(h.streaks["feed"].level, Level::ERROR);
    }

    #[test]
    fn reported_is_kept_while_the_streak_lasts_and_forgotten_with_it() {
        let mut h = History::default();
        let feed = fp("feed");
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        h.reported(["feed"], T);
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        assert_eq!(h.streaks["feed"].reported, Some(T));
        assert_eq!(
            h.streaks["feed"].reported_runs, 1,
            "as long as when reported"
        );
        h.start_run();
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        assert_eq!(h.streaks["feed"].reported, None);
    }

    /// A record at `level` with these fields.
    fn with_fields(level: Level, fields: &[(&str, serde_json::Value)]) -> Record {
        let mut r = record_at(level);
        r.message = "fetch failed".into();
        for (name, value) in fields {
            r.fields.push((*name).to_owned().into(), value.clone());
        }
        r
    }

    #[test]
    fn fingerprint_fields_that_no_record_has_are_named_with_those_it_has() {
        let fields = ["URL".to_owned()];
        let rs = [
            with_fields(
                Level::WARN,
                &[("url", json!("a.json")), ("status", json!(500))],
            ),
            with_fields(
                Level::ERROR,
                &[("url", json!("b.json")), ("error", json!("x"))],
            ),
            with_fields(Level::INFO, &[("elapsed_ms", json!(3))]),
        ];
        let h = History::default();
        let note = unmatched_fields(&rs, &fields, Level::WARN, &h).unwrap();
        assert_eq!(
            note,
            "fingerprint_fields [\"URL\"]: no record at WARN or above has any of them; they \
             carry: url, status, error (did you mean \"url\"?). Names must match exactly (looked \
             up in each event's fields, then in its spans' fields); until one does, failures \
             are told apart by callsite and message alone, and different failures with the same \
             message count as one."
        );
        // At ERROR, only ERROR records count.
        let note = unmatched_fields(&rs, &fields, Level::ERROR, &h).unwrap();
        assert!(
            note.starts_with(
                "fingerprint_fields [\"URL\"]: no ERROR record has any of them; they carry: url, error (did"
            ),
            "{note}"
        );
        // Records without fields, and a name not close to any.
        let bare = [record_at(Level::WARN)];
        let note = unmatched_fields(&bare, &["feed".into()], Level::WARN, &h).unwrap();
        assert!(note.contains("; they carry no fields. Names"), "{note}");
        let note = unmatched_fields(&rs, &["feed".into()], Level::WARN, &h).unwrap();
        assert!(
            note.contains("they carry: url, status, error. Names"),
            "{note}"
        );
        // Many names: a dozen, then how many more.
        let many: Vec<(String, serde_json::Value)> =
            (0..15).map(|i| (format!("f{i}"), json!(i))).collect();
        let mut r = record_at(Level::WARN);
        for (name, value) in many {
            r.fields.push(name.into(), value);
        }
        let note = unmatched_fields(&[r], &fields, Level::WARN, &h).unwrap();
        assert!(note.contains("f10, f11 and 3 more."), "{note}");
    }

    #[test]
    fn no_note_when_a_field_matches_or_nothing_is_at_the_level() {
        let h = History::default();
        let rs = [
            with_fields(Level::WARN, &[("status", json!(500))]),
            with_fields(Level::WARN, &[("url", json!("a.json"))]),
        ];
        // One record with the field is enough.
        assert_eq!(
            unmatched_fields(&rs, &["url".into()], Level::WARN, &h),
            None
        );
        assert_eq!(
            unmatched_fields(&rs, &["URL".into(), "url".into()], Level::WARN, &h),
            None
        );
        // No fields set, or no record at the level: nothing to say.
        assert_eq!(unmatched_fields(&rs, &[], Level::WARN, &h), None);
        assert_eq!(
            unmatched_fields(&rs, &["URL".into()], Level::ERROR, &h),
            None
        );
        assert_eq!(
            unmatched_fields(&[], &["URL".into()], Level::WARN, &h),
            None
        );
        // A streak told apart by the field: it matched in an earlier run.
        let mut h = History::default();
        let run = h.start_run();
        let url = fingerprint(&rs[1], &["url".into()]);
        h.observe(run, &url, Level::WARN, T);
        assert_eq!(
            unmatched_fields(&rs[..1], &["url".into()], Level::WARN, &h),
            None
        );
        assert!(unmatched_fields(&rs[..1], &["feed".into()], Level::WARN, &h).is_some());
    }

    #[test]
    fn a_run_counter_at_its_end_is_renumbered_and_streaks_go_on() {
        let mut h = History {
            runs: u64::MAX - 1,
            ..History::default()
        };
        let feed = fp("feed");
        let other = fp("other");
        let run = h.start_run();
        assert_eq!(run, u64::MAX);
        h.observe(run, &feed, Level::WARN, T);
        h.observe(run, &other, Level::WARN, T);
        h.observe(run, &feed, Level::WARN, T);
        // The counter cannot grow: renumbered, the streak carries on.
        let run = h.start_run();
        assert!(run < 10, "{run}");
        h.observe(run, &feed, Level::WARN, T);
        assert_eq!(h.streaks["feed"].runs, 2);
        assert_eq!(h.streaks["other"].runs, 1, "seen in the run before");
        for expected in 3..=5 {
            let run = h.start_run();
            h.observe(run, &feed, Level::WARN, T);
            assert_eq!(h.streaks["feed"].runs, expected);
            assert!(
                !h.streaks.contains_key("other"),
                "a run without it broke it"
            );
        }
        // A file whose counter is at the end already, every run after it.
        let mut h = History {
            runs: u64::MAX,
            ..History::default()
        };
        for expected in 1..=3 {
            let run = h.start_run();
            h.observe(run, &feed, Level::WARN, T);
            assert_eq!(h.streaks["feed"].runs, expected);
        }
    }

    #[test]
    fn streak_counts_and_run_numbers_from_a_file_never_overflow() {
        let streak = |runs, last_run| Streak {
            label: "feed".into(),
            level: Level::WARN,
            runs,
            last_run,
            since: T,
            last_seen: T,
            reported: None,
            reported_runs: 0,
            quiet: false,
            quiet_until: None,
        };
        // A streak as long as it can be goes on at that length.
        let mut h = History {
            runs: 7,
            streaks: [("feed".to_owned(), streak(u64::MAX, 7))].into(),
            ..History::default()
        };
        let run = h.start_run();
        h.observe(run, &fp("feed"), Level::WARN, T);
        assert_eq!(h.streaks["feed"].runs, u64::MAX);
        // A streak whose last run lies beyond the counter (a damaged file)
        // is taken as seen in the last run.
        for last_run in [8, u64::MAX - 1, u64::MAX] {
            let mut h = History {
                runs: 7,
                streaks: [("feed".to_owned(), streak(3, last_run))].into(),
                ..History::default()
            };
            let run = h.start_run();
            h.observe(run, &fp("feed"), Level::WARN, T);
            assert_eq!((run, h.streaks["feed"].runs), (8, 4), "{last_run}");
        }
        let mut h = History {
            runs: u64::MAX,
            streaks: [("feed".to_owned(), streak(u64::MAX, u64::MAX))].into(),
            ..History::default()
        };
        let run = h.start_run();
        h.observe(run, &fp("feed"), Level::WARN, T);
        assert_eq!(h.streaks["feed"].runs, u64::MAX);
    }

    #[test]
    fn streak_times_ahead_of_the_clock_are_taken_as_now() {
        use time::macros::datetime;
        let now = datetime!(2026-11-22 04:00 UTC);
        let ahead = datetime!(2099-01-01 00:00 UTC);
        let mut h = History::default();
        let run = h.start_run();
        h.observe(run, &fp("ahead"), Level::WARN, ahead);
        h.observe(run, &fp("fine"), Level::WARN, now);
        h.reported(["ahead"], ahead);
        h.reported(["fine"], now - time::Duration::hours(1));
        let before = h.streaks["fine"].clone();
        assert_eq!(
            clamp_future(&mut h, now),
            [
                "history.streaks.since",
                "history.streaks.last_seen",
                "history.streaks.reported"
            ]
        );
        let s = &h.streaks["ahead"];
        assert_eq!((s.since, s.last_seen, s.reported), (now, now, Some(now)));
        assert_eq!(h.streaks["fine"], before, "times up to now are kept");
        assert!(clamp_future(&mut h, now).is_empty(), "nothing left to move");
        // Only what is ahead is named.
        h.reported(["fine"], ahead);
        assert_eq!(clamp_future(&mut h, now), ["history.streaks.reported"]);
    }

    #[test]
    fn streaks_are_bounded_forgetting_the_oldest_first() {
        let mut h = History::default();
        let run = h.start_run();
        for i in 0..MAX_STREAKS + 5 {
            let t = T + time::Duration::seconds(i as i64);
            h.observe(run, &fp(&format!("{i:05}")), Level::WARN, t);
        }
        assert_eq!(h.streaks.len(), MAX_STREAKS);
        assert!(!h.streaks.contains_key("00000"));
        assert!(h.streaks.contains_key(&format!("{:05}", MAX_STREAKS + 4)));
    }

    /// Runs `pattern` (`x` a run that saw `feed`, `.` one without) and
    /// returns the history.
    fn runs(pattern: &str) -> History {
        let mut h = History::default();
        for c in pattern.chars() {
            let run = h.start_run();
            if c == 'x' {
                h.observe(run, &fp("feed"), Level::WARN, T);
            }
        }
        h
    }

    #[test]
    fn the_strip_shows_which_recent_runs_saw_a_failure() {
        let h = runs("..xx.x");
        assert_eq!(
            h.recent_runs("feed", STRIP_RUNS).unwrap(),
            [false, false, true, true, false, true]
        );
        assert_eq!(
            strip_text(&h.recent_runs("feed", 4).unwrap()),
            "last 4 runs, oldest first: ✗✗✓✗"
        );
        assert_eq!(
            strip_text(&h.recent_runs("feed", 24).unwrap()),
            "last 6 runs, oldest first: ✓✓✗✗✓✗"
        );
        assert_eq!(strip_text(&[true]), "last 1 run, oldest first: ✗");
        // A run without it after the last: a ✓ at the end.
        let h = runs("xxx.");
        assert_eq!(
            strip_text(&h.recent_runs("feed", 24).unwrap()),
            "last 4 runs, oldest first: ✗✗✗✓"
        );
        assert_eq!(h.recent_runs("other", 24), None);
        // Only the last 24 of many runs; a failure forgotten after 64 runs
        // without it.
        let h = runs(&"x.".repeat(20));
        assert_eq!(
            strip_text(&h.recent_runs("feed", STRIP_RUNS).unwrap()),
            format!("last 24 runs, oldest first: {}", "✗✓".repeat(12))
        );
        let h = runs(&format!("x{}", ".".repeat(63)));
        assert_eq!(
            h.recent_runs("feed", 64)
                .unwrap()
                .iter()
                .filter(|b| **b)
                .count(),
            1
        );
        let h = runs(&format!("x{}", ".".repeat(64)));
        assert_eq!(h.recent_runs("feed", 64), None);
        // Bounded like the streaks.
        let mut h = History::default();
        let run = h.start_run();
        for i in 0..MAX_STREAKS + 5 {
            h.observe(run, &fp(&format!("{i:05}")), Level::WARN, T);
        }
        assert_eq!(h.recent.len(), MAX_STREAKS);
    }

    #[test]
    fn the_strip_survives_a_renumbered_run_counter() {
        let mut h = History {
            runs: u64::MAX - 2,
            ..History::default()
        };
        for _ in 0..2 {
            let run = h.start_run();
            h.observe(run, &fp("feed"), Level::WARN, T);
        }
        let run = h.start_run(); // renumbered
        assert!(run < 10);
        h.observe(run, &fp("feed"), Level::WARN, T);
        h.start_run();
        let runs = h.recent_runs("feed", 24).unwrap();
        assert_eq!(runs[runs.len() - 3..], [true, true, false], "{runs:?}");
    }

    #[test]
    fn a_reported_failure_a_run_ends_without_is_resolved_once() {
        let mut h = History::default();
        let feed = fp("feed");
        for _ in 0..3 {
            let run = h.start_run();
            h.observe(run, &feed, Level::ERROR, T);
        }
        assert!(!h.end_run(3, 2), "seen in this run: not over");
        h.reported(["feed"], T);
        // A failure never reported is not said to be over, nor one that
        // rode along in a digest after one run.
        let other = fp("other");
        h.observe(3, &other, Level::WARN, T);
        let rode = fp("rode");
        h.observe(3, &rode, Level::WARN, T);
        h.reported(["rode"], T);
        let run = h.start_run();
        assert!(h.end_run(run, 2));
        assert_eq!(h.resolved.len(), 1);
        let r = &h.resolved[0];
        assert_eq!(
            (r.key.as_str(), r.runs, r.level, r.run),
            ("feed", 3, Level::ERROR, 4)
        );
        assert!(!h.streaks.contains_key("feed"), "its streak is over");
        assert!(!h.end_run(run, 2), "once");
        assert_eq!(h.resolved.len(), 1);
        // Failing again before the notice went out: no longer over.
        let run = h.start_run();
        h.observe(run, &feed, Level::WARN, T);
        assert!(h.resolved.is_empty());
    }

    #[test]
    fn a_history_without_the_new_fields_loads() {
        let json = r#"{"runs":3,"streaks":{}}"#;
        let h: History = serde_json::from_str(json).unwrap();
        assert_eq!(h.runs, 3);
        assert!(h.recent.is_empty() && h.resolved.is_empty());
        // And writes none while they are empty.
        assert_eq!(serde_json::to_string(&h).unwrap(), json);
        let mut h = runs("x.");
        let back: History = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        // Run start times, to the nanosecond, as RFC 3339 like other times.
        let at = time::macros::datetime!(2026-11-22 07:00:00.123_456_789 UTC);
        h.start_run_at(Some(at));
        let json = serde_json::to_string(&h).unwrap();
        assert!(
            json.contains(r#""run_starts":["2026-11-22T07:00:00.123456789Z"]"#),
            "{json}"
        );
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn the_last_run_starts_are_kept_in_order_and_times_ahead_are_taken_as_now() {
        let hour = |h: i64| T + time::Duration::hours(h);
        let mut h = History::default();
        for i in 0..RUN_STARTS as i64 + 4 {
            h.start_run_at(Some(hour(i)));
        }
        // A run whose time is unknown counts, but adds no start.
        h.start_run_at(None);
        assert_eq!(h.runs, RUN_STARTS as u64 + 5);
        let kept: Vec<OffsetDateTime> = (4..RUN_STARTS as i64 + 4).map(hour).collect();
        assert_eq!(h.run_starts, kept);
        // A start ahead of the clock is taken as now, and named.
        let now = hour(100);
        h.start_run_at(Some(hour(1000)));
        assert_eq!(clamp_future(&mut h, now), ["history.run_starts"]);
        assert_eq!(h.run_starts.len(), RUN_STARTS);
        assert_eq!(h.run_starts.last(), Some(&now));
        assert_eq!(h.run_starts[0], hour(5));
        assert!(clamp_future(&mut h, now).is_empty());
    }
}
