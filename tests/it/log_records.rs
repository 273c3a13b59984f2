//! Records from the `log` crate, through `tracing-log`'s bridge, read like
//! native events: the real target, module, file and line, no `log.*`
//! fields, filtered by a per-layer `Targets` on the real target, and told
//! apart by their own call site across runs.
//!
//! The bridge (`LogTracer`) is a global logger, set once per process: each
//! test installs it through [`bridge`] (at most once, whoever comes first)
//! and sends its records to a subscriber of its own with `with_default`,
//! which the bridge dispatches to.

#![cfg(feature = "log")]

use std::path::Path;
use std::sync::Once;

use tracing::Level;
use tracing_email::{EmailLayer, Outcome, inspect::StateFile};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::support::recorder::Recorder;

/// Installs the `log` bridge for this process, once.
fn bridge() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_log::LogTracer::init().unwrap();
    });
}

/// The `log` call site that fails a feed (one line: one call site).
fn fetch_failed(feed: &str) {
    log::warn!(target: "upstream::http", "fetch of {} failed: timeout", feed);
}

/// Another `log` call site, same target and message.
fn fetch_failed_elsewhere(feed: &str) {
    log::warn!(target: "upstream::http", "fetch of {} failed: timeout", feed);
}

/// One run that sends at every warning (to `recorder`) and keeps the
/// history in `state`; `log` is called inside it.
fn run(state: &Path, recorder: &Recorder, consecutive: Option<u64>, log: impl FnOnce()) -> Outcome {
    let builder = EmailLayer::builder("poca")
        .transport(recorder.clone())
        .state_file(state)
        .from("poca@example.com")
        .to("me@example.com");
    let builder = match consecutive {
        Some(runs) => builder.consecutive_runs(runs),
        None => builder.threshold(1, Level::WARN),
    };
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        log();
        guard.flush()
    })
}

#[test]
fn a_log_record_reaches_the_digest_with_its_real_target_and_no_bridge_fields() {
    bridge();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let outcome = run(&dir.path().join("state.json"), &recorder, None, || {
        fetch_failed("Radio Café")
    });
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome}");

    let sent = recorder.sent.lock().unwrap();
    let email = &sent[0];
    let line = email
        .text()
        .lines()
        .find(|l| l.contains("WARN upstream::http"))
        .unwrap_or_else(|| panic!("no record in:\n{}", email.text()));
    assert!(
        line.ends_with("WARN upstream::http: fetch of Radio Café failed: timeout"),
        "{line}"
    );
    assert!(!email.text().contains("log."), "{}", email.text());
    assert!(!email.text().contains("WARN log:"), "{}", email.text());

    let record = &email.records()[0];
    assert_eq!(record.target, "upstream::http");
    assert_eq!(record.level, Level::WARN);
    assert!(record.fields.is_empty(), "{:?}", record.fields);
    assert_eq!(
        record.module_path.as_deref(),
        Some(module_path!()),
        "the module the `log` call is in"
    );
    assert_eq!(record.file.as_deref(), Some(file!()));
    assert!(record.line.is_some_and(|l| l > 0));
}

#[test]
fn a_per_layer_targets_filter_sees_the_real_target_of_a_log_record() {
    bridge();
    for (filter, kept) in [
        (Targets::new().with_target("upstream", Level::WARN), true),
        (
            Targets::new().with_target("upstream::http", Level::ERROR),
            false,
        ),
        (Targets::new().with_target("log", Level::TRACE), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let (layer, guard) = EmailLayer::builder("poca")
            .transport(recorder.clone())
            .state_file(dir.path().join("state.json"))
            .from("poca@example.com")
            .to("me@example.com")
            .threshold(1, Level::WARN)
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter.clone()));
        let outcome = tracing::subscriber::with_default(subscriber, || {
            fetch_failed("Radio Café");
            guard.flush()
        });
        let records: Vec<_> = recorder.emails().concat();
        assert_eq!(records.len(), usize::from(kept), "{filter}: {outcome}");
        if kept {
            assert_eq!(records[0].target, "upstream::http");
        }
    }
}

#[test]
fn log_call_sites_are_told_apart_and_the_same_one_builds_a_streak() {
    bridge();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let recorder = Recorder::default();
    // Two call sites, same target and message: two failures, one run each.
    let outcome = run(&state, &recorder, Some(2), || {
        fetch_failed("Radio Café");
        fetch_failed_elsewhere("Radio Café");
    });
    assert!(matches!(outcome, Outcome::Held { .. }), "{outcome}");
    let s = StateFile::open(&state).snapshot().unwrap();
    assert_eq!(s.failures.len(), 2, "{:?}", s.failures);
    assert!(s.failures.iter().all(|f| f.runs == 1), "{:?}", s.failures);

    // The first call site again in the next run: a streak of 2 runs, which
    // `consecutive_runs = 2` sends; the other call site's streak is broken.
    let outcome = run(&state, &recorder, Some(2), || fetch_failed("Radio Café"));
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome}");
    let s = StateFile::open(&state).snapshot().unwrap();
    let runs: Vec<u64> = s.failures.iter().map(|f| f.runs).collect();
    assert!(runs.contains(&2), "{:?}", s.failures);
    let text = recorder.sent.lock().unwrap()[0].text().to_owned();
    assert!(text.contains("2 runs"), "{text}");
}
