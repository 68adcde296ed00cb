//! The binary starts without a display for `--help` and `--version`.

use std::process::Command;

fn editor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stylegraph-editor"));
    // No display of any kind: parsing must happen before a window is attempted.
    c.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    c
}

#[test]
fn help_works_without_a_display() {
    let out = editor().arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: stylegraph-editor"), "{text}");
    assert!(text.contains("--plugins"), "{text}");
}

#[test]
fn version_works_without_a_display() {
    let out = editor().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("stylegraph-editor "));
}

#[test]
fn a_missing_graph_file_is_reported_before_any_window() {
    let out = editor()
        .args(["--no-default-plugins", "/nonexistent/graph.ron"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/graph.ron"), "{err}");
}
