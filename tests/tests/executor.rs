//! The executor: incremental re-runs from the cache, cache policy, failures, panics,
//! cancellation, concurrency and events.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stylegraph_core::events::Event;
use stylegraph_core::exec::{CancelToken, RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, ParamValue};
use stylegraph_core::value::Value;
use stylegraph_tests::host_with_test_plugins;

fn session(config: SessionConfig) -> Session {
    Session::new(Arc::new(host_with_test_plugins()), config)
}

fn graph(text: &str) -> Graph {
    Graph::from_ron_str(text, "<test>").unwrap_or_else(|e| panic!("{e}"))
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn float(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).expect("a number")
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(i)) => *i,
        other => panic!("expected an int, got {other:?}"),
    }
}

const CHAIN: &str = r#"(version: 1, nodes: [
    (id: "a", type: "test.count", params: {"offset": 1.0}),
    (id: "b", type: "test.count", params: {"offset": 2.0}, inputs: {"x": "a.y"}),
    (id: "c", type: "test.count", params: {"offset": 3.0}, inputs: {"x": "b.y"}),
    (id: "d", type: "test.count", params: {"offset": 10.0}),
])"#;

#[test]
fn changing_one_param_re_executes_only_what_is_downstream() {
    let s = session(SessionConfig::default());
    let mut g = graph(CHAIN);
    let opts = RunOptions::default();

    let r1 = s.run(&g, &opts).expect("run 1");
    assert_eq!(r1.status, RunStatus::Finished);
    assert_eq!(set(&r1.executed), names(&["a", "b", "c", "d"]));
    assert_eq!(float(r1.output("c", "y")), 6.0);
    let count_after_1 = int(r1.output("c", "executions"));

    // Unchanged graph: everything from the cache, nothing executes.
    let r2 = s.run(&g, &opts).expect("run 2");
    assert!(r2.executed.is_empty(), "{:?}", r2.executed);
    assert_eq!(set(&r2.cached), names(&["a", "b", "c", "d"]));

    // Change b's param: b and c run again, a and d come from the cache.
    g.node_mut("b")
        .expect("b")
        .params
        .insert("offset".into(), ParamValue::Float(5.0));
    let r3 = s.run(&g, &opts).expect("run 3");
    assert_eq!(set(&r3.executed), names(&["b", "c"]));
    assert_eq!(set(&r3.cached), names(&["a", "d"]));
    assert_eq!(float(r3.output("c", "y")), 9.0);
    // The plugin itself saw exactly two more executions.
    assert_eq!(int(r3.output("c", "executions")), count_after_1 + 2);

    // Changing a param back hits the cache again (keys are content-based, not version counters).
    g.node_mut("b")
        .expect("b")
        .params
        .insert("offset".into(), ParamValue::Float(2.0));
    let r4 = s.run(&g, &opts).expect("run 4");
    assert!(r4.executed.is_empty(), "{:?}", r4.executed);
    assert_eq!(float(r4.output("c", "y")), 6.0);
}

#[test]
fn non_deterministic_nodes_rerun_unless_seeded() {
    let s = session(SessionConfig::default());
    let opts = RunOptions::default();
    let unseeded = graph(
        r#"(version: 1, nodes: [
            (id: "r", type: "test.random"),
            (id: "after", type: "test.count", inputs: {"x": "r.value"}),
        ])"#,
    );
    s.run(&unseeded, &opts).expect("run");
    let r = s.run(&unseeded, &opts).expect("run");
    assert_eq!(
        set(&r.executed),
        names(&["r", "after"]),
        "unseeded random must not be cached"
    );

    let seeded = graph(
        r#"(version: 1, nodes: [
            (id: "r", type: "test.random", params: {"seed": 7}),
            (id: "after", type: "test.count", inputs: {"x": "r.value"}),
        ])"#,
    );
    s.run(&seeded, &opts).expect("run");
    let r = s.run(&seeded, &opts).expect("run");
    assert!(
        r.executed.is_empty(),
        "seeded random is deterministic: {:?}",
        r.executed
    );
}

#[test]
fn the_cache_respects_its_memory_budget() {
    // A [1, 4096] f64 latent is 32 KiB: with a 16 KiB budget it cannot be kept.
    let g = graph(
        r#"(version: 1, nodes: [(id: "z", type: "core.seed_to_z", params: {"z_dim": 4096})])"#,
    );
    let small = session(SessionConfig {
        cache_budget_bytes: 16 << 10,
        ..SessionConfig::default()
    });
    small.run(&g, &RunOptions::default()).expect("run");
    assert!(small.cache_bytes() <= 16 << 10);
    let r = small.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.executed, vec!["z".to_string()]);

    let big = session(SessionConfig::default());
    big.run(&g, &RunOptions::default()).expect("run");
    assert!(big.cache_bytes() >= 32 << 10);
    let r = big.run(&g, &RunOptions::default()).expect("run");
    assert!(r.executed.is_empty());
}

fn collect_events() -> (RunOptions, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let opts = RunOptions {
        cancel: CancelToken::new(),
        on_event: Some(Arc::new(move |e: &Event| {
            sink.lock().expect("lock").push(e.clone())
        })),
    };
    (opts, events)
}

#[test]
fn a_failing_node_fails_its_branch_and_names_itself() {
    let s = session(SessionConfig::default());
    let g = graph(
        r#"(version: 1, nodes: [
            (id: "boom", type: "test.fail", params: {"message": "no model here"}),
            (id: "after", type: "test.count", inputs: {"x": "boom.y"}),
            (id: "after2", type: "test.count", inputs: {"x": "after.y"}),
            (id: "other", type: "test.count"),
        ])"#,
    );
    let (opts, events) = collect_events();
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.failed.len(), 1);
    let (node, msg) = &r.failed[0];
    assert_eq!(node, "boom");
    assert!(
        msg.contains("\"boom\"") && msg.contains("test.fail") && msg.contains("no model here"),
        "{msg}"
    );
    assert_eq!(set(&r.skipped), names(&["after", "after2"]));
    assert!(
        r.executed.contains(&"other".to_string()),
        "independent branches still run"
    );
    let ev = events.lock().expect("lock");
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::NodeFailed { node, .. } if node == "boom")));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::NodeSkipped { node, .. } if node == "after2")));
    assert!(matches!(
        ev.last(),
        Some(Event::RunFinished {
            failed: 1,
            skipped: 2,
            ..
        })
    ));
}

#[test]
fn a_panicking_node_becomes_an_error_and_the_host_survives() {
    let s = session(SessionConfig::default());
    let g = graph(
        r#"(version: 1, nodes: [(id: "p", type: "test.panic"), (id: "ok", type: "test.count")])"#,
    );
    for _ in 0..3 {
        let r = s.run(&g, &RunOptions::default()).expect("run");
        assert_eq!(r.status, RunStatus::Failed);
        let (node, msg) = &r.failed[0];
        assert_eq!(node, "p");
        assert!(
            msg.contains("panicked") && msg.contains("deliberate panic"),
            "{msg}"
        );
    }
    let ok = s
        .run(
            &graph(r#"(version: 1, nodes: [(id: "c", type: "test.count")])"#),
            &RunOptions::default(),
        )
        .expect("run");
    assert_eq!(ok.status, RunStatus::Finished);
}

#[test]
fn cancellation_stops_a_running_node_promptly() {
    let s = session(SessionConfig::default());
    // 1000 steps of 10 ms: ten seconds if not cancelled.
    let g = graph(
        r#"(version: 1, nodes: [
            (id: "slow", type: "test.slow", params: {"steps": 1000, "step_ms": 10}),
            (id: "after", type: "test.count", inputs: {"x": "slow.steps_done"}),
        ])"#,
    );
    let (opts, events) = collect_events();
    let cancel = opts.cancel.clone();
    let started = Instant::now();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        cancel.cancel();
    });
    let r = s.run(&g, &opts).expect("run");
    canceller.join().expect("join");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancellation took {:?}",
        started.elapsed()
    );
    assert!(r.executed.is_empty());
    let ev = events.lock().expect("lock");
    assert!(matches!(ev.last(), Some(Event::RunCancelled { .. })));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::NodeProgress { node, .. } if node == "slow")));
    assert!(!ev.iter().any(|e| matches!(e, Event::NodeFinished { .. })));
}

#[test]
fn independent_branches_run_concurrently() {
    let s = session(SessionConfig {
        threads: 2,
        ..SessionConfig::default()
    });
    let g = graph(
        r#"(version: 1, nodes: [
            (id: "s1", type: "test.slow", params: {"steps": 20, "step_ms": 10}),
            (id: "s2", type: "test.slow", params: {"steps": 20, "step_ms": 10}),
        ])"#,
    );
    let (opts, events) = collect_events();
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(r.status, RunStatus::Finished);
    let ev = events.lock().expect("lock");
    let first_finish = ev
        .iter()
        .position(|e| matches!(e, Event::NodeFinished { .. }))
        .expect("a finish");
    let starts_before = ev[..first_finish]
        .iter()
        .filter(|e| matches!(e, Event::NodeStarted { .. }))
        .count();
    assert_eq!(starts_before, 2, "both branches should be running at once");
}

#[test]
fn side_effect_nodes_always_run_and_previews_are_events() {
    let s = session(SessionConfig::default());
    let g = graph(r#"(version: 1, nodes: [(id: "pv", type: "test.preview")])"#);
    let (opts, events) = collect_events();
    s.run(&g, &opts).expect("run");
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(
        r.executed,
        vec!["pv".to_string()],
        "side-effect nodes are not served from cache"
    );
    let ev = events.lock().expect("lock");
    let previews: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Preview {
                node, shape, image, ..
            } => Some((node.clone(), shape.clone(), image.to_f32_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(previews.len(), 2);
    assert_eq!(previews[0].0, "pv");
    assert_eq!(previews[0].1, vec![1, 3, 8, 8]);
    assert_eq!(previews[0].2[1], 1.0 / 32.0 - 1.0);
}

#[test]
fn events_serialise_as_one_json_object_per_line() {
    let s = session(SessionConfig::default());
    let (opts, events) = collect_events();
    s.run(&graph(CHAIN), &opts).expect("run");
    for e in events.lock().expect("lock").iter() {
        let line = e.to_json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert!(v.get("event").and_then(|k| k.as_str()).is_some(), "{line}");
        assert!(v.get("run").is_some(), "{line}");
    }
}

#[test]
fn an_edited_input_file_is_not_served_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.npy");
    stylegraph_npy_write(&path, &[1.0, 2.0]);
    let g = graph(&format!(
        r#"(version: 1, nodes: [(id: "load", type: "core.load_tensor", params: {{"path": {:?}}})])"#,
        path.display().to_string()
    ));
    let s = session(SessionConfig::default());
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.executed, vec!["load".to_string()]);
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert!(r.executed.is_empty(), "unchanged file: cached");
    // Same name, new contents (and size): the node runs again and sees the new data.
    stylegraph_npy_write(&path, &[5.0, 6.0, 7.0]);
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.executed, vec!["load".to_string()]);
    let t = r
        .output("load", "x")
        .and_then(|v| v.as_tensor())
        .expect("tensor");
    assert_eq!(t.to_f32_vec(), vec![5.0, 6.0, 7.0]);
}

/// Writes a 1-D float32 .npy file by hand (header + data), to keep this test free of extra deps.
fn stylegraph_npy_write(path: &std::path::Path, values: &[f32]) {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write npy");
}

// ---------------------------------------------------------------------------------------------
// Streams: `test.stream_count` produces rows numbered by their position in the sequence,
// `test.stream_sink` sums them and logs `index:offset:rows[:last]` for every chunk it sees.

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn ron_path(p: &std::path::Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

const STREAM: &str = r#"(version: 1, nodes: [
    (id: "src", type: "test.stream_count", params: {"items": 10, "chunk_items": 4, "width": 3}),
    (id: "scale", type: "core.tensor_scale", params: {"factor": 2.0}, inputs: {"x": "src.values"}),
    (id: "tally", type: "test.tally", inputs: {"x": "scale.y"}),
    (id: "sink", type: "test.stream_sink", inputs: {"x": "tally.y"}),
    (id: "after", type: "test.count", inputs: {"x": "sink.sum"}),
])"#;

#[test]
fn a_stream_runs_its_region_once_per_chunk_in_order() {
    let s = session(SessionConfig::default());
    let g = graph(STREAM);
    let (opts, events) = collect_events();
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    // Three chunks of 4, 4 and 2 rows, in order, at offsets 0, 4 and 8; the last one flagged.
    assert_eq!(text(r.output("sink", "log")), "0:0:4;1:4:4;2:8:2:last");
    assert_eq!(int(r.output("sink", "items")), 10);
    assert_eq!(int(r.output("sink", "chunks")), 3);
    // Row i holds i (3 values), scaled by 2: 2 * 3 * (0 + 1 + ... + 9).
    assert_eq!(float(r.output("sink", "sum")), 270.0);
    // The node after the consumer runs once, after the stream, on its final output.
    assert_eq!(float(r.output("after", "y")), 270.0);
    // Nodes inside the stream ran once per chunk; their reported outputs are the last chunk's.
    assert_eq!(int(r.output("tally", "calls")), 3);
    assert_eq!(int(r.output("src", "chunk")), 2);
    let last = r
        .output("scale", "y")
        .and_then(Value::as_tensor)
        .expect("tensor");
    assert_eq!(last.shape(), &[2, 3]);
    assert_eq!(last.to_f32_vec(), vec![16.0, 16.0, 16.0, 18.0, 18.0, 18.0]);

    let ev = events.lock().expect("lock");
    for id in ["src", "scale", "tally", "sink"] {
        let started = ev
            .iter()
            .filter(|e| matches!(e, Event::NodeStarted { node, .. } if node == id))
            .count();
        let finished = ev
            .iter()
            .filter(|e| matches!(e, Event::NodeFinished { node, cached: false, .. } if node == id))
            .count();
        assert_eq!((started, finished), (1, 1), "{id}: one start, one finish");
        let chunk_progress: Vec<f64> = ev
            .iter()
            .filter_map(|e| match e {
                Event::NodeProgress {
                    node,
                    fraction,
                    message,
                    ..
                } if node == id && message.starts_with("chunk ") => Some(*fraction),
                _ => None,
            })
            .collect();
        assert_eq!(chunk_progress, vec![0.4, 0.8, 1.0], "{id}");
    }
    drop(ev);

    // Nothing of the stream is cached: a re-run streams again (the tally counts on), while the
    // consumer's downstream node, whose input is unchanged, comes from the cache.
    let r2 = s.run(&g, &RunOptions::default()).expect("run 2");
    assert_eq!(r2.status, RunStatus::Finished);
    assert_eq!(
        set(&r2.executed),
        names(&["src", "scale", "tally", "sink"]),
        "cached: {:?}",
        r2.cached
    );
    assert_eq!(r2.cached, vec!["after".to_string()]);
    assert_eq!(int(r2.output("tally", "calls")), 6);
    assert_eq!(text(r2.output("sink", "log")), "0:0:4;1:4:4;2:8:2:last");
}

#[test]
fn a_stream_of_unknown_length_and_a_consumer_fed_by_an_ordinary_value() {
    let s = session(SessionConfig::default());
    let (opts, events) = collect_events();
    let r = s
        .run(
            &graph(
                r#"(version: 1, nodes: [
                    (id: "src", type: "test.stream_count",
                        params: {"items": 5, "chunk_items": 2, "report_total": false}),
                    (id: "sink", type: "test.stream_sink", inputs: {"x": "src.values"}),
                    (id: "z", type: "core.seed_to_z", params: {"seed": 1, "z_dim": 6}),
                    (id: "whole", type: "test.stream_sink", inputs: {"x": "z.z"}),
                ])"#,
            ),
            &opts,
        )
        .expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(text(r.output("sink", "log")), "0:0:2;1:2:2;2:4:1:last");
    // An ordinary value into a stream input: one chunk that is also the last.
    assert_eq!(text(r.output("whole", "log")), "0:0:1:last");
    let ev = events.lock().expect("lock");
    let messages: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Event::NodeProgress { node, message, .. } if node == "sink" => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        vec!["chunk 1: 2 items", "chunk 2: 4 items", "chunk 3: 5 items"]
    );
}

#[test]
fn a_stream_holds_a_few_chunks_in_memory_however_long_it_is() {
    // 200 chunks of 256 x 1024 float32 = 1 MiB each: 200 MiB of rows, scaled (another 200 MiB).
    let s = session(SessionConfig::default());
    let g = graph(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count",
                params: {"items": 51200, "chunk_items": 256, "width": 1024}),
            (id: "scale", type: "core.tensor_scale", params: {"factor": 2.0}, inputs: {"x": "src.values"}),
            (id: "sink", type: "test.stream_sink", inputs: {"x": "scale.y"}),
        ])"#,
    );
    s.reset_tensor_peak();
    let before = s.tensor_memory();
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    assert_eq!(int(r.output("sink", "chunks")), 200);
    // Every row i holds i: 2 * 1024 * (0 + 1 + ... + 51199), exact in f64.
    assert_eq!(float(r.output("sink", "sum")), 1024.0 * 51200.0 * 51199.0);
    let m = s.tensor_memory();
    const MIB: usize = 1 << 20;
    eprintln!(
        "200 chunks of 1 MiB: peak {:.2} MiB of tensors alive, {} MiB allocated",
        m.peak_bytes as f64 / MIB as f64,
        (m.allocated_bytes - before.allocated_bytes) >> 20
    );
    assert!(
        m.allocated_bytes - before.allocated_bytes >= 400 * MIB as u64,
        "the chunks went through the host: {m:?}"
    );
    assert!(
        m.peak_bytes >= MIB,
        "a chunk is held while it is processed: {m:?}"
    );
    assert!(
        m.peak_bytes <= 4 * MIB,
        "at most a few 1 MiB chunks may be alive at once, peak was {:.1} MiB",
        m.peak_bytes as f64 / MIB as f64
    );
}

#[test]
fn cancelling_a_stream_aborts_its_consumer_and_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("seq.txt");
    let s = session(SessionConfig::default());
    let g = graph(&format!(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count",
                params: {{"items": 1000, "chunk_items": 1, "delay_ms": 10}}),
            (id: "sink", type: "test.stream_sink", params: {{"path": "{}"}}, inputs: {{"x": "src.values"}}),
        ])"#,
        ron_path(&out)
    ));
    let (opts, events) = collect_events();
    let cancel = opts.cancel.clone();
    let started = Instant::now();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.cancel();
    });
    let r = s.run(&g, &opts).expect("run");
    canceller.join().expect("join");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.executed.is_empty(), "{:?}", r.executed);
    assert!(!out.exists(), "no video-like output after a cancel");
    let partial = dir.path().join("seq.txt.partial");
    assert!(!partial.exists(), "the partial file is removed");
    let aborted = std::fs::read_to_string(dir.path().join("seq.txt.aborted"))
        .expect("the consumer got the abort call");
    assert!(
        aborted.parse::<u64>().expect("chunk index") > 0,
        "cancelled mid-stream"
    );
    let ev = events.lock().expect("lock");
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::NodeProgress { node, .. } if node == "sink")));
    assert!(!ev.iter().any(|e| matches!(e, Event::NodeFinished { .. })));
    assert!(matches!(ev.last(), Some(Event::RunCancelled { .. })));
}

#[test]
fn a_failure_mid_stream_fails_its_branch_and_aborts_the_consumers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let s = session(SessionConfig::default());

    // The producer fails at chunk 2: everything downstream is skipped, the consumer aborted.
    let g = graph(&format!(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count", params: {{"items": 10, "chunk_items": 2, "fail_at_chunk": 2}}),
            (id: "sink", type: "test.stream_sink", params: {{"path": "{}"}}, inputs: {{"x": "src.values"}}),
            (id: "after", type: "test.count", inputs: {{"x": "sink.sum"}}),
            (id: "other", type: "test.count"),
        ])"#,
        ron_path(&a)
    ));
    let (opts, events) = collect_events();
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.failed.len(), 1);
    let (node, msg) = &r.failed[0];
    assert_eq!(node, "src");
    assert!(
        msg.contains("\"src\"") && msg.contains("deliberate failure at chunk 2"),
        "{msg}"
    );
    assert_eq!(set(&r.skipped), names(&["sink", "after"]));
    assert!(r.executed.contains(&"other".to_string()));
    assert!(!a.exists() && !dir.path().join("a.txt.partial").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt.aborted")).expect("aborted"),
        "2"
    );
    let ev = events.lock().expect("lock");
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::NodeFailed { node, .. } if node == "src")));
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Event::NodeFinished { node, .. } if node == "sink")));
    drop(ev);

    // One of two consumers fails at chunk 1: it is aborted; the other gets the whole stream.
    let g = graph(&format!(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count", params: {{"items": 10, "chunk_items": 4}}),
            (id: "bad", type: "test.stream_sink", params: {{"path": "{}", "fail_at_chunk": 1}}, inputs: {{"x": "src.values"}}),
            (id: "good", type: "test.stream_sink", params: {{"path": "{}"}}, inputs: {{"x": "src.values"}}),
        ])"#,
        ron_path(&a),
        ron_path(&b)
    ));
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.failed[0].0, "bad");
    assert!(r.failed[0].1.contains("deliberate sink failure at chunk 1"));
    assert!(!a.exists() && !dir.path().join("a.txt.partial").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt.aborted")).expect("aborted"),
        "1"
    );
    assert_eq!(text(r.output("good", "log")), "0:0:4;1:4:4;2:8:2:last");
    assert!(b.exists(), "the healthy consumer finished its file");
    assert!(set(&r.executed).is_superset(&names(&["src", "good"])));
}
