//! Cost of one event through the layer, against `fmt::layer()` writing the
//! same event to `io::sink`, measured in the same run; and how throughput
//! scales from one thread to two.
//!
//! ```text
//! cargo bench --bench event
//! ```

mod common;

use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing_email::FlushGuard;
use tracing_subscriber::{filter::LevelFilter, prelude::*};

/// The measured event: two fields (`n` and the message), inside one span
/// with one field.
fn log_one() {
    tracing::info!(n = 42, "feed {} failed", "x");
}

/// The same event from the `log` crate, through `tracing-log`'s bridge.
fn log_one_from_log() {
    log::info!(target: "bench::feeds", "feed {} failed", "x");
}

/// Threads that stay for the whole benchmark, as a program's threads do, and
/// log when told to.
struct Workers {
    jobs: Vec<mpsc::Sender<(tracing::Dispatch, u64)>>,
    done: mpsc::Receiver<Duration>,
}

impl Workers {
    fn new(threads: usize) -> Self {
        let barrier = Arc::new(Barrier::new(threads));
        let (done_tx, done) = mpsc::channel();
        let jobs = (0..threads)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<(tracing::Dispatch, u64)>();
                let barrier = Arc::clone(&barrier);
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    while let Ok((dispatch, iters)) = rx.recv() {
                        let elapsed = tracing::dispatcher::with_default(&dispatch, || {
                            let span = tracing::info_span!("job", feed = "Radio Café");
                            let _entered = span.enter();
                            barrier.wait();
                            let start = Instant::now();
                            for _ in 0..iters {
                                log_one();
                            }
                            start.elapsed()
                        });
                        let _ = done_tx.send(elapsed);
                    }
                });
                tx
            })
            .collect();
        Workers { jobs, done }
    }

    /// Logs `iters` events on every thread at once, inside the span;
    /// returns the time the slowest took. Captured records are flushed into
    /// a transport that drops them after the clock stops, to keep memory flat.
    fn run(&self, dispatch: &tracing::Dispatch, iters: u64, guard: &FlushGuard) -> Duration {
        for job in &self.jobs {
            job.send((dispatch.clone(), iters)).expect("worker");
        }
        let elapsed = (0..self.jobs.len())
            .map(|_| self.done.recv().expect("worker"))
            .max()
            .unwrap_or_default();
        common::empty(guard);
        elapsed
    }
}

fn events(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (layer, guard) = common::discarding_layer(dir.path());
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

    let one = Workers::new(1);
    let two = Workers::new(2);
    let captured = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    group.bench_function("email_layer_captured", |b| {
        b.iter_custom(|iters| one.run(&captured, iters, &guard))
    });
    // A record from `log`: its metadata normalized, its names copied.
    tracing_log::LogTracer::init().expect("the log bridge");
    group.bench_function("email_layer_captured_from_log", |b| {
        b.iter_custom(|iters| {
            let elapsed = tracing::dispatcher::with_default(&captured, || {
                let span = tracing::info_span!("job", feed = "Radio Café");
                let _entered = span.enter();
                let start = Instant::now();
                for _ in 0..iters {
                    log_one_from_log();
                }
                start.elapsed()
            });
            common::empty(&guard);
            elapsed
        })
    });
    group.finish();

    // Throughput of one thread, then of two logging at once.
    let mut group = c.benchmark_group("threads");
    let fmt = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    for (threads, workers) in [(1, &one), (2, &two)] {
        group.throughput(Throughput::Elements(threads));
        group.bench_function(format!("email_layer_{threads}_threads"), |b| {
            b.iter_custom(|iters| workers.run(&captured, iters, &guard))
        });
        group.bench_function(format!("fmt_{threads}_threads"), |b| {
            b.iter_custom(|iters| workers.run(&fmt, iters, &guard))
        });
    }
    group.finish();
}

criterion_group!(benches, events);
criterion_main!(benches);
