/* avemo-bench section "nn": the dual-stream network (pipelines/cremad-av.ini) forward at batch
 * 1 and 32 and one Adam training step at batch 32, with 1 and 2 OpenBLAS threads, and PyTorch's
 * times for the same network measured in the same run by tests/bench/bench_nn_torch.py.
 * Single-threaded keys also get a *_cpu_s twin (thread CPU time), steadier on a shared machine. */
#include "bench.h"

#include <avemo/nn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nn_bench {
    avemo_net *net;
    avemo_nn_ctx *ctx;
    avemo_optim *opt;
    float *inputs[2];
    int labels[32];
    int batch;
};

static void run_forward(void *arg)
{
    struct nn_bench *b = arg;
    const float *logits;
    avemo_net_forward(b->net, b->ctx, (const float *const *)b->inputs, b->batch, &logits, NULL);
}

static void run_train_step(void *arg)
{
    struct nn_bench *b = arg;
    const float *logits;
    float loss;
    avemo_net_forward_train(b->net, b->ctx, (const float *const *)b->inputs, b->batch, &logits, NULL);
    avemo_net_backward(b->net, b->ctx, b->labels, NULL, &loss, NULL);
    avemo_optim_step(b->opt, b->net, b->ctx, NULL, NULL);
}

static int setup(struct nn_bench *b, avemo_net *net, int batch, int training)
{
    struct avemo_error err;
    memset(b, 0, sizeof *b);
    b->net = net;
    b->batch = batch;
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 42, 1);
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)batch * avemo_net_input_shape(net, i, NULL, NULL, NULL, NULL);
        b->inputs[i] = malloc(sizeof(float) * n);
        if (!b->inputs[i]) return -1;
        for (size_t j = 0; j < n; j++) b->inputs[i][j] = avemo_rng_normal(&rng);
    }
    for (int i = 0; i < batch; i++) b->labels[i] = i % avemo_net_classes(net);
    struct avemo_optim_config cfg = {.kind = AVEMO_OPTIM_ADAM, .lr = 1e-4f};
    if (avemo_nn_ctx_create(net, batch, training, 1, &b->ctx, &err) ||
        (training && avemo_optim_create(net, &cfg, &b->opt, &err))) {
        fprintf(stderr, "bench nn: %s\n", err.message);
        return -1;
    }
    return 0;
}

static void teardown(struct nn_bench *b)
{
    avemo_optim_free(b->opt);
    avemo_nn_ctx_free(b->ctx);
    free(b->inputs[0]);
    free(b->inputs[1]);
}




/* Wall-clock median under `key`; with one thread also the CPU-time median under key_cpu. */
static void add_timing(cJSON *out, const char *key, avemo_net *net, int batch, int training, int repeats,
                       int threads)
{
    struct nn_bench b;
    void (*fn)(void *) = training ? run_train_step : run_forward;
    if (setup(&b, net, batch, training) == 0) {
        cJSON_AddNumberToObject(out, key, bench_median(repeats, fn, &b));
        if (threads == 1) {
            char cpu_key[80];
            snprintf(cpu_key, sizeof cpu_key, "%.*s_cpu_s", (int)strlen(key) - 2, key);
            cJSON_AddNumberToObject(out, cpu_key, bench_median_cpu(repeats, fn, &b));
        }
    }
    teardown(&b);
}

/* PyTorch's times, from the script's one-line JSON; nothing is added when it fails. */
static void add_torch_timings(const char *pipeline, int repeats, cJSON *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/bench/bench_nn_torch.py %s --repeats %d 2>/dev/null",
             AVEMO_SOURCE_DIR, pipeline, repeats);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[1024] = "";
    if (!fgets(line, sizeof line, p)) line[0] = 0;
    if (pclose(p) != 0) return;
    cJSON *json = cJSON_Parse(line);
    if (!json) return;
    const char *keys[] = {"torch_fwd_b1_s",     "torch_fwd_b32_s",     "torch_train_b32_s",
                          "torch_fwd_b1_cpu_s", "torch_fwd_b32_cpu_s", "torch_train_b32_cpu_s"};
    for (int i = 0; i < 6; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, keys[i]);
        if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(out, keys[i], v->valuedouble);
    }
    cJSON_Delete(json);
}

static void prepare_once(void *net) { avemo_net_prepare(net, NULL); }

/* The shipped face recipe's network (pipelines/avemo-face-deep.ini), one thread: making its
 * kernels' Winograd transforms (avemo_net_prepare, once per model a classifier opens); on one av
 * clip's 8 face crops, prepared as the classifier prepares it (avemo_net_prepare: the part of
 * classify_clip_s the face network costs), and a training step of batch 32 (what its epochs
 * cost; the optimiser's first step drops the prepared transform, as training does). */
static void add_face_branch_timing(int repeats, cJSON *out)
{
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create_file(AVEMO_SOURCE_DIR "/pipelines/avemo-face-deep.ini", &net, &err)) {
        fprintf(stderr, "bench nn: %s\n", err.message);
        return;
    }
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 1);
    cJSON_AddNumberToObject(out, "net_face_prepare_s", bench_median(repeats, prepare_once, net));
    if (avemo_net_prepare(net, &err)) fprintf(stderr, "bench nn: %s\n", err.message);
    add_timing(out, "net_face_fwd_b8_s", net, 8, 0, repeats, 1);
    add_timing(out, "net_face_train_b32_s", net, 32, 1, repeats > 11 ? 11 : repeats, 1);
    avemo_net_free(net);
}

void bench_nn(const struct bench_context *ctx, cJSON *out)
{
    const char *pipeline = AVEMO_SOURCE_DIR "/pipelines/cremad-av.ini";
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create_file(pipeline, &net, &err)) {
        fprintf(stderr, "bench nn: %s\n", err.message);
        return;
    }
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 1);
    cJSON_AddStringToObject(out, "blas_core", avemo_nn_blas_core()); /* the products' kernels decide much */
    int big = ctx->repeats > 11 ? 11 : ctx->repeats; /* batch-32 runs take a while */
    for (int threads = 1; threads <= 2; threads++) {
        const char *suffix = threads == 1 ? "" : "_2t";
        char key[64];
        avemo_nn_set_threads(threads, NULL);
        snprintf(key, sizeof key, "net_fwd_b1_s%s", suffix);
        add_timing(out, key, net, 1, 0, ctx->repeats * 5, threads);
        snprintf(key, sizeof key, "net_fwd_b32_s%s", suffix);
        add_timing(out, key, net, 32, 0, big, threads);
        snprintf(key, sizeof key, "net_train_b32_s%s", suffix);
        add_timing(out, key, net, 32, 1, big, threads);
    }
    avemo_nn_set_threads(1, NULL);
    avemo_net_free(net);
    add_torch_timings(pipeline, big, out);
    add_face_branch_timing(ctx->repeats * 3, out);
}
