/*
 * The configuration object: a pipeline INI text parsed once with libinih into an
 * ordered list of (section, key, value, line) entries.  This is the only place that
 * calls libinih; every module reads its sections from an avemo_cfg.  `--set` edits the
 * entries, and avemo_cfg_text() writes them back when a model must store the pipeline
 * that was really used.
 */
#include <avemo/core.h>

#include <errno.h>
#include <ini.h>
#include <libavutil/parseutils.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cfg_entry {
    char *section, *key, *value;
    int line;
};

struct avemo_cfg {
    char name[256];
    struct cfg_entry *e;
    size_t n, cap;
};

/* --- numbers ------------------------------------------------------------------ */

enum avemo_status avemo_parse_long(const char *text, long lo, long hi, long *out)
{
    if (!text || !*text || strlen(text) > 20) return AVEMO_ERR_INVALID_ARG;
    const char *p = text + (*text == '-' && lo < 0);
    if (!*p) return AVEMO_ERR_INVALID_ARG;
    for (const char *c = p; *c; c++)
        if (*c < '0' || *c > '9') return AVEMO_ERR_INVALID_ARG;
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < lo || v > hi) return AVEMO_ERR_INVALID_ARG;
    *out = v;
    return AVEMO_OK;
}

enum avemo_status avemo_parse_int(const char *text, int lo, int hi, int *out)
{
    long v;
    enum avemo_status st = avemo_parse_long(text, lo, hi, &v);
    if (!st) *out = (int)v;
    return st;
}

enum avemo_status avemo_parse_double(const char *text, double lo, double hi, double *out)
{
    if (!text || !*text || strchr(" \t\n", *text)) return AVEMO_ERR_INVALID_ARG;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) return AVEMO_ERR_INVALID_ARG;
    *out = v;
    return AVEMO_OK;
}

/* FFmpeg's duration syntax (the one `ffmpeg -t` reads), with avemo's strictness on top: a digit
 * first (av_parse_time skips blanks and takes "--1" for 1 s) and a range. */
enum avemo_status avemo_parse_duration(const char *text, double lo, double hi, double *seconds)
{
    int64_t us = 0;
    if (!text || *text < '0' || *text > '9' || av_parse_time(&us, text, 1) < 0) return AVEMO_ERR_INVALID_ARG;
    double v = (double)us / 1e6;
    if (v < lo || v > hi) return AVEMO_ERR_INVALID_ARG;
    *seconds = v;
    return AVEMO_OK;
}

/* --- checked values: one message format ------------------------------------------ */

enum avemo_status avemo_value_int(const char *value, int lo, int hi, int *out, const char *where,
                                  struct avemo_error *err)
{
    if (avemo_parse_int(value, lo, hi, out) == AVEMO_OK) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s = '%s': expected a whole number in %d..%d", where, value, lo, hi);
}

enum avemo_status avemo_value_double(const char *value, double lo, double hi, double *out, const char *where,
                                     struct avemo_error *err)
{
    if (avemo_parse_double(value, lo, hi, out) == AVEMO_OK) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s = '%s': expected a number in %g..%g", where, value, lo, hi);
}

enum avemo_status avemo_value_choice(const char *value, const char *const *choices, int *out, const char *where,
                                     struct avemo_error *err)
{
    for (int i = 0; choices[i]; i++)
        if (strcasecmp(value, choices[i]) == 0) {
            *out = i;
            return AVEMO_OK;
        }
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        strncat(list, i ? "|" : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    return avemo_fail(err, AVEMO_ERR_CONFIG, "%s = '%s': expected one of %s", where, value, list);
}

/* --- parsing ------------------------------------------------------------------- */

static enum avemo_status cfg_insert(avemo_cfg *cfg, size_t at, const char *section, const char *key,
                                    const char *value, int line)
{
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? 2 * cfg->cap : 32;
        struct cfg_entry *e = realloc(cfg->e, cap * sizeof *e);
        if (!e) return AVEMO_ERR_NOMEM;
        cfg->e = e;
        cfg->cap = cap;
    }
    struct cfg_entry ne = {strdup(section), strdup(key), strdup(value), line};
    if (!ne.section || !ne.key || !ne.value) {
        free(ne.section);
        free(ne.key);
        free(ne.value);
        return AVEMO_ERR_NOMEM;
    }
    memmove(cfg->e + at + 1, cfg->e + at, (cfg->n - at) * sizeof *cfg->e);
    cfg->e[at] = ne;
    cfg->n++;
    return AVEMO_OK;
}

/* libinih reads line by line through this reader, so the reader knows the line of each entry. */
struct reader {
    const char *at;
    int line;
    avemo_cfg *cfg;
    int nomem;
};

static char *read_line(char *buf, int size, void *stream)
{
    struct reader *r = stream;
    if (!*r->at || size < 2) return NULL;
    size_t len = strcspn(r->at, "\n");
    size_t take = len + (r->at[len] == '\n');
    if (take > (size_t)size - 1) take = (size_t)size - 1;
    memcpy(buf, r->at, take);
    buf[take] = 0;
    r->at += take;
    if (take && buf[take - 1] == '\n') r->line++;
    else if (!*r->at) r->line++;
    return buf;
}

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
    struct reader *r = user;
    if (!key) return 1; /* a bare section header (inih built with INI_CALL_HANDLER_ON_NEW_SECTION) */
    /* the line just read is the entry's line (continuation lines included) */
    if (cfg_insert(r->cfg, r->cfg->n, section, key, value ? value : "", r->line)) {
        r->nomem = 1;
        return 0;
    }
    return 1;
}

enum avemo_status avemo_cfg_parse(const char *text, size_t max_bytes, const char *name, avemo_cfg **out,
                                  struct avemo_error *err)
{
    *out = NULL;
    if (!name) name = "pipeline";
    if (!text) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no text", name);
    if (strlen(text) > max_bytes)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: pipeline larger than %zu bytes", name, max_bytes);
    avemo_cfg *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    struct reader r = {text, 0, cfg, 0};
    /* The reader is both inih's stream and the handler's user data. */
    int line = ini_parse_stream(read_line, &r, on_entry, &r);
    if (line || r.nomem) {
        avemo_cfg_free(cfg);
        if (r.nomem || line == -2) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory while parsing", name);
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: line %d: not INI syntax (expected [section] or key=value)",
                          name, line);
    }
    *out = cfg;
    return AVEMO_OK;
}

void avemo_cfg_free(avemo_cfg *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->e[i].section);
        free(cfg->e[i].key);
        free(cfg->e[i].value);
    }
    free(cfg->e);
    free(cfg);
}

const char *avemo_cfg_name(const avemo_cfg *cfg) { return cfg->name; }

static const struct cfg_entry *find(const avemo_cfg *cfg, const char *section, const char *key)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->e[i].section, section) == 0 && strcmp(cfg->e[i].key, key) == 0) return &cfg->e[i];
    return NULL;
}

const char *avemo_cfg_get(const avemo_cfg *cfg, const char *section, const char *key)
{
    const struct cfg_entry *e = find(cfg, section, key);
    return e ? e->value : NULL;
}

int avemo_cfg_each(const avemo_cfg *cfg, avemo_cfg_handler fn, void *user)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (!fn(user, cfg->e[i].section, cfg->e[i].key, cfg->e[i].value)) return cfg->e[i].line ? cfg->e[i].line : 1;
    return 0;
}

/* --- changes --------------------------------------------------------------------- */

enum avemo_status avemo_cfg_set(avemo_cfg *cfg, const char *section, const char *key, const char *value,
                                struct avemo_error *err)
{
    size_t at = cfg->n, w = 0;
    int in_section = 0;
    for (size_t i = 0; i < cfg->n; i++) {
        struct cfg_entry *e = &cfg->e[i];
        int same_section = strcmp(e->section, section) == 0;
        if (same_section && strcmp(e->key, key) == 0) {
            if (at == cfg->n) at = w; /* the first line of the old value */
            free(e->section);
            free(e->key);
            free(e->value);
            continue;
        }
        cfg->e[w++] = *e;
        if (same_section) in_section = 1;
        else if (in_section && at == cfg->n) {
            at = w - 1; /* after the section's last entry */
            in_section = 0;
        }
    }
    cfg->n = w;
    if (at > cfg->n) at = cfg->n;
    if (cfg_insert(cfg, at, section, key, value, 0))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", cfg->name);
    return AVEMO_OK;
}

enum avemo_status avemo_cfg_assign(avemo_cfg *cfg, const char *assignment, struct avemo_error *err)
{
    const char *eq = strchr(assignment, '=');
    const char *dot = NULL; /* the last dot before '=': section names such as branch.face have dots */
    for (const char *c = assignment; eq && c < eq; c++)
        if (*c == '.') dot = c;
    if (!dot || dot == assignment || eq == dot + 1 || strlen(assignment) > 600)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "override '%s': expected section.key=value", assignment);
    char section[256], key[256];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    return avemo_cfg_set(cfg, section, key, eq + 1, err);
}

char *avemo_cfg_text(const avemo_cfg *cfg)
{
    size_t cap = 1;
    for (size_t i = 0; i < cfg->n; i++)
        cap += strlen(cfg->e[i].section) + strlen(cfg->e[i].key) + strlen(cfg->e[i].value) + 16;
    char *t = malloc(cap), *p = t;
    if (!t) return NULL;
    *p = 0;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct cfg_entry *e = &cfg->e[i], *prev = i ? &cfg->e[i - 1] : NULL;
        if (!prev || strcmp(prev->section, e->section) != 0)
            p += sprintf(p, "%s[%s]\n", prev ? "\n" : "", e->section);
        if (prev && strcmp(prev->section, e->section) == 0 && strcmp(prev->key, e->key) == 0)
            p += sprintf(p, "    %s\n", e->value); /* a continuation line */
        else
            p += sprintf(p, "%s = %s\n", e->key, e->value);
    }
    return t;
}

/* --- typed getters ----------------------------------------------------------------- */

static void where(const avemo_cfg *cfg, const struct cfg_entry *e, char *buf, size_t size)
{
    if (e->line) snprintf(buf, size, "%s:%d: [%s] %s", cfg->name, e->line, e->section, e->key);
    else snprintf(buf, size, "%s: [%s] %s", cfg->name, e->section, e->key);
}

enum avemo_status avemo_cfg_int(const avemo_cfg *cfg, const char *section, const char *key, int lo, int hi, int *out,
                                struct avemo_error *err)
{
    const struct cfg_entry *e = find(cfg, section, key);
    char w[400];
    if (!e) return AVEMO_OK;
    where(cfg, e, w, sizeof w);
    return avemo_value_int(e->value, lo, hi, out, w, err);
}

enum avemo_status avemo_cfg_double(const avemo_cfg *cfg, const char *section, const char *key, double lo, double hi,
                                   double *out, struct avemo_error *err)
{
    const struct cfg_entry *e = find(cfg, section, key);
    char w[400];
    if (!e) return AVEMO_OK;
    where(cfg, e, w, sizeof w);
    return avemo_value_double(e->value, lo, hi, out, w, err);
}

enum avemo_status avemo_cfg_choice(const avemo_cfg *cfg, const char *section, const char *key,
                                   const char *const *choices, int *out, struct avemo_error *err)
{
    const struct cfg_entry *e = find(cfg, section, key);
    char w[400];
    if (!e) return AVEMO_OK;
    where(cfg, e, w, sizeof w);
    return avemo_value_choice(e->value, choices, out, w, err);
}
