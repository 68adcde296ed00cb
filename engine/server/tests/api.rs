//! End-to-end tests of the HTTP API: a server on 127.0.0.1:0 in this process, with the core
//! plugin and the misbehaving test plugin loaded from their shared libraries, driven over TCP.

mod common;

use common::*;
use serde_json::{json, Value as J};
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};
use stylegraph_server::{Server, ServerConfig, ServerError};

fn seed_to_z_text() -> String {
    std::fs::read_to_string(workspace_file("graphs/seed_to_z.ron")).expect("graphs/seed_to_z.ron")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(workspace_file(&format!(
        "tests/fixtures/stylegan3-t-tiny-16/cases/{name}"
    )))
    .expect("fixture")
}

/// Parses an NDJSON body into events.
fn events_of(body: &[u8]) -> Vec<J> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event {l:?}: {e}")))
        .collect()
}

#[test]
fn seed_sweep_outputs_match_the_reference_latents_byte_for_byte() {
    let server = start(config());
    let addr = server.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let pattern = dir.path().join("z/seed{seed:04}.npy");
    let id = submit(
        addr,
        &json!({
            "graph": seed_to_z_text(),
            "set": { "save.path": pattern.to_str().expect("utf-8 path") },
            "seeds": "0-1",
            "outputs": ["seed.z"],
        }),
    );
    let status = wait_ended(addr, &id);
    assert_eq!(status["status"], "finished", "{status:#}");
    assert_eq!(status["items_total"], 2);
    assert_eq!(status["items_done"], 2);
    assert!(status["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    assert!(status["queue_ms"].as_f64().is_some_and(|d| d >= 0.0));
    let items = status["items"].as_array().expect("items");
    for (item, seed) in items.iter().zip([0, 1]) {
        assert_eq!(item["seed"], seed);
        assert_eq!(item["status"], "finished");
        // The sink (save) is kept by default; its output is the path with {seed} filled in.
        let written = dir.path().join(format!("z/seed{seed:04}.npy"));
        assert_eq!(
            item["outputs"]["save"]["path"]["value"],
            written.to_str().expect("utf-8")
        );
        let z = &item["outputs"]["seed"]["z"];
        assert_eq!(z["type"], "tensor");
        assert_eq!(z["dtype"], "f64");
        assert_eq!(z["shape"], json!([1, 512]));
        let url = z["url"].as_str().expect("tensor url");
        assert_eq!(url, format!("/v1/runs/{id}/outputs/seed/z?seed={seed}"));

        let expected = fixture(&format!("seed{seed:04}_z.npy"));
        let fetched = get(addr, url);
        assert_eq!(fetched.status, 200, "{}", fetched.text());
        assert_eq!(
            fetched.header("content-type"),
            Some("application/octet-stream")
        );
        assert!(
            fetched.body == expected,
            "seed {seed}: fetched .npy differs from the fixture"
        );
        // The file the graph's save node wrote is the same array.
        assert!(std::fs::read(&written).expect("written file") == expected);

        // Strings and numbers come back as JSON.
        let path = get(
            addr,
            &format!("/v1/runs/{id}/outputs/save/path?seed={seed}"),
        );
        assert_eq!(path.status, 200);
        assert_eq!(path.json(), json!(written.to_str().expect("utf-8")));
    }

    // A sweep's outputs need the seed; an output that is not kept names the kept ones.
    let no_seed = get(addr, &format!("/v1/runs/{id}/outputs/seed/z"));
    assert_eq!(no_seed.status, 400);
    assert_eq!(no_seed.json()["error"], "seed_required");
    let other_seed = get(addr, &format!("/v1/runs/{id}/outputs/seed/z?seed=7"));
    assert_eq!(other_seed.status, 404);
    let not_kept = get(addr, &format!("/v1/runs/{id}/outputs/seed/nope?seed=0"));
    assert_eq!(not_kept.status, 404);
    assert_eq!(not_kept.json()["error"], "not_kept");
    assert!(not_kept.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("seed.z") && m.contains("save.path")));
}

#[test]
fn events_replay_for_late_readers_and_end_with_run_finished() {
    let server = start(config());
    let addr = server.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let id = submit(
        addr,
        &json!({
            "graph": seed_to_z_text(),
            "set": { "save.path": dir.path().join("z.npy").to_str().expect("utf-8") },
            "seeds": [5],
        }),
    );
    wait_ended(addr, &id);
    let r = get(addr, &format!("/v1/runs/{id}/events"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let events = events_of(&r.body);
    assert!(events
        .iter()
        .all(|e| e["id"] == id.as_str() && e["seed"] == 5));
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    for node in ["seed", "save"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "node_finished" && e["node"] == node),
            "no node_finished for {node}: {kinds:?}"
        );
    }
    // `from` skips events already seen.
    let rest = get(addr, &format!("/v1/runs/{id}/events?from=1"));
    assert_eq!(events_of(&rest.body), events[1..].to_vec());
}

#[test]
fn events_stream_live_while_the_run_is_running() {
    let server = start(config());
    let addr = server.addr();
    // Far longer than the test: it is cancelled once the stream has shown it is live.
    let id = submit(addr, &json!({ "graph": slow_graph(10_000, 50) }));

    let mut s = connect(addr);
    write!(
        s,
        "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"));
    let mut events: Vec<J> = Vec::new();
    let mut progress_seen = 0;
    while let Some(chunk) = read_chunk(&mut r) {
        for line in String::from_utf8_lossy(&chunk).lines() {
            let e: J = serde_json::from_str(line).expect("event line parses");
            if e["event"] == "node_progress" {
                progress_seen += 1;
                if progress_seen == 3 {
                    // These events arrived while the run was still running: streamed, not
                    // replayed at the end ...
                    let now = get(addr, &format!("/v1/runs/{id}")).json();
                    assert_eq!(now["status"], "running", "{now:#}");
                    // ... and promptly, not held back in a buffer: the run has made only a
                    // few more steps (50 ms each) than this reader has seen.
                    let logged = progress_events_logged(addr, &id);
                    assert!(logged < 40, "{logged} progress events logged, 3 streamed");
                    // Now stop it; the stream must end with it.
                    let c = request(addr, "POST", &format!("/v1/runs/{id}/cancel"), &[], b"");
                    assert_eq!(c.status, 202);
                }
            }
            events.push(e);
        }
    }
    assert!(progress_seen >= 3);
    assert_eq!(
        events.first().and_then(|e| e["event"].as_str()),
        Some("run_started")
    );
    assert_eq!(
        events.last().and_then(|e| e["event"].as_str()),
        Some("run_cancelled")
    );
    let status = get(addr, &format!("/v1/runs/{id}")).json();
    assert_eq!(status["status"], "cancelled");
}

/// How many progress events a run has logged so far: replays its event log on a second
/// connection and counts what arrives within 300 ms.
fn progress_events_logged(addr: std::net::SocketAddr, id: &str) -> usize {
    let mut s = connect(addr);
    write!(
        s,
        "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut r = BufReader::new(s);
    assert_eq!(read_head(&mut r).0, 200);
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    // The replay is sent at once; read for 300 ms (a few more live events may come in).
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&data)
        .matches("\"event\":\"node_progress\"")
        .count()
}

#[test]
fn a_failing_node_fails_the_run_and_is_named_with_its_error() {
    let server = start(config());
    let addr = server.addr();
    let graph = r#"(version: 1, nodes: [
        (id: "f", type: "test.fail", params: {"message": "the flux capacitor broke"}),
        (id: "after", type: "test.count", inputs: {"x": "f.y"}),
        (id: "ok", type: "test.count", params: {"offset": 2.5}),
    ])"#;
    let id = submit(addr, &json!({ "graph": graph }));
    let status = wait_ended(addr, &id);
    assert_eq!(status["status"], "failed", "{status:#}");
    let failed = status["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["node"], "f");
    assert!(failed[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("the flux capacitor broke") && e.contains("test.fail")));
    let item = &status["items"][0];
    assert_eq!(item["status"], "failed");
    assert_eq!(item["skipped"], json!(["after"]));
    // The independent branch still ran, and its float output is inline.
    assert_eq!(item["outputs"]["ok"]["y"]["value"], 2.5);
    assert_eq!(item["outputs"]["ok"]["y"]["type"], "float");
    assert_eq!(item["outputs"]["ok"]["executions"]["type"], "int");
    assert!(item["outputs"]["ok"]["executions"]["value"]
        .as_i64()
        .is_some_and(|n| n >= 1));
    assert!(item["outputs"].get("after").is_none());
    let not_produced = get(addr, &format!("/v1/runs/{id}/outputs/after/y"));
    assert_eq!(not_produced.status, 404);
    assert_eq!(not_produced.json()["error"], "not_produced");
    let y = get(addr, &format!("/v1/runs/{id}/outputs/ok/y"));
    assert_eq!(y.json(), json!(2.5));

    let events = events_of(&get(addr, &format!("/v1/runs/{id}/events")).body);
    assert!(events
        .iter()
        .any(|e| e["event"] == "node_failed" && e["node"] == "f"));
    assert!(events
        .iter()
        .any(|e| e["event"] == "node_skipped" && e["node"] == "after"));
}

#[test]
fn cancelling_a_running_run_stops_it_and_ends_its_events() {
    let server = start(config());
    let addr = server.addr();
    // 10 000 steps of 10 ms: far longer than the test waits.
    let id = submit(addr, &json!({ "graph": slow_graph(10_000, 10) }));
    wait_for(addr, &id, "running", |s| s == "running");
    let r = request(addr, "POST", &format!("/v1/runs/{id}/cancel"), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["cancel_requested"], true);
    let status = wait_ended(addr, &id);
    assert_eq!(status["status"], "cancelled", "{status:#}");
    assert_eq!(status["items"][0]["status"], "cancelled");
    let events = events_of(&get(addr, &format!("/v1/runs/{id}/events")).body);
    assert_eq!(
        events.last().and_then(|e| e["event"].as_str()),
        Some("run_cancelled")
    );
    // Cancelling an ended run is a conflict.
    let again = request(addr, "POST", &format!("/v1/runs/{id}/cancel"), &[], b"");
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["status"], "cancelled");
}

#[test]
fn a_full_queue_answers_429_and_a_queued_run_cancels_at_once() {
    let server = start(ServerConfig {
        queue_limit: 1,
        ..config()
    });
    let addr = server.addr();
    let running = submit(addr, &json!({ "graph": slow_graph(10_000, 10) }));
    wait_for(addr, &running, "running", |s| s == "running");
    let queued = submit(addr, &json!({ "graph": slow_graph(1, 0) }));
    let q = get(addr, &format!("/v1/runs/{queued}")).json();
    assert_eq!(q["status"], "queued");
    assert_eq!(q["queue_position"], 0);

    let refused = post_json(addr, "/v1/runs", &json!({ "graph": slow_graph(1, 0) }));
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.json()["error"], "queue_full");
    assert!(refused.header("retry-after").is_some());

    let c = request(addr, "POST", &format!("/v1/runs/{queued}/cancel"), &[], b"");
    assert_eq!(c.status, 202);
    assert_eq!(c.json()["status"], "cancelled");
    let q = get(addr, &format!("/v1/runs/{queued}")).json();
    assert_eq!(q["status"], "cancelled");
    assert_eq!(q["items_done"], 0);
    let events = events_of(&get(addr, &format!("/v1/runs/{queued}/events")).body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "run_cancelled");

    // The queue has room again.
    let next = submit(addr, &json!({ "graph": slow_graph(1, 0) }));
    request(
        addr,
        "POST",
        &format!("/v1/runs/{running}/cancel"),
        &[],
        b"",
    );
    assert_eq!(wait_ended(addr, &next)["status"], "finished");
    assert_eq!(wait_ended(addr, &running)["status"], "cancelled");

    let list = get(addr, "/v1/runs").json();
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [next.as_str(), queued.as_str(), running.as_str()]);
}

#[test]
fn invalid_graphs_get_400_with_every_problem() {
    let server = start(config());
    let addr = server.addr();
    let graph = r#"(version: 1, nodes: [
        (id: "a", type: "core.seed_to_zz"),
        (id: "s", type: "core.save_tensor"),
        (id: "slow", type: "test.slow", params: {"steps": -3}),
    ])"#;
    let r = post_json(addr, "/v1/runs", &json!({ "graph": graph }));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "invalid_graph");
    let problems = v["problems"].as_array().expect("problems");
    let kinds: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap_or(""),
                p["node"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("unknown_node_type", "a")), "{kinds:?}");
    assert!(kinds.contains(&("missing_input", "s")), "{kinds:?}");
    assert!(kinds.contains(&("param_range", "slow")), "{kinds:?}");
    assert!(problems.iter().any(|p| p["message"]
        .as_str()
        .is_some_and(|m| m.contains("did you mean \"core.seed_to_z\""))));

    // The same graph through /v1/validate: a successful check that found problems.
    let val = request(addr, "POST", "/v1/validate", &[], graph.as_bytes());
    assert_eq!(val.status, 200);
    assert_eq!(val.json()["valid"], false);
    assert_eq!(
        val.json()["problems"].as_array().map(Vec::len),
        Some(problems.len())
    );
    let ok = request(
        addr,
        "POST",
        "/v1/validate",
        &[],
        seed_to_z_text().as_bytes(),
    );
    assert_eq!(ok.json()["valid"], true);
    assert_eq!(ok.json()["problems"], json!([]));

    // Syntax errors carry line and column.
    let bad = "(version: 1,\n nodes: [\n   (id: \"a\" type: \"x\")])";
    let r = post_json(addr, "/v1/runs", &json!({ "graph": bad }));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "graph_syntax");
    assert_eq!(r.json()["line"], 3);
    assert!(r.json()["column"].as_u64().is_some());
    let r = request(addr, "POST", "/v1/validate", &[], bad.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["line"], 3);

    // Bad requests around a good graph.
    let cases = [
        (json!({ "graph": 5 }), "bad_request"),
        (
            json!({ "graph": seed_to_z_text(), "color": 1 }),
            "bad_request",
        ),
        (
            json!({ "graph": seed_to_z_text(), "seeds": "3-1" }),
            "bad_seeds",
        ),
        (
            json!({ "graph": seed_to_z_text(), "seeds": "0-99999" }),
            "bad_seeds",
        ),
        (
            json!({ "graph": seed_to_z_text(), "set": { "sede.seed": 1 } }),
            "unknown_node",
        ),
        (
            json!({ "graph": seed_to_z_text(), "set": { "seed.seed": [1] } }),
            "bad_set",
        ),
        (
            json!({ "graph": seed_to_z_text(), "outputs": ["seed.w"] }),
            "unknown_output",
        ),
        (
            json!({ "graph": slow_graph(1, 1), "seeds": "1" }),
            "no_seed_param",
        ),
    ];
    for (body, code) in cases {
        let r = post_json(addr, "/v1/runs", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"], code, "{body}: {}", r.text());
    }
    let r = post_json(
        addr,
        "/v1/runs",
        &json!({ "graph": seed_to_z_text(), "set": { "sede.seed": 1 } }),
    );
    assert!(r.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("did you mean \"seed\"")));
    // A set value of the wrong type is a validation problem of that param.
    let r = post_json(
        addr,
        "/v1/runs",
        &json!({ "graph": seed_to_z_text(), "set": { "seed.seed": "seven" } }),
    );
    assert_eq!(r.json()["problems"][0]["kind"], "param_type");
    let r = request(addr, "POST", "/v1/runs", &[], b"{not json");
    assert_eq!(r.status, 400);
    let r = request(addr, "POST", "/v1/validate", &[], &[0xff, 0xfe]);
    assert_eq!(r.status, 400);
}

#[test]
fn a_token_is_required_and_checked_when_configured() {
    let token = "correct-horse-battery-staple";
    let server = start(ServerConfig {
        token: Some(token.into()),
        ..config()
    });
    let addr = server.addr();
    let none = get(addr, "/v1/health");
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"], "unauthorized");
    assert!(none
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    for wrong in [
        "Bearer correct-horse-battery-stapl",
        "Bearer ",
        "Basic Zm9vOmJhcg==",
        token,
    ] {
        let r = request(addr, "GET", "/v1/health", &[("Authorization", wrong)], b"");
        assert_eq!(r.status, 401, "{wrong:?}");
    }
    let auth = format!("Bearer {token}");
    let ok = request(addr, "GET", "/v1/health", &[("Authorization", &auth)], b"");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["status"], "ok");
    // Every endpoint is checked, including before a body is read.
    let r = request(
        addr,
        "POST",
        "/v1/runs",
        &[],
        json!({ "graph": seed_to_z_text() }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);
    let r = request(addr, "GET", "/v1/runs/r1", &[], b"");
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "POST",
        "/v1/validate",
        &[("Authorization", &auth)],
        seed_to_z_text().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["valid"], true);

    // A non-loopback address without a token is refused before binding; bad tokens too.
    let host = || std::sync::Arc::new(stylegraph_core::plugin::PluginHost::new());
    let start_with = |c: ServerConfig| {
        Server::start(c, host(), Default::default(), Default::default()).map(|_| ())
    };
    let exposed = ServerConfig {
        addr: "0.0.0.0:0".parse().expect("addr"),
        ..config()
    };
    assert!(matches!(
        start_with(exposed.clone()),
        Err(ServerError::TokenRequired { .. })
    ));
    for bad in ["", "two words", "tab\there"] {
        assert!(matches!(
            start_with(ServerConfig {
                token: Some(bad.into()),
                ..config()
            }),
            Err(ServerError::BadToken)
        ));
    }
    assert!(matches!(
        start_with(ServerConfig {
            queue_limit: 0,
            ..config()
        }),
        Err(ServerError::Config(_))
    ));
}

#[test]
fn browser_requests_and_foreign_host_names_are_refused() {
    let server = start(config());
    let addr = server.addr();
    let r = request(
        addr,
        "GET",
        "/v1/health",
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "browser_request");
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
    let r = request(
        addr,
        "GET",
        "/v1/health",
        &[("Host", "evil.example:7870")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "bad_host");
    let r = request(
        addr,
        "GET",
        "/v1/health",
        &[("Host", "localhost:7870")],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_bodies_get_413_without_being_read() {
    let server = start(ServerConfig {
        body_limit: 1024,
        ..config()
    });
    let addr = server.addr();
    let big = json!({ "graph": "x".repeat(2000) }).to_string();
    let r = request(addr, "POST", "/v1/runs", &[], big.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"], "body_too_large");

    // A huge declared length with no body behind it is refused at once (and allocates nothing).
    let mut s = connect(addr);
    write!(
        s,
        "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 999999999999999\r\n\r\n{{"
    )
    .expect("send");
    let r = read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 413);

    // `Expect: 100-continue`: a body over the limit is refused before it is sent ...
    let mut s = connect(addr);
    write!(
        s,
        "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    .expect("send");
    assert_eq!(read_response(&mut BufReader::new(s)).status, 413);
    // ... and one within it is asked for with an interim 100.
    let body = seed_to_z_text();
    let s = connect(addr);
    write!(
        &s,
        "POST /v1/validate HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .expect("send");
    let mut r = BufReader::new(&s);
    assert_eq!(read_head(&mut r).0, 100);
    (&s).write_all(body.as_bytes()).expect("send body");
    let ok = read_response(&mut r);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["valid"], true);

    // Within the limit is fine; chunked request bodies are refused with 411.
    let r = request(
        addr,
        "POST",
        "/v1/validate",
        &[],
        seed_to_z_text().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let mut s = connect(addr);
    write!(
        s,
        "POST /v1/validate HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
    )
    .expect("send");
    assert_eq!(read_response(&mut BufReader::new(s)).status, 411);
}

#[test]
fn unknown_runs_and_endpoints_are_404_and_wrong_methods_405() {
    let server = start(config());
    let addr = server.addr();
    for path in [
        "/v1/runs/r999",
        "/v1/runs/r999/events",
        "/v1/runs/r999/outputs/seed/z",
        "/v1/runs/..%2F..%2Fetc%2Fpasswd",
        "/v1/nothing",
        "/",
        "/etc/passwd",
        "/v1/runs/r1/outputs/../../../../etc/passwd",
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let r = request(addr, "POST", "/v1/runs/r999/cancel", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_such_run");
    let r = request(addr, "DELETE", "/v1/runs", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = get(addr, "/v1/validate");
    assert_eq!(r.status, 405);
}

#[test]
fn health_and_nodes_describe_the_server() {
    let server = start(config());
    let addr = server.addr();
    let h = get(addr, "/v1/health").json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["queued"], 0);
    assert_eq!(h["running"], J::Null);
    assert_eq!(h["plugins"], 2);
    let n = get(addr, "/v1/nodes").json();
    let ids: Vec<&str> = n["node_types"]
        .as_array()
        .expect("node_types")
        .iter()
        .filter_map(|t| t["type_id"].as_str())
        .collect();
    for t in [
        "core.seed_to_z",
        "core.save_tensor",
        "test.fail",
        "test.slow",
    ] {
        assert!(ids.contains(&t), "{t} missing from {ids:?}");
    }
    let plugin_ids: Vec<&str> = n["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(
        plugin_ids.contains(&"core") && plugin_ids.contains(&"test"),
        "{plugin_ids:?}"
    );
    assert_eq!(n["refused"], json!([]));
}

#[test]
fn history_and_kept_outputs_stay_within_their_limits() {
    // Each z is 4096 bytes: a budget of 5000 keeps the newest one only.
    let server = start(ServerConfig {
        history_limit: 2,
        retain_budget_bytes: 5000,
        ..config()
    });
    let addr = server.addr();
    let graph = r#"(version: 1, nodes: [(id: "seed", type: "core.seed_to_z")])"#;
    let first = submit(addr, &json!({ "graph": graph, "seeds": "0-1" }));
    let status = wait_ended(addr, &first);
    assert_eq!(status["status"], "finished");
    let z0 = &status["items"][0]["outputs"]["seed"]["z"];
    assert_eq!(z0["evicted"], true, "{z0}");
    assert_eq!(z0["shape"], json!([1, 512]));
    assert!(z0.get("url").is_none());
    let r = get(addr, &format!("/v1/runs/{first}/outputs/seed/z?seed=0"));
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["error"], "evicted");
    let r = get(addr, &format!("/v1/runs/{first}/outputs/seed/z?seed=1"));
    assert_eq!(r.status, 200);
    assert!(r.body == fixture("seed0001_z.npy"));
    assert_eq!(get(addr, "/v1/health").json()["retained_bytes"], 4096);

    let second = submit(addr, &json!({ "graph": graph, "seeds": "0" }));
    wait_ended(addr, &second);
    // The newest tensor displaced the previous run's last one.
    let r = get(addr, &format!("/v1/runs/{first}/outputs/seed/z?seed=1"));
    assert_eq!(r.status, 410);
    let r = get(addr, &format!("/v1/runs/{second}/outputs/seed/z?seed=0"));
    assert!(r.body == fixture("seed0000_z.npy"));
    let third = submit(addr, &json!({ "graph": graph }));
    wait_ended(addr, &third);
    // Only two ended runs are remembered.
    assert_eq!(get(addr, &format!("/v1/runs/{first}")).status, 404);
    assert_eq!(get(addr, &format!("/v1/runs/{second}")).status, 200);
    let list = get(addr, "/v1/runs").json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(2));
}

#[test]
fn keep_alive_connections_serve_pipelined_requests_in_order() {
    let server = start(config());
    let addr = server.addr();
    let mut s = connect(addr);
    let body = seed_to_z_text();
    write!(
        s,
        "GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n\
         POST /v1/validate HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}\
         GET /v1/runs/r42 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let a = read_response(&mut r);
    assert_eq!(
        (a.status, a.header("connection")),
        (200, Some("keep-alive"))
    );
    assert_eq!(a.json()["status"], "ok");
    let b = read_response(&mut r);
    assert_eq!(b.status, 200);
    assert_eq!(b.json()["valid"], true);
    let c = read_response(&mut r);
    assert_eq!((c.status, c.header("connection")), (404, Some("close")));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty());

    // Garbage is a 400, not a crash; the server keeps serving.
    let mut s = connect(addr);
    s.write_all(b"\x00\x01 NOT HTTP\r\n\r\n").expect("send");
    assert_eq!(read_response(&mut BufReader::new(s)).status, 400);
    assert_eq!(get(addr, "/v1/health").status, 200);
}

#[test]
fn stopping_the_server_cancels_the_running_run() {
    let server = start(config());
    let addr = server.addr();
    let id = submit(addr, &json!({ "graph": slow_graph(100_000, 10) }));
    wait_for(addr, &id, "running", |s| s == "running");
    // A reader streaming the run's events sees its stream end.
    let mut s = connect(addr);
    write!(
        s,
        "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(read_chunk(&mut r).is_some());
    let started = Instant::now();
    server.stop();
    // The 1000-second run did not hold the server up.
    assert!(started.elapsed() < Duration::from_secs(30));
    // The stream ends properly: the run was cancelled, its last event says so.
    let mut last = String::new();
    while let Some(chunk) = read_chunk(&mut r) {
        last = String::from_utf8_lossy(&chunk).trim().to_owned();
    }
    let last: J = serde_json::from_str(&last).expect("last event");
    assert_eq!(last["event"], "run_cancelled");
    assert!(std::net::TcpStream::connect(addr).is_err() || get_fails(addr));
}

fn get_fails(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return true;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buf = [0u8; 16];
    !matches!(s.read(&mut buf), Ok(n) if n > 0)
}
