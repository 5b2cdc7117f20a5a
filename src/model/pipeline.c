/*
 * Pipeline files: the [pipeline], [face], [train] and [augment] sections.
 * [audio] is read by the audio module, [labels] by labels.c, the network by nn.
 * Also the one table of mode names.
 */
#include <avemo/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void avemo_pipeline_default(struct avemo_pipeline *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "avemo");
    p->mode = AVEMO_MODE_AV;
    avemo_audio_params_default(&p->audio);
    p->face.size = 64;
    p->face.channels = 1;
    p->face.frames = 8;
    snprintf(p->face.cascade, sizeof p->face.cascade, "%s", AVEMO_DEFAULT_CASCADE);
    avemo_detect_params_default(&p->face.detect);
    p->face.margin = 0.1;
    p->face.track = 0;
    avemo_label_map_default(&p->labels);
    struct avemo_train_config *t = &p->train;
    t->epochs = 100;
    t->batch = 32;
    t->lr = 1e-3f;
    t->optimizer = AVEMO_OPTIM_ADAM;
    t->patience = 10;
    t->plateau_patience = 4;
    t->plateau_factor = 0.5f;
    t->min_lr = 1e-5f;
    t->class_weights = 1;
    t->seed = 1;
    t->split = AVEMO_SPLIT_GROUPS;
    t->folds = 5;
    t->fold = 0;
    t->validation = 1;
    t->dropout = 1;
    t->distill = 0.5f;
}

/* --- typed values with ranges ------------------------------------------------- */

/* The section helpers name the key as "file: section.key"; core checks the value and words
 * the message (one format for every configuration value). */
static enum avemo_status parse_int(const char *value, int lo, int hi, int *out, const char *name, const char *key,
                                   struct avemo_error *err)
{
    char where[400];
    snprintf(where, sizeof where, "%s: %s", name, key);
    return avemo_value_int(value, lo, hi, out, where, err);
}

static enum avemo_status parse_double(const char *value, double lo, double hi, double *out, const char *name,
                                      const char *key, struct avemo_error *err)
{
    char where[400];
    snprintf(where, sizeof where, "%s: %s", name, key);
    return avemo_value_double(value, lo, hi, out, where, err);
}

static enum avemo_status parse_float(const char *value, double lo, double hi, float *out, const char *name,
                                     const char *key, struct avemo_error *err)
{
    double d;
    enum avemo_status st = parse_double(value, lo, hi, &d, name, key, err);
    if (!st) *out = (float)d;
    return st;
}

static enum avemo_status parse_choice(const char *value, const char *const *choices, int *out, const char *name,
                                      const char *key, struct avemo_error *err)
{
    char where[400];
    snprintf(where, sizeof where, "%s: %s", name, key);
    return avemo_value_choice(value, choices, out, where, err);
}

const char *const avemo_mode_names[AVEMO_MODE_COUNT + 1] = {"av", "audio", "face", NULL};

const char *avemo_mode_name(enum avemo_mode mode)
{
    return (int)mode >= 0 && mode < AVEMO_MODE_COUNT ? avemo_mode_names[mode] : "av";
}

enum avemo_status avemo_mode_parse(const char *text, enum avemo_mode *mode, struct avemo_error *err)
{
    for (int m = 0; text && m < AVEMO_MODE_COUNT; m++)
        if (strcmp(text, avemo_mode_names[m]) == 0) {
            *mode = (enum avemo_mode)m;
            return AVEMO_OK;
        }
    return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "unknown mode '%s' (av, audio or face)", text ? text : "");
}
static const char *const optim_names[] = {"adam", "adamw", "sgd", NULL};
static const char *const split_names[] = {"groups", "random", "folders", "all", NULL};
static const char *const bool_names[] = {"no", "yes", NULL};
static const char *const weight_names[] = {"none", "balanced", NULL};

/* --- sections ----------------------------------------------------------------- */

static enum avemo_status set_pipeline(struct avemo_pipeline *p, const char *key, const char *value, const char *name,
                                      struct avemo_error *err)
{
    if (strcmp(key, "name") == 0) {
        if (strlen(value) >= sizeof p->name) return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [pipeline] name too long", name);
        snprintf(p->name, sizeof p->name, "%s", value);
        return AVEMO_OK;
    }
    if (strcmp(key, "mode") == 0) return parse_choice(value, avemo_mode_names, &p->mode, name, "mode", err);
    if (strcmp(key, "description") == 0 || strcmp(key, "reproduces") == 0) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: unknown key '%s' in [pipeline] (name, mode, description)", name, key);
}

static enum avemo_status set_face(struct avemo_face_spec *f, const char *key, const char *value, const char *name,
                                  struct avemo_error *err)
{
    if (strcmp(key, "size") == 0) return parse_int(value, 16, 256, &f->size, name, "face.size", err);
    if (strcmp(key, "channels") == 0) {
        enum avemo_status st = parse_int(value, 1, 3, &f->channels, name, "face.channels", err);
        if (!st && f->channels == 2) st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s: face.channels is 1 or 3", name);
        return st;
    }
    if (strcmp(key, "frames") == 0) return parse_int(value, 1, 64, &f->frames, name, "face.frames", err);
    if (strcmp(key, "cascade") == 0) {
        if (strlen(value) >= sizeof f->cascade) return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: face.cascade too long", name);
        snprintf(f->cascade, sizeof f->cascade, "%s", value);
        return AVEMO_OK;
    }
    if (strcmp(key, "scale_factor") == 0)
        return parse_double(value, 1.01, 2.0, &f->detect.scale_factor, name, "face.scale_factor", err);
    if (strcmp(key, "min_neighbors") == 0)
        return parse_int(value, 0, 100, &f->detect.min_neighbors, name, "face.min_neighbors", err);
    if (strcmp(key, "min_size") == 0) {
        enum avemo_status st = parse_int(value, 8, 4096, &f->detect.min_width, name, "face.min_size", err);
        f->detect.min_height = f->detect.min_width;
        return st;
    }
    if (strcmp(key, "margin") == 0) return parse_double(value, -0.25, 1, &f->margin, name, "face.margin", err);
    if (strcmp(key, "offset_y") == 0) return parse_double(value, -0.5, 0.5, &f->offset_y, name, "face.offset_y", err);
    if (strcmp(key, "equalize") == 0) return parse_choice(value, bool_names, &f->equalize, name, "face.equalize", err);
    if (strcmp(key, "track") == 0) return parse_choice(value, bool_names, &f->track, name, "face.track", err);
    if (strcmp(key, "mirror_test") == 0)
        return parse_choice(value, bool_names, &f->mirror_test, name, "face.mirror_test", err);
    return avemo_fail(err, AVEMO_ERR_CONFIG,
                      "%s: unknown key '%s' in [face] (size, channels, frames, cascade, scale_factor, min_neighbors, "
                      "min_size, margin, offset_y, equalize, track, mirror_test)",
                      name, key);
}

/* "1 8": one count per --data, in order (commas or spaces between them). */
static enum avemo_status parse_repeat(struct avemo_train_config *t, const char *value, const char *name,
                                      struct avemo_error *err)
{
    char list[256], key[32];
    if (strlen(value) >= sizeof list) return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: train.repeat too long", name);
    snprintf(list, sizeof list, "%s", value);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (n == (int)(sizeof t->repeat / sizeof t->repeat[0]))
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: train.repeat has more than %d counts", name, n);
        snprintf(key, sizeof key, "train.repeat[%d]", n);
        enum avemo_status st = parse_int(tok, 1, 1000, &t->repeat[n], name, key, err);
        if (st) return st;
        n++;
    }
    t->nrepeat = n;
    return AVEMO_OK;
}

static enum avemo_status set_train(struct avemo_train_config *t, const char *key, const char *value, const char *name,
                                   struct avemo_error *err)
{
    int seed;
    enum avemo_status st;
    if (strcmp(key, "epochs") == 0) return parse_int(value, 1, 10000, &t->epochs, name, "train.epochs", err);
    if (strcmp(key, "batch") == 0) return parse_int(value, 1, 1024, &t->batch, name, "train.batch", err);
    if (strcmp(key, "lr") == 0) return parse_float(value, 1e-8, 10, &t->lr, name, "train.lr", err);
    if (strcmp(key, "optimizer") == 0) return parse_choice(value, optim_names, &t->optimizer, name, "train.optimizer", err);
    if (strcmp(key, "weight_decay") == 0) return parse_float(value, 0, 1, &t->weight_decay, name, "train.weight_decay", err);
    if (strcmp(key, "clip_norm") == 0) return parse_float(value, 0, 1e6, &t->clip_norm, name, "train.clip_norm", err);
    if (strcmp(key, "patience") == 0) return parse_int(value, 1, 10000, &t->patience, name, "train.patience", err);
    if (strcmp(key, "plateau_patience") == 0)
        return parse_int(value, 1, 10000, &t->plateau_patience, name, "train.plateau_patience", err);
    if (strcmp(key, "plateau_factor") == 0)
        return parse_float(value, 0.01, 1, &t->plateau_factor, name, "train.plateau_factor", err);
    if (strcmp(key, "min_lr") == 0) return parse_float(value, 0, 10, &t->min_lr, name, "train.min_lr", err);
    if (strcmp(key, "class_weights") == 0)
        return parse_choice(value, weight_names, &t->class_weights, name, "train.class_weights", err);
    if (strcmp(key, "label_smoothing") == 0)
        return parse_float(value, 0, 0.5, &t->label_smoothing, name, "train.label_smoothing", err);
    if (strcmp(key, "seed") == 0) {
        st = parse_int(value, 0, 2147483647, &seed, name, "train.seed", err);
        if (!st) t->seed = (uint64_t)seed;
        return st;
    }
    if (strcmp(key, "split") == 0) {
        int k;
        st = parse_choice(value, split_names, &k, name, "train.split", err);
        if (!st) t->split = (enum avemo_split_kind)k;
        return st;
    }
    if (strcmp(key, "folds") == 0) return parse_int(value, 0, 100, &t->folds, name, "train.folds", err);
    if (strcmp(key, "fold") == 0) return parse_int(value, 0, 99, &t->fold, name, "train.fold", err);
    if (strcmp(key, "validation") == 0)
        return parse_choice(value, bool_names, &t->validation, name, "train.validation", err);
    if (strcmp(key, "dropout") == 0) return parse_choice(value, bool_names, &t->dropout, name, "train.dropout", err);
    if (strcmp(key, "swa_start") == 0) return parse_int(value, 0, 10000, &t->swa_start, name, "train.swa_start", err);
    if (strcmp(key, "bn_recalibrate") == 0)
        return parse_choice(value, bool_names, &t->bn_recalibrate, name, "train.bn_recalibrate", err);
    if (strcmp(key, "threads") == 0) return parse_int(value, 0, 256, &t->threads, name, "train.threads", err);
    if (strcmp(key, "distill") == 0) return parse_float(value, 0, 1, &t->distill, name, "train.distill", err);
    if (strcmp(key, "repeat") == 0) return parse_repeat(t, value, name, err);
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: unknown key '%s' in [train]", name, key);
}

static enum avemo_status set_augment(struct avemo_augment *a, const char *key, const char *value, const char *name,
                                     struct avemo_error *err)
{
    if (strcmp(key, "noise_snr_db") == 0) return parse_float(value, 0, 100, &a->noise_snr_db, name, "augment.noise_snr_db", err);
    if (strcmp(key, "gain_db") == 0) return parse_float(value, 0, 40, &a->gain_db, name, "augment.gain_db", err);
    if (strcmp(key, "shift") == 0) return parse_float(value, 0, 1, &a->shift, name, "augment.shift", err);
    if (strcmp(key, "speed") == 0) return parse_float(value, 0, 0.5, &a->speed, name, "augment.speed", err);
    if (strcmp(key, "time_mask") == 0) return parse_int(value, 0, 1000, &a->time_mask, name, "augment.time_mask", err);
    if (strcmp(key, "freq_mask") == 0) return parse_int(value, 0, 1000, &a->freq_mask, name, "augment.freq_mask", err);
    if (strcmp(key, "masks") == 0) return parse_int(value, 0, 10, &a->masks, name, "augment.masks", err);
    if (strcmp(key, "flip") == 0) return parse_choice(value, bool_names, &a->flip, name, "augment.flip", err);
    if (strcmp(key, "face_shift") == 0) return parse_float(value, 0, 0.5, &a->face_shift, name, "augment.face_shift", err);
    if (strcmp(key, "face_scale") == 0) return parse_float(value, 0, 0.5, &a->face_scale, name, "augment.face_scale", err);
    if (strcmp(key, "face_rotate") == 0) return parse_float(value, 0, 45, &a->face_rotate, name, "augment.face_rotate", err);
    if (strcmp(key, "brightness") == 0) return parse_float(value, 0, 1, &a->brightness, name, "augment.brightness", err);
    if (strcmp(key, "contrast") == 0) return parse_float(value, 0, 1, &a->contrast, name, "augment.contrast", err);
    if (strcmp(key, "mixup") == 0) return parse_float(value, 0, 1, &a->mixup, name, "augment.mixup", err);
    if (strcmp(key, "dither") == 0) return parse_float(value, 0, 64, &a->dither, name, "augment.dither", err);
    if (strcmp(key, "room") == 0) return parse_float(value, 0, 1, &a->room, name, "augment.room", err);
    if (strcmp(key, "codec") == 0) return parse_float(value, 0, 1, &a->codec, name, "augment.codec", err);
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: unknown key '%s' in [augment]", name, key);
}

enum avemo_status avemo_pipeline_set(struct avemo_pipeline *p, const char *section, const char *key, const char *value,
                                     const char *name, struct avemo_error *err)
{
    if (strcmp(section, "pipeline") == 0) return set_pipeline(p, key, value, name, err);
    if (strcmp(section, "face") == 0) return set_face(&p->face, key, value, name, err);
    if (strcmp(section, "train") == 0) return set_train(&p->train, key, value, name, err);
    if (strcmp(section, "augment") == 0) return set_augment(&p->augment, key, value, name, err);
    if (strcmp(section, "audio") == 0) return avemo_audio_params_set(&p->audio, key, value, name, err);
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: cannot set %s.%s (sections: pipeline face train augment audio)", name,
                      section, key);
}

struct parse_state {
    struct avemo_pipeline *p;
    const char *name;
    struct avemo_error *err;
    enum avemo_status status;
};

static int pipeline_handler(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *ps = user;
    if (ps->status) return 1;
    if (strcmp(section, "pipeline") == 0 || strcmp(section, "face") == 0 || strcmp(section, "train") == 0 ||
        strcmp(section, "augment") == 0)
        ps->status = avemo_pipeline_set(ps->p, section, key, value, ps->name, ps->err);
    return 1;
}

enum avemo_status avemo_pipeline_from_cfg(const avemo_cfg *cfg, struct avemo_pipeline *p, struct avemo_error *err)
{
    const char *name = avemo_cfg_name(cfg);
    avemo_pipeline_default(p);
    enum avemo_status st = avemo_audio_params_from_cfg(cfg, &p->audio, err);
    if (!st) st = avemo_label_map_from_cfg(cfg, &p->labels, err);
    if (st) return st;
    struct parse_state ps = {p, name, err, AVEMO_OK};
    avemo_cfg_each(cfg, pipeline_handler, &ps);
    if (ps.status) return ps.status;
    if (p->train.folds >= 3 && p->train.fold >= p->train.folds)
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: train.fold %d must be below train.folds %d", name, p->train.fold,
                          p->train.folds);
    return AVEMO_OK;
}

enum avemo_status avemo_pipeline_parse(const char *ini_text, const char *name, struct avemo_pipeline *p,
                                       struct avemo_error *err)
{
    avemo_pipeline_default(p);
    avemo_cfg *cfg;
    enum avemo_status st = avemo_cfg_parse(ini_text, AVEMO_NN_MAX_PIPELINE_BYTES, name, &cfg, err);
    if (st) return st;
    st = avemo_pipeline_from_cfg(cfg, p, err);
    avemo_cfg_free(cfg);
    return st;
}
