//! Crash safety with real processes: a run that ends with an abort, a panic
//! under `panic = "abort"`, or SIGKILL loses at most its last checkpoint
//! interval, and one that ends with `std::process::exit` loses nothing (the
//! exit hook stores it); a later run finds the rest and sends it. A panic with unwinding is captured and sent by the
//! guard's flush during the unwind.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::child::{act_as_child_if_asked, command};
use support::recorder::Recorder;
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, Outcome, record::Record};
use tracing_subscriber::prelude::*;

const INTERVAL: Duration = Duration::from_millis(200);

/// A run that logs ten warnings, waits for a checkpoint, logs one more and
/// then ends as `args[0]` says. `args[1]` is the state file.
fn crashing_run(args: Vec<String>) -> u8 {
    let state = Path::new(&args[1]);
    if args[0] == "panic-abort" {
        // What `panic = "abort"` does after the panic hooks have run.
        std::panic::set_hook(Box::new(|_| std::process::abort()));
    }
    let (layer, guard) = EmailLayer::builder("crash")
        .transport(FileDrop::new(state.with_file_name("outbox")))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::ERROR)
        .checkpoint_interval(INTERVAL)
        .capture_panics()
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    for n in 0..10 {
        tracing::warn!(n, "before the crash");
    }
    std::thread::sleep(INTERVAL * 3);
    tracing::warn!("in the last interval");
    match args[0].as_str() {
        "exit" => std::process::exit(3),
        "abort" => std::process::abort(),
        "panic-abort" | "panic-unwind" => panic!("boom at the feed"),
        "kill" => {
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown mode {other}"),
    }
    drop(guard);
    0
}

/// A later, healthy run over the same state file: returns what it sent.
fn later_run(state: &Path) -> Vec<Record> {
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("crash")
        .transport(recorder.clone())
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    drop(layer);
    let outcome = guard.flush();
    assert!(outcome.is_sent(), "{outcome}");
    recorder.emails().concat()
}

fn numbered(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .filter_map(|r| r.fields.get("n").and_then(|n| n.as_i64()))
        .collect()
}

fn crash(test: &str, mode: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = [mode.to_string(), state.to_str().unwrap().to_string()];
    let output = if mode == "kill" {
        let mut child = command(test, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("ready")));
        child.kill().unwrap(); // SIGKILL
        child.wait_with_output().unwrap()
    } else {
        command(test, &args).output().unwrap()
    };
    (dir, output)
}

#[test]
fn exit_without_dropping_the_guard_loses_nothing() {
    act_as_child_if_asked(crashing_run);
    let (dir, output) = crash("exit_without_dropping_the_guard_loses_nothing", "exit");
    assert_eq!(output.status.code(), Some(3));
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(numbered(&sent), (0..10).collect::<Vec<_>>());
    assert_eq!(sent.last().unwrap().message, "in the last interval");
}

#[test]
fn abort_loses_at_most_the_last_interval() {
    act_as_child_if_asked(crashing_run);
    let (dir, output) = crash("abort_loses_at_most_the_last_interval", "abort");
    assert!(!output.status.success());
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(numbered(&sent), (0..10).collect::<Vec<_>>());
}

#[test]
fn sigkill_loses_at_most_the_last_interval() {
    act_as_child_if_asked(crashing_run);
    let (dir, output) = crash("sigkill_loses_at_most_the_last_interval", "kill");
    assert!(!output.status.success());
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(numbered(&sent), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_panic_under_abort_is_recorded_for_the_next_run() {
    act_as_child_if_asked(crashing_run);
    let (dir, output) = crash(
        "a_panic_under_abort_is_recorded_for_the_next_run",
        "panic-abort",
    );
    assert!(!output.status.success());
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(numbered(&sent), (0..10).collect::<Vec<_>>());
    // The panic hook wrote the panic, and everything before it, at once.
    let panic = sent
        .iter()
        .find(|r| r.target == "panic")
        .expect("panic record");
    assert_eq!(panic.level, Level::ERROR);
    assert_eq!(panic.message, "panicked: boom at the feed");
    assert!(panic.file.as_deref().unwrap().ends_with("crash.rs"));
    assert!(sent.iter().any(|r| r.message == "in the last interval"));
}

#[test]
fn a_panic_with_unwinding_is_sent_by_the_guard_during_the_unwind() {
    act_as_child_if_asked(crashing_run);
    let (dir, output) = crash(
        "a_panic_with_unwinding_is_sent_by_the_guard_during_the_unwind",
        "panic-unwind",
    );
    assert!(!output.status.success());
    let outbox: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1, "{output:?}");
    let eml = String::from_utf8(std::fs::read(&outbox[0]).unwrap()).unwrap();
    let text = mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    assert!(
        text.contains("ERROR panic: panicked: boom at the feed"),
        "{text}"
    );
    assert!(text.contains("location=\""), "{text}");
    assert_eq!(text.matches("before the crash").count(), 10);
    // Nothing is left pending.
    let recorder_run = EmailLayer::builder("crash")
        .transport(Recorder::default())
        .state_file(dir.path().join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .build()
        .unwrap();
    assert!(matches!(recorder_run.1.flush(), Outcome::Nothing));
}

/// A transport that, while it sends, has another thread log a warning and
/// then ends the process with `std::process::exit(4)`: the flush holds its
/// locks (the flusher, the state file) when the exit hook runs.
struct ExitWhileSending;

impl tracing_email::transport::Transport for ExitWhileSending {
    fn send(
        &self,
        _: &tracing_email::transport::Email,
    ) -> Result<(), tracing_email::transport::BoxError> {
        std::thread::spawn(|| tracing::warn!("logged during the send"))
            .join()
            .unwrap();
        std::process::exit(4)
    }
}

/// A run that logs an error and calls `std::process::exit(0)` at once, well
/// within the first checkpoint interval (`args[0] == "at-once"`), or whose
/// send exits while its flush holds the locks (`"in-send"`). `args[1]` is
/// the state file.
fn exiting_run(args: Vec<String>) -> u8 {
    let state = Path::new(&args[1]);
    let builder = EmailLayer::builder("crash")
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::ERROR)
        .checkpoint_interval(Duration::from_secs(60));
    let builder = match args[0].as_str() {
        "at-once" => builder.transport(FileDrop::new(state.with_file_name("outbox"))),
        _ => builder.transport(ExitWhileSending),
    };
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    tracing::warn!("before the error");
    tracing::error!("the feed is gone");
    if args[0] == "at-once" {
        std::process::exit(0);
    }
    let _ = guard.flush();
    unreachable!("the transport exits");
}

/// Runs [`exiting_run`] in `mode` and waits at most 20 s for it: an exit
/// hook that waited for a lock held by the exiting thread would hang.
fn exit_in(test: &str, mode: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = [mode.to_string(), state.to_str().unwrap().to_string()];
    let mut child = command(test, &args).spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!(
                "the child did not end within 20 s of its exit: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (dir, child.wait_with_output().unwrap())
}

fn messages(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.message.as_str()).collect()
}

/// Issue 19, case 11: `std::process::exit` within the first checkpoint
/// interval lost every record, the error logged just before it too. They
/// are stored at exit (never sent then), and the next run sends them.
#[test]
fn exit_at_once_keeps_the_error_logged_just_before() {
    act_as_child_if_asked(exiting_run);
    let (dir, output) = exit_in("exit_at_once_keeps_the_error_logged_just_before", "at-once");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(!dir.path().join("outbox").exists(), "nothing sent at exit");
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(messages(&sent), ["before the error", "the feed is gone"]);
}

/// An exit while a flush holds the flusher and the state file's lock (from
/// inside a transport) does not hang: the records the flush had stored stay,
/// and the one logged meanwhile is stored beside the state file.
#[test]
fn exit_during_a_send_neither_hangs_nor_loses_a_record() {
    act_as_child_if_asked(exiting_run);
    let (dir, output) = exit_in(
        "exit_during_a_send_neither_hangs_nor_loses_a_record",
        "in-send",
    );
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let sent = later_run(&dir.path().join("state.json"));
    assert_eq!(
        messages(&sent),
        [
            "before the error",
            "the feed is gone",
            "logged during the send"
        ]
    );
}

/// The temporary copies of the snapshot beside `state`.
fn temporaries(state: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.tmp-"))
        .collect()
}

/// A kill during a rewrite of the snapshot leaves its temporary copy
/// (`state.json.tmp-<pid>`, the whole snapshot): here the copy is made while
/// the run is alive, at the name its rewrite uses, and the run is killed.
/// While the writer lives its file stays; once it is dead, the next flush
/// removes it, and keeps every record.
#[test]
fn the_copy_a_killed_rewrite_leaves_is_removed_by_the_next_flush() {
    act_as_child_if_asked(crashing_run);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = ["kill".to_string(), state.to_str().unwrap().to_string()];
    let mut child = command(
        "the_copy_a_killed_rewrite_leaves_is_removed_by_the_next_flush",
        &args,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("ready")));
    let copy = dir.path().join(format!("state.json.tmp-{}", child.id()));
    std::fs::copy(&state, &copy).unwrap();
    // Another run's flush while the writer lives leaves its file alone.
    let (_layer, guard) = EmailLayer::builder("crash")
        .transport(Recorder::default())
        .state_file(&state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(100, Level::ERROR)
        .build()
        .unwrap();
    assert!(matches!(guard.flush(), Outcome::Held { .. }));
    assert_eq!(temporaries(&state), std::slice::from_ref(&copy));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent = later_run(&state);
    assert!(temporaries(&state).is_empty(), "{copy:?} is still there");
    assert_eq!(numbered(&sent), (0..10).collect::<Vec<_>>());
}
