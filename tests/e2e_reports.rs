//! Wolkvox report pulls end to end: a range large enough to force window splits against a simulator
//! that truncates at the row limit like the vendor; every generated row arrives once (by identity),
//! the cursor lands where the pulls stopped; late and changed rows are published on the look-back
//! re-read; a malformed row goes to the dead-letter topic; a SIGKILLed backfill resumes.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ccdc::event::report::{Chat1Row, ReportKind};
use ccdc::event::DeadLetter;
use ccdc::reports::{cursor_key, parse_cursor, Mode};
use ccdc::simulator::reports::{generated_row, SIM_TZ};
use ccdc::simulator::{SimMode, SimState};
use ccdc::store::{SledStore, Store};
use chrono::{Duration as CDuration, NaiveDateTime, Timelike};
use common::{Record, Stack};
use serde::Deserialize;

const TOKEN: &str = "wv-reports-token-31";
const ROWS: &str = "ccdc.it.chat_1";
const DLQ: &str = "ccdc.it.dead-letter";

/// The Avro shape of a chat_1 record.
#[derive(Deserialize, Debug)]
struct Chat1Rec {
    event_id: String,
    identity: String,
    row_hash: String,
    window_start_raw: String,
    row: Chat1Row,
}

fn now_local() -> NaiveDateTime {
    chrono::Utc::now().with_timezone(&SIM_TZ).naive_local()
}

fn hour_floor(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
}

fn sources(report_block: &str) -> String {
    format!(
        r#"
[[sources]]
vendor = "wolkvox"
name = "rep-it"
base_url = "{{wolkvox}}"
token = {{ file = "{{token_file}}" }}
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "10s"
daily_call_limit = 100000
[sources.interactions]
enabled = false
[sources.agents]
enabled = false
[[sources.reports]]
report = "chat_1"
max_window = "1d"
min_window = "1m"
row_limit = 500
max_backoff = "300ms"
{report_block}
"#
    )
}

fn topics() -> Vec<(&'static str, &'static str)> {
    vec![("wolkvox_chat_1", ROWS), ("dead_letter", DLQ)]
}

fn identities(sim: &SimState, from: NaiveDateTime, to_exclusive: NaiveDateTime) -> Vec<String> {
    sim.report_rows("chat_1", from, to_exclusive - CDuration::seconds(1))
        .iter()
        .map(|r| {
            let tz = "America/Bogota".parse().unwrap();
            let raw = serde_json::to_string(r).unwrap();
            ccdc::sources::wolkvox::report_rows::decode(ReportKind::Chat1, &raw, tz)
                .identity
                .unwrap()
        })
        .collect()
}

/// Read until nothing new arrives for `quiet`.
fn drain(
    s: &Stack,
    reader: &mut common::TopicReader,
    at_least: usize,
    quiet: Duration,
) -> Vec<(Record, Chat1Rec)> {
    s.read::<Chat1Rec>(reader, at_least);
    loop {
        let before = reader.records.len();
        reader.poll_for(quiet);
        if reader.records.len() == before {
            break;
        }
    }
    let n = reader.records.len();
    s.read(reader, n)
}

fn stored_cursor(s: &Stack, mode: Mode) -> NaiveDateTime {
    let store = SledStore::open(&s.infra.dir.path().join("state")).unwrap();
    let key = cursor_key("rep-it", ReportKind::Chat1, mode);
    parse_cursor(&key, &store.get(&key).unwrap().expect("a cursor")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_pulls_split_windows_publish_every_row_once_and_move_the_cursor() {
    let start = hour_floor(now_local()) - CDuration::days(2);
    let block = format!(
        "interval = \"300ms\"\nsettle_delay = \"1m\"\nlookback = \"30m\"\nstart_from = \"{}\"\n",
        start.format("%Y-%m-%d %H:%M:%S")
    );
    let s = Stack::start(
        TOKEN,
        SimMode::Scripted(vec![]),
        &sources(&block),
        &topics(),
    )
    .await;
    // One row a minute; responses truncated at 500 rows: a day (1,440 rows) must be split twice.
    s.sim.state.set_report_generation(60, 500);
    let ccdc = s.ccdc(&[]);
    let mut reader = s.reader(ROWS).await;
    let first_pass = identities(
        &s.sim.state,
        start - CDuration::minutes(30),
        start + CDuration::days(2) - CDuration::minutes(5),
    )
    .len();
    let got = drain(&s, &mut reader, first_pass, Duration::from_secs(2));

    // Late, changed and malformed rows inside the look-back.
    let now = now_local();
    // Inside the 30-minute look-back whatever the time of day.
    let late_at = now
        .with_second(30)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
        - CDuration::minutes(10);
    let mut late = generated_row("chat_1", late_at);
    late.insert("conn_id".into(), "late-1".into());
    s.sim.state.add_report_row("chat_1", late_at, late);
    let changed_id = got
        .iter()
        .map(|(_, r)| r)
        .rfind(|r| {
            r.row.date_raw.as_deref()
                < Some(
                    &(now - CDuration::minutes(8))
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                )
        })
        .unwrap();
    let changed_at = NaiveDateTime::parse_from_str(
        changed_id.row.date_raw.as_deref().unwrap(),
        "%Y-%m-%d %H:%M:%S",
    )
    .unwrap();
    let mut changed = generated_row("chat_1", changed_at);
    changed.insert("agent_name".into(), "Marta".into());
    s.sim.state.add_report_row("chat_1", changed_at, changed);
    let bad_at = late_at + CDuration::seconds(1);
    let mut bad = generated_row("chat_1", bad_at);
    bad.insert("conn_id".into(), "bad-1".into());
    bad.insert("customer_chars".into(), "many".into());
    s.sim.state.add_report_row("chat_1", bad_at, bad);

    let mut dlq = s.reader(DLQ).await;
    let dead: Vec<(Record, DeadLetter)> = s.read(&mut dlq, 1);
    assert!(
        dead[0].1.error.contains("customer_chars") && dead[0].1.raw.contains("\"bad-1\""),
        "{:?}",
        dead[0].1
    );
    assert_eq!(
        (dead[0].0.key.as_str(), dead[0].1.report.as_str()),
        ("rep-it/chat_1", "chat_1")
    );
    let all = drain(&s, &mut reader, got.len() + 2, Duration::from_secs(2));
    let st = ccdc.terminate(Duration::from_secs(30));
    assert!(st.success());
    let all = {
        let mut r = reader;
        r.poll_for(Duration::from_millis(500));
        let n = r.records.len();
        if n > all.len() {
            s.read::<Chat1Rec>(&mut r, n)
        } else {
            all
        }
    };

    // The cursor is where the pulls stopped; every row before it arrived, once per content.
    let cursor = stored_cursor(&s, Mode::Live);
    assert!(
        cursor > start + CDuration::days(2) - CDuration::minutes(10) && cursor <= now_local(),
        "cursor {cursor}"
    );
    let want: HashSet<String> = identities(&s.sim.state, start - CDuration::minutes(30), cursor)
        .into_iter()
        .filter(|i| i != "bad-1")
        .collect();
    let mut per_identity: HashMap<&str, Vec<&Chat1Rec>> = HashMap::new();
    for (r, rec) in &all {
        assert_eq!(r.key, format!("rep-it/{}", rec.identity));
        per_identity.entry(&rec.identity).or_default().push(rec);
    }
    let got_ids: HashSet<String> = per_identity.keys().map(|s| s.to_string()).collect();
    assert_eq!(
        got_ids.len(),
        want.len(),
        "missing: {:?}, extra: {:?}",
        want.difference(&got_ids).take(5).collect::<Vec<_>>(),
        got_ids.difference(&want).take(5).collect::<Vec<_>>()
    );
    assert_eq!(got_ids, want);
    for (id, recs) in &per_identity {
        let hashes: HashSet<&str> = recs.iter().map(|r| r.row_hash.as_str()).collect();
        assert_eq!(
            hashes.len(),
            recs.len(),
            "{id}: published twice with the same content"
        );
        if *id == changed_id.identity.as_str() {
            assert_eq!(recs.len(), 2, "the changed row is published again");
            assert_eq!(recs[1].row.agent_name.as_deref(), Some("Marta"));
        } else {
            assert_eq!(recs.len(), 1, "{id}");
        }
    }
    assert!(
        per_identity.contains_key("late-1"),
        "the late row was picked up by the look-back"
    );
    // Windows were split: some started off the day boundary.
    let starts: HashSet<&str> = all
        .iter()
        .map(|(_, r)| r.window_start_raw.as_str())
        .collect();
    assert!(starts.len() > 4, "{starts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backfill_resumes_and_every_row_arrives() {
    let s = Stack::start(
        TOKEN,
        SimMode::Scripted(vec![]),
        &sources("enabled = false\n"),
        &topics(),
    )
    .await;
    s.sim.state.set_report_generation(60, 500);
    let from = hour_floor(now_local()) - CDuration::days(3);
    let to = from + CDuration::days(1);
    let (f, t) = (
        from.format("%Y-%m-%d %H:%M:%S").to_string(),
        to.format("%Y-%m-%d %H:%M:%S").to_string(),
    );
    let args = [
        "backfill",
        "--config",
        s.config.to_str().unwrap(),
        "--source",
        "rep-it",
        "--report",
        "chat_1",
        "--from",
        &f,
        "--to",
        &t,
    ];
    let key = cursor_key("rep-it", ReportKind::Chat1, Mode::Backfill { from, to });
    let run = |env: &[(&str, String)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ccdc"));
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let killed = run(&[("CCDC_FAILPOINT", format!("kill-after-commit:{key}:2"))]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(libc::SIGKILL),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let halfway = stored_cursor(&s, Mode::Backfill { from, to });
    assert!(halfway > from && halfway < to, "{halfway}");

    let started = Instant::now();
    let done = run(&[]);
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("complete"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(stored_cursor(&s, Mode::Backfill { from, to }), to);

    let want: HashSet<String> = identities(&s.sim.state, from, to).into_iter().collect();
    assert_eq!(want.len(), 1440);
    let mut reader = s.reader(ROWS).await;
    let got = drain(&s, &mut reader, want.len(), Duration::from_secs(2));
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for (_, r) in &got {
        ids.entry(r.identity.clone())
            .or_default()
            .insert(r.event_id.clone());
    }
    assert_eq!(
        ids.keys().cloned().collect::<HashSet<_>>(),
        want,
        "every row of the range, none outside"
    );
    assert!(
        ids.values().all(|e| e.len() == 1),
        "a repeated row carries the same event id"
    );
}
