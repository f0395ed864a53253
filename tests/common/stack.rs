//! The whole system under test: [`Stack`] wires the vendor simulator, the [`Infra`] (broker and
//! registry) and a generated ccdc configuration together, and reads and decodes what ccdc published;
//! [`Ccdc`] is a spawned `ccdc run` process with its stderr captured to a log file, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccdc::simulator::{Route, SimAgent, SimInteraction, SimMode, SimServer, SimState};
use serde::de::DeserializeOwned;

use super::infra::Infra;
use super::reader::{Record, RegistryDecoder, TopicReader};
use super::util::{free_port, read_to_string};

/// A running `ccdc run` process with its stderr captured to `log`.
pub struct Ccdc {
    pub child: Child,
    pub log: PathBuf,
}

impl Ccdc {
    pub fn start(config: &Path, log: &Path, extra_env: &[(&str, &str)]) -> Ccdc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccdc"));
        cmd.args(["run", "--config"])
            .arg(config)
            .env("CCDC_LOG", "info,ccdc=debug")
            .stdout(Stdio::null());
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        cmd.stderr(f);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Ccdc {
            child: cmd.spawn().expect("spawn ccdc"),
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                start.elapsed() < timeout,
                "ccdc did not stop within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the process to end by itself (e.g. a failpoint).
    pub fn wait(mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                start.elapsed() < timeout,
                "ccdc did not exit within {timeout:?}\n{}",
                read_to_string(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ccdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Infra + simulator + a ccdc configuration, ready to start `ccdc run`.
pub struct Stack {
    pub infra: Infra,
    pub sim: SimServer,
    pub config: PathBuf,
    pub log: PathBuf,
    pub token: String,
    /// `http://127.0.0.1:PORT` of ccdc's /metrics, /healthz, /readyz.
    pub ops_url: String,
}

impl Stack {
    /// `sources` is the `[[sources]]` TOML with placeholders `{wolkvox}`, `{comm100}`, `{vonage}`,
    /// `{vonage_token}` (URLs) and `{token_file}`; `topics` is the `[topics]` table body. Every topic's
    /// subject is relaxed to NONE (see [`Infra::relax_compatibility`]).
    pub async fn start(
        token: &str,
        mode: SimMode,
        sources: &str,
        topics: &[(&str, &str)],
    ) -> Stack {
        Stack::start_on(Infra::start, token, mode, sources, topics).await
    }

    /// [`Stack::start`] on a broker whose data survives a restart ([`Infra::start_durable`]).
    pub async fn start_durable(
        token: &str,
        mode: SimMode,
        sources: &str,
        topics: &[(&str, &str)],
    ) -> Stack {
        Stack::start_on(Infra::start_durable, token, mode, sources, topics).await
    }

    async fn start_on(
        infra: fn() -> Infra,
        token: &str,
        mode: SimMode,
        sources: &str,
        topics: &[(&str, &str)],
    ) -> Stack {
        let infra = tokio::task::spawn_blocking(infra).await.expect("infra");
        let sim = SimServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            SimState::new(token, mode),
        )
        .await
        .expect("simulator");
        let token_file = infra.dir.path().join("token");
        std::fs::write(&token_file, token).expect("token file");
        let (vonage, vonage_token) = sim.vonage_urls();
        let sources = sources
            .replace("{wolkvox}", &sim.base_url())
            .replace("{comm100}", &sim.comm100_base_url())
            .replace("{vonage}", &vonage)
            .replace("{vonage_token}", &vonage_token)
            .replace("{token_file}", &token_file.display().to_string());
        let mut topic_table = String::new();
        for (k, v) in topics {
            infra.relax_compatibility(&format!("{v}-value"));
            topic_table.push_str(&format!("{k} = \"{v}\"\n"));
        }
        let ops_port = free_port();
        let config = infra.dir.path().join("ccdc.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\nshutdown_timeout = \"20s\"\n[kafka]\nbootstrap_servers = \"{b}\"\npartitions = 3\nreplication_factor = 1\nmessage_timeout = \"30s\"\n[schema_registry]\nurl = \"{r}\"\n[observability]\nlisten = \"127.0.0.1:{ops_port}\"\nheartbeat_every_polls = 5\n[topics]\n{topic_table}\n{sources}\n",
                state = infra.dir.path().join("state").display(),
                b = infra.bootstrap,
                r = infra.registry_url,
            ),
        )
        .expect("config");
        let log = infra.dir.path().join("ccdc.log");
        Stack {
            infra,
            sim,
            config,
            log,
            token: token.to_string(),
            ops_url: format!("http://127.0.0.1:{ops_port}"),
        }
    }

    pub fn ccdc(&self, env: &[(&str, &str)]) -> Ccdc {
        Ccdc::start(&self.config, &self.log, env)
    }

    /// A reader of `topic` from offset 0 (waits for the topic to exist).
    pub async fn reader(&self, topic: &str) -> TopicReader {
        let (b, t) = (self.infra.bootstrap.clone(), topic.to_string());
        tokio::task::spawn_blocking(move || TopicReader::new(&b, &t))
            .await
            .expect("reader")
    }

    /// Read until `n` records in total and decode them all (the ccdc log is printed on failure).
    pub fn read<T: DeserializeOwned>(
        &self,
        reader: &mut TopicReader,
        n: usize,
    ) -> Vec<(Record, T)> {
        let log = self.log.clone();
        let recs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.read_at_least(n, Duration::from_secs(60)).to_vec()
        }))
        .unwrap_or_else(|_| panic!("ccdc log:\n{}", read_to_string(&log)));
        let mut dec = RegistryDecoder::new(&self.infra.registry_url);
        recs.into_iter()
            .map(|r| {
                let e = dec.decode(&r.payload);
                (r, e)
            })
            .collect()
    }

    /// Wait until the simulator served `extra` more requests on `route`.
    pub async fn wait_requests(&self, route: Route, extra: u64) {
        let target = self.sim.state.requests_on(route) + extra;
        let start = Instant::now();
        while self.sim.state.requests_on(route) < target {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no requests on {route:?}\n{}",
                read_to_string(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A simulated Wolkvox agent in `status` with interactions `conns`, each of subject `s`, from `f`,
/// dated 2026-11-21 10:15:00 (what most scenarios need of an interaction: its id).
pub fn sim_agent(id: &str, status: &str, conns: &[&str]) -> SimAgent {
    let its = conns
        .iter()
        .map(|c| SimInteraction {
            conn_id: c.to_string(),
            subject: "s".into(),
            fromname: "f".into(),
            date: "2026-11-21 10:15:00".into(),
        })
        .collect();
    SimAgent::new(id, status, its)
}
