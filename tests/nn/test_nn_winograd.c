/* nn_winograd: the Winograd F(2x2, 3x3) convolution of inference contexts (src/nn/conv_winograd.c)
 * gives the im2col product's outputs on every 3x3 layer of every pipeline, on odd and tiny
 * shapes, with and without the folded batch norm and ReLU, and the same bits on one or two
 * workers and whatever else is in the batch; the layers it must not take keep the im2col path. */
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

/* A worker set for one layer: training = 1 forces the im2col path. */
static void work_for(struct nn_work *work, const struct nn_layer *l, int threads, int training)
{
    size_t col = nn_conv_col_size(l);
    if (!training && nn_winograd_scratch(l) > col) col = nn_winograd_scratch(l);
    assert_int_equal(nn_work_init(work, threads, col, l->w_n + l->b_n, training), 0);
}

/* out of one layer, B samples, through the given path (fused epilogue as inference runs it). */
static float *conv_out(const struct nn_layer *l, const float *w, const float *x, int B, int threads, int training,
                       const float *scale, const float *shift, int relu)
{
    struct nn_work work;
    work_for(&work, l, threads, training);
    float *y = malloc(sizeof(float) * (size_t)B * nn_out_size(l));
    assert_non_null(y);
    for (size_t i = 0; i < (size_t)B * nn_out_size(l); i++) y[i] = -1234.0f; /* every output must be written */
    nn_conv_forward(l, w, x, y, B, &work, scale, shift, relu);
    nn_work_free(&work);
    return y;
}

/* Winograd against im2col on one layer; returns the largest relative difference seen. */
static void check_layer(const struct nn_layer *l, int B, uint64_t seed, int with_bn, int relu)
{
    float *w = random_floats(l->w_n, seed, 0.2f), *x = random_floats((size_t)B * nn_in_size(l), seed + 1, 1.0f);
    float *scale = with_bn ? random_floats((size_t)l->out_c, seed + 2, 1.0f) : NULL;
    float *shift = random_floats((size_t)l->out_c, seed + 3, 0.5f);
    float *ref = conv_out(l, w, x, B, 1, 1, scale, shift, relu);
    float *wg = conv_out(l, w, x, B, 1, 0, scale, shift, relu);
    char what[160];
    snprintf(what, sizeof what, "%s %s on %dx%dx%d, batch %d", l->name, l->spec, l->in_c, l->in_h, l->in_w, B);
    /* F(2x2, 3x3) sums in another order and scales by 0.5: a few float roundings apart */
    nn_ref_assert_close(what, wg, ref, (size_t)B * nn_out_size(l), 2e-6, 1e-6);
    float *two = conv_out(l, w, x, B, 2, 0, scale, shift, relu);
    assert_memory_equal(two, wg, sizeof(float) * (size_t)B * nn_out_size(l)); /* blocks do not depend on workers */
    /* nor on the rest of the batch: the last sample alone gives the same bits (avemo eval
     * --shard merges to one process's figures because of this) */
    float *last = conv_out(l, w, x + (size_t)(B - 1) * nn_in_size(l), 1, 1, 0, scale, shift, relu);
    assert_memory_equal(last, wg + (size_t)(B - 1) * nn_out_size(l), sizeof(float) * nn_out_size(l));
    free(last);
    free(w);
    free(x);
    free(scale);
    free(shift);
    free(ref);
    free(wg);
    free(two);
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
    int checked = 0;
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
        }
        avemo_net_free(net);
    }
    assert_true(checked >= 20); /* the face and audio branches' convolutions after the first */
}

/* Odd sizes (a half tile at the edge), single rows and columns, many tiles per block row. */
static void test_odd_shapes(void **state)
{
    (void)state;
    static const int shapes[][4] = {{8, 7, 9, 5}, {8, 1, 1, 4}, {9, 2, 3, 7}, {16, 1, 33, 8}, {12, 33, 1, 3},
                                    {8, 5, 130, 16}, {64, 3, 3, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        char item[32];
        snprintf(item, sizeof item, "conv %d 3 same", shapes[s][3]);
        struct nn_layer l = make_conv(item, shapes[s][0], shapes[s][1], shapes[s][2]);
        assert_true(nn_winograd_fits(&l));
        check_layer(&l, 1, 7 + s, 0, 0);
        check_layer(&l, 4, 70 + s, 1, 1);
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_layers),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_not_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
