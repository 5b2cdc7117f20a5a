/* nn_model_file: .avm save / load round trip, corruption detection and partial loads. */
#include "common/testutil.h"
#include "nn/nn_ref.h"
#include "nn/nn_internal.h"

#define PIPE(name) AVEMO_SOURCE_DIR "/pipelines/" name ".ini"

static avemo_net *make_net(const char *path, uint64_t seed)
{
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create_file(path, &net, &err)) fail_msg("%s", err.message);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, seed);
    for (size_t i = 0; i < net->nstats; i++) net->stats[i] = 0.5f + 0.001f * (float)i; /* not the defaults */
    return net;
}


static void forward(const avemo_net *net, float *const *inputs, int B, float *logits)
{
    struct avemo_error err;
    avemo_nn_ctx *ctx;
    const float *out;
    if (avemo_nn_ctx_create(net, B, 0, 1, &ctx, &err) ||
        avemo_net_forward(net, ctx, (const float *const *)inputs, B, &out, &err))
        fail_msg("%s", err.message);
    memcpy(logits, out, sizeof(float) * (size_t)B * net->classes);
    avemo_nn_ctx_free(ctx);
}

static void save_or_fail(const avemo_net *net, const char *path)
{
    struct avemo_error err;
    if (avemo_net_save(net, path, &err)) fail_msg("%s", err.message);
}

/* The file checksum is zlib's CRC-32: its check value, and the same result in pieces. */
static void test_crc32_is_zlib(void **state)
{
    (void)state;
    assert_int_equal(avemo_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(avemo_crc32(avemo_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(avemo_crc32(0, "", 0), 0u);
}

static void test_round_trip_bit_identical(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("cremad-av"), 11);
    float mean[40], std[40];
    for (int i = 0; i < 40; i++) {
        mean[i] = -3.0f + 0.1f * i;
        std[i] = 1.0f + 0.01f * i;
    }
    assert_int_equal(avemo_net_set_array(net, "audio.mean", mean, 40, &err), AVEMO_OK);
    assert_int_equal(avemo_net_set_array(net, "audio.std", std, 40, &err), AVEMO_OK);
    save_or_fail(net, "round_trip.avm");
    avemo_net *back;
    if (avemo_net_load("round_trip.avm", &back, &err)) fail_msg("%s", err.message);
    assert_string_equal(avemo_net_pipeline(back), avemo_net_pipeline(net));
    assert_int_equal(back->nparams, net->nparams);
    assert_memory_equal(back->params, net->params, sizeof(float) * net->nparams);
    assert_memory_equal(back->stats, net->stats, sizeof(float) * net->nstats);
    for (int c = 0; c < net->classes; c++) assert_string_equal(avemo_net_label(back, c), avemo_emotion_codes[c]);
    size_t n;
    const float *m = avemo_net_array(back, "audio.mean", &n);
    assert_int_equal(n, 40);
    assert_memory_equal(m, mean, sizeof mean);
    assert_non_null(avemo_net_array(back, "audio.std", &n));
    assert_null(avemo_net_array(back, "face.mean", &n));
    float *inputs[2] = {nn_random_batch(net, 0, 3, 1), nn_random_batch(net, 1, 3, 2)};
    float a[18], b[18];
    forward(net, inputs, 3, a);
    forward(back, inputs, 3, b);
    assert_memory_equal(a, b, sizeof a);
    free(inputs[0]);
    free(inputs[1]);
    avemo_net_free(back);
    avemo_net_free(net);
}

static uint8_t *saved_bytes(const char *path, size_t *size)
{
    avemo_net *net = make_net(PIPE("audio-mfcc"), 3);
    save_or_fail(net, path);
    avemo_net_free(net);
    return test_read_file(path, size);
}

static void write_bytes(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void expect_load_error(const char *path, enum avemo_status want, const char *words)
{
    struct avemo_error err;
    avemo_net *net = NULL;
    enum avemo_status st = avemo_net_load(path, &net, &err);
    printf("%s -> %s: %s\n", path, avemo_status_name(st), st ? err.message : "");
    assert_null(net);
    assert_int_equal(st, want);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, words));
}

static void test_flipped_byte(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = saved_bytes("flip.avm", &size);
    data[size / 2] ^= 0x10; /* inside the parameters */
    write_bytes("flip.avm", data, size);
    expect_load_error("flip.avm", AVEMO_ERR_CHECKSUM, "CRC32");
    free(data);
}

static void test_truncated(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = saved_bytes("truncated.avm", &size);
    write_bytes("truncated.avm", data, size - 100);
    expect_load_error("truncated.avm", AVEMO_ERR_CORRUPT, "truncated");
    write_bytes("truncated.avm", data, 12);
    expect_load_error("truncated.avm", AVEMO_ERR_CORRUPT, "truncated");
    free(data);
}

static void test_wrong_magic_and_version(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = saved_bytes("magic.avm", &size);
    data[0] = 'X';
    write_bytes("magic.avm", data, size);
    expect_load_error("magic.avm", AVEMO_ERR_UNSUPPORTED, "wrong magic");
    data[0] = 'A';
    data[8] = 3; /* version 3 */
    write_bytes("version.avm", data, size);
    expect_load_error("version.avm", AVEMO_ERR_VERSION, "version 3");
    free(data);
    expect_load_error("does-not-exist.avm", AVEMO_ERR_NOT_FOUND, "cannot open");
}

/* The offset of the training record section: after the pipeline, labels and arrays. */
static size_t record_offset(const uint8_t *data)
{
    size_t pos = 24;
    uint32_t len;
    memcpy(&len, data + pos, 4);
    pos += 4 + len; /* pipeline */
    uint32_t nlabels;
    memcpy(&nlabels, data + pos, 4);
    pos += 4;
    for (uint32_t i = 0; i < nlabels; i++) {
        memcpy(&len, data + pos, 4);
        pos += 4 + len;
    }
    uint32_t narrays;
    memcpy(&narrays, data + pos, 4);
    assert_int_equal(narrays, 0);
    return pos + 4;
}

static void fix_crc(uint8_t *data, size_t size)
{
    uint32_t crc = avemo_crc32(0, data, size - 4);
    memcpy(data + size - 4, &crc, 4);
}

/* A file whose container is valid (CRC recomputed) but whose parameter count does not match
 * the network its own pipeline text describes. */
static void test_parameter_count_mismatch(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = saved_bytes("mismatch.avm", &size);
    size_t pos = record_offset(data) + 12; /* no record: has_record 0, n 0 */
    uint64_t nparams;
    memcpy(&nparams, data + pos, 8);
    nparams -= 1;
    memcpy(data + pos, &nparams, 8);
    fix_crc(data, size);
    write_bytes("mismatch.avm", data, size);
    expect_load_error("mismatch.avm", AVEMO_ERR_MISMATCH, "parameters stored");
    free(data);
}

/* Damage with a recomputed CRC (as a crafted file would have): every load fails cleanly or
 * succeeds, never reads out of bounds (run under AVEMO_SANITIZE to see). */
static void test_crafted_damage(void **state)
{
    (void)state;
    size_t size;
    uint8_t *orig = saved_bytes("crafted.avm", &size);
    uint8_t *data = malloc(size);
    int refused = 0;
    for (size_t pos = 8; pos < 1400 && pos < size - 4; pos += 7) {
        memcpy(data, orig, size);
        data[pos] ^= (uint8_t)(0x5a + pos);
        uint32_t crc = avemo_crc32(0, data, size - 4);
        memcpy(data + size - 4, &crc, 4);
        write_bytes("crafted.avm", data, size);
        struct avemo_error err;
        avemo_net *net = NULL;
        enum avemo_status st = avemo_net_load("crafted.avm", &net, &err);
        if (st) {
            assert_null(net);
            assert_non_null(strstr(err.message, "crafted.avm"));
            refused++;
        }
        avemo_net_free(net);
    }
    assert_true(refused > 50);
    free(data);
    free(orig);
}

/* The training record (version 2) comes back entry for entry; a net without one has none. */
static void test_record_round_trip(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("audio-mfcc"), 5);
    assert_int_equal(avemo_net_has_record(net), 0);
    struct avemo_record_entry e[3] = {{0, {1, 2, 3}, "ravdess/Actor_01/a.wav"}, {1, {0}, "ravdess/Actor_02/b.wav"},
                                      {0, {0}, ""}};
    for (int i = 0; i < AVEMO_SHA256_SIZE; i++) e[1].sha256[i] = (uint8_t)(255 - i);
    assert_int_equal(avemo_net_set_record(net, e, 3, &err), AVEMO_OK);
    save_or_fail(net, "record.avm");
    avemo_net *back;
    if (avemo_net_load("record.avm", &back, &err)) fail_msg("%s", err.message);
    size_t n;
    const struct avemo_record_entry *r = avemo_net_record(back, &n);
    assert_int_equal(avemo_net_has_record(back), 1);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].part, e[i].part);
        assert_memory_equal(r[i].sha256, e[i].sha256, AVEMO_SHA256_SIZE);
        assert_string_equal(r[i].name, e[i].name);
    }
    avemo_net_free(back);
    /* An empty record is a record ("nothing"), not the absence of one. */
    assert_int_equal(avemo_net_set_record(net, NULL, 0, &err), AVEMO_OK);
    save_or_fail(net, "record.avm");
    if (avemo_net_load("record.avm", &back, &err)) fail_msg("%s", err.message);
    assert_int_equal(avemo_net_has_record(back), 1);
    (void)avemo_net_record(back, &n);
    assert_int_equal(n, 0);
    avemo_net_free(back);
    e[2].part = 2; /* neither training nor validation */
    assert_int_equal(avemo_net_set_record(net, e, 3, &err), AVEMO_ERR_INVALID_ARG);
    avemo_net_free(net);
}

/* avemo_net_load_inference: the same network, parameters, statistics and arrays without the
 * record; such a net is not saved (its file's record would be lost) until a record is given. */
static void test_load_inference(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("audio-mfcc"), 6);
    struct avemo_record_entry e[2] = {{0, {7}, "emodb/wav/03a01Fa.wav"}, {1, {9}, "emodb/wav/03a01Nc.wav"}};
    const float extra[3] = {1.5f, -2.0f, 0.25f};
    assert_int_equal(avemo_net_set_record(net, e, 2, &err), AVEMO_OK);
    assert_int_equal(avemo_net_set_array(net, "calib.temperature", extra, 3, &err), AVEMO_OK);
    save_or_fail(net, "inference.avm");
    avemo_net *run;
    if (avemo_net_load_inference("inference.avm", &run, &err)) fail_msg("%s", err.message);
    assert_int_equal(run->nparams, net->nparams);
    assert_memory_equal(run->params, net->params, sizeof(float) * net->nparams);
    assert_memory_equal(run->stats, net->stats, sizeof(float) * net->nstats);
    size_t n = 0;
    const float *a = avemo_net_array(run, "calib.temperature", &n);
    assert_int_equal(n, 3);
    assert_memory_equal(a, extra, sizeof extra);
    assert_int_equal(avemo_net_has_record(run), 0);
    assert_null(avemo_net_record(run, &n));
    assert_int_equal(avemo_net_save(run, "inference-copy.avm", &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "training record"));
    assert_int_equal(avemo_net_set_record(run, e, 2, &err), AVEMO_OK); /* given again: saved */
    save_or_fail(run, "inference-copy.avm");
    avemo_net_free(run);
    /* a damaged file is refused as by avemo_net_load */
    size_t size = 0;
    uint8_t *bytes = test_read_file("inference.avm", &size);
    bytes[size / 2] ^= 0x10;
    FILE *f = fopen("inference-bad.avm", "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
    free(bytes);
    assert_int_equal(avemo_net_load_inference("inference-bad.avm", &run, &err), AVEMO_ERR_CHECKSUM);
    avemo_net_free(net);
}

/* A version-1 file (no record section) still loads, as a model without a record, with its
 * arrays; a record whose count the file cannot hold is refused cleanly. */
static void test_version1_and_bad_record(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net = make_net(PIPE("audio-mfcc"), 6);
    save_or_fail(net, "v2.avm");
    size_t size;
    uint8_t *data = test_read_file("v2.avm", &size);
    size_t at = record_offset(data);
    uint8_t *v1 = malloc(size);
    memcpy(v1, data, at);
    memcpy(v1 + at, data + at + 12, size - at - 12); /* without has_record and n */
    size_t v1_size = size - 12;
    uint32_t one = 1;
    uint64_t declared = v1_size;
    memcpy(v1 + 8, &one, 4);
    memcpy(v1 + 16, &declared, 8);
    fix_crc(v1, v1_size);
    write_bytes("v1.avm", v1, v1_size);
    avemo_net *back;
    if (avemo_net_load("v1.avm", &back, &err)) fail_msg("%s", err.message);
    assert_int_equal(avemo_net_has_record(back), 0);
    assert_memory_equal(back->params, net->params, sizeof(float) * net->nparams);
    avemo_net_free(back);
    /* has_record 1 with 2^40 entries in a small file */
    uint32_t has = 1;
    uint64_t huge = (uint64_t)1 << 40;
    memcpy(data + at, &has, 4);
    memcpy(data + at + 4, &huge, 8);
    fix_crc(data, size);
    write_bytes("bad-record.avm", data, size);
    expect_load_error("bad-record.avm", AVEMO_ERR_CORRUPT, "inconsistent");
    free(v1);
    free(data);
    avemo_net_free(net);
}

/* Transfer learning: the audio branch of a dual-stream model into an audio-only network. */
static void test_load_params_into_branch(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *dual = make_net(PIPE("cremad-av"), 21);
    save_or_fail(dual, "dual.avm");
    avemo_net *audio = make_net(PIPE("audio-mfcc"), 22);
    float *before = malloc(sizeof(float) * audio->nparams);
    memcpy(before, audio->params, sizeof(float) * audio->nparams);
    int copied = 0;
    if (avemo_net_load_params(audio, "dual.avm", "audio.", &copied, &err)) fail_msg("%s", err.message);
    assert_int_equal(copied, 7); /* 3 conv, 3 batch norm, 1 dense */
    for (int i = 0; i < audio->nlayers; i++) {
        const struct nn_layer *l = &audio->layers[i], *s = &dual->layers[i];
        size_t n = l->w_n + l->b_n;
        if (!n) continue;
        if (strncmp(l->name, "audio.", 6) == 0) {
            assert_string_equal(l->name, s->name); /* the audio branch comes first in both */
            assert_memory_equal(audio->params + l->w_off, dual->params + s->w_off, sizeof(float) * n);
            if (l->op == NN_BN)
                assert_memory_equal(audio->stats + l->s_off, dual->stats + s->s_off, sizeof(float) * 2 * l->in_c);
        } else {
            assert_memory_equal(audio->params + l->w_off, before + l->w_off, sizeof(float) * n); /* head kept */
        }
    }
    /* The dual head takes 256 inputs, the audio-only head 128: refused, net unchanged. */
    memcpy(before, audio->params, sizeof(float) * audio->nparams);
    assert_int_equal(avemo_net_load_params(audio, "dual.avm", "head.", &copied, &err), AVEMO_ERR_MISMATCH);
    printf("%s\n", err.message);
    assert_non_null(strstr(err.message, "head.0"));
    assert_memory_equal(audio->params, before, sizeof(float) * audio->nparams);
    assert_int_equal(avemo_net_load_params(audio, "dual.avm", "nothing.", &copied, &err), AVEMO_ERR_NOT_FOUND);
    free(before);
    avemo_net_free(audio);
    avemo_net_free(dual);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_is_zlib),
        cmocka_unit_test(test_round_trip_bit_identical),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_magic_and_version),
        cmocka_unit_test(test_parameter_count_mismatch),
        cmocka_unit_test(test_crafted_damage),
        cmocka_unit_test(test_load_params_into_branch),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_load_inference),
        cmocka_unit_test(test_version1_and_bad_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
