//! What the crate says on stderr (a state file repaired while loading, a
//! record logged after the guard was dropped) costs nothing when stderr is
//! a pipe nobody reads any more: the write fails, and the flush goes on.

use crate::support;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use support::child::{act_as_child_if_asked, command, outcome_line};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop};
use tracing_subscriber::prelude::*;

/// Waits for stdin to close (so that the parent closed stderr first), then
/// logs one warning into the state file `args[0]` and flushes at the end.
fn run_with_stderr_closed(args: Vec<String>) -> u8 {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let state = Path::new(&args[0]);
    let (layer, guard) = EmailLayer::builder("stderr")
        .transport(FileDrop::new(state.with_file_name("outbox")))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    tracing::warn!(feed = "Radio Café", "feed failed");
    println!("{}", guard.flush());
    drop(guard);
    // The guard is gone: this record is refused, with a line on stderr.
    tracing::warn!("after the guard");
    0
}

#[test]
fn a_closed_stderr_neither_fails_a_flush_nor_panics_a_log_call() {
    act_as_child_if_asked(run_with_stderr_closed);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // Not JSON: loading moves it aside and says so on stderr.
    std::fs::write(&state, "{ not json").unwrap();
    let mut child = command(
        "a_closed_stderr_neither_fails_a_flush_nor_panics_a_log_call",
        &[state.to_str().unwrap().to_owned()],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    drop(child.stderr.take());
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        outcome_line(&output).starts_with("sent 1 record"),
        "{output:?}"
    );
    let emails = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .count();
    assert_eq!(emails, 1);
}
