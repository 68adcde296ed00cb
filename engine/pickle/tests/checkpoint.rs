//! `torch.save` checkpoints written by torch itself (`tests/data/make_checkpoint.py`): the zip
//! format and the legacy format decode to the tensors torch reported (sha256 of their C-order
//! bytes), including views that share a storage, and damaged archives give errors.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use stylegraph_pickle::{read_torch_zip, PickleError, PyValue, StateTensor, TorchCheckpoint};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The state dict torch wrote, as `(sha256, name, dtype, shape)`.
fn expected() -> Vec<(String, String, String, Vec<usize>)> {
    let text = std::fs::read_to_string(data_dir().join("detector-tiny.sha256")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let p: Vec<&str> = l.split("  ").collect();
            let shape: Vec<usize> = serde_json::from_str(p[3]).unwrap();
            (p[0].to_string(), p[1].to_string(), p[2].to_string(), shape)
        })
        .collect()
}

fn assert_state_dict(tensors: &[StateTensor]) {
    let want = expected();
    assert_eq!(want.len(), 17);
    assert_eq!(
        tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        want.iter().map(|w| w.1.as_str()).collect::<Vec<_>>()
    );
    for (t, (sha, name, dtype, shape)) in tensors.iter().zip(&want) {
        assert_eq!(t.dtype.name(), dtype, "{name}");
        assert_eq!(&t.shape, shape, "{name}");
        assert_eq!(&hex_sha256(&t.data), sha, "{name}");
    }
}

fn check(ck: &TorchCheckpoint) {
    let sd = ck.state_dict(&["model"]).unwrap();
    assert_state_dict(&sd);
    // The transposed view is the transpose of its base, read through the shared storage.
    let base = sd.iter().find(|t| t.name == "views.base").unwrap();
    let tr = sd.iter().find(|t| t.name == "views.transposed").unwrap();
    let b = base.to_f32().unwrap();
    let t = tr.to_f32().unwrap();
    for i in 0..5 {
        for j in 0..6 {
            assert_eq!(b[i * 6 + j], t[j * 5 + i]);
        }
    }
    let n = sd
        .iter()
        .find(|t| t.name == "bn1.num_batches_tracked")
        .unwrap();
    assert_eq!(n.data, 1234i64.to_le_bytes());

    let tree = ck.tree().unwrap();
    assert_eq!(tree.get("epoch"), Some(&PyValue::Int(3)));
    assert_eq!(
        tree.get("name").and_then(PyValue::as_str),
        Some("detector-tiny")
    );
    // Tensors in the tree can be decoded on their own.
    let Some(PyValue::Tensor(info)) = tree.get("model").and_then(|m| m.get("views.column")) else {
        panic!("views.column is not a tensor in the tree");
    };
    assert_eq!(info.storage_offset, 3);
    assert_eq!(info.stride, vec![6]);
    let col = ck.tensor("views.column", info).unwrap();
    assert_eq!(&col, sd.iter().find(|t| t.name == "views.column").unwrap());

    match ck.state_dict(&["weights"]) {
        Err(e @ PickleError::Missing { .. }) => {
            assert!(e.to_string().contains("model"), "{e}")
        }
        other => panic!("expected a missing-key error, got {other:?}"),
    }
    assert!(ck.state_dict(&["epoch"]).is_err());
}

#[test]
fn zip_checkpoint() {
    let ck = read_torch_zip(data_dir().join("detector-tiny.pt")).unwrap();
    assert!(ck.is_zip());
    check(&ck);
}

#[test]
fn legacy_checkpoint() {
    let ck = read_torch_zip(data_dir().join("detector-tiny-legacy.pt")).unwrap();
    assert!(!ck.is_zip());
    check(&ck);
}

#[test]
fn truncated_zip_is_an_error() {
    let data = std::fs::read(data_dir().join("detector-tiny.pt")).unwrap();
    for cut in [
        0,
        3,
        4,
        100,
        data.len() / 2,
        data.len() - 23,
        data.len() - 1,
    ] {
        let r = TorchCheckpoint::from_bytes(data[..cut].to_vec(), "cut.pt");
        let e = r
            .err()
            .unwrap_or_else(|| panic!("cut at {cut} was accepted"));
        assert!(e.to_string().starts_with("cut.pt"), "{e}");
    }
    // A directory that claims more entries than it can hold.
    let eocd = data.len() - 22;
    let mut d = data.clone();
    d[eocd + 10..eocd + 12].copy_from_slice(&0xfffeu16.to_le_bytes());
    let e = TorchCheckpoint::from_bytes(d, "many.pt")
        .unwrap_err()
        .to_string();
    assert!(e.contains("entries"), "{e}");
    // torch also writes a zip64 end record; the reader follows it when the classic record
    // is saturated, and checks the sizes found there.
    let rec = data.windows(4).rposition(|w| w == b"PK\x06\x06").unwrap();
    let mut d = data.clone();
    d[eocd + 12..eocd + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(TorchCheckpoint::from_bytes(d.clone(), "zip64.pt").is_ok());
    d[rec + 40..rec + 48].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = TorchCheckpoint::from_bytes(d, "zip64.pt")
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated zip central directory"), "{e}");
}

#[test]
fn corrupt_storage_fails_its_crc() {
    let data = std::fs::read(data_dir().join("detector-tiny.pt")).unwrap();
    // Flip a byte inside the first storage (conv1.weight, data/0): found by its local header.
    let name = b"detector-tiny/data/0";
    let at = data
        .windows(name.len())
        .position(|w| w == name)
        .expect("entry name");
    let mut d = data.clone();
    let extra = u16::from_le_bytes([d[at - 2], d[at - 1]]) as usize;
    let payload = at + name.len() + extra;
    d[payload + 10] ^= 0x40;
    let ck = TorchCheckpoint::from_bytes(d, "flip.pt").unwrap();
    let e = ck.state_dict(&["model"]).unwrap_err().to_string();
    assert!(e.contains("CRC-32") && e.contains("data/0"), "{e}");
}

#[test]
fn network_pickle_is_not_a_checkpoint() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/stylegan3-t-tiny-16-G_ema-protocol3.pkl");
    let e = read_torch_zip(p).unwrap_err().to_string();
    assert!(e.contains("not a torch.save checkpoint"), "{e}");
}
