/* Argument parsing and report files shared by `avemo eval` and `avemo compare`. */
#include "cli/eval_common.h"
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_parse_eval_args(int argc, char **argv, int max_models, struct cli_eval_args *a)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},   {"split", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},         {"report", required_argument, NULL, 'r'},
        {"cache", required_argument, NULL, 'c'},  {"set", required_argument, NULL, 'S'},
        {"shard", required_argument, NULL, 'x'},  {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->opt.data = a->data;
    a->opt.seed = 1;
    a->opt.progress = !cli_quiet();
    a->opt.overrides = (const char *const *)a->overrides;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:jr:c:S:", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (a->opt.ndata == 32) return cli_usage_error(argv[0], "at most 32 --data");
            a->data[a->opt.ndata++] = optarg;
            break;
        case 's': a->opt.split_path = optarg; break;
        case 'j': a->json = 1; break;
        case 'r': a->report_dir = optarg; break;
        case 'c': a->opt.cache_path = optarg; break;
        case 'S':
            if (a->opt.noverrides == 16) return cli_usage_error(argv[0], "at most 16 --set");
            if (cli_assignment_arg(argv[0], optarg)) return CLI_EXIT_USAGE;
            a->overrides[a->opt.noverrides++] = optarg;
            break;
        case 'x':
        case 'o':
            if (max_models != 1) return cli_usage_error(argv[0], "--shard and --out are for avemo eval");
            *(c == 'x' ? &a->shard_text : &a->out_dir) = optarg;
            break;
        default: return CLI_EXIT_USAGE; /* getopt said why */
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->nmodels == max_models) return cli_usage_error(argv[0], "at most %d MODEL", max_models);
        a->models[a->nmodels++] = argv[i];
    }
    if (a->nmodels == 0) return cli_usage_error(argv[0], "no MODEL given");
    if (a->opt.ndata == 0) return cli_usage_error(argv[0], "no --data given (a folder or a .csv manifest)");
    return 0;
}

int cli_write_report(const char *dir, const char *prefix, const struct avemo_eval_result *r)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "avemo: %s: cannot create: %s\n", dir, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    char path[4200];
    char *text = avemo_metrics_report(&r->metrics), *json = avemo_metrics_json(&r->metrics);
    int rc = CLI_EXIT_OK;
    snprintf(path, sizeof path, "%s/%sreport.txt", dir, prefix);
    FILE *f = fopen(path, "w");
    if (f && text) fprintf(f, "model: %s\n\n%s", r->model, text);
    if (!f || fclose(f) != 0) rc = CLI_EXIT_FAIL;
    snprintf(path, sizeof path, "%s/%smetrics.json", dir, prefix);
    f = fopen(path, "w");
    if (f && json) fprintf(f, "%s\n", json);
    if (!f || fclose(f) != 0) rc = CLI_EXIT_FAIL;
    snprintf(path, sizeof path, "%s/%sconfusion.png", dir, prefix);
    struct avemo_error err = {0};
    if (avemo_plot_confusion(&r->metrics, r->model, path, &err)) rc = cli_report(&err);
    free(text);
    free(json);
    return rc;
}
