/* Options shared by `avemo eval` and `avemo compare`. */
#ifndef AVEMO_CLI_EVAL_COMMON_H
#define AVEMO_CLI_EVAL_COMMON_H

#include <avemo/eval.h>

struct cli_eval_args {
    const char *models[8];
    int nmodels;
    const char *data[32];
    int json;
    const char *report_dir;
    const char *overrides[16];
    struct avemo_eval_options opt;
    const char *shard_text, *out_dir;   /* eval --shard I/N --out DIR */
};

/* Parse MODEL... --data D... [--split F] [--json] [--report DIR] [--cache F] [--set S.K=V]...; 0 on success,
 * else a usage error said why (argv[0] is the command's name). */
int cli_parse_eval_args(int argc, char **argv, int max_models, struct cli_eval_args *a);
/* Write report.txt, metrics.json and confusion.png of result r into dir (prefix names the model). */
int cli_write_report(const char *dir, const char *prefix, const struct avemo_eval_result *r);

#endif
