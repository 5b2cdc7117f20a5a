/* The prediction history's PostgreSQL back end (history_db.c is the interface), for replicas
 * that share one history: `avemo serve --db postgresql://user@host:port/dbname`.
 *
 * One libpq connection per server, behind a mutex (the history is a few small statements
 * next to a ~50 ms inference), with every statement prepared once per connection.
 *
 * Schema, created and versioned by avemo (table avemo_schema holds the version):
 *   1: avemo_predictions (id bigserial, the columns of the SQLite history, request_id,
 *      idempotency_key UNIQUE (NULL: none), response: the answer replayed for the key)
 * Two replicas starting together serialise the creation with a transaction-level advisory
 * lock.  A database of a newer version is refused (AVEMO_ERR_VERSION).
 *
 * Connection loss, or a statement past lock_timeout (2 s) or statement_timeout (5 s): the
 * failing call answers AVEMO_ERR_BUSY (HTTP 503 + Retry-After); after a loss the next call reconnects (at most one attempt per second, connect_timeout 3 s) and prepares
 * the statements again.  An insert is never retried by us: the client's retry with the
 * same Idempotency-Key gets the first answer if the row was committed after all. */
#include "serve/serve_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_SCHEMA_VERSION 1
#define PG_LOCK_KEY 7406116 /* advisory lock taken while the schema is made */
#define PG_RECONNECT_INTERVAL_S 1.0

struct history_pg {
    PGconn *conn;
    pthread_mutex_t lock;
    char name[256];          /* the URI without its password, for messages */
    double last_attempt;     /* avemo_now() of the last failed connection attempt */
    int prepared;            /* the statements exist on this connection */
};

#define PG_COLUMNS                                                                                         \
    "id, created_at, file_name, size_bytes, sha256, model, mode, mode_used, label, confidence, probabilities," \
    " latency_ms, request_id"

static const char pg_schema[] =
    "CREATE TABLE IF NOT EXISTS avemo_schema (version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS avemo_predictions ("
    " id bigserial PRIMARY KEY,"
    " created_at text NOT NULL,"
    " file_name text NOT NULL,"
    " size_bytes bigint NOT NULL,"
    " sha256 text NOT NULL,"
    " model text NOT NULL,"
    " mode text NOT NULL,"
    " mode_used text NOT NULL,"
    " label text NOT NULL,"
    " confidence double precision NOT NULL,"
    " probabilities text NOT NULL,"
    " latency_ms double precision NOT NULL,"
    " request_id text NOT NULL,"
    " idempotency_key text UNIQUE,"
    " response text);";

static const struct {
    const char *name;
    const char *sql;
    int nparams;
} pg_statements[] = {
    {"avemo_insert",
     "INSERT INTO avemo_predictions (created_at, file_name, size_bytes, sha256, model, mode, mode_used, label,"
     " confidence, probabilities, latency_ms, request_id, idempotency_key, response)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
     " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
     14},
    {"avemo_find_key", "SELECT id, created_at, sha256, response FROM avemo_predictions WHERE idempotency_key = $1",
     1},
    {"avemo_get", "SELECT " PG_COLUMNS " FROM avemo_predictions WHERE id = $1", 1},
    {"avemo_list", "SELECT " PG_COLUMNS " FROM avemo_predictions ORDER BY id DESC LIMIT $1 OFFSET $2", 2},
    {"avemo_count", "SELECT count(*) FROM avemo_predictions", 0},
    {"avemo_delete", "DELETE FROM avemo_predictions WHERE id = $1", 1},
    {"avemo_ping", "SELECT 1", 0},
};

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation already exists, skipping" and the like */
}

static enum avemo_status pg_lost(struct history_pg *h, struct avemo_error *err, const char *what)
{
    return avemo_fail(err, AVEMO_ERR_BUSY, "%s: %s: the database cannot be reached (%s); retry later", h->name,
                      what, h->conn ? PQerrorMessage(h->conn) : "no connection");
}

/* A statement cancelled by lock_timeout (55P03) or statement_timeout (57014): busy, not broken. */
static int pg_timed_out(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0);
}

/* A failed statement: lost connection or a timeout (BUSY) or an SQL error (IO). Clears res. */
static enum avemo_status pg_fail(struct history_pg *h, PGresult *res, struct avemo_error *err, const char *what)
{
    enum avemo_status s;
    if (PQstatus(h->conn) != CONNECTION_OK) {
        h->prepared = 0;
        s = pg_lost(h, err, what);
    } else if (pg_timed_out(res)) {
        s = avemo_fail(err, AVEMO_ERR_BUSY, "%s: %s: the database did not answer in time (%s); retry later", h->name,
                       what, PQresultErrorMessage(res));
    } else {
        s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", h->name, what,
                       res ? PQresultErrorMessage(res) : PQerrorMessage(h->conn));
    }
    PQclear(res);
    return s;
}

static enum avemo_status pg_command(struct history_pg *h, const char *sql, struct avemo_error *err)
{
    PGresult *res = PQexec(h->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(h, res, err, "setup");
    PQclear(res);
    return AVEMO_OK;
}

/* Create the tables (once, whoever comes first) and check their version. */
static enum avemo_status pg_create_schema(struct history_pg *h, struct avemo_error *err)
{
    enum avemo_status s;
    char lock[96];
    snprintf(lock, sizeof lock, "BEGIN; SELECT pg_advisory_xact_lock(%d)", PG_LOCK_KEY);
    if ((s = pg_command(h, lock, err)) || (s = pg_command(h, pg_schema, err))) goto fail;
    PGresult *res = PQexec(h->conn, "SELECT max(version) FROM avemo_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        s = pg_fail(h, res, err, "schema version");
        goto fail;
    }
    int version = PQgetisnull(res, 0, 0) ? 0 : atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (version == 0) {
        char insert[80];
        snprintf(insert, sizeof insert, "INSERT INTO avemo_schema VALUES (%d)", PG_SCHEMA_VERSION);
        if ((s = pg_command(h, insert, err))) goto fail;
    } else if (version != PG_SCHEMA_VERSION) {
        s = avemo_fail(err, AVEMO_ERR_VERSION, "%s: history schema version %d, this build reads %d", h->name, version,
                       PG_SCHEMA_VERSION);
        goto fail;
    }
    return pg_command(h, "COMMIT", err);
fail:
    PQclear(PQexec(h->conn, "ROLLBACK"));
    return s;
}

static enum avemo_status pg_prepare_all(struct history_pg *h, struct avemo_error *err)
{
    /* A connection that survived an earlier, partial attempt still has its first statements:
     * preparing them again would fail with "already exists" until a restart. */
    PGresult *clean = PQexec(h->conn, "DEALLOCATE ALL");
    if (PQresultStatus(clean) != PGRES_COMMAND_OK) return pg_fail(h, clean, err, "prepare");
    PQclear(clean);
    for (size_t i = 0; i < sizeof pg_statements / sizeof pg_statements[0]; i++) {
        PGresult *res = PQprepare(h->conn, pg_statements[i].name, pg_statements[i].sql, pg_statements[i].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) return pg_fail(h, res, err, "prepare");
        PQclear(res);
    }
    h->prepared = 1;
    return AVEMO_OK;
}

/* Make sure there is a working connection with the statements prepared (lock held). */
static enum avemo_status pg_connected(struct history_pg *h, struct avemo_error *err)
{
    if (h->conn && PQstatus(h->conn) == CONNECTION_OK && h->prepared) return AVEMO_OK;
    double now = avemo_now();
    if (h->last_attempt > 0 && now - h->last_attempt < PG_RECONNECT_INTERVAL_S) return pg_lost(h, err, "reconnect");
    if (PQstatus(h->conn) != CONNECTION_OK) PQreset(h->conn);
    if (PQstatus(h->conn) != CONNECTION_OK) {
        h->last_attempt = now;
        return pg_lost(h, err, "reconnect");
    }
    enum avemo_status s = pg_prepare_all(h, err);
    h->last_attempt = s ? now : 0;
    return s;
}

static void pg_close(void *impl)
{
    struct history_pg *h = impl;
    if (!h) return;
    PQfinish(h->conn);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static enum avemo_status pg_open(const char *uri, void **out, struct avemo_error *err)
{
    *out = NULL;
    if (strlen(uri) > 1024) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "history: the database URI is too long");
    struct history_pg *h = calloc(1, sizeof *h);
    if (!h) return avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
    pthread_mutex_init(&h->lock, NULL);
    serve_history_redact(uri, h->name, sizeof h->name);
    /* Our defaults come before dbname, so that the URI's own parameters (expand_dbname) win.
     * Every call holds the history's one mutex: a database that hangs (a locked table, a lost
     * peer) must fail the call in seconds rather than hold every worker. */
    const char *const keys[] = {"connect_timeout", "application_name", "options", "tcp_user_timeout", "dbname", NULL};
    const char *const values[] = {"3", "avemo", "-c statement_timeout=5000 -c lock_timeout=2000", "10000", uri, NULL};
    h->conn = PQconnectdbParams(keys, values, 1);
    enum avemo_status s = AVEMO_OK;
    if (!h->conn) {
        s = avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
    } else if (PQstatus(h->conn) != CONNECTION_OK) {
        s = avemo_fail(err, AVEMO_ERR_IO, "%s: cannot connect: %s", h->name, PQerrorMessage(h->conn));
    } else {
        PQsetNoticeProcessor(h->conn, quiet_notices, NULL);
        if (!(s = pg_create_schema(h, err))) s = pg_prepare_all(h, err);
    }
    if (s) {
        pg_close(h);
        return s;
    }
    *out = h;
    return AVEMO_OK;
}

/* Run a prepared statement with text parameters (lock held); NULL result status checked by caller. */
static PGresult *pg_run(struct history_pg *h, const char *name, int n, const char *const *params)
{
    return PQexecPrepared(h->conn, name, n, params, NULL, NULL, 0);
}

static enum avemo_status pg_insert(void *impl, const struct serve_history_row *row, int64_t *id, int *duplicate,
                                   struct avemo_error *err)
{
    struct history_pg *h = impl;
    const struct serve_history_entry *e = row->e;
    const struct serve_history_request *rq = row->rq;
    char size[24], confidence[32], latency[32];
    snprintf(size, sizeof size, "%lld", (long long)e->size);
    snprintf(confidence, sizeof confidence, "%.17g", e->confidence);
    snprintf(latency, sizeof latency, "%.17g", e->latency_ms);
    const char *params[14] = {
        row->created_at, e->file_name, size, e->sha256, e->model, e->mode, e->mode_used, e->label, confidence,
        row->probabilities, latency, rq->request_id ? rq->request_id : "", rq->idempotency_key,
        rq->idempotency_key ? rq->response : NULL,
    };
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    if (!s) {
        /* autocommit: PGRES_TUPLES_OK means committed */
        PGresult *res = pg_run(h, "avemo_insert", 14, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            s = pg_fail(h, res, err, "insert");
        } else {
            if (PQntuples(res) == 0) *duplicate = 1; /* the key is taken: DO NOTHING */
            else *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status pg_find_key(void *impl, const char *key, struct serve_history_replay *out,
                                     struct avemo_error *err)
{
    struct history_pg *h = impl;
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    if (!s) {
        PGresult *res = pg_run(h, "avemo_find_key", 1, &key);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            s = pg_fail(h, res, err, "select");
        } else if (PQntuples(res) == 0) {
            PQclear(res);
            s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with this idempotency key");
        } else {
            out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            snprintf(out->created_at, sizeof out->created_at, "%s", PQgetvalue(res, 0, 1));
            snprintf(out->sha256, sizeof out->sha256, "%s", PQgetvalue(res, 0, 2));
            out->response = strdup(PQgetisnull(res, 0, 3) ? "{}" : PQgetvalue(res, 0, 3));
            PQclear(res);
            if (!out->response) s = avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
        }
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

static cJSON *pg_row_json(const PGresult *res, int r)
{
    cJSON *row = cJSON_CreateObject();
    if (!row) return NULL;
    cJSON_AddNumberToObject(row, "id", strtod(PQgetvalue(res, r, 0), NULL));
    cJSON_AddStringToObject(row, "created_at", PQgetvalue(res, r, 1));
    cJSON_AddStringToObject(row, "file_name", PQgetvalue(res, r, 2));
    cJSON_AddNumberToObject(row, "size", strtod(PQgetvalue(res, r, 3), NULL));
    cJSON_AddStringToObject(row, "sha256", PQgetvalue(res, r, 4));
    cJSON_AddStringToObject(row, "model", PQgetvalue(res, r, 5));
    cJSON_AddStringToObject(row, "mode", PQgetvalue(res, r, 6));
    cJSON_AddStringToObject(row, "mode_used", PQgetvalue(res, r, 7));
    cJSON_AddStringToObject(row, "label", PQgetvalue(res, r, 8));
    cJSON_AddNumberToObject(row, "confidence", strtod(PQgetvalue(res, r, 9), NULL));
    cJSON *probs = cJSON_Parse(PQgetvalue(res, r, 10));
    cJSON_AddItemToObject(row, "probabilities", probs ? probs : cJSON_CreateObject());
    cJSON_AddNumberToObject(row, "latency_ms", strtod(PQgetvalue(res, r, 11), NULL));
    cJSON_AddStringToObject(row, "request_id", PQgetvalue(res, r, 12));
    return row;
}

static enum avemo_status pg_get(void *impl, int64_t id, cJSON **out, struct avemo_error *err)
{
    struct history_pg *h = impl;
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%lld", (long long)id);
    const char *params[1] = {id_text};
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    if (!s) {
        PGresult *res = pg_run(h, "avemo_get", 1, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            s = pg_fail(h, res, err, "select");
        } else {
            if (PQntuples(res) == 0)
                s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with id %lld", (long long)id);
            else if (!(*out = pg_row_json(res, 0)))
                s = avemo_fail(err, AVEMO_ERR_NOMEM, "history: out of memory");
            PQclear(res);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status pg_list(void *impl, int64_t limit, int64_t offset, int64_t *total, cJSON *items,
                                 struct avemo_error *err)
{
    struct history_pg *h = impl;
    char limit_text[24], offset_text[24];
    snprintf(limit_text, sizeof limit_text, "%lld", (long long)limit);
    snprintf(offset_text, sizeof offset_text, "%lld", (long long)offset);
    const char *params[2] = {limit_text, offset_text};
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    PGresult *res = s ? NULL : pg_run(h, "avemo_count", 0, NULL);
    if (!s && PQresultStatus(res) != PGRES_TUPLES_OK) {
        s = pg_fail(h, res, err, "count");
        res = NULL;
    }
    if (!s) {
        *total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        res = pg_run(h, "avemo_list", 2, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) s = pg_fail(h, res, err, "select");
        else
            for (int r = 0; r < PQntuples(res); r++) cJSON_AddItemToArray(items, pg_row_json(res, r));
        if (!s) PQclear(res);
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status pg_delete(void *impl, int64_t id, struct avemo_error *err)
{
    struct history_pg *h = impl;
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%lld", (long long)id);
    const char *params[1] = {id_text};
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    if (!s) {
        PGresult *res = pg_run(h, "avemo_delete", 1, params);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            s = pg_fail(h, res, err, "delete");
        } else {
            if (strcmp(PQcmdTuples(res), "0") == 0)
                s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "history: no prediction with id %lld", (long long)id);
            PQclear(res);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

static enum avemo_status pg_ping(void *impl, struct avemo_error *err)
{
    struct history_pg *h = impl;
    pthread_mutex_lock(&h->lock);
    enum avemo_status s = pg_connected(h, err);
    if (!s) {
        PGresult *res = pg_run(h, "avemo_ping", 0, NULL);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) s = pg_fail(h, res, err, "ping");
        else PQclear(res);
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

const struct serve_history_backend serve_history_postgresql = {
    "postgresql", pg_open, pg_close, pg_insert, pg_find_key, pg_get, pg_list, pg_delete, pg_ping,
};
