/* The prediction history seen by the server: one interface over two back ends.
 *
 *   --db FILE                                  SQLite (history.c), the embedded default
 *   --db postgresql://user@host:port/dbname    PostgreSQL (history_pg.c), shared by replicas
 *
 * What is common to both lives here: the row's time stamp, the probabilities as JSON text
 * and the page object of GET /v1/history, so that both back ends store and answer alike. */
#include "serve/serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct serve_history {
    const struct serve_history_backend *be;
    void *impl;
    char name[256];          /* the target as messages show it */
};

/* postgresql://user:secret@host/db -> postgresql://user@host/db */
void serve_history_redact(const char *target, char *out, size_t size)
{
    const char *scheme = strstr(target, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!colon) snprintf(out, size, "%s", target);
    else snprintf(out, size, "%.*s%s", (int)(colon - target), target, at);
}

static int is_postgresql_uri(const char *target)
{
    return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

enum avemo_status serve_history_open(const char *target, serve_history **out, struct avemo_error *err)
{
    *out = NULL;
    if (!target || !*target) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "history: the database is not named");
    serve_history *h = calloc(1, sizeof *h);
    if (!h) return avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
    h->be = is_postgresql_uri(target) ? &serve_history_postgresql : &serve_history_sqlite;
    serve_history_redact(target, h->name, sizeof h->name);
    enum avemo_status s = h->be->open(target, &h->impl, err);
    if (s) {
        free(h);
        return s;
    }
    *out = h;
    return AVEMO_OK;
}

void serve_history_close(serve_history *h)
{
    if (!h) return;
    h->be->close(h->impl);
    free(h);
}

const char *serve_history_backend_name(const serve_history *h) { return h ? h->be->name : "none"; }

const char *avemo_server_history_name(const avemo_server *srv)
{
    return srv && srv->history ? srv->history->name : "";
}

static void utc_now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ts.tv_nsec / 1000000));
}

static char *probabilities_json(const struct avemo_prediction *pred)
{
    cJSON *obj = cJSON_CreateObject();
    int n = pred->num_classes < AVEMO_MAX_CLASSES ? pred->num_classes : AVEMO_MAX_CLASSES;
    for (int k = 0; obj && k < n; k++) {
        char label[sizeof pred->labels[0] + 1];
        memcpy(label, pred->labels[k], sizeof pred->labels[0]);
        label[sizeof pred->labels[0]] = '\0';
        cJSON_AddNumberToObject(obj, label, pred->probs[k]);
    }
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    return text;
}

enum avemo_status serve_history_insert_request(serve_history *h, const struct serve_history_entry *e,
                                               const struct serve_history_request *rq, int64_t *id,
                                               char created_at[32], int *duplicate, struct avemo_error *err)
{
    char *probs = probabilities_json(e->pred);
    if (!probs) return avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
    utc_now_iso(created_at);
    struct serve_history_request none = {"", NULL, NULL};
    struct serve_history_row row = {e, rq ? rq : &none, created_at, probs};
    *duplicate = 0;
    enum avemo_status s = h->be->insert(h->impl, &row, id, duplicate, err);
    free(probs);
    return s;
}

enum avemo_status serve_history_insert(serve_history *h, const struct serve_history_entry *e, int64_t *id,
                                       char created_at[32], struct avemo_error *err)
{
    int duplicate;
    return serve_history_insert_request(h, e, NULL, id, created_at, &duplicate, err);
}

enum avemo_status serve_history_find_key(serve_history *h, const char *key, struct serve_history_replay *out,
                                         struct avemo_error *err)
{
    memset(out, 0, sizeof *out);
    return h->be->find_key(h->impl, key, out, err);
}

enum avemo_status serve_history_get(serve_history *h, int64_t id, cJSON **out, struct avemo_error *err)
{
    *out = NULL;
    return h->be->get(h->impl, id, out, err);
}

enum avemo_status serve_history_list(serve_history *h, int64_t limit, int64_t offset, cJSON **out,
                                     struct avemo_error *err)
{
    *out = NULL;
    cJSON *page = cJSON_CreateObject();
    cJSON *items = cJSON_CreateArray();
    if (!page || !items) {
        cJSON_Delete(page);
        cJSON_Delete(items);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
    }
    int64_t total = 0;
    enum avemo_status s = h->be->list(h->impl, limit, offset, &total, items, err);
    cJSON_AddNumberToObject(page, "total", (double)total);
    cJSON_AddNumberToObject(page, "limit", (double)limit);
    cJSON_AddNumberToObject(page, "offset", (double)offset);
    cJSON_AddItemToObject(page, "items", items);
    if (s) cJSON_Delete(page);
    else *out = page;
    return s;
}

enum avemo_status serve_history_delete(serve_history *h, int64_t id, struct avemo_error *err)
{
    return h->be->del(h->impl, id, err);
}

enum avemo_status serve_history_ping(serve_history *h, struct avemo_error *err)
{
    if (!h) return avemo_fail(err, AVEMO_ERR_BUSY, "history: not open");
    return h->be->ping(h->impl, err);
}
