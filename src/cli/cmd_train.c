/* avemo train PIPELINE.ini --data DIR... --out MODEL.avm [options] */
#include "cli/cli.h"

#include <avemo/train.h>
#include <getopt.h>
#include <stdlib.h>

static const char train_usage[] =
    "usage: avemo train PIPELINE.ini --data DIR|LIST.csv [--data ...] --out MODEL.avm [options]\n"
    "  Train the pipeline's network; the best epoch (lowest validation loss) is saved.\n"
    "  --split FILE        use this split file (as written by --split-out)\n"
    "  --split-out FILE    write the split used, so other models can be compared on it\n"
    "  --init M[:P,...]    start from model M's layers (all, or those whose names start with the\n"
    "                      prefixes P, e.g. --init audio.avm:audio. --init face.avm:face.); repeatable\n"
    "  --freeze P,...      do not train the layers with these prefixes\n"
    "  --teacher M         distillation: learn model M's probabilities too (M may be an ensemble;\n"
    "                      weight train.distill, default 0.5); M must make the same inputs\n"
    "  --resume            continue from MODEL.avm.ckpt after an interruption\n"
    "  --cache FILE        feature cache (features are extracted once)\n"
    "  --set SEC.KEY=VAL   override a pipeline value, e.g. --set train.epochs=20 (repeatable)\n"
    "  --log FILE.csv      per-epoch log (default MODEL.avm.csv); curves go to MODEL.avm-loss.png\n"
    "  --quiet             no per-epoch lines";

/* What `avemo train` prints when it is done: the model, the samples, the record, the accuracies. */
static void print_train_result(const char *out_path, const struct avemo_train_result *res)
{
    if (res->swa_epochs > 0)
        printf("model: %s (weights averaged over the last %d of %d epochs, %.0f s)\n", out_path, res->swa_epochs,
               res->epochs_run, res->seconds);
    else
        printf("model: %s (best epoch %d of %d, %.0f s)\n", out_path, res->best_epoch, res->epochs_run, res->seconds);
    printf("samples: %zu train, %zu validation, %zu test; %zu files skipped\n", res->n_train, res->n_val, res->n_test,
           res->skipped);
    if (res->recorded[0] + res->recorded[1] > 0)
        printf("training record: %zu training and %zu validation files (SHA-256), for avemo eval to leave out\n",
               res->recorded[0], res->recorded[1]);
    else
        printf("training record: none (a model it started from or learnt from has none)\n");
    printf("accuracy: train %.4f", res->train_acc);
    /* Without validation samples the "best" accuracy is the training set's: do not call it validation. */
    if (res->n_val > 0) printf(", validation %.4f", res->best_val_acc);
    if (res->has_test) printf(", test %.4f (unweighted %.4f)", res->test_acc, res->test_uar);
    printf("\n");
}

static int run_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},  {"out", required_argument, NULL, 'o'},
        {"split", required_argument, NULL, 's'}, {"split-out", required_argument, NULL, 'S'},
        {"init", required_argument, NULL, 'i'},
        {"freeze", required_argument, NULL, 'f'}, {"resume", no_argument, NULL, 'r'},
        {"cache", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 'x'},
        {"log", required_argument, NULL, 'l'},   {"quiet", no_argument, NULL, 'q'},
        {"teacher", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *data[32], *overrides[64], *inits[8];
    struct avemo_train_options opt = {0};
    opt.data = data;
    opt.overrides = overrides;
    opt.init = inits;
    opt.progress = 1;
    opt.quiet = cli_quiet(); /* --quiet is taken by main() */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:s:S:i:f:rc:x:l:qt:", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (opt.ndata == 32) { fprintf(stderr, "avemo: at most 32 --data\n"); return CLI_EXIT_USAGE; }
            data[opt.ndata++] = optarg;
            break;
        case 'o': opt.out_path = optarg; break;
        case 's': opt.split_in = optarg; break;
        case 'S': opt.split_out = optarg; break;
        case 'i':
            if (opt.ninit == 8) { fprintf(stderr, "avemo: at most 8 --init\n"); return CLI_EXIT_USAGE; }
            inits[opt.ninit++] = optarg;
            break;
        case 'f': opt.freeze = optarg; break;
        case 't': opt.teacher = optarg; break;
        case 'r': opt.resume = 1; break;
        case 'c': opt.cache_path = optarg; break;
        case 'x':
            if (opt.noverrides == 64) { fprintf(stderr, "avemo: at most 64 --set\n"); return CLI_EXIT_USAGE; }
            if (cli_assignment_arg("train", optarg)) return CLI_EXIT_USAGE;
            overrides[opt.noverrides++] = optarg;
            break;
        case 'l': opt.log_csv = optarg; break;
        case 'q': opt.quiet = 1; break;
        default: fprintf(stderr, "%s\n", train_usage); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !opt.out_path || opt.ndata == 0)
        return cli_usage_error("train", "%s", optind == argc ? "no PIPELINE.ini given" : optind < argc - 1 ? "one PIPELINE.ini"
                               : !opt.out_path ? "no --out MODEL.avm given" : "no --data given");
    opt.pipeline_path = argv[optind];
    struct avemo_train_result res;
    struct avemo_error err = {0};
    if (avemo_train_run(&opt, &res, &err)) return cli_report(&err);
    print_train_result(opt.out_path, &res);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_train = {
    "train", "train a pipeline's network on labelled data", train_usage, run_train, 0,
};
