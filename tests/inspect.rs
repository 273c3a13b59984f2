//! The `inspect` example, run as a child process: the table, `--threshold`,
//! `--send-now` against the mock server, `--clear`.

#![cfg(feature = "smtp")]

mod support;

#[allow(dead_code)]
#[path = "../examples/inspect.rs"]
mod inspect;

use std::path::Path;
use std::time::Duration;

use support::child::{act_as_child_if_asked, command};
use support::setup::{PASSWORD, USER, run, smtp_for};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::StateFile;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A state file holding three warnings, held by a threshold of 10.
fn held_state(dir: &Path, server: &MockSmtp) -> std::path::PathBuf {
    let state = dir.join("state.json");
    let outcome = run(
        &state,
        smtp_for(server),
        |b| b.threshold(10, Level::WARN),
        &["one", "two", "three"],
    );
    assert!(
        matches!(outcome, tracing_email::Outcome::Held { .. }),
        "{outcome}"
    );
    state
}

#[test]
fn inspect_prints_a_table_and_what_the_threshold_still_needs() {
    act_as_child_if_asked(inspect::exit_status);
    let server = MockSmtp::start(Security::StartTls);
    let dir = tempfile::tempdir().unwrap();
    let state = held_state(dir.path(), &server);
    let output = command(
        "inspect_prints_a_table_and_what_the_threshold_still_needs",
        &[
            "--state-file".into(),
            state.to_str().unwrap().into(),
            "--threshold".into(),
            "5:warn".into(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = stdout(&output);
    assert!(out.contains("pending      3 records (3 WARN)"), "{out}");
    assert!(out.contains("last sent    never"), "{out}");
    assert!(out.contains("2 more records at WARN or above"), "{out}");
    assert_eq!(StateFile::open(&state).snapshot().unwrap().pending.len(), 3);
}

#[test]
fn inspect_send_now_sends_everything_whatever_the_threshold() {
    act_as_child_if_asked(inspect::exit_status);
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = held_state(dir.path(), &server);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let url = format!(
        "smtp://poca%40example.com:{}@127.0.0.1:{}?tls=required",
        PASSWORD.replace(' ', "%20"),
        server.port()
    );
    let output = command(
        "inspect_send_now_sends_everything_whatever_the_threshold",
        &[
            "--state-file".into(),
            state.to_str().unwrap().into(),
            "--send-now".into(),
            "--smtp-url".into(),
            url,
            "--ca-cert".into(),
            ca.to_str().unwrap().into(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("send-now     sent 3 records in 1 email"));
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages[0].rcpt_to, [USER]);
    assert!(
        StateFile::open(&state)
            .snapshot()
            .unwrap()
            .pending
            .is_empty()
    );
}

#[test]
fn inspect_clear_empties_the_file_and_says_how_many_it_dropped() {
    act_as_child_if_asked(inspect::exit_status);
    let server = MockSmtp::start(Security::StartTls);
    let dir = tempfile::tempdir().unwrap();
    let state = held_state(dir.path(), &server);
    let name = "inspect_clear_empties_the_file_and_says_how_many_it_dropped";
    let output = command(
        name,
        &[
            "--state-file".into(),
            state.to_str().unwrap().into(),
            "--clear".into(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("cleared      dropped 3 records"));
    assert!(
        StateFile::open(&state)
            .snapshot()
            .unwrap()
            .pending
            .is_empty()
    );

    for bad in [
        &["--clear"][..],
        &["--app", "a", "--state-file", "b"],
        &["--send-now", "--app", "a"],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let output = command(name, &args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
}
