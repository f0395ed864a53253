//! The third-party consumer check: `tests/interop/consume.py` (Python confluent-kafka with its
//! stock `AvroDeserializer` and `SchemaRegistryClient`, and the CloudEvents SDK's Kafka binding)
//! decodes every record of a topic and must find, field by field, what the Rust test decoded; and,
//! in its headers, the CloudEvent the payload implies, timed like the record.

use std::path::Path;

use ccdc::event::reconciled::InteractionReconciled;
use ccdc::event::{Event, InteractionEvent};
use serde::Serialize;

use super::{Record, RegistryDecoder, Stack};

/// The context fields every record ends with, as a generic Avro reader decodes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordContext {
    pub source_time_zone: Option<String>,
    pub ccdc_version: Option<String>,
    pub account_id: Option<String>,
}

/// An event type a test reads back, as the `Event` ccdc published.
pub trait AsEvent {
    fn as_event(&self) -> Event;
}

impl AsEvent for InteractionEvent {
    fn as_event(&self) -> Event {
        Event::Interaction(self.clone())
    }
}

impl AsEvent for InteractionReconciled {
    fn as_event(&self) -> Event {
        Event::Reconciled(Box::new(self.clone()))
    }
}

/// The CloudEvent attributes README documents for `e` (time as UTC ms).
fn cloudevent(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": e.event_id(),
        "source": format!("ccdc://{}/{}", e.vendor(), e.source()),
        "type": e.cloudevents_type(),
        "subject": e.subject(),
        "time": e.event_time_ms(),
        "datacontenttype": "application/avro",
    })
}

/// Run the Python consumer on `topic` and assert it decoded exactly `got`, context fields included.
pub fn python_interop<T: Serialize + AsEvent>(s: &Stack, topic: &str, got: &[(Record, T)]) {
    let mut decoder = RegistryDecoder::new(&s.infra.registry_url);
    let events: Vec<serde_json::Value> = got
        .iter()
        .map(|(r, e)| {
            let mut v = serde_json::to_value(e).expect("an event is JSON");
            let context: RecordContext = decoder.decode(&r.payload);
            let context = serde_json::to_value(context).expect("JSON");
            for (k, x) in context.as_object().expect("an object") {
                v[k] = x.clone();
            }
            v
        })
        .collect();
    let cloudevents: serde_json::Map<String, serde_json::Value> = got
        .iter()
        .map(|(_, e)| {
            let e = e.as_event();
            (e.event_id().to_string(), cloudevent(&e))
        })
        .collect();
    let expected = serde_json::json!({ "events": events, "cloudevents": cloudevents });
    let file = s.infra.dir.path().join(format!("expected-{topic}.json"));
    std::fs::write(&file, serde_json::to_string(&expected).expect("JSON")).expect("write");
    let file = file.display().to_string();
    let text = run_python(
        "tests/interop/consume.py",
        &[
            "--bootstrap",
            &s.infra.bootstrap,
            "--registry",
            &s.infra.registry_url,
            "--topic",
            topic,
            "--expected",
            &file,
        ],
    );
    assert!(
        text.contains(&format!("interop ok: {} records", got.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("cloudevents ok: {} records", got.len())),
        "{text}"
    );
}

/// Run a Python script of the repository (`script` relative to its root) with `args`, using
/// `CCDC_TEST_PYTHON` or else `python3`; assert that it succeeded and return its stdout followed by
/// its stderr. The interop check above and the consumer recipe of `examples/` run through it.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let python = std::env::var("CCDC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    text
}
