//! Files as the store opens them: only regular files (a FIFO, a device, a
//! socket or a folder is refused, saying what it is), opened without
//! blocking, with symbolic links resolved, created private to the owner;
//! and which file a path holds (to tell when it was replaced).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};

/// It changes when the file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    pub(super) len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
}

pub(super) fn file_id(path: &Path) -> Option<FileId> {
    let meta = fs::metadata(path).ok()?;
    Some(FileId {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        ino: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `<path>.corrupt-<time>`.
pub(super) fn aside_path(path: &Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    with_suffix(
        path,
        &format!(".corrupt-{}", crate::capture::record::file_stamp(now)),
    )
}

pub(super) fn io_error(doing: &str, what: &str, path: &Path, e: io::Error) -> Error {
    let message = format!("could not {doing} the {what} {}", path.display());
    Error::with_source(ErrorKind::State, message, e)
}

/// Private to the owner.
pub(super) fn create_dir(target: &Path) -> Result<(), Error> {
    let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_error("create", "state folder", dir, e))
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn not_a_file(file_type: fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    let kinds = [
        (file_type.is_file(), None),
        (file_type.is_dir(), Some("a folder")),
        #[cfg(unix)]
        (file_type.is_fifo(), Some("a FIFO (named pipe)")),
        #[cfg(unix)]
        (file_type.is_char_device(), Some("a character device")),
        #[cfg(unix)]
        (file_type.is_block_device(), Some("a block device")),
        #[cfg(unix)]
        (file_type.is_socket(), Some("a socket")),
    ];
    let found = kinds.into_iter().find(|(is, _)| *is);
    found.map_or(Some("something other than a regular file"), |(_, kind)| {
        kind
    })
}

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

pub(super) fn read_regular(path: &Path, what: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(mut file) = open_regular(path, what)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| io_error("read", what, path, e))?;
    Ok(Some(bytes))
}

pub(super) fn check_regular(path: &Path, what: &str) -> Result<(), Error> {
    match fs::metadata(path)
        .ok()
        .and_then(|m| not_a_file(m.file_type()))
    {
        Some(kind) => Err(refuse(what, path, kind)),
        None => Ok(()),
    }
}

/// A FIFO, device or folder is refused before any open, and one swapped in
/// between the check and the open by [`open_checked`].
pub(super) fn open_regular(path: &Path, what: &str) -> Result<Option<File>, Error> {
    check_regular(path, what)?;
    open_checked(path, what, None)
}

/// Created private to the owner if missing.
pub(super) fn create_regular(path: &Path, what: &str, truncate: bool) -> Result<File, Error> {
    check_regular(path, what)?;
    let not_found = || io_error("open", what, path, io::ErrorKind::NotFound.into());
    open_checked(path, what, Some(truncate))?.ok_or_else(not_found)
}

/// So a file created or renamed in it stays after a crash.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Opens without blocking, then checks the type of what was opened.
fn open_checked(path: &Path, what: &str, create: Option<bool>) -> Result<Option<File>, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    if let Some(truncate) = create {
        options.write(true).create(true).truncate(truncate);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(unix)]
    // Opening a FIFO without O_NONBLOCK waits for its other end for ever.
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", what, path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error("read the type of", what, path, e))?;
    if let Some(kind) = not_a_file(meta.file_type()) {
        return Err(refuse(what, path, kind));
    }
    Ok(Some(file))
}

/// At most 40, as the system does; also when the last target does not exist yet.
pub(super) fn resolve_links(path: &Path) -> PathBuf {
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

pub(super) fn beside(target: &Path) -> Vec<(PathBuf, String)> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Vec::new();
    };
    let dir = Some(dir).filter(|d| !d.as_os_str().is_empty());
    let Ok(entries) = fs::read_dir(dir.unwrap_or(Path::new("."))) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let rest = e
                .file_name()
                .to_string_lossy()
                .strip_prefix(&*name)?
                .to_owned();
            Some((e.path(), rest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// A FIFO swapped in after the type check: the open itself does not
    /// block, and the check on the opened handle refuses it.
    #[cfg(all(unix, any(target_os = "linux", target_os = "macos")))]
    #[test]
    fn opening_a_fifo_never_blocks_even_past_the_type_check() {
        use super::open_checked;
        use crate::store::file::tests::{mkfifo, within_5s};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        mkfifo(&path);
        let shown = path.clone();
        let err = within_5s(move || open_checked(&path, "state file", None).err());
        let err = err.expect("a FIFO is refused");
        assert!(
            err.to_string()
                .contains(&format!("the state file {}", shown.display()))
        );
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
