//! The io nodes wired in graphs and run in-process by the real executor.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{
    CancelToken, RunOptions, RunReport, RunStatus, Session, SessionConfig,
};
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::value::Value;
use stylegraph_plugin_io::files::{encode_image, write_atomic, ImageFormat};
use stylegraph_plugin_io::video::decode_mp4;

fn session() -> Session {
    let mut host = PluginHost::new();
    host.register_entry(
        stylegraph_plugin_io::stylegraph_plugin_entry,
        Path::new("<builtin>"),
    )
    .unwrap();
    Session::new(Arc::new(host), SessionConfig::default())
}

fn run_with(ron: &str, options: &RunOptions) -> RunReport {
    let graph = Graph::from_ron_str(ron, "<test>").unwrap_or_else(|e| panic!("{e}"));
    session()
        .run(&graph, options)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(ron: &str) -> RunReport {
    run_with(ron, &RunOptions::default())
}

fn ron_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

/// Writes a `w` x `h` PNG whose pixel (x, y) is (x*5+k, y*10, 100): `k` tells frames apart.
fn write_png(path: &Path, w: usize, h: usize, k: u8) -> Vec<u8> {
    let px: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x * 5 + k as usize) as u8, (y * 10) as u8, 100]))
        .collect();
    write_atomic(
        path,
        &encode_image(ImageFormat::Png, &px, w, h, 3, 90).unwrap(),
    )
    .unwrap();
    px
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

#[test]
fn load_grid_label_save_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.png");
    let px = write_png(&src, 16, 12, 0);
    let out_tpl = dir.path().join("out/grid_{index:03}.png");
    let r = run(&format!(
        r##"(version: 1, nodes: [
            (id: "load", type: "io.load_image", params: {{"path": "{src}"}}),
            (id: "grid", type: "io.grid", params: {{"cols": 2, "leading_blank": 1, "padding": 2,
                "background": "#ffffff", "labels": "85", "label_scale": 1}},
                inputs: {{"images": "load.image"}}),
            (id: "save", type: "io.save_image", params: {{"path": "{out}"}}, inputs: {{"image": "grid.image"}}),
        ])"##,
        src = ron_path(&src),
        out = ron_path(&out_tpl)
    ));
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    // load_image: exact pixels, official inverse mapping.
    let (shape, img) = tensor(&r, "load", "image");
    assert_eq!(shape, vec![1, 3, 12, 16]);
    assert_eq!(img[1], (5.0f32 / 127.5 - 1.0) as f64);
    // Grid: 2 columns, first blank (white), image in the second cell after 2 px padding.
    let (shape, _) = tensor(&r, "grid", "image");
    assert_eq!(shape, vec![1, 3, 12, 34]);
    let written = dir.path().join("out/grid_000.png");
    match r.output("save", "paths") {
        Some(Value::Str(s)) => assert_eq!(&**s, written.to_str().unwrap()),
        other => panic!("{other:?}"),
    }
    let back = image::open(&written).unwrap().to_rgb8();
    assert_eq!(back.dimensions(), (34, 12));
    // Blank cell and padding are the background; the image cell holds the source pixels
    // except where the label box is drawn (top-left, "85" at scale 1 = 11x7 + margins).
    assert_eq!(back.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(back.get_pixel(17, 11).0, [255, 255, 255]);
    assert_eq!(back.get_pixel(18, 0).0, [0, 0, 0], "label box");
    assert_eq!(
        back.get_pixel(18 + 1 + 1, 1).0,
        [255, 255, 255],
        "glyph pixel of '8'"
    );
    for (x, y) in [(15usize, 11usize), (14, 10), (3, 11)] {
        let i = (y * 16 + x) * 3;
        assert_eq!(
            back.get_pixel(18 + x as u32, y as u32).0,
            [px[i], px[i + 1], px[i + 2]]
        );
    }
}

#[test]
fn preview_emits_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.png");
    write_png(&src, 8, 6, 0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = RunOptions {
        cancel: CancelToken::new(),
        on_event: Some(Arc::new(move |e: &Event| {
            if let Event::Preview {
                node, label, shape, ..
            } = e
            {
                sink.lock()
                    .unwrap()
                    .push((node.clone(), label.clone(), shape.clone()));
            }
        })),
    };
    let r = run_with(
        &format!(
            r#"(version: 1, nodes: [
                (id: "load", type: "io.load_image", params: {{"path": "{}"}}),
                (id: "show", type: "io.preview", params: {{"label": "input"}}, inputs: {{"image": "load.image"}}),
            ])"#,
            ron_path(&src)
        ),
        &options,
    );
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("show".to_string(), "input".to_string(), vec![1i64, 3, 6, 8])]
    );
    assert_eq!(tensor(&r, "show", "image"), tensor(&r, "load", "image"));
}

/// Writes `n` PNG frames into `dir`.
fn frames_dir(dir: &Path, n: usize) -> (PathBuf, Vec<Vec<u8>>) {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let px = (0..n)
        .map(|f| write_png(&frames.join(format!("f{f:04}.png")), 32, 16, (f * 9) as u8))
        .collect();
    (frames, px)
}

#[test]
fn video_from_a_frames_dir_in_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, px) = frames_dir(dir.path(), 8);
    let out = dir.path().join("v.mp4");
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "v", type: "io.save_video", params: {{"path": "{}", "frames_dir": "{}",
                "grid_cols": 2, "fps": 30.0, "quality": 95}}),
        ])"#,
        ron_path(&out),
        ron_path(&frames)
    ));
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert!(matches!(r.output("v", "frames"), Some(Value::Int(4))));
    // 8 images, 2 per frame side by side: 4 frames of 64x16; frame f = images 2f, 2f+1.
    let (count, w, h) = decode_mp4(&out, |f, rgb| {
        let mut sq = 0.0f64;
        for y in 0..16 {
            for x in 0..64 {
                let (img, sx) = (2 * f + x / 32, x % 32);
                let want = &px[img][(y * 32 + sx) * 3..(y * 32 + sx) * 3 + 3];
                let got = &rgb[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
                for c in 0..3 {
                    sq += (want[c] as f64 - got[c] as f64).powi(2);
                }
            }
        }
        let psnr = 10.0 * (255.0f64.powi(2) / (sq / (64.0 * 16.0 * 3.0)).max(1e-9)).log10();
        assert!(psnr > 32.0, "frame {f}: {psnr:.1} dB");
    })
    .unwrap();
    assert_eq!((count, w, h), (4, 64, 16));
}

#[test]
fn save_video_errors_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    // No frames at all.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [(id: "v", type: "io.save_video", params: {{"path": "{}", "frames_dir": "{}"}})])"#,
        ron_path(&dir.path().join("z.mp4")),
        ron_path(&empty)
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.failed[0].1.contains("zero frames"), "{:?}", r.failed);
    // Neither source.
    let r = run(r#"(version: 1, nodes: [(id: "v", type: "io.save_video")])"#);
    assert!(r.failed[0].1.contains("no frames"), "{:?}", r.failed);
    // Images that do not fill whole grid frames.
    let (frames, _) = frames_dir(dir.path(), 3);
    let r = run(&format!(
        r#"(version: 1, nodes: [(id: "v", type: "io.save_video", params: {{"path": "{}", "frames_dir": "{}", "grid_cols": 2}})])"#,
        ron_path(&dir.path().join("g.gif")),
        ron_path(&frames)
    ));
    assert!(
        r.failed[0].1.contains("3 images cannot fill"),
        "{:?}",
        r.failed
    );

    // Cancel while encoding: the run ends cancelled and no file (or temporary file) remains.
    let (many, _) = frames_dir(&dir.path().join("long"), 60);
    let out = dir.path().join("cancelled.gif");
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let options = RunOptions {
        cancel: cancel.clone(),
        on_event: Some(Arc::new(move |e: &Event| {
            if let Event::NodeProgress { fraction, .. } = e {
                if *fraction > 0.2 {
                    trigger.cancel();
                }
            }
        })),
    };
    let r = run_with(
        &format!(
            r#"(version: 1, nodes: [(id: "v", type: "io.save_video", params: {{"path": "{}", "frames_dir": "{}"}})])"#,
            ron_path(&out),
            ron_path(&many)
        ),
        &options,
    );
    assert_ne!(r.status, RunStatus::Finished);
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left");
}

#[test]
fn save_image_refuses_colliding_names_and_unwritable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.png");
    write_png(&src, 4, 4, 0);
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "load", type: "io.load_image", params: {{"path": "{}"}}),
            (id: "save", type: "io.save_image", params: {{"path": "{}"}}, inputs: {{"image": "load.image"}}),
        ])"#,
        ron_path(&src),
        ron_path(&blocker.join("x.png"))
    ));
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.failed[0].1.contains(&blocker.display().to_string()),
        "{:?}",
        r.failed
    );
    let r = run(&format!(
        r#"(version: 1, nodes: [
            (id: "load", type: "io.load_image", params: {{"path": "{}"}}),
            (id: "save", type: "io.save_image", params: {{"path": "{}"}}, inputs: {{"image": "load.image"}}),
        ])"#,
        ron_path(&src),
        ron_path(&dir.path().join("s{seed}.png"))
    ));
    assert!(r.failed[0].1.contains("no seeds"), "{:?}", r.failed);
}

#[test]
fn save_video_takes_an_ordinary_batch_as_one_chunk() {
    // The frames input is a stream input; an ordinary (non-streamed) value is one chunk that is
    // also the last, so a plain batch still makes a whole video.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("one.png");
    let px = write_png(&src, 32, 16, 7);
    for (port, name) in [("image", "a.png"), ("rgb", "b.png")] {
        let out = dir.path().join(name);
        let r = run(&format!(
            r#"(version: 1, nodes: [
                (id: "load", type: "io.load_image", params: {{"path": "{}"}}),
                (id: "v", type: "io.save_video", params: {{"path": "{}", "fps": 10.0}},
                    inputs: {{"frames": "load.{port}"}}),
            ])"#,
            ron_path(&src),
            ron_path(&out)
        ));
        assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
        assert!(matches!(r.output("v", "frames"), Some(Value::Int(1))));
        // APNG is lossless: the one frame is the source image.
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        assert_eq!(
            reader.info().animation_control().map(|a| a.num_frames),
            Some(1)
        );
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(&buf[..info.buffer_size()], &px[..], "{port}");
    }
}
