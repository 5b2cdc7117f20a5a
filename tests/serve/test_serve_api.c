/* The service without a model: a real server (in this process, on a free 127.0.0.1 port)
 * and a real HTTP client (curl).  Health, readiness, metrics, the web page, the history
 * endpoints and every error that does not need a prediction; the SQLite history store and
 * the SHA-256 helper directly. */
#include "serve_test.h"

#include "serve/serve_internal.h"

#include <avemo/serve.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>

#define CLIP TEST_DATA("cremad/1001_DFA_ANG_XX.flv")

struct fixture {
    avemo_server *srv;
    int port;
    char db[256];
};

static struct fixture *start_cors(const char *api_key, size_t max_upload, const char *cors)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->db, sizeof f->db, "%s/serve_api_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    unlink(f->db);
    struct avemo_serve_options opt;
    avemo_serve_options_default(&opt);
    opt.port = 0;
    opt.db_path = f->db;
    opt.api_key = api_key;
    opt.quiet = 1;
    opt.max_upload_bytes = max_upload;
    opt.cors_origin = cors;
    struct avemo_error err = {0};
    if (avemo_server_start(&opt, &f->srv, &err)) fail_msg("server: %s", err.message);
    f->port = avemo_server_port(f->srv);
    assert_true(f->port > 0);
    return f;
}

static struct fixture *start(const char *api_key, size_t max_upload) { return start_cors(api_key, max_upload, NULL); }

static void stop(struct fixture *f)
{
    avemo_server_stop(f->srv);
    char path[300];
    unlink(f->db);
    snprintf(path, sizeof path, "%s-wal", f->db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", f->db);
    unlink(path);
    free(f);
}

static int setup(void **state)
{
    *state = start(NULL, 0);
    return 0;
}

static int teardown(void **state)
{
    stop(*state);
    return 0;
}

static void test_health_and_readiness(void **state)
{
    struct fixture *f = *state;
    struct http_reply r = http_get(f->port, "/healthz");
    expect_status(&r, 200, NULL);
    assert_string_equal(json_string(r.json, "status"), "ok");
    assert_string_equal(json_string(r.json, "version"), avemo_version());
    assert_true(has_header(&r, "Content-Type: application/json"));
    http_reply_free(&r);

    r = http_get(f->port, "/readyz"); /* no model loaded */
    expect_status(&r, 503, "not_ready");
    assert_true(has_header(&r, "Retry-After:"));
    http_reply_free(&r);

    r = http_get(f->port, "/v1/models");
    expect_status(&r, 200, NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "models")), 0);
    http_reply_free(&r);
}

static void test_web_page(void **state)
{
    struct fixture *f = *state;
    struct http_reply r = http_get(f->port, "/");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Content-Type: text/html"));
    assert_true(has_header(&r, "Content-Security-Policy:"));
    assert_non_null(strstr(r.body, "<script src=\"/app.js\""));
    assert_non_null(strstr(r.body, "id=\"file\""));
    /* the page as it is in the source tree, byte for byte */
    size_t n = 0;
    char *source = slurp_text(AVEMO_SOURCE_DIR "/src/serve/web/index.html", &n);
    assert_int_equal(r.size, n);
    assert_memory_equal(r.body, source, n);
    free(source);
    http_reply_free(&r);

    r = http_get(f->port, "/app.js");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Content-Type: text/javascript"));
    assert_non_null(strstr(r.body, "/v1/predict"));
    http_reply_free(&r);
    r = http_get(f->port, "/style.css");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Content-Type: text/css"));
    http_reply_free(&r);
}

static void test_not_found_and_methods(void **state)
{
    struct fixture *f = *state;
    struct http_reply r = http_get(f->port, "/nope");
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);
    r = http_get(f->port, "/v1/nope");
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);

    r = http_get(f->port, "/v1/predict");
    expect_status(&r, 405, "method_not_allowed");
    assert_true(has_header(&r, "Allow: POST"));
    http_reply_free(&r);
    r = http_run(f->port, "-X POST", "/v1/models");
    expect_status(&r, 405, "method_not_allowed");
    http_reply_free(&r);
    r = http_run(f->port, "-X PUT", "/v1/history/1");
    expect_status(&r, 405, "method_not_allowed");
    assert_true(has_header(&r, "Allow: GET, HEAD, DELETE"));
    http_reply_free(&r);
}

static void test_history_errors(void **state)
{
    struct fixture *f = *state;
    struct http_reply r = http_get(f->port, "/v1/history");
    expect_status(&r, 200, NULL);
    assert_int_equal((int)json_number(r.json, "total"), 0);
    assert_int_equal((int)json_number(r.json, "limit"), 50);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "items")), 0);
    http_reply_free(&r);

    static const char *const bad[] = {"/v1/history?limit=0", "/v1/history?limit=abc", "/v1/history?limit=100000",
                                      "/v1/history?offset=-1", "/v1/history/abc", "/v1/history/0",
                                      "/v1/history/12x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_get(f->port, bad[i]);
        expect_status(&r, 400, "bad_request");
        http_reply_free(&r);
    }
    r = http_get(f->port, "/v1/history/424242");
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);
    r = http_run(f->port, "-X DELETE", "/v1/history/424242");
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);
}

/* Request errors that are found before a model is needed. */
static void test_predict_request_errors(void **state)
{
    struct fixture *f = *state;
    /* a body that is not a media type: 415 before the body is read */
    struct http_reply r = http_run(f->port, "-H 'Content-Type: text/plain' --data-binary 'hello'", "/v1/predict");
    expect_status(&r, 415, "unsupported_media_type");
    http_reply_free(&r);
    /* curl --data-binary without a type sends application/x-www-form-urlencoded */
    r = http_run(f->port, "--data-binary @" CLIP, "/v1/predict");
    expect_status(&r, 415, "unsupported_media_type");
    http_reply_free(&r);
    r = http_run(f->port, "-H 'Content-Type: application/json' --data-binary '{}'", "/v1/predict?mode=av");
    expect_status(&r, 415, "unsupported_media_type");
    http_reply_free(&r);

    r = http_run(f->port, "-F file=@" CLIP, "/v1/predict?mode=smell");
    expect_status(&r, 400, "bad_request");
    http_reply_free(&r);

    /* a valid upload, but no model: 503 with Retry-After */
    r = http_run(f->port, "-F file=@" CLIP, "/v1/predict?mode=av");
    expect_status(&r, 503, "not_ready");
    assert_true(has_header(&r, "Retry-After: 1"));
    http_reply_free(&r);
}

/* A declared body over the limit is refused with 413 before it is read.  The client asks with
 * `Expect: 100-continue`, as a client of large uploads should: the server then answers before
 * any of the body is sent.  (A client that sends the body at once may find the connection closed
 * under it, "broken pipe", before it reads the 413: the server does not read what it refused.
 * CI's ASan run saw that race in 1 of 12 runs without the header, 0 of 30 with it.) */
static void test_upload_limit(void **state)
{
    (void)state;
    struct fixture *f = start(NULL, 100000); /* the clip has 265922 bytes */
    struct http_reply r = http_run(
        f->port, "-H 'Expect: 100-continue' -H 'Content-Type: video/x-flv' --data-binary @" CLIP, "/v1/predict");
    expect_status(&r, 413, "too_large");
    http_reply_free(&r);
    r = http_run(f->port, "-H 'Expect: 100-continue' -F file=@" CLIP, "/v1/predict");
    expect_status(&r, 413, "too_large");
    http_reply_free(&r);
    stop(f);
}

static void test_api_key(void **state)
{
    (void)state;
    struct fixture *f = start("s3cret-key", 0);
    struct http_reply r = http_get(f->port, "/v1/models");
    expect_status(&r, 401, "unauthorized");
    assert_true(has_header(&r, "WWW-Authenticate: Bearer"));
    http_reply_free(&r);
    r = http_run(f->port, "-H 'Authorization: Bearer wrong'", "/v1/history");
    expect_status(&r, 401, "unauthorized");
    http_reply_free(&r);
    r = http_run(f->port, "-H 'Authorization: Bearer s3cret-ke'", "/v1/history"); /* a prefix is not the key */
    expect_status(&r, 401, "unauthorized");
    http_reply_free(&r);
    r = http_run(f->port, "-F file=@" CLIP, "/v1/predict");
    expect_status(&r, 401, "unauthorized");
    http_reply_free(&r);
    r = http_run(f->port, "-H 'Authorization: Bearer s3cret-key'", "/v1/models");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    r = http_run(f->port, "-H 'X-API-Key: s3cret-key'", "/v1/history");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    /* health, metrics and the page stay open (probes and the page's own login) */
    r = http_get(f->port, "/healthz");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    r = http_get(f->port, "/");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    stop(f);
}

/* The counters follow the requests made above on the shared server. */
static void test_metrics(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        struct http_reply r = http_get(f->port, "/healthz");
        http_reply_free(&r);
    }
    struct http_reply r = http_get(f->port, "/nope");
    http_reply_free(&r);
    r = http_get(f->port, "/metrics");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    const char *line = strstr(r.body, "avemo_http_requests_total{endpoint=\"healthz\",status=\"200\"} ");
    assert_non_null(line);
    assert_true(atoi(strchr(line, '}') + 2) >= 3);
    assert_non_null(strstr(r.body, "avemo_http_requests_total{endpoint=\"other\",status=\"404\"}"));
    assert_non_null(strstr(r.body, "# TYPE avemo_http_request_duration_seconds histogram"));
    assert_non_null(strstr(r.body, "avemo_http_request_duration_seconds_bucket{endpoint=\"healthz\",le=\"+Inf\"}"));
    assert_non_null(strstr(r.body, "\navemo_queue_depth 0\n"));
    assert_non_null(strstr(r.body, "\navemo_queue_capacity 8\n"));
    assert_non_null(strstr(r.body, "\navemo_ready 0\n"));
    assert_non_null(strstr(r.body, "\navemo_build_info{version=\"" AVEMO_VERSION_STRING "\",libavformat=\""));
    assert_non_null(strstr(r.body, "# TYPE avemo_queue_wait_seconds histogram\n"));
    assert_non_null(strstr(r.body, "# TYPE avemo_inference_duration_seconds histogram\n"));
    http_reply_free(&r);
}

/* Every "$ref" in the document points at something that exists ("#/a/b/c"). */
static void check_refs(const cJSON *root, const cJSON *node, int *refs)
{
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (c->string && strcmp(c->string, "$ref") == 0) {
            const char *ref = cJSON_GetStringValue(c);
            assert_non_null(ref);
            assert_memory_equal(ref, "#/", 2);
            char path[256];
            snprintf(path, sizeof path, "%s", ref + 2);
            const cJSON *at = root;
            for (char *save = NULL, *key = strtok_r(path, "/", &save); key; key = strtok_r(NULL, "/", &save))
                at = cJSON_GetObjectItemCaseSensitive(at, key);
            if (!at) fail_msg("$ref %s points nowhere", ref);
            (*refs)++;
        }
        check_refs(root, c, refs);
    }
}

static const cJSON *resolve(const cJSON *root, const cJSON *obj)
{
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "$ref"));
    if (!ref) return obj;
    char path[256];
    snprintf(path, sizeof path, "%s", ref + 2);
    const cJSON *at = root;
    for (char *save = NULL, *key = strtok_r(path, "/", &save); key; key = strtok_r(NULL, "/", &save))
        at = cJSON_GetObjectItemCaseSensitive(at, key);
    return at;
}

/* GET /openapi.json: an OpenAPI 3.1 document (structure checked here, as no validator is
 * packaged in Debian) covering every endpoint the server routes, each operation with a unique
 * operationId and responses that all have a description, every error status of the API
 * documented for /v1/predict with the Error schema, and every $ref resolving. */
static void test_openapi(void **state)
{
    struct fixture *f = *state;
    struct http_reply r = http_get(f->port, "/openapi.json");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Content-Type: application/json"));
    const cJSON *doc = r.json;
    assert_non_null(doc);
    assert_string_equal(json_string(doc, "openapi"), "3.1.0");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info");
    assert_string_equal(json_string(info, "version"), AVEMO_VERSION_STRING);
    assert_non_null(json_string(info, "title"));
    static const char *const ops[][2] = {
        {"/v1/predict", "post"}, {"/v1/models", "get"}, {"/v1/models/{name}/card", "get"},
        {"/v1/history", "get"}, {"/v1/history/{id}", "get"}, {"/v1/history/{id}", "delete"},
        {"/healthz", "get"}, {"/readyz", "get"}, {"/metrics", "get"}, {"/openapi.json", "get"}, {"/", "get"},
    };
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    char ids[32][64];
    int nids = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paths, ops[i][0]), ops[i][1]);
        if (!op) fail_msg("the document has no %s %s", ops[i][1], ops[i][0]);
        const char *id = json_string(op, "operationId");
        for (int k = 0; k < nids; k++)
            if (strcmp(ids[k], id) == 0) fail_msg("operationId %s twice", id);
        snprintf(ids[nids++], sizeof ids[0], "%s", id);
        const cJSON *responses = cJSON_GetObjectItemCaseSensitive(op, "responses");
        assert_non_null(cJSON_GetObjectItemCaseSensitive(responses, "200"));
        for (const cJSON *resp = responses->child; resp; resp = resp->next) {
            const cJSON *res = resolve(doc, resp);
            if (!res || !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "description")))
                fail_msg("%s %s: response %s has no description", ops[i][1], ops[i][0], resp->string);
        }
    }
    assert_int_equal(cJSON_GetArraySize(paths), 10); /* nothing undocumented, nothing extra */
    static const char *const errors[] = {"400", "401", "404", "405", "413", "415", "422", "500", "503"};
    const cJSON *predict = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paths, "/v1/predict"), "post");
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        const cJSON *res = resolve(doc, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(predict, "responses"), errors[i]));
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res, "content"), "application/json"), "schema");
        if (!schema || strcmp(json_string(schema, "$ref"), "#/components/schemas/Error") != 0)
            fail_msg("/v1/predict: status %s is not documented with the Error schema", errors[i]);
    }
    int refs = 0;
    check_refs(doc, doc, &refs);
    assert_true(refs > 20);
    http_reply_free(&r);
}

/* --cors ORIGIN: answers carry Access-Control-Allow-Origin and a preflight is answered 204;
 * without it, neither. */
static void test_cors(void **state)
{
    (void)state;
    struct fixture *f = start_cors(NULL, 0, "https://app.example");
    struct http_reply r = http_get(f->port, "/healthz");
    expect_status(&r, 200, NULL);
    assert_true(has_header(&r, "Access-Control-Allow-Origin: https://app.example"));
    assert_true(has_header(&r, "Vary: Origin"));
    assert_true(has_header(&r, "Access-Control-Expose-Headers: Retry-After, X-Request-Id, Idempotent-Replayed"));
    http_reply_free(&r);
    r = http_run(f->port, "-X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST'",
                 "/v1/predict");
    expect_status(&r, 204, NULL);
    assert_true(has_header(&r, "Access-Control-Allow-Origin: https://app.example"));
    assert_true(has_header(&r, "Access-Control-Allow-Methods: GET, HEAD, POST, DELETE, OPTIONS"));
    assert_true(has_header(&r, "Access-Control-Allow-Headers: Authorization, X-API-Key, Content-Type, X-Request-Id, Idempotency-Key"));
    http_reply_free(&r);
    r = http_get(f->port, "/v1/nope"); /* errors too, so that a page can read them */
    expect_status(&r, 404, "not_found");
    assert_true(has_header(&r, "Access-Control-Allow-Origin: https://app.example"));
    http_reply_free(&r);
    stop(f);
    f = start(NULL, 0);
    r = http_get(f->port, "/healthz");
    assert_false(has_header(&r, "Access-Control-Allow-Origin"));
    http_reply_free(&r);
    r = http_run(f->port, "-X OPTIONS", "/v1/predict");
    expect_status(&r, 405, "method_not_allowed");
    http_reply_free(&r);
    stop(f);
}

/* A client that sends half a request and stalls is disconnected after the timeout. */
static void test_slow_client_timeout(void **state)
{
    (void)state;
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->db, sizeof f->db, "%s/serve_api_timeout_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    struct avemo_serve_options opt;
    avemo_serve_options_default(&opt);
    opt.port = 0;
    opt.db_path = f->db;
    opt.quiet = 1;
    opt.connection_timeout_s = 1;
    struct avemo_error err = {0};
    if (avemo_server_start(&opt, &f->srv, &err)) fail_msg("server: %s", err.message);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)avemo_server_port(f->srv));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    static const char partial[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow"; /* headers never end */
    assert_int_equal(write(fd, partial, sizeof partial - 1), (ssize_t)(sizeof partial - 1));
    double t0 = avemo_now();
    struct pollfd pfd = {fd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 10000), 1); /* woken by the close, long before 10 s */
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    double waited = avemo_now() - t0;
    assert_true(n <= 0 || strncmp(buf, "HTTP/1.1 ", 9) == 0); /* closed, possibly after an error answer */
    assert_true(waited > 0.5 && waited < 5.0);
    close(fd);
    /* the server is fine afterwards */
    struct http_reply r = http_get(avemo_server_port(f->srv), "/healthz");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    stop(f);
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[65];
    avemo_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    avemo_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* a real file against the sha256sum program */
    size_t n = 0;
    uint8_t *clip = test_read_file(CLIP, &n);
    avemo_sha256_hex(clip, n, hex);
    free(clip);
    uint8_t *out = test_run_capture("sha256sum " CLIP, &n);
    assert_non_null(out);
    assert_memory_equal(out, hex, 64);
    free(out);
}

/* The SQLite store: rows written are committed, listed newest first, deleted, and still
 * there when the file is opened again; WAL + synchronous=FULL are in effect. */
static void test_history_store(void **state)
{
    (void)state;
    char db[256];
    snprintf(db, sizeof db, "%s/serve_history_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    unlink(db);
    struct avemo_error err = {0};
    serve_history *h = NULL;
    assert_int_equal(serve_history_open(db, &h, &err), AVEMO_OK);
    struct avemo_prediction pred;
    memset(&pred, 0, sizeof pred);
    pred.num_classes = 6;
    for (int k = 0; k < 6; k++) {
        snprintf(pred.labels[k], sizeof pred.labels[k], "%s", avemo_emotion_codes[k]);
        pred.probs[k] = (float)(k + 1) / 21.0f;
    }
    int64_t ids[3];
    char when[32];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "clip%d.flv", i);
        struct serve_history_entry e = {name, 1000 + i, "00ff", "avemo-av", "av", "audio", "SAD",
                                        6.0 / 21.0, &pred, 12.5 + i};
        assert_int_equal(serve_history_insert(h, &e, &ids[i], when, &err), AVEMO_OK);
        assert_int_equal(strlen(when), 24); /* 2026-11-22T01:02:03.456Z */
    }
    assert_true(ids[0] < ids[1] && ids[1] < ids[2]);
    cJSON *page = NULL;
    assert_int_equal(serve_history_list(h, 2, 0, &page, &err), AVEMO_OK);
    assert_int_equal((int)json_number(page, "total"), 3);
    cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    assert_int_equal((int64_t)json_number(cJSON_GetArrayItem(items, 0), "id"), ids[2]); /* newest first */
    cJSON_Delete(page);

    assert_int_equal(serve_history_delete(h, ids[1], &err), AVEMO_OK);
    assert_int_equal(serve_history_delete(h, ids[1], &err), AVEMO_ERR_NOT_FOUND);
    cJSON *row = NULL;
    assert_int_equal(serve_history_get(h, ids[1], &row, &err), AVEMO_ERR_NOT_FOUND);
    serve_history_close(h);

    /* reopen: the rows are on disk */
    assert_int_equal(serve_history_open(db, &h, &err), AVEMO_OK);
    assert_int_equal(serve_history_get(h, ids[2], &row, &err), AVEMO_OK);
    assert_string_equal(json_string(row, "file_name"), "clip2.flv");
    assert_string_equal(json_string(row, "mode_used"), "audio");
    assert_int_equal((int)json_number(row, "size"), 1002);
    cJSON *probs = cJSON_GetObjectItemCaseSensitive(row, "probabilities");
    assert_float_equal(json_number(probs, "SAD"), 6.0 / 21.0, 1e-6);
    assert_float_equal(json_number(probs, "ANG"), 1.0 / 21.0, 1e-6);
    cJSON_Delete(row);
    serve_history_close(h);

    /* the journal mode is stored in the file: read it back with a separate connection */
    sqlite3 *check = NULL;
    assert_int_equal(sqlite3_open(db, &check), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(check, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(check);
    unlink(db);
}

/* Library statuses to HTTP: a decode past its time budget is the server's load, not the
 * upload's size (413) nor a bug (500); as a 503 it gets Retry-After like every 503. */
static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(serve_http_status(AVEMO_ERR_TIMEOUT), 503);
    assert_int_equal(serve_http_status(AVEMO_ERR_SILENT), 422);
    assert_int_equal(serve_http_status(AVEMO_ERR_BUSY), 503);
    assert_int_equal(serve_http_status(AVEMO_ERR_TOO_LARGE), 413);
    assert_int_equal(serve_http_status(AVEMO_ERR_TOO_LONG), 413);
    assert_int_equal(serve_http_status(AVEMO_ERR_INTERNAL), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_history_store),
        cmocka_unit_test_setup_teardown(test_health_and_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_predict_request_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openapi, setup, teardown),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_upload_limit),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_slow_client_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
