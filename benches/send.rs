//! Sending: a 1 000-record digest to the loopback mock SMTP server (STARTTLS
//! and login), one email; ten batch emails of 100 records over one session;
//! and the cost of `build()`, which does no network I/O and reads no file.
//!
//! ```text
//! cargo bench --bench send
//! ```

// The mock SMTP server of the integration tests, of which this uses a part.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::Outcome;
use tracing_subscriber::prelude::*;

fn log(dispatch: &tracing::Dispatch, n: usize) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        for i in 0..n {
            tracing::warn!(
                n = i,
                url = "https://podcasts.example/1/rss",
                "feed {} failed",
                "x"
            );
        }
    })
}

fn send(c: &mut Criterion) {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut group = c.benchmark_group("send");
    group.sample_size(10);

    for (name, batch) in [
        ("digest_1000_records", None),
        ("batch_10x100_records", Some(100)),
    ] {
        let state = dir.path().join(format!("{name}.json"));
        let mut b = builder(&state, smtp_for(&server))
            .threshold(1, Level::WARN)
            .checkpoint_interval(None);
        if let Some(size) = batch {
            b = b.batch(size).threshold(usize::MAX, Level::ERROR);
        }
        let (layer, guard) = b.build().expect("layer");
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    log(&dispatch, 1000);
                    let start = Instant::now();
                    let outcome = guard.flush();
                    total += start.elapsed();
                    assert!(
                        matches!(outcome, Outcome::Sent { records: 1000, .. }),
                        "{outcome}"
                    );
                }
                total
            })
        });
    }
    println!(
        "send: {} connections for {} messages",
        server.connections(),
        server.messages().len()
    );
    group.finish();

    let mut group = c.benchmark_group("startup");
    group.bench_function("build", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let built = builder(&dir.path().join("startup.json"), smtp_for(&server))
                    .threshold(5, Level::WARN)
                    .build()
                    .expect("layer");
                total += start.elapsed();
                // Not timed: dropping the guard flushes (here, nothing).
                drop(built);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, send);
criterion_main!(benches);
