//! What the Vonage endpoints send (seed 003), as read: the token response and one agent's
//! `latestInteractions` answer.

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::diff::latest::LatestInteraction;

/// The most rows of one agent's answer that are read; the rest are read past, never held. The
/// vendor lists one row by default, and more only while several interactions run at the agent
/// (seed 003: a phone call first, then by the time their state changed, newest first).
pub const MAX_LISTED_PER_AGENT: usize = 32;

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    /// Seconds; any JSON number or numeric string is read, anything else is "not said".
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub(super) expires_in: Option<u64>,
}

/// A token lifetime as any JSON number (`3600`, `3600.0`, `1e20`) or numeric string: whole
/// seconds, saturating; negative, fractional below one, or not a number at all: `None`.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(saturate)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(saturate))
        }
        _ => None,
    };
    Ok(n.filter(|&n| n > 0))
}

/// Whole seconds of a float, saturating at `u64::MAX`; NaN and negatives are 0.
fn saturate(f: f64) -> u64 {
    if f.is_nan() || f <= 0.0 {
        0
    } else {
        // `as` saturates for floats out of range.
        f as u64
    }
}

#[derive(Deserialize)]
pub(super) struct LatestBody {
    /// The rows, in the vendor's order, up to [`MAX_LISTED_PER_AGENT`]; `null` or absent: none.
    #[serde(default, deserialize_with = "bounded_rows")]
    pub(super) interactions: Vec<LatestRow>,
}

/// Up to [`MAX_LISTED_PER_AGENT`] rows of a list (the rest read past); `null`: none.
fn bounded_rows<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LatestRow>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<LatestRow>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of interactions or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut rows = Vec::new();
            while rows.len() < MAX_LISTED_PER_AGENT {
                match seq.next_element::<LatestRow>()? {
                    Some(r) => rows.push(r),
                    None => return Ok(rows),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(rows)
        }
    }
    d.deserialize_option(V)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LatestRow {
    guid: String,
    start: Option<String>,
    /// Version 1: whether it ended.
    #[serde(default)]
    has_ended: Option<bool>,
    /// The later shape (seed 003): seconds, `null` while the agent is still connected. Outer
    /// `None`: absent.
    #[serde(default, deserialize_with = "present")]
    duration: Option<Option<f64>>,
}

/// A field that is there, `null` or not: absent stays `None` (through `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

impl LatestRow {
    /// Whether it ended: `hasEnded`, else a `duration` (a number once it ended); with neither the
    /// row cannot say, and running is not assumed.
    fn ended(&self) -> Result<bool, &'static str> {
        match (self.has_ended, self.duration) {
            (Some(ended), _) => Ok(ended),
            (None, Some(duration)) => Ok(duration.is_some()),
            (None, None) => Err("neither `hasEnded` nor `duration`: whether it ended is unknown"),
        }
    }
}

/// An agent's rows as ccdc keeps them, in the vendor's order, each guid once (a row repeating an
/// earlier one's guid is left out). `Err`: the index of the row that cannot say whether it
/// ended, and why.
pub(super) fn to_latest(
    rows: Vec<LatestRow>,
) -> Result<Vec<LatestInteraction>, (usize, &'static str)> {
    let mut out: Vec<LatestInteraction> = Vec::with_capacity(rows.len());
    for (i, r) in rows.into_iter().enumerate() {
        let has_ended = r.ended().map_err(|e| (i, e))?;
        if out.iter().any(|o| o.guid == r.guid) {
            continue;
        }
        let start = r
            .start
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis());
        out.push(LatestInteraction {
            guid: r.guid,
            start,
            start_raw: r.start,
            has_ended,
            first_seen: None,
            seen_after: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(body: &str) -> Result<Vec<LatestInteraction>, (usize, &'static str)> {
        let body: LatestBody = serde_json::from_str(body).unwrap();
        to_latest(body.interactions)
    }

    #[test]
    fn ended_is_has_ended_else_a_duration_else_unknown() {
        let ended = |row: &str| {
            rows(&format!(r#"{{"interactions":[{row}]}}"#)).map(|l| l.first().map(|l| l.has_ended))
        };
        let start = r#""start":"2017-03-30T22:40:15Z","guid":"g""#;
        // Version 1 (seed 003).
        assert_eq!(
            ended(&format!(r#"{{{start},"hasEnded":true}}"#)),
            Ok(Some(true))
        );
        assert_eq!(
            ended(&format!(r#"{{{start},"hasEnded":false}}"#)),
            Ok(Some(false))
        );
        // The later shape: `duration` null while connected, seconds once ended.
        let later =
            |d: &str| format!(r#"{{"type":"Phone",{start},"duration":{d},"direction":"Inbound"}}"#);
        assert_eq!(ended(&later("null")), Ok(Some(false)));
        assert_eq!(ended(&later("972")), Ok(Some(true)));
        // Neither: unknown, not "running".
        assert!(ended(&format!("{{{start}}}")).is_err());
        let l = rows(&format!(
            r#"{{"interactions":[{{{start},"hasEnded":false}}]}}"#
        ))
        .unwrap();
        assert_eq!(l[0].start, Some(1_490_913_615_000));
    }

    #[test]
    fn every_row_is_read_up_to_the_bound_and_null_or_absent_is_none() {
        for none in [r#"{"interactions":[]}"#, r#"{"interactions":null}"#, "{}"] {
            assert_eq!(rows(none), Ok(vec![]), "{none}");
        }
        let row = |g: usize, ended: bool| format!(r#"{{"guid":"g{g}","hasEnded":{ended}}}"#);
        let two = format!(r#"{{"interactions":[{},{}]}}"#, row(1, true), row(2, false));
        let got: Vec<(String, bool)> = rows(&two)
            .unwrap()
            .into_iter()
            .map(|l| (l.guid, l.has_ended))
            .collect();
        assert_eq!(got, [("g1".into(), true), ("g2".into(), false)]);
        // The second row says nothing of its end: the agent's answer cannot be used.
        let bad = format!(r#"{{"interactions":[{},{{"guid":"g2"}}]}}"#, row(1, true));
        assert_eq!(rows(&bad).unwrap_err().0, 1);
        // A guid listed twice is kept once, as first listed.
        let twice = format!(r#"{{"interactions":[{},{}]}}"#, row(1, false), row(1, true));
        let l = rows(&twice).unwrap();
        assert_eq!((l.len(), l[0].has_ended), (1, false));
        // Beyond the bound, rows are read past.
        let many: Vec<String> = (0..MAX_LISTED_PER_AGENT + 10)
            .map(|g| row(g, false))
            .chain([row(0, true)])
            .collect();
        let l = rows(&format!(r#"{{"interactions":[{}]}}"#, many.join(","))).unwrap();
        assert_eq!(l.len(), MAX_LISTED_PER_AGENT);
        assert!(l.iter().all(|l| !l.has_ended));
    }

    #[test]
    fn a_token_lifetime_is_read_from_any_number() {
        let life = |v: &str| {
            serde_json::from_str::<TokenResponse>(&format!(
                r#"{{"access_token":"t","expires_in":{v}}}"#
            ))
            .map(|t| t.expires_in)
            .map_err(|e| e.to_string())
        };
        assert_eq!(life("3600"), Ok(Some(3600)));
        assert_eq!(life("3600.0"), Ok(Some(3600)));
        assert_eq!(life(r#""3600""#), Ok(Some(3600)));
        assert_eq!(life("1e20"), Ok(Some(u64::MAX)));
        assert_eq!(life("18446744073709551616"), Ok(Some(u64::MAX)));
        for none in ["0", "-5", "null", r#""soon""#, "true", "[]"] {
            assert_eq!(life(none), Ok(None), "{none}");
        }
    }
}
