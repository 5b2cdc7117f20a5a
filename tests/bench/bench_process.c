/* avemo-bench section "process": what a user waits for when a shell runs the program once per
 * file.  The `avemo` program next to avemo-bench is started as a child process: `avemo --version`
 * (the dynamic loader mapping FFmpeg's libraries and their constructors: the floor of any run)
 * and `avemo classify` of the demo clip (that, plus avemo's own start-up: models, cascade,
 * plans, and the classification).  Medians of wall time, and of the child's CPU time (user +
 * system, all its threads) from wait4, which a shared machine disturbs less. */
#include "bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct child_run {
    char *const *argv;
    double cpu_s;
    int failed;
};

static void run_child(void *arg)
{
    struct child_run *c = arg;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int status = 0;
    struct rusage ru;
    if (posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ) != 0 || wait4(pid, &status, 0, &ru) != pid ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        c->failed = 1;
    else
        c->cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                   1e-6 * ru.ru_stime.tv_usec;
    posix_spawn_file_actions_destroy(&fa);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The same runs give the wall median (key) and the child CPU median (cpu_key). */
static void time_child(int repeats, char *const *argv, const char *key, const char *cpu_key, cJSON *out)
{
    struct child_run c = {argv, 0, 0};
    if (repeats < 1) repeats = 1;
    double *wall = malloc(sizeof(double) * (size_t)repeats), *cpu = malloc(sizeof(double) * (size_t)repeats);
    run_child(&c); /* warm-up: the page cache */
    for (int i = 0; wall && cpu && i < repeats && !c.failed; i++) {
        double t0 = avemo_now();
        run_child(&c);
        wall[i] = avemo_now() - t0;
        cpu[i] = c.cpu_s;
    }
    if (c.failed) fprintf(stderr, "bench process: %s %s failed\n", argv[0], argv[1]);
    else if (wall && cpu) {
        cJSON_AddNumberToObject(out, key, median(wall, repeats));
        cJSON_AddNumberToObject(out, cpu_key, median(cpu, repeats));
    }
    free(wall);
    free(cpu);
}

void bench_process(const struct bench_context *ctx, cJSON *out);
void bench_process(const struct bench_context *ctx, cJSON *out)
{
    char exe[4096], program[4200], clip[1024];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = 0;
    snprintf(program, sizeof program, "%s/avemo", exe);
    snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_ANG_XX.flv", ctx->data_dir);
    char *version[] = {program, "--version", NULL};
    char *classify[] = {program, "classify", clip, NULL};
    time_child(ctx->repeats, version, "process_version_s", "process_version_cpu_s", out);
    time_child(ctx->repeats, classify, "process_classify_s", "process_classify_cpu_s", out);
}
