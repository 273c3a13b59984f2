//! Every setting once. [`EmailConfig`] and its `policy` table,
//! [`PolicyConfig`], declare each key with its documentation, its type and
//! its [`Kind`](de::Kind): what it takes, its bound and the words of its
//! errors. From that one declaration come the structs, their `Deserialize`,
//! which names the key in every error (for a file and for environment
//! variables alike, see [`de`]), and their `Debug`. The [`Builder`](crate::Builder) writes
//! into an `EmailConfig` too, and [`EmailConfig::check`] checks every
//! setting once, whether it came from code, a file or the environment. A key
//! left out takes its default (`DEFAULT_*` here).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes};
use serde::Deserialize;
use tracing::Level;

use crate::error::{Error, ErrorKind};
use de::Kind;

// The longest value each duration setting accepts. A longer one is a mistake
// (a unit mixed up, milliseconds given as seconds) that would hold a flush or
// silence email for longer than anyone means, or overflow the arithmetic.
const DAY: Duration = Duration::from_secs(24 * 3600);
const TEN_YEARS: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Longest `send_deadline`: a program's exit held for more than a day.
pub(crate) const MAX_SEND_DEADLINE: Duration = DAY;
/// Longest `lock_timeout`.
pub(crate) const MAX_LOCK_TIMEOUT: Duration = DAY;
/// Longest `checkpoint_interval`.
pub(crate) const MAX_CHECKPOINT_INTERVAL: Duration = DAY;
/// Longest `flush_every`: a run of a day.
pub(crate) const MAX_FLUSH_EVERY: Duration = DAY;
/// Shortest `flush_every`: each period is a run, counted in the state file,
/// and a shorter one would keep the state file and the mail server busy.
pub(crate) const MIN_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest SMTP `timeout` (for each network operation).
pub(crate) const MAX_SMTP_TIMEOUT: Duration = DAY;
/// Longest `repeat_after`: 3650 days, about ten years.
pub(crate) const MAX_REPEAT_AFTER: Duration = TEN_YEARS;
/// Longest `min_interval`.
pub(crate) const MAX_MIN_INTERVAL: Duration = TEN_YEARS;
/// Longest `max_age`.
pub(crate) const MAX_MAX_AGE: Duration = TEN_YEARS;
/// Longest Alertmanager `timeout` (of one post).
#[cfg(feature = "alertmanager")]
pub(crate) const MAX_ALERTMANAGER_TIMEOUT: Duration = DAY;
/// Longest `resolve_window`: 30 days.
#[cfg(feature = "alertmanager")]
pub(crate) const MAX_RESOLVE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

// The defaults of the keys left out, as each builder method documents them.
pub(crate) const DEFAULT_HTML: bool = true;
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_PENDING: usize = 10_000;
pub(crate) const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024;
pub(crate) const DEFAULT_MAX_EMAIL_BYTES: usize = 1024 * 1024;
pub(crate) const DEFAULT_MAX_DETAIL_LINES: usize = 200;
pub(crate) const DEFAULT_SEND_DEADLINE: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_CHECKPOINT_INTERVAL: Option<Duration> = Some(Duration::from_secs(1));

/// A bound in whole days, as the errors say it: `1 day`, `3650 days`.
pub(crate) fn days(max: Duration) -> String {
    let days = max.as_secs() / DAY.as_secs();
    let plural = if days == 1 { "" } else { "s" };
    format!("{days} day{plural}")
}

/// Refuses `value` for the setting `key` if it is longer than `max`: the
/// error message, which names both.
pub(crate) fn at_most(key: &str, value: Duration, max: Duration) -> Result<(), String> {
    if value <= max {
        return Ok(());
    }
    let given = if value.subsec_nanos() == 0 {
        value.as_secs().to_string()
    } else {
        value.as_secs_f64().to_string()
    };
    Err(format!(
        "{key}: {given} seconds is longer than the most allowed, {} seconds ({}); give at most \
         that",
        max.as_secs(),
        days(max)
    ))
}

/// Declares a table of settings: each key once, with its documentation, its
/// type and its [`Kind`]. Makes the struct (the keys as public fields, then
/// the private ones), the `(key, kind)` list the environment variables use,
/// a `Deserialize` that names the key in each error, and a `Debug` that
/// shows each key (through `shown by` when given: a password is never
/// shown).
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $prefix:literal, expecting $expecting:literal {
            $($(#[doc = $doc:literal])* $key:ident: $ty:ty = $kind:expr $(, shown by $show:path)?;)*
        }
        $(private {
            $($(#[doc = $pdoc:literal])* $field:ident: $fty:ty $(, shown by $pshow:path)?;)*
        })?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[doc = $doc])* pub $key: $ty,)*
            $($($(#[doc = $pdoc])* pub(crate) $field: $fty,)*)?
        }

        impl $name {
            /// Every key, as serde's errors list them.
            const FIELDS: &'static [&'static str] = &[$(stringify!($key)),*];
            /// Every key, as a file writes it, with its kind.
            pub(crate) const KEYS: &'static [(&'static str, Kind)] =
                &[$((concat!($prefix, stringify!($key)), $kind)),*];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Table;
                impl<'de> serde::de::Visitor<'de> for Table {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut table = $name::default();
                        let mut seen: Vec<&'static str> = Vec::new();
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $(stringify!($key) => {
                                    let field = stringify!($key);
                                    if seen.contains(&field) {
                                        return Err(serde::de::Error::duplicate_field(field));
                                    }
                                    seen.push(field);
                                    let name = concat!($prefix, stringify!($key));
                                    if let Some(value) = map.next_value_seed(de::Key::new(name, $kind))? {
                                        table.$key = value;
                                    }
                                })*
                                _ => return Err(serde::de::Error::unknown_field(&key, $name::FIELDS)),
                            }
                        }
                        for (field, (_, kind)) in $name::FIELDS.iter().zip($name::KEYS) {
                            if kind.required() && !seen.contains(field) {
                                return Err(serde::de::Error::missing_field(field));
                            }
                        }
                        Ok(table)
                    }
                }
                d.deserialize_struct(stringify!($name), $name::FIELDS, Table)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($key), &table!(@show &self.$key $(, $show)?)))*
                    $($($(.field(stringify!($field), &$pshow(&self.$field)))?)*)?
                    .finish()
            }
        }
    };
    (@show $value:expr) => { $value };
    (@show $value:expr, $show:path) => { $show($value) };
}

table! {
    /// When to send: the `policy` table of an [`EmailConfig`], and the
    /// policy the layer runs. Each field sets what the [`Builder`](crate::Builder) method it
    /// links to sets (documented there); any rule that is met sends. With
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
    #[derive(Clone, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct PolicyConfig in "policy.", expecting "a table with threshold, batch, immediately_at, \
        consecutive_runs, repeat_after, min_interval, max_age or fingerprint_fields for `policy`" {
        /// `threshold = { count = 5, level = "warn" }`: see [`Builder::threshold`](crate::Builder::threshold).
        threshold: Option<(usize, Level)> = Kind::Threshold;
        /// `batch = 10`: see [`Builder::batch`](crate::Builder::batch).
        batch: Option<usize> = Kind::Whole;
        /// `immediately_at = "error"`: see [`Builder::immediately_at`](crate::Builder::immediately_at).
        immediately_at: Option<Level> = Kind::Level;
        /// `consecutive_runs = 4`: see [`Builder::consecutive_runs`](crate::Builder::consecutive_runs).
        consecutive_runs: Option<u64> = Kind::Whole;
        /// `repeat_after = 86400` (seconds): see [`Builder::repeat_after`](crate::Builder::repeat_after).
        repeat_after: Option<Duration> = Kind::Seconds;
        /// `min_interval = 3600` (seconds): see [`Builder::min_interval`](crate::Builder::min_interval).
        min_interval: Option<Duration> = Kind::Seconds;
        /// `max_age = 604800` (seconds): see [`Builder::max_age`](crate::Builder::max_age).
        max_age: Option<Duration> = Kind::Seconds;
        /// `fingerprint_fields = ["feed"]` or one string: see [`Builder::fingerprint_fields`](crate::Builder::fingerprint_fields).
        fingerprint_fields: Vec<String> = Kind::List("a field name", "field names");
    }
}

table! {
/// The layer's settings as data: deserialize it from a table of the
/// program's own configuration file, or read it from environment variables
/// with [`from_env`](EmailConfig::from_env), then make the layer with
/// [`EmailLayer::from_config`](crate::EmailLayer::from_config).
///
/// Each field is a key of the table and sets what the [`Builder`](crate::Builder) method it
/// links to sets (documented there). Unknown keys are errors, and so are bad
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
    #[derive(Clone, Default)]
    pub struct EmailConfig in "", expecting "a table of email settings (app, smtp_url or outbox, \
        from, to, …)" {
        /// `app = "poca"`, required: see [`EmailLayer::builder`](crate::EmailLayer::builder).
        app: String = Kind::App;
        /// `smtp_url = "smtps://me%40example.com@smtp.example.com"`: see [`Smtp::from_url`](crate::Smtp::from_url).
        smtp_url: Option<String> = Kind::Text, shown by crate::redact::shown_url;
        /// `password_env = "SMTP_PASSWORD"`, the variable holding the password, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
        password_env: Option<String> = Kind::Text;
        /// `password_command = ["pass", "show", "smtp"]`, a program that prints the password: see [`Smtp::password_command`](crate::Smtp::password_command).
        password_command: Option<Vec<String>> = Kind::Command;
        /// `oauth2_token_command = ["oauth2-helper", "--account", "poca"]`, a program that prints an OAuth2 token: see [`Smtp::oauth2_token_command`](crate::Smtp::oauth2_token_command).
        oauth2_token_command: Option<Vec<String>> = Kind::Command;
        /// `root_certificate = "ca.pem"` (read by [`EmailLayer::from_config`](crate::EmailLayer::from_config)): see [`Smtp::root_certificate`](crate::Smtp::root_certificate).
        root_certificate: Option<PathBuf> = Kind::Path;
        /// `timeout = 10` (seconds): see [`Smtp::timeout`](crate::Smtp::timeout).
        timeout: Option<Duration> = Kind::Seconds;
        /// `allow_insecure_auth = true`: see [`Smtp::allow_insecure_auth`](crate::Smtp::allow_insecure_auth).
        allow_insecure_auth: bool = Kind::Flag;
        /// `outbox = "outbox"`, instead of `smtp_url`: see [`FileDrop`](crate::FileDrop).
        outbox: Option<PathBuf> = Kind::Path;
        /// `from = "poca <me@example.com>"`: see [`Builder::from`](crate::Builder::from).
        from: Option<String> = Kind::Text;
        /// `to = "me@example.com"` or a list of them: see [`Builder::to`](crate::Builder::to).
        to: Vec<String> = Kind::List("an address", "addresses");
        /// `subject = "[{app}] {errors} errors"`: see [`Builder::subject`](crate::Builder::subject).
        subject: Option<String> = Kind::Text;
        /// `html = false`: see [`Builder::html`](crate::Builder::html).
        html: Option<bool> = Kind::Flag;
        /// `state_file = "/var/lib/poca/mail.json"`: see [`Builder::state_file`](crate::Builder::state_file).
        state_file: Option<PathBuf> = Kind::Path;
        /// `local_time = true`: see [`Builder::local_time`](crate::Builder::local_time).
        local_time: bool = Kind::Flag;
        /// `[policy]`: when to send, see [`PolicyConfig`].
        policy: PolicyConfig = Kind::Policy;
        /// `max_pending = 10000`: see [`Builder::max_pending`](crate::Builder::max_pending).
        max_pending: Option<usize> = Kind::Whole;
        /// `max_record_bytes = 16384`: see [`Builder::max_record_bytes`](crate::Builder::max_record_bytes).
        max_record_bytes: Option<usize> = Kind::Whole;
        /// `max_email_bytes = 1048576`: see [`Builder::max_email_bytes`](crate::Builder::max_email_bytes).
        max_email_bytes: Option<usize> = Kind::Whole;
        /// `max_detail_lines = 200`: see [`Builder::max_detail_lines`](crate::Builder::max_detail_lines).
        max_detail_lines: Option<usize> = Kind::Whole;
        /// `send_deadline = 30.5` (seconds): see [`Builder::send_deadline`](crate::Builder::send_deadline).
        send_deadline: Option<Duration> = Kind::Seconds;
        /// `lock_timeout = 10` (seconds): see [`Builder::lock_timeout`](crate::Builder::lock_timeout).
        lock_timeout: Option<Duration> = Kind::Seconds;
        /// `checkpoint_interval = 1` (seconds) or `false` (`Some(None)`): see [`Builder::checkpoint_interval`](crate::Builder::checkpoint_interval).
        checkpoint_interval: Option<Option<Duration>> = Kind::Checkpoint;
        /// `flush_every = 300` (seconds): see [`Builder::flush_every`](crate::Builder::flush_every).
        flush_every: Option<Duration> = Kind::Seconds;
        /// `capture_panics = true`: see [`Builder::capture_panics`](crate::Builder::capture_panics).
        capture_panics: bool = Kind::Flag;
        /// `notify_recovery = true`: see [`Builder::notify_recovery`](crate::Builder::notify_recovery).
        notify_recovery: bool = Kind::Flag;
        /// `alertmanager_urls = ["http://am-0:9093", "http://am-1:9093"]` (one
        /// string or a list; separated by commas in a variable): also post the
        /// failures to Alertmanager, see `Builder::alerts` (feature
        /// `alertmanager`). With it, `smtp_url`/`outbox`, `from` and `to` may
        /// be left out: Alertmanager is then the only destination.
        alertmanager_urls: Vec<String> = Kind::List("a URL", "URLs"), shown by crate::redact::shown_urls;
        /// `alertmanager_labels = { team = "media" }` (`team=media,env=prod` in
        /// a variable): labels added to every alert.
        alertmanager_labels: BTreeMap<String, String> = Kind::Labels;
        /// `alertmanager_user = "poca"`: the user of basic authentication, whose
        /// password is in the variable named by `alertmanager_password_env`.
        alertmanager_user: Option<String> = Kind::Text;
        /// `alertmanager_password_env = "AM_PASSWORD"`: the variable holding the
        /// basic authentication password, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
        alertmanager_password_env: Option<String> = Kind::Text;
        /// `alertmanager_token_env = "AM_TOKEN"`: the variable holding a bearer
        /// token, read by [`EmailLayer::from_config`](crate::EmailLayer::from_config).
        alertmanager_token_env: Option<String> = Kind::Text;
        /// `alertmanager_root_certificate = "ca.pem"`: the private CA to trust
        /// for `https` Alertmanagers.
        alertmanager_root_certificate: Option<PathBuf> = Kind::Path;
        /// `alertmanager_timeout = 5` (seconds): the longest one post may take.
        alertmanager_timeout: Option<Duration> = Kind::Seconds;
        /// `resolve_window = 3600` (seconds): how long a firing alert lasts
        /// unless posted again.
        resolve_window: Option<Duration> = Kind::Seconds;
        /// `host = "node-7"`: see [`Builder::host`](crate::Builder::host).
        host: Option<String> = Kind::Text;
    }
    private {
        /// The SMTP password itself: from `PREFIX_SMTP_PASSWORD` or
        /// [`set_password`](EmailConfig::set_password), never from a file.
        password: Option<String>, shown by crate::error::hidden;
        /// Where the settings came from, to name them in errors.
        origin: Origin;
        /// A fixed offset for the digest's times, given in code
        /// ([`Builder::utc_offset`](crate::Builder::utc_offset)).
        offset: Option<time::UtcOffset>;
    }
}

/// Where settings came from, to name each key in errors as the user wrote it.
#[derive(Debug, Clone, Default)]
pub(crate) enum Origin {
    /// Builder calls: keys named as their methods (`batch`).
    Code,
    /// A file or an `EmailConfig` made in code: keys as in the file
    /// (`policy.batch`).
    #[default]
    Data,
    /// A table of a file named by `EmailConfig::set_table`: keys with the
    /// table's name first (`email.policy.batch`).
    Table(String),
    /// Environment variables with this prefix (`POCA_BATCH`).
    Env(String),
}

impl Origin {
    /// The name of `key` (as in a file: `policy.batch`) as the user wrote it.
    pub(crate) fn name(&self, key: &str) -> String {
        match self {
            Origin::Code => key.rsplit('.').next().unwrap_or(key).to_owned(),
            Origin::Data => key.to_owned(),
            Origin::Table(table) => format!("{table}.{key}"),
            Origin::Env(prefix) => {
                let last = key.rsplit('.').next().unwrap_or(key);
                format!("{prefix}_{}", last.to_ascii_uppercase())
            }
        }
    }
}

/// Refuses an app name that cannot name the folder of its state file:
/// empty, `.`, `..`, with a path separator, or with control characters
/// (`po\nca` and `poca` would name the same folder).
pub(crate) fn check_app_name(name: &str) -> Result<(), Error> {
    let app = name.trim();
    if app.is_empty() || app == "." || app == ".." || app.contains(['/', '\\']) {
        return Err(Error::config(format!(
            "the app name {name:?} cannot name a folder; use a plain name like \"poca\""
        )));
    }
    if app.contains(char::is_control) {
        return Err(Error::config(format!(
            "the app name {name:?} holds control characters, which a file name cannot keep \
             apart; use a plain name like \"poca\""
        )));
    }
    Ok(())
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
    /// config.max_pending = Some(0);
    /// let err = config.validate().unwrap_err();
    /// assert!(err.to_string().starts_with("max_pending: 0 is not allowed"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        self.clone().check()
    }

    /// The one check of every setting but the transport's (the app and host
    /// names, counts, durations and policy), in the words of where each came
    /// from; sets the default policy when none is given.
    pub(crate) fn check(&mut self) -> Result<(), Error> {
        check_app_name(&self.app)?;
        if let Some(host) = &self.host
            && (host.trim().is_empty() || host.contains(|c: char| c.is_control()))
        {
            return Err(Error::config(format!(
                "{}: {host:?} is empty or holds control characters; give a name such as \
                 \"node-7\"",
                self.name("host")
            )));
        }
        let (o, p) = (&self.origin, &self.policy);
        let counts = [
            ("policy.threshold", matches!(p.threshold, Some((0, _)))),
            ("policy.consecutive_runs", p.consecutive_runs == Some(0)),
            ("policy.batch", p.batch == Some(0)),
            ("max_pending", self.max_pending == Some(0)),
            ("max_record_bytes", self.max_record_bytes == Some(0)),
            ("max_email_bytes", self.max_email_bytes == Some(0)),
            ("max_detail_lines", self.max_detail_lines == Some(0)),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, zero)| *zero) {
            let key = o.name(key);
            return Err(Error::config(format!(
                "{key}: 0 is not allowed; use 1 or more"
            )));
        }
        if let Some(blank) = p.fingerprint_fields.iter().find(|f| f.trim().is_empty()) {
            let key = o.name("policy.fingerprint_fields");
            return Err(Error::config(format!(
                "{key}: {blank:?} is not a field name"
            )));
        }
        let durations = [
            ("policy.repeat_after", p.repeat_after, MAX_REPEAT_AFTER),
            ("policy.min_interval", p.min_interval, MAX_MIN_INTERVAL),
            ("policy.max_age", p.max_age, MAX_MAX_AGE),
            ("send_deadline", self.send_deadline, MAX_SEND_DEADLINE),
            (
                "checkpoint_interval",
                self.checkpoint_interval.flatten(),
                MAX_CHECKPOINT_INTERVAL,
            ),
            ("flush_every", self.flush_every, MAX_FLUSH_EVERY),
            ("lock_timeout", self.lock_timeout, MAX_LOCK_TIMEOUT),
            ("timeout", self.timeout, MAX_SMTP_TIMEOUT),
        ];
        for (key, value, max) in durations {
            let Some(d) = value else { continue };
            at_most(&o.name(key), d, max).map_err(Error::config)?;
            if d.is_zero() && key != "lock_timeout" {
                let off = match key {
                    "send_deadline" | "timeout" => "",
                    "checkpoint_interval" => " (false, or None in code, turns checkpoints off)",
                    _ => " (leave it out to turn it off)",
                };
                let key = o.name(key);
                return Err(Error::config(format!(
                    "{key}: must be longer than 0 seconds{off}"
                )));
            }
        }
        if let Some(every) = self.flush_every
            && every < MIN_FLUSH_EVERY
        {
            let key = o.name("flush_every");
            return Err(Error::config(format!(
                "{key}: {} seconds is shorter than the least allowed, 1 second (each period \
                 is a run, counted in the state file); give 1 second or more",
                every.as_secs_f64()
            )));
        }
        if !self.policy.has_rule() {
            self.policy.threshold = Some((1, Level::WARN));
        }
        Ok(())
    }

    /// The sender and the recipients, parsed once; errors name the key.
    pub(crate) fn addresses(&self) -> Result<(Mailbox, Vec<Mailbox>), Error> {
        let bad = |key: &str, given: &str, e| {
            let message = format!("{}: {given:?} is not a valid email address", self.name(key));
            Error::with_source(ErrorKind::Config, message, e)
        };
        let from = self.from.as_deref().ok_or_else(|| {
            Error::config(format!(
                "{} is not set; the sender is required, such as \"app <robot@example.com>\"",
                self.name("from")
            ))
        })?;
        let from: Mailbox = from.parse().map_err(|e| bad("from", from, e))?;
        let mut to = Vec::new();
        for list in &self.to {
            let parsed: Mailboxes = list.parse().map_err(|e| bad("to", list, e))?;
            let before = to.len();
            to.extend(parsed);
            if to.len() == before {
                let key = self.name("to");
                return Err(Error::config(format!("{key}: {list:?} holds no address")));
            }
        }
        if to.is_empty() {
            return Err(Error::config(format!(
                "{} is not set; at least one recipient is required, such as \"me@example.com\"",
                self.name("to")
            )));
        }
        Ok((from, to))
    }

    /// The state file: `state_file`, else the app's default.
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

    /// The name of `key` as the user wrote it: the key itself, or its
    /// environment variable.
    pub(crate) fn name(&self, key: &str) -> String {
        self.origin.name(key)
    }
}

/// The serde form of each key: the kind that says what it takes and words
/// its errors, one reader of any key's value (a JSON [`Value`]) into its
/// type, and the environment variables as such values.
pub(crate) mod de {
    use std::marker::PhantomData;

    use serde::de::{
        self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor,
    };
    use serde_json::{Value, json};

    use super::*;

    /// What a key takes, with the words of its errors.
    #[derive(Clone, Copy)]
    pub(crate) enum Kind {
        Text,
        /// A string, required: the app's name.
        App,
        Path,
        Flag,
        /// A whole number, at least 1.
        Whole,
        /// Seconds, whole or not (its bounds are checked by `check`).
        Seconds,
        /// Seconds, or `false` (off).
        Checkpoint,
        Level,
        /// One string or a list: what one is, what several are.
        List(&'static str, &'static str),
        /// A command: a list of strings, the program then its arguments.
        Command,
        /// A table of strings (labels), or in a variable `name=value,…`.
        Labels,
        /// The `threshold` table (read by [`threshold`]).
        Threshold,
        /// The `policy` table (read by [`PolicyConfig`]'s `Deserialize`).
        Policy,
    }

    const LEVELS: &str = "one of trace, debug, info, warn, error (in any case)";

    impl Kind {
        /// Whether the key must be given.
        pub(crate) fn required(self) -> bool {
            matches!(self, Kind::App)
        }

        fn expected(self) -> String {
            match self {
                Kind::Text | Kind::App => "a string".into(),
                Kind::Path => "a path".into(),
                Kind::Flag => "true or false".into(),
                Kind::Whole => "a whole number of at least 1".into(),
                Kind::Seconds => "a number of seconds, such as 10 or 0.5".into(),
                Kind::Checkpoint => {
                    "a number of seconds, such as 1 or 0.5, or false to turn checkpoints off".into()
                }
                Kind::Level => LEVELS.into(),
                Kind::List(one, many) => format!("{one} or a list of {many} (strings)"),
                Kind::Command => "a list of strings, the program then its arguments (run \
                                  without a shell), such as [\"pass\", \"show\", \"smtp\"]"
                    .into(),
                Kind::Labels => "a table of label names and values (strings)".into(),
                Kind::Threshold => "a table such as { count = 5, level = \"warn\" }".into(),
                Kind::Policy => "a table of policy settings".into(),
            }
        }

        /// `v` in the form serde reads into the key's type (seconds as a
        /// `Duration`'s `{secs, nanos}`, a level as its name, `false` for a
        /// checkpoint as `null`); else whether `v` is of a type this kind
        /// takes (if so it is an "invalid value", else an "invalid type").
        fn read(self, v: &Value) -> Result<Value, bool> {
            let is = |ok: bool| if ok { Ok(v.clone()) } else { Err(false) };
            match self {
                Kind::Text | Kind::App | Kind::Path => is(v.is_string()),
                Kind::Flag => is(v.is_boolean()),
                Kind::Whole => match v.as_u64() {
                    Some(n) if n >= 1 && usize::try_from(n).is_ok() => Ok(json!(n)),
                    _ => Err(v.is_u64() || v.is_i64()),
                },
                Kind::Checkpoint if *v == Value::Bool(false) => Ok(Value::Null),
                Kind::Seconds | Kind::Checkpoint => {
                    let d = match (v.as_u64(), v.as_f64()) {
                        (Some(n), _) => Some(Duration::from_secs(n)),
                        (None, Some(f)) if f >= 0.0 && !v.is_i64() => {
                            Duration::try_from_secs_f64(f).ok()
                        }
                        _ => None,
                    };
                    match d {
                        Some(d) => Ok(json!({ "secs": d.as_secs(), "nanos": d.subsec_nanos() })),
                        None => {
                            Err(v.is_number() || matches!(self, Kind::Checkpoint) && v.is_boolean())
                        }
                    }
                }
                Kind::Level => {
                    let name = v.as_str().ok_or(false)?.trim();
                    let all = [
                        Level::TRACE,
                        Level::DEBUG,
                        Level::INFO,
                        Level::WARN,
                        Level::ERROR,
                    ];
                    let level = all.iter().find(|l| l.as_str().eq_ignore_ascii_case(name));
                    level.map(|l| json!(l.as_str())).ok_or(true)
                }
                Kind::Threshold | Kind::Policy => Err(false),
                Kind::Labels => is(v
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string))),
                Kind::List(..) => match v {
                    Value::String(_) => Ok(json!([v])),
                    Value::Array(all) => is(all.iter().all(Value::is_string)),
                    _ => Err(false),
                },
                // Not one string: "pass show smtp" would be taken for the
                // name of one program.
                Kind::Command => match v {
                    Value::Array(all) if !all.iter().all(Value::is_string) => Err(false),
                    Value::Array(all) => match all.first().and_then(Value::as_str) {
                        Some(program) if !program.trim().is_empty() => Ok(v.clone()),
                        _ => Err(true),
                    },
                    _ => Err(false),
                },
            }
        }
    }

    fn unexpected(v: &Value) -> Unexpected<'_> {
        match v {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Unexpected::Unsigned(u),
                (_, Some(i), _) => Unexpected::Signed(i),
                (_, _, f) => Unexpected::Float(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    /// The value of `key`, of `kind`: its errors name both.
    struct Expect(&'static str, Kind);

    /// Reads any value but a table; a number that is not finite (TOML's
    /// `nan`, `inf`) is refused here, as JSON has none.
    impl<'de> Visitor<'de> for Expect {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} for `{}`", self.1.expected(), self.0)
        }
        fn visit_none<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            match v.is_finite() {
                true => Ok(json!(v)),
                false => Err(E::invalid_value(Unexpected::Float(v), &self)),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element_seed(Expect(self.0, Kind::Text))? {
                all.push(one);
            }
            Ok(Value::Array(all))
        }
        /// A table only for labels: names to strings.
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            if !matches!(self.1, Kind::Labels) {
                return Err(de::Error::invalid_type(Unexpected::Map, &self));
            }
            let mut all = serde_json::Map::new();
            while let Some(name) = map.next_key::<String>()? {
                let value = map.next_value_seed(Expect(self.0, Kind::Text))?;
                all.insert(name, value);
            }
            Ok(Value::Object(all))
        }
    }

    impl<'de> DeserializeSeed<'de> for Expect {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    /// Reads the value of one key, of one kind, into its type `T`: `None`
    /// for `null`, which leaves the key at its default.
    pub(crate) struct Key<T>(&'static str, Kind, PhantomData<T>);

    impl<T> Key<T> {
        pub(crate) fn new(key: &'static str, kind: Kind) -> Self {
            Key(key, kind, PhantomData)
        }
    }

    impl<'de, T: Typed> DeserializeSeed<'de> for Key<T> {
        type Value = Option<T>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            T::read(d, self.0, self.1)
        }
    }

    /// A setting's type, read from the value of its key.
    pub(crate) trait Typed: Sized {
        /// The value of `key`, of `kind`; `None` if it is `null` (an error
        /// for a required key).
        fn read<'de, D: Deserializer<'de>>(
            d: D,
            key: &'static str,
            kind: Kind,
        ) -> Result<Option<Self>, D::Error>;
    }

    /// The value of `key`, checked by its `kind`, then made a `T` by
    /// `typed` from the form [`Kind::read`] gives.
    fn read_value<'de, D: Deserializer<'de>, T>(
        d: D,
        key: &'static str,
        kind: Kind,
        typed: impl FnOnce(Value) -> Option<T>,
    ) -> Result<Option<T>, D::Error> {
        let v = Expect(key, kind).deserialize(d)?;
        if v.is_null() {
            return match kind.required() {
                true => Err(de::Error::invalid_type(
                    Unexpected::Unit,
                    &Expect(key, kind),
                )),
                false => Ok(None),
            };
        }
        // A list's items are strings: an error names the item.
        let items = v
            .as_array()
            .filter(|_| matches!(kind, Kind::List(..) | Kind::Command));
        if let Some(item) = items.and_then(|all| all.iter().find(|i| !i.is_string())) {
            return Err(de::Error::invalid_type(
                unexpected(item),
                &Expect(key, Kind::Text),
            ));
        }
        match kind.read(&v).map(typed) {
            Ok(Some(value)) => Ok(Some(value)),
            Ok(None) | Err(true) => {
                Err(de::Error::invalid_value(unexpected(&v), &Expect(key, kind)))
            }
            Err(false) => Err(de::Error::invalid_type(unexpected(&v), &Expect(key, kind))),
        }
    }

    macro_rules! typed {
        ($($t:ty),*) => {$(impl Typed for $t {
            fn read<'de, D: Deserializer<'de>>(
                d: D,
                key: &'static str,
                kind: Kind,
            ) -> Result<Option<Self>, D::Error> {
                read_value(d, key, kind, |v| serde_json::from_value(v).ok())
            }
        })*};
    }
    typed!(
        String,
        bool,
        Vec<String>,
        BTreeMap<String, String>,
        Option<String>,
        Option<PathBuf>,
        Option<bool>,
        Option<u64>,
        Option<usize>,
        Option<Duration>,
        Option<Vec<String>>
    );

    /// `checkpoint_interval`: `false` (off) is read as `null`.
    impl Typed for Option<Option<Duration>> {
        fn read<'de, D: Deserializer<'de>>(
            d: D,
            key: &'static str,
            kind: Kind,
        ) -> Result<Option<Self>, D::Error> {
            read_value(d, key, kind, |v| serde_json::from_value(v).ok().map(Some))
        }
    }

    impl Typed for Option<Level> {
        fn read<'de, D: Deserializer<'de>>(
            d: D,
            key: &'static str,
            kind: Kind,
        ) -> Result<Option<Self>, D::Error> {
            read_value(d, key, kind, |v| v.as_str()?.parse().ok().map(Some))
        }
    }

    /// The `policy` table, by its own `Deserialize`.
    impl Typed for PolicyConfig {
        fn read<'de, D: Deserializer<'de>>(
            d: D,
            _: &str,
            _: Kind,
        ) -> Result<Option<Self>, D::Error> {
            Option::<PolicyConfig>::deserialize(d)
        }
    }

    /// The `threshold` table, by [`threshold`].
    impl Typed for Option<(usize, Level)> {
        fn read<'de, D: Deserializer<'de>>(
            d: D,
            _: &str,
            _: Kind,
        ) -> Result<Option<Self>, D::Error> {
            threshold(d).map(|t| t.map(Some))
        }
    }

    /// Whether `var` (after the prefix) is one this crate reads.
    pub(crate) fn is_ours(var: &str) -> bool {
        matches!(var, "THRESHOLD" | "SMTP_PASSWORD") || key_of(var).is_some()
    }

    /// The key and kind of the variable `var` (after the prefix): the key's
    /// name upper-cased, a policy key's without `policy.`.
    fn key_of(var: &str) -> Option<(&'static str, Kind)> {
        let variable = |key: &str| key.rsplit('.').next().map(str::to_ascii_uppercase);
        let mut keys = EmailConfig::KEYS.iter().chain(PolicyConfig::KEYS).copied();
        keys.find(|&(key, kind)| {
            !matches!(kind, Kind::Policy | Kind::Threshold) && variable(key).as_deref() == Some(var)
        })
    }

    /// The variable `var` (after the prefix) as the value its key has in a
    /// file, with the key; else what it should be. `None` for variables that
    /// are not settings of a file.
    pub(crate) fn from_var(var: &str, text: &str) -> Option<Result<(&'static str, Value), String>> {
        let t = text.trim();
        if var == "THRESHOLD" {
            let table = t.split_once(':').and_then(|(count, level)| {
                let count = json!(count.trim().parse::<u64>().ok()?);
                (Kind::Whole.read(&count).is_ok() && Kind::Level.read(&json!(level)).is_ok())
                    .then(|| json!({ "count": count, "level": level }))
            });
            let table = table.ok_or_else(|| "COUNT:LEVEL, such as 5:warn".to_owned());
            return Some(table.map(|v| ("policy.threshold", v)));
        }
        let (key, kind) = key_of(var)?;
        let number = || {
            t.parse::<u64>()
                .map_or_else(|_| json!(t.parse::<f64>().ok()), |n| json!(n))
        };
        let v = match kind {
            Kind::Flag | Kind::Checkpoint if t.eq_ignore_ascii_case("false") => json!(false),
            Kind::Flag => json!(t.eq_ignore_ascii_case("true").then_some(true)),
            Kind::Whole => json!(t.parse::<u64>().ok()),
            Kind::Seconds | Kind::Checkpoint => number(),
            // Field names: split at commas; recipients: one string as given.
            Kind::List(..) if matches!(var, "FINGERPRINT_FIELDS" | "ALERTMANAGER_URLS") => {
                let names = text
                    .split(',')
                    .map(|f| Some(f.trim()).filter(|f| !f.is_empty()));
                json!(names.collect::<Option<Vec<_>>>())
            }
            // A command: words separated by white space, or a JSON list
            // when an argument holds a space.
            Kind::Command if t.starts_with('[') => {
                serde_json::from_str::<Value>(t).unwrap_or(Value::Null)
            }
            Kind::Command => json!(t.split_whitespace().collect::<Vec<_>>()),
            // Labels: `name=value` separated by commas.
            Kind::Labels => {
                let pairs = text.split(',').map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((name.trim().to_owned(), json!(value.trim())))
                });
                json!(pairs.collect::<Option<serde_json::Map<_, _>>>())
            }
            _ => json!(text),
        };
        Some(if kind.read(&v).is_ok() {
            Ok((key, v))
        } else {
            Err(match kind {
                Kind::Level => format!("a level: {LEVELS}"),
                Kind::List(..) if var == "ALERTMANAGER_URLS" => {
                    "URLs separated by commas, such as http://am-0:9093,http://am-1:9093".into()
                }
                Kind::List(..) => "field names separated by commas, such as feed,url".into(),
                Kind::Command => "the program then its arguments, separated by spaces (pass show \
                                  smtp), or a JSON list of strings when an argument holds a space \
                                  ([\"secret-tool\", \"lookup\", \"service\", \"my smtp\"])"
                    .into(),
                Kind::Labels => "name=value pairs separated by commas, such as team=media".into(),
                _ => kind.expected(),
            })
        })
    }

    /// The `threshold` table as written.
    #[derive(Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = "a table such as { count = 5, level = \"warn\" } for `policy.threshold`"
    )]
    struct Threshold {
        #[serde(default, deserialize_with = "threshold_count")]
        count: Option<usize>,
        #[serde(default, deserialize_with = "threshold_level")]
        level: Option<Level>,
    }

    fn threshold_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        Typed::read(d, "policy.threshold.count", Kind::Whole).map(Option::flatten)
    }

    fn threshold_level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Level>, D::Error> {
        Typed::read(d, "policy.threshold.level", Kind::Level).map(Option::flatten)
    }

    fn threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(usize, Level)>, D::Error> {
        match Option::<Threshold>::deserialize(d)? {
            None => Ok(None),
            Some(Threshold {
                count: Some(count),
                level: Some(level),
            }) => Ok(Some((count, level))),
            Some(_) => Err(de::Error::custom(
                "`policy.threshold` needs both `count` and `level`, such as \
                 { count = 5, level = \"warn\" }",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key added to the table is read from its variable, and the guide's
    /// configuration page (the one list of keys and variables, on docs.rs)
    /// documents both.
    #[test]
    fn every_key_has_its_variable_and_the_configuration_page_names_both() {
        let page = include_str!("../docs/guide/configuration.md");
        let keys = EmailConfig::KEYS.iter().chain(PolicyConfig::KEYS);
        for (key, _) in keys.filter(|(_, kind)| !matches!(kind, Kind::Policy)) {
            let last = key.rsplit('.').next().unwrap_or(key);
            let var = last.to_ascii_uppercase();
            assert!(de::is_ours(&var), "{key}: {var} is not read");
            assert!(page.contains(&format!("`POCA_{var}`")), "POCA_{var}");
            assert!(page.contains(last), "{key}");
        }
    }

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
        let not_a_table = err(r#"["app"]"#);
        assert!(
            not_a_table.contains("expected a table of email settings"),
            "{not_a_table}"
        );
    }

    #[test]
    fn a_key_given_as_null_keeps_its_default() {
        let c: EmailConfig = serde_json::from_str(
            r#"{"app": "a", "to": null, "html": null, "policy": null, "capture_panics": null}"#,
        )
        .unwrap();
        assert!(c.to.is_empty() && c.html.is_none() && !c.capture_panics);
        assert_eq!(c.policy, PolicyConfig::default());
    }
}
