//! The safe Rust SDK for writing plugins.
//!
//! A node is a type implementing [`Node`]; [`export_plugin!`](crate::export_plugin) turns a list
//! of them into the C entry point. Everything unsafe (descriptor tables, pointer juggling, panic
//! catching) lives here, so a node author writes only safe code:
//!
//! ```ignore
//! use stylegraph_abi::sdk::*;
//!
//! #[derive(Default)]
//! struct Scale;
//! impl Node for Scale {
//!     fn spec() -> NodeSpec {
//!         NodeSpec::new("demo.scale", "Scale")
//!             .category("Math")
//!             .doc("Multiplies a tensor by a factor.")
//!             .input("x", "Tensor", "values to scale")
//!             .output("y", "Tensor", "x * factor")
//!             .param(ParamSpec::float("factor", 1.0).doc("the factor"))
//!     }
//!     fn execute(&mut self, ctx: &mut Context) -> NodeResult {
//!         let x = ctx.input_tensor("x")?.to_f32_vec()?;
//!         let f = ctx.param_f64("factor")? as f32;
//!         let shape = ctx.input_tensor("x")?.shape().to_vec();
//!         let y = ctx.output_f32("y", &shape)?;
//!         for (o, v) in y.iter_mut().zip(x) { *o = v * f; }
//!         Ok(())
//!     }
//! }
//! stylegraph_abi::export_plugin!(id: "demo", version: "0.1.0", description: "demo", nodes: [Scale]);
//! ```

use crate::ffi::*;
use core::ffi::c_void;
use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Errors

/// The error a node returns: a status code and a message for the user.
#[derive(Clone, Debug)]
pub struct NodeError {
    pub status: SgStatus,
    pub message: String,
}

/// What [`Node::execute`] returns.
pub type NodeResult = Result<(), NodeError>;

impl NodeError {
    /// A node failure with a message.
    pub fn new(message: impl fmt::Display) -> NodeError {
        NodeError {
            status: SG_ERROR,
            message: message.to_string(),
        }
    }
    /// A bad argument (wrong shape, wrong kind of value).
    pub fn invalid(message: impl fmt::Display) -> NodeError {
        NodeError {
            status: SG_INVALID_ARGUMENT,
            message: message.to_string(),
        }
    }
    /// The run was cancelled.
    pub fn cancelled() -> NodeError {
        NodeError {
            status: SG_CANCELLED,
            message: "cancelled".into(),
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for NodeError {
    fn from(e: E) -> Self {
        NodeError::new(e)
    }
}

/// Returns early from `execute` with a formatted [`NodeError`].
#[macro_export]
macro_rules! node_bail {
    ($($arg:tt)*) => { return Err($crate::sdk::NodeError::new(format!($($arg)*))) };
}

// ---------------------------------------------------------------------------------------------
// Descriptors, built with safe builders

/// Describes a port.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub name: String,
    pub type_name: String,
    pub doc: String,
    pub optional: bool,
    /// A streamed port (`SG_PORT_STREAM`): see [`NodeSpec::stream_output`] and
    /// [`NodeSpec::stream_input`].
    pub stream: bool,
}

/// The default value of a param.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamDefault {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Describes a param.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub kind: u32,
    pub doc: String,
    pub default: ParamDefault,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: f64,
    pub flags: u32,
    pub choices: Vec<String>,
}

impl ParamSpec {
    fn base(name: &str, kind: u32, default: ParamDefault) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind,
            doc: String::new(),
            default,
            min: None,
            max: None,
            step: 0.0,
            flags: 0,
            choices: Vec::new(),
        }
    }
    pub fn bool(name: &str, default: bool) -> ParamSpec {
        Self::base(name, SG_PARAM_BOOL, ParamDefault::Bool(default))
    }
    pub fn int(name: &str, default: i64) -> ParamSpec {
        Self::base(name, SG_PARAM_INT, ParamDefault::Int(default))
    }
    pub fn float(name: &str, default: f64) -> ParamSpec {
        Self::base(name, SG_PARAM_FLOAT, ParamDefault::Float(default))
    }
    pub fn string(name: &str, default: &str) -> ParamSpec {
        Self::base(name, SG_PARAM_STRING, ParamDefault::Str(default.into()))
    }
    pub fn path(name: &str, default: &str) -> ParamSpec {
        Self::base(name, SG_PARAM_PATH, ParamDefault::Str(default.into()))
    }
    /// A path the node writes to.
    pub fn output_path(name: &str, default: &str) -> ParamSpec {
        Self::path(name, default).flag(SG_PARAM_OUTPUT_PATH)
    }
    /// A random seed (int >= -1 by convention; the editor offers a dice button).
    pub fn seed(name: &str, default: i64) -> ParamSpec {
        Self::int(name, default).flag(SG_PARAM_SEED)
    }
    pub fn enumeration(name: &str, default: &str, choices: &[&str]) -> ParamSpec {
        let mut p = Self::base(name, SG_PARAM_ENUM, ParamDefault::Str(default.into()));
        p.choices = choices.iter().map(|c| c.to_string()).collect();
        p
    }
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = doc.into();
        self
    }
    pub fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }
    pub fn max(mut self, max: f64) -> Self {
        self.max = Some(max);
        self
    }
    pub fn range(self, min: f64, max: f64) -> Self {
        self.min(min).max(max)
    }
    pub fn step(mut self, step: f64) -> Self {
        self.step = step;
        self
    }
    pub fn flag(mut self, flag: u32) -> Self {
        self.flags |= flag;
        self
    }
}

/// Describes a node type: what [`Node::spec`] returns.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub type_id: String,
    pub display_name: String,
    pub category: String,
    pub doc: String,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
    pub params: Vec<ParamSpec>,
    pub flags: u32,
}

impl NodeSpec {
    pub fn new(type_id: &str, display_name: &str) -> NodeSpec {
        NodeSpec {
            type_id: type_id.into(),
            display_name: display_name.into(),
            category: String::new(),
            doc: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            flags: 0,
        }
    }
    pub fn category(mut self, category: &str) -> Self {
        self.category = category.into();
        self
    }
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = doc.into();
        self
    }
    /// A required input.
    pub fn input(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.inputs.push(PortSpec {
            name: name.into(),
            type_name: type_name.into(),
            doc: doc.into(),
            optional: false,
            stream: false,
        });
        self
    }
    /// An optional input (may be left unconnected).
    pub fn optional_input(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.inputs.push(PortSpec {
            name: name.into(),
            type_name: type_name.into(),
            doc: doc.into(),
            optional: true,
            stream: false,
        });
        self
    }
    pub fn output(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.outputs.push(PortSpec {
            name: name.into(),
            type_name: type_name.into(),
            doc: doc.into(),
            optional: false,
            stream: false,
        });
        self
    }
    pub fn param(mut self, param: ParamSpec) -> Self {
        self.params.push(param);
        self
    }
    /// Outputs depend on more than params and inputs (see `SG_NODE_NONDETERMINISTIC`).
    pub fn nondeterministic(mut self) -> Self {
        self.flags |= SG_NODE_NONDETERMINISTIC;
        self
    }
    /// The node writes files or emits previews (see `SG_NODE_SIDE_EFFECT`).
    pub fn side_effect(mut self) -> Self {
        self.flags |= SG_NODE_SIDE_EFFECT;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The node trait

/// A node type. One instance is created per graph node and reused across runs, so a node may
/// keep state (a loaded model, say) between executions.
pub trait Node: Send + 'static {
    /// The node's descriptor. Called once per process.
    fn spec() -> NodeSpec
    where
        Self: Sized;
    /// Creates an instance.
    fn create() -> Result<Self, NodeError>
    where
        Self: Sized;
    /// Runs the node: read inputs and params from `ctx`, write every output.
    fn execute(&mut self, ctx: &mut Context<'_>) -> NodeResult;
}

// ---------------------------------------------------------------------------------------------
// Tensors seen by a node

/// A read-only view of an input tensor (host memory, CPU).
pub struct TensorRef<'a> {
    raw: &'a SgTensor,
    shape: Vec<usize>,
}

impl<'a> TensorRef<'a> {
    fn new(raw: &'a SgTensor, what: &str) -> Result<TensorRef<'a>, NodeError> {
        if raw.device.device_type != SG_DEVICE_CPU {
            return Err(NodeError::invalid(format!(
                "{what}: tensor is on device type {}, this node runs on the CPU",
                raw.device.device_type
            )));
        }
        if raw.ndim < 0 || (raw.ndim > 0 && raw.shape.is_null()) {
            return Err(NodeError::invalid(format!(
                "{what}: malformed tensor descriptor"
            )));
        }
        // SAFETY: the host guarantees `shape` points to `ndim` i64s for the call's duration.
        let dims = unsafe { slice_or_empty(raw.shape, raw.ndim as usize) };
        let mut shape = Vec::with_capacity(dims.len());
        for &d in dims {
            if d < 0 {
                return Err(NodeError::invalid(format!(
                    "{what}: negative dimension {d}"
                )));
            }
            shape.push(d as usize);
        }
        if !raw.strides.is_null() {
            // SAFETY: as for `shape`.
            let strides = unsafe { slice_or_empty(raw.strides, raw.ndim as usize) };
            let mut expect = 1i64;
            for (s, d) in strides.iter().zip(dims).rev() {
                if *d > 1 && *s != expect {
                    return Err(NodeError::invalid(format!(
                        "{what}: non-contiguous tensors are not supported"
                    )));
                }
                expect *= *d;
            }
        }
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel.is_none() || (numel != Some(0) && raw.data.is_null()) {
            return Err(NodeError::invalid(format!(
                "{what}: malformed tensor descriptor"
            )));
        }
        Ok(TensorRef { raw, shape })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> SgDType {
        self.raw.dtype
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// The raw bytes (C order, little-endian).
    pub fn bytes(&self) -> &'a [u8] {
        let n = self.numel() * self.raw.dtype.size_bytes();
        // SAFETY: the host owns a buffer of at least `n` bytes at data + byte_offset, alive and
        // unchanged for the duration of the call.
        unsafe {
            slice_or_empty(
                (self.raw.data as *const u8).add(self.raw.byte_offset as usize),
                n,
            )
        }
    }
    fn typed<T: Copy>(&self, dtype: SgDType) -> Result<&'a [T], NodeError> {
        if self.raw.dtype != dtype {
            return Err(NodeError::invalid(format!(
                "expected a {} tensor, got {}",
                dtype.name(),
                self.raw.dtype.name()
            )));
        }
        let bytes = self.bytes();
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>()) {
            return Err(NodeError::invalid("tensor data is misaligned"));
        }
        // SAFETY: size and alignment checked; T is a plain number type.
        Ok(unsafe {
            slice_or_empty(
                bytes.as_ptr() as *const T,
                bytes.len() / core::mem::size_of::<T>(),
            )
        })
    }
    /// The elements of an f32 tensor.
    pub fn as_f32(&self) -> Result<&'a [f32], NodeError> {
        self.typed(SgDType::F32)
    }
    /// The elements of an f64 tensor.
    pub fn as_f64(&self) -> Result<&'a [f64], NodeError> {
        self.typed(SgDType::F64)
    }
    /// The elements of a u8 tensor.
    pub fn as_u8(&self) -> Result<&'a [u8], NodeError> {
        self.typed(SgDType::U8)
    }
    /// The elements of an i64 tensor.
    pub fn as_i64(&self) -> Result<&'a [i64], NodeError> {
        self.typed(SgDType::I64)
    }
    /// The elements converted to f64, from any numeric dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, NodeError> {
        let d = self.raw.dtype;
        Ok(match (d.code, d.bits) {
            (SG_DTYPE_FLOAT, 64) => self.as_f64()?.to_vec(),
            (SG_DTYPE_FLOAT, 32) => self.as_f32()?.iter().map(|&v| v as f64).collect(),
            (SG_DTYPE_UINT, 8) => self.as_u8()?.iter().map(|&v| v as f64).collect(),
            (SG_DTYPE_INT, 64) => self.as_i64()?.iter().map(|&v| v as f64).collect(),
            _ => {
                return Err(NodeError::invalid(format!(
                    "tensors of dtype {} are not supported here",
                    d.name()
                )))
            }
        })
    }
    /// The elements converted to f32, from any numeric dtype.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, NodeError> {
        if self.raw.dtype == SgDType::F32 {
            return Ok(self.as_f32()?.to_vec());
        }
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }
}

unsafe fn slice_or_empty<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        core::slice::from_raw_parts(ptr, len)
    }
}

// ---------------------------------------------------------------------------------------------
// Opaque objects

/// An object's memory: a header that lets the plugin that made it recognise it, then the value.
#[repr(C)]
struct ObjBox<T> {
    type_id: TypeId,
    value: T,
}

/// The address of this static is unique to each plugin library (each links its own copy of the
/// SDK), so it tells a plugin whether an object came from itself.
static OWNER_TAG: u8 = 0;

fn owner_tag() -> *const c_void {
    &OWNER_TAG as *const u8 as *const c_void
}

unsafe extern "C" fn retain_obj<T: Send + Sync + 'static>(ptr: *const c_void) {
    Arc::increment_strong_count(ptr as *const ObjBox<T>);
}

unsafe extern "C" fn release_obj<T: Send + Sync + 'static>(ptr: *const c_void) {
    Arc::decrement_strong_count(ptr as *const ObjBox<T>);
}

// ---------------------------------------------------------------------------------------------
// A thread-safe handle on the host's progress and cancellation services

/// Progress reporting and cancellation checks that may be used from worker threads (e.g. inside
/// a rayon loop) while the node executes. Get one with [`Context::host_handle`].
#[derive(Clone, Copy)]
pub struct HostHandle<'a> {
    host: SgHost,
    _call: core::marker::PhantomData<&'a ()>,
}

// SAFETY: the ABI requires a host's `progress`, `is_cancelled` and `log` services to be callable
// from any thread for the duration of `execute` (docs/plugin-abi.md); the lifetime keeps the
// handle inside that call.
unsafe impl Send for HostHandle<'_> {}
unsafe impl Sync for HostHandle<'_> {}

impl HostHandle<'_> {
    /// True once the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        match self.host.is_cancelled {
            // SAFETY: host service contract.
            Some(f) => unsafe { f(self.host.ctx) },
            None => false,
        }
    }
    /// Reports progress in [0, 1].
    pub fn progress(&self, fraction: f64, message: &str) {
        if let Some(f) = self.host.progress {
            // SAFETY: host service contract.
            unsafe { f(self.host.ctx, fraction, SgStr::from_str(message)) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The execution context

/// What a node sees while it executes: its inputs, params, outputs and the host services.
pub struct Context<'a> {
    spec: &'a NodeSpec,
    host: SgHost,
    args: SgExecArgs,
    /// Strings handed out in outputs; kept alive until the next call on this instance.
    keep: &'a mut Vec<Box<str>>,
}

impl<'a> Context<'a> {
    pub(crate) fn from_raw(
        spec: &'a NodeSpec,
        host: SgHost,
        args: SgExecArgs,
        keep: &'a mut Vec<Box<str>>,
    ) -> Context<'a> {
        Context {
            spec,
            host,
            args,
            keep,
        }
    }

    /// The graph's id of the node being executed.
    pub fn node_id(&self) -> String {
        // SAFETY: valid for the call.
        unsafe { self.args.node_id.to_string_lossy() }
    }

    fn index_of(ports: &[PortSpec], name: &str, what: &str) -> Result<usize, NodeError> {
        ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| NodeError::invalid(format!("node has no {what} named {name:?}")))
    }

    fn input_value(&self, name: &str) -> Result<&'a SgValue, NodeError> {
        let i = Self::index_of(&self.spec.inputs, name, "input")?;
        if i >= self.args.input_count {
            return Err(NodeError::invalid(format!(
                "host passed no value for input {name:?}"
            )));
        }
        // SAFETY: the host passes `input_count` values, valid for the call.
        Ok(unsafe { &*self.args.inputs.add(i) })
    }

    fn param_value(&self, name: &str) -> Result<&'a SgValue, NodeError> {
        let i = self
            .spec
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| NodeError::invalid(format!("node has no param named {name:?}")))?;
        if i >= self.args.param_count {
            return Err(NodeError::invalid(format!(
                "host passed no value for param {name:?}"
            )));
        }
        // SAFETY: the host passes `param_count` values, valid for the call.
        Ok(unsafe { &*self.args.params.add(i) })
    }

    /// True if an optional input is connected.
    pub fn has_input(&self, name: &str) -> bool {
        matches!(self.input_value(name), Ok(v) if v.kind != SG_VALUE_NONE)
    }

    /// An input tensor.
    pub fn input_tensor(&self, name: &str) -> Result<TensorRef<'a>, NodeError> {
        let v = self.input_value(name)?;
        if v.kind != SG_VALUE_TENSOR {
            return Err(NodeError::invalid(format!(
                "input {name:?} is {}, expected a tensor",
                kind_name(v.kind)
            )));
        }
        TensorRef::new(&v.tensor, &format!("input {name:?}"))
    }

    /// A numeric input (int, float or bool).
    pub fn input_f64(&self, name: &str) -> Result<f64, NodeError> {
        number(self.input_value(name)?, &format!("input {name:?}"))
    }

    /// An integer input.
    pub fn input_i64(&self, name: &str) -> Result<i64, NodeError> {
        integer(self.input_value(name)?, &format!("input {name:?}"))
    }

    /// A string input.
    pub fn input_str(&self, name: &str) -> Result<String, NodeError> {
        string(self.input_value(name)?, &format!("input {name:?}"))
    }

    /// An object input made by this plugin, as the Rust type it was made from.
    pub fn input_object<T: Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>, NodeError> {
        let v = self.input_value(name)?;
        if v.kind != SG_VALUE_OBJECT || v.object.ptr.is_null() {
            return Err(NodeError::invalid(format!(
                "input {name:?} is {}, expected an object",
                kind_name(v.kind)
            )));
        }
        let obj = &v.object;
        if obj.owner_tag != owner_tag() {
            // SAFETY: type_name is valid for the call.
            let tn = unsafe { obj.type_name.to_string_lossy() };
            return Err(NodeError::invalid(format!(
                "input {name:?}: object of type {tn} was made by another plugin and cannot be read here"
            )));
        }
        // SAFETY: owner tag matches, so this plugin's SDK made it as an Arc<ObjBox<_>>, whose
        // repr(C) header starts with the TypeId.
        let type_id = unsafe { (*(obj.ptr as *const ObjBox<()>)).type_id };
        if type_id != TypeId::of::<Arc<T>>() {
            return Err(NodeError::invalid(format!(
                "input {name:?}: object is not of the expected type"
            )));
        }
        // SAFETY: type checked; the host holds a reference for the call's duration, and we clone
        // the inner Arc so the caller's handle outlives it.
        let inner: &Arc<T> = unsafe { &(*(obj.ptr as *const ObjBox<Arc<T>>)).value };
        Ok(Arc::clone(inner))
    }

    /// A bool param.
    pub fn param_bool(&self, name: &str) -> Result<bool, NodeError> {
        Ok(integer(self.param_value(name)?, &format!("param {name:?}"))? != 0)
    }
    /// An int param.
    pub fn param_i64(&self, name: &str) -> Result<i64, NodeError> {
        integer(self.param_value(name)?, &format!("param {name:?}"))
    }
    /// A float param (ints are accepted).
    pub fn param_f64(&self, name: &str) -> Result<f64, NodeError> {
        number(self.param_value(name)?, &format!("param {name:?}"))
    }
    /// A string, path or enum param.
    pub fn param_str(&self, name: &str) -> Result<String, NodeError> {
        string(self.param_value(name)?, &format!("param {name:?}"))
    }

    fn output_slot(&mut self, name: &str) -> Result<&mut SgValue, NodeError> {
        let i = Self::index_of(&self.spec.outputs, name, "output")?;
        if i >= self.args.output_count {
            return Err(NodeError::invalid(format!(
                "host has no slot for output {name:?}"
            )));
        }
        // SAFETY: the host passes `output_count` writable values.
        Ok(unsafe { &mut *self.args.outputs.add(i) })
    }

    /// Allocates an output tensor through the host and returns its bytes (zeroed) to fill.
    pub fn output_bytes(
        &mut self,
        name: &str,
        dtype: SgDType,
        shape: &[usize],
    ) -> Result<&mut [u8], NodeError> {
        let alloc = self
            .host
            .alloc_tensor
            .ok_or_else(|| NodeError::new("host offers no tensor allocation"))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut t = SgTensor::EMPTY;
        // SAFETY: host service contract.
        let st = unsafe {
            alloc(
                self.host.ctx,
                dtype,
                dims.len() as i32,
                dims.as_ptr(),
                SgDevice::CPU,
                &mut t,
            )
        };
        if st != SG_OK {
            return Err(NodeError {
                status: st,
                message: format!("host could not allocate output {name:?} of shape {shape:?}"),
            });
        }
        let n = shape.iter().product::<usize>() * dtype.size_bytes();
        *self.output_slot(name)? = SgValue::tensor(t);
        // SAFETY: the host allocated `n` bytes at `t.data`, owned by the host, writable until it
        // takes the outputs after this call; we hand out one mutable borrow tied to `self`.
        Ok(unsafe {
            if n == 0 {
                &mut []
            } else {
                core::slice::from_raw_parts_mut(t.data as *mut u8, n)
            }
        })
    }

    fn output_typed<T: Copy>(
        &mut self,
        name: &str,
        dtype: SgDType,
        shape: &[usize],
    ) -> Result<&mut [T], NodeError> {
        let bytes = self.output_bytes(name, dtype, shape)?;
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>()) {
            return Err(NodeError::new("host returned misaligned memory"));
        }
        let len = bytes.len() / core::mem::size_of::<T>();
        // SAFETY: aligned, sized, plain number type.
        Ok(unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut T, len) })
    }

    /// Allocates an f32 output tensor and returns its elements to fill.
    pub fn output_f32(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f32], NodeError> {
        self.output_typed(name, SgDType::F32, shape)
    }
    /// Allocates an f64 output tensor and returns its elements to fill.
    pub fn output_f64(&mut self, name: &str, shape: &[usize]) -> Result<&mut [f64], NodeError> {
        self.output_typed(name, SgDType::F64, shape)
    }
    /// Allocates a u8 output tensor and returns its elements to fill.
    pub fn output_u8(&mut self, name: &str, shape: &[usize]) -> Result<&mut [u8], NodeError> {
        self.output_typed(name, SgDType::U8, shape)
    }
    /// Sets a float output.
    pub fn set_output_f64(&mut self, name: &str, v: f64) -> NodeResult {
        *self.output_slot(name)? = SgValue::float(v);
        Ok(())
    }
    /// Sets an int output.
    pub fn set_output_i64(&mut self, name: &str, v: i64) -> NodeResult {
        *self.output_slot(name)? = SgValue::int(v);
        Ok(())
    }
    /// Sets a bool output.
    pub fn set_output_bool(&mut self, name: &str, v: bool) -> NodeResult {
        *self.output_slot(name)? = SgValue::boolean(v);
        Ok(())
    }
    /// Sets a string output.
    pub fn set_output_str(&mut self, name: &str, v: &str) -> NodeResult {
        let owned: Box<str> = v.into();
        let s = SgStr::from_str(&owned);
        self.keep.push(owned);
        *self.output_slot(name)? = SgValue::string(s);
        Ok(())
    }
    /// Passes an input through unchanged as an output (no copy).
    pub fn pass_through(&mut self, output: &str, input: &str) -> NodeResult {
        let v = *self.input_value(input)?;
        if v.kind == SG_VALUE_OBJECT {
            if let Some(retain) = v.object.retain {
                // SAFETY: the output hands the host one more reference.
                unsafe { retain(v.object.ptr) };
            }
        }
        *self.output_slot(output)? = v;
        Ok(())
    }
    /// Sets an object output. `type_name` is what ports of type `object:<type_name>` accept.
    pub fn set_output_object<T: Send + Sync + 'static>(
        &mut self,
        name: &str,
        type_name: &'static str,
        value: Arc<T>,
        size_bytes: u64,
    ) -> NodeResult {
        // Re-box with the identifying header. Arc<T> cannot be re-headed in place, so objects are
        // stored as Arc<ObjBox<Arc<T>>>: one extra pointer hop, paid once per access.
        let boxed: Arc<ObjBox<Arc<T>>> = Arc::new(ObjBox {
            type_id: TypeId::of::<Arc<T>>(),
            value,
        });
        let obj = SgObject {
            ptr: Arc::into_raw(boxed) as *const c_void,
            type_name: SgStr::from_str(type_name),
            retain: Some(retain_obj::<Arc<T>>),
            release: Some(release_obj::<Arc<T>>),
            size_bytes,
            owner_tag: owner_tag(),
        };
        *self.output_slot(name)? = SgValue::object(obj);
        Ok(())
    }

    /// Reports progress in [0, 1].
    pub fn progress(&self, fraction: f64, message: &str) {
        if let Some(f) = self.host.progress {
            // SAFETY: host service contract.
            unsafe { f(self.host.ctx, fraction, SgStr::from_str(message)) }
        }
    }
    /// A handle on progress and cancellation that worker threads may use during this call.
    pub fn host_handle(&self) -> HostHandle<'_> {
        HostHandle {
            host: self.host,
            _call: core::marker::PhantomData,
        }
    }
    /// True once the run was cancelled; return `Err(NodeError::cancelled())` soon after.
    pub fn is_cancelled(&self) -> bool {
        match self.host.is_cancelled {
            // SAFETY: host service contract.
            Some(f) => unsafe { f(self.host.ctx) },
            None => false,
        }
    }
    /// Returns `Err(cancelled)` if the run was cancelled: `ctx.check_cancelled()?` in loops.
    pub fn check_cancelled(&self) -> NodeResult {
        if self.is_cancelled() {
            Err(NodeError::cancelled())
        } else {
            Ok(())
        }
    }
    /// Logs a line attributed to this node.
    pub fn log(&self, level: i32, message: &str) {
        if let Some(f) = self.host.log {
            // SAFETY: host service contract.
            unsafe { f(self.host.ctx, level, SgStr::from_str(message)) }
        }
    }
    /// Sends an image preview (`[N,3,H,W]` f32 in [-1,1], or `[H,W,C]` u8) to the front end.
    pub fn preview(&self, image: &TensorRef<'_>, label: &str) {
        if let Some(f) = self.host.emit_preview {
            // SAFETY: host service contract; the host copies what it needs.
            unsafe { f(self.host.ctx, image.raw, SgStr::from_str(label)) }
        }
    }
    /// Sends an output this node has already filled as a preview (e.g. the image it made).
    pub fn preview_output(&mut self, output: &str, label: &str) -> NodeResult {
        let v = *self.output_slot(output)?;
        if v.kind != SG_VALUE_TENSOR {
            return Err(NodeError::invalid(format!(
                "output {output:?} is {}, not a tensor",
                kind_name(v.kind)
            )));
        }
        if let Some(f) = self.host.emit_preview {
            // SAFETY: host service contract; the tensor is host memory the node just filled.
            unsafe { f(self.host.ctx, &v.tensor, SgStr::from_str(label)) }
        }
        Ok(())
    }
    /// An extension service struct (`SG_EXT_*`), or null when the host offers none.
    pub fn extension(&self, id: &str) -> *const c_void {
        match self.host.get_extension {
            // SAFETY: host service contract.
            Some(f) => unsafe { f(self.host.ctx, SgStr::from_str(id)) },
            None => core::ptr::null(),
        }
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        SG_VALUE_NONE => "not connected",
        SG_VALUE_BOOL => "a bool",
        SG_VALUE_INT => "an int",
        SG_VALUE_FLOAT => "a float",
        SG_VALUE_STRING => "a string",
        SG_VALUE_TENSOR => "a tensor",
        SG_VALUE_OBJECT => "an object",
        _ => "an unknown kind of value",
    }
}

fn number(v: &SgValue, what: &str) -> Result<f64, NodeError> {
    match v.kind {
        SG_VALUE_FLOAT => Ok(v.f),
        SG_VALUE_INT | SG_VALUE_BOOL => Ok(v.i as f64),
        k => Err(NodeError::invalid(format!(
            "{what} is {}, expected a number",
            kind_name(k)
        ))),
    }
}

fn integer(v: &SgValue, what: &str) -> Result<i64, NodeError> {
    match v.kind {
        SG_VALUE_INT | SG_VALUE_BOOL => Ok(v.i),
        SG_VALUE_FLOAT if v.f.fract() == 0.0 && v.f.abs() < 9.0e15 => Ok(v.f as i64),
        k => Err(NodeError::invalid(format!(
            "{what} is {}, expected an integer",
            kind_name(k)
        ))),
    }
}

fn string(v: &SgValue, what: &str) -> Result<String, NodeError> {
    match v.kind {
        // SAFETY: valid for the call.
        SG_VALUE_STRING => unsafe { v.s.as_str() }
            .map(str::to_owned)
            .map_err(|_| NodeError::invalid(format!("{what} is not valid UTF-8"))),
        k => Err(NodeError::invalid(format!(
            "{what} is {}, expected a string",
            kind_name(k)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Streamed sequences (ABI 1.1)

impl NodeSpec {
    fn stream_port(name: &str, type_name: &str, doc: &str, optional: bool) -> PortSpec {
        PortSpec {
            name: name.into(),
            type_name: type_name.into(),
            doc: doc.into(),
            optional,
            stream: true,
        }
    }

    /// A stream output (at most one per node, of a tensor type): the node produces the value as
    /// a sequence of chunks along dimension 0. `execute` is called once per chunk; read
    /// [`Context::chunk`] for the chunk's index, fill the outputs with that chunk, and call
    /// [`Context::set_stream_more`] while more chunks follow (and [`Context::set_stream_total`]
    /// when the length is known). The nodes downstream run once per chunk.
    pub fn stream_output(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.outputs
            .push(Self::stream_port(name, type_name, doc, false));
        self
    }

    /// A required stream input: the node consumes a sequence chunk by chunk (see
    /// [`Context::chunk`]): it keeps its state in `self` between calls, finishes on the chunk
    /// flagged `last`, and discards its state when the chunk says `abort`. Fed by an ordinary
    /// value, it gets that value as one chunk that is also the last.
    pub fn stream_input(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.inputs
            .push(Self::stream_port(name, type_name, doc, false));
        self
    }

    /// An optional stream input (see [`NodeSpec::stream_input`]).
    pub fn optional_stream_input(mut self, name: &str, type_name: &str, doc: &str) -> Self {
        self.inputs
            .push(Self::stream_port(name, type_name, doc, true));
        self
    }
}

/// Where a call stands in a streamed sequence: what [`Context::chunk`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The chunk's position in the sequence: 0, 1, ...
    pub index: u64,
    /// Items (rows along dimension 0 of the producer's stream output) before this chunk.
    pub offset: u64,
    /// Items in the whole sequence, when the producer said.
    pub total: Option<u64>,
    /// This is the last chunk: a consumer finishes now. (Always false for the producer, which
    /// decides where the sequence ends.)
    pub last: bool,
    /// The sequence is abandoned: a consumer drops its state (removes partial files) and returns
    /// `Ok(())` without reading inputs (there are none) or writing outputs.
    pub abort: bool,
}

impl Context<'_> {
    /// The chunk this call handles, or `None` when the call is not part of a stream (or the
    /// host predates ABI 1.1). A stream consumer fed by an ordinary value sees one chunk with
    /// `index == 0` and `last == true`.
    pub fn chunk(&self) -> Option<ChunkInfo> {
        let flags = self.args.stream_flags;
        if flags & SG_STREAM_ACTIVE == 0 {
            return None;
        }
        Some(ChunkInfo {
            index: self.args.chunk_index,
            offset: self.args.chunk_offset,
            total: (self.args.stream_total > 0).then_some(self.args.stream_total),
            last: flags & SG_STREAM_LAST != 0,
            abort: flags & SG_STREAM_ABORT != 0,
        })
    }

    /// True when this call only tells a stream consumer that its sequence is abandoned.
    pub fn is_stream_abort(&self) -> bool {
        self.chunk().is_some_and(|c| c.abort)
    }

    fn stream_out(&mut self) -> Option<&mut SgStream> {
        // SAFETY: the host passes a valid, writable SgStream (or NULL) for the call's duration.
        unsafe { self.args.stream.as_mut() }
    }

    /// A stream producer says whether another chunk follows this one (default: no). Ignored
    /// outside a producer's call.
    pub fn set_stream_more(&mut self, more: bool) {
        const END: usize = core::mem::offset_of!(SgStream, more) + 4;
        if let Some(s) = self.stream_out() {
            if s.struct_size as usize >= END {
                s.more = u32::from(more);
            }
        }
    }

    /// A stream producer reports the items of the whole sequence (along dimension 0 of its
    /// stream output), for progress and for the consumers. Ignored outside a producer's call.
    pub fn set_stream_total(&mut self, total: u64) {
        const END: usize = core::mem::offset_of!(SgStream, total_items) + 8;
        if let Some(s) = self.stream_out() {
            if s.struct_size as usize >= END {
                s.total_items = total;
            }
        }
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    fn spec() -> NodeSpec {
        NodeSpec::new("t.n", "N")
            .stream_input("x", "Tensor", "")
            .stream_output("y", "Tensor", "")
    }

    fn args(flags: u32, stream: *mut SgStream) -> SgExecArgs {
        SgExecArgs {
            struct_size: core::mem::size_of::<SgExecArgs>() as u32,
            inputs: core::ptr::null(),
            input_count: 0,
            params: core::ptr::null(),
            param_count: 0,
            outputs: core::ptr::null_mut(),
            output_count: 0,
            node_id: SgStr::EMPTY,
            error: core::ptr::null_mut(),
            stream_flags: flags,
            chunk_index: 3,
            chunk_offset: 48,
            stream_total: 100,
            stream,
        }
    }

    fn host() -> SgHost {
        SgHost {
            struct_size: core::mem::size_of::<SgHost>() as u32,
            abi_minor: SG_ABI_MINOR,
            ctx: core::ptr::null_mut(),
            alloc_tensor: None,
            log: None,
            progress: None,
            is_cancelled: None,
            emit_preview: None,
            get_extension: None,
        }
    }

    #[test]
    fn chunk_info_comes_from_the_flags() {
        let spec = spec();
        let mut keep = Vec::new();
        let a = args(SG_STREAM_ACTIVE | SG_STREAM_LAST, core::ptr::null_mut());
        let ctx = Context::from_raw(&spec, host(), a, &mut keep);
        assert_eq!(
            ctx.chunk(),
            Some(ChunkInfo {
                index: 3,
                offset: 48,
                total: Some(100),
                last: true,
                abort: false
            })
        );
        assert!(!ctx.is_stream_abort());
        let a = args(SG_STREAM_ACTIVE | SG_STREAM_ABORT, core::ptr::null_mut());
        let ctx = Context::from_raw(&spec, host(), a, &mut keep);
        assert!(ctx.is_stream_abort());
        // Not part of a stream: no chunk, whatever the other fields hold.
        let ctx = Context::from_raw(&spec, host(), args(0, core::ptr::null_mut()), &mut keep);
        assert_eq!(ctx.chunk(), None);
    }

    #[test]
    fn a_host_of_abi_1_0_passes_no_stream_fields() {
        // A 1.0 host's SgExecArgs ends at `error`: the SDK reads it with read_versioned, which
        // zero-fills the stream fields, so the node sees an ordinary call.
        let spec = spec();
        let mut keep = Vec::new();
        let mut full = args(SG_STREAM_ACTIVE, core::ptr::null_mut());
        full.struct_size = core::mem::offset_of!(SgExecArgs, stream_flags) as u32;
        // SAFETY: `full` is a whole SgExecArgs; we read a prefix of it.
        let old = unsafe { read_versioned(&full, full.struct_size) };
        assert_eq!(old.stream_flags, 0);
        assert!(old.stream.is_null());
        let mut ctx = Context::from_raw(&spec, host(), old, &mut keep);
        assert_eq!(ctx.chunk(), None);
        ctx.set_stream_more(true); // no stream struct: ignored, no crash
        ctx.set_stream_total(5);
    }

    #[test]
    fn producers_write_only_the_fields_the_host_knows() {
        let spec = spec();
        let mut keep = Vec::new();
        let mut s = SgStream {
            struct_size: core::mem::size_of::<SgStream>() as u32,
            more: 0,
            total_items: 0,
        };
        {
            let mut ctx =
                Context::from_raw(&spec, host(), args(SG_STREAM_ACTIVE, &mut s), &mut keep);
            ctx.set_stream_more(true);
            ctx.set_stream_total(640);
        }
        assert_eq!((s.more, s.total_items), (1, 640));
        // A (hypothetical) host whose SgStream ends after `more`.
        let mut short = SgStream {
            struct_size: 8,
            more: 0,
            total_items: 7,
        };
        {
            let mut ctx =
                Context::from_raw(&spec, host(), args(SG_STREAM_ACTIVE, &mut short), &mut keep);
            ctx.set_stream_more(true);
            ctx.set_stream_total(640);
        }
        assert_eq!((short.more, short.total_items), (1, 7));
    }
}
