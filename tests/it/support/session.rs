//! One SMTP session: runs on its own thread, blocking I/O.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::{ServerConnection, StreamOwned};

use super::{Cmd, Dir, Fault, Received, Security, Shared, unregister};

/// Longest line accepted (commands and message lines alike).
const MAX_LINE: usize = 1 << 20;
const HOSTNAME: &str = "mock.smtp.test";

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What to do after a command.
enum Flow {
    Continue,
    /// Close the connection politely (after QUIT: TLS close_notify first).
    Close,
    /// Just close the socket (a fault, or the client went away).
    Abort,
}

struct Session {
    shared: Arc<Shared>,
    id: usize,
    /// `None` only while being upgraded to TLS.
    stream: Option<Stream>,
    /// Bytes read but not yet returned as lines.
    buf: Vec<u8>,
    tls: bool,
    greeted: bool,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// Entry point of a connection thread.
pub(super) fn run(shared: Arc<Shared>, id: usize, tcp: TcpStream) {
    let mut session = Session {
        shared: Arc::clone(&shared),
        id,
        stream: Some(Stream::Plain(tcp)),
        buf: Vec::new(),
        tls: false,
        greeted: false,
        auth_user: None,
        mail_from: None,
        rcpt_to: Vec::new(),
    };
    session.event("accepted");
    let outcome = session.serve();
    match outcome {
        Ok(()) => {}
        Err(e) => session.event(format!("connection error: {e}")),
    }
    drop(session.stream.take());
    // Shuts the socket down: dropping our stream alone would not close it,
    // as `open` holds a clone.
    unregister(&shared, id);
    session.event("closed");
}

impl Session {
    fn event(&self, text: impl Into<String>) {
        self.shared.log(self.id, self.tls, Dir::Event, text);
    }

    fn stream(&mut self) -> &mut Stream {
        self.stream
            .as_mut()
            .expect("stream present outside TLS upgrade")
    }

    fn serve(&mut self) -> io::Result<()> {
        if self.shared.has_fault(|f| *f == Fault::DropOnConnect) {
            self.event("fault DropOnConnect: closing");
            return Ok(());
        }
        if self.shared.has_fault(|f| *f == Fault::Silent) {
            self.event("fault Silent: saying nothing");
            return self.swallow_until_eof();
        }
        if self.shared.security == Security::ImplicitTls && !self.start_tls()? {
            return Ok(());
        }
        let greeting = self
            .shared
            .reply_fault(Cmd::Greeting)
            .unwrap_or((220, format!("{HOSTNAME} ESMTP mock ready")));
        if !self.reply(greeting.0, &greeting.1)? {
            return Ok(());
        }
        loop {
            let Some(line) = self.read_line()? else {
                self.event("client closed the connection");
                return Ok(());
            };
            match self.command(&line)? {
                Flow::Continue => {}
                Flow::Close => return self.close_gracefully(),
                Flow::Abort => return Ok(()),
            }
        }
    }

    fn swallow_until_eof(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 4096];
        // Raw socket reads: in implicit TLS mode this does not even answer
        // the ClientHello.
        let mut tcp = self.stream().tcp().try_clone()?;
        loop {
            match tcp.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(n) => self.event(format!("silently ignored {n} byte(s)")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(()),
            }
            if self.shared.stopped() {
                return Ok(());
            }
        }
    }

    fn close_gracefully(&mut self) -> io::Result<()> {
        if let Some(Stream::Tls(tls)) = self.stream.as_mut() {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        Ok(())
    }

    /// Performs the server side of a TLS handshake on the current socket.
    /// Returns false (after logging why) if it failed.
    fn start_tls(&mut self) -> io::Result<bool> {
        if !self.buf.is_empty() {
            self.event(format!(
                "discarding {} byte(s) sent before the TLS handshake",
                self.buf.len()
            ));
            self.buf.clear();
        }
        let conn =
            ServerConnection::new(Arc::clone(&self.shared.tls_config)).map_err(io::Error::other)?;
        let tcp = match self.stream.take() {
            Some(Stream::Plain(tcp)) => tcp,
            other => {
                self.stream = other;
                return Err(io::Error::other("TLS requested twice"));
            }
        };
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                self.event(format!("TLS handshake failed: {e}"));
                self.stream = Some(Stream::Tls(Box::new(tls)));
                return Ok(false);
            }
        }
        let version = tls
            .conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        self.stream = Some(Stream::Tls(Box::new(tls)));
        self.tls = true;
        self.event(format!("TLS established ({version})"));
        Ok(true)
    }

    /// Reads one line (CRLF or LF ended); returns it without the line end.
    /// `None` at end of stream (an unfinished last line is dropped).
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.shared.log(
                    self.id,
                    self.tls,
                    Dir::Client,
                    String::from_utf8_lossy(&line),
                );
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::other("line too long"));
            }
            let mut chunk = [0u8; 8192];
            let n = match self.stream().read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls: the peer closed without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a reply (several lines if `text` has `\n`), after the Delay
    /// fault if any. Returns false if the server was stopped meanwhile.
    fn reply(&mut self, code: u16, text: &str) -> io::Result<bool> {
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        let lines: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                format!("{code}{sep}{l}")
            })
            .collect();
        self.send_lines(&lines)
    }

    fn send_lines(&mut self, lines: &[String]) -> io::Result<bool> {
        if let Some(delay) = self.shared.delay()
            && !self.shared.sleep(delay)
        {
            return Ok(false);
        }
        let mut out = String::new();
        for line in lines {
            self.shared
                .log(self.id, self.tls, Dir::Server, line.clone());
            out.push_str(line);
            out.push_str("\r\n");
        }
        let stream = self.stream();
        stream.write_all(out.as_bytes())?;
        stream.flush()?;
        Ok(true)
    }

    /// Replies with the fault for `cmd` if one is set. Returns the code used
    /// so the caller can apply the command's effect when it is below 400.
    fn fault_reply(&mut self, cmd: Cmd) -> io::Result<Option<u16>> {
        match self.shared.reply_fault(cmd) {
            Some((code, text)) => {
                self.reply(code, &text)?;
                Ok(Some(code))
            }
            None => Ok(None),
        }
    }

    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        let line = String::from_utf8_lossy(line).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => self.ehlo(&arg, true)?,
            "HELO" => self.ehlo(&arg, false)?,
            "STARTTLS" => return self.starttls(),
            "AUTH" => return self.auth(&arg),
            "MAIL" => self.mail(&arg)?,
            "RCPT" => self.rcpt(&arg)?,
            "DATA" => return self.data(),
            "RSET" => {
                if let Some(code) = self.fault_reply(Cmd::Rset)? {
                    if code < 400 {
                        self.reset_transaction();
                    }
                } else {
                    self.reset_transaction();
                    self.reply(250, "2.0.0 Ok")?;
                }
            }
            "NOOP" => {
                if self.fault_reply(Cmd::Noop)?.is_none() {
                    self.reply(250, "2.0.0 Ok")?;
                }
            }
            "QUIT" => {
                if let Some(code) = self.fault_reply(Cmd::Quit)? {
                    if code >= 400 {
                        return Ok(Flow::Continue);
                    }
                } else {
                    self.reply(221, "2.0.0 Bye")?;
                }
                return Ok(Flow::Close);
            }
            "" => {
                self.reply(500, "5.5.2 Syntax error: empty command")?;
            }
            _ => {
                self.reply(502, "5.5.2 Command not recognized")?;
            }
        }
        Ok(Flow::Continue)
    }

    fn ehlo(&mut self, client: &str, extended: bool) -> io::Result<()> {
        if let Some(code) = self.fault_reply(Cmd::Ehlo)? {
            if code < 400 {
                self.greeted = true;
                self.reset_transaction();
            }
            return Ok(());
        }
        if client.is_empty() {
            self.reply(501, "5.5.4 Syntax: EHLO hostname")?;
            return Ok(());
        }
        self.greeted = true;
        self.reset_transaction();
        if !extended {
            self.reply(250, HOSTNAME)?;
            return Ok(());
        }
        let mut lines = vec![
            format!("250-{HOSTNAME} greets {client}"),
            "250-8BITMIME".to_owned(),
            "250-SMTPUTF8".to_owned(),
        ];
        if self.shared.security == Security::StartTls && !self.tls {
            lines.push("250-STARTTLS".to_owned());
        }
        lines.push("250 AUTH PLAIN LOGIN".to_owned());
        self.send_lines(&lines)?;
        Ok(())
    }

    fn starttls(&mut self) -> io::Result<Flow> {
        if let Some(code) = self.fault_reply(Cmd::StartTls)? {
            if code >= 400 || self.tls {
                return Ok(Flow::Continue);
            }
        } else if self.tls {
            self.reply(503, "5.5.1 TLS already active")?;
            return Ok(Flow::Continue);
        } else if self.shared.security != Security::StartTls {
            self.reply(454, "4.7.0 TLS not available")?;
            return Ok(Flow::Continue);
        } else if !self.reply(220, "2.0.0 Ready to start TLS")? {
            return Ok(Flow::Abort);
        }
        if !self.start_tls()? {
            return Ok(Flow::Abort);
        }
        // RFC 3207: forget everything learnt before TLS.
        self.greeted = false;
        self.auth_user = None;
        self.reset_transaction();
        Ok(Flow::Continue)
    }

    /// Reads one line answering a 334 challenge; `None` if the connection
    /// ended, `Some(None)` if the client cancelled with `*`.
    fn auth_response(&mut self, challenge: &str) -> io::Result<Option<Option<Vec<u8>>>> {
        if !self.reply(334, challenge)? {
            return Ok(None);
        }
        let Some(line) = self.read_line()? else {
            return Ok(None);
        };
        if line == b"*" {
            return Ok(Some(None));
        }
        Ok(Some(Some(line)))
    }

    fn auth(&mut self, arg: &str) -> io::Result<Flow> {
        if self.auth_user.is_some() {
            self.reply(503, "5.5.1 Already authenticated")?;
            return Ok(Flow::Continue);
        }
        if self.mail_from.is_some() {
            self.reply(503, "5.5.1 AUTH not allowed during a mail transaction")?;
            return Ok(Flow::Continue);
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().as_bytes().to_vec())),
            None => (arg.trim().to_ascii_uppercase(), None),
        };
        // (user, password) once the exchange is over.
        let credentials: Option<(String, String)> = match mechanism.as_str() {
            "PLAIN" => {
                let encoded = match initial {
                    Some(i) if i != b"=" => i,
                    _ => match self.auth_response("")? {
                        None => return Ok(Flow::Abort),
                        Some(None) => return self.auth_cancelled(),
                        Some(Some(line)) => line,
                    },
                };
                let Some(decoded) = base64_decode(&encoded) else {
                    self.reply(501, "5.5.2 Cannot decode AUTH PLAIN response")?;
                    return Ok(Flow::Continue);
                };
                let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
                if parts.len() != 3 {
                    self.reply(501, "5.5.2 Malformed AUTH PLAIN response")?;
                    return Ok(Flow::Continue);
                }
                Some((
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                ))
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => i,
                    None => match self.auth_response("VXNlcm5hbWU6")? {
                        None => return Ok(Flow::Abort),
                        Some(None) => return self.auth_cancelled(),
                        Some(Some(line)) => line,
                    },
                };
                let password = match self.auth_response("UGFzc3dvcmQ6")? {
                    None => return Ok(Flow::Abort),
                    Some(None) => return self.auth_cancelled(),
                    Some(Some(line)) => line,
                };
                match (base64_decode(&user), base64_decode(&password)) {
                    (Some(u), Some(p)) => Some((
                        String::from_utf8_lossy(&u).into_owned(),
                        String::from_utf8_lossy(&p).into_owned(),
                    )),
                    _ => None,
                }
            }
            _ => {
                self.reply(504, "5.5.4 Unrecognized authentication type")?;
                return Ok(Flow::Continue);
            }
        };
        let Some((user, password)) = credentials else {
            self.reply(501, "5.5.2 Cannot decode AUTH LOGIN response")?;
            return Ok(Flow::Continue);
        };
        if let Some(code) = self.fault_reply(Cmd::Auth)? {
            if code < 400 {
                self.auth_user = Some(user);
            }
            return Ok(Flow::Continue);
        }
        let expected = self.shared.state().credentials.clone();
        let accepted = match expected {
            Some((u, p)) => u == user && p == password,
            None => true,
        };
        if accepted {
            self.auth_user = Some(user);
            self.reply(235, "2.7.0 Authentication successful")?;
        } else {
            self.reply(535, "5.7.8 Authentication credentials invalid")?;
        }
        Ok(Flow::Continue)
    }

    fn auth_cancelled(&mut self) -> io::Result<Flow> {
        self.reply(501, "5.7.0 Authentication cancelled")?;
        Ok(Flow::Continue)
    }

    fn mail(&mut self, arg: &str) -> io::Result<()> {
        let address = path_argument(arg, "FROM:");
        if let Some(code) = self.fault_reply(Cmd::Mail)? {
            if code < 400 {
                self.reset_transaction();
                self.mail_from = Some(address.unwrap_or_default());
            }
            return Ok(());
        }
        let needs_auth = self.shared.state().credentials.is_some();
        if !self.greeted {
            self.reply(503, "5.5.1 Send EHLO/HELO first")?;
        } else if needs_auth && self.auth_user.is_none() {
            self.reply(530, "5.7.0 Authentication required")?;
        } else if self.mail_from.is_some() {
            self.reply(503, "5.5.1 Nested MAIL command")?;
        } else if let Some(address) = address {
            self.mail_from = Some(address);
            self.reply(250, "2.1.0 Ok")?;
        } else {
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")?;
        }
        Ok(())
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<()> {
        let address = path_argument(arg, "TO:");
        if let Some(code) = self.fault_reply(Cmd::Rcpt)? {
            if code < 400 {
                self.rcpt_to.push(address.unwrap_or_default());
            }
            return Ok(());
        }
        if self.mail_from.is_none() {
            self.reply(503, "5.5.1 Need MAIL before RCPT")?;
        } else if let Some(address) = address.filter(|a| !a.is_empty()) {
            self.rcpt_to.push(address);
            self.reply(250, "2.1.5 Ok")?;
        } else {
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")?;
        }
        Ok(())
    }

    fn data(&mut self) -> io::Result<Flow> {
        if let Some(code) = self.fault_reply(Cmd::Data)? {
            if code != 354 {
                return Ok(Flow::Continue);
            }
        } else if self.mail_from.is_none() {
            self.reply(503, "5.5.1 Need MAIL command")?;
            return Ok(Flow::Continue);
        } else if self.rcpt_to.is_empty() {
            self.reply(554, "5.5.1 No valid recipients")?;
            return Ok(Flow::Continue);
        } else if !self.reply(354, "End data with <CR><LF>.<CR><LF>")? {
            return Ok(Flow::Abort);
        }
        let mut data = Vec::new();
        loop {
            let Some(line) = self.read_line()? else {
                self.event("connection closed during DATA; message discarded");
                return Ok(Flow::Abort);
            };
            if line == b"." {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            data.extend_from_slice(unstuffed);
            data.extend_from_slice(b"\r\n");
        }
        if self.shared.has_fault(|f| *f == Fault::DropAfterData) {
            self.event("fault DropAfterData: closing without a reply; message discarded");
            return Ok(Flow::Abort);
        }
        let received = Received {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            data,
            auth_user: self.auth_user.clone(),
            tls: self.tls,
        };
        // Record before replying, so a send that returned Ok is visible.
        let fault = self.shared.reply_fault(Cmd::DataEnd);
        let accept = fault.as_ref().is_none_or(|(code, _)| *code < 400);
        let queued = if accept {
            let mut state = self.shared.state();
            state.messages.push(received);
            state.messages.len()
        } else {
            0
        };
        match fault {
            Some((code, text)) => self.reply(code, &text)?,
            None => self.reply(250, &format!("2.0.0 Ok: queued as MOCK{queued}"))?,
        };
        Ok(Flow::Continue)
    }
}

/// `FROM:<a@b> SIZE=1` -> `a@b`; also accepts a missing `<>` and a space
/// after the colon. `None` if the keyword is wrong.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_owned())
    } else {
        Some(rest.split_whitespace().next().unwrap_or("").to_owned())
    }
}

/// Standard base64 with padding optional; `None` if it is not base64.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let trimmed = input.trim_ascii();
    let body = trimmed.strip_suffix(b"==").unwrap_or(trimmed);
    let body = body.strip_suffix(b"=").unwrap_or(body);
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
