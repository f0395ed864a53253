//! What P2e measures besides the rates: CPU time of the process, of a thread and of the broker,
//! and the store's commits.

use std::time::Instant;

use ccdc::store::{SledStore, Store};

/// Process CPU time (user + sys, all threads), seconds.
pub(super) fn cpu_s() -> f64 {
    rusage(libc::RUSAGE_SELF)
}

/// This thread's CPU time (user + sys), seconds.
pub(super) fn thread_cpu_s() -> f64 {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time (user + sys) of the broker this bench started (a child process named `tansu`),
/// seconds; 0 if there is none.
pub(super) fn broker_cpu_s() -> f64 {
    let me = std::process::id().to_string();
    let tick = 100.0; // USER_HZ
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(tansu)"))
        .filter_map(|stat| {
            let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            (f.get(1) == Some(&me.as_str())).then(|| {
                let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                (n(11) + n(12)) / tick
            })
        })
        .sum()
}

fn rusage(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The sled store, with the wall and CPU time of its commits added up (the poller's share of the
/// store; a commit runs on one blocking thread).
pub(super) struct Timed {
    pub inner: SledStore,
    pub commit_ns: std::sync::atomic::AtomicU64,
    pub commit_cpu_ns: std::sync::atomic::AtomicU64,
}

impl Store for Timed {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ccdc::store::StoreError> {
        self.inner.get(key)
    }
    fn commit_numbered(
        &self,
        writes: Vec<ccdc::store::Write>,
        events: Vec<Vec<u8>>,
    ) -> Result<Vec<u64>, ccdc::store::StoreError> {
        let (t, cpu) = (Instant::now(), thread_cpu_s());
        let r = self.inner.commit_numbered(writes, events);
        let add = |n: &std::sync::atomic::AtomicU64, v: u64| {
            n.fetch_add(v, std::sync::atomic::Ordering::Relaxed)
        };
        add(&self.commit_ns, t.elapsed().as_nanos() as u64);
        add(&self.commit_cpu_ns, ((thread_cpu_s() - cpu) * 1e9) as u64);
        r
    }
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, ccdc::store::StoreError> {
        self.inner.scan_prefix(prefix)
    }
    fn increment(&self, key: &str, by: u64) -> Result<u64, ccdc::store::StoreError> {
        self.inner.increment(key, by)
    }
    fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ccdc::store::OutboxEntry>, ccdc::store::StoreError> {
        self.inner.outbox_after(after, limit)
    }
    fn outbox_remove(&self, seqs: &[u64]) -> Result<(), ccdc::store::StoreError> {
        self.inner.outbox_remove(seqs)
    }
    fn outbox_len(&self) -> usize {
        self.inner.outbox_len()
    }
    fn flush(&self) -> Result<(), ccdc::store::StoreError> {
        self.inner.flush()
    }
}
