//! Values that flow along edges, as the host owns them.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use stylegraph_abi::ffi::*;

/// One 64-byte, 64-aligned block: tensors are allocated in these so SIMD kernels can rely on
/// cache-line alignment.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A tensor in host memory, owned by the host. Immutable once it leaves the node that made it.
pub struct HostTensor {
    dtype: SgDType,
    shape: Box<[i64]>,
    blocks: Vec<Block>,
    len_bytes: usize,
    /// The meter this tensor's bytes are counted on while it lives (tensors nodes allocate).
    meter: Option<Arc<TensorMeter>>,
}

/// Counts the bytes of live host tensors that nodes allocated: the memory a run holds in values
/// on edges, in the cache and in reports (a [`crate::exec::Session`] keeps one).
#[derive(Debug, Default)]
pub struct TensorMeter {
    live: AtomicUsize,
    peak: AtomicUsize,
    allocated: AtomicU64,
}

/// A reading of a [`TensorMeter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensorMemory {
    /// Bytes of tensors alive now.
    pub live_bytes: usize,
    /// The most bytes alive at once since the meter was made or its peak reset.
    pub peak_bytes: usize,
    /// Bytes allocated in all, ever.
    pub allocated_bytes: u64,
}

impl TensorMeter {
    fn add(&self, bytes: usize) {
        let now = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.allocated.fetch_add(bytes as u64, Ordering::SeqCst);
    }
    fn sub(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::SeqCst);
    }
    /// The current reading.
    pub fn read(&self) -> TensorMemory {
        TensorMemory {
            live_bytes: self.live.load(Ordering::SeqCst),
            peak_bytes: self.peak.load(Ordering::SeqCst),
            allocated_bytes: self.allocated.load(Ordering::SeqCst),
        }
    }
    /// Starts a new peak from what is alive now.
    pub fn reset_peak(&self) {
        self.peak
            .store(self.live.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Errors making a tensor.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("unsupported dtype {0}")]
    DType(String),
    #[error("invalid shape {0:?}")]
    Shape(Vec<i64>),
    #[error("tensor of shape {shape:?} and dtype {dtype} needs {bytes} bytes, over the limit")]
    TooLarge {
        shape: Vec<i64>,
        dtype: String,
        bytes: u128,
    },
    #[error("data has {got} elements, shape {shape:?} needs {need}")]
    Length {
        got: usize,
        need: usize,
        shape: Vec<i64>,
    },
}

/// Largest single tensor the host will allocate (a typo'd shape should fail, not swap).
pub const MAX_TENSOR_BYTES: u128 = 1 << 36;

fn dtype_supported(d: SgDType) -> bool {
    d.lanes == 1
        && matches!(
            (d.code, d.bits),
            (SG_DTYPE_FLOAT, 16 | 32 | 64)
                | (SG_DTYPE_BFLOAT, 16)
                | (SG_DTYPE_INT, 8 | 16 | 32 | 64)
                | (SG_DTYPE_UINT, 8 | 16 | 32 | 64)
                | (SG_DTYPE_BOOL, 8)
        )
}

impl HostTensor {
    /// A zero-filled tensor.
    pub fn zeros(dtype: SgDType, shape: &[i64]) -> Result<HostTensor, TensorError> {
        if !dtype_supported(dtype) {
            return Err(TensorError::DType(dtype.name()));
        }
        if shape.iter().any(|&d| d < 0) || shape.len() > 16 {
            return Err(TensorError::Shape(shape.to_vec()));
        }
        let numel: u128 = shape.iter().map(|&d| d as u128).product();
        let bytes = numel * dtype.size_bytes() as u128;
        if bytes > MAX_TENSOR_BYTES {
            return Err(TensorError::TooLarge {
                shape: shape.to_vec(),
                dtype: dtype.name(),
                bytes,
            });
        }
        let len_bytes = bytes as usize;
        Ok(HostTensor {
            dtype,
            shape: shape.into(),
            blocks: vec![Block([0; 64]); len_bytes.div_ceil(64)],
            len_bytes,
            meter: None,
        })
    }

    /// Counts this tensor's bytes on `meter` until it is dropped.
    pub(crate) fn attach_meter(&mut self, meter: &Arc<TensorMeter>) {
        if self.meter.is_none() {
            meter.add(self.len_bytes);
            self.meter = Some(meter.clone());
        }
    }

    /// An f32 tensor holding `data`.
    pub fn from_f32(shape: &[i64], data: &[f32]) -> Result<HostTensor, TensorError> {
        let mut t = HostTensor::zeros(SgDType::F32, shape)?;
        if t.numel() != data.len() {
            return Err(TensorError::Length {
                got: data.len(),
                need: t.numel(),
                shape: shape.to_vec(),
            });
        }
        for (dst, v) in t.bytes_mut().chunks_exact_mut(4).zip(data) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(t)
    }

    /// An f64 tensor holding `data`.
    pub fn from_f64(shape: &[i64], data: &[f64]) -> Result<HostTensor, TensorError> {
        let mut t = HostTensor::zeros(SgDType::F64, shape)?;
        if t.numel() != data.len() {
            return Err(TensorError::Length {
                got: data.len(),
                need: t.numel(),
                shape: shape.to_vec(),
            });
        }
        for (dst, v) in t.bytes_mut().chunks_exact_mut(8).zip(data) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(t)
    }

    pub fn dtype(&self) -> SgDType {
        self.dtype
    }
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
    pub fn size_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `blocks` is a contiguous allocation of at least `len_bytes` bytes.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr() as *const u8, self.len_bytes) }
    }

    /// The raw bytes, writable (only while the host still owns the only reference).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr() as *mut u8, self.len_bytes)
        }
    }

    /// The elements as f64, converted from any numeric dtype (for tests and small outputs).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let b = self.bytes();
        match (self.dtype.code, self.dtype.bits) {
            (SG_DTYPE_FLOAT, 64) => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            (SG_DTYPE_FLOAT, 32) => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            (SG_DTYPE_UINT, 8) | (SG_DTYPE_BOOL, 8) => b.iter().map(|&v| v as f64).collect(),
            (SG_DTYPE_INT, 64) => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
                .collect(),
            (SG_DTYPE_INT, 32) => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The elements as f32 (see [`HostTensor::to_f64_vec`]).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        if self.dtype == SgDType::F32 {
            return self
                .bytes()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        self.to_f64_vec().into_iter().map(|v| v as f32).collect()
    }

    /// The data pointer (for matching outputs to allocations).
    pub(crate) fn data_ptr(&self) -> *const u8 {
        self.blocks.as_ptr() as *const u8
    }

    /// A DLPack-shaped descriptor for handing this tensor to a plugin. Valid while `self` lives.
    pub fn descriptor(&self) -> SgTensor {
        SgTensor {
            data: self.blocks.as_ptr() as *mut std::ffi::c_void,
            device: SgDevice::CPU,
            ndim: self.shape.len() as i32,
            dtype: self.dtype,
            shape: self.shape.as_ptr(),
            strides: std::ptr::null(),
            byte_offset: 0,
        }
    }
}

impl Drop for HostTensor {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.sub(self.len_bytes);
        }
    }
}

impl fmt::Debug for HostTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype.name(), self.shape)
    }
}

/// A reference to an opaque plugin object. Cloning retains, dropping releases.
pub struct HostObject {
    raw: SgObject,
    type_name: String,
}

// SAFETY: the ABI requires objects to be usable from any thread (the SDK only makes objects of
// `Send + Sync` types, and C authors are told so in the header).
unsafe impl Send for HostObject {}
unsafe impl Sync for HostObject {}

impl HostObject {
    /// Takes over the one reference a plugin handed out in an output.
    ///
    /// # Safety
    /// `raw` must be a valid object whose reference is transferred to the host.
    pub(crate) unsafe fn adopt(raw: SgObject) -> HostObject {
        let type_name = raw.type_name.to_string_lossy();
        HostObject { raw, type_name }
    }
    /// The object's type name (e.g. `stylegan.Generator`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }
    pub fn size_bytes(&self) -> u64 {
        self.raw.size_bytes
    }
    pub(crate) fn raw(&self) -> SgObject {
        self.raw
    }
}

impl Clone for HostObject {
    fn clone(&self) -> Self {
        if let Some(retain) = self.raw.retain {
            // SAFETY: object contract: retain takes one more reference.
            unsafe { retain(self.raw.ptr) };
        }
        HostObject {
            raw: self.raw,
            type_name: self.type_name.clone(),
        }
    }
}

impl Drop for HostObject {
    fn drop(&mut self) {
        if let Some(release) = self.raw.release {
            // SAFETY: we own one reference.
            unsafe { release(self.raw.ptr) };
        }
    }
}

impl fmt::Debug for HostObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Object<{}>", self.type_name)
    }
}

/// A value on an edge or a node output.
#[derive(Clone, Debug)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Tensor(Arc<HostTensor>),
    Object(HostObject),
}

impl Value {
    /// Approximate memory held, for the cache budget.
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 16,
            Value::Tensor(t) => t.size_bytes() + 64,
            Value::Object(o) => o.size_bytes() as usize + 64,
            _ => 16,
        }
    }

    /// A short description for messages and events: `f32[1, 512]`, `3.5`, `object stylegan.Generator`.
    pub fn summary(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f}"),
            Value::Str(s) => format!("{s:?}"),
            Value::Tensor(t) => format!("{}{:?}", t.dtype().name(), t.shape()),
            Value::Object(o) => format!("object {}", o.type_name()),
        }
    }

    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&Arc<HostTensor>> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
