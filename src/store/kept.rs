//! The kept view: a state kept in memory between the flushes of one
//! process, with the stamp of the files it was read from, and the one rule
//! that says whether it is still the state on disk (brought up to date from
//! the journal's tail when others appended, as a full read replays it from
//! its start).

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::store::fs::{FileId, file_id, io_error, open_regular};
use crate::store::journal::{Replayed, replay};
use crate::store::journal_file::journal_path;
use crate::store::snapshot::snapshot_generation;
use crate::store::state::State;

/// With the parked files merged into it, to remove once the state is saved.
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) parked: Vec<PathBuf>,
    pub(crate) stamp: Stamp,
    pub(crate) repair: bool,
    /// First pending records that come from memory (0 after a full read, a
    /// merge, or others' trims).
    pub(crate) kept: usize,
}

/// If the same at the next lock, the state in memory is still the state on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stamp {
    pub(crate) generation: u64,
    pub(super) version: u32,
    pub(super) snapshot: Option<FileId>,
    /// Up to its last whole line, where the next append starts; 0 without a usable journal.
    pub(crate) journal_good: u64,
    /// Only so a torn tail is reported once; never a sign the view is current (see `refresh`).
    pub(super) journal_file: u64,
}

impl Stamp {
    pub(super) fn new(generation: u64, version: u32, snapshot: Option<FileId>) -> Self {
        Stamp {
            generation,
            version,
            snapshot,
            journal_good: 0,
            journal_file: 0,
        }
    }
}

/// `None` when the files must be read whole. The same snapshot file and
/// generation, and a journal at least `journal_good` long: under one snapshot
/// whole lines are only added to (an append starts at the last whole line's end,
/// over a torn tail), so bytes past the view's end are replayed; anything else
/// (a shorter journal, lines that do not replay) is a full read.
pub(super) fn refresh(target: &Path, mut state: State, mut stamp: Stamp) -> Option<Loaded> {
    let kept = state.pending.len();
    // The same size, time and inode could in theory be another file;
    // its generation, at its start, could not.
    if stamp.snapshot.is_none()
        || file_id(target) != stamp.snapshot
        || snapshot_generation(target) != Some(stamp.generation)
    {
        return None;
    }
    let len = match fs::metadata(journal_path(target)) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return None,
        Err(_) => 0,
    };
    let mut trimmed = 0;
    match len.cmp(&stamp.journal_good) {
        Ordering::Less => return None,
        Ordering::Equal => stamp.journal_file = len,
        Ordering::Greater => {
            let (replayed, _) = replay_past(target, &mut state, &mut stamp).ok()?;
            if replayed.garbage > 0 || replayed.stale {
                return None;
            }
            trimmed = replayed.trimmed;
        }
    }
    // Others' trim lines took kept records from the front: those left are
    // no longer where the view had them.
    let kept = if trimmed > 0 { 0 } else { kept };
    Some(Loaded {
        state,
        parked: Vec::new(),
        stamp,
        repair: false,
        kept,
    })
}

/// Says on stderr when it ends in a torn line this view had not seen.
pub(super) fn replay_past(
    target: &Path,
    state: &mut State,
    stamp: &mut Stamp,
) -> Result<(Replayed, Vec<u8>), Error> {
    let journal = journal_path(target);
    let mut bytes = Vec::new();
    if let Some(mut file) = open_regular(&journal, "journal")? {
        io::Seek::seek(&mut file, io::SeekFrom::Start(stamp.journal_good))
            .and_then(|_| io::Read::read_to_end(&mut file, &mut bytes))
            .map_err(|e| io_error("read", "journal", &journal, e))?;
    }
    let from_start = stamp.journal_good == 0;
    let replayed = replay(state, &bytes, from_start, stamp.snapshot.is_none());
    let len = stamp.journal_good + bytes.len() as u64;
    // A torn tail this view saw already is not news.
    if replayed.torn && (replayed.good_len > 0 || len != stamp.journal_file) {
        crate::say::say!(
            "the journal {} ends in a torn line (a crash during an append); \
             1 line was ignored and the next append writes over it",
            journal.display()
        );
    }
    stamp.journal_good += replayed.good_len as u64;
    stamp.journal_file = len;
    Ok((replayed, bytes))
}

#[cfg(test)]
mod tests {
    //! Issue 19, case 1: a view kept over a torn journal tail must not miss
    //! an append of exactly the torn tail's length.
    use super::*;
    use crate::capture::record::Record;
    use crate::policy::tests::record_at;
    use crate::store::file::{StateLock, StateStore};
    use crate::store::journal::Append;
    use std::fs::{self, OpenOptions};
    use std::io::Write as _;
    use std::time::Duration;
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
        let loaded = store.load(lock, None).unwrap();
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
        let a_view = store.load(&lock, None).unwrap();
        assert_eq!(a_view.state.pending.len(), 2);
        let kept = (a_view.state, a_view.stamp);
        // B appends over the torn tail: the journal is as long as before.
        let before = fs::metadata(&journal).unwrap().len();
        commit_fresh(&store, &lock, &b);
        assert_eq!(fs::metadata(&journal).unwrap().len(), before);
        // A's next flush starts from its kept view and appends.
        let loaded = store.load(&lock, Some(kept)).unwrap();
        let a = [named("stored by A")];
        let mut state = loaded.state;
        state.pending.extend_from_slice(&a);
        store
            .commit(&lock, &state, loaded.stamp, &append(&a), false)
            .unwrap();
        let messages: Vec<String> = store
            .load(&lock, None)
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
