//! Video writing: MP4 (H.264), GIF and APNG, one frame at a time.
//!
//! # Encoder choice
//!
//! MP4/H.264 is written by a built-in encoder by default: Cisco's OpenH264 through the
//! `openh264` crate (maintained; it compiles OpenH264's C++ source with the system C++
//! compiler, so nothing is downloaded at build or run time), muxed into MP4 by the `mp4` crate.
//! It produces the same file on every machine, CI included, which is what the tests check.
//! A system `ffmpeg` (libx264, better compression per bit) can be chosen with
//! `encoder = ffmpeg`, or `auto` (ffmpeg when one is on the PATH, else built-in).
//! OpenH264 writes the constrained-baseline profile (no B-frames): files are somewhat larger
//! than x264's at equal quality, but play everywhere. GIF uses the `gif` crate (NeuQuant
//! palette per frame; at most 50 fps, as players treat shorter delays as 1/10 s), APNG the
//! `png` crate.
//!
//! # Streaming
//!
//! Every writer takes one RGB frame at a time and writes it out before the next: the MP4
//! muxer keeps only its sample tables (a few bytes per frame) and at most one second of
//! encoded samples, GIF and APNG write each frame as it comes. Memory therefore does not grow
//! with the number of frames. Output goes to a temporary file in the target folder that is
//! renamed when the video is complete; an error or a cancellation removes it.

use crate::error::{file_err, invalid, IoError, Result};
use crate::files::temp_path;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Container/codec of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFormat {
    Mp4,
    Gif,
    Apng,
}

impl VideoFormat {
    /// `mp4` | `gif` | `apng`, or `auto` = by extension (`.mp4`, `.gif`, `.png`/`.apng`).
    pub fn parse(s: &str, path: &Path) -> Result<VideoFormat> {
        let by_ext = || {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            match ext.as_str() {
                "mp4" | "m4v" => Ok(VideoFormat::Mp4),
                "gif" => Ok(VideoFormat::Gif),
                "png" | "apng" => Ok(VideoFormat::Apng),
                _ => invalid(format!(
                    "{}: cannot tell the video format from extension {ext:?} (mp4, gif, png/apng)",
                    path.display()
                )),
            }
        };
        match s {
            "auto" => by_ext(),
            "mp4" => Ok(VideoFormat::Mp4),
            "gif" => Ok(VideoFormat::Gif),
            "apng" => Ok(VideoFormat::Apng),
            _ => invalid(format!("unknown video format {s:?} (auto, mp4, gif, apng)")),
        }
    }
}

/// Which H.264 encoder writes MP4 files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H264Encoder {
    /// OpenH264, compiled in.
    Builtin,
    /// A system `ffmpeg` with libx264.
    Ffmpeg,
    /// ffmpeg when found on the PATH, else built-in.
    Auto,
}

impl H264Encoder {
    /// Parses `builtin` | `ffmpeg` | `auto`.
    pub fn parse(s: &str) -> Result<H264Encoder> {
        Ok(match s {
            "builtin" => H264Encoder::Builtin,
            "ffmpeg" => H264Encoder::Ffmpeg,
            "auto" => H264Encoder::Auto,
            _ => return invalid(format!("unknown encoder {s:?} (builtin, ffmpeg, auto)")),
        })
    }
}

/// How to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoOptions {
    pub format: VideoFormat,
    pub encoder: H264Encoder,
    /// Frames per second (> 0).
    pub fps: f64,
    /// H.264 target bit rate in kbit/s (the official video tool uses 12 Mbit/s).
    pub bitrate_kbps: u32,
    /// H.264 constant quality 1-100 instead of a bit rate (100 = best); `None` = bit rate.
    pub quality: Option<u8>,
    /// GIF/APNG plays: 0 = forever.
    pub loop_count: u16,
    /// Frames that will be written (APNG needs the count in its header).
    pub frame_count: usize,
}

/// A sink for RGB frames.
trait FrameSink: Send {
    fn push(&mut self, rgb: &[u8]) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Writes a video atomically, frame by frame. Dropping it before [`VideoWriter::finish`]
/// (an error, a cancellation) removes the partial file.
pub struct VideoWriter {
    target: PathBuf,
    tmp: PathBuf,
    sink: Option<Box<dyn FrameSink>>,
    width: usize,
    height: usize,
    frames: usize,
    /// Which encoder is writing, for logs ("openh264", "ffmpeg", "gif", "apng").
    pub encoder_name: &'static str,
}

impl VideoWriter {
    /// Starts a video of `width` x `height` RGB frames at `path`.
    pub fn create(
        path: &Path,
        width: usize,
        height: usize,
        opts: &VideoOptions,
    ) -> Result<VideoWriter> {
        if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 1000.0) {
            return invalid(format!("fps must be in (0, 1000], got {}", opts.fps));
        }
        if width == 0 || height == 0 {
            return invalid("video frames must not be empty");
        }
        let tmp = temp_path(path);
        let made = Self::make_sink(&tmp, width, height, opts).map_err(|e| retarget(e, &tmp, path));
        let (sink, name) = match made {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(VideoWriter {
            target: path.to_path_buf(),
            tmp,
            sink: Some(sink),
            width,
            height,
            frames: 0,
            encoder_name: name,
        })
    }

    fn make_sink(
        tmp: &Path,
        width: usize,
        height: usize,
        opts: &VideoOptions,
    ) -> Result<(Box<dyn FrameSink>, &'static str)> {
        let tmp = tmp.to_path_buf();
        Ok(match opts.format {
            VideoFormat::Mp4 => {
                if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
                    return invalid(format!(
                        "MP4 (H.264, 4:2:0) needs an even width and height, the frames are {width}x{height}"
                    ));
                }
                let use_ffmpeg = match opts.encoder {
                    H264Encoder::Builtin => None,
                    H264Encoder::Ffmpeg => Some(find_ffmpeg().ok_or_else(|| {
                        IoError::Invalid(
                            "encoder \"ffmpeg\" was chosen but no ffmpeg was found (set STYLEGRAPH_FFMPEG or put ffmpeg on the PATH)"
                                .into(),
                        )
                    })?),
                    H264Encoder::Auto => find_ffmpeg(),
                };
                match use_ffmpeg {
                    Some(exe) => (
                        Box::new(FfmpegSink::start(&exe, &tmp, width, height, opts)?),
                        "ffmpeg",
                    ),
                    None => (
                        Box::new(H264Sink::new(&tmp, width, height, opts)?),
                        "openh264",
                    ),
                }
            }
            VideoFormat::Gif => (Box::new(GifSink::new(&tmp, width, height, opts)?), "gif"),
            VideoFormat::Apng => (Box::new(ApngSink::new(&tmp, width, height, opts)?), "apng"),
        })
    }

    /// Appends one frame: `height * width * 3` bytes, RGB, row-major.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        if rgb.len() != self.width * self.height * 3 {
            return invalid(format!(
                "frame {} has {} bytes, expected {}x{}x3 = {}",
                self.frames,
                rgb.len(),
                self.width,
                self.height,
                self.width * self.height * 3
            ));
        }
        let sink = self
            .sink
            .as_mut()
            .ok_or_else(|| IoError::Invalid("the video is already finished".into()))?;
        sink.push(rgb)
            .map_err(|e| retarget(e, &self.tmp, &self.target))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Completes the file and moves it into place. On failure the partial file is removed.
    pub fn finish(mut self) -> Result<()> {
        if self.frames == 0 {
            return invalid("a video needs at least one frame");
        }
        let sink = self
            .sink
            .take()
            .ok_or_else(|| IoError::Invalid("the video is already finished".into()))?;
        // Once the sink is taken, Drop no longer cleans up: a failed close or rename must.
        let done = sink
            .finish()
            .map_err(|e| retarget(e, &self.tmp, &self.target))
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.target).map_err(file_err(&self.target))
            });
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            // Unfinished: close the encoder (an ffmpeg child must be reaped) and remove the
            // partial file.
            drop(sink);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Errors of the encoders name the temporary file they write; users should see the target.
fn retarget(e: IoError, tmp: &Path, target: &Path) -> IoError {
    let shown = tmp.display().to_string();
    match e {
        IoError::File { path, source } if path == shown => IoError::File {
            path: target.display().to_string(),
            source,
        },
        IoError::Video { path, message } if path == shown => IoError::Video {
            path: target.display().to_string(),
            message,
        },
        other => other,
    }
}

fn video_err(path: &Path) -> impl Fn(String) -> IoError + '_ {
    move |message| IoError::Video {
        path: path.display().to_string(),
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in H.264 (OpenH264) + MP4 muxer

/// The MP4 track timescale: 90 kHz, the usual video clock, divides the common rates exactly
/// (24, 25, 30, 50, 60 and 30000/1001 fps).
const TIMESCALE: u32 = 90_000;

struct H264Sink {
    path: PathBuf,
    encoder: openh264::encoder::Encoder,
    muxer: mp4::Mp4Writer<BufWriter<File>>,
    track_added: bool,
    width: usize,
    height: usize,
    planes: Vec<u8>,
    /// Frame duration in TIMESCALE ticks, and the frame index (for timestamps).
    tick: f64,
    index: u64,
    sample: Vec<u8>,
}

impl H264Sink {
    fn new(path: &Path, width: usize, height: usize, opts: &VideoOptions) -> Result<H264Sink> {
        use openh264::encoder::{
            BitRate, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode,
            UsageType, VuiConfig,
        };
        let err = video_err(path);
        if width.max(height) > 3840 || width.min(height) > 2160 {
            return Err(err(format!(
                "{width}x{height} is beyond H.264 level 5.2 (3840x2160); use a smaller grid or GIF/APNG"
            )));
        }
        // One key frame per two seconds keeps the file seekable.
        let gop = ((opts.fps * 2.0).round() as u32).max(1);
        let mut config = EncoderConfig::new()
            .skip_frames(false) // every frame must come out: frame counts are part of the contract
            .max_frame_rate(FrameRate::from_hz(opts.fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .intra_frame_period(IntraFramePeriod::from_num_frames(gop))
            .vui(VuiConfig::bt601())
            .num_threads(1);
        config = match opts.quality {
            Some(q) => {
                // Quality 100 -> QP 10 (near transparent), 1 -> QP 51 (smallest).
                let qp = (51.0 - (q.clamp(1, 100) as f64 - 1.0) * 41.0 / 99.0).round() as u8;
                config
                    .rate_control_mode(RateControlMode::Quality)
                    .bitrate(BitRate::from_bps(100_000_000))
                    .qp(QpRange::new(qp, qp))
            }
            None => config
                .rate_control_mode(RateControlMode::Bitrate)
                .bitrate(BitRate::from_bps(
                    opts.bitrate_kbps.max(1).saturating_mul(1000),
                )),
        };
        let api = openh264::OpenH264API::from_source();
        let encoder = openh264::encoder::Encoder::with_api_config(api, config)
            .map_err(|e| err(format!("cannot start OpenH264: {e}")))?;
        let file = File::create(path).map_err(file_err(path))?;
        let mp4_config = mp4::Mp4Config {
            major_brand: mp4::FourCC { value: *b"isom" },
            minor_version: 512,
            compatible_brands: [*b"isom", *b"iso2", *b"avc1", *b"mp41"]
                .into_iter()
                .map(|value| mp4::FourCC { value })
                .collect(),
            timescale: 1000,
        };
        let muxer = mp4::Mp4Writer::write_start(BufWriter::new(file), &mp4_config)
            .map_err(|e| err(e.to_string()))?;
        Ok(H264Sink {
            path: path.to_path_buf(),
            encoder,
            muxer,
            track_added: false,
            width,
            height,
            planes: vec![0; width * height * 3 / 2],
            tick: TIMESCALE as f64 / opts.fps,
            index: 0,
            sample: Vec::new(),
        })
    }
}

/// Converts RGB to 4:2:0 YUV planes (BT.601, limited range, as the stream's VUI says),
/// averaging each 2x2 block for the chroma. `planes` is `w*h + 2 * (w/2)*(h/2)` bytes.
pub fn rgb_to_i420(rgb: &[u8], width: usize, height: usize, planes: &mut [u8]) {
    let (y_plane, uv) = planes.split_at_mut(width * height);
    let (u_plane, v_plane) = uv.split_at_mut((width / 2) * (height / 2));
    for (y_out, px) in y_plane.iter_mut().zip(rgb.chunks_exact(3)) {
        let (r, g, b) = (px[0] as f32, px[1] as f32, px[2] as f32);
        *y_out = (16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    let cw = width / 2;
    for cy in 0..height / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let i = ((2 * cy + dy) * width + 2 * cx + dx) * 3;
                r += rgb[i] as f32;
                g += rgb[i + 1] as f32;
                b += rgb[i + 2] as f32;
            }
            let (r, g, b) = (r / 4.0, g / 4.0, b / 4.0);
            u_plane[cy * cw + cx] = (128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
            v_plane[cy * cw + cx] = (128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

/// Splits an Annex B byte stream into NAL units (without start codes).
pub fn annexb_nals(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        // A 4-byte start code leaves one zero byte before the 3-byte one; trailing zeros are
        // not part of a NAL unit.
        while end > s && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(&stream[s..end]);
        }
    }
    nals
}

impl FrameSink for H264Sink {
    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let err = video_err(&self.path);
        let (w, h) = (self.width, self.height);
        rgb_to_i420(rgb, w, h, &mut self.planes);
        let (y, uv) = self.planes.split_at(w * h);
        let (u, v) = uv.split_at((w / 2) * (h / 2));
        let source = openh264::formats::YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let bitstream = self
            .encoder
            .encode(&source)
            .map_err(|e| err(format!("frame {}: {e}", self.index)))?;
        let mut annexb = Vec::new();
        bitstream.write_vec(&mut annexb);
        let nals = annexb_nals(&annexb);
        let (mut sps, mut pps) = (None, None);
        let mut is_sync = false;
        self.sample.clear();
        for nal in &nals {
            match nal.first().map(|b| b & 0x1f) {
                Some(7) => sps = Some(nal.to_vec()),
                Some(8) => pps = Some(nal.to_vec()),
                Some(t) => {
                    is_sync |= t == 5;
                    let len =
                        u32::try_from(nal.len()).map_err(|_| err("NAL unit over 4 GiB".into()))?;
                    self.sample.extend_from_slice(&len.to_be_bytes());
                    self.sample.extend_from_slice(nal);
                }
                None => {}
            }
        }
        if self.sample.is_empty() {
            return Err(err(format!(
                "the encoder produced no picture for frame {}",
                self.index
            )));
        }
        if !self.track_added {
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Err(err("the first encoded frame carries no SPS/PPS".into()));
            };
            let avc = mp4::AvcConfig {
                width: w as u16,
                height: h as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            };
            let track = mp4::TrackConfig {
                track_type: mp4::TrackType::Video,
                timescale: TIMESCALE,
                language: "und".into(),
                media_conf: mp4::MediaConfig::AvcConfig(avc),
            };
            self.muxer
                .add_track(&track)
                .map_err(|e| err(e.to_string()))?;
            self.track_added = true;
        }
        // Durations from rounded absolute times, so a non-integer tick does not drift.
        let start = (self.index as f64 * self.tick).round() as u64;
        let end = ((self.index + 1) as f64 * self.tick).round() as u64;
        let sample = mp4::Mp4Sample {
            start_time: start,
            duration: (end - start) as u32,
            rendering_offset: 0,
            is_sync,
            bytes: bytes::Bytes::copy_from_slice(&self.sample),
        };
        self.muxer
            .write_sample(1, &sample)
            .map_err(|e| err(e.to_string()))?;
        self.index += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let err = video_err(&self.path);
        self.muxer.write_end().map_err(|e| err(e.to_string()))?;
        let mut writer = self.muxer.into_writer();
        writer.flush().map_err(file_err(&self.path))?;
        let file = writer.into_inner().map_err(|e| err(e.to_string()))?;
        file.sync_all().map_err(file_err(&self.path))?;
        Ok(())
    }
}

/// Decodes every frame of an MP4 written with H.264 (as [`VideoWriter`] writes them) to RGB,
/// calling `frame(index, rgb)` for each. Returns `(frames, width, height)`. Used to verify
/// written videos; frames are decoded one at a time.
pub fn decode_mp4(
    path: &Path,
    mut frame: impl FnMut(usize, &[u8]),
) -> Result<(usize, usize, usize)> {
    let err = video_err(path);
    let file = File::open(path).map_err(file_err(path))?;
    let size = file.metadata().map_err(file_err(path))?.len();
    let mut reader = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size)
        .map_err(|e| err(e.to_string()))?;
    let (track_id, sps, pps, width, height) = {
        let (id, track) = reader
            .tracks()
            .iter()
            .find(|(_, t)| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
            .ok_or_else(|| err("no video track".into()))?;
        let sps = track
            .sequence_parameter_set()
            .map_err(|e| err(e.to_string()))?
            .to_vec();
        let pps = track
            .picture_parameter_set()
            .map_err(|e| err(e.to_string()))?
            .to_vec();
        (
            *id,
            sps,
            pps,
            track.width() as usize,
            track.height() as usize,
        )
    };
    let count = reader
        .sample_count(track_id)
        .map_err(|e| err(e.to_string()))?;
    let mut decoder = openh264::decoder::Decoder::new().map_err(|e| err(e.to_string()))?;
    let mut rgb = vec![0u8; width * height * 3];
    let mut decoded = 0usize;
    let mut packet = Vec::new();
    for sample_id in 1..=count {
        let sample = reader
            .read_sample(track_id, sample_id)
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err(format!("sample {sample_id} is missing")))?;
        packet.clear();
        if sample_id == 1 {
            for ps in [&sps, &pps] {
                packet.extend_from_slice(&[0, 0, 0, 1]);
                packet.extend_from_slice(ps);
            }
        }
        let mut data: &[u8] = &sample.bytes;
        while data.len() >= 4 {
            let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            let nal = data.get(4..4 + len).ok_or_else(|| {
                err(format!(
                    "sample {sample_id}: NAL length {len} runs past the sample"
                ))
            })?;
            packet.extend_from_slice(&[0, 0, 0, 1]);
            packet.extend_from_slice(nal);
            data = &data[4 + len..];
        }
        let picture = decoder
            .decode(&packet)
            .map_err(|e| err(format!("sample {sample_id}: {e}")))?;
        if let Some(yuv) = picture {
            use openh264::formats::YUVSource;
            if yuv.dimensions() != (width, height) {
                return Err(err(format!(
                    "sample {sample_id} decodes to {:?}, the track says {width}x{height}",
                    yuv.dimensions()
                )));
            }
            yuv.write_rgb8(&mut rgb);
            frame(decoded, &rgb);
            decoded += 1;
        }
    }
    for yuv in decoder.flush_remaining().map_err(|e| err(e.to_string()))? {
        yuv.write_rgb8(&mut rgb);
        frame(decoded, &rgb);
        decoded += 1;
    }
    Ok((decoded, width, height))
}

// ---------------------------------------------------------------------------------------------
// System ffmpeg

/// The ffmpeg to use: `$STYLEGRAPH_FFMPEG`, else `ffmpeg` on the PATH, if it runs.
pub fn find_ffmpeg() -> Option<PathBuf> {
    let candidate = std::env::var_os("STYLEGRAPH_FFMPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ffmpeg"));
    let ok = Command::new(&candidate)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(candidate)
}

struct FfmpegSink {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl FfmpegSink {
    fn start(
        exe: &Path,
        path: &Path,
        width: usize,
        height: usize,
        opts: &VideoOptions,
    ) -> Result<FfmpegSink> {
        let mut cmd = Command::new(exe);
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args([
            "-s",
            &format!("{width}x{height}"),
            "-r",
            &format!("{}", opts.fps),
        ])
        .args(["-i", "-", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p"]);
        match opts.quality {
            // CRF 51 (worst) .. 10 (best), the same mapping as the built-in QP.
            Some(q) => {
                let crf = (51.0 - (q.clamp(1, 100) as f64 - 1.0) * 41.0 / 99.0).round();
                cmd.args(["-crf", &format!("{crf}")]);
            }
            None => {
                cmd.args(["-b:v", &format!("{}k", opts.bitrate_kbps.max(1))]);
            }
        }
        cmd.args(["-movflags", "+faststart", "-f", "mp4"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| video_err(path)(format!("cannot start {}: {e}", exe.display())))?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().map(|mut s| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                text
            })
        });
        tracing::debug!(exe = %exe.display(), "encoding with ffmpeg");
        Ok(FfmpegSink {
            path: path.to_path_buf(),
            child,
            stdin,
            stderr,
        })
    }

    fn wait(&mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(file_err(&self.path))?;
        let log = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if !status.success() {
            return Err(video_err(&self.path)(format!(
                "ffmpeg failed ({status}): {}",
                log.trim()
            )));
        }
        Ok(())
    }
}

impl FrameSink for FfmpegSink {
    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(rgb),
            None => return invalid("ffmpeg input is closed"),
        };
        if let Err(e) = result {
            // ffmpeg exited early: report its own message.
            self.wait()?;
            return Err(video_err(&self.path)(format!("writing to ffmpeg: {e}")));
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.wait()
    }
}

impl Drop for FfmpegSink {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Abandoned (error or cancel): stop ffmpeg rather than let it finish the file.
            let _ = self.child.kill();
            drop(self.stdin.take());
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GIF and APNG

struct GifSink {
    path: PathBuf,
    encoder: Option<gif::Encoder<BufWriter<File>>>,
    width: u16,
    height: u16,
    /// Frame delays in centiseconds, from rounded absolute times.
    centis_per_frame: f64,
    index: u64,
}

impl GifSink {
    fn new(path: &Path, width: usize, height: usize, opts: &VideoOptions) -> Result<GifSink> {
        let err = video_err(path);
        let (w, h) = (
            u16::try_from(width)
                .map_err(|_| err(format!("GIF frames are at most 65535 wide, got {width}")))?,
            u16::try_from(height)
                .map_err(|_| err(format!("GIF frames are at most 65535 tall, got {height}")))?,
        );
        let file = File::create(path).map_err(file_err(path))?;
        let mut encoder =
            gif::Encoder::new(BufWriter::new(file), w, h, &[]).map_err(|e| err(e.to_string()))?;
        let repeat = match opts.loop_count {
            0 => gif::Repeat::Infinite,
            n => gif::Repeat::Finite(n),
        };
        encoder.set_repeat(repeat).map_err(|e| err(e.to_string()))?;
        Ok(GifSink {
            path: path.to_path_buf(),
            encoder: Some(encoder),
            width: w,
            height: h,
            centis_per_frame: 100.0 / opts.fps,
            index: 0,
        })
    }
}

impl FrameSink for GifSink {
    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        // NeuQuant sampling factor 3 (1 = every pixel): about 1 dB below the best palette at
        // a third of its cost.
        let mut frame = gif::Frame::from_rgb_speed(self.width, self.height, rgb, 3);
        let t0 = (self.index as f64 * self.centis_per_frame).round() as u64;
        let t1 = ((self.index + 1) as f64 * self.centis_per_frame).round() as u64;
        // GIF delays are whole centiseconds; rounding absolute times keeps the average rate.
        // Browsers and players show delays under 2 cs as 10 cs, so GIFs play at most at
        // 50 fps: faster rates become 2 cs per frame (a slower video, but an even one).
        frame.delay = (t1 - t0).clamp(2, u16::MAX as u64) as u16;
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| IoError::Invalid("GIF closed".into()))?;
        encoder
            .write_frame(&frame)
            .map_err(|e| video_err(&self.path)(e.to_string()))?;
        self.index += 1;
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| IoError::Invalid("GIF closed".into()))?;
        let writer = encoder
            .into_inner()
            .map_err(|e| video_err(&self.path)(e.to_string()))?;
        let file = writer
            .into_inner()
            .map_err(|e| video_err(&self.path)(e.to_string()))?;
        file.sync_all().map_err(file_err(&self.path))
    }
}

struct ApngSink {
    path: PathBuf,
    writer: Option<png::Writer<BufWriter<File>>>,
}

impl ApngSink {
    fn new(path: &Path, width: usize, height: usize, opts: &VideoOptions) -> Result<ApngSink> {
        let err = video_err(path);
        if opts.frame_count == 0 {
            return invalid("an APNG needs at least one frame");
        }
        let frames =
            u32::try_from(opts.frame_count).map_err(|_| err("too many frames for APNG".into()))?;
        let (w, h) = (
            u32::try_from(width).map_err(|_| err("frame too wide".into()))?,
            u32::try_from(height).map_err(|_| err("frame too tall".into()))?,
        );
        let file = File::create(path).map_err(file_err(path))?;
        let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames, opts.loop_count as u32)
            .map_err(|e| err(e.to_string()))?;
        // Frame delay as a fraction of a second: 1/fps for whole rates, else to 1/1000 s.
        let (num, den) = if opts.fps.fract() == 0.0 && opts.fps <= 65535.0 {
            (1u16, opts.fps as u16)
        } else {
            (
                (1000.0 / opts.fps).round().clamp(1.0, 65535.0) as u16,
                1000u16,
            )
        };
        enc.set_frame_delay(num, den)
            .map_err(|e| err(e.to_string()))?;
        let writer = enc.write_header().map_err(|e| err(e.to_string()))?;
        Ok(ApngSink {
            path: path.to_path_buf(),
            writer: Some(writer),
        })
    }
}

impl FrameSink for ApngSink {
    fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| IoError::Invalid("APNG closed".into()))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| video_err(&self.path)(e.to_string()))
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| IoError::Invalid("APNG closed".into()))?;
        writer
            .finish()
            .map_err(|e| video_err(&self.path)(e.to_string()))?;
        // The png writer flushes on finish; reopen to fsync.
        File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(file_err(&self.path))
    }
}
