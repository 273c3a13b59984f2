//! The journal on disk: where it lives beside the state file, saying when
//! it holds lines that do not read (a copy kept aside), and appending to it
//! at its last whole line with an fsync. It is read and replayed past a
//! stamp by [`kept::replay_past`](super::kept::replay_past).

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::store::fs::{aside_path, create_regular, io_error, sync_dir, with_suffix};
use crate::store::snapshot::Repair;

pub(crate) fn journal_path(target: &Path) -> PathBuf {
    with_suffix(target, ".journal")
}

/// A flush ([`Repair::MoveAside`]) keeps a copy of it as it was first.
pub(super) fn say_unreadable(journal: &Path, bytes: &[u8], garbage: usize, repair: Repair) {
    let kept = if repair == Repair::MoveAside {
        let copy = aside_path(journal);
        match fs::write(&copy, bytes) {
            Ok(()) => format!("; the journal as it was is kept in {}", copy.display()),
            Err(e) => format!("; it could not be copied aside ({e})"),
        }
    } else {
        String::new()
    };
    crate::say::say!(
        "the journal {} holds {garbage} lines that could not be read; they \
         were skipped and the rest was loaded{kept}",
        journal.display(),
    );
}

/// At `start`, the end of its last whole line (over a torn one), fsynced. On
/// failure it is cut back, so nothing half written stays.
pub(super) fn append(target: &Path, start: u64, bytes: &[u8]) -> Result<u64, Error> {
    let journal = journal_path(target);
    let fail = |doing: &str, e: io::Error| io_error(doing, "journal", &journal, e);
    let created = !journal.exists();
    let mut file = create_regular(&journal, "journal", false)?;
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
    if created {
        sync_dir(&journal).map_err(|e| fail("sync the folder of", e))?;
    }
    Ok(start + bytes.len() as u64)
}
