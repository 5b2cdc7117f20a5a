/* Options shared by `avemo eval`, `avemo compare` and `avemo calibrate`. */
#ifndef AVEMO_CLI_EVAL_COMMON_H
#define AVEMO_CLI_EVAL_COMMON_H

#include <avemo/eval.h>
#include <getopt.h>

struct cli_eval_args {
    const char *models[8];
    int nmodels;
    const char *data[32];
    int json;
    const char *report_dir;
    const char *overrides[16];
    struct avemo_eval_options opt;
    const char *shard_text, *out_dir;   /* eval --shard I/N --out DIR; calibrate --out MODEL */
    /* eval and calibrate (src/cli/eval_common.c, cmd_calibrate.c) */
    const char *reliability_png;        /* --reliability FILE.png */
    enum avemo_fusion fusion;           /* --fusion auto|head|late */
    int fusion_given;
    const char *with[2];                /* --with MODEL: the audio and face models of late fusion */
    int nwith;
    double temperature;                 /* calibrate --temperature T (0: fit it) */
    double uncertain_below;             /* calibrate --uncertain-below P (-1: leave as is) */
    float late_weights[2];              /* calibrate --late-weights WA,WF (negative: none) */
    const char *prior;                  /* calibrate --prior C1,...,Ck: the class shares it learnt */
};

/* Which command parses: options are accepted by the commands that use them. */
enum cli_eval_command { CLI_EVAL, CLI_COMPARE, CLI_CALIBRATE };

/* Parse MODEL... --data D... and the options of longopts, the command's own table (the options
 * it takes and no other; its --help lists them, docs/avemo.1 and the completion follow it): -d -s
 * -j -r -c -S are --data --split --json --report --cache --set; 'R' --reliability, 'F' --fusion,
 * 'P' --part, 'W' --with, 'T' --temperature, 'U' --uncertain-below, 'L' --late-weights,
 * 'p' --prior, 'x' --shard, 'o' --out.  0 on success, else CLI_EXIT_USAGE after saying why (argv[0] is the
 * command's name). */
int cli_parse_eval_command(int argc, char **argv, enum cli_eval_command cmd, const struct option *longopts,
                           struct cli_eval_args *a);

/* Evaluate a.models[0] as `avemo classify` would answer with it: an av model whose file selects
 * late fusion (or --fusion late) is evaluated with the audio and face models (--with, else the
 * shipped ones) and the late-fusion result added.  *reported: the result that stands for the
 * model; *late_audio / *late_face (may be NULL): the unimodal results' indices, -1 without. */
int cli_evaluate_as_classified(const struct cli_eval_args *a, int fit_fusion, struct avemo_eval_set *set, int *reported,
                               int *late_audio, int *late_face);
/* The reliability diagram of result r into path (prints the error). */
int cli_write_reliability(const struct avemo_eval_set *set, int r, const char *path);
/* Write report.txt, metrics.json and confusion.png of result r into dir (prefix names the model). */
int cli_write_report(const char *dir, const char *prefix, const struct avemo_eval_result *r);

#endif
