//! The `inspect` example (a state file looked into from code) and the
//! library's `snapshot_with` and `FlushGuard::snapshot`. The `tracing-email`
//! command's tests are in `cli/tests/`.

#[allow(dead_code)] // its main
#[path = "../../examples/inspect.rs"]
mod inspect;

use std::path::Path;
use std::time::Duration;

use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, Outcome, PolicyConfig, StateFile, Verdict, WaitingFor};
use tracing_subscriber::prelude::*;

#[test]
fn the_example_prints_the_table_and_what_the_threshold_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(FileDrop::new(dir.path().join("out")))
        .state_file(&state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(10, Level::WARN)
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for m in ["one", "two", "three"] {
            tracing::warn!("{m}");
        }
    });
    assert!(matches!(guard.flush(), Outcome::Held { .. }));
    let text = inspect::describe(state.to_str().unwrap(), 5).unwrap();
    assert!(text.contains("pending      3 records (3 WARN)"), "{text}");
    assert!(
        text.contains("policy       holds 3 pending records: 3 of the 5 warnings or errors needed"),
        "{text}"
    );
    assert!(
        text.ends_with("2 more warnings or errors to go\n"),
        "{text}"
    );
    assert!(
        inspect::describe(dir.path().to_str().unwrap(), 5).is_err(),
        "a folder"
    );
}

/// One run of a program that follows `feed` across runs: builds the layer
/// (a new run), logs one warning about each feed, drops the guard.
fn streak_run(state: &Path, outbox: &Path, feeds: &[&str]) -> Outcome {
    let (layer, guard) = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(outbox))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .consecutive_runs(3)
        .repeat_after(Duration::from_secs(24 * 3600))
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "fetch failed");
        }
        guard.flush()
    })
}

/// Four runs in which "b.json" fails: the third reports it, the fourth is
/// held because it is quiet.
fn quiet_streak(dir: &Path) -> std::path::PathBuf {
    let state = dir.join("state.json");
    let outbox = dir.join("out");
    let outcomes: Vec<Outcome> = (0..4)
        .map(|_| streak_run(&state, &outbox, &["b.json"]))
        .collect();
    assert!(outcomes[2].is_sent(), "{}", outcomes[2]);
    let held = outcomes[3].to_string();
    assert!(
        held.starts_with(r#"held 1 record for a later run: feed "b.json" reported at "#)
            && held.ends_with("(repeat_after)"),
        "{held}"
    );
    state
}

#[test]
fn snapshots_with_a_policy_say_what_it_waits_for_and_what_is_not_flushed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let state = quiet_streak(dir.path());
    let policy: PolicyConfig =
        toml::from_str("consecutive_runs = 3\nrepeat_after = 86400\nfingerprint_fields = \"feed\"")
            .unwrap();
    let s = StateFile::open(&state).snapshot_with(&policy).unwrap();
    let b = &s.failures[0];
    assert_eq!((b.label.as_str(), b.runs), (r#"feed "b.json""#, 4));
    assert!(b.quiet && b.quiet_until > b.reported);
    assert!(
        matches!(
            &s.verdict,
            Some(Verdict::Hold {
                waiting_for: WaitingFor::Quiet { label, until: Some(_), .. }
            }) if label == r#"feed "b.json""#
        ),
        "{s}"
    );

    // The guard's snapshot: this program's policy, and the records it
    // captured since its last flush.
    let (layer, guard) = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(dir.path().join("out")))
        .state_file(dir.path().join("other.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(5, Level::WARN)
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("one");
        tracing::warn!("two");
        let held = guard.flush();
        assert_eq!(
            held.to_string(),
            "held 2 records for a later run: 2 of the 5 warnings or errors needed"
        );
        tracing::warn!("three");
    });
    let snapshot = guard.snapshot().unwrap();
    assert_eq!((snapshot.pending.len(), snapshot.unflushed), (2, 1));
    let text = snapshot.to_string();
    assert!(text.contains("pending      2 records (2 WARN)"), "{text}");
    assert!(
        text.contains("unflushed    1 record captured by this process"),
        "{text}"
    );
    assert!(
        text.contains("policy       holds 2 pending records: 2 of the 5 warnings or errors needed"),
        "{text}"
    );
}
