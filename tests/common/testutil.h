/* Helpers shared by the C tests (header-only so that each test stays one file). */
#ifndef AVEMO_TESTUTIL_H
#define AVEMO_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define TEST_DATA(rel) AVEMO_TEST_DATA "/" rel

/* Run a shell command and return its whole stdout (malloc'ed), or NULL. */
static inline uint8_t *test_run_capture(const char *cmd, size_t *size)
{
    FILE *p = popen(cmd, "r");
    *size = 0;
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, p)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) { free(buf); buf = NULL; }
            else buf = bigger;
        }
    }
    int rc = pclose(p);
    if (rc != 0) { free(buf); return NULL; }
    *size = n;
    return buf;
}

/* Read a whole file (malloc'ed), failing the test when it cannot. */
static inline uint8_t *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A fresh folder /tmp/avemo_<name>_XXXXXX in dir (at least 64 bytes); 0 on success. */
static inline int test_make_tmpdir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "/tmp/avemo_%s_XXXXXX", name);
    return mkdtemp(dir) ? 0 : -1;
}

/* Remove a folder made by test_make_tmpdir and all it holds; 0 on success. */
static inline int test_remove_tmpdir(const char *dir)
{
    char cmd[256];
    if (strncmp(dir, "/tmp/avemo_", 11) != 0 || strchr(dir, '\'')) return -1;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* Set the duration an FLV's onMetaData declares ("duration", then an AMF number: type 0 and a
 * big-endian double); 0, or -1 when the first KiB has no such field. */
static inline int test_flv_set_duration(uint8_t *clip, size_t size, double seconds)
{
    uint8_t *at = NULL;
    for (size_t i = 0; !at && i + 17 < size && i < 1024; i++)
        if (memcmp(clip + i, "duration\0", 9) == 0) at = clip + i + 9;
    if (!at) return -1;
    uint64_t bits;
    memcpy(&bits, &seconds, sizeof bits);
    for (int b = 0; b < 8; b++) at[b] = (uint8_t)(bits >> (56 - 8 * b));
    return 0;
}

#endif
