//! Reading images from folders and writing PNGs (feature `image-io`), for the analysis and
//! detection plugins that take "a folder of images" as input.

use std::path::{Path, PathBuf};

/// Errors reading or writing image files; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: String, message: String },
    #[error("{path}: cannot encode PNG: {message}")]
    Encode { path: String, message: String },
    #[error("{path}: no PNG or JPEG images found")]
    Empty { path: String },
}

/// An 8-bit RGB image, row-major, interleaved (`HWC`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// The image as `[3, H, W]` planes of f64 on the 0..255 scale.
    pub fn to_planes_f64(&self) -> Vec<f64> {
        let n = self.width * self.height;
        let mut out = vec![0.0; 3 * n];
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * n + i] = px[c] as f64;
            }
        }
        out
    }

    /// ITU-R BT.601 luma on the 0..255 scale, row-major.
    pub fn to_gray_f64(&self) -> Vec<f64> {
        self.data
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
            .collect()
    }
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            let e = e.to_ascii_lowercase();
            e == "png" || e == "jpg" || e == "jpeg"
        })
        .unwrap_or(false)
}

/// The PNG and JPEG files directly inside `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, ImageIoError> {
    let io = |source| ImageIoError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_file() && is_image_name(&p) {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ImageIoError::Empty {
            path: dir.display().to_string(),
        });
    }
    Ok(out)
}

/// Images of a folder laid out as in Wang et al.'s evaluation sets: `0_real/` and `1_fake/`
/// subfolders. Returns `(path, is_synthetic)` pairs, or None when the folder is not laid out so.
pub fn list_labelled_images(dir: &Path) -> Result<Option<Vec<(PathBuf, bool)>>, ImageIoError> {
    let real = dir.join("0_real");
    let fake = dir.join("1_fake");
    if !(real.is_dir() && fake.is_dir()) {
        return Ok(None);
    }
    let mut out: Vec<(PathBuf, bool)> = list_images(&real)?
        .into_iter()
        .map(|p| (p, false))
        .collect();
    out.extend(list_images(&fake)?.into_iter().map(|p| (p, true)));
    Ok(Some(out))
}

/// Decodes a PNG or JPEG file to 8-bit RGB (grey and alpha are converted).
pub fn read_rgb8(path: &Path) -> Result<Rgb8, ImageIoError> {
    let bytes = std::fs::read(path).map_err(|source| ImageIoError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| ImageIoError::Decode {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

/// Encodes an RGB image as PNG bytes. `name` is used in error messages.
pub fn encode_png(img: &Rgb8, name: &str) -> Result<Vec<u8>, ImageIoError> {
    let err = |message: String| ImageIoError::Encode {
        path: name.to_owned(),
        message,
    };
    if img.data.len() != img.width * img.height * 3 {
        return Err(err(format!(
            "{} bytes do not form a {}x{} RGB image",
            img.data.len(),
            img.width,
            img.height
        )));
    }
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        enc,
        &img.data,
        img.width as u32,
        img.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_and_listing() {
        let dir = std::env::temp_dir().join(format!("sg-imgio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("0_real")).unwrap();
        std::fs::create_dir_all(dir.join("1_fake")).unwrap();
        let img = Rgb8 {
            width: 3,
            height: 2,
            data: (0..18).map(|v| (v * 13) as u8).collect(),
        };
        let png = encode_png(&img, "t").unwrap();
        std::fs::write(dir.join("0_real/b.png"), &png).unwrap();
        std::fs::write(dir.join("0_real/a.PNG"), &png).unwrap();
        std::fs::write(dir.join("0_real/notes.txt"), b"x").unwrap();
        std::fs::write(dir.join("1_fake/c.png"), &png).unwrap();
        let l = list_images(&dir.join("0_real")).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].ends_with("a.PNG"));
        assert_eq!(read_rgb8(&l[1]).unwrap(), img);
        let lab = list_labelled_images(&dir).unwrap().unwrap();
        assert_eq!(lab.iter().filter(|(_, f)| *f).count(), 1);
        assert!(list_labelled_images(&dir.join("0_real")).unwrap().is_none());
        std::fs::write(dir.join("1_fake/bad.png"), b"not a png").unwrap();
        let e = read_rgb8(&dir.join("1_fake/bad.png")).unwrap_err();
        assert!(e.to_string().contains("bad.png"));
        assert_eq!(img.to_planes_f64()[6], 13.0);
        assert_eq!(img.to_planes_f64()[1], 39.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
