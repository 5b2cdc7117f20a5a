/*
 * avemo train: labelled datasets, actor-independent splits, feature caches and
 * the training loop (Adam, early stopping, reduce-on-plateau, class weights,
 * augmentation, checkpoints, CSV log, curves).
 *
 * Labels.  Every corpus label is first turned into a canonical code:
 *   ANG DIS FEA HAP NEU SAD, plus CAL (RAVDESS calm) and SUR (surprise).
 * The pipeline's [labels] section then maps codes onto the model's classes:
 *   classes = ANG DIS FEA HAP NEU SAD
 *   map     = CAL:NEU          (optional: merge a code into a class)
 *   drop    = CAL SUR          (codes dropped; any other unknown code is an error)
 */
#ifndef AVEMO_TRAIN_H
#define AVEMO_TRAIN_H

#include <avemo/core.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVEMO_LABEL_MAX 8
#define AVEMO_GROUP_MAX 48
#define AVEMO_DATASET_MAX_ITEMS 2000000
#define AVEMO_DATASET_MAX_DEPTH 8

enum avemo_corpus {
    AVEMO_CORPUS_UNKNOWN = 0,
    AVEMO_CORPUS_CREMAD,     /* AAAA_SSS_EMO_LV.{flv,wav,mp3,...}: actor AAAA */
    AVEMO_CORPUS_RAVDESS,    /* MM-VV-EE-II-SS-RR-AA.wav: actor AA */
    AVEMO_CORPUS_FOLDER,     /* [split/]emotion/file (FER2013 style): one group per file */
    AVEMO_CORPUS_MANIFEST,   /* CSV: path,label,group */
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
};

struct avemo_dataset {
    struct avemo_item *items;
    size_t count, cap;
    int num_classes;
    char classes[16][AVEMO_LABEL_MAX];
    size_t dropped;                 /* items whose label the map drops */
};

struct avemo_label_map {
    int num_classes;
    char classes[16][AVEMO_LABEL_MAX];
    int num_map;
    char map_from[16][AVEMO_LABEL_MAX], map_to[16][AVEMO_LABEL_MAX];
    int num_drop;
    char drop[16][AVEMO_LABEL_MAX];
};

/* The six CREMA-D classes, calm merged into NEU, surprise dropped. */
void avemo_label_map_default(struct avemo_label_map *map);
/* Read [labels] from a pipeline text (defaults for absent keys). */
enum avemo_status avemo_label_map_from_ini(const char *ini_text, const char *name, struct avemo_label_map *map,
                                           struct avemo_error *err);
/* Class index of a canonical code: >= 0 a class, -1 dropped, -2 unknown. */
int avemo_label_map_apply(const struct avemo_label_map *map, const char *code);

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
/* Counts per class into counts[num_classes] over items[idx[i]] (idx NULL: all items). */
void avemo_dataset_class_counts(const struct avemo_dataset *ds, const size_t *idx, size_t n, size_t *counts);

/* ---- splits ---- */
enum avemo_split_kind {
    AVEMO_SPLIT_GROUPS = 0,  /* actor-independent: groups assigned to train/val/test */
    AVEMO_SPLIT_RANDOM,      /* stratified random 70:15:15 (same actors in train and test: warns) */
    AVEMO_SPLIT_FOLDERS,     /* the corpus' own train/validation/test folders */
};

/* Part of each item: 0 train, 1 validation, 2 test, -1 unused (dropped label). */
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
/* Write / read a split file (one line per item: part path), so every model of a comparison
 * uses the same split.  Reading matches items by path. */
enum avemo_status avemo_split_save(const struct avemo_dataset *ds, const struct avemo_split *split, const char *path,
                                   struct avemo_error *err);
enum avemo_status avemo_split_load(const struct avemo_dataset *ds, const char *path, struct avemo_split *split,
                                   struct avemo_error *err);
void avemo_split_free(struct avemo_split *split);
/* Indices of the items of one part (malloc'ed). */
size_t *avemo_split_indices(const struct avemo_split *split, int part, size_t *n);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_TRAIN_H */
