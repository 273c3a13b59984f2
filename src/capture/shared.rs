//! The names records read back from the state file share, as the records the
//! layer captures do: callsite names (targets, modules, files, field and
//! span names) become shared static texts, as tracing's metadata is, decided
//! as the text is parsed, so nothing is allocated for a name seen before.
//! (A record's spans are shared too, by `record`.) A record read back then
//! costs about what a captured one does.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::sync::lock;

type Name = Cow<'static, str>;

/// Callsite names are few (a program's own), so only a hand-made file with a
/// million targets reaches it; names beyond it stay owned by their records.
pub(crate) const MAX_BYTES: usize = 1 << 20;

pub(crate) const MAX_LEN: usize = 256;

const RECENT: usize = 16;

static MADE: Mutex<Option<(HashSet<&'static str>, usize)>> = Mutex::new(None);

thread_local! {
    static RECENT_NAMES: Cell<Vec<&'static str>> = const { Cell::new(Vec::new()) };
}

pub(crate) fn find_or_make(
    text: &str,
    table: &mut (HashSet<&'static str>, usize),
) -> Option<&'static str> {
    if let Some(&found) = table.0.get(text) {
        return Some(found);
    }
    if text.len() > MAX_LEN || table.1 + text.len() > MAX_BYTES {
        return None;
    }
    let made: &'static str = Box::leak(Box::from(text));
    table.0.insert(made);
    table.1 += made.len();
    Some(made)
}

pub(crate) fn name(text: &str) -> Name {
    let mut recent = RECENT_NAMES.try_with(Cell::take).unwrap_or_default();
    let found = recent.iter().copied().find(|n| *n == text).or_else(|| {
        let made = find_or_make(text, lock(&MADE).get_or_insert_with(Default::default))?;
        recent.truncate(RECENT - 1);
        recent.insert(0, made);
        Some(made)
    });
    let _ = RECENT_NAMES.try_with(|r| r.set(recent));
    found.map_or_else(|| Cow::Owned(text.to_owned()), Cow::Borrowed)
}

/// A record's, or a field's as a map key.
pub(crate) struct Interned(pub(crate) Name);

impl<'de> Deserialize<'de> for Interned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Interned;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Interned, E> {
                Ok(Interned(name(text)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    Interned::deserialize(d).map(|n| n.0)
}

pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Name>, D::Error> {
    Ok(Option::<Interned>::deserialize(d)?.map(|n| n.0))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn equal_names_are_one_static_text_and_long_ones_stay_owned() {
        let (a, b) = (name("poca::feed"), name(&String::from("poca::feed")));
        let (Cow::Borrowed(a), Cow::Borrowed(b)) = (a, b) else {
            panic!("static")
        };
        assert!(std::ptr::eq(a, b));
        assert!(matches!(name(&"x".repeat(MAX_LEN + 1)), Cow::Owned(_)));
        let mut full = (HashSet::new(), MAX_BYTES);
        assert_eq!(find_or_make("poca", &mut full), None, "past the budget");
    }

    #[test]
    fn records_read_back_share_names_and_equal_spans_and_stay_equal() {
        let json = r#"[
            {"time":"2026-11-22T06:00:00Z","level":"WARN","target":"poca::feed","message":"a",
             "fields":{"url":"x"},"module_path":"poca::feed","file":"src/feed.rs","line":3,
             "spans":[{"name":"job","fields":{"feed":"Radio Café"}}]},
            {"time":"2026-11-22T06:00:01Z","level":"WARN","target":"poca::feed","message":"b",
             "fields":{"url":"y"},"module_path":"poca::feed","file":"src/feed.rs","line":3,
             "spans":[{"name":"job","fields":{"feed":"Radio Café"}}]},
            {"time":"2026-11-22T06:00:02Z","level":"WARN","target":"poca::feed","message":"c",
             "spans":[{"name":"job","fields":{"feed":"Ääniraita"}}]}
        ]"#;
        let records: Vec<crate::record::Record> = serde_json::from_str(json).unwrap();
        let [a, b, c] = &records[..] else {
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
        assert_eq!(
            c.spans[0].fields.get("feed"),
            Some(&serde_json::json!("Ääniraita"))
        );
        assert!(matches!(c.spans[0].name, Cow::Borrowed(_)));
        // Written again, they are what was read.
        let again = serde_json::to_string(&records).unwrap();
        let back: Vec<crate::record::Record> = serde_json::from_str(&again).unwrap();
        assert_eq!(back, records);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&again).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
