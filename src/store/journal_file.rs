//! The journal on disk: where it lives beside the state file, reading it
//! whole, and appending to it at its last whole line with an fsync.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::store::fs::{io_error, open_regular, private_options, read_options, with_suffix};

/// The journal beside the state file `target`.
pub(crate) fn journal_path(target: &Path) -> PathBuf {
    with_suffix(target, ".journal")
}

/// The whole journal at `journal`, `None` when there is none.
pub(super) fn read(journal: &Path) -> Result<Option<Vec<u8>>, Error> {
    let Some(mut file) = open_regular(journal, "journal", read_options())? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| {
        io_error(
            format!("could not read the journal {}", journal.display()),
            e,
        )
    })?;
    Ok(Some(bytes))
}

/// Says on stderr that the journal ends in a torn line.
pub(super) fn say_torn(journal: &Path) {
    eprintln!(
        "tracing-email: the journal {} ends in a torn line (a crash during an append); \
         1 line was ignored and the next append writes over it",
        journal.display()
    );
}

/// Appends `bytes` to the journal of the state file `target` at `start`,
/// the end of its last whole line (writing over a torn one), fsyncs it, and
/// returns where the journal now ends. On failure the journal is cut back
/// to where it was, so nothing half written stays.
pub(super) fn append(target: &Path, start: u64, bytes: &[u8]) -> Result<u64, Error> {
    let journal = journal_path(target);
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
    Ok(start + bytes.len() as u64)
}
