//! The crate's lines on stderr, for what no `Outcome` carries (a state
//! file repaired while loading, records that could not be stored): each
//! behind `tracing-email: `, and a write that fails is ignored, never a panic
//! (`eprintln!` panics when stderr is a pipe nobody reads any more).

/// Writes `tracing-email: ` and the formatted line to stderr.
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
