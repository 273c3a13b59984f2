//! What lettre's error does not say by its kind and status alone: the TLS
//! failure told by the `rustls::Error` in its sources, and a name that
//! could not be resolved, by its exact words where no type tells it.

use std::io;

/// A TLS failure, each with its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsFault {
    /// The server's certificate is a CA's (webpki's `CaUsedAsEndEntity`).
    CaAsServerCertificate,
    /// What came back is no TLS record (`InvalidContentType`): the port
    /// speaks plain SMTP first.
    PlainTextPort,
    Other,
}

/// What rustls said in `e`, or in the `io::Error` it is (whose `source`
/// skips the error it wraps), where it matters to the advice.
pub(super) fn tls_fault(e: &(dyn std::error::Error + 'static)) -> Option<TlsFault> {
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
            TlsFault::CaAsServerCertificate
        }
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) => {
            TlsFault::PlainTextPort
        }
        _ => TlsFault::Other,
    })
}

/// Whether `e` says the server's name could not be resolved: std gives a
/// failed lookup no kind of its own (it is `Uncategorized`, which cannot be
/// named), only its text; lettre says so when a name has no address.
pub(super) fn lookup_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = e.to_string();
    let from_std = e
        .downcast_ref::<io::Error>()
        .is_some_and(|io| io.raw_os_error().is_none());
    from_std && text.starts_with("failed to lookup address information")
        || text == "could not resolve to any address"
}
