//! `[checkpoints]`: report cursors also kept in a compacted Kafka topic ([`crate::checkpoint`]).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// Where and how often report cursors are checkpointed (only with `output = "kafka"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointsConfig {
    /// Write acknowledged report cursors to `topic`, and resume from it a report feed whose cursor
    /// is missing or older locally (a new replica, a lost volume).
    pub enabled: bool,
    /// The compacted topic, keyed `<source>/<feed>` (created with `cleanup.policy=compact`).
    pub topic: String,
    /// How often cursors whose window's events are all acknowledged are written.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        CheckpointsConfig {
            enabled: true,
            topic: "ccdc.checkpoints".into(),
            interval: Duration::from_secs(1),
        }
    }
}

impl CheckpointsConfig {
    /// The interval must be 100 ms..=1 h; the topic is checked with the others.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.interval) {
            return Err(invalid("checkpoints.interval", "must be 100ms..=1h"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn config(checkpoints: &str) -> String {
        std::env::set_var("CCDC_TEST_CP_TOKEN", "tok");
        format!(
            "output = \"stdout\"\n{checkpoints}\n[[sources]]\nvendor = \"wolkvox\"\nname = \"ops\"\nbase_url = \"https://wv001.wolkvox.com/api/v2\"\ntoken = {{ env = \"CCDC_TEST_CP_TOKEN\" }}\ntime_zone = \"America/Bogota\"\n"
        )
    }

    #[test]
    fn checkpoints_default_on_to_ccdc_checkpoints_every_second() {
        let c = Config::from_toml_str(&config("")).unwrap();
        assert!(c.checkpoints.enabled);
        assert_eq!(c.checkpoints.topic, "ccdc.checkpoints");
        assert_eq!(c.checkpoints.interval, std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_bad_checkpoint_topic_or_interval_is_refused_naming_the_key() {
        let err = |t: &str| Config::from_toml_str(&config(t)).unwrap_err().to_string();
        let e = err("[checkpoints]\ntopic = \"ccdc.interactions\"");
        assert!(
            e.contains("`checkpoints.topic`") && e.contains("stream"),
            "{e}"
        );
        let e = err("[checkpoints]\ntopic = \"no spaces\"");
        assert!(e.contains("`checkpoints.topic`"), "{e}");
        let e = err("[checkpoints]\ninterval = \"10ms\"");
        assert!(e.contains("`checkpoints.interval`"), "{e}");
        let e = err("[checkpoints]\nsurprise = 1");
        assert!(e.contains("surprise"), "{e}");
    }
}
