//! `capture_panics()`: a panic becomes an ERROR record, checkpointed to the
//! state file at once, so that even an abort keeps it.

use std::panic::PanicHookInfo;
use std::sync::{Mutex, Weak};

use tracing::Level;

use crate::capture::layer::Shared;
use crate::capture::record::{Fields, Record};
use crate::capture::visit::bounded;
use crate::flush::Flusher;
use crate::policy::Phase;

/// Holds only weak references: once the layer and guard are gone, it only calls
/// the previous hook.
pub(crate) fn install(shared: Weak<Shared>, flusher: Weak<Mutex<Flusher>>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(shared) = shared.upgrade() {
            shared.buffer.push(record(
                info,
                crate::clock::now_in_panic_hook(&*shared.clock),
                shared.max_record_bytes,
            ));
            // The panicking thread may hold the flusher (a panic inside a
            // flush): then the record waits in memory for the guard's flush.
            if let Some(flusher) = flusher.upgrade()
                && let Some(mut flusher) = crate::sync::try_lock(&flusher)
            {
                let _ = flusher.flush(&shared.buffer, Phase::Checkpoint);
            }
        }
        previous(info);
    }));
}

/// Bounded like any record's text, so a huge panic message cannot make a huge record.
fn record(info: &PanicHookInfo<'_>, now: std::time::SystemTime, max_bytes: usize) -> Record {
    let message = crate::error::panic_message(info.payload());
    let message = message.unwrap_or_else(|| "Box<dyn Any>".to_owned());
    let thread = std::thread::current();
    let mut fields = Fields::default();
    let name = bounded(thread.name().unwrap_or("<unnamed>"), 256);
    fields.push("thread".into(), name.into());
    if let Some(location) = info.location() {
        fields.push("location".into(), location.to_string().into());
    }
    Record {
        timestamp: crate::clock::datetime(now),
        level: Level::ERROR,
        target: "panic".into(),
        message: bounded(&format!("panicked: {message}"), max_bytes / 2),
        fields,
        module_path: None,
        file: info.location().map(|l| l.file().to_owned().into()),
        line: info.location().map(|l| l.line()),
        spans: Vec::new(),
        run: None,
        memo: Default::default(),
    }
}
