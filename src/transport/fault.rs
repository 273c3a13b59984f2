//! What went wrong in an SMTP send, read from lettre's error by type (its
//! status and kind, the `io::Error` and `rustls::Error` in its sources), and
//! by its exact words only where no type tells it.

use std::error::Error as _;
use std::io;

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Code;

/// One thing a failed send can mean, each with its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// The server replied with an error code.
    Reply(Code),
    Refused,
    Timeout,
    /// The server closed the connection, or ended it in a reply.
    Closed,
    /// Credentials are set, but the server offers no login lettre can use.
    NoLogin,
    /// The server's certificate is a CA's (webpki's `CaUsedAsEndEntity`).
    CaAsServerCertificate,
    /// What came back is no TLS record (`InvalidContentType`): the port
    /// speaks plain SMTP first.
    PlainTextPort,
    /// Any other TLS failure.
    Tls,
    /// The server's name could not be resolved.
    Lookup,
    Other,
}

impl Fault {
    /// The fault of `e`; `login`: whether credentials were set.
    pub(super) fn of(e: &SmtpError, login: bool) -> Fault {
        use io::ErrorKind as Io;
        let said = e.source().map(ToString::to_string).unwrap_or_default();
        let chain = std::iter::successors(e.source(), |s| (*s).source());
        let io = chain.clone().find_map(|s| s.downcast_ref::<io::Error>());
        // lettre reports a handshake that fails on the first read or write
        // as a network error, so `is_tls()` alone misses it.
        let tls = chain.clone().find_map(tls_fault);
        match (e.status(), io.map(io::Error::kind)) {
            (Some(code), _) => Fault::Reply(code),
            (_, Some(Io::ConnectionRefused)) => Fault::Refused,
            // A socket's read timeout is `WouldBlock` on Unix, `TimedOut`
            // elsewhere; lettre's `is_timeout` sees only the latter.
            (_, Some(Io::TimedOut | Io::WouldBlock)) => Fault::Timeout,
            // A TLS peer that closes without close_notify is `UnexpectedEof`.
            (_, Some(Io::UnexpectedEof | Io::ConnectionReset))
            | (_, Some(Io::ConnectionAborted | Io::BrokenPipe)) => Fault::Closed,
            // lettre reads the end of the stream in the middle of a reply as
            // a response error with this text and no source: no type tells
            // it from a reply it cannot parse.
            _ if e.is_response() && said == "incomplete response" => Fault::Closed,
            // lettre's kind for it, "client", is shared by other faults.
            _ if e.is_client()
                && login
                && said == "No compatible authentication mechanism was found" =>
            {
                Fault::NoLogin
            }
            _ if tls.is_some() || e.is_tls() => tls.unwrap_or(Fault::Tls),
            _ if chain.clone().any(lookup_failed) => Fault::Lookup,
            _ => Fault::Other,
        }
    }
}

/// What rustls said in `e`, or in the `io::Error` it is (whose `source`
/// skips the error it wraps), where it matters to the advice.
fn tls_fault(e: &(dyn std::error::Error + 'static)) -> Option<Fault> {
    use rustls::{CertificateError, InvalidMessage};
    let inner = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
    let tls = e
        .downcast_ref()
        .or_else(|| inner?.downcast_ref::<rustls::Error>())?;
    Some(match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            Fault::CaAsServerCertificate
        }
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) => Fault::PlainTextPort,
        _ => Fault::Tls,
    })
}

/// Whether `e` says the server's name could not be resolved: std gives a
/// failed lookup no kind of its own (it is `Uncategorized`, which cannot be
/// named), only its text; lettre says so when a name has no address.
fn lookup_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = e.to_string();
    let from_std = e
        .downcast_ref::<io::Error>()
        .is_some_and(|io| io.raw_os_error().is_none());
    from_std && text.starts_with("failed to lookup address information")
        || text == "could not resolve to any address"
}
