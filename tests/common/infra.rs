//! The external services each test runs against: a fresh tansu broker (memory storage, or a
//! SQLite file with [`Infra::start_durable`]) and a rivven-schema registry on free loopback ports,
//! killed on drop. [`Infra`] starts both and can stop and restart the broker on the same port (a
//! broker outage); [`spawn_registry`] starts a lone registry for registry-outage tests. Binaries
//! come from TANSU_BIN / RIVVEN_SCHEMA_BIN, else `~/.cargo/bin`, else `PATH`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{free_port, http_get, Proc};

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
    /// tansu's `--storage-engine` URL.
    storage: String,
    _registry: Proc,
}

impl Infra {
    /// Start tansu (memory storage) and rivven-schema on free ports. Both binaries must be installed
    /// (`scripts/test.sh` does it); override their paths with TANSU_BIN / RIVVEN_SCHEMA_BIN.
    pub fn start() -> Infra {
        Infra::start_on(|_| "memory://tansu/".to_string())
    }

    /// Like [`Infra::start`], with tansu keeping its data in a SQLite file in the test's directory
    /// (its `libsql` engine, which `scripts/test.sh` builds in): topics, records and producer state
    /// survive [`Infra::restart_broker`], as a real broker's log does.
    pub fn start_durable() -> Infra {
        // tansu reads the URL's path relative to its working directory (the test's directory).
        Infra::start_on(|_| "sqlite://tansu.db".to_string())
    }

    fn start_on(storage: impl FnOnce(&Path) -> String) -> Infra {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage(dir.path());
        let kport = free_port();
        let rport = free_port();
        let log = |n: &str| std::fs::File::create(dir.path().join(n)).expect("log file");
        let broker = spawn_broker(dir.path(), kport, "tansu", &storage);
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
            storage,
            _registry: registry,
        }
    }

    /// Stop the broker (a broker outage).
    pub fn stop_broker(&mut self) {
        drop(self.broker.take());
    }

    /// Start a broker again on the same port: with memory storage a new, empty cluster without
    /// topics; after [`Infra::start_durable`] the same cluster with its data.
    pub fn restart_broker(&mut self) {
        drop(self.broker.take());
        self.broker = Some(spawn_broker(
            self.dir.path(),
            self.broker_port,
            "tansu-restarted",
            &self.storage,
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

/// tansu with `storage` on `port`, logging to `<log>.log` / `<log>.err` in `dir`.
fn spawn_broker(dir: &Path, port: u16, log: &str, storage: &str) -> Proc {
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
            storage,
        ])
        .current_dir(dir)
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
