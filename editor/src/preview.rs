//! Turning node outputs into pictures: image tensors into colour images, latents into a compact
//! heat strip with statistics, feature maps into a per-channel (or spectrum) view.
//!
//! Everything here is a pure function of the data; the heavy ones run on background threads.

use egui::{Color32, ColorImage};
use std::sync::Arc;
use stylegraph_abi::ffi::{SG_DTYPE_FLOAT, SG_DTYPE_UINT};
use stylegraph_core::plugin::PortInfo;
use stylegraph_core::types::PortType;
use stylegraph_core::value::{HostTensor, Value};

/// Largest side of a latent heat strip, in cells.
const STRIP_MAX_COLS: usize = 256;
const STRIP_MAX_ROWS: usize = 64;

/// What the editor shows for one output of a node.
#[derive(Clone)]
pub enum OutputView {
    /// A picture: an `Image` tensor, or a tensor laid out as one (a plot, an RGB u8 array).
    Image {
        image: Arc<ColorImage>,
        shape: Vec<i64>,
    },
    /// Feature maps `[N,C,H,W]`, viewed channel by channel; the thumbnail shows the mean
    /// absolute value over the channels.
    Features {
        tensor: Arc<HostTensor>,
        thumb: Arc<ColorImage>,
    },
    /// A latent or another small tensor: statistics and a heat strip.
    Latent(LatentView),
    /// A tensor shown by its shape only.
    Tensor { summary: String },
    /// A scalar, string or object, as text.
    Text(String),
}

impl OutputView {
    /// A one-line description for tooltips and the viewer.
    pub fn summary(&self) -> String {
        match self {
            OutputView::Image { shape, .. } => format!("image {shape:?}"),
            OutputView::Features { tensor, .. } => {
                format!("features {}{:?}", tensor.dtype().name(), tensor.shape())
            }
            OutputView::Latent(l) => format!(
                "{:?}  min {:.3}  max {:.3}  mean {:.3}  std {:.3}",
                l.shape, l.min, l.max, l.mean, l.std
            ),
            OutputView::Tensor { summary } => summary.clone(),
            OutputView::Text(t) => t.clone(),
        }
    }
}

/// Statistics and a heat strip of a small tensor.
#[derive(Clone)]
pub struct LatentView {
    pub shape: Vec<i64>,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    /// Rows = leading dimensions, columns = the last one (binned), diverging colours around 0.
    pub strip: Arc<ColorImage>,
}

/// How an output of `port` holding `value` is shown.
pub fn view_output(port: &PortInfo, value: &Value) -> OutputView {
    match value {
        Value::Tensor(t) => view_tensor(&port.port_type, t),
        Value::Bool(b) => OutputView::Text(b.to_string()),
        Value::Int(i) => OutputView::Text(i.to_string()),
        Value::Float(f) => OutputView::Text(format!("{f:.6}")),
        Value::Str(s) => OutputView::Text(format!("{s:?}")),
        Value::Object(o) => OutputView::Text(format!("object {}", o.type_name())),
    }
}

fn semantic(t: &PortType) -> Option<&str> {
    match t {
        PortType::Semantic(s) => Some(s.as_str()),
        _ => None,
    }
}

fn view_tensor(port_type: &PortType, t: &Arc<HostTensor>) -> OutputView {
    let summary = || OutputView::Tensor {
        summary: format!("{}{:?}", t.dtype().name(), t.shape()),
    };
    match semantic(port_type) {
        Some("Image") => match tensor_to_image(t) {
            Some(image) => OutputView::Image {
                image: Arc::new(image),
                shape: t.shape().to_vec(),
            },
            None => summary(),
        },
        Some("Features") if t.shape().len() == 4 => features_view(t).unwrap_or_else(summary),
        Some("Z" | "W" | "WPlus" | "Direction") => {
            latent_view(t).map_or_else(summary, OutputView::Latent)
        }
        _ => {
            // A generic tensor: guess from its layout.
            if let Some(image) = tensor_to_image(t) {
                return OutputView::Image {
                    image: Arc::new(image),
                    shape: t.shape().to_vec(),
                };
            }
            if t.shape().len() == 4 && is_float(t) {
                if let Some(v) = features_view(t) {
                    return v;
                }
            }
            if t.numel() <= 1 << 20 {
                if let Some(l) = latent_view(t) {
                    return OutputView::Latent(l);
                }
            }
            summary()
        }
    }
}

fn features_view(t: &Arc<HostTensor>) -> Option<OutputView> {
    let thumb = feature_view(&FeatureRequest {
        tensor: t.clone(),
        batch: 0,
        channel: 0,
        mode: FeatureMode {
            mean_abs: true,
            ..FeatureMode::default()
        },
    })
    .ok()?;
    Some(OutputView::Features {
        tensor: t.clone(),
        thumb: Arc::new(thumb.image),
    })
}

fn is_float(t: &HostTensor) -> bool {
    t.dtype().code == SG_DTYPE_FLOAT
}

fn to_u8_official(x: f32) -> u8 {
    // The official conversion of a [-1, 1] image: x * 127.5 + 128, clamped, truncated.
    (x * 127.5 + 128.0).clamp(0.0, 255.0) as u8
}

/// A colour image from a tensor laid out as one, or `None`:
/// - float `[N,C,H,W]` or `[C,H,W]` with C in {1, 3, 4}, nominal range [-1, 1] (first of N);
/// - u8 `[H,W,C]` or `[N,H,W,C]` with C in {1, 3, 4} (first of N).
pub fn tensor_to_image(t: &HostTensor) -> Option<ColorImage> {
    let shape: Vec<usize> = t.shape().iter().map(|&d| d.max(0) as usize).collect();
    let dt = t.dtype();
    let is_u8 = dt.code == SG_DTYPE_UINT && dt.bits == 8;
    if is_u8 {
        let (h, w, c) = match shape[..] {
            [h, w, c] => (h, w, c),
            [_, h, w, c] => (h, w, c),
            _ => return None,
        };
        if !matches!(c, 1 | 3 | 4) || h == 0 || w == 0 {
            return None;
        }
        let data = t.bytes().get(..h * w * c)?;
        let pixels = data
            .chunks_exact(c)
            .map(|p| match c {
                1 => Color32::from_gray(p[0]),
                3 => Color32::from_rgb(p[0], p[1], p[2]),
                _ => Color32::from_rgba_unmultiplied(p[0], p[1], p[2], p[3]),
            })
            .collect();
        return Some(ColorImage::new([w, h], pixels));
    }
    if !is_float(t) {
        return None;
    }
    let (c, h, w) = match shape[..] {
        [_, c, h, w] => (c, h, w),
        [c, h, w] => (c, h, w),
        _ => return None,
    };
    if !matches!(c, 1 | 3 | 4) || h == 0 || w == 0 {
        return None;
    }
    // Only the first image of the batch is converted.
    let data = t.to_f32_vec();
    let plane = h * w;
    let first = data.get(..c * plane)?;
    let pixels = (0..plane)
        .map(|i| {
            if c == 1 {
                Color32::from_gray(to_u8_official(first[i]))
            } else {
                Color32::from_rgb(
                    to_u8_official(first[i]),
                    to_u8_official(first[plane + i]),
                    to_u8_official(first[2 * plane + i]),
                )
            }
        })
        .collect();
    Some(ColorImage::new([w, h], pixels))
}

/// A diverging colour for `v` in [-1, 1]: blue below zero, white at zero, red above.
pub fn diverging(v: f32) -> Color32 {
    let v = if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let a = (255.0 * (1.0 - v.abs())) as u8;
    if v >= 0.0 {
        Color32::from_rgb(255, a, a)
    } else {
        Color32::from_rgb(a, a, 255)
    }
}

/// Statistics and a heat strip of a tensor (rows: leading dims; columns: last dim, binned).
pub fn latent_view(t: &HostTensor) -> Option<LatentView> {
    let data = t.to_f64_vec();
    if data.is_empty() {
        return None;
    }
    let n = data.len() as f64;
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    for &v in &data {
        min = min.min(v);
        max = max.max(v);
        sum += v;
    }
    let mean = sum / n;
    let var = data.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let cols_in = t.shape().last().map_or(1, |&d| d.max(1) as usize);
    let rows_in = data.len() / cols_in;
    let cols = cols_in.min(STRIP_MAX_COLS);
    let rows = rows_in.clamp(1, STRIP_MAX_ROWS);
    let scale = min.abs().max(max.abs()).max(1e-12);
    let mut pixels = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &data[r * cols_in..(r + 1) * cols_in];
        for c in 0..cols {
            // Average the values that fall into this column's bin.
            let a = c * cols_in / cols;
            let b = ((c + 1) * cols_in / cols).max(a + 1);
            let bin = &row[a..b.min(row.len())];
            let v = bin.iter().sum::<f64>() / bin.len().max(1) as f64;
            pixels.push(diverging((v / scale) as f32));
        }
    }
    Some(LatentView {
        shape: t.shape().to_vec(),
        min,
        max,
        mean,
        std: var.sqrt(),
        strip: Arc::new(ColorImage::new([cols, rows], pixels)),
    })
}

/// How the feature viewer shows a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FeatureMode {
    /// Stretch each channel's own range to full contrast (else: one scale for the whole tensor,
    /// so channels can be compared).
    pub normalize: bool,
    /// Show the centred log-magnitude spectrum instead of the values.
    pub fft: bool,
    /// Show the mean absolute value over all channels instead of one channel.
    pub mean_abs: bool,
}

/// A request to the feature viewer's worker.
#[derive(Clone)]
pub struct FeatureRequest {
    pub tensor: Arc<HostTensor>,
    pub batch: usize,
    pub channel: usize,
    pub mode: FeatureMode,
}

/// The picture of one channel and the value range it shows.
#[derive(Clone)]
pub struct FeatureView {
    pub image: ColorImage,
    /// Range of the shown quantity (values, or log-magnitude for spectra).
    pub lo: f32,
    pub hi: f32,
}

/// Computes the feature view of a `[N,C,H,W]` tensor.
pub fn feature_view(req: &FeatureRequest) -> Result<FeatureView, String> {
    let shape: Vec<usize> = req
        .tensor
        .shape()
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    let [n, c, h, w] = shape[..] else {
        return Err(format!(
            "feature maps must be [N,C,H,W], got {:?}",
            req.tensor.shape()
        ));
    };
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(format!("empty feature maps {:?}", req.tensor.shape()));
    }
    let batch = req.batch.min(n - 1);
    let channel = req.channel.min(c - 1);
    let data = req.tensor.to_f32_vec();
    let plane = h * w;
    let sample = &data[batch * c * plane..(batch + 1) * c * plane];
    let mut values: Vec<f32> = if req.mode.mean_abs {
        let mut acc = vec![0.0f32; plane];
        for ch in 0..c {
            for (a, v) in acc.iter_mut().zip(&sample[ch * plane..(ch + 1) * plane]) {
                *a += v.abs();
            }
        }
        acc.iter_mut().for_each(|a| *a /= c as f32);
        acc
    } else {
        sample[channel * plane..(channel + 1) * plane].to_vec()
    };
    if req.mode.fft {
        let mag = spectrum_2d(&values, h, w);
        let (lo, hi) = range(&mag);
        let span = (hi - lo).max(1e-12);
        let pixels = mag
            .iter()
            .map(|&m| Color32::from_gray(((m - lo) / span * 255.0) as u8))
            .collect();
        return Ok(FeatureView {
            image: ColorImage::new([w, h], pixels),
            lo,
            hi,
        });
    }
    if req.mode.normalize || req.mode.mean_abs {
        let (lo, hi) = range(&values);
        let span = (hi - lo).max(1e-12);
        let pixels = values
            .iter()
            .map(|&v| Color32::from_gray(((v - lo) / span * 255.0) as u8))
            .collect();
        return Ok(FeatureView {
            image: ColorImage::new([w, h], pixels),
            lo,
            hi,
        });
    }
    // One scale for the whole tensor, so that channels compare.
    let scale = data
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    values.iter_mut().for_each(|v| *v /= scale);
    let pixels = values.iter().map(|&v| diverging(v)).collect();
    Ok(FeatureView {
        image: ColorImage::new([w, h], pixels),
        lo: -scale,
        hi: scale,
    })
}

fn range(v: &[f32]) -> (f32, f32) {
    v.iter()
        .filter(|x| x.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// The centred log-magnitude spectrum `ln(1 + |F|)` of an `h x w` real image (row-major), with
/// the zero frequency in the middle.
pub fn spectrum_2d(values: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut re: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let mut im = vec![0.0f64; re.len()];
    // Rows, then columns.
    let mut row_re = vec![0.0; w];
    let mut row_im = vec![0.0; w];
    for y in 0..h {
        row_re.copy_from_slice(&re[y * w..(y + 1) * w]);
        row_im.copy_from_slice(&im[y * w..(y + 1) * w]);
        fft_in_place(&mut row_re, &mut row_im);
        re[y * w..(y + 1) * w].copy_from_slice(&row_re);
        im[y * w..(y + 1) * w].copy_from_slice(&row_im);
    }
    let mut col_re = vec![0.0; h];
    let mut col_im = vec![0.0; h];
    for x in 0..w {
        for y in 0..h {
            col_re[y] = re[y * w + x];
            col_im[y] = im[y * w + x];
        }
        fft_in_place(&mut col_re, &mut col_im);
        for y in 0..h {
            re[y * w + x] = col_re[y];
            im[y * w + x] = col_im[y];
        }
    }
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            // fftshift: frequency (y, x) goes to ((y + h/2) mod h, (x + w/2) mod w).
            let sy = (y + h / 2) % h;
            let sx = (x + w / 2) % w;
            let i = y * w + x;
            out[sy * w + sx] = (re[i].hypot(im[i])).ln_1p() as f32;
        }
    }
    out
}

/// In-place discrete Fourier transform (forward, unnormalised): radix-2 for powers of two, a
/// direct sum otherwise (feature maps are at most a few hundred wide, and this runs off the UI
/// thread).
pub fn fft_in_place(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    if n <= 1 || im.len() != n {
        return;
    }
    if !n.is_power_of_two() {
        let (r, i) = dft(re, im);
        re.copy_from_slice(&r);
        im.copy_from_slice(&i);
        return;
    }
    // Bit-reversal permutation.
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f64).sin_cos();
                let a = start + k;
                let b = a + len / 2;
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// The direct O(n²) DFT.
fn dft(re: &[f64], im: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = re.len();
    let mut out_re = vec![0.0; n];
    let mut out_im = vec![0.0; n];
    for k in 0..n {
        let mut sr = 0.0;
        let mut si = 0.0;
        for t in 0..n {
            // Reduce the index first so the angle stays small and accurate.
            let ang = -2.0 * std::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
            let (s, c) = ang.sin_cos();
            sr += re[t] * c - im[t] * s;
            si += re[t] * s + im[t] * c;
        }
        out_re[k] = sr;
        out_im[k] = si;
    }
    (out_re, out_im)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[i64], data: &[f32]) -> Arc<HostTensor> {
        Arc::new(HostTensor::from_f32(shape, data).unwrap())
    }

    #[test]
    fn image_uses_the_official_conversion_and_first_batch_item() {
        // [2,3,1,2]: the second batch item must be ignored.
        let data = [
            -1.0, 1.0, // R
            0.0, 0.5, // G
            2.0, -2.0, // B
            9.0, 9.0, 9.0, 9.0, 9.0, 9.0,
        ];
        let img = tensor_to_image(&tensor(&[2, 3, 1, 2], &data)).unwrap();
        assert_eq!(img.size, [2, 1]);
        // -1 -> 0.5 -> 0; 0 -> 128; 2 -> 255 (clamped); 1 -> 255.5 -> 255; 0.5 -> 191.75 -> 191.
        assert_eq!(img.pixels[0], Color32::from_rgb(0, 128, 255));
        assert_eq!(img.pixels[1], Color32::from_rgb(255, 191, 0));
    }

    #[test]
    fn u8_hwc_tensors_are_images() {
        let mut t = HostTensor::zeros(stylegraph_abi::ffi::SgDType::U8, &[1, 2, 3]).unwrap();
        t.bytes_mut().copy_from_slice(&[10, 20, 30, 40, 50, 60]);
        let img = tensor_to_image(&t).unwrap();
        assert_eq!(img.size, [2, 1]);
        assert_eq!(img.pixels[1], Color32::from_rgb(40, 50, 60));
        // Two channels is not a picture.
        let t2 = HostTensor::zeros(stylegraph_abi::ffi::SgDType::U8, &[2, 2, 2]).unwrap();
        assert!(tensor_to_image(&t2).is_none());
    }

    #[test]
    fn latent_statistics() {
        let t = tensor(&[1, 4], &[1.0, -1.0, 3.0, 1.0]);
        let l = latent_view(&t).unwrap();
        assert_eq!((l.min, l.max, l.mean), (-1.0, 3.0, 1.0));
        // Population std of (0, -2, 2, 0) = sqrt(8/4).
        assert!((l.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(l.strip.size, [4, 1]);
        // 3 is the largest magnitude: full red; -1 is a third of it, light blue.
        assert_eq!(l.strip.pixels[2], Color32::from_rgb(255, 0, 0));
        assert_eq!(l.strip.pixels[1], diverging(-1.0 / 3.0));
    }

    #[test]
    fn radix2_matches_direct_dft() {
        let re0: Vec<f64> = (0..16).map(|i| ((i * 7 % 5) as f64) - 1.5).collect();
        let im0: Vec<f64> = (0..16).map(|i| ((i * 3 % 4) as f64) * 0.25).collect();
        let (er, ei) = dft(&re0, &im0);
        let (mut r, mut i) = (re0.clone(), im0.clone());
        fft_in_place(&mut r, &mut i);
        for k in 0..16 {
            assert!(
                (r[k] - er[k]).abs() < 1e-9 && (i[k] - ei[k]).abs() < 1e-9,
                "bin {k}"
            );
        }
    }

    #[test]
    fn dft_of_a_cosine_has_two_peaks() {
        // cos(2 pi * 2 t / 6): a non-power-of-two length goes through the direct sum.
        let n = 6;
        let mut re: Vec<f64> = (0..n)
            .map(|t| (2.0 * std::f64::consts::PI * 2.0 * t as f64 / n as f64).cos())
            .collect();
        let mut im = vec![0.0; n];
        fft_in_place(&mut re, &mut im);
        for (k, (r, i)) in re.iter().zip(&im).enumerate() {
            let mag = r.hypot(*i);
            let expect = if k == 2 || k == 4 { 3.0 } else { 0.0 };
            assert!((mag - expect).abs() < 1e-9, "bin {k}: {mag}");
        }
    }

    #[test]
    fn spectrum_is_centred() {
        // A constant image has only a DC component, which must land in the middle.
        let (h, w) = (4, 6);
        let s = spectrum_2d(&vec![1.0; h * w], h, w);
        let centre = (h / 2) * w + w / 2;
        assert!((s[centre] - (24.0f64).ln_1p() as f32).abs() < 1e-5);
        for (i, v) in s.iter().enumerate() {
            if i != centre {
                assert!(v.abs() < 1e-6, "index {i} = {v}");
            }
        }
    }

    #[test]
    fn feature_view_modes() {
        // [1,2,1,2]: channel 0 = (0, 2), channel 1 = (-4, 4).
        let t = tensor(&[1, 2, 1, 2], &[0.0, 2.0, -4.0, 4.0]);
        let mut req = FeatureRequest {
            tensor: t,
            batch: 0,
            channel: 0,
            mode: FeatureMode::default(),
        };
        // Shared scale: max |x| = 4, so 2 -> 0.5 -> pale red.
        let v = feature_view(&req).unwrap();
        assert_eq!((v.lo, v.hi), (-4.0, 4.0));
        assert_eq!(v.image.pixels[1], diverging(0.5));
        req.mode.normalize = true;
        let v = feature_view(&req).unwrap();
        assert_eq!(v.image.pixels[0], Color32::from_gray(0));
        assert_eq!(v.image.pixels[1], Color32::from_gray(255));
        req.mode = FeatureMode {
            mean_abs: true,
            ..FeatureMode::default()
        };
        let v = feature_view(&req).unwrap();
        // Mean |x| = (2, 3).
        assert_eq!((v.lo, v.hi), (2.0, 3.0));
        // An out-of-range channel picks the last one rather than failing.
        req.mode = FeatureMode::default();
        req.channel = 9;
        assert_eq!(feature_view(&req).unwrap().image.pixels[0], diverging(-1.0));
    }
}
