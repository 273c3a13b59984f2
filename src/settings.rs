//! Every setting once: [`EmailConfig`] and its `policy` table,
//! [`PolicyConfig`], each key a field with its documentation and its default
//! (`impl Default`), read by serde (the [`with`] readers, errors naming the
//! key through [`keyed`]). The [`Builder`](crate::Builder) writes into an
//! `EmailConfig` too, and [`EmailConfig::check`] checks every setting once,
//! whether it came from code, a file or the environment.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes};
use serde::{Deserialize, Deserializer, de};
use tracing::Level;

use crate::error::{Error, ErrorKind};

pub(crate) mod keyed;
pub(crate) mod with;

// The longest value each duration setting accepts. A longer one is a mistake
// (a unit mixed up, milliseconds given as seconds) that would hold a flush or
// silence email for longer than anyone means, or overflow the arithmetic.
/// Longest SMTP or Alertmanager timeout, `send_deadline`, `lock_timeout`,
/// `checkpoint_interval` and `flush_every`.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);
/// Longest `repeat_after`, `min_interval` and `max_age`: 3650 days.
pub(crate) const TEN_YEARS: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Shortest `flush_every`: each period is a run, counted in the state file,
/// and a shorter one would keep the state file and the mail server busy.
pub(crate) const MIN_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest `resolve_window`: 30 days.
#[cfg(feature = "alertmanager")]
pub(crate) const MAX_RESOLVE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

pub(crate) fn days(max: Duration) -> String {
    crate::say::plural(max.as_secs() / DAY.as_secs(), "day", "days")
}

pub(crate) fn at_most(key: &str, value: Duration, max: Duration) -> Result<(), String> {
    if value <= max {
        return Ok(());
    }
    Err(format!(
        "{key}: {} seconds is longer than the most allowed, {} seconds ({}); give at most \
         that",
        value.as_secs_f64(),
        max.as_secs(),
        days(max)
    ))
}

/// When to send: the `policy` table of an [`EmailConfig`], and the
/// policy the layer runs. Each field is documented here; the
/// [`Builder`](crate::Builder) method of the same name sets it in code. Any
/// rule that is met sends. With
/// none of `threshold`, `batch`, `immediately_at`, `consecutive_runs` and
/// `max_age`, the policy is `threshold = { count = 1, level = "warn" }`.
///
/// ```
/// use tracing::Level;
/// use tracing_email::PolicyConfig;
///
/// let policy: PolicyConfig = toml::from_str(r#"
///     threshold = { count = 5, level = "WARN" }
///     fingerprint_fields = "feed"
/// "#)?;
/// assert_eq!(policy.threshold, Some((5, Level::WARN)));
/// assert_eq!(policy.fingerprint_fields, ["feed"]);
///
/// let err = toml::from_str::<PolicyConfig>(r#"immediately_at = "loud""#).unwrap_err();
/// assert!(err.to_string().contains("policy.immediately_at"));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
#[serde(expecting = "a table of policy settings (threshold, batch, immediately_at, …)")]
#[non_exhaustive]
pub struct PolicyConfig {
    /// At flush, send every pending record (oldest first, in one digest) once
    /// at least `count` of them are at `level` or above; otherwise keep them
    /// for a later run. This is the default, with `(1, WARN)`.
    ///
    /// In a file: `threshold = { count = 5, level = "warn" }`; in code: [`Builder::threshold`](crate::Builder::threshold).
    #[serde(deserialize_with = "with::threshold")]
    pub threshold: Option<(usize, Level)>,
    /// Send an email of `size` records each time that many are pending,
    /// during the run (from a background thread, never the event path), and
    /// what is left at flush (unless a [`threshold`](crate::Builder::threshold) is
    /// also set: then the remainder waits for it). 102 records with
    /// `batch(10)` make 11 emails.
    ///
    /// In a file: `batch = 10`; in code: [`Builder::batch`](crate::Builder::batch).
    #[serde(deserialize_with = "with::whole")]
    pub batch: Option<usize>,
    /// At flush, send everything pending as soon as one record at `level` or
    /// above is pending, whatever the count.
    ///
    /// In a file: `immediately_at = "error"`; in code: [`Builder::immediately_at`](crate::Builder::immediately_at).
    #[serde(deserialize_with = "with::level")]
    pub immediately_at: Option<Level>,
    /// At flush, send everything pending once one failure (one
    /// fingerprint, see [`fingerprint_fields`](crate::Builder::fingerprint_fields))
    /// at the policy's level (the threshold's, else WARN) was seen in each of
    /// the last `runs` runs. A run without it starts its count again. This is
    /// "the feed consistently fails", where a count threshold only
    /// approximates it: one-off blips of many feeds never add up.
    ///
    /// A failure is reported once per streak: after a digest went out while
    /// it had lasted `runs` runs, it triggers no email until a run without it
    /// ends the streak; its later records wait and ride along in the next
    /// digest that goes out. [`repeat_after`](crate::Builder::repeat_after) adds
    /// reminders while it lasts.
    ///
    /// In a file: `consecutive_runs = 4`; in code: [`Builder::consecutive_runs`](crate::Builder::consecutive_runs).
    #[serde(deserialize_with = "with::runs")]
    pub consecutive_runs: Option<u64>,
    /// Once a failure was reported (sent in a digest), it does not trigger
    /// another email until `after` has passed, however often it recurs: a
    /// daily reminder with `Duration::from_secs(24 * 3600)`. With
    /// `consecutive_runs`, these reminders are the only repeat emails of a
    /// streak. Its records still
    /// ride along in any digest sent for another reason, and a failure that
    /// stops and comes back later is new again. At most 3650 days (about
    /// ten years); [`build`](crate::Builder::build) refuses a longer one.
    ///
    /// In a file: `repeat_after = 86400`; in code: [`Builder::repeat_after`](crate::Builder::repeat_after).
    #[serde(deserialize_with = "with::seconds")]
    pub repeat_after: Option<Duration>,
    /// No two emails closer than `interval`: when a rule is met sooner, the
    /// records wait ([`Outcome::Waiting`](crate::Outcome::Waiting)) and a
    /// later flush sends them. At most 3650 days (about ten years);
    /// [`build`](crate::Builder::build) refuses a longer one.
    ///
    /// In a file: `min_interval = 3600`; in code: [`Builder::min_interval`](crate::Builder::min_interval).
    #[serde(deserialize_with = "with::seconds")]
    pub min_interval: Option<Duration>,
    /// At flush, send everything pending once a record at the policy's level
    /// has been pending for `age`: a slow trickle is reported eventually.
    /// At most 3650 days (about ten years); [`build`](crate::Builder::build)
    /// refuses a longer one.
    ///
    /// In a file: `max_age = 604800`; in code: [`Builder::max_age`](crate::Builder::max_age).
    #[serde(deserialize_with = "with::seconds")]
    pub max_age: Option<Duration>,
    /// `fingerprint_fields = ["feed"]` or one string: see [`Builder::fingerprint_fields`](crate::Builder::fingerprint_fields).
    #[serde(deserialize_with = "with::many")]
    pub fingerprint_fields: Vec<String>,
}

/// The layer's settings as data: deserialize it from a table of the
/// program's own configuration file, or read it from environment variables
/// with [`from_env`](EmailConfig::from_env), then make the layer with
/// [`EmailLayer::from_config`](crate::EmailLayer::from_config).
///
/// Each field is a key of the table, documented here; the
/// [`Builder`](crate::Builder) method of the same name sets it in code.
/// Unknown keys are errors, and so are bad
/// values; every error names the key (`policy.threshold.level`) or, from the
/// environment, the variable (`POCA_THRESHOLD`). Keys are named within the
/// settings' table (serde does not tell a value the name of the table that
/// holds it; the format's error gives the line);
/// [`set_table`](EmailConfig::set_table) adds the table's name to the keys in
/// the errors of [`from_config`]. The only required key is `app`;
/// [`from_config`] also needs `from`, `to`, and one of `smtp_url` and
/// `outbox`, unless `alertmanager_urls` alone is the destination (then none
/// of these four).
///
/// Levels are `trace`, `debug`, `info`, `warn` or `error`, in any case.
/// Durations are numbers of seconds, whole or not (`0.5`); all but
/// `lock_timeout` must be more than 0. A key left out keeps the builder's
/// default. In YAML or JSON, `null` counts as left out.
///
/// A command (`password_command`, `oauth2_token_command`) is a list, the
/// program then its arguments, never one string: it runs without a shell.
///
/// `Debug` never shows a password: one in `smtp_url` is shown as `***`
/// (everything between `//` and the URL's last `@` when it holds `/`, `?` or
/// `#`, as an unencoded password would).
///
/// [`from_config`]: crate::EmailLayer::from_config
///
/// ```
/// use serde::Deserialize;
/// use tracing_email::{EmailConfig, EmailLayer};
///
/// #[derive(Deserialize)]
/// struct AppConfig {
///     feeds: Vec<String>,
///     email: EmailConfig,
/// }
///
/// let config: AppConfig = toml::from_str(r#"
///     feeds = ["https://podcasts.example/1/rss"]
///
///     [email]
///     app = "poca"
///     smtp_url = "smtps://me%40example.com@smtp.example.com"
///     password_env = "SMTP_PASSWORD"
///     from = "poca <me@example.com>"
///     to = ["me@example.com", "ops@example.com"]
///     timeout = 2.5
///
///     [email.policy]
///     threshold = { count = 5, level = "warn" }
///     immediately_at = "error"
/// "#)?;
/// assert_eq!(config.email.policy.threshold, Some((5, tracing::Level::WARN)));
/// assert_eq!(config.email.timeout, Some(std::time::Duration::from_millis(2500)));
///
/// let err = toml::from_str::<EmailConfig>("app = \"poca\"\ncolour = \"red\"").unwrap_err();
/// assert!(err.to_string().contains("unknown field `colour`"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
#[serde(expecting = "a table of email settings (app, smtp_url or outbox, from, to, …)")]
pub struct EmailConfig {
    /// `app = "poca"`, required: see [`EmailLayer::builder`](crate::EmailLayer::builder).
    pub app: String,
    /// `smtp_url = "smtps://me%40example.com@smtp.example.com"`: see [`Smtp::from_url`](crate::Smtp::from_url).
    pub smtp_url: Option<SecretUrl>,
    /// `password_env = "SMTP_PASSWORD"`, the variable holding the password, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
    pub password_env: Option<String>,
    /// `password_command = ["pass", "show", "smtp"]`, a program that prints the password: see [`Smtp::password_command`](crate::Smtp::password_command).
    #[serde(deserialize_with = "with::command")]
    pub password_command: Option<Vec<String>>,
    /// `oauth2_token_command = ["oauth2-helper", "--account", "poca"]`, a program that prints an OAuth2 token: see [`Smtp::oauth2_token_command`](crate::Smtp::oauth2_token_command).
    #[serde(deserialize_with = "with::command")]
    pub oauth2_token_command: Option<Vec<String>>,
    /// `root_certificate = "ca.pem"` (read by [`EmailLayer::from_config`](crate::EmailLayer::from_config)): see [`Smtp::root_certificate`](crate::Smtp::root_certificate).
    pub root_certificate: Option<PathBuf>,
    /// `timeout = 10` (seconds): see [`Smtp::timeout`](crate::Smtp::timeout).
    #[serde(deserialize_with = "with::seconds")]
    pub timeout: Option<Duration>,
    /// `allow_insecure_auth = true`: see [`Smtp::allow_insecure_auth`](crate::Smtp::allow_insecure_auth).
    #[serde(deserialize_with = "with::or_default")]
    pub allow_insecure_auth: bool,
    /// `outbox = "outbox"`, instead of `smtp_url`: see [`FileDrop`](crate::FileDrop).
    pub outbox: Option<PathBuf>,
    /// The sender, e.g. `"poca <me@example.com>"`. Required.
    ///
    /// In a file: `from = "poca <me@example.com>"`; in code: [`Builder::from`](crate::Builder::from).
    pub from: Option<String>,
    /// `to = "me@example.com"` or a list of them: see [`Builder::to`](crate::Builder::to).
    #[serde(deserialize_with = "with::many")]
    pub to: Vec<String>,
    /// The subject line, as a template filled in for each email. Without
    /// it, the subject names the app, counts the errors and warnings (leaving
    /// out a count that is zero, or counting the log records when there is
    /// neither) and gives the oldest record's time:
    /// `[poca] 3 errors, 4 warnings since 2026-11-20 08:00`.
    ///
    /// | placeholder   | becomes                                                    |
    /// |---------------|------------------------------------------------------------|
    /// | `{app}`       | the app name given to [`EmailLayer::builder`](crate::EmailLayer::builder)              |
    /// | `{host}`      | this machine's name, read once by `build()` (`localhost` if it cannot be read) |
    /// | `{count}`     | the number of records in this email                        |
    /// | `{errors}`    | how many of them are ERROR                                 |
    /// | `{warnings}`  | how many of them are WARN                                  |
    /// | `{max_level}` | the most severe level among them, e.g. `ERROR`             |
    /// | `{first}`     | the oldest record's time, `2026-11-20 08:00`, at the digest's offset ([`local_time`](crate::Builder::local_time), [`utc_offset`](crate::Builder::utc_offset)) |
    /// | `{last}`      | the newest record's time, likewise                         |
    ///
    /// `{{` and `}}` are literal braces (a `}` on its own is kept too); a
    /// subject without placeholders is used as it is. An unknown placeholder
    /// or a `{` that is not closed makes [`build`](crate::Builder::build) fail with
    /// [`ErrorKind::Config`], naming it. The template is parsed once, by
    /// `build`. When a digest is split to stay under
    /// [`max_email_bytes`](crate::Builder::max_email_bytes), ` (part 2 of 3)` is
    /// added to the subject.
    ///
    /// In a file: `subject = "[{app}] {errors} errors"`; in code: [`Builder::subject`](crate::Builder::subject).
    pub subject: Option<String>,
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
    /// In a file: `html = false`; in code: [`Builder::html`](crate::Builder::html).
    #[serde(deserialize_with = "with::html")]
    pub html: bool,
    /// Keeps the pending records in this file instead of the default
    /// (`tracing-email.json` in the app's folder under
    /// `directories::ProjectDirs::state_dir()`, else `data_local_dir()`).
    ///
    /// In a file: `state_file = "/var/lib/poca/mail.json"`; in code: [`Builder::state_file`](crate::Builder::state_file).
    pub state_file: Option<PathBuf>,
    /// `local_time = true`: see [`Builder::local_time`](crate::Builder::local_time).
    #[serde(deserialize_with = "with::or_default")]
    pub local_time: bool,
    /// `[policy]`: when to send, see [`PolicyConfig`].
    #[serde(deserialize_with = "with::policy")]
    pub policy: PolicyConfig,
    /// Keeps at most this many records pending (10 000 by default). Beyond
    /// it the oldest are dropped first; how many is kept in the state file
    /// and said in the next digest ("412 older records were dropped"). The
    /// same bound holds for the records in memory between flushes.
    ///
    /// In a file: `max_pending = 10000`; in code: [`Builder::max_pending`](crate::Builder::max_pending).
    #[serde(deserialize_with = "with::max_pending")]
    pub max_pending: usize,
    /// Keeps at most this many bytes of one record, 16 KiB by default:
    /// message, field names and values and span context together, escapes
    /// counted as written (stored or shown, a record takes at most 512 bytes
    /// more, besides its target, module path and file name). A value that
    /// does not fit is cut with a visible `…[cut: N bytes in all]`; fields
    /// beyond the bound are left out and counted in a last field
    /// `fields_left_out`, spans in a last span `…[N more spans left out]`.
    ///
    /// In a file: `max_record_bytes = 16384`; in code: [`Builder::max_record_bytes`](crate::Builder::max_record_bytes).
    #[serde(deserialize_with = "with::max_record_bytes")]
    pub max_record_bytes: usize,
    /// Keeps each email under about this many bytes, 1 MiB by default: a
    /// larger digest is split into several complete emails, numbered "part 2
    /// of 3", so no server's size limit can make the backlog undeliverable.
    ///
    /// What is counted is the records' text lines, once in the plain-text
    /// part and, unless [`html(false)`](crate::Builder::html), once more in the
    /// attached log (the HTML part shows a bounded few records whatever
    /// the digest's size). Not counted: the headers, the few KiB of summary,
    /// HTML and footer each email has, and the transfer encoding, which adds
    /// up to a third (quoted-printable or base64, chosen by lettre). A record
    /// larger than the limit goes alone in its email.
    ///
    /// In a file: `max_email_bytes = 1048576`; in code: [`Builder::max_email_bytes`](crate::Builder::max_email_bytes).
    #[serde(deserialize_with = "with::max_email_bytes")]
    pub max_email_bytes: usize,
    /// Lists at most this many records one by one in a digest, 200 by
    /// default: the newest, after a summary that counts every record by kind
    /// of failure ("and 1 312 more (earlier) are only counted above").
    ///
    /// In a file: `max_detail_lines = 200`; in code: [`Builder::max_detail_lines`](crate::Builder::max_detail_lines).
    #[serde(deserialize_with = "with::max_detail_lines")]
    pub max_detail_lines: usize,
    /// The longest one flush spends sending, 30 seconds by default, however
    /// slowly the server answers (the SMTP timeout applies to each read, not
    /// to the whole exchange). Past it the flush fails and keeps the records.
    /// At most a day; [`build`](crate::Builder::build) refuses a longer one. An
    /// [`Smtp`](crate::Smtp) timeout longer than it is cut to it, and while a
    /// send abandoned at the deadline still runs, the next flush waits for
    /// it (within its own deadline) or leaves its records for a later one.
    ///
    /// In a file: `send_deadline = 30`; in code: [`Builder::send_deadline`](crate::Builder::send_deadline).
    #[serde(deserialize_with = "with::send_deadline")]
    pub send_deadline: Duration,
    /// How long a flush waits for another process to release the state file
    /// (10 seconds by default). Past it, the flush fails and keeps its records.
    /// At most a day; [`build`](crate::Builder::build) refuses a longer one.
    ///
    /// In a file: `lock_timeout = 10`; in code: [`Builder::lock_timeout`](crate::Builder::lock_timeout).
    #[serde(deserialize_with = "with::lock_timeout")]
    pub lock_timeout: Duration,
    /// How long new records may wait in memory before a background thread
    /// appends them to the state file: 1 second by default, `None` to turn
    /// it off. A run that ends without dropping the guard (an abort,
    /// SIGKILL) loses at most the records of its last interval; at
    /// `std::process::exit` an exit hook (on Unix) stores the rest.
    /// At most a day; [`build`](crate::Builder::build) refuses a longer one.
    ///
    /// In a file: `checkpoint_interval = 1`; in code: [`Builder::checkpoint_interval`](crate::Builder::checkpoint_interval).
    #[serde(deserialize_with = "with::checkpoint_interval")]
    pub checkpoint_interval: Option<Duration>,
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
    ///   [`notify_recovery`](crate::Builder::notify_recovery) says so, and its
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
    /// server, up to [`send_deadline`](crate::Builder::send_deadline)) skips the
    /// ticks it overran instead of running flushes back to back. The
    /// guard's drop still flushes once and ends the last period: drop it
    /// where blocking is allowed (after a tokio runtime, or in
    /// `spawn_blocking`). Checkpoints ([`checkpoint_interval`](crate::Builder::checkpoint_interval))
    /// go on between periods; a flush by hand (`guard.flush()`) does not
    /// end the period. At least 1 second and at most a day;
    /// [`build`](crate::Builder::build) refuses others.
    ///
    /// In a file: `flush_every = 300`; in code: [`Builder::flush_every`](crate::Builder::flush_every).
    #[serde(deserialize_with = "with::seconds")]
    pub flush_every: Option<Duration>,
    /// Turns a panic into an ERROR record (its message, thread and location),
    /// written to the state file at once, before the previous panic hook
    /// runs. With unwinding, the guard's flush still runs during the unwind
    /// and can send it; with `panic = "abort"` the next run finds it.
    ///
    /// In a file: `capture_panics = true`; in code: [`Builder::capture_panics`](crate::Builder::capture_panics).
    #[serde(deserialize_with = "with::or_default")]
    pub capture_panics: bool,
    /// Says when a failure is over: once a failure that went out in a digest
    /// is not seen by a run (by the time of the guard's flush, its
    /// `flush()` or its drop, or of the end of a
    /// [`flush_every`](crate::Builder::flush_every) period), the next email says so, in a "Resolved"
    /// section of a digest that goes out anyway, or else in a short email of
    /// its own, `[poca] resolved: feed "Radio Café" OK again after failing 9
    /// runs` (several at once: one email). `min_interval` applies to it as to
    /// any email; one that cannot go yet (too soon, or the mail server down)
    /// is kept in the state file and sent by a later flush, once. A run that
    /// does not reach the guard's flush (killed, `process::exit`) ends no
    /// failure. Off by default; config key `notify_recovery`, environment
    /// variable `PREFIX_NOTIFY_RECOVERY`.
    ///
    /// In a file: `notify_recovery = true`; in code: [`Builder::notify_recovery`](crate::Builder::notify_recovery).
    #[serde(deserialize_with = "with::or_default")]
    pub notify_recovery: bool,
    /// `alertmanager_urls = ["http://am-0:9093", "http://am-1:9093"]` (one
    /// string or a list; separated by commas in a variable): also post the
    /// failures to Alertmanager, see `Builder::alerts` (feature
    /// `alertmanager`). With it, `smtp_url`/`outbox`, `from` and `to` may
    /// be left out: Alertmanager is then the only destination.
    #[serde(deserialize_with = "with::many")]
    pub alertmanager_urls: Vec<SecretUrl>,
    /// `alertmanager_labels = { team = "media" }` (`team=media,env=prod` in
    /// a variable): labels added to every alert.
    #[serde(deserialize_with = "with::or_default")]
    pub alertmanager_labels: BTreeMap<String, String>,
    /// `alertmanager_user = "poca"`: the user of basic authentication, whose
    /// password is in the variable named by `alertmanager_password_env`.
    pub alertmanager_user: Option<String>,
    /// `alertmanager_password_env = "AM_PASSWORD"`: the variable holding the
    /// basic authentication password, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
    pub alertmanager_password_env: Option<String>,
    /// `alertmanager_token_env = "AM_TOKEN"`: the variable holding a bearer
    /// token, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
    pub alertmanager_token_env: Option<String>,
    /// `alertmanager_root_certificate = "ca.pem"`: the private CA to trust
    /// for `https` Alertmanagers.
    pub alertmanager_root_certificate: Option<PathBuf>,
    /// `alertmanager_timeout = 5` (seconds): the longest one post may take.
    #[serde(deserialize_with = "with::seconds")]
    pub alertmanager_timeout: Option<Duration>,
    /// `resolve_window = 3600` (seconds): how long a firing alert lasts
    /// unless posted again.
    #[serde(deserialize_with = "with::seconds")]
    pub resolve_window: Option<Duration>,
    /// This machine's name, as Alertmanager's `instance` label, in each
    /// digest's first lines and as the subject's `{host}`: by default the system's host name, read once by
    /// `build()`. For several instances on one machine, or a name that
    /// means more than the host name.
    ///
    /// In a file: `host = "node-7"`; in code: [`Builder::host`](crate::Builder::host).
    pub host: Option<String>,
    /// Never from a file.
    #[serde(skip)]
    pub(crate) password: Option<Password>,
    #[serde(skip)]
    pub(crate) origin: Origin,
    #[serde(skip)]
    pub(crate) offset: Option<time::UtcOffset>,
}

/// The defaults of the keys left out, as each builder method documents them.
impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            app: String::new(),
            smtp_url: None,
            password_env: None,
            password_command: None,
            oauth2_token_command: None,
            root_certificate: None,
            timeout: None,
            allow_insecure_auth: false,
            outbox: None,
            from: None,
            to: Vec::new(),
            subject: None,
            html: true,
            state_file: None,
            local_time: false,
            policy: PolicyConfig::default(),
            max_pending: 10_000,
            max_record_bytes: 16 * 1024,
            max_email_bytes: 1024 * 1024,
            max_detail_lines: 200,
            send_deadline: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            checkpoint_interval: Some(Duration::from_secs(1)),
            flush_every: None,
            capture_panics: false,
            notify_recovery: false,
            alertmanager_urls: Vec::new(),
            alertmanager_labels: BTreeMap::new(),
            alertmanager_user: None,
            alertmanager_password_env: None,
            alertmanager_token_env: None,
            alertmanager_root_certificate: None,
            alertmanager_timeout: None,
            resolve_window: None,
            host: None,
            password: None,
            origin: Origin::default(),
            offset: None,
        }
    }
}

/// Every error names its key: `… for `policy.batch``; `app` is required
/// (the derive cannot tell it left out from empty: both are refused here).
impl<'de> Deserialize<'de> for EmailConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config = EmailConfig::deserialize(keyed::Keyed::root(d, "", &Cell::new(false)))?;
        match config.app.is_empty() {
            true => Err(de::Error::custom(
                "missing field `app`, the program's name, such as app = \"poca\"",
            )),
            false => Ok(config),
        }
    }
}

/// Every error names its key: `… for `policy.batch``.
impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PolicyConfig::deserialize(keyed::Keyed::root(d, "policy", &Cell::new(false)))
    }
}

/// A URL that may hold a password (`smtps://me:secret@host`), as
/// `smtp_url` and `alertmanager_urls` hold it: its `Debug` shows the
/// password as `***` (see [`EmailConfig`]), and it derefs to the whole URL.
///
/// ```
/// use tracing_email::SecretUrl;
///
/// let url = SecretUrl::from("smtps://me:secret@smtp.example.com");
/// assert_eq!(format!("{url:?}"), r#""smtps://me:***@smtp.example.com""#);
/// assert_eq!(&*url, "smtps://me:secret@smtp.example.com");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&crate::redact::redact_url(&self.0), f)
    }
}

impl std::ops::Deref for SecretUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        SecretUrl(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        SecretUrl(url.to_owned())
    }
}

/// `Debug` shows it as `***`.
#[derive(Clone)]
pub(crate) struct Password(#[cfg_attr(not(feature = "smtp"), allow(dead_code))] pub(crate) String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Origin {
    Code,
    /// A file or an `EmailConfig` made in code: `policy.batch`.
    #[default]
    Data,
    /// `EmailConfig::set_table`: `email.policy.batch`.
    Table(String),
    /// `POCA_BATCH`.
    Env(String),
}

impl Origin {
    pub(crate) fn name(&self, key: &str) -> String {
        // A policy key, in code or a variable, without `policy.`.
        let last = key.rsplit('.').next().unwrap_or(key);
        match self {
            Origin::Code => last.to_owned(),
            Origin::Data => key.to_owned(),
            Origin::Table(table) => format!("{table}.{key}"),
            Origin::Env(prefix) => format!("{prefix}_{}", last.to_ascii_uppercase()),
        }
    }
}

/// Empty, `.`, `..`, a path separator, or control characters (`po\nca` names `poca`'s folder).
pub(crate) fn check_app_name(name: &str) -> Result<(), Error> {
    let app = name.trim();
    let why = match app {
        "" | "." | ".." => "cannot name a folder",
        _ if app.contains(['/', '\\']) => "cannot name a folder",
        _ if app.contains(char::is_control) => {
            "holds control characters, which a file name cannot keep apart"
        }
        _ => return Ok(()),
    };
    Err(Error::config(format!(
        "the app name {name:?} {why}; use a plain name like \"poca\""
    )))
}

impl EmailConfig {
    /// Checks every setting but the transport's (the app and host names,
    /// counts, durations and policy) as [`build()`](crate::Builder::build)
    /// does, without building anything: for a tool that reads a program's
    /// settings without running it.
    ///
    /// ```
    /// let mut config = tracing_email::EmailConfig::default();
    /// config.app = "poca".into();
    /// config.max_pending = 0;
    /// let err = config.validate().unwrap_err();
    /// assert!(err.to_string().starts_with("max_pending: 0 is not allowed"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        self.clone().check()
    }

    /// Every setting but the transport's; sets the default policy when none is given.
    pub(crate) fn check(&mut self) -> Result<(), Error> {
        check_app_name(&self.app)?;
        let unusable = |host: &&String| host.trim().is_empty() || host.contains(char::is_control);
        if let Some(host) = self.host.as_ref().filter(unusable) {
            let why = "is empty or holds control characters; give a name such as \"node-7\"";
            return Err(self.bad("host", format!("{host:?} {why}")));
        }
        let p = &self.policy;
        let counts = [
            (
                "policy.threshold",
                p.threshold.map(|(count, _)| count as u64),
            ),
            ("policy.consecutive_runs", p.consecutive_runs),
            ("policy.batch", p.batch.map(|n| n as u64)),
            ("max_pending", Some(self.max_pending as u64)),
            ("max_record_bytes", Some(self.max_record_bytes as u64)),
            ("max_email_bytes", Some(self.max_email_bytes as u64)),
            ("max_detail_lines", Some(self.max_detail_lines as u64)),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, n)| *n == Some(0)) {
            return Err(self.bad(key, "0 is not allowed; use 1 or more".into()));
        }
        if let Some(blank) = p.fingerprint_fields.iter().find(|f| f.trim().is_empty()) {
            let message = format!("{blank:?} is not a field name");
            return Err(self.bad("policy.fingerprint_fields", message));
        }
        self.check_durations()?;
        self.policy.set_default_rule();
        Ok(())
    }

    /// Longer than 0, but `lock_timeout`.
    fn check_durations(&self) -> Result<(), Error> {
        let p = &self.policy;
        let durations = [
            ("policy.repeat_after", p.repeat_after, TEN_YEARS),
            ("policy.min_interval", p.min_interval, TEN_YEARS),
            ("policy.max_age", p.max_age, TEN_YEARS),
            ("send_deadline", Some(self.send_deadline), DAY),
            ("checkpoint_interval", self.checkpoint_interval, DAY),
            ("flush_every", self.flush_every, DAY),
            ("lock_timeout", Some(self.lock_timeout), DAY),
            ("timeout", self.timeout, DAY),
        ];
        for (key, d, max) in durations {
            let Some(d) = d else { continue };
            at_most(&self.name(key), d, max).map_err(Error::config)?;
            let off = match key {
                "lock_timeout" => continue,
                "send_deadline" | "timeout" => "",
                "checkpoint_interval" => " (false, or None in code, turns checkpoints off)",
                _ => " (leave it out to turn it off)",
            };
            if d.is_zero() {
                return Err(self.bad(key, format!("must be longer than 0 seconds{off}")));
            }
        }
        if let Some(every) = self.flush_every.filter(|every| *every < MIN_FLUSH_EVERY) {
            let why = "is shorter than the least allowed, 1 second (each period is a run, counted \
                       in the state file); give 1 second or more";
            return Err(self.bad(
                "flush_every",
                format!("{} seconds {why}", every.as_secs_f64()),
            ));
        }
        Ok(())
    }

    pub(crate) fn bad(&self, key: &str, message: String) -> Error {
        Error::config(format!("{}: {message}", self.name(key)))
    }

    pub(crate) fn addresses(&self) -> Result<(Mailbox, Vec<Mailbox>), Error> {
        let bad = |key: &str, given: &str, e| {
            let message = format!("{}: {given:?} is not a valid email address", self.name(key));
            Error::with_source(ErrorKind::Config, message, e)
        };
        let unset = |key, what| Error::config(format!("{} is not set; {what}", self.name(key)));
        let sender = "the sender is required, such as \"app <robot@example.com>\"";
        let from = self.from.as_deref().ok_or_else(|| unset("from", sender))?;
        let from: Mailbox = from.parse().map_err(|e| bad("from", from, e))?;
        let mut to = Vec::new();
        for list in &self.to {
            let parsed: Mailboxes = list.parse().map_err(|e| bad("to", list, e))?;
            if parsed.iter().next().is_none() {
                return Err(self.bad("to", format!("{list:?} holds no address")));
            }
            to.extend(parsed);
        }
        if to.is_empty() {
            let recipient = "at least one recipient is required, such as \"me@example.com\"";
            return Err(unset("to", recipient));
        }
        Ok((from, to))
    }

    pub(crate) fn state_path(&self) -> Result<PathBuf, Error> {
        let Some(path) = &self.state_file else {
            return crate::store::file::default_path(&self.app);
        };
        if path.file_name().is_none() {
            return Err(Error::config(format!(
                "{}: {} has no file name; give a path like /var/lib/app/mail.json",
                self.name("state_file"),
                path.display()
            )));
        }
        Ok(path.clone())
    }

    /// The key itself, or its environment variable.
    pub(crate) fn name(&self, key: &str) -> String {
        self.origin.name(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_or_a_required_key_given_as_null_is_named() {
        let err = |json: &str| {
            serde_json::from_str::<EmailConfig>(json)
                .unwrap_err()
                .to_string()
        };
        let twice = err(r#"{"app": "a", "to": "x@example.com", "to": "y@example.com"}"#);
        assert!(twice.contains("duplicate field `to`"), "{twice}");
        let twice = err(r#"{"app": "a", "policy": {"batch": 1, "batch": 2}}"#);
        assert!(twice.contains("duplicate field `batch`"), "{twice}");
        let null = err(r#"{"app": null}"#);
        assert!(
            null.contains("invalid type: null, expected a string for `app`"),
            "{null}"
        );
        let empty = err(r#"{"app": ""}"#);
        assert!(
            empty.contains("missing field `app`, the program's name"),
            "{empty}"
        );
        let not_a_table = err(r#"["app"]"#);
        assert!(
            not_a_table.contains("expected a table of email settings"),
            "{not_a_table}"
        );
    }

    /// JSON says where: once, after the key, for an item of a list too.
    #[test]
    fn a_json_error_names_the_key_then_where() {
        let err = serde_json::from_str::<EmailConfig>(r#"{"app": "a", "to": ["x", 5]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid type: integer `5`, expected a string for `to` at line 1 column 26"
        );
    }

    /// A level is a name in any case; not a number, which tracing's own
    /// parser would take (`"1"` as ERROR).
    #[test]
    fn a_level_is_a_name_in_any_case() {
        let level = |text: &str| {
            let policy = toml::from_str::<PolicyConfig>(&format!("immediately_at = {text:?}"));
            policy.map(|p| p.immediately_at).map_err(|e| e.to_string())
        };
        assert_eq!(level(" Warn "), Ok(Some(Level::WARN)));
        assert_eq!(level("ERROR"), Ok(Some(Level::ERROR)));
        for bad in ["1", "03", "+3", "warning", ""] {
            let err = level(bad).unwrap_err();
            assert!(
                err.contains("expected one of trace, debug, info, warn, error"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_key_given_as_null_keeps_its_default() {
        let c: EmailConfig = serde_json::from_str(
            r#"{"app": "a", "to": null, "html": null, "policy": null, "capture_panics": null}"#,
        )
        .unwrap();
        assert!(c.to.is_empty() && c.html && !c.capture_panics);
        assert_eq!(c.policy, PolicyConfig::default());
    }
}
