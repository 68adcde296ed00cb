//! The graph model and its RON file format (see `docs/graph-format.md`).
//!
//! A graph file is what the editor saves and the headless runner executes, unchanged: nodes with
//! an id, a type, params, input connections (`"other_node.port"`) and an optional editor
//! position. Maps are ordered (`BTreeMap`), so saving is deterministic and a load -> save -> load
//! round trip is lossless.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The graph format version this build reads and writes.
pub const GRAPH_FORMAT_VERSION: u32 = 1;

/// A node graph, as stored in a `.ron` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Format version of the file (`GRAPH_FORMAT_VERSION`).
    pub version: u32,
    /// Optional human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The nodes, in the order they were written (order has no meaning for execution).
    pub nodes: Vec<NodeDef>,
}

/// One node of a graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Unique id within the graph: letters, digits, `_` and `-`.
    pub id: String,
    /// Node type id, e.g. `core.seed_to_z`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Param values; a param not listed takes its default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamValue>,
    /// Input connections: input port name -> `"source_node.output_port"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Position in the editor canvas (ignored by the runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<(f32, f32)>,
}

/// A param value in a graph file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// What kind of value this is, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "bool",
            ParamValue::Int(_) => "int",
            ParamValue::Float(_) => "float",
            ParamValue::Str(_) => "string",
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A parsed connection reference `node.port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortRef {
    pub node: String,
    pub port: String,
}

impl PortRef {
    /// Parses `node.port` (the port is after the last dot; node ids contain no dots).
    pub fn parse(s: &str) -> Option<PortRef> {
        let (node, port) = s.rsplit_once('.')?;
        if node.is_empty() || port.is_empty() || node.contains('.') {
            return None;
        }
        Some(PortRef {
            node: node.to_owned(),
            port: port.to_owned(),
        })
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// Errors reading or writing graph files.
#[derive(Debug, thiserror::Error)]
pub enum GraphFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: graph format version {found} is newer than this Stylegraph reads (up to {supported}); update Stylegraph")]
    TooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{path}: graph format version 0 is not valid (the first version is 1)")]
    BadVersion { path: String },
    #[error("cannot serialise graph: {0}")]
    Serialize(String),
}

impl Graph {
    /// An empty graph of the current format version.
    pub fn new() -> Graph {
        Graph {
            version: GRAPH_FORMAT_VERSION,
            description: String::new(),
            nodes: Vec::new(),
        }
    }

    /// Parses RON text. `origin` names the source in error messages (a path, or `<string>`).
    pub fn from_ron_str(text: &str, origin: &str) -> Result<Graph, GraphFileError> {
        let graph: Graph =
            ron::Options::default()
                .from_str(text)
                .map_err(|e| GraphFileError::Syntax {
                    path: origin.to_owned(),
                    line: e.position.line,
                    column: e.position.col,
                    message: e.code.to_string(),
                })?;
        if graph.version > GRAPH_FORMAT_VERSION {
            return Err(GraphFileError::TooNew {
                path: origin.to_owned(),
                found: graph.version,
                supported: GRAPH_FORMAT_VERSION,
            });
        }
        if graph.version == 0 {
            return Err(GraphFileError::BadVersion {
                path: origin.to_owned(),
            });
        }
        Ok(graph)
    }

    /// Reads a graph file.
    pub fn load(path: &Path) -> Result<Graph, GraphFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| GraphFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Graph::from_ron_str(&text, &path.display().to_string())
    }

    /// Serialises to pretty RON.
    pub fn to_ron_string(&self) -> Result<String, GraphFileError> {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(false)
            .indentor("    ".to_owned())
            .separate_tuple_members(false);
        let mut s = ron::Options::default()
            .to_string_pretty(self, config)
            .map_err(|e| GraphFileError::Serialize(e.to_string()))?;
        s.push('\n');
        Ok(s)
    }

    /// Writes the graph atomically (temporary file + rename): an existing file is never left
    /// half-written.
    pub fn save(&self, path: &Path) -> Result<(), GraphFileError> {
        let text = self.to_ron_string()?;
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| GraphFileError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&NodeDef> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The node with this id, mutable.
    pub fn node_mut(&mut self, id: &str) -> Option<&mut NodeDef> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

/// Parses a value given on the command line (`--set node.param=value`): `true`/`false`, an
/// integer, a float, or else a string (surrounding quotes are removed).
pub fn parse_cli_value(raw: &str) -> ParamValue {
    let t = raw.trim();
    if t == "true" {
        return ParamValue::Bool(true);
    }
    if t == "false" {
        return ParamValue::Bool(false);
    }
    if let Ok(i) = t.parse::<i64>() {
        return ParamValue::Int(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if t.chars().any(|c| c.is_ascii_digit()) {
            return ParamValue::Float(f);
        }
    }
    let unquoted = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    ParamValue::Str(unquoted.to_owned())
}
