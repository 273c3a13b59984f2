//! Every setting once: its default, its bound, and the one check of all of
//! them ([`Settings::check`]), which [`Builder::build`](crate::Builder::build)
//! runs whether the settings came from code, a file or the environment. The
//! [`Builder`](crate::Builder) writes into [`Settings`];
//! [`EmailConfig`](crate::EmailConfig) is their serde form.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes};
use time::UtcOffset;
use tracing::Level;

use crate::error::{Error, ErrorKind};
use crate::policy::Policy;

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
/// default ([`Settings::default`]); checked once by [`Settings::check`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) app: String,
    pub(crate) from: Option<String>,
    pub(crate) to: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) html: bool,
    pub(crate) policy: Policy,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) offset: Offset,
    pub(crate) lock_timeout: Duration,
    pub(crate) max_pending: usize,
    pub(crate) max_record_bytes: usize,
    pub(crate) max_email_bytes: usize,
    pub(crate) send_deadline: Duration,
    pub(crate) checkpoint_interval: Option<Duration>,
    pub(crate) capture_panics: bool,
    pub(crate) detail_lines: usize,
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
            policy: Policy::default(),
            state_file: None,
            offset: Offset::Utc,
            lock_timeout: Duration::from_secs(10),
            max_pending: 10_000,
            max_record_bytes: 16 * 1024,
            max_email_bytes: 1024 * 1024,
            send_deadline: Duration::from_secs(30),
            checkpoint_interval: Some(Duration::from_secs(1)),
            capture_panics: false,
            detail_lines: 200,
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
