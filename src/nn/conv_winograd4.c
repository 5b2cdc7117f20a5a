/* Winograd F(4x4, 3x3) for the 3x3 "same" convolutions of inference: the forward only.
 *
 * The same algorithm as conv_winograd.c's F(2x2, 3x3) (Lavin and Gray, CVPR 2016) on larger
 * tiles: each 4x4 block of outputs of one output channel is
 *   Y[4][4] = A^T [ sum_c U_c (.) V_c ] A,   U_c = G g_c G^T (6x6),  V_c = B^T d_c B (6x6)
 * with d_c the 6x6 input patch under the tile, and the interpolation points 0, 1, -1, 2, -2 and
 * infinity:
 *         | 4  0 -5  0  1  0 |        |  1/4    0     0  |         | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6 |         | 0  1 -1  2 -2  0 |
 *   B^T = | 0  4 -4 -1  1  0 |    G = | -1/6   1/6  -1/6 |   A^T = | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |        |  1/24  1/12  1/6 |         | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |        |  1/24 -1/12  1/6 |
 *         | 0  4  0 -5  0  1 |        |   0     0     1  |
 * A layer is 36 sgemms of K = in_c, 36 multiply-adds per tile and channel pair for 16 outputs:
 * 2.25 per output where F(2x2, 3x3) needs 4 and im2col 9.
 *
 * Why inference only: the larger constants round a little more (about 5e-6 relative against
 * 7e-7 for F(2x2, 3x3) on a 128-channel sum), which a classification does not notice but a
 * gradient check against PyTorch would; training keeps F(2x2, 3x3), whose backward is built on
 * the same tiles.  Why not every layer: a layer with fewer than NN_WINOGRAD4_MIN_TILES tiles per
 * image hands OpenBLAS products too narrow to run at speed (an 8x8 plane has 4 tiles: its 36
 * products took longer than F(2x2, 3x3)'s 16 on 16 columns; docs/performance.md, session 28).
 *
 * Shapes, with M = out_c, C = in_c and a block of P tiles (whole tile rows of one image, so a
 * sample's outputs are the same bits whatever else is in the batch):
 *   U[36][M][C]   the transformed weights (made in the call, or kept by avemo_net_prepare)
 *   V[36][C][P]   the transformed input patches of the block
 *   X[36][M][P]   = U[xi] . V[xi] for each xi
 *   out           = A^T X A per tile and channel, then scale, shift and ReLU
 * tests/nn/test_nn_winograd.c checks it against direct sums on every layer of the pipelines
 * that it takes and on odd shapes. */
#include "nn/nn_internal.h"

#include <assert.h>
#include <cblas.h>
#include <stddef.h>
#include <string.h>

#define W4_POINTS NN_WINOGRAD4_POINTS
/* Scratch floats of one block (V and X), as conv_winograd.c's: within the core's L2. */
#define W4_BLOCK_FLOATS (256 * 1024)

static int w4_tiles(int n) { return (n + 3) / 4; }

int nn_winograd4_fits(const struct nn_layer *l)
{
    return nn_winograd_fits(l) && w4_tiles(l->out_h) * w4_tiles(l->out_w) >= NN_WINOGRAD4_MIN_TILES;
}

size_t nn_winograd4_weights_size(const struct nn_layer *l) { return (size_t)W4_POINTS * l->out_c * l->in_c; }

/* Tile rows per block: as many as keep V and X within W4_BLOCK_FLOATS, then spread evenly over
 * the blocks an image needs (two blocks of 4 rows rather than 7 and 1). */
static int w4_block_rows(const struct nn_layer *l)
{
    const int th = w4_tiles(l->out_h);
    const size_t per_row = (size_t)W4_POINTS * (size_t)(l->in_c + l->out_c) * (size_t)w4_tiles(l->out_w);
    size_t fit = W4_BLOCK_FLOATS / per_row;
    int rows = fit < 1 ? 1 : fit > (size_t)th ? th : (int)fit;
    int blocks = (th + rows - 1) / rows;
    return (th + blocks - 1) / blocks;
}

/* V, X, then the row buffers: the input side's 36 tw, the output side's 28 tw. */
static size_t w4_block_floats(const struct nn_layer *l)
{
    const size_t tw = (size_t)w4_tiles(l->out_w);
    const size_t P = (size_t)w4_block_rows(l) * tw;
    const size_t v = nn_winograd_point_step((size_t)l->in_c * P), x = nn_winograd_point_step((size_t)l->out_c * P);
    return (size_t)W4_POINTS * (v + x) + 36 * tw;
}

size_t nn_winograd4_scratch(const struct nn_layer *l) { return nn_winograd4_weights_size(l) + w4_block_floats(l); }

/* G on three values (a kernel column, or a row of G g), of four kernels at once. */
static void w4_g(nn_vec4 g0, nn_vec4 g1, nn_vec4 g2, nn_vec4 *u)
{
    u[0] = g0 / 4.0f;
    u[1] = -(g0 + g1 + g2) / 6.0f;
    u[2] = -(g0 - g1 + g2) / 6.0f;
    u[3] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
    u[4] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
    u[5] = g2;
}

void nn_winograd4_transform_weights(const struct nn_layer *l, const float *w, float *U, float *tmp)
{
    nn_winograd_kernels(l, w, 6, w4_g, U, tmp);
}

struct w4_task {
    const struct nn_layer *l;
    const float *in, *U, *scale, *shift;
    float *out;
    int relu, tiles_h, tiles_w;
    int rows, blocks_per_image;
    const struct nn_work *work;
};

/* The two 1-D transforms over n tiles at once, on six rows x[0..5]: B^T into o[0..5], or A^T
 * into o[0..3].  Four tiles at a time in GCC's vector type (-O2 does not vectorise the plain
 * loop), the rest one by one: the same operations in the same order either way. */
static inline nn_vec4 w4_load(const float *p)
{
    nn_vec4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void w4_store(float *p, nn_vec4 v) { memcpy(p, &v, sizeof v); }
static inline float w4_load1(const float *p) { return *p; }
static inline void w4_store1(float *p, float v) { *p = v; }

/* B^T on x0..x5 into o[0..5] + k. */
#define W4_BT_OUT(ST)                                                                                            \
    do {                                                                                                         \
        ST(o[0] + k, 4.0f * x0 - 5.0f * x2 + x4);                                                                \
        ST(o[1] + k, x3 + x4 - 4.0f * (x1 + x2));                                                                \
        ST(o[2] + k, 4.0f * (x1 - x2) - x3 + x4);                                                                \
        ST(o[3] + k, 2.0f * (x3 - x1) - x2 + x4);                                                                \
        ST(o[4] + k, 2.0f * (x1 - x3) - x2 + x4);                                                                \
        ST(o[5] + k, 4.0f * x1 - 5.0f * x3 + x5);                                                                \
    } while (0)
#define W4_BT(T, LD, ST)                                                                                         \
    do {                                                                                                         \
        T x0 = LD(x[0] + k), x1 = LD(x[1] + k), x2 = LD(x[2] + k), x3 = LD(x[3] + k), x4 = LD(x[4] + k),        \
          x5 = LD(x[5] + k);                                                                                     \
        W4_BT_OUT(ST);                                                                                           \
    } while (0)
#define W4_AT(T, LD, ST)                                                                                         \
    do {                                                                                                         \
        T x0 = LD(x[0] + k), x1 = LD(x[1] + k), x2 = LD(x[2] + k), x3 = LD(x[3] + k), x4 = LD(x[4] + k),        \
          x5 = LD(x[5] + k);                                                                                     \
        T s12 = x1 + x2, d12 = x1 - x2, s34 = x3 + x4, d34 = x3 - x4;                                            \
        ST(o[0] + k, x0 + s12 + s34);                                                                            \
        ST(o[1] + k, d12 + 2.0f * d34);                                                                          \
        ST(o[2] + k, s12 + 4.0f * s34);                                                                          \
        ST(o[3] + k, d12 + 8.0f * d34 + x5);                                                                     \
    } while (0)

static inline void w4_bt(const float *const x[6], float *const o[6], int n)
{
    int k = 0;
    for (; k + 4 <= n; k += 4) W4_BT(nn_vec4, w4_load, w4_store);
    for (; k < n; k++) W4_BT(float, w4_load1, w4_store1);
}

static inline void w4_at(const float *const x[6], float *const o[4], int n)
{
    int k = 0;
    for (; k + 4 <= n; k += 4) W4_AT(nn_vec4, w4_load, w4_store);
    for (; k < n; k++) W4_AT(float, w4_load1, w4_store1);
}

/* The row transform d B of input row y for every tile of a tile row: e[u][tj], u = 0..5, from
 * the tile's six columns x[4tj-1 .. 4tj+4] (zero outside the row).  Four tiles at a time: their
 * 16 values x[4tj-1 ..] turned by a 4x4 transpose are the columns 0..3 (one vector each), and
 * columns 4 and 5 are columns 0 and 1 one tile on, taken from the next four tiles' transpose.
 * Everything stays in registers: a column read back from memory at another offset than it was
 * written would wait for the stores. */
static void w4_row_transform(const float *plane, int H, int W, int y, int tw, float *e)
{
    if (y < 0 || y >= H) {
        memset(e, 0, sizeof(float) * 6 * (size_t)tw);
        return;
    }
    const float *x = plane + (size_t)y * W;
    float *const o[6] = {e, e + tw, e + 2 * tw, e + 3 * tw, e + 4 * tw, e + 5 * tw};
    int k = 0;
#if defined(__SSE2__)
    if (tw >= 4) {
        __m128 c0 = nn_load4_padded(x, -1, W), c1 = nn_load4_padded(x, 3, W), c2 = nn_load4_padded(x, 7, W),
               c3 = nn_load4_padded(x, 11, W);
        _MM_TRANSPOSE4_PS(c0, c1, c2, c3);
        for (; k + 4 <= tw; k += 4) {
            const int i = 4 * (k + 4) - 1; /* the next four tiles */
            __m128 n0 = nn_load4_padded(x, i, W), n1 = nn_load4_padded(x, i + 4, W), n2 = nn_load4_padded(x, i + 8, W),
                   n3 = nn_load4_padded(x, i + 12, W);
            _MM_TRANSPOSE4_PS(n0, n1, n2, n3);
            __m128 c4 = nn_next_tile(c0, n0), c5 = nn_next_tile(c1, n1); /* columns 0 and 1 one tile on */
            nn_vec4 x0 = (nn_vec4)c0, x1 = (nn_vec4)c1, x2 = (nn_vec4)c2, x3 = (nn_vec4)c3, x4 = (nn_vec4)c4,
                   x5 = (nn_vec4)c5;
            W4_BT_OUT(w4_store);
            c0 = n0;
            c1 = n1;
            c2 = n2;
            c3 = n3;
        }
    }
#endif
    for (; k < tw; k++) { /* the last tiles one by one, straight from the row */
        float v[6];
        for (int j = 0; j < 6; j++) {
            int ix = 4 * k - 1 + j;
            v[j] = ix >= 0 && ix < W ? x[ix] : 0.0f;
        }
        float x0 = v[0], x1 = v[1], x2 = v[2], x3 = v[3], x4 = v[4], x5 = v[5];
        W4_BT_OUT(w4_store1);
    }
}

/* V[xi][c][q] = (B^T d B)[xi] for the block's tiles (tile rows r0 .. r0 + nrows - 1 of the
 * batch, q = the tile's index in the block).  Consecutive tile rows share two input rows. */
static void w4_transform_input(const struct w4_task *t, size_t r0, int nrows, float *V, float *rowbuf)
{
    const struct nn_layer *l = t->l;
    const int C = l->in_c, H = l->in_h, W = l->in_w, tw = t->tiles_w;
    /* step: from one point xi to the next */
    const size_t P = (size_t)t->rows * tw, step = nn_winograd_point_step((size_t)C * P);
    const size_t slab = 6 * (size_t)tw;                          /* one input row's transform */
    float *e = rowbuf;
    for (int c = 0; c < C; c++) {
        for (int r = 0; r < nrows; r++) {
            size_t row = r0 + (size_t)r, b = row / (size_t)t->tiles_h;
            int ti = (int)(row % (size_t)t->tiles_h), a = 0;
            const float *plane = t->in + (b * (size_t)C + (size_t)c) * (size_t)H * W;
            if (r > 0) { /* rows 4ti-1 and 4ti were the previous tile row's last two */
                memcpy(e, e + 4 * slab, sizeof(float) * 2 * slab);
                a = 2;
            }
            for (; a < 6; a++) w4_row_transform(plane, H, W, 4 * ti - 1 + a, tw, e + (size_t)a * slab);
            float *v = V + (size_t)c * P + (size_t)r * tw;
            for (int u = 0; u < 6; u++) { /* B^T (d B), column u of every tile: points (i, u) */
                const float *const x[6] = {e + (size_t)u * tw,        e + slab + (size_t)u * tw,
                                           e + 2 * slab + (size_t)u * tw, e + 3 * slab + (size_t)u * tw,
                                           e + 4 * slab + (size_t)u * tw, e + 5 * slab + (size_t)u * tw};
                float *const o[6] = {v + (size_t)u * step,        v + (size_t)(6 + u) * step,
                                     v + (size_t)(12 + u) * step, v + (size_t)(18 + u) * step,
                                     v + (size_t)(24 + u) * step, v + (size_t)(30 + u) * step};
                w4_bt(x, o, tw);
            }
        }
    }
}

/* One output row from the four outputs of each tile (y[j][tj] is column 4tj + j), after the
 * epilogue y * s + t and the ReLU; columns past W are not written.  Four whole tiles at a time
 * are 16 consecutive outputs: the epilogue on y, then a 4x4 transpose. */
static void w4_store_row(float *const y[4], float *out, int tw, int W, float s, float t, int relu)
{
    int k = 0;
#if defined(__SSE2__)
    const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), zero = _mm_setzero_ps();
    for (; k + 4 <= tw && 4 * (k + 4) <= W; k += 4) {
        __m128 v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(y[j] + k), vs), vt);
            if (relu) v[j] = _mm_max_ps(v[j], zero);
        }
        _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);
        for (int j = 0; j < 4; j++) _mm_storeu_ps(out + 4 * k + 4 * j, v[j]);
    }
#endif
    for (; k < tw; k++)
        for (int j = 0; j < 4 && 4 * k + j < W; j++) {
            float v = y[j][k] * s + t;
            out[4 * k + j] = relu ? nn_relu_value(v) : v;
        }
}

/* out = A^T X A per tile and output channel, then the epilogue; rows past H are not written.
 * rowbuf holds 28 tw floats: r[i][u] (row i of A^T X, 24 tw), then y[j] (4 tw). */
static void w4_transform_output(const struct w4_task *t, size_t r0, int nrows, const float *X, float *rowbuf)
{
    const struct nn_layer *l = t->l;
    const int M = l->out_c, H = l->out_h, W = l->out_w, tw = t->tiles_w;
    const size_t P = (size_t)t->rows * tw, step = nn_winograd_point_step((size_t)M * P);
    float *r = rowbuf, *yb = rowbuf + 24 * (size_t)tw;
    float *const y[4] = {yb, yb + tw, yb + 2 * (size_t)tw, yb + 3 * (size_t)tw};
    for (int m = 0; m < M; m++) {
        const float s = t->scale ? t->scale[m] : 1.0f, sh = t->shift ? t->shift[m] : 0.0f;
        for (int row = 0; row < nrows; row++) {
            size_t tr = r0 + (size_t)row, b = tr / (size_t)t->tiles_h;
            int oy = 4 * (int)(tr % (size_t)t->tiles_h);
            const float *x = X + (size_t)m * P + (size_t)row * tw;
            for (int u = 0; u < 6; u++) { /* A^T X, column u: points (0..5, u) */
                const float *const xs[6] = {x + (size_t)u * step,        x + (size_t)(6 + u) * step,
                                            x + (size_t)(12 + u) * step, x + (size_t)(18 + u) * step,
                                            x + (size_t)(24 + u) * step, x + (size_t)(30 + u) * step};
                float *const o[4] = {r + (size_t)u * tw, r + (size_t)(6 + u) * tw, r + (size_t)(12 + u) * tw,
                                     r + (size_t)(18 + u) * tw};
                w4_at(xs, o, tw);
            }
            for (int i = 0; i < 4 && oy + i < H; i++) { /* (A^T X) A, row i */
                const float *ri = r + (size_t)i * 6 * tw;
                const float *const xs[6] = {ri, ri + tw, ri + 2 * (size_t)tw, ri + 3 * (size_t)tw, ri + 4 * (size_t)tw,
                                            ri + 5 * (size_t)tw};
                w4_at(xs, y, tw);
                float *o = t->out + ((b * (size_t)M + (size_t)m) * (size_t)H + (size_t)(oy + i)) * W;
                w4_store_row(y, o, tw, W, s, sh, t->relu);
            }
        }
    }
}

/* Block blk: image blk / blocks_per_image, its tile rows from (blk % blocks_per_image) * rows. */
static void w4_run_block(void *arg, size_t blk, int worker)
{
    const struct w4_task *t = arg;
    const struct nn_layer *l = t->l;
    const int M = l->out_c, C = l->in_c;
    const size_t P = (size_t)t->rows * t->tiles_w;
    const size_t v_step = nn_winograd_point_step((size_t)C * P), x_step = nn_winograd_point_step((size_t)M * P);
    float *V = t->work->col[worker] + nn_winograd4_weights_size(l), *X = V + W4_POINTS * v_step,
          *rowbuf = X + W4_POINTS * x_step;
    size_t b = blk / (size_t)t->blocks_per_image;
    int first = (int)(blk % (size_t)t->blocks_per_image) * t->rows;
    int nrows = t->tiles_h - first < t->rows ? t->tiles_h - first : t->rows;
    size_t r0 = b * (size_t)t->tiles_h + (size_t)first;
    int n = nrows * t->tiles_w;
    w4_transform_input(t, r0, nrows, V, rowbuf);
    for (int xi = 0; xi < W4_POINTS; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, n, C, 1.0f, t->U + (size_t)xi * M * C, C,
                    V + (size_t)xi * v_step, (int)P, 0.0f, X + (size_t)xi * x_step, (int)P);
    w4_transform_output(t, r0, nrows, X, rowbuf);
}

void nn_conv_forward_winograd4(const struct nn_layer *l, const float *w, const float *U_ready, const float *in,
                               float *out, int B, const struct nn_work *work, const float *scale, const float *shift,
                               int relu)
{
    assert(nn_winograd4_fits(l) && nn_winograd4_scratch(l) <= work->col_size);
    const float *U = U_ready;
    if (!U) { /* in the first part of worker 0's scratch; the blocks use what follows */
        nn_winograd4_transform_weights(l, w, work->col[0], work->col[0] + nn_winograd4_weights_size(l));
        U = work->col[0];
    }
    struct w4_task t = {.l = l, .in = in, .U = U, .scale = scale, .shift = shift, .out = out, .relu = relu,
                        .tiles_h = w4_tiles(l->out_h), .tiles_w = w4_tiles(l->out_w), .rows = w4_block_rows(l),
                        .work = work};
    t.blocks_per_image = (t.tiles_h + t.rows - 1) / t.rows;
    nn_pool_for(work->pool, (size_t)B * (size_t)t.blocks_per_image, w4_run_block, &t);
}
