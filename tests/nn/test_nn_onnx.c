/* nn_onnx_<name>: `avemo export` of one shipped model (models/NAME.avm) or pipeline network
 * (pipelines/NAME.ini, untrained, with random batch-norm statistics so that every tensor matters)
 * gives an ONNX file that
 *   - Debian's python3-onnx accepts (onnx.checker.check_model with full_check, shape inference),
 *   - onnxruntime-node (npm, tests/nn/onnx) runs to the same probabilities as avemo's own forward
 *     within 1e-4, on fixture inputs: real features (tests/data/audio_ref MFCC / log-mel, FER2013
 *     faces from tests/data/faces) and two random samples.
 * An ensemble (a model file with members, or a pipeline given MEMBERS: that many untrained networks
 * joined with avemo_net_add_member) must give the mean of its members' probabilities.
 * usage: test_nn_onnx MODEL_OR_PIPELINE OUT_DIR [MEMBERS]   (exit 77 = skipped: node or onnxruntime missing) */
#include <avemo/nn.h>
#include <avemo/vision.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn_internal.h"

#define BATCH 4
#define TOLERANCE 1e-4

static void die(const char *what, const struct avemo_error *err)
{
    fprintf(stderr, "FAIL: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

/* An audio_ref feature file: rows x frames float32 (frames from the file size). */
static float *read_feature(const char *name, int rows, int *frames)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/audio_ref/%s", AVEMO_TEST_DATA, name);
    uint8_t *data;
    size_t size;
    struct avemo_error err = {0};
    if (avemo_read_file(path, (size_t)1 << 26, &data, &size, &err)) die(path, &err);
    *frames = (int)(size / sizeof(float) / (size_t)rows);
    if (*frames < 1) die(path, NULL);
    return (float *)data;
}

/* Sample n of an audio input (C x H x W): a real MFCC (H = 40) or log-mel (H = 128) tiled to W
 * frames and normalised the way the model does (its audio.mean/std, else per utterance). */
static void audio_fixture(const avemo_net *net, int n, int C, int H, int W, float *x)
{
    static const char *const clips[2] = {"ravdess_01_angry", "cremad_1001_ANG"};
    char name[128];
    snprintf(name, sizeof name, "%s.%s.f32", clips[n], H == 40 ? "mfcc40" : "logmel");
    int T;
    float *f = read_feature(name, H, &T);
    size_t nm = 0, ns = 0;
    const float *mean = avemo_net_array(net, "audio.mean", &nm), *std = avemo_net_array(net, "audio.std", &ns);
    for (int h = 0; h < H; h++) {
        double m = 0, v = 0;
        for (int t = 0; t < T; t++) m += f[h * T + t];
        m /= T;
        for (int t = 0; t < T; t++) v += (f[h * T + t] - m) * (f[h * T + t] - m);
        double s = sqrt(v / T) + 1e-6;
        if (mean && std && nm == (size_t)H && ns == (size_t)H) {
            m = mean[h];
            s = std[h];
        }
        for (int c = 0; c < C; c++)
            for (int w = 0; w < W; w++) x[((size_t)c * H + h) * W + w] = (float)((f[h * T + w % T] - m) / s);
    }
    free(f);
}

/* Sample n of a face input: a FER2013 face resampled to H x W, pixels / 255 (as avemo's features). */
static void face_fixture(int n, int C, int H, float *x)
{
    static const char *const faces[2] = {"happy_PublicTest_10130075.jpg", "angry_PublicTest_10116449.jpg"};
    char path[1024];
    snprintf(path, sizeof path, "%s/faces/%s", AVEMO_TEST_DATA, faces[n]);
    struct avemo_image img = {0};
    struct avemo_error err = {0};
    if (avemo_face_from_jpeg(path, H, C, &img, &err)) die(path, &err);
    for (int c = 0; c < C; c++)
        for (size_t p = 0; p < (size_t)H * H; p++) x[(size_t)c * H * H + p] = img.data[p * C + c] / 255.0f;
    avemo_image_free(&img);
}

static void fill_input(const avemo_net *net, int i, float *x, struct avemo_rng *rng)
{
    const char *name;
    int C, H, W;
    const size_t per = avemo_net_input_shape(net, i, &name, &C, &H, &W);
    for (int n = 0; n < BATCH; n++) {
        float *s = x + n * per;
        if (n < 2 && strcmp(name, "audio") == 0 && (H == 40 || H == 128)) audio_fixture(net, n, C, H, W, s);
        else if (n < 2 && strcmp(name, "face") == 0 && H == W) face_fixture(n, C, H, s);
        else
            for (size_t k = 0; k < per; k++) s[k] = avemo_rng_normal(rng);
    }
}

/* An untrained pipeline: non-trivial batch-norm parameters and statistics. */
static void randomise_bn(avemo_net *net, struct avemo_rng *rng)
{
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (l->op != NN_BN) continue;
        for (int c = 0; c < l->in_c; c++) {
            net->params[l->w_off + c] = 0.5f + avemo_rng_uniform(rng);
            net->params[l->b_off + c] = 0.2f * avemo_rng_normal(rng);
            net->stats[l->s_off + c] = 0.2f * avemo_rng_normal(rng);
            net->stats[l->s_off + l->in_c + c] = 0.5f + avemo_rng_uniform(rng);
        }
    }
}

/* The pipeline's network, untrained (seed), with non-trivial batch-norm statistics. */
static avemo_net *untrained(const char *pipeline, uint64_t seed, struct avemo_rng *rng)
{
    struct avemo_error err = {0};
    avemo_net *net = NULL;
    if (avemo_net_create_file(pipeline, &net, &err)) die(pipeline, &err);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, seed);
    randomise_bn(net, rng);
    return net;
}

/* What avemo answers: the mean over the members of their softmax probabilities (batch x K). */
static void member_mean_probs(const avemo_net *net, float *const *inputs, float *probs)
{
    struct avemo_error err = {0};
    const int K = avemo_net_classes(net), members = avemo_net_member_count(net);
    avemo_nn_ctx *ctx;
    if (avemo_nn_ctx_create(net, BATCH, 0, 1, &ctx, &err)) die("context", &err);
    float one[BATCH * 64];
    if (K > 64) die("too many classes", NULL);
    memset(probs, 0, sizeof(float) * BATCH * K);
    for (int k = 0; k < members; k++) {
        avemo_net *member = NULL;
        const float *logits;
        if (k && avemo_net_member(net, k, &member, &err)) die("member", &err);
        if (avemo_net_forward(k ? member : net, ctx, (const float *const *)inputs, BATCH, &logits, &err))
            die("forward", &err);
        avemo_nn_softmax(logits, BATCH, K, one);
        for (int i = 0; i < BATCH * K; i++) probs[i] += one[i] / (float)members;
        avemo_net_free(member);
    }
    avemo_nn_ctx_free(ctx);
}

static void write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f) != 0) die(path, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: test_nn_onnx MODEL_OR_PIPELINE OUT_DIR [MEMBERS]\n");
        return 2;
    }
    const int members = argc == 4 ? atoi(argv[3]) : 1;
    const char *model = argv[1], *dir = argv[2];
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    char stem[256], path[1024], cmd[4096];
    snprintf(stem, sizeof stem, "%.*s%s", (int)(strcspn(base, ".")), base, members > 1 ? "-ensemble" : "");
    mkdir(dir, 0755);
    struct avemo_error err = {0};
    avemo_net *net = NULL;
    const int pipeline = strstr(model, ".ini") != NULL;
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 2026, 18);
    if (pipeline) net = untrained(model, 7, &rng);
    else if (avemo_net_load(model, &net, &err)) die(model, &err);
    for (int k = 1; pipeline && k < members; k++) {
        avemo_net *other = untrained(model, 7 + (uint64_t)k, &rng);
        if (avemo_net_add_member(net, other, &err)) die("add member", &err);
        avemo_net_free(other);
    }
    if (avemo_net_member_count(net) != (pipeline ? members : avemo_net_member_count(net))) die("member count", NULL);
    /* avemo's probabilities */
    float *inputs[AVEMO_NN_MAX_INPUTS] = {0};
    FILE *manifest;
    snprintf(path, sizeof path, "%s/%s.json", dir, stem);
    if (!(manifest = fopen(path, "w"))) die(path, NULL);
    fprintf(manifest, "{\"model\": \"%s/%s.onnx\", \"batch\": %d, \"classes\": %d, \"tolerance\": %g,\n"
            " \"expected\": \"%s/%s.probs.f32\", \"inputs\": [", dir, stem, BATCH, avemo_net_classes(net), TOLERANCE,
            dir, stem);
    for (int i = 0; i < avemo_net_input_count(net); i++) {
        const char *name;
        int C, H, W;
        size_t per = avemo_net_input_shape(net, i, &name, &C, &H, &W);
        inputs[i] = malloc(sizeof(float) * per * BATCH);
        if (!inputs[i]) die("out of memory", NULL);
        fill_input(net, i, inputs[i], &rng);
        snprintf(path, sizeof path, "%s/%s.%s.f32", dir, stem, name);
        write_floats(path, inputs[i], per * BATCH);
        fprintf(manifest, "%s{\"name\": \"%s\", \"file\": \"%s\", \"shape\": [%d, %d, %d, %d]}", i ? ", " : "", name,
                path, BATCH, C, H, W);
    }
    fprintf(manifest, "]}\n");
    fclose(manifest);
    const int K = avemo_net_classes(net);
    float *probs = malloc(sizeof(float) * BATCH * K);
    if (!probs) die("out of memory", NULL);
    member_mean_probs(net, inputs, probs);
    snprintf(path, sizeof path, "%s/%s.probs.f32", dir, stem);
    write_floats(path, probs, (size_t)BATCH * K);
    /* the export */
    snprintf(path, sizeof path, "%s/%s.onnx", dir, stem);
    if (avemo_net_export_onnx(net, path, &err)) die("export", &err);
    printf("%s: exported %s\n", model, path);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(inputs[i]);
    free(probs);
    avemo_net_free(net);

    snprintf(cmd, sizeof cmd, "%s %s/tests/nn/onnx/check_onnx.py %s/%s.onnx", AVEMO_PYTHON, AVEMO_SOURCE_DIR, dir,
             stem);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", WEXITSTATUS(rc) == 77 ? "SKIPPED" : "FAIL", cmd);
        return WEXITSTATUS(rc) == 77 ? 77 : 1;
    }
    snprintf(cmd, sizeof cmd, "%s %s/tests/nn/onnx/run_onnx.js %s/%s.json", AVEMO_NODE, AVEMO_SOURCE_DIR, dir, stem);
    rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", WEXITSTATUS(rc) == 77 ? "SKIPPED" : "FAIL", cmd);
        return WEXITSTATUS(rc) == 77 ? 77 : 1;
    }
    printf("PASS %s\n", model);
    return 0;
}
