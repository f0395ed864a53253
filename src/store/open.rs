//! Opening the sled database: an owner-only directory, and a bounded wait for sled's file lock.
//!
//! sled 0.34 releases its exclusive lock on `<dir>/db` only when its background threads have
//! exited, a moment *after* the last handle is dropped (spacejam/sled#1234, #1289). A process that
//! reopens the store right after closing it, or a supervisor that starts the next ccdc while the
//! previous one is still exiting, would otherwise fail at random. So [`open_db`] retries for a
//! bounded time while the lock is held, and then fails with a message that says what holds it.
//! Any other error fails at once.

use std::path::Path;
use std::time::{Duration, Instant};

use super::StoreError;

/// How long [`open_db`] waits for another holder of the lock to let go.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// sled's page cache when the configuration does not say (`state_cache_mb`).
pub const DEFAULT_CACHE_BYTES: u64 = crate::config::DEFAULT_STATE_CACHE_MB << 20;

/// Open (or create) the sled database in `dir`, created owner-only (0700), with a page cache of
/// `cache_bytes`.
pub fn open_db(dir: &Path, wait: Duration, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let shown = dir.display().to_string();
    create_private_dir(dir).map_err(|e| StoreError::Open {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let config = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        // Commits flush explicitly; no periodic background flush (idle CPU).
        .flush_every_ms(None)
        // sled caches up to 1 GiB by default; ccdc's working set is snapshots and the outbox.
        // sled counts its cache by serialized size and evicts only on reads: the memory it holds
        // is about twice this (BENCHMARKS.md, item 20).
        .cache_capacity(cache_bytes);
    let deadline = Instant::now() + wait;
    let mut waits = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_held(&e) && Instant::now() < deadline => {
                waits += 1;
                let pause = crate::retry::jittered(
                    waits,
                    Duration::from_millis(5),
                    Duration::from_millis(100),
                );
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            }
            Err(e) if is_lock_held(&e) => {
                return Err(StoreError::Open {
                    path: shown,
                    reason: format!(
                        "the state directory is locked by another process (is another ccdc \
                         running with this state directory?); waited {} ms: {e}",
                        wait.as_millis()
                    ),
                })
            }
            Err(e) => {
                let reason = match &e {
                    sled::Error::Io(io) => super::handle::describe(io),
                    other => other.to_string(),
                };
                return Err(StoreError::Open {
                    path: shown,
                    reason,
                });
            }
        }
    }
}

/// sled reports a held lock as an `Io` error of kind `Other` with this message (sled 0.34
/// `config.rs`); nothing more specific is exposed.
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock on"))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_holder_that_lets_go_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let held = open_db(&path, Duration::ZERO, DEFAULT_CACHE_BYTES).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        let db = open_db(&path, Duration::from_secs(10), DEFAULT_CACHE_BYTES);
        release.join().unwrap();
        assert!(db.is_ok(), "{:?}", db.err());
        // It really had to wait: the lock was held for the first 300 ms.
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn a_lock_still_held_after_the_bound_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let _held = open_db(&path, Duration::ZERO, DEFAULT_CACHE_BYTES).unwrap();
        let err = open_db(&path, Duration::from_millis(200), DEFAULT_CACHE_BYTES)
            .expect_err("the lock is held throughout");
        let text = err.to_string();
        assert!(text.contains("locked by another process"), "{text}");
        assert!(text.contains("waited 200 ms"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn other_errors_fail_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory should be: not a lock problem, so no waiting.
        let path = dir.path().join("state");
        std::fs::write(&path, b"not a directory").unwrap();
        let started = Instant::now();
        let err = open_db(&path, Duration::from_secs(10), DEFAULT_CACHE_BYTES)
            .expect_err("a file, not a directory");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(
            !err.to_string().contains("locked by another process"),
            "{err}"
        );
    }
}
