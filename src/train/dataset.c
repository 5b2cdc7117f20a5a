/*
 * Datasets: labelled media files found under a folder (CREMA-D, RAVDESS and EmoDB
 * file names, emotion-named folders as FER2013's and CK+'s) or listed in a CSV manifest.
 */
#include <avemo/train.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *const audio_exts[] = {"wav", "mp3", "ogg", "flac", "m4a", "aac", "opus", NULL};
static const char *const video_exts[] = {"flv", "mp4", "mkv", "webm", "avi", "mov", NULL};
/* Still images (decoded by libjpeg, or by FFmpeg as one picture): never taken for clips. */
static const char *const image_exts[] = {"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pnm", NULL};
static const char *const split_names[] = {"train", "training", "validation", "val", "valid", "test", NULL};

/* Copy src into dst of size n, cut when too long (names in messages only). */
static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) len = n - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
}

static int ext_in(const char *ext, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcasecmp(ext, list[i]) == 0) return 1;
    return 0;
}

/* Kind bits a file can give, from its extension; 0 when it is not media. */
static int kind_of_extension(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    const char *ext = dot + 1;
    if (ext_in(ext, audio_exts)) return AVEMO_ITEM_AUDIO;
    if (ext_in(ext, video_exts)) return AVEMO_ITEM_AUDIO | AVEMO_ITEM_VIDEO;
    if (ext_in(ext, image_exts)) return AVEMO_ITEM_IMAGE;
    return 0;
}

/* The last path component without directory, and the one before it (may be empty). */
static void path_parts(const char *path, char *base, size_t nbase, char *parent, size_t nparent, char *grand,
                       size_t ngrand)
{
    const char *end = path + strlen(path);
    const char *comp[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    const char *p = end;
    for (int k = 0; k < 3; k++) {
        const char *stop = p;
        while (p > path && p[-1] != '/') p--;
        comp[k] = p;
        len[k] = (size_t)(stop - p);
        if (p == path) break;
        p--; /* skip the slash */
        while (p > path && p[-1] == '/') p--;
    }
    snprintf(base, nbase, "%.*s", (int)len[0], comp[0] ? comp[0] : "");
    snprintf(parent, nparent, "%.*s", (int)len[1], comp[1] ? comp[1] : "");
    snprintf(grand, ngrand, "%.*s", (int)len[2], comp[2] ? comp[2] : "");
}

static int all_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static int all_upper(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isupper((unsigned char)s[i])) return 0;
    return 1;
}

/* AAAA_SSS_EEE_LL.ext */
/* A file name's emotion code and speaker, decoded by one of the parsers below: 1 when the
 * corpus knows the code, else 0 and the name is not this corpus'. */
static int set_named_item(struct avemo_item *item, enum avemo_corpus corpus, const char *emo, const char *group_prefix,
                          const char *speaker, int speaker_len)
{
    const char *code = avemo_label_canonical(corpus, emo);
    if (!code) return 0;
    snprintf(item->code, sizeof item->code, "%s", code);
    snprintf(item->group, sizeof item->group, "%s:%.*s", group_prefix, speaker_len, speaker);
    item->corpus = corpus;
    return 1;
}

static int parse_cremad(const char *base, struct avemo_item *item)
{
    if (strlen(base) < 16 || base[15] != '.' || base[4] != '_' || base[8] != '_' || base[12] != '_') return 0;
    if (!all_digits(base, 4) || !all_upper(base + 5, 3) || !all_upper(base + 9, 3) || !all_upper(base + 13, 2))
        return 0;
    char emo[4] = {base[9], base[10], base[11], 0};
    return set_named_item(item, AVEMO_CORPUS_CREMAD, emo, "cremad", base, 4);
}

/* MM-VV-EE-II-SS-RR-AA.ext */
static int parse_ravdess(const char *base, struct avemo_item *item)
{
    if (strlen(base) < 21 || base[20] != '.') return 0;
    for (int f = 0; f < 7; f++) {
        if (!all_digits(base + 3 * f, 2)) return 0;
        if (f < 6 && base[3 * f + 2] != '-') return 0;
    }
    char emo[3] = {base[6], base[7], 0};
    if (!set_named_item(item, AVEMO_CORPUS_RAVDESS, emo, "ravdess", base + 18, 2)) return 0;
    /* Modality 02 is video without sound. */
    if (base[1] == '2') item->kind &= ~AVEMO_ITEM_AUDIO;
    return 1;
}

/* EmoDB: SSTTTEV.ext, e.g. 03a01Fa.wav = speaker 03, text a01, emotion F (Freude), version a. */
static int parse_emodb(const char *base, struct avemo_item *item)
{
    if (strlen(base) < 8 || base[7] != '.' || !all_digits(base, 2) || !islower((unsigned char)base[2]) ||
        !all_digits(base + 3, 2) || !isupper((unsigned char)base[5]) || !islower((unsigned char)base[6]))
        return 0;
    char emo[2] = {base[5], 0};
    return set_named_item(item, AVEMO_CORPUS_EMODB, emo, "emodb", base, 2);
}

/* CK+ subject in a name like S005_001_00000009.png (subject, sequence, frame): the label is
 * the folder's, the group the subject, so that the near-equal frames of a sequence and the
 * other sequences of a person never fall on both sides of a split. */
static int ckplus_subject(const char *base)
{
    if (strlen(base) < 10 || base[0] != 'S' || !all_digits(base + 1, 3) || base[4] != '_' || !all_digits(base + 5, 3) ||
        base[8] != '_' || !isdigit((unsigned char)base[9]))
        return 0;
    return 1;
}

/* A corpus' own split name (folder or manifest column) as train, validation or test; NULL if unknown. */
static const char *canonical_split(const char *name)
{
    for (int i = 0; split_names[i]; i++)
        if (strcasecmp(name, split_names[i]) == 0) return i <= 1 ? "train" : i <= 4 ? "validation" : "test";
    return NULL;
}

/* split/emotion/file */
static int parse_folder(const char *path, const char *parent, const char *grand, struct avemo_item *item)
{
    const char *code = avemo_label_canonical(AVEMO_CORPUS_FOLDER, parent);
    if (!code) return 0;
    snprintf(item->code, sizeof item->code, "%s", code);
    /* No speaker is known: each file is its own group. */
    snprintf(item->group, sizeof item->group, "%.*s", AVEMO_GROUP_MAX - 1, path + (strlen(path) >= AVEMO_GROUP_MAX ? strlen(path) - (AVEMO_GROUP_MAX - 1) : 0));
    const char *canon = canonical_split(grand);
    if (canon) snprintf(item->split, sizeof item->split, "%s", canon);
    item->corpus = AVEMO_CORPUS_FOLDER;
    return 1;
}

enum avemo_status avemo_item_from_path(const char *path, struct avemo_item *item, struct avemo_error *err)
{
    memset(item, 0, sizeof *item);
    item->label = -1;
    item->kind = kind_of_extension(path);
    if (!item->kind) return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not a media file extension", path);
    char base[256], parent[128], grand[128];
    path_parts(path, base, sizeof base, parent, sizeof parent, grand, sizeof grand);
    if (parse_cremad(base, item) || parse_ravdess(base, item) || parse_emodb(base, item)) return AVEMO_OK;
    if (parse_folder(path, parent, grand, item)) {
        if (ckplus_subject(base)) {
            snprintf(item->group, sizeof item->group, "ckplus:%.4s", base);
            item->corpus = AVEMO_CORPUS_CKPLUS;
        } else if (strncmp(base, "Training_", 9) == 0 || strncmp(base, "PublicTest_", 11) == 0 ||
                   strncmp(base, "PrivateTest_", 12) == 0) {
            item->corpus = AVEMO_CORPUS_FER2013;
        }
        return AVEMO_OK;
    }
    return avemo_fail(err, AVEMO_ERR_UNSUPPORTED,
                      "%s: the name follows no known convention (CREMA-D AAAA_SSS_EMO_LV, RAVDESS "
                      "MM-VV-EE-II-SS-RR-AA, EmoDB SSTTTEV, or an emotion-named folder)",
                      path);
}

/* --- adding items ----------------------------------------------------------- */

static enum avemo_status dataset_push(struct avemo_dataset *ds, const struct avemo_item *item, const char *path,
                                      struct avemo_error *err)
{
    if (ds->count >= AVEMO_DATASET_MAX_ITEMS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %d items", path, AVEMO_DATASET_MAX_ITEMS);
    if (ds->count == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 1024;
        struct avemo_item *bigger = realloc(ds->items, cap * sizeof *bigger);
        if (!bigger) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        ds->items = bigger;
        ds->cap = cap;
    }
    struct avemo_item *it = &ds->items[ds->count];
    *it = *item;
    if (!(it->path = strdup(path))) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    ds->count++;
    return AVEMO_OK;
}

struct scan_state {
    struct avemo_dataset *ds;
    const struct avemo_label_map *map;
    int source;            /* index of this avemo_dataset_add call */
    size_t media_seen;     /* media files met */
    size_t unlabelled;     /* media files with no convention */
    char first_unlabelled[256];
};

static void count_dropped(struct avemo_dataset *ds, const char *code)
{
    ds->dropped++;
    int k = 0;
    while (k < ds->ndrop_codes && strcmp(ds->drop_code[k], code) != 0) k++;
    if (k == ds->ndrop_codes) {
        if (k == 16) return; /* codes are few (CAL SUR CON BOR ...): the total still counts */
        snprintf(ds->drop_code[k], AVEMO_LABEL_MAX, "%s", code);
        ds->ndrop_codes++;
    }
    ds->drop_count[k]++;
}

static enum avemo_status add_labelled(struct scan_state *ss, struct avemo_item *item, const char *path,
                                      struct avemo_error *err)
{
    int label = avemo_label_map_apply(ss->map, item->code);
    if (label == -2)
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: label '%s' is neither a class, mapped nor dropped by [labels]",
                          path, item->code);
    item->label = label;
    item->source = ss->source;
    if (label < 0) {
        count_dropped(ss->ds, item->code);
        return AVEMO_OK;
    }
    return dataset_push(ss->ds, item, path, err);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The entries of a folder, sorted so that datasets are the same on every machine. */
static enum avemo_status list_folder(const char *dir, char ***names, size_t *count, struct avemo_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", dir, strerror(errno));
    size_t n = 0, cap = 64;
    char **list = malloc(cap * sizeof *list);
    struct dirent *e;
    enum avemo_status st = list ? AVEMO_OK : AVEMO_ERR_NOMEM;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            char **bigger = realloc(list, (cap *= 2) * sizeof *list);
            if (!bigger) { st = AVEMO_ERR_NOMEM; break; }
            list = bigger;
        }
        if (!(list[n] = strdup(e->d_name))) st = AVEMO_ERR_NOMEM;
        else n++;
    }
    closedir(d);
    if (st) {
        for (size_t i = 0; i < n; i++) free(list[i]);
        free(list);
        return avemo_fail(err, st, "%s: out of memory listing the folder", dir);
    }
    qsort(list, n, sizeof *list, cmp_names);
    *names = list;
    *count = n;
    return AVEMO_OK;
}

static enum avemo_status scan_folder(struct scan_state *ss, const char *dir, int depth, struct avemo_error *err)
{
    if (depth > AVEMO_DATASET_MAX_DEPTH) return AVEMO_OK;
    char **names = NULL;
    size_t n = 0;
    enum avemo_status st = list_folder(dir, &names, &n, err);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        if (!st && snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
            st = avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s/%s: path too long", dir, names[i]);
        struct stat sb;
        if (!st && stat(path, &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) {
                st = scan_folder(ss, path, depth + 1, err);
            } else if (S_ISREG(sb.st_mode) && kind_of_extension(path)) {
                struct avemo_item item;
                ss->media_seen++;
                if (avemo_item_from_path(path, &item, NULL) == AVEMO_OK) {
                    st = add_labelled(ss, &item, path, err);
                } else if (ss->unlabelled++ == 0) {
                    copy_text(ss->first_unlabelled, sizeof ss->first_unlabelled, path);
                }
            }
        }
        free(names[i]);
    }
    free(names);
    return st;
}

/* --- CSV manifest: path,label,group[,split] ------------------------------------ */

static enum avemo_status read_manifest(struct scan_state *ss, const char *csv, struct avemo_error *err)
{
    FILE *f = fopen(csv, "r");
    if (!f) return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", csv, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", csv);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char line[8192];
    int lineno = 0;
    enum avemo_status st = AVEMO_OK;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#' || (lineno == 1 && strncasecmp(line, "path,", 5) == 0)) continue;
        char *fields[4] = {NULL, NULL, NULL, NULL};
        int nf = 0;
        for (char *tok = line; tok && nf < 4; nf++) {
            fields[nf] = tok;
            tok = strchr(tok, ',');
            if (tok) *tok++ = 0;
        }
        if (nf < 2 || !fields[0][0]) {
            st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: expected path,label[,group[,split]]", csv, lineno);
            break;
        }
        const char *code = avemo_label_canonical(AVEMO_CORPUS_MANIFEST, fields[1]);
        if (!code) {
            st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: unknown label '%s'", csv, lineno, fields[1]);
            break;
        }
        char path[8192];
        if (fields[0][0] == '/') copy_text(path, sizeof path, fields[0]);
        else snprintf(path, sizeof path, "%s/%s", dir, fields[0]);
        struct avemo_item item = {0};
        item.kind = kind_of_extension(path);
        if (!item.kind) {
            st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: %s is not a media file extension", csv, lineno, fields[0]);
            break;
        }
        /* The manifest gives label and group; a known file name still tells the corpus. */
        struct avemo_item named;
        item.corpus = avemo_item_from_path(path, &named, NULL) == AVEMO_OK ? named.corpus : AVEMO_CORPUS_MANIFEST;
        snprintf(item.code, sizeof item.code, "%s", code);
        snprintf(item.group, sizeof item.group, "%s", nf > 2 && fields[2][0] ? fields[2] : fields[0]);
        if (nf > 3 && fields[3][0]) {
            const char *canon = canonical_split(fields[3]);
            if (!canon) {
                st = avemo_fail(err, AVEMO_ERR_CONFIG, "%s:%d: split '%s' is not train, validation (val, valid) or test",
                                csv, lineno, fields[3]);
                break;
            }
            snprintf(item.split, sizeof item.split, "%s", canon);
        }
        ss->media_seen++;
        st = add_labelled(ss, &item, path, err);
    }
    fclose(f);
    return st;
}

enum avemo_status avemo_dataset_add(struct avemo_dataset *ds, const char *given, const struct avemo_label_map *map,
                                    struct avemo_error *err)
{
    /* "AudioMP3/" and "AudioMP3" name the same items: split files match paths on their last two
     * components, which a doubled slash would change */
    char path[4096];
    if (strlen(given) >= sizeof path) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%.200s...: path too long", given);
    copy_text(path, sizeof path, given);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--) path[n - 1] = '\0';
    if (ds->num_classes == 0) {
        ds->num_classes = map->num_classes;
        memcpy(ds->classes, map->classes, sizeof ds->classes);
    }
    if (ds->nsources >= AVEMO_DATASET_MAX_SOURCES)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %d data folders or manifests", path,
                          AVEMO_DATASET_MAX_SOURCES);
    struct scan_state ss = {ds, map, ds->nsources, 0, 0, ""};
    struct stat sb;
    if (stat(path, &sb) != 0)
        return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    size_t before = ds->count;
    enum avemo_status st;
    const char *dot = strrchr(path, '.');
    if (S_ISDIR(sb.st_mode)) st = scan_folder(&ss, path, 0, err);
    else if (dot && strcasecmp(dot, ".csv") == 0) st = read_manifest(&ss, path, err);
    else return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: --data takes a folder or a .csv manifest", path);
    if (st) return st;
    copy_text(ds->source_path[ds->nsources++], sizeof ds->source_path[0], path);
    if (ss.media_seen == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: no media files found", path);
    if (ds->count == before && ss.unlabelled)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: %zu media files, none with a known label convention (e.g. %s)",
                          path, ss.unlabelled, ss.first_unlabelled);
    if (ds->count == before)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: every one of the %zu files has a label that [labels] drops", path,
                          ss.media_seen);
    return AVEMO_OK;
}

void avemo_dataset_free(struct avemo_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->count; i++) free(ds->items[i].path);
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

void avemo_dataset_dropped_text(const struct avemo_dataset *ds, char *buf, size_t size)
{
    size_t at = 0;
    if (size) buf[0] = 0;
    for (int k = 0; k < ds->ndrop_codes && at < size; k++) {
        int n = snprintf(buf + at, size - at, "%s%zu %s", k ? ", " : "", ds->drop_count[k], ds->drop_code[k]);
        if (n < 0) break;
        at += (size_t)n;
    }
}

enum avemo_corpus avemo_dataset_source_corpus(const struct avemo_dataset *ds, int s)
{
    size_t count[AVEMO_CORPUS_FER2013 + 1] = {0};
    for (size_t i = 0; i < ds->count; i++)
        if (ds->items[i].source == s && (unsigned)ds->items[i].corpus <= AVEMO_CORPUS_FER2013) count[ds->items[i].corpus]++;
    int best = AVEMO_CORPUS_UNKNOWN;
    for (int c = 1; c <= AVEMO_CORPUS_FER2013; c++)
        if (count[c] > count[best]) best = c;
    return (enum avemo_corpus)best;
}

void avemo_dataset_class_counts(const struct avemo_dataset *ds, const size_t *idx, size_t n, size_t *counts)
{
    memset(counts, 0, sizeof(size_t) * (size_t)ds->num_classes);
    if (!idx) n = ds->count;
    for (size_t i = 0; i < n; i++) {
        int l = ds->items[idx ? idx[i] : i].label;
        if (l >= 0 && l < ds->num_classes) counts[l]++;
    }
}
