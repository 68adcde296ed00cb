//! The C ABI between the Stylegraph host and its plugins.
//!
//! Everything here is `#[repr(C)]` plain data or an `extern "C"` function pointer: no Rust type
//! crosses the boundary, so a plugin can be written in any language that can export a C symbol
//! (`include/stylegraph_plugin.h` is generated from this file by cbindgen).
//!
//! # Versioning
//! `SG_ABI_MAJOR` changes only when an existing field or meaning changes; the host refuses a
//! plugin of another major. `SG_ABI_MINOR` grows when fields are appended to the *end* of a
//! struct or new constants are added. Every extensible struct starts with `struct_size`, so a
//! reader takes only the fields the writer knew about: a plugin built for an older minor keeps
//! loading, and a newer plugin checks `SgHost::struct_size` before using a service added later.
//!
//! # Ownership
//! - Strings are `SgStr` (pointer + length, UTF-8, not NUL-terminated). Strings in descriptors are
//!   static for the life of the process (plugins are never unloaded).
//! - Tensor memory is owned by the host. Inputs are read-only views; outputs are allocated with
//!   `SgHost::alloc_tensor`, filled by the plugin and handed back in `SgExecArgs::outputs`. A
//!   plugin may also pass an input tensor through unchanged as an output.
//! - Opaque objects (`SgObject`, e.g. a loaded generator) are owned by the plugin that made them
//!   and reference-counted by the host through `retain`/`release`.
//! - Error text is written into the host-provided `SgExecArgs::error` buffer.
//!
//! # Threads
//! `describe` must be callable from any thread. `execute` may be called concurrently for
//! *different* instances; one instance is never executed on two threads at once.

use core::ffi::c_void;

/// ABI major version. A host refuses plugins of another major.
pub const SG_ABI_MAJOR: u32 = 1;
/// ABI minor version. A host accepts plugins of the same major and any minor (fields a plugin
/// of an older minor does not know read as zero; a newer plugin checks what the host offers).
///
/// History: 1.0 the first release; 1.1 streamed sequences (`SG_PORT_STREAM`, `SG_STREAM_*`,
/// `SgStream`, and the stream fields appended to `SgExecArgs`).
pub const SG_ABI_MINOR: u32 = 1;

/// Name of the one symbol every plugin exports: `const SgPlugin *stylegraph_plugin_entry(void)`.
pub const SG_ENTRY_SYMBOL: &str = "stylegraph_plugin_entry";

// ---------------------------------------------------------------------------------------------
// Status codes

/// Result of a call into a plugin or a host service.
pub type SgStatus = i32;
/// Success.
pub const SG_OK: SgStatus = 0;
/// The node failed; the message is in the error buffer.
pub const SG_ERROR: SgStatus = 1;
/// The node stopped because the host asked it to (`SgHost::is_cancelled`).
pub const SG_CANCELLED: SgStatus = 2;
/// The plugin caught a panic (or another fatal fault) inside the call.
pub const SG_PANIC: SgStatus = 3;
/// An argument was invalid (wrong value kind, wrong shape, unknown index...).
pub const SG_INVALID_ARGUMENT: SgStatus = 4;
/// The host could not allocate the requested memory.
pub const SG_OUT_OF_MEMORY: SgStatus = 5;

// ---------------------------------------------------------------------------------------------
// Strings

/// A UTF-8 string slice: pointer and length in bytes, not NUL-terminated. `ptr` may be null only
/// when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgStr {
    pub ptr: *const u8,
    pub len: usize,
}

// ---------------------------------------------------------------------------------------------
// Tensors: the layout of DLPack's DLTensor, so buffers can be shared with DLPack consumers.

/// DLPack device type: host memory.
pub const SG_DEVICE_CPU: i32 = 1;
/// DLPack device type: CUDA device memory.
pub const SG_DEVICE_CUDA: i32 = 2;
/// DLPack device type: Vulkan buffer (used for wgpu buffers).
pub const SG_DEVICE_VULKAN: i32 = 7;
/// DLPack device type: WebGPU buffer.
pub const SG_DEVICE_WEBGPU: i32 = 15;

/// Where a tensor lives (DLPack `DLDevice`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgDevice {
    /// One of the `SG_DEVICE_*` constants.
    pub device_type: i32,
    pub device_id: i32,
}

/// DLPack dtype code: signed integer.
pub const SG_DTYPE_INT: u8 = 0;
/// DLPack dtype code: unsigned integer.
pub const SG_DTYPE_UINT: u8 = 1;
/// DLPack dtype code: IEEE float.
pub const SG_DTYPE_FLOAT: u8 = 2;
/// DLPack dtype code: bfloat16.
pub const SG_DTYPE_BFLOAT: u8 = 4;
/// DLPack dtype code: boolean.
pub const SG_DTYPE_BOOL: u8 = 6;

/// Element type (DLPack `DLDataType`): e.g. f32 = {FLOAT, 32, 1}.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SgDType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

/// A tensor view with the layout of DLPack's `DLTensor`. `strides == NULL` means compact
/// row-major (C order), which is all the host produces today; strides are in elements.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgTensor {
    pub data: *mut c_void,
    pub device: SgDevice,
    pub ndim: i32,
    pub dtype: SgDType,
    pub shape: *const i64,
    pub strides: *const i64,
    pub byte_offset: u64,
}

// ---------------------------------------------------------------------------------------------
// Opaque objects

/// An opaque, reference-counted object made by a plugin (a loaded network, say). Only the plugin
/// that made it knows its layout; other plugins may pass it along. The host calls `retain` when
/// it keeps another reference and `release` when it drops one. `type_name` (e.g.
/// `stylegan.Generator`) is what ports of type `object:<type_name>` accept.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgObject {
    pub ptr: *const c_void,
    pub type_name: SgStr,
    pub retain: Option<unsafe extern "C" fn(ptr: *const c_void)>,
    pub release: Option<unsafe extern "C" fn(ptr: *const c_void)>,
    /// Approximate memory held, in bytes, for the host's cache budget.
    pub size_bytes: u64,
    /// An address unique to the plugin that made the object, so that plugin can recognise its
    /// own objects before looking inside them. Others must treat it as opaque.
    pub owner_tag: *const c_void,
}

// ---------------------------------------------------------------------------------------------
// Values on ports and params

/// Value kind: nothing (an unconnected optional input, or an output not produced).
pub const SG_VALUE_NONE: u32 = 0;
/// Value kind: boolean in `i` (0 or 1).
pub const SG_VALUE_BOOL: u32 = 1;
/// Value kind: 64-bit integer in `i`.
pub const SG_VALUE_INT: u32 = 2;
/// Value kind: double in `f`.
pub const SG_VALUE_FLOAT: u32 = 3;
/// Value kind: UTF-8 string in `s` (also paths and enum choices).
pub const SG_VALUE_STRING: u32 = 4;
/// Value kind: tensor in `tensor`.
pub const SG_VALUE_TENSOR: u32 = 5;
/// Value kind: opaque object in `object`.
pub const SG_VALUE_OBJECT: u32 = 6;

/// A value on a port or a param. Only the field named by `kind` is meaningful; the others are
/// zero. (A flat struct rather than a union keeps it trivially portable.)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgValue {
    /// One of the `SG_VALUE_*` constants.
    pub kind: u32,
    pub i: i64,
    pub f: f64,
    pub s: SgStr,
    pub tensor: SgTensor,
    pub object: SgObject,
}

// ---------------------------------------------------------------------------------------------
// Descriptors: plain static data, listable without creating an instance.

/// Port flag: the input may be left unconnected (the node then sees `SG_VALUE_NONE`).
pub const SG_PORT_OPTIONAL: u32 = 1;
/// Port flag (ABI 1.1): a streamed port.
///
/// On an **output** (at most one per node; a tensor type): the node is a *stream producer*. It
/// makes the value as a sequence of chunks along dimension 0; the host calls `execute` once per
/// chunk (chunk 0, 1, ...) until the node clears `SgStream::more`, and runs the nodes downstream
/// of it once per chunk. On an **input**: the node is a *stream consumer* (it writes a video,
/// say). It is called once per chunk, in order, keeps its state in its instance between calls,
/// finishes on the call flagged `SG_STREAM_LAST`, and its outputs are taken after that call.
/// A stream input fed by an ordinary value gets it as a single chunk that is also the last.
/// The host honours this flag only for plugins that declare ABI minor >= 1.
pub const SG_PORT_STREAM: u32 = 2;

/// An input or output port.
///
/// `type_name` is one of: `bool`, `int`, `float`, `string`, `path`, `Tensor` (any tensor),
/// the semantic tensor types `Z`, `W`, `WPlus`, `Image`, `Features`, `Direction`, `Mask`, or
/// `object:<name>` for an opaque plugin object, or `any`. An input of type `Tensor` accepts every
/// semantic tensor type; `any` accepts everything.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgPortDesc {
    pub name: SgStr,
    pub type_name: SgStr,
    pub doc: SgStr,
    /// `SG_PORT_*` flags.
    pub flags: u32,
}

/// Param kind: boolean.
pub const SG_PARAM_BOOL: u32 = 1;
/// Param kind: integer (`min`/`max` apply).
pub const SG_PARAM_INT: u32 = 2;
/// Param kind: floating point (`min`/`max` apply).
pub const SG_PARAM_FLOAT: u32 = 3;
/// Param kind: free text.
pub const SG_PARAM_STRING: u32 = 4;
/// Param kind: a file system path (the editor shows a file picker).
pub const SG_PARAM_PATH: u32 = 5;
/// Param kind: one of `choices`.
pub const SG_PARAM_ENUM: u32 = 6;

/// Param flag: `min` is set.
pub const SG_PARAM_HAS_MIN: u32 = 1;
/// Param flag: `max` is set.
pub const SG_PARAM_HAS_MAX: u32 = 2;
/// Param flag: this int is a random seed (the editor shows a dice button). A non-deterministic
/// node whose seed param is >= 0 is deterministic for caching purposes.
pub const SG_PARAM_SEED: u32 = 4;
/// Param flag: the path names a file the node writes (the editor shows a save dialog).
pub const SG_PARAM_OUTPUT_PATH: u32 = 8;
/// Param flag: a float best edited on a logarithmic slider.
pub const SG_PARAM_LOG_SCALE: u32 = 16;
/// Param flag: a string holding an RGB(A) colour as `#rrggbb[aa]`.
pub const SG_PARAM_COLOR: u32 = 32;

/// A node parameter: a value set in the graph file (not connected).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgParamDesc {
    pub name: SgStr,
    /// One of the `SG_PARAM_*` kinds.
    pub kind: u32,
    pub doc: SgStr,
    /// Default value: `kind` matches the param kind (`SG_VALUE_INT` for INT...). Strings, paths
    /// and enums use `SG_VALUE_STRING`.
    pub default_value: SgValue,
    pub min: f64,
    pub max: f64,
    /// Suggested UI step (0 = none).
    pub step: f64,
    /// `SG_PARAM_HAS_MIN` | `SG_PARAM_HAS_MAX` | `SG_PARAM_SEED` | ...
    pub flags: u32,
    /// Allowed values of an ENUM param.
    pub choices: *const SgStr,
    pub choice_count: usize,
}

/// Node flag: outputs depend on something besides params and inputs (random noise, the clock).
/// Such a node is re-executed on every run unless it has a `SG_PARAM_SEED` param set >= 0.
pub const SG_NODE_NONDETERMINISTIC: u32 = 1;
/// Node flag: the node acts on the world (writes a file, emits a preview); it is executed on every
/// run even when its inputs are unchanged, and it is never skipped as unused.
pub const SG_NODE_SIDE_EFFECT: u32 = 2;

/// Describes one node type.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgNodeDesc {
    pub struct_size: u32,
    /// Globally unique type id, `plugin.name` (e.g. `core.add`).
    pub type_id: SgStr,
    pub display_name: SgStr,
    /// Palette category, `/`-separated (e.g. `Math/Tensor`).
    pub category: SgStr,
    /// Markdown documentation.
    pub doc: SgStr,
    pub inputs: *const SgPortDesc,
    pub input_count: usize,
    pub outputs: *const SgPortDesc,
    pub output_count: usize,
    pub params: *const SgParamDesc,
    pub param_count: usize,
    /// `SG_NODE_*` flags.
    pub flags: u32,
}

// ---------------------------------------------------------------------------------------------
// Host services

/// Log level for `SgHost::log`.
pub const SG_LOG_ERROR: i32 = 1;
pub const SG_LOG_WARN: i32 = 2;
pub const SG_LOG_INFO: i32 = 3;
pub const SG_LOG_DEBUG: i32 = 4;

/// Extension id reserved for the wgpu compute service (`wgpu.dispatch`: run a WGSL compute
/// shader on host buffers). Not implemented yet: `get_extension` returns NULL.
pub const SG_EXT_WGPU: &str = "stylegraph.wgpu.v1";
/// Extension id reserved for the CUDA service (context, stream, device pointers, PTX/NVRTC
/// kernel launch, cuBLAS GEMM). Not implemented yet: `get_extension` returns NULL.
pub const SG_EXT_CUDA: &str = "stylegraph.cuda.v1";

/// Services the host offers to a node during `execute`. `ctx` is passed back to every function.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgHost {
    pub struct_size: u32,
    /// The host's ABI minor version (services beyond this struct's size are absent).
    pub abi_minor: u32,
    pub ctx: *mut c_void,
    /// Allocates a zero-filled tensor of `dtype` and `shape` on `device` and describes it in `out`.
    /// The host owns the memory; hand the tensor back in an output to keep it.
    pub alloc_tensor: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            dtype: SgDType,
            ndim: i32,
            shape: *const i64,
            device: SgDevice,
            out: *mut SgTensor,
        ) -> SgStatus,
    >,
    /// Writes a log line attributed to the running node.
    pub log: Option<unsafe extern "C" fn(ctx: *mut c_void, level: i32, message: SgStr)>,
    /// Reports progress in [0, 1] with a short message (may be empty).
    pub progress: Option<unsafe extern "C" fn(ctx: *mut c_void, fraction: f64, message: SgStr)>,
    /// True once the run was cancelled: return `SG_CANCELLED` soon after.
    pub is_cancelled: Option<unsafe extern "C" fn(ctx: *mut c_void) -> bool>,
    /// Emits a preview of an image tensor (`[N,3,H,W]` f32 in [-1,1] or `[H,W,C]` u8) to the
    /// front end. The host copies what it needs before returning.
    pub emit_preview:
        Option<unsafe extern "C" fn(ctx: *mut c_void, image: *const SgTensor, label: SgStr)>,
    /// Returns the service struct for an extension id (`SG_EXT_*`), or NULL if not offered.
    pub get_extension: Option<unsafe extern "C" fn(ctx: *mut c_void, id: SgStr) -> *const c_void>,
}

/// A buffer for a node's error message, provided by the host.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgErrorBuf {
    pub buf: *mut u8,
    pub capacity: usize,
    /// Bytes written (set by the plugin, at most `capacity`).
    pub len: usize,
}

/// `SgExecArgs::stream_flags` (ABI 1.1): this call handles one chunk of a streamed sequence;
/// `chunk_index`, `chunk_offset` and `stream_total` are valid. Set for a stream producer, the
/// nodes downstream of it, and every call of a stream consumer.
pub const SG_STREAM_ACTIVE: u32 = 1;
/// `SgExecArgs::stream_flags`: the chunk is the last one of the sequence. A consumer finishes
/// its work (closes the file) and sets its outputs. Never set for the producer itself, which
/// decides where the sequence ends.
pub const SG_STREAM_LAST: u32 = 2;
/// `SgExecArgs::stream_flags`: the sequence is abandoned (cancelled, or a node of it failed).
/// Sent to stream consumers only, together with `SG_STREAM_ACTIVE`: every input is
/// `SG_VALUE_NONE` and outputs are ignored. The consumer discards its state (removes a partial
/// file) and returns `SG_OK`. The host destroys the instance after this call.
pub const SG_STREAM_ABORT: u32 = 4;

/// What a stream producer reports about its sequence (ABI 1.1), through `SgExecArgs::stream`.
/// The host presets `more` to 0 and `total_items` to the last value reported.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgStream {
    /// `sizeof(SgStream)` as the host knows it: write only fields that fit.
    pub struct_size: u32,
    /// Set to 1 when another chunk follows this one; leave 0 on the last chunk.
    pub more: u32,
    /// Items (rows along dimension 0 of the stream output) in the whole sequence, when known;
    /// 0 = unknown. Used for progress and passed to the nodes downstream in `stream_total`.
    pub total_items: u64,
}

/// Arguments of one `execute` call.
///
/// The stream fields (ABI 1.1) come last and are zero in a call that is not part of a stream (and
/// when the host is of ABI 1.0, where the struct ends at `error`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgExecArgs {
    pub struct_size: u32,
    /// Inputs in descriptor order (`SG_VALUE_NONE` for an unconnected optional input).
    pub inputs: *const SgValue,
    pub input_count: usize,
    /// Params in descriptor order, always present (defaults filled in by the host).
    pub params: *const SgValue,
    pub param_count: usize,
    /// Outputs in descriptor order, pre-set to `SG_VALUE_NONE`; the node fills them.
    pub outputs: *mut SgValue,
    pub output_count: usize,
    /// The graph's id for this node, for messages.
    pub node_id: SgStr,
    pub error: *mut SgErrorBuf,
    /// `SG_STREAM_*` flags (ABI 1.1); 0 outside a stream.
    pub stream_flags: u32,
    /// Which chunk of the sequence this call handles: 0, 1, ...
    pub chunk_index: u64,
    /// Items (along dimension 0 of the producer's stream output) in the chunks before this one.
    pub chunk_offset: u64,
    /// Items in the whole sequence as the producer reported it; 0 = unknown. For a consumer fed
    /// by an ordinary value: that value's dimension 0.
    pub stream_total: u64,
    /// For a stream producer: where it reports `more` and `total_items`. NULL for other nodes.
    pub stream: *mut SgStream,
}

// ---------------------------------------------------------------------------------------------
// The plugin entry

/// What `stylegraph_plugin_entry()` returns: a static description of the plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgPlugin {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: u32,
    /// Short unique id (`core`, `stylegan`).
    pub plugin_id: SgStr,
    /// The plugin's own version (part of every cache key of its nodes).
    pub plugin_version: SgStr,
    pub description: SgStr,
    pub node_count: usize,
    /// Descriptor of node `index` (`0..node_count`), static, or NULL for a bad index.
    pub describe: Option<unsafe extern "C" fn(index: usize) -> *const SgNodeDesc>,
    /// Creates an instance of node `index`; writes it to `*instance` (may be NULL for stateless
    /// nodes). Errors go to `error`.
    pub create: Option<
        unsafe extern "C" fn(
            index: usize,
            instance: *mut *mut c_void,
            error: *mut SgErrorBuf,
        ) -> SgStatus,
    >,
    /// Destroys an instance made by `create`.
    pub destroy: Option<unsafe extern "C" fn(index: usize, instance: *mut c_void)>,
    /// Runs node `index` on `instance`.
    pub execute: Option<
        unsafe extern "C" fn(
            index: usize,
            instance: *mut c_void,
            host: *const SgHost,
            args: *const SgExecArgs,
        ) -> SgStatus,
    >,
}

/// The signature of the entry symbol.
pub type SgPluginEntryFn = unsafe extern "C" fn() -> *const SgPlugin;

// SAFETY: descriptors are immutable static data (pointers to static strings and arrays), so
// sharing them between threads is sound.
unsafe impl Sync for SgStr {}
unsafe impl Send for SgStr {}
unsafe impl Sync for SgPortDesc {}
unsafe impl Sync for SgParamDesc {}
unsafe impl Send for SgParamDesc {}
unsafe impl Send for SgPortDesc {}
unsafe impl Sync for SgNodeDesc {}
unsafe impl Send for SgNodeDesc {}
unsafe impl Sync for SgPlugin {}
unsafe impl Send for SgPlugin {}
unsafe impl Sync for SgValue {}
unsafe impl Send for SgValue {}

impl SgStr {
    /// The empty string.
    pub const EMPTY: SgStr = SgStr {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows a Rust string. The caller keeps `s` alive while the `SgStr` is used.
    pub const fn from_str(s: &str) -> SgStr {
        SgStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Reads the string.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or be null with `len == 0`) that outlive `'a`.
    pub unsafe fn as_str<'a>(&self) -> Result<&'a str, core::str::Utf8Error> {
        if self.ptr.is_null() || self.len == 0 {
            return Ok("");
        }
        core::str::from_utf8(core::slice::from_raw_parts(self.ptr, self.len))
    }

    /// Reads the string, replacing invalid UTF-8.
    ///
    /// # Safety
    /// As for [`SgStr::as_str`].
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.ptr.is_null() || self.len == 0 {
            return String::new();
        }
        String::from_utf8_lossy(core::slice::from_raw_parts(self.ptr, self.len)).into_owned()
    }
}

impl SgDType {
    pub const F32: SgDType = SgDType {
        code: SG_DTYPE_FLOAT,
        bits: 32,
        lanes: 1,
    };
    pub const F64: SgDType = SgDType {
        code: SG_DTYPE_FLOAT,
        bits: 64,
        lanes: 1,
    };
    pub const F16: SgDType = SgDType {
        code: SG_DTYPE_FLOAT,
        bits: 16,
        lanes: 1,
    };
    pub const U8: SgDType = SgDType {
        code: SG_DTYPE_UINT,
        bits: 8,
        lanes: 1,
    };
    pub const I64: SgDType = SgDType {
        code: SG_DTYPE_INT,
        bits: 64,
        lanes: 1,
    };

    /// Bytes per element (rounded up to whole bytes).
    pub const fn size_bytes(&self) -> usize {
        (self.bits as usize * self.lanes as usize).div_ceil(8)
    }

    /// A short name: `f32`, `u8`, `i64`...
    pub fn name(&self) -> String {
        let prefix = match self.code {
            SG_DTYPE_INT => "i",
            SG_DTYPE_UINT => "u",
            SG_DTYPE_FLOAT => "f",
            SG_DTYPE_BFLOAT => "bf",
            SG_DTYPE_BOOL => "bool",
            _ => "?",
        };
        if self.code == SG_DTYPE_BOOL {
            return "bool".into();
        }
        if self.lanes == 1 {
            format!("{prefix}{}", self.bits)
        } else {
            format!("{prefix}{}x{}", self.bits, self.lanes)
        }
    }
}

impl SgDevice {
    pub const CPU: SgDevice = SgDevice {
        device_type: SG_DEVICE_CPU,
        device_id: 0,
    };
}

impl SgTensor {
    /// A tensor descriptor with no data.
    pub const EMPTY: SgTensor = SgTensor {
        data: core::ptr::null_mut(),
        device: SgDevice::CPU,
        ndim: 0,
        dtype: SgDType::F32,
        shape: core::ptr::null(),
        strides: core::ptr::null(),
        byte_offset: 0,
    };
}

impl SgObject {
    pub const EMPTY: SgObject = SgObject {
        ptr: core::ptr::null(),
        type_name: SgStr::EMPTY,
        retain: None,
        release: None,
        size_bytes: 0,
        owner_tag: core::ptr::null(),
    };
}

impl SgValue {
    /// `SG_VALUE_NONE`.
    pub const NONE: SgValue = SgValue {
        kind: SG_VALUE_NONE,
        i: 0,
        f: 0.0,
        s: SgStr::EMPTY,
        tensor: SgTensor::EMPTY,
        object: SgObject::EMPTY,
    };

    pub const fn int(i: i64) -> SgValue {
        SgValue {
            kind: SG_VALUE_INT,
            i,
            ..SgValue::NONE
        }
    }
    pub const fn float(f: f64) -> SgValue {
        SgValue {
            kind: SG_VALUE_FLOAT,
            f,
            ..SgValue::NONE
        }
    }
    pub const fn boolean(b: bool) -> SgValue {
        SgValue {
            kind: SG_VALUE_BOOL,
            i: b as i64,
            ..SgValue::NONE
        }
    }
    pub const fn string(s: SgStr) -> SgValue {
        SgValue {
            kind: SG_VALUE_STRING,
            s,
            ..SgValue::NONE
        }
    }
    pub const fn tensor(tensor: SgTensor) -> SgValue {
        SgValue {
            kind: SG_VALUE_TENSOR,
            tensor,
            ..SgValue::NONE
        }
    }
    pub const fn object(object: SgObject) -> SgValue {
        SgValue {
            kind: SG_VALUE_OBJECT,
            object,
            ..SgValue::NONE
        }
    }
}

/// Reads a versioned struct written by code built for another minor version: copies the first
/// `min(struct_size, size_of::<T>())` bytes over `T`'s zero value, so fields the writer did not
/// know about read as zero (null pointers, `None` functions, 0 counts).
///
/// # Safety
/// `ptr` must point to at least `struct_size` readable bytes, and `T` must be a `repr(C)` type for
/// which all-zero bytes are a valid value (true of every struct in this module).
pub unsafe fn read_versioned<T: Copy>(ptr: *const T, struct_size: u32) -> T {
    let mut out = core::mem::MaybeUninit::<T>::zeroed();
    let n = (struct_size as usize).min(core::mem::size_of::<T>());
    core::ptr::copy_nonoverlapping(ptr as *const u8, out.as_mut_ptr() as *mut u8, n);
    out.assume_init()
}
