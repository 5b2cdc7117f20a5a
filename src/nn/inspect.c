/* Looking inside a network: layers by name, the activations of the last forward and the
 * gradients a backward kept, and where each branch's features sit in the head's input.
 * What explanations (Grad-CAM, occluding a branch) are built on; see nn.h. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

int avemo_net_layer_find(const avemo_net *net, const char *name)
{
    for (int i = 0; name && i < net->nlayers; i++)
        if (strcmp(net->layers[i].name, name) == 0) return i;
    return -1;
}

const char *avemo_net_layer_type(const avemo_net *net, int layer)
{
    if (layer < 0 || layer >= net->nlayers) return NULL;
    return nn_layer_type_of(&net->layers[layer])->name;
}

/* The stage (branch index, or ninputs for the head) that holds layer. */
static int stage_of(const avemo_net *net, int layer)
{
    for (int s = 0; s <= net->ninputs; s++) {
        const struct nn_stage *st = &net->stages[s];
        if (layer >= st->first && layer < st->first + st->count) return s;
    }
    return -1;
}

int avemo_net_layer_input(const avemo_net *net, int layer)
{
    int s = layer >= 0 && layer < net->nlayers ? stage_of(net, layer) : -1;
    return s >= 0 && s < net->ninputs ? s : -1;
}

size_t avemo_net_branch_features(const avemo_net *net, int input, size_t *offset)
{
    size_t at = 0;
    for (int s = 0; s < net->ninputs; s++) {
        const struct nn_stage *st = &net->stages[s];
        size_t n = st->count ? nn_out_size(&net->layers[st->first + st->count - 1]) : (size_t)st->c * st->h * st->w;
        if (s == input) {
            if (offset) *offset = at;
            return n;
        }
        at += n;
    }
    if (offset) *offset = at; /* input out of range: the end, and no features */
    return 0;
}

size_t avemo_net_head_inputs(const avemo_net *net) { return net->concat_size; }

const float *avemo_nn_ctx_head_input(const avemo_nn_ctx *ctx, int *batch)
{
    if (batch) *batch = ctx->stage_batch[ctx->net->ninputs];
    return ctx->concat;
}

/* A batch norm whose ReLU follows in the same stage writes the ReLU's output in one pass
 * (every context): its own output and that output's gradient are never stored. */
static int bn_before_relu(const avemo_net *net, int i)
{
    const struct nn_layer *l = &net->layers[i];
    return l->op == NN_BN && i + 1 < net->nlayers && !net->layers[i + 1].first_of_stage &&
           net->layers[i + 1].op == NN_RELU;
}

/* Inference-only contexts also run a convolution with its following batch norm or ReLU. */
static int conv_fused(const avemo_nn_ctx *ctx, int i)
{
    const avemo_net *net = ctx->net;
    const struct nn_layer *l = &net->layers[i];
    if (ctx->training || l->op != NN_CONV || i + 1 >= net->nlayers || net->layers[i + 1].first_of_stage) return 0;
    return net->layers[i + 1].op == NN_BN || net->layers[i + 1].op == NN_RELU;
}

static enum avemo_status check_layer(const avemo_net *net, int layer, struct avemo_error *err)
{
    if (layer < 0 || layer >= net->nlayers)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no layer %d (the network has %d)", net->name, layer,
                          net->nlayers);
    if (bn_before_relu(net, layer))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: layer %s (batch norm) runs in one pass with the ReLU after it, which keeps no "
                          "output of its own: use layer %s",
                          net->name, net->layers[layer].name, net->layers[layer + 1].name);
    return AVEMO_OK;
}

static void tensor_of(const struct nn_layer *l, const float *data, int batch, struct avemo_nn_tensor *t)
{
    t->data = data;
    t->batch = batch;
    t->c = l->out_c;
    t->h = l->out_h;
    t->w = l->out_w;
}

enum avemo_status avemo_nn_ctx_activation(const avemo_nn_ctx *ctx, int layer, struct avemo_nn_tensor *t,
                                          struct avemo_error *err)
{
    const avemo_net *net = ctx->net;
    memset(t, 0, sizeof *t);
    enum avemo_status st = check_layer(net, layer, err);
    if (st) return st;
    const struct nn_layer *l = &net->layers[layer];
    if (conv_fused(ctx, layer))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: layer %s (conv) runs fused with the next layer in an inference-only context: "
                          "create the context with training = 1 to read its output", net->name, l->name);
    int batch = ctx->stage_batch[stage_of(net, layer)];
    if (batch < 1 || !ctx->out[layer])
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: layer %s did not run in the last forward, or that forward did not keep its output (a "
                          "training forward keeps no ReLU output that a 2x2 max pool follows: use avemo_net_forward)",
                          net->name, l->name);
    tensor_of(l, ctx->out[layer], batch, t);
    return AVEMO_OK;
}

enum avemo_status avemo_nn_ctx_keep_gradient(avemo_nn_ctx *ctx, int layer, struct avemo_error *err)
{
    const avemo_net *net = ctx->net;
    enum avemo_status st = check_layer(net, layer, err);
    if (st) return st;
    if (!ctx->training)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: gradients need a training context", net->name);
    if (!ctx->keep_grad && !(ctx->keep_grad = calloc((size_t)net->nlayers, sizeof *ctx->keep_grad)))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    if (ctx->keep_grad[layer]) return AVEMO_OK;
    size_t n = (size_t)ctx->max_batch * nn_out_size(&net->layers[layer]);
    if (!(ctx->keep_grad[layer] = calloc(n, sizeof(float))))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot keep %zu gradient floats of layer %s", net->name, n,
                          net->layers[layer].name);
    ctx->grad_valid = 0; /* filled by the next backward */
    return AVEMO_OK;
}

enum avemo_status avemo_nn_ctx_gradient(const avemo_nn_ctx *ctx, int layer, struct avemo_nn_tensor *t,
                                        struct avemo_error *err)
{
    const avemo_net *net = ctx->net;
    memset(t, 0, sizeof *t);
    enum avemo_status st = check_layer(net, layer, err);
    if (st) return st;
    const struct nn_layer *l = &net->layers[layer];
    if (!ctx->keep_grad || !ctx->keep_grad[layer])
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: the gradient of layer %s is not kept (avemo_nn_ctx_keep_gradient before the backward)",
                          net->name, l->name);
    if (!ctx->grad_valid)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no backward since the last forward", net->name);
    tensor_of(l, ctx->keep_grad[layer], ctx->batch, t);
    return AVEMO_OK;
}

void nn_keep_free(avemo_nn_ctx *ctx)
{
    if (!ctx->keep_grad) return;
    for (int i = 0; i < ctx->net->nlayers; i++) free(ctx->keep_grad[i]);
    free(ctx->keep_grad);
    ctx->keep_grad = NULL;
}
