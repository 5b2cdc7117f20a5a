/* nn_lstm_parity: the LSTM and seq layers against PyTorch's nn.LSTM (batch_first).
 *
 * tests/reference/nn_torch.py builds each network below with torch.nn (seq is
 * x.permute(0, 3, 1, 2).reshape(B, T, C * F); lstm is nn.LSTM, its output sequence or h_n),
 * draws parameters, inputs and labels, and writes logits, loss and gradients in eval and train
 * mode and the losses of 10 Adam and SGD steps.  The C engine loads the same parameters and
 * must agree: logits and loss to 1e-4, every gradient tensor to 1e-3 of its largest value (the
 * LSTM's weight_ih, weight_hh, bias_ih and bias_hh of each direction compared one by one), the
 * first optimiser loss to 1e-4 and later ones to 2e-2 (as nn_parity_torch).
 * The shipped CNN-LSTM pipeline (pipelines/ser-mfcc-cnnlstm.ini) is compared on its forward
 * (logits and loss in both modes, training and inference contexts) on 40 x 64 MFCC: the
 * parameters do not depend on the number of frames. */
#include "common/testutil.h"
#include "nn/nn_ref.h"
#include "nn/nn_internal.h"

#include <math.h>



static void assert_grads_close(const avemo_net *net, const float *grads, const float *ref, const char *mode)
{
    double global = 0.0;
    for (size_t j = 0; j < net->nparams; j++) global = fmax(global, fabs(ref[j]));
    const double floor = 1e-5 * global;
    int lstm_tensors = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        char what[160];
        if (l->op == NN_LSTM) { /* per direction: weight_ih, weight_hh, bias_ih, bias_hh */
            static const char *const names[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
            const size_t G = 4 * (size_t)l->hidden;
            const size_t sizes[4] = {G * l->in_h, G * l->hidden, G, G};
            size_t off = l->w_off;
            for (int d = 0; d < l->dirs; d++)
                for (int k = 0; k < 4; k++) {
                    snprintf(what, sizeof what, "%s grad %s (%s) %s%s", mode, l->name, l->spec, names[k],
                             d ? "_reverse" : "");
                    nn_ref_assert_close(what, grads + off, ref + off, sizes[k], 1e-3, floor);
                    off += sizes[k];
                    lstm_tensors++;
                }
            assert_int_equal(off, l->w_off + l->w_n);
            continue;
        }
        if (l->w_n) {
            snprintf(what, sizeof what, "%s grad %s (%s) weight", mode, l->name, l->spec);
            nn_ref_assert_close(what, grads + l->w_off, ref + l->w_off, l->w_n, 1e-3, floor);
        }
        if (l->b_n) {
            snprintf(what, sizeof what, "%s grad %s (%s) bias", mode, l->name, l->spec);
            nn_ref_assert_close(what, grads + l->b_off, ref + l->b_off, l->b_n, 1e-3, floor);
        }
    }
    assert_true(lstm_tensors >= 4);
}

struct fixture {
    char dir[256];
    avemo_net *net;
    float *params, *stats, *inputs[AVEMO_NN_MAX_INPUTS], *weights;
    int labels[64];
    int batch;
    float smoothing;
};

/* Writes the network text to NAME.ini, runs the reference script on it and loads its output. */
static void fixture_load(struct fixture *f, const char *name, const char *ini_path, const char *ini_text,
                         const char *extra)
{
    struct avemo_error err;
    char path[512], cmd[2048];
    if (ini_text) {
        snprintf(path, sizeof path, "nn_lstm_%s.ini", name);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(ini_text, fp);
        fclose(fp);
        ini_path = path;
    }
    snprintf(f->dir, sizeof f->dir, "nn_lstm_%s", name);
    snprintf(cmd, sizeof cmd, "%s %s/tests/reference/nn_torch.py %s %s --batch 4 --seed 7 %s", AVEMO_PYTHON,
             AVEMO_SOURCE_DIR, ini_path, f->dir, extra);
    if (system(cmd) != 0) fail_msg("reference script failed: %s", cmd);
    snprintf(path, sizeof path, "%s/pipeline.ini", f->dir);
    if (avemo_net_create_file(path, &f->net, &err) != AVEMO_OK) fail_msg("%s", err.message);
    size_t n, np, ns;
    f->params = nn_ref_load(f->dir, "params", &np);
    f->stats = nn_ref_load(f->dir, "stats", &ns);
    assert_int_equal(np, f->net->nparams);
    assert_int_equal(ns, f->net->nstats);
    float *meta = nn_ref_load(f->dir, "meta", &n);
    f->smoothing = meta[0];
    f->batch = (int)meta[1];
    free(meta);
    float *labels = nn_ref_load(f->dir, "labels", &n);
    for (int i = 0; i < f->batch; i++) f->labels[i] = (int)labels[i];
    free(labels);
    f->weights = nn_ref_load(f->dir, "class_weights", &n);
    for (int i = 0; i < f->net->ninputs; i++) {
        char in[64];
        snprintf(in, sizeof in, "in_%s", f->net->stages[i].name);
        f->inputs[i] = nn_ref_load(f->dir, in, &n);
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

/* Logits and loss of one mode; with grads, the backward too. */
static void check_mode(struct fixture *f, avemo_nn_ctx *ctx, int train, int grads)
{
    const char *mode = train ? "train" : "eval";
    struct avemo_error err;
    struct avemo_nn_loss lopt = {.class_weights = f->weights, .label_smoothing = f->smoothing};
    const float *logits;
    float loss;
    size_t n;
    char name[64];
    fixture_reset(f);
    const float *const *in = (const float *const *)f->inputs;
    enum avemo_status st = train ? avemo_net_forward_train(f->net, ctx, in, f->batch, &logits, &err)
                                 : avemo_net_forward(f->net, ctx, in, f->batch, &logits, &err);
    if (st) fail_msg("%s", err.message);
    snprintf(name, sizeof name, "%s_logits", mode);
    float *ref_logits = nn_ref_load(f->dir, name, &n);
    assert_int_equal(n, (size_t)f->batch * f->net->classes);
    nn_ref_assert_close(name, logits, ref_logits, n, 1e-4, 0.0);
    if (!train) { /* an inference-only context: the same logits */
        avemo_nn_ctx *infer;
        const float *y;
        if (avemo_nn_ctx_create(f->net, f->batch, 0, 1, &infer, &err) ||
            avemo_net_forward(f->net, infer, in, f->batch, &y, &err))
            fail_msg("%s", err.message);
        nn_ref_assert_close("eval logits (inference context)", y, ref_logits, n, 1e-4, 0.0);
        avemo_nn_ctx_free(infer);
    }
    if (grads) {
        if (avemo_net_backward(f->net, ctx, f->labels, &lopt, &loss, &err)) fail_msg("%s", err.message);
    } else if (avemo_net_loss(f->net, ctx, f->labels, &lopt, &loss, &err)) {
        fail_msg("%s", err.message);
    }
    snprintf(name, sizeof name, "%s_loss", mode);
    float *ref_loss = nn_ref_load(f->dir, name, &n);
    nn_ref_assert_close(name, &loss, ref_loss, 1, 1e-4, 0.0);
    if (grads) {
        snprintf(name, sizeof name, "%s_grads", mode);
        float *ref_grads = nn_ref_load(f->dir, name, &n);
        assert_int_equal(n, f->net->nparams);
        assert_grads_close(f->net, ctx->grads, ref_grads, mode);
        free(ref_grads);
    }
    free(ref_logits);
    free(ref_loss);
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
    float *ref = nn_ref_load(f->dir, key, &n);
    assert_int_equal(n, 10);
    for (int step = 0; step < 10; step++) {
        const float *logits;
        float loss;
        if (avemo_net_forward_train(f->net, ctx, (const float *const *)f->inputs, f->batch, &logits, &err) ||
            avemo_net_backward(f->net, ctx, f->labels, &lopt, &loss, &err) ||
            avemo_optim_step(opt, f->net, ctx, NULL, &err))
            fail_msg("%s", err.message);
        snprintf(key, sizeof key, "%s loss at step %d", name, step);
        nn_ref_assert_close(key, &loss, &ref[step], 1, step == 0 ? 1e-4 : 2e-2, 0.0);
    }
    free(ref);
    avemo_optim_free(opt);
}

static void parity(const char *name, const char *ini_text)
{
    struct fixture f = {0};
    fixture_load(&f, name, NULL, ini_text, "");
    struct avemo_error err;
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(f.net, f.batch, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    check_mode(&f, ctx, 0, 1);
    check_mode(&f, ctx, 1, 1);
    size_t n;
    float *ref_stats = nn_ref_load(f.dir, "train_stats", &n);
    assert_int_equal(n, f.net->nstats);
    nn_ref_assert_close("running statistics after a training forward", f.net->stats, ref_stats, n, 1e-4, 0.0);
    free(ref_stats);
    struct avemo_optim_config adam = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-4f};
    struct avemo_optim_config sgd = {.kind = AVEMO_OPTIM_SGD, .lr = 1e-3f, .momentum = 0.9f, .weight_decay = 1e-3f};
    check_optimiser(&f, ctx, "adam", &adam);
    check_optimiser(&f, ctx, "sgd", &sgd);
    avemo_nn_ctx_free(ctx);
    fixture_free(&f);
}

#define NET(inputs, branch, head) "[network]\ninputs = " inputs "\n[branch.x]\nlayers = " branch "\n[head]\nlayers = " head "\n"

static void test_bare_lstm(void **state)
{
    (void)state;
    parity("bare", NET("x:1x6x9", "seq, lstm 5", "dense 4"));
}

static void test_stacked_bidirectional(void **state)
{
    (void)state;
    parity("stacked", NET("x:2x3x7", "seq, lstm 6 seq bidirectional, lstm 5 bidirectional", "dense 3"));
}

static void test_sequence_output(void **state)
{
    (void)state; /* the whole output sequence flattened into the head */
    parity("sequence", NET("x:3x2x5", "seq, lstm 4 seq", "dense 6, relu, dense 3"));
}

static void test_cnn_lstm(void **state)
{
    (void)state;
    parity("cnn", NET("x:1x8x12", "conv 4 3 same, bn, relu, maxpool 2, seq, lstm 8 seq, dropout 0.3, lstm 6",
                      "dense 8, relu, dense 4"));
}

/* The shipped CNN-LSTM pipeline, forward only: at this size many ReLU inputs lie within
 * rounding of 0, so gradients may legitimately differ there (see nn_torch.py). */
static void test_pipeline_forward(void **state)
{
    (void)state;
    struct fixture f = {0};
    char ini[512];
    snprintf(ini, sizeof ini, "%s/pipelines/ser-mfcc-cnnlstm.ini", AVEMO_SOURCE_DIR);
    fixture_load(&f, "pipeline", ini, NULL, "--margin 0 --inputs audio:1x40x64");
    struct avemo_error err;
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(f.net, f.batch, 1, 1, &ctx, &err)) fail_msg("%s", err.message);
    avemo_nn_ctx_set_dropout(ctx, 0);
    check_mode(&f, ctx, 0, 0);
    check_mode(&f, ctx, 1, 0);
    avemo_nn_ctx_free(ctx);
    fixture_free(&f);
}

/* PyTorch's initialisation, and a model file round trip: the same logits bit for bit. */
static void test_init_and_model_file(void **state)
{
    (void)state;
    struct avemo_error err;
    char ini[512];
    snprintf(ini, sizeof ini, "%s/pipelines/ser-mfcc-cnnlstm.ini", AVEMO_SOURCE_DIR);
    avemo_net *net, *loaded;
    if (avemo_net_create_file(ini, &net, &err)) fail_msg("%s", err.message);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 3);
    int lstm = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (l->op != NN_LSTM) continue;
        const float k = 1.0f / sqrtf((float)l->hidden);
        double sum = 0.0, sq = 0.0;
        for (size_t j = 0; j < l->w_n; j++) {
            const float v = net->params[l->w_off + j];
            assert_true(v >= -k && v <= k);
            sum += v;
            sq += (double)v * v;
        }
        const double mean = sum / l->w_n, var = sq / l->w_n - mean * mean; /* U(-k, k): variance k^2 / 3 */
        assert_true(fabs(mean) < 0.01 * k && fabs(var / (k * k / 3.0) - 1.0) < 0.01);
        lstm++;
    }
    assert_int_equal(lstm, 1);
    if (avemo_net_save(net, "nn_lstm_model.avm", &err) || avemo_net_load("nn_lstm_model.avm", &loaded, &err))
        fail_msg("%s", err.message);
    enum { B = 2 };
    const size_t n = B * avemo_net_input_shape(net, 0, NULL, NULL, NULL, NULL);
    float *x = malloc(sizeof(float) * n);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 5, 5);
    for (size_t j = 0; j < n; j++) x[j] = avemo_rng_normal(&rng);
    const float *in[1] = {x}, *a, *b;
    avemo_nn_ctx *ca, *cb;
    if (avemo_nn_ctx_create(net, B, 0, 0, &ca, &err) || avemo_nn_ctx_create(loaded, B, 0, 0, &cb, &err) ||
        avemo_net_forward(net, ca, in, B, &a, &err) || avemo_net_forward(loaded, cb, in, B, &b, &err))
        fail_msg("%s", err.message);
    assert_memory_equal(a, b, sizeof(float) * B * avemo_net_classes(net));
    avemo_nn_ctx_free(ca);
    avemo_nn_ctx_free(cb);
    avemo_net_free(loaded);
    avemo_net_free(net);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_lstm),
        cmocka_unit_test(test_stacked_bidirectional),
        cmocka_unit_test(test_sequence_output),
        cmocka_unit_test(test_cnn_lstm),
        cmocka_unit_test(test_pipeline_forward),
        cmocka_unit_test(test_init_and_model_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
