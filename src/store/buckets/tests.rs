use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::store::{encode_state, MemoryStore};

fn key(i: &str, a: &str) -> InteractionKey {
    InteractionKey {
        interaction_id: i.to_string(),
        agent_id: a.to_string(),
    }
}

fn snap(at: i64, items: &[(&str, &str, &str)]) -> InteractionSnapshot {
    InteractionSnapshot {
        held: Default::default(),
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

/// `n` interactions `conn-<i>` at agent `a`.
fn many(at: i64, n: usize) -> InteractionSnapshot {
    let ids: Vec<String> = (0..n).map(|i| format!("conn-{i}")).collect();
    let items: Vec<(&str, &str, &str)> = ids.iter().map(|i| (i.as_str(), "a", "s")).collect();
    snap(at, &items)
}

/// `s` at `at` with `gone` removed and `new` added.
fn churn(s: &InteractionSnapshot, at: i64, gone: &[String], new: &[String]) -> InteractionSnapshot {
    let mut pairs: Vec<_> = s
        .interactions
        .iter()
        .filter(|it| !gone.iter().any(|g| g == it.interaction_id))
        .map(|it| (it.key(), it.to_active()))
        .collect();
    pairs.extend(
        new.iter()
            .map(|n| (key(n, "b"), ActiveInteraction::default())),
    );
    InteractionSnapshot {
        held: Default::default(),
        observed_at: at,
        interactions: pairs.into_iter().collect(),
    }
}

fn keys_written(w: &[Write]) -> BTreeSet<String> {
    w.iter()
        .map(|w| match w {
            Write::Put(k, _) | Write::Delete(k) => k.clone(),
        })
        .collect()
}

fn keys_stored(store: &MemoryStore) -> BTreeSet<String> {
    store
        .scan_prefix("")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Write `next` against `stored` (as the feed does), commit, and load it back.
fn step(
    store: &MemoryStore,
    stored: Option<&InteractionSnapshot>,
    next: &InteractionSnapshot,
) -> Vec<Write> {
    let w = interaction_writes("k", stored, next);
    store.commit(w.clone(), vec![]).unwrap();
    let (loaded, layout) = load_interactions(store, "k").unwrap().unwrap();
    assert_eq!((&loaded, layout), (next, true));
    assert_eq!(
        loaded.interactions.stored(),
        next.interactions.stored(),
        "the same note"
    );
    w
}

#[test]
fn a_first_snapshot_is_a_base_of_a_few_chunks_and_a_change_is_one_delta() {
    let store = MemoryStore::default();
    let s1 = many(1, 20_000);
    let w1 = step(&store, None, &s1);
    assert_eq!(w1.len() as u64, CHUNKS + 1, "every chunk, then the header");
    // 100 gone, 100 new: one delta and the header.
    let gone: Vec<String> = (0..100).map(|i| format!("conn-{}", i * 7)).collect();
    let new: Vec<String> = (0..100).map(|i| format!("new-{i}")).collect();
    let s2 = churn(&s1, 2, &gone, &new);
    let w2 = step(&store, Some(&s1), &s2);
    assert_eq!(w2.len(), 2, "{:?}", keys_written(&w2));
    let delta_bytes = match &w2[0] {
        Write::Put(k, v) if k.contains("/d/") => v.len(),
        other => panic!("a delta first, not {other:?}"),
    };
    assert!(delta_bytes < 5_000, "200 changes in {delta_bytes} bytes");
    // Nothing changed: the header alone (its time moves).
    let mut s3 = s2.clone();
    s3.observed_at = 3;
    s3.interactions = s2
        .interactions
        .iter()
        .map(|i| (i.key(), i.to_active()))
        .collect();
    let w3 = step(&store, Some(&s2), &s3);
    assert_eq!(keys_written(&w3), BTreeSet::from(["k".to_string()]));
}

#[test]
fn a_long_log_is_folded_into_a_new_base_and_the_old_one_deleted() {
    let store = MemoryStore::default();
    let mut s = many(1, 2_000);
    step(&store, None, &s);
    let mut rebased = 0;
    for round in 0..12 {
        // 300 changes a round: the log's budget (1,024) is spent after three.
        let gone: Vec<String> = (0..150)
            .map(|i| format!("conn-{}", round * 150 + i))
            .collect();
        let new: Vec<String> = (0..150).map(|i| format!("new-{round}-{i}")).collect();
        let next = churn(&s, 2 + round as i64, &gone, &new);
        let w = step(&store, Some(&s), &next);
        if w.len() > 2 {
            rebased += 1;
            let deleted = w.iter().filter(|w| matches!(w, Write::Delete(_))).count();
            assert!(deleted as u64 >= CHUNKS, "the old base and log are deleted");
        }
        s = next;
    }
    assert!(
        (3..=4).contains(&rebased),
        "{rebased} new bases in 12 rounds"
    );
    // Only one generation is stored: its chunks, its log, the header.
    let gens: BTreeSet<String> = keys_stored(&store)
        .into_iter()
        .filter(|k| k != "k")
        .map(|k| k[4..20].to_string())
        .collect();
    assert_eq!(gens.len(), 1, "{gens:?}");
}

#[test]
fn every_field_and_any_characters_round_trip_in_a_base_and_in_a_delta() {
    let store = MemoryStore::default();
    let full = ActiveInteraction {
        subject: Some("Hola \"Ana\" ☎".into()),
        from_name: Some(String::new()),
        vendor_timestamp: Some(-1),
        vendor_timestamp_raw: Some("2026-11-21 10:15:00".into()),
        first_seen: Some(1_795_274_100_000),
        seen_after: Some(i64::MIN),
    };
    let s1 = snap(
        1,
        &[
            ("1:2", "3", "p"),
            ("1", ":23", "q"),
            ("1\u{ff}", "/b/", "r"),
        ],
    );
    step(&store, None, &s1);
    let mut pairs: Vec<_> = s1
        .interactions
        .iter()
        .map(|i| (i.key(), i.to_active()))
        .collect();
    pairs.push((key("full", "a"), full));
    pairs.push((key("none", "a"), ActiveInteraction::default()));
    pairs[0].1.subject = None;
    let s2 = InteractionSnapshot {
        held: Default::default(),
        observed_at: 2,
        interactions: pairs.into_iter().collect(),
    };
    let w = step(&store, Some(&s1), &s2);
    assert_eq!(w.len(), 2, "one delta");
    // The same as a base.
    let fresh = MemoryStore::default();
    let mut again = s2.clone();
    again.interactions = s2
        .interactions
        .iter()
        .map(|i| (i.key(), i.to_active()))
        .collect();
    step(&fresh, None, &again);
}

#[test]
fn a_snapshot_not_known_to_be_stored_gets_a_new_base() {
    let store = MemoryStore::default();
    let s1 = many(1, 50);
    step(&store, None, &s1);
    // Built by hand: no note of how it is stored, so no delta can be trusted against it.
    let unknown = many(1, 50);
    assert_eq!(unknown.interactions.stored(), None);
    let s2 = many(2, 60);
    let w = step(&store, Some(&unknown), &s2);
    assert!(w.len() > 2, "a new base");
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
    // Not in this layout: the feed passes no stored snapshot, and the next commit writes a base.
    step(&store, None, &loaded);
}

/// What format 1 wrote (JSON buckets by the low 12 bits of the FNV-1a hash).
fn v1_writes(key: &str, s: &InteractionSnapshot) -> Vec<Write> {
    let mut buckets: BTreeMap<usize, Vec<(InteractionKey, ActiveInteraction)>> = BTreeMap::new();
    let mut pairs: Vec<_> = s
        .interactions
        .iter()
        .map(|i| (i.key(), i.to_active()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in pairs {
        let h = crate::diff::snapshot::key_hash(&k.interaction_id, &k.agent_id);
        let b = (h % BUCKETS_V1 as u64) as usize;
        buckets.entry(b).or_default().push((k, v));
    }
    let mut w: Vec<Write> = buckets
        .iter()
        .map(|(b, items)| Write::Put(format!("{key}/b/{b:04}"), encode_state(items)))
        .collect();
    let header = format!(
        r#"{{"format":"buckets-v1","observed_at":{},"entries":{}}}"#,
        s.observed_at,
        s.interactions.len()
    );
    w.push(Write::Put(key.into(), header.into_bytes()));
    w
}

#[test]
fn a_json_bucket_state_of_format_1_is_read_and_replaced_by_a_base() {
    let store = MemoryStore::default();
    let s1 = many(1, 300);
    store.commit(v1_writes("k", &s1), vec![]).unwrap();
    assert!(keys_stored(&store).iter().any(|k| k.starts_with("k/b/")));
    let (loaded, layout) = load_interactions(&store, "k").unwrap().unwrap();
    assert_eq!((&loaded, layout), (&s1, true), "format 1 is read as is");
    // The next commit writes a base and deletes every bucket of format 1.
    let s2 = churn(&s1, 2, &["conn-3".into()], &[]);
    step(&store, Some(&loaded), &s2);
    assert!(!keys_stored(&store).iter().any(|k| k.starts_with("k/b/")));
}

#[test]
fn a_state_that_disagrees_with_its_header_is_an_error_naming_the_key() {
    let s1 = many(1, 500);
    let s2 = churn(&s1, 2, &["conn-1".into()], &["new".into()]);
    let broken = |edit: &dyn Fn(&mut Vec<Write>)| -> String {
        let store = MemoryStore::default();
        store
            .commit(interaction_writes("k", None, &s1), vec![])
            .unwrap();
        let (stored, _) = load_interactions(&store, "k").unwrap().unwrap();
        let mut w = interaction_writes("k", Some(&stored), &s2);
        edit(&mut w);
        store.commit(w, vec![]).unwrap();
        load_interactions(&store, "k").unwrap_err().to_string()
    };
    // The delta lost.
    let e = broken(&|w| {
        w.remove(0);
    });
    assert!(
        e.contains("corrupt entry k:") && e.contains("1 deltas, the store holds 0"),
        "{e}"
    );
    // The delta cut short.
    let e = broken(&|w| {
        if let Write::Put(_, v) = &mut w[0] {
            v.truncate(v.len() - 3);
        }
    });
    assert!(e.contains("corrupt entry k/d/"), "{e}");
    // A chunk gone: fewer entries than the header says.
    let store = MemoryStore::default();
    let mut w = interaction_writes("k", None, &s1);
    w.remove(0);
    store.commit(w, vec![]).unwrap();
    let e = load_interactions(&store, "k").unwrap_err().to_string();
    assert!(e.contains("500 entries") && e.contains("holds"), "{e}");
}

#[test]
fn chunks_follow_the_order_of_a_snapshot_and_the_buckets_of_format_1() {
    let s = many(1, 5_000);
    let mut last = 0;
    for (i, it) in s.interactions.iter().enumerate() {
        let b = s.interactions.bucket_at(i).unwrap();
        let h = crate::diff::snapshot::key_hash(it.interaction_id, it.agent_id);
        assert_eq!(b, h % BUCKETS_V1 as u64);
        assert!(b >= last, "buckets in order");
        assert!(s.interactions.bucket_range(b..b + 1).contains(&i));
        last = b;
    }
    let per_chunk: usize = (0..CHUNKS)
        .map(|c| {
            let r = s
                .interactions
                .bucket_range(c * BUCKETS_PER_CHUNK..(c + 1) * BUCKETS_PER_CHUNK);
            r.len()
        })
        .sum();
    assert_eq!(per_chunk, 5_000);
}

#[test]
fn agents_listed_incompletely_are_kept_with_the_header_and_dropped_with_it() {
    let store = MemoryStore::default();
    let first = many(1_000, 10);
    step(&store, None, &first);
    let mut held = churn(&first, 2_000, &[], &[]);
    held.held = BTreeMap::from([("a".to_string(), 1_000), ("ágent 2".to_string(), 500)]);
    // Nothing else changed: no delta, the header alone says it.
    let w = step(&store, Some(&first), &held);
    assert_eq!(keys_written(&w), BTreeSet::from(["k".to_string()]));
    let complete = churn(&held, 3_000, &[], &[]);
    assert!(complete.held.is_empty());
    step(&store, Some(&held), &complete);
}
