//! What the layer captures, and how the guard flushes: in-process tests with
//! a transport that records what it is given.

use crate::support;

use serde_json::json;
use support::recorder::Recorder;
use tracing::Level;
use tracing_email::{EmailLayer, FlushGuard, Outcome, inspect::WaitingFor, record::Record};
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
    assert_eq!(r.target, "it::capture");
    assert_eq!(r.module_path.as_deref(), Some("it::capture"));
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

/// Records made in one span share the list of its spans; a value recorded
/// later in any of them, outer or inner, shows in every record after it; an
/// explicit parent is honoured, and a span the layer's filter leaves out is
/// skipped.
#[test]
fn each_record_shows_its_spans_as_they_were_when_it_was_logged() {
    let records = capture(LevelFilter::INFO, || {
        let run = tracing::info_span!("run", step = 1);
        let _run = run.enter();
        let hidden = tracing::debug_span!("hidden", x = 1);
        let _hidden = hidden.enter();
        let fetch = tracing::info_span!("fetch", feed = "a", attempt = tracing::field::Empty);
        let _fetch = fetch.enter();
        tracing::info!("first");
        run.record("step", 2);
        tracing::info!("second");
        fetch.record("attempt", 3);
        tracing::info!("third");
        tracing::info_span!("parse").in_scope(|| tracing::info!("fourth"));
        tracing::info!(parent: &run, "fifth");
        run.record("step", 3);
        tracing::info!("sixth");
    });
    let context: Vec<String> = records.iter().map(|r| r.span_context().unwrap()).collect();
    assert_eq!(
        context,
        [
            r#"in run{step=1} > fetch{feed="a"}"#,
            r#"in run{step=2} > fetch{feed="a"}"#,
            r#"in run{step=2} > fetch{feed="a" attempt=3}"#,
            r#"in run{step=2} > fetch{feed="a" attempt=3} > parse"#,
            r#"in run{step=2}"#,
            r#"in run{step=3} > fetch{feed="a" attempt=3}"#,
        ]
    );
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
    let state = tracing_email::inspect::StateFile::open(dir.path().join("state.json"))
        .snapshot()
        .unwrap();
    assert!(state.pending.is_empty());
    assert!(state.last_sent.is_some());
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
    let state = tracing_email::inspect::StateFile::open(dir.path().join("state.json"))
        .snapshot()
        .unwrap();
    assert_eq!(state.pending.len(), 2);
    assert!(
        state
            .last_error
            .as_deref()
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
    // Once the state file can be written, the guard's drop sends it (the
    // default policy), printing nothing.
    std::fs::remove_file(&blocker).unwrap();
    drop(guard);
    let sent: Vec<Vec<String>> = recorder
        .emails()
        .iter()
        .map(|email| email.iter().map(|r| r.message.clone()).collect())
        .collect();
    assert_eq!(sent, [["precious"]]);
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
        format!("[capture-test] database is locked; 1 error, 2 warnings since {first}")
    );
}

/// Silences the panic hook for the panics the tests below make on purpose
/// (their message starts with "generated panic"); others are reported as
/// usual.
fn quiet_generated_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("generated panic")) {
                previous(info);
            }
        }));
    });
}

/// How a generated `Debug`/`Display` ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    Ok,
    /// `fmt::Error` after this many bytes of the text.
    ErrAfter(usize),
    /// A panic after this many bytes of the text.
    PanicAfter(usize),
}

/// A value whose `Debug` and `Display` write `text` in pieces of `piece`
/// bytes (at char boundaries), then end as `ending` says.
#[derive(Clone)]
struct Gen {
    text: String,
    piece: usize,
    ending: Ending,
}

impl Gen {
    fn new(text: &str, ending: Ending) -> Self {
        Gen {
            text: text.to_owned(),
            piece: 3,
            ending,
        }
    }

    fn write(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = match self.ending {
            Ending::Ok => self.text.len(),
            Ending::ErrAfter(k) | Ending::PanicAfter(k) => k.min(self.text.len()),
        };
        let mut at = 0;
        while at < end {
            let mut next = (at + self.piece).min(end);
            while !self.text.is_char_boundary(next) {
                next += 1;
            }
            f.write_str(&self.text[at..next])?;
            at = next;
        }
        match self.ending {
            Ending::Ok => Ok(()),
            Ending::ErrAfter(_) => Err(std::fmt::Error),
            Ending::PanicAfter(_) => panic!("generated panic in a Debug impl"),
        }
    }
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

impl std::fmt::Display for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

#[derive(Debug)]
struct GenError(Gen);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.write(f)
    }
}

impl std::error::Error for GenError {}

/// Asserts that `kept` is what a user may rely on for a value written by
/// `g`: all of it, or the start of what it wrote followed by a marker that
/// says why the rest is missing.
fn assert_kept(kept: &str, g: &Gen) {
    let Some(at) = kept.rfind("…[") else {
        assert_eq!(g.ending, Ending::Ok, "no marker in {kept:?}");
        assert_eq!(kept, g.text);
        return;
    };
    let (start, marker) = kept.split_at(at);
    // What `g` wrote before it ended (it writes whole characters).
    let mut written = match g.ending {
        Ending::Ok => g.text.len(),
        Ending::ErrAfter(k) | Ending::PanicAfter(k) => k.min(g.text.len()),
    };
    while !g.text.is_char_boundary(written) {
        written += 1;
    }
    assert!(
        g.text[..written].starts_with(start),
        "{start:?} is not the start of what {:?} wrote",
        g.text
    );
    match marker {
        "…[formatting failed]" => assert!(matches!(g.ending, Ending::ErrAfter(_)), "{marker}"),
        "…[formatting panicked]" => {
            assert!(matches!(g.ending, Ending::PanicAfter(_)), "{marker}")
        }
        m => {
            let n: usize = m
                .strip_prefix("…[cut: at least ")
                .and_then(|m| m.strip_suffix(" bytes]"))
                .unwrap_or_else(|| panic!("unexpected marker {m:?}"))
                .parse()
                .unwrap();
            assert!(n > start.len() && n <= written, "{m} for {:?}", g.text);
        }
    }
}

#[test]
fn a_failing_or_panicking_debug_or_display_is_captured_with_a_marker() {
    quiet_generated_panics();
    let records = capture(LevelFilter::TRACE, || {
        let span = tracing::info_span!(
            "job",
            bad = ?Gen::new("span half", Ending::ErrAfter(4)),
            late = tracing::field::Empty
        );
        span.record(
            "late",
            tracing::field::debug(Gen::new("late half", Ending::PanicAfter(4))),
        );
        let _entered = span.enter();
        let error = GenError(Gen::new("error half", Ending::ErrAfter(5)));
        tracing::warn!(
            debug = ?Gen::new("debug half", Ending::ErrAfter(5)),
            display = %Gen::new("display half", Ending::ErrAfter(7)),
            panics = ?Gen::new("boom", Ending::PanicAfter(2)),
            error = &error as &(dyn std::error::Error + 'static),
            fine = 1,
            "message {}",
            Gen::new("half", Ending::ErrAfter(2))
        );
        tracing::warn!("after {}", Gen::new("x", Ending::PanicAfter(0)));
        tracing::warn!("still captured");
    });
    let messages: Vec<&str> = records.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "message ha…[formatting failed]",
            "after …[formatting panicked]",
            "still captured"
        ]
    );
    let r = &records[0];
    assert_eq!(
        r.fields.get("debug"),
        Some(&json!("debug…[formatting failed]"))
    );
    assert_eq!(
        r.fields.get("display"),
        Some(&json!("display…[formatting failed]"))
    );
    assert_eq!(
        r.fields.get("panics"),
        Some(&json!("bo…[formatting panicked]"))
    );
    assert_eq!(
        r.fields.get("error"),
        Some(&json!("error…[formatting failed]"))
    );
    assert_eq!(r.fields.get("fine"), Some(&json!(1)));
    assert_eq!(
        r.span_context().unwrap(),
        r#"in job{bad="span…[formatting failed]" late="late…[formatting panicked]"}"#
    );
}

#[test]
fn beside_the_fmt_layer_a_failing_debug_panics_neither() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = build(dir.path(), &recorder, |b| b);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let error = GenError(Gen::new("bad error", Ending::ErrAfter(3)));
        tracing::warn!(
            d = ?Gen::new("x", Ending::ErrAfter(1)),
            e = &error as &(dyn std::error::Error + 'static),
            "logged"
        );
    });
    assert!(guard.flush().is_sent());
    let r = &recorder.emails()[0][0];
    assert_eq!(r.message, "logged");
    assert_eq!(r.fields.get("d"), Some(&json!("x…[formatting failed]")));
    assert_eq!(r.fields.get("e"), Some(&json!("bad…[formatting failed]")));
}

/// A small deterministic generator (xorshift64*), so a failure can be
/// replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Text of up to `max` characters, among them the ones that are escaped
    /// somewhere (controls, quotes, separators, bidi controls).
    fn text(&mut self, max: usize) -> String {
        const ODD: [char; 16] = [
            '\r', '\n', '\t', '\0', '\u{1b}', '\u{7f}', '\u{85}', '"', '\\', 'é', '😀', '\u{2028}',
            '\u{202e}', '<', '&', '\u{301}',
        ];
        let len = self.below(max + 1);
        (0..len)
            .map(|_| {
                if self.below(4) == 0 {
                    ODD[self.below(ODD.len())]
                } else {
                    char::from(b'a' + self.below(26) as u8)
                }
            })
            .collect()
    }

    /// A value with an arbitrary `Debug`/`Display` outcome: whole, an error
    /// after some bytes, or a panic after some bytes.
    fn value(&mut self, max: usize) -> Gen {
        let text = self.text(max);
        let at = self.below(text.len() + 1);
        let ending = match self.below(6) {
            0 => Ending::ErrAfter(at),
            1 => Ending::PanicAfter(at),
            _ => Ending::Ok,
        };
        Gen {
            text,
            piece: 1 + self.below(64),
            ending,
        }
    }
}

#[test]
fn arbitrary_debug_outcomes_never_panic_lose_a_record_or_break_the_bound() {
    quiet_generated_panics();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for bound in [1, 64, 300, 2000, 16 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let (layer, guard) = build(dir.path(), &recorder, |b| {
            b.threshold(1, Level::TRACE).max_record_bytes(bound)
        });
        let max = 3 * bound.min(3000);
        let mut made = Vec::new();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for _ in 0..40 {
                let depth = rng.below(4);
                let mut spans = Vec::new();
                let mut span_values = Vec::new();
                for _ in 0..depth {
                    let (v, late) = (rng.value(max), rng.value(max));
                    let span = tracing::info_span!("s", v = ?v, late = tracing::field::Empty);
                    span.record("late", tracing::field::display(&late));
                    span_values.push((v, late));
                    spans.push(span.entered());
                }
                let (m, a, b, e) = (
                    rng.value(max),
                    rng.value(max),
                    rng.value(max),
                    rng.value(max),
                );
                let error = GenError(e.clone());
                tracing::warn!(
                    a = ?a,
                    b = %b,
                    n = 7,
                    e = &error as &(dyn std::error::Error + 'static),
                    "{}",
                    m
                );
                made.push((m, [a, b, e], span_values));
                while spans.pop().is_some() {}
            }
        });
        let outcome = guard.flush();
        assert!(outcome.is_sent(), "{outcome}");
        let records = recorder.emails().concat();
        assert_eq!(records.len(), made.len(), "a record was lost");
        for (r, (m, values, span_values)) in records.iter().zip(&made) {
            let names = r.target.len()
                + r.module_path.as_deref().map_or(0, str::len)
                + r.file.as_deref().map_or(0, str::len);
            let json = serde_json::to_string(r).unwrap();
            assert!(
                json.len() <= bound + 512 + names,
                "{} > {bound}: {json}",
                json.len()
            );
            let line = r.to_line(time::UtcOffset::UTC);
            let context = r.span_context().unwrap_or_default();
            assert!(line.len() + context.len() <= bound + 512 + names);
            assert!(
                !line.chars().chain(context.chars()).any(char::is_control),
                "{line:?} {context:?}"
            );
            assert_kept(&r.message, m);
            let present: Vec<&str> = r.fields.iter().map(|(k, _)| k).collect();
            for (name, g) in ["a", "b", "e"].into_iter().zip(values) {
                if let Some(v) = r.fields.get(name) {
                    assert_kept(v.as_str().unwrap(), g);
                }
            }
            // The fields kept are the first ones; the others are counted.
            let all = ["a", "b", "n", "e"];
            let left_out = r
                .fields
                .get("fields_left_out")
                .map_or(0, |v| v.as_u64().unwrap());
            let kept = &present[..present.len() - usize::from(left_out > 0)];
            assert_eq!(kept, &all[..kept.len()], "{present:?}");
            assert_eq!(kept.len() + left_out as usize, all.len());
            // Spans kept whole or cut are the outermost ones.
            for (span, (v, late)) in r.spans.iter().zip(span_values) {
                if span.name != "s" {
                    assert!(span.name.ends_with(" left out]"), "{}", span.name);
                    break;
                }
                if let Some(kept) = span.fields.get("v") {
                    assert_kept(kept.as_str().unwrap(), v);
                }
                if let Some(kept) = span.fields.get("late") {
                    assert_kept(kept.as_str().unwrap(), late);
                }
            }
        }
    }
}
