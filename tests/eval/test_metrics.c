/* Metrics against values worked out by hand (the same definitions as scikit-learn's
 * classification_report and statsmodels' exact McNemar test). */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>

static void test_report_values(void **state)
{
    (void)state;
    /* 3 classes, 10 items. */
    const int truth[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    const int pred[10] = {0, 0, 1, 2, 1, 1, 0, 2, 2, 2};
    const char *labels[3] = {"ANG", "HAP", "SAD"};
    struct avemo_metrics m;
    struct avemo_error err = {0};
    assert_int_equal(avemo_metrics_compute(truth, pred, 10, 3, labels, &m, &err), AVEMO_OK);
    assert_true(fabs(m.accuracy - 0.7) < 1e-12);
    /* recall: 2/4, 2/3, 3/3; precision: 2/3, 2/3, 3/4 */
    assert_true(fabs(m.recall[0] - 0.5) < 1e-12);
    assert_true(fabs(m.precision[2] - 0.75) < 1e-12);
    assert_true(fabs(m.unweighted_accuracy - (0.5 + 2.0 / 3 + 1) / 3) < 1e-12);
    double f1_0 = 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5);
    assert_true(fabs(m.f1[0] - f1_0) < 1e-12);
    assert_int_equal(m.confusion[0][2], 1);
    assert_int_equal(m.confusion[1][0], 1);
    assert_int_equal(m.support[0], 4);
    double weighted_recall = (0.5 * 4 + 2.0 / 3 * 3 + 1.0 * 3) / 10;
    assert_true(fabs(m.weighted_recall - weighted_recall) < 1e-12);
    char *json = avemo_metrics_json(&m);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_true(fabs(cJSON_GetObjectItem(o, "accuracy")->valuedouble - 0.7) < 1e-12);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "per_class"), "SAD"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "confusion")), 3);
    assert_int_equal(cJSON_GetObjectItem(o, "n")->valueint, 10);
    cJSON_Delete(o);
    free(json);
    char *text = avemo_metrics_report(&m);
    assert_non_null(strstr(text, "weighted avg"));
    free(text);
    /* Out-of-range classes are refused. */
    const int bad[1] = {5};
    assert_int_equal(avemo_metrics_compute(bad, bad, 1, 3, labels, &m, &err), AVEMO_ERR_INVALID_ARG);
}

static void test_mcnemar_exact(void **state)
{
    (void)state;
    /* 10 items only A gets right, 2 only B: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 158/4096. */
    int truth[20], a[20], b[20];
    for (int i = 0; i < 20; i++) {
        truth[i] = 1;
        a[i] = i < 10 || i >= 12 ? 1 : 0;
        b[i] = i >= 10 ? 1 : 0;
    }
    size_t only_a, only_b;
    double p = avemo_mcnemar(truth, a, b, 20, &only_a, &only_b);
    assert_int_equal(only_a, 10);
    assert_int_equal(only_b, 2);
    assert_true(fabs(p - 158.0 / 4096.0) < 1e-12);
    assert_true(avemo_mcnemar(truth, a, a, 20, NULL, NULL) == 1.0);
}

static void test_bootstrap(void **state)
{
    (void)state;
    int truth[200], pred[200];
    for (int i = 0; i < 200; i++) {
        truth[i] = i % 6;
        pred[i] = i % 10 < 7 ? truth[i] : (truth[i] + 1) % 6; /* 70% right */
    }
    double lo, hi;
    avemo_bootstrap_accuracy(truth, pred, 200, 2000, 3, &lo, &hi);
    assert_true(lo < 0.7 && hi > 0.7);
    assert_true(lo > 0.6 && hi < 0.8);
}

static void test_plots(void **state)
{
    (void)state;
    const int truth[6] = {0, 1, 2, 3, 4, 5}, pred[6] = {0, 1, 2, 3, 5, 5};
    struct avemo_metrics m;
    assert_int_equal(avemo_metrics_compute(truth, pred, 6, 6, NULL, &m, NULL), AVEMO_OK);
    char path[] = "/tmp/avemo_confusion_XXXXXX.png";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    close(fd);
    struct avemo_error err = {0};
    assert_int_equal(avemo_plot_confusion(&m, "test", path, &err), AVEMO_OK);
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    assert_int_equal(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    assert_true(cairo_image_surface_get_width(s) > 6 * 60);
    cairo_surface_destroy(s);
    double loss[3] = {1.5, 1.0, 0.7};
    struct avemo_series series = {"loss", loss, 3};
    assert_int_equal(avemo_plot_curves("loss", "cross-entropy", &series, 1, path, &err), AVEMO_OK);
    s = cairo_image_surface_create_from_png(path);
    assert_int_equal(cairo_image_surface_get_width(s), 640);
    cairo_surface_destroy(s);
    remove(path);
    assert_int_equal(avemo_plot_confusion(&m, "x", "/nonexistent/dir/c.png", &err), AVEMO_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/dir/c.png"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_values),
        cmocka_unit_test(test_mcnemar_exact),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_plots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
