/* nn_api: contexts shared over threads, reproducibility, freezing, and the API's refusals. */
#include "common/testutil.h"
#include "nn/nn_ref.h"
#include "nn/nn_internal.h"

#include <pthread.h>

#define PIPE(name) AVEMO_SOURCE_DIR "/pipelines/" name ".ini"

static avemo_net *make_net(const char *path, uint64_t seed)
{
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create_file(path, &net, &err)) fail_msg("%s", err.message);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, seed);
    return net;
}


/* A training context of batch B (dropout seed `seed`) and an optimiser for net. */
static void open_training(avemo_net *net, int B, uint64_t seed, const struct avemo_optim_config *cfg,
                          avemo_nn_ctx **ctx, avemo_optim **opt)
{
    struct avemo_error err;
    if (avemo_nn_ctx_create(net, B, 1, seed, ctx, &err) || avemo_optim_create(net, cfg, opt, &err))
        fail_msg("%s", err.message);
}

struct job {
    const avemo_net *net;
    float *inputs[2];
    int B;
    float logits[4 * 6];
    int status;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    struct avemo_error err;
    avemo_nn_ctx *ctx;
    const float *out;
    j->status = avemo_nn_ctx_create(j->net, j->B, 0, 1, &ctx, &err);
    for (int rep = 0; !j->status && rep < 3; rep++)
        j->status = avemo_net_forward(j->net, ctx, (const float *const *)j->inputs, j->B, &out, &err);
    if (!j->status) memcpy(j->logits, out, sizeof(float) * (size_t)j->B * 6);
    avemo_nn_ctx_free(ctx);
    return NULL;
}

/* Two threads, one shared read-only model, a context each: the same outputs as one thread. */
static void test_threads_share_a_model(void **state)
{
    (void)state;
    avemo_net *net = make_net(PIPE("cremad-av"), 3);
    struct job jobs[2];
    for (int t = 0; t < 2; t++) {
        jobs[t].net = net;
        jobs[t].B = 2 + t;
        jobs[t].inputs[0] = nn_random_batch(net, 0, jobs[t].B, 10 + t);
        jobs[t].inputs[1] = nn_random_batch(net, 1, jobs[t].B, 20 + t);
    }
    struct job alone[2];
    memcpy(alone, jobs, sizeof jobs);
    for (int t = 0; t < 2; t++) run_job(&alone[t]);
    pthread_t th[2];
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, run_job, &jobs[t]), 0);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(jobs[t].status, AVEMO_OK);
        assert_memory_equal(jobs[t].logits, alone[t].logits, sizeof(float) * (size_t)jobs[t].B * 6);
        free(jobs[t].inputs[0]);
        free(jobs[t].inputs[1]);
    }
    /* A sample's logits do not depend on the rest of its batch in inference. */
    float *one[2] = {nn_random_batch(net, 0, 1, 10), nn_random_batch(net, 1, 1, 20)};
    struct job single = {net, {one[0], one[1]}, 1, {0}, 0};
    run_job(&single);
    for (int k = 0; k < 6; k++) assert_float_equal(single.logits[k], alone[0].logits[k], 1e-5);
    free(one[0]);
    free(one[1]);
    avemo_net_free(net);
}

/* One training step; returns the loss. */
static float train_step(avemo_net *net, avemo_nn_ctx *ctx, avemo_optim *opt, float *const *in, const int *labels,
                        int B)
{
    struct avemo_error err;
    const float *logits;
    float loss;
    if (avemo_net_forward_train(net, ctx, (const float *const *)in, B, &logits, &err) ||
        avemo_net_backward(net, ctx, labels, NULL, &loss, &err) || avemo_optim_step(opt, net, ctx, NULL, &err))
        fail_msg("%s", err.message);
    return loss;
}

/* Same seeds, same thread count: the same parameters after training with dropout. */
static void test_training_is_reproducible(void **state)
{
    (void)state;
    avemo_net *nets[2];
    int labels[4] = {0, 3, 5, 1};
    float losses[2][5];
    for (int r = 0; r < 2; r++) {
        nets[r] = make_net(PIPE("face-fer"), 9);
        avemo_nn_ctx *ctx;
        avemo_optim *opt;
        struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAMW, .lr = 1e-3f, .weight_decay = 1e-2f,
                                         .clip_norm = 5.0f};
        open_training(nets[r], 4, 77, &cfg, &ctx, &opt);
        float *in[1] = {nn_random_batch(nets[r], 0, 4, 5)};
        for (int s = 0; s < 5; s++) losses[r][s] = train_step(nets[r], ctx, opt, in, labels, 4);
        free(in[0]);
        avemo_optim_free(opt);
        avemo_nn_ctx_free(ctx);
    }
    assert_memory_equal(losses[0], losses[1], sizeof losses[0]);
    assert_memory_equal(nets[0]->params, nets[1]->params, sizeof(float) * nets[0]->nparams);
    avemo_net *init = make_net(PIPE("face-fer"), 9);
    assert_memory_not_equal(init->params, nets[0]->params, sizeof(float) * nets[0]->nparams);
    avemo_net_free(init);
    assert_memory_equal(nets[0]->stats, nets[1]->stats, sizeof(float) * nets[0]->nstats);
    avemo_net *other = make_net(PIPE("face-fer"), 10);
    assert_memory_not_equal(other->params, nets[0]->params, sizeof(float) * 1000);
    avemo_net_free(other);
    avemo_net_free(nets[0]);
    avemo_net_free(nets[1]);
}

/* Logits and gradients of one training forward and backward on a context of `threads` workers,
 * and the logits of an inference of one sample (whose convolutions share out channels). */
static void step_with_workers(avemo_net *net, int threads, float *const *in, const int *labels, int B, float *logits,
                              float *grads, float *one_logits)
{
    struct avemo_error err;
    avemo_nn_ctx *ctx, *infer;
    const float *out;
    float loss;
    if (avemo_nn_set_threads(threads, &err) || avemo_nn_ctx_create(net, B, 1, 3, &ctx, &err) ||
        avemo_nn_ctx_create(net, 1, 0, 3, &infer, &err))
        fail_msg("%s", err.message);
    avemo_nn_set_threads(1, NULL);
    if (avemo_net_forward_train(net, ctx, (const float *const *)in, B, &out, &err)) fail_msg("%s", err.message);
    memcpy(logits, out, sizeof(float) * (size_t)B * 6);
    if (avemo_net_backward(net, ctx, labels, NULL, &loss, &err)) fail_msg("%s", err.message);
    memcpy(grads, avemo_nn_ctx_grads(ctx, NULL), sizeof(float) * net->nparams);
    if (avemo_net_forward(net, infer, (const float *const *)in, 1, &out, &err)) fail_msg("%s", err.message);
    memcpy(one_logits, out, sizeof(float) * 6);
    avemo_nn_ctx_free(infer);
    avemo_nn_ctx_free(ctx);
}

/* Two workers share the samples of a batch (5: unequal chunks), the channels of batch norms
 * and the pooled samples: the same forward, the same gradients up to the order in which the
 * chunks' convolution gradients are summed, and the same result on every run. */
static void test_workers_match_one(void **state)
{
    (void)state;
    enum { B = 5 };
    avemo_net *net = make_net(PIPE("cremad-av"), 4);
    float *in[2] = {nn_random_batch(net, 0, B, 31), nn_random_batch(net, 1, B, 32)};
    int labels[B] = {0, 1, 2, 3, 4};
    float logits[3][B * 6], one[3][6];
    float *grads[3];
    float *stats = malloc(sizeof(float) * net->nstats);
    memcpy(stats, net->stats, sizeof(float) * net->nstats);
    for (int t = 0; t < 3; t++) { /* one worker, two, two again */
        grads[t] = malloc(sizeof(float) * net->nparams);
        memcpy(net->stats, stats, sizeof(float) * net->nstats); /* the training forward moves them */
        step_with_workers(net, t ? 2 : 1, in, labels, B, logits[t], grads[t], one[t]);
    }
    assert_memory_equal(logits[0], logits[1], sizeof logits[0]);
    /* Which worker runs which chunk varies; the result does not. */
    assert_memory_equal(grads[1], grads[2], sizeof(float) * net->nparams);
    for (int k = 0; k < 6; k++) assert_float_equal(one[0][k], one[1][k], 1e-5);
    double max_abs = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < net->nparams; i++) {
        double a = fabs(grads[0][i]), d = fabs((double)grads[0][i] - grads[1][i]);
        max_abs = a > max_abs ? a : max_abs;
        max_diff = d > max_diff ? d : max_diff;
    }
    assert_true(max_abs > 0.0);
    assert_true(max_diff <= 1e-5 * max_abs);
    assert_int_equal(avemo_nn_threads(), 1);
    for (int t = 0; t < 3; t++) free(grads[t]);
    free(stats);
    free(in[0]);
    free(in[1]);
    avemo_net_free(net);
}

/* A shared input (one clip's audio with several faces) gives the logits of repeating it, and a
 * mask naming an input the network lacks is refused. */
static void test_forward_shared_input(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("cremad-av"), 5);
    enum { B = 4 };
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, B, 0, 1, &ctx, &err)) fail_msg("%s", err.message);
    float *audio = nn_random_batch(net, 0, 1, 7), *faces = nn_random_batch(net, 1, B, 8);
    size_t af = avemo_net_input_shape(net, 0, NULL, NULL, NULL, NULL);
    float *repeated = malloc(sizeof(float) * af * B);
    for (int b = 0; b < B; b++) memcpy(repeated + (size_t)b * af, audio, sizeof(float) * af);
    const float *out, *in_full[2] = {repeated, faces}, *in_shared[2] = {audio, faces};
    float expect[B * 6];
    if (avemo_net_forward(net, ctx, in_full, B, &out, &err)) fail_msg("%s", err.message);
    memcpy(expect, out, sizeof expect);
    if (avemo_net_forward_shared(net, ctx, in_shared, B, 1u, &out, &err)) fail_msg("%s", err.message);
    for (int i = 0; i < B * 6; i++) assert_float_equal(out[i], expect[i], 1e-5);
    assert_false(memcmp(expect, expect + 6, sizeof(float) * 6) == 0); /* the faces differ, so do the rows */
    assert_int_equal(avemo_net_forward_shared(net, ctx, in_shared, B, 4u, &out, &err), AVEMO_ERR_INVALID_ARG);
    free(audio);
    free(faces);
    free(repeated);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* avemo_net_prepare: the same logits as without it (the shipped networks' 3x3 layers all take
 * the prepared transform), and a change of the parameters after it is not missed: writing
 * through avemo_net_params or an optimiser step drops what it made. */
static void check_prepared_forward(const char *pipe)
{
    struct avemo_error err;
    avemo_net *net = make_net(pipe, 9);
    const int k = avemo_net_classes(net), n = avemo_net_input_count(net);
    float *in[AVEMO_NN_MAX_INPUTS] = {0};
    for (int i = 0; i < n; i++) in[i] = nn_random_batch(net, i, 3, 30 + (uint64_t)i);
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, 3, 0, 1, &ctx, &err)) fail_msg("%s", err.message);
    const float *out;
    float plain[3 * AVEMO_MAX_CLASSES], changed[3 * AVEMO_MAX_CLASSES];
    const size_t bytes = sizeof(float) * 3 * (size_t)k;
    if (avemo_net_forward(net, ctx, (const float *const *)in, 3, &out, &err)) fail_msg("%s", err.message);
    memcpy(plain, out, bytes);
    assert_int_equal(avemo_net_prepare(net, &err), AVEMO_OK);
    assert_non_null(net->prepared); /* every pipeline here has a 3x3 layer the transform takes */
    if (avemo_net_forward(net, ctx, (const float *const *)in, 3, &out, &err)) fail_msg("%s", err.message);
    assert_memory_equal(out, plain, bytes);
    /* scale every kernel of the network: the logits must move with them */
    size_t np;
    float *p = avemo_net_params(net, &np);
    assert_null(net->prepared);
    for (int i = 0; i < net->nlayers; i++)
        if (nn_winograd_fits(&net->layers[i]))
            for (size_t j = 0; j < net->layers[i].w_n; j++) p[net->layers[i].w_off + j] *= -1.5f;
    if (avemo_net_forward(net, ctx, (const float *const *)in, 3, &out, &err)) fail_msg("%s", err.message);
    memcpy(changed, out, bytes);
    assert_false(memcmp(changed, plain, bytes) == 0);
    assert_int_equal(avemo_net_prepare(net, &err), AVEMO_OK);
    if (avemo_net_forward(net, ctx, (const float *const *)in, 3, &out, &err)) fail_msg("%s", err.message);
    assert_memory_equal(out, changed, bytes);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 10); /* so does a new initialisation */
    assert_null(net->prepared);
    for (int i = 0; i < n; i++) free(in[i]);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

static void test_prepare(void **state)
{
    (void)state;
    check_prepared_forward(PIPE("avemo-face-deep"));
    check_prepared_forward(PIPE("avemo-audio-deep"));
    check_prepared_forward(PIPE("cremad-av"));
}

/* An optimiser step drops the prepared transform too (training changes the kernels). */
static void test_prepare_dropped_by_step(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("cremad-av"), 11);
    avemo_nn_ctx *ctx;
    avemo_optim *opt;
    struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAMW, .lr = 1e-3f};
    open_training(net, 2, 1, &cfg, &ctx, &opt);
    float *in[2] = {nn_random_batch(net, 0, 2, 1), nn_random_batch(net, 1, 2, 2)};
    int labels[2] = {0, 1};
    assert_int_equal(avemo_net_prepare(net, &err), AVEMO_OK);
    assert_non_null(net->prepared);
    train_step(net, ctx, opt, in, labels, 2);
    assert_null(net->prepared);
    free(in[0]);
    free(in[1]);
    avemo_optim_free(opt);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* Momentum 1/k for the k-th batch leaves the plain mean of the batches' statistics (how the
 * trainer recomputes them after weight averaging), and 0 restores the default momentum. */
static void test_bn_momentum_average(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("face-fer"), 6);
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, 4, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    const size_t ns = net->nstats;
    float *single = calloc(ns, sizeof(float)), *batches[3];
    const float *logits;
    for (int k = 0; k < 3; k++) {
        batches[k] = nn_random_batch(net, 0, 4, 40 + k);
        const float *in[1] = {batches[k]};
        avemo_nn_ctx_set_bn_momentum(ctx, 1.0f); /* the statistics of this batch alone */
        if (avemo_net_forward_train(net, ctx, in, 4, &logits, &err)) fail_msg("%s", err.message);
        for (size_t i = 0; i < ns; i++) single[i] += net->stats[i] / 3.0f;
    }
    for (int k = 0; k < 3; k++) {
        const float *in[1] = {batches[k]};
        avemo_nn_ctx_set_bn_momentum(ctx, 1.0f / (float)(k + 1));
        if (avemo_net_forward_train(net, ctx, in, 4, &logits, &err)) fail_msg("%s", err.message);
    }
    for (size_t i = 0; i < ns; i++) assert_float_equal(net->stats[i], single[i], 1e-4 * (1 + fabsf(single[i])));
    /* Back to 0.1: one more batch moves the statistics a tenth of the way towards its own. */
    float before = net->stats[0];
    avemo_nn_ctx_set_bn_momentum(ctx, 0);
    const float *in[1] = {batches[0]};
    if (avemo_net_forward_train(net, ctx, in, 4, &logits, &err)) fail_msg("%s", err.message);
    float own = ctx->bn_mean[0];
    assert_float_equal(net->stats[0], 0.9f * before + 0.1f * own, 1e-5);
    for (int k = 0; k < 3; k++) free(batches[k]);
    free(single);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* Gradients of one training forward and backward with loss options lo (malloc'ed copy). */
static float *loss_grads(avemo_net *net, avemo_nn_ctx *ctx, const float *batch, const int *labels,
                         const struct avemo_nn_loss *lo, float *loss, size_t *n)
{
    struct avemo_error err;
    const float *in[1] = {batch}, *logits;
    if (avemo_net_forward_train(net, ctx, in, 4, &logits, &err) || avemo_net_backward(net, ctx, labels, lo, loss, &err))
        fail_msg("%s", err.message);
    const float *grads = avemo_nn_ctx_grads(ctx, n);
    float *copy = malloc(sizeof(float) * *n);
    memcpy(copy, grads, sizeof(float) * *n);
    return copy;
}

/* Mixup's loss is l loss(a) + (1 - l) loss(b), and so are its gradients; a weight outside
 * [0, 1] or a mixed label out of range is refused. */
static void test_mixup_loss(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("face-fer"), 8);
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, 4, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    float *batch = nn_random_batch(net, 0, 4, 3);
    int a[4] = {0, 1, 2, 3}, b[4] = {5, 4, 2, 0};
    const float w[6] = {1, 2, 1, 0.5f, 1, 1}, lam = 0.3f;
    size_t n;
    float loss[3], *g[3];
    for (int r = 0; r < 3; r++) {
        struct avemo_nn_loss lo = {.class_weights = w, .label_smoothing = 0.1f, .mix_labels = r == 2 ? b : NULL, .mix_lambda = lam};
        g[r] = loss_grads(net, ctx, batch, r == 1 ? b : a, &lo, &loss[r], &n);
    }
    assert_float_equal(loss[2], lam * loss[0] + (1 - lam) * loss[1], 1e-5);
    float top = 0; /* rounding differs by summation order: compare against the largest gradient */
    for (size_t i = 0; i < n; i++) top = fabsf(g[2][i]) > top ? fabsf(g[2][i]) : top;
    assert_true(top > 0);
    for (size_t i = 0; i < n; i++) assert_float_equal(g[2][i], lam * g[0][i] + (1 - lam) * g[1][i], 1e-5 * top);
    struct avemo_nn_loss bad = {.mix_labels = b, .mix_lambda = 1.5f};
    float l;
    assert_int_equal(avemo_net_loss(net, ctx, a, &bad, &l, &err), AVEMO_ERR_INVALID_ARG);
    int out_of_range[4] = {0, 1, 6, 0};
    bad.mix_labels = out_of_range;
    bad.mix_lambda = 0.5f;
    assert_int_equal(avemo_net_loss(net, ctx, a, &bad, &l, &err), AVEMO_ERR_INVALID_ARG);
    for (int r = 0; r < 3; r++) free(g[r]);
    free(batch);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* Distillation: one-hot soft targets give the loss and gradients of those labels; with weight w
 * the loss and gradients are (1 - w) hard + w soft; bad weights and targets are refused. */
static void test_soft_target_loss(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("face-fer"), 8);
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, 4, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    float *batch = nn_random_batch(net, 0, 4, 3);
    int a[4] = {0, 1, 2, 3}, b[4] = {5, 4, 2, 0};
    float onehot[24] = {0}, teacher[24];
    for (int i = 0; i < 4; i++) onehot[i * 6 + b[i]] = 1;
    for (int i = 0; i < 24; i++) teacher[i] = (float)(1 + i % 5); /* made probabilities below */
    for (int i = 0; i < 4; i++) {
        float sum = 0;
        for (int c = 0; c < 6; c++) sum += teacher[i * 6 + c];
        for (int c = 0; c < 6; c++) teacher[i * 6 + c] /= sum;
    }
    const float w = 0.3f;
    size_t n;
    float loss[4];
    struct avemo_nn_loss hard_b = {0}, hard_a = {0}, as_soft = {.soft_targets = onehot, .soft_weight = 1};
    struct avemo_nn_loss only_teacher = {.soft_targets = teacher, .soft_weight = 1};
    struct avemo_nn_loss mixed = {.soft_targets = teacher, .soft_weight = w};
    float *g_b = loss_grads(net, ctx, batch, b, &hard_b, &loss[0], &n);
    float *g_onehot = loss_grads(net, ctx, batch, a, &as_soft, &loss[1], &n);
    assert_float_equal(loss[1], loss[0], 1e-5);
    float top = 0;
    for (size_t i = 0; i < n; i++) top = fabsf(g_b[i]) > top ? fabsf(g_b[i]) : top;
    assert_true(top > 0);
    for (size_t i = 0; i < n; i++) assert_float_equal(g_onehot[i], g_b[i], 1e-5 * top);
    float *g_a = loss_grads(net, ctx, batch, a, &hard_a, &loss[0], &n);
    float *g_t = loss_grads(net, ctx, batch, a, &only_teacher, &loss[1], &n);
    float *g_m = loss_grads(net, ctx, batch, a, &mixed, &loss[2], &n);
    assert_float_equal(loss[2], (1 - w) * loss[0] + w * loss[1], 1e-5);
    for (size_t i = 0; i < n; i++) assert_float_equal(g_m[i], (1 - w) * g_a[i] + w * g_t[i], 1e-5 * top);
    float l;
    struct avemo_nn_loss bad = {.soft_targets = teacher, .soft_weight = 1.5f};
    assert_int_equal(avemo_net_loss(net, ctx, a, &bad, &l, &err), AVEMO_ERR_INVALID_ARG);
    /* a mean of several exact 1s may round to 1.0000001: a probability still; 1.001 is not */
    onehot[6 + b[1]] = 1.0000001f;
    assert_int_equal(avemo_net_loss(net, ctx, a, &as_soft, &l, &err), AVEMO_OK);
    onehot[6 + b[1]] = 1.001f;
    assert_int_equal(avemo_net_loss(net, ctx, a, &as_soft, &l, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "1.00100005 of sample 1"));
    teacher[7] = -0.1f;
    bad.soft_weight = 0.5f;
    assert_int_equal(avemo_net_loss(net, ctx, a, &bad, &l, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "sample 1"));
    free(g_b), free(g_onehot), free(g_a), free(g_t), free(g_m);
    free(batch);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* Freezing a branch: its parameters do not move, the others do. */
static void test_freeze_branch(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("cremad-av"), 4);
    avemo_nn_ctx *ctx;
    avemo_optim *opt;
    struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-2f};
    open_training(net, 3, 1, &cfg, &ctx, &opt);
    assert_int_equal(avemo_optim_freeze(opt, net, "audio.", 1, &err), AVEMO_OK);
    assert_int_equal(avemo_optim_freeze(opt, net, "video.", 1, &err), AVEMO_ERR_NOT_FOUND);
    float *before = malloc(sizeof(float) * net->nparams);
    memcpy(before, net->params, sizeof(float) * net->nparams);
    float *in[2] = {nn_random_batch(net, 0, 3, 1), nn_random_batch(net, 1, 3, 2)};
    int labels[3] = {1, 2, 4};
    train_step(net, ctx, opt, in, labels, 3);
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        size_t n = l->w_n + l->b_n;
        if (!n) continue;
        int same = memcmp(net->params + l->w_off, before + l->w_off, sizeof(float) * n) == 0;
        if (strncmp(l->name, "audio.", 6) == 0) assert_true(same);
        else assert_false(same);
    }
    free(before);
    free(in[0]);
    free(in[1]);
    avemo_optim_free(opt);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

/* Resuming: 3 steps, save model and optimiser state, 2 more steps; a fresh run from the saved
 * files makes the same 2 steps bit for bit. */
static void test_optimiser_state_resume(void **state)
{
    (void)state;
    struct avemo_error err;
    struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-3f};
    avemo_net *net = make_net(PIPE("audio-mfcc"), 5);
    avemo_nn_ctx *ctx;
    avemo_optim *opt;
    open_training(net, 3, 1, &cfg, &ctx, &opt);
    avemo_nn_ctx_set_dropout(ctx, 0);
    float *in[1] = {nn_random_batch(net, 0, 3, 1)};
    int labels[3] = {2, 0, 5};
    for (int s = 0; s < 3; s++) train_step(net, ctx, opt, in, labels, 3);
    if (avemo_net_save(net, "resume.avm", &err) || avemo_optim_save(opt, "resume.opt", &err))
        fail_msg("%s", err.message);
    for (int s = 0; s < 2; s++) train_step(net, ctx, opt, in, labels, 3);

    avemo_net *net2;
    avemo_nn_ctx *ctx2;
    avemo_optim *opt2;
    if (avemo_net_load("resume.avm", &net2, &err) || avemo_nn_ctx_create(net2, 3, 1, 1, &ctx2, &err) ||
        avemo_optim_create(net2, &cfg, &opt2, &err) || avemo_optim_load(opt2, "resume.opt", &err))
        fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx2, 0);
    for (int s = 0; s < 2; s++) train_step(net2, ctx2, opt2, in, labels, 3);
    assert_memory_equal(net->params, net2->params, sizeof(float) * net->nparams);

    /* Another optimiser kind or network is refused, and so is a damaged file. */
    struct avemo_optim_config sgd = {.kind = AVEMO_OPTIM_SGD, .lr = 1e-3f};
    avemo_optim *other;
    if (avemo_optim_create(net2, &sgd, &other, &err)) fail_msg("%s", err.message);
    assert_int_equal(avemo_optim_load(other, "resume.opt", &err), AVEMO_ERR_MISMATCH);
    size_t size;
    uint8_t *bytes = test_read_file("resume.opt", &size);
    bytes[size / 2] ^= 1;
    FILE *f = fopen("resume.opt", "wb");
    fwrite(bytes, 1, size, f);
    fclose(f);
    assert_int_equal(avemo_optim_load(opt2, "resume.opt", &err), AVEMO_ERR_CHECKSUM);
    assert_non_null(strstr(err.message, "resume.opt"));
    free(bytes);
    free(in[0]);
    avemo_optim_free(other);
    avemo_optim_free(opt2);
    avemo_optim_free(opt);
    avemo_nn_ctx_free(ctx2);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net2);
    avemo_net_free(net);
}

static void test_refusals(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("audio-mfcc"), 1);
    avemo_nn_ctx *ctx, *train;
    const float *logits;
    float loss;
    assert_int_equal(avemo_nn_ctx_create(net, 0, 0, 1, &ctx, &err), AVEMO_ERR_INVALID_ARG);
    if (avemo_nn_ctx_create(net, 2, 0, 1, &ctx, &err)) fail_msg("%s", err.message);
    float *in[1] = {nn_random_batch(net, 0, 3, 1)};
    assert_int_equal(avemo_net_forward(net, ctx, (const float *const *)in, 3, &logits, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "batch 3"));
    assert_int_equal(avemo_net_forward_train(net, ctx, (const float *const *)in, 2, &logits, &err),
                     AVEMO_ERR_INVALID_ARG);
    int labels[3] = {0, 9, 1};
    assert_int_equal(avemo_net_forward(net, ctx, (const float *const *)in, 2, &logits, &err), AVEMO_OK);
    assert_int_equal(avemo_net_loss(net, ctx, labels, NULL, &loss, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "label 9"));
    assert_int_equal(avemo_net_backward(net, ctx, labels, NULL, &loss, &err), AVEMO_ERR_INVALID_ARG);
    /* Batch norm after a dense layer cannot train on one sample (PyTorch refuses it too). */
    if (avemo_nn_ctx_create(net, 2, 1, 1, &train, &err)) fail_msg("%s", err.message);
    assert_int_equal(avemo_net_forward_train(net, train, (const float *const *)in, 1, &logits, &err),
                     AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "batch norm"));
    avemo_net *other = make_net(PIPE("face-fer"), 1);
    assert_int_equal(avemo_net_forward(other, ctx, (const float *const *)in, 1, &logits, &err), AVEMO_ERR_MISMATCH);
    assert_int_equal(avemo_nn_set_threads(0, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_nn_threads(), 1); /* the default */
    avemo_net_free(other);
    free(in[0]);
    avemo_nn_ctx_free(train);
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_a_model),
        cmocka_unit_test(test_training_is_reproducible),
        cmocka_unit_test(test_forward_shared_input),
        cmocka_unit_test(test_workers_match_one),
        cmocka_unit_test(test_bn_momentum_average),
        cmocka_unit_test(test_mixup_loss),
        cmocka_unit_test(test_soft_target_loss),
        cmocka_unit_test(test_freeze_branch),
        cmocka_unit_test(test_optimiser_state_resume),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_prepare_dropped_by_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
