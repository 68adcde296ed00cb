//! Interpretation of the inert object graph: recognising the handful of globals that network
//! pickles and torch checkpoints use, and converting values into the public [`PyValue`] tree
//! and into JSON.
//!
//! Only these callables are given a meaning (everything else stays an opaque
//! [`PyValue::Object`]): `collections.OrderedDict`, `dnnlib.util.EasyDict`, `builtins.set` /
//! `frozenset` (also under Python 2's `__builtin__`), NumPy's `_reconstruct` / `scalar` /
//! `dtype` (under `numpy.core.multiarray` and `numpy._core.multiarray`), and torch's tensor
//! rebuild functions. Conversions are recursive but depth-limited, and the number of nodes
//! they produce is bounded, so shared or cyclic references cannot blow the stack or memory.

use std::collections::HashMap;

use serde_json::{Map, Number};

use crate::torch::{gather, parse_legacy_blob, tensor_meta, StorageSource, TensorDType};
use crate::vm::{Heap, Node, Object, Value};

/// Deepest nesting the conversions follow.
pub(crate) const MAX_DEPTH: usize = 128;
/// Most nodes one conversion may produce (shared sub-objects are expanded each time).
const MAX_NODES: usize = 1 << 20;
/// Largest NumPy array converted into a tree, in elements.
const MAX_ARRAY_ELEMENTS: usize = 1 << 20;
/// Largest NumPy array written out element by element in JSON.
const MAX_JSON_ARRAY_ELEMENTS: usize = 1 << 16;

/// An unpickled Python object, with the known container types and NumPy values interpreted.
///
/// Nothing here was executed: [`PyValue::Object`] records a call that Python would have made.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `bool` or `numpy.bool_`.
    Bool(bool),
    /// `int` or a NumPy integer scalar that fits in i64.
    Int(i64),
    /// An integer beyond i64 (including NumPy uint64 values above `i64::MAX`), as
    /// little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// `float` or a NumPy float scalar.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// `list`.
    List(Vec<PyValue>),
    /// `tuple`.
    Tuple(Vec<PyValue>),
    /// `dict`, `collections.OrderedDict` or `dnnlib.util.EasyDict`: pairs in insertion order,
    /// each key once (a repeated key keeps its first position and its last value).
    Dict(Vec<(PyValue, PyValue)>),
    /// `set` / `frozenset`, in pickled order.
    Set(Vec<PyValue>),
    /// A NumPy array (0-d arrays included).
    Array(NdArray),
    /// A torch tensor or parameter, not decoded (see the reader that produced the tree).
    Tensor(TensorInfo),
    /// A reference to a global (class or function) by name.
    Global {
        /// Module.
        module: String,
        /// Qualified name.
        name: String,
    },
    /// A call of anything else, as recorded: `callable(*args)`, then `__setstate__(state)`,
    /// then the SETITEM / APPEND operations.
    Object {
        /// What would have been called.
        callable: Box<PyValue>,
        /// Positional arguments (normally a tuple).
        args: Box<PyValue>,
        /// Keyword arguments (NEWOBJ_EX only).
        kwargs: Option<Box<PyValue>>,
        /// BUILD argument, if any.
        state: Option<Box<PyValue>>,
        /// Pairs set with SETITEM(S).
        items: Vec<(PyValue, PyValue)>,
        /// Values added with APPEND(S) / ADDITEMS.
        list_items: Vec<PyValue>,
    },
    /// A persistent id that is not a known storage reference.
    PersistentId(Box<PyValue>),
}

impl PyValue {
    /// The value under `key` if this is a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, PyValue::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an int or bool.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            PyValue::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The number as f64, if this is an int, float or bool.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyValue::Float(f) => Some(*f),
            PyValue::Int(i) => Some(*i as f64),
            PyValue::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }
}

/// A NumPy array: dtype, shape, and data as little-endian C-order bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Element type.
    pub dtype: TensorDType,
    /// Shape; empty for a 0-d array.
    pub shape: Vec<usize>,
    /// `product(shape) * dtype.size()` bytes, little-endian, C order.
    pub data: Vec<u8>,
}

/// Metadata of a tensor found in an object tree (its data is read on request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type of its storage.
    pub dtype: TensorDType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
    /// Offset of element 0 in the storage, in elements.
    pub storage_offset: usize,
    /// The storage key (zip checkpoints: the name of the entry under `data/`), or `None` for
    /// storages embedded as legacy `torch.save` blobs.
    pub storage_key: Option<String>,
    /// Legacy storage views: (offset, size) in elements of the storage named by the key.
    pub storage_view: Option<(usize, usize)>,
}

/// `(module, name)` of a global node.
pub(crate) fn global_of<'h>(heap: &'h Heap, v: &Value) -> Option<(&'h str, &'h str)> {
    match heap.node(v) {
        Some(Node::Global { module, name }) => Some((module, name)),
        _ => None,
    }
}

/// A recorded call of a global: `(module, name, object)`.
pub(crate) fn call_of<'h>(heap: &'h Heap, v: &Value) -> Option<(&'h str, &'h str, &'h Object)> {
    match heap.node(v) {
        Some(Node::Object(o)) => {
            let (m, n) = global_of(heap, &o.func)?;
            Some((m, n, o))
        }
        _ => None,
    }
}

/// Items of a list or tuple.
pub(crate) fn seq_items<'h>(heap: &'h Heap, v: &Value) -> Option<&'h [Value]> {
    match heap.node(v) {
        Some(Node::List(l)) | Some(Node::Tuple(l)) => Some(l),
        _ => None,
    }
}

fn is_numpy_multiarray(module: &str) -> bool {
    matches!(
        module,
        "numpy.core.multiarray" | "numpy._core.multiarray" | "numpy.core._multiarray_umath"
    )
}

fn is_builtins(module: &str) -> bool {
    matches!(module, "builtins" | "__builtin__")
}

/// Whether a global makes a dict-like object whose items come from SETITEM(S).
fn is_dict_class(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("collections", "OrderedDict")
            | ("dnnlib.util", "EasyDict")
            | ("dnnlib", "EasyDict")
            | ("builtins", "dict")
            | ("__builtin__", "dict")
    )
}

/// The pairs of a dict-like value (dict, OrderedDict, EasyDict), duplicates resolved like
/// Python: a repeated key keeps its first position and takes the last value.
pub(crate) fn dict_pairs<'h>(heap: &'h Heap, v: &Value) -> Option<Vec<(&'h Value, &'h Value)>> {
    let mut raw: Vec<(&Value, &Value)> = Vec::new();
    match heap.node(v)? {
        Node::Dict(d) => raw.extend(d.iter().map(|(k, v)| (k, v))),
        Node::Object(o) => {
            let (m, n) = global_of(heap, &o.func)?;
            if !is_dict_class(m, n) {
                return None;
            }
            // OrderedDict([(k, v), ...]) as written by old protocols.
            if let Some(first) = seq_items(heap, &o.args).and_then(|a| a.first()) {
                for pair in seq_items(heap, first)? {
                    match seq_items(heap, pair)? {
                        [k, v] => raw.push((k, v)),
                        _ => return None,
                    }
                }
            }
            // BUILD state is the instance `__dict__` (e.g. a state dict's `_metadata`), not
            // items, so it is left out.
            raw.extend(o.items.iter().map(|(k, v)| (k, v)));
        }
        _ => return None,
    }
    if raw.len() < 2 {
        return Some(raw);
    }
    let mut out: Vec<(&Value, &Value)> = Vec::with_capacity(raw.len());
    let mut index: HashMap<KeyRef<'_>, usize> = HashMap::new();
    for (k, val) in raw {
        match key_ref(k) {
            Some(kr) => match index.get(&kr) {
                Some(&i) => {
                    if let Some(slot) = out.get_mut(i) {
                        slot.1 = val;
                    }
                }
                None => {
                    index.insert(kr, out.len());
                    out.push((k, val));
                }
            },
            None => out.push((k, val)),
        }
    }
    Some(out)
}

#[derive(Hash, PartialEq, Eq)]
enum KeyRef<'a> {
    Str(&'a str),
    Int(i64),
}

fn key_ref(v: &Value) -> Option<KeyRef<'_>> {
    match v {
        Value::Str(s) => Some(KeyRef::Str(s)),
        Value::Int(i) => Some(KeyRef::Int(*i)),
        Value::Bool(b) => Some(KeyRef::Int(i64::from(*b))),
        _ => None,
    }
}

/// Looks up a string key in a dict-like value (the last value set for it wins).
pub(crate) fn dict_get<'h>(heap: &'h Heap, v: &Value, key: &str) -> Option<&'h Value> {
    let matches = |(k, _): &&(Value, Value)| k.as_str() == Some(key);
    match heap.node(v)? {
        Node::Dict(d) => d.iter().rev().find(matches).map(|(_, v)| v),
        Node::Object(o) => {
            let (m, n) = global_of(heap, &o.func)?;
            if !is_dict_class(m, n) {
                return None;
            }
            if let Some((_, v)) = o.items.iter().rev().find(matches) {
                return Some(v);
            }
            let first = seq_items(heap, &o.args)?.first()?;
            seq_items(heap, first)?
                .iter()
                .rev()
                .filter_map(|pair| match seq_items(heap, pair)? {
                    [k, v] => Some((k, v)),
                    _ => None,
                })
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        }
        _ => None,
    }
}

/// Members of a set-like value (set, frozenset, `builtins.set(list)`).
pub(crate) fn set_items<'h>(heap: &'h Heap, v: &Value) -> Option<Vec<&'h Value>> {
    match heap.node(v)? {
        Node::Set(s) | Node::FrozenSet(s) => Some(s.iter().collect()),
        Node::Object(o) => {
            let (m, n) = global_of(heap, &o.func)?;
            if !is_builtins(m) || !matches!(n, "set" | "frozenset") {
                return None;
            }
            let mut out: Vec<&Value> = Vec::new();
            if let Some(first) = seq_items(heap, &o.args).and_then(|a| a.first()) {
                out.extend(seq_items(heap, first)?.iter());
            }
            out.extend(o.list_items.iter());
            Some(out)
        }
        _ => None,
    }
}

/// A NumPy dtype object: `numpy.dtype(code, align, copy)` plus its BUILD state.
fn numpy_dtype(heap: &Heap, v: &Value) -> Result<(TensorDType, bool), String> {
    let Some((m, n, o)) = call_of(heap, v) else {
        return Err("numpy dtype is not a dtype object".into());
    };
    if !(m == "numpy" && n == "dtype") {
        return Err(format!("expected numpy.dtype, found {m}.{n}"));
    }
    let code = seq_items(heap, &o.args)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or("numpy.dtype without a type string")?;
    // The byte order is in the BUILD state, (version, '<' | '>' | '|' | '=', ...).
    let order = o
        .state
        .as_ref()
        .and_then(|s| seq_items(heap, s))
        .and_then(|s| s.get(1))
        .and_then(Value::as_str)
        .unwrap_or("|");
    let (order, code) = match code.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => code.split_at(1),
        _ => (order, code),
    };
    let dtype =
        TensorDType::from_numpy(code).ok_or_else(|| format!("unsupported numpy dtype {code:?}"))?;
    Ok((dtype, order == ">" && dtype.size() > 1))
}

/// Reverses each element's bytes (big-endian data to little-endian).
fn swap_elements(data: &mut [u8], es: usize) {
    if es > 1 {
        for e in data.chunks_exact_mut(es) {
            e.reverse();
        }
    }
}

/// `numpy.core.multiarray.scalar(dtype, bytes)` → its value.
fn numpy_scalar(heap: &Heap, data: &[u8], o: &Object) -> Result<PyValue, String> {
    let args = seq_items(heap, &o.args).ok_or("numpy scalar without arguments")?;
    let (dtype, big) = numpy_dtype(heap, args.first().ok_or("numpy scalar without a dtype")?)?;
    let raw = match args.get(1) {
        Some(Value::Bytes { off, len }) => data.get(*off..off + len).ok_or("bytes out of range")?,
        // Python 2 era pickles store the bytes as a latin-1 string.
        _ => return Err("numpy scalar without its bytes".into()),
    };
    if raw.len() != dtype.size() {
        return Err(format!(
            "numpy {dtype} scalar has {} bytes, expected {}",
            raw.len(),
            dtype.size()
        ));
    }
    let mut raw = raw.to_vec();
    if big {
        swap_elements(&mut raw, dtype.size());
    }
    scalar_value(dtype, &raw).ok_or_else(|| format!("cannot convert a numpy {dtype} scalar"))
}

/// One little-endian element as a Python value.
fn scalar_value(dtype: TensorDType, b: &[u8]) -> Option<PyValue> {
    let a8 = |b: &[u8]| -> Option<[u8; 8]> { b.get(..8)?.try_into().ok() };
    let a4 = |b: &[u8]| -> Option<[u8; 4]> { b.get(..4)?.try_into().ok() };
    let a2 = |b: &[u8]| -> Option<[u8; 2]> { b.get(..2)?.try_into().ok() };
    Some(match dtype {
        TensorDType::Bool => PyValue::Bool(*b.first()? != 0),
        TensorDType::U8 => PyValue::Int(i64::from(*b.first()?)),
        TensorDType::I8 => PyValue::Int(i64::from(*b.first()? as i8)),
        TensorDType::I16 => PyValue::Int(i64::from(i16::from_le_bytes(a2(b)?))),
        TensorDType::U16 => PyValue::Int(i64::from(u16::from_le_bytes(a2(b)?))),
        TensorDType::I32 => PyValue::Int(i64::from(i32::from_le_bytes(a4(b)?))),
        TensorDType::U32 => PyValue::Int(i64::from(u32::from_le_bytes(a4(b)?))),
        TensorDType::I64 => PyValue::Int(i64::from_le_bytes(a8(b)?)),
        TensorDType::U64 => {
            let x = u64::from_le_bytes(a8(b)?);
            match i64::try_from(x) {
                Ok(i) => PyValue::Int(i),
                Err(_) => {
                    let mut v = x.to_le_bytes().to_vec();
                    v.push(0);
                    PyValue::BigInt(v)
                }
            }
        }
        TensorDType::F64 => PyValue::Float(f64::from_le_bytes(a8(b)?)),
        TensorDType::F32 => PyValue::Float(f64::from(f32::from_le_bytes(a4(b)?))),
        TensorDType::F16 => PyValue::Float(f64::from(crate::torch::f16_to_f32(
            u16::from_le_bytes(a2(b)?),
        ))),
        TensorDType::BF16 => PyValue::Float(f64::from(f32::from_bits(
            u32::from(u16::from_le_bytes(a2(b)?)) << 16,
        ))),
    })
}

/// `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` with BUILD state
/// `(version, shape, dtype, is_fortran, rawdata)` → the array.
fn numpy_array(heap: &Heap, data: &[u8], o: &Object) -> Result<NdArray, String> {
    let state = o
        .state
        .as_ref()
        .and_then(|s| seq_items(heap, s))
        .ok_or("numpy array without state")?;
    let (shape_v, dtype_v, fortran_v, raw_v) = match state {
        [_, s, d, f, r] => (s, d, f, r),
        [s, d, f, r] => (s, d, f, r),
        _ => return Err("numpy array state is not (version, shape, dtype, fortran, data)".into()),
    };
    let shape: Vec<usize> = seq_items(heap, shape_v)
        .ok_or("numpy array shape is not a tuple")?
        .iter()
        .map(|x| x.as_int().and_then(|i| usize::try_from(i).ok()))
        .collect::<Option<_>>()
        .ok_or("numpy array shape has a negative or non-integer entry")?;
    let (dtype, big) = numpy_dtype(heap, dtype_v)?;
    let fortran = matches!(fortran_v, Value::Bool(true) | Value::Int(1));
    let raw = match raw_v {
        Value::Bytes { off, len } => data.get(*off..off + len).ok_or("bytes out of range")?,
        _ => return Err("numpy array data is not bytes (object arrays are not supported)".into()),
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("numpy array size overflows")?;
    let es = dtype.size();
    if numel.checked_mul(es) != Some(raw.len()) {
        return Err(format!(
            "numpy array of shape {shape:?} and dtype {dtype} needs {} bytes, has {}",
            numel.saturating_mul(es),
            raw.len()
        ));
    }
    let mut bytes = if fortran && shape.len() > 1 {
        // Column-major data: read it through Fortran strides into C order.
        let mut stride = Vec::with_capacity(shape.len());
        let mut s = 1usize;
        for &d in &shape {
            stride.push(s);
            s = s.saturating_mul(d);
        }
        gather(raw, es, 0, &shape, &stride)?
    } else {
        raw.to_vec()
    };
    if big {
        swap_elements(&mut bytes, es);
    }
    Ok(NdArray {
        dtype,
        shape,
        data: bytes,
    })
}

/// Converts graph values into [`PyValue`] trees, within the depth and size limits.
pub(crate) struct Converter<'a> {
    heap: &'a Heap,
    /// The input the `bytes` ranges point into.
    data: &'a [u8],
    /// Name of that input, for messages.
    origin: &'a str,
    nodes: usize,
    /// Bytes of strings and bytes that may still be copied (shared strings are copied each
    /// time they are reached, so this bounds the tree's size).
    bytes_left: usize,
}

impl<'a> Converter<'a> {
    pub(crate) fn new(heap: &'a Heap, data: &'a [u8], origin: &'a str) -> Self {
        Converter {
            heap,
            data,
            origin,
            nodes: 0,
            bytes_left: data.len().saturating_mul(2).saturating_add(1 << 20),
        }
    }

    fn spend(&mut self, n: usize) -> Result<(), String> {
        self.bytes_left = self
            .bytes_left
            .checked_sub(n)
            .ok_or("the converted objects would be more than twice the size of the input")?;
        Ok(())
    }

    pub(crate) fn convert(&mut self, v: &Value) -> Result<PyValue, String> {
        self.value(v, 0)
    }

    fn list(&mut self, items: &[Value], depth: usize) -> Result<Vec<PyValue>, String> {
        items.iter().map(|x| self.value(x, depth + 1)).collect()
    }

    fn pairs(
        &mut self,
        pairs: &[(&Value, &Value)],
        depth: usize,
    ) -> Result<Vec<(PyValue, PyValue)>, String> {
        pairs
            .iter()
            .map(|(k, v)| Ok((self.value(k, depth + 1)?, self.value(v, depth + 1)?)))
            .collect()
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<PyValue, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "objects nested deeper than {MAX_DEPTH} levels (or a reference cycle)"
            ));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!("more than {MAX_NODES} objects to convert"));
        }
        let heap = self.heap;
        Ok(match v {
            Value::None => PyValue::None,
            Value::Bool(b) => PyValue::Bool(*b),
            Value::Int(i) => PyValue::Int(*i),
            Value::BigInt(b) => PyValue::BigInt(b.to_vec()),
            Value::Float(f) => PyValue::Float(*f),
            Value::Str(s) => {
                self.spend(s.len())?;
                PyValue::Str(s.to_string())
            }
            Value::Bytes { off, len } => {
                self.spend(*len)?;
                PyValue::Bytes(
                    self.data
                        .get(*off..off + len)
                        .ok_or("bytes out of range")?
                        .to_vec(),
                )
            }
            Value::Ref(_) => {
                if let Some(pairs) = dict_pairs(heap, v) {
                    return Ok(PyValue::Dict(self.pairs(&pairs, depth)?));
                }
                if let Some(items) = set_items(heap, v) {
                    let items = items
                        .into_iter()
                        .map(|x| self.value(x, depth + 1))
                        .collect::<Result<_, _>>()?;
                    return Ok(PyValue::Set(items));
                }
                match heap.node(v) {
                    Some(Node::List(l)) => PyValue::List(self.list(l, depth)?),
                    Some(Node::Tuple(l)) => PyValue::Tuple(self.list(l, depth)?),
                    Some(Node::Global { module, name }) => PyValue::Global {
                        module: module.to_string(),
                        name: name.to_string(),
                    },
                    Some(Node::PersId(pid)) => {
                        PyValue::PersistentId(Box::new(self.value(pid, depth + 1)?))
                    }
                    Some(Node::Object(o)) => self.object(v, o, depth)?,
                    // Dicts and sets were handled above.
                    Some(Node::Dict(_)) | Some(Node::Set(_)) | Some(Node::FrozenSet(_)) | None => {
                        return Err("dangling reference".into())
                    }
                }
            }
        })
    }

    fn object(&mut self, v: &Value, o: &Object, depth: usize) -> Result<PyValue, String> {
        let heap = self.heap;
        if let Some((m, n)) = global_of(heap, &o.func) {
            if is_numpy_multiarray(m) && n == "scalar" {
                return numpy_scalar(heap, self.data, o);
            }
            if is_numpy_multiarray(m) && n == "_reconstruct" {
                let a = numpy_array(heap, self.data, o)?;
                let numel = a.data.len() / a.dtype.size();
                if numel > MAX_ARRAY_ELEMENTS {
                    return Err(format!("numpy array of {numel} elements is too large"));
                }
                self.spend(a.data.len())?;
                return Ok(PyValue::Array(a));
            }
            if m == "torch._utils" && n.starts_with("_rebuild_") {
                let meta = tensor_meta(heap, v)?;
                let (dtype, key, view) = match &meta.storage {
                    StorageSource::Persistent {
                        dtype, key, view, ..
                    } => (*dtype, Some(key.clone()), *view),
                    StorageSource::LegacyBlob { off, len, .. } => {
                        let st = parse_legacy_blob(self.origin, self.data, *off, *len)
                            .map_err(|e| e.to_string())?;
                        (st.dtype, None, None)
                    }
                };
                return Ok(PyValue::Tensor(TensorInfo {
                    dtype,
                    shape: meta.shape,
                    stride: meta.stride,
                    storage_offset: meta.offset,
                    storage_key: key,
                    storage_view: view,
                }));
            }
        }
        let callable = Box::new(self.value(&o.func, depth + 1)?);
        let args = Box::new(self.value(&o.args, depth + 1)?);
        let state = match &o.state {
            Some(s) => Some(Box::new(self.value(s, depth + 1)?)),
            None => None,
        };
        let kwargs = match &o.kwargs {
            Some(s) => Some(Box::new(self.value(s, depth + 1)?)),
            None => None,
        };
        let items: Vec<(&Value, &Value)> = o.items.iter().map(|(k, v)| (k, v)).collect();
        let items = self.pairs(&items, depth)?;
        let list_items = self.list(&o.list_items, depth)?;
        Ok(PyValue::Object {
            callable,
            args,
            kwargs,
            state,
            items,
            list_items,
        })
    }
}

/// Converts a [`PyValue`] into JSON: dicts become objects (keys as strings), tuples, lists and
/// sets arrays, NumPy scalars and 0-d arrays numbers or bools, larger arrays nested arrays
/// (arrays of more than 65536 elements `{"__array__": dtype, "shape": [...]}`).
/// Non-finite floats become `null`. Objects this reader does not interpret become
/// `{"__object__": "module.name", "args": ..., "state": ...}`; tensors
/// `{"__tensor__": dtype, "shape": [...]}`.
pub fn to_json(v: &PyValue) -> serde_json::Value {
    json_value(v, 0)
}

fn json_value(v: &PyValue, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return J::Null;
    }
    match v {
        PyValue::None => J::Null,
        PyValue::Bool(b) => J::Bool(*b),
        PyValue::Int(i) => J::Number((*i).into()),
        PyValue::BigInt(b) => bigint_json(b),
        PyValue::Float(f) => Number::from_f64(*f).map_or(J::Null, J::Number),
        PyValue::Str(s) => J::String(s.clone()),
        PyValue::Bytes(b) => J::Array(b.iter().map(|&x| J::Number(x.into())).collect()),
        PyValue::List(l) | PyValue::Tuple(l) | PyValue::Set(l) => {
            J::Array(l.iter().map(|x| json_value(x, depth + 1)).collect())
        }
        PyValue::Dict(pairs) => {
            let mut m = Map::new();
            for (k, val) in pairs {
                let key = match k {
                    PyValue::Str(s) => s.clone(),
                    PyValue::Int(i) => i.to_string(),
                    PyValue::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                    PyValue::Float(f) => f.to_string(),
                    PyValue::None => "None".to_string(),
                    other => json_value(other, depth + 1).to_string(),
                };
                m.insert(key, json_value(val, depth + 1));
            }
            J::Object(m)
        }
        PyValue::Array(a) => array_json(a),
        PyValue::Tensor(t) => {
            let mut m = Map::new();
            m.insert("__tensor__".into(), J::String(t.dtype.name().into()));
            m.insert(
                "shape".into(),
                J::Array(t.shape.iter().map(|&d| J::Number(d.into())).collect()),
            );
            J::Object(m)
        }
        PyValue::Global { module, name } => J::String(format!("{module}.{name}")),
        PyValue::Object {
            callable,
            args,
            kwargs,
            state,
            ..
        } => {
            let mut m = Map::new();
            let name = match &**callable {
                PyValue::Global { module, name } => format!("{module}.{name}"),
                _ => "?".to_string(),
            };
            m.insert("__object__".into(), J::String(name));
            m.insert("args".into(), json_value(args, depth + 1));
            if let Some(k) = kwargs {
                m.insert("kwargs".into(), json_value(k, depth + 1));
            }
            if let Some(s) = state {
                m.insert("state".into(), json_value(s, depth + 1));
            }
            J::Object(m)
        }
        PyValue::PersistentId(p) => {
            let mut m = Map::new();
            m.insert("__persistent_id__".into(), json_value(p, depth + 1));
            J::Object(m)
        }
    }
}

fn bigint_json(b: &[u8]) -> serde_json::Value {
    if b.len() <= 16 {
        let negative = b.last().is_some_and(|x| x & 0x80 != 0);
        let mut a = [if negative { 0xff } else { 0 }; 16];
        a[..b.len()].copy_from_slice(b);
        let x = i128::from_le_bytes(a);
        if let Ok(u) = u64::try_from(x) {
            return serde_json::Value::Number(u.into());
        }
        return serde_json::Value::String(x.to_string());
    }
    serde_json::Value::String("<integer wider than 128 bits>".into())
}

fn array_json(a: &NdArray) -> serde_json::Value {
    let es = a.dtype.size();
    if a.data.len() / es > MAX_JSON_ARRAY_ELEMENTS {
        // Attributes are small; a large array is summarised rather than spelled out.
        let mut m = Map::new();
        m.insert(
            "__array__".into(),
            serde_json::Value::String(a.dtype.name().into()),
        );
        m.insert(
            "shape".into(),
            serde_json::Value::Array(
                a.shape
                    .iter()
                    .map(|&d| serde_json::Value::Number(d.into()))
                    .collect(),
            ),
        );
        return serde_json::Value::Object(m);
    }
    let elems: Vec<serde_json::Value> = a
        .data
        .chunks_exact(es)
        .map(|c| scalar_value(a.dtype, c).map_or(serde_json::Value::Null, |v| json_value(&v, 0)))
        .collect();
    if a.shape.is_empty() {
        return elems.into_iter().next().unwrap_or(serde_json::Value::Null);
    }
    // Fold the flat elements into nested arrays, innermost dimension first.
    let mut level = elems;
    for &d in a.shape.iter().skip(1).rev() {
        if d == 0 {
            break;
        }
        let mut next = Vec::with_capacity(level.len() / d);
        let mut it = level.into_iter();
        loop {
            let chunk: Vec<_> = it.by_ref().take(d).collect();
            if chunk.is_empty() {
                break;
            }
            next.push(serde_json::Value::Array(chunk));
        }
        level = next;
    }
    serde_json::Value::Array(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_become_nested_json() {
        let a = NdArray {
            dtype: TensorDType::I64,
            shape: vec![2, 3],
            data: (0i64..6).flat_map(|x| x.to_le_bytes()).collect(),
        };
        assert_eq!(array_json(&a), serde_json::json!([[0, 1, 2], [3, 4, 5]]));
        let s = NdArray {
            dtype: TensorDType::F64,
            shape: vec![],
            data: 2.5f64.to_le_bytes().to_vec(),
        };
        assert_eq!(array_json(&s), serde_json::json!(2.5));
        let b = NdArray {
            dtype: TensorDType::Bool,
            shape: vec![2],
            data: vec![1, 0],
        };
        assert_eq!(array_json(&b), serde_json::json!([true, false]));
    }

    #[test]
    fn big_ints_in_json() {
        assert_eq!(
            bigint_json(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]),
            serde_json::json!(1u64 << 63)
        );
        assert_eq!(
            bigint_json(&[0, 0, 0, 0, 0, 0, 0, 0, 0x80]),
            serde_json::json!("-2361183241434822606848")
        );
    }
}
