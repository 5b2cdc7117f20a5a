/* avemo compare MODEL... --data DIR [--split FILE] [--json] [--report DIR] */
#include "cli/cli.h"
#include "cli/eval_common.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char compare_usage[] =
    "usage: avemo compare MODEL.avm... --data DIR|LIST.csv [--data ...] [--split FILE] [--json] [--report DIR] [--cache F] [--set S.K=V]\n"
    "  Put models side by side on the same test units: accuracy with a bootstrap 95% interval,\n"
    "  unweighted accuracy, macro F1, and McNemar's exact test for each pair.\n"
    "  Test files any of the models was trained or validated on (their training records) are left\n"
    "  out for all of them and counted.\n"
    "  --set SEC.KEY=VAL changes an inference setting of every model's stored pipeline\n"
    "  (e.g. face.mirror_test=yes); --cache F keeps the extracted features.";


static cJSON *compare_json(const struct avemo_eval_set *set)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)set->n);
    char note[700];
    avemo_eval_record_note(set, note, sizeof note);
    cJSON_AddNumberToObject(o, "left_out_trained", (double)set->trained_on);
    cJSON_AddNumberToObject(o, "kept_same_name", (double)set->same_name);
    cJSON_AddStringToObject(o, "training_record", note);
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < set->nresults; i++) {
        const struct avemo_eval_result *r = &set->results[i];
        double lo, hi;
        avemo_bootstrap_accuracy(set->truth, r->pred, set->n, 2000, 7, &lo, &hi);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "model", r->model);
        cJSON_AddStringToObject(m, "mode", avemo_mode_name((enum avemo_mode)r->mode));
        cJSON_AddNumberToObject(m, "accuracy", r->metrics.accuracy);
        cJSON_AddNumberToObject(m, "accuracy_ci95_low", lo);
        cJSON_AddNumberToObject(m, "accuracy_ci95_high", hi);
        cJSON_AddNumberToObject(m, "unweighted_accuracy", r->metrics.unweighted_accuracy);
        cJSON_AddNumberToObject(m, "macro_f1", r->metrics.macro_f1);
        cJSON_AddItemToArray(models, m);
    }
    cJSON *pairs = cJSON_AddArrayToObject(o, "mcnemar");
    for (int i = 0; i < set->nresults; i++)
        for (int j = i + 1; j < set->nresults; j++) {
            size_t only_a, only_b;
            double p = avemo_mcnemar(set->truth, set->results[i].pred, set->results[j].pred, set->n, &only_a, &only_b);
            cJSON *pr = cJSON_CreateObject();
            cJSON_AddStringToObject(pr, "a", set->results[i].model);
            cJSON_AddStringToObject(pr, "b", set->results[j].model);
            cJSON_AddNumberToObject(pr, "only_a_correct", (double)only_a);
            cJSON_AddNumberToObject(pr, "only_b_correct", (double)only_b);
            cJSON_AddNumberToObject(pr, "p_value", p);
            cJSON_AddItemToArray(pairs, pr);
        }
    return o;
}

static void print_table(const cJSON *o)
{
    printf("%s\n\n", cJSON_GetObjectItem(o, "training_record")->valuestring);
    printf("%-28s %-6s %-22s %-10s %-8s\n", "model", "mode", "accuracy [95% CI]", "unweighted", "macro F1");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(o, "models"))
    {
        printf("%-28s %-6s %5.1f%% [%4.1f, %4.1f]     %5.1f%%     %5.3f\n", cJSON_GetObjectItem(m, "model")->valuestring,
               cJSON_GetObjectItem(m, "mode")->valuestring, 100 * cJSON_GetObjectItem(m, "accuracy")->valuedouble,
               100 * cJSON_GetObjectItem(m, "accuracy_ci95_low")->valuedouble,
               100 * cJSON_GetObjectItem(m, "accuracy_ci95_high")->valuedouble,
               100 * cJSON_GetObjectItem(m, "unweighted_accuracy")->valuedouble,
               cJSON_GetObjectItem(m, "macro_f1")->valuedouble);
    }
    printf("\nMcNemar's exact test (n = %.0f units)\n", cJSON_GetObjectItem(o, "n")->valuedouble);
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(o, "mcnemar"))
    {
        printf("  %s vs %s: only the first right %.0f, only the second right %.0f, p = %.4g\n",
               cJSON_GetObjectItem(m, "a")->valuestring, cJSON_GetObjectItem(m, "b")->valuestring,
               cJSON_GetObjectItem(m, "only_a_correct")->valuedouble, cJSON_GetObjectItem(m, "only_b_correct")->valuedouble,
               cJSON_GetObjectItem(m, "p_value")->valuedouble);
    }
}

/* The options compare takes (src/cli/eval_common.c parses them). */
static const struct option compare_options[] = {
    {"data", required_argument, NULL, 'd'},   {"split", required_argument, NULL, 's'},
    {"json", no_argument, NULL, 'j'},         {"report", required_argument, NULL, 'r'},
    {"cache", required_argument, NULL, 'c'},  {"set", required_argument, NULL, 'S'},
    {NULL, 0, NULL, 0},
};

static int run_compare(int argc, char **argv)
{
    struct cli_eval_args a;
    if (cli_parse_eval_command(argc, argv, CLI_COMPARE, compare_options, &a)) return CLI_EXIT_USAGE;
    struct avemo_eval_set set;
    struct avemo_error err = {0};
    if (avemo_evaluate(a.models, a.nmodels, &a.opt, &set, &err)) return cli_report(&err);
    cJSON *o = compare_json(&set);
    if (a.json) {
        char *text = cJSON_Print(o);
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        print_table(o);
    }
    cJSON_Delete(o);
    int rc = CLI_EXIT_OK;
    for (int i = 0; a.report_dir && i < set.nresults && !rc; i++) {
        char prefix[80];
        snprintf(prefix, sizeof prefix, "%s-", set.results[i].model);
        rc = cli_write_report(a.report_dir, prefix, &set.results[i]);
    }
    avemo_eval_free(&set);
    return rc;
}

const struct cli_command cli_cmd_compare = {
    "compare", "compare models on the same test data (McNemar, bootstrap intervals)", compare_usage, run_compare, 0,
};
