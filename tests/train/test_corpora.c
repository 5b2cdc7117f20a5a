/* Every corpus read as it comes (tests/data fixtures): EmoDB names and manifest, CK+ folders
 * with their subjects, still images of any format as single pictures, labels without a
 * six-class counterpart skipped and counted, bad files named and skipped, per-corpus
 * evaluation and leave-one-corpus-out splits. */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/nn.h>
#include <avemo/train.h>

#include "train/train_internal.h"

#include <math.h>
#include <sys/stat.h>

static char tmp[64];

static int setup(void **state)
{
    (void)state;
    return test_make_tmpdir(tmp, sizeof tmp, "corpora");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(tmp);
}

static void test_names(void **state)
{
    (void)state;
    struct avemo_item it;
    assert_int_equal(avemo_item_from_path("emodb/wav/03a01Fa.wav", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "HAP");
    assert_string_equal(it.group, "emodb:03");
    assert_int_equal(it.corpus, AVEMO_CORPUS_EMODB);
    assert_int_equal(it.kind, AVEMO_ITEM_AUDIO);
    assert_int_equal(avemo_item_from_path("08a01Lc.wav", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "BOR");
    assert_int_equal(avemo_item_from_path("x/08a01Ab.wav", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "FEA"); /* A is Angst, not anger */
    /* CK+: the label is the folder's, the group the subject. */
    assert_int_equal(avemo_item_from_path("ckplus/contempt/S138_008_00000009.png", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "CON");
    assert_string_equal(it.group, "ckplus:S138");
    assert_int_equal(it.corpus, AVEMO_CORPUS_CKPLUS);
    assert_int_equal(it.kind, AVEMO_ITEM_IMAGE);
    assert_int_equal(avemo_item_from_path("ckplus/sadness/S011_002_00000022.png", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "SAD");
    assert_int_equal(avemo_item_from_path("fer2013/validation/sad/PublicTest_97.jpg", &it, NULL), AVEMO_OK);
    assert_int_equal(it.corpus, AVEMO_CORPUS_FER2013);
    assert_string_equal(it.split, "validation");
    /* Every still-image extension is an image, never a clip. */
    const char *images[] = {"a/happy/x.bmp", "a/happy/x.TIFF", "a/happy/x.webp", "a/happy/x.pgm"};
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        assert_int_equal(avemo_item_from_path(images[i], &it, NULL), AVEMO_OK);
        assert_int_equal(it.kind, AVEMO_ITEM_IMAGE);
    }
    /* Labels with no six-class counterpart are dropped by the default map; calm is not. */
    struct avemo_label_map m;
    assert_int_equal(avemo_label_map_from_ini("[labels]\ndrop = CAL\n", "six.ini", &m, NULL), AVEMO_OK);
    assert_int_equal(avemo_label_map_apply(&m, "BOR"), -1);
    assert_int_equal(avemo_label_map_apply(&m, "CON"), -1);
    assert_int_equal(avemo_label_map_apply(&m, "SUR"), -1);
    assert_int_equal(avemo_label_map_from_ini("[labels]\ndrop = SUR\n", "six.ini", &m, NULL), AVEMO_OK);
    assert_int_equal(avemo_label_map_apply(&m, "CAL"), -2);
    /* A map may still keep one as a class. */
    assert_int_equal(avemo_label_map_from_ini("[labels]\nclasses = ANG HAP SUR\ndrop = CAL DIS FEA NEU SAD\n", "s.ini", &m,
                                              NULL),
                     AVEMO_OK);
    assert_int_equal(avemo_label_map_apply(&m, "SUR"), 2);
}

/* The same seven EmoDB files by folder and by manifest: same labels, boredom left out and counted. */
static void test_emodb(void **state)
{
    (void)state;
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset folder = {0}, manifest = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&folder, TEST_DATA("emodb"), &m, &err), AVEMO_OK);
    assert_int_equal(avemo_dataset_add(&manifest, TEST_DATA("emodb/manifest.csv"), &m, &err), AVEMO_OK);
    assert_int_equal(folder.count, 6);
    assert_int_equal(manifest.count, 6);
    char text[64];
    avemo_dataset_dropped_text(&folder, text, sizeof text);
    assert_string_equal(text, "1 BOR");
    avemo_dataset_dropped_text(&manifest, text, sizeof text);
    assert_string_equal(text, "1 BOR");
    for (size_t i = 0; i < folder.count; i++) {
        const char *base = strrchr(folder.items[i].path, '/') + 1;
        size_t j = 0;
        while (j < manifest.count && strcmp(strrchr(manifest.items[j].path, '/') + 1, base) != 0) j++;
        assert_true(j < manifest.count);
        assert_int_equal(folder.items[i].label, manifest.items[j].label);
        assert_int_equal(manifest.items[j].corpus, AVEMO_CORPUS_EMODB);
        assert_int_equal(strncmp(folder.items[i].group, "emodb:", 6), 0);
        assert_int_equal(strncmp(manifest.items[j].group, "emodb-", 6), 0);
    }
    assert_int_equal(avemo_dataset_source_corpus(&folder, 0), AVEMO_CORPUS_EMODB);
    avemo_dataset_free(&folder);
    avemo_dataset_free(&manifest);
}

/* CK+: contempt and surprise skipped and counted; splits keep each subject on one side. */
static void test_ckplus(void **state)
{
    (void)state;
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&ds, TEST_DATA("ckplus") "//", &m, &err), AVEMO_OK);
    assert_int_equal(ds.count, 10);
    assert_int_equal(ds.dropped, 4);
    /* trailing slashes of --data do not change the items' paths (split files match on them) */
    for (size_t i = 0; i < ds.count; i++) assert_null(strstr(ds.items[i].path, "//"));
    assert_string_equal(ds.source_path[0], TEST_DATA("ckplus"));
    char text[64];
    avemo_dataset_dropped_text(&ds, text, sizeof text);
    assert_non_null(strstr(text, "2 CON"));
    assert_non_null(strstr(text, "2 SUR"));
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct avemo_split sp;
        assert_int_equal(avemo_split_make(&ds, AVEMO_SPLIT_GROUPS, 0, 0, seed, &sp, &err), AVEMO_OK);
        for (size_t i = 0; i < ds.count; i++)
            for (size_t j = 0; j < ds.count; j++)
                if (strcmp(ds.items[i].group, ds.items[j].group) == 0) assert_int_equal(sp.part[i], sp.part[j]);
        avemo_split_free(&sp);
    }
    avemo_dataset_free(&ds);
}

static void run_ok(const char *cmd)
{
    if (system(cmd) != 0) fail_msg("failed: %s", cmd);
}

/* A CK+ PNG and the same pixels as BMP, TIFF and lossless WebP (written by the ffmpeg
 * command line) read as the same 48x48 picture. */
static void test_still_image_formats(void **state)
{
    (void)state;
    const char *png = TEST_DATA("ckplus/happy/S125_005_00000011.png");
    struct avemo_image ref, img;
    struct avemo_error err = {0};
    assert_int_equal(avemo_image_read_file(png, 1, NULL, &ref, &err), AVEMO_OK);
    assert_int_equal(ref.width, 48);
    assert_int_equal(ref.height, 48);
    assert_int_equal(ref.channels, 1);
    const char *exts[] = {"bmp", "tiff", "webp"};
    for (int k = 0; k < 3; k++) {
        char out[256], cmd[1024];
        snprintf(out, sizeof out, "%s/face.%s", tmp, exts[k]);
        snprintf(cmd, sizeof cmd, "%s -v error -y -i %s %s %s", AVEMO_FFMPEG, png, k == 2 ? "-lossless 1" : "", out);
        run_ok(cmd);
        assert_int_equal(avemo_image_read_file(out, 1, NULL, &img, &err), AVEMO_OK);
        assert_int_equal(img.width, 48);
        assert_int_equal(img.height, 48);
        /* TIFF keeps gray; BMP (a palette) and WebP (ARGB) go through RGB and back: +-1. */
        int worst = 0;
        for (int p = 0; p < 48 * 48; p++) {
            int d = abs((int)img.data[p] - (int)ref.data[p]);
            if (d > worst) worst = d;
        }
        assert_true(worst <= (k == 1 ? 0 : 1));
        avemo_image_free(&img);
    }
    avemo_image_free(&ref);
    /* A clip is not a still image. */
    avemo_media *media = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &media, &err), AVEMO_OK);
    assert_false(avemo_media_is_still_image(media));
    assert_int_equal(avemo_image_from_media(media, 1, &img, &err), AVEMO_ERR_UNSUPPORTED);
    avemo_media_close(media);
}

/* `avemo classify face.png`: a 48x48 PNG is one face (it used to be sampled as an 8-frame clip
 * with no face found); the same pixels as TIFF, and the PNG's bytes from memory (the server's
 * path), give the same answer. */
static void test_classify_still_images(void **state)
{
    (void)state;
    char paths[3][1024];
    struct avemo_error err = {0};
    for (int m = 0; m < 3; m++) assert_int_equal(avemo_default_model((enum avemo_mode)m, paths[m], sizeof paths[m], &err), AVEMO_OK);
    const char *extra[2] = {paths[AVEMO_MODE_AUDIO], paths[AVEMO_MODE_FACE]};
    struct avemo_classifier_options opt = {.extra_models = extra, .n_extra_models = 2};
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    assert_int_equal(avemo_classifier_open(paths[AVEMO_MODE_AV], &opt, &clf, &err), AVEMO_OK);
    assert_int_equal(avemo_classify_ctx_new(clf, &ctx, &err), AVEMO_OK);
    const char *png = TEST_DATA("ckplus/happy/S125_005_00000011.png");
    struct avemo_prediction a, b, c;
    assert_int_equal(avemo_classify_file(ctx, png, AVEMO_MODE_AV, &a, &err), AVEMO_OK);
    assert_int_equal(a.mode_used, AVEMO_MODE_FACE);
    assert_int_equal(a.frames_sampled, 1);
    assert_int_equal(a.frames_used, 1);
    assert_true(a.face_found);
    char tiff[256], cmd[1024];
    snprintf(tiff, sizeof tiff, "%s/face.tiff", tmp);
    snprintf(cmd, sizeof cmd, "%s -v error -y -i %s %s", AVEMO_FFMPEG, png, tiff);
    run_ok(cmd);
    assert_int_equal(avemo_classify_file(ctx, tiff, AVEMO_MODE_FACE, &b, &err), AVEMO_OK);
    size_t size;
    uint8_t *bytes = test_read_file(png, &size);
    assert_int_equal(avemo_classify_memory(ctx, bytes, size, "upload.png", AVEMO_MODE_FACE, &c, &err), AVEMO_OK);
    free(bytes);
    for (int k = 0; k < a.num_classes; k++) {
        assert_float_equal(a.probs[k], b.probs[k], 1e-6);
        assert_float_equal(a.probs[k], c.probs[k], 1e-6);
    }
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
}

/* A folder of CK+ faces with one broken PNG and one empty file: both named and skipped, the
 * others read.  Evaluated with the shipped face model beside the CREMA-D clips, the report
 * has one entry per --data and names the skipped files.  The CK+ faces the model trained on
 * (all of them for a model trained on every CK+ subject) are left out by their training record
 * and counted; the CREMA-D clips are actor 1001's, which no shipped model trains on. */
static void test_bad_files_and_per_corpus_eval(void **state)
{
    (void)state;
    char cmd[2048], dir[128];
    snprintf(dir, sizeof dir, "%s/ck", tmp);
    snprintf(cmd, sizeof cmd, "cp -r %s %s && head -c 100 %s/happy/S125_005_00000011.png > %s/anger/S900_001_00000001.png"
                              " && : > %s/fear/S901_001_00000001.png",
             TEST_DATA("ckplus"), dir, dir, dir, dir);
    run_ok(cmd);
    char model[1024];
    struct avemo_error err = {0};
    assert_int_equal(avemo_default_model(AVEMO_MODE_FACE, model, sizeof model, &err), AVEMO_OK);
    const char *data[2] = {dir, TEST_DATA("cremad")};
    struct avemo_eval_options opt = {.data = data, .ndata = 2, .seed = 1};
    struct avemo_eval_set set;
    const char *models[1] = {model};
    assert_int_equal(avemo_evaluate(models, 1, &opt, &set, &err), AVEMO_OK);
    assert_int_equal(set.nfailures, 2);
    assert_non_null(strstr(set.failures[0], "S900_001_00000001.png"));
    assert_non_null(strstr(set.failures[1], "S901_001_00000001.png"));
    assert_int_equal(set.nsources, 2);
    assert_string_equal(set.source_corpus[0], "ck+");
    assert_string_equal(set.source_corpus[1], "crema-d");
    /* CK+'s ten six-class faces, measured or left out as training faces, and the CREMA-D clips
     * (faces from video) beside them, all measured. */
    struct avemo_metrics ck, cremad;
    assert_int_equal(avemo_eval_source_metrics(&set, 0, 0, &ck, &err), AVEMO_OK);
    assert_int_equal(avemo_eval_source_metrics(&set, 0, 1, &cremad, &err), AVEMO_OK);
    assert_int_equal(ck.n + set.trained_on, 10);
    assert_int_equal(cremad.n, 6);
    assert_int_equal(ck.n + cremad.n, set.n);
    size_t right = 0;
    for (size_t u = 0; u < set.n; u++) right += set.truth[u] == set.results[0].pred[u];
    assert_int_equal(right, (size_t)(ck.accuracy * (double)ck.n + 0.5) + (size_t)(cremad.accuracy * 6 + 0.5));
    char *json = avemo_eval_set_json(&set, 0);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"per_data\""));
    assert_non_null(strstr(json, "S900_001_00000001.png"));
    free(json);
    char *text = avemo_eval_set_report(&set, 0);
    assert_non_null(strstr(text, "per data:"));
    assert_non_null(strstr(text, "2 CON"));
    free(text);
    avemo_eval_free(&set);
}

/* Leave one corpus out: every EmoDB file tests, every CK+ file trains, nothing else. */
static void test_leave_one_corpus_out(void **state)
{
    (void)state;
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&ds, TEST_DATA("ckplus"), &m, &err), AVEMO_OK);
    assert_int_equal(avemo_dataset_add(&ds, TEST_DATA("emodb/manifest.csv"), &m, &err), AVEMO_OK);
    assert_int_equal(ds.nsources, 2);
    struct avemo_split sp;
    assert_int_equal(avemo_split_make(&ds, AVEMO_SPLIT_GROUPS, 0, 0, 1, &sp, &err), AVEMO_OK);
    assert_int_equal(avemo_split_leave_out(&ds, &sp, 1, &err), AVEMO_OK);
    for (size_t i = 0; i < ds.count; i++) {
        if (ds.items[i].source == 1) assert_int_equal(sp.part[i], 2);
        else assert_true(sp.part[i] == 0 || sp.part[i] == 1);
    }
    assert_int_equal(avemo_split_leave_out(&ds, &sp, 2, &err), AVEMO_ERR_INVALID_ARG);
    avemo_split_free(&sp);
    avemo_dataset_free(&ds);
}

/* +-1 LSB dither alone moves every sample by at most one 16-bit step, some of them by a
 * visible part of one, and keeps the length. */
static void test_dither(void **state)
{
    (void)state;
    enum { N = 4000 };
    static float in[N], out[N];
    for (int i = 0; i < N; i++) in[i] = 0.25f * sinf(0.01f * (float)i);
    struct avemo_augment a = {0};
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 7, 1);
    a.dither = 1;
    assert_int_equal(train_augment_wave(in, N, out, N, 16000, &a, &rng), N);
    double worst = 0, sum = 0;
    for (int i = 0; i < N; i++) {
        double d = fabs((double)out[i] - in[i]);
        if (d > worst) worst = d;
        sum += d;
    }
    assert_true(worst <= 1.0 / 32768 + 1e-7);
    assert_true(worst > 0.9 / 32768);
    assert_true(sum / N > 0.4 / 32768 && sum / N < 0.6 / 32768); /* uniform on +-1: mean |d| = 1/2 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_emodb),
        cmocka_unit_test(test_ckplus),
        cmocka_unit_test(test_still_image_formats),
        cmocka_unit_test(test_classify_still_images),
        cmocka_unit_test(test_bad_files_and_per_corpus_eval),
        cmocka_unit_test(test_leave_one_corpus_out),
        cmocka_unit_test(test_dither),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
