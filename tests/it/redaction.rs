//! Nothing secret comes back through what a server or a helper says: an
//! SMTP reply that echoes the login (the password, the AUTH PLAIN or
//! XOAUTH2 blob), a password command's standard error, an Alertmanager's
//! 4xx reply that echoes the `Authorization` header across the point where
//! the quote is cut. Each is checked in the outcome's `Display` and
//! `Debug`, its error's source chain and every file beside the state file
//! (snapshot, journal); the command's tests check `tracing-email status`.

#![cfg(feature = "smtp")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use tracing::Level;
use tracing_email::{Outcome, Smtp};

use crate::support::leaks::{Secret, base64};
use crate::support::setup::{PASSWORD, USER, run};
use crate::support::{Cmd, Fault, MockSmtp, Security, refused_port};

/// The outcome's `Display` and `Debug`, and the `Display` of each error in
/// its error's source chain.
fn texts(outcome: &Outcome) -> String {
    let mut text = format!("{outcome}\n{outcome:?}");
    if let Outcome::Failed { error, .. } = outcome {
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            text.push_str(&format!("\n{s}"));
            source = s.source();
        }
    }
    text
}

/// The error's text of a failed outcome that kept `pending` records.
#[track_caller]
fn failure(outcome: &Outcome, pending: usize) -> String {
    match outcome {
        Outcome::Failed { error, pending: p } if *p == pending => error.to_string(),
        other => panic!("expected a failure keeping {pending}, got {other}"),
    }
}

/// The last error the state file keeps, as stored.
fn last_error(state: &Path) -> String {
    let snapshot = tracing_email::inspect::StateFile::open(state)
        .snapshot()
        .unwrap();
    snapshot.last_error.unwrap_or_default()
}

fn starttls_to(server: &MockSmtp) -> Smtp {
    Smtp::starttls("127.0.0.1")
        .port(server.port())
        .timeout(Duration::from_secs(5))
        .root_certificate(server.ca_pem())
}

#[test]
fn a_535_that_echoes_the_password_or_the_auth_plain_blob_shows_none_of_it() {
    let secret = Secret::login(USER, PASSWORD);
    for (i, echoed) in [0, 1, 3].map(|i| (i, secret.form(i).to_owned())) {
        let server = MockSmtp::start(Security::StartTls);
        server.require_auth(USER, PASSWORD);
        server.set_fault(Fault::Reply {
            command: Cmd::Auth,
            code: 535,
            text: format!("5.7.8 login {echoed} refused\nsee https://example.com/help"),
        });
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let smtp = starttls_to(&server).credentials(USER, PASSWORD);
        let o = run(&state, smtp, |b| b.threshold(1, Level::WARN), &["x"]);
        let text = failure(&o, 1);
        assert!(
            text.starts_with(
                "the server rejected the login (535, permanent): 5.7.8 login *** refused see \
                 https://example.com/help [127.0.0.1:"
            ),
            "form {i}: {text}"
        );
        secret.assert_absent("the outcome", &texts(&o));
        secret.assert_absent_from_files(dir.path());
        assert!(last_error(&state).contains("login *** refused"), "form {i}");
    }
}

#[test]
fn a_535_that_echoes_the_xoauth2_blob_shows_neither_blob_nor_token() {
    const TOKEN: &str = "ya29.a0AfH6SMB-token-SECRET-0123456789";
    let secret = Secret::login(USER, TOKEN);
    let server = MockSmtp::start(Security::StartTls);
    server.require_oauth2(USER, TOKEN);
    server.set_fault(Fault::Reply {
        command: Cmd::Auth,
        code: 535,
        text: format!(
            "5.7.8 {} is not valid for {TOKEN}",
            base64(format!("user={USER}\x01auth=Bearer {TOKEN}\x01\x01").as_bytes())
        ),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let smtp = starttls_to(&server).oauth2(USER, || Ok::<_, std::io::Error>(TOKEN.to_owned()));
    let o = run(&state, smtp, |b| b.threshold(1, Level::WARN), &["x"]);
    let text = failure(&o, 1);
    assert!(
        text.contains("(535, permanent): 5.7.8 *** is not valid for *** [127.0.0.1:"),
        "{text}"
    );
    secret.assert_absent("the outcome", &texts(&o));
    secret.assert_absent_from_files(dir.path());
}

#[test]
fn a_reply_that_echoes_nothing_secret_keeps_lettres_error_as_source() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    server.set_fault(Fault::Reply {
        command: Cmd::Auth,
        code: 535,
        text: "5.7.8 bad \u{1b}[31mcredentials".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let smtp = starttls_to(&server).credentials(USER, PASSWORD);
    let o = run(
        &dir.path().join("state.json"),
        smtp,
        |b| b.threshold(1, Level::WARN),
        &["x"],
    );
    let Outcome::Failed { error, .. } = &o else {
        panic!("{o}")
    };
    // Control characters are escaped in what is shown.
    assert!(
        error
            .to_string()
            .contains(r"5.7.8 bad \u{1b}[31mcredentials"),
        "{error}"
    );
    let source = std::error::Error::source(error);
    assert!(
        source.is_some_and(|s| s.is::<lettre::transport::smtp::Error>()),
        "{error:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_password_commands_stderr_is_shown_without_the_secret_escaped_and_bounded() {
    const HELPER_SECRET: &str = "S3cret-from-the-Helper";
    let secret = Secret::login(USER, HELPER_SECRET);
    let script = format!(
        "echo '{HELPER_SECRET}'; printf 'vault: {HELPER_SECRET} is sealed\\n' >&2; \
         head -c 2048 /dev/zero >&2; exit 1"
    );
    let url = format!(
        "smtp://poca%40example.com@127.0.0.1:{}?tls=required",
        refused_port()
    );
    let smtp = Smtp::from_url(&url)
        .unwrap()
        .password_command(["sh", "-c", script.as_str()]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let o = run(&state, smtp, |b| b.threshold(1, Level::WARN), &["x"]);
    let text = failure(&o, 1);
    assert!(
        text.starts_with(
            "password_command: \"sh\" failed (exit status: 1): vault: *** is sealed \\u{0}\\u{0}"
        ),
        "{text}"
    );
    assert!(text.ends_with("…; the records are kept"), "{text}");
    assert!(text.len() < 700, "{} bytes: {text}", text.len());
    assert!(!texts(&o).contains('\0'));
    secret.assert_absent("the outcome", &texts(&o));
    secret.assert_absent_from_files(dir.path());
    assert!(last_error(&state).contains("vault: *** is sealed"));
}

/// A fake Alertmanager on 127.0.0.1 that answers every post with 401 and a
/// body `reply` makes of the request's `Authorization` header; its URL.
#[cfg(feature = "alertmanager")]
fn echoing_alertmanager(reply: Echo) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut chunk = [0; 8192];
            while let Ok(n) = s.read(&mut chunk) {
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request);
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if n == 0 || request.len() >= end + 4 + length {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&request);
            let header = text
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                })
                .map_or("", |(_, v)| v.trim());
            let body = reply(header);
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[cfg(feature = "alertmanager")]
fn post_alerts(dir: &Path, am: tracing_email::Alertmanager) -> Outcome {
    use tracing_subscriber::prelude::*;
    let (layer, guard) = tracing_email::EmailLayer::builder("poca")
        .state_file(dir.join("state.json"))
        .immediately_at(Level::WARN)
        .checkpoint_interval(None)
        .alerts(am.timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!(feed = "Radio Café", "feed failed");
        guard.flush()
    })
}

/// What a fake Alertmanager answers, made of the `Authorization` header.
#[cfg(feature = "alertmanager")]
type Echo = Box<dyn Fn(&str) -> String + Send>;

/// Bodies that echo the header: short; long with the header well within
/// the 512 bytes quoted; across the 512th byte at several offsets; and
/// across the end of what is read (after blanks, which collapse into one
/// when shown, so that the end of what is read is within what is shown).
#[cfg(feature = "alertmanager")]
fn echoes() -> Vec<Echo> {
    let mut echoes: Vec<Echo> = vec![
        Box::new(|h| format!("you sent {h}")),
        Box::new(|h| format!("you sent {h}; {}", "x".repeat(600))),
    ];
    for pad in [470, 480, 492, 497, 500, 505, 509] {
        echoes.push(Box::new(move |h| {
            format!("{}{h} and more", "x".repeat(pad))
        }));
    }
    for blanks in [515, 520, 525, 530, 535, 540] {
        echoes.push(Box::new(move |h| {
            format!("no:{}{h} and more", " ".repeat(blanks))
        }));
    }
    echoes
}

#[cfg(feature = "alertmanager")]
#[test]
fn an_alertmanager_reply_that_echoes_a_bearer_token_across_the_cut_shows_none_of_it() {
    const TOKEN: &str = "TOPSECRETtokenABCDEFGHIJKLMN";
    let secret = Secret::login("", TOKEN);
    for (i, echo) in echoes().into_iter().enumerate() {
        let url = echoing_alertmanager(echo);
        let dir = tempfile::tempdir().unwrap();
        let o = post_alerts(
            dir.path(),
            tracing_email::Alertmanager::new([url]).bearer_token(TOKEN),
        );
        let text = failure(&o, 1);
        assert!(text.contains("HTTP 401, replying \""), "echo {i}: {text}");
        if i < 2 {
            assert!(text.contains("you sent Bearer ***"), "echo {i}: {text}");
        }
        secret.assert_absent(&format!("echo {i}: the outcome"), &texts(&o));
        secret.assert_absent_from_files(dir.path());
    }
}

#[cfg(feature = "alertmanager")]
#[test]
fn an_alertmanager_reply_that_echoes_basic_credentials_across_the_cut_shows_none_of_it() {
    const AM_PASSWORD: &str = "Pa55word-SECRET-42";
    let secret = Secret::login("poca", AM_PASSWORD);
    for (i, echo) in echoes().into_iter().enumerate() {
        let url = echoing_alertmanager(echo);
        let dir = tempfile::tempdir().unwrap();
        let o = post_alerts(
            dir.path(),
            tracing_email::Alertmanager::new([url]).basic_auth("poca", AM_PASSWORD),
        );
        let text = failure(&o, 1);
        assert!(text.contains("HTTP 401, replying \""), "echo {i}: {text}");
        if i < 2 {
            assert!(text.contains("you sent Basic ***"), "echo {i}: {text}");
        }
        secret.assert_absent(&format!("echo {i}: the outcome"), &texts(&o));
        secret.assert_absent_from_files(dir.path());
    }
}
