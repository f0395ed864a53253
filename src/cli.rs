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
    /// Log filter (e.g. `info`, `info,ccdc=debug`). Without the flag: CCDC_LOG, else RUST_LOG,
    /// else `info`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the log filter came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFilterOrigin {
    Flag,
    CcdcLog,
    RustLog,
    Default,
}

impl LogFilterOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFilterOrigin::Flag => "--log-level",
            LogFilterOrigin::CcdcLog => "CCDC_LOG",
            LogFilterOrigin::RustLog => "RUST_LOG",
            LogFilterOrigin::Default => "default",
        }
    }
}

/// The log filter: `--log-level`, else `CCDC_LOG`, else `RUST_LOG`, else `info`. An empty (or blank)
/// value counts as unset.
pub fn resolve_log_filter(
    flag: Option<&str>,
    ccdc_log: Option<&str>,
    rust_log: Option<&str>,
) -> (String, LogFilterOrigin) {
    [
        (flag, LogFilterOrigin::Flag),
        (ccdc_log, LogFilterOrigin::CcdcLog),
        (rust_log, LogFilterOrigin::RustLog),
    ]
    .into_iter()
    .find_map(|(v, origin)| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (v.to_string(), origin))
    })
    .unwrap_or_else(|| ("info".to_string(), LogFilterOrigin::Default))
}

impl Cli {
    /// [`resolve_log_filter`] with this command line and the process environment.
    pub fn log_filter(&self) -> (String, LogFilterOrigin) {
        let var = |name: &str| std::env::var(name).ok();
        resolve_log_filter(
            self.log_level.as_deref(),
            var("CCDC_LOG").as_deref(),
            var("RUST_LOG").as_deref(),
        )
    }
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
        /// Poll only this replica's share of the sources: `INDEX/COUNT`, 0-based (`2/5` is the third
        /// of five). Without it: CCDC_REPLICA=INDEX/COUNT, or CCDC_REPLICAS=COUNT with
        /// CCDC_REPLICA_INDEX=INDEX or CCDC_REPLICA_FROM_HOSTNAME=true (a StatefulSet pod `ccdc-3`
        /// is replica 3); none of them: every source.
        #[arg(long, value_name = "INDEX/COUNT")]
        replica: Option<String>,
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
    /// Also serve a small world per name under `/w/NAME/` (token `<token>-NAME`): `--agents`
    /// agents with 3 interactions each, 3 replaced every `--world-step` (the many-sources bench).
    #[arg(long)]
    pub worlds: bool,
    /// How often each world of `--worlds` changes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub world_step: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_is_the_flag_then_ccdc_log_then_rust_log_then_info() {
        use LogFilterOrigin::*;
        let r = |f, c, r| resolve_log_filter(f, c, r);
        let s = |v: &str, o| (v.to_string(), o);
        assert_eq!(
            r(Some("warn"), Some("debug"), Some("trace")),
            s("warn", Flag)
        );
        assert_eq!(r(None, Some("debug"), Some("trace")), s("debug", CcdcLog));
        assert_eq!(r(None, None, Some("trace")), s("trace", RustLog));
        assert_eq!(r(None, None, None), s("info", Default));
        assert_eq!(
            r(None, Some(" "), Some("info,ccdc=debug")),
            s("info,ccdc=debug", RustLog),
            "an empty variable counts as unset"
        );
    }

    #[test]
    fn run_takes_an_optional_replica() {
        let cli = Cli::try_parse_from(["ccdc", "run", "-c", "x.toml", "--replica", "2/5"]).unwrap();
        assert!(matches!(cli.command, Command::Run { replica: Some(r), .. } if r == "2/5"));
        let cli = Cli::try_parse_from(["ccdc", "run", "-c", "x.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Run { replica: None, .. }));
    }

    #[test]
    fn the_flag_is_optional_and_global() {
        let cli = Cli::try_parse_from(["ccdc", "check-config", "-c", "x.toml"]).unwrap();
        assert_eq!(cli.log_level, None);
        let cli = Cli::try_parse_from([
            "ccdc",
            "check-config",
            "-c",
            "x.toml",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
    }
}
