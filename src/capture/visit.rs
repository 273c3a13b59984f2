//! Field values as a record keeps them: one `tracing` visitor that reads an
//! event's or a span's values into typed JSON within the record's bound, and
//! a writer that cuts a long (or failing, or panicking) `Debug` output with a
//! visible marker instead of building it whole.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;
use tracing::field::{Field, Visit};

use crate::capture::record::{FIELD_OVERHEAD, FIELDS_LEFT_OUT, char_cost, field_cost, text_cost};
use crate::error::error_chain;

/// A control character is one byte and six in JSON (`\u0001`).
const MAX_BYTE_COST: usize = 6;

const MARKER_MAX: usize = 48;

/// So one huge value does not crowd out the small fields after it.
const FIELD_RESERVE: usize = 64;

/// All text kept (escapes counted) stays within `left`: each value leaves room
/// for the fields to come and `after`, a value that does not fit is cut with a
/// marker, and from the first field with no room, fields are counted, not kept.
pub(crate) struct FieldVisitor<'a> {
    message: Option<&'a mut String>,
    fields: &'a mut Vec<(&'static str, Value)>,
    left: usize,
    to_come: usize,
    after: usize,
    pub(crate) left_out: Vec<&'static str>,
    /// Its real target, module, file and line are read apart.
    pub(crate) skip_bridge: bool,
}

impl<'a> FieldVisitor<'a> {
    pub(crate) fn new(
        message: Option<&'a mut String>,
        fields: &'a mut Vec<(&'static str, Value)>,
        left: usize,
        to_come: usize,
        after: usize,
    ) -> Self {
        FieldVisitor {
            message,
            fields,
            left,
            to_come,
            after,
            left_out: Vec::new(),
            skip_bridge: false,
        }
    }

    pub(crate) fn finish(mut self) -> usize {
        if !self.left_out.is_empty() {
            let n = Value::from(self.left_out.len());
            self.left = self.left.saturating_sub(field_cost(FIELDS_LEFT_OUT, &n));
            self.fields.push((FIELDS_LEFT_OUT, n));
        }
        self.left
    }

    /// `None` for a bridged event's `log.*` fields, read apart.
    fn room(&mut self, field: &Field) -> Option<usize> {
        if self.skip_bridge && field.name().starts_with("log.") {
            return None;
        }
        self.to_come = self.to_come.saturating_sub(1);
        let reserve = self
            .to_come
            .saturating_mul(FIELD_RESERVE)
            .saturating_add(self.after)
            .min(self.left / 2);
        Some(self.left - reserve)
    }

    fn put(&mut self, field: &Field, value: Value) {
        if self.room(field).is_none() {
            return;
        }
        let cost = field_cost(field.name(), &value);
        if self.left_out.is_empty() && cost <= self.left {
            self.left -= cost;
            self.fields.push((field.name(), value));
        } else {
            self.left_out.push(field.name());
        }
    }

    fn put_text(
        &mut self,
        field: &Field,
        length: Length,
        write: impl FnOnce(&mut Capped<'_>) -> fmt::Result,
    ) {
        let Some(room) = self.room(field) else {
            return;
        };
        if field.name() == "message"
            && let Some(message) = self.message.as_deref_mut()
        {
            let spent = capture(message, room, length, true, write).unwrap_or(0);
            self.left = self.left.saturating_sub(spent);
            return;
        }
        let fixed = text_cost(field.name()) + FIELD_OVERHEAD;
        let mut text = String::new();
        let kept = match room.checked_sub(fixed) {
            // Once one is left out, so are those after it (unformatted).
            Some(room) if self.left_out.is_empty() => {
                capture(&mut text, room, length, false, write)
            }
            _ => None,
        };
        match kept {
            Some(spent) => {
                self.left -= fixed + spent;
                self.fields.push((field.name(), Value::String(text)));
            }
            None => self.left_out.push(field.name()),
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), Value::Number);
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, v);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, v);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field, Length::Known, |w| w.write_str(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field, Length::AtLeast, |w| {
            write!(w, "{}", error_chain(value))
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_text(field, Length::AtLeast, |w| write!(w, "{value:?}"));
    }
}

/// A `&str` comes whole (a cut knows its length); a `Debug` output, piece by piece.
#[derive(Clone, Copy)]
enum Length {
    Known,
    AtLeast,
}

/// Refuses past `limit`: most `Debug` impls stop at the first error, never built whole.
struct Capped<'a> {
    out: &'a mut String,
    start: usize,
    limit: usize,
    spent: usize,
    /// Short text (fits even at [`MAX_BYTE_COST`]) is counted once, at the end.
    counted: bool,
    offered: usize,
    full: bool,
}

impl fmt::Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.offered = self.offered.saturating_add(s.len());
        if self.full {
            return Err(fmt::Error);
        }
        if !self.counted {
            let held = self.out.len() - self.start;
            if held.saturating_add(s.len()).saturating_mul(MAX_BYTE_COST) <= self.limit {
                self.out.push_str(s);
                return Ok(());
            }
            self.settle();
        }
        let room = self.limit - self.spent;
        // Usually the whole piece fits: counted in one pass (plain ASCII
        // at its length), kept without looking at its characters again.
        let whole = text_cost(s);
        if whole <= room {
            self.out.push_str(s);
            self.spent += whole;
            return Ok(());
        }
        let mut cost = 0;
        for (i, c) in s.char_indices() {
            let more = cost + char_cost(c);
            if more > room {
                self.out.push_str(&s[..i]);
                self.spent += cost;
                self.full = true;
                return Err(fmt::Error);
            }
            cost = more;
        }
        self.out.push_str(s);
        self.spent += cost;
        Ok(())
    }
}

impl Capped<'_> {
    fn settle(&mut self) {
        if !self.counted {
            self.spent = text_cost(&self.out[self.start..]);
            self.counted = true;
        }
    }

    /// When even that is not enough: nothing (`false`), or, if `force`, the marker alone.
    fn mark(&mut self, marker: &str, force: bool) -> bool {
        if marker.len() > self.limit && !force {
            return false;
        }
        while self.spent + marker.len() > self.limit {
            let Some(c) = self.out[self.start..].chars().next_back() else {
                break;
            };
            self.out.truncate(self.out.len() - c.len_utf8());
            self.spent -= char_cost(c);
        }
        self.out.push_str(marker);
        self.spent += marker.len();
        true
    }
}

/// Never panics: a `Debug` or `Display` that fails or panics keeps what it wrote,
/// then `…[formatting failed]` or `…[formatting panicked]`; text beyond the limit
/// is marked `…[cut: N bytes in all]` (`at least N` when piece by piece). `None`
/// (and `out` unchanged) when a needed marker does not fit, unless `force`.
fn capture(
    out: &mut String,
    limit: usize,
    length: Length,
    force: bool,
    write: impl FnOnce(&mut Capped<'_>) -> fmt::Result,
) -> Option<usize> {
    let start = out.len();
    let mut w = Capped {
        out,
        start,
        limit,
        spent: 0,
        counted: false,
        offered: 0,
        full: false,
    };
    let result = catch_unwind(AssertUnwindSafe(|| write(&mut w)));
    w.settle();
    let marker = match result {
        Err(payload) => {
            crate::error::drop_payload(payload);
            Cow::Borrowed("…[formatting panicked]")
        }
        Ok(_) if w.full => Cow::Owned(match length {
            Length::Known => format!("…[cut: {} bytes in all]", w.offered),
            Length::AtLeast => format!("…[cut: at least {} bytes]", w.offered),
        }),
        Ok(Err(_)) => Cow::Borrowed("…[formatting failed]"),
        Ok(Ok(())) => return Some(w.spent),
    };
    debug_assert!(marker.len() <= MARKER_MAX);
    if w.mark(&marker, force) {
        Some(w.spent)
    } else {
        w.out.truncate(start);
        None
    }
}

/// A panic's message, a thread's name.
pub(crate) fn bounded(text: &str, limit: usize) -> String {
    let mut out = String::new();
    let _ = capture(&mut out, limit, Length::Known, true, |w| w.write_str(text));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`capture`] keeps of `write`'s output within `limit`, and the
    /// cost it reports.
    fn captured(
        limit: usize,
        length: Length,
        write: impl FnOnce(&mut Capped<'_>) -> fmt::Result,
    ) -> Option<(String, usize)> {
        let mut out = String::from("before|");
        let spent = capture(&mut out, limit, length, false, write)?;
        let text = out.strip_prefix("before|").unwrap().to_owned();
        assert!(spent <= limit, "{spent} > {limit}");
        Some((text, spent))
    }

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_with_its_length() {
        assert_eq!(
            captured(10, Length::Known, |w| w.write_str("abc")),
            Some(("abc".to_owned(), 3))
        );
        let long = "é".repeat(40); // 80 bytes
        let (text, spent) = captured(40, Length::Known, |w| w.write_str(&long)).unwrap();
        assert_eq!(text, "ééééééé…[cut: 80 bytes in all]");
        assert_eq!(spent, text.len());
        // No room even for the marker: nothing, and `out` as it was.
        let mut out = String::from("x");
        assert_eq!(
            capture(&mut out, 5, Length::Known, false, |w| w.write_str(&long)),
            None
        );
        assert_eq!(out, "x");
        // Unless forced (the message): the marker alone.
        let mut out = String::new();
        assert!(capture(&mut out, 5, Length::Known, true, |w| w.write_str(&long)).is_some());
        assert_eq!(out, "…[cut: 80 bytes in all]");
    }

    #[test]
    fn escapes_count_at_their_written_length() {
        // A control character takes six bytes in JSON (`\u0001`).
        let (text, spent) = captured(12, Length::Known, |w| w.write_str("\u{1}\u{1}")).unwrap();
        assert_eq!((text.as_str(), spent), ("\u{1}\u{1}", 12));
        assert!(captured(11, Length::Known, |w| w.write_str("\u{1}\u{1}")).is_none());
    }

    /// Writes `total` bytes of `x` in pieces of 1000, counting how many
    /// bytes the writer accepted before it refused.
    struct Huge {
        total: usize,
        asked: std::cell::Cell<usize>,
    }

    impl fmt::Debug for Huge {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let piece = "x".repeat(1000);
            let mut written = 0;
            while written < self.total {
                f.write_str(&piece)?;
                written += piece.len();
                self.asked.set(written);
            }
            Ok(())
        }
    }

    #[test]
    fn a_huge_debug_output_stops_at_the_limit_instead_of_being_built() {
        let huge = Huge {
            total: 50 * 1024 * 1024,
            asked: 0.into(),
        };
        let (text, _) = captured(4096, Length::AtLeast, |w| write!(w, "{huge:?}")).unwrap();
        assert!(text.ends_with("…[cut: at least 5000 bytes]"), "{text}");
        assert!(text.len() <= 4096);
        // The Debug impl stopped at the first refusal.
        assert_eq!(huge.asked.get(), 4000);
    }

    struct Fails(&'static str);
    impl fmt::Debug for Fails {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)?;
            Err(fmt::Error)
        }
    }

    struct Panics(&'static str);
    impl fmt::Debug for Panics {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)?;
            panic!("Debug of Panics");
        }
    }

    #[test]
    fn a_failing_or_panicking_debug_keeps_what_it_wrote_and_says_so() {
        let v = Fails("partial");
        assert_eq!(
            captured(100, Length::AtLeast, |w| write!(w, "{v:?}"))
                .unwrap()
                .0,
            "partial…[formatting failed]"
        );
        let v = Panics("half");
        assert_eq!(
            captured(100, Length::AtLeast, |w| write!(w, "{v:?}"))
                .unwrap()
                .0,
            "half…[formatting panicked]"
        );
        // The marker takes the place of the text when both do not fit.
        let v = Fails("0123456789");
        assert_eq!(
            captured(25, Length::AtLeast, |w| write!(w, "{v:?}"))
                .unwrap()
                .0,
            "012…[formatting failed]"
        );
    }

    #[test]
    fn a_panic_payload_that_panics_when_dropped_is_leaked_not_propagated() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let mut out = String::new();
        let spent = capture(&mut out, 100, Length::AtLeast, false, |_| {
            std::panic::panic_any(Bomb)
        });
        assert_eq!(out, "…[formatting panicked]");
        assert_eq!(spent, Some(out.len()));
    }
}
