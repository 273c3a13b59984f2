//! Concurrency: many processes flushing one state file at once, threads
//! logging while a batch is being sent, and a state file whose lock is held
//! for too long.

#![cfg(feature = "smtp")]

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use support::child::{act_as_child_if_asked, command};
use support::recorder::Recorder;
use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{Fault, MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, ErrorKind, Outcome, Smtp};
use tracing_subscriber::prelude::*;

/// `(process, index)` of every `proc=P i=I` record line in the bodies.
fn logged(server: &MockSmtp) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for m in server.messages() {
        for line in m.text_body().unwrap().lines() {
            let field = |name: &str| {
                line.split(&format!(" {name}="))
                    .nth(1)
                    .map(|v| v.split(' ').next().unwrap().parse::<u64>().unwrap())
            };
            if let (Some(p), Some(i)) = (field("proc"), field("i")) {
                out.push((p, i));
            }
        }
    }
    out
}

/// One process: logs 500 warnings, then flushes. Args: state file, port,
/// CA file, process number.
fn logging_process(args: Vec<String>) -> u8 {
    let smtp = Smtp::starttls("127.0.0.1")
        .port(args[1].parse().unwrap())
        .root_certificate(std::fs::read(&args[2]).unwrap())
        .credentials(USER, PASSWORD);
    let (layer, guard) = builder(Path::new(&args[0]), smtp)
        .threshold(1, Level::WARN)
        .lock_timeout(Duration::from_secs(60))
        // Every record listed, to count them at the server.
        .max_detail_lines(10_000)
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    let proc: u64 = args[3].parse().unwrap();
    for i in 0..500u64 {
        tracing::warn!(proc, i, "feed failed");
    }
    let outcome = guard.flush();
    println!("{outcome}");
    u8::from(!outcome.is_sent() && !matches!(outcome, Outcome::Nothing))
}

#[test]
fn eight_processes_flushing_at_once_deliver_every_record_exactly_once() {
    act_as_child_if_asked(logging_process);
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let children: Vec<_> = (0..8)
        .map(|p| {
            command(
                "eight_processes_flushing_at_once_deliver_every_record_exactly_once",
                &[
                    state.to_str().unwrap().into(),
                    server.port().to_string(),
                    ca.to_str().unwrap().into(),
                    p.to_string(),
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
    }
    let mut seen = logged(&server);
    assert_eq!(seen.len(), 4000, "every record arrives, none twice");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4000, "no record arrives twice");
    let left = tracing_email::inspect::StateFile::open(&state)
        .snapshot()
        .unwrap();
    assert!(left.pending.is_empty());
}

#[test]
fn threads_logging_during_a_batch_send_lose_nothing_and_never_deadlock() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    // Every reply is slow, so batches are being sent while threads log.
    server.set_fault(Fault::Delay {
        each_reply: Duration::from_millis(5),
    });
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp_for(&server))
        .batch(50)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        std::thread::scope(|s| {
            for proc in 0..4u64 {
                let dispatch = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..250u64 {
                            tracing::warn!(proc, i, "feed failed");
                            if i % 50 == 0 {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                        }
                    })
                });
            }
        });
        let _ = done.send(guard.flush());
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("logging and flushing finished: no deadlock");
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 1000,
                emails: 20
            }
        ),
        "{outcome}"
    );
    let mut seen = logged(&server);
    // Each thread's records arrive in the order it logged them.
    for proc in 0..4 {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|(p, _)| *p == proc)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..250).collect::<Vec<_>>());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1000);
}

#[test]
fn a_lock_held_too_long_parks_the_records_for_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let recorder = Recorder::default();
    let build = || {
        EmailLayer::builder("busy")
            .transport(recorder.clone())
            .state_file(&state)
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(1, Level::WARN)
            .lock_timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    // Another process holds the lock.
    let held = std::fs::File::create(dir.path().join("state.json.lock")).unwrap();
    held.lock().unwrap();

    let (layer, guard) = build();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(n = 1, "while busy");
            guard.flush()
        });
    match &outcome {
        Outcome::Failed { error, pending: 1 } => {
            assert_eq!(error.kind(), ErrorKind::Busy);
            let text = error.to_string();
            assert!(text.contains("stayed locked"), "{text}");
            assert!(text.contains("state.json.parked-"), "{text}");
        }
        other => panic!("{other}"),
    }
    let parked: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".parked-"))
        .collect();
    assert_eq!(parked.len(), 1);
    drop(guard);
    assert!(recorder.emails().is_empty());

    held.unlock().unwrap();
    let (layer, guard) = build();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(n = 2, "after");
            guard.flush()
        });
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
    let ns: Vec<i64> = recorder.emails()[0]
        .iter()
        .map(|r| r.fields.get("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2]);
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".parked-")),
        "the parked file is gone once merged"
    );
}
