/* The fused cross-entropy path: against the unfused forward + backward and
 * the host reference (in place and not, every dtype), the split-row path
 * forced at small sizes against the single-group path, the other work
 * mappings (items per row, vector widths, the GPU register cache), the
 * synchronous target check's guard on every strategy, bitwise
 * repeatability, and accuracy at C = 2^20 against float64. The CPU
 * kernels' own tests are in test_cpu_kernels.c. */
#include "fused_cases.h"

/* Fused, fused in place and forward + backward on the device against the
 * host. */
static void check_all_routes(clxent_context *dev, const hx_case *c,
                             const char *tag) {
    char name[256];
    hx_name(c, name, sizeof name);
    strncat(name, tag, sizeof name - strlen(name) - 1);
    hx_data d = hx_make(c);
    hx_routes_vs_host(dev, c, &d, HX_ROUTES_NO_BWD_IN_PLACE, name);
    hx_free(&d);
}

static void test_fused_grid(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    tune_reset();
    static const size_t cols[] = {1, 3, 33, 257, 1000, 4097, 32000};
    static const size_t rows[] = {1, 64, 1000};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (size_t j = 0; j < sizeof rows / sizeof *rows; ++j) {
            if (cols[i] * rows[j] > 300000) continue;
            for (int dt = 0; dt < 3; ++dt, ++k) {
                hx_case c = hx_base_case(rows[j], cols[i],
                                      (clxent_dtype)(CLXENT_F32 + dt),
                                      400 + k);
                options_k(&c, k);
                check_all_routes(dev, &c, "");
            }
        }
}

/* The split path (forced) against the single-group path and the host:
 * cross-entropy (all routes: probabilities use the A-only split in the
 * backward) and the row primitives. */
static void test_split_forced(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t cols[] = {7, 100, 1000, 5003};
    static const unsigned chunks[] = {2, 3, 5, 8};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (size_t p = 0; p < sizeof chunks / sizeof *chunks; ++p, ++k) {
            hx_case c = hx_base_case(1 + k % 5, cols[i],
                                  (clxent_dtype)(CLXENT_F32 + k % 3), 900 + k);
            options_k(&c, k);
            /* odd k: the GPU mapping (a group per chunk, the states merged
             * by a tree), else the CPU one (an item per chunk, the states
             * merged in turn) */
            unsigned vec = k % 2 ? 1 : 0;
            char name[256], tag[40];
            snprintf(tag, sizeof tag, " split P=%u%s", chunks[p],
                     vec ? " VEC=1" : "");
            hx_name(&c, name, sizeof name);
            strncat(name, tag, sizeof name - strlen(name) - 1);
            hx_data d = hx_make(&c);
            tune_reset();
            tune_knob(TK_vec, vec);
            tune_knob(TK_split_chunks, 1);
            hx_out whole = dev_run(&c, &d, HX_ROUTE_FUSED);
            hx_out ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
            tune_knob(TK_split_chunks, chunks[p]);
            hx_expect(OPS_CE_FUSED, "(split ");
            hx_expect(OPS_CE_FORWARD, "(split ");
            for (int route = 0; route < 3; ++route) {
                hx_out got = dev_run(&c, &d, route);
                hx_compare_out(&c, &got, &whole, name);
                hx_compare_out(&c, &got, &ref, name);
                hx_out_free(&got);
            }
            hx_out_free(&whole);
            hx_out_free(&ref);
            hx_free(&d);
        }
    /* primitives: softmax, log_softmax, row max, exp-sum */
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i) {
        hx_case c = hx_base_case(3, cols[i], CLXENT_F32, 950 + i);
        hx_data d = hx_make(&c);
        d.x[1] = NAN; /* row 0: NaN max */
        float *res[2][4];
        for (int b = 0; b < 2; ++b) {
            tune_reset();
            tune_knob(TK_vec, i % 2 ? 1 : 0); /* GPU and CPU mappings */
            tune_knob(TK_split_chunks, b ? chunks[i] : 1);
            clxent_matrix x = hx_mat(dev, d.x, c.R, c.C, 3, c.C + 1, c.dt);
            clxent_matrix y = hx_mat(dev, NULL, c.R, c.C, 0, c.C, c.dt);
            clxent_vector v = hx_vec(dev, NULL, NULL, c.R, 1, CLXENT_F32);
            fx_assert_status(dev, clxent_softmax(dev, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            res[b][0] = hx_mat_read(dev, &y);
            fx_assert_status(dev, clxent_log_softmax(dev, &x, &y, NULL),
                             CLXENT_STATUS_OK);
            res[b][1] = hx_mat_read(dev, &y);
            fx_assert_status(dev, clxent_row_max(dev, &x, &v, NULL),
                             CLXENT_STATUS_OK);
            res[b][2] = hx_vec_read(dev, &v);
            clxent_vector vs = hx_vec(dev, NULL, NULL, c.R, 0, CLXENT_F32);
            fx_assert_status(dev, clxent_row_expsum(dev, &x, &v, &vs, NULL),
                             CLXENT_STATUS_OK);
            res[b][3] = hx_vec_read(dev, &vs);
            clxent_buffer_release(x.buffer);
            clxent_buffer_release(y.buffer);
            clxent_buffer_release(v.buffer);
            clxent_buffer_release(vs.buffer);
        }
        size_t n = c.R * c.C;
        hx_compare(res[1][0], res[0][0], n, 1e-6, 0.0, c.dt, "split softmax",
                   "primitives");
        hx_compare(res[1][1], res[0][1], n, 1e-6, 1e-6, c.dt,
                   "split log_softmax", "primitives");
        hx_compare(res[1][2], res[0][2], c.R, 0.0, 0.0, c.dt, "split max",
                   "primitives");
        assert_true(isnan(res[1][2][0]));
        hx_compare(res[1][3], res[0][3], c.R, 0.0, 1e-6, c.dt, "split expsum",
                   "primitives");
        for (int b = 0; b < 2; ++b)
            for (int q = 0; q < 4; ++q) free(res[b][q]);
        hx_free(&d);
    }
    tune_reset();
}

/* The target check and the loss reduction in two levels (group partials,
 * then a fixed-order combine), forced at small sizes: against the host,
 * every route, and the first bad target still found across groups. */
static void test_two_level(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t rows[] = {1, 3, 100, 1000, 2049};
    static const size_t cols[] = {10, 33, 300};
    static const unsigned groups[] = {2, 3, 7};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; ++i)
        for (size_t j = 0; j < sizeof cols / sizeof *cols; ++j, ++k) {
            tune_reset();
            tune_knob(TK_reduce_groups, groups[k % 3]);
            hx_case c = hx_base_case(rows[i], cols[j],
                                  (clxent_dtype)(CLXENT_F32 + k % 3),
                                  1500 + k);
            options_k(&c, k);
            c.check = k % 2 ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
            char tag[48];
            snprintf(tag, sizeof tag, " groups=%u", groups[k % 3]);
            check_all_routes(dev, &c, tag);
        }
    /* every row ignored, mean: NaN (and 0 with the policy) */
    for (int pol = 0; pol < 2; ++pol) {
        tune_reset();
        tune_knob(TK_reduce_groups, 5);
        hx_case c = hx_base_case(500, 10, CLXENT_F32, 1600 + (uint64_t)pol);
        c.ignore = 1;
        c.all_ignored_zero = pol;
        hx_data d = hx_make(&c);
        for (size_t r = 0; r < c.R; ++r) d.y[r] = c.ii;
        hx_out got = dev_run(&c, &d, HX_ROUTE_FUSED);
        if (pol)
            assert_true(got.loss[0] == 0.0f);
        else
            assert_true(isnan(got.loss[0]));
        hx_out_free(&got);
        hx_free(&d);
    }
    /* bad targets in several groups: the first one is reported */
    for (int deferred = 0; deferred < 2; ++deferred) {
        tune_reset();
        tune_knob(TK_reduce_groups, 4);
        size_t R = 3000, C = 10;
        int64_t *y = calloc(R, sizeof *y);
        assert_non_null(y);
        y[2900] = 77;
        y[1700] = -5;
        y[1703] = 12;
        clxent_matrix x = hx_mat(dev, NULL, R, C, 0, C, CLXENT_F32);
        clxent_targets tg;
        memset(&tg, 0, sizeof tg);
        tg.indices = hx_vec(dev, NULL, y, R, 0, CLXENT_I32);
        clxent_vector loss = hx_vec(dev, NULL, NULL, 1, 0, CLXENT_F32);
        clxent_loss_options o;
        clxent_loss_options_init(&o);
        o.target_check =
            deferred ? CLXENT_CHECK_DEFERRED : CLXENT_CHECK_SYNC;
        clxent_matrix g = hx_mat(dev, NULL, R, C, 0, C, CLXENT_F32);
        clxent_status st = clxent_cross_entropy(dev, &x, &tg, NULL, &o, NULL,
                                                &loss, NULL, &g, NULL);
        if (deferred) {
            fx_assert_status(dev, st, CLXENT_STATUS_OK);
            st = clxent_finish(dev);
        }
        fx_assert_status(dev, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
        const char *msg = clxent_context_message(dev);
        if (!strstr(msg, "targets[1700] = -5"))
            fail_msg("wrong first bad target: %s", msg);
        clxent_buffer_release(x.buffer);
        clxent_buffer_release(g.buffer);
        clxent_buffer_release(tg.indices.buffer);
        clxent_buffer_release(loss.buffer);
        free(y);
    }
    tune_reset();
}

/* The register-cached fused kernel (the GPU default), forced here: every
 * option, dtype and route against the host, rows too long for it (the
 * rows path takes over), and special values against the rows path. */
static void test_gpu_cache(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const size_t cols[] = {1, 7, 100, 1000, 4097, 32000, 70001};
    static const size_t rows[] = {1, 5, 64};
    unsigned k = 0;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; ++i)
        for (size_t j = 0; j < sizeof rows / sizeof *rows; ++j) {
            /* big groups with barriers are slow on CPU devices */
            if (cols[i] * rows[j] > 75000) continue;
            for (int dt = 0; dt < 3; ++dt, ++k) {
                tune_reset();
                tune_rows_only(); /* else short rows take the lanes */
                tune_knob(TK_gpu_cache, 1);
                if (k % 2) tune_knob(TK_vec, 1); /* the GPU build */
                /* rows past 64 values x 1024 items take the rows path */
                hx_expect(OPS_CE_FUSED, cols[i] <= 32000 ? "(regs " : NULL);
                hx_case c = hx_base_case(rows[j], cols[i],
                                      (clxent_dtype)(CLXENT_F32 + dt),
                                      1700 + k);
                options_k(&c, k);
                c.check = k % 4 == 3 ? CLXENT_CHECK_DEFERRED
                                     : CLXENT_CHECK_SYNC;
                check_all_routes(dev, &c, " gpu_cache");
            }
        }
    /* NaN, -inf (masked classes), an all -inf row, against the rows path */
    for (unsigned v = 0; v < 6; ++v) {
        hx_case c = hx_base_case(4, v < 3 ? 300 : 3000, CLXENT_F32, 1800 + v);
        options_k(&c, v * 7 + 1);
        c.ignore = 0;
        hx_data d = hx_make(&c);
        for (size_t q = 0; q < c.C; q += 3) d.x[q] = -INFINITY; /* row 0 */
        for (size_t q = 0; q < c.C; ++q) d.x[c.C + q] = -INFINITY;
        d.x[2 * c.C + c.C / 2] = NAN;
        if (!c.probs) d.y[0] = 1; /* a finite target in row 0 */
        tune_reset();
        tune_knob(TK_gpu_cache, 2);
        hx_out want = dev_run(&c, &d, HX_ROUTE_FUSED);
        tune_knob(TK_gpu_cache, 1);
        for (int route = 0; route < 2; ++route) {
            hx_out got = dev_run(&c, &d, route);
            char name[256];
            hx_name(&c, name, sizeof name);
            strncat(name, " gpu_cache special", sizeof name - strlen(name) - 1);
            hx_compare_out(&c, &got, &want, name);
            hx_out_free(&got);
        }
        hx_out_free(&want);
        hx_free(&d);
    }
    /* bitwise repeatable */
    tune_reset();
    tune_knob(TK_gpu_cache, 1);
    hx_case c = hx_base_case(3, 9000, CLXENT_F32, 1900);
    options_k(&c, 11);
    hx_data d = hx_make(&c);
    assert_repeatable(&c, &d, HX_ROUTE_FUSED);
    hx_free(&d);
    tune_reset();
}

/* The synchronous target check guards every strategy: with a bad class
 * index, the call returns TARGET_OUT_OF_RANGE and every output byte (loss,
 * lse, gradient; in place, the logits) is as it was, although the loss
 * kernels were queued behind the check. One case per strategy. */
static void guard_case(clxent_context *dev, size_t R, size_t C,
                       clxent_dtype dt, clxent_reduction red,
                       const char *tag) {
    hx_case c = hx_base_case(R, C, dt, 7000 + R + C);
    c.red = red;
    hx_data d = hx_make(&c);
    d.y[R / 2] = (int64_t)C + 5;
    for (int op = 0; op < 4; ++op) { /* fused, in place, forward, backward */
        hx_in in = hx_upload(dev, &c, &d);
        clxent_loss_options opt = hx_options(&c);
        opt.in_place = op == 1;
        clxent_vector loss = hx_vec(dev, NULL, NULL, hx_nloss(&c), 2,
                                    CLXENT_F32);
        clxent_vector lse = hx_vec(dev, NULL, NULL, R, 1, CLXENT_F32);
        clxent_matrix grad = op == 1 ? in.x
                                     : hx_mat(dev, NULL, R, C, HX_G_OFF,
                                              C + HX_G_PAD, dt);
        clxent_buffer *bufs[4] = {loss.buffer, lse.buffer, grad.buffer,
                                  in.x.buffer};
        unsigned char *before[4];
        for (int b = 0; b < 4; ++b) before[b] = fx_download(dev, bufs[b]);
        clxent_status st;
        if (op <= 1)
            st = clxent_cross_entropy(dev, &in.x, &in.tg, &in.w, &opt,
                                      &in.gr, &loss, &lse, &grad, NULL);
        else if (op == 2)
            st = clxent_cross_entropy_forward(dev, &in.x, &in.tg, &in.w,
                                              &opt, &loss, &lse, NULL);
        else
            st = clxent_cross_entropy_backward(dev, &in.x, &in.tg, &in.w,
                                               &opt, &lse, &in.gr, &grad,
                                               NULL);
        if (st != CLXENT_STATUS_TARGET_OUT_OF_RANGE)
            fail_msg("%s, op %d: %s, expected TARGET_OUT_OF_RANGE (%s)", tag,
                     op, clxent_status_name(st),
                     clxent_context_message(dev));
        fx_assert_status(dev, clxent_finish(dev), CLXENT_STATUS_OK);
        for (int b = 0; b < 4; ++b) {
            unsigned char *now = fx_download(dev, bufs[b]);
            if (memcmp(now, before[b], clxent_buffer_size(bufs[b])) != 0)
                fail_msg("%s, op %d: buffer %d written", tag, op, b);
            free(now);
            free(before[b]);
        }
        clxent_buffer_release(loss.buffer);
        clxent_buffer_release(lse.buffer);
        if (op != 1) clxent_buffer_release(grad.buffer);
        hx_in_release(&in);
    }
    hx_free(&d);
}

static void test_sync_guard(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int dt = 0; dt < 3; ++dt)
        for (int red = 0; red < 2; ++red) {
            clxent_dtype t = (clxent_dtype)(CLXENT_F32 + dt);
            clxent_reduction r = red ? CLXENT_REDUCTION_MEAN
                                     : CLXENT_REDUCTION_NONE;
            tune_reset();
            guard_case(dev, 9, 1000, t, r, "default");
            guard_case(dev, 40, 10, t, r, "lanes");
            tune_knob(TK_gpu_cache, 1);
            guard_case(dev, 5, 3000, t, r, "gpu_cache");
            tune_reset();
            tune_knob(TK_split_chunks, 3);
            guard_case(dev, 3, 700, t, r, "split");
            tune_reset();
            tune_knob(TK_vec, 1);
            guard_case(dev, 7, 500, t, r, "VEC=1");
            tune_reset();
            tune_knob(TK_gcache, 2);
            tune_knob(TK_reduce_groups, 3);
            guard_case(dev, 70, 300, t, r, "rows, two-level");
        }
    tune_reset();
}

/* Other work mappings: T items per row (with its local reduction) and
 * vector widths (VEC 1 is the GPU mapping, run here on any device). */
static void test_mappings(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    static const unsigned ts[] = {1, 2, 4, 16, 64};
    static const unsigned vecs[] = {1, 4, 8, 16};
    unsigned k = 0;
    for (size_t v = 0; v < sizeof vecs / sizeof *vecs; ++v)
        for (size_t t = 0; t < sizeof ts / sizeof *ts; ++t, ++k) {
            tune_reset();
            tune_knob(TK_vec, vecs[v]);
            tune_knob(TK_items_per_row, ts[t]);
            tune_knob(TK_split_chunks, 1);
            static char items[16];
            snprintf(items, sizeof items, " T=%u)", ts[t]);
            hx_expect(OPS_CE_FUSED, items);
            hx_expect(OPS_CE_FORWARD, items);
            size_t C = k % 3 == 0 ? 5 : k % 3 == 1 ? 77 : 1500;
            hx_case c = hx_base_case(9, C, CLXENT_F32, 1200 + k);
            options_k(&c, k);
            char tag[48];
            snprintf(tag, sizeof tag, " VEC=%u T=%u", vecs[v], ts[t]);
            check_all_routes(dev, &c, tag);
        }
    tune_reset();
}

/* Same inputs twice: bitwise the same outputs (fixed-order reductions). */
static void test_repeatable(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int variant = 0; variant < 4; ++variant) {
        tune_reset();
        if (variant == 3) tune_knob(TK_split_chunks, 6);
        size_t R = variant == 0 ? 333 : variant == 1 ? 2 : 3;
        size_t C = variant == 0 ? 1000 : variant == 1 ? 70001 : 9000;
        hx_case c = hx_base_case(R, C, CLXENT_F32, 3000 + (uint64_t)variant);
        options_k(&c, (unsigned)variant * 5 + 2);
        hx_data d = hx_make(&c);
        assert_repeatable(&c, &d, HX_ROUTE_FUSED);
        hx_free(&d);
    }
    tune_reset();
}

/* The knobs of strategy s of test_denormal_options, its trace into
 * hx_expect; 0 when the strategy takes no probabilities (lanes, batch). */
static int denormal_strategy(int s, int probs) {
    static char items[16];
    tune_reset();
    if (s < 6) tune_rows_only(); /* else C = 6 takes the lanes */
    switch (s) {
    case 0: /* rows, the GPU mapping, and with 4 items a row */
    case 1:
        tune_knob(TK_vec, s == 0 ? 1 : 0);
        tune_knob(TK_items_per_row, s == 0 ? 1 : 4);
        tune_knob(TK_split_chunks, 1);
        snprintf(items, sizeof items, " T=%d)", s == 0 ? 1 : 4);
        hx_expect(OPS_CE_FUSED, items);
        hx_expect(OPS_CE_FORWARD, items);
        return 1;
    case 2:
        tune_knob(TK_split_chunks, 2);
        hx_expect(OPS_CE_FUSED, "(split ");
        hx_expect(OPS_CE_FORWARD, "(split ");
        return 1;
    case 3:
        tune_knob(TK_gpu_cache, 1);
        hx_expect(OPS_CE_FUSED, "(regs ");
        return 1;
    case 4:
        tune_knob(TK_gcache, 1);
        tune_knob(TK_vec, 8);
        hx_expect(OPS_CE_FUSED, "(cached ");
        return 1;
    case 5: /* the default of the device (for 6 classes: lanes on CPUs) */
        tune_reset();
        return 1;
    case 6:
        if (probs) return 0;
        tune_param("lanes_xent_cmax", 128);
        tune_knob(TK_batch, 2);
        tune_knob(TK_vec, 16);
        hx_expect(OPS_CE_FUSED, "(lanes ");
        hx_expect(OPS_CE_FORWARD, "(lanes ");
        return 1;
    default:
        if (probs) return 0;
        tune_knob(TK_batch, 1);
        tune_knob(TK_vec, 16);
        hx_expect(OPS_CE_FUSED, "(batch");
        hx_expect(OPS_CE_FORWARD, "(batch");
        return 1;
    }
}

/* Label smoothing and z-loss of f32 denormals (the fuzzer's eps 2^-149,
 * where eps/C rounds to 0 in f32) with masked classes: the smoothing term
 * of a row with masked classes is eps/C times inf, inf as in the host's
 * double arithmetic, not 0*inf = NaN. Row 1: the target masked too
 * (inf + inf); row 2: the target finite. Probabilities put no mass on the
 * masked classes, so that a_c = w_c*eps/C alone (below f32's smallest
 * denormal) must stay positive. Every strategy and route. */
static void test_denormal_options(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int probs = 0; probs < 2; ++probs)
        for (int s = 0; s < 8; ++s) {
            if (!denormal_strategy(s, probs)) continue;
            hx_case c = hx_base_case(17, 6, CLXENT_F32, 2100 + (uint64_t)s);
            c.probs = probs;
            c.weights = s % 2 == 0;
            c.eps = 0x1p-149f;
            c.zeta = 4.08955e-41f;
            c.red = CLXENT_REDUCTION_NONE;
            hx_data d = hx_make(&c);
            for (size_t j = 0; j < c.C; ++j) d.w[j] = 0.03125f;
            for (size_t r = 1; r <= 2; ++r) {
                float *x = d.x + r * c.C, *t = d.t + r * c.C;
                for (size_t j = 0; j < c.C; ++j) {
                    x[j] = j < 4 ? -INFINITY : -16.0f;
                    t[j] = j < 4 ? 0.0f : 0.5f;
                }
                d.y[r] = r == 1 ? 0 : 4;
            }
            char name[256];
            hx_name(&c, name, sizeof name);
            snprintf(name + strlen(name), sizeof name - strlen(name),
                     " strategy %d", s);
            hx_routes_vs_host(dev, &c, &d, HX_ROUTES_NO_BWD_IN_PLACE, name);
            hx_out got = dev_run(&c, &d, HX_ROUTE_FUSED);
            for (size_t r = 1; r <= 2; ++r)
                if (!(got.loss[r] == INFINITY))
                    fail_msg("%s: row %zu: loss %g, want inf", name, r,
                             (double)got.loss[r]);
            hx_out_free(&got);
            hx_free(&d);
        }
    tune_reset();
}

/* C = 2^20 in f32: loss within 1e-6 relative (to max(1, |loss|)) and
 * gradient within 1e-6 absolute of float64, with S near 2^20 (logits in
 * [-1, 1]) where plain float sums drift: with the default mapping, and
 * with one scalar item per row (2^20 terms in one running sum, where only
 * the compensated sums keep the error down). */
static void test_accuracy_2pow20(void **state) {
    (void)state;
    clxent_context *dev = fx_device();
    if (!dev) return;
    for (int variant = 0; variant < 4; ++variant) {
        tune_reset();
        if (variant >= 2) {
            tune_knob(TK_vec, 1);
            tune_knob(TK_items_per_row, 1);
            tune_knob(TK_split_chunks, 1);
        }
        hx_case c = hx_base_case(2, (size_t)1 << 20, CLXENT_F32,
                              77 + (uint64_t)variant);
        c.red = CLXENT_REDUCTION_NONE;
        c.probs = variant % 2;
        c.eps = 0.1f;
        hx_data d = hx_make(&c);
        fx_rng rng = fx_rng_seed(5);
        for (size_t i = 0; i < c.R * c.C; ++i)
            d.x[i] = (float)fx_uniform(&rng, -1.0, 1.0);
        hx_out ref = hx_run(fx_host(), &c, &d, HX_ROUTE_FUSED);
        hx_out got = dev_run(&c, &d, HX_ROUTE_FUSED);
        for (size_t r = 0; r < c.R; ++r) {
            double w = ref.loss[r];
            double err = fabs(got.loss[r] - w) / fmax(1.0, fabs(w));
            if (!(err <= 1e-6))
                fail_msg("row %zu loss %.9g vs %.9g: relative %.3g", r,
                         got.loss[r], w, err);
        }
        double worst = 0.0;
        for (size_t i = 0; i < c.R * c.C; ++i)
            worst = fmax(worst, fabs((double)got.grad[i] - ref.grad[i]));
        if (!(worst <= 1e-6)) fail_msg("gradient error %.3g > 1e-6", worst);
        hx_out_free(&ref);
        hx_out_free(&got);
        hx_free(&d);
    }
    tune_reset();
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_grid),
        cmocka_unit_test(test_split_forced),
        cmocka_unit_test(test_mappings),
        cmocka_unit_test(test_two_level),
        cmocka_unit_test(test_gpu_cache),
        cmocka_unit_test(test_sync_guard),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_denormal_options),
        cmocka_unit_test(test_accuracy_2pow20),
    };
    return fx_run_tests(tests, argc, argv);
}
