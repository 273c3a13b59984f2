//! Configuring the layer: every setting is checked by [`Builder::build`], so
//! a mistake shows up when the program starts, not when it exits.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::UtcOffset;
use tracing::Level;

use crate::capture::buffer::Buffer;
use crate::capture::layer::{EmailLayer, Shared};
use crate::digest::Composer;
use crate::digest::subject::Template;
use crate::error::{Error, ErrorKind};
use crate::flush::Flusher;
use crate::flush::destination::Alerts;
use crate::flush::outcome::Outcome;
use crate::flush::worker::{Timing, spawn_worker};
use crate::guard::FlushGuard;
use crate::settings::*;
use crate::store::file::StateStore;
use crate::transport::Transport;

/// Configures an [`EmailLayer`] and its [`FlushGuard`]. Made by
/// [`EmailLayer::builder`].
///
/// ```
/// use tracing::Level;
/// use tracing_email::{EmailLayer, Smtp};
///
/// let (layer, guard) = EmailLayer::builder("poca")
///     .transport(Smtp::starttls("smtp.example.com").credentials("me@example.com", "secret"))
///     .from("poca <me@example.com>")
///     .to("me@example.com")
///     .subject("POCA log")
///     .threshold(5, Level::WARN)
///     .build()?;
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct Builder {
    pub(crate) config: EmailConfig,
    transport: Option<Given>,
    #[cfg(feature = "alertmanager")]
    alerts: Option<crate::Alertmanager>,
    clock: Arc<dyn crate::clock::Clock>,
}

/// Made once `build()` knows the send deadline, so an [`Smtp`](crate::Smtp)
/// send cannot outlive it waiting on its socket (see `Smtp::within`).
type Given = Box<dyn FnOnce(Duration) -> Box<dyn Transport> + Send + Sync>;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmailLayer {
    /// Starts configuring a layer for the program called `app`. The name
    /// picks the default state file and appears in the subject.
    ///
    /// ```
    /// let builder = tracing_email::EmailLayer::builder("poca");
    /// ```
    pub fn builder(app: impl Into<String>) -> Builder {
        Builder {
            config: EmailConfig {
                app: app.into(),
                origin: Origin::Code,
                ..EmailConfig::default()
            },
            transport: None,
            #[cfg(feature = "alertmanager")]
            alerts: None,
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// Builder methods named as their key: `fn key(args) => field = value;`.
macro_rules! setters {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) => $($field:ident).+ = $value:expr;)*) => {
        $($(#[$doc])*
        pub fn $name(mut self, $($arg: $ty),*) -> Self {
            self.config.$($field).+ = $value;
            self
        })*
    };
}

impl Builder {
    /// Where digests go: [`Smtp`](crate::Smtp), [`FileDrop`](crate::FileDrop),
    /// [`Sendmail`](crate::transport::Sendmail) or a [`Transport`] of your own. Required.
    ///
    /// ```
    /// let b = tracing_email::EmailLayer::builder("app")
    ///     .transport(tracing_email::Smtp::tls("smtp.example.com"));
    /// ```
    pub fn transport(mut self, transport: impl Transport) -> Self {
        #[cfg(feature = "smtp")]
        if let Some(smtp) = (&transport as &dyn std::any::Any).downcast_ref::<crate::Smtp>() {
            let smtp = smtp.clone();
            self.transport = Some(Box::new(move |deadline| Box::new(smtp.within(deadline))));
            return self;
        }
        self.transport = Some(Box::new(move |_| Box::new(transport)));
        self
    }

    /// Also posts the failures worth reporting to Prometheus Alertmanager
    /// (see [`Alertmanager`](crate::Alertmanager)), which groups the alerts
    /// of many hosts into one notification and says when a failure is over.
    /// With alerts and no [`transport`](Builder::transport), Alertmanager is
    /// the only destination and `from`/`to` are not needed: the records of
    /// the failures it accepted leave the state file, the others wait as
    /// they would for an email (within [`max_pending`](Builder::max_pending)).
    ///
    /// ```
    /// use tracing_email::{Alertmanager, EmailLayer};
    ///
    /// let (layer, guard) = EmailLayer::builder("poca")
    ///     .alerts(Alertmanager::new(["http://am-0:9093", "http://am-1:9093"]).label("team", "media"))
    ///     .host("node-7")
    ///     .consecutive_runs(3)
    ///     .fingerprint_fields(["feed"])
    /// #   .state_file(std::env::temp_dir().join("tracing-email-doc-alerts.json"))
    ///     .build()?;
    /// # std::mem::forget(guard);
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    #[cfg(feature = "alertmanager")]
    pub fn alerts(mut self, alertmanager: crate::Alertmanager) -> Self {
        self.alerts = Some(alertmanager);
        self
    }

    setters! {
        /// See [`EmailConfig::host`](crate::EmailConfig::host).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").host("backup-eu-3");
        /// ```
        fn host(name: impl Into<String>) => host = Some(name.into());
        /// See [`EmailConfig::from`](crate::EmailConfig::from).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("app").from("App <robot@example.com>");
        /// ```
        fn from(from: impl Into<String>) => from = Some(from.into());
        /// See [`EmailConfig::subject`](crate::EmailConfig::subject).
        ///
        /// ```
        /// use tracing_email::{EmailLayer, ErrorKind, FileDrop};
        ///
        /// let b = EmailLayer::builder("poca").subject("[{app}@{host}] {errors} errors, {warnings} warnings");
        /// let fixed = EmailLayer::builder("poca").subject("POCA log");
        ///
        /// let err = EmailLayer::builder("poca")
        ///     .transport(FileDrop::new("outbox"))
        ///     .from("robot@example.com")
        ///     .to("me@example.com")
        ///     .subject("{app}: {eror} errors")
        ///     .build()
        ///     .unwrap_err();
        /// assert_eq!(err.kind(), ErrorKind::Config);
        /// assert!(err.to_string().contains("{eror}"));
        /// ```
        fn subject(subject: impl Into<String>) => subject = Some(subject.into());
        /// See [`EmailConfig::html`](crate::EmailConfig::html).
        ///
        /// ```
        /// let text_only = tracing_email::EmailLayer::builder("poca").html(false);
        /// ```
        fn html(html: bool) => html = html;
        /// See [`PolicyConfig::threshold`](crate::PolicyConfig::threshold).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").threshold(5, tracing::Level::WARN);
        /// ```
        fn threshold(count: usize, level: Level) => policy.threshold = Some((count, level));
        /// See [`PolicyConfig::batch`](crate::PolicyConfig::batch).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("cookbook").batch(10);
        /// ```
        fn batch(size: usize) => policy.batch = Some(size);
        /// See [`PolicyConfig::immediately_at`](crate::PolicyConfig::immediately_at).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .threshold(5, tracing::Level::WARN)
        ///     .immediately_at(tracing::Level::ERROR);
        /// ```
        fn immediately_at(level: Level) => policy.immediately_at = Some(level);
        /// See [`PolicyConfig::consecutive_runs`](crate::PolicyConfig::consecutive_runs).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .consecutive_runs(4)
        ///     .fingerprint_fields(["feed"]);
        /// ```
        fn consecutive_runs(runs: u64) => policy.consecutive_runs = Some(runs);
        /// See [`PolicyConfig::repeat_after`](crate::PolicyConfig::repeat_after).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .consecutive_runs(4)
        ///     .repeat_after(std::time::Duration::from_secs(24 * 3600));
        /// ```
        fn repeat_after(after: Duration) => policy.repeat_after = Some(after);
        /// See [`PolicyConfig::min_interval`](crate::PolicyConfig::min_interval).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .min_interval(std::time::Duration::from_secs(3600));
        /// ```
        fn min_interval(interval: Duration) => policy.min_interval = Some(interval);
        /// See [`PolicyConfig::max_age`](crate::PolicyConfig::max_age).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .threshold(5, tracing::Level::WARN)
        ///     .max_age(std::time::Duration::from_secs(7 * 24 * 3600));
        /// ```
        fn max_age(age: Duration) => policy.max_age = Some(age);
        /// See [`EmailConfig::max_detail_lines`](crate::EmailConfig::max_detail_lines).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_detail_lines(500);
        /// ```
        fn max_detail_lines(lines: usize) => max_detail_lines = lines;
        /// See [`EmailConfig::state_file`](crate::EmailConfig::state_file).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").state_file("/var/lib/poca/mail.json");
        /// ```
        fn state_file(path: impl Into<PathBuf>) => state_file = Some(path.into());
        /// See [`EmailConfig::lock_timeout`](crate::EmailConfig::lock_timeout).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .lock_timeout(std::time::Duration::from_secs(2));
        /// ```
        fn lock_timeout(timeout: Duration) => lock_timeout = timeout;
        /// See [`EmailConfig::max_pending`](crate::EmailConfig::max_pending).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_pending(50_000);
        /// ```
        fn max_pending(records: usize) => max_pending = records;
        /// See [`EmailConfig::max_record_bytes`](crate::EmailConfig::max_record_bytes).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_record_bytes(4096);
        /// ```
        fn max_record_bytes(bytes: usize) => max_record_bytes = bytes;
        /// See [`EmailConfig::max_email_bytes`](crate::EmailConfig::max_email_bytes).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_email_bytes(256 * 1024);
        /// ```
        fn max_email_bytes(bytes: usize) => max_email_bytes = bytes;
        /// See [`EmailConfig::send_deadline`](crate::EmailConfig::send_deadline).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .send_deadline(std::time::Duration::from_secs(10));
        /// ```
        fn send_deadline(deadline: Duration) => send_deadline = deadline;
        /// See [`EmailConfig::checkpoint_interval`](crate::EmailConfig::checkpoint_interval).
        ///
        /// ```
        /// use std::time::Duration;
        /// let b = tracing_email::EmailLayer::builder("poca").checkpoint_interval(Duration::from_secs(5));
        /// let off = tracing_email::EmailLayer::builder("poca").checkpoint_interval(None);
        /// ```
        fn checkpoint_interval(interval: impl Into<Option<Duration>>) => checkpoint_interval = interval.into();
        /// See [`EmailConfig::flush_every`](crate::EmailConfig::flush_every).
        ///
        /// ```
        /// use std::time::Duration;
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .flush_every(Duration::from_secs(300))
        ///     .consecutive_runs(3)
        ///     .notify_recovery(true);
        /// ```
        fn flush_every(period: Duration) => flush_every = Some(period);
        /// See [`EmailConfig::capture_panics`](crate::EmailConfig::capture_panics).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").capture_panics();
        /// ```
        fn capture_panics() => capture_panics = true;
        /// See [`EmailConfig::notify_recovery`](crate::EmailConfig::notify_recovery).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").notify_recovery(true);
        /// ```
        fn notify_recovery(on: bool) => notify_recovery = on;
    }

    /// Adds recipients: one address, or several separated by commas. Call it
    /// again to add more. At least one is required.
    ///
    /// ```
    /// let b = tracing_email::EmailLayer::builder("app")
    ///     .to("me@example.com")
    ///     .to("Ops <ops@example.com>, oncall@example.com");
    /// ```
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.config.to.push(to.into());
        self
    }

    /// Identifies a failure by the values of these fields (plus its
    /// callsite) instead of its message: for messages that carry changing
    /// details (`"timed out after 30.2 s"`). Each field is looked up in the
    /// event's own fields, then in the fields of the spans it happened in,
    /// innermost first, so `#[tracing::instrument] fn fetch(feed: &str)`
    /// tells its feeds apart. Records without any of the fields are
    /// identified by their message.
    ///
    /// ```
    /// #[tracing::instrument]
    /// fn fetch(feed: &str) {
    ///     // Fingerprinted by the span's `feed`: one failure per feed.
    ///     tracing::warn!(error = "timed out", "feed failed");
    /// }
    ///
    /// let b = tracing_email::EmailLayer::builder("poca").fingerprint_fields(["feed"]);
    /// # fetch("Radio Café");
    /// ```
    pub fn fingerprint_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.policy.fingerprint_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Reads time from `clock` instead of the system clock: record
    /// timestamps and every time-based rule. For tests and simulations.
    ///
    /// ```
    /// use tracing_email::clock::ManualClock;
    /// let clock = ManualClock::new(std::time::SystemTime::now());
    /// let b = tracing_email::EmailLayer::builder("poca").clock(clock.clone());
    /// clock.advance(std::time::Duration::from_secs(3600)); // the layer sees it
    /// ```
    pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Shows times in the digest in local time. The UTC offset is read once,
    /// here at build time; where it cannot be read (some Unix programs with
    /// several threads), times stay in UTC. The state file always holds UTC.
    ///
    /// ```
    /// let b = tracing_email::EmailLayer::builder("poca").local_time();
    /// ```
    pub fn local_time(mut self) -> Self {
        self.config.local_time = true;
        self.config.offset = None;
        self
    }

    /// Shows times in the digest at this fixed offset from UTC.
    ///
    /// ```
    /// let b = tracing_email::EmailLayer::builder("poca")
    ///     .utc_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    /// ```
    pub fn utc_offset(mut self, offset: UtcOffset) -> Self {
        self.config.local_time = false;
        self.config.offset = Some(offset);
        self
    }

    /// Sends every record pending in this builder's state file now, through
    /// its transport, whatever the policy says: the same digest a flush
    /// sends (split to stay within [`max_email_bytes`](Builder::max_email_bytes)),
    /// under the state file's lock. What the server accepted leaves the
    /// file and the time of the last email is set; nothing else changes.
    /// It is not a run of the program: the run count and the failures'
    /// streaks stay as they were, and the failures it sends are not marked
    /// as reported (the program's policy reports them when its rules say
    /// so). No layer, guard or thread is made.
    ///
    /// Returns [`Outcome::Sent`], [`Outcome::Nothing`] when nothing is
    /// pending, or [`Outcome::Failed`] when the transport failed: the
    /// records it did not accept stay pending, and the file is as it was
    /// (the program's `last_error` included). A file the load repaired (a
    /// corrupt one moved aside and what could be read of it, parked files
    /// merged) is stored before anything is sent, so a failed send loses
    /// none of it.
    ///
    /// # Errors
    ///
    /// What [`build`](Builder::build) refuses, and a state file that cannot
    /// be locked (another process holds it past the lock timeout) or read.
    ///
    /// ```
    /// use tracing::Level;
    /// use tracing_email::{EmailLayer, FileDrop, Outcome};
    /// use tracing_subscriber::prelude::*;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let builder = || {
    ///     EmailLayer::builder("poca")
    ///         .transport(FileDrop::new(dir.path().join("outbox")))
    ///         .state_file(dir.path().join("state.json"))
    ///         .from("robot@example.com")
    ///         .to("me@example.com")
    ///         .threshold(5, Level::WARN)
    /// };
    /// // A run holds one warning: the threshold wants five.
    /// let (layer, guard) = builder().build()?;
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     tracing::warn!("feed failed");
    /// });
    /// assert!(matches!(guard.flush(), Outcome::Held { pending: 1, .. }));
    ///
    /// // Sent by hand, whatever the threshold.
    /// let outcome = builder().send_pending()?;
    /// assert_eq!(outcome.to_string(), "sent 1 record in 1 email");
    /// assert!(builder().send_pending()?.to_string().starts_with("nothing to send"));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn send_pending(self) -> Result<Outcome, Error> {
        self.into_flusher()?.0.send_pending()
    }

    /// Sends one short test email through this builder's transport, from
    /// and to the builder's addresses, to check the mail settings (as
    /// Django's `sendtestemail` does), and returns what the receiving end
    /// answered ([`Transport::send_with_reply`]: an SMTP server's reply such
    /// as `250 2.0.0 Ok: queued as 4F2A1`; `None` when the transport says
    /// nothing). The state file is neither read nor written.
    ///
    /// # Errors
    ///
    /// What [`build`](Builder::build) refuses, and the transport's failure
    /// in words (`the server rejected the login (535, permanent): …`), of
    /// kind [`ErrorKind::Smtp`] or [`ErrorKind::Send`]. The send is given
    /// the [`send_deadline`](Builder::send_deadline).
    ///
    /// ```
    /// use tracing_email::{EmailLayer, FileDrop};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let reply = EmailLayer::builder("poca")
    ///     .transport(FileDrop::new(dir.path().join("outbox")))
    ///     .from("robot@example.com")
    ///     .to("me@example.com")
    ///     .send_test_email()?;
    /// assert!(reply.unwrap().starts_with("written to "));
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn send_test_email(self) -> Result<Option<String>, Error> {
        self.into_flusher()?.0.send_test_email()
    }

    /// Also sends by hand (`flush::by_hand`): no layer, guard or worker.
    pub(crate) fn into_flusher(mut self) -> Result<(Flusher, EmailConfig), Error> {
        self.config.check()?;
        let s = std::mem::take(&mut self.config);
        // Read once: every digest names the machine that sent it.
        let host = s
            .host
            .clone()
            .unwrap_or_else(crate::digest::subject::hostname);
        let alerts = self.checked_alerts(s.app.trim(), &host)?;
        // Alerts alone need no email addresses (given, they are checked).
        let alerts_only = alerts.is_some() && self.transport.is_none();
        let transport = self.checked_transport(&s, alerts_only)?;
        let composer = composer(&s, alerts_only, host.clone())?;
        let flusher = Flusher {
            store: StateStore::new(s.state_path()?, s.lock_timeout),
            composer,
            policy: s.policy.clone(),
            transport,
            alerts,
            max_pending: s.max_pending,
            max_email_bytes: s.max_email_bytes,
            send_deadline: s.send_deadline,
            sent_during_run: (0, 0),
            clock: self.clock,
            run: None,
            cache: Default::default(),
            notify_recovery: s.notify_recovery,
            outstanding: Default::default(),
            alerts_due: None,
            started: std::time::Instant::now(),
        };
        Ok((flusher, s))
    }

    fn checked_alerts(&mut self, app: &str, host: &str) -> Result<Option<Box<dyn Alerts>>, Error> {
        #[cfg(feature = "alertmanager")]
        if let Some(alertmanager) = self.alerts.take() {
            return Ok(Some(Box::new(alertmanager.check(app, host.to_owned())?)));
        }
        #[cfg(not(feature = "alertmanager"))]
        let _ = (app, host);
        Ok(None)
    }

    /// Its timeout within the send deadline; `None` only when alerts are the only destination.
    fn checked_transport(
        &mut self,
        s: &EmailConfig,
        alerts_only: bool,
    ) -> Result<Option<Arc<dyn Transport>>, Error> {
        let given = self.transport.take().map(|made| made(s.send_deadline));
        let Some(mut transport) = given else {
            return match (alerts_only, &s.origin) {
                (true, _) => Ok(None),
                (false, Origin::Code) => Err(Error::config(
                    "no transport: call .transport(Smtp::starttls(host)), \
                     .transport(FileDrop::new(dir)) or another Transport",
                )),
                (false, _) => Err(Error::config(format!(
                    "neither {} nor {} is set: one says where digests go (an SMTP server, or a \
                     folder for .eml files; or set {} alone to post alerts only)",
                    s.name("smtp_url"),
                    s.name("outbox"),
                    s.name("alertmanager_urls"),
                ))),
            };
        };
        transport.check().map_err(|e| match e.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::with_source(
                ErrorKind::Config,
                "the transport's settings are unusable",
                other,
            ),
        })?;
        Ok(Some(Arc::from(transport)))
    }

    /// Checks every setting and makes the layer and its guard. No network
    /// I/O, no file is read or written; a batch policy starts its worker
    /// thread.
    ///
    /// # Errors
    ///
    /// An error of kind [`ErrorKind::Config`] or [`ErrorKind::Smtp`] that
    /// names the bad setting: an empty or path-like app name (or one with
    /// control characters), a missing or malformed sender or recipient, no transport, a zero threshold or batch
    /// size, a subject with an unknown placeholder, an unusable SMTP setup
    /// (port 0, bad certificate, password over plain text).
    ///
    /// ```
    /// use tracing_email::{EmailLayer, FileDrop};
    ///
    /// let err = EmailLayer::builder("app")
    ///     .transport(FileDrop::new("outbox"))
    ///     .from("robot@example.com")
    ///     .to("me@@example.com")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("me@@example.com"));
    /// ```
    pub fn build(self) -> Result<(EmailLayer, FlushGuard), Error> {
        let clock = Arc::clone(&self.clock);
        let (flusher, s) = self.into_flusher()?;
        let shared = Arc::new(Shared {
            clock,
            buffer: Buffer::new(flusher.max_pending),
            max_record_bytes: s.max_record_bytes,
            batch: s.policy.batch,
            signal: Default::default(),
            guard_dropped: AtomicBool::new(false),
            guard_dropped_said: AtomicBool::new(false),
            span_edits: Default::default(),
        });
        let timing = Timing {
            checkpoint: s.checkpoint_interval,
            period: s.flush_every,
            // Alerts need it to post firing ones again before they expire.
            alerts: flusher.alerts.is_some(),
        };
        let path = flusher.store.path().to_owned();
        let flusher = Arc::new(Mutex::new(flusher));
        let needs_worker = s.policy.batch.is_some() || timing != Timing::default();
        // The background thread: batches, checkpoints, periods, alerts.
        let worker = needs_worker.then(|| {
            let (shared, flusher) = (Arc::clone(&shared), Arc::clone(&flusher));
            let why = "could not start the background thread";
            spawn_worker(shared, flusher, timing)
                .map_err(|e| Error::with_source(ErrorKind::Config, why, e))
        });
        let worker = worker.transpose()?;
        if s.capture_panics {
            crate::flush::panic::install(Arc::downgrade(&shared), Arc::downgrade(&flusher));
        }
        crate::flush::exit::register(&shared, &flusher, &path, s.lock_timeout);
        Ok((
            EmailLayer {
                shared: Arc::clone(&shared),
            },
            FlushGuard {
                shared,
                flusher,
                worker,
                flushed: AtomicBool::new(false),
            },
        ))
    }
}

fn composer(s: &EmailConfig, alerts_only: bool, host: String) -> Result<Composer, Error> {
    let (from, to) = if alerts_only && s.from.is_none() && s.to.is_empty() {
        let nobody = lettre::Address::new("alerts-only", "localhost")
            .map_err(|e| Error::with_source(ErrorKind::Config, "no address", e))?;
        let nobody = lettre::message::Mailbox::new(None, nobody);
        (nobody.clone(), vec![nobody])
    } else {
        s.addresses()?
    };
    let subject = s.subject.as_deref().map(Template::parse).transpose();
    let subject = subject.map_err(|e| s.bad("subject", e.to_string()))?;
    let offset = match (s.offset, s.local_time) {
        (Some(fixed), _) => fixed,
        (None, true) => UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC),
        (None, false) => UtcOffset::UTC,
    };
    let state_path = s.state_path()?;
    Ok(Composer {
        app: s.app.trim().to_owned(),
        from,
        to,
        subject,
        host,
        html: s.html,
        offset,
        // The footer says where records wait, wherever the reader is.
        state_path: std::path::absolute(&state_path).unwrap_or(state_path),
        fingerprint_fields: s.policy.fingerprint_fields.clone(),
        level: s.policy.level(),
        detail_lines: s.max_detail_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileDrop;

    fn ok() -> Builder {
        EmailLayer::builder("app")
            .transport(FileDrop::new("/nonexistent/outbox"))
            .state_file("/nonexistent/state.json")
            .from("robot@example.com")
            .to("me@example.com")
    }

    fn err(b: Builder) -> String {
        b.build().expect_err("build should fail").to_string()
    }

    #[test]
    fn a_complete_setup_builds_without_touching_the_disk() {
        let (_layer, guard) = ok().build().unwrap();
        assert!(!std::path::Path::new("/nonexistent").exists());
        std::mem::forget(guard); // dropping would flush into /nonexistent
    }

    /// The worker of a layer with alerts looks, a second after the start,
    /// for alerts an earlier process left firing: without a state file it
    /// creates nothing (no folder, no lock file).
    #[cfg(feature = "alertmanager")]
    #[test]
    fn the_first_look_for_firing_alerts_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("app");
        let (_layer, guard) = ok()
            .state_file(folder.join("state.json"))
            .alerts(crate::Alertmanager::new(["http://127.0.0.1:9"]))
            .build()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        assert!(!folder.exists());
        drop(guard);
    }

    /// Issue 19, case 11: `po\nca` and `poca` named the same state file.
    #[test]
    fn an_app_name_with_control_characters_is_refused_at_build() {
        for (app, shown) in [
            ("po\nca", r#""po\nca""#),
            ("po\0ca", r#""po\0ca""#),
            ("po\tca", r#""po\tca""#),
            ("poca\u{7f}", r#""poca\u{7f}""#),
        ] {
            let b = EmailLayer::builder(app)
                .transport(FileDrop::new("o"))
                .from("a@b.c")
                .to("a@b.c");
            assert_eq!(
                err(b),
                format!(
                    "the app name {shown} holds control characters, which a file name cannot \
                     keep apart; use a plain name like \"poca\""
                )
            );
            let e = crate::inspect::StateFile::for_app(app)
                .unwrap_err()
                .to_string();
            assert!(e.contains("control characters"), "{e}");
        }
        assert!(crate::inspect::StateFile::for_app("poca").is_ok());
    }

    #[test]
    fn every_bad_setting_is_named_at_build() {
        assert!(err(ok().from("robot@")).contains("\"robot@\""));
        assert!(err(ok().to("a@b.c, not an address")).contains("not an address"));
        assert_eq!(err(ok().to("")), r#"to: "" holds no address"#);
        assert!(
            err(EmailLayer::builder("app")
                .transport(FileDrop::new("o"))
                .to("a@b.c"))
            .starts_with("from is not set; the sender is required")
        );
        assert!(
            err(EmailLayer::builder("app")
                .transport(FileDrop::new("o"))
                .from("a@b.c"))
            .starts_with("to is not set; at least one recipient is required")
        );
        assert!(err(EmailLayer::builder("app").from("a@b.c").to("a@b.c")).contains("no transport"));
        assert!(err(ok().threshold(0, Level::WARN)).starts_with("threshold: 0 is not allowed"));
        assert_eq!(err(ok().batch(0)), "batch: 0 is not allowed; use 1 or more");
        assert_eq!(
            err(ok().fingerprint_fields(["feed", " "])),
            r#"fingerprint_fields: " " is not a field name"#
        );
        for app in ["", " ", "a/b", "..", "c:\\x"] {
            let b = EmailLayer::builder(app)
                .transport(FileDrop::new("o"))
                .from("a@b.c")
                .to("a@b.c");
            assert!(err(b).contains("app name"), "{app:?}");
        }
        assert!(err(ok().state_file("/")).contains("no file name"));
        #[cfg(feature = "smtp")]
        assert!(err(ok().transport(crate::Smtp::tls("h").port(0))).contains("port is 0"));
        assert!(err(ok().max_pending(0)).contains("max_pending"));
        assert!(err(ok().send_deadline(Duration::ZERO)).contains("send_deadline"));
        assert!(err(ok().checkpoint_interval(Duration::ZERO)).contains("checkpoint_interval"));
        assert_eq!(
            err(ok().flush_every(Duration::from_millis(500))),
            "flush_every: 0.5 seconds is shorter than the least allowed, 1 second (each period \
             is a run, counted in the state file); give 1 second or more"
        );
        assert!(err(ok().flush_every(Duration::ZERO)).contains("flush_every"));
    }

    #[test]
    fn each_duration_is_refused_beyond_its_bound_naming_both() {
        type Set = fn(Builder, Duration) -> Builder;
        let settings: [(&str, Duration, Set); 7] = [
            ("send_deadline", DAY, |b, d| b.send_deadline(d)),
            ("lock_timeout", DAY, |b, d| b.lock_timeout(d)),
            ("checkpoint_interval", DAY, |b, d| b.checkpoint_interval(d)),
            ("flush_every", DAY, |b, d| b.flush_every(d)),
            ("repeat_after", TEN_YEARS, |b, d| b.repeat_after(d)),
            ("min_interval", TEN_YEARS, |b, d| b.min_interval(d)),
            ("max_age", TEN_YEARS, |b, d| b.max_age(d)),
        ];
        assert_eq!(DAY, Duration::from_secs(86_400));
        assert_eq!(TEN_YEARS, Duration::from_secs(315_360_000));
        for (key, max, set) in settings {
            let (_layer, guard) = set(ok(), max).build().unwrap();
            std::mem::forget(guard); // dropping would flush into /nonexistent
            for beyond in [
                max + Duration::from_nanos(1),
                max + Duration::from_secs(1),
                Duration::from_secs(u64::MAX),
                Duration::MAX,
            ] {
                let e = set(ok(), beyond).build().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Config);
                let text = e.to_string();
                assert!(text.starts_with(&format!("{key}: ")), "{text}");
                let days = max.as_secs() / 86_400;
                assert!(
                    text.contains(&format!(
                        "the most allowed, {} seconds ({days} day",
                        max.as_secs()
                    )),
                    "{text}"
                );
            }
        }
        assert_eq!(
            err(ok().send_deadline(DAY + Duration::from_secs(1))),
            "send_deadline: 86401 seconds is longer than the most allowed, 86400 seconds \
             (1 day); give at most that"
        );
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn an_smtp_timeout_beyond_a_day_is_refused() {
        let smtp = |d| ok().transport(crate::Smtp::tls("smtp.example.com").timeout(d));
        let (_layer, guard) = smtp(DAY).build().unwrap();
        std::mem::forget(guard);
        for d in [DAY + Duration::from_millis(1), Duration::MAX] {
            let e = smtp(d).build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Smtp);
            assert!(
                e.to_string().starts_with("the SMTP timeout: ")
                    && e.to_string().contains("86400 seconds (1 day)"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_subject_with_an_unknown_placeholder_is_a_build_error() {
        let e = ok().subject("[{app}] {hostname}").build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        assert!(text.contains("unknown placeholder {hostname}"), "{text}");
        assert!(text.contains("{host}"), "{text}");
        assert!(err(ok().subject("[{app")).contains("not closed"));
    }

    #[test]
    fn several_recipients_in_one_or_several_calls() {
        let (_layer, guard) = ok()
            .to("Ops <ops@example.com>, x@example.org")
            .build()
            .unwrap();
        assert_eq!(lock_composer_to(&guard), 3);
        std::mem::forget(guard);
    }

    fn lock_composer_to(guard: &FlushGuard) -> usize {
        crate::sync::lock(&guard.flusher).composer.to.len()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (layer, guard) = ok().build().unwrap();
        {
            let flusher = crate::sync::lock(&guard.flusher);
            assert_eq!(flusher.policy.threshold, Some((1, Level::WARN)));
            assert_eq!(flusher.send_deadline, Duration::from_secs(30));
            assert_eq!(flusher.max_pending, 10_000);
            assert_eq!(flusher.max_email_bytes, 1024 * 1024);
            assert!(flusher.composer.html, "HTML is on by default");
        }
        assert_eq!(layer.shared.max_record_bytes, 16 * 1024);
        // The checkpoint thread runs by default.
        assert!(guard.worker.is_some());
        std::mem::forget(guard);
    }

    #[test]
    fn default_state_file_is_under_the_app_folder() {
        let b = EmailLayer::builder("poca-test-app");
        let path = b.config.state_path().unwrap();
        assert!(
            path.ends_with(format!(
                "poca-test-app/{}",
                crate::store::file::STATE_FILE_NAME
            )),
            "{}",
            path.display()
        );
    }
}
