//! `ccdc demo`: the built-in simulator of every vendor, polled by the real service with the stdout
//! output. No Kafka, nothing kept. Each record is printed as one JSON object naming its stream
//! (`DemoSink`): `{"topic":…,"type":…,"key":…,"event":{…}}`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::app::{run_with, Parts};
use crate::avro::STREAMS;
use crate::cli::SimulateArgs;
use crate::config::{Config, TopicsConfig};
use crate::event::{InteractionEventType, Stream};
use crate::simulator::{vonage::CLIENT_ID, SimMode, SimServer, SimState};
use crate::sink::{Acks, EventSink, OutRecord, SendError, SinkError, StdoutSink};

/// Vendors the demo can simulate.
pub const DEMO_VENDORS: &[&str] = &["wolkvox", "comm100", "vonage"];

/// `ccdc demo`: the built-in simulator on loopback, polled every `interval` (metrics every 5×),
/// events printed as JSON lines on stdout, each wrapped with its topic, type and key
/// (`DemoSink`). Nothing is kept: the state lives in a temporary directory.
pub async fn demo(
    interval: Duration,
    vendors: &[String],
    agents: usize,
    seed: u64,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ccdc-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("token");
    write_private(&token_file, "demo-token")?;
    let sim = SimServer::start(
        "127.0.0.1:0".parse()?,
        SimState::new("demo-token", SimMode::Random { seed, agents }),
    )
    .await?;
    let res = async {
        let config = Config::from_toml_str(&demo_config(&sim, &dir, &token_file, interval, vendors, agents)?)?;
        tracing::info!(vendors = ?vendors, addr = %sim.addr, "demo: simulator started; events follow on stdout as JSON lines {{topic, type, key, event}} (Ctrl-C to stop)");
        let mut parts = Parts::from_config(&config)?;
        parts.sink = Arc::new(DemoSink::new(config.topics.clone()));
        run_with(config, parts, shutdown).await
    }
    .await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    res
}

fn demo_config(
    sim: &SimServer,
    dir: &std::path::Path,
    token_file: &std::path::Path,
    interval: Duration,
    vendors: &[String],
    agents: usize,
) -> anyhow::Result<String> {
    let every = humantime::format_duration(interval).to_string();
    let metrics_every = humantime::format_duration(interval * 5).to_string();
    let poll = |name: &str, every: &str| {
        format!("[sources.{name}]\ninterval = \"{every}\"\nmax_backoff = \"{every}\"\n")
    };
    let token = format!("{{ file = {:?} }}", token_file.display().to_string());
    let mut text = format!(
        "state_dir = {:?}\nshutdown_timeout = \"5s\"\noutput = \"stdout\"\n[observability]\nlisten = \"127.0.0.1:0\"\n",
        dir.join("state").display().to_string()
    );
    for v in vendors {
        match v.as_str() {
            "wolkvox" => {
                text += &format!("[[sources]]\nvendor = \"wolkvox\"\nname = \"demo-wolkvox\"\nbase_url = {:?}\ntoken = {token}\ntime_zone = \"America/Bogota\"\nallow_insecure_http = true\n", sim.base_url());
                text += &poll("interactions", &every);
                text += &poll("agents", &every);
                text += &format!("[[sources.reports]]\nreport = \"chat_1\"\ninterval = \"{metrics_every}\"\nsettle_delay = \"0s\"\nlookback = \"10m\"\n");
            }
            "comm100" => {
                text += &format!(
                    "[[sources]]\nvendor = \"comm100\"\nname = \"demo-comm100\"\nbase_url = {:?}\ntoken = {token}\naway_statuses_url = {:?}\nallow_insecure_http = true\n",
                    sim.comm100_base_url(),
                    format!("{}/agentAwayStatuses", sim.comm100_base_url())
                );
                text += &poll("agents", &every);
                for m in ["queue", "today", "right_now"] {
                    text += &poll(m, &metrics_every);
                }
            }
            "vonage" => {
                let (base, token_url) = sim.vonage_urls();
                let ids: Vec<String> = (0..agents).map(|i| format!("\"{}\"", 1001 + i)).collect();
                text += &format!(
                    "[[sources]]\nvendor = \"vonage\"\nname = \"demo-vonage\"\nbase_url = {base:?}\naccount_key = \"demo\"\ntoken_url = {token_url:?}\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {token}\nagent_ids = [{}]\nrequests_per_second = 50\nallow_insecure_http = true\n",
                    ids.join(", ")
                );
                text += &poll("interactions", &every);
            }
            other => anyhow::bail!(
                "unknown vendor `{other}` (one of {})",
                DEMO_VENDORS.join(", ")
            ),
        }
    }
    Ok(text)
}

/// The demo's stdout: every record as one JSON object per line that names its stream, so a reader
/// (or `jq 'select(.type == "interaction-started")'`) tells a Comm100 `Today` record from a
/// `RightNow` one, or an interaction event from an agent event:
///
/// `{"topic":"ccdc.interactions","type":"interaction-started","key":"demo-wolkvox/00000002","event":{…}}`
///
/// `topic` is the Kafka topic the record would go to, `type` the event type
/// ([`crate::event::Event::type_name`]: `interaction-started`, `agent-status-changed`,
/// `comm100-today`, …), `key` its
/// Kafka key, and `event` the record's value exactly as the JSON output has it (the Avro schema's
/// field names).
pub struct DemoSink {
    inner: StdoutSink,
    topics: TopicsConfig,
}

/// One demo line.
#[derive(Serialize)]
struct DemoLine<'a> {
    topic: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    key: &'a str,
    event: &'a RawValue,
}

impl DemoSink {
    pub fn new(topics: TopicsConfig) -> Self {
        DemoSink {
            inner: StdoutSink::default(),
            topics,
        }
    }

    /// The line for `record`, a JSON object; `Err` names the topic and what is wrong.
    pub fn line(&self, record: &OutRecord) -> Result<Vec<u8>, String> {
        let event: &RawValue = serde_json::from_slice(&record.payload)
            .map_err(|e| format!("{}: the record is not JSON: {e}", record.topic))?;
        let stream = STREAMS
            .iter()
            .copied()
            .find(|s| self.topics.for_stream(*s) == record.topic)
            .ok_or_else(|| format!("{}: not a topic of this configuration", record.topic))?;
        let kind = match stream_type(stream) {
            Some(kind) => kind,
            None => {
                #[derive(Deserialize)]
                struct Kind {
                    event_type: InteractionEventType,
                }
                let k: Kind = serde_json::from_str(event.get())
                    .map_err(|e| format!("{}: field `event_type`: {e}", record.topic))?;
                k.event_type.as_str()
            }
        };
        let line = DemoLine {
            topic: &record.topic,
            kind,
            key: &record.key,
            event,
        };
        serde_json::to_vec(&line).map_err(|e| format!("{}: {e}", record.topic))
    }
}

/// The event type of every record of `stream` ([`crate::event::Event::type_name`]); `None` for the
/// interactions stream, whose type (`interaction-started` / `-ended`) is in the record.
fn stream_type(stream: Stream) -> Option<&'static str> {
    Some(match stream {
        Stream::Interactions => return None,
        Stream::AgentStatus => "agent-status-changed",
        Stream::Comm100Queue => "comm100-queue",
        Stream::Comm100Today => "comm100-today",
        Stream::Comm100RightNow => "comm100-right-now",
        Stream::WolkvoxChat1 => "wolkvox-chat_1-row",
        Stream::WolkvoxDiagram9 => "wolkvox-diagram_9-row",
        Stream::DeadLetter => "dead-letter",
        Stream::Heartbeat => "heartbeat",
        Stream::InteractionsReconciled => "interaction-reconciled",
        Stream::AgentState => "agent-state",
    })
}

impl EventSink for DemoSink {
    fn send(&self, id: u64, record: OutRecord) -> Result<(), SendError> {
        // The demo's encoder makes JSON of a known topic, so this does not fail; if it ever did,
        // the record is refused (dead-lettered, like any record the output cannot take), never
        // printed half-named.
        let payload = self
            .line(&record)
            .map_err(|e| SendError::Failed(SinkError::Rejected(e)))?;
        self.inner.send(id, OutRecord { payload, ..record })
    }
    fn acks(&self) -> &Acks {
        self.inner.acks()
    }
    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.flush(timeout)
    }
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

/// `ccdc simulate`: serve only the simulated vendor APIs until `shutdown`, printing each vendor's
/// `base_url` (and how to try it) on stderr.
pub async fn simulate(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let SimulateArgs {
        listen,
        token,
        agents,
        seed,
        bench_interactions,
        bench_churn_percent,
        report_spacing,
        report_padding,
        worlds,
        world_step,
    } = args;
    let mode = match bench_interactions {
        Some(n) => SimMode::Bench {
            seed,
            interactions: n,
            churn: ((n as f64) * bench_churn_percent / 100.0).round() as usize,
        },
        None => SimMode::Random { seed, agents },
    };
    let state = SimState::new(&token, mode);
    state.set_report_generation(report_spacing, 60_000);
    state.set_report_padding(report_padding);
    if worlds {
        state.serve_worlds(crate::simulator::worlds::WorldSpec {
            seed,
            agents,
            step_every: world_step,
            ..Default::default()
        });
    }
    let sim = SimServer::start(listen, state).await?;
    let (vonage, vonage_token) = sim.vonage_urls();
    eprintln!(
        "simulator listening on {}; the token for every vendor is `{token}`",
        sim.addr
    );
    eprintln!(
        "  wolkvox  base_url = {}   (header wolkvox-token)",
        sim.base_url()
    );
    eprintln!(
        "  comm100  base_url = {}   (bearer token)",
        sim.comm100_base_url()
    );
    eprintln!(
        "  vonage   base_url = {vonage}   token_url = {vonage_token}   client_id = {CLIENT_ID}"
    );
    eprintln!(
        "  try: curl -H 'wolkvox-token: {token}' '{}/real_time.php?api=interactions'",
        sim.base_url()
    );
    if worlds {
        eprintln!(
            "  worlds: every vendor of world NAME under http://{}/w/NAME/ (e.g. /w/NAME/api/v2), token `{token}-NAME`",
            sim.addr
        );
    }
    shutdown.cancelled().await;
    sim.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::WireView;
    use crate::event::Event;

    fn record(event: &Event) -> OutRecord {
        OutRecord {
            topic: TopicsConfig::default()
                .for_stream(event.stream())
                .to_string(),
            key: event.key(),
            payload: serde_json::to_vec(&WireView(event)).unwrap(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_demo_line_names_topic_type_and_key_and_keeps_the_event_whole() {
        let sink = DemoSink::new(TopicsConfig::default());
        let mut event =
            crate::event::started_for_tests("00000000-0000-5000-8000-000000000001", "c1");
        for kind in [InteractionEventType::Started, InteractionEventType::Ended] {
            if let Event::Interaction(e) = &mut event {
                e.event_type = kind;
            }
            let rec = record(&event);
            let line: serde_json::Value =
                serde_json::from_slice(&sink.line(&rec).unwrap()).unwrap();
            assert_eq!(line["topic"], "ccdc.interactions");
            assert_eq!(line["type"], event.type_name());
            assert_eq!(line["key"], "s/c1");
            let inner: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
            assert_eq!(line["event"], inner);
            assert_eq!(line.as_object().unwrap().len(), 4, "{line}");
        }
    }

    #[test]
    fn every_stream_but_interactions_has_one_type_and_a_record_that_is_not_ours_is_refused() {
        for s in STREAMS {
            assert_eq!(
                stream_type(*s).is_none(),
                *s == Stream::Interactions,
                "{s:?}"
            );
        }
        let sink = DemoSink::new(TopicsConfig::default());
        let mut rec = record(&crate::event::started_for_tests("e", "c1"));
        rec.topic = "elsewhere".into();
        assert!(sink
            .line(&rec)
            .unwrap_err()
            .contains("elsewhere: not a topic"));
        rec.topic = "ccdc.interactions".into();
        rec.payload = b"{\"event_type\": \"PAUSED\"}".to_vec();
        assert!(sink.line(&rec).unwrap_err().contains("`event_type`"));
        rec.payload = b"not json".to_vec();
        assert!(sink.line(&rec).unwrap_err().contains("not JSON"));
    }
}
