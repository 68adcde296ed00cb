//! The executor: plans a validated graph, runs independent branches concurrently, serves
//! unchanged nodes from a memory-bounded LRU cache, streams sequences chunk by chunk, and reports
//! everything as [`Event`]s.
//!
//! # Streams
//! A node with a stream output (ABI 1.1) produces its value in chunks. The nodes downstream of it,
//! up to and including the stream consumers (see [`crate::stream`]), form its *region*, which is
//! scheduled as one unit: once every input from outside the region is ready, one worker calls the
//! producer for chunk 0, then each region node in dependency order on that chunk, drops the
//! chunk's values, and goes on with chunk 1, ... until the producer says it has no more. Only one
//! chunk is alive at a time (plus whatever the consumers keep in their instances). Region nodes are
//! neither served from nor stored in the cache: a re-run streams again.

use crate::events::{Event, EventSink};
use crate::graph::{Graph, ParamValue, PortRef};
use crate::plugin::{LoadedPlugin, NodeTypeInfo, ParamKind, PluginHost};
use crate::stream::{Region, StreamNode};
use crate::types::PortType;
use crate::validate::{check_param, validate, ValidationError};
use crate::value::{HostObject, HostTensor, TensorMemory, TensorMeter, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;
use stylegraph_abi::ffi::*;

/// Tuning of a [`Session`].
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Upper bound of memory held by cached node outputs.
    pub cache_budget_bytes: usize,
    /// How many nodes may run at once (independent branches).
    pub threads: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cache_budget_bytes: 2 << 30,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(8),
        }
    }
}

/// Cancels a run from another thread.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Options of one run.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub cancel: CancelToken,
    pub on_event: Option<EventSink>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every node ran or came from the cache.
    Finished,
    /// At least one node failed (its downstream nodes were skipped; other branches ran).
    Failed,
    /// The run was cancelled.
    Cancelled,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub run: u64,
    pub status: RunStatus,
    /// Outputs of every node that completed: node id -> (port name, value).
    pub outputs: HashMap<String, Vec<(String, Value)>>,
    /// Nodes executed (not from the cache), in completion order.
    pub executed: Vec<String>,
    /// Nodes served from the cache.
    pub cached: Vec<String>,
    /// Failed nodes with their error messages.
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    pub duration_ms: f64,
}

impl RunReport {
    /// An output value by node and port.
    pub fn output(&self, node: &str, port: &str) -> Option<&Value> {
        self.outputs
            .get(node)?
            .iter()
            .find(|(p, _)| p == port)
            .map(|(_, v)| v)
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the graph is invalid:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ValidationError>),
}

struct CacheEntry {
    outputs: Arc<Vec<Value>>,
    size: usize,
    last_used: u64,
}

/// LRU cache of node outputs keyed by the node's cache key, bounded by a memory budget.
#[derive(Default)]
struct Cache {
    entries: HashMap<u64, CacheEntry>,
    total: usize,
    clock: u64,
}

impl Cache {
    fn get(&mut self, key: u64) -> Option<Arc<Vec<Value>>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&key).map(|e| {
            e.last_used = clock;
            e.outputs.clone()
        })
    }

    fn insert(&mut self, key: u64, outputs: Arc<Vec<Value>>, budget: usize) {
        let size: usize = outputs.iter().map(Value::size_bytes).sum::<usize>() + 64;
        if size > budget {
            return;
        }
        self.clock += 1;
        if let Some(old) = self.entries.insert(
            key,
            CacheEntry {
                outputs,
                size,
                last_used: self.clock,
            },
        ) {
            self.total -= old.size;
        }
        self.total += size;
        while self.total > budget {
            let Some((&victim, _)) = self.entries.iter().min_by_key(|(_, e)| e.last_used) else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.total -= e.size;
            }
        }
    }
}

/// A node instance created by its plugin; destroyed when dropped.
struct Instance {
    type_id: String,
    plugin: Arc<LoadedPlugin>,
    index: usize,
    ptr: *mut c_void,
}

// SAFETY: the ABI allows an instance to be executed from any thread, one call at a time (the
// Mutex around each Instance guarantees that).
unsafe impl Send for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(destroy) = self.plugin.entry.destroy {
            // SAFETY: ptr came from this plugin's create.
            unsafe { destroy(self.index, self.ptr) };
        }
    }
}

/// A host session: the loaded plugins, the output cache and the node instances, kept across runs
/// so that a re-run only executes what changed.
pub struct Session {
    host: Arc<PluginHost>,
    config: SessionConfig,
    cache: Mutex<Cache>,
    instances: Mutex<HashMap<String, Arc<Mutex<Instance>>>>,
    runs: AtomicU64,
    /// Bytes of the tensors nodes allocate, alive and at peak.
    meter: Arc<TensorMeter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread while holding one of these locks leaves plain data behind;
    // carrying on is safe.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One node of a run's plan.
struct PlanNode<'g> {
    id: &'g str,
    info: &'g NodeTypeInfo,
    params: Vec<ParamValue>,
    /// For each input port (descriptor order): source node index and output port index.
    inputs: Vec<Option<(usize, usize)>>,
    dependents: Vec<usize>,
    key: u64,
    cacheable: bool,
    /// The stream region this node is in (as producer or member), index into `Plan::regions`.
    region: Option<usize>,
    /// What the scheduler runs this node as part of: the node itself, or its region's producer.
    unit: usize,
}

/// A run's plan: the nodes and the stream regions among them.
struct Plan<'g> {
    nodes: Vec<PlanNode<'g>>,
    regions: Vec<Region>,
}

/// How one call of a node stands in a stream (all zero outside one).
#[derive(Clone, Copy, Debug, Default)]
struct StreamCall {
    /// `SG_STREAM_*` flags.
    flags: u32,
    index: u64,
    offset: u64,
    /// Items in the whole sequence; 0 = unknown.
    total: u64,
    /// Items this call handles, when known beforehand (0 = unknown): scales its progress.
    items: u64,
    /// The node is a stream consumer: its outputs are taken after the last chunk only.
    consumer: bool,
}

impl StreamCall {
    /// A stream consumer fed by an ordinary value: one chunk that is also the last.
    fn single(total: u64) -> StreamCall {
        StreamCall {
            flags: SG_STREAM_ACTIVE | SG_STREAM_LAST,
            total,
            consumer: true,
            ..StreamCall::default()
        }
    }
    /// The call's own progress, mapped onto the whole sequence.
    fn progress_map(&self) -> ProgressMap {
        let in_stream = self.flags & SG_STREAM_ACTIVE != 0;
        if !in_stream || (self.index == 0 && self.flags & SG_STREAM_LAST != 0) {
            ProgressMap::Plain
        } else if self.total > 0 && self.items > 0 {
            ProgressMap::Scaled {
                base: self.offset as f64 / self.total as f64,
                scale: self.items as f64 / self.total as f64,
            }
        } else {
            ProgressMap::Chunk(self.index)
        }
    }
}

/// How a node's progress reports map onto the events.
#[derive(Clone, Copy, Debug)]
enum ProgressMap {
    Plain,
    /// Within one chunk of a sequence of known length: `base + scale * fraction`.
    Scaled {
        base: f64,
        scale: f64,
    },
    /// Within one chunk of a sequence of unknown length: the message names the chunk.
    Chunk(u64),
}

/// How a node of a stream region ended.
enum StreamEnd {
    Done(Arc<Vec<Value>>),
    Failed(String),
    Skipped(String),
    Cancelled,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NodeState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

struct RunState {
    remaining: Vec<usize>,
    ready: VecDeque<usize>,
    state: Vec<NodeState>,
    results: Vec<Option<Arc<Vec<Value>>>>,
    running: usize,
    executed: Vec<String>,
    cached: Vec<String>,
    failed: Vec<(String, String)>,
    skipped: Vec<String>,
    cancelled: bool,
}

/// Why a node did not produce outputs.
enum NodeOutcome {
    Failed(String),
    Cancelled,
}

impl Session {
    pub fn new(host: Arc<PluginHost>, config: SessionConfig) -> Session {
        Session {
            host,
            config,
            cache: Mutex::new(Cache::default()),
            instances: Mutex::new(HashMap::new()),
            runs: AtomicU64::new(0),
            meter: Arc::new(TensorMeter::default()),
        }
    }

    /// Memory held in tensors that nodes of this session allocated (values on edges, cached
    /// outputs, reports still alive): now, at peak, and in all.
    pub fn tensor_memory(&self) -> TensorMemory {
        self.meter.read()
    }

    /// Starts a new peak for [`Session::tensor_memory`] from what is alive now.
    pub fn reset_tensor_peak(&self) {
        self.meter.reset_peak();
    }

    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// Memory currently held by the cache, in bytes.
    pub fn cache_bytes(&self) -> usize {
        lock(&self.cache).total
    }

    /// Drops every cached output.
    pub fn clear_cache(&self) {
        let mut c = lock(&self.cache);
        c.entries.clear();
        c.total = 0;
    }

    /// Validates and runs a graph.
    pub fn run(&self, graph: &Graph, options: &RunOptions) -> Result<RunReport, RunError> {
        let errors = validate(graph, &self.host);
        if !errors.is_empty() {
            return Err(RunError::Invalid(errors));
        }
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let plan = self.plan(graph, run)?;
        Ok(self.execute_plan(run, plan, options))
    }

    fn plan<'g>(&'g self, graph: &'g Graph, run: u64) -> Result<Plan<'g>, RunError> {
        let index: HashMap<&str, usize> = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut nodes = Vec::with_capacity(graph.nodes.len());
        let mut errors = Vec::new();
        for n in &graph.nodes {
            // Validation guarantees the type exists and connections resolve.
            let Some(info) = self.host.node_type(&n.node_type) else {
                continue;
            };
            let mut params = Vec::with_capacity(info.params.len());
            for p in &info.params {
                let v = n.params.get(&p.name).unwrap_or(&p.default);
                match check_param(&n.id, p, v) {
                    Ok(v) => params.push(v),
                    Err(e) => {
                        errors.push(e);
                        params.push(p.default.clone());
                    }
                }
            }
            let inputs = info
                .inputs
                .iter()
                .map(|p| {
                    let r = PortRef::parse(n.inputs.get(&p.name)?)?;
                    let src = *index.get(r.node.as_str())?;
                    let src_info = self.host.node_type(&graph.nodes[src].node_type)?;
                    let port = src_info.outputs.iter().position(|o| o.name == r.port)?;
                    Some((src, port))
                })
                .collect();
            nodes.push(PlanNode {
                id: &n.id,
                info,
                params,
                inputs,
                dependents: Vec::new(),
                key: 0,
                cacheable: false,
                region: None,
                unit: nodes.len(),
            });
        }
        if !errors.is_empty() {
            return Err(RunError::Invalid(errors));
        }
        for i in 0..nodes.len() {
            let srcs: Vec<usize> = nodes[i].inputs.iter().flatten().map(|&(s, _)| s).collect();
            for s in srcs {
                if !nodes[s].dependents.contains(&i) {
                    nodes[s].dependents.push(i);
                }
            }
        }
        // Cache keys in topological order (validation rejected cycles).
        let order = crate::order::dependency_order(
            nodes.len(),
            |i| nodes[i].inputs.iter().flatten().map(|&(s, _)| s),
            |i| nodes[i].dependents.as_slice(),
        );
        for &i in &order {
            let n = &nodes[i];
            let mut h = DefaultHasher::new();
            n.info.type_id.hash(&mut h);
            n.info.plugin_id.hash(&mut h);
            n.info.plugin_version.hash(&mut h);
            for (p, info) in n.params.iter().zip(&n.info.params) {
                hash_param(p, &mut h);
                // A file a node reads is part of its input: an edited file must not be served
                // from the cache, so its size and modification time go into the key.
                if info.kind == ParamKind::Path && !info.is_output_path {
                    if let ParamValue::Str(path) = p {
                        file_stamp(path).hash(&mut h);
                    }
                }
            }
            for inp in &n.inputs {
                match inp {
                    Some((s, port)) => {
                        nodes[*s].key.hash(&mut h);
                        port.hash(&mut h);
                    }
                    None => 0xdead_u64.hash(&mut h),
                }
            }
            let seeded = n.info.seed_param().is_some_and(|sp| {
                let idx = n.info.params.iter().position(|p| p.name == sp.name);
                matches!(idx.map(|i| &n.params[i]), Some(ParamValue::Int(v)) if *v >= 0)
            });
            let deterministic = n.info.deterministic || seeded;
            if !deterministic {
                // A fresh key every run: never served from the cache, and neither is anything
                // downstream of it.
                run.hash(&mut h);
                n.id.hash(&mut h);
            }
            let key = h.finish();
            let n = &mut nodes[i];
            n.key = key;
            n.cacheable = deterministic && !n.info.side_effect;
        }
        // Stream regions (validation refused the shapes that cannot run).
        let stream_nodes: Vec<StreamNode> = nodes
            .iter()
            .map(|n| StreamNode {
                sources: n
                    .inputs
                    .iter()
                    .zip(&n.info.inputs)
                    .filter_map(|(inp, port)| inp.map(|(s, _)| (s, port.stream)))
                    .collect(),
                producer: n.info.stream_output().is_some(),
            })
            .collect();
        let (regions, problems) = crate::stream::analyse(&stream_nodes);
        if !problems.is_empty() {
            // Only reachable if validation and planning disagree; report it as invalid.
            return Err(RunError::Invalid(
                crate::validate::validate(graph, &self.host)
                    .into_iter()
                    .filter(|e| {
                        matches!(
                            e,
                            ValidationError::TwoStreams { .. }
                                | ValidationError::NestedStream { .. }
                                | ValidationError::StreamAfterEnd { .. }
                        )
                    })
                    .collect(),
            ));
        }
        for (r, region) in regions.iter().enumerate() {
            for i in region.nodes() {
                let n = &mut nodes[i];
                n.region = Some(r);
                n.unit = region.producer;
                // A stream is made afresh on every run (see the module docs).
                n.cacheable = false;
            }
        }
        Ok(Plan { nodes, regions })
    }

    fn execute_plan(&self, run: u64, plan: Plan<'_>, options: &RunOptions) -> RunReport {
        let start = Instant::now();
        let emit = |e: Event| {
            if let Some(sink) = &options.on_event {
                sink(&e);
            }
        };
        let Plan {
            nodes: plan,
            regions,
        } = plan;
        emit(Event::RunStarted {
            run,
            nodes: plan.len(),
        });
        // The scheduler runs units: single nodes, and stream regions as a whole (under their
        // producer's index). A unit waits for the distinct nodes outside it that feed it.
        let members = |u: usize| -> Vec<usize> {
            match plan[u].region {
                Some(r) => regions[r].nodes().collect(),
                None => vec![u],
            }
        };
        let remaining: Vec<usize> = (0..plan.len())
            .map(|u| {
                if plan[u].unit != u {
                    return 0;
                }
                let mut srcs: Vec<usize> = members(u)
                    .into_iter()
                    .flat_map(|m| plan[m].inputs.iter().flatten().map(|&(s, _)| s))
                    .filter(|&s| plan[s].unit != u)
                    .collect();
                srcs.sort_unstable();
                srcs.dedup();
                srcs.len()
            })
            .collect();
        let ready = (0..plan.len())
            .filter(|&i| plan[i].unit == i && remaining[i] == 0)
            .collect();
        let state = Mutex::new(RunState {
            remaining,
            ready,
            state: vec![NodeState::Pending; plan.len()],
            results: vec![None; plan.len()],
            running: 0,
            executed: Vec::new(),
            cached: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            cancelled: false,
        });
        let wake = Condvar::new();
        let workers = self.config.threads.clamp(1, plan.len().max(1));

        // Skips everything downstream of `from` that has not run (a whole stream region at once).
        let skip_downstream = |st: &mut RunState, from: &[usize], reason: &str| {
            let mut stack: Vec<usize> = from.to_vec();
            while let Some(d) = stack.pop() {
                for m in members(d) {
                    if st.state[m] == NodeState::Pending {
                        st.state[m] = NodeState::Skipped;
                        st.skipped.push(plan[m].id.to_owned());
                        emit(Event::NodeSkipped {
                            run,
                            node: plan[m].id.to_owned(),
                            reason: reason.to_owned(),
                        });
                        stack.extend(plan[m].dependents.iter().copied());
                    }
                }
            }
        };
        // Records how a node ended and wakes or skips what depends on it.
        let finish = |st: &mut RunState, idx: usize, end: StreamEnd, from_cache: bool| {
            let node = &plan[idx];
            match end {
                StreamEnd::Done(outputs) => {
                    st.state[idx] = NodeState::Done;
                    st.results[idx] = Some(outputs);
                    if from_cache {
                        st.cached.push(node.id.to_owned());
                    } else {
                        st.executed.push(node.id.to_owned());
                    }
                    let mut units: Vec<usize> = node
                        .dependents
                        .iter()
                        .map(|&d| plan[d].unit)
                        .filter(|&u| u != node.unit)
                        .collect();
                    units.sort_unstable();
                    units.dedup();
                    for u in units {
                        st.remaining[u] -= 1;
                        if st.remaining[u] == 0 && st.state[u] == NodeState::Pending {
                            st.ready.push_back(u);
                        }
                    }
                }
                StreamEnd::Cancelled => {
                    st.state[idx] = NodeState::Failed;
                    st.cancelled = true;
                }
                StreamEnd::Failed(msg) => {
                    st.state[idx] = NodeState::Failed;
                    st.failed.push((node.id.to_owned(), msg));
                    // Fail the branch: everything downstream is skipped.
                    let reason = format!("upstream node {:?} failed", node.id);
                    skip_downstream(st, &node.dependents, &reason);
                }
                StreamEnd::Skipped(reason) => {
                    // Decided (and announced) inside a stream; what is downstream goes too.
                    st.state[idx] = NodeState::Skipped;
                    st.skipped.push(node.id.to_owned());
                    skip_downstream(st, &node.dependents, &reason);
                }
            }
        };

        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let idx = {
                        let mut st = lock(&state);
                        loop {
                            if options.cancel.is_cancelled() {
                                st.cancelled = true;
                            }
                            if !st.cancelled {
                                if let Some(i) = st.ready.pop_front() {
                                    for m in members(i) {
                                        st.state[m] = NodeState::Running;
                                    }
                                    st.running += 1;
                                    break Some(i);
                                }
                            }
                            if st.running == 0 {
                                break None;
                            }
                            // Wake up periodically to notice a cancellation.
                            st = wake
                                .wait_timeout(st, std::time::Duration::from_millis(50))
                                .map(|(g, _)| g)
                                .unwrap_or_else(|e| e.into_inner().0);
                        }
                    };
                    let Some(idx) = idx else {
                        wake.notify_all();
                        return;
                    };
                    // Values from outside the unit, for every node of it.
                    let unit = members(idx);
                    let external: HashMap<usize, Arc<Vec<Value>>> = {
                        let st = lock(&state);
                        unit.iter()
                            .flat_map(|&m| plan[m].inputs.iter().flatten())
                            .filter(|&&(s, _)| plan[s].unit != idx)
                            .filter_map(|&(s, _)| st.results[s].clone().map(|r| (s, r)))
                            .collect()
                    };
                    let ends: Vec<(usize, StreamEnd, bool)> = match plan[idx].region {
                        Some(r) => self
                            .run_stream(run, &plan, &regions[r], &external, options, &emit)
                            .into_iter()
                            .map(|(i, e)| (i, e, false))
                            .collect(),
                        None => {
                            let node = &plan[idx];
                            let inputs: Vec<Option<Value>> = node
                                .inputs
                                .iter()
                                .map(|inp| {
                                    inp.and_then(|(s, port)| {
                                        external.get(&s).and_then(|r| r.get(port).cloned())
                                    })
                                })
                                .collect();
                            match self.process(run, node, inputs, options, &emit) {
                                Ok((outputs, from_cache)) => {
                                    vec![(idx, StreamEnd::Done(outputs), from_cache)]
                                }
                                Err(NodeOutcome::Cancelled) => {
                                    vec![(idx, StreamEnd::Cancelled, false)]
                                }
                                Err(NodeOutcome::Failed(msg)) => {
                                    vec![(idx, StreamEnd::Failed(msg), false)]
                                }
                            }
                        }
                    };
                    let mut st = lock(&state);
                    st.running -= 1;
                    for (i, end, from_cache) in ends {
                        finish(&mut st, i, end, from_cache);
                    }
                    drop(st);
                    wake.notify_all();
                });
            }
        });

        let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        let status = if st.cancelled {
            RunStatus::Cancelled
        } else if st.failed.is_empty() {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        if status == RunStatus::Cancelled {
            emit(Event::RunCancelled { run, duration_ms });
        } else {
            emit(Event::RunFinished {
                run,
                duration_ms,
                executed: st.executed.len(),
                cached: st.cached.len(),
                failed: st.failed.len(),
                skipped: st.skipped.len(),
            });
        }
        let mut outputs = HashMap::new();
        for (i, r) in st.results.into_iter().enumerate() {
            if let Some(values) = r {
                let named = plan[i]
                    .info
                    .outputs
                    .iter()
                    .zip(values.iter())
                    .map(|(p, v)| (p.name.clone(), v.clone()))
                    .collect();
                outputs.insert(plan[i].id.to_owned(), named);
            }
        }
        RunReport {
            run,
            status,
            outputs,
            executed: st.executed,
            cached: st.cached,
            failed: st.failed,
            skipped: st.skipped,
            duration_ms,
        }
    }

    /// Serves a node from the cache or executes it.
    fn process(
        &self,
        run: u64,
        node: &PlanNode<'_>,
        inputs: Vec<Option<Value>>,
        options: &RunOptions,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<(Arc<Vec<Value>>, bool), NodeOutcome> {
        if node.cacheable {
            let hit = lock(&self.cache).get(node.key);
            if let Some(outputs) = hit {
                emit(Event::NodeFinished {
                    run,
                    node: node.id.to_owned(),
                    node_type: node.info.type_id.clone(),
                    duration_ms: 0.0,
                    cached: true,
                });
                return Ok((outputs, true));
            }
        }
        emit(Event::NodeStarted {
            run,
            node: node.id.to_owned(),
            node_type: node.info.type_id.clone(),
        });
        let t0 = Instant::now();
        // A stream consumer outside a stream gets its value as one chunk that is also the last.
        let consumer = node.info.has_stream_input();
        let call = if consumer {
            let total = node
                .info
                .inputs
                .iter()
                .zip(&inputs)
                .filter(|(p, _)| p.stream)
                .find_map(|(_, v)| match v {
                    Some(Value::Tensor(t)) => t.shape().first().map(|&d| d.max(0) as u64),
                    _ => None,
                })
                .unwrap_or(0);
            StreamCall::single(total)
        } else {
            StreamCall::default()
        };
        let result = self.execute_node(run, node, &inputs, options, emit, &call, None);
        if consumer && result.is_err() {
            self.abort_consumer(run, node, 0, emit);
        }
        match result {
            Ok(outputs) => {
                let outputs = Arc::new(outputs);
                if node.cacheable {
                    lock(&self.cache).insert(
                        node.key,
                        outputs.clone(),
                        self.config.cache_budget_bytes,
                    );
                }
                emit(Event::NodeFinished {
                    run,
                    node: node.id.to_owned(),
                    node_type: node.info.type_id.clone(),
                    duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    cached: false,
                });
                Ok((outputs, false))
            }
            Err(NodeOutcome::Failed(msg)) => {
                emit(Event::NodeFailed {
                    run,
                    node: node.id.to_owned(),
                    node_type: node.info.type_id.clone(),
                    error: msg.clone(),
                });
                Err(NodeOutcome::Failed(msg))
            }
            Err(NodeOutcome::Cancelled) => Err(NodeOutcome::Cancelled),
        }
    }

    fn instance(&self, node: &PlanNode<'_>) -> Result<Arc<Mutex<Instance>>, String> {
        let mut map = lock(&self.instances);
        if let Some(inst) = map.get(node.id) {
            let same = {
                let i = lock(inst);
                i.type_id == node.info.type_id && Arc::ptr_eq(&i.plugin, &node.info.plugin)
            };
            if same {
                return Ok(inst.clone());
            }
        }
        let plugin = node.info.plugin.clone();
        let create = plugin.entry.create.ok_or("plugin has no create function")?;
        let mut errbuf = vec![0u8; 4096];
        let mut err = SgErrorBuf {
            buf: errbuf.as_mut_ptr(),
            capacity: errbuf.len(),
            len: 0,
        };
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: ABI contract.
        let status = unsafe { create(node.info.index, &mut ptr, &mut err) };
        if status != SG_OK {
            let msg = String::from_utf8_lossy(&errbuf[..err.len.min(errbuf.len())]).into_owned();
            return Err(format!(
                "could not create the node ({}): {msg}",
                status_name(status)
            ));
        }
        let inst = Arc::new(Mutex::new(Instance {
            type_id: node.info.type_id.clone(),
            plugin,
            index: node.info.index,
            ptr,
        }));
        map.insert(node.id.to_owned(), inst.clone());
        Ok(inst)
    }

    /// Tells a stream consumer that its sequence is abandoned (an execute call flagged
    /// `SG_STREAM_ABORT`, with no inputs), then destroys its instance, so whatever it held (a
    /// half-written file) is released even if it ignored the call. A later run makes a new one.
    fn abort_consumer(
        &self,
        run: u64,
        node: &PlanNode<'_>,
        index: u64,
        emit: &(dyn Fn(Event) + Sync),
    ) {
        if node.info.plugin.abi_minor < 1 || !lock(&self.instances).contains_key(node.id) {
            return;
        }
        let inputs = vec![None; node.info.inputs.len()];
        let call = StreamCall {
            flags: SG_STREAM_ACTIVE | SG_STREAM_ABORT,
            index,
            ..StreamCall::default()
        };
        // Cancellation must not stop this call: it is how a cancelled stream cleans up.
        let options = RunOptions::default();
        if let Err(NodeOutcome::Failed(msg)) =
            self.execute_node(run, node, &inputs, &options, emit, &call, None)
        {
            tracing::debug!(node = node.id, "abort call: {msg}");
        }
        lock(&self.instances).remove(node.id);
    }

    /// Runs a stream region: the producer and every member, chunk by chunk (see the module
    /// docs). Returns how each node of the region ended; events are emitted as things happen.
    fn run_stream(
        &self,
        run: u64,
        plan: &[PlanNode<'_>],
        region: &Region,
        external: &HashMap<usize, Arc<Vec<Value>>>,
        options: &RunOptions,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Vec<(usize, StreamEnd)> {
        // Local indices: 0 is the producer, then the members in dependency order.
        let nodes: Vec<usize> = region.nodes().collect();
        let k = nodes.len();
        let local: HashMap<usize, usize> = nodes.iter().enumerate().map(|(j, &g)| (g, j)).collect();
        let consumer: Vec<bool> = std::iter::once(false)
            .chain(region.consumer.iter().copied())
            .collect();
        let deps: Vec<Vec<usize>> = nodes
            .iter()
            .map(|&g| {
                plan[g]
                    .dependents
                    .iter()
                    .filter_map(|d| local.get(d).copied())
                    .collect()
            })
            .collect();
        let producer = &plan[region.producer];
        let stream_port = producer.info.stream_output().unwrap_or(0);

        let mut end: Vec<Option<StreamEnd>> = (0..k).map(|_| None).collect();
        let mut values: Vec<Option<Arc<Vec<Value>>>> = vec![None; k];
        let mut started = vec![false; k];
        let mut busy_ms = vec![0.0f64; k];
        // A node is needed while it feeds a live consumer or is a live end of the region (its
        // last chunk's outputs are the run's outputs); the stream stops when nothing is needed.
        let needed = |end: &[Option<StreamEnd>]| -> Vec<bool> {
            let mut need = vec![false; k];
            for j in (0..k).rev() {
                if end[j].is_none() {
                    need[j] = consumer[j] || deps[j].is_empty() || deps[j].iter().any(|&d| need[d]);
                }
            }
            need
        };
        // Fails node `j` and skips what is downstream of it in the region; consumers among them
        // are told to abort.
        let fail = |j: usize,
                    msg: String,
                    index: u64,
                    end: &mut Vec<Option<StreamEnd>>,
                    started: &[bool]| {
            let node = &plan[nodes[j]];
            emit(Event::NodeFailed {
                run,
                node: node.id.to_owned(),
                node_type: node.info.type_id.clone(),
                error: msg.clone(),
            });
            end[j] = Some(StreamEnd::Failed(msg));
            if consumer[j] && started[j] {
                self.abort_consumer(run, node, index, emit);
            }
            let reason = format!("upstream node {:?} failed", node.id);
            let mut stack = deps[j].clone();
            while let Some(d) = stack.pop() {
                if end[d].is_some() {
                    continue;
                }
                let dn = &plan[nodes[d]];
                emit(Event::NodeSkipped {
                    run,
                    node: dn.id.to_owned(),
                    reason: reason.clone(),
                });
                end[d] = Some(StreamEnd::Skipped(reason.clone()));
                if consumer[d] && started[d] {
                    self.abort_consumer(run, dn, index, emit);
                }
                stack.extend(deps[d].iter().copied());
            }
        };

        let (mut index, mut offset, mut total, mut prev_items) = (0u64, 0u64, 0u64, 0u64);
        let mut cancelled = false;
        let mut need = needed(&end);
        'chunks: loop {
            if options.cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            // Free the previous chunk before making the next: one chunk alive at a time.
            for j in 0..k {
                if need[j] {
                    values[j] = None;
                }
            }
            let mut last = false;
            let mut items = 0u64;
            let mut ran = vec![false; k];
            for j in 0..k {
                if !need[j] || end[j].is_some() {
                    continue;
                }
                let node = &plan[nodes[j]];
                let inputs: Vec<Option<Value>> = node
                    .inputs
                    .iter()
                    .map(|inp| {
                        inp.and_then(|(s, port)| {
                            let src = match local.get(&s) {
                                Some(&l) => values[l].as_ref(),
                                None => external.get(&s),
                            };
                            src.and_then(|r| r.get(port).cloned())
                        })
                    })
                    .collect();
                let call = StreamCall {
                    flags: SG_STREAM_ACTIVE | if last { SG_STREAM_LAST } else { 0 },
                    index,
                    offset,
                    total,
                    items: if j == 0 { prev_items } else { items },
                    consumer: consumer[j],
                };
                let mut report = SgStream {
                    struct_size: std::mem::size_of::<SgStream>() as u32,
                    more: 0,
                    total_items: total,
                };
                if !started[j] {
                    started[j] = true;
                    emit(Event::NodeStarted {
                        run,
                        node: node.id.to_owned(),
                        node_type: node.info.type_id.clone(),
                    });
                }
                let t0 = Instant::now();
                let result = self.execute_node(
                    run,
                    node,
                    &inputs,
                    options,
                    emit,
                    &call,
                    (j == 0).then_some(&mut report),
                );
                drop(inputs);
                busy_ms[j] += t0.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok(outputs) => {
                        if j == 0 {
                            match outputs.get(stream_port) {
                                Some(Value::Tensor(t)) if !t.shape().is_empty() => {
                                    items = t.shape()[0].max(0) as u64;
                                }
                                other => {
                                    let found = other.map_or("nothing".into(), Value::summary);
                                    let msg = format!(
                                        "node {:?} ({}): stream output {:?} must be a tensor whose first dimension counts the chunk's items, got {found}",
                                        node.id,
                                        node.info.type_id,
                                        producer.info.outputs[stream_port].name
                                    );
                                    fail(j, msg, index, &mut end, &started);
                                    need = needed(&end);
                                    continue;
                                }
                            }
                            if report.total_items > 0 {
                                total = report.total_items;
                            }
                            last = report.more == 0;
                        }
                        values[j] = Some(Arc::new(outputs));
                        ran[j] = true;
                    }
                    Err(NodeOutcome::Cancelled) => {
                        cancelled = true;
                        break 'chunks;
                    }
                    Err(NodeOutcome::Failed(msg)) => {
                        fail(j, msg, index, &mut end, &started);
                        need = needed(&end);
                    }
                }
            }
            let done = offset + items;
            for j in (0..k).filter(|&j| ran[j]) {
                let (fraction, message) = if total > 0 {
                    (
                        (done as f64 / total as f64).min(1.0),
                        format!("chunk {}: {done} of {total} items", index + 1),
                    )
                } else {
                    (0.0, format!("chunk {}: {done} items", index + 1))
                };
                emit(Event::NodeProgress {
                    run,
                    node: plan[nodes[j]].id.to_owned(),
                    fraction,
                    message,
                });
            }
            need = needed(&end);
            offset = done;
            prev_items = items;
            index += 1;
            if last || !need.iter().any(|&b| b) {
                break;
            }
        }

        let mut out = Vec::with_capacity(k);
        for j in 0..k {
            let g = nodes[j];
            let node = &plan[g];
            let e = match end[j].take() {
                Some(e) => e,
                None if cancelled => {
                    if consumer[j] && started[j] {
                        self.abort_consumer(run, node, index, emit);
                    }
                    StreamEnd::Cancelled
                }
                None => match values[j].take() {
                    Some(v) => {
                        emit(Event::NodeFinished {
                            run,
                            node: node.id.to_owned(),
                            node_type: node.info.type_id.clone(),
                            duration_ms: busy_ms[j],
                            cached: false,
                        });
                        StreamEnd::Done(v)
                    }
                    None => {
                        // It stopped being needed before it could run on the last chunk.
                        let reason =
                            "stream stopped: nothing downstream of it is left to feed".to_owned();
                        emit(Event::NodeSkipped {
                            run,
                            node: node.id.to_owned(),
                            reason: reason.clone(),
                        });
                        StreamEnd::Skipped(reason)
                    }
                },
            };
            out.push((g, e));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn execute_node(
        &self,
        run: u64,
        node: &PlanNode<'_>,
        inputs: &[Option<Value>],
        options: &RunOptions,
        emit: &(dyn Fn(Event) + Sync),
        call: &StreamCall,
        stream: Option<&mut SgStream>,
    ) -> Result<Vec<Value>, NodeOutcome> {
        let label = |msg: String| format!("node {:?} ({}): {msg}", node.id, node.info.type_id);
        if options.cancel.is_cancelled() {
            return Err(NodeOutcome::Cancelled);
        }
        let inst = self
            .instance(node)
            .map_err(|m| NodeOutcome::Failed(label(m)))?;
        let inst = lock(&inst);
        let execute =
            node.info.plugin.entry.execute.ok_or_else(|| {
                NodeOutcome::Failed(label("plugin has no execute function".into()))
            })?;

        // Inputs and params as C values; the Rust values they point into stay alive in `inputs`,
        // `node.params` and `strings` until the call returns.
        let mut strings: Vec<String> = Vec::new();
        let c_inputs: Vec<SgValue> = inputs.iter().map(|v| to_c_value(v.as_ref())).collect();
        for p in &node.params {
            if let ParamValue::Str(s) = p {
                strings.push(s.clone());
            }
        }
        let mut str_iter = strings.iter();
        let c_params: Vec<SgValue> = node
            .params
            .iter()
            .map(|p| match p {
                ParamValue::Bool(b) => SgValue::boolean(*b),
                ParamValue::Int(i) => SgValue::int(*i),
                ParamValue::Float(f) => SgValue::float(*f),
                ParamValue::Str(_) => {
                    SgValue::string(str_iter.next().map_or(SgStr::EMPTY, |s| SgStr::from_str(s)))
                }
            })
            .collect();
        let mut c_outputs = vec![SgValue::NONE; node.info.outputs.len()];
        let mut errbuf = vec![0u8; 4096];
        let mut err = SgErrorBuf {
            buf: errbuf.as_mut_ptr(),
            capacity: errbuf.len(),
            len: 0,
        };
        let frame = Frame {
            run,
            node_id: node.id,
            cancel: &options.cancel,
            emit,
            allocations: Mutex::new(Vec::new()),
            meter: &self.meter,
            progress: call.progress_map(),
        };
        let host = SgHost {
            struct_size: std::mem::size_of::<SgHost>() as u32,
            abi_minor: SG_ABI_MINOR,
            ctx: &frame as *const Frame as *mut c_void,
            alloc_tensor: Some(host_alloc_tensor),
            log: Some(host_log),
            progress: Some(host_progress),
            is_cancelled: Some(host_is_cancelled),
            emit_preview: Some(host_emit_preview),
            get_extension: Some(host_get_extension),
        };
        let args = SgExecArgs {
            struct_size: std::mem::size_of::<SgExecArgs>() as u32,
            inputs: c_inputs.as_ptr(),
            input_count: c_inputs.len(),
            params: c_params.as_ptr(),
            param_count: c_params.len(),
            outputs: c_outputs.as_mut_ptr(),
            output_count: c_outputs.len(),
            node_id: SgStr::from_str(node.id),
            error: &mut err,
            stream_flags: call.flags,
            chunk_index: call.index,
            chunk_offset: call.offset,
            stream_total: call.total,
            stream: stream.map_or(std::ptr::null_mut(), |s| s as *mut SgStream),
        };
        // SAFETY: ABI contract; every pointer above is valid for the call.
        let status = unsafe { execute(inst.index, inst.ptr, &host, &args) };
        let mut allocations = frame
            .allocations
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if status == SG_CANCELLED {
            // Release any objects the plugin produced before stopping.
            drop_outputs(&c_outputs);
            return Err(NodeOutcome::Cancelled);
        }
        if status != SG_OK {
            drop_outputs(&c_outputs);
            let msg = String::from_utf8_lossy(&errbuf[..err.len.min(errbuf.len())]).into_owned();
            let msg = if msg.is_empty() {
                "no error message given".to_owned()
            } else {
                msg
            };
            return Err(NodeOutcome::Failed(match status {
                SG_PANIC => label(format!("the node panicked: {msg}")),
                _ => label(msg),
            }));
        }
        // A consumer's outputs count after its last chunk only (an abort call has none).
        let final_call = call.flags & SG_STREAM_ABORT == 0
            && (!call.consumer || call.flags & SG_STREAM_LAST != 0);
        if !final_call {
            drop_outputs(&c_outputs);
            return Ok(Vec::new());
        }
        // Take ownership of the outputs, checking each against its declared port type.
        let mut outputs = Vec::with_capacity(c_outputs.len());
        let mut problem = None;
        for (port, v) in node.info.outputs.iter().zip(c_outputs.iter()) {
            match from_c_value(v, &mut allocations, inputs) {
                Ok(value) => {
                    if problem.is_none() {
                        if let Some(m) = type_problem(&port.port_type, &value) {
                            problem = Some(format!("output {:?} {m}", port.name));
                        }
                    }
                    outputs.push(value);
                }
                Err(m) => {
                    if problem.is_none() {
                        problem = Some(format!("output {:?}: {m}", port.name));
                    }
                }
            }
        }
        match problem {
            Some(m) => Err(NodeOutcome::Failed(label(m))),
            None => Ok(outputs),
        }
    }
}

/// Size and modification time of a file (None when it cannot be read, e.g. `builtin:` names).
fn file_stamp(path: &str) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

fn hash_param(p: &ParamValue, h: &mut DefaultHasher) {
    match p {
        ParamValue::Bool(b) => (0u8, *b).hash(h),
        ParamValue::Int(i) => (1u8, *i).hash(h),
        ParamValue::Float(f) => (2u8, f.to_bits()).hash(h),
        ParamValue::Str(s) => (3u8, s).hash(h),
    }
}

/// Name of a status code for messages.
pub fn status_name(s: SgStatus) -> &'static str {
    match s {
        SG_OK => "ok",
        SG_ERROR => "error",
        SG_CANCELLED => "cancelled",
        SG_PANIC => "panic",
        SG_INVALID_ARGUMENT => "invalid argument",
        SG_OUT_OF_MEMORY => "out of memory",
        _ => "unknown status",
    }
}

fn to_c_value(v: Option<&Value>) -> SgValue {
    match v {
        None => SgValue::NONE,
        Some(Value::Bool(b)) => SgValue::boolean(*b),
        Some(Value::Int(i)) => SgValue::int(*i),
        Some(Value::Float(f)) => SgValue::float(*f),
        Some(Value::Str(s)) => SgValue::string(SgStr::from_str(s)),
        Some(Value::Tensor(t)) => SgValue::tensor(t.descriptor()),
        Some(Value::Object(o)) => SgValue::object(o.raw()),
    }
}

/// Releases objects in outputs that will not be taken (failed or cancelled node).
fn drop_outputs(outputs: &[SgValue]) {
    for v in outputs {
        if v.kind == SG_VALUE_OBJECT && !v.object.ptr.is_null() {
            // SAFETY: the plugin handed us one reference; adopting and dropping releases it.
            drop(unsafe { HostObject::adopt(v.object) });
        }
    }
}

fn from_c_value(
    v: &SgValue,
    allocations: &mut [Option<Box<HostTensor>>],
    inputs: &[Option<Value>],
) -> Result<Value, String> {
    Ok(match v.kind {
        SG_VALUE_NONE => return Err("was not set by the node".into()),
        SG_VALUE_BOOL => Value::Bool(v.i != 0),
        SG_VALUE_INT => Value::Int(v.i),
        SG_VALUE_FLOAT => Value::Float(v.f),
        // SAFETY: plugin strings stay valid until the next call on the instance.
        SG_VALUE_STRING => Value::Str(
            unsafe { v.s.as_str() }
                .map_err(|_| "string is not UTF-8".to_owned())?
                .into(),
        ),
        SG_VALUE_TENSOR => {
            let data = v.tensor.data as *const u8;
            if v.tensor.byte_offset != 0 {
                return Err("tensor with a byte offset into host memory is not supported".into());
            }
            if let Some(slot) = allocations
                .iter_mut()
                .find(|a| a.as_ref().is_some_and(|t| t.data_ptr() == data))
            {
                let t = slot.take().ok_or("tensor used for two outputs")?;
                Value::Tensor(Arc::from(t))
            } else if let Some(t) = inputs.iter().flatten().find_map(|i| match i {
                Value::Tensor(t) if t.data_ptr() == data => Some(t.clone()),
                _ => None,
            }) {
                Value::Tensor(t)
            } else {
                return Err(
                    "tensor memory was not allocated by the host (use alloc_tensor)".into(),
                );
            }
        }
        SG_VALUE_OBJECT => {
            if v.object.ptr.is_null() || v.object.release.is_none() {
                return Err("object without a pointer or release function".into());
            }
            // SAFETY: one reference is transferred to the host.
            Value::Object(unsafe { HostObject::adopt(v.object) })
        }
        k => return Err(format!("has unknown value kind {k}")),
    })
}

fn type_problem(t: &PortType, v: &Value) -> Option<String> {
    let ok = match (t, v) {
        (PortType::Any, _) => true,
        (PortType::Bool, Value::Bool(_)) => true,
        (PortType::Int, Value::Int(_)) => true,
        (PortType::Float, Value::Float(_) | Value::Int(_)) => true,
        (PortType::String | PortType::Path, Value::Str(_)) => true,
        (PortType::Tensor | PortType::Semantic(_), Value::Tensor(_)) => true,
        (PortType::Object(name), Value::Object(o)) => o.type_name() == name,
        _ => false,
    };
    (!ok).then(|| format!("is declared {t} but the node produced {}", v.summary()))
}

// ---------------------------------------------------------------------------------------------
// Host services, called by plugins during execute with `ctx` = &Frame.

struct Frame<'a> {
    run: u64,
    node_id: &'a str,
    cancel: &'a CancelToken,
    emit: &'a (dyn Fn(Event) + Sync),
    allocations: Mutex<Vec<Option<Box<HostTensor>>>>,
    meter: &'a Arc<TensorMeter>,
    progress: ProgressMap,
}

unsafe fn frame<'a>(ctx: *mut c_void) -> Option<&'a Frame<'a>> {
    (ctx as *const Frame).as_ref()
}

unsafe extern "C" fn host_alloc_tensor(
    ctx: *mut c_void,
    dtype: SgDType,
    ndim: i32,
    shape: *const i64,
    device: SgDevice,
    out: *mut SgTensor,
) -> SgStatus {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(f) = frame(ctx) else {
            return SG_INVALID_ARGUMENT;
        };
        if out.is_null() || !(0..=16).contains(&ndim) || (ndim > 0 && shape.is_null()) {
            return SG_INVALID_ARGUMENT;
        }
        if device.device_type != SG_DEVICE_CPU {
            // GPU memory comes with the device extensions.
            return SG_INVALID_ARGUMENT;
        }
        let dims: &[i64] = if ndim == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(shape, ndim as usize)
        };
        let mut t = match HostTensor::zeros(dtype, dims) {
            Ok(t) => Box::new(t),
            Err(crate::value::TensorError::TooLarge { .. }) => return SG_OUT_OF_MEMORY,
            Err(_) => return SG_INVALID_ARGUMENT,
        };
        t.attach_meter(f.meter);
        let mut desc = t.descriptor();
        desc.data = t.bytes_mut().as_mut_ptr() as *mut c_void;
        *out = desc;
        lock(&f.allocations).push(Some(t));
        SG_OK
    }));
    r.unwrap_or(SG_PANIC)
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: i32, message: SgStr) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(f) = frame(ctx) else { return };
        let msg = message.to_string_lossy();
        let level_name = match level {
            SG_LOG_ERROR => {
                tracing::error!(node = f.node_id, "{msg}");
                "error"
            }
            SG_LOG_WARN => {
                tracing::warn!(node = f.node_id, "{msg}");
                "warn"
            }
            SG_LOG_INFO => {
                tracing::info!(node = f.node_id, "{msg}");
                "info"
            }
            _ => {
                tracing::debug!(node = f.node_id, "{msg}");
                "debug"
            }
        };
        (f.emit)(Event::Log {
            run: f.run,
            node: f.node_id.to_owned(),
            level: level_name.to_owned(),
            message: msg,
        });
    }));
}

unsafe extern "C" fn host_progress(ctx: *mut c_void, fraction: f64, message: SgStr) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(f) = frame(ctx) else { return };
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let message = message.to_string_lossy();
        let (fraction, message) = match f.progress {
            ProgressMap::Plain => (fraction, message),
            ProgressMap::Scaled { base, scale } => ((base + scale * fraction).min(1.0), message),
            ProgressMap::Chunk(i) => (fraction, format!("chunk {}: {message}", i + 1)),
        };
        (f.emit)(Event::NodeProgress {
            run: f.run,
            node: f.node_id.to_owned(),
            fraction,
            message,
        });
    }));
}

unsafe extern "C" fn host_is_cancelled(ctx: *mut c_void) -> bool {
    frame(ctx).is_some_and(|f| f.cancel.is_cancelled())
}

unsafe extern "C" fn host_emit_preview(ctx: *mut c_void, image: *const SgTensor, label: SgStr) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(f) = frame(ctx) else { return };
        let Some(t) = image.as_ref() else { return };
        if t.device.device_type != SG_DEVICE_CPU || !t.strides.is_null() || t.data.is_null() {
            return;
        }
        if !(0..=8).contains(&t.ndim) || (t.ndim > 0 && t.shape.is_null()) {
            return;
        }
        let dims = std::slice::from_raw_parts(t.shape, t.ndim as usize);
        let Ok(mut copy) = HostTensor::zeros(t.dtype, dims) else {
            return;
        };
        let n = copy.size_bytes();
        let src = std::slice::from_raw_parts((t.data as *const u8).add(t.byte_offset as usize), n);
        copy.bytes_mut().copy_from_slice(src);
        (f.emit)(Event::Preview {
            run: f.run,
            node: f.node_id.to_owned(),
            label: label.to_string_lossy(),
            shape: dims.to_vec(),
            image: Arc::new(copy),
        });
    }));
}

unsafe extern "C" fn host_get_extension(_ctx: *mut c_void, _id: SgStr) -> *const c_void {
    // `SG_EXT_WGPU` and `SG_EXT_CUDA` are reserved; no extension is offered yet.
    std::ptr::null()
}
