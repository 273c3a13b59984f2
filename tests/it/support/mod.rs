//! What the integration tests share: the mock SMTP server (`smtp`, whose
//! types are re-exported here), a transport that records what it is given
//! (`recorder`), the SMTP setup of a test program (`setup`) and the child
//! processes (`child`).

#[cfg(feature = "alertmanager")]
pub mod alertmanager;
pub mod child;
pub mod recorder;
#[cfg(feature = "smtp")]
pub mod setup;
#[cfg(feature = "smtp")]
pub mod smtp;

#[cfg(feature = "smtp")]
pub use smtp::{Cmd, Fault, MockSmtp, Received, Security, refused_port};
