//! A small pickle virtual machine that builds an inert object graph.
//!
//! Nothing named in the pickle is ever looked up or executed: a global becomes a
//! [`Node::Global`] naming it, calling it (REDUCE / NEWOBJ / NEWOBJ_EX) becomes a
//! [`Node::Object`] that records the callable and its arguments, and BUILD / SETITEM(S) /
//! APPEND(S) / ADDITEMS on such an object are recorded on it. Interpreting the graph is the job
//! of `interp`.
//!
//! Containers live in an arena ([`Heap`]) and are referred to by index, so shared and even
//! cyclic references (which pickles can express through the memo) cost nothing and cannot leak.
//! The machine is a loop without recursion. Every length read from the data is checked against
//! the bytes that remain before anything is allocated, `bytes` values are kept as ranges of the
//! input (never copied), and everything the machine allocates is charged to a budget that grows
//! with the input size, so a crafted file cannot make it use more than a small multiple of its
//! own size. The MARK stack and the memo have their own limits too.

use std::sync::Arc;

use crate::error::PickleError;

/// Highest pickle protocol this reader understands.
const HIGHEST_PROTOCOL: u8 = 5;
/// Most MARKs open at once (the nesting depth of MARK-delimited containers).
const MAX_MARKS: usize = 1 << 16;
/// Highest memo key + 1 (memo keys index a vector; the budget is charged for every slot).
const MAX_MEMO: usize = 1 << 24;
/// Longest text line (arguments of the protocol-0 opcodes GLOBAL, INT, PUT, ...).
const MAX_LINE: usize = 1 << 16;
/// Memory every pickle may use for its bookkeeping whatever its size, in bytes.
const BASE_BUDGET: usize = 8 << 20;

/// Approximate cost of one value, in bytes (what the budget charges).
const VALUE_COST: usize = std::mem::size_of::<Value>();
/// Approximate cost of one heap node (with its offset).
const NODE_COST: usize = std::mem::size_of::<Node>() + std::mem::size_of::<usize>() + 16;
/// Cost of one memo slot.
const MEMO_COST: usize = std::mem::size_of::<Option<Value>>();

/// Index of a node in the [`Heap`].
pub(crate) type NodeId = usize;

/// A value on the pickle stack, in the memo, or inside a container. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64: little-endian two's complement bytes as pickled.
    BigInt(Arc<[u8]>),
    Float(f64),
    Str(Arc<str>),
    /// `bytes` / `bytearray`: a range of the input data (absolute offsets).
    Bytes {
        off: usize,
        len: usize,
    },
    /// A container, global, object or persistent id in the heap.
    Ref(NodeId),
}

impl Value {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// The (never performed) call of `func` with `args`, plus whatever was done to the result.
#[derive(Debug)]
pub(crate) struct Object {
    pub func: Value,
    pub args: Value,
    pub kwargs: Option<Value>,
    /// Argument of BUILD (`__setstate__` / `__dict__` update).
    pub state: Option<Value>,
    /// Pairs added with SETITEM(S) (dict subclasses such as OrderedDict / EasyDict).
    pub items: Vec<(Value, Value)>,
    /// Values added with APPEND(S) / ADDITEMS (list or set subclasses).
    pub list_items: Vec<Value>,
}

/// A heap node.
#[derive(Debug)]
pub(crate) enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Pairs in insertion order. A key may repeat; readers resolve that (last value wins).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    Global {
        module: Arc<str>,
        name: Arc<str>,
    },
    Object(Box<Object>),
    /// A persistent id (BINPERSID / PERSID), left for the caller to resolve.
    PersId(Value),
}

/// Arena of the nodes created while reading a pickle.
#[derive(Debug, Default)]
pub(crate) struct Heap {
    nodes: Vec<Node>,
    /// Offset in the input of the opcode that created each node (for messages).
    offsets: Vec<usize>,
}

impl Heap {
    /// All nodes, in creation order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// The node a value refers to, if it is a reference.
    pub(crate) fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Ref(id) => self.nodes.get(*id),
            _ => None,
        }
    }

    /// Where in the input a referenced node was created.
    pub(crate) fn offset(&self, v: &Value) -> Option<usize> {
        match v {
            Value::Ref(id) => self.offsets.get(*id).copied(),
            _ => None,
        }
    }

    fn alloc(&mut self, node: Node, offset: usize) -> Value {
        self.nodes.push(node);
        self.offsets.push(offset);
        Value::Ref(self.nodes.len() - 1)
    }
}

/// Name of an opcode byte, for messages.
pub(crate) fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "?",
    }
}

/// Runs the pickle that starts at `data[start]` and ends before `end`, up to its STOP opcode.
///
/// Returns the unpickled (inert) value and the offset just after STOP. Nodes are added to
/// `heap`; the memo is private to this pickle, as in Python. `origin` names the input in
/// errors. The budget for the machine's bookkeeping is [`BASE_BUDGET`] plus `end - start`.
pub(crate) fn run(
    origin: &str,
    data: &[u8],
    start: usize,
    end: usize,
    heap: &mut Heap,
) -> Result<(Value, usize), PickleError> {
    let end = end.min(data.len());
    let start = start.min(end);
    let mut m = Machine {
        origin,
        data,
        pos: start,
        end,
        heap,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
        memo_len: 0,
        op_off: start,
        op: 0,
        used: 0,
        budget: BASE_BUDGET.saturating_add(end - start),
    };
    m.run()
}

struct Machine<'a, 'h> {
    origin: &'a str,
    data: &'a [u8],
    pos: usize,
    end: usize,
    heap: &'h mut Heap,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    /// The memo, indexed by key (keys are small and nearly dense in practice).
    memo: Vec<Option<Value>>,
    /// Number of defined memo entries (MEMOIZE uses it as the next key, like Python).
    memo_len: usize,
    /// Offset and byte of the opcode being executed (for messages).
    op_off: usize,
    op: u8,
    /// Bytes charged so far, and the most that may be charged.
    used: usize,
    budget: usize,
}

impl<'a> Machine<'a, '_> {
    fn err(&self, message: impl std::fmt::Display) -> PickleError {
        PickleError::malformed(
            self.origin,
            self.op_off,
            format!("{}: {message}", opcode_name(self.op)),
        )
    }

    fn limit(&self, message: impl Into<String>) -> PickleError {
        PickleError::limit(self.origin, self.op_off, message)
    }

    fn charge(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.budget {
            return Err(self.limit(format!(
                "the pickle needs more than {} MiB of bookkeeping for {} bytes of input",
                self.budget >> 20,
                self.end
            )));
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Takes `n` bytes of operand, or reports truncation.
    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let left = self.remaining();
        if n > left as u64 {
            return Err(PickleError::truncated(
                self.origin,
                self.op_off,
                opcode_name(self.op),
                n,
                left,
            ));
        }
        let start = self.pos;
        // n <= left, so this is within data[..end].
        self.pos += n as usize;
        self.data
            .get(start..self.pos)
            .ok_or_else(|| self.err("operand out of range"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let b = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, PickleError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length operand that Python reads as a signed 32-bit integer.
    fn len_i32(&mut self) -> Result<u64, PickleError> {
        let n = self.i32()?;
        u64::try_from(n).map_err(|_| self.err(format!("negative length {n}")))
    }

    /// A text line (without its '\n'), for protocol-0 opcodes.
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = self.data.get(self.pos..self.end).unwrap_or(&[]);
        let window = &rest[..rest.len().min(MAX_LINE)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE {
                return Err(self.err("text argument longer than 64 KiB"));
            }
            return Err(PickleError::truncated(
                self.origin,
                self.op_off,
                format!("{} (no end of line)", opcode_name(self.op)),
                rest.len() as u64 + 1,
                rest.len(),
            ));
        };
        self.pos += nl + 1;
        let line = &window[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        std::str::from_utf8(line).map_err(|_| self.err("text argument is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        self.charge(VALUE_COST)?;
        self.stack.push(v);
        Ok(())
    }

    fn alloc(&mut self, node: Node) -> Result<Value, PickleError> {
        self.charge(NODE_COST)?;
        Ok(self.heap.alloc(node, self.op_off))
    }

    fn alloc_push(&mut self, node: Node) -> Result<(), PickleError> {
        let v = self.alloc(node)?;
        self.push(v)
    }

    /// Lowest stack index the current MARK frame may touch.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<Value, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        self.stack
            .last()
            .cloned()
            .ok_or_else(|| self.err("stack underflow"))
    }

    /// Pops everything above the most recent MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("no MARK on the stack"));
        };
        let m = m.min(self.stack.len());
        Ok(self.stack.split_off(m))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, PickleError> {
        if self.stack.len() < self.floor() + n {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn memo_put(&mut self, key: u32, v: Value) -> Result<(), PickleError> {
        let k = key as usize;
        if k >= MAX_MEMO {
            return Err(self.limit(format!("memo key {key} is above {MAX_MEMO}")));
        }
        if k >= self.memo.len() {
            self.charge((k + 1 - self.memo.len()) * MEMO_COST)?;
            self.memo.resize(k + 1, None);
        }
        if let Some(slot) = self.memo.get_mut(k) {
            if slot.replace(v).is_none() {
                self.memo_len += 1;
            }
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(key as usize).and_then(Option::as_ref) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => Err(self.err(format!("memo entry {key} is not defined"))),
        }
    }

    fn string(&mut self, bytes: &[u8]) -> Result<Value, PickleError> {
        self.charge(bytes.len())?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(Arc::from(s))),
            Err(e) => Err(self.err(format!("string is not valid UTF-8 ({e})"))),
        }
    }

    /// Python 2 `str` (BINSTRING / SHORT_BINSTRING), decoded as Latin-1 like `encoding='latin1'`.
    fn latin1(&mut self, bytes: &[u8]) -> Result<Value, PickleError> {
        self.charge(bytes.len() * 2)?;
        let s: String = bytes.iter().map(|&b| char::from(b)).collect();
        Ok(Value::Str(Arc::from(s)))
    }

    /// LONG1 / LONG4 payload: little-endian two's complement of any length.
    fn long_from_le(&mut self, b: &[u8]) -> Result<Value, PickleError> {
        if b.is_empty() {
            return Ok(Value::Int(0));
        }
        // Drop redundant sign-extension bytes, then see whether 8 bytes suffice.
        let negative = b[b.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xff } else { 0x00 };
        let mut n = b.len();
        while n > 1 && b[n - 1] == fill && (b[n - 2] & 0x80 != 0) == negative {
            n -= 1;
        }
        if n <= 8 {
            let mut a = [fill; 8];
            a[..n].copy_from_slice(&b[..n]);
            return Ok(Value::Int(i64::from_le_bytes(a)));
        }
        self.charge(n)?;
        Ok(Value::BigInt(Arc::from(&b[..n])))
    }

    /// Argument of the text opcodes INT and LONG.
    fn text_int(&self, s: &str) -> Result<Value, PickleError> {
        // Protocol 0 writes booleans as INT "00" / "01".
        match s {
            "00" => return Ok(Value::Bool(false)),
            "01" => return Ok(Value::Bool(true)),
            _ => {}
        }
        let t = s.trim().trim_end_matches('L');
        t.parse::<i64>()
            .map(Value::Int)
            .map_err(|_| self.err(format!("integer {s:?} is not a 64-bit integer")))
    }

    fn target_id(&self, target: &Value, expected: &str) -> Result<NodeId, PickleError> {
        match target {
            Value::Ref(id) => Ok(*id),
            _ => Err(self.err(format!("target is not a {expected}"))),
        }
    }

    fn set_items(&mut self, target: &Value, flat: Vec<Value>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        self.charge(flat.len() * VALUE_COST)?;
        let id = self.target_id(target, "dict")?;
        let mut it = flat.into_iter();
        let mut pairs = Vec::with_capacity(it.len() / 2);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match self.heap.nodes.get_mut(id) {
            Some(Node::Dict(d)) => d.extend(pairs),
            Some(Node::Object(o)) => o.items.extend(pairs),
            _ => return Err(self.err("target is not a dict")),
        }
        Ok(())
    }

    fn append_items(&mut self, target: &Value, values: Vec<Value>) -> Result<(), PickleError> {
        self.charge(values.len() * VALUE_COST)?;
        let id = self.target_id(target, "list")?;
        match self.heap.nodes.get_mut(id) {
            Some(Node::List(l)) => l.extend(values),
            Some(Node::Object(o)) => o.list_items.extend(values),
            _ => return Err(self.err("target is not a list")),
        }
        Ok(())
    }

    fn add_items(&mut self, target: &Value, values: Vec<Value>) -> Result<(), PickleError> {
        self.charge(values.len() * VALUE_COST)?;
        let id = self.target_id(target, "set")?;
        match self.heap.nodes.get_mut(id) {
            Some(Node::Set(l)) => l.extend(values),
            Some(Node::Object(o)) => o.list_items.extend(values),
            _ => return Err(self.err("target is not a set")),
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        self.charge(module.len() + name.len())?;
        self.alloc_push(Node::Global {
            module: Arc::from(module),
            name: Arc::from(name),
        })
    }

    fn object(
        &mut self,
        func: Value,
        args: Value,
        kwargs: Option<Value>,
    ) -> Result<(), PickleError> {
        self.charge(std::mem::size_of::<Object>())?;
        self.alloc_push(Node::Object(Box::new(Object {
            func,
            args,
            kwargs,
            state: None,
            items: Vec::new(),
            list_items: Vec::new(),
        })))
    }

    fn container(
        &mut self,
        items: Vec<Value>,
        make: fn(Vec<Value>) -> Node,
    ) -> Result<(), PickleError> {
        self.charge(items.len() * VALUE_COST)?;
        self.alloc_push(make(items))
    }

    fn run(&mut self) -> Result<(Value, usize), PickleError> {
        loop {
            self.op_off = self.pos;
            let Some(&op) = self.data.get(self.pos).filter(|_| self.pos < self.end) else {
                return Err(PickleError::truncated(
                    self.origin,
                    self.pos,
                    "pickle (no STOP opcode)",
                    1,
                    0,
                ));
            };
            self.op = op;
            self.pos += 1;
            match op {
                // --- framing and control
                0x80 => {
                    let proto = self.u8()?;
                    if proto > HIGHEST_PROTOCOL {
                        return Err(self.err(format!(
                            "pickle protocol {proto} is newer than {HIGHEST_PROTOCOL}"
                        )));
                    }
                }
                0x95 => {
                    // Frames only group opcodes for buffered reading; the whole input is in
                    // memory, so just check that the frame is complete.
                    let n = self.u64()?;
                    if n > self.remaining() as u64 {
                        return Err(PickleError::truncated(
                            self.origin,
                            self.op_off,
                            "FRAME",
                            n,
                            self.remaining(),
                        ));
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.limit(format!("more than {MAX_MARKS} open MARKs")));
                    }
                    self.charge(VALUE_COST)?;
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP discards the top item, or the MARK if nothing is above it.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?;
                    self.push(v)?;
                }

                // --- scalars
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.i32()?;
                    self.push(Value::Int(i64::from(v)))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(i64::from(v)))?
                }
                0x8a => {
                    let n = self.u8()?;
                    let b = self.take(u64::from(n))?;
                    let v = self.long_from_le(b)?;
                    self.push(v)?
                }
                0x8b => {
                    let n = self.len_i32()?;
                    let b = self.take(n)?;
                    let v = self.long_from_le(b)?;
                    self.push(v)?
                }
                b'I' | b'L' => {
                    let s = self.line()?;
                    let v = self.text_int(s)?;
                    self.push(v)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let s = self.line()?;
                    let v: f64 = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("cannot read float {s:?}")))?;
                    self.push(Value::Float(v))?
                }

                // --- strings and bytes
                b'X' => {
                    let n = self.u32()?;
                    let b = self.take(u64::from(n))?;
                    let v = self.string(b)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()?;
                    let b = self.take(u64::from(n))?;
                    let v = self.string(b)?;
                    self.push(v)?
                }
                0x8d => {
                    let n = self.u64()?;
                    let b = self.take(n)?;
                    let v = self.string(b)?;
                    self.push(v)?
                }
                b'T' => {
                    let n = self.len_i32()?;
                    let b = self.take(n)?;
                    let v = self.latin1(b)?;
                    self.push(v)?
                }
                b'U' => {
                    let n = self.u8()?;
                    let b = self.take(u64::from(n))?;
                    let v = self.latin1(b)?;
                    self.push(v)?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u64::from(self.u32()?),
                        b'C' => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let off = self.pos;
                    let len = self.take(n)?.len();
                    self.push(Value::Bytes { off, len })?
                }

                // --- containers
                b'}' => self.alloc_push(Node::Dict(Vec::new()))?,
                b']' => self.alloc_push(Node::List(Vec::new()))?,
                b')' => self.alloc_push(Node::Tuple(Vec::new()))?,
                0x8f => self.alloc_push(Node::Set(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::Dict(Vec::new()))?;
                    self.set_items(&v, items)?;
                    self.push(v)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.container(items, Node::List)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.container(items, Node::Tuple)?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let items = self.pop_n(n)?;
                    self.container(items, Node::Tuple)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.container(items, Node::FrozenSet)?
                }
                b's' => {
                    let kv = self.pop_n(2)?;
                    let target = self.top()?;
                    self.set_items(&target, kv)?
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let target = self.top()?;
                    self.set_items(&target, kv)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?;
                    self.append_items(&target, vec![v])?
                }
                b'e' => {
                    let vs = self.pop_mark()?;
                    let target = self.top()?;
                    self.append_items(&target, vs)?
                }
                0x90 => {
                    let vs = self.pop_mark()?;
                    let target = self.top()?;
                    self.add_items(&target, vs)?
                }

                // --- memo
                0x94 => {
                    let v = self.top()?;
                    let k = u32::try_from(self.memo_len)
                        .map_err(|_| self.limit("memo key overflow"))?;
                    self.memo_put(k, v)?
                }
                b'q' => {
                    let k = u32::from(self.u8()?);
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'r' => {
                    let k = self.u32()?;
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'p' => {
                    let s = self.line()?;
                    let k: u32 = s
                        .parse()
                        .map_err(|_| self.err(format!("bad memo key {s:?}")))?;
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'h' => {
                    let k = u32::from(self.u8()?);
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'g' => {
                    let s = self.line()?;
                    let k: u32 = s
                        .parse()
                        .map_err(|_| self.err(format!("bad memo key {s:?}")))?;
                    self.memo_get(k)?
                }

                // --- globals, calls, objects
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(self.err("module and name must be strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.object(func, args, None)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(cls, args, None)?
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(cls, args, Some(kwargs))?
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let id = self.target_id(&target, "object")?;
                    match self.heap.nodes.get_mut(id) {
                        Some(Node::Object(o)) => o.state = Some(state),
                        _ => return Err(self.err("BUILD target is not an object")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.alloc_push(Node::PersId(pid))?
                }
                b'P' => {
                    let s = self.line()?;
                    let pid = self.string(s.as_bytes())?;
                    self.alloc_push(Node::PersId(pid))?
                }
                0x82..=0x84 | b'i' | b'o' | b'S' | b'V' | 0x97 | 0x98 => {
                    return Err(PickleError::unsupported(
                        self.origin,
                        format!(
                            "pickle opcode {} at byte {} (not used by torch or StyleGAN pickles)",
                            opcode_name(op),
                            self.op_off
                        ),
                    ))
                }
                byte => {
                    return Err(PickleError::UnknownOpcode {
                        origin: self.origin.to_string(),
                        offset: self.op_off as u64,
                        byte,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_all(data: &[u8]) -> Result<(Heap, Value), PickleError> {
        let mut heap = Heap::default();
        let (v, end) = run("t.pkl", data, 0, data.len(), &mut heap)?;
        assert_eq!(end, data.len());
        Ok((heap, v))
    }

    #[test]
    fn scalars_and_longs() {
        // LONG1 with 2^63 needs 9 bytes and stays a big int; -1 in two bytes shrinks to Int.
        let (_, v) = run_all(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.").unwrap();
        assert!(matches!(v, Value::BigInt(ref b) if b.len() == 9));
        let (_, v) = run_all(b"\x8a\x02\xff\xff.").unwrap();
        assert!(matches!(v, Value::Int(-1)));
        let (_, v) = run_all(b"\x8a\x02\x00\x80.").unwrap();
        assert!(matches!(v, Value::Int(-32768)));
        let (_, v) = run_all(b"\x8a\x00.").unwrap();
        assert!(matches!(v, Value::Int(0)));
        let (_, v) = run_all(b"J\xfe\xff\xff\xff.").unwrap();
        assert!(matches!(v, Value::Int(-2)));
        let (_, v) = run_all(b"I01\n.").unwrap();
        assert!(matches!(v, Value::Bool(true)));
        let (_, v) = run_all(b"L-12345678901L\n.").unwrap();
        assert!(matches!(v, Value::Int(-12345678901)));
        let (_, v) = run_all(b"F0.25\n.").unwrap();
        assert!(matches!(v, Value::Float(f) if f == 0.25));
        let (_, v) = run_all(b"G\x3f\xf0\x00\x00\x00\x00\x00\x00.").unwrap();
        assert!(matches!(v, Value::Float(f) if f == 1.0));
    }

    #[test]
    fn containers_memo_and_globals() {
        // {'a': [1, 2], 'b': (ctor(), 'x')} with memo round trips, protocol 2 style.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02eX\x01\x00\x00\x00b\
cmod\nctor\nq\x03)Rq\x04h\x01\x86q\x05u.";
        let (heap, v) = run_all(p).unwrap();
        let Some(Node::Dict(d)) = heap.node(&v) else {
            panic!("not a dict")
        };
        assert_eq!(d.len(), 2);
        assert!(matches!(heap.node(&d[0].1), Some(Node::List(l)) if l.len() == 2));
        let Some(Node::Tuple(t)) = heap.node(&d[1].1) else {
            panic!("not a tuple")
        };
        let Some(Node::Object(o)) = heap.node(&t[0]) else {
            panic!("not an object")
        };
        assert!(
            matches!(heap.node(&o.func), Some(Node::Global { module, name })
            if &**module == "mod" && &**name == "ctor")
        );
        assert_eq!(t[1].as_str(), Some("a"));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for (data, what) in [
            (&b"}q\x00h\x05."[..], "memo entry 5 is not defined"),
            (b"K\x01s.", "underflow"),
            (b"\x80\x09.", "protocol"),
            (b"X\xff\x00\x00\x00abc", "truncated"),
            (b"\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc", "truncated"),
            (b"t.", "MARK"),
            (b"K\x01", "STOP"),
            (b"\x01", "unknown"),
            (b"N\x8c\x01a\x93.", "strings"),
        ] {
            let e = run_all(data)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(what), "{data:?}: {e}");
            assert!(e.starts_with("t.pkl: "), "{e}");
        }
    }

    #[test]
    fn budget_stops_amplification() {
        // A list of 100k ints is ordinary; 8M empty lists (one opcode byte each) are not.
        let mut data = b"](".to_vec();
        for _ in 0..100_000 {
            data.extend_from_slice(b"K\x07");
        }
        data.extend_from_slice(b"e.");
        let (heap, v) = run_all(&data).unwrap();
        assert!(matches!(heap.node(&v), Some(Node::List(l)) if l.len() == 100_000));
        let data = vec![b']'; 8 << 20];
        let e = run_all(&data)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("limit exceeded"), "{e}");
    }
}
