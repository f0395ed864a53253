//! P2, report throughput: chat_1 rows as JSON text → typed row → report record (one thread, the
//! report feed's part) → Avro, Confluent framing → broker, every ack (another thread, the
//! publisher's part); against librdkafka alone publishing exactly the records ccdc produced
//! (same topic layout, keys, headers and payload bytes, encoded before the clock starts), in the
//! same run, with the same producer settings. Measured for each `kafka.record_headers`: the
//! CloudEvents headers (the default), the two `ccdc.*` headers (`minimal`), and none.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ccdc::config::{RecordHeaders, TopicsConfig};
use ccdc::encode::{AvroEncoder, RecordEncoder};
use ccdc::event::report::ReportKind;
use ccdc::event::{Event, ReportRecord, Stream};
use ccdc::kafka::KafkaSink;
use ccdc::simulator::reports::generated_row;
use ccdc::sink::{Ack, EventSink, OutRecord, SendError};
use rdkafka::client::ClientContext;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Medians over the rounds, rows per second: with the CloudEvents headers (the default), with the
/// `minimal` ones, and bare (`none`).
pub struct P2 {
    pub ccdc: f64,
    pub alone: f64,
    pub ccdc_minimal: f64,
    pub alone_minimal: f64,
    pub ccdc_bare: f64,
    pub alone_bare: f64,
    /// Each round's header-less ratio (its ccdc pass against the librdkafka-alone pass right
    /// after it), in round order: how much a single pass varies.
    pub bare_rounds: Vec<f64>,
    /// ccdc's conversion alone (row text → framed record, no headers), one thread, no broker:
    /// microseconds per row, median of five passes.
    pub convert_us: f64,
    /// The same with the CloudEvents headers made too.
    pub convert_ce_us: f64,
}

pub async fn p2(bootstrap: &str, rows: usize) -> P2 {
    let k = super::kafka(bootstrap);
    ccdc::topics::ensure_topics(
        &k,
        &[
            (ccdc::event::Stream::WolkvoxChat1, "bench.chat_1"),
            (ccdc::event::Stream::WolkvoxChat1, "bench.baseline"),
        ],
    )
    .await
    .expect("topics");
    let texts = chat_1_texts(rows);
    let tz = bogota();
    let (with, minimal, without) = (
        encoder("bench.chat_1", RecordHeaders::CloudEvents),
        encoder("bench.chat_1", RecordHeaders::Minimal),
        encoder("bench.chat_1", RecordHeaders::None),
    );
    let sink = KafkaSink::new(&k).expect("producer");
    let alone = Alone::new(&k);
    for topic in ["bench.chat_1", "bench.baseline"] {
        super::warm_up(&sink, topic).await;
        alone.send_all(&[super::warm_up_record(topic)]);
    }
    // What librdkafka alone sends: ccdc's records, made before the clock starts.
    let made = |headers: RecordHeaders| -> Vec<OutRecord> {
        let enc = encoder("bench.baseline", headers);
        texts
            .iter()
            .map(|t| enc.encode(&record(t, tz)).expect("encode"))
            .collect()
    };
    let (same, same_minimal, same_bare) = (
        made(RecordHeaders::CloudEvents),
        made(RecordHeaders::Minimal),
        made(RecordHeaders::None),
    );
    let (convert_us, convert_ce_us) = (
        convert_us(&texts, &without, tz),
        convert_us(&texts, &with, tz),
    );
    // Five rounds, each rate the median of its rounds: a single pass depends on what the broker
    // did just before (librdkafka alone varied 580,000–890,000 rows/s between runs with three).
    let mut rates: [Vec<f64>; 6] = Default::default();
    for _ in 0..5 {
        rates[0].push(ccdc_path(&sink, &with, &texts, tz).await);
        rates[1].push(alone.send_all(&same));
        rates[2].push(ccdc_path(&sink, &minimal, &texts, tz).await);
        rates[3].push(alone.send_all(&same_minimal));
        rates[4].push(ccdc_path(&sink, &without, &texts, tz).await);
        rates[5].push(alone.send_all(&same_bare));
    }
    let bare_rounds = rates[4].iter().zip(&rates[5]).map(|(c, a)| c / a).collect();
    let [a, b, c, d, e, f] = rates.map(|v| super::percentile(v, 0.5));
    P2 {
        ccdc: a,
        alone: b,
        ccdc_minimal: c,
        alone_minimal: d,
        ccdc_bare: e,
        alone_bare: f,
        bare_rounds,
        convert_us,
        convert_ce_us,
    }
}

/// `rows` chat_1 rows as the simulator serves them, one JSON text each.
fn chat_1_texts(rows: usize) -> Vec<String> {
    let start = chrono::NaiveDateTime::parse_from_str("2026-11-01 00:00:00", "%Y-%m-%d %H:%M:%S")
        .expect("date");
    (0..rows)
        .map(|i| {
            let t = start + chrono::Duration::seconds(i as i64);
            serde_json::to_string(&generated_row("chat_1", t)).expect("json")
        })
        .collect()
}

fn bogota() -> chrono_tz::Tz {
    "America/Bogota".parse().expect("tz")
}

/// ccdc's Avro encoder for chat_1 records on `topic`.
fn encoder(topic: &str, headers: RecordHeaders) -> AvroEncoder {
    let topics = TopicsConfig {
        wolkvox_chat_1: topic.into(),
        ..Default::default()
    };
    AvroEncoder::new(topics, &[(Stream::WolkvoxChat1, 2)])
        .expect("encoder")
        .with_record_headers(headers)
}

/// ccdc's conversion alone, one thread, no broker: row text → report record → framed record,
/// microseconds per row, median of five passes.
pub fn convert_alone(rows: usize) -> f64 {
    convert_us(
        &chat_1_texts(rows),
        &encoder("bench.chat_1", RecordHeaders::None),
        bogota(),
    )
}

fn convert_us(texts: &[String], enc: &AvroEncoder, tz: chrono_tz::Tz) -> f64 {
    let passes = (0..5)
        .map(|_| {
            let t = Instant::now();
            for text in texts {
                std::hint::black_box(enc.encode(&record(text, tz)).expect("encode"));
            }
            t.elapsed().as_secs_f64() * 1e6 / texts.len() as f64
        })
        .collect();
    super::percentile(passes, 0.5)
}

/// ccdc's path, split as the service splits it, until every record is acknowledged.
async fn ccdc_path(
    sink: &KafkaSink,
    enc: &AvroEncoder,
    texts: &[String],
    tz: chrono_tz::Tz,
) -> f64 {
    let t = Instant::now();
    let mut acked = 0;
    let mut acks: Vec<Ack> = Vec::new();
    let settle = |acks: &mut Vec<Ack>, acked: &mut usize| {
        sink.acks().drain_into(acks);
        for a in acks.drain(..) {
            a.result.expect("ack");
            *acked += 1;
        }
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(8);
        // Spent chunks go back to be freed where they were allocated, as in the service, where
        // the publisher frees the events it decoded itself (freeing another thread's memory is
        // mimalloc's slow path: 6 % of this benchmark's CPU).
        let (spent_tx, spent) = std::sync::mpsc::channel::<Vec<Event>>();
        std::thread::Builder::new()
            .name("report-feed".into())
            .spawn_scoped(s, move || {
                for chunk in texts.chunks(1024) {
                    spent.try_iter().for_each(drop);
                    if tx
                        .send(chunk.iter().map(|t| record(t, tz)).collect())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .expect("thread");
        let mut id = 0u64;
        for chunk in rx {
            for event in &chunk {
                let mut rec = enc.encode(event).expect("encode");
                loop {
                    match sink.send(id, rec) {
                        Ok(()) => break,
                        Err(SendError::QueueFull(r)) => {
                            rec = r;
                            settle(&mut acks, &mut acked);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(SendError::Failed(e)) => panic!("{e}"),
                    }
                }
                id += 1;
            }
            let _ = spent_tx.send(chunk);
        }
    });
    while acked < texts.len() {
        sink.acks().wait().await;
        settle(&mut acks, &mut acked);
    }
    texts.len() as f64 / t.elapsed().as_secs_f64()
}

/// 2026-12-01T00:00:00Z.
const PULLED_AT: i64 = 1_796_083_200_000;

/// A chat_1 record as the report feed builds it from one row's JSON text.
pub fn record(raw: &str, tz: chrono_tz::Tz) -> Event {
    let decoded = ccdc::sources::wolkvox::report_rows::decode(ReportKind::Chat1, raw, tz);
    let identity = decoded.identity.expect("identity");
    Event::ReportRow(Box::new(ReportRecord {
        event_id: ccdc::event::event_id(&["bench", &identity, &decoded.hash]).to_string(),
        source: "bench".into(),
        vendor: "wolkvox".into(),
        identity,
        row_hash: decoded.hash,
        window_start: 0,
        window_end: 0,
        window_start_raw: "20261101000000".into(),
        window_end_raw: "20261101235959".into(),
        // After the rows' dates (November 2026), so each record is stamped with its row's date.
        pulled_at: PULLED_AT,
        row: decoded.row.expect("coerce"),
    }))
}

/// librdkafka alone, as `kcat -P` uses it: records handed to the producer, a delivery callback
/// that counts, a wait until every record is counted. Same settings as ccdc's producer.
pub struct Alone(ThreadedProducer<Counted>);

#[derive(Default)]
pub struct Counted {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

impl ClientContext for Counted {}

impl ProducerContext for Counted {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let n = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

impl Alone {
    pub fn new(k: &ccdc::config::KafkaConfig) -> Self {
        let config = ccdc::kafka::producer_config(k).expect("config");
        Alone(
            config
                .create_with_context(Counted::default())
                .expect("producer"),
        )
    }

    /// Sends every record and waits for every ack: rows per second.
    pub fn send_all(&self, records: &[OutRecord]) -> f64 {
        let counts = self.0.context();
        let before = counts.ok.load(Ordering::Relaxed);
        let t = Instant::now();
        for r in records {
            let mut br = ccdc::kafka::base_record(r, ());
            while let Err((e, back)) = self.0.send(br) {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "{e}"
                );
                br = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Not `flush`: rdkafka's flush polls in slices of up to 100 ms, and when the producer's
        // polling thread has taken the last delivery reports it sleeps out the slice, which
        // made this baseline up to 100 ms slow per pass.
        let deadline = Instant::now() + Duration::from_secs(120);
        while counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed)
            < before + records.len()
        {
            assert!(Instant::now() < deadline, "acks within 120 s");
            std::thread::sleep(Duration::from_micros(100));
        }
        let rate = records.len() as f64 / t.elapsed().as_secs_f64();
        assert_eq!(
            counts.failed.load(Ordering::Relaxed),
            0,
            "every record delivered"
        );
        assert_eq!(counts.ok.load(Ordering::Relaxed) - before, records.len());
        rate
    }
}
