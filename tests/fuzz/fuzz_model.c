/* libFuzzer harness: the model file loader (avemo_net_load reads a path, so the input
 * is written to a temporary file first).  A loaded network then runs one inference
 * on zeros, which checks that the shapes it accepted are consistent; so does each member of an
 * ensemble (corpus/model/ensemble.avm).
 *
 * The first input byte picks a mode: even bytes load the rest as it is (the
 * container checks), odd bytes first repair the rest's size field and CRC32 so that
 * mutations reach the parser behind the checksum. */
#include <avemo/nn.h>

#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

#define MODEL_HEADER 24 /* magic, version, reserved, u64 size */

static int write_model(const char *path, const uint8_t *body, size_t size, int repair)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = 1;
    if (repair && size >= MODEL_HEADER) {
        uint8_t *copy = malloc(size + 4);
        if (!copy) {
            fclose(f);
            return -1;
        }
        memcpy(copy, body, size);
        uint64_t total = (uint64_t)size + 4;
        memcpy(copy + 16, &total, 8);
        uint32_t crc = avemo_crc32(0, copy, size);
        memcpy(copy + size, &crc, 4);
        ok = fwrite(copy, 1, size + 4, f) == size + 4;
        free(copy);
    } else if (size) {
        ok = fwrite(body, 1, size, f) == size;
    }
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* One forward pass of batch 1 on zeros, for networks small enough to stay fast. */
static void run_once(avemo_net *net)
{
    size_t params = 0;
    avemo_net_params(net, &params);
    if (params > ((size_t)1 << 20)) return;
    struct avemo_error err = {0};
    avemo_nn_ctx *ctx = NULL;
    if (fuzz_check(avemo_nn_ctx_create(net, 1, 0, 1, &ctx, &err), &err)) return;
    int n = avemo_net_input_count(net);
    float *inputs[AVEMO_NN_MAX_INPUTS] = {0};
    int ok = n > 0 && n <= AVEMO_NN_MAX_INPUTS;
    for (int i = 0; ok && i < n; i++) {
        int c, h, w;
        size_t count = avemo_net_input_shape(net, i, NULL, &c, &h, &w);
        ok = count > 0 && count <= AVEMO_NN_MAX_ACT && (inputs[i] = calloc(count, sizeof(float)));
    }
    const float *logits = NULL;
    if (ok) fuzz_check(avemo_net_forward(net, ctx, (const float *const *)inputs, 1, &logits, &err), &err);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(inputs[i]);
    avemo_nn_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/avemo-fuzz-model-%ld.avm", (long)getpid());
    if (write_model(path, data + 1, size - 1, data[0] & 1)) return 0;
    struct avemo_error err = {0};
    avemo_net *net = NULL;
    if (!fuzz_check(avemo_net_load(path, &net, &err), &err)) {
        for (int c = 0; c < avemo_net_classes(net); c++) avemo_net_label(net, c);
        run_once(net);
        /* An ensemble's members (named arrays of any count the file claims) are built and run. */
        for (int k = 1; k < avemo_net_member_count(net); k++) {
            avemo_net *member = NULL;
            if (!fuzz_check(avemo_net_member(net, k, &member, &err), &err)) run_once(member);
            avemo_net_free(member);
        }
        avemo_net_free(net);
    }
    unlink(path);
    return 0;
}
