/*
 * stylegraph_plugin.h: the C ABI of Stylegraph node plugins.
 *
 * GENERATED from engine/abi/src/ffi.rs by `cargo run -p stylegraph-gen-header`; do not edit.
 * The contract (ownership, threading, versioning) is documented in docs/plugin-abi.md and in the
 * comments below. A plugin exports one symbol:
 *
 *     const SgPlugin *stylegraph_plugin_entry(void);
 *
 * Objects (SgObject) you hand to the host must be usable from any thread.
 */

#ifndef STYLEGRAPH_PLUGIN_H
#define STYLEGRAPH_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ABI major version. A host refuses plugins of another major.
#define SG_ABI_MAJOR 1

// ABI minor version. A host accepts plugins of the same major and any minor (fields a plugin
// of an older minor does not know read as zero; a newer plugin checks what the host offers).
//
// History: 1.0 the first release; 1.1 streamed sequences (`SG_PORT_STREAM`, `SG_STREAM_*`,
// `SgStream`, and the stream fields appended to `SgExecArgs`).
#define SG_ABI_MINOR 1

// DLPack device type: host memory.
#define SG_DEVICE_CPU 1

// DLPack device type: CUDA device memory.
#define SG_DEVICE_CUDA 2

// DLPack device type: Vulkan buffer (used for wgpu buffers).
#define SG_DEVICE_VULKAN 7

// DLPack device type: WebGPU buffer.
#define SG_DEVICE_WEBGPU 15

// DLPack dtype code: signed integer.
#define SG_DTYPE_INT 0

// DLPack dtype code: unsigned integer.
#define SG_DTYPE_UINT 1

// DLPack dtype code: IEEE float.
#define SG_DTYPE_FLOAT 2

// DLPack dtype code: bfloat16.
#define SG_DTYPE_BFLOAT 4

// DLPack dtype code: boolean.
#define SG_DTYPE_BOOL 6

// Value kind: nothing (an unconnected optional input, or an output not produced).
#define SG_VALUE_NONE 0

// Value kind: boolean in `i` (0 or 1).
#define SG_VALUE_BOOL 1

// Value kind: 64-bit integer in `i`.
#define SG_VALUE_INT 2

// Value kind: double in `f`.
#define SG_VALUE_FLOAT 3

// Value kind: UTF-8 string in `s` (also paths and enum choices).
#define SG_VALUE_STRING 4

// Value kind: tensor in `tensor`.
#define SG_VALUE_TENSOR 5

// Value kind: opaque object in `object`.
#define SG_VALUE_OBJECT 6

// Port flag: the input may be left unconnected (the node then sees `SG_VALUE_NONE`).
#define SG_PORT_OPTIONAL 1

// Port flag (ABI 1.1): a streamed port.
//
// On an **output** (at most one per node; a tensor type): the node is a *stream producer*. It
// makes the value as a sequence of chunks along dimension 0; the host calls `execute` once per
// chunk (chunk 0, 1, ...) until the node clears `SgStream::more`, and runs the nodes downstream
// of it once per chunk. On an **input**: the node is a *stream consumer* (it writes a video,
// say). It is called once per chunk, in order, keeps its state in its instance between calls,
// finishes on the call flagged `SG_STREAM_LAST`, and its outputs are taken after that call.
// A stream input fed by an ordinary value gets it as a single chunk that is also the last.
// The host honours this flag only for plugins that declare ABI minor >= 1.
#define SG_PORT_STREAM 2

// Param kind: boolean.
#define SG_PARAM_BOOL 1

// Param kind: integer (`min`/`max` apply).
#define SG_PARAM_INT 2

// Param kind: floating point (`min`/`max` apply).
#define SG_PARAM_FLOAT 3

// Param kind: free text.
#define SG_PARAM_STRING 4

// Param kind: a file system path (the editor shows a file picker).
#define SG_PARAM_PATH 5

// Param kind: one of `choices`.
#define SG_PARAM_ENUM 6

// Param flag: `min` is set.
#define SG_PARAM_HAS_MIN 1

// Param flag: `max` is set.
#define SG_PARAM_HAS_MAX 2

// Param flag: this int is a random seed (the editor shows a dice button). A non-deterministic
// node whose seed param is >= 0 is deterministic for caching purposes.
#define SG_PARAM_SEED 4

// Param flag: the path names a file the node writes (the editor shows a save dialog).
#define SG_PARAM_OUTPUT_PATH 8

// Param flag: a float best edited on a logarithmic slider.
#define SG_PARAM_LOG_SCALE 16

// Param flag: a string holding an RGB(A) colour as `#rrggbb[aa]`.
#define SG_PARAM_COLOR 32

// Node flag: outputs depend on something besides params and inputs (random noise, the clock).
// Such a node is re-executed on every run unless it has a `SG_PARAM_SEED` param set >= 0.
#define SG_NODE_NONDETERMINISTIC 1

// Node flag: the node acts on the world (writes a file, emits a preview); it is executed on every
// run even when its inputs are unchanged, and it is never skipped as unused.
#define SG_NODE_SIDE_EFFECT 2

// Log level for `SgHost::log`.
#define SG_LOG_ERROR 1

#define SG_LOG_WARN 2

#define SG_LOG_INFO 3

#define SG_LOG_DEBUG 4

// `SgExecArgs::stream_flags` (ABI 1.1): this call handles one chunk of a streamed sequence;
// `chunk_index`, `chunk_offset` and `stream_total` are valid. Set for a stream producer, the
// nodes downstream of it, and every call of a stream consumer.
#define SG_STREAM_ACTIVE 1

// `SgExecArgs::stream_flags`: the chunk is the last one of the sequence. A consumer finishes
// its work (closes the file) and sets its outputs. Never set for the producer itself, which
// decides where the sequence ends.
#define SG_STREAM_LAST 2

// `SgExecArgs::stream_flags`: the sequence is abandoned (cancelled, or a node of it failed).
// Sent to stream consumers only, together with `SG_STREAM_ACTIVE`: every input is
// `SG_VALUE_NONE` and outputs are ignored. The consumer discards its state (removes a partial
// file) and returns `SG_OK`. The host destroys the instance after this call.
#define SG_STREAM_ABORT 4

// Result of a call into a plugin or a host service.
typedef int32_t SgStatus;

// A UTF-8 string slice: pointer and length in bytes, not NUL-terminated. `ptr` may be null only
// when `len` is 0.
typedef struct SgStr {
  const uint8_t *ptr;
  size_t len;
} SgStr;

// An input or output port.
//
// `type_name` is one of: `bool`, `int`, `float`, `string`, `path`, `Tensor` (any tensor),
// the semantic tensor types `Z`, `W`, `WPlus`, `Image`, `Features`, `Direction`, `Mask`, or
// `object:<name>` for an opaque plugin object, or `any`. An input of type `Tensor` accepts every
// semantic tensor type; `any` accepts everything.
typedef struct SgPortDesc {
  struct SgStr name;
  struct SgStr type_name;
  struct SgStr doc;
  // `SG_PORT_*` flags.
  uint32_t flags;
} SgPortDesc;

// Where a tensor lives (DLPack `DLDevice`).
typedef struct SgDevice {
  // One of the `SG_DEVICE_*` constants.
  int32_t device_type;
  int32_t device_id;
} SgDevice;

// Element type (DLPack `DLDataType`): e.g. f32 = {FLOAT, 32, 1}.
typedef struct SgDType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} SgDType;

// A tensor view with the layout of DLPack's `DLTensor`. `strides == NULL` means compact
// row-major (C order), which is all the host produces today; strides are in elements.
typedef struct SgTensor {
  void *data;
  struct SgDevice device;
  int32_t ndim;
  struct SgDType dtype;
  const int64_t *shape;
  const int64_t *strides;
  uint64_t byte_offset;
} SgTensor;

// An opaque, reference-counted object made by a plugin (a loaded network, say). Only the plugin
// that made it knows its layout; other plugins may pass it along. The host calls `retain` when
// it keeps another reference and `release` when it drops one. `type_name` (e.g.
// `stylegan.Generator`) is what ports of type `object:<type_name>` accept.
typedef struct SgObject {
  const void *ptr;
  struct SgStr type_name;
  void (*retain)(const void *ptr);
  void (*release)(const void *ptr);
  // Approximate memory held, in bytes, for the host's cache budget.
  uint64_t size_bytes;
  // An address unique to the plugin that made the object, so that plugin can recognise its
  // own objects before looking inside them. Others must treat it as opaque.
  const void *owner_tag;
} SgObject;

// A value on a port or a param. Only the field named by `kind` is meaningful; the others are
// zero. (A flat struct rather than a union keeps it trivially portable.)
typedef struct SgValue {
  // One of the `SG_VALUE_*` constants.
  uint32_t kind;
  int64_t i;
  double f;
  struct SgStr s;
  struct SgTensor tensor;
  struct SgObject object;
} SgValue;
// `SG_VALUE_NONE`.

// A node parameter: a value set in the graph file (not connected).
typedef struct SgParamDesc {
  struct SgStr name;
  // One of the `SG_PARAM_*` kinds.
  uint32_t kind;
  struct SgStr doc;
  // Default value: `kind` matches the param kind (`SG_VALUE_INT` for INT...). Strings, paths
  // and enums use `SG_VALUE_STRING`.
  struct SgValue default_value;
  double min;
  double max;
  // Suggested UI step (0 = none).
  double step;
  // `SG_PARAM_HAS_MIN` | `SG_PARAM_HAS_MAX` | `SG_PARAM_SEED` | ...
  uint32_t flags;
  // Allowed values of an ENUM param.
  const struct SgStr *choices;
  size_t choice_count;
} SgParamDesc;

// Describes one node type.
typedef struct SgNodeDesc {
  uint32_t struct_size;
  // Globally unique type id, `plugin.name` (e.g. `core.add`).
  struct SgStr type_id;
  struct SgStr display_name;
  // Palette category, `/`-separated (e.g. `Math/Tensor`).
  struct SgStr category;
  // Markdown documentation.
  struct SgStr doc;
  const struct SgPortDesc *inputs;
  size_t input_count;
  const struct SgPortDesc *outputs;
  size_t output_count;
  const struct SgParamDesc *params;
  size_t param_count;
  // `SG_NODE_*` flags.
  uint32_t flags;
} SgNodeDesc;

// A buffer for a node's error message, provided by the host.
typedef struct SgErrorBuf {
  uint8_t *buf;
  size_t capacity;
  // Bytes written (set by the plugin, at most `capacity`).
  size_t len;
} SgErrorBuf;

// Services the host offers to a node during `execute`. `ctx` is passed back to every function.
typedef struct SgHost {
  uint32_t struct_size;
  // The host's ABI minor version (services beyond this struct's size are absent).
  uint32_t abi_minor;
  void *ctx;
  // Allocates a zero-filled tensor of `dtype` and `shape` on `device` and describes it in `out`.
  // The host owns the memory; hand the tensor back in an output to keep it.
  SgStatus (*alloc_tensor)(void *ctx,
                           struct SgDType dtype,
                           int32_t ndim,
                           const int64_t *shape,
                           struct SgDevice device,
                           struct SgTensor *out);
  // Writes a log line attributed to the running node.
  void (*log)(void *ctx, int32_t level, struct SgStr message);
  // Reports progress in [0, 1] with a short message (may be empty).
  void (*progress)(void *ctx, double fraction, struct SgStr message);
  // True once the run was cancelled: return `SG_CANCELLED` soon after.
  bool (*is_cancelled)(void *ctx);
  // Emits a preview of an image tensor (`[N,3,H,W]` f32 in [-1,1] or `[H,W,C]` u8) to the
  // front end. The host copies what it needs before returning.
  void (*emit_preview)(void *ctx, const struct SgTensor *image, struct SgStr label);
  // Returns the service struct for an extension id (`SG_EXT_*`), or NULL if not offered.
  const void *(*get_extension)(void *ctx, struct SgStr id);
} SgHost;

// What a stream producer reports about its sequence (ABI 1.1), through `SgExecArgs::stream`.
// The host presets `more` to 0 and `total_items` to the last value reported.
typedef struct SgStream {
  // `sizeof(SgStream)` as the host knows it: write only fields that fit.
  uint32_t struct_size;
  // Set to 1 when another chunk follows this one; leave 0 on the last chunk.
  uint32_t more;
  // Items (rows along dimension 0 of the stream output) in the whole sequence, when known;
  // 0 = unknown. Used for progress and passed to the nodes downstream in `stream_total`.
  uint64_t total_items;
} SgStream;

// Arguments of one `execute` call.
//
// The stream fields (ABI 1.1) come last and are zero in a call that is not part of a stream (and
// when the host is of ABI 1.0, where the struct ends at `error`).
typedef struct SgExecArgs {
  uint32_t struct_size;
  // Inputs in descriptor order (`SG_VALUE_NONE` for an unconnected optional input).
  const struct SgValue *inputs;
  size_t input_count;
  // Params in descriptor order, always present (defaults filled in by the host).
  const struct SgValue *params;
  size_t param_count;
  // Outputs in descriptor order, pre-set to `SG_VALUE_NONE`; the node fills them.
  struct SgValue *outputs;
  size_t output_count;
  // The graph's id for this node, for messages.
  struct SgStr node_id;
  struct SgErrorBuf *error;
  // `SG_STREAM_*` flags (ABI 1.1); 0 outside a stream.
  uint32_t stream_flags;
  // Which chunk of the sequence this call handles: 0, 1, ...
  uint64_t chunk_index;
  // Items (along dimension 0 of the producer's stream output) in the chunks before this one.
  uint64_t chunk_offset;
  // Items in the whole sequence as the producer reported it; 0 = unknown. For a consumer fed
  // by an ordinary value: that value's dimension 0.
  uint64_t stream_total;
  // For a stream producer: where it reports `more` and `total_items`. NULL for other nodes.
  struct SgStream *stream;
} SgExecArgs;

// What `stylegraph_plugin_entry()` returns: a static description of the plugin.
typedef struct SgPlugin {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t struct_size;
  // Short unique id (`core`, `stylegan`).
  struct SgStr plugin_id;
  // The plugin's own version (part of every cache key of its nodes).
  struct SgStr plugin_version;
  struct SgStr description;
  size_t node_count;
  // Descriptor of node `index` (`0..node_count`), static, or NULL for a bad index.
  const struct SgNodeDesc *(*describe)(size_t index);
  // Creates an instance of node `index`; writes it to `*instance` (may be NULL for stateless
  // nodes). Errors go to `error`.
  SgStatus (*create)(size_t index, void **instance, struct SgErrorBuf *error);
  // Destroys an instance made by `create`.
  void (*destroy)(size_t index, void *instance);
  // Runs node `index` on `instance`.
  SgStatus (*execute)(size_t index,
                      void *instance,
                      const struct SgHost *host,
                      const struct SgExecArgs *args);
} SgPlugin;

// The signature of the entry symbol.
typedef const struct SgPlugin *(*SgPluginEntryFn)(void);

// Success.
#define SG_OK 0

// The node failed; the message is in the error buffer.
#define SG_ERROR 1

// The node stopped because the host asked it to (`SgHost::is_cancelled`).
#define SG_CANCELLED 2

// The plugin caught a panic (or another fatal fault) inside the call.
#define SG_PANIC 3

// An argument was invalid (wrong value kind, wrong shape, unknown index...).
#define SG_INVALID_ARGUMENT 4

// The host could not allocate the requested memory.
#define SG_OUT_OF_MEMORY 5


/* Name of the entry symbol every plugin exports. */
#define SG_ENTRY_SYMBOL "stylegraph_plugin_entry"
/* Reserved extension ids for SgHost.get_extension (not offered yet: it returns NULL). */
#define SG_EXT_WGPU "stylegraph.wgpu.v1"
#define SG_EXT_CUDA "stylegraph.cuda.v1"

/* The entry point a plugin defines. */
#ifdef __cplusplus
extern "C"
#endif
const SgPlugin *stylegraph_plugin_entry(void);

#endif  /* STYLEGRAPH_PLUGIN_H */
