//! The command line: `--help` explains the flags; a bad config stops start-up naming the key.

use std::process::Command;

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run the switchboard binary")
}

#[test]
fn serve_help_explains_each_flag() {
    let output = switchboard(&["serve", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--data-dir",
        "--config",
        "127.0.0.1:8700",
        "./data",
        "SWITCHBOARD_",
    ] {
        assert!(help.contains(flag), "help does not mention {flag}:\n{help}");
    }
}

#[test]
fn a_bad_config_file_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[registry]\ndefault_ttl = \"soonish\"\n").unwrap();
    let output = switchboard(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("registry.default_ttl"), "{stderr}");
    assert!(stderr.contains("soonish"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_named() {
    let output = switchboard(&["serve", "--config", "/nonexistent/switchboard.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/switchboard.toml"), "{stderr}");
}
