//! What the benchmarks share: a layer that never sends and never
//! checkpoints, so that only the measured work is measured.

use std::path::Path;

use tracing::Level;
use tracing_email::{EmailLayer, FileDrop, FlushGuard};

/// A layer keeping its state in `dir/state.json` that holds every record
/// (no threshold is ever met), keeps any number, and has no background
/// checkpoint.
pub fn holding_layer(dir: &Path) -> (EmailLayer, FlushGuard) {
    EmailLayer::builder("bench")
        .transport(FileDrop::new(dir.join("outbox")))
        .state_file(dir.join("state.json"))
        .from("bench@example.com")
        .to("bench@example.com")
        .threshold(usize::MAX, Level::ERROR)
        .max_pending(usize::MAX)
        .checkpoint_interval(None)
        .build()
        .expect("layer")
}
