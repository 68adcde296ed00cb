//! Any input: reading a checkpoint, its tree and its state dict must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stylegraph_pickle::TorchCheckpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(ck) = TorchCheckpoint::from_bytes(data.to_vec(), "fuzz.pt") {
        let _ = ck.tree();
        let _ = ck.state_dict(&["model"]);
        let _ = ck.state_dict(&[]);
    }
});
