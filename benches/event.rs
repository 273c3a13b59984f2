//! Cost of one event through the layer, against `fmt::layer()` writing the
//! same event to `io::sink`, measured in the same run.
//!
//! ```text
//! cargo bench --bench event
//! ```

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Level;
use tracing_email::{EmailLayer, FileDrop};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

fn log_one() {
    tracing::info!(n = 42, "feed {} failed", "x");
}

fn events(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut group = c.benchmark_group("event");

    let fmt = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(fmt, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        group.bench_function("fmt_to_sink", |b| b.iter(log_one));
    });

    let (layer, guard) = EmailLayer::builder("bench")
        .transport(FileDrop::new(dir.path().join("outbox")))
        .state_file(dir.path().join("state.json"))
        .from("bench@example.com")
        .to("bench@example.com")
        .threshold(usize::MAX, Level::ERROR)
        .build()
        .expect("layer");
    let captured = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(captured, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        group.bench_function("email_layer_captured", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    log_one();
                }
                let elapsed = start.elapsed();
                // Keeps memory flat between samples; not timed.
                guard.discard_buffered();
                elapsed
            })
        });
    });

    let rejected = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(rejected, || {
        group.bench_function("email_layer_filtered_out", |b| b.iter(log_one));
    });
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("no_layer", |b| b.iter(log_one));
    });
    group.finish();
    std::mem::forget(guard); // no flush: the state file is not part of this benchmark
}

criterion_group!(benches, events);
criterion_main!(benches);
