/*
 * A Stylegraph node plugin written in plain C against the generated header.
 *
 * Build:  cc -shared -fPIC -I engine/abi/include -o libstylegraph_plugin_c_example.so \
 *            engine/abi/examples/c/example_plugin.c
 * Use:    stylegraph --plugins libstylegraph_plugin_c_example.so nodes c_example
 *
 * Nodes:
 *   c_example.scale   y = x * factor for a float32 tensor (host-allocated output);
 *   c_example.foreign returns memory the host did not allocate, which the ABI forbids: the host
 *                     must refuse the output with an error (used by the host's tests);
 *   c_example.sum     (ABI 1.1) a stream consumer: sums a float32 sequence chunk by chunk,
 *                     keeping its running sum in its instance.
 *
 * For the host's tests: SG_TEST_ABI_MAJOR / SG_TEST_ABI_MINOR claim another ABI version (another
 * major must be refused; a newer minor loads; with minor 0 the plugin is what it was for ABI 1.0:
 * no stream node), SG_TEST_PLUGIN_ID changes the plugin id.
 */
#include "stylegraph_plugin.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef SG_TEST_ABI_MAJOR
#define SG_TEST_ABI_MAJOR SG_ABI_MAJOR
#endif
#ifndef SG_TEST_ABI_MINOR
#define SG_TEST_ABI_MINOR SG_ABI_MINOR
#endif
#ifndef SG_TEST_PLUGIN_ID
#define SG_TEST_PLUGIN_ID "c_example"
#endif

#define S(lit) ((SgStr){(const uint8_t *)(lit), sizeof(lit) - 1})

static const SgPortDesc scale_inputs[] = {
    {S("x"), S("Tensor"), S("a float32 tensor"), 0},
};
static const SgPortDesc scale_outputs[] = {
    {S("y"), S("Tensor"), S("x * factor"), 0},
};
static SgParamDesc scale_params[1];

static const SgPortDesc foreign_outputs[] = {
    {S("t"), S("Tensor"), S("an invalid tensor"), 0},
};

static const SgPortDesc sum_inputs[] = {
    {S("x"), S("Tensor"), S("a float32 sequence"), SG_PORT_STREAM},
};
static const SgPortDesc sum_outputs[] = {
    {S("sum"), S("float"), S("the sum of every element of every chunk"), 0},
    {S("chunks"), S("int"), S("chunks summed"), 0},
};

/* Nodes declared: a plugin of ABI 1.0 knows nothing of streams. */
#if SG_TEST_ABI_MINOR >= 1
#define NODE_COUNT 3
#else
#define NODE_COUNT 2
#endif

static SgNodeDesc nodes[3];

static void init_descriptors(void) {
    memset(scale_params, 0, sizeof scale_params);
    scale_params[0].name = S("factor");
    scale_params[0].kind = SG_PARAM_FLOAT;
    scale_params[0].doc = S("the factor");
    scale_params[0].default_value.kind = SG_VALUE_FLOAT;
    scale_params[0].default_value.f = 2.0;
    scale_params[0].min = -100.0;
    scale_params[0].max = 100.0;
    scale_params[0].flags = SG_PARAM_HAS_MIN | SG_PARAM_HAS_MAX;

    memset(nodes, 0, sizeof nodes);
    nodes[0].struct_size = sizeof(SgNodeDesc);
    nodes[0].type_id = S("c_example.scale");
    nodes[0].display_name = S("Scale (C)");
    nodes[0].category = S("Examples");
    nodes[0].doc = S("Multiplies a float32 tensor by `factor`. Written in C.");
    nodes[0].inputs = scale_inputs;
    nodes[0].input_count = 1;
    nodes[0].outputs = scale_outputs;
    nodes[0].output_count = 1;
    nodes[0].params = scale_params;
    nodes[0].param_count = 1;

    nodes[1].struct_size = sizeof(SgNodeDesc);
    nodes[1].type_id = S("c_example.foreign");
    nodes[1].display_name = S("Foreign memory (C)");
    nodes[1].category = S("Examples");
    nodes[1].doc = S("Returns a tensor in plugin memory (forbidden; for host tests).");
    nodes[1].outputs = foreign_outputs;
    nodes[1].output_count = 1;

    nodes[2].struct_size = sizeof(SgNodeDesc);
    nodes[2].type_id = S("c_example.sum");
    nodes[2].display_name = S("Sum a stream (C)");
    nodes[2].category = S("Examples");
    nodes[2].doc = S("Sums every element of a float32 sequence, chunk by chunk. Written in C.");
    nodes[2].inputs = sum_inputs;
    nodes[2].input_count = 1;
    nodes[2].outputs = sum_outputs;
    nodes[2].output_count = 2;
    nodes[2].flags = SG_NODE_SIDE_EFFECT;
}

static const SgNodeDesc *describe(size_t index) {
    return index < NODE_COUNT ? &nodes[index] : NULL;
}

/* The state a stream consumer keeps in its instance between chunks. */
typedef struct SumState {
    double sum;
    uint64_t chunks;
} SumState;

static SgStatus create(size_t index, void **instance, SgErrorBuf *error) {
    (void)error;
    *instance = NULL; /* scale and foreign are stateless */
    if (index == 2) {
        *instance = calloc(1, sizeof(SumState));
        if (*instance == NULL) return SG_OUT_OF_MEMORY;
    }
    return SG_OK;
}

static void destroy(size_t index, void *instance) {
    (void)index;
    free(instance);
}

static SgStatus fail(SgErrorBuf *error, const char *msg) {
    size_t n = strlen(msg);
    if (error && error->buf) {
        if (n > error->capacity) n = error->capacity;
        memcpy(error->buf, msg, n);
        error->len = n;
    }
    return SG_ERROR;
}

static float foreign_data[4];
static const int64_t foreign_shape[1] = {4};

static SgStatus execute_sum(SumState *state, const SgExecArgs *args) {
    /* A host of ABI 1.0 passes a shorter SgExecArgs: read the stream fields only if present. */
    int streams = args->struct_size >= offsetof(SgExecArgs, stream) + sizeof(SgStream *);
    uint32_t flags = streams ? args->stream_flags : 0;
    uint64_t index = streams ? args->chunk_index : 0;
    if (!(flags & SG_STREAM_ACTIVE)) { /* not streamed: the whole value is one, last, chunk */
        flags = SG_STREAM_ACTIVE | SG_STREAM_LAST;
        index = 0;
    }
    if (flags & SG_STREAM_ABORT) { /* the sequence is abandoned: forget it */
        state->sum = 0.0;
        state->chunks = 0;
        return SG_OK;
    }
    if (index == 0) {
        state->sum = 0.0;
        state->chunks = 0;
    }
    if (index != state->chunks) return fail(args->error, "chunks arrived out of order");
    const SgValue *x = &args->inputs[0];
    if (x->kind != SG_VALUE_TENSOR || x->tensor.dtype.code != SG_DTYPE_FLOAT ||
        x->tensor.dtype.bits != 32 || x->tensor.device.device_type != SG_DEVICE_CPU) {
        return fail(args->error, "input x must be a float32 CPU tensor");
    }
    size_t n = 1;
    for (int32_t d = 0; d < x->tensor.ndim; d++) n *= (size_t)x->tensor.shape[d];
    const float *v = (const float *)((const char *)x->tensor.data + x->tensor.byte_offset);
    for (size_t i = 0; i < n; i++) state->sum += v[i];
    state->chunks += 1;
    if (flags & SG_STREAM_LAST) { /* outputs are taken after the last chunk only */
        args->outputs[0].kind = SG_VALUE_FLOAT;
        args->outputs[0].f = state->sum;
        args->outputs[1].kind = SG_VALUE_INT;
        args->outputs[1].i = (int64_t)state->chunks;
    }
    return SG_OK;
}

static SgStatus execute(size_t index, void *instance, const SgHost *host, const SgExecArgs *args) {
    if (index == 2) return execute_sum((SumState *)instance, args);
    if (index == 1) {
        SgTensor t;
        memset(&t, 0, sizeof t);
        t.data = foreign_data;
        t.device.device_type = SG_DEVICE_CPU;
        t.ndim = 1;
        t.dtype.code = SG_DTYPE_FLOAT;
        t.dtype.bits = 32;
        t.dtype.lanes = 1;
        t.shape = foreign_shape;
        args->outputs[0].kind = SG_VALUE_TENSOR;
        args->outputs[0].tensor = t;
        return SG_OK;
    }
    const SgValue *x = &args->inputs[0];
    if (x->kind != SG_VALUE_TENSOR || x->tensor.dtype.code != SG_DTYPE_FLOAT ||
        x->tensor.dtype.bits != 32 || x->tensor.device.device_type != SG_DEVICE_CPU) {
        return fail(args->error, "input x must be a float32 CPU tensor");
    }
    double factor = args->params[0].f;
    size_t n = 1;
    for (int32_t d = 0; d < x->tensor.ndim; d++) n *= (size_t)x->tensor.shape[d];

    SgTensor y;
    SgStatus st = host->alloc_tensor(host->ctx, x->tensor.dtype, x->tensor.ndim, x->tensor.shape,
                                     x->tensor.device, &y);
    if (st != SG_OK) return fail(args->error, "could not allocate the output");
    const float *src = (const float *)((const char *)x->tensor.data + x->tensor.byte_offset);
    float *dst = (float *)y.data;
    for (size_t i = 0; i < n; i++) dst[i] = (float)(src[i] * factor);
    if (host->progress) host->progress(host->ctx, 1.0, S("scaled"));
    args->outputs[0].kind = SG_VALUE_TENSOR;
    args->outputs[0].tensor = y;
    return SG_OK;
}

static SgPlugin plugin;

const SgPlugin *stylegraph_plugin_entry(void) {
    if (plugin.struct_size == 0) {
        init_descriptors();
        plugin.abi_major = SG_TEST_ABI_MAJOR;
        plugin.abi_minor = SG_TEST_ABI_MINOR;
        plugin.struct_size = sizeof(SgPlugin);
        plugin.plugin_id = S(SG_TEST_PLUGIN_ID);
        plugin.plugin_version = S("1.0.0");
        plugin.description = S("an example plugin written in C");
        plugin.node_count = NODE_COUNT;
        plugin.describe = describe;
        plugin.create = create;
        plugin.destroy = destroy;
        plugin.execute = execute;
    }
    return &plugin;
}
