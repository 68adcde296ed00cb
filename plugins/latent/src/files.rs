//! Latent and direction files: NumPy `.npy`, and `.npz` archives such as the official
//! projector's `projected_w.npz` (one array `w` of shape `[1, num_ws, w_dim]`, float32).

use crate::error::{LatentError, Result};
use std::path::Path;
use stylegraph_npy::{Array, DType};

/// Reads an array from a `.npy` file, or the array `key` of an `.npz` archive. With an empty
/// `key`, an archive holding a single array gives that array.
pub fn read_array(path: &Path, key: &str) -> Result<Array> {
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !is_npz {
        return Ok(Array::read(path)?);
    }
    let mut arrays = stylegraph_npy::read_npz(path)?;
    let keys: Vec<String> = arrays.keys().cloned().collect();
    if key.is_empty() {
        if arrays.len() == 1 {
            if let Some((_, a)) = arrays.pop_first() {
                return Ok(a);
            }
        }
        return Err(LatentError::File {
            path: path.display().to_string(),
            message: format!("the archive holds {keys:?}; set the key param to pick one"),
        });
    }
    arrays.remove(key).ok_or_else(|| LatentError::File {
        path: path.display().to_string(),
        message: format!("the archive has no array {key:?} (it holds {keys:?})"),
    })
}

/// The array's values as `f32` (exact for float32 files, rounded for float64 and integers).
pub fn array_f32(a: &Array) -> Vec<f32> {
    match a.dtype {
        DType::F32 => a.to_f32().unwrap_or_default(),
        _ => a.to_f64_lossy().into_iter().map(|v| v as f32).collect(),
    }
}

/// The array's values as `f64`.
pub fn array_f64(a: &Array) -> Vec<f64> {
    a.to_f64_lossy()
}

/// How to write a latent file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatentFormat {
    Npy,
    Npz,
}

impl LatentFormat {
    /// `npy` | `npz`, or `auto` = by the path's extension (`.npz` or else `.npy`).
    pub fn parse(s: &str, path: &Path) -> Result<LatentFormat> {
        Ok(match s {
            "npy" => LatentFormat::Npy,
            "npz" => LatentFormat::Npz,
            "auto" => {
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
                {
                    LatentFormat::Npz
                } else {
                    LatentFormat::Npy
                }
            }
            _ => {
                return Err(LatentError::Invalid(format!(
                    "unknown format {s:?} (auto, npy, npz)"
                )))
            }
        })
    }
}

/// Writes `array` to `path` as `.npy`, or as an `.npz` archive holding it under `key` (the
/// official projector writes `projected_w.npz` with key `w`). Atomic: a temporary file in the
/// same folder, then a rename.
pub fn write_latent(path: &Path, array: &Array, format: LatentFormat, key: &str) -> Result<()> {
    match format {
        LatentFormat::Npy => Ok(array.write(path)?),
        LatentFormat::Npz => {
            if key.is_empty() || key.contains('/') {
                return Err(LatentError::Invalid(format!(
                    "npz key {key:?} must be a non-empty name without '/'"
                )));
            }
            let bytes = npz_bytes(&[(key, array)])?;
            Ok(stylegraph_npy::write_atomic(path, &bytes)?)
        }
    }
}

/// Serialises arrays as an uncompressed `.npz` archive, as `numpy.savez` writes it: a ZIP
/// file with one stored (method 0) member `<key>.npy` per array.
pub fn npz_bytes(entries: &[(&str, &Array)]) -> Result<Vec<u8>> {
    fn put16(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn put32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    // 1980-01-01 00:00, the earliest DOS date: deterministic output.
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (1 << 5) | 1;
    let too_big =
        || LatentError::Invalid("npz archive would exceed 4 GiB (zip64 is not written)".into());
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (key, array) in entries {
        let name = format!("{key}.npy");
        let data = array.to_npy_bytes();
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        let crc = crc32(&data);
        put32(&mut out, 0x0403_4b50);
        put16(&mut out, 20); // version needed: 2.0
        put16(&mut out, 0); // flags
        put16(&mut out, 0); // stored
        put16(&mut out, DOS_TIME);
        put16(&mut out, DOS_DATE);
        put32(&mut out, crc);
        put32(&mut out, size);
        put32(&mut out, size);
        put16(&mut out, name_len);
        put16(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);

        put32(&mut central, 0x0201_4b50);
        put16(&mut central, 20); // made by
        put16(&mut central, 20); // needed
        put16(&mut central, 0);
        put16(&mut central, 0);
        put16(&mut central, DOS_TIME);
        put16(&mut central, DOS_DATE);
        put32(&mut central, crc);
        put32(&mut central, size);
        put32(&mut central, size);
        put16(&mut central, name_len);
        put16(&mut central, 0); // extra
        put16(&mut central, 0); // comment
        put16(&mut central, 0); // disk
        put16(&mut central, 0); // internal attributes
        put32(&mut central, 0); // external attributes
        put32(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let cd_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    let count = u16::try_from(entries.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count);
    put16(&mut out, count);
    put32(&mut out, cd_size);
    put32(&mut out, cd_offset);
    put16(&mut out, 0);
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected, as ZIP uses).
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn npz_round_trip_through_the_npy_crate_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projected_w.npz");
        let values: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.25 - 1.0).collect();
        let a = Array::from_f32(vec![2, 3, 4], &values).unwrap();
        write_latent(&path, &a, LatentFormat::Npz, "w").unwrap();
        let back = read_array(&path, "w").unwrap();
        assert_eq!(back, a);
        // A single-array archive needs no key; a wrong key names what is there.
        assert_eq!(read_array(&path, "").unwrap(), a);
        let e = read_array(&path, "z").unwrap_err().to_string();
        assert!(e.contains("\"z\"") && e.contains("\"w\""), "{e}");
        // Two entries.
        let b = Array::from_f64(vec![3], &[1.0, 2.0, 3.0]).unwrap();
        let bytes = npz_bytes(&[("w", &a), ("extra", &b)]).unwrap();
        let m = stylegraph_npy::parse_npz(&bytes).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["extra"], b);
        std::fs::write(dir.path().join("two.npz"), &bytes).unwrap();
        let e = read_array(&dir.path().join("two.npz"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key"), "{e}");
    }

    #[test]
    fn npy_round_trip_and_format_choice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.npy");
        let a = Array::from_f64(vec![1, 5], &[0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
        let fmt = LatentFormat::parse("auto", &path).unwrap();
        assert_eq!(fmt, LatentFormat::Npy);
        write_latent(&path, &a, fmt, "").unwrap();
        assert_eq!(read_array(&path, "").unwrap(), a);
        assert_eq!(
            LatentFormat::parse("auto", Path::new("a.NPZ")).unwrap(),
            LatentFormat::Npz
        );
        assert!(LatentFormat::parse("pt", &path).is_err());
        let e = read_array(&dir.path().join("missing.npy"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.npy"), "{e}");
    }
}
