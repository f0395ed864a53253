//! # ccdc — contact-center vendor APIs to Kafka event streams
//!
//! Data path: **poll** (a vendor source fetches one complete observation) → **diff** (pure: the
//! events that lead from the last committed observation to this one) → **outbox** (the new state
//! and its events in one atomic store commit) → **encode** (Avro, Confluent framing) → **publish**
//! (deleted from the outbox only on the broker's ack).
//!
//! Layers, bottom to top. A module imports only modules of its own layer listed before it, or of
//! the layers below (`tests/layers.rs` checks every `crate::` path in `src/`, so the import graph
//! has no cycle):
//!
//! | layer | modules | role |
//! |---|---|---|
//! | 0. domain | [`secret`], [`retry`], [`vendor_time`], [`window`], [`event`], [`config`] | secrets by reference; the one back-off policy; vendor local times; report windows in local time; the published events and their ids ([`event::id`]), metrics and report rows; the validated configuration |
//! | 1. logic and storage | [`diff`], [`store`], [`shard`] | the pure diffs `(previous, current) → events`; the [`store::Store`] trait (sled and in-memory), the named [`store::outbox`] (with the events just committed kept in memory for the publisher: [`store::outbox::Recent`]) and the snapshot layout ([`store::buckets`]: a base and a log of deltas); which sources a replica polls (rendezvous hashing) and what it forgets of a source it takes over |
//! | 2. vendors | [`sources`] | the [`sources::SnapshotSource`] trait and [`sources::SourceError`]; Wolkvox (real time, report rows), Comm100, Vonage, shared HTTP; [`sources::scripted`], the in-memory source |
//! | 3. pipeline | [`observability`], [`avro`], [`registry`], [`sink`], [`encode`], [`kafka`], [`topics`], [`feed`], [`reports`], [`poller`], [`publisher`], [`checkpoint`] | readiness and metrics; Avro and the Schema Registry (HTTP and in-memory); the [`sink::EventSink`] trait (stdout, memory) and its Kafka impl; records from events; topic creation with per-stream settings and the start-up check of existing topics; the [`feed::Feed`] of one endpoint; report pulls; the poll loop (commit state + outbox); the outbox drain; report cursors checkpointed in a compacted Kafka topic once their events are acknowledged, and resumed from it |
//! | 4. wiring | [`alloc`], [`simulator`] (feature `simulator`), [`cli`], [`app`], [`commands`], `main.rs` | the binaries' allocator; the built-in vendor simulator; the command line; [`app::run`] and the [`app::Pipeline`], given its store, sink and registry ([`app::Parts`]); `demo`, `simulate`, `backfill`, `schemas` |

pub mod config;
pub mod event;
pub mod retry;
pub mod secret;
pub mod vendor_time;
pub mod window;

pub mod diff;
pub mod shard;
pub mod store;

pub mod sources;

pub mod avro;
pub mod checkpoint;
pub mod encode;
pub mod feed;
pub mod kafka;
pub mod observability;
pub mod poller;
pub mod publisher;
pub mod registry;
pub mod reports;
pub mod sink;
pub mod topics;

pub mod alloc;
pub mod app;
pub mod cli;
pub mod commands;
#[cfg(feature = "simulator")]
pub mod simulator;
