//! One captured log record, as it is kept in memory and in the state file.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use tracing::{Level, Metadata};

use crate::capture::shared::Interned;

/// Borrowed from tracing metadata, owned once read back: capturing copies no names.
pub(crate) type Str = Cow<'static, str>;

/// One log record: everything an event said, and where it said it.
///
/// Records are made by [`EmailLayer`](crate::EmailLayer) and handed to a
/// [`Transport`](crate::transport::Transport) inside an [`Email`](crate::transport::Email).
///
/// ```
/// # use tracing_email::record::Record;
/// fn describe(record: &Record) -> String {
///     format!("{} {}: {}", record.level, record.target, record.message)
/// }
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// When the event happened, in UTC (RFC 3339 in the state file).
    #[serde(rename = "time", with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The event's level.
    #[serde(with = "level_serde")]
    pub level: Level,
    /// The event's target (by default its module path).
    #[serde(deserialize_with = "crate::capture::shared::deserialize")]
    pub target: Str,
    /// The event's message (its `message` field), empty if it had none.
    #[serde(default)]
    pub message: String,
    /// The event's other fields, in the order they were written.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// The module the event was written in, if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::capture::shared::deserialize_option"
    )]
    pub module_path: Option<Str>,
    /// The source file the event was written in, if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::capture::shared::deserialize_option"
    )]
    pub file: Option<Str>,
    /// The line the event was written on, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The spans the event happened in, outermost first.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_spans"
    )]
    pub spans: Vec<Arc<SpanRecord>>,
    /// The run that logged it: runs are numbered in the order they first
    /// flushed to the state file. `None` until its first flush.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// In memory only, never in the state file (see `history::fingerprint_of`).
    #[serde(skip)]
    pub(crate) memo: Memo,
}

// By hand, to leave out the memo, which is not what the record says.
impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("timestamp", &self.timestamp)
            .field("level", &self.level)
            .field("target", &self.target)
            .field("message", &self.message)
            .field("fields", &self.fields)
            .field("module_path", &self.module_path)
            .field("file", &self.file)
            .field("line", &self.line)
            .field("spans", &self.spans)
            .field("run", &self.run)
            .finish()
    }
}

/// The same callsite and message, or callsite and values of the chosen fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Fingerprint {
    /// A 64-bit FNV-1a hash of the identifying text, in hex: stable across versions.
    pub(crate) key: String,
    pub(crate) label: String,
}

/// With a hash of the fields it was computed for. Boxed: a record never
/// fingerprinted carries only a pointer and a flag.
#[derive(Clone, Default)]
pub(crate) struct Memo(pub(crate) OnceLock<Box<(u64, Fingerprint)>>);

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A span an event happened in: its name and fields.
///
/// ```
/// # use tracing_email::record::SpanRecord;
/// fn name(span: &SpanRecord) -> &str {
///     &span.name
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpanRecord {
    /// The span's name.
    #[serde(deserialize_with = "crate::capture::shared::deserialize")]
    pub name: Str,
    /// The span's fields, including values set later with `Span::record`.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
}

/// Named values in the order they were recorded, as typed JSON values.
/// Read-only: made by the layer, read by a [`Transport`](crate::transport::Transport)
/// through [`Record::fields`] and [`SpanRecord::fields`].
///
/// Serialised as a JSON object whose keys keep that order.
///
/// ```
/// # use tracing_email::record::Record;
/// fn feed(record: &Record) -> Option<&str> {
///     record.fields.get("feed")?.as_str()
/// }
///
/// fn fields_line(record: &Record) -> String {
///     let pairs: Vec<String> = record.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
///     pairs.join(" ")
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(Str, Value)>);

impl Fields {
    /// The value of the first field with this name.
    ///
    /// ```
    /// # use tracing_email::record::Fields;
    /// let fields: Fields = serde_json::from_str(r#"{"n": 42}"#)?;
    /// assert_eq!(fields.get("n"), Some(&serde_json::json!(42)));
    /// assert_eq!(fields.get("m"), None);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// How many fields there are.
    ///
    /// ```
    /// # use tracing_email::record::Fields;
    /// let fields: Fields = serde_json::from_str(r#"{"a": 1, "b": "x"}"#)?;
    /// assert_eq!(fields.len(), 2);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    ///
    /// ```
    /// assert!(tracing_email::record::Fields::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields, in order: name and value.
    ///
    /// ```
    /// # use tracing_email::record::Fields;
    /// let fields: Fields = serde_json::from_str(r#"{"b": true, "a": 1}"#)?;
    /// let names: Vec<&str> = fields.iter().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["b", "a"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    #[cfg(test)]
    pub(crate) fn from_vec(fields: Vec<(Str, Value)>) -> Self {
        Fields(fields)
    }

    pub(crate) fn push(&mut self, name: Str, value: Value) {
        self.0.push((name, value));
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    pub(crate) fn pairs(&self) -> &[(Str, Value)] {
        &self.0
    }

    pub(crate) fn set(&mut self, name: Str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                // Read back from the state file, records may stay in memory
                // for a run: the fields are gathered in a list kept by the
                // thread and moved into one of their exact size, without
                // the room a growing list leaves (shrinking each list after
                // costs more, in the allocator, than this copy).
                thread_local! {
                    static GATHER: Cell<Vec<(Str, Value)>> = const { Cell::new(Vec::new()) };
                }
                let mut gathered = GATHER.try_with(Cell::take).unwrap_or_default();
                let read = (|| {
                    while let Some(k) = map.next_key::<Interned>()? {
                        gathered.push((k.0, map.next_value::<Value>()?));
                    }
                    Ok(())
                })();
                // Moved, not taken: the gathering list stays with the thread.
                let mut exact = Vec::with_capacity(gathered.len());
                exact.append(&mut gathered);
                let _ = GATHER.try_with(|g| g.set(gathered));
                read.map(|()| Fields(exact))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

pub(crate) mod level_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use tracing::Level;

    pub(crate) fn serialize<S: Serializer>(level: &Level, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(level.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|_| D::Error::custom(format!("unknown level {s:?}")))
    }
}

pub(crate) fn severity(level: Level) -> u8 {
    match level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

pub(crate) const LINE_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// At its own offset when it has no date at `offset` (9999-12-31 23:30 UTC at +01:00).
pub(crate) fn show_time(
    time: OffsetDateTime,
    offset: UtcOffset,
    format: &[time::format_description::FormatItem<'_>],
) -> String {
    time.checked_to_offset(offset)
        .unwrap_or(time)
        .format(format)
        .unwrap_or_default()
}

pub(crate) fn utc_time(time: OffsetDateTime) -> String {
    format!("{} UTC", show_time(time, UtcOffset::UTC, LINE_TIME))
}

pub(crate) fn file_stamp(time: OffsetDateTime) -> String {
    show_time(
        time,
        UtcOffset::UTC,
        time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
        ),
    )
}

impl Record {
    /// Names copied from metadata that lives only as long as the event (`log`).
    pub(crate) fn of_event<'m>(
        meta: &Metadata<'m>,
        name: impl Fn(&'m str) -> Str,
        time: SystemTime,
        message: String,
        fields: Vec<(Str, Value)>,
        spans: Option<Arc<[Arc<SpanRecord>]>>,
    ) -> Record {
        Record {
            timestamp: crate::clock::datetime(time),
            level: *meta.level(),
            target: name(meta.target()),
            message,
            fields: Fields(fields),
            module_path: meta.module_path().map(&name),
            file: meta.file().map(&name),
            line: meta.line(),
            spans: spans.map(|s| s.to_vec()).unwrap_or_default(),
            run: None,
            memo: Memo::default(),
        }
    }

    /// The record as one line of a digest:
    /// `2026-11-21 10:00:03 WARN poca::feed: feed failed url="https://…"`,
    /// with the time shown at `offset`. Control characters are shown
    /// escaped (`\n`, `\r`, `\u{1b}`), so the line is always one line.
    ///
    /// ```
    /// # use tracing_email::record::Record;
    /// fn line(record: &Record) -> String {
    ///     record.to_line(time::UtcOffset::UTC)
    /// }
    /// ```
    pub fn to_line(&self, offset: UtcOffset) -> String {
        let mut out = String::with_capacity(64 + self.message.len());
        let time = show_time(self.timestamp, offset, LINE_TIME);
        let _ = write!(out, "{time} {} ", self.level);
        write_escaped(&mut out, &self.target, false);
        out.push(':');
        if !self.message.is_empty() {
            out.push(' ');
            write_escaped(&mut out, &self.message, false);
        }
        write_fields(&mut out, &self.fields, true);
        out
    }

    /// The span context as one line, outermost first, e.g.
    /// `in run{job="nightly"} > fetch{feed="Radio Café"}`; `None` when the
    /// event happened outside any span. Control characters are shown
    /// escaped, as in [`to_line`](Record::to_line).
    ///
    /// ```
    /// # use tracing_email::record::Record;
    /// fn context(record: &Record) -> Option<String> {
    ///     record.span_context()
    /// }
    /// ```
    pub fn span_context(&self) -> Option<String> {
        if self.spans.is_empty() {
            return None;
        }
        let mut out = String::from("in ");
        for (i, span) in self.spans.iter().enumerate() {
            if i > 0 {
                out.push_str(" > ");
            }
            write_escaped(&mut out, &span.name, false);
            if !span.fields.is_empty() {
                out.push('{');
                write_fields(&mut out, &span.fields, false);
                out.push('}');
            }
        }
        Some(out)
    }
}

fn write_fields(out: &mut String, fields: &Fields, leading: bool) {
    for (i, (name, value)) in fields.iter().enumerate() {
        if leading || i > 0 {
            out.push(' ');
        }
        write_escaped(out, name, false);
        out.push('=');
        match value {
            Value::String(s) => {
                out.push('"');
                write_escaped(out, s, true);
                out.push('"');
            }
            other => {
                let _ = write!(out, "{other}");
            }
        }
    }
}

/// Controls (C0, DEL, C1), line separators, and bidirectional controls.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn text_escape(c: char, quoted: bool) -> Option<&'static str> {
    match c {
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        '\0' => Some("\\0"),
        '"' if quoted => Some("\\\""),
        '\\' if quoted => Some("\\\\"),
        _ => None,
    }
}

/// No log text can start a line of its own in an email body.
pub(crate) fn write_escaped(out: &mut String, text: &str, quoted: bool) {
    let mut done = 0;
    for (i, c) in text.char_indices() {
        let short = text_escape(c, quoted);
        if short.is_none() && !hidden(c) {
            continue;
        }
        out.push_str(&text[done..i]);
        match short {
            Some(escape) => out.push_str(escape),
            None => out.extend(c.escape_unicode()),
        }
        done = i + c.len_utf8();
    }
    out.push_str(&text[done..]);
}

#[derive(Default)]
pub(crate) struct Counted(pub(crate) usize);

impl fmt::Write for Counted {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// The longer of the state file's `"name":"value",` (6) and a digest's ` name="value"` (4).
pub(crate) const FIELD_OVERHEAD: usize = 6;

/// The longer of the state file's `{"name":"","fields":{}},` (24) and ` > {}` (5).
pub(crate) const SPAN_OVERHEAD: usize = 24;

/// The longer of its JSON and its quoted digest form: the bound holds for both.
#[inline]
pub(crate) fn char_cost(c: char) -> usize {
    if c.is_ascii() && c >= ' ' && c != '\x7f' && c != '"' && c != '\\' {
        return 1;
    }
    let json = match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    };
    let text = match text_escape(c, true) {
        Some(escape) => escape.len(),
        None if hidden(c) => c.escape_unicode().len(),
        None => c.len_utf8(),
    };
    json.max(text)
}

/// Printable ASCII other than `"` and `\`: what [`char_cost`] counts as 1.
#[inline]
fn plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b' ';
    while b < 0x7f {
        table[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    table
};

/// A first pass looks for bytes that are not plain (vectorized); only such text
/// is walked by character.
#[inline]
pub(crate) fn text_cost(text: &str) -> usize {
    let bytes = text.as_bytes();
    // Short text: eight bytes at a time, stopping early, beats the vector
    // loop's setup.
    let all_plain = if bytes.len() < 64 {
        short_plain(bytes)
    } else {
        bytes.iter().filter(|&&b| !plain(b)).count() == 0
    };
    if all_plain {
        text.len()
    } else {
        text.chars().map(char_cost).sum()
    }
}

#[inline]
fn short_plain(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    words.by_ref().all(|w| {
        w.try_into()
            .is_ok_and(|w| word_plain(u64::from_le_bytes(w)))
    }) && words.remainder().iter().all(|&b| plain(b))
}

/// The usual tests for a byte below `n` and a zero byte, on all eight at once.
#[inline]
fn word_plain(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    let control = below(w, 0x20);
    let high = w & HIGH;
    let del = below(w ^ (ONES * 0x7f), 1);
    let quote = below(w ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(w ^ (ONES * u64::from(b'\\')), 1);
    control | high | del | quote | backslash == 0
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

pub(crate) fn value_cost(value: &Value) -> usize {
    match value {
        Value::String(s) => text_cost(s),
        // The integers and flags the layer records, counted as JSON writes
        // them, without formatting them.
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Null => 4,
        Value::Number(n) if n.is_u64() => n.as_u64().map_or(0, digits),
        Value::Number(n) if n.is_i64() => n
            .as_i64()
            .map_or(0, |i| usize::from(i < 0) + digits(i.unsigned_abs())),
        other => {
            let mut n = Counted::default();
            let _ = write!(n, "{other}");
            n.0
        }
    }
}

pub(crate) fn field_cost(name: &str, value: &Value) -> usize {
    text_cost(name) + FIELD_OVERHEAD + value_cost(value)
}

pub(crate) fn span_cost(span: &SpanRecord) -> usize {
    text_cost(&span.name)
        + SPAN_OVERHEAD
        + span
            .fields
            .iter()
            .map(|(name, value)| field_cost(name, value))
            .sum::<usize>()
}

pub(crate) const FIELDS_LEFT_OUT: &str = "fields_left_out";

thread_local! {
    static LAST_SPANS: Cell<Vec<Arc<SpanRecord>>> = const { Cell::new(Vec::new()) };
}

/// A span equal to the one at its place in the record read before shares its `Arc`.
fn deserialize_spans<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Arc<SpanRecord>>, D::Error> {
    let mut read = Vec::<SpanRecord>::deserialize(d)?;
    // Without the thread's memory (in its teardown): each span its own.
    let mut last = LAST_SPANS.try_with(Cell::take).unwrap_or_default();
    let spans: Vec<Arc<SpanRecord>> = read
        .drain(..)
        .enumerate()
        .map(|(i, span)| match last.get(i) {
            Some(before) if **before == span => Arc::clone(before),
            _ => Arc::new(span),
        })
        .collect();
    last.clone_from(&spans);
    let _ = LAST_SPANS.try_with(|l| l.set(last));
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::{datetime, offset};

    fn sample() -> Record {
        Record {
            timestamp: datetime!(2026-11-21 10:00:03.25 UTC),
            level: Level::WARN,
            target: "poca::feed".into(),
            message: "feed failed".into(),
            fields: Fields::from_vec(vec![
                ("url".into(), json!("https://example.org/feed")),
                ("error".into(), json!("timed out")),
                ("attempt".into(), json!(3)),
            ]),
            module_path: Some("poca::feed".into()),
            file: Some("src/feed.rs".into()),
            line: Some(42),
            spans: vec![
                Arc::new(SpanRecord {
                    name: "run".into(),
                    fields: Fields::from_vec(vec![("job".into(), json!("nightly"))]),
                }),
                Arc::new(SpanRecord {
                    name: "fetch".into(),
                    fields: Fields::default(),
                }),
            ],
            run: Some(7),
            memo: Memo::default(),
        }
    }

    #[test]
    fn line_has_time_level_target_message_and_fields() {
        assert_eq!(
            sample().to_line(UtcOffset::UTC),
            r#"2026-11-21 10:00:03 WARN poca::feed: feed failed url="https://example.org/feed" error="timed out" attempt=3"#
        );
    }

    #[test]
    fn line_uses_the_given_offset() {
        assert!(
            sample()
                .to_line(offset!(+2))
                .starts_with("2026-11-21 12:00:03 WARN")
        );
    }

    #[test]
    fn span_context_is_outermost_first() {
        assert_eq!(
            sample().span_context().as_deref(),
            Some(r#"in run{job="nightly"} > fetch"#)
        );
        let mut r = sample();
        r.spans.clear();
        assert_eq!(r.span_context(), None);
    }

    #[test]
    fn json_round_trip_keeps_field_order_and_types() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""time":"2026-11-21T10:00:03.25Z""#),
            "{text}"
        );
        assert!(text.contains(r#""level":"WARN""#));
        let url = text.find("\"url\"").unwrap();
        let error = text.find("\"error\"").unwrap();
        assert!(url < error);
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_level_is_an_error() {
        let text = serde_json::to_string(&sample())
            .unwrap()
            .replace("\"WARN\"", "\"LOUD\"");
        let err = serde_json::from_str::<Record>(&text).unwrap_err();
        assert!(err.to_string().contains("LOUD"));
    }

    #[test]
    fn the_line_shows_control_characters_escaped() {
        let mut r = sample();
        r.message = "a\r\nSubject: x\t\u{1b}[1m \\ \"q\" \u{85}\u{2028}\u{202e}é".into();
        r.fields = Fields::from_vec(vec![("v".into(), json!("b\n\"c\" \\d"))]);
        assert_eq!(
            r.to_line(UtcOffset::UTC),
            r#"2026-11-21 10:00:03 WARN poca::feed: a\r\nSubject: x\t\u{1b}[1m \ "q" \u{85}\u{2028}\u{202e}é v="b\n\"c\" \\d""#
        );
    }

    #[test]
    fn a_value_costs_what_json_writes_for_it() {
        let mut values = vec![
            json!(null),
            json!(true),
            json!(false),
            json!(1.5),
            json!(-0.25),
        ];
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX / 10, u64::MAX] {
            values.push(json!(n));
        }
        for n in [-1i64, -9, -10, -12345, i64::MIN, i64::MIN + 1] {
            values.push(json!(n));
        }
        values.push(json!([1, "a"]));
        for v in values {
            assert_eq!(value_cost(&v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn eight_bytes_at_a_time_agree_with_one_at_a_time() {
        for len in [8, 13, 16, 63] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(short_plain(&bytes), plain(b), "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(short_plain(b"") && short_plain(b"feed x failed"));
    }

    #[test]
    fn the_cost_of_a_character_covers_its_json_and_its_text() {
        for c in (0..0x3000u32)
            .filter_map(char::from_u32)
            .chain(['😀', '\u{feff}'])
        {
            let json = serde_json::to_string(&c.to_string()).unwrap().len() - 2;
            let mut text = String::new();
            write_escaped(&mut text, &c.to_string(), true);
            let cost = char_cost(c);
            assert!(
                cost >= json && cost >= text.len(),
                "{c:?}: {cost} < {json} or {}",
                text.len()
            );
            assert!(cost == json || cost == text.len(), "{c:?}: {cost} too much");
            // What the layer's `Capped` writer assumes of any text.
            assert!(cost <= 6 * c.len_utf8(), "{c:?}: {cost} per byte");
        }
        let r = sample();
        let fields: usize = r.fields.iter().map(|(k, v)| field_cost(k, v)).sum();
        for text in [
            "",
            "plain ascii",
            "a\"b\\c",
            "tab\there",
            "Radio Café",
            "\u{1b}[1m\u{202e}",
        ] {
            assert_eq!(
                text_cost(text),
                text.chars().map(char_cost).sum::<usize>(),
                "{text:?}"
            );
        }
        let json = serde_json::to_string(&r.fields).unwrap().len();
        assert!(fields >= json, "{fields} < {json}");
    }
}
