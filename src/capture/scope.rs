//! The spans an event happened in, as its record keeps them: each span keeps
//! its own fields and, beside them, the list of the spans it is inside
//! (itself last), so that every record made in it shares that one list
//! instead of gathering the spans anew; and that list cut to what a record's
//! bound leaves for it.
//!
//! A kept list is made at a span's first event, and used only while no
//! span's fields have changed since it was made (the layer counts the
//! changes); after one, it is gathered again at the next event.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::capture::record::{
    FIELDS_LEFT_OUT, Fields, SPAN_OVERHEAD, SpanRecord, field_cost, span_cost, text_cost,
};

pub(crate) type Spans = Option<Arc<[Arc<SpanRecord>]>>;

/// Kept in its extensions, shared by every record made inside it until a field changes.
pub(crate) struct SpanFields {
    pub(crate) record: Arc<SpanRecord>,
    /// Counted in `fields_left_out`, until one gets a value again.
    pub(crate) left_out: Vec<&'static str>,
    scope: Option<Scope>,
}

impl SpanFields {
    pub(crate) fn new(name: &'static str) -> Self {
        let record = SpanRecord {
            name: Cow::Borrowed(name),
            fields: Fields::default(),
        };
        SpanFields {
            record: Arc::new(record),
            left_out: Vec::new(),
            scope: None,
        }
    }

    /// Fields `left_out` lose their earlier values (they would pass for the current
    /// ones) and are counted once each, last, until one gets a value again.
    pub(crate) fn update(
        &mut self,
        update: Vec<(&'static str, Value)>,
        left_out: Vec<&'static str>,
    ) {
        let record = Arc::make_mut(&mut self.record);
        for (name, value) in update {
            self.left_out.retain(|n| *n != name);
            record.fields.set(Cow::Borrowed(name), value);
        }
        for name in left_out {
            record.fields.retain(|n, _| n != name);
            if !self.left_out.contains(&name) {
                self.left_out.push(name);
            }
        }
        record.fields.retain(|n, _| n != FIELDS_LEFT_OUT);
        if !self.left_out.is_empty() {
            let n = Value::from(self.left_out.len());
            record.fields.push(Cow::Borrowed(FIELDS_LEFT_OUT), n);
        }
        // The kept list holds the old fields (the caller also counts the
        // change, for the spans inside this one).
        self.scope = None;
    }
}

#[derive(Clone, Default)]
pub(crate) struct Scope {
    pub(crate) spans: Spans,
    pub(crate) cost: usize,
    edits: u64,
}

/// The innermost span's kept list while no span changed since, else gathered again.
pub(crate) fn event_scope<S>(event: &Event<'_>, ctx: &Context<'_, S>, edits: &AtomicU64) -> Scope
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Read before the spans, so that a change meanwhile shows.
    let now = edits.load(Ordering::Acquire);
    let Some(span) = ctx.event_span(event) else {
        return Scope::default();
    };
    let kept = span
        .extensions()
        .get::<SpanFields>()
        .and_then(|f| f.scope.clone())
        .filter(|s| s.edits == now);
    if let Some(scope) = kept {
        return scope;
    }
    let scope = gather(&span, now);
    if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
        fields.scope = Some(scope.clone());
    }
    scope
}

#[cold]
fn gather<S>(span: &SpanRef<'_, S>, edits: u64) -> Scope
where
    S: for<'a> LookupSpan<'a>,
{
    let mut cost = 0usize;
    let spans: Vec<Arc<SpanRecord>> = span
        .scope()
        .from_root()
        .filter_map(|span| {
            span.extensions().get::<SpanFields>().map(|s| {
                cost = cost.saturating_add(span_cost(&s.record));
                Arc::clone(&s.record)
            })
        })
        .collect();
    Scope {
        spans: (!spans.is_empty()).then(|| Arc::from(spans)),
        cost,
        edits,
    }
}

/// The first span that does not fit whole is cut; the spans inside it are
/// counted by a last span `…[2 more spans left out]`.
pub(crate) fn fit_spans(scope: Scope, mut left: usize) -> Spans {
    if scope.cost <= left {
        return scope.spans;
    }
    let spans = scope.spans?;
    let total = spans.len();
    let mut out = Vec::with_capacity(total + 1);
    for span in spans.iter() {
        let cost = span_cost(span);
        if cost <= left {
            left -= cost;
            out.push(Arc::clone(span));
            continue;
        }
        if let Some(cut) = cut_span(span, left) {
            out.push(Arc::new(cut));
        }
        break;
    }
    let skipped = total - out.len();
    if skipped > 0 {
        out.push(Arc::new(SpanRecord {
            name: Cow::Owned(format!(
                "…[{} left out]",
                crate::say::plural(skipped, "more span", "more spans")
            )),
            fields: Fields::default(),
        }));
    }
    Some(Arc::from(out))
}

/// Values were cut at capture; cutting them again would hide why. `None` when not
/// even its name fits.
fn cut_span(span: &SpanRecord, left: usize) -> Option<SpanRecord> {
    let mut left = left.checked_sub(text_cost(&span.name) + SPAN_OVERHEAD)?;
    let mut fields = Fields::default();
    let mut skipped = 0u64;
    for (name, value) in span.fields.pairs() {
        let cost = field_cost(name, value);
        if skipped == 0 && cost <= left {
            left -= cost;
            fields.push(name.clone(), value.clone());
        } else if name == FIELDS_LEFT_OUT {
            // The fields left out when the span was captured add up.
            skipped = skipped.saturating_add(value.as_u64().unwrap_or(1));
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        fields.set(Cow::Borrowed(FIELDS_LEFT_OUT), skipped.into());
    }
    Some(SpanRecord {
        name: span.name.clone(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn span(name: &'static str, fields: &[(&'static str, Value)]) -> Arc<SpanRecord> {
        Arc::new(SpanRecord {
            name: Cow::Borrowed(name),
            fields: Fields::from_vec(
                fields
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
                    .collect(),
            ),
        })
    }

    fn scope(spans: &[Arc<SpanRecord>]) -> Scope {
        Scope {
            spans: Some(Arc::from(spans)),
            cost: spans.iter().map(|s| span_cost(s)).sum(),
            edits: 0,
        }
    }

    #[test]
    fn spans_that_fit_are_shared_and_the_rest_cut_or_counted() {
        let big = Value::String("y".repeat(1000));
        let spans = vec![
            span("run", &[("job", "nightly".into())]),
            span(
                "fetch",
                &[("n", 1.into()), ("body", big), ("after", 2.into())],
            ),
            span("parse", &[]),
            span("inner", &[]),
        ];
        let all = scope(&spans);
        let cost = all.cost;
        let kept = fit_spans(all.clone(), cost).unwrap();
        // The very list the span keeps: nothing copied.
        assert!(Arc::ptr_eq(&kept, all.spans.as_ref().unwrap()));

        let kept = fit_spans(all.clone(), 300).unwrap();
        assert!(Arc::ptr_eq(&kept[0], &spans[0]));
        let fetch = &kept[1];
        assert_eq!(fetch.fields.get("n"), Some(&Value::from(1)));
        // From the first field that does not fit, the fields are counted.
        assert_eq!(fetch.fields.get("body"), None);
        assert_eq!(fetch.fields.get("after"), None);
        assert_eq!(fetch.fields.get(FIELDS_LEFT_OUT), Some(&Value::from(2)));
        assert_eq!(kept[2].name, "…[2 more spans left out]");
        assert_eq!(kept.len(), 3);
        let total: usize = kept.iter().map(|s| span_cost(s)).sum();
        // Within the bound, but for two markers of at most 48 bytes.
        assert!(total <= 300 + 2 * 48 + SPAN_OVERHEAD, "{total}");

        // Not even the first span's name fits.
        let kept = fit_spans(all, 10).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "…[4 more spans left out]");
    }

    #[test]
    fn no_span_is_no_list() {
        assert!(fit_spans(Scope::default(), 0).is_none());
    }
}
