/* avemo explain FILE --out DIR [--model M] [--mode av|audio|face] [--json] [--frames K] [--cascade XML]
 *               [--fusion auto|head|late] */
#include "cli/cli.h"

#include <avemo/eval.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char explain_usage[] =
    "usage: avemo explain FILE --out DIR [--model M.avm] [--mode av|audio|face] [--json] [--frames K]\n"
    "                     [--cascade XML] [--fusion auto|head|late]\n"
    "  Classify FILE as `avemo classify` does and show why: Grad-CAM heat maps of the predicted\n"
    "  class over each face crop (DIR/face-01.png, ...) and over the audio features\n"
    "  (DIR/audio.png, time left to right, low coefficients at the bottom), and each modality's\n"
    "  share of the decision (the Shapley values of the class's probability when the audio or\n"
    "  the face branch's features are replaced by zeros; the shares sum to 1).  When the av answer is\n"
    "  the late fusion of the audio and face models (the model file selects it), each map is that\n"
    "  of its own model and the shares are the two models' in the fused probability (a model left\n"
    "  out counts as uniform).\n"
    "  --out DIR     folder for the PNG files (made when missing)\n"
    "  --model M     the model (default: the shipped model of the mode; the audio and face models\n"
    "                beside it, else the shipped ones, serve clips without a face or sound)\n"
    "  --mode MODE   av, audio or face (default: av, or the mode of the model given)\n"
    "  --json        one JSON object: classify's fields plus \"explanation\" (docs/cli.md)\n"
    "  --frames K    video frames searched for faces (default: the model's, 8)\n"
    "  --cascade X   OpenCV cascade XML for face detection\n"
    "  --fusion F    how av answers are made, as for classify: head (the av network), late (the\n"
    "                audio and face models), auto (default: what the av model file selects)";

struct explain_args {
    const char *file, *out_dir, *model, *mode_text;
    int json;
    struct avemo_classifier_options copt;
};

/* 0, or CLI_EXIT_USAGE after printing why. */
static int parse_args(int argc, char **argv, struct explain_args *a)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},     {"model", required_argument, NULL, 'm'},
        {"mode", required_argument, NULL, 'M'},    {"json", no_argument, NULL, 'j'},
        {"frames", required_argument, NULL, 'k'},  {"cascade", required_argument, NULL, 'c'},
        {"fusion", required_argument, NULL, 'F'},  {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:m:M:jk:c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': a->out_dir = optarg; break;
        case 'm': a->model = optarg; break;
        case 'M': a->mode_text = optarg; break;
        case 'j': a->json = 1; break;
        case 'k':
            if (cli_int_arg("explain", "--frames", optarg, 1, 32, &a->copt.frames)) return CLI_EXIT_USAGE;
            break;
        case 'c': a->copt.cascade_path = optarg; break;
        case 'F':
            if (cli_parse_fusion("explain", optarg, &a->copt.fusion)) return CLI_EXIT_USAGE;
            break;
        default: return CLI_EXIT_USAGE; /* getopt said why */
        }
    }
    if (!a->out_dir) return cli_usage_error("explain", "--out DIR is required");
    if (optind != argc - 1)
        return cli_usage_error("explain", "expected one FILE (got %d)", argc - optind);
    a->file = argv[optind];
    return 0;
}

/* mkdir -p: each missing folder of the path in turn. */
static int make_dir(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        fprintf(stderr, "avemo explain: --out: the path is longer than %zu bytes\n", sizeof path - 1);
        return -1;
    }
    for (char *p = path + 1;; p++) {
        int end = *p == 0;
        if (*p != '/' && !end) continue;
        *p = 0;
        struct stat sb;
        if (mkdir(path, 0777) != 0 && !(errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            fprintf(stderr, "avemo explain: %s: cannot make the folder: %s\n", path,
                    strerror(errno == EEXIST ? ENOTDIR : errno));
            return -1;
        }
        if (end) return 0;
        *p = '/';
    }
}

/* Write the PNGs; their paths go to face_paths (nfaces entries, malloc'ed) and audio_path. */
static int write_maps(const struct avemo_explanation *ex, const char *dir, char **face_paths, char *audio_path,
                      size_t size)
{
    struct avemo_error err = {0};
    struct avemo_heatmap map;
    audio_path[0] = 0;
    if (ex->has_audio) {
        snprintf(audio_path, size, "%s/audio.png", dir);
        avemo_explanation_audio_map(ex, &map);
        if (avemo_heatmap_write_png(&map, audio_path, &err)) return cli_report(&err);
    }
    for (int i = 0; i < ex->nfaces; i++) {
        face_paths[i] = malloc(size);
        if (!face_paths[i]) return CLI_EXIT_FAIL;
        snprintf(face_paths[i], size, "%s/face-%02d.png", dir, i + 1);
        avemo_explanation_face_map(ex, i, &map);
        if (avemo_heatmap_write_png(&map, face_paths[i], &err)) return cli_report(&err);
    }
    return CLI_EXIT_OK;
}

static void print_text(const struct explain_args *a, const struct avemo_explanation *ex, char **face_paths,
                       const char *audio_path)
{
    const struct avemo_prediction *p = &ex->pred;
    const char *label = p->labels[p->label];
    printf("%s: %s %.2f  %s", a->file, label, (double)p->confidence, avemo_mode_name(p->mode_used));
    if (p->fallback_reason[0]) printf("  (%s)", p->fallback_reason);
    if (p->late_fusion)
        printf("\n  late fusion of %s and %s: each model's maps; shares of the two models in the fused answer",
               ex->audio_model, ex->face_model);
    printf("\n  share of the decision: audio %.2f, face %.2f\n", (double)ex->audio_share, (double)ex->face_share);
    printf("  P(%s) %.3f with both %s, %.3f with neither; Shapley values: audio %+.3f, face %+.3f\n", label,
           (double)ex->prob_all, p->late_fusion ? "models" : "branches", (double)ex->prob_none, (double)ex->audio_contribution,
           (double)ex->face_contribution);
    if (ex->has_audio) printf("  %s (%s, %s layer %s)\n", audio_path, ex->audio_feature, ex->audio_model, ex->audio_layer);
    for (int i = 0; i < ex->nfaces; i++)
        printf("  %s (face crop %d, %s layer %s)\n", face_paths[i], i + 1, ex->face_model, ex->face_layer);
}

static int explain_file(avemo_classify_ctx *ctx, enum avemo_mode mode, const struct explain_args *a)
{
    struct avemo_error err = {0};
    struct avemo_explanation ex;
    if (avemo_explain_file(ctx, a->file, mode, &ex, &err)) return cli_report(&err);
    char *face_paths[AVEMO_EXPLAIN_MAX_FACES] = {0}, audio_path[4200];
    int rc = write_maps(&ex, a->out_dir, face_paths, audio_path, sizeof audio_path);
    if (rc == CLI_EXIT_OK && a->json) {
        char *text = avemo_explanation_json(&ex, a->file, (const char *const *)face_paths,
                                            ex.has_audio ? audio_path : NULL);
        if (text) printf("%s\n", text);
        else rc = CLI_EXIT_FAIL;
        free(text);
    } else if (rc == CLI_EXIT_OK) {
        print_text(a, &ex, face_paths, audio_path);
    }
    for (int i = 0; i < ex.nfaces; i++) free(face_paths[i]);
    avemo_explanation_free(&ex);
    return rc;
}

static int run_explain(int argc, char **argv)
{
    struct explain_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    struct avemo_error err = {0};
    enum avemo_mode mode = AVEMO_MODE_AV;
    if (a.mode_text && avemo_mode_parse(a.mode_text, &mode, &err))
        return cli_usage_error("explain", "--mode: %s", err.message);
    /* The shipped model of the mode; the library finds its companions for the other modes. */
    char shipped[4096];
    if (!a.model) {
        if (avemo_default_model(mode, shipped, sizeof shipped, &err)) return cli_report(&err);
        a.model = shipped;
    }
    if (make_dir(a.out_dir)) return CLI_EXIT_FAIL;
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    if (avemo_classifier_open(a.model, &a.copt, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err)) {
        avemo_classifier_close(clf);
        return cli_report(&err);
    }
    if (!a.mode_text) mode = avemo_classifier_default_mode(clf);
    rc = explain_file(ctx, mode, &a);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return rc;
}

const struct cli_command cli_cmd_explain = {
    "explain", "show why: heat maps and each modality's share of the decision", explain_usage, run_explain, CLI_ONE_SHOT,
};
