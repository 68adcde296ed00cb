/* Prints the size and field offsets of every ABI struct as C sees them; the test
 * tests/tests/plugins.rs (c_sees_the_same_struct_layout_as_rust) compares them with Rust's. */
#include "stylegraph_plugin.h"
#include <stdio.h>

#define SIZE(T) printf("%s size %zu\n", #T, sizeof(T))
#define OFF(T, f) printf("%s.%s %zu\n", #T, #f, offsetof(T, f))

int main(void) {
    SIZE(SgStr); OFF(SgStr, ptr); OFF(SgStr, len);
    SIZE(SgDevice); OFF(SgDevice, device_type); OFF(SgDevice, device_id);
    SIZE(SgDType); OFF(SgDType, code); OFF(SgDType, bits); OFF(SgDType, lanes);
    SIZE(SgTensor); OFF(SgTensor, data); OFF(SgTensor, device); OFF(SgTensor, ndim);
    OFF(SgTensor, dtype); OFF(SgTensor, shape); OFF(SgTensor, strides); OFF(SgTensor, byte_offset);
    SIZE(SgObject); OFF(SgObject, ptr); OFF(SgObject, type_name); OFF(SgObject, retain);
    OFF(SgObject, release); OFF(SgObject, size_bytes); OFF(SgObject, owner_tag);
    SIZE(SgValue); OFF(SgValue, kind); OFF(SgValue, i); OFF(SgValue, f); OFF(SgValue, s);
    OFF(SgValue, tensor); OFF(SgValue, object);
    SIZE(SgPortDesc); OFF(SgPortDesc, name); OFF(SgPortDesc, type_name); OFF(SgPortDesc, doc);
    OFF(SgPortDesc, flags);
    SIZE(SgParamDesc); OFF(SgParamDesc, name); OFF(SgParamDesc, kind); OFF(SgParamDesc, doc);
    OFF(SgParamDesc, default_value); OFF(SgParamDesc, min); OFF(SgParamDesc, max);
    OFF(SgParamDesc, step); OFF(SgParamDesc, flags); OFF(SgParamDesc, choices);
    OFF(SgParamDesc, choice_count);
    SIZE(SgNodeDesc); OFF(SgNodeDesc, struct_size); OFF(SgNodeDesc, type_id);
    OFF(SgNodeDesc, display_name); OFF(SgNodeDesc, category); OFF(SgNodeDesc, doc);
    OFF(SgNodeDesc, inputs); OFF(SgNodeDesc, input_count); OFF(SgNodeDesc, outputs);
    OFF(SgNodeDesc, output_count); OFF(SgNodeDesc, params); OFF(SgNodeDesc, param_count);
    OFF(SgNodeDesc, flags);
    SIZE(SgHost); OFF(SgHost, struct_size); OFF(SgHost, abi_minor); OFF(SgHost, ctx);
    OFF(SgHost, alloc_tensor); OFF(SgHost, log); OFF(SgHost, progress); OFF(SgHost, is_cancelled);
    OFF(SgHost, emit_preview); OFF(SgHost, get_extension);
    SIZE(SgErrorBuf); OFF(SgErrorBuf, buf); OFF(SgErrorBuf, capacity); OFF(SgErrorBuf, len);
    SIZE(SgExecArgs); OFF(SgExecArgs, struct_size); OFF(SgExecArgs, inputs);
    OFF(SgExecArgs, input_count); OFF(SgExecArgs, params); OFF(SgExecArgs, param_count);
    OFF(SgExecArgs, outputs); OFF(SgExecArgs, output_count); OFF(SgExecArgs, node_id);
    OFF(SgExecArgs, error); OFF(SgExecArgs, stream_flags); OFF(SgExecArgs, chunk_index);
    OFF(SgExecArgs, chunk_offset); OFF(SgExecArgs, stream_total); OFF(SgExecArgs, stream);
    SIZE(SgStream); OFF(SgStream, struct_size); OFF(SgStream, more); OFF(SgStream, total_items);
    SIZE(SgPlugin); OFF(SgPlugin, abi_major); OFF(SgPlugin, abi_minor); OFF(SgPlugin, struct_size);
    OFF(SgPlugin, plugin_id); OFF(SgPlugin, plugin_version); OFF(SgPlugin, description);
    OFF(SgPlugin, node_count); OFF(SgPlugin, describe); OFF(SgPlugin, create);
    OFF(SgPlugin, destroy); OFF(SgPlugin, execute);
    return 0;
}
