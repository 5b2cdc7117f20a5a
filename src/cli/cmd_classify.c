/* avemo classify FILE... [--model M] [--mode av|audio|face] [--json] [--frames K] [--cascade XML] */
#include "cli/cli.h"

#include <avemo/eval.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char classify_usage[] =
    "usage: avemo classify FILE... [--model M.avm] [--mode av|audio|face] [--json] [--frames K] [--cascade XML]\n"
    "  Tell the emotion of each clip, audio file or face image (JPEG).\n"
    "  --model M     the model (default: the shipped model of the mode, with the shipped\n"
    "                audio and face models as fallbacks for clips without a face or sound)\n"
    "  --mode MODE   av, audio or face (default: av, or the mode of the model given)\n"
    "  --json        one JSON object per file (JSON lines)\n"
    "  --frames K    video frames searched for faces (default: the model's, 8)\n"
    "  --cascade X   OpenCV cascade XML for face detection\n"
    "  --window W --hop H   follow a long recording: one prediction per window of W seconds every\n"
    "                H seconds (audio mode; e.g. --window 3s --hop 1s), printed as JSON lines";

static void print_text(const char *file, const struct avemo_prediction *p)
{
    printf("%s: %s %.2f  [", file, p->labels[p->label], (double)p->confidence);
    for (int c = 0; c < p->num_classes; c++) printf("%s%s %.2f", c ? " " : "", p->labels[c], (double)p->probs[c]);
    printf("]  %s", avemo_mode_name(p->mode_used));
    if (p->mode_used != AVEMO_MODE_AUDIO) printf(", faces in %d/%d frames", p->frames_used, p->frames_sampled);
    printf(", %.0f ms\n", 1e3 * p->t_total_s);
    if (p->fallback_reason[0]) printf("  (%s)\n", p->fallback_reason);
}

/* One JSON line per window: the time span and the prediction. */
static int print_window(void *user, double start_s, double end_s, const struct avemo_prediction *pred)
{
    char *text = avemo_prediction_json(pred, user);
    if (text && text[0] == '{') printf("{\"start_s\":%.3f,\"end_s\":%.3f,%s\n", start_s, end_s, text + 1);
    free(text);
    fflush(stdout);
    return 0;
}

/* The shipped models: the mode's own first, the unimodal ones as fallbacks. */
static int default_models(enum avemo_mode mode, char paths[3][1024], const char *extra[2], int *nextra,
                          struct avemo_error *err)
{
    if (avemo_default_model(mode, paths[0], sizeof paths[0], err)) return -1;
    *nextra = 0;
    for (int m = AVEMO_MODE_AUDIO; m <= AVEMO_MODE_FACE; m++)
        if (m != (int)mode && avemo_default_model((enum avemo_mode)m, paths[1 + *nextra], sizeof paths[0], NULL) == AVEMO_OK) {
            extra[*nextra] = paths[1 + *nextra];
            (*nextra)++;
        }
    return 0;
}

static int run_classify(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"mode", required_argument, NULL, 'M'},
        {"json", no_argument, NULL, 'j'},        {"frames", required_argument, NULL, 'k'},
        {"cascade", required_argument, NULL, 'c'}, {"window", required_argument, NULL, 'w'},
        {"hop", required_argument, NULL, 'H'},     {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *mode_text = NULL;
    double window_s = 0, hop_s = 1;
    int json = 0, c;
    struct avemo_classifier_options copt = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:M:jk:c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'M': mode_text = optarg; break;
        case 'j': json = 1; break;
        case 'k': if (avemo_parse_int(optarg, 0, 32, &copt.frames)) copt.frames = -1; break; /* checked below */
        case 'c': copt.cascade_path = optarg; break;
        case 'w': if (avemo_parse_double(optarg, 0, 1e6, &window_s)) window_s = -1; break;
        case 'H': if (avemo_parse_double(optarg, 0, 1e6, &hop_s)) hop_s = -1; break;
        default: fprintf(stderr, "%s\n", classify_usage); return CLI_EXIT_USAGE;
        }
    }
    struct avemo_error err = {0};
    enum avemo_mode mode;
    /* No --mode: windows are audio, a named model runs in its own mode, the default is av. */
    int mode_given = mode_text != NULL;
    if (!mode_given) mode_text = "av";
    if (window_s > 0 && strcmp(mode_text, "av") == 0) mode_text = "audio";
    if (avemo_mode_parse(mode_text, &mode, &err)) return cli_report(&err);
    if (optind >= argc || copt.frames < 0 || copt.frames > 32 || window_s < 0 || hop_s < 0) {
        fprintf(stderr, "%s\n", classify_usage);
        return CLI_EXIT_USAGE;
    }
    char paths[3][1024];
    const char *extra[2];
    if (!model) {
        if (default_models(mode, paths, extra, &copt.n_extra_models, &err)) return cli_report(&err);
        model = paths[0];
        copt.extra_models = extra;
    }
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    if (avemo_classifier_open(model, &copt, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err)) {
        avemo_classifier_close(clf);
        return cli_report(&err);
    }
    if (!mode_given && window_s <= 0 && !avemo_classifier_supports(clf, mode)) mode = avemo_classifier_default_mode(clf);
    int rc = CLI_EXIT_OK;
    for (int i = optind; window_s > 0 && i < argc; i++)
        if (avemo_classify_windows(ctx, argv[i], window_s, hop_s, print_window, argv[i], &err)) rc = cli_report(&err);
    for (int i = optind; window_s <= 0 && i < argc; i++) {
        struct avemo_prediction pred;
        if (avemo_classify_file(ctx, argv[i], mode, &pred, &err)) {
            rc = cli_report(&err);
            continue;
        }
        if (json) {
            char *text = avemo_prediction_json(&pred, argv[i]);
            printf("%s\n", text ? text : "{}");
            free(text);
        } else {
            print_text(argv[i], &pred);
        }
    }
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return rc;
}

const struct cli_command cli_cmd_classify = {
    "classify", "tell the emotion of clips, audio files or face images", classify_usage, run_classify,
};
