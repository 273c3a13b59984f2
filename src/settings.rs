//! Every setting once: its default, its bound, its serde form (the readers
//! in [`de`], which name the key in each error, for files and environment
//! variables alike) and the one check of all of them ([`Settings::check`]),
//! which [`Builder::build`](crate::Builder::build) runs whether the settings
//! came from code, a file or the environment. The [`Builder`]
//! writes into [`Settings`]; [`EmailConfig`](crate::EmailConfig) is their
//! serde form, and [`PolicyConfig`] is both the `policy` table and the
//! policy the layer runs.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes};
use time::UtcOffset;
use tracing::Level;

use serde::Deserialize;

#[cfg(doc)]
use crate::Builder;
use crate::error::{Error, ErrorKind};

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
/// Longest SMTP `timeout` (for each network operation).
pub(crate) const MAX_SMTP_TIMEOUT: Duration = DAY;
/// Longest `repeat_after`: 3650 days, about ten years.
pub(crate) const MAX_REPEAT_AFTER: Duration = TEN_YEARS;
/// Longest `min_interval`.
pub(crate) const MAX_MIN_INTERVAL: Duration = TEN_YEARS;
/// Longest `max_age`.
pub(crate) const MAX_MAX_AGE: Duration = TEN_YEARS;
/// Longest Alertmanager `timeout` (of one post).
pub(crate) const MAX_ALERTMANAGER_TIMEOUT: Duration = DAY;
/// Longest `resolve_window`: 30 days.
pub(crate) const MAX_RESOLVE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

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

/// When to send: the `policy` table of an [`EmailConfig`](crate::EmailConfig),
/// and the policy the layer runs. Each field sets what the [`Builder`] method
/// it links to sets (documented there); any rule that is met sends. With none
/// of `threshold`, `batch`, `immediately_at`, `consecutive_runs` and
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with threshold, batch, immediately_at, consecutive_runs, repeat_after, \
                 min_interval, max_age or fingerprint_fields for `policy`"
)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// `threshold = { count = 5, level = "warn" }`: see [`Builder::threshold`].
    #[serde(default, deserialize_with = "de::threshold")]
    pub threshold: Option<(usize, Level)>,
    /// `batch = 10`: see [`Builder::batch`].
    #[serde(default, deserialize_with = "de::batch")]
    pub batch: Option<usize>,
    /// `immediately_at = "error"`: see [`Builder::immediately_at`].
    #[serde(default, deserialize_with = "de::immediately_at")]
    pub immediately_at: Option<Level>,
    /// `consecutive_runs = 4`: see [`Builder::consecutive_runs`].
    #[serde(default, deserialize_with = "de::consecutive_runs")]
    pub consecutive_runs: Option<u64>,
    /// `repeat_after = 86400` (seconds): see [`Builder::repeat_after`].
    #[serde(default, deserialize_with = "de::repeat_after")]
    pub repeat_after: Option<Duration>,
    /// `min_interval = 3600` (seconds): see [`Builder::min_interval`].
    #[serde(default, deserialize_with = "de::min_interval")]
    pub min_interval: Option<Duration>,
    /// `max_age = 604800` (seconds): see [`Builder::max_age`].
    #[serde(default, deserialize_with = "de::max_age")]
    pub max_age: Option<Duration>,
    /// `fingerprint_fields = ["feed"]` or one string: see [`Builder::fingerprint_fields`].
    #[serde(default, deserialize_with = "de::fingerprint_fields")]
    pub fingerprint_fields: Vec<String>,
}

/// Where settings came from, to name each key in errors as the user wrote it.
#[derive(Debug, Clone, Default)]
pub(crate) enum Origin {
    /// Builder calls: errors name the call (`batch(0)`).
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

/// When digest times are shown.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Offset {
    Utc,
    Local,
    Fixed(UtcOffset),
}

/// Every setting of the layer but the transport and the clock, with its
/// default (`Settings::default()`); checked once by [`Settings::check`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) app: String,
    pub(crate) from: Option<String>,
    pub(crate) to: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) html: bool,
    pub(crate) policy: PolicyConfig,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) offset: Offset,
    pub(crate) lock_timeout: Duration,
    pub(crate) max_pending: usize,
    pub(crate) max_record_bytes: usize,
    pub(crate) max_email_bytes: usize,
    pub(crate) send_deadline: Duration,
    pub(crate) checkpoint_interval: Option<Duration>,
    pub(crate) capture_panics: bool,
    pub(crate) notify_recovery: bool,
    pub(crate) detail_lines: usize,
    /// This machine's name for `{host}` and Alertmanager's `instance`.
    pub(crate) host: Option<String>,
    pub(crate) origin: Origin,
}

impl Settings {
    /// The documented defaults, for the program called `app`.
    pub(crate) fn new(app: String) -> Settings {
        Settings {
            app,
            from: None,
            to: Vec::new(),
            subject: None,
            html: true,
            policy: PolicyConfig::default(),
            state_file: None,
            offset: Offset::Utc,
            lock_timeout: Duration::from_secs(10),
            max_pending: 10_000,
            max_record_bytes: 16 * 1024,
            max_email_bytes: 1024 * 1024,
            send_deadline: Duration::from_secs(30),
            checkpoint_interval: Some(Duration::from_secs(1)),
            capture_panics: false,
            notify_recovery: false,
            detail_lines: 200,
            host: None,
            origin: Origin::Code,
        }
    }

    /// The one check of the counts, durations and policy, in the words of
    /// where they came from; sets the default policy when none is given.
    pub(crate) fn check(&mut self) -> Result<(), Error> {
        let o = &self.origin;
        let code = matches!(o, Origin::Code);
        // A count of 0: the builder's own words, or the key's.
        let zero = |key: &str, in_code: &str| {
            Error::config(if code {
                in_code.to_owned()
            } else {
                format!("{}: 0 is not allowed; use 1 or more", o.name(key))
            })
        };
        let p = &self.policy;
        if matches!(p.threshold, Some((0, _))) {
            return Err(zero(
                "policy.threshold",
                "threshold(0, …) would send on every flush; use 1 or more",
            ));
        }
        if p.consecutive_runs == Some(0) {
            return Err(zero(
                "policy.consecutive_runs",
                "consecutive_runs(0) would send on every flush; use 1 or more",
            ));
        }
        if p.batch == Some(0) {
            return Err(zero(
                "policy.batch",
                "batch(0) is not a batch size; use 1 or more",
            ));
        }
        if let Some(blank) = p.fingerprint_fields.iter().find(|f| f.trim().is_empty()) {
            let key = o.name("policy.fingerprint_fields");
            return Err(Error::config(format!(
                "{key}: {blank:?} is not a field name"
            )));
        }
        for (key, n) in [
            ("max_pending", self.max_pending),
            ("max_record_bytes", self.max_record_bytes),
            ("max_email_bytes", self.max_email_bytes),
            ("max_detail_lines", self.detail_lines),
        ] {
            if n == 0 {
                return Err(zero(
                    key,
                    "max_pending, max_record_bytes, max_email_bytes and max_detail_lines must \
                     be at least 1",
                ));
            }
        }
        // Durations: (key, value, bound, what a zero means or None if allowed).
        let durations = [
            ("policy.repeat_after", p.repeat_after, MAX_REPEAT_AFTER),
            ("policy.min_interval", p.min_interval, MAX_MIN_INTERVAL),
            ("policy.max_age", p.max_age, MAX_MAX_AGE),
            ("send_deadline", Some(self.send_deadline), MAX_SEND_DEADLINE),
            (
                "checkpoint_interval",
                self.checkpoint_interval,
                MAX_CHECKPOINT_INTERVAL,
            ),
            ("lock_timeout", Some(self.lock_timeout), MAX_LOCK_TIMEOUT),
        ];
        for (key, value, max) in durations {
            let Some(d) = value else { continue };
            at_most(&o.name(key), d, max).map_err(Error::config)?;
            if !d.is_zero() || key == "lock_timeout" {
                continue;
            }
            let last = key.rsplit('.').next().unwrap_or(key);
            return Err(Error::config(match (code, key) {
                (true, "send_deadline" | "checkpoint_interval") => {
                    "send_deadline and checkpoint_interval must be longer than zero (use \
                     checkpoint_interval(None) to turn checkpoints off)"
                        .to_owned()
                }
                (true, _) => {
                    format!("{last} must be longer than zero; leave it out to turn it off")
                }
                (false, _) => format!(
                    "{}: must be longer than 0 seconds{}",
                    o.name(key),
                    match key {
                        "checkpoint_interval" => " (false turns checkpoints off)",
                        "send_deadline" => "",
                        _ => " (leave it out to turn it off)",
                    }
                ),
            }));
        }
        if !self.policy.has_rule() {
            self.policy.threshold = Some((1, Level::WARN));
        }
        Ok(())
    }

    /// The sender and the recipients, parsed once; errors name the key.
    pub(crate) fn addresses(&self) -> Result<(Mailbox, Vec<Mailbox>), Error> {
        let (o, code) = (&self.origin, matches!(self.origin, Origin::Code));
        let bad = |e, message: String| Error::with_source(ErrorKind::Config, message, e);
        let from = self
            .from
            .as_deref()
            .ok_or_else(|| Error::config("no sender: call .from(\"app <robot@example.com>\")"))?;
        let from: Mailbox = from.parse().map_err(|e| match code {
            true => bad(
                e,
                format!("the sender {from:?} is not a valid email address"),
            ),
            false => bad(
                e,
                format!("{}: {from:?} is not a valid email address", o.name("from")),
            ),
        })?;
        let mut to = Vec::new();
        for list in &self.to {
            let parsed: Mailboxes = list.parse().map_err(|e| match code {
                true => bad(
                    e,
                    format!("the recipient {list:?} is not a valid email address"),
                ),
                false => bad(
                    e,
                    format!(
                        "{}: {list:?} is not a valid email address (or list of addresses \
                         separated by commas)",
                        o.name("to")
                    ),
                ),
            })?;
            let before = to.len();
            to.extend(parsed);
            if to.len() == before {
                return Err(Error::config(match code {
                    true => format!("the recipient {list:?} holds no address"),
                    false => format!("{}: {list:?} holds no address", o.name("to")),
                }));
            }
        }
        if to.is_empty() {
            return Err(Error::config("no recipient: call .to(\"me@example.com\")"));
        }
        Ok((from, to))
    }
}

/// The serde form of each key: one generic reader of a value (a JSON [`Value`](serde_json::Value)), the
/// kind that says what the key takes and words its errors, and the table of
/// keys, which the environment variables use too.
pub(crate) mod de {
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor,
    };
    use serde_json::{Value, json};

    use super::*;

    /// What a key takes, with the words of its errors.
    #[derive(Clone, Copy)]
    pub(crate) enum Kind {
        Text,
        Path,
        Flag,
        /// A whole number, at least 1.
        Whole,
        /// Seconds, whole or not, at most `max`; more than 0 if `positive`.
        Seconds {
            positive: bool,
            max: Duration,
        },
        /// Seconds, or `false` (off).
        Checkpoint,
        Level,
        /// One string or a list: what one is, what several are.
        List(&'static str, &'static str),
        /// A command: a list of strings, the program then its arguments.
        Command,
        /// A table of strings (labels), or in a variable `name=value,…`.
        Labels,
    }

    const LEVELS: &str = "one of trace, debug, info, warn, error (in any case)";

    impl Kind {
        fn expected(self) -> String {
            let seconds = |positive: bool, max: Duration| {
                let range = if positive {
                    "greater than 0 and at most"
                } else {
                    "from 0 to"
                };
                format!(
                    "a number of seconds {range} {} ({})",
                    max.as_secs(),
                    days(max)
                )
            };
            match self {
                Kind::Text => "a string".into(),
                Kind::Path => "a path".into(),
                Kind::Flag => "true or false".into(),
                Kind::Whole => "a whole number of at least 1".into(),
                Kind::Seconds { positive, max } => {
                    format!("{}, such as 10 or 0.5", seconds(positive, max))
                }
                Kind::Checkpoint => format!(
                    "{}, such as 1 or 0.5, or false to turn checkpoints off",
                    seconds(true, MAX_CHECKPOINT_INTERVAL)
                ),
                Kind::Level => LEVELS.into(),
                Kind::List(one, many) => format!("{one} or a list of {many} (strings)"),
                Kind::Command => "a list of strings, the program then its arguments (run \
                                  without a shell), such as [\"pass\", \"show\", \"smtp\"]"
                    .into(),
                Kind::Labels => "a table of label names and values (strings)".into(),
            }
        }

        /// `v` in the form serde reads into the key's type (seconds as a
        /// `Duration`'s `{secs, nanos}`, a level as its name, `false` for a
        /// checkpoint as `null`); else whether `v` is of a type this kind
        /// takes (if so it is an "invalid value", else an "invalid type").
        fn read(self, v: &Value) -> Result<Value, bool> {
            let is = |ok: bool| if ok { Ok(v.clone()) } else { Err(false) };
            match self {
                Kind::Text | Kind::Path => is(v.is_string()),
                Kind::Flag => is(v.is_boolean()),
                Kind::Whole => match v.as_u64() {
                    Some(n) if n >= 1 && usize::try_from(n).is_ok() => Ok(json!(n)),
                    _ => Err(v.is_u64() || v.is_i64()),
                },
                Kind::Checkpoint if *v == Value::Bool(false) => Ok(Value::Null),
                Kind::Seconds { .. } | Kind::Checkpoint => {
                    let (positive, max, checkpoint) = match self {
                        Kind::Seconds { positive, max } => (positive, max, false),
                        _ => (true, MAX_CHECKPOINT_INTERVAL, true),
                    };
                    let d = match (v.as_u64(), v.as_f64()) {
                        (Some(n), _) => Some(Duration::from_secs(n)),
                        (None, Some(f)) if f >= 0.0 && !v.is_i64() => {
                            Duration::try_from_secs_f64(f).ok()
                        }
                        _ => None,
                    };
                    match d.filter(|d| *d <= max && (!positive || !d.is_zero())) {
                        Some(d) => Ok(json!({ "secs": d.as_secs(), "nanos": d.subsec_nanos() })),
                        None => Err(v.is_number() || checkpoint && v.is_boolean()),
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

    /// A setting's type, from the value [`Kind::read`] gives.
    pub(crate) trait Typed: Sized {
        fn typed(v: Value) -> Option<Self>;
    }

    macro_rules! typed {
        ($($t:ty),*) => {$(impl Typed for $t {
            fn typed(v: Value) -> Option<Self> {
                serde_json::from_value(v).ok()
            }
        })*};
    }
    typed!(
        String,
        PathBuf,
        bool,
        u64,
        usize,
        Duration,
        Option<Duration>,
        Vec<String>,
        std::collections::BTreeMap<String, String>
    );

    impl Typed for Level {
        fn typed(v: Value) -> Option<Self> {
            v.as_str()?.parse().ok()
        }
    }

    /// The value of `key`, or `None` if it is `null`.
    fn opt<'de, D: Deserializer<'de>, T: Typed>(
        d: D,
        key: &'static str,
        kind: Kind,
    ) -> Result<Option<T>, D::Error> {
        let v = Expect(key, kind).deserialize(d)?;
        if v.is_null() {
            return Ok(None);
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
        match kind.read(&v).map(T::typed) {
            Ok(Some(value)) => Ok(Some(value)),
            Ok(None) | Err(true) => {
                Err(de::Error::invalid_value(unexpected(&v), &Expect(key, kind)))
            }
            Err(false) => Err(de::Error::invalid_type(unexpected(&v), &Expect(key, kind))),
        }
    }

    /// The value of `key`, its default if it is `null`.
    fn or_default<'de, D: Deserializer<'de>, T: Typed + Default>(
        d: D,
        key: &'static str,
        kind: Kind,
    ) -> Result<T, D::Error> {
        opt(d, key, kind).map(Option::unwrap_or_default)
    }

    /// The value of `key`, which may not be `null`.
    fn required<'de, D: Deserializer<'de>, T: Typed>(
        d: D,
        key: &'static str,
        kind: Kind,
    ) -> Result<T, D::Error> {
        opt(d, key, kind)?
            .ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &Expect(key, kind)))
    }

    /// Each key once: its reader for `#[serde(deserialize_with)]`, its kind,
    /// and its environment variable (after the prefix).
    macro_rules! keys {
        ($($name:ident: $ty:ty = $how:ident($key:literal, $var:literal, $kind:expr);)*) => {
            $(pub(crate) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                $how(d, $key, $kind)
            })*
            /// `(variable, key, kind)` for every key.
            const KEYS: &[(&str, &str, Kind)] = &[$(($var, $key, $kind)),*];
        };
    }

    const fn secs(positive: bool, max: Duration) -> Kind {
        Kind::Seconds { positive, max }
    }

    keys! {
        app: String = required("app", "APP", Kind::Text);
        smtp_url: Option<String> = opt("smtp_url", "SMTP_URL", Kind::Text);
        password_env: Option<String> = opt("password_env", "PASSWORD_ENV", Kind::Text);
        password_command: Option<Vec<String>> =
            opt("password_command", "PASSWORD_COMMAND", Kind::Command);
        oauth2_token_command: Option<Vec<String>> =
            opt("oauth2_token_command", "OAUTH2_TOKEN_COMMAND", Kind::Command);
        root_certificate: Option<PathBuf> = opt("root_certificate", "ROOT_CERTIFICATE", Kind::Path);
        timeout: Option<Duration> = opt("timeout", "TIMEOUT", secs(true, MAX_SMTP_TIMEOUT));
        allow_insecure_auth: bool =
            or_default("allow_insecure_auth", "ALLOW_INSECURE_AUTH", Kind::Flag);
        outbox: Option<PathBuf> = opt("outbox", "OUTBOX", Kind::Path);
        from: Option<String> = opt("from", "FROM", Kind::Text);
        to: Vec<String> = or_default("to", "TO", Kind::List("an address", "addresses"));
        subject: Option<String> = opt("subject", "SUBJECT", Kind::Text);
        html: Option<bool> = opt("html", "HTML", Kind::Flag);
        state_file: Option<PathBuf> = opt("state_file", "STATE_FILE", Kind::Path);
        local_time: bool = or_default("local_time", "LOCAL_TIME", Kind::Flag);
        max_pending: Option<usize> = opt("max_pending", "MAX_PENDING", Kind::Whole);
        max_record_bytes: Option<usize> = opt("max_record_bytes", "MAX_RECORD_BYTES", Kind::Whole);
        max_email_bytes: Option<usize> = opt("max_email_bytes", "MAX_EMAIL_BYTES", Kind::Whole);
        max_detail_lines: Option<usize> = opt("max_detail_lines", "MAX_DETAIL_LINES", Kind::Whole);
        send_deadline: Option<Duration> =
            opt("send_deadline", "SEND_DEADLINE", secs(true, MAX_SEND_DEADLINE));
        lock_timeout: Option<Duration> =
            opt("lock_timeout", "LOCK_TIMEOUT", secs(false, MAX_LOCK_TIMEOUT));
        checkpoint_interval: Option<Option<Duration>> =
            opt("checkpoint_interval", "CHECKPOINT_INTERVAL", Kind::Checkpoint);
        capture_panics: bool = or_default("capture_panics", "CAPTURE_PANICS", Kind::Flag);
        notify_recovery: bool = or_default("notify_recovery", "NOTIFY_RECOVERY", Kind::Flag);
        batch: Option<usize> = opt("policy.batch", "BATCH", Kind::Whole);
        immediately_at: Option<Level> = opt("policy.immediately_at", "IMMEDIATELY_AT", Kind::Level);
        consecutive_runs: Option<u64> = opt("policy.consecutive_runs", "CONSECUTIVE_RUNS", Kind::Whole);
        repeat_after: Option<Duration> =
            opt("policy.repeat_after", "REPEAT_AFTER", secs(true, MAX_REPEAT_AFTER));
        min_interval: Option<Duration> =
            opt("policy.min_interval", "MIN_INTERVAL", secs(true, MAX_MIN_INTERVAL));
        max_age: Option<Duration> = opt("policy.max_age", "MAX_AGE", secs(true, MAX_MAX_AGE));
        fingerprint_fields: Vec<String> = or_default(
            "policy.fingerprint_fields",
            "FINGERPRINT_FIELDS",
            Kind::List("a field name", "field names")
        );
        alertmanager_urls: Vec<String> = or_default(
            "alertmanager_urls",
            "ALERTMANAGER_URLS",
            Kind::List("a URL", "URLs")
        );
        alertmanager_labels: std::collections::BTreeMap<String, String> =
            or_default("alertmanager_labels", "ALERTMANAGER_LABELS", Kind::Labels);
        alertmanager_user: Option<String> = opt("alertmanager_user", "ALERTMANAGER_USER", Kind::Text);
        alertmanager_password_env: Option<String> =
            opt("alertmanager_password_env", "ALERTMANAGER_PASSWORD_ENV", Kind::Text);
        alertmanager_token_env: Option<String> =
            opt("alertmanager_token_env", "ALERTMANAGER_TOKEN_ENV", Kind::Text);
        alertmanager_root_certificate: Option<PathBuf> =
            opt("alertmanager_root_certificate", "ALERTMANAGER_ROOT_CERTIFICATE", Kind::Path);
        alertmanager_timeout: Option<Duration> = opt(
            "alertmanager_timeout",
            "ALERTMANAGER_TIMEOUT",
            secs(true, MAX_ALERTMANAGER_TIMEOUT)
        );
        resolve_window: Option<Duration> =
            opt("resolve_window", "RESOLVE_WINDOW", secs(true, MAX_RESOLVE_WINDOW));
        host: Option<String> = opt("host", "HOST", Kind::Text);
        threshold_count: Option<usize> = opt("policy.threshold.count", "", Kind::Whole);
        threshold_level: Option<Level> = opt("policy.threshold.level", "", Kind::Level);
    }

    /// Whether `var` (after the prefix) is one this crate reads.
    pub(crate) fn is_ours(var: &str) -> bool {
        matches!(var, "THRESHOLD" | "SMTP_PASSWORD")
            || KEYS.iter().any(|k| !k.0.is_empty() && k.0 == var)
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
        let &(_, key, kind) = KEYS.iter().find(|k| !k.0.is_empty() && k.0 == var)?;
        let number = || {
            t.parse::<u64>()
                .map_or_else(|_| json!(t.parse::<f64>().ok()), |n| json!(n))
        };
        let v = match kind {
            Kind::Flag | Kind::Checkpoint if t.eq_ignore_ascii_case("false") => json!(false),
            Kind::Flag => json!(t.eq_ignore_ascii_case("true").then_some(true)),
            Kind::Whole => json!(t.parse::<u64>().ok()),
            Kind::Seconds { .. } | Kind::Checkpoint => number(),
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

    pub(crate) fn threshold<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(usize, Level)>, D::Error> {
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

    /// The `policy` table; `null` is the default policy.
    pub(crate) fn policy<'de, D: Deserializer<'de>>(d: D) -> Result<PolicyConfig, D::Error> {
        Option::<PolicyConfig>::deserialize(d).map(Option::unwrap_or_default)
    }
}
