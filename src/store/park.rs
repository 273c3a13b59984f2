//! Parked files: records that could not wait for the lock, written beside
//! the state file and merged (once) by the next flush that gets it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::error::Error;
use crate::store::fs::{beside, create_dir, file_name, with_suffix};
use crate::store::snapshot::{Repair, read, write_atomic};
use crate::store::state::{State, VERSION};

pub(super) fn park(target: &Path, records: &[Record], dropped: u64) -> Result<PathBuf, Error> {
    create_dir(target)?;
    // Unique names: a state lists the parked files it merged by name.
    static PARKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = with_suffix(
        target,
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

/// A file in `parked_merged` (saved, then killed before the removal) is removed,
/// not merged again. Returns the files merged, to remove once saved.
pub(super) fn merge_parked(target: &Path, state: &mut State) -> Vec<PathBuf> {
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
            Err(e) => crate::say::say!("a parked file was left where it is: {e}"),
        }
    }
    if !merged.is_empty() {
        state.pending.sort_by_key(|r| r.timestamp);
    }
    state.parked_merged = names;
    merged
}

pub(super) fn unmerged(target: &Path, state: &State) -> usize {
    parked_files(target)
        .iter()
        .filter(|p| !state.parked_merged.contains(&file_name(p)))
        .count()
}

pub(super) fn parked_files(target: &Path) -> Vec<PathBuf> {
    let parked = |rest: &str| rest.starts_with(".parked-") && rest.ends_with(".json");
    let found = beside(target).into_iter().filter(|(_, rest)| parked(rest));
    let mut found: Vec<PathBuf> = found.map(|(path, _)| path).collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    //! Issue 19, case 3: a parked file merged into a snapshot saved just
    //! before a kill (the file not yet removed) is not merged again.
    use super::*;
    use crate::policy::tests::record_at;
    use crate::store::file::StateStore;
    use std::time::Duration;
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
        let loaded = store.load(&lock, None).unwrap();
        assert_eq!(loaded.parked.len(), 1);
        store.save(&lock, &loaded.state).unwrap();
        // Killed here: `remove_parked` never ran, the file is still there.
        assert_eq!(parked_files(store.path()).len(), 1);
        for kept in [None, Some(loaded.stamp)] {
            let loaded = match kept {
                None => store.load(&lock, None).unwrap(),
                // A view kept in memory (the stamp is stale: read whole).
                Some(stamp) => store
                    .load(&lock, Some((loaded.state.clone(), stamp)))
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
        let file = crate::inspect::StateFile::open(store.path());
        let lock = store.lock().unwrap();
        let loaded = store.load(&lock, None).unwrap();
        let mut state = loaded.state;
        state.pending.clear();
        store.save(&lock, &state).unwrap();
        drop(lock);
        // Killed before the removal: the next look finds nothing pending.
        assert_eq!(file.snapshot().unwrap().pending.len(), 0);
        let lock = store.lock().unwrap();
        assert!(store.load(&lock, None).unwrap().state.pending.is_empty());
    }
}
