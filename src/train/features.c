/*
 * Feature extraction over a dataset: audio feature matrices (and waveforms for
 * augmentation) and face crops, computed once in parallel and cached in a file
 * keyed by the feature parameters and version.  Items that fail keep their reason.
 */
#include <avemo/media.h>
#include <avemo/train.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What one item gave, before it is placed in the feature set. */
struct item_result {
    uint8_t *crops;   /* ncrops crops */
    int ncrops;
    int transient;    /* it failed for a cause that may be gone next run: not cached */
};

struct extract_job {
    const struct avemo_pipeline *p;
    const struct avemo_dataset *ds;
    const struct avemo_extract_options *opt;
    struct avemo_feature_set *fs;
    struct item_result *results;
    const avemo_cascade *cascade;
    signed char *todo;          /* 1: not in the cache */
    int cache_stale;            /* the cache file holds features of another AVEMO_FEATURE_VERSION */
    atomic_size_t next, done;
    size_t total_todo;
};

/* --- one item ------------------------------------------------------------------ */

static char *failure_text(const struct avemo_error *err)
{
    return strdup(err->message[0] ? err->message : avemo_strerror(err->status));
}

static enum avemo_status item_audio(struct extract_job *job, avemo_audio_extractor *ex, size_t i,
                                    struct avemo_error *err)
{
    const struct avemo_item *it = &job->ds->items[i];
    struct avemo_feature_set *fs = job->fs;
    avemo_media *m = NULL;
    struct avemo_audio a = {0};
    enum avemo_status st = avemo_media_open_file(it->path, NULL, &m, err);
    if (!st) st = avemo_media_decode_audio(m, job->p->audio.sample_rate, &a, err);
    avemo_media_close(m);
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    if (!st) st = avemo_audio_compute_fixed(ex, a.samples, a.count, fs->audio + i * per, (size_t)fs->audio_cols, NULL, err);
    if (!st) {
        fs->has_audio[i] = 1;
        if (job->opt->keep_wave) {
            fs->wave[i] = a.samples;
            fs->wave_len[i] = a.count;
            a.samples = NULL;
        }
    }
    avemo_audio_free(&a);
    return st;
}

static enum avemo_status item_faces(struct extract_job *job, avemo_detector *det, size_t i, struct avemo_error *err)
{
    const struct avemo_item *it = &job->ds->items[i];
    const struct avemo_face_spec *fsp = &job->p->face;
    size_t crop_bytes = (size_t)fsp->size * fsp->size * fsp->channels;
    struct item_result *r = &job->results[i];
    if (it->kind & AVEMO_ITEM_IMAGE) {
        struct avemo_image img = {0};
        enum avemo_status st = avemo_face_from_image_file(it->path, fsp->size, fsp->channels, &img, err);
        if (st) return st;
        if (fsp->equalize) avemo_image_equalize(&img);
        r->crops = img.data; /* exactly crop_bytes */
        r->ncrops = 1;
        return AVEMO_OK;
    }
    avemo_media *m = NULL;
    enum avemo_status st = avemo_media_open_file(it->path, NULL, &m, err);
    struct avemo_face_options fo;
    avemo_face_options_default(&fo);
    fo.detect = fsp->detect;
    fo.size = fsp->size;
    fo.channels = fsp->channels;
    fo.margin = fsp->margin;
    fo.offset_y = fsp->offset_y;
    fo.track = fsp->track;
    struct avemo_clip_faces cf = {0};
    if (!st) st = avemo_clip_faces(det, m, fsp->frames, &fo, 0, &cf, err);
    avemo_media_close(m);
    if (!st) {
        r->crops = malloc(crop_bytes * (size_t)(cf.count ? cf.count : 1));
        if (!r->crops) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", it->path);
        for (int k = 0; !st && k < cf.count; k++)
            if (cf.faces[k].face_found && cf.faces[k].has_crop) {
                if (fsp->equalize) avemo_image_equalize(&cf.faces[k].image);
                memcpy(r->crops + crop_bytes * (size_t)r->ncrops++, cf.faces[k].image.data, crop_bytes);
            }
        if (!st && r->ncrops == 0)
            st = avemo_fail(err, AVEMO_ERR_NO_FACE, "%s: no face found in %d frames", it->path, fsp->frames);
    }
    avemo_clip_faces_free(&cf);
    return st;
}

/* 1 when a failure is a property of the file's bytes, which its size and mtime in the cache stand
 * for.  A file that could not be opened or read (EMFILE, EIO, EACCES), memory that ran out, a
 * decode that ran out of time (AVEMO_ERR_TIMEOUT: its cost depends on the machine's load) or
 * anything unexpected may be gone next run with the same size and mtime: such failures are not
 * cached, and the item is tried again.  (A missing file, a disk not mounted, has no size and mtime
 * and would be retried once it is there, but is not cached either.) */
static int failure_of_content(enum avemo_status st)
{
    switch (st) {
    case AVEMO_ERR_EMPTY:
    case AVEMO_ERR_UNSUPPORTED:
    case AVEMO_ERR_CORRUPT:
    case AVEMO_ERR_NO_AUDIO:
    case AVEMO_ERR_NO_VIDEO:
    case AVEMO_ERR_TOO_LARGE:
    case AVEMO_ERR_TOO_LONG:
    case AVEMO_ERR_NO_FACE: return 1;
    default: return 0;
    }
}

static void extract_item(struct extract_job *job, avemo_audio_extractor *ex, avemo_detector *det, size_t i)
{
    const struct avemo_item *it = &job->ds->items[i];
    struct avemo_error err = {0};
    enum avemo_status st = AVEMO_OK;
    if (job->opt->need_audio && (it->kind & AVEMO_ITEM_AUDIO)) st = item_audio(job, ex, i, &err);
    if (!st && job->opt->need_faces && (it->kind & (AVEMO_ITEM_IMAGE | AVEMO_ITEM_VIDEO)))
        st = item_faces(job, det, i, &err);
    if (st) {
        job->fs->failure[i] = failure_text(&err);
        job->results[i].transient = !failure_of_content(st);
    }
}

/* --- workers and progress --------------------------------------------------------- */

struct worker {
    struct extract_job *job;
    enum avemo_status status;
    struct avemo_error err;
    atomic_int failed;          /* set when status is an error; polled by the main thread */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct extract_job *job = w->job;
    avemo_audio_extractor *ex = NULL;
    avemo_detector *det = NULL;
    if (job->opt->need_audio) w->status = avemo_audio_extractor_create(&job->p->audio, &ex, &w->err);
    if (!w->status && job->cascade) w->status = avemo_detector_create(job->cascade, &det, &w->err);
    size_t n = job->ds->count;
    while (!w->status) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= n) break;
        if (!job->todo[i]) continue;
        extract_item(job, ex, det, i);
        atomic_fetch_add(&job->done, 1);
    }
    if (w->status) atomic_store(&w->failed, 1);
    avemo_audio_extractor_free(ex);
    avemo_detector_free(det);
    return NULL;
}

static void show_progress(size_t done, size_t total, double t0, int final)
{
    double el = avemo_now() - t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : width;
    fprintf(stderr, "\rfeatures [%.*s%*s] %zu/%zu  %.1f files/s  ETA %.0f s ", fill, "##############################",
            width - fill, "", done, total, rate, eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* --- the cache file ----------------------------------------------------------------
 * Little-endian, written and read with the binary writer and reader of core (avemo_binw /
 * avemo_binr); every entry carries its own CRC so that a damaged entry ends the reading there
 * and everything before it is still used:
 *
 *   "AVEMOFCH"  8 bytes magic
 *   u32 version (4), u32 feature version (AVEMO_FEATURE_VERSION of the avemo that extracted them),
 *   u32 key (CRC of the extraction parameters), u64 count, u32 crc of the header
 *   count entries:
 *     u32 n, n bytes   the item's path
 *     i64 size, i64 mtime of the file when it was extracted (a changed file is extracted again)
 *     u8 failed (only failures of the file's content: see failure_of_content)
 *     failed:   u32 n, n bytes   why the item could not be used
 *     else:     u64 n, n x f32   audio features (0 or rows x cols)
 *               u64 n, n x f32   waveform samples (0 unless kept for augmentation)
 *               u32 n, n crops of size x size x channels bytes
 *     u32 crc of the entry
 *   u32 crc of the last section (the writer's trailer; nothing follows it)
 *
 * Version 2 ("AVEMOFC2", host-endian, no CRC) is not read: such a cache, or one for other
 * parameters, is ignored, the features are extracted again and the cache is rewritten.
 * Version 3 is version 4 without the feature version; the key alone let features computed by an
 * older front end (before a fix in decoding or MFCC) be used by a newer one, so it counts as
 * feature version 0.  A cache of another feature version is not read either: the user is told
 * once, the items are extracted again and the cache is rewritten (also when only some items are
 * extracted, since nothing in it can be used). */

#define CACHE_MAGIC "AVEMOFCH"
#define CACHE_VERSION 4u
#define CACHE_VERSION_UNVERSIONED 3u /* before the feature version: read as feature version 0 */

static uint32_t cache_key(const struct avemo_pipeline *p, const struct avemo_extract_options *opt)
{
    char k[2048];
    const struct avemo_audio_params *a = &p->audio;
    const struct avemo_face_spec *f = &p->face;
    snprintf(k, sizeof k,
             "a%d:%d:%d:%d:%d:%d:%g:%g:%d:%d:%d:%d:%d:%g:%g:%d:%d:%d:%d:%g:%g:%g|f%d:%d:%d:%s:%g:%d:%d:%d:%g:%d|%d%d%d", opt->need_audio,
             a->sample_rate, a->n_fft, a->hop, a->n_mels, a->n_mfcc, a->fmin, a->fmax, a->mel_scale, a->mel_norm,
             a->feature, a->power, a->db_ref, a->amin, a->top_db, a->frames, a->crop, a->norm, a->loudness,
             a->loudness_db, a->max_gain_db, a->trim_db, opt->need_faces, f->size,
             f->channels, f->cascade, f->detect.scale_factor, f->detect.min_neighbors, f->detect.min_width, f->frames,
             f->margin, f->track, opt->need_audio, opt->need_faces, opt->keep_wave);
    /* Framing and contrast options join the key only when set, so caches made before them stay valid. */
    if (a->deltas || a->pad) {
        size_t used = strlen(k);
        snprintf(k + used, sizeof k - used, "|d%d:p%d", a->deltas, a->pad);
    }
    if (a->band_limit > 0) {
        size_t used = strlen(k);
        snprintf(k + used, sizeof k - used, "|b%g", a->band_limit);
    }
    if (f->offset_y != 0 || f->equalize) {
        size_t used = strlen(k);
        snprintf(k + used, sizeof k - used, "|o%g:e%d", f->offset_y, f->equalize);
    }
    return avemo_crc32(0, k, strlen(k));
}

static void file_stamp(const char *path, int64_t *size, int64_t *mtime)
{
    struct stat sb;
    *size = *mtime = -1;
    if (stat(path, &sb) == 0) {
        *size = sb.st_size;
        *mtime = (int64_t)sb.st_mtime;
    }
}

static int cmp_item_path(const void *a, const void *b)
{
    return strcmp((*(const struct avemo_item *const *)a)->path, (*(const struct avemo_item *const *)b)->path);
}

/* The variable part of one entry, read into temporaries and kept only when its CRC matches. */
struct cache_entry {
    char *failure;
    float *audio, *wave;
    uint64_t nfloat, nwave;
    uint8_t *crops;
    uint32_t ncrops;
};

static void entry_free(struct cache_entry *e)
{
    free(e->failure);
    free(e->audio);
    free(e->wave);
    free(e->crops);
}

/* Read the payload of an entry (after `failed`); 0 on damage. */
static int entry_read(struct avemo_binr *r, const struct avemo_feature_set *fs, int failed, struct cache_entry *e)
{
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    size_t crop_bytes = (size_t)fs->face_size * fs->face_size * fs->face_channels;
    if (failed) {
        uint32_t rlen = avemo_binr_u32(r);
        if (rlen > 1000 || !(e->failure = calloc(rlen + 1, 1))) return 0;
        return avemo_binr_bytes(r, e->failure, rlen);
    }
    e->nfloat = avemo_binr_u64(r);
    if (e->nfloat && (e->nfloat != per || !(e->audio = malloc(per * 4)))) return 0;
    if (e->nfloat && !avemo_binr_f32(r, e->audio, per)) return 0;
    e->nwave = avemo_binr_u64(r);
    /* 2^24 samples: 12 minutes at 22050 Hz, past the longest clip media accepts; a damaged
     * count must not allocate gigabytes before the read finds the file too short */
    if (e->nwave > ((uint64_t)1 << 24) || (e->nwave && !(e->wave = malloc(e->nwave * 4)))) return 0;
    if (e->nwave && !avemo_binr_f32(r, e->wave, e->nwave)) return 0;
    e->ncrops = avemo_binr_u32(r);
    if (e->ncrops > 1024 || (e->ncrops && !(e->crops = malloc(crop_bytes * e->ncrops)))) return 0;
    return !r->bad && (!e->ncrops || avemo_binr_bytes(r, e->crops, crop_bytes * e->ncrops));
}

/* Give a checked entry to item i (its buffers change owner). */
static void entry_use(struct extract_job *job, size_t i, struct cache_entry *e)
{
    struct avemo_feature_set *fs = job->fs;
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    if (e->failure) {
        fs->failure[i] = e->failure;
        e->failure = NULL;
    }
    if (e->nfloat) {
        memcpy(fs->audio + i * per, e->audio, per * 4);
        fs->has_audio[i] = 1;
    }
    if (e->nwave) {
        fs->wave[i] = e->wave;
        fs->wave_len[i] = e->nwave;
        e->wave = NULL;
    }
    if (e->ncrops) {
        job->results[i].crops = e->crops;
        job->results[i].ncrops = (int)e->ncrops;
        e->crops = NULL;
    }
    job->todo[i] = 0;
    fs->from_cache++;
}

/* Read one cache entry and, when it matches a dataset item, fill that item.  0 at EOF or damage. */
static int cache_read_entry(struct avemo_binr *r, struct extract_job *job, const struct avemo_item **sorted)
{
    char path[8192];
    uint32_t plen = avemo_binr_u32(r);
    if (plen >= sizeof path || !avemo_binr_bytes(r, path, plen)) return 0;
    path[plen] = 0;
    int64_t size = (int64_t)avemo_binr_u64(r), mtime = (int64_t)avemo_binr_u64(r);
    uint8_t failed = avemo_binr_u8(r);
    struct cache_entry e = {0};
    int ok = !r->bad && entry_read(r, job->fs, failed, &e) && avemo_binr_crc(r);
    if (ok) {
        struct avemo_item key = {.path = path};
        const struct avemo_item *kp = &key;
        const struct avemo_item **hit = bsearch(&kp, sorted, job->ds->count, sizeof *sorted, cmp_item_path);
        size_t i = hit ? (size_t)(*hit - job->ds->items) : 0;
        int64_t now_size, now_mtime;
        file_stamp(path, &now_size, &now_mtime);
        if (hit && job->todo[i] && now_size == size && now_mtime == mtime && (!e.nwave || job->fs->wave))
            entry_use(job, i, &e);
    }
    entry_free(&e);
    return ok;
}

/* Read the header; 1 when the entries that follow are for these parameters and this feature
 * version.  A cache that would have been used but for its feature version sets cache_stale. */
static int cache_header(struct avemo_binr *r, struct extract_job *job, uint32_t key, uint64_t *count)
{
    char magic[8];
    if (!avemo_binr_bytes(r, magic, 8) || memcmp(magic, CACHE_MAGIC, 8) != 0) return 0;
    uint32_t version = avemo_binr_u32(r);
    if (version != CACHE_VERSION && version != CACHE_VERSION_UNVERSIONED) return 0;
    uint32_t features = version == CACHE_VERSION ? avemo_binr_u32(r) : 0;
    uint32_t its_key = avemo_binr_u32(r);
    *count = avemo_binr_u64(r);
    if (!avemo_binr_crc(r) || its_key != key) return 0;
    if (features != AVEMO_FEATURE_VERSION) {
        fprintf(stderr, "warning: cache %s was written by feature version %u, this is %u: extracting again\n",
                job->opt->cache_path, (unsigned)features, (unsigned)AVEMO_FEATURE_VERSION);
        job->cache_stale = 1;
        return 0;
    }
    return 1;
}

static void cache_load(struct extract_job *job, uint32_t key)
{
    struct avemo_binr r;
    if (avemo_binr_open(&r, job->opt->cache_path, NULL)) return;
    const struct avemo_item **sorted = malloc(sizeof *sorted * (job->ds->count ? job->ds->count : 1));
    uint64_t n = 0;
    if (sorted && cache_header(&r, job, key, &n)) {
        for (size_t i = 0; i < job->ds->count; i++) sorted[i] = &job->ds->items[i];
        qsort(sorted, job->ds->count, sizeof *sorted, cmp_item_path);
        for (uint64_t e = 0; e < n && e < AVEMO_DATASET_MAX_ITEMS; e++)
            if (!cache_read_entry(&r, job, sorted)) break;
    }
    free(sorted);
    avemo_binr_close(&r);
}

/* Written to a temporary file and renamed, so a crash never leaves half a cache. */
static void cache_save(struct extract_job *job, uint32_t key)
{
    const struct avemo_feature_set *fs = job->fs;
    avemo_binw *w;
    if (avemo_binw_create(job->opt->cache_path, &w, NULL)) return;
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    size_t crop_bytes = (size_t)fs->face_size * fs->face_size * fs->face_channels;
    avemo_binw_bytes(w, CACHE_MAGIC, 8);
    avemo_binw_u32(w, CACHE_VERSION);
    avemo_binw_u32(w, AVEMO_FEATURE_VERSION);
    avemo_binw_u32(w, key);
    const unsigned char *only = job->opt->only;
    uint64_t kept = 0;
    for (size_t i = 0; i < job->ds->count; i++) kept += (!only || only[i]) && !job->results[i].transient;
    avemo_binw_u64(w, kept);
    avemo_binw_crc(w);
    for (size_t i = 0; i < job->ds->count; i++) {
        if ((only && !only[i]) || job->results[i].transient) continue; /* not extracted, or tried again */
        const char *path = job->ds->items[i].path;
        int64_t size, mtime;
        file_stamp(path, &size, &mtime);
        avemo_binw_str(w, path, strlen(path));
        avemo_binw_u64(w, (uint64_t)size);
        avemo_binw_u64(w, (uint64_t)mtime);
        avemo_binw_u8(w, fs->failure[i] != NULL);
        if (fs->failure[i]) {
            size_t rlen = strlen(fs->failure[i]);
            avemo_binw_str(w, fs->failure[i], rlen > 1000 ? 1000 : rlen);
        } else {
            uint64_t nfloat = fs->has_audio[i] ? per : 0, nwave = fs->wave ? fs->wave_len[i] : 0;
            avemo_binw_u64(w, nfloat);
            avemo_binw_f32(w, fs->audio + i * per, nfloat);
            avemo_binw_u64(w, nwave);
            if (nwave) avemo_binw_f32(w, fs->wave[i], nwave);
            avemo_binw_u32(w, (uint32_t)job->results[i].ncrops);
            if (job->results[i].ncrops) avemo_binw_bytes(w, job->results[i].crops, crop_bytes * job->results[i].ncrops);
        }
        avemo_binw_crc(w);
    }
    avemo_binw_finish(w, NULL);
}

/* --- assembling ------------------------------------------------------------------- */

static enum avemo_status allocate_set(const struct avemo_pipeline *p, const struct avemo_dataset *ds,
                                      const struct avemo_extract_options *opt, struct avemo_feature_set *fs,
                                      struct avemo_error *err)
{
    memset(fs, 0, sizeof *fs);
    size_t n = ds->count ? ds->count : 1;
    fs->count = ds->count;
    fs->audio_rows = avemo_audio_params_feature_count(&p->audio);
    fs->audio_cols = p->audio.frames;
    fs->face_size = p->face.size;
    fs->face_channels = p->face.channels;
    if (opt->need_audio && fs->audio_cols <= 0)
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: training needs a fixed [audio] frames, not 'all'", p->name);
    size_t per = (size_t)fs->audio_rows * (size_t)(fs->audio_cols > 0 ? fs->audio_cols : 1);
    fs->audio = opt->need_audio ? calloc(n * per, sizeof(float)) : NULL;
    fs->has_audio = calloc(n, 1);
    fs->failure = calloc(n, sizeof(char *));
    fs->face_first = calloc(n, sizeof(size_t));
    fs->face_count = calloc(n, sizeof(int));
    if (opt->keep_wave) {
        fs->wave = calloc(n, sizeof(float *));
        fs->wave_len = calloc(n, sizeof(size_t));
    }
    if ((opt->need_audio && !fs->audio) || !fs->has_audio || !fs->failure || !fs->face_first || !fs->face_count ||
        (opt->keep_wave && (!fs->wave || !fs->wave_len)))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "features: cannot allocate for %zu items", ds->count);
    return AVEMO_OK;
}

static enum avemo_status gather_crops(struct extract_job *job, struct avemo_error *err)
{
    struct avemo_feature_set *fs = job->fs;
    size_t crop_bytes = (size_t)fs->face_size * fs->face_size * fs->face_channels, total = 0;
    for (size_t i = 0; i < fs->count; i++) total += fs->failure[i] ? 0 : (size_t)job->results[i].ncrops;
    fs->faces = malloc(crop_bytes * (total ? total : 1));
    if (!fs->faces) return avemo_fail(err, AVEMO_ERR_NOMEM, "features: cannot allocate %zu face crops", total);
    size_t at = 0;
    for (size_t i = 0; i < fs->count; i++) {
        struct item_result *r = &job->results[i];
        fs->face_first[i] = at;
        fs->face_count[i] = fs->failure[i] ? 0 : r->ncrops;
        if (fs->face_count[i]) memcpy(fs->faces + at * crop_bytes, r->crops, crop_bytes * (size_t)r->ncrops);
        at += (size_t)fs->face_count[i];
    }
    fs->total_faces = total;
    return AVEMO_OK;
}

static int default_threads(void)
{
    int n = avemo_usable_cpus();
    return n > 64 ? 64 : n;
}

enum avemo_status avemo_features_extract(const struct avemo_pipeline *p, const struct avemo_dataset *ds,
                                         const struct avemo_extract_options *opt, struct avemo_feature_set *fs,
                                         struct avemo_error *err)
{
    enum avemo_status st = allocate_set(p, ds, opt, fs, err);
    struct extract_job job = {.p = p, .ds = ds, .opt = opt, .fs = fs};
    avemo_cascade *cascade = NULL;
    job.results = calloc(ds->count ? ds->count : 1, sizeof *job.results);
    job.todo = malloc(ds->count ? ds->count : 1);
    if (!st && (!job.results || !job.todo)) st = avemo_fail(err, AVEMO_ERR_NOMEM, "features: out of memory");
    int any_video = 0;
    for (size_t i = 0; i < ds->count; i++) any_video |= (ds->items[i].kind & AVEMO_ITEM_VIDEO) != 0;
    if (!st && opt->need_faces && any_video) st = avemo_cascade_load(p->face.cascade, NULL, &cascade, err);
    job.cascade = cascade;
    uint32_t key = cache_key(p, opt);
    if (!st) {
        for (size_t i = 0; i < ds->count; i++) job.todo[i] = !opt->only || opt->only[i];
        if (opt->cache_path) cache_load(&job, key);
        for (size_t i = 0; i < ds->count; i++) job.total_todo += job.todo[i];
    }
    if (!st && job.total_todo) {
        int nthreads = opt->threads > 0 ? opt->threads : default_threads();
        struct worker *workers = calloc((size_t)nthreads, sizeof *workers);
        pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
        if (!workers || !tids) st = avemo_fail(err, AVEMO_ERR_NOMEM, "features: out of memory");
        int started = 0, ran = 0;
        for (int t = 0; !st && t < nthreads; t++) {
            workers[started].job = &job;
            if (pthread_create(&tids[started], NULL, worker_main, &workers[started]) == 0) started++;
        }
        if (!st && started == 0) { /* no thread could start (a process limit): this one works */
            workers[0].job = &job;
            worker_main(&workers[0]);
            ran = 1;
        }
        double t0 = avemo_now();
        int show = opt->progress && isatty(2);
        while (started && atomic_load(&job.done) < job.total_todo) {
            int alive = 0;
            for (int t = 0; t < started; t++) alive |= !atomic_load(&workers[t].failed);
            if (!alive) break;
            if (show) show_progress(atomic_load(&job.done), job.total_todo, t0, 0);
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
        if (show) show_progress(atomic_load(&job.done), job.total_todo, t0, 1);
        for (int t = 0; t < (started ? started : ran) && !st; t++)
            if (workers[t].status) st = avemo_fail(err, workers[t].status, "%s", workers[t].err.message);
        free(workers);
        free(tids);
    }
    if (!st) st = gather_crops(&job, err);
    /* Extracting part of the items (opt->only), a cache file that is there is not replaced:
     * it may hold the other items (a training cache), unless they are of another feature version. */
    if (!st && opt->cache_path && job.total_todo &&
        (!opt->only || job.cache_stale || access(opt->cache_path, F_OK) != 0))
        cache_save(&job, key);
    for (size_t i = 0; job.results && i < ds->count; i++) free(job.results[i].crops);
    for (size_t i = 0; !st && i < ds->count; i++) fs->failed += fs->failure[i] != NULL;
    free(job.results);
    free(job.todo);
    avemo_cascade_free(cascade);
    if (st) avemo_features_free(fs);
    return st;
}

void avemo_features_free(struct avemo_feature_set *fs)
{
    if (!fs) return;
    for (size_t i = 0; fs->failure && i < fs->count; i++) free(fs->failure[i]);
    for (size_t i = 0; fs->wave && i < fs->count; i++) free(fs->wave[i]);
    free(fs->audio);
    free(fs->wave);
    free(fs->wave_len);
    free(fs->faces);
    free(fs->face_first);
    free(fs->face_count);
    free(fs->has_audio);
    free(fs->failure);
    memset(fs, 0, sizeof *fs);
}
