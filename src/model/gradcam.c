/* Explanations of a network's decision: Grad-CAM maps over each branch's input and each
 * branch's share of the decision (occluding branches, Shapley values).  The nn module gives
 * the activations and gradients (nn.h "looking inside"); this file turns them into maps. */
#include <avemo/model.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

int avemo_gradcam_default_layer(const avemo_net *net, int input)
{
    int layer = -1, n = avemo_net_layer_count(net);
    for (int i = 0; i < n; i++) {
        if (avemo_net_layer_input(net, i) != input) continue;
        const char *type = avemo_net_layer_type(net, i);
        if (strcmp(type, "conv") == 0) layer = i;
        /* the block's batch norm and ReLU belong to the feature maps (a batch norm followed by a
         * ReLU has no output of its own: the ReLU's is taken) */
        else if (layer == i - 1 && (strcmp(type, "bn") == 0 || strcmp(type, "relu") == 0)) layer = i;
    }
    return layer;
}

void avemo_gradcam_free(struct avemo_gradcam *cam)
{
    free(cam->cam);
    memset(cam, 0, sizeof *cam);
    cam->input = cam->layer = -1;
}

/* One map from feature maps a (K x hw) and their gradients g (summed over `rows` samples
 * that share a): cam = ReLU(sum_k alpha_k a_k), alpha_k = mean over the map of g_k. */
static void cam_from(const float *a, const float *g, int rows, size_t row_stride, int K, size_t hw, float *cam)
{
    for (size_t p = 0; p < hw; p++) cam[p] = 0.0f;
    for (int k = 0; k < K; k++) {
        double sum = 0.0;
        for (int r = 0; r < rows; r++)
            for (size_t p = 0; p < hw; p++) sum += g[r * row_stride + k * hw + p];
        const float alpha = (float)(sum / (double)hw);
        for (size_t p = 0; p < hw; p++) cam[p] += alpha * a[k * hw + p];
    }
    for (size_t p = 0; p < hw; p++) cam[p] = cam[p] > 0.0f ? cam[p] : 0.0f;
}

static enum avemo_status cam_of_input(avemo_nn_ctx *ctx, int shared, struct avemo_gradcam *cam,
                                      struct avemo_error *err)
{
    struct avemo_nn_tensor a, g;
    enum avemo_status st = avemo_nn_ctx_activation(ctx, cam->layer, &a, err);
    if (!st) st = avemo_nn_ctx_gradient(ctx, cam->layer, &g, err);
    if (st) return st;
    const size_t hw = (size_t)a.h * a.w, chw = (size_t)a.c * hw;
    cam->maps = shared ? 1 : a.batch;
    cam->h = a.h;
    cam->w = a.w;
    cam->cam = malloc(sizeof(float) * hw * (size_t)cam->maps);
    if (!cam->cam) return avemo_fail(err, AVEMO_ERR_NOMEM, "Grad-CAM: out of memory");
    if (shared) /* every row holds the same features: one map for the score summed over the batch */
        cam_from(a.data, g.data, g.batch, chw, a.c, hw, cam->cam);
    else
        for (int n = 0; n < a.batch; n++) cam_from(a.data + n * chw, g.data + n * chw, 1, chw, a.c, hw, cam->cam + n * hw);
    return AVEMO_OK;
}

enum avemo_status avemo_gradcam_run(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs, int batch,
                                    int target, unsigned shared_inputs, const int *layers, struct avemo_gradcam *cams,
                                    struct avemo_error *err)
{
    const int ni = avemo_net_input_count(net), classes = avemo_net_classes(net);
    for (int i = 0; i < ni; i++) {
        memset(&cams[i], 0, sizeof cams[i]);
        cams[i].input = i;
        cams[i].layer = layers && layers[i] >= 0 ? layers[i] : avemo_gradcam_default_layer(net, i);
        cams[i].shared = shared_inputs >> i & 1u;
    }
    if (target < 0 || target >= classes)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "Grad-CAM: class %d not in 0..%d", target, classes - 1);
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i < ni; i++)
        if (cams[i].layer >= 0) st = avemo_nn_ctx_keep_gradient(ctx, cams[i].layer, err);
    const float *logits;
    if (!st) st = avemo_net_forward(net, ctx, inputs, batch, &logits, err);
    float *dlogits = st ? NULL : calloc((size_t)batch * classes, sizeof(float));
    if (!st && !dlogits) st = avemo_fail(err, AVEMO_ERR_NOMEM, "Grad-CAM: out of memory");
    /* the score: the target's logit (before the softmax, as in the paper), summed over the batch */
    for (int n = 0; !st && n < batch; n++) dlogits[n * classes + target] = 1.0f;
    if (!st) st = avemo_net_backward_logits(net, ctx, dlogits, err);
    free(dlogits);
    for (int i = 0; !st && i < ni; i++)
        if (cams[i].layer >= 0) st = cam_of_input(ctx, cams[i].shared, &cams[i], err);
    if (st)
        for (int i = 0; i < ni; i++) avemo_gradcam_free(&cams[i]);
    return st;
}

/* PyTorch's F.interpolate(mode="bilinear", align_corners=False): source coordinate
 * (x + 0.5) * in / out - 0.5, clamped at 0, neighbours clamped at the edge. */
static void source_coord(int x, int in, int out, int *x0, int *x1, float *frac)
{
    float s = ((float)x + 0.5f) * (float)in / (float)out - 0.5f;
    if (s < 0.0f) s = 0.0f;
    *x0 = (int)s;
    if (*x0 > in - 1) *x0 = in - 1;
    *x1 = *x0 + 1 < in ? *x0 + 1 : in - 1;
    *frac = s - (float)*x0;
}

void avemo_heatmap_resize(const float *map, int h, int w, float *out, int oh, int ow)
{
    for (int y = 0; y < oh; y++) {
        int y0, y1, x0, x1;
        float fy, fx;
        source_coord(y, h, oh, &y0, &y1, &fy);
        for (int x = 0; x < ow; x++) {
            source_coord(x, w, ow, &x0, &x1, &fx);
            const float top = map[y0 * w + x0] * (1.0f - fx) + map[y0 * w + x1] * fx;
            const float bottom = map[y1 * w + x0] * (1.0f - fx) + map[y1 * w + x1] * fx;
            out[y * ow + x] = top * (1.0f - fy) + bottom * fy;
        }
    }
}

float avemo_heatmap_normalise(float *map, size_t n)
{
    float max = 0.0f;
    for (size_t i = 0; i < n; i++) max = map[i] > max ? map[i] : max;
    for (size_t i = 0; max > 0.0f && i < n; i++) map[i] /= max;
    return max;
}

/* ---- each branch's share: occlusion ---- */

/* v(S): the target's (calibrated) probability, averaged over the batch, with the branches outside the mask
 * occluded (their features set to 0) in the head input. */
static enum avemo_status coalition_value(const avemo_net *net, avemo_nn_ctx *ctx, const float *head, float *work,
                                         int batch, unsigned mask, int target, double *value, struct avemo_error *err)
{
    const size_t row = avemo_net_head_inputs(net);
    const int classes = avemo_net_classes(net);
    memcpy(work, head, sizeof(float) * row * (size_t)batch);
    for (int i = 0; i < avemo_net_input_count(net); i++) {
        size_t off, n = avemo_net_branch_features(net, i, &off);
        if (mask >> i & 1u) continue;
        for (int b = 0; b < batch; b++) memset(work + b * row + off, 0, sizeof(float) * n);
    }
    const float *logits;
    enum avemo_status st = avemo_net_forward_head(net, ctx, work, batch, &logits, err);
    if (st) return st;
    float probs[AVEMO_MAX_CLASSES];
    double sum = 0.0;
    /* the probability the classification reports: with the model's temperature (calibration) */
    const float temperature = avemo_model_temperature(net);
    for (int b = 0; b < batch; b++) {
        avemo_softmax_temperature(logits + b * classes, classes, temperature, probs);
        sum += probs[target];
    }
    *value = sum / batch;
    return AVEMO_OK;
}

/* Shapley values: phi_i = sum over S without i of |S|! (n - |S| - 1)! / n! (v(S + i) - v(S)). */
static void shapley(const double *v, int n, struct avemo_modality_shares *out)
{
    double fact[AVEMO_NN_MAX_INPUTS + 1] = {1};
    for (int k = 1; k <= n; k++) fact[k] = fact[k - 1] * k;
    double total = 0.0, phi[AVEMO_NN_MAX_INPUTS];
    for (int i = 0; i < n; i++) {
        phi[i] = 0.0;
        for (unsigned s = 0; s < 1u << n; s++) {
            if (s >> i & 1u) continue;
            const int size = __builtin_popcount(s);
            phi[i] += fact[size] * fact[n - size - 1] / fact[n] * (v[s | 1u << i] - v[s]);
        }
        out->contribution[i] = (float)phi[i];
        total += fabs(phi[i]);
    }
    /* from the doubles: a lone branch's share is exactly 1 */
    for (int i = 0; i < n; i++) out->share[i] = total > 0.0 ? (float)(fabs(phi[i]) / total) : 1.0f / n;
}

enum avemo_status avemo_modality_shares(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                        int batch, int target, struct avemo_modality_shares *out,
                                        struct avemo_error *err)
{
    memset(out, 0, sizeof *out);
    const int n = avemo_net_input_count(net);
    out->inputs = n;
    if (target < 0 || target >= avemo_net_classes(net))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "modality shares: class %d not in 0..%d", target,
                          avemo_net_classes(net) - 1);
    const float *logits;
    enum avemo_status st = avemo_net_forward(net, ctx, inputs, batch, &logits, err);
    if (st) return st;
    const size_t floats = avemo_net_head_inputs(net) * (size_t)batch;
    float *head = malloc(sizeof(float) * floats), *work = malloc(sizeof(float) * floats);
    if (!head || !work) st = avemo_fail(err, AVEMO_ERR_NOMEM, "modality shares: out of memory");
    if (!st) memcpy(head, avemo_nn_ctx_head_input(ctx, NULL), sizeof(float) * floats);
    double v[1u << AVEMO_NN_MAX_INPUTS];
    for (unsigned s = 0; !st && s < 1u << n; s++)
        st = coalition_value(net, ctx, head, work, batch, s, target, &v[s], err);
    free(head);
    free(work);
    if (st) return st;
    out->prob_none = (float)v[0];
    out->prob_all = (float)v[(1u << n) - 1];
    shapley(v, n, out);
    return AVEMO_OK;
}
