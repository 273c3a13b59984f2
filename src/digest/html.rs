//! The HTML alternative of a digest: the text body's summary, then a table
//! with one row per record. Inline CSS only (mail clients drop `<style>`
//! and never load anything), no scripts, no external resources; everything
//! that comes from a record is HTML-escaped.

use std::fmt::{self, Write as _};
use std::path::Path;

use serde_json::Value;
use time::UtcOffset;
use tracing::Level;

use crate::capture::record::{LINE_TIME, Record, show_time};
use crate::digest::summary::{MAX_PROBLEMS, Summary, footer};

const FONT: &str = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/// A level's label: its name on a tinted background, so the level is said
/// in words and not by colour alone. Every label has the same length.
fn label(level: Level) -> &'static str {
    macro_rules! label {
        ($fg:literal, $bg:literal) => {
            concat!(
                "<span style=\"padding:1px 5px;border-radius:3px;",
                "font-size:11px;font-weight:bold;color:",
                $fg,
                ";background:",
                $bg,
                "\">"
            )
        };
    }
    match level {
        Level::ERROR => label!("#b3261e", "#fce8e6"),
        Level::WARN => label!("#8a4b00", "#fdefc8"),
        Level::INFO => label!("#174ea6", "#e8f0fe"),
        _ => label!("#5f6368", "#eceff1"),
    }
}

// The pieces of a row.
const TR: &str = "<tr valign=\"top\">";
/// Every other row is shaded; an ERROR row is tinted red.
const TR_SHADED: &str = "<tr valign=\"top\" bgcolor=\"#f6f8fa\">";
const TR_ERROR: &str = "<tr valign=\"top\" bgcolor=\"#fdf4f3\">";
const TD_TIME: &str =
    "<td style=\"white-space:nowrap;font:12px Menlo,Consolas,monospace;color:#57606a\">";
const TD_LEVEL: &str = "<td style=\"white-space:nowrap\">";
/// Targets break only after a `::` (see [`write_target`]), not mid-name.
const TD_TARGET: &str = "<td style=\"font-size:12px;color:#57606a;overflow-wrap:break-word\">";
/// A line-break opportunity, put after each `::` of a target.
const WBR: &str = "<wbr>";
const TD_MESSAGE: &str = "<td style=\"white-space:pre-wrap;word-break:break-word\">";
const CONTEXT: &str = "<div style=\"font-size:12px;color:#6a737d\">";
const TD_FIELDS: &str = "<td style=\"white-space:pre-wrap;word-break:break-word;\
                         font:12px Menlo,Consolas,monospace\">";
const FIELD_NAME: &str = "<span style=\"color:#6a737d\">";
const FIELD_SEP: &str = "<br>";
const ROW_END: &str = "</td></tr>\n";
/// `</span>` after a label or field name, `</td>` after a cell (and a line
/// break, to keep lines short), `</div>` after the context.
const SPAN_END: &str = "</span>";
const TD_END: &str = "</td>\n";
const DIV_END: &str = "</div>";

/// The digest as an HTML document: a header with the same summary as the
/// text body, a table with one row per record (oldest first), and the same
/// footer. `rows` are the shown records' rows, made by [`row`] (a row
/// missing from them is left out).
pub(crate) fn render(summary: &Summary<'_>, rows: &[&str], state_path: &Path) -> String {
    let rows_len: usize = rows.iter().map(|row| ROW_START_MAX + row.len()).sum();
    let mut out = String::with_capacity(4096 + rows_len);
    out.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light\"><title>",
    );
    escape_into(&mut out, summary.app);
    out.push_str(": ");
    out.push_str(&summary.record_count());
    let _ = write!(
        out,
        "</title></head>\n<body style=\"margin:0;padding:0;background:#ffffff\">\n\
         <div style=\"padding:16px 20px;font-family:{FONT};font-size:14px;line-height:1.45;\
         color:#1f2328\">\n"
    );
    if let Some(note) = summary.part_note() {
        out.push_str(
            "<p style=\"margin:0 0 10px;padding:6px 10px;background:#eceff1;color:#3c4043;\
             font-size:13px\">",
        );
        escape_into(&mut out, &note);
        out.push_str("</p>\n");
    }
    out.push_str("<p style=\"margin:0 0 4px;font-size:18px;font-weight:bold\">");
    escape_into(&mut out, summary.app);
    out.push_str(": ");
    out.push_str(&summary.record_count());
    out.push_str("</p>\n<p style=\"margin:0 0 12px;color:#57606a\">");
    for (level, n) in summary.levels() {
        out.push_str(label(level));
        let _ = write!(out, "{n} {level}{SPAN_END} ");
    }
    if let Some(span) = summary.time_span() {
        escape_into(&mut out, &span);
        out.push('.');
    }
    out.push_str("</p>\n");
    if let Some(note) = summary.dropped_note() {
        out.push_str(
            "<p style=\"margin:0 0 12px;padding:6px 10px;background:#fdefc8;color:#8a4b00;\
             border-left:3px solid #e8a33d\">",
        );
        escape_into(&mut out, &note);
        out.push_str("</p>\n");
    }
    if !summary.problems.is_empty() {
        out.push_str(
            "<p style=\"margin:0 0 4px;font-weight:bold\">What went wrong</p>\n\
             <ul style=\"margin:0 0 12px;padding-left:20px\">\n",
        );
        for p in summary.problems.iter().take(MAX_PROBLEMS) {
            out.push_str("<li style=\"margin:2px 0\">");
            out.push_str(label(p.level));
            let _ = write!(out, "{}{SPAN_END} ", p.level);
            // The same words as the text part, after the level.
            let line = summary.problem_line(p);
            let rest = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
            escape_into(&mut out, rest);
            if let Some(recent) = &p.recent {
                write_strip(&mut out, recent);
            }
            out.push_str("</li>\n");
        }
        if let Some(note) = summary.more_problems_note() {
            out.push_str("<li style=\"margin:2px 0;list-style:none\">");
            escape_into(&mut out, &note);
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    write_resolved(&mut out, summary);
    if let Some(note) = summary.hidden_note() {
        out.push_str("<p style=\"margin:0 0 8px;color:#57606a\">");
        escape_into(&mut out, &note);
        out.push_str("</p>\n");
    }
    out.push_str(
        "<table cellpadding=\"6\" cellspacing=\"0\" border=\"0\" width=\"100%\" \
         style=\"border-collapse:collapse;font-size:13px;border:1px solid #d8dee4\">\n\
         <tr bgcolor=\"#eaeef2\" style=\"font-size:12px;color:#57606a\">",
    );
    for heading in ["Time", "Level", "Target", "Message", "Fields"] {
        let _ = write!(out, "<th align=\"left\">{heading}</th>");
    }
    out.push_str("</tr>\n");
    for (i, (record, row)) in summary.shown().iter().zip(rows).enumerate() {
        out.push_str(row_start(record.level, i % 2 == 1));
        out.push_str(row);
    }
    out.push_str("</table>\n<p style=\"margin:14px 0 0;font-size:12px;color:#6a737d\">");
    escape_into(
        &mut out,
        &footer(summary.app, &state_path.display().to_string()),
    );
    if let Some(note) = &summary.fields_note {
        out.push_str("</p>\n<p style=\"margin:6px 0 0;font-size:12px;color:#8a4b00\">Note: ");
        escape_into(&mut out, note);
    }
    out.push_str("</p>\n</div>\n</body></html>\n");
    out
}

/// A failure's recent runs as small cells after its line, oldest first:
/// red for a run that saw it, green for one without. Not by colour alone:
/// the cells' title and the words before them say it as the text part does
/// (`last 6 runs, oldest first: ✓✓✗✗✗✗`).
fn write_strip(out: &mut String, recent: &[bool]) {
    let words = crate::store::history::strip_text(recent);
    let _ = write!(
        out,
        " <span style=\"white-space:nowrap;font-size:11px;color:#57606a\" title=\"{words}\" \
         aria-label=\"{words}\">&nbsp;last {} runs&nbsp;",
        recent.len()
    );
    for &failed in recent {
        out.push_str(if failed { STRIP_FAILED } else { STRIP_OK });
    }
    out.push_str(SPAN_END);
}

/// A run that saw the failure, and one that flushed without it.
const STRIP_FAILED: &str = "<span style=\"display:inline-block;width:7px;height:12px;\
                            margin-right:1px;vertical-align:middle;background:#d93025\"></span>";
const STRIP_OK: &str = "<span style=\"display:inline-block;width:7px;height:12px;\
                        margin-right:1px;vertical-align:middle;background:#34a853\"></span>";

/// The "Resolved" section: the failures that are over, one per line.
fn write_resolved(out: &mut String, summary: &Summary<'_>) {
    if summary.resolved.is_empty() {
        return;
    }
    out.push_str(
        "<p style=\"margin:0 0 4px;font-weight:bold;color:#1e7e34\">Resolved</p>\n\
         <ul style=\"margin:0 0 12px;padding-left:20px\">\n",
    );
    for r in summary.resolved.iter().take(MAX_PROBLEMS) {
        out.push_str("<li style=\"margin:2px 0\">");
        out.push_str(label(r.level));
        let _ = write!(out, "{}{SPAN_END} ", r.level);
        let line = summary.resolved_line(r);
        let rest = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
        escape_into(out, rest);
        out.push_str("</li>\n");
    }
    let more = summary.resolved.len().saturating_sub(MAX_PROBLEMS);
    if more > 0 {
        let _ = writeln!(
            out,
            "<li style=\"margin:2px 0;list-style:none\">… and {} other failures.</li>",
            crate::digest::summary::grouped(more)
        );
    }
    out.push_str("</ul>\n");
}

/// The HTML part of the email that only says failures are over.
pub(crate) fn render_recovery(summary: &Summary<'_>, subject: &str, state_path: &Path) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light\"><title>",
    );
    escape_into(&mut out, subject);
    let _ = write!(
        out,
        "</title></head>\n<body style=\"margin:0;padding:0;background:#ffffff\">\n\
         <div style=\"padding:16px 20px;font-family:{FONT};font-size:14px;line-height:1.45;\
         color:#1f2328\">\n<p style=\"margin:0 0 12px;font-size:18px;font-weight:bold\">"
    );
    escape_into(&mut out, summary.app);
    out.push_str(": ");
    out.push_str(&crate::digest::summary::plural(
        summary.resolved.len(),
        "failure is over",
        "failures are over",
    ));
    out.push_str("</p>\n");
    write_resolved(&mut out, summary);
    out.push_str("<p style=\"margin:14px 0 0;font-size:12px;color:#6a737d\">");
    escape_into(
        &mut out,
        &footer(summary.app, &state_path.display().to_string()),
    );
    out.push_str("</p>\n</div>\n</body></html>\n");
    out
}

/// The start of a record's row, which depends on its place in the table:
/// tinted for an error, else shaded every other row.
fn row_start(level: Level, shaded: bool) -> &'static str {
    if level == Level::ERROR {
        TR_ERROR
    } else if shaded {
        TR_SHADED
    } else {
        TR
    }
}

/// The longest start a row can have (see [`row_start`]): what a row's size
/// counts for it, before its place in a table is known.
pub(crate) const ROW_START_MAX: usize = max(TR.len(), max(TR_SHADED.len(), TR_ERROR.len()));

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// One record's row, all but its start (see [`row_start`]): time, level,
/// target, message with its span context below, fields. Rendered once per
/// record: measured to split a digest by size, then put in the table.
pub(crate) fn row(record: &Record, offset: UtcOffset) -> String {
    let mut out = String::with_capacity(768);
    write_row(&mut out, record, offset);
    out
}

fn write_row(out: &mut String, record: &Record, offset: UtcOffset) {
    out.push_str(TD_TIME);
    out.push_str(&show_time(record.timestamp, offset, LINE_TIME));
    out.push_str(TD_END);
    out.push_str(TD_LEVEL);
    out.push_str(label(record.level));
    out.push_str(record.level.as_str());
    out.push_str(SPAN_END);
    out.push_str(TD_END);
    out.push_str(TD_TARGET);
    write_target(out, &record.target);
    out.push_str(TD_END);
    out.push_str(TD_MESSAGE);
    escape_into(out, &record.message);
    if let Some(context) = record.span_context() {
        out.push_str(CONTEXT);
        escape_into(out, &context);
        out.push_str(DIV_END);
    }
    out.push_str(TD_END);
    out.push_str(TD_FIELDS);
    for (i, (name, value)) in record.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(FIELD_SEP);
        }
        out.push_str(FIELD_NAME);
        escape_into(out, name);
        out.push('=');
        out.push_str(SPAN_END);
        write_value(&mut Escaped(out), value);
    }
    out.push_str(ROW_END);
}

/// A target, escaped, with a line-break opportunity after each `::`, so a
/// narrow column shows `poca::` / `download` rather than `poca::downlo` /
/// `ad`.
fn write_target(out: &mut String, target: &str) {
    for (i, segment) in target.split("::").enumerate() {
        if i > 0 {
            out.push_str("::");
            out.push_str(WBR);
        }
        escape_into(out, segment);
    }
}

/// A field's value: a string as its text, anything else as JSON.
fn write_value(out: &mut impl fmt::Write, value: &Value) {
    let _ = match value {
        Value::String(s) => out.write_str(s),
        other => write!(out, "{other}"),
    };
}

/// The entity for a byte that must be escaped in HTML text and attributes.
fn entity(byte: u8) -> Option<&'static str> {
    match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&#39;"),
        _ => None,
    }
}

/// Appends `text` with `& < > " '` escaped.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    let mut done = 0;
    for (i, byte) in text.bytes().enumerate() {
        if let Some(entity) = entity(byte) {
            // The escaped bytes are ASCII, so `i` is a char boundary.
            out.push_str(&text[done..i]);
            out.push_str(entity);
            done = i + 1;
        }
    }
    out.push_str(&text[done..]);
}

/// Writes into a `String`, escaping as it goes (for values written with
/// `Display`, without a temporary string).
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::{Fields, SpanRecord};
    use serde_json::json;
    use std::sync::Arc;
    use time::UtcOffset;
    use time::macros::datetime;

    fn record(level: Level, message: &str) -> Record {
        let mut r = crate::policy::tests::record_at(level);
        r.timestamp = datetime!(2026-11-21 10:00:03.25 UTC);
        r.target = "poca::feed".into();
        r.message = message.into();
        r
    }

    /// The podcast client's failing feed, inside `run{job="nightly"} >
    /// fetch{feed="Radio Café"}`.
    fn feed_failed() -> Record {
        let mut r = record(Level::WARN, "feed failed");
        r.fields = Fields::from_vec(vec![
            ("feed".into(), json!("Radio Café")),
            ("attempt".into(), json!(3)),
            ("tags".into(), json!(["a", "b"])),
        ]);
        r.spans = vec![
            Arc::new(SpanRecord {
                name: "run".into(),
                fields: Fields::from_vec(vec![("job".into(), json!("nightly"))]),
            }),
            Arc::new(SpanRecord {
                name: "fetch".into(),
                fields: Fields::from_vec(vec![("feed".into(), json!("Radio Café"))]),
            }),
        ];
        r
    }

    fn html(records: &[Record], dropped: u64, part: Option<(usize, usize)>) -> String {
        let summary = Summary::new("poca", records, dropped, part, UtcOffset::UTC);
        page(&summary, Path::new("/var/lib/poca/state.json"))
    }

    /// The page, with the shown records' rows made here.
    fn page(summary: &Summary<'_>, state_path: &Path) -> String {
        let rows: Vec<String> = summary
            .shown()
            .iter()
            .map(|r| row(r, summary.offset))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        render(summary, &rows, state_path)
    }

    /// The `<tr>…</tr>` rows of the table, header row excluded.
    fn rows(html: &str) -> Vec<&str> {
        html.split("<tr valign=")
            .skip(1)
            .map(|r| &r[..r.find("</tr>").unwrap()])
            .collect()
    }

    #[test]
    fn escaping_covers_the_five_characters() {
        let mut out = String::new();
        escape_into(&mut out, r#"a&b <c> "d" 'e' Café ポッド"#);
        assert_eq!(
            out,
            "a&amp;b &lt;c&gt; &quot;d&quot; &#39;e&#39; Café ポッド"
        );
    }

    #[test]
    fn markup_in_records_is_escaped_everywhere() {
        let mut r = record(Level::ERROR, "<script>alert(1)</script>");
        r.target = "x<b>".into();
        r.fields = Fields::from_vec(vec![
            ("url".into(), json!("\"><img src=x onerror=alert(1)>")),
            ("<i>".into(), json!({"k": "<svg onload=alert(1)>"})),
        ]);
        r.spans = vec![Arc::new(SpanRecord {
            name: "<span>".into(),
            fields: Fields::from_vec(vec![("q".into(), json!("'><a href=javascript:x>"))]),
        })];
        let html = html(&[r], 0, None);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<svg"), "{html}");
        assert!(!html.contains("<a "), "{html}");
        assert!(!html.contains("<b>") && !html.contains("<i>") && !html.contains("<span>"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("x&lt;b&gt;"), "{html}");
        assert!(html.contains("&lt;span&gt;{q=&quot;&#39;&gt;&lt;a href=javascript:x&gt;&quot;}"));
    }

    #[test]
    fn the_app_name_and_state_path_are_escaped_too() {
        let records = [record(Level::WARN, "x")];
        let summary = Summary::new("a<b>", &records, 0, None, UtcOffset::UTC);
        let html = page(&summary, Path::new("/tmp/<x>/state.json"));
        assert!(!html.contains("a<b>") && !html.contains("<x>"), "{html}");
        assert!(html.contains("a&lt;b&gt;: 1 log record"), "{html}");
        assert!(html.contains("/tmp/&lt;x&gt;/state.json"), "{html}");
    }

    #[test]
    fn one_row_per_record_oldest_first_with_every_column() {
        let mut first = feed_failed();
        first.timestamp = datetime!(2026-11-21 09:59:00 UTC);
        let second = record(Level::INFO, "feed updated");
        let html = html(&[first, second], 0, None);
        let rows = rows(&html);
        assert_eq!(rows.len(), 2);
        let r = rows[0];
        for part in [
            "2026-11-21 09:59:00",
            ">WARN</span>",
            "feed failed",
            // The span context, under the message.
            "<div style=\"font-size:12px;color:#6a737d\">in run{job=&quot;nightly&quot;} &gt; fetch{feed=&quot;Radio Café&quot;}</div>",
            // Strings as text, other values as JSON.
            "feed=</span>Radio Café<br>",
            "attempt=</span>3<br>",
            "tags=</span>[&quot;a&quot;,&quot;b&quot;]",
        ] {
            assert!(r.contains(part), "{part} missing in {r}");
        }
        let message = r.find("feed failed").unwrap();
        assert!(message < r.find("in run{").unwrap());
        assert!(
            r.contains(">poca::<wbr>feed</td>"),
            "targets break after ::"
        );
        assert!(rows[1].contains("2026-11-21 10:00:03") && rows[1].contains(">INFO</span>"));
        assert!(!rows[1].contains("<div"), "no context without spans");
    }

    #[test]
    fn levels_are_labelled_in_words_and_colours() {
        let records: Vec<Record> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .into_iter()
        .map(|l| record(l, "m"))
        .collect();
        let html = html(&records, 0, None);
        let rows = rows(&html);
        for (row, (level, colour)) in rows.iter().zip([
            ("ERROR", "#b3261e"),
            ("WARN", "#8a4b00"),
            ("INFO", "#174ea6"),
            ("DEBUG", "#5f6368"),
            ("TRACE", "#5f6368"),
        ]) {
            assert!(
                row.contains(&format!("color:{colour};"))
                    && row.contains(&format!(">{level}</span>")),
                "{level}: {row}"
            );
        }
        assert!(
            rows[0].starts_with("\"top\" bgcolor=\"#fdf4f3\""),
            "ERROR rows are tinted"
        );
    }

    #[test]
    fn the_header_has_the_text_body_summary() {
        let mut records = vec![record(Level::ERROR, "a"), record(Level::WARN, "b")];
        records.extend((0..3).map(|_| record(Level::INFO, "c")));
        records[4].timestamp = datetime!(2026-11-21 12:00:04 UTC);
        let html = html(&records, 0, None);
        assert!(html.contains("poca: 5 log records</p>"), "{html}");
        for count in ["1 ERROR", "1 WARN", "3 INFO"] {
            assert!(html.contains(&format!("{count}</span>")), "{count}: {html}");
        }
        assert!(
            html.contains("from 2026-11-21 10:00:03 to 2026-11-21 12:00:04, times in UTC."),
            "{html}"
        );
        assert!(!html.contains("dropped") && !html.contains("part "));
        assert!(
            html.contains(
                "Sent by tracing-email for poca. Records wait in /var/lib/poca/state.json"
            )
        );
    }

    #[test]
    fn dropped_records_and_parts_are_said() {
        let records = [record(Level::WARN, "x")];
        let html = html(&records, 412, Some((2, 3)));
        assert!(
            html.contains(
                "412 older records were dropped before this digest because too many were pending."
            ),
            "{html}"
        );
        assert!(html.contains("This is part 2 of 3"), "{html}");
    }

    #[test]
    fn a_document_with_no_scripts_and_nothing_to_load() {
        let html = html(&[feed_failed()], 0, None);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.ends_with("</html>\n"));
        for forbidden in [
            "<script", "<style", "<link", "<img", "src=", "href=", "url(",
        ] {
            assert!(!html.contains(forbidden), "{forbidden} in {html}");
        }
        // Short lines: mail transports need lines under 998 bytes to send
        // it unencoded.
        assert!(html.lines().all(|l| l.len() < 998), "{html}");
    }
}
