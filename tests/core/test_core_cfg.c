/* The configuration object (src/core/cfg.c): a pipeline text read once, typed getters with one
 * message format, SECTION.KEY=VALUE changes applied to the entries, and the shared number parser. */
#include "common/testutil.h"

#include <avemo/core.h>

static const char *const text = "; a pipeline\n"
                                "[train]\n"
                                "epochs = 30\n"
                                "lr = 0.002\n"
                                "optimizer = adamw\n"
                                "\n"
                                "[branch.audio]\n"
                                "layers = conv 8 3, relu,\n"
                                "         gap, dense 4\n";

static void test_getters(void **state)
{
    (void)state;
    avemo_cfg *cfg;
    struct avemo_error err = {0};
    assert_int_equal(avemo_cfg_parse(text, 4096, "p.ini", &cfg, &err), AVEMO_OK);
    int epochs = 0, batch = 32, opt = -1;
    double lr = 0;
    assert_int_equal(avemo_cfg_int(cfg, "train", "epochs", 1, 100000, &epochs, &err), AVEMO_OK);
    assert_int_equal(epochs, 30);
    assert_int_equal(avemo_cfg_int(cfg, "train", "batch", 1, 1024, &batch, &err), AVEMO_OK); /* absent: unchanged */
    assert_int_equal(batch, 32);
    assert_int_equal(avemo_cfg_double(cfg, "train", "lr", 1e-8, 10, &lr, &err), AVEMO_OK);
    assert_true(lr == 0.002);
    const char *const kinds[] = {"adam", "adamw", "sgd", NULL};
    assert_int_equal(avemo_cfg_choice(cfg, "train", "optimizer", kinds, &opt, &err), AVEMO_OK);
    assert_int_equal(opt, 1);
    /* one message format: file, line, section, key, value and what was expected */
    assert_int_equal(avemo_cfg_int(cfg, "train", "epochs", 1, 10, &epochs, &err), AVEMO_ERR_CONFIG);
    assert_string_equal(err.message, "p.ini:3: [train] epochs = '30': expected a whole number in 1..10");
    assert_int_equal(avemo_cfg_choice(cfg, "train", "lr", kinds, &opt, &err), AVEMO_ERR_CONFIG);
    assert_string_equal(err.message, "p.ini:4: [train] lr = '0.002': expected one of adam|adamw|sgd");
    assert_string_equal(avemo_cfg_get(cfg, "branch.audio", "layers"), "conv 8 3, relu,");
    assert_null(avemo_cfg_get(cfg, "head", "layers"));
    avemo_cfg_free(cfg);
    assert_int_equal(avemo_cfg_parse("[train\nepochs = 3\n", 4096, "bad.ini", &cfg, &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "bad.ini: line 1"));
    assert_int_equal(avemo_cfg_parse(text, 16, "big.ini", &cfg, &err), AVEMO_ERR_TOO_LARGE);
}

static void test_assign(void **state)
{
    (void)state;
    avemo_cfg *cfg;
    struct avemo_error err = {0};
    assert_int_equal(avemo_cfg_parse(text, 4096, "p.ini", &cfg, &err), AVEMO_OK);
    /* a multi-line value is replaced as a whole; a new key joins its section; a new section ends the text */
    assert_int_equal(avemo_cfg_assign(cfg, "branch.audio.layers=gap, dense 6", &err), AVEMO_OK);
    assert_int_equal(avemo_cfg_assign(cfg, "train.batch=8", &err), AVEMO_OK);
    assert_int_equal(avemo_cfg_assign(cfg, "augment.flip=yes", &err), AVEMO_OK);
    assert_int_equal(avemo_cfg_assign(cfg, "epochs=3", &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "epochs=3"));
    char *out = avemo_cfg_text(cfg);
    assert_string_equal(out, "[train]\nepochs = 30\nlr = 0.002\noptimizer = adamw\nbatch = 8\n\n"
                             "[branch.audio]\nlayers = gap, dense 6\n\n[augment]\nflip = yes\n");
    avemo_cfg_free(cfg);
    /* the text written out reads back to the same entries */
    assert_int_equal(avemo_cfg_parse(out, 4096, "again.ini", &cfg, &err), AVEMO_OK);
    char *again = avemo_cfg_text(cfg);
    assert_string_equal(out, again);
    free(out);
    free(again);
    avemo_cfg_free(cfg);
}

static void test_numbers(void **state)
{
    (void)state;
    int v = 7;
    long l = 0;
    double d = 0;
    assert_int_equal(avemo_parse_int("42", 0, 100, &v), AVEMO_OK);
    assert_int_equal(v, 42);
    assert_int_equal(avemo_parse_int("-3", -5, 5, &v), AVEMO_OK);
    assert_int_equal(v, -3);
    /* no sign where negatives are out of range, no blanks, no trailing text, the range holds */
    const char *bad[] = {"-0", " 4", "4 ", "4x", "", "101", "0x10", "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        assert_int_equal(avemo_parse_int(bad[i], 0, 100, &v), AVEMO_ERR_INVALID_ARG);
        assert_int_equal(v, 7);
    }
    assert_int_equal(avemo_parse_long("9223372036854775807", 0, 9223372036854775807L, &l), AVEMO_OK);
    assert_int_equal(avemo_parse_long("9223372036854775808", 0, 9223372036854775807L, &l), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_parse_double("0.5", 0, 1, &d), AVEMO_OK);
    assert_true(d == 0.5);
    assert_int_equal(avemo_parse_double("nan", 0, 1, &d), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_parse_double("1.5", 0, 1, &d), AVEMO_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_assign),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
