//! Turning a `POST /v1/runs` body into a validated job: the graph with `set` overrides, the seed
//! sweep, and which outputs the server keeps.

use stylegraph_core::seeds::{format_template, parse_seed_list};

/// Most seeds one run may sweep (a run's status lists every item; bigger sweeps belong to the
/// CLI's `--seeds` with `--shard`, or to several runs).
pub const MAX_SEEDS_PER_RUN: usize = 10_000;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use stylegraph_core::graph::{Graph, GraphFileError, ParamValue};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::{closest, validate, ValidationError};

/// The JSON body of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// The graph as RON text (the contents of a `.ron` file).
    pub graph: String,
    /// Param overrides: `"node.param": value` (bool, number or string).
    #[serde(default)]
    pub set: BTreeMap<String, serde_json::Value>,
    /// A seed list (`"0-3,7"`), a list of seeds, or one seed.
    #[serde(default)]
    pub seeds: Option<SeedsField>,
    /// The param the seeds go into (`node.param`); default: the graph's only seed param.
    #[serde(default)]
    pub seed_param: Option<String>,
    /// Extra outputs to keep besides the sink nodes' (`node.port`, or `node` for all its ports).
    #[serde(default)]
    pub outputs: Vec<String>,
}

/// The forms `seeds` may take.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum SeedsField {
    Text(String),
    List(Vec<i64>),
    One(i64),
}

/// Why a request was refused (becomes a 400 response).
#[derive(Debug)]
pub(crate) enum JobError {
    /// The RON text does not parse.
    Syntax {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// The graph (after overrides) has problems.
    Invalid(Vec<ValidationError>),
    /// Anything else wrong with the request, with an error code.
    Bad { code: &'static str, message: String },
}

impl JobError {
    fn bad(code: &'static str, message: String) -> JobError {
        JobError::Bad { code, message }
    }
}

/// Parses RON graph text, mapping errors to [`JobError::Syntax`].
pub(crate) fn parse_graph(text: &str, origin: &str) -> Result<Graph, JobError> {
    Graph::from_ron_str(text, origin).map_err(|e| match e {
        GraphFileError::Syntax { line, column, .. } => JobError::Syntax {
            message: e.to_string(),
            line: Some(line),
            column: Some(column),
        },
        other => JobError::Syntax {
            message: other.to_string(),
            line: None,
            column: None,
        },
    })
}

/// A validated run: what the worker executes, one item per seed.
#[derive(Debug)]
pub(crate) struct Job {
    pub graph: Graph,
    /// `None`: one item, no seed substitution.
    pub seeds: Option<Vec<i64>>,
    /// The `(node, param)` the seeds go into.
    pub seed_target: Option<(String, String)>,
    /// The `(node, port)` outputs kept for fetching, in graph order.
    pub keep: Vec<(String, String)>,
}

impl Job {
    /// The graph of one item: the seed set and `{seed}` templates filled in.
    pub fn graph_for(&self, seed: Option<i64>) -> Graph {
        let mut g = self.graph.clone();
        if let Some(seed) = seed {
            if let Some((node, param)) = &self.seed_target {
                if let Some(def) = g.node_mut(node) {
                    def.params.insert(param.clone(), ParamValue::Int(seed));
                }
            }
            for n in &mut g.nodes {
                for v in n.params.values_mut() {
                    if let ParamValue::Str(s) = v {
                        if s.contains("{seed") {
                            *s = format_template(s, seed);
                        }
                    }
                }
            }
        }
        g
    }

    /// The items' seeds (`[None]` without a sweep).
    pub fn items(&self) -> Vec<Option<i64>> {
        match &self.seeds {
            Some(s) => s.iter().copied().map(Some).collect(),
            None => vec![None],
        }
    }
}

fn json_to_param(key: &str, v: &serde_json::Value) -> Result<ParamValue, JobError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Bool(b) => ParamValue::Bool(*b),
        J::String(s) => ParamValue::Str(s.clone()),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                ParamValue::Int(i)
            } else if n.is_u64() {
                return Err(JobError::bad(
                    "bad_set",
                    format!("set {key:?}: {n} does not fit a 64-bit signed integer"),
                ));
            } else {
                ParamValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        other => {
            return Err(JobError::bad(
                "bad_set",
                format!("set {key:?}: expected a bool, number or string, got {other}"),
            ))
        }
    })
}

fn split_target<'a>(what: &str, target: &'a str) -> Result<(&'a str, &'a str), JobError> {
    target
        .rsplit_once('.')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            JobError::bad(
                "bad_request",
                format!("{what} {target:?}: expected NODE.PARAM"),
            )
        })
}

fn no_such_node(what: &str, key: &str, node: &str, graph: &Graph) -> JobError {
    let hint = closest(node, graph.nodes.iter().map(|n| n.id.as_str()))
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default();
    JobError::bad(
        "unknown_node",
        format!("{what} {key:?}: the graph has no node {node:?}{hint}"),
    )
}

/// The seed param a sweep sets: the named one, or the graph's only seed param.
fn seed_target(
    graph: &Graph,
    host: &PluginHost,
    explicit: Option<&str>,
) -> Result<(String, String), JobError> {
    if let Some(t) = explicit {
        let (node, param) = split_target("seed_param", t)?;
        if graph.node(node).is_none() {
            return Err(no_such_node("seed_param", t, node, graph));
        }
        return Ok((node.to_owned(), param.to_owned()));
    }
    let mut found = Vec::new();
    for n in &graph.nodes {
        if let Some(info) = host.node_type(&n.node_type) {
            for p in info.params.iter().filter(|p| p.is_seed) {
                found.push((n.id.clone(), p.name.clone()));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(JobError::bad(
            "no_seed_param",
            "seeds: the graph has no seed param; name one with \"seed_param\": \"node.param\""
                .into(),
        )),
        _ => Err(JobError::bad(
            "ambiguous_seed_param",
            format!(
                "seeds: the graph has several seed params ({}); choose one with \"seed_param\"",
                found
                    .iter()
                    .map(|(n, p)| format!("{n}.{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The outputs kept by default: every port of every sink node (a node no other node reads).
fn sink_outputs(graph: &Graph, host: &PluginHost) -> Vec<(String, String)> {
    let read: BTreeSet<&str> = graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs.values())
        .filter_map(|s| s.rsplit_once('.').map(|(n, _)| n))
        .collect();
    let mut out = Vec::new();
    for n in graph.nodes.iter().filter(|n| !read.contains(n.id.as_str())) {
        if let Some(info) = host.node_type(&n.node_type) {
            out.extend(info.outputs.iter().map(|p| (n.id.clone(), p.name.clone())));
        }
    }
    out
}

/// Checks a request against the loaded node types and builds its job.
pub(crate) fn prepare(req: RunRequest, host: &PluginHost) -> Result<Job, JobError> {
    let mut graph = parse_graph(&req.graph, "graph")?;
    for (key, value) in &req.set {
        let (node, param) = split_target("set", key)?;
        let value = json_to_param(key, value)?;
        let Some(def) = graph.node_mut(node) else {
            return Err(no_such_node("set", key, node, &graph));
        };
        def.params.insert(param.to_owned(), value);
    }

    let (seeds, seed_target) = match &req.seeds {
        None => {
            if req.seed_param.is_some() {
                return Err(JobError::bad(
                    "bad_request",
                    "seed_param is given without seeds".into(),
                ));
            }
            (None, None)
        }
        Some(field) => {
            let seeds = match field {
                SeedsField::Text(t) => parse_seed_list(t, MAX_SEEDS_PER_RUN),
                SeedsField::List(l) => parse_seed_list(
                    &l.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    MAX_SEEDS_PER_RUN,
                ),
                SeedsField::One(s) => parse_seed_list(&s.to_string(), MAX_SEEDS_PER_RUN),
            }
            .map_err(|m| JobError::bad("bad_seeds", m))?;
            let target = seed_target(&graph, host, req.seed_param.as_deref())?;
            (Some(seeds), Some(target))
        }
    };
    let mut job = Job {
        graph,
        seeds,
        seed_target,
        keep: Vec::new(),
    };

    // Validate with the smallest and the largest seed in place: param ranges are intervals, so
    // every seed in between passes too. (An item can still be refused when it runs, e.g. for an
    // enum param filled from a `{seed}` template; it then fails on its own with the problems.)
    let mut problems: Vec<ValidationError> = Vec::new();
    let probes: Vec<Option<i64>> = match &job.seeds {
        None => vec![None],
        Some(s) => {
            let lo = s.iter().copied().min();
            let hi = s.iter().copied().max();
            if lo == hi {
                vec![lo]
            } else {
                vec![lo, hi]
            }
        }
    };
    for seed in probes {
        for p in validate(&job.graph_for(seed), host) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    if !problems.is_empty() {
        return Err(JobError::Invalid(problems));
    }

    // What to keep: the sinks' outputs plus the requested ones, each once, in graph order.
    let mut keep = sink_outputs(&job.graph, host);
    for wanted in &req.outputs {
        let (node, port) = match wanted.rsplit_once('.') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => (n, Some(p)),
            _ => (wanted.as_str(), None),
        };
        let Some(def) = job.graph.node(node) else {
            return Err(no_such_node("outputs", wanted, node, &job.graph));
        };
        // Validation passed, so the node type is known.
        let Some(info) = host.node_type(&def.node_type) else {
            continue;
        };
        let ports: Vec<&str> = match port {
            Some(p) => {
                if info.output(p).is_none() {
                    let names: Vec<&str> = info.outputs.iter().map(|o| o.name.as_str()).collect();
                    return Err(JobError::bad(
                        "unknown_output",
                        format!(
                            "outputs {wanted:?}: node {node:?} ({}) has no output {p:?}; it has {}",
                            info.type_id,
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            }
                        ),
                    ));
                }
                vec![p]
            }
            None => info.outputs.iter().map(|o| o.name.as_str()).collect(),
        };
        for p in ports {
            if !keep.iter().any(|(n, q)| n == node && q == p) {
                keep.push((node.to_owned(), p.to_owned()));
            }
        }
    }
    let order: BTreeMap<&str, usize> = job
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    keep.sort_by_key(|(n, _)| order.get(n.as_str()).copied().unwrap_or(usize::MAX));
    job.keep = keep;
    Ok(job)
}
