//! Param widgets built from the param descriptors: checkboxes, sliders with the declared ranges
//! (logarithmic where flagged), integer fields, seeds with a dice button, enum menus, file pickers
//! and colour pickers; and the translate/rotate pad for nodes with SG3-style transform params.

use egui::{Color32, ComboBox, DragValue, Response, Sense, Slider, Stroke, TextEdit, Ui, Vec2};
use stylegraph_core::graph::ParamValue;
use stylegraph_core::plugin::{ParamInfo, ParamKind};

/// Seeds the dice picks from: what NumPy's legacy seeding accepts.
const SEED_MAX: i64 = (1 << 32) - 1;

/// A change made in a param widget.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamEdit {
    /// Set the param to this value.
    Set(ParamValue),
    /// Remove the explicit value (back to the default).
    Reset,
}

/// Something a widget asks the app to do (it needs a dialog).
#[derive(Clone, Debug, PartialEq)]
pub enum ParamRequest {
    /// Choose a file for a path param.
    PickFile {
        node: String,
        param: String,
        /// The node writes this file (a save dialog).
        save: bool,
        current: String,
    },
}

/// Where a widget is shown: on the canvas (compact) or in the inspector.
pub struct ParamCtx<'a> {
    pub node_id: &'a str,
    pub compact: bool,
    pub requests: &'a mut Vec<ParamRequest>,
}

/// A pseudo-random seed in `[lo, hi]` (no RNG crate needed: the std hasher is randomly keyed).
pub fn random_seed(lo: i64, hi: i64) -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let lo = lo.min(hi);
    let span = (hi - lo) as u64 + 1;
    lo + (h.finish() % span.max(1)) as i64
}

fn as_f64(v: &ParamValue) -> Option<f64> {
    match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    }
}

fn as_i64(v: &ParamValue) -> Option<i64> {
    match v {
        ParamValue::Int(i) => Some(*i),
        ParamValue::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// Parses `#rrggbb` or `#rrggbbaa` into unmultiplied RGBA.
pub fn parse_colour(s: &str) -> Option<[u8; 4]> {
    let hex = s.trim().strip_prefix('#')?;
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    match hex.len() {
        6 => Some([byte(0)?, byte(2)?, byte(4)?, 255]),
        8 => Some([byte(0)?, byte(2)?, byte(4)?, byte(6)?]),
        _ => None,
    }
}

/// Formats unmultiplied RGBA as `#rrggbb`, or `#rrggbbaa` when not opaque.
pub fn format_colour([r, g, b, a]: [u8; 4]) -> String {
    if a == 255 {
        format!("#{r:02x}{g:02x}{b:02x}")
    } else {
        format!("#{r:02x}{g:02x}{b:02x}{a:02x}")
    }
}

/// One row: the param's name and its widget. Returns the edit, if any.
pub fn param_row(
    ui: &mut Ui,
    info: &ParamInfo,
    value: &ParamValue,
    is_set: bool,
    cx: &mut ParamCtx<'_>,
) -> Option<ParamEdit> {
    let mut edit = None;
    ui.horizontal(|ui| {
        let name = ui.label(&info.name);
        if !info.doc.is_empty() {
            name.clone().on_hover_text(&info.doc);
        }
        edit = param_widget(ui, info, value, cx, &name);
        if !cx.compact && is_set && *value != info.default {
            let reset = ui
                .small_button("↺")
                .on_hover_text(format!("back to the default ({})", info.default));
            if reset.clicked() {
                edit = Some(ParamEdit::Reset);
            }
        }
    });
    edit
}

fn labelled(r: Response, label: &Response) -> Response {
    r.labelled_by(label.id)
}

/// The widget for one param, labelled by `label` for accessibility.
pub fn param_widget(
    ui: &mut Ui,
    info: &ParamInfo,
    value: &ParamValue,
    cx: &mut ParamCtx<'_>,
    label: &Response,
) -> Option<ParamEdit> {
    // In the inspector, widgets take the row's remaining width (leaving room for the value box).
    let slider_width = if cx.compact {
        120.0
    } else {
        (ui.available_width() - 80.0).clamp(60.0, 240.0)
    };
    ui.spacing_mut().slider_width = slider_width;
    match info.kind {
        ParamKind::Bool => {
            let mut b = matches!(value, ParamValue::Bool(true));
            let r = labelled(ui.checkbox(&mut b, ""), label);
            r.changed().then_some(ParamEdit::Set(ParamValue::Bool(b)))
        }
        ParamKind::Int => {
            let Some(mut i) = as_i64(value) else {
                return mismatch(ui, info, value);
            };
            let lo = info.min.map_or(i64::MIN, |m| m.ceil() as i64);
            let hi = info.max.map_or(i64::MAX, |m| m.floor() as i64);
            let mut changed = false;
            if info.is_seed {
                // Scrubbing a seed: drag the number; the dice picks a random one.
                let r = labelled(
                    ui.add(DragValue::new(&mut i).speed(0.1).range(lo..=hi)),
                    label,
                )
                .on_hover_text("drag to scrub through seeds");
                changed |= r.changed();
                let dice = dice_button(ui, &format!("random {}.{}", cx.node_id, info.name));
                if dice.on_hover_text("random seed").clicked() {
                    i = random_seed(lo.max(0), hi.min(SEED_MAX));
                    changed = true;
                }
            } else if info.min.is_some() && info.max.is_some() && hi - lo <= 100_000 {
                let r = labelled(ui.add(Slider::new(&mut i, lo..=hi)), label);
                changed |= r.changed();
            } else {
                let r = labelled(
                    ui.add(DragValue::new(&mut i).speed(0.2).range(lo..=hi)),
                    label,
                );
                changed |= r.changed();
            }
            changed.then_some(ParamEdit::Set(ParamValue::Int(i)))
        }
        ParamKind::Float => {
            let Some(mut f) = as_f64(value) else {
                return mismatch(ui, info, value);
            };
            let r = match (info.min, info.max) {
                (Some(lo), Some(hi)) if lo < hi => {
                    let mut s = Slider::new(&mut f, lo..=hi);
                    if info.log_scale && lo > 0.0 {
                        s = s.logarithmic(true);
                    }
                    if info.step > 0.0 {
                        s = s.step_by(info.step);
                    }
                    ui.add(s)
                }
                (lo, hi) => {
                    let speed = if info.step > 0.0 {
                        info.step
                    } else {
                        (f.abs() * 0.01).max(0.01)
                    };
                    ui.add(
                        DragValue::new(&mut f)
                            .speed(speed)
                            .range(lo.unwrap_or(f64::NEG_INFINITY)..=hi.unwrap_or(f64::INFINITY)),
                    )
                }
            };
            labelled(r, label)
                .changed()
                .then_some(ParamEdit::Set(ParamValue::Float(f)))
        }
        ParamKind::Enum => {
            let ParamValue::Str(current) = value else {
                return mismatch(ui, info, value);
            };
            let mut chosen = current.clone();
            let r = ComboBox::from_id_salt(("param", cx.node_id, &info.name))
                .selected_text(current)
                .show_ui(ui, |ui| {
                    for c in &info.choices {
                        ui.selectable_value(&mut chosen, c.clone(), c);
                    }
                });
            labelled(r.response, label);
            (chosen != *current).then_some(ParamEdit::Set(ParamValue::Str(chosen)))
        }
        ParamKind::String | ParamKind::Path => {
            let ParamValue::Str(current) = value else {
                return mismatch(ui, info, value);
            };
            let mut text = current.clone();
            let mut edit = None;
            if info.is_color {
                if let Some(mut c) = parse_colour(current) {
                    let has_alpha = current.trim().len() == 9;
                    let r = if has_alpha {
                        ui.color_edit_button_srgba_unmultiplied(&mut c)
                    } else {
                        let mut rgb = [c[0], c[1], c[2]];
                        let r = ui.color_edit_button_srgb(&mut rgb);
                        c = [rgb[0], rgb[1], rgb[2], 255];
                        r
                    };
                    if r.changed() {
                        text = format_colour(c);
                    }
                }
            }
            let width = if cx.compact {
                110.0
            } else {
                (ui.available_width() - 70.0).clamp(80.0, 260.0)
            };
            let r = labelled(
                ui.add(TextEdit::singleline(&mut text).desired_width(width)),
                label,
            );
            if info.kind == ParamKind::Path {
                let tip = if info.is_output_path {
                    "choose where to write"
                } else {
                    "choose a file"
                };
                if ui.small_button("…").on_hover_text(tip).clicked() {
                    cx.requests.push(ParamRequest::PickFile {
                        node: cx.node_id.to_owned(),
                        param: info.name.clone(),
                        save: info.is_output_path,
                        current: current.clone(),
                    });
                }
            }
            if info.is_color && parse_colour(&text).is_none() && r.lost_focus() {
                // Keep an invalid colour from reaching the graph.
                text = current.clone();
            }
            if text != *current {
                edit = Some(ParamEdit::Set(ParamValue::Str(text)));
            }
            edit
        }
    }
}

/// A button showing a die (the fonts have no die glyph), labelled `label` for accessibility.
pub fn dice_button(ui: &mut Ui, label: &str) -> Response {
    let size = ui.spacing().interact_size.y;
    let (rect, r) = ui.allocate_exact_size(Vec2::splat(size), Sense::click());
    let label = label.to_owned();
    r.widget_info(move || egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &label));
    if ui.is_rect_visible(rect) {
        let v = ui.style().interact(&r);
        let p = ui.painter();
        let face = rect.shrink(2.0);
        p.rect(face, 3.0, v.bg_fill, v.bg_stroke, egui::StrokeKind::Inside);
        // Five pips: the corners and the centre.
        let d = face.width() * 0.27;
        let c = face.center();
        for (dx, dy) in [
            (-1.0, -1.0),
            (1.0, -1.0),
            (0.0, 0.0),
            (-1.0, 1.0),
            (1.0, 1.0),
        ] {
            p.circle_filled(
                c + Vec2::new(dx * d, dy * d),
                face.width() * 0.08,
                v.fg_stroke.color,
            );
        }
    }
    r
}

/// A value of the wrong kind (from a hand-edited file): shown in red with a reset button.
fn mismatch(ui: &mut Ui, info: &ParamInfo, value: &ParamValue) -> Option<ParamEdit> {
    ui.colored_label(
        Color32::LIGHT_RED,
        format!("{value} (expects {})", info.kind.name()),
    );
    ui.small_button("reset")
        .clicked()
        .then_some(ParamEdit::Reset)
}

/// Names of the transform params SG3 synthesis nodes have.
pub const TRANSFORM_PARAMS: [&str; 3] = ["translate_x", "translate_y", "rotate"];

/// A pad to drag the translation (x, y) and a dial for the rotation (degrees). `ranges` are the
/// params' (min, max) for x, y and rotation. Returns the new values when they changed.
pub fn transform_pad(ui: &mut Ui, values: [f64; 3], ranges: [(f64, f64); 3]) -> Option<[f64; 3]> {
    let [mut x, mut y, mut rot] = values;
    let mut changed = false;
    ui.horizontal(|ui| {
        let size = Vec2::splat(140.0);
        let (rect, r) = ui.allocate_exact_size(size, Sense::click_and_drag());
        r.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Other, true, "translate pad"));
        let r = r.on_hover_text("drag to translate; double-click to centre");
        let p = ui.painter_at(rect);
        let visuals = ui.visuals().clone();
        p.rect_filled(rect, 4.0, visuals.extreme_bg_color);
        let grid = Stroke::new(1.0, visuals.weak_text_color());
        p.line_segment([rect.center_top(), rect.center_bottom()], grid);
        p.line_segment([rect.left_center(), rect.right_center()], grid);
        let (xr, yr) = (ranges[0], ranges[1]);
        let to_unit = |v: f64, (lo, hi): (f64, f64)| ((v - lo) / (hi - lo).max(1e-12)) as f32;
        let from_unit = |u: f32, (lo, hi): (f64, f64)| lo + (u.clamp(0.0, 1.0) as f64) * (hi - lo);
        if let Some(pos) = r.interact_pointer_pos() {
            if r.dragged() || r.clicked() {
                x = from_unit((pos.x - rect.left()) / rect.width(), xr);
                y = from_unit((pos.y - rect.top()) / rect.height(), yr);
                changed = true;
            }
        }
        if r.double_clicked() {
            x = 0.0f64.clamp(xr.0, xr.1);
            y = 0.0f64.clamp(yr.0, yr.1);
            changed = true;
        }
        let dot = egui::pos2(
            rect.left() + to_unit(x, xr) * rect.width(),
            rect.top() + to_unit(y, yr) * rect.height(),
        );
        p.circle_filled(dot, 5.0, visuals.selection.bg_fill);

        // The rotation dial: the angle of the pointer around the dial's centre.
        let (drect, dr) = ui.allocate_exact_size(Vec2::splat(80.0), Sense::click_and_drag());
        dr.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Other, true, "rotate dial"));
        let dr = dr.on_hover_text("drag around to rotate; double-click for 0°");
        let dp = ui.painter_at(drect);
        let c = drect.center();
        let radius = drect.width() * 0.45;
        dp.circle_stroke(c, radius, Stroke::new(1.5, visuals.text_color()));
        if let Some(pos) = dr.interact_pointer_pos() {
            if dr.dragged() || dr.clicked() {
                let v = pos - c;
                // 0° points up, clockwise positive, as on a clock face.
                let deg = v.x.atan2(-v.y).to_degrees() as f64;
                rot = deg.clamp(ranges[2].0, ranges[2].1);
                changed = true;
            }
        }
        if dr.double_clicked() {
            rot = 0.0f64.clamp(ranges[2].0, ranges[2].1);
            changed = true;
        }
        let a = (rot as f32).to_radians();
        let tip = c + Vec2::new(a.sin(), -a.cos()) * radius;
        dp.line_segment([c, tip], Stroke::new(2.5, visuals.selection.bg_fill));
        dp.text(
            drect.center_bottom(),
            egui::Align2::CENTER_BOTTOM,
            format!("{rot:.0}°"),
            egui::FontId::proportional(11.0),
            visuals.text_color(),
        );
    });
    changed.then_some([x, y, rot])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_round_trip() {
        assert_eq!(parse_colour("#ff8000"), Some([255, 128, 0, 255]));
        assert_eq!(format_colour([255, 128, 0, 255]), "#ff8000");
        let c = parse_colour("#10203040").unwrap();
        assert_eq!(c, [16, 32, 48, 64]);
        assert_eq!(format_colour(c), "#10203040");
        assert_eq!(parse_colour("ff8000"), None);
        assert_eq!(parse_colour("#ff80"), None);
        assert_eq!(parse_colour("#gg8000"), None);
    }

    #[test]
    fn random_seeds_stay_in_range() {
        for _ in 0..200 {
            let s = random_seed(5, 9);
            assert!((5..=9).contains(&s));
        }
        assert_eq!(random_seed(3, 3), 3);
    }
}
