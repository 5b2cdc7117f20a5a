/* avemo classify FILE|DIR|LIST.txt|-... [--manifest FILE] [--model M] [--mode av|audio|face] [--json|--csv]
 *                [--frames K] [--cascade XML] [--window W --hop H] [--shard I/N] [--out DIR]
 *                [--with M]... [--fusion auto|head|late] [--uncertain-below P] */
#include "cli/classify_output.h"
#include "cli/cli.h"

#include <avemo/eval.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char classify_usage[] =
    "usage: avemo classify FILE|DIR|LIST.txt|-... [--manifest FILE|-] [--model M.avm] [--mode av|audio|face]\n"
    "                      [--json | --csv] [--frames K] [--cascade XML] [--window W [--hop H]]\n"
    "                      [--shard I/N] [--out DIR] [--with M]... [--fusion auto|head|late]\n"
    "                      [--uncertain-below P] [--jobs N]\n"
    "  Tell the emotion of each clip, audio file or face image (JPEG, PNG, BMP, TIFF,\n"
    "  WebP); a folder means its media files (sorted), a .txt/.list manifest one path per line,\n"
    "  - the file read from standard input (at most 512 MiB), e.g. cat clip.flv | avemo classify -\n"
    "  --manifest F  also the files listed in F (one path per line, '#' comments, relative to F's\n"
    "                folder; any name; - reads the list from standard input)\n"
    "  --model M     the model (default: the shipped model of the mode, with the shipped\n"
    "                audio and face models as fallbacks for clips without a face or sound)\n"
    "  --with M      an audio or face model beside --model (fallbacks, late fusion); repeatable\n"
    "  --mode MODE   av, audio or face (default: av, or the mode of the model given)\n"
    "  --json        one JSON object per file (JSON lines); a failed file gets {\"file\",\"error\"}\n"
    "  --csv         a header line, then one row per file: label, emotion, confidence, one column\n"
    "                per class, mode, ...; a failed file's row has only file and error\n"
    "  --frames K    video frames searched for faces, 1..32 (default: the model's, 8)\n"
    "  --fusion F    how av answers are made: head (the av model's network), late (late fusion of\n"
    "                the audio and face models' calibrated log-probabilities with the weights stored\n"
    "                in the av model), auto (default: what the av model file selects)\n"
    "  --uncertain-below P   answers whose top probability is below P are \"uncertain\" and show\n"
    "                the top two (default: the model's stored threshold, else 0.5; 0: never)\n"
    "  --cascade X   OpenCV cascade XML for face detection\n"
    "  --jobs N      files classified at once, 1..8 (default: one per CPU this process may use);\n"
    "                the output stays in input order.  One file alone is decoded on a second\n"
    "                thread beside its face search\n"
    "  --window W --hop H   follow a long recording: one prediction per window of W every H\n"
    "                (audio mode; durations such as 3s, 250ms, 2.5 or 1:30; hop default 1s),\n"
    "                printed as JSON lines (CSV rows with --csv) with start_s and end_s; a silent\n"
    "                window (below -70 dBFS) has \"silent\": true and no label\n"
    "  --shard I/N   do only the I-th of N equal blocks of the files (default: from\n"
    "                SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/AVEMO_SHARD_COUNT);\n"
    "                the shards' outputs in order are the output of one run (avemo merge)\n"
    "  --out DIR     write DIR/classify-IIIII-of-NNNNN.jsonl (.csv with --csv; failed files as\n"
    "                {\"file\",\"error\"} or error rows); a restarted shard skips the files already there";

static void print_text(FILE *out, const char *file, const struct avemo_prediction *p)
{
    if (p->uncertain)
        fprintf(out, "%s: uncertain (%s %.2f or %s %.2f)  [", file, p->labels[p->label], (double)p->confidence,
                p->labels[p->second], (double)p->probs[p->second]);
    else fprintf(out, "%s: %s %.2f  [", file, p->labels[p->label], (double)p->confidence);
    for (int c = 0; c < p->num_classes; c++) fprintf(out, "%s%s %.2f", c ? " " : "", p->labels[c], (double)p->probs[c]);
    fprintf(out, "]  %s%s", avemo_mode_name(p->mode_used), p->late_fusion ? " (late fusion)" : "");
    if (p->mode_used != AVEMO_MODE_AUDIO) fprintf(out, ", faces in %d/%d frames", p->frames_used, p->frames_sampled);
    fprintf(out, ", %.0f ms", 1e3 * p->t_total_s);
    if (p->fallback_reason[0]) fprintf(out, "\n  (%s)", p->fallback_reason);
    if (p->note[0]) fprintf(out, "\n  (%s)", p->note);
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
    const struct cli_classify_output *out = user;
    (void)file; /* the message names the file */
    if (!(cli_quiet() && out->format != CLI_FORMAT_TEXT)) cli_report(err); /* with --quiet the row says it */
}

/* What the command line asked for. */
struct classify_args {
    const char *model, *mode_text, *shard_text, *out_dir, *manifest, *fusion_text;
    int jobs;                  /* --jobs: files at once (0: one per CPU) */
    const char *with[2];           /* --with: audio/face models beside --model */
    int nwith;
    double window_s, hop_s;        /* window_s 0: whole files */
    int hop_given;
    enum cli_format format;
    struct avemo_classifier_options copt;
    char **inputs;
    int ninputs;
};

#define MANIFEST_MAX_BYTES ((size_t)1 << 30)

/* The files: the inputs (folders and .txt manifests expanded), then those of --manifest. */
static int expand_inputs(const struct classify_args *a, struct avemo_items *items)
{
    struct avemo_error err = {0};
    if (avemo_items_expand((const char *const *)a->inputs, a->ninputs, items, &err)) return cli_report(&err);
    if (!a->manifest) return CLI_EXIT_OK;
    uint8_t *text = NULL;
    size_t size = 0;
    int stdin_list = strcmp(a->manifest, "-") == 0;
    int rc = stdin_list ? cli_read_stdin("classify", &text, &size) : CLI_EXIT_OK;
    if (!stdin_list && avemo_read_file(a->manifest, MANIFEST_MAX_BYTES, &text, &size, &err)) rc = cli_report(&err);
    const char *slash = strrchr(a->manifest, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - a->manifest) : 0, a->manifest);
    if (!rc && avemo_items_add_manifest(items, (const char *)text, slash ? dir : NULL,
                                        stdin_list ? "standard input" : a->manifest, &err))
        rc = cli_report(&err);
    free(text);
    if (rc) avemo_items_free(items);
    return rc;
}

/* "-": the file on standard input, classified from memory; its line goes to stdout. */
static int classify_stdin(avemo_classify_ctx *ctx, enum avemo_mode mode, struct cli_classify_output *out,
                          size_t *failed)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = cli_read_stdin("classify", &data, &size);
    struct avemo_prediction *pred = calloc(1, sizeof *pred);
    struct avemo_error err = {0};
    char *line = NULL;
    if (rc || !pred) {
        free(data);
        free(pred);
        return rc ? rc : CLI_EXIT_FAIL;
    }
    if (size == 0) avemo_fail(&err, AVEMO_ERR_EMPTY, "standard input is empty (0 bytes)");
    if (size == 0 || avemo_classify_memory(ctx, data, size, "standard input", mode, pred, &err)) {
        (*failed)++;
        report_item(out, "-", &err);
        line = cli_classify_error_line(out, "-", &err);
    } else {
        line = out->format == CLI_FORMAT_TEXT ? format_text(NULL, pred, "-") : cli_classify_line(out, pred, "-");
    }
    if (line) printf("%s\n", line);
    fflush(stdout);
    free(line);
    free(pred);
    free(data);
    return CLI_EXIT_OK;
}

/* A batch over items[0..n) (this task's shard of them) to stdout or to the shard's file. */
static int classify_batch(avemo_classify_ctx *ctx, enum avemo_mode mode, int jobs, struct cli_classify_output *out,
                          const struct avemo_shard *shard, const char *out_path, const char *header,
                          char **items, size_t n, size_t *failed)
{
    struct avemo_error err = {0};
    struct avemo_classify_batch b = {0};
    b.items = (const char *const *)items;
    b.n = n;
    b.shard = *shard;
    b.mode = mode;
    b.workers = jobs;
    b.out_path = out_path;
    b.header = header;
    b.format = out->format == CLI_FORMAT_TEXT && !out_path ? format_text : cli_classify_line;
    b.format_error = out->format == CLI_FORMAT_TEXT ? NULL : cli_classify_error_line;
    b.on_error = report_item;
    b.user = out;
    struct avemo_shard_stats stats;
    size_t batch_failed = 0;
    int rc = avemo_classify_batch(ctx, &b, &stats, &batch_failed, &err) ? cli_report(&err) : CLI_EXIT_OK;
    *failed += batch_failed;
    if (out_path && !cli_quiet())
        fprintf(stderr, "avemo classify: shard %d/%d: %zu files, %zu done before, %zu now (%zu failed) -> %s\n",
                shard->index, shard->count, stats.items, stats.skipped, stats.done, batch_failed, out_path);
    return rc;
}

/* Every file (folders and manifests expanded), or this task's shard of them; "-" in order. */
static int classify_files(avemo_classify_ctx *ctx, enum avemo_mode mode, const struct classify_args *a,
                          struct cli_classify_output *out)
{
    struct avemo_error err = {0};
    struct avemo_shard shard;
    struct avemo_items items = {0};
    char out_path[4200];
    if (a->shard_text ? avemo_shard_parse(a->shard_text, &shard, &err) : avemo_shard_from_env(&shard, &err))
        return cli_usage_error("classify", "%s", err.message);
    if (a->out_dir && avemo_shard_path(a->out_dir, "classify", &shard, out->format == CLI_FORMAT_CSV ? ".csv" : ".jsonl",
                                       out_path, sizeof out_path, &err))
        return cli_report(&err);
    int rc = expand_inputs(a, &items);
    if (rc) return rc;
    size_t stdin_items = 0;
    for (size_t i = 0; i < items.n; i++) stdin_items += strcmp(items.paths[i], "-") == 0;
    if (stdin_items && (a->out_dir || shard.count > 1))
        rc = cli_usage_error("classify", "'-' (standard input) cannot be sharded or written to --out");
    char *header = rc ? NULL : cli_classify_header(out);
    if (header && !a->out_dir) printf("%s\n", header);
    size_t failed = 0;
    for (size_t i = 0, j; !rc && i <= items.n; i = j + 1) {
        for (j = i; j < items.n && strcmp(items.paths[j], "-") != 0; j++) {}
        if (j > i || items.n == 0)
            rc = classify_batch(ctx, mode, a->jobs, out, &shard, a->out_dir ? out_path : NULL, header, items.paths + i, j - i,
                                &failed);
        if (!rc && j < items.n) rc = classify_stdin(ctx, mode, out, &failed);
    }
    free(header);
    avemo_items_free(&items);
    return rc != CLI_EXIT_OK ? rc : failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

struct window_output {
    const struct cli_classify_output *out;
    const char *file;
};

/* One JSON line (CSV row) per window: the time span and the prediction. */
static int print_window(void *user, double start_s, double end_s, const struct avemo_prediction *pred)
{
    const struct window_output *w = user;
    char *text = cli_classify_window_line(w->out, pred, w->file, start_s, end_s);
    if (text) printf("%s\n", text);
    free(text);
    fflush(stdout);
    return 0;
}

static int parse_option(int c, struct classify_args *a)
{
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'M': a->mode_text = optarg; break;
    case 'j':
    case 'C':
        if (a->format != CLI_FORMAT_TEXT) return cli_usage_error("classify", "--json and --csv: choose one");
        a->format = c == 'j' ? CLI_FORMAT_JSON : CLI_FORMAT_CSV;
        break;
    case 'k': if (cli_int_arg("classify", "--frames", optarg, 1, 32, &a->copt.frames)) return CLI_EXIT_USAGE; break;
    case 'c': a->copt.cascade_path = optarg; break;
    case 'w': if (cli_duration_arg("classify", "--window", optarg, 0.1, 600, &a->window_s)) return CLI_EXIT_USAGE; break;
    case 'H':
        if (cli_duration_arg("classify", "--hop", optarg, 0.05, 600, &a->hop_s)) return CLI_EXIT_USAGE;
        a->hop_given = 1;
        break;
    case 's': a->shard_text = optarg; break;
    case 'o': a->out_dir = optarg; break;
    case 'f': a->manifest = optarg; break;
    case 'F': a->fusion_text = optarg; break;
    case 'J': if (cli_int_arg("classify", "--jobs", optarg, 1, 8, &a->jobs)) return CLI_EXIT_USAGE; break;
    case 'W':
        if (a->nwith == 2) return cli_usage_error("classify", "--with at most twice (an audio and a face model)");
        a->with[a->nwith++] = optarg;
        break;
    case 'u': {
        double t;
        if (cli_double_arg("classify", "--uncertain-below", optarg, 0, 1, &t)) return CLI_EXIT_USAGE;
        a->copt.uncertain_below = t > 0 ? (float)t : -1.0f; /* 0: never uncertain */
        break;
    }
    default: fprintf(stderr, "%s\n", classify_usage); return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* Options that do not go together, and a missing input: usage errors that say why. */
static int check_args(const struct classify_args *a)
{
    if (a->ninputs == 0 && !a->manifest)
        return cli_usage_error("classify", "no input: name files, folders, manifests (--manifest F) or - (standard input)");
    int stdin_inputs = 0;
    for (int i = 0; i < a->ninputs; i++) stdin_inputs += strcmp(a->inputs[i], "-") == 0;
    if (stdin_inputs + (a->manifest && strcmp(a->manifest, "-") == 0) > 1)
        return cli_usage_error("classify", "standard input can be read once: one '-' (a file) or --manifest - (a list)");
    if (a->hop_given && a->window_s <= 0) return cli_usage_error("classify", "--hop needs --window");
    if (a->window_s <= 0) return CLI_EXIT_OK;
    if (a->mode_text && strcmp(a->mode_text, "audio") != 0)
        return cli_usage_error("classify", "--window follows the sound over time: it needs --mode audio, not --mode %s",
                               a->mode_text);
    if (a->shard_text || a->out_dir || a->manifest || stdin_inputs)
        return cli_usage_error("classify", "--window reads the files named on the command line, one after the other "
                               "(not --shard, --out, --manifest or -)");
    return CLI_EXIT_OK;
}

static int parse_classify_args(int argc, char **argv, struct classify_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"mode", required_argument, NULL, 'M'},
        {"json", no_argument, NULL, 'j'},        {"frames", required_argument, NULL, 'k'},
        {"cascade", required_argument, NULL, 'c'}, {"window", required_argument, NULL, 'w'},
        {"hop", required_argument, NULL, 'H'},     {"shard", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},     {"csv", no_argument, NULL, 'C'},
        {"manifest", required_argument, NULL, 'f'}, {"fusion", required_argument, NULL, 'F'},
        {"uncertain-below", required_argument, NULL, 'u'}, {"with", required_argument, NULL, 'W'},
        {"jobs", required_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->hop_s = 1;
    int c, rc = CLI_EXIT_OK;
    optind = 1;
    while (!rc && (c = getopt_long(argc, argv, "m:M:jk:c:", longopts, NULL)) != -1) rc = parse_option(c, a);
    if (rc) return rc;
    a->inputs = argv + optind;
    a->ninputs = argc - optind;
    enum avemo_mode mode;
    struct avemo_error err = {0};
    if (a->mode_text && avemo_mode_parse(a->mode_text, &mode, &err))
        return cli_usage_error("classify", "--mode: %s", err.message);
    if (a->fusion_text && cli_parse_fusion("classify", a->fusion_text, &a->copt.fusion)) return CLI_EXIT_USAGE;
    return check_args(a);
}

static int run_classify(int argc, char **argv)
{
    struct classify_args a;
    int rc = parse_classify_args(argc, argv, &a);
    if (rc) return rc;
    struct avemo_error err = {0};
    enum avemo_mode mode;
    /* No --mode: windows are audio, a named model runs in its own mode, the default is av. */
    avemo_mode_parse(a.mode_text ? a.mode_text : a.window_s > 0 ? "audio" : "av", &mode, NULL);
    /* The shipped model of the mode; the library finds its companions for the other modes. */
    char shipped[4096];
    if (!a.model) {
        if (avemo_default_model(mode, shipped, sizeof shipped, &err)) return cli_report(&err);
        a.model = shipped;
    }
    if (a.nwith) {
        a.copt.extra_models = a.with;
        a.copt.n_extra_models = a.nwith;
    }
    /* One file at a time: its decoding runs beside its face search, on the second core. */
    a.copt.overlap = 1;
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    if (avemo_classifier_open(a.model, &a.copt, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err)) {
        avemo_classifier_close(clf);
        return cli_report(&err);
    }
    if (!a.mode_text && a.window_s <= 0 && !avemo_classifier_supports(clf, mode)) mode = avemo_classifier_default_mode(clf);
    struct cli_classify_output out;
    cli_classify_output_init(&out, a.format, a.window_s > 0, clf);
    if (a.window_s > 0) {
        char *header = cli_classify_header(&out);
        if (header) printf("%s\n", header);
        free(header);
        for (int i = 0; i < a.ninputs; i++) {
            struct window_output w = {&out, a.inputs[i]};
            if (avemo_classify_windows(ctx, a.inputs[i], a.window_s, a.hop_s, print_window, &w, &err)) rc = cli_report(&err);
        }
    } else {
        rc = classify_files(ctx, mode, &a, &out);
    }
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return rc;
}

const struct cli_command cli_cmd_classify = {
    "classify", "tell the emotion of clips, audio files or face images", classify_usage, run_classify, CLI_ONE_SHOT,
};
