/*
 * avemo eval and compare never score a model on what it learnt from (issue 18): a model file
 * carries a training record (names and SHA-256 of its training and validation files), and
 * evaluation leaves those files out by content, counts them and says so; a model without a
 * record is named as one that cannot be checked.  Data: copies of the fixture audio files.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/train.h>
#include <cjson/cJSON.h>
#include <sys/stat.h>

static char dir[64];
static char model[128], split[128];

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
    size_t size;
    uint8_t *data = test_read_file(from, &size);
    write_file(to, data, size);
    free(data);
}

/* dir/name/ with the listed fixtures copied in ("SRC>DEST" copies SRC under another name). */
static void make_data(const char *name, const char *const *files, int n, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dir, name);
    assert_int_equal(mkdir(out, 0755), 0);
    for (int i = 0; i < n; i++) {
        char src[512], dst[512], spec[256];
        snprintf(spec, sizeof spec, "%s", files[i]);
        char *arrow = strchr(spec, '>');
        if (arrow) *arrow = 0;
        snprintf(src, sizeof src, "%s/%s", AVEMO_TEST_DATA, spec);
        snprintf(dst, sizeof dst, "%s/%s", out, arrow ? arrow + 1 : strrchr(spec, '/') + 1);
        copy_file(src, dst);
    }
}

static int setup(void **state)
{
    (void)state;
    if (test_make_tmpdir(dir, sizeof dir, "trained_on")) return -1;
    snprintf(model, sizeof model, "%s/audio.avm", dir);
    snprintf(split, sizeof split, "%s/audio.split", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(dir);
}

/* FFmpeg's SHA-256 gives FIPS 180-2's test vectors. */
static void test_sha256(void **state)
{
    (void)state;
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char path[128];
    uint8_t got[AVEMO_SHA256_SIZE];
    struct avemo_error err = {0};
    snprintf(path, sizeof path, "%s/abc.txt", dir);
    write_file(path, "abc", 3);
    assert_int_equal(avemo_sha256_file(path, got, &err), AVEMO_OK);
    assert_memory_equal(got, abc, 32);
    assert_int_equal(avemo_sha256_file(dir, got, &err), AVEMO_ERR_IO); /* a folder */
    assert_non_null(strstr(err.message, dir));
}

/* A copy of the shipped audio model, given the record of a split of the fixture audio files:
 * 1001 ANG trains, 1002 SAD validates, the two mp3 files are the test part. */
static void test_attach_record(void **state)
{
    (void)state;
    char shipped[1024];
    struct avemo_error err = {0};
    if (avemo_default_model(AVEMO_MODE_AUDIO, shipped, sizeof shipped, &err)) fail_msg("%s", err.message);
    copy_file(shipped, model);
    char text[2048];
    int n = snprintf(text, sizeof text, "# test split\ntrain %s\nvalidation %s\ntest %s\ntest %s\n",
                     TEST_DATA("audio/1001_DFA_ANG_XX.wav"), TEST_DATA("audio/1002_DFA_SAD_XX.wav"),
                     TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), TEST_DATA("audio/1002_DFA_HAP_XX.mp3"));
    write_file(split, text, (size_t)n);
    const char *data[1] = {TEST_DATA("audio")};
    size_t counts[2];
    if (avemo_record_attach(model, data, 1, split, NULL, 0, counts, &err)) fail_msg("%s", err.message);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 1);
    avemo_net *net = NULL;
    if (avemo_net_load(model, &net, &err)) fail_msg("%s", err.message);
    size_t nrec;
    const struct avemo_record_entry *e = avemo_net_record(net, &nrec);
    assert_int_equal(nrec, 2);
    uint8_t sha[AVEMO_SHA256_SIZE];
    assert_int_equal(avemo_sha256_file(TEST_DATA("audio/1001_DFA_ANG_XX.wav"), sha, &err), AVEMO_OK);
    assert_int_equal(e[0].part, 0);
    assert_string_equal(e[0].name, "audio/1001_DFA_ANG_XX.wav");
    assert_memory_equal(e[0].sha256, sha, AVEMO_SHA256_SIZE);
    assert_int_equal(e[1].part, 1);
    assert_string_equal(e[1].name, "audio/1002_DFA_SAD_XX.wav");
    avemo_net_free(net);
    /* A split whose files are not all in the data would give an incomplete record: refused. */
    char partial[256];
    const char *one[1] = {"audio/1001_DFA_ANG_XX.wav"};
    make_data("audio", one, 1, partial, sizeof partial);
    const char *other[1] = {partial};
    assert_int_equal(avemo_record_attach(model, other, 1, split, NULL, 0, counts, &err), AVEMO_ERR_MISMATCH);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "incomplete"));
}

static void evaluate(const char *const *models, int nmodels, const char *data, struct avemo_eval_set *set)
{
    struct avemo_eval_options opt = {0};
    const char *d[1] = {data};
    opt.data = d;
    opt.ndata = 1;
    opt.seed = 1;
    struct avemo_error err = {0};
    if (avemo_evaluate(models, nmodels, &opt, set, &err)) fail_msg("%s", err.message);
}

/* The training file under its own name and the validation file under another name are left
 * out (content, not name); a file named like a training file but with other bytes is kept. */
static void test_eval_leaves_out_by_content(void **state)
{
    (void)state;
    char data[256];
    const char *files[4] = {"audio/1001_DFA_ANG_XX.wav", "audio/1002_DFA_SAD_XX.wav>1003_DFA_SAD_XX.wav",
                            "audio/1002_DFA_ANG_XX.mp3", "audio/1002_DFA_HAP_XX.mp3"};
    make_data("mixed", files, 4, data, sizeof data);
    const char *models[1] = {model};
    struct avemo_eval_set set;
    evaluate(models, 1, data, &set);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.trained_on, 2);
    assert_int_equal(set.same_name, 0);
    assert_string_equal(set.unchecked, "");
    char *text = avemo_eval_set_report(&set, 0);
    printf("%s", text);
    assert_non_null(strstr(text, "left out: 2 test items that the model was trained or validated on"));
    free(text);
    char *json = avemo_eval_set_json(&set, 0);
    cJSON *o = cJSON_Parse(json);
    assert_int_equal(cJSON_GetObjectItem(o, "left_out_trained")->valueint, 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "no_training_record")), 0);
    assert_non_null(strstr(cJSON_GetObjectItem(o, "training_record")->valuestring, "left out: 2"));
    cJSON_Delete(o);
    free(json);
    avemo_eval_free(&set);

    const char *renamed[2] = {"audio/1002_DFA_ANG_XX.mp3>1001_DFA_ANG_XX.wav", "audio/1002_DFA_HAP_XX.mp3"};
    make_data("same-name", renamed, 2, data, sizeof data);
    evaluate(models, 1, data, &set);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.trained_on, 0);
    assert_int_equal(set.same_name, 1); /* named like the training file: kept, and said */
    text = avemo_eval_set_report(&set, 0);
    printf("%.300s\n", text);
    assert_non_null(strstr(text, "training record checked: no test item"));
    assert_non_null(strstr(text, "1 test item named like a training file but with other bytes"));
    free(text);
    avemo_eval_free(&set);
}

/* Data made only of training files: the evaluation refuses and says why. */
static void test_eval_refuses_training_data(void **state)
{
    (void)state;
    char data[256];
    const char *files[2] = {"audio/1001_DFA_ANG_XX.wav", "audio/1002_DFA_SAD_XX.wav"};
    make_data("trained", files, 2, data, sizeof data);
    struct avemo_eval_options opt = {0};
    const char *d[1] = {data}, *models[1] = {model};
    opt.data = d;
    opt.ndata = 1;
    struct avemo_eval_set set;
    struct avemo_error err = {0};
    assert_int_equal(avemo_evaluate(models, 1, &opt, &set, &err), AVEMO_ERR_EMPTY);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "every test item is a file the model(s) were trained or validated on (2"));
}

/* A model without a record (the same weights, saved without one) is named as unchecked; next
 * to a model with one (compare), the files that one trained on are left out for both. */
static void test_model_without_record(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_net *with = NULL, *without = NULL;
    if (avemo_net_load(model, &with, &err) ||
        avemo_net_create(avemo_net_pipeline(with), "norecord", &without, &err))
        fail_msg("%s", err.message);
    size_t np, ns, n;
    const float *params = avemo_net_params(with, &np), *stats = avemo_net_stats(with, &ns);
    memcpy(avemo_net_params(without, &n), params, sizeof(float) * np);
    memcpy(avemo_net_stats(without, &n), stats, sizeof(float) * ns);
    const char *labels[AVEMO_MAX_CLASSES];
    for (int c = 0; c < avemo_net_classes(with); c++) labels[c] = avemo_net_label(with, c);
    const float *mean = avemo_net_array(with, "audio.mean", &n), *std = avemo_net_array(with, "audio.std", &n);
    char path[128];
    snprintf(path, sizeof path, "%s/norecord.avm", dir);
    if (avemo_net_set_labels(without, labels, avemo_net_classes(with), &err) ||
        avemo_net_set_array(without, "audio.mean", mean, n, &err) ||
        avemo_net_set_array(without, "audio.std", std, n, &err) || avemo_net_save(without, path, &err))
        fail_msg("%s", err.message);
    avemo_net_free(with);
    avemo_net_free(without);

    char data[256];
    snprintf(data, sizeof data, "%s/mixed", dir);
    const char *alone[1] = {path};
    struct avemo_eval_set set;
    evaluate(alone, 1, data, &set);
    assert_int_equal(set.n, 4);
    assert_int_equal(set.trained_on, 0);
    assert_string_equal(set.unchecked, "norecord.avm");
    char *text = avemo_eval_set_report(&set, 0);
    printf("%s", text);
    assert_non_null(strstr(text, "note: norecord.avm has no training record"));
    free(text);
    avemo_eval_free(&set);

    const char *both[2] = {model, path};
    evaluate(both, 2, data, &set);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.trained_on, 2);
    assert_string_equal(set.unchecked, "norecord.avm");
    avemo_eval_free(&set);
}

/* A file's bytes as a NUL-terminated text (test_read_file's bytes end without a NUL). */
static char *read_text(const char *path, size_t *size)
{
    uint8_t *bytes = test_read_file(path, size);
    char *text = calloc(*size + 1, 1);
    assert_non_null(text);
    memcpy(text, bytes, *size);
    free(bytes);
    return text;
}

/* One --shard 0/1-style output of MODEL on the block I/2 of dir/mixed into OUT_DIR; its name in path. */
static void eval_block(const char *model_path, int i, const char *out_dir, char *path, size_t size)
{
    char data[256];
    snprintf(data, sizeof data, "%s/mixed", dir);
    struct avemo_eval_options opt = {0};
    const char *d[1] = {data};
    opt.data = d;
    opt.ndata = 1;
    opt.seed = 1;
    struct avemo_error err = {0};
    struct avemo_shard shard = {i, 2};
    int done;
    if (avemo_eval_shard(model_path, &opt, &shard, out_dir, &done, &err)) fail_msg("%s", err.message);
    snprintf(path, size, "%s/eval-%05d-of-00002.jsonl", out_dir, i);
}

/* In shards, each shard counts the left-out files of its block and the merge adds them up. */
static void test_shards_count_left_out(void **state)
{
    (void)state;
    char out[256];
    snprintf(out, sizeof out, "%s/shards", dir);
    struct avemo_error err = {0};
    const char *inputs[2];
    char names[2][512];
    for (int i = 0; i < 2; i++) {
        eval_block(model, i, out, names[i], sizeof names[i]);
        inputs[i] = names[i];
    }
    struct avemo_eval_set set;
    if (avemo_eval_merge(inputs, 2, &set, &err)) fail_msg("%s", err.message);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.trained_on, 2);
    assert_string_equal(set.unchecked, "");
    avemo_eval_free(&set);

    /* a shard whose first class label is a number (it crashed the merge): refused by name */
    size_t size = 0;
    char *text = read_text(names[0], &size), bad[512];
    char *at = strstr(text, "\"labels\":[\""), *end = at ? strchr(at + 11, '"') : NULL;
    assert_non_null(end);
    snprintf(bad, sizeof bad, "%s/bad-shard.jsonl", out);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "%.*s7%s", (int)(at + 10 - text), text, end + 1);
    fclose(f);
    free(text);
    inputs[0] = bad;
    assert_int_equal(avemo_eval_merge(inputs, 2, &set, &err), AVEMO_ERR_CORRUPT);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "bad-shard.jsonl: a class label is not a short text"));
}

/* Folds of a cross-validation pooled by the merge: each fold's model on its own test part, the
 * units added up and the models named; a unit given twice, or shards of another --data list,
 * are refused by name rather than counted. */
static void test_merge_pools_folds(void **state)
{
    (void)state;
    char fold0[256], fold1[256], names[2][512], norecord[256];
    snprintf(fold0, sizeof fold0, "%s/fold0", dir);
    snprintf(fold1, sizeof fold1, "%s/fold1", dir);
    snprintf(norecord, sizeof norecord, "%s/norecord.avm", dir);
    eval_block(model, 0, fold0, names[0], sizeof names[0]);
    eval_block(norecord, 1, fold1, names[1], sizeof names[1]);
    const char *inputs[2] = {names[0], names[1]};
    struct avemo_eval_set set;
    struct avemo_error err = {0};
    size_t alone = 0;
    for (int k = 0; k < 2; k++) {
        if (avemo_eval_merge(inputs + k, 1, &set, &err)) fail_msg("%s", err.message);
        alone += set.n;
        avemo_eval_free(&set);
    }
    if (avemo_eval_merge(inputs, 2, &set, &err)) fail_msg("%s", err.message);
    assert_true(alone >= 2);
    assert_int_equal(set.n, alone);
    assert_string_equal(set.results[0].model, "audio.avm and 1 other model");
    avemo_eval_free(&set);

    inputs[1] = names[0];
    assert_int_equal(avemo_eval_merge(inputs, 2, &set, &err), AVEMO_ERR_MISMATCH);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, " is a unit of "));
    assert_non_null(strstr(err.message, "fold0/eval-00000-of-00002.jsonl and of "));

    /* the second fold's output, as if it had evaluated another folder */
    size_t size = 0;
    char *text = read_text(names[1], &size), other[512];
    char *at = strstr(text, "/mixed\"");
    assert_non_null(at);
    memcpy(at, "/mixeD", 6);
    snprintf(other, sizeof other, "%s/other-data.jsonl", fold1);
    write_file(other, text, size);
    free(text);
    inputs[1] = other;
    assert_int_equal(avemo_eval_merge(inputs, 2, &set, &err), AVEMO_ERR_MISMATCH);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "other-data.jsonl: evaluated another --data list than the first shard"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_attach_record),
        cmocka_unit_test(test_eval_leaves_out_by_content),
        cmocka_unit_test(test_eval_refuses_training_data),
        cmocka_unit_test(test_model_without_record),
        cmocka_unit_test(test_shards_count_left_out),
        cmocka_unit_test(test_merge_pools_folds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
