//! A small pickle virtual machine that builds an inert object graph.
//!
//! Nothing named in the pickle is ever looked up or executed: a global becomes a
//! [`Node::Global`] naming it, calling it (REDUCE / NEWOBJ / NEWOBJ_EX) becomes a
//! [`Node::Object`] that records the callable and its arguments, and BUILD / SETITEMS / APPENDS
//! on such an object are recorded on it. Interpreting that graph is up to the caller.
//!
//! Containers live in an arena ([`Heap`]) and are referred to by index, so shared and even
//! cyclic references (which pickles can express through the memo) cost nothing and cannot leak.
//! The machine itself is a loop without recursion; every length read from the data is checked
//! against what remains before anything is allocated, and the number of opcodes, the stack, the
//! memo and the MARK stack are bounded.

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::PickleError;

/// Most opcodes one pickle may execute. Real network pickles have ~10^4 - 10^5.
const MAX_OPS: usize = 1 << 24;
/// Most values on the stack at once.
const MAX_STACK: usize = 1 << 22;
/// Most MARKs open at once.
const MAX_MARKS: usize = 1 << 16;
/// Most memo entries.
const MAX_MEMO: usize = 1 << 22;
/// Longest text line (protocol-0 opcodes such as GLOBAL, INT, PUT).
const MAX_LINE: usize = 1 << 16;
/// Highest pickle protocol this reader understands.
const HIGHEST_PROTOCOL: u8 = 5;

/// Index of a node in the [`Heap`].
pub(crate) type NodeId = usize;

/// A value on the pickle stack, in the memo, or inside a container. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64: little-endian two's complement bytes as pickled.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    /// `bytes` / `bytearray`: a range of the input data (absolute offsets).
    Bytes {
        off: usize,
        len: usize,
    },
    /// A container, global or object in the heap.
    Ref(NodeId),
}

/// What a REDUCE-like opcode was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Reduce,
    NewObj,
}

/// A heap node.
#[derive(Debug)]
pub(crate) enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Pairs in insertion order. A key may repeat; the last value wins, at the first position
    /// (Python semantics), when the dict is read.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    Global {
        module: Rc<str>,
        name: Rc<str>,
    },
    /// The (never performed) call of `func` with `args`, plus whatever was done to the result.
    Object {
        kind: CallKind,
        func: Value,
        args: Value,
        kwargs: Option<Value>,
        /// Argument of BUILD (`__setstate__` / `__dict__` update).
        state: Option<Value>,
        /// Pairs added with SETITEM(S) (dict subclasses such as OrderedDict / EasyDict).
        items: Vec<(Value, Value)>,
        /// Values added with APPEND(S) / ADDITEMS (list or set subclasses).
        list_items: Vec<Value>,
    },
    /// A persistent id (BINPERSID / PERSID) that was not resolved.
    PersId(Value),
}

/// Arena of all nodes created while reading a pickle (shared by the nested storage pickles).
#[derive(Debug, Default)]
pub(crate) struct Heap {
    nodes: Vec<Node>,
}

impl Heap {
    pub(crate) fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    fn alloc(&mut self, node: Node) -> Value {
        self.nodes.push(node);
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
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
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

/// Runs one pickle found in `data[start..end]` up to and including its STOP opcode.
///
/// Returns the unpickled (inert) value and the offset just after STOP. Nodes are added to
/// `heap`; the memo is private to this pickle, as it is in Python.
pub(crate) fn run(
    data: &[u8],
    start: usize,
    end: usize,
    heap: &mut Heap,
) -> Result<(Value, usize), PickleError> {
    let end = end.min(data.len());
    let mut m = Machine {
        data,
        pos: start.min(end),
        end,
        heap,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        op_off: start,
        op: 0,
    };
    m.run()
}

struct Machine<'a, 'h> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    heap: &'h mut Heap,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Offset and byte of the opcode being executed (for messages).
    op_off: usize,
    op: u8,
}

impl<'a> Machine<'a, '_> {
    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError::malformed(self.op_off, format!("{}: {}", opcode_name(self.op), message.into()))
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Takes `n` bytes of operand, or reports truncation.
    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let left = self.remaining();
        if n > left as u64 {
            return Err(PickleError::Truncated {
                opcode: opcode_name(self.op),
                offset: self.op_off,
                needed: n,
                left,
            });
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Like `take` but returns the absolute range instead of the bytes.
    fn take_range(&mut self, n: u64) -> Result<(usize, usize), PickleError> {
        let off = self.pos;
        let s = self.take(n)?;
        Ok((off, s.len()))
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A text line (without its '\n'), for protocol-0 opcodes.
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..self.end];
        let limit = rest.len().min(MAX_LINE);
        let Some(nl) = rest[..limit].iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE {
                return Err(self.err("text argument longer than 64 KiB"));
            }
            return Err(PickleError::Truncated {
                opcode: opcode_name(self.op),
                offset: self.op_off,
                needed: rest.len() as u64 + 1,
                left: rest.len(),
            });
        };
        self.pos += nl + 1;
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        std::str::from_utf8(line).map_err(|_| self.err("text argument is not UTF-8"))
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return Err(PickleError::limit(self.op_off, "pickle stack grew past 4M entries"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn alloc_push(&mut self, node: Node) -> Result<(), PickleError> {
        let v = self.heap.alloc(node);
        self.push(v)
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.pop().unwrap_or(Value::None))
    }

    fn top(&self) -> Result<Value, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.last().cloned().unwrap_or(Value::None))
    }

    /// Pops everything above the most recent MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("no MARK on the stack"));
        };
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, PickleError> {
        if self.stack.len() < self.floor() + n {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn memo_put(&mut self, key: u64, v: Value) -> Result<(), PickleError> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(PickleError::limit(self.op_off, "memo grew past 4M entries"));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => Err(self.err(format!("memo entry {key} is not defined"))),
        }
    }

    fn string(&self, bytes: &[u8]) -> Result<Value, PickleError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            // Python writes lone surrogates with 'surrogatepass'; keep what we can.
            Err(_) => Ok(Value::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()))),
        }
    }

    fn latin1(bytes: &[u8]) -> Value {
        Value::Str(Rc::from(bytes.iter().map(|&b| b as char).collect::<String>().as_str()))
    }

    fn long_from_le(bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() <= 8 {
            let fill = if bytes[bytes.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
            let mut a = [fill; 8];
            a[..bytes.len()].copy_from_slice(bytes);
            return Value::Int(i64::from_le_bytes(a));
        }
        Value::BigInt(Rc::from(bytes))
    }

    fn text_int(&self, s: &str) -> Result<Value, PickleError> {
        let t = s.strip_suffix('L').unwrap_or(s);
        match t {
            "00" if self.op == b'I' => return Ok(Value::Bool(false)),
            "01" if self.op == b'I' => return Ok(Value::Bool(true)),
            _ => {}
        }
        t.parse::<i64>()
            .map(Value::Int)
            .map_err(|_| self.err(format!("cannot read integer {s:?} (larger than 64 bits?)")))
    }

    fn container_items(&self, v: &Value) -> Option<NodeId> {
        match v {
            Value::Ref(id) => Some(*id),
            _ => None,
        }
    }

    fn set_items(&mut self, target: &Value, pairs: Vec<Value>) -> Result<(), PickleError> {
        if pairs.len() % 2 != 0 {
            return Err(self.err("odd number of items for a dict"));
        }
        let Some(id) = self.container_items(target) else {
            return Err(self.err("target is not a dict"));
        };
        let mut it = pairs.into_iter();
        let mut new_pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            new_pairs.push((k, v));
        }
        match self.heap.nodes.get_mut(id) {
            Some(Node::Dict(d)) => {
                dict_insert(d, new_pairs);
                Ok(())
            }
            Some(Node::Object { items, .. }) => {
                dict_insert(items, new_pairs);
                Ok(())
            }
            _ => Err(self.err("target is not a dict")),
        }
    }

    fn append_items(&mut self, target: &Value, values: Vec<Value>) -> Result<(), PickleError> {
        let Some(id) = self.container_items(target) else {
            return Err(self.err("target is not a list"));
        };
        match self.heap.nodes.get_mut(id) {
            Some(Node::List(l)) => {
                l.extend(values);
                Ok(())
            }
            Some(Node::Object { list_items, .. }) => {
                list_items.extend(values);
                Ok(())
            }
            _ => Err(self.err("target is not a list")),
        }
    }

    fn add_items(&mut self, target: &Value, values: Vec<Value>) -> Result<(), PickleError> {
        let Some(id) = self.container_items(target) else {
            return Err(self.err("target is not a set"));
        };
        match self.heap.nodes.get_mut(id) {
            Some(Node::Set(l)) => {
                l.extend(values);
                Ok(())
            }
            Some(Node::Object { list_items, .. }) => {
                list_items.extend(values);
                Ok(())
            }
            _ => Err(self.err("target is not a set")),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        self.alloc_push(Node::Global {
            module: Rc::from(module),
            name: Rc::from(name),
        })
    }

    fn object(&mut self, kind: CallKind, func: Value, args: Value, kwargs: Option<Value>) -> Result<(), PickleError> {
        self.alloc_push(Node::Object {
            kind,
            func,
            args,
            kwargs,
            state: None,
            items: Vec::new(),
            list_items: Vec::new(),
        })
    }

    fn run(&mut self) -> Result<(Value, usize), PickleError> {
        let mut ops = 0usize;
        loop {
            self.op_off = self.pos;
            if self.pos >= self.end {
                return Err(PickleError::Truncated {
                    opcode: "STOP",
                    offset: self.pos,
                    needed: 1,
                    left: 0,
                });
            }
            self.op = self.data[self.pos];
            self.pos += 1;
            ops += 1;
            if ops > MAX_OPS {
                return Err(PickleError::limit(self.op_off, "more than 16M opcodes"));
            }
            match self.op {
                // --- framing and control
                0x80 => {
                    let proto = self.u8()?;
                    if proto > HIGHEST_PROTOCOL {
                        return Err(self.err(format!("pickle protocol {proto} is newer than 5")));
                    }
                }
                0x95 => {
                    let n = self.u64()?;
                    if n > self.remaining() as u64 {
                        return Err(PickleError::Truncated {
                            opcode: "FRAME",
                            offset: self.op_off,
                            needed: n,
                            left: self.remaining(),
                        });
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(PickleError::limit(self.op_off, "more than 65536 open MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP discards the top item, or a MARK if the MARK is on top.
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
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a => {
                    let n = self.u8()?;
                    let b = self.take(n as u64)?;
                    self.push(Self::long_from_le(b))?
                }
                0x8b => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("negative length"));
                    }
                    let b = self.take(n as u64)?;
                    self.push(Self::long_from_le(b))?
                }
                b'I' | b'L' => {
                    let s = self.line()?;
                    let v = self.text_int(s)?;
                    self.push(v)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))?
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
                    let b = self.take(n as u64)?;
                    let v = self.string(b)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()?;
                    let b = self.take(n as u64)?;
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
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("negative length"));
                    }
                    let b = self.take(n as u64)?;
                    self.push(Self::latin1(b))?
                }
                b'U' => {
                    let n = self.u8()?;
                    let b = self.take(n as u64)?;
                    self.push(Self::latin1(b))?
                }
                b'B' => {
                    let n = self.u32()?;
                    let (off, len) = self.take_range(n as u64)?;
                    self.push(Value::Bytes { off, len })?
                }
                b'C' => {
                    let n = self.u8()?;
                    let (off, len) = self.take_range(n as u64)?;
                    self.push(Value::Bytes { off, len })?
                }
                0x8e | 0x96 => {
                    let n = self.u64()?;
                    let (off, len) = self.take_range(n)?;
                    self.push(Value::Bytes { off, len })?
                }

                // --- containers
                b'}' => self.alloc_push(Node::Dict(Vec::new()))?,
                b']' => self.alloc_push(Node::List(Vec::new()))?,
                b')' => self.alloc_push(Node::Tuple(Vec::new()))?,
                0x8f => self.alloc_push(Node::Set(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.heap.alloc(Node::Dict(Vec::new()));
                    self.set_items(&v, items)?;
                    self.push(v)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.alloc_push(Node::List(items))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.alloc_push(Node::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (self.op - 0x84) as usize;
                    let items = self.pop_n(n)?;
                    self.alloc_push(Node::Tuple(items))?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.alloc_push(Node::FrozenSet(items))?
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
                    let k = self.memo.len() as u64;
                    self.memo_put(k, v)?
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'p' => {
                    let s = self.line()?;
                    let k: u64 = s.parse().map_err(|_| self.err(format!("bad memo key {s:?}")))?;
                    let v = self.top()?;
                    self.memo_put(k, v)?
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?
                }
                b'g' => {
                    let s = self.line()?;
                    let k: u64 = s.parse().map_err(|_| self.err(format!("bad memo key {s:?}")))?;
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
                    self.object(CallKind::Reduce, func, args, None)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(CallKind::NewObj, cls, args, None)?
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(CallKind::NewObj, cls, args, Some(kwargs))?
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let id = self.container_items(&target);
                    match id.and_then(|id| self.heap.nodes.get_mut(id)) {
                        Some(Node::Object { state: s, .. }) => *s = Some(state),
                        _ => return Err(self.err("BUILD target is not an object")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.alloc_push(Node::PersId(pid))?
                }
                b'P' => {
                    let s = self.line()?;
                    let pid = Value::Str(Rc::from(s));
                    self.alloc_push(Node::PersId(pid))?
                }
                0x82..=0x84 => {
                    return Err(PickleError::Unsupported(format!(
                        "opcode {} at byte {} (copyreg extension registry)",
                        opcode_name(self.op),
                        self.op_off
                    )))
                }
                b'i' | b'o' | b'S' | b'V' | 0x97 | 0x98 => {
                    return Err(PickleError::Unsupported(format!(
                        "opcode {} at byte {}",
                        opcode_name(self.op),
                        self.op_off
                    )))
                }
                byte => {
                    return Err(PickleError::UnknownOpcode {
                        byte,
                        offset: self.op_off,
                    })
                }
            }
        }
    }
}

/// Appends pairs to an ordered dict. Repeated keys are resolved when the dict is read (see
/// `interp`), which keeps insertion linear-time whatever the input.
fn dict_insert(d: &mut Vec<(Value, Value)>, pairs: Vec<(Value, Value)>) {
    d.extend(pairs);
}
