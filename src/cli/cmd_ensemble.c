/* avemo ensemble OUT.avm MODEL.avm MODEL.avm...  |  avemo ensemble --member K ENSEMBLE.avm OUT.avm */
#include "cli/cli.h"

#include <avemo/model.h>
#include <avemo/nn.h>
#include <getopt.h>
#include <stdio.h>

static const char ensemble_usage[] =
    "usage: avemo ensemble OUT.avm MODEL.avm MODEL.avm...\n"
    "       avemo ensemble --member K ENSEMBLE.avm OUT.avm\n"
    "  Join 2 to 8 models of one recipe (e.g. trained with other seeds) into one model file whose\n"
    "  answers are the mean of their probabilities.  They must have the same network, classes and\n"
    "  inputs; the first model's settings, arrays and card fields are kept, its temperature reset\n"
    "  (fit the ensemble's own: avemo calibrate OUT.avm --data ...).  The training record is the\n"
    "  union of theirs, so avemo eval leaves out every file any of them was trained on.\n"
    "  A classification costs one network pass per model; avemo export writes them all to ONNX.\n"
    "  An ensemble given after the first model is refused: take its members out first.\n"
    "  --member K   write member K (0 = the first model joined) of ENSEMBLE as a model of its own,\n"
    "               with the ensemble's settings, arrays and training record; temperature reset to 1";

/* --member K ENSEMBLE OUT: argv[optind] and argv[optind + 1] */
static int write_member(int k, char **files, int nfiles)
{
    if (nfiles != 2) return cli_usage_error("ensemble", "--member takes ENSEMBLE.avm and OUT.avm");
    struct avemo_error err = {0};
    if (avemo_model_ensemble_member(files[0], k, files[1], &err)) return cli_report(&err);
    if (!cli_quiet()) fprintf(stderr, "avemo ensemble: wrote %s (member %d of %s)\n", files[1], k, files[0]);
    return CLI_EXIT_OK;
}

static int run_ensemble(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"member", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int c, member = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:", longopts, NULL)) != -1) {
        if (c == '?') return CLI_EXIT_USAGE; /* getopt said why */
        if (cli_int_arg("ensemble", "--member", optarg, 0, AVEMO_NN_MAX_MEMBERS - 1, &member)) return CLI_EXIT_USAGE;
    }
    if (member >= 0) return write_member(member, argv + optind, argc - optind);
    if (argc - optind < 3) return cli_usage_error("ensemble", "expected OUT.avm and at least two MODEL.avm");
    struct avemo_error err = {0};
    int members = 0;
    if (avemo_model_ensemble((const char *const *)argv + optind + 1, argc - optind - 1, argv[optind], &members, &err))
        return cli_report(&err);
    if (!cli_quiet()) fprintf(stderr, "avemo ensemble: wrote %s (%d networks)\n", argv[optind], members);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_ensemble = {
    "ensemble", "join models of one recipe into an ensemble", ensemble_usage, run_ensemble, 0,
};
