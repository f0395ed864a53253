use super::*;
use crate::store::outbox::{self, JSON_VERSION, VERSION};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn interaction(set: bool) -> Event {
    let (text, n) = (
        |v: &str| set.then(|| v.to_string()),
        |v: i64| set.then_some(v),
    );
    Event::Interaction(InteractionEvent {
        event_id: "e-1".into(),
        event_type: InteractionEventType::Ended,
        source: "ops".into(),
        vendor: "wolkvox".into(),
        agent_id: "1001".into(),
        interaction_id: "ñandú \"quoted\" \u{1}".into(),
        initial: set,
        transfer: !set,
        transfer_agent_id: text("1002"),
        observed_at: -5,
        previous_observed_at: n(i64::MIN),
        vendor_timestamp: n(i64::MAX),
        vendor_timestamp_raw: text("2026-11-21 07:10:37"),
        subject: text(""),
        from_name: text("Jorge"),
        latest_only: set,
        started_at: n(1),
        started_at_raw: text("x"),
        first_observed_at: n(2),
        ended_after: n(3),
        ended_before: n(4),
        duration_ms: n(5),
        duration_min_ms: n(6),
        duration_max_ms: n(7),
        derivation: if set {
            Derivation::ReplacedByNext
        } else {
            Derivation::Unknown
        },
    })
}

fn chat(set: bool) -> ReportRow {
    let (t, n) = (
        |v: &str| set.then(|| v.to_string()),
        |v: i64| set.then_some(v),
    );
    ReportRow::Chat1(Chat1Row {
        conn_id: "c-1".into(),
        channel: t("whatsapp"),
        date: n(1_796_083_200_000),
        date_raw: t("2026-12-01 00:00:00"),
        customer_name: t("Ana"),
        customer_email: t("ana@example.com"),
        customer_phone: t("573001112233"),
        customer_chars: n(100),
        agent_id: t("1001"),
        agent_name: t("Luis"),
        agent_chars: n(200),
        time_on_agent_s: n(310),
        chat_duration_s: n(420),
        cod_act: t("7"),
        description_cod_act: t("Sale"),
        comments: t(&"long ".repeat(1000)),
        customer_id: t("99"),
        skill_id: t("3"),
        asa_s: n(15),
        last_participant_who_spoke: t("agent"),
        extra_field: t(""),
        comment: t("c"),
        user_id: t("u1"),
        feeling: t("positive"),
        agent_answers: n(-1),
    })
}

fn diagram(set: bool) -> ReportRow {
    let (t, n) = (
        |v: &str| set.then(|| v.to_string()),
        |v: i64| set.then_some(v),
    );
    ReportRow::Diagram9(Diagram9Row {
        session_id: "s-1".into(),
        channel: t("webchat"),
        rp_id: t("4"),
        date: n(7),
        date_raw: t("2026-12-01 00:00:07"),
        customer_name: t("Ana"),
        customer_email: t("a@b"),
        customer_phone: t("57"),
        customer_query: t("saldo"),
        routing_answer: t("skill 3"),
        customer_id: t("99"),
        conn_id: "d-1".into(),
    })
}

fn report(row: ReportRow) -> Event {
    Event::ReportRow(Box::new(ReportRecord {
        event_id: "e-2".into(),
        source: "ops".into(),
        vendor: "wolkvox".into(),
        identity: "c-1".into(),
        row_hash: "0123456789abcdef0123456789abcdef".into(),
        window_start: 1,
        window_end: 2,
        window_start_raw: "20261201000000".into(),
        window_end_raw: "20261201115959".into(),
        pulled_at: 3,
        row,
    }))
}

fn dead_letter(set: bool) -> Event {
    let t = |v: &str| set.then(|| v.to_string());
    Event::DeadLetter(DeadLetter {
        event_id: "e-3".into(),
        source: "ops".into(),
        vendor: "wolkvox".into(),
        report: "chat_1".into(),
        window_start_raw: "a".into(),
        window_end_raw: "b".into(),
        error: "bad date".into(),
        raw: r#"{"conn_id":"c-1"}"#.into(),
        failed_at: 9,
        original_topic: t("t"),
        original_key: t("k"),
        original_event_id: s("e"),
    })
}

fn heartbeat() -> Event {
    Event::Heartbeat(Heartbeat {
        event_id: "e-4".into(),
        source: "ops".into(),
        vendor: "wolkvox".into(),
        endpoint: "real_time.php?api=agents".into(),
        observed_at: 1,
        polls: 2,
        size: 3,
    })
}

fn covered() -> Vec<Event> {
    vec![
        interaction(true),
        interaction(false),
        report(chat(true)),
        report(chat(false)),
        report(diagram(true)),
        report(diagram(false)),
        dead_letter(true),
        dead_letter(false),
        heartbeat(),
    ]
}

#[test]
fn covered_events_round_trip_in_binary_with_every_field_set_or_not() {
    for e in covered() {
        let bytes = outbox::encode(&e);
        assert_eq!(bytes[0], VERSION, "{e:?}");
        assert_eq!(outbox::decode(&bytes).unwrap(), e);
        let json = serde_json::to_vec(&e).unwrap().len();
        assert!(bytes.len() < json, "binary {} vs JSON {json}", bytes.len());
    }
}

#[test]
fn every_derivation_and_event_type_keeps_its_symbol() {
    use Derivation::*;
    for d in [
        InitialSnapshot,
        SnapshotDiff,
        VendorEndedFlag,
        ReplacedByNext,
        ConfirmedAbsent,
        Report,
        Unknown,
    ] {
        for t in [InteractionEventType::Started, InteractionEventType::Ended] {
            let Event::Interaction(mut i) = interaction(true) else {
                unreachable!()
            };
            (i.derivation, i.event_type) = (d, t);
            let e = Event::Interaction(i);
            assert_eq!(outbox::decode(&outbox::encode(&e)).unwrap(), e);
        }
    }
}

#[test]
fn other_events_stay_json() {
    let e: Event = serde_json::from_str(
        r#"{"kind":"agent_status","event_id":"x","source":"s","vendor":"wolkvox","agent_id":"1","status":"READY","initial":true,"observed_at":1}"#,
    )
    .unwrap();
    let bytes = outbox::encode(&e);
    assert_eq!(bytes[0], JSON_VERSION);
    assert_eq!(outbox::decode(&bytes).unwrap(), e);
}

#[test]
fn entries_written_as_json_by_the_previous_version_are_read() {
    // Version 1 was the only encoding before this one: every event as JSON after the byte.
    for e in covered() {
        let mut v1 = vec![JSON_VERSION];
        v1.extend(serde_json::to_vec(&e).unwrap());
        assert_eq!(outbox::decode(&v1).unwrap(), e);
    }
}

#[test]
fn truncated_or_padded_entries_are_errors_not_panics() {
    for e in covered() {
        let bytes = outbox::encode(&e);
        for end in 1..bytes.len() {
            assert!(
                outbox::decode(&bytes[..end]).is_err(),
                "{end} of {}",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(outbox::decode(&longer)
            .unwrap_err()
            .to_string()
            .contains("left after"));
    }
    let bad = |b: &[u8]| outbox::decode(b).unwrap_err().to_string();
    assert!(bad(&[VERSION, 9]).contains("not an event kind"));
    assert!(
        bad(&[VERSION, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1])
            .contains("64 bits")
    );
    assert!(bad(&[VERSION, 3, 0x7f]).contains("past the end"));
    assert!(bad(&[VERSION, 3, 2, 0xc3, 0x28]).contains("UTF-8"));
}

#[test]
fn the_size_bound_applies_to_the_json_form_as_before() {
    // 50,000 control characters: 50 KB in binary, 300 KB as JSON (`\u0001` each): cut.
    let Event::Interaction(mut i) = interaction(true) else {
        unreachable!()
    };
    i.subject = Some("\u{1}".repeat(50_000));
    let bytes = outbox::encode(&Event::Interaction(i.clone()));
    let Event::Interaction(back) = outbox::decode(&bytes).unwrap() else {
        panic!("an interaction")
    };
    assert!(back.subject.unwrap().ends_with("more bytes]"), "cut");
    // 40,000 plain characters: 40 KB either way, kept whole.
    i.subject = Some("a".repeat(40_000));
    let e = Event::Interaction(i);
    assert_eq!(outbox::decode(&outbox::encode(&e)).unwrap(), e);
}
