/*
 * Building network inputs from extracted features: audio matrices (with
 * augmentation and dataset normalisation) and face crops; in av mode an item
 * without its own face is paired with a face image of the same label from the
 * same split part ("label-matched pairs", for corpora without paired video).
 */
#include "train/train_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int avemo_train_data_usable(const struct avemo_train_data *td, size_t i)
{
    const struct avemo_feature_set *fs = td->fs;
    if (fs->failure[i] || td->part[i] < 0) return 0;
    if (td->need_audio && !fs->has_audio[i]) return 0;
    if (td->need_face && !td->need_audio) return fs->face_count[i] > 0;
    if (td->need_face) return td->partner[i] != (size_t)-1; /* its own face or its partner's */
    return 1;
}

/* An item with sound and no picture: it needs a partner face in av mode. */
static int wants_partner(const struct avemo_item *it)
{
    return (it->kind & AVEMO_ITEM_AUDIO) && !(it->kind & (AVEMO_ITEM_VIDEO | AVEMO_ITEM_IMAGE));
}

static int can_be_partner(const struct avemo_item *it) { return it->kind == AVEMO_ITEM_IMAGE; }

enum avemo_status avemo_pair_items(const struct avemo_dataset *ds, const signed char *part, uint64_t seed,
                                   size_t *partner, struct avemo_error *err)
{
    size_t n = ds->count ? ds->count : 1, *pool = malloc(sizeof(size_t) * n);
    if (!pool) return avemo_fail(err, AVEMO_ERR_NOMEM, "pairs: out of memory");
    /* Each (part, label) pool is a run of `pool`, in item order: first[pt][c] .. + count[pt][c]. */
    size_t count[AVEMO_PART_COUNT][AVEMO_MAX_CLASSES] = {{0}}, first[AVEMO_PART_COUNT][AVEMO_MAX_CLASSES];
    for (size_t i = 0; i < ds->count; i++)
        if (part[i] >= 0 && ds->items[i].label >= 0 && can_be_partner(&ds->items[i]))
            count[(int)part[i]][ds->items[i].label]++;
    size_t at = 0;
    for (int pt = 0; pt < AVEMO_PART_COUNT; pt++)
        for (int c = 0; c < AVEMO_MAX_CLASSES; c++) {
            first[pt][c] = at;
            at += count[pt][c];
            count[pt][c] = 0;
        }
    for (size_t i = 0; i < ds->count; i++)
        if (part[i] >= 0 && ds->items[i].label >= 0 && can_be_partner(&ds->items[i])) {
            int pt = part[i], c = ds->items[i].label;
            pool[first[pt][c] + count[pt][c]++] = i;
        }
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 0xfa11);
    for (size_t i = 0; i < ds->count; i++) {
        partner[i] = (size_t)-1;
        int c = ds->items[i].label;
        if (part[i] < 0 || c < 0 || !wants_partner(&ds->items[i])) continue;
        size_t np = count[(int)part[i]][c];
        if (np) partner[i] = pool[first[(int)part[i]][c] + avemo_rng_below(&rng, (uint32_t)np)];
    }
    free(pool);
    return AVEMO_OK;
}

enum avemo_status avemo_train_data_init(struct avemo_train_data *td, const struct avemo_pipeline *p,
                                        const struct avemo_dataset *ds, const struct avemo_feature_set *fs,
                                        const signed char *part, uint64_t seed, struct avemo_error *err)
{
    td->p = p;
    td->ds = ds;
    td->fs = fs;
    td->part = part;
    td->audio_floats = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    td->face_floats = (size_t)fs->face_size * fs->face_size * fs->face_channels;
    size_t n = ds->count ? ds->count : 1;
    td->partner = malloc(sizeof(size_t) * n);
    if (!td->partner) return avemo_fail(err, AVEMO_ERR_NOMEM, "training data: out of memory");
    if (td->need_audio && td->need_face) {
        /* Pools of face-only items (images) by part and label, for random partners in training. */
        for (int pt = 0; pt < AVEMO_PART_COUNT; pt++)
            for (int c = 0; c < ds->num_classes; c++) {
                td->pool[pt][c] = malloc(sizeof(size_t) * n);
                if (!td->pool[pt][c]) return avemo_fail(err, AVEMO_ERR_NOMEM, "training data: out of memory");
            }
        for (size_t i = 0; i < ds->count; i++) {
            if (fs->failure[i] || part[i] < 0 || fs->has_audio[i] || fs->face_count[i] == 0) continue;
            int c = ds->items[i].label;
            td->pool[(int)part[i]][c][td->pool_n[(int)part[i]][c]++] = i;
        }
    }
    /* The fixed partners come from the item list alone, so that a shard of the items pairs
     * them as the whole list does; a partner image without a crop leaves its item unpaired. */
    enum avemo_status st = td->need_face ? avemo_pair_items(ds, part, seed, td->partner, err) : AVEMO_OK;
    if (st) return st;
    for (size_t i = 0; i < ds->count; i++) {
        size_t j = td->need_face ? td->partner[i] : (size_t)-1;
        if (fs->face_count[i] > 0) td->partner[i] = fs->face_first[i] + (size_t)fs->face_count[i] / 2; /* the middle frame's face */
        else if (j != (size_t)-1 && !fs->failure[j] && fs->face_count[j] > 0) td->partner[i] = fs->face_first[j];
        else td->partner[i] = (size_t)-1;
    }
    if (td->need_audio) {
        td->feat_buf = malloc(sizeof(float) * td->audio_floats);
        if (!td->feat_buf) return avemo_fail(err, AVEMO_ERR_NOMEM, "training data: out of memory");
    }
    return AVEMO_OK;
}

void avemo_train_data_free(struct avemo_train_data *td)
{
    for (int pt = 0; pt < AVEMO_PART_COUNT; pt++)
        for (int c = 0; c < AVEMO_MAX_CLASSES; c++) free(td->pool[pt][c]);
    free(td->partner);
    free(td->wave_buf);
    free(td->feat_buf);
    avemo_audio_extractor_free(td->ex);
    memset(td, 0, sizeof *td);
}

static void normalise(const struct avemo_train_data *td, float *x)
{
    if (!td->mean) return;
    int rows = td->fs->audio_rows, cols = td->fs->audio_cols;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < cols; t++) x[r * cols + t] = (x[r * cols + t] - td->mean[r]) / td->std[r];
}

/* Audio input of item i: the cached features, or features of an augmented waveform. */
static void audio_sample(struct avemo_train_data *td, size_t i, int augment, struct avemo_rng *rng, float *out)
{
    const struct avemo_feature_set *fs = td->fs;
    const struct avemo_augment *a = &td->p->augment;
    int wave_aug = augment && fs->wave && fs->wave[i] && td->ex && train_augment_uses_wave(a);
    if (wave_aug) {
        size_t need = (size_t)((double)fs->wave_len[i] / (1.0 - a->speed) + 2);
        if (need > td->wave_cap) {
            float *bigger = realloc(td->wave_buf, sizeof(float) * need);
            if (bigger) {
                td->wave_buf = bigger;
                td->wave_cap = need;
            }
        }
        if (td->wave_cap >= need) {
            size_t m = train_augment_wave(fs->wave[i], fs->wave_len[i], td->wave_buf, td->wave_cap,
                                          td->p->audio.sample_rate, a, rng);
            if (avemo_audio_compute_fixed(td->ex, td->wave_buf, m, out, (size_t)fs->audio_cols, NULL, NULL) == AVEMO_OK) {
                normalise(td, out);
                train_spec_augment(out, fs->audio_rows, fs->audio_cols, a, rng);
                return;
            }
        }
    }
    memcpy(out, fs->audio + i * td->audio_floats, sizeof(float) * td->audio_floats);
    normalise(td, out);
    if (augment) train_spec_augment(out, fs->audio_rows, fs->audio_cols, a, rng);
}

/* Face crop index for item i: a random own crop or a random same-label partner when
 * training; the fixed middle/partner crop otherwise. */
static size_t face_crop_index(const struct avemo_train_data *td, size_t i, int augment, struct avemo_rng *rng)
{
    const struct avemo_feature_set *fs = td->fs;
    if (!augment) return td->partner[i];
    if (fs->face_count[i] > 0) return fs->face_first[i] + avemo_rng_below(rng, (uint32_t)fs->face_count[i]);
    int c = td->ds->items[i].label, pt = td->part[i];
    size_t np = td->pool_n[pt][c];
    return np ? fs->face_first[td->pool[pt][c][avemo_rng_below(rng, (uint32_t)np)]] : td->partner[i];
}

void avemo_train_data_batch(struct avemo_train_data *td, const size_t *items, int n, int augment,
                            struct avemo_rng *rng, float *audio_in, float *face_in, int *labels)
{
    const struct avemo_feature_set *fs = td->fs;
    for (int b = 0; b < n; b++) {
        size_t i = items[b];
        assert(i < td->ds->count);
        labels[b] = td->ds->items[i].label;
        if (td->need_audio) audio_sample(td, i, augment, rng, audio_in + (size_t)b * td->audio_floats);
        if (td->need_face) {
            size_t crop_index = face_crop_index(td, i, augment, rng);
            assert(crop_index < fs->total_faces); /* the crop read is inside the feature set */
            const uint8_t *crop = fs->faces + crop_index * td->face_floats;
            float *out = face_in + (size_t)b * td->face_floats;
            if (augment) train_face_augment(crop, fs->face_size, fs->face_channels, out, &td->p->augment, rng);
            else avemo_model_face_input(crop, fs->face_size, fs->face_channels, out);
        }
    }
}
