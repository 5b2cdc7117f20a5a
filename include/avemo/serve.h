/*
 * avemo serve: the classifier as an HTTP service (libmicrohttpd).
 *
 *   POST /v1/predict        a clip (multipart field "file" or a raw body) -> the prediction as JSON
 *   GET  /v1/models         the loaded models, their modes, labels and model-card figures
 *   GET  /v1/history        the prediction history (SQLite or PostgreSQL), GET/DELETE /v1/history/{id}
 *   GET  /v1/models/{name}/card  the model card (markdown)
 *   GET  /healthz /readyz /metrics (Prometheus text), GET /openapi.json (OpenAPI 3.1), GET / the web page
 *
 * One process: the models are loaded once and shared read-only; `threads` inference
 * workers each own one avemo_classify_ctx per model and take uploads from a bounded
 * queue (503 + Retry-After when it is full).  docs/http-api.md documents the API.
 */
#ifndef AVEMO_SERVE_H
#define AVEMO_SERVE_H

#include <avemo/core.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVEMO_SERVE_MAX_MODELS 8

struct avemo_serve_options {
    /* Model files (.avm); the first is the default.  With none, the server runs but
     * /readyz answers 503 and /v1/predict 503 (not ready). */
    const char *models[AVEMO_SERVE_MAX_MODELS];
    int num_models;
    /* Unimodal models loaded with every model above, used when it cannot serve a mode
     * (mode=audio with an audio-visual model, or av on a clip without face or sound);
     * a file equal to the main model is skipped.  See avemo_classifier_options. */
    const char *extra_models[AVEMO_SERVE_MAX_MODELS];
    int num_extra_models;
    const char *host;          /* address to bind (default "127.0.0.1") */
    int port;                  /* 0: an ephemeral port, see avemo_server_port() */
    const char *db_path;       /* history: an SQLite file (default "history.sqlite"), or a
                                * postgresql://user@host:port/dbname URI shared by replicas */
    int threads;               /* inference workers (default 2, at most 64) */
    int http_threads;          /* libmicrohttpd thread pool (default 2, at most 64) */
    int queue_capacity;        /* uploads waiting for a worker (default 4 * threads, at most 4096) */
    size_t max_upload_bytes;   /* largest accepted clip (default 50 MiB, at most 1 GiB) */
    const char *api_key;       /* NULL: no key; else /v1/ needs "Authorization: Bearer KEY" or
                                * "X-API-Key: KEY"; "" is refused (an unset variable, most likely) */
    int connection_timeout_s;  /* idle connections are closed after this (default 30 s) */
    int request_timeout_s;     /* a request's headers and body must arrive within this, however
                                * slowly they trickle (default 60 s; then 408 or the connection
                                * is closed) */
    int max_connections;       /* simultaneous connections (default 64, at most 10000) */
    int max_connections_per_client; /* from one IP address (default: half of max_connections) */
    int quiet;                 /* 1: no access log on stderr */
    const char *cors_origin;   /* NULL: no CORS headers; "https://app.example" or "*": answers carry
                                * Access-Control-Allow-Origin and OPTIONS preflights are answered */
    float uncertain_below;     /* answers under this top probability are "uncertain" (0: each model's
                                * stored threshold or 0.5; negative: never); see avemo_classifier_options */
};

/* Fill opt with the defaults above. */
void avemo_serve_options_default(struct avemo_serve_options *opt);

typedef struct avemo_server avemo_server;

/* Open the history, load the models, start the workers and listen.  Returns once
 * the server accepts connections; it runs in its own threads until avemo_server_stop(). */
enum avemo_status avemo_server_start(const struct avemo_serve_options *opt, avemo_server **out,
                                     struct avemo_error *err);
/* The port actually bound (useful with port 0). */
int avemo_server_port(const avemo_server *srv);
/* The history database as messages show it: the file, or the PostgreSQL URI without its password. */
const char *avemo_server_history_name(const avemo_server *srv);
/* Finish the queued predictions, stop listening and free everything. */
void avemo_server_stop(avemo_server *srv);

/* SHA-256 of a buffer as 64 lowercase hex digits and a NUL (the history's upload hash). */
void avemo_sha256_hex(const void *data, size_t size, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_SERVE_H */
