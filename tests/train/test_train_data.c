/* Datasets, label maps, splits and pipeline files: the parts of training that decide
 * which file is which class and which actor is seen in training. */
#include "common/testutil.h"

#include <avemo/train.h>

#include "train/train_internal.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmp[64];

static void touch(const char *rel)
{
    char path[512], dirs[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    snprintf(dirs, sizeof dirs, "%s", path);
    for (char *p = dirs + strlen(tmp) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dirs, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    return test_make_tmpdir(tmp, sizeof tmp, "train_data");
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
    assert_int_equal(avemo_item_from_path("/x/1001_DFA_ANG_XX.flv", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "ANG");
    assert_string_equal(it.group, "cremad:1001");
    assert_int_equal(it.corpus, AVEMO_CORPUS_CREMAD);
    assert_true(it.kind & AVEMO_ITEM_VIDEO);
    assert_int_equal(avemo_item_from_path("Actor_07/03-01-05-02-01-01-07.wav", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "ANG");
    assert_string_equal(it.group, "ravdess:07");
    assert_int_equal(avemo_item_from_path("Actor_07/03-01-02-02-01-01-07.wav", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "CAL");
    assert_int_equal(avemo_item_from_path("fer/validation/surprise/PublicTest_1.jpg", &it, NULL), AVEMO_OK);
    assert_string_equal(it.code, "SUR");
    assert_string_equal(it.split, "validation");
    assert_int_equal(it.kind, AVEMO_ITEM_IMAGE);
    struct avemo_error err = {0};
    assert_int_equal(avemo_item_from_path("/x/holiday.mp4", &it, &err), AVEMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "holiday.mp4"));
}

static void test_label_map(void **state)
{
    (void)state;
    struct avemo_label_map m;
    struct avemo_error err = {0};
    const char *ini = "[labels]\nclasses = ANG HAP NEU SAD\nmap = CAL:NEU\ndrop = DIS FEA SUR\n";
    assert_int_equal(avemo_label_map_from_ini(ini, "four.ini", &m, &err), AVEMO_OK);
    assert_int_equal(m.num_classes, 4);
    assert_int_equal(avemo_label_map_apply(&m, "CAL"), 2);
    assert_int_equal(avemo_label_map_apply(&m, "SAD"), 3);
    assert_int_equal(avemo_label_map_apply(&m, "FEA"), -1);
    assert_int_equal(avemo_label_map_apply(&m, "XYZ"), -2);
    assert_int_equal(avemo_label_map_from_ini("[labels]\nmap = CAL:BORED\n", "bad.ini", &m, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "bad.ini"));
    assert_int_equal(avemo_label_map_from_ini("[labels]\ncolour = red\n", "bad.ini", &m, &err), AVEMO_ERR_CONFIG);
}

/* Twenty RAVDESS-named actors: a 5-fold actor-independent split never shares an actor. */
static void test_actor_independent_folds(void **state)
{
    (void)state;
    for (int a = 1; a <= 20; a++)
        for (int e = 1; e <= 8; e++) {
            char rel[128];
            snprintf(rel, sizeof rel, "rav/Actor_%02d/03-01-%02d-01-01-01-%02d.wav", a, e, a);
            touch(rel);
        }
    char root[128];
    snprintf(root, sizeof root, "%s/rav", tmp);
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&ds, root, &m, &err), AVEMO_OK);
    assert_int_equal(ds.count, 20 * 6); /* calm and surprised dropped */
    assert_int_equal(ds.dropped, 40);
    int test_folds_of_actor[21] = {0};
    for (int fold = 0; fold < 5; fold++) {
        struct avemo_split sp;
        assert_int_equal(avemo_split_make(&ds, AVEMO_SPLIT_GROUPS, 5, fold, 42, &sp, &err), AVEMO_OK);
        int part_of_actor[21];
        for (int a = 0; a <= 20; a++) part_of_actor[a] = -9;
        for (size_t i = 0; i < ds.count; i++) {
            int actor = atoi(ds.items[i].group + strlen("ravdess:"));
            if (part_of_actor[actor] == -9) part_of_actor[actor] = sp.part[i];
            assert_int_equal(part_of_actor[actor], sp.part[i]); /* one actor, one part */
        }
        int counts[3] = {0};
        for (int a = 1; a <= 20; a++) {
            counts[part_of_actor[a]]++;
            if (part_of_actor[a] == 2) test_folds_of_actor[a]++;
        }
        assert_int_equal(counts[2], 4);
        assert_int_equal(counts[1], 4);
        assert_int_equal(counts[0], 12);
        /* Written and read back, the split is the same. */
        char path[128];
        snprintf(path, sizeof path, "%s/split%d.txt", tmp, fold);
        assert_int_equal(avemo_split_save(&ds, &sp, path, &err), AVEMO_OK);
        struct avemo_split back;
        assert_int_equal(avemo_split_load(&ds, path, &back, &err), AVEMO_OK);
        assert_memory_equal(back.part, sp.part, ds.count);
        avemo_split_free(&back);
        /* validation = no: the validation actors train, the test actors stay as they were. */
        struct avemo_pipeline p;
        avemo_pipeline_default(&p);
        assert_int_equal(avemo_pipeline_set(&p, "train", "validation", "no", "test", &err), AVEMO_OK);
        assert_int_equal(avemo_pipeline_set(&p, "train", "seed", "42", "test", &err), AVEMO_OK);
        p.train.fold = fold;
        struct avemo_split merged;
        assert_int_equal(avemo_split_for_pipeline(&ds, &p.train, &merged, &err), AVEMO_OK);
        for (size_t i = 0; i < ds.count; i++)
            assert_int_equal(merged.part[i], sp.part[i] == 1 ? 0 : sp.part[i]);
        avemo_split_free(&merged);
        avemo_split_free(&sp);
    }
    for (int a = 1; a <= 20; a++) assert_int_equal(test_folds_of_actor[a], 1); /* each actor tested once */
    avemo_dataset_free(&ds);
}

static void test_bad_data(void **state)
{
    (void)state;
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    char path[128];
    snprintf(path, sizeof path, "%s/empty", tmp);
    mkdir(path, 0755);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_ERR_EMPTY);
    assert_non_null(strstr(err.message, path));
    touch("odd/holiday.mp4");
    snprintf(path, sizeof path, "%s/odd", tmp);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "holiday.mp4"));
    /* A label the map neither keeps nor drops. */
    struct avemo_label_map four;
    assert_int_equal(avemo_label_map_from_ini("[labels]\nclasses = ANG HAP\ndrop = SUR\n", "x.ini", &four, &err), AVEMO_OK);
    touch("fer/train/sad/a.jpg");
    snprintf(path, sizeof path, "%s/fer", tmp);
    assert_int_equal(avemo_dataset_add(&ds, path, &four, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "SAD"));
    snprintf(path, sizeof path, "%s/nothing-here", tmp);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_ERR_NOT_FOUND);
    avemo_dataset_free(&ds);
}

static void test_manifest(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/list.csv", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "path,label,group\nclips/a.wav,angry,spk1\nclips/b.wav,happy,spk2\n/abs/c.flv,NEU,spk3\n");
    fclose(f);
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_OK);
    assert_int_equal(ds.count, 3);
    assert_int_equal(ds.items[0].label, 0);
    assert_int_equal(ds.items[1].label, 3);
    assert_string_equal(ds.items[2].group, "spk3");
    assert_string_equal(ds.items[2].path, "/abs/c.flv");
    avemo_dataset_free(&ds);
    f = fopen(path, "w");
    fprintf(f, "a.wav,sleepy,spk1\n"); /* "bored" is EmoDB's boredom, BOR, since issue 15 */
    fclose(f);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "list.csv:1"));
    avemo_dataset_free(&ds);
    /* the split column is read as folder names are (val -> validation), not as typed; an
     * unknown one is refused by line rather than leaving the file in no part */
    f = fopen(path, "w");
    fprintf(f, "path,label,group,split\na.wav,angry,s1,Val\nb.wav,happy,s2,TRAINING\nc.wav,sad,s3,\n");
    fclose(f);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_OK);
    assert_string_equal(ds.items[0].split, "validation");
    assert_string_equal(ds.items[1].split, "train");
    assert_string_equal(ds.items[2].split, "");
    avemo_dataset_free(&ds);
    f = fopen(path, "w");
    fprintf(f, "path,label,group,split\na.wav,angry,s1,test\nb.wav,happy,s2,dev\n");
    fclose(f);
    assert_int_equal(avemo_dataset_add(&ds, path, &m, &err), AVEMO_ERR_CONFIG);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "list.csv:3: split 'dev' is not train, validation"));
    avemo_dataset_free(&ds);
}

/* Split files match items on their last two path components.  Where two items share them
 * (x/train/happy/im0.png, x/test/happy/im0.png) a short name is refused rather than taken
 * for either; full paths choose; a file given two parts is refused. */
static void test_split_file_same_names(void **state)
{
    (void)state;
    char dir[128], cmd[1024], split[160];
    snprintf(dir, sizeof dir, "%s/samename", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/train/happy %s/test/happy && cp %s %s/train/happy/im0.png && cp %s %s/test/happy/im0.png",
             dir, dir, TEST_DATA("ckplus/happy/S125_005_00000011.png"), dir, TEST_DATA("ckplus/happy/S125_005_00000011.png"),
             dir);
    assert_int_equal(system(cmd), 0);
    struct avemo_label_map m;
    avemo_label_map_default(&m);
    struct avemo_dataset ds = {0};
    struct avemo_error err = {0};
    assert_int_equal(avemo_dataset_add(&ds, dir, &m, &err), AVEMO_OK);
    assert_int_equal(ds.count, 2);
    snprintf(split, sizeof split, "%s/same.split", tmp);
    struct avemo_split sp;
    static const char *const cases[3] = {"train happy/im0.png\n", "train %s/train/happy/im0.png\ntest %s/test/happy/im0.png\n",
                                         "train %s/train/happy/im0.png\ntest %s/train/happy/im0.png\n"};
    for (int c = 0; c < 3; c++) {
        FILE *f = fopen(split, "w");
        fprintf(f, cases[c], dir, dir);
        fclose(f);
        enum avemo_status st = avemo_split_load(&ds, split, &sp, &err);
        if (c == 1) {
            assert_int_equal(st, AVEMO_OK);
            for (size_t i = 0; i < ds.count; i++)
                assert_int_equal(sp.part[i], strstr(ds.items[i].path, "/test/") ? AVEMO_PART_TEST : AVEMO_PART_TRAIN);
            avemo_split_free(&sp);
            continue;
        }
        printf("  %s\n", err.message);
        assert_int_equal(st, c == 0 ? AVEMO_ERR_MISMATCH : AVEMO_ERR_CONFIG);
        assert_non_null(strstr(err.message, c == 0 ? "same.split:1: happy/im0.png matches 2 files" : "same.split:2:"));
    }
    avemo_dataset_free(&ds);
}

static void test_pipeline_errors(void **state)
{
    (void)state;
    struct avemo_pipeline p;
    struct avemo_error err = {0};
    assert_int_equal(avemo_pipeline_parse("[train]\nepochs = 5\nbatch = 16\nsplit = random\n", "ok.ini", &p, &err), AVEMO_OK);
    assert_int_equal(p.train.epochs, 5);
    assert_int_equal(p.train.split, AVEMO_SPLIT_RANDOM);
    assert_int_equal(avemo_pipeline_parse("[train]\nepochs = lots\n", "p.ini", &p, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "train.epochs"));
    assert_int_equal(avemo_pipeline_parse("[train]\nbatch = 0\n", "p.ini", &p, &err), AVEMO_ERR_CONFIG);
    assert_int_equal(avemo_pipeline_parse("[face]\nchannels = 2\n", "p.ini", &p, &err), AVEMO_ERR_CONFIG);
    assert_int_equal(avemo_pipeline_parse("[pipeline]\nmode = smell\n", "p.ini", &p, &err), AVEMO_ERR_CONFIG);
    assert_int_equal(avemo_pipeline_parse("[augment]\nwobble = 1\n", "p.ini", &p, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "wobble"));
}

/* --set SEC.KEY=VALUE replaces the key's whole (multi-line) value in its section, also in
 * sections whose names have dots, adds missing keys and sections, and refuses malformed ones. */
static void test_pipeline_overrides(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/over.ini", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[network]\ninputs = audio:1x8x8\n\n[branch.audio]\nlayers = conv 4 3 same, relu,\n"
          "         gap, dense 8\n\n[head]\nlayers = dense 16, relu,\n         dense 6, softmax\n"
          "[train]\nepochs = 5", f);
    fclose(f);
    const char *sets[] = {"branch.audio.layers=gap, dense 4", "head.layers=dense 6", "train.epochs=7", "train.batch=8",
                          "augment.flip=yes"};
    char *text;
    struct avemo_pipeline p;
    struct avemo_error err = {0};
    if (avemo_pipeline_load(path, sets, 5, &text, &p, &err)) fail_msg("%s", err.message);
    /* --set edits the parsed pipeline; the stored text is that configuration written out */
    assert_non_null(strstr(text, "[branch.audio]\nlayers = gap, dense 4\n\n[head]\nlayers = dense 6\n\n[train]"));
    assert_null(strstr(text, "conv 4")); /* the continuation lines went with the old value */
    assert_null(strstr(text, "dense 16"));
    assert_non_null(strstr(text, "[train]\nepochs = 7\nbatch = 8\n"));
    assert_non_null(strstr(text, "[network]\ninputs = audio:1x8x8\n"));
    assert_non_null(strstr(text, "[augment]\nflip = yes\n"));
    assert_int_equal(p.train.epochs, 7);
    assert_int_equal(p.train.batch, 8);
    free(text);
    const char *bad[] = {"epochs=3"};
    assert_int_equal(avemo_pipeline_load(path, bad, 1, &text, &p, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "epochs=3"));
}

/* Extract the audio features of the six CREMA-D clips (of those marked in only, when not NULL)
 * with the cache at cache_path. */
static enum avemo_status extract_audio(const char *data, const char *cache_path, const unsigned char *only,
                                       struct avemo_dataset *ds, struct avemo_feature_set *fs, struct avemo_error *err)
{
    struct avemo_pipeline p;
    avemo_pipeline_default(&p);
    p.mode = AVEMO_MODE_AUDIO;
    memset(ds, 0, sizeof *ds);
    enum avemo_status st = avemo_dataset_add(ds, data, &p.labels, err);
    struct avemo_extract_options eo = {.need_audio = 1, .threads = 1, .cache_path = cache_path, .only = only};
    return st ? st : avemo_features_extract(&p, ds, &eo, fs, err);
}

static void extract_cremad_only(const char *cache_path, const unsigned char *only, struct avemo_dataset *ds,
                                struct avemo_feature_set *fs)
{
    struct avemo_error err = {0};
    if (extract_audio(TEST_DATA("cremad"), cache_path, only, ds, fs, &err)) fail_msg("%s", err.message);
    assert_int_equal(fs->count, 6);
}

static void extract_cremad(const char *cache_path, struct avemo_dataset *ds, struct avemo_feature_set *fs)
{
    extract_cremad_only(cache_path, NULL, ds, fs);
}

static void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x55, f);
    fclose(f);
}

/* The feature cache (format at the top of src/train/features.c): a second extraction reads every
 * item from it with the same numbers; a damaged entry ends the reading there (the entries before
 * it are still used, the others extracted again); a cache of the old format is not read. */
static void test_feature_cache(void **state)
{
    (void)state;
    char cache[128];
    snprintf(cache, sizeof cache, "%s/features.cache", tmp);
    struct avemo_dataset ds;
    struct avemo_feature_set first, again, damaged, old;
    extract_cremad(cache, &ds, &first);
    assert_int_equal(first.from_cache, 0);
    avemo_dataset_free(&ds);
    extract_cremad(cache, &ds, &again);
    assert_int_equal(again.from_cache, 6);
    size_t floats = first.count * (size_t)first.audio_rows * (size_t)first.audio_cols;
    assert_memory_equal(first.audio, again.audio, floats * sizeof(float));
    avemo_dataset_free(&ds);
    /* each entry holds 40 x 128 floats: a byte past the middle of the file is in a later entry */
    struct stat sb;
    assert_int_equal(stat(cache, &sb), 0);
    flip_byte(cache, (long)(sb.st_size * 2 / 3));
    extract_cremad(cache, &ds, &damaged);
    assert_true(damaged.from_cache >= 1 && damaged.from_cache < 6);
    assert_memory_equal(first.audio, damaged.audio, floats * sizeof(float));
    avemo_dataset_free(&ds);
    FILE *f = fopen(cache, "r+b"); /* the version-2 magic: ignored, extracted again, rewritten */
    assert_non_null(f);
    fputs("AVEMOFC2", f);
    fclose(f);
    extract_cremad(cache, &ds, &old);
    assert_int_equal(old.from_cache, 0);
    assert_memory_equal(first.audio, old.audio, floats * sizeof(float));
    avemo_dataset_free(&ds);
    avemo_features_free(&first);
    avemo_features_free(&again);
    avemo_features_free(&damaged);
    avemo_features_free(&old);
}

/* Give the feature cache at path the header an avemo of feature version `features` would have
 * written (UINT32_MAX: one from before feature versions, format version 3, which has no such field). */
static void set_cache_feature_version(const char *path, uint32_t features)
{
    size_t size;
    uint8_t *old = test_read_file(path, &size);
    assert_true(size > 32 && memcmp(old, "AVEMOFCH", 8) == 0);
    uint32_t version = old[8] | (uint32_t)old[9] << 8 | (uint32_t)old[10] << 16 | (uint32_t)old[11] << 24;
    size_t key_at = version == 3 ? 12 : 16, body_at = key_at + 12 + 4; /* key, count, header crc */
    uint8_t head[32];
    size_t n = 8;
    memcpy(head, "AVEMOFCH", 8);
    uint32_t words[2] = {features == UINT32_MAX ? 3 : 4, features};
    for (int w = 0; w < (features == UINT32_MAX ? 1 : 2); w++)
        for (int b = 0; b < 4; b++) head[n++] = (uint8_t)(words[w] >> (8 * b));
    memcpy(head + n, old + key_at, 12);
    n += 12;
    uint32_t crc = avemo_crc32(0, head, n);
    for (int b = 0; b < 4; b++) head[n++] = (uint8_t)(crc >> (8 * b));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, n, f), n);
    assert_int_equal(fwrite(old + body_at, 1, size - body_at, f), size - body_at);
    assert_int_equal(fclose(f), 0);
    free(old);
}

/* Extract with the cache as extract_cremad_only, stderr going to the file at log. */
static void extract_cremad_logged(const char *cache_path, const unsigned char *only, const char *log,
                                  struct avemo_dataset *ds, struct avemo_feature_set *fs)
{
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    extract_cremad_only(cache_path, only, ds, fs);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* Features extracted by another front end are not used: a cache of another feature version, or
 * of the format before feature versions (3), is extracted again with one warning and rewritten,
 * also by an extraction of some items only (eval); a cache of this version is still read. */
static void test_feature_cache_version(void **state)
{
    (void)state;
    char cache[128], log[128], want[256];
    snprintf(cache, sizeof cache, "%s/versions.cache", tmp);
    snprintf(log, sizeof log, "%s/versions.log", tmp);
    struct avemo_dataset ds;
    struct avemo_feature_set first, fs;
    extract_cremad(cache, &ds, &first);
    avemo_dataset_free(&ds);
    size_t floats = first.count * (size_t)first.audio_rows * (size_t)first.audio_cols;
    const uint32_t versions[] = {UINT32_MAX, AVEMO_FEATURE_VERSION + 1, 0};
    for (int v = 0; v < 3; v++) {
        set_cache_feature_version(cache, versions[v]);
        extract_cremad_logged(cache, NULL, log, &ds, &fs);
        assert_int_equal(fs.from_cache, 0);
        assert_memory_equal(first.audio, fs.audio, floats * sizeof(float));
        avemo_dataset_free(&ds);
        avemo_features_free(&fs);
        size_t size;
        char *text = (char *)test_read_file(log, &size);
        text[size] = 0;
        snprintf(want, sizeof want, "warning: cache %s was written by feature version %u, this is %u: extracting again\n",
                 cache, versions[v] == UINT32_MAX ? 0u : versions[v], AVEMO_FEATURE_VERSION);
        assert_string_equal(text, want);
        free(text);
        extract_cremad(cache, &ds, &fs); /* rewritten with this version */
        assert_int_equal(fs.from_cache, 6);
        avemo_dataset_free(&ds);
        avemo_features_free(&fs);
    }
    set_cache_feature_version(cache, AVEMO_FEATURE_VERSION + 1);
    const unsigned char only[6] = {1, 1, 0, 0, 0, 0};
    extract_cremad_logged(cache, only, log, &ds, &fs);
    assert_int_equal(fs.from_cache, 0);
    avemo_dataset_free(&ds);
    avemo_features_free(&fs);
    extract_cremad(cache, &ds, &fs); /* the stale cache was replaced by the two items */
    assert_int_equal(fs.from_cache, 2);
    assert_memory_equal(first.audio, fs.audio, floats * sizeof(float));
    avemo_dataset_free(&ds);
    avemo_features_free(&fs);
    avemo_features_free(&first);
}

static void write_file(const char *path, const void *data, size_t size, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The index of the item whose path ends in name. */
static size_t item_named(const struct avemo_dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->count; i++) {
        size_t n = strlen(ds->items[i].path), k = strlen(name);
        if (n >= k && strcmp(ds->items[i].path + n - k, name) == 0) return i;
    }
    fail_msg("no item %s", name);
    return 0;
}

/* A failure of the environment is not cached, one of the file's content is: a clip that could not be
 * opened (EACCES, as an unprivileged user) is extracted once it can be, though its size and mtime are
 * the same, while a file that is not media is still read from the cache as a failure. */
static void test_feature_cache_transient(void **state)
{
    (void)state;
    char dir[64], cache[128], path[160];
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "train_cache_acl"), 0);
    assert_int_equal(chmod(dir, 0777), 0); /* the unprivileged child writes the cache there */
    snprintf(cache, sizeof cache, "%s/features.cache", dir);
    size_t size;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &size);
    snprintf(path, sizeof path, "%s/1001_DFA_ANG_XX.flv", dir);
    write_file(path, clip, size, 0644);
    snprintf(path, sizeof path, "%s/1001_DFA_DIS_XX.flv", dir);
    write_file(path, clip, size, 0); /* cannot be opened */
    free(clip);
    char garbage[4096];
    memset(garbage, 'x', sizeof garbage);
    snprintf(path, sizeof path, "%s/1001_DFA_FEA_XX.flv", dir);
    write_file(path, garbage, sizeof garbage, 0644);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* root reads any file: the first extraction runs as nobody */
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(77);
        struct avemo_dataset ds;
        struct avemo_feature_set fs;
        struct avemo_error err = {0};
        if (extract_audio(dir, cache, NULL, &ds, &fs, &err) || fs.count != 3) _exit(2);
        const char *why = fs.failure[item_named(&ds, "DIS_XX.flv")];
        _exit(fs.failed == 2 && why && strstr(why, "Permission denied") ? 0 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        test_remove_tmpdir(dir);
        skip(); /* root that cannot become nobody */
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(path, sizeof path, "%s/1001_DFA_DIS_XX.flv", dir);
    assert_int_equal(chmod(path, 0644), 0); /* readable now; size and mtime as before */
    struct avemo_dataset ds;
    struct avemo_feature_set fs;
    struct avemo_error err = {0};
    if (extract_audio(dir, cache, NULL, &ds, &fs, &err)) fail_msg("%s", err.message);
    assert_int_equal(fs.from_cache, 2); /* ANG, and FEA as a failure */
    assert_int_equal(fs.failed, 1);
    assert_true(fs.has_audio[item_named(&ds, "DIS_XX.flv")]);
    assert_non_null(fs.failure[item_named(&ds, "FEA_XX.flv")]);
    avemo_dataset_free(&ds);
    avemo_features_free(&fs);
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_label_map),
        cmocka_unit_test(test_actor_independent_folds),
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_split_file_same_names),
        cmocka_unit_test(test_pipeline_errors),
        cmocka_unit_test(test_pipeline_overrides),
        cmocka_unit_test(test_feature_cache),
        cmocka_unit_test(test_feature_cache_version),
        cmocka_unit_test(test_feature_cache_transient),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
