/* Cascade detection with the results of OpenCV's CascadeClassifier::detectMultiScale.
 *
 * How OpenCV does it (and so how we do it, to get the same windows):
 *   - scales: factor = 1, sf, sf^2, ... while the window (cvRound(win * factor))
 *     fits the image and the maximum size; factors whose window is below the
 *     minimum size are skipped.  The factor is kept as a float.
 *   - for each scale the IMAGE is shrunk to cvRound(size / factor) with the
 *     bit-exact bilinear resize, and integral images are computed on it.
 *   - a window of the cascade's size slides with a step of 2 pixels (factor < 2)
 *     or 1 pixel; a window rejected by the first stage skips the next position.
 *   - Haar windows are normalised by the standard deviation of the inner
 *     (w-2)x(h-2) rectangle; a window whose deviation is below 10 is rejected
 *     outright (OpenCV: area * normFactor >= 0.1).
 *   - feature values are float sums of int rectangle sums times float weights,
 *     times the float normalisation factor; stage sums are double; each stage
 *     threshold was lowered by 1e-5 when reading.
 *   - hits map back as (cvRound(x * factor), cvRound(y * factor), cvRound(win * factor)).
 *   - grouping: cv::groupRectangles(eps = 0.2), then clipping to the image.
 *
 * Integral images of one scale live in one buffer: the sum plane, the squared
 * sum plane and (for tilted features) the tilted plane, all with the row stride
 * of the largest scale, so that feature offsets are computed once per image size.
 */
#include "vision/vision_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define VISION_SSE2 1
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VISION_AVX2 1 /* compiled with a target attribute, used when the CPU has it */
#endif

/* Entries after the last plane, so that vector loads past the last valid window
 * stay inside the buffer (their lanes are ignored): 16 windows 2 apart read 32. */
#define PLANE_PAD 64

/* A Haar feature (or stump) with its corner offsets relative to the window's
 * top-left entry in the sum plane (tilted corners point into the tilted plane). */
struct haar_compiled {
    int32_t ofs[HAAR_MAX_RECTS][4];
    float weight[HAAR_MAX_RECTS];
};

/* A stump: the compiled feature inlined with its threshold and two leaves. */
struct haar_stump {
    struct haar_compiled f;
    float threshold, left, right;
    double left_d, right_d; /* the leaves widened once (exact), for the AVX-512 stage sums */
};

struct lbp_compiled {
    int32_t ofs[16]; /* the 4x4 grid of corners of the 3x3 blocks */
};

struct avemo_detector {
    const struct avemo_cascade *c;
    uint8_t *gray;          /* the input converted to gray, when it was RGB */
    size_t gray_cap;
    uint8_t *scaled;        /* the image at the current scale */
    size_t scaled_cap;
    int32_t *xwork;         /* resize coefficients */
    uint16_t *hrows;
    size_t work_cap;        /* in int32 of xwork (hrows has the same count of uint16) */
    uint32_t *planes;       /* sum | sqsum | tilted */
    size_t plane_size;      /* entries per plane */
    size_t planes_cap;
    uint32_t *diag;         /* scratch for the tilted integral */
    size_t diag_cap;
    int stride;             /* row stride of the planes, for which features are compiled */
    struct haar_stump *stumps;        /* Haar stump cascades */
    struct haar_compiled *haar;       /* Haar tree cascades: per feature */
    struct lbp_compiled *lbp;         /* LBP cascades: per feature */
    int32_t norm_ofs[4];
    struct avemo_rect *cand;
    int ncand, cand_cap;
    int *parent;            /* grouping scratch */
    size_t parent_cap;
    int *row_result;        /* result of each window of a row (SIMD path) */
    size_t row_result_cap;
    int simd;               /* 3: AVX-512, 16 windows at a time; 2: AVX2, 8; 1: SSE2, 4; 0: one by one */
};

int vision_detector_set_simd(avemo_detector *d, int level)
{
    if (level < d->simd) d->simd = level < 0 ? 0 : level;
    return d->simd;
}

void avemo_detect_params_default(struct avemo_detect_params *p)
{
    p->scale_factor = 1.1;
    p->min_neighbors = 5;
    p->min_width = p->min_height = 30;
    p->max_width = p->max_height = 0;
    p->max_candidates = 100000;
}

enum avemo_status avemo_detector_create(const avemo_cascade *cascade, avemo_detector **out, struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_detector_create: NULL output");
    *out = NULL;
    if (!cascade) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_detector_create: no cascade");
    struct avemo_detector *d = calloc(1, sizeof *d);
    if (!d) return avemo_fail(err, AVEMO_ERR_NOMEM, "detector: out of memory");
    d->c = cascade;
#ifdef VISION_SSE2
    d->simd = 1;
#endif
#ifdef VISION_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) d->simd = 2;
    if (__builtin_cpu_supports("avx512f")) d->simd = 3;
#endif
    *out = d;
    return AVEMO_OK;
}

void avemo_detector_free(avemo_detector *d)
{
    if (!d) return;
    free(d->gray);
    free(d->scaled);
    free(d->xwork);
    free(d->hrows);
    free(d->planes);
    free(d->diag);
    free(d->stumps);
    free(d->haar);
    free(d->lbp);
    free(d->cand);
    free(d->parent);
    free(d->row_result);
    free(d);
}

static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    void *q = realloc(*p, need * elem);
    if (!q) return 0;
    *p = q;
    *cap = need;
    return 1;
}

/* ---- Feature offsets for the current stride ------------------------------ */

static void compile_haar(const struct cascade_feature *f, int stride, size_t tofs, struct haar_compiled *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < f->nrects; i++) {
        const struct cascade_rect *r = &f->rect[i];
        int32_t *o = out->ofs[i];
        out->weight[i] = r->weight;
        if (f->tilted) {
            /* Corners of a 45-degree rectangle in the tilted integral:
             * (x, y), (x - h, y + h), (x + w, y + w), (x + w - h, y + w + h). */
            o[0] = (int32_t)tofs + r->x + stride * r->y;
            o[1] = (int32_t)tofs + r->x - r->h + stride * (r->y + r->h);
            o[2] = (int32_t)tofs + r->x + r->w + stride * (r->y + r->w);
            o[3] = (int32_t)tofs + r->x + r->w - r->h + stride * (r->y + r->w + r->h);
        } else {
            o[0] = r->x + stride * r->y;
            o[1] = r->x + r->w + stride * r->y;
            o[2] = r->x + stride * (r->y + r->h);
            o[3] = r->x + r->w + stride * (r->y + r->h);
        }
    }
}

static int compile_features(struct avemo_detector *d, int stride)
{
    const struct avemo_cascade *c = d->c;
    if (d->stride == stride && (d->stumps || d->haar || d->lbp)) return 1;
    free(d->stumps);
    free(d->haar);
    free(d->lbp);
    d->stumps = NULL;
    d->haar = NULL;
    d->lbp = NULL;
    d->stride = stride;
    size_t tofs = 2 * d->plane_size;
    if (c->is_lbp) {
        d->lbp = malloc(sizeof *d->lbp * (size_t)c->nfeatures);
        if (!d->lbp) return 0;
        for (int i = 0; i < c->nfeatures; i++) {
            const struct cascade_rect *r = &c->features[i].rect[0];
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++) d->lbp[i].ofs[j * 4 + k] = (r->x + k * r->w) + stride * (r->y + j * r->h);
        }
    } else if (c->stumps_only) {
        d->stumps = malloc(sizeof *d->stumps * (size_t)c->ntrees);
        if (!d->stumps) return 0;
        for (int t = 0; t < c->ntrees; t++) {
            const struct cascade_tree *tr = &c->trees[t];
            const struct cascade_node *n = &c->nodes[tr->first_node];
            struct haar_stump *s = &d->stumps[t];
            compile_haar(&c->features[n->feature], stride, tofs, &s->f);
            s->threshold = n->threshold;
            /* child <= 0 is leaf -child */
            s->left = c->leaves[tr->first_leaf - (n->left > 0 ? 0 : n->left)];
            s->right = c->leaves[tr->first_leaf - (n->right > 0 ? 0 : n->right)];
            s->left_d = s->left;
            s->right_d = s->right;
        }
    } else {
        d->haar = malloc(sizeof *d->haar * (size_t)c->nfeatures);
        if (!d->haar) return 0;
        for (int i = 0; i < c->nfeatures; i++) compile_haar(&c->features[i], stride, tofs, &d->haar[i]);
    }
    /* The variance window: the inner (w - 2) x (h - 2) rectangle. */
    d->norm_ofs[0] = 1 + stride * 1;
    d->norm_ofs[1] = (c->win_w - 1) + stride * 1;
    d->norm_ofs[2] = 1 + stride * (c->win_h - 1);
    d->norm_ofs[3] = (c->win_w - 1) + stride * (c->win_h - 1);
    return 1;
}

/* ---- Integral images ----------------------------------------------------- */

/* sum[y][x] = sum of img[<y][<x] and the same for squares, wrapping in 32 bits
 * (only differences over a window are used, and those fit). */
static void integral(const uint8_t *img, int w, int h, uint32_t *sum, uint32_t *sq, int stride)
{
    memset(sum, 0, sizeof(uint32_t) * (size_t)(w + 1));
    memset(sq, 0, sizeof(uint32_t) * (size_t)(w + 1));
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img + (size_t)y * (size_t)w;
        uint32_t *s = sum + (size_t)(y + 1) * (size_t)stride, *q = sq + (size_t)(y + 1) * (size_t)stride;
        const uint32_t *sp = s - stride, *qp = q - stride;
        uint32_t rs = 0, rq = 0;
        s[0] = q[0] = 0;
        for (int x = 0; x < w; x++) {
            uint32_t v = row[x];
            rs += v;
            rq += v * v;
            s[x + 1] = sp[x + 1] + rs;
            q[x + 1] = qp[x + 1] + rq;
        }
    }
}

/* OpenCV's tilted integral: t[Y][X] = sum of img[y][x] over y < Y and
 * |x - X + 1| <= Y - 1 - y (a triangle with its apex at (X - 1, Y - 1)).
 * With row prefix sums R(y, c) = sum of img[y][<c] (c clamped to 0..w):
 *   t[Y][X] = sum_{y<Y} R(y, X + Y - 1 - y) - R(y, X - Y + y),
 * i.e. two running sums along anti-diagonals (k = X + Y - 1) and diagonals (m = X - Y). */
static int tilted_integral(struct avemo_detector *d, const uint8_t *img, int w, int h, uint32_t *t, int stride)
{
    size_t nk = (size_t)w + (size_t)h + 2, nm = (size_t)w + (size_t)h + 2;
    if (!reserve((void **)&d->diag, &d->diag_cap, nk + nm + (size_t)w + 1, sizeof(uint32_t))) return 0;
    uint32_t *anti = d->diag, *dia = anti + nk, *pre = dia + nm;
    memset(anti, 0, sizeof(uint32_t) * (nk + nm));
    memset(t, 0, sizeof(uint32_t) * (size_t)(w + 1));
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img + (size_t)y * (size_t)w;
        pre[0] = 0;
        for (int x = 0; x < w; x++) pre[x + 1] = pre[x] + row[x];
        /* anti[k] += R(y, k - y) for k in 0 .. w + h; dia[m + h] += R(y, m + y) for m in -h .. w */
        for (size_t k = 0; k < nk; k++) {
            long c = (long)k - y;
            anti[k] += pre[c < 0 ? 0 : c > w ? w : c];
        }
        for (size_t mi = 0; mi < nm; mi++) {
            long c = (long)mi - h + y;
            dia[mi] += pre[c < 0 ? 0 : c > w ? w : c];
        }
        int Y = y + 1;
        uint32_t *trow = t + (size_t)Y * (size_t)stride;
        for (int X = 0; X <= w; X++) trow[X] = anti[X + Y - 1] - dia[X - Y + h];
    }
    return 1;
}

/* ---- Window evaluation ----------------------------------------------------- */

#define RECT_SUM(p, o) ((int32_t)((p)[(o)[0]] - (p)[(o)[1]] - (p)[(o)[2]] + (p)[(o)[3]]))

/* The feature value before normalisation, in OpenCV's float order. */
static inline float haar_value(const struct haar_compiled *f, const uint32_t *p)
{
    float v = f->weight[0] * (float)RECT_SUM(p, f->ofs[0]) + f->weight[1] * (float)RECT_SUM(p, f->ofs[1]);
    if (f->weight[2] != 0.0f) v += f->weight[2] * (float)RECT_SUM(p, f->ofs[2]);
    return v;
}

/* The normalisation factor of the window at p, or 0 when the window is too flat. */
static inline float window_norm(const struct avemo_detector *d, const uint32_t *p, double area)
{
    int32_t s = RECT_SUM(p, d->norm_ofs);
    uint32_t q = (uint32_t)RECT_SUM(p + d->plane_size, d->norm_ofs);
    double nf = area * q - (double)s * s;
    if (!(nf > 0.)) return 0.f;
    float inv = (float)(1. / sqrt(nf));
    return area * inv < 1e-1 ? inv : 0.f;
}

/* 1 when every stage accepts, else -(index of the rejecting stage) (so 0 = first stage). */
static int run_stumps(const struct avemo_detector *d, const uint32_t *p, float norm)
{
    const struct avemo_cascade *c = d->c;
    const struct haar_stump *s = d->stumps;
    for (int si = 0; si < c->nstages; si++) {
        const struct cascade_stage *st = &c->stages[si];
        double sum = 0;
        for (int i = 0; i < st->tree_count; i++, s++) {
            float v = haar_value(&s->f, p) * norm;
            sum += v < s->threshold ? s->left : s->right;
        }
        if (sum < st->threshold) return -si;
    }
    return 1;
}

static inline int lbp_code(const struct lbp_compiled *f, const uint32_t *p)
{
    const int32_t *o = f->ofs;
#define BLOCK(a, b, c2, d2) ((int32_t)(p[o[a]] - p[o[b]] - p[o[c2]] + p[o[d2]]))
    int32_t cv = BLOCK(5, 6, 9, 10);
    return (BLOCK(0, 1, 4, 5) >= cv ? 128 : 0) | (BLOCK(1, 2, 5, 6) >= cv ? 64 : 0) |
           (BLOCK(2, 3, 6, 7) >= cv ? 32 : 0) | (BLOCK(6, 7, 10, 11) >= cv ? 16 : 0) |
           (BLOCK(10, 11, 14, 15) >= cv ? 8 : 0) | (BLOCK(9, 10, 13, 14) >= cv ? 4 : 0) |
           (BLOCK(8, 9, 12, 13) >= cv ? 2 : 0) | (BLOCK(4, 5, 8, 9) >= cv ? 1 : 0);
#undef BLOCK
}

/* General trees (Haar with more than one node, or LBP categorical nodes). */
static int run_trees(const struct avemo_detector *d, const uint32_t *p, float norm)
{
    const struct avemo_cascade *c = d->c;
    for (int si = 0; si < c->nstages; si++) {
        const struct cascade_stage *st = &c->stages[si];
        double sum = 0;
        for (int ti = st->first_tree; ti < st->first_tree + st->tree_count; ti++) {
            const struct cascade_tree *t = &c->trees[ti];
            int idx = 0;
            do {
                int ni = t->first_node + idx;
                const struct cascade_node *n = &c->nodes[ni];
                int left;
                if (c->is_lbp) {
                    int code = lbp_code(&d->lbp[n->feature], p);
                    const int32_t *subset = c->subsets + (size_t)ni * LBP_SUBSET_WORDS;
                    left = ((uint32_t)subset[code >> 5] & (1u << (code & 31))) != 0;
                } else {
                    left = haar_value(&d->haar[n->feature], p) * norm < n->threshold;
                }
                idx = left ? n->left : n->right;
            } while (idx > 0);
            sum += c->leaves[t->first_leaf - idx];
        }
        if (sum < st->threshold) return -si;
    }
    return 1;
}

/* Evaluate the window with top-left integral entry p: 1 accepted, 0 rejected by
 * the first stage, other values <= 0 rejected later or flat (-1 like OpenCV). */
static inline int run_window(const struct avemo_detector *d, const uint32_t *p, double area)
{
    const struct avemo_cascade *c = d->c;
    float norm = 1.f;
    if (!c->is_lbp) {
        norm = window_norm(d, p, area);
        if (norm == 0.f) return -1;
    }
    return c->stumps_only && !c->is_lbp ? run_stumps(d, p, norm) : run_trees(d, p, norm);
}

/* ---- Grouping: cv::groupRectangles ---------------------------------------- */

static int similar(const struct avemo_rect *a, const struct avemo_rect *b, double eps)
{
    double delta = eps * ((a->w < b->w ? a->w : b->w) + (a->h < b->h ? a->h : b->h)) * 0.5;
    return abs(a->x - b->x) <= delta && abs(a->y - b->y) <= delta &&
           abs(a->x + a->w - b->x - b->w) <= delta && abs(a->y + a->h - b->y - b->h) <= delta;
}

static int find_root(int *parent, int i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* Cluster the candidates (equivalence closure of `similar`), average each class,
 * drop classes with <= min_neighbors members and classes inside a stronger one.
 * Classes are numbered in order of their first candidate, as cv::partition does.
 * Writes the groups to d->cand (reusing it) and returns their number, or -1. */
static int group_rectangles(struct avemo_detector *d, int min_neighbors, double eps)
{
    int n = d->ncand;
    if (min_neighbors <= 0 || n <= 0) return n;
    if (!reserve((void **)&d->parent, &d->parent_cap, (size_t)n * 7, sizeof(int))) return -1;
    int *parent = d->parent, *label = parent + n, *cnt = label + n;
    int *sx = cnt + n, *sy = sx + n, *sw = sy + n, *sh = sw + n;
    for (int i = 0; i < n; i++) parent[i] = i;
    /* Candidates come scale by scale, so sizes never decrease; similar rects differ
     * in width by at most 2 * delta = eps * (w + h) of the smaller one. */
    for (int i = 0; i < n; i++) {
        const struct avemo_rect *a = &d->cand[i];
        for (int j = i + 1; j < n; j++) {
            const struct avemo_rect *b = &d->cand[j];
            if (b->w >= a->w && b->h >= a->h && (double)(b->w - a->w) > eps * (a->w + a->h) + 1) break;
            if (similar(a, b, eps)) {
                int ra = find_root(parent, i), rb = find_root(parent, j);
                if (ra != rb) parent[rb] = ra;
            }
        }
    }
    int nclasses = 0;
    for (int i = 0; i < n; i++) label[i] = -1;
    for (int i = 0; i < n; i++) {
        int r = find_root(parent, i);
        if (label[r] < 0) label[r] = nclasses++;
        label[i] = label[r];
    }
    /* cnt, sx, sy, sw, sh are consecutive arrays of n entries */
    memset(cnt, 0, sizeof(int) * (size_t)n * 5);
    for (int i = 0; i < n; i++) {
        int k = label[i];
        cnt[k]++;
        sx[k] += d->cand[i].x;
        sy[k] += d->cand[i].y;
        sw[k] += d->cand[i].w;
        sh[k] += d->cand[i].h;
    }
    /* Averages with OpenCV's float arithmetic and rounding. */
    struct avemo_rect *avg = malloc(sizeof *avg * (size_t)nclasses);
    if (!avg) return -1;
    for (int k = 0; k < nclasses; k++) {
        float s = 1.f / (float)cnt[k];
        avg[k].x = (int)lrintf((float)sx[k] * s);
        avg[k].y = (int)lrintf((float)sy[k] * s);
        avg[k].w = (int)lrintf((float)sw[k] * s);
        avg[k].h = (int)lrintf((float)sh[k] * s);
    }
    int out = 0;
    for (int i = 0; i < nclasses; i++) {
        int n1 = cnt[i];
        if (n1 <= min_neighbors) continue;
        const struct avemo_rect r1 = avg[i];
        int inside = 0;
        for (int j = 0; j < nclasses && !inside; j++) {
            int n2 = cnt[j];
            if (j == i || n2 <= min_neighbors) continue;
            const struct avemo_rect r2 = avg[j];
            int dx = (int)lrint(r2.w * eps), dy = (int)lrint(r2.h * eps);
            inside = r1.x >= r2.x - dx && r1.y >= r2.y - dy && r1.x + r1.w <= r2.x + r2.w + dx &&
                     r1.y + r1.h <= r2.y + r2.h + dy && (n2 > (n1 > 3 ? n1 : 3) || n1 < 3);
        }
        if (!inside) d->cand[out++] = r1;
    }
    free(avg);
    return out;
}

/* ---- The multi-scale scan --------------------------------------------------- */

static enum avemo_status check_params(const struct avemo_image *img, const struct avemo_detect_params *p,
                                      struct avemo_error *err)
{
    if (!img || !img->data || img->width < 1 || img->height < 1)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "detect: empty image");
    if (img->channels != 1 && img->channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: %d channels (1 or 3 expected)", img->channels);
    if (img->width > AVEMO_IMAGE_MAX_SIDE || img->height > AVEMO_IMAGE_MAX_SIDE ||
        (int64_t)img->width * img->height > AVEMO_IMAGE_MAX_PIXELS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "detect: image %dx%d exceeds the size limit", img->width,
                          img->height);
    /* Factors too close to 1 would loop for ages before the minimum size. */
    if (!(p->scale_factor >= 1.001) || !(p->scale_factor <= 10.0))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: scale factor %g not in [1.001, 10]", p->scale_factor);
    if (p->min_neighbors < 0 || p->min_neighbors > 1000)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: min_neighbors %d not in 0..1000", p->min_neighbors);
    if (p->min_width < 0 || p->min_height < 0 || p->max_width < 0 || p->max_height < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: negative size limit");
    if (p->min_width > img->width || p->min_height > img->height)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: minimum size %dx%d larger than the %dx%d image",
                          p->min_width, p->min_height, img->width, img->height);
    if ((p->max_width && p->max_width < p->min_width) || (p->max_height && p->max_height < p->min_height))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: maximum size below the minimum size");
    if (p->max_candidates < 1 || p->max_candidates > 10000000)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: max_candidates %d not in 1..10000000",
                          p->max_candidates);
    return AVEMO_OK;
}

/* The scale factors, as OpenCV lists them (float, from a double running product). */
static int list_scales(const struct avemo_cascade *c, int w, int h, const struct avemo_detect_params *p,
                       float *scales, int max)
{
    int maxw = p->max_width && p->max_height ? p->max_width : w;
    int maxh = p->max_width && p->max_height ? p->max_height : h;
    int n = 0;
    for (double factor = 1;; factor *= p->scale_factor) {
        int ww = (int)lrint(c->win_w * factor), wh = (int)lrint(c->win_h * factor);
        if (ww > maxw || wh > maxh || ww > w || wh > h) break;
        if (ww < p->min_width || wh < p->min_height) continue;
        if (n == max) return -1;
        scales[n++] = (float)factor;
    }
    return n;
}

static enum avemo_status nomem(struct avemo_error *err)
{
    return avemo_fail(err, AVEMO_ERR_NOMEM, "detect: out of memory");
}

static int add_candidate(struct avemo_detector *d, struct avemo_rect r)
{
    if (d->ncand == d->cand_cap) {
        int cap = d->cand_cap ? d->cand_cap * 2 : 256;
        struct avemo_rect *p = realloc(d->cand, sizeof *p * (size_t)cap);
        if (!p) return 0;
        d->cand = p;
        d->cand_cap = cap;
    }
    d->cand[d->ncand++] = r;
    return 1;
}

#ifdef VISION_SSE2
/* Four windows at once: the entries p[0], p[step], p[2 step], p[3 step]. */
static inline __m128i load4(const uint32_t *p, int step)
{
    if (step == 1) return _mm_loadu_si128((const __m128i *)p);
    __m128 a = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)p));
    __m128 b = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(p + 4)));
    return _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
}

static inline __m128 rect_sum4(const uint32_t *p, const int32_t *o, int step)
{
    __m128i s = _mm_add_epi32(_mm_sub_epi32(_mm_sub_epi32(load4(p + o[0], step), load4(p + o[1], step)),
                                            load4(p + o[2], step)),
                              load4(p + o[3], step));
    return _mm_cvtepi32_ps(s);
}

/* The sums of one stage for the 4 windows at p, p + step, ...: the same float
 * and double operations as run_stumps, lane by lane, so the results are
 * identical.  Returns the mask of lanes whose sum is below the stage threshold. */
static inline int stage4(const struct cascade_stage *st, const struct haar_stump *s, const uint32_t *p, int step,
                         __m128 vnorm)
{
    __m128d sum_lo = _mm_setzero_pd(), sum_hi = _mm_setzero_pd();
    for (int i = 0; i < st->tree_count; i++, s++) {
        __m128 v = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(s->f.weight[0]), rect_sum4(p, s->f.ofs[0], step)),
                              _mm_mul_ps(_mm_set1_ps(s->f.weight[1]), rect_sum4(p, s->f.ofs[1], step)));
        if (s->f.weight[2] != 0.0f)
            v = _mm_add_ps(v, _mm_mul_ps(_mm_set1_ps(s->f.weight[2]), rect_sum4(p, s->f.ofs[2], step)));
        v = _mm_mul_ps(v, vnorm);
        __m128 lt = _mm_cmplt_ps(v, _mm_set1_ps(s->threshold));
        __m128 leaf = _mm_or_ps(_mm_and_ps(lt, _mm_set1_ps(s->left)), _mm_andnot_ps(lt, _mm_set1_ps(s->right)));
        sum_lo = _mm_add_pd(sum_lo, _mm_cvtps_pd(leaf));
        sum_hi = _mm_add_pd(sum_hi, _mm_cvtps_pd(_mm_movehl_ps(leaf, leaf)));
    }
    __m128d thr = _mm_set1_pd((double)st->threshold);
    return _mm_movemask_pd(_mm_cmplt_pd(sum_lo, thr)) | (_mm_movemask_pd(_mm_cmplt_pd(sum_hi, thr)) << 2);
}

/* Results of the 4 windows at p, p + step, ... (lanes with norm 0 are flat or past
 * the row's end: -1).  OpenCV does not evaluate a window right after one that the
 * first stage rejected; *skip_next carries that from lane to lane and block to
 * block, and such windows get WINDOW_SKIPPED and are dropped after the first stage. */
#define WINDOW_SKIPPED (-1000000)

/* Lane bookkeeping of run_stumps4/8/16 (n lanes, one bit each): the lanes worth
 * evaluating (res -1 for all), the first stage's verdict with OpenCV's skip rule,
 * and a value written to every lane of a mask. */
static inline int lanes_alive(const float *norm, int *res, int n)
{
    int alive = 0;
    for (int k = 0; k < n; k++) {
        res[k] = -1;
        if (norm[k] != 0.f) alive |= 1 << k;
    }
    return alive;
}

static inline int lanes_after_first_stage(int alive, int fail0, int *res, int n, int *skip_next)
{
    for (int k = 0; k < n; k++) {
        if (*skip_next) {
            res[k] = WINDOW_SKIPPED;
            alive &= ~(1 << k);
            *skip_next = 0;
        } else if (fail0 & (1 << k)) {
            res[k] = 0;
            *skip_next = 1;
        }
    }
    return alive & ~fail0;
}

static inline void lanes_set(int mask, int value, int *res, int n)
{
    for (int k = 0; k < n; k++)
        if (mask & (1 << k)) res[k] = value;
}
static inline void run_stumps4(const struct avemo_detector *d, const uint32_t *p, int step, const float norm[4],
                               int res[4], int *skip_next)
{
    const struct avemo_cascade *c = d->c;
    int alive = lanes_alive(norm, res, 4);
    const __m128 vnorm = _mm_loadu_ps(norm);
    int fail0 = alive ? stage4(&c->stages[0], d->stumps, p, step, vnorm) & alive : 0;
    alive = lanes_after_first_stage(alive, fail0, res, 4, skip_next);
    const struct haar_stump *s = d->stumps + c->stages[0].tree_count;
    for (int si = 1; si < c->nstages && alive; si++) {
        const struct cascade_stage *st = &c->stages[si];
        int died = alive & stage4(st, s, p, step, vnorm);
        lanes_set(died, -si, res, 4);
        alive &= ~died;
        s += st->tree_count;
    }
    lanes_set(alive, 1, res, 4);
}

#ifdef VISION_AVX2
/* The cascade kernels below read only this call's integral image and the detector's
 * read-only tables.  Under ThreadSanitizer each 32- or 64-byte vector load is a range
 * check, 90% of a prediction (36 s for one clip); the server tests then time out on
 * the sanitizer's cost, not on a race.  So the vector kernels are left uninstrumented;
 * the memory they read is written, and checked, by the instrumented code around them. */
#if defined(__SANITIZE_THREAD__)
#define KERNEL_ATTR __attribute__((no_sanitize_thread))
#else
#define KERNEL_ATTR
#endif

/* The same with 8 windows per vector.  Only AVX2 is enabled for these functions
 * (not FMA), so products and sums are rounded exactly as in the scalar code. */
#define AVX2_FN __attribute__((target("avx2"))) KERNEL_ATTR

AVX2_FN static inline __m256i load8(const uint32_t *p, int step)
{
    if (step == 1) return _mm256_loadu_si256((const __m256i *)p);
    __m256 a = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)p));
    __m256 b = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(p + 8)));
    __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_si256(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
}

AVX2_FN static inline __m256 rect_sum8(const uint32_t *p, const int32_t *o, int step)
{
    __m256i s = _mm256_add_epi32(_mm256_sub_epi32(_mm256_sub_epi32(load8(p + o[0], step), load8(p + o[1], step)),
                                                  load8(p + o[2], step)),
                                 load8(p + o[3], step));
    return _mm256_cvtepi32_ps(s);
}

AVX2_FN static inline int stage8(const struct cascade_stage *st, const struct haar_stump *s, const uint32_t *p,
                                 int step, __m256 vnorm)
{
    __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
    for (int i = 0; i < st->tree_count; i++, s++) {
        __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(s->f.weight[0]), rect_sum8(p, s->f.ofs[0], step)),
                                 _mm256_mul_ps(_mm256_set1_ps(s->f.weight[1]), rect_sum8(p, s->f.ofs[1], step)));
        if (s->f.weight[2] != 0.0f)
            v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(s->f.weight[2]), rect_sum8(p, s->f.ofs[2], step)));
        v = _mm256_mul_ps(v, vnorm);
        __m256 lt = _mm256_cmp_ps(v, _mm256_set1_ps(s->threshold), _CMP_LT_OQ);
        __m256 leaf = _mm256_blendv_ps(_mm256_set1_ps(s->right), _mm256_set1_ps(s->left), lt);
        sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(leaf)));
        sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(leaf, 1)));
    }
    __m256d thr = _mm256_set1_pd((double)st->threshold);
    return _mm256_movemask_pd(_mm256_cmp_pd(sum_lo, thr, _CMP_LT_OQ)) |
           (_mm256_movemask_pd(_mm256_cmp_pd(sum_hi, thr, _CMP_LT_OQ)) << 4);
}

AVX2_FN static void run_stumps8(const struct avemo_detector *d, const uint32_t *p, int step, const float norm[8],
                                int res[8], int *skip_next)
{
    const struct avemo_cascade *c = d->c;
    int alive = lanes_alive(norm, res, 8);
    const __m256 vnorm = _mm256_loadu_ps(norm);
    int fail0 = alive ? stage8(&c->stages[0], d->stumps, p, step, vnorm) & alive : 0;
    alive = lanes_after_first_stage(alive, fail0, res, 8, skip_next);
    const struct haar_stump *s = d->stumps + c->stages[0].tree_count;
    for (int si = 1; si < c->nstages && alive; si++) {
        const struct cascade_stage *st = &c->stages[si];
        int died = alive & stage8(st, s, p, step, vnorm);
        lanes_set(died, -si, res, 8);
        alive &= ~died;
        s += st->tree_count;
    }
    lanes_set(alive, 1, res, 8);
}

/* window_norm of 4 windows from their sums and squared sums, in the same double
 * operations; 0 for flat windows. */
AVX2_FN static inline void norm4(__m128i sum, __m128i sq, __m256d area, float out[4])
{
    __m256d s = _mm256_cvtepi32_pd(sum);
    __m256d q = _mm256_cvtepi32_pd(sq); /* a window's squared sum is below 2^31 */
    __m256d nf = _mm256_sub_pd(_mm256_mul_pd(area, q), _mm256_mul_pd(s, s));
    __m256d positive = _mm256_cmp_pd(nf, _mm256_setzero_pd(), _CMP_GT_OQ);
    __m128 inv = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_set1_pd(1.), _mm256_sqrt_pd(nf)));
    __m256d keep = _mm256_and_pd(positive, _mm256_cmp_pd(_mm256_mul_pd(area, _mm256_cvtps_pd(inv)),
                                                         _mm256_set1_pd(1e-1), _CMP_LT_OQ));
    int m = _mm256_movemask_pd(keep);
    _mm_storeu_ps(out, inv);
    for (int k = 0; k < 4; k++)
        if (!(m & (1 << k))) out[k] = 0.f;
}

AVX2_FN static void run_row8(const struct avemo_detector *d, const uint32_t *row, int nx, int step, double area,
                             int *res)
{
    int skip_next = 0;
    const __m256d varea = _mm256_set1_pd(area);
    for (int k0 = 0; k0 < nx; k0 += 8) {
        const uint32_t *p = row + k0 * step;
        const int32_t *o = d->norm_ofs;
        __m256i sum = _mm256_add_epi32(_mm256_sub_epi32(_mm256_sub_epi32(load8(p + o[0], step), load8(p + o[1], step)),
                                                        load8(p + o[2], step)),
                                       load8(p + o[3], step));
        const uint32_t *q = p + d->plane_size;
        __m256i sq = _mm256_add_epi32(_mm256_sub_epi32(_mm256_sub_epi32(load8(q + o[0], step), load8(q + o[1], step)),
                                                       load8(q + o[2], step)),
                                      load8(q + o[3], step));
        float norm[8];
        norm4(_mm256_castsi256_si128(sum), _mm256_castsi256_si128(sq), varea, norm);
        norm4(_mm256_extracti128_si256(sum, 1), _mm256_extracti128_si256(sq, 1), varea, norm + 4);
        for (int k = nx - k0; k < 8; k++) norm[k] = 0.f; /* past the row's end */
        run_stumps8(d, p, step, norm, res + k0, &skip_next);
    }
}

/* The same with 16 windows per vector (AVX-512F only, no FMA: the same roundings again). */
#define AVX512_FN __attribute__((target("avx512f"))) KERNEL_ATTR

AVX512_FN static inline __m512i load16(const uint32_t *p, int step)
{
    if (step == 1) return _mm512_loadu_si512((const void *)p);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_epi32(_mm512_loadu_si512((const void *)p), even,
                                     _mm512_loadu_si512((const void *)(p + 16)));
}

AVX512_FN static inline __m512i rect_isum16(const uint32_t *p, const int32_t *o, int step)
{
    return _mm512_add_epi32(_mm512_sub_epi32(_mm512_sub_epi32(load16(p + o[0], step), load16(p + o[1], step)),
                                             load16(p + o[2], step)),
                            load16(p + o[3], step));
}

/* Products and sums rounded one by one, as in the other paths: GCC contracts a plain
 * _mm512_mul_ps feeding _mm512_add_ps into one FMA (one rounding), which the explicit
 * rounding mode (round to nearest, the default mode) rules out. */
#define ROUND16 (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define MUL16(a, b) _mm512_mul_round_ps((a), (b), ROUND16)
#define ADD16(a, b) _mm512_add_round_ps((a), (b), ROUND16)

AVX512_FN static inline int stage16(const struct cascade_stage *st, const struct haar_stump *s, const uint32_t *p,
                                    int step, __m512 vnorm)
{
    __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
    for (int i = 0; i < st->tree_count; i++, s++) {
        __m512 v = ADD16(MUL16(_mm512_set1_ps(s->f.weight[0]), _mm512_cvtepi32_ps(rect_isum16(p, s->f.ofs[0], step))),
                         MUL16(_mm512_set1_ps(s->f.weight[1]), _mm512_cvtepi32_ps(rect_isum16(p, s->f.ofs[1], step))));
        if (s->f.weight[2] != 0.0f)
            v = ADD16(v, MUL16(_mm512_set1_ps(s->f.weight[2]), _mm512_cvtepi32_ps(rect_isum16(p, s->f.ofs[2], step))));
        v = MUL16(v, vnorm);
        __mmask16 lt = _mm512_cmp_ps_mask(v, _mm512_set1_ps(s->threshold), _CMP_LT_OQ);
        /* the leaves as doubles already: a blend per half instead of widening 16 floats */
        const __m512d left = _mm512_set1_pd(s->left_d), right = _mm512_set1_pd(s->right_d);
        sum_lo = _mm512_add_pd(sum_lo, _mm512_mask_blend_pd((__mmask8)lt, right, left));
        sum_hi = _mm512_add_pd(sum_hi, _mm512_mask_blend_pd((__mmask8)(lt >> 8), right, left));
    }
    __m512d thr = _mm512_set1_pd((double)st->threshold);
    return (int)_mm512_cmp_pd_mask(sum_lo, thr, _CMP_LT_OQ) | ((int)_mm512_cmp_pd_mask(sum_hi, thr, _CMP_LT_OQ) << 8);
}

AVX512_FN static void run_stumps16(const struct avemo_detector *d, const uint32_t *p, int step, const float norm[16],
                                   int res[16], int *skip_next)
{
    const struct avemo_cascade *c = d->c;
    int alive = lanes_alive(norm, res, 16);
    const __m512 vnorm = _mm512_loadu_ps(norm);
    int fail0 = alive ? stage16(&c->stages[0], d->stumps, p, step, vnorm) & alive : 0;
    alive = lanes_after_first_stage(alive, fail0, res, 16, skip_next);
    const struct haar_stump *s = d->stumps + c->stages[0].tree_count;
    /* Once the windows still alive are all in one half, that half goes on 8 wide: a 512-bit
     * operation costs two 256-bit ones on cores that split it (AMD Zen 4), and in the later
     * stages three quarters of the work had one half dead (session 28).  stage8 rounds each
     * window exactly as stage16 does, so the results are the same. */
    const __m256 vnorm_lo = _mm256_loadu_ps(norm), vnorm_hi = _mm256_loadu_ps(norm + 8);
    for (int si = 1; si < c->nstages && alive; si++) {
        const struct cascade_stage *st = &c->stages[si];
        int failed;
        if (!(alive & 0xFF00))
            failed = stage8(st, s, p, step, vnorm_lo);
        else if (!(alive & 0x00FF))
            failed = stage8(st, s, p + 8 * step, step, vnorm_hi) << 8;
        else
            failed = stage16(st, s, p, step, vnorm);
        int died = alive & failed;
        lanes_set(died, -si, res, 16);
        alive &= ~died;
        s += st->tree_count;
    }
    lanes_set(alive, 1, res, 16);
}

/* window_norm of 8 windows, as norm4. */
AVX512_FN static inline void norm8(__m256i sum, __m256i sq, __m512d area, float out[8])
{
    __m512d s = _mm512_cvtepi32_pd(sum);
    __m512d q = _mm512_cvtepi32_pd(sq); /* a window's squared sum is below 2^31 */
    __m512d nf = _mm512_sub_round_pd(_mm512_mul_round_pd(area, q, ROUND16), _mm512_mul_round_pd(s, s, ROUND16), ROUND16);
    __mmask8 positive = _mm512_cmp_pd_mask(nf, _mm512_setzero_pd(), _CMP_GT_OQ);
    __m256 inv = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.), _mm512_sqrt_pd(nf)));
    __mmask8 keep = positive & _mm512_cmp_pd_mask(_mm512_mul_pd(area, _mm512_cvtps_pd(inv)), _mm512_set1_pd(1e-1),
                                                  _CMP_LT_OQ);
    _mm256_storeu_ps(out, inv);
    for (int k = 0; k < 8; k++)
        if (!(keep & (1 << k))) out[k] = 0.f;
}

AVX512_FN static void run_row16(const struct avemo_detector *d, const uint32_t *row, int nx, int step, double area,
                                int *res)
{
    int skip_next = 0;
    const __m512d varea = _mm512_set1_pd(area);
    for (int k0 = 0; k0 < nx; k0 += 16) {
        const uint32_t *p = row + k0 * step;
        __m512i sum = rect_isum16(p, d->norm_ofs, step);
        __m512i sq = rect_isum16(p + d->plane_size, d->norm_ofs, step);
        float norm[16];
        norm8(_mm512_castsi512_si256(sum), _mm512_castsi512_si256(sq), varea, norm);
        norm8(_mm512_extracti64x4_epi64(sum, 1), _mm512_extracti64x4_epi64(sq, 1), varea, norm + 8);
        for (int k = nx - k0; k < 16; k++) norm[k] = 0.f; /* past the row's end */
        run_stumps16(d, p, step, norm, res + k0, &skip_next);
    }
}
#endif

/* Results of every window of a row (nx windows, step apart), 4 at a time. */
static void run_row4(const struct avemo_detector *d, const uint32_t *row, int nx, int step, double area, int *res)
{
    int skip_next = 0;
    for (int k0 = 0; k0 < nx; k0 += 4) {
        float norm[4];
        for (int k = 0; k < 4; k++) norm[k] = k0 + k < nx ? window_norm(d, row + (k0 + k) * step, area) : 0.f;
        run_stumps4(d, row + k0 * step, step, norm, res + k0, &skip_next);
    }
}
#endif

/* Scan one scale; returns 0 on success, 1 when out of memory, 2 when too many candidates. */
static int scan_scale(struct avemo_detector *d, const uint8_t *gray, int w, int h, float sc, int max_cand)
{
    const struct avemo_cascade *c = d->c;
    int sw = vision_round_div(w, sc), sh = vision_round_div(h, sc);
    if (sw < c->win_w || sh < c->win_h) return 0;
    vision_resize_linear_exact(gray, w, h, d->scaled, sw, sh, d->xwork, d->hrows);
    uint32_t *sum = d->planes, *sq = sum + d->plane_size, *tilt = sq + d->plane_size;
    integral(d->scaled, sw, sh, sum, sq, d->stride);
    if (c->has_tilted && !tilted_integral(d, d->scaled, sw, sh, tilt, d->stride)) return 1;
    int step = sc >= 2 ? 1 : 2;
    int winw = (int)lrintf((float)c->win_w * sc), winh = (int)lrintf((float)c->win_h * sc);
    double area = (double)(c->win_w - 2) * (c->win_h - 2);
#ifdef VISION_SSE2
    if (c->stumps_only && !c->is_lbp && d->simd > 0) {
        /* Every window of the row, 4 at a time (skipped ones come back as WINDOW_SKIPPED). */
        int nx = (sw - c->win_w) / step + 1;
        for (int y = 0; y + c->win_h <= sh; y += step) {
#ifdef VISION_AVX2
            if (d->simd == 3) run_row16(d, sum + (size_t)y * (size_t)d->stride, nx, step, area, d->row_result);
            else if (d->simd == 2) run_row8(d, sum + (size_t)y * (size_t)d->stride, nx, step, area, d->row_result);
            else
#endif
                run_row4(d, sum + (size_t)y * (size_t)d->stride, nx, step, area, d->row_result);
            for (int k = 0; k < nx; k++) {
                int r = d->row_result[k];
                if (r > 0) {
                    struct avemo_rect rect = {(int)lrintf((float)(k * step) * sc), (int)lrintf((float)y * sc), winw,
                                              winh};
                    if (d->ncand >= max_cand) return 2;
                    if (!add_candidate(d, rect)) return 1;
                }
            }
        }
        return 0;
    }
#endif
    for (int y = 0; y + c->win_h <= sh; y += step) {
        const uint32_t *row = sum + (size_t)y * (size_t)d->stride;
        for (int x = 0; x + c->win_w <= sw; x += step) {
            int r = run_window(d, row + x, area);
            if (r > 0) {
                struct avemo_rect rect = {(int)lrintf((float)x * sc), (int)lrintf((float)y * sc), winw, winh};
                if (d->ncand >= max_cand) return 2;
                if (!add_candidate(d, rect)) return 1;
            }
            if (r == 0) x += step; /* OpenCV skips the next position after a first-stage rejection */
        }
    }
    return 0;
}

static int cmp_area_desc(const void *a, const void *b)
{
    const struct avemo_rect *x = a, *y = b;
    long ax = (long)x->w * x->h, ay = (long)y->w * y->h;
    if (ax != ay) return ax < ay ? 1 : -1;
    /* ties: top-left first, for a stable order */
    if (x->y != y->y) return x->y < y->y ? -1 : 1;
    return (x->x > y->x) - (x->x < y->x);
}

enum avemo_status avemo_detect(avemo_detector *d, const struct avemo_image *img,
                               const struct avemo_detect_params *params, struct avemo_rect *out, int max_out,
                               int *count, struct avemo_error *err)
{
    if (count) *count = 0;
    if (!d || !count || (max_out > 0 && !out) || max_out < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_detect: bad arguments");
    struct avemo_detect_params defaults;
    if (!params) {
        avemo_detect_params_default(&defaults);
        params = &defaults;
    }
    const struct avemo_cascade *c = d->c;
    enum avemo_status rc = check_params(img, params, err);
    if (rc) return rc;
    const int w = img->width, h = img->height;
    const uint8_t *gray = img->data;
    size_t npix = (size_t)w * (size_t)h;
    if (img->channels == 3) {
        if (!reserve((void **)&d->gray, &d->gray_cap, npix, 1)) return nomem(err);
        vision_rgb_to_gray(img->data, npix, d->gray);
        gray = d->gray;
    }
    float scales[1024];
    int nscales = list_scales(c, w, h, params, scales, 1024);
    if (nscales < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "detect: scale factor %g gives more than 1024 scales",
                          params->scale_factor);
    d->ncand = 0;
    if (nscales > 0) {
        /* Buffers sized for the first (largest) scale; its width fixes the stride. */
        int sw0 = vision_round_div(w, scales[0]), sh0 = vision_round_div(h, scales[0]);
        int stride = sw0 + 1;
        size_t plane = (size_t)stride * (size_t)(sh0 + 1);
        int nplanes = c->has_tilted ? 3 : 2;
        size_t work = 2 * ((size_t)sw0 + (size_t)sh0) + 8;
        if (!reserve((void **)&d->scaled, &d->scaled_cap, (size_t)sw0 * (size_t)sh0, 1) ||
            !reserve((void **)&d->planes, &d->planes_cap, plane * (size_t)nplanes + PLANE_PAD, sizeof(uint32_t)) ||
            !reserve((void **)&d->row_result, &d->row_result_cap, (size_t)sw0 + 16, sizeof(int)))
            return nomem(err);
        memset(d->planes + plane * (size_t)nplanes, 0, PLANE_PAD * sizeof(uint32_t));
        if (work > d->work_cap) {
            free(d->xwork);
            free(d->hrows);
            d->xwork = malloc(sizeof(int32_t) * work);
            d->hrows = malloc(sizeof(uint16_t) * work);
            d->work_cap = d->xwork && d->hrows ? work : 0;
            if (!d->work_cap) return nomem(err);
        }
        if (plane != d->plane_size) d->stride = 0; /* tilted offsets depend on the plane size */
        d->plane_size = plane;
        if (!compile_features(d, stride)) return nomem(err);
        for (int i = 0; i < nscales; i++) {
            int st = scan_scale(d, gray, w, h, scales[i], params->max_candidates);
            if (st == 1) return nomem(err);
            if (st == 2)
                return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "detect: more than %d candidate windows",
                                  params->max_candidates);
        }
    }
    int n = group_rectangles(d, params->min_neighbors, 0.2);
    if (n < 0) return nomem(err);
    /* Clip to the image, as cv::CascadeClassifier::detectMultiScale does. */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        struct avemo_rect r = d->cand[i];
        int x0 = r.x > 0 ? r.x : 0, y0 = r.y > 0 ? r.y : 0;
        int x1 = r.x + r.w < w ? r.x + r.w : w, y1 = r.y + r.h < h ? r.y + r.h : h;
        if (x1 <= x0 || y1 <= y0) continue;
        struct avemo_rect cr = {x0, y0, x1 - x0, y1 - y0};
        d->cand[kept++] = cr;
    }
    if (kept > 1) qsort(d->cand, (size_t)kept, sizeof *d->cand, cmp_area_desc);
    for (int i = 0; i < kept && i < max_out; i++) out[i] = d->cand[i];
    *count = kept;
    return AVEMO_OK;
}
