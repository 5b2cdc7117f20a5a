/* avemo merge OUT SHARD... */
#include "cli/cli.h"

static const char merge_usage[] =
    "usage: avemo merge OUT SHARD...\n"
    "  Join the outputs of the shards of a batch run (classify, features --shard I/N) into OUT:\n"
    "  JSON lines one after the other, a CSV with one header, .npy stacked along the first axis.\n"
    "  Files named ...-IIIII-of-NNNNN... are put in shard order and every shard must be given,\n"
    "  so `avemo merge all.jsonl out/classify-*` gives exactly the output of one process.";

static int run_merge(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "%s\n", merge_usage);
        return CLI_EXIT_USAGE;
    }
    struct avemo_error err = {0};
    if (avemo_merge((const char *const *)argv + 2, argc - 2, argv[1], &err)) return cli_report(&err);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_merge = {
    "merge", "join the outputs of a sharded batch run (JSON lines, CSV, .npy)", merge_usage, run_merge,
};
