/* Where the shipped models are, and the companions of a model: the unimodal models that
 * answer when the main model cannot (an audio-visual model given a wav or a photo). */
#include "eval/eval_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const eval_shipped_model[3] = {"avemo-av.avm", "avemo-audio.avm", "avemo-face.avm"};

int eval_model_in(const char *dir, const char *file, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/%s", dir, file);
    return n > 0 && (size_t)n < size && access(path, R_OK) == 0;
}

/* 1 when both name the same file. */
static int same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

int eval_companion_path(const char *main_path, enum avemo_mode mode, char *path, size_t size)
{
    if (mode != AVEMO_MODE_AUDIO && mode != AVEMO_MODE_FACE) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", main_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    if (eval_model_in(dir, eval_shipped_model[mode], path, size) && !same_file(path, main_path)) return 1;
    return avemo_default_model(mode, path, size, NULL) == AVEMO_OK && !same_file(path, main_path);
}
