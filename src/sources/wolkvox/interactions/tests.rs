use super::*;

fn parse(body: &str) -> Result<InteractionSnapshot, SourceError> {
    parse_bounded(body, PollBound::new(1000, 1 << 20))
}

fn parse_bounded(body: &str, bound: PollBound) -> Result<InteractionSnapshot, SourceError> {
    parse_interactions(
        "ops",
        "America/Bogota".parse().unwrap(),
        42,
        bound,
        &mut body.as_bytes(),
    )
}

#[test]
fn seed_shape_with_string_code_parses() {
    let body = r#"{"code":"200","error":null,"msg":"2 records were found","data":[
        {"agent_id":"1001","active_interactions":[
            {"conn_id":"c1","subject":"Hola","fromname":"Ana","date":"2026-11-21 10:15:00"},
            {"conn_id":"c2","subject":"","fromname":"","date":""}]},
        {"agent_id":1002,"active_interactions":[]}]}"#;
    let s = parse(body).unwrap();
    assert_eq!(s.observed_at, 42);
    assert_eq!(s.interactions.len(), 2);
    let c1 = s.interactions.get("c1", "1001").unwrap();
    assert_eq!(c1.subject, Some("Hola"));
    assert_eq!(c1.vendor_timestamp_raw, Some("2026-11-21 10:15:00"));
    assert_eq!(c1.vendor_timestamp, Some(1_795_274_100_000)); // 15:15:00Z
    let c2 = s.interactions.get("c2", "1001").unwrap();
    assert_eq!((c2.subject, c2.vendor_timestamp), (None, None));
}

#[test]
fn numeric_codes_200_201_202_are_success() {
    for code in ["200", "201", "202", "\"201\""] {
        let body = format!(r#"{{"code":{code},"data":[]}}"#);
        assert!(parse(&body).unwrap().interactions.is_empty(), "code {code}");
    }
}

#[test]
fn vendor_error_code_is_an_error_with_the_vendors_message() {
    let e =
        parse(r#"{"code":401,"error":"invalid token","msg":"0 records were found","data":null}"#)
            .unwrap_err();
    assert_eq!(e.kind(), "vendor_code");
    let text = e.to_string();
    assert!(
        text.contains("ops")
            && text.contains(INTERACTIONS_ENDPOINT)
            && text.contains("401")
            && text.contains("invalid token"),
        "{text}"
    );
}

#[test]
fn wrong_types_and_missing_fields_name_the_field() {
    let e = parse(r#"{"code":200,"data":[{"agent_id":"1","active_interactions":"none"}]}"#)
        .unwrap_err();
    assert!(e.to_string().contains("data[0].active_interactions"), "{e}");
    let e = parse(r#"{"code":200,"data":[{"agent_id":"1"}]}"#).unwrap_err();
    assert!(e.to_string().contains("active_interactions"), "{e}");
    // An interaction under an empty agent id is nobody's: not started, and no error.
    let s =
        parse(r#"{"code":200,"data":[{"agent_id":"","active_interactions":[{"conn_id":"c"}]}]}"#)
            .unwrap();
    assert!(s.interactions.is_empty());
    // A success without rows: `data` null or left out is none.
    for none in [r#"{"code":200}"#, r#"{"code":200,"data":null}"#] {
        assert!(parse(none).unwrap().interactions.is_empty(), "{none}");
    }
    let e = parse(r#"{"data":[]}"#).unwrap_err();
    assert!(e.to_string().contains("`code`"), "{e}");
}

#[test]
fn no_interactions_may_be_written_as_an_empty_string_or_null_and_a_row_without_agent_says_nothing()
{
    // Wolkvox: every field is a string, and an empty one means "no value".
    let body = r#"{"code":200,"data":[
        {"agent_id":"1","active_interactions":""},
        {"agent_id":"2","active_interactions":null},
        {"agent_id":"","active_interactions":[]},
        {"agent_id":"","active_interactions":""},
        {"agent_id":"3","active_interactions":[{"conn_id":"c"}]}]}"#;
    let s = parse(body).unwrap();
    assert_eq!(s.interactions.len(), 1);
    for none in ["\"\"", "null", "\" \""] {
        let body =
            format!(r#"{{"code":200,"data":[{{"agent_id":"1","active_interactions":{none}}}]}}"#);
        assert!(parse(&body).unwrap().interactions.is_empty(), "{body}");
    }
}

#[test]
fn truncated_or_malformed_json_is_a_parse_error() {
    assert_eq!(
        parse(r#"{"code":200,"data":[{"agent_id":"1","active_inter"#)
            .unwrap_err()
            .kind(),
        "parse"
    );
    assert_eq!(
        parse("<html>502 Bad Gateway</html>").unwrap_err().kind(),
        "parse"
    );
}

#[test]
fn duplicate_pairs_are_kept_once() {
    let body = r#"{"code":200,"data":[{"agent_id":"1","active_interactions":[{"conn_id":"c"},{"conn_id":"c"}]}]}"#;
    assert_eq!(parse(body).unwrap().interactions.len(), 1);
}

/// `n` agents with `per` interactions each.
fn body(n: usize, per: usize, agent_id: impl Fn(usize) -> String) -> String {
    let agents: Vec<String> = (0..n)
        .map(|a| {
            let its: Vec<String> = (0..per)
                .map(|i| format!(r#"{{"conn_id":"c{a}-{i}","subject":"Hola"}}"#))
                .collect();
            format!(
                r#"{{"agent_id":"{}","active_interactions":[{}]}}"#,
                agent_id(a),
                its.join(",")
            )
        })
        .collect();
    format!(r#"{{"code":200,"data":[{}]}}"#, agents.join(","))
}

#[test]
fn more_interactions_than_max_rows_fail_the_poll_naming_the_bound() {
    let b = body(3, 4, |a| a.to_string());
    assert_eq!(
        parse_bounded(&b, PollBound::new(12, 1 << 20))
            .unwrap()
            .interactions
            .len(),
        12
    );
    let e = parse_bounded(&b, PollBound::new(11, 1 << 20)).unwrap_err();
    assert_eq!(e.kind(), "over_bound");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("ops {INTERACTIONS_ENDPOINT}: "))
            && text.contains("more than 11 rows (max_rows_per_poll)"),
        "{text}"
    );
}

#[test]
fn an_agent_id_copied_into_many_interactions_counts_every_copy() {
    // 2 kB of agent id × 100 interactions: 200 kB decoded from a 5 kB body (40×), over 8 × 16 kB.
    let long = "a".repeat(2_000);
    let b = body(1, 100, |_| long.clone());
    assert!(b.len() < 16 * 1024);
    let e = parse_bounded(&b, PollBound::new(1000, 16 * 1024)).unwrap_err();
    assert!(e.to_string().contains("decoded bytes"), "{e}");
    // The same interactions under a short id fit.
    let b = body(1, 100, |_| "a".into());
    assert_eq!(
        parse_bounded(&b, PollBound::new(1000, 16 * 1024))
            .unwrap()
            .interactions
            .len(),
        100
    );
}

#[test]
fn an_answer_of_as_many_rows_as_the_vendor_sends_per_call_is_refused_whole() {
    let bound = PollBound::new(100_000, 64 << 20);
    let parse_whole = |b: &str| {
        parse_interactions_body(
            "ops",
            "America/Bogota".parse().unwrap(),
            42,
            bound,
            Body::Whole(b.as_bytes()),
        )
    };
    // Agent rows are the records counted; the last may hold the only interaction.
    let rows = |n: usize| {
        body(n, 0, |a| a.to_string()).replace(
            r#""active_interactions":[]}]}"#,
            r#""active_interactions":[{"conn_id":"c","subject":"Hola"}]}]}"#,
        )
    };
    let under = rows(59_999);
    assert_eq!(parse_whole(&under).unwrap().interactions.len(), 1);
    assert_eq!(parse_bounded(&under, bound).unwrap().interactions.len(), 1);
    // The fast reader (whole), serde from a slice (an escape makes the fast reader give up)
    // and serde streamed all refuse it.
    let at = rows(60_000);
    let escaped = at.replace(r#""subject":"Hola""#, r#""subject":"Ho\u006ca""#);
    assert_ne!(escaped, at);
    for e in [
        parse_whole(&at).unwrap_err(),
        parse_whole(&escaped).unwrap_err(),
        parse_bounded(&at, bound).unwrap_err(),
    ] {
        assert_eq!(e.kind(), "row_limit");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("ops {INTERACTIONS_ENDPOINT}: "))
                && text.contains("60000 rows")
                && text.contains("nothing of this poll is used"),
            "{text}"
        );
    }
}

#[test]
fn an_agent_with_an_interaction_without_conn_id_keeps_what_it_had_and_the_others_go_on() {
    let tz: Tz = "America/Bogota".parse().unwrap();
    let bound = PollBound::new(1000, 1 << 20);
    let read = |body: &str, at: i64, previous: Option<&InteractionSnapshot>| {
        parse_interactions_after("ops", tz, at, bound, Body::Whole(body.as_bytes()), previous)
    };
    let first = read(
        r#"{"code":200,"data":[
            {"agent_id":"1","active_interactions":[{"conn_id":"a1"},{"conn_id":"a2"}]},
            {"agent_id":"2","active_interactions":[{"conn_id":"b1"}]}]}"#,
        1_000,
        None,
    )
    .unwrap();
    // Agent 1: a1 listed, a new a3, and one without an id (a2 under a vendor fault?);
    // agent 2's b1 has ended, and agent 3 has one with an empty id and no other.
    for unreadable in [r#"{"subject":"x"}"#, r#"{"conn_id":"","subject":"x"}"#] {
        let body = format!(
            r#"{{"code":200,"data":[
            {{"agent_id":"1","active_interactions":[{{"conn_id":"a1"}},{unreadable},{{"conn_id":"a3"}}]}},
            {{"agent_id":"2","active_interactions":[]}},
            {{"agent_id":"3","active_interactions":[{unreadable}]}}]}}"#
        );
        let next = read(&body, 2_000, Some(&first)).unwrap();
        let keys: Vec<(String, String)> = next
            .interactions
            .iter()
            .map(|i| (i.agent_id.to_string(), i.interaction_id.to_string()))
            .collect();
        let mut keys = keys;
        keys.sort();
        let k = |a: &str, i: &str| (a.to_string(), i.to_string());
        assert_eq!(
            keys,
            vec![k("1", "a1"), k("1", "a2"), k("1", "a3")],
            "{unreadable}"
        );
        // a2 is carried as it was: first seen in the first poll.
        assert_eq!(
            next.interactions.get("a2", "1").unwrap().first_seen,
            Some(1_000)
        );
        assert_eq!(
            next.interactions.get("a3", "1").unwrap().first_seen,
            Some(2_000)
        );
        // Agents 1 and 3 were last listed completely by the first poll.
        let since: Vec<(&str, i64)> = next.held.iter().map(|(a, t)| (a.as_str(), *t)).collect();
        assert_eq!(since, [("1", 1_000), ("3", 1_000)]);
        // Listed completely again: a2 ends, bounded from the first poll; nothing is held.
        let last = read(
            r#"{"code":200,"data":[{"agent_id":"1","active_interactions":[{"conn_id":"a1"},{"conn_id":"a3"}]}]}"#,
            3_000,
            Some(&next),
        )
        .unwrap();
        assert!(last.held.is_empty());
        let ended: Vec<_> = crate::diff::diff_interactions(&meta(), Some(&next), &last)
            .into_iter()
            .map(|e| (e.interaction_id, e.ended_after))
            .collect();
        assert_eq!(ended, [("a2".to_string(), Some(1_000))]);
        // Without a previous snapshot there is nothing to keep, and no error.
        let alone =
            parse_interactions_body("ops", tz, 2_000, bound, Body::Whole(body.as_bytes())).unwrap();
        assert_eq!(alone.interactions.len(), 2);
    }
    // Interactions under an empty agent id are nobody's to start, and may be anybody's: the
    // agents that had them keep what they had (every agent, for one without a conn_id).
    let keys = |s: &InteractionSnapshot| {
        let mut k: Vec<String> = s
            .interactions
            .iter()
            .map(|i| format!("{}/{}", i.agent_id, i.interaction_id))
            .collect();
        k.sort();
        k
    };
    let orphan = |its: &str| {
        format!(
            r#"{{"code":200,"data":[
            {{"agent_id":"1","active_interactions":[{{"conn_id":"a1"}}]}},
            {{"agent_id":"2","active_interactions":[]}},
            {{"agent_id":"","active_interactions":[{its}]}}]}}"#
        )
    };
    // b1, listed under no agent: agent 2 keeps it; agent 1's a2 (not listed) has ended.
    let next = read(&orphan(r#"{"conn_id":"b1"}"#), 2_000, Some(&first)).unwrap();
    assert_eq!(keys(&next), ["1/a1", "2/b1"]);
    assert_eq!(next.held.keys().collect::<Vec<_>>(), ["2"]);
    // One without a conn_id either: every agent keeps what it had, nothing ends.
    let next = read(&orphan(r#"{"subject":"x"}"#), 2_000, Some(&first)).unwrap();
    assert_eq!(keys(&next), ["1/a1", "1/a2", "2/b1"]);
    assert!(crate::diff::diff_interactions(&meta(), Some(&first), &next).is_empty());
    // One nobody had: not started, nobody held.
    let next = read(&orphan(r#"{"conn_id":"z9"}"#), 2_000, Some(&first)).unwrap();
    assert_eq!(keys(&next), ["1/a1"]);
    assert!(next.held.is_empty());
}

fn meta() -> crate::event::SourceMeta {
    crate::event::SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    }
}
