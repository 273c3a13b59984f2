//! The snapshot: the whole state in one file, read (a damaged one salvaged
//! and moved aside) and replaced atomically under a new generation.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capture::record::Record;
use crate::error::{Error, ErrorKind};
use crate::store::fs::{
    aside_path, check_regular, create_regular, io_error, open_regular, read_regular, sync_dir,
    with_suffix,
};
use crate::store::state::{State, VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repair {
    /// A flush.
    MoveAside,
    /// Inspection.
    No,
}

/// `{"generation":N,…` (`{"version":3,"generation":N,…` before), not reading the rest.
pub(super) fn snapshot_generation(path: &Path) -> Option<u64> {
    let file = open_regular(path, "state file").ok()??;
    let mut head = Vec::with_capacity(64);
    io::Read::read_to_end(&mut io::Read::take(file, 64), &mut head).ok()?;
    let head = std::str::from_utf8(&head).ok()?;
    let rest = &head[head.find("\"generation\":")? + "\"generation\":".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// 0: none, or a version 1 file. Else the next number, or a fresh one that a
/// journal left by another snapshot cannot name by chance.
pub(super) fn next_generation(previous: u64) -> u64 {
    if previous != 0 {
        return previous.wrapping_add(1).max(1);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (u64::from(std::process::id()) << 40)) | 1
}

pub(super) fn write(target: &Path, state: &State, generation: u64) -> Result<(), Error> {
    #[derive(Serialize)]
    struct SnapshotOut<'a> {
        generation: u64,
        #[serde(flatten)]
        state: &'a State,
    }
    write_atomic(target, &SnapshotOut { generation, state })
}

/// `None` when missing or corrupt (moved aside; what reads is kept, see [`salvage`]).
pub(super) fn read(path: &Path, repair: Repair) -> Result<Option<State>, Error> {
    let Some(bytes) = read_regular(path, "state file")? else {
        return Ok(None);
    };
    refuse_newer(path, &bytes)?;
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
        Err(e) => recover(path, &bytes, &e),
    }
}

fn refuse_newer(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    match serde_json::from_slice::<Version>(bytes) {
        Ok(v) if v.version > VERSION => Err(Error::new(
            ErrorKind::State,
            format!(
                "the state file {} has version {}, written by a newer tracing-email \
                 (this one reads version {VERSION}); it is left untouched: upgrade \
                 tracing-email or choose another state file",
                path.display(),
                v.version
            ),
        )),
        _ => Ok(()),
    }
}

fn recover(path: &Path, bytes: &[u8], e: &serde_json::Error) -> Result<Option<State>, Error> {
    let salvaged = salvage(bytes);
    let aside = move_aside(path)?;
    let (whole, kept) = match &salvaged {
        None => ("", " and a fresh one is used".to_owned()),
        Some((state, lost)) => (
            " as a whole",
            format!(
                ", and what could be read is kept: {} records ({lost} entries that are not \
                 records were left out and are only in the moved file)",
                state.pending.len()
            ),
        ),
    };
    crate::say::say!(
        "the state file {} could not be read{whole} ({e}); it was moved to {}{kept}",
        path.display(),
        aside.display()
    );
    Ok(salvaged.map(|(state, _)| state))
}

/// JSON but not of the right shape: each part that reads is kept. Returns it and
/// how many pending entries were left out; `None` when not a JSON object.
fn salvage(bytes: &[u8]) -> Option<(State, usize)> {
    let Value::Object(mut map) = serde_json::from_slice(bytes).ok()? else {
        return None;
    };
    let (pending, lost) = match map.remove("pending") {
        Some(Value::Array(entries)) => {
            let all = entries.len();
            let records = entries
                .into_iter()
                .filter_map(|r| serde_json::from_value(r).ok());
            let records: Vec<Record> = records.collect();
            let lost = all - records.len();
            (records, lost)
        }
        Some(_) => (Vec::new(), 1),
        None => (Vec::new(), 0),
    };
    map.remove("generation");
    let version = Value::from(VERSION);
    map.retain(|key, value| {
        let part = serde_json::json!({ "version": version, key: value });
        serde_json::from_value::<State>(part).is_ok()
    });
    map.insert("version".to_owned(), version);
    // Each part reads alone, so together they do; were it not so, the
    // records are kept all the same.
    let mut state: State =
        serde_json::from_value(Value::Object(map)).unwrap_or_else(|_| State::new());
    state.pending = pending;
    state.pending.sort_by_key(|r| r.timestamp);
    Some((state, lost))
}

fn move_aside(path: &Path) -> Result<PathBuf, Error> {
    let aside = aside_path(path);
    // Only a regular file is ever renamed (the caller read it as one; this
    // checks once more).
    check_regular(path, "state file")?;
    fs::rename(path, &aside)
        .map_err(|e| io_error("move aside", "unreadable state file", path, e))?;
    Ok(aside)
}

/// Temporary file in the same folder (mode 0600), fsync, rename, fsync of the folder.
pub(super) fn write_atomic(path: &Path, state: &impl Serialize) -> Result<(), Error> {
    let fail = |doing: &str, e: io::Error| io_error(doing, "state file", path, e);
    let bytes = serde_json::to_vec(state)
        .map_err(|e| Error::with_source(ErrorKind::State, "could not encode the state", e))?;
    // Whatever is at `path` is replaced only if it is a regular file (a
    // device or FIFO there is refused, never renamed over).
    check_regular(path, "state file")?;
    let tmp = with_suffix(
        path,
        &crate::store::leftovers::tmp_suffix(std::process::id()),
    );
    let mut file = create_regular(&tmp, "temporary file", true)?;
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
    sync_dir(path).map_err(|e| fail("sync the folder of", e))
}
