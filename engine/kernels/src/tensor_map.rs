//! A name -> tensor map: the state dict of a network, as loaded from a safetensors file or a
//! network pickle. Names are the upstream (PyTorch) state-dict names.

use std::collections::BTreeMap;
use std::path::Path;

/// One named f32 tensor (C order).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NamedTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TensorMapError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("missing tensor {name:?} (the model file does not have it)")]
    Missing { name: String },
    #[error("tensor {name:?} has shape {found:?}, expected {expected}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: String,
    },
}

/// State dict: tensor name -> tensor.
#[derive(Clone, Debug, Default)]
pub struct TensorMap {
    pub tensors: BTreeMap<String, NamedTensor>,
}

impl TensorMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors
            .insert(name.into(), NamedTensor { shape, data });
    }

    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Result<&NamedTensor, TensorMapError> {
        self.tensors
            .get(name)
            .ok_or_else(|| TensorMapError::Missing {
                name: name.to_owned(),
            })
    }

    /// Optional tensor (e.g. filters that are identity and therefore absent).
    pub fn get_opt(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.get(name)
    }

    /// Looks a tensor up and checks its shape.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<&NamedTensor, TensorMapError> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(TensorMapError::Shape {
                name: name.to_owned(),
                found: t.shape.clone(),
                expected: format!("{shape:?}"),
            });
        }
        Ok(t)
    }

    /// Reads every tensor of a `.safetensors` file (f32, f16 and f64 are converted to f32).
    pub fn from_safetensors_file(path: &Path) -> Result<TensorMap, TensorMapError> {
        let file_err = |message: String| TensorMapError::File {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
        Self::from_safetensors_bytes(&bytes).map_err(|e| match e {
            TensorMapError::File { message, .. } => file_err(message),
            other => other,
        })
    }

    /// Parses a safetensors buffer.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<TensorMap, TensorMapError> {
        use safetensors::{Dtype, SafeTensors};
        let err = |message: String| TensorMapError::File {
            path: "<memory>".into(),
            message,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let mut map = TensorMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                other => {
                    return Err(err(format!(
                        "tensor {name:?} has unsupported dtype {other:?}"
                    )))
                }
            };
            map.insert(name, view.shape().to_vec(), data);
        }
        Ok(map)
    }
}

fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}
