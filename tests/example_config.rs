//! The documented example configuration stays valid, and `check-config` says so.

#[test]
fn ccdc_example_toml_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ccdc.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccdc"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env("WOLKVOX_TOKEN", "x")
        .env("COMM100_TOKEN", "y")
        .env("VONAGE_CLIENT_SECRET", "z")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": ok"), "{text}");
    let cfg = ccdc::config::Config::from_toml_str(&std::fs::read_to_string(&path).unwrap());
    // Without the referenced secrets the same file is refused, naming the variable.
    if std::env::var("WOLKVOX_TOKEN").is_err() {
        assert!(cfg.unwrap_err().to_string().contains("WOLKVOX_TOKEN"));
    }
}
