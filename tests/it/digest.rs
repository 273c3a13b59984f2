//! What a digest says about its own delivery and whereabouts: a digest that
//! an earlier send could not deliver says when and why, and the footer names
//! the state file by its absolute path, whatever path the program gave.

use crate::support;

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::recorder::Recorder;
use tracing::Level;
use tracing_email::{EmailLayer, clock::ManualClock};
use tracing_subscriber::prelude::*;

/// One run that logs a failed feed and flushes, at the clock's time.
fn run(state: &Path, recorder: &Recorder, clock: &ManualClock) -> tracing_email::Outcome {
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(recorder.clone())
        .state_file(state)
        .from("poca <robot@example.com>")
        .to("me@example.com")
        .host("web-3")
        .clock(clock.clone())
        .checkpoint_interval(None)
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "feed failed");
    });
    guard.flush()
}

#[test]
fn a_digest_delayed_by_a_failed_send_says_when_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let recorder = Recorder::default();
    // 2026-11-21 03:00 UTC.
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_230_000));
    recorder.fail_with(Some("421 the server is busy"));
    assert!(run(&state, &recorder, &clock).is_failed());
    recorder.fail_with(None);
    clock.advance(Duration::from_secs(3600));
    assert!(run(&state, &recorder, &clock).is_sent());
    let late = "This digest is late: sending it failed at 2026-11-21 03:00 (could not send the \
                digest: 421 the server is busy); its records were kept and follow.";
    let sent = recorder.sent.lock().unwrap().clone();
    let lines: Vec<&str> = sent[0].text().lines().collect();
    assert_eq!(
        lines[..3],
        [
            "WARN on web-3 in each of the last 2 runs, since 03:00: feed failed",
            "poca on web-3: 2 log records (2 WARN) from 2026-11-21 03:00:00 to 2026-11-21 \
             04:00:00, times in UTC.",
            late
        ]
    );
    assert!(
        sent[0].html().unwrap().contains(late),
        "{:?}",
        sent[0].html()
    );
    // Once delivered, the next digest is not late.
    clock.advance(Duration::from_secs(3600));
    assert!(run(&state, &recorder, &clock).is_sent());
    let next = recorder.sent.lock().unwrap()[1].clone();
    assert!(!next.text().contains("late"), "{}", next.text());
}

#[test]
fn the_footer_names_the_state_file_by_its_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("state.json");
    // The same file, by a path relative to the working folder.
    let cwd = std::env::current_dir().unwrap();
    let up = cwd
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut relative: PathBuf = std::iter::repeat_n("..", up).collect();
    relative.push(absolute.strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let recorder = Recorder::default();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_230_000));
    assert!(run(&relative, &recorder, &clock).is_sent());
    let email = recorder.sent.lock().unwrap()[0].clone();
    let shown = cwd.join(&relative);
    let footer = format!("Records wait in {} until", shown.display());
    assert!(shown.is_absolute());
    assert!(email.text().contains(&footer), "{}", email.text());
    assert!(email.html().unwrap().contains(&footer));
}
