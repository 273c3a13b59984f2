//! SMTP through lettre's blocking transport, with pure-Rust TLS.

use std::sync::Arc;
use std::time::Duration;
use std::{fmt, io};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Code;
use lettre::transport::smtp::{Error as SmtpError, SmtpTransportBuilder};
use lettre::{SmtpTransport, Transport as _};

use super::fault::{TlsFault, lookup_failed, tls_fault};
use super::secret::Source;
use super::{BoxError, Email, Transport};
use crate::error::{Error, ErrorKind};
use crate::redact::{MAX_QUOTED, Redactor};
use crate::settings::{DAY, Origin, at_most};

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain connection upgraded with STARTTLS, which is required.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// STARTTLS if the server offers it, plain text otherwise.
    Opportunistic,
    /// No TLS at all: only for a relay on the same host or network.
    Plain,
}

impl Security {
    /// Its default port, and its name in messages.
    fn port_and_name(self) -> (u16, &'static str) {
        match self {
            Security::StartTls => (587, "STARTTLS"),
            Security::Implicit => (465, "implicit TLS"),
            Security::Opportunistic => (25, "opportunistic STARTTLS"),
            Security::Plain => (25, "no TLS"),
        }
    }
}

/// Sends digests to an SMTP server, with lettre and rustls (no OpenSSL).
///
/// Nothing is checked or connected until
/// [`Builder::build`](crate::Builder::build), which reports a bad port,
/// certificate or credential setup; the connection is made at each send.
/// The password is never shown: `Debug` prints `password: "***"`.
///
/// ```
/// use std::time::Duration;
/// use tracing_email::Smtp;
///
/// let smtp = Smtp::starttls("smtp.example.com")        // port 587, TLS required
///     .credentials("me@example.com", "app password")
///     .timeout(Duration::from_secs(10));
/// assert!(format!("{smtp:?}").contains(r#"password: "***""#));
///
/// let relay = Smtp::plain("localhost");                  // port 25, local relay
/// let from_url = Smtp::from_url("smtps://me:secret@smtp.example.com")?; // port 465
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub struct Smtp {
    host: String,
    port: Option<u16>,
    security: Security,
    user: Option<String>,
    password: Option<String>,
    timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
    allow_insecure_auth: bool,
    /// A login whose secret is fetched at each send, instead of `password`.
    login: Option<Login>,
    /// Made by `build()`: the transport, or for a fetched login its
    /// builder, to which each send adds the secret just fetched.
    transport: Option<Built>,
    /// Where the config this came from names its keys, to name them in
    /// errors and their advice instead of the methods (`None`: made in code).
    origin: Option<Origin>,
}

/// A login whose secret is fetched when a send needs it.
#[derive(Clone, Debug)]
struct Login {
    source: Source,
    /// XOAUTH2 with a bearer token; else PLAIN or LOGIN with a password.
    oauth2: bool,
}

impl Login {
    fn what(&self) -> &'static str {
        if self.oauth2 {
            "OAuth2 token"
        } else {
            "SMTP password"
        }
    }
}

#[derive(Clone)]
enum Built {
    Ready(SmtpTransport),
    NeedsSecret(Box<SmtpTransportBuilder>),
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = self.password.as_ref().map_or("(none)", |_| "***");
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port_number())
            .field("security", &self.security.port_and_name().1)
            .field("user", &self.user)
            .field("password", &password)
            .field("login", &self.login)
            .field("timeout", &self.timeout)
            .field("root_certificates", &self.root_certificates.len())
            .field("allow_insecure_auth", &self.allow_insecure_auth)
            .finish()
    }
}

impl Smtp {
    fn new(host: impl Into<String>, security: Security) -> Self {
        Smtp {
            host: host.into(),
            port: None,
            security,
            user: None,
            password: None,
            timeout: Duration::from_secs(10),
            root_certificates: Vec::new(),
            allow_insecure_auth: false,
            login: None,
            transport: None,
            origin: None,
        }
    }

    /// Submission with STARTTLS on port 587; the server must offer STARTTLS.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::starttls("smtp.example.com");
    /// ```
    pub fn starttls(host: impl Into<String>) -> Self {
        Smtp::new(host, Security::StartTls)
    }

    /// Implicit TLS (SMTPS) on port 465.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::tls("smtp.example.com");
    /// ```
    pub fn tls(host: impl Into<String>) -> Self {
        Smtp::new(host, Security::Implicit)
    }

    /// No TLS, port 25: for a relay on this host or a trusted network.
    /// Credentials over it are refused unless
    /// [`allow_insecure_auth`](Smtp::allow_insecure_auth) is called.
    ///
    /// ```
    /// let relay = tracing_email::Smtp::plain("localhost");
    /// ```
    pub fn plain(host: impl Into<String>) -> Self {
        Smtp::new(host, Security::Plain)
    }

    /// Reads the settings from a URL:
    ///
    /// - `smtps://user:pass@host[:port]`: implicit TLS, port 465;
    /// - `smtp://user:pass@host[:port]?tls=required`: STARTTLS, port 587;
    /// - `smtp://host[:port]?tls=opportunistic`: STARTTLS when offered, port 25;
    /// - `smtp://host[:port]`: no TLS, port 25.
    ///
    /// User and password are percent-decoded, and must be percent-encoded:
    /// a URL with an `@` after a `/`, `?` or `#` (a password pasted as it
    /// is) is an error that says how to encode it. The error never repeats
    /// the URL or any part of the password.
    ///
    /// The URL is parsed with the [`url`](https://docs.rs/url) crate, as
    /// lettre's own [`SmtpTransport::from_url`](lettre::SmtpTransport::from_url)
    /// does, but these forms differ from lettre's:
    ///
    /// - `?tls=opportunistic` defaults to port 25 (lettre: 587), as STARTTLS
    ///   that may be skipped is what a relay on port 25 offers;
    /// - `?tls=none` is understood (lettre refuses it), and `smtps://` with
    ///   any `tls=` is an error (lettre ignores it);
    /// - any other query parameter is an error (lettre ignores it);
    /// - a path (`smtp://host/name`, which lettre sends as the `EHLO` name)
    ///   or a fragment is an error: this crate sets no `EHLO` name from it;
    /// - a user name without a password is kept (lettre drops it), so that
    ///   the password can come from elsewhere ([`password`](Smtp::password));
    /// - an IPv6 host is given without its brackets (`smtp://[::1]` connects
    ///   to `::1`);
    /// - an unencoded reserved character in the user information is an
    ///   error (see above) instead of a different host.
    ///
    /// ```
    /// use tracing_email::Smtp;
    ///
    /// let smtp = Smtp::from_url("smtp://me%40example.com:pa%24%24@mail.example.com?tls=required")?;
    /// assert!(Smtp::from_url("http://mail.example.com").is_err());
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, Error> {
        check_encoded(url)?;
        let parsed = url::Url::parse(url).map_err(|e| {
            let message = format!(
                "the SMTP URL is not a valid URL ({e}); expected smtp://host or \
                 smtps://user:password@host"
            );
            Error::explained(ErrorKind::Smtp, message, e)
        })?;
        let security = url_security(&parsed)?;
        let mut smtp = Smtp::new(url_host(&parsed)?, security);
        if !matches!(parsed.path(), "" | "/") || parsed.fragment().is_some() {
            return Err(Error::smtp(
                "the SMTP URL has a path or a #fragment after the host, which tracing-email does \
                 not use; remove it (smtp://host:port?tls=...), and if it is part of a password, \
                 percent-encode it: # as %23, / as %2F",
            ));
        }
        smtp.port = parsed.port();
        if !parsed.username().is_empty() {
            smtp.user = Some(decode(parsed.username(), "user name")?);
        }
        smtp.password = parsed
            .password()
            .map(|p| decode(p, "password"))
            .transpose()?;
        Ok(smtp)
    }

    /// Connects to this port instead of the mode's default (587, 465 or 25).
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::starttls("smtp.example.com").port(2525);
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Logs in with this user name and password (AUTH PLAIN or LOGIN).
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::tls("smtp.example.com")
    ///     .credentials("me@example.com", "app password");
    /// ```
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Sets the password alone, keeping the user (e.g. from
    /// [`from_url`](Smtp::from_url) with the password in the environment).
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::from_url("smtps://me@smtp.example.com")?
    ///     .password("from the environment");
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Logs in with XOAUTH2 (Microsoft 365, Gmail) as `user`, with a bearer
    /// token that `token` returns. It is called when a send needs it, never
    /// at `build()` (tokens expire within the hour), on the thread that
    /// sends; an error or an empty token fails that send (the records are
    /// kept). The token is never shown, logged or stored.
    ///
    /// ```
    /// # fn fetch_token() -> Result<String, std::io::Error> { Ok("ya29.a0Af".into()) }
    /// let smtp = tracing_email::Smtp::starttls("smtp.office365.com")
    ///     .oauth2("me@example.com", || fetch_token());
    /// assert!(!format!("{smtp:?}").contains("ya29"));
    /// ```
    pub fn oauth2<F, E>(mut self, user: impl Into<String>, token: F) -> Self
    where
        F: Fn() -> Result<String, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.user = Some(user.into());
        self.login = Some(Login {
            source: Source::Closure(Arc::new(move || token().map_err(Into::into))),
            oauth2: true,
        });
        self
    }

    /// Logs in with XOAUTH2 as the URL's user, with a bearer token that
    /// this command prints: `argv` is the program, then its arguments, run
    /// without a shell at each send that needs a token (the convention of
    /// msmtp's `passwordeval` and git's credential helpers). The first line
    /// of its standard output is the token; a non-zero exit (its stderr is
    /// shown), no output or no end within the SMTP [`timeout`](Smtp::timeout)
    /// (it is then killed, with what it started) fails that send, and the
    /// records are kept. `build()` refuses an empty command, a command
    /// beside a password, and no user name.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::from_url("smtp://me%40example.com@smtp.office365.com?tls=required")?
    ///     .oauth2_token_command(["oauth2-helper", "--account", "poca"]);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn oauth2_token_command<I, S>(self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv = argv.into_iter().map(Into::into).collect();
        self.command_login(argv, "oauth2_token_command", true)
    }

    /// Logs in as the URL's user with the password this command prints
    /// (`pass`, `secret-tool`, a vault CLI): run without a shell at each
    /// send, as [`oauth2_token_command`](Smtp::oauth2_token_command)
    /// describes. The first line of its output is the password (`pass`
    /// keeps other lines for notes).
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::from_url("smtps://me%40example.com@smtp.example.com")?
    ///     .password_command(["pass", "show", "smtp"]);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn password_command<I, S>(self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv = argv.into_iter().map(Into::into).collect();
        self.command_login(argv, "password_command", false)
    }

    /// A login whose secret `argv` prints at each send; `key` names the
    /// setting in its errors.
    fn command_login(mut self, argv: Vec<String>, key: &str, oauth2: bool) -> Self {
        let source = Source::Command {
            argv,
            key: key.into(),
        };
        self.login = Some(Login { source, oauth2 });
        self
    }

    /// The user name to log in as, if any.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::from_url("smtps://me%40example.com@smtp.example.com")?;
    /// assert_eq!(smtp.user(), Some("me@example.com"));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether a password is set.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::from_url("smtps://me@smtp.example.com")?;
    /// assert!(!smtp.has_password());
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// How long to wait for each network operation (connect, each reply);
    /// 10 seconds by default, at most a day (`build()` refuses a longer one).
    /// Never longer than the builder's
    /// [`send_deadline`](crate::Builder::send_deadline): it is cut to it.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::tls("smtp.example.com")
    ///     .timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts this CA certificate (PEM) besides the bundled web roots: for a
    /// server with a private CA. May be called several times.
    ///
    /// ```
    /// let pem = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    /// let smtp = tracing_email::Smtp::starttls("mail.internal").root_certificate(pem);
    /// ```
    pub fn root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Allows sending the password over a connection that is not encrypted
    /// ([`plain`](Smtp::plain) or opportunistic STARTTLS). Without it,
    /// `build()` refuses such a setup.
    ///
    /// ```
    /// let smtp = tracing_email::Smtp::plain("127.0.0.1")
    ///     .credentials("relay", "secret")
    ///     .allow_insecure_auth();
    /// ```
    pub fn allow_insecure_auth(mut self) -> Self {
        self.allow_insecure_auth = true;
        self
    }

    /// Marks this as made from a config whose keys `origin` names
    /// (`email.smtp_url`, `POCA_PASSWORD_COMMAND`): its errors and their
    /// advice then name them instead of methods.
    pub(crate) fn named(mut self, origin: Origin) -> Self {
        if let Some(Source::Command { key, .. }) = self.login.as_mut().map(|l| &mut l.source) {
            *key = origin.name(key);
        }
        self.origin = Some(origin);
        self
    }

    fn encrypted(&self) -> bool {
        matches!(self.security, Security::StartTls | Security::Implicit)
    }

    /// Where this connects: `host:port (security)`.
    fn endpoint_text(&self) -> String {
        let (host, port) = (&self.host, self.port_number());
        format!("{host}:{port} ({})", self.security.port_and_name().1)
    }

    fn port_number(&self) -> u16 {
        self.port.unwrap_or(self.security.port_and_name().0)
    }

    /// This transport with its timeout no longer than `deadline`, the
    /// longest a send may take: the socket of a send abandoned there is not
    /// left waiting past it. A timeout beyond the most allowed is left as
    /// it is, for `build()` to refuse.
    pub(crate) fn within(mut self, deadline: Duration) -> Self {
        if self.timeout <= DAY {
            self.timeout = self.timeout.min(deadline);
        }
        self
    }

    /// What `build()` refuses, the first fault found in this order.
    fn check_settings(&self) -> Result<(), String> {
        let login = self.login.as_ref().map(|login| match &login.source {
            Source::Command { key, .. } => key.as_str(),
            Source::Closure(_) => "the OAuth2 login",
        });
        let name = login.unwrap_or_default();
        let refuse = |bad: bool, why: String| if bad { Err(why) } else { Ok(()) };
        [
            refuse(self.host.trim().is_empty(), "the SMTP host is empty".into()),
            refuse(
                self.port == Some(0),
                "the SMTP port is 0; use 587 (STARTTLS), 465 (implicit TLS) or 25 (plain)".into(),
            ),
            refuse(
                self.timeout.is_zero(),
                "the SMTP timeout is zero; give each network operation some time, e.g. 10 s".into(),
            ),
            at_most("the SMTP timeout", self.timeout, DAY),
            refuse(
                self.password.is_some() && self.user.is_none(),
                "an SMTP password is set but no user name; use .credentials(user, password)".into(),
            ),
            (self.login.as_ref()).map_or(Ok(()), |l| l.source.check(l.what())),
            refuse(
                login.is_some() && self.password.is_some(),
                format!("both a password and {name} are set; keep one"),
            ),
            refuse(
                login.is_some() && self.user.is_none(),
                format!(
                    "{name} is set but no user name; write it into the URL, such as \
                     smtps://me%40example.com@smtp.example.com"
                ),
            ),
            refuse(
                self.user.is_some() && !self.encrypted() && !self.allow_insecure_auth,
                self.insecure_auth_refusal(),
            ),
        ]
        .into_iter()
        .collect()
    }

    /// Why a password over a connection that is not encrypted is refused,
    /// and what allows it, in the words of the code or of the config.
    fn insecure_auth_refusal(&self) -> String {
        let eq = match self.origin {
            Some(Origin::Env(_)) => "=",
            _ => " = ",
        };
        let fix = self.advice(
            "allow_insecure_auth",
            |k| {
                format!(
                    "use smtps:// (implicit TLS, port 465) or add ?tls=required to the smtp:// \
                     URL (STARTTLS, port 587), or set {k}{eq}true"
                )
            },
            "use Smtp::starttls or Smtp::tls, or call .allow_insecure_auth()",
        );
        let lead = self.advice("smtp_url", |k| format!("{k}: "), "");
        format!(
            "{lead}refusing to send the SMTP password to {} over a connection that is not \
             encrypted; {fix} if this really is a trusted network",
            self.endpoint_text()
        )
    }

    fn build_transport(&self) -> Result<Built, Error> {
        self.check_settings().map_err(Error::smtp)?;
        let mut builder = SmtpTransport::builder_dangerous(self.host.as_str())
            .port(self.port_number())
            .timeout(Some(self.timeout));
        if let Some(tls) = self.tls_settings()? {
            builder = builder.tls(tls);
        }
        match (&self.login, &self.user, &self.password) {
            (Some(login), _, _) if login.oauth2 => Ok(Built::NeedsSecret(Box::new(
                builder.authentication(vec![Mechanism::Xoauth2]),
            ))),
            (Some(_), _, _) => Ok(Built::NeedsSecret(Box::new(builder))),
            (None, Some(user), Some(password)) => Ok(Built::Ready(
                builder
                    .credentials(Credentials::new(user.clone(), password.clone()))
                    .build(),
            )),
            _ => Ok(Built::Ready(builder.build())),
        }
    }

    /// The TLS settings, the root certificates added (checked even for no
    /// TLS, where they go unused); `None` for no TLS.
    fn tls_settings(&self) -> Result<Option<Tls>, Error> {
        let mut params = TlsParameters::builder(self.host.clone());
        for (i, pem) in self.root_certificates.iter().enumerate() {
            let cert = Certificate::from_pem(pem)
                .ok()
                .filter(|_| String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----"))
                .ok_or_else(|| {
                    let code = format!("root certificate #{}", i + 1);
                    let what = self.advice("root_certificate", |k| format!("{k}: the file"), &code);
                    Error::smtp(format!(
                        "{what} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)"
                    ))
                })?;
            params = params.add_root_certificate(cert);
        }
        if self.security == Security::Plain {
            return Ok(None);
        }
        let params = params.build_rustls().map_err(|e| {
            let message = "the TLS settings could not be used (is the root certificate valid?)";
            Error::with_source(ErrorKind::Smtp, message, e)
        })?;
        Ok(Some(match self.security {
            Security::StartTls => Tls::Required(params),
            Security::Implicit => Tls::Wrapper(params),
            _ => Tls::Opportunistic(params),
        }))
    }

    /// The transport for one send: the one built, or for a fetched login a
    /// new one with the secret fetched now (connections are not pooled
    /// from one send to the next then, as the secret may have changed);
    /// and the redactor that knows the login's secret.
    fn transport_now(&self) -> Result<(std::borrow::Cow<'_, SmtpTransport>, Redactor), Error> {
        let user = self.user.as_deref().unwrap_or_default();
        match (&self.transport, &self.login, &self.user) {
            (Some(Built::Ready(t)), _, _) => {
                let password = self.password.as_deref().unwrap_or_default();
                let redactor = Redactor::new().login(user, password);
                Ok((std::borrow::Cow::Borrowed(t), redactor))
            }
            (Some(Built::NeedsSecret(builder)), Some(login), Some(user)) => {
                let secret = login
                    .source
                    .fetch(login.what(), self.timeout)
                    .map_err(|e| Error::smtp(format!("{e}; the records are kept")))?;
                let redactor = Redactor::new().login(user, &secret);
                let builder = (**builder)
                    .clone()
                    .credentials(Credentials::new(user.clone(), secret));
                Ok((std::borrow::Cow::Owned(builder.build()), redactor))
            }
            _ => Err(Error::smtp("the SMTP transport was not checked by build()")),
        }
    }

    /// Our error for lettre's: the words of [`explain`](Smtp::explain),
    /// with lettre's error as its source, unless the server's reply in it
    /// echoes a secret: then the source is its text, redacted.
    fn failure(&self, e: SmtpError, redactor: &Redactor) -> Error {
        let message = self.explain(&e, redactor);
        let chain = crate::error::error_chain(&e).to_string();
        if redactor.finds_secret_in(&chain) {
            let quoted = redactor.quote(chain.as_bytes(), MAX_QUOTED, false);
            Error::explained(ErrorKind::Smtp, message, quoted)
        } else {
            Error::explained(ErrorKind::Smtp, message, e)
        }
    }

    /// Describes a lettre error in words a person can act on: what went
    /// wrong, read from its status and kind, the `io::Error` and the
    /// `rustls::Error` in its sources, and by lettre's exact words only where
    /// no type tells it; with what to change, or else with what lettre said.
    /// What the server said passes the redactor.
    fn explain(&self, e: &SmtpError, redactor: &Redactor) -> String {
        use io::ErrorKind as Io;
        let (detail, endpoint) = (redactor.quote_error(e), self.endpoint_text());
        let said = std::error::Error::source(e).map_or(String::new(), ToString::to_string);
        let chain = std::iter::successors(std::error::Error::source(e), |s| (*s).source());
        let io = chain.clone().find_map(|s| s.downcast_ref::<io::Error>());
        // lettre reports a handshake that fails on the first read or write
        // as a network error, so `is_tls()` alone misses it.
        let tls = chain.clone().find_map(tls_fault);
        let tls = tls.or(e.is_tls().then_some(TlsFault::Other));
        match (e.status(), io.map(io::Error::kind), tls) {
            (Some(code), _, _) => {
                let text = redactor.quote(said.as_bytes(), MAX_QUOTED, false);
                self.explain_reply(code, e.is_transient(), &text)
            }
            (_, Some(Io::ConnectionRefused), _) => format!(
                "the mail server refused the connection at {endpoint}: is it running on that port?"
            ),
            // A socket's read timeout is `WouldBlock` on Unix, `TimedOut`
            // elsewhere; lettre's `is_timeout` sees only the latter.
            (_, Some(Io::TimedOut | Io::WouldBlock), _) => format!(
                "the mail server at {endpoint} did not answer within {:?}",
                self.timeout
            ),
            // A TLS peer that closes without close_notify is `UnexpectedEof`;
            // lettre reads the end of the stream in the middle of a reply as
            // a response error with this text and no source.
            (_, io, _)
                if matches!(io, Some(Io::UnexpectedEof | Io::ConnectionReset))
                    || matches!(io, Some(Io::ConnectionAborted | Io::BrokenPipe))
                    || e.is_response() && said == "incomplete response" =>
            {
                format!("the mail server at {endpoint} closed the connection ({detail})")
            }
            // lettre's kind for it, "client", is shared by other faults.
            _ if e.is_client()
                && self.user.is_some()
                && said == "No compatible authentication mechanism was found" =>
            {
                self.explain_no_login(&endpoint, &detail)
            }
            (_, _, Some(tls)) => self.explain_tls(tls, &detail),
            _ if chain.clone().any(lookup_failed) => {
                let host = &self.host;
                format!("the mail server's name {host:?} could not be resolved ({detail})")
            }
            _ => format!("sending to {endpoint} failed: {detail}"),
        }
    }

    /// Credentials are set, but the server offers no login lettre can use.
    fn explain_no_login(&self, endpoint: &str, detail: &str) -> String {
        let remove = self.advice(
            "smtp_url",
            |k| format!("remove the user name and password from {k}"),
            "remove the credentials",
        );
        let mechanisms = match &self.login {
            Some(Login { oauth2: true, .. }) => "AUTH XOAUTH2",
            _ => "AUTH PLAIN or LOGIN",
        };
        format!(
            "the mail server at {endpoint} offers no login on this port (no {mechanisms} \
             in its reply to EHLO), but a user name and password are set: if the server \
             needs no login, {remove}; if it does, use its submission port with TLS (587 \
             with STARTTLS, or 465 with implicit TLS), where logins are offered ({detail})"
        )
    }

    /// A TLS failure told with what to change, and what lettre said
    /// (`detail`, already redacted).
    fn explain_tls(&self, fault: TlsFault, detail: &str) -> String {
        let (endpoint, host) = (self.endpoint_text(), &self.host);
        match fault {
            TlsFault::CaAsServerCertificate => {
                let san = host.parse::<std::net::IpAddr>().map_or("DNS", |_| "IP");
                format!(
                    "the TLS connection to {endpoint} failed: the server's certificate is itself \
                     a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by \
                     default), which TLS refuses as a server's certificate even when it is \
                     trusted as a root; give the server a leaf certificate, such as one made by \
                     `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
                     -days 825 -subj /CN={host} -addext basicConstraints=critical,CA:FALSE \
                     -addext subjectAltName={san}:{host}` (trust that one), or make a CA, sign a \
                     leaf certificate for the server with it and trust the CA ({detail})"
                )
            }
            TlsFault::PlainTextPort => format!(
                "the mail server at {endpoint} answered in plain text, not TLS: this port speaks \
                 plain text first (STARTTLS, as on ports 587 and 25); {}{}, or use the server's \
                 implicit-TLS port (465) ({detail})",
                self.starttls_advice(),
                self.origin.as_ref().map_or("", |_| " (STARTTLS)"),
            ),
            TlsFault::Other => format!(
                "the TLS connection to {endpoint} failed ({detail}); if the server uses a \
                 private CA, {}",
                self.advice(
                    "root_certificate",
                    |k| format!("set {k} to the CA's PEM file"),
                    "add it with .root_certificate(pem)",
                )
            ),
        }
    }

    /// A reply with an error code, `server_text` already redacted. A 530
    /// (authentication required, or STARTTLS first) when no login was sent
    /// (lettre sends AUTH exactly when it has credentials) is no rejected
    /// login: the server wants TLS or a login first.
    fn explain_reply(&self, code: Code, transient: bool, server_text: &str) -> String {
        let kind = if transient { "temporary" } else { "permanent" };
        let said = format!("({code}, {kind}): {server_text} [{}]", self.endpoint_text());
        let what = match u16::from(code) {
            530 if self.user.is_none() && !self.encrypted() => {
                return format!(
                    "the server requires TLS before it accepts mail {said}; no login was sent, \
                     so none was rejected: {} so that the connection is encrypted with STARTTLS \
                     first (and if the server requires a login too, give a user name and password)",
                    self.starttls_advice()
                );
            }
            530 if self.user.is_none() => {
                let login = self.advice(
                    "smtp_url",
                    |k| format!("write the user name and password into {k}"),
                    "use .credentials(user, password)",
                );
                return format!(
                    "the server requires a login before it accepts mail {said}; none is set: {login}"
                );
            }
            530 | 534 | 535 | 538 => "the server rejected the login",
            550 | 551 | 553 | 450 | 452 | 501 => "the server refused the sender or a recipient",
            552 | 554 | 451 | 421 => "the server refused the message",
            _ => "the server answered with an error",
        };
        format!("{what} {said}")
    }

    /// Advice in the words of the config this came from (`config`, given
    /// the name of its `key`), or else of the code (`code`).
    fn advice(&self, key: &str, config: impl FnOnce(String) -> String, code: &str) -> String {
        match &self.origin {
            Some(o) => config(o.name(key)),
            None => code.to_owned(),
        }
    }

    /// How to connect to the same host and port with STARTTLS.
    fn starttls_advice(&self) -> String {
        let (host, port) = (&self.host, self.port_number());
        let code = format!("use Smtp::starttls(\"{host}\").port({port})");
        let url = format!("smtp://{host}:{port}?tls=required");
        self.advice("smtp_url", |k| format!("set {k} to {url}"), &code)
    }
}

impl Transport for Smtp {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        self.send_with_reply(email).map(drop)
    }

    /// The server's reply to the message: its code and text,
    /// `250 2.0.0 Ok: queued as 4F2A1`.
    fn send_with_reply(&self, email: &Email) -> Result<Option<String>, BoxError> {
        // lettre (with its `tracing` feature) logs the SMTP exchange, AUTH
        // included: nothing of it may reach any layer, ours or the user's.
        // Nor may what fetches a secret log it: the fetch, and the drop of
        // a transport made for this send (lettre logs its pool's end), are
        // inside too.
        let silent = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(silent, || {
            let (transport, redactor) = self.transport_now()?;
            transport
                .send(&email.message)
                .map(|reply| {
                    let text: Vec<&str> = reply.message().collect();
                    let text = format!("{} {}", reply.code(), text.join(" "));
                    Some(redactor.quote(text.as_bytes(), MAX_QUOTED, false))
                })
                .map_err(|e| self.failure(e, &redactor))
        })
        .map_err(|e| Box::new(e) as BoxError)
    }

    fn check(&mut self) -> Result<(), BoxError> {
        self.transport = Some(self.build_transport()?);
        Ok(())
    }
}

/// The security an SMTP URL's scheme and `tls=` parameter ask for.
fn url_security(url: &url::Url) -> Result<Security, Error> {
    let mut tls = None;
    for (key, value) in url.query_pairs() {
        if key != "tls" {
            return Err(Error::smtp(format!(
                "the SMTP URL has an unknown parameter {key:?}; only tls=required|opportunistic|none is understood"
            )));
        }
        tls.get_or_insert(value);
    }
    Ok(match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => Security::Implicit,
        ("smtp", Some("required")) => Security::StartTls,
        ("smtp", Some("opportunistic")) => Security::Opportunistic,
        ("smtp", None | Some("none")) => Security::Plain,
        ("smtp" | "smtps", Some(other)) => {
            return Err(Error::smtp(format!(
                "the SMTP URL says tls={other:?}; use tls=required, tls=opportunistic or tls=none \
                 with smtp://, or smtps:// for implicit TLS"
            )));
        }
        (scheme, _) => {
            return Err(Error::smtp(format!(
                "the SMTP URL has scheme {scheme:?}; use smtp:// (with ?tls=required for STARTTLS) \
                 or smtps://"
            )));
        }
    })
}

/// An SMTP URL's host, an IPv6 address without its brackets.
fn url_host(url: &url::Url) -> Result<String, Error> {
    match url.host() {
        // Shown by `url` with brackets.
        Some(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        Some(host) if host != url::Host::Domain("") => Ok(host.to_string()),
        _ => Err(Error::smtp(
            "the SMTP URL has no host, e.g. smtps://smtp.example.com",
        )),
    }
}

/// The user name or password (`what`) of an SMTP URL, percent-decoded.
fn decode(text: &str, what: &str) -> Result<String, Error> {
    let invalid = format!(
        "the {what} in the SMTP URL is not valid percent-encoded UTF-8; write a % in it as %25"
    );
    // `percent_decode_str` keeps a `%` without two hex digits as it is;
    // here it is a mistake to point out (lettre keeps it).
    let escapes_ok = text
        .split('%')
        .skip(1)
        .all(|after| after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !escapes_ok {
        return Err(Error::smtp(invalid));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|e| Error::explained(ErrorKind::Smtp, invalid, e))
}

/// Refuses a URL whose user information seems to hold unencoded reserved
/// characters: an `@` after the first `/`, `?` or `#` that follows `//`
/// (the parser would end the host there and take the rest as a path, a
/// query or a fragment, so the user name could become the host). Names
/// nothing of the URL.
fn check_encoded(url: &str) -> Result<(), Error> {
    let Some(start) = url.find("//").map(|i| i + 2) else {
        return Ok(());
    };
    let rest = &url[start..];
    match rest.find(['/', '?', '#']) {
        Some(end) if rest[end..].contains('@') => Err(Error::smtp(
            "the SMTP URL holds a user name or password with characters that must be \
             percent-encoded (an @ comes after a /, ? or #); write them encoded: \
             # as %23, ? as %3F, / as %2F, @ as %40, : as %3A, % as %25, such as \
             smtps://me%40example.com:my%23pass%2F1@smtp.example.com",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn url_schemes_pick_security_and_default_port() {
        let cases = [
            ("smtps://h", Security::Implicit, 465),
            ("smtp://h?tls=required", Security::StartTls, 587),
            ("smtp://h?tls=opportunistic", Security::Opportunistic, 25),
            ("smtp://h", Security::Plain, 25),
            ("smtp://h?tls=none", Security::Plain, 25),
            ("smtp://h:2525?tls=required", Security::StartTls, 2525),
        ];
        for (url, security, port) in cases {
            let s = Smtp::from_url(url).unwrap();
            assert_eq!((s.security, s.port_number()), (security, port), "{url}");
            assert_eq!(s.host, "h");
        }
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        let s = Smtp::from_url("smtps://me%40example.com:p%40ss%3Aw%C3%B6rd@h").unwrap();
        assert_eq!(s.user.as_deref(), Some("me@example.com"));
        assert_eq!(s.password.as_deref(), Some("p@ss:wörd"));
    }

    #[test]
    fn bad_urls_are_errors_that_never_show_the_password() {
        for url in [
            "http://u:hunter2@h",
            "smtp://u:hunter2@h?tls=maybe",
            "smtp://u:hunter2@h?foo=1",
            "smtps://u:hunter2@",
            "not a url hunter2",
            "smtps://u:hunter2@h:99999",
        ] {
            let err = Smtp::from_url(url).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
            assert!(text.contains("SMTP URL"), "{url}: {text}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let s = Smtp::starttls("h").credentials("me", "hunter2");
        let text = format!("{s:?}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains(r#"password: "***""#), "{text}");
    }

    #[test]
    fn credentials_over_plain_text_need_an_explicit_opt_in() {
        let err = Smtp::plain("h")
            .credentials("me", "hunter2")
            .build_transport()
            .err()
            .expect("refused by build");
        assert!(err.to_string().contains("allow_insecure_auth"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        assert!(
            Smtp::plain("h")
                .credentials("me", "x")
                .allow_insecure_auth()
                .build_transport()
                .is_ok()
        );
        assert!(Smtp::plain("h").build_transport().is_ok());
        assert!(
            Smtp::from_url("smtp://me:x@h?tls=opportunistic")
                .unwrap()
                .build_transport()
                .is_err()
        );
    }

    #[test]
    fn a_zero_timeout_is_an_error() {
        let err = Smtp::tls("h")
            .timeout(Duration::ZERO)
            .build_transport()
            .err()
            .expect("refused by build");
        assert!(err.to_string().contains("timeout is zero"), "{err}");
    }

    #[test]
    fn port_zero_and_bad_certificates_are_errors() {
        assert!(
            Smtp::tls("h")
                .port(0)
                .build_transport()
                .err()
                .expect("refused by build")
                .to_string()
                .contains("port is 0")
        );
        for (smtp, pem) in [
            (Smtp::tls("h"), &b"not a certificate"[..]),
            (Smtp::tls("h"), b""),
            (Smtp::plain("h"), b"not a certificate"),
        ] {
            let err = smtp
                .root_certificate(pem)
                .build_transport()
                .err()
                .expect("refused by build");
            assert!(err.to_string().contains("root certificate"), "{err}");
        }
        let garbage =
            b"-----BEGIN CERTIFICATE-----\nAAAABBBBCCCC\n-----END CERTIFICATE-----\n".to_vec();
        assert!(
            Smtp::tls("h")
                .root_certificate(garbage)
                .build_transport()
                .is_err()
        );
    }

    #[test]
    fn unencoded_reserved_characters_are_an_error_that_shows_the_encodings() {
        for url in [
            "smtps://me:p#ss@smtp.example.com",
            "smtps://me:p?ss@smtp.example.com",
            "smtps://me:p/ss@smtp.example.com",
            "smtp://me:1234/ss@smtp.example.com?tls=required",
            "smtps://me:p#ss?w/rd@x:y%z@smtp.example.com",
        ] {
            let err = Smtp::from_url(url).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("must be percent-encoded"), "{url}: {text}");
            for code in [
                "# as %23", "? as %3F", "/ as %2F", "@ as %40", ": as %3A", "% as %25",
            ] {
                assert!(text.contains(code), "{url}: {text}");
            }
            assert!(!text.contains("ss@"), "{url}: {text}");
        }
        // Encoded, the same password works.
        let s = Smtp::from_url("smtps://me:p%23ss%3Fw%2Frd%40x%3Ay%25z@smtp.example.com").unwrap();
        assert_eq!(s.password.as_deref(), Some("p#ss?w/rd@x:y%z"));
        assert_eq!(s.host, "smtp.example.com");
        // An @ and : in the password are read right even unencoded (the
        // last @ ends the user information).
        let s = Smtp::from_url("smtps://me:p@ss:w@smtp.example.com").unwrap();
        assert_eq!(s.password.as_deref(), Some("p@ss:w"));
        assert_eq!(s.host, "smtp.example.com");
    }

    fn email() -> Email {
        let message = lettre::Message::builder()
            .from("robot@example.com".parse().unwrap())
            .to("me@example.com".parse().unwrap())
            .subject("s")
            .body("b".to_owned())
            .unwrap();
        Email {
            subject: "s".into(),
            text: "b".into(),
            html: None,
            message,
            records: Vec::new().into(),
        }
    }

    #[test]
    fn a_send_error_keeps_lettres_error_and_its_io_error_as_sources() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut smtp = Smtp::plain("127.0.0.1").port(port);
        smtp.check().unwrap();
        let error = smtp.send(&email()).unwrap_err();
        let error = error.downcast_ref::<Error>().expect("our error");
        assert_eq!(error.kind(), ErrorKind::Smtp);
        // The sentence is ours, told once; lettre's error is not appended.
        let text = error.to_string();
        assert!(
            text.starts_with("the mail server refused the connection at 127.0.0.1:"),
            "{text}"
        );
        assert!(!text.contains("Connection error"), "{text}");
        let chain: Vec<_> =
            std::iter::successors(std::error::Error::source(error), |e| (*e).source()).collect();
        let lettre = chain[0]
            .downcast_ref::<lettre::transport::smtp::Error>()
            .expect("lettre's error first");
        assert!(lettre.status().is_none() && !lettre.is_tls());
        let io = chain
            .iter()
            .find_map(|e| e.downcast_ref::<io::Error>())
            .expect("an io::Error under it");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// A one-shot server on 127.0.0.1 that writes `greeting` (if any) to
    /// the first connection and closes it; its port.
    fn one_shot(greeting: &'static str) -> u16 {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(greeting.as_bytes());
            }
        });
        port
    }

    fn send_error(port: u16) -> Error {
        let mut smtp = Smtp::plain("127.0.0.1")
            .port(port)
            .timeout(Duration::from_secs(5));
        smtp.check().unwrap();
        let error = smtp.send(&email()).unwrap_err();
        error.downcast_ref::<Error>().expect("our error").clone()
    }

    #[test]
    fn a_reply_code_is_read_from_the_typed_code_and_its_severity() {
        let text = send_error(one_shot("554 5.7.1 no service here\r\n")).to_string();
        assert!(
            text.starts_with(
                "the server refused the message (554, permanent): 5.7.1 no service here [127.0.0.1:"
            ),
            "{text}"
        );
        let text = send_error(one_shot("421 4.3.2 shutting down\r\n")).to_string();
        assert!(text.contains("(421, temporary)"), "{text}");
    }

    #[test]
    fn a_server_that_closes_mid_reply_closed_the_connection() {
        // lettre: a response error "incomplete response", with no io::Error.
        let error = send_error(one_shot(""));
        let lettre = std::error::Error::source(&error)
            .and_then(|e| e.downcast_ref::<lettre::transport::smtp::Error>())
            .expect("lettre's error as source");
        assert!(lettre.is_response(), "{lettre:?}");
        let text = error.to_string();
        assert!(
            text.starts_with("the mail server at 127.0.0.1:")
                && text.contains("closed the connection"),
            "{text}"
        );
    }

    #[test]
    fn url_forms_that_differ_from_lettres_are_documented_and_checked() {
        // A path (lettre's EHLO name) or a fragment is refused, unquoted.
        for url in ["smtps://h/ehlo.example.com", "smtp://h:25#x"] {
            let err = Smtp::from_url(url).unwrap_err().to_string();
            assert!(err.contains("path or a #fragment"), "{url}: {err}");
            assert!(!err.contains("ehlo.example"), "{err}");
        }
        // A trailing slash is no path.
        assert_eq!(Smtp::from_url("smtps://h/").unwrap().host, "h");
        // IPv6 without brackets; a user without password kept.
        let s = Smtp::from_url("smtp://me@[::1]:2525").unwrap();
        assert_eq!((s.host.as_str(), s.port_number()), ("::1", 2525));
        assert_eq!(s.user(), Some("me"));
        assert!(!s.has_password());
        // A % without two hex digits is an error, as before.
        let err = Smtp::from_url("smtps://me:p%zz@h").unwrap_err().to_string();
        assert!(err.contains("write a % in it as %25"), "{err}");
        assert!(!err.contains("p%zz"), "{err}");
        // Invalid UTF-8 once decoded: the same error, with its source.
        let err = Smtp::from_url("smtps://me:%FF@h").unwrap_err();
        assert!(err.to_string().contains("not valid percent-encoded UTF-8"));
        assert!(std::error::Error::source(&err).is_some());
    }
}
