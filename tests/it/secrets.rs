//! The password appears nowhere: not in the state file, not in any `Debug`
//! or `Display`, not in an error, not in a record, not in a log line, even
//! with lettre's own tracing (which logs the AUTH exchange) turned on and a
//! global subscriber that would show it.

#![cfg(feature = "smtp")]

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use lettre::Transport as _;
use support::leaks::base64;
use support::setup::{PASSWORD, USER, builder, smtp_for};
use support::{Cmd, Fault, MockSmtp, Security};
use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// The password as it may travel: plain, and base64 for AUTH PLAIN / LOGIN.
fn secret_forms() -> Vec<String> {
    vec![
        PASSWORD.to_owned(),
        base64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
        base64(PASSWORD.as_bytes()),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secret_forms() {
        assert!(!text.contains(&secret), "{what} holds {secret:?}:\n{text}");
    }
}

#[test]
fn the_password_never_leaks() {
    // A global subscriber: in a process of its own, so that it sees this
    // test's threads only.
    support::child::in_own_process("the_password_never_leaks", the_password_never_leaks_here);
}

fn the_password_never_leaks_here() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let logs = Captured::default();

    let smtp = smtp_for(&server);
    assert_clean("Debug of Smtp", &format!("{smtp:?}"));
    let (layer, guard) = builder(&state, smtp)
        .threshold(1, Level::WARN)
        .build()
        .unwrap();
    assert_clean(
        "Debug of the layer and guard",
        &format!("{layer:?} {guard:?}"),
    );
    let writer = logs.clone();
    // Not `.init()`: that would also bridge the `log` records of the mock
    // server's own rustls, which are not this crate's.
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(LevelFilter::TRACE),
        )
        .with(layer.with_filter(LevelFilter::TRACE));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Without this crate's care, lettre's tracing shows the AUTH exchange:
    // this check can fail.
    let probe = lettre::Message::builder()
        .from(USER.parse().unwrap())
        .to(USER.parse().unwrap())
        .body(String::from("probe"))
        .unwrap();
    // The probe is made and logs under its own subscriber, as the program's
    // own use of lettre would: not what is checked here (with the
    // `rustls-native-certs` feature, making its TLS settings logs a DEBUG).
    let probe_logs = Captured::default();
    let writer = probe_logs.clone();
    let probe_subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(LevelFilter::TRACE),
    );
    tracing::subscriber::with_default(probe_subscriber, || {
        let raw = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
            .port(server.port())
            .tls(lettre::transport::smtp::client::Tls::Required(
                lettre::transport::smtp::client::TlsParameters::builder("127.0.0.1".into())
                    .add_root_certificate(
                        lettre::transport::smtp::client::Certificate::from_pem(
                            server.ca_pem().as_bytes(),
                        )
                        .unwrap(),
                    )
                    .build_rustls()
                    .unwrap(),
            ))
            .credentials((USER, PASSWORD).into())
            .build();
        raw.send(&probe).unwrap()
    });
    let unguarded = probe_logs.take();
    assert!(
        unguarded.contains("AUTH PLAIN"),
        "lettre's tracing is on:\n{unguarded}"
    );

    // A failed login, then a successful send, with everything at TRACE.
    server.set_fault(Fault::Reply {
        command: Cmd::Auth,
        code: 535,
        text: "5.7.8 Authentication credentials invalid".into(),
    });
    tracing::warn!(feed = "Radio Café", "feed failed");
    let failed = guard.flush();
    assert!(failed.is_failed(), "{failed}");
    let file = std::fs::read_to_string(&state).unwrap();
    assert!(file.contains("Authentication credentials invalid"));
    assert_clean("the state file", &file);
    server.clear_faults();
    tracing::error!("another");
    let sent = guard.flush();
    assert!(
        matches!(sent, tracing_email::Outcome::Sent { records: 2, .. }),
        "{sent}: {}",
        server.messages().last().unwrap().text_body().unwrap()
    );

    assert_clean("the log lines", &logs.take());
    assert_clean(
        "the outcomes",
        &format!("{sent} {sent:?} {failed} {failed:?}"),
    );
    if let tracing_email::Outcome::Failed { error, .. } = &failed {
        assert_clean("the error", &format!("{error} {error:?}"));
    }
    let file = std::fs::read_to_string(&state).unwrap();
    assert_clean("the state file", &file);
    for m in server.messages() {
        assert_clean("a digest", &m.data_lossy());
    }
}

/// Every piece of three characters or more of `password`.
fn pieces(password: &str) -> Vec<String> {
    let chars: Vec<char> = password.chars().collect();
    chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .collect()
}

fn assert_no_piece(what: &str, password: &str, text: &str) {
    for piece in pieces(password) {
        assert!(
            !text.contains(&piece),
            "{what} holds {piece:?} of the password:\n{text}"
        );
    }
}

/// An error's Display, Debug and the Display of each error in its source
/// chain.
fn error_texts(err: &tracing_email::Error) -> String {
    let mut text = format!("{err}\n{err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!("\n{s}"));
        source = s.source();
    }
    text
}

/// Passwords pasted into an SMTP URL as they are, reserved characters
/// unencoded: no `Debug`, no error and no error source holds any piece of
/// them, and the error says to percent-encode, naming the key, not the value.
#[test]
fn a_password_with_reserved_characters_never_leaks_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for password in [
        "p#ss?w/rd@x:y%z",
        "Zq/9Kx7Lm",
        "Vb?Qr8Tn",
        "Hj#Wy4Ek",
        "s3/cr#t?X",
    ] {
        for url in [
            format!("smtps://me%40example.com:{password}@smtp.example.com"),
            format!("smtp://me:{password}@mail.example.com:587?tls=required"),
        ] {
            let smtp_err = tracing_email::Smtp::from_url(&url).unwrap_err();
            assert_no_piece("Smtp::from_url's error", password, &error_texts(&smtp_err));

            // From a file.
            let text = format!(
                "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
                 smtp_url = \"{url}\"\nstate_file = {}\n",
                toml::Value::String(state.to_str().unwrap().into())
            );
            let config: tracing_email::EmailConfig = toml::from_str(&text).unwrap();
            assert_no_piece("EmailConfig's Debug", password, &format!("{config:?}"));
            assert_no_piece(
                "EmailConfig's pretty Debug",
                password,
                &format!("{config:#?}"),
            );
            let err = tracing_email::EmailLayer::from_config(&config).unwrap_err();
            let texts = error_texts(&err);
            assert_no_piece("from_config's error", password, &texts);
            assert!(texts.starts_with("smtp_url: "), "{texts}");
            assert!(texts.contains("percent-encoded"), "{texts}");
            assert!(texts.contains("# as %23, ? as %3F, / as %2F"), "{texts}");

            // From the environment: the error names the variable.
            let config = tracing_email::EmailConfig::from_vars(
                "POCA",
                [
                    ("POCA_APP", "poca".to_owned()),
                    ("POCA_FROM", "a@example.com".to_owned()),
                    ("POCA_TO", "a@example.com".to_owned()),
                    ("POCA_SMTP_URL", url.clone()),
                    ("POCA_STATE_FILE", state.to_str().unwrap().to_owned()),
                ],
            )
            .unwrap();
            assert_no_piece("EmailConfig's Debug", password, &format!("{config:?}"));
            let err = tracing_email::EmailLayer::from_config(&config).unwrap_err();
            let texts = error_texts(&err);
            assert_no_piece("from_config's error", password, &texts);
            assert!(texts.starts_with("POCA_SMTP_URL: "), "{texts}");
        }
    }
}

/// `@` and `:` unencoded in a password are read right (the last `@` ends
/// the user information), and nothing shows them.
#[test]
fn a_password_with_at_and_colon_unencoded_works_and_is_hidden() {
    let password = "Wq@Zr:Xp";
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "app = \"poca\"\nfrom = \"a@example.com\"\nto = \"a@example.com\"\n\
         smtp_url = \"smtps://me:{password}@smtp.example.com\"\nstate_file = {}\n",
        toml::Value::String(dir.path().join("s.json").to_str().unwrap().into())
    );
    let config: tracing_email::EmailConfig = toml::from_str(&text).unwrap();
    let shown = format!("{config:?}");
    assert_no_piece("EmailConfig's Debug", password, &shown);
    assert!(shown.contains("smtps://me:***@smtp.example.com"), "{shown}");
    let (layer, guard) = tracing_email::EmailLayer::from_config(&config).unwrap();
    assert_no_piece(
        "the layer and guard",
        password,
        &format!("{layer:?} {guard:?}"),
    );
}
