//! Digest: the email that says what went wrong. One [`summary::Summary`]
//! of the records feeds the subject ([`subject`]), the plain-text body and
//! headers ([`compose`]) and the HTML alternative ([`html`]).

pub(crate) mod compose;
pub(crate) mod html;
pub(crate) mod subject;
pub(crate) mod summary;

pub(crate) use compose::Composer;
