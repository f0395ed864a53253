//! P6: a thousand sources in one process. The real `ccdc run` binary polls `ccdc simulate
//! --worlds` (its own process), where each source is a world of its own (`/w/NAME/`, token
//! `bench-token-NAME`): 20 agents with 60 active interactions, 3 of them replaced and one agent's
//! status flipped every interval. Sources are Wolkvox, Comm100 and Vonage in turn, every endpoint
//! polled every interval (Wolkvox: interactions, agents; Comm100: agents, queue, today, right now;
//! Vonage: the 20 agents' latest interactions), agent state and heartbeats on (the defaults), one
//! sled database, `output = "stdout"` (to /dev/null: the JSON lines cost what the Kafka path's
//! encoding would, without a broker's CPU on the same two cores).
//!
//! Measured on the ccdc process: peak RSS (VmHWM, start-up included) and RSS at the end; CPU
//! (utime + stime from /proc) over a steady window after every source has polled; how late polls
//! start after they are due (`ccdc_poll_start_lag_seconds`, the difference of two scrapes of
//! `/metrics` around the window; p99 is the upper bound of the bucket that holds it); polls and
//! failed polls in the window.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{cpu_ticks, free_port, status_kb, Child};

const VENDORS: [&str; 3] = ["wolkvox", "comm100", "vonage"];

/// Feeds of one source of `vendor` (every endpoint enabled).
fn feeds_of(vendor: &str) -> usize {
    match vendor {
        "wolkvox" => 2,
        "comm100" => 4,
        _ => 1,
    }
}

/// The configuration of `n` sources on the worlds simulator at `root` (`http://ADDR`), polled
/// every `interval`; the token files are written into `dir`.
fn config(dir: &Path, root: &str, n: usize, interval: Duration, listen: u16) -> String {
    let every = format!("\"{}\"", humantime::format_duration(interval));
    let poll = |endpoint: &str| format!("[sources.{endpoint}]\ninterval = {every}\n");
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("tokens dir");
    let mut text = format!(
        "state_dir = {:?}\noutput = \"stdout\"\nshutdown_timeout = \"10s\"\n[observability]\nlisten = \"127.0.0.1:{listen}\"\n",
        dir.join("state").display().to_string()
    );
    let agents: Vec<String> = (0..20).map(|i| format!("\"{}\"", 1001 + i)).collect();
    for i in 0..n {
        let vendor = VENDORS[i % 3];
        let name = format!("p6-{vendor}-{i:04}");
        let token_file = tokens.join(&name);
        std::fs::write(&token_file, format!("bench-token-{name}")).expect("token file");
        let token = format!("{{ file = {:?} }}", token_file.display().to_string());
        let world = format!("{root}/w/{name}");
        text += &format!(
            "[[sources]]\nvendor = \"{vendor}\"\nname = \"{name}\"\nallow_insecure_http = true\n"
        );
        match vendor {
            "wolkvox" => {
                text += &format!("base_url = \"{world}/api/v2\"\ntoken = {token}\ntime_zone = \"America/Bogota\"\n");
                text += &(poll("interactions") + &poll("agents"));
            }
            "comm100" => {
                text += &format!("base_url = \"{world}/comm100/v4\"\ntoken = {token}\naway_statuses_url = \"{world}/comm100/v4/agentAwayStatuses\"\n");
                for e in ["agents", "queue", "today", "right_now"] {
                    text += &poll(e);
                }
            }
            _ => {
                text += &format!(
                    "base_url = \"{world}/vonage\"\naccount_key = \"p6\"\ntoken_url = \"{world}/vonage/Auth/connect/token\"\nclient_id = \"ccdc-sim\"\nclient_secret = {token}\nagent_ids = [{}]\nrequests_per_second = 20\n",
                    agents.join(", ")
                );
                text += &poll("interactions");
            }
        }
    }
    text
}

/// `/metrics` of the process listening on `port` (plain HTTP/1.0; empty on failure).
fn scrape(port: u16) -> String {
    let mut text = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let _ = s.read_to_string(&mut text);
    }
    text
}

/// The sum of every sample of `metric` (any labels) in a scrape.
fn sum(scrape: &str, metric: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `metric`'s samples summed by the values of `labels` (e.g. failures by endpoint and kind).
fn by_labels(scrape: &str, metric: &str, labels: &[&str]) -> Vec<(String, f64)> {
    let mut out: std::collections::BTreeMap<String, f64> = Default::default();
    for l in scrape.lines() {
        let Some(rest) = l.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((inside, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let key: Vec<&str> = labels
            .iter()
            .filter_map(|want| {
                inside.split("\",").find_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    (k == *want).then(|| v.trim_end_matches('"'))
                })
            })
            .collect();
        *out.entry(key.join(" ")).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    out.into_iter().collect()
}

/// The cumulative buckets of the unlabelled histogram `metric`: `(le, count)`, `le` ascending.
fn buckets(scrape: &str, metric: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{metric}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = scrape
        .lines()
        .filter_map(|l| {
            let (le, rest) = l.strip_prefix(&prefix)?.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Of the samples between two scrapes: how many, the upper bound of the bucket holding the p99,
/// and the share at or under 0.5 s.
fn lag_between(before: &str, after: &str) -> (f64, f64, f64) {
    const LAG: &str = "ccdc_poll_start_lag_seconds";
    let (b, a) = (buckets(before, LAG), buckets(after, LAG));
    let delta: Vec<(f64, f64)> = a
        .iter()
        .map(|(le, n)| {
            let was = b.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, n - was)
        })
        .collect();
    let total = delta.last().map_or(0.0, |x| x.1);
    let p99 = delta
        .iter()
        .find(|(_, n)| *n >= 0.99 * total)
        .map_or(f64::NAN, |x| x.0);
    let under = delta
        .iter()
        .find(|(le, _)| *le >= 0.5)
        .map_or(0.0, |x| x.1 / total.max(1.0));
    (total, p99, under)
}

/// What one P6 run measured.
pub struct P6 {
    pub sources: usize,
    pub feeds: usize,
    pub hwm_kb: u64,
    pub rss_kb: u64,
    pub cpu_percent: f64,
    pub lag_samples: f64,
    pub lag_p99: f64,
    pub lag_share_under: f64,
    pub polls: f64,
    pub failures: f64,
    pub expected_polls: f64,
    pub published: f64,
    pub state_mb: f64,
    pub threads: u64,
    /// Failed polls over the whole run, by endpoint and kind.
    pub failure_kinds: Vec<(String, f64)>,
}

/// Size of everything under `dir`, in MB.
fn du_mb(dir: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(dir) as f64 / 1e6
}

/// Run `ccdc run` on `n` sources polled every `interval`; measure after `warm` for `window`.
pub fn p6(ccdc: &Path, n: usize, interval: Duration, warm: Duration, window: Duration) -> P6 {
    let step = humantime::format_duration(interval).to_string();
    let (_sim, base_url) =
        super::start_simulator(&["--worlds", "--agents", "20", "--world-step", &step]);
    let root = base_url.trim_end_matches("/api/v2").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = free_port();
    let config_path = dir.path().join("ccdc.toml");
    std::fs::write(&config_path, config(dir.path(), &root, n, interval, listen)).expect("config");
    let log = std::fs::File::create(dir.path().join("ccdc.log")).expect("log");
    let child = std::process::Command::new(ccdc)
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ccdc run");
    let pid = child.id();
    let mut child = Child(child);
    super::wait_for_port("ccdc's /metrics", listen);
    let started = Instant::now();
    while started.elapsed() < warm {
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(Some(status)) = child.0.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("ccdc.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!("ccdc run exited ({status}) during P6:\n{}", tail.join("\n"));
        }
    }
    let before = scrape(listen);
    let ticks = cpu_ticks(pid);
    let t = Instant::now();
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - ticks;
    let secs = t.elapsed().as_secs_f64();
    let after = scrape(listen);
    let pid_text = pid.to_string();
    let (hwm_kb, rss_kb) = (
        status_kb(&pid_text, "VmHWM:"),
        status_kb(&pid_text, "VmRSS:"),
    );
    let threads = status_kb(&pid_text, "Threads:");
    // SAFETY: kill(2) on the child we started, by its pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !matches!(child.0.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
    // For a closer look: `P6_LOG=path` keeps ccdc's log (run with e.g. MIMALLOC_SHOW_STATS=1).
    if let Ok(keep) = std::env::var("P6_LOG") {
        let _ = std::fs::copy(dir.path().join("ccdc.log"), keep);
    }
    let (lag_samples, lag_p99, lag_share_under) = lag_between(&before, &after);
    let delta = |m: &str| sum(&after, m) - sum(&before, m);
    let feeds: usize = (0..n).map(|i| feeds_of(VENDORS[i % 3])).sum();
    P6 {
        sources: n,
        feeds,
        hwm_kb,
        rss_kb,
        cpu_percent: used as f64 / 100.0 / secs * 100.0,
        lag_samples,
        lag_p99,
        lag_share_under,
        polls: delta("ccdc_polls_total"),
        failures: delta("ccdc_poll_failures_total"),
        expected_polls: feeds as f64 * secs / interval.as_secs_f64(),
        published: delta("ccdc_events_published_total"),
        state_mb: du_mb(&dir.path().join("state")),
        threads,
        failure_kinds: by_labels(&after, "ccdc_poll_failures_total", &["endpoint", "kind"]),
    }
}

/// Run P6 and print its figures, target and verdict.
pub fn p6_report(ccdc: &Path, short: bool) {
    if !ccdc.exists() {
        println!(
            "P6 many sources: skipped ({} not built; cargo build --release first)",
            ccdc.display()
        );
        return;
    }
    let (n, interval, warm, window) = if short {
        (
            50,
            Duration::from_secs(2),
            Duration::from_secs(5),
            Duration::from_secs(6),
        )
    } else {
        (
            std::env::var("P6_SOURCES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000),
            Duration::from_secs(10),
            Duration::from_secs(40),
            Duration::from_secs(60),
        )
    };
    let r = p6(ccdc, n, interval, warm, window);
    let hwm_mb = r.hwm_kb as f64 / 1024.0;
    println!(
        "   P6 detail: {} feeds; in the {}s window {:.0} polls of {:.0} due, {:.0} failed, {:.0} records published; {:.0} lag samples, {:.1} % started within 0.5 s of being due; RSS at the end {:.0} MB, {} threads; state on disk {:.1} MB (one sled database)",
        r.feeds,
        window.as_secs(),
        r.polls,
        r.expected_polls,
        r.failures,
        r.published,
        r.lag_samples,
        r.lag_share_under * 100.0,
        r.rss_kb as f64 / 1024.0,
        r.threads,
        r.state_mb,
    );
    if !r.failure_kinds.is_empty() {
        println!(
            "   P6 detail: failed polls over the whole run, by endpoint and kind: {:?}",
            r.failure_kinds
        );
    }
    let met = hwm_mb <= 200.0
        && r.cpu_percent <= 20.0
        && r.lag_p99 <= 0.5
        && r.failures == 0.0
        && r.polls >= 0.9 * r.expected_polls;
    println!(
        "P6 many sources: {} sources (Wolkvox, Comm100, Vonage; 20 agents, 60 interactions each), every {}: peak RSS {hwm_mb:.0} MB, CPU {:.1} % of one core, poll-start lag p99 <= {} s; target: peak RSS <= 200 MB, CPU <= 20 %, lag p99 <= 0.5 s, every poll on time and none failed: {}",
        r.sources,
        humantime::format_duration(interval),
        r.cpu_percent,
        r.lag_p99,
        if met { "met" } else { "NOT met" }
    );
}
