//! Report cursors checkpointed in Kafka (issue 18, item 2), on tansu + rivven-schema + the built-in
//! simulator's chat_1 rows: a replica pulls eight windows, its ninth pull hangs, it is SIGKILLed and
//! its state directory deleted (a lost volume). Started again empty, it resumes from the checkpoint
//! topic — not from `start_from` — and the report feed continues: every row arrives (nothing lost),
//! the rows of the look-back window before the checkpoint are the only ones published twice, with
//! their same event ids. At the end the checkpoint topic holds the final cursor.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ccdc::event::report::ReportKind;
use ccdc::reports::{cursor_key, parse_cursor, Mode};
use ccdc::simulator::reports::SIM_TZ;
use ccdc::simulator::{Fault, Route, SimMode, SimState};
use ccdc::store::{SledStore, Store};
use chrono::{Duration as CDuration, NaiveDateTime, Timelike};
use common::{read_to_string, Stack, TopicReader};
use serde::Deserialize;

const TOKEN: &str = "wv-checkpoint-token-18";
const ROWS: &str = "ccdc.it.cp.chat_1";
const DLQ: &str = "ccdc.it.cp.dead-letter";
const CHECKPOINTS: &str = "ccdc.checkpoints";
const FMT: &str = "%Y-%m-%d %H:%M:%S";

#[derive(Deserialize, Debug)]
struct Chat1Rec {
    event_id: String,
    identity: String,
    window_start_raw: String,
}

#[derive(Deserialize, Debug)]
struct Checkpoint {
    source: String,
    feed: String,
    cursor: String,
    replica: String,
}

fn now_local() -> NaiveDateTime {
    chrono::Utc::now().with_timezone(&SIM_TZ).naive_local()
}

fn sources(start_from: NaiveDateTime) -> String {
    format!(
        r#"
[checkpoints]
interval = "100ms"

[[sources]]
vendor = "wolkvox"
name = "cp-it"
base_url = "{{wolkvox}}"
token = {{ file = "{{token_file}}" }}
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "60s"
daily_call_limit = 100000
[sources.interactions]
enabled = false
[sources.agents]
enabled = false
[[sources.reports]]
report = "chat_1"
interval = "300ms"
max_backoff = "300ms"
settle_delay = "1m"
lookback = "30m"
max_window = "1h"
min_window = "1m"
row_limit = 500
start_from = "{}"
"#,
        start_from.format(FMT)
    )
}

fn identities(sim: &SimState, from: NaiveDateTime, to_exclusive: NaiveDateTime) -> HashSet<String> {
    let tz = "America/Bogota".parse().unwrap();
    sim.report_rows("chat_1", from, to_exclusive - CDuration::seconds(1))
        .iter()
        .map(|r| {
            let raw = serde_json::to_string(r).unwrap();
            ccdc::sources::wolkvox::report_rows::decode(ReportKind::Chat1, &raw, tz)
                .identity
                .unwrap()
        })
        .collect()
}

/// Read checkpoints until one for `cp-it/chat_1` satisfies `done`; returns it.
fn checkpoint_where(
    s: &Stack,
    reader: &mut TopicReader,
    done: impl Fn(NaiveDateTime) -> bool,
) -> (Checkpoint, NaiveDateTime) {
    let started = Instant::now();
    loop {
        let found = reader.records.iter().rev().find_map(|r| {
            let cp: Checkpoint = serde_json::from_slice(&r.payload).ok()?;
            let at = NaiveDateTime::parse_from_str(&cp.cursor, FMT).ok()?;
            (r.key == "cp-it/chat_1" && done(at)).then_some((cp, at))
        });
        if let Some(f) = found {
            return f;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no such checkpoint; read {:?}\n{}",
            reader
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
                .collect::<Vec<_>>(),
            read_to_string(&s.log)
        );
        reader.poll_for(Duration::from_millis(200));
    }
}

/// Read `reader` until nothing new arrives for two seconds; decode everything.
fn drain(s: &Stack, reader: &mut TopicReader) -> Vec<Chat1Rec> {
    loop {
        let before = reader.records.len();
        reader.poll_for(Duration::from_secs(2));
        if reader.records.len() == before {
            break;
        }
    }
    let n = reader.records.len();
    s.read::<Chat1Rec>(reader, n)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_volume_resumes_its_report_feed_from_the_kafka_checkpoint() {
    let start_from = now_local()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
        - CDuration::hours(12);
    let s = Stack::start(
        TOKEN,
        SimMode::Scripted(vec![]),
        &sources(start_from),
        &[("wolkvox_chat_1", ROWS), ("dead_letter", DLQ)],
    )
    .await;
    s.sim.state.set_report_generation(60, 500);
    // Eight windows of an hour are served; the ninth request hangs until the replica is killed.
    s.sim.state.set_slow(Duration::from_secs(300));
    let mut seq = vec![None; 8];
    seq.push(Some(Fault::Slow));
    s.sim.state.inject_sequence(Route::WolkvoxReports, seq);

    let first = s.ccdc(&[]);
    let mut checkpoints = s.reader(CHECKPOINTS).await;
    // The live plan starts one look-back before `start_from`, in windows of an hour.
    let c1 = start_from - CDuration::minutes(30) + CDuration::hours(8);
    let (cp, _) = checkpoint_where(&s, &mut checkpoints, |at| at == c1);
    assert_eq!(
        (cp.source.as_str(), cp.feed.as_str(), cp.replica.as_str()),
        ("cp-it", "chat_1", "0/1")
    );
    while s.sim.state.requests_on(Route::WolkvoxReports) < 9 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(first); // SIGKILL, in the middle of the hanging ninth pull
    let mut rows = s.reader(ROWS).await;
    let before = drain(&s, &mut rows);
    assert_eq!(
        before.len(),
        identities(&s.sim.state, start_from - CDuration::minutes(30), c1).len(),
        "the first replica published its eight windows"
    );
    let state = s.infra.dir.path().join("state");
    std::fs::remove_dir_all(&state).expect("the state directory existed");

    // Started empty: it resumes from the checkpoint and catches up.
    let second = s.ccdc(&[]);
    let caught_up = now_local() - CDuration::minutes(3);
    checkpoint_where(&s, &mut checkpoints, |at| at >= caught_up);
    assert!(second.terminate(Duration::from_secs(30)).success());
    let log = read_to_string(&s.log);
    assert!(
        log.contains("report feed resumes from the Kafka checkpoint"),
        "{log}"
    );
    let all = drain(&s, &mut rows);
    let after = &all[before.len()..];

    // Resumed at the checkpoint minus the look-back, not at `start_from`.
    let earliest = after
        .iter()
        .map(|r| r.window_start_raw.as_str())
        .min()
        .expect("the second replica published rows");
    let resumed_at = (c1 - CDuration::minutes(30))
        .format("%Y%m%d%H%M%S")
        .to_string();
    assert_eq!(earliest, resumed_at);

    // Nothing lost: every row up to the final cursor arrived.
    let store = SledStore::open(&state).unwrap();
    let key = cursor_key("cp-it", ReportKind::Chat1, Mode::Live);
    let cursor = parse_cursor(&key, &store.get(&key).unwrap().expect("a cursor")).unwrap();
    let want = identities(&s.sim.state, start_from - CDuration::minutes(30), cursor);
    let mut ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for r in &all {
        ids.entry(&r.identity).or_default().insert(&r.event_id);
    }
    let got: HashSet<String> = ids.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "missing {:?}",
        want.difference(&got).take(5).collect::<Vec<_>>()
    );
    assert_eq!(got, want);
    // Duplicates only with the same event ids, and only the look-back before the checkpoint.
    assert!(
        ids.values().all(|e| e.len() == 1),
        "a repeated row changed id"
    );
    let repeated = all.len() - got.len();
    let lookback = identities(&s.sim.state, c1 - CDuration::minutes(30), c1).len();
    assert_eq!(repeated, lookback);
    eprintln!(
        "first replica: {} rows up to {c1}; second: {} rows from {earliest}; {repeated} repeated (same ids), 0 lost; final cursor {cursor}",
        before.len(),
        after.len()
    );

    // At shutdown the final cursor was checkpointed.
    checkpoints.poll_for(Duration::from_secs(1));
    let (_, last) = checkpoint_where(&s, &mut checkpoints, |at| at >= cursor);
    assert_eq!(last, cursor);
}
