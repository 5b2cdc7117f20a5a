/* Small shared helpers: whole-file reads, .npy files, time, CRC-32. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <avemo/core.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *avemo_file_type_name(unsigned mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

/* O_NONBLOCK: opening a FIFO nobody writes to (or a tty, a device) must not hang; the type is
 * then checked on the descriptor itself, so nothing can be swapped in between. */
enum avemo_status avemo_open_regular(const char *path, FILE **out, struct avemo_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat st;
    int stat_rc = fstat(fd, &st);
    if (stat_rc != 0 || !S_ISREG(st.st_mode)) {
        const char *type = stat_rc == 0 ? avemo_file_type_name(st.st_mode) : strerror(errno);
        close(fd);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: not a regular file (%s)", path, type);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot open: %s", path, strerror(e));
    }
    *out = f;
    return AVEMO_OK;
}

#define AVEMO_HUGE_PAGE ((size_t)2 << 20)
/* From this size on a buffer gets huge pages of its own: measured, a 256 KB threshold instead
 * of 2 MB takes 17 ms off a one-clip `avemo classify` process (the training record's names,
 * per-member arrays) for 1.7 MB more resident memory (docs/performance.md). */
#define AVEMO_HUGE_MIN ((size_t)256 << 10)

void *avemo_alloc_large(size_t bytes)
{
    if (bytes < AVEMO_HUGE_MIN) return malloc(bytes ? bytes : 1);
    void *p = NULL;
    size_t rounded = (bytes + AVEMO_HUGE_PAGE - 1) / AVEMO_HUGE_PAGE * AVEMO_HUGE_PAGE;
    if (posix_memalign(&p, AVEMO_HUGE_PAGE, rounded) != 0) return NULL;
#if defined(MADV_HUGEPAGE)
    if (!getenv("XNOHUGE")) (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: without THP the pages stay small */
#endif
    return p;
}

enum avemo_status avemo_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                                  struct avemo_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *f;
    enum avemo_status rc = avemo_open_regular(path, &f, err);
    if (rc) return rc;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: file is %lld bytes, the limit is %zu", path,
                          (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = avemo_alloc_large(n + 1);
    if (!buf) {
        fclose(f);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return AVEMO_OK;
}

enum avemo_status avemo_read_stream(FILE *f, const char *name, size_t max_bytes, uint8_t **data, size_t *size,
                                    struct avemo_error *err)
{
    *data = NULL;
    *size = 0;
    size_t n = 0, cap = 0;
    uint8_t *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t bigger = cap ? 2 * cap : (size_t)1 << 16;
            if (bigger > max_bytes + 1) bigger = max_bytes + 1; /* one byte more tells "too large" */
            uint8_t *p = bigger > cap ? realloc(buf, bigger + 1) : NULL;
            if (!p) {
                free(buf);
                if (bigger > cap) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu bytes", name, bigger);
                return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %zu bytes, the limit", name, max_bytes);
            }
            buf = p;
            cap = bigger;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: read error: %s", name, strerror(errno));
    }
    if (n > max_bytes) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %zu bytes, the limit", name, max_bytes);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return AVEMO_OK;
}

/* The .npy v1.0 format: magic, version, little-endian header length, a Python
 * dict literal padded with spaces to a multiple of 64 bytes and ending in '\n'. */
enum avemo_status avemo_write_npy(const char *path, const float *data, int ndim, const size_t *shape,
                                  struct avemo_error *err)
{
    if (ndim < 1 || ndim > 4) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: npy rank %d not in 1..4", path, ndim);
    char dims[128] = "";
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        size_t len = strlen(dims);
        const char *sep = ndim == 1 ? "," : (i < ndim - 1 ? ", " : "");
        snprintf(dims + len, sizeof dims - len, "%zu%s", shape[i], sep);
        total *= shape[i];
    }
    char header[256];
    int hlen = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    int padded = ((10 + hlen + 1 + 63) / 64) * 64 - 10;
    memset(header + hlen, ' ', (size_t)(padded - hlen - 1));
    header[padded - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(padded & 0xff),
                             (unsigned char)(padded >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)padded, f) == (size_t)padded &&
             fwrite(data, sizeof(float), total, f) == total;
    if (fclose(f) != 0) ok = 0;
    if (!ok) return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return AVEMO_OK;
}

enum avemo_status avemo_read_npy(const char *path, float **data, int *ndim, size_t shape[4], struct avemo_error *err)
{
    uint8_t *buf;
    size_t size;
    *data = NULL;
    enum avemo_status st = avemo_read_file(path, (size_t)1 << 32, &buf, &size, err);
    if (st) return st;
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0 || buf[6] != 1) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not a version 1 .npy file", path);
    }
    size_t hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
    if (10 + hlen > size) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated .npy header", path);
    }
    char header[1024];
    size_t copy = hlen < sizeof header - 1 ? hlen : sizeof header - 1;
    memcpy(header, buf + 10, copy);
    header[copy] = 0;
    const char *shp = strstr(header, "'shape': (");
    if (!strstr(header, "'<f4'") || strstr(header, "'fortran_order': True") || !shp) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: only C-order little-endian float32 .npy is read", path);
    }
    shp += strlen("'shape': (");
    int n = 0;
    size_t total = 1;
    while (*shp && *shp != ')' && n < 4) {
        char *end;
        unsigned long long v = strtoull(shp, &end, 10);
        if (end == shp) break;
        shape[n++] = (size_t)v;
        total *= (size_t)v;
        shp = end;
        while (*shp == ',' || *shp == ' ') shp++;
    }
    if (n == 0 || total * sizeof(float) != size - 10 - hlen) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: .npy shape does not match its data size", path);
    }
    float *out = malloc(total * sizeof(float) + 1);
    if (!out) {
        free(buf);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu floats", path, total);
    }
    memcpy(out, buf + 10 + hlen, total * sizeof(float));
    free(buf);
    *data = out;
    *ndim = n;
    return AVEMO_OK;
}

double avemo_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int avemo_usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

