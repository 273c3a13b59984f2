//! Mail logins whose secret is fetched when a send needs it: XOAUTH2 with a
//! token from a closure or a command, and a password from a command, each
//! against the mock server, which checks the token. The commands are small
//! `sh` scripts written into a temporary folder (Unix only).

#![cfg(feature = "smtp")]

use crate::support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::setup::{USER, builder, pending_in};
use support::{MockSmtp, Security};
use tracing::Level;
use tracing_email::{EmailConfig, EmailLayer, Outcome, Smtp};
use tracing_subscriber::prelude::*;

const TOKEN: &str = "ya29.good-token-7f3a";
const EXPIRED: &str = "ya29.expired-token-c01d";

/// A STARTTLS client for `server` that logs in with XOAUTH2 as [`USER`]
/// with what `token` returns.
fn oauth2_smtp(
    server: &MockSmtp,
    token: impl Fn() -> Result<String, String> + Send + Sync + 'static,
) -> Smtp {
    Smtp::starttls("127.0.0.1")
        .port(server.port())
        .timeout(Duration::from_millis(1500))
        .root_certificate(server.ca_pem())
        .oauth2(USER, token)
}

/// One run: a warning about `message`, then a flush.
fn run_once(state: &Path, smtp: Smtp, message: &str) -> Outcome {
    let (layer, guard) = builder(state, smtp)
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "{message}");
        guard.flush()
    })
}

fn error_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { error, .. } => error.to_string(),
        other => panic!("not failed: {other}"),
    }
}

#[test]
fn xoauth2_with_a_token_from_a_closure_is_accepted_and_fetched_at_send_not_at_build() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_oauth2(USER, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let smtp = oauth2_smtp(&server, move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(TOKEN.to_owned())
    });
    let (layer, guard) = builder(&dir.path().join("state.json"), smtp)
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0, "fetched at build()");
    let outcome =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(feed = "Radio Café", "feed failed");
            guard.flush()
        });
    assert!(outcome.is_sent(), "{outcome}\n{}", server.transcript());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let messages = server.messages();
    assert_eq!(messages[0].auth_user.as_deref(), Some(USER));
    assert!(
        server.transcript().contains("C: AUTH XOAUTH2 "),
        "{}",
        server.transcript()
    );
}

#[test]
fn an_expired_token_fails_with_535_keeps_the_records_and_a_good_one_sends_them_next_run() {
    let server = MockSmtp::start(Security::ImplicitTls);
    server.require_oauth2(USER, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let current = Arc::new(Mutex::new(EXPIRED.to_owned()));
    let smtp = |server: &MockSmtp| {
        let token = Arc::clone(&current);
        Smtp::tls("127.0.0.1")
            .port(server.port())
            .timeout(Duration::from_millis(1500))
            .root_certificate(server.ca_pem())
            .oauth2(USER, move || Ok::<_, String>(token.lock().unwrap().clone()))
    };

    let failed = run_once(&state, smtp(&server), "feed failed at 01:00");
    let error = error_of(&failed);
    assert!(
        error.contains("the server rejected the login (535"),
        "{error}"
    );
    assert!(
        matches!(failed, Outcome::Failed { pending: 1, .. }),
        "{failed}"
    );
    assert_eq!(pending_in(&state).len(), 1);
    assert!(server.messages().is_empty());

    *current.lock().unwrap() = TOKEN.to_owned();
    let sent = run_once(&state, smtp(&server), "feed failed at 02:00");
    assert!(matches!(sent, Outcome::Sent { records: 2, .. }), "{sent}");
    let body = server.messages()[0].text_body().unwrap();
    assert!(body.contains("01:00") && body.contains("02:00"), "{body}");
}

#[test]
fn a_closure_that_fails_or_returns_nothing_fails_the_send_and_keeps_the_records() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_oauth2(USER, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let outcome = run_once(
        &state,
        oauth2_smtp(&server, || Err("the refresh token was revoked".to_owned())),
        "one",
    );
    let error = error_of(&outcome);
    assert!(
        error.contains("the OAuth2 token could not be fetched: the refresh token was revoked"),
        "{error}"
    );
    let outcome = run_once(&state, oauth2_smtp(&server, || Ok(String::new())), "two");
    assert!(error_of(&outcome).contains("returned ''"), "{outcome}");
    assert_eq!(pending_in(&state).len(), 2);
    assert_eq!(server.connections(), 0, "connected without a token");
}

#[test]
fn build_refuses_what_it_can_check() {
    let cases: [(&str, Smtp, &str); 4] = [
        (
            "empty command",
            Smtp::from_url("smtps://me@h")
                .unwrap()
                .password_command(Vec::<String>::new()),
            "password_command is empty; give the program that prints the SMTP password",
        ),
        (
            "password and command",
            Smtp::tls("h")
                .credentials("me", "pw")
                .oauth2_token_command(["helper"]),
            "both a password and oauth2_token_command are set; keep one",
        ),
        (
            "no user",
            Smtp::tls("h").password_command(["pass", "show", "smtp"]),
            "password_command is set but no user name",
        ),
        (
            "command over plain text",
            Smtp::from_url("smtp://me@h")
                .unwrap()
                .password_command(["pass"]),
            "refusing to send the SMTP password",
        ),
    ];
    for (what, smtp, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let err = builder(&dir.path().join("s.json"), smtp)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
}

#[test]
fn config_keys_are_lists_and_mistakes_name_the_key() {
    let parse = |extra: &str| {
        toml::from_str::<EmailConfig>(&format!(
            "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
             smtp_url = \"smtps://me%40example.com@smtp.example.com\"\n{extra}"
        ))
    };
    let ok = parse("oauth2_token_command = [\"oauth2-helper\", \"--account\", \"poca\"]").unwrap();
    assert_eq!(
        ok.oauth2_token_command.as_deref(),
        Some(
            &[
                "oauth2-helper".to_owned(),
                "--account".into(),
                "poca".into()
            ][..]
        )
    );
    for (bad, expected) in [
        (
            "password_command = \"pass show smtp\"",
            "invalid type: string \"pass show smtp\", expected a list of strings, the program \
             then its arguments",
        ),
        ("password_command = []", "invalid value"),
        ("password_command = [\"pass\", 3]", "for `password_command`"),
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(expected), "{bad}: {err}");
    }

    // Two sources of one secret, or a command and no user name.
    let mut two =
        parse("password_command = [\"pass\", \"show\", \"smtp\"]\npassword_env = \"P\"").unwrap();
    two.set_table("email");
    let err = EmailLayer::from_config(&two).unwrap_err().to_string();
    assert!(
        err.contains("given more than once (email.password_env, email.password_command)"),
        "{err}"
    );
    let mut no_user = parse("oauth2_token_command = [\"helper\"]").unwrap();
    no_user.smtp_url = Some("smtps://smtp.example.com".into());
    let err = EmailLayer::from_config(&no_user).unwrap_err().to_string();
    assert!(
        err.starts_with("oauth2_token_command is set but smtp_url has no user name"),
        "{err}"
    );
    let mut outbox = parse("password_command = [\"pass\"]").unwrap();
    outbox.smtp_url = None;
    outbox.outbox = Some("out".into());
    let err = EmailLayer::from_config(&outbox).unwrap_err().to_string();
    assert!(
        err.contains("password_command is set but smtp_url is not"),
        "{err}"
    );

    // From the environment: words, or a JSON list when a word has a space.
    let vars = |value: &str| {
        EmailConfig::from_vars(
            "POCA",
            [
                ("POCA_APP", "poca"),
                ("POCA_PASSWORD_COMMAND", value),
                ("POCA_OAUTH2_TOKEN_COMMAND", "oauth2-helper  --account poca"),
            ],
        )
    };
    let c = vars("secret-tool lookup service smtp").unwrap();
    assert_eq!(
        c.password_command.unwrap(),
        ["secret-tool", "lookup", "service", "smtp"]
    );
    assert_eq!(
        c.oauth2_token_command.unwrap(),
        ["oauth2-helper", "--account", "poca"]
    );
    let c = vars(r#"["secret-tool", "lookup", "service", "my smtp"]"#).unwrap();
    assert_eq!(
        c.password_command.unwrap(),
        ["secret-tool", "lookup", "service", "my smtp"]
    );
    // (An empty variable is as if it were not set.)
    for bad in ["  ", "[\"unclosed", "[]", "[\"pass\", 3]"] {
        let err = vars(bad).unwrap_err().to_string();
        assert!(err.starts_with("POCA_PASSWORD_COMMAND"), "{bad:?}: {err}");
        assert!(err.contains("separated by spaces"), "{bad:?}: {err}");
    }
}

#[cfg(unix)]
mod commands {
    use super::*;

    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::time::Instant;

    use support::setup::PASSWORD;

    /// Writes an executable `sh` script named `name` into `dir`. The tests
    /// run it as `sh <path>`: a script executed while another test thread
    /// forks may fail with "Text file busy" (the writing descriptor lives on
    /// in the fork until its exec).
    pub(super) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A config (from a TOML table `[email]`) for `server` (STARTTLS, user
    /// [`USER`]) with `extra` lines, its CA in `dir`.
    pub(super) fn config(server: &MockSmtp, dir: &Path, extra: &str) -> EmailConfig {
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, server.ca_pem()).unwrap();
        let text = format!(
            "app = \"poca\"\nfrom = \"poca@example.com\"\nto = \"me@example.com\"\n\
             smtp_url = \"smtp://poca%40example.com@127.0.0.1:{}?tls=required\"\n\
             root_certificate = {}\nstate_file = {}\n\
             [policy]\nthreshold = {{ count = 1, level = \"warn\" }}\n",
            server.port(),
            toml::Value::String(ca.to_str().unwrap().into()),
            toml::Value::String(dir.join("state.json").to_str().unwrap().into()),
        );
        // The extra keys go before the `[policy]` table.
        let (head, policy) = text.split_once("[policy]").unwrap();
        let mut config: EmailConfig =
            toml::from_str(&format!("{head}{extra}\n[policy]{policy}")).unwrap();
        config.set_table("email");
        config
    }

    /// One run of a program with `config`: a warning, then a flush.
    pub(super) fn run(config: &EmailConfig, message: &str) -> Outcome {
        let (layer, guard) = EmailLayer::from_config(config).unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::warn!(feed = "Radio Café", "{message}");
            guard.flush()
        })
    }

    #[test]
    fn a_password_from_a_command_logs_in() {
        let server = MockSmtp::start(Security::StartTls);
        server.require_auth(USER, PASSWORD);
        let dir = tempfile::tempdir().unwrap();
        // `pass show` prints the password, then notes on other lines.
        let helper = script(
            dir.path(),
            "pass",
            &format!(
                "[ \"$1 $2\" = \"show smtp\" ] || exit 9\nprintf '%s\\nlogin: poca\\n' '{PASSWORD}'"
            ),
        );
        let config = config(
            &server,
            dir.path(),
            &format!(
                "password_command = [\"sh\", {:?}, \"show\", \"smtp\"]",
                helper.to_str().unwrap()
            ),
        );
        let outcome = run(&config, "feed failed");
        assert!(outcome.is_sent(), "{outcome}\n{}", server.transcript());
        assert_eq!(server.messages()[0].auth_user.as_deref(), Some(USER));
    }

    #[test]
    fn an_oauth2_token_from_a_command_given_in_the_environment_logs_in() {
        let server = MockSmtp::start(Security::StartTls);
        server.require_oauth2(USER, TOKEN);
        let dir = tempfile::tempdir().unwrap();
        let helper = script(
            dir.path(),
            "oauth2 helper",
            &format!(
                "[ \"$1\" = --account ] && [ \"$2\" = poca ] || {{ echo \"bad arguments: $*\" >&2; exit 2; }}\necho {TOKEN}"
            ),
        );
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, server.ca_pem()).unwrap();
        let command =
            serde_json::to_string(&["sh", helper.to_str().unwrap(), "--account", "poca"]).unwrap();
        let url = format!(
            "smtp://poca%40example.com@127.0.0.1:{}?tls=required",
            server.port()
        );
        let state = dir.path().join("state.json");
        let config = EmailConfig::from_vars(
            "POCA",
            [
                ("POCA_APP", "poca"),
                ("POCA_FROM", "poca@example.com"),
                ("POCA_TO", "me@example.com"),
                ("POCA_SMTP_URL", &url),
                ("POCA_ROOT_CERTIFICATE", ca.to_str().unwrap()),
                ("POCA_STATE_FILE", state.to_str().unwrap()),
                ("POCA_OAUTH2_TOKEN_COMMAND", &command),
            ],
        )
        .unwrap();
        let outcome = run(&config, "feed failed");
        assert!(outcome.is_sent(), "{outcome}\n{}", server.transcript());
        assert!(server.transcript().contains("C: AUTH XOAUTH2 "));
    }

    #[test]
    fn a_command_that_fails_or_prints_nothing_fails_the_send_naming_the_key() {
        let server = MockSmtp::start(Security::StartTls);
        server.require_auth(USER, PASSWORD);
        let dir = tempfile::tempdir().unwrap();
        let failing = script(
            dir.path(),
            "failing",
            "echo 'gpg: decryption failed: No secret key' >&2\nexit 2",
        );
        let silent = script(dir.path(), "silent", "exit 0");
        for (helper, expected) in [
            (
                &failing,
                "email.password_command: \"sh\" failed (exit status: 2): gpg: decryption \
                 failed: No secret key",
            ),
            (
                &silent,
                "email.password_command: \"sh\" printed nothing on its standard output; it \
                 must print the SMTP password",
            ),
        ] {
            let config = config(
                &server,
                dir.path(),
                &format!(
                    "password_command = [\"sh\", {:?}]",
                    helper.to_str().unwrap()
                ),
            );
            let outcome = run(&config, "feed failed");
            let error = error_of(&outcome);
            assert!(error.contains(expected), "{error}\nnot: {expected}");
        }
        // Both runs' records are kept.
        assert_eq!(pending_in(&dir.path().join("state.json")).len(), 2);
        assert_eq!(server.connections(), 0);
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_the_timeout_and_the_flush_ends_in_time() {
        let server = MockSmtp::start(Security::StartTls);
        server.require_auth(USER, PASSWORD);
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let hanging = script(
            dir.path(),
            "hanging",
            &format!("echo $$ > '{}'\nsleep 30\necho too-late", pid.display()),
        );
        let key = format!(
            "password_command = [\"sh\", {:?}]",
            hanging.to_str().unwrap()
        );

        // Killed at the SMTP timeout (1 s), well before the send deadline.
        let timely = config(
            &server,
            dir.path(),
            &format!("{key}\ntimeout = 1\nsend_deadline = 10"),
        );
        let started = Instant::now();
        let outcome = run(&timely, "one");
        let took = started.elapsed();
        let error = error_of(&outcome);
        assert!(
            error.contains("did not finish within 1s (the SMTP timeout), so it was stopped"),
            "{error}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        let pid = std::fs::read_to_string(&pid).unwrap();
        let alive = std::process::Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "the command still runs");

        // A send deadline shorter than the SMTP timeout still ends the flush:
        // the timeout is cut to the deadline, so the command is stopped when
        // the deadline passes (whichever of the two says so first).
        let late = config(
            &server,
            dir.path(),
            &format!("{key}\ntimeout = 20\nsend_deadline = 1"),
        );
        let started = Instant::now();
        let outcome = run(&late, "two");
        let took = started.elapsed();
        let error = error_of(&outcome);
        assert!(
            error.contains("send deadline") || error.contains("did not finish within 1s"),
            "{outcome}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(pending_in(&dir.path().join("state.json")).len(), 2);
    }
}

/// The token and the password fetched by commands appear nowhere: not in a
/// `Debug`, an error, the state file, a digest or a log line, with lettre's
/// tracing on and a global subscriber at TRACE (in a process of its own).
#[cfg(unix)]
#[test]
fn fetched_secrets_never_leak() {
    support::child::in_own_process(
        "fetched_secrets_never_leak",
        fetched_secrets_never_leak_here,
    );
}

#[cfg(unix)]
fn fetched_secrets_never_leak_here() {
    use std::io::Write;
    use support::setup::PASSWORD;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut texts = Vec::new();
    // A token the server refuses (535), then one it takes; then a password.
    let oauth2 = MockSmtp::start(Security::StartTls);
    oauth2.require_oauth2(USER, TOKEN);
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, EXPIRED).unwrap();
    let helper = commands::script(
        dir.path(),
        "oauth2-helper",
        &format!("cat '{}'", token_file.display()),
    );
    let config = commands::config(
        &oauth2,
        dir.path(),
        &format!(
            "oauth2_token_command = [\"sh\", {:?}]",
            helper.to_str().unwrap()
        ),
    );
    texts.push(format!("{config:?}"));
    let failed = commands::run(&config, "one");
    assert!(error_of(&failed).contains("535"), "{failed}");
    std::fs::write(&token_file, TOKEN).unwrap();
    let sent = commands::run(&config, "two");
    assert!(sent.is_sent(), "{sent}");
    texts.push(format!("{failed} {failed:?} {sent} {sent:?}"));
    texts.push(std::fs::read_to_string(dir.path().join("state.json")).unwrap());
    let (layer, guard) = EmailLayer::from_config(&config).unwrap();
    texts.push(format!("{layer:?} {guard:?}"));
    drop(guard);

    let password = MockSmtp::start(Security::StartTls);
    password.require_auth(USER, PASSWORD);
    let dir2 = tempfile::tempdir().unwrap();
    let helper = commands::script(dir2.path(), "pw", &format!("echo '{PASSWORD}'"));
    let config = commands::config(
        &password,
        dir2.path(),
        &format!(
            "password_command = [\"sh\", {:?}]",
            helper.to_str().unwrap()
        ),
    );
    let sent = commands::run(&config, "three");
    assert!(sent.is_sent(), "{sent}");
    texts.push(format!("{config:?} {sent:?}"));
    texts.push(std::fs::read_to_string(dir2.path().join("state.json")).unwrap());

    // A closure whose HTTP client logs the token endpoint's answer at TRACE,
    // as some do: the fetch runs where no subscriber sees it.
    let smtp = oauth2_smtp(&oauth2, || {
        tracing::trace!(body = %TOKEN, "token endpoint answered");
        Ok(TOKEN.to_owned())
    });
    let dir3 = tempfile::tempdir().unwrap();
    let sent = run_once(&dir3.path().join("state.json"), smtp, "four");
    assert!(sent.is_sent(), "{sent}");
    texts.push(std::fs::read_to_string(dir3.path().join("state.json")).unwrap());

    for m in oauth2.messages().iter().chain(&password.messages()) {
        texts.push(m.data_lossy());
    }
    texts.push(String::from_utf8(lines.0.lock().unwrap().clone()).unwrap());

    let all = texts.join("\n");
    for secret in [TOKEN, EXPIRED, PASSWORD] {
        // The secret, and the middle of it as any base64 of it would not
        // hold it, so look for the plain text only: the AUTH lines are in
        // the server's transcript, never in these texts.
        assert!(!all.contains(secret), "{secret:?} leaked:\n{all}");
    }
    assert!(
        !all.contains("AUTH XOAUTH2") && !all.contains("AUTH PLAIN"),
        "{all}"
    );
}
