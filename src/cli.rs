//! Command line (clap).

#[cfg(feature = "simulator")]
use std::net::SocketAddr;
use std::path::PathBuf;
#[cfg(feature = "simulator")]
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "ccdc",
    version,
    about = "Contact-center vendor APIs to Kafka event streams (Confluent-framed Avro)"
)]
pub struct Cli {
    /// Log filter (e.g. `info`, `ccdc=debug`). Also from CCDC_LOG or RUST_LOG.
    #[arg(long, global = true, env = "CCDC_LOG", default_value = "info")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service: poll the configured sources and publish to Kafka.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// No Kafka needed: start the built-in simulator, poll it, print events as JSON lines on stdout.
    #[cfg(feature = "simulator")]
    Demo {
        /// Poll interval.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Stop after this long (default: run until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Simulated agents.
        #[arg(long, default_value_t = 5)]
        agents: usize,
        /// Seed of the simulated world.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Vendors to simulate and poll (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "wolkvox,comm100,vonage", value_parser = clap::builder::PossibleValuesParser::new(["wolkvox", "comm100", "vonage"]))]
        vendors: Vec<String>,
    },
    /// Serve only the simulated vendor APIs (Wolkvox, Comm100, Vonage) for consumer development.
    #[cfg(feature = "simulator")]
    Simulate(SimulateArgs),
    /// Schema Registry operations.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Pull a fixed range of a Wolkvox report and publish it (resumable; the live cursor is untouched).
    Backfill {
        #[arg(long, short)]
        config: PathBuf,
        /// The Wolkvox source's `name`.
        #[arg(long)]
        source: String,
        /// chat_1 or diagram_9.
        #[arg(long)]
        report: String,
        /// Local start, `YYYY-MM-DD[ HH:MM:SS]` (inclusive).
        #[arg(long)]
        from: String,
        /// Local end, `YYYY-MM-DD[ HH:MM:SS]` (exclusive).
        #[arg(long)]
        to: String,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SchemasAction {
    /// Register every schema under `<topic>-value`.
    Register {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check whether registration would succeed under each subject's compatibility; non-zero exit if not.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// `ccdc simulate`.
#[cfg(feature = "simulator")]
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// The `wolkvox-token` the simulator accepts (it is not a real secret).
    #[arg(long, default_value = "sim-token")]
    pub token: String,
    #[arg(long, default_value_t = 8)]
    pub agents: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Benchmark world instead of the random walk: this many active Wolkvox interactions...
    #[arg(long)]
    pub bench_interactions: Option<usize>,
    /// ...of which this percentage is replaced on every interactions request.
    #[arg(long, default_value_t = 1.0)]
    pub bench_churn_percent: f64,
    /// Seconds between generated report rows.
    #[arg(long, default_value_t = 60)]
    pub report_spacing: i64,
    /// Characters of `comments` in every generated chat_1 row (large responses).
    #[arg(long, default_value_t = 0)]
    pub report_padding: usize,
}
