/* PNG plots with cairo: the confusion matrix and training curves. */
#include <avemo/model.h>

#include <cairo.h>
#include <math.h>
#include <stdio.h>

static enum avemo_status write_png(cairo_surface_t *s, const char *path, struct avemo_error *err)
{
    cairo_status_t cs = cairo_surface_write_to_png(s, path);
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot write PNG: %s", path, cairo_status_to_string(cs));
    return AVEMO_OK;
}

static void text_centred(cairo_t *cr, double x, double y, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - e.width / 2 - e.x_bearing, y - e.height / 2 - e.y_bearing);
    cairo_show_text(cr, s);
}

enum avemo_status avemo_plot_confusion(const struct avemo_metrics *m, const char *title, const char *png_path,
                                       struct avemo_error *err)
{
    const int k = m->num_classes, cell = 64, left = 90, top = 70;
    const int width = left + k * cell + 30, height = top + k * cell + 70;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 15);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_centred(cr, width / 2.0, 22, title ? title : "confusion matrix");
    cairo_set_font_size(cr, 12);
    char buf[64];
    snprintf(buf, sizeof buf, "accuracy %.1f%%   unweighted %.1f%%   n = %zu", 100 * m->accuracy,
             100 * m->unweighted_accuracy, m->n);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    text_centred(cr, width / 2.0, 44, buf);
    for (int r = 0; r < k; r++) {
        /* Cells shaded by the share of the true class, so rare classes read as clearly as common ones. */
        double row = m->support[r] ? (double)m->support[r] : 1;
        for (int c = 0; c < k; c++) {
            double share = (double)m->confusion[r][c] / row;
            cairo_set_source_rgb(cr, 1 - 0.75 * share, 1 - 0.55 * share, 1 - 0.15 * share);
            cairo_rectangle(cr, left + c * cell, top + r * cell, cell - 1, cell - 1);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, share > 0.55 ? 1 : 0.1, share > 0.55 ? 1 : 0.1, share > 0.55 ? 1 : 0.1);
            snprintf(buf, sizeof buf, "%zu", m->confusion[r][c]);
            text_centred(cr, left + c * cell + cell / 2.0, top + r * cell + cell / 2.0 - 7, buf);
            snprintf(buf, sizeof buf, "%.0f%%", 100 * share);
            cairo_set_font_size(cr, 10);
            text_centred(cr, left + c * cell + cell / 2.0, top + r * cell + cell / 2.0 + 10, buf);
            cairo_set_font_size(cr, 12);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_centred(cr, left - 30, top + r * cell + cell / 2.0, m->labels[r]);
        text_centred(cr, left + r * cell + cell / 2.0, top + k * cell + 16, m->labels[r]);
    }
    text_centred(cr, left + k * cell / 2.0, top + k * cell + 42, "predicted");
    cairo_save(cr);
    cairo_move_to(cr, 18, top + k * cell / 2.0 + 20);
    cairo_rotate(cr, -M_PI / 2);
    cairo_show_text(cr, "true");
    cairo_restore(cr);
    cairo_destroy(cr);
    return write_png(s, png_path, err);
}

static const double series_colours[][3] = {{0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16}};

/* The legend in the plot's top right corner, on a white box wide enough for the longest name,
 * drawn after the curves so that it stays readable. */
static void draw_legend(cairo_t *cr, const struct avemo_series *series, int nseries, double right_x, double top_y)
{
    double text_w = 0;
    for (int s = 0; s < nseries; s++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, series[s].name, &e);
        text_w = e.x_advance > text_w ? e.x_advance : text_w;
    }
    double x0 = right_x - text_w - 40, y0 = top_y + 4;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, x0, y0, text_w + 36, 8 + 16 * nseries);
    cairo_fill(cr);
    for (int s = 0; s < nseries; s++) {
        const double *c = series_colours[s % 4];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_move_to(cr, x0 + 6, y0 + 12 + 16 * s);
        cairo_line_to(cr, x0 + 26, y0 + 12 + 16 * s);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_move_to(cr, x0 + 32, y0 + 16 + 16 * s);
        cairo_show_text(cr, series[s].name);
    }
}

enum avemo_status avemo_plot_curves(const char *title, const char *y_label, const struct avemo_series *series,
                                    int nseries, const char *png_path, struct avemo_error *err)
{
    const int width = 640, height = 400, left = 60, right = 20, top = 40, bottom = 50;
    double lo = INFINITY, hi = -INFINITY;
    int epochs = 0;
    for (int s = 0; s < nseries; s++) {
        for (int i = 0; i < series[s].count; i++)
            if (isfinite(series[s].values[i])) {
                lo = fmin(lo, series[s].values[i]);
                hi = fmax(hi, series[s].values[i]);
            }
        if (series[s].count > epochs) epochs = series[s].count;
    }
    if (epochs == 0 || !isfinite(lo)) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: nothing to plot", png_path);
    if (hi - lo < 1e-9) hi = lo + 1;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 14);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_centred(cr, width / 2.0, 20, title);
    cairo_set_font_size(cr, 11);
    double pw = width - left - right, ph = height - top - bottom;
    /* Axes and a few grid lines with their values. */
    cairo_set_line_width(cr, 1);
    char buf[32];
    for (int g = 0; g <= 4; g++) {
        double v = lo + (hi - lo) * g / 4.0, y = top + ph - ph * g / 4.0;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, left, y);
        cairo_line_to(cr, left + pw, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%.3g", v);
        text_centred(cr, left - 25, y, buf);
    }
    for (int g = 0; g <= 4; g++) {
        double e = 1 + (epochs - 1) * g / 4.0, x = left + (epochs > 1 ? pw * (e - 1) / (epochs - 1) : 0);
        snprintf(buf, sizeof buf, "%.0f", e);
        text_centred(cr, x, top + ph + 14, buf);
    }
    text_centred(cr, left + pw / 2, height - 12, "epoch");
    cairo_save(cr);
    cairo_move_to(cr, 14, top + ph / 2 + 20);
    cairo_rotate(cr, -M_PI / 2);
    cairo_show_text(cr, y_label);
    cairo_restore(cr);
    cairo_set_line_width(cr, 2);
    for (int s = 0; s < nseries; s++) {
        const double *c = series_colours[s % 4];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        int started = 0;
        for (int i = 0; i < series[s].count; i++) {
            double v = series[s].values[i];
            if (!isfinite(v)) continue;
            double x = left + (epochs > 1 ? pw * i / (epochs - 1) : pw / 2), y = top + ph - ph * (v - lo) / (hi - lo);
            if (started) cairo_line_to(cr, x, y);
            else cairo_move_to(cr, x, y);
            started = 1;
        }
        cairo_stroke(cr);
    }
    draw_legend(cr, series, nseries, left + pw, top);
    cairo_destroy(cr);
    return write_png(surf, png_path, err);
}

/* Axis ticks 0, 0.25 ... 1 on both axes of the unit square at (x0, y0) of side `side`. */
static void unit_square_axes(cairo_t *cr, double x0, double y0, double side)
{
    char buf[16];
    cairo_set_line_width(cr, 1);
    for (int g = 0; g <= 4; g++) {
        double t = g / 4.0;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, x0, y0 + side - side * t);
        cairo_line_to(cr, x0 + side, y0 + side - side * t);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%.2g", t);
        text_centred(cr, x0 - 18, y0 + side - side * t, buf);
        text_centred(cr, x0 + side * t, y0 + side + 14, buf);
    }
}

enum avemo_status avemo_plot_reliability(const struct avemo_reliability *r, const char *title, const char *png_path,
                                         struct avemo_error *err)
{
    if (r->bins < 1 || r->bins > AVEMO_RELIABILITY_MAX_BINS || r->n == 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: nothing to plot (%zu answers, %d bins)", png_path, r->n, r->bins);
    const int width = 520, left = 60, top = 60, side = 400, hist = 70, height = top + side + 40 + hist + 40;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 14);
    text_centred(cr, width / 2.0, 18, title ? title : "reliability diagram");
    char buf[128];
    snprintf(buf, sizeof buf, "ECE %.3f (%d bins)   accuracy %.1f%%   mean confidence %.1f%%   n = %zu", r->ece, r->bins,
             100 * r->accuracy_all, 100 * r->confidence_all, r->n);
    cairo_set_font_size(cr, 11);
    text_centred(cr, width / 2.0, 40, buf);
    unit_square_axes(cr, left, top, side);
    double bw = (double)side / r->bins;
    size_t most = 1;
    for (int b = 0; b < r->bins; b++) most = r->count[b] > most ? r->count[b] : most;
    for (int b = 0; b < r->bins; b++) {
        if (!r->count[b]) continue;
        double x = left + b * bw, acc = side * r->accuracy[b], conf = side * r->confidence[b];
        /* The bar is the bin's accuracy; red between it and the bin's mean confidence is the gap. */
        cairo_set_source_rgb(cr, 0.12, 0.47, 0.71);
        cairo_rectangle(cr, x + 1, top + side - acc, bw - 2, acc);
        cairo_fill(cr);
        cairo_set_source_rgba(cr, 0.84, 0.15, 0.16, 0.45);
        cairo_rectangle(cr, x + 1, top + side - fmax(acc, conf), bw - 2, fabs(acc - conf));
        cairo_fill(cr);
        double h = (double)hist * (double)r->count[b] / (double)most;
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        cairo_rectangle(cr, x + 1, top + side + 40 + hist - h, bw - 2, h);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.5);
    cairo_set_dash(cr, (double[]){4, 3}, 2, 0);
    cairo_move_to(cr, left, top + side);
    cairo_line_to(cr, left + side, top);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    text_centred(cr, left + side / 2.0, top + side + 30, "confidence (top probability)");
    text_centred(cr, left + side / 2.0, height - 14, "answers per bin (grey); blue: accuracy, red: gap to confidence");
    cairo_save(cr);
    cairo_move_to(cr, 16, top + side / 2.0 + 25);
    cairo_rotate(cr, -M_PI / 2);
    cairo_show_text(cr, "accuracy");
    cairo_restore(cr);
    cairo_destroy(cr);
    return write_png(surf, png_path, err);
}
