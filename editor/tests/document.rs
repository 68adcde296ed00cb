//! The edited document: file round trips with the headless runner, typed wires, undo/redo,
//! duplicate and live-mode pruning. No window needed.

mod common;

use egui::Pos2;
use egui_snarl::{InPinId, OutPinId};
use std::collections::BTreeMap;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::{Graph, NodeDef, ParamValue};
use stylegraph_editor::app::live_subgraph;
use stylegraph_editor::Document;

fn out_pin(doc: &Document, node: &str, port: &str) -> OutPinId {
    let nid = doc.find(node).unwrap();
    let output = doc.snarl[nid]
        .outputs
        .iter()
        .position(|p| p.name == port)
        .unwrap();
    OutPinId { node: nid, output }
}

fn in_pin(doc: &Document, node: &str, port: &str) -> InPinId {
    let nid = doc.find(node).unwrap();
    let input = doc.snarl[nid]
        .inputs
        .iter()
        .position(|p| p.name == port)
        .unwrap();
    InPinId { node: nid, input }
}

#[test]
fn a_cli_written_graph_round_trips_byte_for_byte_positions_included() {
    let host = common::host();
    let graph = common::load("explore.ron");
    let dir = tempfile::tempdir().unwrap();
    // What the CLI (or any tool using stylegraph-core) writes.
    let cli_file = dir.path().join("cli.ron");
    graph.save(&cli_file).unwrap();

    let mut doc = Document::open(&cli_file, &host).unwrap();
    assert!(!doc.is_dirty());
    let back = doc.to_graph();
    assert_eq!(back, graph);
    let positions: Vec<_> = back.nodes.iter().map(|n| n.position).collect();
    assert_eq!(positions[0], Some((0.0, 0.0)));
    assert_eq!(positions[3], Some((400.0, 330.0)));

    let editor_file = dir.path().join("editor.ron");
    doc.save_as(&editor_file).unwrap();
    assert_eq!(
        std::fs::read_to_string(&cli_file).unwrap(),
        std::fs::read_to_string(&editor_file).unwrap()
    );
}

#[test]
fn an_editor_saved_graph_runs_headless_unchanged() {
    let host = common::host();
    let mut doc = Document::from_graph(&common::load("explore.ron"), &host, None);
    // Edit as a user would: add a node, wire it, change a param, move a node.
    let show = host.node_type("edtest.show").unwrap().clone();
    let nid = doc.add_node(&show, Pos2::new(700.0, 40.0));
    let show_id = doc.snarl[nid].id.clone();
    doc.try_connect(
        out_pin(&doc, "gradient", "image"),
        in_pin(&doc, &show_id, "image"),
    )
    .unwrap();
    assert!(doc.set_param("features", "channels", ParamValue::Int(3)));
    let g = doc.find("latent").unwrap();
    doc.snarl.get_node_info_mut(g).unwrap().pos = Pos2::new(33.5, 600.25);
    doc.commit();
    assert!(doc.is_dirty());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edited.ron");
    doc.save_as(&file).unwrap();
    assert!(!doc.is_dirty());

    // The headless side: load the file and run it as the CLI does.
    let loaded = Graph::load(&file).unwrap();
    assert_eq!(loaded, doc.to_graph());
    assert_eq!(
        loaded.node("latent").unwrap().position,
        Some((33.5, 600.25))
    );
    assert_eq!(
        loaded.node(&show_id).unwrap().inputs.get("image").unwrap(),
        "gradient.image"
    );
    let session = Session::new(host.clone(), SessionConfig::default());
    let report = session.run(&loaded, &RunOptions::default()).unwrap();
    assert_eq!(report.status, RunStatus::Finished, "{:?}", report.failed);
    let features = report.output("features", "features").unwrap();
    assert_eq!(features.as_tensor().unwrap().shape(), &[1, 3, 64, 96]);
}

#[test]
fn nodes_without_positions_are_saved_without_until_moved() {
    let host = common::host();
    let mut graph = common::load("explore.ron");
    for n in &mut graph.nodes {
        n.position = None;
    }
    let mut doc = Document::from_graph(&graph, &host, None);
    assert_eq!(doc.to_graph(), graph);
    // The automatic layout puts the features node (fed by the gradient) to the right of it.
    let pos =
        |doc: &Document, id: &str| doc.snarl.get_node_info(doc.find(id).unwrap()).unwrap().pos;
    assert!(pos(&doc, "features").x > pos(&doc, "gradient").x);
    let nid = doc.find("features").unwrap();
    doc.snarl.get_node_info_mut(nid).unwrap().pos = Pos2::new(1.0, 2.0);
    let g = doc.to_graph();
    assert_eq!(g.node("features").unwrap().position, Some((1.0, 2.0)));
    assert_eq!(g.node("gradient").unwrap().position, None);
}

#[test]
fn unknown_node_types_and_dangling_connections_survive_a_round_trip() {
    let host = common::host();
    let mut graph = common::load("explore.ron");
    graph.nodes.push(NodeDef {
        id: "mystery".into(),
        node_type: "notloaded.filter".into(),
        params: BTreeMap::from([("strength".into(), ParamValue::Float(0.5))]),
        inputs: BTreeMap::from([("src".into(), "gradient.image".into())]),
        position: Some((700.0, 40.0)),
    });
    graph.nodes.push(NodeDef {
        id: "after".into(),
        node_type: "edtest.show".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("image".into(), "mystery.out".into())]),
        position: None,
    });
    graph.nodes.push(NodeDef {
        id: "dangling".into(),
        node_type: "edtest.features".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("image".into(), "nowhere.image".into())]),
        position: Some((0.0, 900.0)),
    });
    let doc = Document::from_graph(&graph, &host, None);
    assert_eq!(doc.to_graph(), graph);
    let mystery = doc.node("mystery").unwrap();
    assert!(!mystery.known);
    // Its ports were inferred from the file, so its wires are drawn.
    assert_eq!(mystery.inputs[0].name, "src");
    assert_eq!(mystery.outputs[0].name, "out");
    assert_eq!(doc.snarl.wires().count(), 4);
    assert_eq!(
        doc.node("dangling")
            .unwrap()
            .unresolved
            .get("image")
            .unwrap(),
        "nowhere.image"
    );
}

#[test]
fn typed_wires_refuse_incompatible_ports_and_cycles() {
    let host = common::host();
    let mut doc = Document::from_graph(&common::load("explore.ron"), &host, None);
    let before = doc.to_graph();
    let err = doc
        .try_connect(
            out_pin(&doc, "latent", "z"),
            in_pin(&doc, "features", "image"),
        )
        .unwrap_err();
    assert!(err.contains("expects Image"), "{err}");
    assert!(err.contains("gives Z"), "{err}");
    assert_eq!(doc.to_graph(), before, "a refused wire changes nothing");

    // A second gradient feeding the features node replaces the first wire.
    let grad = host.node_type("edtest.gradient").unwrap().clone();
    let g2 = doc.add_node(&grad, Pos2::new(0.0, 300.0));
    let g2_id = doc.snarl[g2].id.clone();
    assert_eq!(g2_id, "gradient_2");
    doc.try_connect(
        out_pin(&doc, &g2_id, "image"),
        in_pin(&doc, "features", "image"),
    )
    .unwrap();
    assert_eq!(
        doc.to_graph().node("features").unwrap().inputs["image"],
        "gradient_2.image"
    );

    // show -> show would loop.
    let show = host.node_type("edtest.show").unwrap().clone();
    let a = doc.add_node(&show, Pos2::new(0.0, 0.0));
    let b = doc.add_node(&show, Pos2::new(0.0, 0.0));
    let (a, b) = (doc.snarl[a].id.clone(), doc.snarl[b].id.clone());
    doc.try_connect(out_pin(&doc, &a, "image_out"), in_pin(&doc, &b, "image"))
        .unwrap();
    let err = doc
        .try_connect(out_pin(&doc, &b, "image_out"), in_pin(&doc, &a, "image"))
        .unwrap_err();
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn undo_and_redo_walk_through_committed_steps() {
    let host = common::host();
    let mut doc = Document::from_graph(&common::load("explore.ron"), &host, None);
    let original = doc.to_graph();
    assert!(!doc.can_undo());
    doc.set_param("gradient", "seed", ParamValue::Int(11));
    assert!(doc.commit());
    assert!(!doc.commit(), "nothing changed since the last step");
    let with_seed = doc.to_graph();
    let show = host.node_type("edtest.show").unwrap().clone();
    doc.add_node(&show, Pos2::new(5.0, 5.0));
    doc.commit();
    assert_eq!(doc.snarl.nodes().count(), 5);

    assert!(doc.undo(&host));
    assert_eq!(doc.to_graph(), with_seed);
    assert!(doc.undo(&host));
    assert_eq!(doc.to_graph(), original);
    assert!(!doc.is_dirty(), "back at the loaded state");
    assert!(!doc.undo(&host));
    assert!(doc.redo(&host));
    assert!(doc.redo(&host));
    assert_eq!(doc.snarl.nodes().count(), 5);
    assert!(doc.is_dirty());
    // An edit after undo drops the redo steps.
    doc.undo(&host);
    doc.set_param("gradient", "seed", ParamValue::Int(12));
    doc.commit();
    assert!(!doc.can_redo());
}

#[test]
fn duplicate_copies_params_and_incoming_wires() {
    let host = common::host();
    let mut doc = Document::from_graph(&common::load("explore.ron"), &host, None);
    doc.set_param("features", "channels", ParamValue::Int(2));
    let copies = doc.duplicate(&[doc.find("features").unwrap()]);
    assert_eq!(copies.len(), 1);
    let copy = &doc.snarl[copies[0]];
    assert_eq!(copy.id, "features_2");
    assert_eq!(copy.params.get("channels"), Some(&ParamValue::Int(2)));
    let g = doc.to_graph();
    assert_eq!(
        g.node("features_2").unwrap().inputs["image"],
        "gradient.image"
    );
    // New nodes are written after the existing ones.
    assert_eq!(g.nodes.last().unwrap().id, "features_2");
}

#[test]
fn renaming_keeps_the_wires() {
    let host = common::host();
    let mut doc = Document::from_graph(&common::load("explore.ron"), &host, None);
    let nid = doc.find("gradient").unwrap();
    assert!(doc.rename(nid, "features").is_err(), "ids are unique");
    assert!(doc.rename(nid, "has space").is_err());
    doc.rename(nid, "grad").unwrap();
    assert_eq!(
        doc.to_graph().node("features").unwrap().inputs["image"],
        "grad.image"
    );
}

#[test]
fn live_runs_leave_out_file_writers_and_what_follows_them() {
    let host = common::host();
    let mut graph = common::load("explore.ron");
    graph.nodes.push(NodeDef {
        id: "write".into(),
        node_type: "edtest.write".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("x".into(), "gradient.image".into())]),
        position: None,
    });
    let live = live_subgraph(&graph, &host);
    let ids: Vec<&str> = live.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["gradient", "features", "latent", "histogram"]);
    assert!(live.nodes.iter().all(|n| n.position.is_none()));
}

#[test]
fn the_palette_groups_by_category_and_searches_names_and_docs() {
    use stylegraph_editor::palette::grouped;
    let host = common::host();
    let all = grouped(&host, "");
    let cats: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        cats,
        [
            "Test/Analysis",
            "Test/Flow",
            "Test/IO",
            "Test/Image",
            "Test/Latent",
            "Test/Layers"
        ]
    );
    let names = |q: &str| -> Vec<String> {
        grouped(&host, q)
            .values()
            .flatten()
            .map(|t| t.type_id.clone())
            .collect()
    };
    // By display name, case-insensitively.
    assert_eq!(names("GRADIENT"), ["edtest.gradient"]);
    // By a word of the documentation only.
    assert_eq!(names("sine"), ["edtest.features"]);
    // Every word must match.
    assert_eq!(names("input through fails"), ["edtest.fail"]);
    assert!(names("no such thing").is_empty());
}
