//! `ccdc check-config` on Kafka settings that weaken security: a TLS downgrade in
//! `kafka.properties` is accepted with a warning naming the key; a secret given as a plain
//! property is refused without its value appearing anywhere in the output.

use std::process::Command;

const SOURCE: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "a"
base_url = "https://wv001.wolkvox.com/api/v2"
token = { env = "KCS_TOKEN" }
time_zone = "America/Bogota"
[schema_registry]
url = "https://r:8081"
[kafka]
bootstrap_servers = "k:9093"
[kafka.properties]
"security.protocol" = "SSL"
"#;

/// (success, stdout + stderr) of `ccdc check-config` on `SOURCE` + `properties`.
fn check(properties: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("{SOURCE}{properties}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("CCDC_LOG")
        .env_remove("RUST_LOG")
        .env("KCS_TOKEN", "t")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_downgrades_are_accepted_with_a_warning_naming_the_key() {
    let (ok, text) = check("");
    assert!(
        ok && !text.contains("WARN"),
        "no downgrade, no warning: {text}"
    );
    for (key, value) in [
        ("enable.ssl.certificate.verification", "false"),
        ("ssl.endpoint.identification.algorithm", "none"),
    ] {
        let (ok, text) = check(&format!("{key:?} = {value:?}\n"));
        assert!(ok, "accepted: {text}");
        assert!(
            text.contains("WARN") && text.contains(&format!("kafka.properties.{key}")),
            "warns about {key}: {text}"
        );
    }
}

#[test]
fn a_secret_in_plain_properties_is_refused_and_never_printed() {
    let (ok, text) = check("\"sasl.password\" = \"plain-secret-in-props-1\"\n");
    assert!(!ok, "refused: {text}");
    assert!(text.contains("kafka.properties.sasl.password"), "{text}");
    assert!(!text.contains("plain-secret-in-props-1"), "{text}");
}
