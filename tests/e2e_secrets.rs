//! Secrets never leak: ccdc runs at trace level through a scenario with failures (401s, 500s, token
//! refreshes) with a Wolkvox token, a Vonage client secret, registry credentials and a Kafka SASL
//! password configured, and every byte it writes is searched for each secret value.

mod common;

use std::time::Duration;

use ccdc::event::InteractionEvent;
use ccdc::simulator::{Fault, Route, Scenario, SimAgent, SimInteraction, SimMode, VonageLatest};
use common::Stack;

const TOKEN: &str = "S3cr3t-vendor-token-8f7e6d";
const REGISTRY_PASSWORD: &str = "S3cr3t-registry-pass-42";
const SASL_PASSWORD: &str = "S3cr3t-sasl-pass-99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_even_at_trace_level() {
    let it = SimInteraction {
        conn_id: "c1".into(),
        subject: "s".into(),
        fromname: "f".into(),
        date: "2026-11-21 10:15:00".into(),
    };
    let scenario = Scenario {
        wolkvox: vec![vec![SimAgent::new("1001", "Busy", vec![it])]],
        vonage: vec![[(
            "a1".to_string(),
            Some(VonageLatest::new("g1", "2026-11-21T15:15:00Z", false)),
        )]
        .into()],
        ..Default::default()
    };
    let sources = r#"
[[sources]]
vendor = "wolkvox"
name = "sec-wv"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
interval = "200ms"
max_backoff = "200ms"
[sources.agents]
interval = "200ms"
max_backoff = "200ms"
[[sources]]
vendor = "vonage"
name = "sec-vcc"
base_url = "{vonage}"
account_key = "acc"
token_url = "{vonage_token}"
client_id = "ccdc-sim"
client_secret = { file = "{token_file}" }
agent_ids = ["a1"]
requests_per_second = 50
allow_insecure_http = true
[sources.interactions]
interval = "200ms"
max_backoff = "200ms"
"#;
    let s = Stack::start(
        TOKEN,
        SimMode::Scenario(scenario),
        sources,
        &[("interactions", "ccdc.it.sec")],
    )
    .await;
    // Registry basic auth and a SASL password, both by reference (rivven and tansu ignore them here).
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    let cfg = cfg
        .replace("[schema_registry]\n", "[schema_registry]\nusername = \"ccdc\"\npassword = { env = \"SEC_REGISTRY_PASSWORD\" }\nallow_insecure_http = true\n")
        .replace("message_timeout = \"30s\"\n", "message_timeout = \"30s\"\n[kafka.secret_properties]\n\"sasl.password\" = { env = \"SEC_SASL_PASSWORD\" }\n");
    assert!(
        cfg.contains("SEC_REGISTRY_PASSWORD") && cfg.contains("\"sasl.password\""),
        "secrets configured:\n{cfg}"
    );
    std::fs::write(&s.config, cfg).unwrap();
    s.sim
        .state
        .inject_at(Route::WolkvoxInteractions, Fault::Http500, 3);
    s.sim
        .state
        .inject_at(Route::WolkvoxAgents, Fault::Http401, 2);
    s.sim.state.set_vonage_token_lifetime(1);
    let stdout = s.infra.dir.path().join("stdout.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["--log-level", "trace", "run", "--config"])
        .arg(&s.config)
        .env("SEC_REGISTRY_PASSWORD", REGISTRY_PASSWORD)
        .env("SEC_SASL_PASSWORD", SASL_PASSWORD)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&s.log).unwrap())
        .spawn()
        .unwrap();
    let mut reader = s.reader("ccdc.it.sec").await;
    s.read::<InteractionEvent>(&mut reader, 2);
    s.wait_requests(Route::VonageLatest, 10).await;
    s.sim.state.revoke_vonage_tokens();
    s.wait_requests(Route::VonageLatest, 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SAFETY: kill(2) with a pid we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let mut all = std::fs::read(&s.log).unwrap();
    all.extend(std::fs::read(&stdout).unwrap());
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.len() > 10_000 && text.contains("TRACE"),
        "trace output was produced ({} bytes)",
        text.len()
    );
    assert!(text.contains("poll failed"), "the failures happened");
    assert!(
        s.sim.state.vonage_tokens_issued() >= 2,
        "tokens were refreshed"
    );
    for secret in [TOKEN, REGISTRY_PASSWORD, SASL_PASSWORD, "vtok-"] {
        assert!(!text.contains(secret), "`{secret}` leaked into the output");
    }
}
