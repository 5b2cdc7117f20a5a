/* Heat maps drawn over their input (a face crop, audio features) as PNG with cairo. */
#include <avemo/model.h>

#include <cairo.h>
#include <stdlib.h>
#include <string.h>

#define HEATMAP_MAX_SIDE 4096 /* output pixels per side */

/* The "jet" colour map: dark blue (0), blue, cyan, yellow, red, dark red (1). */
static void jet(float v, float rgb[3])
{
    static const float stops[6][4] = {{0.0f, 0.0f, 0.0f, 0.5f},   {0.125f, 0.0f, 0.0f, 1.0f},
                                      {0.375f, 0.0f, 1.0f, 1.0f}, {0.625f, 1.0f, 1.0f, 0.0f},
                                      {0.875f, 1.0f, 0.0f, 0.0f}, {1.0f, 0.5f, 0.0f, 0.0f}};
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    int i = 0;
    while (i < 4 && v > stops[i + 1][0]) i++;
    const float t = (v - stops[i][0]) / (stops[i + 1][0] - stops[i][0]);
    for (int c = 0; c < 3; c++) rgb[c] = stops[i][c + 1] + t * (stops[i + 1][c + 1] - stops[i][c + 1]);
}

/* Scale and offset that bring the image into [0, 1]: none for a crop already there, the
 * image's own range for features. */
static void image_range(const struct avemo_heatmap *m, float *scale, float *offset)
{
    const size_t n = (size_t)m->channels * m->width * m->height;
    float lo = m->image[0], hi = m->image[0];
    for (size_t i = 1; i < n; i++) {
        lo = m->image[i] < lo ? m->image[i] : lo;
        hi = m->image[i] > hi ? m->image[i] : hi;
    }
    *scale = 1.0f;
    *offset = 0.0f;
    if ((lo < 0.0f || hi > 1.0f) && hi > lo) {
        *scale = 1.0f / (hi - lo);
        *offset = -lo * *scale;
    }
}

static void draw_pixels(const struct avemo_heatmap *m, int scale, const float *heat, unsigned char *data, int stride)
{
    const int W = m->width * scale, H = m->height * scale;
    const size_t plane = (size_t)m->width * m->height;
    float s, o;
    image_range(m, &s, &o);
    for (int y = 0; y < H; y++) {
        const int row = m->flip ? m->height - 1 - y / scale : y / scale;
        const int hy = m->flip ? H - 1 - y : y;
        uint32_t *out = (uint32_t *)(data + (size_t)y * stride);
        for (int x = 0; x < W; x++) {
            const size_t at = (size_t)row * m->width + x / scale;
            float rgb[3], colour[3];
            for (int c = 0; c < 3; c++)
                rgb[c] = m->image[(m->channels == 3 ? (size_t)c : 0) * plane + at] * s + o;
            jet(heat[(size_t)hy * W + x], colour);
            uint32_t px = 0xff000000u;
            for (int c = 0; c < 3; c++) {
                float v = 0.5f * rgb[c] + 0.5f * colour[c];
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                px |= (uint32_t)(v * 255.0f + 0.5f) << (16 - 8 * c);
            }
            out[x] = px;
        }
    }
}

/* The picture on a new surface (*surface NULL and an error when it cannot be made). */
static enum avemo_status render(const struct avemo_heatmap *m, cairo_surface_t **surface, struct avemo_error *err)
{
    *surface = NULL;
    const int scale = m->scale > 0 ? m->scale : 4;
    if (m->width < 1 || m->height < 1 || (m->channels != 1 && m->channels != 3) || !m->image || !m->heat ||
        (long)m->width * scale > HEATMAP_MAX_SIDE || (long)m->height * scale > HEATMAP_MAX_SIDE)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "heat map: %dx%d x%d with %d channels is not drawable",
                          m->width, m->height, scale, m->channels);
    const int W = m->width * scale, H = m->height * scale;
    float *heat = malloc(sizeof(float) * (size_t)W * H);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    if (!heat || cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        free(heat);
        cairo_surface_destroy(s);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "heat map: cannot allocate a %dx%d picture", W, H);
    }
    avemo_heatmap_resize(m->heat, m->height, m->width, heat, H, W); /* smooth, not blocks */
    cairo_surface_flush(s);
    draw_pixels(m, scale, heat, cairo_image_surface_get_data(s), cairo_image_surface_get_stride(s));
    cairo_surface_mark_dirty(s);
    free(heat);
    *surface = s;
    return AVEMO_OK;
}

struct png_buffer {
    uint8_t *data;
    size_t size, cap;
};

static cairo_status_t append_png(void *closure, const unsigned char *bytes, unsigned int n)
{
    struct png_buffer *b = closure;
    if (b->size + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap < b->size + n) cap *= 2;
        uint8_t *bigger = realloc(b->data, cap);
        if (!bigger) return CAIRO_STATUS_NO_MEMORY;
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->size, bytes, n);
    b->size += n;
    return CAIRO_STATUS_SUCCESS;
}

enum avemo_status avemo_heatmap_png(const struct avemo_heatmap *map, uint8_t **png, size_t *size,
                                    struct avemo_error *err)
{
    *png = NULL;
    *size = 0;
    cairo_surface_t *s;
    enum avemo_status st = render(map, &s, err);
    if (st) return st;
    struct png_buffer b = {0};
    cairo_status_t cs = cairo_surface_write_to_png_stream(s, append_png, &b);
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        free(b.data);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "heat map: cannot encode the PNG: %s", cairo_status_to_string(cs));
    }
    *png = b.data;
    *size = b.size;
    return AVEMO_OK;
}

enum avemo_status avemo_heatmap_write_png(const struct avemo_heatmap *map, const char *path, struct avemo_error *err)
{
    cairo_surface_t *s;
    enum avemo_status st = render(map, &s, err);
    if (st) return st;
    cairo_status_t cs = cairo_surface_write_to_png(s, path);
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot write PNG: %s", path, cairo_status_to_string(cs));
    return AVEMO_OK;
}
