//! Disk full: the real binary with its state directory on a small tmpfs, against tansu and the
//! simulator, while a seeded Wolkvox timeline plays (one step at a time, each step's events on the
//! topic before the next).
//!
//! Mid-run a filler file takes every free byte of the tmpfs and one more timeline step is served:
//! ccdc's commits (and its quota counter) fail with ENOSPC. The test checks that `/readyz` answers
//! 503 naming the state store and the cause, that polls are counted as failed, and that `/healthz`
//! stays 200 (the store is being reopened: a restart would not help). Then the filler is deleted:
//! `/readyz` must be 200 again, the held step's events must arrive, polling goes on for more steps,
//! and the whole topic read back from offset 0 holds exactly the events the timeline implies —
//! 0 lost, 0 invented, duplicates only repeating a seen event id, per-interaction order intact.
//!
//! Needs root (to mount the tmpfs); elsewhere it says so and passes without running.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccdc::event::InteractionEvent;
use ccdc::simulator::SimMode;
use common::timeline::{implied, timeline, to_step, Pairs, Tally, Transition};
use common::{http_get, http_status, RegistryDecoder, Stack, TopicReader};

const TOPIC: &str = "ccdc.it.diskfull";
/// How long the disk stays full (not a bound on anything: the scenario's length).
const FULL_FOR: Duration = Duration::from_secs(15);

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "diskfull"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "400ms"
confirm_empty_polls = 1
[sources.agents]
enabled = false
"#;

/// A tmpfs mounted for the test, unmounted on drop (lazily: a process may still hold it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Take every free byte of the file system of `dir` with `dir/filler`.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    while f.write_all(&block[..4096]).and_then(|()| f.flush()).is_ok() {}
    path
}

/// The sum of every sample of `metric` on ccdc's /metrics (0 while absent or unreachable).
fn metric_sum(ops_url: &str, metric: &str) -> f64 {
    http_get(&format!("{ops_url}/metrics"))
        .map(|page| {
            page.lines()
                .filter(|l| {
                    l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} "))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0)
}

/// Decode every record not yet tallied.
fn drain(reader: &TopicReader, dec: &mut RegistryDecoder, tally: &mut Tally, from: &mut usize) {
    for r in &reader.records[*from..] {
        tally.add(dec.decode::<InteractionEvent>(&r.payload));
    }
    *from = reader.records.len();
}

/// Serve step `k` of the timeline and note the events it implies.
fn step(s: &Stack, steps: &[Pairs], k: usize, expected: &mut Vec<Transition>) {
    let empty = Pairs::new();
    if k > 0 {
        s.sim.state.advance();
    }
    expected.extend(implied(
        if k == 0 { &empty } else { &steps[k - 1] },
        &steps[k],
    ));
}

async fn wait_for(s: &Stack, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what}: not within 90 s\n{}",
            common::read_to_string(&s.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_is_reported_and_recovered_from_with_nothing_lost_or_invented() {
    let (before, after) = (5, 5);
    let steps = timeline(20261203, before + 1 + after);
    let s = Stack::start(
        "diskfull-token",
        SimMode::Scripted(steps.iter().map(to_step).collect()),
        SOURCES,
        &[("interactions", TOPIC)],
    )
    .await;
    // The state directory the generated configuration names, on its own small file system.
    let Some(tmpfs) = Tmpfs::mount(&s.infra.dir.path().join("state"), "16m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs (not root?): the disk-full test needs one");
        return;
    };
    let ccdc = s.ccdc(&[]);
    let (ready, live) = (
        format!("{}/readyz", s.ops_url),
        format!("{}/healthz", s.ops_url),
    );
    let mut reader = s.reader(TOPIC).await;
    let mut dec = RegistryDecoder::new(&s.infra.registry_url);
    let (mut tally, mut decoded) = (Tally::default(), 0);
    let mut expected: Vec<Transition> = Vec::new();
    let play = |k: usize, expected: &mut Vec<Transition>| step(&s, &steps, k, expected);
    let mut delivered = |reader: &mut TopicReader, tally: &mut Tally, n: usize| {
        reader.poll_for(Duration::from_millis(50));
        drain(reader, &mut dec, tally, &mut decoded);
        tally.firsts.len() >= n
    };

    for k in 0..before {
        play(k, &mut expected);
        let n = expected.len();
        wait_for(&s, &format!("step {k} delivered"), || {
            delivered(&mut reader, &mut tally, n)
        })
        .await;
    }
    wait_for(&s, "/readyz 200 before the disk fills", || {
        http_status(&ready).0 == 200
    })
    .await;

    // The disk fills; one more step is served while it is full.
    let failures_before = metric_sum(&s.ops_url, "ccdc_poll_failures_total");
    let filler = fill(&tmpfs.0);
    let filled = Instant::now();
    play(before, &mut expected);
    let mut not_ready = String::new();
    wait_for(&s, "/readyz 503 naming the state store", || {
        let (code, body) = http_status(&ready);
        not_ready = body;
        code == 503 && not_ready.contains("state store") && not_ready.contains("No space left")
    })
    .await;
    // Several polls fail while it is full (they fail before calling the vendor: the feed must
    // first reload its state from the closed store).
    wait_for(&s, "polls counted as failed", || {
        metric_sum(&s.ops_url, "ccdc_poll_failures_total") >= failures_before + 3.0
    })
    .await;
    // Full for a while, so that the reopen attempts back off to their longest wait (5 s).
    tokio::time::sleep(FULL_FOR.saturating_sub(filled.elapsed())).await;
    let failures = metric_sum(&s.ops_url, "ccdc_poll_failures_total") - failures_before;
    let (live_code, live_body) = http_status(&live);
    let still = http_status(&ready);
    let store_failures = metric_sum(&s.ops_url, "ccdc_store_failures_total");

    // Space returns.
    std::fs::remove_file(filler).expect("remove the filler");
    let freed = Instant::now();
    let full_for = filled.elapsed();
    wait_for(&s, "/readyz 200 after space returned", || {
        http_status(&ready).0 == 200
    })
    .await;
    let ready_again = freed.elapsed();
    let n = expected.len();
    wait_for(&s, "the held step delivered", || {
        delivered(&mut reader, &mut tally, n)
    })
    .await;
    let held_delivered = freed.elapsed();
    for k in before + 1..steps.len() {
        play(k, &mut expected);
        let n = expected.len();
        wait_for(&s, &format!("step {k} delivered"), || {
            delivered(&mut reader, &mut tally, n)
        })
        .await;
    }
    let stopped = ccdc.terminate(Duration::from_secs(30));

    // Everything, from offset 0, with a fresh consumer.
    let mut reader = s.reader(TOPIC).await;
    let mut dec = RegistryDecoder::new(&s.infra.registry_url);
    let (mut tally, mut decoded) = (Tally::default(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tally.firsts.len() < expected.len() && Instant::now() < deadline {
        reader.poll_for(Duration::from_millis(200));
        drain(&reader, &mut dec, &mut tally, &mut decoded);
    }
    reader.poll_for(Duration::from_secs(1));
    drain(&reader, &mut dec, &mut tally, &mut decoded);
    let v = tally.verdict(&expected);
    println!(
        "disk full for {:.0} s: {failures} polls failed, {store_failures} store closure(s); /readyz 200 again {:.2} s and the held step's events on the topic {:.2} s after space was freed; expected={} received={} duplicates={} lost={} invented={}",
        full_for.as_secs_f64(),
        ready_again.as_secs_f64(),
        held_delivered.as_secs_f64(),
        expected.len(),
        tally.received,
        v.duplicates,
        v.lost,
        v.invented.len(),
    );
    let log = common::read_to_string(&s.log);
    assert!(not_ready.contains("No space left on device"), "{not_ready}");
    assert_eq!(still.0, 503, "still not ready while full: {}", still.1);
    assert!(failures >= 1.0, "polls counted as failed while full\n{log}");
    assert!(store_failures >= 1.0, "the store closure counted");
    assert_eq!(
        live_code, 200,
        "/healthz while the store is being reopened: {live_body}"
    );
    assert!(
        log.contains("state store reopened"),
        "the reopen is logged\n{log}"
    );
    assert!(stopped.success(), "clean shutdown after recovery\n{log}");
    assert_eq!(v.lost, 0, "lost events\n{log}");
    assert!(v.invented.is_empty(), "invented events: {:?}", v.invented);
    tally.assert_order(&expected);
}
