/* avemo-bench: each module adds its timings to one JSON object.
 * Timings are medians of repeated runs, in seconds, single-threaded unless the key says otherwise. */
#ifndef AVEMO_BENCH_H
#define AVEMO_BENCH_H

#include <avemo/avemo.h>
#include <cjson/cJSON.h>

struct bench_context {
    const char *data_dir;   /* tests/data of the source tree */
    int repeats;            /* runs per timing (median is reported) */
};

/* Median of `repeats` timings of fn(arg). */
double bench_median(int repeats, void (*fn)(void *arg), void *arg);

/* One section per module; each adds its keys to out. */
typedef void (*bench_section_fn)(const struct bench_context *ctx, cJSON *out);

#endif
