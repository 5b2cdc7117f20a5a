/* nn_pipelines_build: every shipped pipeline (every .ini file in pipelines/) parses (the training code's
 * sections and the network), its network inputs match what its [audio] and [face] sections
 * produce (as avemo train checks: audio 1 x feature count x frames, face channels x size x
 * size) and its classes match [labels] (files with a [pipeline] section); and every network runs
 * one forward (inference context) and one training step (forward, backward, Adam) on random input of the right shape with a finite
 * loss, finite gradients and changed parameters. */
#include "common/testutil.h"

#include <avemo/nn.h>
#include <avemo/train.h>
#include <dirent.h>
#include <math.h>

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* What avemo train checks: the inputs the mode needs, with the shapes the features have, and
 * the classes of [labels]. */
static void check_recipe(const char *path, const struct avemo_pipeline *p, const avemo_net *net)
{
    const int audio = avemo_net_input_index(net, "audio"), face = avemo_net_input_index(net, "face");
    const int want_audio = p->mode != AVEMO_MODE_FACE, want_face = p->mode != AVEMO_MODE_AUDIO;
    if ((audio >= 0) != want_audio || (face >= 0) != want_face ||
        avemo_net_input_count(net) != want_audio + want_face)
        fail_msg("%s: the network's inputs do not match [pipeline] mode", path);
    int c, h, w;
    if (audio >= 0) {
        avemo_net_input_shape(net, audio, NULL, &c, &h, &w);
        const int channels = avemo_audio_params_channels(&p->audio), rows = avemo_audio_params_base_count(&p->audio);
        if (c != channels || h != rows || w != p->audio.frames)
            fail_msg("%s: network input audio is %dx%dx%d, the [audio] features are %dx%dx%d", path, c, h, w, channels,
                     rows, p->audio.frames);
    }
    if (face >= 0) {
        avemo_net_input_shape(net, face, NULL, &c, &h, &w);
        if (c != p->face.channels || h != p->face.size || w != p->face.size)
            fail_msg("%s: network input face is %dx%dx%d, [face] gives %dx%dx%d", path, c, h, w, p->face.channels,
                     p->face.size, p->face.size);
    }
    const int classes = avemo_net_classes(net);
    if (classes != p->labels.num_classes)
        fail_msg("%s: the network has %d classes, [labels] %d", path, classes, p->labels.num_classes);
    for (int k = 0; k < classes; k++)
        if (avemo_net_label(net, k) && strcmp(avemo_net_label(net, k), p->labels.classes[k]) != 0)
            fail_msg("%s: class %d is %s in [network] labels but %s in [labels]", path, k, avemo_net_label(net, k),
                     p->labels.classes[k]);
}

/* One forward (inference context) and one training step on random input. */
static void run_network(const char *path, avemo_net *net)
{
    enum { B = 2 };
    struct avemo_error err;
    const int classes = avemo_net_classes(net);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 1);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 42, 1);
    float *inputs[AVEMO_NN_MAX_INPUTS] = {0};
    for (int i = 0; i < avemo_net_input_count(net); i++) {
        size_t n = B * avemo_net_input_shape(net, i, NULL, NULL, NULL, NULL);
        inputs[i] = malloc(sizeof(float) * n);
        assert_non_null(inputs[i]);
        for (size_t j = 0; j < n; j++) inputs[i][j] = avemo_rng_normal(&rng);
    }
    const float *const *in = (const float *const *)inputs;
    avemo_nn_ctx *infer, *train;
    const float *logits;
    if (avemo_nn_ctx_create(net, B, 0, 1, &infer, &err) || avemo_net_forward(net, infer, in, B, &logits, &err))
        fail_msg("%s", err.message);
    for (int j = 0; j < B * classes; j++)
        if (!isfinite(logits[j])) fail_msg("%s: logit %d is %g", path, j, (double)logits[j]);
    size_t np;
    float *params = avemo_net_params(net, &np);
    float *before = malloc(sizeof(float) * np);
    assert_non_null(before);
    memcpy(before, params, sizeof(float) * np);
    int labels[B] = {0, classes - 1};
    struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-3f};
    avemo_optim *opt;
    float loss, norm;
    if (avemo_nn_ctx_create(net, B, 1, 1, &train, &err) || avemo_net_forward_train(net, train, in, B, &logits, &err) ||
        avemo_net_backward(net, train, labels, NULL, &loss, &err) || avemo_optim_create(net, &cfg, &opt, &err) ||
        avemo_optim_step(opt, net, train, &norm, &err))
        fail_msg("%s", err.message);
    if (!isfinite(loss) || !(loss > 0.0f) || !isfinite(norm) || !(norm > 0.0f))
        fail_msg("%s: training step gave loss %g, gradient norm %g", path, (double)loss, (double)norm);
    size_t changed = 0;
    for (size_t j = 0; j < np; j++) changed += params[j] != before[j];
    /* ReLUs zero many gradients of a two-sample batch (and of the dense layer after a flatten),
     * so not every parameter moves. */
    size_t off, nout = avemo_net_layer_params(net, avemo_net_layer_count(net) - 1, &off), out_changed = 0;
    for (size_t j = off; j < off + nout; j++) out_changed += params[j] != before[j];
    if (changed < np / 100 || out_changed < nout / 10)
        fail_msg("%s: the step changed %zu of %zu parameters, %zu of the output layer's %zu", path, changed, np,
                 out_changed, nout);
    printf("%s: %d layers, %zu parameters, loss %.4f\n", path, avemo_net_layer_count(net), np, (double)loss);
    avemo_optim_free(opt);
    avemo_nn_ctx_free(train);
    avemo_nn_ctx_free(infer);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(inputs[i]);
    free(before);
}

static void check_pipeline(const char *path)
{
    struct avemo_error err;
    uint8_t *text;
    size_t size;
    if (avemo_read_file(path, AVEMO_NN_MAX_PIPELINE_BYTES, &text, &size, &err)) fail_msg("%s", err.message);
    char *ini = realloc(text, size + 1);
    assert_non_null(ini);
    ini[size] = 0;
    struct avemo_pipeline *p = calloc(1, sizeof *p);
    assert_non_null(p);
    if (avemo_pipeline_parse(ini, path, p, &err)) fail_msg("%s", err.message);
    avemo_net *net;
    if (avemo_net_create(ini, path, &net, &err)) fail_msg("%s", err.message);
    /* Files without a [pipeline] section (audio-mfcc, face-fer, cremad-av: the networks that
     * nn_parity_torch compares) describe a network only, not a training recipe. */
    if (strncmp(ini, "[pipeline]", 10) == 0 || strstr(ini, "\n[pipeline]")) check_recipe(path, p, net);
    run_network(path, net);
    avemo_net_free(net);
    free(p);
    free(ini);
}

static void test_every_pipeline(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pipelines", AVEMO_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *paths[64];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini") != 0) continue;
        assert_true(n < 64);
        paths[n] = malloc(strlen(dir) + len + 2);
        sprintf(paths[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(paths, (size_t)n, sizeof *paths, by_name);
    int ser = 0;
    for (int i = 0; i < n; i++) {
        check_pipeline(paths[i]);
        ser += strstr(paths[i], "/ser-") != NULL;
        free(paths[i]);
    }
    assert_true(ser >= 6); /* the speech-emotion papers' systems (docs/pipelines.md) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
