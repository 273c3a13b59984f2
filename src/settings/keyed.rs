//! Names the key in each error of the values it reads, as a file writes it
//! (`policy.threshold.level`): serde tells a value nothing of its key, so
//! values are read through [`Keyed`], which hands each its key's path.

use super::*;
use serde::de::{DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

pub(crate) struct Keyed<'a, T> {
    d: T,
    name: Name<'a>,
}

/// Whether an error already names its key, so no outer key renames it.
#[derive(Clone)]
struct Name<'a> {
    path: String,
    named: &'a Cell<bool>,
}

impl Name<'_> {
    fn of<T, E: de::Error>(&self, r: Result<T, E>) -> Result<T, E> {
        r.map_err(|e| match self.path.is_empty() || self.named.replace(true) {
            true => e,
            false => E::custom(format_args!(
                "{} for `{}`",
                e.to_string().trim_end(),
                self.path
            )),
        })
    }
}

impl<'a, D> Keyed<'a, D> {
    pub(crate) fn root(d: D, path: &str, named: &'a Cell<bool>) -> Self {
        let name = Name {
            path: path.to_owned(),
            named,
        };
        Keyed { d, name }
    }

    fn pass<T, R, E, F>(self, t: T, f: F) -> Result<R, E>
    where
        E: de::Error,
        F: FnOnce(D, Keyed<'a, T>) -> Result<R, E>,
    {
        let name = self.name.clone();
        let t = Keyed {
            d: t,
            name: self.name,
        };
        name.of(f(self.d, t))
    }
}

/// What the settings' types ask for (numbers and lists ask for any); a format
/// that reads by what is asked (a string as a boolean) still can.
macro_rules! forward {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.pass(v, |d, v| d.$method(v))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Keyed<'_, D> {
    type Error = D::Error;
    forward!(deserialize_any, deserialize_bool, deserialize_str);
    forward!(deserialize_string, deserialize_option, deserialize_map);
    /// Never a list read in the order of the keys.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.deserialize_map(v)
    }
    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

macro_rules! leaves {
    ($($visit:ident($($v:ident: $t:ty)?)),*) => {$(
        fn $visit<E: de::Error>(self $(, $v: $t)?) -> Result<V::Value, E> {
            self.name.of(self.d.$visit($($v)?))
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Keyed<'_, V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.d.expecting(f)?;
        if self.name.path.is_empty() {
            return Ok(());
        }
        self.name.named.set(true);
        write!(f, " for `{}`", self.name.path)
    }
    leaves!(visit_bool(v: bool), visit_i64(v: i64), visit_u64(v: u64), visit_f64(v: f64));
    leaves!(visit_str(v: &str), visit_none(), visit_unit());
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.pass(d, |v, d| v.visit_some(d))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.pass(seq, |v, seq| v.visit_seq(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let key = String::new();
        self.pass(map, |v, map| v.visit_map(Table { map, key }))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Keyed<'_, A> {
    type Error = A::Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let name = self.name.clone();
        self.d.next_element_seed(Keyed { d: seed, name })
    }
}

struct Table<'a, A> {
    map: Keyed<'a, A>,
    key: String,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Table<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.d.next_key::<String>()? else {
            return Ok(None);
        };
        self.key = match self.map.name.path.as_str() {
            "" => key.clone(),
            path => format!("{path}.{key}"),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let name = Name {
            path: std::mem::take(&mut self.key),
            named: self.map.name.named,
        };
        self.map.d.next_value_seed(Keyed { d: seed, name })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Keyed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.pass(d, |seed, d| seed.deserialize(d))
    }
}
