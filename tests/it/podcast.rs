//! The podcast client's scenario across separate processes: each run is a
//! child process running the `podcast` example's code (see
//! `support::child`), against one state file and the mock SMTP server.

#![cfg(feature = "smtp")]

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/podcast.rs"]
pub(crate) mod podcast;

use std::path::Path;
use std::time::Duration;

use support::child::{act_as_child_if_asked, command, outcome_line};
use support::{MockSmtp, Security};

fn args(state: &Path, server: &MockSmtp, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--state-file",
        state.to_str().unwrap(),
        "--smtp-url",
        &format!(
            "smtp://poca%40example.com:secret@127.0.0.1:{}?tls=required",
            server.port()
        ),
        "--timeout",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ca = state.with_file_name("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    args.extend(["--ca-cert".into(), ca.to_str().unwrap().into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn warn_feeds(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.contains(" WARN ") && l.contains(": feed failed"))
        .map(|l| {
            l.split("feed=")
                .nth(1)
                .unwrap()
                .split(" url=")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn podcast_runs_hold_hold_then_send_everything_in_order() {
    act_as_child_if_asked(podcast::run);
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("poca@example.com", "secret");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("poca.json");
    let name = "podcast_runs_hold_hold_then_send_everything_in_order";

    let mut lines = Vec::new();
    for failures in ["2", "2", "1"] {
        let output = command(name, &args(&state, &server, &["--failures", failures]))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        lines.push(outcome_line(&output));
    }
    assert_eq!(
        lines,
        [
            "held 8 records for a later run: 2 of the 5 warnings or errors needed",
            "held 16 records for a later run: 4 of the 5 warnings or errors needed",
            "sent 24 records in 1 email",
        ]
    );
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.subject().as_deref(), Some("POCA log"));
    let body = m.text_body().unwrap();
    assert_eq!(
        warn_feeds(&body),
        [
            "\"Radio Café\"",
            "\"Ääniraita\"",
            "\"Radio Café\"",
            "\"Ääniraita\"",
            "\"Radio Café\""
        ]
    );
    assert_eq!(
        body.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(": feed updated"))
            .count(),
        19
    );
}

#[test]
fn podcast_exit_status_is_1_when_sending_fails_and_2_for_bad_arguments() {
    act_as_child_if_asked(podcast::run);
    let name = "podcast_exit_status_is_1_when_sending_fails_and_2_for_bad_arguments";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("poca.json");
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("poca@example.com", "secret");
    server.set_fault(support::Fault::DropOnConnect);
    let output = command(name, &args(&state, &server, &["--failures", "5"]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(outcome_line(&output).starts_with("not sent, 8 records kept"));

    let output = command(name, &["--feeds".into(), "many".into()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let bad_url = args(&state, &server, &[])
        .into_iter()
        .map(|a| {
            if a.starts_with("smtp://") {
                "http://x".into()
            } else {
                a
            }
        })
        .collect::<Vec<_>>();
    let output = command(name, &bad_url).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SMTP URL"));
}

#[test]
fn two_processes_flushing_at_once_neither_lose_nor_double_send() {
    act_as_child_if_asked(podcast::run);
    let name = "two_processes_flushing_at_once_neither_lose_nor_double_send";
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("poca@example.com", "secret");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("poca.json");
    // Written once: a child may be reading the CA file while another starts.
    let args = args(&state, &server, &["--failures", "3", "--threshold", "1"]);
    for round in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| command(name, &args).spawn().unwrap())
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert_eq!(output.status.code(), Some(0), "round {round}: {output:?}");
        }
    }
    // 3 rounds × 2 processes × 8 records, each exactly once.
    let messages = server.messages();
    let bodies: Vec<String> = messages.iter().map(|m| m.text_body().unwrap()).collect();
    let warns: usize = bodies.iter().map(|b| warn_feeds(b).len()).sum();
    let infos: usize = bodies
        .iter()
        .map(|b| {
            b.lines()
                .filter(|l| l.contains(" INFO ") && l.contains(": feed updated"))
                .count()
        })
        .sum();
    assert_eq!((warns, infos), (18, 30));
    let left = tracing_email::inspect::StateFile::open(&state)
        .snapshot()
        .unwrap();
    assert!(left.pending.is_empty());
}

/// One run of the podcast example at `now`, failing exactly `fail`, with
/// `--consecutive-runs 3 --repeat-after 86400` into an outbox.
fn streak_run(test: &str, dir: &Path, now: &str, fail: &[&str]) -> String {
    let mut args: Vec<String> = [
        "--state-file",
        dir.join("poca.json").to_str().unwrap(),
        "--outbox",
        dir.join("outbox").to_str().unwrap(),
        "--consecutive-runs",
        "3",
        "--repeat-after",
        "86400",
        "--now",
        now,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for feed in fail {
        args.extend(["--fail".to_string(), feed.to_string()]);
    }
    let output = command(test, &args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    outcome_line(&output)
}

fn outbox<T>(dir: &Path, read: impl Fn(&mail_parser::Message<'_>) -> T) -> Vec<T> {
    let mut paths: Vec<_> = match std::fs::read_dir(dir.join("outbox")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let eml = std::fs::read(p).unwrap();
            read(&mail_parser::MessageParser::default().parse(&eml).unwrap())
        })
        .collect()
}

#[test]
fn a_feed_failing_run_after_run_is_reported_once_then_reminded_daily() {
    act_as_child_if_asked(podcast::run);
    let name = "a_feed_failing_run_after_run_is_reported_once_then_reminded_daily";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Blips of different feeds never add up.
    assert!(streak_run(name, d, "2026-11-20T08:00:00Z", &["Ääniraita"]).starts_with("held"));
    assert!(streak_run(name, d, "2026-11-20T09:00:00Z", &["ポッドキャスト"]).starts_with("held"));
    // Radio Café fails three runs in a row: one email, on the third.
    assert!(streak_run(name, d, "2026-11-20T10:00:00Z", &["Radio Café"]).starts_with("held"));
    assert!(streak_run(name, d, "2026-11-20T11:00:00Z", &["Radio Café"]).starts_with("held"));
    let sent = streak_run(name, d, "2026-11-20T12:00:00Z", &["Radio Café"]);
    // Eight records a run (INFO rides along): five runs.
    assert!(sent.starts_with("sent 40 records in 1 email"), "{sent}");
    // It keeps failing: quiet for a day…
    for hour in 13..=23 {
        let now = format!("2026-11-20T{hour}:00:00Z");
        assert!(
            streak_run(name, d, &now, &["Radio Café"]).starts_with("held"),
            "{now}"
        );
    }
    // …then the daily reminder.
    for hour in 0..=11 {
        let now = format!("2026-11-21T{hour:02}:00:00Z");
        assert!(
            streak_run(name, d, &now, &["Radio Café"]).starts_with("held"),
            "{now}"
        );
    }
    let reminder = streak_run(name, d, "2026-11-21T12:00:00Z", &["Radio Café"]);
    assert!(
        reminder.starts_with("sent 192 records in 1 email"),
        "{reminder}"
    );
    // A feed not among the built-in ones is added.
    let added = streak_run(name, d, "2026-11-21T13:00:00Z", &["Brand New Cast"]);
    assert!(added.starts_with("held 9 records"), "{added}");
    let subjects = outbox(d, |m| m.subject().unwrap().to_owned());
    assert_eq!(
        subjects,
        [
            r#"[poca] feed "Radio Café" failing for 3 runs; 2 other warnings"#,
            r#"[poca] feed "Radio Café" failing for 27 runs"#,
        ]
    );
    let texts = outbox(d, |m| m.body_text(0).unwrap().into_owned());
    assert_eq!(texts.len(), 2);
    assert!(
        texts[1].contains("in each of the last 27 runs"),
        "the summary says how long: {}",
        texts[1]
    );
    assert!(
        texts[0].contains("feed=\"Ääniraita\""),
        "the blips ride along"
    );
    assert!(
        texts[0].contains("2026-11-20 12:00:00 WARN"),
        "{}",
        texts[0]
    );
}

#[test]
fn with_notify_recovery_a_feed_that_works_again_gets_one_resolved_email() {
    act_as_child_if_asked(podcast::run);
    let name = "with_notify_recovery_a_feed_that_works_again_gets_one_resolved_email";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |now: &str, fail: &[&str]| {
        let mut args: Vec<String> = [
            "--state-file",
            d.join("poca.json").to_str().unwrap(),
            "--outbox",
            d.join("outbox").to_str().unwrap(),
            "--consecutive-runs",
            "3",
            "--notify-recovery",
            "--now",
            now,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for feed in fail {
            args.extend(["--fail".to_string(), feed.to_string()]);
        }
        let output = command(name, &args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        outcome_line(&output)
    };
    for hour in 10..=11 {
        let now = format!("2026-11-20T{hour}:00:00Z");
        assert!(run(&now, &["Radio Café"]).starts_with("held"));
    }
    assert!(run("2026-11-20T12:00:00Z", &["Radio Café"]).starts_with("sent 24 records"));
    // The next run has every feed working: the resolved email, and the
    // run's own records stay held.
    assert_eq!(
        run("2026-11-20T13:00:00Z", &[]),
        "sent the notice that 1 failure is over; held 8 records for a later run: no failure \
         (warnings or errors) in this run; one in 3 runs in a row is needed"
    );
    assert!(run("2026-11-20T14:00:00Z", &[]).starts_with("held 16 records"));
    let subjects = outbox(d, |m| m.subject().unwrap().to_owned());
    assert_eq!(
        subjects,
        [
            r#"[poca] feed "Radio Café" failing for 3 runs"#,
            r#"[poca] resolved: feed "Radio Café" OK again after failing 3 runs"#,
        ]
    );
    // The digest showed the feed's runs.
    let first = outbox(d, |m| m.body_text(0).unwrap().into_owned()).remove(0);
    assert!(
        first.contains("in each of the last 3 runs; last 3 runs, oldest first: ✗✗✗"),
        "{first}"
    );
}
