//! Records read back from the state file share their spans as the records
//! the layer captures do: a record's spans are the previous record's `Arc`s
//! when they are equal (its names are shared already, see
//! [`names`](crate::capture::names)), and its list of spans loses the spare
//! room parsing left. A state kept in memory for a whole run then costs
//! about what the same records captured in this process cost, not twice as
//! much.

use std::sync::Arc;

use crate::capture::record::{Record, SpanRecord};

/// Makes `records` (read back from the state file, in their order) share
/// equal spans with the record before each.
pub(crate) fn share(records: &mut [Record]) {
    let mut previous: Vec<Arc<SpanRecord>> = Vec::new();
    for record in records {
        for (i, span) in record.spans.iter_mut().enumerate() {
            if let Some(before) = previous.get(i)
                && (Arc::ptr_eq(before, span) || **before == **span)
            {
                *span = Arc::clone(before);
            }
        }
        // Parsed into a growing list: moved into one without its spare room
        // (cheaper for the allocator than shrinking the list in place).
        if record.spans.capacity() > record.spans.len() {
            record.spans = record.spans.drain(..).collect();
        }
        previous.clone_from(&record.spans);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn records_read_back_share_names_and_equal_spans_and_stay_equal() {
        let json = r#"{"version":2,"pending":[
            {"time":"2026-11-22T06:00:00Z","level":"WARN","target":"poca::feed","message":"a",
             "fields":{"url":"x"},"module_path":"poca::feed","file":"src/feed.rs","line":3,
             "spans":[{"name":"job","fields":{"feed":"Radio Café"}}]},
            {"time":"2026-11-22T06:00:01Z","level":"WARN","target":"poca::feed","message":"b",
             "fields":{"url":"y"},"module_path":"poca::feed","file":"src/feed.rs","line":3,
             "spans":[{"name":"job","fields":{"feed":"Radio Café"}}]},
            {"time":"2026-11-22T06:00:02Z","level":"WARN","target":"poca::feed","message":"c",
             "spans":[{"name":"job","fields":{"feed":"Ääniraita"}}]}
        ]}"#;
        let mut state: crate::store::state::State = serde_json::from_str(json).unwrap();
        let before = serde_json::from_str::<crate::store::state::State>(json)
            .unwrap()
            .pending;
        share(&mut state.pending);
        assert_eq!(state.pending, before, "the same records");
        let [a, b, c] = &state.pending[..] else {
            panic!("three records")
        };
        for r in [a, b, c] {
            assert!(matches!(r.target, Cow::Borrowed(_)));
            assert_eq!(r.spans.capacity(), 1);
        }
        assert!(std::ptr::eq(&*a.target, &*b.target));
        assert!(matches!(a.file, Some(Cow::Borrowed(_))));
        assert!(matches!(a.fields.pairs()[0].0, Cow::Borrowed(_)));
        assert!(Arc::ptr_eq(&a.spans[0], &b.spans[0]), "equal spans shared");
        assert!(!Arc::ptr_eq(&b.spans[0], &c.spans[0]), "others kept apart");
        assert!(matches!(c.spans[0].name, Cow::Borrowed(_)));
        // The serialised state is what it was.
        assert_eq!(
            serde_json::to_string(&state.pending).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
    }
}
