/* The service with the shipped model: `avemo serve` as its own process on a free 127.0.0.1
 * port, curl as the client.  Every CREMA-D fixture in every mode, as multipart and as a raw
 * body, must give what the library gives for the same bytes; the history row is there after
 * the prediction, gone after DELETE and still there after a restart; every error status of
 * a prediction is provoked.  Exits 77 (skipped) while models/avemo-av.avm does not exist. */
#include "serve_test.h"

#include "serve/serve_internal.h"

#include <avemo/eval.h>
#include <avemo/serve.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The shipped models (models/ of the source tree, or $AVEMO_MODEL_DIR as for `avemo classify`). */
static char model_dir[512], main_model[600], audio_model[600], face_model[600], model_card[600];
#define LOG_FILE "serve_predict.log"
#define NUM_CLIPS 6

static const char *const clips[NUM_CLIPS] = {"1001_DFA_ANG_XX.flv", "1001_DFA_DIS_XX.flv", "1001_DFA_FEA_XX.flv",
                                             "1001_DFA_HAP_XX.flv", "1001_DFA_NEU_XX.flv", "1001_DFA_SAD_XX.flv"};
static const char *const mode_names[3] = {"av", "audio", "face"};

struct state {
    struct serve_process server;
    char db[256];
    const char *extras[2];
    int num_extras;
    avemo_classifier *clf;     /* the reference: the library on the same bytes */
    avemo_classify_ctx *ctx;
    int predictions_ok;        /* answered 200 by the current server process */
    int64_t kept_id;           /* a row that must survive the restart */
    char kept_sha[65];
};

static struct serve_process spawn(struct state *s, const char *db, const char *const *more)
{
    const char *args[32];
    int n = 0;
    args[n++] = "--model";
    args[n++] = main_model;
    for (int i = 0; i < s->num_extras; i++) {
        args[n++] = "--extra-model";
        args[n++] = s->extras[i];
    }
    args[n++] = "--db";
    args[n++] = db;
    for (int i = 0; more && more[i] && n < 30; i++) args[n++] = more[i];
    args[n] = NULL;
    return serve_spawn(LOG_FILE, args);
}

static int group_setup(void **state)
{
    struct state *s = calloc(1, sizeof *s);
    snprintf(s->db, sizeof s->db, "%s/serve_predict_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    unlink(s->db);
    if (file_exists(audio_model)) s->extras[s->num_extras++] = audio_model;
    if (file_exists(face_model)) s->extras[s->num_extras++] = face_model;
    struct avemo_classifier_options copt = {0};
    copt.extra_models = s->extras;
    copt.n_extra_models = s->num_extras;
    struct avemo_error err = {0};
    if (avemo_classifier_open(main_model, &copt, &s->clf, &err) || avemo_classify_ctx_new(s->clf, &s->ctx, &err)) {
        fprintf(stderr, "reference classifier: %s\n", err.message);
        return -1;
    }
    const char *const more[] = {"--max-upload-mb", "1", NULL};
    s->server = spawn(s, s->db, more);
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    struct state *s = *state;
    if (s->server.pid) serve_stop(&s->server);
    avemo_classify_ctx_free(s->ctx);
    avemo_classifier_close(s->clf);
    char path[300];
    unlink(s->db);
    snprintf(path, sizeof path, "%s-wal", s->db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", s->db);
    unlink(path);
    free(s);
    return 0;
}

static void test_ready_and_models(void **state)
{
    struct state *s = *state;
    struct http_reply r = http_get(s->server.port, "/readyz");
    expect_status(&r, 200, NULL);
    assert_string_equal(json_string(r.json, "status"), "ready");
    http_reply_free(&r);

    r = http_get(s->server.port, "/v1/models");
    expect_status(&r, 200, NULL);
    cJSON *models = cJSON_GetObjectItemCaseSensitive(r.json, "models");
    assert_int_equal(cJSON_GetArraySize(models), 1);
    cJSON *m = cJSON_GetArrayItem(models, 0);
    assert_string_equal(json_string(m, "name"), avemo_classifier_name(s->clf));
    assert_string_equal(json_string(m, "file"), "avemo-av.avm");
    assert_null(strstr(r.body, model_dir)); /* no path of the server's disk */
    assert_null(cJSON_GetObjectItemCaseSensitive(m, "path"));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "default")));
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(m, "labels");
    assert_int_equal(cJSON_GetArraySize(labels), avemo_classifier_num_classes(s->clf));
    for (int k = 0; k < cJSON_GetArraySize(labels); k++)
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(labels, k)), avemo_classifier_label(s->clf, k));
    cJSON *modes = cJSON_GetObjectItemCaseSensitive(m, "modes");
    int supported = 0;
    for (int mode = 0; mode < 3; mode++) supported += avemo_classifier_supports(s->clf, (enum avemo_mode)mode);
    assert_int_equal(cJSON_GetArraySize(modes), supported);
    cJSON *card = cJSON_GetObjectItemCaseSensitive(m, "card");
    if (file_exists(model_card)) {
        assert_string_equal(json_string(card, "file"), "avemo-av.md");
        assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(card, "accuracy")));
        /* the card's Limitations, one item per bullet, and the whole card at its url */
        cJSON *caveats = cJSON_GetObjectItemCaseSensitive(card, "caveats");
        assert_true(cJSON_GetArraySize(caveats) >= 1);
        assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetArrayItem(caveats, 0)), "artificial"));
        assert_string_equal(json_string(card, "url"), "/v1/models/avemo-av/card");
        struct http_reply c = http_get(s->server.port, "/v1/models/avemo-av/card");
        expect_status(&c, 200, NULL);
        assert_true(has_header(&c, "Content-Type: text/markdown"));
        char *want = slurp_text(model_card, NULL);
        assert_string_equal(c.body, want);
        free(want);
        http_reply_free(&c);
    } else {
        assert_true(cJSON_IsNull(card));
    }
    http_reply_free(&r);
    r = http_get(s->server.port, "/v1/models/nope/card");
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);
}

/* One prediction checked against the library's answer for the same bytes. */
static void check_prediction(struct state *s, const char *clip, int mode, int multipart)
{
    char path[512], args[1024], url[256];
    snprintf(path, sizeof path, "%s/cremad/%s", AVEMO_TEST_DATA, clip);
    size_t size = 0;
    uint8_t *bytes = test_read_file(path, &size);
    char sha[65];
    avemo_sha256_hex(bytes, size, sha);
    struct avemo_prediction ref;
    struct avemo_error err = {0};
    enum avemo_status st = avemo_classify_memory(s->ctx, bytes, size, clip, (enum avemo_mode)mode, &ref, &err);
    free(bytes);

    if (multipart) {
        snprintf(args, sizeof args, "-F 'file=@%s'", path);
        snprintf(url, sizeof url, "/v1/predict?mode=%s", mode_names[mode]);
    } else {
        snprintf(args, sizeof args, "-H 'Content-Type: video/x-flv' --data-binary '@%s'", path);
        snprintf(url, sizeof url, "/v1/predict?mode=%s&name=%s", mode_names[mode], clip);
    }
    struct http_reply r = http_run(s->server.port, args, url);
    if (!avemo_classifier_supports(s->clf, (enum avemo_mode)mode)) { /* no model for this mode */
        expect_status(&r, 422, "unsupported_mode");
        http_reply_free(&r);
        return;
    }
    if (st != AVEMO_OK) { /* the library refuses it: the server must say why, with the mapped status */
        expect_status(&r, (int)serve_http_status(st), avemo_status_name(st));
        http_reply_free(&r);
        return;
    }
    expect_status(&r, 200, NULL);
    s->predictions_ok++;
    cJSON *p = r.json;
    assert_string_equal(json_string(p, "file"), clip);
    assert_string_equal(json_string(p, "sha256"), sha);
    assert_int_equal((size_t)json_number(p, "size"), size);
    assert_string_equal(json_string(p, "label"), ref.labels[ref.label]);
    assert_string_equal(json_string(p, "mode"), avemo_mode_name(ref.mode_used));
    assert_float_equal(json_number(p, "confidence"), ref.confidence, 1e-6);
    cJSON *classes = cJSON_GetObjectItemCaseSensitive(p, "classes");
    assert_int_equal(cJSON_GetArraySize(classes), ref.num_classes);
    double sum = 0;
    for (int k = 0; k < ref.num_classes; k++) {
        cJSON *c = cJSON_GetArrayItem(classes, k);
        assert_string_equal(json_string(c, "label"), ref.labels[k]);
        assert_float_equal(json_number(c, "probability"), ref.probs[k], 1e-6);
        sum += json_number(c, "probability");
    }
    assert_float_equal(sum, 1.0, 1e-4);
    const char *face = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "face_crop"));
    if (ref.face_found) {
        assert_non_null(face);
        assert_memory_equal(face, "data:image/jpeg;base64,/9j/", 27); /* FF D8 FF: a JPEG */
    } else {
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "face_crop")));
    }

    /* the history row, committed before the answer */
    int64_t id = (int64_t)json_number(p, "id");
    char item[64];
    snprintf(item, sizeof item, "/v1/history/%lld", (long long)id);
    struct http_reply h = http_get(s->server.port, item);
    expect_status(&h, 200, NULL);
    assert_int_equal((int64_t)json_number(h.json, "id"), id);
    assert_string_equal(json_string(h.json, "file_name"), clip);
    assert_string_equal(json_string(h.json, "sha256"), sha);
    assert_string_equal(json_string(h.json, "label"), ref.labels[ref.label]);
    assert_string_equal(json_string(h.json, "mode"), mode_names[mode]);
    assert_string_equal(json_string(h.json, "mode_used"), avemo_mode_name(ref.mode_used));
    assert_int_equal((size_t)json_number(h.json, "size"), size);
    cJSON *probs = cJSON_GetObjectItemCaseSensitive(h.json, "probabilities");
    for (int k = 0; k < ref.num_classes; k++) assert_float_equal(json_number(probs, ref.labels[k]), ref.probs[k], 1e-6);
    assert_true(json_number(h.json, "latency_ms") > 0);
    http_reply_free(&h);
    http_reply_free(&r);
}

static void test_predict_every_clip_mode_and_transport(void **state)
{
    struct state *s = *state;
    for (int c = 0; c < NUM_CLIPS; c++)
        for (int mode = 0; mode < 3; mode++)
            for (int multipart = 0; multipart < 2; multipart++) check_prediction(s, clips[c], mode, multipart);
    assert_true(s->predictions_ok > 0);
}

/* A raw body without ?name= is recorded as "upload"; the default mode is the model's. */
static void test_predict_defaults(void **state)
{
    struct state *s = *state;
    struct http_reply r = http_run(s->server.port, "-H 'Content-Type: application/octet-stream' --data-binary @"
                                   TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), "/v1/predict");
    expect_status(&r, 200, NULL);
    s->predictions_ok++;
    assert_string_equal(json_string(r.json, "file"), "upload");
    assert_string_equal(json_string(r.json, "mode_requested"),
                        avemo_mode_name(avemo_classifier_default_mode(s->clf)));
    http_reply_free(&r);
    /* a client's file name is reduced to a base name before it is stored */
    r = http_run(s->server.port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_HAP_XX.flv") ";filename=../../etc/evil.flv'",
                 "/v1/predict?mode=audio");
    expect_status(&r, 200, NULL);
    s->predictions_ok++;
    assert_string_equal(json_string(r.json, "file"), "evil.flv");
    http_reply_free(&r);
}

/* Expect the library's own refusal of a file in a mode, and the server's mapping of it. */
static void expect_media_error(struct state *s, const char *path, const char *mode, enum avemo_status expected,
                               int http_status)
{
    size_t size = 0;
    uint8_t *bytes = test_read_file(path, &size);
    struct avemo_prediction ref;
    struct avemo_error err = {0};
    enum avemo_mode m;
    assert_int_equal(avemo_mode_parse(mode, &m, &err), AVEMO_OK);
    enum avemo_status st = avemo_classify_memory(s->ctx, bytes, size, path, m, &ref, &err);
    free(bytes);
    if (st != expected) fail_msg("%s in mode %s: the library says %s, expected %s", path, mode, avemo_status_name(st),
                                 avemo_status_name(expected));
    char args[600], url[128];
    snprintf(args, sizeof args, "-F 'file=@%s'", path);
    snprintf(url, sizeof url, "/v1/predict?mode=%s", mode);
    struct http_reply r = http_run(s->server.port, args, url);
    expect_status(&r, http_status, avemo_status_name(expected));
    http_reply_free(&r);
}

/* A request written byte for byte on a socket (curl cannot choose where chunks end); the whole
 * reply, read to the server's close, is returned in reply (NUL-terminated). */
static void raw_request(int port, const char *head, const char *const *pieces, const size_t *lens, int n, int chunked,
                        char *reply, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    FILE *out = fdopen(dup(fd), "w");
    fputs(head, out);
    for (int i = 0; i < n; i++) {
        if (chunked) fprintf(out, "%zx\r\n", lens[i]);
        fwrite(pieces[i], 1, lens[i], out);
        if (chunked) fputs("\r\n", out);
        fflush(out); /* one chunk per write, as a client streaming it would */
    }
    if (chunked) fputs("0\r\n\r\n", out);
    fclose(out);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < cap && (k = read(fd, reply + got, cap - 1 - got)) > 0) got += (size_t)k;
    reply[got] = '\0';
    close(fd);
}

/* Multipart uploads whose bytes arrive in awkward places: a chunked body whose first chunk ends
 * two bytes into the file (libmicrohttpd then reports the part twice at offset 0) is one file;
 * a body cut before its closing boundary is refused, not classified without its last bytes. */
static void test_multipart_edges(void **state)
{
    struct state *s = *state;
    size_t size = 0;
    char *clip = (char *)test_read_file(TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), &size);
    char sha[65], reply[16384], head[512];
    avemo_sha256_hex(clip, size, sha);
    static const char part[] = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"h.flv\"\r\n"
                               "Content-Type: video/x-flv\r\n\r\n",
                      closing[] = "\r\n--XyZ--\r\n";
    const char *type = "Content-Type: multipart/form-data; boundary=XyZ\r\nConnection: close\r\n";

    char *first = malloc(sizeof part + 2), *rest = malloc(size + sizeof closing);
    memcpy(first, part, sizeof part - 1);
    memcpy(first + sizeof part - 1, clip, 2);
    memcpy(rest, clip + 2, size - 2);
    memcpy(rest + size - 2, closing, sizeof closing - 1);
    const char *chunks[2] = {first, rest};
    const size_t chunk_lens[2] = {sizeof part + 1, size - 2 + sizeof closing - 1};
    snprintf(head, sizeof head, "POST /v1/predict?mode=audio HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n",
             type);
    raw_request(s->server.port, head, chunks, chunk_lens, 2, 1, reply, sizeof reply);
    printf("  chunked: %.200s\n", strstr(reply, "\r\n\r\n") ? strstr(reply, "\r\n\r\n") + 4 : reply);
    assert_true(strncmp(reply, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(reply, sha)); /* every byte of the file arrived */
    assert_non_null(strstr(reply, "\"h.flv\""));
    s->predictions_ok++;

    const char *unclosed[2] = {part, clip};
    const size_t unclosed_lens[2] = {sizeof part - 1, size};
    snprintf(head, sizeof head, "POST /v1/predict?mode=audio HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
             type, sizeof part - 1 + size);
    raw_request(s->server.port, head, unclosed, unclosed_lens, 2, 0, reply, sizeof reply);
    printf("  unclosed: %.200s\n", strstr(reply, "\r\n\r\n") ? strstr(reply, "\r\n\r\n") + 4 : reply);
    assert_true(strncmp(reply, "HTTP/1.1 400", 12) == 0);
    assert_non_null(strstr(reply, "ends before its closing boundary"));
    free(first), free(rest), free(clip);
}

static void test_predict_errors(void **state)
{
    struct state *s = *state;
    int port = s->server.port;
    /* 422: media without the stream the mode needs */
    expect_media_error(s, TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv"), "audio", AVEMO_ERR_NO_AUDIO, 422);
    /* 422: a sound track that is digital silence has no voice to classify */
    expect_media_error(s, TEST_DATA("media/muted_1001_DFA_ANG_XX.mp4"), "audio", AVEMO_ERR_SILENT, 422);
    if (avemo_classifier_supports(s->clf, AVEMO_MODE_FACE))
        expect_media_error(s, TEST_DATA("audio/1001_DFA_ANG_XX.wav"), "face", AVEMO_ERR_NO_VIDEO, 422);
    else
        printf("note: no face model loaded, the no_video case is not checked\n");

    /* 422: a clip with neither a face nor sound (ffmpeg's test pattern): av has nothing to use */
    char faceless[] = "/tmp/avemo-serve-faceless-XXXXXX.mp4";
    int tmp = mkstemps(faceless, 4);
    assert_true(tmp >= 0);
    close(tmp);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s -v error -y -f lavfi -i testsrc=size=320x240:rate=10 -t 1 -c:v mpeg4 %s",
             AVEMO_FFMPEG, faceless);
    assert_int_equal(system(cmd), 0);
    {
        size_t size = 0;
        uint8_t *bytes = test_read_file(faceless, &size);
        struct avemo_prediction ref;
        struct avemo_error err = {0};
        enum avemo_status st = avemo_classify_memory(s->ctx, bytes, size, faceless, AVEMO_MODE_AV, &ref, &err);
        free(bytes);
        if (st != AVEMO_ERR_NO_FACE && st != AVEMO_ERR_NO_AUDIO)
            fail_msg("faceless silent clip in av mode: the library says %s", avemo_status_name(st));
        expect_media_error(s, faceless, "av", st, 422);
        if (avemo_classifier_supports(s->clf, AVEMO_MODE_FACE))
            expect_media_error(s, faceless, "face", AVEMO_ERR_NO_FACE, 422);
    }
    unlink(faceless);

    /* 415: bytes that are no media at all, whatever the Content-Type says */
    char junk[] = "/tmp/avemo-serve-junk-XXXXXX";
    int fd = mkstemp(junk);
    assert_true(fd >= 0);
    for (int i = 0; i < 200; i++) assert_int_equal(write(fd, "this is not a video file. ", 26), 26);
    close(fd);
    char args[600];
    snprintf(args, sizeof args, "-H 'Content-Type: video/mp4' --data-binary '@%s'", junk);
    struct http_reply r = http_run(port, args, "/v1/predict?mode=av");
    expect_status(&r, 415, NULL);
    http_reply_free(&r);
    unlink(junk);

    /* 400: an empty body, a form without 'file', a form with two files, a bad model name */
    r = http_run(port, "-H 'Content-Type: video/x-flv' --data-binary ''", "/v1/predict");
    expect_status(&r, 400, "empty");
    http_reply_free(&r);
    r = http_run(port, "-F 'clip=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'", "/v1/predict");
    expect_status(&r, 400, "bad_request");
    http_reply_free(&r);
    r = http_run(port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "' -F 'file=@"
                 TEST_DATA("cremad/1001_DFA_SAD_XX.flv") "'", "/v1/predict");
    expect_status(&r, 400, "bad_request");
    http_reply_free(&r);
    r = http_run(port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'", "/v1/predict?model=nosuchmodel");
    expect_status(&r, 400, "unknown_model");
    http_reply_free(&r);

    /* 413: over the 1 MiB limit of this server, declared (Content-Length) and streamed (chunked) */
    char big[] = "/tmp/avemo-serve-big-XXXXXX";
    fd = mkstemp(big);
    assert_true(fd >= 0);
    size_t n = 0;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_DIS_XX.flv"), &n);
    for (int i = 0; i < 5; i++) assert_int_equal(write(fd, clip, n), (ssize_t)n); /* 1.45 MB */
    close(fd);
    free(clip);
    snprintf(args, sizeof args, "-H 'Content-Type: video/x-flv' --data-binary '@%s'", big);
    r = http_run(port, args, "/v1/predict");
    expect_status(&r, 413, "too_large");
    http_reply_free(&r);
    snprintf(args, sizeof args, "-H 'Content-Type: video/x-flv' -H 'Transfer-Encoding: chunked' --data-binary '@%s'",
             big);
    r = http_run(port, args, "/v1/predict");
    expect_status(&r, 413, "too_large");
    http_reply_free(&r);
    snprintf(args, sizeof args, "-F 'file=@%s'", big);
    r = http_run(port, args, "/v1/predict");
    expect_status(&r, 413, "too_large");
    http_reply_free(&r);
    unlink(big);

    /* the server is still up and well */
    r = http_get(port, "/readyz");
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
}

/* Prometheus counters follow the predictions made by this process. */
static void test_metrics(void **state)
{
    struct state *s = *state;
    struct http_reply r = http_get(s->server.port, "/metrics");
    expect_status(&r, 200, NULL);
    const char *line = strstr(r.body, "avemo_http_requests_total{endpoint=\"predict\",status=\"200\"} ");
    assert_non_null(line);
    assert_int_equal(atoi(strchr(line, '}') + 2), s->predictions_ok);
    /* the predictions by label add up to the same number */
    int total = 0;
    for (const char *p = r.body; (p = strstr(p, "\navemo_predictions_total{")); p++) total += atoi(strchr(p, '}') + 2);
    assert_int_equal(total, s->predictions_ok);
    assert_non_null(strstr(r.body, "avemo_http_requests_total{endpoint=\"predict\",status=\"422\"}"));
    assert_non_null(strstr(r.body, "avemo_http_requests_total{endpoint=\"predict\",status=\"413\"}"));
    assert_non_null(strstr(r.body, "avemo_http_requests_total{endpoint=\"predict\",status=\"415\"}"));
    assert_non_null(strstr(r.body, "avemo_http_request_duration_seconds_count{endpoint=\"predict\"}"));
    assert_non_null(strstr(r.body, "\navemo_ready 1\n"));
    /* every upload a worker took is timed twice: its wait in the queue and its inference */
    const char *waits = strstr(r.body, "\navemo_queue_wait_seconds_count ");
    const char *runs = strstr(r.body, "\navemo_inference_duration_seconds_count ");
    assert_non_null(waits);
    assert_non_null(runs);
    assert_true(atoi(strchr(waits + 1, ' ') + 1) >= s->predictions_ok);
    assert_int_equal(atoi(strchr(waits + 1, ' ') + 1), atoi(strchr(runs + 1, ' ') + 1));
    assert_non_null(strstr(r.body, "\navemo_build_info{version=\"" AVEMO_VERSION_STRING "\","));
    http_reply_free(&r);
}

/* avemo_predictions_total names the model that answered: after av falls back on a clip without
 * sound, the face model, as the answer's "model" says. */
static void test_metrics_name_the_answering_model(void **state)
{
    struct state *s = *state;
    if (s->num_extras < 2) skip();
    struct http_reply r = http_run(s->server.port, "-F 'file=@" TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv") "'",
                                   "/v1/predict?mode=av");
    expect_status(&r, 200, NULL);
    s->predictions_ok++;
    char want[160];
    snprintf(want, sizeof want, "avemo_predictions_total{model=\"%s\",mode=\"%s\",label=\"%s\"} ",
             json_string(r.json, "model"), json_string(r.json, "mode"), json_string(r.json, "label"));
    assert_string_not_equal(json_string(r.json, "model"), "avemo-av");
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r.json, "fallback")));
    http_reply_free(&r);
    r = http_get(s->server.port, "/metrics");
    if (!strstr(r.body, want)) fail_msg("no '%s' in the metrics", want);
    http_reply_free(&r);
}

/* ?signals=1: the waveform (normalised to a peak of 127) and the log-mel from the server's own
 * decode, for FLV, WAV and MP3 alike; only when asked; a wrong value is a 400. */
static void test_signals(void **state)
{
    struct state *s = *state;
    static const char *const files[3] = {TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), TEST_DATA("audio/1001_DFA_ANG_XX.wav"),
                                         TEST_DATA("audio/1002_DFA_ANG_XX.mp3")};
    for (int i = 0; i < 3; i++) {
        char args[600];
        snprintf(args, sizeof args, "-F 'file=@%s'", files[i]);
        struct http_reply r = http_run(s->server.port, args, "/v1/predict?mode=audio&signals=1");
        expect_status(&r, 200, NULL);
        s->predictions_ok++;
        cJSON *sig = cJSON_GetObjectItemCaseSensitive(r.json, "signals");
        assert_true(json_number(sig, "duration_s") > 1.0 && json_number(sig, "duration_s") < 5.0);
        cJSON *wave = cJSON_GetObjectItemCaseSensitive(sig, "waveform");
        cJSON *lo = cJSON_GetObjectItemCaseSensitive(wave, "min"), *hi = cJSON_GetObjectItemCaseSensitive(wave, "max");
        assert_int_equal(cJSON_GetArraySize(lo), 600);
        assert_int_equal(cJSON_GetArraySize(hi), 600);
        int peak = 0;
        for (int c = 0; c < 600; c++) {
            int a = cJSON_GetArrayItem(lo, c)->valueint, b = cJSON_GetArrayItem(hi, c)->valueint;
            assert_true(a <= b && a >= -127 && b <= 127);
            peak = abs(a) > peak ? abs(a) : peak;
            peak = abs(b) > peak ? abs(b) : peak;
        }
        assert_int_equal(peak, 127);
        assert_true(json_number(wave, "peak") > 0.0 && json_number(wave, "peak") <= 1.0);
        cJSON *mel = cJSON_GetObjectItemCaseSensitive(sig, "logmel");
        int bands = (int)json_number(mel, "bands"), frames = (int)json_number(mel, "frames");
        assert_int_equal(bands, 64);
        assert_true(frames > 50 && frames <= 400);
        assert_int_equal(strlen(json_string(mel, "data")), 4 * (((size_t)bands * frames + 2) / 3));
        http_reply_free(&r);
    }
    struct http_reply r = http_run(s->server.port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'",
                                   "/v1/predict?signals=yes");
    expect_status(&r, 400, "bad_request");
    http_reply_free(&r);
    r = http_run(s->server.port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'", "/v1/predict?mode=audio");
    expect_status(&r, 200, NULL);
    s->predictions_ok++;
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "signals")); /* only when asked */
    http_reply_free(&r);
}

static int64_t predict_id(int port, const char *clip, char sha[65])
{
    struct http_reply r = http_run(port, clip, "/v1/predict?mode=audio");
    expect_status(&r, 200, NULL);
    int64_t id = (int64_t)json_number(r.json, "id");
    snprintf(sha, 65, "%s", json_string(r.json, "sha256"));
    http_reply_free(&r);
    return id;
}

static void test_history_delete_and_restart(void **state)
{
    struct state *s = *state;
    char sha[65], url[64];
    int64_t gone = predict_id(s->server.port, "-F file=@" TEST_DATA("cremad/1001_DFA_FEA_XX.flv"), sha);
    snprintf(url, sizeof url, "/v1/history/%lld", (long long)gone);
    struct http_reply r = http_get(s->server.port, url);
    expect_status(&r, 200, NULL);
    http_reply_free(&r);
    r = http_run(s->server.port, "-X DELETE", url);
    expect_status(&r, 200, NULL);
    assert_int_equal((int64_t)json_number(r.json, "deleted"), gone);
    http_reply_free(&r);
    r = http_get(s->server.port, url);
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);

    s->kept_id = predict_id(s->server.port, "-F file=@" TEST_DATA("cremad/1001_DFA_NEU_XX.flv"), s->kept_sha);
    r = http_get(s->server.port, "/v1/history?limit=1");
    expect_status(&r, 200, NULL);
    int total = (int)json_number(r.json, "total");
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "items"), 0);
    assert_int_equal((int64_t)json_number(first, "id"), s->kept_id); /* newest first */
    http_reply_free(&r);

    /* restart on the same file: the rows are still there, the deleted one is not */
    serve_stop(&s->server);
    s->server = spawn(s, s->db, NULL);
    s->predictions_ok = 0;
    snprintf(url, sizeof url, "/v1/history/%lld", (long long)s->kept_id);
    r = http_get(s->server.port, url);
    expect_status(&r, 200, NULL);
    assert_string_equal(json_string(r.json, "sha256"), s->kept_sha);
    assert_string_equal(json_string(r.json, "file_name"), "1001_DFA_NEU_XX.flv");
    http_reply_free(&r);
    snprintf(url, sizeof url, "/v1/history/%lld", (long long)gone);
    r = http_get(s->server.port, url);
    expect_status(&r, 404, "not_found");
    http_reply_free(&r);
    r = http_get(s->server.port, "/v1/history");
    expect_status(&r, 200, NULL);
    assert_int_equal((int)json_number(r.json, "total"), total);
    http_reply_free(&r);
    /* a new id after the restart is larger than every earlier one */
    assert_true(predict_id(s->server.port, "-F file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), sha) > s->kept_id);
}

/* One worker and one queue slot: 8 simultaneous uploads get 200 or 503 + Retry-After. */
static void test_queue_full_503(void **state)
{
    struct state *s = *state;
    const char *const more[] = {"--threads", "1", "--queue", "1", NULL};
    char db[300];
    snprintf(db, sizeof db, "%s/serve_busy_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    struct serve_process busy = spawn(s, db, more);
    char cmd[4096];
    /* one curl, 8 transfers started at once; --next gives each transfer its own form */
    int o = snprintf(cmd, sizeof cmd, "curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max 8");
    for (int i = 0; i < 8; i++)
        o += snprintf(cmd + o, sizeof cmd - (size_t)o,
                      "%s -w '%%{http_code} %%header{retry-after}\\n' -o /dev/null -F file=@%s/cremad/%s "
                      "'http://127.0.0.1:%d/v1/predict?mode=av'",
                      i ? " --next" : "", AVEMO_TEST_DATA, clips[i % NUM_CLIPS], busy.port);
    size_t n = 0;
    char *out = (char *)test_run_capture(cmd, &n);
    assert_non_null(out);
    out = realloc(out, n + 1);
    out[n] = '\0';
    int ok = 0, rejected = 0, lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        if (strncmp(line, "200", 3) == 0) ok++;
        else if (strcmp(line, "503 1") == 0) rejected++;
        else fail_msg("unexpected answer '%s'", line);
    }
    free(out);
    assert_int_equal(lines, 8);
    assert_true(ok >= 1);
    assert_true(rejected >= 1);
    struct http_reply r = http_get(busy.port, "/metrics");
    assert_non_null(strstr(r.body, "avemo_http_requests_total{endpoint=\"predict\",status=\"503\"}"));
    http_reply_free(&r);
    serve_stop(&busy);
    char path[320];
    unlink(db);
    snprintf(path, sizeof path, "%s-wal", db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", db);
    unlink(path);
}

/* SIGTERM with uploads in the queue: each of them is still answered, then the server exits 0. */
static void test_graceful_stop(void **state)
{
    struct state *s = *state;
    const char *const more[] = {"--threads", "1", "--queue", "8", NULL};
    char db[300], cmd[4096];
    snprintf(db, sizeof db, "%s/serve_stop_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    struct serve_process p = spawn(s, db, more);
    int o = snprintf(cmd, sizeof cmd, "curl -sS --no-progress-meter --parallel --parallel-immediate");
    for (int i = 0; i < 4; i++)
        o += snprintf(cmd + o, sizeof cmd - (size_t)o,
                      "%s -w '%%{http_code}\\n' -o /dev/null -F file=@%s/cremad/%s "
                      "'http://127.0.0.1:%d/v1/predict?mode=av'",
                      i ? " --next" : "", AVEMO_TEST_DATA, clips[i], p.port);
    FILE *clients = popen(cmd, "r");
    assert_non_null(clients);
    /* Wait until all four uploads have arrived (waiting, running or answered) and one still
     * waits, then stop the server: an upload still on its way would rightly get 503. */
    int queued = 0, arrived = 0;
    for (int tries = 0; tries < 3000 && !(arrived >= 4 && queued >= 1); tries++) {
        struct http_reply r = http_get(p.port, "/metrics");
        const char *depth = strstr(r.body, "\navemo_queue_depth ");
        const char *busy = strstr(r.body, "\navemo_workers_busy ");
        const char *done = strstr(r.body, "\navemo_queue_wait_seconds_count ");
        queued = depth ? atoi(depth + strlen("\navemo_queue_depth ")) : 0;
        arrived = queued + (busy ? atoi(busy + strlen("\navemo_workers_busy ")) : 0) +
                  (done ? atoi(done + strlen("\navemo_queue_wait_seconds_count ")) : 0);
        http_reply_free(&r);
        if (arrived < 4 || queued < 1) usleep(10000);
    }
    assert_int_equal(arrived, 4);
    assert_true(queued >= 1);
    serve_stop(&p); /* asserts exit status 0 */
    char line[64];
    int answered = 0;
    while (fgets(line, sizeof line, clients)) {
        if (strncmp(line, "200", 3) != 0) fail_msg("a queued upload got '%s' at shutdown", line);
        answered++;
    }
    assert_int_equal(pclose(clients), 0);
    assert_int_equal(answered, 4);
    char path[320];
    unlink(db);
    snprintf(path, sizeof path, "%s-wal", db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", db);
    unlink(path);
}

/* /v1/models reads the model card next to the model: its accuracy lines and their numbers. */
static void test_model_card(void **state)
{
    (void)state;
    char dir[300], model[400], card[400], db[400];
    snprintf(dir, sizeof dir, "%s/serve_card_%d", AVEMO_BINARY_DIR, (int)getpid());
    snprintf(model, sizeof model, "%s/cardtest.avm", dir);
    snprintf(card, sizeof card, "%s/cardtest.md", dir);
    snprintf(db, sizeof db, "%s/history.sqlite", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    size_t n = 0;
    uint8_t *bytes = test_read_file(main_model, &n);
    FILE *f = fopen(model, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
    f = fopen(card, "w");
    assert_non_null(f);
    fputs("# cardtest\n\n| metric | value |\n|---|---|\n| test accuracy | 0.712 |\n"
          "Unweighted accuracy (UA): 68.5 % on 1,116 clips\nF1 macro 0.70\n\n## Limitations\n\n"
          "- Acted speech only,\n  never tested on phone calls.\n- Six emotions.\n\n## Licence\n\n- not a caveat\n", f);
    fclose(f);

    struct avemo_serve_options opt;
    avemo_serve_options_default(&opt);
    opt.models[opt.num_models++] = model;
    opt.port = 0;
    opt.db_path = db;
    opt.quiet = 1;
    avemo_server *srv = NULL;
    struct avemo_error err = {0};
    if (avemo_server_start(&opt, &srv, &err)) fail_msg("server: %s", err.message);
    struct http_reply r = http_get(avemo_server_port(srv), "/v1/models");
    expect_status(&r, 200, NULL);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "models"), 0);
    assert_string_equal(json_string(m, "name"), "cardtest");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "card");
    assert_string_equal(json_string(c, "file"), "cardtest.md");
    cJSON *caveats = cJSON_GetObjectItemCaseSensitive(c, "caveats");
    assert_int_equal(cJSON_GetArraySize(caveats), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(caveats, 0)),
                        "Acted speech only, never tested on phone calls.");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(caveats, 1)), "Six emotions.");
    cJSON *acc = cJSON_GetObjectItemCaseSensitive(c, "accuracy");
    assert_int_equal(cJSON_GetArraySize(acc), 2); /* the F1 line does not mention accuracy */
    cJSON *values = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(acc, 0), "values");
    assert_int_equal(cJSON_GetArraySize(values), 1);
    assert_float_equal(cJSON_GetArrayItem(values, 0)->valuedouble, 0.712, 1e-9);
    values = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(acc, 1), "values");
    assert_float_equal(cJSON_GetArrayItem(values, 0)->valuedouble, 68.5, 1e-9);
    http_reply_free(&r);
    avemo_server_stop(srv);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const char *dir = getenv("AVEMO_MODEL_DIR");
    snprintf(model_dir, sizeof model_dir, "%s", dir && *dir ? dir : AVEMO_SOURCE_DIR "/models");
    snprintf(main_model, sizeof main_model, "%s/avemo-av.avm", model_dir);
    snprintf(audio_model, sizeof audio_model, "%s/avemo-audio.avm", model_dir);
    snprintf(face_model, sizeof face_model, "%s/avemo-face.avm", model_dir);
    snprintf(model_card, sizeof model_card, "%s/avemo-av.md", model_dir);
    if (!file_exists(main_model)) {
        printf("SKIPPED: %s does not exist yet (the predict tests need the trained model)\n", main_model);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_models),
        cmocka_unit_test(test_model_card),
        cmocka_unit_test(test_predict_every_clip_mode_and_transport),
        cmocka_unit_test(test_predict_defaults),
        cmocka_unit_test(test_predict_errors),
        cmocka_unit_test(test_multipart_edges),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_metrics_name_the_answering_model),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_queue_full_503),
        cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_history_delete_and_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
