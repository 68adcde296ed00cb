//! The background runner: incremental re-runs through one session, cancellation, newest-request
//! coalescing, and the statuses the UI derives from its updates.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylegraph_core::exec::{Session, SessionConfig};
use stylegraph_core::graph::{Graph, NodeDef, ParamValue};
use stylegraph_editor::preview::OutputView;
use stylegraph_editor::runner::{Ending, RunUpdate, Runner};
use stylegraph_editor::runview::{NodeStatus, RunView};

fn runner() -> Runner {
    Runner::new(Arc::new(Session::new(
        common::host(),
        SessionConfig::default(),
    )))
}

/// Applies updates until the run of `generation` finished (or a timeout).
fn wait_for(runner: &Runner, view: &mut RunView, generation: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut started = Vec::new();
    loop {
        for u in runner.poll() {
            if let RunUpdate::Started { generation: g, .. } = &u {
                started.push(*g);
            }
            let done = matches!(&u, RunUpdate::Finished { generation: g, .. } if *g == generation);
            view.apply(u);
            if done {
                return started;
            }
        }
        assert!(Instant::now() < deadline, "run {generation} did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn slow_graph(steps: i64, ms: i64) -> Graph {
    let mut g = common::load("explore.ron");
    g.nodes.push(NodeDef {
        id: "slow".into(),
        node_type: "edtest.slow".into(),
        params: BTreeMap::from([
            ("steps".into(), ParamValue::Int(steps)),
            ("ms".into(), ParamValue::Int(ms)),
        ]),
        inputs: BTreeMap::from([("x".into(), "gradient.image".into())]),
        position: None,
    });
    g
}

#[test]
fn a_param_change_reruns_only_what_is_downstream() {
    let r = runner();
    let mut view = RunView::default();
    let mut graph = common::load("explore.ron");
    let g1 = r.submit(graph.clone());
    wait_for(&r, &mut view, g1);
    assert_eq!(view.last.as_ref().unwrap().ending, Ending::Finished);
    for n in ["gradient", "features", "latent", "histogram"] {
        assert!(
            matches!(view.status(n), NodeStatus::Done { .. }),
            "{n}: {:?}",
            view.status(n)
        );
    }
    assert!(matches!(
        view.outputs["gradient"][0].1,
        OutputView::Image { .. }
    ));
    assert!(matches!(
        view.outputs["features"][0].1,
        OutputView::Features { .. }
    ));
    assert!(matches!(view.outputs["latent"][0].1, OutputView::Latent(_)));
    // The histogram's plot output is a u8 [H, W, 3] tensor: shown as a picture.
    let plot = view.outputs["histogram"]
        .iter()
        .find(|(p, _)| p == "plot")
        .unwrap();
    assert!(matches!(plot.1, OutputView::Image { .. }));
    assert!(view.cache_bytes > 0);

    // Change a param of the features node only.
    graph
        .node_mut("features")
        .unwrap()
        .params
        .insert("channels".into(), ParamValue::Int(2));
    let g2 = r.submit(graph);
    wait_for(&r, &mut view, g2);
    assert_eq!(view.status("gradient"), &NodeStatus::Cached);
    assert_eq!(view.status("latent"), &NodeStatus::Cached);
    assert_eq!(view.status("histogram"), &NodeStatus::Cached);
    assert!(matches!(view.status("features"), NodeStatus::Done { .. }));
    let last = view.last.as_ref().unwrap();
    assert_eq!((last.executed, last.cached), (1, 3));
}

#[test]
fn cancel_stops_a_run_in_progress() {
    let r = runner();
    let mut view = RunView::default();
    // 2000 steps of 10 ms: 20 s unless cancelled.
    let g = r.submit(slow_graph(2000, 10));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        view.status("slow"),
        NodeStatus::Running {
            fraction: Some(_),
            ..
        }
    ) {
        for u in r.poll() {
            view.apply(u);
        }
        assert!(
            Instant::now() < deadline,
            "slow node never reported progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    r.cancel();
    wait_for(&r, &mut view, g);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(view.last.as_ref().unwrap().ending, Ending::Cancelled);
    assert_eq!(view.status("slow"), &NodeStatus::Cancelled);
    assert!(!r.is_busy());
}

#[test]
fn only_the_newest_waiting_request_runs() {
    let r = runner();
    let mut view = RunView::default();
    // The first run is slow, so the next requests pile up behind it.
    let first = r.submit(slow_graph(30, 10));
    let mut started = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while started.is_empty() {
        for u in r.poll() {
            if let RunUpdate::Started { generation, .. } = &u {
                started.push(*generation);
            }
            view.apply(u);
        }
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let with_seed = |seed: i64| {
        let mut g = common::load("explore.ron");
        g.node_mut("gradient")
            .unwrap()
            .params
            .insert("seed".into(), ParamValue::Int(seed));
        g
    };
    let mut last = first;
    for seed in 0..20 {
        last = r.submit(with_seed(seed));
    }
    started.extend(wait_for(&r, &mut view, last));
    assert_eq!(started, vec![first, last]);
    assert_eq!(r.dropped_requests(), 19);

    // What is shown is the newest request's picture: seed 19.
    let session = Session::new(common::host(), SessionConfig::default());
    let report = session
        .run(
            &with_seed(19),
            &stylegraph_core::exec::RunOptions::default(),
        )
        .unwrap();
    let expected = stylegraph_editor::preview::tensor_to_image(
        report
            .output("gradient", "image")
            .unwrap()
            .as_tensor()
            .unwrap(),
    )
    .unwrap();
    match &view.outputs["gradient"][0].1 {
        OutputView::Image { image, .. } => assert_eq!(image.pixels, expected.pixels),
        _ => panic!("gradient shows no image"),
    }
}

#[test]
fn stale_updates_are_dropped() {
    let r = runner();
    let mut view = RunView::default();
    let g1 = r.submit(common::load("explore.ron"));
    wait_for(&r, &mut view, g1);
    // An update from an older run than the one shown is ignored.
    view.generation = g1 + 1;
    let applied = view.apply(RunUpdate::Started {
        generation: g1,
        nodes: vec!["gradient".into()],
    });
    assert!(!applied);
    assert_eq!(view.stale_dropped, 1);
}

#[test]
fn failures_and_invalid_graphs_land_on_their_nodes() {
    let r = runner();
    let mut view = RunView::default();
    let mut g = common::load("explore.ron");
    g.nodes.push(NodeDef {
        id: "boom".into(),
        node_type: "edtest.fail".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("x".into(), "gradient.image".into())]),
        position: None,
    });
    g.nodes.push(NodeDef {
        id: "after".into(),
        node_type: "edtest.histogram".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("x".into(), "boom.y".into())]),
        position: None,
    });
    let id = r.submit(g.clone());
    wait_for(&r, &mut view, id);
    match view.status("boom") {
        NodeStatus::Failed { error } => assert!(error.contains("deliberate failure"), "{error}"),
        s => panic!("boom: {s:?}"),
    }
    assert!(matches!(view.status("after"), NodeStatus::Skipped { .. }));
    assert!(matches!(view.status("features"), NodeStatus::Done { .. }));
    assert_eq!(view.last.as_ref().unwrap().ending, Ending::Failed);

    // Disconnect a required input: the run does not start and the node says why.
    g.node_mut("after").unwrap().inputs.clear();
    let id = r.submit(g);
    wait_for(&r, &mut view, id);
    assert_eq!(view.last.as_ref().unwrap().ending, Ending::Invalid);
    match view.status("after") {
        NodeStatus::Invalid { problems } => {
            assert!(problems[0].contains("required input \"x\""), "{problems:?}")
        }
        s => panic!("after: {s:?}"),
    }
}
