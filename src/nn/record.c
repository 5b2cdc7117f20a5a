/* The training record of a model (see avemo_net_set_record in nn.h): which files, by name and
 * SHA-256, it was trained and validated on.  Kept in the net so that the model file carries it
 * (model_file.c, version 2). */
#include "nn/nn_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void nn_record_free(avemo_net *net)
{
    free(net->record);
    free(net->record_names);
    net->record = NULL;
    net->record_names = NULL;
    net->nrecord = 0;
    net->has_record = 0;
}

/* Each entry is a training (0) or validation (1) file with a name of at most
 * AVEMO_RECORD_NAME_MAX bytes; at most AVEMO_RECORD_MAX_ITEMS of them. */
static enum avemo_status record_check(const avemo_net *net, const struct avemo_record_entry *entries, size_t n,
                                      struct avemo_error *err)
{
    if (n > AVEMO_RECORD_MAX_ITEMS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: training record of %zu files (limit %d)", net->name, n,
                          AVEMO_RECORD_MAX_ITEMS);
    for (size_t i = 0; i < n; i++) {
        const char *name = entries[i].name ? entries[i].name : "";
        size_t len = strlen(name);
        if (entries[i].part != 0 && entries[i].part != 1)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: record entry %s: part %d is neither training (0) "
                              "nor validation (1)", net->name, name, entries[i].part);
        if (len > AVEMO_RECORD_NAME_MAX)
            return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: record entry name of %zu bytes (limit %d)", net->name,
                              len, AVEMO_RECORD_NAME_MAX);
    }
    return AVEMO_OK;
}

/* Entries already checked (record_check), with the block their names point into, become the
 * net's record. */
static void record_install(avemo_net *net, struct avemo_record_entry *entries, size_t n, char *names)
{
    nn_record_free(net);
    net->record = entries;
    net->record_names = names;
    net->nrecord = n;
    net->has_record = 1;
    net->record_skipped = 0; /* a record given explicitly replaces the unread one */
}

enum avemo_status nn_record_adopt(avemo_net *net, struct avemo_record_entry *entries, size_t n, char *names,
                                  struct avemo_error *err)
{
    enum avemo_status st = record_check(net, entries, n, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) assert(entries[i].name); /* the model reader's names are never NULL */
    record_install(net, entries, n, names);
    return AVEMO_OK;
}

enum avemo_status avemo_net_set_record(avemo_net *net, const struct avemo_record_entry *entries, size_t n,
                                       struct avemo_error *err)
{
    enum avemo_status st = record_check(net, entries, n, err);
    if (st) return st;
    size_t bytes = 1; /* names are at most AVEMO_RECORD_NAME_MAX each: no overflow */
    for (size_t i = 0; i < n; i++) bytes += strlen(entries[i].name ? entries[i].name : "") + 1;
    struct avemo_record_entry *copy = avemo_alloc_large(sizeof *copy * (n ? n : 1)); /* filled below */
    char *names = avemo_alloc_large(bytes);
    if (!copy || !names) {
        free(copy);
        free(names);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = entries[i].name ? entries[i].name : "";
        size_t len = strlen(name);
        copy[i] = entries[i];
        copy[i].name = memcpy(names + at, name, len + 1);
        at += len + 1;
    }
    record_install(net, copy, n, names);
    return AVEMO_OK;
}

int avemo_net_has_record(const avemo_net *net) { return net->has_record; }

void avemo_net_clear_record(avemo_net *net)
{
    nn_record_free(net);
    net->record_skipped = 0; /* "not known", said explicitly */
}

const struct avemo_record_entry *avemo_net_record(const avemo_net *net, size_t *n)
{
    *n = net->nrecord;
    return net->has_record ? net->record : NULL;
}
