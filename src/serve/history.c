/* The prediction history: one SQLite file, one connection shared by the server's threads
 * behind a mutex, statements prepared once.
 *
 * journal_mode=WAL lets readers (GET /v1/history) run while a row is written.
 * synchronous=FULL: in WAL mode NORMAL skips the fsync at each commit, so a commit could
 * be lost at a power cut although the client already got the row's id.  FULL fsyncs the
 * WAL before sqlite3_step() returns, and the response is only built after that: every id
 * a client has seen is on disk.  One fsync (~ms) is small next to an inference (~100 ms). */
#include "serve/serve_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HISTORY_SCHEMA_VERSION 1

struct serve_history {
    sqlite3 *db;
    pthread_mutex_t lock;
    char path[512];
    sqlite3_stmt *insert, *get, *list, *count, *del;
};

static const char history_schema[] =
    "CREATE TABLE IF NOT EXISTS predictions ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* AUTOINCREMENT: a deleted id is never reused */
    " created_at TEXT NOT NULL,"
    " file_name TEXT NOT NULL,"
    " size_bytes INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " model TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " mode_used TEXT NOT NULL,"
    " label TEXT NOT NULL,"
    " confidence REAL NOT NULL,"
    " probabilities TEXT NOT NULL," /* JSON object: label -> probability */
    " latency_ms REAL NOT NULL);";

#define HISTORY_COLUMNS                                                                                    \
    "id, created_at, file_name, size_bytes, sha256, model, mode, mode_used, label, confidence, probabilities," \
    " latency_ms"

static enum avemo_status history_fail(serve_history *h, struct avemo_error *err, const char *what)
{
    return avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", h->path, what, sqlite3_errmsg(h->db));
}

static enum avemo_status history_exec(serve_history *h, const char *sql, struct avemo_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(h->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", h->path, sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return AVEMO_ERR_IO;
    }
    return AVEMO_OK;
}

static enum avemo_status history_prepare(serve_history *h, const char *sql, sqlite3_stmt **stmt,
                                         struct avemo_error *err)
{
    if (sqlite3_prepare_v2(h->db, sql, -1, stmt, NULL) != SQLITE_OK) return history_fail(h, err, "prepare");
    return AVEMO_OK;
}

/* The file may come from an older or newer avemo: refuse a schema we do not know. */
static enum avemo_status history_check_version(serve_history *h, struct avemo_error *err)
{
    sqlite3_stmt *st = NULL;
    enum avemo_status s = history_prepare(h, "PRAGMA user_version", &st, err);
    if (s) return s;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version == 0) return history_exec(h, "PRAGMA user_version = 1", err);
    if (version != HISTORY_SCHEMA_VERSION)
        return avemo_fail(err, AVEMO_ERR_VERSION, "%s: history schema version %d, this build reads %d", h->path,
                          version, HISTORY_SCHEMA_VERSION);
    return AVEMO_OK;
}

enum avemo_status serve_history_open(const char *path, serve_history **out, struct avemo_error *err)
{
    *out = NULL;
    if (!path || !*path || strlen(path) >= 512)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "history: the database path is empty or too long");
    serve_history *h = calloc(1, sizeof *h);
    if (!h) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    snprintf(h->path, sizeof h->path, "%s", path);
    pthread_mutex_init(&h->lock, NULL);
    enum avemo_status s = AVEMO_OK;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &h->db, flags, NULL) != SQLITE_OK) {
        s = avemo_fail(err, AVEMO_ERR_IO, "%s: cannot open the history: %s", path,
                       h->db ? sqlite3_errmsg(h->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(h->db, 5000); /* another process (a backup, sqlite3 CLI) may hold a lock */
    if ((s = history_exec(h, "PRAGMA journal_mode = WAL", err))) goto fail;
    if ((s = history_exec(h, "PRAGMA synchronous = FULL", err))) goto fail;
    if ((s = history_exec(h, history_schema, err))) goto fail;
    if ((s = history_check_version(h, err))) goto fail;
    if ((s = history_prepare(h,
                             "INSERT INTO predictions (created_at, file_name, size_bytes, sha256, model, mode,"
                             " mode_used, label, confidence, probabilities, latency_ms)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             &h->insert, err)))
        goto fail;
    if ((s = history_prepare(h, "SELECT " HISTORY_COLUMNS " FROM predictions WHERE id = ?", &h->get, err))) goto fail;
    if ((s = history_prepare(h, "SELECT " HISTORY_COLUMNS " FROM predictions ORDER BY id DESC LIMIT ? OFFSET ?",
                             &h->list, err)))
        goto fail;
    if ((s = history_prepare(h, "SELECT count(*) FROM predictions", &h->count, err))) goto fail;
    if ((s = history_prepare(h, "DELETE FROM predictions WHERE id = ?", &h->del, err))) goto fail;
    *out = h;
    return AVEMO_OK;
fail:
    serve_history_close(h);
    return s;
}

void serve_history_close(serve_history *h)
{
    if (!h) return;
    sqlite3_finalize(h->insert);
    sqlite3_finalize(h->get);
    sqlite3_finalize(h->list);
    sqlite3_finalize(h->count);
    sqlite3_finalize(h->del);
    sqlite3_close(h->db);
    pthread_mutex_destroy(&h->lock);
    free(h);
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

enum avemo_status serve_history_insert(serve_history *h, const struct serve_history_entry *e, int64_t *id,
                                       char created_at[32], struct avemo_error *err)
{
    char *probs = probabilities_json(e->pred);
    if (!probs) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", h->path);
    utc_now_iso(created_at);
    pthread_mutex_lock(&h->lock);
    sqlite3_stmt *st = h->insert;
    sqlite3_bind_text(st, 1, created_at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, e->file_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, e->size);
    sqlite3_bind_text(st, 4, e->sha256, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, e->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, e->mode, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, e->mode_used, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, e->label, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 9, e->confidence);
    sqlite3_bind_text(st, 10, probs, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 11, e->latency_ms);
    enum avemo_status s = AVEMO_OK;
    /* autocommit: SQLITE_DONE means committed (and fsynced, synchronous=FULL) */
    if (sqlite3_step(st) != SQLITE_DONE) s = history_fail(h, err, "insert");
    else *id = sqlite3_last_insert_rowid(h->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&h->lock);
    free(probs);
    return s;
}

static cJSON *row_json(sqlite3_stmt *st)
{
    cJSON *row = cJSON_CreateObject();
    if (!row) return NULL;
    cJSON_AddNumberToObject(row, "id", (double)sqlite3_column_int64(st, 0));
    cJSON_AddStringToObject(row, "created_at", (const char *)sqlite3_column_text(st, 1));
    /* Rows stored before names were cleaned may hold bidi controls or invalid bytes. */
    const char *raw = (const char *)sqlite3_column_text(st, 2);
    char *name = serve_utf8_dup(raw ? raw : "", 1);
    cJSON_AddStringToObject(row, "file_name", name ? name : "upload");
    free(name);
    cJSON_AddNumberToObject(row, "size", (double)sqlite3_column_int64(st, 3));
    cJSON_AddStringToObject(row, "sha256", (const char *)sqlite3_column_text(st, 4));
    cJSON_AddStringToObject(row, "model", (const char *)sqlite3_column_text(st, 5));
    cJSON_AddStringToObject(row, "mode", (const char *)sqlite3_column_text(st, 6));
    cJSON_AddStringToObject(row, "mode_used", (const char *)sqlite3_column_text(st, 7));
    cJSON_AddStringToObject(row, "label", (const char *)sqlite3_column_text(st, 8));
    cJSON_AddNumberToObject(row, "confidence", sqlite3_column_double(st, 9));
    cJSON *probs = cJSON_Parse((const char *)sqlite3_column_text(st, 10));
    cJSON_AddItemToObject(row, "probabilities", probs ? probs : cJSON_CreateObject());
    cJSON_AddNumberToObject(row, "latency_ms", sqlite3_column_double(st, 11));
    return row;
}

enum avemo_status serve_history_get(serve_history *h, int64_t id, cJSON **out, struct avemo_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&h->lock);
    sqlite3_stmt *st = h->get;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    enum avemo_status s = AVEMO_OK;
    if (rc == SQLITE_ROW) {
        if (!(*out = row_json(st))) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", h->path);
    } else if (rc == SQLITE_DONE) {
        s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with id %lld", (long long)id);
    } else {
        s = history_fail(h, err, "select");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&h->lock);
    return s;
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
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", h->path);
    }
    enum avemo_status s = AVEMO_OK;
    int64_t total = 0;
    pthread_mutex_lock(&h->lock);
    if (sqlite3_step(h->count) == SQLITE_ROW) total = sqlite3_column_int64(h->count, 0);
    else s = history_fail(h, err, "count");
    sqlite3_reset(h->count);
    sqlite3_stmt *st = h->list;
    sqlite3_bind_int64(st, 1, limit);
    sqlite3_bind_int64(st, 2, offset);
    int rc = SQLITE_DONE;
    while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) cJSON_AddItemToArray(items, row_json(st));
    if (!s && rc != SQLITE_DONE) s = history_fail(h, err, "select");
    sqlite3_reset(st);
    pthread_mutex_unlock(&h->lock);
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
    pthread_mutex_lock(&h->lock);
    sqlite3_stmt *st = h->del;
    sqlite3_bind_int64(st, 1, id);
    enum avemo_status s = AVEMO_OK;
    if (sqlite3_step(st) != SQLITE_DONE) s = history_fail(h, err, "delete");
    else if (sqlite3_changes(h->db) == 0)
        s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with id %lld", (long long)id);
    sqlite3_reset(st);
    pthread_mutex_unlock(&h->lock);
    return s;
}
