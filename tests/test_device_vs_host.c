/* The OpenCL backend against the host reference (double accumulation) on
 * the same inputs: every cross-entropy option over the grid of shapes of
 * issue 3 with strided, offset layouts and every dtype; every primitive;
 * targets out of range in both check modes; NaN/inf rows; bit-exact
 * same-dtype copies. */
#include "ops_harness.h"


/* ---- the grid ---- */

static const size_t grid_cols[] = {1,   2,   3,    7,    8,     31,
                                   32,  33,  255,  256,  257,   1000,
                                   4097, 32000, 65537, 131075};
static const size_t grid_rows[] = {0, 1, 3, 64, 1000};
#define GRID_BUDGET 400000 /* elements per case: the host is double */

/* Option combination k of 72: reduction x {weights, smoothing, ignore,
 * z-loss, probabilities}, probabilities never with ignore. */
static void combo(size_t k, hx_case *c) {
    static int table[72][6];
    static int built;
    if (!built) {
        int n = 0;
        for (int red = 0; red < 3; ++red)
            for (int bits = 0; bits < 32; ++bits) {
                int probs = bits & 16, ign = bits & 4;
                if (probs && ign) continue;
                table[n][0] = red;
                table[n][1] = bits & 1;
                table[n][2] = (bits >> 1) & 1;
                table[n][3] = (bits >> 2) & 1;
                table[n][4] = (bits >> 3) & 1;
                table[n][5] = (bits >> 4) & 1;
                ++n;
            }
        assert_int_equal(n, 72);
        built = 1;
    }
    const int *t = table[k % 72];
    c->red = (clxent_reduction)t[0];
    c->weights = t[1];
    c->eps = t[2] ? 0.1f : 0.0f;
    c->ignore = t[3];
    c->zeta = t[4] ? 1e-3f : 0.0f;
    c->probs = t[5];
}

static void run_case(clxent_context *dev, const hx_case *c) {
    char name[256];
    hx_name(c, name, sizeof name);
    hx_data d = hx_make(c);
    /* forward + backward from the device's own lse: the backward reads
     * the f32 lse, whose rounding (half an ulp of |lse|) shows up in p */
    hx_routes_vs_host(dev, c, &d,
                      HX_ROUTE_BIT(HX_ROUTE_FUSED) |
                          HX_ROUTE_BIT(HX_ROUTE_FWD_BWD),
                      name);
    hx_free(&d);
}

static void test_grid(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    size_t cell = 0, runs = 0;
    int seen[72] = {0};
    for (size_t i = 0; i < sizeof grid_cols / sizeof *grid_cols; ++i)
        for (size_t j = 0; j < sizeof grid_rows / sizeof *grid_rows; ++j) {
            size_t C = grid_cols[i], R = grid_rows[j];
            if (R * C > GRID_BUDGET) continue;
            for (int rep = 0; rep < 2; ++rep, ++runs) {
                hx_case c;
                memset(&c, 0, sizeof c);
                c.R = R;
                c.C = C;
                size_t k = 2 * cell + (size_t)rep;
                combo(k, &c);
                seen[k % 72] = 1;
                c.dt = runs % 3 == 0   ? CLXENT_F32
                       : runs % 3 == 1 ? CLXENT_F16
                                       : CLXENT_BF16;
                c.idt = runs % 2 ? CLXENT_I64 : CLXENT_I32;
                /* runs % 4 == 2: int32 labels and an ignore_index past
                 * int32's range, which matches none (its would-be ignored
                 * labels wrap to C / 2, a class to count) */
                c.ii = runs % 4 == 1   ? (int64_t)(C / 2)
                       : runs % 4 == 2 ? ((int64_t)1 << 32) + (int64_t)(C / 2)
                                       : -100;
                c.grad_rows = runs % 2 == 0;
                c.G = runs % 5 == 0 ? 0.5f : 1.0f;
                c.D = (c.red == CLXENT_REDUCTION_MEAN && runs % 7 == 3)
                          ? 3.5f
                          : 0.0f;
                c.all_ignored_zero = runs % 3 == 2;
                c.check = runs % 4 == 3 ? CLXENT_CHECK_DEFERRED
                                        : CLXENT_CHECK_SYNC;
                c.seed = 1000 + runs;
                run_case(dev, &c);
            }
            ++cell;
        }
    for (int k = 0; k < 72; ++k)
        if (!seen[k]) fail_msg("option combination %d not covered", k);
}

/* ---- primitives ---- */

typedef struct prim_shape {
    size_t R, C;
} prim_shape;

static const prim_shape prim_shapes[] = {
    {1, 1}, {3, 7}, {64, 33}, {5, 1000}, {2, 4097}, {1, 65537}, {1000, 257},
    {100, 10}, {33, 32}};

static void test_primitives(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (size_t s = 0; s < sizeof prim_shapes / sizeof *prim_shapes; ++s) {
        hx_case c;
        memset(&c, 0, sizeof c);
        c.R = prim_shapes[s].R;
        c.C = prim_shapes[s].C;
        c.dt = (clxent_dtype)(CLXENT_F32 + s % 3);
        c.seed = 77 + s;
        clxent_dtype out_dt = (clxent_dtype)(CLXENT_F32 + (s + 1) % 3);
        char name[128];
        snprintf(name, sizeof name, "%zux%zu %s -> %s", c.R, c.C,
                 clxent_dtype_name(c.dt), clxent_dtype_name(out_dt));
        hx_data d = hx_make(&c);
        size_t R = c.R, C = c.C, ld = C + HX_X_PAD;
        float *res[2][6];
        /* row max of the host feeds both exp-sums */
        float *hmax = NULL;
        for (int b = 0; b < 2; ++b) {
            clxent_context *ctx = b ? dev : fx_host();
            clxent_matrix x = hx_mat(ctx, d.x, R, C, HX_X_OFF, ld, c.dt);
            clxent_vector vmax = hx_vec(ctx, NULL, NULL, R, 1, CLXENT_F32);
            fx_assert_status(ctx, clxent_row_max(ctx, &x, &vmax, NULL),
                             CLXENT_STATUS_OK);
            res[b][0] = hx_vec_read(ctx, &vmax);
            if (!hmax) hmax = res[0][0];
            clxent_vector vin = hx_vec(ctx, hmax, NULL, R, 2, CLXENT_F32);
            clxent_vector vsum = hx_vec(ctx, NULL, NULL, R, 3, CLXENT_F32);
            fx_assert_status(ctx,
                             clxent_row_expsum(ctx, &x, &vin, &vsum, NULL),
                             CLXENT_STATUS_OK);
            res[b][1] = hx_vec_read(ctx, &vsum);
            clxent_matrix y =
                hx_mat(ctx, NULL, R, C, HX_G_OFF, C + HX_G_PAD, out_dt);
            fx_assert_status(ctx, clxent_log_softmax(ctx, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            res[b][2] = hx_mat_read(ctx, &y);
            fx_assert_status(ctx, clxent_softmax(ctx, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            res[b][3] = hx_mat_read(ctx, &y);
            fx_assert_status(ctx, clxent_copy(ctx, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            res[b][4] = hx_mat_read(ctx, &y);
            /* NLL over the host's log-probabilities, mean, weighted */
            clxent_matrix lp =
                hx_mat(ctx, res[0][2], R, C, 2, C + 1, out_dt);
            clxent_vector yv = hx_vec(ctx, NULL, d.y, R, 1, CLXENT_I64);
            clxent_vector wv = hx_vec(ctx, d.w, NULL, C, 0, CLXENT_F32);
            clxent_vector lv = hx_vec(ctx, NULL, NULL, 1, 0, CLXENT_F32);
            clxent_loss_options opt;
            clxent_loss_options_init(&opt);
            clxent_vector none = hx_no_vec();
            fx_assert_status(ctx,
                             clxent_nll_loss(ctx, &lp, &yv, &wv, &opt, &lv,
                                             NULL),
                             CLXENT_STATUS_OK);
            fx_assert_status(ctx,
                             clxent_nll_loss_backward(ctx, &lp, &yv, &wv,
                                                      &opt, &none, &y, NULL),
                             CLXENT_STATUS_OK);
            fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
            float *l = hx_vec_read(ctx, &lv);
            float *gnll = hx_mat_read(ctx, &y);
            res[b][5] = malloc((R * C + 1) * sizeof(float));
            assert_non_null(res[b][5]);
            res[b][5][0] = l[0];
            memcpy(res[b][5] + 1, gnll, R * C * sizeof(float));
            free(l);
            free(gnll);
            clxent_buffer_release(x.buffer);
            clxent_buffer_release(vmax.buffer);
            clxent_buffer_release(vin.buffer);
            clxent_buffer_release(vsum.buffer);
            clxent_buffer_release(y.buffer);
            clxent_buffer_release(lp.buffer);
            clxent_buffer_release(yv.buffer);
            clxent_buffer_release(wv.buffer);
            clxent_buffer_release(lv.buffer);
        }
        hx_compare(res[1][0], res[0][0], R, 0.0, 0.0, CLXENT_F32, "row_max",
                   name);
        hx_compare(res[1][1], res[0][1], R, 0.0, 1.2e-6, CLXENT_F32,
                   "row_expsum", name);
        hx_compare(res[1][2], res[0][2], R * C, 1e-6, 1.2e-7 * 4, out_dt,
                   "log_softmax", name);
        hx_compare(res[1][3], res[0][3], R * C, 1e-6, 0.0, out_dt, "softmax",
                   name);
        hx_compare(res[1][4], res[0][4], R * C, 0.0, 0.0, CLXENT_F32, "copy",
                   name);
        hx_compare(res[1][5], res[0][5], 1, 1e-6, 1e-6, CLXENT_F32,
                   "nll loss", name);
        hx_compare(res[1][5] + 1, res[0][5] + 1, R * C, 1e-7, 1e-6, out_dt,
                   "nll grad", name);
        for (int b = 0; b < 2; ++b)
            for (int k = 0; k < 6; ++k) free(res[b][k]);
        hx_free(&d);
    }
}

/* ---- targets out of range ---- */

static int contains(const char *text, const char *part) {
    return strstr(text, part) != NULL;
}

static void out_of_range(clxent_dtype idt, clxent_target_check mode) {
    clxent_context *dev = fx_device();
    if (!dev) return;
    hx_case c = hx_base_case(40, 300, CLXENT_F32, 5);
    c.idt = idt;
    c.red = CLXENT_REDUCTION_NONE;
    c.check = mode;
    hx_data d = hx_make(&c);
    d.y[9] = -7;                     /* a later bad row */
    d.y[5] = (int64_t)c.C + 3;       /* the first bad row */
    d.y[7] = -100;                   /* ignored: skipped before the check */
    hx_in in = hx_upload(dev, &c, &d);
    clxent_loss_options opt = hx_options(&c);
    clxent_vector loss = hx_vec(dev, NULL, NULL, c.R, 0, CLXENT_F32);
    clxent_matrix grad =
        hx_mat(dev, NULL, c.R, c.C, HX_G_OFF, c.C + HX_G_PAD, c.dt);
    clxent_status st = clxent_cross_entropy(dev, &in.x, &in.tg, &in.w, &opt,
                                            &in.gr, &loss, NULL, &grad, NULL);
    char expect[96];
    snprintf(expect, sizeof expect, "targets[5] = %zu", c.C + 3);
    float *l = NULL, *g = NULL;
    if (mode == CLXENT_CHECK_SYNC) {
        fx_assert_status(dev, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
        if (!contains(clxent_context_message(dev), expect))
            fail_msg("message \"%s\" does not name %s",
                     clxent_context_message(dev), expect);
        fx_assert_status(dev, clxent_finish(dev), CLXENT_STATUS_OK);
        /* nothing written: the fill pattern is intact */
        unsigned char *raw = fx_download(dev, grad.buffer);
        for (size_t i = 0; i < clxent_buffer_size(grad.buffer); ++i)
            if (raw[i] != 0x7f) fail_msg("gradient byte %zu written", i);
        free(raw);
        raw = fx_download(dev, loss.buffer);
        for (size_t i = 0; i < clxent_buffer_size(loss.buffer); ++i)
            if (raw[i] != 0x7f) fail_msg("loss byte %zu written", i);
        free(raw);
    } else {
        fx_assert_status(dev, st, CLXENT_STATUS_OK);
        /* a second deferred op with another bad row: the first is kept */
        st = clxent_cross_entropy(dev, &in.x, &in.tg, &in.w, &opt, &in.gr,
                                  &loss, NULL, &grad, NULL);
        fx_assert_status(dev, st, CLXENT_STATUS_OK);
        st = clxent_finish(dev);
        fx_assert_status(dev, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
        if (!contains(clxent_context_message(dev), expect))
            fail_msg("message \"%s\" does not name %s",
                     clxent_context_message(dev), expect);
        fx_assert_status(dev, clxent_finish(dev), CLXENT_STATUS_OK);
        l = hx_vec_read(dev, &loss);
        g = hx_mat_read(dev, &grad);
        if (!isnan(l[5]) || !isnan(l[9]))
            fail_msg("bad rows: loss %g %g, want NaN", l[5], l[9]);
        for (size_t j = 0; j < c.C; ++j)
            if (g[5 * c.C + j] != 0.0f || g[9 * c.C + j] != 0.0f)
                fail_msg("bad row gradient not zero at column %zu", j);
    }
    /* the other rows (and, after SYNC, a good call) match the host run
     * where the bad rows are ignored */
    d.y[5] = d.y[9] = -100;
    hx_out ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
    hx_out got = hx_run(dev, &c, &d, HX_ROUTE_FUSED);
    if (l) {
        ref.loss[5] = ref.loss[9] = NAN;
        memcpy(got.loss, l, c.R * sizeof(float));
        memcpy(got.grad, g, c.R * c.C * sizeof(float));
    }
    hx_compare_out(&c, &got, &ref, "out of range");
    hx_out_free(&got);
    hx_out_free(&ref);
    free(l);
    free(g);
    clxent_buffer_release(loss.buffer);
    clxent_buffer_release(grad.buffer);
    hx_in_release(&in);
    hx_free(&d);
}

static void test_out_of_range_sync_i32(void **s) {
    (void)s;
    out_of_range(CLXENT_I32, CLXENT_CHECK_SYNC);
}
static void test_out_of_range_sync_i64(void **s) {
    (void)s;
    out_of_range(CLXENT_I64, CLXENT_CHECK_SYNC);
}
static void test_out_of_range_deferred_i32(void **s) {
    (void)s;
    out_of_range(CLXENT_I32, CLXENT_CHECK_DEFERRED);
}
static void test_out_of_range_deferred_i64(void **s) {
    (void)s;
    out_of_range(CLXENT_I64, CLXENT_CHECK_DEFERRED);
}

/* NLL with a bad target, synchronous: error, then a good call works. */
static void test_out_of_range_nll(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    float lp[6] = {-1, -2, -3, -0.5f, -0.25f, -4};
    int64_t y[2] = {1, 3};
    clxent_matrix m = hx_mat(dev, lp, 2, 3, 0, 3, CLXENT_F32);
    clxent_vector yv = hx_vec(dev, NULL, y, 2, 0, CLXENT_I32);
    clxent_vector lv = hx_vec(dev, NULL, NULL, 1, 0, CLXENT_F32);
    clxent_vector none = hx_no_vec();
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    fx_assert_status(dev, clxent_nll_loss(dev, &m, &yv, &none, &opt, &lv, NULL),
                     CLXENT_STATUS_TARGET_OUT_OF_RANGE);
    if (!contains(clxent_context_message(dev), "targets[1] = 3"))
        fail_msg("message: %s", clxent_context_message(dev));
    y[1] = 2;
    clxent_buffer_release(yv.buffer);
    yv = hx_vec(dev, NULL, y, 2, 0, CLXENT_I32);
    fx_assert_status(dev, clxent_nll_loss(dev, &m, &yv, &none, &opt, &lv, NULL),
                     CLXENT_STATUS_OK);
    float *l = hx_vec_read(dev, &lv);
    assert_true(fabs(l[0] - 3.0) < 1e-6); /* (2 + 4) / 2 */
    free(l);
    clxent_buffer_release(m.buffer);
    clxent_buffer_release(yv.buffer);
    clxent_buffer_release(lv.buffer);
}

/* ---- IEEE rows ---- */

/* A NaN row, an ignored NaN row, +-inf entries and masked (-inf) classes:
 * row by row like the reference; other rows untouched. */
/* The same dtype on both sides of clxent_copy is a bit-exact copy on every
 * backend: arbitrary bit patterns (signalling NaNs with payloads, -0,
 * subnormals) survive, strided and offset, and the padding around the
 * rows is left alone. */
static void test_copy_bits(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    enum { CR = 5, CC = 37, XLD = 41, YLD = 39, XOFF = 3, YOFF = 2 };
    for (int b = 0; b < 2; ++b) {
        clxent_context *ctx = b ? dev : fx_host();
        if (!ctx) continue;
        for (int dt = 0; dt < 3; ++dt) {
            clxent_dtype dtype = (clxent_dtype)(CLXENT_F32 + dt);
            size_t es = clxent_dtype_size(dtype);
            size_t xn = XOFF + CR * XLD, yn = YOFF + CR * YLD;
            unsigned char *xb = malloc(xn * es), *yb = malloc(yn * es);
            assert_non_null(xb);
            assert_non_null(yb);
            fx_rng rng = fx_rng_seed(77 + dt);
            for (size_t i = 0; i < xn * es; ++i)
                xb[i] = (unsigned char)fx_next(&rng);
            for (size_t i = 0; i < yn * es; ++i) yb[i] = 0xA5;
            /* signalling NaNs with payloads, -0 and a subnormal */
            static const uint32_t f32[] = {0x7f800001u, 0xffa01234u,
                                           0x80000000u, 0x00000003u};
            static const uint16_t h16[] = {0x7c01u, 0xfd23u, 0x8000u, 0x0003u};
            static const uint16_t b16[] = {0x7f81u, 0xff93u, 0x8000u, 0x0003u};
            for (int k = 0; k < 4; ++k) {
                size_t at = (XOFF + (size_t)k * XLD + 5 * k) * es;
                if (dt == 0) memcpy(xb + at, &f32[k], 4);
                else memcpy(xb + at, dt == 1 ? &h16[k] : &b16[k], 2);
            }
            clxent_buffer *xbuf = fx_upload(ctx, xb, xn * es);
            clxent_buffer *ybuf = fx_upload(ctx, yb, yn * es);
            clxent_matrix x = {xbuf, XOFF, CR, CC, XLD, dtype};
            clxent_matrix y = {ybuf, YOFF, CR, CC, YLD, dtype};
            fx_assert_status(ctx, clxent_copy(ctx, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
            unsigned char *got = fx_download(ctx, ybuf);
            for (size_t i = 0; i < yn; ++i) {
                size_t r = i < YOFF ? CR : (i - YOFF) / YLD;
                size_t c = i < YOFF ? 0 : (i - YOFF) % YLD;
                const unsigned char *want =
                    r < CR && c < CC ? xb + (XOFF + r * XLD + c) * es
                                     : yb + i * es;
                if (memcmp(got + i * es, want, es) != 0)
                    fail_msg("copy %s on %s: element %zu differs",
                             clxent_dtype_name(dtype), b ? "device" : "host",
                             i);
            }
            free(got);
            free(xb);
            free(yb);
            clxent_buffer_release(xbuf);
            clxent_buffer_release(ybuf);
        }
    }
}

/* f16 <-> f32 conversions in the kernels against the host's, at aligned and
 * unaligned addresses (hardware and software paths on CPUs): every half
 * bit pattern loaded, and stores of every half's value, of the midpoints
 * between neighbours (ties to even), just below and above them, and of the
 * overflow and subnormal edges. Compared bit for bit (NaN: both NaN). */
static void test_f16_conversions(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    enum { N = 65536 };
    uint16_t *h = malloc(N * 2);
    float *f = malloc(4 * N * sizeof(float));
    assert_non_null(h);
    assert_non_null(f);
    for (size_t i = 0; i < N; ++i) h[i] = (uint16_t)i;
    size_t nf = 0;
    for (size_t i = 0; i < N; ++i) {
        float a = clxent_f16_to_f32((uint16_t)i);
        float b = clxent_f16_to_f32((uint16_t)(i + 1));
        f[nf++] = a;
        if (isfinite(a) && isfinite(b) && (i & 0x7fff) != 0x7bff &&
            (i & 0x7fff) != 0x7fff && i != 0x7fff) {
            float mid = (float)(((double)a + (double)b) / 2);
            f[nf++] = mid;
            f[nf++] = nextafterf(mid, -INFINITY);
            f[nf++] = nextafterf(mid, INFINITY);
        }
    }
    static const float edges[] = {65504.0f, 65519.0f, 65520.0f, 1e30f,
                                  0x1p-25f, 0x1p-24f, 0x1.8p-25f, 0x1p-149f};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; ++i) {
        f[nf++] = edges[i];
        f[nf++] = -edges[i];
    }
    for (size_t off = 0; off < 2; ++off) { /* aligned, then not */
        /* loads: f16 -> f32 */
        clxent_buffer *hb = fx_upload(dev, NULL, (N + 8) * 2);
        fx_assert_status(dev, clxent_buffer_write(dev, hb, off * 2, N * 2, h),
                         CLXENT_STATUS_OK);
        clxent_buffer *fb = fx_upload(dev, NULL, N * 4);
        clxent_matrix hm = {hb, off, 1, N, N, CLXENT_F16};
        clxent_matrix fm = {fb, 0, 1, N, N, CLXENT_F32};
        fx_assert_status(dev, clxent_copy(dev, &hm, &fm, NULL),
                         CLXENT_STATUS_OK);
        float *got = fx_download(dev, fb);
        for (size_t i = 0; i < N; ++i) {
            float want = clxent_f16_to_f32(h[i]);
            if (isnan(want) ? !isnan(got[i])
                            : memcmp(&got[i], &want, 4) != 0)
                fail_msg("f16 0x%04zx -> %a, host %a (offset %zu)", i,
                         (double)got[i], (double)want, off);
        }
        free(got);
        clxent_buffer_release(hb);
        clxent_buffer_release(fb);
        /* stores: f32 -> f16 */
        fb = fx_upload(dev, f, nf * 4);
        hb = fx_upload(dev, NULL, (nf + 8) * 2);
        fm = (clxent_matrix){fb, 0, 1, nf, nf, CLXENT_F32};
        hm = (clxent_matrix){hb, off, 1, nf, nf, CLXENT_F16};
        fx_assert_status(dev, clxent_copy(dev, &fm, &hm, NULL),
                         CLXENT_STATUS_OK);
        uint16_t *gh = fx_download(dev, hb);
        for (size_t i = 0; i < nf; ++i) {
            uint16_t want = clxent_f32_to_f16(f[i]), g = gh[off + i];
            int nan_w = (want & 0x7fff) > 0x7c00, nan_g = (g & 0x7fff) > 0x7c00;
            if (nan_w ? !nan_g : g != want)
                fail_msg("f32 %a -> f16 0x%04x, host 0x%04x (offset %zu)",
                         (double)f[i], g, want, off);
        }
        free(gh);
        clxent_buffer_release(hb);
        clxent_buffer_release(fb);
    }
    free(h);
    free(f);
}

/* grad_rows that are NaN or inf at ignored rows (every third): their
 * gradient is exactly 0, as PyTorch's (nll_loss skips the row), through
 * the lanes, batch, row and split kernels, every route. */
static void test_ignored_grad_rows(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t cols[] = {10, 45, 300, 3000, 70000};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (int v = 0; v < 2; ++v) {
            size_t R = cols[i] > 10000 ? 3 : 40;
            hx_case c = hx_base_case(R, cols[i], CLXENT_F32,
                                     61 + 2 * (uint64_t)i + (uint64_t)v);
            c.ignore = 1;
            c.grad_rows = 1;
            c.red = CLXENT_REDUCTION_NONE;
            c.idt = v ? CLXENT_I64 : CLXENT_I32;
            c.weights = v;
            hx_data d = hx_make(&c);
            for (size_t r = 0, n = 0; r < R; ++r) {
                if (r % 3 == 1) d.y[r] = c.ii;
                if (d.y[r] == c.ii) d.gr[r] = n++ % 2 ? INFINITY : NAN;
            }
            char name[64];
            snprintf(name, sizeof name, "ignored grad_rows %zux%zu i%d", R,
                     cols[i], v ? 64 : 32);
            hx_routes_vs_host(dev, &c, &d, HX_ROUTES_ALL, name);
            hx_free(&d);
        }
}

static void test_ieee_rows(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int probs = 0; probs < 2; ++probs)
        for (int eps = 0; eps < 2; ++eps) {
            hx_case c = hx_base_case(9, 45, CLXENT_F32,
                                     31 + (uint64_t)(2 * probs + eps));
            c.probs = probs;
            c.eps = eps ? 0.2f : 0.0f;
            c.red = CLXENT_REDUCTION_NONE;
            hx_data d = hx_make(&c);
            d.x[1 * c.C + 7] = NAN;   /* NaN row */
            d.x[2 * c.C + 3] = NAN;   /* NaN row, ignored below */
            d.y[2] = -100;
            for (size_t j = 0; j < c.C; j += 3)
                d.x[3 * c.C + j] = -INFINITY; /* masked classes */
            d.y[3] = 1;
            d.x[4 * c.C + 5] = INFINITY;      /* +inf: NaN row */
            for (size_t j = 1; j < c.C; ++j)
                d.x[5 * c.C + j] = -INFINITY; /* one finite value */
            d.y[5] = 0;
            if (probs) { /* probabilities have no ignored rows */
                d.x[2 * c.C + 3] = 1.0f;
                for (size_t j = 0; j < c.C; ++j) /* zero mass on masked */
                    if (j % 3 == 0) d.t[3 * c.C + j] = 0.0f;
            }
            char name[64];
            snprintf(name, sizeof name, "ieee probs=%d eps=%d", probs, eps);
            hx_routes_vs_host(dev, &c, &d, HX_ROUTES_NO_BWD_IN_PLACE, name);
            /* the ignored NaN row: exactly 0 loss and gradient */
            if (!probs) {
                hx_out got = hx_run(dev, &c, &d, HX_ROUTE_FUSED);
                assert_true(got.loss[2] == 0.0f);
                for (size_t j = 0; j < c.C; ++j)
                    assert_true(got.grad[2 * c.C + j] == 0.0f);
                hx_out_free(&got);
            }
            hx_free(&d);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_primitives),
        cmocka_unit_test(test_out_of_range_sync_i32),
        cmocka_unit_test(test_out_of_range_sync_i64),
        cmocka_unit_test(test_out_of_range_deferred_i32),
        cmocka_unit_test(test_out_of_range_deferred_i64),
        cmocka_unit_test(test_out_of_range_nll),
        cmocka_unit_test(test_ieee_rows),
        cmocka_unit_test(test_ignored_grad_rows),
        cmocka_unit_test(test_copy_bits),
        cmocka_unit_test(test_f16_conversions),
        cmocka_unit_test(test_grid),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
