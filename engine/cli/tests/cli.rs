//! End-to-end tests of the `stylegraph` binary: example graphs, exit codes, JSON events,
//! seed batches, cancellation and atomic outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lib(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().expect("deps dir");
    let p = dir.join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        p.exists(),
        "{} missing (built as a dev-dependency)",
        p.display()
    );
    p
}

/// The CLI with exactly the core and test plugins loaded.
fn stylegraph(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stylegraph"));
    c.current_dir(cwd)
        .arg("--no-default-plugins")
        .arg("--plugins")
        .arg(lib("stylegraph_plugin_core"))
        .arg("--plugins")
        .arg(lib("sgtest_faulty"));
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fixture_z(seed: u32) -> stylegraph_npy::Array {
    let p = root().join(format!(
        "tests/fixtures/stylegan3-t-tiny-16/cases/seed{seed:04}_z.npy"
    ));
    stylegraph_npy::Array::read(&p).expect("fixture z")
}

fn write_graph(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write graph");
    p
}

#[test]
fn seed_to_z_graph_writes_the_official_latent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir.path())
        .args(["run"])
        .arg(root().join("graphs/seed_to_z.ron"))
        .args(["--set", "seed.seed=1", "--set", "save.path=z1.npy"])
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let got = stylegraph_npy::Array::read(&dir.path().join("z1.npy")).expect("written npy");
    let want = fixture_z(1);
    assert_eq!((got.dtype, &got.shape), (want.dtype, &want.shape));
    assert_eq!(
        got.data, want.data,
        "bit-identical to NumPy's RandomState(1).randn(1, 512)"
    );
    assert!(stdout.contains("save.path = \"z1.npy\""), "{stdout}");
}

#[test]
fn seed_batches_and_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(root().join("graphs/seed_to_z.ron"))
        .args(["--seeds", "0-1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    for seed in [0, 1] {
        let got = stylegraph_npy::Array::read(&dir.path().join(format!("out/z/seed{seed:04}.npy")))
            .expect("npy");
        assert_eq!(got.data, fixture_z(seed).data);
    }
    let dir2 = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir2.path())
        .arg("run")
        .arg(root().join("graphs/seed_to_z.ron"))
        .args(["--seeds", "0-1", "--shard", "1/2"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(!dir2.path().join("out/z/seed0000.npy").exists());
    assert!(dir2.path().join("out/z/seed0001.npy").exists());
}

#[test]
fn json_events_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(root().join("graphs/latent_math.ron"))
        .args(["--events", "json"])
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "node_finished").count(),
        8,
        "{kinds:?}"
    );
    assert!(dir.path().join("out/latent_math/blend.npy").exists());
}

#[test]
fn a_failing_node_exits_with_1_and_names_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = write_graph(
        dir.path(),
        "fail.ron",
        r#"(version: 1, nodes: [(id: "broken_node", type: "test.fail", params: {"message": "kaput"})])"#,
    );
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(&g)
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        (stdout.clone() + &stderr).contains("broken_node") && stderr.contains("kaput"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn invalid_graphs_and_arguments_exit_with_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown = write_graph(
        dir.path(),
        "u.ron",
        r#"(version: 1, nodes: [(id: "z", type: "core.seed_to_zz")])"#,
    );
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(&unknown)
        .output()
        .expect("run");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("did you mean \"core.seed_to_z\""),
        "{stderr}"
    );

    let malformed = write_graph(
        dir.path(),
        "m.ron",
        "(version: 1,\n nodes: [ (id: \"a\" ] )",
    );
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(&malformed)
        .output()
        .expect("run");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("m.ron:2:"), "line and column: {stderr}");

    let out = stylegraph(dir.path())
        .args(["run", "missing.ron"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("missing.ron"));

    let out = stylegraph(dir.path())
        .arg("run")
        .arg(root().join("graphs/seed_to_z.ron"))
        .args(["--set", "sed.seed=3"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("did you mean \"seed\""));

    let out = stylegraph(dir.path())
        .args(["run", "--no-such-flag"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_reports_problems_as_text_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir.path())
        .arg("validate")
        .arg(root().join("graphs/latent_math.ron"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("ok (8 nodes)"));

    let bad = write_graph(
        dir.path(),
        "bad.ron",
        r#"(version: 1, nodes: [
            (id: "s", type: "core.tensor_scale"),
            (id: "f", type: "core.const_float"),
            (id: "t", type: "core.tensor_scale", inputs: {"x": "f.value"}),
        ])"#,
    );
    let out = stylegraph(dir.path())
        .args(["validate", "--json"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"missing_input") && kinds.contains(&"type_mismatch"),
        "{kinds:?}"
    );
}

#[test]
fn nodes_lists_every_node_type_with_docs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = stylegraph(dir.path())
        .args(["nodes", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let types = v["node_types"].as_array().expect("node_types");
    let seed = types
        .iter()
        .find(|t| t["type_id"] == "core.seed_to_z")
        .expect("core.seed_to_z");
    assert_eq!(seed["outputs"][0]["type"], "Z");
    assert_eq!(seed["params"][0]["name"], "seed");
    assert_eq!(seed["params"][0]["is_seed"], true);
    assert!(v["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .any(|p| p["id"] == "core"));

    let out = stylegraph(dir.path())
        .args(["nodes", "core.seed"])
        .output()
        .expect("run");
    let (stdout, _) = text(&out);
    assert!(stdout.contains("RandomState(seed).randn"), "{stdout}");
    assert!(!stdout.contains("core.math"));
}

#[test]
fn ctrl_c_cancels_and_leaves_no_partial_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = write_graph(
        dir.path(),
        "slow.ron",
        r#"(version: 1, nodes: [
            (id: "slow", type: "test.slow", params: {"steps": 2000, "step_ms": 10}),
            (id: "z", type: "core.seed_to_z"),
            (id: "gate", type: "core.tensor_scale", inputs: {"x": "z.z", "factor": "slow.steps_done"}),
            (id: "save", type: "core.save_tensor", params: {"path": "result.npy"}, inputs: {"x": "gate.y"}),
        ])"#,
    );
    let mut child = stylegraph(dir.path())
        .arg("run")
        .arg(&g)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(130));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["slow.ron".to_string()],
        "nothing written after cancel"
    );
}

#[test]
fn an_existing_output_is_replaced_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("z.npy"), b"previous result").expect("write");
    let out = stylegraph(dir.path())
        .arg("run")
        .arg(root().join("graphs/seed_to_z.ron"))
        .args(["--set", "save.path=z.npy"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["z.npy".to_string()],
        "no temporary files left behind"
    );
    assert_eq!(
        stylegraph_npy::Array::read(&dir.path().join("z.npy"))
            .expect("npy")
            .data,
        fixture_z(0).data
    );
}
