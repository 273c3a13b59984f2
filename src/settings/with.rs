//! The readers of the keys whose value is not read as its type would be:
//! seconds (whole or not), `false` or seconds, a level in any case, one
//! string or a list, a command, the threshold table, whole numbers of at
//! least 1. Each reads `null` (YAML, JSON) as the key left out.

use super::*;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{Error as _, SeqAccess, Unexpected, Visitor};

pub(crate) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// For keys whose default is not their type's: `null` is `impl Default`'s.
macro_rules! or_its_default {
    ($($key:ident: $t:ty = $read:expr;)*) => {$(
        pub(crate) fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            Ok($read(d)?.unwrap_or_else(|| EmailConfig::default().$key))
        }
    )*};
}
or_its_default! {
    html: bool = Option::<bool>::deserialize;
    max_pending: usize = whole;
    max_record_bytes: usize = whole;
    max_email_bytes: usize = whole;
    max_detail_lines: usize = whole;
    send_deadline: Duration = seconds;
    lock_timeout: Duration = seconds;
    checkpoint_interval: Option<Duration> = |d: D| d.deserialize_any(Secs(true));
}

pub(crate) fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(d.deserialize_any(Secs(false))?.flatten())
}

pub(crate) fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    d.deserialize_any(Whole)
}

pub(crate) fn runs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(whole(d)?.map(|n| n as u64))
}

pub(crate) fn level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Level>, D::Error> {
    d.deserialize_any(Lvl)
}

pub(crate) fn many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let all = d.deserialize_any(Many)?.unwrap_or_default();
    Ok(all.into_iter().map(T::from).collect())
}

pub(crate) fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(Command)
}

/// Not negative; also `false` (as `Some(None)`) when `.0` says so.
struct Secs(bool);

impl<'de> Visitor<'de> for Secs {
    type Value = Option<Option<Duration>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds, such as 10 or 0.5")?;
        f.write_str(if self.0 {
            ", or false to turn checkpoints off"
        } else {
            ""
        })
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match (self.0, v) {
            (true, false) => Ok(Some(None)),
            (true, true) => Err(E::invalid_value(Unexpected::Bool(v), &self)),
            (false, _) => Err(E::invalid_type(Unexpected::Bool(v), &self)),
        }
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Some(Duration::from_secs(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match Duration::try_from_secs_f64(v) {
            Ok(d) => Ok(Some(Some(d))),
            Err(_) => Err(E::invalid_value(Unexpected::Float(v), &self)),
        }
    }
}

struct Whole;

impl<'de> Visitor<'de> for Whole {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match usize::try_from(v) {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }
}

struct Lvl;

impl<'de> Visitor<'de> for Lvl {
    type Value = Option<Level>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of trace, debug, info, warn, error (in any case)")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let name = v.trim();
        // tracing also reads "1" to "5" as levels; a setting takes names only.
        let level = name.parse().ok().filter(|_| name.parse::<u8>().is_err());
        level
            .map(Some)
            .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

struct Many;

impl<'de> Visitor<'de> for Many {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(vec![v.to_owned()]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Deserialize::deserialize(SeqAccessDeserializer::new(seq)).map(Some)
    }
}

/// Never one string, which would be taken for a program.
struct Command;

impl<'de> Visitor<'de> for Command {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a list of strings, the program then its arguments (run without a shell), \
             such as [\"pass\", \"show\", \"smtp\"]",
        )
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let all: Vec<String> = Deserialize::deserialize(SeqAccessDeserializer::new(seq))?;
        match all.first() {
            Some(program) if !program.trim().is_empty() => Ok(Some(all)),
            _ => Err(A::Error::invalid_value(Unexpected::Seq, &self)),
        }
    }
}

/// Its reader's errors already name their keys.
pub(crate) fn policy<'de, D: Deserializer<'de>>(d: D) -> Result<PolicyConfig, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Table(#[serde(with = "PolicyConfig")] PolicyConfig);
    Ok(Option::<Table>::deserialize(d)?.map_or_else(PolicyConfig::default, |t| t.0))
}

/// Both keys are needed.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { count = 5, level = \"warn\" }"
)]
struct Threshold {
    #[serde(default, deserialize_with = "whole")]
    count: Option<usize>,
    #[serde(default, deserialize_with = "level")]
    level: Option<Level>,
}

pub(crate) fn threshold<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<(usize, Level)>, D::Error> {
    let needs = "needs both `count` and `level`, such as { count = 5, level = \"warn\" }";
    match Option::<Threshold>::deserialize(d)? {
        None => Ok(None),
        Some(t) => t
            .count
            .zip(t.level)
            .map(Some)
            .ok_or_else(|| D::Error::custom(needs)),
    }
}
