/* avemo serve internals: the server context, the prediction history, the metrics,
 * the embedded web page and small helpers shared by the files of src/serve/. */
#ifndef AVEMO_SERVE_INTERNAL_H
#define AVEMO_SERVE_INTERNAL_H

#include <avemo/eval.h>
#include <avemo/serve.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- prediction history: one interface (history_db.c), two back ends: an SQLite file
 * (history.c, WAL, synchronous=FULL; the default when --db is a path) and PostgreSQL
 * (history_pg.c, libpq; --db postgresql://user@host:port/dbname) ---- */

typedef struct serve_history serve_history;

struct serve_history_entry {
    const char *file_name;
    int64_t size;
    const char *sha256;      /* 64 hex digits */
    const char *model;
    const char *mode;        /* requested */
    const char *mode_used;
    const char *label;
    double confidence;
    const struct avemo_prediction *pred; /* probabilities */
    double latency_ms;
};

/* What a replica adds to a row. */
struct serve_history_request {
    const char *request_id;      /* X-Request-Id (given or generated) */
    const char *idempotency_key; /* NULL: none */
    const char *response;        /* with a key: the answer (without id, created_at), replayed on a retry */
};

/* A row as the back ends store it. */
struct serve_history_row {
    const struct serve_history_entry *e;
    const struct serve_history_request *rq;
    const char *created_at;      /* ISO 8601 UTC */
    const char *probabilities;   /* JSON object text */
};

/* The stored answer of an Idempotency-Key. */
struct serve_history_replay {
    int64_t id;
    char created_at[32];
    char sha256[65];
    char *response;          /* malloc'ed */
};

/* A back end: every function returns AVEMO_ERR_BUSY when the database cannot be reached
 * (answered 503 + Retry-After; the back end reconnects on a later call). */
struct serve_history_backend {
    const char *name;        /* "sqlite", "postgresql" */
    enum avemo_status (*open)(const char *target, void **impl, struct avemo_error *err);
    void (*close)(void *impl);
    /* *duplicate = 1 (and no row) when the entry's idempotency key is already stored. */
    enum avemo_status (*insert)(void *impl, const struct serve_history_row *row, int64_t *id, int *duplicate,
                                struct avemo_error *err);
    enum avemo_status (*find_key)(void *impl, const char *key, struct serve_history_replay *out,
                                  struct avemo_error *err);
    enum avemo_status (*get)(void *impl, int64_t id, cJSON **out, struct avemo_error *err);
    enum avemo_status (*list)(void *impl, int64_t limit, int64_t offset, int64_t *total, cJSON *items,
                              struct avemo_error *err);
    enum avemo_status (*del)(void *impl, int64_t id, struct avemo_error *err);
    enum avemo_status (*ping)(void *impl, struct avemo_error *err);
};
extern const struct serve_history_backend serve_history_sqlite;
extern const struct serve_history_backend serve_history_postgresql;

/* Open the history named by target: a postgresql:// or postgres:// URI, else an SQLite file. */
enum avemo_status serve_history_open(const char *target, serve_history **out, struct avemo_error *err);
void serve_history_close(serve_history *h);
const char *serve_history_backend_name(const serve_history *h);
/* The target without a password (postgresql://user:secret@host/db -> postgresql://user@host/db). */
void serve_history_redact(const char *target, char *out, size_t size);
/* Insert a row and commit it; *id and *created_at (ISO 8601 UTC, 32 bytes) receive its id and time. */
enum avemo_status serve_history_insert(serve_history *h, const struct serve_history_entry *e, int64_t *id,
                                       char created_at[32], struct avemo_error *err);
/* The same with the request's id and idempotency key: when the key is already stored, no row
 * is added and *duplicate is set to 1. */
enum avemo_status serve_history_insert_request(serve_history *h, const struct serve_history_entry *e,
                                               const struct serve_history_request *rq, int64_t *id,
                                               char created_at[32], int *duplicate, struct avemo_error *err);
/* The answer stored with an idempotency key; AVEMO_ERR_NOT_FOUND when there is none. */
enum avemo_status serve_history_find_key(serve_history *h, const char *key, struct serve_history_replay *out,
                                         struct avemo_error *err);
/* One row as a JSON object; AVEMO_ERR_NOT_FOUND when there is none. */
enum avemo_status serve_history_get(serve_history *h, int64_t id, cJSON **out, struct avemo_error *err);
/* Rows newest first: {"total":N,"limit":L,"offset":O,"items":[...]}. */
enum avemo_status serve_history_list(serve_history *h, int64_t limit, int64_t offset, cJSON **out,
                                     struct avemo_error *err);
/* AVEMO_ERR_NOT_FOUND when there is no such row. */
enum avemo_status serve_history_delete(serve_history *h, int64_t id, struct avemo_error *err);
/* AVEMO_OK when the database answers (GET /readyz). */
enum avemo_status serve_history_ping(serve_history *h, struct avemo_error *err);

/* ---- metrics (metrics.c) ---- */

enum serve_endpoint {
    SERVE_EP_PREDICT, SERVE_EP_MODELS, SERVE_EP_HISTORY, SERVE_EP_HISTORY_ITEM, SERVE_EP_HEALTHZ,
    SERVE_EP_READYZ, SERVE_EP_METRICS, SERVE_EP_WEB, SERVE_EP_OTHER, SERVE_EP_OPENAPI, SERVE_EP_MODEL_CARD,
    SERVE_EP_COUNT
};
const char *serve_endpoint_name(enum serve_endpoint ep);

#define SERVE_STATUS_SLOTS 16     /* distinct HTTP statuses counted; the last slot is "other" */
#define SERVE_LATENCY_BUCKETS 12
#define SERVE_ANSWER_MODELS (2 * AVEMO_SERVE_MAX_MODELS)

struct serve_histogram {
    uint64_t le[SERVE_LATENCY_BUCKETS]; /* non-cumulative counts per bucket */
    uint64_t inf;
    double sum;
};

struct serve_metrics {
    pthread_mutex_t lock;
    uint64_t requests[SERVE_EP_COUNT][SERVE_STATUS_SLOTS];
    uint64_t latency_le[SERVE_EP_COUNT][SERVE_LATENCY_BUCKETS]; /* non-cumulative counts per bucket */
    uint64_t latency_inf[SERVE_EP_COUNT];
    double latency_sum[SERVE_EP_COUNT];
    /* predictions by the model that answered (a main or an extra model), mode used and label */
    char answer_model[SERVE_ANSWER_MODELS][65]; /* pred->model with its NUL */
    char answer_labels[SERVE_ANSWER_MODELS][AVEMO_MAX_CLASSES][9];
    int answer_classes[SERVE_ANSWER_MODELS];
    uint64_t predictions[SERVE_ANSWER_MODELS][3][AVEMO_MAX_CLASSES];
    uint64_t rejected_busy;
    /* seconds an upload waited in the queue, and a worker's decoding + inference time */
    struct serve_histogram queue_wait, inference;
};

void serve_metrics_init(struct serve_metrics *m);
void serve_metrics_destroy(struct serve_metrics *m);
void serve_metrics_request(struct serve_metrics *m, enum serve_endpoint ep, unsigned status, double seconds);
/* One answered prediction, counted under the model that answered (pred->model). */
void serve_metrics_prediction(struct serve_metrics *m, const struct avemo_prediction *pred);
/* A worker's timing of one upload: its wait in the queue and its decoding + inference. */
void serve_metrics_work(struct serve_metrics *m, double queue_wait_s, double inference_s);
/* The Prometheus text of GET /metrics (malloc'ed), NULL when out of memory. */
char *serve_metrics_text(struct avemo_server *srv);

/* ---- the server ---- */

struct serve_model {
    avemo_classifier *clf;
    char path[1024];
    cJSON *card;             /* model-card summary, or NULL */
};

struct serve_request;

struct serve_worker {
    struct avemo_server *srv;
    pthread_t thread;
    int started;
    avemo_classify_ctx *ctx[AVEMO_SERVE_MAX_MODELS];
    struct avemo_prediction pred;   /* ~13 KB: kept here rather than on the stack */
};

/* deadline.c: the whole-request deadline (headers and body), see there. */
struct serve_conn;
struct serve_deadlines {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    int ready, started, stop;
    double limit_s;
    struct serve_conn *head;         /* open connections */
    uint64_t cut;                    /* connections shut down at their deadline */
};

enum avemo_status serve_deadlines_start(struct serve_deadlines *d, double limit_s, struct avemo_error *err);
/* After MHD_stop_daemon (which reports every connection closed). */
void serve_deadlines_stop(struct serve_deadlines *d);
/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the server. */
void serve_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
/* Arm (a request may start: now + the limit) or disarm (all of the request arrived). */
void serve_deadline_arm(struct avemo_server *srv, struct MHD_Connection *conn, int armed);
uint64_t serve_deadlines_cut(struct avemo_server *srv);

struct avemo_server {
    struct avemo_serve_options opt; /* strings point to the copies below */
    char *host, *db_path, *api_key, *cors_origin;
    struct serve_model models[AVEMO_SERVE_MAX_MODELS];
    int num_models;
    serve_history *history;
    struct serve_metrics metrics;

    /* the bounded queue of uploads waiting for a worker */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct serve_request **queue;
    int qcap, qhead, qcount, busy, stopping;
    int queue_ready;                 /* qlock/qcond initialised */

    struct serve_worker *workers;
    int num_workers;
    struct MHD_Daemon *daemon;
    struct serve_deadlines deadlines;
    int port;
    atomic_int ready;
    atomic_int in_flight;            /* queued uploads whose answer is not sent yet */
    int cpus;                        /* usable CPUs: a lone upload may use a second one */
};

#define SERVE_REQUEST_ID_MAX 64
#define SERVE_IDEMPOTENCY_KEY_MAX 128

/* A request in flight (MHD's per-connection pointer). */
enum serve_request_state { SERVE_REQ_RECEIVING, SERVE_REQ_QUEUED, SERVE_REQ_DONE };

struct serve_request {
    struct avemo_server *srv;
    struct MHD_Connection *conn;
    enum serve_endpoint endpoint;
    double t_start;
    unsigned status;                 /* HTTP status answered */
    char method[8];
    char url[160];

    /* POST /v1/predict */
    struct MHD_PostProcessor *pp;
    uint8_t *data;
    size_t size, cap;
    uint64_t received;               /* body bytes read so far */
    int too_large, malformed, file_parts;
    int multipart_done;              /* a multipart body ended: its post processor is destroyed */
    unsigned deferred_status;        /* a refusal answered once the body has been read (predict.c) */
    char deferred_code[32];
    char deferred_message[AVEMO_ERROR_MESSAGE_MAX];
    int counted;                     /* counted in srv->in_flight */
    int dispatched;                  /* routed and checked (dispatch() ran) */
    char *content_type;              /* the canonical multipart Content-Type given to MHD */
    char file_name[200];
    int model;                       /* index into srv->models */
    int signals;                     /* ?signals=1: add the waveform and log-mel overview */
    int explain;                     /* ?explain=1: add the explanation (heat maps, shares) */
    double t_queued;                 /* when it entered the queue (avemo_now) */
    enum avemo_mode mode;
    enum serve_request_state state;
    unsigned resp_status;            /* the worker's answer */
    char *resp_body;

    /* replicas (request_id.c): echoed as X-Request-Id and stored with the row */
    char request_id[SERVE_REQUEST_ID_MAX + 1];
    char idempotency_key[SERVE_IDEMPOTENCY_KEY_MAX + 1]; /* "" when none */
    int replayed;                    /* the answer is the stored one of the key */
};

/* request_id.c: X-Request-Id (the client's when it is sane, else 32 random hex digits)
 * and Idempotency-Key (-1: malformed). */
void serve_request_id_init(struct serve_request *req);
int serve_idempotency_key_init(struct serve_request *req);
/* Add X-Request-Id (and Idempotent-Replayed) to an answer. */
void serve_add_request_headers(const struct serve_request *req, struct MHD_Response *resp);

/* predict.c: upload intake, the work queue and the workers. */
enum MHD_Result serve_predict_begin(struct serve_request *req);
enum MHD_Result serve_predict_body(struct serve_request *req, const char *data, size_t *size);
enum MHD_Result serve_predict_end(struct serve_request *req);
enum avemo_status serve_workers_start(struct avemo_server *srv, struct avemo_error *err);
void serve_workers_stop(struct avemo_server *srv);
/* The inference workers running (read under the queue lock: the stop writes it while the
 * daemon may still answer /readyz). */
int serve_workers_count(struct avemo_server *srv);

/* models.c */
enum avemo_status serve_models_load(struct avemo_server *srv, struct avemo_error *err);
void serve_models_free(struct avemo_server *srv);
cJSON *serve_models_json(const struct avemo_server *srv);
/* The model card (markdown, malloc'ed) of the model named `name`; NULL when there is none. */
char *serve_model_card_text(const struct avemo_server *srv, const char *name);

/* server.c: answers. body is malloc'ed and taken over. */
enum MHD_Result serve_respond(struct serve_request *req, unsigned status, const char *content_type, char *body);
enum MHD_Result serve_respond_json(struct serve_request *req, unsigned status, cJSON *json);
enum MHD_Result serve_respond_error(struct serve_request *req, unsigned status, const char *code,
                                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* The error object {"error":{"code","message"}} as malloc'ed text. */
char *serve_error_body(const char *code, const char *message);
/* HTTP status for a library status (400, 413, 415, 422, 500, 503). */
unsigned serve_http_status(enum avemo_status status);

/* explain.c: ?explain=1.  Classify and explain the upload (pred receives the prediction);
 * *ex is malloc'ed, free it with serve_explanation_free. */
enum avemo_status serve_explain(avemo_classify_ctx *ctx, const struct serve_request *req,
                                struct avemo_prediction *pred, struct avemo_explanation **ex, struct avemo_error *err);
/* avemo_explanation_json with each heat map as a data:image/png;base64 URL, plus
 * "face_crop_index" (malloc'ed, NULL when out of memory). */
char *serve_explanation_json(const struct avemo_explanation *ex, const char *file);
void serve_explanation_free(struct avemo_explanation *ex);

/* util.c */
char *serve_base64(const uint8_t *data, size_t size);
/* The 64x64 RGB face crop as "data:image/jpeg;base64,..." (malloc'ed), or NULL. */
char *serve_face_data_url(const uint8_t *rgb, int width, int height);
/* "data:MIME;base64,..." of the bytes (malloc'ed), or NULL when out of memory. */
char *serve_data_url(const char *mime, const uint8_t *data, size_t size);
/* Parse a decimal integer in [lo, hi]; 0 on success. */
int serve_parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out);
/* The request's declared Content-Length, digits only, as an unsigned number; a value past
 * 2^64 - 1 reads as UINT64_MAX, so a huge declaration is refused as too large, not waited for.
 * Returns 1 with *out set, 0 when the header is absent, -1 when it is not a number. */
int serve_content_length(struct MHD_Connection *conn, uint64_t *out);

/* Length (1..4) of the valid UTF-8 character at p (n bytes left) and its code point in *cp;
 * 0 when the bytes are not one (RFC 3629: no overlong forms, surrogates or values past U+10FFFF). */
int serve_utf8_char(const unsigned char *p, size_t n, uint32_t *cp);
/* 1 for the bidirectional formatting characters (U+061C, U+200E/F, U+202A-E, U+2066-9), which
 * make a file name display as another (an "exe.mp4" that is "4pm.exe"). */
int serve_is_bidi_control(uint32_t cp);
/* Copy `in` into out (cap bytes with the NUL) as valid UTF-8: each byte that is not part of
 * a valid character becomes U+FFFD, a character the end cut is dropped, bidirectional
 * controls too when drop_bidi; stops before a character that does not fit.  Returns the length. */
size_t serve_utf8_clean(const char *in, char *out, size_t cap, int drop_bidi);
/* serve_utf8_clean into a malloc'ed copy (NULL when out of memory). */
char *serve_utf8_dup(const char *in, int drop_bidi);

/* web_assets.c: the embedded web page. */
struct serve_asset {
    const char *path;          /* "/index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t size;
};
const struct serve_asset *serve_find_asset(const char *url);
/* The OpenAPI 3.1 document of the API (src/serve/openapi.json, embedded). */
const struct serve_asset *serve_openapi_asset(void);
int serve_assets_embedded(void);

#endif
