/* avemo eval MODEL --data DIR [--split FILE] [--part P] [--json] [--report DIR] [--reliability PNG]
 *            [--fusion auto|head|late] [--with MODEL]... [--cache F] [--set S.K=V] [--shard I/N --out DIR] */
#include "cli/cli.h"
#include "cli/eval_common.h"

#include <stdlib.h>

static const char eval_usage[] =
    "usage: avemo eval MODEL.avm --data DIR|LIST.csv [--data ...] [--split FILE] [--part P] [--json]\n"
    "                  [--report DIR] [--reliability FILE.png] [--fusion F] [--with A.avm --with F.avm]\n"
    "                  [--cache F] [--set S.K=V]... [--shard I/N --out DIR]\n"
    "  Measure a model on labelled data: accuracy, unweighted accuracy, per-class precision,\n"
    "  recall and F1, confusion matrix.  With several --data, each one is also reported on its own\n"
    "  (cross-corpus evaluation); files that cannot be read are named and skipped.\n"
    "  Test files the model was trained or validated on (the SHA-256 of each file is in the\n"
    "  training record of its model file) are left out and counted, and the command refuses when\n"
    "  nothing is left; a model without a record (older files) is evaluated with a note.\n"
    "  Calibration: the expected calibration error (ECE, 15 equal-width bins of the top probability),\n"
    "  the NLL and the reliability table are reported.\n"
    "  --split FILE   only the split's test part (or --part)\n"
    "  --part test|validation|train   the split's part measured (default: test)\n"
    "  --json         the metrics as JSON\n"
    "  --report DIR   write report.txt, metrics.json and confusion.png\n"
    "  --reliability FILE.png   draw the reliability diagram\n"
    "  --fusion auto|head|late   what an av model is measured as: auto (default) what `avemo classify`\n"
    "                 answers with it (late when the file selects it), head its network, late the\n"
    "                 late fusion of the audio and face models with the weights it stores\n"
    "  --with MODEL   the audio and the face model of late fusion (twice; default the shipped ones)\n"
    "  --cache F      keep the extracted features\n"
    "  --set SEC.KEY=VAL   change an inference setting of the model's stored pipeline for this run,\n"
    "                 e.g. --set face.mirror_test=yes (average each face with its mirror image); repeatable\n"
    "  --shard I/N --out DIR   evaluate the I-th of N blocks of the data's items (default: from\n"
    "                 SLURM_ARRAY_TASK_ID/..._COUNT or JOB_COMPLETION_INDEX/AVEMO_SHARD_COUNT) into\n"
    "                 DIR/eval-IIIII-of-NNNNN.jsonl; `avemo merge --metrics OUT.json DIR/eval-*` gives\n"
    "                 the metrics (equal to one process, label-matched pairs included: they are drawn\n"
    "                 over all the items).  Shards measure the network (--fusion head).";

/* This task's shard of the evaluation into a.out_dir. */
static int eval_shard(const struct cli_eval_args *a)
{
    struct avemo_error err = {0};
    struct avemo_shard shard;
    int done = 0;
    if ((a->shard_text ? avemo_shard_parse(a->shard_text, &shard, &err) : avemo_shard_from_env(&shard, &err)) ||
        avemo_eval_shard(a->models[0], &a->opt, &shard, a->out_dir, &done, &err))
        return cli_report(&err);
    if (!cli_quiet())
        fprintf(stderr, "avemo eval: shard %d/%d %s in %s\n", shard.index, shard.count,
                done ? "was done before" : "done", a->out_dir);
    return CLI_EXIT_OK;
}

/* The options eval takes (src/cli/eval_common.c parses them). */
static const struct option eval_options[] = {
    {"data", required_argument, NULL, 'd'},   {"split", required_argument, NULL, 's'},
    {"part", required_argument, NULL, 'P'},   {"json", no_argument, NULL, 'j'},
    {"report", required_argument, NULL, 'r'}, {"reliability", required_argument, NULL, 'R'},
    {"fusion", required_argument, NULL, 'F'}, {"with", required_argument, NULL, 'W'},
    {"cache", required_argument, NULL, 'c'},  {"set", required_argument, NULL, 'S'},
    {"shard", required_argument, NULL, 'x'},  {"out", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

static int run_eval(int argc, char **argv)
{
    struct cli_eval_args a;
    if (cli_parse_eval_command(argc, argv, CLI_EVAL, eval_options, &a)) return CLI_EXIT_USAGE;
    if (a.shard_text && !a.out_dir) return cli_usage_error("eval", "--shard needs --out DIR");
    if (a.out_dir && a.fusion_given && a.fusion != AVEMO_FUSION_HEAD)
        return cli_usage_error("eval", "--shard measures the model's network: --fusion %s needs one process",
                               a.fusion == AVEMO_FUSION_LATE ? "late" : "auto");
    if (a.out_dir) return eval_shard(&a);
    if (!a.fusion_given) a.fusion = AVEMO_FUSION_AUTO; /* the figure is what classify would answer */
    struct avemo_eval_set set;
    int shown, rc = cli_evaluate_as_classified(&a, 0, &set, &shown, NULL, NULL);
    if (rc) return rc;
    const struct avemo_eval_result *r = &set.results[shown];
    if (a.json) {
        char *json = avemo_eval_set_json(&set, shown);
        printf("%s\n", json ? json : "{}");
        free(json);
    } else {
        char *text = avemo_eval_set_report(&set, shown);
        printf("%s", text ? text : "");
        free(text);
    }
    rc = a.report_dir ? cli_write_report(a.report_dir, "", r) : CLI_EXIT_OK;
    if (!rc && a.reliability_png) rc = cli_write_reliability(&set, shown, a.reliability_png);
    avemo_eval_free(&set);
    return rc;
}

const struct cli_command cli_cmd_eval = {
    "eval", "measure a model on labelled data (accuracy, F1, confusion matrix)", eval_usage, run_eval, 0,
};
