//! The state file's orchestration: where it is, its lock (a separate
//! `.lock` file, as the data file itself is replaced by rename), and
//! loading, saving and committing the state under it, from the snapshot
//! ([`snapshot`](super::snapshot)), the journal
//! ([`journal_file`](super::journal_file)), the parked files
//! ([`park`](super::park)) and the view kept in memory ([`kept`](super::kept)).
//!
//! Only regular files are read or replaced (see [`fs`](super::fs)). A
//! state file that is a symbolic link is written through: the link is
//! resolved at each lock, and the lock, the temporary file and parked files
//! live beside its target, so the link stays a link and two programs that
//! share one file through it also share its lock.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::error::{Error, ErrorKind};
use crate::store::fs::{
    check_regular, create_dir, create_regular, file_id, io_error, resolve_links, with_suffix,
};
use crate::store::journal_file::{journal_path, say_unreadable};
use crate::store::kept::{Loaded, Stamp, refresh, replay_past};
use crate::store::park::{merge_parked, unmerged};
use crate::store::snapshot::{Repair, next_generation, read};
use crate::store::state::{State, VERSION};

/// Replaying a journal then costs at most about reading this many snapshots, and
/// a growing state rewrites 1 + 1/ratio of the new records' bytes.
pub(crate) const COMPACT_RATIO: u64 = 4;

#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: PathBuf,
    lock_timeout: Duration,
}

pub(crate) const STATE_FILE_NAME: &str = "tracing-email.json";

/// Under `directories`' `state_dir()`, else `data_local_dir()`.
pub(crate) fn default_path(app: &str) -> Result<PathBuf, Error> {
    let dirs = directories::ProjectDirs::from("", "", app).ok_or_else(|| {
        Error::config(
            "could not find a folder for the state file (no home directory?); \
             set one with .state_file(path)",
        )
    })?;
    let dir = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir());
    Ok(dir.join(STATE_FILE_NAME))
}

pub(crate) struct StateLock {
    _file: File,
    /// Resolved when the lock was taken: what `load` reads and `save` replaces.
    target: PathBuf,
}

impl StateStore {
    pub(crate) fn new(path: PathBuf, lock_timeout: Duration) -> Self {
        StateStore { path, lock_timeout }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn target(&self) -> PathBuf {
        resolve_links(&self.path)
    }

    pub(crate) fn lock(&self) -> Result<StateLock, Error> {
        let target = self.target();
        // Before anything is created beside it; a link is named too.
        let named = |e: Error| match target == self.path {
            true => e,
            false => e.context(|e| format!("{e} ({} is a link to it)", self.path.display())),
        };
        check_regular(&target, "state file").map_err(named)?;
        create_dir(&target)?;
        let lock_path = with_suffix(&target, ".lock");
        let file = create_regular(&lock_path, "lock file", false)?;
        self.wait_for_lock(&file, &lock_path)?;
        Ok(StateLock {
            _file: file,
            target,
        })
    }

    fn wait_for_lock(&self, file: &File, lock_path: &Path) -> Result<(), Error> {
        let deadline = crate::clock::instant_after(self.lock_timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
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
                    return Err(io_error("lock", "lock file", lock_path, e));
                }
            }
        }
    }

    /// Says on stderr which times moved. Returns whether the state should be saved.
    pub(crate) fn clamp_future_from(
        &self,
        state: &mut State,
        now: OffsetDateTime,
        from: usize,
    ) -> bool {
        let moved = state.clamp_future_from(now, from);
        if !moved.is_empty() {
            crate::say::say!(
                "the state file {} holds times later than now ({}) in {}; \
                 they were written under a clock that was ahead and are taken as now",
                self.path.display(),
                crate::capture::record::utc_time(now),
                moved.join(", ")
            );
        }
        !moved.is_empty()
    }

    /// Parked files merged in. A missing file is an empty state; one that is not a
    /// state is moved aside with a warning (what reads is kept); a newer version's
    /// file, or a path that is not a regular file, is an error, left alone. With
    /// `kept`, nothing is read if the files are as this process left them; only the
    /// appended part if just the journal grew.
    pub(crate) fn load(
        &self,
        lock: &StateLock,
        kept: Option<(State, Stamp)>,
    ) -> Result<Loaded, Error> {
        let target = &lock.target;
        // A process's first flush clears what killed writers left (a
        // rewrite does too, see `save`); later ones need not look each time.
        if kept.is_none() {
            crate::store::leftovers::remove_dead_temporaries(target);
        }
        let mut loaded = match kept.and_then(|(state, stamp)| refresh(target, state, stamp)) {
            Some(loaded) => loaded,
            None => self.read_all(target, Repair::MoveAside)?,
        };
        loaded.parked = merge_parked(target, &mut loaded.state);
        if !loaded.parked.is_empty() {
            loaded.kept = 0;
        }
        if loaded.kept == 0 {
            // Read whole: the state may stay in memory for the run, so
            // without the slack that parsing into a growing list leaves.
            loaded.state.pending.shrink_to_fit();
        }
        Ok(loaded)
    }

    fn read_all(&self, target: &Path, repair: Repair) -> Result<Loaded, Error> {
        let snapshot = read(target, repair)?;
        let snapshot_read = snapshot.is_some();
        let id = snapshot.as_ref().and_then(|_| file_id(target));
        let mut state = snapshot.unwrap_or_else(State::new);
        let mut stamp = Stamp::new(state.generation, state.version, id);
        // A snapshot salvaged (moved aside, see `read`) is stored only by a rewrite.
        let mut needs_repair = state.version < VERSION || (snapshot_read && id.is_none());
        let (replayed, bytes) = replay_past(target, &mut state, &mut stamp)?;
        if replayed.garbage > 0 {
            say_unreadable(&journal_path(target), &bytes, replayed.garbage, repair);
        }
        // A stale journal was left by a compaction that crashed after
        // replacing the snapshot: all of it is in the snapshot already.
        // Without a snapshot (moved aside as corrupt, or removed by hand)
        // the journal's records are kept whatever it extends.
        needs_repair |= replayed.stale
            || replayed.garbage > 0
            || (stamp.snapshot.is_none() && !bytes.is_empty());
        Ok(Loaded {
            state,
            parked: Vec::new(),
            stamp,
            repair: needs_repair,
            kept: 0,
        })
    }

    /// Without the lock: the snapshot is replaced by rename and the journal grows by
    /// whole appends, so this reads one whole state. A corrupt snapshot is an error.
    pub(crate) fn peek(&self) -> Result<(State, usize), Error> {
        let target = self.target();
        let loaded = self.read_all(&target, Repair::No)?;
        let parked = unmerged(&target, &loaded.state);
        Ok((loaded.state, parked))
    }

    pub(crate) fn park(&self, records: &[Record], dropped: u64) -> Result<PathBuf, Error> {
        crate::store::park::park(&self.target(), records, dropped)
    }

    pub(crate) fn remove_parked(&self, parked: &[PathBuf]) {
        for path in parked {
            let _ = fs::remove_file(path);
        }
    }

    /// Atomically, under a new generation; then removes the journal (one a crash
    /// leaves names the old generation and is ignored). Temporaries of killed
    /// writers go first (see [`leftovers`](crate::store::leftovers)).
    pub(crate) fn save(&self, lock: &StateLock, state: &State) -> Result<Stamp, Error> {
        let generation = next_generation(state.generation);
        crate::store::leftovers::remove_dead_temporaries(&lock.target);
        crate::store::snapshot::write(&lock.target, state, generation)?;
        let journal = journal_path(&lock.target);
        if fs::symlink_metadata(&journal).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&journal);
        }
        Ok(Stamp::new(generation, VERSION, file_id(&lock.target)))
    }

    /// Appended to the journal (fsynced) when it can be, else the whole `state` by
    /// [`save`](Self::save). `stamp` is what the files were when `state` was read.
    pub(crate) fn commit(
        &self,
        lock: &StateLock,
        state: &State,
        stamp: Stamp,
        append: &crate::store::journal::Append<'_>,
        rewrite: bool,
    ) -> Result<Stamp, Error> {
        let Some(snapshot) = stamp
            .snapshot
            .filter(|_| !rewrite && stamp.version >= VERSION)
        else {
            return self.save(lock, state);
        };
        if append.is_empty() {
            return Ok(stamp);
        }
        let mut bytes = if stamp.journal_good == 0 {
            crate::store::journal::header(stamp.generation)
        } else {
            Vec::new()
        };
        append
            .encode(&mut bytes)
            .map_err(|e| Error::with_source(ErrorKind::State, "could not encode the journal", e))?;
        let after = stamp.journal_good.saturating_add(bytes.len() as u64);
        if after > snapshot.len.saturating_mul(COMPACT_RATIO) {
            return self.save(lock, state);
        }
        let end = crate::store::journal_file::append(&lock.target, stamp.journal_good, &bytes)?;
        Ok(Stamp {
            journal_good: end,
            journal_file: end,
            ..stamp
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::tests::record_at;
    use crate::store::snapshot::snapshot_generation;
    use tracing::Level;

    fn store(dir: &Path) -> StateStore {
        StateStore::new(dir.join("sub").join("state.json"), Duration::from_secs(5))
    }

    #[test]
    fn missing_file_is_an_empty_state_and_save_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut state = store.load(&lock, None).unwrap().state;
        assert_eq!(state.version, VERSION);
        assert!(state.pending.is_empty());
        state.pending.push(record_at(Level::WARN));
        state.last_error = Some("refused".into());
        state.generation = store.save(&lock, &state).unwrap().generation;
        assert_ne!(state.generation, 0);
        assert_eq!(store.load(&lock, None).unwrap().state, state);
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
        assert_eq!(v["version"], 3);
        assert!(v["generation"].as_u64().is_some_and(|g| g != 0));
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
            let state = store.load(&lock, None).unwrap().state;
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
        let text = r#"{"version":4,"pending":[],"future":true}"#;
        fs::write(store.path(), text).unwrap();
        let err = store.load(&lock, None).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::State);
        assert!(err.to_string().contains("version 4"), "{err}");
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
        let loaded = store.load(&lock, None).unwrap();
        let levels: Vec<Level> = loaded.state.pending.iter().map(|r| r.level).collect();
        assert_eq!(levels, [Level::INFO, Level::WARN, Level::INFO]);
        assert_eq!(loaded.state.dropped, 3);
        assert_eq!(loaded.parked, std::slice::from_ref(&parked));
        store.remove_parked(&loaded.parked);
        assert!(!parked.exists());
        assert_eq!(store.load(&lock, None).unwrap().state.pending.len(), 2);
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
        let fp = crate::store::history::Fingerprint {
            key: "k".into(),
            label: "k".into(),
        };
        state.history.observe(run, &fp, Level::WARN, ahead);
        assert_eq!(
            state.clamp_future_from(now, 0),
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
        assert!(state.clamp_future_from(now, 0).is_empty());
        // The store says whether anything moved, so the flush saves it.
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        state.last_sent = Some(ahead);
        assert!(store.clamp_future_from(&mut state, now, 0));
        assert!(!store.clamp_future_from(&mut state, now, 0));
        // Records before `from` are taken as clamped already.
        state.pending[1].timestamp = ahead;
        assert!(!store.clamp_future_from(&mut state, now, 2));
        assert!(store.clamp_future_from(&mut state, now, 1));
        assert_eq!(state.pending[1].timestamp, now);
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
        let loaded = store.load(&lock, None).unwrap().state;
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
    /// Runs `f` on a thread and fails the test if it has not returned
    /// within five seconds (a FIFO opened for reading would block for ever).
    pub(crate) fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("hung: still running after 5 s")
    }

    #[cfg(unix)]
    pub(crate) fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_at_once_and_left_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        mkfifo(&path);
        let store = StateStore::new(path.clone(), Duration::from_secs(5));
        let err = within_5s(move || store.lock().err().unwrap());
        assert_eq!(err.kind(), ErrorKind::State);
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("is a FIFO (named pipe), not a regular file"),
            "{text}"
        );
        assert!(fs::metadata(&path).unwrap().file_type().is_fifo());
        // Inspection (no lock) is refused too, without blocking.
        let store = StateStore::new(path.clone(), Duration::from_secs(5));
        let err = within_5s(move || store.peek().err().unwrap());
        assert!(err.to_string().contains("FIFO"), "{err}");
        // Nothing was created or moved beside it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_as_lock_file_or_temporary_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        mkfifo(&with_suffix(&path, ".lock"));
        let store = StateStore::new(path.clone(), Duration::from_secs(5));
        let err = within_5s(move || store.lock().err().unwrap());
        assert!(err.to_string().contains("the lock file"), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
        fs::remove_file(with_suffix(&path, ".lock")).unwrap();

        let tmp = with_suffix(&path, &format!(".tmp-{}", std::process::id()));
        mkfifo(&tmp);
        let store = StateStore::new(path.clone(), Duration::from_secs(5));
        let err = within_5s(move || {
            let lock = store.lock().unwrap();
            store.save(&lock, &State::new()).err().unwrap()
        });
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_refused_and_never_renamed() {
        // A link to /dev/null: the device is what the path names, and
        // nothing may be created beside it in /dev.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        for store in [
            StateStore::new(path.clone(), Duration::from_secs(5)),
            StateStore::new(PathBuf::from("/dev/null"), Duration::from_secs(5)),
        ] {
            let err = store.lock().err().unwrap();
            let text = err.to_string();
            assert!(text.contains("/dev/null"), "{text}");
            assert!(text.contains("is a character device"), "{text}");
            let err = store.peek().err().unwrap();
            assert!(err.to_string().contains("character device"), "{err}");
        }
        assert!(Path::new("/dev/null").exists());
        assert!(!Path::new("/dev/null.lock").exists());
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_folder_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::create_dir(&path).unwrap();
        let store = StateStore::new(path.clone(), Duration::from_secs(5));
        let err = store.lock().err().unwrap();
        assert!(
            err.to_string().contains("is a folder, not a regular file"),
            "{err}"
        );
        assert!(store.peek().err().unwrap().to_string().contains("folder"));
        assert!(path.is_dir());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_parked_file_that_is_a_fifo_is_skipped_and_the_flush_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.pending.push(record_at(Level::WARN));
        store.save(&lock, &state).unwrap();
        let fifo = with_suffix(store.path(), ".parked-20260101T000000Z-1.json");
        mkfifo(&fifo);
        let loaded = within_5s(move || {
            let loaded = store.load(&lock, None).unwrap();
            (loaded.state.pending.len(), loaded.parked.len())
        });
        assert_eq!(loaded, (1, 0));
        assert!(fifo.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_state_file_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other-app");
        fs::create_dir(&other).unwrap();
        let target = other.join("tracing-email.json");
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        let link = mine.join("state.json");
        // A relative link, as `ln -s ../other-app/tracing-email.json` makes.
        std::os::unix::fs::symlink("../other-app/tracing-email.json", &link).unwrap();
        let store = StateStore::new(link.clone(), Duration::from_secs(5));
        // Dangling at first: the first save creates the target.
        let lock = store.lock().unwrap();
        let mut state = store.load(&lock, None).unwrap().state;
        state.pending.push(record_at(Level::WARN));
        state.generation = store.save(&lock, &state).unwrap().generation;
        drop(lock);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            serde_json::from_slice::<State>(&fs::read(&target).unwrap()).unwrap(),
            state
        );
        // The lock is the target's, shared with the program that owns it.
        assert!(with_suffix(&target, ".lock").exists());
        assert!(!with_suffix(&link, ".lock").exists());
        let owner = StateStore::new(target.clone(), Duration::from_millis(50));
        let held = store.lock().unwrap();
        assert_eq!(owner.lock().err().unwrap().kind(), ErrorKind::Busy);
        drop(held);
        // A second save replaces the target again; the link stays.
        let lock = store.lock().unwrap();
        store.save(&lock, &State::new()).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(store.load(&lock, None).unwrap().state.pending.is_empty());
        assert_eq!(fs::read_dir(&mine).unwrap().count(), 1, "only the link");
    }

    #[cfg(unix)]
    #[test]
    fn a_journal_that_is_a_fifo_is_refused_without_blocking_and_left_alone() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        store.save(&lock, &State::new()).unwrap();
        drop(lock);
        let journal = journal_path(store.path());
        mkfifo(&journal);
        let flushing = store.clone();
        let err = within_5s(move || {
            let lock = flushing.lock().unwrap();
            flushing.load(&lock, None).err().unwrap()
        });
        assert!(err.to_string().contains("the journal"), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = within_5s(move || store.peek().err().unwrap());
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(fs::metadata(&journal).unwrap().file_type().is_fifo());
    }

    /// What a flush appends loads back; a state kept in memory is brought
    /// up to date from the journal's tail only, and equals a full load.
    #[test]
    fn appends_load_back_and_a_kept_state_reads_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.pending.push(record_at(Level::WARN));
        let stamp = store.save(&lock, &state).unwrap();
        state.generation = stamp.generation;
        let kept = (state.clone(), stamp);
        let append = |store: &StateStore, state: &mut State, stamp, level| {
            let mut r = record_at(level);
            r.run = Some(1);
            state.pending.push(r.clone());
            let added = crate::store::journal::Append {
                run: None,
                level: Level::WARN,
                fields: &[],
                records: std::slice::from_ref(&r),
                dropped: 1,
                trim: None,
            };
            state.dropped += 1;
            store.commit(&lock, state, stamp, &added, false).unwrap()
        };
        let stamp = append(&store, &mut state, stamp, Level::ERROR);
        assert_eq!(
            stamp.generation, kept.1.generation,
            "appended, not rewritten"
        );
        let _ = append(&store, &mut state, stamp, Level::INFO);
        let full = store.load(&lock, None).unwrap();
        assert_eq!(full.state.pending, state.pending);
        assert_eq!(full.state.dropped, 2);
        // Observed at WARN: the ERROR record makes a streak, the INFO one not.
        assert_eq!(full.state.history.streaks.len(), 1);
        let state = full.state.clone();
        // The kept state (before both appends) is brought up to date.
        let refreshed = store.load(&lock, Some(kept)).unwrap();
        assert_eq!(refreshed.state, state);
        assert_eq!(refreshed.stamp, full.stamp);
    }

    #[test]
    fn the_generation_is_read_from_the_snapshots_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.pending = vec![record_at(Level::WARN); 100];
        let stamp = store.save(&lock, &state).unwrap();
        assert_eq!(snapshot_generation(store.path()), Some(stamp.generation));
        // The next rewrite names the next generation.
        state.generation = stamp.generation;
        let next = store.save(&lock, &state).unwrap();
        assert_eq!(next.generation, stamp.generation.wrapping_add(1).max(1));
        assert_eq!(snapshot_generation(store.path()), Some(next.generation));
        // A kept state whose generation is not the file's is read again.
        let stale = Stamp {
            snapshot: file_id(store.path()),
            ..stamp
        };
        let mut other = state.clone();
        other.pending.clear();
        let loaded = store.load(&lock, Some((other, stale))).unwrap();
        assert_eq!(loaded.state.pending.len(), 100);
    }

    #[test]
    fn records_that_parse_are_kept_from_a_file_of_the_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let lock = store.lock().unwrap();
        let mut good = State::new();
        good.pending = vec![record_at(Level::WARN), record_at(Level::ERROR)];
        good.dropped = 4;
        store.save(&lock, &good).unwrap();
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        let pending = value["pending"].as_array_mut().unwrap();
        pending.insert(1, serde_json::json!({"level": "LOUD", "message": 7}));
        pending.push(serde_json::json!("not a record"));
        let bad = serde_json::to_vec(&value).unwrap();
        fs::write(store.path(), &bad).unwrap();

        let state = store.load(&lock, None).unwrap().state;
        let levels: Vec<Level> = state.pending.iter().map(|r| r.level).collect();
        assert_eq!(levels, [Level::WARN, Level::ERROR]);
        assert_eq!(state.dropped, 4);
        // The whole original is kept aside, bad entries included.
        let aside: Vec<_> = fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(&aside[0]).unwrap(), bad);
    }
}
