//! Hand-made pickles that are valid but hostile: reference cycles, deep nesting, one storage
//! shared by many tensors, strided views, a TensorFlow-era pickle. Each must give a clear
//! result (the right tensors, or an error naming the problem) instead of a crash or an
//! unbounded allocation.

use stylegraph_pickle::{NetworkPickle, PickleError, TensorDType};

/// A tiny pickle writer (protocol 2 opcodes).
#[derive(Default)]
struct P(Vec<u8>);

impl P {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn s(&mut self, text: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }
    fn int(&mut self, v: u16) -> &mut Self {
        self.0.push(b'M');
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn put(&mut self, k: u8) -> &mut Self {
        self.op(&[b'q', k])
    }
    fn get(&mut self, k: u8) -> &mut Self {
        self.op(&[b'h', k])
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.push(b'B');
        self.0.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
}

/// A legacy `torch.save` stream of one float32 storage holding `values`.
fn legacy_blob(values: &[f32]) -> Vec<u8> {
    let mut p = P::default();
    p.op(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    p.op(b"\x80\x02").int(1001).op(b".");
    p.op(b"\x80\x02}(").s("little_endian").op(b"\x88u.");
    p.op(b"\x80\x02(")
        .s("storage")
        .global("torch", "FloatStorage");
    p.s("0")
        .s("cpu")
        .int(values.len() as u16)
        .op(b"Nt")
        .op(b"Q.");
    p.op(b"\x80\x02]").s("0").op(b"a.");
    let mut out = p.0;
    out.extend_from_slice(&(values.len() as i64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Starts `{'G': _reconstruct_persistent_obj({'type': 'class', 'class_name': 'Net',
/// 'state': {...` and leaves the state dict's MARK open. Memo: 1 = the persistence function.
fn begin_network(p: &mut P) {
    p.op(b"\x80\x02}").s("G");
    p.global("torch_utils.persistence", "_reconstruct_persistent_obj")
        .put(1);
    p.op(b"}(")
        .s("type")
        .s("class")
        .s("class_name")
        .s("Net")
        .s("state");
    p.op(b"}(");
}

/// Closes what [`begin_network`] opened and stores the object as 'G'.
fn end_network(p: &mut P) {
    p.op(b"u").op(b"u").op(b"\x85R").op(b"s.");
}

/// A tensor `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` where
/// the storage is memo entry `storage`.
fn tensor(p: &mut P, storage: u8, offset: u16, size: &[u16], stride: &[u16]) {
    p.global("torch._utils", "_rebuild_tensor_v2")
        .op(b"(")
        .get(storage)
        .int(offset);
    p.op(b"(");
    for &d in size {
        p.int(d);
    }
    p.op(b"t(");
    for &s in stride {
        p.int(s);
    }
    p.op(b"t\x89")
        .global("collections", "OrderedDict")
        .op(b")R")
        .op(b"tR");
}

fn storage(p: &mut P, values: &[f32], memo: u8) {
    p.global("torch.storage", "_load_from_bytes")
        .bytes(&legacy_blob(values))
        .op(b"\x85R")
        .put(memo);
    p.op(b"0");
}

#[test]
fn views_of_one_storage() {
    let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let mut p = P::default();
    begin_network(&mut p);
    p.s("_parameters").op(b"}(");
    p.s("base");
    storage(&mut p, &values, 9);
    // The storage was put in the memo and popped; build tensors from memo 9.
    tensor(&mut p, 9, 0, &[3, 4], &[4, 1]);
    p.s("transposed");
    tensor(&mut p, 9, 0, &[4, 3], &[1, 4]);
    p.s("row");
    tensor(&mut p, 9, 8, &[4], &[1]);
    p.s("column");
    tensor(&mut p, 9, 1, &[3], &[4]);
    p.op(b"u");
    p.s("_buffers").op(b"}(").s("none").op(b"Nu");
    end_network(&mut p);

    let pk = NetworkPickle::from_bytes(p.0, "views.pkl").unwrap();
    let net = pk.network("G").unwrap();
    let names: Vec<&str> = net.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["base", "transposed", "row", "column"]);
    let f = |name: &str| net.tensor_f32(name).unwrap();
    assert_eq!(f("base"), (vec![3, 4], values.clone()));
    assert_eq!(
        f("transposed").1,
        [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
    );
    assert_eq!(f("row").1, [8., 9., 10., 11.]);
    assert_eq!(f("column").1, [1., 5., 9.]);
    assert_eq!(net.tensors[0].dtype, TensorDType::F32);
    assert_eq!(net.class_name, "Net");
}

#[test]
fn view_outside_its_storage_is_refused() {
    let mut p = P::default();
    begin_network(&mut p);
    p.s("_parameters").op(b"}(").s("w");
    storage(&mut p, &[1.0, 2.0, 3.0], 9);
    tensor(&mut p, 9, 1, &[3], &[1]);
    p.op(b"u");
    end_network(&mut p);
    let pk = NetworkPickle::from_bytes(p.0, "oob.pkl").unwrap();
    match pk.network("G") {
        Err(e @ PickleError::Tensor { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("'w'") && m.contains("storage of 3 elements"),
                "{m}"
            );
            assert!(m.contains("tensor pickled at byte "), "{m}");
        }
        other => panic!("expected a tensor error, got {other:?}"),
    }
}

#[test]
fn one_storage_behind_many_tensors_is_bounded() {
    // 1 MiB of storage referred to by 100 tensors would decode to 100 MiB: refused.
    let values = vec![0.5f32; 1 << 18];
    let build = |count: usize| {
        let mut p = P::default();
        begin_network(&mut p);
        p.s("_parameters").op(b"}(");
        storage(&mut p, &values, 9);
        tensor(&mut p, 9, 0, &[512, 512], &[512, 1]);
        p.put(10).op(b"0");
        for i in 0..count {
            p.s(&format!("w{i}")).get(10);
        }
        p.op(b"u");
        end_network(&mut p);
        p.0
    };
    let few = NetworkPickle::from_bytes(build(4), "few.pkl").unwrap();
    let net = few.network("G").unwrap();
    assert_eq!(net.tensors.len(), 4);
    assert!(net.tensors.iter().all(|t| t.data == net.tensors[0].data));
    let many = NetworkPickle::from_bytes(build(100), "many.pkl").unwrap();
    match many.network("G") {
        Err(e @ PickleError::Limit { .. }) => {
            assert!(e.to_string().contains("twice the file size"), "{e}")
        }
        other => panic!(
            "expected a limit error, got {:?}",
            other.map(|n| n.tensors.len())
        ),
    }
}

#[test]
fn module_that_contains_itself() {
    let mut p = P::default();
    begin_network(&mut p);
    p.s("_parameters").op(b"}");
    p.s("_modules").op(b"}").put(3);
    end_network(&mut p);
    // Re-open: replace the final "s." by storing the object, adding it to its own _modules.
    let mut bytes = p.0;
    bytes.truncate(bytes.len() - 2);
    let mut p = P(bytes);
    p.put(4).get(3).s("self").get(4).op(b"s0").op(b"s.");
    let pk = NetworkPickle::from_bytes(p.0, "cycle.pkl").unwrap();
    assert_eq!(pk.networks(), ["G"]);
    let e = pk.network("G").unwrap_err().to_string();
    assert!(e.contains("nested deeper than"), "{e}");
}

#[test]
fn deeply_nested_kwargs() {
    let mut p = P::default();
    begin_network(&mut p);
    p.s("_parameters").op(b"}");
    p.s("_init_kwargs").op(b"}").s("deep");
    p.op(&[b']'; 300]).op(&[b'a'; 299]);
    p.op(b"s");
    p.s("attribute");
    p.op(&[b']'; 300]).op(&[b'a'; 299]);
    end_network(&mut p);
    let pk = NetworkPickle::from_bytes(p.0, "deep.pkl").unwrap();
    let e = pk.network("G").unwrap_err().to_string();
    assert!(
        e.contains("_init_kwargs") && e.contains("nested deeper"),
        "{e}"
    );
}

#[test]
fn tensorflow_pickle_is_explained() {
    let mut p = P::default();
    p.op(b"\x80\x02")
        .global("dnnlib.tflib.network", "Network")
        .put(1);
    p.op(b")\x81")
        .get(1)
        .op(b")\x81")
        .get(1)
        .op(b")\x81")
        .op(b"\x87.");
    let e = NetworkPickle::from_bytes(p.0, "tf.pkl").unwrap_err();
    assert!(matches!(e, PickleError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("TensorFlow"), "{e}");
}

#[test]
fn memo_key_far_away_is_a_limit() {
    // LONG_BINPUT 16M on a tiny file: the memo would need 16M slots.
    let e = NetworkPickle::from_bytes(b"\x80\x02N\x72\x00\x00\x00\x01.".to_vec(), "memo.pkl")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("limit exceeded") || e.contains("memo key"),
        "{e}"
    );
    let e = NetworkPickle::from_bytes(b"\x80\x02N\x72\x00\x00\x10\x00.".to_vec(), "memo.pkl")
        .unwrap_err()
        .to_string();
    assert!(e.contains("limit exceeded"), "{e}");
}
