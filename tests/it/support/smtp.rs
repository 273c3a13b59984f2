//! A mock SMTP server: one thread per connection on 127.0.0.1, speaking the
//! ESMTP that lettre's client sends (EHLO, STARTTLS or implicit TLS, AUTH
//! PLAIN or XOAUTH2, MAIL, RCPT, DATA, RSET, NOOP, QUIT), recording every message and
//! every line, with the faults the tests need: a reply replaced, every reply
//! delayed, the connection dropped on connect or after DATA.
//!
//! ```text
//! let server = MockSmtp::start(Security::StartTls);
//! server.require_auth("user", "secret");
//! // ... point the client at 127.0.0.1:server.port(), trusting server.ca_pem() ...
//! let msgs = server.wait_for_messages(1, Duration::from_secs(2));
//! assert_eq!(msgs[0].subject().as_deref(), Some("Hello"));
//! ```
//!
//! EHLO advertises `8BITMIME`, `SMTPUTF8`, `STARTTLS` (in StartTls mode,
//! before TLS) and `AUTH PLAIN XOAUTH2`: AUTH even before STARTTLS, so that a client
//! that would send credentials in clear does so and the transcript shows it.
//! Dropping the server stops it and shuts its open connections down.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How the server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Cleartext only; `STARTTLS` is answered 454.
    Plain,
    /// Cleartext greeting, `STARTTLS` advertised until TLS is up (port 587).
    StartTls,
    /// TLS from the first byte (port 465, lettre's `Tls::Wrapper`).
    ImplicitTls,
}

/// A command whose reply a [`Fault::Reply`] can replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Ehlo,
    /// The reply once the credentials were read.
    Auth,
    /// The reply to `MAIL FROM`, whether or not a login is required.
    Mail,
    Rcpt,
    /// The reply to `DATA` itself; 354 goes on to read the message.
    Data,
    /// The reply after the message's final dot.
    DataEnd,
}

/// Misbehaviour, switched on with [`MockSmtp::set_fault`]; it stays until
/// cleared and applies from the next connection, command or reply on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `command` with `code text` (a `\n` in `text` makes a
    /// multi-line reply). The command takes effect only if `code < 400` (a
    /// message is recorded, a login counts); the session goes on either way.
    Reply {
        command: Cmd,
        code: u16,
        text: String,
    },
    /// Sleep this long before every reply, greeting included.
    Delay { each_reply: Duration },
    /// Read the whole message after `DATA`, then close without a reply; the
    /// message is not recorded.
    DropAfterData,
    /// Accept, then close at once (before any TLS handshake).
    DropOnConnect,
}

/// One message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The address in `MAIL FROM:<...>`.
    pub mail_from: String,
    /// The addresses of `RCPT TO:<...>`, in order.
    pub rcpt_to: Vec<String>,
    /// The message with dot-stuffing undone and the final `.` line removed,
    /// each line ended with CRLF (so a body that ends with a line break
    /// arrives with one more, as at any server).
    pub data: Vec<u8>,
    /// The user of the connection's successful `AUTH`.
    pub auth_user: Option<String>,
    /// Whether the message came under TLS.
    pub tls: bool,
}

impl Received {
    /// The message parsed by mail-parser (panics if it can't be parsed).
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .unwrap_or_else(|| panic!("mock SMTP: unparsable message:\n{}", self.data_lossy()))
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_owned)
    }

    /// The first text body, decoded.
    pub fn text_body(&self) -> Option<String> {
        self.parsed().body_text(0).map(|t| t.into_owned())
    }

    /// The raw value of the top-level header `name`, trimmed, not decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.trim().to_owned())
    }

    /// The whole message as text (invalid UTF-8 replaced).
    pub fn data_lossy(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Who wrote a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The client (`C:`), message lines included.
    Client,
    /// The server (`S:`).
    Server,
    /// What the server noticed or did (`*`): TLS up, a fault, an error.
    Event,
}

/// One line of [`MockSmtp::transcript_lines`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Connection number, from 1, in accept order.
    pub conn: usize,
    /// Whether the line went over TLS.
    pub tls: bool,
    pub dir: Dir,
    /// The line without its CRLF, as sent (AUTH payloads in base64,
    /// message lines dot-stuffed).
    pub text: String,
}

impl fmt::Display for Line {
    /// `#2 [tls] C: AUTH PLAIN AHVzZXIAc2VjcmV0`, `#1 S: 220 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.tls { "[tls] " } else { "" };
        let dir = match self.dir {
            Dir::Client => "C:",
            Dir::Server => "S:",
            Dir::Event => "*",
        };
        write!(f, "#{} {tls}{dir} {}", self.conn, self.text)
    }
}

/// What the handle, the accept thread and the connection threads share.
struct Shared {
    security: Security,
    tls_config: Arc<ServerConfig>,
    stop: AtomicBool,
    connections: AtomicUsize,
    state: Mutex<State>,
    /// Clones of the open connections' sockets, to shut them down on drop.
    open: Mutex<HashMap<usize, TcpStream>>,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    transcript: Vec<Line>,
    faults: Vec<Fault>,
    credentials: Option<(String, String)>,
    /// Set by `require_oauth2`: the user and the one bearer token accepted.
    oauth2: Option<(String, String)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> MutexGuard<'_, HashMap<usize, TcpStream>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, conn: usize, tls: bool, dir: Dir, text: impl Into<String>) {
        let text = text.into();
        self.state().transcript.push(Line {
            conn,
            tls,
            dir,
            text,
        });
    }

    fn has_fault(&self, fault: &Fault) -> bool {
        self.state().faults.contains(fault)
    }

    fn reply_fault(&self, cmd: Cmd) -> Option<(u16, String)> {
        self.state().faults.iter().find_map(|f| match f {
            Fault::Reply {
                command,
                code,
                text,
            } if *command == cmd => Some((*code, text.clone())),
            _ => None,
        })
    }

    fn delay(&self) -> Option<Duration> {
        self.state().faults.iter().find_map(|f| match f {
            Fault::Delay { each_reply } => Some(*each_reply),
            _ => None,
        })
    }
}

/// A running mock SMTP server; stops when dropped.
pub struct MockSmtp {
    port: u16,
    ca_pem: String,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl MockSmtp {
    /// Listens on a free port of 127.0.0.1, with a certificate of its own
    /// (in every mode).
    pub fn start(security: Security) -> MockSmtp {
        MockSmtp::start_with(security, false)
    }

    /// As [`start`](MockSmtp::start), but its certificate is a CA's
    /// (basicConstraints CA:TRUE, as `openssl req -x509` makes by default),
    /// which TLS clients refuse as a server's own.
    pub fn start_with_ca_certificate(security: Security) -> MockSmtp {
        MockSmtp::start_with(security, true)
    }

    fn start_with(security: Security, is_ca: bool) -> MockSmtp {
        let (ca_pem, tls_config) = certificate(is_ca);
        let listener = TcpListener::bind("127.0.0.1:0").expect("mock SMTP: bind");
        listener
            .set_nonblocking(true)
            .expect("mock SMTP: nonblocking");
        let port = listener.local_addr().expect("mock SMTP: local_addr").port();
        let shared = Arc::new(Shared {
            security,
            tls_config,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            open: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::spawn(move || accept_loop(&listener, &accept_shared));
        MockSmtp {
            port,
            ca_pem,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> Security {
        self.shared.security
    }

    /// PEM of the server's certificate (for `127.0.0.1` and `localhost`),
    /// for a client to trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// From now on MAIL needs a successful AUTH first (530 otherwise), and
    /// AUTH succeeds only with these credentials (535 otherwise). Without
    /// it, AUTH is optional and any credentials are accepted.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.shared.state().credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// From now on MAIL needs a successful AUTH first (530 otherwise), and
    /// AUTH succeeds only as `AUTH XOAUTH2` for this user with this bearer
    /// token (any other token, as an expired one would be, gets 535).
    pub fn require_oauth2(&self, user: &str, token: &str) {
        self.shared.state().oauth2 = Some((user.to_owned(), token.to_owned()));
    }

    /// Adds a fault, replacing one of the same kind (for `Reply`: of the
    /// same command).
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.shared.state();
        state.faults.retain(|old| match (old, &fault) {
            (Fault::Reply { command: a, .. }, Fault::Reply { command: b, .. }) => a != b,
            _ => std::mem::discriminant(old) != std::mem::discriminant(&fault),
        });
        state.faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// Waits until at least `n` messages are there and returns them all;
    /// panics, showing the transcript, after `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "mock SMTP: {} of {n} message(s) after {timeout:?}; transcript:\n{}",
                messages.len(),
                self.transcript()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line of every connection, in order, one per line.
    pub fn transcript(&self) -> String {
        let lines: Vec<String> = self
            .transcript_lines()
            .iter()
            .map(Line::to_string)
            .collect();
        lines.join("\n")
    }

    pub fn transcript_lines(&self) -> Vec<Line> {
        self.shared.state().transcript.clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for MockSmtp {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept_thread.take() {
            let _ = accept.join();
        }
        // A connection thread ends once its socket is shut down.
        for stream in self.shared.open().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("refused_port: bind");
    listener
        .local_addr()
        .expect("refused_port: local_addr")
        .port()
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, with a name of
/// its own (so that another server's certificate is an unknown issuer), a
/// CA's if `is_ca`, and the rustls configuration that serves it.
fn certificate(is_ca: bool) -> (String, Arc<ServerConfig>) {
    static SERIAL: AtomicUsize = AtomicUsize::new(1);
    let key = rcgen::KeyPair::generate().expect("mock SMTP: key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("mock SMTP: certificate parameters");
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    let name = format!(
        "tracing-email mock SMTP {}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    );
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let cert = params.self_signed(&key).expect("mock SMTP: certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("mock SMTP: TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("mock SMTP: TLS configuration");
    (cert.pem(), Arc::new(config))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(2));
            continue;
        };
        let conn = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let registered = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.try_clone());
        match registered {
            Ok(clone) => {
                shared.open().insert(conn, clone);
                let shared = Arc::clone(shared);
                thread::spawn(move || serve(&shared, conn, stream));
            }
            Err(e) => shared.log(conn, false, Dir::Event, format!("setup failed: {e}")),
        }
    }
}

/// A connection thread.
fn serve(shared: &Arc<Shared>, conn: usize, tcp: TcpStream) {
    let mut session = Session {
        shared: Arc::clone(shared),
        conn,
        stream: Stream::Plain(tcp),
        buf: Vec::new(),
        tls: false,
        auth_user: None,
        mail_from: None,
        rcpt_to: Vec::new(),
    };
    if let Err(e) = session.run() {
        session.event(format!("connection error: {e}"));
    }
    // The clone in `open` keeps the socket open: shut it down.
    if let Some(stream) = shared.open().remove(&conn) {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

struct Session {
    shared: Arc<Shared>,
    conn: usize,
    stream: Stream,
    /// Bytes read but not yet returned as lines.
    buf: Vec<u8>,
    tls: bool,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn event(&self, text: impl Into<String>) {
        self.shared.log(self.conn, self.tls, Dir::Event, text);
    }

    fn run(&mut self) -> io::Result<()> {
        if self.shared.has_fault(&Fault::DropOnConnect) {
            self.event("fault DropOnConnect: closing");
            return Ok(());
        }
        if self.shared.security == Security::ImplicitTls {
            self.start_tls()?;
        }
        self.reply(220, "mock.smtp.test ESMTP mock ready")?;
        while let Some(line) = self.read_line()? {
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            match verb.to_ascii_uppercase().as_str() {
                "EHLO" | "HELO" => self.ehlo(arg)?,
                "STARTTLS" => self.starttls()?,
                "AUTH" => self.auth(arg)?,
                "MAIL" => self.mail(arg)?,
                "RCPT" => self.rcpt(arg)?,
                "DATA" => {
                    if !self.data()? {
                        return Ok(());
                    }
                }
                "RSET" => {
                    self.reset();
                    self.reply(250, "2.0.0 Ok")?;
                }
                "NOOP" => self.reply(250, "2.0.0 Ok")?,
                "QUIT" => {
                    self.reply(221, "2.0.0 Bye")?;
                    if let Stream::Tls(tls) = &mut self.stream {
                        tls.conn.send_close_notify();
                        tls.flush()?;
                    }
                    return Ok(());
                }
                _ => self.reply(502, "5.5.2 Command not recognized")?,
            }
        }
        self.event("client closed the connection");
        Ok(())
    }

    /// The server side of a TLS handshake on the connection's socket.
    fn start_tls(&mut self) -> io::Result<()> {
        let Stream::Plain(tcp) = &self.stream else {
            return Err(io::Error::other("TLS requested twice"));
        };
        let conn =
            ServerConnection::new(Arc::clone(&self.shared.tls_config)).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp.try_clone()?);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                self.event(format!("TLS handshake failed: {e}"));
                return Err(e);
            }
        }
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        self.buf.clear();
        self.event("TLS established");
        Ok(())
    }

    /// One line (CRLF or LF ended) without its end; `None` at end of stream.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line);
                self.shared.log(self.conn, self.tls, Dir::Client, text);
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 8192];
            let read = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk),
                Stream::Tls(s) => s.read(&mut chunk),
            };
            match read {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // rustls: the peer closed without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `code text`, one line per line of `text`, after the delay
    /// fault if one is set.
    fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        if let Some(delay) = self.shared.delay() {
            thread::sleep(delay);
        }
        let lines: Vec<&str> = text.split('\n').collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let line = format!("{code}{sep}{line}");
            self.shared
                .log(self.conn, self.tls, Dir::Server, line.as_str());
            out.push_str(&line);
            out.push_str("\r\n");
        }
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(out.as_bytes()),
            Stream::Tls(s) => s.write_all(out.as_bytes()).and_then(|()| s.flush()),
        }
    }

    /// Sends the reply a fault sets for `cmd`, if any, and returns its code.
    fn overridden(&mut self, cmd: Cmd) -> io::Result<Option<u16>> {
        let Some((code, text)) = self.shared.reply_fault(cmd) else {
            return Ok(None);
        };
        self.reply(code, &text)?;
        Ok(Some(code))
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn ehlo(&mut self, client: &str) -> io::Result<()> {
        self.reset();
        if self.overridden(Cmd::Ehlo)?.is_some() {
            return Ok(());
        }
        let mut text = format!("mock.smtp.test greets {client}\n8BITMIME\nSMTPUTF8\n");
        if self.shared.security == Security::StartTls && !self.tls {
            text.push_str("STARTTLS\n");
        }
        text.push_str("AUTH PLAIN XOAUTH2");
        self.reply(250, &text)
    }

    fn starttls(&mut self) -> io::Result<()> {
        if self.tls || self.shared.security != Security::StartTls {
            return self.reply(454, "4.7.0 TLS not available");
        }
        self.reply(220, "2.0.0 Ready to start TLS")?;
        self.start_tls()?;
        // RFC 3207: forget what was said before TLS.
        self.auth_user = None;
        self.reset();
        Ok(())
    }

    /// `AUTH PLAIN <base64 of "\0user\0password">`, or `AUTH XOAUTH2
    /// <base64 of "user=U\x01auth=Bearer T\x01\x01">`, as lettre sends them.
    fn auth(&mut self, arg: &str) -> io::Result<()> {
        if let Some(("XOAUTH2", response)) = arg.trim().split_once(' ') {
            return self.xoauth2(response);
        }
        let Some(("PLAIN", response)) = arg.trim().split_once(' ') else {
            return self.reply(504, "5.5.4 Only AUTH PLAIN or XOAUTH2 with its response");
        };
        if self.shared.state().oauth2.is_some() {
            return self.reply(535, "5.7.8 Only XOAUTH2 is accepted");
        }
        let decoded = base64_decode(response);
        let mut parts = decoded
            .split(|&b| b == 0)
            .skip(1)
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let (user, password) = (parts.next(), parts.next());
        if let Some(code) = self.overridden(Cmd::Auth)? {
            if code < 400 {
                self.auth_user = user;
            }
            return Ok(());
        }
        let expected = self.shared.state().credentials.clone();
        let accepted = match expected {
            Some((u, p)) => user.as_ref() == Some(&u) && password.as_ref() == Some(&p),
            None => user.is_some(),
        };
        if accepted {
            self.auth_user = user;
            self.reply(235, "2.7.0 Authentication successful")
        } else {
            self.reply(535, "5.7.8 Authentication credentials invalid")
        }
    }

    fn xoauth2(&mut self, response: &str) -> io::Result<()> {
        let decoded = String::from_utf8_lossy(&base64_decode(response)).into_owned();
        let mut user = None;
        let mut token = None;
        for part in decoded.split('\x01') {
            if let Some(u) = part.strip_prefix("user=") {
                user = Some(u.to_owned());
            } else if let Some(t) = part.strip_prefix("auth=Bearer ") {
                token = Some(t.to_owned());
            }
        }
        if let Some(code) = self.overridden(Cmd::Auth)? {
            if code < 400 {
                self.auth_user = user;
            }
            return Ok(());
        }
        let expected = self.shared.state().oauth2.clone();
        let accepted = match expected {
            Some((u, t)) => user.as_ref() == Some(&u) && token.as_ref() == Some(&t),
            None => user.is_some() && token.is_some(),
        };
        if accepted {
            self.auth_user = user;
            self.reply(235, "2.7.0 Authentication successful")
        } else {
            self.reply(
                535,
                "5.7.8 Username and Password not accepted (token invalid or expired)",
            )
        }
    }

    fn mail(&mut self, arg: &str) -> io::Result<()> {
        let needs_auth = {
            let state = self.shared.state();
            state.credentials.is_some() || state.oauth2.is_some()
        };
        if let Some(code) = self.overridden(Cmd::Mail)? {
            if code < 400 {
                self.mail_from = Some(address(arg));
            }
            return Ok(());
        }
        if needs_auth && self.auth_user.is_none() {
            return self.reply(530, "5.7.0 Authentication required");
        }
        self.mail_from = Some(address(arg));
        self.reply(250, "2.1.0 Ok")
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<()> {
        match self.overridden(Cmd::Rcpt)? {
            Some(code) if code >= 400 => {}
            Some(_) => self.rcpt_to.push(address(arg)),
            None => {
                self.rcpt_to.push(address(arg));
                self.reply(250, "2.1.5 Ok")?;
            }
        }
        Ok(())
    }

    /// Reads and records a message; false if the connection is to close.
    fn data(&mut self) -> io::Result<bool> {
        match self.overridden(Cmd::Data)? {
            Some(354) => {}
            Some(_) => return Ok(true),
            None => self.reply(354, "End data with <CR><LF>.<CR><LF>")?,
        }
        let mut data = Vec::new();
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(false);
            };
            if line == b"." {
                break;
            }
            data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            data.extend_from_slice(b"\r\n");
        }
        if self.shared.has_fault(&Fault::DropAfterData) {
            self.event("fault DropAfterData: closing without a reply");
            return Ok(false);
        }
        let received = Received {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            data,
            auth_user: self.auth_user.clone(),
            tls: self.tls,
        };
        // Recorded before the reply, so a send that returned Ok shows.
        let fault = self.shared.reply_fault(Cmd::DataEnd);
        if fault.as_ref().is_none_or(|(code, _)| *code < 400) {
            self.shared.state().messages.push(received);
        }
        match fault {
            Some((code, text)) => self.reply(code, &text)?,
            None => {
                let queued = self.shared.state().messages.len();
                self.reply(250, &format!("2.0.0 Ok: queued as MOCK{queued}"))?;
            }
        }
        Ok(true)
    }
}

/// `FROM:<a@b> SIZE=1` -> `a@b`.
fn address(arg: &str) -> String {
    let inner = arg
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'));
    inner.map_or_else(String::new, |(address, _)| address.to_owned())
}

/// Standard base64; stops at `=` or at anything else not base64.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&a| a == c) else {
            break;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
