//! What the integration tests share: the mock SMTP server (`smtp`, whose
//! types are re-exported here), a transport that records what it is given
//! (`recorder`), the SMTP setup of a test program (`setup`), the child
//! processes (`child`), the search for a secret's forms (`leaks`) and a
//! fake Alertmanager (`fake_alertmanager`).

#[cfg(feature = "alertmanager")]
pub mod alertmanager;
pub mod child;
#[cfg(feature = "alertmanager")]
pub mod fake_alertmanager;
#[cfg(any(feature = "smtp", feature = "alertmanager"))]
pub mod leaks;
pub mod recorder;
#[cfg(feature = "smtp")]
pub mod setup;
#[cfg(feature = "smtp")]
pub mod smtp;

#[cfg(feature = "smtp")]
pub use smtp::{Cmd, Fault, MockSmtp, Received, Security, refused_port};
