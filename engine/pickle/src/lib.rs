//! Safe, pure-Rust reader for StyleGAN2/3 network pickles and `torch.save` zip checkpoints.
//!
//! # What it reads
//! * **Network pickles** in the official training-snapshot format of NVIDIA's
//!   `stylegan2-ada-pytorch` / `stylegan3` (a dict with `G`, `D`, `G_ema`, ...; every network
//!   written by `torch_utils.persistence`, tensors embedded as legacy `torch.save` blobs):
//!   [`read_network_pickle`] / [`NetworkPickle::from_bytes`], then
//!   [`NetworkPickle::network`] gives a [`Network`] with its class name, constructor
//!   arguments as JSON and every tensor in exact state-dict order. Pickle protocols 2 to 5
//!   (the released StyleGAN2-ADA files are protocol 3, newer snapshots protocol 4), old
//!   (`OrderedDict`, `numpy.core`) and new (`dict`, `numpy._core`) layouts.
//! * **Checkpoints** written by `torch.save`: the zip format of torch >= 1.6
//!   (`<name>/data.pkl` plus `<name>/data/<key>` storages) and the legacy format before it.
//!   [`read_torch_zip`] gives a [`TorchCheckpoint`] with the object tree
//!   ([`TorchCheckpoint::tree`]) and [`TorchCheckpoint::state_dict`], which decodes e.g.
//!   `{'model': OrderedDict(name -> tensor)}`.
//!
//! # Safety model
//! Python's unpickler runs arbitrary code: it imports every global a file names and calls
//! whatever REDUCE asks for. This crate never does. Its pickle machine builds an inert object
//! graph in which a global is just a `(module, name)` pair and a call is a record of callable
//! and arguments. Afterwards only a fixed list of callables is *interpreted* (their recorded
//! arguments are read as data): `torch_utils.persistence._reconstruct_persistent_obj`,
//! `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`, `torch.storage._load_from_bytes`,
//! `collections.OrderedDict`, `dnnlib.util.EasyDict`, NumPy's `_reconstruct` / `scalar` /
//! `dtype` (under both `numpy.core` and `numpy._core`) and `builtins.set` / `frozenset`.
//! Anything else stays an opaque [`PyValue::Object`]. The Python source embedded in network
//! pickles (`module_src`) is never looked at.
//!
//! Against malformed or hostile files:
//! * every length in the data is checked against the bytes that remain before anything is
//!   read or allocated, and byte strings (tensor blobs) are kept as ranges of the input;
//! * the machine has no recursion; what it allocates is charged to a budget of 8 MiB plus the
//!   input size, and the memo and the MARK stack have fixed limits;
//! * conversions of the graph (module walk, JSON, [`PyValue`] trees) are depth-limited, so
//!   reference cycles and deep nesting give errors, and bounded in the number of objects and
//!   bytes they produce;
//! * tensor views are checked against their storage (offset, sizes, strides), a decoded
//!   tensor is never larger than its stored data, and the tensors of one network or state
//!   dict together never exceed twice the file size plus 64 MiB (storages may be shared);
//! * zip entries are CRC-checked before use.
//!
//! Every error names the file, the byte offset and what was expected
//! (`network-snapshot.pkl: byte 1234: truncated BINUNICODE (needs 400 bytes, 12 left)`).
//!
//! Not supported: TensorFlow-era StyleGAN pickles (convert them with NVIDIA's `legacy.py`),
//! compressed zip entries, big-endian storages, the copyreg extension opcodes, and the
//! protocol-0 `STRING` / `UNICODE` / `INST` / `OBJ` opcodes that neither torch nor the
//! StyleGAN code emits.

mod checkpoint;
mod error;
mod interp;
mod network;
mod torch;
mod vm;

pub use checkpoint::{read_torch_zip, TorchCheckpoint};
pub use error::{PickleError, Result};
pub use interp::{to_json, NdArray, PyValue, TensorInfo};
pub use network::{read_network_pickle, ModuleInfo, Network, NetworkPickle, StateTensor};
pub use torch::TensorDType;
