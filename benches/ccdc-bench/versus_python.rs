//! P5: the P1 snapshot cycle, ccdc against a straightforward Python poller
//! (`benches/python_poller/poller.py`: requests, `json`, a dict diff, confluent-kafka's stock
//! `AvroSerializer` with a schema registry, an idempotent producer, no durable state), side by
//! side in one run: the same simulator (its own process), the same broker, each poller in its own
//! process measuring its own CPU time (user + sys of every thread) per cycle and its peak RSS.
//!
//! The Python side needs `python3` with `benches/python_poller/requirements.txt` installed
//! (`scripts/test.sh` installs it) and rivven-schema (`~/.cargo/bin`, or `RIVVEN_SCHEMA_BIN`);
//! without them P5 is skipped with a message saying what is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccdc::event::Stream;

use super::snapshot::{self, Cycles};

/// The P5 targets (issue #17): ccdc's CPU per cycle and peak RSS, as fractions of Python's.
pub const CPU_RATIO: f64 = 1.0 / 5.0;
pub const RSS_RATIO: f64 = 1.0 / 2.0;

const TOPIC: &str = "bench.p5";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("CCDC_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the Python side cannot run here, if it cannot.
fn missing() -> Option<String> {
    let deps = Command::new(python())
        .args(["-c", "import confluent_kafka, fastavro, requests"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !deps.is_ok_and(|s| s.success()) {
        return Some(format!(
            "{} cannot import confluent_kafka, fastavro and requests (pip install -r benches/python_poller/requirements.txt; scripts/test.sh does)",
            python()
        ));
    }
    if !registry_bin().exists() {
        return Some(format!(
            "no rivven-schema at {} (scripts/test.sh installs it; or set RIVVEN_SCHEMA_BIN)",
            registry_bin().display()
        ));
    }
    None
}

fn registry_bin() -> PathBuf {
    std::env::var("RIVVEN_SCHEMA_BIN").map_or_else(
        |_| {
            let home = std::env::var("HOME").unwrap_or_default();
            Path::new(&home).join(".cargo/bin/rivven-schema")
        },
        PathBuf::from,
    )
}

/// rivven-schema on a free port, once it answers `GET /subjects`; its URL.
fn start_registry() -> (super::Child, String) {
    let port = super::free_port();
    let child = Command::new(registry_bin())
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rivven-schema");
    let child = super::Child(child);
    super::wait_for_port("rivven-schema", port);
    let start = Instant::now();
    while !answers(port, "/subjects") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rivven-schema did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, format!("http://127.0.0.1:{port}"))
}

/// Whether `GET path` on the loopback `port` answers 200.
fn answers(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// The Python poller against the simulator at `base_url`: `cycles` + 1 cycles.
fn run_python(base_url: &str, bootstrap: &str, registry: &str, cycles: usize) -> Cycles {
    let root = repo();
    let out = Command::new(python())
        .arg(root.join("benches/python_poller/poller.py"))
        .args(["--base-url", base_url, "--token", "bench-token"])
        .args(["--bootstrap", bootstrap, "--registry", registry])
        .arg("--schema")
        .arg(root.join("schemas/interaction-event.avsc"))
        .args(["--topic", TOPIC, "--cycles", &cycles.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python poller failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    snapshot::parse_cycles("the Python poller", &out.stdout)
}

/// P5: run both pollers, print the ratios with their targets and (`full`) verdicts.
pub fn p5(
    rt: &tokio::runtime::Runtime,
    exe: &Path,
    bootstrap: &str,
    (n, cycles, full): (usize, usize, bool),
) {
    if let Some(why) = missing() {
        println!("P5 ccdc against a Python poller: NOT RUN: {why}");
        return;
    }
    let (_registry, registry) = start_registry();
    rt.block_on(ccdc::topics::ensure_topics(
        &super::kafka(bootstrap),
        &[(Stream::Interactions, TOPIC)],
    ))
    .expect("topic");
    let (sim, base_url) = snapshot::start_simulator(n);
    let ccdc = snapshot::run_ccdc(exe, &base_url, bootstrap, cycles);
    let py = run_python(&base_url, bootstrap, &registry, cycles);
    drop(sim);
    let (c_cpu, p_cpu) = (Cycles::steady(&ccdc.cpu_ms), Cycles::steady(&py.cpu_ms));
    let (c_rss, p_rss) = (ccdc.peak_mb(), py.peak_mb());
    let (cpu_ratio, rss_ratio) = (c_cpu / p_cpu, c_rss / p_rss);
    println!(
        "P5 ccdc against a Python poller ({n} interactions, 1% changing, {cycles} steady cycles each, side by side): CPU per steady cycle ccdc {c_cpu:.0} ms, Python {p_cpu:.0} ms, ratio {cpu_ratio:.3} (target ≤ {CPU_RATIO:.2}: {}); peak RSS ccdc {c_rss:.0} MB, Python {p_rss:.0} MB, ratio {rss_ratio:.2} (≤ {RSS_RATIO:.2}: {})",
        snapshot::verdict(cpu_ratio <= CPU_RATIO, full),
        snapshot::verdict(rss_ratio <= RSS_RATIO, full),
    );
    println!(
        "   P5 detail: wall per steady cycle ccdc {:.0} ms, Python {:.0} ms; fetch + parse + diff (+ commit for ccdc) {:.0} / {:.0} ms; first cycle ccdc {:.0} ms ({:.0} ms CPU), Python {:.0} ms ({:.0} ms CPU); events in the steady cycles ccdc {}, Python {}",
        Cycles::steady(&ccdc.wall_ms),
        Cycles::steady(&py.wall_ms),
        Cycles::steady(&ccdc.poll_ms),
        Cycles::steady(&py.poll_ms),
        ccdc.wall_ms[0],
        ccdc.cpu_ms[0],
        py.wall_ms[0],
        py.cpu_ms[0],
        ccdc.steady_events,
        py.steady_events,
    );
}
