/* avemo merge OUT SHARD... */
#include "cli/cli.h"

#include <avemo/eval.h>
#include <stdlib.h>
#include <string.h>

static const char merge_usage[] =
    "usage: avemo merge OUT SHARD...\n"
    "       avemo merge --metrics OUT.json|- EVAL_SHARD...\n"
    "  Join the outputs of the shards of a batch run (classify, features --shard I/N) into OUT:\n"
    "  JSON lines one after the other, a CSV with one header, .npy stacked along the first axis.\n"
    "  Files named ...-IIIII-of-NNNNN... are put in shard order and every shard must be given,\n"
    "  so `avemo merge all.jsonl out/classify-*` gives exactly the output of one process.\n"
    "  --metrics: the metrics of the units of `avemo eval --shard` outputs, as `avemo eval --json`\n"
    "  prints them (OUT '-': standard output).  The outputs may come from several models: the\n"
    "  folds of a cross-validation, each fold's model on its own test part (--shard 0/1), pool\n"
    "  into one report per --data.  Every output must have the same --data list; a file that is\n"
    "  a unit of two outputs is refused.";

static int merge_metrics(const char *out, char **inputs, int n)
{
    struct avemo_error err = {0};
    struct avemo_eval_set set;
    if (avemo_eval_merge((const char *const *)inputs, n, &set, &err)) return cli_report(&err);
    char *json = avemo_eval_set_json(&set, 0);
    avemo_eval_free(&set);
    FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
    int ok = f && json && fprintf(f, "%s\n", json) > 0;
    if (f && f != stdout && fclose(f) != 0) ok = 0;
    free(json);
    if (!ok) fprintf(stderr, "avemo merge: %s: cannot write\n", out);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int run_merge(int argc, char **argv)
{
    int metrics = argc > 1 && strcmp(argv[1], "--metrics") == 0;
    if (metrics && argc < 4) return cli_usage_error("merge", "--metrics needs OUT.json (or -) and at least one EVAL_SHARD");
    if (metrics) return merge_metrics(argv[2], argv + 3, argc - 3);
    if (argc > 1 && argv[1][0] == '-' && argv[1][1])
        return cli_usage_error("merge", "unknown option '%s' (the only one is --metrics, first)", argv[1]);
    if (argc < 3) return cli_usage_error("merge", "expected OUT and at least one SHARD output");
    struct avemo_error err = {0};
    if (avemo_merge((const char *const *)argv + 2, argc - 2, argv[1], &err)) return cli_report(&err);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_merge = {
    "merge", "join the outputs of a sharded batch run (JSON lines, CSV, .npy)", merge_usage, run_merge, 0,
};
