//! Capture: the first stage. The `tracing-subscriber` layer turns each event
//! into a [`record::Record`] (field values visited into typed JSON, the span
//! context cached in each span's extensions) and keeps it in a per-thread
//! buffer. No I/O, no waiting on a send, no panic, whatever the values'
//! `Debug` does.

pub(crate) mod buffer;
pub(crate) mod layer;
pub(crate) mod record;
pub(crate) mod scope;
pub(crate) mod shared;
pub(crate) mod visit;
