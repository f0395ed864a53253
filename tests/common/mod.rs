//! Integration-test infrastructure: a fresh tansu broker and rivven-schema registry per test on free
//! loopback ports (killed on drop), a reader that assigns every partition from offset 0, and a decoder
//! that resolves writer schemas through the registry like a Confluent deserializer.
//!
//! Split by concern: `util` (process guard, free ports, HTTP and file helpers), `infra` (broker and
//! registry processes), `reader` (reading topics back and decoding Avro), `stack` (simulator + infra +
//! ccdc configuration, and the spawned ccdc process), `interop` (the Python confluent-kafka check),
//! `timeline` (a seeded random Wolkvox timeline and the lost / invented / duplicate tally of the
//! fault tests). Everything public is re-exported here, so tests keep using `common::X`.
#![allow(dead_code)]

mod infra;
mod interop;
mod reader;
mod stack;
pub mod timeline;
mod util;

// Each test binary uses only some of these re-exports (as it uses only some items; hence the
// module-wide `dead_code` allow above).
#[allow(unused_imports)]
pub use self::{
    infra::{spawn_registry, Infra},
    interop::{python_interop, run_python, RecordContext},
    reader::{Record, RegistryDecoder, TopicReader},
    stack::{sim_agent, Ccdc, Stack},
    util::{free_port, http_get, http_status, read_to_string, Proc},
};
