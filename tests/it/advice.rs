//! Errors that send the user the right way where a real server set up in
//! the usual way made them go wrong (issue 19, case 10): a server whose
//! certificate is a CA's (what `openssl req -x509` makes), `smtps://`
//! pointed at a port that speaks plain text first, and a `530` to
//! `MAIL FROM` when no login was sent. Each from code and from a config,
//! whose keys the advice then names.

#![cfg(feature = "smtp")]

use std::path::Path;
use std::time::Duration;

use tracing::Level;
use tracing_email::{EmailConfig, EmailLayer, Outcome, Smtp};
use tracing_subscriber::prelude::*;

use crate::support::setup::run;
use crate::support::{Cmd, Fault, MockSmtp, Security};

/// The error's text of a failed outcome.
#[track_caller]
fn failure(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { error, pending: 1 } => error.to_string(),
        other => panic!("expected a failure keeping the record, got {other}"),
    }
}

/// One run with code: a warning, then the flush.
fn run_with(dir: &Path, smtp: Smtp) -> String {
    let smtp = smtp.timeout(Duration::from_secs(5));
    let o = run(
        &dir.join("state.json"),
        smtp,
        |b| b.threshold(1, Level::WARN),
        &["x"],
    );
    failure(&o)
}

/// One run with a config holding `smtp_url` (and the root certificate
/// `pem` in a file, if given).
fn run_with_config(dir: &Path, smtp_url: &str, pem: Option<&str>) -> String {
    let mut text = format!(
        "app = \"poca\"\nfrom = \"poca@example.com\"\nto = \"me@example.com\"\n\
         smtp_url = {}\nstate_file = {}\ncheckpoint_interval = false\n",
        toml::Value::String(smtp_url.into()),
        toml::Value::String(dir.join("state.json").to_str().unwrap().into()),
    );
    if let Some(pem) = pem {
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        text.push_str(&format!(
            "root_certificate = {}\n",
            toml::Value::String(path.to_str().unwrap().into())
        ));
    }
    text.push_str("[policy]\nthreshold = { count = 1, level = \"warn\" }\n");
    let config: EmailConfig = toml::from_str(&text).unwrap();
    let (layer, guard) = EmailLayer::from_config(&config).unwrap();
    let o = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("x");
        guard.flush()
    });
    failure(&o)
}

#[test]
fn a_server_certificate_that_is_a_ca_is_named_so_with_how_to_make_a_leaf() {
    let server = MockSmtp::start_with_ca_certificate(Security::StartTls);
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let smtp = Smtp::starttls("127.0.0.1")
        .port(server.port())
        .root_certificate(server.ca_pem());
    let url = format!("smtp://127.0.0.1:{}?tls=required", server.port());
    for text in [
        run_with(dir.path(), smtp),
        run_with_config(other.path(), &url, Some(&server.ca_pem())),
    ] {
        assert!(
            text.contains(
                "failed: the server's certificate is itself a CA certificate \
                 (basicConstraints CA:TRUE"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=IP:127.0.0.1`"
            ),
            "{text}"
        );
        // Not the advice the user had already followed.
        assert!(
            !text.contains("root_certificate") && !text.contains("private CA"),
            "{text}"
        );
    }
    assert!(server.messages().is_empty());
}

#[test]
fn implicit_tls_to_a_port_that_speaks_plain_text_first_says_to_use_starttls() {
    let server = MockSmtp::start(Security::StartTls);
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let text = run_with(dir.path(), Smtp::tls("127.0.0.1").port(port));
    assert!(
        text.starts_with(&format!(
            "the mail server at 127.0.0.1:{port} (implicit TLS) answered in plain text, not TLS: \
             this port speaks plain text first (STARTTLS, as on ports 587 and 25); use \
             Smtp::starttls(\"127.0.0.1\").port({port})"
        )),
        "{text}"
    );
    let other = tempfile::tempdir().unwrap();
    let text = run_with_config(other.path(), &format!("smtps://127.0.0.1:{port}"), None);
    assert!(
        text.contains(&format!(
            "this port speaks plain text first (STARTTLS, as on ports 587 and 25); set smtp_url \
             to smtp://127.0.0.1:{port}?tls=required (STARTTLS)"
        )),
        "{text}"
    );
}

#[test]
fn a_530_at_mail_from_without_a_login_asks_for_tls_and_is_no_rejected_login() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Reply {
        command: Cmd::Mail,
        code: 530,
        text: "5.7.0 Must issue a STARTTLS command first".into(),
    });
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let text = run_with(dir.path(), Smtp::plain("127.0.0.1").port(port));
    assert!(
        text.starts_with(&format!(
            "the server requires TLS before it accepts mail (530, permanent): 5.7.0 Must issue \
             a STARTTLS command first [127.0.0.1:{port} (no TLS)]; no login was sent, so none \
             was rejected: use Smtp::starttls(\"127.0.0.1\").port({port}) so that the \
             connection is encrypted with STARTTLS first"
        )),
        "{text}"
    );
    let other = tempfile::tempdir().unwrap();
    let text = run_with_config(other.path(), &format!("smtp://127.0.0.1:{port}"), None);
    assert!(
        text.contains(&format!(
            "none was rejected: set smtp_url to smtp://127.0.0.1:{port}?tls=required so that"
        )),
        "{text}"
    );
    assert!(!text.contains("login was rejected") && !text.contains("rejected the login"));
    assert!(
        !server
            .transcript_lines()
            .iter()
            .any(|l| l.text.starts_with("AUTH")),
        "{}",
        server.transcript()
    );
}

#[test]
fn a_530_over_tls_without_a_login_asks_for_one() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("poca@example.com", "pw");
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::starttls("127.0.0.1")
        .port(server.port())
        .root_certificate(server.ca_pem());
    let text = run_with(dir.path(), smtp);
    assert!(
        text.starts_with(
            "the server requires a login before it accepts mail (530, permanent): 5.7.0 \
             Authentication required"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("none is set: use .credentials(user, password)"),
        "{text}"
    );
}
