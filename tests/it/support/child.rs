//! Runs an example's code in a child process: the test binary starts itself
//! again, filtered to one test, with the example's arguments in an
//! environment variable; that test calls [`act_as_child_if_asked`] first.
//! All integration tests are one binary, so a test is named by its module
//! (the file that calls [`command`]) and its function: `crash::sigkill`.

use std::process::{Command, Output, Stdio};

const ARGS_ENV: &str = "TRACING_EMAIL_CHILD_ARGS";

/// In a child process, runs `main` with the arguments from the environment
/// and exits with its status; in the test process, returns at once.
pub fn act_as_child_if_asked(main: impl FnOnce(Vec<String>) -> u8) {
    if let Ok(args) = std::env::var(ARGS_ENV) {
        let args: Vec<String> = serde_json::from_str(&args).unwrap();
        std::process::exit(i32::from(main(args)));
    }
}

/// A command that runs the test `test_name` of this binary as a child, with
/// `args` for the example. `test_name` is the test function's name; the
/// module is the file this is called from (`tests/it/crash.rs`: `crash`).
#[track_caller]
pub fn command(test_name: &str, args: &[String]) -> Command {
    let caller = std::panic::Location::caller().file();
    let module = std::path::Path::new(caller)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_else(|| panic!("child::command called from {caller:?}"));
    let test_path = format!("{module}::{test_name}");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", &test_path, "--nocapture", "--test-threads=1"])
        .env(ARGS_ENV, serde_json::to_string(args).unwrap())
        .env_remove("SMTP_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The outcome line an example printed (`held …`, `sent …`, `nothing …`,
/// `not sent …`, `Alertmanager accepted …`).
pub fn outcome_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    // libtest may print "test NAME ... " on the same line before the output.
    stdout
        .lines()
        .find_map(|l| {
            [
                "held ",
                "sent ",
                "nothing ",
                "not sent",
                "Alertmanager accepted",
            ]
            .iter()
            .filter_map(|p| l.find(p))
            .min()
            .map(|at| l[at..].to_owned())
        })
        .unwrap_or_else(|| {
            panic!(
                "no outcome line in\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// Runs `body` in a child process of its own and fails if it fails, showing
/// its output: for a test that sets something for the whole process (a
/// global subscriber, a panic hook), which in this one binary would also see
/// the other tests running beside it, or whose code writes on stderr (the
/// guard's last resort), which a test in this process would let through.
/// Returns what the child wrote on stderr, for the test to check. Call it
/// first in the test `test_name`.
#[track_caller]
pub fn in_own_process(test_name: &str, body: impl FnOnce()) -> String {
    act_as_child_if_asked(|_| {
        body();
        0
    });
    let output = command(test_name, &[]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("running 1 test"),
        "{test_name} in a child process: {}\n{stdout}\n{stderr}",
        output.status
    );
    stderr.into_owned()
}

/// The lines this crate wrote on stderr (`tracing-email: …`), out of a
/// child's stderr.
pub fn crate_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("tracing-email: "))
        .collect()
}
