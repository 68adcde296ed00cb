//! Image files: output-name templates, atomic writes, PNG/JPEG/WebP encoding, loading with
//! resize and crop.

use crate::error::{file_err, invalid, IoError, Result};
use image::{ExtendedColorType, ImageEncoder};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Values for the placeholders of an output-name template.
#[derive(Clone, Copy, Debug, Default)]
pub struct NameVars {
    pub seed: Option<i64>,
    pub index: usize,
    pub frame: usize,
}

/// Fills `{seed}`, `{index}` and `{frame}` in a file-name template. A placeholder may give a
/// width as in Python's format strings (and the CLI's `--seeds` substitution): `{seed:04}` ->
/// `0085` (zero-padded), `{seed:4}` -> `  85` (space-padded). `{{` and `}}` are literal braces.
pub fn fill_template(template: &str, vars: &NameVars) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut i = 0;
    while i < template.len() {
        let rest = &template[i..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            out.push_str(&rest[..1]);
            i += 2;
            continue;
        }
        if rest.starts_with('}') {
            return invalid(format!("template {template:?}: unmatched '}}' at byte {i}"));
        }
        if !rest.starts_with('{') {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let Some(end) = rest.find('}') else {
            return invalid(format!(
                "template {template:?}: '{{' at byte {i} is not closed"
            ));
        };
        let body = &rest[1..end];
        i += end + 1;
        let (name, width, zeros) = match body.split_once(':') {
            Some((n, w)) => {
                let zeros = w.starts_with('0');
                let digits = w.trim_start_matches('0');
                let width = if digits.is_empty() {
                    0
                } else {
                    digits
                        .parse::<usize>()
                        .ok()
                        .filter(|&w| w <= 32)
                        .ok_or_else(|| {
                            IoError::Invalid(format!(
                                "template {template:?}: bad width in {{{body}}}"
                            ))
                        })?
                };
                (n, width, zeros)
            }
            None => (body, 0, false),
        };
        let value: i64 = match name {
            "seed" => vars.seed.ok_or_else(|| {
                IoError::Invalid(format!(
                    "template {template:?} uses {{seed}} but no seeds are connected"
                ))
            })?,
            "index" => vars.index as i64,
            "frame" => vars.frame as i64,
            _ => {
                return invalid(format!(
                    "template {template:?}: unknown placeholder {{{name}}} (seed, index, frame)"
                ))
            }
        };
        if zeros {
            out.push_str(&format!("{value:0width$}"));
        } else {
            out.push_str(&format!("{value:width$}"));
        }
    }
    Ok(out)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path in the same folder as `path` (so that a rename is atomic), keeping the
/// extension (some encoders look at it).
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp-{}-{n}{ext}", std::process::id()))
}

/// Creates the parent folder of `path` if needed.
pub fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(file_err(parent))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: temporary file in the same folder, flushed, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(path)(e));
    }
    Ok(())
}

/// Still-image file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    /// Lossless WebP (the encoder of the `image` crate writes lossless only).
    WebP,
}

impl ImageFormat {
    /// The format for a path's extension.
    pub fn from_path(path: &Path) -> Result<ImageFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "png" => ImageFormat::Png,
            "jpg" | "jpeg" => ImageFormat::Jpeg,
            "webp" => ImageFormat::WebP,
            _ => {
                return invalid(format!(
                    "{}: unknown image extension {ext:?} (png, jpg, jpeg, webp)",
                    path.display()
                ))
            }
        })
    }
}

/// Encodes interleaved 8-bit pixels (`channels` = 1, 3 or 4) in `format`. JPEG has no alpha:
/// it is dropped. `quality` (1-100) applies to JPEG.
pub fn encode_image(
    format: ImageFormat,
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    quality: u8,
) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = (
        u32::try_from(width).map_err(|_| "image too wide".to_string())?,
        u32::try_from(height).map_err(|_| "image too tall".to_string())?,
    );
    let colour = match channels {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        4 => ExtendedColorType::Rgba8,
        c => return Err(format!("{c} channels cannot be saved")),
    };
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => image::codecs::png::PngEncoder::new(&mut out)
            .write_image(pixels, w, h, colour)
            .map_err(|e| e.to_string())?,
        ImageFormat::Jpeg => {
            let rgb;
            let (data, colour) = if channels == 4 {
                rgb = pixels
                    .chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect::<Vec<u8>>();
                (&rgb[..], ExtendedColorType::Rgb8)
            } else {
                (pixels, colour)
            };
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
                .write_image(data, w, h, colour)
                .map_err(|e| e.to_string())?
        }
        ImageFormat::WebP => image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .write_image(pixels, w, h, colour)
            .map_err(|e| e.to_string())?,
    }
    Ok(out)
}

/// How [`load_image`] fits the image to a requested size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Scale to exactly the size (aspect may change).
    Stretch,
    /// Scale to cover the size, then crop the centre (aspect kept).
    Cover,
    /// Scale to fit inside the size and pad with black (aspect kept).
    Contain,
}

impl Fit {
    /// Parses `stretch` | `cover` | `contain`.
    pub fn parse(s: &str) -> Result<Fit> {
        Ok(match s {
            "stretch" => Fit::Stretch,
            "cover" => Fit::Cover,
            "contain" => Fit::Contain,
            _ => return invalid(format!("unknown fit {s:?} (stretch, cover, contain)")),
        })
    }
}

/// Options of [`load_image`].
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Crop rectangle `(x, y, w, h)` applied first, in source pixels.
    pub crop: Option<(u32, u32, u32, u32)>,
    /// Crop the largest centred square first (the usual preparation of face images).
    pub center_square: bool,
    /// Target size; 0 keeps the (cropped) size, or follows the aspect when the other is set.
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub filter: image::imageops::FilterType,
}

/// Parses a filter name: `nearest` | `triangle` | `catmullrom` | `gaussian` | `lanczos3`.
pub fn parse_filter(s: &str) -> Result<image::imageops::FilterType> {
    use image::imageops::FilterType as F;
    Ok(match s {
        "nearest" => F::Nearest,
        "triangle" => F::Triangle,
        "catmullrom" => F::CatmullRom,
        "gaussian" => F::Gaussian,
        "lanczos3" => F::Lanczos3,
        _ => return invalid(format!("unknown filter {s:?}")),
    })
}

/// Parses a crop rectangle `x,y,w,h`.
pub fn parse_crop(s: &str) -> Result<Option<(u32, u32, u32, u32)>> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let v: Vec<u32> = t
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| IoError::Invalid(format!("crop {t:?}: use x,y,width,height in pixels")))?;
    match v.as_slice() {
        [x, y, w, h] if *w > 0 && *h > 0 => Ok(Some((*x, *y, *w, *h))),
        _ => invalid(format!(
            "crop {t:?}: use x,y,width,height with a non-empty size"
        )),
    }
}

/// Reads an image file (PNG, JPEG, WebP) as 8-bit RGB, cropped and resized as asked.
/// Returns `(pixels [h, w, 3], width, height)`.
pub fn load_image(path: &Path, opts: &LoadOptions) -> Result<(Vec<u8>, u32, u32)> {
    let img_err = |message: String| IoError::Image {
        path: path.display().to_string(),
        message,
    };
    let reader = image::ImageReader::open(path)
        .map_err(file_err(path))?
        .with_guessed_format()
        .map_err(file_err(path))?;
    let mut img = reader
        .decode()
        .map_err(|e| img_err(e.to_string()))?
        .to_rgb8();
    if let Some((x, y, w, h)) = opts.crop {
        if x.checked_add(w).is_none_or(|r| r > img.width())
            || y.checked_add(h).is_none_or(|b| b > img.height())
        {
            return Err(img_err(format!(
                "crop {x},{y},{w},{h} is outside the {}x{} image",
                img.width(),
                img.height()
            )));
        }
        img = image::imageops::crop_imm(&img, x, y, w, h).to_image();
    }
    if opts.center_square {
        let s = img.width().min(img.height());
        let (x, y) = ((img.width() - s) / 2, (img.height() - s) / 2);
        img = image::imageops::crop_imm(&img, x, y, s, s).to_image();
    }
    let (sw, sh) = (img.width(), img.height());
    let (tw, th) = match (opts.width, opts.height) {
        (0, 0) => (sw, sh),
        (w, 0) => (
            w,
            ((sh as u64 * w as u64 + sw as u64 / 2) / sw as u64).max(1) as u32,
        ),
        (0, h) => (
            ((sw as u64 * h as u64 + sh as u64 / 2) / sh as u64).max(1) as u32,
            h,
        ),
        (w, h) => (w, h),
    };
    if (tw as u64) * (th as u64) > 1 << 28 {
        return Err(img_err(format!("target size {tw}x{th} is too large")));
    }
    if (tw, th) != (sw, sh) {
        img = match opts.fit {
            Fit::Stretch => image::imageops::resize(&img, tw, th, opts.filter),
            Fit::Cover => {
                let scale = (tw as f64 / sw as f64).max(th as f64 / sh as f64);
                let (rw, rh) = (
                    ((sw as f64 * scale).round() as u32).max(tw),
                    ((sh as f64 * scale).round() as u32).max(th),
                );
                let r = image::imageops::resize(&img, rw, rh, opts.filter);
                image::imageops::crop_imm(&r, (rw - tw) / 2, (rh - th) / 2, tw, th).to_image()
            }
            Fit::Contain => {
                let scale = (tw as f64 / sw as f64).min(th as f64 / sh as f64);
                let (rw, rh) = (
                    ((sw as f64 * scale).round() as u32).clamp(1, tw),
                    ((sh as f64 * scale).round() as u32).clamp(1, th),
                );
                let r = image::imageops::resize(&img, rw, rh, opts.filter);
                let mut canvas = image::RgbImage::new(tw, th);
                image::imageops::replace(
                    &mut canvas,
                    &r,
                    ((tw - rw) / 2) as i64,
                    ((th - rh) / 2) as i64,
                );
                canvas
            }
        };
    }
    let (w, h) = (img.width(), img.height());
    Ok((img.into_raw(), w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = NameVars {
            seed: Some(85),
            index: 3,
            frame: 12,
        };
        assert_eq!(
            fill_template("out/seed{seed:04}.png", &v).unwrap(),
            "out/seed0085.png"
        );
        assert_eq!(
            fill_template("f{frame:06}_{index}.jpg", &v).unwrap(),
            "f000012_3.jpg"
        );
        assert_eq!(fill_template("{{x}}{seed}", &v).unwrap(), "{x}85");
        assert_eq!(fill_template("plain.png", &v).unwrap(), "plain.png");
        let none = NameVars::default();
        let e = fill_template("s{seed}.png", &none).unwrap_err().to_string();
        assert!(e.contains("no seeds"), "{e}");
        assert!(fill_template("{bogus}.png", &v).is_err());
        assert!(fill_template("{seed.png", &v).is_err());
        assert!(fill_template("a}b", &v).is_err());
        let neg = NameVars {
            seed: Some(-7),
            ..v
        };
        assert_eq!(fill_template("{seed:04}", &neg).unwrap(), "-007");
        assert_eq!(fill_template("{seed:4}", &v).unwrap(), "  85");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            ImageFormat::from_path(Path::new("a.PNG")).unwrap(),
            ImageFormat::Png
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("a.jpeg")).unwrap(),
            ImageFormat::Jpeg
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("a.webp")).unwrap(),
            ImageFormat::WebP
        );
        assert!(ImageFormat::from_path(Path::new("a.bmp")).is_err());
        assert!(parse_crop("1,2,3").is_err());
        assert_eq!(parse_crop(" 1, 2, 3, 4 ").unwrap(), Some((1, 2, 3, 4)));
    }

    /// A 6x4 test image whose pixels encode their position.
    fn pattern(w: usize, h: usize) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [(x * 40) as u8, (y * 60) as u8, 200]))
            .collect()
    }

    #[test]
    fn round_trips_for_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (6, 4);
        let px = pattern(w, h);
        let opts = LoadOptions {
            crop: None,
            center_square: false,
            width: 0,
            height: 0,
            fit: Fit::Stretch,
            filter: image::imageops::FilterType::Nearest,
        };
        for (name, exact) in [("a.png", true), ("a.webp", true), ("a.jpg", false)] {
            let path = dir.path().join(name);
            let fmt = ImageFormat::from_path(&path).unwrap();
            let bytes = encode_image(fmt, &px, w, h, 3, 95).unwrap();
            write_atomic(&path, &bytes).unwrap();
            let (back, bw, bh) = load_image(&path, &opts).unwrap();
            assert_eq!((bw, bh), (w as u32, h as u32), "{name}");
            let max = back
                .iter()
                .zip(&px)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            if exact {
                assert_eq!(back, px, "{name} must be lossless");
            } else {
                assert!(max <= 40, "{name}: max difference {max}");
            }
        }
        // RGBA PNG keeps its colour channels; JPEG drops alpha.
        let rgba: Vec<u8> = px.chunks(3).flat_map(|p| [p[0], p[1], p[2], 128]).collect();
        let path = dir.path().join("rgba.png");
        write_atomic(
            &path,
            &encode_image(ImageFormat::Png, &rgba, w, h, 4, 90).unwrap(),
        )
        .unwrap();
        assert_eq!(load_image(&path, &opts).unwrap().0, px);
        assert!(encode_image(ImageFormat::Jpeg, &rgba, w, h, 4, 90).is_ok());
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn crop_and_resize() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (6, 4);
        let path = dir.path().join("p.png");
        write_atomic(
            &path,
            &encode_image(ImageFormat::Png, &pattern(w, h), w, h, 3, 90).unwrap(),
        )
        .unwrap();
        let base = LoadOptions {
            crop: None,
            center_square: false,
            width: 0,
            height: 0,
            fit: Fit::Stretch,
            filter: image::imageops::FilterType::Nearest,
        };
        // Centre square of 6x4 is x = 1..5: its first pixel is (1, 0).
        let sq = load_image(
            &path,
            &LoadOptions {
                center_square: true,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!((sq.1, sq.2), (4, 4));
        assert_eq!(&sq.0[..3], &[40, 0, 200]);
        // Explicit crop.
        let c = load_image(
            &path,
            &LoadOptions {
                crop: Some((2, 1, 2, 2)),
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!((c.1, c.2), (2, 2));
        assert_eq!(&c.0[..3], &[80, 60, 200]);
        assert!(load_image(
            &path,
            &LoadOptions {
                crop: Some((5, 0, 2, 2)),
                ..base.clone()
            }
        )
        .is_err());
        // Width only keeps the aspect: 6x4 -> 3x2.
        let r = load_image(
            &path,
            &LoadOptions {
                width: 3,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!((r.1, r.2), (3, 2));
        // Cover to 2x2 and contain into 6x6.
        let cv = load_image(
            &path,
            &LoadOptions {
                width: 2,
                height: 2,
                fit: Fit::Cover,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!((cv.1, cv.2), (2, 2));
        let ct = load_image(
            &path,
            &LoadOptions {
                width: 6,
                height: 6,
                fit: Fit::Contain,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!((ct.1, ct.2), (6, 6));
        assert_eq!(&ct.0[..3], &[0, 0, 0], "contain pads with black");
        // A missing file names itself.
        let e = load_image(&dir.path().join("nope.png"), &base)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.png"), "{e}");
    }
}
