//! The `tracing-subscriber` layer: turns each event into a
//! [`Record`](crate::record::Record) and keeps it in memory. No I/O happens
//! here but one line on stderr, once, for a record logged after the guard
//! was dropped.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::capture::buffer::Buffer;
use crate::capture::record::{field_cost, span_cost};
use crate::capture::scope::{SpanFields, Spans, event_scope, fit_spans};
use crate::capture::visit::FieldVisitor;
use crate::sync::lock;

const LETTRE_POOL: &str = "lettre::transport::smtp::pool";

thread_local! {
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

/// Events the thread emits meanwhile (lettre, rustls, this crate) are not
/// captured, so a send can never feed itself or wait on itself.
pub(crate) struct SendingScope {
    was: bool,
}

impl SendingScope {
    pub(crate) fn enter() -> Self {
        let was = SENDING.try_with(|s| s.replace(true)).unwrap_or(true);
        SendingScope { was }
    }
}

impl Drop for SendingScope {
    fn drop(&mut self) {
        let was = self.was;
        let _ = SENDING.try_with(|s| s.set(was));
    }
}

#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) state: Mutex<SignalState>,
    pub(crate) cond: Condvar,
}

#[derive(Default)]
pub(crate) struct SignalState {
    pub(crate) wake: bool,
    pub(crate) stop: bool,
    /// The guard was dropped on the worker's own thread: the worker runs its last
    /// flush (`Some(whether the guard had flushed)`).
    pub(crate) finish: Option<bool>,
}

pub(crate) struct Shared {
    pub(crate) buffer: Buffer,
    /// So a span's kept list of enclosing spans is made again after one.
    pub(crate) span_edits: AtomicU64,
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    pub(crate) max_record_bytes: usize,
    /// A shard reaching a multiple of it wakes the worker.
    pub(crate) batch: Option<usize>,
    pub(crate) signal: Signal,
    /// Nothing flushes records captured after it.
    pub(crate) guard_dropped: AtomicBool,
    pub(crate) guard_dropped_said: AtomicBool,
}

pub(crate) const GUARD_DROPPED: &str = "a record was logged after the FlushGuard \
     was dropped, so it is not captured, nor is any later one (nothing would send them). \
     `let (layer, _) = EmailLayer::…` drops the guard at once: keep the guard: \
     let (layer, _guard) = …, and let it drop at the end of main.";

/// The layer that captures events. Made by
/// [`EmailLayer::builder`]; add it to a `tracing_subscriber::registry()`.
///
/// Which events it captures is chosen the usual way, with a per-layer filter
/// (`LevelFilter`, `Targets`, `EnvFilter`):
///
/// ```
/// use tracing_email::{EmailLayer, FileDrop};
/// use tracing_subscriber::{filter::LevelFilter, prelude::*};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let (layer, guard) = EmailLayer::builder("my-app")
///     .transport(FileDrop::new(dir.path().join("outbox")))
///     .state_file(dir.path().join("state.json"))
///     .from("my-app <robot@example.com>")
///     .to("me@example.com")
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::INFO));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::warn!(feed = "Radio Café", "feed failed");
/// });
/// println!("{}", guard.flush());
/// # Ok::<(), tracing_email::Error>(())
/// ```
#[derive(Clone)]
pub struct EmailLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for EmailLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailLayer")
            .field("buffered", &self.shared.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for EmailLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let fields = SpanFields::new(attrs.metadata().name());
        span.extensions_mut().insert(fields);
        // A new span's values: no other span keeps a list with them yet.
        self.update_span(&span, &SpanValues::new(attrs.values()));
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if self.update_span(&span, values) {
            // The spans inside this one keep lists with its old fields.
            self.shared.span_edits.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The bridge's callsites all have the target `log`: a cheap test
        // first, the exact one only then.
        #[cfg(feature = "log")]
        if meta.target() == "log" && tracing_log::NormalizeEvent::is_log(event) {
            return self.on_log_event(event, &ctx);
        }
        if !self.captures(meta.target()) {
            return;
        }
        // Gathered in this thread's lists, whose room stays for its next
        // events; the buffer keeps copies of exactly their size.
        let (mut message, mut fields) = SCRATCH.try_with(Cell::take).unwrap_or_default();
        let spans = self.visit(event, &ctx, &mut message, &mut fields, false);
        let time = crate::clock::now_or_system(&*self.shared.clock);
        let pushed = self
            .shared
            .buffer
            .push_event(time, meta, spans, &message, &mut fields);
        self.pushed(pushed);
        message.clear();
        message.shrink_to(SCRATCH_KEEP);
        fields.shrink_to(SCRATCH_KEEP / 64);
        let _ = SCRATCH.try_with(|s| s.set((message, fields)));
    }
}

thread_local! {
    /// Taken out while in use, so an event logged meanwhile (by a value's `Debug`)
    /// gathers its own.
    static SCRATCH: Cell<(String, Vec<(&'static str, Value)>)> =
        const { Cell::new((String::new(), Vec::new())) };
}

const SCRATCH_KEEP: usize = 4096;

impl EmailLayer {
    /// Not while this thread sends, nor from lettre's connection pool (its own
    /// thread, outside any send), nor after the guard was dropped.
    fn captures(&self, target: &str) -> bool {
        // During thread teardown the sending flag is gone: capture nothing.
        if SENDING.try_with(Cell::get).unwrap_or(true) || target.starts_with(LETTRE_POOL) {
            return false;
        }
        if self.shared.guard_dropped.load(Ordering::Relaxed) {
            // Said on stderr once.
            if !self.shared.guard_dropped_said.swap(true, Ordering::Relaxed) {
                crate::say::say!("{GUARD_DROPPED}");
            }
            return false;
        }
        true
    }

    /// Whether the span's fields changed.
    fn update_span<S>(&self, span: &SpanRef<'_, S>, values: &SpanValues<'_>) -> bool
    where
        S: for<'a> LookupSpan<'a>,
    {
        // What the span may still take: its bound (half a record's, so a span
        // with a huge value still fits whole beside an event's text), less
        // what it holds, except the values about to be replaced.
        let budget = {
            let extensions = span.extensions();
            let Some(current) = extensions.get::<SpanFields>() else {
                return false;
            };
            let names = span.metadata().fields();
            let replaced: usize = current
                .record
                .fields
                .iter()
                .filter(|(name, _)| names.field(name).is_some_and(|f| values.contains(&f)))
                .map(|(name, value)| field_cost(name, value))
                .sum();
            let held = span_cost(&current.record) - replaced;
            (self.shared.max_record_bytes / 2).saturating_sub(held)
        };
        // User code (the values' Debug) runs without the span's lock held:
        // it may log, and that event reads this span.
        let mut update = Vec::new();
        let mut visitor = FieldVisitor::new(None, &mut update, budget, values.len(), 0);
        values.record(&mut visitor);
        let left_out = visitor.left_out;
        if update.is_empty() && left_out.is_empty() {
            return false;
        }
        if let Some(current) = span.extensions_mut().get_mut::<SpanFields>() {
            current.update(update, left_out);
        }
        true
    }

    fn visit<S>(
        &self,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        message: &mut String,
        out: &mut Vec<(&'static str, Value)>,
        bridged: bool,
    ) -> Spans
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let scope = event_scope(event, ctx, &self.shared.span_edits);
        let max = self.shared.max_record_bytes;
        // A bridged event's message is the one field left once its `log.*`
        // ones are.
        let fields = if bridged {
            1
        } else {
            event.metadata().fields().len()
        };
        let mut visitor = FieldVisitor::new(Some(message), out, max, fields, scope.cost);
        visitor.skip_bridge = bridged;
        event.record(&mut visitor);
        let left = visitor.finish();
        fit_spans(scope, left)
    }

    fn pushed(&self, pushed: usize) {
        if let Some(size) = self.shared.batch
            && pushed.is_multiple_of(size)
        {
            lock(&self.shared.signal.state).wake = true;
            self.shared.signal.cond.notify_one();
        }
    }

    /// `tracing-log` events have target `log` and the real callsite in `log.*`
    /// fields: taken from the normalized metadata (as `fmt` does) and left out, so
    /// it reads and is fingerprinted as a native event.
    #[cfg(feature = "log")]
    fn on_log_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(meta) = tracing_log::NormalizeEvent::normalized_metadata(event) else {
            return;
        };
        if !self.captures(meta.target()) {
            return;
        }
        let (mut message, mut fields) = (String::new(), Vec::new());
        let spans = self.visit(event, ctx, &mut message, &mut fields, true);
        let time = crate::clock::now_or_system(&*self.shared.clock);
        let fields = fields
            .into_iter()
            .map(|(k, v)| (std::borrow::Cow::Borrowed(k), v));
        let owned = |s: &str| std::borrow::Cow::Owned(s.to_owned());
        let record =
            crate::record::Record::of_event(&meta, owned, time, message, fields.collect(), spans);
        self.pushed(self.shared.buffer.push(record));
    }
}
