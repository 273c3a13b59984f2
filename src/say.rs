//! The crate's lines on stderr, for what no `Outcome` carries (a state
//! file repaired while loading, records that could not be stored): each
//! behind `tracing-email: `, and a write that fails is ignored, never a panic
//! (`eprintln!` panics when stderr is a pipe nobody reads any more).

/// Writes `tracing-email: ` and the formatted line to stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr().lock(), "tracing-email: {line}");
    }};
}
pub(crate) use say;
