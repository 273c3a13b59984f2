//! The HTML alternative of a digest, for a person who acts on it: the
//! headline (what failed, where, since when), then each failure with its
//! detail, its recent runs and its newest record among a few context
//! records of the same run and spans, then a count of the rest (every
//! record is in the attached log). One column of blocks inside a table,
//! inline styles only (mail clients drop `<style>`), no scripts, nothing
//! loaded from elsewhere; it reads at 320 px as at 800 px. Light colours
//! that stay light (`color-scheme: light only`), every text at a contrast
//! of 4.5:1 or more, nothing said by colour alone. Everything that comes
//! from a record is HTML-escaped.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use time::UtcOffset;
use tracing::Level;

use crate::capture::record::{LINE_TIME, Record, show_time};
use crate::digest::summary::{MAX_PROBLEMS, Summary, footer, grouped, level_counts};
use crate::say::plural;

const FONT: &str = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";
const MONO: &str = "Menlo,Consolas,'DejaVu Sans Mono',monospace";
/// Muted text: 6:1 on white, 5.9:1 on the record boxes.
const MUTED: &str = "#57606a";

/// A level's label: its name on a tinted background, so the level is said
/// in words and not by colour alone.
fn label(level: Level) -> String {
    let (fg, bg) = match level {
        Level::ERROR => ("#b3261e", "#fce8e6"),
        Level::WARN => ("#8a4b00", "#fdefc8"),
        Level::INFO => ("#174ea6", "#e8f0fe"),
        _ => ("#5f6368", "#eceff1"),
    };
    format!(
        "<span style=\"padding:1px 5px;border-radius:3px;font-size:11px;font-weight:bold;\
         color:{fg};background:{bg}\">{level}</span>"
    )
}

/// Colours `(text, background, edge)` for a failure at `level` (`None`:
/// nothing failed).
fn tone(level: Option<Level>) -> (&'static str, &'static str, &'static str) {
    match level {
        Some(Level::ERROR) => ("#a50e0e", "#fce8e6", "#d93025"),
        Some(Level::WARN) => ("#6d3b00", "#fdefc8", "#e8a33d"),
        _ => ("#1f2328", "#eaeef2", "#8c959f"),
    }
}

/// The colours of failures that are over.
const RESOLVED: (&str, &str, &str) = ("#0d652d", "#e6f4ea", "#34a853");

/// Failures shown with context records; the others with their newest
/// record only.
const WITH_CONTEXT: usize = 3;
/// Context records shown with each of them.
const CONTEXT: usize = 3;
/// Records shown when no failure is.
const LATEST_RECORDS: usize = 10;

/// The digest as an HTML document (see the module's documentation).
pub(crate) fn render(summary: &Summary<'_>, state_path: &Path) -> String {
    let level = summary.problems.first().map(|p| p.level);
    let mut out = page_start(&summary.headline(), tone(level));
    let style = format!("margin:0 0 10px;color:{MUTED}");
    paragraph(&mut out, &style, &summary.overview());
    for note in summary.notes() {
        let style = "margin:0 0 10px;padding:6px 10px;background:#fdefc8;color:#6d3b00";
        paragraph(&mut out, style, &note);
    }
    let mut shown = vec![false; summary.records.len()];
    write_problems(&mut out, summary, &mut shown);
    // With no failure, the newest records.
    if summary.problems.is_empty() && !summary.records.is_empty() {
        out.push_str("<p style=\"margin:4px 0 0;font-weight:bold\">Latest records</p>\n");
        let start = summary.records.len().saturating_sub(LATEST_RECORDS);
        for (i, record) in summary.records.iter().enumerate().skip(start) {
            shown[i] = true;
            write_record(&mut out, record, summary.offset, false);
        }
    }
    write_resolved(&mut out, summary);
    write_rest(&mut out, summary, &shown);
    page_end(&mut out, summary, state_path);
    out
}

/// The HTML part of the email that only says failures are over: its
/// headline in green, then one line per failure.
pub(crate) fn render_recovery(summary: &Summary<'_>, state_path: &Path) -> String {
    let mut out = page_start(&summary.resolved_headline(), RESOLVED);
    write_resolved(&mut out, summary);
    page_end(&mut out, summary, state_path);
    out
}

/// The document's start, up to the inside of its card, then the first
/// line, large, in `(text, background, edge)` colours.
fn page_start(headline: &str, (fg, bg, edge): (&str, &str, &str)) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light only\">\
         <meta name=\"supported-color-schemes\" content=\"light only\"><title>",
    );
    escape_into(&mut out, headline);
    let _ = write!(
        out,
        "</title></head>\n<body style=\"margin:0;padding:0;background:#f6f8fa;color:#1f2328\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" \
         border=\"0\" style=\"background:#f6f8fa\"><tr><td align=\"center\" \
         style=\"padding:12px 6px\">\n<table role=\"presentation\" width=\"100%\" \
         cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"max-width:720px;\
         background:#ffffff;border:1px solid #d8dee4;border-radius:6px\"><tr>\
         <td align=\"left\" style=\"padding:14px;font-family:{FONT};font-size:14px;\
         line-height:1.45;color:#1f2328;overflow-wrap:anywhere;word-break:break-word\">\n"
    );
    let style = format!(
        "margin:0 0 8px;padding:8px 10px;font-size:18px;line-height:1.3;font-weight:bold;\
         color:{fg};background:{bg};border-left:4px solid {edge}"
    );
    paragraph(&mut out, &style, headline);
    out
}

/// The footer and the document's end.
fn page_end(out: &mut String, summary: &Summary<'_>, state_path: &Path) {
    let footer = footer(summary.app, &state_path.display().to_string());
    let style = format!("margin:14px 0 0;font-size:12px;color:{MUTED}");
    paragraph(out, &style, &footer);
    if let Some(note) = &summary.fields_note {
        let style = "margin:6px 0 0;font-size:12px;color:#6d3b00";
        paragraph(out, style, &format!("Note: {note}"));
    }
    out.push_str("</td></tr></table>\n</td></tr></table>\n</body></html>\n");
}

/// `<p style="…">text</p>`, the text escaped.
fn paragraph(out: &mut String, style: &str, text: &str) {
    tag(out, &format!("<p style=\"{style}\">"), text, "</p>\n");
}

/// `open`, then `text` escaped, then `close`.
fn tag(out: &mut String, open: &str, text: &str, close: &str) {
    out.push_str(open);
    escape_into(out, text);
    out.push_str(close);
}

/// "What went wrong": each failure, most severe first: its level and label,
/// its detail, its facts and recent runs, then its newest record among a
/// few context records (for the first [`WITH_CONTEXT`] failures).
fn write_problems(out: &mut String, summary: &Summary<'_>, shown: &mut [bool]) {
    if summary.problems.is_empty() {
        return;
    }
    out.push_str("<p style=\"margin:4px 0 6px;font-weight:bold\">What went wrong</p>\n");
    for (i, p) in summary.problems.iter().take(MAX_PROBLEMS).enumerate() {
        let (_, _, edge) = tone(Some(p.level));
        let open = format!(
            "<div style=\"margin:0 0 14px;padding:0 0 0 10px;border-left:4px solid {edge}\">\n\
             <p style=\"margin:0;font-weight:bold\">{} ",
            label(p.level),
        );
        tag(out, &open, &p.label, "</p>\n");
        if let Some(detail) = &p.detail {
            paragraph(out, "margin:2px 0 0;", detail);
        }
        let style = format!("margin:2px 0 0;font-size:13px;color:{MUTED}");
        paragraph(out, &style, &summary.problem_facts(p));
        if let Some(recent) = &p.recent {
            write_strip(out, recent);
        }
        let context = if i < WITH_CONTEXT { CONTEXT } else { 0 };
        for i in summary.context(p, context, shown) {
            if let Some(record) = summary.records.get(i) {
                shown[i] = true;
                write_record(out, record, summary.offset, i == p.latest);
            }
        }
        out.push_str("</div>\n");
    }
    if let Some(note) = summary.more_problems_note() {
        paragraph(out, "margin:0 0 10px;", &note);
    }
}

/// `38 more records (36 INFO, 2 WARN), all in the attached log, oldest
/// first, run by run.`: the records the page does not show.
fn write_rest(out: &mut String, summary: &Summary<'_>, shown: &[bool]) {
    let hidden = std::iter::zip(shown, summary.records).filter_map(|(s, r)| (!s).then_some(r));
    let hidden: Vec<&Record> = hidden.collect();
    let records = match hidden.len() {
        0 => return,
        1 => "record",
        _ => "records",
    };
    let levels = level_counts(hidden.iter().copied(), grouped);
    let log = match summary.hidden_note() {
        None => "all in the attached log, oldest first, run by run.".to_owned(),
        Some(hidden) => format!("in the attached log. {hidden}"),
    };
    let text = format!("{} more {records} ({levels}), {log}", grouped(hidden.len()));
    let style = format!("margin:0 0 10px;margin-top:4px;color:{MUTED}");
    paragraph(out, &style, &text);
}

/// One record in a box: time, level and target, then its message, fields
/// and span context. The failure's own record (`own`) is tinted.
fn write_record(out: &mut String, record: &Record, offset: UtcOffset, own: bool) {
    let background = match (own, record.level) {
        (true, Level::ERROR) => "#fdf4f3",
        (true, _) => "#fffaf0",
        _ => "#f6f8fa",
    };
    let open = format!(
        "<div style=\"margin:6px 0 0;padding:6px 8px;background:{background};\
         border-radius:4px;font-size:13px\">\n<div style=\"font-size:12px;color:{MUTED}\">\
         <span style=\"font-family:{MONO}\">{}</span> {} ",
        show_time(record.timestamp, offset, LINE_TIME),
        label(record.level),
    );
    tag(out, &open, &record.target, "</div>\n");
    if !record.message.is_empty() {
        let open = "<div style=\"white-space:pre-wrap\">";
        tag(out, open, &record.message, "</div>\n");
    }
    if !record.fields.is_empty() {
        let _ = write!(
            out,
            "<div style=\"font-family:{MONO};font-size:12px;overflow-wrap:anywhere\">"
        );
        for (i, (name, value)) in record.fields.iter().enumerate() {
            let space = if i > 0 { " &ensp;" } else { "" };
            let open = format!("{space}<span style=\"color:{MUTED}\">");
            tag(out, &open, name, "=</span>");
            // A string as its text, anything else as JSON.
            match value {
                Value::String(s) => escape_into(out, s),
                other => escape_into(out, &other.to_string()),
            }
        }
        out.push_str("</div>\n");
    }
    if let Some(context) = record.span_context() {
        let open = format!("<div style=\"font-size:12px;color:{MUTED}\">");
        tag(out, &open, &context, "</div>\n");
    }
    out.push_str("</div>\n");
}

/// A failure's recent runs, oldest first, as cells that each say it in a
/// glyph: `✗` on red for a run that saw it, `✓` on green for one without
/// (colour is the second cue), after the words `last 6 runs, oldest
/// first:`.
fn write_strip(out: &mut String, recent: &[bool]) {
    let _ = write!(
        out,
        "<p style=\"margin:3px 0 0;font-size:12px;color:{MUTED}\">last {}, oldest first: ",
        plural(recent.len(), "run", "runs")
    );
    for &failed in recent {
        let (fg, bg, glyph) = match failed {
            true => ("#a50e0e", "#fce8e6", '✗'),
            false => ("#0d652d", "#e6f4ea", '✓'),
        };
        let _ = write!(
            out,
            "<span style=\"display:inline-block;min-width:14px;margin:0 1px 1px 0;\
             text-align:center;font-weight:bold;color:{fg};background:{bg}\">{glyph}</span>"
        );
    }
    out.push_str("</p>\n");
}

/// An item of the "Resolved" section, and the count of the rest.
const RESOLVED_ITEM: &str = "<li style=\"margin:2px 0;color:#0d652d\">";
const MORE_ITEM: &str = "<li style=\"margin:2px 0;list-style:none\">";

/// The "Resolved" section: the failures that are over, one per line, in
/// green with a `✓`, without a level badge.
fn write_resolved(out: &mut String, summary: &Summary<'_>) {
    if summary.resolved.is_empty() {
        return;
    }
    out.push_str(
        "<p style=\"margin:4px 0 4px;font-weight:bold;color:#0d652d\">Resolved</p>\n\
         <ul style=\"margin:0 0 12px;padding-left:4px;list-style:none\">\n",
    );
    let (lines, more) = summary.resolved_lines();
    for line in &lines {
        // Without its level: the ✓ and the colour say it is over.
        let rest = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
        tag(out, RESOLVED_ITEM, &format!("✓ {rest}"), "</li>\n");
    }
    if let Some(more) = more {
        tag(out, MORE_ITEM, &more, "</li>\n");
    }
    out.push_str("</ul>\n");
}

/// Appends `text` with `& < > " '` escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::{Fields, SpanRecord};
    use crate::digest::compose::Composer;
    use crate::digest::compose::tests::composer;
    use serde_json::json;
    use std::sync::Arc;
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

    /// The page of `records` as a digest makes it: failures at WARN or
    /// above, by their `feed`, on the host `web-3`.
    fn html(records: &[Record], dropped: u64, part: Option<(usize, usize)>) -> String {
        let c = composer();
        let summary = summary(&c, records, dropped, part);
        render(&summary, Path::new("/var/lib/poca/state.json"))
    }

    /// The summary `c` makes of `records`, with failures at WARN or above
    /// (by their `feed`, on the host `web-3` with the test composer).
    fn summary<'a>(
        c: &'a Composer,
        records: &'a [Record],
        dropped: u64,
        part: Option<(usize, usize)>,
    ) -> Summary<'a> {
        let history = crate::store::history::History::default();
        let mut summary = c.summary(records, &[]);
        (summary.dropped, summary.part) = (dropped, part);
        summary.problems =
            crate::digest::summary::problems(records, &history, &c.fingerprint_fields, c.level);
        summary
    }

    /// The record boxes of the page, in order.
    fn boxes(html: &str) -> Vec<&str> {
        html.split("<div style=\"margin:6px 0 0;padding:6px 8px;background:")
            .skip(1)
            .map(|b| &b[..b.find("</div>\n</div>").unwrap()])
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
        let c = Composer {
            app: "a<b>".into(),
            ..composer()
        };
        let summary = summary(&c, &records, 0, None);
        let html = render(&summary, Path::new("/tmp/<x>/state.json"));
        assert!(!html.contains("a<b>") && !html.contains("<x>"), "{html}");
        assert!(html.contains("a&lt;b&gt; on web-3: 1 log record"), "{html}");
        assert!(html.contains("/tmp/&lt;x&gt;/state.json"), "{html}");
    }

    #[test]
    fn the_failure_leads_with_its_detail_its_record_and_a_few_of_context() {
        let mut rs: Vec<Record> = (0..6)
            .map(|i| {
                let mut r = record(Level::INFO, &format!("feed {i} updated"));
                r.spans = feed_failed().spans[..1].to_vec();
                r.run = Some(3);
                r
            })
            .collect();
        let mut failed = feed_failed();
        failed.spans.truncate(1);
        failed.run = Some(3);
        failed
            .fields
            .push("error".into(), json!("connection timed out"));
        rs.insert(4, failed);
        // Another run's context is not this failure's.
        rs[3].run = Some(2);
        let html = html(&rs, 0, None);
        let first = html.find("<p style=\"margin:0 0 8px").unwrap();
        assert!(
            html[first..].starts_with(
                "<p style=\"margin:0 0 8px;padding:8px 10px;font-size:18px;line-height:1.3;\
                 font-weight:bold;color:#6d3b00;background:#fdefc8;border-left:4px solid #e8a33d\">\
                 feed &quot;Radio Café&quot; failed on web-3 at 10:00</p>"
            ),
            "{html}"
        );
        assert!(html.contains("<title>feed &quot;Radio Café&quot; failed on web-3"));
        let what = html.find("What went wrong").unwrap();
        assert!(html[what..].contains(">connection timed out</p>"), "{html}");
        assert!(html[what..].contains("1 record, at 2026-11-21 10:00:03"));
        // Its record, tinted, among the three context records nearest it
        // in its run and span.
        let boxes = boxes(&html);
        let messages: Vec<&str> = boxes
            .iter()
            .map(|b| {
                let at = b.find("pre-wrap\">").unwrap() + 10;
                &b[at..at + b[at..].find('<').unwrap()]
            })
            .collect();
        assert_eq!(
            messages,
            [
                "feed 0 updated",
                "feed 1 updated",
                "feed 2 updated",
                "feed failed"
            ]
        );
        assert!(boxes[3].starts_with("#fffaf0"), "{}", boxes[3]);
        assert!(
            html.contains("3 more records (3 INFO), all in the attached log"),
            "{html}"
        );
    }

    #[test]
    fn a_record_says_its_time_level_target_message_fields_and_spans() {
        let html = html(&[feed_failed()], 0, None);
        let boxes = boxes(&html);
        assert_eq!(boxes.len(), 1);
        let b = boxes[0];
        for part in [
            "2026-11-21 10:00:03",
            ">WARN</span> poca::feed</div>",
            ">feed failed</div>",
            // Strings as text, other values as JSON.
            "feed=</span>Radio Café &ensp;",
            "attempt=</span>3 &ensp;",
            "tags=</span>[&quot;a&quot;,&quot;b&quot;]",
            // The span context, last.
            ">in run{job=&quot;nightly&quot;} &gt; fetch{feed=&quot;Radio Café&quot;}",
        ] {
            assert!(b.contains(part), "{part} missing in {b}");
        }
        assert!(b.find("feed failed").unwrap() < b.find("in run{").unwrap());
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
        .map(|l| record(l, l.as_str()))
        .collect();
        // No failure (INFO and below only): the newest records are shown.
        let quiet = html(&records[2..], 0, None);
        let boxes = boxes(&quiet);
        for (b, (level, colour)) in boxes.iter().zip([
            ("INFO", "#174ea6"),
            ("DEBUG", "#5f6368"),
            ("TRACE", "#5f6368"),
        ]) {
            assert!(
                b.contains(&format!("color:{colour};")) && b.contains(&format!(">{level}</span>")),
                "{level}: {b}"
            );
        }
        assert!(quiet.contains(">Latest records</p>"), "{quiet}");
        // With failures: ERROR first, its block and headline red.
        let html = html(&records, 0, None);
        assert!(html.contains("color:#a50e0e;background:#fce8e6"), "{html}");
        let error = html.find(">ERROR</span> ERROR</p>").unwrap();
        assert!(
            error < html.find(">WARN</span> WARN</p>").unwrap(),
            "{html}"
        );
    }

    #[test]
    fn the_strip_says_each_run_in_a_glyph_with_colour_second() {
        let mut out = String::new();
        write_strip(&mut out, &[false, true, true]);
        assert!(out.contains("last 3 runs, oldest first: "), "{out}");
        let cells: Vec<&str> = out
            .split("<span ")
            .skip(1)
            .map(|c| &c[c.find('>').unwrap() + 1..c.find("</span>").unwrap()])
            .collect();
        assert_eq!(cells, ["✓", "✗", "✗"]);
        assert!(out.contains("color:#a50e0e;background:#fce8e6\">✗</span>"));
        assert!(out.contains("color:#0d652d;background:#e6f4ea\">✓</span>"));
    }

    #[test]
    fn the_header_has_the_text_body_summary() {
        let mut records = vec![record(Level::ERROR, "a"), record(Level::WARN, "b")];
        records.extend((0..3).map(|_| record(Level::INFO, "c")));
        records[4].timestamp = datetime!(2026-11-21 12:00:04 UTC);
        let html = html(&records, 0, None);
        assert!(
            html.contains(
                "poca on web-3: 5 log records (1 ERROR, 1 WARN, 3 INFO) from 2026-11-21 \
                 10:00:03 to 2026-11-21 12:00:04, times in UTC.</p>"
            ),
            "{html}"
        );
        assert!(html.contains(">ERROR on web-3 at 10:00: a</p>"), "{html}");
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
