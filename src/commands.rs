//! The commands besides `run`: `demo` (simulator + stdout, no Kafka) and `schemas register|check`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::{registry_client, run};
use crate::avro::{schema_text, STREAMS};
use crate::config::Config;
use crate::registry::{subject_for_topic, Compatibility, SchemaRegistry};
use crate::simulator::{vonage::CLIENT_ID, SimMode, SimServer, SimState};

/// Vendors the demo can simulate.
pub const DEMO_VENDORS: &[&str] = &["wolkvox", "comm100", "vonage"];

/// `ccdc demo`: the built-in simulator on loopback, polled every `interval` (metrics every 5×),
/// events printed as JSON lines on stdout. Nothing is kept: the state lives in a temporary directory.
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
        tracing::info!(vendors = ?vendors, addr = %sim.addr, "demo: simulator started; events follow on stdout as JSON lines (Ctrl-C to stop)");
        run(config, shutdown).await
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

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

/// `ccdc schemas register`: register every schema under its topic's subject.
pub async fn schemas_register(config: &Config) -> anyhow::Result<()> {
    let reg = registry_client(config)?;
    let t = &config.topics;
    for stream in STREAMS {
        let subject = subject_for_topic(t.for_stream(*stream));
        let id = reg.register(&subject, schema_text(*stream)).await?;
        println!("{subject}\tregistered\tid={id}");
    }
    Ok(())
}

/// `ccdc schemas check`: would registration succeed? Err (non-zero exit) if any would be refused.
pub async fn schemas_check(config: &Config) -> anyhow::Result<()> {
    let reg = registry_client(config)?;
    let t = &config.topics;
    let mut refused = Vec::new();
    for stream in STREAMS {
        let subject = subject_for_topic(t.for_stream(*stream));
        match reg.check(&subject, schema_text(*stream)).await? {
            Compatibility::Compatible => println!("{subject}\tcompatible"),
            Compatibility::NewSubject => {
                println!("{subject}\tnew subject (registration would create it)")
            }
            Compatibility::Incompatible(reasons) => {
                println!("{subject}\tINCOMPATIBLE\t{}", reasons.join("; "));
                refused.push(subject);
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("registration would be refused for: {}", refused.join(", "))
    }
}

/// `ccdc backfill`: pull a fixed range of one report (split into legal windows) through the same
/// outbox as the service, with a progress bar. Its cursor is its own (keyed by the range), so an
/// interrupted backfill resumes where it stopped and the live cursor never moves.
pub async fn backfill(
    config: Config,
    source: &str,
    report: &str,
    from: &str,
    to: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use crate::config::{parse_local_start, ReportConfig, SourceConfig};
    use crate::reports::{cursor_key, parse_cursor, Mode, ReportFeed};

    let w = config
        .sources
        .iter()
        .find_map(|s| match s {
            SourceConfig::Wolkvox(w) if w.name == source => Some(w),
            _ => None,
        })
        .ok_or_else(|| {
            anyhow::anyhow!("no Wolkvox source named `{source}` in the configuration")
        })?;
    let report_cfg = match w.reports.iter().find(|r| r.report == report) {
        Some(r) => r.clone(),
        None => serde_json::from_value::<ReportConfig>(serde_json::json!({ "report": report }))?,
    };
    let plan = report_cfg.plan()?;
    let (from, to) = (
        parse_local_start(from).map_err(anyhow::Error::msg)?,
        parse_local_start(to).map_err(anyhow::Error::msg)?,
    );
    anyhow::ensure!(from < to, "--from must be before --to");
    let mode = Mode::Backfill { from, to };

    let pipeline = crate::app::Pipeline::start(&config, &shutdown)?;
    let store = pipeline.store.clone();
    let client = crate::sources::wolkvox::WolkvoxClient::with_quota(w, store.clone())?;
    let key = cursor_key(&w.name, plan.kind, mode);
    let feed = ReportFeed::new(client, store.clone(), plan.clone(), mode)
        .with_spill_dir(config.state_dir.clone());
    let mut poller = crate::poller::Poller::new(
        Box::new(feed),
        store.clone(),
        pipeline.notify.clone(),
        report_cfg.interval,
        report_cfg.max_backoff,
    );
    poller.load()?;

    let total = (to - from).num_seconds().max(1) as u64;
    let covered = |store: &dyn crate::store::Store| {
        store
            .get(&key)
            .ok()
            .flatten()
            .and_then(|b| parse_cursor(&b).ok())
            .map_or(0, |c| {
                (c - from).num_seconds().clamp(0, total as i64) as u64
            })
    };
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {percent}% {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{} {}", w.name, plan.kind.name()));
    bar.set_position(covered(store.as_ref()));
    let started = std::time::Instant::now();
    let (mut windows, mut rows, mut failures) = (0u64, 0u64, 0u32);
    let outcome: anyhow::Result<bool> = async {
        loop {
            if shutdown.is_cancelled() {
                return Ok(false);
            }
            match poller.cycle(chrono::Utc::now().timestamp_millis()).await {
                Ok(crate::poller::CycleOutcome::Committed { events, more, .. }) => {
                    failures = 0;
                    windows += 1;
                    rows += events as u64;
                    bar.set_position(covered(store.as_ref()));
                    let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
                    bar.set_message(format!("{windows} windows, {rows} rows, {rate:.0} rows/s"));
                    if !more {
                        return Ok(true);
                    }
                }
                Ok(crate::poller::CycleOutcome::Idle { more: false }) => return Ok(true),
                Ok(_) => {}
                Err(crate::poller::CycleError::Source(e)) if matches!(e.kind(), "overflow" | "quota" | "config" | "auth") => {
                    return Err(anyhow::Error::new(e).context("backfill stopped; fix the cause and run the same command to resume"))
                }
                Err(e) => {
                    failures += 1;
                    let wait = crate::backoff::jittered(failures, Duration::from_secs(1), report_cfg.max_backoff);
                    bar.suspend(|| tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "backfill window failed; retrying"));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return Ok(false),
                    }
                }
            }
        }
    }
    .await;
    bar.finish_and_clear();
    let deadline = std::time::Instant::now() + config.shutdown_timeout;
    pipeline.finish(None, deadline).await?;
    let complete = outcome?;
    eprintln!(
        "backfill {} {} {}..{}: {windows} windows, {rows} rows published in {:.1}s — {}",
        w.name,
        plan.kind.name(),
        from,
        to,
        started.elapsed().as_secs_f64(),
        if complete {
            "complete"
        } else {
            "interrupted; run the same command to resume"
        }
    );
    anyhow::ensure!(complete, "backfill interrupted before completion");
    Ok(())
}
