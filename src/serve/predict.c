/* POST /v1/predict: take the upload into memory (multipart field "file" through MHD's post
 * processor, or the raw body), queue it for an inference worker and suspend the connection;
 * the worker classifies it with its own workspace, commits the history row, builds the
 * answer and resumes the connection, which then sends it.
 *
 * The queue is bounded (503 + Retry-After when full) and so is every upload, so memory
 * stays under max_connections * max_upload_bytes whatever clients do. */
#include "serve/serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POST_BUFFER_BYTES (64 * 1024)
/* A multipart body holds the file plus boundaries and part headers. */
#define MULTIPART_SLACK_BYTES (64 * 1024)

/* ---- choosing the model and the mode from the query ---- */

static int find_model(const struct avemo_server *srv, const char *name)
{
    for (int i = 0; i < srv->num_models; i++)
        if (strcmp(avemo_classifier_name(srv->models[i].clf), name) == 0) return i;
    return -1;
}

static int parse_mode(const char *text, enum avemo_mode *mode)
{
    return avemo_mode_parse(text, mode, NULL) == AVEMO_OK ? 0 : -1;
}

/* model=NAME picks a model; otherwise the first model that supports the requested mode
 * (so a server with avemo-av, avemo-audio and avemo-face answers every mode). */
static enum MHD_Result choose_model(struct serve_request *req)
{
    struct avemo_server *srv = req->srv;
    const char *model = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "model");
    const char *mode = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "mode");
    int mode_given = mode && *mode; /* parsed into req->mode by serve_predict_begin */
    if (model && *model) {
        if ((req->model = find_model(srv, model)) < 0)
            return serve_respond_error(req, 400, "unknown_model", "no model named '%.64s' is loaded (see /v1/models)",
                                       model);
    } else if (mode_given) {
        req->model = -1;
        for (int i = 0; i < srv->num_models && req->model < 0; i++)
            if (avemo_classifier_supports(srv->models[i].clf, req->mode)) req->model = i;
        if (req->model < 0)
            return serve_respond_error(req, 422, "unsupported_mode", "no loaded model supports mode %s",
                                       avemo_mode_name(req->mode));
    } else {
        req->model = 0;
    }
    const avemo_classifier *clf = srv->models[req->model].clf;
    if (!mode_given) req->mode = avemo_classifier_default_mode(clf);
    if (!avemo_classifier_supports(clf, req->mode))
        return serve_respond_error(req, 422, "unsupported_mode", "model %s does not support mode %s",
                                   avemo_classifier_name(clf), avemo_mode_name(req->mode));
    return MHD_YES;
}

/* ---- taking the upload ---- */

static void append_upload(struct serve_request *req, const char *data, size_t n)
{
    size_t max = req->srv->opt.max_upload_bytes;
    if (req->too_large || n > max - req->size) {
        /* over the limit: drop the bytes, answer 413 at the end of the body */
        req->too_large = 1;
        free(req->data);
        req->data = NULL;
        req->size = req->cap = 0;
        return;
    }
    if (req->size + n > req->cap) {
        size_t cap = req->cap ? req->cap : 256 * 1024;
        while (cap < req->size + n) cap *= 2;
        if (cap > max) cap = max;
        uint8_t *bigger = realloc(req->data, cap);
        if (!bigger) {
            req->too_large = 1; /* treated as too large: we cannot hold it */
            free(req->data);
            req->data = NULL;
            req->size = req->cap = 0;
            return;
        }
        req->data = bigger;
        req->cap = cap;
    }
    memcpy(req->data + req->size, data, n);
    req->size += n;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static int utf8_length(const unsigned char *p)
{
    int n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 2 && p[0] < 0xc2) return 0; /* overlong */
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* Keep only a safe base name for the history and the JSON: no directories, no control
 * characters, valid UTF-8 (anything else becomes '_'), bounded length. */
static void set_file_name(struct serve_request *req, const char *name)
{
    if (!name || !*name) return;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *back = strrchr(base, '\\');
    if (back) base = back + 1;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)base; *p && o + 5 < sizeof req->file_name;) {
        int n = utf8_length(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            req->file_name[o++] = '_';
            p++;
            continue;
        }
        memcpy(req->file_name + o, p, (size_t)n);
        o += (size_t)n;
        p += n;
    }
    if (o) req->file_name[o] = '\0';
}

static enum MHD_Result post_iterator(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                     const char *content_type, const char *transfer_encoding, const char *data,
                                     uint64_t off, size_t size)
{
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    struct serve_request *req = cls;
    if (!key || strcmp(key, "file") != 0) return MHD_YES; /* other fields are ignored */
    if (off == 0) {
        if (++req->file_parts > 1) {
            req->malformed = 1; /* two files: we would not know which one to classify */
            return MHD_NO;
        }
        set_file_name(req, filename);
    }
    if (size) append_upload(req, data, size);
    return MHD_YES;
}

static int is_media_type(const char *type)
{
    static const char *const prefixes[] = {"video/", "audio/", "image/", "application/octet-stream"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncasecmp(type, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

/* Cheap checks first (mode, Content-Type, declared size), so that a bad request is refused
 * before a single body byte is read, then the model. */
enum MHD_Result serve_predict_begin(struct serve_request *req)
{
    struct avemo_server *srv = req->srv;
    snprintf(req->file_name, sizeof req->file_name, "upload");
    const char *mode = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "mode");
    if (mode && *mode && parse_mode(mode, &req->mode))
        return serve_respond_error(req, 400, "bad_request", "mode '%.40s' is not one of av, audio, face", mode);

    const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int multipart = type && strncasecmp(type, "multipart/form-data", 19) == 0;
    if (type && !multipart && !is_media_type(type))
        return serve_respond_error(req, 415, "unsupported_media_type",
                                   "Content-Type '%.60s': send the clip as multipart/form-data field 'file' or as the "
                                   "body with Content-Type video/*, audio/*, image/* or application/octet-stream",
                                   type);

    /* Refuse a declared oversize body before reading it. */
    const char *length = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t declared = -1;
    uint64_t limit = srv->opt.max_upload_bytes + (multipart ? MULTIPART_SLACK_BYTES : 0);
    if (length && serve_parse_int(length, 0, INT64_MAX, &declared) == 0 && (uint64_t)declared > limit)
        return serve_respond_error(req, 413, "too_large", "the upload has %lld bytes, the limit is %zu",
                                   (long long)declared, srv->opt.max_upload_bytes);

    if (srv->num_models == 0 || !atomic_load(&srv->ready))
        return serve_respond_error(req, 503, "not_ready", "no model is loaded");
    enum MHD_Result r = choose_model(req);
    if (r != MHD_YES || req->status) return r;

    const char *name = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "name");
    set_file_name(req, name);
    if (multipart) {
        req->pp = MHD_create_post_processor(req->conn, POST_BUFFER_BYTES, post_iterator, req);
        if (!req->pp)
            return serve_respond_error(req, 400, "bad_request", "the multipart/form-data body has no boundary");
    } else if (declared > 0) {
        req->data = malloc((size_t)declared);
        if (req->data) req->cap = (size_t)declared;
    }
    req->state = SERVE_REQ_RECEIVING;
    return MHD_YES;
}

enum MHD_Result serve_predict_body(struct serve_request *req, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (req->status) return MHD_YES; /* already answered */
    if (!req->pp) append_upload(req, data, n);
    else if (!req->malformed && MHD_post_process(req->pp, data, n) != MHD_YES) req->malformed = 1;
    /* (once malformed, the answer is 400: the rest of the body is dropped) */
    /* A client streaming far past the limit (a chunked body has no declared length) is cut
     * off rather than read forever. */
    req->received += n;
    if (req->received > 2 * (uint64_t)req->srv->opt.max_upload_bytes + MULTIPART_SLACK_BYTES) return MHD_NO;
    return MHD_YES;
}

/* ---- the queue ---- */

/* Queue the upload and suspend its connection; 0 when the queue is full or stopping.
 * The connection is suspended while holding the lock so that no worker can resume it
 * before it is suspended. */
static int enqueue(struct serve_request *req)
{
    struct avemo_server *srv = req->srv;
    pthread_mutex_lock(&srv->qlock);
    if (srv->stopping || srv->qcount >= srv->qcap) {
        pthread_mutex_unlock(&srv->qlock);
        return 0;
    }
    req->state = SERVE_REQ_QUEUED;
    req->counted = 1;
    atomic_fetch_add(&srv->in_flight, 1);
    MHD_suspend_connection(req->conn);
    srv->queue[(srv->qhead + srv->qcount) % srv->qcap] = req;
    srv->qcount++;
    pthread_cond_signal(&srv->qcond);
    pthread_mutex_unlock(&srv->qlock);
    return 1;
}

enum MHD_Result serve_predict_end(struct serve_request *req)
{
    if (req->state == SERVE_REQ_DONE) {
        char *body = req->resp_body;
        req->resp_body = NULL;
        return serve_respond(req, req->resp_status, "application/json", body);
    }
    if (req->state == SERVE_REQ_QUEUED) return MHD_YES; /* not expected: still waiting */
    if (req->malformed)
        return serve_respond_error(req, 400, "bad_request",
                                   req->file_parts > 1 ? "the form has more than one 'file' field"
                                                       : "the multipart/form-data body is malformed");
    if (req->too_large)
        return serve_respond_error(req, 413, "too_large", "the upload is larger than the limit of %zu bytes",
                                   req->srv->opt.max_upload_bytes);
    if (req->pp && req->file_parts == 0)
        return serve_respond_error(req, 400, "bad_request", "the form has no field named 'file'");
    if (req->size == 0) return serve_respond_error(req, 400, "empty", "the upload is empty");
    if (!enqueue(req)) {
        return serve_respond_error(req, 503, "busy", "all %d workers are busy and %d uploads are waiting; retry later",
                                   req->srv->num_workers, req->srv->qcap);
    }
    return MHD_YES;
}

/* ---- the workers ---- */

static void label_text(const struct avemo_prediction *pred, int k, char out[sizeof pred->labels[0] + 1])
{
    memcpy(out, pred->labels[k], sizeof pred->labels[0]);
    out[sizeof pred->labels[0]] = '\0';
}

/* Set obj[key] = item, replacing a key of the same name rather than duplicating it. */
static void set_key(cJSON *obj, const char *key, cJSON *item)
{
    if (!item) return;
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    else cJSON_AddItemToObject(obj, key, item);
}

/* The classes in the network's order: [{"label":"ANG","probability":0.12}, ...]; the web page
 * and clients read this rather than depend on the layout of avemo_prediction_json(). */
static cJSON *classes_json(const struct avemo_prediction *pred)
{
    cJSON *list = cJSON_CreateArray();
    for (int k = 0; list && k < pred->num_classes; k++) {
        char label[sizeof pred->labels[0] + 1];
        label_text(pred, k, label);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "label", label);
        cJSON_AddNumberToObject(c, "probability", pred->probs[k]);
        cJSON_AddItemToArray(list, c);
    }
    return list;
}

/* Classify one upload and leave the answer (status + JSON) in req. */
static void run_prediction(struct serve_worker *w, struct serve_request *req)
{
    struct avemo_server *srv = w->srv;
    struct avemo_prediction *pred = &w->pred;
    struct avemo_error err = {0};
    double t0 = avemo_now();
    char sha[65];
    avemo_sha256_hex(req->data, req->size, sha);
    memset(pred, 0, sizeof *pred);
    enum avemo_status s =
        avemo_classify_memory(w->ctx[req->model], req->data, req->size, req->file_name, req->mode, pred, &err);
    free(req->data); /* media is never kept */
    req->data = NULL;
    int64_t size = (int64_t)req->size;
    double latency_ms = (avemo_now() - t0) * 1000.0;
    if (s) {
        req->resp_status = serve_http_status(s);
        req->resp_body = serve_error_body(avemo_status_name(s), err.message[0] ? err.message : avemo_strerror(s));
        return;
    }
    if (pred->label < 0 || pred->label >= pred->num_classes || pred->num_classes > AVEMO_MAX_CLASSES) {
        req->resp_status = 500;
        req->resp_body = serve_error_body("internal", "the classifier returned an invalid label");
        return;
    }
    char *text = avemo_prediction_json(pred, req->file_name);
    cJSON *obj = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!obj) {
        req->resp_status = 500;
        req->resp_body = serve_error_body("internal", "out of memory");
        return;
    }
    char label[sizeof pred->labels[0] + 1];
    label_text(pred, pred->label, label);
    char answered[sizeof pred->model + 1]; /* the model that answered (an extra one after a fallback) */
    snprintf(answered, sizeof answered, "%.*s", (int)sizeof pred->model, pred->model);
    const char *model = answered[0] ? answered : avemo_classifier_name(srv->models[req->model].clf);
    struct serve_history_entry e = {
        req->file_name, size, sha, model, avemo_mode_name(req->mode), avemo_mode_name(pred->mode_used),
        label, pred->confidence, pred, latency_ms,
    };
    int64_t id = 0;
    char created_at[32];
    if ((s = serve_history_insert(srv->history, &e, &id, created_at, &err))) {
        cJSON_Delete(obj);
        req->resp_status = 500;
        req->resp_body = serve_error_body(avemo_status_name(s), err.message);
        return;
    }
    set_key(obj, "id", cJSON_CreateNumber((double)id));
    set_key(obj, "created_at", cJSON_CreateString(created_at));
    if (!cJSON_GetObjectItemCaseSensitive(obj, "model")) cJSON_AddStringToObject(obj, "model", model);
    set_key(obj, "sha256", cJSON_CreateString(sha));
    set_key(obj, "size", cJSON_CreateNumber((double)size));
    set_key(obj, "latency_ms", cJSON_CreateNumber(latency_ms));
    set_key(obj, "classes", classes_json(pred));
    if (!cJSON_GetObjectItemCaseSensitive(obj, "label")) cJSON_AddStringToObject(obj, "label", label);
    if (!cJSON_GetObjectItemCaseSensitive(obj, "confidence"))
        cJSON_AddNumberToObject(obj, "confidence", pred->confidence);
    char *face = pred->face_found ? serve_face_data_url(pred->face_rgb, 64, 64) : NULL;
    set_key(obj, "face_crop", face ? cJSON_CreateString(face) : cJSON_CreateNull());
    free(face);
    serve_metrics_prediction(&srv->metrics, req->model, pred->mode_used, pred->label);
    req->resp_body = cJSON_PrintUnformatted(obj);
    req->resp_status = req->resp_body ? 200 : 500;
    cJSON_Delete(obj);
}

static void *worker_main(void *arg)
{
    struct serve_worker *w = arg;
    struct avemo_server *srv = w->srv;
    for (;;) {
        pthread_mutex_lock(&srv->qlock);
        while (srv->qcount == 0 && !srv->stopping) pthread_cond_wait(&srv->qcond, &srv->qlock);
        if (srv->qcount == 0) { /* stopping, and every queued upload is answered */
            pthread_mutex_unlock(&srv->qlock);
            break;
        }
        struct serve_request *req = srv->queue[srv->qhead];
        srv->qhead = (srv->qhead + 1) % srv->qcap;
        srv->qcount--;
        srv->busy++;
        pthread_mutex_unlock(&srv->qlock);

        run_prediction(w, req);

        pthread_mutex_lock(&srv->qlock);
        srv->busy--;
        pthread_mutex_unlock(&srv->qlock);
        /* After the resume, req belongs to the connection's thread again. */
        struct MHD_Connection *conn = req->conn;
        req->state = SERVE_REQ_DONE;
        MHD_resume_connection(conn);
    }
    return NULL;
}

enum avemo_status serve_workers_start(struct avemo_server *srv, struct avemo_error *err)
{
    srv->queue = calloc((size_t)srv->qcap, sizeof *srv->queue);
    srv->workers = calloc((size_t)srv->opt.threads, sizeof *srv->workers);
    if (!srv->queue || !srv->workers) return avemo_fail(err, AVEMO_ERR_NOMEM, "serve: out of memory");
    pthread_mutex_init(&srv->qlock, NULL);
    pthread_cond_init(&srv->qcond, NULL);
    srv->queue_ready = 1;
    for (int i = 0; i < srv->opt.threads; i++) {
        struct serve_worker *w = &srv->workers[i];
        w->srv = srv;
        srv->num_workers = i + 1;
        for (int m = 0; m < srv->num_models; m++) {
            enum avemo_status s = avemo_classify_ctx_new(srv->models[m].clf, &w->ctx[m], err);
            if (s) return s;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return avemo_fail(err, AVEMO_ERR_NOMEM, "serve: cannot start worker thread %d", i + 1);
        w->started = 1;
    }
    return AVEMO_OK;
}

void serve_workers_stop(struct avemo_server *srv)
{
    if (!srv->queue_ready) return;
    pthread_mutex_lock(&srv->qlock);
    srv->stopping = 1;
    pthread_cond_broadcast(&srv->qcond);
    pthread_mutex_unlock(&srv->qlock);
    for (int i = 0; i < srv->num_workers; i++) {
        struct serve_worker *w = &srv->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        for (int m = 0; m < AVEMO_SERVE_MAX_MODELS; m++)
            if (w->ctx[m]) avemo_classify_ctx_free(w->ctx[m]);
    }
    free(srv->workers);
    free(srv->queue);
    srv->workers = NULL;
    srv->queue = NULL;
    /* /metrics reads the count under the queue lock while the daemon may still answer. */
    pthread_mutex_lock(&srv->qlock);
    srv->num_workers = 0;
    pthread_mutex_unlock(&srv->qlock);
}
