/*
 * Train / validation / test splits.  Actor-independent by default: all clips of
 * one actor fall in one part, so a model is always tested on unseen speakers.
 */
#include <avemo/nn.h>
#include <avemo/train.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void shuffle_indices(size_t *idx, size_t n, struct avemo_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = avemo_rng_below(rng, (uint32_t)i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Distinct group names of the dataset, sorted (pointers into ds). */
static const char **distinct_groups(const struct avemo_dataset *ds, size_t *ngroups)
{
    const char **all = malloc(sizeof *all * (ds->count ? ds->count : 1));
    *ngroups = 0;
    if (!all) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < ds->count; i++)
        if (!ds->items[i].split[0]) all[m++] = ds->items[i].group;
    qsort(all, m, sizeof *all, cmp_str);
    size_t n = 0;
    for (size_t i = 0; i < m; i++)
        if (n == 0 || strcmp(all[n - 1], all[i]) != 0) all[n++] = all[i];
    *ngroups = n;
    return all;
}

static size_t group_index(const char **groups, size_t n, const char *g)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(groups[mid], g);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return n;
}

/* Groups dealt into folds (k >= 3) or 70:15:15 by groups. */
static enum avemo_status split_groups(const struct avemo_dataset *ds, struct avemo_split *sp, struct avemo_rng *rng,
                                      struct avemo_error *err)
{
    size_t ng = 0;
    const char **groups = distinct_groups(ds, &ng);
    size_t *order = malloc(sizeof *order * (ng ? ng : 1));
    signed char *gpart = malloc(ng ? ng : 1);
    if (!groups || !order || !gpart) {
        free(groups);
        free(order);
        free(gpart);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "split: out of memory");
    }
    enum avemo_status st = AVEMO_OK;
    int min_groups = sp->folds >= 3 ? sp->folds : 3;
    if (ng < (size_t)min_groups) {
        st = avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                        "split: %zu speaker groups cannot make an actor-independent split of %d parts "
                        "(train.split = random or all)",
                        ng, min_groups);
    } else {
        for (size_t i = 0; i < ng; i++) order[i] = i;
        shuffle_indices(order, ng, rng);
        for (size_t r = 0; r < ng; r++) {
            size_t g = order[r];
            if (sp->folds >= 3) {
                int fold = (int)(r % (size_t)sp->folds);
                gpart[g] = fold == sp->fold ? AVEMO_PART_TEST : fold == (sp->fold + 1) % sp->folds ? AVEMO_PART_VALIDATION : AVEMO_PART_TRAIN;
            } else {
                double q = (double)(r + 0.5) / (double)ng;
                gpart[g] = q < 0.70 ? AVEMO_PART_TRAIN : q < 0.85 ? AVEMO_PART_VALIDATION : AVEMO_PART_TEST;
            }
        }
        for (size_t i = 0; i < ds->count; i++)
            if (!ds->items[i].split[0]) sp->part[i] = gpart[group_index(groups, ng, ds->items[i].group)];
    }
    free(groups);
    free(order);
    free(gpart);
    return st;
}

/* Stratified random 70:15:15 within each class. */
static enum avemo_status split_random(const struct avemo_dataset *ds, struct avemo_split *sp, struct avemo_rng *rng,
                                      struct avemo_error *err)
{
    size_t *idx = malloc(sizeof *idx * (ds->count ? ds->count : 1));
    if (!idx) return avemo_fail(err, AVEMO_ERR_NOMEM, "split: out of memory");
    for (int c = 0; c < ds->num_classes; c++) {
        size_t n = 0;
        for (size_t i = 0; i < ds->count; i++)
            if (ds->items[i].label == c) idx[n++] = i;
        shuffle_indices(idx, n, rng);
        for (size_t r = 0; r < n; r++) {
            double q = (double)(r + 0.5) / (double)n;
            sp->part[idx[r]] = q < 0.70 ? AVEMO_PART_TRAIN : q < 0.85 ? AVEMO_PART_VALIDATION : AVEMO_PART_TEST;
        }
    }
    free(idx);
    return AVEMO_OK;
}

/* The corpus' folders: its test/validation folders are our test part; 10% of its
 * training folder, drawn per class, is our validation part for model selection. */
static enum avemo_status split_folders(const struct avemo_dataset *ds, struct avemo_split *sp, struct avemo_rng *rng,
                                       int others_allowed, struct avemo_error *err)
{
    size_t *idx = malloc(sizeof *idx * (ds->count ? ds->count : 1));
    if (!idx) return avemo_fail(err, AVEMO_ERR_NOMEM, "split: out of memory");
    size_t ntrain_folder = 0, ntest_folder = 0;
    for (size_t i = 0; i < ds->count; i++) {
        const char *s = ds->items[i].split;
        if (strcmp(s, "validation") == 0 || strcmp(s, "test") == 0) {
            sp->part[i] = AVEMO_PART_TEST;
            ntest_folder++;
        } else if (strcmp(s, "train") == 0) {
            ntrain_folder++;
        } else if (!others_allowed) {
            free(idx);
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: not under a train/validation/test folder (--split folders)",
                              ds->items[i].path);
        }
    }
    if (!ntrain_folder || !ntest_folder) {
        free(idx);
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "split: --split folders needs both a train and a validation/test folder");
    }
    for (int c = 0; c < ds->num_classes; c++) {
        size_t n = 0;
        for (size_t i = 0; i < ds->count; i++)
            if (ds->items[i].label == c && strcmp(ds->items[i].split, "train") == 0) idx[n++] = i;
        shuffle_indices(idx, n, rng);
        for (size_t r = 0; r < n; r++) sp->part[idx[r]] = (double)(r + 0.5) / (double)n < 0.90 ? AVEMO_PART_TRAIN : AVEMO_PART_VALIDATION;
    }
    free(idx);
    return AVEMO_OK;
}

enum avemo_status avemo_split_make(const struct avemo_dataset *ds, enum avemo_split_kind kind, int folds, int fold,
                                   uint64_t seed, struct avemo_split *split, struct avemo_error *err)
{
    memset(split, 0, sizeof *split);
    if (folds > 100 || (folds >= 3 && (fold < 0 || fold >= folds)))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "split: fold %d of %d is out of range", fold, folds);
    split->kind = kind;
    split->folds = folds;
    split->fold = fold;
    split->seed = seed;
    split->count = ds->count;
    split->part = malloc(ds->count ? ds->count : 1);
    if (!split->part) return avemo_fail(err, AVEMO_ERR_NOMEM, "split: out of memory");
    memset(split->part, -1, ds->count);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 0x5b17);
    enum avemo_status st = AVEMO_OK;
    if (kind == AVEMO_SPLIT_ALL) {
        memset(split->part, AVEMO_PART_TRAIN, ds->count);
    } else if (kind == AVEMO_SPLIT_RANDOM) {
        st = split_random(ds, split, &rng, err);
    } else if (kind == AVEMO_SPLIT_FOLDERS) {
        st = split_folders(ds, split, &rng, 0, err);
    } else {
        /* Items of a corpus with its own split folders (FER2013) keep them; the
         * others (actors) are split by group. */
        size_t with_folder = 0;
        for (size_t i = 0; i < ds->count; i++) with_folder += ds->items[i].split[0] != 0;
        /* Separate streams: the actors' folds do not depend on which other corpora are present. */
        struct avemo_rng folder_rng;
        avemo_rng_seed(&folder_rng, seed, 0xf01d);
        if (with_folder) st = split_folders(ds, split, &folder_rng, 1, err);
        if (!st && with_folder < ds->count) st = split_groups(ds, split, &rng, err);
    }
    if (st) avemo_split_free(split);
    return st;
}

enum avemo_status avemo_split_for_pipeline(const struct avemo_dataset *ds, const struct avemo_train_config *t,
                                           struct avemo_split *split, struct avemo_error *err)
{
    enum avemo_status st = avemo_split_make(ds, t->split, t->folds, t->fold, t->seed, split, err);
    if (st || t->validation) return st;
    /* No validation part: its actors (or images) train as well, and the test part stays as it
     * was, so the test set matches the same fold's split with validation. */
    for (size_t i = 0; i < split->count; i++)
        if (split->part[i] == AVEMO_PART_VALIDATION) split->part[i] = AVEMO_PART_TRAIN;
    return AVEMO_OK;
}

static const char *const part_names[AVEMO_PART_COUNT] = {"train", "validation", "test"};

enum avemo_status avemo_split_save(const struct avemo_dataset *ds, const struct avemo_split *split, const char *path,
                                   struct avemo_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "# avemo split: part path (kind %d, folds %d, fold %d, seed %llu)\n", (int)split->kind, split->folds,
            split->fold, (unsigned long long)split->seed);
    for (size_t i = 0; i < ds->count; i++)
        if (split->part[i] >= 0) fprintf(f, "%s %s\n", part_names[(int)split->part[i]], ds->items[i].path);
    if (fclose(f) != 0) return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return AVEMO_OK;
}

/* Split files name items by path; they are matched on the last two components
 * ("Actor_01/03-01-05-01-01-01-01.wav", "angry/PublicTest_1.jpg") so that a split
 * written on one machine applies to the same corpus under another folder. */
static const char *path_key(const char *path)
{
    const char *end = path + strlen(path), *p = end;
    int slashes = 0;
    while (p > path) {
        if (p[-1] == '/' && ++slashes == 2) break;
        p--;
    }
    return p;
}

static int cmp_item_path(const void *a, const void *b)
{
    return strcmp(path_key((*(const struct avemo_item *const *)a)->path),
                  path_key((*(const struct avemo_item *const *)b)->path));
}

/* The item a split line names: matched on the last two path components, and where several
 * items share those (fer/train/angry/1.png, fer/test/angry/1.png), on the whole path, else
 * refused: a test file must never be taken for a training one.  NULL (st unchanged) when the
 * data has no such file. */
static const struct avemo_item **find_item(const struct avemo_item **sorted, size_t n, const char *name,
                                           const char *path, int lineno, enum avemo_status *st, struct avemo_error *err)
{
    struct avemo_item key = {.path = (char *)name}; /* only compared */
    const struct avemo_item *kp = &key;
    const struct avemo_item **hit = bsearch(&kp, sorted, n, sizeof *sorted, cmp_item_path), **lo = hit, **hi = hit;
    if (!hit) return NULL;
    while (lo > sorted && cmp_item_path(lo - 1, &kp) == 0) lo--;
    while (hi + 1 < sorted + n && cmp_item_path(hi + 1, &kp) == 0) hi++;
    if (lo == hi) return hit;
    for (const struct avemo_item **p = lo; p <= hi; p++)
        if (strcmp((*p)->path, name) == 0) return p;
    *st = avemo_fail(err, AVEMO_ERR_MISMATCH,
                     "%s:%d: %s matches %d files of the data by its last two path components (%s, %s); "
                     "write the split with the data's full paths",
                     path, lineno, name, (int)(hi - lo + 1), (*lo)->path, (*hi)->path);
    return NULL;
}

enum avemo_status avemo_split_load(const struct avemo_dataset *ds, const char *path, struct avemo_split *split,
                                   struct avemo_error *err)
{
    memset(split, 0, sizeof *split);
    FILE *f = fopen(path, "r");
    if (!f) return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    const struct avemo_item **sorted = malloc(sizeof *sorted * (ds->count ? ds->count : 1));
    split->part = malloc(ds->count ? ds->count : 1);
    if (!sorted || !split->part) {
        fclose(f);
        free(sorted);
        avemo_split_free(split);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    }
    split->count = ds->count;
    memset(split->part, -1, ds->count);
    for (size_t i = 0; i < ds->count; i++) sorted[i] = &ds->items[i];
    qsort(sorted, ds->count, sizeof *sorted, cmp_item_path);
    char line[4200];
    int lineno = 0;
    size_t matched = 0;
    enum avemo_status st = AVEMO_OK;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        int part = -1;
        if (sp) {
            *sp = 0;
            for (int k = 0; k < 3; k++)
                if (strcmp(line, part_names[k]) == 0) part = k;
        }
        if (part < 0) {
            st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: expected 'train|validation|test PATH'", path, lineno);
            break;
        }
        const struct avemo_item **hit = find_item(sorted, ds->count, sp + 1, path, lineno, &st, err);
        if (!hit) continue;
        size_t i = (size_t)(*hit - ds->items);
        if (split->part[i] >= 0 && split->part[i] != part) {
            st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: %s was given another part on an earlier line", path, lineno,
                            sp + 1);
            break;
        }
        split->part[i] = (signed char)part;
        matched++;
    }
    fclose(f);
    free(sorted);
    if (!st && matched == 0)
        st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: no file of the split is in the dataset", path);
    if (st) avemo_split_free(split);
    return st;
}

void avemo_split_free(struct avemo_split *split)
{
    if (!split) return;
    free(split->part);
    split->part = NULL;
    split->count = 0;
}

size_t *avemo_split_indices(const struct avemo_split *split, int part, size_t *n)
{
    size_t *idx = malloc(sizeof *idx * (split->count ? split->count : 1));
    *n = 0;
    if (!idx) return NULL;
    for (size_t i = 0; i < split->count; i++)
        if (split->part[i] == part) idx[(*n)++] = i;
    return idx;
}

enum avemo_status avemo_split_leave_out(const struct avemo_dataset *ds, struct avemo_split *split, int source,
                                        struct avemo_error *err)
{
    if (source < 0 || source >= ds->nsources)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "split: no data %d to leave out (%d given)", source, ds->nsources);
    size_t left_out = 0, kept = 0;
    for (size_t i = 0; i < split->count && i < ds->count; i++) {
        if (split->part[i] < 0) continue; /* a dropped label stays out */
        if (ds->items[i].source == source) {
            split->part[i] = AVEMO_PART_TEST;
            left_out++;
        } else {
            /* The other corpora's own test part trains: only the corpus left out tests. */
            if (split->part[i] == AVEMO_PART_TEST) split->part[i] = AVEMO_PART_TRAIN;
            kept++;
        }
    }
    if (!left_out || !kept)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "split: leaving out %s leaves %s", ds->source_path[source],
                          left_out ? "nothing to train on" : "nothing to test on");
    return AVEMO_OK;
}
