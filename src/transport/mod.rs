//! Where digests go: the [`Transport`] trait and the transports that come
//! with the crate ([`Smtp`], [`FileDrop`], [`Sendmail`]).

#[cfg(feature = "smtp")]
mod fault;
mod file;
#[cfg(feature = "smtp")]
mod secret;
#[cfg(feature = "sendmail")]
mod sendmail;
#[cfg(feature = "smtp")]
mod smtp;

pub use file::FileDrop;
#[cfg(feature = "sendmail")]
pub use sendmail::Sendmail;
#[cfg(feature = "smtp")]
pub use smtp::Smtp;

use std::sync::Arc;

use crate::capture::record::Record;

/// The error type transports return: any error, boxed. Its `Display` (and
/// its sources') ends up in [`Outcome::Failed`](crate::Outcome::Failed).
///
/// ```
/// let error: tracing_email::transport::BoxError = "the webhook answered 503".into();
/// assert_eq!(error.to_string(), "the webhook answered 503");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One digest email, ready to deliver.
///
/// A [`Transport`] may deliver the whole RFC 5322 message
/// ([`formatted`](Email::formatted)) or only what it needs: a desktop
/// notification would show [`subject`](Email::subject) and
/// [`text`](Email::text), a chat webhook might post [`html`](Email::html).
///
/// ```
/// use tracing_email::{transport::Email, transport::Transport, transport::BoxError};
///
/// struct Stdout;
/// impl Transport for Stdout {
///     fn send(&self, email: &Email) -> Result<(), BoxError> {
///         println!("{}\n\n{}", email.subject(), email.text());
///         Ok(())
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Email {
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: Option<String>,
    pub(crate) message: lettre::Message,
    pub(crate) records: Arc<[Record]>,
}

impl Email {
    /// The subject line (not yet MIME-encoded).
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// println!("{}", email.subject());
    /// # }
    /// ```
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plain-text body (always there, also when the email has an
    /// [`html`](Email::html) alternative).
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// println!("{}", email.text());
    /// # }
    /// ```
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The HTML alternative to [`text`](Email::text), as sent in the
    /// `text/html` part of the `multipart/alternative` message; `None` when
    /// it was turned off with [`Builder::html(false)`](crate::Builder::html).
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// if let Some(html) = email.html() {
    ///     std::fs::write("digest.html", html).unwrap();
    /// }
    /// # }
    /// ```
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    /// The records this email holds, oldest first.
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// println!("{} records", email.records().len());
    /// # }
    /// ```
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The whole message in RFC 5322 form, headers and encoded body, as it
    /// would be handed to a mail server.
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// std::fs::write("digest.eml", email.formatted()).unwrap();
    /// # }
    /// ```
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }

    /// The envelope recipients' addresses.
    ///
    /// ```
    /// # fn f(email: &tracing_email::transport::Email) {
    /// for to in email.recipients() { println!("{to}"); }
    /// # }
    /// ```
    pub fn recipients(&self) -> Vec<String> {
        self.message
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}

/// Something that delivers digest emails.
///
/// Implement it to send digests anywhere: a webhook, a chat, a desktop
/// notification. `send` runs on the thread that flushes (or on the batch
/// worker), never on the event path; events logged while it runs are not
/// captured. An error keeps every record of the email pending for a later
/// flush.
///
/// ```
/// use tracing_email::{transport::BoxError, transport::Email, transport::Transport};
///
/// /// Shows each digest as a desktop notification.
/// struct Notify;
///
/// impl Transport for Notify {
///     fn send(&self, email: &Email) -> Result<(), BoxError> {
///         let status = std::process::Command::new("notify-send")
///             .arg(email.subject())
///             .arg(email.text())
///             .status()?;
///         if !status.success() {
///             return Err(format!("notify-send exited with {status}").into());
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Delivers one email. Return `Ok` only once it was accepted: the
    /// records it holds are then removed from the state file.
    fn send(&self, email: &Email) -> Result<(), BoxError>;

    /// Delivers one email as [`send`](Transport::send) does and says what
    /// the receiving end answered, for a person checking the mail settings
    /// ([`Builder::send_test_email`](crate::Builder::send_test_email), the
    /// `tracing-email test` command): [`Smtp`] gives the server's final
    /// reply (`250 2.0.0 Ok: queued as 4F2A1`), [`FileDrop`] the file it
    /// wrote. The default calls `send` and has nothing to add (`None`).
    ///
    /// ```
    /// use tracing_email::{transport::BoxError, transport::Email, transport::Transport};
    ///
    /// struct Webhook;
    /// impl Transport for Webhook {
    ///     fn send(&self, email: &Email) -> Result<(), BoxError> {
    ///         self.send_with_reply(email).map(drop)
    ///     }
    ///     fn send_with_reply(&self, _email: &Email) -> Result<Option<String>, BoxError> {
    ///         // ... post it, then:
    ///         Ok(Some("HTTP 202 Accepted".into()))
    ///     }
    /// }
    /// ```
    fn send_with_reply(&self, email: &Email) -> Result<Option<String>, BoxError> {
        self.send(email).map(|()| None)
    }

    /// Checks the configuration; called once by
    /// [`Builder::build`](crate::Builder::build) so that mistakes show up
    /// there, not at the end of the run. Must not do network I/O.
    ///
    /// ```
    /// # use tracing_email::{transport::BoxError, transport::Email, transport::Transport};
    /// struct Webhook { url: String }
    /// impl Transport for Webhook {
    ///     fn send(&self, _email: &Email) -> Result<(), BoxError> { Ok(()) }
    ///     fn check(&mut self) -> Result<(), BoxError> {
    ///         if !self.url.starts_with("https://") {
    ///             return Err("the webhook URL must start with https://".into());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn check(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}
