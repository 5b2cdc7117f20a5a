/* The prediction history's SQLite back end (history_db.c is the interface): one file, one
 * connection shared by the server's threads behind a mutex, statements prepared once.
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

/* 1: the predictions table; 2: + request_id, idempotency_key (unique), response. */
#define HISTORY_SCHEMA_VERSION 2

struct history_sqlite {
    sqlite3 *db;
    pthread_mutex_t lock;
    char path[512];
    sqlite3_stmt *insert, *get, *list, *count, *del, *find_key, *ping;
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

/* Version 1 -> 2, in one transaction. */
static const char history_migrate_v2[] =
    "BEGIN;"
    "ALTER TABLE predictions ADD COLUMN request_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE predictions ADD COLUMN idempotency_key TEXT;" /* NULL: none; unique otherwise */
    "ALTER TABLE predictions ADD COLUMN response TEXT;"        /* the answer replayed for the key */
    "CREATE UNIQUE INDEX predictions_idempotency_key ON predictions (idempotency_key);"
    "PRAGMA user_version = 2;"
    "COMMIT;";

#define HISTORY_COLUMNS                                                                                    \
    "id, created_at, file_name, size_bytes, sha256, model, mode, mode_used, label, confidence, probabilities," \
    " latency_ms, request_id"

static enum avemo_status history_fail(struct history_sqlite *h, struct avemo_error *err, const char *what)
{
    return avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", h->path, what, sqlite3_errmsg(h->db));
}

static enum avemo_status history_exec(struct history_sqlite *h, const char *sql, struct avemo_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(h->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", h->path, sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return AVEMO_ERR_IO;
    }
    return AVEMO_OK;
}

static enum avemo_status history_prepare(struct history_sqlite *h, const char *sql, sqlite3_stmt **stmt,
                                         struct avemo_error *err)
{
    if (sqlite3_prepare_v2(h->db, sql, -1, stmt, NULL) != SQLITE_OK) return history_fail(h, err, "prepare");
    return AVEMO_OK;
}

/* The file may come from an older or newer avemo: refuse a schema we do not know. */
static enum avemo_status history_check_version(struct history_sqlite *h, struct avemo_error *err)
{
    sqlite3_stmt *st = NULL;
    enum avemo_status s = history_prepare(h, "PRAGMA user_version", &st, err);
    if (s) return s;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version == 0) { /* a new file: the table was just made as version 1 */
        enum avemo_status s2 = history_exec(h, "PRAGMA user_version = 1", err);
        if (s2) return s2;
        version = 1;
    }
    if (version == 1) {
        enum avemo_status s2 = history_exec(h, history_migrate_v2, err);
        if (s2) {
            sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
            return s2;
        }
        version = 2;
    }
    if (version != HISTORY_SCHEMA_VERSION)
        return avemo_fail(err, AVEMO_ERR_VERSION, "%s: history schema version %d, this build reads %d", h->path,
                          version, HISTORY_SCHEMA_VERSION);
    return AVEMO_OK;
}

static void sqlite_close(void *impl);

static enum avemo_status sqlite_open(const char *path, void **out, struct avemo_error *err)
{
    *out = NULL;
    if (!path || !*path || strlen(path) >= 512)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "history: the database path is empty or too long");
    struct history_sqlite *h = calloc(1, sizeof *h);
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
                             " mode_used, label, confidence, probabilities, latency_ms, request_id,"
                             " idempotency_key, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                             " ON CONFLICT (idempotency_key) DO NOTHING",
                             &h->insert, err)))
        goto fail;
    if ((s = history_prepare(h, "SELECT " HISTORY_COLUMNS " FROM predictions WHERE id = ?", &h->get, err))) goto fail;
    if ((s = history_prepare(h, "SELECT " HISTORY_COLUMNS " FROM predictions ORDER BY id DESC LIMIT ? OFFSET ?",
                             &h->list, err)))
        goto fail;
    if ((s = history_prepare(h, "SELECT count(*) FROM predictions", &h->count, err))) goto fail;
    if ((s = history_prepare(h, "DELETE FROM predictions WHERE id = ?", &h->del, err))) goto fail;
    if ((s = history_prepare(h,
                             "SELECT id, created_at, sha256, response FROM predictions WHERE idempotency_key = ?",
                             &h->find_key, err)))
        goto fail;
    if ((s = history_prepare(h, "SELECT max(id) FROM predictions", &h->ping, err))) goto fail;
    *out = h;
    return AVEMO_OK;
fail:
    sqlite_close(h);
    return s;
}

static void sqlite_close(void *impl)
{
    struct history_sqlite *h = impl;
    if (!h) return;
    sqlite3_finalize(h->find_key);
    sqlite3_finalize(h->ping);
    sqlite3_finalize(h->insert);
    sqlite3_finalize(h->get);
    sqlite3_finalize(h->list);
    sqlite3_finalize(h->count);
    sqlite3_finalize(h->del);
    sqlite3_close(h->db);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static enum avemo_status sqlite_insert(void *impl, const struct serve_history_row *row, int64_t *id,
                                       int *duplicate, struct avemo_error *err)
{
    struct history_sqlite *h = impl;
    const struct serve_history_entry *e = row->e;
    const struct serve_history_request *rq = row->rq;
    pthread_mutex_lock(&h->lock);
    sqlite3_stmt *st = h->insert;
    sqlite3_bind_text(st, 1, row->created_at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, e->file_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, e->size);
    sqlite3_bind_text(st, 4, e->sha256, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, e->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, e->mode, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, e->mode_used, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, e->label, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 9, e->confidence);
    sqlite3_bind_text(st, 10, row->probabilities, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 11, e->latency_ms);
    sqlite3_bind_text(st, 12, rq->request_id ? rq->request_id : "", -1, SQLITE_TRANSIENT);
    if (rq->idempotency_key) sqlite3_bind_text(st, 13, rq->idempotency_key, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 13);
    if (rq->idempotency_key && rq->response) sqlite3_bind_text(st, 14, rq->response, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 14);
    enum avemo_status s = AVEMO_OK;
    /* autocommit: SQLITE_DONE means committed (and fsynced, synchronous=FULL) */
    if (sqlite3_step(st) != SQLITE_DONE) s = history_fail(h, err, "insert");
    else if (sqlite3_changes(h->db) == 0) *duplicate = 1; /* the key is taken: DO NOTHING */
    else *id = sqlite3_last_insert_rowid(h->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status sqlite_find_key(void *impl, const char *key, struct serve_history_replay *out,
                                         struct avemo_error *err)
{
    struct history_sqlite *h = impl;
    pthread_mutex_lock(&h->lock);
    sqlite3_stmt *st = h->find_key;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    enum avemo_status s = AVEMO_OK;
    if (rc == SQLITE_ROW) {
        const char *response = (const char *)sqlite3_column_text(st, 3);
        out->id = sqlite3_column_int64(st, 0);
        snprintf(out->created_at, sizeof out->created_at, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(out->sha256, sizeof out->sha256, "%s", (const char *)sqlite3_column_text(st, 2));
        out->response = strdup(response ? response : "{}");
        if (!out->response) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", h->path);
    } else if (rc == SQLITE_DONE) {
        s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with this idempotency key");
    } else {
        s = history_fail(h, err, "select");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status sqlite_ping(void *impl, struct avemo_error *err)
{
    struct history_sqlite *h = impl;
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = sqlite3_step(h->ping) == SQLITE_ROW ? AVEMO_OK : history_fail(h, err, "select");
    sqlite3_reset(h->ping);
    pthread_mutex_unlock(&h->lock);
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
    cJSON_AddStringToObject(row, "request_id", (const char *)sqlite3_column_text(st, 12));
    return row;
}

static enum avemo_status sqlite_get(void *impl, int64_t id, cJSON **out, struct avemo_error *err)
{
    struct history_sqlite *h = impl;
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

static enum avemo_status sqlite_list(void *impl, int64_t limit, int64_t offset, int64_t *total, cJSON *items,
                                     struct avemo_error *err)
{
    struct history_sqlite *h = impl;
    enum avemo_status s = AVEMO_OK;
    pthread_mutex_lock(&h->lock);
    if (sqlite3_step(h->count) == SQLITE_ROW) *total = sqlite3_column_int64(h->count, 0);
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
    return s;
}

static enum avemo_status sqlite_delete(void *impl, int64_t id, struct avemo_error *err)
{
    struct history_sqlite *h = impl;
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

const struct serve_history_backend serve_history_sqlite = {
    "sqlite", sqlite_open, sqlite_close, sqlite_insert, sqlite_find_key, sqlite_get, sqlite_list, sqlite_delete,
    sqlite_ping,
};
