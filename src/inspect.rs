//! Looking into a state file: what is pending, since when, which failures
//! persist across runs and when they were reported, what was last sent or
//! went wrong, and what the policy still waits for. Reading changes nothing;
//! [`StateFile::clear`] and [`StateFile::clear_all`] are the ways to empty it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::{Record, severity, utc_time};
use crate::digest::summary::level_counts;
use crate::error::Error;
pub use crate::policy::Decision as Verdict;
pub use crate::policy::WaitingFor;
use crate::policy::{Facts, Phase, Policy};
use crate::say::plural;
use crate::settings::PolicyConfig;
use crate::store::file::StateStore;
use crate::store::state::State;

mod alerts;
pub use crate::store::history::Failure;
pub use alerts::{AlertPost, FiringAlert};

/// A state file, opened to look into it (and, on request, to empty it).
///
/// ```
/// use tracing_email::inspect::StateFile;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let file = StateFile::open(dir.path().join("state.json"));
/// let snapshot = file.snapshot()?;           // a missing file is an empty state
/// assert!(!snapshot.exists);
/// assert_eq!(snapshot.pending.len(), 0);
/// println!("{snapshot}");                     // "state file   no state file at …"
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateFile {
    store: StateStore,
}

/// What a state file holds at one moment.
///
/// Its `Display` is a small table a person reads at a glance: the pending
/// records, each failure with its streak, when it was reported and until
/// when it is quiet, the alerts Alertmanager holds as firing and the last
/// post's answer, and (for a snapshot taken with a policy) what the policy
/// waits for.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
/// println!("{snapshot}");
/// println!("{} warnings or worse", snapshot.count_at_least(tracing::Level::WARN));
/// for failure in &snapshot.failures {
///     println!("{} in {} runs in a row", failure.label, failure.runs);
/// }
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state file.
    pub path: PathBuf,
    /// Whether the file exists. A program that has not flushed yet, or
    /// whose state file is elsewhere (its config's `state_file`), has none
    /// here: the snapshot is then empty.
    pub exists: bool,
    /// The pending records, oldest first.
    pub pending: Vec<Record>,
    /// Records dropped because of the pending limit, not yet reported.
    pub dropped: u64,
    /// When an email was last accepted by the server.
    pub last_sent: Option<OffsetDateTime>,
    /// The last failure to send, if the last attempt failed.
    pub last_error: Option<String>,
    /// Parked files beside the state file (records of a flush that could
    /// not get the lock), merged by the next flush.
    pub parked_files: usize,
    /// Runs that have flushed this state file so far.
    pub runs: u64,
    /// The failures the history follows (one per fingerprint, at the
    /// policy's level or above), longest streak first.
    pub failures: Vec<Failure>,
    /// Records this process captured since its last flush, not in the file
    /// yet: known only for a snapshot taken through
    /// [`FlushGuard::snapshot`](crate::FlushGuard::snapshot), else 0.
    pub unflushed: usize,
    /// What the program's policy would do at a flush now; known only for a
    /// snapshot taken with a policy ([`StateFile::snapshot_with`] or
    /// [`FlushGuard::snapshot`](crate::FlushGuard::snapshot)).
    pub verdict: Option<Verdict>,
    /// The alerts Alertmanager holds as firing for this program (posted
    /// and accepted, not resolved since, or resolved while the resolution
    /// is not accepted yet), the failures still lasting first. Empty
    /// without [`Builder::alerts`](crate::Builder::alerts).
    pub alerts: Vec<FiringAlert>,
    /// The last post to Alertmanager and its answer.
    pub last_alert_post: Option<AlertPost>,
}

/// What [`StateFile::clear`] or [`StateFile::clear_all`] removed and kept.
/// Its `Display` says both.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let cleared = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).clear()?;
/// assert_eq!(cleared.records, 0);
/// println!("{cleared}");
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cleared {
    /// Pending records removed.
    pub records: usize,
    /// Parked files removed (their records counted in `records`).
    pub parked_files: usize,
    /// Failures (streaks) in the history: kept by `clear`, removed by
    /// `clear_all`.
    pub failures: usize,
    /// Whether the history (streaks, when each failure was reported, the
    /// run count) and the time of the last email were removed too.
    pub history_removed: bool,
}

impl fmt::Display for Cleared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parked = match self.parked_files {
            0 => String::new(),
            n => format!(" (with {})", plural(n, "parked file", "parked files")),
        };
        let streaks = plural(self.failures, "failure streak", "failure streaks");
        let history = match self.history_removed {
            true => format!(
                ", the history ({streaks}) and the time of the last email: every failure is new \
                 again"
            ),
            false => format!(
                "; kept the history ({streaks}, and when each was reported: a reported failure \
                 stays quiet) and the time of the last email"
            ),
        };
        let records = plural(self.records, "pending record", "pending records");
        write!(f, "removed {records}{parked}{history}")
    }
}

impl StateFile {
    /// The state file at `path`.
    ///
    /// ```
    /// let file = tracing_email::inspect::StateFile::open("/var/lib/poca/tracing-email.json");
    /// ```
    pub fn open(path: impl Into<PathBuf>) -> Self {
        StateFile {
            store: StateStore::new(path.into(), Duration::from_secs(10)),
        }
    }

    /// Waits at most `timeout` for the file's lock when it changes it
    /// ([`clear`](StateFile::clear), [`clear_all`](StateFile::clear_all)),
    /// as the program's [`lock_timeout`](crate::Builder::lock_timeout)
    /// does; 10 seconds by default. Past it, the change fails with an error
    /// of kind [`Busy`](crate::ErrorKind::Busy) and nothing is changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let file = tracing_email::inspect::StateFile::open("state.json").lock_timeout(Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn lock_timeout(self, timeout: Duration) -> Self {
        StateFile {
            store: StateStore::new(self.store.path().to_owned(), timeout),
        }
    }

    /// The default state file of the program called `app` (see
    /// [`Builder::state_file`](crate::Builder::state_file)). A program whose
    /// config sets `state_file` keeps it there instead: open that path. An
    /// app name the builder refuses (empty, path-like, with control
    /// characters) is an error here too.
    ///
    /// ```
    /// let file = tracing_email::inspect::StateFile::for_app("poca")?;
    /// assert!(file.path().ends_with("tracing-email.json"));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn for_app(app: &str) -> Result<Self, Error> {
        crate::settings::check_app_name(app)?;
        Ok(StateFile::open(crate::store::file::default_path(app)?))
    }

    /// Its path.
    ///
    /// ```
    /// let file = tracing_email::inspect::StateFile::open("state.json");
    /// assert_eq!(file.path(), std::path::Path::new("state.json"));
    /// ```
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Reads what is pending and the failures followed across runs, without
    /// the lock and without changing anything (the file is replaced by
    /// rename, so the read sees one whole version). A missing file is an
    /// empty state with `exists: false`; a corrupt one is an error, and so
    /// is a path that is not a regular file (a FIFO, a device, a folder:
    /// refused at once, never opened for a blocking read).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
    /// assert!(snapshot.last_sent.is_none());
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        self.read(None)
    }

    /// Times later than `judge`'s are taken as it, as a flush takes them.
    pub(crate) fn read(
        &self,
        judge: Option<(&Policy, OffsetDateTime, Option<u64>)>,
    ) -> Result<Snapshot, Error> {
        let exists = std::fs::symlink_metadata(self.path()).is_ok();
        let (state, parked_files) = self.store.peek()?;
        let judged = judge.map(|(policy, now, run)| {
            let mut clamped = state.clone();
            clamped.clamp_future_from(now, 0);
            (policy, now, run, clamped)
        });
        let verdict = judged.as_ref().map(|(policy, now, run, clamped)| {
            let facts = Facts {
                now: *now,
                last_sent: clamped.last_sent,
                history: &clamped.history,
                run: run.unwrap_or(clamped.history.runs),
            };
            policy.decide(&clamped.pending, Phase::Flush, &facts)
        });
        // Shown as the file has them, judged as the flush would (the same keys, clamped).
        let mut failures: Vec<Failure> = state.history.streaks.values().cloned().collect();
        if let Some((policy, now, _, clamped)) = &judged {
            for (f, s) in failures.iter_mut().zip(clamped.history.streaks.values()) {
                let quiet = policy.quiet_until(s, *now);
                (f.quiet, f.quiet_until) = (quiet.is_some(), quiet.flatten());
            }
        }
        failures
            .sort_by(|a, b| (b.last_run, b.runs, &a.label).cmp(&(a.last_run, a.runs, &b.label)));
        Ok(Snapshot {
            path: self.path().to_path_buf(),
            exists: exists || !state.pending.is_empty() || state.history.runs > 0,
            alerts: alerts::of(&state),
            pending: state.pending,
            dropped: state.dropped,
            last_sent: state.last_sent,
            last_error: state.last_error,
            parked_files,
            runs: state.history.runs,
            failures,
            unflushed: 0,
            verdict,
            last_alert_post: state.alert_post,
        })
    }

    /// [`snapshot`](StateFile::snapshot), plus what the program's policy
    /// (its config's `policy` table, or the same rules set in code) would
    /// do at a flush now, and which failures it keeps quiet: the answer to
    /// "why didn't I get an email?".
    ///
    /// ```
    /// use tracing_email::{PolicyConfig, inspect::StateFile, inspect::Verdict};
    ///
    /// let policy: PolicyConfig = toml::from_str("consecutive_runs = 3\nrepeat_after = 86400")?;
    /// # let dir = tempfile::tempdir()?;
    /// let snapshot = StateFile::open(dir.path().join("s.json")).snapshot_with(&policy)?;
    /// assert_eq!(snapshot.verdict, Some(Verdict::Nothing));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot_with(&self, policy: &PolicyConfig) -> Result<Snapshot, Error> {
        let mut policy = policy.clone();
        policy.set_default_rule();
        self.read(Some((&policy, OffsetDateTime::now_utc(), None)))
    }

    /// Empties the pending records under the file's lock (parked files
    /// included) and says what it removed and kept. The history is kept:
    /// the streaks of the failures, when each was reported (so a reported
    /// failure stays quiet), the run count, and the time of the last email
    /// (for `min_interval`). [`clear_all`](StateFile::clear_all) forgets
    /// those too.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let cleared = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).clear()?;
    /// assert_eq!(cleared.records, 0);
    /// assert!(!cleared.history_removed);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn clear(&self) -> Result<Cleared, Error> {
        self.clear_with(false)
    }

    /// Empties the file entirely under its lock: the pending records, parked
    /// files, and the history (streaks, when failures were reported, the
    /// run count, the time of the last email). The next run starts as the
    /// first one did: every failure is new.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let cleared = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).clear_all()?;
    /// assert!(cleared.history_removed);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn clear_all(&self) -> Result<Cleared, Error> {
        self.clear_with(true)
    }

    fn clear_with(&self, all: bool) -> Result<Cleared, Error> {
        let lock = self.store.lock()?;
        let loaded = self.store.load(&lock, None)?;
        let mut state = loaded.state;
        let cleared = Cleared {
            records: state.pending.len(),
            parked_files: loaded.parked.len(),
            failures: state.history.streaks.len(),
            history_removed: all,
        };
        if all {
            state = State {
                version: state.version,
                parked_merged: state.parked_merged,
                ..State::default()
            };
        }
        state.pending.clear();
        state.dropped = 0;
        state.last_error = None;
        state.last_error_at = None;
        self.store.save(&lock, &state)?;
        self.store.remove_parked(&loaded.parked);
        Ok(cleared)
    }
}

impl Snapshot {
    /// Pending records exactly at `level`.
    ///
    /// ```
    /// # fn f(s: &tracing_email::inspect::Snapshot) {
    /// println!("{} warnings", s.count(tracing::Level::WARN));
    /// # }
    /// ```
    pub fn count(&self, level: Level) -> usize {
        self.pending.iter().filter(|r| r.level == level).count()
    }

    /// Pending records at `level` or more severe.
    ///
    /// ```
    /// # fn f(s: &tracing_email::inspect::Snapshot) {
    /// println!("{} warnings or errors", s.count_at_least(tracing::Level::WARN));
    /// # }
    /// ```
    pub fn count_at_least(&self, level: Level) -> usize {
        let min = severity(level);
        self.pending
            .iter()
            .filter(|r| severity(r.level) >= min)
            .count()
    }

    /// How many more records at `level` or above `threshold(count, level)`
    /// needs before it sends (0: it sends at the next flush).
    ///
    /// ```
    /// # fn f(s: &tracing_email::inspect::Snapshot) {
    /// println!("{} more warnings to go", s.still_needed(5, tracing::Level::WARN));
    /// # }
    /// ```
    pub fn still_needed(&self, count: usize, level: Level) -> usize {
        count.saturating_sub(self.count_at_least(level))
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = self.file_rows();
        if self.unflushed > 0 {
            let n = plural(self.unflushed, "record", "records");
            let text =
                format!("{n} captured by this process, not in the file until the next flush");
            rows.push(("unflushed", text));
        }
        if let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) {
            let (first, last) = (utc_time(first.timestamp), utc_time(last.timestamp));
            rows.push(("waiting", format!("since {first} (newest {last})")));
        }
        if self.dropped > 0 {
            let text = format!("{} older records, not yet reported", self.dropped);
            rows.push(("dropped", text));
        }
        if self.parked_files > 0 {
            let text = format!("{} files, merged by the next flush", self.parked_files);
            rows.push(("parked", text));
        }
        if self.exists {
            rows.push(("runs", format!("{} flushed so far", self.runs)));
        }
        let heads = std::iter::once("failures").chain(std::iter::repeat(""));
        rows.extend(heads.zip(self.failures.iter().map(|f| f.describe(self.runs))));
        rows.extend(self.alert_rows());
        let last_sent = self.last_sent.map_or_else(|| "never".to_owned(), utc_time);
        rows.push(("last sent", last_sent));
        let error = self.last_error.as_deref().unwrap_or("none");
        rows.push(("last error", error.to_owned()));
        rows.extend(self.policy_row().map(|text| ("policy", text)));
        rows
    }

    fn file_rows(&self) -> Vec<(&'static str, String)> {
        let (path, pending) = (self.path.display(), self.pending.len());
        let mut rows = vec![("state file", path.to_string())];
        if !self.exists {
            rows[0].1 = format!(
                "no state file at {path} (no run has flushed there yet; a program whose config \
                 sets state_file keeps it at that path)"
            );
        }
        rows.push(("pending", format!("{pending} records")));
        if pending > 0 {
            let by_level = level_counts(&self.pending, |n| n.to_string());
            rows[1].1 += &format!(" ({by_level})");
        }
        rows
    }

    fn alert_rows(&self) -> Vec<(&'static str, String)> {
        let alerts = &self.alerts;
        let post = self.last_alert_post.as_ref();
        if alerts.is_empty() && post.is_none() {
            return Vec::new();
        }
        let firing = alerts.iter().filter(|a| a.is_firing()).count();
        let mut heading = match firing {
            0 => "none firing".to_owned(),
            n => format!("{} firing", plural(n, "alert", "alerts")),
        };
        if alerts.len() > firing {
            let over = plural(alerts.len() - firing, "resolution", "resolutions");
            heading += &format!(", {over} not accepted yet");
        }
        let mut rows = vec![("alerts", format!("Alertmanager: {heading}"))];
        rows.extend(alerts.iter().map(|alert| ("", alert.to_string())));
        rows.extend(post.map(|post| ("", format!("last post: {}, {post}", utc_time(post.at)))));
        rows
    }

    fn policy_row(&self) -> Option<String> {
        let pending = self.pending.len();
        Some(match self.verdict.as_ref()? {
            Verdict::Nothing => return None,
            Verdict::Hold { waiting_for } => {
                format!(
                    "holds {}: {waiting_for}",
                    plural(pending, "pending record", "pending records")
                )
            }
            Verdict::Wait { until } => format!(
                "waits: a rule is met, but min_interval keeps the next email (of the {pending} \
                 pending records) until {}",
                utc_time(*until)
            ),
            Verdict::Send { records } => {
                format!("sends {records} of the {pending} pending records at the next flush")
            }
        })
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rows()
            .iter()
            .try_for_each(|(head, text)| writeln!(f, "{head:<13}{text}"))
    }
}

impl Failure {
    /// `url "b.json" (WARN): 4 runs in a row, since …, reported …`.
    fn describe(&self, last_run: u64) -> String {
        let runs = match self.runs {
            1 => "1 run".to_owned(),
            n => format!("{n} runs in a row"),
        };
        let over = match self.last_run < last_run {
            true => " (not in the last run: its streak is over)",
            false => "",
        };
        let quiet = match (self.quiet, self.quiet_until) {
            (false, _) => String::new(),
            (true, Some(until)) => format!(", quiet until {} (repeat_after)", utc_time(until)),
            (true, None) => {
                ", quiet until a run without it (consecutive_runs reports a streak once)".into()
            }
        };
        let reported = match self.reported {
            None => "not reported yet".to_owned(),
            Some(at) => format!("reported {}{quiet}", utc_time(at)),
        };
        let (since, last) = (utc_time(self.since), utc_time(self.last_seen));
        format!(
            "{} ({}): {runs}, since {since}, last {last}{over}; {reported}",
            self.label, self.level
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;

    impl StateFile {
        fn judged(&self, policy: &Policy, now: OffsetDateTime, run: Option<u64>) -> Snapshot {
            self.read(Some((policy, now, run))).unwrap()
        }
    }

    fn file_with(levels: &[Level]) -> (tempfile::TempDir, StateFile) {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(dir.path().join("state.json"));
        let lock = file.store.lock().unwrap();
        let state = State {
            version: crate::store::state::VERSION,
            generation: 0,
            pending: levels.iter().map(|l| record_at(*l)).collect(),
            dropped: 3,
            last_sent: None,
            last_error: Some("the server rejected the login (535)".into()),
            last_error_at: None,
            history: Default::default(),
            alerts: Default::default(),
            alert_post: None,
            parked_merged: Vec::new(),
        };
        file.store.save(&lock, &state).unwrap();
        (dir, file)
    }

    #[test]
    fn a_snapshot_counts_per_level_and_says_why_nothing_was_sent() {
        let (_dir, file) = file_with(&[Level::WARN, Level::INFO, Level::ERROR, Level::WARN]);
        let s = file.snapshot().unwrap();
        assert_eq!(s.pending.len(), 4);
        assert_eq!(s.count(Level::WARN), 2);
        assert_eq!(s.count_at_least(Level::WARN), 3);
        assert_eq!(s.still_needed(5, Level::WARN), 2);
        assert_eq!(s.still_needed(2, Level::ERROR), 1);
        let text = s.to_string();
        assert!(
            text.contains("pending      4 records (1 ERROR, 2 WARN, 1 INFO)"),
            "{text}"
        );
        assert!(text.contains("dropped      3 older records"), "{text}");
        assert!(text.contains("last sent    never"), "{text}");
        assert!(
            text.contains("last error   the server rejected the login (535)"),
            "{text}"
        );
        let policy = Policy {
            threshold: Some((5, Level::WARN)),
            ..Policy::default()
        };
        let text = file
            .judged(&policy, OffsetDateTime::UNIX_EPOCH, None)
            .to_string();
        assert!(
            text.contains(
                "policy       holds 4 pending records: 3 of the 5 warnings or errors needed"
            ),
            "{text}"
        );
    }

    /// A state file after runs 1–4 of `url "b.json"` (reported at hour 3,
    /// in run 3) and run 3 of `url "c.json"`, with the records of run 4.
    fn file_with_streaks() -> (tempfile::TempDir, StateFile, OffsetDateTime) {
        let hour = |h: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::hours(h);
        let record = |url: &str, h: i64| {
            let mut r = record_at(Level::WARN);
            r.message = "fetch failed".into();
            r.fields.push("url".into(), serde_json::json!(url));
            r.timestamp = hour(h);
            r
        };
        let fields = ["url".to_owned()];
        let mut history = crate::store::history::History::default();
        for h in 1..=4 {
            let run = history.start_run();
            let mut seen = vec![record("b.json", h)];
            if h == 3 {
                seen.push(record("c.json", h));
            }
            for r in &seen {
                let fp = crate::store::history::fingerprint(r, &fields);
                history.observe(run, &fp, r.level, r.timestamp);
            }
            if h == 3 {
                let key = crate::store::history::fingerprint(&seen[0], &fields).key;
                history.reported([key.as_str()], hour(3));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(dir.path().join("state.json"));
        let lock = file.store.lock().unwrap();
        let state = State {
            version: crate::store::state::VERSION,
            generation: 0,
            pending: vec![record("b.json", 4)],
            dropped: 0,
            last_sent: Some(hour(3)),
            last_error: None,
            last_error_at: None,
            history,
            alerts: Default::default(),
            alert_post: None,
            parked_merged: Vec::new(),
        };
        file.store.save(&lock, &state).unwrap();
        (dir, file, hour(5))
    }

    fn by_url(consecutive_runs: u64, repeat_after: Option<Duration>) -> Policy {
        Policy {
            consecutive_runs: Some(consecutive_runs),
            repeat_after,
            fingerprint_fields: vec!["url".into()],
            ..Policy::default()
        }
    }

    #[test]
    fn a_snapshot_shows_each_failure_with_its_streak_and_when_it_is_quiet() {
        let (_dir, file, now) = file_with_streaks();
        let utc = |h: i64| {
            crate::capture::record::utc_time(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(h))
        };
        let s = file.snapshot().unwrap();
        assert!(s.exists);
        assert_eq!(s.runs, 4);
        let labels: Vec<(&str, u64, u64)> = s
            .failures
            .iter()
            .map(|f| (f.label.as_str(), f.runs, f.last_run))
            .collect();
        assert_eq!(
            labels,
            [(r#"url "b.json""#, 4, 4), (r#"url "c.json""#, 1, 3)]
        );
        let b = &s.failures[0];
        assert_eq!(
            b.reported,
            Some(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(3))
        );
        assert!(!b.quiet, "no policy given: not known");
        let text = s.to_string();
        assert!(
            text.contains(&format!(
                r#"failures     url "b.json" (WARN): 4 runs in a row, since {}, last {}; reported {}"#,
                utc(1),
                utc(4),
                utc(3)
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"url "c.json" (WARN): 1 run"#)
                && text.contains("(not in the last run: its streak is over); not reported yet"),
            "{text}"
        );
        assert!(text.contains("runs         4 flushed so far"), "{text}");

        // With repeat_after: quiet until a day after the report.
        let day = Duration::from_secs(24 * 3600);
        let s = file.judged(&by_url(3, Some(day)), now, None);
        let b = &s.failures[0];
        assert!(b.quiet);
        assert_eq!(
            b.quiet_until,
            Some(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(27))
        );
        let text = s.to_string();
        assert!(
            text.contains(&format!(
                "reported {}, quiet until {} (repeat_after)",
                utc(3),
                utc(27)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"policy       holds 1 pending record: url "b.json" reported at {}, quiet until {} (repeat_after)"#,
                utc(3),
                utc(27)
            )),
            "{text}"
        );

        // consecutive_runs alone: quiet until the streak breaks.
        let s = file.judged(&by_url(3, None), now, None);
        assert!(s.failures[0].quiet && s.failures[0].quiet_until.is_none());
        let text = s.to_string();
        assert!(
            text.contains("quiet until a run without it (consecutive_runs reports a streak once)"),
            "{text}"
        );
        // A longer streak is needed than b.json had when reported: not quiet.
        let s = file.judged(&by_url(5, None), now, None);
        assert!(!s.failures[0].quiet);
        assert_eq!(
            s.verdict,
            Some(Verdict::Hold {
                waiting_for: WaitingFor::Streak {
                    label: Some(r#"url "b.json""#.into()),
                    runs: 4,
                    needed: 5,
                    level: Level::WARN,
                }
            })
        );
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elsewhere.json");
        let s = StateFile::open(&path).snapshot().unwrap();
        assert!(!s.exists);
        let text = s.to_string();
        assert!(
            text.starts_with(&format!("state file   no state file at {}", path.display())),
            "{text}"
        );
        assert!(!path.exists(), "looking creates nothing");
    }

    #[test]
    fn clear_keeps_the_history_and_clear_all_forgets_it() {
        let (_dir, file, _) = file_with_streaks();
        let cleared = file.clear().unwrap();
        assert_eq!(
            (cleared.records, cleared.failures, cleared.history_removed),
            (1, 2, false)
        );
        assert_eq!(
            cleared.to_string(),
            "removed 1 pending record; kept the history (2 failure streaks, and when each was \
             reported: a reported failure stays quiet) and the time of the last email"
        );
        let s = file.snapshot().unwrap();
        assert!(s.pending.is_empty());
        assert_eq!((s.failures.len(), s.runs), (2, 4));
        assert!(s.last_sent.is_some());

        let cleared = file.clear_all().unwrap();
        assert_eq!(
            (cleared.records, cleared.failures, cleared.history_removed),
            (0, 2, true)
        );
        assert!(
            cleared.to_string().contains("every failure is new again"),
            "{cleared}"
        );
        let s = file.snapshot().unwrap();
        assert!(s.failures.is_empty());
        assert_eq!((s.runs, s.last_sent), (0, None));
        assert!(s.exists, "an empty state file, not none");
    }

    #[test]
    fn the_verdict_takes_times_ahead_of_the_clock_as_now_as_a_flush_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let text = r#"{"version":1,"pending":[
            {"time":"9999-12-31T23:59:59.999999999-23:59","level":"WARN","target":"t","message":"m"}],
            "last_sent":"2099-01-01T00:00:00Z"}"#;
        std::fs::write(&path, text).unwrap();
        let snapshot = StateFile::open(&path).snapshot().unwrap();
        // Shown as written, and no panic for a time with no UTC date.
        let shown = snapshot.to_string();
        assert!(shown.contains("since 9999-12-31 23:59:59"), "{shown}");
        assert!(
            shown.contains("last sent    2099-01-01 00:00:00 UTC"),
            "{shown}"
        );
        let policy = Policy {
            threshold: Some((1, Level::WARN)),
            min_interval: Some(Duration::from_secs(3600)),
            ..Policy::default()
        };
        let now = time::macros::datetime!(2026-11-22 04:00 UTC);
        let judged = StateFile::open(&path).judged(&policy, now, None);
        // Taken as sent now: the next may go an hour from now, not in 2099.
        assert_eq!(
            judged.verdict,
            Some(Verdict::Wait {
                until: now + time::Duration::hours(1)
            })
        );
        assert_eq!(
            judged.last_sent, snapshot.last_sent,
            "the snapshot shows the file"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "unchanged");
    }

    #[test]
    fn a_snapshot_changes_nothing_and_a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = StateFile::open(&path).snapshot().unwrap_err();
        assert!(err.to_string().contains("not a valid state file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn clear_empties_the_file_and_says_how_many_records_it_dropped() {
        let (_dir, file) = file_with(&[Level::WARN, Level::INFO]);
        assert_eq!(file.clear().unwrap().records, 2);
        let s = file.snapshot().unwrap();
        assert!(s.pending.is_empty());
        assert_eq!((s.dropped, s.last_error), (0, None));
        assert_eq!(file.clear().unwrap().records, 0);
    }
    #[cfg(unix)]
    #[test]
    fn snapshot_and_clear_refuse_a_fifo_or_a_device_at_once() {
        use crate::store::file::tests::{mkfifo, within_5s};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("state.json");
        mkfifo(&fifo);
        for path in [fifo.clone(), PathBuf::from("/dev/null")] {
            let file = StateFile::open(&path);
            let (snapshot, clear) =
                within_5s(move || (file.snapshot().unwrap_err(), file.clear().unwrap_err()));
            for err in [snapshot, clear] {
                let text = err.to_string();
                assert!(text.contains(&path.display().to_string()), "{text}");
                assert!(text.contains("not a regular file"), "{text}");
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!Path::new("/dev/null.lock").exists());
    }
}
