//! The `analysis` plugin: average power spectra as in StyleGAN3's `avg_spectra` tool (computed
//! from a generator's image stream or a folder), spectrum heatmaps and slice plots, pixel and
//! latent statistics. Plots are written as PNG files for headless runs and sent as previews to
//! the editor.
//!
//! The equivariance metrics need to re-render a generator, so their node lives in the stylegan
//! plugin (`stylegan.equivariance`) on top of `stylegraph_kernels::equivariance`.

pub mod font;
pub mod npz;
pub mod plot;

use std::path::{Path, PathBuf};
use stylegraph_abi::prelude::*;
use stylegraph_kernels::image_folder::{encode_png, list_images, read_rgb8, Rgb8};
use stylegraph_kernels::spectrum::{
    heatmap, radial_profile, AvgSpectrum, PixelMoments, Profile, SpectrumConfig,
};
use stylegraph_npy::{Array, DType};

// ---------------------------------------------------------------------------------------------
// Image sources shared by the nodes

/// Where a node's images come from: an `Image` tensor input or a folder of PNG/JPEG files.
pub enum ImageSource {
    /// `[N, C, H, W]` f32 in [-1, 1].
    Tensor {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        data: Vec<f32>,
        quantize: bool,
    },
    /// Files, decoded one at a time.
    Files(Vec<PathBuf>),
}

impl ImageSource {
    /// Number of images, limited to `num` when `num > 0`.
    pub fn len(&self) -> usize {
        match self {
            ImageSource::Tensor { n, .. } => *n,
            ImageSource::Files(f) => f.len(),
        }
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `num` images (0 keeps all).
    pub fn truncate(&mut self, num: usize) {
        if num == 0 {
            return;
        }
        match self {
            ImageSource::Tensor {
                n, c, h, w, data, ..
            } => {
                *n = (*n).min(num);
                data.truncate(*n * *c * *h * *w);
            }
            ImageSource::Files(f) => f.truncate(num),
        }
    }

    /// Image `i` as `(channels, height, width, CHW values on the 0..255 scale)`.
    ///
    /// Tensor images are mapped with the official conversion `x * 127.5 + 128` clamped to
    /// [0, 255] and truncated to integers when `quantize` is set (as `avg_spectra.py` does for
    /// generator output); otherwise `x * 127.5 + 127.5`, unrounded.
    pub fn get(&self, i: usize) -> Result<(usize, usize, usize, Vec<f64>), NodeError> {
        match self {
            ImageSource::Tensor {
                n,
                c,
                h,
                w,
                data,
                quantize,
            } => {
                if i >= *n {
                    return Err(NodeError::invalid(format!("image {i} of {n} requested")));
                }
                let k = c * h * w;
                let px = data[i * k..(i + 1) * k]
                    .iter()
                    .map(|&v| {
                        let v = v as f64;
                        if *quantize {
                            (v * 127.5 + 128.0).clamp(0.0, 255.0).floor()
                        } else {
                            v * 127.5 + 127.5
                        }
                    })
                    .collect();
                Ok((*c, *h, *w, px))
            }
            ImageSource::Files(files) => {
                let p = files
                    .get(i)
                    .ok_or_else(|| NodeError::invalid(format!("image {i} requested")))?;
                let img = read_rgb8(p)?;
                Ok((3, img.height, img.width, img.to_planes_f64()))
            }
        }
    }
}

/// Reads an `Image`-like `[N, C, H, W]` input.
pub fn image_input(ctx: &Context, name: &str, quantize: bool) -> Result<ImageSource, NodeError> {
    let t = ctx.input_tensor(name)?;
    let shape = t.shape().to_vec();
    if shape.len() != 4 || shape.contains(&0) {
        return Err(NodeError::invalid(format!(
            "input {name:?} must be a non-empty [N, C, H, W] image batch, got shape {shape:?}"
        )));
    }
    Ok(ImageSource::Tensor {
        n: shape[0],
        c: shape[1],
        h: shape[2],
        w: shape[3],
        data: t.to_f32_vec()?,
        quantize,
    })
}

/// The images of a node: the `images` input when connected, else the `folder` param.
/// The images of a node with the `images` input and the `folder`, `num`, `quantize` params:
/// [`images_or_folder`], limited to `num` images (0 = all).
fn selected_images(ctx: &Context) -> Result<ImageSource, NodeError> {
    let mut src = images_or_folder(ctx, ctx.param_bool("quantize")?)?;
    src.truncate(usize::try_from(ctx.param_i64("num")?).unwrap_or(0));
    Ok(src)
}

fn images_or_folder(ctx: &Context, quantize: bool) -> Result<ImageSource, NodeError> {
    if ctx.has_input("images") {
        return image_input(ctx, "images", quantize);
    }
    let folder = ctx.param_str("folder")?;
    if folder.is_empty() {
        return Err(NodeError::invalid(
            "connect the `images` input or set the `folder` param",
        ));
    }
    Ok(ImageSource::Files(list_images(Path::new(&folder))?))
}

fn write_file(path: &str, bytes: &[u8]) -> Result<(), NodeError> {
    let p = Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::new(format!("{}: {e}", dir.display())))?;
    }
    stylegraph_npy::write_atomic(p, bytes)?;
    Ok(())
}

/// Writes a rendered plot as PNG (when `path` is set), sends it as a preview and returns it as
/// a `[H, W, 3]` u8 output.
fn emit_plot(ctx: &mut Context, img: &Rgb8, path: &str, label: &str) -> NodeResult {
    if !path.is_empty() {
        write_file(path, &encode_png(img, path)?)?;
    }
    let out = ctx.output_u8("image", &[img.height, img.width, 3])?;
    out.copy_from_slice(&img.data);
    ctx.preview_output("image", label)
}

fn input_f64_or_param(ctx: &Context, name: &str) -> Result<f64, NodeError> {
    if ctx.has_input(name) {
        ctx.input_f64(name)
    } else {
        ctx.param_f64(name)
    }
}

/// A spectrum tensor `[S, S]` and its image size, from inputs `prefix` / `image_size`.
fn spectrum_input(ctx: &Context, name: &str) -> Result<(usize, Vec<f64>), NodeError> {
    let t = ctx.input_tensor(name)?;
    let shape = t.shape().to_vec();
    if shape.len() != 2 || shape[0] != shape[1] || shape[0] == 0 {
        return Err(NodeError::invalid(format!(
            "input {name:?} must be a square [S, S] spectrum, got shape {shape:?}"
        )));
    }
    Ok((shape[0], t.to_f64_vec()?))
}

fn positive_usize(v: i64, what: &str) -> Result<usize, NodeError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| NodeError::invalid(format!("{what} must be a positive integer (got {v})")))
}

// ---------------------------------------------------------------------------------------------
// analysis.spectrum

/// Average power spectrum of many images.
#[derive(Default)]
pub struct Spectrum;

impl Node for Spectrum {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.spectrum", "Average power spectrum")
            .category("Analysis")
            .doc(
                "Average 2-D power spectrum of N square images, as StyleGAN3's `avg_spectra.py calc`: \
                 each image (0..255 scale) is whitened with the dataset `mean`/`std`, multiplied by \
                 a separable Kaiser window (`beta`) scaled to unit energy, zero-padded to \
                 `interp` times its size, transformed, and `|FFT|^2` is averaged over channels and \
                 images. Feed images from `stylegan.synthesis` (generator output is converted to \
                 8-bit like the official tool when `quantize` is on) or set `folder`. Use \
                 `analysis.image_stats` for the mean/std of a dataset (connect its `pixel_mean` / \
                 `pixel_std` outputs to the `mean` / `std` inputs), and the same whitening for \
                 every spectrum you compare.",
            )
            .optional_input("images", "Image", "[N,3,H,W] images in [-1,1]; used instead of `folder` when connected")
            .optional_input("mean", "float", "overrides the `mean` param when connected")
            .optional_input("std", "float", "overrides the `std` param when connected")
            .output("spectrum", "Tensor", "[S,S] f64 average power spectrum, DC at [0,0], S = image size * interp")
            .output("image_size", "int", "side of the images")
            .output("count", "int", "number of images averaged")
            .param(ParamSpec::path("folder", "").doc("folder of PNG/JPEG images (when `images` is not connected)"))
            .param(ParamSpec::int("num", 0).min(0.0).doc("use at most this many images (0 = all)"))
            .param(ParamSpec::float("mean", 112.684).doc("dataset pixel mean, 0..255 scale (default: FFHQ-1024 from the official docs)"))
            .param(ParamSpec::float("std", 69.509).min(0.0).doc("dataset pixel standard deviation, 0..255 scale"))
            .param(ParamSpec::float("beta", 8.0).min(0.0).doc("Kaiser window shape parameter (0 = no window)"))
            .param(ParamSpec::int("interp", 4).range(1.0, 16.0).doc("frequency-domain interpolation factor (zero padding)"))
            .param(ParamSpec::bool("quantize", true).doc("convert tensor images to 8-bit first, as the official tool does for generator output"))
    }

    fn create() -> Result<Self, NodeError> {
        Ok(Spectrum)
    }

    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let src = selected_images(ctx)?;
        if src.is_empty() {
            node_bail!("no images to analyse");
        }
        let mean = input_f64_or_param(ctx, "mean")?;
        let std = input_f64_or_param(ctx, "std")?;
        let interp = positive_usize(ctx.param_i64("interp")?, "interp")?;
        let (c0, h0, w0, first) = src.get(0)?;
        if h0 != w0 {
            node_bail!("images must be square (the first is {h0}x{w0})");
        }
        let mut acc = AvgSpectrum::new(SpectrumConfig {
            image_size: h0,
            interp,
            beta: ctx.param_f64("beta")?,
            mean,
            std,
        })?;
        acc.add_image(&first, c0, h0, w0)?;
        let total = src.len();
        for i in 1..total {
            ctx.check_cancelled()?;
            let (c, h, w, px) = src.get(i)?;
            acc.add_image(&px, c, h, w).map_err(|e| {
                NodeError::invalid(match &src {
                    ImageSource::Files(f) => format!("{}: {e}", f[i].display()),
                    _ => format!("image {i}: {e}"),
                })
            })?;
            if i % 8 == 0 {
                ctx.progress(i as f64 / total as f64, "spectra");
            }
        }
        let s = acc.spectrum_size();
        let spec = acc.finish()?;
        ctx.output_f64("spectrum", &[s, s])?.copy_from_slice(&spec);
        ctx.set_output_i64("image_size", h0 as i64)?;
        ctx.set_output_i64("count", total as i64)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// analysis.save_spectrum / analysis.load_spectrum

/// Saves a spectrum as `.npz` in the official tool's layout.
#[derive(Default)]
pub struct SaveSpectrum;

impl Node for SaveSpectrum {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.save_spectrum", "Save spectrum (.npz)")
            .category("Analysis")
            .doc(
                "Writes a spectrum to an uncompressed `.npz` with arrays `spectrum` (f64 [S,S]) and \
                 `image_size` (int64 scalar), the layout of `avg_spectra.py calc`, so the official \
                 `heatmap`/`slices` commands can read it. The file is written atomically.",
            )
            .input("spectrum", "Tensor", "[S,S] power spectrum")
            .input("image_size", "int", "side of the images it was computed from")
            .output("path", "path", "the file written")
            .param(ParamSpec::output_path("path", "spectrum.npz").doc("destination .npz"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SaveSpectrum)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let (s, spec) = spectrum_input(ctx, "spectrum")?;
        let image_size = ctx.input_i64("image_size")?;
        let path = ctx.param_str("path")?;
        if path.is_empty() {
            node_bail!("param `path` is empty");
        }
        let a = Array::from_f64(vec![s, s], &spec)?;
        let b = Array::from_bytes(DType::I64, vec![], image_size.to_le_bytes().to_vec())?;
        write_file(
            &path,
            &npz::npz_bytes(&[
                ("spectrum", a.to_npy_bytes()),
                ("image_size", b.to_npy_bytes()),
            ]),
        )?;
        ctx.set_output_str("path", &path)
    }
}

/// Loads a spectrum `.npz` (ours or the official tool's).
#[derive(Default)]
pub struct LoadSpectrum;

impl Node for LoadSpectrum {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.load_spectrum", "Load spectrum (.npz)")
            .category("Analysis")
            .doc("Reads a `.npz` written by `analysis.save_spectrum` or `avg_spectra.py calc` (arrays `spectrum` and `image_size`).")
            .output("spectrum", "Tensor", "[S,S] f64 power spectrum")
            .output("image_size", "int", "side of the images it was computed from")
            .param(ParamSpec::path("path", "").doc("the .npz file"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(LoadSpectrum)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let path = ctx.param_str("path")?;
        let arrays = stylegraph_npy::read_npz(Path::new(&path))?;
        let spec = arrays
            .get("spectrum")
            .ok_or_else(|| NodeError::invalid(format!("{path}: no `spectrum` array")))?;
        let size = arrays
            .get("image_size")
            .ok_or_else(|| NodeError::invalid(format!("{path}: no `image_size` array")))?;
        if spec.shape.len() != 2 || spec.shape[0] != spec.shape[1] || spec.shape[0] == 0 {
            node_bail!(
                "{path}: `spectrum` has shape {:?}, expected [S, S]",
                spec.shape
            );
        }
        let image_size = size.to_f64_lossy().first().copied().unwrap_or(0.0);
        if !(image_size >= 1.0 && image_size <= spec.shape[0] as f64) {
            node_bail!(
                "{path}: `image_size` {image_size} does not fit a {}-point spectrum",
                spec.shape[0]
            );
        }
        let s = spec.shape[0];
        ctx.output_f64("spectrum", &[s, s])?
            .copy_from_slice(&spec.to_f64_lossy());
        ctx.set_output_i64("image_size", image_size as i64)
    }
}

// ---------------------------------------------------------------------------------------------
// analysis.spectrum_heatmap

/// Heatmap plot of a spectrum.
#[derive(Default)]
pub struct SpectrumHeatmap;

impl Node for SpectrumHeatmap {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.spectrum_heatmap", "Spectrum heatmap")
            .category("Analysis")
            .doc(
                "Plots a spectrum as the official `avg_spectra.py heatmap` does: 10*log10 power, \
                 centred, smoothed with a Gaussian of `smooth` image-frequency bins, filled \
                 contours from -40 to 20 dB in 5 dB steps (Blues), frequency axes in cycles per \
                 image. Writes a PNG when `path` is set, previews it, and outputs the picture.",
            )
            .input(
                "spectrum",
                "Tensor",
                "[S,S] power spectrum (analysis.spectrum)",
            )
            .input(
                "image_size",
                "int",
                "side of the images the spectrum came from",
            )
            .output("image", "Tensor", "the plot, [H,W,3] u8")
            .param(ParamSpec::output_path("path", "").doc("PNG to write (empty: preview only)"))
            .param(
                ParamSpec::float("smooth", 1.25)
                    .min(0.0)
                    .doc("Gaussian smoothing in image-frequency bins (official default 1.25)"),
            )
            .param(ParamSpec::float("min_db", -40.0).doc("lowest contour level"))
            .param(ParamSpec::float("max_db", 20.0).doc("highest contour level"))
            .param(
                ParamSpec::int("size", 480)
                    .range(64.0, 4096.0)
                    .doc("side of the map area in pixels"),
            )
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SpectrumHeatmap)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let (s, spec) = spectrum_input(ctx, "spectrum")?;
        let image_size = positive_usize(ctx.input_i64("image_size")?, "image_size")?;
        let map = heatmap(&spec, s, image_size, ctx.param_f64("smooth")?)?;
        let (lo, hi) = (ctx.param_f64("min_db")?, ctx.param_f64("max_db")?);
        if hi <= lo {
            node_bail!("max_db ({hi}) must be above min_db ({lo})");
        }
        let bands = (((hi - lo) / 5.0).round() as usize).clamp(1, 64);
        let img = plot::heatmap_plot(
            &map,
            lo,
            hi,
            bands,
            positive_usize(ctx.param_i64("size")?, "size")?,
        )?;
        let path = ctx.param_str("path")?;
        emit_plot(ctx, &img, &path, "spectrum heatmap")
    }
}

// ---------------------------------------------------------------------------------------------
// analysis.spectrum_slices

const SLICE_INPUTS: [&str; 4] = ["spectrum", "spectrum2", "spectrum3", "spectrum4"];

/// 1-D slices and radial profiles of up to four spectra.
#[derive(Default)]
pub struct SpectrumSlices;

impl Node for SpectrumSlices {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.spectrum_slices", "Spectrum slices")
            .category("Analysis")
            .doc(
                "Compares up to four spectra of the same image size in one figure with three panels: \
                 the horizontal (0 degree) and diagonal (45 degree) slices through DC of the dB \
                 heatmap, as `avg_spectra.py slices`, and the azimuthally averaged (radial) \
                 profile up to Nyquist. Writes the figure as PNG (`path`) and the curves as CSV \
                 (`csv`: columns `panel,label,frequency,db`), previews it, and outputs the picture.",
            )
            .input("spectrum", "Tensor", "first [S,S] spectrum")
            .optional_input("spectrum2", "Tensor", "second spectrum")
            .optional_input("spectrum3", "Tensor", "third spectrum")
            .optional_input("spectrum4", "Tensor", "fourth spectrum")
            .input("image_size", "int", "side of the images (the same for every spectrum)")
            .output("image", "Tensor", "the plot, [H,W,3] u8")
            .param(ParamSpec::string("labels", "").doc("comma-separated curve names (default: spectrum, spectrum2, ...)"))
            .param(ParamSpec::float("smooth", 0.0).min(0.0).doc("Gaussian smoothing of the heatmap before slicing (official default 0)"))
            .param(ParamSpec::output_path("path", "").doc("PNG to write (empty: none)"))
            .param(ParamSpec::output_path("csv", "").doc("CSV to write (empty: none)"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(SpectrumSlices)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let image_size = positive_usize(ctx.input_i64("image_size")?, "image_size")?;
        let smooth = ctx.param_f64("smooth")?;
        let labels_param = ctx.param_str("labels")?;
        let labels: Vec<String> = labels_param
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let mut curves: Vec<(String, [Profile; 3])> = Vec::new();
        let mut size = None;
        for (k, name) in SLICE_INPUTS.iter().enumerate() {
            if k > 0 && !ctx.has_input(name) {
                continue;
            }
            let (s, spec) = spectrum_input(ctx, name)?;
            if *size.get_or_insert(s) != s {
                node_bail!("all spectra must have the same size ({name} is {s}x{s})");
            }
            let map = heatmap(&spec, s, image_size, smooth)?;
            let label = labels
                .get(curves.len())
                .cloned()
                .unwrap_or_else(|| name.to_string());
            curves.push((
                label,
                [
                    map.slice_0deg(),
                    map.slice_45deg(),
                    radial_profile(&spec, s, image_size)?,
                ],
            ));
        }
        let titles = ["0\u{b0} slice", "45\u{b0} slice", "radial average"];
        let half = image_size as f64 / 2.0;
        let xmax = [half, image_size as f64 / std::f64::consts::SQRT_2, half];
        let panels: Vec<plot::Panel> = (0..3)
            .map(|p| plot::Panel {
                title: titles[p].into(),
                x_label: "frequency (cycles per image)".into(),
                y_label: "dB".into(),
                x_ticks: plot::ticks(0.0, if p == 1 { xmax[p].round() } else { xmax[p] }, 9),
                y_ticks: plot::ticks(-50.0, 30.0, 9),
                series: curves
                    .iter()
                    .map(|(l, pr)| plot::Series {
                        label: l.clone(),
                        xs: pr[p].freqs.clone(),
                        ys: pr[p].db.clone(),
                    })
                    .collect(),
            })
            .collect();
        let csv = ctx.param_str("csv")?;
        if !csv.is_empty() {
            let mut text = String::from("panel,label,frequency,db\n");
            for (l, pr) in &curves {
                for (p, name) in ["0deg", "45deg", "radial"].iter().enumerate() {
                    for (f, d) in pr[p].freqs.iter().zip(&pr[p].db) {
                        text.push_str(&format!("{name},{},{f},{d}\n", l.replace(',', ";")));
                    }
                }
            }
            write_file(&csv, text.as_bytes())?;
        }
        let img = plot::line_chart(&panels, 420, 360)?;
        let path = ctx.param_str("path")?;
        emit_plot(ctx, &img, &path, "spectrum slices")
    }
}

// ---------------------------------------------------------------------------------------------
// analysis.image_stats / analysis.histogram_plot

/// Per-channel statistics and histograms of images.
#[derive(Default)]
pub struct ImageStats;

impl Node for ImageStats {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.image_stats", "Image statistics")
            .category("Analysis")
            .doc(
                "Per-channel mean, standard deviation and histogram of images on the 0..255 scale, \
                 plus the mean and standard deviation over all pixels and channels (what \
                 `avg_spectra.py stats` prints for whitening spectra).",
            )
            .optional_input("images", "Image", "[N,C,H,W] images in [-1,1]; used instead of `folder` when connected")
            .output("mean", "Tensor", "[C] per-channel means")
            .output("std", "Tensor", "[C] per-channel standard deviations")
            .output("pixel_mean", "float", "mean over all values")
            .output("pixel_std", "float", "standard deviation over all values")
            .output("histogram", "Tensor", "[C, bins] counts over [0, 256)")
            .output("count", "int", "number of images")
            .param(ParamSpec::path("folder", "").doc("folder of PNG/JPEG images (when `images` is not connected)"))
            .param(ParamSpec::int("num", 0).min(0.0).doc("use at most this many images (0 = all)"))
            .param(ParamSpec::int("bins", 256).range(1.0, 4096.0).doc("histogram bins over [0, 256)"))
            .param(ParamSpec::bool("quantize", true).doc("convert tensor images to 8-bit first (official conversion)"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(ImageStats)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let src = selected_images(ctx)?;
        let bins = positive_usize(ctx.param_i64("bins")?, "bins")?;
        let stats = image_stats(&src, bins, &mut |i, n| {
            ctx.progress(i as f64 / n as f64, "statistics");
            ctx.check_cancelled()
        })?;
        let c = stats.channels.len();
        let (mean, std): (Vec<f64>, Vec<f64>) = stats
            .channels
            .iter()
            .map(|m| m.mean_std().unwrap_or((0.0, 0.0)))
            .unzip();
        ctx.output_f64("mean", &[c])?.copy_from_slice(&mean);
        ctx.output_f64("std", &[c])?.copy_from_slice(&std);
        let (pm, ps) = stats.all.mean_std().unwrap_or((0.0, 0.0));
        ctx.set_output_f64("pixel_mean", pm)?;
        ctx.set_output_f64("pixel_std", ps)?;
        ctx.output_f64("histogram", &[c, bins])?
            .copy_from_slice(&stats.histogram);
        ctx.set_output_i64("count", src.len() as i64)
    }
}

/// Result of [`image_stats`].
pub struct ImageStatsResult {
    pub channels: Vec<PixelMoments>,
    pub all: PixelMoments,
    /// `[C, bins]` counts.
    pub histogram: Vec<f64>,
}

/// Accumulates statistics over the images of `src`; `tick(i, n)` reports progress and may stop.
pub fn image_stats(
    src: &ImageSource,
    bins: usize,
    tick: &mut dyn FnMut(usize, usize) -> NodeResult,
) -> Result<ImageStatsResult, NodeError> {
    if src.is_empty() {
        node_bail!("no images");
    }
    let mut channels: Vec<PixelMoments> = Vec::new();
    let mut all = PixelMoments::default();
    let mut histogram = Vec::new();
    for i in 0..src.len() {
        tick(i, src.len())?;
        let (c, h, w, px) = src.get(i)?;
        if channels.is_empty() {
            channels = vec![PixelMoments::default(); c];
            histogram = vec![0.0; c * bins];
        } else if channels.len() != c {
            node_bail!(
                "image {i} has {c} channels, the first had {}",
                channels.len()
            );
        }
        for (ch, plane) in px.chunks_exact(h * w).enumerate() {
            channels[ch].add(plane);
            all.add(plane);
            for &v in plane {
                let b = ((v / 256.0 * bins as f64).floor().max(0.0) as usize).min(bins - 1);
                histogram[ch * bins + b] += 1.0;
            }
        }
    }
    Ok(ImageStatsResult {
        channels,
        all,
        histogram,
    })
}

/// Plots histograms.
#[derive(Default)]
pub struct HistogramPlot;

impl Node for HistogramPlot {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.histogram_plot", "Histogram plot")
            .category("Analysis")
            .doc("Plots the per-channel histograms of `analysis.image_stats` (as fractions of pixels), one curve per channel (R, G, B for three channels). Writes a PNG when `path` is set, previews it and outputs the picture.")
            .input("histogram", "Tensor", "[C, bins] counts over [0, 256)")
            .output("image", "Tensor", "the plot, [H,W,3] u8")
            .param(ParamSpec::output_path("path", "").doc("PNG to write (empty: preview only)"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(HistogramPlot)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let t = ctx.input_tensor("histogram")?;
        let shape = t.shape().to_vec();
        if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
            node_bail!("`histogram` must be [C, bins], got {shape:?}");
        }
        let (c, bins) = (shape[0], shape[1]);
        let v = t.to_f64_vec()?;
        let names = if c == 3 {
            vec!["R", "G", "B"]
        } else {
            vec![""; c]
        };
        let mut ymax: f64 = 0.0;
        let series: Vec<plot::Series> = (0..c)
            .map(|ch| {
                let row = &v[ch * bins..(ch + 1) * bins];
                let total: f64 = row.iter().sum::<f64>().max(1.0);
                let ys: Vec<f64> = row.iter().map(|x| x / total).collect();
                ymax = ys.iter().cloned().fold(ymax, f64::max);
                plot::Series {
                    label: if names[ch].is_empty() {
                        format!("channel {ch}")
                    } else {
                        names[ch].to_string()
                    },
                    xs: (0..bins)
                        .map(|b| (b as f64 + 0.5) * 256.0 / bins as f64)
                        .collect(),
                    ys,
                }
            })
            .collect();
        let panel = plot::Panel {
            title: "Pixel histogram".into(),
            x_label: "value".into(),
            y_label: "fraction".into(),
            x_ticks: plot::ticks(0.0, 256.0, 9),
            y_ticks: plot::ticks(0.0, if ymax > 0.0 { ymax * 1.1 } else { 1.0 }, 6),
            series,
        };
        let img = plot::line_chart(&[panel], 560, 360)?;
        let path = ctx.param_str("path")?;
        emit_plot(ctx, &img, &path, "histogram")
    }
}

// ---------------------------------------------------------------------------------------------
// analysis.latent_stats

/// Statistics of latent samples.
#[derive(Default)]
pub struct LatentStats;

/// Statistics of latent vectors `[N, D]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentStatsResult {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Mean Euclidean norm of the vectors.
    pub mean_norm: f64,
    /// Mean Euclidean distance to the centre (`center`, or the sample mean).
    pub mean_distance: f64,
}

/// Per-dimension mean and std (population), mean norm and mean distance to `center` (or to the
/// sample mean when None) of `n` vectors of dimension `d`.
pub fn latent_stats(v: &[f64], n: usize, d: usize, center: Option<&[f64]>) -> LatentStatsResult {
    let mut mean = vec![0.0; d];
    for row in v.chunks_exact(d) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / n as f64;
        }
    }
    let mut var = vec![0.0; d];
    let c = center.unwrap_or(&mean);
    let (mut norm, mut dist) = (0.0, 0.0);
    for row in v.chunks_exact(d) {
        let mut nn = 0.0;
        let mut dd = 0.0;
        for k in 0..d {
            var[k] += (row[k] - mean[k]).powi(2) / n as f64;
            nn += row[k] * row[k];
            dd += (row[k] - c[k]).powi(2);
        }
        norm += nn.sqrt() / n as f64;
        dist += dd.sqrt() / n as f64;
    }
    LatentStatsResult {
        mean,
        std: var.into_iter().map(f64::sqrt).collect(),
        mean_norm: norm,
        mean_distance: dist,
    }
}

impl Node for LatentStats {
    fn spec() -> NodeSpec {
        NodeSpec::new("analysis.latent_stats", "Latent statistics")
            .category("Analysis")
            .doc(
                "Statistics of latent samples: per-dimension mean and standard deviation, mean \
                 vector norm, and mean distance to a centre (connect `stylegan.w_avg` to measure \
                 the spread around the truncation centre; by default the sample mean). Accepts \
                 `W` [N,D], `Z` [N,D], or `WPlus` [N,L,D] (every row of every sample counts).",
            )
            .input("latents", "Tensor", "[N,D] or [N,L,D] latent vectors")
            .optional_input("center", "Tensor", "[D] or [1,D] centre (e.g. w_avg)")
            .output("mean", "Tensor", "[D] per-dimension mean")
            .output("std", "Tensor", "[D] per-dimension standard deviation")
            .output("mean_norm", "float", "average Euclidean norm")
            .output(
                "mean_distance",
                "float",
                "average Euclidean distance to the centre",
            )
            .output("count", "int", "number of vectors")
    }
    fn create() -> Result<Self, NodeError> {
        Ok(LatentStats)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let t = ctx.input_tensor("latents")?;
        let shape = t.shape().to_vec();
        if !(2..=3).contains(&shape.len()) || shape.contains(&0) {
            node_bail!("`latents` must be [N,D] or [N,L,D], got {shape:?}");
        }
        let d = *shape.last().unwrap_or(&1);
        let n: usize = shape[..shape.len() - 1].iter().product();
        let v = t.to_f64_vec()?;
        let center = if ctx.has_input("center") {
            let c = ctx.input_tensor("center")?;
            if c.numel() != d {
                node_bail!(
                    "`center` has {} values, latents have {d} dimensions",
                    c.numel()
                );
            }
            Some(c.to_f64_vec()?)
        } else {
            None
        };
        let r = latent_stats(&v, n, d, center.as_deref());
        ctx.output_f64("mean", &[d])?.copy_from_slice(&r.mean);
        ctx.output_f64("std", &[d])?.copy_from_slice(&r.std);
        ctx.set_output_f64("mean_norm", r.mean_norm)?;
        ctx.set_output_f64("mean_distance", r.mean_distance)?;
        ctx.set_output_i64("count", n as i64)
    }
}

stylegraph_abi::export_plugin!(
    id: "analysis",
    version: env!("CARGO_PKG_VERSION"),
    description: "Power spectra (StyleGAN3 avg_spectra), spectrum plots, image and latent statistics",
    nodes: [Spectrum, SaveSpectrum, LoadSpectrum, SpectrumHeatmap, SpectrumSlices, ImageStats, HistogramPlot, LatentStats],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_stats_hand_values() {
        // Two 2-D vectors (3, 4) and (0, 0).
        let r = latent_stats(&[3.0, 4.0, 0.0, 0.0], 2, 2, None);
        assert_eq!(r.mean, vec![1.5, 2.0]);
        assert_eq!(r.std, vec![1.5, 2.0]);
        assert_eq!(r.mean_norm, 2.5);
        assert_eq!(r.mean_distance, 2.5);
        let r = latent_stats(&[3.0, 4.0, 0.0, 0.0], 2, 2, Some(&[0.0, 0.0]));
        assert_eq!(r.mean_distance, 2.5);
    }

    #[test]
    fn image_stats_hand_values() {
        // One 1x2 image with 2 channels: values -1 and 1 in channel 0, 0 and 0 in channel 1.
        let src = ImageSource::Tensor {
            n: 1,
            c: 2,
            h: 1,
            w: 2,
            data: vec![-1.0, 1.0, 0.0, 0.0],
            quantize: true,
        };
        let r = image_stats(&src, 4, &mut |_, _| Ok(())).unwrap();
        // Official conversion: -1 -> 0.5 -> 0; 1 -> 255.5 -> 255; 0 -> 128.
        let (m0, s0) = r.channels[0].mean_std().unwrap();
        assert_eq!((m0, s0), (127.5, 127.5));
        assert_eq!(r.channels[1].mean_std().unwrap(), (128.0, 0.0));
        assert_eq!(r.histogram, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0]);
    }
}
