//! What the UI knows about runs: each node's status, outputs and previews, and the last run's
//! summary, built from the [`RunUpdate`]s of the run thread.

use crate::preview::OutputView;
use crate::runner::{Ending, RunUpdate};
use egui::ColorImage;
use std::collections::HashMap;
use std::sync::Arc;
use stylegraph_core::events::Event;

/// The status of a node in the current (or last) run.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeStatus {
    /// Not part of a run yet.
    Idle,
    /// Waiting for its inputs.
    Queued,
    /// Executing, with progress if the node reports it.
    Running {
        fraction: Option<f64>,
        message: String,
    },
    /// Served from the cache.
    Cached,
    /// Executed.
    Done { ms: f64 },
    /// Failed with this error.
    Failed { error: String },
    /// Not run because an upstream node failed.
    Skipped { reason: String },
    /// The run was cancelled before the node finished.
    Cancelled,
    /// The graph did not validate; these are the problems on this node.
    Invalid { problems: Vec<String> },
}

impl NodeStatus {
    /// A short word for badges and tests.
    pub fn label(&self) -> &'static str {
        match self {
            NodeStatus::Idle => "idle",
            NodeStatus::Queued => "queued",
            NodeStatus::Running { .. } => "running",
            NodeStatus::Cached => "cached",
            NodeStatus::Done { .. } => "done",
            NodeStatus::Failed { .. } => "failed",
            NodeStatus::Skipped { .. } => "skipped",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::Invalid { .. } => "invalid",
        }
    }
}

/// The summary of the last finished run, for the status bar.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub ending: Ending,
    pub duration_ms: f64,
    pub executed: usize,
    pub cached: usize,
    pub failed: usize,
}

/// Run state as the UI shows it.
#[derive(Default)]
pub struct RunView {
    /// Generation of the run whose updates are shown; older updates are dropped.
    pub generation: u64,
    /// True between a run's start and its end.
    pub running: bool,
    pub statuses: HashMap<String, NodeStatus>,
    /// Per node: (output port, view) of the last run that produced it.
    pub outputs: HashMap<String, Vec<(String, OutputView)>>,
    /// Per node: (label, picture) sent as previews during the last run of the node.
    pub previews: HashMap<String, Vec<(String, Arc<ColorImage>)>>,
    pub last: Option<RunSummary>,
    /// Validation problems of the last attempted run.
    pub invalid: Vec<String>,
    /// Memory held by the engine's cache after the last run.
    pub cache_bytes: usize,
    /// Updates dropped because a newer run had already been shown.
    pub stale_dropped: u64,
}

impl RunView {
    /// The status of a node (idle when unknown).
    pub fn status(&self, node: &str) -> &NodeStatus {
        self.statuses.get(node).unwrap_or(&NodeStatus::Idle)
    }

    /// Applies one update. Returns false if it was stale and dropped.
    pub fn apply(&mut self, update: RunUpdate) -> bool {
        let generation = update.generation();
        if generation < self.generation {
            self.stale_dropped += 1;
            return false;
        }
        self.generation = generation;
        match update {
            RunUpdate::Started { nodes, .. } => {
                self.running = true;
                for n in nodes {
                    self.statuses.insert(n, NodeStatus::Queued);
                }
            }
            RunUpdate::Event { event, .. } => self.apply_event(event),
            RunUpdate::Preview {
                node, label, image, ..
            } => {
                let list = self.previews.entry(node).or_default();
                match list.iter_mut().find(|(l, _)| *l == label) {
                    Some(slot) => slot.1 = image,
                    None => list.push((label, image)),
                }
            }
            RunUpdate::Finished { outcome, .. } => {
                self.running = false;
                self.cache_bytes = outcome.cache_bytes;
                self.invalid = outcome.invalid.iter().map(|e| e.to_string()).collect();
                if outcome.ending == Ending::Invalid {
                    let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
                    for e in &outcome.invalid {
                        if let Some(n) = e.node() {
                            by_node.entry(n.to_owned()).or_default().push(e.to_string());
                        }
                    }
                    for s in self.statuses.values_mut() {
                        if *s == NodeStatus::Queued {
                            *s = NodeStatus::Idle;
                        }
                    }
                    for (n, problems) in by_node {
                        self.statuses.insert(n, NodeStatus::Invalid { problems });
                    }
                } else {
                    for s in self.statuses.values_mut() {
                        if matches!(s, NodeStatus::Queued | NodeStatus::Running { .. }) {
                            *s = NodeStatus::Cancelled;
                        }
                    }
                }
                // Nodes that produced outputs replace theirs; others keep the last ones shown.
                for (node, views) in outcome.outputs {
                    self.outputs.insert(node, views);
                }
                self.last = Some(RunSummary {
                    ending: outcome.ending,
                    duration_ms: outcome.duration_ms,
                    executed: outcome.executed.len(),
                    cached: outcome.cached.len(),
                    failed: outcome.failed.len(),
                });
            }
        }
        true
    }

    fn apply_event(&mut self, event: Event) {
        match event {
            Event::NodeStarted { node, .. } => {
                // A node that runs again sends its previews again.
                self.previews.remove(&node);
                self.statuses.insert(
                    node,
                    NodeStatus::Running {
                        fraction: None,
                        message: String::new(),
                    },
                );
            }
            Event::NodeProgress {
                node,
                fraction,
                message,
                ..
            } => {
                self.statuses.insert(
                    node,
                    NodeStatus::Running {
                        fraction: Some(fraction),
                        message,
                    },
                );
            }
            Event::NodeFinished {
                node,
                duration_ms,
                cached,
                ..
            } => {
                let s = if cached {
                    NodeStatus::Cached
                } else {
                    NodeStatus::Done { ms: duration_ms }
                };
                self.statuses.insert(node, s);
            }
            Event::NodeFailed { node, error, .. } => {
                self.outputs.remove(&node);
                self.statuses.insert(node, NodeStatus::Failed { error });
            }
            Event::NodeSkipped { node, reason, .. } => {
                self.outputs.remove(&node);
                self.statuses.insert(node, NodeStatus::Skipped { reason });
            }
            _ => {}
        }
    }

    /// Forgets a node (it was deleted).
    pub fn forget(&mut self, node: &str) {
        self.statuses.remove(node);
        self.outputs.remove(node);
        self.previews.remove(node);
    }
}
