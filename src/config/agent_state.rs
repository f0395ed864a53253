//! `[sources.agent_state]`: the `agent-state` records of a source (the current state of every
//! agent on a compacted topic, [`crate::event::agent_state`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::event::agent_state::StatusCategory;

/// The default of `agent_state.refresh_every_polls`: an unchanged agent's record is published
/// again every 10 polls of its feed (50 minutes at Wolkvox's 5-minute interval, 10 minutes at
/// Comm100's and Vonage's 1 minute).
pub const DEFAULT_AGENT_STATE_REFRESH_EVERY_POLLS: u32 = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentStateConfig {
    /// Publish `agent-state` records for this source's agents (Wolkvox and Comm100: from the
    /// `agents` feed; Vonage: from `interactions`, the agents' latest interactions).
    pub enabled: bool,
    /// Publish an unchanged agent's record again every this many polls of the feed (0: never), so
    /// a table built from the topic never goes stale silently: a record whose `observed_at` is
    /// older than `refresh_every_polls` × the feed's interval (plus one interval) means ccdc no
    /// longer observes the agent.
    pub refresh_every_polls: u32,
    /// Status (or status name) → category, over the built-in rules
    /// ([`crate::event::agent_state::DEFAULT_STATUS_CATEGORIES`]); matched ignoring case, a key
    /// ending in `*` matches every status starting with what precedes it (e.g.
    /// `"Aux - Coaching" = "BUSY"`, `"Aux*" = "AWAY"`; Comm100: a status id or its name).
    pub status_categories: BTreeMap<String, StatusCategory>,
}

impl Default for AgentStateConfig {
    fn default() -> Self {
        AgentStateConfig {
            enabled: true,
            refresh_every_polls: DEFAULT_AGENT_STATE_REFRESH_EVERY_POLLS,
            status_categories: BTreeMap::new(),
        }
    }
}

impl AgentStateConfig {
    /// `has_status`: the vendor reports agent statuses (Vonage does not: no categories to map).
    pub(crate) fn validate(&self, at: &str, has_status: bool) -> Result<(), ConfigError> {
        let key = format!("{at}.agent_state.status_categories");
        if !has_status && !self.status_categories.is_empty() {
            return Err(invalid(
                key,
                "this vendor reports no agent status: there is nothing to map",
            ));
        }
        for pattern in self.status_categories.keys() {
            let body = pattern.strip_suffix('*').unwrap_or(pattern);
            if body.trim().is_empty() || body.contains('*') {
                return Err(invalid(
                    &key,
                    format!("`{pattern}`: a status, or a status prefix followed by one `*`"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_a_status_or_a_prefix_and_vonage_maps_nothing() {
        let with = |k: &str| AgentStateConfig {
            status_categories: [(k.to_string(), StatusCategory::Away)].into(),
            ..Default::default()
        };
        assert!(with("Aux*").validate("sources[0]", true).is_ok());
        assert!(with("Ready").validate("sources[0]", true).is_ok());
        for bad in ["*", "", "A*ux", "  *"] {
            let e = with(bad).validate("sources[0]", true).unwrap_err();
            assert!(
                e.to_string()
                    .contains("sources[0].agent_state.status_categories"),
                "{e}"
            );
        }
        let e = with("Ready").validate("sources[2]", false).unwrap_err();
        assert!(e.to_string().contains("reports no agent status"), "{e}");
        assert!(AgentStateConfig::default()
            .validate("sources[2]", false)
            .is_ok());
    }

    #[test]
    fn categories_are_written_like_the_avro_symbols() {
        let cfg: AgentStateConfig = serde_json::from_str(
            r#"{"refresh_every_polls": 3, "status_categories": {"Aux - Coaching": "BUSY"}}"#,
        )
        .unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.refresh_every_polls, 3);
        assert_eq!(
            cfg.status_categories["Aux - Coaching"],
            StatusCategory::Busy
        );
        assert!(serde_json::from_str::<AgentStateConfig>(
            r#"{"status_categories": {"x": "busy"}}"#
        )
        .is_err());
    }
}
