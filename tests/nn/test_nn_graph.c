/* nn_graph: the [network] description: the shipped pipelines, and clear errors for bad ones. */
#include "common/testutil.h"
#include "nn/nn_internal.h"

#define PIPE(name) AVEMO_SOURCE_DIR "/pipelines/" name ".ini"

/* Parameters of conv(32)-bn, conv(64)-bn, conv(128)-bn, dense 128 on a branch with c channels. */
static size_t branch_params(size_t c)
{
    return (32 * c * 9 + 32) + 2 * 32 + (64 * 32 * 9 + 64) + 2 * 64 + (128 * 64 * 9 + 128) + 2 * 128 +
           (128 * 128 + 128);
}

static size_t head_params(size_t in)
{
    return (256 * in + 256) + 2 * 256 + (128 * 256 + 128) + 2 * 128 + (6 * 128 + 6);
}

static void test_shipped_pipelines(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net;
    if (avemo_net_create_file(PIPE("cremad-av"), &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(avemo_net_input_count(net), 2);
    const char *name;
    int c, h, w;
    assert_int_equal(avemo_net_input_shape(net, 0, &name, &c, &h, &w), 1 * 40 * 128);
    assert_string_equal(name, "audio");
    assert_int_equal(avemo_net_input_shape(net, 1, &name, &c, &h, &w), 3 * 64 * 64);
    assert_string_equal(name, "face");
    assert_int_equal(avemo_net_input_index(net, "face"), 1);
    assert_int_equal(avemo_net_input_index(net, "video"), -1);
    assert_int_equal(avemo_net_classes(net), 6);
    assert_int_equal(net->nparams, branch_params(1) + branch_params(3) + head_params(256));
    assert_int_equal(net->nlayers, 16 + 16 + 9); /* the head's softmax is the loss's */
    char desc[96];
    avemo_net_layer_describe(net, 8, desc, sizeof desc);
    assert_string_equal(desc, "conv 128 3 same -> 128x10x32");
    avemo_net_layer_describe(net, 16 + 11, desc, sizeof desc);
    assert_string_equal(desc, "maxpool 2 -> 128x8x8");
    assert_string_equal(avemo_net_layer_name(net, 32), "head.0");
    assert_string_equal(avemo_net_label(net, 3), "HAP");
    avemo_net_free(net);

    if (avemo_net_create_file(PIPE("audio-mfcc"), &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(net->nparams, branch_params(1) + head_params(128));
    avemo_net_free(net);
    if (avemo_net_create_file(PIPE("face-fer"), &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(net->nparams, branch_params(3) + head_params(128));
    avemo_net_free(net);
}

static void test_syntax_variants(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net;
    /* Other modules' sections are ignored; comments; continuation lines; valid / stride / flatten. */
    const char *text = "[audio]\nsample_rate = 16000\n"
                       "[network]\n; a comment\ninputs = x:2x9x9\nclasses = 3\nfusion = concat\n"
                       "[branch.x]\nlayers = conv 4 3 valid stride 2,\n   bn, relu,\n   flatten ; inline comment\n"
                       "[head]\nlayers = dense 3\n";
    if (avemo_net_create(text, "variants", &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(net->nlayers, 5);
    assert_int_equal(net->layers[0].out_h, 4);
    assert_int_equal(net->concat_size, 4 * 4 * 4);
    assert_null(avemo_net_label(net, 0));
    avemo_net_free(net);
}

#define NET(inputs, branch, head) "[network]\ninputs = " inputs "\n[branch.x]\nlayers = " branch "\n[head]\nlayers = " head "\n"

/* seq and lstm: shapes, parameter counts, the sequence flag, the shipped CNN-LSTM. */
static void test_sequences(void **state)
{
    (void)state;
    struct avemo_error err;
    avemo_net *net;
    char desc[96];
    const char *text = "[network]\ninputs = x:2x3x7\n[branch.x]\nlayers = seq, lstm 6 seq bidirectional, dropout 0.2, "
                       "relu, lstm 5\n[head]\nlayers = dense 3\n";
    if (avemo_net_create(text, "seq", &net, &err)) fail_msg("%s", err.message);
    avemo_net_layer_describe(net, 0, desc, sizeof desc);
    assert_string_equal(desc, "seq -> 7x6x1"); /* 7 steps of 2 * 3 features */
    avemo_net_layer_describe(net, 1, desc, sizeof desc);
    assert_string_equal(desc, "lstm 6 seq bidirectional -> 7x12x1");
    avemo_net_layer_describe(net, 4, desc, sizeof desc);
    assert_string_equal(desc, "lstm 5 -> 5x1x1");
    assert_true(net->layers[3].in_seq && net->layers[4].in_seq && !net->layers[4].out_seq);
    /* PyTorch's nn.LSTM: 4H(I + H + 2) per direction */
    assert_int_equal(avemo_net_layer_params(net, 1, NULL), 2 * 4 * 6 * (6 + 6 + 2));
    assert_int_equal(avemo_net_layer_params(net, 4, NULL), 4 * 5 * (12 + 5 + 2));
    assert_int_equal(net->concat_size, 5);
    avemo_net_free(net);
    /* A sequence output is flattened at the end of a branch. */
    if (avemo_net_create(NET("x:1x4x9", "seq, lstm 3 seq", "dense 2"), "seqout", &net, &err)) fail_msg("%s", err.message);
    assert_int_equal(net->concat_size, 9 * 3);
    avemo_net_free(net);
    if (avemo_net_create_file(PIPE("ser-mfcc-cnnlstm"), &net, &err)) fail_msg("%s", err.message);
    avemo_net_layer_describe(net, 12, desc, sizeof desc);
    assert_string_equal(desc, "seq -> 31x640x1");
    avemo_net_layer_describe(net, 13, desc, sizeof desc);
    assert_string_equal(desc, "lstm 128 -> 128x1x1");
    assert_int_equal(avemo_net_layer_params(net, 13, NULL), 4 * 128 * (640 + 128 + 2));
    assert_int_equal(avemo_net_classes(net), 8);
    avemo_net_free(net);
}

static void expect_config_error(const char *text, enum avemo_status want, const char *words)
{
    struct avemo_error err;
    avemo_net *net = NULL;
    enum avemo_status st = avemo_net_create(text, "bad.ini", &net, &err);
    printf("%s\n", st ? err.message : "(accepted)");
    assert_null(net);
    assert_int_equal(st, want);
    assert_non_null(strstr(err.message, "bad.ini"));
    assert_non_null(strstr(err.message, words));
}


static void test_errors(void **state)
{
    (void)state;
    const enum avemo_status CFG = AVEMO_ERR_CONFIG;
    expect_config_error(NET("x:1x8x8", "conv 4 3 same, bnx", "dense 2"), CFG, "unknown layer 'bnx'");
    expect_config_error(NET("x:1x8x8", "conv 4 3 same, bnx", "dense 2"), CFG, "[branch.x] layer 2");
    expect_config_error(NET("x:1x8x8", "conv 0 3", "dense 2"), CFG, "FILTERS");
    expect_config_error(NET("x:1x8x8", "conv 4 99", "dense 2"), CFG, "KERNEL");
    expect_config_error(NET("x:1x8x8", "conv 4 3 sideways", "dense 2"), CFG, "unexpected 'sideways'");
    expect_config_error(NET("x:1x8x8", "dropout 1.5", "dense 2"), CFG, "probability '1.5'");
    expect_config_error(NET("x:1x8x8", "dense many", "dense 2"), CFG, "units 'many'");
    expect_config_error(NET("x:1x8x8", "relu 3", "dense 2"), CFG, "wrong number of arguments");
    expect_config_error(NET("x:1x3x3", "conv 4 5 valid", "dense 2"), CFG, "smaller than the kernel");
    expect_config_error(NET("x:1x8x8", "maxpool 2, maxpool 2, maxpool 2, maxpool 2", "dense 2"), CFG,
                        "smaller than the pool");
    expect_config_error(NET("x:1x8x8", "gap", "dense 2, relu"), CFG, "must end with 'dense CLASSES'");
    expect_config_error(NET("x:1x8x8", "gap", "dense 1"), CFG, "1 outputs");
    expect_config_error(NET("x:1x8", "gap", "dense 2"), CFG, "not NAME:CxHxW");
    expect_config_error(NET("x:1x5000x5000", "gap", "dense 2"), CFG, "not NAME:CxHxW");
    expect_config_error(NET("y:1x8x8", "gap", "dense 2"), CFG, "no [branch.y]");
    expect_config_error(NET("x:1x8x8, x:1x8x8", "gap", "dense 2"), CFG, "listed twice");
    expect_config_error("[network]\ninputs = x:1x8x8\n[branch.x]\nlayers = gap\n", CFG, "no [head]");
    expect_config_error("[network]\ninputs = x:1x8x8\nsize = 3\n[branch.x]\nlayers = gap\n[head]\nlayers = dense 2\n",
                        CFG, "unknown key 'size'");
    expect_config_error("[network]\ninputs = x:1x8x8\nclasses = 3\n[branch.x]\nlayers = gap\n[head]\nlayers = dense 2\n",
                        CFG, "3 classes");
    expect_config_error("[network]\ninputs = x:1x8x8\nlabels = a, b, c\n[branch.x]\nlayers = gap\n[head]\n"
                        "layers = dense 2\n", CFG, "3 names for 2 classes");
    expect_config_error("[network]\ninputs = x:1x8x8\n[branch.x]\nlayers = gap\n[branch.z]\nlayers = gap\n[head]\n"
                        "layers = dense 2\n", CFG, "[branch.z] is not one of");
    expect_config_error("[network]\ninputs = x:1x8x8\nfusion = sum\n[branch.x]\nlayers = gap\n[head]\nlayers = dense 2\n",
                        CFG, "only 'concat'");
    expect_config_error("[network\ninputs = x:1x8x8\n", CFG, "line 1");
    /* Sequences. */
    expect_config_error(NET("x:1x8x8", "conv 2 3 same, lstm 4", "dense 2"), CFG, "not a sequence: put 'seq'");
    expect_config_error(NET("x:1x8x8", "seq, lstm 0", "dense 2"), CFG, "HIDDEN in 1..4096");
    expect_config_error(NET("x:1x8x8", "seq, lstm", "dense 2"), CFG, "wrong number of arguments");
    expect_config_error(NET("x:1x8x8", "seq, lstm 4 backwards", "dense 2"), CFG, "unexpected 'backwards'");
    expect_config_error(NET("x:1x8x8", "seq, lstm 4 seq, conv 2 3", "dense 2"), CFG, "is a sequence");
    expect_config_error(NET("x:1x8x8", "seq, maxpool 2", "dense 2"), CFG, "is a sequence");
    expect_config_error(NET("x:1x8x8", "seq, seq", "dense 2"), CFG, "[branch.x] layer 2 'seq'");
    expect_config_error(NET("x:1x8x8", "seq 2", "dense 2"), CFG, "wrong number of arguments");
    expect_config_error(NET("x:1x8x8", "seq, dense 4, lstm 3", "dense 2"), CFG, "not a sequence");
    expect_config_error(NET("x:1x4x4000", "seq, lstm 4000 bidirectional", "dense 2"), CFG, "floats per sample");
    /* Caps: layers per branch, activations, parameters. */
    char text[8192] = "[network]\ninputs = x:1x8x8\n[head]\nlayers = dense 2\n[branch.x]\nlayers = gap";
    for (int i = 0; i < 70; i++) strcat(text, ",\n relu");
    strcat(text, "\n");
    expect_config_error(text, CFG, "more than 64 layers");
    expect_config_error(NET("x:1x1024x1024", "conv 64 3 same", "dense 2"), CFG, "larger than the limit");
    expect_config_error(NET("x:64x64x64", "flatten, dense 4096", "dense 2"), AVEMO_ERR_TOO_LARGE,
                        "more than 67108864 parameters");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_pipelines),
        cmocka_unit_test(test_syntax_variants),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
