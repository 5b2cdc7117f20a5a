/* avemo eval and compare never score a model on what it learnt from: the test files whose
 * content (SHA-256) is in a model's training record are left out of every model's units and
 * counted; a model without a record (an older file) is named, as one that cannot be checked.
 * Contents decide, not names: a copy of a training file under another name is still found, and
 * a file that only shares a name (another corpus' "1.wav") is not left out.  Names are only a
 * warning: a test file named like a training file (extension aside) but with other bytes may be
 * the same recording encoded anew (CREMA-D's 1001_DFA_ANG_XX.wav and .flv, RAVDESS at another
 * rate), which no content hash can see; such files are counted and named in the note, not left
 * out, since names alone also match unrelated files. */
#include "eval/eval_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_digest(const void *a, const void *b) { return memcmp(a, b, AVEMO_SHA256_SIZE); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A file's name without folders and extension: "1001_DFA_ANG_XX". */
static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    return strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
}

void eval_record_free(struct eval_record *rec)
{
    for (size_t i = 0; i < rec->nstems; i++) free(rec->stems[i]);
    free(rec->stems);
    free(rec->sha);
    memset(rec, 0, sizeof *rec);
}

/* Append the contents of one model's record. */
static enum avemo_status add_record(const char *path, const avemo_net *net, struct eval_record *rec,
                                    struct avemo_error *err)
{
    size_t n;
    const struct avemo_record_entry *e = avemo_net_record(net, &n);
    if (!n) return AVEMO_OK;
    uint8_t(*more)[AVEMO_SHA256_SIZE] = realloc(rec->sha, (rec->n + n) * AVEMO_SHA256_SIZE);
    if (more) rec->sha = more;
    char **stems = more ? realloc(rec->stems, (rec->nstems + n) * sizeof *stems) : NULL;
    if (stems) rec->stems = stems;
    if (!stems) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        memcpy(rec->sha[rec->n++], e[i].sha256, AVEMO_SHA256_SIZE);
        if (!(rec->stems[rec->nstems] = stem_of(e[i].name))) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        rec->nstems++;
    }
    return AVEMO_OK;
}

enum avemo_status eval_record_load(const char *const *paths, int n, struct eval_record *rec, char *unchecked,
                                   size_t size, struct avemo_error *err)
{
    memset(rec, 0, sizeof *rec);
    unchecked[0] = 0;
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i < n; i++) {
        avemo_net *net = NULL;
        if ((st = avemo_net_load(paths[i], &net, err))) break;
        if (avemo_net_has_record(net)) {
            st = add_record(paths[i], net, rec, err);
        } else {
            const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
            size_t len = strlen(unchecked);
            snprintf(unchecked + len, size - len, "%s%s", len ? ", " : "", base);
        }
        avemo_net_free(net);
    }
    if (!st && rec->n) qsort(rec->sha, rec->n, AVEMO_SHA256_SIZE, cmp_digest);
    if (!st && rec->nstems) qsort(rec->stems, rec->nstems, sizeof *rec->stems, cmp_str);
    if (st) eval_record_free(rec);
    return st;
}

void eval_leave_out_trained(const struct avemo_dataset *ds, signed char *part, const struct eval_record *rec,
                            unsigned char *trained)
{
    /* A file that cannot be read is the feature extraction's to name. */
    for (size_t i = 0; rec->n && i < ds->count; i++) {
        uint8_t sha[AVEMO_SHA256_SIZE];
        if (part[i] != AVEMO_PART_TEST || avemo_sha256_file(ds->items[i].path, sha, NULL) != AVEMO_OK) continue;
        if (bsearch(sha, rec->sha, rec->n, AVEMO_SHA256_SIZE, cmp_digest)) {
            part[i] = -1;
            trained[i] = 1;
            continue;
        }
        char *stem = stem_of(ds->items[i].path);
        if (stem && bsearch(&stem, rec->stems, rec->nstems, sizeof *rec->stems, cmp_str)) trained[i] = 2;
        free(stem);
    }
}

void avemo_eval_record_note(const struct avemo_eval_set *set, char *buf, size_t size)
{
    const char *who = set->nresults > 1 ? "a model" : "the model";
    size_t len = 0;
    buf[0] = 0;
    if (set->trained_on > 0)
        len = (size_t)snprintf(buf, size, "left out: %zu test item%s that %s was trained or validated on (same SHA-256 "
                               "as a file in its training record)", set->trained_on, set->trained_on == 1 ? "" : "s", who);
    else if (!set->unchecked[0])
        len = (size_t)snprintf(buf, size, "training record checked: no test item is a file %s was trained or "
                               "validated on", set->nresults > 1 ? "any model" : "the model");
    if (set->same_name && len < size)
        len += (size_t)snprintf(buf + len, size - len, "; %zu test item%s named like a training file but with other "
                                "bytes (the same recording encoded anew?) kept", set->same_name,
                                set->same_name == 1 ? "" : "s");
    if (set->unchecked[0] && len < size)
        snprintf(buf + len, size - len, "%snote: %s has no training record (a model file before version 2): whether it "
                 "was trained on these test items cannot be checked (avemo split MODEL.avm --record attaches one)",
                 len ? "; " : "", set->unchecked);
}
