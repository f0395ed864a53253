//! The commands besides `run` ([`crate::app::run`]): `schemas register|check` here, `backfill`
//! ([`backfill`]) and `demo` ([`demo`], with the `simulator` feature).

mod backfill;
#[cfg(feature = "simulator")]
mod demo;

pub use backfill::backfill;
#[cfg(feature = "simulator")]
pub use demo::{demo, simulate, DEMO_VENDORS};

use crate::app::registry_client;
use crate::avro::{schema_text, STREAMS};
use crate::config::Config;
use crate::registry::{subject_for_topic, Compatibility, SchemaRegistry, EXPECTED_LEVELS};

/// `ccdc schemas register`: register every schema under its topic's subject.
pub async fn schemas_register(config: &Config) -> anyhow::Result<()> {
    let reg = registry_client(config)?;
    let t = &config.topics;
    for stream in STREAMS {
        let subject = subject_for_topic(t.for_stream(*stream));
        let id = reg.register(&subject, schema_text(*stream)).await?;
        println!("{subject}\tregistered\tid={id}");
    }
    Ok(())
}

/// `ccdc schemas check`: each subject's compatibility level (a warning when it is weaker than
/// BACKWARD, the level ccdc expects), and would registration succeed? Err (non-zero exit) if any
/// would be refused.
pub async fn schemas_check(config: &Config) -> anyhow::Result<()> {
    let reg = registry_client(config)?;
    let t = &config.topics;
    let mut refused = Vec::new();
    for stream in STREAMS {
        let subject = subject_for_topic(t.for_stream(*stream));
        match reg.compatibility_level(&subject).await? {
            Some(level) if EXPECTED_LEVELS.contains(&level.as_str()) => {
                println!("{subject}\tcompatibility level {level}")
            }
            Some(level) => println!(
                "{subject}\tWARNING: compatibility level {level}; ccdc expects {} (its schemas only add optional fields with defaults, so consumers with the newest schema read every older record)",
                EXPECTED_LEVELS.join(" or ")
            ),
            None => println!("{subject}\tcompatibility level unknown (the registry did not say)"),
        }
        match reg.check(&subject, schema_text(*stream)).await? {
            Compatibility::Compatible => println!("{subject}\tcompatible"),
            Compatibility::NewSubject => {
                println!("{subject}\tnew subject (registration would create it)")
            }
            Compatibility::Incompatible(reasons) => {
                println!("{subject}\tINCOMPATIBLE\t{}", reasons.join("; "));
                refused.push(subject);
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("registration would be refused for: {}", refused.join(", "))
    }
}
