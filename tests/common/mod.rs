//! Integration-test infrastructure: a fresh tansu broker and rivven-schema registry per test on free
//! loopback ports (killed on drop), a reader that assigns every partition from offset 0, and a decoder
//! that resolves writer schemas through the registry like a Confluent deserializer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use ccdc::simulator::{Route, SimMode, SimServer, SimState};
use serde::de::DeserializeOwned;

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

fn tool(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = Path::new(&home).join(".cargo/bin").join(name);
    if cargo_bin.exists() {
        return cargo_bin;
    }
    PathBuf::from(name)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after {timeout:?}");
}

pub struct Infra {
    pub bootstrap: String,
    pub registry_url: String,
    pub dir: tempfile::TempDir,
    broker: Option<Proc>,
    /// The broker's port, kept for a restart on the same address.
    broker_port: u16,
    _registry: Proc,
}

impl Infra {
    /// Start tansu (memory storage) and rivven-schema on free ports. Both binaries must be installed
    /// (`scripts/test.sh` does it); override their paths with TANSU_BIN / RIVVEN_SCHEMA_BIN.
    pub fn start() -> Infra {
        let dir = tempfile::tempdir().expect("tempdir");
        let kport = free_port();
        let rport = free_port();
        let log = |n: &str| std::fs::File::create(dir.path().join(n)).expect("log file");
        let broker = spawn_broker(dir.path(), kport, "tansu");
        let registry = Command::new(tool("RIVVEN_SCHEMA_BIN", "rivven-schema"))
            .args(["serve", "--host", "127.0.0.1", "--port", &rport.to_string()])
            .stdout(log("rivven.log"))
            .stderr(log("rivven.err"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start rivven-schema ({e}); run scripts/test.sh, which installs it")
            });
        let registry = Proc {
            child: registry,
            name: "rivven-schema",
        };
        wait_for_broker(kport);
        let registry_url = format!("http://127.0.0.1:{rport}");
        wait_until("rivven-schema", Duration::from_secs(30), || {
            http_get(&format!("{registry_url}/subjects")).is_some()
        });
        Infra {
            bootstrap: format!("127.0.0.1:{kport}"),
            registry_url,
            dir,
            broker: Some(broker),
            broker_port: kport,
            _registry: registry,
        }
    }

    /// Stop the broker (a broker outage).
    pub fn stop_broker(&mut self) {
        drop(self.broker.take());
    }

    /// Start a broker again on the same port: a new, empty cluster (tansu keeps its data in
    /// memory), without topics.
    pub fn restart_broker(&mut self) {
        drop(self.broker.take());
        self.broker = Some(spawn_broker(
            self.dir.path(),
            self.broker_port,
            "tansu-restarted",
        ));
        wait_for_broker(self.broker_port);
    }

    /// rivven-schema's compatibility check wrongly rejects schemas with logical types (our uuid and
    /// timestamp-millis fields), even against an identical earlier version: set test subjects to NONE.
    pub fn relax_compatibility(&self, subject: &str) {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.schemaregistry.v1+json",
            ])
            .args([
                "--data",
                r#"{"compatibility":"NONE"}"#,
                &format!("{}/config/{subject}", self.registry_url),
            ])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "set compatibility of {subject}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// tansu (memory storage) on `port`, logging to `<log>.log` / `<log>.err` in `dir`.
fn spawn_broker(dir: &Path, port: u16, log: &str) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let file =
        |ext: &str| std::fs::File::create(dir.join(format!("{log}.{ext}"))).expect("log file");
    let child = Command::new(tool("TANSU_BIN", "tansu"))
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(file("log"))
        .stderr(file("err"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start tansu ({e}); run scripts/test.sh, which installs it")
        });
    Proc {
        child,
        name: "tansu",
    }
}

fn wait_for_broker(port: u16) {
    wait_until("tansu", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Start a rivven-schema registry on `port` (for outage tests).
pub fn spawn_registry(port: u16) -> Proc {
    let child = Command::new(tool("RIVVEN_SCHEMA_BIN", "rivven-schema"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rivven-schema");
    let url = format!("http://127.0.0.1:{port}");
    wait_until("rivven-schema", Duration::from_secs(30), || {
        http_get(&format!("{url}/subjects")).is_some()
    });
    Proc {
        child,
        name: "rivven-schema",
    }
}

/// GET `url`, whatever the status: (HTTP status, body).
pub fn http_status(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Minimal blocking GET (no extra HTTP client in the tests).
pub fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads a topic from offset 0 on every partition (tansu's consumer groups are unreliable).
pub struct TopicReader {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    pub fn new(bootstrap: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("ccdc-test-{}", free_port()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        let start = Instant::now();
        let partitions = loop {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
            if let Ok(md) = md {
                if let Some(t) = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && !t.partitions().is_empty())
                {
                    break t.partitions().len() as i32;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "topic {topic} never appeared"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("add partition");
        }
        consumer.assign(&tpl).expect("assign");
        TopicReader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Poll until at least `n` records were read in total, or panic after `timeout`.
    pub fn read_at_least(&mut self, n: usize, timeout: Duration) -> &[Record] {
        let start = Instant::now();
        while self.records.len() < n {
            assert!(
                start.elapsed() < timeout,
                "read {} records, expected at least {n} within {timeout:?}",
                self.records.len()
            );
            self.poll_for(Duration::from_millis(200));
        }
        &self.records
    }

    /// Keep reading for `d` (to see that nothing else arrives).
    pub fn poll_for(&mut self, d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| {
                                    (
                                        x.key.to_string(),
                                        String::from_utf8_lossy(x.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    self.records.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                }
                Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
                None => {}
            }
        }
    }
}

/// Decodes Confluent-framed Avro by fetching the writer schema from the registry by id.
pub struct RegistryDecoder {
    url: String,
    schemas: HashMap<u32, apache_avro::Schema>,
}

impl RegistryDecoder {
    pub fn new(url: &str) -> Self {
        RegistryDecoder {
            url: url.to_string(),
            schemas: HashMap::new(),
        }
    }

    #[allow(deprecated)] // from_avro_datum: the plain generic reader, independent of ccdc's writer.
    pub fn decode<T: DeserializeOwned>(&mut self, payload: &[u8]) -> T {
        assert!(payload.len() > 5, "payload too short for the wire format");
        assert_eq!(payload[0], 0, "magic byte");
        let id = u32::from_be_bytes(payload[1..5].try_into().expect("4 bytes"));
        let url = format!("{}/schemas/ids/{id}", self.url);
        let schema = self.schemas.entry(id).or_insert_with(|| {
            let body =
                http_get(&url).unwrap_or_else(|| panic!("schema id {id} not in the registry"));
            let v: serde_json::Value = serde_json::from_str(&body).expect("registry json");
            apache_avro::Schema::parse_str(v["schema"].as_str().expect("schema field"))
                .expect("schema parses")
        });
        let mut rest = &payload[5..];
        let value =
            apache_avro::from_avro_datum(schema, &mut rest, None).expect("avro datum decodes");
        assert!(rest.is_empty(), "trailing bytes after the datum");
        apache_avro::from_value(&value).expect("datum matches the event type")
    }
}

/// Read a file to a string (for logs).
pub fn read_to_string(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

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
        let infra = tokio::task::spawn_blocking(Infra::start)
            .await
            .expect("infra");
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
