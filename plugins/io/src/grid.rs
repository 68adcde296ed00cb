//! Image grids with optional labels.
//!
//! Cells are filled row-major. `leading_blank` empty cells come first: with one, a grid of
//! `cols = C + 1` reproduces the official `style_mixing.py` canvas (black, top-left cell
//! empty, first row the column images, first column the row images), fed by
//! `latent.style_mix` in `official_grid` layout. Without padding and labels a grid of
//! `rows x cols` images is the official `layout_grid` of `gen_video.py`.

use crate::error::{invalid, Result};
use crate::font;

/// How to lay out a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSpec {
    /// Columns; 0 = derived from `rows`, or a near-square layout.
    pub cols: usize,
    /// Rows; 0 = as many as needed.
    pub rows: usize,
    /// Empty cells before the first image.
    pub leading_blank: usize,
    /// Pixels between cells.
    pub padding: usize,
    /// Canvas colour per channel, in the images' [-1, 1] range.
    pub background: Vec<f32>,
    /// Label scale (font pixel size in image pixels).
    pub label_scale: usize,
}

/// Columns and rows for `cells` cells.
pub fn dimensions(cells: usize, cols: usize, rows: usize) -> Result<(usize, usize)> {
    if cells == 0 {
        return invalid("a grid needs at least one image");
    }
    let (c, r) = match (cols, rows) {
        (0, 0) => {
            let c = (cells as f64).sqrt().ceil() as usize;
            (c, cells.div_ceil(c))
        }
        (0, r) => (cells.div_ceil(r), r),
        (c, 0) => (c, cells.div_ceil(c)),
        (c, r) => (c, r),
    };
    if c.saturating_mul(r) < cells {
        return invalid(format!(
            "a {c} x {r} grid has {} cells but {cells} are needed",
            c * r
        ));
    }
    Ok((c, r))
}

/// Lays out `n` float images `[c, h, w]` (concatenated in `images`) into one `[c, H, W]`
/// canvas; returns `(canvas, H, W)`. `labels[i]`, when present and non-empty, is drawn in the
/// top-left corner of image `i`'s cell: white text on a black box.
pub fn layout(
    images: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    spec: &GridSpec,
    labels: &[String],
) -> Result<(Vec<f32>, usize, usize)> {
    if images.len() != n * c * h * w {
        return invalid(format!(
            "{} values do not fill {n} images of {c}x{h}x{w}",
            images.len()
        ));
    }
    if spec.background.len() != c {
        return invalid(format!(
            "background has {} channels, the images {c}",
            spec.background.len()
        ));
    }
    let cells = n + spec.leading_blank;
    let (cols, rows) = dimensions(cells, spec.cols, spec.rows)?;
    let pad = spec.padding;
    let gw = cols * w + (cols - 1) * pad;
    let gh = rows * h + (rows - 1) * pad;
    if gw.saturating_mul(gh).saturating_mul(c) > 1 << 30 {
        return invalid(format!("a {gw} x {gh} grid is too large"));
    }
    let plane = gw * gh;
    let mut canvas = vec![0.0f32; c * plane];
    for (ch, &bg) in spec.background.iter().enumerate() {
        canvas[ch * plane..(ch + 1) * plane].fill(bg);
    }
    for i in 0..n {
        let cell = i + spec.leading_blank;
        let (gx, gy) = ((cell % cols) * (w + pad), (cell / cols) * (h + pad));
        let img = &images[i * c * h * w..(i + 1) * c * h * w];
        for ch in 0..c {
            for y in 0..h {
                let src = &img[(ch * h + y) * w..(ch * h + y + 1) * w];
                let dst = ch * plane + (gy + y) * gw + gx;
                canvas[dst..dst + w].copy_from_slice(src);
            }
        }
        if let Some(label) = labels.get(i).filter(|l| !l.is_empty()) {
            draw_label(
                &mut canvas,
                c,
                gw,
                gh,
                (gx, gy),
                (w, h),
                label,
                spec.label_scale,
            );
        }
    }
    Ok((canvas, gh, gw))
}

/// Draws `text` at the top-left of the cell at `origin` of size `cell`, clipped to the cell:
/// a black box with a one-font-pixel margin, white glyphs.
#[allow(clippy::too_many_arguments)]
pub fn draw_label(
    canvas: &mut [f32],
    c: usize,
    gw: usize,
    gh: usize,
    origin: (usize, usize),
    cell: (usize, usize),
    text: &str,
    scale: usize,
) {
    let scale = scale.max(1);
    let (tw, th) = font::text_size(text, scale);
    let margin = scale;
    let (x0, y0) = origin;
    let x_end = (x0 + cell.0).min(gw);
    let y_end = (y0 + cell.1).min(gh);
    let plane = gw * gh;
    let box_w = (tw + 2 * margin).min(x_end - x0);
    let box_h = (th + 2 * margin).min(y_end - y0);
    for ch in 0..c {
        for y in y0..y0 + box_h {
            let row = ch * plane + y * gw;
            canvas[row + x0..row + x0 + box_w].fill(-1.0);
        }
    }
    font::for_each_pixel(text, x0 + margin, y0 + margin, scale, |x, y| {
        if x < x_end && y < y_end {
            for ch in 0..c {
                canvas[ch * plane + y * gw + x] = 1.0;
            }
        }
    });
}

/// Parses a colour `#rrggbb` (or `#rgb`, or a grey level `0..255`) into `c` channel values
/// in [-1, 1].
pub fn parse_colour(text: &str, c: usize) -> Result<Vec<f32>> {
    let t = text.trim();
    let rgb: [u8; 3] = if let Some(hex) = t.strip_prefix('#') {
        let digit = |i: usize, len: usize| -> Option<u8> {
            let s = hex.get(i * len..(i + 1) * len)?;
            let v = u8::from_str_radix(s, 16).ok()?;
            Some(if len == 1 { v * 17 } else { v })
        };
        let len = match hex.len() {
            6 => 2,
            3 => 1,
            _ => return invalid(format!("colour {t:?}: use #rrggbb or #rgb")),
        };
        match (digit(0, len), digit(1, len), digit(2, len)) {
            (Some(r), Some(g), Some(b)) => [r, g, b],
            _ => return invalid(format!("colour {t:?}: not hexadecimal")),
        }
    } else {
        match t.parse::<u8>() {
            Ok(v) => [v, v, v],
            Err(_) => {
                return invalid(format!(
                    "colour {t:?}: use #rrggbb, #rgb or a grey level 0-255"
                ))
            }
        }
    };
    let f = |v: u8| crate::pixels::from_u8(v);
    Ok(match c {
        1 => vec![f(
            ((rgb[0] as u32 + rgb[1] as u32 + rgb[2] as u32) / 3) as u8
        )],
        3 => rgb.iter().map(|&v| f(v)).collect(),
        _ => {
            let mut v: Vec<f32> = rgb.iter().map(|&v| f(v)).collect();
            v.resize(c, 1.0);
            v
        }
    })
}

/// The official grid of a video frame: `cells = cols * rows` consecutive 8-bit `[h, w, 3]`
/// images (row-major) tiled without gaps into one `[rows*h, cols*w, 3]` frame.
pub fn tile_rgb8(
    images: &[Vec<u8>],
    cols: usize,
    rows: usize,
    h: usize,
    w: usize,
    out: &mut Vec<u8>,
) {
    let gw = cols * w;
    out.clear();
    out.resize(rows * h * gw * 3, 0);
    for (i, img) in images.iter().enumerate().take(cols * rows) {
        let (cx, cy) = (i % cols, i / cols);
        for y in 0..h {
            let src = &img[y * w * 3..(y + 1) * w * 3];
            let dst = ((cy * h + y) * gw + cx * w) * 3;
            out[dst..dst + w * 3].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cols: usize, blank: usize, pad: usize) -> GridSpec {
        GridSpec {
            cols,
            rows: 0,
            leading_blank: blank,
            padding: pad,
            background: vec![-1.0],
            label_scale: 1,
        }
    }

    #[test]
    fn grid_dimensions() {
        assert_eq!(dimensions(7, 0, 0).unwrap(), (3, 3));
        assert_eq!(dimensions(7, 0, 2).unwrap(), (4, 2));
        assert_eq!(dimensions(7, 5, 0).unwrap(), (5, 2));
        assert!(dimensions(7, 2, 3).is_err());
        assert!(dimensions(0, 0, 0).is_err());
    }

    #[test]
    fn official_style_mix_layout_with_empty_corner() {
        // Images of 1 channel, 1x2 pixels, values = image index. Two columns + blank corner:
        // cols = 3, leading blank 1 -> cells: [blank, 0, 1 / 2, 3, 4].
        let n = 5;
        let images: Vec<f32> = (0..n).flat_map(|i| [i as f32 / 10.0; 2]).collect();
        let (canvas, gh, gw) = layout(&images, n, 1, 1, 2, &spec(3, 1, 0), &[]).unwrap();
        assert_eq!((gh, gw), (2, 6));
        assert_eq!(
            canvas,
            vec![-1.0, -1.0, 0.0, 0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4]
        );
    }

    #[test]
    fn padding_and_background() {
        let images = vec![0.5f32; 2 * 2 * 2];
        let (canvas, gh, gw) = layout(&images, 2, 1, 2, 2, &spec(2, 0, 1), &[]).unwrap();
        assert_eq!((gh, gw), (2, 5));
        // The padding column is background.
        assert_eq!(canvas[2], -1.0);
        assert_eq!(canvas[gw + 2], -1.0);
        assert_eq!(canvas[3], 0.5);
    }

    #[test]
    fn labels_are_drawn_and_clipped_to_their_cell() {
        // Two 12x12 grey images side by side; label "1" on the first only.
        let images = vec![0.0f32; 2 * 12 * 12];
        let (canvas, _, gw) = layout(&images, 2, 1, 12, 12, &spec(2, 0, 0), &["1".into()]).unwrap();
        // Box from (0,0) to (5+2, 7+2) is black except the glyph; glyph row 0 of '1' is
        // 00100 -> pixel (1 + 2, 1) is white.
        assert_eq!(canvas[0], -1.0);
        assert_eq!(canvas[gw + 3], 1.0);
        assert_eq!(canvas[gw + 2], -1.0);
        // Second cell untouched.
        assert!(canvas[12..24].iter().all(|&v| v == 0.0));
        // A long label stops at the cell edge instead of spilling into the neighbour.
        let (canvas, _, gw) =
            layout(&images, 2, 1, 12, 12, &spec(2, 0, 0), &["88888".into()]).unwrap();
        for y in 0..12 {
            assert!(
                canvas[y * gw + 12..y * gw + 24].iter().all(|&v| v == 0.0),
                "row {y}"
            );
        }
    }

    #[test]
    fn colours() {
        assert_eq!(parse_colour("#000000", 3).unwrap(), vec![-1.0; 3]);
        assert_eq!(parse_colour("#fff", 3).unwrap(), vec![1.0; 3]);
        assert_eq!(parse_colour("255", 1).unwrap(), vec![1.0]);
        assert_eq!(
            parse_colour("#000", 4).unwrap(),
            vec![-1.0, -1.0, -1.0, 1.0]
        );
        assert!(parse_colour("red", 3).is_err());
        assert!(parse_colour("#12345", 3).is_err());
    }

    #[test]
    fn video_frame_tiling() {
        // Four 1x1 RGB images in a 2x2 grid.
        let imgs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i, i, i]).collect();
        let mut out = Vec::new();
        tile_rgb8(&imgs, 2, 2, 1, 1, &mut out);
        assert_eq!(out, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    }
}
