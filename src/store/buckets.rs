//! How large snapshots are laid out in the store, so that a cycle in which 1 % of the items changed
//! writes a small part of the state, not the whole snapshot.
//!
//! Items are grouped into [`BUCKETS`] buckets by a stable hash of their key; a commit rewrites only
//! the buckets holding a changed, new or removed item. One value per item would write the least,
//! but sled spends ~6 µs and several hundred bytes of memory per entry in a batch, and the first
//! snapshot (60,000 items) would be 60,000 entries; buckets keep that to at most 4,096.
//!
//! An interactions snapshot stored under state key `K` is:
//! - `K` → a header `{"format":"buckets-v1","observed_at":…,"entries":N}`;
//! - `K/b/<bucket>` → the bucket's `[key, interaction]` pairs, as JSON.
//!
//! Header and buckets change in the same atomic commit as the outbox events derived from them, so
//! the header's entry count is a consistency check on load. A state written by an earlier version as
//! one JSON value under `K` is still read; the next commit rewrites it in this layout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{decode_state, encode_state, Store, StoreError, Write};
use crate::diff::{merge, ActiveInteraction, InteractionKey, InteractionSnapshot, Merged};

const FORMAT: &str = "buckets-v1";

/// Buckets per snapshot. Part of the layout: changing it needs a new format name.
pub const BUCKETS: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    observed_at: i64,
    entries: usize,
}

fn buckets_prefix(key: &str) -> String {
    format!("{key}/b/")
}

fn bucket_key(key: &str, bucket: usize) -> String {
    format!("{key}/b/{bucket:04}")
}

/// A stable hash (FNV-1a; the same in every process and version) of the key, mod [`BUCKETS`].
fn bucket_of(k: &InteractionKey) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = k
        .interaction_id
        .bytes()
        .chain([0xff])
        .chain(k.agent_id.bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % BUCKETS as u64) as usize
}

/// The writes that move the stored state from `stored` (`None`: nothing stored in this layout yet)
/// to `current`: every bucket in which something changed, and the header.
pub fn interaction_writes(
    key: &str,
    stored: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
) -> Vec<Write> {
    let empty = BTreeMap::new();
    let before = stored.map_or(&empty, |s| &s.interactions);
    type Bucket<'a> = Option<Vec<(&'a InteractionKey, &'a ActiveInteraction)>>;
    let mut touched: Vec<Bucket> = vec![None; BUCKETS];
    for m in merge(before, &current.interactions) {
        let k = match m {
            Merged::Left(k, _) | Merged::Right(k, _) => k,
            Merged::Both(k, a, b) if a != b => k,
            Merged::Both(..) => continue,
        };
        touched[bucket_of(k)].get_or_insert_with(Vec::new);
    }
    if touched.iter().any(Option::is_some) {
        for (k, v) in &current.interactions {
            if let Some(items) = &mut touched[bucket_of(k)] {
                items.push((k, v));
            }
        }
    }
    let mut writes: Vec<Write> = touched
        .into_iter()
        .enumerate()
        .filter_map(|(b, items)| {
            let items = items?;
            Some(match items.is_empty() {
                true => Write::Delete(bucket_key(key, b)),
                false => Write::Put(bucket_key(key, b), encode_state(&items)),
            })
        })
        .collect();
    writes.push(Write::Put(
        key.to_string(),
        encode_state(&Header {
            format: FORMAT.into(),
            observed_at: current.observed_at,
            entries: current.interactions.len(),
        }),
    ));
    writes
}

/// The snapshot stored under `key`, and whether it is stored in this layout (`false`: a whole-value
/// state of an earlier version, to be rewritten bucket by bucket at the next commit).
pub fn load_interactions(
    store: &dyn Store,
    key: &str,
) -> Result<Option<(InteractionSnapshot, bool)>, StoreError> {
    let Some(head) = store.get(key)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let header = match serde_json::from_slice::<Header>(&head) {
        Ok(h) if h.format == FORMAT => h,
        Ok(h) => return Err(corrupt(format!("unknown state format `{}`", h.format))),
        Err(_) => return Ok(Some((decode_state(key, &head)?, false))),
    };
    let mut interactions = BTreeMap::new();
    for (k, v) in store.scan_prefix(&buckets_prefix(key))? {
        let items: Vec<(InteractionKey, ActiveInteraction)> = decode_state(&k, &v)?;
        interactions.extend(items);
    }
    if interactions.len() != header.entries {
        return Err(corrupt(format!(
            "the header counts {} entries, the store holds {}",
            header.entries,
            interactions.len()
        )));
    }
    Ok(Some((
        InteractionSnapshot {
            observed_at: header.observed_at,
            interactions,
        },
        true,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::collections::BTreeSet;

    fn key(i: &str, a: &str) -> InteractionKey {
        InteractionKey {
            interaction_id: i.to_string(),
            agent_id: a.to_string(),
        }
    }

    fn snap(at: i64, items: &[(&str, &str, &str)]) -> InteractionSnapshot {
        InteractionSnapshot {
            observed_at: at,
            interactions: items
                .iter()
                .map(|(i, a, s)| {
                    (
                        key(i, a),
                        ActiveInteraction {
                            subject: Some(s.to_string()),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_delta_is_written_and_the_state_round_trips() {
        let store = MemoryStore::default();
        let s1 = snap(1, &[("c1", "a", "x"), ("c2", "a", "y"), ("c3", "b", "z")]);
        let w1 = interaction_writes("ops/interactions", None, &s1);
        let buckets: BTreeSet<usize> = s1.interactions.keys().map(bucket_of).collect();
        assert_eq!(w1.len(), buckets.len() + 1, "the buckets + header");
        store.commit(w1.clone(), vec![]).unwrap();
        assert_eq!(
            load_interactions(&store, "ops/interactions").unwrap(),
            Some((s1.clone(), true))
        );

        // c1 unchanged, c2 changed, c3 gone, c4 new.
        let s2 = snap(2, &[("c1", "a", "x"), ("c2", "a", "Y"), ("c4", "b", "w")]);
        let w2 = interaction_writes("ops/interactions", Some(&s1), &s2);
        let written: BTreeSet<String> = w2
            .iter()
            .map(|w| match w {
                Write::Put(k, _) | Write::Delete(k) => k.clone(),
            })
            .collect();
        let expected: BTreeSet<String> = ["c2", "c3", "c4"]
            .iter()
            .map(|i| {
                let agent = if *i == "c2" { "a" } else { "b" };
                bucket_key("ops/interactions", bucket_of(&key(i, agent)))
            })
            .chain(["ops/interactions".to_string()])
            .collect();
        assert_eq!(
            written, expected,
            "c2 changed, c3 gone, c4 new; c1 untouched"
        );
        store.commit(w2.clone(), vec![]).unwrap();
        assert_eq!(
            load_interactions(&store, "ops/interactions").unwrap(),
            Some((s2, true))
        );
        assert_eq!(load_interactions(&store, "other").unwrap(), None);
    }

    #[test]
    fn ids_with_any_characters_round_trip() {
        let store = MemoryStore::default();
        let s = snap(
            1,
            &[
                ("1:2", "3", "p"),
                ("1", ":23", "q"),
                ("1\u{ff}", "/b/", "r"),
            ],
        );
        store
            .commit(interaction_writes("k", None, &s), vec![])
            .unwrap();
        assert_eq!(load_interactions(&store, "k").unwrap(), Some((s, true)));
    }

    #[test]
    fn a_whole_value_state_of_an_earlier_version_is_read_and_then_rewritten() {
        let store = MemoryStore::default();
        let s = snap(5, &[("c1", "a", "x")]);
        store
            .commit(vec![Write::Put("k".into(), encode_state(&s))], vec![])
            .unwrap();
        let (loaded, current_layout) = load_interactions(&store, "k").unwrap().unwrap();
        assert_eq!((&loaded, current_layout), (&s, false));
        // Not in this layout: the next commit writes every entry.
        store
            .commit(interaction_writes("k", None, &loaded), vec![])
            .unwrap();
        assert_eq!(load_interactions(&store, "k").unwrap(), Some((s, true)));
    }

    #[test]
    fn a_header_that_disagrees_with_the_entries_is_an_error() {
        let store = MemoryStore::default();
        let s = snap(1, &[("c1", "a", "x"), ("c2", "a", "y")]);
        store
            .commit(interaction_writes("k", None, &s), vec![])
            .unwrap();
        let first = bucket_of(s.interactions.keys().next().unwrap());
        store
            .commit(vec![Write::Delete(bucket_key("k", first))], vec![])
            .unwrap();
        let e = load_interactions(&store, "k").unwrap_err().to_string();
        assert!(e.contains("2 entries") && e.contains("holds"), "{e}");
    }

    #[test]
    fn one_percent_churn_rewrites_a_fraction_of_the_buckets() {
        let store = MemoryStore::default();
        let ids: Vec<String> = (0..20_000).map(|i| format!("conn-{i}")).collect();
        let items: Vec<(&str, &str, &str)> = ids.iter().map(|i| (i.as_str(), "a", "s")).collect();
        let s1 = snap(1, &items);
        let first = interaction_writes("k", None, &s1);
        assert!(
            first.len() > BUCKETS * 9 / 10,
            "20,000 items fill nearly every bucket"
        );
        store.commit(first.clone(), vec![]).unwrap();
        let mut s2 = s1.clone();
        s2.observed_at = 2;
        for i in 0..100 {
            s2.interactions.remove(&key(&ids[i * 7], "a"));
            s2.interactions
                .insert(key(&format!("new-{i}"), "b"), ActiveInteraction::default());
        }
        let delta = interaction_writes("k", Some(&s1), &s2);
        assert!(delta.len() <= 201, "{} writes for 200 changes", delta.len());
        store.commit(delta.clone(), vec![]).unwrap();
        assert_eq!(load_interactions(&store, "k").unwrap(), Some((s2, true)));
    }
}
