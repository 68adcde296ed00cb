//! `detect.cnn`: the ResNet-50 detector of Wang et al. 2020 with their published checkpoints.
//!
//! Checkpoints are `torch.save({'model': state_dict, ...})` files (the zip format of
//! torch >= 1.6 or the legacy format), read with `stylegraph_pickle::read_torch_zip`; the
//! network is `stylegraph_kernels::resnet::ResNet`. Preprocessing follows their test code:
//! no resizing, optional centre crop (224 in the paper's evaluation, none in their demo scripts
//! and "no crop" results), `ToTensor` and ImageNet normalisation; the score is the sigmoid of
//! the single logit.

use crate::{emit_scores, images_and_labels, Images};
use std::path::{Path, PathBuf};
use stylegraph_abi::prelude::*;
use stylegraph_kernels::resnet::{wang_preprocess, ResNet};
use stylegraph_kernels::TensorMap;

/// Errors loading a detector checkpoint; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CnnError {
    #[error(transparent)]
    Pickle(#[from] stylegraph_pickle::PickleError),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Loads a Wang et al. checkpoint (`{'model': state_dict}`) into a ResNet with one output.
pub fn load_checkpoint(path: &Path) -> Result<ResNet, CnnError> {
    let p = path.display().to_string();
    let bad = |message: String| CnnError::Invalid {
        path: p.clone(),
        message,
    };
    let ckpt = stylegraph_pickle::read_torch_zip(path)?;
    let tensors = ckpt.state_dict(&["model"])?;
    if tensors.is_empty() {
        return Err(bad("the checkpoint's `model` entry holds no tensors".into()));
    }
    let mut map = TensorMap::new();
    for t in tensors {
        // Integer buffers (`num_batches_tracked`) are not needed for inference.
        let Some(values) = t.to_f32() else { continue };
        let name = t.name.strip_prefix("module.").unwrap_or(&t.name).to_owned();
        map.insert(name, t.shape.clone(), values);
    }
    let net = ResNet::from_state_dict(&map).map_err(|e| bad(e.to_string()))?;
    if net.num_classes() != 1 {
        return Err(bad(format!(
            "the network has {} outputs; Wang et al.'s detector has one (a logit)",
            net.num_classes()
        )));
    }
    Ok(net)
}

/// Probability that an 8-bit RGB image (`[H, W, 3]`) is synthetic: sigmoid of the logit after
/// Wang et al.'s preprocessing. Also returns the logit.
pub fn score_rgb8(
    net: &ResNet,
    rgb: &[u8],
    height: usize,
    width: usize,
    crop: Option<usize>,
    cancelled: &dyn Fn() -> bool,
) -> Result<(f64, f64), NodeError> {
    let (x, h, w) = wang_preprocess(rgb, height, width, crop)?;
    let logits = net.forward(&x, h, w, cancelled)?;
    let z = *logits
        .first()
        .ok_or_else(|| NodeError::new("network produced no output"))? as f64;
    Ok((1.0 / (1.0 + (-z).exp()), z))
}

/// The ResNet-50 detector node.
#[derive(Default)]
pub struct CnnDetect {
    loaded: Option<(PathBuf, std::sync::Arc<ResNet>)>,
}

impl Node for CnnDetect {
    fn spec() -> NodeSpec {
        crate::with_score_ports(
            NodeSpec::new("detect.cnn", "CNN detector (Wang et al. 2020)")
                .category("Detection")
                .doc(
                    "The ResNet-50 binary classifier of Wang et al. 2020, \"CNN-generated images are \
                     surprisingly easy to spot... for now\", with their published weights \
                     (`blur_jpg_prob0.5.pth` or `blur_jpg_prob0.1.pth`, which must be downloaded \
                     separately; see docs/detect.md). Images are not resized; `crop` > 0 centre-crops \
                     (the paper's evaluation used 224, their later \"no crop\" results are better), \
                     then ImageNet normalisation. Scores are sigmoid(logit). The published model is \
                     not calibrated for every generator (AUC 0.92 on unseen StyleGAN3 images, but \
                     accuracy at 0.5 can be low): choose `threshold` for your data.",
                )
                .param(ParamSpec::path("weights", "").doc("checkpoint: torch.save({'model': state_dict}) of a torchvision-layout ResNet with one output"))
                .param(ParamSpec::int("crop", 0).range(0.0, 4096.0).doc("centre-crop size (0 = none, 224 = paper)")),
            0.5,
        )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(CnnDetect::default())
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let weights = PathBuf::from(ctx.param_str("weights")?);
        if weights.as_os_str().is_empty() {
            node_bail!("set `weights` to a detector checkpoint (see docs/detect.md)");
        }
        let net = match &self.loaded {
            Some((p, n)) if *p == weights => n.clone(),
            _ => {
                let n = std::sync::Arc::new(load_checkpoint(&weights)?);
                self.loaded = Some((weights.clone(), n.clone()));
                n
            }
        };
        let crop = match ctx.param_i64("crop")? {
            c if c > 0 => Some(c as usize),
            _ => None,
        };
        let (images, labels) = images_and_labels(ctx, "folder")?;
        if images.is_empty() {
            node_bail!("no images");
        }
        let mut scores = Vec::with_capacity(images.len());
        for i in 0..images.len() {
            ctx.check_cancelled()?;
            ctx.progress(i as f64 / images.len() as f64, "classifying");
            let (h, w, rgb) = rgb8_of(&images, i)?;
            let cancel = || ctx.is_cancelled();
            let (p, _) = score_rgb8(&net, &rgb, h, w, crop, &cancel)
                .map_err(|e| NodeError::new(format!("{}: {e}", images.name(i))))?;
            scores.push(p);
        }
        let threshold = ctx.param_f64("threshold")?;
        emit_scores(ctx, &images, &scores, labels.as_deref(), threshold)
    }
}

/// Image `i` as interleaved 8-bit RGB `(height, width, [H, W, 3])`.
pub fn rgb8_of(images: &Images, i: usize) -> Result<(usize, usize, Vec<u8>), NodeError> {
    let (h, w, planes) = images.rgb_planes(i)?;
    let n = h * w;
    let mut rgb = vec![0u8; n * 3];
    for k in 0..n {
        for c in 0..3 {
            rgb[k * 3 + c] = planes[c * n + k] as u8;
        }
    }
    Ok((h, w, rgb))
}
