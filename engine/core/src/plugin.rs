//! The plugin host: finds plugin libraries, checks their ABI, and reads their node descriptors
//! into owned Rust data ([`NodeTypeInfo`]).
//!
//! A bad plugin is refused with a reason ([`PluginLoadError`]) and the host keeps going with the
//! others. Libraries are never unloaded: unloading Rust libraries that registered thread-local
//! destructors is unsound, so a plugin stays mapped until the process exits.

use crate::graph::ParamValue;
use crate::types::PortType;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stylegraph_abi::ffi::*;

/// A loaded plugin.
#[derive(Debug)]
pub struct LoadedPlugin {
    pub id: String,
    pub version: String,
    pub description: String,
    /// The library file, or `<builtin>` for a plugin registered in-process.
    pub path: PathBuf,
    pub abi_minor: u32,
    pub(crate) entry: SgPlugin,
}

// SAFETY: SgPlugin is static data and thread-safe function pointers (ABI contract).
unsafe impl Send for LoadedPlugin {}
unsafe impl Sync for LoadedPlugin {}

/// Kind of a param, as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    Bool,
    Int,
    Float,
    String,
    Path,
    Enum,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Bool => "bool",
            ParamKind::Int => "int",
            ParamKind::Float => "float",
            ParamKind::String => "string",
            ParamKind::Path => "path",
            ParamKind::Enum => "enum",
        }
    }
}

/// A port of a node type.
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub port_type: PortType,
    pub doc: String,
    pub optional: bool,
    /// A streamed port (ABI 1.1 `SG_PORT_STREAM`): on an output, the node produces a sequence
    /// in chunks; on an input, it consumes one chunk per call (see `docs/plugin-abi.md`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// A param of a node type.
#[derive(Clone, Debug, Serialize)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    pub doc: String,
    pub default: ParamValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub step: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    pub is_seed: bool,
    pub is_output_path: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log_scale: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_color: bool,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Everything the host knows about a node type.
#[derive(Clone, Debug, Serialize)]
pub struct NodeTypeInfo {
    pub type_id: String,
    pub display_name: String,
    pub category: String,
    pub doc: String,
    pub inputs: Vec<PortInfo>,
    pub outputs: Vec<PortInfo>,
    pub params: Vec<ParamInfo>,
    pub deterministic: bool,
    pub side_effect: bool,
    pub plugin_id: String,
    pub plugin_version: String,
    #[serde(skip)]
    pub(crate) plugin: Arc<LoadedPlugin>,
    #[serde(skip)]
    pub(crate) index: usize,
}

impl NodeTypeInfo {
    pub fn input(&self, name: &str) -> Option<&PortInfo> {
        self.inputs.iter().find(|p| p.name == name)
    }
    pub fn output(&self, name: &str) -> Option<&PortInfo> {
        self.outputs.iter().find(|p| p.name == name)
    }
    pub fn param(&self, name: &str) -> Option<&ParamInfo> {
        self.params.iter().find(|p| p.name == name)
    }
    /// The seed param, if the node has one.
    pub fn seed_param(&self) -> Option<&ParamInfo> {
        self.params.iter().find(|p| p.is_seed)
    }
    /// The index of the stream output: the node is a stream producer.
    pub fn stream_output(&self) -> Option<usize> {
        self.outputs.iter().position(|p| p.stream)
    }
    /// True if any input is a stream input: the node can consume a sequence.
    pub fn has_stream_input(&self) -> bool {
        self.inputs.iter().any(|p| p.stream)
    }
}

/// Why a plugin (or a plugin directory) was refused.
#[derive(Clone, Debug, thiserror::Error, Serialize)]
pub enum PluginLoadError {
    #[error("{path}: not a loadable shared library: {reason}")]
    NotALibrary { path: String, reason: String },
    #[error("{path}: not a Stylegraph plugin: it has no `stylegraph_plugin_entry` symbol")]
    NoEntry { path: String },
    #[error("{path}: plugin is built for plugin ABI {major}.{minor}, this host speaks {host_major}.{host_minor} (the major versions must match; rebuild the plugin against this Stylegraph)")]
    AbiMismatch {
        path: String,
        major: u32,
        minor: u32,
        host_major: u32,
        host_minor: u32,
    },
    #[error("{path}: invalid plugin: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "{path}: node type {type_id:?} is already provided by {other}; the plugin is not loaded"
    )]
    DuplicateNodeType {
        path: String,
        type_id: String,
        other: String,
    },
    #[error(
        "{path}: plugin id {plugin_id:?} is already loaded from {other}; the plugin is not loaded"
    )]
    DuplicatePlugin {
        path: String,
        plugin_id: String,
        other: String,
    },
    #[error("{path}: cannot read plugin directory: {reason}")]
    Directory { path: String, reason: String },
}

/// The set of loaded plugins and their node types.
#[derive(Default)]
pub struct PluginHost {
    plugins: Vec<Arc<LoadedPlugin>>,
    types: BTreeMap<String, NodeTypeInfo>,
    problems: Vec<PluginLoadError>,
    loaded_paths: Vec<PathBuf>,
}

/// Environment variable with extra plugin directories (separated like `PATH`).
pub const PLUGIN_PATH_ENV: &str = "STYLEGRAPH_PLUGIN_PATH";

/// True for the platform's shared library extension.
pub fn is_shared_library(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(ext, "so" | "dylib" | "dll")
}

/// The default plugin locations for an executable: `<exe dir>/plugins`,
/// `<exe dir>/../lib/stylegraph/plugins`, and the executable's own directory (where `cargo build`
/// puts the workspace's plugins), of which only files named `*stylegraph_plugin_*` are taken.
pub fn default_plugin_dirs(exe: &Path) -> Vec<(PathBuf, bool)> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    vec![
        (dir.join("plugins"), false),
        (dir.join("../lib/stylegraph/plugins"), false),
        (dir.to_path_buf(), true),
    ]
}

impl PluginHost {
    pub fn new() -> PluginHost {
        PluginHost::default()
    }

    /// Finds and loads plugins from, in order: `dirs` (e.g. `--plugins`), the directories in
    /// `STYLEGRAPH_PLUGIN_PATH` (when `use_env`), and the default locations next to the running
    /// executable (when `use_defaults`, see [`default_plugin_dirs`]). Explicit and environment
    /// directories that cannot be read are reported in [`PluginHost::problems`]; a missing
    /// default location is not a problem. The first plugin with a given id wins; later ones are
    /// refused with a reason.
    pub fn discover(dirs: &[PathBuf], use_env: bool, use_defaults: bool) -> PluginHost {
        let mut host = PluginHost::new();
        for d in dirs {
            if d.is_file() {
                let _ = host.load_file(d);
            } else {
                host.load_dir(d, true, false);
            }
        }
        if use_env {
            if let Some(paths) = std::env::var_os(PLUGIN_PATH_ENV) {
                for d in std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
                    host.load_dir(&d, true, false);
                }
            }
        }
        if use_defaults {
            if let Ok(exe) = std::env::current_exe() {
                for (d, stylegraph_only) in default_plugin_dirs(&exe) {
                    host.load_dir(&d, false, stylegraph_only);
                }
            }
        }
        host
    }

    /// Every node type, by id.
    pub fn node_types(&self) -> &BTreeMap<String, NodeTypeInfo> {
        &self.types
    }

    /// A node type by id.
    pub fn node_type(&self, id: &str) -> Option<&NodeTypeInfo> {
        self.types.get(id)
    }

    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// Plugins that were refused, with reasons.
    pub fn problems(&self) -> &[PluginLoadError] {
        &self.problems
    }

    /// Loads every shared library in `dir`. With `stylegraph_only`, only files whose name
    /// contains `stylegraph_plugin_` are considered. A missing or unreadable directory is recorded
    /// as a problem (when `required`) and skipped.
    pub fn load_dir(&mut self, dir: &Path, required: bool, stylegraph_only: bool) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                if required {
                    self.problems.push(PluginLoadError::Directory {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    });
                }
                return;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_shared_library(p))
            .filter(|p| {
                !stylegraph_only
                    || p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.contains("stylegraph_plugin_"))
            })
            .collect();
        files.sort();
        for f in files {
            let _ = self.load_file(&f);
        }
    }

    /// Loads one plugin library. On failure the reason is recorded in [`PluginHost::problems`]
    /// and returned.
    pub fn load_file(&mut self, path: &Path) -> Result<(), PluginLoadError> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.loaded_paths.contains(&canonical) {
            return Ok(());
        }
        let result = self.load_file_inner(path);
        match &result {
            Ok(()) => self.loaded_paths.push(canonical),
            Err(e) => {
                tracing::warn!("{e}");
                self.problems.push(e.clone());
            }
        }
        result
    }

    fn load_file_inner(&mut self, path: &Path) -> Result<(), PluginLoadError> {
        let shown = path.display().to_string();
        // SAFETY: loading a library runs its initialisers; that is inherent to native plugins.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
            PluginLoadError::NotALibrary {
                path: shown.clone(),
                reason: e.to_string(),
            }
        })?;
        // Never unloaded (see the module docs).
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol's type is fixed by the ABI.
        let entry_fn: SgPluginEntryFn = unsafe {
            lib.get::<SgPluginEntryFn>(SG_ENTRY_SYMBOL.as_bytes())
                .map(|s| *s)
                .map_err(|_| PluginLoadError::NoEntry {
                    path: shown.clone(),
                })?
        };
        self.register_entry(entry_fn, path)
    }

    /// Registers a plugin from its entry function: for libraries already loaded, and for tests
    /// and embedders that link a plugin statically.
    pub fn register_entry(
        &mut self,
        entry_fn: SgPluginEntryFn,
        path: &Path,
    ) -> Result<(), PluginLoadError> {
        let shown = path.display().to_string();
        let invalid = |reason: String| PluginLoadError::Invalid {
            path: shown.clone(),
            reason,
        };
        // SAFETY: calling the entry point is the ABI contract.
        let ptr = unsafe { entry_fn() };
        if ptr.is_null() {
            return Err(invalid("the entry point returned NULL".into()));
        }
        // The first three fields (abi_major, abi_minor, struct_size) are frozen for all ABI
        // versions; read them before trusting anything else.
        // SAFETY: every ABI version starts with these three u32 fields.
        let (major, minor, size) = unsafe {
            let p = ptr as *const u32;
            (*p, *p.add(1), *p.add(2))
        };
        if major != SG_ABI_MAJOR {
            return Err(PluginLoadError::AbiMismatch {
                path: shown,
                major,
                minor,
                host_major: SG_ABI_MAJOR,
                host_minor: SG_ABI_MINOR,
            });
        }
        let needed = std::mem::size_of::<SgPlugin>() as u32;
        let same_or_newer_minor = minor >= SG_ABI_MINOR;
        if size < needed && same_or_newer_minor {
            return Err(invalid(format!(
                "struct_size {size} is smaller than the {needed} bytes of ABI {major}.{minor}"
            )));
        }
        // SAFETY: `size` bytes are readable per the ABI; read_versioned zero-fills the rest.
        let entry: SgPlugin = unsafe { read_versioned(ptr, size) };
        let (Some(describe), Some(_), Some(_), Some(_)) =
            (entry.describe, entry.create, entry.destroy, entry.execute)
        else {
            return Err(invalid(
                "describe, create, destroy and execute must all be set".into(),
            ));
        };
        // SAFETY: plugin strings are static UTF-8 (checked).
        let id = unsafe { entry.plugin_id.as_str() }
            .map_err(|_| invalid("plugin id is not UTF-8".into()))?
            .to_owned();
        if id.is_empty() {
            return Err(invalid("plugin id is empty".into()));
        }
        if let Some(other) = self.plugins.iter().find(|p| p.id == id) {
            // The same library found twice (e.g. a build directory and its `deps` copy) is not a
            // problem worth reporting; a different plugin claiming the same id is.
            // SAFETY: as below, plugin strings are static.
            let same_version = other.version == unsafe { entry.plugin_version.to_string_lossy() };
            if same_version && other.path.file_name() == path.file_name() {
                tracing::debug!(
                    "{shown}: plugin {id:?} already loaded from {}",
                    other.path.display()
                );
                return Ok(());
            }
            return Err(PluginLoadError::DuplicatePlugin {
                path: shown,
                plugin_id: id,
                other: other.path.display().to_string(),
            });
        }
        // SAFETY: as above.
        let version = unsafe { entry.plugin_version.to_string_lossy() };
        let description = unsafe { entry.description.to_string_lossy() };
        if entry.node_count > 100_000 {
            return Err(invalid(format!(
                "implausible node count {}",
                entry.node_count
            )));
        }
        let plugin = Arc::new(LoadedPlugin {
            id,
            version,
            description,
            path: path.to_path_buf(),
            abi_minor: minor,
            entry,
        });
        let mut infos = Vec::with_capacity(entry.node_count);
        for index in 0..entry.node_count {
            // SAFETY: ABI contract.
            let d = unsafe { describe(index) };
            if d.is_null() {
                return Err(invalid(format!("describe({index}) returned NULL")));
            }
            // SAFETY: descriptor is static; size per its struct_size.
            let desc: SgNodeDesc = unsafe { read_versioned(d, (*d).struct_size) };
            let info = unsafe { node_info(&desc, &plugin, index) }
                .map_err(|r| invalid(format!("node {index}: {r}")))?;
            infos.push(info);
        }
        let mut seen = std::collections::HashSet::new();
        for info in &infos {
            if !seen.insert(info.type_id.clone()) {
                return Err(invalid(format!(
                    "node type {:?} is declared twice",
                    info.type_id
                )));
            }
            if let Some(other) = self.types.get(&info.type_id) {
                return Err(PluginLoadError::DuplicateNodeType {
                    path: shown,
                    type_id: info.type_id.clone(),
                    other: other.plugin.path.display().to_string(),
                });
            }
        }
        tracing::debug!(
            "loaded plugin {} {} from {} ({} node types)",
            plugin.id,
            plugin.version,
            shown,
            infos.len()
        );
        for info in infos {
            self.types.insert(info.type_id.clone(), info);
        }
        self.plugins.push(plugin);
        Ok(())
    }
}

unsafe fn text(s: SgStr, what: &str) -> Result<String, String> {
    if s.len > (1 << 24) {
        return Err(format!("{what} is implausibly long"));
    }
    s.as_str()
        .map(str::to_owned)
        .map_err(|_| format!("{what} is not UTF-8"))
}

unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || len > 10_000 {
        return Err(format!("{what}: bad array ({len} entries)"));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Reads port descriptors. `streams`: the plugin's ABI minor knows `SG_PORT_STREAM` (a plugin
/// of ABI 1.0 may have left any bit set; its ports are never streamed).
unsafe fn ports(
    ptr: *const SgPortDesc,
    len: usize,
    what: &str,
    streams: bool,
) -> Result<Vec<PortInfo>, String> {
    let mut out: Vec<PortInfo> = Vec::new();
    for p in slice(ptr, len, what)? {
        let name = text(p.name, "port name")?;
        if name.is_empty() || out.iter().any(|q| q.name == name) {
            return Err(format!("{what}: empty or duplicate port name {name:?}"));
        }
        let type_name = text(p.type_name, "port type")?;
        let port_type = PortType::parse(&type_name).map_err(|e| format!("{what} {name:?}: {e}"))?;
        let stream = streams && p.flags & SG_PORT_STREAM != 0;
        if stream && !(port_type.is_tensor() || port_type == PortType::Any) {
            return Err(format!(
                "{what} {name:?}: a stream port carries chunks of a tensor, but its type is {port_type}"
            ));
        }
        out.push(PortInfo {
            port_type,
            name,
            doc: text(p.doc, "port doc")?,
            optional: p.flags & SG_PORT_OPTIONAL != 0,
            stream,
        });
    }
    Ok(out)
}

unsafe fn node_info(
    d: &SgNodeDesc,
    plugin: &Arc<LoadedPlugin>,
    index: usize,
) -> Result<NodeTypeInfo, String> {
    let type_id = text(d.type_id, "type id")?;
    if type_id.is_empty() || type_id.contains(char::is_whitespace) {
        return Err(format!("invalid type id {type_id:?}"));
    }
    let mut params = Vec::new();
    for p in slice(d.params, d.param_count, "params")? {
        let name = text(p.name, "param name")?;
        let kind = match p.kind {
            SG_PARAM_BOOL => ParamKind::Bool,
            SG_PARAM_INT => ParamKind::Int,
            SG_PARAM_FLOAT => ParamKind::Float,
            SG_PARAM_STRING => ParamKind::String,
            SG_PARAM_PATH => ParamKind::Path,
            SG_PARAM_ENUM => ParamKind::Enum,
            k => return Err(format!("param {name:?} has unknown kind {k}")),
        };
        let dv = &p.default_value;
        let default = match (kind, dv.kind) {
            (ParamKind::Bool, SG_VALUE_BOOL | SG_VALUE_INT) => ParamValue::Bool(dv.i != 0),
            (ParamKind::Int, SG_VALUE_INT) => ParamValue::Int(dv.i),
            (ParamKind::Float, SG_VALUE_FLOAT) => ParamValue::Float(dv.f),
            (ParamKind::Float, SG_VALUE_INT) => ParamValue::Float(dv.i as f64),
            (ParamKind::String | ParamKind::Path | ParamKind::Enum, SG_VALUE_STRING) => {
                ParamValue::Str(text(dv.s, "default")?)
            }
            _ => return Err(format!("param {name:?}: default value of the wrong kind")),
        };
        let choices = slice(p.choices, p.choice_count, "choices")?
            .iter()
            .map(|c| text(*c, "choice"))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == ParamKind::Enum {
            if choices.is_empty() {
                return Err(format!("enum param {name:?} has no choices"));
            }
            if let ParamValue::Str(s) = &default {
                if !choices.contains(s) {
                    return Err(format!(
                        "enum param {name:?}: default {s:?} is not a choice"
                    ));
                }
            }
        }
        params.push(ParamInfo {
            kind,
            doc: text(p.doc, "param doc")?,
            default,
            min: (p.flags & SG_PARAM_HAS_MIN != 0).then_some(p.min),
            max: (p.flags & SG_PARAM_HAS_MAX != 0).then_some(p.max),
            step: p.step,
            choices,
            is_seed: p.flags & SG_PARAM_SEED != 0,
            is_output_path: p.flags & SG_PARAM_OUTPUT_PATH != 0,
            log_scale: p.flags & SG_PARAM_LOG_SCALE != 0,
            is_color: p.flags & SG_PARAM_COLOR != 0,
            name,
        });
    }
    let streams = plugin.abi_minor >= 1;
    let inputs = ports(d.inputs, d.input_count, "input", streams)?;
    let outputs = ports(d.outputs, d.output_count, "output", streams)?;
    if outputs.iter().filter(|p| p.stream).count() > 1 {
        return Err("a node may have one stream output only".into());
    }
    Ok(NodeTypeInfo {
        display_name: text(d.display_name, "display name")?,
        category: text(d.category, "category")?,
        doc: text(d.doc, "doc")?,
        inputs,
        outputs,
        params,
        deterministic: d.flags & SG_NODE_NONDETERMINISTIC == 0,
        side_effect: d.flags & SG_NODE_SIDE_EFFECT != 0,
        plugin_id: plugin.id.clone(),
        plugin_version: plugin.version.clone(),
        plugin: plugin.clone(),
        index,
        type_id,
    })
}
