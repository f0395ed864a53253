use std::collections::HashMap;

use super::*;
use crate::store::MemoryStore;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("account-{i:03}")).collect()
}

#[test]
fn every_source_is_owned_by_exactly_one_replica_for_1_to_5_replicas() {
    let sources = names(100);
    for n in 1..=5u32 {
        let replicas: Vec<Replica> = (0..n).map(|i| Replica::new(i, n).unwrap()).collect();
        for s in &sources {
            let owners: Vec<u32> = replicas
                .iter()
                .filter(|r| r.owns(s))
                .map(|r| r.index())
                .collect();
            assert_eq!(owners.len(), 1, "{s} with {n} replicas: owners {owners:?}");
        }
        // Roughly even: no replica of 2..5 gets nothing or almost everything of 100 sources.
        for r in &replicas {
            let mine = sources.iter().filter(|s| r.owns(s)).count();
            let fair = 100 / n as usize;
            assert!(
                mine >= fair / 2 && mine <= fair * 2,
                "replica {r} owns {mine} of 100"
            );
        }
    }
}

#[test]
fn going_from_3_to_4_replicas_moves_only_sources_to_the_new_one() {
    let sources = names(100);
    let moved: Vec<&String> = sources
        .iter()
        .filter(|s| owner(s, 3) != owner(s, 4))
        .collect();
    // Rendezvous: a source moves only if the new replica beats its old winner, and then it moves
    // to the new replica; nothing moves between the replicas that stay.
    for s in &moved {
        assert_eq!(owner(s, 4), 3, "{s} moved between old replicas");
    }
    // About 1/4 of them (25 expected; modulo hashing would move ~75).
    assert!(
        (15..=35).contains(&moved.len()),
        "{} of 100 sources moved",
        moved.len()
    );
    // The measured figures (README, "Running several replicas"): 20 of these 100 names; of 10,000
    // names, 2,461 (printed; 2,500 expected).
    assert_eq!(moved.len(), 20);
    let many = names(10_000);
    let moved_of_many = many.iter().filter(|s| owner(s, 3) != owner(s, 4)).count();
    println!(
        "3 -> 4 replicas: {} of 100 and {moved_of_many} of 10,000 sources move",
        moved.len()
    );
    assert!((2_300..=2_700).contains(&moved_of_many), "{moved_of_many}");
    // Adding a replica at the end never moves a source between the others, for any N.
    for n in 1..=5 {
        for s in &many[..1000] {
            let (before, after) = (owner(s, n), owner(s, n + 1));
            assert!(after == before || after == n, "{s}: {before} -> {after}");
        }
    }
}

#[test]
fn the_weights_are_stable_across_builds() {
    // Frozen: a change here moves sources between replicas of a running deployment.
    assert_eq!(weight("ops", 0), 7_988_262_381_885_860_051);
    assert_eq!(owner("ops", 5), 4);
}

#[test]
fn replica_specs_parse_0_based_and_refuse_nonsense() {
    assert_eq!(
        Replica::parse("--replica", "2/5").unwrap(),
        Replica::new(2, 5).unwrap()
    );
    assert_eq!(
        Replica::parse("--replica", " 0 / 1 ").unwrap(),
        Replica::SINGLE
    );
    for bad in ["5/5", "1/0", "x/3", "3", "-1/3", "1/20000", ""] {
        let e = Replica::parse("--replica", bad).unwrap_err().to_string();
        assert!(e.starts_with("--replica = "), "{bad}: {e}");
    }
    assert_eq!(Replica::new(2, 5).unwrap().to_string(), "2/5");
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

#[test]
fn the_replica_comes_from_the_flag_the_variable_or_the_statefulset_pod() {
    let r = |i, n| Some(Replica::new(i, n).unwrap());
    assert_eq!(resolve(None, &env(&[])).unwrap(), None);
    assert_eq!(resolve(Some("1/3"), &env(&[])).unwrap(), r(1, 3));
    assert_eq!(
        resolve(Some("1/3"), &env(&[("CCDC_REPLICA", "2/3")])).unwrap(),
        r(1, 3),
        "the flag before the variable"
    );
    assert_eq!(
        resolve(None, &env(&[("CCDC_REPLICA", "2/3")])).unwrap(),
        r(2, 3)
    );
    let pod = env(&[
        ("CCDC_REPLICAS", "5"),
        ("CCDC_REPLICA_FROM_HOSTNAME", "true"),
        ("HOSTNAME", "ccdc-3"),
    ]);
    assert_eq!(resolve(None, &pod).unwrap(), r(3, 5));
    let indexed = env(&[("CCDC_REPLICAS", "5"), ("CCDC_REPLICA_INDEX", "4")]);
    assert_eq!(resolve(None, &indexed).unwrap(), r(4, 5));
}

#[test]
fn a_wrong_or_ambiguous_replica_is_an_error_that_says_which_variable() {
    let err = |flag: Option<&str>, vars: &[(&str, &str)]| {
        resolve(flag, &env(vars)).unwrap_err().to_string()
    };
    let e = err(
        None,
        &[
            ("CCDC_REPLICAS", "3"),
            ("CCDC_REPLICA_FROM_HOSTNAME", "true"),
            ("HOSTNAME", "ccdc-5"),
        ],
    );
    assert!(
        e.contains("CCDC_REPLICAS") && e.contains("replica 5"),
        "{e}"
    );
    let e = err(
        None,
        &[
            ("CCDC_REPLICAS", "3"),
            ("CCDC_REPLICA_FROM_HOSTNAME", "true"),
            ("HOSTNAME", "worker"),
        ],
    );
    assert!(e.contains("HOSTNAME = `worker`"), "{e}");
    let e = err(
        Some("0/3"),
        &[("CCDC_REPLICAS", "3"), ("CCDC_REPLICA_INDEX", "1")],
    );
    assert!(e.contains("both"), "{e}");
    let e = err(None, &[("CCDC_REPLICA_INDEX", "1")]);
    assert!(e.contains("CCDC_REPLICAS"), "{e}");
    let e = err(None, &[("CCDC_REPLICAS", "3")]);
    assert!(e.contains("CCDC_REPLICA_INDEX"), "{e}");
    let e = err(None, &[("CCDC_REPLICA", "3/3")]);
    assert!(e.starts_with("CCDC_REPLICA = `3/3`"), "{e}");
}

#[test]
fn pod_ordinals() {
    assert_eq!(ordinal("ccdc-0"), Some(0));
    assert_eq!(ordinal("my-ccdc-12"), Some(12));
    assert_eq!(ordinal("ccdc"), None);
    assert_eq!(ordinal("ccdc-x"), None);
    assert_eq!(ordinal("ccdc-+1"), None);
}

/// Two sources replica 1 owns when there are 2 replicas: one it owned as replica 1 of 3, and one
/// replica 2 of 3 owned (going from 3 to 2 replicas, replica 1 takes it over).
fn two_sources() -> (String, String) {
    let sources = names(20);
    let find = |was: u32| {
        sources
            .iter()
            .find(|s| owner(s, 3) == was && owner(s, 2) == 1)
            .unwrap()
            .clone()
    };
    (find(1), find(2))
}

#[test]
fn a_taken_over_source_loses_its_stale_snapshots_and_a_kept_one_keeps_them() {
    let (kept, taken) = two_sources();
    let store = MemoryStore::default();
    let put = |k: String| Write::Put(k, b"x".to_vec());
    store
        .commit(
            vec![
                put(format!("{kept}/interactions")),
                put(format!("{taken}/interactions")),
                put(format!("{taken}/interactions/b/0001")),
                put(format!("{taken}-2/interactions")),
                put(format!("report/{taken}/chat_1/cursor")),
            ],
            vec![],
        )
        .unwrap();
    // The last run was replica 1 of 3.
    store
        .commit(
            vec![Write::Put(ASSIGNMENT_KEY.into(), b"1/3".to_vec())],
            vec![],
        )
        .unwrap();
    let now = Replica::new(1, 2).unwrap();
    let dropped = forget_taken_over(&store, now, &[&kept, &taken]).unwrap();
    assert_eq!(dropped, vec![taken.clone()]);
    assert!(store
        .get(&format!("{kept}/interactions"))
        .unwrap()
        .is_some());
    assert!(store.scan_prefix(&format!("{taken}/")).unwrap().is_empty());
    assert!(
        store
            .get(&format!("{taken}-2/interactions"))
            .unwrap()
            .is_some(),
        "another source whose name starts the same is untouched"
    );
    assert!(
        store
            .get(&format!("report/{taken}/chat_1/cursor"))
            .unwrap()
            .is_some(),
        "report cursors stay (the newest of them and the checkpoint wins)"
    );
    assert_eq!(store.get(ASSIGNMENT_KEY).unwrap().unwrap(), b"1/2");
    // The next run as the same replica keeps everything.
    store
        .commit(
            vec![Write::Put(format!("{taken}/interactions"), b"y".to_vec())],
            vec![],
        )
        .unwrap();
    assert!(forget_taken_over(&store, now, &[&kept, &taken])
        .unwrap()
        .is_empty());
    assert!(store
        .get(&format!("{taken}/interactions"))
        .unwrap()
        .is_some());
}

#[test]
fn an_unsharded_last_run_owned_everything() {
    let (kept, taken) = two_sources();
    let store = MemoryStore::default();
    store
        .commit(
            vec![Write::Put(format!("{taken}/agents"), b"x".to_vec())],
            vec![],
        )
        .unwrap();
    let dropped = forget_taken_over(&store, Replica::new(1, 2).unwrap(), &[&kept, &taken]).unwrap();
    assert!(dropped.is_empty());
    assert!(store.get(&format!("{taken}/agents")).unwrap().is_some());
    store
        .commit(
            vec![Write::Put(ASSIGNMENT_KEY.into(), b"garbage".to_vec())],
            vec![],
        )
        .unwrap();
    let e = forget_taken_over(&store, Replica::SINGLE, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains(ASSIGNMENT_KEY), "{e}");
}
