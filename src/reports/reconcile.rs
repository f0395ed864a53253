//! Reconciliation of settled `chat_1` windows with what real-time polling saw.
//!
//! The Wolkvox interactions feed keeps a [`Sighting`] of every interaction it sees, per agent
//! (`sighting/<source>/<conn_id>/<agent_id>`, written in the same commit as the events of that
//! poll). When a report window's rows are committed, every new or changed chat row gets an
//! `interaction-reconciled` record with the report's times and what polling saw of that
//! `conn_id`; the chat is marked reconciled (`reconciled/<source>/<conn_id>`, apart from the
//! sightings, which polling rewrites when the chat ends) in the same commit. With the window's last
//! chunk, the sightings that started in the window, ended at least `settle_delay` ago and that no
//! row matched become records with `in_report = false` (a chat still running, or ended since, is
//! looked at again when the look-back pulls the window again). Ids are stable (the row's hash, or the polled start), and each record is
//! derived in the commit that marks its inputs, so a crash or a re-read never makes a second one
//! with other content. Sightings expire with the report's dedupe marks (`dedupe_ttl`).
//!
//! `diagram_9` is not reconciled: it lists routing-diagram (IVR/bot) sessions, which carry no agent
//! and no handle time, so they say nothing about an interaction at an agent.

use std::collections::{BTreeMap, HashSet};

use chrono_tz::Tz;

use crate::diff::timing::{span, start_bounds, Bounds};
use crate::event::id;
use crate::event::reconciled::{
    reconciled_key, reconciled_prefix, sighting_prefix, InteractionReconciled, Mark, Sighting,
};
use crate::event::report::Chat1Row;
use crate::event::{Derivation, Event};
use crate::store::{decode_state, encode_state, Store, StoreError, Write};
use crate::vendor_time::local_to_utc_millis;
use crate::window::Window;

/// How each reconciled chat came out, for `ccdc_reconciled_chats_total{outcome}`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// In the report, and polling saw it.
    pub seen: u64,
    /// In the report, and polling never saw it.
    pub missed: u64,
    /// Polling saw it start in the window; the settled report does not have it.
    pub only_polling: u64,
}

/// The window being reconciled, and where.
pub struct Reconciler<'a> {
    pub store: &'a dyn Store,
    pub source: &'a str,
    pub tz: Tz,
    pub window: &'a Window,
    pub now_ms: i64,
    /// A chat polling saw end before this (UTC ms) should be in the report (the report's
    /// `settle_delay` before now); one still running, or ended later, is left for a later pull
    /// of the same window (the look-back re-reads it).
    pub settled_before: i64,
}

impl Reconciler<'_> {
    fn base(&self, interaction_id: &str, event_id: String) -> InteractionReconciled {
        InteractionReconciled {
            event_id,
            source: self.source.to_string(),
            vendor: crate::sources::wolkvox::VENDOR.into(),
            interaction_id: interaction_id.to_string(),
            in_report: false,
            seen_realtime: false,
            report_agent_id: None,
            report_started_at: None,
            report_started_at_raw: None,
            report_ended_at: None,
            report_duration_ms: None,
            report_time_on_agent_ms: None,
            report_row_hash: None,
            polled_agent_ids: Vec::new(),
            first_observed_at: None,
            first_observed_after: None,
            ended_after: None,
            ended_before: None,
            polled_duration_ms: None,
            window_start: local_to_utc_millis(self.window.start, self.tz),
            window_end: local_to_utc_millis(self.window.end, self.tz),
            window_start_raw: self.window.date_ini(),
            window_end_raw: self.window.date_end(),
            reconciled_at: self.now_ms,
            derivation: Derivation::Report,
        }
    }

    /// The record of one report chat (a new or changed row), and its sightings marked reconciled.
    /// A chat is counted once: `first_in_chunk` is false for its second row in a chunk (a chat
    /// listed once per agent), and a chat already marked reconciled (an earlier chunk or pull, or
    /// a changed row) gets its record but is not counted again.
    pub fn chat(
        &self,
        row: &Chat1Row,
        row_hash: &str,
        first_in_chunk: bool,
        counts: &mut Counts,
    ) -> Result<(Event, Vec<Write>), StoreError> {
        let counted = !first_in_chunk
            || self
                .store
                .get(&reconciled_key(self.source, &row.conn_id))?
                .is_some();
        let prefix = format!("{}{}/", sighting_prefix(self.source), row.conn_id);
        let found = self.store.scan_prefix(&prefix)?;
        let mut sightings = Vec::with_capacity(found.len());
        let mut writes = Vec::with_capacity(1);
        for (key, bytes) in found {
            sightings.push(decode_state::<Sighting>(&key, &bytes)?);
        }
        writes.push(self.mark(&row.conn_id));
        let event_id = id::reconciled(self.source, &row.conn_id, row_hash).to_string();
        let mut r = self.base(&row.conn_id, event_id);
        r.in_report = true;
        r.report_agent_id = row.agent_id.clone();
        r.report_started_at = row.date;
        r.report_started_at_raw = row.date_raw.clone();
        r.report_duration_ms = row.chat_duration_s.and_then(|s| s.checked_mul(1000));
        r.report_time_on_agent_ms = row.time_on_agent_s.and_then(|s| s.checked_mul(1000));
        r.report_ended_at = r
            .report_started_at
            .zip(r.report_duration_ms)
            .and_then(|(a, d)| a.checked_add(d));
        r.report_row_hash = Some(row_hash.to_string());
        polled(&mut r, sightings);
        match (counted, r.seen_realtime) {
            (true, _) => {}
            (false, true) => counts.seen += 1,
            (false, false) => counts.missed += 1,
        }
        Ok((Event::Reconciled(Box::new(r)), writes))
    }

    /// The mark that `interaction` has a reconciliation record.
    fn mark(&self, interaction: &str) -> Write {
        Write::Put(
            reconciled_key(self.source, interaction),
            encode_state(&Mark { at: self.now_ms }),
        )
    }

    /// After the window's last chunk: records for the chats polling saw start in the window that
    /// no report row matched (`matched`: the conn_ids matched in this last chunk, whose marks are
    /// not committed yet), once polling saw the chat end at every agent at least `settle_delay`
    /// ago (a chat still going on, at any agent, waits for a later pull of the window).
    pub fn only_polling(
        &self,
        matched: &HashSet<String>,
        counts: &mut Counts,
    ) -> Result<(Vec<Event>, Vec<Write>), StoreError> {
        let (from, to) = (
            local_to_utc_millis(self.window.start, self.tz),
            local_to_utc_millis(self.window.end, self.tz),
        );
        let prefix = sighting_prefix(self.source);
        let mut by_interaction: BTreeMap<String, Vec<Sighting>> = BTreeMap::new();
        for (key, bytes) in self.store.scan_prefix(&prefix)? {
            let Some((conn_id, _agent)) = key[prefix.len()..].rsplit_once('/') else {
                continue;
            };
            if matched.contains(conn_id) {
                continue;
            }
            let s: Sighting = decode_state(&key, &bytes)?;
            by_interaction
                .entry(conn_id.to_string())
                .or_default()
                .push(s);
        }
        let (mut events, mut writes) = (Vec::new(), Vec::new());
        for (conn_id, sightings) in by_interaction {
            let start = sightings
                .iter()
                .map(Sighting::start)
                .min()
                .unwrap_or(i64::MIN);
            let settled = sightings
                .iter()
                .all(|s| s.ended_before.is_some_and(|e| e <= self.settled_before));
            if !settled
                || !(from..to).contains(&start)
                || self
                    .store
                    .get(&reconciled_key(self.source, &conn_id))?
                    .is_some()
            {
                continue;
            }
            let first = sightings.iter().map(|s| s.first_seen).min().unwrap_or(0);
            let basis = format!("polling/{first}");
            let mut r = self.base(
                &conn_id,
                id::reconciled(self.source, &conn_id, &basis).to_string(),
            );
            writes.push(self.mark(&conn_id));
            polled(&mut r, sightings);
            counts.only_polling += 1;
            events.push(Event::Reconciled(Box::new(r)));
        }
        Ok((events, writes))
    }
}

/// Fill in what polling saw: agents in order of first sight, the first sighting's start bounds,
/// the last one's end bounds, and the duration polling alone would estimate.
fn polled(r: &mut InteractionReconciled, mut sightings: Vec<Sighting>) {
    if sightings.is_empty() {
        return;
    }
    sightings.sort_by_key(|s| s.first_seen);
    r.seen_realtime = true;
    r.polled_agent_ids = sightings.iter().map(|s| s.agent_id.clone()).collect();
    let (first, last) = (&sightings[0], &sightings[sightings.len() - 1]);
    r.first_observed_at = Some(first.first_seen);
    r.first_observed_after = first.seen_after;
    r.ended_after = last.ended_after;
    r.ended_before = last.ended_before;
    if last.ended_before.is_some() {
        let start = start_bounds(first.started_at, Some(first.first_seen), first.seen_after);
        let end = Bounds {
            after: last.ended_after,
            before: last.ended_before,
        };
        r.polled_duration_ms = span(start, end).estimate;
    }
}

/// Deletes for sightings of `source` first seen, and reconciliation marks made, before
/// `cutoff_ms`.
pub fn expired_sightings(
    store: &dyn Store,
    source: &str,
    cutoff_ms: i64,
) -> Result<Vec<Write>, StoreError> {
    let mut out = Vec::new();
    for (key, bytes) in store.scan_prefix(&sighting_prefix(source))? {
        let old = decode_state::<Sighting>(&key, &bytes).map_or(true, |s| s.first_seen < cutoff_ms);
        if old {
            out.push(Write::Delete(key));
        }
    }
    for (key, bytes) in store.scan_prefix(&reconciled_prefix(source))? {
        if decode_state::<Mark>(&key, &bytes).map_or(true, |m| m.at < cutoff_ms) {
            out.push(Write::Delete(key));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::reconciled::sighting_key;
    use crate::store::MemoryStore;

    fn window() -> Window {
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        Window {
            start: t("2026-11-21 10:00:00"),
            end: t("2026-11-21 11:00:00"),
        }
    }

    fn utc() -> Tz {
        "UTC".parse().unwrap()
    }

    /// Milliseconds of `10:MM:SS` UTC on the window's day.
    fn at(min: i64, sec: i64) -> i64 {
        local_to_utc_millis(window().start, utc()) + (min * 60 + sec) * 1000
    }

    fn sighting(agent: &str, first: i64, after: Option<i64>, end: Option<(i64, i64)>) -> Sighting {
        Sighting {
            agent_id: agent.into(),
            started_at: None,
            first_seen: first,
            seen_after: after,
            ended_after: end.map(|e| e.0),
            ended_before: end.map(|e| e.1),
        }
    }

    fn put(store: &MemoryStore, conn: &str, s: &Sighting) {
        let key = sighting_key("ops", conn, &s.agent_id);
        store
            .commit(vec![Write::Put(key, encode_state(s))], vec![])
            .unwrap();
    }

    fn chat(conn: &str, agent: &str, start: i64, duration_s: i64) -> Chat1Row {
        Chat1Row {
            conn_id: conn.into(),
            channel: None,
            date: Some(start),
            date_raw: Some("2026-11-21 10:00:00".into()),
            customer_name: None,
            customer_email: None,
            customer_phone: None,
            customer_chars: None,
            agent_id: Some(agent.into()),
            agent_name: None,
            agent_chars: None,
            time_on_agent_s: Some(duration_s - 5),
            chat_duration_s: Some(duration_s),
            cod_act: None,
            description_cod_act: None,
            comments: None,
            customer_id: None,
            skill_id: None,
            asa_s: None,
            last_participant_who_spoke: None,
            extra_field: None,
            comment: None,
            user_id: None,
            feeling: None,
            agent_answers: None,
        }
    }

    fn record(e: &Event) -> &InteractionReconciled {
        match e {
            Event::Reconciled(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn report_chats_are_set_against_what_polling_saw_and_the_rest_is_only_polling() {
        let store = MemoryStore::default();
        // c1: polled at two agents (a transfer), seen from 10:05 to 10:15, gone by 10:20.
        put(
            &store,
            "c1",
            &sighting(
                "1001",
                at(5, 0),
                Some(at(0, 0)),
                Some((at(10, 0), at(10, 0))),
            ),
        );
        put(
            &store,
            "c1",
            &sighting(
                "1002",
                at(10, 0),
                Some(at(5, 0)),
                Some((at(15, 0), at(20, 0))),
            ),
        );
        // c9: polled, started in the window, ended, never in the report. c8: started before the
        // window. c6 still runs and c5 ended too recently: not judged yet.
        let ended = |a: i64, b: i64| Some((at(a, 0), at(b, 0)));
        put(
            &store,
            "c9",
            &sighting("1003", at(30, 0), Some(at(25, 0)), ended(31, 32)),
        );
        put(
            &store,
            "c6",
            &sighting("1003", at(40, 0), Some(at(35, 0)), None),
        );
        put(
            &store,
            "c5",
            &sighting("1004", at(40, 0), Some(at(35, 0)), ended(66, 67)),
        );
        put(&store, "c8", &sighting("1003", at(-30, 0), None, None));
        let w = window();
        let r = Reconciler {
            store: &store,
            source: "ops",
            tz: utc(),
            window: &w,
            now_ms: at(70, 0),
            settled_before: at(65, 0),
        };
        let mut counts = Counts::default();
        let (e1, w1) = r
            .chat(&chat("c1", "1002", at(4, 0), 900), "h1", true, &mut counts)
            .unwrap();
        let c1 = record(&e1);
        assert!(c1.in_report && c1.seen_realtime);
        assert_eq!(c1.polled_agent_ids, vec!["1001", "1002"]);
        assert_eq!(
            (
                c1.first_observed_at,
                c1.first_observed_after,
                c1.ended_after,
                c1.ended_before
            ),
            (
                Some(at(5, 0)),
                Some(at(0, 0)),
                Some(at(15, 0)),
                Some(at(20, 0))
            )
        );
        assert_eq!(c1.report_duration_ms, Some(900_000));
        assert_eq!(c1.report_ended_at, Some(at(19, 0)));
        // Polling alone: started in (10:00, 10:05], ended in (10:15, 10:20]: 10 to 20 minutes.
        assert_eq!(c1.polled_duration_ms, Some(900_000));
        assert_eq!(w1.len(), 1, "the chat marked reconciled");
        // A chat polling never saw.
        let (e2, w2) = r
            .chat(&chat("c2", "1001", at(40, 0), 60), "h2", true, &mut counts)
            .unwrap();
        assert!(record(&e2).in_report && !record(&e2).seen_realtime && w2.len() == 1);
        assert_eq!(
            counts,
            Counts {
                seen: 1,
                missed: 1,
                only_polling: 0
            }
        );
        // c2 listed a second time, under its other agent: a record of its own, one chat counted.
        let (e2b, _) = r
            .chat(
                &chat("c2", "1003", at(40, 0), 60),
                "h2b",
                false,
                &mut counts,
            )
            .unwrap();
        assert_eq!(record(&e2b).report_agent_id.as_deref(), Some("1003"));
        assert_ne!(record(&e2b).event_id, record(&e2).event_id);
        assert_eq!((counts.seen, counts.missed), (1, 1));
        // Commit the first chunk; polling then writes c1's sighting again (its end, late): the
        // mark is apart from the sightings, so c1 stays reconciled.
        store.commit(w1, vec![]).unwrap();
        // c1's row changed when the look-back pulled the window again: a new record, with a new
        // id, for a chat already counted.
        let (e1b, _) = r
            .chat(&chat("c1", "1002", at(4, 0), 960), "h1b", true, &mut counts)
            .unwrap();
        assert_ne!(record(&e1b).event_id, record(&e1).event_id);
        assert_eq!((counts.seen, counts.missed), (1, 1));
        put(
            &store,
            "c1",
            &sighting("1002", at(10, 0), Some(at(5, 0)), ended(15, 20)),
        );
        // c4 moved to a second agent and still runs there: not judged yet.
        put(
            &store,
            "c4",
            &sighting("1001", at(20, 0), Some(at(15, 0)), ended(25, 30)),
        );
        put(
            &store,
            "c4",
            &sighting("1002", at(30, 0), Some(at(25, 0)), None),
        );
        let (rest, marks) = r.only_polling(&HashSet::new(), &mut counts).unwrap();
        assert_eq!(
            rest.len(),
            1,
            "c9 only: c1 reconciled, c8 before the window, c6, c5 and c4 not settled"
        );
        let c9 = record(&rest[0]);
        assert_eq!(
            (c9.interaction_id.as_str(), c9.in_report, c9.seen_realtime),
            ("c9", false, true)
        );
        assert_eq!(counts.only_polling, 1);
        // Stable ids; a second pass after the commit finds nothing left.
        let (again, _) = r
            .only_polling(&HashSet::new(), &mut Counts::default())
            .unwrap();
        assert_eq!(record(&again[0]).event_id, c9.event_id);
        store.commit(marks, vec![]).unwrap();
        let (none, _) = r
            .only_polling(&HashSet::new(), &mut Counts::default())
            .unwrap();
        assert!(none.is_empty());
        // A chat matched in the last chunk (not committed yet) is not "only polling".
        put(
            &store,
            "c7",
            &sighting("1001", at(50, 0), Some(at(45, 0)), ended(51, 52)),
        );
        let matched: HashSet<String> = ["c7".to_string()].into();
        assert!(r
            .only_polling(&matched, &mut Counts::default())
            .unwrap()
            .0
            .is_empty());
        // Sightings expire by their first poll.
        let gone = expired_sightings(&store, "ops", at(0, 0)).unwrap();
        assert_eq!(gone, vec![Write::Delete(sighting_key("ops", "c8", "1003"))]);
    }
}
