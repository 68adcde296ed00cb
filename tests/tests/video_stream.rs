//! The latent-walk video streamed end to end through the host, with the real plugins loaded as
//! libraries: seeds -> mapping -> a streamed `latent.interpolate` -> synthesis ->
//! `io.save_video` (and `io.save_image`), on the tiny StyleGAN2 fixture network.

use std::path::Path;
use std::sync::Arc;
use stylegraph_core::events::Event;
use stylegraph_core::exec::{
    CancelToken, RunOptions, RunReport, RunStatus, Session, SessionConfig,
};
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::validate;
use stylegraph_core::value::{TensorMemory, Value};
use stylegraph_plugin_io::video::decode_mp4;
use stylegraph_tests::{plugin_library, workspace_root};

fn host() -> PluginHost {
    let mut host = PluginHost::new();
    for lib in [
        "stylegraph_plugin_core",
        "stylegraph_plugin_latent",
        "stylegraph_plugin_stylegan",
        "stylegraph_plugin_io",
    ] {
        host.load_file(&plugin_library(lib))
            .unwrap_or_else(|e| panic!("loading {lib}: {e}"));
    }
    host
}

fn ron_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

/// 8 seeds as 2 grid cells x 4 keyframes, looping cubic walk of `per_key` frames per keyframe:
/// `4 * per_key` video frames of 2 x 1 cells of 16 px.
fn walk_graph(dir: &Path, per_key: usize, chunk_frames: usize) -> Graph {
    let model =
        workspace_root().join("tests/fixtures/stylegan2-tiny-16/network-snapshot-nosrc.pkl");
    Graph::from_ron_str(
        &format!(
            r#"(version: 1, nodes: [
                (id: "model", type: "stylegan.load", params: {{"path": "{model}"}}),
                (id: "seeds", type: "latent.seeds", params: {{"seeds": "0-7"}}),
                (id: "w", type: "stylegan.mapping", params: {{"psi": 1.0}},
                    inputs: {{"generator": "model.generator", "z": "seeds.z"}}),
                (id: "walk", type: "latent.interpolate",
                    params: {{"mode": "cubic", "loop": true, "frames_per_keyframe": {per_key}, "wraps": 2,
                        "groups": 2, "chunk_frames": {chunk_frames}}},
                    inputs: {{"keyframes": "w.ws"}}),
                (id: "synth", type: "stylegan.synthesis", params: {{"noise_mode": "const"}},
                    inputs: {{"generator": "model.generator", "ws": "walk.frames"}}),
                (id: "video", type: "io.save_video",
                    params: {{"path": "{video}", "fps": 30.0, "quality": 90, "grid_cols": 2}},
                    inputs: {{"frames": "synth.image"}}),
                (id: "images", type: "io.save_image", params: {{"path": "{images}"}},
                    inputs: {{"image": "synth.image"}}),
            ])"#,
            model = ron_path(&model),
            video = ron_path(&dir.join("walk.mp4")),
            images = ron_path(&dir.join("img/{index:03}.png")),
        ),
        "<test>",
    )
    .expect("graph")
}

/// The walk of 5 frames per keyframe (20 video frames), run; with the peak tensor memory.
fn walk(dir: &Path, chunk_frames: usize) -> (RunReport, TensorMemory) {
    let g = walk_graph(dir, 5, chunk_frames);
    let session = Session::new(Arc::new(host()), SessionConfig::default());
    session.reset_tensor_peak();
    let r = session.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let memory = session.tensor_memory();
    (r, memory)
}

#[test]
fn a_streamed_walk_encodes_every_frame_and_equals_the_unstreamed_one() {
    let streamed_dir = tempfile::tempdir().expect("tempdir");
    let whole_dir = tempfile::tempdir().expect("tempdir");
    // Chunks of 3 frames (6 images): 7 chunks, the last one of 2 frames.
    let (streamed, streamed_mem) = walk(streamed_dir.path(), 3);
    let (whole, whole_mem) = walk(whole_dir.path(), 0);

    for r in [&streamed, &whole] {
        assert!(matches!(r.output("video", "frames"), Some(Value::Int(20))));
        assert!(matches!(r.output("images", "count"), Some(Value::Int(40))));
    }
    let (frames, w, h) = decode_mp4(&streamed_dir.path().join("walk.mp4"), |_, _| {})
        .expect("decode the streamed video");
    assert_eq!((frames, w, h), (20, 32, 16));
    // The streamed report holds the last chunk: 2 frames x 2 cells.
    let last = streamed
        .output("synth", "image")
        .and_then(Value::as_tensor)
        .expect("image");
    assert_eq!(last.shape(), &[4, 3, 16, 16]);

    // Image files are numbered through the whole sequence, and each is the same image as in
    // the walk rendered as one batch.
    for i in 0..40 {
        let name = format!("img/{i:03}.png");
        let a = std::fs::read(streamed_dir.path().join(&name)).expect("streamed image");
        let b = std::fs::read(whole_dir.path().join(&name)).expect("whole image");
        assert!(
            a == b,
            "{name} differs between the streamed and the whole walk"
        );
    }
    assert!(!streamed_dir.path().join("img/040.png").exists());
    // So does every decoded video frame.
    let mut whole_frames = Vec::new();
    decode_mp4(&whole_dir.path().join("walk.mp4"), |_, rgb| {
        whole_frames.push(rgb.to_vec())
    })
    .expect("decode");
    decode_mp4(&streamed_dir.path().join("walk.mp4"), |f, rgb| {
        assert!(whole_frames[f] == rgb, "video frame {f} differs");
    })
    .expect("decode");

    // Streaming holds one chunk of latents and images instead of the whole walk.
    eprintln!(
        "peak tensor memory: streamed {} KiB, whole {} KiB",
        streamed_mem.peak_bytes >> 10,
        whole_mem.peak_bytes >> 10
    );
    assert!(
        streamed_mem.peak_bytes * 2 < whole_mem.peak_bytes,
        "peak tensor memory: streamed {} B, whole {} B",
        streamed_mem.peak_bytes,
        whole_mem.peak_bytes
    );
}

#[test]
fn cancelling_a_streamed_video_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 800 frames in chunks of 4: far more than the time before the cancel allows.
    let g = walk_graph(dir.path(), 200, 4);
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let options = RunOptions {
        cancel,
        on_event: Some(Arc::new(move |e: &Event| {
            if let Event::NodeProgress { node, fraction, .. } = e {
                if node == "video" && *fraction > 0.02 {
                    trigger.cancel();
                }
            }
        })),
    };
    let session = Session::new(Arc::new(host()), SessionConfig::default());
    let r = session.run(&g, &options).expect("run");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(!dir.path().join("walk.mp4").exists());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "img")
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    // Some frames were written as images before the cancel: the stream had started.
    assert!(dir.path().join("img/000.png").exists());
}

#[test]
fn the_example_video_graph_is_valid_and_streams() {
    let host = host();
    let g = Graph::load(&workspace_root().join("graphs/video.ron")).expect("graph");
    let problems = validate(&g, &host);
    assert!(problems.is_empty(), "{problems:#?}");
    let walk = host.node_type("latent.interpolate").expect("interpolate");
    assert!(walk.stream_output().is_some());
    let video = host.node_type("io.save_video").expect("save_video");
    assert!(video.has_stream_input());
    let interpolate = Graph::load(&workspace_root().join("graphs/interpolate.ron")).expect("graph");
    assert!(validate(&interpolate, &host).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Long streams of small synthetic frames (`test.stream_count` with `image_size`): item `i` is a
// grey 16 x 16 image of level `17 * (i mod 16)`.

const SIZE: usize = 16;
/// Bytes of one float32 image of the test stream.
const IMAGE_BYTES: usize = 3 * SIZE * SIZE * 4;

fn count_host() -> PluginHost {
    let mut host = PluginHost::new();
    for lib in ["sgtest_faulty", "stylegraph_plugin_io"] {
        host.load_file(&plugin_library(lib))
            .unwrap_or_else(|e| panic!("loading {lib}: {e}"));
    }
    host
}

/// `items` grey frames in chunks of `chunk_items` into `io.save_video` at `video`; `extra` adds
/// params to the producer (`fail_at_chunk`, ...) and `video_params` to the writer.
fn count_graph(
    video: &Path,
    items: usize,
    chunk_items: usize,
    extra: &str,
    video_params: &str,
) -> Graph {
    Graph::from_ron_str(
        &format!(
            r#"(version: 1, nodes: [
                (id: "frames", type: "test.stream_count",
                    params: {{"items": {items}, "chunk_items": {chunk_items}, "image_size": {SIZE} {extra}}}),
                (id: "video", type: "io.save_video",
                    params: {{"path": "{path}", "fps": 25.0, "quality": 90 {video_params}}},
                    inputs: {{"frames": "frames.values"}}),
            ])"#,
            path = ron_path(video),
        ),
        "<test>",
    )
    .expect("graph")
}

/// Runs a graph in a fresh session; the report and the peak tensor memory of the run.
fn run_metered(g: &Graph, options: &RunOptions) -> (RunReport, TensorMemory) {
    let session = Session::new(Arc::new(count_host()), SessionConfig::default());
    session.reset_tensor_peak();
    let r = session.run(g, options).expect("run");
    (r, session.tensor_memory())
}

/// Names in `dir` other than `keep`: what a run left behind.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Frames of an animated PNG as its `acTL` chunk says, and the `fcTL` chunks actually present.
fn apng_frames(path: &Path) -> (u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("open apng"),
    ));
    let reader = decoder.read_info().expect("apng header");
    let declared = reader
        .info()
        .animation_control()
        .expect("an animated PNG")
        .num_frames;
    // Count the frame control chunks in the bytes (the decoder checks their CRCs above only
    // for what it reads).
    let bytes = std::fs::read(path).expect("read apng");
    let present = bytes.windows(4).filter(|w| *w == b"fcTL").count();
    (declared, present)
}

/// Frames of a GIF, decoded.
fn gif_frames(path: &Path) -> usize {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(path).expect("open gif"))
        .expect("gif header");
    let mut n = 0;
    while decoder.read_next_frame().expect("gif frame").is_some() {
        n += 1;
    }
    n
}

#[test]
fn a_long_stream_is_encoded_completely_in_the_memory_of_one_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    const CHUNK: usize = 16;
    let mut peaks = Vec::new();
    for items in [96usize, 480] {
        let path = dir.path().join(format!("long{items}.mp4"));
        let (r, memory) = run_metered(
            &count_graph(&path, items, CHUNK, "", ""),
            &RunOptions::default(),
        );
        assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
        assert!(
            matches!(r.output("video", "frames"), Some(Value::Int(n)) if *n == items as i64),
            "{:?}",
            r.output("video", "frames")
        );
        // Every frame is in the file, in order: frame f is grey level 17 * (f mod 16).
        let (frames, w, h) = decode_mp4(&path, |f, rgb| {
            let mean = rgb.iter().map(|&v| v as f64).sum::<f64>() / rgb.len() as f64;
            let want = 17.0 * (f % 16) as f64;
            assert!(
                (mean - want).abs() < 4.0,
                "frame {f}: mean level {mean:.1}, expected {want}"
            );
        })
        .expect("decode");
        assert_eq!((frames, w, h), (items, SIZE, SIZE));
        peaks.push(memory.peak_bytes);
    }
    // The same stream as one chunk holds every frame at once: the meter sees it.
    let whole = dir.path().join("whole.mp4");
    let (r, whole_memory) = run_metered(
        &count_graph(&whole, 480, 480, "", ""),
        &RunOptions::default(),
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);

    eprintln!(
        "peak tensor memory: 96 frames {} B, 480 frames {} B (chunks of {CHUNK}), 480 in one chunk {} B",
        peaks[0], peaks[1], whole_memory.peak_bytes
    );
    let chunk_bytes = CHUNK * IMAGE_BYTES;
    assert!(whole_memory.peak_bytes >= 480 * IMAGE_BYTES);
    // Five times the frames, the same peak: about one chunk, not the sequence.
    assert!(
        peaks[1] <= peaks[0],
        "the peak grew with the frame count: {peaks:?}"
    );
    assert!(
        peaks[1] < 2 * chunk_bytes,
        "peak {} B for chunks of {chunk_bytes} B",
        peaks[1]
    );
    assert!(
        peaks[1] >= chunk_bytes,
        "the meter missed the chunks: {peaks:?}"
    );
    assert_eq!(
        leftovers(dir.path(), &["long96.mp4", "long480.mp4", "whole.mp4"]),
        Vec::<String>::new()
    );
}

#[test]
fn gif_and_apng_are_written_from_a_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 frames in chunks of 16: 7 chunks, the last one of 4.
    let gif = dir.path().join("s.gif");
    let (r, _) = run_metered(&count_graph(&gif, 100, 16, "", ""), &RunOptions::default());
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(gif_frames(&gif), 100);
    // APNG writes the frame count first: the stream's announced length gives it.
    let apng = dir.path().join("s.png");
    let (r, _) = run_metered(&count_graph(&apng, 100, 16, "", ""), &RunOptions::default());
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(apng_frames(&apng), (100, 100));
    // 2 x 1 grid: 50 frames.
    let grid = dir.path().join("g.png");
    let (r, _) = run_metered(
        &count_graph(&grid, 100, 16, "", r#", "grid_cols": 2"#),
        &RunOptions::default(),
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(apng_frames(&grid), (50, 50));
    // A stream that does not say its length cannot be an APNG, and nothing is written.
    let unknown = dir.path().join("u.png");
    let (r, _) = run_metered(
        &count_graph(&unknown, 40, 16, r#", "report_total": false"#, ""),
        &RunOptions::default(),
    );
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed
            .iter()
            .any(|(_, m)| m.contains("did not say how long")),
        "{:?}",
        r.failed
    );
    // ... but it can be an MP4.
    let unknown_mp4 = dir.path().join("u.mp4");
    let (r, _) = run_metered(
        &count_graph(&unknown_mp4, 40, 16, r#", "report_total": false"#, ""),
        &RunOptions::default(),
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(decode_mp4(&unknown_mp4, |_, _| {}).expect("decode").0, 40);
    assert_eq!(
        leftovers(dir.path(), &["s.gif", "s.png", "g.png", "u.mp4"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_failure_mid_stream_leaves_no_video_and_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["f.mp4", "f.gif", "f.png"] {
        let path = dir.path().join(name);
        // The producer fails at chunk 5, after 80 frames were encoded.
        let (r, _) = run_metered(
            &count_graph(&path, 200, 16, r#", "fail_at_chunk": 5"#, ""),
            &RunOptions::default(),
        );
        assert_eq!(r.status, RunStatus::Failed, "{name}");
        assert!(
            r.failed
                .iter()
                .any(|(_, m)| m.contains("deliberate failure at chunk 5")),
            "{name}: {:?}",
            r.failed
        );
        assert!(!path.exists(), "{name}");
        // The writer itself fails as the stream ends: 33 images do not fill frames of 2.
        let (r, _) = run_metered(
            &count_graph(&path, 33, 8, "", r#", "grid_cols": 2"#),
            &RunOptions::default(),
        );
        assert_eq!(r.status, RunStatus::Failed, "{name}");
        assert!(
            r.failed
                .iter()
                .any(|(_, m)| m.contains("33 images cannot fill")),
            "{name}: {:?}",
            r.failed
        );
        assert!(!path.exists(), "{name}");
    }
    assert_eq!(leftovers(dir.path(), &[]), Vec::<String>::new());
}

#[test]
fn cancelling_a_long_stream_leaves_no_video_and_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["c.mp4", "c.gif", "c.png"] {
        let path = dir.path().join(name);
        let cancel = CancelToken::new();
        let trigger = cancel.clone();
        let options = RunOptions {
            cancel,
            on_event: Some(Arc::new(move |e: &Event| {
                if let Event::NodeProgress { node, fraction, .. } = e {
                    if node == "video" && *fraction > 0.1 {
                        trigger.cancel();
                    }
                }
            })),
        };
        // 1000 frames, 10 ms per chunk of 10: the cancel comes after about 100.
        let (r, _) = run_metered(
            &count_graph(&path, 1000, 10, r#", "delay_ms": 10"#, ""),
            &options,
        );
        assert_eq!(r.status, RunStatus::Cancelled, "{name}: {:?}", r.failed);
        assert!(!path.exists(), "{name}");
    }
    assert_eq!(leftovers(dir.path(), &[]), Vec::<String>::new());
}
