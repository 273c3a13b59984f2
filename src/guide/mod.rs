//! The guide: the reference, a page per topic, beside the API. The pages are
//! the Markdown files of `docs/guide/`, and their Rust examples are compiled
//! as doc tests.
//!
//! In reading order: when an email goes out, [`policies`]; what it says,
//! [`digest`]; what is captured and the guard, [`capture`]; a long-running
//! program, [`services`]; many machines, [`alertmanager`]; the mail server,
//! [`smtp`]; settings from a file or the environment, [`configuration`];
//! the files on disk, [`state_file`]; what is promised, [`guarantees`]; the
//! command-line tool, [`command`]; no email came, [`troubleshooting`]; then
//! [`performance`], [`examples`] and [`compared`].

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
