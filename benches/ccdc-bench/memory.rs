//! P3 (memory of a 256 MB response, in a child process) and P4 (an idle `ccdc run`).

use std::io::Read;
use std::time::{Duration, Instant};

use ccdc::avro::StreamEncoder;
use ccdc::event::Stream;
use ccdc::simulator::reports::generated_row;
use ccdc::simulator::{SimMode, SimServer, SimState};

use super::throughput::record;
use super::{cpu_ticks, status_kb};

/// A JSON envelope of `bytes` bytes of chat_1 rows, produced lazily (never held whole).
struct BigBody {
    target: usize,
    produced: usize,
    buf: Vec<u8>,
    pos: usize,
    i: i64,
    closed: bool,
}

impl Read for BigBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.produced == 0 {
                self.buf
                    .extend_from_slice(br#"{"code":200,"error":null,"msg":"","data":["#);
            } else if self.produced >= self.target {
                if self.closed {
                    return Ok(0);
                }
                self.buf.extend_from_slice(b"]}");
                self.closed = true;
            } else {
                if self.i > 0 {
                    self.buf.push(b',');
                }
                let t = chrono::DateTime::from_timestamp(1_790_000_000 + self.i, 0)
                    .expect("time")
                    .naive_utc();
                serde_json::to_writer(&mut self.buf, &generated_row("chat_1", t))
                    .map_err(std::io::Error::other)?;
                self.i += 1;
            }
            self.produced += self.buf.len();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Child process of P3: stream `bytes` through parse → coerce → Avro; print rows and peak RSS.
pub fn p3_child(bytes: usize) {
    let tz: chrono_tz::Tz = "America/Bogota".parse().expect("tz");
    let encoder = StreamEncoder::new(Stream::WolkvoxChat1, 2).expect("encoder");
    let context = ccdc::avro::RecordContext::new(Some("America/Bogota".into()), None);
    let mut rows = 0u64;
    let mut body = std::io::BufReader::with_capacity(
        64 * 1024,
        BigBody {
            target: bytes,
            produced: 0,
            buf: Vec::new(),
            pos: 0,
            i: 0,
            closed: false,
        },
    );
    let t = Instant::now();
    ccdc::sources::wolkvox::report_stream::stream_rows(
        "bench",
        "p3",
        &mut body,
        usize::MAX,
        |row| {
            let ev = record(row.get(), tz);
            let bytes = encoder.encode_event(&ev, &context).expect("encode");
            std::hint::black_box(bytes);
            rows += 1;
        },
    )
    .expect("stream");
    println!(
        "p3 rows={rows} secs={:.2} vmhwm_kb={}",
        t.elapsed().as_secs_f64(),
        status_kb("self", "VmHWM:")
    );
}

fn p4(ccdc: &std::path::Path, idle: Duration) -> (u64, f64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt
        .block_on(SimServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            SimState::new(
                "idle-token",
                SimMode::Random {
                    seed: 1,
                    agents: 20,
                },
            ),
        ))
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "idle-token").expect("token");
    let config = dir.path().join("ccdc.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\noutput = \"stdout\"\n[observability]\nlisten = \"127.0.0.1:0\"\n[[sources]]\nvendor = \"wolkvox\"\nname = \"idle\"\nbase_url = {:?}\ntoken = {{ file = {:?} }}\ntime_zone = \"America/Bogota\"\nallow_insecure_http = true\n[sources.interactions]\ninterval = \"5m\"\n[sources.agents]\ninterval = \"5m\"\n",
            dir.path().join("state").display().to_string(),
            sim.base_url(),
            dir.path().join("token").display().to_string()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(ccdc)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ccdc");
    std::thread::sleep(Duration::from_secs(3)); // first polls done, now idle until the next interval
    let pid = child.id();
    let ticks = cpu_ticks(pid);
    std::thread::sleep(idle);
    let used = cpu_ticks(pid) - ticks;
    let rss = status_kb(&pid.to_string(), "VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    rt.block_on(sim.stop());
    (rss, used as f64 / 100.0 / idle.as_secs_f64() * 100.0)
}

pub fn p3(exe: &std::path::Path, big: usize) {
    let out = std::process::Command::new(exe)
        .args(["--p3-child", &big.to_string()])
        .output()
        .expect("p3 child");
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "P3 memory: {} MB response streamed: {}",
        big >> 20,
        text.trim()
    );
    assert!(
        out.status.success(),
        "p3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// P3 through the service's report feed: a `rows`-row chat_1 window of about `bytes` bytes
/// served by the simulator (its own process), pulled, kept, de-duplicated and committed to sled
/// by the report feed in a child process, whose peak RSS is measured. No publisher: the events
/// stay in the outbox, as while a broker is slow.
pub fn p3_feed(exe: &std::path::Path, rows: usize, bytes: usize) {
    // A generated chat_1 row is about 520 bytes with an empty `comments`.
    let padding = (bytes / rows).saturating_sub(520).to_string();
    let (_sim, base_url) =
        super::start_simulator(&["--report-spacing", "1", "--report-padding", &padding]);
    let out = std::process::Command::new(exe)
        .args(["--p3-feed-child", &base_url, &rows.to_string()])
        .output()
        .expect("p3 feed child");
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "   P3 detail, through the service's report feed (spill file, chunked commits to sled, no publisher): {}",
        text.trim()
    );
    assert!(
        out.status.success(),
        "p3 feed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Child of [`p3_feed`]: one backfill window of `rows` rows from the simulator at `base_url`.
pub fn p3_feed_child(base_url: &str, rows: usize) {
    use ccdc::event::report::ReportKind;
    use ccdc::reports::{Mode, ReportFeed, ReportPlan};
    use ccdc::store::{SledStore, Store};
    use std::sync::Arc;

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("state")).expect("sled"));
    let from = super::range_start();
    let plan = ReportPlan::past_range(ReportKind::Chat1, chrono::Duration::days(1));
    let mode = Mode::Backfill {
        from,
        to: from + chrono::Duration::seconds(rows as i64),
    };
    let feed = ReportFeed::new(
        ccdc::sources::wolkvox::WolkvoxClient::new(&super::bench_source("p3", base_url))
            .expect("client"),
        store.clone(),
        plan,
        mode,
    )
    .with_spill_dir(dir.path().join("state"));
    let mut poller =
        super::driven_poller(Box::new(feed), &store, Arc::new(tokio::sync::Notify::new()));
    let t = Instant::now();
    let mut committed = 0;
    loop {
        match rt
            .block_on(poller.cycle(chrono::Utc::now().timestamp_millis()))
            .expect("cycle")
        {
            ccdc::poller::CycleOutcome::Committed { events, more, .. } => {
                committed += events;
                if !more {
                    break;
                }
            }
            ccdc::poller::CycleOutcome::Idle { more: true } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    println!(
        "{committed} rows in {:.2} s, peak RSS {} MB (it grows with the rows committed to sled, not with their size; no publisher drains the outbox here)",
        t.elapsed().as_secs_f64(),
        status_kb("self", "VmHWM:") / 1024
    );
}

pub fn p4_report(ccdc_bin: &std::path::Path, idle: Duration) {
    if ccdc_bin.exists() {
        let (rss, cpu) = p4(ccdc_bin, idle);
        println!(
            "P4 idle: RSS {} MB, CPU {cpu:.2}% over {}s between polls",
            rss / 1024,
            idle.as_secs()
        );
    } else {
        println!(
            "P4 idle: skipped ({} not built; cargo build --release first)",
            ccdc_bin.display()
        );
    }
}
