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
