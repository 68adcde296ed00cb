//! Runs: the FIFO queue, the worker thread that executes runs one at a time in a shared
//! [`Session`], event logs that late readers replay, and bounded history and retained outputs.
//!
//! Why one run at a time: there is one CPU backend whose node kernels already use every core
//! (`SessionConfig::threads` runs independent branches in parallel); two runs at once would only
//! compete for the same cores and double peak memory. The session's output cache is shared, so
//! a run that repeats an earlier run's upstream nodes (the loaded model above all) reuses them,
//! and a FIFO makes both the memory use and the order of outputs on disk predictable.

use crate::job::Job;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{CancelToken, RunError, RunOptions, RunStatus, Session};
use stylegraph_core::value::{HostTensor, Value};

/// Past this many bytes of event log, a run keeps only the events that end a node or an item.
pub(crate) const EVENT_LOG_LIMIT: usize = 4 << 20;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent between statements; a panic elsewhere must
    // not take the server down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
}

impl Status {
    pub fn ended(self) -> bool {
        matches!(self, Status::Finished | Status::Failed | Status::Cancelled)
    }
}

/// How one item (one seed) of a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ItemStatus {
    Finished,
    Failed,
    Cancelled,
    /// The item's graph was refused before it ran (see `problems`).
    Rejected,
}

/// An output kept for fetching.
#[derive(Clone, Debug)]
pub(crate) enum Kept {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Tensor(Arc<HostTensor>),
    /// A tensor dropped to stay within the retention budget.
    Evicted {
        dtype: String,
        shape: Vec<i64>,
        bytes: usize,
    },
    /// A plugin object: described, never kept (it may hold a whole model).
    Object(String),
}

impl Kept {
    fn from_value(v: &Value) -> Kept {
        match v {
            Value::Bool(b) => Kept::Bool(*b),
            Value::Int(i) => Kept::Int(*i),
            Value::Float(f) => Kept::Float(*f),
            Value::Str(s) => Kept::Str(s.clone()),
            Value::Tensor(t) => Kept::Tensor(t.clone()),
            Value::Object(o) => Kept::Object(o.type_name().to_owned()),
        }
    }
    fn tensor_bytes(&self) -> usize {
        match self {
            Kept::Tensor(t) => t.size_bytes(),
            _ => 0,
        }
    }
}

/// One finished item of a run.
#[derive(Debug)]
pub(crate) struct Item {
    pub seed: Option<i64>,
    pub status: ItemStatus,
    pub duration_ms: f64,
    pub executed: Vec<String>,
    pub cached: Vec<String>,
    pub skipped: Vec<String>,
    /// Failed nodes with their errors.
    pub failed: Vec<(String, String)>,
    /// Why a rejected item did not run.
    pub problems: Vec<String>,
    /// Kept outputs: (node, port, value).
    pub outputs: Vec<(String, String, Kept)>,
}

/// The mutable part of a run.
pub(crate) struct RunState {
    pub status: Status,
    pub cancel_requested: bool,
    pub started: Option<SystemTime>,
    pub ended: Option<SystemTime>,
    started_at: Option<Instant>,
    pub duration_ms: Option<f64>,
    pub items: Vec<Item>,
    /// The event log, one JSON object per entry.
    pub events: Vec<Arc<str>>,
    event_bytes: usize,
    events_truncated: bool,
    /// Bytes of tensors this run keeps.
    retained: usize,
}

/// A submitted run.
pub(crate) struct Run {
    pub id: String,
    pub submitted: SystemTime,
    pub job: Job,
    pub item_count: usize,
    cancel: CancelToken,
    pub state: Mutex<RunState>,
    changed: Condvar,
}

impl Run {
    /// Appends an event line (called from executor threads while the run runs).
    fn push_event(&self, line: String, essential: bool) {
        let mut st = lock(&self.state);
        if st.event_bytes + line.len() > EVENT_LOG_LIMIT && !essential {
            if !st.events_truncated {
                st.events_truncated = true;
                let marker = format!(
                    "{{\"event\":\"events_truncated\",\"id\":{},\"limit_bytes\":{EVENT_LOG_LIMIT}}}",
                    json_str(&self.id)
                );
                st.event_bytes += marker.len();
                st.events.push(marker.into());
            }
            return;
        }
        st.event_bytes += line.len();
        st.events.push(line.into());
        drop(st);
        self.changed.notify_all();
    }

    /// An event of the executor, tagged with the server's run id and the item's seed.
    fn push_core_event(&self, seed: Option<i64>, e: &Event) {
        let essential = !matches!(
            e,
            Event::NodeProgress { .. } | Event::Log { .. } | Event::Preview { .. }
        );
        let json = e.to_json_line();
        let tags = match seed {
            Some(s) => format!("\"id\":{},\"seed\":{s}", json_str(&self.id)),
            None => format!("\"id\":{}", json_str(&self.id)),
        };
        // `to_json_line` always writes an object with at least the `event` field.
        let line = match json.strip_prefix('{') {
            Some(rest) => format!("{{{tags},{rest}"),
            None => format!("{{{tags},\"event\":\"unknown\"}}"),
        };
        self.push_event(line, essential);
    }

    /// Waits for events after `next`: returns new ones, or `None` when the run has ended and
    /// all its events were returned. Waits at most `wait`.
    pub fn events_after(&self, next: usize, wait: Duration) -> (Vec<Arc<str>>, bool) {
        let mut st = lock(&self.state);
        if next >= st.events.len() && !st.status.ended() {
            st = self
                .changed
                .wait_timeout(st, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let new = st
            .events
            .get(next..)
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let done = st.status.ended() && next + new.len() >= st.events.len();
        (new, done)
    }

    /// Ends a run that never started (cancelled while queued, or at shutdown). The event goes
    /// in before the status changes, so a reader that sees the end has seen every event.
    fn end_unstarted(&self) {
        self.push_event(cancelled_before_start(&self.id), true);
        let mut st = lock(&self.state);
        st.cancel_requested = true;
        self.set_ended(&mut st, Status::Cancelled);
        drop(st);
        self.changed.notify_all();
    }

    fn set_ended(&self, st: &mut RunState, status: Status) {
        st.status = status;
        let now = SystemTime::now();
        st.ended = Some(now);
        st.duration_ms = st.started_at.map(|t| t.elapsed().as_secs_f64() * 1000.0);
    }
}

/// JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Why a submission was refused.
pub(crate) enum SubmitError {
    QueueFull { limit: usize },
    Stopping,
}

/// Why a cancel request had no effect.
pub(crate) enum CancelError {
    NotFound,
    Ended(Status),
}

/// Limits of the registry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegistryLimits {
    pub queue_limit: usize,
    pub history_limit: usize,
    pub retain_budget: usize,
}

struct RegState {
    next: u64,
    runs: HashMap<String, Arc<Run>>,
    /// Every known run, oldest first.
    order: VecDeque<Arc<Run>>,
    queue: VecDeque<Arc<Run>>,
    running: Option<Arc<Run>>,
    retained: usize,
    /// Items holding tensors, oldest first: what the retention budget evicts.
    kept: VecDeque<(Weak<Run>, usize)>,
    stopping: bool,
}

/// All runs: queued, running and recent.
pub(crate) struct Registry {
    state: Mutex<RegState>,
    work: Condvar,
    pub limits: RegistryLimits,
}

impl Registry {
    pub fn new(limits: RegistryLimits) -> Registry {
        Registry {
            state: Mutex::new(RegState {
                next: 1,
                runs: HashMap::new(),
                order: VecDeque::new(),
                queue: VecDeque::new(),
                running: None,
                retained: 0,
                kept: VecDeque::new(),
                stopping: false,
            }),
            work: Condvar::new(),
            limits,
        }
    }

    /// Queues a job. Returns the new run.
    pub fn submit(&self, job: Job) -> Result<Arc<Run>, SubmitError> {
        let mut reg = lock(&self.state);
        if reg.stopping {
            return Err(SubmitError::Stopping);
        }
        if reg.queue.len() >= self.limits.queue_limit {
            return Err(SubmitError::QueueFull {
                limit: self.limits.queue_limit,
            });
        }
        let id = format!("r{}", reg.next);
        reg.next += 1;
        let item_count = job.seeds.as_ref().map_or(1, Vec::len);
        let run = Arc::new(Run {
            id: id.clone(),
            submitted: SystemTime::now(),
            job,
            item_count,
            cancel: CancelToken::new(),
            state: Mutex::new(RunState {
                status: Status::Queued,
                cancel_requested: false,
                started: None,
                ended: None,
                started_at: None,
                duration_ms: None,
                items: Vec::new(),
                events: Vec::new(),
                event_bytes: 0,
                events_truncated: false,
                retained: 0,
            }),
            changed: Condvar::new(),
        });
        reg.runs.insert(id, run.clone());
        reg.order.push_back(run.clone());
        reg.queue.push_back(run.clone());
        drop(reg);
        self.work.notify_all();
        Ok(run)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Run>> {
        lock(&self.state).runs.get(id).cloned()
    }

    /// Every known run, newest first.
    pub fn list(&self) -> Vec<Arc<Run>> {
        lock(&self.state).order.iter().rev().cloned().collect()
    }

    /// (queued runs, id of the running run).
    pub fn load(&self) -> (usize, Option<String>) {
        let reg = lock(&self.state);
        (reg.queue.len(), reg.running.as_ref().map(|r| r.id.clone()))
    }

    /// Position of a queued run (0 = next).
    pub fn queue_position(&self, id: &str) -> Option<usize> {
        lock(&self.state).queue.iter().position(|r| r.id == id)
    }

    /// Bytes of tensors kept by all runs.
    pub fn retained_bytes(&self) -> usize {
        lock(&self.state).retained
    }

    /// Cancels a queued run at once, or asks a running one to stop.
    pub fn cancel(&self, id: &str) -> Result<Status, CancelError> {
        let mut reg = lock(&self.state);
        let run = reg.runs.get(id).cloned().ok_or(CancelError::NotFound)?;
        let mut st = lock(&run.state);
        match st.status {
            Status::Queued => {
                drop(st);
                reg.queue.retain(|r| r.id != id);
                run.end_unstarted();
                self.trim_history(&mut reg);
                Ok(Status::Cancelled)
            }
            Status::Running => {
                st.cancel_requested = true;
                run.cancel.cancel();
                Ok(Status::Running)
            }
            ended => Err(CancelError::Ended(ended)),
        }
    }

    /// Stops: cancels the running run and every queued one; the worker exits.
    pub fn stop(&self) {
        let mut reg = lock(&self.state);
        reg.stopping = true;
        if let Some(r) = &reg.running {
            lock(&r.state).cancel_requested = true;
            r.cancel.cancel();
        }
        let queued: Vec<Arc<Run>> = reg.queue.drain(..).collect();
        for run in queued {
            run.end_unstarted();
        }
        drop(reg);
        self.work.notify_all();
    }

    /// Drops the oldest ended runs beyond the history limit.
    fn trim_history(&self, reg: &mut RegState) {
        loop {
            let ended: Vec<usize> = reg
                .order
                .iter()
                .enumerate()
                .filter(|(_, r)| lock(&r.state).status.ended())
                .map(|(i, _)| i)
                .collect();
            if ended.len() <= self.limits.history_limit {
                return;
            }
            let Some(&oldest) = ended.first() else { return };
            if let Some(run) = reg.order.remove(oldest) {
                reg.runs.remove(&run.id);
                let bytes = lock(&run.state).retained;
                reg.retained = reg.retained.saturating_sub(bytes);
                tracing::debug!(run = %run.id, "run dropped from history");
            }
        }
    }

    /// Records a finished item, then drops the oldest kept tensors (of any run, this one
    /// included) until the retention budget holds.
    fn add_item(&self, run: &Arc<Run>, item: Item) {
        let mut reg = lock(&self.state);
        let bytes: usize = item.outputs.iter().map(|(_, _, k)| k.tensor_bytes()).sum();
        {
            let mut st = lock(&run.state);
            if bytes > 0 {
                reg.kept.push_back((Arc::downgrade(run), st.items.len()));
            }
            st.items.push(item);
            st.retained += bytes;
        }
        reg.retained += bytes;
        while reg.retained > self.limits.retain_budget {
            let Some((weak, index)) = reg.kept.pop_front() else {
                break;
            };
            // A run dropped from the history gave its bytes back already.
            let Some(r) = weak.upgrade() else { continue };
            let mut st = lock(&r.state);
            let Some(item) = st.items.get_mut(index) else {
                continue;
            };
            let mut freed = 0;
            for (_, _, kept) in item.outputs.iter_mut() {
                if let Kept::Tensor(t) = kept {
                    freed += t.size_bytes();
                    *kept = Kept::Evicted {
                        dtype: t.dtype().name(),
                        shape: t.shape().to_vec(),
                        bytes: t.size_bytes(),
                    };
                }
            }
            tracing::debug!(run = %r.id, seed = ?item.seed, freed, "kept tensors evicted");
            st.retained = st.retained.saturating_sub(freed);
            reg.retained = reg.retained.saturating_sub(freed);
        }
        drop(reg);
        run.changed.notify_all();
    }

    /// The worker: executes queued runs one at a time until [`Registry::stop`].
    pub fn work(&self, session: &Session) {
        loop {
            let run = {
                let mut reg = lock(&self.state);
                loop {
                    if reg.stopping {
                        return;
                    }
                    if let Some(r) = reg.queue.pop_front() {
                        // Marked running under the registry lock, so that a cancel sees either
                        // a queued run still in the queue or a running one.
                        {
                            let mut st = lock(&r.state);
                            st.status = Status::Running;
                            st.started = Some(SystemTime::now());
                            st.started_at = Some(Instant::now());
                        }
                        reg.running = Some(r.clone());
                        break r;
                    }
                    reg = self.work.wait(reg).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.execute(session, &run);
            let mut reg = lock(&self.state);
            reg.running = None;
            self.trim_history(&mut reg);
        }
    }

    fn execute(&self, session: &Session, run: &Arc<Run>) {
        run.changed.notify_all();
        tracing::info!(run = %run.id, items = run.item_count, "run started");
        let mut ran_all = true;
        for seed in run.job.items() {
            if run.cancel.is_cancelled() {
                ran_all = false;
                break;
            }
            let graph = run.job.graph_for(seed);
            let sink_run = run.clone();
            let options = RunOptions {
                cancel: run.cancel.clone(),
                on_event: Some(Arc::new(move |e: &Event| sink_run.push_core_event(seed, e))),
            };
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session.run(&graph, &options)
            }));
            let item = match outcome {
                Ok(Ok(report)) => {
                    let outputs = run
                        .job
                        .keep
                        .iter()
                        .filter_map(|(n, p)| {
                            report
                                .output(n, p)
                                .map(|v| (n.clone(), p.clone(), Kept::from_value(v)))
                        })
                        .collect();
                    Item {
                        seed,
                        status: match report.status {
                            RunStatus::Finished => ItemStatus::Finished,
                            RunStatus::Failed => ItemStatus::Failed,
                            RunStatus::Cancelled => ItemStatus::Cancelled,
                        },
                        duration_ms: report.duration_ms,
                        executed: report.executed,
                        cached: report.cached,
                        skipped: report.skipped,
                        failed: report.failed,
                        problems: Vec::new(),
                        outputs,
                    }
                }
                Ok(Err(RunError::Invalid(problems))) => {
                    let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                    run.push_event(item_error_event(&run.id, seed, &problems), true);
                    rejected(seed, started, problems)
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(run = %run.id, "the executor panicked: {msg}");
                    let problems = vec![format!("internal error: the executor panicked: {msg}")];
                    run.push_event(item_error_event(&run.id, seed, &problems), true);
                    rejected(seed, started, problems)
                }
            };
            let cancelled = item.status == ItemStatus::Cancelled;
            self.add_item(run, item);
            if cancelled {
                ran_all = false;
                break;
            }
        }
        let mut st = lock(&run.state);
        let status = if run.cancel.is_cancelled() && !ran_all {
            Status::Cancelled
        } else if st.items.iter().any(|i| i.status != ItemStatus::Finished) {
            Status::Failed
        } else {
            Status::Finished
        };
        run.set_ended(&mut st, status);
        tracing::info!(run = %run.id, ?status, "run ended");
        drop(st);
        run.changed.notify_all();
    }
}

fn rejected(seed: Option<i64>, started: Instant, problems: Vec<String>) -> Item {
    Item {
        seed,
        status: ItemStatus::Rejected,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        executed: Vec::new(),
        cached: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
        problems,
        outputs: Vec::new(),
    }
}

fn cancelled_before_start(id: &str) -> String {
    format!(
        "{{\"id\":{},\"event\":\"run_cancelled\",\"duration_ms\":0.0}}",
        json_str(id)
    )
}

fn item_error_event(id: &str, seed: Option<i64>, problems: &[String]) -> String {
    let mut v = serde_json::json!({ "id": id, "event": "run_error", "problems": problems });
    if let (Some(s), Some(obj)) = (seed, v.as_object_mut()) {
        obj.insert("seed".into(), s.into());
    }
    v.to_string()
}
