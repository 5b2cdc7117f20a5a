/*
 * Network inputs and predictions at inference: face crops to CHW tensors, their
 * mirror images, and class probabilities averaged over a face and its mirror.
 * Training's augmented inputs (src/train/augment.c) build on the same layout.
 */
#include <avemo/model.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void avemo_model_face_input(const uint8_t *crop, int size, int channels, float *out)
{
    size_t plane = (size_t)size * size;
    for (int c = 0; c < channels; c++)
        for (size_t p = 0; p < plane; p++) out[c * plane + p] = crop[p * channels + c] * (1.0f / 255.0f);
}

void avemo_model_face_mirror(float *faces, int n, int size, int channels)
{
    for (size_t row = 0; row < (size_t)n * channels * size; row++) {
        float *r = faces + row * size;
        for (int x = 0; x < size / 2; x++) {
            float t = r[x];
            r[x] = r[size - 1 - x];
            r[size - 1 - x] = t;
        }
    }
}

int avemo_model_logit_rows(const struct avemo_model *m, int mirror) { return m->members * (mirror ? 2 : 1); }

/* One network's pass into logits, and with mirror its pass on the mirrored faces after it. */
static enum avemo_status member_logits(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs, int batch,
                                       unsigned shared_inputs, float *face_in, int face_size, int face_channels,
                                       int mirror, float *logits, struct avemo_error *err)
{
    const float *out;
    size_t row = (size_t)batch * (size_t)avemo_net_classes(net);
    enum avemo_status st = avemo_net_forward_shared(net, ctx, inputs, batch, shared_inputs, &out, err);
    if (st) return st;
    memcpy(logits, out, sizeof(float) * row);
    if (!mirror) return AVEMO_OK;
    /* Faces are roughly symmetric: the mirror image is a second, nearly independent look. */
    avemo_model_face_mirror(face_in, batch, face_size, face_channels);
    st = avemo_net_forward_shared(net, ctx, inputs, batch, shared_inputs, &out, err);
    avemo_model_face_mirror(face_in, batch, face_size, face_channels);
    if (!st) memcpy(logits + row, out, sizeof(float) * row);
    return st;
}

enum avemo_status avemo_model_predict_logits(const struct avemo_model *m, avemo_nn_ctx *ctx, const float *const *inputs,
                                             int batch, unsigned shared_inputs, float *face_in, int face_size,
                                             int face_channels, int mirror, float *logits, int *rows,
                                             struct avemo_error *err)
{
    mirror = mirror && face_in;
    size_t per_member = (size_t)(mirror ? 2 : 1) * (size_t)batch * (size_t)avemo_net_classes(m->net);
    *rows = avemo_model_logit_rows(m, mirror);
    enum avemo_status st = AVEMO_OK;
    for (int k = 0; !st && k < m->members; k++)
        st = member_logits(m->member[k], ctx, inputs, batch, shared_inputs, face_in, face_size, face_channels, mirror,
                           logits + (size_t)k * per_member, err);
    return st;
}

enum avemo_status avemo_model_predict_probs(const struct avemo_model *m, avemo_nn_ctx *ctx, const float *const *inputs,
                                            int batch, unsigned shared_inputs, float *face_in, int face_size,
                                            int face_channels, int mirror, float *probs, struct avemo_error *err)
{
    int k = avemo_net_classes(m->net), rows;
    assert(k >= 1 && k <= AVEMO_MAX_CLASSES); /* avemo_model_open refuses more classes */
    size_t n = (size_t)avemo_model_logit_rows(m, mirror) * (size_t)batch * (size_t)k;
    float *logits = malloc(sizeof(float) * n);
    if (!logits) return avemo_fail(err, AVEMO_ERR_NOMEM, "predict: out of memory");
    enum avemo_status st = avemo_model_predict_logits(m, ctx, inputs, batch, shared_inputs, face_in, face_size,
                                                      face_channels, mirror, logits, &rows, err);
    /* The stored temperature (1 for an uncalibrated model) scales the logits. */
    if (!st) avemo_calib_probs(logits, rows, (size_t)batch, k, avemo_model_temperature(m->net), probs);
    free(logits);
    return st;
}
