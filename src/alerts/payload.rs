//! The alerts as Alertmanager's v2 API takes them (`postableAlerts`): pure
//! building of the JSON from the failures, no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::utc_time;
use crate::say::cut;
use crate::store::history::{History, Streak, strip_text};
use crate::store::state::FiringAlert;

/// A deterministic cut, so every host cuts the same label the same way.
pub(crate) const MAX_LABEL_CHARS: usize = 200;
pub(crate) const MAX_LINES: usize = 10;
pub(crate) const MAX_LINE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Alert {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", with = "time::serde::rfc3339")]
    pub(crate) starts_at: OffsetDateTime,
    #[serde(rename = "endsAt", with = "time::serde::rfc3339")]
    pub(crate) ends_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) app: String,
    pub(crate) instance: String,
    pub(crate) labels: BTreeMap<String, String>,
}

pub(crate) fn severity(level: Level) -> &'static str {
    if level == Level::ERROR {
        "error"
    } else {
        "warning"
    }
}

pub(crate) fn failure_label(label: &str) -> String {
    cut(label, MAX_LABEL_CHARS)
}

impl Identity {
    fn labels(&self, failure: &str, severity: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), self.app.clone());
        labels.insert("failure".into(), failure_label(failure));
        labels.insert("severity".into(), severity.into());
        labels.insert("instance".into(), self.instance.clone());
        labels
    }

    /// `recent` runs shown from two runs on; it ends at `now + window` unless re-posted.
    pub(crate) fn firing(
        &self,
        s: &Streak,
        since: OffsetDateTime,
        lines: &[String],
        recent: &[bool],
        now: OffsetDateTime,
        window: Duration,
    ) -> Alert {
        let mut summary = format!("{} {} on {}", s.level, s.label, self.instance);
        if s.runs > 1 {
            let _ = write!(summary, ", in each of the last {} runs", s.runs);
        }
        let hidden = lines.len().saturating_sub(MAX_LINES);
        let lines = lines[hidden..]
            .iter()
            .map(|l| cut(l.trim_end(), MAX_LINE_CHARS));
        let description = lines.collect::<Vec<_>>().join("\n");
        let mut annotations: BTreeMap<String, String> = [
            ("summary", summary),
            ("description", description),
            ("runs", s.runs.to_string()),
            ("first_seen", utc_time(since)),
            ("last_seen", utc_time(s.last_seen)),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
        if recent.len() >= 2 {
            annotations.insert("history".into(), strip_text(recent));
        }
        let window = time::Duration::try_from(window).unwrap_or(time::Duration::DAY);
        Alert {
            labels: self.labels(&s.label, severity(s.level)),
            annotations,
            starts_at: since.min(now),
            ends_at: now.checked_add(window).unwrap_or(crate::clock::LATEST),
        }
    }

    pub(crate) fn resolved(&self, posted: &FiringAlert, ended: OffsetDateTime) -> Alert {
        let FiringAlert { failure, runs, .. } = posted;
        let after = match runs {
            0 | 1 => String::new(),
            n => format!(" after failing {n} runs"),
        };
        let summary = format!("{failure} OK again on {}{after}", self.instance);
        let annotations = [
            ("summary", summary),
            ("runs", runs.to_string()),
            ("first_seen", utc_time(posted.since)),
        ];
        Alert {
            labels: self.labels(failure, &posted.severity),
            annotations: annotations.map(|(k, v)| (k.to_owned(), v)).into(),
            starts_at: posted.since.min(ended),
            ends_at: ended,
        }
    }
}

/// Three times the median time between runs (from `run_starts`; with fewer than
/// two, from multi-run streaks: `(last_seen - since) / (runs - 1)`), within 5
/// minutes and a week.
pub(crate) fn default_window(history: &History) -> Duration {
    const MIN: Duration = Duration::from_secs(300);
    const MAX: Duration = Duration::from_secs(7 * 24 * 3600);
    let mut sorted = history.run_starts.clone();
    sorted.sort();
    let mut intervals: Vec<f64> = sorted
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_seconds_f64())
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    if intervals.is_empty() {
        intervals = history
            .streaks
            .values()
            .filter(|s| s.runs >= 2)
            .map(|s| (s.last_seen - s.since).as_seconds_f64() / (s.runs - 1) as f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .collect();
    }
    if intervals.is_empty() {
        return MIN;
    }
    intervals.sort_by(f64::total_cmp);
    let median = intervals[intervals.len() / 2];
    Duration::try_from_secs_f64(median * 3.0)
        .unwrap_or(MAX)
        .clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn identity() -> Identity {
        Identity {
            app: "poca".into(),
            instance: "host-a".into(),
            labels: [("team".to_owned(), "media".to_owned())].into(),
        }
    }

    /// The firing alert of a warning seen in 3 runs, with `lines` lines.
    fn firing(lines: usize, now: OffsetDateTime, window: Duration) -> Alert {
        let streak = Streak {
            label: "feed \"Radio Café\"".into(),
            level: Level::WARN,
            runs: 3,
            last_run: 6,
            since: datetime!(2026-11-20 09:00 UTC),
            last_seen: datetime!(2026-11-20 10:00 UTC),
            reported: None,
            reported_runs: 0,
            quiet: false,
            quiet_until: None,
        };
        let lines: Vec<String> = (0..lines)
            .map(|i| format!("line {i} {}", "x".repeat(i * 100)))
            .collect();
        let recent = [false, true, false, true, true, true];
        let since = datetime!(2026-11-20 08:00 UTC);
        identity().firing(&streak, since, &lines, &recent, now, window)
    }

    #[test]
    fn a_firing_alert_has_the_labels_and_annotations_alertmanager_groups_by() {
        let now = datetime!(2026-11-20 10:00:05 UTC);
        let alert = firing(2, now, Duration::from_secs(900));
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(
            json["labels"],
            serde_json::json!({
                "alertname": "poca",
                "failure": "feed \"Radio Café\"",
                "severity": "warning",
                "instance": "host-a",
                "team": "media",
            })
        );
        assert_eq!(json["startsAt"], "2026-11-20T08:00:00Z");
        assert_eq!(json["endsAt"], "2026-11-20T10:15:05Z");
        let a = &json["annotations"];
        assert_eq!(
            a["summary"],
            "WARN feed \"Radio Café\" on host-a, in each of the last 3 runs"
        );
        assert_eq!(a["runs"], "3");
        assert_eq!(a["history"], "last 6 runs, oldest first: ✓✗✓✗✗✗");
        assert_eq!(a["first_seen"], "2026-11-20 08:00:00 UTC");
        assert!(
            a["description"]
                .as_str()
                .unwrap()
                .starts_with("line 0\nline 1 x")
        );
    }

    #[test]
    fn the_description_holds_the_newest_lines_each_cut() {
        let now = datetime!(2026-11-20 10:00 UTC);
        let alert = firing(25, now, Duration::from_secs(300));
        let d = &alert.annotations["description"];
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), MAX_LINES);
        assert!(lines[0].starts_with("line 15 "));
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= MAX_LINE_CHARS + 1)
        );
        assert!(d.len() <= MAX_LINES * (MAX_LINE_CHARS + 4));
    }

    #[test]
    fn a_long_label_is_cut_the_same_way_everywhere() {
        let long = "é".repeat(500);
        let a = failure_label(&long);
        assert_eq!(a.chars().count(), MAX_LABEL_CHARS + 1);
        assert_eq!(a, failure_label(&long));
        assert_eq!(failure_label("feed \"x\""), "feed \"x\"");
    }

    #[test]
    fn a_resolved_alert_has_the_same_labels_and_ends_when_it_ended() {
        let ended = datetime!(2026-11-21 09:00 UTC);
        let since = datetime!(2026-11-20 08:00 UTC);
        let firing = firing(1, ended, Duration::from_secs(300));
        let posted = FiringAlert {
            failure: "feed \"Radio Café\"".into(),
            severity: "warning".into(),
            since,
            runs: 9,
            resolved: None,
            labels: BTreeMap::new(),
            last_accepted: None,
            last_post: None,
        };
        let resolved = identity().resolved(&posted, ended);
        assert_eq!(resolved.labels, firing.labels);
        assert_eq!(resolved.ends_at, ended);
        assert_eq!(resolved.starts_at, since);
        assert_eq!(
            resolved.annotations["summary"],
            "feed \"Radio Café\" OK again on host-a after failing 9 runs"
        );
    }

    /// The default window of a history with these run `starts` and
    /// streaks (`(runs, since, last_seen)`).
    fn window(
        starts: &[OffsetDateTime],
        streaks: &[(u64, OffsetDateTime, OffsetDateTime)],
    ) -> Duration {
        let streak = |&(runs, since, last_seen)| Streak {
            label: "feed".into(),
            level: Level::ERROR,
            runs,
            last_run: runs,
            since,
            last_seen,
            reported: None,
            reported_runs: 0,
            quiet: false,
            quiet_until: None,
        };
        let history = History {
            run_starts: starts.to_vec(),
            streaks: streaks
                .iter()
                .enumerate()
                .map(|(i, s)| (i.to_string(), streak(s)))
                .collect(),
            ..History::default()
        };
        default_window(&history)
    }

    #[test]
    fn the_default_window_is_three_median_intervals_and_at_least_five_minutes() {
        let t = datetime!(2026-11-20 00:00 UTC);
        let hours = |h: i64| t + time::Duration::hours(h);
        assert_eq!(window(&[], &[]), Duration::from_secs(300));
        // No run starts known (a file from before they were kept): from the
        // streaks. Hourly runs (5 runs over 4 hours), daily runs, and one
        // run alone.
        let streaks = [
            (5, t, hours(4)),
            (3, t, hours(48)),
            (1, t, t),
            (2, t, hours(1)),
        ];
        assert_eq!(window(&[], &streaks), Duration::from_secs(3 * 3600));
        // One run start, or starts all at one moment: still the streaks.
        assert_eq!(window(&[t], &streaks), Duration::from_secs(3 * 3600));
        assert_eq!(window(&[t, t, t], &streaks), Duration::from_secs(3 * 3600));
        // Run starts known: they win over the streaks. Daily runs, one an
        // hour late, one missed, two counted out of order (processes that
        // overlap): the median interval is a day.
        let days = [0, 24, 49, 72, 144, 120].map(hours);
        assert_eq!(window(&days, &streaks), Duration::from_secs(3 * 24 * 3600));
        // Every minute: the floor.
        let minutes: Vec<OffsetDateTime> =
            (0..10).map(|m| t + time::Duration::minutes(m)).collect();
        assert_eq!(window(&minutes, &[]), Duration::from_secs(300));
        assert_eq!(
            window(&[], &[(10, t, t + time::Duration::minutes(9))]),
            Duration::from_secs(300)
        );
        // Yearly: capped at a week.
        assert_eq!(
            window(&[t, t + time::Duration::days(365)], &[]),
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            window(&[], &[(2, t, t + time::Duration::days(365))]),
            Duration::from_secs(7 * 24 * 3600)
        );
    }

    /// An hourly job that fails for the first time: no failure has lasted
    /// two runs, so the streaks tell nothing of how often it runs, but its
    /// run starts do: the window is three hours, and the alert does not
    /// resolve before the next run could re-post it.
    #[test]
    fn hourly_runs_with_no_failure_persisted_give_a_three_hour_window() {
        use crate::store::history::Fingerprint;
        let t = datetime!(2026-11-20 00:00:07 UTC);
        let mut history = History::default();
        let mut run = 0;
        for h in 0..6 {
            run = history.start_run_at(Some(t + time::Duration::hours(h)));
        }
        let feed = Fingerprint {
            key: "feed".into(),
            label: "feed".into(),
        };
        history.observe(run, &feed, Level::ERROR, t + time::Duration::hours(5));
        assert_eq!(history.streaks["feed"].runs, 1);
        assert_eq!(default_window(&history), Duration::from_secs(3 * 3600));
        // Without the run starts (as before they were kept): the floor,
        // shorter than the time to the next run.
        history.run_starts.clear();
        assert_eq!(default_window(&history), Duration::from_secs(300));
    }
}
