/* avemo calibrate MODEL --data DIR... [--split FILE] [--part validation] [--with A.avm --with F.avm]
 *                 [--fusion auto|head|late] [--temperature T] [--uncertain-below P] --out OUT.avm */
#include "cli/cli.h"
#include "cli/eval_common.h"

#include <stdlib.h>
#include <string.h>

static const char calibrate_usage[] =
    "usage: avemo calibrate MODEL.avm --data DIR|LIST.csv [--data ...] [--split FILE] [--part validation]\n"
    "                       [--with AUDIO.avm --with FACE.avm] [--fusion auto|head|late]\n"
    "                       [--uncertain-below P] [--cache F] [--set S.K=V] --out OUT.avm\n"
    "       avemo calibrate MODEL.avm [--temperature T] [--late-weights WA,WF --fusion late|head\n"
    "                       [--with AUDIO.avm --with FACE.avm]] [--prior C1,...,Ck]\n"
    "                       [--uncertain-below P] --out OUT.avm\n"
    "  Temperature scaling: fit the one temperature T that minimises the negative log-likelihood of\n"
    "  the model's raw logits on labelled data (probabilities become softmax(logits / T)), and write\n"
    "  the model with it (array calib.temperature) to OUT (may be MODEL).  Fit on data the model did\n"
    "  not train on and that is not its test set: --split FILE --part validation takes the split's\n"
    "  validation part.  Predictions do not change, only the probabilities (an ensemble's mean of\n"
    "  its members' probabilities can move a close answer).\n"
    "  --with AUDIO.avm --with FACE.avm   (an av MODEL) also fit late fusion on the same pairs: the\n"
    "                weights of the two models' calibrated log-probabilities minimising the NLL\n"
    "                (calibrate each of them first); stored as fusion.late.  Each model's class\n"
    "                prior (train.prior, stored by training) is divided out of its probabilities\n"
    "                before they are multiplied, so a class rare in one model's corpus is not\n"
    "                counted against twice; the priors are stored with the weights (fusion.prior).\n"
    "                With --late-weights and no --data, only their priors are taken\n"
    "  --fusion F    which one av answers use from then on: late, head (the network), auto (default:\n"
    "                the one with the lower NLL on the fitting data)\n"
    "  --temperature T   store T without fitting (e.g. one fitted on a cross-validation fold's model)\n"
    "  --late-weights WA,WF   store late-fusion weights without fitting (an av MODEL)\n"
    "  --prior C1,...,Ck   store the class shares MODEL learnt (train.prior: k counts or shares, in\n"
    "                its label order), for a model trained before training stored them\n"
    "  --uncertain-below P   store the threshold under which classify calls an answer uncertain\n"
    "  --out OUT.avm   the calibrated model (may be MODEL itself)\n"
    "  --set S.K=V   an inference setting (e.g. face.mirror_test=no), used for the fit and stored in\n"
    "                OUT's pipeline, so the temperature goes with the setting it was fitted with;\n"
    "                a setting that would change the network is refused\n"
    "  --data, --split, --part, --cache as for `avemo eval`.";

/* ECE, NLL and accuracy of a result's probabilities, one line. */
static void print_line(const struct avemo_eval_set *set, int r, const char *what)
{
    struct avemo_reliability rel;
    if (avemo_eval_reliability(set, r, AVEMO_EVAL_ECE_BINS, &rel, NULL)) return;
    printf("  %-34s accuracy %5.1f%%  NLL %.3f  ECE %.3f  mean confidence %5.1f%%\n", what, 100 * rel.accuracy_all,
           rel.nll, rel.ece, 100 * rel.confidence_all);
}

/* Replace result r's probabilities by those of its raw logits at temperature t. */
static void rescale(struct avemo_eval_set *set, int r, float t)
{
    struct avemo_eval_result *res = &set->results[r];
    avemo_calib_probs(res->logits, res->logit_rows, set->n, set->num_classes, t, res->probs);
}

struct calibration {
    float temperature;
    int fused;              /* late fusion fitted */
    float w[3];             /* w_audio, w_face, selected */
    int has_prior;          /* fusion.prior: the --with models' train.prior, audio then face */
    float prior[2 * AVEMO_MAX_CLASSES];
    int nclasses;           /* MODEL's */
    int had_fusion_prior;   /* MODEL stores fusion.prior */
    int has_own_prior;      /* --prior: train.prior of MODEL */
    float own_prior[AVEMO_MAX_CLASSES];
};

/* The number of classes of the model at path, its network in *keep (the caller frees it), or -1
 * after saying why it cannot be opened. */
static int model_classes(const char *path, avemo_net **keep)
{
    struct avemo_model m;
    struct avemo_error err = {0};
    if (avemo_model_open(path, NULL, 0, &m, &err)) {
        cli_report(&err);
        return -1;
    }
    int k = avemo_net_classes(m.net);
    *keep = m.net, m.net = NULL;
    avemo_model_close(&m);
    return k;
}

/* The fusion priors: each --with model's train.prior (uniform when it stores none).  c->has_prior
 * when either stores one, as then the fit and the av model divide them out.  0, or -1. */
static int with_priors(const struct cli_eval_args *a, int k, struct calibration *c)
{
    c->has_prior = 0;
    for (int i = 0; i < 2; i++) {
        avemo_net *net = NULL;
        int km = model_classes(a->with[i], &net);
        if (km < 0) return -1;
        if (km != k) {
            fprintf(stderr, "avemo calibrate: %s has %d classes, %s %d\n", a->with[i], km, a->models[0], k);
            avemo_net_free(net);
            return -1;
        }
        c->has_prior |= avemo_model_prior(net, AVEMO_TRAIN_PRIOR, k, c->prior + i * k);
        avemo_net_free(net);
    }
    /* an older fusion.prior of MODEL is replaced, by uniform priors when these models have none */
    c->has_prior |= c->had_fusion_prior;
    if (c->has_prior) printf("late fusion divides out the class priors of %s and %s\n", a->with[0], a->with[1]);
    return 0;
}

/* --prior C1,...,Ck: k counts or shares of MODEL's c->nclasses classes.  0, or -1 after saying why. */
static int parse_own_prior(const struct cli_eval_args *a, struct calibration *c)
{
    int k = c->nclasses, n = 0;
    double v[AVEMO_MAX_CLASSES];
    char copy[512];
    snprintf(copy, sizeof copy, "%s", a->prior);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (n == k || avemo_parse_double(tok, 0, 1e15, &v[n++])) n = k + 1;
    if (n != k || avemo_prior_from_counts(v, k, c->own_prior) != 0) {
        fprintf(stderr, "avemo calibrate: --prior '%s': expected %d counts or shares (>= 0, not all 0) for %s\n",
                a->prior, k, a->models[0]);
        return -1;
    }
    c->has_own_prior = 1;
    return 0;
}

/* Fit the model's temperature (and late fusion) on the evaluated units and say what changed. */
static int fit(const struct cli_eval_args *a, struct avemo_eval_set *set, int ra, int rf, struct calibration *c)
{
    const struct avemo_eval_result *m = &set->results[0];
    double before, after;
    c->temperature = avemo_calib_fit_temperature(m->logits, m->logit_rows, set->truth, set->n, set->num_classes, &before,
                                                 &after);
    printf("%s on %zu units: temperature %.3f\n", m->model, set->n, (double)c->temperature);
    rescale(set, 0, 1.0f);
    print_line(set, 0, "before (T = 1)");
    rescale(set, 0, c->temperature);
    print_line(set, 0, "after");
    if (ra < 0) return CLI_EXIT_OK;
    struct avemo_error err = {0};
    c->fused = 1;
    if (with_priors(a, set->num_classes, c)) return CLI_EXIT_FAIL;
    struct avemo_late_fusion f = {1, 1, c->has_prior ? c->prior : NULL};
    avemo_fusion_fit(set->results[ra].probs, set->results[rf].probs, set->truth, set->n, set->num_classes, &f);
    c->w[0] = f.w_audio, c->w[1] = f.w_face;
    /* The late result added before used the stored weights: the fitted ones replace it. */
    struct avemo_eval_result *old = &set->results[set->nresults - 1];
    free(old->pred);
    free(old->probs);
    free(old->logits);
    set->nresults--;
    if (avemo_eval_add_late_fusion(set, ra, rf, &f, &err)) return cli_report(&err);
    int late = set->nresults - 1;
    struct avemo_reliability head, fused;
    avemo_eval_reliability(set, 0, AVEMO_EVAL_ECE_BINS, &head, NULL);
    avemo_eval_reliability(set, late, AVEMO_EVAL_ECE_BINS, &fused, NULL);
    c->w[2] = a->fusion == AVEMO_FUSION_LATE || (a->fusion == AVEMO_FUSION_AUTO && fused.nll < head.nll) ? 1.0f : 0.0f;
    printf("late fusion of %s and %s: w_audio %.3f, w_face %.3f\n", set->results[ra].model, set->results[rf].model,
           (double)c->w[0], (double)c->w[1]);
    print_line(set, ra, set->results[ra].model);
    print_line(set, rf, set->results[rf].model);
    print_line(set, 0, "head (calibrated)");
    print_line(set, late, "late fusion");
    printf("av answers: %s\n", c->w[2] > 0 ? "late fusion" : "the learned head");
    return CLI_EXIT_OK;
}

static int store(const struct cli_eval_args *a, const struct calibration *c)
{
    const char *names[5];
    const float *values[5];
    size_t counts[5];
    float u = (float)a->uncertain_below;
    int n = 0;
    if (c->temperature > 0) names[n] = AVEMO_CALIB_TEMPERATURE, values[n] = &c->temperature, counts[n++] = 1;
    if (c->fused) names[n] = AVEMO_FUSION_WEIGHTS, values[n] = c->w, counts[n++] = 3;
    if (c->has_prior) names[n] = AVEMO_FUSION_PRIOR, values[n] = c->prior, counts[n++] = 2 * (size_t)c->nclasses;
    if (c->has_own_prior) names[n] = AVEMO_TRAIN_PRIOR, values[n] = c->own_prior, counts[n++] = (size_t)c->nclasses;
    if (a->uncertain_below >= 0) names[n] = AVEMO_CALIB_UNCERTAIN, values[n] = &u, counts[n++] = 1;
    struct avemo_error err = {0};
    /* The --set settings the temperature was fitted with stay with it in OUT. */
    if (avemo_model_store(a->models[0], a->out_dir, a->opt.overrides, a->opt.noverrides, n, names, values, counts, &err))
        return cli_report(&err);
    fprintf(stderr, "avemo calibrate: wrote %s\n", a->out_dir);
    return CLI_EXIT_OK;
}

/* The options calibrate takes (src/cli/eval_common.c parses them). */
static const struct option calibrate_options[] = {
    {"data", required_argument, NULL, 'd'},        {"split", required_argument, NULL, 's'},
    {"part", required_argument, NULL, 'P'},        {"with", required_argument, NULL, 'W'},
    {"fusion", required_argument, NULL, 'F'},      {"temperature", required_argument, NULL, 'T'},
    {"late-weights", required_argument, NULL, 'L'}, {"uncertain-below", required_argument, NULL, 'U'},
    {"cache", required_argument, NULL, 'c'},       {"set", required_argument, NULL, 'S'},
    {"prior", required_argument, NULL, 'p'},       {"out", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

static int run_calibrate(int argc, char **argv)
{
    struct cli_eval_args a;
    if (cli_parse_eval_command(argc, argv, CLI_CALIBRATE, calibrate_options, &a)) return CLI_EXIT_USAGE;
    if (!a.out_dir) return cli_usage_error("calibrate", "no --out OUT.avm given (may be MODEL itself)");
    if (a.nwith != 0 && a.nwith != 2)
        return cli_usage_error("calibrate", "--with %s: late fusion needs both --with AUDIO.avm and --with FACE.avm",
                               a.with[0]);
    struct calibration c = {.temperature = (float)a.temperature};
    avemo_net *net = NULL;
    if ((c.nclasses = model_classes(a.models[0], &net)) < 0) return CLI_EXIT_FAIL;
    c.had_fusion_prior = avemo_net_array(net, AVEMO_FUSION_PRIOR, NULL) != NULL;
    avemo_net_free(net);
    if (a.prior && parse_own_prior(&a, &c)) return CLI_EXIT_USAGE;
    if (a.opt.ndata == 0) { /* values given, nothing fitted */
        c.fused = a.late_weights[0] >= 0;
        c.w[0] = a.late_weights[0], c.w[1] = a.late_weights[1], c.w[2] = a.fusion != AVEMO_FUSION_HEAD;
        if (c.fused && a.nwith == 2 && with_priors(&a, c.nclasses, &c)) return CLI_EXIT_FAIL;
        return store(&a, &c);
    }
    struct avemo_eval_set set;
    int shown, ra, rf;
    if (a.fusion == AVEMO_FUSION_AUTO && a.nwith == 0) a.fusion = AVEMO_FUSION_HEAD; /* nothing to fuse with */
    int rc = cli_evaluate_as_classified(&a, 1, &set, &shown, &ra, &rf);
    if (rc) return rc;
    rc = fit(&a, &set, ra, rf, &c);
    if (!rc && a.temperature > 0) c.temperature = (float)a.temperature; /* given beats fitted */
    if (!rc) rc = store(&a, &c);
    avemo_eval_free(&set);
    return rc;
}

const struct cli_command cli_cmd_calibrate = {
    "calibrate", "fit a model's temperature (and an av model's late fusion) on validation data", calibrate_usage,
    run_calibrate, 0,
};
