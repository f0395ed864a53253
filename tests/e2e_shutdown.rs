//! Shutdown keeps its deadline even when every part it waits for hangs: a broker and a registry that
//! accept connections and never answer (an acceptance run saw ccdc exit 27 s after SIGTERM with
//! `shutdown_timeout = "20s"`, while it was creating topics against an unreachable broker).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A port that accepts connections and never answers (held open until the test ends).
fn black_hole() -> (TcpListener, u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = listener.try_clone().unwrap();
    let thread = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in held.incoming() {
            match c {
                Ok(c) => conns.push(c),
                Err(_) => break,
            }
            if conns.len() > 200 {
                break;
            }
        }
    });
    (listener, port, thread)
}

/// A configuration whose broker, registry and vendor all hang.
fn hanging_config(
    dir: &std::path::Path,
    shutdown_timeout: &str,
) -> (std::path::PathBuf, Vec<TcpListener>) {
    let (broker, broker_port, _b) = black_hole();
    let (registry, registry_port, _r) = black_hole();
    let (vendor, vendor_port, _v) = black_hole();
    let config = dir.join("ccdc.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        r#"state_dir = "{state}"
shutdown_timeout = "{shutdown_timeout}"
[kafka]
bootstrap_servers = "127.0.0.1:{broker_port}"
[schema_registry]
url = "http://127.0.0.1:{registry_port}"
[observability]
listen = "127.0.0.1:0"
[[sources]]
vendor = "wolkvox"
name = "w"
base_url = "http://127.0.0.1:{vendor_port}/api/v2"
token = {{ env = "SHUT_TOKEN" }}
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
interval = "1s"
"#,
        state = dir.join("state").display()
    )
    .unwrap();
    (config, vec![broker, registry, vendor])
}

fn start(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["run", "--config"])
        .arg(config)
        .env("SHUT_TOKEN", "t")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Wait for `child` (at most 30 s); how long it took.
fn wait(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, sent.elapsed());
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still running 30 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn term(child: &std::process::Child) {
    // SAFETY: kill(2) with a pid we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

#[test]
fn sigterm_while_the_broker_and_registry_hang_exits_within_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _held) = hanging_config(dir.path(), "5s");
    for wait_before_term in [Duration::from_secs(2), Duration::from_secs(7)] {
        let log = dir.path().join("ccdc.log");
        let mut child = start(&config, &log);
        std::thread::sleep(wait_before_term);
        term(&child);
        let (status, took) = wait(&mut child);
        assert!(
            took < Duration::from_secs(7),
            "exited {took:?} after SIGTERM (shutdown_timeout 5s)\n{}",
            common::read_to_string(&log)
        );
        assert!(status.success(), "{}", common::read_to_string(&log));
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _held) = hanging_config(dir.path(), "20s");
    let log = dir.path().join("ccdc.log");
    let mut child = start(&config, &log);
    std::thread::sleep(Duration::from_secs(2));
    term(&child);
    std::thread::sleep(Duration::from_millis(300));
    term(&child);
    let (status, took) = wait(&mut child);
    let text = common::read_to_string(&log);
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} after the second signal\n{text}"
    );
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("second signal"), "{text}");
}
