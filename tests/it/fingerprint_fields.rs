//! `fingerprint_fields` that no record carries (`["URL"]` for `url`) would
//! merge different failures into one streak without a word: the flush says
//! so on stderr, once per process, and the digest says so in its footer. In
//! child processes, because the line goes to the process's stderr.

use crate::support;

use std::path::Path;

use support::child::{act_as_child_if_asked, command};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop};
use tracing_subscriber::prelude::*;

/// A run with `fingerprint_fields = [args[0]]` that flushes twice, each time
/// after two warnings with a `url` field (so each flush sends a digest).
/// `args[1]` is a folder.
fn run(args: Vec<String>) -> u8 {
    let dir = Path::new(&args[1]);
    let (layer, guard) = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(dir.join("outbox")))
        .state_file(dir.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .fingerprint_fields([args[0].as_str()])
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for round in 0..2 {
            tracing::warn!(
                url = "https://example.com/a.json",
                status = 500,
                round,
                "fetch failed"
            );
            tracing::warn!(
                url = "https://example.com/b.json",
                status = 404,
                round,
                "fetch failed"
            );
            tracing::info!(elapsed_ms = 12, "fetched the rest");
            let outcome = guard.flush();
            assert!(outcome.is_sent(), "{outcome}");
        }
    });
    0
}

/// Runs the child; returns its stderr and the text parts of the emails it
/// left in the outbox.
fn child(test: &str, field: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let args = [field.to_owned(), dir.path().to_str().unwrap().to_owned()];
    let output = command(test, &args).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let emails = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| {
            let eml = std::fs::read(e.unwrap().path()).unwrap();
            mail_parser::MessageParser::default()
                .parse(&eml)
                .unwrap()
                .body_text(0)
                .unwrap()
                .into_owned()
        })
        .collect();
    (String::from_utf8(output.stderr).unwrap(), emails)
}

#[test]
fn fields_that_no_record_has_are_named_once_on_stderr_and_in_the_footer() {
    act_as_child_if_asked(run);
    let (stderr, emails) = child(
        "fields_that_no_record_has_are_named_once_on_stderr_and_in_the_footer",
        "URL",
    );
    let expected = "tracing-email: fingerprint_fields [\"URL\"]: no record at WARN or above has \
                    any of them; they carry: url, status, round (did you mean \"url\"?).";
    assert_eq!(stderr.matches(expected).count(), 1, "{stderr}");
    assert_eq!(emails.len(), 2);
    for text in &emails {
        let footer = &text[text.find("Sent by tracing-email").expect("a footer")..];
        assert!(
            footer.contains("Note: fingerprint_fields [\"URL\"]: no record at WARN or above"),
            "{text}"
        );
    }
}

#[test]
fn fields_that_records_have_are_not_mentioned() {
    act_as_child_if_asked(run);
    let (stderr, emails) = child("fields_that_records_have_are_not_mentioned", "url");
    assert!(!stderr.contains("fingerprint_fields ["), "{stderr}");
    assert_eq!(emails.len(), 2);
    for text in &emails {
        assert!(!text.contains("fingerprint_fields ["), "{text}");
        assert!(text.contains("Sent by tracing-email"), "{text}");
    }
}

/// `#[instrument] fn fetch(feed: &str)`: the feed is a span field, and
/// fingerprint fields are looked up there too (after the event's own).
#[tracing::instrument]
fn fetch(feed: &str) {
    tracing::warn!(error = "timed out", "feed failed");
}

/// Three runs over one state file with `consecutive_runs(3)`, `feeds[i]`
/// failing in run i through `fetch`; returns the emails sent.
fn instrumented_runs(feeds: [&str; 3]) -> Vec<tracing_email::transport::Email> {
    let dir = tempfile::tempdir().unwrap();
    let recorder = support::recorder::Recorder::default();
    let clock = tracing_email::clock::ManualClock::new(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
    );
    for feed in feeds {
        clock.advance(std::time::Duration::from_secs(3600));
        let (layer, guard) = EmailLayer::builder("poca")
            .transport(recorder.clone())
            .state_file(dir.path().join("state.json"))
            .from("robot@example.com")
            .to("me@example.com")
            .clock(clock.clone())
            .checkpoint_interval(None)
            .consecutive_runs(3)
            .fingerprint_fields(["feed"])
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || fetch(feed));
        guard.flush();
    }
    recorder.sent.lock().unwrap().clone()
}

#[test]
fn instrumented_failures_are_told_apart_by_their_span_field() {
    // A different feed in each run: three failures of one run each.
    assert!(instrumented_runs(["Radio Café", "Ääniraita", "ポッドキャスト"]).is_empty());
    // The same feed in each run: one email, naming it.
    let sent = instrumented_runs(["Radio Café"; 3]);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].subject(),
        r#"[poca] feed "Radio Café" failing for 3 runs"#
    );
    assert!(
        !sent[0].text().contains("Note: fingerprint_fields"),
        "{}",
        sent[0].text()
    );
}
