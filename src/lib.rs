//! # ccdc — contact-center vendor APIs to Kafka event streams
//!
//! Module map (data flows top to bottom):
//!
//! | module | role |
//! |---|---|
//! | [`cli`], [`config`], [`secret`] | command line; TOML + `CCDC_*` env config, validated at start; secrets by reference |
//! | [`sources`] | one module per vendor ([`sources::wolkvox`], [`sources::comm100`], [`sources::vonage`]); shared HTTP (timeouts, size cap, per-token limiter) in [`sources::http`] |
//! | [`vendor_time`] | vendor local times → UTC with the configured zone (DST rules); vendor durations |
//! | [`diff`] | the pure diffs `(previous, current) → events`: interactions, agents ([`diff::agents`]), latest-only ([`diff::latest`]) |
//! | [`event`] | the published events and their stable ids |
//! | [`feed`] | the [`feed::Feed`] / [`feed::SnapshotSource`] traits: one polled endpoint = fetch + pure diff |
//! | [`poller`] | poll loop per feed: poll → atomic commit of state + outbox → wake the publisher |
//! | [`reports`] | Wolkvox report pulls: window planning, truncation splits, cursors, de-duplication, dead letters |
//! | [`store`] | the [`store::Store`] trait: sled (snapshots + outbox in one batch) and in-memory |
//! | [`state`] | large snapshots stored one entry per item, so a cycle writes only its delta |
//! | [`publisher`] | drains the outbox into a sink; deletes only on ack; resends on failure |
//! | [`avro`], [`registry`] | Avro serde-path encoding, Confluent wire format; Schema Registry trait, HTTP and in-memory |
//! | [`sink`], [`kafka`] | the [`sink::EventSink`] trait: Kafka (rdkafka, idempotent), stdout, in-memory; record encoders |
//! | [`simulator`] | the built-in vendor simulator (`ccdc simulate`, `ccdc demo`, tests) |
//! | [`app`] | wiring, start-up, ordered shutdown |
//! | [`commands`] | `demo` (simulator + stdout) and `schemas register/check` |
//! | [`observability`] | `/metrics` (Prometheus), `/healthz`, `/readyz`; readiness rules |
//! | [`backoff`] | jittered exponential back-off |
//! | [`alloc`] | settings of the binaries' allocator (mimalloc) |

pub mod alloc;
pub mod app;
pub mod avro;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diff;
pub mod event;
pub mod feed;
pub mod kafka;
pub mod observability;
pub mod poller;
pub mod publisher;
pub mod registry;
pub mod reports;
pub mod secret;
pub mod simulator;
pub mod sink;
pub mod sources;
pub mod state;
pub mod store;
pub mod vendor_time;
