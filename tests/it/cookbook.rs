//! The `cookbook` example, run as a child process against the mock server:
//! 102 records, `batch(10)`, 11 emails.

#![cfg(feature = "smtp")]

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/cookbook.rs"]
mod cookbook;

use std::time::Duration;

use support::child::{act_as_child_if_asked, command, outcome_line};
use support::{Fault, MockSmtp, Security};

fn args(server: &MockSmtp, dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let mut args: Vec<String> = [
        "127.0.0.1",
        "cook@example.com",
        "s3cret",
        "to@example.com",
        "sender@example.com",
        "--port",
        &server.port().to_string(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--state-file",
        dir.join("state.json").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn cookbook_sends_eleven_emails_and_exits_0() {
    act_as_child_if_asked(cookbook::exit_status);
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("cook@example.com", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let output = command(
        "cookbook_sends_eleven_emails_and_exits_0",
        &args(&server, dir.path(), &["--subject", "Kochbuch ✓"]),
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(outcome_line(&output), "sent 102 records in 11 emails");
    let messages = server.wait_for_messages(11, Duration::from_secs(5));
    assert!(
        messages
            .iter()
            .all(|m| m.subject().as_deref() == Some("Kochbuch ✓"))
    );
    let counts: Vec<usize> = messages
        .iter()
        .map(|m| m.text_body().unwrap().matches("Info index = ").count())
        .collect();
    assert_eq!(counts, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 2]);
}

#[test]
fn cookbook_exits_1_when_sending_fails_and_2_for_bad_arguments() {
    act_as_child_if_asked(cookbook::exit_status);
    let name = "cookbook_exits_1_when_sending_fails_and_2_for_bad_arguments";
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("cook@example.com", "s3cret");
    server.set_fault(Fault::DropOnConnect);
    let dir = tempfile::tempdir().unwrap();
    let output = command(name, &args(&server, dir.path(), &[]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(outcome_line(&output).starts_with("not sent, 102 records kept"));

    for bad in [
        &["--tls", "sometimes"][..],
        &["--port", "x"],
        &["--bogus", "1"],
    ] {
        let output = command(name, &args(&server, dir.path(), bad))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
    let output = command(name, &["only-host".to_string()]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage: cookbook"));
}
