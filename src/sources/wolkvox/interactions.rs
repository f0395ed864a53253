//! `real_time.php?api=interactions` (seed 000): `data[]` of `{agent_id, active_interactions:
//! [{conn_id, subject, fromname, date}]}` → [`InteractionSnapshot`].

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use chrono_tz::Tz;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::{lenient_string, opt_lenient_string, Envelope, WolkvoxClient};
use crate::diff::{
    diff_interactions_events, sightings, ActiveInteraction, InteractionKey, InteractionSnapshot,
};
use crate::event::reconciled::sighting_key;
use crate::event::Event;
use crate::sources::{decode_json, SourceError};
use crate::sources::{FeedName, SnapshotSource};
use crate::store::{encode_state, Store, StoreError, Write};
use crate::vendor_time::vendor_local_to_utc;

pub const INTERACTIONS_ENDPOINT: &str = "real_time.php?api=interactions";

/// The active-interactions feed of one Wolkvox operation.
pub struct WolkvoxInteractions(pub Arc<WolkvoxClient>);

#[async_trait]
impl SnapshotSource for WolkvoxInteractions {
    type Snapshot = InteractionSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.0.meta,
            endpoint: INTERACTIONS_ENDPOINT,
            stream: "interactions",
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&InteractionSnapshot>,
    ) -> Result<InteractionSnapshot, SourceError> {
        let (name, tz) = (self.0.meta.name.clone(), self.0.tz);
        let (mut snap, answered) = self
            .0
            .real_time("interactions", INTERACTIONS_ENDPOINT, move |r| {
                parse_interactions(&name, tz, observed_at, r)
            })
            .await?;
        // The snapshot is of the moment the vendor answered, not of when the poll began.
        snap.observed_at = answered.max(observed_at);
        snap.settle(previous);
        Ok(snap)
    }
    fn diff(
        &self,
        previous: Option<&InteractionSnapshot>,
        current: &InteractionSnapshot,
    ) -> Vec<Event> {
        diff_interactions_events(&self.0.meta, previous, current)
    }
    fn size(&self, s: &InteractionSnapshot) -> usize {
        s.interactions.len()
    }
    // Up to 60,000 interactions of which ~1 % change per poll: rewrite only the changed buckets.
    fn state_writes(
        &self,
        key: &str,
        stored: Option<&InteractionSnapshot>,
        current: &InteractionSnapshot,
    ) -> Vec<Write> {
        let mut writes = crate::store::buckets::interaction_writes(key, stored, current);
        if self.0.reconcile {
            let source = &self.0.meta.name;
            for (k, s) in sightings(stored, current) {
                writes.push(Write::Put(
                    sighting_key(source, &k.interaction_id, &k.agent_id),
                    encode_state(&s),
                ));
            }
        }
        writes
    }
    fn load_state(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<(InteractionSnapshot, bool)>, StoreError> {
        crate::store::buckets::load_interactions(store, key)
    }
}

/// Outcome of decoding one interactions response (exposed for tests and benchmarks).
pub fn parse_interactions(
    source: &str,
    tz: Tz,
    observed_at: i64,
    body: &mut dyn Read,
) -> Result<InteractionSnapshot, SourceError> {
    let env: Envelope<Folded> = decode_json(source, INTERACTIONS_ENDPOINT, body)?;
    let Folded {
        mut interactions,
        duplicates,
    } = env.into_data(source, INTERACTIONS_ENDPOINT)?;
    let mut bad_dates = 0usize;
    for it in interactions.values_mut() {
        it.vendor_timestamp = it
            .vendor_timestamp_raw
            .as_deref()
            .and_then(|d| vendor_local_to_utc(d, tz));
        if it.vendor_timestamp_raw.is_some() && it.vendor_timestamp.is_none() {
            bad_dates += 1;
        }
    }
    let snap = InteractionSnapshot {
        observed_at,
        interactions,
    };
    if bad_dates > 0 {
        tracing::warn!(
            source = source,
            endpoint = INTERACTIONS_ENDPOINT,
            field = "date",
            count = bad_dates,
            "dates in no known format; vendor_timestamp left null, raw text kept"
        );
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "date").increment(bad_dates as u64);
    }
    if duplicates > 0 {
        tracing::warn!(
            source = source,
            endpoint = INTERACTIONS_ENDPOINT,
            count = duplicates,
            "duplicate (agent_id, conn_id) pairs in one response; kept the first"
        );
        metrics::counter!("ccdc_duplicate_rows_total", "source" => source.to_string())
            .increment(duplicates as u64);
    }
    Ok(snap)
}

/// The `data` array folded into the snapshot's map while it is parsed, one agent at a time: a
/// 60,000-interaction response is never held as rows and as a map at once.
#[derive(Default)]
struct Folded {
    interactions: BTreeMap<InteractionKey, ActiveInteraction>,
    duplicates: usize,
}

impl<'de> Deserialize<'de> for Folded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Folded;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of agents")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Folded, A::Error> {
                let mut out = Folded::default();
                let mut i = 0;
                while let Some(agent) = seq.next_element::<AgentRow>()? {
                    if agent.agent_id.is_empty() {
                        return Err(de::Error::custom(format!(
                            "data[{i}].agent_id: empty agent id"
                        )));
                    }
                    for (j, it) in agent.active_interactions.into_iter().enumerate() {
                        if it.conn_id.is_empty() {
                            return Err(de::Error::custom(format!(
                                "data[{i}].active_interactions[{j}].conn_id: empty conn_id"
                            )));
                        }
                        let key = InteractionKey {
                            interaction_id: it.conn_id,
                            agent_id: agent.agent_id.clone(),
                        };
                        match out.interactions.entry(key) {
                            Entry::Vacant(v) => {
                                v.insert(ActiveInteraction {
                                    subject: it.subject,
                                    from_name: it.fromname,
                                    vendor_timestamp: None,
                                    vendor_timestamp_raw: it.date,
                                    first_seen: None,
                                    seen_after: None,
                                });
                            }
                            Entry::Occupied(_) => out.duplicates += 1,
                        }
                    }
                    i += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Debug, Deserialize)]
struct AgentRow {
    #[serde(deserialize_with = "lenient_string")]
    agent_id: String,
    active_interactions: Vec<RawInteraction>,
}

#[derive(Debug, Deserialize)]
struct RawInteraction {
    #[serde(deserialize_with = "lenient_string")]
    conn_id: String,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    subject: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    fromname: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<InteractionSnapshot, SourceError> {
        parse_interactions(
            "ops",
            "America/Bogota".parse().unwrap(),
            42,
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
        let c1 = &s.interactions[&InteractionKey {
            interaction_id: "c1".into(),
            agent_id: "1001".into(),
        }];
        assert_eq!(c1.subject.as_deref(), Some("Hola"));
        assert_eq!(
            c1.vendor_timestamp_raw.as_deref(),
            Some("2026-11-21 10:15:00")
        );
        assert_eq!(c1.vendor_timestamp, Some(1_795_274_100_000)); // 15:15:00Z
        let c2 = &s.interactions[&InteractionKey {
            interaction_id: "c2".into(),
            agent_id: "1001".into(),
        }];
        assert_eq!((c2.subject.as_deref(), c2.vendor_timestamp), (None, None));
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
        let e = parse(
            r#"{"code":401,"error":"invalid token","msg":"0 records were found","data":null}"#,
        )
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
        let e = parse(
            r#"{"code":200,"data":[{"agent_id":"1","active_interactions":[{"subject":"x"}]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("conn_id"), "{e}");
        let e =
            parse(r#"{"code":200,"data":[{"agent_id":"","active_interactions":[]}]}"#).unwrap_err();
        assert!(e.to_string().contains("data[0].agent_id"), "{e}");
        let e = parse(r#"{"code":200}"#).unwrap_err();
        assert!(e.to_string().contains("`data`"), "{e}");
        let e = parse(r#"{"data":[]}"#).unwrap_err();
        assert!(e.to_string().contains("`code`"), "{e}");
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
}
