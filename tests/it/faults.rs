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
use tracing_subscriber::prelude::*;

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

/// A server on 127.0.0.1 that accepts every connection and never finishes
/// its greeting: a continuation line (`220-`) every 200 ms, each well within
/// any read timeout. Returns its port; it stops when the test process ends.
fn never_done_greeting() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        loop {
            while let Ok((socket, _)) = listener.accept() {
                open.push(socket);
            }
            open.retain_mut(|s| std::io::Write::write_all(s, b"220-still greeting\r\n").is_ok());
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    port
}

/// The threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The child of [`abandoned_sends_do_not_pile_up`]: `batch(1)`, a record
/// every 250 ms for 4 s, each flush's send abandoned at its 1 s deadline by
/// a server that never finishes its greeting, with an SMTP timeout of an
/// hour. Prints the threads before and the most seen, then the last
/// flush's outcome.
fn sending_to_a_silent_server(args: Vec<String>) -> u8 {
    let (port, state) = (args[0].parse().unwrap(), &args[1]);
    let smtp = Smtp::plain("127.0.0.1")
        .port(port)
        .timeout(Duration::from_secs(3600));
    let (layer, guard) = tracing_email::EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .batch(1)
        .send_deadline(Duration::from_secs(1))
        .checkpoint_interval(None)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let before = threads();
    let mut most = before;
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..16 {
            tracing::warn!(i, "feed failed");
            std::thread::sleep(Duration::from_millis(250));
            most = most.max(threads());
        }
    });
    println!("threads {before} {most}");
    let outcome = guard.flush();
    most = most.max(threads());
    println!("threads {before} {most}");
    println!("{outcome}");
    0
}

/// Runs `test` as a child that sends to 127.0.0.1:`port` with its state in
/// `state`; checks that it ended well. Returns its output and its stdout.
fn child_sending_to(
    port: u16,
    state: &std::path::Path,
    test: &str,
) -> (std::process::Output, String) {
    let output = support::child::command(test, &[port.to_string(), state.to_str().unwrap().into()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output, stdout)
}

/// Issue 19, case 8: each send abandoned at the deadline left its thread
/// and socket waiting until the SMTP timeout, a new one at every flush. Now
/// at most one abandoned send is outstanding: the next waits for it, then
/// is skipped, its records kept, and the outcome says why.
#[test]
fn abandoned_sends_do_not_pile_up() {
    support::child::act_as_child_if_asked(sending_to_a_silent_server);
    let port = never_done_greeting();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (output, stdout) = child_sending_to(port, &state, "abandoned_sends_do_not_pile_up");
    // The last count: after the last flush.
    let (_, counts) = stdout.rsplit_once("threads ").unwrap();
    let counts: Vec<usize> = counts
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let (before, most) = (counts[0], counts[1]);
    assert!(
        most <= before + 1,
        "{before} threads at first, {most} at most:\n{stdout}"
    );
    let outcome = support::child::outcome_line(&output);
    assert!(outcome.contains("still running"), "{outcome}");
    assert_eq!(pending_in(&state).len(), 16, "every record kept");
}

/// The child of [`an_abandoned_send_ends_with_the_deadline`]: one send to a
/// server that never says a word, a 1 h SMTP timeout and a 1 s deadline.
/// Prints the threads before, and how long after the flush the send's
/// thread was gone (or `never` within 5 s).
fn one_send_to_a_mute_server(args: Vec<String>) -> u8 {
    let (port, state) = (args[0].parse().unwrap(), &args[1]);
    let smtp = Smtp::plain("127.0.0.1")
        .port(port)
        .timeout(Duration::from_secs(3600));
    let (layer, guard) = tracing_email::EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .send_deadline(Duration::from_secs(1))
        .checkpoint_interval(None)
        .build()
        .unwrap();
    let before = threads();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("feed failed");
    });
    println!("{}", guard.flush());
    let flushed = Instant::now();
    while threads() > before && flushed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    match threads() > before {
        true => println!("gone never"),
        false => println!("gone after {} ms", flushed.elapsed().as_millis()),
    }
    0
}

/// Issue 19, case 8: the socket of a send abandoned at the deadline waits
/// no longer than the deadline (the SMTP timeout is cut to it), so its
/// thread ends soon after, not an hour later.
#[test]
fn an_abandoned_send_ends_with_the_deadline() {
    support::child::act_as_child_if_asked(one_send_to_a_mute_server);
    // Connections wait in its backlog: connected, never a byte.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (output, stdout) =
        child_sending_to(port, &state, "an_abandoned_send_ends_with_the_deadline");
    assert!(
        support::child::outcome_line(&output).contains("send deadline"),
        "{stdout}"
    );
    let gone = stdout
        .lines()
        .find_map(|l| l.split_once("gone "))
        .map(|(_, g)| g);
    let ms: u64 = gone
        .and_then(|g| g.strip_prefix("after ")?.strip_suffix(" ms")?.parse().ok())
        .unwrap_or_else(|| panic!("the send's thread outlived the deadline:\n{stdout}"));
    // The socket times out 1 s after the send started, about when the
    // deadline ended the flush (an hour later without the cut); room for a
    // busy machine.
    assert!(ms < 3000, "{stdout}");
    assert_eq!(pending_in(&state).len(), 1);
}
