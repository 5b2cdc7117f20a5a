/* Batch work in shards: which items a shard does, its output with restart, and the merge.
 *
 * Shard I of N does the contiguous block [n*I/N, n*(I+1)/N) of the n items, so the shard
 * outputs put together in shard order are byte for byte the output of one process.
 *
 * A shard's output is a lines file (JSON lines or CSV with a header), written and flushed
 * one line per item; with an .npy, each item's block of floats goes to "<npy>.part" as it is
 * made, and the .npy is written from it when the shard is complete.  A task killed midway
 * leaves complete lines (and blocks) and perhaps a partial last line: the restarted task
 * cuts that off, skips the items whose lines are there and goes on.  The items must be the
 * same list (same inputs) as in the first run. */
#include <avemo/core.h>

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MANIFEST_MAX_BYTES ((size_t)1 << 30)
#define ITEMS_MAX ((size_t)100000000)
#define PATH_MAX_LEN 4096

/* ---- which shard ---- */

static int parse_index(const char *text, long lo, long hi, long *out)
{
    return avemo_parse_long(text, lo, hi, out) == AVEMO_OK ? 0 : -1;
}

enum avemo_status avemo_shard_parse(const char *text, struct avemo_shard *out, struct avemo_error *err)
{
    char first[16];
    const char *slash = text ? strchr(text, '/') : NULL;
    long i, n;
    if (!slash || (size_t)(slash - text) >= sizeof first)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "shard '%s': expected I/N, e.g. 0/4", text ? text : "");
    memcpy(first, text, (size_t)(slash - text));
    first[slash - text] = '\0';
    if (parse_index(slash + 1, 1, AVEMO_SHARD_MAX, &n) || parse_index(first, 0, n - 1, &i))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "shard '%s': expected I/N with 0 <= I < N <= %d", text,
                          AVEMO_SHARD_MAX);
    out->index = (int)i;
    out->count = (int)n;
    return AVEMO_OK;
}

static enum avemo_status shard_from_vars(const char *id_var, const char *min_var, const char *count_var,
                                         struct avemo_shard *out, struct avemo_error *err)
{
    const char *id = getenv(id_var), *min = min_var ? getenv(min_var) : NULL, *count = getenv(count_var);
    long i, lo = 0, n;
    if (!count || parse_index(count, 1, AVEMO_SHARD_MAX, &n))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s is set but %s is not a count in 1..%d", id_var, count_var,
                          AVEMO_SHARD_MAX);
    if (min && parse_index(min, 0, 1000000000, &lo))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s='%s' is not a task id", min_var, min);
    if (parse_index(id, lo, lo + n - 1, &i))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s='%s' is not in %ld..%ld", id_var, id, lo, lo + n - 1);
    out->index = (int)(i - lo);
    out->count = (int)n;
    return AVEMO_OK;
}

enum avemo_status avemo_shard_from_env(struct avemo_shard *out, struct avemo_error *err)
{
    out->index = 0;
    out->count = 1;
    if (getenv("SLURM_ARRAY_TASK_ID"))
        return shard_from_vars("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", out, err);
    if (getenv("JOB_COMPLETION_INDEX"))
        return shard_from_vars("JOB_COMPLETION_INDEX", NULL, "AVEMO_SHARD_COUNT", out, err);
    return AVEMO_OK;
}

void avemo_shard_range(const struct avemo_shard *s, size_t n, size_t *begin, size_t *end)
{
    size_t count = s->count > 0 ? (size_t)s->count : 1, index = (size_t)s->index;
    *begin = n / count * index + n % count * index / count;
    *end = n / count * (index + 1) + n % count * (index + 1) / count;
}

enum avemo_status avemo_shard_path(const char *dir, const char *stem, const struct avemo_shard *s, const char *ext,
                                   char *out, size_t size, struct avemo_error *err)
{
    int len = snprintf(out, size, "%s/%s-%05d-of-%05d%s", dir, stem, s->index, s->count, ext);
    if (len < 0 || (size_t)len >= size) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: the path is too long", dir);
    return AVEMO_OK;
}

/* ---- the items ---- */

static enum avemo_status items_add(struct avemo_items *it, size_t *cap, const char *path, struct avemo_error *err)
{
    if (it->n == ITEMS_MAX) return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %zu items", path, ITEMS_MAX);
    if (it->n == *cap) {
        size_t bigger = *cap ? 2 * *cap : 64;
        char **p = realloc(it->paths, bigger * sizeof *p);
        if (!p) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        it->paths = p;
        *cap = bigger;
    }
    if (!(it->paths[it->n] = strdup(path))) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    it->n++;
    return AVEMO_OK;
}

static int has_extension(const char *path, const char *const *exts)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    for (; *exts; exts++)
        if (strcasecmp(dot + 1, *exts) == 0) return 1;
    return 0;
}

static const char *const media_exts[] = {"wav", "mp3", "flac", "ogg", "opus", "m4a", "aac", "flv", "mp4", "m4v",
                                         "webm", "mkv", "avi", "mov", "jpg", "jpeg", "png", "bmp", "tif", "tiff",
                                         "webp", "pgm", "ppm", "pnm", NULL};
static const char *const manifest_exts[] = {"txt", "list", NULL};

static int compare_paths(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static enum avemo_status add_folder(struct avemo_items *it, size_t *cap, const char *dir, int depth,
                                    struct avemo_error *err)
{
    if (depth > 32) return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: folders nested deeper than 32", dir);
    DIR *d = opendir(dir);
    if (!d) return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    size_t first = it->n;
    enum avemo_status s = AVEMO_OK;
    struct dirent *e;
    char path[PATH_MAX_LEN];
    while (!s && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., hidden files */
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) s = items_add(it, cap, path, err); /* expanded below, in order */
        else if (S_ISREG(st.st_mode) && has_extension(path, media_exts)) s = items_add(it, cap, path, err);
    }
    closedir(d);
    if (s) return s;
    /* sort this folder's entries, then replace each subfolder by its own items */
    qsort(it->paths + first, it->n - first, sizeof *it->paths, compare_paths);
    size_t end = it->n;
    struct avemo_items sub = {0};
    size_t sub_cap = 0;
    for (size_t i = first; !s && i < end; i++) {
        struct stat st;
        if (stat(it->paths[i], &st) == 0 && S_ISDIR(st.st_mode)) s = add_folder(&sub, &sub_cap, it->paths[i], depth + 1, err);
        else s = items_add(&sub, &sub_cap, it->paths[i], err);
    }
    for (size_t i = first; i < end; i++) free(it->paths[i]);
    it->n = first;
    for (size_t i = 0; !s && i < sub.n; i++) s = items_add(it, cap, sub.paths[i], err);
    avemo_items_free(&sub);
    return s;
}

/* The lines of a manifest's text (changed in place) as items; relative paths from dir. */
static enum avemo_status add_manifest_text(struct avemo_items *it, size_t *cap, char *text, const char *dir,
                                           const char *name, struct avemo_error *err)
{
    enum avemo_status s = AVEMO_OK;
    char path[PATH_MAX_LEN];
    for (char *line = text, *next; !s && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        int n = line[0] == '/' || !dir ? snprintf(path, sizeof path, "%s", line)
                                       : snprintf(path, sizeof path, "%s/%s", dir, line);
        if (n < 0 || (size_t)n >= sizeof path) s = avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: a path is too long", name);
        else s = items_add(it, cap, path, err);
    }
    return s;
}

static enum avemo_status add_manifest(struct avemo_items *it, size_t *cap, const char *manifest,
                                      struct avemo_error *err)
{
    uint8_t *text = NULL;
    size_t size = 0;
    enum avemo_status s = avemo_read_file(manifest, MANIFEST_MAX_BYTES, &text, &size, err);
    if (s) return s;
    const char *slash = strrchr(manifest, '/');
    char dir[PATH_MAX_LEN];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - manifest), manifest);
    s = add_manifest_text(it, cap, (char *)text, slash ? dir : NULL, manifest, err);
    free(text);
    return s;
}

enum avemo_status avemo_items_add_manifest(struct avemo_items *items, const char *text, const char *dir,
                                           const char *name, struct avemo_error *err)
{
    size_t cap = items->n; /* items_add grows by doubling from here */
    char *copy = strdup(text);
    if (!copy) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    enum avemo_status s = add_manifest_text(items, &cap, copy, dir, name, err);
    free(copy);
    return s;
}

enum avemo_status avemo_items_expand(const char *const *inputs, int n, struct avemo_items *out,
                                     struct avemo_error *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    enum avemo_status s = AVEMO_OK;
    for (int i = 0; !s && i < n; i++) {
        struct stat st;
        if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            char dir[PATH_MAX_LEN];
            size_t len = strlen(inputs[i]);
            while (len > 1 && inputs[i][len - 1] == '/') len--; /* "data/" lists "data/x", not "data//x" */
            snprintf(dir, sizeof dir, "%.*s", (int)len, inputs[i]);
            s = add_folder(out, &cap, dir, 0, err);
        }
        else if (has_extension(inputs[i], manifest_exts)) s = add_manifest(out, &cap, inputs[i], err);
        else s = items_add(out, &cap, inputs[i], err);
    }
    if (s) avemo_items_free(out);
    return s;
}

void avemo_items_free(struct avemo_items *items)
{
    if (!items) return;
    for (size_t i = 0; i < items->n; i++) free(items->paths[i]);
    free(items->paths);
    memset(items, 0, sizeof *items);
}

char *avemo_item_error_json(const char *file, const struct avemo_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(e, "code", avemo_status_name(err->status));
    cJSON_AddStringToObject(e, "message", err->message[0] ? err->message : avemo_strerror(err->status));
    cJSON_AddItemToObject(o, "error", e);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
