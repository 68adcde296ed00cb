//! Any input: parsing and decoding every network must return (Ok or Err), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stylegraph_pickle::NetworkPickle;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = NetworkPickle::from_bytes(data.to_vec(), "fuzz.pkl") {
        for name in p.networks() {
            let _ = p.network(name);
        }
        for key in p.keys() {
            let _ = p.value(key);
        }
    }
});
