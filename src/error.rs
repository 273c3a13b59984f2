//! The crate's error type: what went wrong, in words a person can act on.

use std::any::Any;
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
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
    /// certificate, credentials over plain text), returned by `build`; or,
    /// at a flush, [`Smtp`](crate::Smtp) could not deliver (connection
    /// refused, login rejected, recipient refused, timeout, …): the lettre
    /// error is its [`source`](std::error::Error::source), unless the
    /// server's reply in it echoes the login's secret: then the source is
    /// that text with the secret as `***` (the message always is).
    Smtp,
    /// The state file could not be read, written or locked.
    State,
    /// Another process held the state file's lock for longer than the lock
    /// timeout.
    Busy,
    /// The transport could not deliver the email (sendmail failed, a
    /// [`FileDrop`] folder that cannot be written, a [`Transport`] of one's
    /// own returned an error, which is then the
    /// [`source`](std::error::Error::source)), or the send did not finish
    /// before the send deadline.
    ///
    /// [`FileDrop`]: crate::FileDrop
    /// [`Transport`]: crate::transport::Transport
    Send,
    /// Composing the email failed.
    Compose,
    /// No Alertmanager accepted the alerts (unreachable, an HTTP error, a
    /// timeout): the message says what each one did and quotes its reply.
    /// The records are kept and a later flush posts again.
    Alertmanager,
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
/// use tracing_email::{EmailLayer, ErrorKind, FileDrop};
///
/// let err = EmailLayer::builder("my-app")
///     .transport(FileDrop::new("outbox"))
///     .from("not an address")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("not an address"));
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Whether `message` already tells what `source` says, so that
    /// `Display` does not repeat it (the source stays reachable through
    /// [`source()`](std::error::Error::source) all the same).
    told: bool,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
            told: false,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = Some(Arc::from(source.into()));
        Error {
            source,
            ..Error::new(kind, message)
        }
    }

    /// An error whose `message` already explains `source` in its own words
    /// (an SMTP reply, a state file that could not be written): `Display`
    /// shows the message alone, and `source()` still gives the error it came
    /// from, for code that inspects it.
    pub(crate) fn explained(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error {
            told: true,
            ..Error::with_source(kind, message, source)
        }
    }

    /// This error with `context` around its text (`{context(text)}`), of
    /// the same kind, keeping this error as its source: what a person reads
    /// grows, what code can inspect stays.
    pub(crate) fn context(self, context: impl FnOnce(&Self) -> String) -> Self {
        let message = context(&self);
        Error::explained(self.kind, message, self)
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = self.source.as_ref().filter(|_| !self.told) {
            write!(f, ": {}", error_chain(source.as_ref()))?;
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
            d.field("source", &error_chain(source.as_ref()).to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// `error` followed by each of its sources, joined by `": "`.
///
/// Writing it never panics because an error's `Display` fails: the failure
/// is passed on to the writer (after what was written), as `fmt` expects.
pub(crate) fn error_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl fmt::Display + 'a {
    struct Chain<'a>(&'a (dyn std::error::Error + 'static));
    impl fmt::Display for Chain<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)?;
            let mut last = bounded_text(self.0);
            for s in std::iter::successors(self.0.source(), |s| s.source()) {
                let text = bounded_text(s);
                // Many errors repeat their source in their own message.
                if !last.contains(&text) {
                    write!(f, ": {s}")?;
                }
                last = text;
            }
            Ok(())
        }
    }
    Chain(error)
}

/// Most bytes of an error's text compared when [`error_chain`] looks for a
/// source repeated in its error's message.
const COMPARED_BYTES: usize = 4096;

/// The start of `value`'s text, at most [`COMPARED_BYTES`] (what was written
/// before its `Display` failed, if it did).
fn bounded_text(value: &dyn fmt::Display) -> String {
    struct Bounded(String);
    impl fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            // All of `s` that fits, cut at a character's start.
            let room = (COMPARED_BYTES - self.0.len()).min(s.len());
            let at = (0..=room).rev().find(|&at| s.is_char_boundary(at));
            self.0.push_str(&s[..at.unwrap_or(0)]);
            (at == Some(s.len())).then_some(()).ok_or(fmt::Error)
        }
    }
    let mut out = Bounded(String::new());
    let _ = write!(out, "{value}");
    out.0
}

/// The error for a panic caught in a flush: `what` happened, the panic's
/// message when it has one, then `then` (what became of the records).
pub(crate) fn panicked(what: &str, payload: Box<dyn Any + Send>, then: &str) -> Error {
    let said = panic_message(&*payload).map(|message| format!(": {message}"));
    drop_payload(payload);
    let said = said.unwrap_or_default();
    Error::new(ErrorKind::Panic, format!("{what}{said}; {then}"))
}

/// A panic's message, when its payload is a `&str` or a `String`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    let text = payload.downcast_ref::<&str>().copied();
    text.map(str::to_owned)
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Drops a panic's payload, whose own `drop` may panic too.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
}

/// `value`'s `Display`, whatever it does: a panic or a formatting error in
/// it (user code, such as a transport's error) leaves what was written and
/// a marker.
pub(crate) fn display_safely(value: &impl std::fmt::Display) -> String {
    let mut text = String::new();
    match catch_unwind(AssertUnwindSafe(|| write!(text, "{value}"))) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => text.push_str("…[its Display failed]"),
        Err(payload) => {
            drop_payload(payload);
            text.push_str("…[its Display panicked]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The sources of `error`, outermost first (the error itself excluded).
    fn sources(error: &Error) -> Vec<&(dyn std::error::Error + 'static)> {
        std::iter::successors(error.source(), |e| (*e).source()).collect()
    }

    #[test]
    fn context_keeps_the_source_and_its_text_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let inner = Error::with_source(ErrorKind::State, "could not write the state file", io);
        let outer = inner.context(|e| format!("{e}; the records are kept"));
        assert_eq!(
            outer.to_string(),
            "could not write the state file: denied; the records are kept"
        );
        assert_eq!(outer.kind(), ErrorKind::State);
        let chain = sources(&outer);
        assert_eq!(chain.len(), 2, "{chain:?}");
        assert!(chain[0].is::<Error>());
        let io = chain[1].downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_state_file_io_error_reaches_the_outcome_with_its_io_error_as_source() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_folder = dir.path().join("file");
        std::fs::write(&not_a_folder, "").unwrap();
        let (layer, guard) = crate::EmailLayer::builder("app")
            .transport(crate::FileDrop::new(dir.path().join("outbox")))
            .state_file(not_a_folder.join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .build()
            .unwrap();
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || tracing::warn!("kept"));
        let outcome = guard.flush();
        let crate::Outcome::Failed { error, .. } = &outcome else {
            panic!("expected a failure, got {outcome}");
        };
        assert_eq!(error.kind(), ErrorKind::State, "{error}");
        let io = sources(error)
            .into_iter()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .unwrap_or_else(|| panic!("no io::Error under {error:?}"));
        // The text users read still tells the io::Error, once.
        let text = error.to_string();
        assert_eq!(text.matches(&io.to_string()).count(), 1, "{text}");
        // Once the folder can be made, the guard's drop stores the record
        // the failed flush kept in memory and sends it (the default policy),
        // printing nothing.
        std::fs::remove_file(&not_a_folder).unwrap();
        drop(guard);
        let emails: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert!(
            emails.len() == 1 && emails[0].contains("kept"),
            "{emails:?}"
        );
    }

    #[test]
    fn error_chain_keeps_what_a_failing_display_wrote() {
        #[derive(Debug)]
        struct Bad;
        impl fmt::Display for Bad {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("half")?;
                Err(fmt::Error)
            }
        }
        impl std::error::Error for Bad {}
        #[derive(Debug)]
        struct Outer(Bad);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let mut out = String::new();
        assert!(write!(out, "{}", error_chain(&Outer(Bad))).is_err());
        assert_eq!(out, "outer: half");
    }

    #[test]
    fn error_chain_lists_sources_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("fetching the feed failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        assert_eq!(
            error_chain(&e).to_string(),
            "fetching the feed failed: timed out"
        );
    }
}
