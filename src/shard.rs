//! Sources shared across replicas: N processes of the same configuration split the sources between
//! them by **rendezvous (highest-random-weight) hashing** of each source's name over the replica
//! indexes `0..N`. Replica `i` polls exactly the sources whose highest weight is its own; every
//! source has exactly one owner, and when N changes only the sources whose winner changes move
//! (about 1/N of them when one replica is added; nothing moves between the replicas that stay).
//!
//! The weight of `(source, i)` is XXH3-64 (`xxhash-rust`, a fixed algorithm whose output is part of
//! its specification, unlike Rust's `DefaultHasher`) of the source name, a 0x1F separator and `i` as
//! 4 big-endian bytes, with the fixed seed [`SEED`]. Ties (never seen; 2⁻⁶⁴) go to the lower index.
//! Changing any of this moves sources between replicas: it is frozen like the event id recipes.
//!
//! Which replica a process is: [`resolve`] (`--replica I/N`, `CCDC_REPLICA=I/N`, or the StatefulSet
//! form `CCDC_REPLICAS=N` with `CCDC_REPLICA_INDEX=I` or `CCDC_REPLICA_FROM_HOSTNAME=true`, the index
//! being the pod name's ordinal suffix, `ccdc-3` → 3). Indexes are 0-based, like StatefulSet ordinals.
//!
//! A replica keeps its own state directory. When it takes over a source it did not own in its last
//! run ([`forget_taken_over`]), its stored snapshots of that source (from an earlier ownership) are
//! dropped: they are stale, and diffing against them would publish `ENDED` for interactions another
//! replica already reported. The first poll then publishes `initial` events, as for a new source.

use std::fmt;

use crate::store::{Store, StoreError, Write};

/// Seed of the rendezvous weights. Part of the assignment: never change it.
pub const SEED: u64 = 0x6363_6463_5f73_6864; // "ccdc_shd"

/// The most replicas a deployment may have.
pub const MAX_REPLICAS: u32 = 10_000;

/// Why the replica identity given is not usable (fatal: the command line or environment is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("{from} = `{value}`: {reason}")]
    Invalid {
        from: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Conflict(String),
}

fn invalid(from: &'static str, value: &str, reason: impl Into<String>) -> ShardError {
    ShardError::Invalid {
        from,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Replica `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Replica {
    index: u32,
    count: u32,
}

impl Replica {
    /// One process polling every source (no sharding).
    pub const SINGLE: Replica = Replica { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Replica, String> {
        if count == 0 || count > MAX_REPLICAS {
            return Err(format!("the replica count must be 1..={MAX_REPLICAS}"));
        }
        if index >= count {
            return Err(format!(
                "the index must be below the count (0-based: 0..={})",
                count - 1
            ));
        }
        Ok(Replica { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Does this replica poll `source`?
    pub fn owns(self, source: &str) -> bool {
        owner(source, self.count) == self.index
    }

    /// `I/N`, as `--replica` takes it.
    pub fn parse(from: &'static str, text: &str) -> Result<Replica, ShardError> {
        let (i, n) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| invalid(from, text, "expected INDEX/COUNT, e.g. 2/5 (0-based)"))?;
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| invalid(from, text, format!("`{s}` is not a whole number")))
        };
        Replica::new(num(i)?, num(n)?).map_err(|r| invalid(from, text, r))
    }
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The rendezvous weight of `source` on replica `index`.
pub fn weight(source: &str, index: u32) -> u64 {
    let mut bytes = Vec::with_capacity(source.len() + 5);
    bytes.extend_from_slice(source.as_bytes());
    bytes.push(0x1f);
    bytes.extend_from_slice(&index.to_be_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, SEED)
}

/// The replica (of `count`) that owns `source`: the highest weight, the lower index on a tie.
pub fn owner(source: &str, count: u32) -> u32 {
    let mut best = (0, weight(source, 0));
    for i in 1..count {
        let w = weight(source, i);
        if w > best.1 {
            best = (i, w);
        }
    }
    best.0
}

/// The environment variables [`resolve`] reads (a function, so tests give their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Which replica this process is. `flag`: `--replica`; else `CCDC_REPLICA=I/N`; else
/// `CCDC_REPLICAS=N` with the index from `CCDC_REPLICA_INDEX` (e.g. the downward API's
/// `metadata.labels['apps.kubernetes.io/pod-index']`) or, with `CCDC_REPLICA_FROM_HOSTNAME=true`,
/// the ordinal at the end of the host name (`HOSTNAME`; a StatefulSet pod `ccdc-3` is replica 3).
/// `None`: no replica given, the process polls every source. Giving both forms is an error.
pub fn resolve(flag: Option<&str>, env: Env<'_>) -> Result<Option<Replica>, ShardError> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let explicit = match (flag, set("CCDC_REPLICA")) {
        (Some(f), _) => Some(Replica::parse("--replica", f)?),
        (None, Some(v)) => Some(Replica::parse("CCDC_REPLICA", &v)?),
        (None, None) => None,
    };
    let Some(count) = set("CCDC_REPLICAS") else {
        for k in ["CCDC_REPLICA_INDEX", "CCDC_REPLICA_FROM_HOSTNAME"] {
            if set(k).is_some() {
                return Err(ShardError::Conflict(format!(
                    "{k} is set but CCDC_REPLICAS (the replica count) is not"
                )));
            }
        }
        return Ok(explicit);
    };
    if explicit.is_some() {
        return Err(ShardError::Conflict(
            "both --replica (or CCDC_REPLICA) and CCDC_REPLICAS are given: use one form".into(),
        ));
    }
    let n = count
        .trim()
        .parse::<u32>()
        .map_err(|_| invalid("CCDC_REPLICAS", &count, "not a whole number"))?;
    let index = match (set("CCDC_REPLICA_INDEX"), set("CCDC_REPLICA_FROM_HOSTNAME")) {
        (Some(_), Some(_)) => {
            return Err(ShardError::Conflict(
                "both CCDC_REPLICA_INDEX and CCDC_REPLICA_FROM_HOSTNAME are set: use one".into(),
            ))
        }
        (Some(i), None) => i
            .trim()
            .parse::<u32>()
            .map_err(|_| invalid("CCDC_REPLICA_INDEX", &i, "not a whole number"))?,
        (None, Some(on)) => {
            if !matches!(on.trim(), "true" | "1" | "yes") {
                return Err(invalid(
                    "CCDC_REPLICA_FROM_HOSTNAME",
                    &on,
                    "expected true (or leave it unset)",
                ));
            }
            let host = env("HOSTNAME").unwrap_or_default();
            ordinal(&host).ok_or_else(|| {
                invalid(
                    "HOSTNAME",
                    &host,
                    "no ordinal at the end of the host name (a StatefulSet pod is named `<set>-<ordinal>`)",
                )
            })?
        }
        (None, None) => return Err(ShardError::Conflict(
            "CCDC_REPLICAS is set: set CCDC_REPLICA_INDEX or CCDC_REPLICA_FROM_HOSTNAME=true too"
                .into(),
        )),
    };
    Replica::new(index, n)
        .map(Some)
        .map_err(|r| invalid("CCDC_REPLICAS", &count, format!("replica {index}: {r}")))
}

/// The ordinal of a StatefulSet pod name (`ccdc-3` → 3).
fn ordinal(host: &str) -> Option<u32> {
    let (_, n) = host.trim().rsplit_once('-')?;
    n.parse().ok().filter(|_| !n.starts_with('+'))
}

/// Keep in `config.sources` only the sources `replica` polls; log them and set
/// `ccdc_replica_sources`. Returns their names.
pub fn select(config: &mut crate::config::Config, replica: Replica) -> Vec<String> {
    let total = config.sources.len();
    config.sources.retain(|s| replica.owns(s.name()));
    let owned: Vec<String> = config
        .sources
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    metrics::gauge!("ccdc_replica_sources", "replica" => replica.index().to_string(), "replicas" => replica.count().to_string())
        .set(owned.len() as f64);
    if replica != Replica::SINGLE {
        tracing::info!(replica = %replica, owned = owned.len(), of = total, sources = %owned.join(","), "this replica polls these sources (rendezvous hashing of the source names)");
        if owned.is_empty() {
            tracing::warn!(replica = %replica, of = total, "this replica owns none of the configured sources: it polls nothing (more replicas than sources?)");
        }
    }
    owned
}

/// The state key of the replica identity the last run had.
pub const ASSIGNMENT_KEY: &str = "replica/assignment";

/// Drop the stored snapshots of each source in `owned` that the last run (whose identity is stored
/// under [`ASSIGNMENT_KEY`]; none stored: an unsharded run, which owned everything) did not own, and
/// store `replica` as the last identity — one commit. Returns the sources whose snapshots were
/// dropped. Report cursors are kept: the newest of the local cursor and the Kafka checkpoint wins.
pub fn forget_taken_over(
    store: &dyn Store,
    replica: Replica,
    owned: &[&str],
) -> Result<Vec<String>, StoreError> {
    let last = match store.get(ASSIGNMENT_KEY)? {
        Some(b) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            Replica::parse("state", &text).map_err(|e| StoreError::Corrupt {
                key: ASSIGNMENT_KEY.into(),
                reason: e.to_string(),
            })?
        }
        None => Replica::SINGLE,
    };
    let mut writes = Vec::new();
    let mut dropped = Vec::new();
    for source in owned.iter().filter(|s| !last.owns(s)) {
        // Source names have no `/`: this prefix holds exactly this source's snapshots.
        let keys = store.scan_prefix(&format!("{source}/"))?;
        if !keys.is_empty() {
            dropped.push(source.to_string());
            writes.extend(keys.into_iter().map(|(k, _)| Write::Delete(k)));
        }
    }
    if last != replica || !writes.is_empty() {
        writes.push(Write::Put(
            ASSIGNMENT_KEY.into(),
            replica.to_string().into_bytes(),
        ));
        store.commit(writes, Vec::new())?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests;
