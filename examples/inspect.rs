//! Looks into a state file from code: what is pending, and what a policy
//! (here `threshold(COUNT, WARN)`) would do at a flush now. For people on
//! the server, the `tracing-email` command does this and more
//! (`cargo install --path cli` in a checkout, then `tracing-email status --app NAME`).
//!
//! ```text
//! cargo run --example inspect -- STATE_FILE [COUNT]
//! ```

use tracing::Level;
use tracing_email::{PolicyConfig, inspect::StateFile, inspect::Verdict};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: inspect STATE_FILE [COUNT]")?;
    let count = args.next().map(|c| c.parse()).transpose()?.unwrap_or(5);
    print!("{}", describe(&path, count)?);
    Ok(())
}

/// The state file's table, with what `threshold(count, WARN)` would do.
pub fn describe(path: &str, count: usize) -> Result<String, tracing_email::Error> {
    let mut policy = PolicyConfig::default();
    policy.threshold = Some((count, Level::WARN));
    let snapshot = StateFile::open(path).snapshot_with(&policy)?;
    let mut text = snapshot.to_string();
    if let Some(Verdict::Hold { .. }) = snapshot.verdict {
        let more = snapshot.still_needed(count, Level::WARN);
        text.push_str(&format!("{more} more warnings or errors to go\n"));
    }
    Ok(text)
}
