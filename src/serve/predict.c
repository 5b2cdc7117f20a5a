/* POST /v1/predict: take the upload into memory (multipart field "file" through MHD's post
 * processor, or the raw body), queue it for an inference worker and suspend the connection;
 * the worker classifies it with its own workspace, commits the history row, builds the
 * answer and resumes the connection, which then sends it.
 *
 * The queue is bounded (503 + Retry-After when full) and so is every upload, so memory
 * stays under max_connections * max_upload_bytes whatever clients do. */
#include "serve/serve_internal.h"

#include <avemo/audio.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
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

/* Refuse an upload whose headers are wrong.  When a body of an acceptable size follows, the
 * answer waits until it has been read (and dropped): answering first makes libmicrohttpd close
 * the connection while the client is still sending, which the client sees as a broken pipe
 * instead of the answer.  A body declared over the limit is refused at once (413, not here). */
static enum MHD_Result refuse(struct serve_request *req, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result refuse(struct serve_request *req, unsigned status, const char *code, const char *fmt, ...)
{
    char message[AVEMO_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    int chunked = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    uint64_t declared = 0;
    int length = serve_content_length(req->conn, &declared);
    uint64_t limit = req->srv->opt.max_upload_bytes + MULTIPART_SLACK_BYTES;
    int body_follows = length ? length > 0 && declared > 0 && declared <= limit : chunked;
    if (!body_follows) return serve_respond_error(req, status, code, "%s", message);
    req->deferred_status = status;
    snprintf(req->deferred_code, sizeof req->deferred_code, "%s", code);
    snprintf(req->deferred_message, sizeof req->deferred_message, "%s", message);
    req->state = SERVE_REQ_RECEIVING;
    return MHD_YES;
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
            return refuse(req, 400, "unknown_model", "no model named '%.64s' is loaded (see /v1/models)",
                                       model);
    } else if (mode_given) {
        req->model = -1;
        for (int i = 0; i < srv->num_models && req->model < 0; i++)
            if (avemo_classifier_supports(srv->models[i].clf, req->mode)) req->model = i;
        if (req->model < 0)
            return refuse(req, 422, "unsupported_mode", "no loaded model supports mode %s",
                                       avemo_mode_name(req->mode));
    } else {
        req->model = 0;
    }
    const avemo_classifier *clf = srv->models[req->model].clf;
    if (!mode_given) req->mode = avemo_classifier_default_mode(clf);
    if (!avemo_classifier_supports(clf, req->mode))
        return refuse(req, 422, "unsupported_mode", "model %s does not support mode %s",
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

/* Keep only a safe base name for the history and the JSON: no directories, no control
 * characters, valid UTF-8 (anything else becomes '_'), no bidirectional controls (dropped),
 * bounded length. */
static void set_file_name(struct serve_request *req, const char *name)
{
    if (!name || !*name) return;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *back = strrchr(base, '\\');
    if (back) base = back + 1;
    size_t o = 0, left = strlen(base);
    for (const unsigned char *p = (const unsigned char *)base; *p && o + 5 < sizeof req->file_name;) {
        uint32_t cp = 0;
        int n = serve_utf8_char(p, left, &cp);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            req->file_name[o++] = '_';
            p++;
            left--;
            continue;
        }
        left -= (size_t)n;
        if (serve_is_bidi_control(cp)) {
            p += n;
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
    /* A part starts at offset 0, but libmicrohttpd may call twice at offset 0 for one part: first
     * with no data (while it holds back the part's first bytes), then with them. */
    if (off == 0 && (req->file_parts == 0 || req->size > 0 || req->too_large)) {
        if (++req->file_parts > 1) {
            req->malformed = 1; /* two files: we would not know which one to classify */
            return MHD_NO;
        }
    }
    if (off == 0) set_file_name(req, filename);
    if (size) append_upload(req, data, size);
    return MHD_YES;
}

/* ---- Content-Type by RFC 9110 (8.3.1) ----
 *   media-type = type "/" subtype *( OWS ";" OWS parameter )
 *   parameter  = token "=" ( token / quoted-string )
 * Type, subtype and parameter names are case-insensitive; other parameters (charset=UTF-8, as
 * Apache HttpClient sends) are allowed and ignored. */

#define BOUNDARY_MAX 200 /* RFC 2046 says 70; longer ones are seen and harmless */

static int is_tchar(int c) { return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c); }

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* A token or a quoted-string at *p into out (unquoted, NUL-terminated, at most cap - 1 bytes);
 * -1 when there is neither or it does not fit. */
static int parse_value(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = 0;
    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && s[1]) s++; /* quoted-pair */
            if (n + 1 >= cap) return -1;
            out[n++] = *s;
        }
        if (*s++ != '"') return -1;
    } else {
        for (; is_tchar((unsigned char)*s); s++) {
            if (n + 1 >= cap) return -1;
            out[n++] = *s;
        }
        if (n == 0) return -1;
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

/* Lowercased "type/subtype" into type and the boundary parameter (or "") into boundary;
 * -1 when the header is not a media type. */
static int parse_content_type(const char *text, char type[64], char boundary[BOUNDARY_MAX + 2])
{
    const char *p = skip_ows(text);
    size_t n = 0;
    int slash = 0;
    for (; is_tchar((unsigned char)*p) || (*p == '/' && !slash++); p++) {
        if (n + 1 >= 64) return -1;
        type[n++] = (char)tolower((unsigned char)*p);
    }
    type[n] = '\0';
    boundary[0] = '\0';
    if (!slash || type[0] == '/' || type[n - 1] == '/') return -1;
    for (p = skip_ows(p); *p == ';'; p = skip_ows(p)) {
        p = skip_ows(p + 1);
        char name[32], value[1024];
        size_t k = 0;
        for (; is_tchar((unsigned char)*p); p++)
            if (k + 1 < sizeof name) name[k++] = (char)tolower((unsigned char)*p);
        name[k] = '\0';
        if (k == 0 && (*p == '\0' || *p == ';')) continue; /* an empty parameter: "a/b;" */
        if (k == 0 || *p++ != '=' || parse_value(&p, value, sizeof value)) return -1;
        if (strcmp(name, "boundary") == 0) { /* one byte more than allowed: too long stays too long */
            size_t len = strlen(value) > BOUNDARY_MAX ? BOUNDARY_MAX + 1 : strlen(value);
            memcpy(boundary, value, len);
            boundary[len] = '\0';
        }
    }
    return *p ? -1 : 0;
}

/* RFC 2046 5.1.1: 1..70 (here BOUNDARY_MAX) of DIGIT ALPHA '()+_,-./:=? and space, not
 * ending in a space. */
static int valid_boundary(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > BOUNDARY_MAX || b[n - 1] == ' ') return 0;
    for (; *b; b++)
        if (!isalnum((unsigned char)*b) && !strchr("'()+_,-./:=? ", *b)) return 0;
    return 1;
}

static enum MHD_Result hide_content_type(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)cls;
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) ((char *)key)[0] = 'X'; /* "Xontent-Type" */
    return MHD_YES;
}

/* libmicrohttpd 0.9.75's post processor finds the boundary in the Content-Type header itself
 * and reads one spelling only: a literal, lowercase "boundary=" and everything after it to the
 * end of the value, quotes stripped, at least 2 bytes with the quotes.  It offers no way to
 * pass the boundary, and MHD_set_connection_value appends a header that lookups do not reach
 * while the client's comes first.  So the client's header is renamed in place (its name lives
 * in the connection's own buffer) and the canonical form is added:
 * multipart/form-data;boundary="B".  req keeps the text until the request ends. */
static int canonical_content_type(struct serve_request *req, const char *boundary)
{
    size_t n = strlen(boundary) + sizeof "multipart/form-data;boundary=\"\"";
    if (!(req->content_type = malloc(n))) return -1;
    snprintf(req->content_type, n, "multipart/form-data;boundary=\"%s\"", boundary);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, hide_content_type, NULL);
    return MHD_set_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type) ==
                   MHD_YES
               ? 0
               : -1;
}

static int is_media_type(const char *type)
{
    static const char *const prefixes[] = {"video/", "audio/", "image/", "application/octet-stream"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncasecmp(type, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

/* Cheap checks first (mode, Content-Type, declared size), so that a bad request is refused
 * before a single body byte is processed (a body within the limit is read and dropped first:
 * see refuse), then the model. */
enum MHD_Result serve_predict_begin(struct serve_request *req)
{
    struct avemo_server *srv = req->srv;
    snprintf(req->file_name, sizeof req->file_name, "upload");
    const char *mode = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "mode");
    if (mode && *mode && parse_mode(mode, &req->mode))
        return refuse(req, 400, "bad_request", "mode '%.40s' is not one of av, audio, face", mode);

    const char *type = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    char media_type[64] = "", boundary[BOUNDARY_MAX + 2] = "";
    if (type && parse_content_type(type, media_type, boundary))
        return refuse(req, 400, "bad_request", "Content-Type '%.60s' is not a media type (RFC 9110)", type);
    int multipart = type && strcmp(media_type, "multipart/form-data") == 0;
    if (type && !multipart && !is_media_type(media_type))
        return refuse(req, 415, "unsupported_media_type",
                                   "Content-Type '%.60s': send the clip as multipart/form-data field 'file' or as the "
                                   "body with Content-Type video/*, audio/*, image/* or application/octet-stream",
                                   type);
    if (multipart && !boundary[0])
        return refuse(req, 400, "bad_request", "the multipart/form-data body has no boundary");
    if (multipart && !valid_boundary(boundary))
        return refuse(req, 400, "bad_request",
                                   "the multipart boundary '%.80s' is not valid (RFC 2046: 1 to %d letters, digits "
                                   "and '()+_,-./:=? )", boundary, BOUNDARY_MAX);

    /* Refuse a declared oversize body before reading it. */
    uint64_t declared = 0;
    uint64_t limit = srv->opt.max_upload_bytes + (multipart ? MULTIPART_SLACK_BYTES : 0);
    if (serve_content_length(req->conn, &declared) > 0 && declared > limit)
        return serve_respond_error(req, 413, "too_large", "the upload has %llu bytes, the limit is %zu",
                                   (unsigned long long)declared, srv->opt.max_upload_bytes);

    if (serve_idempotency_key_init(req))
        return refuse(req, 400, "bad_request",
                                   "Idempotency-Key must be 1 to %d visible ASCII characters", SERVE_IDEMPOTENCY_KEY_MAX);
    if (srv->num_models == 0 || !atomic_load(&srv->ready))
        return refuse(req, 503, "not_ready", "no model is loaded");
    enum MHD_Result r = choose_model(req);
    if (r != MHD_YES || req->status || req->deferred_status) return r;

    const char *name = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "name");
    set_file_name(req, name);
    const char *signals = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "signals");
    if (signals && strcmp(signals, "1") != 0 && strcmp(signals, "0") != 0)
        return refuse(req, 400, "bad_request", "signals must be 0 or 1, not '%.20s'", signals);
    req->signals = signals && strcmp(signals, "1") == 0;
    const char *explain = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "explain");
    if (explain && strcmp(explain, "1") != 0 && strcmp(explain, "0") != 0 && strcmp(explain, "true") != 0 &&
        strcmp(explain, "false") != 0)
        return refuse(req, 400, "bad_request", "explain must be 1, 0, true or false, not '%.20s'", explain);
    req->explain = explain && (strcmp(explain, "1") == 0 || strcmp(explain, "true") == 0);
    if (multipart) {
        req->pp = canonical_content_type(req, boundary)
                      ? NULL
                      : MHD_create_post_processor(req->conn, POST_BUFFER_BYTES, post_iterator, req);
        if (!req->pp)
            return refuse(req, 400, "bad_request",
                                       "the multipart/form-data boundary '%.80s' cannot be used", boundary);
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
    req->received += n;
    if (req->deferred_status) /* refused: the body is read to answer after it, and dropped */
        return req->received > (uint64_t)req->srv->opt.max_upload_bytes + MULTIPART_SLACK_BYTES ? MHD_NO : MHD_YES;
    if (!req->pp) append_upload(req, data, n);
    else if (!req->malformed && MHD_post_process(req->pp, data, n) != MHD_YES) req->malformed = 1;
    /* (once malformed, the answer is 400: the rest of the body is dropped) */
    /* A client streaming far past the limit (a chunked body has no declared length) is cut
     * off rather than read forever. */
    if (req->received > 2 * (uint64_t)req->srv->opt.max_upload_bytes + MULTIPART_SLACK_BYTES) return MHD_NO;
    return MHD_YES;
}

/* ---- the queue ---- */

/* Queue the upload and suspend its connection: 1 queued, 0 the queue is full (*workers: how
 * many there are, read under the lock), -1 the server is stopping.  The connection is
 * suspended while holding the lock so that no worker can resume it before it is suspended. */
static int enqueue(struct serve_request *req, int *workers)
{
    struct avemo_server *srv = req->srv;
    pthread_mutex_lock(&srv->qlock);
    *workers = srv->num_workers;
    if (srv->stopping || srv->qcount >= srv->qcap) {
        int stopping = srv->stopping;
        pthread_mutex_unlock(&srv->qlock);
        return stopping ? -1 : 0;
    }
    req->state = SERVE_REQ_QUEUED;
    req->counted = 1;
    req->t_queued = avemo_now();
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
    /* The post processor holds back the bytes that might start the boundary: only the closing
     * boundary tells that the file is whole, and destroying the processor says whether it came. */
    int unterminated = 0;
    if (req->pp) {
        unterminated = MHD_destroy_post_processor(req->pp) != MHD_YES;
        req->pp = NULL;
        req->multipart_done = 1;
    }
    if (req->deferred_status)
        return serve_respond_error(req, req->deferred_status, req->deferred_code, "%s", req->deferred_message);
    if (req->malformed)
        return serve_respond_error(req, 400, "bad_request",
                                   req->file_parts > 1 ? "the form has more than one 'file' field"
                                                       : "the multipart/form-data body is malformed");
    if (req->too_large)
        return serve_respond_error(req, 413, "too_large", "the upload is larger than the limit of %zu bytes",
                                   req->srv->opt.max_upload_bytes);
    if (unterminated)
        return serve_respond_error(req, 400, "bad_request",
                                   "the multipart/form-data body ends before its closing boundary");
    if (req->multipart_done && req->file_parts == 0)
        return serve_respond_error(req, 400, "bad_request", "the form has no field named 'file'");
    if (req->size == 0) return serve_respond_error(req, 400, "empty", "the upload is empty");
    int workers = 0, queued = enqueue(req, &workers);
    if (queued < 0) return serve_respond_error(req, 503, "stopping", "the server is shutting down; retry on another");
    if (queued == 0)
        return serve_respond_error(req, 503, "busy", "all %d workers are busy and %d uploads are waiting; retry later",
                                   workers, req->srv->qcap);
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

static void answer_error(struct serve_request *req, enum avemo_status s, const struct avemo_error *err)
{
    req->resp_status = serve_http_status(s);
    req->resp_body = serve_error_body(avemo_status_name(s), err->message[0] ? err->message : avemo_strerror(s));
}

/* A request with an Idempotency-Key already stored gets the stored answer (same upload) or
 * 422 (another upload).  Returns 1 when req is answered, 0 when the key is new. */
static int answer_stored(struct avemo_server *srv, struct serve_request *req, const char *sha)
{
    struct serve_history_replay r;
    struct avemo_error err = {0};
    enum avemo_status s = serve_history_find_key(srv->history, req->idempotency_key, &r, &err);
    if (s == AVEMO_ERR_NOT_FOUND) return 0;
    if (s) {
        answer_error(req, s, &err);
        return 1;
    }
    cJSON *obj = strcmp(r.sha256, sha) == 0 ? cJSON_Parse(r.response) : NULL;
    if (strcmp(r.sha256, sha) != 0) {
        req->resp_status = 422;
        req->resp_body = serve_error_body("idempotency_key_reused",
                                          "this Idempotency-Key was used for another upload; use a new key");
    } else if (!obj) {
        req->resp_status = 500;
        req->resp_body = serve_error_body("internal", "the stored answer of this Idempotency-Key is unreadable");
    } else {
        set_key(obj, "id", cJSON_CreateNumber((double)r.id));
        set_key(obj, "created_at", cJSON_CreateString(r.created_at));
        req->resp_body = cJSON_PrintUnformatted(obj);
        req->resp_status = req->resp_body ? 200 : 500;
        req->replayed = 1;
    }
    cJSON_Delete(obj);
    free(r.response);
    return 1;
}

/* ?signals=1: the waveform and log-mel of the upload's audio from avemo's decode, for the page
 * to draw whatever the format; null when it has no audio. */
static cJSON *signals_json(const struct serve_request *req)
{
    avemo_media *media = NULL;
    struct avemo_audio_overview ov;
    if (avemo_media_open_memory(req->data, req->size, NULL, &media, NULL)) return cJSON_CreateNull();
    enum avemo_status s = avemo_audio_overview_from_media(media, 600, 64, 400, &ov, NULL);
    avemo_media_close(media);
    if (s) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject(), *wave = cJSON_AddObjectToObject(o, "waveform");
    cJSON_AddNumberToObject(o, "duration_s", ov.duration_s);
    cJSON_AddNumberToObject(wave, "peak", ov.peak);
    cJSON *lo = cJSON_AddArrayToObject(wave, "min"), *hi = cJSON_AddArrayToObject(wave, "max");
    for (int c = 0; c < ov.columns; c++) {
        cJSON_AddItemToArray(lo, cJSON_CreateNumber(ov.wave_min[c]));
        cJSON_AddItemToArray(hi, cJSON_CreateNumber(ov.wave_max[c]));
    }
    cJSON *mel = cJSON_AddObjectToObject(o, "logmel");
    cJSON_AddNumberToObject(mel, "bands", ov.mel_bands);
    cJSON_AddNumberToObject(mel, "frames", ov.mel_frames);
    cJSON_AddNumberToObject(mel, "hop_s", ov.mel_hop_s);
    char *b64 = serve_base64(ov.logmel, (size_t)ov.mel_bands * (size_t)ov.mel_frames);
    cJSON_AddItemToObject(mel, "data", b64 ? cJSON_CreateString(b64) : cJSON_CreateNull());
    free(b64);
    avemo_audio_overview_free(&ov);
    return o;
}

/* What a prediction's answer and its history row share. */
struct answer_facts {
    const char *sha, *model, *label;
    int64_t size;
    double latency_ms;
};

/* The answer's JSON: the prediction (or explanation) with what the service adds.  Frees ex;
 * NULL when out of memory. */
static cJSON *answer_object(const struct serve_request *req, const struct avemo_prediction *pred,
                            struct avemo_explanation *ex, const struct answer_facts *f)
{
    char *text = ex ? serve_explanation_json(ex, req->file_name) : avemo_prediction_json(pred, req->file_name);
    serve_explanation_free(ex);
    cJSON *obj = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!obj) return NULL;
    if (!cJSON_GetObjectItemCaseSensitive(obj, "model")) cJSON_AddStringToObject(obj, "model", f->model);
    set_key(obj, "sha256", cJSON_CreateString(f->sha));
    set_key(obj, "size", cJSON_CreateNumber((double)f->size));
    set_key(obj, "latency_ms", cJSON_CreateNumber(f->latency_ms));
    set_key(obj, "classes", classes_json(pred));
    if (!cJSON_GetObjectItemCaseSensitive(obj, "label")) cJSON_AddStringToObject(obj, "label", f->label);
    if (!cJSON_GetObjectItemCaseSensitive(obj, "confidence"))
        cJSON_AddNumberToObject(obj, "confidence", pred->confidence);
    char *face = pred->face_found ? serve_face_data_url(pred->face_rgb, 64, 64) : NULL;
    set_key(obj, "face_crop", face ? cJSON_CreateString(face) : cJSON_CreateNull());
    free(face);
    set_key(obj, "request_id", cJSON_CreateString(req->request_id));
    return obj;
}

/* Store the answer's history row, then answer with obj (consumed, as signals).  A retry that
 * another replica committed meanwhile gets that replica's stored answer. */
static void record_answer(struct avemo_server *srv, struct serve_request *req, struct avemo_prediction *pred,
                          cJSON *obj, cJSON *signals, const struct answer_facts *f)
{
    struct avemo_error err = {0};
    const char *key = req->idempotency_key[0] ? req->idempotency_key : NULL;
    /* With a key, the answer (all but the row's id and time) is stored for the retries. */
    char *response = key ? cJSON_PrintUnformatted(obj) : NULL;
    struct serve_history_entry e = {
        req->file_name, f->size, f->sha, f->model, avemo_mode_name(req->mode), avemo_mode_name(pred->mode_used),
        f->label, pred->confidence, pred, f->latency_ms,
    };
    struct serve_history_request rq = {req->request_id, key, response};
    int64_t id = 0;
    int duplicate = 0;
    char created_at[32];
    enum avemo_status s = key && !response
                              ? avemo_fail(&err, AVEMO_ERR_NOMEM, "out of memory")
                              : serve_history_insert_request(srv->history, &e, &rq, &id, created_at, &duplicate, &err);
    free(response);
    if (s || duplicate) {
        cJSON_Delete(obj);
        cJSON_Delete(signals);
        if (s) answer_error(req, s, &err);
        else if (!answer_stored(srv, req, f->sha)) answer_error(req, AVEMO_ERR_INTERNAL, &err);
        return;
    }
    set_key(obj, "id", cJSON_CreateNumber((double)id));
    set_key(obj, "created_at", cJSON_CreateString(created_at));
    if (signals) set_key(obj, "signals", signals);
    if (!pred->model[0]) snprintf(pred->model, sizeof pred->model, "%.*s", (int)sizeof pred->model - 1, f->model);
    serve_metrics_prediction(&srv->metrics, pred);
    req->resp_body = cJSON_PrintUnformatted(obj);
    req->resp_status = req->resp_body ? 200 : 500;
    cJSON_Delete(obj);
}

static int label_valid(const struct avemo_prediction *pred)
{
    return pred->label >= 0 && pred->label < pred->num_classes && pred->num_classes <= AVEMO_MAX_CLASSES;
}

/* Classify one upload and leave the answer (status + JSON) in req.  alone: no other upload is
 * being classified or waits, so a clip may decode on a second core beside its face search. */
static void run_prediction(struct serve_worker *w, struct serve_request *req, int alone)
{
    struct avemo_server *srv = w->srv;
    struct avemo_prediction *pred = &w->pred;
    struct avemo_error err = {0};
    double t0 = avemo_now();
    char sha[65];
    avemo_sha256_hex(req->data, req->size, sha);
    if (req->idempotency_key[0] && answer_stored(srv, req, sha)) { /* a retry: no second inference, no second row */
        free(req->data);
        req->data = NULL;
        return;
    }
    memset(pred, 0, sizeof *pred);
    avemo_classify_ctx_set_overlap(w->ctx[req->model], alone && srv->cpus > 1);
    struct avemo_explanation *ex = NULL;
    enum avemo_status s =
        req->explain ? serve_explain(w->ctx[req->model], req, pred, &ex, &err)
                     : avemo_classify_memory(w->ctx[req->model], req->data, req->size, req->file_name, req->mode, pred, &err);
    serve_metrics_work(&srv->metrics, t0 - req->t_queued, avemo_now() - t0);
    cJSON *signals = !s && req->signals ? signals_json(req) : NULL;
    free(req->data); /* media is never kept */
    req->data = NULL;
    if (s) {
        answer_error(req, s, &err);
        return;
    }
    if (!label_valid(pred)) {
        cJSON_Delete(signals);
        serve_explanation_free(ex);
        req->resp_status = 500;
        req->resp_body = serve_error_body("internal", "the classifier returned an invalid label");
        return;
    }
    char label[sizeof pred->labels[0] + 1];
    label_text(pred, pred->label, label);
    char answered[sizeof pred->model + 1]; /* the model that answered (an extra one after a fallback) */
    snprintf(answered, sizeof answered, "%.*s", (int)sizeof pred->model, pred->model);
    struct answer_facts f = {sha, answered[0] ? answered : avemo_classifier_name(srv->models[req->model].clf), label,
                             (int64_t)req->size, (avemo_now() - t0) * 1000.0};
    cJSON *obj = answer_object(req, pred, ex, &f);
    if (!obj) {
        cJSON_Delete(signals);
        req->resp_status = 500;
        req->resp_body = serve_error_body("internal", "out of memory");
        return;
    }
    record_answer(srv, req, pred, obj, signals, &f);
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
        int alone = srv->busy == 1 && srv->qcount == 0;
        pthread_mutex_unlock(&srv->qlock);

        run_prediction(w, req, alone);

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
    srv->cpus = avemo_usable_cpus();
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

int serve_workers_count(struct avemo_server *srv)
{
    pthread_mutex_lock(&srv->qlock);
    int n = srv->num_workers;
    pthread_mutex_unlock(&srv->qlock);
    return n;
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
