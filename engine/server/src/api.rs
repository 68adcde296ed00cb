//! The JSON API: routing, access checks, and the JSON shapes of runs, items and outputs
//! (documented in `docs/server.md`).

use crate::http::{error_response, Body, Head, Request, Response, StreamStep};
use crate::job::{self, JobError, RunRequest};
use crate::runs::{lock, unix_ms, CancelError, Item, Kept, Registry, Run, Status, SubmitError};
use serde_json::{json, Map, Value as J};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use stylegraph_abi::ffi::{SgDType, SG_DTYPE_BOOL, SG_DTYPE_FLOAT, SG_DTYPE_INT, SG_DTYPE_UINT};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::{validate, ValidationError};
use stylegraph_npy::{Array, DType};

/// How long an event stream waits for news before checking on its client.
const STREAM_WAIT: Duration = Duration::from_millis(500);

/// The application behind the HTTP layer.
pub(crate) struct Api {
    pub host: Arc<PluginHost>,
    pub registry: Arc<Registry>,
    /// SHA-256 of the token; comparing digests takes the same time whatever the guess.
    pub token_digest: Option<[u8; 32]>,
    /// Bound to a loopback address: requests must name a loopback host (DNS rebinding).
    pub loopback: bool,
    pub started: Instant,
}

fn err(status: u16, code: &str, message: impl AsRef<str>) -> Response {
    error_response(status, code, message.as_ref())
}

/// Constant-time equality of two digests.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The SHA-256 digest of a token.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True when a `Host` header names this machine's loopback interface.
fn host_is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn problem_json(p: &ValidationError) -> J {
    let mut v = serde_json::to_value(p).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("message".into(), p.to_string().into());
    }
    v
}

fn job_error(e: JobError) -> Response {
    match e {
        JobError::Syntax {
            message,
            line,
            column,
        } => Response::json(
            400,
            &json!({ "error": "graph_syntax", "message": message, "line": line, "column": column }),
        ),
        JobError::Invalid(problems) => Response::json(
            400,
            &json!({
                "error": "invalid_graph",
                "message": format!("the graph has {} problem(s)", problems.len()),
                "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
            }),
        ),
        JobError::Bad { code, message } => err(400, code, message),
    }
}

/// The NumPy dtype of a tensor, if it has one.
fn npy_dtype(d: SgDType) -> Option<DType> {
    Some(match (d.code, d.bits, d.lanes) {
        (SG_DTYPE_FLOAT, 16, 1) => DType::F16,
        (SG_DTYPE_FLOAT, 32, 1) => DType::F32,
        (SG_DTYPE_FLOAT, 64, 1) => DType::F64,
        (SG_DTYPE_UINT, 8, 1) => DType::U8,
        (SG_DTYPE_INT, 8, 1) => DType::I8,
        (SG_DTYPE_INT, 32, 1) => DType::I32,
        (SG_DTYPE_INT, 64, 1) => DType::I64,
        (SG_DTYPE_UINT, 32, 1) => DType::U32,
        (SG_DTYPE_UINT, 64, 1) => DType::U64,
        (SG_DTYPE_BOOL, 8, 1) => DType::Bool,
        _ => return None,
    })
}

fn output_url(run: &str, seed: Option<i64>, node: &str, port: &str) -> String {
    match seed {
        Some(s) => format!("/v1/runs/{run}/outputs/{node}/{port}?seed={s}"),
        None => format!("/v1/runs/{run}/outputs/{node}/{port}"),
    }
}

fn kept_json(run: &str, seed: Option<i64>, node: &str, port: &str, k: &Kept) -> J {
    let url = output_url(run, seed, node, port);
    match k {
        Kept::Bool(b) => json!({ "type": "bool", "value": b, "url": url }),
        Kept::Int(i) => json!({ "type": "int", "value": i, "url": url }),
        Kept::Float(f) => json!({ "type": "float", "value": f, "url": url }),
        Kept::Str(s) => json!({ "type": "string", "value": &**s, "url": url }),
        Kept::Tensor(t) => json!({
            "type": "tensor", "dtype": t.dtype().name(), "shape": t.shape(),
            "bytes": t.size_bytes(), "url": url,
        }),
        Kept::Evicted {
            dtype,
            shape,
            bytes,
        } => json!({
            "type": "tensor", "dtype": dtype, "shape": shape, "bytes": bytes, "evicted": true,
        }),
        Kept::Object(type_name) => json!({ "type": "object", "object_type": type_name }),
    }
}

fn item_json(run: &str, item: &Item) -> J {
    let mut outputs: Map<String, J> = Map::new();
    for (node, port, k) in &item.outputs {
        let entry = outputs
            .entry(node.clone())
            .or_insert_with(|| J::Object(Map::new()));
        if let Some(ports) = entry.as_object_mut() {
            ports.insert(port.clone(), kept_json(run, item.seed, node, port, k));
        }
    }
    let mut v = json!({
        "status": item.status,
        "duration_ms": item.duration_ms,
        "executed": item.executed,
        "cached": item.cached,
        "skipped": item.skipped,
        "failed": item.failed.iter()
            .map(|(n, e)| json!({ "node": n, "error": e }))
            .collect::<Vec<_>>(),
        "outputs": outputs,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(seed) = item.seed {
            obj.insert("seed".into(), seed.into());
        }
        if !item.problems.is_empty() {
            obj.insert("problems".into(), item.problems.clone().into());
        }
    }
    v
}

fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl Api {
    /// A run's status; `detail` adds every item with its outputs.
    fn run_json(&self, run: &Run, detail: bool) -> J {
        let st = lock(&run.state);
        let queue_ms = ms_between(run.submitted, st.started.unwrap_or_else(SystemTime::now));
        let mut failed = Vec::new();
        for item in &st.items {
            for (node, error) in &item.failed {
                let mut f = json!({ "node": node, "error": error });
                if let (Some(seed), Some(obj)) = (item.seed, f.as_object_mut()) {
                    obj.insert("seed".into(), seed.into());
                }
                failed.push(f);
            }
        }
        let mut v = json!({
            "id": run.id,
            "status": st.status,
            "cancel_requested": st.cancel_requested,
            "submitted_unix_ms": unix_ms(run.submitted),
            "started_unix_ms": st.started.map(unix_ms),
            "ended_unix_ms": st.ended.map(unix_ms),
            "queue_ms": queue_ms,
            "duration_ms": st.duration_ms,
            "items_total": run.item_count,
            "items_done": st.items.len(),
            "failed": failed,
            "url": format!("/v1/runs/{}", run.id),
            "events_url": format!("/v1/runs/{}/events", run.id),
        });
        let status = st.status;
        if let Some(obj) = v.as_object_mut() {
            if detail {
                obj.insert(
                    "items".into(),
                    st.items.iter().map(|i| item_json(&run.id, i)).collect(),
                );
            }
            drop(st);
            if status == Status::Queued {
                if let Some(p) = self.registry.queue_position(&run.id) {
                    obj.insert("queue_position".into(), p.into());
                }
            }
        }
        v
    }

    fn health(&self) -> Response {
        let (queued, running) = self.registry.load();
        Response::json(
            200,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.started.elapsed().as_secs_f64(),
                "queued": queued,
                "running": running,
                "queue_limit": self.registry.limits.queue_limit,
                "history_limit": self.registry.limits.history_limit,
                "retained_bytes": self.registry.retained_bytes(),
                "retain_budget_bytes": self.registry.limits.retain_budget,
                "plugins": self.host.plugins().len(),
                "node_types": self.host.node_types().len(),
            }),
        )
    }

    /// The same document as `stylegraph nodes --json`.
    fn nodes(&self) -> Response {
        let plugins: Vec<J> = self
            .host
            .plugins()
            .iter()
            .map(|p| {
                json!({
                    "id": p.id, "version": p.version, "description": p.description,
                    "path": p.path.display().to_string(), "abi_minor": p.abi_minor,
                })
            })
            .collect();
        let types: Vec<_> = self.host.node_types().values().collect();
        Response::json(
            200,
            &json!({
                "plugins": plugins,
                "node_types": types,
                "refused": self.host.problems().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            }),
        )
    }

    fn validate(&self, body: &[u8]) -> Response {
        let Ok(text) = std::str::from_utf8(body) else {
            return err(400, "bad_request", "the graph text is not valid UTF-8");
        };
        let graph = match job::parse_graph(text, "graph") {
            Ok(g) => g,
            Err(e) => return job_error(e),
        };
        let problems = validate(&graph, &self.host);
        Response::json(
            200,
            &json!({
                "valid": problems.is_empty(),
                "nodes": graph.nodes.len(),
                "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
            }),
        )
    }

    fn submit(&self, body: &[u8]) -> Response {
        let req: RunRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return err(
                    400,
                    "bad_request",
                    format!("the request body is not a valid run request: {e}"),
                )
            }
        };
        let job = match job::prepare(req, &self.host) {
            Ok(j) => j,
            Err(e) => return job_error(e),
        };
        match self.registry.submit(job) {
            Ok(run) => {
                tracing::info!(run = %run.id, items = run.item_count, "run queued");
                let mut v = json!({
                    "id": run.id,
                    "status": Status::Queued,
                    "url": format!("/v1/runs/{}", run.id),
                    "events_url": format!("/v1/runs/{}/events", run.id),
                });
                if let (Some(p), Some(obj)) =
                    (self.registry.queue_position(&run.id), v.as_object_mut())
                {
                    obj.insert("queue_position".into(), p.into());
                }
                Response::json(202, &v).with_header("Location", format!("/v1/runs/{}", run.id))
            }
            Err(SubmitError::QueueFull { limit }) => err(
                429,
                "queue_full",
                format!("{limit} run(s) are already waiting; try again when one has started"),
            )
            .with_header("Retry-After", "5".into()),
            Err(SubmitError::Stopping) => err(503, "stopping", "the server is shutting down"),
        }
    }

    fn list(&self) -> Response {
        let runs: Vec<J> = self
            .registry
            .list()
            .iter()
            .map(|r| self.run_json(r, false))
            .collect();
        let (queued, running) = self.registry.load();
        Response::json(
            200,
            &json!({
                "runs": runs,
                "queued": queued,
                "running": running,
                "queue_limit": self.registry.limits.queue_limit,
                "history_limit": self.registry.limits.history_limit,
            }),
        )
    }

    fn cancel(&self, id: &str) -> Response {
        match self.registry.cancel(id) {
            Ok(status) => Response::json(
                202,
                &json!({ "id": id, "status": status, "cancel_requested": true }),
            ),
            Err(CancelError::NotFound) => not_found_run(id),
            Err(CancelError::Ended(status)) => Response::json(
                409,
                &json!({
                    "error": "run_ended",
                    "message": format!("run {id} has already ended"),
                    "status": status,
                }),
            ),
        }
    }

    fn events(&self, run: Arc<Run>, query: &str) -> Response {
        let mut next = match query_param(query, "from") {
            None => 0,
            Some(v) => match v.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return err(400, "bad_request", format!("from={v:?} is not a number")),
            },
        };
        let mut finished = false;
        let source = Box::new(move || {
            if finished {
                return StreamStep::End;
            }
            let (lines, done) = run.events_after(next, STREAM_WAIT);
            next += lines.len();
            finished = done;
            if !lines.is_empty() {
                StreamStep::Lines(lines)
            } else if done {
                StreamStep::End
            } else {
                StreamStep::Idle
            }
        });
        Response {
            status: 200,
            content_type: "application/x-ndjson",
            headers: Vec::new(),
            body: Body::Stream(source),
        }
    }

    fn output(&self, run: &Run, node: &str, port: &str, query: &str) -> Response {
        let seed = match query_param(query, "seed") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(s) => Some(s),
                Err(_) => return err(400, "bad_request", format!("seed={v:?} is not a number")),
            },
        };
        let st = lock(&run.state);
        let item = match seed {
            Some(s) => {
                let Some(seeds) = &run.job.seeds else {
                    return err(
                        400,
                        "bad_request",
                        format!("run {} was not a seed sweep; leave out ?seed=", run.id),
                    );
                };
                if !seeds.contains(&s) {
                    return err(
                        404,
                        "no_such_item",
                        format!("run {} has no item for seed {s}", run.id),
                    );
                }
                st.items.iter().find(|i| i.seed == Some(s))
            }
            None => {
                if run.item_count > 1 {
                    return err(
                        400,
                        "seed_required",
                        format!(
                            "run {} has {} items (one per seed); add ?seed=N",
                            run.id, run.item_count
                        ),
                    );
                }
                st.items.first()
            }
        };
        let Some(item) = item else {
            return if st.status.ended() {
                err(
                    404,
                    "not_run",
                    format!(
                        "run {} ended ({:?}) before this item ran",
                        run.id, st.status
                    ),
                )
            } else {
                err(
                    409,
                    "not_ready",
                    format!("run {} has not finished this item yet", run.id),
                )
            };
        };
        let Some((_, _, kept)) = item.outputs.iter().find(|(n, p, _)| n == node && p == port)
        else {
            let is_kept = run.job.keep.iter().any(|(n, p)| n == node && p == port);
            return if is_kept {
                err(
                    404,
                    "not_produced",
                    format!(
                        "{node}.{port} was not produced (the node failed, was skipped or the run \
                         was cancelled)"
                    ),
                )
            } else {
                let kept: Vec<String> = run
                    .job
                    .keep
                    .iter()
                    .map(|(n, p)| format!("{n}.{p}"))
                    .collect();
                err(
                    404,
                    "not_kept",
                    format!(
                        "{node}.{port} is not kept by run {}: it keeps [{}]; list the outputs you \
                         want in the run request's \"outputs\"",
                        run.id,
                        kept.join(", ")
                    ),
                )
            };
        };
        let body = match kept {
            Kept::Bool(b) => json!(b),
            Kept::Int(i) => json!(i),
            Kept::Float(f) => json!(f),
            Kept::Str(s) => json!(&**s),
            Kept::Object(t) => {
                return err(
                    422,
                    "not_fetchable",
                    format!("{node}.{port} is a plugin object ({t}); only tensors and scalars can be fetched"),
                )
            }
            Kept::Evicted { .. } => {
                return err(
                    410,
                    "evicted",
                    format!(
                        "{node}.{port} of run {} was dropped to stay within the server's memory \
                         budget for kept outputs",
                        run.id
                    ),
                )
            }
            Kept::Tensor(t) => {
                let Some(dtype) = npy_dtype(t.dtype()) else {
                    return err(
                        422,
                        "not_fetchable",
                        format!("{node}.{port}: tensors of dtype {} have no .npy form", t.dtype().name()),
                    );
                };
                let header = Array {
                    dtype,
                    shape: t.shape().iter().map(|&d| d.max(0) as usize).collect(),
                    data: Vec::new(),
                }
                .to_npy_bytes();
                let file = match item.seed {
                    Some(s) => format!("{node}.{port}.seed{s}.npy"),
                    None => format!("{node}.{port}.npy"),
                };
                let file: String = file
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .collect();
                return Response {
                    status: 200,
                    content_type: "application/octet-stream",
                    headers: vec![(
                        "Content-Disposition",
                        format!("attachment; filename=\"{file}\""),
                    )],
                    body: Body::Tensor {
                        prefix: header,
                        tensor: t.clone(),
                    },
                };
            }
        };
        Response::json(200, &body)
    }

    fn route(&self, req: &Request) -> Response {
        let method = match req.head.method.as_str() {
            "HEAD" => "GET",
            m => m,
        };
        let Some(rest) = req.head.path.strip_prefix("/v1/") else {
            return not_found_path(&req.head.path);
        };
        let segs: Vec<&str> = rest.split('/').collect();
        let allow = |allowed: &'static str| {
            err(
                405,
                "method_not_allowed",
                format!(
                    "{} {} is not supported; use {allowed}",
                    req.head.method, req.head.path
                ),
            )
            .with_header("Allow", allowed.into())
        };
        match segs.as_slice() {
            ["health"] => match method {
                "GET" => self.health(),
                _ => allow("GET"),
            },
            ["nodes"] => match method {
                "GET" => self.nodes(),
                _ => allow("GET"),
            },
            ["validate"] => match method {
                "POST" => self.validate(&req.body),
                _ => allow("POST"),
            },
            ["runs"] => match method {
                "GET" => self.list(),
                "POST" => self.submit(&req.body),
                _ => allow("GET, POST"),
            },
            ["runs", id] => match method {
                "GET" => match self.registry.get(id) {
                    Some(run) => Response::json(200, &self.run_json(&run, true)),
                    None => not_found_run(id),
                },
                _ => allow("GET"),
            },
            ["runs", id, "events"] => match method {
                "GET" => match self.registry.get(id) {
                    Some(run) => self.events(run, &req.head.query),
                    None => not_found_run(id),
                },
                _ => allow("GET"),
            },
            ["runs", id, "cancel"] => match method {
                "POST" => self.cancel(id),
                _ => allow("POST"),
            },
            ["runs", id, "outputs", node, port] => match method {
                "GET" => match self.registry.get(id) {
                    Some(run) => self.output(&run, node, port, &req.head.query),
                    None => not_found_run(id),
                },
                _ => allow("GET"),
            },
            _ => not_found_path(&req.head.path),
        }
    }
}

fn not_found_run(id: &str) -> Response {
    err(
        404,
        "no_such_run",
        format!("there is no run {id:?} (unknown, or dropped from the history)"),
    )
}

fn not_found_path(path: &str) -> Response {
    err(
        404,
        "not_found",
        format!("no such endpoint: {path} (see docs/server.md)"),
    )
}

/// The value of a query parameter (no percent-decoding: every value this API takes is a number).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl crate::http::Handler for Api {
    fn precheck(&self, head: &Head) -> Option<Response> {
        if let Some(expected) = &self.token_digest {
            let given = head.header("authorization").and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
            let ok = given.is_some_and(|t| digests_equal(&token_digest(t), expected));
            if !ok {
                tracing::warn!(path = %head.path, "request without a valid token refused");
                return Some(
                    err(
                        401,
                        "unauthorized",
                        "this server needs the header `Authorization: Bearer <token>`",
                    )
                    .with_header("WWW-Authenticate", "Bearer realm=\"stylegraph\"".into()),
                );
            }
        }
        if head.header("origin").is_some() {
            // Browsers send Origin; automation clients do not. Refusing it keeps web pages the
            // user visits from driving the server (a run can write files).
            return Some(err(
                403,
                "browser_request",
                "requests from web pages (with an Origin header) are refused",
            ));
        }
        if self.loopback {
            match head.header("host") {
                Some(h) if host_is_loopback(h) => {}
                None if head.minor == 0 => {}
                _ => {
                    return Some(err(
                        403,
                        "bad_host",
                        "this server listens on loopback only; the Host header must be \
                         localhost or a loopback address",
                    ))
                }
            }
        }
        None
    }

    fn handle(&self, request: Request) -> Response {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(&request))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(path = %request.head.path, "request handler panicked");
                err(500, "internal", "internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:7870",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:7870",
        ] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:7870",
            "10.0.0.1",
            "localhost.evil.example",
            "[::2]:1",
            "[::1",
            "",
        ] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }

    #[test]
    fn token_comparison() {
        let d = token_digest("s3cret");
        assert!(digests_equal(&token_digest("s3cret"), &d));
        assert!(!digests_equal(&token_digest("s3cres"), &d));
        assert!(!digests_equal(&token_digest(""), &d));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("seed=3&x=1", "seed"), Some("3"));
        assert_eq!(query_param("x=1&seed=", "seed"), Some(""));
        assert_eq!(query_param("seeds=1", "seed"), None);
        assert_eq!(query_param("", "seed"), None);
    }
}
