//! Validation reports every problem of a graph at once, each naming the node and port/param.

use stylegraph_core::graph::Graph;
use stylegraph_core::validate::{validate, ValidationError};
use stylegraph_tests::host_with_test_plugins;

fn problems(text: &str) -> Vec<ValidationError> {
    let host = host_with_test_plugins();
    let g = Graph::from_ron_str(text, "<test>").unwrap_or_else(|e| panic!("{e}"));
    validate(&g, &host)
}

#[test]
fn a_valid_graph_has_no_problems() {
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "z", type: "core.seed_to_z", params: {"seed": 5}),
            (id: "s", type: "core.tensor_scale", params: {"factor": 2}, inputs: {"x": "z.z"}),
        ])"#,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "bad id!", type: "core.const_float"),
            (id: "dup", type: "core.const_float"),
            (id: "dup", type: "core.const_int"),
            (id: "typo", type: "core.sed_to_z"),
            (id: "missing", type: "core.tensor_scale"),
            (id: "wrong_port", type: "core.tensor_scale", inputs: {"x": "z.z", "y": "z.z"}),
            (id: "z", type: "core.seed_to_z", params: {"seed": -5, "colour": 1, "z_dim": "big"}),
            (id: "mm", type: "core.tensor_scale", inputs: {"x": "f.value"}),
            (id: "f", type: "core.const_float"),
            (id: "dangle1", type: "core.tensor_scale", inputs: {"x": "nowhere.z"}),
            (id: "dangle2", type: "core.tensor_scale", inputs: {"x": "z.nope"}),
            (id: "dangle3", type: "core.tensor_scale", inputs: {"x": "no-dot"}),
            (id: "op", type: "core.math", params: {"op": "modulo"}),
            (id: "c1", type: "test.count", inputs: {"x": "c2.y"}),
            (id: "c2", type: "test.count", inputs: {"x": "c1.y"}),
        ])"#,
    );
    let has = |pred: &dyn Fn(&ValidationError) -> bool| p.iter().any(pred);
    use ValidationError::*;
    assert!(
        has(&|e| matches!(e, InvalidNodeId { node } if node == "bad id!")),
        "{p:#?}"
    );
    assert!(has(
        &|e| matches!(e, DuplicateNodeId { node } if node == "dup")
    ));
    assert!(has(
        &|e| matches!(e, UnknownNodeType { node, suggestion: Some(s), .. }
        if node == "typo" && s == "core.seed_to_z")
    ));
    assert!(has(&|e| matches!(e, MissingInput { node, port, port_type }
        if node == "missing" && port == "x" && port_type == "Tensor")));
    assert!(has(
        &|e| matches!(e, UnknownInput { node, port, .. } if node == "wrong_port" && port == "y")
    ));
    assert!(has(
        &|e| matches!(e, ParamRange { node, param, .. } if node == "z" && param == "seed")
    ));
    assert!(has(
        &|e| matches!(e, UnknownParam { node, param, .. } if node == "z" && param == "colour")
    ));
    assert!(has(
        &|e| matches!(e, ParamType { node, param, expected, .. }
        if node == "z" && param == "z_dim" && expected == "int")
    ));
    assert!(has(
        &|e| matches!(e, TypeMismatch { node, port, expected, found, .. }
        if node == "mm" && port == "x" && expected == "Tensor" && found == "float")
    ));
    assert!(has(
        &|e| matches!(e, DanglingConnection { node, .. } if node == "dangle1")
    ));
    assert!(has(
        &|e| matches!(e, DanglingConnection { node, reason, .. }
        if node == "dangle2" && reason.contains("outputs: z"))
    ));
    assert!(has(
        &|e| matches!(e, DanglingConnection { node, .. } if node == "dangle3")
    ));
    assert!(has(
        &|e| matches!(e, ParamChoice { node, value, .. } if node == "op" && value == "modulo")
    ));
    assert!(has(
        &|e| matches!(e, Cycle { nodes } if nodes == &vec!["c1".to_string(), "c2".to_string()])
    ));
    // Messages name the node and port/param, and both types of a mismatch.
    let text: Vec<String> = p.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("\"mm\"") && t.contains("Tensor") && t.contains("float")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("did you mean \"core.seed_to_z\"")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("cycle") && t.contains("\"c1\"") && t.contains("\"c2\"")),
        "{text:#?}"
    );
}

#[test]
fn a_self_loop_is_a_cycle() {
    let p =
        problems(r#"(version: 1, nodes: [(id: "c", type: "test.count", inputs: {"x": "c.y"})])"#);
    assert!(
        p.iter().any(
            |e| matches!(e, ValidationError::Cycle { nodes } if nodes == &vec!["c".to_string()])
        ),
        "{p:?}"
    );
}

#[test]
fn ints_widen_to_float_params_and_ports() {
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "i", type: "core.const_int", params: {"value": 3}),
            (id: "m", type: "core.math", params: {"a": 2}, inputs: {"b": "i.value"}),
        ])"#,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn stream_shapes_that_cannot_run_are_named() {
    use ValidationError::*;
    // Two streams meeting in one node (reported once, where they meet).
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "s1", type: "test.stream_count"),
            (id: "s2", type: "test.stream_count"),
            (id: "both", type: "core.tensor_add", inputs: {"a": "s1.values", "b": "s2.values"}),
            (id: "sink", type: "test.stream_sink", inputs: {"x": "both.sum"}),
        ])"#,
    );
    assert_eq!(
        p,
        vec![TwoStreams {
            node: "both".into(),
            first: "s1".into(),
            second: "s2".into()
        }],
        "{p:?}"
    );
    let msg = p[0].to_string();
    assert!(
        msg.contains("\"both\"") && msg.contains("\"s1\"") && msg.contains("\"s2\""),
        "{msg}"
    );

    // A stream started inside another.
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "outer", type: "test.stream_count"),
            (id: "t", type: "test.tally", inputs: {"x": "outer.values"}),
            (id: "inner", type: "test.stream_count", inputs: {"x": "t.y"}),
            (id: "sink", type: "test.stream_sink", inputs: {"x": "inner.values"}),
        ])"#,
    );
    assert_eq!(
        p,
        vec![NestedStream {
            node: "inner".into(),
            outer: "outer".into()
        }],
        "{p:?}"
    );

    // A node inside the stream that needs a consumer's final output.
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count"),
            (id: "first", type: "test.stream_sink", inputs: {"x": "src.values"}),
            (id: "second", type: "test.stream_sink", inputs: {"x": "src.values", "extra": "first.sum"}),
        ])"#,
    );
    assert_eq!(
        p,
        vec![StreamAfterEnd {
            node: "second".into(),
            producer: "src".into(),
            consumer: "first".into()
        }],
        "{p:?}"
    );
    assert_eq!(p[0].node(), Some("second"));

    // The runner refuses them too.
    let host = std::sync::Arc::new(host_with_test_plugins());
    let session = stylegraph_core::exec::Session::new(host, Default::default());
    let g = Graph::from_ron_str(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count"),
            (id: "first", type: "test.stream_sink", inputs: {"x": "src.values"}),
            (id: "second", type: "test.stream_sink", inputs: {"x": "src.values", "extra": "first.sum"}),
        ])"#,
        "<test>",
    )
    .expect("graph");
    let err = session
        .run(&g, &Default::default())
        .expect_err("must be refused");
    assert!(err.to_string().contains("\"second\""), "{err}");

    // Sequential streams are fine: a stream may start from a consumer's final output.
    let p = problems(
        r#"(version: 1, nodes: [
            (id: "a", type: "test.stream_count"),
            (id: "sink_a", type: "test.stream_sink", inputs: {"x": "a.values"}),
            (id: "b", type: "test.stream_count", inputs: {"x": "sink_a.sum"}),
            (id: "sink_b", type: "test.stream_sink", inputs: {"x": "b.values"}),
        ])"#,
    );
    assert!(p.is_empty(), "{p:?}");
}
