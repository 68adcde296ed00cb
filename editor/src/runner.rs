//! Runs graphs on a background thread with one long-lived [`Session`], so that a re-run after a
//! param change executes only what is downstream of it (the engine's cache serves the rest).
//!
//! Requests go through a [`LatestWorker`]: while a run is in progress only the newest request
//! waits; older waiting ones are never computed. Everything the UI shows comes back as
//! [`RunUpdate`]s tagged with the request's generation, with pictures already converted here, off
//! the UI thread.

use crate::preview::{tensor_to_image, view_output, OutputView};
use crate::worker::LatestWorker;
use egui::ColorImage;
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{CancelToken, RunError, RunOptions, RunStatus, Session};
use stylegraph_core::graph::Graph;
use stylegraph_core::validate::ValidationError;
use stylegraph_core::value::{HostTensor, Value};

/// Something for the UI from the run thread.
pub enum RunUpdate {
    /// A run began with these nodes.
    Started { generation: u64, nodes: Vec<String> },
    /// An engine event (every kind except previews).
    Event { generation: u64, event: Event },
    /// A node sent a picture.
    Preview {
        generation: u64,
        node: String,
        label: String,
        image: Arc<ColorImage>,
    },
    /// The run ended.
    Finished {
        generation: u64,
        outcome: Box<RunOutcome>,
    },
}

impl RunUpdate {
    pub fn generation(&self) -> u64 {
        match self {
            RunUpdate::Started { generation, .. }
            | RunUpdate::Event { generation, .. }
            | RunUpdate::Preview { generation, .. }
            | RunUpdate::Finished { generation, .. } => *generation,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Finished,
    Failed,
    Cancelled,
    /// The graph did not validate; nothing ran.
    Invalid,
}

/// The result of one run, ready to show.
pub struct RunOutcome {
    pub ending: Ending,
    /// Validation problems when `ending` is `Invalid`.
    pub invalid: Vec<ValidationError>,
    pub duration_ms: f64,
    pub executed: Vec<String>,
    pub cached: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    /// Per node: (output port, what to show).
    pub outputs: HashMap<String, Vec<(String, OutputView)>>,
    /// Memory held by the engine's cache after the run.
    pub cache_bytes: usize,
}

/// A graph to run.
pub struct RunRequest {
    pub graph: Graph,
}

/// Wakes the UI when an update is waiting (an egui repaint request).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The run thread and its channel.
pub struct Runner {
    worker: LatestWorker<RunRequest>,
    updates: Receiver<RunUpdate>,
    current_cancel: Arc<Mutex<Option<CancelToken>>>,
    session: Arc<Session>,
    waker: Arc<Mutex<Option<Waker>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runner {
    /// Starts the run thread for a session.
    pub fn new(session: Arc<Session>) -> Runner {
        let (tx, rx) = mpsc::channel();
        let current_cancel: Arc<Mutex<Option<CancelToken>>> = Arc::new(Mutex::new(None));
        let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let job = {
            let session = session.clone();
            let current_cancel = current_cancel.clone();
            let waker = waker.clone();
            let mut previous: HashMap<(String, String), (Arc<HostTensor>, OutputView)> =
                HashMap::new();
            move |generation: u64, req: RunRequest| {
                let token = CancelToken::new();
                *lock(&current_cancel) = Some(token.clone());
                run_one(
                    &session,
                    generation,
                    &req.graph,
                    token,
                    &tx,
                    &waker,
                    &mut previous,
                );
                *lock(&current_cancel) = None;
            }
        };
        Runner {
            worker: LatestWorker::spawn("stylegraph-run", job),
            updates: rx,
            current_cancel,
            session,
            waker,
        }
    }

    /// Sets what to call when updates are waiting.
    pub fn set_waker(&self, waker: Waker) {
        *lock(&self.waker) = Some(waker);
    }

    /// Queues a run of `graph`; replaces a queued run that has not started. Returns its
    /// generation.
    pub fn submit(&self, graph: Graph) -> u64 {
        self.worker.submit(RunRequest { graph })
    }

    /// Cancels the run in progress and forgets a queued one.
    pub fn cancel(&self) {
        self.worker.clear_pending();
        if let Some(t) = lock(&self.current_cancel).as_ref() {
            t.cancel();
        }
    }

    /// True while a run is in progress or queued.
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }

    /// Requests replaced before they started.
    pub fn dropped_requests(&self) -> u64 {
        self.worker.dropped()
    }

    /// Updates received so far.
    pub fn poll(&self) -> Vec<RunUpdate> {
        self.updates.try_iter().collect()
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Stop a run in progress so that joining the thread does not wait for it.
        self.cancel();
    }
}

fn run_one(
    session: &Session,
    generation: u64,
    graph: &Graph,
    token: CancelToken,
    tx: &Sender<RunUpdate>,
    waker: &Arc<Mutex<Option<Waker>>>,
    previous: &mut HashMap<(String, String), (Arc<HostTensor>, OutputView)>,
) {
    let wake = {
        let waker = waker.clone();
        move || {
            if let Some(w) = lock(&waker).as_ref() {
                w();
            }
        }
    };
    let send = {
        let tx = tx.clone();
        let wake = wake.clone();
        move |u: RunUpdate| {
            // The UI may be gone while a run finishes; nothing to do then.
            let _ = tx.send(u);
            wake();
        }
    };
    send(RunUpdate::Started {
        generation,
        nodes: graph.nodes.iter().map(|n| n.id.clone()).collect(),
    });
    let sink_send = send.clone();
    let options = RunOptions {
        cancel: token,
        on_event: Some(Arc::new(move |e: &Event| match e {
            Event::Preview {
                node, label, image, ..
            } => {
                if let Some(img) = tensor_to_image(image) {
                    sink_send(RunUpdate::Preview {
                        generation,
                        node: node.clone(),
                        label: label.clone(),
                        image: Arc::new(img),
                    });
                }
            }
            other => sink_send(RunUpdate::Event {
                generation,
                event: other.clone(),
            }),
        })),
    };
    let host = session.host().clone();
    let outcome = match session.run(graph, &options) {
        Err(RunError::Invalid(errors)) => RunOutcome {
            ending: Ending::Invalid,
            invalid: errors,
            duration_ms: 0.0,
            executed: Vec::new(),
            cached: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            outputs: HashMap::new(),
            cache_bytes: session.cache_bytes(),
        },
        Ok(report) => {
            let mut outputs = HashMap::new();
            let mut kept = HashMap::new();
            for (node_id, values) in &report.outputs {
                let Some(info) = graph
                    .node(node_id)
                    .and_then(|n| host.node_type(&n.node_type))
                else {
                    continue;
                };
                let mut views = Vec::new();
                for (port_name, value) in values {
                    let Some(port) = info.output(port_name) else {
                        continue;
                    };
                    let key = (node_id.clone(), port_name.clone());
                    // A cached output is the same tensor as last time: reuse its picture.
                    let view = match (value, previous.get(&key)) {
                        (Value::Tensor(t), Some((old, view))) if Arc::ptr_eq(t, old) => {
                            view.clone()
                        }
                        _ => view_output(port, value),
                    };
                    if let Value::Tensor(t) = value {
                        kept.insert(key, (t.clone(), view.clone()));
                    }
                    views.push((port_name.clone(), view));
                }
                outputs.insert(node_id.clone(), views);
            }
            *previous = kept;
            RunOutcome {
                ending: match report.status {
                    RunStatus::Finished => Ending::Finished,
                    RunStatus::Failed => Ending::Failed,
                    RunStatus::Cancelled => Ending::Cancelled,
                },
                invalid: Vec::new(),
                duration_ms: report.duration_ms,
                executed: report.executed,
                cached: report.cached,
                failed: report.failed,
                skipped: report.skipped,
                outputs,
                cache_bytes: session.cache_bytes(),
            }
        }
    };
    send(RunUpdate::Finished {
        generation,
        outcome: Box::new(outcome),
    });
}
