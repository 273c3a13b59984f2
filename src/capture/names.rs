//! Callsite names (targets, modules, files, field and span names) read back
//! from the state file, made shared static texts as the names of records
//! captured in this process are (tracing's metadata): a record read back
//! then costs about what a captured one does, and equal names are not
//! allocated once per record.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use serde::Deserializer;
use serde::de::{self, Visitor};

use crate::capture::buffer::lock;
use crate::capture::record::Str;

/// Most bytes of text made static for the life of the process: callsite
/// names are few (a program's own), so this is never reached by the names of
/// the programs sharing a state file; names beyond it (a hand-made file with
/// a million targets) stay owned by their records.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// Longest name made static; longer ones stay owned.
pub(crate) const MAX_LEN: usize = 256;

/// Recent names a thread looks at before the shared table.
const RECENT: usize = 16;

/// The static texts made so far, and their bytes.
static MADE: Mutex<Option<(HashSet<&'static str>, usize)>> = Mutex::new(None);

thread_local! {
    /// The names this thread found last, most recent first.
    static RECENT_NAMES: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// The shared static text equal to `text`, made if there is room in
/// `table` (the texts made and their bytes).
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

/// `text` as a name: the shared static text equal to it, else owned.
pub(crate) fn name(text: &str) -> Str {
    let recent = RECENT_NAMES
        .try_with(|r| {
            r.try_borrow()
                .ok()
                .and_then(|r| r.iter().copied().find(|n| *n == text))
        })
        .ok()
        .flatten();
    if let Some(found) = recent {
        return Cow::Borrowed(found);
    }
    let made = {
        let mut table = lock(&MADE);
        find_or_make(text, table.get_or_insert_with(|| (HashSet::new(), 0)))
    };
    match made {
        Some(made) => {
            let _ = RECENT_NAMES.try_with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    r.truncate(RECENT - 1);
                    r.insert(0, made);
                }
            });
            Cow::Borrowed(made)
        }
        None => Cow::Owned(text.to_owned()),
    }
}

/// Reads a string as a [`name`].
struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Str, E> {
        Ok(name(text))
    }
}

/// Deserializes a [`name`] (for `#[serde(deserialize_with)]`).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
    d.deserialize_str(NameVisitor)
}

/// Deserializes an optional [`name`].
pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Str>, D::Error> {
    struct Some_;
    impl<'de> Visitor<'de> for Some_ {
        type Value = Option<Str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }
    d.deserialize_option(Some_)
}

/// A map key read as a [`name`] (for the fields' visitor).
pub(crate) struct NameSeed;

impl<'de> de::DeserializeSeed<'de> for NameSeed {
    type Value = Str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Str, D::Error> {
        deserialize(d)
    }
}

#[cfg(test)]
mod tests {
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
}
