/* avemo export MODEL --onnx OUT.onnx [--seed N] */
#include "cli/cli.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char export_usage[] =
    "usage: avemo export MODEL --onnx OUT.onnx [--seed N]\n"
    "  Write a model's network as an ONNX model (opset 13) for other runtimes.\n"
    "  MODEL          a model file (.avm), or a pipeline (.ini): its network untrained, with\n"
    "                 weights drawn from --seed (to check a pipeline's export)\n"
    "  --onnx OUT     the ONNX file to write\n"
    "  --seed N       seed of an untrained pipeline's weights (default 1)\n"
    "  Inputs: one per branch, named after it (e.g. audio [N,1,40,128], face [N,1,64,64]), the\n"
    "  normalised features avemo computes; outputs: logits and probabilities [N, classes].";

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int run_export(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"onnx", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    unsigned long long seed = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:s:", longopts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'o': out = optarg; break;
        case 's':
            if (avemo_parse_long(optarg, 0, LONG_MAX, &v)) {
                fprintf(stderr, "avemo export: --seed '%s' is not a non-negative integer\n", optarg);
                return CLI_EXIT_USAGE;
            }
            seed = (unsigned long long)v;
            break;
        default: fprintf(stderr, "%s\n", export_usage); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "avemo export: %s\n%s\n", !out ? "--onnx OUT is required" : "expected one MODEL",
                export_usage);
        return CLI_EXIT_USAGE;
    }
    const char *model = argv[optind];
    struct avemo_error err = {0};
    avemo_net *net = NULL;
    const int pipeline = ends_with(model, ".ini");
    if (pipeline ? avemo_net_create_file(model, &net, &err) : avemo_net_load(model, &net, &err))
        return cli_report(&err);
    if (pipeline) avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, seed);
    int rc = avemo_net_export_onnx(net, out, &err) ? cli_report(&err) : CLI_EXIT_OK;
    if (rc == CLI_EXIT_OK && !cli_quiet())
        fprintf(stderr, "avemo export: wrote %s (%d input%s, %d classes%s)\n", out, avemo_net_input_count(net),
                avemo_net_input_count(net) == 1 ? "" : "s", avemo_net_classes(net),
                pipeline ? ", untrained weights" : "");
    avemo_net_free(net);
    return rc;
}

const struct cli_command cli_cmd_export = {
    "export", "write a model's network as ONNX", export_usage, run_export, 0,
};
