//! Configuration from data: an `[email]` table in the program's own TOML
//! file, the same in JSON, and environment variables. Each setting that can
//! be seen from outside is checked by what it does; the rest by what was
//! parsed. The tests that need a variable in the environment run in a child
//! process (see `support::child`), so no test changes this one's.

#![cfg(feature = "smtp")]

use crate::support;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use support::child::{act_as_child_if_asked, command, outcome_line};
use support::setup::{PASSWORD, USER};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::{
    EmailConfig, EmailLayer, ErrorKind, Outcome, clock::ManualClock, inspect::WaitingFor,
};
use tracing_subscriber::prelude::*;

/// A program's whole configuration, of which the email settings are one
/// table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppConfig {
    feeds: Vec<String>,
    email: EmailConfig,
}

/// A path as a TOML string.
fn toml_path(path: &Path) -> String {
    toml::Value::String(path.to_str().unwrap().to_owned()).to_string()
}

/// The `.eml` files in `dir`, parsed: (headers as text, decoded text body).
fn outbox(dir: &Path) -> Vec<(String, String)> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let text = String::from_utf8_lossy(&raw);
            let head = text.split("\r\n\r\n").next().unwrap().to_owned();
            let subject = message.subject().unwrap_or_default();
            (
                format!("Subject: {subject}\r\n{head}"),
                message.body_text(0).unwrap().into_owned(),
            )
        })
        .collect()
}

/// Logs each warning, then flushes.
fn run(layer: EmailLayer, guard: &tracing_email::FlushGuard, warnings: &[&str]) -> Outcome {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for w in warnings {
            tracing::warn!(feed = "Radio Café", "{w}");
        }
        guard.flush()
    })
}

#[test]
fn a_full_toml_table_builds_a_layer_that_writes_into_the_outbox() {
    // capture_panics sets a panic hook for the whole process: in a process
    // of its own, so that no other test's panic becomes one of its records.
    support::child::in_own_process(
        "a_full_toml_table_builds_a_layer_that_writes_into_the_outbox",
        a_full_toml_table,
    );
}

fn a_full_toml_table() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("outbox"), dir.path().join("state.json"));
    let text = format!(
        r#"
        feeds = ["https://podcasts.example/1/rss", "https://podcasts.example/2/rss"]

        [email]
        app = "poca"
        outbox = {out}
        from = "poca <poca@example.com>"
        to = ["me@example.com", "Zoë <zoe@example.org>"]
        subject = "POCA log"
        state_file = {state}
        local_time = false
        max_pending = 500
        max_record_bytes = 64
        max_email_bytes = 100_000
        send_deadline = 5
        lock_timeout = 0.5
        checkpoint_interval = 0.25
        capture_panics = true

        [email.policy]
        threshold = {{ count = 3, level = "WARN" }}
        batch = 100
        immediately_at = "error"
        "#,
        out = toml_path(&out),
        state = toml_path(&state),
    );
    let config: AppConfig = toml::from_str(&text).unwrap();
    assert_eq!(config.feeds.len(), 2);
    let email = &config.email;
    assert_eq!(email.app, "poca");
    assert_eq!(email.outbox.as_deref(), Some(out.as_path()));
    assert_eq!(email.to, ["me@example.com", "Zoë <zoe@example.org>"]);
    assert_eq!(email.policy.threshold, Some((3, Level::WARN)));
    assert_eq!(email.policy.batch, Some(100));
    assert_eq!(email.policy.immediately_at, Some(Level::ERROR));
    assert_eq!(email.max_pending, 500);
    assert_eq!(email.max_email_bytes, 100_000);
    assert_eq!(email.send_deadline, Duration::from_secs(5));
    assert_eq!(email.lock_timeout, Duration::from_millis(500));
    assert_eq!(email.checkpoint_interval, Some(Duration::from_millis(250)));
    assert!(email.capture_panics && !email.local_time);

    let (layer, guard) = EmailLayer::from_config(email).unwrap();
    let long = "x".repeat(200);
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(feed = "Radio Café", "feed failed: {long}");
            let held = guard.flush();
            // capture_panics: the panic becomes an ERROR record, and
            // immediately_at = "error" sends it with the warning, although
            // the threshold (3) is not met.
            let _ = std::panic::catch_unwind(|| panic!("feed parser crashed"));
            (held, guard.flush())
        });
    assert!(
        matches!(
            outcome.0,
            Outcome::Held {
                pending: 1,
                waiting_for: WaitingFor::Threshold {
                    counted: 1,
                    needed: 3,
                    ..
                }
            }
        ),
        "{}",
        outcome.0
    );
    assert!(
        matches!(
            outcome.1,
            Outcome::Sent {
                records: 2,
                emails: 1
            }
        ),
        "{}",
        outcome.1
    );
    let mails = outbox(&out);
    assert_eq!(mails.len(), 1);
    let (head, body) = &mails[0];
    assert!(head.contains("Subject: POCA log\r\n"), "{head}");
    assert!(head.contains("From: poca <poca@example.com>"), "{head}");
    assert!(head.contains("me@example.com"), "{head}");
    assert!(head.contains("zoe@example.org"), "{head}");
    assert!(body.contains("panicked: feed parser crashed"), "{body}");
    // max_record_bytes = 64: the long message was cut, visibly.
    assert!(body.contains("…[cut: "), "{body}");
    assert!(!body.contains(&long), "{body}");
    assert!(state.exists(), "the state file is where the config says");
}

#[test]
fn the_same_table_in_json_reads_alike() {
    let config: EmailConfig = serde_json::from_str(
        r#"{"app": "poca", "outbox": "out", "to": "me@example.com", "subject": null,
            "policy": {"threshold": {"count": 2, "level": "error"},
                       "fingerprint_fields": "feed", "max_age": 0.5, "min_interval": null},
            "checkpoint_interval": false, "timeout": 1}"#,
    )
    .unwrap();
    assert_eq!(config.to, ["me@example.com"]);
    assert_eq!(config.subject, None);
    assert_eq!(config.policy.threshold, Some((2, Level::ERROR)));
    assert_eq!(config.policy.fingerprint_fields, ["feed"]);
    assert_eq!(config.policy.max_age, Some(Duration::from_millis(500)));
    assert_eq!(config.policy.min_interval, None);
    assert_eq!(config.checkpoint_interval, None);
    assert_eq!(config.timeout, Some(Duration::from_secs(1)));
    // null is a key left out, whatever its type.
    let nulls: EmailConfig = serde_json::from_str(
        r#"{"app": "poca", "to": null, "local_time": null, "policy": null,
            "max_pending": null, "checkpoint_interval": null}"#,
    )
    .unwrap();
    assert!(nulls.to.is_empty() && !nulls.local_time);
    assert_eq!(nulls.policy, Default::default());
    let default = EmailConfig::default();
    assert_eq!(
        (nulls.max_pending, nulls.checkpoint_interval),
        (default.max_pending, default.checkpoint_interval)
    );
}

fn is_held(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Held { .. })
}

/// One run of a program: builds the layer from `config` (a new run in the
/// state file's history), logs each warning, flushes.
fn run_with(config: &EmailConfig, warnings: &[&str]) -> Outcome {
    let (layer, guard) = EmailLayer::from_config(config).unwrap();
    run(layer, &guard, warnings)
}

#[test]
fn consecutive_runs_and_fingerprint_fields_follow_one_failure_across_runs() {
    let toml_config = |dir: &Path, extra: &str| -> EmailConfig {
        toml::from_str(&format!(
            "app = \"poca\"\noutbox = {}\nstate_file = {}\nfrom = \"poca@example.com\"\n\
             to = \"me@example.com\"\n[policy]\nconsecutive_runs = 2\n{extra}",
            toml_path(&dir.join("out")),
            toml_path(&dir.join("state.json")),
        ))
        .unwrap()
    };
    let env_config = |dir: &Path, extra: &[(&str, &str)]| -> EmailConfig {
        let (out, state) = (dir.join("out"), dir.join("state.json"));
        let base = [
            ("POCA_APP", "poca"),
            ("POCA_OUTBOX", out.to_str().unwrap()),
            ("POCA_STATE_FILE", state.to_str().unwrap()),
            ("POCA_FROM", "poca@example.com"),
            ("POCA_TO", "me@example.com"),
            ("POCA_CONSECUTIVE_RUNS", "2"),
        ];
        EmailConfig::from_vars("POCA", base.iter().chain(extra).copied()).unwrap()
    };
    // The feed's message changes from run to run; its `feed` field does not.
    let (first, second) = ("feed timed out after 30.2 s", "feed timed out after 31.7 s");

    for (source, by_feed, by_message) in [
        (
            "toml",
            Box::new(|d: &Path| toml_config(d, "fingerprint_fields = \"feed\""))
                as Box<dyn Fn(&Path) -> EmailConfig>,
            Box::new(|d: &Path| toml_config(d, "")) as Box<dyn Fn(&Path) -> EmailConfig>,
        ),
        (
            "env",
            Box::new(|d: &Path| env_config(d, &[("POCA_FINGERPRINT_FIELDS", "feed")])),
            Box::new(|d: &Path| env_config(d, &[])),
        ),
    ] {
        // By the feed: one failure, seen in each of the last 2 runs.
        let dir = tempfile::tempdir().unwrap();
        let config = by_feed(dir.path());
        assert_eq!(config.policy.consecutive_runs, Some(2), "{source}");
        assert_eq!(config.policy.fingerprint_fields, ["feed"], "{source}");
        let held = run_with(&config, &[first]);
        assert!(
            matches!(
                held,
                Outcome::Held {
                    pending: 1,
                    waiting_for: WaitingFor::Streak {
                        runs: 1,
                        needed: 2,
                        ..
                    }
                }
            ),
            "{source}: {held}"
        );
        let sent = run_with(&config, &[second]);
        assert!(
            matches!(
                sent,
                Outcome::Sent {
                    records: 2,
                    emails: 1
                }
            ),
            "{source}: {sent}"
        );
        let mails = outbox(&dir.path().join("out"));
        assert_eq!(mails.len(), 1, "{source}");
        let (head, body) = &mails[0];
        assert!(head.contains("Radio Café"), "{source}: {head}");
        assert!(
            body.contains("feed \"Radio Café\": feed timed out after 31.7 s; 2 records")
                && body.contains("last 2 runs"),
            "{source}: {body}"
        );

        // By the message: two different failures, each seen once.
        let dir = tempfile::tempdir().unwrap();
        let config = by_message(dir.path());
        assert!(is_held(&run_with(&config, &[first])), "{source}");
        let held = run_with(&config, &[second]);
        assert!(
            matches!(
                held,
                Outcome::Held {
                    pending: 2,
                    waiting_for: WaitingFor::Streak {
                        runs: 1,
                        needed: 2,
                        ..
                    }
                }
            ),
            "{source}: {held}"
        );
    }
}

#[test]
fn the_time_rules_of_the_policy_reach_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, policy: &str| -> EmailConfig {
        toml::from_str(&format!(
            "app = \"poca\"\noutbox = {}\nstate_file = {}\nfrom = \"poca@example.com\"\n\
             to = \"me@example.com\"\n[policy]\n{policy}",
            toml_path(&dir.path().join(name).join("out")),
            toml_path(&dir.path().join(name).join("state.json")),
        ))
        .unwrap()
    };
    let clock = ManualClock::new(std::time::SystemTime::now());
    let hour = Duration::from_secs(3600);
    // A run at the clock's time.
    let run_at = |config: &EmailConfig, warnings: &[&str]| {
        let (layer, guard) = config
            .builder()
            .unwrap()
            .clock(clock.clone())
            .build()
            .unwrap();
        run(layer, &guard, warnings)
    };

    // min_interval: the second email waits until an hour after the first.
    let c = config("min_interval", "min_interval = 3600");
    assert_eq!(c.policy.min_interval, Some(hour));
    assert!(run_at(&c, &["feed failed"]).is_sent());
    clock.advance(hour / 2);
    let waiting = run_at(&c, &["feed failed"]);
    assert!(
        matches!(waiting, Outcome::Waiting { pending: 1, .. }),
        "{waiting}"
    );
    clock.advance(hour / 2);
    assert!(run_at(&c, &[]).is_sent());

    // repeat_after: a failure reported once stays quiet for an hour.
    let c = config("repeat_after", "consecutive_runs = 1\nrepeat_after = 3600");
    assert_eq!(c.policy.repeat_after, Some(hour));
    assert!(run_at(&c, &["feed failed"]).is_sent());
    clock.advance(hour / 2);
    let quiet = run_at(&c, &["feed failed"]);
    assert!(is_held(&quiet), "{quiet}");
    clock.advance(hour / 2);
    let reminded = run_at(&c, &["feed failed"]);
    assert!(
        matches!(reminded, Outcome::Sent { records: 2, .. }),
        "{reminded}"
    );

    // max_age: one warning, below the threshold's count, is sent once it
    // has waited an hour.
    let c = config(
        "max_age",
        "threshold = { count = 5, level = \"warn\" }\nmax_age = 3600",
    );
    assert_eq!(c.policy.max_age, Some(hour));
    assert!(is_held(&run_at(&c, &["feed failed"])));
    clock.advance(hour / 2);
    assert!(is_held(&run_at(&c, &[])));
    clock.advance(hour / 2);
    assert!(run_at(&c, &[]).is_sent());
}

#[test]
fn html_false_and_max_detail_lines_shape_the_digest() {
    let warnings = [
        "feed 1 failed",
        "feed 2 failed",
        "feed 3 failed",
        "feed 4 failed",
    ];
    // The top Content-Type, whether the email holds an HTML part, and the
    // records listed one by one in its text.
    let digest = |config: &EmailConfig, out: &Path| {
        let sent = run_with(config, &warnings);
        assert!(
            matches!(
                sent,
                Outcome::Sent {
                    records: 4,
                    emails: 1
                }
            ),
            "{sent}"
        );
        let eml = std::fs::read_dir(out)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let raw = std::fs::read(eml).unwrap();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let ct = mail_parser::MimeHeaders::content_type(&message).unwrap();
        let top = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
        let has_html = String::from_utf8_lossy(&raw).contains("text/html");
        let text = message.body_text(0).unwrap().into_owned();
        let listed: Vec<String> = text
            .lines()
            .filter(|l| l.contains(" WARN it::config: "))
            .map(|l| l[l.find(" WARN").unwrap()..].to_owned())
            .collect();
        (top, has_html, listed, text)
    };
    let base = |dir: &Path| {
        format!(
            "app = \"poca\"\noutbox = {}\nstate_file = {}\nfrom = \"poca@example.com\"\n\
             to = \"me@example.com\"\n",
            toml_path(&dir.join("out")),
            toml_path(&dir.join("state.json")),
        )
    };

    // Left out: an HTML alternative, every record listed.
    let dir = tempfile::tempdir().unwrap();
    let config: EmailConfig = toml::from_str(&base(dir.path())).unwrap();
    assert_eq!((config.html, config.max_detail_lines), (true, 200));
    let (top, has_html, listed, _) = digest(&config, &dir.path().join("out"));
    // The text and HTML alternatives, and the log attached.
    assert_eq!(top, "multipart/mixed");
    assert!(has_html);
    assert_eq!(listed.len(), 4, "{listed:?}");

    for source in ["toml", "env"] {
        let dir = tempfile::tempdir().unwrap();
        let config: EmailConfig = if source == "toml" {
            let text = format!("{}html = false\nmax_detail_lines = 2\n", base(dir.path()));
            toml::from_str(&text).unwrap()
        } else {
            let (out, state) = (dir.path().join("out"), dir.path().join("state.json"));
            EmailConfig::from_vars(
                "POCA",
                [
                    ("POCA_APP", "poca"),
                    ("POCA_OUTBOX", out.to_str().unwrap()),
                    ("POCA_STATE_FILE", state.to_str().unwrap()),
                    ("POCA_FROM", "poca@example.com"),
                    ("POCA_TO", "me@example.com"),
                    ("POCA_HTML", "false"),
                    ("POCA_MAX_DETAIL_LINES", "2"),
                ],
            )
            .unwrap()
        };
        assert!(!config.html, "{source}");
        assert_eq!(config.max_detail_lines, 2, "{source}");
        let (top, has_html, listed, text) = digest(&config, &dir.path().join("out"));
        assert_eq!(top, "text/plain", "{source}");
        assert!(!has_html, "{source}");
        // The newest two, after a note on the two only counted.
        assert_eq!(
            listed,
            [
                " WARN it::config: feed 3 failed feed=\"Radio Café\"",
                " WARN it::config: feed 4 failed feed=\"Radio Café\""
            ],
            "{source}: {text}"
        );
        assert!(
            text.contains(
                "The newest 2 records follow, and 2 more (earlier) are only counted above."
            ),
            "{source}: {text}"
        );
    }
}

#[test]
fn to_is_one_string_or_a_list_and_every_address_gets_the_email() {
    let one: EmailConfig = toml::from_str(
        r#"app = "poca"
           to = "me@example.com, Ops <ops@example.com>""#,
    )
    .unwrap();
    assert_eq!(one.to, ["me@example.com, Ops <ops@example.com>"]);
    let list: EmailConfig = toml::from_str(
        r#"app = "poca"
           to = ["me@example.com", "Ops <ops@example.com>"]"#,
    )
    .unwrap();
    assert_eq!(list.to, ["me@example.com", "Ops <ops@example.com>"]);

    for mut config in [one, list] {
        let dir = tempfile::tempdir().unwrap();
        config.outbox = Some(dir.path().join("out"));
        config.state_file = Some(dir.path().join("state.json"));
        config.from = Some("poca@example.com".into());
        let (layer, guard) = EmailLayer::from_config(&config).unwrap();
        assert!(run(layer, &guard, &["feed failed"]).is_sent());
        let mails = outbox(&dir.path().join("out"));
        let to = mails[0]
            .0
            .lines()
            .find(|l| l.starts_with("To: "))
            .unwrap()
            .to_owned();
        assert!(
            to.contains("me@example.com") && to.contains("ops@example.com"),
            "{to}"
        );
    }
    let err = toml::from_str::<EmailConfig>("app = \"poca\"\nto = [\"a@b.c\", 5]").unwrap_err();
    assert!(
        err.to_string().contains("expected a string for `to`"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_errors_that_name_them() {
    for (text, key) in [
        ("app = \"poca\"\nsmpt_url = \"smtps://h\"", "`smpt_url`"),
        (
            "app = \"poca\"\n[policy]\ntreshold = { count = 5, level = \"warn\" }",
            "`treshold`",
        ),
        (
            "app = \"poca\"\n[policy]\nthreshold = { cnt = 5, level = \"warn\" }",
            "`cnt`",
        ),
    ] {
        let err = toml::from_str::<EmailConfig>(text).unwrap_err().to_string();
        assert!(err.contains(&format!("unknown field {key}")), "{err}");
    }
    // Inside the program's own config too, and in JSON.
    let err = toml::from_str::<AppConfig>("feeds = []\n[email]\napp = \"poca\"\ncolour = 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `colour`"), "{err}");
    let err = serde_json::from_str::<EmailConfig>(r#"{"app": "poca", "colour": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `colour`"), "{err}");
    let err = toml::from_str::<EmailConfig>("to = \"me@example.com\"").unwrap_err();
    assert!(err.to_string().contains("missing field `app`"), "{err}");
}

#[test]
fn bad_values_name_their_key_and_what_is_allowed() {
    let levels = "one of trace, debug, info, warn, error";
    for (text, wanted) in [
        (
            "[policy]\nthreshold = { count = 5, level = \"loud\" }",
            vec!["\"loud\"", levels, "`policy.threshold.level`"],
        ),
        (
            "[policy]\nimmediately_at = \"fatal\"",
            vec!["\"fatal\"", levels, "`policy.immediately_at`"],
        ),
        (
            "[policy]\nthreshold = { count = 0, level = \"warn\" }",
            vec!["at least 1", "`policy.threshold.count`"],
        ),
        (
            "[policy]\nthreshold = { count = 5 }",
            vec!["needs both `count` and `level`", "for `policy.threshold`"],
        ),
        (
            "[policy]\nthreshold = \"5:warn\"",
            vec!["{ count = 5, level = \"warn\" }", "`policy.threshold`"],
        ),
        ("[policy]\nbatch = 0", vec!["at least 1", "`policy.batch`"]),
        (
            "[policy]\nconsecutive_runs = 0",
            vec!["integer `0`", "at least 1", "`policy.consecutive_runs`"],
        ),
        (
            "[policy]\nconsecutive_runs = 1.5",
            vec!["whole number", "`policy.consecutive_runs`"],
        ),
        (
            "[policy]\nrepeat_after = -1",
            vec!["`-1`", "a number of seconds", "`policy.repeat_after`"],
        ),
        (
            "[policy]\nmax_age = \"soon\"",
            vec!["\"soon\"", "number of seconds", "`policy.max_age`"],
        ),
        (
            "[policy]\nfingerprint_fields = 5",
            vec![
                "a string or a list of strings",
                "`policy.fingerprint_fields`",
            ],
        ),
        (
            "[policy]\nfingerprint_fields = [\"feed\", 5]",
            vec!["a string for `policy.fingerprint_fields`"],
        ),
        (
            "max_pending = \"ten\"",
            vec!["\"ten\"", "whole number", "`max_pending`"],
        ),
        (
            "timeout = -1",
            vec!["`-1`", "a number of seconds", "`timeout`"],
        ),
        (
            "checkpoint_interval = true",
            vec!["false to turn checkpoints off", "`checkpoint_interval`"],
        ),
        (
            "capture_panics = \"yes\"",
            vec!["a boolean", "`capture_panics`"],
        ),
        (
            "notify_recovery = 1",
            vec!["a boolean", "`notify_recovery`"],
        ),
        ("html = \"no\"", vec!["a boolean", "`html`"]),
        (
            "max_detail_lines = 0",
            vec!["at least 1", "`max_detail_lines`"],
        ),
        ("outbox = 5", vec!["path string", "`outbox`"]),
    ] {
        let text = format!("app = \"poca\"\n{text}");
        let err = toml::from_str::<EmailConfig>(&text)
            .unwrap_err()
            .to_string();
        for w in wanted {
            assert!(err.contains(w), "{text}\n  wanted {w:?} in\n{err}");
        }
    }
    // A duration of 0 where one is wanted is read, then refused by the one
    // check (at from_config, as at build), naming the key.
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            "[policy]\nmin_interval = 0",
            "policy.min_interval: must be longer than 0 seconds",
        ),
        (
            "send_deadline = 0",
            "send_deadline: must be longer than 0 seconds",
        ),
        (
            "checkpoint_interval = 0",
            "checkpoint_interval: must be longer than 0 seconds (false, or None in code, turns checkpoints off)",
        ),
    ] {
        let text = format!(
            "app = \"poca\"\nfrom = \"poca@example.com\"\nto = \"me@example.com\"\n\
             outbox = {}\nstate_file = {}\n{text}",
            toml_path(&dir.path().join("out")),
            toml_path(&dir.path().join("state.json")),
        );
        let config: EmailConfig = toml::from_str(&text).unwrap();
        let err = EmailLayer::from_config(&config).unwrap_err().to_string();
        assert!(err.starts_with(wanted), "{text}\n{err}");
    }
    // The key is named whatever the format: JSON's errors show no line of text.
    let err = serde_json::from_str::<EmailConfig>(
        r#"{"app": "poca", "policy": {"threshold": {"count": 5, "level": "LOUD"}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`policy.threshold.level`") && err.contains(levels),
        "{err}"
    );
    // Levels are read in any case; numbers of seconds may have a fraction;
    // a lock timeout of 0 means not to wait.
    let ok: EmailConfig = toml::from_str(
        "app = \"poca\"\nlock_timeout = 0\ntimeout = 0.5\n[policy]\nimmediately_at = \"Error\"",
    )
    .unwrap();
    assert_eq!(ok.policy.immediately_at, Some(Level::ERROR));
    assert_eq!(ok.lock_timeout, Duration::ZERO);
    assert_eq!(ok.timeout, Some(Duration::from_millis(500)));
}

#[test]
fn from_config_names_the_keys_that_do_not_fit_together() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "app = \"poca\"\nto = \"me@example.com\"\nstate_file = {}\n",
        toml_path(&dir.path().join("state.json"))
    );
    let out = toml_path(&dir.path().join("out"));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    for (extra, kind, wanted) in [
        (
            format!("smtp_url = \"smtps://h\"\noutbox = {out}"),
            ErrorKind::Config,
            "smtp_url and outbox are both set",
        ),
        (
            String::new(),
            ErrorKind::Config,
            "neither smtp_url nor outbox is set",
        ),
        (
            format!("outbox = {out}\ntimeout = 3"),
            ErrorKind::Config,
            "timeout is set but smtp_url is not",
        ),
        (
            "smtp_url = \"http://h\"".into(),
            ErrorKind::Smtp,
            "smtp_url: the SMTP URL has scheme \"http\"",
        ),
        (
            "smtp_url = \"smtps://h\"\npassword_env = \"TRACING_EMAIL_CONFIG_TEST_NEVER_SET\""
                .into(),
            ErrorKind::Smtp,
            "password_env: the environment variable TRACING_EMAIL_CONFIG_TEST_NEVER_SET is not set",
        ),
        (
            format!(
                "smtp_url = \"smtps://h\"\nroot_certificate = {}",
                toml_path(&ca)
            ),
            ErrorKind::Smtp,
            "root_certificate: ",
        ),
        (
            format!(
                "smtp_url = \"smtps://h\"\nroot_certificate = {}",
                toml_path(&dir.path().join("missing.pem"))
            ),
            ErrorKind::Smtp,
            "root_certificate: could not read ",
        ),
        (
            format!("outbox = {out}\nfrom = \"robot@\""),
            ErrorKind::Config,
            "from: \"robot@\" is not a valid email address",
        ),
    ] {
        let text = format!("{base}{extra}");
        let mut config: EmailConfig = toml::from_str(&text).unwrap();
        config.from.get_or_insert_with(|| "poca@example.com".into());
        let err = EmailLayer::from_config(&config).unwrap_err();
        assert!(err.to_string().starts_with(wanted), "{text}\n{err}");
        assert_eq!(err.kind(), kind, "{text}");
    }
}

#[test]
fn from_vars_reads_every_key_and_the_threshold_as_count_colon_level() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let state = dir.path().join("state.json");
    let config = EmailConfig::from_vars(
        "POCA",
        [
            ("POCA_APP", "poca"),
            ("POCA_OUTBOX", out.to_str().unwrap()),
            ("POCA_FROM", "poca <poca@example.com>"),
            ("POCA_TO", "me@example.com, ops@example.com"),
            ("POCA_SUBJECT", "POCA log"),
            ("POCA_STATE_FILE", state.to_str().unwrap()),
            ("POCA_LOCAL_TIME", "false"),
            ("POCA_THRESHOLD", "2:Warn"),
            ("POCA_BATCH", "50"),
            ("POCA_IMMEDIATELY_AT", "ERROR"),
            ("POCA_MAX_PENDING", "500"),
            ("POCA_MAX_RECORD_BYTES", "4096"),
            ("POCA_MAX_EMAIL_BYTES", "100000"),
            ("POCA_SEND_DEADLINE", "2.5"),
            ("POCA_LOCK_TIMEOUT", "0"),
            ("POCA_CHECKPOINT_INTERVAL", "false"),
            ("POCA_CAPTURE_PANICS", "false"),
            ("POCA_NOTIFY_RECOVERY", "true"),
            ("POCA_FEEDS", "the program's own setting: ignored"),
            ("OTHER_APP", "another prefix: ignored"),
        ],
    )
    .unwrap();
    assert_eq!(config.app, "poca");
    assert_eq!(config.to, ["me@example.com, ops@example.com"]);
    assert_eq!(config.policy.threshold, Some((2, Level::WARN)));
    assert_eq!(config.policy.batch, Some(50));
    assert_eq!(config.policy.immediately_at, Some(Level::ERROR));
    assert_eq!(config.max_pending, 500);
    assert_eq!(config.max_record_bytes, 4096);
    assert_eq!(config.max_email_bytes, 100_000);
    assert_eq!(config.send_deadline, Duration::from_millis(2500));
    assert_eq!(config.lock_timeout, Duration::ZERO);
    assert_eq!(config.checkpoint_interval, None);
    assert!(!config.capture_panics && !config.local_time);
    assert!(config.notify_recovery);

    let (layer, guard) = EmailLayer::from_config(&config).unwrap();
    let held = run(layer.clone(), &guard, &["first"]);
    assert!(
        matches!(
            held,
            Outcome::Held {
                waiting_for: WaitingFor::Threshold { needed: 2, .. },
                ..
            }
        ),
        "{held}"
    );
    let sent = run(layer, &guard, &["second"]);
    assert!(sent.is_sent(), "{sent}");
    let mails = outbox(&out);
    assert!(
        mails[0].0.contains("Subject: POCA log\r\n"),
        "{}",
        mails[0].0
    );
    assert!(mails[0].0.contains("ops@example.com"), "{}", mails[0].0);
}

#[test]
fn from_vars_errors_name_the_variable_and_show_the_value() {
    for (name, value, wanted) in [
        (
            "POCA_BATCH",
            "ten",
            r#"POCA_BATCH: invalid type: string "ten", expected a whole number of at least 1"#,
        ),
        (
            "POCA_THRESHOLD",
            "5",
            r#"POCA_THRESHOLD: "5" is not COUNT:LEVEL, such as 5:warn"#,
        ),
        (
            "POCA_THRESHOLD",
            "5:loud",
            r#"POCA_THRESHOLD: "5:loud" is not COUNT:LEVEL"#,
        ),
        (
            "POCA_IMMEDIATELY_AT",
            "loud",
            r#"POCA_IMMEDIATELY_AT: invalid value: string "loud", expected one of trace, debug, info, warn, error"#,
        ),
        (
            "POCA_TIMEOUT",
            "-1",
            r#"POCA_TIMEOUT: invalid value: integer `-1`, expected a number of seconds, such as 10 or 0.5"#,
        ),
        (
            "POCA_CHECKPOINT_INTERVAL",
            "often",
            "or false to turn checkpoints off",
        ),
        (
            "POCA_LOCAL_TIME",
            "yes",
            r#"POCA_LOCAL_TIME: invalid type: string "yes", expected a boolean"#,
        ),
        (
            "POCA_HTML",
            "no",
            r#"POCA_HTML: invalid type: string "no", expected a boolean"#,
        ),
        (
            "POCA_MAX_DETAIL_LINES",
            "-3",
            r#"POCA_MAX_DETAIL_LINES: invalid value: integer `-3`, expected a whole number of at least 1"#,
        ),
        (
            "POCA_CONSECUTIVE_RUNS",
            "0",
            r#"POCA_CONSECUTIVE_RUNS: invalid value: integer `0`, expected a whole number of at least 1"#,
        ),
        (
            "POCA_MAX_AGE",
            "soon",
            r#"POCA_MAX_AGE: invalid type: string "soon", expected a number of seconds, such as 10 or 0.5"#,
        ),
        (
            "POCA_REPEAT_AFTER",
            "-0.5",
            r#"POCA_REPEAT_AFTER: invalid value: floating point `-0.5`, expected a number of seconds, such as 10 or 0.5"#,
        ),
        (
            "POCA_MIN_INTERVAL",
            "1h",
            r#"POCA_MIN_INTERVAL: invalid type: string "1h", expected a number of seconds"#,
        ),
        (
            "POCA_FINGERPRINT_FIELDS",
            "feed,,url",
            r#"POCA_FINGERPRINT_FIELDS: "feed,,url" is not field names separated by commas"#,
        ),
    ] {
        let err =
            EmailConfig::from_vars("POCA", [("POCA_APP", "poca"), (name, value)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains(wanted), "{err}");
        assert!(err.to_string().starts_with(name), "{err}");
    }
    let err = EmailConfig::from_vars("POCA", [("POCA_TO", "me@example.com")]).unwrap_err();
    assert!(err.to_string().starts_with("POCA_APP is not set"), "{err}");
    // A trailing underscore in the prefix is the same prefix.
    let config = EmailConfig::from_vars("POCA_", [("POCA_APP", "poca")]).unwrap();
    assert_eq!(config.app, "poca");
    assert!(EmailConfig::from_vars("", [("APP", "poca")]).is_err());
}

#[test]
fn the_password_never_shows_in_debug_or_in_an_error() {
    const SECRET: &str = "hunter2-Zebra";
    let dir = tempfile::tempdir().unwrap();
    let state = toml_path(&dir.path().join("state.json"));
    let base = format!(
        "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\nstate_file = {state}\n"
    );
    let in_url = format!("smtps://me%40example.com:{SECRET}@smtp.example.com");

    let mut configs = Vec::new();
    // In the URL, and the URL fine.
    let ok: EmailConfig = toml::from_str(&format!("{base}smtp_url = \"{in_url}\"")).unwrap();
    let text = format!("{ok:?}");
    assert!(
        text.contains("smtps://me%40example.com:***@smtp.example.com"),
        "{text}"
    );
    configs.push(ok.clone());
    // In the URL and again in password_env: given twice.
    configs.push(
        toml::from_str(&format!(
            "{base}smtp_url = \"{in_url}\"\npassword_env = \"X\""
        ))
        .unwrap(),
    );
    // In a URL that is wrong in another way.
    for url in [
        format!("http://me:{SECRET}@h"),
        format!("smtp://me:{SECRET}@h?tls=maybe"),
        format!("smtp://me:{SECRET}@h"), // over plain text, not allowed
        format!("smtps://me:{SECRET}@"),
    ] {
        configs.push(toml::from_str(&format!("{base}smtp_url = \"{url}\"")).unwrap());
    }
    // Set in code, with a URL that has no user.
    let mut no_user: EmailConfig =
        toml::from_str(&format!("{base}smtp_url = \"smtps://h\"")).unwrap();
    no_user.set_password(SECRET);
    configs.push(no_user);
    // From the environment, with another variable wrong, or both transports.
    let env = EmailConfig::from_vars(
        "POCA",
        [
            ("POCA_APP", "poca"),
            ("POCA_SMTP_URL", "smtps://me@h"),
            ("POCA_SMTP_PASSWORD", SECRET),
            ("POCA_OUTBOX", "out"),
        ],
    )
    .unwrap();
    configs.push(env);
    let err = EmailConfig::from_vars(
        "POCA",
        [
            ("POCA_APP", "poca"),
            ("POCA_SMTP_PASSWORD", SECRET),
            ("POCA_BATCH", "ten"),
        ],
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SECRET), "{text}");

    for config in configs {
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
        // The builder holds the settings too.
        if let Ok(builder) = config.builder() {
            let shown = format!("{builder:?} {builder:#?}");
            assert!(!shown.contains(SECRET), "{shown}");
        }
        let result = EmailLayer::from_config(&config);
        if let Ok((_layer, guard)) = result {
            std::mem::forget(guard); // a flush would try to send
            continue;
        }
        let err = result.err().unwrap();
        let text = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// The child of the two tests below: reads the configuration (from the file
/// named by the argument, or from the environment with the prefix given),
/// logs one warning, flushes and prints the outcome.
fn child(args: Vec<String>) -> u8 {
    let config = match args.as_slice() {
        [flag, prefix] if flag == "--env" => match EmailConfig::from_env(prefix) {
            Ok(c) => c,
            Err(e) => {
                println!("config error: {e}");
                return 2;
            }
        },
        [path] => {
            let text = std::fs::read_to_string(path).unwrap();
            toml::from_str::<AppConfig>(&text).unwrap().email
        }
        _ => return 2,
    };
    println!("config: {config:?}");
    let (layer, guard) = match EmailLayer::from_config(&config) {
        Ok(built) => built,
        Err(e) => {
            println!("build error: {e}");
            return 2;
        }
    };
    let outcome = run(layer, &guard, &["feed failed"]);
    println!("{outcome}");
    u8::from(!outcome.is_sent())
}

#[test]
fn smtp_url_and_password_env_log_in_at_the_mock_server() {
    act_as_child_if_asked(child);
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let path = dir.path().join("poca.toml");
    let text = format!(
        r#"
        feeds = []

        [email]
        app = "poca"
        smtp_url = "smtp://poca%40example.com@127.0.0.1:{port}?tls=required"
        password_env = "POCA_TEST_SMTP_PASSWORD"
        root_certificate = {ca}
        timeout = 1.5
        from = "poca <poca@example.com>"
        to = "me@example.com"
        state_file = {state}
        "#,
        port = server.port(),
        ca = toml_path(&ca),
        state = toml_path(&dir.path().join("state.json")),
    );
    std::fs::write(&path, text).unwrap();
    let args = vec![path.to_str().unwrap().to_owned()];
    let test = "smtp_url_and_password_env_log_in_at_the_mock_server";

    // Without the variable: an error that names it, and nothing sent.
    let output = command(test, &args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "build error: password_env: the environment variable POCA_TEST_SMTP_PASSWORD is not set"
        ),
        "{stdout}"
    );

    let output = command(test, &args)
        .env("POCA_TEST_SMTP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        outcome_line(&output).starts_with("sent 1 record in 1 email"),
        "{}",
        outcome_line(&output)
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(PASSWORD), "{stdout}");
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages[0].auth_user.as_deref(), Some(USER));
    assert!(messages[0].tls);
    assert_eq!(messages[0].rcpt_to, ["me@example.com"]);
}

#[test]
fn from_env_reads_the_process_environment_with_the_password_in_a_variable() {
    act_as_child_if_asked(child);
    let server = MockSmtp::start(Security::ImplicitTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    // A prefix no other variable has: the child gets these and what the
    // test process has, nothing more.
    let prefix = format!("TRACING_EMAIL_TEST_{}", std::process::id());
    let var = |key: &str| format!("{prefix}_{key}");
    let output = command(
        "from_env_reads_the_process_environment_with_the_password_in_a_variable",
        &["--env".to_owned(), prefix.clone()],
    )
    .env(var("APP"), "poca")
    .env(
        var("SMTP_URL"),
        format!("smtps://poca%40example.com@127.0.0.1:{}", server.port()),
    )
    .env(var("SMTP_PASSWORD"), PASSWORD)
    .env(var("ROOT_CERTIFICATE"), &ca)
    .env(var("TIMEOUT"), "1.5")
    .env(var("FROM"), "poca <poca@example.com>")
    .env(var("TO"), "me@example.com, Zoë <zoe@example.org>")
    .env(var("STATE_FILE"), dir.path().join("state.json"))
    .env(var("THRESHOLD"), "1:warn")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        outcome_line(&output).starts_with("sent 1 record in 1 email"),
        "{stdout}"
    );
    // The child printed its config: the password is not in it.
    assert!(stdout.contains("password: Some(***)"), "{stdout}");
    assert!(!stdout.contains(PASSWORD), "{stdout}");
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages[0].auth_user.as_deref(), Some(USER));
    assert_eq!(messages[0].rcpt_to, ["me@example.com", "zoe@example.org"]);
}

/// The guide page that lists every configuration key and variable (the one
/// copy of that list, on docs.rs as `tracing_email::guide::configuration`).
fn configuration_page() -> &'static str {
    include_str!("../../docs/guide/configuration.md")
}

#[test]
fn the_guide_example_file_parses_and_builds() {
    let section = configuration_page();
    let toml_start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = section[toml_start..].find("```").unwrap();
    let config: AppConfig = toml::from_str(&section[toml_start..toml_start + toml_len]).unwrap();
    let mut email = config.email;
    assert_eq!(email.policy.threshold, Some((5, Level::WARN)));
    assert_eq!(email.policy.consecutive_runs, Some(4));
    assert_eq!(email.policy.repeat_after, Some(Duration::from_secs(86_400)));
    assert_eq!(email.policy.fingerprint_fields, ["feed"]);
    assert_eq!((email.html, email.max_detail_lines), (true, 200));
    assert_eq!(email.password_env.as_deref(), Some("POCA_SMTP_PASSWORD"));
    assert!(email.notify_recovery);
    assert_eq!(email.flush_every, Some(Duration::from_secs(300)));
    // Everything else is accepted by the builder: take away what reads the
    // environment and the disk.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(email.alertmanager_urls.len(), 2);
    assert_eq!(email.alertmanager_labels["team"], "media");
    email.alertmanager_token_env = None;
    email.alertmanager_root_certificate = None;
    email.password_env = None;
    email.root_certificate = None;
    email.state_file = Some(dir.path().join("state.json"));
    email.capture_panics = false;
    let (_layer, guard) = EmailLayer::from_config(&email).unwrap();
    assert!(matches!(guard.flush(), Outcome::Nothing));
}

/// The README's short `[email]` table works as it stands, once its password
/// variable and state file are the test's own.
#[test]
fn the_readme_example_file_parses_and_builds() {
    #[derive(Deserialize)]
    struct File {
        email: EmailConfig,
    }
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n[email]\n").unwrap() + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let mut email = toml::from_str::<File>(&readme[start..start + len])
        .unwrap()
        .email;
    assert_eq!(email.policy.consecutive_runs, Some(4));
    assert_eq!(email.policy.repeat_after, Some(Duration::from_secs(86_400)));
    assert_eq!(email.policy.fingerprint_fields, ["feed"]);
    assert_eq!(email.password_env.as_deref(), Some("POCA_SMTP_PASSWORD"));
    let dir = tempfile::tempdir().unwrap();
    email.password_env = None;
    email.state_file = Some(dir.path().join("state.json"));
    let (_layer, guard) = EmailLayer::from_config(&email).unwrap();
    assert!(matches!(guard.flush(), Outcome::Nothing));
}

#[test]
fn every_variable_in_the_guide_is_read() {
    let section = configuration_page();
    let table = &section[section.find("# From environment variables").unwrap()..];
    let mut names: Vec<&str> = table
        .split('`')
        .filter(|w| {
            w.starts_with("POCA_") && w[5..].chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 20, "{names:?}");
    let base = [("POCA_APP", "poca")];
    let shown = |c: &EmailConfig| format!("{c:?}");
    let plain = shown(&EmailConfig::from_vars("POCA", base).unwrap());
    for name in names {
        if name == "POCA_APP" {
            continue;
        }
        // A value no key accepts but a text one: either the config changes
        // or the error names the variable.
        match EmailConfig::from_vars("POCA", [base[0], (name, "x")]) {
            Ok(c) => assert_ne!(shown(&c), plain, "{name} is not read"),
            Err(e) => assert!(e.to_string().starts_with(name), "{name}: {e}"),
        }
    }
}

/// Credentials over `smtp://` without TLS: the error from a config names the
/// keys that fix it, not the builder's methods, in the words of the origin.
#[test]
fn insecure_auth_from_a_config_names_the_keys_that_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[email]\napp = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
         smtp_url = \"smtp://me:{PASSWORD}@mail.example.com\"\nstate_file = {}\n",
        toml_path(&dir.path().join("state.json"))
    );
    #[derive(Debug, Deserialize)]
    struct Job {
        email: EmailConfig,
    }
    let mut config = toml::from_str::<Job>(&text).unwrap().email;
    for (table, key, allow) in [
        (None, "smtp_url: ", "allow_insecure_auth = true"),
        (
            Some("email"),
            "email.smtp_url: ",
            "email.allow_insecure_auth = true",
        ),
    ] {
        if let Some(table) = table {
            config.set_table(table);
        }
        let err = EmailLayer::from_config(&config).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Smtp);
        assert!(text.starts_with(key), "{text}");
        for wanted in ["smtps://", "?tls=required", allow, "mail.example.com:25"] {
            assert!(text.contains(wanted), "wanted {wanted:?} in {text}");
        }
        for rust in ["Smtp::", ".allow_insecure_auth()"] {
            assert!(!text.contains(rust), "{text}");
        }
        assert!(!text.contains(PASSWORD), "{text}");
    }
    // From the environment: the variables.
    let config = EmailConfig::from_vars(
        "POCA",
        [
            ("POCA_APP", "poca"),
            ("POCA_FROM", "a@example.com"),
            ("POCA_TO", "a@example.com"),
            (
                "POCA_SMTP_URL",
                "smtp://me:pw@mail.example.com?tls=opportunistic",
            ),
        ],
    )
    .unwrap();
    let err = EmailLayer::from_config(&config).unwrap_err().to_string();
    assert!(err.starts_with("POCA_SMTP_URL: "), "{err}");
    assert!(err.contains("POCA_ALLOW_INSECURE_AUTH=true"), "{err}");
    // The opt-in lets it through.
    let mut config: EmailConfig = toml::from_str(&format!(
        "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
         smtp_url = \"smtp://me:pw@mail.example.com\"\nallow_insecure_auth = true\n\
         state_file = {}\n",
        toml_path(&dir.path().join("state.json"))
    ))
    .unwrap();
    assert!(EmailLayer::from_config(&config).is_ok());
    config.allow_insecure_auth = false;
    assert!(EmailLayer::from_config(&config).is_err());
}

/// Errors found after parsing name the key with its table once the table is
/// named; errors of the deserializer name the key within the table, and the
/// format's error shows where in the file.
#[test]
fn set_table_puts_the_table_before_every_key_in_errors() {
    #[derive(Debug, Deserialize)]
    struct Job {
        email: EmailConfig,
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[email]\napp = \"poca\"\nto = \"me@example.com\"\nfrom = \"robot@\"\noutbox = {}\n",
        toml_path(&dir.path().join("out"))
    );
    let mut config = toml::from_str::<Job>(&text).unwrap().email;
    let err = EmailLayer::from_config(&config).unwrap_err().to_string();
    assert!(err.starts_with("from: \"robot@\""), "{err}");
    config.set_table("email");
    let err = EmailLayer::from_config(&config).unwrap_err().to_string();
    assert!(err.starts_with("email.from: \"robot@\""), "{err}");
    config.from = Some("robot@example.com".into());
    config.timeout = Some(Duration::from_secs(3));
    let err = EmailLayer::from_config(&config).unwrap_err().to_string();
    assert!(
        err.starts_with("email.timeout is set but email.smtp_url is not"),
        "{err}"
    );

    let err = toml::from_str::<Job>(
        "[email]\napp = \"poca\"\n[email.policy]\nthreshold = { count = 5, level = \"loud\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("`policy.threshold.level`"), "{err}");
}

/// Credentials against a server that offers no login on its port: the
/// outcome explains it and what to do, naming the config's key.
#[test]
fn credentials_against_a_server_without_auth_are_explained() {
    let server = MockSmtp::start(Security::ImplicitTls);
    // An EHLO reply without the AUTH line.
    server.set_fault(support::Fault::Reply {
        command: support::Cmd::Ehlo,
        code: 250,
        text: "mock.test greets you\n8BITMIME".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let text = format!(
        "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
         smtp_url = \"smtps://poca%40example.com@127.0.0.1:{}\"\nroot_certificate = {}\n\
         timeout = 2\nstate_file = {}\n",
        server.port(),
        toml_path(&ca),
        toml_path(&dir.path().join("state.json"))
    );
    let mut config: EmailConfig = toml::from_str(&text).unwrap();
    config.set_password(PASSWORD);
    let (layer, guard) = EmailLayer::from_config(&config).unwrap();
    let outcome = run(layer, &guard, &["feed failed"]);
    let Outcome::Failed { error, .. } = &outcome else {
        panic!("{outcome}");
    };
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Smtp);
    for wanted in [
        "offers no login on this port",
        "remove the user name and password from smtp_url",
        "587 with STARTTLS",
    ] {
        assert!(text.contains(wanted), "wanted {wanted:?} in {text}");
    }
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(server.messages().is_empty());
    drop(guard);

    // Made in code: the same, in the words of the code.
    let smtp = tracing_email::Smtp::tls("127.0.0.1")
        .port(server.port())
        .root_certificate(server.ca_pem())
        .credentials(USER, PASSWORD)
        .timeout(Duration::from_secs(2));
    let (layer, guard) = EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(dir.path().join("code.json"))
        .from("a@example.com")
        .to("a@example.com")
        .build()
        .unwrap();
    let outcome = run(layer, &guard, &["feed failed"]);
    let text = outcome.to_string();
    assert!(text.contains("offers no login on this port"), "{text}");
    assert!(text.contains("remove the credentials"), "{text}");
}

/// A key, lines of a file, variables (without their prefix).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// For each key, a value that is wrong in a file and one that is wrong in
/// its variable. The file's lines replace the base lines of the test that
/// set the same keys; a key of `policy.` goes in the `[policy]` table.
const BAD: &[Case] = &[
    (
        "smtp_url",
        "smtp_url = \"http://h\"",
        &[("SMTP_URL", "http://h")],
    ),
    (
        "password_env",
        "smtp_url = \"smtps://u@h\"\npassword_env = \"TRACING_EMAIL_TEST_NEVER_SET\"",
        &[
            ("SMTP_URL", "smtps://u@h"),
            ("PASSWORD_ENV", "TRACING_EMAIL_TEST_NEVER_SET"),
        ],
    ),
    (
        "password_command",
        "smtp_url = \"smtps://h\"\npassword_command = [\"pass\"]",
        &[("SMTP_URL", "smtps://h"), ("PASSWORD_COMMAND", "pass")],
    ),
    (
        "oauth2_token_command",
        "smtp_url = \"smtps://h\"\noauth2_token_command = \"helper\"",
        &[
            ("SMTP_URL", "smtps://h"),
            ("OAUTH2_TOKEN_COMMAND", "[\"helper\""),
        ],
    ),
    (
        "root_certificate",
        "smtp_url = \"smtps://h\"\nroot_certificate = \"/nonexistent/ca.pem\"",
        &[
            ("SMTP_URL", "smtps://h"),
            ("ROOT_CERTIFICATE", "/nonexistent/ca.pem"),
        ],
    ),
    ("timeout", "timeout = \"soon\"", &[("TIMEOUT", "soon")]),
    (
        "allow_insecure_auth",
        "allow_insecure_auth = \"yes\"",
        &[("ALLOW_INSECURE_AUTH", "yes")],
    ),
    // From the environment: the outbox and an SMTP URL, which exclude each other.
    ("outbox", "outbox = 5", &[("SMTP_URL", "smtps://h")]),
    ("from", "from = \"robot@\"", &[("FROM", "robot@")]),
    ("to", "to = \"not an address\"", &[("TO", "not an address")]),
    ("subject", "subject = \"{eror}\"", &[("SUBJECT", "{eror}")]),
    ("html", "html = \"no\"", &[("HTML", "no")]),
    ("state_file", "state_file = \"/\"", &[("STATE_FILE", "/")]),
    ("local_time", "local_time = 1", &[("LOCAL_TIME", "yes")]),
    (
        "policy.threshold",
        "[policy]\nthreshold = { count = 5 }",
        &[("THRESHOLD", "5")],
    ),
    ("policy.batch", "[policy]\nbatch = 0", &[("BATCH", "ten")]),
    (
        "policy.immediately_at",
        "[policy]\nimmediately_at = \"fatal\"",
        &[("IMMEDIATELY_AT", "loud")],
    ),
    (
        "policy.consecutive_runs",
        "[policy]\nconsecutive_runs = 0",
        &[("CONSECUTIVE_RUNS", "0")],
    ),
    (
        "policy.repeat_after",
        "[policy]\nrepeat_after = 0",
        &[("REPEAT_AFTER", "soon")],
    ),
    (
        "policy.min_interval",
        "[policy]\nmin_interval = 4e8",
        &[("MIN_INTERVAL", "4e8")],
    ),
    (
        "policy.max_age",
        "[policy]\nmax_age = \"soon\"",
        &[("MAX_AGE", "0")],
    ),
    (
        "policy.fingerprint_fields",
        "[policy]\nfingerprint_fields = [\" \"]",
        &[("FINGERPRINT_FIELDS", "a,,b")],
    ),
    ("max_pending", "max_pending = 0", &[("MAX_PENDING", "ten")]),
    (
        "max_record_bytes",
        "max_record_bytes = -1",
        &[("MAX_RECORD_BYTES", "0")],
    ),
    (
        "max_email_bytes",
        "max_email_bytes = 1.5",
        &[("MAX_EMAIL_BYTES", "1.5")],
    ),
    (
        "max_detail_lines",
        "max_detail_lines = \"all\"",
        &[("MAX_DETAIL_LINES", "all")],
    ),
    (
        "send_deadline",
        "send_deadline = 86401",
        &[("SEND_DEADLINE", "86401")],
    ),
    (
        "lock_timeout",
        "lock_timeout = -1",
        &[("LOCK_TIMEOUT", "-1")],
    ),
    (
        "checkpoint_interval",
        "checkpoint_interval = true",
        &[("CHECKPOINT_INTERVAL", "true")],
    ),
    (
        "flush_every",
        "flush_every = 0.5",
        &[("FLUSH_EVERY", "0.5")],
    ),
    (
        "capture_panics",
        "capture_panics = \"yes\"",
        &[("CAPTURE_PANICS", "yes")],
    ),
    (
        "notify_recovery",
        "notify_recovery = 1",
        &[("NOTIFY_RECOVERY", "1")],
    ),
    (
        "alertmanager_urls",
        "alertmanager_urls = \"ftp://am\"",
        &[("ALERTMANAGER_URLS", "ftp://am")],
    ),
    (
        "alertmanager_labels",
        "alertmanager_urls = \"http://127.0.0.1:9\"\nalertmanager_labels = { __x = \"1\" }",
        &[
            ("ALERTMANAGER_URLS", "http://127.0.0.1:9"),
            ("ALERTMANAGER_LABELS", "__x=1"),
        ],
    ),
    (
        "alertmanager_user",
        "alertmanager_urls = \"http://127.0.0.1:9\"\nalertmanager_user = \"poca\"",
        &[
            ("ALERTMANAGER_URLS", "http://127.0.0.1:9"),
            ("ALERTMANAGER_USER", "poca"),
        ],
    ),
    (
        "alertmanager_password_env",
        "alertmanager_urls = \"http://127.0.0.1:9\"\nalertmanager_user = \"poca\"\n\
         alertmanager_password_env = \"TRACING_EMAIL_TEST_NEVER_SET\"",
        &[
            ("ALERTMANAGER_URLS", "http://127.0.0.1:9"),
            ("ALERTMANAGER_USER", "poca"),
            ("ALERTMANAGER_PASSWORD_ENV", "TRACING_EMAIL_TEST_NEVER_SET"),
        ],
    ),
    (
        "alertmanager_token_env",
        "alertmanager_token_env = \"AM_TOKEN\"",
        &[("ALERTMANAGER_TOKEN_ENV", "AM_TOKEN")],
    ),
    (
        "alertmanager_root_certificate",
        "alertmanager_urls = \"https://am\"\nalertmanager_root_certificate = \"/nonexistent/ca.pem\"",
        &[
            ("ALERTMANAGER_URLS", "https://am"),
            ("ALERTMANAGER_ROOT_CERTIFICATE", "/nonexistent/ca.pem"),
        ],
    ),
    (
        "alertmanager_timeout",
        "alertmanager_timeout = \"soon\"",
        &[("ALERTMANAGER_TIMEOUT", "soon")],
    ),
    (
        "resolve_window",
        "alertmanager_urls = \"http://127.0.0.1:9\"\nresolve_window = 2592001",
        &[
            ("ALERTMANAGER_URLS", "http://127.0.0.1:9"),
            ("RESOLVE_WINDOW", "2592001"),
        ],
    ),
    ("host", "host = \" \"", &[("HOST", "\t")]),
];

/// Every key of the configuration page, read wrong from a file and from its
/// variable: the error (of reading, or of `from_config`) names the key, or
/// the variable.
#[test]
fn every_key_read_wrong_from_a_file_or_its_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state.json"));
    let base = [
        ("app", "poca".to_owned()),
        ("from", "poca@example.com".to_owned()),
        ("to", "me@example.com".to_owned()),
        ("outbox", out.to_str().unwrap().to_owned()),
        ("state_file", state.to_str().unwrap().to_owned()),
    ];
    let from_config = |c: EmailConfig| EmailLayer::from_config(&c).map(std::mem::forget);
    for &(key, lines, vars) in BAD {
        // A transport given by the case replaces the base's outbox.
        let sets = |k: &str| {
            let transport = ["outbox", "smtp_url", "alertmanager_urls"];
            let given = |k: &str| lines.lines().any(|l| l.starts_with(&format!("{k} =")));
            given(k) || k == "outbox" && transport.iter().any(|t| given(t))
        };
        let mut text: String = base
            .iter()
            .filter(|(k, _)| !sets(k))
            .map(|(k, v)| format!("{k} = {}\n", toml::Value::String(v.clone())))
            .collect();
        text.push_str(lines);
        let err = match toml::from_str::<EmailConfig>(&text) {
            Ok(config) => from_config(config).map_or_else(|e| e.to_string(), |()| text.clone()),
            Err(e) => e.to_string(),
        };
        let named = err.starts_with(key)
            || err.contains(&format!("`{key}`"))
            || err.contains(&format!("`{key}."));
        assert!(named, "{key}: {text}\n{err}");

        let var = |k: &str| format!("POCA_{}", k.to_ascii_uppercase());
        let name = var(key.rsplit('.').next().unwrap());
        let given = |k: &str| vars.iter().any(|(v, _)| *v == k.to_ascii_uppercase());
        let transport = ["SMTP_URL", "ALERTMANAGER_URLS"].iter().any(|t| given(t));
        let mut env: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| !(*k == "outbox" && transport && key != "outbox"))
            .map(|(k, v)| (var(k), v.clone()))
            .collect();
        env.extend(
            vars.iter()
                .map(|(v, value)| (format!("POCA_{v}"), value.to_string())),
        );
        let err = match EmailConfig::from_vars("POCA", env) {
            Ok(config) => from_config(config).map_or_else(|e| e.to_string(), |()| "built".into()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&name), "{name}: {vars:?}\n{err}");
    }
    // The one key no value of which is wrong but none: `app`.
    let err = toml::from_str::<EmailConfig>("to = \"me@example.com\"").unwrap_err();
    assert!(err.to_string().contains("missing field `app`"), "{err}");
    let err = EmailConfig::from_vars("POCA", [("POCA_TO", "me@example.com")]).unwrap_err();
    assert!(err.to_string().starts_with("POCA_APP"), "{err}");
    // Every variable of the configuration page has its case above.
    let page = include_str!("../../docs/guide/configuration.md");
    for found in page.split("`POCA_").skip(1) {
        let end = found.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
        let var = &found[..end.unwrap_or(found.len())];
        if var.is_empty() {
            continue; // `POCA_*`: all of them
        }
        let covered = var == "APP"
            || var == "SMTP_PASSWORD"
            || BAD
                .iter()
                .any(|(key, _, _)| key.rsplit('.').next().unwrap().eq_ignore_ascii_case(var));
        assert!(covered, "POCA_{var} has no case");
    }
}
