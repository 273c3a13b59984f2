//! A [`tracing-subscriber`](tracing_subscriber) layer that gathers a
//! program's log records, keeps the ones not yet worth an email in a small
//! JSON state file across runs, and at the end of a run sends **one digest
//! email** when enough records of enough severity have piled up.
//!
//! A cron job whose feed fails once stays quiet; a feed that fails run after
//! run gets one clear email. Nothing is lost when the mail server is down: the
//! records wait for the next run. In a long-running service, a run is a
//! period: see [`Builder::flush_every`] (and `examples/service.rs`).
//!
//! ```no_run
//! use std::io::IsTerminal as _;
//! use tracing::Level;
//! use tracing_subscriber::{filter::LevelFilter, prelude::*};
//! use tracing_email::{EmailLayer, Smtp};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (email, guard) = EmailLayer::builder("poca")      // app name: default state file
//!         .transport(Smtp::starttls("smtp.example.com")     // 587; also Smtp::tls, Smtp::plain, Smtp::from_url
//!             .credentials("me@example.com", std::env::var("SMTP_PASSWORD")?)
//!             .timeout(std::time::Duration::from_secs(10)))
//!         .from("poca <me@example.com>")
//!         .to("me@example.com")
//!         .subject("POCA log")
//!         .threshold(5, Level::WARN)                         // send when ≥ 5 WARN+ records are pending
//!         .build()?;                                         // bad address, URL, port: error here
//!     tracing_subscriber::registry()
//!         .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal())) // no colours into a pipe
//!         .with(email.with_filter(LevelFilter::INFO))        // INFO rides along as context
//!         .init();
//!
//!     tracing::warn!(feed = "Radio Café", "feed failed");
//!
//!     let outcome = guard.flush();                           // or let `guard` drop at the end of main
//!     eprintln!("{outcome}");
//!     Ok(())
//! }
//! ```
//!
//! # How a record travels
//!
//! 1. [`EmailLayer`] turns each event that passes its filter into a
//!    [`Record`](record::Record) and keeps it in memory. The event path does no I/O and never
//!    waits for a send.
//! 2. At a flush ([`FlushGuard::flush`], dropping the guard, or the end of
//!    a [`flush_every`](Builder::flush_every) period), the state
//!    file is locked, this run's records are appended to the pending ones,
//!    and the policy decides over all of them.
//! 3. Either the digest is sent and the records the server accepted are
//!    removed, or everything is kept for a later run. The [`Outcome`] says
//!    which, in one line.
//!
//! Delivery is at least once: a record leaves the state file only after the
//! server accepted the email holding it.
//!
//! # Many machines, and the people who run the program
//!
//! With the `alertmanager` feature, [`Builder::alerts`] posts each failure
//! worth reporting to Prometheus Alertmanager, which groups a fleet's alerts
//! into one notification, and says "resolved" when a run no longer sees it;
//! [`Builder::notify_recovery`] does the same by email.
//!
//! The `tracing-email` command (`cargo install --path cli` in a checkout) reads a
//! program's state file from the shell: `tracing-email status --app poca`
//! says what waits and why no email went out; `show`, `send`, `clear` and
//! `test` do the rest. [`StateFile`](inspect::StateFile) is the same from code.
//!
//! # The guide
//!
//! The reference is the [`guide`], a page per topic:
//! [policies](guide::policies) (when an email goes out, and the
//! [`Outcome`]), [the digest](guide::digest), [capture](guide::capture) (the
//! filter, the guard, the `log` crate), [services](guide::services),
//! [many machines](guide::alertmanager), [SMTP and logins](guide::smtp),
//! [configuration keys and variables](guide::configuration),
//! [the state file](guide::state_file), [guarantees and
//! limits](guide::guarantees), [the command](guide::command),
//! [why didn't I get an email?](guide::troubleshooting),
//! [performance](guide::performance), [examples](guide::examples) and
//! [other email handlers](guide::compared).
//!
//! # Settings from a file or the environment
//!
//! [`EmailConfig`] holds the same settings as data: an `[email]` table of
//! the program's own TOML, YAML or JSON file (serde), or `PREFIX_*`
//! environment variables ([`EmailConfig::from_env`]);
//! [`EmailLayer::from_config`] makes the layer from it. Unknown keys and bad
//! values are errors that name the key.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `smtp` | yes | [`Smtp`]: lettre's SMTP client with pure-Rust TLS (rustls, ring) and the bundled webpki root certificates; pooled sessions; XOAUTH2 and passwords from a command |
//! | `sendmail` | yes | [`Sendmail`](transport::Sendmail): hands digests to a local `sendmail` program |
//! | `log` | yes | records bridged from the `log` crate by `tracing-log` keep their real target, module, file and line, and are told apart by their own call site |
//! | `alertmanager` | yes | [`Alertmanager`]: posts each failure worth reporting to Prometheus Alertmanager (ureq 3, blocking, over the same rustls and ring), firing while it lasts, resolved when it ends |
//! | `rustls-native-certs` | no | [`Smtp`] trusts the platform's root certificates instead of the bundled ones (implies `smtp`) |
//!
//! With `default-features = false` the crate keeps [`FileDrop`] and your own
//! [`Transport`](transport::Transport)s, with no TLS stack in the dependency tree; CI lints and
//! tests that build too.

#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs` on nightly: items that need a feature
// carry a badge that says which.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(rust_2018_idioms, unreachable_pub)]

// A folder or file per stage of the flow, and data moves one way through
// them: `capture` (event -> record) -> `store` (pending across runs) ->
// `policy` (the decision) -> `digest` (the email) -> `transport`, and beside
// it `alerts` (Alertmanager); `flush` runs
// those stages, `guard` runs the flush, `inspect` reads the store. `clock`,
// `error`, `sync` (a lock a panic cannot poison), `say` (the crate's lines
// on stderr, and counted nouns) and `settings` (each setting's default and bound) are below
// all of them; `builder` and `config` (the settings from code and from data) above.
pub mod clock;
mod error;
mod say;
mod sync;
#[cfg(test)]
mod tests;

#[cfg(feature = "alertmanager")]
mod alerts;
mod capture;
mod digest;
mod flush;
mod guard;
pub mod inspect;
mod policy;
mod redact;
mod store;
pub mod transport;

mod builder;
mod config;
mod settings;

pub mod guide;

pub mod record {
    //! The records the layer keeps: what a [`Transport`](crate::transport::Transport)
    //! finds in [`Email::records`](crate::transport::Email::records) and a
    //! [`Snapshot`](crate::inspect::Snapshot) lists as pending.
    pub use crate::capture::record::{Fields, Record, SpanRecord};
}

#[cfg(feature = "alertmanager")]
#[cfg_attr(docsrs, doc(cfg(feature = "alertmanager")))]
pub use alerts::Alertmanager;
pub use builder::Builder;
pub use capture::layer::EmailLayer;
pub use error::{Error, ErrorKind};
pub use flush::outcome::Outcome;
pub use guard::FlushGuard;
pub use settings::{EmailConfig, PolicyConfig, SecretUrl};
pub use transport::FileDrop;
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use transport::Smtp;

// The README's Rust examples are compiled as doc tests, so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
