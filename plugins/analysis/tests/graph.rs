//! Runs `graphs/spectrum_folder.ron` in-process on a folder of generated images: the spectrum
//! peaks where the images' sinusoid is, plots and CSV are written, the .npz reads back, and
//! the plots are sent as previews.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, ParamValue};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::value::Value;
use stylegraph_kernels::image_folder::{encode_png, read_rgb8, Rgb8};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn set(g: &mut Graph, node: &str, param: &str, v: ParamValue) {
    g.node_mut(node)
        .unwrap_or_else(|| panic!("graph has no node {node}"))
        .params
        .insert(param.to_owned(), v);
}

#[test]
fn spectrum_folder_graph_writes_plots_csv_and_npz() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let n = 32;
    let k0 = 6; // cycles per image along x
    for i in 0..4 {
        let mut data = vec![0u8; n * n * 3];
        for y in 0..n {
            for x in 0..n {
                let v = 128.0
                    + 90.0
                        * (2.0 * std::f64::consts::PI * (k0 * x) as f64 / n as f64 + i as f64)
                            .cos();
                for c in 0..3 {
                    data[(y * n + x) * 3 + c] = v as u8;
                }
            }
        }
        let png = encode_png(
            &Rgb8 {
                width: n,
                height: n,
                data,
            },
            "t",
        )
        .unwrap();
        std::fs::write(images.join(format!("{i}.png")), png).unwrap();
    }
    let out = dir.path().join("out");
    let mut g = Graph::load(&repo_root().join("graphs/spectrum_folder.ron")).unwrap();
    let s = |p: PathBuf| ParamValue::Str(p.display().to_string());
    set(&mut g, "spectrum", "folder", s(images.clone()));
    set(&mut g, "spectrum", "interp", ParamValue::Int(2));
    set(&mut g, "save", "path", s(out.join("spectrum.npz")));
    set(&mut g, "heatmap", "path", s(out.join("heatmap.png")));
    set(&mut g, "heatmap", "size", ParamValue::Int(128));
    set(&mut g, "slices", "path", s(out.join("slices.png")));
    set(&mut g, "slices", "csv", s(out.join("slices.csv")));

    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_analysis::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    let session = Session::new(Arc::new(host), SessionConfig::default());
    let previews = Arc::new(Mutex::new(Vec::new()));
    let sink = previews.clone();
    let opts = RunOptions {
        on_event: Some(Arc::new(move |e: &Event| {
            if let Event::Preview { node, shape, .. } = e {
                sink.lock().unwrap().push((node.clone(), shape.clone()));
            }
        })),
        ..RunOptions::default()
    };
    let r = session.run(&g, &opts).unwrap();
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);

    let spec = r
        .output("spectrum", "spectrum")
        .and_then(Value::as_tensor)
        .unwrap();
    assert_eq!(spec.shape(), &[64, 64]);
    let p = spec.to_f64_vec();
    // With interp 2 the sinusoid's bin is 2*k0 along x in row 0; it is the strongest non-DC bin.
    let peak = (1..64 * 64).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    assert!(peak == 2 * k0 || peak == 64 - 2 * k0, "peak at {peak}");
    assert_eq!(
        r.output("spectrum", "image_size").and_then(Value::as_f64),
        Some(32.0)
    );

    let npz = stylegraph_npy::read_npz(&out.join("spectrum.npz")).unwrap();
    assert_eq!(npz["spectrum"].to_f64().unwrap(), p);
    assert_eq!(npz["image_size"].to_f64_lossy(), vec![32.0]);
    let heat = read_rgb8(&out.join("heatmap.png")).unwrap();
    let slices = read_rgb8(&out.join("slices.png")).unwrap();
    assert_eq!((slices.width, slices.height), (3 * 420, 360));
    let csv = std::fs::read_to_string(out.join("slices.csv")).unwrap();
    // Header, then 33 points for each slice and the radial profile.
    assert_eq!(csv.lines().count(), 1 + 3 * 33);
    let pv = previews.lock().unwrap();
    assert!(pv
        .iter()
        .any(|(n, s)| n == "heatmap" && s == &vec![heat.height as i64, heat.width as i64, 3]));
    assert!(pv.iter().any(|(n, _)| n == "slices"));
}

#[test]
fn spectrum_of_non_square_or_missing_images_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let png = encode_png(
        &Rgb8 {
            width: 4,
            height: 3,
            data: vec![0; 36],
        },
        "t",
    )
    .unwrap();
    std::fs::write(dir.path().join("a.png"), png).unwrap();
    let text = format!(
        r#"(version: 1, nodes: [(id: "s", type: "analysis.spectrum", params: {{"folder": "{}"}})])"#,
        dir.path().display()
    );
    let g = Graph::from_ron_str(&text, "<t>").unwrap();
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_analysis::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    let session = Session::new(Arc::new(host), SessionConfig::default());
    let r = session.run(&g, &RunOptions::default()).unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.failed[0].1.contains("square"), "{:?}", r.failed);
}
