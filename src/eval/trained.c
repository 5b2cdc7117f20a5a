/* avemo eval and compare never score a model on what it learnt from: the test files whose
 * content (SHA-256) is in a model's training record are left out of every model's units and
 * counted; a model without a record (an older file) is named, as one that cannot be checked.
 * Contents, not names: a copy of a training file under another name is still found, and a
 * file that only shares a name (another corpus' "1.wav") is not left out. */
#include "eval/eval_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_digest(const void *a, const void *b) { return memcmp(a, b, AVEMO_SHA256_SIZE); }

void eval_record_free(struct eval_record *rec)
{
    free(rec->sha);
    rec->sha = NULL;
    rec->n = 0;
}

/* Append the contents of one model's record. */
static enum avemo_status add_record(const char *path, const avemo_net *net, struct eval_record *rec,
                                    struct avemo_error *err)
{
    size_t n;
    const struct avemo_record_entry *e = avemo_net_record(net, &n);
    if (!n) return AVEMO_OK;
    uint8_t(*more)[AVEMO_SHA256_SIZE] = realloc(rec->sha, (rec->n + n) * AVEMO_SHA256_SIZE);
    if (!more) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    rec->sha = more;
    for (size_t i = 0; i < n; i++) memcpy(rec->sha[rec->n++], e[i].sha256, AVEMO_SHA256_SIZE);
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
        }
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
    if (set->unchecked[0] && len < size)
        snprintf(buf + len, size - len, "%snote: %s has no training record (a model file before version 2): whether it "
                 "was trained on these test items cannot be checked (avemo split MODEL.avm --record attaches one)",
                 len ? "; " : "", set->unchecked);
}
