//! The fully connected layer of both StyleGAN generations (`FullyConnectedLayer`).

use crate::model::ModelError;
use crate::tensor_map::TensorMap;

/// Activation after a fully connected layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `y = x·Wᵀ + b`.
    Linear,
    /// `y = lrelu(x·Wᵀ + b, 0.2) · sqrt(2)`.
    Lrelu,
}

/// A fully connected layer with the equalized learning rate folded into its weights.
#[derive(Clone, Debug)]
pub struct FullyConnected {
    in_features: usize,
    out_features: usize,
    /// `[out, in]`, already multiplied by `lr_multiplier / sqrt(in)` (in f32, as upstream).
    weight: Vec<f32>,
    /// `[out]`, already multiplied by `lr_multiplier`.
    bias: Vec<f32>,
    activation: Activation,
}

/// `sqrt(2)` rounded to f32: the lrelu gain upstream multiplies with.
pub(crate) const SQRT2_F32: f32 = std::f64::consts::SQRT_2 as f32;

impl FullyConnected {
    /// Loads `{prefix}.weight [out, in]` and `{prefix}.bias [out]` (bias optional: zero).
    pub fn from_tensors(
        map: &TensorMap,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        lr_multiplier: f64,
        activation: Activation,
    ) -> Result<FullyConnected, ModelError> {
        let w = map.get_shaped(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias_name = format!("{prefix}.bias");
        let b = match map.get_opt(&bias_name) {
            Some(_) => Some(map.get_shaped(&bias_name, &[out_features])?.data.as_slice()),
            None => None,
        };
        Ok(Self::from_raw(
            &w.data,
            b,
            in_features,
            out_features,
            lr_multiplier,
            activation,
        ))
    }

    /// Builds from raw (unscaled) parameters; lengths must be `out*in` and `out`.
    pub(crate) fn from_raw(
        weight: &[f32],
        bias: Option<&[f32]>,
        in_features: usize,
        out_features: usize,
        lr_multiplier: f64,
        activation: Activation,
    ) -> FullyConnected {
        // Upstream: weight_gain = lr_multiplier / np.sqrt(in_features) (float64), then the f32
        // tensor is multiplied by that Python float, i.e. by its f32 rounding.
        let weight_gain = (lr_multiplier / (in_features as f64).sqrt()) as f32;
        let bias_gain = lr_multiplier as f32;
        let weight = weight.iter().map(|&v| v * weight_gain).collect();
        let bias = match bias {
            Some(b) if bias_gain != 1.0 => b.iter().map(|&v| v * bias_gain).collect(),
            Some(b) => b.to_vec(),
            None => vec![0.0; out_features],
        };
        FullyConnected {
            in_features,
            out_features,
            weight,
            bias,
            activation,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// `x [n, in]` -> `[n, out]`.
    ///
    /// Dot products are accumulated in f64 and rounded once, which is the closest f32 result
    /// (upstream's BLAS result differs from it by a few ulp at most).
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        if x.len() != n * self.in_features {
            return Err(ModelError::Input(format!(
                "fully connected layer expects {n} x {} inputs, got {} values",
                self.in_features,
                x.len()
            )));
        }
        let mut y = vec![0.0f32; n * self.out_features];
        for (xs, ys) in x
            .chunks_exact(self.in_features.max(1))
            .zip(y.chunks_exact_mut(self.out_features.max(1)))
        {
            self.forward_one(xs, ys);
        }
        Ok(y)
    }

    /// One sample: `x [in]` -> `y [out]` (lengths are the caller's responsibility).
    pub(crate) fn forward_one(&self, x: &[f32], y: &mut [f32]) {
        for ((yo, wrow), &b) in y
            .iter_mut()
            .zip(self.weight.chunks_exact(self.in_features.max(1)))
            .zip(&self.bias)
        {
            let dot = dot_f64(x, wrow) as f32;
            let v = dot + b;
            *yo = match self.activation {
                Activation::Linear => v,
                Activation::Lrelu => {
                    let a = if v < 0.0 { v * 0.2 } else { v };
                    a * SQRT2_F32
                }
            };
        }
    }
}

/// Dot product accumulated in f64 (4 independent partial sums so it vectorises).
pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let chunks = n / 4;
    for i in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * i + l] as f64 * b[4 * i + l] as f64;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks * 4..n {
        s += a[i] as f64 * b[i] as f64;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalized_lr_and_lrelu() {
        // in = 4 -> weight gain 0.5 * lr; lr 0.5 -> gain 0.25, bias gain 0.5.
        let w = [1.0f32, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0];
        let b = [2.0f32, 0.0];
        let fc = FullyConnected::from_raw(&w, Some(&b), 4, 2, 0.5, Activation::Lrelu);
        let y = fc.forward(&[1.0, 1.0, 1.0, 1.0], 1).unwrap();
        // row 0: 10 * 0.25 + 1 = 3.5 -> 3.5 * sqrt2; row 1: -4 * 0.25 = -1 -> -0.2 * sqrt2
        assert!((y[0] - 3.5 * SQRT2_F32).abs() < 1e-6);
        assert!((y[1] + 0.2 * SQRT2_F32).abs() < 1e-6);
        let lin = FullyConnected::from_raw(&w, Some(&b), 4, 2, 0.5, Activation::Linear);
        assert_eq!(
            lin.forward(&[1.0, 1.0, 1.0, 1.0], 1).unwrap(),
            vec![3.5, -1.0]
        );
        assert!(lin.forward(&[1.0], 1).is_err());
    }
}
