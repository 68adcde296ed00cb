//! Types shared by the network implementations (mapping, StyleGAN2 and StyleGAN3 synthesis).

use crate::tensor_map::TensorMapError;

/// Errors building or running a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor is missing or has the wrong shape.
    #[error(transparent)]
    Tensors(#[from] TensorMapError),
    /// The construction arguments are missing, inconsistent or unsupported.
    #[error("model configuration: {0}")]
    Config(String),
    /// An input (latent, features, layer index...) does not fit the network.
    #[error("{0}")]
    Input(String),
    /// The caller asked to stop.
    #[error("cancelled")]
    Cancelled,
}

/// Where a layer's per-pixel noise comes from (StyleGAN2; StyleGAN3 has no noise inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseMode {
    /// The network's stored `noise_const` buffers (the official default).
    Const,
    /// Fresh standard-normal noise, drawn from `stylegraph_rng::RandomState::new(seed)`.
    Random { seed: u32 },
    /// No noise.
    None,
}

/// A batch of feature maps, NCHW, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Features {
    /// Zero-filled maps.
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Features {
        Features {
            n,
            c,
            h,
            w,
            data: vec![0.0; n * c * h * w],
        }
    }

    /// Wraps data, checking its length.
    pub fn from_vec(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        data: Vec<f32>,
    ) -> Result<Features, ModelError> {
        if data.len() != n * c * h * w {
            return Err(ModelError::Input(format!(
                "feature data has {} values, shape [{n}, {c}, {h}, {w}] needs {}",
                data.len(),
                n * c * h * w
            )));
        }
        Ok(Features { n, c, h, w, data })
    }

    /// The shape as `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// The maps of sample `i` (`c * h * w` values).
    pub fn sample(&self, i: usize) -> &[f32] {
        let len = self.c * self.h * self.w;
        &self.data[i * len..(i + 1) * len]
    }
}

/// Lets a long computation report progress and be cancelled by its caller (a node checks the
/// host's cancel flag here). Implementations must be cheap: they are called between layers.
pub trait Control: Sync {
    /// True once the caller wants the computation to stop.
    fn is_cancelled(&self) -> bool {
        false
    }
    /// Progress in [0, 1] of the whole computation.
    fn progress(&self, _fraction: f64) {}
}

/// A [`Control`] that never cancels and ignores progress.
pub struct NoControl;

impl Control for NoControl {}
