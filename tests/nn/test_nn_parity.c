/* nn_parity_torch: the C forward, backward and optimisers against PyTorch (llm.c's test_gpt2).
 *
 * For each of the three shipped networks, tests/reference/nn_torch.py builds the same network
 * from the same pipeline file, draws parameters, inputs and labels, and writes its logits, loss
 * and gradients in eval and train mode and the losses of 10 optimiser steps (Adam, AdamW with
 * clipping, SGD with momentum).  This test loads the same parameters and inputs and compares:
 * logits and loss to 1e-4, every gradient tensor to 1e-3 (relative to the tensor's largest
 * value; plus 1e-5 of the network's largest gradient for tensors whose true gradient is 0, as
 * the bias of a convolution followed by batch norm, where both sides only hold rounding), the
 * running statistics after a training forward, and the 10 losses of each optimiser (the first
 * to 1e-4, later ones to 2e-2: see check_optimiser).
 * Gradients are compared on smaller inputs (8x16 MFCC, 8x8 faces) drawn away from ReLU and
 * max-pool kinks; logits and loss are also compared at the pipelines' full input sizes. */
#include "common/testutil.h"
#include "nn/nn_ref.h"
#include "nn/nn_internal.h"

#include <math.h>

struct ref {
    char dir[256];
};



/* Each parameter tensor (weight, bias) of each layer on its own. */
static void assert_grads_close(const avemo_net *net, const float *grads, const float *ref, const char *mode)
{
    double global = 0.0;
    for (size_t j = 0; j < net->nparams; j++) global = fmax(global, fabs(ref[j]));
    const double floor = 1e-5 * global;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        char what[128];
        if (l->w_n) {
            snprintf(what, sizeof what, "%s grad %s (%s) weight", mode, l->name, l->spec);
            nn_ref_assert_close(what, grads + l->w_off, ref + l->w_off, l->w_n, 1e-3, floor);
        }
        if (l->b_n) {
            snprintf(what, sizeof what, "%s grad %s (%s) bias", mode, l->name, l->spec);
            nn_ref_assert_close(what, grads + l->b_off, ref + l->b_off, l->b_n, 1e-3, floor);
        }
    }
}

struct fixture {
    struct ref ref;
    avemo_net *net;
    float *params, *stats, *inputs[AVEMO_NN_MAX_INPUTS], *weights;
    int labels[64];
    int batch;
    float smoothing;
};

/* Runs the reference script on pipelines/<pipeline>.ini with smaller inputs (the parameters
 * do not depend on the input sizes; see nn_torch.py for why small) and loads its output. */
static void fixture_load(struct fixture *f, const char *pipeline, const char *small_inputs)
{
    struct avemo_error err;
    char ini[512], cmd[2048];
    snprintf(ini, sizeof ini, "%s/pipelines/%s.ini", AVEMO_SOURCE_DIR, pipeline);
    snprintf(f->ref.dir, sizeof f->ref.dir, "nn_parity_%s", pipeline);
    const char *seed = getenv("AVEMO_NN_PARITY_SEED"); /* to try other draws by hand */
    snprintf(cmd, sizeof cmd, "%s %s/tests/reference/nn_torch.py %s %s --batch 4 --seed %d --inputs '%s' --full-forward",
             AVEMO_PYTHON, AVEMO_SOURCE_DIR, ini, f->ref.dir, seed ? atoi(seed) : 7, small_inputs);
    if (system(cmd) != 0) fail_msg("reference script failed: %s", cmd);
    snprintf(ini, sizeof ini, "%s/pipeline.ini", f->ref.dir);
    if (avemo_net_create_file(ini, &f->net, &err) != AVEMO_OK) fail_msg("%s", err.message);
    size_t n, np, ns;
    f->params = nn_ref_load(f->ref.dir, "params", &np);
    f->stats = nn_ref_load(f->ref.dir, "stats", &ns);
    assert_int_equal(np, f->net->nparams);
    assert_int_equal(ns, f->net->nstats);
    float *meta = nn_ref_load(f->ref.dir, "meta", &n);
    f->smoothing = meta[0];
    f->batch = (int)meta[1];
    free(meta);
    float *labels = nn_ref_load(f->ref.dir, "labels", &n);
    assert_int_equal(n, (size_t)f->batch);
    for (int i = 0; i < f->batch; i++) f->labels[i] = (int)labels[i];
    free(labels);
    f->weights = nn_ref_load(f->ref.dir, "class_weights", &n);
    assert_int_equal(n, (size_t)f->net->classes);
    for (int i = 0; i < f->net->ninputs; i++) {
        char name[64];
        snprintf(name, sizeof name, "in_%s", f->net->stages[i].name);
        f->inputs[i] = nn_ref_load(f->ref.dir, name, &n);
        assert_int_equal(n, (size_t)f->batch * avemo_net_input_shape(f->net, i, NULL, NULL, NULL, NULL));
    }
}

static void fixture_reset(struct fixture *f)
{
    memcpy(f->net->params, f->params, sizeof(float) * f->net->nparams);
    memcpy(f->net->stats, f->stats, sizeof(float) * f->net->nstats);
}

static void fixture_free(struct fixture *f)
{
    avemo_net_free(f->net);
    free(f->params);
    free(f->stats);
    free(f->weights);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(f->inputs[i]);
}

static void check_mode(struct fixture *f, avemo_nn_ctx *ctx, int train)
{
    const char *mode = train ? "train" : "eval";
    struct avemo_error err;
    struct avemo_nn_loss lopt = {.class_weights = f->weights, .label_smoothing = f->smoothing};
    const float *logits;
    float loss;
    size_t n;
    char name[64];
    fixture_reset(f);
    enum avemo_status st = train ? avemo_net_forward_train(f->net, ctx, (const float *const *)f->inputs, f->batch,
                                                           &logits, &err)
                                 : avemo_net_forward(f->net, ctx, (const float *const *)f->inputs, f->batch,
                                                     &logits, &err);
    if (st) fail_msg("%s", err.message);
    snprintf(name, sizeof name, "%s_logits", mode);
    float *ref_logits = nn_ref_load(f->ref.dir, name, &n);
    assert_int_equal(n, (size_t)f->batch * f->net->classes);
    nn_ref_assert_close(name, logits, ref_logits, n, 1e-4, 0.0);
    if (avemo_net_backward(f->net, ctx, f->labels, &lopt, &loss, &err)) fail_msg("%s", err.message);
    snprintf(name, sizeof name, "%s_loss", mode);
    float *ref_loss = nn_ref_load(f->ref.dir, name, &n);
    nn_ref_assert_close(name, &loss, ref_loss, 1, 1e-4, 0.0);
    snprintf(name, sizeof name, "%s_grads", mode);
    float *ref_grads = nn_ref_load(f->ref.dir, name, &n);
    assert_int_equal(n, f->net->nparams);
    assert_grads_close(f->net, ctx->grads, ref_grads, mode);
    if (train) {
        float *ref_stats = nn_ref_load(f->ref.dir, "train_stats", &n);
        nn_ref_assert_close("running statistics after a training forward", f->net->stats, ref_stats, n, 1e-4, 0.0);
        free(ref_stats);
    } else {
        assert_memory_equal(f->net->stats, f->stats, sizeof(float) * f->net->nstats); /* untouched */
    }
    free(ref_logits);
    free(ref_loss);
    free(ref_grads);
}

static void check_optimiser(struct fixture *f, avemo_nn_ctx *ctx, const char *name,
                            const struct avemo_optim_config *cfg)
{
    struct avemo_error err;
    struct avemo_nn_loss lopt = {.class_weights = f->weights, .label_smoothing = f->smoothing};
    avemo_optim *opt;
    fixture_reset(f);
    if (avemo_optim_create(f->net, cfg, &opt, &err)) fail_msg("%s", err.message);
    char key[64];
    size_t n;
    snprintf(key, sizeof key, "%s_losses", name);
    float *ref = nn_ref_load(f->ref.dir, key, &n);
    assert_int_equal(n, 10);
    float losses[10];
    for (int step = 0; step < 10; step++) {
        const float *logits;
        if (avemo_net_forward_train(f->net, ctx, (const float *const *)f->inputs, f->batch, &logits, &err) ||
            avemo_net_backward(f->net, ctx, f->labels, &lopt, &losses[step], &err) ||
            avemo_optim_step(opt, f->net, ctx, NULL, &err))
            fail_msg("%s", err.message);
        printf("%s step %d: avemo %.7f torch %.7f\n", name, step, (double)losses[step], (double)ref[step]);
    }
    for (int step = 0; step < 10; step++) {
        char what[64];
        snprintf(what, sizeof what, "%s loss at step %d", name, step);
        /* Step 0 is a plain training forward.  Later steps usually agree to 1e-5, but as the
         * parameters move, a ReLU input or a pooling pair may come within rounding of its kink
         * and the two engines then take different branches: a jump in the loss of up to 0.8%
         * over five seeds (Adam amplifies it, dividing each gradient by its own size).
         * llm.c's test_gpt2 allows 1e-2 on its losses. */
        nn_ref_assert_close(what, &losses[step], &ref[step], 1, step == 0 ? 1e-4 : 2e-2, 0.0);
    }
    free(ref);
    avemo_optim_free(opt);
}

/* The same parameters in the network of the pipeline's own input sizes: logits and loss. */
static void check_full_size(struct fixture *f, const char *pipeline)
{
    struct avemo_error err;
    char ini[512], name[64];
    snprintf(ini, sizeof ini, "%s/pipelines/%s.ini", AVEMO_SOURCE_DIR, pipeline);
    avemo_net *net;
    avemo_nn_ctx *ctx;
    if (avemo_net_create_file(ini, &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(net->nparams, f->net->nparams);
    memcpy(net->params, f->params, sizeof(float) * net->nparams);
    float *inputs[AVEMO_NN_MAX_INPUTS] = {0};
    size_t n;
    for (int i = 0; i < net->ninputs; i++) {
        snprintf(name, sizeof name, "full_in_%s", net->stages[i].name);
        inputs[i] = nn_ref_load(f->ref.dir, name, &n);
        assert_int_equal(n, (size_t)f->batch * avemo_net_input_shape(net, i, NULL, NULL, NULL, NULL));
    }
    if (avemo_nn_ctx_create(net, f->batch, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    struct avemo_nn_loss lopt = {.class_weights = f->weights, .label_smoothing = f->smoothing};
    for (int train = 0; train < 2; train++) {
        const char *mode = train ? "train" : "eval";
        const float *logits;
        float loss;
        memcpy(net->stats, f->stats, sizeof(float) * net->nstats);
        enum avemo_status st = train ? avemo_net_forward_train(net, ctx, (const float *const *)inputs, f->batch,
                                                               &logits, &err)
                                     : avemo_net_forward(net, ctx, (const float *const *)inputs, f->batch, &logits,
                                                         &err);
        if (st || avemo_net_loss(net, ctx, f->labels, &lopt, &loss, &err)) fail_msg("%s", err.message);
        snprintf(name, sizeof name, "full_%s_logits", mode);
        float *ref = nn_ref_load(f->ref.dir, name, &n);
        nn_ref_assert_close(name, logits, ref, n, 1e-4, 0.0);
        if (!train) { /* an inference-only context fuses conv, batch norm and ReLU: the same logits */
            avemo_nn_ctx *infer;
            const float *fused;
            if (avemo_nn_ctx_create(net, f->batch, 0, 1, &infer, &err) ||
                avemo_net_forward(net, infer, (const float *const *)inputs, f->batch, &fused, &err))
                fail_msg("%s", err.message);
            nn_ref_assert_close("full_eval_logits (inference context)", fused, ref, n, 1e-4, 0.0);
            avemo_nn_ctx_free(infer);
        }
        free(ref);
        snprintf(name, sizeof name, "full_%s_loss", mode);
        ref = nn_ref_load(f->ref.dir, name, &n);
        nn_ref_assert_close(name, &loss, ref, 1, 1e-4, 0.0);
        free(ref);
    }
    avemo_nn_ctx_free(ctx);
    avemo_net_free(net);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(inputs[i]);
}

static void parity(const char *pipeline, const char *small_inputs)
{
    struct fixture f = {0};
    fixture_load(&f, pipeline, small_inputs);
    check_full_size(&f, pipeline);
    struct avemo_error err;
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(f.net, f.batch, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    check_mode(&f, ctx, 0);
    check_mode(&f, ctx, 1);
    /* The same settings as nn_torch.py's runs. */
    struct avemo_optim_config adam = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-4f};
    struct avemo_optim_config adamw = {.kind = AVEMO_OPTIM_ADAMW, .lr = 1e-4f, .weight_decay = 0.1f, .clip_norm = 1.0f};
    struct avemo_optim_config sgd = {.kind = AVEMO_OPTIM_SGD, .lr = 1e-3f, .momentum = 0.9f, .weight_decay = 1e-3f};
    check_optimiser(&f, ctx, "adam", &adam);
    check_optimiser(&f, ctx, "adamw", &adamw);
    check_optimiser(&f, ctx, "sgd", &sgd);
    avemo_nn_ctx_free(ctx);
    fixture_free(&f);
}

static void test_parity_dual_stream(void **state)
{
    (void)state;
    parity("cremad-av", "audio:1x8x16, face:3x8x8");
}

static void test_parity_audio(void **state)
{
    (void)state;
    parity("audio-mfcc", "audio:1x8x16");
}

static void test_parity_face(void **state)
{
    (void)state;
    parity("face-fer", "face:3x8x8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_dual_stream),
        cmocka_unit_test(test_parity_audio),
        cmocka_unit_test(test_parity_face),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
