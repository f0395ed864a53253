//! Thin entry point: parse the CLI, load and validate config, init tracing, run.

use std::process::ExitCode;

use ccdc::cli::{Cli, Command, LogFormat, SchemasAction};
use ccdc::config::Config;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc: the pipeline allocates many small, short-lived objects (rows, events, records); glibc's
/// allocator spent ~20 % of the benchmarks' CPU in malloc/free (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs on stderr, filtered by `--log-level`, else `CCDC_LOG`, else `RUST_LOG`, else `info`. An
/// invalid filter falls back to `info`, with a warning naming where it came from.
fn init_tracing(cli: &Cli) {
    let (spec, origin) = cli.log_filter();
    let (filter, invalid) = match tracing_subscriber::EnvFilter::try_new(&spec) {
        Ok(f) => (f, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
    match invalid {
        Some(e) => {
            tracing::warn!(filter = %spec, from = origin.as_str(), error = %e, "invalid log filter; logging at info")
        }
        None => tracing::debug!(filter = %spec, from = origin.as_str(), "log filter"),
    }
}

/// Cancel `token` on SIGINT or SIGTERM (an orderly shutdown within `shutdown_timeout`); a second
/// signal exits at once: nothing durable is lost, the outbox keeps what was not acknowledged.
fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            token.cancel();
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting now (what was not acknowledged stays in the outbox for the next start)");
            std::process::exit(130);
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
        }
    });
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    on_signals(shutdown.clone());
    match cli.command {
        Command::Run { config, replica } => {
            let env = |k: &str| std::env::var(k).ok().or_else(|| hostname(k));
            let replica = ccdc::shard::resolve(replica.as_deref(), &env)?;
            ccdc::app::run_as(Config::load(Some(&config))?, replica, shutdown).await
        }
        #[cfg(feature = "simulator")]
        Command::Demo {
            interval,
            duration,
            agents,
            seed,
            vendors,
        } => {
            if let Some(d) = duration {
                let t = shutdown.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    t.cancel();
                });
            }
            ccdc::commands::demo(interval, &vendors, agents, seed, shutdown).await
        }
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => ccdc::commands::simulate(args, shutdown).await,
        Command::Schemas {
            action: SchemasAction::Register { config },
        } => ccdc::commands::schemas_register(&Config::load(Some(&config))?).await,
        Command::Schemas {
            action: SchemasAction::Check { config },
        } => ccdc::commands::schemas_check(&Config::load(Some(&config))?).await,
        Command::Backfill {
            config,
            source,
            report,
            from,
            to,
        } => {
            ccdc::commands::backfill(
                Config::load(Some(&config))?,
                &source,
                &report,
                &from,
                &to,
                shutdown,
            )
            .await
        }
        Command::CheckConfig { config } => {
            Config::load(Some(&config))?;
            println!("{}: ok", config.display());
            Ok(())
        }
    }
}

/// `HOSTNAME` when the environment lacks it (a shell does not export it): the system's host name.
fn hostname(var: &str) -> Option<String> {
    if var != "HOSTNAME" {
        return None;
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    (rc == 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn main() -> ExitCode {
    ccdc::alloc::configure();
    let cli = Cli::parse();
    init_tracing(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(ccdc::app::MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ccdc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli));
    // Dropping the runtime would wait for every blocking task still running — a checkpoint-topic
    // read or a metadata request can take its whole timeout — past the shutdown deadline. What
    // must finish (the outbox drain, the final flush) finished inside `dispatch`; abandon the rest.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ccdc failed");
            eprintln!("ccdc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
