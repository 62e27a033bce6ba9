/* Helpers shared by test_fused.c and test_cpu_kernels.c: cases with the
 * tests' options, the device run of a case, the special rows, and the
 * row primitives run on any context. Include after nothing else. */
#ifndef CLXENT_TEST_FUSED_CASES_H
#define CLXENT_TEST_FUSED_CASES_H

#include "ops_harness.h"

/* The strategy knobs these tests turn, on the device context's tuning
 * parameters (clxent_context_set_param): 0 is "as resolved" for each;
 * gcache and gpu_cache 1 force the cached and register rows on, 2 off;
 * batch 1 opens the batch kernels' C range to every C, 2 closes it. */
typedef enum tune_knob_id {
    TK_vec, TK_split_chunks, TK_items_per_row, TK_group_size,
    TK_reduce_groups, TK_gpu_cache, TK_gcache, TK_gcache_block, TK_batch
} tune_knob_id;

/* Sets a parameter of the device context; fails the test if refused. */
static inline void tune_param(const char *name, long long value) {
    clxent_context *dev = fx_device();
    fx_assert_status(dev, clxent_context_set_param(dev, name, value),
                     CLXENT_STATUS_OK);
}

/* The device context's parameter as resolved at creation. */
static inline long long tune_resolved(const char *name) {
    static char names[64][32];
    static long long values[64];
    static int count = -1;
    clxent_context *dev = fx_device();
    if (count < 0) { /* once, before any test changed one */
        fx_assert_status(dev, clxent_context_reset_params(dev),
                         CLXENT_STATUS_OK);
        const char *n;
        for (count = 0; count < 64 && (n = clxent_param_name(count, NULL));
             ++count) {
            snprintf(names[count], sizeof names[count], "%s", n);
            fx_assert_status(dev,
                             clxent_context_get_param(dev, n, &values[count]),
                             CLXENT_STATUS_OK);
        }
    }
    for (int i = 0; i < count; ++i)
        if (strcmp(names[i], name) == 0) return values[i];
    fail_msg("no tuning parameter %s", name);
    return 0;
}

/* Every parameter back to what the context resolved, and no strategy
 * expected. */
static inline void tune_reset(void) {
    hx_expect_none();
    clxent_context *dev = fx_device();
    if (!dev) return;
    (void)tune_resolved("vec");
    fx_assert_status(dev, clxent_context_reset_params(dev), CLXENT_STATUS_OK);
}

/* Closes the lanes and batch kernels' ranges: every C takes the row
 * kernels (cached, rows, split), as a test of those needs. */
static inline void tune_rows_only(void) {
    static const char *const lanes[] = {"lanes_cmax", "lanes_log_softmax_cmax",
                                        "lanes_softmax_cmax",
                                        "lanes_xent_cmax", "lanes_bwd_cmax"};
    for (int i = 0; i < 5; ++i) tune_param(lanes[i], 0);
    tune_param("batch_cmax", 0);
}

static inline void tune_knob(tune_knob_id knob, long long v) {
    static const char *const direct[] = {"vec", "split_chunks",
                                         "items_per_row", "group_size",
                                         "reduce_groups"};
    if (knob <= TK_reduce_groups) {
        tune_param(direct[knob], v || knob != TK_vec ? v
                                                     : tune_resolved("vec"));
    } else if (knob == TK_gpu_cache) {
        tune_param("regs", v == 1 ? 2 : v == 2 ? 0 : tune_resolved("regs"));
    } else if (knob == TK_gcache) {
        tune_param("cached_rows", v == 1   ? 2
                                  : v == 2 ? 0
                                           : tune_resolved("cached_rows"));
    } else if (knob == TK_gcache_block) {
        tune_param("cached_block", v ? v : tune_resolved("cached_block"));
    } else {
        static const char *const cmins[] = {"batch_cmin", "batch_softmax_cmin",
                                            "batch_bf16_cmin",
                                            "batch_f16_cmin"};
        for (int i = 0; i < 4; ++i)
            tune_param(cmins[i], v == 1 ? 0 : tune_resolved(cmins[i]));
        tune_param("batch_cmax", v == 1   ? 1 << 30
                                 : v == 2 ? 0
                                          : tune_resolved("batch_cmax"));
    }
}

/* Options by number: smoothing, weights, ignore, z-loss, probabilities,
 * reductions, per-row G, in a fixed rotation. */
static inline void options_k(hx_case *c, unsigned k) {
    c->red = (clxent_reduction)(k % 3);
    c->weights = (k / 3) % 2;
    c->eps = (k / 2) % 2 ? 0.15f : 0.0f;
    c->probs = k % 5 == 4;
    c->ignore = !c->probs && (k % 4 == 1 || k % 4 == 2);
    c->ii = k % 8 == 2 ? 0 : -100;
    c->zeta = k % 4 == 3 ? 1e-3f : 0.0f;
    c->grad_rows = k % 2;
    c->idt = k % 2 ? CLXENT_I64 : CLXENT_I32;
}

/* Runs a case on the device and returns its outputs. */
static inline hx_out dev_run(const hx_case *c, const hx_data *d, int route) {
    return hx_run(fx_device(), c, d, route);
}

/* Runs a route twice on the device: loss, lse and gradient must be
 * bitwise equal (fixed-order reductions, no float atomics). */
static inline void assert_repeatable(const hx_case *c, const hx_data *d, int route) {
    hx_out a = dev_run(c, d, route);
    hx_out b = dev_run(c, d, route);
    assert_memory_equal(a.loss, b.loss, hx_nloss(c) * sizeof(float));
    assert_memory_equal(a.lse, b.lse, c->R * sizeof(float));
    assert_memory_equal(a.grad, b.grad, c->R * c->C * sizeof(float));
    hx_out_free(&a);
    hx_out_free(&b);
}

/* Rows for the block-wise kernels: 0 ascending (the maximum rises in
 * every block), 1 -inf for the first half then finite, 2 a NaN in the
 * last block, 3 +inf in a later block, 4 all -inf (ignored: the gradient
 * is 0), 5 masked (-inf) classes throughout. Rows past 5 stay random. */
static inline void block_specials(const hx_case *c, hx_data *d) {
    size_t C = c->C;
    for (size_t r = 0; r < 6 && r < c->R; ++r) {
        float *row = d->x + r * C;
        for (size_t j = 0; j < C; ++j) {
            switch (r) {
            case 0: row[j] = -8.0f + 16.0f * (float)j / (float)C; break;
            case 1: if (j < C / 2) row[j] = -INFINITY; break;
            case 2: if (j == C - 1) row[j] = NAN; break;
            case 3: if (j == 2 * C / 3) row[j] = INFINITY; break;
            case 4: row[j] = -INFINITY; break;
            default: if (j % 3 == 1) row[j] = -INFINITY; break;
            }
        }
        /* a finite target where there is one */
        d->y[r] = r == 4 ? c->ii : r == 1 ? (int64_t)(C - 1) : 0;
    }
}

/* A case's four device routes against the host's fused result. */
static inline void lanes_xent(clxent_context *dev, const hx_case *c,
                       const hx_data *d, const char *name) {
    hx_routes_vs_host(dev, c, d, HX_ROUTES_ALL, name);
}

/* Special rows: NaN, an ignored NaN row, masked (-inf) classes, +inf,
 * a single finite value, an all -inf row (ignored: the reference's lse
 * is NaN, the gradient 0). */
static inline void lanes_specials(const hx_case *c, hx_data *d) {
    size_t C = c->C;
    if (c->R < 7) return;
    d->x[1 * C + C / 2] = NAN;
    d->x[2 * C + C / 3] = NAN;
    d->y[2] = c->ii;
    for (size_t j = 0; j < C; j += 3) d->x[3 * C + j] = -INFINITY;
    d->y[3] = C > 1 ? 1 : 0;
    d->x[4 * C + C - 1] = INFINITY;
    for (size_t j = 1; j < C; ++j) d->x[5 * C + j] = -INFINITY;
    d->y[5] = 0;
    for (size_t j = 0; j < C; ++j) d->x[6 * C + j] = -INFINITY;
    d->y[6] = c->ii;
}

/* row_max, row_expsum (given the host's max), log_softmax, softmax of x
 * on ctx into res[0..3]. */
static inline void lanes_prims(clxent_context *ctx, const float *x, size_t R,
                        size_t C, clxent_dtype dt, clxent_dtype out_dt,
                        const float *mx, float **res) {
    clxent_matrix xm = hx_mat(ctx, x, R, C, HX_X_OFF, C + HX_X_PAD, dt);
    clxent_matrix y = hx_mat(ctx, NULL, R, C, HX_G_OFF, C + HX_G_PAD, out_dt);
    clxent_vector vmax = hx_vec(ctx, NULL, NULL, R, 1, CLXENT_F32);
    fx_assert_status(ctx, clxent_row_max(ctx, &xm, &vmax, NULL),
                     CLXENT_STATUS_OK);
    hx_check_ran(ctx, OPS_ROW_MAX);
    res[0] = hx_vec_read(ctx, &vmax);
    clxent_vector vin = hx_vec(ctx, mx ? mx : res[0], NULL, R, 2, CLXENT_F32);
    clxent_vector vsum = hx_vec(ctx, NULL, NULL, R, 3, CLXENT_F32);
    fx_assert_status(ctx, clxent_row_expsum(ctx, &xm, &vin, &vsum, NULL),
                     CLXENT_STATUS_OK);
    hx_check_ran(ctx, OPS_ROW_EXPSUM);
    res[1] = hx_vec_read(ctx, &vsum);
    fx_assert_status(ctx, clxent_log_softmax(ctx, &xm, &y, NULL),
                     CLXENT_STATUS_OK);
    hx_check_ran(ctx, OPS_LOG_SOFTMAX);
    res[2] = hx_mat_read(ctx, &y);
    fx_assert_status(ctx, clxent_softmax(ctx, &xm, &y, NULL),
                     CLXENT_STATUS_OK);
    hx_check_ran(ctx, OPS_SOFTMAX);
    res[3] = hx_mat_read(ctx, &y);
    clxent_buffer_release(xm.buffer);
    clxent_buffer_release(y.buffer);
    clxent_buffer_release(vmax.buffer);
    clxent_buffer_release(vin.buffer);
    clxent_buffer_release(vsum.buffer);
}

/* Frees the four results of lanes_prims. */
static inline void prims_free(float **res) {
    for (int q = 0; q < 4; ++q) free(res[q]);
}
#endif
