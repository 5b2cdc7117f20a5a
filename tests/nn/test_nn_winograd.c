/* nn_winograd: the Winograd F(2x2, 3x3) convolution (src/nn/conv_winograd.c) gives a direct
 * convolution's outputs (summed in double here) on every 3x3 layer of every pipeline, on odd
 * and tiny shapes, with and without the folded batch norm and ReLU, and the same bits on one or
 * two workers and whatever else is in the batch, the kernels' transform made in the call or
 * beforehand (avemo_net_prepare); the layers it must not take keep the im2col path.  The same
 * for F(4x4, 3x3) (src/nn/conv_winograd4.c), which inference contexts take on the larger
 * planes.  In training it also gives the input gradient (a convolution too) and the weight
 * gradient (F(3x3, 2x2)): both against direct sums here, and against PyTorch in nn_parity. */
#include "common/testutil.h"
#include "nn/nn_internal.h"
#include "nn/nn_ref.h"

#define PIPE_DIR AVEMO_SOURCE_DIR "/pipelines/"

static float *random_floats(size_t n, uint64_t seed, float scale)
{
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 11);
    float *x = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * avemo_rng_normal(&rng);
    return x;
}

/* The direct convolution of one layer ("same", stride 1), each output summed in double, then
 * the epilogue: what the fast paths must give. */
static float *conv_direct(const struct nn_layer *l, const float *w, const float *x, int B, const float *scale,
                          const float *shift, int relu)
{
    const int C = l->in_c, M = l->out_c, H = l->in_h, W = l->in_w, k = l->k;
    float *y = malloc(sizeof(float) * (size_t)B * nn_out_size(l));
    assert_non_null(y);
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++)
            for (int oy = 0; oy < H; oy++)
                for (int ox = 0; ox < W; ox++) {
                    double sum = 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int iy = oy - l->pad_t + ki, ix = ox - l->pad_l + kj;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                sum += (double)w[(((size_t)m * C + c) * k + ki) * k + kj] *
                                       x[(((size_t)b * C + c) * H + iy) * W + ix];
                            }
                    double v = sum * (scale ? scale[m] : 1.0f) + shift[m];
                    y[(((size_t)b * M + m) * H + oy) * W + ox] = (float)(relu && v < 0.0 ? 0.0 : v);
                }
    return y;
}

/* out of one layer, B samples, with the fused epilogue: nn_conv_forward (path FWD: F(2x2, 3x3)
 * or im2col, as training runs it) or nn_conv_infer (path INFER: F(4x4, 3x3) where it fits, as
 * an inference context runs it). */
enum path { FWD, INFER };

static float *conv_run(enum path path, const struct nn_layer *l, const float *w, const float *wg_ready, const float *x,
                       int B, int threads, const float *scale, const float *shift, int relu)
{
    struct nn_work work;
    size_t col = nn_conv_col_size(l);
    if (nn_winograd_fits(l) && nn_winograd_scratch(l) > col) col = nn_winograd_scratch(l);
    if (nn_winograd4_fits(l) && nn_winograd4_scratch(l) > col) col = nn_winograd4_scratch(l);
    assert_int_equal(nn_work_init(&work, threads, col, l->w_n + l->b_n, 0), 0);
    float *y = malloc(sizeof(float) * (size_t)B * nn_out_size(l));
    assert_non_null(y);
    for (size_t i = 0; i < (size_t)B * nn_out_size(l); i++) y[i] = -1234.0f; /* every output must be written */
    if (path == INFER)
        nn_conv_infer(l, w, wg_ready, x, y, B, &work, scale, shift, relu);
    else
        nn_conv_forward(l, w, wg_ready, x, y, B, &work, scale, shift, relu);
    nn_work_free(&work);
    return y;
}

/* The same bits when the kernels' transform was made beforehand (avemo_net_prepare's way). */
static void check_ready(enum path path, const struct nn_layer *l, const float *w, const float *x, int B,
                        const float *scale, const float *shift, int relu, const float *expect)
{
    if (!nn_winograd_fits(l)) return;
    size_t size = path == INFER ? nn_conv_prepared_size(l) : nn_winograd_weights_size(l);
    float *U = malloc(sizeof(float) * size), *tmp = malloc(sizeof(float) * NN_WINOGRAD4_POINTS * (size_t)l->in_c);
    assert_true(U && tmp);
    if (path == INFER)
        nn_conv_prepare_weights(l, w, U, tmp);
    else
        nn_winograd_transform_weights(l, w, U, tmp);
    float *y = conv_run(path, l, w, U, x, B, 1, scale, shift, relu);
    assert_memory_equal(y, expect, sizeof(float) * (size_t)B * nn_out_size(l));
    free(U);
    free(tmp);
    free(y);
}

/* One path against the direct convolution on one layer, and its bits against themselves on
 * two workers, with the kernels' transform made beforehand, and for the batch's last sample
 * alone. */
static void check_path(enum path path, const struct nn_layer *l, int B, const float *w, const float *x,
                       const float *scale, const float *shift, int relu, const float *ref)
{
    float *wg = conv_run(path, l, w, NULL, x, B, 1, scale, shift, relu);
    char what[160];
    snprintf(what, sizeof what, "%s %s on %dx%dx%d, batch %d, %s", l->name, l->spec, l->in_c, l->in_h, l->in_w, B,
             path == INFER && nn_winograd4_fits(l) ? "F(4x4, 3x3)" : "F(2x2, 3x3)");
    /* float sums in another order and the fractions of G: a few roundings from the double sum;
     * F(4x4, 3x3)'s larger constants (up to 8 in A, 5 in B) about ten times more */
    nn_ref_assert_close(what, wg, ref, (size_t)B * nn_out_size(l), path == INFER ? 2e-5 : 2e-6, 1e-6);
    float *two = conv_run(path, l, w, NULL, x, B, 2, scale, shift, relu);
    assert_memory_equal(two, wg, sizeof(float) * (size_t)B * nn_out_size(l)); /* blocks do not depend on workers */
    check_ready(path, l, w, x, B, scale, shift, relu, wg);
    /* nor on the rest of the batch: the last sample alone gives the same bits (avemo eval
     * --shard merges to one process's figures because of this) */
    float *last = conv_run(path, l, w, NULL, x + (size_t)(B - 1) * nn_in_size(l), 1, 1, scale, shift, relu);
    assert_memory_equal(last, wg + (size_t)(B - 1) * nn_out_size(l), sizeof(float) * nn_out_size(l));
    free(last);
    free(wg);
    free(two);
}

/* Both paths against the direct convolution on one layer. */
static void check_layer(const struct nn_layer *l, int B, uint64_t seed, int with_bn, int relu)
{
    float *w = random_floats(l->w_n, seed, 0.2f), *x = random_floats((size_t)B * nn_in_size(l), seed + 1, 1.0f);
    float *scale = with_bn ? random_floats((size_t)l->out_c, seed + 2, 1.0f) : NULL;
    float *shift = random_floats((size_t)l->out_c, seed + 3, 0.5f);
    float *ref = conv_direct(l, w, x, B, scale, shift, relu);
    check_path(FWD, l, B, w, x, scale, shift, relu, ref);
    check_path(INFER, l, B, w, x, scale, shift, relu, ref);
    free(w);
    free(x);
    free(scale);
    free(shift);
    free(ref);
}

/* A conv layer parsed from its item ("conv 16 3 same") on an input shape. */
static struct nn_layer make_conv(const char *item, int c, int h, int w)
{
    struct nn_layer l;
    memset(&l, 0, sizeof l);
    l.op = NN_CONV;
    l.in_c = l.out_c = c;
    l.in_h = l.out_h = h;
    l.in_w = l.out_w = w;
    snprintf(l.name, sizeof l.name, "test");
    snprintf(l.spec, sizeof l.spec, "%s", item);
    char buf[64], *tok[8], *save = NULL;
    int nt = 0;
    snprintf(buf, sizeof buf, "%s", item);
    for (char *t = strtok_r(buf, " ", &save); t && nt < 8; t = strtok_r(NULL, " ", &save)) tok[nt++] = t;
    char msg[200];
    assert_true(nn_layer_conv.parse(&l, tok, nt, msg, sizeof msg));
    return l;
}

/* Every 3x3 layer the path takes in every pipeline's network, as the pipeline builds it. */
static void test_pipeline_layers(void **state)
{
    (void)state;
    static const char *const pipes[] = {"avemo-face-deep", "avemo-audio-deep", "avemo-av", "avemo-face", "avemo-audio",
                                        "face-fer", "ser-melspec-cnn", "ser-melspec-vgg", "ser-mfcc-cnnlstm"};
    int checked = 0, checked4 = 0;
    for (size_t p = 0; p < sizeof pipes / sizeof *pipes; p++) {
        char path[512];
        snprintf(path, sizeof path, PIPE_DIR "%s.ini", pipes[p]);
        struct avemo_error err;
        avemo_net *net;
        if (avemo_net_create_file(path, &net, &err)) fail_msg("%s", err.message);
        for (int i = 0; i < net->nlayers; i++) {
            const struct nn_layer *l = &net->layers[i];
            if (!nn_winograd_fits(l)) continue;
            check_layer(l, i % 2 ? 3 : 2, 100 + (uint64_t)i, i % 3 != 0, i % 2);
            checked++;
            checked4 += nn_winograd4_fits(l);
        }
        avemo_net_free(net);
    }
    assert_true(checked >= 20); /* the face and audio branches' convolutions after the first */
    assert_true(checked4 >= 10); /* those at 16x16 and larger (the face branches' at 32x32, 16x16) */
}

/* Odd sizes (part of a tile at the edge), single rows and columns, many tiles per block row;
 * for F(4x4, 3x3) too: edges of 1, 2 and 3 rows or columns past the last whole tile, planes
 * of fewer than 4 rows, blocks of several tile rows. */
static void test_odd_shapes(void **state)
{
    (void)state;
    static const int shapes[][4] = {{8, 7, 9, 5},    {8, 1, 1, 4},    {9, 2, 3, 7},     {16, 1, 33, 8},
                                    {12, 33, 1, 3},  {8, 5, 130, 16}, {64, 3, 3, 64},   {8, 17, 19, 8},
                                    {9, 10, 32, 16}, {8, 3, 70, 4},   {8, 64, 1, 5},    {16, 14, 15, 12},
                                    {8, 40, 24, 8}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        char item[32];
        snprintf(item, sizeof item, "conv %d 3 same", shapes[s][3]);
        struct nn_layer l = make_conv(item, shapes[s][0], shapes[s][1], shapes[s][2]);
        assert_true(nn_winograd_fits(&l));
        check_layer(&l, 1, 7 + s, 0, 0);
        check_layer(&l, 4, 70 + s, 1, 1);
    }
}

/* The backward of one layer in a training context (threads workers): dw and din against
 * direct double sums over the batch. */
static void check_backward(const struct nn_layer *l, int B, int threads, uint64_t seed)
{
    const int C = l->in_c, M = l->out_c, H = l->in_h, W = l->in_w;
    float *w = random_floats(l->w_n, seed, 0.2f), *x = random_floats((size_t)B * nn_in_size(l), seed + 1, 1.0f);
    float *dy = random_floats((size_t)B * nn_out_size(l), seed + 2, 1.0f);
    float *dw = calloc(l->w_n + l->b_n, sizeof(float)), *din = malloc(sizeof(float) * (size_t)B * nn_in_size(l));
    float *dw_ref = malloc(sizeof(float) * l->w_n), *din_ref = malloc(sizeof(float) * (size_t)B * nn_in_size(l));
    assert_true(dw && din && dw_ref && din_ref);
    struct nn_buffers nb = {0};
    nn_layer_conv.buffers(l, B, 1, &nb);
    struct nn_work work;
    assert_int_equal(nn_work_init(&work, threads, nb.col, nb.grad, 1), 0);
    nn_conv_backward(l, w, dw, dw + l->w_n, x, dy, din, B, &work);
    nn_work_free(&work);
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) {
                double sum = 0.0;
                for (int b = 0; b < B; b++)
                    for (int oy = 0; oy < H; oy++)
                        for (int ox = 0; ox < W; ox++) {
                            int iy = oy - 1 + k / 3, ix = ox - 1 + k % 3;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            sum += (double)dy[(((size_t)b * M + m) * H + oy) * W + ox] * x[(((size_t)b * C + c) * H + iy) * W + ix];
                        }
                dw_ref[((size_t)m * C + c) * 9 + k] = (float)sum;
            }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int iy = 0; iy < H; iy++)
                for (int ix = 0; ix < W; ix++) {
                    double sum = 0.0;
                    for (int m = 0; m < M; m++)
                        for (int k = 0; k < 9; k++) {
                            int oy = iy + 1 - k / 3, ox = ix + 1 - k % 3;
                            if (oy < 0 || oy >= H || ox < 0 || ox >= W) continue;
                            sum += (double)dy[(((size_t)b * M + m) * H + oy) * W + ox] * w[((size_t)m * C + c) * 9 + k];
                        }
                    din_ref[(((size_t)b * C + c) * H + iy) * W + ix] = (float)sum;
                }
    char what[160];
    snprintf(what, sizeof what, "weight gradient of %s on %dx%dx%d, batch %d, %d workers", l->spec, C, H, W, B, threads);
    nn_ref_assert_close(what, dw, dw_ref, l->w_n, 1e-5, 1e-6);
    snprintf(what, sizeof what, "input gradient of %s on %dx%dx%d, batch %d, %d workers", l->spec, C, H, W, B, threads);
    nn_ref_assert_close(what, din, din_ref, (size_t)B * nn_in_size(l), 1e-5, 1e-6);
    free(w);
    free(x);
    free(dy);
    free(dw);
    free(din);
    free(dw_ref);
    free(din_ref);
}

static void test_backward(void **state)
{
    (void)state;
    static const int shapes[][4] = {{8, 7, 9, 8}, {8, 1, 1, 8}, {9, 2, 3, 12}, {16, 5, 33, 8}, {32, 8, 8, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        char item[32];
        snprintf(item, sizeof item, "conv %d 3 same", shapes[s][3]);
        struct nn_layer l = make_conv(item, shapes[s][0], shapes[s][1], shapes[s][2]);
        assert_true(nn_winograd_fits(&l));
        check_backward(&l, 3, 1, 300 + s);
        check_backward(&l, 5, 2, 400 + s);
    }
}

/* Layers the path must leave to im2col: other kernels, strides, padding, and few channels. */
static void test_not_taken(void **state)
{
    (void)state;
    struct nn_layer l = make_conv("conv 16 3 same stride 2", 16, 8, 8);
    assert_false(nn_winograd_fits(&l));
    l = make_conv("conv 16 5 same", 16, 8, 8);
    assert_false(nn_winograd_fits(&l));
    l = make_conv("conv 16 3 valid", 16, 8, 8);
    assert_false(nn_winograd_fits(&l));
    l = make_conv("conv 16 3 same", NN_WINOGRAD_MIN_IN_C - 1, 8, 8);
    assert_false(nn_winograd_fits(&l));
    l = make_conv("conv 16 3 same", NN_WINOGRAD_MIN_IN_C, 8, 8);
    assert_true(nn_winograd_fits(&l));
    assert_false(nn_winograd4_fits(&l)); /* 4 tiles of 4x4: F(2x2, 3x3) */
    l = make_conv("conv 16 3 same", NN_WINOGRAD_MIN_IN_C, 13, 16); /* 4 x 4 tiles, the last row partial */
    assert_true(nn_winograd4_fits(&l));
    l = make_conv("conv 16 3 same stride 2", 16, 32, 32);
    assert_false(nn_winograd4_fits(&l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_layers),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_backward),
        cmocka_unit_test(test_not_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
