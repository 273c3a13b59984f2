//! Cost of one event through the layer, against `fmt::layer()` writing the
//! same event to `io::sink`, measured in the same run; and how throughput
//! scales from one thread to two.
//!
//! ```text
//! cargo bench --bench event
//! ```

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing_email::FlushGuard;
use tracing_subscriber::{filter::LevelFilter, prelude::*};

/// The measured event: two fields (`n` and the message), inside one span
/// with one field.
fn log_one() {
    tracing::info!(n = 42, "feed {} failed", "x");
}

/// Logs `iters` events on each of `threads` threads at once, inside the span;
/// returns the time the slowest took. Captured records are discarded after
/// the clock stops, to keep memory flat.
fn run_threads(
    dispatch: &tracing::Dispatch,
    threads: usize,
    iters: u64,
    guard: &FlushGuard,
) -> Duration {
    let barrier = Barrier::new(threads);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    tracing::dispatcher::with_default(dispatch, || {
                        let span = tracing::info_span!("job", feed = "Radio Café");
                        let _entered = span.enter();
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            log_one();
                        }
                        start.elapsed()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .max()
            .unwrap_or_default()
    });
    guard.discard_buffered();
    elapsed
}

fn events(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (layer, guard) = common::holding_layer(dir.path());
    let mut group = c.benchmark_group("event");

    // First, while no other dispatcher exists, as in a program with one
    // global subscriber: tracing caches each callsite's interest then.
    let rejected =
        tracing_subscriber::registry().with(layer.clone().with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(rejected, || {
        group.bench_function("email_layer_filtered_out", |b| b.iter(log_one));
    });
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("no_layer", |b| b.iter(log_one));
    });

    let fmt = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(fmt, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        group.bench_function("fmt_to_sink", |b| b.iter(log_one));
    });

    let captured = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    group.bench_function("email_layer_captured", |b| {
        b.iter_custom(|iters| run_threads(&captured, 1, iters, &guard))
    });
    group.finish();

    // Throughput of one thread, then of two logging at once.
    let mut group = c.benchmark_group("threads");
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("email_layer_{threads}_threads"), |b| {
            b.iter_custom(|iters| run_threads(&captured, threads, iters, &guard))
        });
        let fmt = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
        );
        group.bench_function(format!("fmt_{threads}_threads"), |b| {
            b.iter_custom(|iters| run_threads(&fmt, threads, iters, &guard))
        });
    }
    group.finish();
    // No flush at the end: the state file is not part of this benchmark.
    std::mem::forget(guard);
}

criterion_group!(benches, events);
criterion_main!(benches);
