//! The state: what is pending across runs, as the snapshot file holds it
//! and as a flush works on it in memory (the records, what was dropped, the
//! last send and the history of runs). Pure data; [`super::file`] reads and
//! writes it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::store::history::Streak;

/// 3 adds the journal's trim lines, which a version 2 reader would skip as damage
/// and misread: it refuses version 3 as any newer one. Versions 1 and 2 are read
/// and rewritten as 3 at the next write; a newer version is an error, left untouched.
pub(crate) const VERSION: u32 = 3;

fn this_version<S: serde::Serializer>(_: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(VERSION)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(serialize_with = "this_version")]
    pub(crate) version: u32,
    /// Changes at every rewrite of the snapshot: the journal names the one it extends.
    #[serde(default, skip_serializing)]
    pub(crate) generation: u64,
    #[serde(default)]
    pub(crate) pending: Vec<Record>,
    #[serde(default)]
    pub(crate) dropped: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) last_sent: Option<OffsetDateTime>,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
    /// Absent from older files: read as unknown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub(crate) last_error_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub(crate) history: crate::store::history::History,
    /// And those whose resolution it has not accepted yet. Absent without Alertmanager.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) alerts: std::collections::BTreeMap<String, FiringAlert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alert_post: Option<AlertPost>,
    /// Merged but maybe still on disk (killed before their removal): the next flush
    /// removes them instead of merging again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) parked_merged: Vec<String>,
}

/// An alert that Alertmanager holds as firing for this program, as the
/// state file keeps it: posted firing and accepted, and not resolved since
/// (or resolved, while Alertmanager has not accepted the resolution yet).
/// Read-only; [`Snapshot::alerts`](crate::inspect::Snapshot::alerts) lists them.
/// The state file keeps them under `alerts`, by fingerprint key, without
/// `last_post` (the state's one `alert_post`). No secret is kept here.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
/// for alert in &snapshot.alerts {
///     match alert.resolved {
///         None => println!("{} ({}) firing since {}", alert.failure, alert.severity, alert.since),
///         Some(at) => println!("{} over at {at}, resolution not accepted yet", alert.failure),
///     }
///     println!("  labels {:?}, last accepted {:?}", alert.labels, alert.last_accepted);
/// }
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FiringAlert {
    /// The failure's label, its `failure` label in Alertmanager, e.g.
    /// `feed "Radio Café"`.
    pub failure: String,
    /// `error` or `warning`, its `severity` label.
    pub severity: String,
    /// Its `startsAt`: when the failure was first seen.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Consecutive runs that saw it when it was last posted.
    #[serde(default)]
    pub runs: u64,
    /// When the failure was over, if it is: Alertmanager has not accepted
    /// the resolution yet, and the next flush posts it again. `None`: firing.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved: Option<OffsetDateTime>,
    /// Its labels as last posted (`alertname`, `failure`, `severity`,
    /// `instance` and the ones given to
    /// [`Alertmanager::label`](crate::Alertmanager::label)): what finds it
    /// in Alertmanager (`amtool alert query failure=…`). Empty for an alert
    /// kept by a version that did not keep them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// When Alertmanager last accepted it as firing (its `endsAt` counts
    /// from then); `None` for an alert kept by a version that did not say.
    #[serde(
        default,
        rename = "accepted",
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_accepted: Option<OffsetDateTime>,
    /// The last post, which carried it (every post carries every alert
    /// the state file keeps), with its answer.
    #[serde(skip)]
    pub last_post: Option<AlertPost>,
}

/// One post to Alertmanager and its answer: when, how many alerts it
/// carried (every post carries every alert the state file keeps, firing or
/// resolved), and how many Alertmanagers accepted it, or why none did (the
/// error's text, with every secret hidden: no secret is kept here). Its
/// `Display` is one line.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
/// if let Some(post) = &snapshot.last_alert_post {
///     println!("last post: {}, {post}", post.at);  // "accepted by 1 of 1 Alertmanager (…)"
///     if !post.is_accepted() {
///         eprintln!("Alertmanager did not take the alerts: {:?}", post.error);
///     }
/// }
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AlertPost {
    /// When it was posted.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Firing alerts it carried.
    pub firing: usize,
    /// Resolved alerts it carried.
    pub resolved: usize,
    /// Alertmanagers that accepted it (0: the post failed; the next flush
    /// posts again).
    pub accepted: usize,
    /// Alertmanagers it went to.
    pub of: usize,
    /// Why none accepted it, when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    /// Written under a wrong clock, it would hold every email (`min_interval`), keep a
    /// failure quiet, look new for years, stretch the time between runs or keep a record
    /// from ever being old while the clock was ahead. Returns the keys moved, each once.
    /// Records before `from` are clamped already.
    pub(crate) fn clamp_future_from(
        &mut self,
        now: OffsetDateTime,
        from: usize,
    ) -> Vec<&'static str> {
        // Oldest first stays oldest first: the moved ones are the newest.
        let from = from.min(self.pending.len());
        let pending = self.pending[from..].iter_mut().map(|r| &mut r.timestamp);
        let h = &mut self.history;
        let mut streaks = |time: fn(&mut Streak) -> Option<&mut OffsetDateTime>| {
            clamp(h.streaks.values_mut().filter_map(time), now)
        };
        let moved = [
            ("last_sent", clamp(&mut self.last_sent, now)),
            ("pending.time", clamp(pending, now)),
            ("history.run_starts", clamp(&mut h.run_starts, now)),
            ("history.streaks.since", streaks(|s| Some(&mut s.since))),
            (
                "history.streaks.last_seen",
                streaks(|s| Some(&mut s.last_seen)),
            ),
            ("history.streaks.reported", streaks(|s| s.reported.as_mut())),
        ];
        let moved = moved.into_iter();
        moved
            .filter_map(|(key, moved)| moved.then_some(key))
            .collect()
    }
}

fn clamp<'t>(times: impl IntoIterator<Item = &'t mut OffsetDateTime>, now: OffsetDateTime) -> bool {
    times.into_iter().fold(false, |moved, time| {
        let later = *time > now;
        *time = (*time).min(now);
        moved | later
    })
}
