//! The `tracing-email` binary run as a child process, against state files
//! made by the library (a layer and its guard, as a program makes them) and
//! against the mock SMTP server of the library's tests.

#[allow(dead_code)]
#[path = "../../tests/it/support/smtp.rs"]
mod smtp;

#[allow(dead_code)]
#[path = "../../tests/it/support/leaks.rs"]
mod leaks;

#[allow(dead_code)]
#[path = "../../tests/it/support/fake_alertmanager.rs"]
mod fake_alertmanager;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use smtp::{Cmd, Fault, MockSmtp, Security, refused_port};
use tracing_email::{Builder, EmailLayer, FileDrop, Outcome, inspect::StateFile};
use tracing_subscriber::prelude::*;

const USER: &str = "poca@example.com";
const PASSWORD: &str = "correct horse";

/// The tool with `args`, stdin empty (not a terminal), output captured,
/// no colour from the environment and no SMTP password.
fn tool(args: &[&str]) -> Output {
    tool_with(args, &[])
}

fn tool_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracing-email"));
    cmd.args(args)
        .env_remove("NO_COLOR")
        .env_remove("SMTP_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The program of these tests: it follows failures by `feed`, reports one
/// seen in 3 runs in a row, and again after a day.
fn program(dir: &Path) -> Builder {
    EmailLayer::builder("nightly-fetch")
        .transport(FileDrop::new(dir.join("out")))
        .state_file(dir.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .consecutive_runs(3)
        .repeat_after(Duration::from_secs(24 * 3600))
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
}

/// One run of it: a warning per feed in `feeds`, then the guard's flush.
fn run(program: Builder, feeds: &[&str]) -> Outcome {
    let (layer, guard) = program.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "fetch failed");
        }
        tracing::info!("run done");
        guard.flush()
    })
}

/// Its `job.toml`: the same settings in the program's `[email]` table.
fn job_toml(dir: &Path) -> PathBuf {
    let path = dir.join("job.toml");
    let text = format!(
        "urls = [\"a.json\"]\n\n[email]\napp = \"nightly-fetch\"\noutbox = {:?}\n\
         state_file = {:?}\nfrom = \"robot@example.com\"\nto = \"me@example.com\"\n\n\
         [email.policy]\nconsecutive_runs = 3\nrepeat_after = 86400\n\
         fingerprint_fields = [\"feed\"]\n",
        s(&dir.join("out")),
        s(&dir.join("state.json")),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Two runs in which `b.json` fails, `c.json` in the first only: held,
/// 2 of the 3 runs in a row needed.
fn two_runs(dir: &Path) -> PathBuf {
    let first = run(program(dir), &["b.json", "c.json"]);
    assert!(matches!(first, Outcome::Held { .. }), "{first}");
    let second = run(program(dir), &["b.json"]);
    assert!(matches!(second, Outcome::Held { .. }), "{second}");
    dir.join("state.json")
}

fn outbox(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("out")).map_or(0, |d| d.count())
}

#[test]
fn status_is_a_table_of_what_waits_the_streaks_and_what_the_policy_does() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    let config = job_toml(dir.path());

    let o = tool(&["status", "--config", s(&config)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("state file   {}", state.display())),
        "{out}"
    );
    assert!(out.contains("runs         2 flushed so far"), "{out}");
    assert!(
        out.contains("pending      5 records: 3 WARN, 2 INFO"),
        "{out}"
    );
    assert!(
        out.contains("  oldest     20") && out.contains("  newest     20"),
        "{out}"
    );
    assert!(out.contains("failures     RUNS  LEVEL  SINCE"), "{out}");
    let row = |label: &str| {
        out.lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .to_owned()
    };
    let b = row(r#"feed "b.json""#);
    assert!(b.trim_start().starts_with("2  WARN"), "{b}");
    assert!(b.contains("not yet"), "{b}");
    let c = row(r#"feed "c.json""#);
    assert!(c.trim_start().starts_with("1  WARN"), "{c}");
    assert!(c.contains("(streak over: not in the last run)"), "{c}");
    assert!(out.contains("last sent    never"), "{out}");
    assert!(out.contains("last error   none"), "{out}");
    assert!(
        out.contains(
            r#"policy       holds 5 records: feed "b.json" failed 2 of the 3 runs in a row needed"#
        ),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colours off a terminal: {out:?}");

    // Rules on the command line over the program's.
    let o = tool(&["status", "--config", s(&config), "--threshold", "2:warn"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("policy       sends 5 of the 5 pending records at the next flush"),
        "{}",
        stdout(&o)
    );
    // From the state file alone, the policy is not known: it says how to give it.
    let o = tool(&["status", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("policy       not known: give the program's settings"));
    // Colours when asked, and NO_COLOR does not turn `always` off.
    let o = tool_with(
        &["status", "--state-file", s(&state), "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    assert!(
        stdout(&o).contains("\x1b[33mWARN\x1b[0m"),
        "{:?}",
        stdout(&o)
    );
    // Looking changes nothing.
    let snapshot = StateFile::open(&state).snapshot().unwrap();
    assert_eq!((snapshot.pending.len(), snapshot.runs), (5, 2));
}

#[test]
fn status_says_which_failure_the_policy_keeps_quiet_and_until_when() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    // The third run reports b.json; the fourth holds it: quiet for a day.
    assert!(run(program(dir.path()), &["b.json"]).is_sent());
    let held = run(program(dir.path()), &["b.json"]);
    assert!(matches!(held, Outcome::Held { .. }), "{held}");
    let config = job_toml(dir.path());

    let o = tool(&["status", "--config", s(&config)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let b = out
        .lines()
        .find(|l| l.contains(r#"feed "b.json""#))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(b.trim_start().starts_with("4  WARN"), "{b}");
    assert!(
        b.contains("(quiet until ") && b.ends_with("(repeat_after))"),
        "{b}"
    );
    assert!(out.contains("last sent    20"), "{out}");
    let policy = out.lines().find(|l| l.starts_with("policy")).unwrap();
    assert!(
        policy.starts_with(r#"policy       holds 2 records: feed "b.json" reported at "#)
            && policy.contains(", quiet until "),
        "{policy}"
    );
    // The same rules without repeat_after: a streak is reported once.
    let o = tool(&[
        "status",
        "--state-file",
        s(&state),
        "--consecutive-runs",
        "3",
        "--fingerprint-field",
        "feed",
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o)
            .contains("(quiet until a run without it (consecutive_runs reports a streak once))"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn status_finds_the_state_from_the_environment_or_another_table_and_says_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    let env = [
        ("NIGHTLY_APP", "nightly-fetch"),
        ("NIGHTLY_STATE_FILE", s(&state)),
        ("NIGHTLY_THRESHOLD", "10:warn"),
    ];
    let o = tool_with(&["status", "--env", "NIGHTLY"], &env);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("holds 5 records: 3 of the 10 warnings or errors needed"),
        "{}",
        stdout(&o)
    );

    let nested = dir.path().join("jobs.toml");
    let text = std::fs::read_to_string(job_toml(dir.path()))
        .unwrap()
        .replace("[email", "[jobs.mail");
    std::fs::write(&nested, text).unwrap();
    let o = tool(&["status", "--config", s(&nested), "--table", "jobs.mail"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("pending      5 records"),
        "{}",
        stdout(&o)
    );
    // Without --table, the [email] table is missing: said, exit 1.
    let o = tool(&["status", "--config", s(&nested)]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("has no [email] table"),
        "{}",
        stderr(&o)
    );

    let missing = dir.path().join("not-yet.json");
    let o = tool(&["status", "--state-file", s(&missing)]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("state file   none at {}", missing.display())),
        "{}",
        stdout(&o)
    );
    assert!(!missing.exists(), "looking creates nothing");
    // A corrupt state file is an error, exit 1.
    std::fs::write(&missing, "{not json").unwrap();
    let o = tool(&["status", "--state-file", s(&missing)]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("not a valid state file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn show_prints_the_records_as_text_or_json_lines_for_jq() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());

    let o = tool(&["show", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].contains(r#" WARN cli: fetch failed feed="b.json""#),
        "{out}"
    );
    assert!(lines[2].contains(" INFO cli: run done"), "{out}");

    let o = tool(&["show", "--json", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let records: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(records.len(), 5);
    assert_eq!(records[1]["fields"]["feed"], "c.json");
    assert_eq!(records[1]["level"], "WARN");
    assert_eq!(records[1]["message"], "fetch failed");
    assert!(records[1]["time"].as_str().unwrap().starts_with("20"));

    let o = tool(&[
        "show",
        "--json",
        "--level",
        "warn",
        "--state-file",
        s(&state),
    ]);
    assert_eq!(stdout(&o).lines().count(), 3);
    let o = tool(&["show", "--level", "error", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    let missing = dir.path().join("missing.json");
    let o = tool(&["show", "--json", "--state-file", s(&missing)]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("no state file at"), "{}", stderr(&o));
}

/// One run of a program whose only destination is Alertmanager at `url`,
/// on host `node-1`: a warning about each of `feeds`, then the flush.
fn alerting_run(dir: &Path, url: &str, feeds: &[&str]) -> Outcome {
    let program = EmailLayer::builder("nightly-fetch")
        .state_file(dir.join("state.json"))
        .host("node-1")
        .immediately_at(tracing::Level::WARN)
        .fingerprint_fields(["feed"])
        .checkpoint_interval(None)
        .alerts(tracing_email::Alertmanager::new([url]).label("team", "media"));
    let (layer, guard) = program.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in feeds {
            tracing::warn!(feed, "fetch failed");
        }
        guard.flush()
    })
}

/// `show --json`'s lines that hold `key` (`alert`, `alert_post`).
fn json_lines(out: &str, key: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .filter_map(|v| v.get(key).cloned())
        .collect()
}

#[test]
fn status_and_show_json_show_the_alerts_firing_and_the_last_posts_answer() {
    let am = fake_alertmanager::FakeAlertmanager::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let outcome = alerting_run(dir.path(), &am.url(), &["b.json", "c.json"]);
    assert!(
        outcome
            .to_string()
            .starts_with("Alertmanager accepted 2 firing"),
        "{outcome}"
    );

    let o = tool(&["status", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "alerts       Alertmanager: 2 alerts firing")
        .unwrap_or_else(|| panic!("{out}"));
    for (row, feed) in lines[at + 1..at + 3].iter().zip(["b.json", "c.json"]) {
        assert!(
            row.starts_with(&format!(
                r#"               feed "{feed}" (warning): firing since "#
            )),
            "{out}"
        );
        assert!(
            row.contains("; accepted ")
                && row.ends_with(r#"; alertname="nightly-fetch", instance="node-1", team="media""#),
            "{out}"
        );
    }
    assert!(
        lines[at + 3].starts_with("               last post: ")
            && lines[at + 3]
                .ends_with(" UTC, accepted by 1 of 1 Alertmanager (2 firing, 0 resolved)"),
        "{out}"
    );

    let o = tool(&["show", "--json", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let alerts = json_lines(&out, "alert");
    assert_eq!(alerts.len(), 2, "{out}");
    let b = &alerts[0];
    assert_eq!(b["failure"], r#"feed "b.json""#);
    assert_eq!(
        (&b["status"], &b["severity"]),
        (&"firing".into(), &"warning".into())
    );
    assert_eq!(b["labels"]["instance"], "node-1");
    assert_eq!(b["labels"]["team"], "media");
    let post = &json_lines(&out, "alert_post")[0];
    assert_eq!(
        (&post["accepted"], &post["of"], &post["firing"]),
        (&1.into(), &1.into(), &2.into())
    );
    assert_eq!(b["last_accepted"], post["at"]);
    assert!(b["since"].as_str().unwrap().starts_with("20"), "{b}");
    // Alertmanager took the records (its only destination): none pending.
    assert_eq!(out.lines().count(), 3, "{out}");
    // --level error leaves out the warnings' alerts, not the post.
    let out = stdout(&tool(&[
        "show",
        "--json",
        "--level",
        "error",
        "--state-file",
        s(&state),
    ]));
    assert!(json_lines(&out, "alert").is_empty(), "{out}");
    assert_eq!(json_lines(&out, "alert_post").len(), 1, "{out}");

    // Alertmanager fails the next post: b.json fires still (its last
    // accepted post is the first), c.json is over but not resolved there.
    am.answer(503, "overloaded");
    assert!(alerting_run(dir.path(), &am.url(), &["b.json"]).is_failed());
    let out = stdout(&tool(&["status", "--state-file", s(&state)]));
    assert!(
        out.contains("alerts       Alertmanager: 1 alert firing, 1 resolution not accepted yet\n"),
        "{out}"
    );
    let row = |feed: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!(r#"               feed "{feed}""#)))
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned()
    };
    assert!(row("b.json").contains("firing since") && row("b.json").contains("; last accepted "));
    assert!(row("b.json").contains(", not by the post of "), "{out}");
    assert!(row("c.json").contains("over at "), "{out}");
    assert!(
        out.contains(&format!(
            "not accepted (1 firing, 1 resolved): no Alertmanager accepted the alerts ({}: HTTP \
             503, replying \"overloaded\")",
            am.url()
        )),
        "{out}"
    );
    am.answer(200, "");

    // A run without them posts c.json's resolution and b.json's kept
    // record; the next resolves b.json: no longer shown firing.
    assert!(alerting_run(dir.path(), &am.url(), &[]).is_alerted());
    let out = stdout(&tool(&["status", "--state-file", s(&state)]));
    assert!(out.contains("Alertmanager: 1 alert firing\n"), "{out}");
    assert!(out.contains("(1 firing, 1 resolved)"), "{out}");
    assert!(alerting_run(dir.path(), &am.url(), &[]).is_alerted());
    let out = stdout(&tool(&["status", "--state-file", s(&state)]));
    assert!(
        out.contains("alerts       Alertmanager: none firing\n"),
        "{out}"
    );
    assert!(!out.contains("firing since"), "{out}");
    assert!(
        out.contains("accepted by 1 of 1 Alertmanager (0 firing, 1 resolved)"),
        "{out}"
    );
    let out = stdout(&tool(&["show", "--json", "--state-file", s(&state)]));
    assert!(json_lines(&out, "alert").is_empty(), "{out}");
    assert_eq!(json_lines(&out, "alert_post")[0]["resolved"], 1, "{out}");
    assert_eq!(am.requests(), 4);
}

/// A URL for the mock server, logging in as USER.
fn url(server: &MockSmtp) -> String {
    format!(
        "smtp://poca%40example.com:{}@127.0.0.1:{}?tls=required",
        PASSWORD.replace(' ', "%20"),
        server.port()
    )
}

#[test]
fn send_sends_everything_pending_and_is_not_a_run() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    let before = StateFile::open(&state).snapshot().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();

    let o = tool(&[
        "send",
        "--state-file",
        s(&state),
        "--smtp-url",
        &url(&server),
        "--ca-cert",
        s(&ca),
        "--to",
        "ops@example.com",
    ]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "sent 5 records in 1 email\n");
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages[0].rcpt_to, ["ops@example.com"]);
    assert_eq!(
        messages[0].mail_from, USER,
        "the login's address by default"
    );
    let body = messages[0].text_body().unwrap();
    assert!(body.contains(r#"fetch failed feed="c.json""#), "{body}");

    let after = StateFile::open(&state).snapshot().unwrap();
    assert!(after.pending.is_empty());
    assert!(after.last_sent.is_some());
    assert_eq!(after.runs, before.runs, "not a run");
    assert_eq!(
        after.failures, before.failures,
        "the streaks stay, not reported"
    );

    // The program's third run in a row still meets consecutive_runs: the
    // streak was not broken, and b.json is reported as the rules say.
    let third = run(program(dir.path()), &["b.json"]);
    assert_eq!(third.to_string(), "sent 2 records in 1 email");
    assert_eq!(
        StateFile::open(&state).snapshot().unwrap().failures[0].runs,
        3
    );

    // Nothing left: exit 0, said.
    let o = tool(&["send", "--config", s(&job_toml(dir.path()))]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "nothing to send: no records are pending\n");
}

#[test]
fn send_through_the_programs_settings_and_with_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    let config = job_toml(dir.path());
    let o = tool(&["send", "--config", s(&config)]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "sent 5 records in 1 email\n");
    assert_eq!(outbox(dir.path()), 1, "the config's outbox");
    assert_eq!(StateFile::open(&state).snapshot().unwrap().runs, 2);

    run(program(dir.path()), &["d.json"]);
    let text = std::fs::read(&state).unwrap();
    let url = format!("smtp://127.0.0.1:{}", refused_port());
    let o = tool(&["send", "--config", s(&config), "--smtp-url", &url]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("not sent, 2 records are still pending in")
            && err.contains("refused the connection"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        text,
        "the file is as it was"
    );
}

/// A reply that echoed the login (the password, the AUTH PLAIN blob) is
/// the program's last error: `status` shows it with the secret hidden.
#[test]
fn status_shows_a_last_error_that_echoed_the_login_without_the_secret() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let secret = leaks::Secret::login(USER, PASSWORD);
    server.set_fault(Fault::Reply {
        command: Cmd::Auth,
        code: 535,
        text: format!("5.7.8 {PASSWORD} / {} rejected", secret.form(3)),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let smtp = tracing_email::Smtp::starttls("127.0.0.1")
        .port(server.port())
        .root_certificate(server.ca_pem())
        .credentials(USER, PASSWORD);
    let program = EmailLayer::builder("nightly-fetch")
        .transport(smtp)
        .state_file(&state)
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, tracing::Level::WARN)
        .checkpoint_interval(None);
    let outcome = run(program, &["b.json"]);
    assert!(outcome.is_failed(), "{outcome}");
    let o = tool(&["status", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("the server rejected the login (535, permanent): 5.7.8 *** / *** rejected"),
        "{out}"
    );
    secret.assert_absent("status", &out);
    secret.assert_absent("status's stderr", &stderr(&o));
}

/// Issue 19, case 2: `send` reads a state file with one hand-edited
/// record, moves it aside and keeps what could be read; the send fails,
/// and those records are still pending in the state file.
#[test]
fn a_failed_send_keeps_what_was_salvaged_from_a_corrupt_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    // The first run's 3 records are in the snapshot, the second's 2 in the
    // journal; one of the first is edited by hand into a non-record.
    let text = std::fs::read_to_string(&state).unwrap();
    let edited = text.replacen("\"level\":\"WARN\"", "\"level\":42", 1);
    assert_ne!(edited, text);
    std::fs::write(&state, edited).unwrap();

    let url = format!("smtp://127.0.0.1:{}", refused_port());
    let config = job_toml(dir.path());
    let o = tool(&["send", "--config", s(&config), "--smtp-url", &url]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("what could be read is kept: 2 records")
            && err.contains("not sent, 4 records are still pending in"),
        "{err}"
    );
    let after = StateFile::open(&state).snapshot().unwrap();
    assert!(after.exists);
    assert_eq!(after.pending.len(), 4, "the salvaged records stay");
    let o = tool(&["status", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("pending      4 records"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn clear_wants_yes_off_a_terminal_and_says_how_many_records_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());

    let o = tool(&["clear", "--state-file", s(&state)]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("would remove the 5 pending records of")
            && stderr(&o).contains("add --yes"),
        "{}",
        stderr(&o)
    );
    assert_eq!(StateFile::open(&state).snapshot().unwrap().pending.len(), 5);

    let o = tool(&["clear", "--yes", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with("removed 5 pending records; kept the history (2 failure streaks"),
        "{out}"
    );
    assert!(
        out.contains("`clear --all` forgets the history too"),
        "{out}"
    );
    let after = StateFile::open(&state).snapshot().unwrap();
    assert!(after.pending.is_empty());
    assert_eq!((after.failures.len(), after.runs), (2, 2));

    let o = tool(&["clear", "--all", "-y", "--state-file", s(&state)]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("every failure is new again"),
        "{}",
        stdout(&o)
    );
    let after = StateFile::open(&state).snapshot().unwrap();
    assert_eq!((after.failures.len(), after.runs), (0, 0));
}

/// Issue 19, case 11: `clear --env P` waits for the lock as long as the
/// program's `P_LOCK_TIMEOUT` says, not always 10 s.
#[test]
fn clear_waits_for_the_lock_as_long_as_the_programs_settings_say() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    // Held as a flush of the program holds it.
    let lock = std::fs::File::options()
        .write(true)
        .open(dir.path().join("state.json.lock"))
        .unwrap();
    lock.lock().unwrap();
    let env = [
        ("NIGHTLY_APP", "nightly-fetch"),
        ("NIGHTLY_STATE_FILE", s(&state)),
        ("NIGHTLY_LOCK_TIMEOUT", "1"),
    ];
    let started = std::time::Instant::now();
    let o = tool_with(&["clear", "--yes", "--env", "NIGHTLY"], &env);
    let took = started.elapsed();
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("stayed locked by another process for 1s"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(lock);
    assert_eq!(StateFile::open(&state).snapshot().unwrap().pending.len(), 5);
}

#[test]
fn test_sends_one_email_and_prints_the_servers_answer_or_the_failure() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let args = |url: String| {
        vec![
            "test".to_owned(),
            "--smtp-url".into(),
            url,
            "--ca-cert".into(),
            s(&ca).into(),
            "--to".into(),
            "me@example.com".into(),
        ]
    };
    let run_tool = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool(&args)
    };
    let o = run_tool(args(url(&server)));
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with("sent a test email from poca@example.com to me@example.com: 250 2.0.0 Ok: queued as MOCK"),
        "{out}"
    );
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    let subject = messages[0].subject().unwrap();
    assert!(
        subject.starts_with("[tracing-email] test email from tracing-email on "),
        "{subject}"
    );
    assert!(
        messages[0]
            .text_body()
            .unwrap()
            .contains("If you read it, they work")
    );

    // A wrong password: the server's refusal in words, exit 1.
    let wrong = url(&server).replace("correct", "wrong");
    let o = run_tool(args(wrong));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("was not sent: the server rejected the login (535, permanent)"),
        "{err}"
    );
    assert!(
        !err.contains("wrong%20horse") && !err.contains("wrong horse"),
        "{err}"
    );
    // The server is down.
    let o = run_tool(args(format!("smtp://127.0.0.1:{}", refused_port())));
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("refused the connection"),
        "{}",
        stderr(&o)
    );

    // Through the program's settings (its outbox): where it wrote.
    let o = tool(&["test", "--config", s(&job_toml(dir.path()))]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o)
            .starts_with("sent a test email from robot@example.com to me@example.com: written to "),
        "{}",
        stdout(&o)
    );
    assert_eq!(outbox(dir.path()), 1);
    assert!(
        !dir.path().join("state.json").exists(),
        "test touches no state"
    );
}

#[test]
fn bad_arguments_exit_2_and_every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state = s(&state);
    for bad in [
        &[][..],
        &["status"],
        &["frobnicate", "--app", "a"],
        &["status", "--app", "a", "--state-file", state],
        &["status", "--config", "a.toml", "--env", "A"],
        &["status", "--app", "a", "--table", "email"],
        &["status", "--app", "a", "--threshold", "0:warn"],
        &["status", "--app", "a", "--threshold", "3:loud"],
        &["status", "--app", "a", "--repeat-after", "1 week"],
        &["status", "--app", "a", "--consecutive-runs", "0"],
        &["show", "--state-file", state, "--level", "loud"],
        &["send", "--state-file", state],
        &[
            "send",
            "--state-file",
            state,
            "--smtp-url",
            "smtp://127.0.0.1:2525",
        ],
        &["send", "--state-file", state, "--smtp-url", "gopher://x"],
        &["clear", "--state-file", state, "--forget"],
        &["test", "--to", "me@example.com"],
        &["status", "--app", "a", "--color", "pink"],
    ] {
        let o = tool(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{bad:?} says why");
    }
    for command in ["status", "show", "send", "clear", "test"] {
        let o = tool(&[command, "--help"]);
        assert_exit(&o, 0);
        assert!(
            stdout(&o).contains(&format!("Usage: tracing-email {command}")),
            "{}",
            stdout(&o)
        );
    }
    let o = tool(&["--help"]);
    assert!(stdout(&o).contains("Exit status: 0 done, 1 failed"));
}

/// The long options of a `--help`, by the heading they are listed under.
fn options_by_heading(help: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            sections.push((heading.to_owned(), Vec::new()));
        } else if let (Some(option), Some((_, options))) = (
            line.split_whitespace().find(|w| w.starts_with("--")),
            sections.last_mut(),
        ) {
            options.push(option.trim_end_matches(',').to_owned());
        }
    }
    sections.retain(|(heading, _)| heading != "Usage" && heading != "Commands");
    sections
}

#[test]
fn every_commands_help_puts_where_the_state_is_apart_from_the_policy_and_the_rest() {
    let place = "Where the state is (one of --app, --state-file, --config, --env)";
    let places = ["--app", "--state-file", "--config", "--table", "--env"];
    let policy = "Policy (over the program's; durations as 90s, 15m, 24h, 7d)";
    let rules = [
        "--threshold",
        "--batch",
        "--immediately-at",
        "--consecutive-runs",
        "--repeat-after",
        "--min-interval",
        "--max-age",
        "--fingerprint-field",
    ];
    let sending = "Sending (over the program's settings)";
    let transport = ["--smtp-url", "--ca-cert", "--from", "--to"];
    let own: [(&str, &str, &[&str]); 5] = [
        ("status", policy, &rules),
        ("show", "Output", &["--json", "--level"]),
        ("send", sending, &transport),
        ("clear", "Clearing", &["--yes", "--all"]),
        ("test", sending, &transport),
    ];
    let owned = |options: &[&str]| options.iter().map(|o| o.to_string()).collect::<Vec<_>>();
    for (command, heading, options) in own {
        let o = tool(&[command, "--help"]);
        assert_exit(&o, 0);
        let mut expected = vec![
            ("Options".to_owned(), owned(&["--help"])),
            (heading.to_owned(), owned(options)),
        ];
        expected.push((place.to_owned(), owned(&places)));
        if command == "show" {
            expected[1].1.push("--color".into());
        } else {
            expected.push(("Output".into(), vec!["--color".into()]));
        }
        assert_eq!(
            options_by_heading(&stdout(&o)),
            expected,
            "{command} --help:\n{}",
            stdout(&o)
        );
    }
}

/// The tool on a terminal: run under `script` (util-linux, Essential in
/// Debian), which gives it a pseudo-terminal, `input` typed on it.
fn on_terminal(args: &str, input: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write as _;
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_tracing-email"));
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("script(1) from util-linux");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn on_a_terminal_clear_asks_first_and_status_has_colours_unless_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let state = two_runs(dir.path());
    let status = format!("status --state-file {}", s(&state));
    let o = on_terminal(&status, "", &[]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("\x1b[33mWARN\x1b[0m"),
        "{:?}",
        stdout(&o)
    );
    let o = on_terminal(&status, "", &[("NO_COLOR", "1")]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("pending      5 records") && !out.contains('\x1b'),
        "{out:?}"
    );

    let clear = format!("clear --state-file {}", s(&state));
    let o = on_terminal(&clear, "n\n", &[]);
    assert_exit(&o, 1);
    let out = stdout(&o);
    assert!(
        out.contains("Remove the 5 pending records of") && out.contains("nothing removed"),
        "{out:?}"
    );
    assert_eq!(StateFile::open(&state).snapshot().unwrap().pending.len(), 5);
    let o = on_terminal(&clear, "y\n", &[]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("removed 5 pending records"),
        "{:?}",
        stdout(&o)
    );
    assert!(
        StateFile::open(&state)
            .snapshot()
            .unwrap()
            .pending
            .is_empty()
    );
}

/// A bound the program's `build()` would refuse is refused by the command
/// too, naming the key: the status of a program that cannot start would be
/// a guess.
#[test]
fn a_config_out_of_bounds_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = job_toml(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("[email.policy]\n", "[email.policy]\nmin_interval = 0\n");
    std::fs::write(&config, text).unwrap();
    let o = tool(&["status", "--config", s(&config)]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("policy.min_interval: must be longer than 0 seconds"),
        "{}",
        stderr(&o)
    );
}
