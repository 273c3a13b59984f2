//! The `tracing-subscriber` layer: turns each event into a [`Record`] and
//! keeps it in memory. No I/O happens here.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::buffer::{Buffer, lock};
use crate::record::{Captured, Fields, SpanRecord, error_chain};

/// The target of lettre's connection-pool thread.
const LETTRE_POOL: &str = "lettre::transport::smtp::pool";

thread_local! {
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as sending for as long as it lives: events this
/// thread emits meanwhile (from lettre, rustls or this crate) are not captured,
/// so a send can never feed itself or wait on itself.
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

fn is_sending() -> bool {
    // During thread teardown the flag is gone: capture nothing then.
    SENDING.try_with(Cell::get).unwrap_or(true)
}

/// Wakes the batch worker when a batch's worth of records has arrived.
#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) state: Mutex<SignalState>,
    pub(crate) cond: Condvar,
}

#[derive(Default)]
pub(crate) struct SignalState {
    pub(crate) wake: bool,
    pub(crate) stop: bool,
    /// Set when the guard was dropped on the worker's own thread: the worker
    /// then runs the guard's last flush (`Some(whether the guard had
    /// flushed)`).
    pub(crate) finish: Option<bool>,
}

impl Signal {
    pub(crate) fn wake(&self) {
        lock(&self.state).wake = true;
        self.cond.notify_one();
    }
}

pub(crate) struct Shared {
    pub(crate) buffer: Buffer,
    /// Where record timestamps come from.
    pub(crate) clock: Arc<dyn crate::Clock>,
    /// Most bytes of text (message and field values) one record keeps.
    pub(crate) max_record_bytes: usize,
    /// `(batch size, signal)` when a batch policy is set: a thread's shard
    /// reaching a multiple of the size wakes the worker.
    pub(crate) batch: Option<(usize, Arc<Signal>)>,
    /// Set by the guard's drop: nothing flushes records captured after it.
    pub(crate) guard_dropped: AtomicBool,
    /// Set once [`GUARD_DROPPED`] has been printed, so it is printed once.
    pub(crate) guard_dropped_said: AtomicBool,
}

/// The line printed on stderr for the first record logged after the guard
/// was dropped.
pub(crate) const GUARD_DROPPED: &str = "tracing-email: a record was logged after the FlushGuard \
     was dropped, so it is not captured, nor is any later one (nothing would send them). \
     `let (layer, _) = EmailLayer::…` drops the guard at once: keep the guard: \
     let (layer, _guard) = …, and let it drop at the end of main.";

impl Shared {
    /// A record came after the guard was dropped: says so on stderr, once.
    #[cold]
    fn refuse_after_guard(&self) {
        if !self.guard_dropped_said.swap(true, Ordering::Relaxed) {
            let _ = writeln!(std::io::stderr().lock(), "{GUARD_DROPPED}");
        }
    }
}

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

/// The fields of a span, kept in its extensions and shared by every record
/// made inside it until a field changes.
struct SpanFields(Arc<SpanRecord>);

impl<S> Layer<S> for EmailLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut FieldVisitor {
            message: None,
            fields: &mut fields,
            budget: self.shared.max_record_bytes,
        });
        let record = SpanRecord {
            name: Cow::Borrowed(attrs.metadata().name()),
            fields,
        };
        span.extensions_mut().insert(SpanFields(Arc::new(record)));
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(record)) = extensions.get_mut::<SpanFields>() {
            let record = Arc::make_mut(record);
            values.record(&mut FieldVisitor {
                message: None,
                fields: &mut record.fields,
                budget: self.shared.max_record_bytes,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // lettre's connection pool logs from a thread of its own, outside
        // any send: that is this crate's machinery too.
        if is_sending() || meta.target().starts_with(LETTRE_POOL) {
            return;
        }
        if self.shared.guard_dropped.load(Ordering::Relaxed) {
            return self.shared.refuse_after_guard();
        }
        let mut message = String::new();
        // Exactly the room the event's fields need: a record in memory costs
        // no more than it must.
        let expected = meta
            .fields()
            .iter()
            .filter(|f| f.name() != "message")
            .count();
        let mut fields = Vec::with_capacity(expected);
        event.record(&mut FieldVisitor {
            message: Some(&mut message),
            fields: &mut fields,
            budget: self.shared.max_record_bytes,
        });
        let spans = match ctx.event_scope(event) {
            Some(scope) => scope
                .from_root()
                .filter_map(|span| {
                    span.extensions()
                        .get::<SpanFields>()
                        .map(|SpanFields(r)| Arc::clone(r))
                })
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            None => Box::default(),
        };
        let captured = crate::record::Event {
            time: crate::clock::now_or_system(&*self.shared.clock),
            meta,
            message,
            fields: fields.into_boxed_slice(),
            spans,
        };
        let pushed = self.shared.buffer.push(Captured::Event(captured));
        if let Some((size, signal)) = &self.shared.batch
            && pushed.is_multiple_of(*size)
        {
            signal.wake();
        }
    }
}

/// Where visited fields go: a span's [`Fields`] (a later value replaces an
/// earlier one of the same name) or an event's list.
trait FieldSink {
    fn put(&mut self, name: &'static str, value: Value);
}

impl FieldSink for Fields {
    fn put(&mut self, name: &'static str, value: Value) {
        self.set(name, value);
    }
}

impl FieldSink for Vec<(&'static str, Value)> {
    fn put(&mut self, name: &'static str, value: Value) {
        self.push((name, value));
    }
}

/// Records `tracing` field values as typed JSON values; the `message` field
/// of an event goes to `message` when that is given. Text beyond `budget`
/// bytes in all is cut, with a visible marker.
struct FieldVisitor<'a, F> {
    message: Option<&'a mut String>,
    fields: &'a mut F,
    budget: usize,
}

/// Cuts `text` to at most `budget` bytes (at a character boundary), marking
/// the cut, and takes what it keeps from the budget.
fn cut(text: &mut String, budget: &mut usize) {
    let len = text.len();
    if len > *budget {
        let mut at = *budget;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        let _ = write!(text, "…[cut: {len} bytes in all]");
    }
    *budget = budget.saturating_sub(len);
}

impl<F: FieldSink> FieldVisitor<'_, F> {
    fn put(&mut self, field: &Field, value: Value) {
        self.fields.put(field.name(), value);
    }

    fn put_text(&mut self, field: &Field, mut text: String) {
        cut(&mut text, &mut self.budget);
        self.put(field, Value::String(text));
    }

    /// The event's message, when this field is it.
    fn message_for(&mut self, field: &Field) -> Option<&mut String> {
        if field.name() == "message" {
            self.message.as_deref_mut()
        } else {
            None
        }
    }
}

impl<F: FieldSink> Visit for FieldVisitor<'_, F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        self.put(field, v);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        self.put(field, v);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let mut budget = self.budget;
        if let Some(message) = self.message_for(field) {
            message.push_str(value);
            cut(message, &mut budget);
            self.budget = budget;
            return;
        }
        self.put_text(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, error_chain(value).to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut budget = self.budget;
        if let Some(message) = self.message_for(field) {
            let _ = write!(message, "{value:?}");
            cut(message, &mut budget);
            self.budget = budget;
            return;
        }
        self.put_text(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_short_text_and_marks_long_text() {
        let mut budget = 10;
        let mut short = "abc".to_owned();
        cut(&mut short, &mut budget);
        assert_eq!((short.as_str(), budget), ("abc", 7));
        let mut long = "ääääääää".to_owned(); // 16 bytes
        cut(&mut long, &mut budget);
        assert_eq!(long, "äää…[cut: 16 bytes in all]");
        assert_eq!(budget, 0);
        let mut more = "x".to_owned();
        cut(&mut more, &mut budget);
        assert_eq!(more, "…[cut: 1 bytes in all]");
    }
}
