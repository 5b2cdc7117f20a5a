/* Audio feature parameters: defaults, validation and the [audio] section of a pipeline INI file. */
#include <avemo/audio.h>

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void avemo_audio_params_default(struct avemo_audio_params *p)
{
    memset(p, 0, sizeof *p);
    p->sample_rate = 22050;
    p->n_fft = 2048;
    p->hop = 512;
    p->n_mels = 128;
    p->n_mfcc = 40;
    p->fmin = 0.0;
    p->fmax = 0.0;
    p->band_limit = 0.0;
    p->mel_scale = AVEMO_MEL_SLANEY;
    p->mel_norm = AVEMO_MEL_NORM_SLANEY;
    p->feature = AVEMO_AUDIO_MFCC;
    p->power = 2;
    p->db_ref = AVEMO_DB_REF_ONE;
    p->amin = 1e-10;
    p->top_db = 80.0;
    p->frames = 128;
    p->crop = AVEMO_CROP_START;
    p->norm = AVEMO_NORM_NONE;
    p->loudness = AVEMO_LOUDNESS_NONE;
    p->loudness_db = -20.0;
    p->max_gain_db = 40.0;
    p->trim_db = 0.0;
    p->deltas = 0;
}

/* Names of enum values as they appear in INI files; index = enum value. */
static const char *const feature_names[] = {"mfcc", "logmel", "mel", "spectrogram", NULL};
static const char *const mel_scale_names[] = {"slaney", "htk", NULL};
static const char *const mel_norm_names[] = {"slaney", "none", NULL};
static const char *const db_ref_names[] = {"one", "max", NULL};
static const char *const crop_names[] = {"start", "centre", "energy", "centroid", NULL};
static const char *const norm_names[] = {"none", "utterance", "dataset", NULL};
static const char *const loudness_names[] = {"none", "rms", NULL};
static const char *const pad_names[] = {"end", "centre", NULL};

const char *avemo_audio_feature_name(enum avemo_audio_feature feature)
{
    return (unsigned)feature < 4 ? feature_names[feature] : "?";
}

const char *avemo_crop_name(enum avemo_crop crop)
{
    return (unsigned)crop <= AVEMO_CROP_CENTROID ? crop_names[crop] : "?";
}

int avemo_audio_params_feature_count(const struct avemo_audio_params *p)
{
    return avemo_audio_params_base_count(p) * avemo_audio_params_channels(p);
}

int avemo_audio_params_channels(const struct avemo_audio_params *p) { return 1 + p->deltas; }

int avemo_audio_params_base_count(const struct avemo_audio_params *p)
{
    switch (p->feature) {
    case AVEMO_AUDIO_MFCC: return p->n_mfcc;
    case AVEMO_AUDIO_LOGMEL:
    case AVEMO_AUDIO_MEL: return p->n_mels;
    case AVEMO_AUDIO_SPECTROGRAM: return p->n_fft / 2 + 1;
    }
    return 0;
}

static int int_in_range(int v, int lo, int hi) { return v >= lo && v <= hi; }

enum avemo_status avemo_audio_params_validate(const struct avemo_audio_params *p, const char *name,
                                              struct avemo_error *err)
{
    if (!p) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no audio parameters", name);
    if (!int_in_range(p->sample_rate, AVEMO_AUDIO_MIN_SAMPLE_RATE, AVEMO_AUDIO_MAX_SAMPLE_RATE))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] sample_rate %d is outside %d..%d", name,
                          p->sample_rate, AVEMO_AUDIO_MIN_SAMPLE_RATE, AVEMO_AUDIO_MAX_SAMPLE_RATE);
    if (!int_in_range(p->n_fft, AVEMO_AUDIO_MIN_N_FFT, AVEMO_AUDIO_MAX_N_FFT))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] n_fft %d is outside %d..%d", name, p->n_fft,
                          AVEMO_AUDIO_MIN_N_FFT, AVEMO_AUDIO_MAX_N_FFT);
    if (!int_in_range(p->hop, 1, AVEMO_AUDIO_MAX_HOP))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] hop %d is outside 1..%d", name, p->hop,
                          AVEMO_AUDIO_MAX_HOP);
    if (!int_in_range(p->n_mels, 1, AVEMO_AUDIO_MAX_N_MELS))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] n_mels %d is outside 1..%d", name, p->n_mels,
                          AVEMO_AUDIO_MAX_N_MELS);
    if (!int_in_range(p->n_mfcc, 1, p->n_mels))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] n_mfcc %d is outside 1..n_mels (%d)", name,
                          p->n_mfcc, p->n_mels);
    double nyquist = p->sample_rate / 2.0;
    if (!(p->fmin >= 0.0 && p->fmin < nyquist))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] fmin %g must be in [0, sample_rate/2 = %g)", name,
                          p->fmin, nyquist);
    if (!(p->fmax == 0.0 || (p->fmax > p->fmin && p->fmax <= nyquist)))
        return avemo_fail(err, AVEMO_ERR_CONFIG,
                          "%s: [audio] fmax %g must be 0 (sample_rate/2) or in (fmin, sample_rate/2 = %g]", name,
                          p->fmax, nyquist);
    if (!(p->band_limit == 0.0 || (p->band_limit > p->fmin && p->band_limit <= nyquist)))
        return avemo_fail(err, AVEMO_ERR_CONFIG,
                          "%s: [audio] band_limit %g must be 0 (none) or in (fmin, sample_rate/2 = %g]", name,
                          p->band_limit, nyquist);
    if (p->band_limit > 0.0 && p->feature == AVEMO_AUDIO_SPECTROGRAM)
        return avemo_fail(err, AVEMO_ERR_CONFIG,
                          "%s: [audio] band_limit acts on the mel bands: feature = spectrogram has none", name);
    if ((unsigned)p->mel_scale > AVEMO_MEL_HTK || (unsigned)p->mel_norm > AVEMO_MEL_NORM_NONE ||
        (unsigned)p->feature > AVEMO_AUDIO_SPECTROGRAM || (unsigned)p->db_ref > AVEMO_DB_REF_MAX ||
        (unsigned)p->crop > AVEMO_CROP_CENTROID || (unsigned)p->norm > AVEMO_NORM_DATASET ||
        (unsigned)p->loudness > AVEMO_LOUDNESS_RMS || (unsigned)p->pad > AVEMO_PAD_CENTRE)
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] an enumerated setting has an invalid value", name);
    if (p->power != 1 && p->power != 2)
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] power %d must be 1 (magnitude) or 2 (power)", name,
                          p->power);
    if (!(p->amin >= 1e-30 && p->amin <= 1.0))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] amin %g is outside 1e-30..1", name, p->amin);
    if (!(p->top_db >= 0.0 && p->top_db <= 1000.0))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] top_db %g is outside 0..1000 (0: no clipping)", name,
                          p->top_db);
    if (!(p->loudness_db >= -100.0 && p->loudness_db <= 0.0))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] loudness_db %g is outside -100..0 dBFS", name,
                          p->loudness_db);
    if (!(p->max_gain_db >= 0.0 && p->max_gain_db <= 100.0))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] max_gain_db %g is outside 0..100", name,
                          p->max_gain_db);
    if (!(p->trim_db >= 0.0 && p->trim_db <= 200.0))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] trim_db %g is outside 0..200 (0: no trimming)", name,
                          p->trim_db);
    if (!int_in_range(p->deltas, 0, 2))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] deltas %d is outside 0..2 (0: none, 1: delta, 2: and delta-delta)",
                          name, p->deltas);
    if (!int_in_range(p->frames, 0, AVEMO_AUDIO_MAX_FRAMES))
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [audio] frames %d is outside 0..%d (0: all)", name,
                          p->frames, AVEMO_AUDIO_MAX_FRAMES);
    return AVEMO_OK;
}

/* Strict number parsing, core's one parser: the whole value must be the number (the ranges
 * are checked by validate, with their own message). */
static int parse_int(const char *s, int *out) { return avemo_parse_int(s, -2147483647, 2147483647, out) == AVEMO_OK; }

static int parse_double(const char *s, double *out) { return avemo_parse_double(s, -DBL_MAX, DBL_MAX, out) == AVEMO_OK; }

static int parse_choice(const char *s, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

/* "start|centre|energy" for messages. */
static void join_names(const char *const *names, char *buf, size_t size)
{
    buf[0] = 0;
    for (int i = 0; names[i]; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i ? "|" : "", names[i]);
    }
}

enum key_kind { KEY_INT, KEY_DOUBLE, KEY_CHOICE };

struct key_spec {
    const char *key;
    enum key_kind kind;
    size_t offset;                /* of the field in struct avemo_audio_params */
    const char *const *choices;   /* KEY_CHOICE only */
};

#define FIELD(f) offsetof(struct avemo_audio_params, f)
static const struct key_spec keys[] = {
    {"sample_rate", KEY_INT, FIELD(sample_rate), NULL},
    {"n_fft", KEY_INT, FIELD(n_fft), NULL},
    {"hop", KEY_INT, FIELD(hop), NULL},
    {"n_mels", KEY_INT, FIELD(n_mels), NULL},
    {"n_mfcc", KEY_INT, FIELD(n_mfcc), NULL},
    {"fmin", KEY_DOUBLE, FIELD(fmin), NULL},
    {"fmax", KEY_DOUBLE, FIELD(fmax), NULL},
    {"band_limit", KEY_DOUBLE, FIELD(band_limit), NULL},
    {"mel_scale", KEY_CHOICE, FIELD(mel_scale), mel_scale_names},
    {"mel_norm", KEY_CHOICE, FIELD(mel_norm), mel_norm_names},
    {"feature", KEY_CHOICE, FIELD(feature), feature_names},
    {"power", KEY_INT, FIELD(power), NULL},
    {"db_ref", KEY_CHOICE, FIELD(db_ref), db_ref_names},
    {"amin", KEY_DOUBLE, FIELD(amin), NULL},
    {"top_db", KEY_DOUBLE, FIELD(top_db), NULL},
    {"frames", KEY_INT, FIELD(frames), NULL},
    {"crop", KEY_CHOICE, FIELD(crop), crop_names},
    {"norm", KEY_CHOICE, FIELD(norm), norm_names},
    {"loudness", KEY_CHOICE, FIELD(loudness), loudness_names},
    {"loudness_db", KEY_DOUBLE, FIELD(loudness_db), NULL},
    {"max_gain_db", KEY_DOUBLE, FIELD(max_gain_db), NULL},
    {"trim_db", KEY_DOUBLE, FIELD(trim_db), NULL},
    {"deltas", KEY_INT, FIELD(deltas), NULL},
    {"pad", KEY_CHOICE, FIELD(pad), pad_names},
};
#undef FIELD

/* Set one key; messages start with `where` ("file: " or "file: line 3: "). */
static enum avemo_status set_key(struct avemo_audio_params *p, const char *key, const char *value, const char *where,
                                 struct avemo_error *err)
{
    const struct key_spec *spec = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].key, key) == 0) spec = &keys[i];
    if (!spec) {
        char known[360] = "";
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            size_t len = strlen(known);
            snprintf(known + len, sizeof known - len, "%s%s", i ? " " : "", keys[i].key);
        }
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s[audio] unknown key '%s' (known: %s)", where, key, known);
    }
    char *field = (char *)p + spec->offset;
    int ok = 0;
    if (spec->kind == KEY_INT) {
        /* "frames=all" is the readable spelling of frames=0. */
        if (strcmp(key, "frames") == 0 && strcmp(value, "all") == 0) {
            *(int *)(void *)field = 0;
            ok = 1;
        } else {
            ok = parse_int(value, (int *)(void *)field);
        }
        if (!ok)
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s[audio] %s = '%s' is not an integer%s", where, key, value,
                              strcmp(key, "frames") == 0 ? " or 'all'" : "");
    } else if (spec->kind == KEY_DOUBLE) {
        /* "top_db=none" disables the clipping, as top_db=None does in librosa. */
        if (strcmp(key, "top_db") == 0 && strcmp(value, "none") == 0) {
            *(double *)(void *)field = 0.0;
            ok = 1;
        } else {
            ok = parse_double(value, (double *)(void *)field);
        }
        if (!ok)
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s[audio] %s = '%s' is not a number", where, key, value);
    } else {
        int choice;
        /* The American spelling is accepted too. */
        const char *v = strcmp(value, "center") == 0 ? "centre" : value;
        if (!parse_choice(v, spec->choices, &choice)) {
            char allowed[128];
            join_names(spec->choices, allowed, sizeof allowed);
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s[audio] %s = '%s' is not one of %s", where, key, value,
                              allowed);
        }
        /* Every enum field is an int-sized enum. */
        *(int *)(void *)field = choice;
    }
    return AVEMO_OK;
}

enum avemo_status avemo_audio_params_set(struct avemo_audio_params *p, const char *key, const char *value,
                                         const char *name, struct avemo_error *err)
{
    char where[256];
    snprintf(where, sizeof where, "%s: ", name ? name : "audio parameters");
    return set_key(p, key, value, where, err);
}

struct ini_state {
    struct avemo_audio_params *params;
    struct avemo_error *err;
    enum avemo_status status; /* first failure */
};

static int on_ini_key(void *user, const char *section, const char *key, const char *value)
{
    struct ini_state *st = user;
    if (strcmp(section, "audio") != 0) return 1;
    if (st->status != AVEMO_OK) return 1; /* keep the first message */
    if (!key) return 1;                   /* a bare section header (inih with INI_CALL_HANDLER_ON_NEW_SECTION) */
    st->status = set_key(st->params, key, value ? value : "", "", st->err);
    return st->status == AVEMO_OK;
}

enum avemo_status avemo_audio_params_from_cfg(const avemo_cfg *cfg, struct avemo_audio_params *params,
                                              struct avemo_error *err)
{
    const char *name = avemo_cfg_name(cfg);
    struct avemo_audio_params parsed;
    avemo_audio_params_default(&parsed);
    struct avemo_error key_err = {0};
    struct ini_state st = {&parsed, &key_err, AVEMO_OK};
    int line = avemo_cfg_each(cfg, on_ini_key, &st);
    if (st.status != AVEMO_OK) /* the line of the first failing key */
        return avemo_fail(err, st.status, "%s: line %d: %s", name, line, key_err.message);
    enum avemo_status s = avemo_audio_params_validate(&parsed, name, err);
    if (s != AVEMO_OK) return s;
    *params = parsed;
    return AVEMO_OK;
}

enum avemo_status avemo_audio_params_from_ini(const char *ini_text, const char *name,
                                              struct avemo_audio_params *params, struct avemo_error *err)
{
    if (!name) name = "pipeline";
    if (!ini_text || !params) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no INI text or parameters", name);
    avemo_cfg *cfg;
    enum avemo_status st = avemo_cfg_parse(ini_text, strlen(ini_text), name, &cfg, err);
    if (st) return st;
    st = avemo_audio_params_from_cfg(cfg, params, err);
    avemo_cfg_free(cfg);
    return st;
}
