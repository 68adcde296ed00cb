//! The edited graph: the nodes and wires on the canvas (an [`egui_snarl::Snarl`]) together with
//! what a RON graph file needs and the canvas cannot show, plus undo/redo and the saved state.
//!
//! The file is the source of truth for round trips: [`Document::from_graph`] followed by
//! [`Document::to_graph`] gives back the same [`Graph`], node order, params, connections and
//! positions included. Things the loaded plugins cannot explain survive too: a node of an unknown
//! type keeps its params and connections (its ports are inferred from the file), and a
//! connection to a missing node or port is kept as written.

use egui::Pos2;
use egui_snarl::{InPinId, NodeId, OutPinId, Snarl};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use stylegraph_core::graph::{Graph, GraphFileError, NodeDef, ParamValue, PortRef};
use stylegraph_core::plugin::{NodeTypeInfo, ParamInfo, PluginHost, PortInfo};
use stylegraph_core::types::PortType;

/// How many undo steps are kept.
const UNDO_LIMIT: usize = 256;

/// Horizontal and vertical spacing of the automatic layout, in canvas points.
const LAYOUT_DX: f32 = 280.0;
const LAYOUT_DY: f32 = 220.0;

/// One node on the canvas.
#[derive(Clone, Debug)]
pub struct EdNode {
    /// The graph's node id (unique, `[A-Za-z0-9_-]+`).
    pub id: String,
    /// Node type id, e.g. `core.seed_to_z`.
    pub type_id: String,
    /// Params set explicitly; the others take their defaults.
    pub params: BTreeMap<String, ParamValue>,
    /// Input ports as shown (from the node type, or inferred from the file for an unknown type).
    pub inputs: Vec<PortInfo>,
    /// Output ports as shown.
    pub outputs: Vec<PortInfo>,
    /// True when a loaded plugin provides the type.
    pub known: bool,
    /// Connections that cannot be drawn as wires (missing node or port), kept as written.
    pub unresolved: BTreeMap<String, String>,
    /// Order of the node in the file; new nodes go last.
    pub seq: u64,
}

impl EdNode {
    /// The value a param has on this node: the explicit one or the descriptor's default.
    pub fn param_value<'a>(&'a self, info: &'a ParamInfo) -> &'a ParamValue {
        self.params.get(&info.name).unwrap_or(&info.default)
    }
}

/// A node's type as the canvas needs it: ports and params from the plugin, or inferred.
fn ports_of(info: Option<&NodeTypeInfo>) -> (Vec<PortInfo>, Vec<PortInfo>) {
    match info {
        Some(i) => (i.inputs.clone(), i.outputs.clone()),
        None => (Vec::new(), Vec::new()),
    }
}

fn inferred_port(name: &str) -> PortInfo {
    PortInfo {
        name: name.to_owned(),
        port_type: PortType::Any,
        doc: "(port of a node type that is not loaded)".to_owned(),
        optional: true,
        stream: false,
    }
}

/// The undo history: snapshots of the whole graph (graphs are small; snapshots are simple and
/// cannot get out of step with the canvas).
#[derive(Default)]
struct History {
    undo: Vec<Graph>,
    redo: Vec<Graph>,
    committed: Graph,
}

/// The graph being edited, with its file and history.
pub struct Document {
    /// Nodes and wires on the canvas.
    pub snarl: Snarl<EdNode>,
    /// The graph's description (kept as loaded).
    pub description: String,
    /// Format version of the loaded file (written back unchanged).
    pub version: u32,
    /// Where the graph was loaded from or last saved to.
    pub path: Option<PathBuf>,
    next_seq: u64,
    /// Canvas positions chosen by the editor for nodes whose file gave none; such a node is saved
    /// without a position unless it was moved.
    auto_positions: HashMap<String, Pos2>,
    history: History,
    saved: Graph,
}

impl Default for Document {
    fn default() -> Self {
        Document::new()
    }
}

impl Document {
    /// An empty, unsaved graph.
    pub fn new() -> Document {
        Document {
            snarl: Snarl::new(),
            description: String::new(),
            version: stylegraph_core::graph::GRAPH_FORMAT_VERSION,
            path: None,
            next_seq: 0,
            auto_positions: HashMap::new(),
            history: History::default(),
            saved: Graph::new(),
        }
    }

    /// A document showing `graph` (which counts as saved, at `path` if given).
    pub fn from_graph(graph: &Graph, host: &PluginHost, path: Option<PathBuf>) -> Document {
        let mut doc = Document::new();
        doc.path = path;
        doc.rebuild(graph, host);
        doc.history.committed = doc.to_graph();
        doc.saved = doc.history.committed.clone();
        doc
    }

    /// Loads a graph file.
    pub fn open(path: &Path, host: &PluginHost) -> Result<Document, GraphFileError> {
        let graph = Graph::load(path)?;
        Ok(Document::from_graph(&graph, host, Some(path.to_path_buf())))
    }

    /// Replaces the canvas with `graph`.
    fn rebuild(&mut self, graph: &Graph, host: &PluginHost) {
        self.snarl = Snarl::new();
        self.description = graph.description.clone();
        self.version = graph.version;
        // Ports referenced on nodes whose type is unknown, so that their wires can be drawn.
        let mut referenced_outputs: HashMap<&str, Vec<&str>> = HashMap::new();
        for n in &graph.nodes {
            for src in n.inputs.values() {
                if let Some(r) = src.rsplit_once('.') {
                    let list = referenced_outputs.entry(r.0).or_default();
                    if !list.contains(&r.1) {
                        list.push(r.1);
                    }
                }
            }
        }
        let layout = auto_layout(graph);
        let mut ids: HashMap<&str, NodeId> = HashMap::new();
        let mut placed: Vec<(NodeId, &NodeDef)> = Vec::with_capacity(graph.nodes.len());
        for (seq, n) in graph.nodes.iter().enumerate() {
            let info = host.node_type(&n.node_type);
            let (mut inputs, mut outputs) = ports_of(info);
            if info.is_none() {
                inputs = n.inputs.keys().map(|k| inferred_port(k)).collect();
                outputs = referenced_outputs
                    .get(n.id.as_str())
                    .map(|ports| ports.iter().map(|p| inferred_port(p)).collect())
                    .unwrap_or_default();
            }
            let pos = match n.position {
                Some((x, y)) => Pos2::new(x, y),
                None => {
                    let p = self
                        .auto_positions
                        .get(&n.id)
                        .copied()
                        .or_else(|| layout.get(n.id.as_str()).copied())
                        .unwrap_or(Pos2::ZERO);
                    self.auto_positions.insert(n.id.clone(), p);
                    p
                }
            };
            let node = EdNode {
                id: n.id.clone(),
                type_id: n.node_type.clone(),
                params: n.params.clone(),
                inputs,
                outputs,
                known: info.is_some(),
                unresolved: BTreeMap::new(),
                seq: seq as u64,
            };
            let nid = self.snarl.insert_node(pos, node);
            ids.entry(n.id.as_str()).or_insert(nid);
            placed.push((nid, n));
        }
        self.next_seq = graph.nodes.len() as u64;
        // Wires, in a second pass once every node exists.
        for (nid, n) in placed {
            for (port, src) in &n.inputs {
                let wire = (|| {
                    let r = PortRef::parse(src)?;
                    let from_node = *ids.get(r.node.as_str())?;
                    let from_idx = self.snarl[from_node]
                        .outputs
                        .iter()
                        .position(|p| p.name == r.port)?;
                    let to_idx = self.snarl[nid]
                        .inputs
                        .iter()
                        .position(|p| &p.name == port)?;
                    Some((
                        OutPinId {
                            node: from_node,
                            output: from_idx,
                        },
                        InPinId {
                            node: nid,
                            input: to_idx,
                        },
                    ))
                })();
                match wire {
                    Some((from, to)) => {
                        self.snarl.connect(from, to);
                    }
                    None => {
                        self.snarl[nid].unresolved.insert(port.clone(), src.clone());
                    }
                }
            }
        }
    }

    /// The graph as it would be saved.
    pub fn to_graph(&self) -> Graph {
        let mut incoming: HashMap<NodeId, BTreeMap<String, String>> = HashMap::new();
        let mut wires: Vec<(OutPinId, InPinId)> = self.snarl.wires().collect();
        // Deterministic choice should an input ever hold two wires.
        wires.sort();
        for (from, to) in wires {
            let (Some(src), Some(dst)) =
                (self.snarl.get_node(from.node), self.snarl.get_node(to.node))
            else {
                continue;
            };
            let (Some(out), Some(inp)) = (src.outputs.get(from.output), dst.inputs.get(to.input))
            else {
                continue;
            };
            incoming
                .entry(to.node)
                .or_default()
                .entry(inp.name.clone())
                .or_insert_with(|| format!("{}.{}", src.id, out.name));
        }
        let mut nodes: Vec<(u64, NodeDef)> = self
            .snarl
            .nodes_pos_ids()
            .map(|(nid, pos, n)| {
                let mut inputs = n.unresolved.clone();
                if let Some(wired) = incoming.remove(&nid) {
                    inputs.extend(wired);
                }
                let position = match self.auto_positions.get(&n.id) {
                    Some(auto) if *auto == pos => None,
                    _ => Some((pos.x, pos.y)),
                };
                (
                    n.seq,
                    NodeDef {
                        id: n.id.clone(),
                        node_type: n.type_id.clone(),
                        params: n.params.clone(),
                        inputs,
                        position,
                    },
                )
            })
            .collect();
        nodes.sort_by_key(|(seq, _)| *seq);
        Graph {
            version: self.version,
            description: self.description.clone(),
            nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        }
    }

    /// Writes the graph to its file. Fails without a path.
    pub fn save(&mut self) -> Result<PathBuf, GraphFileError> {
        let path = self.path.clone().ok_or_else(|| GraphFileError::Io {
            path: "<untitled>".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the graph has no file yet"),
        })?;
        self.save_as(&path)?;
        Ok(path)
    }

    /// Writes the graph to `path` (atomically) and makes it the document's file.
    pub fn save_as(&mut self, path: &Path) -> Result<(), GraphFileError> {
        self.commit();
        let graph = self.history.committed.clone();
        graph.save(path)?;
        self.saved = graph;
        self.path = Some(path.to_path_buf());
        Ok(())
    }

    /// True when the graph differs from its file (or, for a new graph, from empty).
    pub fn is_dirty(&self) -> bool {
        self.history.committed != self.saved
    }

    /// The file name for titles: the file's name, or `untitled`.
    pub fn title(&self) -> String {
        self.path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "untitled".to_owned())
    }

    /// Records the current state as an undo step if it changed since the last one. The app
    /// calls this once a gesture has ended (no pointer button held, no text field focused), so a
    /// drag or a typed word is one step. Returns true if a step was recorded.
    pub fn commit(&mut self) -> bool {
        let now = self.to_graph();
        if now == self.history.committed {
            return false;
        }
        let before = std::mem::replace(&mut self.history.committed, now);
        self.history.undo.push(before);
        if self.history.undo.len() > UNDO_LIMIT {
            self.history.undo.remove(0);
        }
        self.history.redo.clear();
        true
    }

    /// The last committed graph.
    pub fn committed(&self) -> &Graph {
        &self.history.committed
    }

    pub fn can_undo(&self) -> bool {
        !self.history.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.history.redo.is_empty()
    }

    /// Goes back one step. Uncommitted changes are committed first, so they are what is undone.
    pub fn undo(&mut self, host: &PluginHost) -> bool {
        self.commit();
        let Some(prev) = self.history.undo.pop() else {
            return false;
        };
        let cur = std::mem::replace(&mut self.history.committed, prev);
        self.history.redo.push(cur);
        let g = self.history.committed.clone();
        self.rebuild(&g, host);
        true
    }

    /// Re-applies an undone step.
    pub fn redo(&mut self, host: &PluginHost) -> bool {
        self.commit();
        let Some(next) = self.history.redo.pop() else {
            return false;
        };
        let cur = std::mem::replace(&mut self.history.committed, next);
        self.history.undo.push(cur);
        let g = self.history.committed.clone();
        self.rebuild(&g, host);
        true
    }

    /// The canvas node with a graph id.
    pub fn find(&self, id: &str) -> Option<NodeId> {
        self.snarl
            .node_ids()
            .find(|(_, n)| n.id == id)
            .map(|(nid, _)| nid)
    }

    /// The node with a graph id.
    pub fn node(&self, id: &str) -> Option<&EdNode> {
        self.find(id).and_then(|nid| self.snarl.get_node(nid))
    }

    /// The node with a graph id, mutable.
    pub fn node_mut(&mut self, id: &str) -> Option<&mut EdNode> {
        let nid = self.find(id)?;
        self.snarl.get_node_mut(nid)
    }

    /// A fresh node id for a node of type `type_id`: the part after the plugin prefix, numbered.
    pub fn fresh_id(&self, type_id: &str) -> String {
        let base: String = type_id
            .rsplit('.')
            .next()
            .unwrap_or(type_id)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = if base.is_empty() {
            "node".to_owned()
        } else {
            base
        };
        let taken: HashSet<&str> = self.snarl.nodes().map(|n| n.id.as_str()).collect();
        if !taken.contains(base.as_str()) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|c| !taken.contains(c.as_str()))
            .unwrap_or(base)
    }

    /// Adds a node of a loaded type at `pos`, with default params.
    pub fn add_node(&mut self, info: &NodeTypeInfo, pos: Pos2) -> NodeId {
        let node = EdNode {
            id: self.fresh_id(&info.type_id),
            type_id: info.type_id.clone(),
            params: BTreeMap::new(),
            inputs: info.inputs.clone(),
            outputs: info.outputs.clone(),
            known: true,
            unresolved: BTreeMap::new(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.snarl.insert_node(pos, node)
    }

    /// Removes nodes (and their wires).
    pub fn remove_nodes(&mut self, nodes: &[NodeId]) {
        for &nid in nodes {
            if self.snarl.get_node(nid).is_some() {
                let n = self.snarl.remove_node(nid);
                self.auto_positions.remove(&n.id);
            }
        }
    }

    /// Copies nodes with their params and incoming wires (a variant fed by the same inputs),
    /// offset on the canvas. Wires between copied nodes connect the copies. Returns the copies.
    pub fn duplicate(&mut self, nodes: &[NodeId]) -> Vec<NodeId> {
        let offset = egui::vec2(40.0, 40.0);
        let mut map: HashMap<NodeId, NodeId> = HashMap::new();
        for &nid in nodes {
            let Some(info) = self.snarl.get_node_info(nid) else {
                continue;
            };
            let pos = info.pos + offset;
            let mut copy = info.value.clone();
            copy.id = self.fresh_id(&copy.type_id);
            copy.seq = self.next_seq;
            self.next_seq += 1;
            let new = self.snarl.insert_node(pos, copy);
            map.insert(nid, new);
        }
        let wires: Vec<(OutPinId, InPinId)> = self.snarl.wires().collect();
        for (from, to) in wires {
            let Some(&new_to) = map.get(&to.node) else {
                continue;
            };
            let src = map.get(&from.node).copied().unwrap_or(from.node);
            self.snarl.connect(
                OutPinId {
                    node: src,
                    output: from.output,
                },
                InPinId {
                    node: new_to,
                    input: to.input,
                },
            );
        }
        nodes.iter().filter_map(|n| map.get(n).copied()).collect()
    }

    /// Renames a node; wires follow (they are stored by canvas node, not by name).
    pub fn rename(&mut self, nid: NodeId, new_id: &str) -> Result<(), String> {
        if new_id.is_empty()
            || !new_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err("a node id uses only letters, digits, '_' and '-'".into());
        }
        if self
            .snarl
            .node_ids()
            .any(|(other, n)| other != nid && n.id == new_id)
        {
            return Err(format!("another node is already called {new_id:?}"));
        }
        let node = self
            .snarl
            .get_node_mut(nid)
            .ok_or_else(|| "no such node".to_owned())?;
        let old = std::mem::replace(&mut node.id, new_id.to_owned());
        if let Some(p) = self.auto_positions.remove(&old) {
            self.auto_positions.insert(new_id.to_owned(), p);
        }
        Ok(())
    }

    /// Sets a param of a node.
    pub fn set_param(&mut self, id: &str, param: &str, value: ParamValue) -> bool {
        match self.node_mut(id) {
            Some(n) => {
                n.params.insert(param.to_owned(), value);
                true
            }
            None => false,
        }
    }

    /// Connects two pins if their types allow it and no cycle results; an input holds one wire,
    /// so an existing one is replaced. Returns why not otherwise.
    pub fn try_connect(&mut self, from: OutPinId, to: InPinId) -> Result<(), String> {
        connect_checked(&mut self.snarl, from, to)
    }
}

/// Why `from` cannot feed `to`, or `None` if it can.
pub fn connection_problem(snarl: &Snarl<EdNode>, from: OutPinId, to: InPinId) -> Option<String> {
    let (Some(src), Some(dst)) = (snarl.get_node(from.node), snarl.get_node(to.node)) else {
        return Some("the node no longer exists".into());
    };
    let (Some(out), Some(inp)) = (src.outputs.get(from.output), dst.inputs.get(to.input)) else {
        return Some("the port no longer exists".into());
    };
    if !inp.port_type.accepts(&out.port_type) {
        return Some(format!(
            "input {}.{} expects {}, but output {}.{} gives {}",
            dst.id, inp.name, inp.port_type, src.id, out.name, out.port_type
        ));
    }
    if from.node == to.node || reaches(snarl, to.node, from.node) {
        return Some(format!(
            "connecting {}.{} to {}.{} would make a cycle",
            src.id, out.name, dst.id, inp.name
        ));
    }
    None
}

/// True if `target` is downstream of (or is) `start`.
fn reaches(snarl: &Snarl<EdNode>, start: NodeId, target: NodeId) -> bool {
    let mut out: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (from, to) in snarl.wires() {
        out.entry(from.node).or_default().push(to.node);
    }
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        if n == target {
            return true;
        }
        if seen.insert(n) {
            stack.extend(out.get(&n).into_iter().flatten().copied());
        }
    }
    false
}

/// Connects after [`connection_problem`]; replaces any wire already on the input.
pub fn connect_checked(
    snarl: &mut Snarl<EdNode>,
    from: OutPinId,
    to: InPinId,
) -> Result<(), String> {
    if let Some(p) = connection_problem(snarl, from, to) {
        return Err(p);
    }
    snarl.drop_inputs(to);
    if let Some(n) = snarl.get_node_mut(to.node) {
        if let Some(port) = n.inputs.get(to.input) {
            let name = port.name.clone();
            n.unresolved.remove(&name);
        }
    }
    snarl.connect(from, to);
    Ok(())
}

/// Positions for nodes without one: columns by depth (longest path from a source), rows in file
/// order.
fn auto_layout(graph: &Graph) -> HashMap<&str, Pos2> {
    let index: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut depth = vec![0usize; graph.nodes.len()];
    // Longest-path relaxation; bounded so that a cycle in a broken file cannot loop forever.
    for _ in 0..graph.nodes.len() {
        let mut changed = false;
        for (i, n) in graph.nodes.iter().enumerate() {
            for src in n.inputs.values() {
                if let Some(&s) = PortRef::parse(src).and_then(|r| index.get(r.node.as_str())) {
                    if depth[s] + 1 > depth[i] {
                        depth[i] = depth[s] + 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut out = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let row = rows.entry(depth[i]).or_insert(0);
        out.insert(
            n.id.as_str(),
            Pos2::new(depth[i] as f32 * LAYOUT_DX, *row as f32 * LAYOUT_DY),
        );
        *row += 1;
    }
    out
}
