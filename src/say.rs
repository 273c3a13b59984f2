//! The crate's words shared by every module: its lines on stderr, for what
//! no `Outcome` carries (a state file repaired while loading, records that
//! could not be stored), each behind `tracing-email: `, a write that fails
//! ignored, never a panic (`eprintln!` panics when stderr is a pipe nobody
//! reads any more); a count with its noun, `1 record`, `3 records`; and a
//! text cut at a number of characters.

macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        // Unit tests: through libtest's capture, so passing tests print nothing.
        #[cfg(test)]
        eprintln!("tracing-email: {line}");
        #[cfg(not(test))]
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr().lock(),
            format_args!("tracing-email: {line}\n"),
        );
    }};
}
pub(crate) use say;

pub(crate) fn plural<N: std::fmt::Display + PartialEq + From<u8>>(
    n: N,
    one: &str,
    many: &str,
) -> String {
    let word = if n == N::from(1) { one } else { many };
    format!("{n} {word}")
}

/// `text` in at most `max` characters, then `…` if it was cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
