//! The log filter comes from `--log-level`, else `CCDC_LOG`, else `RUST_LOG`, else `info`: the real
//! binary (`ccdc demo` for a second, which logs at debug level) under each combination.
#![cfg(feature = "simulator")]

use std::process::Command;

/// stderr of `ccdc [args] demo --duration 1s --vendors wolkvox` with exactly these log variables.
fn demo_stderr(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccdc"));
    cmd.args(args)
        .args(["demo", "--duration", "1s", "--vendors", "wolkvox"])
        .env_remove("CCDC_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("ccdc runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ccdc demo failed:\n{text}");
    text
}

fn has_debug(text: &str) -> bool {
    text.contains("DEBUG")
}

fn has_info(text: &str) -> bool {
    text.contains("INFO")
}

#[test]
fn rust_log_is_read_when_nothing_else_is_set() {
    let text = demo_stderr(&[], &[("RUST_LOG", "debug")]);
    assert!(
        has_debug(&text),
        "RUST_LOG=debug shows debug lines:\n{text}"
    );
}

#[test]
fn the_default_is_info() {
    let text = demo_stderr(&[], &[]);
    assert!(has_info(&text) && !has_debug(&text), "{text}");
}

#[test]
fn ccdc_log_wins_over_rust_log() {
    let text = demo_stderr(&[], &[("CCDC_LOG", "info"), ("RUST_LOG", "debug")]);
    assert!(has_info(&text) && !has_debug(&text), "{text}");
    let text = demo_stderr(&[], &[("CCDC_LOG", "debug"), ("RUST_LOG", "warn")]);
    assert!(has_debug(&text), "{text}");
}

#[test]
fn the_flag_wins_over_both_variables() {
    let text = demo_stderr(
        &["--log-level", "warn"],
        &[("CCDC_LOG", "debug"), ("RUST_LOG", "debug")],
    );
    assert!(!has_info(&text) && !has_debug(&text), "{text}");
    let text = demo_stderr(
        &["--log-level", "debug"],
        &[("CCDC_LOG", "warn"), ("RUST_LOG", "warn")],
    );
    assert!(has_debug(&text), "{text}");
}
