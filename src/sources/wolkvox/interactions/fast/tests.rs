//! The fast reader against the serde decoder: the same snapshot or the same error.

use super::super::parse_interactions_body;
use super::*;
use crate::diff::InteractionSnapshot;
use crate::sources::bound::PollBound;
use crate::sources::http::Body;
use crate::sources::SourceError;

fn both(body: &str, bound: PollBound) -> [Result<InteractionSnapshot, String>; 2] {
    let tz = "America/Bogota".parse().unwrap();
    let run = |b: Body| {
        parse_interactions_body("s", tz, 1, bound, b).map_err(|e: SourceError| e.to_string())
    };
    [
        run(Body::Whole(body.as_bytes())),
        run(Body::Stream(&mut body.as_bytes())),
    ]
}

/// Whether the fast reader reads `body` whole (outside a bounded decode: nothing is counted).
fn read_fast(body: &str) -> bool {
    matches!(scan(body, &mut Builder::default()), Scan::Done { .. })
}

fn agent(id: &str, its: &[String]) -> String {
    format!(
        r#"{{"agent_id":{id},"active_interactions":[{}]}}"#,
        its.join(",")
    )
}

fn it(conn: &str, subject: &str, from: &str, date: &str) -> String {
    format!(r#"{{"conn_id":{conn},"subject":{subject},"fromname":{from},"date":{date}}}"#)
}

fn envelope(code: &str, agents: &[String]) -> String {
    format!(
        r#"{{"code":{code},"error":null,"msg":"{} records were found","data":[{}]}}"#,
        agents.len(),
        agents.join(",")
    )
}

#[test]
fn special_bytes_are_found_eight_at_a_time_as_one_at_a_time() {
    let slow = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
    let alphabet = [
        b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00, 0x21, b'!', 0x5b,
    ];
    let mut x: u64 = 7;
    for len in 0..40 {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Mostly plain bytes, a special one now and then.
                    match (x >> 33) % 16 {
                        0..=11 => b'a' + ((x >> 40) % 26) as u8,
                        n => alphabet[((x >> 45) as usize + n as usize) % alphabet.len()],
                    }
                })
                .collect();
            assert_eq!(special(&bytes), slow(&bytes), "{bytes:?}");
        }
    }
}

#[test]
fn the_usual_shape_is_read_fast_and_as_serde_reads_it() {
    let usual = envelope(
        "\"200\"",
        &[
            agent(
                "\"1001\"",
                &[
                    it(
                        "\"c1\"",
                        "\"Hola\"",
                        "\"Ana María\"",
                        "\"2026-11-21 10:15:00\"",
                    ),
                    it("\"c2\"", "\"\"", "null", "\" 2026-11-21 10:16:00 \""),
                ],
            ),
            agent("1002", &[]),
            agent("\" 7 \"", &[it("\" c1 \"", "\"☎ x\"", "\"\"", "\"\"")]),
        ],
    );
    assert!(read_fast(&usual), "the usual shape must take the fast path");
    let [whole, streamed] = both(&usual, PollBound::new(1000, 1 << 20));
    assert_eq!(whole, streamed);
    assert_eq!(whole.unwrap().interactions.len(), 3);
    // Spaces between tokens, keys in another order, a numeric code.
    let spaced = "{ \"data\" : [ {\"active_interactions\" : [ {\"date\":null, \"conn_id\" : \"c\" } ] ,\n \"agent_id\":\"a\"} ] ,\"code\" : 201 }";
    assert!(read_fast(spaced));
    let [whole, streamed] = both(spaced, PollBound::new(1000, 1 << 20));
    assert_eq!(whole, streamed);
}

#[test]
fn anything_else_gives_up_and_reads_as_serde_reads_it() {
    let ok = it("\"c1\"", "\"s\"", "\"f\"", "\"2026-11-21 10:15:00\"");
    let cases: Vec<String> = vec![
        // Escapes, other fields, numbers where text is expected, odd agent ids.
        envelope(
            "200",
            &[agent(
                "\"1\"",
                &[it("\"c\\u00e9\"", "\"a\\\"b\"", "null", "null")],
            )],
        ),
        envelope(
            "200",
            &[agent(
                "\"1\"",
                &[r#"{"conn_id":"c","extra":[1,{"x":2}]}"#.into()],
            )],
        ),
        envelope(
            "200",
            &[agent("\"1\"", &[it("17", "3.5", "true", "\"x\"")])],
        ),
        envelope("200", &[agent("-5", std::slice::from_ref(&ok))]),
        envelope("200", &[agent("1.0", std::slice::from_ref(&ok))]),
        envelope("200", &[agent("007", std::slice::from_ref(&ok))]),
        envelope(
            "200",
            &[agent("123456789012345678901", std::slice::from_ref(&ok))],
        ),
        envelope("200", &[agent("null", std::slice::from_ref(&ok))]),
        envelope("200", &[agent("\"  \"", std::slice::from_ref(&ok))]),
        envelope(
            "200",
            &[agent("\"1\"", &[it("\"\"", "null", "null", "null")])],
        ),
        envelope("200", &[agent("\"1\"", &[r#"{"subject":"x"}"#.into()])]),
        envelope(
            "200",
            &[agent("\"1\"", &[r#"{"conn_id":"a","conn_id":"b"}"#.into()])],
        ),
        envelope("200", &[r#"{"agent_id":"1"}"#.into()]),
        envelope(
            "200",
            &[r#"{"agent_id":"1","agent_id":"2","active_interactions":[]}"#.into()],
        ),
        envelope(
            "200",
            &[r#"{"agent_id":"1","active_interactions":"none"}"#.into()],
        ),
        envelope(
            "200",
            &[r#"{"agent_id":"1","active_interactions":""}"#.into()],
        ),
        envelope(
            "200",
            &[r#"{"agent_id":"1","active_interactions":null}"#.into()],
        ),
        envelope(
            "200",
            &[r#"{"agent_id":"","active_interactions":[]}"#.into()],
        ),
        envelope(
            "200",
            &[r#"{"agent_id":"1","active_interactions":[],"status":"x"}"#.into()],
        ),
        // Duplicated pairs, error codes, envelopes of other shapes, broken JSON.
        envelope("200", &[agent("\"1\"", &[ok.clone(), ok.clone()])]),
        envelope("401", &[]),
        envelope("\"500\"", &[]),
        envelope("200.0", &[agent("\"1\"", std::slice::from_ref(&ok))]),
        r#"{"code":200,"data":null}"#.into(),
        r#"{"code":200}"#.into(),
        r#"{"data":[]}"#.into(),
        r#"{"code":200,"data":[],"error":{"x":1}}"#.into(),
        r#"{"code":200,"data":[],"code":200}"#.into(),
        r#"{"code":200,"data":[]} x"#.into(),
        r#"{"code":200,"data":[],}"#.into(),
        r#"{"code":200,"data":[{"agent_id":"1","active_inter"#.into(),
        "<html>502</html>".into(),
        String::new(),
    ];
    for body in &cases {
        let [whole, streamed] = both(body, PollBound::new(1000, 1 << 20));
        assert_eq!(whole, streamed, "{body}");
    }
    // Ids with a control character are refused by both.
    let raw = envelope(
        "200",
        &[agent("\"1\"", &[it("\"c\u{1}\"", "null", "null", "null")])],
    );
    let [whole, streamed] = both(&raw, PollBound::new(1000, 1 << 20));
    assert!(whole.is_err() && whole == streamed, "{whole:?}");
}

#[test]
fn the_bound_stops_both_readers_alike() {
    let its: Vec<String> = (0..50)
        .map(|i| it(&format!("\"c{i}\""), "\"s\"", "null", "null"))
        .collect();
    let long = format!("\"{}\"", "a".repeat(5_000));
    let body = envelope("200", &[agent("\"1\"", &its), agent(&long, &its[..10])]);
    assert!(read_fast(&body));
    for bound in [
        PollBound::new(49, 1 << 20),
        PollBound::new(55, 1 << 20),
        PollBound::new(1000, 4_000),
        PollBound::new(1000, 1 << 20),
    ] {
        let [whole, streamed] = both(&body, bound);
        assert_eq!(whole, streamed, "{bound:?}");
    }
    let [over, _] = both(&body, PollBound::new(49, 1 << 20));
    assert!(over.unwrap_err().contains("more than 49 rows"));
    let [over, _] = both(&body, PollBound::new(1000, 4_000));
    assert!(over.unwrap_err().contains("decoded bytes"));
}

#[test]
fn generated_bodies_read_the_same_either_way() {
    // Shapes mixed by a fixed pseudo-random sequence: spaces, key orders, nulls, numbers,
    // empty texts, repeated pairs, an escape now and then.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut fast = 0;
    for round in 0..40 {
        let mut agents = vec![];
        for a in 0..(1 + next(12)) {
            let mut its = vec![];
            for i in 0..next(5) {
                let conn = format!("\"{}\"", 9_000 + next(40));
                let subject = match next(40) {
                    0 => "\"a\\nb\"",
                    n => ["\"Billing\"", "null", "\"\"", "\" padded \""][n as usize % 4],
                };
                let from = ["\"Ana\"", "null", "\"María José\""][next(3) as usize];
                let date =
                    ["\"2026-11-21 10:15:00\"", "\"21/11/2026\"", "null", "\"\""][next(4) as usize];
                let mut fields = vec![
                    format!("\"conn_id\":{conn}"),
                    format!("\"subject\":{subject}"),
                    format!("\"fromname\":{from}"),
                    format!("\"date\":{date}"),
                ];
                fields.rotate_left(next(4) as usize);
                // Sometimes without its last field (the conn_id, now and then).
                fields.truncate(4 - (next(8) == 0 && i > 0) as usize);
                its.push(format!(
                    "{{ {} }}",
                    fields.join(if next(2) == 0 { "," } else { " ,\n" })
                ));
            }
            let id = match next(3) {
                0 => format!("{}", 1000 + a),
                _ => format!("\"{}\"", 1000 + a),
            };
            agents.push(format!(
                r#"{{"agent_id":{id},"active_interactions":[{}]}}"#,
                its.join(",")
            ));
        }
        let body = envelope("\"200\"", &agents);
        fast += usize::from(read_fast(&body));
        let [whole, streamed] = both(&body, PollBound::new(10_000, 1 << 20));
        assert_eq!(whole, streamed, "round {round}: {body}");
    }
    assert!(fast >= 10, "only {fast} of 40 bodies took the fast path");
}
