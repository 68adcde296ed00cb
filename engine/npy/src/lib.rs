//! Reading and writing NumPy `.npy` arrays and uncompressed `.npz` archives.
//!
//! This is what users' latent files, the official projector's `projected_w.npz` and our
//! reference fixtures are stored in. Only C-order little-endian arrays of plain numeric dtypes
//! are supported; anything else is refused with an error that says what was found.
//!
//! Every length read from a file is checked against the file's size before anything is
//! allocated, so a corrupted header cannot ask for gigabytes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F16,
    F32,
    F64,
    U8,
    I8,
    I32,
    I64,
    U32,
    U64,
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::F16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// The NumPy `descr` string (little-endian).
    pub fn descr(self) -> &'static str {
        match self {
            DType::F16 => "<f2",
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::U8 => "|u1",
            DType::I8 => "|i1",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::U32 => "<u4",
            DType::U64 => "<u8",
            DType::Bool => "|b1",
        }
    }

    fn from_descr(descr: &str) -> Option<DType> {
        // '=' is native order; every platform we build for is little-endian.
        let (order, code) = descr.split_at(descr.len().min(1));
        if !matches!(order, "<" | "|" | "=") {
            return None;
        }
        Some(match code {
            "f2" => DType::F16,
            "f4" => DType::F32,
            "f8" => DType::F64,
            "u1" => DType::U8,
            "i1" => DType::I8,
            "i4" => DType::I32,
            "i8" => DType::I64,
            "u4" => DType::U32,
            "u8" => DType::U64,
            "b1" => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.descr())
    }
}

/// An n-dimensional array: C-order, little-endian raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Raw little-endian element bytes, `shape.product() * dtype.size()` long.
    pub data: Vec<u8>,
}

/// Errors from reading or writing `.npy` / `.npz`.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a .npy array: {0}")]
    Format(String),
    #[error("unsupported .npy array: {0}")]
    Unsupported(String),
    #[error("not a usable .npz archive: {0}")]
    Zip(String),
    #[error("array has dtype {found}, expected {expected}")]
    DType { found: DType, expected: DType },
    #[error("array data is {got} bytes but shape {shape:?} of {dtype} needs {need}")]
    Size {
        got: usize,
        need: usize,
        shape: Vec<usize>,
        dtype: DType,
    },
}

impl Array {
    /// Builds an array from raw bytes, checking the byte count against the shape.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<Array, NpyError> {
        let need = checked_numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| NpyError::Format(format!("shape {shape:?} is too large")))?;
        if need != data.len() {
            return Err(NpyError::Size {
                got: data.len(),
                need,
                shape,
                dtype,
            });
        }
        Ok(Array { dtype, shape, data })
    }

    /// An `f32` array from values.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Array, NpyError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Array::from_bytes(DType::F32, shape, data)
    }

    /// An `f64` array from values.
    pub fn from_f64(shape: Vec<usize>, values: &[f64]) -> Result<Array, NpyError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Array::from_bytes(DType::F64, shape, data)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as `f32`; errors unless the dtype is `f32`.
    pub fn to_f32(&self) -> Result<Vec<f32>, NpyError> {
        self.expect(DType::F32)?;
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The values as `f64`; errors unless the dtype is `f64`.
    pub fn to_f64(&self) -> Result<Vec<f64>, NpyError> {
        self.expect(DType::F64)?;
        Ok(self
            .data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    /// Any floating-point or integer array converted to `f64` values.
    pub fn to_f64_lossy(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            DType::F64 => self.to_f64().unwrap_or_default(),
            DType::F32 => self
                .to_f32()
                .unwrap_or_default()
                .into_iter()
                .map(f64::from)
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
                .collect(),
            DType::U8 | DType::Bool => d.iter().map(|&v| v as f64).collect(),
            DType::I8 => d.iter().map(|&v| v as i8 as f64).collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            DType::U32 => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
                .collect(),
            DType::U64 => d
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
                .collect(),
        }
    }

    fn expect(&self, dtype: DType) -> Result<(), NpyError> {
        if self.dtype == dtype {
            Ok(())
        } else {
            Err(NpyError::DType {
                found: self.dtype,
                expected: dtype,
            })
        }
    }

    /// Parses a `.npy` byte stream.
    pub fn parse(bytes: &[u8]) -> Result<Array, NpyError> {
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(NpyError::Format("missing the \\x93NUMPY magic".into()));
        }
        let major = bytes[6];
        let (header_len, header_start) = match major {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
            2 | 3 => {
                if bytes.len() < 12 {
                    return Err(NpyError::Format("header length cut off".into()));
                }
                (
                    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                    12,
                )
            }
            v => return Err(NpyError::Unsupported(format!("format version {v}"))),
        };
        let header_end = header_start
            .checked_add(header_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                NpyError::Format(format!(
                    "header of {header_len} bytes runs past the end of the {}-byte file",
                    bytes.len()
                ))
            })?;
        let header = std::str::from_utf8(&bytes[header_start..header_end])
            .map_err(|_| NpyError::Format("header is not text".into()))?;
        let descr = dict_value(header, "descr")
            .and_then(|v| {
                v.trim()
                    .strip_prefix('\'')?
                    .strip_suffix('\'')
                    .map(str::to_owned)
            })
            .ok_or_else(|| NpyError::Format(format!("no 'descr' in header {header:?}")))?;
        let dtype = DType::from_descr(&descr)
            .ok_or_else(|| NpyError::Unsupported(format!("dtype {descr:?}")))?;
        let fortran = dict_value(header, "fortran_order")
            .map(|v| v.trim() == "True")
            .unwrap_or(false);
        if fortran {
            return Err(NpyError::Unsupported("Fortran-order arrays".into()));
        }
        let shape_text = dict_value(header, "shape")
            .ok_or_else(|| NpyError::Format(format!("no 'shape' in header {header:?}")))?;
        let shape = parse_shape(shape_text)?;
        let need = checked_numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| NpyError::Format(format!("shape {shape:?} is too large")))?;
        let body = &bytes[header_end..];
        if body.len() < need {
            return Err(NpyError::Size {
                got: body.len(),
                need,
                shape,
                dtype,
            });
        }
        Ok(Array {
            dtype,
            shape,
            data: body[..need].to_vec(),
        })
    }

    /// Serialises as a version-1 `.npy` byte stream.
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
            self.dtype.descr(),
            shape
        );
        // Pad with spaces so that magic + length + header + '\n' is a multiple of 64 bytes.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.data.len());
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// Reads a `.npy` file.
    pub fn read(path: &Path) -> Result<Array, NpyError> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        Array::parse(&bytes).map_err(|e| with_path(path, e))
    }

    /// Writes a `.npy` file atomically: a temporary file in the same folder, then a rename, so
    /// an existing file is never left half-written.
    pub fn write(&self, path: &Path) -> Result<(), NpyError> {
        write_atomic(path, &self.to_npy_bytes())
    }
}

/// Writes bytes to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NpyError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Reads every array of an uncompressed `.npz` archive (as `np.savez` writes), keyed by name
/// without the `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Array>, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_npz(&bytes).map_err(|e| with_path(path, e))
}

/// Parses an uncompressed `.npz` archive from memory.
pub fn parse_npz(bytes: &[u8]) -> Result<BTreeMap<String, Array>, NpyError> {
    // The central directory is authoritative: NumPy writes local headers with zip64 placeholder
    // sizes, while the central directory holds the real ones.
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| NpyError::Zip("no end-of-central-directory record".into()))?;
    let rd16 = |o: usize| -> Result<usize, NpyError> {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| NpyError::Zip(format!("record cut off at byte {o}")))
    };
    let rd32 = |o: usize| -> Result<usize, NpyError> {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| NpyError::Zip(format!("record cut off at byte {o}")))
    };
    let count = rd16(eocd + 10)?;
    let mut pos = rd32(eocd + 16)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        if rd32(pos)? != 0x0201_4b50 {
            return Err(NpyError::Zip(format!(
                "bad central directory entry at byte {pos}"
            )));
        }
        let method = rd16(pos + 10)?;
        let comp_size = rd32(pos + 20)?;
        let name_len = rd16(pos + 28)?;
        let extra_len = rd16(pos + 30)?;
        let comment_len = rd16(pos + 32)?;
        let local = rd32(pos + 42)?;
        let name = bytes
            .get(pos + 46..pos + 46 + name_len)
            .ok_or_else(|| NpyError::Zip("entry name cut off".into()))?;
        let name = String::from_utf8_lossy(name).into_owned();
        if method != 0 {
            return Err(NpyError::Unsupported(format!(
                "entry {name} is compressed (method {method}); only np.savez archives are read"
            )));
        }
        if comp_size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            return Err(NpyError::Unsupported(format!(
                "entry {name} needs zip64 (over 4 GiB)"
            )));
        }
        if rd32(local)? != 0x0403_4b50 {
            return Err(NpyError::Zip(format!("bad local header for {name}")));
        }
        let data_start = local + 30 + rd16(local + 26)? + rd16(local + 28)?;
        let data = bytes
            .get(data_start..data_start.saturating_add(comp_size))
            .ok_or_else(|| NpyError::Zip(format!("entry {name} runs past the end")))?;
        let array =
            Array::parse(data).map_err(|e| NpyError::Format(format!("entry {name}: {e}")))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_owned();
        out.insert(key, array);
        pos += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn io_err(path: &Path, source: std::io::Error) -> NpyError {
    NpyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn with_path(path: &Path, e: NpyError) -> NpyError {
    match e {
        NpyError::Io { .. } => e,
        other => NpyError::Format(format!("{}: {other}", path.display())),
    }
}

/// Finds `'key': value` in the header dict text, returning the raw value text.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let start = header.find(&pat)? + pat.len();
    let rest = &header[start..];
    let rest_trim = rest.trim_start();
    let offset = rest.len() - rest_trim.len();
    let end = if rest_trim.starts_with('(') {
        rest_trim.find(')')? + 1
    } else if let Some(quoted) = rest_trim.strip_prefix('\'') {
        quoted.find('\'')? + 2
    } else {
        rest_trim.find([',', '}']).unwrap_or(rest_trim.len())
    };
    Some(&rest[offset..offset + end])
}

fn parse_shape(text: &str) -> Result<Vec<usize>, NpyError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| NpyError::Format(format!("bad shape {text:?}")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| NpyError::Format(format!("bad shape {text:?}")))
        })
        .collect()
}

/// IEEE half to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f32_and_shapes() {
        for shape in [vec![], vec![3], vec![2, 3], vec![1, 2, 3, 4]] {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let a = Array::from_f32(shape.clone(), &values).unwrap();
            let bytes = a.to_npy_bytes();
            assert_eq!(bytes.len() % 64, (n * 4) % 64, "header must pad to 64");
            let b = Array::parse(&bytes).unwrap();
            assert_eq!(a, b);
            assert_eq!(b.to_f32().unwrap(), values);
        }
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let a = Array::from_f64(vec![4, 4], &[1.5; 16]).unwrap();
        let bytes = a.to_npy_bytes();
        for cut in 0..bytes.len() {
            assert!(Array::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Array::parse(b"PK\x03\x04 not numpy").is_err());
        // A header claiming an absurd shape must not allocate.
        let evil = bytes.clone().into_iter().collect::<Vec<u8>>();
        let text =
            String::from_utf8_lossy(&evil[10..]).replace("(4, 4)", "(99999999999, 99999999999)");
        let mut forged = evil[..8].to_vec();
        forged.extend_from_slice(&(text.find('\n').unwrap() as u16 + 1).to_le_bytes());
        forged.extend_from_slice(text.as_bytes());
        assert!(Array::parse(&forged).is_err());
    }

    #[test]
    fn dtype_mismatch_is_reported() {
        let a = Array::from_f64(vec![2], &[1.0, 2.0]).unwrap();
        let e = a.to_f32().unwrap_err().to_string();
        assert!(e.contains("<f8") && e.contains("<f4"), "{e}");
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
