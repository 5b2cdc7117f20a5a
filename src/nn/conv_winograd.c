/* Winograd F(2x2, 3x3) for the 3x3 "same" convolutions: the forward, the input gradient and
 * the weight gradient.
 *
 * Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): each 2x2
 * block of outputs (a tile) of one output channel is
 *   Y[2][2] = A^T [ sum_c U_c (.) V_c ] A,   U_c = G g_c G^T (4x4),  V_c = B^T d_c B (4x4)
 * where g_c is the 3x3 kernel of input channel c, d_c the 4x4 input patch under the tile and
 * (.) the element-wise product.  For each of the 16 points xi of the 4x4 domain the sum over c
 * is a matrix product, so a layer is 16 sgemms of K = in_c instead of one of K = 9 in_c over
 * four times the columns: 16 multiply-adds per tile and channel pair instead of 36 (2.25x fewer).
 *
 * Shapes, with M = out_c, C = in_c and a block of P tiles (whole tile rows of one image):
 *   U[16][M][C]   the transformed weights (once per call, shared by the workers; an inference
 *                 network keeps them from avemo_net_prepare instead: net.c)
 *   V[16][C][P]   the transformed input patches of the block
 *   X[16][M][P]   = U[xi] . V[xi] for each xi
 *   out           = A^T X A per tile and channel, then scale, shift and ReLU (conv_epilogue's)
 * The input gradient is the same forward on dout with the kernels turned (layer_conv.c); the
 * weight gradient is F(3x3, 2x2) on the same tiles (below).
 *
 * The rounding differs from the im2col product's (sums taken in another order, the 0.5 factors
 * of G) by about 1e-6 relative on the networks here.  tests/nn/test_nn_winograd.c checks the
 * three against direct sums on every 3x3 layer of the pipelines and on odd shapes, and
 * nn_parity_torch the gradients of the shipped networks against PyTorch's. */
#include "nn/nn_internal.h"

#include <assert.h>
#include <cblas.h>
#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define WG_POINTS NN_WINOGRAD_POINTS
/* Scratch floats of one block (V and X): about 1 MB, so that a block's transformed input and
 * products stay in the core's L2 between the transforms and the 16 products. */
#define WG_BLOCK_FLOATS (256 * 1024)
#define WG_MAX_ROWS 64

int nn_winograd_fits(const struct nn_layer *l)
{
    return l->op == NN_CONV && l->k == 3 && l->stride == 1 && l->pad_t == 1 && l->pad_l == 1 &&
           l->out_h == l->in_h && l->out_w == l->in_w && l->in_c >= NN_WINOGRAD_MIN_IN_C;
}

size_t nn_winograd_weights_size(const struct nn_layer *l) { return (size_t)WG_POINTS * l->out_c * l->in_c; }
static size_t wg_block_floats(const struct nn_layer *l, int rows);

/* Tile rows per block: as many as keep V and X within WG_BLOCK_FLOATS, at least one. */
static int wg_block_rows(const struct nn_layer *l)
{
    const size_t tw = (size_t)(l->out_w + 1) / 2, per_row = (size_t)WG_POINTS * (size_t)(l->in_c + l->out_c) * tw;
    size_t rows = WG_BLOCK_FLOATS / per_row;
    return rows < 1 ? 1 : rows > WG_MAX_ROWS ? WG_MAX_ROWS : (int)rows;
}

/* The first part of a worker's scratch: U (the forward's, made in the call) or Z (the weight
 * gradient's, one point's matrix skewed from the next). */
static size_t wg_weights_region(const struct nn_layer *l)
{
    return (size_t)WG_POINTS * nn_winograd_point_step((size_t)l->out_c * l->in_c);
}

size_t nn_winograd_scratch(const struct nn_layer *l)
{
    return wg_weights_region(l) + wg_block_floats(l, wg_block_rows(l));
}

/* G on three values (a kernel column, or a row of G g), of four kernels at once: (g0,
 * (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2). */
static void wg_g(nn_vec4 g0, nn_vec4 g1, nn_vec4 g2, nn_vec4 *u)
{
    u[0] = g0;
    u[1] = 0.5f * (g0 + g1 + g2);
    u[2] = 0.5f * (g0 - g1 + g2);
    u[3] = g2;
}

void nn_winograd_transform_weights(const struct nn_layer *l, const float *w, float *U, float *tmp)
{
    nn_winograd_kernels(l, w, 4, wg_g, U, tmp);
}

struct wg_task {
    const struct nn_layer *l;
    const float *in, *U, *scale, *shift;
    float *out;
    int relu, tiles_h, tiles_w;
    int rows, blocks_per_image; /* a block: up to `rows` whole tile rows of one image */
    const struct nn_work *work;
};

/* The two 1-D transforms, each over n tiles at once (four at a time with SSE: -O2 does not
 * vectorise).  B^T on four rows x0..x3: (x0 - x2, x1 + x2, x2 - x1, x1 - x3). */
static void wg_bt(const float *x0, const float *x1, const float *x2, const float *x3, float *o0, float *o1, float *o2,
                  float *o3, int n)
{
    int k = 0;
#if defined(__SSE2__)
    for (; k + 4 <= n; k += 4) {
        __m128 a = _mm_loadu_ps(x0 + k), b = _mm_loadu_ps(x1 + k), c = _mm_loadu_ps(x2 + k), d = _mm_loadu_ps(x3 + k);
        _mm_storeu_ps(o0 + k, _mm_sub_ps(a, c));
        _mm_storeu_ps(o1 + k, _mm_add_ps(b, c));
        _mm_storeu_ps(o2 + k, _mm_sub_ps(c, b));
        _mm_storeu_ps(o3 + k, _mm_sub_ps(b, d));
    }
#endif
    for (; k < n; k++) {
        float a = x0[k], b = x1[k], c = x2[k], d = x3[k];
        o0[k] = a - c;
        o1[k] = b + c;
        o2[k] = c - b;
        o3[k] = b - d;
    }
}

/* A^T on four rows x0..x3: (x0 + x1 + x2, x1 - x2 - x3). */
static void wg_at(const float *x0, const float *x1, const float *x2, const float *x3, float *o0, float *o1, int n)
{
    int k = 0;
#if defined(__SSE2__)
    for (; k + 4 <= n; k += 4) {
        __m128 a = _mm_loadu_ps(x0 + k), b = _mm_loadu_ps(x1 + k), c = _mm_loadu_ps(x2 + k), d = _mm_loadu_ps(x3 + k);
        _mm_storeu_ps(o0 + k, _mm_add_ps(_mm_add_ps(a, b), c));
        _mm_storeu_ps(o1 + k, _mm_sub_ps(_mm_sub_ps(b, c), d));
    }
#endif
    for (; k < n; k++) {
        o0[k] = x0[k] + x1[k] + x2[k];
        o1[k] = x1[k] - x2[k] - x3[k];
    }
}

/* An output row from the two outputs of each tile (even and odd columns): out[2k] = ev[k],
 * out[2k + 1] = od[k] (when inside W), after the epilogue y * s + t and the ReLU. */
static void wg_store_row(const float *ev, const float *od, float *out, int tw, int W, float s, float t, int relu)
{
    int k = 0;
#if defined(__SSE2__)
    const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), zero = _mm_setzero_ps();
    for (; k + 4 <= tw && 2 * (k + 4) <= W; k += 4) {
        __m128 a = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(ev + k), vs), vt);
        __m128 b = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(od + k), vs), vt);
        if (relu) {
            a = _mm_max_ps(a, zero);
            b = _mm_max_ps(b, zero);
        }
        _mm_storeu_ps(out + 2 * k, _mm_unpacklo_ps(a, b));
        _mm_storeu_ps(out + 2 * k + 4, _mm_unpackhi_ps(a, b));
    }
#endif
    for (; k < tw; k++) {
        float a = ev[k] * s + t, b = od[k] * s + t;
        out[2 * k] = relu ? nn_relu_value(a) : a;
        if (2 * k + 1 < W) out[2 * k + 1] = relu ? nn_relu_value(b) : b;
    }
}

#if defined(__SSE2__)
/* Four tiles' pairs from x[i .. i+7] (zero outside the row): ev = x[i], x[i+2], x[i+4], x[i+6]
 * and od = the values after them. */
static inline void wg_split_pairs(const float *x, int i, int W, __m128 *ev, __m128 *od)
{
    const __m128 a = nn_load4_padded(x, i, W), b = nn_load4_padded(x, i + 4, W);
    *ev = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    *od = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}
#endif

/* The row transform d B of one input row y for every tile of a tile row: e[j][tj] for the
 * tile's four columns 2tj-1 .. 2tj+2 (zero outside the row).  With ev[k] = x[2k-1] and
 * od[k] = x[2k] the four columns are ev[tj], od[tj], ev[tj+1], od[tj+1], and B^T gives
 * (ev - ev', od + ev', ev' - od, od - od') with ' one tile on.  Four tiles at a time in
 * registers, the tiles one on taken from the next four's pairs (a vector read back from
 * single floats just stored would wait for the stores). */
static void wg_row_transform(const float *plane, int H, int W, int y, int tw, float *e)
{
    if (y < 0 || y >= H) {
        memset(e, 0, sizeof(float) * 4 * (size_t)tw);
        return;
    }
    const float *x = plane + (size_t)y * W;
    int k = 0;
#if defined(__SSE2__)
    if (tw >= 4) {
        __m128 ev, od;
        wg_split_pairs(x, -1, W, &ev, &od);
        for (; k + 4 <= tw; k += 4) {
            __m128 ev_n, od_n;
            wg_split_pairs(x, 2 * (k + 4) - 1, W, &ev_n, &od_n);
            const __m128 ev1 = nn_next_tile(ev, ev_n), od1 = nn_next_tile(od, od_n);
            _mm_storeu_ps(e + k, _mm_sub_ps(ev, ev1));
            _mm_storeu_ps(e + tw + k, _mm_add_ps(od, ev1));
            _mm_storeu_ps(e + 2 * tw + k, _mm_sub_ps(ev1, od));
            _mm_storeu_ps(e + 3 * tw + k, _mm_sub_ps(od, od1));
            ev = ev_n;
            od = od_n;
        }
    }
#endif
    for (; k < tw; k++) {
        float v[4]; /* columns 2k-1 .. 2k+2 */
        for (int j = 0; j < 4; j++) v[j] = 2 * k - 1 + j >= 0 && 2 * k - 1 + j < W ? x[2 * k - 1 + j] : 0.0f;
        e[k] = v[0] - v[2];
        e[tw + k] = v[1] + v[2];
        e[2 * tw + k] = v[2] - v[1];
        e[3 * tw + k] = v[1] - v[3];
    }
}

/* V[xi][c][q] = (B^T d B)[xi] for the block's tiles (tile rows r0 .. r0 + nrows - 1 of the
 * batch, q = the tile's index in the block); rowbuf holds 16 tw floats. */
static void wg_transform_input(const struct wg_task *t, size_t r0, int nrows, float *V, float *rowbuf)
{
    const struct nn_layer *l = t->l;
    const int C = l->in_c, H = l->in_h, W = l->in_w, tw = t->tiles_w;
    /* step: from one point xi to the next */
    const size_t P = (size_t)t->rows * tw, step = nn_winograd_point_step((size_t)C * P);
    float *e = rowbuf;
    const size_t slab = 4 * (size_t)tw; /* one input row's transform */
    for (int c = 0; c < C; c++) {
        for (int r = 0; r < nrows; r++) {
            size_t row = r0 + (size_t)r, b = row / (size_t)t->tiles_h;
            int ti = (int)(row % (size_t)t->tiles_h), a = 0;
            const float *plane = t->in + (b * (size_t)C + (size_t)c) * (size_t)H * W;
            if (r > 0) { /* rows 2ti-1 and 2ti were the previous tile row's last two (one image per block) */
                memcpy(e, e + 2 * slab, sizeof(float) * 2 * slab);
                a = 2;
            }
            for (; a < 4; a++) wg_row_transform(plane, H, W, 2 * ti - 1 + a, tw, e + (size_t)a * slab);
            float *v = V + (size_t)c * P + (size_t)r * tw;
            for (int j = 0; j < 4; j++) { /* B^T (d B), column j of every tile */
                const float *a0 = e + (size_t)j * tw, *a1 = a0 + 4 * (size_t)tw, *a2 = a1 + 4 * (size_t)tw,
                            *a3 = a2 + 4 * (size_t)tw;
                float *v0 = v + (size_t)j * step;
                wg_bt(a0, a1, a2, a3, v0, v0 + 4 * step, v0 + 8 * step, v0 + 12 * step, tw);
            }
        }
    }
}

/* out = A^T X A per tile and output channel, then the epilogue (scale, shift, ReLU); the row
 * and column past an odd edge are not written.  rowbuf holds 10 * tw floats. */
static void wg_transform_output(const struct wg_task *t, size_t r0, int nrows, const float *X, float *rowbuf)
{
    const struct nn_layer *l = t->l;
    const int M = l->out_c, H = l->out_h, W = l->out_w, tw = t->tiles_w;
    const size_t P = (size_t)t->rows * tw, step = nn_winograd_point_step((size_t)M * P);
    float *r = rowbuf, *ev = rowbuf + 8 * (size_t)tw, *od = ev + tw; /* r[i * 4 + j]: row i, column j of A^T X */
    for (int m = 0; m < M; m++) {
        const float s = t->scale ? t->scale[m] : 1.0f, sh = t->shift ? t->shift[m] : 0.0f;
        for (int row = 0; row < nrows; row++) {
            size_t tr = r0 + (size_t)row, b = tr / (size_t)t->tiles_h;
            int oy = 2 * (int)(tr % (size_t)t->tiles_h);
            const float *x = X + (size_t)m * P + (size_t)row * tw;
            for (int j = 0; j < 4; j++) {
                const float *x0 = x + (size_t)j * step;
                wg_at(x0, x0 + 4 * step, x0 + 8 * step, x0 + 12 * step, r + (size_t)j * tw, r + (size_t)(4 + j) * tw, tw);
            }
            for (int i = 0; i < 2 && oy + i < H; i++) {
                const float *ri = r + (size_t)i * 4 * tw;
                wg_at(ri, ri + tw, ri + 2 * (size_t)tw, ri + 3 * (size_t)tw, ev, od, tw);
                float *o = t->out + ((b * (size_t)M + (size_t)m) * (size_t)H + (size_t)(oy + i)) * W;
                wg_store_row(ev, od, o, tw, W, s, sh, t->relu);
            }
        }
    }
}

/* Scratch of one worker after the transformed weights: V, X, then the row buffers. */
static size_t wg_block_floats(const struct nn_layer *l, int rows)
{
    const size_t tw = (size_t)(l->out_w + 1) / 2, P = (size_t)rows * tw;
    const size_t v = nn_winograd_point_step((size_t)l->in_c * P), x = nn_winograd_point_step((size_t)l->out_c * P);
    return (size_t)WG_POINTS * (v + x) + 18 * tw + 2;
}

/* ---- the weight gradient: F(3x3, 2x2), the same tiles seen from the kernel's side ----
 *
 * dW[m][c][ki][kj] = sum over outputs (oy, ox) of dout[m][oy][ox] in[c][oy - 1 + ki][ox - 1 + kj].
 * Over one 2x2 tile of dout (Dy) this is a 3x3 correlation of the tile's 4x4 input patch d with
 * Dy, and by the transposition principle the forward's matrices compute it:
 *   dW_tile = G^T [ (A Dy A^T) (.) (B^T d B) ] G
 * Summed over tiles and samples before G^T . G, the sum is 16 sgemms whose K is the number of
 * tiles: Z[xi][m][c] = sum_p Y[xi][m][p] V[xi][c][p], with V the forward's input transform and
 * Y = A Dy A^T; 16 multiply-adds per tile and channel pair where im2col needs 36. */

/* A on two rows x0, x1 (a tile's two values): (x0, x0 + x1, x0 - x1, -x1). */
static void wg_a(const float *x0, const float *x1, float *o0, float *o1, float *o2, float *o3, int n)
{
    int k = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; k + 4 <= n; k += 4) {
        __m128 a = _mm_loadu_ps(x0 + k), b = _mm_loadu_ps(x1 + k);
        _mm_storeu_ps(o0 + k, a);
        _mm_storeu_ps(o1 + k, _mm_add_ps(a, b));
        _mm_storeu_ps(o2 + k, _mm_sub_ps(a, b));
        _mm_storeu_ps(o3 + k, _mm_sub_ps(zero, b));
    }
#endif
    for (; k < n; k++) {
        float a = x0[k], b = x1[k];
        o0[k] = a;
        o1[k] = a + b;
        o2[k] = a - b;
        o3[k] = -b;
    }
}

/* One dout row's transform for every tile: s[j][tx] of the row's pairs (a, b) = (2tx, 2tx + 1)
 * (b zero past the edge), A giving (a, a + b, a - b, -b); zero for a row past the bottom.  Four
 * tiles at a time split into pairs in registers (as wg_row_transform).  s: 4 * tw floats. */
static void wg_dout_row(const float *plane, int H, int W, int y, int tw, float *s)
{
    if (y >= H) {
        memset(s, 0, sizeof(float) * 4 * (size_t)tw);
        return;
    }
    const float *x = plane + (size_t)y * W;
    int k = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; k + 4 <= tw; k += 4) {
        __m128 a, b;
        wg_split_pairs(x, 2 * k, W, &a, &b);
        _mm_storeu_ps(s + k, a);
        _mm_storeu_ps(s + tw + k, _mm_add_ps(a, b));
        _mm_storeu_ps(s + 2 * tw + k, _mm_sub_ps(a, b));
        _mm_storeu_ps(s + 3 * tw + k, _mm_sub_ps(zero, b));
    }
#endif
    for (; k < tw; k++) {
        float a = x[2 * k], b = 2 * k + 1 < W ? x[2 * k + 1] : 0.0f;
        s[k] = a;
        s[tw + k] = a + b;
        s[2 * tw + k] = a - b;
        s[3 * tw + k] = -b;
    }
}

/* Y[xi][m][q] = (A Dy A^T)[xi] for the block's tiles of dout (layout of V); rowbuf: 8 tw floats. */
static void wg_transform_dout(const struct wg_task *t, const float *dout, size_t r0, int nrows, float *Y,
                              float *rowbuf)
{
    const struct nn_layer *l = t->l;
    const int M = l->out_c, H = l->out_h, W = l->out_w, tw = t->tiles_w;
    const size_t P = (size_t)t->rows * tw, step = nn_winograd_point_step((size_t)M * P);
    float *s0 = rowbuf, *s1 = rowbuf + 4 * (size_t)tw;
    for (int m = 0; m < M; m++) {
        for (int r = 0; r < nrows; r++) {
            size_t row = r0 + (size_t)r, b = row / (size_t)t->tiles_h;
            int oy = 2 * (int)(row % (size_t)t->tiles_h);
            const float *plane = dout + (b * (size_t)M + (size_t)m) * (size_t)H * W;
            wg_dout_row(plane, H, W, oy, tw, s0);
            wg_dout_row(plane, H, W, oy + 1, tw, s1);
            float *y = Y + (size_t)m * P + (size_t)r * tw;
            for (int j = 0; j < 4; j++) { /* A along the column: rows i = 0..3 of A Dy A^T */
                float *y0 = y + (size_t)j * step;
                wg_a(s0 + (size_t)j * tw, s1 + (size_t)j * tw, y0, y0 + 4 * step, y0 + 8 * step, y0 + 12 * step, tw);
            }
        }
    }
}

/* G^T on four values: (z0 + (z1 + z2) / 2, (z1 - z2) / 2, (z1 + z2) / 2 + z3). */
static void wg_gt(const float z[4], float o[3])
{
    o[0] = z[0] + 0.5f * (z[1] + z[2]);
    o[1] = 0.5f * (z[1] - z[2]);
    o[2] = 0.5f * (z[1] + z[2]) + z[3];
}

/* dw[m][c][3][3] += G^T Z[m][c] G. */
static void wg_weight_grad_out(const struct nn_layer *l, const float *Z, float *dw)
{
    const int M = l->out_c, C = l->in_c;
    const size_t step = nn_winograd_point_step((size_t)M * C);
    for (size_t mc = 0; mc < (size_t)M * C; mc++) {
        float h[4][3], col[4], g[3];
        for (int i = 0; i < 4; i++) { /* along each row i: G^T over its four points */
            float z[4] = {Z[(size_t)(i * 4) * step + mc], Z[(size_t)(i * 4 + 1) * step + mc],
                          Z[(size_t)(i * 4 + 2) * step + mc], Z[(size_t)(i * 4 + 3) * step + mc]};
            wg_gt(z, h[i]);
        }
        float *d = dw + mc * 9;
        for (int kj = 0; kj < 3; kj++) { /* then down each column */
            for (int i = 0; i < 4; i++) col[i] = h[i][kj];
            wg_gt(col, g);
            for (int ki = 0; ki < 3; ki++) d[ki * 3 + kj] += g[ki];
        }
    }
}

void nn_conv_weight_grad_winograd(const struct nn_layer *l, const float *in, const float *dout, size_t lo, size_t hi,
                                  float *dw, float *scratch)
{
    const int M = l->out_c, C = l->in_c;
    struct wg_task t = {.l = l, .in = in, .tiles_h = (l->out_h + 1) / 2, .tiles_w = (l->out_w + 1) / 2,
                        .rows = wg_block_rows(l)};
    if (t.rows > t.tiles_h) t.rows = t.tiles_h;
    t.blocks_per_image = (t.tiles_h + t.rows - 1) / t.rows;
    const size_t P = (size_t)t.rows * t.tiles_w;
    const size_t z_step = nn_winograd_point_step((size_t)M * C), v_step = nn_winograd_point_step((size_t)C * P),
                 y_step = nn_winograd_point_step((size_t)M * P);
    float *Z = scratch, *V = Z + wg_weights_region(l), *Y = V + WG_POINTS * v_step, *rowbuf = Y + WG_POINTS * y_step;
    assert(wg_weights_region(l) + wg_block_floats(l, t.rows) <= nn_winograd_scratch(l));
    float beta = 0.0f; /* the first block sets Z, the others add to it */
    for (size_t n = lo; n < hi; n++) {
        for (int k = 0; k < t.blocks_per_image; k++) {
            int first = k * t.rows, nrows = t.tiles_h - first < t.rows ? t.tiles_h - first : t.rows;
            size_t r0 = n * (size_t)t.tiles_h + (size_t)first;
            wg_transform_input(&t, r0, nrows, V, rowbuf);
            wg_transform_dout(&t, dout, r0, nrows, Y, rowbuf);
            for (int xi = 0; xi < WG_POINTS; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, C, nrows * t.tiles_w, 1.0f,
                            Y + (size_t)xi * y_step, (int)P, V + (size_t)xi * v_step, (int)P, beta,
                            Z + (size_t)xi * z_step, C);
            beta = 1.0f;
        }
    }
    if (beta != 0.0f) wg_weight_grad_out(l, Z, dw);
}

/* Block blk: image blk / blocks_per_image, its tile rows from (blk % blocks_per_image) * rows.
 * Blocks never span two images, so a sample's outputs are the same bits whatever else is in
 * the batch (the products' columns are the same at the same places). */
static void wg_run_block(void *arg, size_t blk, int worker)
{
    const struct wg_task *t = arg;
    const struct nn_layer *l = t->l;
    const int M = l->out_c, C = l->in_c;
    const size_t P = (size_t)t->rows * t->tiles_w;
    const size_t v_step = nn_winograd_point_step((size_t)C * P), x_step = nn_winograd_point_step((size_t)M * P);
    float *V = t->work->col[worker] + wg_weights_region(l), *X = V + WG_POINTS * v_step,
          *rowbuf = X + WG_POINTS * x_step;
    size_t b = blk / (size_t)t->blocks_per_image;
    int first = (int)(blk % (size_t)t->blocks_per_image) * t->rows;
    int nrows = t->tiles_h - first < t->rows ? t->tiles_h - first : t->rows;
    size_t r0 = b * (size_t)t->tiles_h + (size_t)first;
    int n = nrows * t->tiles_w;
    wg_transform_input(t, r0, nrows, V, rowbuf);
    for (int xi = 0; xi < WG_POINTS; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, n, C, 1.0f, t->U + (size_t)xi * M * C, C,
                    V + (size_t)xi * v_step, (int)P, 0.0f, X + (size_t)xi * x_step, (int)P);
    wg_transform_output(t, r0, nrows, X, rowbuf);
}

void nn_conv_forward_winograd(const struct nn_layer *l, const float *w, const float *U_ready, const float *in,
                              float *out, int B, const struct nn_work *work, const float *scale, const float *shift,
                              int relu)
{
    assert(nn_winograd_fits(l) && nn_winograd_scratch(l) <= work->col_size);
    const float *U = U_ready;
    if (!U) { /* in the first part of worker 0's scratch; the blocks use what follows */
        nn_winograd_transform_weights(l, w, work->col[0], work->col[0] + nn_winograd_weights_size(l)); /* tmp: free now */
        U = work->col[0];
    }
    struct wg_task t = {.l = l, .in = in, .U = U, .scale = scale, .shift = shift, .out = out, .relu = relu,
                        .tiles_h = (l->out_h + 1) / 2, .tiles_w = (l->out_w + 1) / 2, .rows = wg_block_rows(l),
                        .work = work};
    if (t.rows > t.tiles_h) t.rows = t.tiles_h;
    t.blocks_per_image = (t.tiles_h + t.rows - 1) / t.rows;
    nn_pool_for(work->pool, (size_t)B * (size_t)t.blocks_per_image, wg_run_block, &t);
}
