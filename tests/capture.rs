//! What the layer captures, and how the guard flushes: in-process tests with
//! a transport that records what it is given.

mod support;

use serde_json::json;
use support::recorder::Recorder;
use tracing::Level;
use tracing_email::{EmailLayer, FlushGuard, Outcome, Record, WaitingFor};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::prelude::*;

fn build(
    dir: &std::path::Path,
    recorder: &Recorder,
    f: impl FnOnce(tracing_email::Builder) -> tracing_email::Builder,
) -> (EmailLayer, FlushGuard) {
    f(EmailLayer::builder("capture-test")
        .transport(recorder.clone())
        .state_file(dir.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com"))
    .build()
    .unwrap()
}

/// Logs through `layer` (with `filter`) and returns everything that was
/// sent at one flush.
fn capture<F>(filter: F, log: impl FnOnce()) -> Vec<Record>
where
    F: tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b.threshold(1, Level::TRACE));
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::with_default(subscriber, log);
    match guard.flush() {
        Outcome::Sent { .. } | Outcome::Nothing => {}
        other => panic!("unexpected outcome {other}"),
    }
    recorder.emails().concat()
}

#[derive(Debug)]
struct FetchError(std::io::Error);
impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fetching the feed failed")
    }
}
impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn every_field_is_kept_in_order_with_its_type() {
    let records = capture(LevelFilter::TRACE, || {
        let error = FetchError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        tracing::warn!(
            s = "Radio Café",
            i = -42i64,
            u = 7u64,
            f = 1.5f64,
            b = true,
            big = 1u128 << 100,
            d = ?vec![1, 2],
            disp = %"shown",
            error = &error as &(dyn std::error::Error + 'static),
            "feed {} failed",
            "x"
        );
    });
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.level, Level::WARN);
    assert_eq!(r.message, "feed x failed");
    assert_eq!(r.target, "capture");
    assert_eq!(r.module_path.as_deref(), Some("capture"));
    assert!(r.file.as_deref().unwrap().ends_with("capture.rs"));
    assert!(r.line.is_some());
    let names: Vec<&str> = r.fields.iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        ["s", "i", "u", "f", "b", "big", "d", "disp", "error"]
    );
    assert_eq!(r.fields.get("s"), Some(&json!("Radio Café")));
    assert_eq!(r.fields.get("i"), Some(&json!(-42)));
    assert_eq!(r.fields.get("u"), Some(&json!(7)));
    assert_eq!(r.fields.get("f"), Some(&json!(1.5)));
    assert_eq!(r.fields.get("b"), Some(&json!(true)));
    assert_eq!(
        r.fields.get("big"),
        Some(&json!("1267650600228229401496703205376"))
    );
    assert_eq!(r.fields.get("d"), Some(&json!("[1, 2]")));
    assert_eq!(r.fields.get("disp"), Some(&json!("shown")));
    assert_eq!(
        r.fields.get("error"),
        Some(&json!("fetching the feed failed: timed out"))
    );
    let age = time::OffsetDateTime::now_utc() - r.timestamp;
    assert!(age.whole_seconds() < 60 && r.timestamp.offset().is_utc());
}

#[test]
fn spans_are_recorded_outermost_first_with_later_values() {
    let records = capture(LevelFilter::TRACE, || {
        let run = tracing::info_span!("run", job = "nightly", late = tracing::field::Empty);
        let _entered = run.enter();
        run.record("late", 5);
        tracing::info_span!("fetch", feed = "Ääniraita").in_scope(|| {
            tracing::warn!("feed failed");
        });
        tracing::info!("outside fetch");
    });
    assert_eq!(records.len(), 2);
    let context: Vec<String> = records.iter().map(|r| r.span_context().unwrap()).collect();
    assert_eq!(
        context,
        [
            r#"in run{job="nightly" late=5} > fetch{feed="Ääniraita"}"#,
            r#"in run{job="nightly" late=5}"#
        ]
    );
    assert!(records[0].spans[0].fields.get("late") == Some(&json!(5)));
}

#[test]
fn level_filter_targets_and_env_filter_choose_what_is_captured() {
    let log = || {
        tracing::debug!("debug");
        tracing::info!("info");
        tracing::warn!(target: "noisy", "noisy warn");
        tracing::error!("error");
    };
    let messages =
        |records: Vec<Record>| -> Vec<String> { records.into_iter().map(|r| r.message).collect() };
    assert_eq!(
        messages(capture(LevelFilter::INFO, log)),
        ["info", "noisy warn", "error"]
    );
    let targets = Targets::new()
        .with_default(Level::DEBUG)
        .with_target("noisy", LevelFilter::OFF);
    assert_eq!(messages(capture(targets, log)), ["debug", "info", "error"]);
    let env = EnvFilter::new("warn,noisy=off");
    assert_eq!(messages(capture(env, log)), ["error"]);
}

#[test]
fn works_beside_the_fmt_layer() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(layer.with_filter(LevelFilter::INFO));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("job").in_scope(|| tracing::warn!("careful"));
        assert!(guard.flush().is_sent());
    });
    let emails = recorder.emails();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0][0].message, "careful");
    // The transport's own error! was not captured: it would have been a
    // second record, or a deadlock.
    assert_eq!(emails[0].len(), 1);
}

#[test]
fn flush_twice_or_flush_then_drop_never_sends_or_stores_twice() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b.threshold(2, Level::WARN));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!("one");
        let held = guard.flush();
        assert!(
            matches!(
                held,
                Outcome::Held {
                    pending: 1,
                    waiting_for: WaitingFor::Threshold {
                        counted: 1,
                        needed: 2,
                        ..
                    }
                }
            ),
            "{held}"
        );
        // Again, with nothing new: still one record, not two.
        let again = guard.flush();
        assert!(matches!(again, Outcome::Held { pending: 1, .. }), "{again}");
        tracing::warn!("two");
        let sent = guard.flush();
        assert!(
            matches!(
                sent,
                Outcome::Sent {
                    records: 2,
                    emails: 1
                }
            ),
            "{sent}"
        );
        assert!(matches!(guard.flush(), Outcome::Nothing));
        drop(guard);
    });
    let emails = recorder.emails();
    assert_eq!(emails.len(), 1);
    let messages: Vec<&str> = emails[0].iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["one", "two"]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["pending"], json!([]));
    assert!(state["last_sent"].is_string());
}

#[test]
fn drop_flushes_once_when_flush_was_never_called() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("at exit");
    });
    assert!(recorder.emails().is_empty());
    drop(guard);
    assert_eq!(recorder.emails().len(), 1);
}

#[test]
fn records_are_kept_across_guards_until_the_threshold_is_met() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    for run in 1..=3 {
        let (layer, guard) = build(dir.path(), &recorder, |b| b.threshold(5, Level::WARN));
        let outcome =
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                tracing::info!(run, "started");
                tracing::warn!(run, "feed failed");
                tracing::warn!(run, "other feed failed");
                guard.flush()
            });
        match run {
            1 => assert!(
                matches!(
                    outcome,
                    Outcome::Held {
                        pending: 3,
                        waiting_for: WaitingFor::Threshold {
                            counted: 2,
                            needed: 5,
                            ..
                        }
                    }
                ),
                "{outcome}"
            ),
            2 => assert!(
                matches!(
                    outcome,
                    Outcome::Held {
                        pending: 6,
                        waiting_for: WaitingFor::Threshold {
                            counted: 4,
                            needed: 5,
                            ..
                        }
                    }
                ),
                "{outcome}"
            ),
            _ => assert!(
                matches!(
                    outcome,
                    Outcome::Sent {
                        records: 9,
                        emails: 1
                    }
                ),
                "{outcome}"
            ),
        }
    }
    let emails = recorder.emails();
    assert_eq!(emails.len(), 1);
    let runs: Vec<i64> = emails[0]
        .iter()
        .map(|r| r.fields.get("run").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(runs, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
}

#[test]
fn a_failed_send_keeps_every_record_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    recorder.fail_with(Some("server on fire"));
    let (layer, guard) = build(dir.path(), &recorder, |b| b);
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!("first");
            tracing::error!("second");
            guard.flush()
        });
    match &outcome {
        Outcome::Failed { error, pending: 2 } => {
            assert!(error.to_string().contains("server on fire"), "{error}")
        }
        other => panic!("{other}"),
    }
    assert!(outcome.to_string().contains("2 records kept"), "{outcome}");
    drop(guard); // nothing new: no second attempt
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["pending"].as_array().unwrap().len(), 2);
    assert!(
        state["last_error"]
            .as_str()
            .unwrap()
            .contains("server on fire")
    );

    recorder.fail_with(None);
    let (layer, guard) = build(dir.path(), &recorder, |b| b);
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!("third");
            guard.flush()
        });
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 3,
                emails: 1
            }
        ),
        "{outcome}"
    );
    let messages: Vec<String> = recorder.emails()[0]
        .iter()
        .map(|r| r.message.clone())
        .collect();
    assert_eq!(messages, ["first", "second", "third"]);
}

#[test]
fn batch_sends_one_email_per_batch_and_the_rest_at_flush() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b.batch(10));
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for index in 0..102 {
                tracing::info!(index, "Info index = {index}");
            }
            // Full batches go out during the run, from the worker thread.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while recorder.emails().len() < 10 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert_eq!(
                recorder.emails().len(),
                10,
                "batches were not sent during the run"
            );
            guard.flush()
        });
    assert!(
        matches!(
            outcome,
            Outcome::Sent {
                records: 102,
                emails: 11
            }
        ),
        "{outcome}"
    );
    let emails = recorder.emails();
    let sizes: Vec<usize> = emails.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 2]);
    let order: Vec<i64> = emails
        .concat()
        .iter()
        .map(|r| r.fields.get("index").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..102).collect::<Vec<_>>());
}

#[test]
fn an_unwritable_state_file_fails_without_losing_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where a folder should be").unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("capture-test")
        .transport(recorder.clone())
        .state_file(blocker.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .build()
        .unwrap();
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!("precious");
            guard.flush()
        });
    match &outcome {
        Outcome::Failed { error, pending: 1 } => {
            assert_eq!(error.kind(), tracing_email::ErrorKind::State);
            assert!(error.to_string().contains("not-a-dir"), "{error}");
        }
        other => panic!("{other}"),
    }
    // The record went back to memory; a later flush still has it.
    assert!(matches!(guard.flush(), Outcome::Failed { pending: 1, .. }));
    assert!(recorder.emails().is_empty());
}

/// The subject of the one email sent after logging an INFO, two WARN and an
/// ERROR record through a layer set up by `f`, and the oldest record's time
/// at `offset` as `{first}` shows it.
fn subject_of_one_email(
    offset: time::UtcOffset,
    f: impl FnOnce(tracing_email::Builder) -> tracing_email::Builder,
) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| {
        f(b.threshold(1, Level::WARN).utc_offset(offset))
    });
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!("run started");
            tracing::warn!(feed = "Radio Café", "feed failed");
            tracing::error!("database is locked");
            tracing::warn!(feed = "ポッドキャスト", "feed failed");
            guard.flush()
        });
    assert!(outcome.is_sent(), "{outcome}");
    let sent = recorder.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let first = sent[0].records()[0]
        .timestamp
        .to_offset(offset)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]"
        ))
        .unwrap();
    (sent[0].subject().to_owned(), first)
}

#[test]
fn the_subject_template_is_filled_in_from_the_email() {
    let offset = time::UtcOffset::from_hms(2, 0, 0).unwrap();
    let (subject, first) = subject_of_one_email(offset, |b| {
        b.subject("[{app}@{host}] {errors} E, {warnings} W, worst {max_level}, {count} in all, {{first}} {first}")
    });
    let host = hostname::get().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        subject,
        format!("[capture-test@{host}] 1 E, 2 W, worst ERROR, 4 in all, {{first}} {first}")
    );
}

#[test]
fn the_default_subject_counts_errors_and_warnings_since_the_oldest_record() {
    let (subject, first) = subject_of_one_email(time::UtcOffset::UTC, |b| b);
    assert_eq!(
        subject,
        format!("[capture-test] 1 error, 2 warnings since {first}")
    );
}
