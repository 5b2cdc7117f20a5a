/* nn_inspect: the "looking inside" API of nn.h (explanations): kept layer gradients agree with
 * finite differences taken through the head-only forward, the head-only forward agrees with the
 * whole forward, and the API refuses what it cannot give, naming why. */
#include "common/testutil.h"
#include "nn/nn_ref.h"

#include <math.h>

static const char pipeline[] =
    "[network]\n"
    "inputs = a:1x8x8, b:2x6x6\n"
    "[branch.a]\n"
    "layers = conv 4 3 same, bn, relu, maxpool 2, gap, dense 5, relu, dropout 0.5\n"
    "[branch.b]\n"
    "layers = conv 3 3 same, relu, gap\n"
    "[head]\n"
    "layers = dense 8, bn, relu, dropout 0.3, dense 3\n";

#define B 3

struct fixture {
    avemo_net *net;
    avemo_nn_ctx *ctx;  /* training context */
    float *in[2];
};

static void fixture_open(struct fixture *f)
{
    struct avemo_error err;
    if (avemo_net_create(pipeline, "inspect", &f->net, &err)) fail_msg("%s", err.message);
    avemo_net_init(f->net, AVEMO_NN_INIT_DEFAULT, 5);
    size_t ns;
    float *stats = avemo_net_stats(f->net, &ns);
    for (size_t i = 0; i < ns; i++) stats[i] = i % 2 ? 1.3f : 0.05f; /* not the identity */
    if (avemo_nn_ctx_create(f->net, B, 1, 1, &f->ctx, &err)) fail_msg("%s", err.message);
    f->in[0] = nn_random_batch(f->net, 0, B, 1);
    f->in[1] = nn_random_batch(f->net, 1, B, 2);
}

static void fixture_close(struct fixture *f)
{
    avemo_nn_ctx_free(f->ctx);
    avemo_net_free(f->net);
    free(f->in[0]);
    free(f->in[1]);
}

/* Sum over the batch of logit `target` with the head run on `head`. */
static double head_score(struct fixture *f, const float *head, int target)
{
    const float *logits;
    struct avemo_error err;
    if (avemo_net_forward_head(f->net, f->ctx, head, B, &logits, &err)) fail_msg("%s", err.message);
    double s = 0.0;
    for (int n = 0; n < B; n++) s += logits[n * 3 + target];
    return s;
}

/* The kept gradient of each branch's last layer (its features) is d score / d head input:
 * central differences through avemo_net_forward_head agree. */
static void test_kept_gradients_match_finite_differences(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct avemo_error err;
    const int last[2] = {avemo_net_layer_find(f.net, "a.7"), avemo_net_layer_find(f.net, "b.2")};
    assert_true(last[0] >= 0 && last[1] >= 0);
    for (int i = 0; i < 2; i++) assert_int_equal(avemo_nn_ctx_keep_gradient(f.ctx, last[i], &err), AVEMO_OK);
    const float *logits;
    assert_int_equal(avemo_net_forward(f.net, f.ctx, (const float *const *)f.in, B, &logits, &err), AVEMO_OK);
    float full[B * 3], dlogits[B * 3] = {0};
    memcpy(full, logits, sizeof full);
    const int target = 1;
    for (int n = 0; n < B; n++) dlogits[n * 3 + target] = 1.0f;
    assert_int_equal(avemo_net_backward_logits(f.net, f.ctx, dlogits, &err), AVEMO_OK);
    float grads[2][B * 5]; /* copies: the head-only forwards below end the gradients' validity */
    for (int i = 0; i < 2; i++) {
        struct avemo_nn_tensor g;
        assert_int_equal(avemo_nn_ctx_gradient(f.ctx, last[i], &g, &err), AVEMO_OK);
        assert_int_equal(g.batch, B);
        assert_int_equal((size_t)g.c * g.h * g.w, avemo_net_branch_features(f.net, i, NULL));
        memcpy(grads[i], g.data, sizeof(float) * B * g.c * g.h * g.w);
    }
    const size_t row = avemo_net_head_inputs(f.net);
    assert_int_equal(row, 5 + 3);
    float head[B * 8], work[B * 8];
    int batch;
    memcpy(head, avemo_nn_ctx_head_input(f.ctx, &batch), sizeof head);
    assert_int_equal(batch, B);
    /* the head alone on the same input: the same logits */
    const float *again;
    assert_int_equal(avemo_net_forward_head(f.net, f.ctx, head, B, &again, &err), AVEMO_OK);
    for (int i = 0; i < B * 3; i++) assert_true(fabsf(again[i] - full[i]) < 1e-6f);
    for (int i = 0; i < 2; i++) {
        size_t off, n = avemo_net_branch_features(f.net, i, &off);
        for (int s = 0; s < B; s++)
            for (size_t k = 0; k < n; k++) {
                const float eps = 1e-2f;
                memcpy(work, head, sizeof work);
                work[s * row + off + k] += eps;
                double up = head_score(&f, work, target);
                work[s * row + off + k] -= 2 * eps;
                double down = head_score(&f, work, target);
                double fd = (up - down) / (2 * eps);
                if (fabs(fd - grads[i][s * n + k]) > 1e-3)
                    fail_msg("input %d sample %d feature %zu: kept %g, finite differences %g", i, s, k,
                             (double)grads[i][s * n + k], fd);
            }
    }
    fixture_close(&f);
}

/* Each refusal names what is wrong. */
static void test_refusals(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct avemo_error err;
    struct avemo_nn_tensor t;
    const float *logits;
    float dlogits[B * 3] = {0};
    int bn = avemo_net_layer_find(f.net, "a.1"), conv = avemo_net_layer_find(f.net, "a.0");
    assert_string_equal(avemo_net_layer_type(f.net, bn), "bn");
    assert_int_equal(avemo_net_layer_input(f.net, bn), 0);
    assert_int_equal(avemo_net_layer_input(f.net, avemo_net_layer_find(f.net, "head.0")), -1);
    assert_int_equal(avemo_net_layer_find(f.net, "a.99"), -1);
    /* a batch norm followed by a ReLU keeps no output: the ReLU is named instead */
    assert_int_equal(avemo_nn_ctx_keep_gradient(f.ctx, bn, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "use layer a.2"));
    /* no gradient kept, no backward yet */
    assert_int_equal(avemo_nn_ctx_gradient(f.ctx, conv, &t, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "not kept"));
    assert_int_equal(avemo_nn_ctx_keep_gradient(f.ctx, conv, &err), AVEMO_OK);
    assert_int_equal(avemo_net_forward(f.net, f.ctx, (const float *const *)f.in, B, &logits, &err), AVEMO_OK);
    assert_int_equal(avemo_nn_ctx_gradient(f.ctx, conv, &t, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "no backward"));
    assert_int_equal(avemo_net_backward_logits(f.net, f.ctx, dlogits, &err), AVEMO_OK);
    assert_int_equal(avemo_nn_ctx_gradient(f.ctx, conv, &t, &err), AVEMO_OK);
    assert_true(t.batch == B && t.c == 4 && t.h == 8 && t.w == 8);
    /* a shared forward cannot be followed by a backward */
    assert_int_equal(avemo_net_forward_shared(f.net, f.ctx, (const float *const *)f.in, B, 1u, &logits, &err), AVEMO_OK);
    assert_int_equal(avemo_net_backward_logits(f.net, f.ctx, dlogits, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "shared"));
    /* nor a head-only one, whose branches did not run */
    assert_int_equal(avemo_net_forward_head(f.net, f.ctx, avemo_nn_ctx_head_input(f.ctx, NULL), B, &logits, &err),
                     AVEMO_OK);
    assert_int_equal(avemo_net_backward_logits(f.net, f.ctx, dlogits, &err), AVEMO_ERR_INVALID_ARG);
    const int labels[B] = {0, 1, 2};
    float loss;
    assert_int_equal(avemo_net_backward(f.net, f.ctx, labels, NULL, &loss, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "head-only"));
    assert_int_equal(avemo_nn_ctx_activation(f.ctx, conv, &t, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "did not run"));
    /* an inference context fuses the convolution with its batch norm and ReLU, and has no gradients */
    avemo_nn_ctx *infer;
    assert_int_equal(avemo_nn_ctx_create(f.net, B, 0, 1, &infer, &err), AVEMO_OK);
    assert_int_equal(avemo_net_forward(f.net, infer, (const float *const *)f.in, B, &logits, &err), AVEMO_OK);
    assert_int_equal(avemo_nn_ctx_activation(infer, conv, &t, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "training = 1"));
    assert_int_equal(avemo_nn_ctx_activation(infer, avemo_net_layer_find(f.net, "a.2"), &t, &err), AVEMO_OK);
    assert_true(t.batch == B && t.c == 4 && t.h == 8 && t.w == 8);
    assert_int_equal(avemo_nn_ctx_keep_gradient(infer, conv, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_net_backward_logits(f.net, infer, dlogits, &err), AVEMO_ERR_INVALID_ARG);
    avemo_nn_ctx_free(infer);
    fixture_close(&f);
}

/* Window (c, oh, ow) of sample n: the 2x2 max pool's gradient g went to exactly one of its four
 * inputs (dx), the first equal to the pool's output y when the ReLU's output x is given. */
static void check_window(const float *x, const float *dx, float y, float g, int W)
{
    int nonzero = 0, first = -1;
    const int at[4] = {0, 1, W, W + 1};
    for (int i = 0; i < 4; i++) {
        nonzero += dx[at[i]] != 0.0f;
        if (x && first < 0 && x[at[i]] == y) first = i;
    }
    assert_true(nonzero <= 1);
    assert_float_equal(dx[at[0]] + dx[at[1]] + dx[at[2]] + dx[at[3]], g, 0.0);
    if (x) assert_float_equal(dx[at[first]], g, 0.0);
}

/* The ReLU before a 2x2 max pool: a training forward does not keep its output (the batch norm's
 * backward makes it again) and says so; its kept gradient is the pool's backward in both modes. */
static void test_relu_gradient_before_pool(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct avemo_error err;
    struct avemo_nn_tensor x, dx, y, dy;
    const float *logits;
    float dlogits[B * 3];
    for (int i = 0; i < B * 3; i++) dlogits[i] = (float)(i % 5) - 1.7f;
    const int relu = avemo_net_layer_find(f.net, "a.2"), pool = avemo_net_layer_find(f.net, "a.3");
    assert_int_equal(avemo_nn_ctx_keep_gradient(f.ctx, relu, &err), AVEMO_OK);
    assert_int_equal(avemo_nn_ctx_keep_gradient(f.ctx, pool, &err), AVEMO_OK);
    for (int train = 0; train <= 1; train++) {
        const float *const *in = (const float *const *)f.in;
        assert_int_equal(train ? avemo_net_forward_train(f.net, f.ctx, in, B, &logits, &err)
                               : avemo_net_forward(f.net, f.ctx, in, B, &logits, &err), AVEMO_OK);
        assert_int_equal(avemo_net_backward_logits(f.net, f.ctx, dlogits, &err), AVEMO_OK);
        assert_int_equal(avemo_nn_ctx_activation(f.ctx, relu, &x, &err), train ? AVEMO_ERR_INVALID_ARG : AVEMO_OK);
        if (train) assert_non_null(strstr(err.message, "did not keep"));
        assert_int_equal(avemo_nn_ctx_activation(f.ctx, pool, &y, &err), AVEMO_OK);
        assert_int_equal(avemo_nn_ctx_gradient(f.ctx, relu, &dx, &err), AVEMO_OK);
        assert_int_equal(avemo_nn_ctx_gradient(f.ctx, pool, &dy, &err), AVEMO_OK);
        assert_true(dx.c == 4 && dx.h == 8 && dx.w == 8 && dy.h == 4 && dy.w == 4);
        int routed = 0;
        for (int p = 0; p < B * 4; p++) {
            for (int o = 0; o < 16; o++) {
                const size_t at = (size_t)p * 64 + (size_t)(o / 4) * 16 + (size_t)(o % 4) * 2;
                check_window(train ? NULL : x.data + at, dx.data + at, y.data[p * 16 + o], dy.data[p * 16 + o], 8);
                routed += dy.data[p * 16 + o] != 0.0f;
            }
        }
        assert_true(routed > B * 4 * 8); /* most windows carry a gradient */
    }
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_gradients_match_finite_differences),
        cmocka_unit_test(test_relu_gradient_before_pool),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
