/*
 * Feature extraction over a dataset: audio feature matrices (and waveforms for
 * augmentation) and face crops, computed once in parallel and cached in a file
 * keyed by the feature parameters.  Items that fail keep their reason.
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
};

struct extract_job {
    const struct avemo_pipeline *p;
    const struct avemo_dataset *ds;
    const struct avemo_extract_options *opt;
    struct avemo_feature_set *fs;
    struct item_result *results;
    const avemo_cascade *cascade;
    signed char *todo;          /* 1: not in the cache */
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
    fo.track = fsp->track;
    struct avemo_clip_faces cf = {0};
    if (!st) st = avemo_clip_faces(det, m, fsp->frames, &fo, 0, &cf, err);
    avemo_media_close(m);
    if (!st) {
        r->crops = malloc(crop_bytes * (size_t)(cf.count ? cf.count : 1));
        if (!r->crops) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", it->path);
        for (int k = 0; !st && k < cf.count; k++)
            if (cf.faces[k].face_found && cf.faces[k].has_crop) memcpy(r->crops + crop_bytes * (size_t)r->ncrops++, cf.faces[k].image.data, crop_bytes);
        if (!st && r->ncrops == 0)
            st = avemo_fail(err, AVEMO_ERR_NO_FACE, "%s: no face found in %d frames", it->path, fsp->frames);
    }
    avemo_clip_faces_free(&cf);
    return st;
}

static void extract_item(struct extract_job *job, avemo_audio_extractor *ex, avemo_detector *det, size_t i)
{
    const struct avemo_item *it = &job->ds->items[i];
    struct avemo_error err = {0};
    enum avemo_status st = AVEMO_OK;
    if (job->opt->need_audio && (it->kind & AVEMO_ITEM_AUDIO)) st = item_audio(job, ex, i, &err);
    if (!st && job->opt->need_faces && (it->kind & (AVEMO_ITEM_IMAGE | AVEMO_ITEM_VIDEO)))
        st = item_faces(job, det, i, &err);
    if (st) job->fs->failure[i] = failure_text(&err);
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
 * "AVEMOFC2", key (u32), count (u64), then per item: path length (u32), path, size (i64),
 * mtime (i64), failed (u8) [reason length, reason] | audio floats (u64 + data),
 * wave samples (u64 + data), crops (u32 + bytes).  Unknown or stale entries are ignored. */

#define CACHE_MAGIC "AVEMOFC2"

static uint32_t cache_key(const struct avemo_pipeline *p, const struct avemo_extract_options *opt)
{
    char k[2048];
    const struct avemo_audio_params *a = &p->audio;
    const struct avemo_face_spec *f = &p->face;
    snprintf(k, sizeof k,
             "a%d:%d:%d:%d:%d:%d:%g:%g:%d:%d:%d:%d:%d:%g:%g:%d:%d:%d|f%d:%d:%d:%s:%g:%d:%d:%d:%g:%d|%d%d%d", opt->need_audio,
             a->sample_rate, a->n_fft, a->hop, a->n_mels, a->n_mfcc, a->fmin, a->fmax, a->mel_scale, a->mel_norm,
             a->feature, a->power, a->db_ref, a->amin, a->top_db, a->frames, a->crop, a->norm, opt->need_faces, f->size,
             f->channels, f->cascade, f->detect.scale_factor, f->detect.min_neighbors, f->detect.min_width, f->frames,
             f->margin, f->track, opt->need_audio, opt->need_faces, opt->keep_wave);
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

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

/* Read one cache entry and, when it matches a dataset item, fill that item.  0 at EOF or damage. */
static int cache_read_entry(FILE *f, struct extract_job *job, const struct avemo_item **sorted)
{
    struct avemo_feature_set *fs = job->fs;
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    size_t crop_bytes = (size_t)fs->face_size * fs->face_size * fs->face_channels;
    uint32_t plen;
    char path[8192];
    int64_t size, mtime;
    uint8_t failed;
    if (!read_exact(f, &plen, 4) || plen >= sizeof path || !read_exact(f, path, plen)) return 0;
    path[plen] = 0;
    if (!read_exact(f, &size, 8) || !read_exact(f, &mtime, 8) || !read_exact(f, &failed, 1)) return 0;
    struct avemo_item key = {.path = path};
    const struct avemo_item *kp = &key;
    const struct avemo_item **hit = bsearch(&kp, sorted, job->ds->count, sizeof *sorted, cmp_item_path);
    size_t i = hit ? (size_t)(*hit - job->ds->items) : 0;
    int64_t now_size, now_mtime;
    file_stamp(path, &now_size, &now_mtime);
    int use = hit && job->todo[i] && now_size == size && now_mtime == mtime;
    if (failed) {
        uint32_t rlen;
        char reason[1024];
        if (!read_exact(f, &rlen, 4) || rlen >= sizeof reason || !read_exact(f, reason, rlen)) return 0;
        reason[rlen] = 0;
        if (use) fs->failure[i] = strdup(reason);
    } else {
        uint64_t nfloat, nwave;
        uint32_t ncrops;
        if (!read_exact(f, &nfloat, 8) || (nfloat && nfloat != per)) return 0;
        if (nfloat && !(use ? read_exact(f, fs->audio + i * per, per * 4) : fseek(f, (long)(per * 4), SEEK_CUR) == 0)) return 0;
        if (use && nfloat) fs->has_audio[i] = 1;
        if (!read_exact(f, &nwave, 8) || nwave > ((uint64_t)1 << 31)) return 0;
        if (nwave) {
            float *w = use ? malloc(nwave * 4) : NULL;
            if (use && (!w || !read_exact(f, w, nwave * 4))) {
                free(w);
                return 0;
            }
            if (!use && fseek(f, (long)(nwave * 4), SEEK_CUR) != 0) return 0;
            if (use) {
                fs->wave[i] = w;
                fs->wave_len[i] = nwave;
            }
        }
        if (!read_exact(f, &ncrops, 4) || ncrops > 1024) return 0;
        if (ncrops) {
            uint8_t *c = use ? malloc(crop_bytes * ncrops) : NULL;
            if (use && (!c || !read_exact(f, c, crop_bytes * ncrops))) {
                free(c);
                return 0;
            }
            if (!use && fseek(f, (long)(crop_bytes * ncrops), SEEK_CUR) != 0) return 0;
            if (use) {
                job->results[i].crops = c;
                job->results[i].ncrops = (int)ncrops;
            }
        }
    }
    if (use) {
        job->todo[i] = 0;
        fs->from_cache++;
    }
    return 1;
}

static void cache_load(struct extract_job *job, uint32_t key)
{
    FILE *f = fopen(job->opt->cache_path, "rb");
    if (!f) return;
    char magic[8];
    uint32_t k;
    uint64_t n;
    const struct avemo_item **sorted = malloc(sizeof *sorted * (job->ds->count ? job->ds->count : 1));
    if (sorted && read_exact(f, magic, 8) && memcmp(magic, CACHE_MAGIC, 8) == 0 && read_exact(f, &k, 4) && k == key &&
        read_exact(f, &n, 8)) {
        for (size_t i = 0; i < job->ds->count; i++) sorted[i] = &job->ds->items[i];
        qsort(sorted, job->ds->count, sizeof *sorted, cmp_item_path);
        for (uint64_t e = 0; e < n && e < AVEMO_DATASET_MAX_ITEMS; e++)
            if (!cache_read_entry(f, job, sorted)) break;
    }
    free(sorted);
    fclose(f);
}

/* Written to a temporary file and renamed, so a crash never leaves half a cache. */
static void cache_save(struct extract_job *job, uint32_t key)
{
    const struct avemo_feature_set *fs = job->fs;
    char tmp[8300];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", job->opt->cache_path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    size_t per = (size_t)fs->audio_rows * (size_t)fs->audio_cols;
    size_t crop_bytes = (size_t)fs->face_size * fs->face_size * fs->face_channels;
    uint64_t n = job->ds->count;
    int ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&key, 4, 1, f) == 1 && fwrite(&n, 8, 1, f) == 1;
    for (size_t i = 0; ok && i < job->ds->count; i++) {
        const char *path = job->ds->items[i].path;
        uint32_t plen = (uint32_t)strlen(path);
        int64_t size, mtime;
        file_stamp(path, &size, &mtime);
        uint8_t failed = fs->failure[i] != NULL;
        ok = fwrite(&plen, 4, 1, f) == 1 && fwrite(path, 1, plen, f) == plen && fwrite(&size, 8, 1, f) == 1 &&
             fwrite(&mtime, 8, 1, f) == 1 && fwrite(&failed, 1, 1, f) == 1;
        if (ok && failed) {
            uint32_t rlen = (uint32_t)strlen(fs->failure[i]);
            if (rlen > 1000) rlen = 1000;
            ok = fwrite(&rlen, 4, 1, f) == 1 && fwrite(fs->failure[i], 1, rlen, f) == rlen;
        } else if (ok) {
            uint64_t nfloat = fs->has_audio[i] ? per : 0, nwave = fs->wave ? fs->wave_len[i] : 0;
            uint32_t ncrops = (uint32_t)job->results[i].ncrops;
            ok = fwrite(&nfloat, 8, 1, f) == 1 && fwrite(fs->audio + i * per, 4, nfloat, f) == nfloat &&
                 fwrite(&nwave, 8, 1, f) == 1 && (!nwave || fwrite(fs->wave[i], 4, nwave, f) == nwave) &&
                 fwrite(&ncrops, 4, 1, f) == 1 &&
                 (!ncrops || fwrite(job->results[i].crops, crop_bytes, ncrops, f) == ncrops);
        }
    }
    if (fclose(f) != 0) ok = 0;
    if (ok) rename(tmp, job->opt->cache_path);
    else remove(tmp);
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
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
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
        memset(job.todo, 1, ds->count);
        if (opt->cache_path) cache_load(&job, key);
        for (size_t i = 0; i < ds->count; i++) job.total_todo += job.todo[i];
    }
    if (!st && job.total_todo) {
        int nthreads = opt->threads > 0 ? opt->threads : default_threads();
        struct worker *workers = calloc((size_t)nthreads, sizeof *workers);
        pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
        if (!workers || !tids) st = avemo_fail(err, AVEMO_ERR_NOMEM, "features: out of memory");
        int started = 0;
        for (int t = 0; !st && t < nthreads; t++) {
            workers[t].job = &job;
            if (pthread_create(&tids[t], NULL, worker_main, &workers[t]) == 0) started++;
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
        for (int t = 0; t < started && !st; t++)
            if (workers[t].status) st = avemo_fail(err, workers[t].status, "%s", workers[t].err.message);
        free(workers);
        free(tids);
    }
    if (!st) st = gather_crops(&job, err);
    if (!st && opt->cache_path && job.total_todo) cache_save(&job, key);
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
