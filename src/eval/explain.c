/* Explanations of a classification (eval.h): classify, then run the model that answered once
 * more on the same inputs, forward and backward, for Grad-CAM maps over the face crops and the
 * audio features and for each modality's share of the decision (model.h). */
#include <avemo/eval.h>
#include <avemo/model.h>
#include <avemo/nn.h>

#include "eval/eval_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The network inputs as the explanation runs them: the audio repeated in every row (a backward
 * cannot follow a shared forward), the faces as classified. */
struct explain_inputs {
    const float *inputs[AVEMO_NN_MAX_INPUTS];
    float *audio_rows;
    int batch;
    unsigned shared;
};

static enum avemo_status build_inputs(const struct classify_inputs *in, struct explain_inputs *x,
                                      struct avemo_error *err)
{
    const struct avemo_model *m = in->model;
    memset(x, 0, sizeof *x);
    x->batch = in->batch > 0 ? in->batch : 1;
    if (m->face_input >= 0) x->inputs[m->face_input] = in->faces;
    if (m->audio_input < 0) return AVEMO_OK;
    size_t af = avemo_net_input_shape(m->net, m->audio_input, NULL, NULL, NULL, NULL);
    x->audio_rows = malloc(sizeof(float) * af * (size_t)x->batch);
    if (!x->audio_rows) return avemo_fail(err, AVEMO_ERR_NOMEM, "explain: out of memory");
    for (int b = 0; b < x->batch; b++) memcpy(x->audio_rows + b * af, in->audio, sizeof(float) * af);
    x->inputs[m->audio_input] = x->audio_rows;
    x->shared = 1u << m->audio_input;
    return AVEMO_OK;
}

/* cam's maps resized to h x w (one after the other) and each divided by its maximum. */
static float *resized_maps(const struct avemo_gradcam *cam, int h, int w)
{
    const size_t plane = (size_t)h * w;
    float *out = malloc(sizeof(float) * plane * (size_t)cam->maps);
    for (int i = 0; out && i < cam->maps; i++) {
        avemo_heatmap_resize(cam->cam + (size_t)i * cam->h * cam->w, cam->h, cam->w, out + i * plane, h, w);
        avemo_heatmap_normalise(out + i * plane, plane);
    }
    return out;
}

static float *copy_floats(const float *src, size_t n)
{
    float *out = malloc(sizeof(float) * (n ? n : 1));
    if (out && n) memcpy(out, src, sizeof(float) * n);
    return out;
}

/* The maps of the face and audio inputs into ex. */
static enum avemo_status keep_maps(const struct avemo_model *m, const struct classify_inputs *in,
                                   const struct avemo_gradcam *cams, struct avemo_explanation *ex,
                                   struct avemo_error *err)
{
    const avemo_net *net = m->net;
    if (m->face_input >= 0 && cams[m->face_input].layer >= 0) {
        const struct avemo_gradcam *c = &cams[m->face_input];
        ex->face_size = m->p.face.size;
        ex->face_channels = m->p.face.channels;
        ex->nfaces = c->maps;
        ex->face_heat = resized_maps(c, ex->face_size, ex->face_size);
        ex->face_images = copy_floats(in->faces, (size_t)c->maps * ex->face_channels * ex->face_size * ex->face_size);
        snprintf(ex->face_layer, sizeof ex->face_layer, "%s", avemo_net_layer_name(net, c->layer));
        if (!ex->face_heat || !ex->face_images) return avemo_fail(err, AVEMO_ERR_NOMEM, "explain: out of memory");
    }
    if (m->audio_input >= 0 && cams[m->audio_input].layer >= 0) {
        const struct avemo_gradcam *c = &cams[m->audio_input];
        int ch, h, w;
        avemo_net_input_shape(net, m->audio_input, NULL, &ch, &h, &w);
        ex->has_audio = 1;
        ex->audio_rows = ch * h; /* 1 x rows x frames */
        ex->audio_frames = w;
        snprintf(ex->audio_feature, sizeof ex->audio_feature, "%s", avemo_audio_feature_name(m->p.audio.feature));
        ex->audio_heat = resized_maps(c, ex->audio_rows, w);
        ex->audio_image = copy_floats(in->audio, (size_t)ex->audio_rows * w);
        snprintf(ex->audio_layer, sizeof ex->audio_layer, "%s", avemo_net_layer_name(net, c->layer));
        if (!ex->audio_heat || !ex->audio_image) return avemo_fail(err, AVEMO_ERR_NOMEM, "explain: out of memory");
    }
    return AVEMO_OK;
}

static void keep_shares(const struct avemo_model *m, const struct avemo_modality_shares *sh,
                        struct avemo_explanation *ex)
{
    ex->prob_all = sh->prob_all;
    ex->prob_none = sh->prob_none;
    if (m->audio_input >= 0) {
        ex->audio_share = sh->share[m->audio_input];
        ex->audio_contribution = sh->contribution[m->audio_input];
    }
    if (m->face_input >= 0) {
        ex->face_share = sh->share[m->face_input];
        ex->face_contribution = sh->contribution[m->face_input];
    }
}

/* An ensemble's maps are the mean of its members' (each for its own logit of the class), as its
 * probabilities are the mean of theirs.  cams: member 0's, the sums added into them. */
static enum avemo_status gradcam_members(const struct avemo_model *m, avemo_nn_ctx *nn, const struct explain_inputs *x,
                                         int target, struct avemo_gradcam *cams, struct avemo_error *err)
{
    const int ni = avemo_net_input_count(m->net);
    enum avemo_status st = avemo_gradcam_run(m->net, nn, x->inputs, x->batch, target, x->shared, NULL, cams, err);
    for (int k = 1; !st && k < m->members; k++) {
        struct avemo_gradcam more[AVEMO_NN_MAX_INPUTS];
        st = avemo_gradcam_run(m->member[k], nn, x->inputs, x->batch, target, x->shared, NULL, more, err);
        for (int i = 0; !st && i < ni; i++) {
            size_t n = cams[i].layer >= 0 ? (size_t)cams[i].maps * cams[i].h * cams[i].w : 0;
            for (size_t j = 0; j < n; j++) cams[i].cam[j] += more[i].cam[j];
        }
        for (int i = 0; !st && i < ni; i++) avemo_gradcam_free(&more[i]);
    }
    for (int i = 0; i < ni && m->members > 1; i++) {
        size_t n = cams[i].layer >= 0 ? (size_t)cams[i].maps * cams[i].h * cams[i].w : 0;
        for (size_t j = 0; j < n; j++) cams[i].cam[j] /= (float)m->members;
        if (st) avemo_gradcam_free(&cams[i]); /* a later member failed: the caller frees nothing */
    }
    return st;
}

/* Shapley values are linear in the game: an ensemble's are the mean of its members'. */
static enum avemo_status shares_members(const struct avemo_model *m, avemo_nn_ctx *nn, const struct explain_inputs *x,
                                        int target, struct avemo_modality_shares *sh, struct avemo_error *err)
{
    struct avemo_modality_shares one;
    memset(sh, 0, sizeof *sh);
    enum avemo_status st = AVEMO_OK;
    for (int k = 0; !st && k < m->members; k++) {
        st = avemo_modality_shares(m->member[k], nn, x->inputs, x->batch, target, &one, err);
        sh->inputs = one.inputs;
        sh->prob_all += one.prob_all / (float)m->members;
        sh->prob_none += one.prob_none / (float)m->members;
        for (int i = 0; !st && i < one.inputs; i++) sh->contribution[i] += one.contribution[i] / (float)m->members;
    }
    float total = 0;
    for (int i = 0; i < sh->inputs; i++) total += fabsf(sh->contribution[i]);
    for (int i = 0; i < sh->inputs; i++)
        sh->share[i] = total > 0 ? fabsf(sh->contribution[i]) / total : 1.0f / (float)sh->inputs;
    return st;
}

/* Grad-CAM of one model on its inputs for the explained class (its maps into ex); with sh, also
 * the shares of its branches. */
static enum avemo_status explain_model(const struct classify_inputs *in, struct avemo_explanation *ex,
                                       struct avemo_modality_shares *sh, struct avemo_error *err)
{
    const struct avemo_model *m = in->model;
    struct explain_inputs x;
    enum avemo_status st = build_inputs(in, &x, err);
    avemo_nn_ctx *nn = NULL;
    if (!st) st = avemo_nn_ctx_create(m->net, x.batch, 1, 0, &nn, err);
    struct avemo_gradcam cams[AVEMO_NN_MAX_INPUTS];
    const int ni = avemo_net_input_count(m->net);
    if (!st) st = gradcam_members(m, nn, &x, ex->pred.label, cams, err);
    if (!st) {
        st = keep_maps(m, in, cams, ex, err);
        for (int i = 0; i < ni; i++) avemo_gradcam_free(&cams[i]);
    }
    if (!st && m->audio_input >= 0) snprintf(ex->audio_model, sizeof ex->audio_model, "%s", m->name);
    if (!st && m->face_input >= 0) snprintf(ex->face_model, sizeof ex->face_model, "%s", m->name);
    if (!st && sh) st = shares_members(m, nn, &x, ex->pred.label, sh, err);
    avemo_nn_ctx_free(nn);
    free(x.audio_rows);
    return st;
}

/* Late fusion answered: each model's maps, and the shares of the fused probability of the class
 * by the Shapley values of the two models, a model left out being uniform (it adds nothing to
 * the weighted sum of log-probabilities): v(both) = the answer, v(one) = that model's
 * probabilities at its weight, v(none) = 1/K. */
static enum avemo_status explain_late(const struct classify_late_inputs *in, struct avemo_explanation *ex,
                                      struct avemo_error *err)
{
    enum avemo_status st = explain_model(&in->audio, ex, NULL, err);
    if (!st) st = explain_model(&in->face, ex, NULL, err);
    if (st) return st;
    const int k = ex->pred.num_classes, c = ex->pred.label;
    float uniform[AVEMO_MAX_CLASSES], pa[AVEMO_MAX_CLASSES], pf[AVEMO_MAX_CLASSES];
    for (int i = 0; i < k; i++) uniform[i] = 1.0f / (float)k;
    /* a model left out weighs 0: its term (prior divided out or not) adds nothing */
    struct avemo_late_fusion audio_alone = {in->fusion.w_audio, 0, in->fusion.prior};
    struct avemo_late_fusion face_alone = {0, in->fusion.w_face, in->fusion.prior};
    avemo_fuse_late(in->p_audio, uniform, k, &audio_alone, pa);
    avemo_fuse_late(uniform, in->p_face, k, &face_alone, pf);
    const float all = ex->pred.probs[c], none = 1.0f / (float)k;
    ex->prob_all = all;
    ex->prob_none = none;
    ex->audio_contribution = 0.5f * ((pa[c] - none) + (all - pf[c]));
    ex->face_contribution = 0.5f * ((pf[c] - none) + (all - pa[c]));
    float total = fabsf(ex->audio_contribution) + fabsf(ex->face_contribution);
    ex->audio_share = total > 0 ? fabsf(ex->audio_contribution) / total : 0.5f;
    ex->face_share = total > 0 ? fabsf(ex->face_contribution) / total : 0.5f;
    return AVEMO_OK;
}

/* Grad-CAM and the shares of what answered the last classification of cctx: the model that
 * ran, or both models of a late fusion. */
static enum avemo_status explain_last(avemo_classify_ctx *cctx, struct avemo_explanation *ex, struct avemo_error *err)
{
    struct classify_late_inputs late;
    if (ex->pred.late_fusion && classify_last_late_inputs(cctx, &late) == 0) return explain_late(&late, ex, err);
    struct classify_inputs in;
    if (classify_last_inputs(cctx, &in))
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "explain: the classification left no inputs");
    struct avemo_modality_shares sh;
    enum avemo_status st = explain_model(&in, ex, &sh, err);
    if (!st) keep_shares(in.model, &sh, ex);
    return st;
}

enum avemo_status avemo_explain_file(avemo_classify_ctx *ctx, const char *path, enum avemo_mode mode,
                                     struct avemo_explanation *ex, struct avemo_error *err)
{
    memset(ex, 0, sizeof *ex);
    enum avemo_status st = avemo_classify_file(ctx, path, mode, &ex->pred, err);
    if (!st) st = explain_last(ctx, ex, err);
    if (st) avemo_explanation_free(ex);
    return st;
}

enum avemo_status avemo_explain_memory(avemo_classify_ctx *ctx, const void *data, size_t size, const char *name,
                                       enum avemo_mode mode, struct avemo_explanation *ex, struct avemo_error *err)
{
    memset(ex, 0, sizeof *ex);
    enum avemo_status st = avemo_classify_memory(ctx, data, size, name, mode, &ex->pred, err);
    if (!st) st = explain_last(ctx, ex, err);
    if (st) avemo_explanation_free(ex);
    return st;
}

void avemo_explanation_free(struct avemo_explanation *ex)
{
    free(ex->face_images);
    free(ex->face_heat);
    free(ex->audio_image);
    free(ex->audio_heat);
    ex->face_images = ex->face_heat = ex->audio_image = ex->audio_heat = NULL;
    ex->nfaces = ex->has_audio = 0;
}

void avemo_explanation_face_map(const struct avemo_explanation *ex, int i, struct avemo_heatmap *map)
{
    const size_t plane = (size_t)ex->face_size * ex->face_size;
    memset(map, 0, sizeof *map);
    if (i < 0 || i >= ex->nfaces) return;
    map->width = map->height = ex->face_size;
    map->channels = ex->face_channels;
    map->image = ex->face_images + (size_t)i * ex->face_channels * plane;
    map->heat = ex->face_heat + (size_t)i * plane;
}

void avemo_explanation_audio_map(const struct avemo_explanation *ex, struct avemo_heatmap *map)
{
    memset(map, 0, sizeof *map);
    if (!ex->has_audio) return;
    map->width = ex->audio_frames;
    map->height = ex->audio_rows;
    map->channels = 1;
    map->image = ex->audio_image;
    map->heat = ex->audio_heat;
    map->flip = 1;
}

/* ---- JSON ---- */

static void add_modality(cJSON *o, const char *name, float share, float contribution)
{
    cJSON *m = cJSON_AddObjectToObject(o, name);
    cJSON_AddNumberToObject(m, "share", share);
    cJSON_AddNumberToObject(m, "contribution", contribution);
}

static cJSON *string_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *explanation_object(const struct avemo_explanation *ex, const char *const *face_maps,
                                 const char *audio_map)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "class", ex->pred.labels[ex->pred.label]);
    cJSON_AddStringToObject(o, "score", "logit");
    /* a branch left out is zeros; under late fusion a model left out is uniform */
    cJSON_AddStringToObject(o, "occlusion", ex->pred.late_fusion ? "model" : "zero");
    cJSON_AddNumberToObject(o, "probability_all", ex->prob_all);
    cJSON_AddNumberToObject(o, "probability_none", ex->prob_none);
    cJSON *mod = cJSON_AddObjectToObject(o, "modalities");
    add_modality(mod, "audio", ex->audio_share, ex->audio_contribution);
    add_modality(mod, "face", ex->face_share, ex->face_contribution);
    if (ex->has_audio) {
        cJSON *a = cJSON_AddObjectToObject(o, "audio");
        cJSON_AddStringToObject(a, "model", ex->audio_model);
        cJSON_AddStringToObject(a, "layer", ex->audio_layer);
        cJSON_AddStringToObject(a, "feature", ex->audio_feature);
        cJSON_AddNumberToObject(a, "rows", ex->audio_rows);
        cJSON_AddNumberToObject(a, "frames", ex->audio_frames);
        cJSON_AddItemToObject(a, "heatmap", string_or_null(audio_map));
    } else {
        cJSON_AddNullToObject(o, "audio");
    }
    cJSON *faces = cJSON_AddArrayToObject(o, "faces");
    for (int i = 0; i < ex->nfaces; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "model", ex->face_model);
        cJSON_AddStringToObject(f, "layer", ex->face_layer);
        cJSON_AddNumberToObject(f, "size", ex->face_size);
        cJSON_AddItemToObject(f, "heatmap", string_or_null(face_maps ? face_maps[i] : NULL));
        cJSON_AddItemToArray(faces, f);
    }
    return o;
}

char *avemo_explanation_json(const struct avemo_explanation *ex, const char *file, const char *const *face_maps,
                             const char *audio_map)
{
    char *text = avemo_prediction_json(&ex->pred, file);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "explanation", explanation_object(ex, face_maps, audio_map));
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
