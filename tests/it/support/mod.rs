//! A mock SMTP server for the integration tests: std::net + one thread per
//! connection, listening on 127.0.0.1 only, speaking just enough ESMTP for
//! lettre's blocking `SmtpTransport` (plain, STARTTLS or implicit TLS, AUTH
//! PLAIN/LOGIN), recording every message and every line of every session, with
//! faults that can be switched on and off between sends.
//!
//! ```text
//! let server = MockSmtp::start(Security::StartTls);
//! server.require_auth("user", "secret");
//! // ... point lettre at 127.0.0.1:server.port(), trusting server.ca_pem() ...
//! let msgs = server.wait_for_messages(1, Duration::from_secs(2));
//! assert_eq!(msgs[0].subject().as_deref(), Some("Hello"));
//! ```
//!
//! EHLO advertises `8BITMIME`, `SMTPUTF8`, `STARTTLS` (StartTls mode, before
//! TLS only) and `AUTH PLAIN LOGIN` -- AUTH even before STARTTLS, so that a
//! client that would send credentials in clear does so and the transcript
//! shows it. No PIPELINING, SIZE or DSN.
//!
//! Dropping the `MockSmtp` stops the accept thread, shuts down every open
//! connection and joins their threads (waiting at most a couple of seconds).
#![allow(dead_code)]

mod certs;
pub mod child;
pub mod recorder;
mod session;
#[cfg(feature = "smtp")]
pub mod setup;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How the server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Cleartext only; `STARTTLS` is not advertised (and answered 454).
    Plain,
    /// Cleartext greeting, `STARTTLS` advertised until TLS is up (port-587 style).
    StartTls,
    /// TLS from the first byte (port-465 style, lettre's `Tls::Wrapper`).
    ImplicitTls,
}

/// A command whose reply a [`Fault::Reply`] can replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// The 220 banner sent on connect (after the handshake in implicit TLS).
    Greeting,
    /// `EHLO` and `HELO`.
    Ehlo,
    StartTls,
    /// The *final* reply of an `AUTH` exchange (after the credentials were
    /// read, so for LOGIN after the password): a code below 400 logs the
    /// client in whatever the credentials.
    Auth,
    Mail,
    Rcpt,
    /// The reply to `DATA` itself; 354 goes on to read the message.
    Data,
    /// The reply after the message's final dot: below 400 the message is
    /// recorded, from 400 it is not.
    DataEnd,
    Rset,
    Noop,
    Quit,
}

/// Misbehaviour switched on with [`MockSmtp::set_fault`]. Faults are looked
/// up at the moment they apply (connect, each command, each reply), so they
/// can be changed between sends, and they stay until cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `command` with `code text` instead of the normal reply (a text
    /// with `\n` in it becomes a multi-line reply). The command takes effect
    /// only if `code < 400`; the session carries on either way. One per
    /// `Cmd`: setting another replaces it.
    Reply {
        command: Cmd,
        code: u16,
        text: String,
    },
    /// Sleep this long before every reply, greeting included.
    Delay { each_reply: Duration },
    /// Read the whole message after `DATA`, then close the socket without a
    /// reply; the message is not recorded.
    DropAfterData,
    /// Accept, then close at once (before any TLS handshake).
    DropOnConnect,
    /// Accept and never send a byte (no greeting, no TLS handshake) until the
    /// client goes away or the server is dropped.
    Silent,
}

/// One message the server accepted (got 250 after the final dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The address in `MAIL FROM:<...>` (empty for the null sender).
    pub mail_from: String,
    /// The addresses of the accepted `RCPT TO:<...>`, in order.
    pub rcpt_to: Vec<String>,
    /// The message as the client meant it: dot-stuffing undone, the
    /// terminating `.` line removed, every line ended with CRLF. (lettre
    /// always ends with `\r\n.\r\n`, so a body that already ends with a
    /// line break arrives with one more, as at any real server.)
    pub data: Vec<u8>,
    /// The user of a successful `AUTH` on that connection.
    pub auth_user: Option<String>,
    /// Whether the connection was under TLS when the message came.
    pub tls: bool,
}

impl Received {
    /// The message parsed by mail-parser (panics if it can't be parsed).
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .unwrap_or_else(|| {
                panic!(
                    "mock SMTP: mail-parser could not parse the message:\n{}",
                    self.data_lossy()
                )
            })
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_owned)
    }

    /// The first text body, decoded (transfer encoding and charset undone).
    pub fn text_body(&self) -> Option<String> {
        self.parsed().body_text(0).map(|t| t.into_owned())
    }

    /// The raw value of the first top-level header called `name` (case does
    /// not matter): unfolded, trimmed, not decoded, so an encoded-word stays
    /// `=?utf-8?...?=`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// The raw values of every top-level header called `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let text = self.data_lossy();
        let head = match text.find("\r\n\r\n") {
            Some(end) => &text[..end],
            None => text.as_str(),
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((field, value)) = line.split_once(':') {
                fields.push((field.trim().to_owned(), value.to_owned()));
            }
        }
        fields
            .into_iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }

    /// The whole message as text (invalid UTF-8 replaced).
    pub fn data_lossy(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Who wrote a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Received from the client (`C:`), message lines included.
    Client,
    /// Sent by the server (`S:`).
    Server,
    /// Something the server noticed or did (`*`): accept, TLS up, close...
    Event,
}

/// One line of [`MockSmtp::transcript_lines`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Connection number, from 1, in accept order (0: the accept loop).
    pub conn: usize,
    /// When, counted from `MockSmtp::start` (e.g. to check retry back-off).
    pub at: Duration,
    /// Whether the line went over TLS.
    pub tls: bool,
    pub dir: Dir,
    /// The line without its CRLF, exactly as sent (AUTH payloads still in
    /// base64, message lines still dot-stuffed).
    pub text: String,
}

impl fmt::Display for Line {
    /// `#2 [tls] C: AUTH PLAIN AHVzZXIAc2VjcmV0`, `#1 S: 220 ...`, `#1 * accepted`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} ", self.conn)?;
        if self.tls {
            f.write_str("[tls] ")?;
        }
        match self.dir {
            Dir::Client => write!(f, "C: {}", self.text),
            Dir::Server => write!(f, "S: {}", self.text),
            Dir::Event => write!(f, "* {}", self.text),
        }
    }
}

/// State shared by the handle, the accept thread and the connection threads.
struct Shared {
    security: Security,
    started: Instant,
    tls_config: Arc<rustls::ServerConfig>,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Clones of the open connections' sockets, to shut them down on drop.
    open: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: AtomicUsize,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    transcript: Vec<Line>,
    faults: Vec<Fault>,
    credentials: Option<(String, String)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn log(&self, conn: usize, tls: bool, dir: Dir, text: impl Into<String>) {
        let at = self.started.elapsed();
        self.state().transcript.push(Line {
            conn,
            at,
            tls,
            dir,
            text: text.into(),
        });
    }

    fn has_fault(&self, wanted: impl Fn(&Fault) -> bool) -> bool {
        self.state().faults.iter().any(wanted)
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

    /// Sleeps `d` unless the server is stopped first; false if it was.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(5)));
        }
    }
}

/// A running mock SMTP server; stops when dropped.
pub struct MockSmtp {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl MockSmtp {
    /// Binds 127.0.0.1 on a free port and starts serving. A new CA and
    /// server certificate are made for every server (in every mode).
    pub fn start(security: Security) -> MockSmtp {
        let tls = certs::make_server_tls();
        let listener = TcpListener::bind("127.0.0.1:0").expect("mock SMTP: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("mock SMTP: nonblocking listener");
        let addr = listener.local_addr().expect("mock SMTP: local_addr");
        let shared = Arc::new(Shared {
            security,
            started: Instant::now(),
            tls_config: tls.config,
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            open: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("mock-smtp-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("mock SMTP: spawn accept thread");
        MockSmtp {
            addr,
            ca_pem: tls.ca_pem,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// The listening address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn security(&self) -> Security {
        self.shared.security
    }

    /// PEM of the CA that signed the server certificate (SANs: IP 127.0.0.1
    /// and DNS localhost).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// From now on MAIL needs a successful AUTH first (530 otherwise), and
    /// AUTH succeeds only with these credentials (535 5.7.8 otherwise).
    /// Without it any credentials are accepted and AUTH is optional.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.shared.state().credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// Adds a fault, replacing one of the same kind (for `Reply`: same `Cmd`).
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.shared.state();
        state.faults.retain(|old| !same_kind(old, &fault));
        state.faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// Polls until at least `n` messages are there and returns them all;
    /// panics (showing the transcript) if that takes longer than `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "mock SMTP: waited {timeout:?} for {n} message(s) but only {} arrived \
                     ({} connection(s)); transcript:\n{}",
                    messages.len(),
                    self.connections(),
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line received and sent on every connection, in order, one per
    /// line, formatted as by [`Line`]'s `Display`.
    pub fn transcript(&self) -> String {
        let lines: Vec<String> = self
            .transcript_lines()
            .iter()
            .map(ToString::to_string)
            .collect();
        lines.join("\n")
    }

    /// Polls until the transcript contains `needle` and returns it; panics
    /// (showing it) after `timeout`. For what the server does after the
    /// client has already given up, e.g. `"* TLS handshake failed"`.
    pub fn wait_for_transcript(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let transcript = self.transcript();
            if transcript.contains(needle) {
                return transcript;
            }
            if Instant::now() >= deadline {
                panic!(
                    "mock SMTP: waited {timeout:?} for {needle:?} in the transcript:\n{transcript}"
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
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
        // No new connection can come now; unblock the ones still open.
        for stream in self
            .shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
            thread::sleep(Duration::from_millis(2));
        }
        for t in threads {
            if t.is_finished() {
                if t.join().is_err() && !thread::panicking() {
                    panic!("mock SMTP: a connection thread panicked");
                }
            } else {
                eprintln!("mock SMTP: a connection thread did not stop within 2 s; detaching it");
            }
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound then released at once).
pub fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("refused_port: bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("refused_port: local_addr")
        .port()
}

fn same_kind(a: &Fault, b: &Fault) -> bool {
    match (a, b) {
        (Fault::Reply { command: x, .. }, Fault::Reply { command: y, .. }) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if let Err(e) = register(&shared, id, &stream) {
                    shared.log(id, false, Dir::Event, format!("setup failed: {e}"));
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                let conn_shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name(format!("mock-smtp-conn-{id}"))
                    .spawn(move || session::run(conn_shared, id, stream));
                match spawned {
                    Ok(handle) => shared
                        .threads
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(handle),
                    Err(e) => shared.log(id, false, Dir::Event, format!("spawn failed: {e}")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                shared.log(0, false, Dir::Event, format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn register(shared: &Shared, id: usize, stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let clone = stream.try_clone()?;
    shared
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, clone);
    Ok(())
}

/// Called by a connection thread when it is done: shuts the socket down.
fn unregister(shared: &Shared, id: usize) {
    let stream = shared
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    if let Some(stream) = stream {
        let _ = stream.shutdown(Shutdown::Both);
    }
}
