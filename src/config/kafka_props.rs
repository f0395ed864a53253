//! Which librdkafka properties `[kafka.properties]` and `[kafka.secret_properties]` accept.
//!
//! - Properties ccdc sets for its delivery guarantee, and properties that would break delivery
//!   without an error, are refused in both.
//! - Secret-valued properties go in `secret_properties` (by reference) only; a secret property
//!   must be one librdkafka treats as sensitive (or one of a few that some deployments keep out of
//!   the file). No error about a property ever carries its value.
//! - TLS downgrades are accepted (a test cluster with a self-signed certificate needs them) with a
//!   warning at every load.

use std::collections::BTreeMap;

use super::{invalid, ConfigError};
use crate::secret::SecretRef;

/// librdkafka properties ccdc sets itself for its delivery guarantee; weakening them is refused.
const GUARANTEE_PROPERTIES: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "bootstrap.servers",
    "compression.type",
    "compression.codec",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "partitioner",
];

/// Properties that librdkafka accepts but that stop delivery, or its acknowledgement, silently.
const DELIVERY_BREAKING: &[(&str, &str)] = &[
    (
        "delivery.report.only.error",
        "refused: ccdc removes an event from the outbox only on its delivery report; with reports for errors only, nothing would ever be acknowledged",
    ),
    (
        "transactional.id",
        "refused: ccdc uses the idempotent producer, not transactions; a transactional producer's records are never committed by ccdc",
    ),
    (
        "metadata.broker.list",
        "refused: an alias of bootstrap.servers; use kafka.bootstrap_servers",
    ),
];

/// Properties whose values are secrets (librdkafka marks them sensitive): only in
/// `secret_properties`, by reference.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
];

/// Not secrets, but some deployments keep them out of the configuration file: accepted in either.
const MAY_BE_SECRET: &[&str] = &[
    "sasl.username",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.credentials.client.id",
    "ssl.certificate.pem",
    "ssl.ca.pem",
];

/// librdkafka's property names are case-sensitive; ccdc's refusals are not, so a misspelt
/// `SASL.PASSWORD` is refused here rather than by librdkafka (whose error would echo the value).
fn normalized(key: &str) -> String {
    key.trim().to_ascii_lowercase()
}

pub(super) fn validate(
    properties: &BTreeMap<String, String>,
    secret_properties: &BTreeMap<String, SecretRef>,
) -> Result<(), ConfigError> {
    for key in properties.keys() {
        let at = format!("kafka.properties.{key}");
        let k = normalized(key);
        if GUARANTEE_PROPERTIES.contains(&k.as_str()) {
            return Err(invalid(
                at,
                "is set by ccdc for its delivery guarantee (use the dedicated key if there is one)",
            ));
        }
        if let Some((_, why)) = DELIVERY_BREAKING.iter().find(|(p, _)| *p == k) {
            return Err(invalid(at, *why));
        }
        if SECRET_PROPERTIES.contains(&k.as_str()) {
            return Err(invalid(
                at,
                "holds a secret: give it in [kafka.secret_properties] by reference ({ env = \"NAME\" } or { file = \"/path\" })",
            ));
        }
    }
    for key in secret_properties.keys() {
        let at = format!("kafka.secret_properties.{key}");
        if !(SECRET_PROPERTIES.contains(&key.as_str()) || MAY_BE_SECRET.contains(&key.as_str())) {
            return Err(invalid(
                at,
                format!(
                    "not a librdkafka secret property (one of {}, or {}); other properties go in kafka.properties",
                    SECRET_PROPERTIES.join(", "),
                    MAY_BE_SECRET.join(", ")
                ),
            ));
        }
        if properties.contains_key(key) {
            return Err(invalid(at, "also set in kafka.properties"));
        }
    }
    Ok(())
}

/// `(key, what it turns off)` for every TLS downgrade in `properties`.
pub(super) fn tls_downgrades(properties: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
    properties
        .iter()
        .filter_map(|(key, value)| {
            let v = value.trim().to_ascii_lowercase();
            match normalized(key).as_str() {
                "enable.ssl.certificate.verification"
                    if matches!(v.as_str(), "false" | "f" | "0") =>
                {
                    Some((key.clone(), "the brokers' certificates are not verified"))
                }
                "ssl.endpoint.identification.algorithm" if v == "none" => Some((
                    key.clone(),
                    "the brokers' host names are not checked against their certificates",
                )),
                _ => None,
            }
        })
        .collect()
}
