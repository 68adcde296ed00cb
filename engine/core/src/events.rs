//! Events a run emits. The CLI renders them as progress bars or JSON lines (`--events json`,
//! one object per line with an `"event"` field), the editor shows them on nodes.

use crate::value::HostTensor;
use serde::Serialize;
use std::sync::Arc;

/// Receives events; called from worker threads.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Something that happened during a run. Every event carries the run number.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run began with this many nodes.
    RunStarted { run: u64, nodes: usize },
    /// A node began executing (not sent for cache hits).
    NodeStarted {
        run: u64,
        node: String,
        node_type: String,
    },
    /// A node reported progress in [0, 1].
    NodeProgress {
        run: u64,
        node: String,
        fraction: f64,
        message: String,
    },
    /// A node produced its outputs, by executing (`cached: false`) or from the cache.
    NodeFinished {
        run: u64,
        node: String,
        node_type: String,
        duration_ms: f64,
        cached: bool,
    },
    /// A node failed; its downstream nodes are skipped.
    NodeFailed {
        run: u64,
        node: String,
        node_type: String,
        error: String,
    },
    /// A node was not run because an upstream node failed.
    NodeSkipped {
        run: u64,
        node: String,
        reason: String,
    },
    /// A log line from a node.
    Log {
        run: u64,
        node: String,
        level: String,
        message: String,
    },
    /// A node sent an image preview (the pixels travel in-process only).
    Preview {
        run: u64,
        node: String,
        label: String,
        shape: Vec<i64>,
        #[serde(skip)]
        image: Arc<HostTensor>,
    },
    /// The run ended (possibly with failed nodes).
    RunFinished {
        run: u64,
        duration_ms: f64,
        executed: usize,
        cached: usize,
        failed: usize,
        skipped: usize,
    },
    /// The run was cancelled; nodes not yet started did not run.
    RunCancelled { run: u64, duration_ms: f64 },
}

impl Event {
    /// The event as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"message\":{:?}}}", e.to_string()))
    }
}
