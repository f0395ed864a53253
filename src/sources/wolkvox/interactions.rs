//! `real_time.php?api=interactions` (seed 000): `data[]` of `{agent_id, active_interactions:
//! [{conn_id, subject, fromname, date}]}` → [`InteractionSnapshot`]. Decoded straight into the
//! snapshot's compact form (`wire`); every interaction is counted against the poll's decoding
//! bound as it is read ([`crate::sources::bound`]), the agent id copied into each of them included.
//! The response is parsed from memory when it announces a length up to
//! [`crate::sources::http::WHOLE_BODY_MAX`], else streamed.

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use chrono_tz::Tz;

use super::WolkvoxClient;
use crate::diff::{diff_interactions_events, sightings, InteractionSnapshot};
use crate::event::reconciled::sighting_key;
use crate::event::Event;
use crate::sources::bound::PollBound;
use crate::sources::http::Body;
use crate::sources::SourceError;
use crate::sources::{FeedName, SnapshotSource};
use crate::store::{encode_state, Store, StoreError, Write};
use crate::vendor_time::vendor_local_to_utc;

mod fast;
mod wire;

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
        let name = self.0.meta.name.clone();
        let bound = self.0.interactions_limits.0;
        let room = previous.map_or((0, 0), |p| {
            (p.interactions.len(), p.interactions.text_bytes())
        });
        let (decoded, answered) = self
            .0
            .real_time_body("interactions", INTERACTIONS_ENDPOINT, move |body| {
                wire::parse(&name, bound, body, room)
            })
            .await?;
        let (decoded, held) = hold(
            &self.0.meta.name,
            decoded,
            previous.map(|p| &p.interactions),
        )?;
        // Put in order on a blocking thread too, once the body is released.
        let parsed = tokio::task::spawn_blocking(move || decoded.finish())
            .await
            .map_err(|e| SourceError::Internal {
                source_name: self.0.meta.name.clone(),
                endpoint: INTERACTIONS_ENDPOINT.into(),
                detail: format!("the ordering task did not finish: {e}"),
            })?;
        // The snapshot is of the moment the vendor answered, not of when the poll began.
        let at = answered.max(observed_at);
        Ok(settled(
            &self.0.meta.name,
            self.0.tz,
            parsed,
            at,
            previous,
            &held,
        ))
    }
    fn poll_timeout(&self) -> Option<std::time::Duration> {
        Some(self.0.interactions_limits.1)
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
    // Up to 60,000 interactions of which ~1 % change per poll: a delta of what changed, a new
    // base now and then ([`crate::store::buckets`]).
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

/// Decode one interactions response, every vendor date read (exposed for tests and benchmarks;
/// the feed settles its snapshots against the previous one instead); more than `bound` allows is
/// [`SourceError::OverBound`].
pub fn parse_interactions(
    source: &str,
    tz: Tz,
    observed_at: i64,
    bound: PollBound,
    body: &mut dyn Read,
) -> Result<InteractionSnapshot, SourceError> {
    parse_interactions_body(source, tz, observed_at, bound, Body::Stream(body))
}

/// [`parse_interactions`] of a body read whole or streamed.
pub fn parse_interactions_body(
    source: &str,
    tz: Tz,
    observed_at: i64,
    bound: PollBound,
    body: Body<'_>,
) -> Result<InteractionSnapshot, SourceError> {
    let (decoded, _) = hold(source, wire::parse(source, bound, body, (0, 0))?, None)?;
    let parsed = decoded.finish();
    let mut snap = InteractionSnapshot {
        held: Default::default(),
        observed_at,
        interactions: parsed.interactions,
    };
    let unread = snap
        .interactions
        .resolve_dates(|raw| vendor_local_to_utc(raw, tz));
    report(source, unread, parsed.duplicates);
    Ok(snap)
}

/// What the feed does with one response: decode it (`previous` gives its size) and settle it
/// against `previous` ([`InteractionSnapshot::settle`]: the dates of unchanged interactions are
/// not read again). Exposed for benchmarks; the feed decodes on a blocking thread and settles
/// on its task.
pub fn parse_interactions_after(
    source: &str,
    tz: Tz,
    observed_at: i64,
    bound: PollBound,
    body: Body<'_>,
    previous: Option<&InteractionSnapshot>,
) -> Result<InteractionSnapshot, SourceError> {
    let room = previous.map_or((0, 0), |p| {
        (p.interactions.len(), p.interactions.text_bytes())
    });
    let decoded = wire::parse(source, bound, body, room)?;
    let (decoded, held) = hold(source, decoded, previous.map(|p| &p.interactions))?;
    let parsed = decoded.finish();
    Ok(settled(source, tz, parsed, observed_at, previous, &held))
}

/// Agents listed with an interaction without `conn_id`, and the agents that had an interaction
/// now listed under an empty `agent_id`, keep what `previous` had of them
/// ([`wire::Decoded::carry`]): one unreadable row neither fails every agent's poll nor ends an
/// interaction that may still run. Warned and counted (`field="conn_id"`, `field="agent_id"`).
/// Answers the held agents.
fn hold(
    source: &str,
    mut decoded: wire::Decoded,
    previous: Option<&crate::diff::Interactions>,
) -> Result<(wire::Decoded, Vec<String>), SourceError> {
    let (without_conn_id, orphaned) = (decoded.without_conn_id(), decoded.orphaned());
    let held = decoded.held(previous);
    if held.is_empty() && orphaned == 0 {
        return Ok((decoded, held));
    }
    let carried = decoded.carry(source, previous, &held)?;
    let named: Vec<&String> = held.iter().take(20).collect();
    if without_conn_id > 0 {
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "conn_id").increment(without_conn_id as u64);
    }
    if orphaned > 0 {
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_id").increment(orphaned as u64);
    }
    tracing::warn!(
        source,
        endpoint = INTERACTIONS_ENDPOINT,
        agents_without_conn_id = without_conn_id,
        interactions_without_agent_id = orphaned,
        held = held.len(),
        first = ?named,
        carried,
        "interactions without conn_id, or under an empty agent_id: each held agent keeps the interactions it had for this poll (none of them ends); its readable ones are read as usual, and those without an agent are not started"
    );
    Ok((decoded, held))
}

/// A decoded response as a snapshot observed at `observed_at`, settled against `previous`; the
/// agents in `held` were listed incompletely ([`InteractionSnapshot::held`]).
fn settled(
    source: &str,
    tz: Tz,
    parsed: wire::Parsed,
    observed_at: i64,
    previous: Option<&InteractionSnapshot>,
    held: &[String],
) -> InteractionSnapshot {
    let mut snap = InteractionSnapshot {
        held: previous.map(|p| p.hold(held)).unwrap_or_default(),
        observed_at,
        interactions: parsed.interactions,
    };
    let unread = snap.settle(previous, |raw| vendor_local_to_utc(raw, tz));
    report(source, unread, parsed.duplicates);
    snap
}

/// Warn about what a response had wrong but could be read past: dates in no known format, and
/// repeated `(agent_id, conn_id)` pairs (the first is kept).
fn report(source: &str, bad_dates: usize, duplicates: usize) {
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
}

#[cfg(test)]
mod tests;
