//! Every example graph in `graphs/` runs end to end through the CLI (with a tiny built-in model
//! substituted for speed), and `stylegraph generate` writes what gen_images.py writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use stylegraph_core::graph::Graph;

/// A small, fast built-in StyleGAN3-T (the graphs' default is the 256 px official structure).
const TINY_MODEL: &str = "builtin:stylegan3-t-16?cmax=32";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plugin_args() -> Vec<String> {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().expect("deps dir");
    let mut args = vec!["--no-default-plugins".to_string()];
    for name in ["core", "stylegan", "latent", "io"] {
        let p = dir.join(format!(
            "{}stylegraph_plugin_{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        assert!(
            p.exists(),
            "{} missing (a dev-dependency builds it)",
            p.display()
        );
        args.push("--plugins".into());
        args.push(p.display().to_string());
    }
    args
}

fn run_graph(name: &str, extra: &[&str]) -> (tempfile::TempDir, String) {
    let path = root().join("graphs").join(name);
    let graph = Graph::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stylegraph"));
    cmd.current_dir(dir.path())
        .args(plugin_args())
        .arg("run")
        .arg(&path);
    for n in graph
        .nodes
        .iter()
        .filter(|n| n.node_type == "stylegan.load")
    {
        cmd.arg("--set").arg(format!("{}.path={TINY_MODEL}", n.id));
    }
    cmd.args(extra);
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}:\n{stdout}\n{stderr}");
    (dir, stdout)
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    (w, h)
}

#[test]
fn generate_graph_writes_one_png_per_seed() {
    let (dir, _) = run_graph("generate.ron", &["--seeds", "3,5"]);
    for seed in [3, 5] {
        assert_eq!(
            png_size(&dir.path().join(format!("out/generate/seed{seed:04}.png"))),
            (16, 16)
        );
    }
}

#[test]
fn style_mix_graph_makes_the_official_grid() {
    let (dir, _) = run_graph("style_mix.ron", &[]);
    // 4 columns + 1 leading blank, 5 rows + the header row, 16 px cells.
    assert_eq!(
        png_size(&dir.path().join("out/style_mix/grid.png")),
        (5 * 16, 6 * 16)
    );
}

#[test]
fn edit_attribute_graph_sweeps_sefa_directions() {
    let (dir, _) = run_graph("edit_attribute.ron", &[]);
    assert!(dir
        .path()
        .join("out/edit_attribute/sefa_sweep.png")
        .exists());
    assert!(dir
        .path()
        .join("out/edit_attribute/sefa_directions.npy")
        .exists());
}

#[test]
fn interpolate_graph_writes_a_strip_and_a_gif() {
    let (dir, _) = run_graph("interpolate.ron", &[]);
    let (w, h) = png_size(&dir.path().join("out/interpolate/strip.png"));
    assert_eq!(h, 16);
    assert_eq!(w % 16, 0);
    let gif = std::fs::read(dir.path().join("out/interpolate/walk.gif")).expect("gif");
    assert_eq!(&gif[..6], b"GIF89a");
}

#[test]
fn video_graph_writes_an_mp4() {
    // Fewer frames than the official 120 per keyframe keep CI fast; the structure is the same.
    // 16 seeds = 8 cells x 2 keyframes, looping: 8 frames, streamed in chunks of 3 (3, 3, 2).
    let (dir, _) = run_graph(
        "video.ron",
        &[
            "--set",
            "walk.frames_per_keyframe=4",
            "--set",
            "seeds.seeds=0-15",
            "--set",
            "walk.chunk_frames=3",
        ],
    );
    let path = dir.path().join("out/video/lerp.mp4");
    let mp4 = std::fs::read(&path).expect("mp4");
    assert_eq!(&mp4[4..8], b"ftyp", "an MP4 file starts with an ftyp box");
    // Every chunk reached the file: 8 frames of 4 x 2 cells of 16 px.
    let (frames, w, h) =
        stylegraph_plugin_io::video::decode_mp4(&path, |_, _| {}).expect("decode the mp4");
    assert_eq!((frames, w, h), (8, 64, 32));
}

#[test]
fn generate_command_matches_gen_images_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_stylegraph"))
        .current_dir(dir.path())
        .args(plugin_args())
        .args([
            "generate",
            "--network",
            TINY_MODEL,
            "--seeds",
            "0-1",
            "--trunc",
            "0.7",
        ])
        .args([
            "--translate",
            "0.1,-0.2",
            "--rotate",
            "5",
            "--raw",
            "--outdir",
            "imgs",
            "--save-graph",
            "g.ron",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for seed in [0, 1] {
        assert_eq!(
            png_size(&dir.path().join(format!("imgs/seed{seed:04}.png"))),
            (16, 16)
        );
        let raw = stylegraph_npy::Array::read(&dir.path().join(format!("imgs/seed{seed:04}.npy")))
            .expect("npy");
        assert_eq!(raw.shape, vec![1, 3, 16, 16]);
        assert_eq!(raw.dtype, stylegraph_npy::DType::F32);
    }
    // The saved graph runs unchanged and reproduces the same raw output.
    let again = Command::new(env!("CARGO_BIN_EXE_stylegraph"))
        .current_dir(dir.path())
        .args(plugin_args())
        .args([
            "run",
            "g.ron",
            "--seeds",
            "1",
            "--set",
            "save.path=again/seed{seed:04}.png",
            "--set",
            "save_raw.path=again/seed{seed:04}.npy",
        ])
        .output()
        .expect("run");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let a = stylegraph_npy::Array::read(&dir.path().join("imgs/seed0001.npy")).expect("a");
    let b = stylegraph_npy::Array::read(&dir.path().join("again/seed0001.npy")).expect("b");
    assert_eq!(a.data, b.data);
}
