//! The `quickstart` example, run as a child process with its output into
//! pipes: it holds the first run and shows the log without colour codes.

#![cfg(feature = "smtp")]

use crate::support;

#[allow(dead_code)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

use support::child::{act_as_child_if_asked, command, outcome_line};

#[test]
fn quickstart_into_a_pipe_holds_and_prints_no_colour_codes() {
    act_as_child_if_asked(|args| match quickstart::run(args[0].as_ref()) {
        Ok(()) => 0,
        Err(_) => 1,
    });
    let dir = tempfile::tempdir().unwrap();
    let output = command(
        "quickstart_into_a_pipe_holds_and_prints_no_colour_codes",
        &[dir.path().to_str().unwrap().to_owned()],
    )
    .env_remove("SMTP_URL")
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        outcome_line(&output),
        "held 5 records for a later run: 2 of the 5 warnings or errors needed"
    );
    assert!(
        stdout.contains(" WARN nightly{job=\"podcasts\"}:fetch{feed=\"Ääniraita\"}: "),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "colour codes in a pipe: {stdout:?}"
    );
}
