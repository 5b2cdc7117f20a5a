/* The HTTP server: libmicrohttpd with its own thread pool for the connections, routing,
 * the API key, JSON answers and errors, and the start/stop of the whole service.
 * Predictions run on the inference workers of predict.c, never on MHD's threads. */
#include "serve/serve_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_QUEUE 4096
#define MAX_CONNECTIONS 10000
#define MAX_UPLOAD_BYTES ((size_t)1 << 30)
#define HISTORY_PAGE_DEFAULT 50
#define HISTORY_PAGE_MAX 1000

void avemo_serve_options_default(struct avemo_serve_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->host = "127.0.0.1";
    opt->port = 8080;
    opt->db_path = "history.sqlite";
    opt->threads = 2;
    opt->http_threads = 2;
    opt->queue_capacity = 0; /* 4 * threads */
    opt->max_upload_bytes = (size_t)50 << 20;
    opt->connection_timeout_s = 30;
    opt->request_timeout_s = 60;
    opt->max_connections = 64;
    opt->max_connections_per_client = 0; /* half of max_connections */
}

/* ---- answers ---- */

unsigned serve_http_status(enum avemo_status status)
{
    switch (status) {
    case AVEMO_OK: return 200;
    case AVEMO_ERR_INVALID_ARG:
    case AVEMO_ERR_EMPTY: return 400;
    case AVEMO_ERR_NOT_FOUND: return 404;
    case AVEMO_ERR_UNSUPPORTED:
    case AVEMO_ERR_CORRUPT: return 415;         /* not a media file we can read */
    case AVEMO_ERR_NO_AUDIO:
    case AVEMO_ERR_NO_VIDEO:
    case AVEMO_ERR_SILENT:
    case AVEMO_ERR_NO_FACE: return 422;         /* media without what the mode needs */
    case AVEMO_ERR_TOO_LARGE:
    case AVEMO_ERR_TOO_LONG: return 413;
    /* A full queue, or a decode past its time budget (which depends on the load more than on
     * the upload): the service could not do the work now.  Every 503 carries Retry-After. */
    case AVEMO_ERR_BUSY:
    case AVEMO_ERR_TIMEOUT: return 503;
    default: return 500;
    }
}

/* cJSON copies bytes as they are: a message holding request bytes (a URL with %ff, a model
 * name) is made valid UTF-8 first, so that every error body parses as JSON. */
char *serve_error_body(const char *code, const char *message)
{
    char *clean = serve_utf8_dup(message, 0);
    if (!clean) return NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(error, "code", code);
    cJSON_AddStringToObject(error, "message", clean);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(clean);
    return text;
}

/* --cors ORIGIN: browsers on that origin may call the API (GET, POST, DELETE with a key). */
static void add_cors_headers(const struct avemo_server *srv, struct MHD_Response *resp)
{
    if (!srv->cors_origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", srv->cors_origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Retry-After, X-Request-Id, Idempotent-Replayed");
    if (strcmp(srv->cors_origin, "*") != 0) MHD_add_response_header(resp, "Vary", "Origin");
}

static void add_common_headers(struct MHD_Response *resp, unsigned status, const char *content_type)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
}

enum MHD_Result serve_respond(struct serve_request *req, unsigned status, const char *content_type, char *body)
{
    if (!body) { /* the answer could not be built: out of memory */
        status = 500;
        content_type = "application/json";
        body = serve_error_body("internal", "out of memory");
        if (!body) return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    add_common_headers(resp, status, content_type);
    serve_add_request_headers(req, resp);
    add_cors_headers(req->srv, resp);
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                req->endpoint == SERVE_EP_PREDICT        ? "POST"
                                : req->endpoint == SERVE_EP_HISTORY_ITEM ? "GET, HEAD, DELETE"
                                                                         : "GET, HEAD");
    req->status = status;
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result serve_respond_json(struct serve_request *req, unsigned status, cJSON *json)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    return serve_respond(req, status, "application/json", text);
}

enum MHD_Result serve_respond_error(struct serve_request *req, unsigned status, const char *code, const char *fmt, ...)
{
    char message[AVEMO_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return serve_respond(req, status, "application/json", serve_error_body(code, message));
}

static enum MHD_Result respond_library_error(struct serve_request *req, const struct avemo_error *err)
{
    return serve_respond_error(req, serve_http_status(err->status), avemo_status_name(err->status), "%s",
                               err->message[0] ? err->message : avemo_strerror(err->status));
}

/* ---- endpoints ---- */

static enum MHD_Result answer_web(struct serve_request *req, const char *url)
{
    const struct serve_asset *asset = serve_find_asset(strcmp(url, "/") == 0 ? "/index.html" : url);
    if (!asset)
        return serve_respond_error(req, 404, "not_found",
                                   serve_assets_embedded() ? "no such page: %.100s"
                                                           : "no such page: %.100s (this build has no embedded web "
                                                             "page: include src/serve/web/web.cmake in CMake)",
                                   url);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(asset->size, (void *)asset->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, asset->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    serve_add_request_headers(req, resp);
    req->status = 200;
    enum MHD_Result r = MHD_queue_response(req->conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
}

/* GET /openapi.json: the embedded OpenAPI 3.1 document. */
static enum MHD_Result answer_openapi(struct serve_request *req)
{
    const struct serve_asset *doc = serve_openapi_asset();
    if (!doc) return serve_respond_error(req, 404, "not_found", "this build has no embedded OpenAPI document");
    char *body = malloc(doc->size + 1);
    if (body) {
        memcpy(body, doc->data, doc->size);
        body[doc->size] = '\0';
    }
    return serve_respond(req, 200, "application/json", body);
}

/* GET /v1/models/{name}/card: the model card as markdown. */
static enum MHD_Result answer_model_card(struct serve_request *req, const char *url)
{
    char name[80];
    const char *rest = url + strlen("/v1/models/");
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof name || strcmp(rest + n, "/card") != 0)
        return serve_respond_error(req, 404, "not_found", "no such endpoint: %.100s", url);
    snprintf(name, sizeof name, "%.*s", (int)n, rest);
    char *text = serve_model_card_text(req->srv, name);
    if (!text) return serve_respond_error(req, 404, "not_found", "no model card for '%.64s' (see /v1/models)", name);
    return serve_respond(req, 200, "text/markdown; charset=utf-8", text);
}

/* A CORS preflight (OPTIONS with --cors): which methods and headers the API takes. */
static enum MHD_Result answer_preflight(struct serve_request *req)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    add_cors_headers(req->srv, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS");
    /* the headers a page may send: the key, the upload's type, its own request id and an
     * idempotency key for a retried upload */
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, X-API-Key, Content-Type, X-Request-Id, Idempotency-Key");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    req->status = 204;
    enum MHD_Result r = MHD_queue_response(req->conn, 204, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result answer_healthz(struct serve_request *req)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "version", avemo_version());
    return serve_respond_json(req, 200, j);
}

/* Ready: a model is loaded and the history database answers (a replica whose database is
 * gone takes itself out of the load balancer's rotation). */
static enum MHD_Result answer_readyz(struct serve_request *req)
{
    if (!atomic_load(&req->srv->ready)) return serve_respond_error(req, 503, "not_ready", "no model is loaded");
    struct avemo_error err = {0};
    if (serve_history_ping(req->srv->history, &err)) {
        /* /readyz needs no key: the database's host, user and error stay in the server's log */
        fprintf(stderr, "avemo serve: /readyz: %s\n", err.message);
        return serve_respond_error(req, 503, "database_unavailable",
                                   "the history database cannot be reached (the server's log says why)");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ready");
    cJSON_AddNumberToObject(j, "models", req->srv->num_models);
    cJSON_AddNumberToObject(j, "workers", serve_workers_count(req->srv));
    cJSON_AddStringToObject(j, "database", serve_history_backend_name(req->srv->history));
    return serve_respond_json(req, 200, j);
}

static enum MHD_Result answer_metrics(struct serve_request *req)
{
    return serve_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", serve_metrics_text(req->srv));
}

/* A query integer in [lo, hi], or `fallback` when absent; -1 when malformed. */
static int query_int(struct serve_request *req, const char *key, int64_t lo, int64_t hi, int64_t fallback,
                     int64_t *out)
{
    const char *text = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    *out = fallback;
    if (!text) return 0;
    return serve_parse_int(text, lo, hi, out);
}

static enum MHD_Result answer_history_list(struct serve_request *req)
{
    int64_t limit, offset;
    if (query_int(req, "limit", 1, HISTORY_PAGE_MAX, HISTORY_PAGE_DEFAULT, &limit))
        return serve_respond_error(req, 400, "bad_request", "limit must be an integer from 1 to %d",
                                   HISTORY_PAGE_MAX);
    if (query_int(req, "offset", 0, INT64_MAX / 2, 0, &offset))
        return serve_respond_error(req, 400, "bad_request", "offset must be a non-negative integer");
    struct avemo_error err = {0};
    cJSON *page = NULL;
    if (serve_history_list(req->srv->history, limit, offset, &page, &err)) return respond_library_error(req, &err);
    return serve_respond_json(req, 200, page);
}

static enum MHD_Result answer_history_item(struct serve_request *req, const char *method, const char *id_text)
{
    int64_t id;
    if (serve_parse_int(id_text, 1, INT64_MAX, &id))
        return serve_respond_error(req, 400, "bad_request", "'%.40s' is not a history id", id_text);
    struct avemo_error err = {0};
    if (strcmp(method, "DELETE") == 0) {
        if (serve_history_delete(req->srv->history, id, &err)) return respond_library_error(req, &err);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "deleted", (double)id);
        return serve_respond_json(req, 200, j);
    }
    cJSON *row = NULL;
    if (serve_history_get(req->srv->history, id, &row, &err)) return respond_library_error(req, &err);
    return serve_respond_json(req, 200, row);
}

/* ---- routing ---- */

static enum serve_endpoint route_endpoint(const char *url)
{
    if (strcmp(url, "/v1/predict") == 0) return SERVE_EP_PREDICT;
    if (strcmp(url, "/v1/models") == 0) return SERVE_EP_MODELS;
    if (strcmp(url, "/v1/history") == 0) return SERVE_EP_HISTORY;
    if (strncmp(url, "/v1/history/", 12) == 0) return SERVE_EP_HISTORY_ITEM;
    if (strncmp(url, "/v1/models/", 11) == 0) return SERVE_EP_MODEL_CARD;
    if (strcmp(url, "/openapi.json") == 0) return SERVE_EP_OPENAPI;
    if (strcmp(url, "/healthz") == 0) return SERVE_EP_HEALTHZ;
    if (strcmp(url, "/readyz") == 0) return SERVE_EP_READYZ;
    if (strcmp(url, "/metrics") == 0) return SERVE_EP_METRICS;
    if (strncmp(url, "/v1/", 4) != 0 && (strcmp(url, "/") == 0 || serve_find_asset(url))) return SERVE_EP_WEB;
    return SERVE_EP_OTHER;
}

/* Compare in time independent of where the texts differ. */
static int same_secret(const char *given, const char *key)
{
    size_t n = strlen(key), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

static int authorized(struct serve_request *req)
{
    const char *key = req->srv->api_key;
    if (!key) return 1;
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-API-Key");
    if (given && same_secret(given, key)) return 1;
    const char *auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return auth && strncmp(auth, "Bearer ", 7) == 0 && same_secret(auth + 7, key);
}

static int is_get(const char *method) { return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0; }

/* The first call for a request: everything but the body of a prediction is answered here. */
static enum MHD_Result dispatch(struct serve_request *req, const char *url, const char *method)
{
    enum serve_endpoint ep = req->endpoint;
    if (strcmp(method, "OPTIONS") == 0 && req->srv->cors_origin && ep != SERVE_EP_OTHER) return answer_preflight(req);
    if (strncmp(url, "/v1/", 4) == 0 && !authorized(req))
        return serve_respond_error(req, 401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)");
    if (ep == SERVE_EP_OTHER) return serve_respond_error(req, 404, "not_found", "no such endpoint: %.100s", url);
    if (ep == SERVE_EP_PREDICT) {
        if (strcmp(method, "POST") != 0)
            return serve_respond_error(req, 405, "method_not_allowed", "%s needs POST", url);
        return serve_predict_begin(req);
    }
    if (ep == SERVE_EP_HISTORY_ITEM && strcmp(method, "DELETE") == 0)
        return answer_history_item(req, method, url + 12);
    if (!is_get(method))
        return serve_respond_error(req, 405, "method_not_allowed", "%.8s is not allowed on %.100s", method, url);
    switch (ep) {
    case SERVE_EP_MODELS: return serve_respond_json(req, 200, serve_models_json(req->srv));
    case SERVE_EP_HISTORY: return answer_history_list(req);
    case SERVE_EP_HISTORY_ITEM: return answer_history_item(req, method, url + 12);
    case SERVE_EP_HEALTHZ: return answer_healthz(req);
    case SERVE_EP_READYZ: return answer_readyz(req);
    case SERVE_EP_METRICS: return answer_metrics(req);
    case SERVE_EP_WEB: return answer_web(req, url);
    case SERVE_EP_OPENAPI: return answer_openapi(req);
    case SERVE_EP_MODEL_CARD: return answer_model_card(req, url);
    default: return serve_respond_error(req, 404, "not_found", "no such endpoint: %.100s", url);
    }
}

static int declares_body(struct MHD_Connection *conn)
{
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
           (length && strcmp(length, "0") != 0);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    struct serve_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        req->srv = cls;
        req->conn = conn;
        req->t_start = avemo_now();
        req->endpoint = route_endpoint(url);
        snprintf(req->method, sizeof req->method, "%s", method);
        snprintf(req->url, sizeof req->url, "%s", url);
        for (char *c = req->url; *c; c++) /* the access log stays one line per request */
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        serve_request_id_init(req);
        *con_cls = req;
        /* An upload is checked before its body is read (size, type, key; a refused upload of an
         * acceptable size is answered after its body, which is dropped: predict.c), and so is any
         * request with a body (refused, not read); anything else is answered on the last
         * call: an answer queued on the first call makes libmicrohttpd close the connection
         * (it cannot know there is no body), so keep-alive would not work. */
        if (req->endpoint == SERVE_EP_PREDICT || declares_body(conn)) {
            req->dispatched = 1;
            return dispatch(req, url, method);
        }
        return MHD_YES;
    }
    if (req->endpoint == SERVE_EP_PREDICT && !req->status && *upload_data_size)
        return serve_predict_body(req, upload_data, upload_data_size);
    if (*upload_data_size) { /* a body nobody asked for */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->status) return MHD_YES;
    if (req->state != SERVE_REQ_DONE) serve_deadline_arm(req->srv, conn, 0); /* all of it arrived */
    if (!req->dispatched) {
        req->dispatched = 1;
        return dispatch(req, url, method);
    }
    if (req->endpoint == SERVE_EP_PREDICT) return serve_predict_end(req);
    return serve_respond_error(req, 500, "internal", "request without an answer");
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct avemo_server *srv = cls;
    serve_deadline_arm(srv, conn, 1); /* the next request on a kept-alive connection */
    struct serve_request *req = *con_cls;
    if (!req) return;
    double seconds = avemo_now() - req->t_start;
    serve_metrics_request(&srv->metrics, req->endpoint, req->status, seconds);
    if (!srv->opt.quiet)
        fprintf(stderr, "avemo serve: %s %s %u %.1f ms %s\n", req->method, req->url, req->status, seconds * 1000.0,
                req->request_id);
    if (req->counted) atomic_fetch_sub(&srv->in_flight, 1);
    if (req->pp) MHD_destroy_post_processor(req->pp);
    free(req->content_type);
    free(req->data);
    free(req->resp_body);
    free(req);
    *con_cls = NULL;
}

/* ---- start and stop ---- */

static enum avemo_status copy_options(struct avemo_server *srv, const struct avemo_serve_options *in,
                                      struct avemo_error *err)
{
    struct avemo_serve_options *o = &srv->opt;
    *o = *in;
    if (o->num_models < 0 || o->num_models > AVEMO_SERVE_MAX_MODELS)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: %d models, at most %d", o->num_models,
                          AVEMO_SERVE_MAX_MODELS);
    if (o->num_extra_models < 0 || o->num_extra_models > AVEMO_SERVE_MAX_MODELS)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: %d extra models, at most %d", o->num_extra_models,
                          AVEMO_SERVE_MAX_MODELS);
    if (o->port < 0 || o->port > 65535)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: port %d is not in 0..65535", o->port);
    if (o->threads <= 0) o->threads = 2;
    if (o->http_threads <= 0) o->http_threads = 2;
    if (o->threads > MAX_THREADS || o->http_threads > MAX_THREADS)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: at most %d threads", MAX_THREADS);
    if (o->queue_capacity <= 0) o->queue_capacity = 4 * o->threads;
    if (o->queue_capacity > MAX_QUEUE)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: queue of %d, at most %d", o->queue_capacity, MAX_QUEUE);
    if (o->max_upload_bytes == 0) o->max_upload_bytes = (size_t)50 << 20;
    if (o->max_upload_bytes > MAX_UPLOAD_BYTES)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: upload limit of %zu bytes, at most %zu",
                          o->max_upload_bytes, MAX_UPLOAD_BYTES);
    if (o->connection_timeout_s <= 0) o->connection_timeout_s = 30;
    if (o->request_timeout_s <= 0) o->request_timeout_s = 60;
    if (o->max_connections <= 0) o->max_connections = 64;
    if (o->max_connections > MAX_CONNECTIONS)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: at most %d connections", MAX_CONNECTIONS);
    /* One client (one address) may hold half of the connections: the other half stays for
     * everybody else.  Behind a reverse proxy every client has the proxy's address: raise it. */
    if (o->max_connections_per_client <= 0) o->max_connections_per_client = (o->max_connections + 1) / 2;
    if (o->max_connections_per_client > o->max_connections) o->max_connections_per_client = o->max_connections;
    /* "" is what `--api-key "$KEY"` gives when KEY is unset: serving without a key then would
     * be a silent surprise.  NULL means no key. */
    if (o->api_key && !*o->api_key)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: the API key is empty (pass none to serve without one)");
    srv->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    srv->db_path = strdup(o->db_path && *o->db_path ? o->db_path : "history.sqlite");
    srv->api_key = o->api_key && *o->api_key ? strdup(o->api_key) : NULL;
    srv->cors_origin = o->cors_origin && *o->cors_origin ? strdup(o->cors_origin) : NULL;
    if (!srv->host || !srv->db_path || (o->api_key && *o->api_key && !srv->api_key) ||
        (o->cors_origin && *o->cors_origin && !srv->cors_origin))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "serve: out of memory");
    o->cors_origin = srv->cors_origin;
    o->host = srv->host;
    o->db_path = srv->db_path;
    o->api_key = srv->api_key;
    srv->qcap = o->queue_capacity;
    return AVEMO_OK;
}

static enum avemo_status start_daemon(struct avemo_server *srv, struct avemo_error *err)
{
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", srv->opt.port);
    struct addrinfo hints = {0}, *addr = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(srv->host, port_text, &hints, &addr);
    if (gai != 0) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: host '%s': %s", srv->host, gai_strerror(gai));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    if (!srv->opt.quiet) flags |= MHD_USE_ERROR_LOG;
    if (addr->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)srv->opt.port, NULL, NULL, access_handler, srv, MHD_OPTION_SOCK_ADDR, addr->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->opt.http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->opt.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->opt.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)srv->opt.max_connections_per_client,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, serve_deadline_notify, srv, MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(addr);
    if (!srv->daemon)
        return avemo_fail(err, AVEMO_ERR_IO, "serve: cannot listen on %s port %d: %s", srv->host, srv->opt.port,
                          saved ? strerror(saved) : "libmicrohttpd refused the options");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : srv->opt.port;
    return AVEMO_OK;
}

enum avemo_status avemo_server_start(const struct avemo_serve_options *opt, avemo_server **out,
                                     struct avemo_error *err)
{
    *out = NULL;
    if (!opt) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: no options");
    struct avemo_server *srv = calloc(1, sizeof *srv);
    if (!srv) return avemo_fail(err, AVEMO_ERR_NOMEM, "serve: out of memory");
    serve_metrics_init(&srv->metrics);
    enum avemo_status s;
    if ((s = copy_options(srv, opt, err))) goto fail;
    if ((s = serve_history_open(srv->db_path, &srv->history, err))) goto fail;
    if ((s = serve_models_load(srv, err))) goto fail;
    if ((s = serve_workers_start(srv, err))) goto fail;
    atomic_store(&srv->ready, srv->num_models > 0);
    if ((s = serve_deadlines_start(&srv->deadlines, srv->opt.request_timeout_s, err))) goto fail;
    if ((s = start_daemon(srv, err))) goto fail;
    *out = srv;
    return AVEMO_OK;
fail:
    avemo_server_stop(srv);
    return s;
}

int avemo_server_port(const avemo_server *srv) { return srv ? srv->port : 0; }

void avemo_server_stop(avemo_server *srv)
{
    if (!srv) return;
    atomic_store(&srv->ready, 0);
    /* No new connections; requests on open ones are answered 503 from here on. */
    MHD_socket listener = srv->daemon ? MHD_quiesce_daemon(srv->daemon) : MHD_INVALID_SOCKET;
    /* Workers answer every queued upload and resume its connection before they exit, so
     * no connection is left suspended when MHD stops. */
    serve_workers_stop(srv);
    /* A resumed connection still has to send its answer: give them time to (bounded). */
    for (int waited_ms = 0; srv->daemon && atomic_load(&srv->in_flight) > 0 && waited_ms < 10000; waited_ms += 5)
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    serve_deadlines_stop(&srv->deadlines);
    if (srv->queue_ready) {
        pthread_mutex_destroy(&srv->qlock);
        pthread_cond_destroy(&srv->qcond);
    }
    serve_models_free(srv);
    serve_history_close(srv->history);
    serve_metrics_destroy(&srv->metrics);
    free(srv->host);
    free(srv->db_path);
    free(srv->api_key);
    free(srv->cors_origin);
    free(srv);
}
