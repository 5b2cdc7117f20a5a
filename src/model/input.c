/*
 * Network inputs and predictions at inference: face crops to CHW tensors, their
 * mirror images, and class probabilities averaged over a face and its mirror.
 * Training's augmented inputs (src/train/augment.c) build on the same layout.
 */
#include <avemo/model.h>

#include <assert.h>
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

enum avemo_status avemo_model_predict_probs(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                            int batch, unsigned shared_inputs, float *face_in, int face_size,
                                            int face_channels, int mirror, float *probs, struct avemo_error *err)
{
    const float *logits;
    int k = avemo_net_classes(net);
    enum avemo_status st = avemo_net_forward_shared(net, ctx, inputs, batch, shared_inputs, &logits, err);
    if (st) return st;
    avemo_nn_softmax(logits, batch, k, probs);
    if (!mirror || !face_in) return AVEMO_OK;
    /* Faces are roughly symmetric: the mirror image is a second, nearly independent look. */
    avemo_model_face_mirror(face_in, batch, face_size, face_channels);
    st = avemo_net_forward_shared(net, ctx, inputs, batch, shared_inputs, &logits, err);
    avemo_model_face_mirror(face_in, batch, face_size, face_channels);
    if (st) return st;
    float row[AVEMO_MAX_CLASSES];
    assert(k >= 1 && k <= AVEMO_MAX_CLASSES); /* avemo_model_open refuses more classes */
    for (int b = 0; b < batch; b++) {
        avemo_nn_softmax(logits + (size_t)b * k, 1, k, row);
        for (int c = 0; c < k; c++) probs[b * k + c] = 0.5f * (probs[b * k + c] + row[c]);
    }
    return AVEMO_OK;
}
