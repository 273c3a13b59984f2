//! Every SMTP fault under every policy: the outcome names the cause in
//! words, every record is kept, and the next run delivers them all, in order.
//! Also the one overall deadline on a send.

#![cfg(feature = "smtp")]

use crate::support;

use std::time::{Duration, Instant};

use support::setup::{PASSWORD, USER, pending_in, run, smtp_for, warned};
use support::{Cmd, Fault, MockSmtp, Security};
use tracing::Level;
use tracing_email::{Builder, ErrorKind, Outcome, Smtp};

/// A failure: how to set it up, and words the outcome must contain.
struct Failure {
    name: &'static str,
    inject: fn(&MockSmtp) -> Smtp,
    says: &'static [&'static str],
}

fn reply(server: &MockSmtp, command: Cmd, code: u16, text: &str) -> Smtp {
    server.set_fault(Fault::Reply {
        command,
        code,
        text: text.into(),
    });
    smtp_for(server)
}

const FAILURES: &[Failure] = &[
    Failure {
        name: "connection refused",
        inject: |_| {
            Smtp::starttls("127.0.0.1")
                .port(support::refused_port())
                .credentials(USER, PASSWORD)
        },
        says: &["refused the connection", "is it running"],
    },
    Failure {
        name: "name not found",
        inject: |_| Smtp::starttls("no-such-host.invalid").credentials(USER, PASSWORD),
        says: &["\"no-such-host.invalid\" could not be resolved"],
    },
    Failure {
        name: "timeout",
        inject: |s| {
            s.set_fault(Fault::Delay {
                each_reply: Duration::from_millis(400),
            });
            smtp_for(s).timeout(Duration::from_millis(150))
        },
        says: &["did not answer within 150ms"],
    },
    Failure {
        name: "untrusted certificate",
        inject: |s| {
            Smtp::starttls("127.0.0.1")
                .port(s.port())
                .credentials(USER, PASSWORD)
        },
        says: &["TLS connection", "certificate", "root_certificate"],
    },
    Failure {
        name: "AUTH 535",
        inject: |s| {
            reply(
                s,
                Cmd::Auth,
                535,
                "5.7.8 Authentication credentials invalid",
            )
        },
        says: &[
            "the server rejected the login (535, permanent)",
            "Authentication credentials invalid",
        ],
    },
    Failure {
        name: "RCPT 550",
        inject: |s| reply(s, Cmd::Rcpt, 550, "5.1.1 no such user"),
        says: &[
            "refused the sender or a recipient (550, permanent)",
            "no such user",
        ],
    },
    Failure {
        name: "RCPT 450",
        inject: |s| reply(s, Cmd::Rcpt, 450, "4.2.1 mailbox busy"),
        says: &["(450, temporary)", "mailbox busy"],
    },
    Failure {
        name: "DATA 451",
        inject: |s| reply(s, Cmd::Data, 451, "4.3.0 local problem"),
        says: &["refused the message (451, temporary)", "local problem"],
    },
    Failure {
        name: "end of DATA 554",
        inject: |s| reply(s, Cmd::DataEnd, 554, "5.7.1 looks like spam"),
        says: &["refused the message (554, permanent)", "looks like spam"],
    },
    Failure {
        name: "connection dropped after DATA",
        inject: |s| {
            s.set_fault(Fault::DropAfterData);
            smtp_for(s)
        },
        says: &["closed the connection"],
    },
];

type Configure = fn(Builder) -> Builder;

const POLICIES: &[(&str, Configure)] = &[
    ("threshold", |b| b.threshold(2, Level::WARN)),
    ("batch", |b| b.batch(2)),
    ("immediately_at", |b| b.immediately_at(Level::WARN)),
];

#[test]
fn every_fault_under_every_policy_keeps_the_records_for_the_next_run() {
    for (policy, configure) in POLICIES {
        for failure in FAILURES {
            let case = format!("{} under {policy}", failure.name);
            let server = MockSmtp::start(Security::StartTls);
            server.require_auth(USER, PASSWORD);
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state.json");

            let outcome = run(
                &state,
                (failure.inject)(&server),
                configure,
                &["first", "second"],
            );
            match &outcome {
                Outcome::Failed { error, pending: 2 } => {
                    assert_eq!(error.kind(), ErrorKind::Smtp, "{case}: {error}");
                    let text = error.to_string();
                    for word in failure.says {
                        assert!(text.contains(word), "{case}: {text:?} lacks {word:?}");
                    }
                    assert!(!text.contains(PASSWORD), "{case}");
                    // The sentence explains lettre's error, which stays reachable.
                    let source = std::error::Error::source(error);
                    assert!(
                        source.is_some_and(|s| s.is::<lettre::transport::smtp::Error>()),
                        "{case}: {error:?}"
                    );
                }
                other => panic!("{case}: expected a failure, got {other}"),
            }
            assert_eq!(pending_in(&state).len(), 2, "{case}");
            assert!(server.messages().is_empty(), "{case}");

            server.clear_faults();
            let outcome = run(&state, smtp_for(&server), configure, &["third", "fourth"]);
            assert!(
                matches!(outcome, Outcome::Sent { records: 4, .. }),
                "{case}: {outcome}"
            );
            let bodies: Vec<String> = server
                .messages()
                .iter()
                .map(|m| m.text_body().unwrap())
                .collect();
            let order: Vec<String> = bodies.iter().flat_map(|b| warned(b)).collect();
            assert_eq!(order, ["first", "second", "third", "fourth"], "{case}");
            assert!(pending_in(&state).is_empty(), "{case}");
        }
    }
}

#[test]
fn a_server_that_answers_slowly_cannot_hold_the_flush_past_the_deadline() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    // Each reply comes just inside the per-read timeout, so lettre never
    // times out; a whole session takes about ten replies, 3 seconds.
    server.set_fault(Fault::Delay {
        each_reply: Duration::from_millis(300),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let smtp = smtp_for(&server).timeout(Duration::from_millis(400));
    let started = Instant::now();
    let outcome = run(
        &state,
        smtp,
        |b| b.send_deadline(Duration::from_millis(900)),
        &["slow"],
    );
    let took = started.elapsed();
    match &outcome {
        Outcome::Failed { error, pending: 1 } => {
            assert!(error.to_string().contains("send deadline"), "{error}")
        }
        other => panic!("{other}"),
    }
    assert!(
        took < Duration::from_millis(2000),
        "the flush took {took:?}, past its deadline"
    );
    assert_eq!(pending_in(&state).len(), 1);

    server.clear_faults();
    let outcome = run(&state, smtp_for(&server), |b| b, &["fast"]);
    assert!(
        matches!(outcome, Outcome::Sent { records: 2, .. }),
        "{outcome}"
    );
}
