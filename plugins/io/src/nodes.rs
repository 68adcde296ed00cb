//! The node types of the `io` plugin.

use crate::error::IoError;
use crate::files::{self, Fit, ImageFormat, LoadOptions, NameVars};
use crate::grid::{self, GridSpec};
use crate::pixels::{self, Pixels};
use crate::video::{H264Encoder, VideoFormat, VideoOptions, VideoWriter};
use std::path::{Path, PathBuf};
use stylegraph_abi::prelude::*;

const CAT: &str = "Image & video";

fn node_err(e: IoError) -> NodeError {
    match e {
        IoError::Cancelled => NodeError::cancelled(),
        IoError::Invalid(m) => NodeError::invalid(m),
        other => NodeError::new(other),
    }
}

fn at(what: &str) -> impl Fn(IoError) -> NodeError + '_ {
    move |e| match e {
        IoError::Invalid(m) => NodeError::invalid(format!("{what}: {m}")),
        other => node_err(other),
    }
}

/// Reads an image input: float32 `[N, C, H, W]` or 8-bit `[N, H, W, C]`.
fn input_pixels<'a>(ctx: &Context<'a>, port: &str) -> Result<Pixels<'a>, NodeError> {
    let t = ctx.input_tensor(port)?;
    let what = format!("input {port:?}");
    if t.dtype() == SgDType::U8 {
        Pixels::bytes(t.as_u8()?, t.shape(), &what).map_err(node_err)
    } else if t.dtype() == SgDType::F32 {
        Pixels::float(t.as_f32()?, t.shape(), &what).map_err(node_err)
    } else {
        Err(NodeError::invalid(format!(
            "{what}: images must be float32 [N, C, H, W] or uint8 [N, H, W, C], got {}",
            t.dtype().name()
        )))
    }
}

fn non_negative(ctx: &Context<'_>, name: &str) -> Result<usize, NodeError> {
    let v = ctx.param_i64(name)?;
    usize::try_from(v)
        .map_err(|_| NodeError::invalid(format!("param {name:?} must be >= 0, got {v}")))
}

/// Optional per-image numbers (seeds) from a tensor input.
fn input_numbers(ctx: &Context<'_>, port: &str, n: usize) -> Result<Option<Vec<f64>>, NodeError> {
    if !ctx.has_input(port) {
        return Ok(None);
    }
    let v = ctx.input_tensor(port)?.to_f64_vec()?;
    if v.len() != n && v.len() != 1 {
        node_bail!("input {port:?} has {} values for {n} images", v.len());
    }
    Ok(Some(if v.len() == 1 { vec![v[0]; n] } else { v }))
}

fn number_label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

// ---------------------------------------------------------------------------------------------

/// `io.save_image`: PNG / JPEG / WebP files from an image batch.
#[derive(Default)]
pub struct SaveImage {
    /// Inside a stream: images written by the earlier chunks of the sequence, and the last
    /// file name (so `{index}` and `{frame}` count through the whole sequence).
    seen: usize,
    last_path: Option<PathBuf>,
}

impl Node for SaveImage {
    fn spec() -> NodeSpec {
        NodeSpec::new("io.save_image", "Save image")
            .category(CAT)
            .doc(
                "Writes each image of a batch to a file: PNG, JPEG or WebP (lossless), chosen by \
                 the extension. Float images are converted the official way \
                 (`clamp(x * 127.5 + 128, 0, 255)`, truncated), so a PNG matches \
                 `gen_images.py`'s pixel for pixel.\n\n\
                 The path is a template: `{seed}`, `{index}` (position in the batch) and \
                 `{frame}` (`first_frame + index`), with optional zero padding as in \
                 `out/seed{seed:04}.png`. `{seed}` needs the `seeds` input (e.g. from \
                 `latent.seeds`). Inside a stream (frames from a streamed \
                 `latent.interpolate`), `{index}` and `{frame}` count through the whole \
                 sequence, and `paths` lists the last chunk's files. Files are written \
                 atomically; folders are created.",
            )
            .side_effect()
            .input(
                "image",
                "Image",
                "[N, C, H, W] float in [-1, 1], or uint8 [N, H, W, C]",
            )
            .optional_input("seeds", "Tensor", "[N] seeds for `{seed}`")
            .output("paths", "string", "the files written, one per line")
            .output(
                "count",
                "int",
                "number of files written (in a stream: by the whole sequence)",
            )
            .param(
                ParamSpec::output_path("path", "out/image{index:04}.png").doc("file name template"),
            )
            .param(
                ParamSpec::int("quality", 95)
                    .range(1.0, 100.0)
                    .doc("JPEG quality"),
            )
            .param(
                ParamSpec::int("first_frame", 0)
                    .min(0.0)
                    .doc("`{frame}` of the first image"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveImage::default())
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let px = input_pixels(ctx, "image")?;
        let n = px.n();
        if n == 0 {
            node_bail!("input \"image\" holds no images");
        }
        // In a stream, positions continue from the earlier chunks of the sequence.
        if ctx.chunk().is_none_or(|c| c.index == 0) {
            self.seen = 0;
            self.last_path = None;
        }
        let base = self.seen;
        let template = ctx.param_str("path")?;
        let seeds = input_numbers(ctx, "seeds", n)?;
        let quality = ctx.param_i64("quality")?.clamp(1, 100) as u8;
        let first = non_negative(ctx, "first_frame")?;
        let mut paths = Vec::with_capacity(n);
        for i in 0..n {
            let vars = NameVars {
                seed: seeds.as_ref().map(|s| s[i] as i64),
                index: base + i,
                frame: first + base + i,
            };
            let p = files::fill_template(&template, &vars).map_err(at("param \"path\""))?;
            let earlier = paths
                .iter()
                .position(|q: &PathBuf| q.as_os_str() == p.as_str())
                .map(|j| base + j)
                .or_else(|| {
                    // Across chunks: a template without a position repeats at once.
                    (i == 0
                        && self
                            .last_path
                            .as_ref()
                            .is_some_and(|q| q.as_os_str() == p.as_str()))
                    .then(|| base - 1)
                });
            if let Some(j) = earlier {
                node_bail!(
                    "param \"path\": images {j} and {} would both be written to {p:?}; add {{index}} or {{seed}} to the template",
                    base + i
                );
            }
            paths.push(PathBuf::from(p));
        }
        let formats = paths
            .iter()
            .map(|p| ImageFormat::from_path(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(at("param \"path\""))?;
        let mut buf = Vec::new();
        for (i, (path, fmt)) in paths.iter().zip(formats).enumerate() {
            ctx.check_cancelled()?;
            px.item_u8(i, &mut buf);
            let bytes =
                files::encode_image(fmt, &buf, px.width(), px.height(), px.channels(), quality)
                    .map_err(|m| NodeError::new(format!("{}: {m}", path.display())))?;
            files::ensure_parent(path).map_err(node_err)?;
            files::write_atomic(path, &bytes).map_err(node_err)?;
            ctx.progress((i + 1) as f64 / n as f64, &path.to_string_lossy());
        }
        self.seen = base + n;
        self.last_path = paths.last().cloned();
        let list: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        ctx.set_output_str("paths", &list.join("\n"))?;
        ctx.set_output_i64("count", self.seen as i64)
    }
}

/// `io.load_image`: an image file as an Image tensor.
#[derive(Default)]
pub struct LoadImage;

impl Node for LoadImage {
    fn spec() -> NodeSpec {
        NodeSpec::new("io.load_image", "Load image")
            .category(CAT)
            .doc(
                "Reads a PNG, JPEG or WebP file as an RGB image, optionally cropped (a rectangle, \
                 or the centred square) and resized (`stretch` to the size, `cover` it and crop \
                 the centre, or `contain` it with black bars). Setting only the width or the \
                 height keeps the aspect ratio. Pixel values map to [-1, 1] as `v / 127.5 - 1` \
                 (the inverse of the save conversion).",
            )
            .output("image", "Image", "[1, 3, H, W] float in [-1, 1]")
            .output("rgb", "Tensor", "[1, H, W, 3] uint8")
            .output("width", "int", "W")
            .output("height", "int", "H")
            .param(ParamSpec::path("path", "").doc("image file"))
            .param(
                ParamSpec::int("width", 0)
                    .range(0.0, 16384.0)
                    .doc("target width (0: keep / follow aspect)"),
            )
            .param(
                ParamSpec::int("height", 0)
                    .range(0.0, 16384.0)
                    .doc("target height (0: keep / follow aspect)"),
            )
            .param(
                ParamSpec::enumeration("fit", "cover", &["stretch", "cover", "contain"])
                    .doc("how to fit the target size"),
            )
            .param(
                ParamSpec::string("crop", "")
                    .doc("crop `x,y,width,height` before resizing (empty: none)"),
            )
            .param(
                ParamSpec::bool("center_square", false)
                    .doc("crop the centred square before resizing"),
            )
            .param(
                ParamSpec::enumeration(
                    "filter",
                    "lanczos3",
                    &["nearest", "triangle", "catmullrom", "gaussian", "lanczos3"],
                )
                .doc("resampling filter"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(LoadImage)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let path = ctx.param_str("path")?;
        if path.trim().is_empty() {
            node_bail!("param \"path\": no file given");
        }
        let opts = LoadOptions {
            crop: files::parse_crop(&ctx.param_str("crop")?).map_err(at("param \"crop\""))?,
            center_square: ctx.param_bool("center_square")?,
            width: non_negative(ctx, "width")? as u32,
            height: non_negative(ctx, "height")? as u32,
            fit: Fit::parse(&ctx.param_str("fit")?).map_err(at("param \"fit\""))?,
            filter: files::parse_filter(&ctx.param_str("filter")?)
                .map_err(at("param \"filter\""))?,
        };
        let (rgb, w, h) = files::load_image(Path::new(&path), &opts).map_err(node_err)?;
        let (w, h) = (w as usize, h as usize);
        let img = ctx.output_f32("image", &[1, 3, h, w])?;
        let plane = w * h;
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                img[c * plane + p] = pixels::from_u8(px[c]);
            }
        }
        ctx.output_u8("rgb", &[1, h, w, 3])?.copy_from_slice(&rgb);
        ctx.set_output_i64("width", w as i64)?;
        ctx.set_output_i64("height", h as i64)
    }
}

/// `io.grid`: N images -> one grid image.
#[derive(Default)]
pub struct Grid;

impl Node for Grid {
    fn spec() -> NodeSpec {
        NodeSpec::new("io.grid", "Image grid")
            .category(CAT)
            .doc(
                "Lays out a batch of images as one image, row by row: `cols` x `rows` cells \
                 (0 = derived; both 0 = near square), `padding` pixels apart on a `background` \
                 colour. `leading_blank` empty cells come first: the official style-mixing \
                 grid is `latent.style_mix` (layout `official_grid`) -> synthesis -> this node \
                 with `cols = columns + 1`, `leading_blank = 1` (black canvas, empty top-left \
                 cell, column images on top, row images on the left).\n\n\
                 Labels are drawn in each image's top-left corner with a built-in 5x7 pixel \
                 font: from `labels` (comma-separated, one per image) or from the `numbers` \
                 input (e.g. seeds) after `label_prefix`.",
            )
            .input(
                "images",
                "Image",
                "[N, C, H, W] float, or uint8 [N, H, W, C]",
            )
            .optional_input(
                "numbers",
                "Tensor",
                "[N] numbers to print as labels (e.g. seeds)",
            )
            .output(
                "image",
                "Image",
                "[1, C, rows*H + gaps, cols*W + gaps] float",
            )
            .param(
                ParamSpec::int("cols", 0)
                    .range(0.0, 4096.0)
                    .doc("columns (0: from rows, or square)"),
            )
            .param(
                ParamSpec::int("rows", 0)
                    .range(0.0, 4096.0)
                    .doc("rows (0: as needed)"),
            )
            .param(
                ParamSpec::int("leading_blank", 0)
                    .range(0.0, 4096.0)
                    .doc("empty cells before the first image"),
            )
            .param(
                ParamSpec::int("padding", 0)
                    .range(0.0, 1024.0)
                    .doc("pixels between cells"),
            )
            .param(
                ParamSpec::string("background", "#000000")
                    .flag(stylegraph_abi::ffi::SG_PARAM_COLOR)
                    .doc("canvas colour `#rrggbb`"),
            )
            .param(
                ParamSpec::string("labels", "")
                    .doc("comma-separated labels, one per image (empty: none)"),
            )
            .param(
                ParamSpec::string("label_prefix", "")
                    .doc("text before each number of the `numbers` input"),
            )
            .param(
                ParamSpec::int("label_scale", 0)
                    .range(0.0, 64.0)
                    .doc("font pixel size (0: by image height)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Grid)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        let px = input_pixels(ctx, "images")?;
        let (n, c, h, w) = (px.n(), px.channels(), px.height(), px.width());
        let mut images = Vec::with_capacity(n * c * h * w);
        for i in 0..n {
            px.item_f32(i, &mut images);
        }
        let label_text = ctx.param_str("labels")?;
        let mut labels: Vec<String> = if label_text.trim().is_empty() {
            Vec::new()
        } else {
            label_text.split(',').map(|s| s.trim().to_owned()).collect()
        };
        if let Some(nums) = input_numbers(ctx, "numbers", n)? {
            if !labels.is_empty() {
                node_bail!(
                    "give labels either through param \"labels\" or input \"numbers\", not both"
                );
            }
            let prefix = ctx.param_str("label_prefix")?;
            labels = nums
                .iter()
                .map(|&v| format!("{prefix}{}", number_label(v)))
                .collect();
        }
        if labels.len() > n {
            node_bail!(
                "param \"labels\" has {} labels for {n} images",
                labels.len()
            );
        }
        let scale = match non_negative(ctx, "label_scale")? {
            0 => (h / 96).max(1),
            s => s,
        };
        let spec = GridSpec {
            cols: non_negative(ctx, "cols")?,
            rows: non_negative(ctx, "rows")?,
            leading_blank: non_negative(ctx, "leading_blank")?,
            padding: non_negative(ctx, "padding")?,
            background: grid::parse_colour(&ctx.param_str("background")?, c)
                .map_err(at("param \"background\""))?,
            label_scale: scale,
        };
        let (canvas, gh, gw) =
            grid::layout(&images, n, c, h, w, &spec, &labels).map_err(at("io.grid"))?;
        ctx.output_f32("image", &[1, c, gh, gw])?
            .copy_from_slice(&canvas);
        Ok(())
    }
}

/// `io.preview`: shows an image in the editor.
#[derive(Default)]
pub struct Preview;

impl Node for Preview {
    fn spec() -> NodeSpec {
        NodeSpec::new("io.preview", "Preview")
            .category(CAT)
            .doc(
                "Sends the image (batch) to the front end as a preview event: the editor shows it \
                 on the node, the CLI reports it in `--events json`. The image passes through \
                 unchanged. For a large batch, put an `io.grid` before it.",
            )
            .side_effect()
            .input("image", "Image", "[N, C, H, W] float or uint8 [N, H, W, C]")
            .output("image", "Image", "the input, unchanged")
            .param(ParamSpec::string("label", "").doc("caption (default: the node id)"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Preview)
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        // Validates the layout before it reaches the front end.
        input_pixels(ctx, "image")?;
        let t = ctx.input_tensor("image")?;
        let label = match ctx.param_str("label")? {
            l if l.is_empty() => ctx.node_id(),
            l => l,
        };
        ctx.preview(&t, &label);
        ctx.pass_through("image", "image")
    }
}

/// `io.save_video`: MP4 (H.264) / GIF / APNG from frames.
///
/// A stream consumer: the frames arrive a chunk at a time (from a streamed
/// `latent.interpolate`, through synthesis), and the video being written lives in the instance
/// between chunks. A whole batch is simply one chunk.
#[derive(Default)]
pub struct SaveVideo {
    video: Option<VideoRun>,
}

impl Node for SaveVideo {
    fn spec() -> NodeSpec {
        NodeSpec::new("io.save_video", "Save video")
            .category(CAT)
            .doc(
                "Encodes frames into a video: MP4 (H.264), GIF or APNG, by extension or `format`. \
                 Frames come from the `frames` input, frame by frame, or from the image files of \
                 `frames_dir` in name order. The input is a **stream**: fed by a streamed \
                 `latent.interpolate` (through synthesis), frames arrive a chunk at a time and \
                 are encoded as they come, so a video of any length needs the memory of one \
                 chunk; an ordinary batch is encoded the same way in one go. With \
                 `grid_cols` x `grid_rows` > 1, each video frame tiles that many consecutive \
                 images like the official `gen_video.py` grid.\n\n\
                 MP4 uses the built-in OpenH264 encoder (the same file on every machine), or a \
                 system ffmpeg/libx264 with `encoder = ffmpeg` (`auto`: ffmpeg when present). \
                 Quality: a bit rate (`bitrate_kbps`, official 12000), or `quality` 1-100 for \
                 constant quality. Frames are converted and encoded one at a time (memory does \
                 not grow with the frame count); progress is reported, and cancelling (or a \
                 failure anywhere in the stream) removes the partial file. Frame sizes must be \
                 even for MP4; GIFs play at most at 50 fps. APNG needs the frame count up front: \
                 a stream must say its length.",
            )
            .side_effect()
            .optional_stream_input(
                "frames",
                "Image",
                "[N, C, H, W] float or uint8 [N, H, W, C], frame-major (a stream or a batch)",
            )
            .output("path", "path", "the video written")
            .output("frames", "int", "number of video frames")
            .param(ParamSpec::output_path("path", "out/video.mp4").doc("output file"))
            .param(
                ParamSpec::enumeration("format", "auto", &["auto", "mp4", "gif", "apng"])
                    .doc("container; auto = by extension"),
            )
            .param(
                ParamSpec::enumeration("encoder", "builtin", &["builtin", "auto", "ffmpeg"])
                    .doc("H.264 encoder for MP4"),
            )
            .param(
                ParamSpec::float("fps", 60.0)
                    .range(0.1, 1000.0)
                    .doc("frames per second (official: 60)"),
            )
            .param(
                ParamSpec::int("bitrate_kbps", 12000)
                    .range(10.0, 1_000_000.0)
                    .doc("MP4 bit rate, kbit/s"),
            )
            .param(
                ParamSpec::int("quality", 0)
                    .range(0.0, 100.0)
                    .doc("MP4 constant quality 1-100 (0: use the bit rate)"),
            )
            .param(
                ParamSpec::int("grid_cols", 1)
                    .range(1.0, 256.0)
                    .doc("images per frame, across"),
            )
            .param(
                ParamSpec::int("grid_rows", 1)
                    .range(1.0, 256.0)
                    .doc("images per frame, down"),
            )
            .param(
                ParamSpec::path("frames_dir", "")
                    .doc("read frames from this folder's image files instead of the input"),
            )
            .param(
                ParamSpec::int("loop_count", 0)
                    .range(0.0, 65535.0)
                    .doc("GIF/APNG plays (0: forever)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveVideo::default())
    }
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        // Not streamed (an older host): the whole input is one chunk.
        let chunk = ctx.chunk().unwrap_or(ChunkInfo {
            index: 0,
            offset: 0,
            total: None,
            last: true,
            abort: false,
        });
        if chunk.abort {
            // Dropping an unfinished writer removes its temporary file.
            self.video = None;
            return Ok(());
        }
        let result = self.step(ctx, chunk);
        if result.is_err() {
            self.video = None;
        }
        result
    }
}

impl SaveVideo {
    /// Handles one call: a chunk of a stream, a whole batch, or a folder of frames.
    fn step(&mut self, ctx: &mut Context<'_>, chunk: ChunkInfo) -> NodeResult {
        let frames_dir = ctx.param_str("frames_dir")?;
        match (ctx.has_input("frames"), frames_dir.trim().is_empty()) {
            (true, false) => node_bail!(
                "give frames either through input \"frames\" or param \"frames_dir\", not both"
            ),
            (false, true) => {
                node_bail!("no frames: connect input \"frames\" or set param \"frames_dir\"")
            }
            (false, false) => {
                let files = list_frames(Path::new(&frames_dir)).map_err(node_err)?;
                let mut video = VideoRun::start(ctx, Some(files.len()), None)?;
                for (i, file) in files.iter().enumerate() {
                    ctx.check_cancelled()?;
                    let (h, w) = load_frame_file(file, video.next_cell()).map_err(node_err)?;
                    video.commit_cell(h, w)?;
                    video.progress(ctx, i + 1, files.len());
                }
                return video.finish(ctx);
            }
            (true, true) => {}
        }
        let px = input_pixels(ctx, "frames")?;
        let n = px.n();
        if chunk.index == 0 {
            // A whole batch is counted exactly and checked before anything is written. A
            // stream's length is the producer's item count: normally the images that reach
            // this node, but a node in between could change it, so it is only a hint (for
            // progress and the APNG header) and the count is checked as the stream ends.
            let (exact, hint) = if chunk.last {
                (Some(n), None)
            } else {
                (None, chunk.total.and_then(|t| usize::try_from(t).ok()))
            };
            self.video = Some(VideoRun::start(ctx, exact, hint)?);
        }
        let Some(video) = self.video.as_mut() else {
            node_bail!(
                "chunk {} of the frames arrived, but the video was not started (no chunk 0)",
                chunk.index
            );
        };
        for i in 0..n {
            ctx.check_cancelled()?;
            px.item_rgb8(i, video.next_cell());
            video.commit_cell(px.height(), px.width())?;
            video.progress(ctx, i + 1, n);
        }
        if !chunk.last {
            return Ok(());
        }
        match self.video.take() {
            Some(video) => video.finish(ctx),
            None => node_bail!("the video was not started"),
        }
    }
}

/// A video being written, over one call or many chunks of a stream.
struct VideoRun {
    path: PathBuf,
    opts: VideoOptions,
    cols: usize,
    rows: usize,
    writer: Option<VideoWriter>,
    /// Height and width of every image (fixed by the first).
    cell: Option<(usize, usize)>,
    /// The images of the frame being assembled; `filled` of them are set.
    cell_imgs: Vec<Vec<u8>>,
    filled: usize,
    images: usize,
    frames: usize,
    /// Video frames in all, when known (a batch, a folder, a stream that said its length).
    expected_frames: Option<usize>,
    tiled: Vec<u8>,
}

impl VideoRun {
    /// Reads the params. `exact`: how many images will come, when known for sure; `hint`: what
    /// a stream announced.
    fn start(
        ctx: &Context<'_>,
        exact: Option<usize>,
        hint: Option<usize>,
    ) -> Result<VideoRun, NodeError> {
        let path = PathBuf::from(ctx.param_str("path")?);
        if path.as_os_str().is_empty() {
            node_bail!("param \"path\": no file given");
        }
        let format =
            VideoFormat::parse(&ctx.param_str("format")?, &path).map_err(at("param \"format\""))?;
        let encoder =
            H264Encoder::parse(&ctx.param_str("encoder")?).map_err(at("param \"encoder\""))?;
        let cols = non_negative(ctx, "grid_cols")?.max(1);
        let rows = non_negative(ctx, "grid_rows")?.max(1);
        let cells = cols * rows;
        if let Some(n) = exact {
            if n == 0 {
                node_bail!("zero frames: there is nothing to encode");
            }
            if !n.is_multiple_of(cells) {
                node_bail!(
                    "{n} images cannot fill whole frames of {cols} x {rows} = {cells} images"
                );
            }
        }
        let expected_frames = exact
            .or(hint)
            .filter(|n| n.is_multiple_of(cells))
            .map(|n| n / cells);
        if format == VideoFormat::Apng && expected_frames.is_none() {
            match hint {
                Some(n) => node_bail!(
                    "APNG needs the frame count before the first frame, and the stream's {n} \
                     images cannot fill whole frames of {cols} x {rows} = {cells} images"
                ),
                None => node_bail!(
                    "APNG needs the frame count before the first frame, and this stream did \
                     not say how long it is; write MP4 or GIF instead"
                ),
            }
        }
        let quality = ctx.param_i64("quality")?;
        let opts = VideoOptions {
            format,
            encoder,
            fps: ctx.param_f64("fps")?,
            bitrate_kbps: ctx.param_i64("bitrate_kbps")?.clamp(1, u32::MAX as i64) as u32,
            quality: (quality > 0).then(|| quality.clamp(1, 100) as u8),
            loop_count: ctx.param_i64("loop_count")?.clamp(0, 65535) as u16,
            frame_count: expected_frames.unwrap_or(0),
        };
        Ok(VideoRun {
            path,
            opts,
            cols,
            rows,
            writer: None,
            cell: None,
            cell_imgs: vec![Vec::new(); cells],
            filled: 0,
            images: 0,
            frames: 0,
            expected_frames,
            tiled: Vec::new(),
        })
    }

    /// The buffer for the next image (RGB, height x width x 3).
    fn next_cell(&mut self) -> &mut Vec<u8> {
        &mut self.cell_imgs[self.filled]
    }

    /// Takes the image just put in [`VideoRun::next_cell`]; writes a frame once it is complete.
    fn commit_cell(&mut self, h: usize, w: usize) -> NodeResult {
        let index = self.images;
        match self.cell {
            None => {
                // The first image fixes the frame size.
                files::ensure_parent(&self.path).map_err(node_err)?;
                let writer =
                    VideoWriter::create(&self.path, self.cols * w, self.rows * h, &self.opts)
                        .map_err(node_err)?;
                tracing::debug!(path = %self.path.display(), encoder = writer.encoder_name,
                    "encoding video");
                self.writer = Some(writer);
                self.cell = Some((h, w));
            }
            Some((ch, cw)) if (ch, cw) != (h, w) => node_bail!(
                "image {index} is {w}x{h} but the first is {cw}x{ch}: all frames must have one size"
            ),
            Some(_) => {}
        }
        self.images += 1;
        self.filled += 1;
        if self.filled < self.cell_imgs.len() {
            return Ok(());
        }
        self.filled = 0;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| NodeError::new("the video writer is missing"))?;
        if self.cell_imgs.len() == 1 {
            writer.push(&self.cell_imgs[0]).map_err(node_err)?;
        } else {
            grid::tile_rgb8(&self.cell_imgs, self.cols, self.rows, h, w, &mut self.tiled);
            writer.push(&self.tiled).map_err(node_err)?;
        }
        self.frames += 1;
        Ok(())
    }

    /// Reports progress within this call: `done` of `n` images.
    fn progress(&self, ctx: &Context<'_>, done: usize, n: usize) {
        if self.filled != 0 {
            return;
        }
        let message = match self.expected_frames {
            Some(all) => format!("frame {} of {all}", self.frames),
            None => format!("frame {}", self.frames),
        };
        ctx.progress(done as f64 / n.max(1) as f64, &message);
    }

    /// Completes the file and sets the outputs.
    fn finish(self, ctx: &mut Context<'_>) -> NodeResult {
        let cells = self.cell_imgs.len();
        if self.images == 0 {
            node_bail!("zero frames: there is nothing to encode");
        }
        if self.filled != 0 {
            node_bail!(
                "{} images cannot fill whole frames of {} x {} = {cells} images",
                self.images,
                self.cols,
                self.rows
            );
        }
        if let Some(all) = self.expected_frames {
            if self.opts.format == VideoFormat::Apng && all != self.frames {
                node_bail!(
                    "the stream said {all} frames but gave {}: the APNG header would be wrong",
                    self.frames
                );
            }
        }
        let writer = self
            .writer
            .ok_or_else(|| NodeError::new("the video writer is missing"))?;
        writer.finish().map_err(node_err)?;
        ctx.set_output_str("path", &self.path.to_string_lossy())?;
        ctx.set_output_i64("frames", self.frames as i64)
    }
}

/// An image file of a frames folder as RGB into `out`; returns its `(height, width)`.
fn load_frame_file(path: &Path, out: &mut Vec<u8>) -> Result<(usize, usize), IoError> {
    let opts = LoadOptions {
        crop: None,
        center_square: false,
        width: 0,
        height: 0,
        fit: Fit::Stretch,
        filter: image::imageops::FilterType::Nearest,
    };
    let (rgb, w, h) = files::load_image(path, &opts)?;
    *out = rgb;
    Ok((h as usize, w as usize))
}

/// The image files of a folder (png, jpg, jpeg, webp), sorted by name.
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let entries = std::fs::read_dir(dir).map_err(crate::error::file_err(dir))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !hidden && p.is_file() && ImageFormat::from_path(p).is_ok()
        })
        .collect();
    files.sort();
    Ok(files)
}
