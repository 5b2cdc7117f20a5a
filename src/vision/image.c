/* Images: allocation, colour conversion, resampling, drawing. */
#include "vision/vision_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum avemo_status avemo_image_alloc(struct avemo_image *img, int width, int height, int channels,
                                    struct avemo_error *err)
{
    img->width = img->height = img->channels = 0;
    img->data = NULL;
    if (channels != 1 && channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "image: %d channels (1 or 3 expected)", channels);
    if (width < 1 || height < 1)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "image: empty size %dx%d", width, height);
    if (width > AVEMO_IMAGE_MAX_SIDE || height > AVEMO_IMAGE_MAX_SIDE ||
        (int64_t)width * height > AVEMO_IMAGE_MAX_PIXELS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "image: %dx%d exceeds the size limit", width, height);
    img->data = calloc((size_t)width * (size_t)height, (size_t)channels);
    if (!img->data) return avemo_fail(err, AVEMO_ERR_NOMEM, "image: cannot allocate %dx%dx%d", width, height, channels);
    img->width = width;
    img->height = height;
    img->channels = channels;
    return AVEMO_OK;
}

void avemo_image_free(struct avemo_image *img)
{
    if (!img) return;
    free(img->data);
    img->data = NULL;
    img->width = img->height = img->channels = 0;
}

struct avemo_image avemo_image_from_frame(const struct avemo_frame *frame)
{
    struct avemo_image img = {frame->width, frame->height, frame->channels, frame->data};
    return img;
}

double avemo_rect_iou(struct avemo_rect a, struct avemo_rect b)
{
    if (a.w <= 0 || a.h <= 0 || b.w <= 0 || b.h <= 0) return 0;
    int x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
    int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
    int y1 = a.y + a.h < b.y + b.h ? a.y + a.h : b.y + b.h;
    double inter = x1 > x0 && y1 > y0 ? (double)(x1 - x0) * (y1 - y0) : 0;
    return inter / ((double)a.w * a.h + (double)b.w * b.h - inter);
}

/* BT.601 luma in 15-bit fixed point, the weights and rounding of cv::cvtColor
 * (OpenCV 4, COLOR_RGB2GRAY; checked equal on random pixels). */
void vision_rgb_to_gray(const uint8_t *rgb, size_t pixels, uint8_t *gray)
{
    for (size_t i = 0; i < pixels; i++, rgb += 3)
        gray[i] = (uint8_t)((rgb[0] * 9798 + rgb[1] * 19235 + rgb[2] * 3735 + (1 << 14)) >> 15);
}

static int image_valid(const struct avemo_image *img)
{
    return img && img->data && img->width > 0 && img->height > 0 && (img->channels == 1 || img->channels == 3);
}

enum avemo_status avemo_image_convert(const struct avemo_image *src, int channels, struct avemo_image *dst,
                                      struct avemo_error *err)
{
    if (!image_valid(src)) return avemo_fail(err, AVEMO_ERR_EMPTY, "image: empty or invalid input");
    enum avemo_status rc = avemo_image_alloc(dst, src->width, src->height, channels, err);
    if (rc) return rc;
    size_t n = (size_t)src->width * (size_t)src->height;
    if (src->channels == channels) memcpy(dst->data, src->data, n * (size_t)channels);
    else if (channels == 1) vision_rgb_to_gray(src->data, n, dst->data);
    else
        for (size_t i = 0; i < n; i++) memset(dst->data + 3 * i, src->data[i], 3);
    return AVEMO_OK;
}

void avemo_image_equalize(struct avemo_image *img)
{
    if (!image_valid(img)) return;
    size_t n = (size_t)img->width * (size_t)img->height;
    for (int c = 0; c < img->channels; c++) {
        size_t hist[256] = {0};
        uint8_t *px = img->data + c;
        for (size_t i = 0; i < n; i++) hist[px[i * (size_t)img->channels]]++;
        /* cv2.equalizeHist: the lowest level present maps to 0, the CDF is stretched over 0..255. */
        size_t first = 0;
        while (first < 256 && hist[first] == 0) first++;
        if (first == 256 || hist[first] == n) continue; /* one grey level: nothing to spread */
        size_t below = hist[first], total = n - hist[first];
        uint8_t lut[256] = {0};
        for (size_t v = first + 1; v < 256; v++) {
            below += hist[v];
            lut[v] = (uint8_t)lrint(255.0 * (double)(below - hist[first]) / (double)total);
        }
        for (size_t i = 0; i < n; i++) px[i * (size_t)img->channels] = lut[px[i * (size_t)img->channels]];
    }
}

/* ---- Crop resampling: per-axis weight lists ---------------------------- */

/* Source taps of one output sample. */
struct axis_taps {
    int *first;    /* per output: index of the first tap in idx/weight */
    int *count;    /* per output: number of taps */
    int *idx;      /* source index (relative to the region) */
    float *weight;
};

static void taps_free(struct axis_taps *t)
{
    free(t->first);
    free(t->count);
    free(t->idx);
    free(t->weight);
}

/* Area averaging when shrinking (each output covers src/dst source pixels with
 * fractional overlaps), bilinear with pixel centres aligned when enlarging. */
static int taps_build(struct axis_taps *t, int src, int dst)
{
    int maxtaps = src > dst ? src / dst + 2 : 2;
    t->first = malloc(sizeof(int) * (size_t)dst);
    t->count = malloc(sizeof(int) * (size_t)dst);
    t->idx = malloc(sizeof(int) * (size_t)dst * (size_t)maxtaps);
    t->weight = malloc(sizeof(float) * (size_t)dst * (size_t)maxtaps);
    if (!t->first || !t->count || !t->idx || !t->weight) return 0;
    double scale = (double)src / dst;
    int n = 0;
    for (int i = 0; i < dst; i++) {
        t->first[i] = n;
        if (src > dst) {
            double a = i * scale, b = (i + 1) * scale;
            for (int k = (int)floor(a); k < b && k < src; k++) {
                double lo = k > a ? k : a, hi = k + 1 < b ? k + 1 : b;
                if (hi <= lo) continue;
                t->idx[n] = k;
                t->weight[n++] = (float)((hi - lo) / scale);
            }
        } else {
            double f = (i + 0.5) * scale - 0.5;
            int k = (int)floor(f);
            float w1 = (float)(f - k);
            int k0 = k < 0 ? 0 : (k > src - 1 ? src - 1 : k);
            int k1 = k + 1 < 0 ? 0 : (k + 1 > src - 1 ? src - 1 : k + 1);
            t->idx[n] = k0;
            t->weight[n++] = 1.f - w1;
            t->idx[n] = k1;
            t->weight[n++] = w1;
        }
        t->count[i] = n - t->first[i];
    }
    return 1;
}

enum avemo_status avemo_image_resize(const struct avemo_image *src, struct avemo_rect r, int width, int height,
                                     struct avemo_image *dst, struct avemo_error *err)
{
    if (!image_valid(src)) return avemo_fail(err, AVEMO_ERR_EMPTY, "resize: empty or invalid input");
    if (r.w < 1 || r.h < 1 || r.x < 0 || r.y < 0 || r.x + r.w > src->width || r.y + r.h > src->height)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "resize: region %dx%d at (%d,%d) outside the %dx%d image", r.w,
                          r.h, r.x, r.y, src->width, src->height);
    enum avemo_status rc = avemo_image_alloc(dst, width, height, src->channels, err);
    if (rc) return rc;
    const int ch = src->channels;
    struct axis_taps tx = {0}, ty = {0};
    float *rows = malloc(sizeof(float) * (size_t)r.h * (size_t)width * (size_t)ch);
    if (!rows || !taps_build(&tx, r.w, width) || !taps_build(&ty, r.h, height)) {
        free(rows);
        taps_free(&tx);
        taps_free(&ty);
        avemo_image_free(dst);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "resize: out of memory");
    }
    /* Horizontal pass over the region's rows, then vertical pass. */
    for (int y = 0; y < r.h; y++) {
        const uint8_t *s = src->data + ((size_t)(r.y + y) * (size_t)src->width + (size_t)r.x) * (size_t)ch;
        float *o = rows + (size_t)y * (size_t)width * (size_t)ch;
        for (int x = 0; x < width; x++)
            for (int c = 0; c < ch; c++) {
                float acc = 0;
                for (int k = tx.first[x]; k < tx.first[x] + tx.count[x]; k++) acc += tx.weight[k] * s[tx.idx[k] * ch + c];
                o[x * ch + c] = acc;
            }
    }
    for (int y = 0; y < height; y++) {
        uint8_t *o = dst->data + (size_t)y * (size_t)width * (size_t)ch;
        for (int i = 0; i < width * ch; i++) {
            float acc = 0;
            for (int k = ty.first[y]; k < ty.first[y] + ty.count[y]; k++)
                acc += ty.weight[k] * rows[(size_t)ty.idx[k] * (size_t)width * (size_t)ch + (size_t)i];
            long v = lrintf(acc);
            o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(rows);
    taps_free(&tx);
    taps_free(&ty);
    return AVEMO_OK;
}

void avemo_image_draw_rect(struct avemo_image *img, struct avemo_rect r, const uint8_t color[3], int thickness)
{
    if (!image_valid(img) || r.w <= 0 || r.h <= 0 || thickness <= 0) return;
    for (int y = r.y; y < r.y + r.h; y++) {
        if (y < 0 || y >= img->height) continue;
        int edge_row = y < r.y + thickness || y >= r.y + r.h - thickness;
        for (int x = r.x; x < r.x + r.w; x++) {
            if (x < 0 || x >= img->width) continue;
            if (!edge_row && x >= r.x + thickness && x < r.x + r.w - thickness) {
                x = r.x + r.w - thickness - 1; /* skip the inside */
                continue;
            }
            uint8_t *p = img->data + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
            for (int c = 0; c < img->channels; c++) p[c] = color[img->channels == 1 ? 0 : c];
        }
    }
}

/* ---- The detector's pyramid: OpenCV's bit-exact bilinear resize ---------- */

int vision_round_div(int size, float scale)
{
    return (int)lrintf((float)size / scale);
}

/* Coefficients of one axis: for each output, the first source index and the
 * 8-bit fixed-point weight of the second one (weights sum to 256).  Outputs left
 * of the source copy pixel 0, right of it the last pixel (weight 0). */
static void exact_axis(int src, int dst, int32_t *ofs, uint16_t *w1)
{
    double scale = 1.0 / ((double)dst / (double)src);
    for (int i = 0; i < dst; i++) {
        volatile double prod = scale * ((double)i + 0.5); /* no fused multiply-add: OpenCV rounds twice */
        double f = prod - 0.5;
        double fl = floor(f);
        if (fl >= 0 && src > 1) {
            if (fl < src - 1) {
                ofs[i] = (int32_t)fl;
                w1[i] = (uint16_t)lrint((f - fl) * 256.0); /* round half to even, as cvRound(softdouble) */
            } else {
                ofs[i] = src - 1;
                w1[i] = 0;
            }
        } else {
            ofs[i] = 0;
            w1[i] = 0;
        }
    }
}

/* xwork: 2 * (dw + dh) int32; hrows: 2 * dw uint16. */
void vision_resize_linear_exact(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, int32_t *xwork,
                                uint16_t *hrows)
{
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * (size_t)sh);
        return;
    }
    int32_t *xofs = xwork, *yofs = xwork + dw;
    uint16_t *xw = (uint16_t *)(xwork + dw + dh), *yw = xw + dw;
    exact_axis(sw, dw, xofs, xw);
    exact_axis(sh, dh, yofs, yw);
    uint16_t *h0 = hrows, *h1 = hrows + dw;
    int row0 = -1, row1 = -1;
    for (int y = 0; y < dh; y++) {
        int sy0 = yofs[y], sy1 = sy0 + 1 < sh ? sy0 + 1 : sy0;
        /* Horizontal pass for the two source rows (reusing rows already done). */
        if (row0 != sy0 || row1 != sy1) {
            if (row1 == sy0) {
                uint16_t *t = h0;
                h0 = h1;
                h1 = t;
                row0 = sy0;
            }
            for (int r = row0 == sy0 ? 1 : 0; r < 2; r++) {
                const uint8_t *s = src + (size_t)(r ? sy1 : sy0) * (size_t)sw;
                uint16_t *h = r ? h1 : h0;
                for (int x = 0; x < dw; x++) {
                    int o = xofs[x], b = o + 1 < sw ? o + 1 : o;
                    h[x] = (uint16_t)(s[o] * (256 - xw[x]) + s[b] * xw[x]);
                }
            }
            row0 = sy0;
            row1 = sy1;
        }
        uint32_t wy1 = yw[y], wy0 = 256 - wy1;
        uint8_t *o = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++) o[x] = (uint8_t)((h0[x] * wy0 + h1[x] * wy1 + (1u << 15)) >> 16);
    }
}
