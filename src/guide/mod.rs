//! The guide: the reference, a page per topic, beside the API. Read
//! [`policies`] first (when an email goes out), then the page of whatever you
//! set up next. The pages are Markdown files in `docs/guide/`, and their Rust
//! examples are compiled as doc tests.
//!
//! | page | what it answers |
//! |------|-----------------|
//! | [`policies`] | what a flush does, which [`Outcome`](crate::Outcome) you get, the rules and how they combine, failures followed across runs, a month of hourly runs simulated |
//! | [`digest`] | what the email says: summary, strip of runs, detail, HTML, subject and its template |
//! | [`capture`] | what is captured: the layer's filter, the guard's lifetime, records from the `log` crate |
//! | [`services`] | a long-running program: [`flush_every`](crate::Builder::flush_every), systemd |
//! | [`alertmanager`] | many machines: one alert per failure through Prometheus Alertmanager |
//! | [`smtp`] | SMTP connections, TLS, passwords, OAuth2 and password commands, other transports |
//! | [`configuration`] | every configuration key and environment variable |
//! | [`state_file`] | the snapshot and journal on disk, what a crash can leave |
//! | [`guarantees`] | what is promised and what is not; limits, timings and bounds |
//! | [`command`] | the `tracing-email` command: status, show, send, clear, test |
//! | [`troubleshooting`] | why didn't I get an email? |
//! | [`performance`] | what an event, a flush and a send cost, measured |
//! | [`examples`] | the programs in `examples/` |
//! | [`compared`] | other email handlers (Python, logback, Monolog, Serilog) |

#[doc = include_str!("../../docs/guide/policies.md")]
pub mod policies {}
#[doc = include_str!("../../docs/guide/digest.md")]
pub mod digest {}
#[doc = include_str!("../../docs/guide/capture.md")]
pub mod capture {}
#[doc = include_str!("../../docs/guide/services.md")]
pub mod services {}
#[doc = include_str!("../../docs/guide/alertmanager.md")]
pub mod alertmanager {}
#[doc = include_str!("../../docs/guide/smtp.md")]
pub mod smtp {}
#[doc = include_str!("../../docs/guide/configuration.md")]
pub mod configuration {}
#[doc = include_str!("../../docs/guide/state_file.md")]
pub mod state_file {}
#[doc = include_str!("../../docs/guide/guarantees.md")]
pub mod guarantees {}
#[doc = include_str!("../../docs/guide/command.md")]
pub mod command {}
#[doc = include_str!("../../docs/guide/troubleshooting.md")]
pub mod troubleshooting {}
#[doc = include_str!("../../docs/guide/performance.md")]
pub mod performance {}
#[doc = include_str!("../../docs/guide/examples.md")]
pub mod examples {}
#[doc = include_str!("../../docs/guide/compared.md")]
pub mod compared {}
