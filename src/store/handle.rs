//! The sled database behind a [`super::SledStore`], and how it comes back after an I/O error.
//!
//! After a failed write (a full disk, say) sled fails every later write until the database is
//! opened again, and what the failed batch put in sled's memory may never reach the disk. So the
//! first I/O error of any operation *closes* the store: from then on every operation fails at once
//! with [`StoreError::Unavailable`] (retryable: pollers and the publisher back off), `/readyz` says
//! why ([`StoreHealth::Failing`]), and a thread reopens the database at the same path with back-off
//! ([`crate::retry::Backoff`], every [`REOPEN_BASE`] to [`REOPEN_CAP`]) until it opens — on a full
//! disk, once space is freed (sled cannot even open a full disk). The reopened database holds
//! exactly what was durable: the outbox count is counted again from it, and pollers reload their
//! state from it before their next diff.
//!
//! sled 0.34 cannot always close. When it fails to write a large page (a "blob", over a quarter of
//! its 512 KiB segment) it leaves an I/O buffer waiting for a write that never completes, and
//! dropping the database waits for it for ever (holding the directory's lock). If closing does not
//! finish within [`CLOSE_WAIT`] the store is unusable in this process: every operation fails with
//! [`StoreError::Unusable`] (not retryable), `/healthz` fails ([`StoreHealth::Unusable`]) and ccdc
//! exits with an error. What is on disk is consistent; the next start opens it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use super::sled_store::Open;
use super::{StoreError, StoreHealth};
use crate::retry::Backoff;

/// How long closing the database may take after an I/O error before the store is unusable.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// First delay before reopening; it doubles (jittered) up to [`REOPEN_CAP`].
pub const REOPEN_BASE: Duration = Duration::from_millis(250);
/// Longest delay between two attempts to reopen.
pub const REOPEN_CAP: Duration = Duration::from_secs(5);

/// The waits of the recovery (shorter in tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub close_wait: Duration,
    pub reopen_base: Duration,
    pub reopen_cap: Duration,
}

pub(super) const TIMING: Timing = Timing {
    close_wait: CLOSE_WAIT,
    reopen_base: REOPEN_BASE,
    reopen_cap: REOPEN_CAP,
};

/// What an operation was doing when it failed (for the reason shown).
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    Read,
    Write,
}

enum Status {
    Open,
    Failing {
        reason: String,
        since: Instant,
        attempts: u32,
        last: Option<String>,
    },
    Unusable {
        reason: String,
    },
}

/// Outbox segments allocated but not yet durable: readers see only segments below the lowest
/// of them, so an event never leaves before the commit that made it is on disk (a commit whose
/// flush fails is gone after the reopen: publishing its events would invent them).
#[derive(Debug, Default)]
pub(super) struct Unflushed {
    ids: std::collections::BTreeSet<u64>,
    /// One past the highest id allocated since the database was opened (`None`: none yet).
    next: Option<u64>,
}

impl Unflushed {
    pub fn insert(&mut self, id: u64) {
        self.ids.insert(id);
        self.next = Some(self.next.map_or(id, |n| n.max(id)).saturating_add(1));
    }

    pub fn remove(&mut self, ids: &[u64]) {
        for id in ids {
            self.ids.remove(id);
        }
    }

    /// Segments with an id below this are durable (every id allocated since the open, and every
    /// segment that was there at the open).
    pub fn bound(&self) -> u64 {
        self.ids.first().copied().or(self.next).unwrap_or(u64::MAX)
    }
}

/// The open database (or none while it is reopened), its status and the outbox's bookkeeping.
pub(super) struct Handle {
    dir: PathBuf,
    cache_bytes: u64,
    timing: Timing,
    db: RwLock<Option<Open>>,
    status: Mutex<Status>,
    pub outbox_len: AtomicUsize,
    pub unflushed: Mutex<Unflushed>,
    /// Serializes the read-modify-write of delivered-event bitmaps.
    pub acks: Mutex<()>,
    /// Test hooks run after a commit's batch is applied and before its flush, one per commit.
    #[cfg(test)]
    pub before_flush: Mutex<std::collections::VecDeque<Hook>>,
    /// Test gate: each reopen attempt first waits for a message (or for the sender to go).
    #[cfg(test)]
    pub reopen_gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

#[cfg(test)]
pub(super) type Hook = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks can leave the data half-changed: keep going after a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handle {
    pub fn new(dir: &Path, cache_bytes: u64, open: Open, outbox: usize, timing: Timing) -> Self {
        Handle {
            dir: dir.to_path_buf(),
            cache_bytes,
            timing,
            db: RwLock::new(Some(open)),
            status: Mutex::new(Status::Open),
            outbox_len: AtomicUsize::new(outbox),
            unflushed: Mutex::new(Unflushed::default()),
            acks: Mutex::new(()),
            #[cfg(test)]
            before_flush: Mutex::new(Default::default()),
            #[cfg(test)]
            reopen_gate: Mutex::new(None),
        }
    }

    /// Run `op` on the open database. Its I/O error closes the store and starts reopening it.
    pub fn run<T>(
        self: &Arc<Self>,
        access: Access,
        op: impl FnOnce(&Open) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let result = {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(open) => op(open),
                None => Err(self
                    .refusal()
                    .unwrap_or_else(|| StoreError::Unavailable("being reopened".into()))),
            }
        };
        match result {
            Err(StoreError::Sled(sled::Error::Io(io))) => Err(self.failed(access, &io)),
            other => other,
        }
    }

    /// Why operations are refused now, if they are.
    fn refusal(&self) -> Option<StoreError> {
        match &*lock(&self.status) {
            Status::Open => None,
            Status::Failing { reason, .. } => Some(StoreError::Unavailable(reason.clone())),
            Status::Unusable { reason } => Some(StoreError::Unusable(reason.clone())),
        }
    }

    pub fn health(&self) -> StoreHealth {
        match &*lock(&self.status) {
            Status::Open => StoreHealth::Ok,
            Status::Failing {
                reason,
                since,
                attempts,
                last,
            } => StoreHealth::Failing(format!(
                "state store: {reason} ({} s ago); closed, reopening it{}",
                since.elapsed().as_secs(),
                match last {
                    Some(e) => format!(" (attempt {attempts} failed: {e})"),
                    None => String::new(),
                }
            )),
            Status::Unusable { reason } => StoreHealth::Unusable(format!(
                "state store unusable in this process: {reason}; restart ccdc (what is on disk is consistent)"
            )),
        }
    }

    /// An operation failed with `io`: close the store (once) and reopen it in the background.
    fn failed(self: &Arc<Self>, access: Access, io: &std::io::Error) -> StoreError {
        let what = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        let reason = format!("{what} failed: {}", describe(io));
        let mut status = lock(&self.status);
        if !matches!(*status, Status::Open) {
            return StoreError::Io(reason);
        }
        *status = Status::Failing {
            reason: reason.clone(),
            since: Instant::now(),
            attempts: 0,
            last: None,
        };
        drop(status);
        tracing::error!(%reason, dir = %self.dir.display(), "state store I/O error: the store is closed and reopened in the background; nothing is committed or published meanwhile");
        metrics::counter!("ccdc_store_failures_total").increment(1);
        metrics::gauge!("ccdc_store_failing").set(1.0);
        let weak = Arc::downgrade(self);
        let started = std::thread::Builder::new()
            .name("ccdc-store-reopen".into())
            .spawn(move || recover(weak));
        if let Err(e) = started {
            self.unusable(format!("cannot start the thread that reopens it: {e}"));
        }
        StoreError::Io(reason)
    }

    /// Take the database out and drop it, within `close_wait`.
    fn close(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.timing.close_wait;
        let open = loop {
            match self.db.try_write() {
                Ok(mut g) => break g.take(),
                Err(TryLockError::Poisoned(p)) => break p.into_inner().take(),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(format!(
                        "an operation on it did not finish within {} s of the I/O error (sled waits for a write that never completes)",
                        self.timing.close_wait.as_secs()
                    ))
                }
            }
        };
        let Some(open) = open else { return Ok(()) };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ccdc-store-close".into())
            .spawn(move || {
                drop(open);
                let _ = tx.send(());
            })
            .map_err(|e| format!("cannot start the thread that closes it: {e}"))?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| {
                format!(
                    "sled did not close the database within {} s of the I/O error (after a failed write of a large page sled waits for ever)",
                    self.timing.close_wait.as_secs()
                )
            })
    }

    /// Open the database again and let operations in.
    fn reopen(&self) -> Result<(), StoreError> {
        let (open, outbox) = Open::at(&self.dir, self.cache_bytes)?;
        {
            let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
            // No operation runs: counted and reset before any can see the database.
            self.outbox_len.store(outbox, Ordering::SeqCst);
            *lock(&self.unflushed) = Unflushed::default();
            *db = Some(open);
        }
        let was = std::mem::replace(&mut *lock(&self.status), Status::Open);
        if let Status::Failing {
            reason,
            since,
            attempts,
            ..
        } = was
        {
            tracing::info!(%reason, down_ms = since.elapsed().as_millis() as u64, attempts = attempts + 1, outbox, "state store reopened: committing and publishing again");
        }
        metrics::counter!("ccdc_store_reopened_total").increment(1);
        metrics::gauge!("ccdc_store_failing").set(0.0);
        Ok(())
    }

    fn reopen_failed(&self, e: &StoreError, retry_in: Duration) {
        if let Status::Failing { attempts, last, .. } = &mut *lock(&self.status) {
            *attempts += 1;
            *last = Some(e.to_string());
            tracing::warn!(error = %e, attempts = *attempts, retry_in_ms = retry_in.as_millis() as u64, "state store: reopening failed; trying again");
        }
    }

    fn unusable(&self, why: String) {
        let mut status = lock(&self.status);
        let reason = match &*status {
            Status::Failing { reason, .. } => format!("{reason}; {why}"),
            _ => why,
        };
        tracing::error!(%reason, "state store unusable in this process: restart ccdc (what is on disk is consistent)");
        *status = Status::Unusable { reason };
    }

    /// Run the next test hook, if any (after a commit's batch is applied, before its flush).
    #[cfg(test)]
    pub fn hook(&self) -> Result<(), StoreError> {
        let next = lock(&self.before_flush).pop_front();
        next.map_or(Ok(()), |h| h())
    }

    #[cfg(test)]
    pub fn with_open<T>(&self, f: impl FnOnce(&Open) -> T) -> Option<T> {
        self.db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(f)
    }
}

/// Close the store, then reopen it with back-off until it opens (or the store is dropped).
fn recover(weak: Weak<Handle>) {
    let Some(handle) = weak.upgrade() else { return };
    if let Err(why) = handle.close() {
        handle.unusable(why);
        return;
    }
    let mut backoff = Backoff::new(handle.timing.reopen_base, handle.timing.reopen_cap);
    let mut wait = backoff.fail();
    drop(handle);
    loop {
        std::thread::sleep(wait);
        let Some(handle) = weak.upgrade() else { return };
        #[cfg(test)]
        if let Some(gate) = lock(&handle.reopen_gate).as_ref() {
            let _ = gate.recv();
        }
        match handle.reopen() {
            Ok(()) => return,
            Err(e) => {
                wait = backoff.fail();
                handle.reopen_failed(&e, wait);
            }
        }
    }
}

/// An I/O error as an operator reads it. sled wraps some OS errors in a custom error holding the
/// OS error's debug text (`Os { code: 28, .. }`): shown as the OS error itself.
pub(super) fn describe(io: &std::io::Error) -> String {
    if io.raw_os_error().is_some() {
        return io.to_string();
    }
    let text = io.to_string();
    text.split("code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .map_or(text.clone(), |code| {
            std::io::Error::from_raw_os_error(code).to_string()
        })
}
