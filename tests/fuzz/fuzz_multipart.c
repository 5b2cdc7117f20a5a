/* libFuzzer harness: the upload request path of the HTTP server.  One server (the shipped
 * audio model, a temporary history database, a 256 KiB upload cap) runs in this process;
 * every input becomes one request on a fresh loopback connection, and the answer must be
 * a well-formed HTTP response whose status is one the API documents (never 500, never a
 * dropped connection).  The first input byte picks what the fuzzer controls:
 *   0: the body of a multipart/form-data POST /v1/predict (boundary "avemoFuzz")
 *   1: the Content-Type value (up to the first newline) and the body after it
 *   2: the whole request, request line and headers included; a head without its blank line
 *      gets one, and a body shorter than its Content-Length is padded with zeros, so that the
 *      server answers at once instead of waiting for bytes that never come (the connection
 *      timeout, 1 s here, covers the remaining cases such as an unfinished chunked body)
 * The server's own crashes, leaks and undefined behaviour are caught by ASan and UBSan. */
#include <avemo/serve.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz_common.h"

#define UPLOAD_CAP (256 * 1024)
#define RESPONSE_CAP (1024 * 1024)

struct fuzz_server {
    avemo_server *srv;
    int port;
    char dir[64];
};

static struct fuzz_server fuzz_srv; /* one server for the whole run: starting one per input is too slow */

static void stop_server(void)
{
    if (fuzz_srv.srv) avemo_server_stop(fuzz_srv.srv);
    fuzz_srv.srv = NULL;
    if (fuzz_srv.dir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/history.sqlite", fuzz_srv.dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/history.sqlite-wal", fuzz_srv.dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/history.sqlite-shm", fuzz_srv.dir);
        unlink(path);
        rmdir(fuzz_srv.dir);
    }
}

static void start_server(void)
{
    fuzz_quiet_ffmpeg();
    snprintf(fuzz_srv.dir, sizeof fuzz_srv.dir, "/tmp/avemo-fuzz-XXXXXX");
    if (!mkdtemp(fuzz_srv.dir)) abort();
    char db[128];
    snprintf(db, sizeof db, "%s/history.sqlite", fuzz_srv.dir);
    struct avemo_serve_options opt;
    avemo_serve_options_default(&opt);
    opt.models[0] = AVEMO_SOURCE_DIR "/models/avemo-audio.avm";
    opt.num_models = 1;
    opt.port = 0;
    opt.db_path = db;
    opt.threads = 1;
    opt.http_threads = 1;
    opt.max_upload_bytes = UPLOAD_CAP;
    opt.connection_timeout_s = 1;
    opt.quiet = 1;
    struct avemo_error err = {0};
    if (avemo_server_start(&opt, &fuzz_srv.srv, &err)) {
        fprintf(stderr, "fuzz_multipart: cannot start the server: %s\n", err.message);
        abort();
    }
    fuzz_srv.port = avemo_server_port(fuzz_srv.srv);
    atexit(stop_server);
}

static int send_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n <= 0) return -1; /* the server may close early (a rejected header): not a failure */
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Send the request, read the whole answer (the request asks to close), return its status. */
static int exchange(const char *head, size_t head_len, const uint8_t *body, size_t body_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)fuzz_srv.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) abort();
    if (send_all(fd, head, head_len) == 0 && body_len) send_all(fd, body, body_len);
    shutdown(fd, SHUT_WR); /* a request that lies about its length gets an end of stream */
    static char response[RESPONSE_CAP + 1];
    size_t got = 0;
    ssize_t n;
    while (got < RESPONSE_CAP && (n = recv(fd, response + got, RESPONSE_CAP - got, 0)) > 0) got += (size_t)n;
    close(fd);
    response[got] = 0;
    int status = 0;
    if (got == 0) return 0; /* closed without an answer: MHD does this for unparseable request lines */
    if (sscanf(response, "HTTP/1.%*1[01] %d ", &status) != 1) {
        fprintf(stderr, "not an HTTP response: %.80s\n", response);
        abort();
    }
    return status;
}

/* The statuses docs/http-api.md lists for POST /v1/predict and the router. */
static int documented_status(int status)
{
    static const int ok[] = {200, 400, 401, 404, 405, 408, 411, 413, 414, 415, 422, 431, 501, 503, 505};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (status == ok[i]) return 1;
    return 0;
}

/* Mode 2: the fuzzer's request, completed so that the server need not wait for more bytes. */
static uint8_t *complete_request(const uint8_t *data, size_t size, size_t *out_size)
{
    const uint8_t *blank = NULL;
    for (size_t i = 0; i + 4 <= size && !blank; i++)
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) blank = data + i + 4;
    size_t head = blank ? (size_t)(blank - data) : size, have = size - head, want = have;
    for (size_t i = 0; blank && i + 15 < head; i++)
        if (strncasecmp((const char *)data + i, "content-length:", 15) == 0) {
            char digits[24] = {0};
            size_t j = i + 15, k = 0;
            while (j < head && data[j] == ' ') j++;
            while (j < head && k < 20 && data[j] >= '0' && data[j] <= '9') digits[k++] = (char)data[j++];
            unsigned long long n = strtoull(digits, NULL, 10);
            if (k && n > have && n <= UPLOAD_CAP + 65536) want = (size_t)n;
            break;
        }
    uint8_t *req = calloc(1, size + 4 + (want - have));
    if (!req) abort();
    memcpy(req, data, size);
    if (!blank) memcpy(req + size, "\r\n\r\n", 4);
    *out_size = blank ? head + want : size + 4;
    return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_srv.srv) start_server();
    if (size < 1 || size > UPLOAD_CAP + 4096) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    char head[1024];
    int head_len = 0;
    const uint8_t *body = data;
    size_t body_len = size;
    if (mode == 0) {
        head_len = snprintf(head, sizeof head,
                            "POST /v1/predict HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                            "Content-Type: multipart/form-data; boundary=avemoFuzz\r\nContent-Length: %zu\r\n\r\n",
                            body_len);
    } else if (mode == 1) {
        const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
        size_t type_len = nl ? (size_t)(nl - data) : 0;
        char type[201];
        for (size_t i = 0; i < type_len; i++) type[i] = data[i] == '\r' || data[i] == 0 ? ' ' : (char)data[i];
        type[type_len] = 0;
        body = nl ? nl + 1 : data;
        body_len = size - (size_t)(body - data);
        head_len = snprintf(head, sizeof head,
                            "POST /v1/predict HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                            "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                            type, body_len);
    }
    uint8_t *request = NULL;
    if (mode == 2) body = request = complete_request(data, size, &body_len);
    int status = exchange(head, (size_t)head_len, body, body_len);
    free(request);
    if (getenv("AVEMO_FUZZ_VERBOSE")) fprintf(stderr, "mode %d: status %d\n", mode, status);
    if (status && !documented_status(status)) {
        fprintf(stderr, "undocumented status %d (mode %d)\n", status, mode);
        abort();
    }
    return 0;
}
