//! Decoding an interactions response straight into a snapshot's compact form
//! ([`crate::diff::snapshot`]): every text is copied once, into the snapshot's buffer (an agent id
//! once per agent), with no row structs, lists or strings in between.
//!
//! A body read whole is decoded from the slice without tracking the JSON path; only when that
//! fails is it read again with the path tracked, to name the field in the error. A streamed body
//! is decoded with the path tracked, as every other response. Every interaction is charged to the
//! poll's decoding bound as it is read ([`crate::sources::bound`]), and so is every copy of an
//! agent's id (each of its events carries one).

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::fast;
use super::INTERACTIONS_ENDPOINT as EP;
use crate::diff::snapshot::{Builder, Span, ENTRY_BYTES};
use crate::diff::Interactions;
use crate::sources::bound::{self, decode_bounded, PollBound};
use crate::sources::http::Body;
use crate::sources::wolkvox::Envelope;
use crate::sources::SourceError;

/// One decoded response: its interactions in order, and how many repeated pairs were dropped.
pub struct Parsed {
    pub interactions: Interactions,
    pub duplicates: usize,
}

/// One read response, its interactions not yet in order ([`Decoded::finish`]: once the body is
/// released, so a poll's peak holds one of them).
pub struct Decoded {
    b: Builder,
    /// Agents listed with an interaction that has no `conn_id` (each id's place in `b`'s text).
    held: Vec<Span>,
    /// Interactions listed under an empty `agent_id`: the `conn_id`s of those that have one, and
    /// how many had none.
    orphans: Orphans,
}

/// Interactions under a row without an `agent_id`: nobody's to start, and maybe anybody's, so
/// the agents they may belong to keep what they had ([`Decoded::held`]).
#[derive(Default)]
struct Orphans {
    /// Their `conn_id`s (places in the builder's text).
    conn_ids: Vec<Span>,
    /// How many had no `conn_id` either: they may be any agent's.
    blank: usize,
}

impl Decoded {
    /// The ids of the agents listed with an interaction that has no `conn_id` (or an empty one):
    /// such an interaction cannot be told from the agent's others. And of the agents that had, in
    /// `previous`, an interaction listed now under no agent (every agent of `previous` when one
    /// of those has no `conn_id` either). What the answer says of each is incomplete:
    /// [`Decoded::carry`] keeps what was known of it.
    pub fn held(&self, previous: Option<&Interactions>) -> Vec<String> {
        let mut held: Vec<String> = self
            .held
            .iter()
            .map(|s| self.b.str(*s).to_string())
            .collect();
        if let Some(previous) = previous.filter(|_| self.orphaned() > 0) {
            let orphans: std::collections::HashSet<&str> = self
                .orphans
                .conn_ids
                .iter()
                .map(|s| self.b.str(*s))
                .collect();
            let blank = self.orphans.blank > 0;
            let mut theirs: Vec<String> = previous
                .iter()
                .filter(|i| blank || orphans.contains(i.interaction_id))
                .map(|i| i.agent_id.to_string())
                .collect();
            theirs.sort_unstable();
            theirs.dedup();
            held.extend(theirs);
        }
        held
    }

    /// Agents listed with an interaction that has no `conn_id`.
    pub fn without_conn_id(&self) -> usize {
        self.held.len()
    }

    /// Interactions listed under an empty `agent_id` (left out).
    pub fn orphaned(&self) -> usize {
        self.orphans.conn_ids.len() + self.orphans.blank
    }

    /// Add what `previous` had of each agent in `held` ([`Decoded::held`]): for this poll an agent
    /// with an unreadable interaction keeps every interaction it had, none ended and none
    /// invented; the ones this answer lists readably come first (of equal keys the first added is
    /// kept). Answers how many were carried.
    pub fn carry(
        &mut self,
        source: &str,
        previous: Option<&Interactions>,
        held: &[String],
    ) -> Result<usize, SourceError> {
        let Some(previous) = previous.filter(|_| !held.is_empty()) else {
            return Ok(0);
        };
        let held: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
        let mut carried = 0;
        for i in previous.iter().filter(|i| held.contains(i.agent_id)) {
            self.b
                .add(&i.key(), &i.to_active())
                .map_err(|_| SourceError::Internal {
                    source_name: source.into(),
                    endpoint: EP.into(),
                    detail: "a snapshot's text over 4 GiB".into(),
                })?;
            carried += 1;
        }
        Ok(carried)
    }

    pub fn finish(self) -> Parsed {
        let (interactions, duplicates) = self.b.finish();
        Parsed {
            interactions,
            duplicates,
        }
    }
}

thread_local! {
    /// The room to make for the snapshot being decoded on this thread (interactions, text bytes).
    static ROOM: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Decode a response within `bound`, making room for `room` (interactions, text bytes: the
/// previous snapshot's, plus a margin). Vendor dates are not read yet (the snapshot is settled
/// against the previous one first, whose dates need no second reading).
pub fn parse(
    source: &str,
    bound: PollBound,
    body: Body<'_>,
    room: (usize, usize),
) -> Result<Decoded, SourceError> {
    let margin = |n: usize| n.saturating_add(n / 16);
    ROOM.with(|r| r.set((margin(room.0), margin(room.1))));
    let (env, _) = match body {
        Body::Whole(bytes) => decode_whole(source, bound, bytes)?,
        Body::Stream(r) => decode_bounded::<Envelope<Folded>>(source, EP, r, bound.tally())?,
    };
    let Folded {
        b,
        rows,
        held,
        orphans,
    } = env.into_data(source, EP)?;
    crate::sources::wolkvox::check_row_limit(source, EP, rows)?;
    Ok(Decoded { b, held, orphans })
}

fn decode_whole(
    source: &str,
    bound: PollBound,
    bytes: &[u8],
) -> Result<(Envelope<Folded>, bound::Tally), SourceError> {
    if let Some(read) = decode_fast(source, bound, bytes) {
        return read;
    }
    let fast = bound::bounded(source, EP, bound.tally(), || {
        // What follows the document is not read, as when it is streamed (`decode_json`).
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Envelope::<Folded>::deserialize(&mut de)
            .map_err(|e| SourceError::from_json(source, EP, None, e))
    });
    match fast {
        Err(e) if e.kind() != "over_bound" => {
            // Read again outside the bound (the first reading stayed within it), the JSON path
            // tracked, to say where the problem is; the same text gives the same error.
            let again = crate::sources::decode_json::<Envelope<Folded>>(source, EP, &mut &*bytes);
            Err(again.err().unwrap_or(e))
        }
        other => other,
    }
}

/// The usual shape read by [`fast`], or `None` to decode with serde (from a fresh count: what the
/// fast reader charged before giving up is forgotten).
fn decode_fast(
    source: &str,
    bound: PollBound,
    bytes: &[u8],
) -> Option<Result<(Envelope<Folded>, bound::Tally), SourceError>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut b = builder();
    let read = bound::bounded(source, EP, bound.tally(), || {
        match fast::scan(text, &mut b) {
            fast::Scan::Done { rows } => Ok(Some(rows)),
            fast::Scan::GiveUp => Ok(None),
            // The count is over: `bounded` reports which bound.
            fast::Scan::Over => Err(SourceError::Internal {
                source_name: source.into(),
                endpoint: EP.into(),
                detail: "over the poll's decoding bound".into(),
            }),
        }
    });
    match read {
        Ok((Some(rows), tally)) => {
            let env = Envelope {
                code: Some("200".into()),
                error: None,
                msg: None,
                data: Some(Folded {
                    b,
                    rows,
                    held: Vec::new(),
                    orphans: Orphans::default(),
                }),
            };
            Some(Ok((env, tally)))
        }
        Ok((None, _)) => {
            // Given up: the serde decoder starts again from the same room.
            let (entries, text) = (b.capacity(), b.text_capacity());
            ROOM.with(|r| r.set((entries, text)));
            None
        }
        Err(e) => Some(Err(e)),
    }
}

/// A builder with the room [`parse`] made for this thread's snapshot.
fn builder() -> Builder {
    let (entries, text) = ROOM.with(|r| r.take());
    Builder::with_capacity(entries, text)
}

/// The `data` list, folded into a [`Builder`] as it is read; `rows` agent rows; `held` the agents
/// listed with an interaction without `conn_id`.
#[derive(Default)]
pub struct Folded {
    b: Builder,
    rows: usize,
    held: Vec<Span>,
    orphans: Orphans,
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
                let (mut b, mut held) = (builder(), Vec::new());
                let mut orphans = Orphans::default();
                let mut i = 0;
                while seq
                    .next_element_seed(Agent {
                        b: &mut b,
                        held: &mut held,
                        orphans: &mut orphans,
                    })?
                    .is_some()
                {
                    i += 1;
                }
                Ok(Folded {
                    b,
                    rows: i,
                    held,
                    orphans,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum AgentField {
    AgentId,
    ActiveInteractions,
    #[serde(other)]
    Other,
}

/// One agent row `{agent_id, active_interactions: [...]}`; added to `held` when one of its
/// interactions has no `conn_id`; its interactions go to `orphans` when it has no `agent_id`.
struct Agent<'b> {
    b: &'b mut Builder,
    held: &'b mut Vec<Span>,
    orphans: &'b mut Orphans,
}

impl<'de> DeserializeSeed<'de> for Agent<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Agent<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an agent row")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let from = self.b.len();
        let (mut agent, mut listed, mut unreadable) = (None, false, false);
        while let Some(field) = map.next_key::<AgentField>()? {
            match field {
                AgentField::AgentId if agent.is_some() => {
                    return Err(de::Error::duplicate_field("agent_id"))
                }
                AgentField::AgentId => agent = Some(map.next_value_seed(Text(self.b))?),
                AgentField::ActiveInteractions if listed => {
                    return Err(de::Error::duplicate_field("active_interactions"))
                }
                AgentField::ActiveInteractions => {
                    map.next_value_seed(List {
                        b: self.b,
                        unreadable: &mut unreadable,
                    })?;
                    listed = true;
                }
                AgentField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let agent = agent.ok_or_else(|| de::Error::missing_field("agent_id"))?;
        if !listed {
            return Err(de::Error::missing_field("active_interactions"));
        }
        if agent == Span::NONE {
            // No agent: its interactions are nobody's to start, and may be anybody's.
            self.orphans.conn_ids.extend(self.b.take_from(from));
            self.orphans.blank += usize::from(unreadable);
            return Ok(());
        }
        // Each interaction was counted as it was read; every one of its events copies the id.
        let copies = (self.b.len() - from) as u64;
        bound::charge_bytes((agent.text_len() as u64).saturating_mul(copies))?;
        self.b.set_agent(from, agent);
        if unreadable {
            bound::charge(std::mem::size_of::<Span>())?;
            self.held.push(agent);
        }
        Ok(())
    }
}

/// The `active_interactions` list of an agent; `unreadable` set when one has no `conn_id`.
struct List<'b> {
    b: &'b mut Builder,
    unreadable: &'b mut bool,
}

impl<'de> DeserializeSeed<'de> for List<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A list; or no interactions written as `""` or `null` (Wolkvox: an empty string means "no
/// value").
impl<'de> Visitor<'de> for List<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list (or \"\" or null for none)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.trim().is_empty() {
            Ok(())
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(read) = seq.next_element_seed(One(self.b))? {
            *self.unreadable |= !read;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    ConnId,
    Subject,
    Fromname,
    Date,
    #[serde(other)]
    Other,
}

/// One interaction `{conn_id, subject, fromname, date}`: `true` added, `false` without a
/// `conn_id` (or with an empty one), not added.
struct One<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for One<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for One<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an interaction")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut texts: [Option<Span>; 4] = [None; 4];
        while let Some(field) = map.next_key::<Field>()? {
            let (slot, name) = match field {
                Field::ConnId => (0, "conn_id"),
                Field::Subject => (1, "subject"),
                Field::Fromname => (2, "fromname"),
                Field::Date => (3, "date"),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if texts[slot].is_some() {
                return Err(de::Error::duplicate_field(name));
            }
            texts[slot] = Some(map.next_value_seed(Text(self.0))?);
        }
        let [conn, subject, from_name, date] = texts;
        // Without its id an interaction cannot be told from the agent's others: the agent is
        // held at what was known of it ([`Decoded::carry`]). Its texts stay in the buffer unused.
        let Some(conn) = conn.filter(|c| *c != Span::NONE) else {
            return Ok(false);
        };
        let [subject, from_name, date] =
            [subject, from_name, date].map(|s| s.unwrap_or(Span::NONE));
        let texts: usize = [conn, subject, from_name, date]
            .iter()
            .map(|s| s.text_len())
            .sum();
        // The snapshot's text buffer grows by doubling: its share counts twice.
        bound::charge(ENTRY_BYTES + 2 * texts)?;
        self.0.push(conn, Span::NONE, subject, from_name, date);
        Ok(true)
    }
}

/// A field's text, kept in the snapshot: a string (trimmed) or a number as its JSON text; `null`
/// and `""` are absent ([`Span::NONE`]). The same rules as [`super::super::opt_lenient_string`].
struct Text<'b>(&'b mut Builder);

impl Text<'_> {
    fn keep<E: de::Error>(self, v: &str) -> Result<Span, E> {
        let t = crate::vendor_time::trim(v);
        if t.is_empty() {
            return Ok(Span::NONE);
        }
        self.0.text(t).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Span;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Span, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        self.keep(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
        self.keep(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
        self.keep(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Span, E> {
        self.keep(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Span, E> {
        Ok(Span::NONE)
    }
    fn visit_none<E: de::Error>(self) -> Result<Span, E> {
        Ok(Span::NONE)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Span, D::Error> {
        d.deserialize_any(self)
    }
}
