//! The subject line: a template checked once by `build()`, and filled for
//! each email from its [`Summary`]; or, without a template, a default that
//! counts errors and warnings.

use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::show_time;
use crate::digest::summary::{DAY_CLOCK, Problem, Summary};
use crate::error::Error;
use crate::say::{cut, plural};

/// What a placeholder stands for in an email.
type Value = fn(&Summary<'_>) -> String;

/// The placeholders and their values, in the order error messages list them.
const PLACEHOLDERS: [(&str, Value); 8] = [
    ("app", |s| s.app.to_owned()),
    ("host", |s| s.host.to_owned()),
    ("count", |s| s.records.len().to_string()),
    ("errors", |s| s.count(Level::ERROR).to_string()),
    ("warnings", |s| s.count(Level::WARN).to_string()),
    ("max_level", |s| {
        let max = s.records.iter().map(|r| r.level).min();
        max.map_or("", |l| l.as_str()).to_owned()
    }),
    ("first", |s| subject_time(s, s.first())),
    ("last", |s| subject_time(s, s.last())),
];

/// `2026-11-20 08:00`, or nothing for no time.
fn subject_time(summary: &Summary<'_>, t: Option<OffsetDateTime>) -> String {
    t.map_or_else(String::new, |t| show_time(t, summary.offset, DAY_CLOCK))
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [rest @ .., last] if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

/// A subject template, e.g. `[{app}@{host}] {errors} errors since {first}`:
/// checked once by `build()`, filled for each email by the same scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(String);

impl Template {
    /// Checks `template`: `{name}` is a placeholder, `{{` and `}}` are
    /// literal braces, a `}` on its own is kept as it is.
    ///
    /// An unknown placeholder or a `{` that is never closed is an error of
    /// kind `Config` that names it and lists the valid placeholders.
    pub(crate) fn parse(template: &str) -> Result<Template, Error> {
        fill(template, None)?;
        Ok(Template(template.to_owned()))
    }

    /// The subject for the email that `summary` describes.
    pub(crate) fn render(&self, summary: &Summary<'_>) -> String {
        // `parse` checked it: it fills.
        fill(&self.0, Some(summary)).unwrap_or_default()
    }
}

/// `template` with each placeholder replaced by its value for `summary`
/// (empty without one) and the double braces by one; an error for an
/// unknown placeholder or an unclosed `{`.
fn fill(template: &str, summary: Option<&Summary<'_>>) -> Result<String, Error> {
    let (mut out, mut rest) = (String::new(), template);
    let known = || and_list(&PLACEHOLDERS.map(|(name, _)| format!("{{{name}}}")));
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (brace, after) = (char::from(rest.as_bytes()[i]), &rest[i + 1..]);
        if brace == '}' || after.starts_with('{') {
            out.push(brace);
            rest = after.strip_prefix(brace).unwrap_or(after);
            continue;
        }
        let end = after
            .find(['{', '}'])
            .filter(|&end| after[end..].starts_with('}'));
        let Some(name) = end.map(|end| &after[..end]) else {
            return Err(Error::config(format!(
                "the subject {template:?} has a \"{{\" that is not closed, at {:?}; \
                 the placeholders are {}, and {{{{ is a literal brace",
                &rest[i..],
                known()
            )));
        };
        let Some((_, value)) = PLACEHOLDERS.iter().find(|(known, _)| *known == name) else {
            return Err(Error::config(format!(
                "the subject {template:?} has an unknown placeholder {{{name}}}; \
                 the placeholders are {} ({{{{ and }}}} are literal braces)",
                known()
            )));
        };
        out.push_str(&summary.map(value).unwrap_or_default());
        rest = &after[name.len() + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The subject when none was set: the most severe failure first, then
/// the counts: `[poca] could not save the episode database: disk full; 1
/// error, 4 warnings since 2026-11-20 08:00`, leaving out a count that is
/// zero, and counting the log records when there is no error or warning.
/// Failures seen run after run name themselves instead (see
/// [`persisting`]), after a more severe failure if there is one.
pub(crate) fn default_subject(summary: &Summary<'_>) -> String {
    let mut out = format!("[{}] ", summary.app);
    // Problems are sorted most severe first, then longest-running: a first
    // one that does not persist is more severe than those that do, and
    // named before them.
    let first = summary.problems.first().filter(|p| p.runs.is_none());
    if let Some(first) = first {
        out.push_str(&(lead(first) + "; "));
    }
    if persisting(summary, first, &mut out) {
        return out;
    }
    match counts(summary, &[], "") {
        none if none.is_empty() => out.push_str(&summary.record_count()),
        counted => out.push_str(&counted),
    }
    if let Some(since) = summary.first() {
        out.push_str(" since ");
        out.push_str(&show_time(since, summary.offset, DAY_CLOCK));
    }
    out
}

/// `3 errors, 1 warning`: the records that need a look but for those of
/// the failures `named` (`3 other errors, …` with `other` = `other `),
/// leaving out a count that is zero.
fn counts(summary: &Summary<'_>, named: &[&Problem], other: &str) -> String {
    let words = [(Level::ERROR, "error"), (Level::WARN, "warning")].map(|(level, word)| {
        let named = named.iter().filter(|p| p.level == level).map(|p| p.count);
        (summary.count(level).saturating_sub(named.sum()), word)
    });
    let words = words.into_iter().filter(|(n, _)| *n > 0);
    let words =
        words.map(|(n, word)| plural(n, &format!("{other}{word}"), &format!("{other}{word}s")));
    words.collect::<Vec<_>>().join(", ")
}

/// The length a default subject aims at: longer header lines get folded, and
/// mail clients show little more.
const SUBJECT_TARGET: usize = 78;
/// The fewest and the most characters a failure's label keeps in a subject.
const LABEL_MIN: usize = 24;
const LABEL_MAX: usize = 60;
/// Most persisting failures named; beyond it, two are named and the rest
/// counted (`and 3 more`).
const NAMED_MAX: usize = 3;

/// Writes the failures seen run after run (after the `first` failure, one
/// that does not persist, already named), if there are any, and returns
/// whether it did: `feed "Radio Café" failing for 5 runs; 3 other warnings`,
/// `url "…/a.json" and url "…/b.json" failing for 3 runs`, `url "…/a.json",
/// url "…/b.json" and 3 more failing for 3 to 5 runs; 1 other error`.
fn persisting(summary: &Summary<'_>, first: Option<&Problem>, out: &mut String) -> bool {
    let failing: Vec<&Problem> = summary
        .problems
        .iter()
        .filter(|p| p.runs.is_some())
        .collect();
    let runs = failing.iter().filter_map(|p| p.runs);
    let (Some(fewest), Some(most)) = (runs.clone().min(), runs.max()) else {
        return false;
    };
    let named: Vec<&Problem> = failing.iter().copied().chain(first).collect();
    let counted = counts(summary, &named, "other ");
    let runs = match fewest == most {
        true => most.to_string(),
        false => format!("{fewest} to {most}"),
    };
    let sep = if counted.is_empty() { "" } else { "; " };
    let tail = format!(" failing for {runs} runs{sep}{counted}");
    let labels: Vec<&str> = failing.iter().map(|p| p.label.as_str()).collect();
    let fixed = out.chars().count() + tail.chars().count();
    out.push_str(&name_all(&labels, fixed));
    out.push_str(&tail);
    true
}

/// `url "…/a.json", url "…/b.json" and 3 more`: the labels, at most
/// [`NAMED_MAX`] named, shortened (with `…`) to share what
/// [`SUBJECT_TARGET`] leaves after `fixed` characters; three that would be
/// cut too short become two and "and 1 more".
fn name_all(labels: &[&str], fixed: usize) -> String {
    let name = |named: usize| {
        let more = labels.len() - named;
        // ", " between names, " and " before the last one or the count.
        let items = named + usize::from(more > 0);
        let joins = if items > 1 { 2 * (items - 2) + 5 } else { 0 };
        let count = if more > 0 {
            more.to_string().len() + 5
        } else {
            0
        };
        let room = SUBJECT_TARGET.saturating_sub(fixed + joins + count);
        let mut names = shorten_all(&labels[..named], (room / named).clamp(LABEL_MIN, LABEL_MAX));
        let cut_short = names
            .iter()
            .zip(labels)
            .any(|(short, label)| short.ends_with('…') && !label.ends_with('…'));
        names.extend((more > 0).then(|| format!("{more} more")));
        (and_list(&names), cut_short)
    };
    if labels.len() > NAMED_MAX {
        return name(2).0;
    }
    match name(labels.len()) {
        (_, true) if labels.len() == NAMED_MAX => name(2).0,
        (names, _) => names,
    }
}

/// A failure as a subject names it first: its label, and its detail when
/// the label is its message (`could not save the episode database: disk
/// full`), in at most [`LABEL_MAX`] characters, control characters as
/// spaces.
fn lead(p: &Problem) -> String {
    let text = match (&p.detail, p.by_field) {
        (Some(detail), false) => format!("{}: {detail}", p.label),
        _ => p.label.clone(),
    };
    shorten(&text.replace(|c: char| c.is_control(), " "), LABEL_MAX)
}

/// Each label in at most `max` characters, keeping what tells them apart:
/// the start that they all share is left out first (`url "…/a.json"`,
/// `url "…/b.json"`), then the end is cut.
fn shorten_all(labels: &[&str], max: usize) -> Vec<String> {
    let [first, rest @ ..] = labels else {
        return Vec::new();
    };
    if rest.is_empty() {
        return vec![shorten(first, max)];
    }
    let shared = rest.iter().fold(first.len(), |n, l| {
        let same = first.char_indices().zip(l.chars());
        let same = same.take_while(|((i, a), b)| *i < n && a == b).last();
        same.map_or(0, |((i, a), _)| i + a.len_utf8())
    });
    let short = |label: &&str| {
        let name = field_name(label, max).map_or(0, str::len);
        if label.chars().count() <= max || shared <= name {
            return shorten(label, max);
        }
        // From the last `/` or space of the shared start, if any.
        let from = label[name..shared]
            .rfind(['/', ' '])
            .map_or(shared, |i| name + i);
        let elided = format!("{}…{}", &label[..name], &label[from..]);
        match elided.chars().count() <= max {
            true => elided,
            false => cut(&elided, max.max(2) - 1),
        }
    };
    labels.iter().map(short).collect()
}

/// The field's name and opening quote of a field's label (`url "` of
/// `url "https://…"`), if it is one and that part is short next to `max`.
fn field_name(label: &str, max: usize) -> Option<&str> {
    let at = label
        .find('"')
        .filter(|&at| label.ends_with('"') && at < max / 2);
    at.map(|at| &label[..=at])
}

/// `label` in at most `max` characters. A field's label (`url "https://…"`)
/// keeps its name and the end of its value, where paths and addresses
/// differ: `url "…/data/b.json"`; a message keeps its start: `disk almost
/// fu…`.
fn shorten(label: &str, max: usize) -> String {
    let len = label.chars().count();
    if len <= max {
        return label.to_owned();
    }
    let max = max.max(2);
    let Some(head) = field_name(label, max) else {
        return cut(label, max - 1);
    };
    let tail: String = label
        .chars()
        .skip(len + 1 + head.chars().count() - max)
        .collect();
    // Rather from a `/` or a space than from the middle of a word.
    let mut near_start = tail.char_indices().take_while(|(i, _)| *i < tail.len() / 2);
    let from = near_start
        .find(|(_, c)| matches!(c, '/' | ' '))
        .map_or(0, |(i, _)| i);
    format!("{head}…{}", &tail[from..])
}

/// This machine's name, for `{host}`; `localhost` if it cannot be read.
pub(crate) fn hostname() -> String {
    let name = hostname::get().map(|name| name.to_string_lossy().into_owned());
    name.ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::Record;
    use crate::digest::compose::Composer;
    use crate::digest::compose::tests::composer;
    use crate::error::ErrorKind;
    use crate::policy::tests::record_at;
    use time::UtcOffset;
    use time::macros::datetime;

    /// Records at `levels`, one minute apart from 2026-11-20 08:00 UTC.
    fn records(levels: &[Level]) -> Vec<Record> {
        levels
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let mut r = record_at(*level);
                r.timestamp = datetime!(2026-11-20 08:00 UTC) + time::Duration::minutes(i as i64);
                r
            })
            .collect()
    }

    fn render(template: &str, records: &[Record]) -> String {
        let c = Composer {
            host: "backup-01".into(),
            ..composer()
        };
        Template::parse(template)
            .unwrap()
            .render(&c.summary(records, &[]))
    }

    #[test]
    fn every_placeholder_is_filled_from_the_email() {
        use Level as L;
        let rs = records(&[L::INFO, L::WARN, L::ERROR, L::WARN, L::DEBUG]);
        assert_eq!(render("{app}", &rs), "poca");
        assert_eq!(render("{host}", &rs), "backup-01");
        assert_eq!(render("{count}", &rs), "5");
        assert_eq!(render("{errors}", &rs), "1");
        assert_eq!(render("{warnings}", &rs), "2");
        assert_eq!(render("{max_level}", &rs), "ERROR");
        assert_eq!(render("{max_level}", &rs[..2]), "WARN");
        assert_eq!(render("{first}", &rs), "2026-11-20 08:00");
        assert_eq!(render("{last}", &rs), "2026-11-20 08:04");
        assert_eq!(
            render(
                "[{app}@{host}] {errors} E / {warnings} W of {count}, {first} to {last}",
                &rs
            ),
            "[poca@backup-01] 1 E / 2 W of 5, 2026-11-20 08:00 to 2026-11-20 08:04"
        );
    }

    #[test]
    fn times_are_shown_in_the_digest_offset() {
        let rs = records(&[Level::WARN]);
        let c = Composer {
            offset: UtcOffset::from_hms(-3, -30, 0).unwrap(),
            ..composer()
        };
        let s = c.summary(&rs, &[]);
        let t = Template::parse("{first}").unwrap();
        assert_eq!(t.render(&s), "2026-11-20 04:30");
    }

    #[test]
    fn first_and_last_are_the_oldest_and_newest_whatever_the_order() {
        let mut rs = records(&[Level::WARN, Level::WARN, Level::WARN]);
        rs.swap(0, 2);
        assert_eq!(
            render("{first}..{last}", &rs),
            "2026-11-20 08:00..2026-11-20 08:02"
        );
    }

    #[test]
    fn double_braces_are_literal_and_text_is_kept_as_is() {
        let rs = records(&[Level::WARN]);
        assert_eq!(render("{{app}} is {app}", &rs), "{app} is poca");
        assert_eq!(render("{{{app}}}", &rs), "{poca}");
        assert_eq!(render("a }} b", &rs), "a } b");
        assert_eq!(render("smile :}", &rs), "smile :}");
        assert_eq!(render("POCA log — Café", &rs), "POCA log — Café");
        assert_eq!(render("", &rs), "");
        assert_eq!(Template::parse("POCA log").unwrap().0, "POCA log");
    }

    #[test]
    fn unknown_placeholders_are_named_with_the_valid_ones() {
        for (template, named) in [
            ("[{app}] {eror} errors", "{eror}"),
            ("{}", "{}"),
            ("{APP}", "{APP}"),
            ("{ app }", "{ app }"),
        ] {
            let err = Template::parse(template).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            let text = err.to_string();
            assert!(
                text.contains(&format!("unknown placeholder {named}")),
                "{text}"
            );
            assert!(
                text.contains(
                    "{app}, {host}, {count}, {errors}, {warnings}, {max_level}, {first} and {last}"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn an_unclosed_brace_is_an_error() {
        for template in ["[{app] log", "{app", "log {", "{first{last}"] {
            let err = Template::parse(template).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            let text = err.to_string();
            assert!(text.contains("not closed"), "{template}: {text}");
            assert!(text.contains("{max_level}"), "{text}");
        }
    }

    #[test]
    fn the_host_name_is_never_empty() {
        assert!(!hostname().is_empty());
    }

    #[test]
    fn default_subject_leaves_out_zero_counts() {
        use Level as L;
        let c = composer();
        let s = |levels: &[Level]| default_subject(&c.summary(&records(levels), &[]));
        assert_eq!(
            s(&[
                L::ERROR,
                L::WARN,
                L::ERROR,
                L::INFO,
                L::ERROR,
                L::WARN,
                L::WARN,
                L::WARN
            ]),
            "[poca] 3 errors, 4 warnings since 2026-11-20 08:00"
        );
        assert_eq!(
            s(&[L::INFO, L::WARN, L::WARN, L::WARN, L::WARN]),
            "[poca] 4 warnings since 2026-11-20 08:00"
        );
        assert_eq!(
            s(&[L::ERROR, L::INFO]),
            "[poca] 1 error since 2026-11-20 08:00"
        );
        assert_eq!(s(&[L::WARN]), "[poca] 1 warning since 2026-11-20 08:00");
        assert_eq!(
            s(&[L::INFO; 12]),
            "[poca] 12 log records since 2026-11-20 08:00"
        );
        assert_eq!(s(&[L::DEBUG]), "[poca] 1 log record since 2026-11-20 08:00");
    }

    /// A summary of `warnings` WARN and `errors` ERROR records in which the
    /// failures `(label, level, records, runs)` are seen run after run (their
    /// records are among those counted).
    fn persisting_subject(
        app: &str,
        failures: &[(&str, Level, usize, u64)],
        warnings: usize,
        errors: usize,
    ) -> String {
        let mut levels = vec![Level::WARN; warnings];
        levels.extend(vec![Level::ERROR; errors]);
        levels.push(Level::INFO);
        let rs = records(&levels);
        let c = Composer {
            app: app.into(),
            ..composer()
        };
        let mut s = c.summary(&rs, &[]);
        s.problems = failures
            .iter()
            .map(
                |&(label, level, count, runs)| crate::digest::summary::Problem {
                    label: label.to_owned(),
                    level,
                    count,
                    first: rs[0].timestamp,
                    runs: Some(runs),
                    recent: None,
                    since: rs[0].timestamp,
                    detail: None,
                    latest: 0,
                    by_field: true,
                },
            )
            .collect();
        let subject = default_subject(&s);
        assert!(subject.chars().count() <= 120, "too long: {subject}");
        subject
    }

    const A: &str = r#"url "https://data.example.com/nightly/a.json""#;
    const B: &str = r#"url "https://data.example.com/nightly/b.json""#;
    const C: &str = r#"url "https://data.example.com/nightly/c.json""#;
    const D: &str = r#"url "https://data.example.com/nightly/d.json""#;
    const E: &str = r#"url "https://data.example.com/nightly/e.json""#;

    #[test]
    fn one_persisting_failure_names_itself() {
        let w = Level::WARN;
        assert_eq!(
            persisting_subject("poca", &[(r#"feed "Radio Café""#, w, 5, 5)], 8, 0),
            r#"[poca] feed "Radio Café" failing for 5 runs; 3 other warnings"#
        );
        assert_eq!(
            persisting_subject("poca", &[(r#"feed "Radio Café""#, w, 1, 27)], 1, 0),
            r#"[poca] feed "Radio Café" failing for 27 runs"#
        );
        assert_eq!(
            persisting_subject("poca", &[(r#"feed "Radio Café""#, w, 2, 3)], 3, 2),
            r#"[poca] feed "Radio Café" failing for 3 runs; 2 other errors, 1 other warning"#
        );
        // A failure whose records mix levels (one ERROR, one WARN, counted at
        // ERROR) never makes a count go below zero.
        assert_eq!(
            persisting_subject(
                "poca",
                &[(r#"feed "Radio Café""#, Level::ERROR, 2, 3)],
                1,
                1
            ),
            r#"[poca] feed "Radio Café" failing for 3 runs; 1 other warning"#
        );
        // A long label keeps the field's name and the end of its value.
        assert_eq!(
            persisting_subject("nightly-fetch", &[(B, w, 1, 3)], 4, 0),
            r#"[nightly-fetch] url "…/nightly/b.json" failing for 3 runs; 3 other warnings"#
        );
    }

    #[test]
    fn two_or_three_persisting_failures_are_all_named() {
        let (w, e) = (Level::WARN, Level::ERROR);
        // The issue's case: the second failure is no longer one of "3 other
        // warnings".
        assert_eq!(
            persisting_subject("nightly-fetch", &[(A, w, 1, 3), (B, w, 1, 3)], 5, 0),
            r#"[nightly-fetch] url "…/a.json" and url "…/b.json" failing for 3 runs; 3 other warnings"#
        );
        assert_eq!(
            persisting_subject("nightly-fetch", &[(A, e, 2, 5), (B, w, 1, 3)], 1, 2),
            r#"[nightly-fetch] url "…/a.json" and url "…/b.json" failing for 3 to 5 runs"#
        );
        let abc = [(A, w, 1, 4), (B, w, 1, 4), (C, w, 1, 4)];
        assert_eq!(
            persisting_subject("nightly-fetch", &abc, 3, 0),
            r#"[nightly-fetch] url "…/a.json", url "…/b.json" and url "…/c.json" failing for 4 runs"#
        );
        assert_eq!(
            persisting_subject("nightly-fetch", &abc, 3, 1),
            r#"[nightly-fetch] url "…/a.json", url "…/b.json" and url "…/c.json" failing for 4 runs; 1 other error"#
        );
    }

    #[test]
    fn more_persisting_failures_name_two_and_count_the_rest() {
        let w = Level::WARN;
        let five = [
            (A, w, 1, 6),
            (B, w, 1, 5),
            (C, w, 1, 4),
            (D, w, 1, 3),
            (E, w, 1, 3),
        ];
        assert_eq!(
            persisting_subject("nightly-fetch", &five, 5, 0),
            r#"[nightly-fetch] url "…/a.json", url "…/b.json" and 3 more failing for 3 to 6 runs"#
        );
        assert_eq!(
            persisting_subject("nightly-fetch", &five, 9, 1),
            r#"[nightly-fetch] url "…/a.json", url "…/b.json" and 3 more failing for 3 to 6 runs; 1 other error, 4 other warnings"#
        );
    }

    #[test]
    fn three_labels_too_long_to_name_become_two_and_one_more() {
        let w = Level::WARN;
        let long =
            |host: &str| format!(r#"url "https://{host}.example.com/a/very/long/path/x.json""#);
        let (a, b, c) = (long("alpha"), long("bravo"), long("charlie"));
        let subject = persisting_subject(
            "nightly-fetch",
            &[(&a, w, 1, 3), (&b, w, 1, 3), (&c, w, 1, 3)],
            3,
            0,
        );
        assert!(
            subject.ends_with(" and 1 more failing for 3 runs"),
            "{subject}"
        );
        assert!(subject.contains(r#"url "…/alpha.example"#), "{subject}");
        assert!(subject.contains(r#"url "…/bravo.example"#), "{subject}");
    }

    #[test]
    fn labels_are_shortened_where_they_differ() {
        assert_eq!(shorten("short", 24), "short");
        // One label alone: the end of a field's value, from a `/`.
        assert_eq!(shorten(A, 24), r#"url "…/nightly/a.json""#);
        // A message: its start.
        assert_eq!(
            shorten("disk almost full on /var/lib/poca and more", 24),
            "disk almost full on /va…"
        );
        // Several: what they share at the start goes first; what differs
        // stays, even when it is not at the end.
        assert_eq!(
            shorten_all(
                &[
                    r#"url "https://a.example.com/data/latest/x.json""#,
                    r#"url "https://b.example.com/data/latest/x.json""#
                ],
                24
            ),
            [r#"url "…/a.example.com/da…"#, r#"url "…/b.example.com/da…"#]
        );
        for label in shorten_all(&[A, B, C], 24) {
            assert!(label.chars().count() <= 24, "{label}");
        }
        assert_eq!(shorten_all(&[A, B], 80), [A, B]);
    }
}
