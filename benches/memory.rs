//! Memory of pending records: bytes of RAM per record held in the layer's
//! buffer, against the bytes of the same record in the state file's JSON,
//! at 100 000 records; what the flusher keeps in memory after the flush that
//! stores them, and after the next run's first flush reads them back. A
//! counting allocator measures the RAM; the figures are printed before the
//! timing of capturing 100 000 records.
//!
//! ```text
//! cargo bench --bench memory
//! ```

mod common;

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

const RECORDS: usize = 100_000;

fn log_many(n: usize) {
    let span = tracing::info_span!("job", feed = "Radio Café");
    let _entered = span.enter();
    for i in 0..n {
        tracing::info!(n = i, "feed {} failed", "x");
    }
}

fn memory(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (layer, guard) = common::holding_layer(dir.path());
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    // The snapshot and its journal: the records are in one or the other.
    let state_bytes = || {
        ["state.json", "state.json.journal"]
            .iter()
            .filter_map(|name| std::fs::metadata(dir.path().join(name)).ok())
            .map(|m| m.len() as f64)
            .sum::<f64>()
    };
    // Warm up thread-locals, the span and the buffer's shards; the flush
    // stores these records, and the state file's size is measured from here.
    tracing::dispatcher::with_default(&dispatch, || log_many(10));
    guard.flush();
    let json_before = state_bytes();

    let before = common::allocated();
    tracing::dispatcher::with_default(&dispatch, || log_many(RECORDS));
    let ram = (common::allocated() - before) as f64 / RECORDS as f64;

    let started = Instant::now();
    let outcome = guard.flush();
    let flush = started.elapsed();
    // What stays allocated after the flush: the state the flusher keeps in
    // memory for the next flush (the buffer is empty now).
    let kept = (common::allocated() - before) as f64 / RECORDS as f64;
    let json = (state_bytes() - json_before) / RECORDS as f64;
    println!(
        "memory: {RECORDS} records: {ram:.0} bytes of RAM per record, {json:.0} bytes of JSON \
         per record, ratio {:.2} (target <= 1.30); first flush ({outcome}) took {flush:?}; \
         kept in memory after it for the next flush: {kept:.0} bytes per record, ratio {:.2}",
        ram / json,
        kept / json
    );

    // The next run: a new guard's first flush reads the records back from
    // the files (the snapshot and its journal) and keeps them for its later
    // flushes; the first guard, still alive, is left out of the count.
    let before = common::allocated();
    let (_next_layer, next) = common::holding_layer(dir.path());
    let started = Instant::now();
    let outcome = next.flush();
    let read_flush = started.elapsed();
    let read_back = (common::allocated() - before) as f64 / (RECORDS + 10) as f64;
    println!(
        "memory: the next run's first flush ({outcome}) read them back in {read_flush:?}; kept \
         in memory after it: {read_back:.0} bytes per record, ratio {:.2}",
        read_back / json
    );
    std::mem::forget(next);

    // The same capture, into a layer whose flushes drop the records.
    let (layer, guard) = common::discarding_layer(dir.path());
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut group = c.benchmark_group("memory");
    group.sample_size(10);
    group.bench_function("capture_100k_records", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                tracing::dispatcher::with_default(&dispatch, || log_many(RECORDS));
                total += start.elapsed();
                common::empty(&guard);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
