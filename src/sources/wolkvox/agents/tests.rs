use super::*;

const BOUND: PollBound = PollBound {
    max_rows: 1000,
    max_decoded_bytes: 8 << 20,
};

#[test]
fn rows_become_typed_agent_states() {
    let body = r#"{"code":"200","error":null,"msg":"2 records were found","data":[
      {"agent_id":"1001","agent_name":"Ana","agent_status":"Ready","calls":"12","inbound":"10","outbound":"2","internal":"0",
       "time_state_now":"00:03:15","ready_time":"3600","inbound_time":"01:10:00","outbound_time":"","acw_time":"00:00:30",
       "ring_time":"00:00:05","login_time":"08:00:00","aht_time":"00:04:00","ocupation":"87%","aux_time":"00:15:00"},
      {"agent_id":1002,"agent_name":"Luis","agent_status":"Aux - Lunch","calls":"n/a"}]}"#;
    let s = parse_agents("ops", 9, BOUND, &mut body.as_bytes()).unwrap();
    assert_eq!(s.observed_at, 9);
    let a = &s.agents["1001"];
    assert_eq!(
        (a.name.as_deref(), a.status.as_str()),
        (Some("Ana"), "Ready")
    );
    let d = a.wolkvox.as_ref().unwrap();
    assert_eq!(
        (d.calls, d.inbound, d.outbound, d.internal),
        (Some(12), Some(10), Some(2), Some(0))
    );
    assert_eq!(
        (
            d.time_state_now_s,
            d.ready_time_s,
            d.inbound_time_s,
            d.outbound_time_s
        ),
        (Some(195), Some(3600), Some(4200), None)
    );
    assert_eq!(
        (d.login_time_s, d.ocupation.as_deref()),
        (Some(28_800), Some("87%"))
    );
    assert!(d.raw.contains("\"agent_name\":\"Ana\""));
    let b = &s.agents["1002"];
    assert_eq!(
        (b.status.as_str(), b.wolkvox.as_ref().unwrap().calls),
        ("Aux - Lunch", None)
    );
}

#[test]
fn an_agent_without_a_status_or_id_or_listed_twice_invents_nothing() {
    let parse = |at: i64, body: &str| {
        parse_agents_and_unknown("ops", at, BOUND, &mut body.as_bytes()).unwrap()
    };
    let row = |id: &str, status: &str| {
        format!(r#"{{"agent_id":"{id}","agent_status":"{status}","time_state_now":"5"}}"#)
    };
    let body = |rows: &[String]| format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","));
    let meta = crate::event::SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    };
    let mut s1 = parse(1_000, &body(&[row("1", "Ready"), row("2", "Busy")])).0;
    s1.settle(None, Listing::Whole);
    // Agent 1 without a status (empty, then missing), agent 3 new without one.
    for empty in [
        row("1", ""),
        r#"{"agent_id":"1","time_state_now":"5"}"#.to_string(),
    ] {
        let (mut s2, unknown, _) = parse(2_000, &body(&[empty, row("2", "Busy"), row("3", "")]));
        assert_eq!(unknown, ["1", "3"]);
        s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
        assert!(
            diff_agents(&meta, Some(&s1), &s2).is_empty(),
            "no logout, no change"
        );
        assert_eq!(s2.agents["1"].status, "Ready");
        assert_eq!(
            s2.agents["1"].last_seen,
            Some(1_000),
            "its status was seen at 1,000"
        );
        assert!(!s2.agents.contains_key("3"));
        // Its status seen again at 3,000, changed: it began after 1,000, not after 2,000.
        let (mut s3, unknown, _) = parse(3_000, &body(&[row("1", "Busy"), row("2", "Busy")]));
        s3.settle_keeping_unknown(unknown, Some(&s2), Listing::Whole);
        let changed = diff_agents(&meta, Some(&s2), &s3);
        assert_eq!(changed.len(), 1);
        let crate::event::Event::AgentStatus(e) = &changed[0] else {
            panic!("{changed:?}")
        };
        // (time_state_now, 5 s, points before both polls here, so the polls' bounds stand.)
        assert_eq!(e.status_since_after, Some(1_000), "{e:?}");
    }
    // A row without an agent id is left out, and the answer judges nobody logged out: the
    // row may be any agent's.
    for anonymous in [
        r#"{"agent_status":"Busy"}"#,
        r#"{"agent_id":"","agent_status":"Busy"}"#,
    ] {
        let (mut s2, unknown, listing) =
            parse(2_000, &body(&[anonymous.to_string(), row("1", "Ready")]));
        assert_eq!(listing, Listing::Partial);
        s2.settle_keeping_unknown(unknown, Some(&s1), listing);
        assert!(
            diff_agents(&meta, Some(&s1), &s2).is_empty(),
            "agent 2 is not logged out"
        );
        assert_eq!(s2.agents["2"].status, "Busy");
    }
    // An agent listed twice: the first row with a status stands, a later one (with another
    // status, or none) is left out.
    for second in [row("2", "Ready"), row("2", "")] {
        let (mut s2, unknown, listing) =
            parse(2_000, &body(&[row("1", "Ready"), row("2", "Busy"), second]));
        assert_eq!((listing, unknown.len()), (Listing::Whole, 0));
        s2.settle_keeping_unknown(unknown, Some(&s1), listing);
        assert!(diff_agents(&meta, Some(&s1), &s2).is_empty());
    }
    let (mut s2, unknown, _) = parse(
        2_000,
        &body(&[row("1", "Ready"), row("2", ""), row("2", "Aux")]),
    );
    assert!(unknown.is_empty(), "the row with a status stands");
    s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
    assert_eq!(diff_agents(&meta, Some(&s1), &s2).len(), 1, "2: Busy → Aux");
}

fn rows(n: usize, name: &str) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"agent_id":"{i}","agent_name":"{name}","agent_status":"Ready"}}"#))
        .collect();
    format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
}

#[test]
fn more_agents_than_max_rows_fail_the_poll_naming_the_bound() {
    let bound = |max_rows| PollBound { max_rows, ..BOUND };
    let body = rows(5, "Ana");
    let s = parse_agents("ops", 1, bound(5), &mut body.as_bytes()).unwrap();
    assert_eq!(s.agents.len(), 5);
    let e = parse_agents("ops", 1, bound(4), &mut body.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), "over_bound");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("ops {AGENTS_ENDPOINT}: "))
            && text.contains("more than 4 rows (max_rows_per_poll)"),
        "{text}"
    );
}

#[test]
fn decoded_size_and_row_length_are_bounded() {
    // Ten agents of 10 kB names: ≈ 200 kB decoded (the name in the field and in the raw row).
    let body = rows(10, &"n".repeat(10_000));
    let tight = PollBound::new(1000, 20_000); // 160 kB decoded at most
    let e = parse_agents("ops", 1, tight, &mut body.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("decoded bytes"), "{e}");
    let roomy = PollBound::new(1000, 40_000);
    assert_eq!(
        parse_agents("ops", 1, roomy, &mut body.as_bytes())
            .unwrap()
            .agents
            .len(),
        10
    );
    let body = rows(1, &"n".repeat(MAX_ROW_BYTES as usize));
    let e = parse_agents("ops", 1, BOUND, &mut body.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), "over_bound");
    assert!(e.to_string().contains("bytes in one row"), "{e}");
}

#[test]
fn a_row_that_is_not_an_object_names_its_index() {
    let body = r#"{"code":200,"data":[{"agent_id":"1","agent_status":"x"},"oops"]}"#;
    let e = parse_agents("ops", 1, BOUND, &mut body.as_bytes()).unwrap_err();
    assert_eq!(e.kind(), "parse");
    assert!(e.to_string().contains("data[1]"), "{e}");
}

#[test]
fn an_answer_of_as_many_rows_as_the_vendor_sends_per_call_is_refused_whole() {
    let bound = PollBound::new(100_000, 64 << 20);
    let rows = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"agent_id":"{i}","agent_status":"Ready"}}"#))
            .collect();
        format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
    };
    let s = parse_agents("ops", 9, bound, &mut rows(59_999).as_bytes()).unwrap();
    assert_eq!(s.agents.len(), 59_999);
    let e = parse_agents("ops", 9, bound, &mut rows(60_000).as_bytes()).unwrap_err();
    assert_eq!(e.kind(), "row_limit");
    assert!(
        e.to_string().starts_with(&format!(
            "ops {AGENTS_ENDPOINT}: the answer holds 60000 rows"
        )),
        "{e}"
    );
}

#[test]
fn every_agent_listed_without_a_status_keeps_its_state_however_many() {
    let meta = crate::event::SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    };
    let bound = PollBound::new(10_000, 64 << 20);
    let body = |status: &str| {
        let rows: Vec<String> = (0..1_500)
            .map(|i| format!(r#"{{"agent_id":"{i}","agent_status":"{status}"}}"#))
            .collect();
        format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
    };
    let mut s1 = parse_agents("ops", 1_000, bound, &mut body("Ready").as_bytes()).unwrap();
    s1.settle(None, Listing::Whole);
    let (mut s2, unknown, _) =
        parse_agents_and_unknown("ops", 2_000, bound, &mut body("").as_bytes()).unwrap();
    assert_eq!(unknown.len(), 1_500);
    s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
    assert!(diff_agents(&meta, Some(&s1), &s2).is_empty(), "no logout");
    assert_eq!(s2.present(), 1_500);
}
