//! Bounds: how many records are kept, how big one record may be, how big
//! one email may be.

#![cfg(feature = "smtp")]

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::recorder::Recorder;
use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailLayer, Outcome, record::Record};
use tracing_subscriber::prelude::*;

/// The state as the crate reads it (the snapshot and its journal).
fn state_of(path: &std::path::Path) -> tracing_email::inspect::Snapshot {
    tracing_email::inspect::StateFile::open(path)
        .snapshot()
        .unwrap()
}

/// Thousands of events, some with fields and some without, past
/// `max_pending` within one run: the newest are kept in order, each with its
/// own message and fields, across the buffer's chunks of records.
#[test]
fn the_newest_of_many_events_keep_their_own_messages_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("bounds")
        .transport(recorder.clone())
        .state_file(dir.path().join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .max_pending(2500)
        .threshold(1, Level::INFO)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..6000u64 {
            match n % 3 {
                0 => tracing::info!("plain {n}"),
                1 => tracing::info!(n, "one field {n}"),
                _ => tracing::info!(n, text = %format!("é{n}"), "two fields {n}"),
            }
        }
    });
    let sent = guard.flush();
    assert!(
        matches!(sent, Outcome::Sent { records: 2500, .. }),
        "{sent}"
    );
    let records: Vec<Record> = recorder
        .sent
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| e.records().to_vec())
        .collect();
    assert_eq!(records.len(), 2500);
    for (record, n) in records.iter().zip(3500u64..) {
        let (message, fields) = match n % 3 {
            0 => (format!("plain {n}"), vec![]),
            1 => (format!("one field {n}"), vec![("n", json!(n))]),
            _ => (
                format!("two fields {n}"),
                vec![("n", json!(n)), ("text", json!(format!("é{n}")))],
            ),
        };
        assert_eq!(record.message, message);
        let got: Vec<(&str, serde_json::Value)> =
            record.fields.iter().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(got, fields, "{message}");
    }
}

#[test]
fn beyond_max_pending_the_oldest_are_dropped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let recorder = Recorder::default();
    let run = |first: usize, count: usize, send: bool| {
        let (layer, guard) = EmailLayer::builder("bounds")
            .transport(recorder.clone())
            .state_file(&state)
            .from("robot@example.com")
            .to("me@example.com")
            .max_pending(5)
            .threshold(if send { 1 } else { 100 }, Level::WARN)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for n in first..first + count {
                tracing::warn!(n, "record");
            }
            guard.flush()
        })
    };
    let held = run(0, 4, false);
    assert!(matches!(held, Outcome::Held { pending: 4, .. }), "{held}");
    let held = run(4, 4, false);
    assert!(matches!(held, Outcome::Held { pending: 5, .. }), "{held}");
    let v = state_of(&state);
    assert_eq!(v.dropped, 3);
    assert_eq!(v.pending.len(), 5);

    // Within one run the buffer holds at most max_pending too.
    let sent = run(8, 9, true);
    assert!(
        matches!(
            sent,
            Outcome::Sent {
                records: 5,
                emails: 1
            }
        ),
        "{sent}"
    );
    let email = recorder.sent.lock().unwrap()[0].clone();
    let kept: Vec<i64> = email
        .records()
        .iter()
        .map(|r| r.fields.get("n").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(kept, [12, 13, 14, 15, 16], "the newest are kept");
    assert!(
        email.text().contains("12 older records were dropped"),
        "{}",
        email.text()
    );
    assert_eq!(state_of(&state).dropped, 0, "reported once, then reset");
}

#[test]
fn one_record_is_capped_with_a_visible_marker() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = EmailLayer::builder("bounds")
        .transport(recorder.clone())
        .state_file(dir.path().join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .build()
        .unwrap();
    let huge = "é".repeat(20_000); // 40 000 bytes
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(body = huge.as_str(), small = 1, "{huge}");
    });
    assert!(guard.flush().is_sent());
    let records = recorder.emails().concat();
    let r = &records[0];
    assert!(r.message.len() <= 16 * 1024, "{}", r.message.len());
    // A formatted message comes piece by piece and stops at the bound.
    assert!(
        r.message.ends_with("…[cut: at least 40000 bytes]"),
        "{}",
        &r.message[r.message.len() - 60..]
    );
    // The message left room for the fields after it: the long one is cut
    // (a `&str`, so its length is known), the small one kept whole.
    let body = r.fields.get("body").unwrap().as_str().unwrap();
    assert!(body.starts_with('é'), "{body}");
    assert!(body.ends_with("…[cut: 40000 bytes in all]"), "{body}");
    assert_eq!(r.fields.get("small"), Some(&serde_json::json!(1)));
    let json = serde_json::to_string(r).unwrap();
    assert!(json.len() <= 16 * 1024 + 512, "{}", json.len());
}

#[test]
fn a_digest_over_the_size_limit_is_split_into_numbered_complete_emails() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp_for(&server))
        .subject("POCA log")
        .max_email_bytes(8 * 1024)
        .build()
        .unwrap();
    let filler = "x".repeat(200);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..100 {
            tracing::warn!(n, filler = filler.as_str(), "feed failed");
        }
    });
    let outcome = guard.flush();
    let Outcome::Sent {
        records: 100,
        emails,
    } = outcome
    else {
        panic!("{outcome}")
    };
    assert!(emails >= 3, "{emails} emails");
    let messages = server.wait_for_messages(emails, Duration::from_secs(5));
    let mut seen = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.subject().unwrap(),
            format!("POCA log (part {} of {emails})", i + 1)
        );
        // The text counts twice toward the limit (the text part and the
        // attached log), before their transfer encoding (base64 at most,
        // 4/3); headers, summary, the HTML part (a bounded few records) and
        // footer add a few KiB.
        assert!(
            m.data.len() <= 8 * 1024 * 4 / 3 + 4 * 1024,
            "part {i} is a {}-byte message",
            m.data.len()
        );
        let body = m.text_body().unwrap();
        assert!(
            body.len() <= 8 * 1024 + 1024,
            "part {i} is {} bytes",
            body.len()
        );
        assert!(
            body.contains("Sent by tracing-email"),
            "part {i} is complete"
        );
        seen.extend(
            body.lines()
                .filter_map(|l| l.split(" n=").nth(1))
                .map(|n| n.split(' ').next().unwrap().parse::<usize>().unwrap()),
        );
    }
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

/// What a record may take beyond `max_record_bytes` as stored (JSON) or
/// shown (its digest line and span context), besides its target, module
/// path and file name: the "512 bytes" of the guarantees page
/// (`docs/guide/guarantees.md`).
const SLACK: usize = 512;

/// Asserts that `r`, serialised and rendered, stays within `bound` plus
/// [`SLACK`] and the names that come from the program.
fn assert_within(r: &tracing_email::record::Record, bound: usize) {
    let names = r.target.len()
        + r.module_path.as_deref().map_or(0, str::len)
        + r.file.as_deref().map_or(0, str::len);
    let json = serde_json::to_string(r).unwrap().len();
    assert!(
        json <= bound + SLACK + names,
        "{json} bytes of JSON for a bound of {bound}"
    );
    let shown = r.to_line(time::UtcOffset::UTC).len() + r.span_context().map_or(0, |c| c.len());
    assert!(
        shown <= bound + SLACK + names,
        "{shown} bytes shown for a bound of {bound}"
    );
}

/// A layer with `max_record_bytes(bound)` whose records are sent at the
/// flush to `recorder`.
fn bounded(
    dir: &std::path::Path,
    recorder: &Recorder,
    bound: usize,
) -> (EmailLayer, tracing_email::FlushGuard) {
    EmailLayer::builder("bounds")
        .transport(recorder.clone())
        .state_file(dir.join("state.json"))
        .from("robot@example.com")
        .to("me@example.com")
        .threshold(1, Level::TRACE)
        .max_record_bytes(bound)
        .build()
        .unwrap()
}

/// Dispatches one WARN event with `N` fields named `names`, each set to
/// `value` (the `tracing` macros stop at 32 fields).
fn event_with_fields<const N: usize>(names: Vec<String>, value: &str) {
    use std::sync::OnceLock;
    use tracing::callsite::{Callsite, Identifier};
    use tracing::field::{FieldSet, Value};
    use tracing::metadata::Kind;
    use tracing::{Metadata, subscriber::Interest};

    struct Site(OnceLock<Metadata<'static>>);
    impl Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            self.0.get().unwrap()
        }
    }
    assert_eq!(names.len(), N);
    let site: &'static Site = Box::leak(Box::new(Site(OnceLock::new())));
    let names: &'static [&'static str] = names
        .into_iter()
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect::<Vec<_>>()
        .leak();
    let meta = site.0.get_or_init(|| {
        Metadata::new(
            "many fields",
            "bounds",
            Level::WARN,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            FieldSet::new(names, Identifier(site)),
            Kind::EVENT,
        )
    });
    let fields: Vec<_> = meta.fields().iter().collect();
    let values: [(&tracing::field::Field, Option<&dyn Value>); N] =
        std::array::from_fn(|i| (&fields[i], Some(&value as &dyn Value)));
    tracing::Event::dispatch(meta, &meta.fields().value_set(&values));
}

#[test]
fn a_thousand_fields_with_long_names_stay_within_the_bound_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let (layer, guard) = bounded(dir.path(), &recorder, 16 * 1024);
    let names: Vec<String> = (0..1000)
        .map(|i| format!("field_{i:04}_{}", "long_name_".repeat(20)))
        .collect();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        event_with_fields::<1000>(names.clone(), &"v".repeat(100));
    });
    assert!(guard.flush().is_sent());
    let email = recorder.sent.lock().unwrap()[0].clone();
    let r = &email.records()[0];
    assert_within(r, 16 * 1024);
    // The first fields are kept, whole and in order; the rest are counted.
    let kept: Vec<&str> = r.fields.iter().map(|(k, _)| k).collect();
    let (last, kept) = kept.split_last().unwrap();
    assert_eq!(*last, "fields_left_out");
    assert!(kept.len() >= 40, "only {} fields kept", kept.len());
    assert_eq!(kept, &names[..kept.len()]);
    // All whole but the last, which may be cut to what fits.
    let values: Vec<&str> = r
        .fields
        .iter()
        .map(|(_, v)| v.as_str().unwrap_or(""))
        .collect();
    assert!(
        values[..kept.len() - 1]
            .iter()
            .all(|v| *v == "v".repeat(100))
    );
    let last_value = values[kept.len() - 1];
    assert!(
        last_value == "v".repeat(100) || last_value.ends_with("…[cut: 100 bytes in all]"),
        "{last_value}"
    );
    assert_eq!(
        r.fields.get("fields_left_out"),
        Some(&serde_json::json!(1000 - kept.len()))
    );
    // The email is about one record's worth, not megabytes.
    assert!(
        email.text().len() <= 16 * 1024 + 4096,
        "{}",
        email.text().len()
    );
}

/// Writes `total` bytes without ever holding them (a 50 MB `Debug`).
struct Huge(usize);

impl std::fmt::Debug for Huge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let piece = "z".repeat(4096);
        for _ in 0..self.0 / piece.len() {
            f.write_str(&piece)?;
        }
        Ok(())
    }
}

#[test]
fn huge_span_fields_and_deep_span_stacks_stay_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let bound = 4096;
    let (layer, guard) = bounded(dir.path(), &recorder, bound);
    let big = "é".repeat(512 * 1024); // 1 MiB
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Five spans with huge fields, one of them set later too.
        let mut spans = Vec::new();
        for i in 0..5 {
            let span = tracing::info_span!(
                "stage",
                i,
                text = big.as_str(),
                debug = ?Huge(50 << 20),
                late = tracing::field::Empty
            );
            span.record("late", big.as_str());
            span.record("late", tracing::field::debug(Huge(50 << 20)));
            spans.push(span.entered());
        }
        tracing::warn!(n = 1, "inside five huge spans");
        while spans.pop().is_some() {}

        // A deep stack of small spans.
        let mut deep = Vec::new();
        for depth in 0..2000 {
            deep.push(tracing::info_span!("level", depth).entered());
        }
        tracing::warn!(n = 2, "inside 2000 spans");
        while deep.pop().is_some() {}

        // A huge message and huge fields besides a huge span.
        let _outer = tracing::info_span!("outer", text = big.as_str()).entered();
        tracing::warn!(a = big.as_str(), b = ?Huge(50 << 20), n = 3, "{big}");
    });
    assert!(guard.flush().is_sent());
    let records = recorder.emails().concat();
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_within(r, bound);
        assert!(
            r.fields.get("n").is_some(),
            "the small field is kept: {r:?}"
        );
    }

    // The outermost spans are kept, the first that does not fit is cut, the
    // rest are counted.
    let five = &records[0];
    assert_eq!(five.spans[0].name, "stage");
    assert_eq!(five.spans[0].fields.get("i"), Some(&serde_json::json!(0)));
    let last = five.spans.last().unwrap();
    assert!(
        last.name.starts_with("…[") && last.name.ends_with(" left out]"),
        "{five:?}"
    );
    // A span takes at most half the bound: the first one fits whole, its
    // huge value cut when the span was made; of the next one, what did not
    // fit beside the event is counted.
    let text = five.spans[0].fields.get("text").unwrap().as_str().unwrap();
    assert!(text.ends_with("…[cut: 1048576 bytes in all]"), "{text}");
    let context = five.span_context().unwrap();
    assert!(context.contains("> stage{i=1"), "{context}");
    assert!(context.contains("fields_left_out="), "{context}");

    let deep = &records[1];
    assert!(deep.spans.len() > 10 && deep.spans.len() < 2000);
    let depths: Vec<i64> = deep.spans[..deep.spans.len() - 1]
        .iter()
        .map(|s| s.fields.get("depth").unwrap().as_i64().unwrap())
        .collect();
    assert_eq!(depths, (0..depths.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        deep.spans.last().unwrap().name,
        format!("…[{} more spans left out]", 2000 - depths.len())
    );

    let third = &records[2];
    assert!(
        third.message.ends_with("…[cut: at least 1048576 bytes]"),
        "{}",
        third.message
    );
    let b = third.fields.get("b").unwrap().as_str().unwrap();
    assert!(b.starts_with('z') && b.contains("…[cut: at least "), "{b}");
    // The span keeps its name at least.
    assert_eq!(third.spans[0].name, "outer");
}

#[test]
fn a_span_value_recorded_later_stays_within_the_bound_and_never_goes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    // A span may take half of it: 200 bytes.
    let (layer, guard) = bounded(dir.path(), &recorder, 400);
    let fields = |r: &tracing_email::record::Record| -> Vec<(String, serde_json::Value)> {
        r.spans[0]
            .fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!(
            "s",
            big = tracing::field::Empty,
            late = tracing::field::Empty
        );
        let _entered = span.enter();
        span.record("late", "v1");
        span.record("big", "y".repeat(1000).as_str());
        tracing::warn!("one");
        // No room left for a new value of `late`: the old one goes, and the
        // field is counted once, however often it is left out.
        span.record("late", "z".repeat(1000).as_str());
        span.record("late", "z".repeat(1000).as_str());
        tracing::warn!("two");
        // Room again: `late` has a value, and nothing is left out.
        span.record("big", "ok");
        span.record("late", "v3");
        tracing::warn!("three");
    });
    assert!(guard.flush().is_sent());
    let records = recorder.emails().concat();
    for r in &records {
        assert_within(r, 400);
        assert!(
            r.spans
                .iter()
                .map(|s| serde_json::to_string(s).unwrap().len())
                .sum::<usize>()
                <= 200 + SLACK
        );
    }
    let one = fields(&records[0]);
    assert_eq!(one[0], ("late".into(), serde_json::json!("v1")));
    assert_eq!(one[1].0, "big");
    assert!(
        one[1]
            .1
            .as_str()
            .unwrap()
            .ends_with("…[cut: 1000 bytes in all]")
    );
    let two = fields(&records[1]);
    let names: Vec<&str> = two.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["big", "fields_left_out"], "{two:?}");
    assert_eq!(two[1].1, serde_json::json!(1));
    assert_eq!(
        fields(&records[2]),
        [
            ("big".into(), serde_json::json!("ok")),
            ("late".into(), serde_json::json!("v3"))
        ]
    );
}
