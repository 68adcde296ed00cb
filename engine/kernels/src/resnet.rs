//! Inference of torchvision-layout ResNets (basic or bottleneck blocks, any depth and width), as
//! used by the synthetic-image detector of Wang et al. 2020 ("CNN-generated images are
//! surprisingly easy to spot... for now": a ResNet-50 with one output logit).
//!
//! The network is built from a state dict with the usual names (`conv1.weight`, `bn1.*`,
//! `layer{1..4}.{j}.conv{1,2,3}.weight`, `...bn{1,2,3}.*`, `...downsample.{0,1}.*`, `fc.*`);
//! block counts and widths are read from the tensors, so a ResNet-50 (`[3, 4, 6, 3]`
//! bottlenecks) and a narrow test network of the same structure load the same way. Batch norm
//! runs in eval mode (running statistics, eps 1e-5) folded into a per-channel scale and shift.
//! Convolutions are im2col + GEMM.

use crate::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::tensor_map::{TensorMap, TensorMapError};

/// Errors building or running a ResNet.
#[derive(Debug, thiserror::Error)]
pub enum ResNetError {
    /// A tensor is missing or has the wrong shape.
    #[error(transparent)]
    Tensors(#[from] TensorMapError),
    /// The state dict does not describe a ResNet this code runs.
    #[error("ResNet state dict: {0}")]
    Structure(String),
    /// The input does not fit.
    #[error("ResNet input: {0}")]
    Input(String),
}

/// Batch-norm epsilon of `torch.nn.BatchNorm2d`.
const BN_EPS: f32 = 1e-5;

struct Conv {
    out_c: usize,
    in_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    /// `[out_c, in_c * k * k]`.
    weight: Vec<f32>,
}

struct Norm {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

struct Block {
    convs: Vec<(Conv, Norm)>,
    downsample: Option<(Conv, Norm)>,
}

/// A feature map `[c, h, w]`.
#[derive(Clone, Debug)]
struct Map {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

/// A ResNet classifier.
pub struct ResNet {
    stem: (Conv, Norm),
    stages: Vec<Vec<Block>>,
    fc_weight: Vec<f32>,
    fc_bias: Vec<f32>,
    num_classes: usize,
    features: usize,
    bottleneck: bool,
}

fn conv_from(t: &TensorMap, name: &str, stride: usize, pad: usize) -> Result<Conv, ResNetError> {
    let w = t.get(&format!("{name}.weight"))?;
    if w.shape.len() != 4 || w.shape[2] != w.shape[3] || w.shape.contains(&0) {
        return Err(ResNetError::Structure(format!(
            "{name}.weight has shape {:?}, expected [out, in, k, k]",
            w.shape
        )));
    }
    Ok(Conv {
        out_c: w.shape[0],
        in_c: w.shape[1],
        k: w.shape[2],
        stride,
        pad,
        weight: w.data.clone(),
    })
}

fn norm_from(t: &TensorMap, name: &str, c: usize) -> Result<Norm, ResNetError> {
    let g = t.get_shaped(&format!("{name}.weight"), &[c])?;
    let b = t.get_shaped(&format!("{name}.bias"), &[c])?;
    let m = t.get_shaped(&format!("{name}.running_mean"), &[c])?;
    let v = t.get_shaped(&format!("{name}.running_var"), &[c])?;
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for i in 0..c {
        let s = g.data[i] / (v.data[i] + BN_EPS).sqrt();
        scale.push(s);
        shift.push(b.data[i] - m.data[i] * s);
    }
    Ok(Norm { scale, shift })
}

impl ResNet {
    /// Builds the network from a state dict (see the module docs for the names).
    pub fn from_state_dict(t: &TensorMap) -> Result<ResNet, ResNetError> {
        let stem_conv = conv_from(t, "conv1", 2, 3)?;
        if stem_conv.in_c != 3 || stem_conv.k != 7 {
            return Err(ResNetError::Structure(format!(
                "conv1 must be a 7x7 convolution of 3 channels (got {}x{} of {})",
                stem_conv.k, stem_conv.k, stem_conv.in_c
            )));
        }
        let stem_norm = norm_from(t, "bn1", stem_conv.out_c)?;
        let bottleneck = t.get_opt("layer1.0.conv3.weight").is_some();
        let mut c = stem_conv.out_c;
        let mut stages = Vec::new();
        for li in 1..=4 {
            let mut blocks = Vec::new();
            for bi in 0.. {
                let p = format!("layer{li}.{bi}");
                if t.get_opt(&format!("{p}.conv1.weight")).is_none() {
                    break;
                }
                let stride = if li > 1 && bi == 0 { 2 } else { 1 };
                let names: &[(&str, usize, usize)] = if bottleneck {
                    // torchvision (v1.5) puts the stride on the 3x3 convolution.
                    &[("1", 1, 0), ("2", stride, 1), ("3", 1, 0)]
                } else {
                    &[("1", stride, 1), ("2", 1, 1)]
                };
                let mut convs = Vec::new();
                let mut in_c = c;
                for (n, s, pad) in names {
                    let conv = conv_from(t, &format!("{p}.conv{n}"), *s, *pad)?;
                    if conv.in_c != in_c {
                        return Err(ResNetError::Structure(format!(
                            "{p}.conv{n} takes {} channels but receives {in_c}",
                            conv.in_c
                        )));
                    }
                    let norm = norm_from(t, &format!("{p}.bn{n}"), conv.out_c)?;
                    in_c = conv.out_c;
                    convs.push((conv, norm));
                }
                let downsample = if t.get_opt(&format!("{p}.downsample.0.weight")).is_some() {
                    let conv = conv_from(t, &format!("{p}.downsample.0"), stride, 0)?;
                    if conv.in_c != c || conv.out_c != in_c || conv.k != 1 {
                        return Err(ResNetError::Structure(format!(
                            "{p}.downsample.0 must map {c} to {in_c} channels with a 1x1 kernel"
                        )));
                    }
                    let norm = norm_from(t, &format!("{p}.downsample.1"), conv.out_c)?;
                    Some((conv, norm))
                } else {
                    if stride != 1 || in_c != c {
                        return Err(ResNetError::Structure(format!(
                            "{p} changes shape but has no downsample branch"
                        )));
                    }
                    None
                };
                c = in_c;
                blocks.push(Block { convs, downsample });
            }
            if blocks.is_empty() {
                return Err(ResNetError::Structure(format!("layer{li} has no blocks")));
            }
            stages.push(blocks);
        }
        let fc = t.get("fc.weight")?;
        if fc.shape.len() != 2 || fc.shape[1] != c || fc.shape[0] == 0 {
            return Err(ResNetError::Structure(format!(
                "fc.weight has shape {:?}, expected [classes, {c}]",
                fc.shape
            )));
        }
        let num_classes = fc.shape[0];
        let fc_bias = t.get_shaped("fc.bias", &[num_classes])?.data.clone();
        Ok(ResNet {
            stem: (stem_conv, stem_norm),
            stages,
            fc_weight: fc.data.clone(),
            fc_bias,
            num_classes,
            features: c,
            bottleneck,
        })
    }

    /// Blocks per stage (`[3, 4, 6, 3]` for ResNet-50).
    pub fn blocks(&self) -> Vec<usize> {
        self.stages.iter().map(Vec::len).collect()
    }

    /// True for bottleneck blocks (ResNet-50 and deeper).
    pub fn is_bottleneck(&self) -> bool {
        self.bottleneck
    }

    /// Number of outputs of the final layer.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Width of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.features
    }

    /// Runs one image `[3, height, width]` (already normalised) and returns the logits.
    /// `cancelled` is polled between blocks; when it returns true the run stops with an error.
    pub fn forward(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<f32>, ResNetError> {
        if image.len() != 3 * height * width || height < 8 || width < 8 {
            return Err(ResNetError::Input(format!(
                "expected a [3, {height}, {width}] image of at least 8x8 ({} values given)",
                image.len()
            )));
        }
        let mut x = Map {
            c: 3,
            h: height,
            w: width,
            data: image.to_vec(),
        };
        x = conv_norm(&x, &self.stem.0, &self.stem.1, true);
        x = max_pool_3x3_s2(&x);
        for stage in &self.stages {
            for block in stage {
                if cancelled() {
                    return Err(ResNetError::Input("cancelled".into()));
                }
                let identity = match &block.downsample {
                    Some((c, n)) => conv_norm(&x, c, n, false),
                    None => x.clone(),
                };
                let last = block.convs.len() - 1;
                let mut y = x;
                for (i, (c, n)) in block.convs.iter().enumerate() {
                    y = conv_norm(&y, c, n, i != last);
                }
                for (a, b) in y.data.iter_mut().zip(&identity.data) {
                    *a = (*a + b).max(0.0);
                }
                x = y;
            }
        }
        let hw = (x.h * x.w) as f32;
        let pooled: Vec<f32> = x
            .data
            .chunks_exact(x.h * x.w)
            .map(|ch| ch.iter().sum::<f32>() / hw)
            .collect();
        Ok((0..self.num_classes)
            .map(|o| {
                self.fc_bias[o]
                    + self.fc_weight[o * self.features..(o + 1) * self.features]
                        .iter()
                        .zip(&pooled)
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
            })
            .collect())
    }
}

/// Convolution (no bias), folded batch norm and optional ReLU.
fn conv_norm(x: &Map, conv: &Conv, norm: &Norm, relu: bool) -> Map {
    let (k, s, p) = (conv.k, conv.stride, conv.pad);
    let oh = (x.h + 2 * p - k) / s + 1;
    let ow = (x.w + 2 * p - k) / s + 1;
    let n = oh * ow;
    let kk = conv.in_c * k * k;
    let direct = k == 1 && s == 1 && p == 0;
    let cols: Vec<f32> = if direct {
        Vec::new()
    } else {
        // im2col: row (ic, ky, kx), column (oy, ox).
        let mut cols = vec![0f32; kk * n];
        for ic in 0..conv.in_c {
            let src = &x.data[ic * x.h * x.w..(ic + 1) * x.h * x.w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((ic * k + ky) * k + kx) * n..][..n];
                    for oy in 0..oh {
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        let srow = &src[iy as usize * x.w..(iy as usize + 1) * x.w];
                        for ox in 0..ow {
                            let ix = (ox * s + kx) as isize - p as isize;
                            if ix >= 0 && ix < x.w as isize {
                                row[oy * ow + ox] = srow[ix as usize];
                            }
                        }
                    }
                }
            }
        }
        cols
    };
    let rhs_data: &[f32] = if direct { &x.data } else { &cols };
    let mut out = vec![0f32; conv.out_c * n];
    sgemm(
        MatMut {
            data: &mut out,
            rows: conv.out_c,
            cols: n,
            row_stride: n,
        },
        MatRef {
            data: &conv.weight,
            rows: conv.out_c,
            cols: kk,
            row_stride: kk,
        },
        MatRef {
            data: rhs_data,
            rows: kk,
            cols: n,
            row_stride: n,
        },
        false,
        Threads::Pool,
    );
    for (c, ch) in out.chunks_exact_mut(n).enumerate() {
        let (a, b) = (norm.scale[c], norm.shift[c]);
        for v in ch.iter_mut() {
            *v = *v * a + b;
            if relu && *v < 0.0 {
                *v = 0.0;
            }
        }
    }
    Map {
        c: conv.out_c,
        h: oh,
        w: ow,
        data: out,
    }
}

/// `MaxPool2d(kernel_size=3, stride=2, padding=1)`.
fn max_pool_3x3_s2(x: &Map) -> Map {
    let oh = (x.h + 2 - 3) / 2 + 1;
    let ow = (x.w + 2 - 3) / 2 + 1;
    let mut out = vec![f32::NEG_INFINITY; x.c * oh * ow];
    for c in 0..x.c {
        let src = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for dy in 0..3 {
                    let iy = (oy * 2 + dy) as isize - 1;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    for dx in 0..3 {
                        let ix = (ox * 2 + dx) as isize - 1;
                        if ix >= 0 && ix < x.w as isize {
                            m = m.max(src[iy as usize * x.w + ix as usize]);
                        }
                    }
                }
                out[(c * oh + oy) * ow + ox] = m;
            }
        }
    }
    Map {
        c: x.c,
        h: oh,
        w: ow,
        data: out,
    }
}

/// ImageNet normalisation used by Wang et al.: RGB in [0, 1] minus mean, over std.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Wang et al.'s test-time preprocessing of an 8-bit RGB image (`[H, W, 3]` interleaved):
/// optional centre crop to `crop x crop` (torchvision `CenterCrop`: offsets rounded to nearest;
/// the paper's evaluation crops to 224, their demo scripts default to no crop), then `ToTensor`
/// (divide by 255) and ImageNet `Normalize`. No resizing. Returns `([3, h, w], h, w)`.
pub fn wang_preprocess(
    rgb: &[u8],
    height: usize,
    width: usize,
    crop: Option<usize>,
) -> Result<(Vec<f32>, usize, usize), ResNetError> {
    if rgb.len() != height * width * 3 {
        return Err(ResNetError::Input(format!(
            "{} bytes are not a {height}x{width} RGB image",
            rgb.len()
        )));
    }
    let (h, w, y0, x0) = match crop {
        Some(c) => {
            if c == 0 || c > height || c > width {
                return Err(ResNetError::Input(format!(
                    "cannot centre-crop a {height}x{width} image to {c}x{c}"
                )));
            }
            let y0 = ((height - c) as f64 / 2.0).round_ties_even() as usize;
            let x0 = ((width - c) as f64 / 2.0).round_ties_even() as usize;
            (c, c, y0, x0)
        }
        None => (height, width, 0, 0),
    };
    let mut out = vec![0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let px = &rgb[((y + y0) * width + x + x0) * 3..][..3];
            for c in 0..3 {
                out[(c * h + y) * w + x] =
                    (px[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
    }
    Ok((out, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(t: &mut TensorMap, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) {
        let n: usize = shape.iter().product();
        t.insert(name, shape.to_vec(), (0..n).map(f).collect());
    }

    fn bn(t: &mut TensorMap, name: &str, c: usize) {
        add(t, &format!("{name}.weight"), &[c], |i| 1.0 + 0.1 * i as f32);
        add(t, &format!("{name}.bias"), &[c], |i| 0.05 * i as f32);
        add(t, &format!("{name}.running_mean"), &[c], |i| {
            0.01 * i as f32
        });
        add(t, &format!("{name}.running_var"), &[c], |i| {
            1.0 + 0.2 * i as f32
        });
    }

    /// A tiny basic-block ResNet: stem of 2 channels, one block per stage, width 2 everywhere.
    fn tiny() -> TensorMap {
        let mut t = TensorMap::new();
        add(&mut t, "conv1.weight", &[2, 3, 7, 7], |i| {
            ((i % 7) as f32 - 3.0) * 0.01
        });
        bn(&mut t, "bn1", 2);
        for l in 1..=4 {
            let p = format!("layer{l}.0");
            add(&mut t, &format!("{p}.conv1.weight"), &[2, 2, 3, 3], |i| {
                (i % 5) as f32 * 0.05
            });
            bn(&mut t, &format!("{p}.bn1"), 2);
            add(&mut t, &format!("{p}.conv2.weight"), &[2, 2, 3, 3], |i| {
                (i % 3) as f32 * 0.05
            });
            bn(&mut t, &format!("{p}.bn2"), 2);
            if l > 1 {
                add(
                    &mut t,
                    &format!("{p}.downsample.0.weight"),
                    &[2, 2, 1, 1],
                    |i| 0.5 + i as f32 * 0.1,
                );
                bn(&mut t, &format!("{p}.downsample.1"), 2);
            }
        }
        add(&mut t, "fc.weight", &[1, 2], |i| [0.7, -0.3][i]);
        add(&mut t, "fc.bias", &[1], |_| 0.1);
        t
    }

    #[test]
    fn builds_and_runs_a_basic_block_network() {
        let net = ResNet::from_state_dict(&tiny()).unwrap();
        assert_eq!(net.blocks(), vec![1, 1, 1, 1]);
        assert!(!net.is_bottleneck());
        let img: Vec<f32> = (0..3 * 32 * 32)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
            .collect();
        let a = net.forward(&img, 32, 32, &|| false).unwrap();
        assert_eq!(a.len(), 1);
        assert!(a[0].is_finite());
        assert!(net.forward(&img, 32, 32, &|| true).is_err());
        assert!(net.forward(&img[1..], 32, 32, &|| false).is_err());
    }

    #[test]
    fn missing_or_misshapen_tensors_are_named() {
        let mut t = tiny();
        t.tensors.remove("layer3.0.bn2.running_var");
        let e = ResNet::from_state_dict(&t).err().unwrap().to_string();
        assert!(e.contains("layer3.0.bn2.running_var"), "{e}");
        let mut t = tiny();
        t.insert("fc.weight", vec![1, 3], vec![0.0; 3]);
        let e = ResNet::from_state_dict(&t).err().unwrap().to_string();
        assert!(e.contains("fc.weight"), "{e}");
        let mut t = tiny();
        t.tensors.remove("layer2.0.downsample.0.weight");
        let e = ResNet::from_state_dict(&t).err().unwrap().to_string();
        assert!(e.contains("no downsample"), "{e}");
    }

    #[test]
    fn conv_matches_a_hand_computed_value() {
        // 1 input channel 3x3 of ones, 3x3 kernel of ones, pad 1: centre 9, corner 4.
        let x = Map {
            c: 1,
            h: 3,
            w: 3,
            data: vec![1.0; 9],
        };
        let conv = Conv {
            out_c: 1,
            in_c: 1,
            k: 3,
            stride: 1,
            pad: 1,
            weight: vec![1.0; 9],
        };
        let norm = Norm {
            scale: vec![2.0],
            shift: vec![-1.0],
        };
        let y = conv_norm(&x, &conv, &norm, false);
        assert_eq!(y.data[4], 17.0);
        assert_eq!(y.data[0], 7.0);
        let p = max_pool_3x3_s2(&Map {
            c: 1,
            h: 4,
            w: 4,
            data: (0..16).map(|v| v as f32).collect(),
        });
        assert_eq!(p.data, vec![5.0, 7.0, 13.0, 15.0]);
    }

    #[test]
    fn preprocessing_crops_and_normalises() {
        let rgb: Vec<u8> = (0..5 * 4 * 3).map(|v| v as u8).collect();
        let (x, h, w) = wang_preprocess(&rgb, 5, 4, Some(2)).unwrap();
        assert_eq!((h, w), (2, 2));
        // Offsets as Python: round(1.5) = 2 (half to even), round(1.0) = 1.
        let first = rgb[(2 * 4 + 1) * 3] as f32;
        assert!((x[0] - (first / 255.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!(wang_preprocess(&rgb, 5, 4, Some(6)).is_err());
    }
}
