//! The transports besides SMTP: `FileDrop`, `Sendmail`, and a `Transport` of
//! one's own (the `webhook` example, run as a child process).

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/webhook.rs"]
mod webhook;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use support::child::{act_as_child_if_asked, command, outcome_line};
use tracing::Level;
#[cfg(feature = "sendmail")]
use tracing_email::transport::Sendmail;
use tracing_email::{EmailLayer, FileDrop, Outcome, transport::Transport};
use tracing_subscriber::prelude::*;

fn send_through(transport: impl Transport, dir: &std::path::Path) -> Outcome {
    let (layer, guard) = EmailLayer::builder("transports")
        .transport(transport)
        .state_file(dir.join("state.json"))
        .from("Robot <robot@example.com>")
        .to("me@example.com, ops@example.org")
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "feed failed");
        guard.flush()
    })
}

#[test]
fn file_drop_writes_one_whole_eml_file_per_digest() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("out").join("box");
    for _ in 0..2 {
        assert!(send_through(FileDrop::new(&outbox), dir.path()).is_sent());
    }
    let mut names: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".eml") && !n.starts_with('.'))
    );
    let eml = std::fs::read(outbox.join(&names[0])).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert!(
        parsed
            .body_text(0)
            .unwrap()
            .contains("feed failed feed=\"Radio Café\"")
    );
    assert_eq!(parsed.to().unwrap().iter().count(), 2);
}

#[test]
fn file_drop_into_a_path_it_cannot_make_fails_and_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file").unwrap();
    match send_through(FileDrop::new(blocker.join("outbox")), dir.path()) {
        Outcome::Failed { error, pending: 1 } => {
            assert!(
                error
                    .to_string()
                    .contains("could not create the outbox folder"),
                "{error}"
            )
        }
        other => panic!("{other}"),
    }
}

/// A fake `sendmail` that records its arguments and standard input.
#[cfg(all(unix, feature = "sendmail"))]
fn fake_sendmail(dir: &std::path::Path, exit: u8) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("sendmail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > \"{0}/args\"\ncat > \"{0}/stdin\"\nexit {exit}\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[cfg(all(unix, feature = "sendmail"))]
#[test]
fn sendmail_hands_the_message_to_the_program_with_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let script = fake_sendmail(dir.path(), 0);
    let outcome = send_through(Sendmail::with_command(&script), dir.path());
    assert!(outcome.is_sent(), "{outcome}");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.contains("-f robot@example.com"), "{args}");
    assert!(
        args.contains("me@example.com") && args.contains("ops@example.org"),
        "{args}"
    );
    let stdin = std::fs::read(dir.path().join("stdin")).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&stdin).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("Radio Café"));
}

#[cfg(all(unix, feature = "sendmail"))]
#[test]
fn a_failing_sendmail_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let script = fake_sendmail(dir.path(), 75);
    match send_through(Sendmail::with_command(&script), dir.path()) {
        Outcome::Failed { error, pending: 1 } => {
            assert!(
                error.to_string().contains("could not deliver the digest"),
                "{error}"
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_transport_of_ones_own_the_webhook_example() {
    act_as_child_if_asked(webhook::exit_status);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap();
        (head, body)
    });
    let output = command(
        "a_transport_of_ones_own_the_webhook_example",
        &[format!("http://127.0.0.1:{port}/hooks/poca")],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(outcome_line(&output), "sent 2 records in 1 email");
    let (head, body) = server.join().unwrap();
    assert!(head.starts_with("POST /hooks/poca HTTP/1.1"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), 2);
    assert_eq!(json["records"][1]["fields"]["feed"], "Ääniraita");
    assert!(json["subject"].as_str().unwrap().contains("2 warnings"));
}
