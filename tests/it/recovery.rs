//! `notify_recovery` and the strip of recent runs, as a user sees them:
//! runs simulated with a layer and guard each, over one state file, a
//! fixed clock and the mock SMTP server. A failure reported by email and
//! then absent from a run is said to be over once: alone, or in a digest
//! going out anyway; retried when the mail server is down, under
//! `min_interval` like any email.

#![cfg(feature = "smtp")]

use crate::support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::setup::smtp_for;
use support::smtp::Received;
use support::{MockSmtp, Security};
use tracing_email::{Builder, EmailLayer, Outcome, Smtp, clock::ManualClock};
use tracing_subscriber::prelude::*;

const HOUR: Duration = Duration::from_secs(3600);
const RADIO: &str = "Radio Café";

fn builder(state: &Path, smtp: Smtp, clock: &ManualClock) -> Builder {
    EmailLayer::builder("poca")
        .transport(smtp)
        .state_file(state)
        .from("poca <poca@example.com>")
        .to("me@example.com")
        .clock(clock.clone())
        .checkpoint_interval(None)
        .fingerprint_fields(["feed"])
        .host("web-3")
}

/// One run an hour after the last: a warning for each of `warn`, an error
/// for each of `error`, then the guard's flush.
fn run(builder: Builder, clock: &ManualClock, warn: &[&str], error: &[&str]) -> Outcome {
    clock.advance(HOUR);
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for feed in warn {
            tracing::warn!(feed, "feed failed");
        }
        for feed in error {
            tracing::error!(feed, "feed failed");
        }
        guard.flush()
    })
}

fn subjects(messages: &[Received]) -> Vec<String> {
    messages.iter().map(|m| m.subject().unwrap()).collect()
}

const START: u64 = 1_795_000_000;

/// The time of run `n` (an hour after the clock's start, each), as a
/// headline shows it (`13:06`).
fn run_time(n: u64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(START + n * 3600);
    format!("{:02}:{:02}", at.hour(), at.minute())
}

fn clock() -> ManualClock {
    ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(START))
}

/// A failure reported after 9 runs, then absent: one "resolved" email,
/// the next run says nothing more.
#[test]
fn a_reported_failure_that_stops_gets_one_resolved_email() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let b = || {
        builder(&state, smtp_for(&server), &clock)
            .consecutive_runs(9)
            .notify_recovery(true)
    };
    for i in 1..=9 {
        let outcome = run(b(), &clock, &[RADIO], &[]);
        assert_eq!(outcome.is_sent(), i == 9, "run {i}: {outcome}");
    }
    let outcome = run(b(), &clock, &[], &[]);
    assert!(
        matches!(
            outcome,
            Outcome::Resolved {
                pending: 0,
                waiting_for: None,
                ..
            }
        ),
        "{outcome}"
    );
    for _ in 0..3 {
        assert!(matches!(run(b(), &clock, &[], &[]), Outcome::Nothing));
    }
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    assert_eq!(
        subjects(&messages),
        [
            r#"[poca] feed "Radio Café" failing for 9 runs"#,
            r#"[poca] resolved: feed "Radio Café" OK again after failing 9 runs"#,
        ]
    );
    let body = messages[1].text_body().unwrap().replace("\r\n", "\n");
    // It leads with what is over, where, after how long and when.
    let (first, rest) = body.split_once('\n').unwrap();
    let (since, last) = (run_time(1), run_time(9));
    assert_eq!(
        first,
        format!(
            "Resolved: feed \"Radio Café\" is OK again on web-3 after failing 9 runs \
             ({since}–{last})"
        )
    );
    assert!(
        rest.starts_with("poca: 1 failure reported earlier is over.\n\nResolved:\n  WARN feed \"Radio Café\": OK again after failing 9 runs, from "),
        "{body}"
    );
    // It may fail again later: a new failure, reported by the policy anew.
    for _ in 0..9 {
        run(b(), &clock, &[RADIO], &[]);
    }
    assert_eq!(server.wait_for_messages(3, Duration::from_secs(5)).len(), 3);
}

/// A failure never reported (held by the policy) is not said to be over,
/// and without `notify_recovery` nothing is.
#[test]
fn without_notify_recovery_or_a_report_no_resolved_email() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let b = || builder(&state, smtp_for(&server), &clock).consecutive_runs(3);
    for _ in 0..3 {
        run(b(), &clock, &[RADIO], &[]);
    }
    for _ in 0..3 {
        let outcome = run(b(), &clock, &[], &[]);
        assert!(matches!(outcome, Outcome::Nothing), "{outcome}");
    }
    // On, but the failure was never reported: held two runs, then gone.
    let b = || b().notify_recovery(true);
    for _ in 0..2 {
        run(b(), &clock, &["Ääniraita"], &[]);
    }
    for _ in 0..2 {
        let outcome = run(b(), &clock, &[], &[]);
        assert!(
            matches!(outcome, Outcome::Held { pending: 2, .. }),
            "{outcome}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        subjects(&server.messages()),
        [r#"[poca] feed "Radio Café" failing for 3 runs"#]
    );
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(!text.contains("\"resolved\""), "{text}");
}

/// Over while another failure sends a digest: a Resolved section in it,
/// no second email.
#[test]
fn a_failure_over_while_a_digest_goes_out_rides_in_it() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let b = || {
        builder(&state, smtp_for(&server), &clock)
            .consecutive_runs(3)
            .immediately_at(tracing::Level::ERROR)
            .notify_recovery(true)
    };
    for _ in 0..3 {
        run(b(), &clock, &[RADIO], &[]);
    }
    let outcome = run(b(), &clock, &[], &["Ääniraita"]);
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 1,
                emails: 1
            }
        ),
        "{outcome}"
    );
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2, "no email of its own");
    // The next run says nothing: Radio Café was said once, and the error
    // reported after one run never persisted (no "OK again after failing
    // 1 run").
    let outcome = run(b(), &clock, &[], &[]);
    assert!(matches!(outcome, Outcome::Nothing), "{outcome}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2);
    let digest = &messages[1];
    assert!(!digest.subject().unwrap().contains("resolved"));
    let body = digest.text_body().unwrap().replace("\r\n", "\n");
    assert!(
        body.contains("What went wrong:\n  ERROR feed \"Ääniraita\""),
        "{body}"
    );
    assert!(
        body.contains(
            "\nResolved:\n  WARN feed \"Radio Café\": OK again after failing 3 runs, from "
        ),
        "{body}"
    );
    let html = digest.parsed().body_html(0).unwrap().into_owned();
    assert!(html.contains(">Resolved</p>"), "{html}");
    assert!(
        html.contains("feed &quot;Radio Café&quot;: OK again after failing 3 runs"),
        "{html}"
    );
}

/// The mail server down when the notice is due: the run fails, the notice
/// waits in the state file and goes out with the next run, once.
#[test]
fn a_resolved_notice_that_cannot_be_sent_is_retried_and_sent_once() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let on = |smtp: Smtp| {
        builder(&state, smtp, &clock)
            .consecutive_runs(2)
            .notify_recovery(true)
    };
    for _ in 0..2 {
        run(on(smtp_for(&server)), &clock, &[RADIO], &[]);
    }
    let down = Smtp::plain("127.0.0.1")
        .port(support::refused_port())
        .timeout(Duration::from_millis(500));
    let outcome = run(on(down), &clock, &[], &[]);
    let Outcome::Failed { error, .. } = &outcome else {
        panic!("{outcome}")
    };
    assert!(
        error
            .to_string()
            .contains("the notice that failures are over is sent by the next flush"),
        "{error}"
    );
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\"resolved\"")
    );
    let outcome = run(on(smtp_for(&server)), &clock, &[], &[]);
    assert!(
        matches!(
            outcome,
            Outcome::Resolved {
                pending: 0,
                waiting_for: None,
                ..
            }
        ),
        "{outcome}"
    );
    assert!(matches!(
        run(on(smtp_for(&server)), &clock, &[], &[]),
        Outcome::Nothing
    ));
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        subjects(&server.messages()),
        [
            r#"[poca] feed "Radio Café" failing for 2 runs"#,
            r#"[poca] resolved: feed "Radio Café" OK again after failing 2 runs"#,
        ]
    );
    drop(messages);
    assert!(
        !std::fs::read_to_string(&state)
            .unwrap()
            .contains("\"resolved\"")
    );
}

/// `min_interval` holds the notice as any email: it waits, then goes.
#[test]
fn a_resolved_notice_waits_for_min_interval() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let b = || {
        builder(&state, smtp_for(&server), &clock)
            .consecutive_runs(2)
            .min_interval(3 * HOUR)
            .notify_recovery(true)
    };
    for _ in 0..2 {
        run(b(), &clock, &[RADIO], &[]);
    }
    // One hour after the digest, then two: too soon.
    for _ in 0..2 {
        let outcome = run(b(), &clock, &[], &[]);
        assert!(
            matches!(outcome, Outcome::Waiting { pending: 0, .. }),
            "{outcome}"
        );
    }
    // Three hours after: it goes.
    let outcome = run(b(), &clock, &[], &[]);
    assert!(
        matches!(
            outcome,
            Outcome::Resolved {
                pending: 0,
                waiting_for: None,
                ..
            }
        ),
        "{outcome}"
    );
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    assert_eq!(
        subjects(&messages)[1],
        r#"[poca] resolved: feed "Radio Café" OK again after failing 2 runs"#
    );
}

/// The strip tells a flapping feed from a clean outage, in text and HTML.
#[test]
fn the_strip_shows_flapping_and_outage_apart() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    // Held at every run but the last (a threshold never met, then an
    // error sends at once).
    let b = || {
        builder(&state, smtp_for(&server), &clock)
            .threshold(1000, tracing::Level::WARN)
            .immediately_at(tracing::Level::ERROR)
    };
    let (flaky, down) = ("Flaky FM", RADIO);
    for i in 1..=7 {
        let mut warn = Vec::new();
        if i % 2 == 1 {
            warn.push(flaky);
        }
        if i >= 5 {
            warn.push(down);
        }
        let error: &[&str] = if i == 7 { &["Ääniraita"] } else { &[] };
        run(b(), &clock, &warn, error);
    }
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    let body = messages[0].text_body().unwrap();
    let line = |label: &str| {
        body.lines()
            .find(|l| l.contains(&format!(" feed {label:?}: ")))
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned()
    };
    assert!(
        line(flaky).ends_with("; last 7 runs, oldest first: ✗✓✗✓✗✓✗"),
        "{body}"
    );
    assert!(
        line(down).ends_with("in each of the last 3 runs; last 7 runs, oldest first: ✓✓✓✓✗✗✗"),
        "{body}"
    );
    assert!(line("Ääniraita").contains(": ✓✓✓✓✓✓✗"), "{body}");
    let html = messages[0].parsed().body_html(0).unwrap().into_owned();
    // In HTML, a glyph in each cell, colour as a second cue.
    let item = &html[html.find("Flaky FM").unwrap()..];
    let item = &item[item.find("last 7 runs, oldest first: ").unwrap()..];
    let item = &item[..item.find("</p>").unwrap()];
    assert_eq!(
        item.matches("background:#fce8e6\">✗</span>").count(),
        4,
        "{item}"
    );
    assert_eq!(
        item.matches("background:#e6f4ea\">✓</span>").count(),
        3,
        "{item}"
    );
}

/// The config key and its environment variable turn it on as the builder
/// method does.
#[test]
fn notify_recovery_from_a_file_or_the_environment() {
    for from_env in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (out, state) = (dir.path().join("outbox"), dir.path().join("state.json"));
        let config = if from_env {
            tracing_email::EmailConfig::from_vars(
                "POCA",
                [
                    ("POCA_APP", "poca"),
                    ("POCA_OUTBOX", out.to_str().unwrap()),
                    ("POCA_FROM", "poca@example.com"),
                    ("POCA_TO", "me@example.com"),
                    ("POCA_STATE_FILE", state.to_str().unwrap()),
                    ("POCA_CHECKPOINT_INTERVAL", "false"),
                    ("POCA_FINGERPRINT_FIELDS", "feed"),
                    ("POCA_NOTIFY_RECOVERY", "true"),
                ],
            )
            .unwrap()
        } else {
            toml::from_str::<tracing_email::EmailConfig>(&format!(
                "app = \"poca\"\noutbox = {out:?}\nfrom = \"poca@example.com\"\n\
                 to = \"me@example.com\"\nstate_file = {state:?}\n\
                 checkpoint_interval = false\nnotify_recovery = true\n\
                 policy = {{ fingerprint_fields = \"feed\" }}\n",
                out = out.to_str().unwrap(),
                state = state.to_str().unwrap(),
            ))
            .unwrap()
        };
        assert!(config.notify_recovery);
        let clock = clock();
        for warn in [&[RADIO][..], &[RADIO], &[]] {
            let b = config.builder().unwrap();
            let outcome = run(b.clock(clock.clone()), &clock, warn, &[]);
            let resolved = matches!(outcome, Outcome::Resolved { failures: 1, .. });
            assert!(
                outcome.is_sent() || warn.is_empty() && resolved,
                "{outcome}"
            );
        }
        let mut subjects: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| {
                let eml = std::fs::read(e.unwrap().path()).unwrap();
                let m = mail_parser::MessageParser::default().parse(&eml).unwrap();
                m.subject().unwrap().to_owned()
            })
            .collect();
        subjects.sort();
        assert_eq!(subjects.len(), 3, "{subjects:?}");
        assert_eq!(
            subjects[2], r#"[poca] resolved: feed "Radio Café" OK again after failing 2 runs"#,
            "{from_env}"
        );
    }
}

/// A state file written before the strip and the notices (version 2, no
/// `recent`, no `resolved`) loads, and its reported failure gets its notice.
#[test]
fn a_state_file_from_before_loads_and_its_reported_failure_is_resolved() {
    // In a process of its own: the crate says on stderr what it repaired,
    // which a test in this process would let through.
    crate::support::child::in_own_process(
        "a_state_file_from_before_loads_and_its_reported_failure_is_resolved",
        || {
            let server = MockSmtp::start(Security::Plain);
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state.json");
            std::fs::write(
            &state,
            r#"{"version":2,"generation":7310443990126471,"pending":[],"dropped":0,"last_sent":"2026-11-21T09:00:02Z","last_error":null,"history":{"runs":4,"streaks":{"5c3e0b7a9d41f268":{"label":"feed \"Radio Café\"","level":"WARN","runs":4,"last_run":4,"since":"2026-11-21T07:00:03.1Z","last_seen":"2026-11-21T10:00:03.25Z","reported":"2026-11-21T09:00:02Z","reported_runs":3}}}}"#,
        )
        .unwrap();
            let clock = clock();
            let b = builder(&state, smtp_for(&server), &clock)
                .consecutive_runs(3)
                .notify_recovery(true);
            let outcome = run(b, &clock, &[], &[]);
            assert!(
                matches!(
                    outcome,
                    Outcome::Resolved {
                        pending: 0,
                        waiting_for: None,
                        ..
                    }
                ),
                "{outcome}"
            );
            let messages = server.wait_for_messages(1, Duration::from_secs(5));
            assert_eq!(
                subjects(&messages),
                [r#"[poca] resolved: feed "Radio Café" OK again after failing 4 runs"#]
            );
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
            assert_eq!(v["version"], 3);
            // Runs may be in the journal: read as the crate reads them.
            assert_eq!(
                tracing_email::inspect::StateFile::open(&state)
                    .snapshot()
                    .unwrap()
                    .runs,
                5
            );
        },
    );
}

/// Several failures over in the same run: one email for them all.
#[test]
fn several_failures_over_at_once_make_one_email() {
    let server = MockSmtp::start(Security::Plain);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = clock();
    let b = || {
        builder(&state, smtp_for(&server), &clock)
            .consecutive_runs(2)
            .notify_recovery(true)
    };
    let feeds = [RADIO, "Ääniraita", "ポッドキャスト"];
    for _ in 0..2 {
        run(b(), &clock, &feeds, &[]);
    }
    let outcome = run(b(), &clock, &[], &[]);
    assert!(
        matches!(
            outcome,
            Outcome::Resolved {
                pending: 0,
                waiting_for: None,
                ..
            }
        ),
        "{outcome}"
    );
    assert!(matches!(run(b(), &clock, &[], &[]), Outcome::Nothing));
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2);
    assert!(
        messages[1]
            .subject()
            .unwrap()
            .ends_with(" and 2 more OK again"),
        "{:?}",
        messages[1].subject()
    );
    let body = messages[1].text_body().unwrap();
    let (first, rest) = body.split_once("\r\n").unwrap();
    assert!(
        first.starts_with("Resolved: feed \"")
            && first.ends_with("\" and 2 more failures are OK again on web-3"),
        "{body}"
    );
    assert!(
        rest.starts_with("poca: 3 failures reported earlier are over."),
        "{body}"
    );
    for feed in feeds {
        assert!(
            body.contains(&format!(
                "WARN feed {feed:?}: OK again after failing 2 runs"
            )),
            "{body}"
        );
    }
}
