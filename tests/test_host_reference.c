/* The host backend against the naive double reference of
 * common/host_ref_harness.c (written from docs/semantics.md's formulas,
 * deliberately not the backend's code): every option alone and in
 * combination, 16-bit storage, strides and offsets, wide rows, backward
 * from a saved lse, the primitives, and the reference itself on a
 * hand-checked case. The edge cases (ignored rows, NaN rows, masked
 * classes, R = 0, all ignored) and the target-out-of-range error are
 * test_host_reference_edges.c's. */
#include "host_ref_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *reductions[3] = {"none", "sum", "mean"};

/* reduction x weights x smoothing x z-loss x ignored rows x targets kind
 * x storage type, with strides and offsets varying across cases. */
static void test_option_sweep(void **state) {
    clxent_context *ctx = *state;
    int n = 0;
    for (int red = 0; red < 3; ++red)
        for (int mask = 0; mask < 32; ++mask)
            for (int d = 0; d < 3; ++d) {
                int weighted = mask & 1, smooth = mask & 2, z = mask & 4;
                int ignore = mask & 8, probs = mask & 16;
                if (probs && ignore) continue; /* invalid, as PyTorch */
                size_t C = n % 5 == 0 ? 1 : 3 + (size_t)(n % 7);
                xcase k = case_new(6, C, 1000 + (uint64_t)n);
                k.dt = dtypes[d];
                k.idt = n % 2 ? CLXENT_I64 : CLXENT_I32;
                k.probs = probs;
                k.off = (size_t)(n % 3);
                k.pad = (size_t)(n % 4);
                k.opt.reduction = (clxent_reduction)red;
                if (weighted) case_weights(&k, 77 + (uint64_t)n);
                if (smooth) k.opt.label_smoothing = 0.1f + 0.05f * (n % 3);
                if (z) k.opt.z_loss = 1e-2f;
                if (ignore) k.y[1] = k.y[4] = -100;
                k.opt.grad_scale = n % 2 ? 1.0f : 0.5f;
                if (red == CLXENT_REDUCTION_NONE && n % 3 == 0)
                    case_grad_rows(&k, 99 + (uint64_t)n);
                char label[96];
                snprintf(label, sizeof label,
                         "case %d (%s, w%d e%d z%d i%d p%d %s C=%zu)", n,
                         reductions[red], weighted, !!smooth, !!z, !!ignore,
                         !!probs, clxent_dtype_name(k.dt), C);
                check_case(ctx, &k, label);
                case_free(&k);
                ++n;
            }
    assert_int_equal(n, 3 * 24 * 3);
}

static void test_ignore_index_inside_range(void **state) {
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(7, 4, 11 + (uint64_t)red);
        k.opt.reduction = (clxent_reduction)red;
        k.opt.ignore_index = 1;
        k.y[0] = 1;
        k.y[2] = 1;
        k.y[3] = 0;
        k.y[5] = 3;
        case_weights(&k, 5);
        check_case(*state, &k, "ignore_index 1");
        case_free(&k);
    }
    /* ignore_index -1 with int64 targets; the default -100 is not it */
    xcase k = case_new(5, 6, 12);
    k.idt = CLXENT_I64;
    k.opt.ignore_index = -1;
    k.y[2] = -1;
    k.opt.label_smoothing = 0.2f;
    check_case(*state, &k, "ignore_index -1");
    case_free(&k);
}

static void test_normalizer(void **state) {
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(6, 5, 41);
        k.probs = probs;
        k.opt.normalizer = 7.5f;
        k.opt.label_smoothing = 0.1f;
        k.opt.grad_scale = 2.0f;
        case_weights(&k, 8);
        if (!probs) k.y[2] = -100;
        check_case(*state, &k, "normalizer");
        case_free(&k);
    }
    /* With D the mean is sum/D, also when no row counts. */
    xcase k = case_new(3, 4, 42);
    k.opt.normalizer = 4.0f;
    for (size_t r = 0; r < k.R; ++r) k.y[r] = -100;
    check_case(*state, &k, "normalizer, all ignored");
    outputs o;
    fx_assert_status(*state, run_op(*state, &k, RUN_FUSED, NULL, NULL, &o),
                     CLXENT_STATUS_OK);
    assert_true(o.loss[0] == 0.0f);
    outputs_free(&o);
    case_free(&k);
}

static void test_grad_rows(void **state) {
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(5, 6, 51);
        k.probs = probs;
        k.opt.reduction = CLXENT_REDUCTION_NONE;
        k.opt.grad_scale = 3.0f;
        k.opt.z_loss = 1e-3f;
        case_grad_rows(&k, 52);
        case_weights(&k, 53);
        if (!probs) k.y[3] = -100;
        check_case(*state, &k, "grad_rows");
        case_free(&k);
    }
}

static void test_probs_smoothing_weights(void **state) {
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(9, 11, 61 + (uint64_t)red);
        k.probs = 1;
        k.opt.reduction = (clxent_reduction)red;
        k.opt.label_smoothing = 0.3f;
        k.opt.z_loss = 1e-2f;
        case_weights(&k, 62);
        k.off = 5;
        k.pad = 3;
        check_case(*state, &k, "probabilities, smoothing, weights");
        case_free(&k);
    }
}

/* A wide row in each storage type, with stride and offset. */
static void test_wide_rows(void **state) {
    for (int d = 0; d < 3; ++d) {
        xcase k = case_new(3, 4099, 101 + (uint64_t)d);
        k.dt = dtypes[d];
        k.off = 7;
        k.pad = 13;
        k.opt.label_smoothing = 0.05f;
        k.opt.z_loss = 1e-4f;
        case_weights(&k, 102);
        check_case(*state, &k, "wide rows");
        case_free(&k);
    }
}

/* Backward from a saved f32 lse at |x| ~ 100, where the lse's rounding
 * alone would move p by ~4e-6: the gradient still meets 1e-6 against the
 * exact double one, also from an lse that is off by a few units. A NaN lse
 * for a counted row gives that row a NaN gradient (the lse is used). */
static void test_backward_saved_lse(void **state) {
    clxent_context *ctx = *state;
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(4, 300, 131 + (uint64_t)probs);
        k.probs = probs;
        k.opt.reduction = CLXENT_REDUCTION_SUM;
        k.opt.z_loss = 1e-3f;
        for (size_t i = 0; i < k.R * k.C; ++i) k.x[i] = 25.0f * k.x[i];
        case_round(&k);
        xref ref;
        ref_alloc(&k, &ref);
        ref_ce(&k, NULL, &ref);
        float lse[4];
        for (size_t r = 0; r < k.R; ++r) lse[r] = (float)ref.lse[r];
        lse[1] += 3.0f;
        lse[2] -= 2.0f;
        /* A shifted lse scales p: the gradient is the formula's with that
         * lse, not a silently corrected one (devices compute the same). */
        xref shifted;
        ref_alloc(&k, &shifted);
        ref_ce(&k, lse, &shifted);
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_BACKWARD, lse, NULL, &o),
                         CLXENT_STATUS_OK);
        fx_assert_close(o.grad, shifted.grad, k.R * k.C, 1e-6, 1e-6,
                        "backward grad from a saved lse");
        ref_free(&shifted);
        outputs_free(&o);
        lse[3] = NAN;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_BACKWARD, lse, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t i = 0; i < k.R * k.C; ++i)
            assert_int_equal(!!isnan(o.grad[i]), i / k.C == 3);
        outputs_free(&o);
        ref_free(&ref);
        case_free(&k);
    }
}

/* ---- primitives against the naive formulas ---- */

static void test_primitives(void **state) {
    clxent_context *ctx = *state;
    for (int d = 0; d < 3; ++d)
        for (int od = 0; od < 3; ++od) {
            xcase k = case_new(5, 9, 121 + (uint64_t)(3 * d + od));
            k.dt = dtypes[d];
            k.x[1 * 9 + 4] = NAN;      /* row max propagates NaN */
            k.x[2 * 9 + 0] = -INFINITY; /* masked class */
            case_round(&k);
            size_t R = k.R, C = k.C, ld = C + 3;
            clxent_buffer *xb = put(ctx, k.x, R, C, 2, ld, k.dt, NAN);
            clxent_matrix xm = {xb, 2, R, C, ld, k.dt};
            clxent_buffer *ob = put(ctx, NULL, R, C, 1, C + 1, dtypes[od],
                                    SENTINEL);
            clxent_matrix om = {ob, 1, R, C, C + 1, dtypes[od]};
            clxent_buffer *mb = put(ctx, NULL, 1, R, 3, R, CLXENT_F32,
                                    SENTINEL);
            clxent_vector mv = {mb, 3, R, CLXENT_F32};
            clxent_buffer *sb = put(ctx, NULL, 1, R, 0, R, CLXENT_F32,
                                    SENTINEL);
            clxent_vector sv = {sb, 0, R, CLXENT_F32};

            double want_m[5], want_s[5], *want = malloc(R * C * sizeof(double));
            assert_non_null(want);
            fx_assert_status(ctx, clxent_row_max(ctx, &xm, &mv, NULL),
                             CLXENT_STATUS_OK);
            float *m = get(ctx, mb, 1, R, 3, R, CLXENT_F32, SENTINEL, "max");
            for (size_t r = 0; r < R; ++r) {
                want_m[r] = -INFINITY;
                for (size_t c = 0; c < C; ++c)
                    want_m[r] = isnan(k.x[r * C + c]) || isnan(want_m[r])
                                    ? NAN
                                    : fmax(want_m[r], k.x[r * C + c]);
            }
            fx_assert_close(m, want_m, R, 0, 0, "row_max");
            assert_true(isnan(m[1]));

            fx_assert_status(ctx, clxent_row_expsum(ctx, &xm, &mv, &sv, NULL),
                             CLXENT_STATUS_OK);
            float *s = get(ctx, sb, 1, R, 0, R, CLXENT_F32, SENTINEL, "sum");
            for (size_t r = 0; r < R; ++r) {
                want_s[r] = 0.0;
                for (size_t c = 0; c < C; ++c)
                    want_s[r] += exp((double)k.x[r * C + c] - m[r]);
            }
            fx_assert_close(s, want_s, R, 1e-6, 1e-6, "row_expsum");

            for (int form = 0; form < 3; ++form) {
                clxent_status st =
                    form == 0   ? clxent_log_softmax(ctx, &xm, &om, NULL)
                    : form == 1 ? clxent_softmax(ctx, &xm, &om, NULL)
                                : clxent_copy(ctx, &xm, &om, NULL);
                fx_assert_status(ctx, st, CLXENT_STATUS_OK);
                for (size_t i = 0; i < R * C; ++i) {
                    double lse = ref_lse(k.x + (i / C) * C, C);
                    double v = form == 0   ? k.x[i] - lse
                               : form == 1 ? exp(k.x[i] - lse)
                                           : k.x[i];
                    want[i] = dtypes[od] == CLXENT_F32
                                  ? v
                                  : fx_round((float)v, dtypes[od]);
                }
                float *out = get(ctx, ob, R, C, 1, C + 1, dtypes[od],
                                 SENTINEL, "out");
                fx_assert_close(out, want, R * C, 1e-7, 1e-6,
                                form == 0   ? "log_softmax"
                                : form == 1 ? "softmax"
                                            : "copy");
                free(out);
            }
            free(m);
            free(s);
            free(want);
            clxent_buffer_release(xb);
            clxent_buffer_release(ob);
            clxent_buffer_release(mb);
            clxent_buffer_release(sb);
            case_free(&k);
        }
}

/* The reference itself on a hand-checked case: one row, x = [0, log 3],
 * target 0: p = [1/4, 3/4], loss = log 4, grad = [-3/4, 3/4]. */
static void test_reference_sanity(void **state) {
    (void)state;
    xcase k = case_new(1, 2, 1);
    k.x[0] = 0.0f;
    k.x[1] = (float)log(3.0);
    k.y[0] = 0;
    xref ref;
    ref_alloc(&k, &ref);
    ref_ce(&k, NULL, &ref);
    double p0 = 1.0 / (1.0 + exp((double)k.x[1]));
    assert_true(fabs(ref.loss[0] + log(p0)) < 1e-12);
    assert_true(fabs(ref.grad[0] - (p0 - 1.0)) < 1e-12);
    assert_true(fabs(ref.grad[1] - (1.0 - p0)) < 1e-12);
    assert_true(fabs(p0 - 0.25) < 1e-7);
    ref_free(&ref);
    case_free(&k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sanity),
        HOST_TEST(test_option_sweep),
        HOST_TEST(test_ignore_index_inside_range),
        HOST_TEST(test_normalizer),
        HOST_TEST(test_grad_rows),
        HOST_TEST(test_probs_smoothing_weights),
        HOST_TEST(test_wide_rows),
        HOST_TEST(test_backward_saved_lse),
        HOST_TEST(test_primitives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
