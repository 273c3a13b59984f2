//! The captured event of the `event` bench (`info!(n = 42, "feed {} failed",
//! "x")` inside a span with one field, into a layer whose flushes drop what
//! they send), logged in batches by one function, `log_batch`, so that
//! callgrind counts its instructions alone: a figure that does not depend on
//! the machine's load, to compare two versions of the event path.
//!
//! ```text
//! cargo bench --bench event_ir --no-run     # prints the executable's path
//! valgrind --tool=callgrind --toggle-collect='*log_batch*' \
//!     target/release/deps/event_ir-… email 20 1000
//! callgrind_annotate --inclusive=no callgrind.out.…
//! ```
//!
//! The instructions collected ÷ (batches × events) are the captured event's
//! cost; `fmt` logs the same events through `fmt::layer()` to `io::sink`.
//! Arguments: `email` or `fmt`, batches, events per batch; each batch is
//! flushed on another thread. Run by `cargo bench`, it prints the time per
//! event, as a smoke test.

mod common;

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

#[inline(never)]
fn log_batch(n: u64) {
    for _ in 0..n {
        tracing::info!(n = 42, "feed {} failed", "x");
    }
}

fn main() {
    // `cargo bench` passes `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map(String::as_str).unwrap_or("email");
    let batches: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let n: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temporary folder");
    let (layer, guard) = common::discarding_layer(dir.path());
    let dispatch = match mode {
        "fmt" => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
        ),
        _ => tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
    };
    let mut logging = Duration::ZERO;
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        for _ in 0..batches {
            let start = Instant::now();
            log_batch(n);
            logging += start.elapsed();
            // As the event bench does, on a thread of its own.
            std::thread::scope(|s| {
                s.spawn(|| common::empty(&guard));
            });
        }
    });
    println!(
        "event_ir {mode}: {:.0} ns per event",
        logging.as_nanos() as f64 / (batches * n).max(1) as f64
    );
}
