/*
 * A trained model as the system sees it: a .avm file's network and its stored
 * pipeline, parsed (with command-line overrides) and checked against each other.
 */
#include <avemo/model.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the pipeline with --set overrides ------------------------------------------- */

/* Apply SEC.KEY=VALUE overrides to a parsed pipeline: entries are replaced or added, so a
 * saved model holds the pipeline that was really used. */
static enum avemo_status apply_overrides(avemo_cfg *cfg, const char *const *overrides, int n, struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i < n; i++) st = avemo_cfg_assign(cfg, overrides[i], err);
    return st;
}

/* The text a model stores: the original when nothing changed, else the configuration written out. */
static enum avemo_status final_text(const char *text, const avemo_cfg *cfg, int changed, char **out,
                                    struct avemo_error *err)
{
    *out = changed ? avemo_cfg_text(cfg) : strdup(text);
    return *out ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", avemo_cfg_name(cfg));
}

enum avemo_status avemo_pipeline_override(const char *text, const char *const *overrides, int n, char **out,
                                          struct avemo_error *err)
{
    *out = NULL;
    avemo_cfg *cfg;
    enum avemo_status st = avemo_cfg_parse(text, AVEMO_NN_MAX_PIPELINE_BYTES, "pipeline", &cfg, err);
    if (!st) st = apply_overrides(cfg, overrides, n, err);
    if (!st) st = final_text(text, cfg, n > 0, out, err);
    avemo_cfg_free(cfg);
    return st;
}

enum avemo_status avemo_pipeline_load(const char *path, const char *const *overrides, int n, char **text,
                                      struct avemo_pipeline *p, struct avemo_error *err)
{
    uint8_t *raw;
    size_t size;
    avemo_cfg *cfg = NULL;
    *text = NULL;
    enum avemo_status st = avemo_read_file(path, AVEMO_NN_MAX_PIPELINE_BYTES, &raw, &size, err);
    if (st) return st;
    st = avemo_cfg_parse((const char *)raw, AVEMO_NN_MAX_PIPELINE_BYTES, path, &cfg, err);
    if (!st) st = apply_overrides(cfg, overrides, n, err);
    if (!st) st = avemo_pipeline_from_cfg(cfg, p, err);
    if (!st) st = final_text((const char *)raw, cfg, n > 0, text, err);
    avemo_cfg_free(cfg);
    free(raw);
    return st;
}

enum avemo_status avemo_model_check_inputs(const avemo_net *net, const struct avemo_pipeline *p, int *audio_input,
                                           int *face_input, struct avemo_error *err)
{
    *audio_input = avemo_net_input_index(net, "audio");
    *face_input = avemo_net_input_index(net, "face");
    int want_audio = p->mode != AVEMO_MODE_FACE, want_face = p->mode != AVEMO_MODE_AUDIO;
    if (want_audio != (*audio_input >= 0) || want_face != (*face_input >= 0) || avemo_net_input_count(net) != want_audio + want_face)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: the network's inputs do not match mode '%s' (it needs %s)", p->name,
                          avemo_mode_name((enum avemo_mode)p->mode),
                          p->mode == AVEMO_MODE_AV ? "inputs audio and face" : want_audio ? "one input named audio" : "one input named face");
    int c, h, w;
    const char *name;
    if (*audio_input >= 0) {
        avemo_net_input_shape(net, *audio_input, &name, &c, &h, &w);
        int channels = avemo_audio_params_channels(&p->audio), rows = avemo_audio_params_base_count(&p->audio);
        if (c != channels || h != rows || w != p->audio.frames)
            return avemo_fail(err, AVEMO_ERR_MISMATCH,
                              "%s: network input audio is %dx%dx%d but the [audio] features are %dx%dx%d", p->name, c, h, w,
                              channels, rows, p->audio.frames);
    }
    if (*face_input >= 0) {
        avemo_net_input_shape(net, *face_input, &name, &c, &h, &w);
        if (c != p->face.channels || h != p->face.size || w != p->face.size)
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: network input face is %dx%dx%d but [face] gives %dx%dx%d", p->name,
                              c, h, w, p->face.channels, p->face.size, p->face.size);
    }
    return AVEMO_OK;
}

/* --- opening a model ------------------------------------------------------------ */

static void model_name_from_path(const char *path, char *name, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".avm") == 0) len -= 4;
    if (len >= size) len = size - 1;
    memcpy(name, base, len);
    name[len] = 0;
}

/* The pipeline, the inputs, the labels and the normalisation of an opened network. */
static enum avemo_status model_check(const char *path, const char *const *overrides, int noverrides,
                                     struct avemo_model *m, struct avemo_error *err)
{
    avemo_cfg *cfg = NULL;
    enum avemo_status st = avemo_cfg_parse(avemo_net_pipeline(m->net), AVEMO_NN_MAX_PIPELINE_BYTES, path, &cfg, err);
    if (!st) st = apply_overrides(cfg, overrides, noverrides, err);
    if (!st) st = avemo_pipeline_from_cfg(cfg, &m->p, err);
    avemo_cfg_free(cfg);
    if (!st) st = avemo_model_check_inputs(m->net, &m->p, &m->audio_input, &m->face_input, err);
    if (st) return st;
    int classes = avemo_net_classes(m->net);
    if (classes > AVEMO_MAX_CLASSES)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: %d classes, at most %d are supported", path, classes, AVEMO_MAX_CLASSES);
    for (int c = 0; c < classes; c++)
        if (!avemo_net_label(m->net, c)) return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: class %d has no label", path, c);
    if (m->p.audio.norm == AVEMO_NORM_DATASET) {
        size_t nm = 0, ns = 0;
        m->mean = avemo_net_array(m->net, "audio.mean", &nm);
        m->std = avemo_net_array(m->net, "audio.std", &ns);
        int rows = avemo_audio_params_feature_count(&m->p.audio);
        if (!m->mean || !m->std || nm != (size_t)rows || ns != (size_t)rows)
            return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: norm = dataset but the model has no audio.mean/audio.std of %d bands",
                              path, rows);
        /* every input is divided by its band's deviation: a zero or non-finite one would give inf */
        for (int r = 0; r < rows; r++)
            if (!isfinite(m->mean[r]) || !isfinite(m->std[r]) || !(m->std[r] > 0.0f))
                return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: audio.mean or audio.std of band %d is not usable (%g, %g)",
                                  path, r, (double)m->mean[r], (double)m->std[r]);
    }
    return AVEMO_OK;
}

/* Member k of an ensemble, with the ensemble's temperature: whatever runs a member alone
 * (Grad-CAM, modality shares) then gives the probabilities the ensemble averages. */
static enum avemo_status open_member(struct avemo_model *m, int k, struct avemo_error *err)
{
    enum avemo_status st = avemo_net_member(m->net, k, &m->member[k], err);
    size_t n = 0;
    const float *t = avemo_net_array(m->net, AVEMO_CALIB_TEMPERATURE, &n);
    if (!st && t) st = avemo_net_set_array(m->member[k], AVEMO_CALIB_TEMPERATURE, t, n, err);
    return st;
}

static enum avemo_status model_open(const char *path, const char *const *overrides, int noverrides, int inference,
                                    struct avemo_model *m, struct avemo_error *err)
{
    memset(m, 0, sizeof *m);
    m->audio_input = m->face_input = -1;
    enum avemo_status st = inference ? avemo_net_load_inference(path, &m->net, err) : avemo_net_load(path, &m->net, err);
    if (st) return st;
    model_name_from_path(path, m->name, sizeof m->name);
    st = model_check(path, overrides, noverrides, m, err);
    m->member[0] = m->net;
    m->members = avemo_net_member_count(m->net);
    for (int k = 1; !st && k < m->members; k++) st = open_member(m, k, err);
    if (st) avemo_model_close(m);
    return st;
}

enum avemo_status avemo_model_open(const char *path, const char *const *overrides, int noverrides,
                                   struct avemo_model *m, struct avemo_error *err)
{
    return model_open(path, overrides, noverrides, 0, m, err);
}

enum avemo_status avemo_model_open_inference(const char *path, const char *const *overrides, int noverrides,
                                             struct avemo_model *m, struct avemo_error *err)
{
    return model_open(path, overrides, noverrides, 1, m, err);
}

enum avemo_status avemo_model_prepare(struct avemo_model *m, struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    for (int k = 0; !st && k < m->members; k++) st = avemo_net_prepare(m->member[k], err);
    return st;
}

void avemo_model_close(struct avemo_model *m)
{
    if (!m) return;
    for (int k = 1; k < AVEMO_NN_MAX_MEMBERS; k++) avemo_net_free(m->member[k]);
    avemo_net_free(m->net);
    memset(m, 0, sizeof *m);
    m->audio_input = m->face_input = -1;
}

enum avemo_status avemo_model_save(const avemo_net *net, const char *path, struct avemo_error *err)
{
    return avemo_net_save(net, path, err);
}
