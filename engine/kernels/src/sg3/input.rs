//! The SG3 input layer (`SynthesisInput`): Fourier features with a learned per-sample rotation
//! and translation, an optional user transform, and a channel-mixing matrix.

use crate::fc::{Activation, FullyConnected};
use crate::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::model::ModelError;
use crate::sg3::config::InputSpec;
use crate::tensor_map::TensorMap;

/// The input layer's parameters.
#[derive(Clone, Debug)]
pub struct Sg3Input {
    spec: InputSpec,
    affine: FullyConnected,
    /// `[C, C]`, already divided by sqrt(C) (upstream divides, so do we).
    weight: Vec<f32>,
    /// `[C, 2]`
    freqs: Vec<f32>,
    /// `[C]`
    phases: Vec<f32>,
    /// The stored user transform buffer (identity unless the file was saved with one).
    transform: [[f32; 3]; 3],
}

/// `2π` rounded to f32 (upstream multiplies by the Python float `np.pi * 2`).
const TWO_PI_F32: f32 = (std::f64::consts::PI * 2.0) as f32;

impl Sg3Input {
    /// Loads `synthesis.input.*`.
    pub fn from_tensors(
        map: &TensorMap,
        spec: &InputSpec,
        w_dim: usize,
    ) -> Result<Sg3Input, ModelError> {
        let c = spec.channels;
        let affine = FullyConnected::from_tensors(
            map,
            "synthesis.input.affine",
            w_dim,
            4,
            1.0,
            Activation::Linear,
        )?;
        let sqrt_c = (c as f64).sqrt() as f32;
        let weight = map
            .get_shaped("synthesis.input.weight", &[c, c])?
            .data
            .iter()
            .map(|&v| v / sqrt_c)
            .collect();
        let freqs = map
            .get_shaped("synthesis.input.freqs", &[c, 2])?
            .data
            .clone();
        let phases = map.get_shaped("synthesis.input.phases", &[c])?.data.clone();
        let transform = match map.get_opt("synthesis.input.transform") {
            Some(_) => {
                let t = &map.get_shaped("synthesis.input.transform", &[3, 3])?.data;
                [[t[0], t[1], t[2]], [t[3], t[4], t[5]], [t[6], t[7], t[8]]]
            }
            None => [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        Ok(Sg3Input {
            spec: spec.clone(),
            affine,
            weight,
            freqs,
            phases,
            transform,
        })
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The stored user transform.
    pub fn stored_transform(&self) -> [[f32; 3]; 3] {
        self.transform
    }

    /// The affine output `(r_c, r_s, t_x, t_y)` for one w (before normalisation).
    pub fn affine_one(&self, w: &[f32]) -> [f32; 4] {
        let mut t = [0.0f32; 4];
        self.affine.forward_one(w, &mut t);
        t
    }

    /// One sample: w `[w_dim]` -> features `[C, size, size]` written to `out`.
    /// `transform` replaces the stored transform buffer (rounded to f32 like the buffer).
    /// `feat` is working memory for the Fourier features (as large as `out`), which the caller
    /// may keep between calls.
    pub(crate) fn forward_one(
        &self,
        w: &[f32],
        transform: Option<&[[f64; 3]; 3]>,
        out: &mut [f32],
        feat: &mut Vec<f32>,
    ) {
        let c = self.spec.channels;
        let size = self.spec.size;
        let user: [[f32; 3]; 3] = match transform {
            Some(m) => m.map(|row| row.map(|v| v as f32)),
            None => self.transform,
        };
        let t = self.affine_one(w);
        let norm = (t[0] * t[0] + t[1] * t[1]).sqrt();
        let t = t.map(|v| v / norm);
        let m_r = [[t[0], -t[1], 0.0], [t[1], t[0], 0.0], [0.0, 0.0, 1.0]];
        let m_t = [[1.0, 0.0, -t[2]], [0.0, 1.0, -t[3]], [0.0, 0.0, 1.0]];
        let m = matmul3(&matmul3(&m_r, &m_t), &user);

        let bandwidth = self.spec.bandwidth as f32;
        let falloff = (self.spec.sampling_rate / 2.0 - self.spec.bandwidth) as f32;
        // Per channel: transformed frequency, phase and amplitude.
        let mut fx = vec![0.0f32; c];
        let mut fy = vec![0.0f32; c];
        let mut ph = vec![0.0f32; c];
        let mut amp = vec![0.0f32; c];
        for i in 0..c {
            let (f0, f1) = (self.freqs[2 * i], self.freqs[2 * i + 1]);
            ph[i] = self.phases[i] + (f0 * m[0][2] + f1 * m[1][2]);
            fx[i] = f0 * m[0][0] + f1 * m[1][0];
            fy[i] = f0 * m[0][1] + f1 * m[1][1];
            let r = (fx[i] * fx[i] + fy[i] * fy[i]).sqrt();
            amp[i] = (1.0 - (r - bandwidth) / falloff).clamp(0.0, 1.0);
        }
        // Sample grid: pixel centres at (j + 0.5 - size/2) / sampling_rate (affine_grid with
        // align_corners=False and scale 0.5·size/rate), x = column, y = row.
        let s = self.spec.sampling_rate;
        let coord: Vec<f32> = (0..size)
            .map(|j| ((j as f64 + 0.5 - size as f64 / 2.0) / s) as f32)
            .collect();
        let hw = size * size;
        // every value is written below
        let feat = crate::buffer_pool::grow(feat, c * hw);
        for (i, plane) in feat.chunks_exact_mut(hw).enumerate() {
            for (y, row) in plane.chunks_exact_mut(size).enumerate() {
                let gy = coord[y];
                for (x, v) in row.iter_mut().enumerate() {
                    let arg = (coord[x] * fx[i] + gy * fy[i]) + ph[i];
                    let a = arg * TWO_PI_F32;
                    *v = ((a as f64).sin() as f32) * amp[i];
                }
            }
        }
        sgemm(
            MatMut {
                data: out,
                rows: c,
                cols: hw,
                row_stride: hw,
            },
            MatRef {
                data: &self.weight,
                rows: c,
                cols: c,
                row_stride: c,
            },
            MatRef {
                data: feat,
                rows: c,
                cols: hw,
                row_stride: hw,
            },
            false,
            Threads::Pool,
        );
    }
}

fn matmul3(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let mut r = [[0.0f32; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    r
}

/// The inverse transform the official `gen_images.py` writes into `synthesis.input.transform`
/// for `--translate tx,ty --rotate deg`: the forward matrix `[[c, s, tx], [-s, c, ty], [0, 0, 1]]`
/// (angle in degrees) inverted by Gaussian elimination with partial pivoting (as LAPACK's
/// `gesv`, which `np.linalg.inv` calls).
pub fn user_transform(translate: (f64, f64), rotate_deg: f64) -> [[f64; 3]; 3] {
    let angle = rotate_deg / 360.0 * std::f64::consts::PI * 2.0;
    let (s, c) = (angle.sin(), angle.cos());
    let m = [[c, s, translate.0], [-s, c, translate.1], [0.0, 0.0, 1.0]];
    invert3(&m)
}

/// 3×3 inverse via LU with partial pivoting, then solving for the identity's columns.
/// Singular input gives non-finite entries (never happens for a rotation).
#[allow(clippy::needless_range_loop)] // index notation mirrors the LU algorithm
fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut a = *m;
    let mut perm = [0usize, 1, 2];
    for k in 0..3 {
        let p = (k..3)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap_or(k);
        a.swap(k, p);
        perm.swap(k, p);
        let pivot = a[k][k];
        for i in k + 1..3 {
            a[i][k] /= pivot;
            let l = a[i][k];
            for j in k + 1..3 {
                a[i][j] -= l * a[k][j];
            }
        }
    }
    let mut inv = [[0.0f64; 3]; 3];
    for col in 0..3 {
        // b = P · e_col
        let mut y = [0.0f64; 3];
        for i in 0..3 {
            y[i] = if perm[i] == col { 1.0 } else { 0.0 };
        }
        for i in 0..3 {
            for j in 0..i {
                y[i] -= a[i][j] * y[j];
            }
        }
        for i in (0..3).rev() {
            for j in i + 1..3 {
                y[i] -= a[i][j] * y[j];
            }
            y[i] /= a[i][i];
        }
        for i in 0..3 {
            inv[i][col] = y[i];
        }
    }
    inv
}
