/* The basic-usage block of include/avemo/avemo.h as a program: it includes only <avemo/avemo.h>
 * (and stdio), classifies a file with a model and prints "LABEL CONFIDENCE". */
#include <avemo/avemo.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    struct avemo_error err = {0};
    avemo_classifier *clf = NULL;      // a model (.avm), read-only, shared by threads
    avemo_classify_ctx *ctx = NULL;    // one per thread
    struct avemo_prediction pred;
    if (argc != 3) return 2;           // MODEL.avm FILE
    enum avemo_status st = avemo_classifier_open(argv[1], NULL, &clf, &err);
    if (!st) st = avemo_classify_ctx_new(clf, &ctx, &err);
    if (!st) st = avemo_classify_file(ctx, argv[2], avemo_classifier_default_mode(clf), &pred, &err);
    if (st) fprintf(stderr, "%s\n", err.message);   // names the file and the cause
    else printf("%s %.2f\n", pred.labels[pred.label], pred.confidence);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return st ? 1 : 0;
}
