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
use crate::registry::{subject_for_topic, Compatibility, SchemaRegistry};

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

/// `ccdc schemas check`: would registration succeed? Err (non-zero exit) if any would be refused.
pub async fn schemas_check(config: &Config) -> anyhow::Result<()> {
    let reg = registry_client(config)?;
    let t = &config.topics;
    let mut refused = Vec::new();
    for stream in STREAMS {
        let subject = subject_for_topic(t.for_stream(*stream));
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
