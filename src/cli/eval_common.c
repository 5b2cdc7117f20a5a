/* Argument parsing and report files shared by `avemo eval`, `avemo compare` and `avemo calibrate`. */
#include "cli/eval_common.h"
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_parse_fusion(const char *command, const char *text, enum avemo_fusion *fusion)
{
    static const char *const names[] = {"auto", "head", "late"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *fusion = (enum avemo_fusion)i;
            return 0;
        }
    cli_usage_error(command, "--fusion '%s': expected auto, head or late", text);
    return -1;
}

static int parse_part(const char *command, const char *text, enum avemo_eval_part *part)
{
    static const char *const names[] = {"test", "validation", "train"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *part = (enum avemo_eval_part)i;
            return 0;
        }
    cli_usage_error(command, "--part '%s': expected test, validation or train", text);
    return -1;
}

/* --late-weights WA,WF: two weights in 0..100. */
static int parse_late_weights(const char *command, const char *text, float w[2])
{
    double v[2];
    char first[64] = "";
    const char *comma = strchr(text, ',');
    if (comma && (size_t)(comma - text) < sizeof first) memcpy(first, text, (size_t)(comma - text));
    if (!comma || avemo_parse_double(first, 0, 100, &v[0]) || avemo_parse_double(comma + 1, 0, 100, &v[1])) {
        cli_usage_error(command, "--late-weights '%s': expected WA,WF (two numbers in 0..100)", text);
        return -1;
    }
    w[0] = (float)v[0], w[1] = (float)v[1];
    return 0;
}

/* The options of eval and calibrate (each command's own option table says which it takes):
 * 0, or -1 after saying why the value is wrong. */
static int parse_eval_option(int c, const char *command, struct cli_eval_args *a)
{
    switch (c) {
    case 'R': a->reliability_png = optarg; return 0;
    case 'F': a->fusion_given = 1; return cli_parse_fusion(command, optarg, &a->fusion);
    case 'P': return parse_part(command, optarg, &a->opt.part);
    case 'W':
        if (a->nwith == 2) {
            cli_usage_error(command, "--with %s: at most two --with (the audio model and the face model)", optarg);
            return -1;
        }
        a->with[a->nwith++] = optarg;
        return 0;
    case 'T':
        return cli_double_arg(command, "--temperature", optarg, AVEMO_CALIB_T_MIN, AVEMO_CALIB_T_MAX, &a->temperature);
    case 'U': return cli_double_arg(command, "--uncertain-below", optarg, 0, 1, &a->uncertain_below);
    case 'L': return parse_late_weights(command, optarg, a->late_weights);
    case 'p': a->prior = optarg; return 0;
    case 'x': a->shard_text = optarg; return 0;
    case 'o': a->out_dir = optarg; return 0;
    default: /* an option table names a letter this parser does not know: a programming error */
        cli_usage_error(command, "option -%c is not handled", c);
        return -1;
    }
}

/* A short option is taken when the command's table has its long form (-j only with --json, ...). */
static int takes(const struct option *longopts, int c)
{
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == c) return 1;
    return 0;
}

static void eval_args_init(struct cli_eval_args *a)
{
    memset(a, 0, sizeof *a);
    a->uncertain_below = -1;
    a->late_weights[0] = a->late_weights[1] = -1;
    a->opt.data = a->data;
    a->opt.seed = 1;
    a->opt.progress = !cli_quiet();
    a->opt.overrides = (const char *const *)a->overrides;
}

int cli_parse_eval_command(int argc, char **argv, enum cli_eval_command cmd, const struct option *longopts,
                           struct cli_eval_args *a)
{
    const char *command = argv[0];
    int max_models = cmd == CLI_COMPARE ? 8 : 1;
    eval_args_init(a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:jr:c:S:", longopts, NULL)) != -1) {
        if (c != '?' && !takes(longopts, c)) return cli_usage_error(command, "-%c is not an option of avemo %s", c, command);
        switch (c) {
        case 'd':
            if (a->opt.ndata == 32) return cli_usage_error(command, "at most 32 --data");
            a->data[a->opt.ndata++] = optarg;
            break;
        case 's': a->opt.split_path = optarg; break;
        case 'j': a->json = 1; break;
        case 'r': a->report_dir = optarg; break;
        case 'c': a->opt.cache_path = optarg; break;
        case 'S':
            if (a->opt.noverrides == 16) return cli_usage_error(command, "at most 16 --set");
            if (cli_assignment_arg(command, optarg)) return CLI_EXIT_USAGE;
            a->overrides[a->opt.noverrides++] = optarg;
            break;
        case '?': return CLI_EXIT_USAGE; /* getopt said why */
        default:
            if (parse_eval_option(c, command, a)) return CLI_EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->nmodels == max_models) return cli_usage_error(command, "at most %d MODEL (got %s too)", max_models, argv[i]);
        a->models[a->nmodels++] = argv[i];
    }
    /* calibrate --temperature T needs no data */
    int given = a->temperature > 0 || a->late_weights[0] >= 0 || a->uncertain_below >= 0 || a->prior;
    if (a->nmodels == 0) return cli_usage_error(command, "no MODEL given");
    if (a->opt.ndata == 0 && !(cmd == CLI_CALIBRATE && given))
        return cli_usage_error(command, "no --data given (a folder or a .csv manifest)");
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
    struct avemo_late_fusion fusion = {1, 1, NULL};
    float prior[2 * AVEMO_MAX_CLASSES];
    *reported = 0;
    if (late_audio) *late_audio = -1;
    if (late_face) *late_face = -1;
    if (avemo_model_open(a->models[0], a->overrides, a->opt.noverrides, &model, &err)) return cli_report(&err);
    int av = model.p.mode == AVEMO_MODE_AV;
    int selected = avemo_model_late_fusion(model.net, &fusion.w_audio, &fusion.w_face);
    if (avemo_model_prior(model.net, AVEMO_FUSION_PRIOR, avemo_net_classes(model.net), prior)) fusion.prior = prior;
    avemo_model_close(&model);
    if (selected < 0) fusion.w_audio = fusion.w_face = 1;
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
    if (avemo_eval_add_late_fusion(set, 1, 2, &fusion, &err)) {
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
