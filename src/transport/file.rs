//! A transport that writes each digest as an `.eml` file into a folder.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BoxError, Email, Transport};
use crate::error::{Error, ErrorKind};

/// Writes each digest as an `.eml` file (the full RFC 5322 message) into a
/// folder, created if missing: for dry runs, tests and the quickstart. Any
/// mail program opens the files.
///
/// Files are named `<UTC time>-<process id>-<n>.eml`, so they sort by time,
/// and appear whole (written to a temporary name, then renamed).
///
/// ```
/// use tracing_email::{EmailLayer, FileDrop};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let (layer, guard) = EmailLayer::builder("my-app")
///     .transport(FileDrop::new(dir.path().join("outbox")))
///     .state_file(dir.path().join("state.json"))
///     .from("robot@example.com")
///     .to("me@example.com")
///     .build()?;
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Debug)]
pub struct FileDrop {
    dir: PathBuf,
    counter: AtomicU64,
}

impl FileDrop {
    /// Writes into `dir`.
    ///
    /// ```
    /// let outbox = tracing_email::FileDrop::new("target/outbox");
    /// assert_eq!(outbox.dir(), std::path::Path::new("target/outbox"));
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileDrop {
            dir: dir.into(),
            counter: AtomicU64::new(0),
        }
    }

    /// The folder the files go to.
    ///
    /// ```
    /// let outbox = tracing_email::FileDrop::new("outbox");
    /// println!("{}", outbox.dir().display());
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Transport for FileDrop {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        self.send_with_reply(email).map(drop)
    }

    /// `written to <folder>/<file>.eml`.
    fn send_with_reply(&self, email: &Email) -> Result<Option<String>, BoxError> {
        if let Err(e) = fs::create_dir_all(&self.dir) {
            let dir = self.dir.display();
            let message = format!("could not create the outbox folder {dir}: {e}");
            return Err(Error::explained(ErrorKind::Send, message, e).into());
        }
        let stamp = crate::capture::record::file_stamp(time::OffsetDateTime::now_utc());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{stamp}-{}-{n}.eml", std::process::id());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&email.formatted())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        written
            .map(|()| Some(format!("written to {}", path.display())))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                let message = format!("could not write {}: {e}", path.display());
                Error::explained(ErrorKind::Send, message, e).into()
            })
    }
}
