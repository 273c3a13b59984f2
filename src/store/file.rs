//! The state file: what is pending across runs. Locked with a separate
//! `.lock` file (the data file itself is replaced by rename), written
//! atomically, readable only by its owner.
//!
//! Only regular files are read or replaced: a FIFO, a device, a socket or a
//! folder at the path is refused with an error that says what it is, opened
//! without blocking (so a FIFO cannot hang a flush) and never moved aside. A
//! state file that is a symbolic link is written through: the link is
//! resolved at each lock, and the lock, the temporary file and parked files
//! live beside its target, so the link stays a link and two programs that
//! share one file through it also share its lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::error::{Error, ErrorKind};
use crate::store::state::{State, VERSION};

/// The journal is compacted into the snapshot when it would grow past this
/// many times the snapshot's size. The journal holds additions, and the
/// trims of the oldest records at `max_pending` (records that leave by a
/// send go by a rewrite), so replaying it costs at most about what reading
/// this many snapshots does; the ratio bounds that, and the rewrites a
/// growing state, or one that stays at `max_pending`, costs (a snapshot per
/// this many times its size appended: 1 + 1/ratio of the new records' bytes).
pub(crate) const COMPACT_RATIO: u64 = 4;

/// Where the state lives and how long to wait for its lock.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: PathBuf,
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

/// The file name of the state file inside the app's state folder.
///
/// ```
/// let file = tracing_email::StateFile::for_app("poca")?;
/// assert!(file.path().ends_with(tracing_email::STATE_FILE_NAME));
/// # Ok::<(), tracing_email::Error>(())
/// ```
pub const STATE_FILE_NAME: &str = "tracing-email.json";

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
    Ok(dir.join(STATE_FILE_NAME))
}

/// A loaded state and the parked files merged into it (to remove once the
/// state is saved).
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) parked: Vec<PathBuf>,
    /// What was on disk when it was read.
    pub(crate) stamp: Stamp,
    /// The files need a rewrite (a damaged journal, an old version).
    pub(crate) repair: bool,
    /// How many of the first pending records come, in their order, from the
    /// state kept in memory (0 after a full read, a merge of parked files,
    /// or others' trim lines, which move them).
    pub(crate) kept: usize,
}

/// Which file a path held: it changes when the file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
}

fn file_id(path: &Path) -> Option<FileId> {
    let meta = fs::metadata(path).ok()?;
    Some(FileId {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        ino: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// What the snapshot and the journal were when a state was read or written
/// under the lock: if they are the same at the next lock, the state kept in
/// memory is still the state on disk, and nothing needs reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stamp {
    /// The snapshot's generation.
    pub(crate) generation: u64,
    /// The snapshot's version as read.
    version: u32,
    /// The snapshot file, `None` when there is none.
    snapshot: Option<FileId>,
    /// The journal's length up to its last whole line; 0 when there is no
    /// usable journal (the next append starts one).
    journal_good: u64,
    /// The journal's length on disk (past `journal_good`: a torn tail),
    /// only so that a torn tail is reported once; never a sign that the
    /// view is current (see `refresh`).
    journal_file: u64,
}

#[cfg(test)]
impl Stamp {
    /// Where the next append starts: the end of the journal's last whole
    /// line (0: the next append starts a journal).
    pub(crate) fn journal_end(&self) -> u64 {
        self.journal_good
    }
}

/// A state kept in memory between the flushes of one process, with the
/// stamp of the files it was read from or written to.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) kept: Option<(State, Stamp)>,
    /// The time its records were last clamped at (see
    /// [`State::clamp_future`]): none of them lies after it.
    pub(crate) clamped_at: Option<OffsetDateTime>,
}

/// The journal beside the state file `target`.
pub(crate) fn journal_path(target: &Path) -> PathBuf {
    with_suffix(target, ".journal")
}

/// The generation a snapshot names at its start (`{"version":3,
/// "generation":N,…`, as this crate writes it), read without reading the
/// rest.
fn snapshot_generation(path: &Path) -> Option<u64> {
    let mut file = open_regular(path, "state file", read_options()).ok()??;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match io::Read::read(&mut file, &mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    let head = std::str::from_utf8(&head[..len]).ok()?;
    let rest = &head[head.find("\"generation\":")? + "\"generation\":".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// A generation for a snapshot rewritten after one of `previous` (0: none,
/// or a version 1 file): the next number, or a fresh one that a journal left
/// by another snapshot cannot name by chance.
fn next_generation(previous: u64) -> u64 {
    if previous != 0 {
        return previous.wrapping_add(1).max(1);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (u64::from(std::process::id()) << 40)) | 1
}

/// The snapshot as written: the state with this crate's version and a new
/// generation.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    generation: u64,
    pending: &'a [Record],
    dropped: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    last_sent: Option<OffsetDateTime>,
    last_error: &'a Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    last_error_at: Option<OffsetDateTime>,
    history: &'a crate::store::history::History,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    alerts: &'a std::collections::BTreeMap<String, crate::store::state::Posted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_post: &'a Option<crate::store::state::AlertPost>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    parked_merged: &'a [String],
}

/// Holds the exclusive lock on the state until dropped.
pub(crate) struct StateLock {
    _file: File,
    /// The state file with symbolic links resolved, as it was when the lock
    /// was taken: what `load` reads and `save` replaces.
    target: PathBuf,
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
        StateStore { path, lock_timeout }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The state file with symbolic links resolved (the path itself when it
    /// is no link, or does not exist).
    fn target(&self) -> PathBuf {
        resolve_links(&self.path)
    }

    fn create_dir(&self, target: &Path) -> Result<(), Error> {
        let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) else {
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
        let target = self.target();
        // A state file that is a FIFO, a device or a folder is refused
        // before anything is created beside it.
        if let Ok(meta) = fs::metadata(&target)
            && let Some(kind) = not_a_file(meta.file_type())
        {
            let named = if target == self.path {
                target.display().to_string()
            } else {
                format!("{} (a link to {})", self.path.display(), target.display())
            };
            return Err(refuse("state file", Path::new(&named), kind));
        }
        self.create_dir(&target)?;
        let lock_path = with_suffix(&target, ".lock");
        let mut options = private_options();
        options.read(true).write(true).create(true).truncate(false);
        let file = open_regular(&lock_path, "lock file", options)?.ok_or_else(|| {
            io_error(
                format!("could not open the lock file {}", lock_path.display()),
                io::ErrorKind::NotFound.into(),
            )
        })?;
        let deadline = crate::clock::instant_after(self.lock_timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(StateLock {
                        _file: file,
                        target,
                    });
                }
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
                        format!("could not lock {}", lock_path.display()),
                        e,
                    ));
                }
            }
        }
    }

    /// Applies [`State::clamp_future_from`] to `state` and, if a time was
    /// moved, says so on stderr, naming the times and this file. Returns
    /// whether the state changed (and should be saved).
    pub(crate) fn clamp_future_from(
        &self,
        state: &mut State,
        now: OffsetDateTime,
        from: usize,
    ) -> bool {
        let moved = state.clamp_future_from(now, from);
        if !moved.is_empty() {
            eprintln!(
                "tracing-email: the state file {} holds times later than now ({}) in {}; \
                 they were written under a clock that was ahead and are taken as now",
                self.path.display(),
                crate::capture::record::utc_time(now),
                moved.join(", ")
            );
        }
        !moved.is_empty()
    }

    /// Reads the state (the snapshot and the journal replayed), with the
    /// records of any parked files (see [`park`](Self::park)) merged in time
    /// order. A missing file is an empty state; a file that is not a state
    /// (corrupt, truncated, empty) is moved aside, with a warning on stderr,
    /// and what could be read of it is returned; a file written by a newer
    /// version of this crate, or a path that is not a regular file (the
    /// journal's too), is an error and is left alone.
    pub(crate) fn load(&self, lock: &StateLock) -> Result<Loaded, Error> {
        self.load_cached(lock, None)
    }

    /// [`load`](Self::load), starting from a state kept in memory since the
    /// last flush of this process: if the files are as it left them, nothing
    /// is read; if only the journal grew (another process appended), only
    /// what was appended is read.
    pub(crate) fn load_cached(
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
        let mut loaded = match kept.and_then(|(state, stamp)| self.refresh(target, state, stamp)) {
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

    /// The kept state brought up to date with what others appended, or
    /// `None` when the files must be read whole.
    ///
    /// The freshness rule: the snapshot must be the same file with the same
    /// generation, and the journal at least as long as the whole lines the
    /// view covers (`journal_good`). Under one snapshot the journal's whole
    /// lines are never changed, only added to: every append starts at the
    /// end of the last whole line, cutting a torn tail first. So bytes past
    /// the view's end are read and replayed whatever the journal's length
    /// (lines others appended, a torn tail, or both: an append as long as a
    /// torn tail it replaced cannot pass for it), and anything else (a
    /// shorter journal, lines that do not replay) is a full read.
    fn refresh(&self, target: &Path, state: State, stamp: Stamp) -> Option<Loaded> {
        let kept = state.pending.len();
        if stamp.snapshot.is_none() || file_id(target) != stamp.snapshot {
            return None;
        }
        // The same size, time and inode could in theory be another file;
        // its generation, at its start, could not.
        if snapshot_generation(target) != Some(stamp.generation) {
            return None;
        }
        let journal = journal_path(target);
        let len = match fs::metadata(&journal) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => return None,
            Err(_) => 0,
        };
        let (state, stamp, trimmed) = match len.cmp(&stamp.journal_good) {
            std::cmp::Ordering::Less => return None,
            std::cmp::Ordering::Equal => (
                state,
                Stamp {
                    journal_file: len,
                    ..stamp
                },
                0,
            ),
            std::cmp::Ordering::Greater => self.replay_tail(&journal, state, stamp, len)?,
        };
        Some(Loaded {
            state,
            parked: Vec::new(),
            stamp,
            repair: false,
            // Others' trim lines took kept records from the front: those
            // left are no longer where the view had them.
            kept: if trimmed > 0 { 0 } else { kept },
        })
    }

    /// Replays onto `state` the journal's bytes past the view's end
    /// (`stamp.journal_good`, the journal being `len` long now), with the
    /// count of records trim lines removed; `None` when they do not replay
    /// cleanly.
    fn replay_tail(
        &self,
        journal: &Path,
        mut state: State,
        mut stamp: Stamp,
        len: u64,
    ) -> Option<(State, Stamp, usize)> {
        let mut file = open_regular(journal, "journal", read_options()).ok()??;
        let mut tail = Vec::new();
        io::Seek::seek(&mut file, io::SeekFrom::Start(stamp.journal_good)).ok()?;
        io::Read::read_to_end(&mut file, &mut tail).ok()?;
        let from_start = stamp.journal_good == 0;
        let replayed = crate::store::journal::replay(&mut state, &tail, from_start, false);
        if replayed.garbage > 0 || replayed.stale {
            return None;
        }
        // A torn tail this view saw already is not news.
        if replayed.torn && (replayed.good_len > 0 || len != stamp.journal_file) {
            self.say_torn(journal);
        }
        stamp.journal_good += replayed.good_len as u64;
        stamp.journal_file = stamp.journal_good.max(len);
        Some((state, stamp, replayed.trimmed))
    }

    fn say_torn(&self, journal: &Path) {
        eprintln!(
            "tracing-email: the journal {} ends in a torn line (a crash during an append); \
             1 line was ignored and the next append writes over it",
            journal.display()
        );
    }

    /// Reads the snapshot and replays the journal.
    fn read_all(&self, target: &Path, repair: Repair) -> Result<Loaded, Error> {
        let snapshot = read(target, repair)?;
        let snapshot_read = snapshot.is_some();
        let id = snapshot.as_ref().and_then(|_| file_id(target));
        let mut state = snapshot.unwrap_or_else(State::new);
        let mut stamp = Stamp {
            generation: state.generation,
            version: state.version,
            snapshot: id,
            journal_good: 0,
            journal_file: 0,
        };
        // A snapshot salvaged (moved aside, see `read`) is stored only by a rewrite.
        let mut needs_repair = state.version < VERSION || (snapshot_read && id.is_none());
        let journal = journal_path(target);
        let bytes = match open_regular(&journal, "journal", read_options())? {
            None => None,
            Some(mut file) => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| {
                    io_error(
                        format!("could not read the journal {}", journal.display()),
                        e,
                    )
                })?;
                Some(bytes)
            }
        };
        if let Some(bytes) = bytes {
            stamp.journal_file = bytes.len() as u64;
            // Without a snapshot (moved aside as corrupt, or removed by
            // hand) the journal's records are kept whatever it extends.
            let replayed = crate::store::journal::replay(&mut state, &bytes, true, id.is_none());
            stamp.journal_good = replayed.good_len as u64;
            if replayed.torn {
                self.say_torn(&journal);
            }
            if replayed.stale {
                // Left by a compaction that crashed after replacing the
                // snapshot: all of it is in the snapshot already.
                needs_repair = true;
            }
            if replayed.garbage > 0 {
                needs_repair = true;
                let kept = if repair == Repair::MoveAside {
                    let copy = with_suffix(
                        &journal,
                        &format!(
                            ".corrupt-{}",
                            crate::capture::record::file_stamp(OffsetDateTime::now_utc())
                        ),
                    );
                    match fs::write(&copy, &bytes) {
                        Ok(()) => format!("; the journal as it was is kept in {}", copy.display()),
                        Err(e) => format!("; it could not be copied aside ({e})"),
                    }
                } else {
                    String::new()
                };
                eprintln!(
                    "tracing-email: the journal {} holds {} lines that could not be read; they \
                     were skipped and the rest was loaded{kept}",
                    journal.display(),
                    replayed.garbage
                );
            }
            if id.is_none() && !bytes.is_empty() {
                needs_repair = true;
            }
        }
        Ok(Loaded {
            state,
            parked: Vec::new(),
            stamp,
            repair: needs_repair,
            kept: 0,
        })
    }

    /// Reads the state without the lock and without changing anything: for
    /// inspection. The snapshot is replaced by rename and the journal only
    /// grows by whole appends, so what is read is one whole state (a torn
    /// last line of the journal is left out). A corrupt snapshot is an
    /// error here.
    pub(crate) fn peek(&self) -> Result<(State, usize), Error> {
        let target = self.target();
        let loaded = self.read_all(&target, Repair::No)?;
        let merged = &loaded.state.parked_merged;
        let parked = parked_files(&target)
            .iter()
            .filter(|p| !merged.contains(&file_name(p)))
            .count();
        Ok((loaded.state, parked))
    }

    /// Writes records that could not wait for the lock into a file of their
    /// own beside the state file, to be merged by the next flush that gets
    /// the lock. Returns its path.
    pub(crate) fn park(&self, records: &[Record], dropped: u64) -> Result<PathBuf, Error> {
        let target = self.target();
        self.create_dir(&target)?;
        // Unique names: a state lists the parked files it merged by name.
        static PARKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = with_suffix(
            &target,
            &format!(
                ".parked-{}-{}-{}.json",
                crate::capture::record::file_stamp(OffsetDateTime::now_utc()),
                std::process::id(),
                PARKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

    /// Replaces the snapshot atomically (a temporary file in the same
    /// folder, fsync, rename over the old one, fsync of the folder) with
    /// `state` under a new generation, then removes the journal (whose
    /// lines are all in `state`; one a crash leaves behind names the old
    /// generation and is ignored). Returns the new stamp. Temporary files
    /// of writers killed before their rename go first (see
    /// [`leftovers`](crate::store::leftovers)), as they do at a process's
    /// first load.
    pub(crate) fn save(&self, lock: &StateLock, state: &State) -> Result<Stamp, Error> {
        let generation = next_generation(state.generation);
        crate::store::leftovers::remove_dead_temporaries(&lock.target);
        let out = SnapshotOut {
            version: VERSION,
            generation,
            pending: &state.pending,
            dropped: state.dropped,
            last_sent: state.last_sent,
            last_error: &state.last_error,
            last_error_at: state.last_error_at,
            history: &state.history,
            alerts: &state.alerts,
            alert_post: &state.alert_post,
            parked_merged: &state.parked_merged,
        };
        write_atomic(&lock.target, &out)?;
        let journal = journal_path(&lock.target);
        if fs::symlink_metadata(&journal).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&journal);
        }
        Ok(Stamp {
            generation,
            version: VERSION,
            snapshot: file_id(&lock.target),
            journal_good: 0,
            journal_file: 0,
        })
    }

    /// Writes what one flush added (and the oldest records it trimmed):
    /// appended to the journal (and fsynced) when it can be, else
    /// (`rewrite`, no snapshot yet, an old version, or a journal that would
    /// outgrow the snapshot) by [`save`](Self::save) of the whole `state`. `stamp` is what the files were when `state`
    /// was read. Returns the new stamp.
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
        self.append(lock, stamp, &bytes)
    }

    /// Appends `bytes` to the journal at its last whole line (writing over
    /// a torn one), fsyncs it, and returns the new stamp. On failure the
    /// journal is cut back to where it was, so nothing half written stays.
    fn append(&self, lock: &StateLock, mut stamp: Stamp, bytes: &[u8]) -> Result<Stamp, Error> {
        let journal = journal_path(&lock.target);
        let fail = |what: &str, e: io::Error| {
            io_error(
                format!("could not {what} the journal {}", journal.display()),
                e,
            )
        };
        let created = !journal.exists();
        let mut options = private_options();
        options.write(true).create(true).truncate(false);
        let mut file = open_regular(&journal, "journal", options)?
            .ok_or_else(|| fail("open", io::ErrorKind::NotFound.into()))?;
        let start = stamp.journal_good;
        let written = (|| {
            if file.metadata()?.len() != start {
                file.set_len(start)?;
            }
            io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
            file.write_all(bytes)?;
            file.sync_data()
        })();
        if let Err(e) = written {
            let _ = file.set_len(start);
            return Err(fail("append to", e));
        }
        #[cfg(unix)]
        if created && let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail("sync the folder of", e))?;
        }
        #[cfg(not(unix))]
        let _ = created;
        stamp.journal_good = start + bytes.len() as u64;
        stamp.journal_file = stamp.journal_good;
        Ok(stamp)
    }
}

/// Reads one state file: `None` when it does not exist or was corrupt
/// (and has been moved aside, with `Repair::MoveAside`; the records in it
/// that could be read are then kept, see [`salvage`]).
fn read(path: &Path, repair: Repair) -> Result<Option<State>, Error> {
    let bytes = match open_regular(path, "state file", read_options())? {
        None => return Ok(None),
        Some(mut file) => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| {
                io_error(
                    format!("could not read the state file {}", path.display()),
                    e,
                )
            })?;
            bytes
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
            let salvaged = salvage(&bytes);
            let aside = move_aside(path)?;
            match salvaged {
                None => {
                    eprintln!(
                        "tracing-email: the state file {} could not be read ({e}); it was \
                             moved to {} and a fresh one is used",
                        path.display(),
                        aside.display()
                    );
                    Ok(None)
                }
                Some((state, lost)) => {
                    eprintln!(
                        "tracing-email: the state file {} could not be read as a whole ({e}); \
                             it was moved to {}, and what could be read is kept: {} records \
                             ({lost} entries that are not records were left out and are only in \
                             the moved file)",
                        path.display(),
                        aside.display(),
                        state.pending.len()
                    );
                    Ok(Some(state))
                }
            }
        }
    }
}

/// Merges the records of the parked files beside `target` into `state`, in
/// time order; returns the files merged (to remove once the state is saved).
///
/// A file the state names as merged already (`parked_merged`: its save
/// went through, a kill came before the removal) is removed, not merged
/// again. Afterwards `parked_merged` names the files merged now and those
/// that could not be removed.
fn merge_parked(target: &Path, state: &mut State) -> Vec<PathBuf> {
    let mut merged = Vec::new();
    let mut names = Vec::new();
    for path in parked_files(target) {
        let name = file_name(&path);
        if state.parked_merged.contains(&name) {
            if fs::remove_file(&path).is_err() {
                names.push(name);
            }
            continue;
        }
        // A parked file that cannot be used is left where it is (or moved
        // aside when corrupt) and does not stop the flush.
        match read(&path, Repair::MoveAside) {
            Ok(Some(extra)) => {
                state.pending.extend(extra.pending);
                state.dropped = state.dropped.saturating_add(extra.dropped);
                merged.push(path);
                names.push(name);
            }
            Ok(None) => {}
            Err(e) => eprintln!("tracing-email: a parked file was left where it is: {e}"),
        }
    }
    if !merged.is_empty() {
        state.pending.sort_by_key(|r| r.timestamp);
    }
    state.parked_merged = names;
    merged
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The parked files of the state file `target`, oldest first.
fn parked_files(target: &Path) -> Vec<PathBuf> {
    let dir = match target.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Vec::new(),
    };
    let Some(name) = target.file_name() else {
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

/// What a file type is, in words, when it is not a regular file.
fn not_a_file(file_type: fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    Some("something other than a regular file")
}

/// The error for a path that holds something other than a regular file.
fn refuse(what: &str, path: &Path, kind: &str) -> Error {
    Error::new(
        ErrorKind::State,
        format!(
            "the {what} {} is {kind}, not a regular file; tracing-email neither reads nor \
             replaces it: point the state file (`.state_file(..)`, or `state_file` in the \
             config) at a regular file, or remove what is at that path",
            path.display()
        ),
    )
}

fn read_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true);
    options
}

/// Opens `path` (following symbolic links) with `options` if it is a
/// regular file: without blocking, so a FIFO cannot hang the flush, and
/// with the type checked on the opened handle, so nothing swapped in between
/// the check and the open gets through. `None` when it does not exist (and
/// `options` do not create it). `what` names the file in errors.
fn open_regular(path: &Path, what: &str, options: OpenOptions) -> Result<Option<File>, Error> {
    // A FIFO, device or folder already there is refused before any open.
    if let Ok(meta) = fs::metadata(path)
        && let Some(kind) = not_a_file(meta.file_type())
    {
        return Err(refuse(what, path, kind));
    }
    open_checked(path, what, options)
}

/// The race-free part of [`open_regular`]: opens without blocking, then
/// checks the type of what was opened.
fn open_checked(path: &Path, what: &str, options: OpenOptions) -> Result<Option<File>, Error> {
    #[allow(unused_mut)]
    let mut options = options;
    #[cfg(unix)]
    // Opening a FIFO without O_NONBLOCK waits for its other end for ever.
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(io_error(
                format!("could not open the {what} {}", path.display()),
                e,
            ));
        }
    };
    let meta = file.metadata().map_err(|e| {
        io_error(
            format!("could not read the type of the {what} {}", path.display()),
            e,
        )
    })?;
    if let Some(kind) = not_a_file(meta.file_type()) {
        return Err(refuse(what, path, kind));
    }
    Ok(Some(file))
}

/// `path` with its symbolic links followed (at most 40, as the system
/// does), also when the last target does not exist yet.
fn resolve_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            break;
        }
        match fs::read_link(&path) {
            // A relative target is relative to the link's folder; `join`
            // keeps an absolute one as it is.
            Ok(target) => path = path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => break,
        }
    }
    path
}

/// The records (and other parts) of a state file that is JSON but not of
/// the right shape as a whole: each pending record that parses is kept.
/// Returns the salvaged state and how many pending entries were left out;
/// `None` when there is nothing to keep (not a JSON object).
fn salvage(bytes: &[u8]) -> Option<(State, usize)> {
    let serde_json::Value::Object(mut map) = serde_json::from_slice(bytes).ok()? else {
        return None;
    };
    fn take<T: serde::de::DeserializeOwned>(
        map: &mut serde_json::Map<String, serde_json::Value>,
        key: &str,
    ) -> Option<T> {
        map.remove(key)
            .and_then(|v| serde_json::from_value::<T>(v).ok())
    }
    let mut state = State::new();
    let mut lost = 0;
    match map.remove("pending") {
        Some(serde_json::Value::Array(entries)) => {
            for entry in entries {
                match serde_json::from_value::<Record>(entry) {
                    Ok(record) => state.pending.push(record),
                    Err(_) => lost += 1,
                }
            }
        }
        Some(_) => lost += 1,
        None => {}
    }
    state.pending.sort_by_key(|r| r.timestamp);
    state.dropped = take(&mut map, "dropped").unwrap_or(0);
    #[derive(Deserialize)]
    struct Sent(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
    state.last_sent = take::<Sent>(&mut map, "last_sent").map(|s| s.0);
    state.last_error = take(&mut map, "last_error");
    state.last_error_at = take::<Sent>(&mut map, "last_error_at").map(|s| s.0);
    state.history = take(&mut map, "history").unwrap_or_default();
    state.alerts = take(&mut map, "alerts").unwrap_or_default();
    state.alert_post = take(&mut map, "alert_post");
    state.parked_merged = take(&mut map, "parked_merged").unwrap_or_default();
    Some((state, lost))
}

fn move_aside(path: &Path) -> Result<PathBuf, Error> {
    let aside = with_suffix(
        path,
        &format!(
            ".corrupt-{}",
            crate::capture::record::file_stamp(OffsetDateTime::now_utc())
        ),
    );
    // Only a regular file is ever renamed (the caller read it as one; this
    // checks the path itself once more).
    if let Ok(meta) = fs::symlink_metadata(path)
        && let Some(kind) = not_a_file(meta.file_type())
    {
        return Err(refuse("state file", path, kind));
    }
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
    // Whatever is at `path` is replaced only if it is a regular file (a
    // device or FIFO there is refused, never renamed over).
    if let Ok(meta) = fs::metadata(path)
        && let Some(kind) = not_a_file(meta.file_type())
    {
        return Err(refuse("state file", path, kind));
    }
    let tmp = with_suffix(
        path,
        &crate::store::leftovers::tmp_suffix(std::process::id()),
    );
    let mut options = private_options();
    options.write(true).create(true).truncate(true);
    let mut file = match open_regular(&tmp, "temporary file", options) {
        Ok(Some(file)) => file,
        Ok(None) => return Err(fail("write", io::ErrorKind::NotFound.into())),
        Err(e) => return Err(e),
    };
    let written = file.write_all(&bytes).and_then(|()| file.sync_all());
    drop(file);
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
pub(crate) mod tests {
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
        state.generation = store.save(&lock, &state).unwrap().generation;
        assert_ne!(state.generation, 0);
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
        let text = r#"{"version":4,"pending":[],"future":true}"#;
        fs::write(store.path(), text).unwrap();
        let err = store.load(&lock).err().unwrap();
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
        let fp = crate::store::history::Fingerprint {
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

    /// A FIFO swapped in after the type check: the open itself does not
    /// block, and the check on the opened handle refuses it.
    #[cfg(all(unix, any(target_os = "linux", target_os = "macos")))]
    #[test]
    fn opening_a_fifo_never_blocks_even_past_the_type_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        mkfifo(&path);
        let shown = path.clone();
        let err = within_5s(move || open_checked(&path, "state file", read_options()).err());
        let err = err.expect("a FIFO is refused");
        assert!(
            err.to_string()
                .contains(&format!("the state file {}", shown.display()))
        );
        assert!(err.to_string().contains("FIFO"), "{err}");
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
            let loaded = store.load(&lock).unwrap();
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
        let mut state = store.load(&lock).unwrap().state;
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
        assert!(store.load(&lock).unwrap().state.pending.is_empty());
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
            flushing.load(&lock).err().unwrap()
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
        let full = store.load(&lock).unwrap();
        assert_eq!(full.state.pending, state.pending);
        assert_eq!(full.state.dropped, 2);
        // Observed at WARN: the ERROR record makes a streak, the INFO one not.
        assert_eq!(full.state.history.streaks.len(), 1);
        let state = full.state.clone();
        // The kept state (before both appends) is brought up to date.
        let refreshed = store.load_cached(&lock, Some(kept)).unwrap();
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
        let loaded = store.load_cached(&lock, Some((other, stale))).unwrap();
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

        let state = store.load(&lock).unwrap().state;
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

#[cfg(test)]
mod kept_view_tests {
    //! Issue 19, case 1: a view kept over a torn journal tail must not miss
    //! an append of exactly the torn tail's length.
    use super::*;
    use crate::policy::tests::record_at;
    use crate::store::journal::Append;
    use tracing::Level;

    fn named(message: &str) -> Record {
        let mut r = record_at(Level::WARN);
        r.message = message.into();
        r.run = Some(1);
        r
    }

    fn append<'a>(records: &'a [Record]) -> Append<'a> {
        Append {
            run: None,
            level: Level::WARN,
            fields: &[],
            records,
            dropped: 0,
            trim: None,
        }
    }

    /// Commits `records` as a process that reads the state afresh.
    fn commit_fresh(store: &StateStore, lock: &StateLock, records: &[Record]) -> Stamp {
        let loaded = store.load(lock).unwrap();
        let mut state = loaded.state;
        state.pending.extend_from_slice(records);
        let stamp = store
            .commit(lock, &state, loaded.stamp, &append(records), false)
            .unwrap();
        assert_eq!(stamp.generation, loaded.stamp.generation, "appended");
        stamp
    }

    #[test]
    fn an_append_as_long_as_a_torn_tail_is_seen_by_a_kept_view() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        let mut first = State::new();
        first.pending.push(named("snapshot"));
        store.save(&lock, &first).unwrap();
        commit_fresh(&store, &lock, &[named("journal")]);
        // B's append, encoded as it will be written: the torn tail a crashed
        // run left is exactly as long.
        let b = [named("stored by B")];
        let mut b_bytes = Vec::new();
        append(&b).encode(&mut b_bytes).unwrap();
        let journal = journal_path(store.path());
        let mut torn = b"{\"message\":\"".to_vec();
        torn.resize(b_bytes.len(), b'x');
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(&torn).unwrap();
        drop(file);
        // A reads (and sees the torn tail), keeps its view, writes nothing.
        let a_view = store.load(&lock).unwrap();
        assert_eq!(a_view.state.pending.len(), 2);
        let kept = (a_view.state, a_view.stamp);
        // B appends over the torn tail: the journal is as long as before.
        let before = fs::metadata(&journal).unwrap().len();
        commit_fresh(&store, &lock, &b);
        assert_eq!(fs::metadata(&journal).unwrap().len(), before);
        // A's next flush starts from its kept view and appends.
        let loaded = store.load_cached(&lock, Some(kept)).unwrap();
        let a = [named("stored by A")];
        let mut state = loaded.state;
        state.pending.extend_from_slice(&a);
        store
            .commit(&lock, &state, loaded.stamp, &append(&a), false)
            .unwrap();
        let messages: Vec<String> = store
            .load(&lock)
            .unwrap()
            .state
            .pending
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(
            messages,
            ["snapshot", "journal", "stored by B", "stored by A"]
        );
    }
}

#[cfg(test)]
mod parked_tests {
    //! Issue 19, case 3: a parked file merged into a snapshot saved just
    //! before a kill (the file not yet removed) is not merged again.
    use super::*;
    use crate::policy::tests::record_at;
    use tracing::Level;

    fn messages(state: &State) -> Vec<&str> {
        state.pending.iter().map(|r| r.message.as_str()).collect()
    }

    fn parked_store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("state.json"), Duration::from_secs(5));
        let lock = store.lock().unwrap();
        let mut state = State::new();
        state.pending.push(record_at(Level::WARN));
        state.pending[0].message = "stored".into();
        store.save(&lock, &state).unwrap();
        let mut parked = record_at(Level::ERROR);
        parked.message = "parked".into();
        store.park(&[parked.clone(), parked], 1).unwrap();
        (dir, store)
    }

    #[test]
    fn a_kill_between_the_save_and_the_removal_does_not_merge_twice() {
        let (_dir, store) = parked_store();
        let lock = store.lock().unwrap();
        let loaded = store.load(&lock).unwrap();
        assert_eq!(loaded.parked.len(), 1);
        store.save(&lock, &loaded.state).unwrap();
        // Killed here: `remove_parked` never ran, the file is still there.
        assert_eq!(parked_files(store.path()).len(), 1);
        for kept in [None, Some(loaded.stamp)] {
            let loaded = match kept {
                None => store.load(&lock).unwrap(),
                // A view kept in memory (the stamp is stale: read whole).
                Some(stamp) => store
                    .load_cached(&lock, Some((loaded.state.clone(), stamp)))
                    .unwrap(),
            };
            assert_eq!(messages(&loaded.state), ["stored", "parked", "parked"]);
            assert_eq!(loaded.state.dropped, 1);
            assert!(loaded.parked.is_empty());
        }
        // The flush that found it merged already removed it.
        assert!(parked_files(store.path()).is_empty());
    }

    #[test]
    fn a_clear_killed_before_the_removal_does_not_bring_records_back() {
        let (_dir, store) = parked_store();
        let file = crate::StateFile::open(store.path());
        let lock = store.lock().unwrap();
        let loaded = store.load(&lock).unwrap();
        let mut state = loaded.state;
        state.pending.clear();
        store.save(&lock, &state).unwrap();
        drop(lock);
        // Killed before the removal: the next look finds nothing pending.
        assert_eq!(file.snapshot().unwrap().pending.len(), 0);
        let lock = store.lock().unwrap();
        assert!(store.load(&lock).unwrap().state.pending.is_empty());
    }
}
