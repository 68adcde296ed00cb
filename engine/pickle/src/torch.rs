//! Torch tensors: dtypes, tensor metadata (`_rebuild_tensor_v2`), the legacy `torch.save`
//! storage blobs, and strided gathers into C-order bytes.

use std::collections::HashMap;
use std::fmt;

use crate::error::PickleError;
use crate::interp::{call_of, seq_items};
use crate::vm::{self, Heap, Node, NodeId, Value};

/// Element type of a tensor or array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorDType {
    /// `float32` (`torch.FloatStorage`, numpy `f4`).
    F32,
    /// `float16` (`torch.HalfStorage`, numpy `f2`).
    F16,
    /// `bfloat16` (`torch.BFloat16Storage`).
    BF16,
    /// `float64` (`torch.DoubleStorage`, numpy `f8`).
    F64,
    /// `int64` (`torch.LongStorage`, numpy `i8`).
    I64,
    /// `int32` (`torch.IntStorage`, numpy `i4`).
    I32,
    /// `int16` (`torch.ShortStorage`, numpy `i2`).
    I16,
    /// `int8` (`torch.CharStorage`, numpy `i1`).
    I8,
    /// `uint64` (numpy `u8`).
    U64,
    /// `uint32` (numpy `u4`).
    U32,
    /// `uint16` (numpy `u2`).
    U16,
    /// `uint8` (`torch.ByteStorage`, untyped storages, numpy `u1`).
    U8,
    /// `bool` (`torch.BoolStorage`, numpy `b1`), one byte per element.
    Bool,
}

impl TensorDType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            TensorDType::U8 | TensorDType::I8 | TensorDType::Bool => 1,
            TensorDType::F16 | TensorDType::BF16 | TensorDType::I16 | TensorDType::U16 => 2,
            TensorDType::F32 | TensorDType::I32 | TensorDType::U32 => 4,
            TensorDType::F64 | TensorDType::I64 | TensorDType::U64 => 8,
        }
    }

    /// The PyTorch / NumPy name (`"float32"`, `"bfloat16"`, `"int64"`, ...), as used in
    /// `G_ema.sha256` and `reference.json`.
    pub fn name(self) -> &'static str {
        match self {
            TensorDType::F32 => "float32",
            TensorDType::F16 => "float16",
            TensorDType::BF16 => "bfloat16",
            TensorDType::F64 => "float64",
            TensorDType::I64 => "int64",
            TensorDType::I32 => "int32",
            TensorDType::I16 => "int16",
            TensorDType::I8 => "int8",
            TensorDType::U64 => "uint64",
            TensorDType::U32 => "uint32",
            TensorDType::U16 => "uint16",
            TensorDType::U8 => "uint8",
            TensorDType::Bool => "bool",
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            TensorDType::F32 | TensorDType::F16 | TensorDType::BF16 | TensorDType::F64
        )
    }

    /// The dtype of a torch storage class (`FloatStorage`, `HalfStorage`, ...).
    pub(crate) fn from_storage_class(name: &str) -> Option<TensorDType> {
        Some(match name {
            "FloatStorage" => TensorDType::F32,
            "HalfStorage" => TensorDType::F16,
            "BFloat16Storage" => TensorDType::BF16,
            "DoubleStorage" => TensorDType::F64,
            "LongStorage" => TensorDType::I64,
            "IntStorage" => TensorDType::I32,
            "ShortStorage" => TensorDType::I16,
            "CharStorage" => TensorDType::I8,
            "ByteStorage" | "UntypedStorage" => TensorDType::U8,
            "BoolStorage" => TensorDType::Bool,
            _ => return None,
        })
    }

    /// The dtype of a NumPy type string without byte order (`"f8"`, `"i8"`, `"b1"`, `"?"`...).
    pub(crate) fn from_numpy(code: &str) -> Option<TensorDType> {
        Some(match code {
            "f2" | "e" => TensorDType::F16,
            "f4" | "f" => TensorDType::F32,
            "f8" | "d" => TensorDType::F64,
            "i1" | "b" => TensorDType::I8,
            "i2" | "h" => TensorDType::I16,
            "i4" | "i" => TensorDType::I32,
            "i8" | "q" | "l" => TensorDType::I64,
            "u1" | "B" => TensorDType::U8,
            "u2" | "H" => TensorDType::U16,
            "u4" | "I" => TensorDType::U32,
            "u8" | "Q" | "L" => TensorDType::U64,
            "b1" | "?" => TensorDType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for TensorDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IEEE binary16 to binary32 (exact).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24; shift the top set bit into the implicit position.
            let shift = m.leading_zeros() - 21;
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

/// Little-endian bytes of a float tensor as f32 (f16 / bf16 exactly, f64 rounded to nearest).
pub(crate) fn bytes_to_f32(dtype: TensorDType, d: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        TensorDType::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        TensorDType::F16 => d
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        TensorDType::BF16 => d
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        TensorDType::F64 => d
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        _ => return None,
    })
}

/// Where a tensor's storage comes from.
#[derive(Clone, Debug)]
pub(crate) enum StorageSource {
    /// `torch.storage._load_from_bytes(b)`: a legacy `torch.save` stream in the input.
    LegacyBlob {
        node: NodeId,
        off: usize,
        len: usize,
    },
    /// A persistent id `('storage', torch.<T>Storage, key, location, numel)` (zip checkpoints).
    Persistent {
        dtype: TensorDType,
        key: String,
        numel: u64,
        view: Option<(usize, usize)>,
    },
}

/// What `_rebuild_tensor_v2(storage, offset, size, stride, ...)` describes.
#[derive(Clone, Debug)]
pub(crate) struct TensorMeta {
    pub storage: StorageSource,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// A decoded storage: where its elements are in the input and what type they have.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Storage {
    pub dtype: TensorDType,
    /// Absolute offset of element 0 in the input.
    pub off: usize,
    /// Number of elements.
    pub numel: usize,
}

/// Reads the shape or stride tuple of a tensor.
fn dims(heap: &Heap, v: &Value, what: &str) -> Result<Vec<usize>, String> {
    let items = seq_items(heap, v).ok_or_else(|| format!("{what} is not a tuple"))?;
    items
        .iter()
        .map(|x| {
            x.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| format!("{what} has an entry that is not a non-negative integer"))
        })
        .collect()
}

/// Interprets a tensor value: `_rebuild_parameter(_rebuild_tensor_v2(...), ...)` or a bare
/// `_rebuild_tensor_v2(...)`. Anything else is an error naming what was found.
pub(crate) fn tensor_meta(heap: &Heap, v: &Value) -> Result<TensorMeta, String> {
    let mut v = v;
    // Parameters wrap the tensor; unwrap at most a couple of levels.
    for _ in 0..3 {
        let Some((module, name, obj)) = call_of(heap, v) else {
            return Err(describe(heap, v, "a tensor"));
        };
        let args = seq_items(heap, &obj.args).unwrap_or(&[]);
        match (module, name) {
            (
                "torch._utils",
                "_rebuild_parameter" | "_rebuild_parameter_with_state" | "_rebuild_parameter_v2",
            ) => {
                v = args.first().ok_or("parameter without a tensor")?;
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor" | "_rebuild_tensor_v3") => {
                if args.len() < 4 {
                    return Err(format!(
                        "{name} has {} arguments, expected at least 4",
                        args.len()
                    ));
                }
                let storage = storage_source(heap, &args[0])?;
                let offset = args[1]
                    .as_int()
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or("storage offset is not a non-negative integer")?;
                let shape = dims(heap, &args[2], "size")?;
                let stride = dims(heap, &args[3], "stride")?;
                return Ok(TensorMeta {
                    storage,
                    offset,
                    shape,
                    stride,
                });
            }
            _ => {
                return Err(format!(
                    "expected a tensor, found a call of {module}.{name}"
                ))
            }
        }
    }
    Err("too many nested parameter wrappers".into())
}

fn storage_source(heap: &Heap, v: &Value) -> Result<StorageSource, String> {
    match heap.node(v) {
        Some(Node::Object(_)) => {
            let Some((module, name, obj)) = call_of(heap, v) else {
                return Err(describe(heap, v, "a storage"));
            };
            if (module, name) != ("torch.storage", "_load_from_bytes") {
                return Err(format!(
                    "expected a storage, found a call of {module}.{name}"
                ));
            }
            match seq_items(heap, &obj.args).and_then(|a| a.first()) {
                Some(Value::Bytes { off, len }) => Ok(StorageSource::LegacyBlob {
                    node: match v {
                        Value::Ref(id) => *id,
                        _ => 0,
                    },
                    off: *off,
                    len: *len,
                }),
                _ => Err("_load_from_bytes without a bytes argument".into()),
            }
        }
        Some(Node::PersId(pid)) => {
            let info = storage_pid(heap, pid)?;
            Ok(StorageSource::Persistent {
                dtype: info.dtype,
                key: info.key,
                numel: info.numel,
                view: info.view,
            })
        }
        _ => Err(describe(heap, v, "a storage")),
    }
}

/// A short description of what a value is, for messages.
pub(crate) fn describe(heap: &Heap, v: &Value, expected: &str) -> String {
    let found = match v {
        Value::None => "None".to_string(),
        Value::Bool(_) => "a bool".into(),
        Value::Int(_) | Value::BigInt(_) => "an int".into(),
        Value::Float(_) => "a float".into(),
        Value::Str(_) => "a string".into(),
        Value::Bytes { .. } => "bytes".into(),
        Value::Ref(_) => match heap.node(v) {
            Some(Node::List(_)) => "a list".into(),
            Some(Node::Tuple(_)) => "a tuple".into(),
            Some(Node::Dict(_)) => "a dict".into(),
            Some(Node::Set(_)) | Some(Node::FrozenSet(_)) => "a set".into(),
            Some(Node::Global { module, name }) => format!("the global {module}.{name}"),
            Some(Node::Object(_)) => match call_of(heap, v) {
                Some((m, n, _)) => format!("a call of {m}.{n}"),
                None => "an object".into(),
            },
            Some(Node::PersId(_)) => "a persistent id".into(),
            None => "a dangling reference".into(),
        },
    };
    match heap.offset(v) {
        Some(at) => format!("expected {expected}, found {found} (pickled at byte {at})"),
        None => format!("expected {expected}, found {found}"),
    }
}

/// The parts of a storage persistent id that matter.
pub(crate) struct PidInfo {
    pub dtype: TensorDType,
    pub key: String,
    /// Elements in the (root) storage.
    pub numel: u64,
    /// Legacy storage views: (offset, size) in elements of the root storage.
    pub view: Option<(usize, usize)>,
}

fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// `('storage', torch.<T>Storage, key, location, numel[, view])`.
pub(crate) fn storage_pid(heap: &Heap, pid: &Value) -> Result<PidInfo, String> {
    let t = seq_items(heap, pid).ok_or("persistent id is not a tuple")?;
    if t.len() < 5 || t[0].as_str() != Some("storage") {
        return Err("persistent id is not ('storage', storage_type, key, location, numel)".into());
    }
    let dtype = match heap.node(&t[1]) {
        Some(Node::Global { module, name }) if module.starts_with("torch") => {
            TensorDType::from_storage_class(name)
                .ok_or_else(|| format!("unsupported storage type {module}.{name}"))?
        }
        _ => return Err("storage type is not a torch storage class".into()),
    };
    let key = key_string(&t[2]).ok_or("storage key is not a string")?;
    let numel = t[4]
        .as_int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("storage size is not a non-negative integer")?;
    // Old torch versions saved views of a storage as (view_key, offset, size) in slot 5; the
    // data is stored under the root key in slot 2.
    let view = match t.get(5) {
        None | Some(Value::None) => None,
        Some(v) => {
            let vt = seq_items(heap, v).ok_or("storage view metadata is not a tuple")?;
            let get = |i: usize| {
                vt.get(i)
                    .and_then(Value::as_int)
                    .and_then(|x| usize::try_from(x).ok())
            };
            match (vt.len(), get(1), get(2)) {
                (3, Some(o), Some(s)) => Some((o, s)),
                _ => return Err("storage view metadata is not (key, offset, size)".into()),
            }
        }
    };
    Ok(PidInfo {
        dtype,
        key,
        numel,
        view,
    })
}

/// The magic number that starts a legacy `torch.save` stream.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// The legacy format version.
const LEGACY_PROTOCOL: i64 = 1001;

fn is_legacy_magic(v: &Value) -> bool {
    let Value::BigInt(bytes) = v else {
        return false;
    };
    // Little-endian two's complement, positive, 10 significant bytes.
    if bytes.len() > 16 || bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return false;
    }
    let mut x: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        x |= u128::from(b) << (8 * i);
    }
    x == LEGACY_MAGIC
}

/// Whether `data[off..]` starts like a legacy `torch.save` stream (PROTO 2, LONG1 of 10 bytes).
pub(crate) fn looks_like_legacy_stream(data: &[u8]) -> bool {
    data.starts_with(b"\x80\x02\x8a\x0a")
}

/// A parsed legacy (non-zip) `torch.save` stream: the saved object and its storages.
pub(crate) struct LegacyStream {
    pub heap: Heap,
    pub root: Value,
    /// Storage key -> where its elements are.
    pub storages: HashMap<String, Storage>,
}

/// Parses a legacy `torch.save` stream found at `data[off..end]`: five pickles (magic number,
/// protocol 1001, sys_info, the object, the list of storage keys), then for each key an int64
/// element count and the elements, little-endian. Element types come from the persistent ids
/// in the object.
pub(crate) fn parse_legacy_stream(
    origin: &str,
    data: &[u8],
    off: usize,
    end: usize,
) -> Result<LegacyStream, PickleError> {
    if end > data.len() || off > end {
        return Err(PickleError::malformed(
            origin,
            off,
            "torch.save stream out of range",
        ));
    }
    let bad = |at: usize, msg: String| PickleError::malformed(origin, at, msg);
    let mut heap = Heap::default();

    let (magic, pos) = vm::run(origin, data, off, end, &mut heap)?;
    if !is_legacy_magic(&magic) {
        return Err(bad(
            off,
            "does not start with the legacy torch.save magic number".into(),
        ));
    }
    let at = pos;
    let (proto, pos) = vm::run(origin, data, pos, end, &mut heap)?;
    if proto.as_int() != Some(LEGACY_PROTOCOL) {
        return Err(bad(
            at,
            format!("legacy torch.save protocol is not {LEGACY_PROTOCOL}"),
        ));
    }
    let at = pos;
    let (sys_info, pos) = vm::run(origin, data, pos, end, &mut heap)?;
    let Some(Node::Dict(info)) = heap.node(&sys_info) else {
        return Err(bad(at, "torch.save sys_info is not a dict".into()));
    };
    if let Some((_, le)) = info
        .iter()
        .rev()
        .find(|(k, _)| k.as_str() == Some("little_endian"))
    {
        if !matches!(le, Value::Bool(true)) {
            return Err(PickleError::unsupported(
                origin,
                format!("the torch.save stream at byte {off} was written on a big-endian machine"),
            ));
        }
    }
    let (root, pos) = vm::run(origin, data, pos, end, &mut heap)?;
    let at = pos;
    let (keys, mut pos) = vm::run(origin, data, pos, end, &mut heap)?;
    let keys: Vec<String> = seq_items(&heap, &keys)
        .ok_or_else(|| bad(at, "storage key list is not a list".into()))?
        .iter()
        .map(|k| key_string(k).ok_or_else(|| bad(at, "storage key is not a string".into())))
        .collect::<Result<_, _>>()?;

    // The element type of each storage is only in the persistent ids that refer to it.
    let mut dtypes: HashMap<String, TensorDType> = HashMap::new();
    for node in heap.nodes() {
        if let Node::PersId(pid) = node {
            if let Ok(info) = storage_pid(&heap, pid) {
                dtypes.entry(info.key).or_insert(info.dtype);
            }
        }
    }
    let mut storages = HashMap::with_capacity(keys.len());
    for key in keys {
        let dtype = *dtypes.get(&key).ok_or_else(|| {
            bad(
                pos,
                format!("storage {key:?} is listed but never referred to"),
            )
        })?;
        let es = dtype.size();
        let left = end - pos;
        let count_bytes = data
            .get(pos..pos + 8.min(left))
            .filter(|b| b.len() == 8)
            .ok_or_else(|| PickleError::truncated(origin, pos, "storage element count", 8, left))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(count_bytes);
        let count = i64::from_le_bytes(a);
        let nbytes = u64::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(es as u64))
            .ok_or_else(|| bad(pos, format!("bad storage element count {count}")))?;
        if nbytes > (left - 8) as u64 {
            return Err(PickleError::truncated(
                origin,
                pos,
                format!("data of storage {key:?}"),
                nbytes + 8,
                left,
            ));
        }
        storages.insert(
            key,
            Storage {
                dtype,
                off: pos + 8,
                numel: nbytes as usize / es,
            },
        );
        pos += 8 + nbytes as usize;
    }
    Ok(LegacyStream {
        heap,
        root,
        storages,
    })
}

/// Resolves a storage persistent id against the storages of a legacy stream, applying the
/// view (offset, size) that old torch versions recorded for storage slices.
pub(crate) fn resolve_storage(
    storages: &HashMap<String, Storage>,
    key: &str,
    numel: u64,
    view: Option<(usize, usize)>,
) -> Result<Storage, String> {
    let st = *storages
        .get(key)
        .ok_or_else(|| format!("storage {key:?} is not in the file"))?;
    if (st.numel as u64) < numel {
        return Err(format!(
            "storage {key:?} has {} elements but is referred to with {numel}",
            st.numel
        ));
    }
    match view {
        None => Ok(st),
        Some((voff, vsize)) => {
            if voff.checked_add(vsize).is_none_or(|e| e > st.numel) {
                return Err(format!(
                    "storage view [{voff}, +{vsize}) is outside its storage of {} elements",
                    st.numel
                ));
            }
            Ok(Storage {
                dtype: st.dtype,
                off: st.off + voff * st.dtype.size(),
                numel: vsize,
            })
        }
    }
}

/// The storage inside a legacy blob (`torch.storage._load_from_bytes(data[off..off + len])`).
pub(crate) fn parse_legacy_blob(
    origin: &str,
    data: &[u8],
    off: usize,
    len: usize,
) -> Result<Storage, PickleError> {
    let end = off
        .checked_add(len)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| PickleError::malformed(origin, off, "storage blob out of range"))?;
    let stream = parse_legacy_stream(origin, data, off, end).map_err(|e| match e {
        PickleError::Malformed {
            origin,
            offset,
            message,
        } => PickleError::Malformed {
            origin,
            offset,
            message: format!("in the storage blob at byte {off}: {message}"),
        },
        other => other,
    })?;
    let info = match stream.heap.node(&stream.root) {
        Some(Node::PersId(pid)) => storage_pid(&stream.heap, pid),
        _ => Err(describe(
            &stream.heap,
            &stream.root,
            "a storage persistent id",
        )),
    }
    .map_err(|m| PickleError::malformed(origin, off, format!("storage blob: {m}")))?;
    resolve_storage(&stream.storages, &info.key, info.numel, info.view)
        .map_err(|m| PickleError::malformed(origin, off, format!("storage blob: {m}")))
}

/// Gathers a strided view of a storage into C-order bytes, checking every index.
///
/// `src` holds the storage's elements (`storage_numel * es` bytes). Views that would read an
/// element twice (zero or overlapping strides) are refused unless their output is no larger
/// than the storage, so the output never exceeds the stored data.
pub(crate) fn gather(
    src: &[u8],
    es: usize,
    offset: usize,
    shape: &[usize],
    stride: &[usize],
) -> Result<Vec<u8>, String> {
    if shape.len() != stride.len() {
        return Err(format!(
            "size has {} dimensions but stride has {}",
            shape.len(),
            stride.len()
        ));
    }
    let storage_numel = src.len() / es.max(1);
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the number of elements overflows")?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    // The stride of a dimension of size 1 is never used; zero it so that no arithmetic below
    // can overflow on an absurd value there.
    let stride: Vec<usize> = shape
        .iter()
        .zip(stride)
        .map(|(&d, &s)| if d == 1 { 0 } else { s })
        .collect();
    let stride = stride.as_slice();
    let mut last = offset;
    for (&d, &s) in shape.iter().zip(stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| last.checked_add(x))
            .ok_or("strides overflow")?;
    }
    if last >= storage_numel {
        return Err(format!(
            "offset {offset}, size {shape:?}, stride {stride:?} reach element {last} of a storage of {storage_numel} elements"
        ));
    }
    if numel > storage_numel {
        return Err(format!(
            "tensor has {numel} elements but its storage only {storage_numel} (expanded views are not supported)"
        ));
    }
    let mut contiguous = true;
    let mut expect = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            contiguous = false;
            break;
        }
        expect *= d;
    }
    if contiguous {
        // last < storage_numel and numel elements from offset are all in range.
        return src
            .get(offset * es..(offset + numel) * es)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "view out of range".to_string());
    }
    let mut out = Vec::with_capacity(numel * es);
    let nd = shape.len();
    let mut idx = vec![0usize; nd];
    let mut pos = offset;
    for _ in 0..numel {
        // Every position visited is <= last < storage_numel.
        let e = src
            .get(pos * es..(pos + 1) * es)
            .ok_or("view out of range")?;
        out.extend_from_slice(e);
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
    Ok(out)
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
        // storage 0..12 as u8; a 3x2 view with stride (1, 3) from offset 3 = transpose of 2x3.
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(
            gather(&data, 1, 3, &[3, 2], &[1, 3]).unwrap(),
            vec![3, 6, 4, 7, 5, 8]
        );
        assert_eq!(
            gather(&data, 1, 2, &[2, 5], &[5, 1]).unwrap(),
            (2..12).collect::<Vec<u8>>()
        );
        // Two-byte elements keep their bytes together.
        assert_eq!(gather(&data, 2, 1, &[2], &[2]).unwrap(), vec![2, 3, 6, 7]);
        assert!(gather(&data, 1, 3, &[2, 5], &[5, 1]).is_err());
        assert!(gather(&data, 1, 0, &[usize::MAX, 2], &[1, 1]).is_err());
        assert!(gather(&data, 1, 0, &[1000], &[0]).is_err());
        assert!(gather(&data, 1, 0, &[2], &[1, 1]).is_err());
        assert_eq!(gather(&data, 1, 11, &[], &[]).unwrap(), vec![11]);
        assert_eq!(
            gather(&data, 1, 0, &[0, 7], &[7, 1]).unwrap(),
            Vec::<u8>::new()
        );
        // A huge stride on a dimension of size 1 is harmless.
        assert_eq!(
            gather(&data, 1, 4, &[1, 2], &[usize::MAX, 3]).unwrap(),
            vec![4, 7]
        );
    }
}
