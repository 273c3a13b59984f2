//! A model-based test of the store: random interleavings of what two to
//! four processes do to one state file (capture, checkpoint, flushes that
//! hold or send through a transport that fails or not, park, clear, kill -9
//! at any write, after which the others flush in a random order), each
//! process a real flusher with the view it keeps between flushes, checked
//! after every step against a plain model of the records: every record
//! reported stored is pending exactly once until it is sent or cleared, none
//! is sent twice, none is lost. Each case draws its own mix of steps (swarm
//! testing) and, half the time, a small `max_pending`: then records also
//! leave by trim lines, never to come back, and the view a process keeps
//! after its flush must be what a fresh reader replays; a kill mid-append often leaves a torn tail exactly as long as
//! another process's next append, the collision a length check cannot see.
//!
//! `cargo test store_model` runs a few hundred cases; set
//! `TRACING_EMAIL_MODEL_CASES` for more, `TRACING_EMAIL_MODEL_SEED` to
//! replay one, or run the many cases of `cargo test -- --ignored model`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::Level;

use crate::capture::record::Record;
use crate::policy::Phase;
use crate::store::file::StateStore;
use crate::store::journal::{Append, header};
use crate::store::journal_file::journal_path;
use crate::sync::lock;
use crate::transport::{BoxError, Email, Transport};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The transport every process shares: what it accepted, by record id, and
/// whether it refuses for now.
#[derive(Clone, Default)]
struct Outbox {
    sent: Arc<Mutex<Vec<u64>>>,
    fail: Arc<AtomicBool>,
}

impl Transport for Outbox {
    fn send(&self, email: &Email) -> Result<(), BoxError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err("refused by the model".into());
        }
        let ids = email.records().iter().map(id_of);
        lock(&self.sent).extend(ids);
        Ok(())
    }
}

fn id_of(record: &Record) -> u64 {
    record
        .message
        .trim_start_matches('r')
        .parse()
        .unwrap_or(u64::MAX)
}

/// What a step does.
#[derive(Clone, Copy)]
enum Op {
    Warn,
    Error,
    Checkpoint,
    Flush,
    IdleFlush,
    Park,
    Clear,
    Kill,
    TornAppend,
    KilledRewrite,
    KilledBeforeRename,
}

impl Op {
    const ALL: [Op; 11] = [
        Op::Warn,
        Op::Error,
        Op::Checkpoint,
        Op::Flush,
        Op::IdleFlush,
        Op::Park,
        Op::Clear,
        Op::Kill,
        Op::TornAppend,
        Op::KilledRewrite,
        Op::KilledBeforeRename,
    ];
    /// How often each is drawn, before a case's own mix.
    const WEIGHTS: [u64; 11] = [5, 1, 4, 4, 6, 1, 1, 1, 3, 1, 1];
}

/// What the model knows of each record.
#[derive(Default)]
struct Model {
    /// Reported stored (or found in the state) and neither sent nor cleared.
    stored: BTreeSet<u64>,
    /// Written by a process killed while writing: stored if found at the
    /// next look, else never.
    maybe: BTreeSet<u64>,
    sent: BTreeSet<u64>,
    cleared: BTreeSet<u64>,
    /// Trimmed at `max_pending` (the oldest pending left).
    trimmed: BTreeSet<u64>,
}

/// One process: a flusher with its buffer and kept view, and the ids in its
/// buffer (not stored yet).
struct Proc {
    guard: crate::FlushGuard,
    unstored: Vec<u64>,
}

struct Case {
    seed: u64,
    dir: tempfile::TempDir,
    rng: Rng,
    outbox: Outbox,
    procs: Vec<Proc>,
    model: Model,
    next_id: u64,
    steps: Vec<String>,
    /// Every process's clock: fixed, so that what a flush appends can be
    /// foreseen.
    clock: crate::clock::ManualClock,
    /// This case's weight of each [`Op`] (some left out: swarm testing, so
    /// that cases differ in kind, not only in order).
    mix: Vec<u64>,
    /// How busy each process is, as a weight.
    busy: Vec<u64>,
    /// Every process's `max_pending` (`usize::MAX` in half the cases).
    max_pending: usize,
    /// A flush now finds the state locked and parks.
    parking: bool,
}

/// A pid no process has now (one that exited and was reaped), made anew at
/// each use: over a long run on a busy machine, a pid comes back.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A folder on a memory file system where there is one (fsync costs
/// nothing there), else the usual temporary folder.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

impl Case {
    fn new(seed: u64) -> Self {
        let mut case = Case {
            seed,
            dir: scratch(),
            rng: Rng(seed),
            outbox: Outbox::default(),
            procs: Vec::new(),
            model: Model::default(),
            next_id: 0,
            steps: Vec::new(),
            clock: crate::clock::ManualClock::new(
                std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ),
            mix: Vec::new(),
            busy: Vec::new(),
            max_pending: usize::MAX,
            parking: false,
        };
        if case.rng.below(2) == 0 {
            case.max_pending = 2 + case.rng.below(10) as usize;
        }
        case.mix = Op::WEIGHTS
            .iter()
            .map(|w| w * [0, 1, 2, 4][case.rng.below(4) as usize])
            .collect();
        let n = 2 + case.rng.below(3);
        for _ in 0..n {
            case.busy.push([1, 1, 4][case.rng.below(3) as usize]);
            let guard = case.start();
            case.procs.push(Proc {
                guard,
                unstored: Vec::new(),
            });
        }
        case
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn store(&self) -> StateStore {
        StateStore::new(self.path(), Duration::from_secs(5))
    }

    /// A process's guard: sends every pending record once an error is
    /// pending, at the guard's flush. It waits for the lock (a child that
    /// another test forks keeps a copy of the lock until its exec).
    fn start(&self) -> crate::FlushGuard {
        let (_layer, guard) = crate::EmailLayer::builder("model")
            .clock(self.clock.clone())
            .transport(self.outbox.clone())
            .state_file(self.path())
            .from("robot@example.com")
            .to("me@example.com")
            .threshold(1, Level::ERROR)
            .max_pending(self.max_pending)
            .checkpoint_interval(None)
            .build()
            .unwrap();
        guard
    }

    fn fail(&self, message: String) -> ! {
        panic!(
            "store model, seed {} (max_pending {}): {message}\nsteps:\n  {}\nreplay: \
             TRACING_EMAIL_MODEL_SEED={} cargo test --lib store_model",
            self.seed,
            self.max_pending,
            self.steps.join("\n  "),
            self.seed,
        )
    }

    /// One random step, then the check.
    fn step(&mut self) {
        let p = self.pick(&self.busy.clone());
        match Op::ALL[self.pick(&self.mix.clone())] {
            Op::Warn => self.capture(p, Level::WARN),
            Op::Error => self.capture(p, Level::ERROR),
            Op::Checkpoint => self.flush(p, Phase::Run, "checkpoint"),
            Op::Flush => {
                let fail = self.rng.below(3) == 0;
                self.outbox.fail.store(fail, Ordering::Relaxed);
                self.flush(
                    p,
                    Phase::Flush,
                    if fail { "flush, refused" } else { "flush" },
                );
            }
            Op::IdleFlush => self.idle_flush(),
            Op::Park => self.park(p),
            Op::Clear => self.clear(),
            Op::Kill => self.kill(p),
            Op::TornAppend => self.torn_append(p),
            Op::KilledRewrite => self.killed_rewrite(p),
            Op::KilledBeforeRename => self.killed_before_rename(),
        }
        self.check();
    }

    /// An index into `weights`, drawn by weight.
    fn pick(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut at = self.rng.below(total.max(1));
        for (i, w) in weights.iter().enumerate() {
            if at < *w {
                return i;
            }
            at -= w;
        }
        0
    }

    fn capture(&mut self, p: usize, level: Level) {
        let id = self.next_id;
        self.next_id += 1;
        let mut record = crate::policy::tests::record_at(level);
        record.message = format!("r{id}");
        record.timestamp = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + id);
        // Lines of many lengths: a torn one may be as long as an append.
        let most = if self.rng.below(4) == 0 { 2000 } else { 200 };
        let pad = "x".repeat(self.rng.below(most) as usize);
        record.fields.push("pad".into(), pad.into());
        self.procs[p].guard.shared.buffer.push(record);
        self.procs[p].unstored.push(id);
        self.steps.push(format!("p{p}: capture r{id} {level}"));
    }

    /// A flush of process `p`: whatever it took from its buffer is stored
    /// (no write fails here), and what the transport accepted is sent.
    fn flush(&mut self, p: usize, phase: Phase, what: &str) {
        let before = lock(&self.outbox.sent).len();
        let journal = journal_path(&self.path());
        // A checkpoint with nothing new does not lock, nor does one that
        // parks: the view it keeps is not claimed current (the next lock
        // checks it).
        let locks = (phase == Phase::Flush || !self.procs[p].unstored.is_empty()) && !self.parking;
        let proc = &mut self.procs[p];
        let outcome = lock(&proc.guard.flusher).flush(&proc.guard.shared.buffer, phase);
        let journal = std::fs::metadata(&journal).map_or(0, |m| m.len());
        self.steps.push(format!(
            "p{p}: {what}: {outcome} (journal: {journal} bytes)"
        ));
        let left = proc.guard.shared.buffer.drain();
        if !left.is_empty() {
            self.fail(format!(
                "the flush gave back {} records: {outcome}",
                left.len()
            ));
        }
        self.model.stored.extend(proc.unstored.drain(..));
        if locks {
            self.kept_is_on_disk(p);
        }
        let sent: Vec<u64> = lock(&self.outbox.sent)[before..].to_vec();
        for id in sent {
            if !self.model.sent.insert(id) {
                self.fail(format!("r{id} was sent twice"));
            }
            if !self.model.stored.remove(&id) && !self.model.maybe.remove(&id) {
                self.fail(format!("r{id} was sent but never stored"));
            }
        }
    }

    /// After `p`'s flush, the view it keeps (if it keeps one) is the state
    /// a fresh reader replays from the files (the records, in order, and
    /// the dropped count), within `max_pending`, and its tally counts them.
    fn kept_is_on_disk(&self, p: usize) {
        let flusher = lock(&self.procs[p].guard.flusher);
        let Some((kept, _)) = &flusher.cache.files else {
            return;
        };
        let (state, _) = match self.store().peek() {
            Ok(read) => read,
            Err(e) => self.fail(format!("the state cannot be read: {e}")),
        };
        let ids = |s: &crate::store::state::State| s.pending.iter().map(id_of).collect::<Vec<_>>();
        if (ids(kept), kept.dropped) != (ids(&state), state.dropped) {
            self.fail(format!(
                "p{p} keeps {:?} (dropped {}), the files hold {:?} (dropped {})",
                ids(kept),
                kept.dropped,
                ids(&state),
                state.dropped
            ));
        }
        if state.pending.len() > self.max_pending {
            self.fail(format!("{} records pending", state.pending.len()));
        }
        // The policy's running figures are those of the kept records.
        let mut fresh = crate::policy::Tally::default();
        fresh.extend(&flusher.policy, &kept.pending);
        if flusher.cache.tally.as_ref().is_some_and(|t| *t != fresh) {
            self.fail(format!("p{p}'s tally is not that of the records it keeps"));
        }
    }

    /// A flush with nothing new, of a process that flushed before and
    /// whose buffer is empty (a quiet period of a service, or `flush()`
    /// called twice), if there is one.
    fn idle_flush(&mut self) {
        let idle: Vec<usize> = (0..self.procs.len())
            .filter(|&q| self.procs[q].unstored.is_empty())
            .filter(|&q| lock(&self.procs[q].guard.flusher).run.is_some())
            .collect();
        if !idle.is_empty() {
            let p = idle[self.rng.below(idle.len() as u64) as usize];
            self.flush(p, Phase::Flush, "flush with nothing new");
        }
    }

    /// `p` finds the state locked and does not wait: its records go to a
    /// parked file.
    fn park(&mut self, p: usize) {
        let store = self.store();
        let held = store.lock().unwrap();
        let impatient = StateStore::new(self.path(), Duration::ZERO);
        let patient = std::mem::replace(&mut lock(&self.procs[p].guard.flusher).store, impatient);
        self.parking = true;
        self.flush(p, Phase::Run, "checkpoint while locked (parks)");
        self.parking = false;
        lock(&self.procs[p].guard.flusher).store = patient;
        drop(held);
    }

    fn clear(&mut self) {
        let on_disk = self.on_disk();
        let cleared = crate::inspect::StateFile::open(self.path())
            .clear()
            .unwrap();
        self.steps
            .push(format!("clear: {} records", cleared.records));
        for id in on_disk {
            self.model.stored.remove(&id);
            self.model.maybe.remove(&id);
            self.model.cleared.insert(id);
        }
    }

    /// Kill -9 of `p`: what its buffer held was never stored, and its view
    /// is gone; it starts again.
    fn kill(&mut self, p: usize) {
        let fresh = self.start();
        let proc = &mut self.procs[p];
        proc.guard.shared.buffer.drain();
        proc.unstored.clear();
        // No last flush: a killed process runs nothing.
        proc.guard.flushed.store(true, Ordering::SeqCst);
        drop(std::mem::replace(&mut proc.guard, fresh));
        self.steps.push(format!("p{p}: killed"));
    }

    /// `p` is killed while appending its buffer's records: the journal ends
    /// in a strict prefix of the append (often all but its last few bytes,
    /// as long as another process's next append may be). Whole lines that
    /// made it may be found; `p` starts again.
    fn torn_append(&mut self, p: usize) {
        let mut records = self.procs[p].guard.shared.buffer.drain();
        let ids = std::mem::take(&mut self.procs[p].unstored);
        if records.is_empty() {
            return self.kill(p);
        }
        let store = self.store();
        let lock = store.lock().unwrap();
        let loaded = store.load(&lock, None).unwrap();
        let end = loaded.stamp.journal_good;
        let mut bytes = if end == 0 {
            header(loaded.state.generation)
        } else {
            Vec::new()
        };
        for r in &mut records {
            r.run = Some(loaded.state.history.runs.max(1));
        }
        let append = Append {
            run: None,
            level: Level::ERROR,
            fields: &[],
            records: &records,
            dropped: 0,
            trim: None,
        };
        append.encode(&mut bytes).unwrap();
        let len = bytes.len() as u64;
        // As long as another process's next append, when that is a cut
        // within a line: the length a kept view cannot tell from the tail.
        let starts = (end == 0).then_some(loaded.state.generation);
        let other = self
            .next_append_len(p, &loaded.state, starts)
            .and_then(|n| torn_as_long_as(&bytes, n as usize));
        let cut = match (self.rng.below(4), other) {
            (0, _) => 1 + self.rng.below(len - 1),
            (_, Some(n)) => n,
            _ => len - 1 - self.rng.below(8.min(len - 1)),
        };
        write_at(&journal_path(&self.path()), end, &bytes[..cut as usize]);
        drop(lock);
        self.steps.push(format!(
            "p{p}: killed appending {ids:?} ({cut} of {len} bytes at {end})"
        ));
        self.model.maybe.extend(ids);
        self.kill(p);
        self.survivors_flush(p);
    }

    /// The processes other than `p`, which was killed, flush in a random
    /// order, as running processes do after one of them died: a checkpoint
    /// of what they hold, or a flush with nothing new.
    fn survivors_flush(&mut self, p: usize) {
        let mut order: Vec<usize> = (0..self.procs.len()).filter(|&q| q != p).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, self.rng.below(i as u64 + 1) as usize);
        }
        for q in order {
            if !self.procs[q].unstored.is_empty() {
                self.flush(q, Phase::Run, "checkpoint after the kill");
            } else if lock(&self.procs[q].guard.flusher).run.is_some() {
                self.flush(q, Phase::Flush, "flush with nothing new after the kill");
            }
            self.check();
        }
    }

    /// How many bytes the next checkpoint of a process other than `p` (one
    /// with records, drawn at random) appends to `state`; `starts`: it
    /// starts the journal that extends this generation.
    fn next_append_len(
        &mut self,
        p: usize,
        state: &crate::store::state::State,
        starts: Option<u64>,
    ) -> Option<u64> {
        let others: Vec<usize> = (0..self.procs.len())
            .filter(|&q| q != p && !self.procs[q].unstored.is_empty())
            .collect();
        let q = *others.get(self.rng.below(others.len().max(1) as u64) as usize)?;
        self.append_len(q, state, starts)
    }

    /// How many bytes the next checkpoint of process `q` appends (see
    /// [`next_append_len`](Self::next_append_len)).
    fn append_len(
        &self,
        q: usize,
        state: &crate::store::state::State,
        starts: Option<u64>,
    ) -> Option<u64> {
        let runs = state.history.runs;
        let guard = &self.procs[q].guard;
        let flusher = lock(&guard.flusher);
        // As `Flusher::register_run` numbers it, at the model's fixed time.
        let (run, new) = match flusher.run {
            Some(run) if runs >= run => (run, false),
            _ => (runs + 1, true),
        };
        let at = crate::clock::datetime(crate::clock::Clock::now(&self.clock));
        let mut records = guard.shared.buffer.drain();
        guard.shared.buffer.restore(records.clone(), 0);
        for r in &mut records {
            r.run = Some(run);
        }
        // As the flush trims at `max_pending`: its own records trimmed are
        // not written, the others' by a trim line.
        let old = state.pending.len();
        let excess = (old + records.len()).saturating_sub(self.max_pending);
        let trimmed_new = excess.saturating_sub(old).min(records.len());
        let mut bytes = starts.map(header).unwrap_or_default();
        Append {
            run: new.then_some((run, Some(at))),
            level: flusher.policy.level(),
            fields: &flusher.policy.fingerprint_fields,
            records: &records[trimmed_new..],
            dropped: 0,
            trim: (excess > 0).then_some(((excess - trimmed_new) as u64, excess as u64)),
        }
        .encode(&mut bytes)
        .ok()?;
        Some(bytes.len() as u64)
    }

    /// `p` is killed during a rewrite, after the rename and before the
    /// journal and the parked files it merged are removed; it starts again.
    fn killed_rewrite(&mut self, p: usize) {
        let store = self.store();
        let lock = store.lock().unwrap();
        let journal = journal_path(&self.path());
        let old = std::fs::read(&journal).ok();
        let loaded = store.load(&lock, None).unwrap();
        store.save(&lock, &loaded.state).unwrap();
        if let Some(old) = old {
            std::fs::write(&journal, old).unwrap();
        }
        drop(lock);
        self.steps.push(format!(
            "p{p}: killed after renaming its rewrite ({} parked files merged)",
            loaded.parked.len()
        ));
        self.kill(p);
        self.survivors_flush(p);
    }

    /// A writer killed before its rename left part of its copy.
    fn killed_before_rename(&mut self) {
        let path = self.path();
        let snapshot = std::fs::read(&path).unwrap_or_default();
        let cut = self.rng.below(snapshot.len() as u64 + 1) as usize;
        let tmp = self
            .dir
            .path()
            .join(format!("state.json.tmp-{}", dead_pid()));
        std::fs::write(&tmp, &snapshot[..cut]).unwrap();
        self.steps.push(format!(
            "a writer killed before its rename left {cut} bytes"
        ));
    }

    /// The ids of the records stored now, read as the crate reads them
    /// (snapshot and journal), and those of parked files not merged yet;
    /// nothing is changed.
    fn on_disk(&self) -> Vec<u64> {
        let (state, _) = match self.store().peek() {
            Ok(read) => read,
            Err(e) => self.fail(format!("the state cannot be read: {e}")),
        };
        let mut ids: Vec<u64> = state.pending.iter().map(id_of).collect();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let parked = name.starts_with("state.json.parked-") && name.ends_with(".json");
            if !parked || state.parked_merged.contains(&name) {
                continue;
            }
            let bytes = std::fs::read(self.dir.path().join(&name)).unwrap();
            let file: crate::store::state::State = serde_json::from_slice(&bytes).unwrap();
            ids.extend(file.pending.iter().map(id_of));
        }
        ids
    }

    /// Every record stored is pending exactly once until sent or cleared;
    /// nothing else is pending.
    fn check(&mut self) {
        let mut seen = BTreeMap::new();
        for id in self.on_disk() {
            *seen.entry(id).or_insert(0) += 1;
        }
        if let Some((id, n)) = seen.iter().find(|(_, n)| **n > 1) {
            self.fail(format!("r{id} is pending {n} times"));
        }
        for id in std::mem::take(&mut self.model.maybe) {
            if seen.contains_key(&id) {
                self.model.stored.insert(id);
            }
        }
        for id in seen.keys() {
            if self.model.sent.contains(id) {
                self.fail(format!("r{id} is pending again after it was sent"));
            }
            if self.model.cleared.contains(id) {
                self.fail(format!("r{id} is pending again after it was cleared"));
            }
            if !self.model.stored.contains(id) {
                self.fail(format!("r{id} is pending but was never stored"));
            }
        }
        for id in seen.keys() {
            if self.model.trimmed.contains(id) {
                self.fail(format!("r{id} is pending again after it was trimmed"));
            }
        }
        let gone: Vec<u64> = self
            .model
            .stored
            .iter()
            .filter(|id| !seen.contains_key(id))
            .copied()
            .collect();
        // Records leave unsent only as the oldest trimmed at `max_pending`.
        if let Some(id) = gone.first().filter(|_| self.max_pending == usize::MAX) {
            self.fail(format!("r{id} was stored and is lost"));
        }
        for id in gone {
            self.model.stored.remove(&id);
            self.model.trimmed.insert(id);
        }
    }

    /// The end: a new process's flush sends everything pending, and no
    /// dead writer's file is left.
    fn finish(&mut self) {
        self.outbox.fail.store(false, Ordering::Relaxed);
        let p = 0;
        self.kill(p);
        self.capture(p, Level::ERROR);
        self.flush(p, Phase::Flush, "last flush");
        self.check();
        if !self.model.stored.is_empty() {
            self.fail(format!("{} records were not sent", self.model.stored.len()));
        }
        let left: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // Whether a writer is dead is known on Unix only.
            .filter(|n| (cfg!(unix) && n.contains(".tmp-")) || n.contains(".parked-"))
            .collect();
        if !left.is_empty() {
            self.fail(format!("left behind: {left:?}"));
        }
    }
}

/// A cut of `bytes` (an append's lines) whose torn last line is `n` bytes
/// long, if one of its lines is longer than that.
fn torn_as_long_as(bytes: &[u8], n: usize) -> Option<u64> {
    let mut start = 0;
    while start < bytes.len() {
        let end = start + bytes[start..].iter().position(|&b| b == b'\n')?;
        if end - start > n {
            return Some((start + n) as u64);
        }
        start = end + 1;
    }
    None
}

/// Writes `bytes` into `path` at `at`, cutting what lies past it first (as
/// an append does).
fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    file.set_len(at).unwrap();
    file.seek(std::io::SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

/// Runs the case of `seed`: `steps` random steps, then the end.
fn run_case(seed: u64, steps: usize) {
    let mut case = Case::new(seed);
    for _ in 0..steps {
        case.step();
    }
    case.finish();
    // The processes end as killed ones: nothing more is flushed or sent.
    for proc in case.procs.drain(..) {
        proc.guard.shared.buffer.drain();
        proc.guard.flushed.store(true, Ordering::SeqCst);
    }
}

/// Runs `cases` cases from `first` (or the one of `TRACING_EMAIL_MODEL_SEED`).
fn run_cases(first: u64, cases: u64) {
    if let Some(seed) = env_u64("TRACING_EMAIL_MODEL_SEED") {
        return run_case(seed, 80);
    }
    let cases = env_u64("TRACING_EMAIL_MODEL_CASES").unwrap_or(cases);
    for i in 0..cases {
        let seed = first.wrapping_add(i).wrapping_mul(0x2545_F491_4F6C_DD1D);
        // A panic in the crate's code names the seed too.
        if let Err(panic) = std::panic::catch_unwind(|| run_case(seed, 80)) {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{text}\n(store model, seed {seed})");
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn store_model_a_few_hundred_cases() {
    run_cases(0, 300);
}

/// Many more cases: `cargo test -- --ignored model`.
#[test]
#[ignore = "long: run with `cargo test -- --ignored model`"]
fn store_model_many_cases() {
    run_cases(1_000_000, 20_000);
}
