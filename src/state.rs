//! The state file: what is pending across runs. Locked with a separate
//! `.lock` file (the data file itself is replaced by rename), written
//! atomically, readable only by its owner.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind};
use crate::record::Record;

/// The version of the state file's layout this crate writes.
pub(crate) const VERSION: u32 = 1;

/// The content of the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) pending: Vec<Record>,
    /// Records dropped because of the pending limit, not yet reported.
    #[serde(default)]
    pub(crate) dropped: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) last_sent: Option<OffsetDateTime>,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
    /// Runs and the streaks of failures across them.
    #[serde(default)]
    pub(crate) history: crate::history::History,
}

impl State {
    fn new() -> Self {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    /// Takes every time later than `now` as `now` (`last_sent`, the pending
    /// records' times, the streaks' times): such a time was written under a
    /// clock that was wrong, and left as it is it would hold every email
    /// (`min_interval`), keep a failure quiet (`repeat_after`) or keep a
    /// record from ever being old (`max_age`) for as long as the clock was
    /// ahead. Returns the state file keys of the times moved, each once.
    pub(crate) fn clamp_future(&mut self, now: OffsetDateTime) -> Vec<&'static str> {
        use crate::history::clamp;
        let mut moved = Vec::new();
        if let Some(at) = &mut self.last_sent
            && clamp(at, now)
        {
            moved.push("last_sent");
        }
        // Oldest first stays oldest first: the moved ones are the newest.
        let mut records = false;
        for record in &mut self.pending {
            records |= clamp(&mut record.timestamp, now);
        }
        if records {
            moved.push("pending.time");
        }
        moved.extend(self.history.clamp_future(now));
        moved
    }
}

/// Where the state lives and how long to wait for its lock.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: PathBuf,
    lock_path: PathBuf,
    lock_timeout: Duration,
}

/// What to do with a state file that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// Move it aside and start afresh (a flush).
    MoveAside,
    /// Report it and change nothing (inspection).
    No,
}

/// The default state file of `app`: `tracing-email.json` in the app's folder
/// under `directories`' `state_dir()`, else `data_local_dir()`.
pub(crate) fn default_path(app: &str) -> Result<PathBuf, Error> {
    let dirs = directories::ProjectDirs::from("", "", app).ok_or_else(|| {
        Error::config(
            "could not find a folder for the state file (no home directory?); \
             set one with .state_file(path)",
        )
    })?;
    let dir = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir());
    Ok(dir.join(crate::STATE_FILE_NAME))
}

/// A loaded state and the parked files merged into it (to remove once the
/// state is saved).
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) parked: Vec<PathBuf>,
}

/// Holds the exclusive lock on the state until dropped.
pub(crate) struct StateLock {
    _file: File,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(what: String, e: io::Error) -> Error {
    Error::with_source(ErrorKind::State, what, e)
}

impl StateStore {
    pub(crate) fn new(path: PathBuf, lock_timeout: Duration) -> Self {
        StateStore {
            lock_path: with_suffix(&path, ".lock"),
            path,
            lock_timeout,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn create_dir(&self) -> Result<(), Error> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| {
            io_error(
                format!("could not create the state folder {}", dir.display()),
                e,
            )
        })
    }

    /// Takes the exclusive lock, waiting at most the lock timeout.
    pub(crate) fn lock(&self) -> Result<StateLock, Error> {
        self.create_dir()?;
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| {
                io_error(
                    format!("could not open the lock file {}", self.lock_path.display()),
                    e,
                )
            })?;
        let deadline = crate::clock::instant_after(self.lock_timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StateLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::new(
                        ErrorKind::Busy,
                        format!(
                            "the state file {} stayed locked by another process for {:?}; \
                             the records are kept and the next flush tries again",
                            self.path.display(),
                            self.lock_timeout
                        ),
                    ));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(io_error(
                        format!("could not lock {}", self.lock_path.display()),
                        e,
                    ));
                }
            }
        }
    }

    /// Applies [`State::clamp_future`] to `state` and, if a time was moved,
    /// says so on stderr, naming the times and this file. Returns whether
    /// the state changed (and should be saved).
    pub(crate) fn clamp_future(&self, state: &mut State, now: OffsetDateTime) -> bool {
        let moved = state.clamp_future(now);
        if !moved.is_empty() {
            eprintln!(
                "tracing-email: the state file {} holds times later than now ({}) in {}; \
                 they were written under a clock that was ahead and are taken as now",
                self.path.display(),
                crate::record::utc_time(now),
                moved.join(", ")
            );
        }
        !moved.is_empty()
    }

    /// Reads the state, with the records of any parked files (see
    /// [`park`](Self::park)) merged in time order. A missing file is an empty
    /// state; a file that is not a state (corrupt, truncated, empty) is moved
    /// aside, with a warning on stderr, and an empty state is returned; a file
    /// written by a newer version of this crate is an error and is left alone.
    pub(crate) fn load(&self, _lock: &StateLock) -> Result<Loaded, Error> {
        let mut state = match self.read(&self.path, Repair::MoveAside)? {
            Some(state) => state,
            None => State::new(),
        };
        let parked = self.parked_files();
        let mut merged = Vec::new();
        for path in parked {
            // A parked file that cannot be used is left where it is (or moved
            // aside when corrupt) and does not stop the flush.
            if let Ok(Some(extra)) = self.read(&path, Repair::MoveAside) {
                state.pending.extend(extra.pending);
                state.dropped = state.dropped.saturating_add(extra.dropped);
                merged.push(path);
            }
        }
        if !merged.is_empty() {
            state.pending.sort_by_key(|r| r.timestamp);
        }
        Ok(Loaded {
            state,
            parked: merged,
        })
    }

    /// Reads the state without the lock and without changing anything: for
    /// inspection. The file is replaced by rename, so what is read is always
    /// one whole version of it. A corrupt file is an error here.
    pub(crate) fn peek(&self) -> Result<(State, usize), Error> {
        let state = self
            .read(&self.path, Repair::No)?
            .unwrap_or_else(State::new);
        Ok((state, self.parked_files().len()))
    }

    /// Reads one state file: `None` when it does not exist or was corrupt
    /// (and has been moved aside, with `Repair::MoveAside`).
    fn read(&self, path: &Path, repair: Repair) -> Result<Option<State>, Error> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(io_error(
                    format!("could not read the state file {}", path.display()),
                    e,
                ));
            }
        };
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        if let Ok(v) = serde_json::from_slice::<Version>(&bytes)
            && v.version > VERSION
        {
            return Err(Error::new(
                ErrorKind::State,
                format!(
                    "the state file {} has version {}, written by a newer tracing-email \
                     (this one reads version {VERSION}); it is left untouched: upgrade \
                     tracing-email or choose another state file",
                    path.display(),
                    v.version
                ),
            ));
        }
        match serde_json::from_slice::<State>(&bytes) {
            Ok(state) => Ok(Some(state)),
            Err(e) if repair == Repair::No => Err(Error::with_source(
                ErrorKind::State,
                format!(
                    "the state file {} is not a valid state file; the next flush moves it aside",
                    path.display()
                ),
                e,
            )),
            Err(e) => {
                let aside = move_aside(path)?;
                eprintln!(
                    "tracing-email: the state file {} could not be read ({e}); it was moved to {} \
                     and a fresh one is used",
                    path.display(),
                    aside.display()
                );
                Ok(None)
            }
        }
    }

    /// The parked files of this state file, oldest first.
    fn parked_files(&self) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (self.dir(), self.path.file_name()) else {
            return Vec::new();
        };
        let prefix = format!("{}.parked-", name.to_string_lossy());
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.starts_with(&prefix) && n.ends_with(".json")
                    })
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// Writes records that could not wait for the lock into a file of their
    /// own beside the state file, to be merged by the next flush that gets
    /// the lock. Returns its path.
    pub(crate) fn park(&self, records: &[Record], dropped: u64) -> Result<PathBuf, Error> {
        self.create_dir()?;
        let path = with_suffix(
            &self.path,
            &format!(
                ".parked-{}-{}.json",
                crate::record::file_stamp(OffsetDateTime::now_utc()),
                std::process::id()
            ),
        );
        #[derive(Serialize)]
        struct Parked<'a> {
            version: u32,
            pending: &'a [Record],
            dropped: u64,
        }
        let parked = Parked {
            version: VERSION,
            pending: records,
            dropped,
        };
        write_atomic(&path, &parked)?;
        Ok(path)
    }

    /// Removes parked files whose records are now in the state file.
    pub(crate) fn remove_parked(&self, parked: &[PathBuf]) {
        for path in parked {
            let _ = fs::remove_file(path);
        }
    }

    fn dir(&self) -> Option<&Path> {
        match self.path.parent() {
            Some(d) if d.as_os_str().is_empty() => Some(Path::new(".")),
            other => other,
        }
    }

    /// Replaces the state file atomically: a temporary file in the same
    /// folder, fsync, rename over the old one, fsync of the folder.
    pub(crate) fn save(&self, _lock: &StateLock, state: &State) -> Result<(), Error> {
        write_atomic(&self.path, state)
    }
}

fn move_aside(path: &Path) -> Result<PathBuf, Error> {
    let aside = with_suffix(
        path,
        &format!(
            ".corrupt-{}",
            crate::record::file_stamp(OffsetDateTime::now_utc())
        ),
    );
    fs::rename(path, &aside).map_err(|e| {
        io_error(
            format!(
                "the state file {} is unreadable and could not be moved aside",
                path.display()
            ),
            e,
        )
    })?;
    Ok(aside)
}

/// Writes `state` to `path` atomically: a temporary file in the same folder
/// (mode 0600), fsync, rename over `path`, fsync of the folder.
fn write_atomic(path: &Path, state: &impl Serialize) -> Result<(), Error> {
    let fail = |what: &str, e: io::Error| {
        io_error(
            format!("could not {what} the state file {}", path.display()),
            e,
        )
    };
    let bytes = serde_json::to_vec(state)
        .map_err(|e| Error::with_source(ErrorKind::State, "could not encode the state", e))?;
    let tmp = with_suffix(path, &format!(".tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(fail("replace", e));
    }
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("sync the folder of", e))?;
    }
    Ok(())
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use tracing::Level;

    fn store(dir: &Path) -> StateStore {
        StateStore::new(dir.join("sub").join("state.json"), Duration::from_secs(5))
    }

    #[test]
    fn missing_file_is_an_empty_state_and_save_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut state = store.load(&lock).unwrap().state;
        assert_eq!(state.version, VERSION);
        assert!(state.pending.is_empty());
        state.pending.push(record_at(Level::WARN));
        state.last_error = Some("refused".into());
        store.save(&lock, &state).unwrap();
        assert_eq!(store.load(&lock).unwrap().state, state);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn folder_is_0700_and_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        store.save(&lock, &State::new()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn file_format_has_version_and_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        store.save(&lock, &State::new()).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["pending"], serde_json::json!([]));
        assert_eq!(v["dropped"], 0);
    }

    #[test]
    fn corrupt_files_are_moved_aside_and_a_fresh_state_is_used() {
        for bad in [
            &b""[..],
            b"{\"version\":1,\"pending\":[",
            b"\x00\xff\x13garbage",
            b"[]",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = store(dir.path());
            let lock = store.lock().unwrap();
            fs::write(store.path(), bad).unwrap();
            let state = store.load(&lock).unwrap().state;
            assert!(state.pending.is_empty());
            assert!(!store.path().exists());
            let aside: Vec<_> = fs::read_dir(store.path().parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with("state.json.corrupt-"))
                .collect();
            assert_eq!(aside.len(), 1);
            let kept = fs::read(store.path().parent().unwrap().join(&aside[0])).unwrap();
            assert_eq!(kept, bad);
        }
    }

    #[test]
    fn newer_version_is_an_error_and_the_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let text = r#"{"version":2,"pending":[],"future":true}"#;
        fs::write(store.path(), text).unwrap();
        let err = store.load(&lock).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::State);
        assert!(err.to_string().contains("version 2"), "{err}");
        assert_eq!(fs::read_to_string(store.path()).unwrap(), text);
    }

    #[test]
    fn parked_records_are_merged_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let at = |secs: i64, level| {
            let mut r = record_at(level);
            r.timestamp = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            r
        };
        let parked = store.park(&[at(2, Level::WARN)], 3).unwrap();
        assert!(parked.to_string_lossy().contains("state.json.parked-"));
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.pending = vec![at(1, Level::INFO), at(3, Level::INFO)];
        store.save(&lock, &state).unwrap();
        let loaded = store.load(&lock).unwrap();
        let levels: Vec<Level> = loaded.state.pending.iter().map(|r| r.level).collect();
        assert_eq!(levels, [Level::INFO, Level::WARN, Level::INFO]);
        assert_eq!(loaded.state.dropped, 3);
        assert_eq!(loaded.parked, std::slice::from_ref(&parked));
        store.remove_parked(&loaded.parked);
        assert!(!parked.exists());
        assert_eq!(store.load(&lock).unwrap().state.pending.len(), 2);
    }

    #[test]
    fn times_ahead_of_the_clock_are_taken_as_now_and_named() {
        use time::macros::datetime;
        let now = datetime!(2026-11-22 04:00 UTC);
        let ahead = datetime!(2099-01-01 00:00 UTC);
        let at = |t| {
            let mut r = record_at(Level::WARN);
            r.timestamp = t;
            r
        };
        let mut state = State::new();
        state.pending = vec![at(now - time::Duration::hours(1)), at(ahead)];
        state.last_sent = Some(ahead);
        let run = state.history.start_run();
        let fp = crate::history::Fingerprint {
            key: "k".into(),
            label: "k".into(),
        };
        state.history.observe(run, &fp, Level::WARN, ahead);
        assert_eq!(
            state.clamp_future(now),
            [
                "last_sent",
                "pending.time",
                "history.streaks.since",
                "history.streaks.last_seen"
            ]
        );
        assert_eq!(state.last_sent, Some(now));
        let times: Vec<_> = state.pending.iter().map(|r| r.timestamp).collect();
        assert_eq!(
            times,
            [now - time::Duration::hours(1), now],
            "still oldest first"
        );
        assert!(state.clamp_future(now).is_empty());
        // The store says whether anything moved, so the flush saves it.
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        state.last_sent = Some(ahead);
        assert!(store.clamp_future(&mut state, now));
        assert!(!store.clamp_future(&mut state, now));
    }

    #[test]
    fn a_dropped_count_at_its_end_stays_there_when_parked_files_add_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.park(&[record_at(Level::WARN)], u64::MAX).unwrap();
        store.park(&[record_at(Level::WARN)], 5).unwrap();
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.dropped = 3;
        store.save(&lock, &state).unwrap();
        let loaded = store.load(&lock).unwrap().state;
        assert_eq!((loaded.dropped, loaded.pending.len()), (u64::MAX, 2));
    }

    #[test]
    fn any_lock_timeout_is_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for timeout in [Duration::ZERO, Duration::from_secs(u64::MAX), Duration::MAX] {
            let store = StateStore::new(path.clone(), timeout);
            drop(store.lock().unwrap());
        }
        // A busy lock with no time to wait reports busy at once.
        let held = StateStore::new(path.clone(), Duration::MAX).lock().unwrap();
        let err = StateStore::new(path, Duration::ZERO).lock().err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Busy);
        drop(held);
    }

    #[test]
    fn a_second_locker_waits_then_reports_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = StateStore::new(path.clone(), Duration::from_secs(5));
        let second = StateStore::new(path, Duration::from_millis(50));
        let held = first.lock().unwrap();
        let err = second.lock().err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Busy);
        drop(held);
        assert!(second.lock().is_ok());
    }
}
