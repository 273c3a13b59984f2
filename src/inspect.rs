//! Looking into a state file: what is pending, since when, what was last
//! sent or went wrong, and what the policy still waits for. Reading changes
//! nothing; [`StateFile::clear`] is the one way to empty it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::Level;

use crate::error::Error;
use crate::policy::{Decision, Facts, Phase, Policy};
use crate::record::{Record, severity};
use crate::state::StateStore;

/// A state file, opened to look into it (and, on request, to empty it).
///
/// ```
/// use tracing_email::StateFile;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let file = StateFile::open(dir.path().join("state.json"));
/// let snapshot = file.snapshot()?;           // a missing file is an empty state
/// assert_eq!(snapshot.pending.len(), 0);
/// println!("{snapshot}");
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateFile {
    store: StateStore,
}

/// What a state file holds at one moment.
///
/// Its `Display` is a small table a person reads at a glance.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let snapshot = tracing_email::StateFile::open(dir.path().join("s.json")).snapshot()?;
/// println!("{snapshot}");
/// println!("{} warnings or worse", snapshot.count_at_least(tracing::Level::WARN));
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The state file.
    pub path: PathBuf,
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
    /// What the program's policy would do at a flush now; known only for a
    /// snapshot taken through [`FlushGuard::snapshot`](crate::FlushGuard::snapshot).
    pub verdict: Option<Verdict>,
    history: crate::history::History,
}

/// What the policy would do with the pending records at a flush now.
///
/// ```
/// use tracing_email::Verdict;
///
/// fn explain(verdict: Verdict) -> String {
///     match verdict {
///         Verdict::Hold { counted, needed } => format!("{counted} of {needed}"),
///         Verdict::Send { records } => format!("sends {records}"),
///         other => format!("{other:?}"),
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Nothing is pending.
    Nothing,
    /// Hold: `counted` records count toward the threshold, `needed` are
    /// needed.
    Hold {
        /// Pending records that count toward the threshold.
        counted: usize,
        /// Records the threshold needs.
        needed: usize,
    },
    /// A rule is met, but `min_interval` keeps the next email until then.
    Wait {
        /// When the next email may go.
        until: OffsetDateTime,
    },
    /// Send this many records.
    Send {
        /// Records that would be sent.
        records: usize,
    },
}

impl StateFile {
    /// The state file at `path`.
    ///
    /// ```
    /// let file = tracing_email::StateFile::open("/var/lib/poca/tracing-email.json");
    /// ```
    pub fn open(path: impl Into<PathBuf>) -> Self {
        StateFile {
            store: StateStore::new(path.into(), Duration::from_secs(10)),
        }
    }

    /// The default state file of the program called `app` (see
    /// [`Builder::state_file`](crate::Builder::state_file)).
    ///
    /// ```
    /// let file = tracing_email::StateFile::for_app("poca")?;
    /// assert!(file.path().ends_with("tracing-email.json"));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn for_app(app: &str) -> Result<Self, Error> {
        Ok(StateFile::open(crate::state::default_path(app)?))
    }

    /// Its path.
    ///
    /// ```
    /// let file = tracing_email::StateFile::open("state.json");
    /// assert_eq!(file.path(), std::path::Path::new("state.json"));
    /// ```
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Reads what is pending, without the lock and without changing
    /// anything (the file is replaced by rename, so the read sees one whole
    /// version). A missing file is an empty state; a corrupt one is an error,
    /// and so is a path that is not a regular file (a FIFO, a device, a
    /// folder: refused at once, never opened for a blocking read).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let snapshot = tracing_email::StateFile::open(dir.path().join("s.json")).snapshot()?;
    /// assert!(snapshot.last_sent.is_none());
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let (state, parked_files) = self.store.peek()?;
        Ok(Snapshot {
            path: self.path().to_path_buf(),
            pending: state.pending,
            dropped: state.dropped,
            last_sent: state.last_sent,
            last_error: state.last_error,
            parked_files,
            verdict: None,
            history: state.history,
        })
    }

    /// Empties the state file under its lock (parked files included) and
    /// returns how many pending records were dropped. `last_sent` is kept.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let dropped = tracing_email::StateFile::open(dir.path().join("s.json")).clear()?;
    /// assert_eq!(dropped, 0);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn clear(&self) -> Result<usize, Error> {
        let lock = self.store.lock()?;
        let loaded = self.store.load(&lock)?;
        let mut state = loaded.state;
        let dropped = state.pending.len();
        state.pending.clear();
        state.dropped = 0;
        state.last_error = None;
        self.store.save(&lock, &state)?;
        self.store.remove_parked(&loaded.parked);
        Ok(dropped)
    }
}

impl Snapshot {
    /// Pending records exactly at `level`.
    ///
    /// ```
    /// # fn f(s: &tracing_email::Snapshot) {
    /// println!("{} warnings", s.count(tracing::Level::WARN));
    /// # }
    /// ```
    pub fn count(&self, level: Level) -> usize {
        self.pending.iter().filter(|r| r.level == level).count()
    }

    /// Pending records at `level` or more severe.
    ///
    /// ```
    /// # fn f(s: &tracing_email::Snapshot) {
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
    /// # fn f(s: &tracing_email::Snapshot) {
    /// println!("{} more warnings to go", s.still_needed(5, tracing::Level::WARN));
    /// # }
    /// ```
    pub fn still_needed(&self, count: usize, level: Level) -> usize {
        count.saturating_sub(self.count_at_least(level))
    }

    /// Adds what `policy` would decide at `now`, for the run `run`. Times
    /// later than `now` are taken as now, as a flush takes them.
    pub(crate) fn with_verdict(
        mut self,
        policy: &Policy,
        now: OffsetDateTime,
        run: Option<u64>,
    ) -> Self {
        let mut state = crate::state::State {
            pending: self.pending.clone(),
            last_sent: self.last_sent,
            history: self.history.clone(),
            ..Default::default()
        };
        state.clamp_future(now);
        let facts = Facts {
            now,
            last_sent: state.last_sent,
            history: &state.history,
            run: run.unwrap_or(state.history.runs),
        };
        self.verdict = Some(match policy.decide(&state.pending, Phase::Flush, &facts) {
            Decision::Nothing => Verdict::Nothing,
            Decision::Hold { counted, needed } => Verdict::Hold { counted, needed },
            Decision::Wait { until } => Verdict::Wait { until },
            Decision::Send { records, .. } => Verdict::Send { records },
        });
        self
    }
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "never".to_owned(), crate::record::utc_time)
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let levels = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ];
        let by_level: Vec<String> = levels
            .iter()
            .map(|l| (l, self.count(*l)))
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{n} {l}"))
            .collect();
        writeln!(f, "state file   {}", self.path.display())?;
        write!(f, "pending      {} records", self.pending.len())?;
        if !by_level.is_empty() {
            write!(f, " ({})", by_level.join(", "))?;
        }
        writeln!(f)?;
        if let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) {
            writeln!(
                f,
                "waiting      since {} (newest {})",
                when(Some(first.timestamp)),
                when(Some(last.timestamp))
            )?;
        }
        if self.dropped > 0 {
            writeln!(
                f,
                "dropped      {} older records, not yet reported",
                self.dropped
            )?;
        }
        if self.parked_files > 0 {
            writeln!(
                f,
                "parked       {} files, merged by the next flush",
                self.parked_files
            )?;
        }
        writeln!(f, "last sent    {}", when(self.last_sent))?;
        writeln!(
            f,
            "last error   {}",
            self.last_error.as_deref().unwrap_or("none")
        )?;
        match self.verdict {
            Some(Verdict::Nothing) | None => {}
            Some(Verdict::Hold { counted, needed }) => writeln!(
                f,
                "policy       holds: {counted} of the {needed} records it needs count toward the threshold"
            )?,
            Some(Verdict::Wait { until }) => writeln!(
                f,
                "policy       waits: min_interval keeps the next email until {}",
                when(Some(until))
            )?,
            Some(Verdict::Send { records }) => {
                writeln!(f, "policy       sends {records} records at the next flush")?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use crate::state::State;

    fn file_with(levels: &[Level]) -> (tempfile::TempDir, StateFile) {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(dir.path().join("state.json"));
        let lock = file.store.lock().unwrap();
        let state = State {
            version: crate::state::VERSION,
            pending: levels.iter().map(|l| record_at(*l)).collect(),
            dropped: 3,
            last_sent: None,
            last_error: Some("the server rejected the login (535)".into()),
            history: Default::default(),
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
        let text = s
            .with_verdict(&policy, OffsetDateTime::UNIX_EPOCH, None)
            .to_string();
        assert!(text.contains("holds: 3 of the 5 records"), "{text}");
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
        let judged = snapshot.clone().with_verdict(&policy, now, None);
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
        assert_eq!(file.clear().unwrap(), 2);
        let s = file.snapshot().unwrap();
        assert!(s.pending.is_empty());
        assert_eq!((s.dropped, s.last_error), (0, None));
        assert_eq!(file.clear().unwrap(), 0);
    }
    #[cfg(unix)]
    #[test]
    fn snapshot_and_clear_refuse_a_fifo_or_a_device_at_once() {
        use crate::state::tests::{mkfifo, within_5s};
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
