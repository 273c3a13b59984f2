//! The integration tests, in one test binary so that `cargo test` compiles
//! and links the crate's tests once: each file here is a module, named for
//! what it tests. `support` holds what they share: the mock SMTP server
//! (`support::smtp`), a recording transport, the SMTP setup and the child
//! process runner. The files that need the `smtp` feature say so with
//! `#![cfg(feature = "smtp")]` at their top, so `cargo test
//! --no-default-features` builds and runs the rest.
//!
//! A test that needs a process of its own (an exit, an abort, a global
//! subscriber, a panic hook, the environment) runs itself again as a child
//! with `support::child::command`, by its name in this binary
//! (`module::test`).

// The tests of an example hold the example as a module of the same name
// (`cookbook::cookbook`).
#![allow(clippy::module_inception)]

mod support;

mod advice;
mod alertmanager;
mod bounds;
mod browser;
mod capture;
mod clock_ahead;
mod concurrency;
mod config;
mod cookbook;
mod crash;
mod digest;
mod docs;
mod dropped_guard;
mod faults;
mod fingerprint_fields;
mod inspect;
mod journal;
mod layout;
mod log_records;
mod login;
mod mock_smtp;
mod panics;
mod podcast;
mod quickstart;
mod recovery;
mod redaction;
mod secrets;
mod service;
mod simulate;
mod smtp;
mod state_file;
mod stderr;
mod tokio;
mod transports;
