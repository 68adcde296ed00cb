//! StyleGAN2/3 network pickles (the official training-snapshot format) and the module walk
//! that turns a pickled `torch.nn.Module` into its state dict.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use crate::error::{PickleError, Result};
use crate::interp::{
    call_of, dict_get, dict_pairs, seq_items, set_items, to_json, Converter, PyValue,
};
use crate::torch::{
    bytes_to_f32, gather, parse_legacy_blob, tensor_meta, Storage, StorageSource, TensorDType,
    TensorMeta,
};
use crate::vm::{self, Heap, NodeId, Value};

/// Deepest module nesting followed (StyleGAN networks are 3-4 levels deep).
const MAX_MODULE_DEPTH: usize = 64;
/// Most modules one network may have (a 1024 px StyleGAN has a few hundred).
const MAX_MODULES: usize = 1 << 16;

/// Most bytes the tensors of one network (or one state dict) may decode to: twice the file
/// (views may share a storage) plus some slack for tiny files.
pub(crate) fn decode_budget(file_len: usize) -> usize {
    file_len.saturating_mul(2).saturating_add(64 << 20)
}
/// The networks a training snapshot holds, in the order they are written.
const NETWORK_KEYS: [&str; 3] = ["G", "D", "G_ema"];

/// One parameter or buffer of a network, under its state-dict name.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// State-dict name (`synthesis.L0_36_512.weight`).
    pub name: String,
    /// Element type.
    pub dtype: TensorDType,
    /// Shape; empty for a 0-d tensor.
    pub shape: Vec<usize>,
    /// `numel * dtype.size()` bytes, little-endian, C (row-major) order, whatever the
    /// storage offset and strides were in the file.
    pub data: Vec<u8>,
}

impl StateTensor {
    /// Number of elements (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as f32: float32 as is, float16 / bfloat16 exactly, float64 rounded to
    /// nearest. `None` for integer and bool tensors.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        bytes_to_f32(self.dtype, &self.data)
    }
}

/// One module of a network, with its plain attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleInfo {
    /// Dotted path from the network (`""` for the network itself, `"synthesis.L0_36_512"`).
    pub path: String,
    /// Class name (`"SynthesisLayer"`).
    pub class_name: String,
    /// The module's own attributes as a JSON object: every entry of its `__dict__` except
    /// torch's bookkeeping (names starting with `_`, and `training`). NumPy arrays and scalars
    /// become (nested arrays of) numbers and bools, so e.g. a StyleGAN3 layer has
    /// `"in_size": [36, 36]`, `"in_sampling_rate": 16.0`, `"use_fp16": true`.
    pub attributes: serde_json::Value,
}

/// A network (`G`, `D`, `G_ema`, ...) read from a pickle.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// The file it was read from (used in messages).
    pub origin: String,
    /// Class name as the persistence metadata records it (`"Generator"`), or the class of a
    /// plainly pickled module.
    pub class_name: String,
    /// The constructor keyword arguments (`_init_kwargs`) as JSON: dicts / EasyDicts become
    /// objects, tuples and lists arrays, NumPy scalars and 0-d arrays numbers or bools.
    /// `null` if the module has none.
    pub init_kwargs: serde_json::Value,
    /// Every parameter and persistent buffer in state-dict order.
    pub tensors: Vec<StateTensor>,
    /// Every module (the network first, then depth-first in registration order).
    pub modules: Vec<ModuleInfo>,
}

impl Network {
    /// The module at this dotted path (`""` for the network itself).
    pub fn module(&self, path: &str) -> Option<&ModuleInfo> {
        self.modules.iter().find(|m| m.path == path)
    }

    /// The tensor with this state-dict name.
    pub fn tensor(&self, name: &str) -> Option<&StateTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Shape and f32 elements of a tensor (converted from float16 / bfloat16 / float64).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.tensor(name).ok_or_else(|| PickleError::Missing {
            origin: self.origin.clone(),
            name: name.to_string(),
            available: Vec::new(),
        })?;
        let data = t.to_f32().ok_or_else(|| {
            PickleError::tensor(
                &self.origin,
                name,
                format!("is {}, not a floating-point tensor", t.dtype),
            )
        })?;
        Ok((t.shape.clone(), data))
    }
}

/// A network pickle, parsed but not yet decoded: tensors are read when a network is asked for.
///
/// Holds the file's bytes (read once) and an inert object graph that refers into them.
#[derive(Debug)]
pub struct NetworkPickle {
    origin: String,
    data: Vec<u8>,
    heap: Heap,
    /// Top-level entries, in file order.
    entries: Vec<(String, Value)>,
}

/// Reads a network pickle from a file. See [`NetworkPickle::from_bytes`].
pub fn read_network_pickle(path: impl AsRef<Path>) -> Result<NetworkPickle> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|source| PickleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    NetworkPickle::from_bytes(data, path.display().to_string())
}

impl NetworkPickle {
    /// Parses a network pickle held in memory. `origin` names it in errors.
    ///
    /// The top level must be a dict (as written by the official training loop, with some of
    /// `G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`). Only the object graph is built
    /// here; tensors are decoded by [`NetworkPickle::network`].
    pub fn from_bytes(data: Vec<u8>, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let t0 = Instant::now();
        if data.is_empty() {
            return Err(PickleError::structure(&origin, "empty file"));
        }
        if crate::torch::looks_like_legacy_stream(&data) {
            return Err(PickleError::structure(
                &origin,
                "this is a torch.save checkpoint (legacy format), not a network pickle; read it with read_torch_zip",
            ));
        }
        if data.starts_with(b"PK\x03\x04") {
            return Err(PickleError::structure(
                &origin,
                "this is a zip archive (a torch.save checkpoint), not a network pickle; read it with read_torch_zip",
            ));
        }
        let mut heap = Heap::default();
        let (root, end) = vm::run(&origin, &data, 0, data.len(), &mut heap)?;
        if end != data.len() {
            tracing::debug!(
                "{origin}: {} bytes after the pickle's STOP opcode ignored",
                data.len() - end
            );
        }
        let Some(pairs) = dict_pairs(&heap, &root) else {
            return Err(not_a_snapshot(&heap, &root, &origin));
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if let Some(k) = k.as_str() {
                entries.push((k.to_string(), v.clone()));
            }
        }
        tracing::debug!(
            "{origin}: parsed {} bytes in {:.1} ms ({} top-level entries)",
            data.len(),
            t0.elapsed().as_secs_f64() * 1e3,
            entries.len()
        );
        Ok(NetworkPickle {
            origin,
            data,
            heap,
            entries,
        })
    }

    /// The name given for this pickle in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Which of `G`, `D`, `G_ema` the pickle holds as networks, in file order.
    pub fn networks(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(k, v)| {
                NETWORK_KEYS.contains(&k.as_str()) && module_state(&self.heap, v).is_ok()
            })
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The names of all top-level entries, in file order.
    pub fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn entry(&self, name: &str) -> Result<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| PickleError::Missing {
                origin: self.origin.clone(),
                name: name.to_string(),
                available: self.networks().iter().map(|s| s.to_string()).collect(),
            })
    }

    /// A top-level entry that is not a network (e.g. `training_set_kwargs`) as a
    /// [`PyValue`] tree. Networks are refused: use [`NetworkPickle::network`].
    pub fn value(&self, name: &str) -> Result<PyValue> {
        let v = self.entry(name)?;
        if module_state(&self.heap, v).is_ok() {
            return Err(PickleError::structure(
                &self.origin,
                format!("'{name}' is a network; read it with network()"),
            ));
        }
        Converter::new(&self.heap, &self.data, &self.origin)
            .convert(v)
            .map_err(|m| PickleError::structure(&self.origin, format!("'{name}': {m}")))
    }

    /// Decodes one network (`"G_ema"` for image generation): its class name, constructor
    /// arguments and every parameter and persistent buffer in state-dict order.
    pub fn network(&self, name: &str) -> Result<Network> {
        let t0 = Instant::now();
        let v = self.entry(name)?;
        let heap = &self.heap;
        let origin = &self.origin;
        let (class_name, state) = module_state(heap, v)
            .map_err(|m| PickleError::structure(origin, format!("'{name}': {m}")))?;
        // One converter for everything this call converts, so its limits bound the total.
        let mut conv = Converter::new(heap, &self.data, origin);
        let init_kwargs = match dict_get(heap, state, "_init_kwargs") {
            None | Some(Value::None) => serde_json::Value::Null,
            Some(kw) => {
                let tree = conv.convert(kw).map_err(|m| {
                    PickleError::structure(origin, format!("'{name}' _init_kwargs: {m}"))
                })?;
                to_json(&tree)
            }
        };
        let mut found = Vec::new();
        let mut module_states = Vec::new();
        collect_tensors(heap, v, "", &mut found, &mut module_states, 0)
            .map_err(|m| PickleError::structure(origin, format!("'{name}': {m}")))?;
        let modules = module_states
            .into_iter()
            .map(|(path, class_name, state)| ModuleInfo {
                attributes: self.attributes(&mut conv, name, &path, state),
                path,
                class_name,
            })
            .collect();
        let mut cache: HashMap<NodeId, Storage> = HashMap::new();
        let mut tensors = Vec::with_capacity(found.len());
        // Tensors may share storages, but together they never need more than this.
        let mut bytes_left = decode_budget(self.data.len());
        for (tname, tv) in found {
            // Tensor problems name where the tensor is in the file, for pickletools.
            let at = heap.offset(tv).unwrap_or(0);
            let located = |e: PickleError| match e {
                PickleError::Tensor {
                    origin,
                    name,
                    message,
                } => PickleError::Tensor {
                    origin,
                    name,
                    message: format!("{message} (tensor pickled at byte {at})"),
                },
                other => other,
            };
            let meta = tensor_meta(heap, tv)
                .map_err(|m| located(PickleError::tensor(origin, &tname, m)))?;
            let t = self.decode(&tname, &meta, &mut cache).map_err(located)?;
            bytes_left = bytes_left.checked_sub(t.data.len()).ok_or_else(|| {
                PickleError::limit(
                    origin,
                    0,
                    format!("'{name}': its tensors would decode to more than twice the file size"),
                )
            })?;
            tensors.push(t);
        }
        tracing::debug!(
            "{origin}: decoded {name} ({class_name}, {} tensors) in {:.1} ms",
            tensors.len(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        Ok(Network {
            origin: origin.clone(),
            class_name,
            init_kwargs,
            tensors,
            modules,
        })
    }

    /// A module's plain attributes as a JSON object. An attribute that cannot be converted
    /// becomes `null` (with a warning): it must not make the network unreadable.
    fn attributes(
        &self,
        conv: &mut Converter<'_>,
        network: &str,
        path: &str,
        state: &Value,
    ) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (k, v) in dict_pairs(&self.heap, state).unwrap_or_default() {
            let Some(k) = k.as_str() else { continue };
            if k.starts_with('_') || k == "training" {
                continue;
            }
            let json = match conv.convert(v) {
                Ok(tree) => to_json(&tree),
                Err(m) => {
                    tracing::warn!("{}: {network}.{path}: attribute {k}: {m}", self.origin);
                    serde_json::Value::Null
                }
            };
            out.insert(k.to_string(), json);
        }
        serde_json::Value::Object(out)
    }

    fn decode(
        &self,
        name: &str,
        meta: &TensorMeta,
        cache: &mut HashMap<NodeId, Storage>,
    ) -> Result<StateTensor> {
        let origin = &self.origin;
        let storage = match &meta.storage {
            StorageSource::LegacyBlob { node, off, len } => match cache.get(node) {
                Some(s) => *s,
                None => {
                    let s = parse_legacy_blob(origin, &self.data, *off, *len)?;
                    cache.insert(*node, s);
                    s
                }
            },
            StorageSource::Persistent { .. } => return Err(PickleError::tensor(
                origin,
                name,
                "refers to an external storage (a zip checkpoint's tensor inside a plain pickle)",
            )),
        };
        let es = storage.dtype.size();
        let src = storage
            .numel
            .checked_mul(es)
            .and_then(|n| self.data.get(storage.off..storage.off.checked_add(n)?))
            .ok_or_else(|| PickleError::tensor(origin, name, "storage out of range"))?;
        let data = gather(src, es, meta.offset, &meta.shape, &meta.stride)
            .map_err(|m| PickleError::tensor(origin, name, m))?;
        Ok(StateTensor {
            name: name.to_string(),
            dtype: storage.dtype,
            shape: meta.shape.clone(),
            data,
        })
    }
}

/// Explains why the top level is not a training snapshot.
fn not_a_snapshot(heap: &Heap, root: &Value, origin: &str) -> PickleError {
    // TensorFlow-era StyleGAN/StyleGAN2 pickles are a tuple (G, D, Gs) of dnnlib.tflib
    // networks whose weights are TensorFlow variables.
    if let Some(items) = seq_items(heap, root) {
        let tf = items.iter().any(|v| {
            let Some((m, n, obj)) = call_of(heap, v) else {
                return false;
            };
            // NEWOBJ names the class itself; copyreg._reconstructor takes it as argument 0.
            let class_module = if (m, n) == ("copyreg", "_reconstructor") {
                seq_items(heap, &obj.args)
                    .and_then(|a| a.first())
                    .and_then(|c| crate::interp::global_of(heap, c))
                    .map_or("", |(cm, _)| cm)
            } else {
                m
            };
            class_module.starts_with("dnnlib.tflib")
        });
        if tf {
            return PickleError::unsupported(
                origin,
                "this is a TensorFlow StyleGAN pickle (dnnlib.tflib networks); convert it with NVIDIA's legacy.py first",
            );
        }
    }
    PickleError::structure(
        origin,
        crate::torch::describe(
            heap,
            root,
            "a dict of networks (G, D, G_ema, ...) at the top level",
        ),
    )
}

/// The class name and `__dict__` of a pickled module.
///
/// Modules written by `torch_utils.persistence` are `_reconstruct_persistent_obj(meta)` with
/// `meta = {type: 'class', class_name, state, ...}`; plainly pickled `nn.Module`s are a call
/// of their class (NEWOBJ or `copyreg._reconstructor`) with the `__dict__` as BUILD state.
fn module_state<'h>(heap: &'h Heap, v: &Value) -> Result<(String, &'h Value), String> {
    let Some((module, name, obj)) = call_of(heap, v) else {
        return Err(crate::torch::describe(heap, v, "a network object"));
    };
    if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj") {
        let meta = seq_items(heap, &obj.args)
            .and_then(|a| a.first())
            .ok_or("persistent object without metadata")?;
        if let Some(t) = dict_get(heap, meta, "type").and_then(Value::as_str) {
            if t != "class" {
                return Err(format!("persistent object of type '{t}', expected 'class'"));
            }
        }
        let class_name = dict_get(heap, meta, "class_name")
            .and_then(Value::as_str)
            .ok_or("persistent object without class_name")?;
        let state = dict_get(heap, meta, "state").ok_or("persistent object without state")?;
        if dict_get(heap, state, "_parameters").is_none() {
            return Err(format!(
                "'{class_name}' is not a torch module (no _parameters)"
            ));
        }
        return Ok((class_name.to_string(), state));
    }
    let state = obj
        .state
        .as_ref()
        .ok_or_else(|| format!("{module}.{name} object without state"))?;
    if dict_get(heap, state, "_parameters").is_none() {
        return Err(format!(
            "{module}.{name} object is not a torch module (no _parameters)"
        ));
    }
    // copyreg._reconstructor(cls, base, state): the class is the first argument.
    let class = if (module, name) == ("copyreg", "_reconstructor") {
        seq_items(heap, &obj.args)
            .and_then(|a| a.first())
            .and_then(|c| crate::interp::global_of(heap, c))
            .map(|(_, n)| n)
            .unwrap_or(name)
    } else {
        name
    };
    Ok((class.to_string(), state))
}

/// Names of the buffers a module excludes from its state dict.
fn non_persistent(heap: &Heap, state: &Value) -> HashSet<String> {
    dict_get(heap, state, "_non_persistent_buffers_set")
        .and_then(|s| set_items(heap, s))
        .map(|items| {
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Walks a module tree like `nn.Module.state_dict()`: a module's parameters, then its
/// persistent buffers, then each child module in registration order; `None` entries skipped.
fn collect_tensors<'h>(
    heap: &'h Heap,
    module: &Value,
    prefix: &str,
    out: &mut Vec<(String, &'h Value)>,
    modules: &mut Vec<(String, String, &'h Value)>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_MODULE_DEPTH {
        return Err(format!(
            "modules nested deeper than {MAX_MODULE_DEPTH} levels (or a reference cycle)"
        ));
    }
    // Shared sub-modules are walked again each time they are reached (as torch would list
    // their tensors again), so bound the total, not only the depth.
    if modules.len() >= MAX_MODULES {
        return Err(format!("more than {MAX_MODULES} modules"));
    }
    let here = if prefix.is_empty() {
        "the network"
    } else {
        prefix.trim_end_matches('.')
    };
    let (class_name, state) = module_state(heap, module).map_err(|m| format!("{here}: {m}"))?;
    modules.push((prefix.trim_end_matches('.').to_string(), class_name, state));
    let skip = non_persistent(heap, state);
    for (field, persistent_only) in [("_parameters", false), ("_buffers", true)] {
        let Some(d) = dict_get(heap, state, field) else {
            continue;
        };
        let pairs = dict_pairs(heap, d).ok_or_else(|| format!("{here}: {field} is not a dict"))?;
        for (k, v) in pairs {
            let k = k
                .as_str()
                .ok_or_else(|| format!("{here}: {field} has a key that is not a string"))?;
            if matches!(v, Value::None) || (persistent_only && skip.contains(k)) {
                continue;
            }
            out.push((format!("{prefix}{k}"), v));
        }
    }
    if let Some(children) = dict_get(heap, state, "_modules") {
        let pairs =
            dict_pairs(heap, children).ok_or_else(|| format!("{here}: _modules is not a dict"))?;
        for (k, child) in pairs {
            let k = k
                .as_str()
                .ok_or_else(|| format!("{here}: _modules has a key that is not a string"))?;
            if matches!(child, Value::None) {
                continue;
            }
            collect_tensors(
                heap,
                child,
                &format!("{prefix}{k}."),
                out,
                modules,
                depth + 1,
            )?;
        }
    }
    Ok(())
}
