//! The glue behind [`export_plugin!`](crate::export_plugin): static descriptor tables built from
//! the nodes' [`NodeSpec`]s, and the `extern "C"` entry points, each of which catches panics so
//! that no unwind ever crosses the C boundary.

use crate::ffi::*;
use crate::sdk::{Context, Node, NodeError, NodeSpec, ParamDefault};
use core::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Type-erased node constructor and executor.
pub trait DynNode: Send {
    fn execute(&mut self, ctx: &mut Context<'_>) -> Result<(), NodeError>;
}

impl<T: Node> DynNode for T {
    fn execute(&mut self, ctx: &mut Context<'_>) -> Result<(), NodeError> {
        Node::execute(self, ctx)
    }
}

/// One node type in a plugin: how to describe it and how to make an instance.
pub struct NodeEntry {
    pub spec: fn() -> NodeSpec,
    pub create: fn() -> Result<Box<dyn DynNode>, NodeError>,
}

impl NodeEntry {
    pub fn of<T: Node>() -> NodeEntry {
        NodeEntry {
            spec: T::spec,
            create: || T::create().map(|n| Box::new(n) as Box<dyn DynNode>),
        }
    }
}

/// An instance as the host holds it.
struct Instance {
    node: Box<dyn DynNode>,
    /// Output strings of the last execution (see `Context::set_output_str`).
    keep: Vec<Box<str>>,
}

/// A plugin's static state: entry struct and descriptor tables. Built once, never freed (plugins
/// are never unloaded, so leaking is the correct lifetime).
pub struct PluginRuntime {
    specs: Vec<NodeSpec>,
    entries: Vec<NodeEntry>,
    descs: Vec<SgNodeDesc>,
    plugin: SgPlugin,
}

fn leak_str(s: &str) -> SgStr {
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    SgStr::from_str(leaked)
}

fn leak_slice<T: 'static>(v: Vec<T>) -> (*const T, usize) {
    let len = v.len();
    let leaked: &'static [T] = Box::leak(v.into_boxed_slice());
    (leaked.as_ptr(), len)
}

fn build_desc(spec: &NodeSpec) -> SgNodeDesc {
    let port = |p: &crate::sdk::PortSpec| SgPortDesc {
        name: leak_str(&p.name),
        type_name: leak_str(&p.type_name),
        doc: leak_str(&p.doc),
        flags: if p.optional { SG_PORT_OPTIONAL } else { 0 }
            | if p.stream { SG_PORT_STREAM } else { 0 },
    };
    let (inputs, input_count) = leak_slice(spec.inputs.iter().map(port).collect());
    let (outputs, output_count) = leak_slice(spec.outputs.iter().map(port).collect());
    let params: Vec<SgParamDesc> = spec
        .params
        .iter()
        .map(|p| {
            let default_value = match &p.default {
                ParamDefault::Bool(b) => SgValue::boolean(*b),
                ParamDefault::Int(i) => SgValue::int(*i),
                ParamDefault::Float(f) => SgValue::float(*f),
                ParamDefault::Str(s) => SgValue::string(leak_str(s)),
            };
            let (choices, choice_count) =
                leak_slice(p.choices.iter().map(|c| leak_str(c)).collect());
            let mut flags = p.flags;
            if p.min.is_some() {
                flags |= SG_PARAM_HAS_MIN;
            }
            if p.max.is_some() {
                flags |= SG_PARAM_HAS_MAX;
            }
            SgParamDesc {
                name: leak_str(&p.name),
                kind: p.kind,
                doc: leak_str(&p.doc),
                default_value,
                min: p.min.unwrap_or(0.0),
                max: p.max.unwrap_or(0.0),
                step: p.step,
                flags,
                choices,
                choice_count,
            }
        })
        .collect();
    let (params, param_count) = leak_slice(params);
    SgNodeDesc {
        struct_size: core::mem::size_of::<SgNodeDesc>() as u32,
        type_id: leak_str(&spec.type_id),
        display_name: leak_str(&spec.display_name),
        category: leak_str(&spec.category),
        doc: leak_str(&spec.doc),
        inputs,
        input_count,
        outputs,
        output_count,
        params,
        param_count,
        flags: spec.flags,
    }
}

/// The C functions a plugin exports, generated per plugin by `export_plugin!`.
pub struct CallTable {
    pub describe: unsafe extern "C" fn(usize) -> *const SgNodeDesc,
    pub create: unsafe extern "C" fn(usize, *mut *mut c_void, *mut SgErrorBuf) -> SgStatus,
    pub destroy: unsafe extern "C" fn(usize, *mut c_void),
    pub execute:
        unsafe extern "C" fn(usize, *mut c_void, *const SgHost, *const SgExecArgs) -> SgStatus,
}

impl PluginRuntime {
    /// Builds the tables. Called once, lazily, from the entry point.
    pub fn new(
        id: &str,
        version: &str,
        description: &str,
        entries: Vec<NodeEntry>,
        calls: CallTable,
    ) -> PluginRuntime {
        let specs: Vec<NodeSpec> = entries.iter().map(|e| (e.spec)()).collect();
        let descs = specs.iter().map(build_desc).collect::<Vec<_>>();
        let plugin = SgPlugin {
            abi_major: SG_ABI_MAJOR,
            abi_minor: SG_ABI_MINOR,
            struct_size: core::mem::size_of::<SgPlugin>() as u32,
            plugin_id: leak_str(id),
            plugin_version: leak_str(version),
            description: leak_str(description),
            node_count: specs.len(),
            describe: Some(calls.describe),
            create: Some(calls.create),
            destroy: Some(calls.destroy),
            execute: Some(calls.execute),
        };
        PluginRuntime {
            specs,
            entries,
            descs,
            plugin,
        }
    }

    pub fn entry(&self) -> *const SgPlugin {
        &self.plugin
    }

    /// The specs, for tests and tooling in the plugin's own crate.
    pub fn specs(&self) -> &[NodeSpec] {
        &self.specs
    }

    pub fn describe(&self, index: usize) -> *const SgNodeDesc {
        self.descs
            .get(index)
            .map_or(core::ptr::null(), |d| d as *const SgNodeDesc)
    }

    /// # Safety
    /// Pointers as in the ABI contract of `SgPlugin::create`.
    pub unsafe fn create(
        &self,
        index: usize,
        out: *mut *mut c_void,
        error: *mut SgErrorBuf,
    ) -> SgStatus {
        let Some(entry) = self.entries.get(index) else {
            write_error(error, &format!("no node with index {index}"));
            return SG_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return SG_INVALID_ARGUMENT;
        }
        match catch_unwind(AssertUnwindSafe(|| (entry.create)())) {
            Ok(Ok(node)) => {
                let inst = Box::new(Instance {
                    node,
                    keep: Vec::new(),
                });
                *out = Box::into_raw(inst) as *mut c_void;
                SG_OK
            }
            Ok(Err(e)) => {
                write_error(error, &e.message);
                e.status
            }
            Err(payload) => {
                write_error(error, &format!("panicked: {}", panic_message(&payload)));
                SG_PANIC
            }
        }
    }

    /// # Safety
    /// `instance` must come from `create` and not be used afterwards.
    pub unsafe fn destroy(&self, _index: usize, instance: *mut c_void) {
        if instance.is_null() {
            return;
        }
        let inst = Box::from_raw(instance as *mut Instance);
        // A panicking destructor must not unwind into the host.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(inst)));
    }

    /// # Safety
    /// Pointers as in the ABI contract of `SgPlugin::execute`.
    pub unsafe fn execute(
        &self,
        index: usize,
        instance: *mut c_void,
        host: *const SgHost,
        args: *const SgExecArgs,
    ) -> SgStatus {
        if host.is_null() || args.is_null() || instance.is_null() {
            return SG_INVALID_ARGUMENT;
        }
        let Some(spec) = self.specs.get(index) else {
            return SG_INVALID_ARGUMENT;
        };
        let host = read_versioned(host, (*host).struct_size);
        let args = read_versioned(args, (*args).struct_size);
        let inst = &mut *(instance as *mut Instance);
        inst.keep.clear();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context::from_raw(spec, host, args, &mut inst.keep);
            inst.node.execute(&mut ctx)
        }));
        match result {
            Ok(Ok(())) => SG_OK,
            Ok(Err(e)) => {
                write_error(args.error, &e.message);
                e.status
            }
            Err(payload) => {
                write_error(
                    args.error,
                    &format!("panicked: {}", panic_message(&payload)),
                );
                SG_PANIC
            }
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Copies a message into the host's error buffer, cut at a character boundary if too long.
///
/// # Safety
/// `error` must be null or point to a valid `SgErrorBuf` whose `buf` has `capacity` bytes.
pub unsafe fn write_error(error: *mut SgErrorBuf, message: &str) {
    if error.is_null() {
        return;
    }
    let e = &mut *error;
    if e.buf.is_null() || e.capacity == 0 {
        return;
    }
    let mut n = message.len().min(e.capacity);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    core::ptr::copy_nonoverlapping(message.as_ptr(), e.buf, n);
    e.len = n;
}

/// Declares the plugin: its id, version, description and node types, and exports the C entry
/// point `stylegraph_plugin_entry`.
///
/// ```ignore
/// stylegraph_abi::export_plugin!(
///     id: "core",
///     version: env!("CARGO_PKG_VERSION"),
///     description: "Constants, math, tensors",
///     nodes: [ConstFloat, Add],
/// );
/// ```
#[macro_export]
macro_rules! export_plugin {
    (id: $id:expr, version: $version:expr, description: $desc:expr, nodes: [$($node:ty),* $(,)?] $(,)?) => {
        static __SG_RUNTIME: ::std::sync::OnceLock<$crate::runtime::PluginRuntime> =
            ::std::sync::OnceLock::new();

        /// The plugin's runtime tables (for tests in the plugin crate).
        pub fn __stylegraph_runtime() -> &'static $crate::runtime::PluginRuntime {
            __SG_RUNTIME.get_or_init(|| {
                $crate::runtime::PluginRuntime::new(
                    $id,
                    $version,
                    $desc,
                    ::std::vec![$($crate::runtime::NodeEntry::of::<$node>()),*],
                    $crate::runtime::CallTable {
                        describe: __sg_describe,
                        create: __sg_create,
                        destroy: __sg_destroy,
                        execute: __sg_execute,
                    },
                )
            })
        }

        unsafe extern "C" fn __sg_describe(index: usize) -> *const $crate::ffi::SgNodeDesc {
            ::std::panic::catch_unwind(|| __stylegraph_runtime().describe(index))
                .unwrap_or(::core::ptr::null())
        }
        unsafe extern "C" fn __sg_create(
            index: usize,
            out: *mut *mut ::core::ffi::c_void,
            error: *mut $crate::ffi::SgErrorBuf,
        ) -> $crate::ffi::SgStatus {
            ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe {
                __stylegraph_runtime().create(index, out, error)
            }))
            .unwrap_or($crate::ffi::SG_PANIC)
        }
        unsafe extern "C" fn __sg_destroy(index: usize, instance: *mut ::core::ffi::c_void) {
            let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe {
                __stylegraph_runtime().destroy(index, instance)
            }));
        }
        unsafe extern "C" fn __sg_execute(
            index: usize,
            instance: *mut ::core::ffi::c_void,
            host: *const $crate::ffi::SgHost,
            args: *const $crate::ffi::SgExecArgs,
        ) -> $crate::ffi::SgStatus {
            ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe {
                __stylegraph_runtime().execute(index, instance, host, args)
            }))
            .unwrap_or($crate::ffi::SG_PANIC)
        }

        /// The plugin entry point (see `stylegraph_plugin.h`).
        #[no_mangle]
        pub extern "C" fn stylegraph_plugin_entry() -> *const $crate::ffi::SgPlugin {
            ::std::panic::catch_unwind(|| __stylegraph_runtime().entry())
                .unwrap_or(::core::ptr::null())
        }
    };
}
