//! Records read back from the state file share what they repeat, as the
//! records the layer captures do: callsite names (target, module, file,
//! field and span names) become shared static texts, and a record's spans
//! are the previous record's `Arc`s when they are equal (and lists lose the
//! spare room parsing left). A state kept in
//! memory for a whole run then costs about what the same records captured
//! in this process cost, not half again as much.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::capture::buffer::lock;
use crate::capture::record::{Record, SpanRecord, Str};

/// Most bytes of text made static for the life of the process: callsite
/// names are few (a program's own), so this is never reached by the names of
/// the programs sharing a state file; names beyond it (a hand-made file with
/// a million targets) stay owned by their records.
const MAX_INTERNED_BYTES: usize = 1 << 20;

/// Longest name made static; longer ones stay owned.
const MAX_INTERNED_LEN: usize = 256;

/// The static texts made so far, and their bytes.
static INTERNED: Mutex<Option<(HashSet<&'static str>, usize)>> = Mutex::new(None);

/// Makes `text`, if it is owned, the shared static text equal to it.
/// `last` is the text this place held in the record before, looked at
/// first: consecutive records mostly come from the same callsite.
fn intern(text: &mut Str, table: &mut (HashSet<&'static str>, usize), last: &mut &'static str) {
    let Cow::Owned(owned) = text else {
        return;
    };
    if owned.as_str() == *last {
        *text = Cow::Borrowed(*last);
    } else if let Some(&found) = table.0.get(owned.as_str()) {
        *last = found;
        *text = Cow::Borrowed(found);
    } else if owned.len() <= MAX_INTERNED_LEN && table.1 + owned.len() <= MAX_INTERNED_BYTES {
        let made: &'static str = Box::leak(std::mem::take(owned).into_boxed_str());
        table.0.insert(made);
        table.1 += made.len();
        *last = made;
        *text = Cow::Borrowed(made);
    }
}

/// Makes `records` (read back from the state file, in their order) share
/// their callsite names and, with the record before each, equal spans.
pub(crate) fn share(records: &mut [Record]) {
    let mut guard = lock(&INTERNED);
    let table = guard.get_or_insert_with(|| (HashSet::new(), 0));
    let mut previous: Vec<Arc<SpanRecord>> = Vec::new();
    // The texts of the record before, by place: target, module, file, then
    // field names by position, then span names and their field names.
    let mut last: [&'static str; 3] = [""; 3];
    let mut names: Vec<&'static str> = Vec::new();
    let mut span_names: Vec<&'static str> = Vec::new();
    for record in records {
        intern(&mut record.target, table, &mut last[0]);
        for (text, last) in [&mut record.module_path, &mut record.file]
            .into_iter()
            .zip(&mut last[1..])
        {
            if let Some(text) = text {
                intern(text, table, last);
            }
        }
        for (i, name) in record.fields.names_mut().enumerate() {
            if names.len() <= i {
                names.push("");
            }
            intern(name, table, &mut names[i]);
        }
        for (i, span) in record.spans.iter_mut().enumerate() {
            match previous.get(i) {
                Some(before) if Arc::ptr_eq(before, span) || **before == **span => {
                    *span = Arc::clone(before);
                }
                _ => {
                    if let Some(owned) = Arc::get_mut(span) {
                        let mut k = 0;
                        for name in std::iter::once(&mut owned.name).chain(owned.fields.names_mut())
                        {
                            if span_names.len() <= k {
                                span_names.push("");
                            }
                            intern(name, table, &mut span_names[k]);
                            k += 1;
                        }
                    }
                }
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

    #[test]
    fn a_name_too_long_to_keep_stays_owned() {
        let mut text: Str = Cow::Owned("x".repeat(MAX_INTERNED_LEN + 1));
        let mut table = (HashSet::new(), 0);
        intern(&mut text, &mut table, &mut "");
        assert!(matches!(text, Cow::Owned(_)));
        let mut full = (HashSet::new(), MAX_INTERNED_BYTES);
        let mut short: Str = Cow::Owned("poca".into());
        intern(&mut short, &mut full, &mut "");
        assert!(matches!(short, Cow::Owned(_)), "past the budget");
    }
}
