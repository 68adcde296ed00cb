//! The editor window: menu and tool bar, node palette, canvas, inspector with the output viewer,
//! status bar and dialogs. [`EditorApp::show`] draws one frame into a [`egui::Ui`]; the eframe
//! binary and the tests both call it.

use crate::canvas::{
    canvas_style, dragged_wire_problem, output_key, preview_key, CanvasAction, CanvasViewer,
    PinRects, SharedPins,
};
use crate::document::{connect_checked, Document};
use crate::filedialog::{BrowserResult, FileBrowser, FilePurpose};
use crate::palette;
use crate::params::{param_row, transform_pad, ParamCtx, ParamEdit, ParamRequest};
use crate::preview::{feature_view, FeatureMode, FeatureRequest, FeatureView, OutputView};
use crate::recent::RecentFiles;
use crate::runner::{Ending, Runner};
use crate::runview::{NodeStatus, RunView};
use crate::worker::LatestWorker;
use egui::emath::TSTransform;
use egui::{
    Color32, ColorImage, Id, Key, KeyboardShortcut, Modifiers, Pos2, RichText, TextureHandle,
    TextureOptions, Ui, Vec2, ViewportCommand,
};
use egui_snarl::ui::SnarlWidget;
use egui_snarl::{InPinId, NodeId, OutPinId};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;
use stylegraph_core::exec::{Session, SessionConfig};
use stylegraph_core::graph::{Graph, ParamValue, PortRef};
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::validate::validate;

/// The canvas widget's id (selection state lives under it).
pub const CANVAS_ID: &str = "stylegraph-canvas";

/// Frames over which "fit view" is applied: node sizes settle over the first frames they are drawn.
const FIT_FRAMES: u8 = 4;

/// How long a refused connection's explanation stays on screen, in seconds.
const REFUSAL_SECONDS: f64 = 4.0;

/// Settings of an editor window.
#[derive(Clone, Debug, Default)]
pub struct EditorOptions {
    /// Where the recent-files list is kept (`None`: in memory only).
    pub recent_store: Option<PathBuf>,
    /// Engine session settings (cache budget, threads).
    pub session: SessionConfig,
}

/// Something that must wait for the unsaved-changes question.
#[derive(Clone, Debug, PartialEq)]
pub enum PendingAction {
    New,
    /// Open this file, or ask for one.
    Open(Option<PathBuf>),
    Quit,
}

enum Dialog {
    Unsaved(PendingAction),
    Browser {
        browser: FileBrowser,
        then: Option<PendingAction>,
    },
    Message(String),
}

/// State of the feature viewer (the channel view of a `Features` output).
struct FeatureViewer {
    batch: usize,
    channel: usize,
    mode: FeatureMode,
    worker: LatestWorker<FeatureRequest>,
    results: Receiver<(u64, Result<FeatureView, String>)>,
    /// What was last submitted: tensor address, batch, channel, mode.
    submitted: Option<(usize, usize, usize, FeatureMode)>,
    shown_generation: u64,
    texture: Option<TextureHandle>,
    range: (f32, f32),
    error: Option<String>,
}

impl FeatureViewer {
    fn new() -> FeatureViewer {
        let (tx, rx) = mpsc::channel();
        let worker = LatestWorker::spawn("stylegraph-features", move |generation, req| {
            let _ = tx.send((generation, feature_view(&req)));
        });
        FeatureViewer {
            batch: 0,
            channel: 0,
            mode: FeatureMode {
                normalize: true,
                ..FeatureMode::default()
            },
            worker,
            results: rx,
            submitted: None,
            shown_generation: 0,
            texture: None,
            range: (0.0, 0.0),
            error: None,
        }
    }
}

/// The editor.
pub struct EditorApp {
    host: Arc<PluginHost>,
    doc: Document,
    runner: Runner,
    run: RunView,
    textures: HashMap<String, (usize, TextureHandle)>,
    selected: Option<String>,
    viewer_port: Option<String>,
    features: FeatureViewer,
    palette_query: String,
    menu_query: String,
    live: bool,
    /// The last graph submitted to run (without positions), to know when live mode must re-run.
    last_run_graph: Option<Graph>,
    /// The graph of the last frame and its validation problems by node.
    checked_graph: Option<Graph>,
    problems: HashMap<String, Vec<String>>,
    problem_list: Vec<String>,
    recent: RecentFiles,
    dialog: Option<Dialog>,
    pins: SharedPins,
    to_global: TSTransform,
    /// Frames left in which the view is fitted to the nodes (the first frames measure them).
    fit_frames: u8,
    node_rects: HashMap<NodeId, egui::Rect>,
    refusal: Option<(String, f64)>,
    rename_buffer: (String, String),
    allow_close: bool,
    last_title: String,
    /// Messages shown in the status bar (errors of file operations and the like).
    notice: Option<String>,
    /// Worker threads of the session, for the status bar.
    threads: usize,
    /// Show run times (off for reproducible screenshots).
    show_timings: bool,
    /// Live mode as of the last frame (switching it on runs at once).
    was_live: bool,
    /// Param widgets on the nodes too (off: only in the inspector, nodes stay compact).
    params_on_nodes: bool,
}

fn fmt_bytes(b: usize) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// The graph without canvas positions: what a run depends on.
fn without_positions(g: &Graph) -> Graph {
    let mut g = g.clone();
    for n in &mut g.nodes {
        n.position = None;
    }
    g
}

/// The part of a graph that live mode runs: nodes writing files (those with an output-path
/// param) and everything downstream of them are left out, so that scrubbing a slider never
/// writes files.
pub fn live_subgraph(graph: &Graph, host: &PluginHost) -> Graph {
    let mut dropped: HashSet<String> = graph
        .nodes
        .iter()
        .filter(|n| {
            host.node_type(&n.node_type)
                .is_some_and(|t| t.params.iter().any(|p| p.is_output_path))
        })
        .map(|n| n.id.clone())
        .collect();
    loop {
        let before = dropped.len();
        for n in &graph.nodes {
            if dropped.contains(&n.id) {
                continue;
            }
            let fed_by_dropped = n
                .inputs
                .values()
                .any(|src| PortRef::parse(src).is_some_and(|r| dropped.contains(r.node.as_str())));
            if fed_by_dropped {
                dropped.insert(n.id.clone());
            }
        }
        if dropped.len() == before {
            break;
        }
    }
    let mut g = without_positions(graph);
    g.nodes.retain(|n| !dropped.contains(&n.id));
    g
}

impl EditorApp {
    /// An editor with an empty graph.
    pub fn new(host: Arc<PluginHost>, options: EditorOptions) -> EditorApp {
        let session = Arc::new(Session::new(host.clone(), options.session.clone()));
        EditorApp {
            runner: Runner::new(session),
            host,
            doc: Document::new(),
            run: RunView::default(),
            textures: HashMap::new(),
            selected: None,
            viewer_port: None,
            features: FeatureViewer::new(),
            palette_query: String::new(),
            menu_query: String::new(),
            live: false,
            last_run_graph: None,
            checked_graph: None,
            problems: HashMap::new(),
            problem_list: Vec::new(),
            recent: RecentFiles::load(options.recent_store.clone()),
            dialog: None,
            pins: Rc::new(RefCell::new(PinRects::default())),
            to_global: TSTransform::IDENTITY,
            fit_frames: FIT_FRAMES,
            node_rects: HashMap::new(),
            refusal: None,
            rename_buffer: (String::new(), String::new()),
            allow_close: false,
            last_title: String::new(),
            notice: None,
            threads: options.session.threads,
            show_timings: true,
            was_live: false,
            params_on_nodes: false,
        }
    }

    // ---- API for the binary and the tests -----------------------------------------------

    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }
    pub fn document(&self) -> &Document {
        &self.doc
    }
    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }
    pub fn run_view(&self) -> &RunView {
        &self.run
    }
    pub fn session(&self) -> &Arc<Session> {
        self.runner.session()
    }
    pub fn recent(&self) -> &RecentFiles {
        &self.recent
    }
    /// The node shown in the inspector.
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }
    /// Shows a node in the inspector.
    pub fn select(&mut self, id: &str) {
        self.selected = Some(id.to_owned());
        self.viewer_port = None;
    }
    /// Chooses the output (or `#label` preview) shown in the viewer.
    pub fn view_port(&mut self, port: &str) {
        self.viewer_port = Some(port.to_owned());
    }
    /// Live mode: every change re-runs the graph (without its file-writing nodes).
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
    }
    pub fn is_live(&self) -> bool {
        self.live
    }
    /// True while a run is in progress or queued.
    pub fn is_running(&self) -> bool {
        self.runner.is_busy() || self.run.running
    }
    /// Run requests replaced before they started (live mode coalescing).
    pub fn dropped_requests(&self) -> u64 {
        self.runner.dropped_requests()
    }
    /// The explanation of the last refused connection, while it is shown.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_ref().map(|(m, _)| m.as_str())
    }
    /// Problems the validator finds in the graph as it is now.
    pub fn problems(&self) -> &[String] {
        &self.problem_list
    }
    /// True once the user confirmed quitting (the window may close).
    pub fn quit_confirmed(&self) -> bool {
        self.allow_close
    }
    /// True while a modal dialog is open.
    pub fn has_dialog(&self) -> bool {
        self.dialog.is_some()
    }
    /// The unsaved-changes question waiting for an answer, if any.
    pub fn pending_question(&self) -> Option<&PendingAction> {
        match &self.dialog {
            Some(Dialog::Unsaved(a)) => Some(a),
            _ => None,
        }
    }
    /// Texture shown for a node output (`node`, `port`) or preview (`node`, `#label`).
    pub fn texture(&self, node: &str, port: &str) -> Option<&TextureHandle> {
        let key = match port.strip_prefix('#') {
            Some(label) => preview_key(node, label),
            None => output_key(node, port),
        };
        self.textures.get(&key).map(|(_, t)| t)
    }
    /// Shows or hides run times on nodes and in the status bar (hidden for reproducible
    /// screenshots).
    pub fn set_show_timings(&mut self, show: bool) {
        self.show_timings = show;
    }
    /// Shows param widgets on the nodes as well as in the inspector.
    pub fn set_params_on_nodes(&mut self, on: bool) {
        self.params_on_nodes = on;
    }
    /// Asks the canvas to show all nodes on the next frame.
    pub fn fit_view(&mut self) {
        self.fit_frames = FIT_FRAMES;
    }
    /// Where a pin was drawn last frame, in screen coordinates.
    pub fn input_pin_pos(&self, node: &str, port: &str) -> Option<Pos2> {
        let nid = self.doc.find(node)?;
        let idx = self.doc.snarl[nid]
            .inputs
            .iter()
            .position(|p| p.name == port)?;
        let r = *self.pins.borrow().inputs.get(&InPinId {
            node: nid,
            input: idx,
        })?;
        Some(self.to_global.mul_rect(r).center())
    }
    /// See [`EditorApp::input_pin_pos`].
    pub fn output_pin_pos(&self, node: &str, port: &str) -> Option<Pos2> {
        let nid = self.doc.find(node)?;
        let idx = self.doc.snarl[nid]
            .outputs
            .iter()
            .position(|p| p.name == port)?;
        let r = *self.pins.borrow().outputs.get(&OutPinId {
            node: nid,
            output: idx,
        })?;
        Some(self.to_global.mul_rect(r).center())
    }

    /// Replaces the document with a graph (as if loaded from `path`).
    pub fn load_graph(&mut self, graph: &Graph, path: Option<PathBuf>) {
        self.doc = Document::from_graph(graph, &self.host, path);
        self.after_document_change();
    }

    /// Opens a graph file (no unsaved-changes check; see [`EditorApp::request`]).
    pub fn open_path(&mut self, path: &Path) -> Result<(), String> {
        match Document::open(path, &self.host) {
            Ok(doc) => {
                self.doc = doc;
                self.recent.add(path);
                self.after_document_change();
                Ok(())
            }
            Err(e) => {
                if !path.exists() {
                    self.recent.remove(path);
                }
                Err(e.to_string())
            }
        }
    }

    /// Saves to the document's file. Fails if it has none.
    pub fn save(&mut self) -> Result<PathBuf, String> {
        let path = self.doc.save().map_err(|e| e.to_string())?;
        self.recent.add(&path);
        Ok(path)
    }

    /// Saves under a new name.
    pub fn save_as(&mut self, path: &Path) -> Result<(), String> {
        self.doc.save_as(path).map_err(|e| e.to_string())?;
        self.recent.add(path);
        Ok(())
    }

    /// Starts (or queues) a run of the whole graph.
    pub fn run(&mut self) {
        self.doc.commit();
        let g = without_positions(&self.doc.to_graph());
        self.last_run_graph = Some(g.clone());
        self.runner.submit(g);
    }

    /// Cancels the run in progress.
    pub fn cancel(&mut self) {
        self.runner.cancel();
    }

    /// New / open / quit, asking about unsaved changes first.
    pub fn request(&mut self, action: PendingAction) {
        if self.doc.is_dirty() {
            self.dialog = Some(Dialog::Unsaved(action));
        } else {
            self.perform(action);
        }
    }

    /// Answers the unsaved-changes question: save first (true) or discard (false).
    pub fn answer_unsaved(&mut self, save: bool) {
        let Some(Dialog::Unsaved(action)) = self.dialog.take() else {
            return;
        };
        if !save {
            self.perform(action);
            return;
        }
        if self.doc.path.is_some() {
            match self.save() {
                Ok(_) => self.perform(action),
                Err(e) => self.dialog = Some(Dialog::Message(format!("Could not save: {e}"))),
            }
        } else {
            self.open_browser(FilePurpose::SaveGraphAs, Some(action));
        }
    }

    /// Dismisses the current dialog.
    pub fn dismiss_dialog(&mut self) {
        self.dialog = None;
    }

    fn perform(&mut self, action: PendingAction) {
        match action {
            PendingAction::New => {
                self.doc = Document::new();
                self.after_document_change();
            }
            PendingAction::Open(Some(path)) => {
                if let Err(e) = self.open_path(&path) {
                    self.dialog = Some(Dialog::Message(format!("Could not open: {e}")));
                }
            }
            PendingAction::Open(None) => self.open_browser(FilePurpose::OpenGraph, None),
            PendingAction::Quit => self.allow_close = true,
        }
    }

    fn after_document_change(&mut self) {
        self.runner.cancel();
        self.run = RunView::default();
        self.textures.clear();
        self.selected = None;
        self.viewer_port = None;
        self.last_run_graph = None;
        self.checked_graph = None;
        self.fit_frames = FIT_FRAMES;
        self.node_rects.clear();
    }

    fn start_dir(&self) -> PathBuf {
        self.doc
            .path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn open_browser(&mut self, purpose: FilePurpose, then: Option<PendingAction>) {
        let start = match &purpose {
            FilePurpose::SaveGraphAs => self
                .doc
                .path
                .clone()
                .unwrap_or_else(|| self.start_dir().join("graph.ron")),
            _ => self.start_dir(),
        };
        #[cfg(feature = "native-dialogs")]
        {
            let chosen = crate::filedialog::native_pick(&purpose, &start);
            if let Some(path) = chosen {
                self.file_chosen(purpose, path, then);
            }
            return;
        }
        #[allow(unreachable_code)]
        {
            self.dialog = Some(Dialog::Browser {
                browser: FileBrowser::new(purpose, &start),
                then,
            });
        }
    }

    /// The open file browser, if any (tests fill it in).
    pub fn file_browser_mut(&mut self) -> Option<&mut FileBrowser> {
        match &mut self.dialog {
            Some(Dialog::Browser { browser, .. }) => Some(browser),
            _ => None,
        }
    }

    /// Accepts the open file browser's current choice.
    pub fn accept_file_browser(&mut self) {
        if let Some(Dialog::Browser { browser, then }) = self.dialog.take() {
            let path = browser.target();
            self.file_chosen(browser.purpose, path, then);
        }
    }

    fn file_chosen(&mut self, purpose: FilePurpose, path: PathBuf, then: Option<PendingAction>) {
        match purpose {
            FilePurpose::OpenGraph => {
                if let Err(e) = self.open_path(&path) {
                    self.dialog = Some(Dialog::Message(format!("Could not open: {e}")));
                }
            }
            FilePurpose::SaveGraphAs => match self.save_as(&path) {
                Ok(()) => {
                    if let Some(a) = then {
                        self.perform(a);
                    }
                }
                Err(e) => self.dialog = Some(Dialog::Message(format!("Could not save: {e}"))),
            },
            FilePurpose::Param { node, param, .. } => {
                let value = path.to_string_lossy().into_owned();
                self.doc.set_param(&node, &param, ParamValue::Str(value));
            }
        }
    }

    // ---- one frame ------------------------------------------------------------------------

    /// Draws one frame.
    pub fn show(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        {
            let c = ctx.clone();
            self.runner.set_waker(Arc::new(move || c.request_repaint()));
        }
        self.receive_updates(&ctx);
        self.handle_close_request(&ctx);
        self.shortcuts(&ctx);

        egui::Panel::top("stylegraph-menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("stylegraph-status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("stylegraph-palette")
            .default_size(220.0)
            .min_size(160.0)
            .show(ui, |ui| self.palette(ui));
        egui::Panel::right("stylegraph-inspector")
            .default_size(360.0)
            .min_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.inspector(ui));
            });
        egui::CentralPanel::no_frame().show(ui, |ui| self.canvas(ui));

        self.refusal_tooltip(&ctx);
        self.after_frame(&ctx);
        self.dialogs(&ctx);
        self.update_title(&ctx);
        if self.is_running() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn receive_updates(&mut self, ctx: &egui::Context) {
        let mut changed = false;
        for u in self.runner.poll() {
            changed |= self.run.apply(u);
        }
        if changed {
            self.sync_textures(ctx);
        }
        let mut newest = None;
        for (generation, result) in self.features.results.try_iter() {
            if generation > self.features.shown_generation {
                newest = Some((generation, result));
            }
        }
        if let Some((generation, result)) = newest {
            self.features.shown_generation = generation;
            match result {
                Ok(view) => {
                    self.features.range = (view.lo, view.hi);
                    self.features.error = None;
                    let opts = pixel_texture_options();
                    match &mut self.features.texture {
                        Some(t) => t.set(view.image, opts),
                        None => {
                            self.features.texture =
                                Some(ctx.load_texture("feature-view", view.image, opts))
                        }
                    }
                }
                Err(e) => self.features.error = Some(e),
            }
        }
    }

    /// Uploads pictures of outputs and previews that changed; drops those that are gone.
    fn sync_textures(&mut self, ctx: &egui::Context) {
        let mut wanted: Vec<(String, Arc<ColorImage>)> = Vec::new();
        for (node, views) in &self.run.outputs {
            for (port, view) in views {
                let image = match view {
                    OutputView::Image { image, .. } => image.clone(),
                    OutputView::Features { thumb, .. } => thumb.clone(),
                    OutputView::Latent(l) => l.strip.clone(),
                    _ => continue,
                };
                wanted.push((output_key(node, port), image));
            }
        }
        for (node, previews) in &self.run.previews {
            for (label, image) in previews {
                wanted.push((preview_key(node, label), image.clone()));
            }
        }
        let keep: HashSet<&str> = wanted.iter().map(|(k, _)| k.as_str()).collect();
        self.textures.retain(|k, _| keep.contains(k.as_str()));
        for (key, image) in wanted {
            let addr = Arc::as_ptr(&image) as usize;
            if self.textures.get(&key).is_some_and(|(a, _)| *a == addr) {
                continue;
            }
            let tex = ctx.load_texture(&key, (*image).clone(), pixel_texture_options());
            self.textures.insert(key, (addr, tex));
        }
    }

    fn handle_close_request(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested()) && !self.allow_close {
            if self.doc.is_dirty() {
                ctx.send_viewport_cmd(ViewportCommand::CancelClose);
                if self.dialog.is_none() {
                    self.dialog = Some(Dialog::Unsaved(PendingAction::Quit));
                }
            } else {
                self.allow_close = true;
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let typing = ctx.memory(|m| m.focused().is_some());
        let cmd = |k| KeyboardShortcut::new(Modifiers::COMMAND, k);
        let cmd_shift = |k| KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, k);
        let pressed = |s: KeyboardShortcut| ctx.input_mut(|i| i.consume_shortcut(&s));
        if pressed(cmd(Key::S)) {
            self.menu_save();
        }
        if pressed(cmd_shift(Key::S)) {
            self.open_browser(FilePurpose::SaveGraphAs, None);
        }
        if pressed(cmd(Key::O)) {
            self.request(PendingAction::Open(None));
        }
        if pressed(cmd(Key::N)) {
            self.request(PendingAction::New);
        }
        if pressed(KeyboardShortcut::new(Modifiers::NONE, Key::F5)) || pressed(cmd(Key::Enter)) {
            self.run();
        }
        if typing {
            return;
        }
        if pressed(cmd_shift(Key::Z)) || pressed(cmd(Key::Y)) {
            self.doc.redo(&self.host);
        }
        if pressed(cmd(Key::Z)) {
            self.doc.undo(&self.host);
        }
        if pressed(KeyboardShortcut::new(Modifiers::NONE, Key::Escape)) {
            self.cancel();
        }
        let selected = egui_snarl::ui::get_selected_nodes(Id::new(CANVAS_ID), ctx);
        if pressed(cmd(Key::D)) && !selected.is_empty() {
            self.doc.duplicate(&selected);
        }
        if (pressed(KeyboardShortcut::new(Modifiers::NONE, Key::Delete))
            || pressed(KeyboardShortcut::new(Modifiers::NONE, Key::Backspace)))
            && !selected.is_empty()
        {
            self.delete_nodes(&selected);
        }
    }

    fn delete_nodes(&mut self, nodes: &[NodeId]) {
        let ids: Vec<String> = nodes
            .iter()
            .filter_map(|n| self.doc.snarl.get_node(*n).map(|n| n.id.clone()))
            .collect();
        self.doc.remove_nodes(nodes);
        for id in ids {
            self.run.forget(&id);
            if self.selected.as_deref() == Some(id.as_str()) {
                self.selected = None;
            }
        }
    }

    fn menu_save(&mut self) {
        if self.doc.path.is_some() {
            if let Err(e) = self.save() {
                self.dialog = Some(Dialog::Message(format!("Could not save: {e}")));
            }
        } else {
            self.open_browser(FilePurpose::SaveGraphAs, None);
        }
    }

    fn menu_bar(&mut self, ui: &mut Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("New").clicked() {
                    self.request(PendingAction::New);
                    ui.close();
                }
                if ui.button("Open…").clicked() {
                    self.request(PendingAction::Open(None));
                    ui.close();
                }
                ui.menu_button("Open recent", |ui| {
                    let files = self.recent.files().to_vec();
                    if files.is_empty() {
                        ui.label(RichText::new("no recent files").weak());
                    }
                    for f in files {
                        if ui.button(f.display().to_string()).clicked() {
                            self.request(PendingAction::Open(Some(f)));
                            ui.close();
                        }
                    }
                });
                ui.separator();
                if ui.button("Save").clicked() {
                    self.menu_save();
                    ui.close();
                }
                if ui.button("Save as…").clicked() {
                    self.open_browser(FilePurpose::SaveGraphAs, None);
                    ui.close();
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.request(PendingAction::Quit);
                    ui.close();
                }
            });
            ui.menu_button("Edit", |ui| {
                if ui
                    .add_enabled(self.doc.can_undo(), egui::Button::new("Undo"))
                    .clicked()
                {
                    self.doc.undo(&self.host);
                    ui.close();
                }
                if ui
                    .add_enabled(self.doc.can_redo(), egui::Button::new("Redo"))
                    .clicked()
                {
                    self.doc.redo(&self.host);
                    ui.close();
                }
                ui.separator();
                let selected = egui_snarl::ui::get_selected_nodes(Id::new(CANVAS_ID), ui.ctx());
                if ui
                    .add_enabled(!selected.is_empty(), egui::Button::new("Duplicate"))
                    .clicked()
                {
                    self.doc.duplicate(&selected);
                    ui.close();
                }
                if ui
                    .add_enabled(!selected.is_empty(), egui::Button::new("Delete"))
                    .clicked()
                {
                    self.delete_nodes(&selected);
                    ui.close();
                }
            });
            ui.separator();
            let busy = self.is_running();
            if ui
                .button("⏵ Run")
                .on_hover_text("run the graph (F5)")
                .clicked()
            {
                self.run();
            }
            if ui
                .add_enabled(busy, egui::Button::new("⏹ Cancel"))
                .on_hover_text("cancel the run (Esc)")
                .clicked()
            {
                self.cancel();
            }
            ui.checkbox(&mut self.live, "Live").on_hover_text(
                "re-run on every change; nodes that write files (and what follows them) are left out",
            );
            ui.separator();
            if ui
                .add_enabled(self.doc.can_undo(), egui::Button::new("⟲"))
                .on_hover_text("undo (Ctrl+Z)")
                .clicked()
            {
                self.doc.undo(&self.host);
            }
            if ui
                .add_enabled(self.doc.can_redo(), egui::Button::new("⟳"))
                .on_hover_text("redo (Ctrl+Shift+Z)")
                .clicked()
            {
                self.doc.redo(&self.host);
            }
            if ui.button("Fit").on_hover_text("show all nodes").clicked() {
                self.fit_frames = FIT_FRAMES;
            }
            ui.checkbox(&mut self.params_on_nodes, "Params on nodes")
                .on_hover_text("edit params on the canvas too (nodes get larger)");
        });
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let threads = self.threads;
            ui.label(format!("Device: CPU ({threads} threads)"));
            ui.separator();
            let cache = if self.run.cache_bytes > 0 {
                self.run.cache_bytes
            } else {
                self.session().cache_bytes()
            };
            ui.label(format!("Cache: {}", fmt_bytes(cache)));
            ui.separator();
            if self.is_running() {
                ui.add(egui::Spinner::new().size(12.0));
                let total = self.run.statuses.len();
                let finished = self
                    .run
                    .statuses
                    .values()
                    .filter(|s| {
                        matches!(
                            s,
                            NodeStatus::Done { .. }
                                | NodeStatus::Cached
                                | NodeStatus::Failed { .. }
                                | NodeStatus::Skipped { .. }
                        )
                    })
                    .count();
                ui.label(format!("Running: {finished}/{total} nodes"));
            } else if let Some(last) = &self.run.last {
                let what = match last.ending {
                    Ending::Finished => "finished",
                    Ending::Failed => "failed",
                    Ending::Cancelled => "cancelled",
                    Ending::Invalid => "invalid graph",
                };
                let time = if self.show_timings {
                    format!(" in {:.0} ms", last.duration_ms)
                } else {
                    String::new()
                };
                ui.label(format!(
                    "Last run: {what}{time} ({} executed, {} cached, {} failed)",
                    last.executed, last.cached, last.failed
                ));
            } else {
                ui.label(RichText::new("Not run yet").weak());
            }
            if !self.host.problems().is_empty() {
                ui.separator();
                let n = self.host.problems().len();
                let text = self
                    .host
                    .problems()
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n");
                ui.colored_label(
                    Color32::from_rgb(230, 160, 60),
                    format!("{n} plugin(s) refused"),
                )
                .on_hover_text(text);
            }
            if let Some(n) = &self.notice {
                ui.separator();
                ui.label(n);
            }
        });
    }

    fn palette(&mut self, ui: &mut Ui) {
        ui.heading("Nodes");
        ui.add(
            egui::TextEdit::singleline(&mut self.palette_query)
                .hint_text("search name or doc")
                .desired_width(f32::INFINITY),
        );
        ui.separator();
        let groups = palette::grouped(&self.host, &self.palette_query);
        let mut add = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            if groups.is_empty() {
                ui.label(RichText::new("no matching node types").weak());
            }
            let open = !self.palette_query.trim().is_empty();
            for (cat, types) in &groups {
                egui::CollapsingHeader::new(cat)
                    .default_open(true)
                    .open(open.then_some(true))
                    .show(ui, |ui| {
                        for t in types {
                            let r = ui
                                .button(&t.display_name)
                                .on_hover_text(format!("{}\n\n{}", t.type_id, t.doc));
                            if r.clicked() {
                                add = Some(t.type_id.clone());
                            }
                            let line = palette::first_line(&t.doc);
                            if !line.is_empty() {
                                ui.add(
                                    egui::Label::new(RichText::new(line).small().weak()).truncate(),
                                );
                            }
                        }
                    });
            }
        });
        if let Some(type_id) = add {
            // New nodes appear in the middle of the visible canvas.
            let centre = self.canvas_centre(ui.ctx());
            self.add_node(&type_id, centre, None, None);
        }
    }

    fn canvas_centre(&self, ctx: &egui::Context) -> Pos2 {
        let screen = ctx.content_rect().center();
        let p = self.to_global.inverse().mul_pos(screen);
        // Nudge so that repeated additions do not stack exactly.
        p + Vec2::splat((self.doc.snarl.nodes().count() % 8) as f32 * 16.0)
    }

    /// Adds a node of a loaded type; returns its id.
    pub fn add_node(
        &mut self,
        type_id: &str,
        pos: Pos2,
        from: Option<OutPinId>,
        to: Option<InPinId>,
    ) -> Option<String> {
        let info = self.host.node_type(type_id)?.clone();
        let nid = self.doc.add_node(&info, pos);
        // A node added from a dropped wire connects to the first compatible port.
        if let Some(from) = from {
            let t = self
                .doc
                .snarl
                .get_node(from.node)
                .and_then(|n| n.outputs.get(from.output))
                .map(|p| p.port_type.clone());
            if let Some(idx) =
                t.and_then(|t| info.inputs.iter().position(|i| i.port_type.accepts(&t)))
            {
                let _ = connect_checked(
                    &mut self.doc.snarl,
                    from,
                    InPinId {
                        node: nid,
                        input: idx,
                    },
                );
            }
        }
        if let Some(to) = to {
            let t = self
                .doc
                .snarl
                .get_node(to.node)
                .and_then(|n| n.inputs.get(to.input))
                .map(|p| p.port_type.clone());
            if let Some(idx) =
                t.and_then(|t| info.outputs.iter().position(|o| t.accepts(&o.port_type)))
            {
                let _ = connect_checked(
                    &mut self.doc.snarl,
                    OutPinId {
                        node: nid,
                        output: idx,
                    },
                    to,
                );
            }
        }
        let id = self.doc.snarl.get_node(nid).map(|n| n.id.clone());
        if let Some(id) = &id {
            self.select(id);
        }
        id
    }

    fn canvas(&mut self, ui: &mut Ui) {
        self.pins.borrow_mut().inputs.clear();
        self.pins.borrow_mut().outputs.clear();
        let fit_to = (self.fit_frames > 0).then(|| ui.max_rect());
        self.fit_frames = self.fit_frames.saturating_sub(1);
        let textures: HashMap<String, TextureHandle> = self
            .textures
            .iter()
            .map(|(k, (_, t))| (k.clone(), t.clone()))
            .collect();
        let mut viewer = CanvasViewer {
            host: &self.host,
            run: &self.run,
            textures: &textures,
            problems: &self.problems,
            pins: self.pins.clone(),
            actions: Vec::new(),
            param_requests: Vec::new(),
            refusal: None,
            to_global: self.to_global,
            fit_to,
            menu_query: &mut self.menu_query,
            show_timings: self.show_timings,
            params_on_nodes: self.params_on_nodes,
            node_rects: &self.node_rects,
            new_node_rects: HashMap::new(),
        };
        let response = SnarlWidget::new()
            .id(Id::new(CANVAS_ID))
            .style(canvas_style())
            .show(&mut self.doc.snarl, &mut viewer, ui);
        let _ = response;
        let CanvasViewer {
            actions,
            param_requests,
            refusal,
            to_global,
            new_node_rects,
            ..
        } = viewer;
        self.to_global = to_global;
        self.node_rects = new_node_rects;
        let now = ui.ctx().input(|i| i.time);
        if let Some(r) = refusal {
            self.notice = Some(format!("Connection refused: {r}"));
            self.refusal = Some((r, now));
        }
        let selected = egui_snarl::ui::get_selected_nodes(Id::new(CANVAS_ID), ui.ctx());
        if let Some(last) = selected.last() {
            if let Some(n) = self.doc.snarl.get_node(*last) {
                if self.selected.as_deref() != Some(n.id.as_str()) {
                    let id = n.id.clone();
                    self.select(&id);
                }
            }
        }
        for a in actions {
            match a {
                CanvasAction::Add {
                    type_id,
                    pos,
                    from,
                    to,
                } => {
                    self.add_node(&type_id, pos, from, to);
                }
                CanvasAction::Delete(nodes) => self.delete_nodes(&nodes),
                CanvasAction::Duplicate(nodes) => {
                    self.doc.duplicate(&nodes);
                }
                CanvasAction::Select(id) => self.select(&id),
            }
        }
        for r in param_requests {
            self.param_request(r);
        }
    }

    fn param_request(&mut self, r: ParamRequest) {
        let ParamRequest::PickFile {
            node,
            param,
            save,
            current,
        } = r;
        let purpose = FilePurpose::Param { node, param, save };
        let start = if current.is_empty() || current.contains(':') && !Path::new(&current).exists()
        {
            self.start_dir()
        } else {
            PathBuf::from(current)
        };
        #[cfg(feature = "native-dialogs")]
        {
            if let Some(path) = crate::filedialog::native_pick(&purpose, &start) {
                self.file_chosen(purpose, path, None);
            }
            return;
        }
        #[allow(unreachable_code)]
        {
            self.dialog = Some(Dialog::Browser {
                browser: FileBrowser::new(purpose, &start),
                then: None,
            });
        }
    }

    /// The explanation of a refused or impossible connection, next to the pointer.
    fn refusal_tooltip(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        let (dragging, origin, pointer) = ctx.input(|i| {
            (
                i.pointer.primary_down() && i.pointer.is_decidedly_dragging(),
                i.pointer.press_origin(),
                i.pointer.latest_pos(),
            )
        });
        let live_problem = match (dragging, origin, pointer) {
            (true, Some(o), Some(p)) => {
                dragged_wire_problem(&self.doc.snarl, &self.pins.borrow(), self.to_global, o, p)
            }
            _ => None,
        };
        if let Some((_, t)) = &self.refusal {
            if now - t > REFUSAL_SECONDS {
                self.refusal = None;
            } else {
                ctx.request_repaint_after(Duration::from_millis(250));
            }
        }
        let text = live_problem.or_else(|| self.refusal.as_ref().map(|(m, _)| m.clone()));
        let (Some(text), Some(pos)) = (text, pointer) else {
            return;
        };
        egui::Area::new(Id::new("stylegraph-wire-refusal"))
            .order(egui::Order::Tooltip)
            .fixed_pos(pos + Vec2::new(16.0, 16.0))
            .interactable(false)
            .show(ctx, |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    ui.set_max_width(320.0);
                    ui.colored_label(
                        Color32::from_rgb(240, 90, 90),
                        format!("Cannot connect: {text}"),
                    );
                });
            });
    }

    fn after_frame(&mut self, ctx: &egui::Context) {
        let graph = self.doc.to_graph();
        let live_switched_on = self.live && !self.was_live;
        self.was_live = self.live;
        if self.checked_graph.as_ref() != Some(&graph) || live_switched_on {
            let errors = validate(&graph, &self.host);
            self.problems.clear();
            self.problem_list = errors.iter().map(|e| e.to_string()).collect();
            for e in &errors {
                if let Some(n) = e.node() {
                    self.problems
                        .entry(n.to_owned())
                        .or_default()
                        .push(e.to_string());
                }
            }
            if self.live && errors.is_empty() {
                let live = live_subgraph(&graph, &self.host);
                if self.last_run_graph.as_ref() != Some(&live) && !live.nodes.is_empty() {
                    self.last_run_graph = Some(live.clone());
                    self.runner.submit(live);
                }
            }
            self.checked_graph = Some(graph);
        }
        // One undo step per gesture: wait until no button is held and no text field is focused.
        let down = ctx.input(|i| i.pointer.any_down());
        let focused = ctx.memory(|m| m.focused().is_some());
        if !down && !focused {
            self.doc.commit();
        }
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let title = format!(
            "{}{} — Stylegraph",
            if self.doc.is_dirty() { "• " } else { "" },
            self.doc.title()
        );
        if title != self.last_title {
            ctx.send_viewport_cmd(ViewportCommand::Title(title.clone()));
            self.last_title = title;
        }
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
        let Some(dialog) = self.dialog.take() else {
            return;
        };
        match dialog {
            Dialog::Unsaved(action) => {
                let mut answer = None;
                let r = egui::Modal::new(Id::new("stylegraph-unsaved")).show(ctx, |ui| {
                    ui.heading("Unsaved changes");
                    ui.label(format!(
                        "{} has changes that are not saved. Save them first?",
                        self.doc.title()
                    ));
                    ui.horizontal(|ui| {
                        if ui.button("Save").clicked() {
                            answer = Some(Some(true));
                        }
                        if ui.button("Don't save").clicked() {
                            answer = Some(Some(false));
                        }
                        if ui.button("Cancel").clicked() {
                            answer = Some(None);
                        }
                    });
                });
                self.dialog = Some(Dialog::Unsaved(action));
                match answer {
                    Some(Some(save)) => self.answer_unsaved(save),
                    Some(None) => self.dialog = None,
                    None if r.should_close() => self.dialog = None,
                    None => {}
                }
            }
            Dialog::Browser { mut browser, then } => match browser.show(ctx) {
                BrowserResult::Open => self.dialog = Some(Dialog::Browser { browser, then }),
                BrowserResult::Cancelled => {}
                BrowserResult::Chosen(path) => self.file_chosen(browser.purpose, path, then),
            },
            Dialog::Message(text) => {
                let mut close = false;
                let r = egui::Modal::new(Id::new("stylegraph-message")).show(ctx, |ui| {
                    ui.label(&text);
                    close = ui.button("OK").clicked();
                });
                if !close && !r.should_close() {
                    self.dialog = Some(Dialog::Message(text));
                }
            }
        }
        if self.allow_close {
            ctx.send_viewport_cmd(ViewportCommand::Close);
        }
    }

    // ---- inspector and viewer ---------------------------------------------------------------

    fn inspector(&mut self, ui: &mut Ui) {
        let Some(id) = self.selected.clone() else {
            ui.heading("Inspector");
            ui.label(RichText::new("Select a node to see its params and outputs.").weak());
            if !self.problem_list.is_empty() {
                ui.separator();
                ui.label(RichText::new("Graph problems").strong());
                for p in &self.problem_list {
                    ui.colored_label(Color32::from_rgb(230, 160, 60), p);
                }
            }
            return;
        };
        let Some(nid) = self.doc.find(&id) else {
            self.selected = None;
            return;
        };
        let node = self.doc.snarl[nid].clone();
        let info = self.host.node_type(&node.type_id).cloned();
        ui.heading(
            info.as_ref()
                .map_or(node.type_id.clone(), |i| i.display_name.clone()),
        );
        ui.label(RichText::new(&node.type_id).weak().monospace());
        // Renaming: applied when the field loses focus.
        if self.rename_buffer.0 != id {
            self.rename_buffer = (id.clone(), id.clone());
        }
        ui.horizontal(|ui| {
            ui.label("id");
            let r = ui.text_edit_singleline(&mut self.rename_buffer.1);
            if r.lost_focus() && self.rename_buffer.1 != id {
                let new_id = self.rename_buffer.1.clone();
                match self.doc.rename(nid, &new_id) {
                    Ok(()) => {
                        self.run.forget(&id);
                        self.selected = Some(new_id.clone());
                        self.rename_buffer = (new_id.clone(), new_id);
                    }
                    Err(e) => {
                        self.notice = Some(e);
                        self.rename_buffer.1 = id.clone();
                    }
                }
            }
        });
        if let Some(info) = &info {
            if !info.doc.is_empty() {
                egui::CollapsingHeader::new("Documentation")
                    .default_open(false)
                    .show(ui, |ui| {
                        ui.label(&info.doc);
                    });
            }
        }
        // Status and error.
        let status = self.run.status(&id).clone();
        match &status {
            NodeStatus::Failed { error } => {
                ui.colored_label(Color32::from_rgb(240, 90, 90), format!("Failed: {error}"));
            }
            NodeStatus::Invalid { problems } => {
                for p in problems {
                    ui.colored_label(Color32::from_rgb(240, 90, 90), p);
                }
            }
            NodeStatus::Skipped { reason } => {
                ui.label(format!("Skipped: {reason}"));
            }
            NodeStatus::Idle => {}
            s => {
                ui.label(format!("Status: {}", s.label()));
            }
        }
        if let Some(problems) = self.problems.get(&id) {
            for p in problems {
                ui.colored_label(Color32::from_rgb(230, 160, 60), p);
            }
        }
        ui.separator();

        // Params, with the full widgets.
        if let Some(info) = &info {
            if !info.params.is_empty() {
                ui.label(RichText::new("Params").strong());
                let mut requests = Vec::new();
                let mut edits = Vec::new();
                {
                    let mut cx = ParamCtx {
                        node_id: &id,
                        compact: false,
                        requests: &mut requests,
                    };
                    for p in &info.params {
                        let value = node.param_value(p).clone();
                        let is_set = node.params.contains_key(&p.name);
                        if let Some(e) = param_row(ui, p, &value, is_set, &mut cx) {
                            edits.push((p.name.clone(), e));
                        }
                    }
                }
                self.apply_edits(nid, edits);
                for r in requests {
                    self.param_request(r);
                }
                self.transform_section(ui, nid, info);
                self.seed_section(ui, nid, info);
            }
        }
        ui.separator();
        self.viewer(ui, &id);
    }

    fn apply_edits(&mut self, nid: NodeId, edits: Vec<(String, ParamEdit)>) {
        let Some(n) = self.doc.snarl.get_node_mut(nid) else {
            return;
        };
        for (name, e) in edits {
            match e {
                ParamEdit::Set(v) => {
                    n.params.insert(name, v);
                }
                ParamEdit::Reset => {
                    n.params.remove(&name);
                }
            }
        }
    }

    /// The translate/rotate pad for nodes with `translate_x` and `translate_y` (and `rotate`).
    fn transform_section(
        &mut self,
        ui: &mut Ui,
        nid: NodeId,
        info: &stylegraph_core::plugin::NodeTypeInfo,
    ) {
        let (Some(px), Some(py)) = (info.param("translate_x"), info.param("translate_y")) else {
            return;
        };
        let pr = info.param("rotate");
        let node = &self.doc.snarl[nid];
        let get = |p: &stylegraph_core::plugin::ParamInfo| match node.param_value(p) {
            ParamValue::Float(f) => *f,
            ParamValue::Int(i) => *i as f64,
            _ => 0.0,
        };
        let range = |p: &stylegraph_core::plugin::ParamInfo, lo: f64, hi: f64| {
            (p.min.unwrap_or(lo), p.max.unwrap_or(hi))
        };
        let values = [get(px), get(py), pr.map_or(0.0, get)];
        let ranges = [
            range(px, -1.0, 1.0),
            range(py, -1.0, 1.0),
            pr.map_or((-180.0, 180.0), |p| range(p, -180.0, 180.0)),
        ];
        ui.separator();
        ui.label(RichText::new("Transform of the input").strong());
        if let Some([x, y, r]) = transform_pad(ui, values, ranges) {
            let mut edits = vec![
                (px.name.clone(), ParamEdit::Set(ParamValue::Float(x))),
                (py.name.clone(), ParamEdit::Set(ParamValue::Float(y))),
            ];
            if let Some(pr) = pr {
                edits.push((pr.name.clone(), ParamEdit::Set(ParamValue::Float(r))));
            }
            self.apply_edits(nid, edits);
        }
    }

    /// Step buttons for seeds, to walk through seeds one at a time.
    fn seed_section(
        &mut self,
        ui: &mut Ui,
        nid: NodeId,
        info: &stylegraph_core::plugin::NodeTypeInfo,
    ) {
        let seeds: Vec<_> = info.params.iter().filter(|p| p.is_seed).collect();
        if seeds.is_empty() {
            return;
        }
        ui.separator();
        ui.horizontal(|ui| {
            ui.label(RichText::new("Explore").strong());
            ui.checkbox(&mut self.live, "Live")
                .on_hover_text("re-run on every change");
        });
        let mut edits = Vec::new();
        for p in seeds {
            let current = match self.doc.snarl[nid].param_value(p) {
                ParamValue::Int(i) => *i,
                _ => 0,
            };
            let lo = p.min.map_or(i64::MIN, |m| m as i64);
            let hi = p.max.map_or(i64::MAX, |m| m as i64);
            ui.horizontal(|ui| {
                ui.label(&p.name);
                if ui.button("⏴").on_hover_text("previous seed").clicked() && current > lo {
                    edits.push((p.name.clone(), ParamEdit::Set(ParamValue::Int(current - 1))));
                }
                ui.label(RichText::new(current.to_string()).monospace());
                if ui.button("⏵").on_hover_text("next seed").clicked() && current < hi {
                    edits.push((p.name.clone(), ParamEdit::Set(ParamValue::Int(current + 1))));
                }
            });
        }
        self.apply_edits(nid, edits);
    }

    fn viewer(&mut self, ui: &mut Ui, id: &str) {
        let views = self.run.outputs.get(id).cloned().unwrap_or_default();
        let previews = self.run.previews.get(id).cloned().unwrap_or_default();
        if views.is_empty() && previews.is_empty() {
            ui.label(RichText::new("No outputs yet: run the graph (F5).").weak());
            return;
        }
        // Choose what to show: the user's pick, else the first picture.
        let mut choices: Vec<String> = views.iter().map(|(p, _)| p.clone()).collect();
        choices.extend(previews.iter().map(|(l, _)| format!("#{l}")));
        let default = views
            .iter()
            .find(|(_, v)| {
                matches!(
                    v,
                    OutputView::Image { .. } | OutputView::Features { .. } | OutputView::Latent(_)
                )
            })
            .map(|(p, _)| p.clone())
            .or_else(|| choices.first().cloned())
            .unwrap_or_default();
        let mut current = self
            .viewer_port
            .clone()
            .filter(|p| choices.contains(p))
            .unwrap_or(default);
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Output").strong());
            for c in &choices {
                ui.selectable_value(&mut current, c.clone(), c);
            }
        });
        if self.viewer_port.as_ref() != Some(&current) {
            self.viewer_port = Some(current.clone());
        }
        let width = ui.available_width().max(64.0);
        if let Some(label) = current.strip_prefix('#') {
            if let Some(tex) = self.textures.get(&preview_key(id, label)).map(|(_, t)| t) {
                show_big(ui, tex, width, format!("viewer {id} {label}"));
            }
            return;
        }
        let Some((_, view)) = views.iter().find(|(p, _)| *p == current) else {
            return;
        };
        ui.label(RichText::new(view.summary()).small());
        match view {
            OutputView::Image { .. } => {
                if let Some((_, tex)) = self.textures.get(&output_key(id, &current)) {
                    show_big(ui, tex, width, format!("viewer {id}.{current}"));
                }
            }
            OutputView::Latent(l) => {
                if let Some((_, tex)) = self.textures.get(&output_key(id, &current)) {
                    let rows = tex.size_vec2().y;
                    let h = (rows * 6.0).clamp(12.0, 300.0);
                    ui.add(
                        egui::Image::new((tex.id(), Vec2::new(width, h)))
                            .alt_text(format!("viewer {id}.{current}")),
                    );
                }
                ui.label(format!(
                    "min {:.4}   max {:.4}   mean {:.4}   std {:.4}",
                    l.min, l.max, l.mean, l.std
                ));
            }
            OutputView::Features { tensor, .. } => {
                self.feature_controls(ui, tensor);
                if let Some(tex) = &self.features.texture {
                    show_big(ui, tex, width, format!("features {id}.{current}"));
                    ui.label(
                        RichText::new(format!(
                            "range [{:.4}, {:.4}]",
                            self.features.range.0, self.features.range.1
                        ))
                        .small(),
                    );
                }
                if let Some(e) = &self.features.error {
                    ui.colored_label(Color32::LIGHT_RED, e);
                }
            }
            OutputView::Text(t) => {
                ui.label(RichText::new(t).monospace());
            }
            OutputView::Tensor { summary } => {
                ui.label(summary);
            }
        }
    }

    fn feature_controls(&mut self, ui: &mut Ui, tensor: &Arc<stylegraph_core::value::HostTensor>) {
        let shape = tensor.shape();
        let (n, c) = match shape {
            [n, c, _, _] => ((*n).max(1) as usize, (*c).max(1) as usize),
            _ => (1, 1),
        };
        let f = &mut self.features;
        f.channel = f.channel.min(c - 1);
        f.batch = f.batch.min(n - 1);
        ui.horizontal(|ui| {
            ui.label("channel");
            ui.add_enabled(
                !f.mode.mean_abs,
                egui::Slider::new(&mut f.channel, 0..=c - 1),
            );
        });
        if n > 1 {
            ui.horizontal(|ui| {
                ui.label("sample");
                ui.add(egui::Slider::new(&mut f.batch, 0..=n - 1));
            });
        }
        ui.horizontal(|ui| {
            ui.checkbox(&mut f.mode.normalize, "normalize")
                .on_hover_text("stretch this channel's range (else one scale for all channels)");
            ui.checkbox(&mut f.mode.fft, "FFT")
                .on_hover_text("centred log-magnitude spectrum");
            ui.checkbox(&mut f.mode.mean_abs, "mean |x|")
                .on_hover_text("mean absolute value over all channels");
        });
        let key = (Arc::as_ptr(tensor) as usize, f.batch, f.channel, f.mode);
        if f.submitted != Some(key) {
            f.submitted = Some(key);
            f.worker.submit(FeatureRequest {
                tensor: tensor.clone(),
                batch: f.batch,
                channel: f.channel,
                mode: f.mode,
            });
        }
        if f.worker.is_busy() {
            ui.ctx().request_repaint_after(Duration::from_millis(30));
        }
    }
}

fn pixel_texture_options() -> TextureOptions {
    // Small pictures (latents, 16x16 feature maps) must stay crisp when enlarged.
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::default()
    }
}

fn show_big(ui: &mut Ui, tex: &TextureHandle, width: f32, alt: String) {
    let size = tex.size_vec2();
    let scale = (width / size.x.max(1.0)).min(8.0);
    ui.add(egui::Image::new((tex.id(), size * scale)).alt_text(alt));
    ui.label(
        RichText::new(format!("{} × {}", size.x as usize, size.y as usize))
            .small()
            .weak(),
    );
}

impl eframe::App for EditorApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self) {
        self.runner.cancel();
    }
}
