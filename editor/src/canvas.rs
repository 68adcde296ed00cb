//! The node canvas: how egui-snarl draws our nodes (header with status, typed pins, param
//! widgets in the body, previews and errors in the footer), typed wires, and the context menus
//! to add, duplicate and delete nodes.

use crate::document::{connect_checked, connection_problem, EdNode};
use crate::palette;
use crate::params::{param_row, ParamCtx, ParamEdit, ParamRequest};
use crate::preview::OutputView;
use crate::runview::{NodeStatus, RunView};
use egui::emath::TSTransform;
use egui::{Color32, Pos2, Rect, RichText, Stroke, TextureHandle, Ui, Vec2};
use egui_snarl::ui::{
    AnyPins, PinInfo, PinPlacement, PinShape, PinWireInfo, SnarlPin, SnarlStyle, SnarlViewer,
    WireStyle,
};
use egui_snarl::{InPin, InPinId, NodeId, OutPin, OutPinId, Snarl};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use stylegraph_core::plugin::PluginHost;
use stylegraph_core::types::PortType;

/// Largest side of a thumbnail on the canvas, in points.
pub const THUMB_SIZE: f32 = 112.0;

/// Where pins were drawn this frame, in canvas (graph) coordinates.
#[derive(Default, Debug)]
pub struct PinRects {
    pub inputs: HashMap<InPinId, Rect>,
    pub outputs: HashMap<OutPinId, Rect>,
}

/// Pin rectangles shared between the pins (which record them while drawing) and the app.
pub type SharedPins = Rc<RefCell<PinRects>>;

/// Which pin a [`TypedPin`] is.
#[derive(Clone, Copy)]
enum PinKey {
    In(InPinId),
    Out(OutPinId),
}

/// A pin coloured and shaped by its port type, which records where it was drawn.
pub struct TypedPin {
    info: PinInfo,
    key: PinKey,
    record: SharedPins,
}

impl SnarlPin for TypedPin {
    fn draw(
        self,
        snarl_style: &SnarlStyle,
        style: &egui::Style,
        rect: Rect,
        painter: &egui::Painter,
    ) -> PinWireInfo {
        {
            let mut rec = self.record.borrow_mut();
            match self.key {
                PinKey::In(id) => {
                    rec.inputs.insert(id, rect);
                }
                PinKey::Out(id) => {
                    rec.outputs.insert(id, rect);
                }
            }
        }
        self.info.draw(snarl_style, style, rect, painter)
    }
}

/// A stable colour per port type: fixed ones for the common types, a hashed hue otherwise.
pub fn type_colour(t: &PortType) -> Color32 {
    match t {
        PortType::Bool => Color32::from_rgb(200, 120, 200),
        PortType::Int => Color32::from_rgb(90, 170, 220),
        PortType::Float => Color32::from_rgb(110, 200, 110),
        PortType::String | PortType::Path => Color32::from_rgb(220, 200, 100),
        PortType::Tensor => Color32::from_rgb(170, 170, 170),
        PortType::Any => Color32::from_rgb(230, 230, 230),
        PortType::Object(_) => Color32::from_rgb(150, 110, 80),
        PortType::Semantic(s) => match s.as_str() {
            "Image" => Color32::from_rgb(240, 150, 60),
            "Z" => Color32::from_rgb(160, 120, 240),
            "W" => Color32::from_rgb(190, 110, 220),
            "WPlus" => Color32::from_rgb(220, 100, 200),
            "Features" => Color32::from_rgb(70, 200, 190),
            "Direction" => Color32::from_rgb(240, 110, 120),
            "Mask" => Color32::from_rgb(120, 120, 240),
            other => {
                let h = other
                    .bytes()
                    .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
                egui::ecolor::Hsva::new((h % 360) as f32 / 360.0, 0.6, 0.9, 1.0).into()
            }
        },
    }
}

fn pin_shape(t: &PortType) -> PinShape {
    match t {
        PortType::Tensor | PortType::Semantic(_) => PinShape::Circle,
        PortType::Object(_) => PinShape::Star,
        PortType::Any => PinShape::Triangle,
        _ => PinShape::Square,
    }
}

/// The colour of a status on the canvas.
pub fn status_colour(s: &NodeStatus) -> Option<Color32> {
    match s {
        NodeStatus::Idle => None,
        NodeStatus::Queued => Some(Color32::from_rgb(170, 170, 90)),
        NodeStatus::Running { .. } => Some(Color32::from_rgb(80, 150, 255)),
        NodeStatus::Cached => Some(Color32::from_rgb(100, 160, 130)),
        NodeStatus::Done { .. } => Some(Color32::from_rgb(90, 200, 90)),
        NodeStatus::Failed { .. } | NodeStatus::Invalid { .. } => {
            Some(Color32::from_rgb(230, 70, 70))
        }
        NodeStatus::Skipped { .. } | NodeStatus::Cancelled => Some(Color32::GRAY),
    }
}

/// Something the canvas asks the app to do after drawing.
#[derive(Debug)]
pub enum CanvasAction {
    /// Add a node of this type at this canvas position, optionally wired to a dragged pin.
    Add {
        type_id: String,
        pos: Pos2,
        from: Option<OutPinId>,
        to: Option<InPinId>,
    },
    Delete(Vec<NodeId>),
    Duplicate(Vec<NodeId>),
    /// Show this node in the inspector.
    Select(String),
}

/// Texture keys: `node/port` for outputs, `node#label` for previews.
pub fn output_key(node: &str, port: &str) -> String {
    format!("{node}/{port}")
}

/// See [`output_key`].
pub fn preview_key(node: &str, label: &str) -> String {
    format!("{node}#{label}")
}

/// The style of the canvas.
pub fn canvas_style() -> SnarlStyle {
    SnarlStyle {
        pin_placement: Some(PinPlacement::Edge),
        wire_style: Some(WireStyle::Bezier5),
        wire_width: Some(2.5),
        collapsible: Some(true),
        min_scale: Some(0.2),
        // Magnified text is blurry, but nodes keep their natural size in canvas units, so the
        // positions in a file mean the same at every zoom.
        max_scale: Some(1.5),
        crisp_magnified_text: Some(false),
        ..SnarlStyle::new()
    }
}

/// Draws the nodes of a [`Snarl<EdNode>`] for one frame.
pub struct CanvasViewer<'a> {
    pub host: &'a PluginHost,
    pub run: &'a RunView,
    pub textures: &'a HashMap<String, TextureHandle>,
    /// Problems the validator finds in the current graph, by node.
    pub problems: &'a HashMap<String, Vec<String>>,
    pub pins: SharedPins,
    pub actions: Vec<CanvasAction>,
    pub param_requests: Vec<ParamRequest>,
    /// Why the last attempted connection was refused.
    pub refusal: Option<String>,
    /// The canvas-to-screen transform of this frame.
    pub to_global: TSTransform,
    /// When set, the view is changed to show every node within this screen rectangle.
    pub fit_to: Option<Rect>,
    /// The palette search text of the right-click menu.
    pub menu_query: &'a mut String,
    /// Show run times on nodes (off for reproducible screenshots).
    pub show_timings: bool,
    /// Show param widgets in node bodies (else only in the inspector, keeping nodes compact).
    pub params_on_nodes: bool,
    /// Node rectangles of the previous frame (canvas coordinates), for fitting the view.
    pub node_rects: &'a HashMap<NodeId, Rect>,
    /// Node rectangles drawn this frame.
    pub new_node_rects: HashMap<NodeId, Rect>,
}

impl CanvasViewer<'_> {
    fn port_tooltip(port: &stylegraph_core::plugin::PortInfo) -> String {
        let mut s = format!("{}: {}", port.name, port.port_type);
        if port.optional {
            s.push_str(" (optional)");
        }
        if port.stream {
            s.push_str(" (stream: a sequence, passed chunk by chunk)");
        }
        if !port.doc.is_empty() {
            s.push('\n');
            s.push_str(&port.doc);
        }
        s
    }

    fn node_types_menu(
        &mut self,
        ui: &mut Ui,
        pos: Pos2,
        accepts: impl Fn(&stylegraph_core::plugin::NodeTypeInfo) -> bool,
        from: Option<OutPinId>,
        to: Option<InPinId>,
    ) {
        ui.add(egui::TextEdit::singleline(self.menu_query).hint_text("search nodes"));
        let groups = palette::grouped(self.host, self.menu_query);
        let mut chosen = None;
        egui::ScrollArea::vertical()
            .max_height(320.0)
            .show(ui, |ui| {
                for (cat, types) in &groups {
                    let types: Vec<_> = types.iter().filter(|t| accepts(t)).collect();
                    if types.is_empty() {
                        continue;
                    }
                    ui.label(RichText::new(cat).weak());
                    for t in types {
                        let r = ui
                            .button(&t.display_name)
                            .on_hover_text(format!("{}\n{}", t.type_id, t.doc));
                        if r.clicked() {
                            chosen = Some(t.type_id.clone());
                        }
                    }
                }
            });
        if let Some(type_id) = chosen {
            self.actions.push(CanvasAction::Add {
                type_id,
                pos,
                from,
                to,
            });
            self.menu_query.clear();
            ui.close();
        }
    }
}

fn thumb(ui: &mut Ui, tex: &TextureHandle, alt: String) -> egui::Response {
    let size = tex.size_vec2();
    let scale = (THUMB_SIZE / size.x.max(size.y)).min(4.0);
    ui.add(
        egui::Image::new((tex.id(), size * scale))
            .alt_text(alt)
            .sense(egui::Sense::click()),
    )
}

impl SnarlViewer<EdNode> for CanvasViewer<'_> {
    fn title(&mut self, node: &EdNode) -> String {
        match self.host.node_type(&node.type_id) {
            Some(info) => info.display_name.clone(),
            None => node.type_id.clone(),
        }
    }

    fn node_frame(
        &mut self,
        default: egui::Frame,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        snarl: &Snarl<EdNode>,
    ) -> egui::Frame {
        let Some(n) = snarl.get_node(node) else {
            return default;
        };
        let status = self.run.status(&n.id);
        let colour = if !n.known {
            Some(Color32::from_rgb(230, 70, 70))
        } else {
            status_colour(status)
        };
        match colour {
            Some(c) => default.stroke(Stroke::new(2.0, c)),
            None => default,
        }
    }

    fn show_header(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) {
        let Some(n) = snarl.get_node(node) else {
            return;
        };
        let title = self.title(n);
        let status = self.run.status(&n.id).clone();
        let id = n.id.clone();
        ui.horizontal(|ui| {
            let r = ui.add(egui::Label::new(RichText::new(title).strong()).sense(egui::Sense::click()));
            let doc = self
                .host
                .node_type(&n.type_id)
                .map(|i| format!("{}\n\n{}", i.type_id, i.doc))
                .unwrap_or_else(|| {
                    format!(
                        "{}: no loaded plugin provides this node type; it is kept as it is in the file",
                        n.type_id
                    )
                });
            if r.on_hover_text(doc).clicked() {
                self.actions.push(CanvasAction::Select(id.clone()));
            }
            ui.label(RichText::new(&id).weak().small());
            if let Some(c) = status_colour(&status) {
                let badge = match &status {
                    NodeStatus::Running {
                        fraction: Some(f), ..
                    } => format!("{:.0}%", f * 100.0),
                    NodeStatus::Done { ms } if self.show_timings => format!("{ms:.0} ms"),
                    s => s.label().to_owned(),
                };
                if matches!(status, NodeStatus::Running { .. }) {
                    ui.add(egui::Spinner::new().size(12.0).color(c));
                }
                ui.label(RichText::new(badge).small().color(c));
            }
        });
    }

    fn inputs(&mut self, node: &EdNode) -> usize {
        node.inputs.len()
    }

    fn outputs(&mut self, node: &EdNode) -> usize {
        node.outputs.len()
    }

    fn show_input(
        &mut self,
        pin: &InPin,
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) -> impl SnarlPin + 'static {
        let port = snarl
            .get_node(pin.id.node)
            .and_then(|n| n.inputs.get(pin.id.input))
            .cloned();
        let (fill, shape) = match &port {
            Some(p) => {
                let mut text = RichText::new(&p.name);
                if pin.remotes.is_empty() && !p.optional {
                    text = text.color(Color32::from_rgb(230, 160, 60));
                }
                ui.label(text).on_hover_text(Self::port_tooltip(p));
                (type_colour(&p.port_type), pin_shape(&p.port_type))
            }
            None => (Color32::GRAY, PinShape::Circle),
        };
        TypedPin {
            info: PinInfo::default().with_fill(fill).with_shape(shape),
            key: PinKey::In(pin.id),
            record: self.pins.clone(),
        }
    }

    fn show_output(
        &mut self,
        pin: &OutPin,
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) -> impl SnarlPin + 'static {
        let port = snarl
            .get_node(pin.id.node)
            .and_then(|n| n.outputs.get(pin.id.output))
            .cloned();
        let (fill, shape) = match &port {
            Some(p) => {
                ui.label(&p.name).on_hover_text(Self::port_tooltip(p));
                (type_colour(&p.port_type), pin_shape(&p.port_type))
            }
            None => (Color32::GRAY, PinShape::Circle),
        };
        TypedPin {
            info: PinInfo::default().with_fill(fill).with_shape(shape),
            key: PinKey::Out(pin.id),
            record: self.pins.clone(),
        }
    }

    fn has_body(&mut self, node: &EdNode) -> bool {
        if !self.params_on_nodes {
            return false;
        }
        !node.params.is_empty()
            || self
                .host
                .node_type(&node.type_id)
                .is_some_and(|i| !i.params.is_empty())
    }

    fn show_body(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) {
        let Some(n) = snarl.get_node_mut(node) else {
            return;
        };
        let info = self.host.node_type(&n.type_id);
        ui.vertical(|ui| {
            let Some(info) = info else {
                for (name, v) in &n.params {
                    ui.label(format!("{name} = {v}"));
                }
                return;
            };
            let mut cx = ParamCtx {
                node_id: &n.id,
                compact: true,
                requests: &mut self.param_requests,
            };
            let mut edits = Vec::new();
            for p in &info.params {
                let value = n.param_value(p).clone();
                let is_set = n.params.contains_key(&p.name);
                if let Some(e) = param_row(ui, p, &value, is_set, &mut cx) {
                    edits.push((p.name.clone(), e));
                }
            }
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
        });
    }

    fn has_footer(&mut self, node: &EdNode) -> bool {
        let id = node.id.as_str();
        !node.known
            || !node.unresolved.is_empty()
            || self.problems.contains_key(id)
            || self.run.outputs.contains_key(id)
            || self.run.previews.contains_key(id)
            || !matches!(self.run.status(id), NodeStatus::Idle)
    }

    fn show_footer(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) {
        let Some(n) = snarl.get_node(node) else {
            return;
        };
        let id = n.id.clone();
        let mut select = false;
        ui.vertical(|ui| {
            ui.set_max_width(260.0);
            let red = Color32::from_rgb(240, 90, 90);
            if !n.known {
                ui.colored_label(red, format!("unknown node type {}", n.type_id));
            }
            for (port, src) in &n.unresolved {
                ui.colored_label(red, format!("{port} ← {src} (unresolved)"));
            }
            match self.run.status(&id) {
                NodeStatus::Failed { error } => {
                    ui.add(egui::Label::new(RichText::new(error).color(red)).wrap());
                }
                NodeStatus::Skipped { reason } => {
                    ui.label(RichText::new(format!("skipped: {reason}")).weak());
                }
                NodeStatus::Running {
                    fraction: Some(f),
                    message,
                } => {
                    ui.add(
                        egui::ProgressBar::new(*f as f32)
                            .desired_width(160.0)
                            .text(message.clone()),
                    );
                }
                _ => {}
            }
            if let Some(problems) = self.problems.get(&id) {
                for p in problems {
                    ui.add(
                        egui::Label::new(
                            RichText::new(p)
                                .small()
                                .color(Color32::from_rgb(230, 160, 60)),
                        )
                        .wrap(),
                    );
                }
            }
            if let Some(views) = self.run.outputs.get(&id) {
                for (port, view) in views {
                    match view {
                        OutputView::Image { .. } | OutputView::Features { .. } => {
                            if let Some(tex) = self.textures.get(&output_key(&id, port)) {
                                let r = thumb(ui, tex, format!("preview {id}.{port}"))
                                    .on_hover_text(format!("{port}: {}", view.summary()));
                                select |= r.clicked();
                            }
                        }
                        OutputView::Latent(l) => {
                            if let Some(tex) = self.textures.get(&output_key(&id, port)) {
                                let h = (tex.size_vec2().y * 4.0).clamp(6.0, 48.0);
                                let r = ui
                                    .add(
                                        egui::Image::new((tex.id(), Vec2::new(160.0, h)))
                                            .alt_text(format!("latent {id}.{port}"))
                                            .sense(egui::Sense::click()),
                                    )
                                    .on_hover_text(view.summary());
                                select |= r.clicked();
                            }
                            ui.label(
                                RichText::new(format!(
                                    "{port} {:?} [{:.2}, {:.2}]",
                                    l.shape, l.min, l.max
                                ))
                                .small(),
                            );
                        }
                        OutputView::Text(t) => {
                            ui.label(RichText::new(format!("{port} = {t}")).small());
                        }
                        OutputView::Tensor { summary } => {
                            ui.label(RichText::new(format!("{port}: {summary}")).small().weak());
                        }
                    }
                }
            }
            if let Some(previews) = self.run.previews.get(&id) {
                for (label, _) in previews {
                    if let Some(tex) = self.textures.get(&preview_key(&id, label)) {
                        let r =
                            thumb(ui, tex, format!("preview {id} {label}")).on_hover_text(label);
                        select |= r.clicked();
                    }
                }
            }
        });
        if select {
            self.actions.push(CanvasAction::Select(id));
        }
    }

    fn connect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<EdNode>) {
        if let Err(why) = connect_checked(snarl, from.id, to.id) {
            self.refusal = Some(why);
        }
    }

    fn has_graph_menu(&mut self, _pos: Pos2, _snarl: &mut Snarl<EdNode>) -> bool {
        true
    }

    fn show_graph_menu(&mut self, pos: Pos2, ui: &mut Ui, _snarl: &mut Snarl<EdNode>) {
        ui.label(RichText::new("Add node").strong());
        self.node_types_menu(ui, pos, |_| true, None, None);
    }

    fn has_dropped_wire_menu(&mut self, _src_pins: AnyPins, _snarl: &mut Snarl<EdNode>) -> bool {
        true
    }

    fn show_dropped_wire_menu(
        &mut self,
        pos: Pos2,
        ui: &mut Ui,
        src_pins: AnyPins,
        snarl: &mut Snarl<EdNode>,
    ) {
        ui.label(RichText::new("Add a connected node").strong());
        match src_pins {
            AnyPins::Out(pins) => {
                let Some(&from) = pins.first() else { return };
                let Some(t) = snarl
                    .get_node(from.node)
                    .and_then(|n| n.outputs.get(from.output))
                    .map(|p| p.port_type.clone())
                else {
                    return;
                };
                self.node_types_menu(
                    ui,
                    pos,
                    |info| info.inputs.iter().any(|i| i.port_type.accepts(&t)),
                    Some(from),
                    None,
                );
            }
            AnyPins::In(pins) => {
                let Some(&to) = pins.first() else { return };
                let Some(t) = snarl
                    .get_node(to.node)
                    .and_then(|n| n.inputs.get(to.input))
                    .map(|p| p.port_type.clone())
                else {
                    return;
                };
                self.node_types_menu(
                    ui,
                    pos,
                    |info| info.outputs.iter().any(|o| t.accepts(&o.port_type)),
                    None,
                    Some(to),
                );
            }
        }
    }

    fn has_node_menu(&mut self, _node: &EdNode) -> bool {
        true
    }

    fn show_node_menu(
        &mut self,
        node: NodeId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<EdNode>,
    ) {
        if ui.button("Duplicate").clicked() {
            self.actions.push(CanvasAction::Duplicate(vec![node]));
            ui.close();
        }
        if ui.button("Reset params").clicked() {
            if let Some(n) = snarl.get_node_mut(node) {
                n.params.clear();
            }
            ui.close();
        }
        if ui.button("Delete").clicked() {
            self.actions.push(CanvasAction::Delete(vec![node]));
            ui.close();
        }
    }

    fn final_node_rect(
        &mut self,
        node: NodeId,
        rect: Rect,
        _ui: &mut Ui,
        _snarl: &mut Snarl<EdNode>,
    ) {
        self.new_node_rects.insert(node, rect);
    }

    fn current_transform(&mut self, to_global: &mut TSTransform, snarl: &mut Snarl<EdNode>) {
        if let Some(view) = self.fit_to.take() {
            if let Some(t) = fit_transform(snarl, self.node_rects, view) {
                *to_global = t;
            }
        }
        self.to_global = *to_global;
    }
}

/// A transform that shows every node inside `view` (screen rectangle), at most at 1:1. Node
/// sizes come from `rects` (measured when drawn); a node not drawn yet gets a typical size.
pub fn fit_transform(
    snarl: &Snarl<EdNode>,
    rects: &HashMap<NodeId, Rect>,
    view: Rect,
) -> Option<TSTransform> {
    let extent = Vec2::new(300.0, 320.0);
    let mut bb = Rect::NOTHING;
    for (nid, pos, _) in snarl.nodes_pos_ids() {
        let r = rects
            .get(&nid)
            .copied()
            .unwrap_or_else(|| Rect::from_min_size(pos, extent));
        bb = bb.union(r);
    }
    if !bb.is_finite() || bb.width() <= 0.0 {
        return None;
    }
    let margin = 20.0;
    let scale = ((view.width() - 2.0 * margin) / bb.width())
        .min((view.height() - 2.0 * margin) / bb.height())
        .clamp(0.2, 1.0);
    let translation = view.center().to_vec2() - bb.center().to_vec2() * scale;
    Some(TSTransform::new(translation, scale))
}

/// Where the pointer drags a wire and why it could not connect there, in screen coordinates:
/// the source pin is the one the drag started on, the target the one under the pointer.
pub fn dragged_wire_problem(
    snarl: &Snarl<EdNode>,
    pins: &PinRects,
    to_global: TSTransform,
    press_origin: Pos2,
    pointer: Pos2,
) -> Option<String> {
    let hit_in = |p: Pos2| {
        pins.inputs
            .iter()
            .find(|(_, r)| to_global.mul_rect(**r).expand(2.0).contains(p))
            .map(|(id, _)| *id)
    };
    let hit_out = |p: Pos2| {
        pins.outputs
            .iter()
            .find(|(_, r)| to_global.mul_rect(**r).expand(2.0).contains(p))
            .map(|(id, _)| *id)
    };
    let (from, to) = match (
        hit_out(press_origin),
        hit_in(press_origin),
        hit_out(pointer),
        hit_in(pointer),
    ) {
        (Some(from), _, _, Some(to)) => (from, to),
        (_, Some(to), Some(from), _) => (from, to),
        _ => return None,
    };
    connection_problem(snarl, from, to)
}
