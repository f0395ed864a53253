//! Decoded memory of the Wolkvox real-time responses, measured with a counting allocator: what a
//! parsed response keeps, and its peak while parsing, against the size of the body. With
//! `max_response_bytes` set to the body's size, a response either decodes within
//! 8 × `max_response_bytes` (the documented bound; `sources::bound`) or is refused as `over_bound`
//! — before the bound, a body of tiny agent rows kept 26× its size (43× at the peak), and one long
//! agent id over many interactions 516×. The figures printed here are the README's.
//!
//! One test: the allocator counts every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use ccdc::sources::bound::{PollBound, DECODED_FACTOR};
use ccdc::sources::wolkvox::agents::parse_agents;
use ccdc::sources::wolkvox::interactions::parse_interactions;
use ccdc::sources::SourceError;

struct Counting;
static NOW: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = NOW.fetch_add(l.size() as isize, Relaxed) + l.size() as isize;
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size() as isize, Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `f`'s result keeps allocated, and the most it had allocated at once, in bytes.
fn measure<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    let kept = (NOW.load(Relaxed) - base).max(0) as u64;
    (out, kept, (PEAK.load(Relaxed) - base).max(0) as u64)
}

fn envelope(rows: impl Iterator<Item = String>) -> String {
    let rows: Vec<String> = rows.collect();
    format!(
        r#"{{"code":"200","error":null,"msg":"{} records were found","data":[{}]}}"#,
        rows.len(),
        rows.join(",")
    )
}

/// A typical interactions body: 6,000 agents with 10 chats each.
fn interactions_body() -> String {
    envelope((0..6_000).map(|a| {
        let chats: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    r#"{{"conn_id":"{}","subject":"Consulta sobre el estado de mi pedido","fromname":"María Fernanda López","date":"2026-11-21 10:15:00"}}"#,
                    9_000_000_000u64 + (a * 10 + i) as u64
                )
            })
            .collect();
        format!(
            r#"{{"agent_id":"{}","active_interactions":[{}]}}"#,
            1000 + a,
            chats.join(",")
        )
    }))
}

/// A typical agents body: 20,000 rows of the vendor's 17 fields.
fn agents_body() -> String {
    envelope((0..20_000).map(|a| {
        format!(
            r#"{{"agent_id":"{}","agent_name":"Ana María Pérez {a}","agent_status":"Ready","calls":"12","inbound":"10","outbound":"2","internal":"0","time_state_now":"00:03:15","ready_time":"3600","inbound_time":"01:10:00","outbound_time":"","acw_time":"00:00:30","ring_time":"00:00:05","login_time":"08:00:00","aht_time":"00:04:00","ocupation":"87%","aux_time":"00:15:00"}}"#,
            1000 + a
        )
    }))
}

enum Parser {
    Interactions,
    Agents,
}

/// Parse `body` with `max_response_bytes` = its size: whether it was refused as `over_bound`,
/// and the most bytes allocated at once meanwhile.
fn parse(what: &str, parser: Parser, body: &str) -> (bool, u64) {
    let tz: chrono_tz::Tz = "America/Bogota".parse().unwrap();
    let bound = PollBound::new(u64::MAX, body.len() as u64);
    let (result, _, peak) = measure(|| -> Result<usize, SourceError> {
        Ok(match parser {
            Parser::Interactions => parse_interactions("s", tz, 1, bound, &mut body.as_bytes())?
                .interactions
                .len(),
            Parser::Agents => parse_agents("s", 1, bound, &mut body.as_bytes())?
                .agents
                .len(),
        })
    });
    let refused = match &result {
        Ok(_) => false,
        Err(e) => {
            assert_eq!(e.kind(), "over_bound", "{what}: {e}");
            true
        }
    };
    println!(
        "{what}: body {} B, {}, peak {:.2}× the body",
        body.len(),
        match &result {
            Ok(rows) => format!("{rows} rows"),
            Err(e) => format!("refused ({e})"),
        },
        peak as f64 / body.len() as f64
    );
    (refused, peak)
}

/// Parse `body` (`max_response_bytes` = its size) and keep the snapshot: the bytes it holds, and
/// the most allocated at once while parsing.
fn kept_by(parser: Parser, body: &str) -> (u64, u64) {
    let tz: chrono_tz::Tz = "America/Bogota".parse().unwrap();
    let bound = PollBound::new(u64::MAX, body.len() as u64);
    match parser {
        Parser::Interactions => {
            let (snap, kept, peak) =
                measure(|| parse_interactions("s", tz, 1, bound, &mut body.as_bytes()).unwrap());
            drop(snap);
            (kept, peak)
        }
        Parser::Agents => {
            let (snap, kept, peak) =
                measure(|| parse_agents("s", 1, bound, &mut body.as_bytes()).unwrap());
            drop(snap);
            (kept, peak)
        }
    }
}

#[test]
fn decoded_memory_stays_within_its_bound_of_the_response_limit() {
    let limit = DECODED_FACTOR;
    // Slack over the bound for the row being decoded and the reader's buffers.
    let slack = 2 << 20;

    // Typical bodies decode well within the bound.
    for (what, parser, body) in [
        ("interactions", Parser::Interactions, interactions_body()),
        ("agents", Parser::Agents, agents_body()),
    ] {
        let n = body.len() as u64;
        let (kept, peak) = kept_by(parser, &body);
        println!(
            "{what} (typical): body {n} B, kept {:.2}× the body, peak {:.2}×",
            kept as f64 / n as f64,
            peak as f64 / n as f64
        );
        assert!(kept <= limit * n && peak <= limit * n + slack, "{what}");
    }

    // Shapes that decode into many times their size are refused before they get there.
    let tiny_agents =
        envelope((0..200_000).map(|a| format!(r#"{{"agent_id":"{a}","agent_status":"x"}}"#)));
    let long_id = "x".repeat(10_000);
    let one_id_many_chats = envelope(std::iter::once(format!(
        r#"{{"agent_id":"{long_id}","active_interactions":[{}]}}"#,
        (0..20_000)
            .map(|i| format!(r#"{{"conn_id":"{i}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    )));
    let wide_row = envelope(std::iter::once(format!(
        r#"{{"agent_id":"1","agent_status":"x"{}}}"#,
        (0..300_000)
            .map(|k| format!(r#","{k}":"""#))
            .collect::<String>()
    )));
    for (what, parser, body) in [
        ("agents, tiny rows", Parser::Agents, tiny_agents),
        (
            "interactions, one long agent id",
            Parser::Interactions,
            one_id_many_chats,
        ),
        (
            "agents, one row of 300,000 fields",
            Parser::Agents,
            wide_row,
        ),
    ] {
        let n = body.len() as u64;
        let (refused, peak) = parse(what, parser, &body);
        assert!(refused, "{what} must be refused");
        assert!(
            peak <= limit * n + slack,
            "{what}: peak {peak} for a body of {n}"
        );
    }
}
