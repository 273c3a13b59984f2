//! The crate's error type: what went wrong, in words a person can act on.

use std::fmt;
use std::sync::Arc;

/// What kind of thing went wrong; see [`Error::kind`].
///
/// ```
/// use tracing_email::{ErrorKind, Outcome};
///
/// fn retry_soon(outcome: &Outcome) -> bool {
///     matches!(outcome, Outcome::Failed { error, .. } if error.kind() == ErrorKind::Busy)
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The builder was given something it cannot use (a missing or malformed
    /// address, an app name with a slash, a zero threshold, …). Returned by
    /// [`Builder::build`](crate::Builder::build).
    Config,
    /// The SMTP settings are unusable (bad URL, port 0, unreadable
    /// certificate, credentials over plain text). Returned by `build`.
    Smtp,
    /// The state file could not be read, written or locked.
    State,
    /// Another process held the state file's lock for longer than the lock
    /// timeout.
    Busy,
    /// The transport could not deliver the email (connection refused, login
    /// rejected, recipient refused, timeout, …).
    Send,
    /// Composing the email failed.
    Compose,
    /// Something panicked during a flush: the clock, the transport, or this
    /// crate's own code. The records the flush took are kept.
    Panic,
}

/// An error from building the layer or from a flush.
///
/// Its [`Display`](fmt::Display) is a full sentence that names what was wrong
/// and, where there is one, what to do about it. It never contains a password.
///
/// ```
/// use tracing_email::{EmailLayer, ErrorKind};
///
/// let err = EmailLayer::builder("my-app").from("not an address").build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("not an address"));
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    #[cfg(feature = "smtp")]
    pub(crate) fn smtp(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Smtp, message)
    }

    /// What kind of error this is.
    ///
    /// ```
    /// use tracing_email::{EmailLayer, ErrorKind};
    ///
    /// let err = EmailLayer::builder("").build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// How `Debug` shows a secret: `"***"` when there is one.
pub(crate) fn hidden<T>(secret: &Option<T>) -> &'static str {
    if secret.is_some() { "***" } else { "(none)" }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {}", crate::record::error_chain(source.as_ref()))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message is built by this crate and never holds a secret; the
        // source is shown through its Display chain, not its Debug, because
        // third-party Debug output is outside our control.
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field(
                "source",
                &crate::record::error_chain(source.as_ref()).to_string(),
            );
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
