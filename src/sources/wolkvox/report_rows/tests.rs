use super::*;

fn bogota() -> Tz {
    "America/Bogota".parse().unwrap()
}

fn decode(kind: ReportKind, v: serde_json::Value) -> DecodedRow {
    super::decode(kind, &v.to_string(), bogota())
}

fn chat(v: serde_json::Value) -> Result<Chat1Row, String> {
    match decode(ReportKind::Chat1, v).row.map_err(|e| e.0)? {
        ReportRow::Chat1(r) => Ok(r),
        other => panic!("{other:?}"),
    }
}

#[test]
fn chat_1_seed_row_coerces_every_field() {
    let row = serde_json::json!({
        "conn_id": "c-1", "channel": "whatsapp", "date": "2026-11-21 10:15:00", "customer_name": "Ana",
        "customer_email": "ana@example.com", "customer_phone": "573001112233", "customer_chars": "120",
        "agent_id": "1001", "agent_name": "Luis", "agent_chars": "340", "time_on_agent": "00:05:10",
        "chat_duration": "420", "cod_act": "7", "description_cod_act": "Sale", "comments": "test",
        "customer_id": "99", "skill_id": "3", "ASA": "15", "last_participant_who_spoke": "agent",
        "extra_field": "", "comment": "", "user_id": "u1", "feeling": "positive", "agent_anwers ": "12"
    });
    let d = decode(ReportKind::Chat1, row.clone());
    assert_eq!(d.identity.as_deref(), Some("c-1"));
    let r = chat(row).unwrap();
    assert_eq!(
        (r.conn_id.as_str(), r.channel.as_deref()),
        ("c-1", Some("whatsapp"))
    );
    assert_eq!(
        (r.date, r.date_raw.as_deref()),
        (Some(1_795_274_100_000), Some("2026-11-21 10:15:00"))
    );
    assert_eq!(
        (r.customer_chars, r.agent_chars, r.agent_answers),
        (Some(120), Some(340), Some(12))
    );
    assert_eq!(
        (r.time_on_agent_s, r.chat_duration_s, r.asa_s),
        (Some(310), Some(420), Some(15))
    );
    assert_eq!(
        (r.extra_field, r.comment, r.comments.as_deref()),
        (None, None, Some("test"))
    );
}

#[test]
fn empty_is_null_and_garbage_is_an_error_naming_the_field() {
    let r = chat(
        serde_json::json!({"conn_id": "c", "customer_chars": "", "date": "", "agent_anwers ": ""}),
    )
    .unwrap();
    assert_eq!(
        (r.customer_chars, r.date, r.agent_answers),
        (None, None, None)
    );
    let e = chat(serde_json::json!({"conn_id": "c", "customer_chars": "many"})).unwrap_err();
    assert!(e.contains("customer_chars"), "{e}");
    let e = chat(serde_json::json!({"conn_id": "c", "date": "yesterday"})).unwrap_err();
    assert!(e.contains("date"), "{e}");
    let no_id = decode(ReportKind::Chat1, serde_json::json!({"conn_id": " "}));
    assert!(no_id.row.unwrap_err().0.contains("conn_id"));
    assert_eq!(no_id.identity, None);
}

#[test]
fn lenient_values_numbers_trimming_escapes_and_the_unspaced_answers_key() {
    let r = chat(serde_json::json!({
        "conn_id": 42, "customer_chars": 7, "agent_name": "  Luis \"L\"  ",
        "channel": true, "comments": ["x"], "comment": {"a": 1}, "customer_id": null,
        "agent_anwers": "3", "unknown_new_field": "ignored"
    }))
    .unwrap();
    assert_eq!(r.conn_id, "42");
    assert_eq!(r.customer_chars, Some(7));
    assert_eq!(r.agent_name.as_deref(), Some("Luis \"L\""));
    assert_eq!(
        (r.channel, r.comments, r.comment, r.customer_id),
        (None, None, None, None)
    );
    assert_eq!(r.agent_answers, Some(3));
}

#[test]
fn rows_that_are_not_objects_are_error_rows_with_a_hash() {
    for raw in [
        "[1,2]",
        "\"text\"",
        "{\"conn_id\": \"c\", \"conn_id\": \"d\"}",
    ] {
        let d = super::decode(ReportKind::Chat1, raw, bogota());
        assert!(d.row.unwrap_err().0.contains("not a chat_1 row"), "{raw}");
        assert_eq!(d.hash.len(), 32);
    }
}

#[test]
fn the_hash_is_xxh3_128_of_the_separated_parts_in_hex() {
    let expected = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"a\x1f\x1fbc\x1f"));
    assert_eq!(hash(&["a", "", "bc"]), expected);
    assert_eq!(
        hash(&[]),
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b""))
    );
}

#[test]
fn the_hash_follows_content_not_key_order_or_spacing() {
    let a = super::decode(
        ReportKind::Chat1,
        r#"{"conn_id":"c","agent_id":"1"}"#,
        bogota(),
    );
    let b = super::decode(
        ReportKind::Chat1,
        r#"{ "agent_id" : "1", "conn_id" : "c" }"#,
        bogota(),
    );
    let c = super::decode(
        ReportKind::Chat1,
        r#"{"conn_id":"c","agent_id":"2"}"#,
        bogota(),
    );
    let d = super::decode(
        ReportKind::Chat1,
        r#"{"conn_id":"c","agent_name":"1"}"#,
        bogota(),
    );
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, c.hash);
    assert_ne!(
        a.hash, d.hash,
        "the same value in another field is other content"
    );
}

/// Both readers on one row text: the same row, or the same error.
fn agree<'a, T>(raw: &'a str, read: fn(&'a str) -> Result<T, serde_json::Error>)
where
    T: Deserialize<'a> + PartialEq + std::fmt::Debug,
{
    match (read(raw), serde_json::from_str::<T>(raw)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{raw}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{raw}"),
        (a, b) => panic!("{raw}: fast {a:?}, serde_json {b:?}"),
    }
}

#[test]
fn the_flat_reader_and_serde_json_agree_on_generated_rows() {
    let keys = [
        "conn_id",
        "date",
        "agent_name",
        "ASA",
        "agent_anwers ",
        "agent_anwers",
        "customer_chars",
        "session_id",
        "routing_answer",
        "unknown",
        r"conn\u005fid",
    ];
    let values = [
        r#""""#,
        r#"" a ""#,
        r#""ü😀""#,
        r#""120""#,
        r#""2026-11-21 10:15:00""#,
        r#""00:05:10""#,
        r#""x\"y""#,
        r#""\u00e9""#,
        "\"tab\there\"",
        "42",
        "-1.5",
        "null",
        "true",
        "[]",
        r#"{"a":1}"#,
    ];
    let spaces = ["", " ", "\n", "\t ", "\r\n"];
    let mut state = 7u64;
    let mut pick = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let (mut plain, mut repeated) = (0, 0);
    for _ in 0..5_000 {
        let mut raw = String::from(spaces[pick(5)]);
        raw.push('{');
        let mut used = std::collections::HashSet::new();
        for m in 0..pick(8) {
            if m > 0 {
                raw.push(',');
            }
            let key = keys[pick(keys.len())];
            repeated += usize::from(!used.insert(key));
            // Mostly plain strings, as the vendor sends them.
            let value = if pick(4) > 0 {
                values[pick(6)]
            } else {
                values[pick(values.len())]
            };
            raw += &format!(
                "{}\"{key}\"{}:{}{value}{}",
                spaces[pick(5)],
                spaces[pick(5)],
                spaces[pick(5)],
                spaces[pick(5)]
            );
        }
        raw.push('}');
        // Now and then a syntax error the fast reader must not accept.
        match pick(20) {
            0 => raw.insert(raw.len() - 1, ','),
            1 => raw.push_str(" x"),
            2 => {
                let half = (0..=raw.len() / 2).rev().find(|&i| raw.is_char_boundary(i));
                raw.truncate(half.unwrap_or(0));
            }
            _ => {}
        }
        raw += spaces[pick(5)];
        plain += usize::from(flat::scan(&raw, |_, _| true));
        agree(&raw, Chat1Raw::read);
        agree(&raw, Diagram9Raw::read);
    }
    // The fast path really ran, on rows with and without repeated fields.
    assert!(plain > 1_000 && repeated > 1_000, "{plain} {repeated}");
}

#[test]
fn diagram_9_identity_is_session_and_conn() {
    let row = serde_json::json!({"session_id": "s1", "channel": "web", "rp_id": "4", "date": "2026-11-21 10:15:00",
            "customer_name": "", "customer_email": "", "customer_phone": "", "customer_query": "saldo", "routing_answer": "skill 3",
            "customer_id": "", "conn_id": "c9"});
    let d = decode(ReportKind::Diagram9, row.clone());
    assert_eq!(d.identity.as_deref(), Some("s1/c9"));
    let Ok(ReportRow::Diagram9(r)) = d.row else {
        panic!()
    };
    assert_eq!(
        (r.customer_query.as_deref(), r.customer_name, r.date),
        (Some("saldo"), None, Some(1_795_274_100_000))
    );
    // A session that reached no call: its identity is the session's, the row is published.
    let mut bot = row.clone();
    bot["conn_id"] = serde_json::json!("");
    let d = decode(ReportKind::Diagram9, bot);
    assert_eq!(d.identity.as_deref(), Some("s1/"));
    assert!(matches!(d.row, Ok(ReportRow::Diagram9(ref r)) if r.conn_id.is_empty()));
    assert_eq!(ReportKind::Diagram9.default_row_limit(), 6_000);
    assert_eq!(ReportKind::parse("diagram_9"), Some(ReportKind::Diagram9));
}
