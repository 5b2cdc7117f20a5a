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
    return cli_parse_eval_command(argc, argv, max_models == 1 ? CLI_EVAL : CLI_COMPARE, a);
}

int cli_parse_fusion(const char *text, enum avemo_fusion *fusion)
{
    static const char *const names[] = {"auto", "head", "late"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *fusion = (enum avemo_fusion)i;
            return 0;
        }
    fprintf(stderr, "avemo: --fusion %s: auto, head or late\n", text);
    return -1;
}

static int parse_part(const char *text, enum avemo_eval_part *part)
{
    static const char *const names[] = {"test", "validation", "train"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *part = (enum avemo_eval_part)i;
            return 0;
        }
    fprintf(stderr, "avemo: --part %s: test, validation or train\n", text);
    return -1;
}

/* The options only eval and calibrate take. */
static int parse_eval_option(int c, enum cli_eval_command cmd, struct cli_eval_args *a)
{
    int eval = cmd == CLI_EVAL, cal = cmd == CLI_CALIBRATE;
    switch (c) {
    case 'R': if (!eval) return -1; a->reliability_png = optarg; return 0;
    case 'F':
        a->fusion_given = 1;
        return cmd == CLI_COMPARE || cli_parse_fusion(optarg, &a->fusion) ? -1 : 0;
    case 'P': return cmd == CLI_COMPARE || parse_part(optarg, &a->opt.part) ? -1 : 0;
    case 'W':
        if (cmd == CLI_COMPARE || a->nwith == 2) return -1;
        a->with[a->nwith++] = optarg;
        return 0;
    case 'T': return !cal || avemo_parse_double(optarg, AVEMO_CALIB_T_MIN, AVEMO_CALIB_T_MAX, &a->temperature) ? -1 : 0;
    case 'U': return !cal || avemo_parse_double(optarg, 0, 1, &a->uncertain_below) ? -1 : 0;
    case 'L': {
        double w[2];
        char *comma = strchr(optarg, ',');
        if (!cal || !comma) return -1;
        *comma = 0;
        int bad = avemo_parse_double(optarg, 0, 100, &w[0]) || avemo_parse_double(comma + 1, 0, 100, &w[1]);
        *comma = ',';
        a->late_weights[0] = (float)w[0], a->late_weights[1] = (float)w[1];
        return bad ? -1 : 0;
    }
    default: return -1;
    }
}

int cli_parse_eval_command(int argc, char **argv, enum cli_eval_command cmd, struct cli_eval_args *a)
{
    int max_models = cmd == CLI_COMPARE ? 8 : 1;
    static const struct option longopts[] = {
        {"reliability", required_argument, NULL, 'R'}, {"fusion", required_argument, NULL, 'F'},
        {"part", required_argument, NULL, 'P'},        {"with", required_argument, NULL, 'W'},
        {"temperature", required_argument, NULL, 'T'}, {"uncertain-below", required_argument, NULL, 'U'},
        {"late-weights", required_argument, NULL, 'L'},
        {"data", required_argument, NULL, 'd'},   {"split", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},         {"report", required_argument, NULL, 'r'},
        {"cache", required_argument, NULL, 'c'},  {"set", required_argument, NULL, 'S'},
        {"shard", required_argument, NULL, 'x'},  {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->uncertain_below = -1;
    a->late_weights[0] = a->late_weights[1] = -1;
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
            if (max_models != 1 || (c == 'x' && cmd != CLI_EVAL)) /* eval only; calibrate --out */
                return cli_usage_error(argv[0], "--shard is for avemo eval, --out for eval and calibrate");
            *(c == 'x' ? &a->shard_text : &a->out_dir) = optarg;
            break;
        case '?': return CLI_EXIT_USAGE; /* getopt said why */
        default:
            if (parse_eval_option(c, cmd, a)) return cli_usage_error(argv[0], "a bad or misplaced option (see --help)");
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->nmodels == max_models) return cli_usage_error(argv[0], "at most %d MODEL", max_models);
        a->models[a->nmodels++] = argv[i];
    }
    /* calibrate --temperature T needs no data */
    int given = a->temperature > 0 || a->late_weights[0] >= 0 || a->uncertain_below >= 0;
    if (a->nmodels == 0) return cli_usage_error(argv[0], "no MODEL given");
    if (a->opt.ndata == 0 && !(cmd == CLI_CALIBRATE && given))
        return cli_usage_error(argv[0], "no --data given (a folder or a .csv manifest)");
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

/* The unimodal models of late fusion: --with (the audio one and the face one, either order),
 * else the shipped ones. */
static int late_models(const struct cli_eval_args *a, char paths[2][1024], struct avemo_error *err)
{
    for (int m = 0; m < 2; m++) {
        enum avemo_mode want = m == 0 ? AVEMO_MODE_AUDIO : AVEMO_MODE_FACE;
        for (int i = 0; i < a->nwith && !paths[m][0]; i++) {
            struct avemo_model model;
            if (avemo_model_open(a->with[i], NULL, 0, &model, err)) return -1;
            if (model.p.mode == (int)want) snprintf(paths[m], sizeof paths[m], "%s", a->with[i]);
            avemo_model_close(&model);
        }
        if (!paths[m][0] && a->nwith == 2) {
            avemo_fail(err, AVEMO_ERR_INVALID_ARG, "late fusion: no %s model among --with %s --with %s", avemo_mode_name(want),
                       a->with[0], a->with[1]);
            return -1;
        }
        if (!paths[m][0] && avemo_default_model(want, paths[m], sizeof paths[m], err)) return -1;
    }
    return 0;
}

int cli_evaluate_as_classified(const struct cli_eval_args *a, int fit_fusion, struct avemo_eval_set *set, int *reported,
                               int *late_audio, int *late_face)
{
    struct avemo_error err = {0};
    struct avemo_model model;
    float wa = 1, wf = 1;
    *reported = 0;
    if (late_audio) *late_audio = -1;
    if (late_face) *late_face = -1;
    if (avemo_model_open(a->models[0], a->overrides, a->opt.noverrides, &model, &err)) return cli_report(&err);
    int av = model.p.mode == AVEMO_MODE_AV, selected = avemo_model_late_fusion(model.net, &wa, &wf);
    avemo_model_close(&model);
    if (selected < 0) wa = wf = 1;
    if (a->fusion == AVEMO_FUSION_LATE && !av) {
        fprintf(stderr, "avemo: --fusion late: %s is not an av model\n", a->models[0]);
        return CLI_EXIT_USAGE;
    }
    int late = av && (a->fusion == AVEMO_FUSION_LATE || (a->fusion == AVEMO_FUSION_AUTO && selected == 1) ||
                      (fit_fusion && a->nwith == 2));
    char paths[2][1024] = {"", ""};
    const char *models[3] = {a->models[0], paths[0], paths[1]};
    if (late && late_models(a, paths, &err)) return cli_report(&err);
    if (avemo_evaluate(models, late ? 3 : 1, &a->opt, set, &err)) return cli_report(&err);
    if (!late) return CLI_EXIT_OK;
    if (late_audio) *late_audio = 1;
    if (late_face) *late_face = 2;
    if (avemo_eval_add_late_fusion(set, 1, 2, wa, wf, &err)) {
        avemo_eval_free(set);
        return cli_report(&err);
    }
    /* calibrate fits both and reports both; eval reports what classify answers */
    *reported = fit_fusion || a->fusion == AVEMO_FUSION_HEAD ? 0 : 3;
    return CLI_EXIT_OK;
}

int cli_write_reliability(const struct avemo_eval_set *set, int r, const char *path)
{
    struct avemo_error err = {0};
    struct avemo_reliability rel;
    char title[96];
    snprintf(title, sizeof title, "reliability: %s", set->results[r].model);
    if (avemo_eval_reliability(set, r, AVEMO_EVAL_ECE_BINS, &rel, &err) || avemo_plot_reliability(&rel, title, path, &err))
        return cli_report(&err);
    return CLI_EXIT_OK;
}
