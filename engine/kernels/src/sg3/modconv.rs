//! Modulated convolution of the SG3 synthesis layers: per-sample weight modulation and
//! demodulation, then a plain convolution evaluated as GEMM over row bands.
//!
//! The convolution has zero padding `k − 1` on every side (a 3×3 conv grows the map by 2 px).
//! For k > 1 the needed input rows are unfolded (im2col, `K = Cin·k²`) a few rows at a time so
//! the unfolded buffer stays small; for k = 1 the input rows are the GEMM operand directly.

use rayon::prelude::*;

use crate::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::sg3::winograd::{
    winograd_rows, ChannelScales, Modulation, SharedWinograd, WinogradScratch, WinogradWeights, F2,
    F4,
};
use crate::stage_time::{self, Stage};
use std::sync::Arc;

/// Upper bound on the im2col buffer (f32 values) per GEMM call.
const IM2COL_BUDGET: usize = 1 << 21;

/// Upper bound on the Winograd scratch (transformed tiles and products, f32 values) per
/// chunk of tile rows. Every chunk streams the layer's transformed weights once more (36 MB
/// for 512 channels, more than a 32 MB L3), so fewer, larger chunks pay off until the chunk's
/// own operands stop fitting the cache. On a 2-core Zen 4 VM, 2^23 (32 MB) against 2^21: an
/// SG3-T 256 image on one thread 1.17-1.22 -> 1.10 s (the GEMM and output transform gained
/// most), on two threads faster in six of six alternated pairs (median 0.73-0.89 -> 0.71-0.85
/// s, CPU 1.41-1.58 -> 1.30-1.42 s), 11 MiB more peak memory; 2^24 gained no more for 36 MB
/// more, 2^19-2^20 lost 10-25 %. (The im2col path keeps its budget: SG3-R lost with 2^23.)
const WINOGRAD_BUDGET: usize = 1 << 23;

/// `w · rsqrt(mean(w²))` per output channel (the "pre-normalisation" upstream applies to the
/// weights of demodulated layers on every call; it only depends on the weights, so it is done
/// once at load time with the same f32 arithmetic).
pub(crate) fn prenormalize_weight(weight: &mut [f32], fan_in: usize) {
    if fan_in == 0 {
        return;
    }
    for row in weight.chunks_exact_mut(fan_in) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum as f32) / fan_in as f32;
        let r = 1.0 / mean.sqrt();
        for v in row {
            *v *= r;
        }
    }
}

/// The styles of one sample as the per-input-channel weight factors: with demodulation
/// upstream first normalises them, `s ← s · rsqrt(mean(s²))` (over the whole batch upstream;
/// we normalise each sample on its own so a batch gives the same images as generating each
/// seed alone, which is what the official tools do: they run batch 1).
pub(crate) fn style_factors(styles: &[f32], demodulate: bool) -> Vec<f32> {
    let mut s = styles.to_vec();
    if demodulate && !s.is_empty() {
        let sum: f64 = s.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum as f32) / s.len() as f32;
        let r = 1.0 / mean.sqrt();
        for v in &mut s {
            *v *= r;
        }
    }
    s
}

/// Per-sample modulated weights `[Cout, Cin·k²]` for one style vector `[Cin]`.
///
/// Upstream `modulated_conv2d`: the styles as [`style_factors`], then `W ← W·s`, with
/// demodulation `W ← W · rsqrt(Σ W² + 1e-8)` per output channel; finally `W ← W · input_gain`.
pub(crate) fn modulate(
    weight: &[f32],
    styles: &[f32],
    out_channels: usize,
    kk: usize,
    demodulate: bool,
    input_gain: f32,
    out: &mut [f32],
) {
    let in_channels = styles.len();
    let fan_in = in_channels * kk;
    let s = style_factors(styles, demodulate);
    for (dst, src) in out
        .chunks_exact_mut(fan_in)
        .zip(weight.chunks_exact(fan_in))
        .take(out_channels)
    {
        for ((d, sv), sc) in dst.chunks_exact_mut(kk).zip(src.chunks_exact(kk)).zip(&s) {
            for (dv, &wv) in d.iter_mut().zip(sv) {
                *dv = wv * sc;
            }
        }
        if demodulate {
            let sum: f64 = dst.iter().map(|&v| (v * v) as f64).sum();
            let dcoef = 1.0 / ((sum as f32) + 1e-8f32).sqrt();
            for v in dst.iter_mut() {
                *v *= dcoef;
            }
        }
        if input_gain != 1.0 {
            for v in dst.iter_mut() {
                *v *= input_gain;
            }
        }
    }
}

/// Geometry of one convolution: input `[cin, h, w]`, kernel `k`, output `[cout, h+k−1, w+k−1]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.h + self.k - 1
    }
    pub fn out_w(&self) -> usize {
        self.w + self.k - 1
    }
}

/// Reusable buffer for [`conv_rows`].
#[derive(Default)]
pub(crate) struct ConvScratch {
    col: Vec<f32>,
    winograd: WinogradScratch,
}

/// Per-sample convolution weights in the form the chosen algorithm consumes.
pub(crate) enum PreparedConv {
    /// `[cout, cin·k²]` (1×1 GEMM or im2col + GEMM).
    Direct(Vec<f32>),
    /// 3×3 Winograd (see `winograd.rs`).
    Winograd(WinogradWeights),
    /// 3×3 Winograd with the layer's shared weights and this sample's channel factors.
    Shared {
        weights: Arc<SharedWinograd>,
        input_scales: Vec<f32>,
        output_scales: Vec<f32>,
    },
}

/// Buffers a [`PreparedConv`] is built in, kept between layers and calls.
#[derive(Default)]
pub(crate) struct WeightBuffers {
    /// Modulated weights `[Cout, Cin·k²]` of the direct path.
    pub wmod: Vec<f32>,
    /// Packed transformed weights of the Winograd path.
    pub u: Vec<f32>,
}

impl WeightBuffers {
    /// Takes back the buffer of a finished layer.
    pub fn recycle(&mut self, weights: PreparedConv) {
        match weights {
            PreparedConv::Direct(w) => self.wmod = w,
            PreparedConv::Winograd(ww) => self.u = ww.u,
            PreparedConv::Shared { .. } => {}
        }
    }
}

impl PreparedConv {
    /// Unmodulated weights `[cout, cin·k²]`, for the algorithm chosen for `shape`.
    #[cfg(test)]
    pub fn new(shape: ConvShape, weight: &[f32]) -> PreparedConv {
        let ones = vec![1.0f32; shape.cin];
        Self::modulated(
            shape,
            weight,
            &ones,
            false,
            1.0,
            &mut WeightBuffers::default(),
        )
    }

    /// The per-sample factors of a layer with shared weights (see [`SharedWinograd`]): the
    /// styles as [`style_factors`] with demodulation, and the output channels' demodulation
    /// times `input_gain`.
    pub fn shared(weights: &Arc<SharedWinograd>, styles: &[f32], input_gain: f32) -> PreparedConv {
        let input_scales = style_factors(styles, true);
        let mut output_scales = Vec::new();
        weights.output_scales(&input_scales, input_gain, &mut output_scales);
        PreparedConv::Shared {
            weights: Arc::clone(weights),
            input_scales,
            output_scales,
        }
    }

    /// The per-sample weights of a layer: `weight [cout, cin·k²]` modulated by `styles [cin]`
    /// (see [`modulate`]) and, for 3×3 kernels, Winograd-transformed in the same pass. Builds
    /// in the buffers of `bufs`; give them back with [`WeightBuffers::recycle`].
    pub fn modulated(
        shape: ConvShape,
        weight: &[f32],
        styles: &[f32],
        demodulate: bool,
        input_gain: f32,
        bufs: &mut WeightBuffers,
    ) -> PreparedConv {
        let tile = match (shape.k, conv3_algorithm()) {
            (3, Conv3::F2) => Some(&F2),
            (3, Conv3::F4) => Some(&F4),
            _ => None,
        };
        match tile {
            Some(tile) => {
                let s = style_factors(styles, demodulate);
                let modulation = Modulation {
                    styles: &s,
                    demodulate,
                    gain: input_gain,
                };
                PreparedConv::Winograd(WinogradWeights::new_in(
                    tile,
                    shape.cout,
                    shape.cin,
                    weight,
                    &modulation,
                    std::mem::take(&mut bufs.u),
                ))
            }
            None => {
                let mut wmod = std::mem::take(&mut bufs.wmod);
                wmod.resize(shape.cout * shape.cin * shape.k * shape.k, 0.0);
                let kk = shape.k * shape.k;
                modulate(
                    weight, styles, shape.cout, kk, demodulate, input_gain, &mut wmod,
                );
                PreparedConv::Direct(wmod)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conv3 {
    Im2col,
    F2,
    F4,
}

/// Whether 3×3 convolutions run on Winograd F(4×4) (the default), the form
/// [`SharedWinograd`] weights are kept in.
pub(crate) fn conv3_is_f4() -> bool {
    conv3_algorithm() == Conv3::F4
}

/// Algorithm for 3×3 convolutions: Winograd F(4×4, 3×3) by default (single-threaded SG3-T 256
/// forward on the dev VM: ~3.2 s CPU against ~3.9 s for F(2×2) and ~5.5 s for im2col, same
/// accuracy on the fixtures). `STYLEGRAPH_CONV3=im2col|f2|f4` overrides it (benchmarks).
fn conv3_algorithm() -> Conv3 {
    use std::sync::OnceLock;
    static ALGO: OnceLock<Conv3> = OnceLock::new();
    *ALGO.get_or_init(|| match std::env::var("STYLEGRAPH_CONV3").as_deref() {
        Ok("im2col") => Conv3::Im2col,
        Ok("f4") => Conv3::F4,
        Ok("f2") => Conv3::F2,
        _ => Conv3::F4,
    })
}

/// Computes output rows `[r0, r1)` of the convolution of `x [cin, h, w]` with the prepared
/// weights into `dst`: channel `c`, row `r` lands at `dst[c * dst_channel_stride +
/// (r − r0) * out_w ..][..out_w]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_rows(
    shape: ConvShape,
    x: &[f32],
    weights: &PreparedConv,
    r0: usize,
    r1: usize,
    dst: &mut [f32],
    dst_channel_stride: usize,
    scratch: &mut ConvScratch,
) {
    let ConvShape { cin, cout, h, w, k } = shape;
    let ow = shape.out_w();
    if r1 <= r0 {
        return;
    }
    let mut winograd = |ww: &WinogradWeights, scales: Option<ChannelScales<'_>>| {
        winograd_rows(
            ww,
            (cin, cout, h, w),
            x,
            r0,
            r1,
            dst,
            dst_channel_stride,
            WINOGRAD_BUDGET,
            scales,
            &mut scratch.winograd,
        )
    };
    let wmod = match weights {
        PreparedConv::Direct(wm) => wm.as_slice(),
        PreparedConv::Winograd(ww) => return winograd(ww, None),
        PreparedConv::Shared {
            weights,
            input_scales,
            output_scales,
        } => {
            let scales = ChannelScales {
                input: input_scales,
                output: output_scales,
            };
            return winograd(&weights.weights, Some(scales));
        }
    };
    let kdim = cin * k * k;
    let lhs = MatRef {
        data: wmod,
        rows: cout,
        cols: kdim,
        row_stride: kdim,
    };
    if k == 1 {
        let rows = r1 - r0;
        let _section = stage_time::section(Stage::Gemm);
        sgemm(
            MatMut {
                data: dst,
                rows: cout,
                cols: rows * ow,
                row_stride: dst_channel_stride,
            },
            lhs,
            MatRef {
                data: &x[r0 * w..],
                rows: cin,
                cols: rows * w,
                row_stride: h * w,
            },
            false,
            Threads::Pool,
        );
        return;
    }
    let chunk = (IM2COL_BUDGET / (kdim * ow).max(1)).max(1);
    let mut r = r0;
    while r < r1 {
        let re = (r + chunk).min(r1);
        let n = (re - r) * ow;
        scratch.col.resize(kdim * n, 0.0);
        let section = stage_time::section(Stage::InputTransform);
        im2col(shape, x, r, re, &mut scratch.col[..kdim * n]);
        drop(section);
        let _section = stage_time::section(Stage::Gemm);
        let off = (r - r0) * ow;
        sgemm(
            MatMut {
                data: &mut dst[off..],
                rows: cout,
                cols: n,
                row_stride: dst_channel_stride,
            },
            lhs,
            MatRef {
                data: &scratch.col[..kdim * n],
                rows: kdim,
                cols: n,
                row_stride: n,
            },
            false,
            Threads::Pool,
        );
        r = re;
    }
}

/// Unfolds output rows `[r0, r1)`: `col[(ci·k + ky)·k + kx][(y − r0)·ow + x] =
/// x[ci][y + ky − (k−1)][x + kx − (k−1)]` (zero outside the input).
fn im2col(shape: ConvShape, x: &[f32], r0: usize, r1: usize, col: &mut [f32]) {
    let ConvShape { h, w, k, .. } = shape;
    let ow = shape.out_w();
    let p = (k - 1) as isize;
    let n = (r1 - r0) * ow;
    col.par_chunks_mut(n * k * k)
        .zip(x.par_chunks(h * w))
        .for_each(|(cols_ci, plane)| {
            for ky in 0..k {
                for kx in 0..k {
                    let dst = &mut cols_ci[(ky * k + kx) * n..(ky * k + kx + 1) * n];
                    // x range whose source column x + kx - p lies in [0, w)
                    let x_lo = (p - kx as isize).max(0) as usize;
                    let x_hi = ((w as isize + p - kx as isize).min(ow as isize)).max(0) as usize;
                    for (yi, drow) in dst.chunks_exact_mut(ow).enumerate() {
                        let sy = (r0 + yi) as isize + ky as isize - p;
                        if sy < 0 || sy >= h as isize || x_lo >= x_hi {
                            drow.fill(0.0);
                            continue;
                        }
                        let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                        drow[..x_lo].fill(0.0);
                        let sx = (x_lo as isize + kx as isize - p) as usize;
                        drow[x_lo..x_hi].copy_from_slice(&src[sx..sx + (x_hi - x_lo)]);
                        drow[x_hi..].fill(0.0);
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct-definition convolution for checking.
    fn naive(shape: ConvShape, x: &[f32], wt: &[f32]) -> Vec<f32> {
        let ConvShape { cin, cout, h, w, k } = shape;
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let p = k as isize - 1;
        let mut out = vec![0.0f32; cout * oh * ow];
        for co in 0..cout {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut s = 0.0f64;
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let sy = y as isize + ky as isize - p;
                                let sx = xx as isize + kx as isize - p;
                                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                    s += wt[((co * cin + ci) * k + ky) * k + kx] as f64
                                        * x[(ci * h + sy as usize) * w + sx as usize] as f64;
                                }
                            }
                        }
                    }
                    out[(co * oh + y) * ow + xx] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn banded_conv_matches_definition() {
        for k in [1usize, 3, 5] {
            let shape = ConvShape {
                cin: 3,
                cout: 4,
                h: 7,
                w: 5,
                k,
            };
            let x: Vec<f32> = (0..3 * 7 * 5)
                .map(|i| ((i * 37 % 11) as f32) - 5.0)
                .collect();
            let wt: Vec<f32> = (0..4 * 3 * k * k)
                .map(|i| ((i * 13 % 7) as f32) * 0.25 - 0.7)
                .collect();
            let expected = naive(shape, &x, &wt);
            let (oh, ow) = (shape.out_h(), shape.out_w());
            let mut got = vec![0.0f32; 4 * oh * ow];
            let mut scratch = ConvScratch::default();
            // Two bands of rows, written straight into the full output (channel stride oh·ow).
            let split = (oh / 2) | 1; // odd: bands that start mid-tile
            let prepared = PreparedConv::new(shape, &wt);
            conv_rows(
                shape,
                &x,
                &prepared,
                0,
                split,
                &mut got,
                oh * ow,
                &mut scratch,
            );
            let rest = &mut got[split * ow..];
            conv_rows(shape, &x, &prepared, split, oh, rest, oh * ow, &mut scratch);
            if k == 3 {
                let f4 = PreparedConv::Winograd(WinogradWeights::new(&F4, 4, 3, &wt));
                let mut got4 = vec![0.0f32; 4 * oh * ow];
                conv_rows(shape, &x, &f4, 0, split, &mut got4, oh * ow, &mut scratch);
                let rest = &mut got4[split * ow..];
                conv_rows(shape, &x, &f4, split, oh, rest, oh * ow, &mut scratch);
                for (a, b) in got4.iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-4, "F4: {a} vs {b}");
                }
            }
            // and the im2col path for the same weights
            let direct = PreparedConv::Direct(wt.clone());
            let mut got2 = vec![0.0f32; 4 * oh * ow];
            conv_rows(shape, &x, &direct, 0, oh, &mut got2, oh * ow, &mut scratch);
            for (a, b) in got2.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "im2col k={k}: {a} vs {b}");
            }
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "k={k}: {a} vs {b}");
            }
        }
    }

    /// Deterministic input `[cin, h, w]` and 3×3 weights `[cout, cin, 3, 3]` for `shape`.
    fn pattern_operands(shape: ConvShape) -> (Vec<f32>, Vec<f32>) {
        let x = (0..shape.cin * shape.h * shape.w)
            .map(|i| ((i * 37 % 23) as f32) * 0.1 - 1.1)
            .collect();
        let wt = (0..shape.cout * shape.cin * 9)
            .map(|i| ((i * 13 % 17) as f32) * 0.05 - 0.4)
            .collect();
        (x, wt)
    }

    #[test]
    fn winograd_f4_matches_definition_across_panels() {
        // 14 tiles per tile row: the 48-tile panels of the packed operands start mid-row, the
        // last one is partial; 9 output channels leave a partial row panel too.
        let shape = ConvShape {
            cin: 5,
            cout: 9,
            h: 26,
            w: 53,
            k: 3,
        };
        let (x, wt) = pattern_operands(shape);
        let expected = naive(shape, &x, &wt);
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let f4 = PreparedConv::Winograd(WinogradWeights::new(&F4, 9, 5, &wt));
        let mut got = vec![f32::NAN; 9 * oh * ow];
        let mut scratch = ConvScratch::default();
        conv_rows(shape, &x, &f4, 0, oh, &mut got, oh * ow, &mut scratch);
        for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert!((a - b).abs() < 1e-4, "F4 value {i}: {a} vs {b}");
        }
    }

    #[test]
    fn modulated_winograd_weights_match_modulated_direct_weights() {
        // 11 output channels (a partial lane block), 13 input channels (a partial transpose
        // step of the vectorised weight transform), styles far from 1, with and without
        // demodulation: the Winograd path's fused modulation + transform against `modulate`
        // and the im2col convolution.
        let shape = ConvShape {
            cin: 13,
            cout: 11,
            h: 9,
            w: 10,
            k: 3,
        };
        let (x, wt) = pattern_operands(shape);
        let styles: Vec<f32> = (0..13).map(|i| 0.3 + 0.4 * (i % 5) as f32).collect();
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let mut scratch = ConvScratch::default();
        for (demodulate, gain) in [(true, 0.7f32), (false, 1.0), (false, 0.5)] {
            let mut wmod = vec![0.0f32; 11 * 13 * 9];
            modulate(&wt, &styles, 11, 9, demodulate, gain, &mut wmod);
            let direct = PreparedConv::Direct(wmod);
            let mut expected = vec![0.0f32; 11 * oh * ow];
            conv_rows(
                shape,
                &x,
                &direct,
                0,
                oh,
                &mut expected,
                oh * ow,
                &mut scratch,
            );
            let s = style_factors(&styles, demodulate);
            let modulation = Modulation {
                styles: &s,
                demodulate,
                gain,
            };
            let f4 = PreparedConv::Winograd(WinogradWeights::new_in(
                &F4,
                11,
                13,
                &wt,
                &modulation,
                Vec::new(),
            ));
            let mut got = vec![f32::NAN; 11 * oh * ow];
            conv_rows(shape, &x, &f4, 0, oh, &mut got, oh * ow, &mut scratch);
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale.max(1.0),
                    "demodulate={demodulate} gain={gain} value {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn modulation_demodulates_to_unit_norm() {
        let w = [1.0f32, 2.0, 3.0, 4.0, 0.5, -0.5, 1.0, 1.0];
        let s = [2.0f32, 0.5];
        let mut out = [0.0f32; 8];
        modulate(&w, &s, 2, 2, true, 0.5, &mut out);
        for row in out.chunks(4) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 0.25).abs() < 1e-6); // unit norm times input gain²
        }
        modulate(&w, &s, 2, 2, false, 1.0, &mut out);
        assert_eq!(out[..4], [2.0, 4.0, 1.5, 2.0]); // plain W·s
    }
}
