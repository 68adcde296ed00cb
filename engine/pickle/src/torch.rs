//! Torch tensors: dtypes, the legacy `torch.save` storage blobs, and strided gathers.

use std::fmt;

use crate::error::PickleError;
use crate::vm::{self, Heap, Node, Value};

/// Element type of a tensor (the dtype of its torch storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchDType {
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`, also untyped storages).
    U8,
    /// `torch.bool` (`BoolStorage`), one byte per element.
    Bool,
}

impl TorchDType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            TorchDType::U8 | TorchDType::I8 | TorchDType::Bool => 1,
            TorchDType::F16 | TorchDType::BF16 | TorchDType::I16 => 2,
            TorchDType::F32 | TorchDType::I32 => 4,
            TorchDType::F64 | TorchDType::I64 => 8,
        }
    }

    /// The PyTorch name without the `torch.` prefix (`"float32"`, `"bfloat16"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TorchDType::F32 => "float32",
            TorchDType::F16 => "float16",
            TorchDType::BF16 => "bfloat16",
            TorchDType::F64 => "float64",
            TorchDType::I64 => "int64",
            TorchDType::I32 => "int32",
            TorchDType::I16 => "int16",
            TorchDType::I8 => "int8",
            TorchDType::U8 => "uint8",
            TorchDType::Bool => "bool",
        }
    }

    /// The dtype of a legacy storage class (`FloatStorage`, ...).
    fn from_storage_class(name: &str) -> Option<TorchDType> {
        Some(match name {
            "FloatStorage" => TorchDType::F32,
            "HalfStorage" => TorchDType::F16,
            "BFloat16Storage" => TorchDType::BF16,
            "DoubleStorage" => TorchDType::F64,
            "LongStorage" => TorchDType::I64,
            "IntStorage" => TorchDType::I32,
            "ShortStorage" => TorchDType::I16,
            "CharStorage" => TorchDType::I8,
            "ByteStorage" | "UntypedStorage" => TorchDType::U8,
            "BoolStorage" => TorchDType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for TorchDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor read from a pickle: its dtype, shape and data, little-endian in C (row-major)
/// order, whatever the storage offset and strides were in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor {
    /// Element type.
    pub dtype: TorchDType,
    /// Shape; empty for a 0-d (scalar) tensor.
    pub shape: Vec<usize>,
    /// `numel() * dtype.size()` bytes, little-endian, C order.
    pub data: Vec<u8>,
}

impl TorchTensor {
    /// Number of elements (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as `f32`, converting from float16, bfloat16 and float64 (rounding to
    /// nearest). Integer and bool tensors are refused.
    pub fn to_f32(&self) -> Result<Vec<f32>, PickleError> {
        let d = &self.data;
        Ok(match self.dtype {
            TorchDType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            TorchDType::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TorchDType::BF16 => d
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            TorchDType::F64 => d
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            other => {
                return Err(PickleError::Unsupported(format!(
                    "converting a {other} tensor to float32"
                )))
            }
        })
    }
}

/// IEEE binary16 to binary32 (exact).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24; normalise it.
            let shift = m.leading_zeros() - 21; // bring the top set bit to position 10
            let m = (m << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// One decoded storage: where its elements are in the input and what type they have.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Storage {
    pub dtype: TorchDType,
    /// Absolute offset of element 0 in the input.
    pub off: usize,
    /// Number of elements.
    pub numel: usize,
}

/// The magic number that starts a legacy `torch.save` stream.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// The legacy format version.
const LEGACY_PROTOCOL: i64 = 1001;

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn bigint_equals(bytes: &[u8], want: u128) -> bool {
    // Two's complement little-endian; the magic is positive and fits in 80 bits.
    if bytes.is_empty() || bytes.len() > 17 || bytes[bytes.len() - 1] & 0x80 != 0 {
        return false;
    }
    if bytes.len() == 17 && bytes[16] != 0 {
        return false;
    }
    let mut v: u128 = 0;
    for (i, &b) in bytes.iter().take(16).enumerate() {
        v |= (b as u128) << (8 * i);
    }
    v == want
}

/// Parses a legacy (non-zip) `torch.save` stream of a single storage, found at
/// `data[off..off + len]` (the argument of `torch.storage._load_from_bytes`).
pub(crate) fn parse_storage_blob(data: &[u8], off: usize, len: usize) -> Result<Storage, String> {
    let end = off.checked_add(len).filter(|&e| e <= data.len()).ok_or("storage blob out of range")?;
    let mut heap = Heap::default();
    let e = |e: PickleError| format!("in its storage blob at byte {off}: {e}");

    let (magic, pos) = vm::run(data, off, end, &mut heap).map_err(e)?;
    let magic_ok = match &magic {
        Value::BigInt(b) => bigint_equals(b, LEGACY_MAGIC),
        _ => false,
    };
    if !magic_ok {
        return Err(format!(
            "storage blob at byte {off} does not start with the legacy torch.save magic number"
        ));
    }
    let (proto, pos) = vm::run(data, pos, end, &mut heap).map_err(e)?;
    if int_of(&proto) != Some(LEGACY_PROTOCOL) {
        return Err(format!(
            "storage blob at byte {off}: legacy torch.save protocol is not {LEGACY_PROTOCOL}"
        ));
    }
    let (sys_info, pos) = vm::run(data, pos, end, &mut heap).map_err(e)?;
    if let Some(Node::Dict(items)) = as_node(&heap, &sys_info) {
        for (k, v) in items.iter().rev() {
            if matches!(k, Value::Str(s) if &**s == "little_endian") {
                if !matches!(v, Value::Bool(true)) {
                    return Err("storage was saved big-endian; not supported".into());
                }
                break;
            }
        }
    } else {
        return Err(format!("storage blob at byte {off}: sys_info is not a dict"));
    }
    let (obj, pos) = vm::run(data, pos, end, &mut heap).map_err(e)?;
    let info = storage_pid(&heap, &obj)
        .ok_or_else(|| format!("storage blob at byte {off}: expected a persistent id ('storage', torch.<Type>Storage, key, location, numel, view)"))?;
    let (keys, mut pos) = vm::run(data, pos, end, &mut heap).map_err(e)?;
    let keys: Vec<String> = match as_node(&heap, &keys) {
        Some(Node::List(l)) | Some(Node::Tuple(l)) => l.iter().filter_map(key_string).collect(),
        _ => return Err(format!("storage blob at byte {off}: storage key list is not a list")),
    };

    let es = info.dtype.size();
    let mut found: Option<(usize, usize)> = None;
    for key in &keys {
        if end - pos < 8 {
            return Err(format!(
                "truncated: storage data at byte {pos} needs 8 bytes for its element count, blob has {} left",
                end - pos
            ));
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[pos..pos + 8]);
        let count = i64::from_le_bytes(a);
        let nbytes = u64::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(es as u64))
            .ok_or_else(|| format!("storage data at byte {pos}: bad element count {count}"))?;
        let left = end - pos - 8;
        if nbytes > left as u64 {
            return Err(format!(
                "truncated: storage data at byte {pos} needs {nbytes} bytes, blob has {left} left"
            ));
        }
        if *key == info.key && found.is_none() {
            found = Some((pos + 8, nbytes as usize / es));
        }
        pos += 8 + nbytes as usize;
    }
    let (soff, snumel) = found.ok_or_else(|| {
        format!(
            "storage blob at byte {off}: key {:?} has no data (keys: {keys:?})",
            info.key
        )
    })?;
    match info.view {
        None => Ok(Storage {
            dtype: info.dtype,
            off: soff,
            numel: snumel,
        }),
        Some((voff, vsize)) => {
            if voff.checked_add(vsize).is_none_or(|e| e > snumel) {
                return Err(format!(
                    "storage view [{voff}, +{vsize}) is outside its storage of {snumel} elements"
                ));
            }
            Ok(Storage {
                dtype: info.dtype,
                off: soff + voff * es,
                numel: vsize,
            })
        }
    }
}

struct PidInfo {
    dtype: TorchDType,
    key: String,
    view: Option<(usize, usize)>,
}

fn as_node<'h>(heap: &'h Heap, v: &Value) -> Option<&'h Node> {
    match v {
        Value::Ref(id) => heap.get(*id),
        _ => None,
    }
}

fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn storage_pid(heap: &Heap, obj: &Value) -> Option<PidInfo> {
    let Some(Node::PersId(pid)) = as_node(heap, obj) else {
        return None;
    };
    let Some(Node::Tuple(t)) = as_node(heap, pid) else {
        return None;
    };
    if t.len() < 5 || !matches!(&t[0], Value::Str(s) if &**s == "storage") {
        return None;
    }
    let dtype = match as_node(heap, &t[1]) {
        Some(Node::Global { module, name }) if module.starts_with("torch") => {
            TorchDType::from_storage_class(name)?
        }
        _ => return None,
    };
    let key = key_string(&t[2])?;
    let view = match t.get(5) {
        None | Some(Value::None) => None,
        Some(v) => match as_node(heap, v) {
            Some(Node::Tuple(vt)) if vt.len() == 3 => {
                let o = usize::try_from(int_of(&vt[1])?).ok()?;
                let s = usize::try_from(int_of(&vt[2])?).ok()?;
                Some((o, s))
            }
            _ => return None,
        },
    };
    // A view names the root storage's key in position 0 of its metadata.
    let key = match (&view, t.get(5).and_then(|v| as_node(heap, v))) {
        (Some(_), Some(Node::Tuple(vt))) => key_string(&vt[0]).unwrap_or(key),
        _ => key,
    };
    Some(PidInfo { dtype, key, view })
}

/// Gathers a strided view of `storage` into a C-order tensor, checking every index.
pub(crate) fn gather(
    data: &[u8],
    storage: &Storage,
    offset: usize,
    shape: &[usize],
    stride: &[usize],
) -> Result<TorchTensor, String> {
    if shape.len() != stride.len() {
        return Err(format!(
            "size has {} dimensions but stride has {}",
            shape.len(),
            stride.len()
        ));
    }
    let es = storage.dtype.size();
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("number of elements overflows")?;
    if numel == 0 {
        return Ok(TorchTensor {
            dtype: storage.dtype,
            shape: shape.to_vec(),
            data: Vec::new(),
        });
    }
    let mut last = offset;
    for (&d, &s) in shape.iter().zip(stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| last.checked_add(x))
            .ok_or("strides overflow")?;
    }
    if last >= storage.numel {
        return Err(format!(
            "offset {offset}, size {shape:?}, stride {stride:?} reach element {last} of a storage of {} elements",
            storage.numel
        ));
    }
    if numel > storage.numel {
        return Err(format!(
            "tensor has {numel} elements but its storage only {} (overlapping strides are not supported)",
            storage.numel
        ));
    }
    let base = storage.off;
    // Both checks above bound these ranges by the storage, which the blob parser checked
    // against the input.
    let src = data
        .get(base..base + storage.numel * es)
        .ok_or("storage out of range")?;
    let mut contiguous = true;
    let mut expect = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            contiguous = false;
            break;
        }
        expect *= d;
    }
    let out = if contiguous {
        src[offset * es..(offset + numel) * es].to_vec()
    } else {
        let mut out = Vec::with_capacity(numel * es);
        let nd = shape.len();
        let mut idx = vec![0usize; nd];
        let mut pos = offset;
        for _ in 0..numel {
            out.extend_from_slice(&src[pos * es..(pos + 1) * es]);
            // Advance the odometer, last dimension fastest.
            let mut k = nd;
            while k > 0 {
                k -= 1;
                idx[k] += 1;
                pos += stride[k];
                if idx[k] < shape[k] {
                    break;
                }
                pos -= stride[k] * shape[k];
                idx[k] = 0;
            }
        }
        out
    };
    Ok(TorchTensor {
        dtype: storage.dtype,
        shape: shape.to_vec(),
        data: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn gather_transposed_and_offset() {
        // storage: 0..12 as u8; view 3x2 with stride (1, 3) from offset 3 -> transpose of 2x3
        let data: Vec<u8> = (0..12).collect();
        let st = Storage {
            dtype: TorchDType::U8,
            off: 0,
            numel: 12,
        };
        let t = gather(&data, &st, 3, &[3, 2], &[1, 3]).unwrap();
        assert_eq!(t.data, vec![3, 6, 4, 7, 5, 8]);
        let t = gather(&data, &st, 2, &[2, 5], &[5, 1]).unwrap();
        assert_eq!(t.data, (2..12).collect::<Vec<u8>>());
        assert!(gather(&data, &st, 3, &[2, 5], &[5, 1]).is_err());
        assert!(gather(&data, &st, 0, &[usize::MAX, 2], &[1, 1]).is_err());
        assert!(gather(&data, &st, 0, &[1000], &[0]).is_err());
        let t = gather(&data, &st, 11, &[], &[]).unwrap();
        assert_eq!(t.data, vec![11]);
    }
}
