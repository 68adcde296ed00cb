//! The encoders stream: writing many frames does not hold them (raw, converted or encoded)
//! in memory. A test binary of its own, so that the process's peak memory is this test's.

use stylegraph_plugin_io::video::{H264Encoder, VideoFormat, VideoOptions, VideoWriter};

/// Peak resident memory of this process (VmHWM), in bytes. Linux only.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn memory_does_not_grow_with_the_frame_count() {
    let (w, h) = (256, 256);
    let frames = 320;
    let raw_total = (w * h * 3 * frames) as u64; // 63 MB of RGB frames
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [("s.mp4", VideoFormat::Mp4), ("s.png", VideoFormat::Apng)] {
        let opts = VideoOptions {
            format,
            encoder: H264Encoder::Builtin,
            fps: 60.0,
            bitrate_kbps: 2000,
            quality: None,
            loop_count: 0,
            frame_count: frames,
        };
        let path = dir.path().join(name);
        let mut writer = VideoWriter::create(&path, w, h, &opts).unwrap();
        let mut rgb = vec![0u8; w * h * 3];
        let Some(before) = peak_rss() else {
            eprintln!("no /proc/self/status: memory not measured on this platform");
            return;
        };
        for f in 0..frames {
            // A new frame each time, made in place: the test itself holds one frame.
            for (i, v) in rgb.iter_mut().enumerate() {
                let (px, ch) = (i / 3, i % 3);
                let (x, y) = (px % w, px / w);
                *v = (x * (ch + 1) + y * 3 + f * 7) as u8;
            }
            writer.push(&rgb).unwrap();
        }
        writer.finish().unwrap();
        let grown = peak_rss().unwrap_or(before).saturating_sub(before);
        // Buffering the frames (or their YUV conversions) would add >= 31 MB; a streaming
        // encoder needs a few frames' worth.
        assert!(
            grown < raw_total / 4,
            "{name}: peak memory grew by {} MB while writing {} MB of frames",
            grown >> 20,
            raw_total >> 20
        );
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }
}
