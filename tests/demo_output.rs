//! `ccdc demo` names the stream of every line it prints: one JSON object per line,
//! `{"topic":…,"type":…,"key":…,"event":{…}}`, so a reader tells a Comm100 `Today` record from a
//! `RightNow` one, or an interaction event from an agent event (issue #18, item 5).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

#[test]
fn every_demo_line_names_its_topic_type_and_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["demo", "--interval", "500ms", "--duration", "8s"])
        .env("CCDC_LOG", "warn")
        .output()
        .expect("ccdc demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ccdc demo failed:\n{stderr}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");

    // The streams each type may appear on (the default topics).
    let topic_of: BTreeMap<&str, &str> = [
        ("interaction-started", "ccdc.interactions"),
        ("interaction-ended", "ccdc.interactions"),
        ("agent-status-changed", "ccdc.agent-status"),
        ("comm100-queue", "ccdc.comm100.queue"),
        ("comm100-today", "ccdc.comm100.today"),
        ("comm100-right-now", "ccdc.comm100.right-now"),
        ("wolkvox-chat_1-row", "ccdc.wolkvox.chat_1"),
        ("wolkvox-diagram_9-row", "ccdc.wolkvox.diagram_9"),
        ("dead-letter", "ccdc.dead-letter"),
        ("interaction-reconciled", "ccdc.interactions-reconciled"),
        ("heartbeat", "ccdc.heartbeat"),
        ("agent-state", "ccdc.agent-state"),
    ]
    .into();
    let mut seen = BTreeSet::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["event", "key", "topic", "type"].into(), "{line}");
        let ty = v["type"].as_str().unwrap();
        assert_eq!(
            Some(&v["topic"].as_str().unwrap()),
            topic_of.get(ty),
            "{line}"
        );
        let event = &v["event"];
        assert!(event.is_object(), "{line}");
        // The key is the record's Kafka key: it starts with the event's source.
        let source = event["source"].as_str().unwrap();
        assert!(v["key"].as_str().unwrap().starts_with(source), "{line}");
        match ty {
            "interaction-started" => assert_eq!(event["event_type"], "STARTED", "{line}"),
            "interaction-ended" => assert_eq!(event["event_type"], "ENDED", "{line}"),
            _ => {}
        }
        seen.insert(ty.to_string());
    }
    for ty in [
        "interaction-started",
        "agent-status-changed",
        "comm100-queue",
        "comm100-today",
        "comm100-right-now",
    ] {
        assert!(seen.contains(ty), "no {ty} line in 8 s: {seen:?}\n{stdout}");
    }
}
