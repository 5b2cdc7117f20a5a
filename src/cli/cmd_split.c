/* avemo split PIPELINE.ini --data DIR... --out SPLIT.txt [--set train.fold=K] [--leave-out DIR]
 * avemo split MODEL.avm --record --data DIR... [--split SPLIT.txt] [--from M.avm]... */
#include "cli/cli.h"

#include <avemo/train.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char split_usage[] =
    "usage: avemo split PIPELINE.ini --data DIR|LIST.csv [--data ...] --out SPLIT.txt [--set train.KEY=VALUE]...\n"
    "                   [--leave-out DIR|LIST.csv]\n"
    "       avemo split MODEL.avm --record --data DIR|LIST.csv [--data ...] [--split SPLIT.txt] [--from M.avm]...\n"
    "  Write the train/validation/test split that `avemo train` makes for this pipeline and data\n"
    "  (its [labels] and [train] split, folds, fold, seed), for `--split` in train, eval and compare.\n"
    "  --leave-out D (one of the --data): leave that corpus out: all of it is the test part, the\n"
    "  other corpora train (and validate, as the pipeline says): a leave-one-corpus-out split.\n"
    "  --record: give a model trained without a training record (model files before version 2) the\n"
    "  record of what it was trained on: the training and validation files of --split SPLIT.txt\n"
    "  (default: the split its stored pipeline makes of the data, as `avemo train` without --split),\n"
    "  by SHA-256, plus the records of the models it started from (--from: its `train --init`\n"
    "  models).  MODEL.avm is rewritten with the record; `avemo eval` and `avemo compare` then leave\n"
    "  those files out.  `avemo train` records this itself.";

/* avemo split MODEL.avm --record ... */
static int attach_record(const char *model, const char *const *data, int ndata, const char *split,
                         const char *const *from, int nfrom)
{
    struct avemo_error err = {0};
    size_t counts[2];
    if (avemo_record_attach(model, data, ndata, split, from, nfrom, counts, &err)) return cli_report(&err);
    printf("%s: training record of %zu training and %zu validation files (SHA-256) attached\n", model, counts[0],
           counts[1]);
    return CLI_EXIT_OK;
}

/* --leave-out names one of the --data however it is spelt (../shared/data/emodb/ and
 * /work/shared/data/emodb are one corpus): the same device and inode, or the same text when
 * either does not exist. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

static int run_split(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'}, {"out", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, 'x'},  {"leave-out", required_argument, NULL, 'l'},
        {"record", no_argument, NULL, 'R'},     {"split", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0},
    };
    const char *data[32], *sets[16], *from[8], *out = NULL, *leave_out = NULL, *split = NULL;
    int ndata = 0, nsets = 0, nfrom = 0, record = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:x:l:", longopts, NULL)) != -1) {
        if (c == '?') return CLI_EXIT_USAGE; /* getopt said why */
        if ((c == 'd' && ndata == 32) || (c == 'f' && nfrom == 8) || (c == 'x' && nsets == 16))
            return cli_usage_error("split", "at most 32 --data, 8 --from and 16 --set");
        if (c == 'd') data[ndata++] = optarg;
        else if (c == 'R') record = 1;
        else if (c == 's') split = optarg;
        else if (c == 'f') from[nfrom++] = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'l') leave_out = optarg;
        else sets[nsets++] = optarg;
    }
    if (record && optind == argc - 1 && ndata > 0 && !out && !leave_out && nsets == 0)
        return attach_record(argv[optind], data, ndata, split, from, nfrom);
    if (record || split || nfrom)
        return cli_usage_error("split", "--record, --split and --from attach a record: MODEL.avm --record --data D... "
                               "(no --out, --leave-out or --set)");
    if (optind != argc - 1 || !out || ndata == 0)
        return cli_usage_error("split", "%s", optind == argc ? "no PIPELINE.ini given" : optind < argc - 1 ? "one PIPELINE.ini"
                               : !out ? "no --out SPLIT.txt given" : "no --data given");
    int left_out = -1;
    for (int i = 0; leave_out && i < ndata; i++)
        if (same_file(data[i], leave_out)) left_out = i;
    if (leave_out && left_out < 0) return cli_usage_error("split", "--leave-out %s: not one of the --data given", leave_out);
    struct avemo_error err = {0};
    uint8_t *text = NULL;
    size_t size;
    struct avemo_pipeline p;
    if (avemo_read_file(argv[optind], 1 << 16, &text, &size, &err) ||
        avemo_pipeline_parse((const char *)text, argv[optind], &p, &err)) {
        free(text);
        return cli_report(&err);
    }
    free(text);
    for (int i = 0; i < nsets; i++) {
        char sec[32], key[64];
        const char *eq = strchr(sets[i], '=');
        if (!eq || sscanf(sets[i], "%31[^.].%63[^=]", sec, key) != 2)
            return cli_usage_error("split", "--set '%s': expected section.key=value", sets[i]);
        if (avemo_pipeline_set(&p, sec, key, eq + 1, argv[optind], &err)) return cli_report(&err);
    }
    struct avemo_dataset ds = {0};
    struct avemo_split sp = {0};
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < ndata && !rc; i++)
        if (avemo_dataset_add(&ds, data[i], &p.labels, &err)) rc = cli_report(&err);
    if (!rc && (avemo_split_for_pipeline(&ds, &p.train, &sp, &err) ||
                (left_out >= 0 && avemo_split_leave_out(&ds, &sp, left_out, &err)) ||
                avemo_split_save(&ds, &sp, out, &err)))
        rc = cli_report(&err);
    if (!rc) {
        size_t n[3];
        for (int k = 0; k < 3; k++) free(avemo_split_indices(&sp, k, &n[k]));
        printf("%s: %zu train, %zu validation, %zu test\n", out, n[0], n[1], n[2]);
    }
    avemo_split_free(&sp);
    avemo_dataset_free(&ds);
    return rc;
}

const struct cli_command cli_cmd_split = {
    "split", "write the train/validation/test split of a pipeline's data", split_usage, run_split, 0,
};
