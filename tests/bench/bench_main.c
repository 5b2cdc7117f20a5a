/* avemo-bench [--repeats N] [--only SECTION]: prints one JSON object of timings.
 * Not run by ctest: speed is measured and written down in docs/performance.md, never asserted. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench_section {
    const char *name;
    bench_section_fn run;
};

void bench_audio(const struct bench_context *ctx, cJSON *out);
void bench_vision(const struct bench_context *ctx, cJSON *out);
void bench_nn(const struct bench_context *ctx, cJSON *out);
void bench_classify(const struct bench_context *ctx, cJSON *out);
void bench_process(const struct bench_context *ctx, cJSON *out);
/* Sections, one per module (each in bench_<module>.c). */
static const struct bench_section sections[] = {
    {"audio", bench_audio},
    {"vision", bench_vision},
    {"nn", bench_nn},
    {"classify", bench_classify},
    {"process", bench_process},
    {NULL, NULL},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median of `repeats` runs of fn(arg) timed with clock, after one warm-up run
 * (plans, caches, page faults). */
static double median_with(double (*clock)(void), int repeats, void (*fn)(void *arg), void *arg)
{
    if (repeats < 1) repeats = 1;
    double *t = malloc(sizeof(double) * (size_t)repeats);
    if (!t) return -1;
    fn(arg);
    for (int i = 0; i < repeats; i++) {
        double t0 = clock();
        fn(arg);
        t[i] = clock() - t0;
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    double m = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
    free(t);
    return m;
}

double bench_median(int repeats, void (*fn)(void *arg), void *arg) { return median_with(avemo_now, repeats, fn, arg); }

double bench_median_cpu(int repeats, void (*fn)(void *arg), void *arg)
{
    return median_with(bench_thread_cpu_now, repeats, fn, arg);
}

int main(int argc, char **argv)
{
    struct bench_context ctx = {AVEMO_SOURCE_DIR "/tests/data", 21};
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) ctx.repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) ctx.data_dir = argv[++i];
        else {
            fprintf(stderr, "usage: avemo-bench [--repeats N] [--only SECTION] [--data DIR]\n");
            return 2;
        }
    }
    cJSON *out = cJSON_CreateObject();
    for (size_t i = 0; sections[i].name; i++)
        if (!only || strcmp(only, sections[i].name) == 0) sections[i].run(&ctx, out);
    char *text = cJSON_Print(out);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(out);
    return 0;
}
