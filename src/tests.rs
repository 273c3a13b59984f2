//! What the unit tests share: running a test's body again in a child
//! process, to read what this crate writes on stderr (the guard's last
//! resort) without letting it through the test harness.

use std::process::{Command, Stdio};

/// Set in the child: the test runs its body, then the process exits.
const CHILD: &str = "TRACING_EMAIL_UNIT_TEST_CHILD";

/// Runs `body` in a child process, this test binary filtered to the test
/// `test_path` (`flush::flusher::tests::name`), which must call this first,
/// and returns what the child wrote on stderr; fails if the child fails.
pub(crate) fn stderr_of_own_process(test_path: &str, body: impl FnOnce()) -> String {
    if std::env::var_os(CHILD).is_some() {
        body();
        std::process::exit(0);
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_path, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("running 1 test"),
        "{test_path} in a child process: {}\n{stdout}\n{stderr}",
        output.status
    );
    stderr.into_owned()
}
