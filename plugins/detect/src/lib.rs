//! The `detect` plugin: synthetic-face detectors.
//!
//! * `detect.train` / `detect.score`: a frequency-domain detector after Durall et al. 2020 and
//!   Frank et al. 2020: the azimuthally averaged log power spectrum of each image
//!   (`stylegraph_kernels::spectrum::azimuthal_log_features`) classified by logistic regression.
//!   Training takes real and synthetic images (two folders or two image streams), reports
//!   held-out accuracy and AUC, and writes a small JSON model file.
//!
//! * `detect.cnn`: the ResNet-50 binary classifier of Wang et al. 2020 ("CNN-generated images
//!   are surprisingly easy to spot... for now"), loading their published PyTorch checkpoints
//!   ([`cnn`]).
//!
//! Every scorer outputs per-image probabilities of being synthetic and, when labels are known,
//! a summary (ROC AUC, average precision, accuracy at the chosen threshold, per class).

pub mod cnn;
pub mod model;

use model::{SpectralModel, TrainingReport};
use std::path::{Path, PathBuf};
use stylegraph_abi::prelude::*;
use stylegraph_kernels::classify::{stratified_split, summarize, BinarySummary, LogisticModel};
use stylegraph_kernels::image_folder::{list_images, list_labelled_images, read_rgb8};
use stylegraph_kernels::spectrum::{azimuthal_log_features, PowerSpectrum2d};

/// Images to classify: a tensor batch or files.
pub enum Images {
    /// `[N, C, H, W]` f32 in [-1, 1].
    Tensor {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        data: Vec<f32>,
    },
    Files(Vec<PathBuf>),
}

impl Images {
    pub fn len(&self) -> usize {
        match self {
            Images::Tensor { n, .. } => *n,
            Images::Files(f) => f.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A name for image `i` (its file, or `#i`).
    pub fn name(&self, i: usize) -> String {
        match self {
            Images::Files(f) => f
                .get(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Images::Tensor { .. } => format!("#{i}"),
        }
    }
    /// Image `i` as 8-bit RGB planes `[3, H, W]` (0..255) with its height and width. Tensor
    /// images use the official conversion `clamp(x * 127.5 + 128, 0, 255)`, truncated;
    /// single-channel images are repeated.
    pub fn rgb_planes(&self, i: usize) -> Result<(usize, usize, Vec<f64>), NodeError> {
        match self {
            Images::Tensor { n, c, h, w, data } => {
                if i >= *n || !(*c == 1 || *c == 3) {
                    node_bail!("image {i}: need 1 or 3 channels and i < {n} (have {c} channels)");
                }
                let hw = h * w;
                let k = c * hw;
                let img = &data[i * k..(i + 1) * k];
                let mut out = Vec::with_capacity(3 * hw);
                for ch in 0..3 {
                    let src = &img[if *c == 3 { ch * hw } else { 0 }..][..hw];
                    out.extend(
                        src.iter()
                            .map(|&v| (v as f64 * 127.5 + 128.0).clamp(0.0, 255.0).floor()),
                    );
                }
                Ok((*h, *w, out))
            }
            Images::Files(f) => {
                let p = f
                    .get(i)
                    .ok_or_else(|| NodeError::invalid(format!("image {i} requested")))?;
                let img = read_rgb8(p)?;
                Ok((img.height, img.width, img.to_planes_f64()))
            }
        }
    }
}

/// Reads a `[N, C, H, W]` input.
pub fn tensor_images(ctx: &Context, name: &str) -> Result<Images, NodeError> {
    let t = ctx.input_tensor(name)?;
    let s = t.shape().to_vec();
    if s.len() != 4 || s.contains(&0) {
        node_bail!("input {name:?} must be a non-empty [N, C, H, W] batch, got {s:?}");
    }
    Ok(Images::Tensor {
        n: s[0],
        c: s[1],
        h: s[2],
        w: s[3],
        data: t.to_f32_vec()?,
    })
}

/// Images and optional labels from an input (`images`, `labels`) or a folder param: a folder
/// with `0_real/` and `1_fake/` subfolders is labelled by them.
pub fn images_and_labels(
    ctx: &Context,
    folder_param: &str,
) -> Result<(Images, Option<Vec<bool>>), NodeError> {
    let (images, mut labels) = if ctx.has_input("images") {
        (tensor_images(ctx, "images")?, None)
    } else {
        let folder = ctx.param_str(folder_param)?;
        if folder.is_empty() {
            node_bail!("connect `images` or set `{folder_param}`");
        }
        let dir = Path::new(&folder);
        match list_labelled_images(dir)? {
            Some(pairs) => {
                let (files, labels): (Vec<PathBuf>, Vec<bool>) = pairs.into_iter().unzip();
                (Images::Files(files), Some(labels))
            }
            None => (Images::Files(list_images(dir)?), None),
        }
    };
    if ctx.has_input("labels") {
        let t = ctx.input_tensor("labels")?;
        let v = t.to_f64_vec()?;
        if v.len() != images.len() {
            node_bail!(
                "`labels` has {} values for {} images",
                v.len(),
                images.len()
            );
        }
        labels = Some(v.into_iter().map(|x| x > 0.5).collect());
    }
    Ok((images, labels))
}

fn gray_of_planes(h: usize, w: usize, rgb: &[f64]) -> Vec<f64> {
    let n = h * w;
    (0..n)
        .map(|k| 0.299 * rgb[k] + 0.587 * rgb[n + k] + 0.114 * rgb[2 * n + k])
        .collect()
}

/// Spectral features of every image; `tick(i, n)` reports progress and may stop.
pub fn spectral_features(
    images: &Images,
    bins: usize,
    tick: &mut dyn FnMut(usize, usize) -> NodeResult,
) -> Result<Vec<Vec<f64>>, NodeError> {
    let mut plan: Option<PowerSpectrum2d> = None;
    let mut out = Vec::with_capacity(images.len());
    for i in 0..images.len() {
        tick(i, images.len())?;
        let (h, w, rgb) = images.rgb_planes(i)?;
        let gray = gray_of_planes(h, w, &rgb);
        out.push(
            azimuthal_log_features(&gray, h, w, bins, &mut plan)
                .map_err(|e| NodeError::invalid(format!("{}: {e}", images.name(i))))?,
        );
    }
    Ok(out)
}

/// Trains a spectral detector on feature rows of real and synthetic images; a stratified
/// `holdout` fraction (0 = none) is kept out for the report.
pub fn train_spectral(
    real: Vec<Vec<f64>>,
    fake: Vec<Vec<f64>>,
    bins: usize,
    holdout: f64,
    seed: u64,
    l2: f64,
) -> Result<(SpectralModel, TrainingReport), NodeError> {
    if real.len() < 2 || fake.len() < 2 {
        node_bail!(
            "training needs at least two real and two synthetic images (got {} and {})",
            real.len(),
            fake.len()
        );
    }
    let labels: Vec<bool> = std::iter::repeat_n(false, real.len())
        .chain(std::iter::repeat_n(true, fake.len()))
        .collect();
    let feats: Vec<Vec<f64>> = real.into_iter().chain(fake).collect();
    let (train_idx, test_idx) = if holdout > 0.0 {
        stratified_split(&labels, holdout, seed)
    } else {
        ((0..labels.len()).collect(), Vec::new())
    };
    let xs: Vec<Vec<f64>> = train_idx.iter().map(|&i| feats[i].clone()).collect();
    let ys: Vec<bool> = train_idx.iter().map(|&i| labels[i]).collect();
    let lr = LogisticModel::fit(&xs, &ys, l2)?;
    let eval = |idx: &[usize]| -> Result<Option<BinarySummary>, NodeError> {
        if idx.is_empty() {
            return Ok(None);
        }
        let s: Vec<f64> = idx
            .iter()
            .map(|&i| lr.probability(&feats[i]))
            .collect::<Result<_, _>>()?;
        let l: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        Ok(Some(summarize(&s, &l, 0.5)?))
    };
    let report = TrainingReport {
        train: eval(&train_idx)?,
        holdout: eval(&test_idx)?,
    };
    Ok((
        SpectralModel {
            bins,
            threshold: 0.5,
            logistic: lr,
            report: report.clone(),
        },
        report,
    ))
}

/// One line per measure of a summary.
pub fn summary_text(s: &BinarySummary) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "n/a".into());
    format!(
        "images {} (synthetic {}), threshold {}: accuracy {:.4} (real {}, synthetic {}), AUC {}, AP {}",
        s.count,
        s.positives,
        s.threshold,
        s.accuracy,
        opt(s.real_accuracy),
        opt(s.fake_accuracy),
        opt(s.auc),
        opt(s.average_precision)
    )
}

/// Writes `path,score[,label]` lines atomically.
pub fn write_scores_csv(
    path: &str,
    images: &Images,
    scores: &[f64],
    labels: Option<&[bool]>,
) -> NodeResult {
    let mut text = String::from(if labels.is_some() {
        "image,score,label\n"
    } else {
        "image,score\n"
    });
    for (i, s) in scores.iter().enumerate() {
        let name = images.name(i).replace(',', ";");
        match labels {
            Some(l) => text.push_str(&format!("{name},{s},{}\n", u8::from(l[i]))),
            None => text.push_str(&format!("{name},{s}\n")),
        }
    }
    let p = Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::new(format!("{}: {e}", dir.display())))?;
    }
    stylegraph_npy::write_atomic(p, text.as_bytes())?;
    Ok(())
}

/// Sets the score outputs shared by the scoring nodes: `scores`, `auc`, `ap`, `accuracy`,
/// `summary` (NaN measures without labels), and writes the CSV when `csv` is set.
pub fn emit_scores(
    ctx: &mut Context,
    images: &Images,
    scores: &[f64],
    labels: Option<&[bool]>,
    threshold: f64,
) -> NodeResult {
    ctx.output_f64("scores", &[scores.len()])?
        .copy_from_slice(scores);
    let csv = ctx.param_str("csv")?;
    if !csv.is_empty() {
        write_scores_csv(&csv, images, scores, labels)?;
    }
    let flagged = scores.iter().filter(|&&s| s > threshold).count();
    match labels {
        Some(l) => {
            let s = summarize(scores, l, threshold)?;
            let text = summary_text(&s);
            ctx.log(SG_LOG_INFO, &text);
            ctx.set_output_f64("auc", s.auc.unwrap_or(f64::NAN))?;
            ctx.set_output_f64("ap", s.average_precision.unwrap_or(f64::NAN))?;
            ctx.set_output_f64("accuracy", s.accuracy)?;
            ctx.set_output_str("summary", &text)
        }
        None => {
            let text = format!(
                "images {}: {flagged} above threshold {threshold} (no labels: AUC/AP/accuracy not computed)",
                scores.len()
            );
            ctx.log(SG_LOG_INFO, &text);
            ctx.set_output_f64("auc", f64::NAN)?;
            ctx.set_output_f64("ap", f64::NAN)?;
            ctx.set_output_f64("accuracy", f64::NAN)?;
            ctx.set_output_str("summary", &text)
        }
    }
}

/// The score outputs and the `threshold`/`csv` params shared by the scoring nodes.
fn with_score_ports(spec: NodeSpec, default_threshold: f64) -> NodeSpec {
    spec.optional_input("images", "Image", "[N,3,H,W] images in [-1,1]; used instead of `folder` when connected")
        .optional_input("labels", "Tensor", "[N] ground truth, 1 = synthetic (optional; folders with 0_real/ and 1_fake/ are labelled by them)")
        .output("scores", "Tensor", "[N] f64 probability that each image is synthetic")
        .output("auc", "float", "ROC AUC (NaN without labels)")
        .output("ap", "float", "average precision (NaN without labels)")
        .output("accuracy", "float", "accuracy at `threshold` (NaN without labels)")
        .output("summary", "string", "one-line summary")
        .param(ParamSpec::path("folder", "").doc("folder of PNG/JPEG images, or with 0_real/ and 1_fake/ subfolders for labelled evaluation"))
        .param(ParamSpec::float("threshold", default_threshold).range(0.0, 1.0).doc("scores above it count as synthetic"))
        .param(ParamSpec::output_path("csv", "").doc("per-image scores CSV to write (empty: none)"))
}

// ---------------------------------------------------------------------------------------------
// detect.train

/// Trains the spectral detector.
#[derive(Default)]
pub struct Train;

impl Node for Train {
    fn spec() -> NodeSpec {
        NodeSpec::new("detect.train", "Train spectral detector")
            .category("Detection")
            .doc(
                "Trains the frequency-domain synthetic-image detector (after Durall et al. 2020, \
                 Frank et al. 2020): each image's grey-level power spectrum is averaged over \
                 `bins` rings from DC to the corner frequency (dB, min-max normalised), and a \
                 logistic regression (L2 `l2`, standardised features) separates real from \
                 synthetic. A stratified `holdout` fraction is kept out and its accuracy and AUC \
                 are reported; the model (trained on the rest) is written as JSON to `model`.",
            )
            .optional_input(
                "real",
                "Image",
                "real images [N,3,H,W] in [-1,1] (instead of `real_folder`)",
            )
            .optional_input(
                "fake",
                "Image",
                "synthetic images [N,3,H,W] in [-1,1] (instead of `fake_folder`)",
            )
            .output("model", "path", "the model file written")
            .output(
                "accuracy",
                "float",
                "held-out accuracy at threshold 0.5 (training accuracy when holdout is 0)",
            )
            .output(
                "auc",
                "float",
                "held-out ROC AUC (training AUC when holdout is 0)",
            )
            .output("summary", "string", "training and held-out summaries")
            .param(ParamSpec::path("real_folder", "").doc("folder of real PNG/JPEG images"))
            .param(ParamSpec::path("fake_folder", "").doc("folder of synthetic PNG/JPEG images"))
            .param(
                ParamSpec::output_path("model", "spectral_detector.json")
                    .doc("model file to write"),
            )
            .param(
                ParamSpec::int("bins", 64)
                    .range(4.0, 1024.0)
                    .doc("number of spectral rings (features)"),
            )
            .param(
                ParamSpec::float("holdout", 0.25)
                    .range(0.0, 0.9)
                    .doc("fraction of each class held out for evaluation"),
            )
            .param(
                ParamSpec::float("l2", 0.01)
                    .min(1e-9)
                    .doc("L2 penalty of the logistic regression"),
            )
            .param(ParamSpec::seed("seed", 0).doc("seed of the hold-out split"))
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Train)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let side = |ctx: &Context, input: &str, param: &str| -> Result<Images, NodeError> {
            if ctx.has_input(input) {
                tensor_images(ctx, input)
            } else {
                let f = ctx.param_str(param)?;
                if f.is_empty() {
                    node_bail!("connect `{input}` or set `{param}`");
                }
                Ok(Images::Files(list_images(Path::new(&f))?))
            }
        };
        let real = side(ctx, "real", "real_folder")?;
        let fake = side(ctx, "fake", "fake_folder")?;
        let bins = usize::try_from(ctx.param_i64("bins")?).unwrap_or(64);
        let total = real.len() + fake.len();
        let fr = spectral_features(&real, bins, &mut |i, _| {
            ctx.progress(i as f64 / total as f64, "features");
            ctx.check_cancelled()
        })?;
        let ff = spectral_features(&fake, bins, &mut |i, _| {
            ctx.progress((real.len() + i) as f64 / total as f64, "features");
            ctx.check_cancelled()
        })?;
        let seed = ctx.param_i64("seed")?.max(0) as u64;
        let (model, report) = train_spectral(
            fr,
            ff,
            bins,
            ctx.param_f64("holdout")?,
            seed,
            ctx.param_f64("l2")?,
        )?;
        let path = ctx.param_str("model")?;
        model.save(Path::new(&path))?;
        let eval = report.holdout.as_ref().or(report.train.as_ref());
        let mut text = String::new();
        if let Some(t) = &report.train {
            text.push_str(&format!("train: {}\n", summary_text(t)));
        }
        if let Some(h) = &report.holdout {
            text.push_str(&format!("held out: {}\n", summary_text(h)));
        }
        ctx.log(SG_LOG_INFO, text.trim_end());
        ctx.set_output_str("model", &path)?;
        ctx.set_output_f64("accuracy", eval.map(|s| s.accuracy).unwrap_or(f64::NAN))?;
        ctx.set_output_f64("auc", eval.and_then(|s| s.auc).unwrap_or(f64::NAN))?;
        ctx.set_output_str("summary", text.trim_end())
    }
}

// ---------------------------------------------------------------------------------------------
// detect.score

/// Scores images with a trained spectral detector.
#[derive(Default)]
pub struct Score;

impl Node for Score {
    fn spec() -> NodeSpec {
        with_score_ports(
            NodeSpec::new("detect.score", "Score (spectral detector)")
                .category("Detection")
                .doc(
                    "Scores images with a spectral detector trained by `detect.train`: the \
                     probability that each image is synthetic, plus AUC, average precision and \
                     accuracy at `threshold` when labels are known. Writes per-image scores as CSV \
                     when `csv` is set.",
                )
                .param(
                    ParamSpec::path("model", "spectral_detector.json")
                        .doc("model file from detect.train"),
                ),
            0.5,
        )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Score)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let model = SpectralModel::load(Path::new(&ctx.param_str("model")?))?;
        let (images, labels) = images_and_labels(ctx, "folder")?;
        if images.is_empty() {
            node_bail!("no images");
        }
        let feats = spectral_features(&images, model.bins, &mut |i, n| {
            ctx.progress(i as f64 / n as f64, "scoring");
            ctx.check_cancelled()
        })?;
        let scores: Vec<f64> = feats
            .iter()
            .map(|f| model.logistic.probability(f))
            .collect::<Result<_, _>>()?;
        let threshold = ctx.param_f64("threshold")?;
        emit_scores(ctx, &images, &scores, labels.as_deref(), threshold)
    }
}

stylegraph_abi::export_plugin!(
    id: "detect",
    version: env!("CARGO_PKG_VERSION"),
    description: "Synthetic-face detectors: spectral (trainable) and Wang et al. 2020 ResNet-50",
    nodes: [Train, Score, cnn::CnnDetect],
);
