//! The `inspect` example (a state file looked into from code) and the
//! library's `snapshot_with` and `FlushGuard::snapshot`. The `tracing-email`
//! command's tests are in `cli/tests/`.

#[allow(dead_code)] // its main
#[path = "../../examples/inspect.rs"]
mod inspect;

use std::path::Path;
use std::time::Duration;

use tracing::Level;
use tracing_email::{
    EmailLayer, FileDrop, Outcome, PolicyConfig, inspect::StateFile, inspect::Verdict,
    inspect::WaitingFor,
};
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

/// One run of a program whose only destination is Alertmanager at `url`:
/// a warning about each of `feeds`, then the guard's flush.
#[cfg(feature = "alertmanager")]
fn alerting_run(state: &Path, url: &str, feeds: &[&str]) -> Outcome {
    let (layer, guard) = EmailLayer::builder("poca")
        .state_file(state)
        .host("node-1")
        .immediately_at(Level::WARN)
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .send_deadline(Duration::from_secs(5))
        .alerts(
            tracing_email::Alertmanager::new([url])
                .label("team", "media")
                .bearer_token("tok-SECRET-123")
                .timeout(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "feed failed");
        }
        guard.flush()
    })
}

#[cfg(feature = "alertmanager")]
#[test]
fn a_snapshot_shows_the_alerts_alertmanager_holds_and_the_last_posts_answer() {
    use crate::support::fake_alertmanager::FakeAlertmanager;
    let am = FakeAlertmanager::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let snapshot = || StateFile::open(&state).snapshot().unwrap();

    // Two failures posted and accepted: both firing, with their labels.
    assert!(alerting_run(&state, &am.url(), &["A", "B"]).is_alerted());
    let s = snapshot();
    let post = s.last_alert_post.clone().expect("the post is kept");
    assert_eq!(
        (post.firing, post.resolved, post.accepted, post.of),
        (2, 0, 1, 1)
    );
    assert!(post.is_accepted() && post.error.is_none());
    let failures: Vec<&str> = s.alerts.iter().map(|a| a.failure.as_str()).collect();
    assert_eq!(failures, [r#"feed "A""#, r#"feed "B""#]);
    let a = &s.alerts[0];
    assert!(a.is_firing() && a.severity == "warning");
    assert_eq!(a.last_accepted, Some(post.at));
    assert!(a.since <= post.at);
    let labels: Vec<(&str, &str)> = a
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "poca"),
            ("failure", r#"feed "A""#),
            ("instance", "node-1"),
            ("severity", "warning"),
            ("team", "media")
        ]
    );
    let text = s.to_string();
    assert!(
        text.contains("alerts       Alertmanager: 2 alerts firing\n"),
        "{text}"
    );
    assert!(
        text.contains(r#"feed "A" (warning): firing since "#)
            && text.contains(r#"alertname="poca", instance="node-1", team="media""#),
        "{text}"
    );
    assert!(
        text.contains("last post: ")
            && text.contains("accepted by 1 of 1 Alertmanager (2 firing, 0 resolved)"),
        "{text}"
    );

    // B is over but Alertmanager refuses the post, echoing the token: B is
    // resolved but still firing there, A keeps its last accepted post, and
    // the answer is kept without the token.
    am.answer(401, "bad token tok-SECRET-123");
    assert!(alerting_run(&state, &am.url(), &["A"]).is_failed());
    let s = snapshot();
    let failed = s.last_alert_post.clone().unwrap();
    assert!(!failed.is_accepted() && failed.at > post.at);
    let error = failed.error.clone().unwrap();
    assert!(
        error.contains(r#"HTTP 401, replying "bad token ***""#),
        "{error}"
    );
    assert!(!format!("{s:?}{s}").contains("SECRET"), "{s}");
    assert!(!std::fs::read_to_string(&state).unwrap().contains("SECRET"));
    let (a, b) = (&s.alerts[0], &s.alerts[1]);
    assert!(a.is_firing() && a.last_accepted == Some(post.at));
    assert!(!b.is_firing() && b.resolved == Some(failed.at));
    let text = s.to_string();
    assert!(
        text.contains("Alertmanager: 1 alert firing, 1 resolution not accepted yet"),
        "{text}"
    );
    assert!(
        text.contains("not accepted (1 firing, 1 resolved): "),
        "{text}"
    );

    // Accepted again: B's resolution leaves, A is re-posted.
    am.answer(200, "");
    assert!(alerting_run(&state, &am.url(), &["A"]).is_alerted());
    let s = snapshot();
    let failures: Vec<&str> = s.alerts.iter().map(|a| a.failure.as_str()).collect();
    assert_eq!(failures, [r#"feed "A""#]);
    let last = s.last_alert_post.clone().unwrap();
    assert_eq!((last.firing, last.resolved, last.accepted), (1, 1, 1));
    assert_eq!(s.alerts[0].last_accepted, Some(last.at));

    // A run without A resolves it: no alert is shown firing any more.
    assert!(alerting_run(&state, &am.url(), &[]).is_alerted());
    let s = snapshot();
    assert!(s.alerts.is_empty());
    let text = s.to_string();
    assert!(
        text.contains("alerts       Alertmanager: none firing\n"),
        "{text}"
    );
    assert!(
        text.contains("accepted by 1 of 1 Alertmanager (0 firing, 1 resolved)"),
        "{text}"
    );
    assert_eq!(am.requests(), 4);
}

#[test]
fn a_program_without_alertmanager_shows_no_alert_rows() {
    let dir = tempfile::tempdir().unwrap();
    let state = quiet_streak(dir.path());
    let s = StateFile::open(&state).snapshot().unwrap();
    assert!(s.alerts.is_empty() && s.last_alert_post.is_none());
    assert!(!s.to_string().contains("alerts "), "{s}");
}
