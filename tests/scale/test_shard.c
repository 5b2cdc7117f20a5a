/* The shard API of core: I/N parsing, the shard from Slurm / Kubernetes variables, the
 * blocks covering every item once and in order, folder and manifest inputs, a shard's
 * output resumed after a kill (lines and .npy), and the merge with its refusals. */
#include <avemo/core.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_parse(void **state)
{
    (void)state;
    struct avemo_shard s;
    struct avemo_error err = {0};
    assert_int_equal(avemo_shard_parse("2/4", &s, &err), AVEMO_OK);
    assert_int_equal(s.index, 2);
    assert_int_equal(s.count, 4);
    const char *bad[] = {"4/4", "-1/4", "1/0", "a/3", "1", "1/", "/3", "1/3x", "0/100001", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(avemo_shard_parse(bad[i], &s, &err), AVEMO_ERR_INVALID_ARG);
        assert_non_null(strstr(err.message, "shard"));
    }
}

static void clear_env(void)
{
    const char *vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT",
                          "JOB_COMPLETION_INDEX", "AVEMO_SHARD_COUNT"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static void test_env(void **state)
{
    (void)state;
    struct avemo_shard s;
    struct avemo_error err = {0};
    clear_env();
    assert_int_equal(avemo_shard_from_env(&s, &err), AVEMO_OK);
    assert_true(s.index == 0 && s.count == 1);
    /* sbatch --array=3-6: ids 3..6, the shard is id - min */
    setenv("SLURM_ARRAY_TASK_ID", "5", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "3", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    assert_int_equal(avemo_shard_from_env(&s, &err), AVEMO_OK);
    assert_true(s.index == 2 && s.count == 4);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    assert_int_equal(avemo_shard_from_env(&s, &err), AVEMO_ERR_INVALID_ARG);
    clear_env();
    setenv("JOB_COMPLETION_INDEX", "1", 1);
    assert_int_equal(avemo_shard_from_env(&s, &err), AVEMO_ERR_INVALID_ARG); /* no count */
    assert_non_null(strstr(err.message, "AVEMO_SHARD_COUNT"));
    setenv("AVEMO_SHARD_COUNT", "3", 1);
    assert_int_equal(avemo_shard_from_env(&s, &err), AVEMO_OK);
    assert_true(s.index == 1 && s.count == 3);
    clear_env();
}

static void test_range(void **state)
{
    (void)state;
    for (size_t n = 0; n < 40; n++)
        for (int count = 1; count < 9; count++) {
            size_t next = 0;
            for (int i = 0; i < count; i++) {
                struct avemo_shard s = {i, count};
                size_t b, e;
                avemo_shard_range(&s, n, &b, &e);
                assert_int_equal(b, next); /* contiguous, in order */
                assert_true(e - b == n / (size_t)count || e - b == n / (size_t)count + 1);
                next = e;
            }
            assert_int_equal(next, n); /* every item once */
        }
}

static void test_items(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_items items;
    const char *folder[] = {AVEMO_TEST_DATA "/cremad/"};
    assert_int_equal(avemo_items_expand(folder, 1, &items, &err), AVEMO_OK);
    assert_int_equal(items.n, 6); /* the .flv files, not LICENSE.txt */
    for (size_t i = 1; i < items.n; i++) assert_true(strcmp(items.paths[i - 1], items.paths[i]) < 0);
    assert_string_equal(items.paths[0], AVEMO_TEST_DATA "/cremad/1001_DFA_ANG_XX.flv");
    avemo_items_free(&items);

    char manifest[256];
    snprintf(manifest, sizeof manifest, "%s/shard_manifest_%d.txt", AVEMO_BINARY_DIR, (int)getpid());
    FILE *f = fopen(manifest, "w");
    assert_non_null(f);
    fprintf(f, "# clips\nb.wav\n\n/abs/a.flv\r\n");
    fclose(f);
    const char *inputs[] = {manifest, "c.jpg"};
    assert_int_equal(avemo_items_expand(inputs, 2, &items, &err), AVEMO_OK);
    assert_int_equal(items.n, 3);
    assert_string_equal(items.paths[0], AVEMO_BINARY_DIR "/b.wav"); /* relative to the manifest */
    assert_string_equal(items.paths[1], "/abs/a.flv");
    assert_string_equal(items.paths[2], "c.jpg");
    avemo_items_free(&items);
    unlink(manifest);
    const char *missing[] = {AVEMO_BINARY_DIR "/no-such-manifest.txt"};
    assert_int_equal(avemo_items_expand(missing, 1, &items, &err), AVEMO_ERR_NOT_FOUND);
}

/* A fake item: its line, and a 2x3 block of its number; "bad" fails (NaN block). */
struct fake {
    int calls, stop_after;
};

static enum avemo_status fake_item(void *user, size_t index, const char *item, char **line, float **block,
                                   struct avemo_error *err)
{
    (void)index;
    struct fake *fk = user;
    if (fk->stop_after >= 0 && fk->calls == fk->stop_after)
        return avemo_fail(err, AVEMO_ERR_IO, "killed"); /* the task dies here */
    fk->calls++;
    *line = malloc(64);
    snprintf(*line, 64, "{\"file\":\"%s\"}", item);
    if (block && strcmp(item, "bad") != 0) {
        *block = malloc(6 * sizeof(float));
        for (int k = 0; k < 6; k++) (*block)[k] = (float)atoi(item) + 0.1f * (float)k;
    }
    return AVEMO_OK;
}

static char *slurp(const char *path)
{
    uint8_t *data = NULL;
    size_t size = 0;
    struct avemo_error err = {0};
    assert_int_equal(avemo_read_file(path, 1 << 20, &data, &size, &err), AVEMO_OK);
    return (char *)data;
}

static void run_job(const char *dir, const char *const *items, size_t n, int index, int count, int stop_after,
                    enum avemo_status expect, struct avemo_shard_stats *stats)
{
    struct avemo_shard s = {index, count};
    char lines[512], npy[512];
    struct avemo_error err = {0};
    assert_int_equal(avemo_shard_path(dir, "t", &s, ".jsonl", lines, sizeof lines, &err), AVEMO_OK);
    assert_int_equal(avemo_shard_path(dir, "t", &s, ".npy", npy, sizeof npy, &err), AVEMO_OK);
    struct fake fk = {0, stop_after};
    struct avemo_shard_job job = {items, n, s, lines, NULL, npy, 2, {2, 3, 0}, fake_item, &fk};
    assert_int_equal(avemo_shard_run(&job, stats, &err), expect);
}

static void test_run_resume_merge(void **state)
{
    (void)state;
    char dir[256], one[256], path[600];
    snprintf(dir, sizeof dir, "%s/shard_run_%d", AVEMO_BINARY_DIR, (int)getpid());
    snprintf(one, sizeof one, "%s/shard_one_%d", AVEMO_BINARY_DIR, (int)getpid());
    const char *items[] = {"0", "1", "2", "bad", "4", "5", "6"};
    struct avemo_shard_stats st;
    /* one process */
    run_job(one, items, 7, 0, 1, -1, AVEMO_OK, &st);
    assert_int_equal(st.done, 7);
    /* three shards; shard 1 (items 2, bad) is killed after its first item, then restarted */
    run_job(dir, items, 7, 0, 3, -1, AVEMO_OK, &st);
    run_job(dir, items, 7, 1, 3, 1, AVEMO_ERR_IO, &st);
    snprintf(path, sizeof path, "%s/t-00001-of-00003.jsonl", dir);
    FILE *f = fopen(path, "a"); /* and a partial line, as a kill during a write leaves */
    fputs("{\"fi", f);
    fclose(f);
    run_job(dir, items, 7, 1, 3, -1, AVEMO_OK, &st);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(st.done, 1);
    run_job(dir, items, 7, 2, 3, -1, AVEMO_OK, &st);
    run_job(dir, items, 7, 2, 3, -1, AVEMO_OK, &st); /* a finished shard: nothing to do */
    assert_int_equal(st.skipped, 3);
    assert_int_equal(st.done, 0);

    struct avemo_error err = {0};
    char in[3][600], out[600], ref[600];
    const char *inputs[3] = {in[2], in[0], in[1]}; /* any order: the names say the shard */
    for (const char *const *ext = (const char *const[]){".jsonl", ".npy", NULL}; *ext; ext++) {
        for (int i = 0; i < 3; i++) snprintf(in[i], sizeof in[i], "%s/t-%05d-of-00003%s", dir, i, *ext);
        snprintf(out, sizeof out, "%s/merged%s", dir, *ext);
        snprintf(ref, sizeof ref, "%s/t-00000-of-00001%s", one, *ext);
        assert_int_equal(avemo_merge(inputs, 3, out, &err), AVEMO_OK);
        char *a = slurp(out), *b = slurp(ref);
        struct stat sa, sb;
        stat(out, &sa);
        stat(ref, &sb);
        assert_int_equal(sa.st_size, sb.st_size);
        assert_memory_equal(a, b, (size_t)sa.st_size); /* byte for byte one process's */
        free(a);
        free(b);
    }
    float *x = NULL;
    int ndim;
    size_t shape[4];
    assert_int_equal(avemo_read_npy(out, &x, &ndim, shape, &err), AVEMO_OK);
    assert_true(ndim == 3 && shape[0] == 7 && shape[1] == 2 && shape[2] == 3);
    assert_float_equal(x[6 * 2 + 5], 2.5f, 1e-6); /* item "2" */
    assert_true(isnan(x[6 * 3])); /* "bad": a NaN block keeps the rows aligned */
    free(x);

    /* refusals: a shard missing, a shard twice, an unfinished shard */
    assert_int_equal(avemo_merge(inputs, 2, out, &err), AVEMO_ERR_MISMATCH);
    const char *twice[3] = {in[0], in[0], in[1]};
    assert_int_equal(avemo_merge(twice, 3, out, &err), AVEMO_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "twice"));
    for (int i = 0; i < 3; i++) snprintf(in[i], sizeof in[i], "%s/t-%05d-of-00003.jsonl", dir, i);
    f = fopen(in[1], "a");
    fputs("{\"unfinished", f);
    fclose(f);
    snprintf(out, sizeof out, "%s/merged.jsonl", dir);
    assert_int_equal(avemo_merge(inputs, 3, out, &err), AVEMO_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "middle of a line"));
    /* the same output folder with fewer inputs: refused, not cut */
    run_job(one, items, 5, 0, 1, -1, AVEMO_ERR_MISMATCH, &st);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, one);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_run_resume_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
