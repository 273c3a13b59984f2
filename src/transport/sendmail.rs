//! A transport that hands each digest to the local `sendmail` program.

use std::ffi::OsString;

use lettre::{SendmailTransport, Transport as _};

use super::{BoxError, Email, Transport};
use crate::error::{Error, ErrorKind};
use crate::redact::Redactor;

/// Hands each digest to the local mail system through a `sendmail`-compatible
/// program (`sendmail -i -f FROM -- TO…`, the message on its standard input).
///
/// ```
/// use tracing_email::transport::Sendmail;
///
/// let default = Sendmail::new();                       // `sendmail` on the PATH
/// let msmtp = Sendmail::with_command("/usr/bin/msmtp"); // any compatible program
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "sendmail")))]
pub struct Sendmail {
    command: OsString,
}

impl Default for Sendmail {
    fn default() -> Self {
        Sendmail::new()
    }
}

impl Sendmail {
    /// Runs `sendmail` found on the `PATH`.
    ///
    /// ```
    /// let sendmail = tracing_email::transport::Sendmail::new();
    /// ```
    pub fn new() -> Self {
        Sendmail::with_command("sendmail")
    }

    /// Runs this program instead.
    ///
    /// ```
    /// let sendmail = tracing_email::transport::Sendmail::with_command("/usr/sbin/sendmail");
    /// ```
    pub fn with_command(command: impl Into<OsString>) -> Self {
        Sendmail {
            command: command.into(),
        }
    }
}

impl Transport for Sendmail {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        SendmailTransport::new_with_command(self.command.clone())
            .send(&email.message)
            .map_err(|e| {
                // What the program said on stderr, escaped and bounded.
                let (said, program) = (Redactor::new().quote_error(&e), self.command.display());
                let message = format!("{program} could not deliver the digest: {said}");
                Error::explained(ErrorKind::Send, message, e).into()
            })
    }
}
