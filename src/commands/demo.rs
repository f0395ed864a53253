//! `ccdc demo`: the built-in simulator of every vendor, polled by the real service with the stdout
//! output. No Kafka, nothing kept.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::run;
use crate::cli::SimulateArgs;
use crate::config::Config;
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
    shutdown.cancelled().await;
    sim.stop().await;
    Ok(())
}
