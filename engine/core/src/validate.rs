//! Graph validation: every problem at once, each naming the node and port or param.

use crate::graph::{Graph, ParamValue, PortRef};
use crate::plugin::{NodeTypeInfo, ParamKind, PluginHost};
use crate::stream::{StreamNode, StreamProblem};
use crate::types::PortType;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use std::collections::HashMap;

/// One problem found in a graph.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ValidationError {
    #[error("node {node:?}: id must be non-empty and use only letters, digits, '_' and '-'")]
    InvalidNodeId { node: String },
    #[error("node {node:?}: the id is used by more than one node")]
    DuplicateNodeId { node: String },
    #[error(
        "node {node:?}: unknown node type {node_type:?}{}",
        suggest(suggestion)
    )]
    UnknownNodeType {
        node: String,
        node_type: String,
        suggestion: Option<String>,
    },
    #[error("node {node:?}: required input {port:?} ({port_type}) is not connected")]
    MissingInput {
        node: String,
        port: String,
        port_type: String,
    },
    #[error("node {node:?}: has no input {port:?}{}", suggest(suggestion))]
    UnknownInput {
        node: String,
        port: String,
        suggestion: Option<String>,
    },
    #[error("node {node:?}, input {port:?}: connection {from:?} is dangling: {reason}")]
    DanglingConnection {
        node: String,
        port: String,
        from: String,
        reason: String,
    },
    #[error("node {node:?}, input {port:?}: type mismatch: expects {expected}, but {from:?} gives {found}")]
    TypeMismatch {
        node: String,
        port: String,
        from: String,
        expected: String,
        found: String,
    },
    #[error("cycle through nodes {}", nodes.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(" -> "))]
    Cycle { nodes: Vec<String> },
    #[error("node {node:?}: unknown param {param:?}{}", suggest(suggestion))]
    UnknownParam {
        node: String,
        param: String,
        suggestion: Option<String>,
    },
    #[error("node {node:?}, param {param:?}: expects {expected}, got {found}")]
    ParamType {
        node: String,
        param: String,
        expected: String,
        found: String,
    },
    #[error(
        "node {node:?}, param {param:?}: {value} is out of range [{}, {}]",
        fmt_bound(min),
        fmt_bound(max)
    )]
    ParamRange {
        node: String,
        param: String,
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[error("node {node:?}, param {param:?}: {value:?} is not one of {}", choices.join(", "))]
    ParamChoice {
        node: String,
        param: String,
        value: String,
        choices: Vec<String>,
    },
    #[error("node {node:?} is fed by two streams, from {first:?} and from {second:?}: a node can run inside one stream only")]
    TwoStreams {
        node: String,
        first: String,
        second: String,
    },
    #[error("node {node:?} starts a stream inside the stream of {outer:?}: streams cannot be nested (give it its input from outside that stream)")]
    NestedStream { node: String, outer: String },
    #[error("node {node:?} runs once per chunk of the stream of {producer:?} but also needs the output of {consumer:?}, which is complete only when that stream has ended")]
    StreamAfterEnd {
        node: String,
        producer: String,
        consumer: String,
    },
}

fn suggest(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    }
}

fn fmt_bound(b: &Option<f64>) -> String {
    b.map_or_else(|| "..".to_owned(), |v| v.to_string())
}

impl ValidationError {
    /// The node the problem is on (the first node for a cycle).
    pub fn node(&self) -> Option<&str> {
        use ValidationError::*;
        match self {
            InvalidNodeId { node }
            | DuplicateNodeId { node }
            | UnknownNodeType { node, .. }
            | MissingInput { node, .. }
            | UnknownInput { node, .. }
            | DanglingConnection { node, .. }
            | TypeMismatch { node, .. }
            | UnknownParam { node, .. }
            | ParamType { node, .. }
            | ParamRange { node, .. }
            | ParamChoice { node, .. }
            | TwoStreams { node, .. }
            | NestedStream { node, .. }
            | StreamAfterEnd { node, .. } => Some(node),
            Cycle { nodes } => nodes.first().map(String::as_str),
        }
    }
}

/// Levenshtein edit distance (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lname = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            // A match on the part after the plugin prefix counts as close (`add` -> `core.add`).
            let tail = lc.rsplit('.').next().unwrap_or(&lc).to_owned();
            (
                edit_distance(&lname, &lc).min(edit_distance(&lname, &tail)),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a param value against its descriptor; returns the value coerced to the param's kind.
pub fn check_param(
    node: &str,
    info: &crate::plugin::ParamInfo,
    value: &ParamValue,
) -> Result<ParamValue, ValidationError> {
    let type_err = || ValidationError::ParamType {
        node: node.to_owned(),
        param: info.name.clone(),
        expected: info.kind.name().to_owned(),
        found: format!("{} {value}", value.kind_name()),
    };
    let coerced = match (info.kind, value) {
        (ParamKind::Bool, ParamValue::Bool(_)) => value.clone(),
        (ParamKind::Int, ParamValue::Int(_)) => value.clone(),
        (ParamKind::Int, ParamValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
            ParamValue::Int(*f as i64)
        }
        (ParamKind::Float, ParamValue::Float(_)) => value.clone(),
        (ParamKind::Float, ParamValue::Int(i)) => ParamValue::Float(*i as f64),
        (ParamKind::String | ParamKind::Path | ParamKind::Enum, ParamValue::Str(_)) => {
            value.clone()
        }
        _ => return Err(type_err()),
    };
    let numeric = match &coerced {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    };
    if let Some(v) = numeric {
        let below = info.min.is_some_and(|m| v < m);
        let above = info.max.is_some_and(|m| v > m);
        if below || above || v.is_nan() {
            return Err(ValidationError::ParamRange {
                node: node.to_owned(),
                param: info.name.clone(),
                value: v,
                min: info.min,
                max: info.max,
            });
        }
    }
    if info.kind == ParamKind::Enum {
        if let ParamValue::Str(s) = &coerced {
            if !info.choices.contains(s) {
                return Err(ValidationError::ParamChoice {
                    node: node.to_owned(),
                    param: info.name.clone(),
                    value: s.clone(),
                    choices: info.choices.clone(),
                });
            }
        }
    }
    Ok(coerced)
}

/// Validates `graph` against the loaded node types. Returns every problem found.
pub fn validate(graph: &Graph, host: &PluginHost) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut by_id: HashMap<&str, &crate::graph::NodeDef> = HashMap::new();
    for n in &graph.nodes {
        if !valid_id(&n.id) {
            errors.push(ValidationError::InvalidNodeId { node: n.id.clone() });
        }
        if by_id.insert(&n.id, n).is_some() {
            errors.push(ValidationError::DuplicateNodeId { node: n.id.clone() });
        }
    }
    let types: HashMap<&str, &NodeTypeInfo> = graph
        .nodes
        .iter()
        .filter_map(|n| host.node_type(&n.node_type).map(|t| (n.id.as_str(), t)))
        .collect();

    let mut dag: DiGraph<&str, ()> = DiGraph::new();
    let index: HashMap<&str, NodeIndex> = by_id.keys().map(|&id| (id, dag.add_node(id))).collect();

    for n in &graph.nodes {
        let Some(info) = host.node_type(&n.node_type) else {
            errors.push(ValidationError::UnknownNodeType {
                node: n.id.clone(),
                node_type: n.node_type.clone(),
                suggestion: closest(&n.node_type, host.node_types().keys().map(String::as_str)),
            });
            // Still check connections for dangling references.
            for (port, src) in &n.inputs {
                check_source(graph, &by_id, &types, &n.id, port, src, None, &mut errors);
            }
            continue;
        };
        // Params.
        for (name, value) in &n.params {
            match info.param(name) {
                None => errors.push(ValidationError::UnknownParam {
                    node: n.id.clone(),
                    param: name.clone(),
                    suggestion: closest(name, info.params.iter().map(|p| p.name.as_str())),
                }),
                Some(p) => {
                    if let Err(e) = check_param(&n.id, p, value) {
                        errors.push(e);
                    }
                }
            }
        }
        // Inputs.
        for (port, src) in &n.inputs {
            match info.input(port) {
                None => errors.push(ValidationError::UnknownInput {
                    node: n.id.clone(),
                    port: port.clone(),
                    suggestion: closest(port, info.inputs.iter().map(|p| p.name.as_str())),
                }),
                Some(p) => {
                    if let Some(r) = check_source(
                        graph,
                        &by_id,
                        &types,
                        &n.id,
                        port,
                        src,
                        Some(&p.port_type),
                        &mut errors,
                    ) {
                        if let (Some(&a), Some(&b)) =
                            (index.get(r.node.as_str()), index.get(n.id.as_str()))
                        {
                            dag.add_edge(a, b, ());
                        }
                    }
                }
            }
        }
        for p in &info.inputs {
            if !p.optional && !n.inputs.contains_key(&p.name) {
                errors.push(ValidationError::MissingInput {
                    node: n.id.clone(),
                    port: p.name.clone(),
                    port_type: p.port_type.to_string(),
                });
            }
        }
    }

    let mut cyclic = false;
    for scc in petgraph::algo::tarjan_scc(&dag) {
        let is_cycle = scc.len() > 1 || dag.contains_edge(scc[0], scc[0]);
        cyclic |= is_cycle;
        if is_cycle {
            // Order the nodes along the cycle for a readable message.
            let mut nodes: Vec<String> = scc.iter().rev().map(|&i| dag[i].to_owned()).collect();
            if let Some(min_pos) = nodes
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| n.as_str())
                .map(|(i, _)| i)
            {
                nodes.rotate_left(min_pos);
            }
            errors.push(ValidationError::Cycle { nodes });
        }
    }
    if !cyclic {
        errors.extend(stream_problems(graph, host));
    }
    errors
}

/// The stream shapes that cannot run (see [`crate::stream`]), each naming its nodes.
fn stream_problems(graph: &Graph, host: &PluginHost) -> Vec<ValidationError> {
    let index: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let nodes: Vec<StreamNode> = graph
        .nodes
        .iter()
        .map(|n| {
            let Some(info) = host.node_type(&n.node_type) else {
                return StreamNode::default();
            };
            let sources = n
                .inputs
                .iter()
                .filter_map(|(port, src)| {
                    let p = info.input(port)?;
                    let r = PortRef::parse(src)?;
                    Some((*index.get(r.node.as_str())?, p.stream))
                })
                .collect();
            StreamNode {
                sources,
                producer: info.stream_output().is_some(),
            }
        })
        .collect();
    let id = |i: usize| graph.nodes[i].id.clone();
    crate::stream::analyse(&nodes)
        .1
        .into_iter()
        .map(|p| match p {
            StreamProblem::TwoStreams {
                node,
                first,
                second,
            } => ValidationError::TwoStreams {
                node: id(node),
                first: id(first),
                second: id(second),
            },
            StreamProblem::Nested { node, outer } => ValidationError::NestedStream {
                node: id(node),
                outer: id(outer),
            },
            StreamProblem::AfterEnd {
                node,
                producer,
                consumer,
            } => ValidationError::StreamAfterEnd {
                node: id(node),
                producer: id(producer),
                consumer: id(consumer),
            },
        })
        .collect()
}

/// Checks one connection; returns the parsed source when it resolves.
#[allow(clippy::too_many_arguments)]
fn check_source(
    _graph: &Graph,
    by_id: &HashMap<&str, &crate::graph::NodeDef>,
    types: &HashMap<&str, &NodeTypeInfo>,
    node: &str,
    port: &str,
    src: &str,
    expected: Option<&PortType>,
    errors: &mut Vec<ValidationError>,
) -> Option<PortRef> {
    let dangling = |reason: String| ValidationError::DanglingConnection {
        node: node.to_owned(),
        port: port.to_owned(),
        from: src.to_owned(),
        reason,
    };
    let Some(r) = PortRef::parse(src) else {
        errors.push(dangling("expected \"node.port\"".into()));
        return None;
    };
    let Some(src_node) = by_id.get(r.node.as_str()) else {
        errors.push(dangling(format!(
            "there is no node {:?}{}",
            r.node,
            suggest(&closest(&r.node, by_id.keys().copied()))
        )));
        return None;
    };
    // An unknown source type is reported on the source node itself.
    let Some(src_info) = types.get(src_node.id.as_str()) else {
        return Some(r);
    };
    let Some(out) = src_info.output(&r.port) else {
        let names: Vec<&str> = src_info.outputs.iter().map(|p| p.name.as_str()).collect();
        errors.push(dangling(format!(
            "node {:?} ({}) has no output {:?} (outputs: {})",
            r.node,
            src_info.type_id,
            r.port,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
        return None;
    };
    if let Some(expected) = expected {
        if !expected.accepts(&out.port_type) {
            errors.push(ValidationError::TypeMismatch {
                node: node.to_owned(),
                port: port.to_owned(),
                from: src.to_owned(),
                expected: expected.to_string(),
                found: out.port_type.to_string(),
            });
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names() {
        let c = ["core.add", "core.scale", "core.seed_to_z"];
        assert_eq!(closest("core.ad", c).as_deref(), Some("core.add"));
        assert_eq!(closest("seed_to_z", c).as_deref(), Some("core.seed_to_z"));
        assert_eq!(closest("completely.different", c), None);
    }
}
