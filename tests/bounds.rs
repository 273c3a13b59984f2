//! Bounds: how many records are kept, how big one record may be, how big
//! one email may be.

#![cfg(feature = "smtp")]

mod support;

use std::time::Duration;

use support::recorder::Recorder;
use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, Outcome};
use tracing_subscriber::prelude::*;

fn state_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn beyond_max_pending_the_oldest_are_dropped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let recorder = Recorder::default();
    let run = |first: usize, count: usize, send: bool| {
        let (layer, guard) = EmailLayer::builder("bounds")
            .transport(recorder.clone())
            .state_file(&state)
            .from("robot@example.com")
            .to("me@example.com")
            .max_pending(5)
            .threshold(if send { 1 } else { 100 }, Level::WARN)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for n in first..first + count {
                tracing::warn!(n, "record");
            }
            guard.flush()
        })
    };
    let held = run(0, 4, false);
    assert!(matches!(held, Outcome::Held { pending: 4, .. }), "{held}");
    let held = run(4, 4, false);
    assert!(matches!(held, Outcome::Held { pending: 5, .. }), "{held}");
    let v = state_json(&state);
    assert_eq!(v["dropped"], 3);
    assert_eq!(v["pending"].as_array().unwrap().len(), 5);

    // Within one run the buffer holds at most max_pending too.
    let sent = run(8, 9, true);
    assert!(
        matches!(
            sent,
            Outcome::Sent {
                records: 5,
                emails: 1
            }
        ),
        "{sent}"
    );
    let email = recorder.sent.lock().unwrap()[0].clone();
    let kept: Vec<i64> = email
        .records()
        .iter()
        .map(|r| r.fields.get("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(kept, [12, 13, 14, 15, 16], "the newest are kept");
    assert!(
        email.text().contains("12 older records were dropped"),
        "{}",
        email.text()
    );
    assert_eq!(
        state_json(&state)["dropped"],
        0,
        "reported once, then reset"
    );
}

#[test]
fn one_record_is_capped_with_a_visible_marker() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("bounds")
        .transport(recorder.clone())
        .state_file(dir.path().join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .build()
        .unwrap();
    let huge = "é".repeat(20_000); // 40 000 bytes
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(body = huge.as_str(), small = 1, "{huge}");
    });
    assert!(guard.flush().is_sent());
    let records = recorder.emails().concat();
    let r = &records[0];
    assert!(r.message.len() <= 16 * 1024, "{}", r.message.len());
    // A formatted message comes piece by piece and stops at the bound.
    assert!(
        r.message.ends_with("…[cut: at least 40000 bytes]"),
        "{}",
        &r.message[r.message.len() - 60..]
    );
    // The message left room for the fields after it: the long one is cut
    // (a `&str`, so its length is known), the small one kept whole.
    let body = r.fields.get("body").unwrap().as_str().unwrap();
    assert!(body.starts_with('é'), "{body}");
    assert!(body.ends_with("…[cut: 40000 bytes in all]"), "{body}");
    assert_eq!(r.fields.get("small"), Some(&serde_json::json!(1)));
    let json = serde_json::to_string(r).unwrap();
    assert!(json.len() <= 16 * 1024 + 512, "{}", json.len());
}

#[test]
fn a_digest_over_the_size_limit_is_split_into_numbered_complete_emails() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp_for(&server))
        .subject("POCA log")
        .max_email_bytes(8 * 1024)
        .build()
        .unwrap();
    let filler = "x".repeat(200);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..100 {
            tracing::warn!(n, filler = filler.as_str(), "feed failed");
        }
    });
    let outcome = guard.flush();
    let Outcome::Sent {
        records: 100,
        emails,
    } = outcome
    else {
        panic!("{outcome}")
    };
    assert!(emails >= 3, "{emails} emails");
    let messages = server.wait_for_messages(emails, Duration::from_secs(5));
    let mut seen = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.subject().unwrap(),
            format!("POCA log (part {} of {emails})", i + 1)
        );
        // Both parts (text and HTML) count toward the limit; headers,
        // summary and footer add a few KiB.
        assert!(
            m.data.len() <= 8 * 1024 + 3 * 1024,
            "part {i} is a {}-byte message",
            m.data.len()
        );
        let body = m.text_body().unwrap();
        assert!(
            body.len() <= 8 * 1024 + 1024,
            "part {i} is {} bytes",
            body.len()
        );
        assert!(
            body.contains("Sent by tracing-email"),
            "part {i} is complete"
        );
        seen.extend(
            body.lines()
                .filter_map(|l| l.split(" n=").nth(1))
                .map(|n| n.split(' ').next().unwrap().parse::<usize>().unwrap()),
        );
    }
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}
