/* avemo ensemble OUT.avm MODEL.avm MODEL.avm... */
#include "cli/cli.h"

#include <avemo/model.h>
#include <stdio.h>

static const char ensemble_usage[] =
    "usage: avemo ensemble OUT.avm MODEL.avm MODEL.avm...\n"
    "  Join 2 to 8 models of one recipe (e.g. trained with other seeds) into one model file whose\n"
    "  answers are the mean of their probabilities.  They must have the same network, classes and\n"
    "  inputs; the first model's settings, arrays and card fields are kept, its temperature reset\n"
    "  (fit the ensemble's own: avemo calibrate OUT.avm --data ...).  The training record is the\n"
    "  union of theirs, so avemo eval leaves out every file any of them was trained on.\n"
    "  A classification costs one network pass per model; avemo export writes them all to ONNX.";

static int run_ensemble(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] == '-' && argv[1][1])
        return cli_usage_error("ensemble", "unknown option '%s' (ensemble takes no options)", argv[1]);
    if (argc < 4) return cli_usage_error("ensemble", "expected OUT.avm and at least two MODEL.avm");
    struct avemo_error err = {0};
    int members = 0;
    if (avemo_model_ensemble((const char *const *)argv + 2, argc - 2, argv[1], &members, &err))
        return cli_report(&err);
    if (!cli_quiet()) fprintf(stderr, "avemo ensemble: wrote %s (%d networks)\n", argv[1], members);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_ensemble = {
    "ensemble", "join models of one recipe into an ensemble", ensemble_usage, run_ensemble,
};
