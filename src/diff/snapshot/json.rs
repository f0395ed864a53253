//! A snapshot's interactions as JSON, the form earlier versions stored (and tests read).

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::Interactions;
use crate::diff::{ActiveInteraction, InteractionKey};

/// Serialized as the list of `[key, interaction]` pairs a `BTreeMap` of them gave (earlier
/// versions stored snapshots that way).
impl Serialize for Interactions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Key<'a> {
            interaction_id: &'a str,
            agent_id: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Value<'a> {
            subject: Option<&'a str>,
            from_name: Option<&'a str>,
            vendor_timestamp: Option<i64>,
            vendor_timestamp_raw: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            first_seen: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            seen_after: Option<i64>,
        }
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for it in self.iter() {
            let key = Key {
                interaction_id: it.interaction_id,
                agent_id: it.agent_id,
            };
            let value = Value {
                subject: it.subject,
                from_name: it.from_name,
                vendor_timestamp: it.vendor_timestamp,
                vendor_timestamp_raw: it.vendor_timestamp_raw,
                first_seen: it.first_seen,
                seen_after: it.seen_after,
            };
            seq.serialize_element(&(key, value))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Interactions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(InteractionKey, ActiveInteraction)> = Vec::deserialize(d)?;
        Interactions::try_from_pairs(pairs.iter().map(|(k, v)| (k, v)))
            .map_err(serde::de::Error::custom)
    }
}
