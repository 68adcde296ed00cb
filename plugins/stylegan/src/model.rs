//! Where generators come from: NVIDIA network pickles, safetensors files (+ their construction
//! arguments), and built-in seeded models made by our own code. Loaded models are shared: the
//! same file (same size and modification time) or built-in name is loaded once per process.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use stylegraph_kernels::{Architecture, Generator, ModelError, TensorMap};

/// A loaded generator and where it came from.
pub struct Model {
    pub generator: Generator,
    /// What the user gave (`path/to/model.pkl`, `builtin:stylegan3-t-256`).
    pub source: String,
    /// `G_ema` or `G` for pickles.
    pub network: String,
    /// The construction arguments used (as read, or as built for a built-in model).
    pub kwargs: Value,
    /// Approximate memory held, for the host's cache budget.
    pub size_bytes: u64,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Pickle(#[from] stylegraph_pickle::PickleError),
    #[error("{path}: {source}")]
    Model {
        path: String,
        #[source]
        source: ModelError,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Builtin(String),
}

/// Prefix of the built-in models' names.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// The model the example graphs and `stylegraph generate` use by default.
pub const DEFAULT_MODEL: &str = "builtin:stylegan3-t-256";

type CacheKey = (String, String, u64, Option<std::time::SystemTime>);

fn cache() -> &'static Mutex<HashMap<CacheKey, Weak<Model>>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<CacheKey, Weak<Model>>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads (or shares an already loaded) model.
pub fn load_model(source: &str, network: &str) -> Result<Arc<Model>, LoadError> {
    let key: CacheKey = if source.starts_with(BUILTIN_PREFIX) {
        (source.to_owned(), network.to_owned(), 0, None)
    } else {
        let meta = std::fs::metadata(source).map_err(|e| LoadError::File {
            path: source.to_owned(),
            message: format!("cannot open the model file: {e}"),
        })?;
        let canonical = std::fs::canonicalize(source)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| source.to_owned());
        (
            canonical,
            network.to_owned(),
            meta.len(),
            meta.modified().ok(),
        )
    };
    {
        let map = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(m);
        }
    }
    let (tensors, kwargs) = load_tensors(source, network)?;
    let generator = Generator::from_tensors(&tensors, Some(&kwargs)).map_err(|source_err| {
        LoadError::Model {
            path: source.to_owned(),
            source: source_err,
        }
    })?;
    let size_bytes = tensors
        .tensors
        .values()
        .map(|t| t.data.len() as u64 * 4)
        .sum::<u64>();
    let model = Arc::new(Model {
        generator,
        source: source.to_owned(),
        network: network.to_owned(),
        kwargs,
        size_bytes,
    });
    let mut map = cache().lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    map.insert(key, Arc::downgrade(&model));
    Ok(model)
}

/// The state dict and construction arguments of a model source.
pub fn load_tensors(source: &str, network: &str) -> Result<(TensorMap, Value), LoadError> {
    if let Some(spec) = source.strip_prefix(BUILTIN_PREFIX) {
        return builtin(spec);
    }
    let path = Path::new(source);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "pkl" | "pickle" => load_pickle(path, network),
        "safetensors" => load_safetensors(path),
        _ => Err(LoadError::File {
            path: source.to_owned(),
            message: "unsupported model file: expected an NVIDIA network pickle (.pkl), a \
                      .safetensors file, or builtin:<name> (e.g. builtin:stylegan3-t-256)"
                .into(),
        }),
    }
}

fn load_pickle(path: &Path, network: &str) -> Result<(TensorMap, Value), LoadError> {
    let pickle = stylegraph_pickle::read_network_pickle(path)?;
    let available = pickle.networks();
    if !available.contains(&network) {
        return Err(LoadError::File {
            path: path.display().to_string(),
            message: format!(
                "the pickle has no network {network:?} (it has: {})",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        });
    }
    let net = pickle.network(network)?;
    let mut map = TensorMap::new();
    for t in &net.tensors {
        let data = t.to_f32().ok_or_else(|| LoadError::File {
            path: path.display().to_string(),
            message: format!(
                "tensor {} is {}, expected floating point",
                t.name,
                t.dtype.name()
            ),
        })?;
        map.insert(t.name.clone(), t.shape.clone(), data);
    }
    let kwargs = if net.init_kwargs.is_object() {
        net.init_kwargs.clone()
    } else {
        Value::Object(Default::default())
    };
    Ok((map, kwargs))
}

/// Key of the construction arguments in the safetensors metadata we write.
pub const KWARGS_METADATA_KEY: &str = "stylegraph.kwargs";

/// The JSON file written beside a safetensors file (`model.safetensors` -> `model.json`).
pub fn sidecar_path(safetensors: &Path) -> PathBuf {
    safetensors.with_extension("json")
}

fn load_safetensors(path: &Path) -> Result<(TensorMap, Value), LoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LoadError::File {
        path: shown.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let map = TensorMap::from_safetensors_bytes(&bytes).map_err(|e| LoadError::File {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    // Construction arguments: our metadata entry, else a sidecar JSON, else inferred.
    let mut kwargs = Value::Object(Default::default());
    let metadata = safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone());
    if let Some(text) = metadata.as_ref().and_then(|m| m.get(KWARGS_METADATA_KEY)) {
        kwargs = serde_json::from_str(text).map_err(|e| LoadError::File {
            path: shown.clone(),
            message: format!("metadata {KWARGS_METADATA_KEY:?} is not valid JSON: {e}"),
        })?;
    } else {
        let side = sidecar_path(path);
        if side.exists() {
            let text = std::fs::read_to_string(&side).map_err(|e| LoadError::File {
                path: side.display().to_string(),
                message: format!("cannot read: {e}"),
            })?;
            kwargs = serde_json::from_str(&text).map_err(|e| LoadError::File {
                path: side.display().to_string(),
                message: format!("not valid JSON: {e}"),
            })?;
        }
    }
    if !kwargs.is_object() {
        return Err(LoadError::File {
            path: shown,
            message: "construction arguments must be a JSON object".into(),
        });
    }
    Ok((map, kwargs))
}

/// Writes a state dict as safetensors (float32, upstream names) with the construction arguments
/// in the metadata, plus the same arguments as a JSON file beside it. Both atomically.
pub fn write_safetensors(
    map: &TensorMap,
    kwargs: &Value,
    architecture: Architecture,
    path: &Path,
) -> Result<PathBuf, LoadError> {
    let err = |p: &Path, message: String| LoadError::File {
        path: p.display().to_string(),
        message,
    };
    let kwargs_text = serde_json::to_string(kwargs).map_err(|e| err(path, e.to_string()))?;
    let mut metadata = HashMap::new();
    metadata.insert(KWARGS_METADATA_KEY.to_owned(), kwargs_text);
    metadata.insert(
        "stylegraph.architecture".to_owned(),
        architecture.name().to_owned(),
    );
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = map
        .tensors
        .iter()
        .map(|(name, t)| {
            let bytes: &[u8] = bytemuck_f32(&t.data);
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| err(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| err(path, e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(dir, format!("cannot create directory: {e}")))?;
    }
    stylegraph_npy::write_atomic(path, &bytes).map_err(|e| err(path, e.to_string()))?;
    let side = sidecar_path(path);
    let pretty = serde_json::to_string_pretty(kwargs).map_err(|e| err(&side, e.to_string()))?;
    stylegraph_npy::write_atomic(&side, pretty.as_bytes())
        .map_err(|e| err(&side, e.to_string()))?;
    Ok(side)
}

/// Views f32 values as their little-endian bytes (every platform we build for is little-endian).
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding or invalid bit patterns as bytes; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// Built-in models (see [`stylegraph_kernels::builtin`]): untrained, seeded weights made by our
/// own code; they give abstract colourful images, not faces.
fn builtin(spec: &str) -> Result<(TensorMap, Value), LoadError> {
    stylegraph_kernels::builtin::make_named(spec)
        .map_err(|m| LoadError::Builtin(format!("{BUILTIN_PREFIX}{spec}: {m}")))
}
