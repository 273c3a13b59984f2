//! A flush that holds (no send) with N records pending in the state file and
//! 100 new ones, against the bare work of parsing the same file and writing
//! it back with fsync, for N = 1 000, 10 000, 100 000, in the same run; and a
//! flush that sends N = 1 000, 10 000 pending records into files, with every
//! use of the fingerprint (`fingerprint_fields`, `repeat_after`) and the
//! digest split by size.
//!
//! The state file is reset before each flush (and its journal removed), so
//! this is the first flush of a run: the files are read whole, the 100
//! records appended. Later flushes of a run read only what others appended:
//! `cargo bench --bench journal` measures those.
//!
//! ```text
//! cargo bench --bench flush
//! ```

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tracing_email::{FlushGuard, Outcome};

/// Parse the file as JSON and write it back durably: temporary file, fsync,
/// rename. (The flush also fsyncs the folder, which this does not.)
fn bare_parse_and_write(path: &Path) {
    let bytes = fs::read(path).expect("read");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("parse");
    let out = serde_json::to_vec(&value).expect("serialise");
    let tmp = path.with_extension("bare-tmp");
    let mut file = File::create(&tmp).expect("create");
    file.write_all(&out).expect("write");
    file.sync_all().expect("fsync");
    fs::rename(&tmp, path).expect("rename");
}

fn flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("flush");
    group.sample_size(20);
    for n in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().expect("temporary folder");
        let state = dir.path().join("state.json");
        let (dispatch, guard) = common::holding_dispatch(state.parent().expect("a folder"));
        common::log_failures(&dispatch, 0, n);
        assert!(matches!(guard.flush(), Outcome::Held { .. }));
        let template = fs::read(&state).expect("state file");
        group.throughput(Throughput::Elements(n as u64));

        group.bench_with_input(BenchmarkId::new("hold_100_new", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    fs::write(&state, &template).expect("reset");
                    let _ = fs::remove_file(dir.path().join("state.json.journal"));
                    common::log_failures(&dispatch, n, 100);
                },
                |()| guard.flush(),
                BatchSize::PerIteration,
            )
        });
        let bare = dir.path().join("bare.json");
        group.bench_with_input(BenchmarkId::new("bare_parse_and_write", n), &n, |b, _| {
            b.iter_batched(
                || fs::write(&bare, &template).expect("reset"),
                |()| bare_parse_and_write(&bare),
                BatchSize::PerIteration,
            )
        });
        std::mem::forget(guard);
    }
    group.finish();
}

/// A layer on `dir/state.json` that sends every pending record at a flush,
/// into files, identifying failures by their `url` and holding a failure
/// reported in the last hour.
fn sending_layer(dir: &Path) -> FlushGuard {
    let (_layer, guard) = tracing_email::EmailLayer::builder("bench")
        .transport(tracing_email::FileDrop::new(dir.join("outbox")))
        .state_file(dir.join("state.json"))
        .from("bench@example.com")
        .to("bench@example.com")
        .threshold(1, tracing::Level::WARN)
        .fingerprint_fields(["url"])
        .repeat_after(std::time::Duration::from_secs(3600))
        .max_pending(usize::MAX)
        .checkpoint_interval(None)
        .build()
        .expect("layer");
    guard
}

fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("flush_send");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().expect("temporary folder");
        let state = dir.path().join("state.json");
        let (dispatch, holding) = common::holding_dispatch(state.parent().expect("a folder"));
        common::log_failures(&dispatch, 0, n);
        assert!(matches!(holding.flush(), Outcome::Held { .. }));
        std::mem::forget(holding);
        let template = fs::read(&state).expect("state file");
        let guard = sending_layer(dir.path());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("send_all_to_files", n), &n, |b, &n| {
            b.iter_batched(
                || fs::write(&state, &template).expect("reset"),
                |()| {
                    let outcome = guard.flush();
                    assert!(
                        matches!(outcome, Outcome::Sent { records, .. } if records == n),
                        "{outcome:?}"
                    );
                },
                BatchSize::PerIteration,
            )
        });
        std::mem::forget(guard);
    }
    group.finish();
}

criterion_group!(benches, flush, send);
criterion_main!(benches);
