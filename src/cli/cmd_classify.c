/* avemo classify FILE|DIR|LIST.txt... [--model M] [--mode av|audio|face] [--json] [--frames K] [--cascade XML]
 *                [--shard I/N] [--out DIR] */
#include "cli/cli.h"

#include <avemo/eval.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char classify_usage[] =
    "usage: avemo classify FILE|DIR|LIST.txt... [--model M.avm] [--mode av|audio|face] [--json] [--frames K]\n"
    "                      [--cascade XML] [--shard I/N] [--out DIR]\n"
    "  Tell the emotion of each clip, audio file or face image (JPEG, PNG, BMP, TIFF,\n"
    "  WebP); a folder means its media files (sorted), a .txt/.list manifest one path per line.\n"
    "  --model M     the model (default: the shipped model of the mode, with the shipped\n"
    "                audio and face models as fallbacks for clips without a face or sound)\n"
    "  --mode MODE   av, audio or face (default: av, or the mode of the model given)\n"
    "  --json        one JSON object per file (JSON lines)\n"
    "  --frames K    video frames searched for faces (default: the model's, 8)\n"
    "  --cascade X   OpenCV cascade XML for face detection\n"
    "  --window W --hop H   follow a long recording: one prediction per window of W seconds every\n"
    "                H seconds (audio mode; e.g. --window 3s --hop 1s), printed as JSON lines\n"
    "  --shard I/N   do only the I-th of N equal blocks of the files (default: from\n"
    "                SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/AVEMO_SHARD_COUNT);\n"
    "                the shards' outputs in order are the output of one run (avemo merge)\n"
    "  --out DIR     write DIR/classify-IIIII-of-NNNNN.jsonl (JSON lines, failed files as\n"
    "                {\"file\",\"error\"}); a restarted shard skips the files already there";

static void print_text(FILE *out, const char *file, const struct avemo_prediction *p)
{
    fprintf(out, "%s: %s %.2f  [", file, p->labels[p->label], (double)p->confidence);
    for (int c = 0; c < p->num_classes; c++) fprintf(out, "%s%s %.2f", c ? " " : "", p->labels[c], (double)p->probs[c]);
    fprintf(out, "]  %s", avemo_mode_name(p->mode_used));
    if (p->mode_used != AVEMO_MODE_AUDIO) fprintf(out, ", faces in %d/%d frames", p->frames_used, p->frames_sampled);
    fprintf(out, ", %.0f ms", 1e3 * p->t_total_s);
    if (p->fallback_reason[0]) fprintf(out, "\n  (%s)", p->fallback_reason);
}

/* The text line(s) of one file, for the batch runner (malloc'ed). */
static char *format_text(void *user, const struct avemo_prediction *p, const char *file)
{
    (void)user;
    char *text = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&text, &size);
    if (!m) return NULL;
    print_text(m, file, p);
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void report_item(void *user, const char *file, const struct avemo_error *err)
{
    (void)user;
    (void)file; /* the message names the file */
    cli_report(err);
}

/* Every file (folders and manifests expanded), or this task's shard of them. */
static int classify_files(avemo_classify_ctx *ctx, enum avemo_mode mode, int json, const char *shard_text,
                          const char *out_dir, char **inputs, int ninputs)
{
    struct avemo_error err = {0};
    struct avemo_classify_batch b = {0};
    struct avemo_items items = {0};
    char out_path[4200];
    if ((shard_text ? avemo_shard_parse(shard_text, &b.shard, &err) : avemo_shard_from_env(&b.shard, &err)) ||
        avemo_items_expand((const char *const *)inputs, ninputs, &items, &err) ||
        (out_dir && avemo_shard_path(out_dir, "classify", &b.shard, ".jsonl", out_path, sizeof out_path, &err)))
        return cli_report(&err);
    b.items = (const char *const *)items.paths;
    b.n = items.n;
    b.mode = mode;
    b.out_path = out_dir ? out_path : NULL;
    b.format = json || out_dir ? NULL : format_text;
    b.on_error = report_item;
    struct avemo_shard_stats stats;
    size_t failed = 0;
    int rc = avemo_classify_batch(ctx, &b, &stats, &failed, &err) ? cli_report(&err) : CLI_EXIT_OK;
    if (out_dir)
        fprintf(stderr, "avemo classify: shard %d/%d: %zu files, %zu done before, %zu now (%zu failed) -> %s\n",
                b.shard.index, b.shard.count, stats.items, stats.skipped, stats.done, failed, out_path);
    avemo_items_free(&items);
    return rc != CLI_EXIT_OK || failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* One JSON line per window: the time span and the prediction. */
static int print_window(void *user, double start_s, double end_s, const struct avemo_prediction *pred)
{
    char *text = avemo_window_json(pred, user, start_s, end_s);
    if (text) printf("%s\n", text);
    free(text);
    fflush(stdout);
    return 0;
}

static int run_classify(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"mode", required_argument, NULL, 'M'},
        {"json", no_argument, NULL, 'j'},        {"frames", required_argument, NULL, 'k'},
        {"cascade", required_argument, NULL, 'c'}, {"window", required_argument, NULL, 'w'},
        {"hop", required_argument, NULL, 'H'},     {"shard", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},     {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *mode_text = NULL, *shard_text = NULL, *out_dir = NULL;
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
        case 's': shard_text = optarg; break;
        case 'o': out_dir = optarg; break;
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
    /* The shipped model of the mode; the library finds its companions for the other modes. */
    char shipped[4096];
    if (!model) {
        if (avemo_default_model(mode, shipped, sizeof shipped, &err)) return cli_report(&err);
        model = shipped;
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
    if (window_s <= 0) rc = classify_files(ctx, mode, json, shard_text, out_dir, argv + optind, argc - optind);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return rc;
}

const struct cli_command cli_cmd_classify = {
    "classify", "tell the emotion of clips, audio files or face images", classify_usage, run_classify,
};
