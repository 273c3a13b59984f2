//! What the benchmarks share: layers that never checkpoint, so that only the
//! measured work is measured, and a way to empty a layer between samples
//! through the public API.

// Each benchmark uses only some of these.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

use tracing::Level;
use tracing_email::{
    EmailLayer, FileDrop, FlushGuard, Outcome, transport::BoxError, transport::Email,
    transport::Transport,
};

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

/// [`holding_layer`] in a registry, as a dispatcher.
pub fn holding_dispatch(dir: &Path) -> (tracing::Dispatch, FlushGuard) {
    use tracing_subscriber::prelude::*;
    let (layer, guard) = holding_layer(dir);
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

/// Logs `n` warnings numbered from `from`, with fields and a span, through
/// `dispatch`.
pub fn log_failures(dispatch: &tracing::Dispatch, from: usize, n: usize) {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("job", feed = "Radio Café");
        let _entered = span.enter();
        for i in from..from + n {
            tracing::warn!(
                n = i,
                url = "https://podcasts.example/1/rss",
                "feed {} failed",
                "x"
            );
        }
    })
}

/// Accepts every email and keeps nothing of it.
struct Discard;

impl Transport for Discard {
    fn send(&self, _email: &Email) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A layer that captures as [`holding_layer`]'s does (a threshold policy
/// gives the event path nothing more to do), but whose every flush sends
/// all its records to a transport that drops them: [`empty`] after each
/// sample keeps memory and the state file (in `dir`) flat.
pub fn discarding_layer(dir: &Path) -> (EmailLayer, FlushGuard) {
    EmailLayer::builder("bench")
        .transport(Discard)
        .state_file(dir.join("discarding.json"))
        .from("bench@example.com")
        .to("bench@example.com")
        .threshold(1, Level::TRACE)
        .html(false)
        .max_pending(usize::MAX)
        .checkpoint_interval(None)
        .build()
        .expect("layer")
}

/// Empties a [`discarding_layer`]'s buffer, outside the measured time.
pub fn empty(guard: &FlushGuard) {
    let outcome = guard.flush();
    assert!(
        matches!(outcome, Outcome::Sent { .. } | Outcome::Nothing),
        "{outcome}"
    );
}

/// Counts the bytes currently allocated: a bench that measures memory makes
/// it its global allocator (`#[global_allocator] static A: Counting = Counting;`)
/// and reads [`allocated`].
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The bytes allocated now through [`Counting`].
pub fn allocated() -> isize {
    LIVE.load(Ordering::Relaxed)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// `(wchar, write_bytes)` of this process, from `/proc/self/io` (zeros
/// where it does not exist).
pub fn io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("write_bytes:"))
}
