/* ONNX export: the network in inference mode as an ONNX model (ONNX's own onnx.proto, encoded
 * with protobuf-c; the C code is generated from Debian's /usr/include/onnx/onnx.proto at build time).
 *
 * Graph (opset 13, IR version 7):
 *   inputs   one per branch, named after it ("audio", "face"), float32 [N, C, H, W]
 *   outputs  "logits" [N, classes] and "probabilities" [N, classes] (Softmax over axis 1)
 *   metadata "labels" (comma-separated class names), "pipeline" (the description it was built from)
 *
 * Every tensor between layers keeps avemo's per-sample shape as [N, c, h, w], so each layer is
 * exported by one function that reads its struct nn_layer and maps input name -> output name,
 * independently of its neighbours (one function per layer kind: a column of the layer table).
 * The output tensor of a layer is named after the layer ("audio.0"); helper tensors add a
 * suffix ("audio.0/W").  Batch norm is exported with its running statistics (no folding),
 * dropout as Identity; feature normalisation is not part of the network and stays with the caller
 * (the model's arrays, e.g. "audio.mean"). */
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

#define ONNX_OPSET 13
#define ONNX_IR_VERSION 7

/* Everything the model points to is allocated through the builder and freed at once. */
struct onnx_builder {
    void **allocs;
    size_t nallocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t nnodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t ninits, cap_inits;
    int failed; /* an allocation failed: every later call is a no-op returning NULL */
};

/* ---- builder primitives ---- */

static int ob_grow(struct onnx_builder *b, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (b->failed || !item) return b->failed = 1, 0;
    if (*n == *cap) {
        size_t cap2 = *cap ? *cap * 2 : 64;
        void **grown = realloc(*arr, cap2 * sizeof *grown);
        if (!grown) return b->failed = 1, 0;
        *arr = grown;
        *cap = cap2;
    }
    (*arr)[(*n)++] = item;
    return 1;
}

static void *ob_alloc(struct onnx_builder *b, size_t size)
{
    if (b->failed) return NULL;
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        b->failed = 1;
        return NULL;
    }
    if (!ob_grow(b, &b->allocs, &b->nallocs, &b->cap_allocs, p)) {
        free(p);
        return NULL;
    }
    return p;
}

static void *ob_dup(struct onnx_builder *b, const void *src, size_t size)
{
    void *p = ob_alloc(b, size);
    if (p && size) memcpy(p, src, size);
    return p;
}

static char *ob_str(struct onnx_builder *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ob_dup(b, buf, strlen(buf) + 1);
}

/* A message initialised from its protobuf-c INIT value. */
#define OB_NEW(b, type, init) ob_new_message((b), sizeof(type), &(const type)init)
static void *ob_new_message(struct onnx_builder *b, size_t size, const void *init)
{
    return ob_dup(b, init, size);
}

/* A node op(inputs) -> outputs; an empty output name leaves an optional output out. */
static Onnx__NodeProto *ob_node(struct onnx_builder *b, const char *op, const char *name, const char *const *in,
                                int nin, const char *const *out, int nout)
{
    Onnx__NodeProto *n = OB_NEW(b, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
    char **ins = ob_alloc(b, sizeof(char *) * (size_t)nin), **outs = ob_alloc(b, sizeof(char *) * (size_t)nout);
    if (!n || !ins || !outs) return NULL;
    for (int i = 0; i < nin; i++) ins[i] = ob_str(b, "%s", in[i]);
    for (int i = 0; i < nout; i++) outs[i] = ob_str(b, "%s", out[i]);
    n->op_type = ob_str(b, "%s", op);
    n->name = ob_str(b, "%s", name);
    n->input = ins;
    n->n_input = (size_t)nin;
    n->output = outs;
    n->n_output = (size_t)nout;
    if (!ob_grow(b, (void ***)&b->nodes, &b->nnodes, &b->cap_nodes, n)) return NULL;
    return n;
}

/* A one-input, one-output node whose output is named `out`; returns the output name. */
static const char *ob_unary(struct onnx_builder *b, const char *op, const char *in, const char *out)
{
    const char *outs[1] = {out};
    return ob_node(b, op, out, &in, 1, outs, 1) ? out : NULL;
}

static Onnx__AttributeProto *ob_attr(struct onnx_builder *b, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    if (!n) return NULL;
    Onnx__AttributeProto *a = OB_NEW(b, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
    Onnx__AttributeProto **list = ob_alloc(b, sizeof *list * (n->n_attribute + 1));
    if (!a || !list) return NULL;
    if (n->n_attribute) memcpy(list, n->attribute, sizeof *list * n->n_attribute);
    list[n->n_attribute++] = a;
    n->attribute = list;
    a->name = ob_str(b, "%s", name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static void ob_attr_int(struct onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return;
    a->has_i = 1;
    a->i = v;
}

static void ob_attr_float(struct onnx_builder *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a) return;
    a->has_f = 1;
    a->f = v;
}

static void ob_attr_string(struct onnx_builder *b, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (!a) return;
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = ob_dup(b, v, a->s.len + 1);
}

static void ob_attr_ints(struct onnx_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v, int count)
{
    Onnx__AttributeProto *a = ob_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return;
    a->ints = ob_dup(b, v, sizeof *v * (size_t)count);
    a->n_ints = (size_t)count;
}

/* An initializer of raw little-endian data (x86-64 and arm64 are little-endian; ONNX's raw_data
 * is defined as little-endian). */
static const char *ob_tensor(struct onnx_builder *b, const char *name, int32_t type, const int64_t *dims, int ndims,
                             const void *data, size_t bytes)
{
    Onnx__TensorProto *t = OB_NEW(b, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
    if (!t) return NULL;
    t->name = ob_str(b, "%s", name);
    t->has_data_type = 1;
    t->data_type = type;
    t->dims = ob_dup(b, dims, sizeof *dims * (size_t)ndims);
    t->n_dims = (size_t)ndims;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = ob_dup(b, data, bytes);
    if (!ob_grow(b, (void ***)&b->inits, &b->ninits, &b->cap_inits, t)) return NULL;
    return t->name;
}

static const char *ob_floats(struct onnx_builder *b, const char *name, const int64_t *dims, int ndims,
                             const float *data)
{
    size_t n = 1;
    for (int i = 0; i < ndims; i++) n *= (size_t)dims[i];
    return ob_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, ndims, data, n * sizeof(float));
}

/* Reshape x to [N, c, h, w] (the batch dimension inferred). */
static const char *ob_reshape(struct onnx_builder *b, const char *x, const char *out, int64_t c, int64_t h,
                              int64_t w, int rank)
{
    const int64_t shape[4] = {-1, c, h, w}, dims[1] = {rank};
    const char *sname = ob_tensor(b, ob_str(b, "%s/shape", out), ONNX__TENSOR_PROTO__DATA_TYPE__INT64, dims, 1,
                                  shape, sizeof(int64_t) * (size_t)rank);
    if (!sname) return NULL;
    const char *in[2] = {x, sname}, *outs[1] = {out};
    return ob_node(b, "Reshape", out, in, 2, outs, 1) ? out : NULL;
}

static const char *ob_transpose(struct onnx_builder *b, const char *x, const char *out, const int64_t *perm, int n)
{
    const char *outs[1] = {out};
    Onnx__NodeProto *node = ob_node(b, "Transpose", out, &x, 1, outs, 1);
    ob_attr_ints(b, node, "perm", perm, n);
    return node ? out : NULL;
}

/* ---- one function per layer kind: x is [N, in_c, in_h, in_w], the result [N, out_c, out_h, out_w] ---- */

typedef const char *(*onnx_layer_fn)(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                                     const char *x);

/* Conv with W [out][in][k][k], bias, and TensorFlow-style 'same' padding (extra pixel bottom/right). */
static const char *onnx_conv(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                             const char *x)
{
    const int64_t wd[4] = {l->out_c, l->in_c, l->k, l->k}, bd[1] = {l->out_c};
    const char *w = ob_floats(b, ob_str(b, "%s/W", l->name), wd, 4, net->params + l->w_off);
    const char *bias = ob_floats(b, ob_str(b, "%s/B", l->name), bd, 1, net->params + l->b_off);
    const int th = (l->out_h - 1) * l->stride + l->k - l->in_h, tw = (l->out_w - 1) * l->stride + l->k - l->in_w;
    const int64_t pads[4] = {l->pad_t, l->pad_l, th - l->pad_t > 0 ? th - l->pad_t : 0,
                             tw - l->pad_l > 0 ? tw - l->pad_l : 0};
    const int64_t kernel[2] = {l->k, l->k}, strides[2] = {l->stride, l->stride};
    if (!w || !bias) return NULL;
    const char *in[3] = {x, w, bias}, *out[1] = {l->name};
    Onnx__NodeProto *n = ob_node(b, "Conv", l->name, in, 3, out, 1);
    ob_attr_ints(b, n, "kernel_shape", kernel, 2);
    ob_attr_ints(b, n, "strides", strides, 2);
    ob_attr_ints(b, n, "pads", pads, 4);
    return n ? l->name : NULL;
}

/* BatchNormalization over dimension 1 with the running statistics (mean, then var, in net->stats). */
static const char *onnx_bn(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                           const char *x)
{
    const int64_t d[1] = {l->in_c};
    const float *mean = net->stats + l->s_off, *var = mean + l->in_c;
    const char *in[5] = {x, ob_floats(b, ob_str(b, "%s/scale", l->name), d, 1, net->params + l->w_off),
                         ob_floats(b, ob_str(b, "%s/B", l->name), d, 1, net->params + l->b_off),
                         ob_floats(b, ob_str(b, "%s/mean", l->name), d, 1, mean),
                         ob_floats(b, ob_str(b, "%s/var", l->name), d, 1, var)};
    for (int i = 1; i < 5; i++)
        if (!in[i]) return NULL;
    const char *out[1] = {l->name};
    Onnx__NodeProto *n = ob_node(b, "BatchNormalization", l->name, in, 5, out, 1);
    ob_attr_float(b, n, "epsilon", NN_BN_EPS);
    return n ? l->name : NULL;
}

static const char *onnx_relu(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                             const char *x)
{
    (void)net;
    return ob_unary(b, "Relu", x, l->name);
}

/* k x k windows, stride k, floor mode. */
static const char *onnx_maxpool(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                                const char *x)
{
    (void)net;
    const int64_t kernel[2] = {l->k, l->k};
    const char *out[1] = {l->name};
    Onnx__NodeProto *n = ob_node(b, "MaxPool", l->name, &x, 1, out, 1);
    ob_attr_ints(b, n, "kernel_shape", kernel, 2);
    ob_attr_ints(b, n, "strides", kernel, 2);
    return n ? l->name : NULL;
}

static const char *onnx_gap(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                            const char *x)
{
    (void)net;
    return ob_unary(b, "GlobalAveragePool", x, l->name);
}

static const char *onnx_flatten(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                                const char *x)
{
    (void)net;
    return ob_reshape(b, x, l->name, l->out_c, 1, 1, 4);
}

/* Gemm with W [out][in] (transB) on the flattened input, back to [N, out, 1, 1]. */
static const char *onnx_dense(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                              const char *x)
{
    const int64_t wd[2] = {l->out_c, (int64_t)nn_in_size(l)}, bd[1] = {l->out_c};
    const char *flat = ob_str(b, "%s/flat", l->name), *gemm = ob_str(b, "%s/gemm", l->name);
    const char *w = ob_floats(b, ob_str(b, "%s/W", l->name), wd, 2, net->params + l->w_off);
    const char *bias = ob_floats(b, ob_str(b, "%s/B", l->name), bd, 1, net->params + l->b_off);
    if (!flat || !gemm || !w || !bias) return NULL;
    const char *out[1] = {flat};
    Onnx__NodeProto *n = ob_node(b, "Flatten", flat, &x, 1, out, 1);
    ob_attr_int(b, n, "axis", 1);
    const char *in[3] = {flat, w, bias};
    out[0] = gemm;
    n = ob_node(b, "Gemm", gemm, in, 3, out, 1);
    ob_attr_int(b, n, "transB", 1);
    if (!n) return NULL;
    return ob_reshape(b, gemm, l->name, l->out_c, 1, 1, 4);
}

/* Inference: dropout passes its input on. */
static const char *onnx_dropout(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                                const char *x)
{
    (void)net;
    return ob_unary(b, "Identity", x, l->name);
}

/* C x F x T -> T steps of C * F features: x.permute(0, 3, 1, 2).reshape(N, T, C * F, 1). */
static const char *onnx_seq(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                            const char *x)
{
    (void)net;
    static const int64_t perm[4] = {0, 3, 1, 2};
    const char *t = ob_transpose(b, x, ob_str(b, "%s/ncft", l->name), perm, 4);
    return t ? ob_reshape(b, t, l->name, l->out_c, l->out_h, 1, 4) : NULL;
}

/* One direction's four tensors in ONNX's gate order i, o, f, c (avemo and PyTorch: i, f, g, o):
 * W [4H][I], R [4H][H], B [8H] (input bias then recurrent bias). */
static void lstm_reorder_dir(const float *p, int inputs, int H, float *W, float *R, float *B)
{
    static const int from[4] = {0, 3, 1, 2}; /* ONNX block j comes from avemo block from[j] */
    const float *wih = p, *whh = p + (size_t)4 * H * inputs, *bih = whh + (size_t)4 * H * H, *bhh = bih + 4 * H;
    for (int j = 0; j < 4; j++) {
        const size_t src = (size_t)from[j] * H, dst = (size_t)j * H;
        memcpy(W + dst * inputs, wih + src * inputs, sizeof(float) * (size_t)H * inputs);
        memcpy(R + dst * H, whh + src * H, sizeof(float) * (size_t)H * H);
        memcpy(B + dst, bih + src, sizeof(float) * (size_t)H);
        memcpy(B + 4 * (size_t)H + dst, bhh + src, sizeof(float) * (size_t)H);
    }
}

/* LSTM on [N, T, F, 1]: to ONNX's [T, N, F], run, and back to avemo's shapes: the whole sequence
 * [N, T, dirs * H, 1] (seq_out) or the final states h_n [N, dirs * H, 1, 1]. */
static const char *onnx_lstm(struct onnx_builder *b, const struct avemo_net *net, const struct nn_layer *l,
                             const char *x)
{
    const int T = l->in_c, F = l->in_h, H = l->hidden, D = l->dirs;
    const size_t wn = (size_t)D * 4 * H * F, rn = (size_t)D * 4 * H * H, bn = (size_t)D * 8 * H;
    float *W = ob_alloc(b, sizeof(float) * wn), *R = ob_alloc(b, sizeof(float) * rn), *B = ob_alloc(b, sizeof(float) * bn);
    if (!W || !R || !B) return NULL;
    for (int d = 0; d < D; d++)
        lstm_reorder_dir(net->params + l->w_off + d * nn_lstm_dir_params(F, H), F, H, W + (size_t)d * 4 * H * F,
                         R + (size_t)d * 4 * H * H, B + (size_t)d * 8 * H);
    const int64_t wd[3] = {D, 4 * H, F}, rd[3] = {D, 4 * H, H}, bd[2] = {D, 8 * H};
    static const int64_t tnf[3] = {1, 0, 2};
    const char *ntf = ob_reshape(b, x, ob_str(b, "%s/ntf", l->name), T, F, 0, 3);
    const char *in[4] = {ntf ? ob_transpose(b, ntf, ob_str(b, "%s/tnf", l->name), tnf, 3) : NULL,
                         ob_floats(b, ob_str(b, "%s/W", l->name), wd, 3, W),
                         ob_floats(b, ob_str(b, "%s/R", l->name), rd, 3, R),
                         ob_floats(b, ob_str(b, "%s/B", l->name), bd, 2, B)};
    const char *y = ob_str(b, "%s/Y", l->name), *yh = ob_str(b, "%s/Y_h", l->name);
    for (int i = 0; i < 4; i++)
        if (!in[i]) return NULL;
    if (!y || !yh) return NULL;
    const char *outs[2] = {l->seq_out ? y : "", l->seq_out ? "" : yh};
    Onnx__NodeProto *n = ob_node(b, "LSTM", ob_str(b, "%s/lstm", l->name), in, 4, outs, 2);
    ob_attr_int(b, n, "hidden_size", H);
    ob_attr_string(b, n, "direction", D == 2 ? "bidirectional" : "forward");
    if (!n) return NULL;
    if (l->seq_out) { /* Y [T, D, N, H] -> [N, T, D, H] */
        static const int64_t perm[4] = {2, 0, 1, 3};
        const char *t = ob_transpose(b, y, ob_str(b, "%s/ntdh", l->name), perm, 4);
        return t ? ob_reshape(b, t, l->name, T, (int64_t)D * H, 1, 4) : NULL;
    }
    static const int64_t perm[3] = {1, 0, 2}; /* Y_h [D, N, H] -> [N, D, H] */
    const char *t = ob_transpose(b, yh, ob_str(b, "%s/ndh", l->name), perm, 3);
    return t ? ob_reshape(b, t, l->name, (int64_t)D * H, 1, 1, 4) : NULL;
}

/* One exporter per row of the layer table (layers.c), indexed the same way by enum nn_op. */
static const onnx_layer_fn onnx_layer_exporters[NN_OP_COUNT] = {
    [NN_CONV] = onnx_conv,       [NN_BN] = onnx_bn,           [NN_RELU] = onnx_relu,
    [NN_MAXPOOL] = onnx_maxpool, [NN_GAP] = onnx_gap,         [NN_FLATTEN] = onnx_flatten,
    [NN_DENSE] = onnx_dense,     [NN_DROPOUT] = onnx_dropout, [NN_SEQ] = onnx_seq,
    [NN_LSTM] = onnx_lstm,
};

static onnx_layer_fn onnx_layer_exporter(enum nn_op op)
{
    return (unsigned)op < NN_OP_COUNT ? onnx_layer_exporters[op] : NULL;
}

/* ---- the graph ---- */

static Onnx__ValueInfoProto *ob_value_info(struct onnx_builder *b, const char *name, const int64_t *dims, int ndims)
{
    Onnx__ValueInfoProto *v = OB_NEW(b, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
    Onnx__TypeProto *type = OB_NEW(b, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
    Onnx__TypeProto__Tensor *tt = OB_NEW(b, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
    Onnx__TensorShapeProto *shape = OB_NEW(b, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
    Onnx__TensorShapeProto__Dimension **dim = ob_alloc(b, sizeof *dim * (size_t)ndims);
    if (!v || !type || !tt || !shape || !dim) return NULL;
    for (int i = 0; i < ndims; i++) { /* dims[i] < 0: the symbolic batch size "N" */
        dim[i] = OB_NEW(b, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
        if (!dim[i]) return NULL;
        if (dims[i] < 0) {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[i]->dim_param = ob_str(b, "N");
        } else {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[i]->dim_value = dims[i];
        }
    }
    shape->dim = dim;
    shape->n_dim = (size_t)ndims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    v->type = type;
    v->name = ob_str(b, "%s", name);
    return v->name ? v : NULL;
}

/* The layers of stage s from x; returns the stage's output name. */
static const char *export_stage(struct onnx_builder *b, const struct avemo_net *net, int s, const char *x,
                                struct avemo_error *err, enum avemo_status *st)
{
    const struct nn_stage *stage = &net->stages[s];
    for (int i = stage->first; x && i < stage->first + stage->count; i++) {
        const struct nn_layer *l = &net->layers[i];
        onnx_layer_fn fn = onnx_layer_exporter(l->op);
        if (!fn) {
            *st = avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: layer %s ('%s') has no ONNX export", net->name, l->name,
                             l->spec);
            return NULL;
        }
        x = fn(b, net, l, x);
    }
    return x;
}

/* Branch outputs flattened, concatenated, as the head's [N, concat, 1, 1] input. */
static const char *export_concat(struct onnx_builder *b, const struct avemo_net *net, const char *const *branch)
{
    const char *flat[AVEMO_NN_MAX_INPUTS];
    for (int s = 0; s < net->ninputs; s++) {
        const char *out[1] = {ob_str(b, "%s/flat", net->stages[s].name)};
        if (!out[0]) return NULL;
        Onnx__NodeProto *n = ob_node(b, "Flatten", out[0], &branch[s], 1, out, 1);
        ob_attr_int(b, n, "axis", 1);
        flat[s] = out[0];
    }
    const char *out[1] = {"concat"};
    Onnx__NodeProto *n = ob_node(b, "Concat", "concat", flat, net->ninputs, out, 1);
    ob_attr_int(b, n, "axis", 1);
    return n ? ob_reshape(b, "concat", "head.in", (int64_t)net->concat_size, 1, 1, 4) : NULL;
}

static Onnx__StringStringEntryProto *ob_meta(struct onnx_builder *b, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = OB_NEW(b, Onnx__StringStringEntryProto, ONNX__STRING_STRING_ENTRY_PROTO__INIT);
    if (!e) return NULL;
    e->key = ob_str(b, "%s", key);
    e->value = ob_dup(b, value, strlen(value) + 1);
    return e;
}

static char *labels_text(struct onnx_builder *b, const struct avemo_net *net)
{
    char *text = ob_alloc(b, (size_t)net->classes * 66 + 1);
    if (!text) return NULL;
    for (int k = 0; k < net->classes; k++) {
        const char *label = avemo_net_label(net, k);
        char fallback[16];
        snprintf(fallback, sizeof fallback, "%d", k);
        strcat(text, k ? "," : "");
        strcat(text, label ? label : fallback);
    }
    return text;
}

/* Prefix "mK/" to every name made since node0 and init0, except the graph's inputs and the
 * empty names of left-out optional outputs: member K's copy of the network. */
static void prefix_member_names(struct onnx_builder *b, const struct avemo_net *net, size_t node0, size_t init0, int k)
{
    for (size_t i = init0; i < b->ninits; i++) b->inits[i]->name = ob_str(b, "m%d/%s", k, b->inits[i]->name);
    for (size_t i = node0; i < b->nnodes; i++) {
        Onnx__NodeProto *n = b->nodes[i];
        n->name = ob_str(b, "m%d/%s", k, n->name);
        for (size_t j = 0; j < n->n_output; j++)
            if (n->output[j][0]) n->output[j] = ob_str(b, "m%d/%s", k, n->output[j]);
        for (size_t j = 0; j < n->n_input; j++) {
            int graph_input = 0;
            for (int s = 0; s < net->ninputs; s++) graph_input |= strcmp(n->input[j], net->stages[s].name) == 0;
            if (!graph_input && n->input[j][0]) n->input[j] = ob_str(b, "m%d/%s", k, n->input[j]);
        }
    }
}

/* One network from the graph's inputs to "logits" (Flatten of the head) and "probabilities"
 * (Softmax); returns NULL on failure (*st set, or the builder's failed flag). */
static const char *export_network(struct onnx_builder *b, const struct avemo_net *net, struct avemo_error *err,
                                  enum avemo_status *st)
{
    const char *branch[AVEMO_NN_MAX_INPUTS];
    for (int s = 0; s < net->ninputs; s++) {
        branch[s] = export_stage(b, net, s, net->stages[s].name, err, st);
        if (!branch[s]) return NULL;
    }
    const char *head_in = export_concat(b, net, branch);
    const char *head_out = head_in ? export_stage(b, net, net->ninputs, head_in, err, st) : NULL;
    if (!head_out) return NULL;
    const char *logits_out[1] = {"logits"}, *probs_out[1] = {"probabilities"};
    Onnx__NodeProto *n = ob_node(b, "Flatten", "logits", &head_out, 1, logits_out, 1);
    ob_attr_int(b, n, "axis", 1);
    n = ob_node(b, "Softmax", "probabilities", logits_out, 1, probs_out, 1);
    ob_attr_int(b, n, "axis", 1);
    return n ? "probabilities" : NULL;
}

/* An ensemble: each member as "mK/...", "probabilities" the Mean of theirs (what avemo averages)
 * and "logits" its Log, so that a softmax of the logits still gives the probabilities. */
static enum avemo_status export_members(struct onnx_builder *b, const struct avemo_net *net, int count,
                                        struct avemo_error *err)
{
    const char *probs[AVEMO_NN_MAX_MEMBERS];
    enum avemo_status st = AVEMO_OK;
    for (int k = 0; !st && k < count; k++) {
        avemo_net *member = NULL;
        if (k && (st = avemo_net_member(net, k, &member, err))) break;
        size_t node0 = b->nnodes, init0 = b->ninits;
        if (!export_network(b, k ? member : net, err, &st) && !st) b->failed = 1;
        if (!st) prefix_member_names(b, net, node0, init0, k);
        probs[k] = ob_str(b, "m%d/probabilities", k);
        avemo_net_free(member);
    }
    if (st) return st;
    const char *mean_out[1] = {"probabilities"};
    ob_node(b, "Mean", "probabilities", probs, count, mean_out, 1);
    ob_unary(b, "Log", "probabilities", "logits");
    return AVEMO_OK;
}

/* Fills graph and model (messages on the stack, contents in the builder). */
static enum avemo_status build_model(struct onnx_builder *b, const struct avemo_net *net, Onnx__GraphProto *graph,
                                     Onnx__ModelProto *model, struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    Onnx__ValueInfoProto **inputs = ob_alloc(b, sizeof *inputs * (size_t)net->ninputs);
    Onnx__ValueInfoProto **outputs = ob_alloc(b, sizeof *outputs * 2);
    if (!inputs || !outputs) goto nomem;
    for (int s = 0; s < net->ninputs; s++) {
        const struct nn_stage *stage = &net->stages[s];
        const int64_t dims[4] = {-1, stage->c, stage->h, stage->w};
        if (!(inputs[s] = ob_value_info(b, stage->name, dims, 4))) goto nomem;
    }
    int members = avemo_net_member_count(net);
    if (members > 1) st = export_members(b, net, members, err);
    else if (!export_network(b, net, err, &st) && !st) goto nomem;
    if (st) return st;
    const int64_t odims[2] = {-1, net->classes};
    outputs[0] = ob_value_info(b, "logits", odims, 2);
    outputs[1] = ob_value_info(b, "probabilities", odims, 2);
    Onnx__OperatorSetIdProto *opset = OB_NEW(b, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
    Onnx__OperatorSetIdProto **opsets = ob_alloc(b, sizeof *opsets);
    Onnx__StringStringEntryProto **meta = ob_alloc(b, sizeof *meta * 2);
    if (b->failed || !opset || !opsets || !meta) goto nomem;
    opset->domain = ob_str(b, "");
    opset->has_version = 1;
    opset->version = ONNX_OPSET;
    opsets[0] = opset;
    const char *labels = labels_text(b, net);
    meta[0] = ob_meta(b, "labels", labels ? labels : "");
    meta[1] = ob_meta(b, "pipeline", net->pipeline ? net->pipeline : "");
    graph->name = ob_str(b, "avemo");
    graph->node = b->nodes;
    graph->n_node = b->nnodes;
    graph->initializer = b->inits;
    graph->n_initializer = b->ninits;
    graph->input = inputs;
    graph->n_input = (size_t)net->ninputs;
    graph->output = outputs;
    graph->n_output = 2;
    model->has_ir_version = 1;
    model->ir_version = ONNX_IR_VERSION;
    model->opset_import = opsets;
    model->n_opset_import = 1;
    model->producer_name = ob_str(b, "avemo");
    model->producer_version = ob_str(b, "%s", avemo_version());
    model->doc_string = ob_str(b, "avemo network %s: inputs are the model's normalised features; "
                               "outputs logits and softmax probabilities", net->name);
    model->metadata_props = meta;
    model->n_metadata_props = 2;
    model->graph = graph;
    if (b->failed) goto nomem;
    return AVEMO_OK;
nomem:
    return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory building the ONNX graph", net->name);
}

static void builder_free(struct onnx_builder *b)
{
    for (size_t i = 0; i < b->nallocs; i++) free(b->allocs[i]);
    free(b->allocs);
    free(b->nodes);
    free(b->inits);
}

enum avemo_status avemo_net_onnx_serialize(const avemo_net *net, uint8_t **data, size_t *size,
                                           struct avemo_error *err)
{
    *data = NULL;
    *size = 0;
    struct onnx_builder b = {0};
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    enum avemo_status st = build_model(&b, net, &graph, &model, err);
    if (!st) {
        size_t n = onnx__model_proto__get_packed_size(&model);
        *data = malloc(n ? n : 1);
        if (!*data) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu bytes for the ONNX model",
                                    net->name, n);
        else *size = onnx__model_proto__pack(&model, *data);
    }
    builder_free(&b);
    return st;
}

enum avemo_status avemo_net_export_onnx(const avemo_net *net, const char *path, struct avemo_error *err)
{
    uint8_t *data;
    size_t size;
    enum avemo_status st = avemo_net_onnx_serialize(net, &data, &size, err);
    if (st) return st;
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        int ok = fwrite(data, 1, size, f) == size;
        ok = (fclose(f) == 0) && ok;
        if (!ok) st = avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    free(data);
    return st;
}
