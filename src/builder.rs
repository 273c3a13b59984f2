//! Configuring the layer: every setting is checked by [`Builder::build`], so
//! a mistake shows up when the program starts, not when it exits.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::UtcOffset;
use tracing::Level;

use crate::capture::buffer::Buffer;
use crate::capture::layer::{EmailLayer, Shared, Signal};
use crate::digest::Composer;
use crate::digest::subject::Template;
use crate::error::{Error, ErrorKind};
use crate::flush::Flusher;
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
    clock: Arc<dyn crate::Clock>,
}

/// The transport given: an [`Smtp`](crate::Smtp) is kept as one until
/// `build()` fits its timeout within the send deadline.
enum Given {
    #[cfg(feature = "smtp")]
    Smtp(Box<crate::Smtp>),
    Other(Box<dyn Transport>),
}

impl Given {
    /// The transport to use, a send of which cannot outlive `deadline` by
    /// waiting on its socket (see `Smtp::within`).
    #[cfg_attr(not(feature = "smtp"), allow(unused_variables))]
    fn within(self, deadline: Duration) -> Box<dyn Transport> {
        match self {
            #[cfg(feature = "smtp")]
            Given::Smtp(smtp) => Box::new(smtp.within(deadline)),
            Given::Other(transport) => transport,
        }
    }
}

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
            clock: Arc::new(crate::SystemClock),
        }
    }
}

/// The builder methods that set one key of the [`EmailConfig`] they write
/// into, each named as its key: `fn key(args) => field = value;`.
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
    /// [`Sendmail`](crate::Sendmail) or a [`Transport`] of your own. Required.
    ///
    /// ```
    /// let b = tracing_email::EmailLayer::builder("app")
    ///     .transport(tracing_email::Smtp::tls("smtp.example.com"));
    /// ```
    pub fn transport(mut self, transport: impl Transport) -> Self {
        #[cfg_attr(not(feature = "smtp"), allow(unused_mut))]
        let mut given = Some(transport);
        #[cfg(feature = "smtp")]
        if let Some(smtp) = (&mut given as &mut dyn std::any::Any)
            .downcast_mut::<Option<crate::Smtp>>()
            .and_then(Option::take)
        {
            self.transport = Some(Given::Smtp(Box::new(smtp)));
            return self;
        }
        self.transport = given.map(|t| Given::Other(Box::new(t)));
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
        /// This machine's name, as Alertmanager's `instance` label, in each
        /// digest's first lines and as the subject's `{host}`: by default the system's host name, read once by
        /// `build()`. For several instances on one machine, or a name that
        /// means more than the host name.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").host("backup-eu-3");
        /// ```
        fn host(name: impl Into<String>) => host = Some(name.into());
        /// The sender, e.g. `"poca <me@example.com>"`. Required.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("app").from("App <robot@example.com>");
        /// ```
        fn from(from: impl Into<String>) => from = Some(from.into());
        /// The subject line, as a template filled in for each email. Without
        /// it, the subject names the app, counts the errors and warnings (leaving
        /// out a count that is zero, or counting the log records when there is
        /// neither) and gives the oldest record's time:
        /// `[poca] 3 errors, 4 warnings since 2026-11-20 08:00`.
        ///
        /// | placeholder   | becomes                                                    |
        /// |---------------|------------------------------------------------------------|
        /// | `{app}`       | the app name given to [`EmailLayer::builder`]              |
        /// | `{host}`      | this machine's name, read once by `build()` (`localhost` if it cannot be read) |
        /// | `{count}`     | the number of records in this email                        |
        /// | `{errors}`    | how many of them are ERROR                                 |
        /// | `{warnings}`  | how many of them are WARN                                  |
        /// | `{max_level}` | the most severe level among them, e.g. `ERROR`             |
        /// | `{first}`     | the oldest record's time, `2026-11-20 08:00`, at the digest's offset ([`local_time`](Builder::local_time), [`utc_offset`](Builder::utc_offset)) |
        /// | `{last}`      | the newest record's time, likewise                         |
        ///
        /// `{{` and `}}` are literal braces (a `}` on its own is kept too); a
        /// subject without placeholders is used as it is. An unknown placeholder
        /// or a `{` that is not closed makes [`build`](Builder::build) fail with
        /// [`ErrorKind::Config`], naming it. The template is parsed once, by
        /// `build`. When a digest is split to stay under
        /// [`max_email_bytes`](Builder::max_email_bytes), ` (part 2 of 3)` is
        /// added to the subject.
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
        /// Whether each email carries an HTML version of the digest besides the
        /// plain text (on by default): `multipart/alternative` text and HTML
        /// parts, and the text attached as `<app>-log.txt`. The HTML part leads
        /// with what failed, where and since when, shows each failure with its
        /// newest record and a few of context and counts the rest (all in the
        /// attached log); levels said in words, everything from the records
        /// escaped, inline styles only (no scripts, nothing loaded from
        /// elsewhere), readable at 320 px and in both colour schemes. The
        /// plain-text part is always there; `html(false)` sends it alone.
        ///
        /// ```
        /// let text_only = tracing_email::EmailLayer::builder("poca").html(false);
        /// ```
        fn html(html: bool) => html = html;
        /// At flush, send every pending record (oldest first, in one digest) once
        /// at least `count` of them are at `level` or above; otherwise keep them
        /// for a later run. This is the default, with `(1, WARN)`.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").threshold(5, tracing::Level::WARN);
        /// ```
        fn threshold(count: usize, level: Level) => policy.threshold = Some((count, level));
        /// Send an email of `size` records each time that many are pending,
        /// during the run (from a background thread, never the event path), and
        /// what is left at flush (unless a [`threshold`](Builder::threshold) is
        /// also set: then the remainder waits for it). 102 records with
        /// `batch(10)` make 11 emails.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("cookbook").batch(10);
        /// ```
        fn batch(size: usize) => policy.batch = Some(size);
        /// At flush, send everything pending as soon as one record at `level` or
        /// above is pending, whatever the count.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .threshold(5, tracing::Level::WARN)
        ///     .immediately_at(tracing::Level::ERROR);
        /// ```
        fn immediately_at(level: Level) => policy.immediately_at = Some(level);
        /// At flush, send everything pending once one failure (one
        /// fingerprint, see [`fingerprint_fields`](Builder::fingerprint_fields))
        /// at the policy's level (the threshold's, else WARN) was seen in each of
        /// the last `runs` runs. A run without it starts its count again. This is
        /// "the feed consistently fails", where a count threshold only
        /// approximates it: one-off blips of many feeds never add up.
        ///
        /// A failure is reported once per streak: after a digest went out while
        /// it had lasted `runs` runs, it triggers no email until a run without it
        /// ends the streak; its later records wait and ride along in the next
        /// digest that goes out. [`repeat_after`](Builder::repeat_after) adds
        /// reminders while it lasts.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .consecutive_runs(4)
        ///     .fingerprint_fields(["feed"]);
        /// ```
        fn consecutive_runs(runs: u64) => policy.consecutive_runs = Some(runs);
        /// Once a failure was reported (sent in a digest), it does not trigger
        /// another email until `after` has passed, however often it recurs: a
        /// daily reminder with `Duration::from_secs(24 * 3600)`. With
        /// `consecutive_runs`, these reminders are the only repeat emails of a
        /// streak. Its records still
        /// ride along in any digest sent for another reason, and a failure that
        /// stops and comes back later is new again. At most 3650 days (about
        /// ten years); [`build`](Builder::build) refuses a longer one.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .consecutive_runs(4)
        ///     .repeat_after(std::time::Duration::from_secs(24 * 3600));
        /// ```
        fn repeat_after(after: Duration) => policy.repeat_after = Some(after);
        /// No two emails closer than `interval`: when a rule is met sooner, the
        /// records wait ([`Outcome::Waiting`](crate::Outcome::Waiting)) and a
        /// later flush sends them. At most 3650 days (about ten years);
        /// [`build`](Builder::build) refuses a longer one.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .min_interval(std::time::Duration::from_secs(3600));
        /// ```
        fn min_interval(interval: Duration) => policy.min_interval = Some(interval);
        /// At flush, send everything pending once a record at the policy's level
        /// has been pending for `age`: a slow trickle is reported eventually.
        /// At most 3650 days (about ten years); [`build`](Builder::build)
        /// refuses a longer one.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .threshold(5, tracing::Level::WARN)
        ///     .max_age(std::time::Duration::from_secs(7 * 24 * 3600));
        /// ```
        fn max_age(age: Duration) => policy.max_age = Some(age);
        /// Lists at most this many records one by one in a digest, 200 by
        /// default: the newest, after a summary that counts every record by kind
        /// of failure ("and 1 312 more (earlier) are only counted above").
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_detail_lines(500);
        /// ```
        fn max_detail_lines(lines: usize) => max_detail_lines = lines;
        /// Keeps the pending records in this file instead of the default
        /// (`tracing-email.json` in the app's folder under
        /// `directories::ProjectDirs::state_dir()`, else `data_local_dir()`).
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").state_file("/var/lib/poca/mail.json");
        /// ```
        fn state_file(path: impl Into<PathBuf>) => state_file = Some(path.into());
        /// How long a flush waits for another process to release the state file
        /// (10 seconds by default). Past it, the flush fails and keeps its records.
        /// At most a day; [`build`](Builder::build) refuses a longer one.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .lock_timeout(std::time::Duration::from_secs(2));
        /// ```
        fn lock_timeout(timeout: Duration) => lock_timeout = timeout;
        /// Keeps at most this many records pending (10 000 by default). Beyond
        /// it the oldest are dropped first; how many is kept in the state file
        /// and said in the next digest ("412 older records were dropped"). The
        /// same bound holds for the records in memory between flushes.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_pending(50_000);
        /// ```
        fn max_pending(records: usize) => max_pending = records;
        /// Keeps at most this many bytes of one record, 16 KiB by default:
        /// message, field names and values and span context together, escapes
        /// counted as written (stored or shown, a record takes at most 512 bytes
        /// more, besides its target, module path and file name). A value that
        /// does not fit is cut with a visible `…[cut: N bytes in all]`; fields
        /// beyond the bound are left out and counted in a last field
        /// `fields_left_out`, spans in a last span `…[N more spans left out]`.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_record_bytes(4096);
        /// ```
        fn max_record_bytes(bytes: usize) => max_record_bytes = bytes;
        /// Keeps each email under about this many bytes, 1 MiB by default: a
        /// larger digest is split into several complete emails, numbered "part 2
        /// of 3", so no server's size limit can make the backlog undeliverable.
        ///
        /// What is counted is the records' text lines, once in the plain-text
        /// part and, unless [`html(false)`](Builder::html), once more in the
        /// attached log (the HTML part shows a bounded few records whatever
        /// the digest's size). Not counted: the headers, the few KiB of summary,
        /// HTML and footer each email has, and the transfer encoding, which adds
        /// up to a third (quoted-printable or base64, chosen by lettre). A record
        /// larger than the limit goes alone in its email.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").max_email_bytes(256 * 1024);
        /// ```
        fn max_email_bytes(bytes: usize) => max_email_bytes = bytes;
        /// The longest one flush spends sending, 30 seconds by default, however
        /// slowly the server answers (the SMTP timeout applies to each read, not
        /// to the whole exchange). Past it the flush fails and keeps the records.
        /// At most a day; [`build`](Builder::build) refuses a longer one. An
        /// [`Smtp`](crate::Smtp) timeout longer than it is cut to it, and while a
        /// send abandoned at the deadline still runs, the next flush waits for
        /// it (within its own deadline) or leaves its records for a later one.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .send_deadline(std::time::Duration::from_secs(10));
        /// ```
        fn send_deadline(deadline: Duration) => send_deadline = deadline;
        /// How long new records may wait in memory before a background thread
        /// appends them to the state file: 1 second by default, `None` to turn
        /// it off. A run that ends without dropping the guard (an abort,
        /// SIGKILL) loses at most the records of its last interval; at
        /// `std::process::exit` an exit hook (on Unix) stores the rest.
        /// At most a day; [`build`](Builder::build) refuses a longer one.
        ///
        /// ```
        /// use std::time::Duration;
        /// let b = tracing_email::EmailLayer::builder("poca").checkpoint_interval(Duration::from_secs(5));
        /// let off = tracing_email::EmailLayer::builder("poca").checkpoint_interval(None);
        /// ```
        fn checkpoint_interval(interval: impl Into<Option<Duration>>) => checkpoint_interval = interval.into();
        /// Makes each period of a long-running program a run: every `period`,
        /// the background thread flushes as the guard's drop does at the end of
        /// a cron job's process, and that flush ends the run. Off by default
        /// (a run is then the process, from start to the guard's drop); config
        /// key `flush_every`, environment variable `PREFIX_FLUSH_EVERY`.
        ///
        /// For a service (a tokio server, a worker, a daemon), each period's
        /// flush is what a cron job's exit is:
        /// - streaks count periods: `consecutive_runs(3)` with `flush_every(5
        ///   min)` reports a failure seen in three periods in a row;
        /// - a failure reported and not seen in a whole period is over:
        ///   [`notify_recovery`](Builder::notify_recovery) says so, and its
        ///   Alertmanager alert is resolved;
        /// - the digest goes out when the policy says so, under `min_interval`
        ///   and `repeat_after` as always;
        /// - a firing alert is posted again at each period (and, from the same
        ///   thread, at least every third of its
        ///   [`resolve_window`](crate::Alertmanager::resolve_window) between
        ///   them), so Alertmanager never resolves it while it lasts.
        ///
        /// Periods are counted from `build()`, on the monotonic clock; a
        /// period's flush that takes longer than the period (a slow mail
        /// server, up to [`send_deadline`](Builder::send_deadline)) skips the
        /// ticks it overran instead of running flushes back to back. The
        /// guard's drop still flushes once and ends the last period: drop it
        /// where blocking is allowed (after a tokio runtime, or in
        /// `spawn_blocking`). Checkpoints ([`checkpoint_interval`](Builder::checkpoint_interval))
        /// go on between periods; a flush by hand (`guard.flush()`) does not
        /// end the period. At least 1 second and at most a day;
        /// [`build`](Builder::build) refuses others.
        ///
        /// ```
        /// use std::time::Duration;
        /// let b = tracing_email::EmailLayer::builder("poca")
        ///     .flush_every(Duration::from_secs(300))
        ///     .consecutive_runs(3)
        ///     .notify_recovery(true);
        /// ```
        fn flush_every(period: Duration) => flush_every = Some(period);
        /// Turns a panic into an ERROR record (its message, thread and location),
        /// written to the state file at once, before the previous panic hook
        /// runs. With unwinding, the guard's flush still runs during the unwind
        /// and can send it; with `panic = "abort"` the next run finds it.
        ///
        /// ```
        /// let b = tracing_email::EmailLayer::builder("poca").capture_panics();
        /// ```
        fn capture_panics() => capture_panics = true;
        /// Says when a failure is over: once a failure that went out in a digest
        /// is not seen by a run (by the time of the guard's flush, its
        /// `flush()` or its drop, or of the end of a
        /// [`flush_every`](Builder::flush_every) period), the next email says so, in a "Resolved"
        /// section of a digest that goes out anyway, or else in a short email of
        /// its own, `[poca] resolved: feed "Radio Café" OK again after failing 9
        /// runs` (several at once: one email). `min_interval` applies to it as to
        /// any email; one that cannot go yet (too soon, or the mail server down)
        /// is kept in the state file and sent by a later flush, once. A run that
        /// does not reach the guard's flush (killed, `process::exit`) ends no
        /// failure. Off by default; config key `notify_recovery`, environment
        /// variable `PREFIX_NOTIFY_RECOVERY`.
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
    /// use tracing_email::ManualClock;
    /// let clock = ManualClock::new(std::time::SystemTime::now());
    /// let b = tracing_email::EmailLayer::builder("poca").clock(clock.clone());
    /// clock.advance(std::time::Duration::from_secs(3600)); // the layer sees it
    /// ```
    pub fn clock(mut self, clock: impl crate::Clock) -> Self {
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

    /// Checks every setting and makes the flusher, without a layer, a
    /// guard or a worker: for [`build`](Builder::build), and for sending
    /// by hand (`flush::by_hand`). Returns the settings for the rest.
    pub(crate) fn into_flusher(mut self) -> Result<(Flusher, EmailConfig), Error> {
        self.config.check()?;
        // Alerts alone need no email addresses (given, they are checked).
        let alerts_only = self.has_alerts() && self.transport.is_none();
        let s = std::mem::take(&mut self.config);
        // Read once: every digest names the machine that sent it.
        let host = s
            .host
            .clone()
            .unwrap_or_else(crate::digest::subject::hostname);
        let composer = composer(&s, alerts_only, host.clone())?;
        let transport = self.checked_transport(alerts_only, s.send_deadline)?;
        #[cfg(feature = "alertmanager")]
        let alerts = match self.alerts.take() {
            Some(a) => Some(a.check(s.app.trim(), host.clone())?),
            None => None,
        };
        let flusher = Flusher {
            store: StateStore::new(s.state_path()?, s.lock_timeout),
            composer,
            policy: s.policy.clone(),
            transport,
            #[cfg(feature = "alertmanager")]
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
            #[cfg(feature = "alertmanager")]
            started: std::time::Instant::now(),
        };
        Ok((flusher, s))
    }

    /// Whether alerts are a destination.
    fn has_alerts(&self) -> bool {
        #[cfg(feature = "alertmanager")]
        return self.alerts.is_some();
        #[cfg(not(feature = "alertmanager"))]
        false
    }

    /// The transport, its settings checked, its timeout within the send
    /// deadline; none only when alerts are the only destination.
    fn checked_transport(
        &mut self,
        alerts_only: bool,
        deadline: Duration,
    ) -> Result<Option<Arc<dyn Transport>>, Error> {
        let Some(mut transport) = self.transport.take().map(|t| t.within(deadline)) else {
            return match alerts_only {
                true => Ok(None),
                false => Err(Error::config(
                    "no transport: call .transport(Smtp::starttls(host)), \
                     .transport(FileDrop::new(dir)) or another Transport",
                )),
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
        let (clock, alerts) = (Arc::clone(&self.clock), self.has_alerts());
        let (flusher, s) = self.into_flusher()?;
        let max_pending = flusher.max_pending;
        let signal = Arc::new(Signal::default());
        let shared = Arc::new(Shared {
            clock,
            buffer: Buffer::new(max_pending),
            max_record_bytes: s.max_record_bytes,
            batch: s.policy.batch.map(|size| (size, Arc::clone(&signal))),
            guard_dropped: AtomicBool::new(false),
            guard_dropped_said: AtomicBool::new(false),
            span_edits: Default::default(),
        });
        let timing = Timing {
            checkpoint: s.checkpoint_interval,
            period: s.flush_every,
            // Alerts need it to post firing ones again before they expire.
            alerts,
        };
        let path = flusher.store.path().to_owned();
        let flusher = Arc::new(Mutex::new(flusher));
        let needs_worker = s.policy.batch.is_some() || timing != Timing::default();
        let worker = match needs_worker {
            true => Some(worker(&shared, &flusher, signal, timing)?),
            false => None,
        };
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

/// The background thread: batches, checkpoints, periods, alerts.
fn worker(
    shared: &Arc<Shared>,
    flusher: &Arc<Mutex<Flusher>>,
    signal: Arc<Signal>,
    timing: Timing,
) -> Result<(Arc<Signal>, std::thread::JoinHandle<()>), Error> {
    let (shared, flusher) = (Arc::clone(shared), Arc::clone(flusher));
    let handle = spawn_worker(shared, flusher, Arc::clone(&signal), timing).map_err(|e| {
        Error::with_source(
            ErrorKind::Config,
            "could not start the background thread",
            e,
        )
    })?;
    Ok((signal, handle))
}

/// The digest's settings: the addresses (none needed by alerts alone),
/// the subject's template, the times' offset, the limits.
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
            let e = crate::StateFile::for_app(app).unwrap_err().to_string();
            assert!(e.contains("control characters"), "{e}");
        }
        assert!(crate::StateFile::for_app("poca").is_ok());
    }

    #[test]
    fn every_bad_setting_is_named_at_build() {
        assert!(err(ok().from("robot@")).contains("\"robot@\""));
        assert!(err(ok().to("a@b.c, not an address")).contains("not an address"));
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
            ("send_deadline", MAX_SEND_DEADLINE, |b, d| {
                b.send_deadline(d)
            }),
            ("lock_timeout", MAX_LOCK_TIMEOUT, |b, d| b.lock_timeout(d)),
            ("checkpoint_interval", MAX_CHECKPOINT_INTERVAL, |b, d| {
                b.checkpoint_interval(d)
            }),
            ("flush_every", MAX_FLUSH_EVERY, |b, d| b.flush_every(d)),
            ("repeat_after", MAX_REPEAT_AFTER, |b, d| b.repeat_after(d)),
            ("min_interval", MAX_MIN_INTERVAL, |b, d| b.min_interval(d)),
            ("max_age", MAX_MAX_AGE, |b, d| b.max_age(d)),
        ];
        assert_eq!(MAX_SEND_DEADLINE, Duration::from_secs(86_400));
        assert_eq!(MAX_REPEAT_AFTER, Duration::from_secs(315_360_000));
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
            err(ok().send_deadline(MAX_SEND_DEADLINE + Duration::from_secs(1))),
            "send_deadline: 86401 seconds is longer than the most allowed, 86400 seconds \
             (1 day); give at most that"
        );
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn an_smtp_timeout_beyond_a_day_is_refused() {
        let smtp = |d| ok().transport(crate::Smtp::tls("smtp.example.com").timeout(d));
        let (_layer, guard) = smtp(MAX_SMTP_TIMEOUT).build().unwrap();
        std::mem::forget(guard);
        for d in [MAX_SMTP_TIMEOUT + Duration::from_millis(1), Duration::MAX] {
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
            path.ends_with(format!("poca-test-app/{}", crate::STATE_FILE_NAME)),
            "{}",
            path.display()
        );
    }
}
