//! Image batches as they arrive on ports, and their conversion to 8-bit pixels.
//!
//! An `Image` port carries float32 `[N, C, H, W]` with nominal range [-1, 1] (the generator's
//! output). Nodes also accept the 8-bit `[N, H, W, C]` tensors of `stylegan.image_to_u8`.
//! Conversion to 8 bits is the official one: `clamp(x * 127.5 + 128, 0, 255)` truncated.

use crate::error::{invalid, Result};

/// A borrowed batch of images in one of the two layouts.
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    /// float32 `[n, c, h, w]`, nominal range [-1, 1].
    Float {
        data: &'a [f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    },
    /// uint8 `[n, h, w, c]`.
    Bytes {
        data: &'a [u8],
        n: usize,
        h: usize,
        w: usize,
        c: usize,
    },
}

/// The official float -> 8-bit conversion of one value.
#[inline]
pub fn to_u8(x: f32) -> u8 {
    // Two roundings (multiply, then add) as PyTorch evaluates `x * 127.5 + 128`; NaN maps to
    // 0 like a float -> uint8 cast of NaN does on x86.
    let v = x * 127.5 + 128.0;
    if v.is_nan() {
        0
    } else {
        v.clamp(0.0, 255.0) as u8
    }
}

/// 8-bit -> float, the inverse used when images are loaded: `v / 127.5 - 1`, so that
/// [`to_u8`] gives back `v`.
#[inline]
pub fn from_u8(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

impl<'a> Pixels<'a> {
    /// A float batch `[n, c, h, w]` (a 3-D shape is one image `[c, h, w]`).
    pub fn float(data: &'a [f32], shape: &[usize], what: &str) -> Result<Pixels<'a>> {
        let (n, c, h, w) = match *shape {
            [n, c, h, w] => (n, c, h, w),
            [c, h, w] => (1, c, h, w),
            _ => {
                return invalid(format!(
                    "{what}: expected an image batch [N, C, H, W], got shape {shape:?}"
                ))
            }
        };
        Self::check(n, c, h, w, data.len(), shape, what)?;
        Ok(Pixels::Float { data, n, c, h, w })
    }

    /// An 8-bit batch `[n, h, w, c]` (a 3-D shape is one image `[h, w, c]`).
    pub fn bytes(data: &'a [u8], shape: &[usize], what: &str) -> Result<Pixels<'a>> {
        let (n, h, w, c) = match *shape {
            [n, h, w, c] => (n, h, w, c),
            [h, w, c] => (1, h, w, c),
            _ => {
                return invalid(format!(
                    "{what}: expected 8-bit images [N, H, W, C], got shape {shape:?}"
                ))
            }
        };
        Self::check(n, c, h, w, data.len(), shape, what)?;
        Ok(Pixels::Bytes { data, n, h, w, c })
    }

    fn check(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        len: usize,
        shape: &[usize],
        what: &str,
    ) -> Result<()> {
        if !matches!(c, 1 | 3 | 4) {
            return invalid(format!(
                "{what}: images need 1, 3 or 4 channels, shape {shape:?} has {c}"
            ));
        }
        if h == 0 || w == 0 {
            return invalid(format!("{what}: empty image size in shape {shape:?}"));
        }
        if n.checked_mul(c)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w))
            != Some(len)
        {
            return invalid(format!("{what}: {len} values do not fill shape {shape:?}"));
        }
        Ok(())
    }

    pub fn n(&self) -> usize {
        match *self {
            Pixels::Float { n, .. } | Pixels::Bytes { n, .. } => n,
        }
    }
    pub fn channels(&self) -> usize {
        match *self {
            Pixels::Float { c, .. } | Pixels::Bytes { c, .. } => c,
        }
    }
    pub fn height(&self) -> usize {
        match *self {
            Pixels::Float { h, .. } | Pixels::Bytes { h, .. } => h,
        }
    }
    pub fn width(&self) -> usize {
        match *self {
            Pixels::Float { w, .. } | Pixels::Bytes { w, .. } => w,
        }
    }

    /// Image `i` as interleaved 8-bit `[h, w, c]` into `out` (resized to fit). `i < n`.
    pub fn item_u8(&self, i: usize, out: &mut Vec<u8>) {
        match *self {
            Pixels::Float { data, c, h, w, .. } => {
                let plane = h * w;
                let img = &data[i * c * plane..(i + 1) * c * plane];
                out.clear();
                out.resize(plane * c, 0);
                for ch in 0..c {
                    let src = &img[ch * plane..(ch + 1) * plane];
                    for (p, &v) in src.iter().enumerate() {
                        out[p * c + ch] = to_u8(v);
                    }
                }
            }
            Pixels::Bytes { data, h, w, c, .. } => {
                let len = h * w * c;
                out.clear();
                out.extend_from_slice(&data[i * len..(i + 1) * len]);
            }
        }
    }

    /// Image `i` as interleaved RGB (grey is repeated, alpha dropped) into `out`.
    pub fn item_rgb8(&self, i: usize, out: &mut Vec<u8>) {
        let c = self.channels();
        if c == 3 {
            return self.item_u8(i, out);
        }
        let mut tmp = Vec::new();
        self.item_u8(i, &mut tmp);
        out.clear();
        out.reserve(tmp.len() / c * 3);
        for px in tmp.chunks_exact(c) {
            if c == 1 {
                out.extend_from_slice(&[px[0], px[0], px[0]]);
            } else {
                out.extend_from_slice(&px[..3]);
            }
        }
    }

    /// Image `i` as float `[c, h, w]` in [-1, 1] appended to `out`.
    pub fn item_f32(&self, i: usize, out: &mut Vec<f32>) {
        match *self {
            Pixels::Float { data, c, h, w, .. } => {
                let len = c * h * w;
                out.extend_from_slice(&data[i * len..(i + 1) * len]);
            }
            Pixels::Bytes { data, h, w, c, .. } => {
                let len = h * w * c;
                let img = &data[i * len..(i + 1) * len];
                for ch in 0..c {
                    out.extend(img.iter().skip(ch).step_by(c).map(|&v| from_u8(v)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_conversion() {
        // x * 127.5 + 128, clamped, truncated toward zero.
        assert_eq!(to_u8(-1.0), 0); // 0.5 -> 0
        assert_eq!(to_u8(1.0), 255); // 255.5 -> 255
        assert_eq!(to_u8(0.0), 128);
        assert_eq!(to_u8(-0.5), 64); // 64.25
        assert_eq!(to_u8(5.0), 255);
        assert_eq!(to_u8(-5.0), 0);
        assert_eq!(to_u8(f32::NAN), 0);
        for v in 0..=255u8 {
            assert_eq!(to_u8(from_u8(v)), v, "round trip of {v}");
        }
    }

    #[test]
    fn layouts_and_channels() {
        // One 2x2 float image, channels R, G, B planes.
        let data = [
            -1.0f32, 0.0, 1.0, 0.5, /* G */ 0.0, 0.0, 0.0, 0.0, /* B */ 1.0, 1.0, 1.0,
            1.0,
        ];
        let p = Pixels::float(&data, &[1, 3, 2, 2], "x").unwrap();
        let mut out = Vec::new();
        p.item_u8(0, &mut out);
        assert_eq!(
            out,
            vec![0, 128, 255, 128, 128, 255, 255, 128, 255, 191, 128, 255]
        );
        let grey = [0u8, 10, 20, 30];
        let g = Pixels::bytes(&grey, &[1, 2, 2, 1], "g").unwrap();
        g.item_rgb8(0, &mut out);
        assert_eq!(out, vec![0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30]);
        let mut f = Vec::new();
        g.item_f32(0, &mut f);
        assert_eq!(f.len(), 4);
        assert_eq!(to_u8(f[1]), 10);
        assert!(Pixels::float(&data, &[1, 2, 2, 3], "x").is_err());
        assert!(Pixels::float(&data, &[2, 3, 2, 2], "x").is_err());
        let e = Pixels::bytes(&grey, &[4], "port \"image\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port \"image\""), "{e}");
    }
}
