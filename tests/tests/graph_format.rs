//! The graph file format: lossless round trips and clear errors for bad files.

use stylegraph_core::graph::{Graph, GraphFileError, ParamValue};
use stylegraph_tests::workspace_root;

#[test]
fn every_example_graph_round_trips_losslessly() {
    let dir = workspace_root().join("graphs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("graphs/ directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("ron") {
            continue;
        }
        let g = Graph::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = g.to_ron_string().expect("serialise");
        let again = Graph::from_ron_str(&text, "<saved>").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            g,
            again,
            "{} changed in a load -> save -> load round trip",
            path.display()
        );
        // Saving is deterministic: the second save is byte-identical to the first.
        assert_eq!(text, again.to_ron_string().expect("serialise"));
        count += 1;
    }
    assert!(count >= 2, "expected example graphs in {}", dir.display());
}

#[test]
fn round_trip_keeps_params_connections_positions_and_description() {
    let text = r#"(
        version: 1,
        description: "all value kinds",
        nodes: [
            (id: "a", type: "x.y", params: {"b": true, "i": -3, "f": 0.25, "s": "text with \"quotes\""},
             position: Some((1.5, -2.0))),
            (id: "b", type: "x.z", inputs: {"in": "a.out"}),
        ],
    )"#;
    let g = Graph::from_ron_str(text, "<test>").expect("parse");
    let a = g.node("a").expect("node a");
    assert_eq!(a.params.get("b"), Some(&ParamValue::Bool(true)));
    assert_eq!(a.params.get("i"), Some(&ParamValue::Int(-3)));
    assert_eq!(a.params.get("f"), Some(&ParamValue::Float(0.25)));
    assert_eq!(
        a.params.get("s"),
        Some(&ParamValue::Str("text with \"quotes\"".into()))
    );
    assert_eq!(a.position, Some((1.5, -2.0)));
    let saved = g.to_ron_string().expect("serialise");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.ron");
    g.save(&path).expect("save");
    assert_eq!(std::fs::read_to_string(&path).expect("read back"), saved);
    assert_eq!(Graph::load(&path).expect("load"), g);
    // A float param that happens to be whole stays a float.
    let mut g2 = g.clone();
    g2.nodes[0]
        .params
        .insert("w".into(), ParamValue::Float(2.0));
    let back = Graph::from_ron_str(&g2.to_ron_string().expect("ser"), "<t>").expect("parse");
    assert_eq!(back.nodes[0].params.get("w"), Some(&ParamValue::Float(2.0)));
}

#[test]
fn malformed_ron_reports_file_line_and_column() {
    let text = "(\n  version: 1,\n  nodes: [\n    (id: \"a\" type: \"x.y\"),\n  ],\n)";
    let err = Graph::from_ron_str(text, "broken.ron").expect_err("missing comma");
    match &err {
        GraphFileError::Syntax { path, line, .. } => {
            assert_eq!(path, "broken.ron");
            assert_eq!(*line, 4, "{err}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(err.to_string().starts_with("broken.ron:4:"), "{err}");
}

#[test]
fn unknown_fields_are_refused() {
    let text = r#"(version: 1, nodes: [(id: "a", type: "x.y", colour: "red")])"#;
    let err = Graph::from_ron_str(text, "g.ron").expect_err("unknown field");
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn newer_format_versions_and_missing_files_are_clear_errors() {
    let err = Graph::from_ron_str("(version: 99, nodes: [])", "future.ron").expect_err("too new");
    assert!(
        matches!(err, GraphFileError::TooNew { found: 99, .. }),
        "{err}"
    );
    let err = Graph::load(std::path::Path::new("/nonexistent/graph.ron")).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/graph.ron"), "{err}");
}

#[test]
fn saving_never_leaves_a_half_written_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.ron");
    std::fs::write(&path, "old contents").expect("write");
    // Saving into a directory that does not exist fails and leaves nothing behind.
    let g = Graph::new();
    assert!(g.save(&dir.path().join("missing/g.ron")).is_err());
    g.save(&path).expect("save");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["g.ron".to_string()],
        "temporary files left behind"
    );
}
