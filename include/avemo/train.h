/*
 * avemo train: labelled datasets, actor-independent splits, feature caches and
 * the training loop (Adam, early stopping, reduce-on-plateau, class weights,
 * augmentation, checkpoints, CSV log, curves).
 *
 * Labels.  Every corpus label is first turned into a canonical code:
 *   ANG DIS FEA HAP NEU SAD, plus CAL (RAVDESS calm), SUR (surprise), CON (CK+ contempt) and
 *   BOR (EmoDB boredom).
 * The pipeline's [labels] section then maps codes onto the model's classes:
 *   classes = ANG DIS FEA HAP NEU SAD
 *   map     = CAL:NEU          (optional: merge a code into a class)
 *   drop    = CAL SUR          (codes dropped; any other unknown code is an error, except
 *                               SUR CON BOR, which have no six-class counterpart: a map that
 *                               neither keeps nor maps them drops them, counted per code)
 */
#ifndef AVEMO_TRAIN_H
#define AVEMO_TRAIN_H

#include <avemo/audio.h>
#include <avemo/core.h>
#include <avemo/model.h>
#include <avemo/vision.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVEMO_GROUP_MAX 48
#define AVEMO_DATASET_MAX_ITEMS 2000000
#define AVEMO_DATASET_MAX_DEPTH 8

enum avemo_corpus {
    AVEMO_CORPUS_UNKNOWN = 0,
    AVEMO_CORPUS_CREMAD,     /* AAAA_SSS_EMO_LV.{flv,wav,mp3,...}: actor AAAA */
    AVEMO_CORPUS_RAVDESS,    /* MM-VV-EE-II-SS-RR-AA.wav: actor AA */
    AVEMO_CORPUS_FOLDER,     /* [split/]emotion/file (FER2013 style): one group per file */
    AVEMO_CORPUS_MANIFEST,   /* CSV: path,label,group */
    AVEMO_CORPUS_EMODB,      /* SSTTTEV.wav (03a01Fa.wav): speaker SS, text TTT, emotion letter E */
    AVEMO_CORPUS_CKPLUS,     /* emotion/S005_001_00000009.png: subject S005 */
    AVEMO_CORPUS_FER2013,    /* split/emotion/Training_1.jpg (FER2013's usage prefixes): one group per file */
};
const char *avemo_corpus_name(enum avemo_corpus corpus);

/* What the network input of an item is made from. */
enum avemo_item_kind { AVEMO_ITEM_AUDIO = 1, AVEMO_ITEM_VIDEO = 2, AVEMO_ITEM_IMAGE = 4 };

struct avemo_item {
    char *path;
    char code[AVEMO_LABEL_MAX];     /* canonical corpus label, e.g. "ANG" or "CAL" */
    int label;                      /* class index after the label map, -1 when dropped */
    char group[AVEMO_GROUP_MAX];    /* speaker/actor ("ravdess:01"), or the file for face folders */
    char split[16];                 /* folder split ("train", "validation", "test") or "" */
    enum avemo_corpus corpus;
    int kind;                       /* enum avemo_item_kind bits the file can give */
    int source;                     /* index of the avemo_dataset_add call (the --data) it came from */
};

#define AVEMO_DATASET_MAX_SOURCES 32

struct avemo_dataset {
    struct avemo_item *items;
    size_t count, cap;
    int num_classes;
    char classes[AVEMO_MAX_CLASSES][AVEMO_LABEL_MAX];
    size_t dropped;                 /* items whose label the map drops */
    int nsources;                   /* avemo_dataset_add calls so far */
    char source_path[AVEMO_DATASET_MAX_SOURCES][256]; /* each one's path, as given (cut at 255) */
    int ndrop_codes;                /* dropped items per code, e.g. 45 BOR */
    char drop_code[16][AVEMO_LABEL_MAX];
    size_t drop_count[16];
};

/* Canonical code of a corpus label ("angry", "ANG", "05" for RAVDESS, ...); NULL if unknown. */
const char *avemo_label_canonical(enum avemo_corpus corpus, const char *label);

/* Recognise one file name; fills code, group, corpus, kind.  AVEMO_ERR_UNSUPPORTED when the name
 * follows no known convention. */
enum avemo_status avemo_item_from_path(const char *path, struct avemo_item *item, struct avemo_error *err);

/* Add every labelled media file under `path` (a folder searched recursively, or a .csv manifest)
 * to ds, with labels mapped by map.  Files with no known naming convention are listed in the
 * error when nothing was found; an empty folder is AVEMO_ERR_EMPTY; an unknown label is
 * AVEMO_ERR_CONFIG naming the file. */
enum avemo_status avemo_dataset_add(struct avemo_dataset *ds, const char *path, const struct avemo_label_map *map,
                                    struct avemo_error *err);
void avemo_dataset_free(struct avemo_dataset *ds);
/* "45 BOR, 39 CON" (the dropped items per code) into buf; "" when nothing was dropped. */
void avemo_dataset_dropped_text(const struct avemo_dataset *ds, char *buf, size_t size);
/* The corpus most items of source s are from (AVEMO_CORPUS_UNKNOWN when it has none). */
enum avemo_corpus avemo_dataset_source_corpus(const struct avemo_dataset *ds, int s);
/* Counts per class into counts[num_classes] over items[idx[i]] (idx NULL: all items). */
void avemo_dataset_class_counts(const struct avemo_dataset *ds, const size_t *idx, size_t n, size_t *counts);

/* ---- splits ---- */
/* The part of a split an item belongs to (-1: unused, e.g. a dropped label). */
enum avemo_split_part { AVEMO_PART_TRAIN = 0, AVEMO_PART_VALIDATION = 1, AVEMO_PART_TEST = 2, AVEMO_PART_COUNT = 3 };

/* Part of each item: enum avemo_split_part, -1 unused (dropped label). */
struct avemo_split {
    enum avemo_split_kind kind;
    int folds, fold;          /* GROUPS k-fold: test = fold `fold`, validation = the next fold */
    uint64_t seed;
    size_t count;
    signed char *part;
};

/* Make a split.  GROUPS with folds >= 3: groups are dealt round-robin in a seeded order into
 * folds; folds < 3 means 70:15:15 by groups. */
enum avemo_status avemo_split_make(const struct avemo_dataset *ds, enum avemo_split_kind kind, int folds, int fold,
                                   uint64_t seed, struct avemo_split *split, struct avemo_error *err);
struct avemo_train_config;
/* The split a pipeline's [train] section asks for (split, folds, fold, seed, validation). */
enum avemo_status avemo_split_for_pipeline(const struct avemo_dataset *ds, const struct avemo_train_config *t,
                                           struct avemo_split *split, struct avemo_error *err);
/* Write / read a split file (one line per item: part path), so every model of a comparison
 * uses the same split.  Reading matches items by path. */
enum avemo_status avemo_split_save(const struct avemo_dataset *ds, const struct avemo_split *split, const char *path,
                                   struct avemo_error *err);
enum avemo_status avemo_split_load(const struct avemo_dataset *ds, const char *path, struct avemo_split *split,
                                   struct avemo_error *err);
/* Leave one corpus out: every item of the `source`-th avemo_dataset_add (one --data) becomes
 * the test part; the other items keep their train or validation part and their test part
 * trains, so a model trained on the split has never seen the corpus it is tested on. */
enum avemo_status avemo_split_leave_out(const struct avemo_dataset *ds, struct avemo_split *split, int source,
                                        struct avemo_error *err);
void avemo_split_free(struct avemo_split *split);
/* Indices of the items of one part (malloc'ed). */
size_t *avemo_split_indices(const struct avemo_split *split, int part, size_t *n);

/* ---- features of a dataset, extracted once (cached) ---- */

/* The version of the features avemo extracts (audio feature matrices, waveforms, face crops),
 * written into every feature cache: a cache of another version is not trusted and its items are
 * extracted again.  Bump it when extracted features change, i.e. when the same file and pipeline
 * give other numbers (decoding, resampling, MFCC or log-mel, loudness, face detection or
 * cropping); the pipeline parameters are keyed separately.  Caches from before it count as 0. */
#define AVEMO_FEATURE_VERSION 1u

struct avemo_feature_set {
    size_t count;              /* = dataset items */
    int audio_rows, audio_cols;/* feature matrix of one item (e.g. 40 x 128) */
    float *audio;              /* count x rows x cols, clean features (NULL when not extracted) */
    float **wave;              /* per item waveform at the pipeline's rate, for waveform augmentation */
    size_t *wave_len;
    int face_size, face_channels;
    uint8_t *faces;            /* all crops, size x size x channels each (HWC) */
    size_t *face_first;        /* index of the item's first crop */
    int *face_count;           /* crops of the item (0: none) */
    size_t total_faces;
    signed char *has_audio;    /* 1: the item has audio features */
    char **failure;            /* NULL, or why the item could not be used */
    size_t failed;
    size_t from_cache;         /* items read from the cache file */
};

struct avemo_extract_options {
    int need_audio, need_faces, keep_wave;
    int threads;               /* 0: all cores */
    const char *cache_path;    /* NULL: no cache */
    int progress;              /* 1: progress bar on stderr */
    const unsigned char *only; /* NULL, or 1 per item to extract: the others are left empty
                                * (no sound, no face, no failure); the cache is then only
                                * written when there is none yet, and without them */
};

/* Extract what the pipeline needs from every item: audio features (and waveforms)
 * of items with sound, face crops of videos (detected) and images (used as they
 * are).  Items that fail are recorded with their reason, never silently. */
enum avemo_status avemo_features_extract(const struct avemo_pipeline *p, const struct avemo_dataset *ds,
                                         const struct avemo_extract_options *opt, struct avemo_feature_set *fs,
                                         struct avemo_error *err);
void avemo_features_free(struct avemo_feature_set *fs);

/* ---- batches: what the network sees for a set of items (training and evaluation) ---- */
struct avemo_train_data {
    const struct avemo_pipeline *p;
    const struct avemo_dataset *ds;
    const struct avemo_feature_set *fs;
    int need_audio, need_face;
    int audio_input, face_input;     /* net input indices, -1 when unused */
    const signed char *part;         /* split part of each item */
    /* av mode without own faces: images of the same label and part ("label-matched pairs") */
    size_t *pool[AVEMO_PART_COUNT][AVEMO_MAX_CLASSES];
    size_t pool_n[AVEMO_PART_COUNT][AVEMO_MAX_CLASSES];
    size_t *partner;                 /* fixed partner crop index for evaluation, per item */
    const float *mean, *std;         /* dataset normalisation of the audio features, or NULL */
    avemo_audio_extractor *ex;       /* for waveform augmentation */
    float *wave_buf;
    size_t wave_cap;
    float *feat_buf;                 /* one item's full features */
    size_t audio_floats, face_floats;/* per sample */
};

/* Set up pools and fixed partners once the split is known; returns how many items are usable
 * (listed in *usable) and reports the others' reasons into skipped (count). */
enum avemo_status avemo_train_data_init(struct avemo_train_data *td, const struct avemo_pipeline *p,
                                        const struct avemo_dataset *ds, const struct avemo_feature_set *fs,
                                        const signed char *part, uint64_t seed, struct avemo_error *err);
void avemo_train_data_free(struct avemo_train_data *td);
/* Label-matched pairs from the item list alone (no file is read): partner[i] (ds->count entries)
 * is, for each item with sound and no picture (an audio file) in a part >= 0, an image item of
 * its label and part drawn with seed in item order; (size_t)-1 for the others and when there is
 * no such image.  A pure function of the list, so any shard of it can be paired as the whole. */
enum avemo_status avemo_pair_items(const struct avemo_dataset *ds, const signed char *part, uint64_t seed,
                                   size_t *partner, struct avemo_error *err);
/* 1 when item i can be a sample (has what the mode needs). */
int avemo_train_data_usable(const struct avemo_train_data *td, size_t i);
/* Fill the inputs and labels of n items; augment = 1 for training batches. */
void avemo_train_data_batch(struct avemo_train_data *td, const size_t *items, int n, int augment,
                            struct avemo_rng *rng, float *audio_in, float *face_in, int *labels);

/* ---- training ---- */
struct avemo_train_options {
    const char *pipeline_path;
    const char *const *data;   /* folders or manifests */
    int ndata;
    const char *out_path;      /* the model file (.avm) */
    const char *split_in;      /* read this split file instead of making one */
    const char *split_out;     /* write the split used here */
    const char *const *init;   /* "MODEL.avm[:prefix,...]": start from these models' layers (transfer
                                * learning), all of them or those whose names start with a prefix */
    int ninit;
    const char *freeze;        /* layer prefixes not trained ("audio.,face.") */
    const char *teacher;       /* distillation: a model (or ensemble) whose probabilities the loss
                                * also learns, with weight train.distill; NULL: none */
    int resume;                /* continue from out_path's checkpoint (out_path + ".ckpt") */
    const char *log_csv;       /* per-epoch log (default out_path + ".csv") */
    const char *plot_png;      /* loss/accuracy curves (default out_path + ".png") */
    const char *cache_path;    /* feature cache file (NULL: none) */
    const char *const *overrides; /* "section.key=value" */
    int noverrides;
    int progress;              /* progress output on stderr */
    int quiet;                 /* no per-epoch lines */
};

struct avemo_train_result {
    int epochs_run, best_epoch;
    int swa_epochs;           /* > 0: the model is the average of the last swa_epochs epochs */
    double best_val_loss, best_val_acc;
    double train_acc;          /* of the best model on the training part (eval mode) */
    int has_test;
    double test_acc, test_uar;
    size_t n_train, n_val, n_test, skipped;
    size_t recorded[2];        /* training and validation files in the model's training record */
    double seconds;
};

enum avemo_status avemo_train_run(const struct avemo_train_options *opt, struct avemo_train_result *res,
                                  struct avemo_error *err);

/* ---- the training record of a model (avemo_net_set_record, nn.h) ----
 * avemo_train_run records the files of the training and validation parts, and the records of
 * the --init models.  For a model trained without one (an older avemo): */

/* The record of the items of parts 0 and 1 (hashing every such file), malloc'ed. */
enum avemo_status avemo_record_from_split(const struct avemo_dataset *ds, const signed char *part,
                                          struct avemo_record_entry **out, size_t *n, struct avemo_error *err);
/* Add the record of the model file at path to (*e, *n), one entry per content. */
enum avemo_status avemo_record_merge_model(const char *path, struct avemo_record_entry **e, size_t *n,
                                           struct avemo_error *err);
void avemo_record_free(struct avemo_record_entry *entries, size_t n);
/* Give the model file at model_path the record of the data it was trained on: the training
 * and validation files of the split file (NULL: the split its stored pipeline makes of the
 * data, as `avemo train` without --split did), plus the records of the models it started
 * from (from_models, its --init).  Every training and validation file of the split file must
 * be in the data.  The file is rewritten in the current format; counts[0] training and
 * counts[1] validation files.  (`avemo split MODEL.avm --record ...`) */
enum avemo_status avemo_record_attach(const char *model_path, const char *const *data, int ndata,
                                      const char *split_path, const char *const *from_models, int nfrom,
                                      size_t counts[2], struct avemo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_TRAIN_H */
