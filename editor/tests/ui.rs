//! The editor window driven through its UI with egui_kittest, rendered by wgpu (on CI: Mesa's
//! software Vulkan driver, lavapipe). Snapshot images live in `tests/snapshots/`; after an
//! intended visual change, refresh them with `UPDATE_SNAPSHOTS=1 cargo test -p stylegraph-editor`.

mod common;

use egui::{Pos2, Vec2};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stylegraph_core::exec::SessionConfig;
use stylegraph_core::graph::{Graph, NodeDef, ParamValue};
use stylegraph_editor::runview::NodeStatus;
use stylegraph_editor::{EditorApp, EditorOptions, PendingAction};

fn app_with(graph: &Graph) -> EditorApp {
    let options = EditorOptions {
        recent_store: None,
        // Fixed, so that the status bar reads the same on every machine.
        session: SessionConfig {
            threads: 2,
            ..SessionConfig::default()
        },
    };
    let mut app = EditorApp::new(common::host(), options);
    app.set_show_timings(false);
    app.load_graph(graph, None);
    app
}

fn harness(app: EditorApp) -> Harness<'static, EditorApp> {
    // Vulkan only (lavapipe on CI): probing GL would try to reach a Wayland display.
    let mut setup = egui_kittest::wgpu::default_wgpu_setup();
    if let egui_wgpu::WgpuSetup::CreateNew(s) = &mut setup {
        s.instance_descriptor.backends = egui_wgpu::wgpu::Backends::VULKAN;
    }
    let mut h = Harness::builder()
        .with_size(Vec2::new(1400.0, 860.0))
        .wgpu_setup(setup)
        .build_ui_state(|ui, app: &mut EditorApp| app.show(ui), app);
    settle(&mut h);
    h
}

/// Runs frames until the UI is idle (it may keep asking for repaints while something runs).
fn settle(h: &mut Harness<'_, EditorApp>) {
    let _ = h.try_run();
}

/// Steps frames until no run is in progress.
fn wait_for_run(h: &mut Harness<'_, EditorApp>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    h.step();
    while h.state().is_running() {
        assert!(Instant::now() < deadline, "the run did not finish");
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    settle(h);
}

/// Opens the File menu (a click on an open menu would close it).
fn open_file_menu(h: &mut Harness<'_, EditorApp>) {
    if h.query_by_label("Save as…").is_none() {
        h.get_by_label("File").click_accesskit();
        settle(h);
    }
}

fn param(h: &Harness<'_, EditorApp>, node: &str, name: &str) -> Option<ParamValue> {
    h.state()
        .document()
        .to_graph()
        .node(node)
        .and_then(|n| n.params.get(name).cloned())
}

#[test]
fn shows_the_graph_and_refuses_an_incompatible_wire_with_the_reason() {
    let mut app = app_with(&common::load("explore.ron"));
    // Param widgets on the nodes, as well as in the inspector.
    app.set_params_on_nodes(true);
    let mut h = harness(app);
    assert_eq!(
        h.query_all_by_label("mode").count(),
        1,
        "on the gradient node"
    );
    // Each node's title: once in the palette, once on the canvas.
    for title in ["Gradient", "Features", "Latent", "Histogram"] {
        assert_eq!(h.query_all_by_label(title).count(), 2, "{title}");
    }
    // The palette lists the plugin's node types by category.
    h.get_by_label("Test/Flow");
    h.get_by_label("Slow");

    let before = h.state().document().to_graph();
    let from = h.state().output_pin_pos("latent", "z").unwrap();
    let to = h.state().input_pin_pos("features", "image").unwrap();
    h.hover_at(from);
    h.run_steps(2);
    h.drag_at(from);
    h.run_steps(2);
    for i in 1..=8 {
        h.hover_at(from + (to - from) * (i as f32 / 8.0));
        h.run_steps(1);
    }
    h.run_steps(2);
    // While the wire hangs over the incompatible input, the reason is shown at the pointer.
    let tip = h.get_by_label_contains("Cannot connect");
    let node = tip.accesskit_node();
    let text = node.label().or_else(|| node.value()).unwrap_or_default();
    assert!(text.contains("expects Image"), "{text}");
    assert!(text.contains("gives Z"), "{text}");
    h.snapshot("refused_wire");
    h.drop_at(to);
    h.run_steps(3);
    assert!(h.state().refusal().unwrap().contains("expects Image"));
    h.get_by_label_contains("Connection refused");
    assert_eq!(h.state().document().to_graph(), before, "no wire was added");
}

#[test]
fn param_widgets_change_the_graph_and_undo_restores_it() {
    let mut h = harness(app_with(&common::load("explore.ron")));
    h.state_mut().select("gradient");
    settle(&mut h);
    assert_eq!(param(&h, "gradient", "seed"), Some(ParamValue::Int(3)));
    // The dice of the inspector's seed widget.
    h.get_all_by_label("random gradient.seed")
        .next()
        .unwrap()
        .click_accesskit();
    settle(&mut h);
    let seed = param(&h, "gradient", "seed");
    assert!(
        matches!(seed, Some(ParamValue::Int(s)) if s != 3 && s >= 0),
        "{seed:?}"
    );
    // The seed's step buttons.
    h.get_by_label("⏵").click();
    settle(&mut h);
    let Some(ParamValue::Int(s)) = seed else {
        unreachable!()
    };
    assert_eq!(param(&h, "gradient", "seed"), Some(ParamValue::Int(s + 1)));

    // An enum param through its menu (in the inspector; nodes show no params by default).
    assert_eq!(h.query_all_by_label("mode").count(), 1);
    h.get_all_by_label("mode").next().unwrap().click_accesskit();
    settle(&mut h);
    h.get_by_label("gray").click_accesskit();
    settle(&mut h);
    assert_eq!(
        param(&h, "gradient", "mode"),
        Some(ParamValue::Str("gray".into()))
    );

    // The transform pad: a drag to its right edge sets translate_x to its maximum.
    let pad = h.get_by_label("translate pad").rect();
    h.drag_at(pad.center());
    h.run_steps(1);
    h.hover_at(Pos2::new(pad.right() - 0.5, pad.center().y));
    h.run_steps(1);
    h.drop_at(Pos2::new(pad.right() - 0.5, pad.center().y));
    settle(&mut h);
    match param(&h, "gradient", "translate_x") {
        Some(ParamValue::Float(x)) => assert!(x > 0.95, "{x}"),
        other => panic!("translate_x: {other:?}"),
    }

    // Undo (toolbar button) walks back: translate, mode, step, dice.
    for _ in 0..4 {
        h.get_by_label("⟲").click();
        settle(&mut h);
    }
    assert_eq!(param(&h, "gradient", "seed"), Some(ParamValue::Int(3)));
    assert_eq!(param(&h, "gradient", "mode"), None);
    assert!(!h.state().document().is_dirty());
    h.get_by_label("⟳").click();
    settle(&mut h);
    assert_eq!(param(&h, "gradient", "seed"), seed);
}

#[test]
fn a_run_shows_previews_and_a_rerun_only_executes_what_changed() {
    let mut h = harness(app_with(&common::load("explore.ron")));
    h.get_by_label("⏵ Run").click();
    wait_for_run(&mut h);
    let app = h.state();
    for n in ["gradient", "features", "latent", "histogram"] {
        assert!(
            matches!(app.run_view().status(n), NodeStatus::Done { .. }),
            "{n}: {:?}",
            app.run_view().status(n)
        );
    }
    assert!(app.texture("gradient", "image").is_some());
    assert_eq!(
        app.texture("gradient", "image").unwrap().size(),
        [96, 64],
        "the thumbnail is the image at full resolution"
    );
    // Thumbnails on the nodes: the image, the feature maps, the latent strip and the plot.
    h.get_by_label("preview gradient.image");
    h.get_by_label("preview features.features");
    h.get_by_label("latent latent.z");
    h.get_by_label("preview histogram.plot");
    h.get_by_label_contains("Last run: finished");
    h.snapshot("after_run");

    // One param of the features node changes: only it runs again.
    h.state_mut()
        .document_mut()
        .set_param("features", "channels", ParamValue::Int(2));
    settle(&mut h);
    h.get_by_label("⏵ Run").click();
    wait_for_run(&mut h);
    let view = h.state().run_view();
    assert_eq!(view.status("gradient"), &NodeStatus::Cached);
    assert_eq!(view.status("latent"), &NodeStatus::Cached);
    assert!(matches!(view.status("features"), NodeStatus::Done { .. }));
    h.get_by_label_contains("(1 executed, 3 cached, 0 failed)");
}

#[test]
fn a_failing_node_shows_its_error_and_cancel_stops_a_slow_run() {
    let mut g = common::load("explore.ron");
    g.nodes.push(NodeDef {
        id: "boom".into(),
        node_type: "edtest.fail".into(),
        params: BTreeMap::new(),
        inputs: BTreeMap::from([("x".into(), "gradient.image".into())]),
        position: Some((760.0, 40.0)),
    });
    g.nodes.push(NodeDef {
        id: "slow".into(),
        node_type: "edtest.slow".into(),
        params: BTreeMap::from([
            ("steps".into(), ParamValue::Int(3000)),
            ("ms".into(), ParamValue::Int(10)),
        ]),
        inputs: BTreeMap::from([("x".into(), "latent.z".into())]),
        position: Some((760.0, 420.0)),
    });
    let mut h = harness(app_with(&g));
    h.get_by_label("⏵ Run").click();
    // Wait until the slow node reports progress, then cancel from the toolbar.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        h.step();
        if let NodeStatus::Running {
            fraction: Some(_), ..
        } = h.state().run_view().status("slow")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the slow node never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.get_by_label_contains("step ");
    h.get_by_label("⏹ Cancel").click();
    wait_for_run(&mut h);
    let view = h.state().run_view();
    assert_eq!(view.status("slow"), &NodeStatus::Cancelled);
    match view.status("boom") {
        NodeStatus::Failed { error } => assert!(error.contains("deliberate failure")),
        s => panic!("boom: {s:?}"),
    }
    // The error is written on the failing node.
    h.get_by_label_contains("deliberate failure for the test");
    h.get_by_label_contains("Last run: cancelled");
}

#[test]
fn feature_viewer_and_live_seed_scrubbing() {
    let mut h = harness(app_with(&common::load("explore.ron")));
    h.get_by_label("⏵ Run").click();
    wait_for_run(&mut h);
    h.state_mut().select("features");
    settle(&mut h);
    // The viewer shows one channel of the feature maps, computed off the UI thread.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.query_by_label("features features.features").is_none() {
        assert!(Instant::now() < deadline, "no feature view");
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    h.get_by_label("FFT").click();
    settle(&mut h);
    h.get_by_label_contains("range [");

    // Live mode: scrubbing the seed re-runs by itself; only the newest request is computed.
    h.state_mut().set_live(true);
    for seed in 10..30 {
        h.state_mut()
            .document_mut()
            .set_param("gradient", "seed", ParamValue::Int(seed));
        h.step();
    }
    wait_for_run(&mut h);
    assert!(matches!(
        h.state().run_view().status("gradient"),
        NodeStatus::Done { .. }
    ));
    // The picture shown is the last seed's.
    let session = stylegraph_core::exec::Session::new(common::host(), SessionConfig::default());
    let mut g = common::load("explore.ron");
    g.node_mut("gradient")
        .unwrap()
        .params
        .insert("seed".into(), ParamValue::Int(29));
    let report = session
        .run(&g, &stylegraph_core::exec::RunOptions::default())
        .unwrap();
    let expected = stylegraph_editor::preview::tensor_to_image(
        report
            .output("gradient", "image")
            .unwrap()
            .as_tensor()
            .unwrap(),
    )
    .unwrap();
    match &h.state().run_view().outputs["gradient"][0].1 {
        stylegraph_editor::preview::OutputView::Image { image, .. } => {
            assert_eq!(image.pixels, expected.pixels)
        }
        _ => panic!("no image"),
    }
}

#[test]
fn unsaved_changes_are_guarded_and_save_as_records_a_recent_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with(&common::load("explore.ron"));
    app.set_show_timings(false);
    let mut h = harness(app);
    h.state_mut()
        .document_mut()
        .set_param("gradient", "seed", ParamValue::Int(42));
    settle(&mut h);
    assert!(h.state().document().is_dirty());

    // New asks first; Cancel keeps everything.
    open_file_menu(&mut h);
    h.get_by_label("New").click_accesskit();
    settle(&mut h);
    assert_eq!(h.state().pending_question(), Some(&PendingAction::New));
    h.get_by_label("Unsaved changes");
    h.get_by_label("Cancel").click_accesskit();
    settle(&mut h);
    assert!(!h.state().has_dialog());
    assert_eq!(param(&h, "gradient", "seed"), Some(ParamValue::Int(42)));

    // Save as, through the editor's own file browser.
    open_file_menu(&mut h);
    h.get_by_label("Save as…").click_accesskit();
    settle(&mut h);
    let target = dir.path().join("mine.ron");
    let browser = h.state_mut().file_browser_mut().expect("file browser open");
    *browser = stylegraph_editor::filedialog::FileBrowser::new(
        stylegraph_editor::filedialog::FilePurpose::SaveGraphAs,
        &target,
    );
    settle(&mut h);
    h.get_by_label("Save").click_accesskit();
    settle(&mut h);
    assert!(!h.state().document().is_dirty());
    let saved = Graph::load(&target).unwrap();
    assert_eq!(
        saved.node("gradient").unwrap().params["seed"],
        ParamValue::Int(42)
    );
    assert_eq!(
        h.state().recent().files()[0],
        target.canonicalize().unwrap()
    );

    // Now New goes through without a question.
    h.state_mut().request(PendingAction::New);
    settle(&mut h);
    assert!(!h.state().has_dialog());
    assert_eq!(h.state().document().snarl.nodes().count(), 0);
    // And the recent file reopens it.
    open_file_menu(&mut h);
    h.get_by_label_contains("Open recent").hover();
    settle(&mut h);
    h.get_by_label(target.canonicalize().unwrap().to_str().unwrap())
        .click_accesskit();
    settle(&mut h);
    assert_eq!(h.state().document().snarl.nodes().count(), 4);
}
