//! A guard dropped at once (`let (layer, _) = …`) cannot flush what is
//! logged afterwards: the first such record says so on stderr, once, with the
//! fix, and is not kept in memory for nothing. In child processes, because
//! the line goes to the process's stderr.

use crate::support;

use std::path::Path;

use support::child::{act_as_child_if_asked, command};
use tracing_email::{EmailLayer, FileDrop};
use tracing_subscriber::prelude::*;

/// Builds the layer, keeps the guard (`args[0] == "kept"`) or drops it at
/// once as `let (layer, _) = …` does, logs two warnings and prints the
/// layer's `Debug` (which counts the records it holds). `args[1]` is a
/// folder.
fn run(args: Vec<String>) -> u8 {
    let dir = Path::new(&args[1]);
    let builder = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(dir.join("outbox")))
        .state_file(dir.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(5, tracing::Level::WARN);
    let (layer, guard) = if args[0] == "kept" {
        let (layer, guard) = builder.build().unwrap();
        (layer, Some(guard))
    } else {
        let (layer, _) = builder.build().unwrap();
        (layer, None)
    };
    let subscriber = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(url = "https://example.com/a.json", "fetch failed");
        tracing::warn!(url = "https://example.com/b.json", "fetch failed");
    });
    println!("layer: {layer:?}");
    drop(guard);
    0
}

fn child(test: &str, mode: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let args = [mode.to_owned(), dir.path().to_str().unwrap().to_owned()];
    let output = command(test, &args).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn records_after_a_dropped_guard_say_so_once_with_the_fix() {
    act_as_child_if_asked(run);
    let (stdout, stderr) = child(
        "records_after_a_dropped_guard_say_so_once_with_the_fix",
        "dropped",
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tracing-email:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.contains("logged after the FlushGuard was dropped"),
        "{line}"
    );
    assert!(
        line.contains("keep the guard: let (layer, _guard) = …"),
        "{line}"
    );
    // Nothing would ever flush them: they are not kept in memory.
    assert!(stdout.contains("buffered: 0"), "{stdout}");
}

#[test]
fn a_kept_guard_says_nothing() {
    act_as_child_if_asked(run);
    let (stdout, stderr) = child("a_kept_guard_says_nothing", "kept");
    assert!(!stderr.contains("tracing-email"), "{stderr}");
    assert!(stdout.contains("buffered: 2"), "{stdout}");
}
