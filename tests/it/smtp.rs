//! End to end over SMTP, against the mock server in `support::smtp`:
//! TLS modes, login, headers, Unicode, the cookbook's batches. Failures are
//! in `faults.rs`.

#![cfg(feature = "smtp")]

use crate::support;

use std::path::Path;

use support::setup::{self, PASSWORD, USER, builder, pending_in, smtp_for};
use support::{Cmd, Fault, MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, Outcome, Smtp};
use tracing_subscriber::prelude::*;

fn run(state: &Path, smtp: Smtp, messages: &[&str]) -> Outcome {
    setup::run(state, smtp, |b| b.threshold(1, Level::WARN), messages)
}

#[test]
fn starttls_with_login_delivers_a_digest_with_the_expected_headers() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let outcome = run(&state, smtp_for(&server), &["feed failed"]);
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 1,
                emails: 1
            }
        ),
        "{outcome}"
    );

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.tls, "the message must travel under TLS");
    assert_eq!(m.auth_user.as_deref(), Some(USER));
    assert_eq!(m.mail_from, "poca@example.com");
    assert_eq!(m.rcpt_to, ["me@example.com", "zoe@example.org"]);
    assert_eq!(
        m.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    for header in ["From", "To", "Subject", "Date", "Message-ID"] {
        assert!(m.header(header).is_some(), "{header} missing");
    }
    // In the sender's domain, not the machine's bare name.
    let id = m.header("Message-ID").unwrap();
    assert!(id.trim().ends_with("@example.com>"), "{id}");
    let body = m.text_body().unwrap();
    assert!(
        body.lines()
            .any(|l| l.ends_with(" WARN it::support::setup: feed failed feed=\"Radio Café\"")),
        "{body}"
    );
    // The password only ever went over TLS.
    for line in server.transcript_lines() {
        if line.text.starts_with("AUTH") {
            assert!(line.tls, "AUTH sent before TLS: {line}");
        }
    }
    assert!(pending_in(&state).is_empty());
}

#[test]
fn implicit_tls_delivers() {
    let server = MockSmtp::start(Security::ImplicitTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&dir.path().join("s.json"), smtp_for(&server), &["a", "b"]);
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 2,
                emails: 1
            }
        ),
        "{outcome}"
    );
    assert!(server.messages()[0].tls);
}

#[test]
fn plain_relay_without_login_delivers() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&dir.path().join("s.json"), smtp_for(&server), &["a"]);
    assert!(outcome.is_sent(), "{outcome}");
    let m = &server.messages()[0];
    assert!(!m.tls);
    assert_eq!(m.auth_user, None);
}

#[test]
fn from_url_reaches_the_server() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let url = format!(
        "smtp://poca%40example.com:{}@127.0.0.1:{}?tls=required",
        PASSWORD.replace(' ', "%20"),
        server.port()
    );
    let smtp = Smtp::from_url(&url)
        .unwrap()
        .root_certificate(server.ca_pem());
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&dir.path().join("s.json"), smtp, &["a"]);
    assert!(outcome.is_sent(), "{outcome}");
    assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
}

#[test]
fn unicode_subject_and_body_arrive_as_logged() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let subject = "Café ポッドキャスト 🎧 שלום عالم — Ääniraita";
    let message = "Ääni für ポッドキャスト 📻 failed: שגיאה בחיבור (مهلة)";
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(smtp_for(&server))
        .state_file(dir.path().join("s.json"))
        .from("Pöca Café <poca@example.com>")
        .to("me@example.com")
        .subject(subject)
        .build()
        .unwrap();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(feed = "Ψηφιακό Ραδιόφωνο", "{message}");
            guard.flush()
        });
    assert!(outcome.is_sent(), "{outcome}");
    let m = &server.messages()[0];
    assert_eq!(m.subject().as_deref(), Some(subject));
    let body = m.text_body().unwrap();
    assert!(
        body.contains(&format!("{message} feed=\"Ψηφιακό Ραδιόφωνο\"")),
        "{body}"
    );
    let from = m.parsed();
    let from = from.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Pöca Café"));
}

/// Sends one digest of a failing feed (inside a span) through a layer set
/// up by `configure`, and returns the message as the server got it.
fn send_feed_failure(
    configure: impl FnOnce(tracing_email::Builder) -> tracing_email::Builder,
) -> support::Received {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = configure(builder(&dir.path().join("s.json"), smtp_for(&server)))
        .build()
        .unwrap();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("fetch", feed = "ポッドキャスト");
            let _entered = span.enter();
            tracing::warn!(
                feed = "Radio Café",
                error = "<timed out>",
                "ポッドキャスト feed failed"
            );
            guard.flush()
        });
    assert!(outcome.is_sent(), "{outcome}");
    server.messages().remove(0)
}

/// The leaf parts of a parsed message: `type/subtype` and decoded text.
fn leaf_parts(message: &mail_parser::Message<'_>) -> Vec<(String, String)> {
    use mail_parser::MimeHeaders;
    message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
        .map(|p| {
            let ct = p.content_type().expect("every part has a Content-Type");
            (
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")),
                p.text_contents().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_email_has_a_text_part_and_an_html_alternative() {
    use mail_parser::MimeHeaders;
    let m = send_feed_failure(|b| b);
    let parsed = m.parsed();
    let root = parsed.content_type().unwrap();
    // The alternatives, then the log attached for who reads the HTML.
    assert_eq!(
        (root.ctype(), root.subtype()),
        ("multipart", Some("mixed")),
        "{}",
        m.data_lossy()
    );
    let parts = leaf_parts(&parsed);
    let types: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    // Plain text first: in multipart/alternative the last part is preferred.
    assert_eq!(types, ["text/plain", "text/html", "text/plain"]);
    let (text, html) = (&parts[0].1, &parts[1].1);
    assert_eq!(&parts[2].1, text, "the attached log is the text part");
    let raw = m.data_lossy();
    assert!(
        raw.contains("Content-Disposition: attachment; filename=\"poca-log.txt\""),
        "{raw}"
    );
    assert!(
        text.contains(
            "WARN it::smtp: ポッドキャスト feed failed feed=\"Radio Café\" error=\"<timed out>\""
        ),
        "{text}"
    );
    assert!(text.contains("in fetch{feed=\"ポッドキャスト\"}"), "{text}");
    for part in [
        ">WARN</span>",
        "ポッドキャスト feed failed",
        "feed=</span>Radio Café",
        // The failure's most telling field, on its line.
        ">&lt;timed out&gt;</p>",
        "error=</span>&lt;timed out&gt;",
        "in fetch{feed=&quot;ポッドキャスト&quot;}",
    ] {
        assert!(html.contains(part), "{part} missing in {html}");
    }
    assert!(!html.contains("<timed out>"));
}

#[test]
fn html_false_sends_the_text_alone() {
    use mail_parser::MimeHeaders;
    let m = send_feed_failure(|b| b.html(false));
    let parsed = m.parsed();
    let root = parsed.content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("text", Some("plain")));
    let parts = leaf_parts(&parsed);
    assert_eq!(parts.len(), 1, "{}", m.data_lossy());
    assert!(
        parts[0]
            .1
            .contains("ポッドキャスト feed failed feed=\"Radio Café\"")
    );
    assert!(!m.data_lossy().contains("text/html"));
}

#[test]
fn cookbook_102_records_with_batch_10_make_11_emails_in_order() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = EmailLayer::builder("cookbook")
        .transport(smtp_for(&server))
        .state_file(dir.path().join("s.json"))
        .from("sender@example.com")
        .to("to@example.com")
        .subject("Test Logging email from Rust logging module (buffering)")
        .batch(10)
        .build()
        .unwrap();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for index in 0..102 {
                tracing::info!("Info index = {index}");
            }
            guard.flush()
        });
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 102,
                emails: 11
            }
        ),
        "{outcome}"
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 11);
    let mut all = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let body = m.text_body().unwrap();
        let indices: Vec<usize> = body
            .lines()
            .filter_map(|l| l.split("Info index = ").nth(1))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        assert_eq!(indices.len(), if i < 10 { 10 } else { 2 }, "email {i}");
        all.extend(indices);
    }
    assert_eq!(all, (0..102).collect::<Vec<_>>());
    assert_eq!(
        server.connections(),
        1,
        "consecutive emails share one SMTP session"
    );
}

#[test]
fn the_password_appears_nowhere_it_should_not() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    server.set_fault(Fault::Reply {
        command: Cmd::Auth,
        code: 535,
        text: "5.7.8 no".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let smtp = smtp_for(&server);
    assert!(!format!("{smtp:?}").contains(PASSWORD));
    let (layer, guard) = builder(&state, smtp).build().unwrap();
    assert!(!format!("{guard:?} {layer:?}").contains(PASSWORD));
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!("x");
            guard.flush()
        });
    assert!(outcome.is_failed());
    assert!(!format!("{outcome} {outcome:?}").contains(PASSWORD));
    let file = std::fs::read_to_string(&state).unwrap();
    assert!(!file.contains(PASSWORD));
}

#[test]
fn a_password_over_plain_text_needs_an_explicit_opt_in() {
    let server = MockSmtp::start(Security::Plain);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let plain = || {
        Smtp::plain("127.0.0.1")
            .port(server.port())
            .credentials(USER, PASSWORD)
    };
    let err = builder(&state, plain()).build().unwrap_err();
    assert_eq!(err.kind(), tracing_email::ErrorKind::Smtp);
    let text = err.to_string();
    assert!(
        text.contains("not encrypted") && text.contains("allow_insecure_auth"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));
    assert_eq!(server.connections(), 0, "build() does no network I/O");

    let outcome = run(&state, plain().allow_insecure_auth(), &["x"]);
    assert!(outcome.is_sent(), "{outcome}");
    assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
}

#[test]
fn certificates_are_verified_by_default() {
    let server = MockSmtp::start(Security::ImplicitTls);
    let dir = tempfile::tempdir().unwrap();
    // The server's own CA is not trusted unless given.
    let outcome = run(
        &dir.path().join("s.json"),
        Smtp::tls("127.0.0.1").port(server.port()),
        &["x"],
    );
    match outcome {
        Outcome::Failed { error, pending: 1 } => {
            assert!(error.to_string().contains("UnknownIssuer"), "{error}")
        }
        other => panic!("{other}"),
    }
    assert!(server.messages().is_empty());
}
