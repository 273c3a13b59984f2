//! End to end over SMTP, against the mock server in `tests/support/`:
//! TLS modes, login, headers, Unicode, the cookbook's batches, and every
//! failure followed by a run that recovers.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Cmd, Fault, MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, ErrorKind, FlushGuard, Outcome, Smtp};
use tracing_subscriber::prelude::*;

const USER: &str = "poca@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn smtp_for(server: &MockSmtp) -> Smtp {
    let smtp = match server.security() {
        Security::Plain => Smtp::plain("127.0.0.1"),
        Security::StartTls => Smtp::starttls("127.0.0.1"),
        Security::ImplicitTls => Smtp::tls("127.0.0.1"),
    };
    let smtp = smtp
        .port(server.port())
        .timeout(Duration::from_millis(1500));
    if server.security() == Security::Plain {
        smtp
    } else {
        smtp.root_certificate(server.ca_pem())
            .credentials(USER, PASSWORD)
    }
}

fn build(state: &Path, smtp: Smtp) -> (tracing_email::EmailLayer, FlushGuard) {
    EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(state)
        .from("poca <poca@example.com>")
        .to("me@example.com")
        .to("Zoë <zoe@example.org>")
        .threshold(1, Level::WARN)
        .build()
        .unwrap()
}

/// One run: logs `messages` as warnings through a fresh layer and flushes.
fn run(state: &Path, smtp: Smtp, messages: &[&str]) -> Outcome {
    let (layer, guard) = build(state, smtp);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for m in messages {
            tracing::warn!(feed = "Radio Café", "{m}");
        }
        guard.flush()
    })
}

fn pending_in(state: &Path) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    v["pending"].as_array().unwrap().len()
}

fn body_lines_ending_with(body: &str, suffixes: &[&str]) -> Vec<String> {
    body.lines()
        .filter(|l| suffixes.iter().any(|s| l.ends_with(s)))
        .map(str::to_owned)
        .collect()
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
    let body = m.text_body().unwrap();
    assert!(
        body.lines()
            .any(|l| l.contains(" WARN smtp: feed failed feed=\"Radio Café\"")),
        "{body}"
    );
    // The password only ever went over TLS.
    for line in server.transcript_lines() {
        if line.text.starts_with("AUTH") {
            assert!(line.tls, "AUTH sent before TLS: {line}");
        }
    }
    assert_eq!(pending_in(&state), 0);
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
}

/// A failure: what to inject, and words the outcome must contain.
struct Failure {
    name: &'static str,
    inject: fn(&MockSmtp) -> Smtp,
    says: &'static [&'static str],
}

fn with_fault(fault: Fault) -> impl Fn(&MockSmtp) -> Smtp {
    move |server| {
        server.set_fault(fault.clone());
        smtp_for(server)
    }
}

const FAILURES: &[Failure] = &[
    Failure {
        name: "connection refused",
        inject: |_| {
            Smtp::starttls("127.0.0.1")
                .port(support::refused_port())
                .credentials(USER, PASSWORD)
        },
        says: &["refused the connection"],
    },
    Failure {
        name: "name not found",
        inject: |_| Smtp::starttls("no-such-host.invalid").credentials(USER, PASSWORD),
        says: &["no-such-host.invalid"],
    },
    Failure {
        name: "timeout",
        inject: |s| {
            with_fault(Fault::Delay {
                each_reply: Duration::from_millis(400),
            })(s)
            .timeout(Duration::from_millis(150))
        },
        says: &["did not answer within"],
    },
    Failure {
        name: "untrusted certificate",
        inject: |s| {
            Smtp::starttls("127.0.0.1")
                .port(s.port())
                .credentials(USER, PASSWORD)
        },
        says: &["TLS", "certificate"],
    },
    Failure {
        name: "AUTH 535",
        inject: |s| {
            with_fault(Fault::Reply {
                command: Cmd::Auth,
                code: 535,
                text: "5.7.8 Authentication credentials invalid".into(),
            })(s)
        },
        says: &[
            "rejected the login",
            "535",
            "Authentication credentials invalid",
        ],
    },
    Failure {
        name: "RCPT 550",
        inject: |s| {
            with_fault(Fault::Reply {
                command: Cmd::Rcpt,
                code: 550,
                text: "5.1.1 no such user".into(),
            })(s)
        },
        says: &["refused the sender or a recipient", "550", "no such user"],
    },
    Failure {
        name: "RCPT 450",
        inject: |s| {
            with_fault(Fault::Reply {
                command: Cmd::Rcpt,
                code: 450,
                text: "4.2.1 mailbox busy".into(),
            })(s)
        },
        says: &["450", "temporary", "mailbox busy"],
    },
    Failure {
        name: "DATA 451",
        inject: |s| {
            with_fault(Fault::Reply {
                command: Cmd::Data,
                code: 451,
                text: "4.3.0 local problem".into(),
            })(s)
        },
        says: &["refused the message", "451", "local problem"],
    },
    Failure {
        name: "end of DATA 554",
        inject: |s| {
            with_fault(Fault::Reply {
                command: Cmd::DataEnd,
                code: 554,
                text: "5.7.1 looks like spam".into(),
            })(s)
        },
        says: &["refused the message", "554", "looks like spam"],
    },
    Failure {
        name: "connection dropped after DATA",
        inject: |s| with_fault(Fault::DropAfterData)(s),
        says: &["closed the connection"],
    },
];

#[test]
fn every_failure_keeps_the_records_and_the_next_run_delivers_them_in_order() {
    for failure in FAILURES {
        let server = MockSmtp::start(Security::StartTls);
        server.require_auth(USER, PASSWORD);
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");

        let outcome = run(&state, (failure.inject)(&server), &["first", "second"]);
        match &outcome {
            Outcome::Failed { error, pending: 2 } => {
                assert_eq!(error.kind(), ErrorKind::Smtp, "{}: {error}", failure.name);
                let text = error.to_string();
                for word in failure.says {
                    assert!(
                        text.contains(word),
                        "{}: {text:?} lacks {word:?}",
                        failure.name
                    );
                }
                assert!(!text.contains(PASSWORD), "{}", failure.name);
            }
            other => panic!("{}: expected a failure, got {other}", failure.name),
        }
        assert_eq!(pending_in(&state), 2, "{}", failure.name);
        assert!(server.messages().is_empty(), "{}", failure.name);

        server.clear_faults();
        let outcome = run(&state, smtp_for(&server), &["third"]);
        assert!(
            matches!(
                outcome,
                Outcome::Sent {
                    records: 3,
                    emails: 1
                }
            ),
            "{}: {outcome}",
            failure.name
        );
        let messages = server.messages();
        assert_eq!(messages.len(), 1, "{}", failure.name);
        let body = messages[0].text_body().unwrap();
        let lines = body_lines_ending_with(&body, &["feed=\"Radio Café\""]);
        let order: Vec<&str> = lines
            .iter()
            .map(|l| l.split(": ").nth(1).unwrap().split(' ').next().unwrap())
            .collect();
        assert_eq!(order, ["first", "second", "third"], "{}", failure.name);
        assert_eq!(pending_in(&state), 0, "{}", failure.name);
    }
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
    let (layer, guard) = build(&state, smtp);
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
