//! `stylegraph bench --quick --json`: the report is valid JSON with every figure present and
//! plausible. Not a timing test: no figure is compared with a speed target.

use serde_json::Value;
use std::process::Command;

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur
            .get(key)
            .unwrap_or_else(|| panic!("missing {path} (at {key}) in {v}"));
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

fn positive(v: &Value, path: &str) -> f64 {
    let x = num(v, path);
    assert!(x.is_finite() && x > 0.0, "{path} = {x}, expected > 0");
    x
}

#[test]
fn quick_bench_reports_every_figure_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_stylegraph"))
        .current_dir(dir.path())
        .args([
            "--no-default-plugins",
            "bench",
            "--quick",
            "--runs",
            "2",
            "--threads",
            "2",
            "--json",
        ])
        .output()
        .expect("run stylegraph bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    let one = positive(&r, "peak.gflops_1t");
    let all = positive(&r, "peak.gflops_mt");
    assert_eq!(num(&r, "peak.threads"), 2.0);
    assert!(
        ["avx512f", "avx2+fma", "scalar"].contains(&r["peak"]["isa"].as_str().unwrap_or("")),
        "{}",
        r["peak"]
    );
    // Two threads never do more than twice the work of one (10% slack for clock changes).
    assert!(all <= 2.2 * one, "peak {all} on 2 threads vs {one} on 1");
    assert_eq!(num(&r, "settings.runs"), 2.0);
    assert_eq!(num(&r, "settings.threads"), 2.0);

    let nets = r["networks"].as_array().expect("networks array");
    let names: Vec<&str> = nets.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "stylegan3-t-64?cmax=64",
            "stylegan3-r-64?cmax=64",
            "stylegan2-64?cmax=64"
        ]
    );
    for n in nets {
        let name = n["name"].as_str().unwrap_or("?");
        assert_eq!(num(n, "resolution"), 64.0, "{name}");
        assert_eq!(
            num(n, "threads"),
            2.0,
            "{name}: --threads reaches the child"
        );
        positive(n, "parameters");
        let gflop = positive(n, "gflop_per_image");
        let median = positive(n, "median_s_per_image");
        let min = positive(n, "min_s_per_image");
        assert!(min <= median, "{name}: min {min} > median {median}");
        let runs = n["run_s_per_image"].as_array().expect("run times");
        assert_eq!(runs.len(), 2, "{name}");
        let rate = positive(n, "gflops");
        assert!(
            (rate - gflop / median).abs() <= 1e-6 * rate,
            "{name}: gflops is not GFLOP / median time"
        );
        positive(n, "peak_rss_mib");
        positive(n, "peak_rss_build_mib");
        positive(n, "build_s");
        let layers = n["layers"].as_array().expect("layers");
        // SG3: mapping, input, 15 layers; SG2 at 64 px: mapping, 5 blocks.
        let want = if name.starts_with("stylegan2") { 6 } else { 17 };
        assert_eq!(layers.len(), want, "{name}");
        for l in layers {
            positive(l, "ms");
            positive(l, "gflop");
        }
        // SG3 conv layers: the kernel stages of the same run, within the layer's time.
        if !name.starts_with("stylegan2") {
            for l in &layers[2..] {
                let stages = &l["stages_ms"];
                positive(stages, "gemm");
                positive(stages, "filter");
                let sum: f64 = [
                    "weights",
                    "input_transform",
                    "gemm",
                    "output_transform",
                    "filter",
                ]
                .iter()
                .map(|k| num(stages, k))
                .sum();
                let ms = num(l, "ms");
                assert!(
                    sum <= ms * 1.05 + 0.05,
                    "{name}: stages {sum} ms > layer {ms} ms"
                );
            }
        }
        // The stages' FLOPs add up to the network's.
        let sum: f64 = layers.iter().map(|l| num(l, "gflop")).sum();
        assert!(
            (sum - gflop).abs() <= 1e-9 * gflop,
            "{name}: {sum} vs {gflop}"
        );
    }

    assert_eq!(num(&r, "graph.chain_nodes"), 200.0);
    positive(&r, "graph.per_node_us");
    positive(&r, "graph.cached_rerun_ms");
    positive(&r, "graph.first_run_ms");
}

#[test]
fn bench_rejects_an_unknown_network_before_measuring() {
    let out = Command::new(env!("CARGO_BIN_EXE_stylegraph"))
        .args([
            "--no-default-plugins",
            "bench",
            "--networks",
            "stylegan4-256",
        ])
        .output()
        .expect("run stylegraph bench");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stylegan4-256"), "{stderr}");
}
