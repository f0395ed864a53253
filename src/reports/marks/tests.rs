use super::*;
use crate::store::MemoryStore;

const PREFIX: &str = "marks/wv/chat_1/";

fn m(identity: &str, hash: &str) -> Mark {
    Mark::of(identity, hash)
}

/// Stage `marks` at `at` (expiring groups before `expire`), commit them to `store`, tell `marks`.
fn commit(store: &MemoryStore, marks: &mut Marks, new: Vec<Mark>, at: i64, expire: Option<i64>) {
    let writes = marks.stage(new, at, expire);
    store.commit(writes, Vec::new()).unwrap();
    marks.committed();
}

fn groups(store: &MemoryStore) -> Vec<String> {
    store
        .scan_prefix(PREFIX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn a_commits_marks_are_one_entry_and_every_content_of_an_identity_is_known() {
    let store = MemoryStore::default();
    let mut marks = Marks::new("wv", "chat_1");
    marks.load(&store).unwrap();
    let many: Vec<Mark> = (0..5000).map(|i| m(&format!("c-{i}"), "h1")).collect();
    commit(&store, &mut marks, many, 1_000, None);
    assert_eq!(groups(&store), [format!("{PREFIX}00000000000000000000")]);
    let value = store.get(&groups(&store)[0]).unwrap().unwrap();
    assert_eq!(value.len(), 13 + 32 * 5000, "fixed-width marks");
    assert_eq!(value[0], 1, "version byte");
    assert!(marks.contains(m("c-42", "h1")));
    assert!(!marks.contains(m("c-42", "h2")), "changed content");
    assert!(!marks.contains(m("c-5000", "h1")), "never seen");

    // A second content of c-42 (a changed row, or the chat's row of a second agent) is marked
    // beside the first: a later pull listing either is not published again.
    commit(&store, &mut marks, vec![m("c-42", "h2")], 2_000, None);
    assert!(marks.contains(m("c-42", "h2")) && marks.contains(m("c-42", "h1")));
    // Loaded again from the store: the same marks.
    let mut again = Marks::new("wv", "chat_1");
    again.load(&store).unwrap();
    assert_eq!(again.len(), 5001);
    assert!(again.contains(m("c-42", "h2")) && again.contains(m("c-42", "h1")));
    assert!(again.contains(m("c-7", "h1")));
    assert_eq!(again.next_seq, 2);
}

#[test]
fn staged_marks_count_only_once_committed() {
    let store = MemoryStore::default();
    let mut marks = Marks::new("wv", "chat_1");
    let writes = marks.stage(vec![m("a", "h")], 1_000, None);
    assert_eq!(writes.len(), 1);
    assert!(!marks.contains(m("a", "h")), "not before the commit");
    marks.discard();
    marks.committed();
    assert!(
        !marks.contains(m("a", "h")),
        "a discarded stage is never applied"
    );
    // The same sequence number is staged again: nothing was written under it.
    let again = marks.stage(vec![m("b", "h")], 1_000, None);
    assert_eq!(
        again,
        writes
            .iter()
            .map(|w| match w {
                Write::Put(k, _) => Write::Put(k.clone(), encode(1_000, &[m("b", "h")])),
                other => other.clone(),
            })
            .collect::<Vec<_>>()
    );
    store.commit(again, Vec::new()).unwrap();
    marks.committed();
    assert!(marks.contains(m("b", "h")));
    // No new marks: nothing to write.
    assert!(marks.stage(Vec::new(), 2_000, None).is_empty());
}

#[test]
fn groups_expire_whole_and_marks_replaced_later_stay() {
    let store = MemoryStore::default();
    let mut marks = Marks::new("wv", "chat_1");
    commit(
        &store,
        &mut marks,
        vec![m("a", "1"), m("b", "1")],
        1_000,
        None,
    );
    commit(
        &store,
        &mut marks,
        vec![m("b", "2"), m("c", "1")],
        5_000,
        None,
    );
    // Expire what is older than 3,000: the first group; b's later mark stays.
    commit(&store, &mut marks, vec![m("d", "1")], 6_000, Some(3_000));
    assert_eq!(groups(&store).len(), 2);
    assert!(!marks.contains(m("a", "1")), "expired");
    assert!(marks.contains(m("b", "2")) && marks.contains(m("c", "1")));
    assert!(marks.contains(m("d", "1")));
    assert_eq!(marks.len(), 3);
    // An expiry staged but not committed changes nothing.
    let _ = marks.stage(Vec::new(), 9_000, Some(i64::MAX));
    marks.discard();
    assert_eq!(marks.len(), 3);
}

#[test]
fn per_row_marks_of_the_previous_version_are_moved_into_groups() {
    let store = MemoryStore::default();
    let legacy = |id: &str, hash: &str, at: i64| {
        Write::Put(
            format!("seen/wv/chat_1/{id}"),
            format!(r#"{{"hash":"{hash}","at":{at}}}"#).into_bytes(),
        )
    };
    store
        .commit(
            vec![
                legacy("c-1", "h1", 1_000),
                legacy("c-2", "h2", 1_000),
                legacy("c-3", "h3", 2_000),
                Write::Put("seen/wv/chat_1/bad".into(), b"{not json".to_vec()),
                // Another source's and another report's marks are not this feed's.
                legacy("x", "h", 1_000).clone(),
                Write::Put(
                    "seen/other/chat_1/c-1".into(),
                    br#"{"hash":"h1","at":1}"#.to_vec(),
                ),
                Write::Put(
                    "seen/wv/diagram_9/c-1".into(),
                    br#"{"hash":"h1","at":1}"#.to_vec(),
                ),
            ],
            Vec::new(),
        )
        .unwrap();
    let mut marks = Marks::new("wv", "chat_1");
    marks.load(&store).unwrap();
    for (id, h) in [("c-1", "h1"), ("c-2", "h2"), ("c-3", "h3"), ("x", "h")] {
        assert!(marks.contains(m(id, h)), "{id}");
    }
    assert!(
        store.scan_prefix("seen/wv/chat_1/").unwrap().is_empty(),
        "moved"
    );
    assert_eq!(
        store.scan_prefix("seen/").unwrap().len(),
        2,
        "others untouched"
    );
    assert_eq!(groups(&store).len(), 2, "one group per time");
    // They expire by their own time: the 1,000 group first.
    commit(&store, &mut marks, Vec::new(), 9_000, Some(1_500));
    assert!(!marks.contains(m("c-1", "h1")) && marks.contains(m("c-3", "h3")));
    // And a restore finds the moved marks.
    let mut again = Marks::new("wv", "chat_1");
    again.load(&store).unwrap();
    assert!(again.contains(m("c-3", "h3")) && again.len() == 1);
}

#[test]
fn a_failed_migration_keeps_the_marks_in_use() {
    let store = MemoryStore::default();
    store
        .commit(
            vec![Write::Put(
                "seen/wv/chat_1/c-1".into(),
                br#"{"hash":"h1","at":1000}"#.to_vec(),
            )],
            Vec::new(),
        )
        .unwrap();
    let mut marks = Marks::new("wv", "chat_1");
    // The migration's commit reports a failure (it was applied: as a flush that failed).
    store.fail_next_commit_after_applying();
    marks.load(&store).unwrap();
    assert!(
        marks.contains(m("c-1", "h1")),
        "in use after a failed commit"
    );
    let mut again = Marks::new("wv", "chat_1");
    again.load(&store).unwrap();
    assert!(again.contains(m("c-1", "h1")));
}

#[test]
fn unreadable_groups_are_skipped_and_swept() {
    let store = MemoryStore::default();
    let mut marks = Marks::new("wv", "chat_1");
    commit(&store, &mut marks, vec![m("a", "1")], 1_000, None);
    store
        .commit(
            vec![
                Write::Put(format!("{PREFIX}00000000000000000001"), vec![1, 0, 0]),
                Write::Put(format!("{PREFIX}00000000000000000002"), vec![9; 13]),
            ],
            Vec::new(),
        )
        .unwrap();
    let mut again = Marks::new("wv", "chat_1");
    again.load(&store).unwrap();
    assert!(again.contains(m("a", "1")));
    assert_eq!(again.next_seq, 3, "their sequence numbers are not reused");
    commit(&store, &mut again, Vec::new(), 2_000, Some(0));
    assert_eq!(groups(&store), [format!("{PREFIX}00000000000000000000")]);
}

#[test]
fn malformed_groups_are_errors_not_panics() {
    assert!(decode(&[]).is_err());
    assert!(decode(&[2]).unwrap_err().contains("version"));
    assert!(decode(&[1, 0, 0]).is_err());
    let good = encode(7, &[m("a", "1"), m("b", "2")]);
    assert_eq!(decode(&good).unwrap(), (7, vec![m("a", "1"), m("b", "2")]));
    assert!(decode(&good[..good.len() - 1]).is_err());
    let mut lying = good.clone();
    lying[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode(&lying).is_err());
}
