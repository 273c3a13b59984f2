//! The mock SMTP server in `support::smtp`, driven by lettre itself: it
//! records what lettre sends as lettre meant it, checks credentials, speaks
//! STARTTLS and implicit TLS with a certificate only its own clients trust,
//! and its faults fail a send the way the other tests count on.

#![cfg(feature = "smtp")]

use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig, SmtpTransportBuilder};
use lettre::{Message, SmtpTransport, Transport};

use crate::support::smtp::Dir;
use crate::support::{Cmd, Fault, MockSmtp, Security, refused_port};

const SUBJECT: &str = "Café ポッドキャスト 🎧 שלום";
const WAIT: Duration = Duration::from_secs(2);

fn tls_params(server: &MockSmtp) -> TlsParameters {
    let ca = Certificate::from_pem(server.ca_pem().as_bytes()).expect("CA PEM");
    TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(ca)
        .build()
        .expect("TLS parameters")
}

/// A lettre client for `server`, one connection per message (no pool).
fn mailer(server: &MockSmtp, tls: Tls) -> SmtpTransportBuilder {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .tls(tls)
        .timeout(Some(WAIT))
        .pool_config(PoolConfig::new().max_size(0))
}

fn message(subject: &str, body: &str) -> Message {
    Message::builder()
        .from("Alice Sender <alice@example.com>".parse().unwrap())
        .to("Bob <bob@example.com>".parse().unwrap())
        .to("carol@example.org".parse().unwrap())
        .subject(subject)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .unwrap()
}

fn send_err(transport: &SmtpTransport) -> SmtpError {
    match transport.send(&message("hello", "just a line")) {
        Ok(response) => panic!("expected the send to fail, got {response:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_plain_send_is_recorded_as_the_client_meant_it() {
    let server = MockSmtp::start(Security::Plain);
    let body = "Première ligne — 🎧\n.leading dot\n.\nlast\n";
    mailer(&server, Tls::None)
        .build()
        .send(&message(SUBJECT, body))
        .expect("send");
    // Recorded before the 250 went out: no waiting needed.
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "alice@example.com");
    assert_eq!(m.rcpt_to, ["bob@example.com", "carol@example.org"]);
    assert_eq!((m.auth_user.as_deref(), m.tls), (None, false));
    assert_eq!(m.subject().as_deref(), Some(SUBJECT));
    // Dot-stuffing undone; lettre sends CRLF and one more line end.
    assert_eq!(
        m.text_body().as_deref(),
        Some("Première ligne — 🎧\r\n.leading dot\r\n.\r\nlast\r\n\r\n")
    );
    assert_eq!(
        m.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(m.header("Subject").unwrap().starts_with("=?utf-8?"));
    assert_eq!(m.header("X-Not-There"), None);
    let transcript = server.transcript();
    assert!(transcript.contains("#1 C: ..leading dot\n"), "{transcript}");
    assert!(transcript.contains("#1 S: 250 2.0.0 Ok: queued as MOCK1\n"));
    assert!(!transcript.contains("STARTTLS") && !transcript.contains("[tls]"));
}

#[test]
fn starttls_then_auth_plain_with_the_required_credentials() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "s3cret");
    mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "s3cret".into()))
        .build()
        .send(&message("hello", "x"))
        .expect("send");
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    let lines: Vec<String> = server
        .transcript_lines()
        .iter()
        .map(ToString::to_string)
        .collect();
    // STARTTLS offered in clear only; AUTH ("\0user\0s3cret") under TLS.
    assert!(
        lines.contains(&"#1 S: 250-STARTTLS".to_owned()),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("[tls] S: 250-STARTTLS")));
    assert!(lines.contains(&"#1 [tls] C: AUTH PLAIN AHVzZXIAczNjcmV0".to_owned()));
    for line in server.transcript_lines() {
        assert!(line.tls || !line.text.contains("AUTH PLAIN A"), "{line}");
    }
}

#[test]
fn implicit_tls_from_the_first_byte_and_any_login_without_require_auth() {
    let server = MockSmtp::start(Security::ImplicitTls);
    mailer(&server, Tls::Wrapper(tls_params(&server)))
        .credentials(Credentials::new("someone".into(), "pw".into()))
        .build()
        .send(&message(SUBJECT, "over TLS"))
        .expect("send");
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("someone"));
    let lines = server.transcript_lines();
    assert!(lines.iter().filter(|l| l.dir != Dir::Event).all(|l| l.tls));
    assert!(!server.transcript().contains("STARTTLS"));
}

#[test]
fn only_a_client_given_the_servers_certificate_trusts_it() {
    let other = MockSmtp::start(Security::Plain);
    for security in [Security::StartTls, Security::ImplicitTls] {
        let server = MockSmtp::start(security);
        let tls = |params| match security {
            Security::ImplicitTls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        };
        let webpki_roots = TlsParameters::new("127.0.0.1".into()).unwrap();
        for params in [webpki_roots, tls_params(&other)] {
            let e = send_err(&mailer(&server, tls(params)).build());
            assert!(e.to_string().contains("UnknownIssuer"), "{security:?}: {e}");
        }
        assert!(server.messages().is_empty());
    }
}

#[test]
fn wrong_credentials_get_535_and_mail_without_login_530() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "right");
    let wrong = mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "wrong".into()))
        .build();
    assert_eq!(
        send_err(&wrong).to_string(),
        "permanent error (535): 5.7.8 Authentication credentials invalid"
    );
    let anonymous = mailer(&server, Tls::Required(tls_params(&server))).build();
    assert_eq!(
        send_err(&anonymous).to_string(),
        "permanent error (530): 5.7.0 Authentication required"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn reply_faults_fail_the_send_with_their_code_and_record_nothing() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "pw");
    let transport = mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "pw".into()))
        .build();
    let cases = [
        (
            Cmd::Ehlo,
            550,
            "5.7.1 go away",
            "permanent error (550): 5.7.1 go away",
        ),
        (
            Cmd::Auth,
            535,
            "5.7.8 nope",
            "permanent error (535): 5.7.8 nope",
        ),
        (
            Cmd::Rcpt,
            450,
            "4.2.1 busy",
            "transient error (450): 4.2.1 busy",
        ),
        // Same command: replaces the fault before.
        (
            Cmd::Rcpt,
            550,
            "5.1.1 gone",
            "permanent error (550): 5.1.1 gone",
        ),
        (
            Cmd::Data,
            451,
            "4.3.0 later",
            "transient error (451): 4.3.0 later",
        ),
        // Multi-line: lettre joins the lines with a space.
        (
            Cmd::DataEnd,
            554,
            "5.7.1 looks like spam\nsee the logs",
            "permanent error (554): 5.7.1 looks like spam see the logs",
        ),
    ];
    for (command, code, text, display) in cases {
        server.set_fault(Fault::Reply {
            command,
            code,
            text: text.to_owned(),
        });
        let e = send_err(&transport);
        assert_eq!(e.to_string(), display, "{command:?}");
        assert_eq!(e.status().map(|c| c.to_string()), Some(code.to_string()));
        server.clear_faults();
    }
    assert!(server.messages().is_empty());
    transport
        .send(&message("hello", "x"))
        .expect("send after clear_faults");
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn an_ehlo_reply_without_auth_takes_no_login() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Reply {
        command: Cmd::Ehlo,
        code: 250,
        text: "mock.test greets you\n8BITMIME".into(),
    });
    let with_login = mailer(&server, Tls::None)
        .credentials(Credentials::new("user".into(), "pw".into()))
        .build();
    send_err(&with_login);
    mailer(&server, Tls::None)
        .build()
        .send(&message("hello", "x"))
        .expect("send without a login");
    assert_eq!(server.messages().len(), 1);
    assert!(!server.transcript().contains("C: AUTH"));
}

#[test]
fn a_delay_beyond_the_client_timeout_times_out() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Delay {
        each_reply: Duration::from_secs(1),
    });
    let transport = mailer(&server, Tls::None)
        .timeout(Some(Duration::from_millis(200)))
        .build();
    let started = Instant::now();
    let e = send_err(&transport);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(900),
        "{elapsed:?}"
    );
    assert!(e.to_string().starts_with("network error: "), "{e}");
    assert!(server.messages().is_empty());
}

#[test]
fn drops_on_connect_and_after_data_lose_the_message() {
    for fault in [Fault::DropOnConnect, Fault::DropAfterData] {
        for security in [Security::Plain, Security::ImplicitTls] {
            let server = MockSmtp::start(security);
            server.set_fault(fault.clone());
            let tls = match security {
                Security::ImplicitTls => Tls::Wrapper(tls_params(&server)),
                _ => Tls::None,
            };
            send_err(&mailer(&server, tls).build());
            assert!(server.messages().is_empty(), "{fault:?} {security:?}");
            assert_eq!(server.connections(), 1);
        }
    }
}

#[test]
fn refused_port_is_refused() {
    let e = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(refused_port())
        .timeout(Some(WAIT))
        .build()
        .send(&message("hello", "x"))
        .unwrap_err();
    assert!(e.to_string().contains("Connection refused"), "{e}");
}

#[test]
fn concurrent_sends_are_all_recorded() {
    let server = MockSmtp::start(Security::StartTls);
    let transport = mailer(&server, Tls::Required(tls_params(&server))).build();
    std::thread::scope(|s| {
        for i in 0..4 {
            let transport = transport.clone();
            s.spawn(move || {
                transport
                    .send(&message(&format!("n{i}"), "x"))
                    .expect("send")
            });
        }
    });
    let mut subjects: Vec<_> = server
        .wait_for_messages(4, WAIT)
        .iter()
        .map(|m| m.subject().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["n0", "n1", "n2", "n3"]);
    assert_eq!(server.connections(), 4);
}
