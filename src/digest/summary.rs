//! What one digest email says about its records, counted once and shared
//! by its subject ([`crate::digest::subject`]), its text body ([`crate::digest::compose`])
//! and its HTML part ([`crate::digest::html`]): the headline (what failed,
//! where, since when), counts per level, the time span, the kinds of failure
//! (each with its most telling field and its strip of recent runs, and the
//! context records shown with it), the failures that are over
//! (`notify_recovery`), the notes and the footer.

use std::cmp::Reverse;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tracing::Level;

use crate::capture::record::{LINE_TIME, Record, show_time};
use crate::say::{cut, plural};
use crate::store::history::{History, Resolved, STRIP_RUNS, field_value, fingerprint_of};

/// One kind of failure in an email, for the summary at its top.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) label: String,
    pub(crate) level: Level,
    /// Its records in this email.
    pub(crate) count: usize,
    pub(crate) first: OffsetDateTime,
    /// Consecutive runs that saw it, when more than one.
    pub(crate) runs: Option<u64>,
    /// Which of the last runs saw it, oldest first (see
    /// `History::recent_runs`), when the history knows two runs or more.
    pub(crate) recent: Option<Vec<bool>>,
    /// When it started: its streak's first record when it persists, else
    /// its first record here.
    pub(crate) since: OffsetDateTime,
    /// What its newest record says went wrong (see [`detail_of`]).
    pub(crate) detail: Option<String>,
    /// Where its newest record (the last time it was seen) is among the
    /// email's records.
    pub(crate) latest: usize,
    /// Labelled by `fingerprint_fields` (`feed "Radio Café"`), not by its
    /// message.
    pub(crate) by_field: bool,
}

/// Most characters of a failure's detail shown.
const DETAIL_MAX: usize = 200;

/// What `record` says went wrong, for a failure labelled `label`: its
/// `error` field, else its message when that is not the label already;
/// cut at [`DETAIL_MAX`] characters.
fn detail_of(record: &Record, label: &str) -> Option<String> {
    let text = match record.fields.get("error") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None if record.message.is_empty() || record.message == label => return None,
        None => record.message.clone(),
    };
    Some(cut(&text, DETAIL_MAX))
}

/// The problems among `records`: one per fingerprint at `level` or above,
/// most severe first, then the longest-running, then the most frequent.
pub(crate) fn problems(
    records: &[Record],
    history: &History,
    fields: &[String],
    level: Level,
) -> Vec<Problem> {
    let mut by_key: Vec<(String, Problem)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        // tracing orders levels most severe first: ERROR is the least.
        if r.level > level {
            continue;
        }
        let fp = fingerprint_of(r, fields);
        let Some((_, p)) = by_key.iter_mut().find(|(k, _)| *k == fp.key) else {
            // First seen here: since its streak began, if it persists.
            let streak = history.streaks.get(&fp.key).filter(|s| s.runs > 1);
            let recent = history.recent_runs(&fp.key, STRIP_RUNS);
            let problem = Problem {
                label: fp.label.clone(),
                level: r.level,
                count: 1,
                first: r.timestamp,
                runs: streak.map(|s| s.runs),
                recent: recent.filter(|recent| recent.len() > 1),
                since: streak.map_or(r.timestamp, |s| s.since.min(r.timestamp)),
                detail: detail_of(r, &fp.label),
                latest: i,
                by_field: fields.iter().any(|f| field_value(r, f).is_some()),
            };
            by_key.push((fp.key.clone(), problem));
            continue;
        };
        p.count += 1;
        p.first = p.first.min(r.timestamp);
        p.since = p.since.min(r.timestamp);
        if r.timestamp >= records[p.latest].timestamp {
            (p.latest, p.detail) = (i, detail_of(r, &p.label));
        }
        p.level = p.level.min(r.level);
    }
    let mut out: Vec<Problem> = by_key.into_iter().map(|(_, p)| p).collect();
    out.sort_by_key(|p| (p.level, Reverse((p.runs.unwrap_or(1), p.count)), p.first));
    out
}

/// Most kinds of failure (and of failures over) listed in a digest.
pub(crate) const MAX_PROBLEMS: usize = 20;

/// `1 312`: thousands grouped with spaces.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `2 WARN, 36 INFO`: how many of `records` are at each level, most
/// severe first (tracing orders `ERROR` lowest), each count shown by
/// `number`.
pub(crate) fn level_counts<'r>(
    records: impl IntoIterator<Item = &'r Record>,
    number: fn(usize) -> String,
) -> String {
    let mut counts = std::collections::BTreeMap::<Level, usize>::new();
    for r in records {
        *counts.entry(r.level).or_default() += 1;
    }
    let words: Vec<String> = counts
        .iter()
        .map(|(l, n)| format!("{} {l}", number(*n)))
        .collect();
    words.join(", ")
}

/// What one email holds, counted once and shared by its subject, its text
/// body and its HTML part.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    pub(crate) app: &'a str,
    /// The email's records, oldest first.
    pub(crate) records: &'a [Record],
    /// Older records dropped before this digest (beyond `max_pending`).
    pub(crate) dropped: u64,
    /// `(k, n)` when this email is part k of a digest split into n.
    pub(crate) part: Option<(usize, usize)>,
    /// The offset times are shown at.
    pub(crate) offset: UtcOffset,
    /// The kinds of failure, for the summary; most important first.
    pub(crate) problems: Vec<Problem>,
    /// Most records listed one by one.
    pub(crate) detail_lines: usize,
    /// A note for the footer: `fingerprint_fields` that none of the records
    /// has (see [`crate::store::history::unmatched_fields`]).
    pub(crate) fields_note: Option<String>,
    /// Failures that are over, said in a "Resolved" section.
    pub(crate) resolved: &'a [Resolved],
    /// The machine that sends it (empty: not said).
    pub(crate) host: &'a str,
    /// Records at this level or above are failures; below, context.
    pub(crate) level: Level,
    /// Why and since when this digest is late: an earlier attempt to send
    /// failed, with the state file's last error, and when it happened when
    /// known.
    pub(crate) late: Option<(&'a str, Option<OffsetDateTime>)>,
}

/// How the first lines show a time of the same day as the email's newest
/// record: `03:00`; and of another day (and the subject, any time):
/// `2026-11-20 23:00`.
const CLOCK: &[FormatItem<'static>] = format_description!("[hour]:[minute]");
pub(crate) const DAY_CLOCK: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]");

/// Most characters of a late digest's error shown.
const LATE_ERROR_MAX: usize = 300;

impl<'a> Summary<'a> {
    /// ` on web-3`, or nothing when the host is not known.
    fn on_host(&self) -> String {
        match self.host {
            "" => String::new(),
            host => format!(" on {host}"),
        }
    }

    /// `03:00` when `t` is on the day of `reference`, else
    /// `2026-11-20 23:00`, in the digest's offset.
    pub(crate) fn short_time(&self, t: OffsetDateTime, reference: OffsetDateTime) -> String {
        let same_day = t.to_offset(self.offset).date() == reference.to_offset(self.offset).date();
        show_time(t, self.offset, if same_day { CLOCK } else { DAY_CLOCK })
    }

    /// The first line: what failed, where and since when, e.g. `feed
    /// "Radio Café" has failed in each of the last 4 runs on web-3, since
    /// 01:00`; `ERROR on web-3 at 03:00: could not save the episode
    /// database` or `WARN on web-3 in each of the last 3 runs, since 01:00:
    /// disk almost full` for a failure labelled by its message; `poca on
    /// web-3: 12 log records` when nothing failed.
    pub(crate) fn headline(&self) -> String {
        let on = self.on_host();
        let Some(p) = self.problems.first() else {
            return format!("{}{on}: {}", self.app, self.record_count());
        };
        let since = self.short_time(p.since, self.last().unwrap_or(p.since));
        let (label, level, count) = (&p.label, p.level, p.count);
        match (p.runs, p.by_field) {
            (Some(runs), true) => {
                format!("{label} has failed in each of the last {runs} runs{on}, since {since}")
            }
            (Some(runs), false) => {
                format!("{level}{on} in each of the last {runs} runs, since {since}: {label}")
            }
            (None, true) if count == 1 => format!("{label} failed{on} at {since}"),
            (None, true) => format!("{label} failed {count} times{on}, since {since}"),
            (None, false) if count == 1 => format!("{level}{on} at {since}: {label}"),
            (None, false) => format!("{level}{on}, {count} times since {since}: {label}"),
        }
    }

    /// The line under the headline: `poca on web-3: 56 log records (10
    /// WARN, 46 INFO) from … to …, times in UTC.`
    pub(crate) fn overview(&self) -> String {
        let levels = level_counts(self.records, |n| n.to_string());
        let (app, on, count) = (self.app, self.on_host(), self.record_count());
        let span = self.first().zip(self.last()).map(|(first, last)| {
            let time = |t| show_time(t, self.offset, LINE_TIME);
            let (from, to) = (time(first), time(last));
            let zone = offset_label(self.offset);
            format!(" from {from} to {to}, times in {zone}")
        });
        format!("{app}{on}: {count} ({levels}){}.", span.unwrap_or_default())
    }

    /// The notes under the overview, in their order in both parts: which
    /// part of a split digest (`This is part 2 of 3: …`), why it is late
    /// (`This digest is late: sending it failed at 2026-11-21 03:00
    /// (connection refused); …`), how many records were dropped (`412
    /// older records were dropped …`).
    pub(crate) fn notes(&self) -> impl Iterator<Item = String> {
        let part = self.part.map(|(k, n)| {
            format!("This is part {k} of {n}: the digest was split to stay under the size limit.")
        });
        let late = self.late.map(|(error, at)| {
            let error = cut(error, LATE_ERROR_MAX);
            let at = at.map(|at| format!(" at {}", show_time(at, self.offset, DAY_CLOCK)));
            let at = at.unwrap_or_default();
            format!(
                "This digest is late: sending it failed{at} ({error}); its records were kept and \
                 follow."
            )
        });
        let dropped = (self.dropped > 0).then(|| {
            let records = plural(self.dropped, "older record was", "older records were");
            format!("{records} dropped before this digest because too many were pending.")
        });
        [part, late, dropped].into_iter().flatten()
    }

    /// `— run 3, 2026-11-21 03:00 —`: the line before a run's records in
    /// the text part.
    pub(crate) fn run_line(&self, record: &Record) -> String {
        let when = show_time(record.timestamp, self.offset, DAY_CLOCK);
        match record.run {
            Some(run) => format!("— run {run}, {when} —"),
            None => format!("— {when} —"),
        }
    }

    /// The records shown with `p` in the HTML part: its newest record and up
    /// to `max` context records (below the failure level) of the same run
    /// and the same spans, those just before it first, leaving out those
    /// already `shown` (with another failure); oldest first.
    pub(crate) fn context(&self, p: &Problem, max: usize, shown: &[bool]) -> Vec<usize> {
        let Some(latest) = self.records.get(p.latest) else {
            return Vec::new();
        };
        let near = |i: &usize| {
            let r = &self.records[*i];
            !shown.get(*i).copied().unwrap_or(false)
                && r.level > self.level
                && (r.run, &r.spans) == (latest.run, &latest.spans)
        };
        let before = (0..p.latest).rev().filter(near);
        let after = (p.latest + 1..self.records.len()).filter(near);
        let mut out: Vec<usize> = before.chain(after).take(max).collect();
        out.push(p.latest);
        out.sort_unstable();
        out
    }

    /// The records listed one by one: the newest `detail_lines`, oldest
    /// first.
    pub(crate) fn shown(&self) -> &'a [Record] {
        &self.records[self.records.len().saturating_sub(self.detail_lines)..]
    }

    /// `The newest 200 records follow, and 1 312 more (earlier) are only
    /// counted above.` when not all are listed.
    pub(crate) fn hidden_note(&self) -> Option<String> {
        let (shown, hidden) = (self.shown().len(), self.records.len() - self.shown().len());
        (hidden > 0).then(|| {
            let (shown, hidden) = (grouped(shown), grouped(hidden));
            format!(
                "The newest {shown} records follow, and {hidden} more (earlier) are only counted \
                 above."
            )
        })
    }

    /// `… and 12 other kinds of failure.` beyond the first
    /// [`MAX_PROBLEMS`].
    pub(crate) fn more_problems_note(&self) -> Option<String> {
        let more = self.problems.len().saturating_sub(MAX_PROBLEMS);
        (more > 0).then(|| format!("… and {} other kinds of failure.", grouped(more)))
    }

    /// The "Resolved" section's lines (see [`resolved_line`]), at most
    /// [`MAX_PROBLEMS`], and `… and 3 other failures.` for the rest.
    pub(crate) fn resolved_lines(&self) -> (Vec<String>, Option<String>) {
        let shown = self.resolved.iter().take(MAX_PROBLEMS);
        let lines = shown.map(|r| resolved_line(r, self.offset)).collect();
        let more = self.resolved.len().saturating_sub(MAX_PROBLEMS);
        let more = (more > 0).then(|| format!("… and {} other failures.", grouped(more)));
        (lines, more)
    }

    /// What the digest knows of a problem: `5 records, 2026-11-20 08:00:00
    /// to 12:00:00, in each of the last 5 runs`.
    pub(crate) fn problem_facts(&self, p: &Problem) -> String {
        let last = self.records.get(p.latest).map_or(p.first, |r| r.timestamp);
        let when = between(p.first, last, self.offset, "");
        let runs = p
            .runs
            .map(|runs| format!(", in each of the last {runs} runs"));
        let records = plural(p.count, "record", "records");
        format!("{records}, {when}{}", runs.unwrap_or_default())
    }

    /// The first line of an email that says failures are over: `Resolved:
    /// feed "Radio Café" is OK again on web-3 after failing 6 runs
    /// (01:00–06:00)`, or for several `Resolved: feed "Radio Café" and 2
    /// more failures are OK again on web-3`.
    pub(crate) fn resolved_headline(&self) -> String {
        let on = self.on_host();
        match self.resolved {
            [] => format!("Resolved{on}"),
            [r] => format!(
                "Resolved: {} is OK again{on} after failing {} ({}–{})",
                r.label,
                plural(r.runs, "run", "runs"),
                self.short_time(r.since, r.last_seen),
                self.short_time(r.last_seen, r.since)
            ),
            [first, rest @ ..] => {
                let more = plural(rest.len(), "more failure", "more failures");
                format!("Resolved: {} and {more} are OK again{on}", first.label)
            }
        }
    }

    /// How many records are at exactly `level`.
    pub(crate) fn count(&self, level: Level) -> usize {
        self.records.iter().filter(|r| r.level == level).count()
    }

    /// The oldest record's time.
    pub(crate) fn first(&self) -> Option<OffsetDateTime> {
        self.records.iter().map(|r| r.timestamp).min()
    }

    /// The newest record's time.
    pub(crate) fn last(&self) -> Option<OffsetDateTime> {
        self.records.iter().map(|r| r.timestamp).max()
    }

    /// `24 log records`.
    pub(crate) fn record_count(&self) -> String {
        plural(self.records.len(), "log record", "log records")
    }
}

/// `at 2026-11-20 08:00:00`, or `{from}2026-11-20 08:00:00 to 2026-11-21
/// 08:00:00` when `first` and `last` differ.
fn between(first: OffsetDateTime, last: OffsetDateTime, offset: UtcOffset, from: &str) -> String {
    let a = show_time(first, offset, LINE_TIME);
    if first == last {
        format!("at {a}")
    } else {
        format!("{from}{a} to {}", show_time(last, offset, LINE_TIME))
    }
}

/// A failure that is over: `WARN feed "Radio Café": OK again after
/// failing 9 runs, from 2026-11-20 08:00:00 to 2026-11-21 08:00:00`.
pub(crate) fn resolved_line(r: &Resolved, offset: UtcOffset) -> String {
    let (level, label, runs) = (r.level, &r.label, plural(r.runs, "run", "runs"));
    let when = between(r.since, r.last_seen, offset, "from ");
    format!("{level} {label}: OK again after failing {runs}, {when}")
}

/// The subject of an email that only says failures are over: `[poca]
/// resolved: feed "Radio Café" OK again after failing 9 runs`, or for
/// several `[poca] resolved: feed "Radio Café" and 2 more OK again`.
/// Control characters in a label are shown as spaces; a label is cut at 100
/// characters.
pub(crate) fn resolved_subject(app: &str, resolved: &[Resolved]) -> String {
    let Some(first) = resolved.first() else {
        return format!("[{app}] resolved");
    };
    let label = cut(&first.label, 100).replace(|c: char| c.is_control(), " ");
    match resolved.len() - 1 {
        0 => {
            let runs = plural(first.runs, "run", "runs");
            format!("[{app}] resolved: {label} OK again after failing {runs}")
        }
        more => format!(
            "[{app}] resolved: {label} and {} more OK again",
            grouped(more)
        ),
    }
}

/// `UTC`, `UTC-03:30`.
fn offset_label(offset: UtcOffset) -> String {
    let hours = format_description!("UTC[offset_hour sign:mandatory]:[offset_minute]");
    match offset.is_utc() {
        true => "UTC".to_owned(),
        false => offset.format(hours).unwrap_or_default(),
    }
}

/// The last line of every digest: who sent it and where records wait.
pub(crate) fn footer(app: &str, state_path: &str) -> String {
    format!(
        "Sent by tracing-email for {app}. Records wait in {state_path} until they are worth an email."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_offsets_are_labelled() {
        assert_eq!(offset_label(UtcOffset::UTC), "UTC");
        assert_eq!(
            offset_label(UtcOffset::from_hms(-3, -30, 0).unwrap()),
            "UTC-03:30"
        );
        assert_eq!(
            offset_label(UtcOffset::from_hms(1, 0, 0).unwrap()),
            "UTC+01:00"
        );
    }

    #[test]
    fn large_numbers_are_grouped() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(1312), "1 312");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }

    fn resolved(label: &str, runs: u64) -> Resolved {
        let t = OffsetDateTime::UNIX_EPOCH;
        Resolved {
            key: label.into(),
            label: label.into(),
            level: Level::WARN,
            runs,
            since: t,
            last_seen: t + time::Duration::hours(8),
            run: 10,
        }
    }

    #[test]
    fn a_resolved_failure_is_said_in_one_line_and_one_subject() {
        let radio = resolved(r#"feed "Radio Café""#, 9);
        assert_eq!(
            resolved_line(&radio, UtcOffset::UTC),
            r#"WARN feed "Radio Café": OK again after failing 9 runs, from 1970-01-01 00:00:00 to 1970-01-01 08:00:00"#
        );
        assert_eq!(
            resolved_subject("poca", std::slice::from_ref(&radio)),
            r#"[poca] resolved: feed "Radio Café" OK again after failing 9 runs"#
        );
        let one = resolved("disk\nfull", 1);
        let mut odd = one.clone();
        odd.label = format!("disk\nfull{}", "x".repeat(200));
        assert!(resolved_subject("poca", &[one]).ends_with("after failing 1 run"));
        let long = resolved_subject("poca", &[odd]);
        assert!(long.contains('…') && long.chars().count() < 160, "{long}");
        let ctl = resolved("a\r\nBcc: x", 2);
        assert!(!resolved_subject("poca", &[ctl]).contains('\n'));
        assert_eq!(
            resolved_subject("poca", &[radio, resolved("b", 2), resolved("c", 3)]),
            r#"[poca] resolved: feed "Radio Café" and 2 more OK again"#
        );
    }
}
