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

/* Median of `repeats` wall-clock timings of fn(arg), after one warm-up run. */
double bench_median(int repeats, void (*fn)(void *arg), void *arg);
/* The same in CPU time of the calling thread: single-threaded work measured this way does not
 * grow when other jobs share the cores. */
double bench_median_cpu(int repeats, void (*fn)(void *arg), void *arg);
/* CPU time of the calling thread, in seconds. */
double bench_thread_cpu_now(void);

/* One section per module; each adds its keys to out. */
typedef void (*bench_section_fn)(const struct bench_context *ctx, cJSON *out);

#endif
