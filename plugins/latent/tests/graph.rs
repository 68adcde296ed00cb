//! The latent nodes wired in graphs and run in-process by the real executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use stylegraph_core::exec::{RunOptions, RunReport, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::value::Value;
use stylegraph_npy::Array;

fn session() -> Session {
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_latent::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    Session::new(Arc::new(host), SessionConfig::default())
}

fn run(ron: &str) -> RunReport {
    let graph = Graph::from_ron_str(ron, "<test>").unwrap_or_else(|e| panic!("{e}"));
    session()
        .run(&graph, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run_ok(ron: &str) -> RunReport {
    let r = run(ron);
    assert_eq!(r.status, RunStatus::Finished, "failed: {:?}", r.failed);
    r
}

fn tensor(r: &RunReport, node: &str, port: &str) -> (Vec<usize>, Vec<f64>) {
    match r.output(node, port) {
        Some(Value::Tensor(t)) => (
            t.shape().iter().map(|&d| d as usize).collect(),
            t.to_f64_vec(),
        ),
        other => panic!("{node}.{port}: expected a tensor, got {other:?}"),
    }
}

fn int(r: &RunReport, node: &str, port: &str) -> i64 {
    match r.output(node, port) {
        Some(Value::Int(v)) => *v,
        other => panic!("{node}.{port}: expected an int, got {other:?}"),
    }
}

fn float(r: &RunReport, node: &str, port: &str) -> f64 {
    match r.output(node, port) {
        Some(Value::Float(v)) => *v,
        other => panic!("{node}.{port}: expected a float, got {other:?}"),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Escapes a path for a RON string.
fn ron_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

#[test]
fn seeds_give_the_official_z_and_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let zfile = dir.path().join("sub/z.npy");
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "s", type: "latent.seeds", params: {{"seeds": "0-1"}}),
            (id: "save", type: "latent.save_latent", params: {{"path": "{}"}}, inputs: {{"latent": "s.z"}}),
        ])"#,
        ron_path(&zfile)
    ));
    assert_eq!(int(&r, "s", "count"), 2);
    assert_eq!(tensor(&r, "s", "seeds").1, vec![0.0, 1.0]);
    let (shape, z) = tensor(&r, "s", "z");
    assert_eq!(shape, vec![2, 512]);
    for seed in 0..2 {
        let want =
            Array::read(&fixtures().join(format!("stylegan3-t-tiny-16/cases/seed{seed:04}_z.npy")))
                .unwrap()
                .to_f64()
                .unwrap();
        let row = &z[seed * 512..(seed + 1) * 512];
        assert!(
            row.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "seed {seed}"
        );
    }
    // save_latent kept float64 and the file reads back unchanged through z_from_file.
    let saved = Array::read(&zfile).unwrap();
    assert_eq!(saved.shape, vec![2, 512]);
    assert_eq!(saved.to_f64().unwrap(), z);
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [(id: "l", type: "latent.z_from_file", params: {{"path": "{}"}})])"#,
        ron_path(&zfile)
    ));
    assert_eq!(tensor(&r, "l", "z").1, z);
}

#[test]
fn truncation_graph_reproduces_the_fixture_and_writes_projected_w() {
    // w_from_file (fixture psi 1 ws) + w_avg from a file -> truncation 0.7 -> projected_w.npz.
    let dir = tempfile::tempdir().unwrap();
    let net = fixtures().join("stylegan3-r-tiny-16");
    let bytes = std::fs::read(net.join("G_ema.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let avg: Vec<f32> = st
        .tensor("mapping.w_avg")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let avg_path = dir.path().join("w_avg.npy");
    Array::from_f32(vec![1, 512], &avg)
        .unwrap()
        .write(&avg_path)
        .unwrap();
    let out = dir.path().join("projected_w.npz");
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "ws", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "avg", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "t", type: "latent.truncation", params: {{"psi": 0.7}}, inputs: {{"ws": "ws.ws", "w_avg": "avg.w"}}),
            (id: "save", type: "latent.save_latent", params: {{"path": "{}"}}, inputs: {{"latent": "t.ws"}}),
        ])"#,
        ron_path(&net.join("cases/seed0001_psi1_ws.npy")),
        ron_path(&avg_path),
        ron_path(&out)
    ));
    let want = Array::read(&net.join("cases/seed0001_psi0.7_ws.npy")).unwrap();
    let (shape, got) = tensor(&r, "t", "ws");
    assert_eq!(shape, want.shape);
    assert_eq!(
        got,
        want.to_f32()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>()
    );
    // The projector layout: an npz with one float32 array `w` of shape [1, num_ws, w_dim].
    let npz = stylegraph_npy::read_npz(&out).unwrap();
    assert_eq!(npz.keys().collect::<Vec<_>>(), vec!["w"]);
    assert_eq!(npz["w"], want);
    // ...and it loads back as W+ through w_from_file (default key "w").
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [(id: "l", type: "latent.w_from_file", params: {{"path": "{}"}})])"#,
        ron_path(&out)
    ));
    assert_eq!(tensor(&r, "l", "ws").1, got);
    assert_eq!(tensor(&r, "l", "w").0, vec![1, 512]);
}

#[test]
fn plain_w_files_broadcast_to_num_ws() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.npy");
    Array::from_f32(vec![2, 3], &[1., 2., 3., 4., 5., 6.])
        .unwrap()
        .write(&p)
        .unwrap();
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [(id: "l", type: "latent.w_from_file", params: {{"path": "{}", "num_ws": 4}})])"#,
        ron_path(&p)
    ));
    let (shape, ws) = tensor(&r, "l", "ws");
    assert_eq!(shape, vec![2, 4, 3]);
    assert_eq!(&ws[9..15], &[1., 2., 3., 4., 5., 6.]);
    // A W+ file whose rows disagree with num_ws is refused with both numbers.
    let p3 = dir.path().join("wp.npy");
    Array::from_f32(vec![1, 2, 3], &[0.0; 6])
        .unwrap()
        .write(&p3)
        .unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [(id: "l", type: "latent.w_from_file", params: {{"path": "{}", "num_ws": 4}})])"#,
        ron_path(&p3)
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains("2 W+ rows") && r.failed[0].1.contains("num_ws is 4"),
        "{:?}",
        r.failed
    );
}

#[test]
fn style_mix_and_interpolation_graph() {
    let cases = fixtures().join("stylegan3-t-tiny-16/cases");
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "a", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "b", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "mix", type: "latent.style_mix", params: {{"layout": "official_grid", "layers": "0-6"}},
                inputs: {{"row": "a.ws", "col": "b.ws"}}),
            (id: "walk", type: "latent.interpolate",
                params: {{"mode": "linear", "loop": false, "frames_per_keyframe": 4}},
                inputs: {{"keyframes": "mix.ws"}}),
        ])"#,
        ron_path(&cases.join("seed0000_psi1_ws.npy")),
        ron_path(&cases.join("seed0001_psi1_ws.npy")),
    ));
    let (shape, mix) = tensor(&r, "mix", "ws");
    assert_eq!(shape, vec![3, 16, 512]);
    assert_eq!(int(&r, "mix", "grid_cols"), 2);
    let (_, a) = tensor(&r, "a", "ws");
    let (_, b) = tensor(&r, "b", "ws");
    let item = 16 * 512;
    assert_eq!(&mix[..item], &b[..]);
    assert_eq!(&mix[item..2 * item], &a[..]);
    assert_eq!(&mix[2 * item..2 * item + 7 * 512], &b[..7 * 512]);
    assert_eq!(&mix[2 * item + 7 * 512..], &a[7 * 512..]);
    // 3 keyframes, no loop: 2 * 4 + 1 frames; frame 4 is keyframe 1.
    assert_eq!(int(&r, "walk", "total"), 9);
    assert_eq!(int(&r, "walk", "count"), 9);
    let (shape, frames) = tensor(&r, "walk", "frames");
    assert_eq!(shape, vec![9, 16, 512]);
    assert_eq!(&frames[4 * item..5 * item], &mix[item..2 * item]);

    // The same walk streamed 4 frames at a time: chunks of 4, 4 and 1 frames; the report holds
    // the last chunk, which is the walk's last frame.
    let streamed = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "a", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "b", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "mix", type: "latent.style_mix", params: {{"layout": "official_grid", "layers": "0-6"}},
                inputs: {{"row": "a.ws", "col": "b.ws"}}),
            (id: "walk", type: "latent.interpolate",
                params: {{"mode": "linear", "loop": false, "frames_per_keyframe": 4, "chunk_frames": 4}},
                inputs: {{"keyframes": "mix.ws"}}),
        ])"#,
        ron_path(&cases.join("seed0000_psi1_ws.npy")),
        ron_path(&cases.join("seed0001_psi1_ws.npy")),
    ));
    assert_eq!(int(&streamed, "walk", "total"), 9);
    assert_eq!(int(&streamed, "walk", "count"), 1);
    let (shape, last) = tensor(&streamed, "walk", "frames");
    assert_eq!(shape, vec![1, 16, 512]);
    assert_eq!(&last[..], &frames[8 * item..]);
}

#[test]
fn directions_from_files_sefa_and_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    // An "affine" whose SeFa directions are known: rows 3 x e2, 2 x e0, 1 x e1 in 4-D.
    let rows: Vec<f64> = [2usize, 2, 2, 0, 0, 1]
        .iter()
        .flat_map(|&axis| (0..4).map(move |j| if j == axis { 5.0 } else { 0.0 }))
        .collect();
    let aff = dir.path().join("affine.npy");
    Array::from_f64(vec![6, 4], &rows)
        .unwrap()
        .write(&aff)
        .unwrap();
    // A W+ latent of 3 layers x 4 dims, all zeros.
    let w = dir.path().join("w.npy");
    Array::from_f32(vec![1, 3, 4], &[0.0; 12])
        .unwrap()
        .write(&w)
        .unwrap();
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "aff", type: "latent.z_from_file", params: {{"path": "{}"}}),
            (id: "sefa", type: "latent.sefa", params: {{"components": 2}}, inputs: {{"weights": "aff.z"}}),
            (id: "w", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "edit", type: "latent.apply_direction",
                params: {{"mode": "sweep", "strengths": "-2:2:3", "layers": "1-2"}},
                inputs: {{"ws": "w.ws", "direction": "sefa.directions"}}),
            (id: "pick", type: "latent.select", params: {{"indices": "1"}}, inputs: {{"x": "sefa.directions"}}),
        ])"#,
        ron_path(&aff),
        ron_path(&w)
    ));
    let (shape, dirs) = tensor(&r, "sefa", "directions");
    assert_eq!(shape, vec![2, 4]);
    assert_eq!(dirs, vec![0., 0., 1., 0., 1., 0., 0., 0.]);
    assert_eq!(tensor(&r, "sefa", "eigenvalues").1, vec![3.0, 2.0]);
    assert_eq!(
        tensor(&r, "pick", "out"),
        (vec![1, 4], vec![1., 0., 0., 0.])
    );
    // Sweep: 2 directions x 3 strengths; item (k=0, s=-2) moves layers 1-2 by -2 e2.
    let (shape, edits) = tensor(&r, "edit", "ws");
    assert_eq!(shape, vec![6, 3, 4]);
    assert_eq!(
        &edits[..12],
        &[0., 0., 0., 0., 0., 0., -2., 0., 0., 0., -2., 0.]
    );
    assert_eq!(
        &edits[5 * 12..6 * 12],
        &[0., 0., 0., 0., 2., 0., 0., 0., 2., 0., 0., 0.]
    );

    // A direction file of another model's w_dim is refused with both sizes.
    let d5 = dir.path().join("d5.npy");
    Array::from_f32(vec![5], &[1.0; 5])
        .unwrap()
        .write(&d5)
        .unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "w", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "d", type: "latent.direction_from_file", params: {{"path": "{}"}}),
            (id: "edit", type: "latent.apply_direction", inputs: {{"ws": "w.ws", "direction": "d.direction"}}),
        ])"#,
        ron_path(&w),
        ron_path(&d5)
    ));
    assert_eq!(r.status, RunStatus::Failed);
    let (node, msg) = &r.failed[0];
    assert_eq!(node, "edit");
    assert!(msg.contains("w_dim 5") && msg.contains("w_dim 4"), "{msg}");
}

#[test]
fn ganspace_and_learned_direction_from_seeds_and_csv() {
    // Latents: the seeds' z in 6-D. Labels in a CSV: positive when z[2] > 0 (a planted
    // direction e2). The learned normal must be close to e2.
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<u32> = (0..300).collect();
    let mut csv = String::from("seed,label\n");
    for &s in &seeds {
        let z = stylegraph_rng::z_from_seed(s, 6);
        csv.push_str(&format!("{s},{}\n", if z[2] > 0.0 { 1 } else { 0 }));
    }
    let csv_path = dir.path().join("labels.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let r = run_ok(&format!(
        r#"(version: 1, nodes: [
            (id: "s", type: "latent.seeds", params: {{"seeds": "0-299", "z_dim": 6}}),
            (id: "learn", type: "latent.learn_direction",
                params: {{"labels_csv": "{}", "method": "logistic", "holdout": 0.25}},
                inputs: {{"latents": "s.z", "seeds": "s.seeds"}}),
            (id: "rz", type: "latent.random_z", params: {{"count": 2000, "seed": 3, "z_dim": 6}}),
            (id: "pca", type: "latent.ganspace", params: {{"components": 6}}, inputs: {{"latents": "rz.z"}}),
        ])"#,
        ron_path(&csv_path)
    ));
    let (shape, d) = tensor(&r, "learn", "direction");
    assert_eq!(shape, vec![1, 6]);
    assert!(d[2] > 0.95, "learned direction {d:?}");
    assert!(float(&r, "learn", "accuracy") > 0.9);
    // PCA of isotropic normal samples: standard deviations near 1, unit components, mean ~0.
    let (_, sd) = tensor(&r, "pca", "stddev");
    assert!(sd.iter().all(|&s| (s - 1.0).abs() < 0.1), "{sd:?}");
    assert!(sd.windows(2).all(|w| w[0] >= w[1]), "sorted: {sd:?}");
    let (_, comps) = tensor(&r, "pca", "directions");
    for c in comps.chunks(6) {
        let norm: f64 = c.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let (_, mean) = tensor(&r, "pca", "mean");
    assert!(mean.iter().all(|m| m.abs() < 0.1), "{mean:?}");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Seed syntax.
    let r =
        run(r#"(version: 1, nodes: [(id: "s", type: "latent.seeds", params: {"seeds": "5-2"})])"#);
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains("seeds") && r.failed[0].1.contains("backwards"),
        "{:?}",
        r.failed
    );
    // An output path that cannot be written (its parent is a file).
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "s", type: "latent.seeds"),
            (id: "save", type: "latent.save_latent", params: {{"path": "{}"}}, inputs: {{"latent": "s.z"}}),
        ])"#,
        ron_path(&blocker.join("z.npy"))
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains(&blocker.display().to_string()),
        "{:?}",
        r.failed
    );
    // A missing file.
    let r = run(
        r#"(version: 1, nodes: [(id: "l", type: "latent.w_from_file", params: {"path": "/nonexistent/w.npz"})])"#,
    );
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains("/nonexistent/w.npz"),
        "{:?}",
        r.failed
    );
    // Truncation with a w_avg of the wrong size.
    let ws = dir.path().join("ws.npy");
    Array::from_f32(vec![1, 2, 4], &[0.0; 8])
        .unwrap()
        .write(&ws)
        .unwrap();
    let avg = dir.path().join("avg.npy");
    Array::from_f32(vec![3], &[0.0; 3])
        .unwrap()
        .write(&avg)
        .unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "ws", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "avg", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "t", type: "latent.truncation", inputs: {{"ws": "ws.ws", "w_avg": "avg.w"}}),
        ])"#,
        ron_path(&ws),
        ron_path(&avg)
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains("w_avg has 3 values") && r.failed[0].1.contains("w_dim 4"),
        "{:?}",
        r.failed
    );
    // Style-mix layers beyond num_ws.
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "ws", type: "latent.w_from_file", params: {{"path": "{}"}}),
            (id: "m", type: "latent.style_mix", params: {{"layers": "0-6"}}, inputs: {{"row": "ws.ws", "col": "ws.ws"}}),
        ])"#,
        ron_path(&ws)
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.failed[0].1.contains("out of range"), "{:?}", r.failed);
}
