//! Plot rendering: line charts (spectrum slices, histograms) and the spectrum heatmap, drawn
//! with `plotters` into an RGB buffer; labels use the built-in bitmap font ([`crate::font`]).

use crate::font::{draw_text, text_width, CELL_H};
use plotters::prelude::*;
use stylegraph_kernels::image_folder::Rgb8;
use stylegraph_kernels::spectrum::Heatmap;

/// A plotting failure (the drawing backend's message).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(pub String);

fn perr<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

/// Line colours (matplotlib's tab10 order).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

const TEXT: [u8; 3] = [30, 30, 30];
const GRID: RGBColor = RGBColor(225, 225, 225);

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
}

/// One chart panel.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<f64>,
    pub y_ticks: Vec<f64>,
    pub series: Vec<Series>,
}

/// Evenly spaced ticks from `a` to `b` inclusive.
pub fn ticks(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n.max(2) - 1) as f64)
        .collect()
}

/// Formats a tick value with as few decimals as its spacing needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step.abs() >= 1.0 || step == 0.0 {
        0
    } else {
        (-step.abs().log10()).ceil().clamp(0.0, 6.0) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_owned()
    } else {
        s
    }
}

struct Text {
    x: i64,
    y: i64,
    s: String,
    color: [u8; 3],
    scale: usize,
}

/// Renders panels side by side, each `panel_w x panel_h` pixels, with a legend in the top-right
/// corner of each panel whose series have labels.
pub fn line_chart(panels: &[Panel], panel_w: usize, panel_h: usize) -> Result<Rgb8, PlotError> {
    if panels.is_empty() || panel_w < 120 || panel_h < 100 {
        return Err(PlotError(
            "need at least one panel of at least 120x100 px".into(),
        ));
    }
    let (w, h) = (panel_w * panels.len(), panel_h);
    let mut buf = vec![255u8; w * h * 3];
    let mut texts: Vec<Text> = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let areas = root.split_evenly((1, panels.len()));
        for (pi, (panel, area)) in panels.iter().zip(areas.iter()).enumerate() {
            let x0 = *panel.x_ticks.first().unwrap_or(&0.0);
            let x1 = *panel.x_ticks.last().unwrap_or(&1.0);
            let y0 = *panel.y_ticks.first().unwrap_or(&0.0);
            let y1 = *panel.y_ticks.last().unwrap_or(&1.0);
            let (x1, y1) = (
                if x1 > x0 { x1 } else { x0 + 1.0 },
                if y1 > y0 { y1 } else { y0 + 1.0 },
            );
            let mut chart = ChartBuilder::on(area)
                .margin_top(28)
                .margin_bottom(40)
                .margin_left(62)
                .margin_right(14)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(perr)?;
            for &t in &panel.x_ticks {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(t, y0), (t, y1)],
                        GRID,
                    )))
                    .map_err(perr)?;
            }
            for &t in &panel.y_ticks {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x0, t), (x1, t)],
                        GRID,
                    )))
                    .map_err(perr)?;
            }
            for (si, s) in panel.series.iter().enumerate() {
                let c = PALETTE[si % PALETTE.len()];
                let style = ShapeStyle {
                    color: RGBColor(c[0], c[1], c[2]).to_rgba(),
                    filled: false,
                    stroke_width: 2,
                };
                let pts: Vec<(f64, f64)> =
                    s.xs.iter()
                        .zip(&s.ys)
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .map(|(&x, &y)| (x.clamp(x0, x1), y.clamp(y0, y1)))
                        .collect();
                chart
                    .draw_series(LineSeries::new(pts, style))
                    .map_err(perr)?;
            }
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    ShapeStyle {
                        color: BLACK.to_rgba(),
                        filled: false,
                        stroke_width: 1,
                    },
                )))
                .map_err(perr)?;
            // Text positions, drawn after plotters releases the buffer.
            let (left, top) = chart.backend_coord(&(x0, y1));
            let (right, bottom) = chart.backend_coord(&(x1, y0));
            let (left, top, right, bottom) = (left as i64, top as i64, right as i64, bottom as i64);
            let xstep = panel.x_ticks.get(1).map(|v| v - x0).unwrap_or(1.0);
            for &t in &panel.x_ticks {
                let (px, _) = chart.backend_coord(&(t, y0));
                let s = tick_label(t, xstep);
                texts.push(Text {
                    x: px as i64 - text_width(&s, 1) as i64 / 2,
                    y: bottom + 5,
                    s,
                    color: TEXT,
                    scale: 1,
                });
            }
            let ystep = panel.y_ticks.get(1).map(|v| v - y0).unwrap_or(1.0);
            for &t in &panel.y_ticks {
                let (_, py) = chart.backend_coord(&(x0, t));
                let s = tick_label(t, ystep);
                texts.push(Text {
                    x: left - 5 - text_width(&s, 1) as i64,
                    y: py as i64 - CELL_H as i64 / 2,
                    s,
                    color: TEXT,
                    scale: 1,
                });
            }
            let px0 = (pi * panel_w) as i64;
            texts.push(Text {
                x: (left + right) / 2 - text_width(&panel.title, 2) as i64 / 2,
                y: 6,
                s: panel.title.clone(),
                color: TEXT,
                scale: 2,
            });
            texts.push(Text {
                x: (left + right) / 2 - text_width(&panel.x_label, 1) as i64 / 2,
                y: bottom + 20,
                s: panel.x_label.clone(),
                color: TEXT,
                scale: 1,
            });
            texts.push(Text {
                x: px0 + 4,
                y: top - 14,
                s: panel.y_label.clone(),
                color: TEXT,
                scale: 1,
            });
            let mut ly = top + 6;
            for (si, s) in panel.series.iter().enumerate() {
                if s.label.is_empty() {
                    continue;
                }
                let c = PALETTE[si % PALETTE.len()];
                let tw = text_width(&s.label, 1) as i64;
                let lx = right - 8 - tw - 22;
                root.draw(&Rectangle::new(
                    [(lx as i32, ly as i32 + 2), (lx as i32 + 16, ly as i32 + 4)],
                    RGBColor(c[0], c[1], c[2]).filled(),
                ))
                .map_err(perr)?;
                texts.push(Text {
                    x: lx + 20,
                    y: ly,
                    s: s.label.clone(),
                    color: TEXT,
                    scale: 1,
                });
                ly += 12;
            }
        }
        root.present().map_err(perr)?;
    }
    for t in texts {
        draw_text(&mut buf, w, h, t.x, t.y, &t.s, t.scale, t.color);
    }
    Ok(Rgb8 {
        width: w,
        height: h,
        data: buf,
    })
}

/// ColorBrewer "Blues" (the official heatmap's colour map), light to dark.
const BLUES: [[u8; 3]; 9] = [
    [247, 251, 255],
    [222, 235, 247],
    [198, 219, 239],
    [158, 202, 225],
    [107, 174, 214],
    [66, 146, 198],
    [33, 113, 181],
    [8, 81, 156],
    [8, 48, 107],
];

fn blues(t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (t.floor() as usize).min(BLUES.len() - 2);
    let f = t - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (BLUES[i][k] as f64 * (1.0 - f) + BLUES[i + 1][k] as f64 * f).round() as u8;
    }
    c
}

/// Filled-contour rendering of a spectrum heatmap like the official plot: dB levels from
/// `lo` to `hi` in `bands` equal bands (values outside take the end colours), band edges traced
/// faintly, frequency axes in cycles per image, and a colour bar. `size` is the side of the map
/// area in pixels.
pub fn heatmap_plot(
    map: &Heatmap,
    lo: f64,
    hi: f64,
    bands: usize,
    size: usize,
) -> Result<Rgb8, PlotError> {
    if map.size < 2 || map.db.len() != map.size * map.size || bands == 0 || hi <= lo || size < 64 {
        return Err(PlotError(
            "heatmap needs a map, at least one band and hi > lo".into(),
        ));
    }
    let (ml, mt, mr, mb) = (64usize, 34usize, 110usize, 44usize);
    let (w, h) = (ml + size + mr, mt + size + mb);
    let mut buf = vec![255u8; w * h * 3];
    let band_of = |v: f64| -> usize {
        (((v - lo) / (hi - lo) * bands as f64).floor().max(-1.0) as i64 + 1)
            .clamp(0, bands as i64 + 1) as usize
    };
    let band_color = |b: usize| blues(b as f64 / (bands + 1) as f64);
    // Nearest sample of the map for each pixel; row 0 of the plot is the highest y frequency.
    let m = map.size;
    let sample = |px: usize, py: usize| -> f64 {
        let cx = ((px as f64 + 0.5) / size as f64 * (m - 1) as f64).round() as usize;
        let cy = ((1.0 - (py as f64 + 0.5) / size as f64) * (m - 1) as f64).round() as usize;
        map.db[cy.min(m - 1) * m + cx.min(m - 1)]
    };
    let mut bands_px = vec![0usize; size * size];
    for py in 0..size {
        for px in 0..size {
            bands_px[py * size + px] = band_of(sample(px, py));
        }
    }
    let mut texts: Vec<Text> = Vec::new();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        for py in 0..size {
            for px in 0..size {
                let b = bands_px[py * size + px];
                let mut c = band_color(b);
                let edge = (px + 1 < size && bands_px[py * size + px + 1] != b)
                    || (py + 1 < size && bands_px[(py + 1) * size + px] != b);
                if edge {
                    // midnightblue at 20% opacity, as the official contour lines.
                    for (k, v) in c.iter_mut().enumerate() {
                        let mb = [25.0, 25.0, 112.0][k];
                        *v = (*v as f64 * 0.8 + mb * 0.2).round() as u8;
                    }
                }
                root.draw_pixel(
                    ((ml + px) as i32, (mt + py) as i32),
                    &RGBColor(c[0], c[1], c[2]),
                )
                .map_err(perr)?;
            }
        }
        let frame = ShapeStyle {
            color: BLACK.to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        root.draw(&Rectangle::new(
            [
                (ml as i32 - 1, mt as i32 - 1),
                ((ml + size) as i32, (mt + size) as i32),
            ],
            frame,
        ))
        .map_err(perr)?;
        // Axes: frequencies -image_size/2 .. image_size/2, five ticks.
        let half = map.image_size as f64 / 2.0;
        for (i, t) in ticks(-half, half, 5).into_iter().enumerate() {
            let off = (i as f64 / 4.0 * size as f64).round() as i64;
            let s = tick_label(t, half / 2.0);
            let xp = ml as i64 + off.min(size as i64 - 1);
            let yp = (mt + size) as i64 - 1 - off.min(size as i64 - 1);
            root.draw(&PathElement::new(
                vec![
                    (xp as i32, (mt + size) as i32),
                    (xp as i32, (mt + size + 4) as i32),
                ],
                BLACK,
            ))
            .map_err(perr)?;
            root.draw(&PathElement::new(
                vec![(ml as i32 - 5, yp as i32), (ml as i32 - 1, yp as i32)],
                BLACK,
            ))
            .map_err(perr)?;
            texts.push(Text {
                x: xp - text_width(&s, 1) as i64 / 2,
                y: (mt + size + 8) as i64,
                s: s.clone(),
                color: TEXT,
                scale: 1,
            });
            texts.push(Text {
                x: ml as i64 - 8 - text_width(&s, 1) as i64,
                y: yp - 3,
                s,
                color: TEXT,
                scale: 1,
            });
        }
        // Colour bar.
        let (bx, bw) = (ml + size + 24, 18usize);
        let nb = bands + 2;
        for b in 0..nb {
            let c = band_color(b);
            let y1 = mt + size - b * size / nb;
            let y0 = mt + size - (b + 1) * size / nb;
            root.draw(&Rectangle::new(
                [(bx as i32, y0 as i32), ((bx + bw) as i32, y1 as i32)],
                RGBColor(c[0], c[1], c[2]).filled(),
            ))
            .map_err(perr)?;
        }
        root.draw(&Rectangle::new(
            [
                (bx as i32, mt as i32),
                ((bx + bw) as i32, (mt + size) as i32),
            ],
            frame,
        ))
        .map_err(perr)?;
        for i in 0..=bands {
            let v = lo + (hi - lo) * i as f64 / bands as f64;
            let y = mt + size - (i + 1) * size / nb;
            texts.push(Text {
                x: (bx + bw + 6) as i64,
                y: y as i64 - 3,
                s: tick_label(v, (hi - lo) / bands as f64),
                color: TEXT,
                scale: 1,
            });
        }
        texts.push(Text {
            x: (bx + bw + 6) as i64,
            y: mt as i64 - 16,
            s: "dB".into(),
            color: TEXT,
            scale: 1,
        });
        root.present().map_err(perr)?;
    }
    let title = "Average power spectrum";
    draw_text(
        &mut buf,
        w,
        h,
        (ml + size / 2) as i64 - text_width(title, 2) as i64 / 2,
        8,
        title,
        2,
        TEXT,
    );
    for t in texts {
        draw_text(&mut buf, w, h, t.x, t.y, &t.s, t.scale, t.color);
    }
    let xl = "frequency (cycles per image)";
    draw_text(
        &mut buf,
        w,
        h,
        (ml + size / 2) as i64 - text_width(xl, 1) as i64 / 2,
        (mt + size + 24) as i64,
        xl,
        1,
        TEXT,
    );
    Ok(Rgb8 {
        width: w,
        height: h,
        data: buf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_use_needed_decimals() {
        assert_eq!(tick_label(-40.0, 10.0), "-40");
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(-0.0, 1.0), "0");
    }

    #[test]
    fn line_chart_draws_series_in_their_colours() {
        let p = Panel {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_ticks: ticks(0.0, 10.0, 3),
            y_ticks: ticks(-1.0, 1.0, 3),
            series: vec![Series {
                label: "a".into(),
                xs: vec![0.0, 10.0],
                ys: vec![0.0, 0.0],
            }],
        };
        let img = line_chart(&[p.clone(), p], 300, 200).unwrap();
        assert_eq!((img.width, img.height), (600, 200));
        let blue = PALETTE[0];
        let n = img.data.chunks_exact(3).filter(|c| *c == blue).count();
        // Two horizontal lines ~220 px long, 2 px wide, plus two legend swatches.
        assert!(n > 600, "{n} blue pixels");
    }

    #[test]
    fn heatmap_plot_colours_levels() {
        let m = 9;
        let mut db = vec![-60.0; m * m];
        db[4 * m + 4] = 30.0;
        let map = Heatmap {
            size: m,
            db,
            image_size: 8,
        };
        let img = heatmap_plot(&map, -40.0, 20.0, 12, 90).unwrap();
        // Centre pixel of the map area is the darkest band, a corner the lightest.
        let at = |x: usize, y: usize| {
            let k = (y * img.width + x) * 3;
            [img.data[k], img.data[k + 1], img.data[k + 2]]
        };
        assert_eq!(at(64 + 45, 34 + 45), blues(1.0));
        assert_eq!(at(64 + 2, 34 + 2), blues(0.0));
    }
}
