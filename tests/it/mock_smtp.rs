//! Self-test of the mock SMTP server in `tests/support`, driven by lettre
//! itself (and by a tiny raw client for what lettre never sends).

#![cfg(feature = "smtp")]

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, SmtpTransportBuilder};
use lettre::{Message, SmtpTransport, Transport};

use support::{Cmd, Dir, Fault, MockSmtp, Security, refused_port};

const SUBJECT: &str = "Café ポッドキャスト 🎧 שלום";
const WAIT: Duration = Duration::from_secs(2);

fn tls_params(server: &MockSmtp) -> TlsParameters {
    let ca = Certificate::from_pem(server.ca_pem().as_bytes()).expect("CA PEM");
    TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(ca)
        .build()
        .expect("TLS parameters")
}

/// TLS parameters that trust only the default (webpki) roots.
fn untrusting_params() -> TlsParameters {
    TlsParameters::new("127.0.0.1".into()).expect("TLS parameters")
}

/// A lettre client for `server`, one connection per message (the crate
/// enables lettre's pool, which would otherwise reuse connections).
fn mailer(server: &MockSmtp, tls: Tls) -> SmtpTransportBuilder {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .tls(tls)
        .timeout(Some(WAIT))
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(0))
}

fn message(subject: &str, body: &str) -> Message {
    Message::builder()
        .from("Alice Sender <alice@example.com>".parse().unwrap())
        .to("Bob <bob@example.com>".parse().unwrap())
        .to("carol@example.org".parse().unwrap())
        .subject(subject)
        .message_id(None)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .unwrap()
}

fn simple_message() -> Message {
    message("hello", "just a line")
}

fn send_err(transport: &SmtpTransport) -> SmtpError {
    match transport.send(&simple_message()) {
        Ok(response) => panic!("expected the send to fail, got {response:?}"),
        Err(e) => e,
    }
}

/// The transcript lines of one connection, formatted.
fn lines_of(server: &MockSmtp, conn: usize) -> Vec<String> {
    server
        .transcript_lines()
        .iter()
        .filter(|l| l.conn == conn)
        .map(ToString::to_string)
        .collect()
}

/// A bare-bones SMTP client over plain TCP, for commands lettre never sends.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(server: &MockSmtp) -> Raw {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let writer = stream.try_clone().unwrap();
        Raw {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Reads a whole (possibly multi-line) reply; lines joined with '\n'.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; got so far: {lines:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    fn expect(&mut self, line: &str, code: &str) -> String {
        let reply = self.cmd(line);
        assert!(
            reply.starts_with(code),
            "{line:?}: expected {code}, got {reply:?}"
        );
        reply
    }
}

#[test]
fn plain_send_is_recorded_with_envelope_and_decoded_content() {
    let server = MockSmtp::start(Security::Plain);
    let body = "Première ligne — 🎧\nsecond line\n";
    let response = mailer(&server, Tls::None)
        .build()
        .send(&message(SUBJECT, body))
        .expect("send");
    assert_eq!(response.code().to_string(), "250");

    // Recorded before the 250 went out: no waiting needed.
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "alice@example.com");
    assert_eq!(m.rcpt_to, ["bob@example.com", "carol@example.org"]);
    assert_eq!(m.auth_user, None);
    assert!(!m.tls);
    assert_eq!(m.subject().as_deref(), Some(SUBJECT));
    assert_eq!(m.parsed().subject(), Some(SUBJECT));
    // lettre turns LF into CRLF, and as it always ends with "\r\n.\r\n" a
    // body that already ends with a line break arrives with an extra one.
    assert_eq!(
        m.text_body().as_deref(),
        Some("Première ligne — 🎧\r\nsecond line\r\n\r\n")
    );
    // Raw header values: encoded words stay encoded, names are case-blind.
    assert!(m.header("subject").unwrap().starts_with("=?utf-8?"));
    assert_eq!(
        m.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        m.header("To").as_deref(),
        Some("Bob <bob@example.com>, carol@example.org")
    );
    let id = m.header("Message-ID").expect("Message-ID");
    assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
    assert!(m.header("Date").is_some());
    assert_eq!(m.header("X-Not-There"), None);
    assert_eq!(m.headers("Auto-Submitted"), ["auto-generated"]);

    assert_eq!(server.connections(), 1);
    let transcript = server.transcript();
    assert!(transcript.contains("#1 C: MAIL FROM:<alice@example.com>\n"));
    assert!(
        transcript.contains("#1 C: RCPT TO:<carol@example.org>"),
        "{transcript}"
    );
    assert!(transcript.contains("#1 S: 250 2.0.0 Ok: queued as MOCK1"));
    assert!(transcript.contains("#1 C: QUIT"));
    assert!(transcript.contains("#1 S: 221 2.0.0 Bye"));
    assert!(!transcript.contains("[tls]"));
    // EHLO of a plain server: no STARTTLS.
    assert!(!transcript.contains("STARTTLS"));
}

#[test]
fn dot_stuffing_is_undone() {
    let server = MockSmtp::start(Security::Plain);
    let body = ".leading dot\n.\n..two dots\nlast";
    mailer(&server, Tls::None)
        .build()
        .send(&message("dots", body))
        .expect("send");
    let m = &server.messages()[0];
    assert_eq!(
        m.text_body().as_deref(),
        Some(".leading dot\r\n.\r\n..two dots\r\nlast\r\n")
    );
    let data = m.data_lossy();
    assert!(data.ends_with("\r\n\r\n.leading dot\r\n.\r\n..two dots\r\nlast\r\n"));
    // On the wire they were stuffed.
    let transcript = server.transcript();
    assert!(transcript.contains("C: ..leading dot\n"));
    assert!(transcript.contains("C: ..\n"));
    assert!(transcript.contains("C: ...two dots\n"));
}

#[test]
fn starttls_then_auth_plain() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "s3cret");
    mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "s3cret".into()))
        .build()
        .send(&simple_message())
        .expect("send");
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("user"));

    let lines = lines_of(&server, 1);
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in {lines:#?}"))
    };
    // EHLO, STARTTLS in clear; EHLO again and AUTH under TLS.
    assert!(lines.contains(&"#1 S: 250-STARTTLS".to_owned()));
    assert!(lines.contains(&"#1 C: STARTTLS".to_owned()));
    assert!(lines.contains(&"#1 S: 220 2.0.0 Ready to start TLS".to_owned()));
    let auth = position("C: AUTH PLAIN");
    // "\0user\0s3cret" in base64.
    assert_eq!(lines[auth], "#1 [tls] C: AUTH PLAIN AHVzZXIAczNjcmV0");
    assert!(position("C: STARTTLS") < position("[tls] C: EHLO"));
    assert!(position("[tls] C: EHLO") < auth);
    assert!(!lines.iter().any(|l| l.contains("[tls] S: 250-STARTTLS")));
    // Nothing about credentials ever went in clear.
    for line in server.transcript_lines() {
        if !line.tls && line.dir == Dir::Client {
            assert!(!line.text.contains("AUTH"), "in clear: {line}");
            assert!(!line.text.contains("AHVzZXIAczNjcmV0"), "in clear: {line}");
        }
    }
}

#[test]
fn starttls_then_auth_login() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "s3cret");
    mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "s3cret".into()))
        .authentication(vec![Mechanism::Login])
        .build()
        .send(&simple_message())
        .expect("send");
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    let transcript = server.transcript();
    for expected in [
        "#1 [tls] C: AUTH LOGIN\n",
        "#1 [tls] S: 334 VXNlcm5hbWU6\n",
        "#1 [tls] C: dXNlcg==\n",
        "#1 [tls] S: 334 UGFzc3dvcmQ6\n",
        "#1 [tls] C: czNjcmV0\n",
        "#1 [tls] S: 235 2.7.0 Authentication successful\n",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected:?} in\n{transcript}"
        );
    }
}

#[test]
fn implicit_tls_with_auth() {
    let server = MockSmtp::start(Security::ImplicitTls);
    mailer(&server, Tls::Wrapper(tls_params(&server)))
        .credentials(Credentials::new("someone".into(), "pw".into()))
        .build()
        .send(&message(SUBJECT, "over TLS"))
        .expect("send");
    let m = &server.messages()[0];
    assert!(m.tls);
    // Without require_auth any credentials are accepted.
    assert_eq!(m.auth_user.as_deref(), Some("someone"));
    assert_eq!(m.subject().as_deref(), Some(SUBJECT));
    let lines = server.transcript_lines();
    assert!(lines.iter().filter(|l| l.dir != Dir::Event).all(|l| l.tls));
    let transcript = server.transcript();
    assert!(transcript.contains("#1 [tls] * TLS established"));
    assert!(transcript.contains("#1 [tls] S: 220 "));
    assert!(!transcript.contains("STARTTLS"));
}

#[test]
fn untrusted_certificate_is_rejected() {
    let server = MockSmtp::start(Security::StartTls);
    let e = send_err(
        &mailer(&server, Tls::Required(untrusting_params()))
            .credentials(Credentials::new("user".into(), "pw".into()))
            .build(),
    );
    assert_eq!(
        e.to_string(),
        "network error: invalid peer certificate: UnknownIssuer"
    );
    assert!(!e.is_tls(), "lettre files it under network errors");
    // Another server's CA is no better.
    let other = MockSmtp::start(Security::Plain);
    let e = send_err(&mailer(&server, Tls::Required(tls_params(&other))).build());
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    let implicit = MockSmtp::start(Security::ImplicitTls);
    let e = send_err(&mailer(&implicit, Tls::Wrapper(untrusting_params())).build());
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    for s in [&server, &implicit] {
        assert!(s.messages().is_empty());
        // The server hears of the failure after the client gave up: wait.
        let transcript = s.wait_for_transcript(
            "* TLS handshake failed: received fatal alert: UnknownCA",
            WAIT,
        );
        assert!(!transcript.contains("AUTH PLAIN A"), "{transcript}");
    }
}

#[test]
fn wrong_credentials_get_535_permanent() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "right");
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let e = send_err(
            &mailer(&server, Tls::Required(tls_params(&server)))
                .credentials(Credentials::new("user".into(), "wrong".into()))
                .authentication(vec![mechanism])
                .build(),
        );
        assert!(e.is_permanent(), "{e:?}");
        assert_eq!(e.status().map(|c| c.to_string()).as_deref(), Some("535"));
        assert_eq!(
            e.to_string(),
            "permanent error (535): 5.7.8 Authentication credentials invalid"
        );
    }
    assert!(server.messages().is_empty());
}

#[test]
fn mail_without_auth_gets_530() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "pw");
    let e = send_err(&mailer(&server, Tls::Required(tls_params(&server))).build());
    assert!(e.is_permanent());
    assert_eq!(
        e.to_string(),
        "permanent error (530): 5.7.0 Authentication required"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn raw_protocol_details() {
    let server = MockSmtp::start(Security::Plain);
    server.require_auth("user", "pw");
    let mut c = Raw::connect(&server);
    assert!(c.reply().starts_with("220 "));
    c.expect("MAIL FROM:<a@example.com>", "503");
    c.expect("FOO bar", "502");
    c.expect("HELO raw", "250");
    c.expect("NOOP", "250");
    c.expect("STARTTLS", "454");
    c.expect("MAIL FROM:<a@example.com>", "530");
    c.expect("RCPT TO:<b@example.com>", "503");
    c.expect("DATA", "503");
    // Mechanism names and verbs are case-blind.
    c.expect("auth xoauth2", "504");
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6");
    c.expect("*", "501");
    // AUTH LOGIN with the user name inline ("user"), then a wrong password.
    c.expect("AUTH LOGIN dXNlcg==", "334 UGFzc3dvcmQ6");
    c.expect("bm9wZQ==", "535 5.7.8 Authentication credentials invalid");
    // AUTH PLAIN in the continuation form: "\0user\0pw".
    c.expect("AUTH PLAIN", "334");
    c.expect("AHVzZXIAcHc=", "235");
    c.expect("AUTH PLAIN AHVzZXIAcHc=", "503");
    c.expect("mail from:<a@example.com> SIZE=10", "250");
    c.expect("MAIL FROM:<a@example.com>", "503");
    c.expect("RSET", "250");
    c.expect("MAIL FROM:<>", "250");
    c.expect("RCPT TO:<b@example.com>", "250");
    c.expect("RCPT TO: <c@example.com>", "250");
    c.expect("DATA", "354");
    c.send("Subject: raw\r\n\r\n..dot\r\nline\r\n.");
    c.send("\r\n");
    assert!(c.reply().starts_with("250 "));
    c.expect("QUIT", "221");
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let messages = server.wait_for_messages(1, WAIT);
    let m = &messages[0];
    assert_eq!(m.mail_from, "");
    assert_eq!(m.rcpt_to, ["b@example.com", "c@example.com"]);
    assert_eq!(m.data, b"Subject: raw\r\n\r\n.dot\r\nline\r\n");
    assert_eq!(m.auth_user.as_deref(), Some("user"));
    assert_eq!(m.subject().as_deref(), Some("raw"));
    assert!(server.transcript().contains("#1 C: AHVzZXIAcHc=\n"));
}

#[test]
fn reply_faults_fail_the_send_and_record_nothing() {
    let server = MockSmtp::start(Security::StartTls);
    server.require_auth("user", "pw");
    let transport = mailer(&server, Tls::Required(tls_params(&server)))
        .credentials(Credentials::new("user".into(), "pw".into()))
        .build();
    let cases: [(Cmd, u16, &str, &str); 10] = [
        (
            Cmd::Greeting,
            554,
            "5.3.2 not now",
            "permanent error (554): 5.3.2 not now",
        ),
        (
            Cmd::Ehlo,
            550,
            "5.7.1 go away",
            "permanent error (550): 5.7.1 go away",
        ),
        (
            Cmd::StartTls,
            454,
            "4.7.0 TLS not available",
            "transient error (454): 4.7.0 TLS not available",
        ),
        (
            Cmd::Auth,
            535,
            "5.7.8 nope",
            "permanent error (535): 5.7.8 nope",
        ),
        (
            Cmd::Mail,
            451,
            "4.3.0 try later",
            "transient error (451): 4.3.0 try later",
        ),
        (
            Cmd::Rcpt,
            550,
            "5.1.1 no such user",
            "permanent error (550): 5.1.1 no such user",
        ),
        (
            Cmd::Rcpt,
            450,
            "4.2.1 mailbox busy",
            "transient error (450): 4.2.1 mailbox busy",
        ),
        (
            Cmd::Data,
            451,
            "4.3.0 local problem",
            "transient error (451): 4.3.0 local problem",
        ),
        (
            Cmd::Data,
            554,
            "5.3.4 no data for you",
            "permanent error (554): 5.3.4 no data for you",
        ),
        // Multi-line: lettre joins the lines with a space.
        (
            Cmd::DataEnd,
            554,
            "5.7.1 looks like spam\nsee the logs",
            "permanent error (554): 5.7.1 looks like spam see the logs",
        ),
    ];
    for (i, (command, code, text, display)) in cases.into_iter().enumerate() {
        server.clear_faults();
        server.set_fault(Fault::Reply {
            command,
            code,
            text: text.to_owned(),
        });
        let e = send_err(&transport);
        assert_eq!(e.to_string(), display, "{command:?}");
        assert_eq!(e.is_permanent(), code >= 500, "{command:?} {code}");
        assert_eq!(e.is_transient(), (400..500).contains(&code), "{command:?}");
        assert_eq!(e.status().map(|c| c.to_string()), Some(code.to_string()));
        let conn = i + 1;
        let lines = lines_of(&server, conn);
        let first_line = text.split('\n').next().unwrap();
        let sep = if text.contains('\n') { '-' } else { ' ' };
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!("S: {code}{sep}{first_line}"))),
            "{lines:#?}"
        );
        // After the fault the session went on: lettre said QUIT and got 221
        // (except after a refused greeting or a failed first AUTH reply,
        // where lettre just hangs up).
        let quit = lines.iter().position(|l| l.ends_with("C: QUIT"));
        if matches!(command, Cmd::Greeting | Cmd::Auth) {
            assert_eq!(quit, None, "{lines:#?}");
        } else {
            let quit = quit.unwrap_or_else(|| panic!("no QUIT: {lines:#?}"));
            assert!(lines[quit + 1].ends_with("S: 221 2.0.0 Bye"), "{lines:#?}");
        }
    }
    assert!(server.messages().is_empty());
    server.clear_faults();
    transport
        .send(&simple_message())
        .expect("send after clear_faults");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.connections(), cases.len() + 1);
}

#[test]
fn positive_fault_codes_let_the_command_through() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Reply {
        command: Cmd::DataEnd,
        code: 250,
        text: "2.0.0 custom queue id 42".to_owned(),
    });
    let response = mailer(&server, Tls::None)
        .build()
        .send(&simple_message())
        .expect("send");
    assert_eq!(
        response.message().collect::<Vec<_>>(),
        ["2.0.0 custom queue id 42"]
    );
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn faults_can_change_between_sends() {
    let server = MockSmtp::start(Security::Plain);
    let transport = mailer(&server, Tls::None).build();
    server.set_fault(Fault::Reply {
        command: Cmd::Rcpt,
        code: 450,
        text: "4.2.1 busy".to_owned(),
    });
    assert!(send_err(&transport).is_transient());
    // Same command: replaced, not added.
    server.set_fault(Fault::Reply {
        command: Cmd::Rcpt,
        code: 550,
        text: "5.1.1 gone".to_owned(),
    });
    assert!(send_err(&transport).is_permanent());
    server.clear_faults();
    transport.send(&simple_message()).expect("send");
    server.set_fault(Fault::DropOnConnect);
    send_err(&transport);
    server.clear_faults();
    transport.send(&simple_message()).expect("send");
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.connections(), 5);
}

#[test]
fn delay_longer_than_client_timeout_times_out() {
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
    // A read timeout on Linux is EAGAIN, so lettre's is_timeout() says no.
    assert_eq!(
        e.to_string(),
        "network error: Resource temporarily unavailable (os error 11)"
    );
    assert!(!e.is_timeout());
    assert!(server.messages().is_empty());
    // The connection thread is asleep in the delay: drop must not wait it out.
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn short_delay_only_slows_down() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Delay {
        each_reply: Duration::from_millis(15),
    });
    let started = Instant::now();
    mailer(&server, Tls::None)
        .build()
        .send(&simple_message())
        .expect("send");
    // greeting, EHLO, MAIL, RCPT x2, DATA, end of data: 7 delayed replies.
    assert!(started.elapsed() >= Duration::from_millis(7 * 15));
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn drop_after_data_discards_the_message() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::DropAfterData);
    let e = send_err(&mailer(&server, Tls::None).build());
    assert_eq!(e.to_string(), "response error: incomplete response");
    assert!(server.messages().is_empty());
    let transcript = server.transcript();
    assert!(transcript.contains("#1 C: just a line\n#1 C: .\n#1 * fault DropAfterData"));

    let tls = MockSmtp::start(Security::ImplicitTls);
    tls.set_fault(Fault::DropAfterData);
    let e = send_err(&mailer(&tls, Tls::Wrapper(tls_params(&tls))).build());
    assert!(
        e.to_string()
            .starts_with("network error: peer closed connection without sending TLS close_notify"),
        "{e}"
    );
    assert!(tls.messages().is_empty());
}

#[test]
fn drop_on_connect() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::DropOnConnect);
    let e = send_err(&mailer(&server, Tls::None).build());
    assert_eq!(e.to_string(), "response error: incomplete response");
    assert_eq!(server.connections(), 1);

    let tls = MockSmtp::start(Security::ImplicitTls);
    tls.set_fault(Fault::DropOnConnect);
    let e = send_err(&mailer(&tls, Tls::Wrapper(tls_params(&tls))).build());
    assert_eq!(e.to_string(), "network error: unexpected end of file");
    assert_eq!(tls.connections(), 1);
}

#[test]
fn silent_server_times_out() {
    for security in [Security::Plain, Security::ImplicitTls] {
        let server = MockSmtp::start(security);
        server.set_fault(Fault::Silent);
        let client_tls = match security {
            Security::ImplicitTls => Tls::Wrapper(tls_params(&server)),
            _ => Tls::None,
        };
        let transport = mailer(&server, client_tls)
            .timeout(Some(Duration::from_millis(200)))
            .build();
        let started = Instant::now();
        let e = send_err(&transport);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(900),
            "{security:?}: {elapsed:?}"
        );
        assert!(e.to_string().starts_with("network error: "), "{e}");
        assert_eq!(server.connections(), 1);
        assert!(
            server
                .transcript_lines()
                .iter()
                .all(|l| l.dir != Dir::Server)
        );
    }
}

#[test]
fn refused_port_is_refused() {
    let port = refused_port();
    let e = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(WAIT))
        .build()
        .send(&simple_message())
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Connection error: Connection refused"),
        "{e}"
    );
}

#[test]
fn two_messages_on_two_connections() {
    let server = MockSmtp::start(Security::StartTls);
    let transport = mailer(&server, Tls::Required(tls_params(&server))).build();
    transport.send(&message("first", "one")).expect("first");
    transport.send(&message("second", "two")).expect("second");
    let messages = server.wait_for_messages(2, WAIT);
    let subjects: Vec<_> = messages.iter().map(|m| m.subject().unwrap()).collect();
    assert_eq!(subjects, ["first", "second"]);
    assert_eq!(server.connections(), 2);
    let transcript = server.transcript();
    assert!(transcript.contains("#1 [tls] S: 250 2.0.0 Ok: queued as MOCK1"));
    assert!(transcript.contains("#2 [tls] S: 250 2.0.0 Ok: queued as MOCK2"));
}

#[test]
fn concurrent_sends_are_all_recorded() {
    let server = MockSmtp::start(Security::Plain);
    let transport = mailer(&server, Tls::None).build();
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

#[test]
fn wait_for_messages_panics_on_timeout() {
    let server = MockSmtp::start(Security::Plain);
    let started = Instant::now();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.wait_for_messages(1, Duration::from_millis(50))
    }))
    .expect_err("should panic");
    assert!(started.elapsed() >= Duration::from_millis(50));
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("for 1 message(s) but only 0 arrived"),
        "{text}"
    );
}

#[test]
fn drop_stops_accepting_and_closes_open_connections() {
    let server = MockSmtp::start(Security::Plain);
    server.set_fault(Fault::Silent);
    let addr = server.addr();
    let mut held = TcpStream::connect(addr).unwrap();
    held.set_read_timeout(Some(WAIT)).unwrap();
    // Wait until the server has the connection.
    let deadline = Instant::now() + WAIT;
    while server.connections() == 0 {
        assert!(Instant::now() < deadline, "connection never accepted");
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_millis(500));
    // The held connection is closed (EOF, not a read timeout)...
    let mut buf = [0u8; 16];
    assert_eq!(held.read(&mut buf).unwrap(), 0);
    // ...and nobody listens any more.
    assert!(TcpStream::connect(addr).is_err());
}
