//! The sled store against the in-memory model: random operation sequences (seeded, reproducible),
//! with the database closed and reopened at random points, must agree on every observable.

use ccdc::store::{MemoryStore, SledStore, Store, Write};

/// A small deterministic generator (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything observable: the values of `keys`, the outbox payloads in order, its length, a prefix scan.
type Observed = (
    Vec<Option<Vec<u8>>>,
    Vec<Vec<u8>>,
    usize,
    Vec<(String, Vec<u8>)>,
);

fn observe(s: &dyn Store, keys: &[String]) -> Observed {
    let values = keys.iter().map(|k| s.get(k).unwrap()).collect();
    // Sequence numbers differ between implementations; the outbox's payloads and order must not.
    let outbox = s
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    (
        values,
        outbox,
        s.outbox_len(),
        s.scan_prefix("k/1").unwrap(),
    )
}

#[test]
fn sled_matches_the_model_across_random_operations_and_reopens() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let model = MemoryStore::default();
        let mut sled: Option<SledStore> = Some(SledStore::open(&path).unwrap());
        let keys: Vec<String> = (0..12).map(|i| format!("k/{i}")).collect();
        let mut counter_model = 0u64;
        for step in 0..300 {
            let s = sled.as_ref().unwrap();
            match rng.below(10) {
                0..=4 => {
                    let writes: Vec<Write> = (0..rng.below(4))
                        .map(|_| {
                            let k = keys[rng.below(keys.len() as u64) as usize].clone();
                            if rng.below(4) == 0 {
                                Write::Delete(k)
                            } else {
                                Write::Put(k, format!("v{step}-{}", rng.next()).into_bytes())
                            }
                        })
                        .collect();
                    let events: Vec<Vec<u8>> = (0..rng.below(5))
                        .map(|i| format!("e{step}-{i}").into_bytes())
                        .collect();
                    s.commit(writes.clone(), events.clone()).unwrap();
                    model.commit(writes, events).unwrap();
                }
                5..=6 => {
                    // Acknowledge a prefix-ish subset of the outbox (as the publisher does).
                    let take = rng.below(4) as usize;
                    let a: Vec<u64> = s
                        .outbox_after(None, take)
                        .unwrap()
                        .into_iter()
                        .map(|(q, _)| q)
                        .collect();
                    let b: Vec<u64> = model
                        .outbox_after(None, take)
                        .unwrap()
                        .into_iter()
                        .map(|(q, _)| q)
                        .collect();
                    s.outbox_remove(&a).unwrap();
                    model.outbox_remove(&b).unwrap();
                }
                7 => {
                    let by = rng.below(3) + 1;
                    counter_model += by;
                    assert_eq!(
                        s.increment("quota/x", by).unwrap(),
                        counter_model,
                        "seed {seed} step {step}"
                    );
                    model.increment("quota/x", by).unwrap();
                }
                _ => {
                    // Close (dropping the handle without a flush) and reopen.
                    drop(sled.take());
                    sled = Some(SledStore::open(&path).unwrap());
                }
            }
            let s = sled.as_ref().unwrap();
            assert_eq!(
                observe(s, &keys),
                observe(&model, &keys),
                "seed {seed} step {step}"
            );
        }
    }
}
