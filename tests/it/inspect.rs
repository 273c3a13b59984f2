//! The `inspect` example, run as a child process: the table, the program's
//! policy (`--config`, `--consecutive-runs`, …) and its streaks, a missing
//! state file, `--send-now` against the mock server, `--clear` with and
//! without `--forget-history`; and the library's `snapshot_with` and
//! `FlushGuard::snapshot`.

#![cfg(feature = "smtp")]

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/inspect.rs"]
mod inspect;

use std::path::Path;
use std::time::Duration;

use support::child::{act_as_child_if_asked, command};
use support::setup::{PASSWORD, USER, run, smtp_for};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, Outcome, PolicyConfig, StateFile, Verdict, WaitingFor};
use tracing_subscriber::prelude::*;

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
    assert!(
        out.contains("policy       holds 3 pending records: 3 of the 5 warnings or errors needed"),
        "{out}"
    );
    assert!(
        out.contains("failures     one (WARN): 1 run, since ")
            && out.contains("; not reported yet"),
        "{out}"
    );
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
    let out = stdout(&output);
    assert!(
        out.contains("cleared      removed 3 pending records; kept the history (3 failure streaks"),
        "{out}"
    );
    assert!(
        out.contains("--clear --forget-history removes the history too"),
        "{out}"
    );
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
        &["--app", "a", "--forget-history"],
        &["--app", "a", "--consecutive-runs", "0"],
        &["--app", "a", "--repeat-after", "0"],
        &["--app", "a", "--repeat-after", "1 week"],
        &["--app", "a", "--threshold", "3:loud"],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let output = command(name, &args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
}

/// One run of a program that follows `feed` across runs: builds the layer
/// (a new run), logs one warning about each feed, drops the guard.
fn streak_run(state: &Path, outbox: &Path, feeds: &[&str]) -> Outcome {
    let (layer, guard) = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(outbox))
        .state_file(state)
        .from("robot@example.com")
        .to("me@example.com")
        .consecutive_runs(3)
        .repeat_after(Duration::from_secs(24 * 3600))
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "fetch failed");
        }
        guard.flush()
    })
}

/// A program's `job.toml` with the policy of `streak_run`, its state file
/// at `state`.
fn job_toml(dir: &Path, state: &Path) -> std::path::PathBuf {
    let path = dir.join("job.toml");
    let text = format!(
        "urls = [\"a.json\"]\n\n[email]\napp = \"nightly-fetch\"\noutbox = {:?}\n\
         state_file = {:?}\nfrom = \"robot@example.com\"\nto = \"me@example.com\"\n\n\
         [email.policy]\nconsecutive_runs = 3\nrepeat_after = 86400\n\
         fingerprint_fields = [\"feed\"]\n",
        dir.join("out").to_str().unwrap(),
        state.to_str().unwrap(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Four runs in which "b.json" fails: the third reports it, the fourth is
/// held because it is quiet.
fn quiet_streak(dir: &Path) -> std::path::PathBuf {
    let state = dir.join("state.json");
    let outbox = dir.join("out");
    let outcomes: Vec<Outcome> = (0..4)
        .map(|_| streak_run(&state, &outbox, &["b.json"]))
        .collect();
    assert!(outcomes[2].is_sent(), "{}", outcomes[2]);
    let held = outcomes[3].to_string();
    assert!(
        held.starts_with(r#"held 1 record for a later run: feed "b.json" reported at "#)
            && held.ends_with("(repeat_after)"),
        "{held}"
    );
    state
}

#[test]
fn inspect_with_the_programs_config_shows_the_streak_and_why_it_is_quiet() {
    act_as_child_if_asked(inspect::exit_status);
    let dir = tempfile::tempdir().unwrap();
    let state = quiet_streak(dir.path());
    let config = job_toml(dir.path(), &state);
    let name = "inspect_with_the_programs_config_shows_the_streak_and_why_it_is_quiet";
    let output = command(name, &["--config".into(), config.to_str().unwrap().into()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = stdout(&output);
    assert!(
        out.contains(&format!("state file   {}", state.display())),
        "the config's state_file: {out}"
    );
    assert!(
        out.contains(r#"failures     feed "b.json" (WARN): 4 runs in a row, since "#),
        "{out}"
    );
    assert!(out.contains("(repeat_after)"), "{out}");
    let policy = out
        .lines()
        .find(|l| l.contains("policy       "))
        .unwrap_or_default();
    assert!(
        policy.contains(r#"policy       holds 1 pending record: feed "b.json" reported at "#)
            && policy.contains(", quiet until "),
        "{out}"
    );

    // The same rules on the command line, without repeat_after: reported
    // once per streak.
    let output = command(
        name,
        &[
            "--state-file".into(),
            state.to_str().unwrap().into(),
            "--consecutive-runs".into(),
            "3".into(),
            "--fingerprint-field".into(),
            "feed".into(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = stdout(&output);
    assert!(
        out.contains("quiet until a run without it (consecutive_runs reports a streak once)"),
        "{out}"
    );
    // A streak of 5 is not met by one reported at 3 runs: it says how far.
    let output = command(
        name,
        &[
            "--config".into(),
            config.to_str().unwrap().into(),
            "--consecutive-runs".into(),
            "5".into(),
        ],
    )
    .output()
    .unwrap();
    let out = stdout(&output);
    assert!(
        out.contains(
            r#"holds 1 pending record: feed "b.json" failed 4 of the 5 runs in a row needed"#
        ),
        "{out}"
    );
    // Looking changes nothing.
    let s = StateFile::open(&state).snapshot().unwrap();
    assert_eq!((s.pending.len(), s.runs), (1, 4));
}

#[test]
fn inspect_says_when_there_is_no_state_file() {
    act_as_child_if_asked(inspect::exit_status);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet.json");
    let config = job_toml(dir.path(), &missing);
    let name = "inspect_says_when_there_is_no_state_file";
    for args in [
        vec!["--config".to_owned(), config.to_str().unwrap().into()],
        vec!["--state-file".to_owned(), missing.to_str().unwrap().into()],
    ] {
        let output = command(name, &args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let out = stdout(&output);
        assert!(
            out.contains(&format!(
                "state file   no state file at {}",
                missing.display()
            )),
            "{args:?}: {out}"
        );
    }
    assert!(!missing.exists());
    // A config file without an [email] table is a clear error.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "urls = []\n").unwrap();
    let output = command(name, &["--config".into(), other.to_str().unwrap().into()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("has no [email] table"),
        "{output:?}"
    );
}

#[test]
fn inspect_clear_keeps_the_history_unless_told_to_forget_it() {
    act_as_child_if_asked(inspect::exit_status);
    let dir = tempfile::tempdir().unwrap();
    let state = quiet_streak(dir.path());
    let name = "inspect_clear_keeps_the_history_unless_told_to_forget_it";
    let path = state.to_str().unwrap().to_owned();
    let output = command(
        name,
        &["--state-file".into(), path.clone(), "--clear".into()],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let s = StateFile::open(&state).snapshot().unwrap();
    assert!(s.pending.is_empty());
    assert_eq!(
        s.failures.len(),
        1,
        "the streak stays, and with it the quiet"
    );
    // The failure is still quiet on the next run.
    let held = streak_run(&state, &dir.path().join("out"), &["b.json"]);
    assert!(
        matches!(
            held,
            Outcome::Held {
                waiting_for: WaitingFor::Quiet { .. },
                ..
            }
        ),
        "{held}"
    );

    let output = command(
        name,
        &[
            "--state-file".into(),
            path,
            "--clear".into(),
            "--forget-history".into(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = stdout(&output);
    assert!(
        out.contains(
            "cleared      removed 1 pending record, the history (1 failure streak) and the time \
             of the last email: every failure is new again"
        ),
        "{out}"
    );
    let s = StateFile::open(&state).snapshot().unwrap();
    assert!(s.failures.is_empty() && s.pending.is_empty() && s.last_sent.is_none());
    assert_eq!(s.runs, 0);
}

#[test]
fn snapshots_with_a_policy_say_what_it_waits_for_and_what_is_not_flushed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let state = quiet_streak(dir.path());
    let policy: PolicyConfig =
        toml::from_str("consecutive_runs = 3\nrepeat_after = 86400\nfingerprint_fields = \"feed\"")
            .unwrap();
    let s = StateFile::open(&state).snapshot_with(&policy).unwrap();
    let b = &s.failures[0];
    assert_eq!((b.label.as_str(), b.runs), (r#"feed "b.json""#, 4));
    assert!(b.quiet && b.quiet_until > b.reported);
    assert!(
        matches!(
            &s.verdict,
            Some(Verdict::Hold {
                waiting_for: WaitingFor::Quiet { label, until: Some(_), .. }
            }) if label == r#"feed "b.json""#
        ),
        "{s}"
    );

    // The guard's snapshot: this program's policy, and the records it
    // captured since its last flush.
    let (layer, guard) = EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(dir.path().join("out")))
        .state_file(dir.path().join("other.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(5, Level::WARN)
        .checkpoint_interval(None)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("one");
        tracing::warn!("two");
        let held = guard.flush();
        assert_eq!(
            held.to_string(),
            "held 2 records for a later run: 2 of the 5 warnings or errors needed"
        );
        tracing::warn!("three");
    });
    let snapshot = guard.snapshot().unwrap();
    assert_eq!((snapshot.pending.len(), snapshot.unflushed), (2, 1));
    let text = snapshot.to_string();
    assert!(text.contains("pending      2 records (2 WARN)"), "{text}");
    assert!(
        text.contains("unflushed    1 record captured by this process"),
        "{text}"
    );
    assert!(
        text.contains("policy       holds 2 pending records: 2 of the 5 warnings or errors needed"),
        "{text}"
    );
}
