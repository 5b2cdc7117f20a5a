/* Helpers of the serve tests: run a real HTTP client (the curl program) against a server on
 * 127.0.0.1, and start `avemo serve` as a separate process on a free port. */
#ifndef AVEMO_SERVE_TEST_H
#define AVEMO_SERVE_TEST_H

#include "common/testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <strings.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct http_reply {
    int status;
    char *body;        /* NUL-terminated */
    size_t size;
    char *headers;     /* the raw response headers */
    cJSON *json;       /* the body parsed, or NULL */
};

static inline void http_reply_free(struct http_reply *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

static inline char *slurp_text(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (size) *size = n;
    return buf;
}

/* Run `curl -sS <args> <url>`; args are shell words (quote file names yourself). */
static inline struct http_reply http_run(int port, const char *args, const char *path)
{
    struct http_reply r = {0};
    char body_file[] = "/tmp/avemo-serve-test-body-XXXXXX";
    char head_file[] = "/tmp/avemo-serve-test-head-XXXXXX";
    int fd1 = mkstemp(body_file), fd2 = mkstemp(head_file);
    assert_true(fd1 >= 0 && fd2 >= 0);
    close(fd1);
    close(fd2);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 120 -o %s -D %s -w '%%{http_code}' %s 'http://127.0.0.1:%d%s'",
             body_file, head_file, args, port, path);
    size_t n = 0;
    uint8_t *out = test_run_capture(cmd, &n);
    if (!out) fail_msg("curl failed: %s", cmd);
    out = realloc(out, n + 1);
    out[n] = '\0';
    r.status = atoi((char *)out);
    free(out);
    r.body = slurp_text(body_file, &r.size);
    r.headers = slurp_text(head_file, NULL);
    unlink(body_file);
    unlink(head_file);
    assert_non_null(r.body);
    r.json = cJSON_Parse(r.body);
    return r;
}

static inline struct http_reply http_get(int port, const char *path) { return http_run(port, "", path); }

/* Expect an answer with this status and, for errors, the JSON {"error":{"code":code,...}}. */
static inline void expect_status(const struct http_reply *r, int status, const char *code)
{
    if (r->status != status) fail_msg("expected HTTP %d, got %d: %s", status, r->status, r->body);
    if (!code) return;
    cJSON *error = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    const char *got = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error, "code"));
    if (!got || strcmp(got, code) != 0) fail_msg("expected error code %s, got: %s", code, r->body);
    assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error, "message")));
}

/* 1 when the raw headers contain this line prefix (case-insensitive name). */
static inline int has_header(const struct http_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = r->headers; line && *line;) {
        if (strncasecmp(line, prefix, n) == 0) return 1;
        line = strchr(line, '\n');
        if (line) line++;
    }
    return 0;
}

static inline double json_number(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item)) fail_msg("no number '%s'", key);
    return item->valuedouble;
}

static inline const char *json_string(const cJSON *obj, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
    if (!s) fail_msg("no string '%s'", key);
    return s;
}

/* ---- `avemo serve` as a child process ---- */

struct serve_process {
    pid_t pid;
    int port;
};

/* Start AVEMO_PROGRAM serve --host 127.0.0.1 --port 0 <args...> (NULL-terminated) and read the
 * port from its "listening on" line. */
static inline struct serve_process serve_spawn(const char *log_path, const char *const *args)
{
    struct serve_process p = {0};
    int out[2];
    assert_int_equal(pipe(out), 0);
    const char *argv[64];
    int n = 0;
    argv[n++] = AVEMO_PROGRAM;
    argv[n++] = "serve";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    for (int i = 0; args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed test does not leave servers behind */
        dup2(out[1], 1);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) dup2(log, 2);
        close(out[0]);
        close(out[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    char line[512];
    size_t len = 0;
    struct pollfd pfd = {out[0], POLLIN, 0};
    while (len + 1 < sizeof line && poll(&pfd, 1, 60000) > 0) {
        ssize_t got = read(out[0], line + len, 1);
        if (got <= 0) break;
        len += (size_t)got;
        if (line[len - 1] == '\n') break;
    }
    line[len] = '\0';
    close(out[0]);
    const char *at = strstr(line, "http://127.0.0.1:");
    if (!at) {
        kill(p.pid, SIGKILL);
        waitpid(p.pid, NULL, 0);
        fail_msg("avemo serve did not start (see %s): '%s'", log_path, line);
    }
    p.port = atoi(at + strlen("http://127.0.0.1:"));
    assert_true(p.port > 0);
    return p;
}

/* SIGTERM, and the server must exit with status 0 after finishing its work. */
static inline void serve_stop(struct serve_process *p)
{
    assert_int_equal(kill(p->pid, SIGTERM), 0);
    int status = 0;
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    p->pid = 0;
}

static inline int file_exists(const char *path) { return access(path, R_OK) == 0; }

#endif
