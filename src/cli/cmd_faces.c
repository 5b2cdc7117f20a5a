/* avemo faces FILE [--frames K] [--out DIR] [--json] [--cascade PATH] [--draw] ... */
#include "cli/cli.h"

#include <avemo/vision.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char faces_usage[] =
    "usage: avemo faces FILE|- [--frames K] [--out DIR] [--json] [--cascade PATH] [--draw]\n"
    "                   [--size N] [--gray] [--margin M] [--offset-y F] [--track] [--fallback]\n"
    "  Detect the largest face in K frames sampled evenly over a clip (or in a photo: JPEG, PNG, ...)\n"
    "  and print, per frame, its index, time, face_found and box [x, y, w, h] in pixels.\n"
    "  FILE - reads the clip or photo from standard input.\n"
    "  --frames K      frames to sample (default 8)\n"
    "  --out DIR       write the crops (face_NNN.jpg) into DIR (which must exist)\n"
    "  --draw          with --out: also write each frame with the box drawn (frame_NNN.jpg)\n"
    "  --json          one JSON object\n"
    "  --cascade PATH  OpenCV cascade XML (default " AVEMO_DEFAULT_CASCADE ")\n"
    "  --size N        side of the square crop, 8..1024 (default 64)\n"
    "  --gray          gray crops (default RGB)\n"
    "  --margin M      border around the box, fraction of its side, -0.25..2 (default 0.1)\n"
    "  --offset-y F    move the crop down by F of the box side, -0.5..0.5 (default 0)\n"
    "  --track         search near the previous face first (faster)\n"
    "  --fallback      crop the centre square when no face is found";

struct faces_args {
    const char *file, *out_dir, *cascade;
    int frames, json, draw;
    struct avemo_face_options opt;
};

/* CLI_EXIT_OK, or a usage error after saying why. */
static int parse_args(int argc, char **argv, struct faces_args *a)
{
    static const struct option longopts[] = {
        {"frames", required_argument, NULL, 'k'}, {"out", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},         {"cascade", required_argument, NULL, 'c'},
        {"draw", no_argument, NULL, 'd'},         {"size", required_argument, NULL, 's'},
        {"gray", no_argument, NULL, 'g'},         {"margin", required_argument, NULL, 'm'},
        {"track", no_argument, NULL, 't'},        {"fallback", no_argument, NULL, 'f'},
        {"offset-y", required_argument, NULL, 'y'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->frames = 8;
    a->cascade = AVEMO_DEFAULT_CASCADE;
    avemo_face_options_default(&a->opt);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:o:jc:ds:gm:tfy:", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': if (cli_int_arg("faces", "--frames", optarg, 1, 100000, &a->frames)) return CLI_EXIT_USAGE; break;
        case 'o': a->out_dir = optarg; break;
        case 'j': a->json = 1; break;
        case 'c': a->cascade = optarg; break;
        case 'd': a->draw = 1; break;
        case 's': if (cli_int_arg("faces", "--size", optarg, 8, 1024, &a->opt.size)) return CLI_EXIT_USAGE; break;
        case 'g': a->opt.channels = 1; break;
        case 'm': if (cli_double_arg("faces", "--margin", optarg, -0.25, 2, &a->opt.margin)) return CLI_EXIT_USAGE; break;
        case 'y': if (cli_double_arg("faces", "--offset-y", optarg, -0.5, 0.5, &a->opt.offset_y)) return CLI_EXIT_USAGE; break;
        case 't': a->opt.track = 1; break;
        case 'f': a->opt.center_fallback = 1; break;
        default: fprintf(stderr, "%s\n", faces_usage); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("faces", optind == argc ? "no FILE given" : "one FILE at a time (%d given)", argc - optind);
    if (a->draw && !a->out_dir) return cli_usage_error("faces", "--draw writes images: it needs --out DIR");
    a->file = argv[optind];
    return CLI_EXIT_OK;
}

/* --out must be a folder we can write into: said before any work, with the system's reason. */
static int check_out_dir(const char *dir)
{
    struct stat st;
    const char *why = stat(dir, &st) != 0 ? strerror(errno) : !S_ISDIR(st.st_mode) ? "not a directory"
                      : access(dir, W_OK) != 0 ? strerror(errno) : NULL;
    if (!why) return CLI_EXIT_OK;
    fprintf(stderr, "avemo faces: --out %s: %s\n", dir, why);
    return CLI_EXIT_FAIL;
}

static int is_still_image_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    static const char *const still[] = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"};
    for (size_t i = 0; dot && i < sizeof still / sizeof still[0]; i++)
        if (strcasecmp(dot, still[i]) == 0) return 1;
    return 0;
}

/* Write face_NNN.jpg (and frame_NNN.jpg with the box when drawing). */
static enum avemo_status write_outputs(const struct faces_args *a, int i, const struct avemo_face *face,
                                       struct avemo_image *frame, struct avemo_error *err)
{
    char path[4096];
    if (face->has_crop) {
        snprintf(path, sizeof path, "%s/face_%03d.jpg", a->out_dir, i);
        enum avemo_status rc = avemo_jpeg_write_file(path, &face->image, 95, err);
        if (rc) return rc;
    }
    if (a->draw && frame) {
        static const uint8_t green[3] = {0, 255, 0};
        if (face->face_found) avemo_image_draw_rect(frame, face->box, green, 2);
        snprintf(path, sizeof path, "%s/frame_%03d.jpg", a->out_dir, i);
        return avemo_jpeg_write_file(path, frame, 90, err);
    }
    return AVEMO_OK;
}

static cJSON *face_json(int i, const struct avemo_face *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sample", i);
    cJSON_AddNumberToObject(o, "index", (double)f->frame_index);
    cJSON_AddNumberToObject(o, "time_s", f->time_s);
    cJSON_AddBoolToObject(o, "face_found", f->face_found);
    if (f->face_found) {
        int box[4] = {f->box.x, f->box.y, f->box.w, f->box.h};
        cJSON_AddItemToObject(o, "box", cJSON_CreateIntArray(box, 4));
    } else {
        cJSON_AddNullToObject(o, "box");
    }
    if (f->has_crop) {
        int crop[4] = {f->crop.x, f->crop.y, f->crop.w, f->crop.h};
        cJSON_AddItemToObject(o, "crop", cJSON_CreateIntArray(crop, 4));
    }
    return o;
}

static void print_results(const struct faces_args *a, const struct avemo_face *faces, int count)
{
    if (a->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "file", a->file);
        cJSON_AddStringToObject(root, "cascade", a->cascade);
        cJSON *arr = cJSON_AddArrayToObject(root, "frames");
        for (int i = 0; i < count; i++) cJSON_AddItemToArray(arr, face_json(i, &faces[i]));
        char *text = cJSON_Print(root);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(root);
        return;
    }
    for (int i = 0; i < count; i++) {
        const struct avemo_face *f = &faces[i];
        if (f->frame_index >= 0) printf("frame %lld  %.3f s  ", (long long)f->frame_index, f->time_s);
        else printf("image  ");
        if (f->face_found) printf("face [%d, %d, %d, %d]\n", f->box.x, f->box.y, f->box.w, f->box.h);
        else printf("no face%s\n", f->has_crop ? " (centre crop)" : "");
    }
}

/* A still image: one detection; a clip: the faces of its sampled frames. */
static int faces_of_media(const struct faces_args *a, avemo_detector *det, avemo_media *media)
{
    struct avemo_error err = {0};
    int rc = CLI_EXIT_OK;
    if (avemo_media_is_still_image(media)) {
        struct avemo_image img = {0};
        struct avemo_face face = {0};
        if (avemo_image_from_media(media, a->opt.channels, &img, &err) ||
            avemo_face_detect_image(det, &img, &a->opt, NULL, &face, &err) ||
            (a->out_dir && write_outputs(a, 0, &face, a->draw ? &img : NULL, &err)))
            rc = cli_report(&err);
        else
            print_results(a, &face, 1);
        avemo_face_free(&face);
        avemo_image_free(&img);
        return rc;
    }
    struct avemo_clip_faces cf = {0};
    if (avemo_clip_faces(det, media, a->frames, &a->opt, a->draw, &cf, &err)) rc = cli_report(&err);
    for (int i = 0; !rc && a->out_dir && i < cf.count; i++) {
        struct avemo_image frame = {0};
        if (a->draw) frame = avemo_image_from_frame(&cf.frames.frames[i]);
        if (write_outputs(a, i, &cf.faces[i], a->draw ? &frame : NULL, &err)) rc = cli_report(&err);
    }
    if (!rc) print_results(a, cf.faces, cf.count);
    avemo_clip_faces_free(&cf);
    return rc;
}

/* "-": the clip or photo on standard input. */
static int faces_of_stdin(const struct faces_args *a, avemo_detector *det)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = cli_read_stdin("faces", &data, &size);
    if (rc) return rc;
    struct avemo_error err = {0};
    avemo_media *media = NULL;
    struct avemo_media_open_options opt = {.name = "standard input"};
    if (avemo_media_open_memory(data, size, &opt, &media, &err)) rc = cli_report(&err);
    else rc = faces_of_media(a, det, media);
    avemo_media_close(media);
    free(data);
    return rc;
}

static int run_faces(int argc, char **argv)
{
    struct faces_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc || (a.out_dir && (rc = check_out_dir(a.out_dir)))) return rc;
    struct avemo_error err = {0};
    avemo_cascade *cascade = NULL;
    avemo_detector *det = NULL;
    if (avemo_cascade_load(a.cascade, NULL, &cascade, &err) || avemo_detector_create(cascade, &det, &err)) {
        avemo_cascade_free(cascade);
        return cli_report(&err);
    }
    if (strcmp(a.file, "-") == 0) {
        rc = faces_of_stdin(&a, det);
    } else if (is_still_image_name(a.file)) {
        /* A photo: one detection. */
        struct avemo_image img = {0};
        struct avemo_face face = {0};
        if (a.draw && avemo_image_read_file(a.file, a.opt.channels, NULL, &img, &err)) rc = cli_report(&err);
        else if (avemo_face_detect_image_file(det, a.file, &a.opt, &face, &err) ||
                 (a.out_dir && write_outputs(&a, 0, &face, a.draw ? &img : NULL, &err)))
            rc = cli_report(&err);
        else
            print_results(&a, &face, 1);
        avemo_face_free(&face);
        avemo_image_free(&img);
    } else {
        avemo_media *media = NULL;
        if (avemo_media_open_file(a.file, NULL, &media, &err)) rc = cli_report(&err);
        else rc = faces_of_media(&a, det, media);
        avemo_media_close(media);
    }
    avemo_detector_free(det);
    avemo_cascade_free(cascade);
    return rc;
}

const struct cli_command cli_cmd_faces = {
    "faces", "detect and crop the face in sampled frames of a clip", faces_usage, run_faces, CLI_ONE_SHOT,
};
