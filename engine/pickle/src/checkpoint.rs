//! `torch.save` checkpoints.
//!
//! * The zip format (torch >= 1.6): a zip archive with `<prefix>/data.pkl` (a pickle whose
//!   tensors name their storages by persistent id `('storage', torch.<T>Storage, key,
//!   location, numel)`), the raw storages as `<prefix>/data/<key>`, and an optional
//!   `<prefix>/byteorder`. torch writes every entry uncompressed ("stored"), so this module
//!   reads the central directory itself and slices entries straight out of the file.
//!   Compressed or encrypted entries are refused with a clear error; the CRC-32 of every entry
//!   that is used is checked.
//! * The legacy format (before 1.6, or `_use_new_zipfile_serialization=False`): five pickles
//!   then the raw storages, see [`crate::torch::parse_legacy_stream`].

use std::collections::HashMap;
use std::path::Path;

use crate::error::{PickleError, Result};
use crate::interp::{dict_get, dict_pairs, Converter, PyValue, TensorInfo};
use crate::network::{decode_budget, StateTensor};
use crate::torch::{
    describe, gather, looks_like_legacy_stream, parse_legacy_stream, resolve_storage, tensor_meta,
    Storage, StorageSource, TensorMeta,
};
use crate::vm::{self, Heap, Value};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;

/// One entry of the archive.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Offset of the entry's data in the archive.
    off: usize,
    len: usize,
    crc: u32,
}

/// Where the storages of a checkpoint are.
#[derive(Debug)]
enum Backing {
    Zip {
        /// The entries' names, without the archive's top-level folder.
        entries: HashMap<String, Entry>,
        /// The top-level folder with its slash (`archive/` for `torch.save(obj, 'archive.pt')`).
        prefix: String,
        /// `data.pkl`, copied (it is small) so that offsets in messages are offsets in it.
        pickle: Vec<u8>,
    },
    Legacy {
        storages: HashMap<String, Storage>,
    },
}

/// A `torch.save` checkpoint (zip or legacy format): its object tree and its storages.
#[derive(Debug)]
pub struct TorchCheckpoint {
    origin: String,
    /// The whole file.
    data: Vec<u8>,
    backing: Backing,
    heap: Heap,
    root: Value,
}

/// Reads a `torch.save` checkpoint from a file: the zip format of torch >= 1.6, or the legacy
/// format. See [`TorchCheckpoint::from_bytes`].
pub fn read_torch_zip(path: impl AsRef<Path>) -> Result<TorchCheckpoint> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|source| PickleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    TorchCheckpoint::from_bytes(data, path.display().to_string())
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Parses the central directory: name -> entry, for every stored entry.
fn read_directory(origin: &str, d: &[u8]) -> Result<HashMap<String, Entry>> {
    let bad = |at: usize, m: String| PickleError::malformed(origin, at, m);
    let not_zip = || {
        PickleError::structure(
            origin,
            "not a zip archive (no end-of-central-directory record); a truncated file or not a torch.save checkpoint",
        )
    };
    if d.len() < 22 {
        return Err(PickleError::truncated(
            origin,
            0,
            "zip archive",
            22,
            d.len(),
        ));
    }
    // The end record is the last 22 bytes plus a comment of at most 64 KiB.
    let lowest = d.len().saturating_sub(22 + 0xffff);
    let eocd = (lowest..=d.len() - 22)
        .rev()
        .find(|&i| le32(d, i) == Some(EOCD_SIG))
        .ok_or_else(not_zip)?;
    let field16 = |at: usize| le16(d, eocd + at).ok_or_else(not_zip);
    let field32 = |at: usize| le32(d, eocd + at).ok_or_else(not_zip);
    let mut count = u64::from(field16(10)?);
    let mut cd_size = u64::from(field32(12)?);
    let mut cd_off = u64::from(field32(16)?);
    if count == 0xffff || cd_size == 0xffff_ffff || cd_off == 0xffff_ffff {
        // Zip64: a locator just before the end record points at the zip64 end record.
        let loc = eocd
            .checked_sub(20)
            .filter(|&l| le32(d, l) == Some(EOCD64_LOCATOR_SIG))
            .ok_or_else(|| bad(eocd, "zip64 archive without its end-record locator".into()))?;
        let rec = le64(d, loc + 8)
            .and_then(|r| usize::try_from(r).ok())
            .filter(|&r| le32(d, r) == Some(EOCD64_SIG))
            .ok_or_else(|| {
                bad(
                    loc,
                    "zip64 locator does not point at a zip64 end record".into(),
                )
            })?;
        let f = |at: usize| {
            le64(d, rec + at).ok_or_else(|| bad(rec, "truncated zip64 end record".into()))
        };
        count = f(32)?;
        cd_size = f(40)?;
        cd_off = f(48)?;
    }
    let cd_start = usize::try_from(cd_off).map_err(|_| not_zip())?;
    let cd_end = usize::try_from(cd_size)
        .ok()
        .and_then(|s| cd_start.checked_add(s))
        .filter(|&e| e <= d.len())
        .ok_or_else(|| {
            PickleError::truncated(
                origin,
                cd_start,
                "zip central directory",
                cd_size,
                d.len().saturating_sub(cd_start),
            )
        })?;
    // Every directory record has at least 46 bytes, which bounds the count we trust.
    let max_entries = (cd_end - cd_start) / 46;
    if count > max_entries as u64 {
        return Err(bad(
            eocd,
            format!("zip claims {count} entries but its directory holds at most {max_entries}"),
        ));
    }
    let mut entries = HashMap::with_capacity(count as usize);
    let mut p = cd_start;
    for _ in 0..count {
        let rec_err = |m: &str| bad(p, format!("zip directory entry: {m}"));
        if le32(d, p) != Some(CENTRAL_SIG) {
            return Err(rec_err("bad signature"));
        }
        let g16 = |at: usize| {
            le16(d, p + at)
                .map(usize::from)
                .ok_or_else(|| rec_err("truncated"))
        };
        let g32 = |at: usize| le32(d, p + at).ok_or_else(|| rec_err("truncated"));
        let flags = g16(8)?;
        let method = g16(10)?;
        let crc = g32(16)?;
        let mut csize = u64::from(g32(20)?);
        let mut usize_ = u64::from(g32(24)?);
        let name_len = g16(28)?;
        let extra_len = g16(30)?;
        let comment_len = g16(32)?;
        let mut local = u64::from(g32(42)?);
        let name_start = p + 46;
        let extra_start = name_start + name_len;
        let next = extra_start + extra_len + comment_len;
        if next > cd_end {
            return Err(rec_err("runs past the end of the directory"));
        }
        let name = std::str::from_utf8(&d[name_start..extra_start])
            .map_err(|_| rec_err("name is not UTF-8"))?
            .to_string();
        // Zip64 extra field: the 64-bit values of the fields that are saturated, in order.
        let mut x = extra_start;
        while x + 4 <= extra_start + extra_len {
            let id = le16(d, x).unwrap_or(0);
            let size = usize::from(le16(d, x + 2).unwrap_or(0));
            if id == 0x0001 {
                let mut q = x + 4;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xffff_ffff && q + 8 <= x + 4 + size {
                        *field = le64(d, q).unwrap_or(*field);
                        q += 8;
                    }
                }
            }
            x += 4 + size;
        }
        p = next;
        if name.ends_with('/') {
            continue;
        }
        if flags & 1 != 0 {
            return Err(PickleError::unsupported(
                origin,
                format!("zip entry '{name}' is encrypted"),
            ));
        }
        if method != 0 {
            return Err(PickleError::unsupported(
                origin,
                format!(
                    "zip entry '{name}' is compressed (method {method}); torch.save writes stored entries, re-save the checkpoint with torch.save"
                ),
            ));
        }
        if csize != usize_ {
            return Err(bad(
                p,
                format!("stored zip entry '{name}' has different packed and unpacked sizes"),
            ));
        }
        let local = usize::try_from(local).map_err(|_| bad(p, "entry offset overflows".into()))?;
        if le32(d, local) != Some(LOCAL_SIG) {
            return Err(PickleError::Malformed {
                origin: origin.to_string(),
                offset: local as u64,
                message: format!("zip entry '{name}': no local header here"),
            });
        }
        let lname = le16(d, local + 26).map(usize::from);
        let lextra = le16(d, local + 28).map(usize::from);
        let (Some(lname), Some(lextra)) = (lname, lextra) else {
            return Err(PickleError::truncated(
                origin,
                local,
                format!("zip local header of '{name}'"),
                30,
                d.len() - local,
            ));
        };
        let off = local + 30 + lname + lextra;
        let len = usize::try_from(usize_).map_err(|_| bad(p, "entry size overflows".into()))?;
        if off.checked_add(len).is_none_or(|e| e > d.len()) {
            return Err(PickleError::truncated(
                origin,
                off,
                format!("zip entry '{name}'"),
                len as u64,
                d.len().saturating_sub(off),
            ));
        }
        entries.insert(name, Entry { off, len, crc });
    }
    Ok(entries)
}

impl TorchCheckpoint {
    /// Parses a checkpoint held in memory (zip or legacy format). `origin` names it in errors.
    pub fn from_bytes(data: Vec<u8>, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        if looks_like_legacy_stream(&data) {
            let stream = parse_legacy_stream(&origin, &data, 0, data.len())?;
            return Ok(TorchCheckpoint {
                origin,
                data,
                backing: Backing::Legacy {
                    storages: stream.storages,
                },
                heap: stream.heap,
                root: stream.root,
            });
        }
        if !data.starts_with(b"PK\x03\x04") {
            if data.first() == Some(&0x80) {
                return Err(PickleError::structure(
                    &origin,
                    "this is a plain pickle (a network pickle?), not a torch.save checkpoint",
                ));
            }
            return Err(PickleError::structure(
                &origin,
                "not a torch.save checkpoint (neither a zip archive nor a legacy torch.save stream)",
            ));
        }
        let all = read_directory(&origin, &data)?;
        // The pickle is `<prefix>/data.pkl`; the prefix is the archive's single top folder.
        let pkl_name = all
            .keys()
            .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .min()
            .cloned()
            .ok_or_else(|| {
                PickleError::structure(
                    &origin,
                    "zip archive has no <name>/data.pkl: not a torch.save checkpoint",
                )
            })?;
        let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
        let entries: HashMap<String, Entry> = all
            .into_iter()
            .filter_map(|(n, e)| n.strip_prefix(&prefix).map(|s| (s.to_string(), e)))
            .collect();
        if let Some(order) = entry_bytes(&origin, &data, &entries, &prefix, "byteorder")? {
            if order != b"little" {
                return Err(PickleError::unsupported(
                    &origin,
                    format!(
                        "storages saved in byte order {:?}",
                        String::from_utf8_lossy(order)
                    ),
                ));
            }
        }
        let pickle = entry_bytes(&origin, &data, &entries, &prefix, "data.pkl")?
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let pkl_origin = format!("{origin}:{prefix}data.pkl");
        let mut heap = Heap::default();
        let (root, _) = vm::run(&pkl_origin, &pickle, 0, pickle.len(), &mut heap)?;
        Ok(TorchCheckpoint {
            origin,
            data,
            backing: Backing::Zip {
                entries,
                prefix,
                pickle,
            },
            heap,
            root,
        })
    }

    /// The name given for this checkpoint in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the file is in the zip format (false: legacy format).
    pub fn is_zip(&self) -> bool {
        matches!(self.backing, Backing::Zip { .. })
    }

    /// The pickle the object graph came from, and its name in messages.
    fn pickle(&self) -> (&[u8], String) {
        match &self.backing {
            Backing::Zip { prefix, pickle, .. } => {
                (pickle, format!("{}:{prefix}data.pkl", self.origin))
            }
            Backing::Legacy { .. } => (&self.data, self.origin.clone()),
        }
    }

    /// The object tree of the checkpoint. Tensors appear as [`PyValue::Tensor`] with their
    /// storage key; read them with [`TorchCheckpoint::tensor`] or
    /// [`TorchCheckpoint::state_dict`].
    pub fn tree(&self) -> Result<PyValue> {
        let (pickle, origin) = self.pickle();
        Converter::new(&self.heap, pickle, &origin)
            .convert(&self.root)
            .map_err(|m| PickleError::structure(&origin, m))
    }

    /// Follows string keys from the root through nested dicts.
    fn lookup(&self, path: &[&str]) -> Result<&Value> {
        let mut v = &self.root;
        for (i, key) in path.iter().enumerate() {
            v = dict_get(&self.heap, v, key).ok_or_else(|| PickleError::Missing {
                origin: self.origin.clone(),
                name: path.get(..=i).unwrap_or(path).join("/"),
                available: dict_pairs(&self.heap, v)
                    .map(|p| {
                        p.iter()
                            .filter_map(|(k, _)| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })?;
        }
        Ok(v)
    }

    /// The state dict found by following `path_in_tree` from the root (e.g. `&["model"]` for
    /// `{'model': OrderedDict(name -> tensor)}`; `&[]` if the root is the state dict): every
    /// tensor in dict order, decoded to C-order little-endian bytes. Entries that are not
    /// tensors are skipped.
    pub fn state_dict(&self, path_in_tree: &[&str]) -> Result<Vec<StateTensor>> {
        let v = self.lookup(path_in_tree)?;
        let pairs = dict_pairs(&self.heap, v).ok_or_else(|| {
            PickleError::structure(
                &self.origin,
                format!(
                    "'{}': {}",
                    path_in_tree.join("/"),
                    describe(&self.heap, v, "a state dict")
                ),
            )
        })?;
        let mut out = Vec::with_capacity(pairs.len());
        let mut bytes_left = decode_budget(self.data.len());
        for (k, t) in pairs {
            let Some(name) = k.as_str() else { continue };
            let Ok(meta) = tensor_meta(&self.heap, t) else {
                continue;
            };
            let t = self.decode(name, &meta)?;
            bytes_left = bytes_left.checked_sub(t.data.len()).ok_or_else(|| {
                PickleError::limit(
                    &self.origin,
                    0,
                    "the state dict would decode to more than twice the file size",
                )
            })?;
            out.push(t);
        }
        Ok(out)
    }

    /// Decodes a tensor of the tree (from [`TorchCheckpoint::tree`]), naming it `name` in the
    /// result and in errors.
    pub fn tensor(&self, name: &str, info: &TensorInfo) -> Result<StateTensor> {
        let key = info
            .storage_key
            .clone()
            .ok_or_else(|| PickleError::tensor(&self.origin, name, "has no storage key"))?;
        let meta = TensorMeta {
            storage: StorageSource::Persistent {
                dtype: info.dtype,
                key,
                numel: 0,
                view: info.storage_view,
            },
            offset: info.storage_offset,
            shape: info.shape.clone(),
            stride: info.stride.clone(),
        };
        self.decode(name, &meta)
    }

    fn decode(&self, name: &str, meta: &TensorMeta) -> Result<StateTensor> {
        let terr = |m: String| PickleError::tensor(&self.origin, name, m);
        let StorageSource::Persistent {
            dtype,
            key,
            numel,
            view,
        } = &meta.storage
        else {
            return Err(terr(
                "has an embedded storage blob, which checkpoints do not use".into(),
            ));
        };
        let es = dtype.size();
        let bytes: &[u8] = match &self.backing {
            Backing::Zip {
                entries, prefix, ..
            } => {
                let entry = format!("data/{key}");
                let bytes = entry_bytes(&self.origin, &self.data, entries, prefix, &entry)?
                    .ok_or_else(|| {
                        terr(format!(
                            "its storage '{prefix}{entry}' is not in the archive"
                        ))
                    })?;
                if (bytes.len() as u64) < numel.saturating_mul(es as u64) {
                    return Err(terr(format!(
                        "storage '{prefix}{entry}' has {} bytes, its header says {numel} elements of {es} bytes",
                        bytes.len()
                    )));
                }
                bytes.get(..bytes.len() - bytes.len() % es).unwrap_or(bytes)
            }
            Backing::Legacy { storages } => {
                let st = resolve_storage(storages, key, *numel, *view).map_err(terr)?;
                if st.dtype != *dtype {
                    return Err(terr(format!(
                        "storage {key:?} is {} but is referred to as {dtype}",
                        st.dtype
                    )));
                }
                st.numel
                    .checked_mul(es)
                    .and_then(|n| self.data.get(st.off..st.off.checked_add(n)?))
                    .ok_or_else(|| terr("storage out of range".into()))?
            }
        };
        let data = gather(bytes, es, meta.offset, &meta.shape, &meta.stride).map_err(terr)?;
        Ok(StateTensor {
            name: name.to_string(),
            dtype: *dtype,
            shape: meta.shape.clone(),
            data,
        })
    }
}

/// An entry's bytes (CRC-checked), or `None` if the archive does not have it.
fn entry_bytes<'d>(
    origin: &str,
    data: &'d [u8],
    entries: &HashMap<String, Entry>,
    prefix: &str,
    name: &str,
) -> Result<Option<&'d [u8]>> {
    let Some(e) = entries.get(name) else {
        return Ok(None);
    };
    let bytes = data
        .get(e.off..e.off + e.len)
        .ok_or_else(|| PickleError::malformed(origin, e.off, "zip entry out of range"))?;
    let crc = crc32fast::hash(bytes);
    if crc != e.crc {
        return Err(PickleError::malformed(
            origin,
            e.off,
            format!(
                "zip entry '{prefix}{name}' is corrupt (CRC-32 {crc:08x}, expected {:08x})",
                e.crc
            ),
        ));
    }
    Ok(Some(bytes))
}
