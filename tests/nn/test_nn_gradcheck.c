/* nn_gradcheck: finite-difference checks of every layer's backward on small networks.
 *
 * Each case is a tiny network around one layer kind.  The analytic gradient of the
 * cross-entropy loss (with class weights, label smoothing and soft targets) with respect to each
 * parameter is compared with (L(p + e) - L(p - e)) / 2e (or, when a ReLU / max-pool kink
 * falls inside [p - e, p + e], with one of the one-sided differences).  The forward runs in
 * float, so e is 1e-3 and the tolerance is relative with a small absolute floor. */
#include "common/testutil.h"
#include "nn/nn_internal.h"

#include <math.h>

struct gc_case {
    const char *name;
    const char *ini;
    int train;     /* batch statistics (and dropout) */
    int batch;
};

static float loss_at(avemo_net *net, avemo_nn_ctx *ctx, const float *const *in, int B, const int *labels,
                     const struct avemo_nn_loss *lopt, int train, const float *stats0)
{
    struct avemo_error err;
    const float *logits;
    float loss;
    avemo_nn_ctx_seed(ctx, 99); /* the same dropout mask every time */
    enum avemo_status st = train ? avemo_net_forward_train(net, ctx, in, B, &logits, &err)
                                 : avemo_net_forward(net, ctx, in, B, &logits, &err);
    if (st) fail_msg("%s", err.message);
    memcpy(net->stats, stats0, sizeof(float) * net->nstats); /* training forwards move them */
    if (avemo_net_loss(net, ctx, labels, lopt, &loss, &err)) fail_msg("%s", err.message);
    return loss;
}

static void gradcheck(const struct gc_case *c)
{
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create(c->ini, c->name, &net, &err)) fail_msg("%s", err.message);
    avemo_net_init(net, AVEMO_NN_INIT_HE, 5);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 1234, 1);
    for (int i = 0; i < net->nlayers; i++) { /* non-trivial batch-norm state */
        const struct nn_layer *l = &net->layers[i];
        if (l->op != NN_BN) continue;
        for (int ch = 0; ch < l->in_c; ch++) {
            net->params[l->w_off + ch] = 0.5f + avemo_rng_uniform(&rng);
            net->params[l->b_off + ch] = 0.2f * avemo_rng_normal(&rng);
            net->stats[l->s_off + ch] = 0.1f * avemo_rng_normal(&rng);
            net->stats[l->s_off + l->in_c + ch] = 0.5f + avemo_rng_uniform(&rng);
        }
    }
    for (size_t j = 0; j < net->nparams; j++) /* biases away from zero too */
        if (net->params[j] == 0.0f) net->params[j] = 0.1f * avemo_rng_normal(&rng);
    float *stats0 = malloc(sizeof(float) * (net->nstats + 1));
    memcpy(stats0, net->stats, sizeof(float) * net->nstats);
    const int B = c->batch;
    float *inputs[AVEMO_NN_MAX_INPUTS] = {0};
    for (int i = 0; i < net->ninputs; i++) {
        size_t n = (size_t)B * avemo_net_input_shape(net, i, NULL, NULL, NULL, NULL);
        inputs[i] = malloc(sizeof(float) * n);
        for (size_t j = 0; j < n; j++) inputs[i][j] = avemo_rng_normal(&rng);
    }
    int labels[16];
    for (int n = 0; n < B; n++) labels[n] = (int)avemo_rng_below(&rng, (uint32_t)net->classes);
    float weights[16];
    for (int k = 0; k < net->classes; k++) weights[k] = 0.5f + avemo_rng_uniform(&rng);
    /* The loss also learns from a teacher's probabilities (distillation's soft targets), weight 0.4:
     * a wrong gradient of either part fails. */
    float soft[16 * 16];
    for (int n = 0; n < B; n++) {
        float sum = 0;
        for (int k = 0; k < net->classes; k++) sum += soft[n * net->classes + k] = avemo_rng_uniform(&rng);
        for (int k = 0; k < net->classes; k++) soft[n * net->classes + k] /= sum;
    }
    struct avemo_nn_loss lopt = {
        .class_weights = weights, .label_smoothing = 0.1f, .soft_targets = soft, .soft_weight = 0.4f};
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, B, 1, 3, &ctx, &err)) fail_msg("%s", err.message);
    const float *const *in = (const float *const *)inputs;
    loss_at(net, ctx, in, B, labels, &lopt, c->train, stats0);
    float loss;
    if (avemo_net_backward(net, ctx, labels, &lopt, &loss, &err)) fail_msg("%s", err.message);
    float *grads = malloc(sizeof(float) * net->nparams);
    memcpy(grads, ctx->grads, sizeof(float) * net->nparams);
    double maxg = 0.0;
    for (size_t j = 0; j < net->nparams; j++) maxg = fmax(maxg, fabs(grads[j]));
    int checked = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        size_t n = l->w_n + l->b_n;
        size_t stride = n > 200 ? n / 200 : 1; /* at most ~200 entries per layer */
        for (size_t j = l->w_off; j < l->w_off + n; j += stride) {
            float keep = net->params[j];
            const float eps = 1e-3f * fmaxf(1.0f, fabsf(keep));
            net->params[j] = keep + eps;
            float up = loss_at(net, ctx, in, B, labels, &lopt, c->train, stats0);
            net->params[j] = keep - eps;
            float down = loss_at(net, ctx, in, B, labels, &lopt, c->train, stats0);
            net->params[j] = keep;
            double fd = ((double)up - down) / (2.0 * eps), an = grads[j];
            double tol = 2e-2 * fmax(fabs(fd), fabs(an)) + 2e-3 * maxg + 1e-5;
            if (!(fabs(fd - an) <= tol)) {
                /* A ReLU or max-pool kink between p - e and p + e spoils the central difference;
                 * it can only lie on one side, so one of the one-sided differences must agree. */
                double fwd = ((double)up - loss) / eps, bwd = ((double)loss - down) / eps;
                double tol1 = 2e-2 * fabs(an) + 4e-3 * maxg + 2e-5;
                if (fabs(fwd - an) <= tol1 || fabs(bwd - an) <= tol1) fd = an;
            }
            if (!(fabs(fd - an) <= tol))
                fail_msg("%s: layer %s (%s) parameter %zu: analytic %.6g, finite difference %.6g", c->name, l->name,
                         l->spec, j - l->w_off, an, fd);
            checked++;
        }
    }
    assert_true(checked > 0);
    printf("%s: %d parameters checked, loss %.5f, max |grad| %.3g\n", c->name, checked, (double)loss, maxg);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(inputs[i]);
    free(grads);
    free(stats0);
}

#define NET(inputs, branch, head) "[network]\ninputs = " inputs "\n[branch.x]\nlayers = " branch "\n[head]\nlayers = " head "\n"

#ifdef GC_LSTM
/* nn_lstm_gradcheck: the same checks on the sequence layers.  The seq layer has no parameters:
 * its backward is checked through the convolution before it. */
static const struct gc_case cases[] = {
    {"seq after a convolution", NET("x:2x3x5", "conv 3 3 same, seq", "dense 4"), 0, 3},
    {"lstm last step", NET("x:1x4x6", "seq, lstm 5", "dense 3"), 0, 3},
    {"lstm one step", NET("x:2x3x1", "seq, lstm 4", "dense 3"), 0, 2},
    {"lstm sequence into dense", NET("x:2x3x5", "seq, lstm 4 seq", "dense 3"), 0, 2},
    {"lstm bidirectional last", NET("x:1x3x6", "seq, lstm 4 bidirectional", "dense 3"), 0, 2},
    {"stacked lstm, bidirectional sequence", NET("x:1x3x5", "seq, lstm 4 seq bidirectional, dropout 0.3, lstm 3",
                                                  "dense 3"), 1, 3},
    {"conv, bn, relu, pool, seq, lstm", NET("x:1x6x8", "conv 3 3 same, bn, relu, maxpool 2, seq, lstm 4",
                                             "dense 5, relu, dense 3"), 1, 3},
};
#else
static const struct gc_case cases[] = {
    {"conv same", NET("x:2x7x9", "conv 3 3 same", "dense 4"), 0, 3},
    {"conv valid stride 2", NET("x:2x9x8", "conv 3 3 valid stride 2", "dense 4"), 0, 3},
    {"conv same stride 2 even kernel", NET("x:2x7x8", "conv 2 4 same stride 2", "dense 4"), 0, 3},
    {"conv 1x1", NET("x:3x4x5", "conv 2 1 valid", "dense 3"), 0, 2},
    {"conv 5x5 then conv", NET("x:1x8x8", "conv 2 5 same, conv 3 3 valid", "dense 3"), 0, 2},
    {"conv with many channels (im2col)", NET("x:8x5x6", "conv 4 3 same, conv 5 3 same", "dense 3"), 0, 2},
    {"batch norm 2d train", NET("x:2x4x5", "conv 3 3 same, bn", "dense 4"), 1, 3},
    {"batch norm 2d eval", NET("x:2x4x5", "conv 3 3 same, bn", "dense 4"), 0, 3},
    {"relu and max pool 2", NET("x:2x6x7", "conv 3 3 same, relu, maxpool 2", "dense 4"), 0, 3},
    {"max pool 3", NET("x:2x7x6", "conv 2 3 same, maxpool 3", "dense 3"), 0, 2},
    {"batch norm, relu, max pool 2 with a rim (one pass each way)",
     NET("x:2x7x5", "conv 3 3 same, bn, relu, maxpool 2", "dense 4"), 1, 3},
    {"global average pool", NET("x:2x5x6", "conv 4 3 same, gap", "dense 3"), 0, 3},
    {"flatten and dense", NET("x:2x3x4", "conv 2 3 same, flatten, dense 5", "dense 3"), 0, 3},
    {"dense, batch norm 1d, relu, dropout", NET("x:6x1x1", "dense 8, bn, relu, dropout 0.3", "dense 5, bn, dense 3"),
     1, 4},
    {"dense eval with batch norm 1d", NET("x:6x1x1", "dense 8, bn, relu, dropout 0.3", "dense 3"), 0, 4},
    {"two branches concatenated",
     "[network]\ninputs = a:1x6x6, b:2x4x4\n[branch.a]\nlayers = conv 2 3 same, bn, relu, maxpool 2, flatten\n"
     "[branch.b]\nlayers = conv 3 3 same, gap, dense 4\n[head]\nlayers = dense 6, bn, relu, dense 4\n",
     1, 4},
    {"a branch without layers", "[network]\ninputs = a:3x1x1, b:1x4x4\n[branch.a]\nlayers =\n[branch.b]\n"
     "layers = conv 2 3 same, gap\n[head]\nlayers = dense 5, relu, dense 3\n", 0, 3},
};
#endif

static void test_gradcheck(void **state)
{
    const struct gc_case *c = *state;
    gradcheck(c);
}

int main(void)
{
    struct CMUnitTest tests[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct CMUnitTest t = {cases[i].name, test_gradcheck, NULL, NULL, (void *)&cases[i]};
        tests[i] = t;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
