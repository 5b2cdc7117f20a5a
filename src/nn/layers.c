/* The table of layer types: one row per kind of layer, defined in the layer's own file next
 * to its forward and backward (layer_conv.c, layer_bn.c, layer_relu.c, layer_maxpool.c,
 * layer_gap.c, layer_flatten.c, layer_dense.c, layer_dropout.c, and layer_lstm.c for seq and
 * lstm, which work together).  graph.c parses items through
 * it and net.c runs layers through it; docs/nn.md says how to add a row. */
#include "nn/nn_internal.h"

#include <assert.h>
#include <string.h>

const struct nn_layer_type *const nn_layer_types[NN_OP_COUNT] = {
    [NN_CONV] = &nn_layer_conv,       [NN_BN] = &nn_layer_bn,           [NN_RELU] = &nn_layer_relu,
    [NN_MAXPOOL] = &nn_layer_maxpool, [NN_GAP] = &nn_layer_gap,         [NN_FLATTEN] = &nn_layer_flatten,
    [NN_DENSE] = &nn_layer_dense,     [NN_DROPOUT] = &nn_layer_dropout, [NN_SEQ] = &nn_layer_seq,
    [NN_LSTM] = &nn_layer_lstm,
};

const struct nn_layer_type *nn_layer_type_of(const struct nn_layer *l)
{
    assert((unsigned)l->op < NN_OP_COUNT && nn_layer_types[l->op]);
    return nn_layer_types[l->op];
}

int nn_layer_op_find(const char *name)
{
    for (int op = 0; op < NN_OP_COUNT; op++)
        if (strcmp(nn_layer_types[op]->name, name) == 0) return op;
    return -1;
}

int nn_layer_has_params(const struct nn_layer *l) { return nn_layer_type_of(l)->has_params; }
