/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c). */
#ifndef AVEMO_FUZZ_COMMON_H
#define AVEMO_FUZZ_COMMON_H

#include <avemo/core.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <libavutil/log.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FFmpeg would print a line for every broken input; the fuzzer only needs crashes. */
static inline void fuzz_quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET);
}

/* A failure must come with a status name and a message: a library that fails
 * silently is a bug, so the harness makes it a crash the fuzzer reports. */
static inline int fuzz_check(enum avemo_status st, const struct avemo_error *err)
{
    if (st == AVEMO_OK) return 0;
    if (!avemo_status_name(st) || !err->message[0]) {
        fprintf(stderr, "status %d without a message\n", (int)st);
        abort();
    }
    return 1;
}

/* The input as a NUL-terminated string (INI and XML loaders take text). */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return NULL;
    for (size_t i = 0; i < size; i++) text[i] = (char)data[i];
    text[size] = 0;
    return text;
}

#endif
