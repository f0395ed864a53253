//! The third-party consumer check: `tests/interop/consume.py` (Python confluent-kafka with its
//! stock `AvroDeserializer` and `SchemaRegistryClient`) decodes every record of a topic and must
//! find, field by field, what the Rust test decoded.

use std::path::Path;

use serde::Serialize;

use super::{Record, Stack};

/// Run the Python consumer on `topic` and assert it decoded exactly `got`.
pub fn python_interop<T: Serialize>(s: &Stack, topic: &str, got: &[(Record, T)]) {
    let expected: Vec<serde_json::Value> = got
        .iter()
        .map(|(_, e)| serde_json::to_value(e).expect("an event is JSON"))
        .collect();
    let file = s.infra.dir.path().join(format!("expected-{topic}.json"));
    std::fs::write(&file, serde_json::to_string(&expected).expect("JSON")).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/consume.py");
    let python = std::env::var("CCDC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(script)
        .args([
            "--bootstrap",
            &s.infra.bootstrap,
            "--registry",
            &s.infra.registry_url,
            "--topic",
            topic,
            "--expected",
        ])
        .arg(&file)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python confluent-kafka interop failed:\n{text}"
    );
    assert!(
        text.contains(&format!("interop ok: {} records", got.len())),
        "{text}"
    );
}
