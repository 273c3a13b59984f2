//! Throw-away certificate authority and server certificate for the mock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What `MockSmtp::start` needs: the CA (for clients to trust) and the
/// rustls configuration that serves the leaf certificate.
pub(super) struct ServerTls {
    pub(super) ca_pem: String,
    pub(super) config: Arc<rustls::ServerConfig>,
}

/// Makes a fresh self-signed CA, a leaf for `127.0.0.1` (IP SAN) and
/// `localhost` signed by it, and a ring-only rustls server configuration.
pub(super) fn make_server_tls() -> ServerTls {
    let ca_key = KeyPair::generate().expect("mock SMTP: generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("mock SMTP: CA params");
    // A name of its own, so that another server's CA is an unknown issuer
    // (rather than a known name with a bad signature).
    static SERIAL: AtomicUsize = AtomicUsize::new(1);
    let name = format!(
        "tracing-email mock SMTP test CA {}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    );
    ca_params.distinguished_name.push(DnType::CommonName, name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .expect("mock SMTP: self-sign CA");

    let leaf_key = KeyPair::generate().expect("mock SMTP: generate leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("mock SMTP: leaf params");
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("mock SMTP: sign leaf");

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("mock SMTP: rustls protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("mock SMTP: rustls server certificate");

    ServerTls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    }
}
