//! `ccdc schemas register|check` and the fail-fast on a registry refusal, against rivven-schema.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Infra;

fn config(infra: &Infra, topic: &str) -> std::path::PathBuf {
    let token = infra.dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let p = infra.dir.path().join(format!("{topic}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"
state_dir = "{state}"
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 1
replication_factor = 1
[schema_registry]
url = "{registry}"
[topics]
interactions = "{topic}"
[[sources]]
vendor = "wolkvox"
name = "s"
base_url = "http://127.0.0.1:9/api/v2"
allow_insecure_http = true
token = {{ file = "{token}" }}
time_zone = "UTC"
"#,
            state = infra.dir.path().join(format!("state-{topic}")).display(),
            bootstrap = infra.bootstrap,
            registry = infra.registry_url,
            token = token.display()
        ),
    )
    .unwrap();
    p
}

fn ccdc(args: &[&str], cfg: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Register `schema` under `subject` directly (as another producer would).
fn register_raw(infra: &Infra, subject: &str, schema: &str) {
    let body = serde_json::json!({ "schema": schema }).to_string();
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/vnd.schemaregistry.v1+json",
            "--data",
            &body,
        ])
        .arg(format!(
            "{}/subjects/{subject}/versions",
            infra.registry_url
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn check_and_register_report_per_subject_and_fail_on_incompatibility() {
    let infra = Infra::start();
    let cfg = config(&infra, "sc.ok");
    let (ok, out) = ccdc(&["schemas", "check"], &cfg);
    assert!(ok, "{out}");
    assert!(out.contains("sc.ok-value\tnew subject"), "{out}");
    // The level ccdc expects, from the registry's default.
    assert!(
        out.contains("sc.ok-value\tcompatibility level BACKWARD"),
        "{out}"
    );

    let (ok, out) = ccdc(&["schemas", "register"], &cfg);
    assert!(ok, "{out}");
    assert!(out.contains("sc.ok-value\tregistered\tid="), "{out}");
    // rivven-schema's check wrongly rejects logical types even against the identical schema:
    // NONE stands in for "compatible" here.
    let topics = ccdc::config::TopicsConfig {
        interactions: "sc.ok".into(),
        ..Default::default()
    };
    for stream in ccdc::avro::STREAMS {
        infra.relax_compatibility(&format!("{}-value", topics.for_stream(*stream)));
    }
    let (ok, out) = ccdc(&["schemas", "check"], &cfg);
    assert!(ok, "{out}");
    assert!(out.contains("sc.ok-value\tcompatible"), "{out}");
    // Weaker than BACKWARD: said, as a warning (the exit stays 0: the registration would pass).
    assert!(
        out.contains("sc.ok-value\tWARNING: compatibility level NONE; ccdc expects BACKWARD"),
        "{out}"
    );

    // A subject holding an unrelated schema under BACKWARD: check says no, with a non-zero exit.
    let bad = config(&infra, "sc.bad");
    register_raw(
        &infra,
        "sc.bad-value",
        r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#,
    );
    let (ok, out) = ccdc(&["schemas", "check"], &bad);
    assert!(!ok, "{out}");
    assert!(out.contains("sc.bad-value\tINCOMPATIBLE"), "{out}");
    assert!(
        out.contains("registration would be refused for: sc.bad-value"),
        "{out}"
    );
}

#[test]
fn run_fails_fast_with_the_registrys_message_when_the_schema_is_refused() {
    let infra = Infra::start();
    let cfg = config(&infra, "sc.refused");
    register_raw(
        &infra,
        "sc.refused-value",
        r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("ccdc kept running although the registry refused its schema");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("schema registration failed") && err.contains("sc.refused-value"),
        "{err}"
    );
}
