//! Plugin loading through the C ABI: C plugins from the generated header, refusals with reasons,
//! and the struct layout C sees.

use std::path::PathBuf;
use std::sync::Arc;
use stylegraph_abi::ffi::*;
use stylegraph_core::exec::{RunOptions, RunStatus, Session, SessionConfig};
use stylegraph_core::graph::Graph;
use stylegraph_core::plugin::{PluginHost, PluginLoadError};
use stylegraph_tests::{compile_c_library, plugin_library, workspace_root};

fn c_source(name: &str) -> PathBuf {
    workspace_root().join("engine/abi/examples/c").join(name)
}

#[test]
fn a_c_plugin_built_from_the_generated_header_loads_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_c_example",
        &[],
    );
    let mut host = PluginHost::new();
    host.load_file(&plugin_library("stylegraph_plugin_core"))
        .expect("core plugin");
    host.load_file(&lib).expect("C plugin");
    let t = host.node_type("c_example.scale").expect("node type from C");
    assert_eq!(t.params[0].name, "factor");
    assert_eq!(t.params[0].max, Some(100.0));

    let g = Graph::from_ron_str(
        r#"(version: 1, nodes: [
            (id: "z", type: "core.seed_to_z", params: {"seed": 3, "z_dim": 8}),
            (id: "f32", type: "core.tensor_scale", params: {"factor": 1.0}, inputs: {"x": "z.z"}),
            (id: "c", type: "c_example.scale", params: {"factor": -2.5}, inputs: {"x": "f32.y"}),
        ])"#,
        "<test>",
    )
    .expect("graph");
    let s = Session::new(Arc::new(host), SessionConfig::default());
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    let z = r
        .output("f32", "y")
        .and_then(|v| v.as_tensor())
        .expect("tensor")
        .to_f32_vec();
    let y = r
        .output("c", "y")
        .and_then(|v| v.as_tensor())
        .expect("tensor");
    assert_eq!(y.shape(), &[1, 8]);
    let expect: Vec<f32> = z.iter().map(|v| (*v as f64 * -2.5) as f32).collect();
    assert_eq!(y.to_f32_vec(), expect);
}

#[test]
fn a_tensor_in_plugin_memory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_c_example",
        &[],
    );
    let mut host = PluginHost::new();
    host.load_file(&lib).expect("C plugin");
    let s = Session::new(Arc::new(host), SessionConfig::default());
    let g = Graph::from_ron_str(
        r#"(version: 1, nodes: [(id: "bad", type: "c_example.foreign")])"#,
        "<t>",
    )
    .expect("graph");
    let r = s.run(&g, &RunOptions::default()).expect("run");
    assert_eq!(r.status, RunStatus::Failed);
    let msg = &r.failed[0].1;
    assert!(
        msg.contains("\"bad\"") && msg.contains("not allocated by the host"),
        "{msg}"
    );
}

#[test]
fn another_abi_major_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_future",
        &["SG_TEST_ABI_MAJOR=99", "SG_TEST_ABI_MINOR=0"],
    );
    let mut host = PluginHost::new();
    let err = host.load_file(&lib).expect_err("must be refused");
    assert!(
        matches!(
            err,
            PluginLoadError::AbiMismatch {
                major: 99,
                host_major: SG_ABI_MAJOR,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("99.0") && msg.contains(&format!("{SG_ABI_MAJOR}.{SG_ABI_MINOR}")),
        "{msg}"
    );
    assert!(
        msg.contains("stylegraph_plugin_future"),
        "the message names the file: {msg}"
    );
    assert!(host.node_types().is_empty());
}

#[test]
fn a_newer_minor_version_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_newer",
        &["SG_TEST_ABI_MINOR=7"],
    );
    let mut host = PluginHost::new();
    host.load_file(&lib).expect("a newer minor is compatible");
    assert_eq!(host.plugins()[0].abi_minor, 7);
}

#[test]
fn libraries_that_are_not_plugins_are_refused_and_loading_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    compile_c_library(&c_source("not_a_plugin.c"), &plugins, "not_a_plugin", &[]);
    std::fs::write(plugins.join("libgarbage.so"), b"this is not an ELF file").expect("write");
    compile_c_library(
        &c_source("example_plugin.c"),
        &plugins,
        "stylegraph_plugin_c_example",
        &[],
    );
    let mut host = PluginHost::new();
    host.load_dir(&plugins, true, false);
    assert!(
        host.node_type("c_example.scale").is_some(),
        "the good plugin still loads"
    );
    let problems: Vec<String> = host.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(host.problems().len(), 2, "{problems:#?}");
    assert!(
        host.problems().iter().any(
            |p| matches!(p, PluginLoadError::NoEntry { path } if path.contains("not_a_plugin"))
        ),
        "{problems:#?}"
    );
    assert!(host.problems().iter().any(|p| matches!(p, PluginLoadError::NotALibrary { path, .. } if path.contains("libgarbage"))), "{problems:#?}");
}

#[test]
fn duplicate_node_types_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_a",
        &[],
    );
    let b = compile_c_library(
        &c_source("example_plugin.c"),
        dir.path(),
        "stylegraph_plugin_b",
        &["SG_TEST_PLUGIN_ID=\"other\""],
    );
    let mut host = PluginHost::new();
    host.load_file(&a).expect("first");
    let err = host
        .load_file(&b)
        .expect_err("second claims the same node types");
    assert!(
        matches!(&err, PluginLoadError::DuplicateNodeType { type_id, .. } if type_id.starts_with("c_example.")),
        "{err}"
    );
}

#[test]
fn missing_plugin_directories_are_reported() {
    let mut host = PluginHost::new();
    host.load_dir(std::path::Path::new("/nonexistent/plugins"), true, false);
    assert!(
        matches!(&host.problems()[0], PluginLoadError::Directory { path, .. } if path == "/nonexistent/plugins")
    );
}

#[test]
fn c_sees_the_same_struct_layout_as_rust() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("layout");
    let status = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(workspace_root().join("engine/abi/include"))
        .arg("-o")
        .arg(&exe)
        .arg(c_source("layout.c"))
        .status()
        .expect("cc");
    assert!(status.success());
    let out = std::process::Command::new(&exe)
        .output()
        .expect("run layout");
    let text = String::from_utf8_lossy(&out.stdout);
    let c: std::collections::HashMap<String, usize> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.rsplitn(2, ' ');
            let v = it.next()?.parse().ok()?;
            Some((it.next()?.replace(" size", "#size"), v))
        })
        .collect();
    macro_rules! check {
        ($t:ident: $($f:ident),*) => {{
            assert_eq!(c.get(concat!(stringify!($t), "#size")), Some(&std::mem::size_of::<$t>()), "size of {}", stringify!($t));
            $(assert_eq!(c.get(concat!(stringify!($t), ".", stringify!($f))), Some(&std::mem::offset_of!($t, $f)),
                "offset of {}.{}", stringify!($t), stringify!($f));)*
        }};
    }
    check!(SgStr: ptr, len);
    check!(SgDevice: device_type, device_id);
    check!(SgDType: code, bits, lanes);
    check!(SgTensor: data, device, ndim, dtype, shape, strides, byte_offset);
    check!(SgObject: ptr, type_name, retain, release, size_bytes, owner_tag);
    check!(SgValue: kind, i, f, s, tensor, object);
    check!(SgPortDesc: name, type_name, doc, flags);
    check!(SgParamDesc: name, kind, doc, default_value, min, max, step, flags, choices, choice_count);
    check!(SgNodeDesc: struct_size, type_id, display_name, category, doc, inputs, input_count, outputs,
        output_count, params, param_count, flags);
    check!(SgHost: struct_size, abi_minor, ctx, alloc_tensor, log, progress, is_cancelled, emit_preview,
        get_extension);
    check!(SgErrorBuf: buf, capacity, len);
    check!(SgExecArgs: struct_size, inputs, input_count, params, param_count, outputs, output_count,
        node_id, error, stream_flags, chunk_index, chunk_offset, stream_total, stream);
    check!(SgStream: struct_size, more, total_items);
    check!(SgPlugin: abi_major, abi_minor, struct_size, plugin_id, plugin_version, description,
        node_count, describe, create, destroy, execute);
}

/// Loads core, the test plugin and a C example plugin built with `defines`.
fn host_with_c_plugin(dir: &std::path::Path, defines: &[&str]) -> PluginHost {
    let lib = compile_c_library(
        &c_source("example_plugin.c"),
        dir,
        "stylegraph_plugin_c_example",
        defines,
    );
    let mut host = stylegraph_tests::host_with_test_plugins();
    host.load_file(&lib).expect("C plugin");
    host
}

fn float_out(r: &stylegraph_core::exec::RunReport, node: &str, port: &str) -> f64 {
    r.output(node, port)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("{node}.{port}: {:?}", r.output(node, port)))
}

#[test]
fn a_plugin_of_abi_1_0_works_unchanged_inside_a_stream() {
    use std::sync::Mutex;
    use stylegraph_core::events::Event;
    let dir = tempfile::tempdir().expect("tempdir");
    // Built as a 1.0 plugin: it declares minor 0 and has no stream node.
    let host = host_with_c_plugin(dir.path(), &["SG_TEST_ABI_MINOR=0"]);
    let c = host
        .plugins()
        .iter()
        .find(|p| p.id == "c_example")
        .expect("c plugin");
    assert_eq!(c.abi_minor, 0);
    assert!(host.node_type("c_example.sum").is_none());
    let s = Session::new(Arc::new(host), SessionConfig::default());
    let g = Graph::from_ron_str(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count", params: {"items": 10, "chunk_items": 4, "width": 2}),
            (id: "c", type: "c_example.scale", params: {"factor": -2.5}, inputs: {"x": "src.values"}),
            (id: "sink", type: "test.stream_sink", inputs: {"x": "c.y"}),
        ])"#,
        "<test>",
    )
    .expect("graph");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let opts = RunOptions {
        on_event: Some(Arc::new(move |e: &Event| {
            sink.lock().expect("lock").push(e.clone())
        })),
        ..RunOptions::default()
    };
    let r = s.run(&g, &opts).expect("run");
    assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
    // The C node ran on each chunk: -2.5 * 2 * (0 + ... + 9).
    assert_eq!(float_out(&r, "sink", "sum"), -225.0);
    assert!(
        matches!(r.output("sink", "log"), Some(stylegraph_core::value::Value::Str(s)) if &**s == "0:0:4;1:4:4;2:8:2:last"),
        "{:?}",
        r.output("sink", "log")
    );
    // Its own progress (1.0, "scaled", once per call) is mapped onto the whole sequence.
    let own: Vec<f64> = events
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|e| match e {
            Event::NodeProgress {
                node,
                fraction,
                message,
                ..
            } if node == "c" && message == "scaled" => Some(*fraction),
            _ => None,
        })
        .collect();
    assert_eq!(own, vec![0.4, 0.8, 1.0]);
}

#[test]
fn a_c_stream_consumer_sums_a_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_c_plugin(dir.path(), &[]);
    assert!(host.node_type("c_example.sum").expect("sum").inputs[0].stream);
    let s = Session::new(Arc::new(host), SessionConfig::default());
    let g = Graph::from_ron_str(
        r#"(version: 1, nodes: [
            (id: "src", type: "test.stream_count", params: {"items": 7, "chunk_items": 3, "width": 1}),
            (id: "sum", type: "c_example.sum", inputs: {"x": "src.values"}),
            (id: "z", type: "core.seed_to_z", params: {"seed": 0, "z_dim": 4}),
            (id: "f", type: "core.tensor_scale", inputs: {"x": "z.z"}),
            (id: "whole", type: "c_example.sum", inputs: {"x": "f.y"}),
        ])"#,
        "<test>",
    )
    .expect("graph");
    for _ in 0..2 {
        let r = s.run(&g, &RunOptions::default()).expect("run");
        assert_eq!(r.status, RunStatus::Finished, "{:?}", r.failed);
        assert_eq!(float_out(&r, "sum", "sum"), 21.0);
        assert_eq!(float_out(&r, "sum", "chunks"), 3.0);
        // Fed an ordinary value: one chunk.
        let z: f64 = r
            .output("f", "y")
            .and_then(|v| v.as_tensor())
            .expect("tensor")
            .to_f64_vec()
            .iter()
            .sum();
        assert!((float_out(&r, "whole", "sum") - z).abs() < 1e-9);
        assert_eq!(float_out(&r, "whole", "chunks"), 1.0);
    }
}
