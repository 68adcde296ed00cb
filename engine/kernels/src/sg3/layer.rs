//! One SG3 synthesis layer (`SynthesisLayer`, L0..L{n}; the last one is ToRGB): affine style,
//! modulated convolution and filtered leaky ReLU, evaluated band by band.

use rayon::prelude::*;

use crate::fc::{Activation, FullyConnected, SQRT2_F32};
use crate::filter_design::sg3_lowpass_filter;
use crate::model::{Control, ModelError};
use crate::sg3::config::LayerSpec;
use crate::sg3::filtered_lrelu::{with_band_scratch, Act, AxisPlan, DownTaps, Resampler};
use crate::sg3::modconv::{
    conv3_is_f4, conv_rows, prenormalize_weight, ConvScratch, ConvShape, PreparedConv,
    WeightBuffers,
};
use crate::sg3::winograd::SharedWinograd;
use crate::stage_time::{self, Stage};
use crate::tensor_map::TensorMap;
use std::sync::Arc;

/// Target size (f32 values) of the buffer holding one band of conv output rows.
const CONV_BAND_BUDGET: usize = 1 << 22;

/// Working memory of a layer's forward, kept by the caller between layers and calls.
#[derive(Default)]
pub(crate) struct LayerScratch {
    /// The per-sample weights.
    weights: WeightBuffers,
    /// One band of conv output rows.
    conv: Vec<f32>,
    conv_scratch: ConvScratch,
}

/// A synthesis layer with its parameters.
#[derive(Clone, Debug)]
pub struct Sg3Layer {
    spec: LayerSpec,
    affine: FullyConnected,
    /// `[Cout, Cin·k²]`; for demodulated layers already pre-normalised per output channel.
    /// Empty once the layer keeps [`SharedWinograd`] weights instead.
    weight: Vec<f32>,
    /// The transformed weights shared by every sample, for the layers chosen by
    /// [`Sg3Layer::share_weights`].
    shared: Option<Arc<SharedWinograd>>,
    bias: Vec<f32>,
    /// `1 / sqrt(magnitude_ema)`.
    input_gain: f32,
    resampler: Resampler,
}

impl Sg3Layer {
    /// Loads `synthesis.{name}.*`. Missing `up_filter`/`down_filter` buffers are designed from
    /// the schedule (a stored filter must have the scheduled shape).
    pub fn from_tensors(
        map: &TensorMap,
        spec: &LayerSpec,
        w_dim: usize,
    ) -> Result<Sg3Layer, ModelError> {
        let p = format!("synthesis.{}", spec.name);
        if spec.down_factor > crate::sg3::filtered_lrelu::MAX_DOWN {
            return Err(ModelError::Config(format!(
                "{p}: a down factor of {} is larger than the supported {}",
                spec.down_factor,
                crate::sg3::filtered_lrelu::MAX_DOWN
            )));
        }
        if spec.up_taps.max(spec.down_taps) > crate::simd::MAX_TAPS {
            return Err(ModelError::Config(format!(
                "{p}: filters of {} / {} taps are longer than the supported {}",
                spec.up_taps,
                spec.down_taps,
                crate::simd::MAX_TAPS
            )));
        }
        let (cin, cout, k) = (spec.in_channels, spec.out_channels, spec.conv_kernel);
        let affine = FullyConnected::from_tensors(
            map,
            &format!("{p}.affine"),
            w_dim,
            cin,
            1.0,
            Activation::Linear,
        )?;
        let mut weight = map
            .get_shaped(&format!("{p}.weight"), &[cout, cin, k, k])?
            .data
            .clone();
        if !spec.is_torgb {
            prenormalize_weight(&mut weight, cin * k * k);
        }
        let bias = map.get_shaped(&format!("{p}.bias"), &[cout])?.data.clone();
        let ema = map.get_shaped(&format!("{p}.magnitude_ema"), &[])?;
        let ema = ema.data.first().copied().unwrap_or(1.0);
        if !(ema > 0.0 && ema.is_finite()) {
            return Err(ModelError::Config(format!(
                "{p}.magnitude_ema is {ema}, expected a positive number"
            )));
        }
        let input_gain = 1.0 / ema.sqrt();

        let up = load_or_design(map, &format!("{p}.up_filter"), spec.up_taps, false, || {
            sg3_lowpass_filter(
                spec.up_taps,
                spec.in_cutoff,
                spec.in_half_width * 2.0,
                spec.tmp_sampling_rate,
                false,
            )
        })?;
        let down = load_or_design(
            map,
            &format!("{p}.down_filter"),
            spec.down_taps,
            spec.down_radial,
            || {
                sg3_lowpass_filter(
                    spec.down_taps,
                    spec.out_cutoff,
                    spec.out_half_width * 2.0,
                    spec.tmp_sampling_rate,
                    spec.down_radial,
                )
            },
        )?;
        let td = spec.down_taps;
        let down = match down {
            None => DownTaps::Separable(vec![1.0; 1]),
            Some(f) if spec.down_radial => {
                // g[a][b] = f[T−1−a][T−1−b]
                DownTaps::radial(f.iter().rev().copied().collect(), td)
            }
            Some(f) => DownTaps::Separable(f.iter().rev().copied().collect()),
        };
        let conv_size = spec.in_size + k - 1;
        let [px0, _, py0, _] = spec.padding;
        let plan = |lo: i64| {
            AxisPlan::new(
                conv_size,
                spec.up_factor,
                up.as_deref(),
                lo,
                spec.down_factor,
                td,
                spec.out_size,
            )
        };
        let (x, y) = (plan(px0), plan(py0));
        // The padding from the schedule must make the sizes consistent.
        let expected_tmp =
            conv_size as i64 * spec.up_factor as i64 + spec.padding[0] + spec.padding[1]
                - spec.up_taps as i64
                + 1;
        if expected_tmp != x.n_tmp as i64 {
            return Err(ModelError::Config(format!(
                "{p}: padding {:?} does not match sizes {} -> {}",
                spec.padding, spec.in_size, spec.out_size
            )));
        }
        let act = if spec.is_torgb {
            Act {
                slope: 1.0,
                gain: 1.0,
                clamp: spec.conv_clamp.map(|c| c as f32),
            }
        } else {
            Act {
                slope: 0.2,
                gain: SQRT2_F32,
                clamp: spec.conv_clamp.map(|c| c as f32),
            }
        };
        Ok(Sg3Layer {
            spec: spec.clone(),
            affine,
            weight,
            shared: None,
            bias,
            input_gain,
            resampler: Resampler { x, y, down, act },
        })
    }

    /// Whether [`Sg3Layer::share_weights`] applies: a demodulated 3×3 convolution on the
    /// Winograd F(4×4) path.
    pub(crate) fn can_share_weights(&self) -> bool {
        let s = &self.spec;
        !s.is_torgb && s.conv_kernel == 3 && self.shared.is_none() && conv3_is_f4()
    }

    pub(crate) fn has_shared_weights(&self) -> bool {
        self.shared.is_some()
    }

    /// Bytes the shared weights of this layer take (the transformed weights and the sums of
    /// squares, less the plain weights they replace).
    pub(crate) fn shared_weight_bytes(&self) -> usize {
        let s = &self.spec;
        let (cin, cout) = (s.in_channels, s.out_channels);
        let mr = crate::packed_gemm::MR;
        // F(4×4): 36 positions, output channels padded to whole panels
        let u = 36 * cout.div_ceil(mr) * mr * cin * 4;
        (u + cout * cin * 4).saturating_sub(self.weight.len() * 4)
    }

    /// Winograd F(4×4) tiles of this layer's convolution output. The per-sample weight
    /// transform costs the same whatever the map size, the products grow with the tiles: the
    /// fewer tiles, the larger the transform's share of the layer.
    pub(crate) fn conv_tiles(&self) -> usize {
        let n = (self.spec.in_size + self.spec.conv_kernel - 1).div_ceil(4);
        n * n
    }

    /// Transforms the weights once for every sample and drops the plain ones (see
    /// [`SharedWinograd`]); a no-op where [`Sg3Layer::can_share_weights`] is false.
    pub(crate) fn share_weights(&mut self) {
        if !self.can_share_weights() {
            return;
        }
        let s = &self.spec;
        let shared = SharedWinograd::new(s.out_channels, s.in_channels, &self.weight);
        self.shared = Some(Arc::new(shared));
        self.weight = Vec::new();
    }

    pub fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    /// The affine output (styles) for one w, before ToRGB's weight gain.
    pub fn affine_one(&self, w: &[f32]) -> Vec<f32> {
        let mut s = vec![0.0f32; self.spec.in_channels];
        self.affine.forward_one(w, &mut s);
        s
    }

    /// Rough cost (multiply-adds) of one sample, for progress reporting.
    pub(crate) fn cost(&self) -> f64 {
        let s = &self.spec;
        let conv = (s.in_size + s.conv_kernel - 1).pow(2) as f64
            * (s.in_channels * s.out_channels * s.conv_kernel * s.conv_kernel) as f64;
        let filt = (self.resampler.x.n_tmp as f64).powi(2) * s.out_channels as f64 * 8.0;
        conv + filt
    }

    /// One sample: `x [Cin, in, in]`, `w [w_dim]` -> `out [Cout, out, out]`. Calls
    /// `progress(fraction of this layer)` after each band and stops when cancelled. `scratch`
    /// is working memory the caller may keep across layers and calls (then steady-state
    /// forwards neither allocate nor fault in fresh pages).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_one(
        &self,
        x: &[f32],
        w: &[f32],
        out: &mut [f32],
        ctl: &dyn Control,
        progress: &mut dyn FnMut(f64),
        scratch: &mut LayerScratch,
    ) -> Result<(), ModelError> {
        let (shape, weights) = self.prepare_in(w, scratch);
        let result = self.run_bands(shape, &weights, x, out, ctl, progress, scratch);
        scratch.weights.recycle(weights);
        result
    }

    /// Styles -> modulated (and transformed) weights for one w.
    fn prepare(&self, w: &[f32]) -> (ConvShape, PreparedConv) {
        self.prepare_in(w, &mut LayerScratch::default())
    }

    /// [`Sg3Layer::prepare`] into the scratch's weight buffers.
    fn prepare_in(&self, w: &[f32], scratch: &mut LayerScratch) -> (ConvShape, PreparedConv) {
        let s = &self.spec;
        let (cin, cout, k) = (s.in_channels, s.out_channels, s.conv_kernel);
        let kk = k * k;
        let mut styles = self.affine_one(w);
        if s.is_torgb {
            let gain = (1.0 / ((cin * kk) as f64).sqrt()) as f32;
            for v in &mut styles {
                *v *= gain;
            }
        }
        let shape = ConvShape {
            cin,
            cout,
            h: s.in_size,
            w: s.in_size,
            k,
        };
        let _section = stage_time::section(Stage::Weights);
        if let Some(shared) = &self.shared {
            return (
                shape,
                PreparedConv::shared(shared, &styles, self.input_gain),
            );
        }
        let prepared = PreparedConv::modulated(
            shape,
            &self.weight,
            &styles,
            !s.is_torgb,
            self.input_gain,
            &mut scratch.weights,
        );
        (shape, prepared)
    }

    /// Modulated conv + filtered lrelu over bands of output rows: each band computes the conv
    /// rows it needs (keeping the rows it shares with the previous band) and then runs the
    /// fused filter per channel in parallel.
    #[allow(clippy::too_many_arguments)]
    fn run_bands(
        &self,
        shape: ConvShape,
        weights: &PreparedConv,
        x: &[f32],
        out: &mut [f32],
        ctl: &dyn Control,
        progress: &mut dyn FnMut(f64),
        scratch: &mut LayerScratch,
    ) -> Result<(), ModelError> {
        let s = &self.spec;
        let cout = shape.cout;
        let (conv_w, conv_h) = (shape.out_w(), shape.out_h());
        let rs = &self.resampler;
        let (ho, wo) = (s.out_size, s.out_size);

        // Band height: as many output rows as keep the conv band within its budget.
        let target_rows = (CONV_BAND_BUDGET / (cout * conv_w).max(1)).max(4);
        let band = ((target_rows * s.up_factor).saturating_sub(s.up_taps + s.down_taps)
            / s.down_factor)
            .clamp(1, ho.max(1));
        let bands: Vec<(usize, usize)> = (0..ho)
            .step_by(band)
            .map(|b| (b, (b + band).min(ho)))
            .collect();
        let cap = bands
            .iter()
            .map(|&(a, b)| {
                let (lo, hi) = rs.conv_rows(a, b);
                hi - lo
            })
            .max()
            .unwrap_or(0)
            .max(1);
        // Every conv row is written (by `conv_rows`) before the filter reads it.
        let LayerScratch {
            conv, conv_scratch, ..
        } = scratch;
        let conv = crate::buffer_pool::grow(conv, cout * cap * conv_w);
        let (mut have_lo, mut have_hi) = (0usize, 0usize);
        let plane = cap * conv_w;
        for (bi, &(oy0, oy1)) in bands.iter().enumerate() {
            if ctl.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let (need_lo, need_hi) = rs.conv_rows(oy0, oy1);
            let need_hi = need_hi.min(conv_h);
            // Keep the rows this band shares with the previous one.
            if need_lo >= have_hi || need_lo < have_lo {
                have_lo = need_lo;
                have_hi = need_lo;
            } else if need_lo > have_lo {
                let shift = (need_lo - have_lo) * conv_w;
                let keep = (have_hi - need_lo) * conv_w;
                for c in 0..cout {
                    conv.copy_within(c * plane + shift..c * plane + shift + keep, c * plane);
                }
                have_lo = need_lo;
            }
            if need_hi > have_hi {
                let off = (have_hi - have_lo) * conv_w;
                conv_rows(
                    shape,
                    x,
                    weights,
                    have_hi,
                    need_hi,
                    &mut conv[off..],
                    plane,
                    conv_scratch,
                );
                have_hi = need_hi;
            }
            let conv_ref: &[f32] = conv;
            let rows = have_hi - have_lo;
            let _section = stage_time::section(Stage::Filter);
            out.par_chunks_mut(ho * wo)
                .zip(&self.bias)
                .enumerate()
                .for_each(|(c, (out_plane, &b))| {
                    let src = &conv_ref[c * plane..c * plane + rows * conv_w];
                    with_band_scratch(|scratch| {
                        rs.channel_band(
                            src,
                            have_lo,
                            b,
                            oy0,
                            oy1,
                            &mut out_plane[oy0 * wo..oy1 * wo],
                            scratch,
                        )
                    });
                });
            progress((bi + 1) as f64 / bands.len() as f64);
        }
        Ok(())
    }
}

impl Sg3Layer {
    /// The unfused first half of the layer for one sample: the modulated convolution's whole
    /// output `[Cout, in+k−1, in+k−1]` (bias not added). For benchmarks and tests.
    #[doc(hidden)]
    pub fn modconv_full(&self, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (shape, weights) = self.prepare(w);
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let mut conv = vec![0.0f32; shape.cout * oh * ow];
        conv_rows(
            shape,
            x,
            &weights,
            0,
            oh,
            &mut conv,
            oh * ow,
            &mut ConvScratch::default(),
        );
        conv
    }

    /// The second half for one sample: bias, filtered lrelu, from a whole conv output
    /// (`modconv_full`) to `out [Cout, out, out]`, in one band. For benchmarks and tests.
    #[doc(hidden)]
    pub fn filtered_lrelu_full(&self, conv: &[f32], out: &mut [f32]) {
        let s = &self.spec;
        let conv_plane = self.resampler.x.n_in * self.resampler.y.n_in;
        let rs = &self.resampler;
        out.par_chunks_mut(s.out_size * s.out_size)
            .zip(conv.par_chunks(conv_plane))
            .zip(&self.bias)
            .for_each(|((o, c), &b)| {
                with_band_scratch(|scratch| rs.channel_band(c, 0, b, 0, s.out_size, o, scratch));
            });
    }
}

fn load_or_design(
    map: &TensorMap,
    name: &str,
    taps: usize,
    radial: bool,
    design: impl FnOnce() -> Option<Vec<f32>>,
) -> Result<Option<Vec<f32>>, ModelError> {
    match map.get_opt(name) {
        Some(_) if taps <= 1 => Err(ModelError::Config(format!(
            "{name} is stored but the schedule has a single tap (identity)"
        ))),
        Some(_) => {
            let shape: Vec<usize> = if radial { vec![taps, taps] } else { vec![taps] };
            Ok(Some(map.get_shaped(name, &shape)?.data.clone()))
        }
        None => Ok(design()),
    }
}
