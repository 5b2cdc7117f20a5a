/* Content hashes of files: SHA-256 with FFmpeg's hash API (libavutil's av_hash), for the
 * training record of a model file (which files a model was trained on, by content). */
#include <avemo/core.h>

#include <errno.h>
#include <libavutil/hash.h>
#include <stdio.h>
#include <string.h>

enum avemo_status avemo_sha256_file(const char *path, uint8_t out[AVEMO_SHA256_SIZE], struct avemo_error *err)
{
    FILE *f;
    enum avemo_status st = avemo_open_regular(path, &f, err);
    if (st) return st;
    struct AVHashContext *ctx = NULL;
    if (av_hash_alloc(&ctx, "SHA256") < 0 || av_hash_get_size(ctx) != AVEMO_SHA256_SIZE) {
        av_hash_freep(&ctx);
        fclose(f);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot set up SHA-256", path);
    }
    av_hash_init(ctx);
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) av_hash_update(ctx, buf, n);
    if (ferror(f)) st = avemo_fail(err, AVEMO_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    else av_hash_final(ctx, out);
    av_hash_freep(&ctx);
    fclose(f);
    return st;
}
