/* The host backend against the naive double reference of
 * common/host_ref_harness.c on the edge cases: every row ignored, R = 0,
 * a NaN row, an ignored row of NaN and inf, masked classes (-inf logits),
 * and the target-out-of-range error with nothing written.
 * test_host_reference.c has the options, the primitives and the
 * reference's own check. */
#include "host_ref_harness.h"

#include <math.h>
#include <string.h>

/* Mean over no valid row: NaN (or 0 with the policy), gradient zero. */
static void test_all_ignored(void **state) {
    clxent_context *ctx = *state;
    for (int policy = 0; policy < 2; ++policy)
        for (int red = 0; red < 3; ++red) {
            xcase k = case_new(4, 5, 21);
            k.opt.reduction = (clxent_reduction)red;
            k.opt.all_ignored_zero = policy;
            for (size_t r = 0; r < k.R; ++r) k.y[r] = -100;
            k.x[3] = NAN; /* garbage in an ignored row changes nothing */
            case_weights(&k, 3);
            check_case(ctx, &k, policy ? "all ignored, zero policy"
                                       : "all ignored");
            outputs o;
            fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                             CLXENT_STATUS_OK);
            if (red == CLXENT_REDUCTION_MEAN && !policy)
                assert_true(isnan(o.loss[0]));
            else
                for (size_t i = 0; i < loss_len(&k); ++i)
                    assert_true(o.loss[i] == 0.0f);
            for (size_t i = 0; i < k.R * k.C; ++i)
                assert_true(o.grad[i] == 0.0f);
            outputs_free(&o);
            case_free(&k);
        }
}

/* R = 0: mean NaN (0 with the policy), sum 0, none writes nothing. */
static void test_zero_rows(void **state) {
    clxent_context *ctx = *state;
    for (int probs = 0; probs < 2; ++probs)
        for (int policy = 0; policy < 2; ++policy)
            for (int red = 0; red < 3; ++red) {
                xcase k = case_new(0, 3, 31);
                k.probs = probs;
                k.opt.reduction = (clxent_reduction)red;
                k.opt.all_ignored_zero = policy;
                k.off = 2;
                check_case(ctx, &k, "zero rows");
                outputs o;
                fx_assert_status(ctx,
                                 run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                                 CLXENT_STATUS_OK);
                if (red == CLXENT_REDUCTION_MEAN)
                    assert_true(policy ? o.loss[0] == 0.0f
                                       : isnan(o.loss[0]));
                else if (red == CLXENT_REDUCTION_SUM)
                    assert_true(o.loss[0] == 0.0f);
                /* none: the padding check in get() saw nothing written */
                outputs_free(&o);
                case_free(&k);
            }
}

/* A NaN in one row spoils that row (and a sum over it), nothing else. */
static void test_nan_row_isolated(void **state) {
    clxent_context *ctx = *state;
    for (int red = 0; red < 2; ++red)
        for (int probs = 0; probs < 2; ++probs) {
            xcase k = case_new(4, 5, 71);
            k.probs = probs;
            k.opt.reduction = (clxent_reduction)red;
            k.opt.label_smoothing = 0.1f;
            k.x[1 * 5 + 2] = NAN;
            case_weights(&k, 72);
            check_case(ctx, &k, "NaN row");
            outputs o;
            fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                             CLXENT_STATUS_OK);
            for (size_t r = 0; r < k.R; ++r) {
                int bad = r == 1;
                if (red == CLXENT_REDUCTION_NONE)
                    assert_int_equal(!!isnan(o.loss[r]), bad);
                for (size_t c = 0; c < k.C; ++c)
                    assert_int_equal(!!isnan(o.grad[r * k.C + c]), bad);
            }
            if (red == CLXENT_REDUCTION_SUM) assert_true(isnan(o.loss[0]));
            outputs_free(&o);
            case_free(&k);
        }
}

/* An ignored row of garbage gives exactly 0 loss and gradient. */
static void test_ignored_nan_row(void **state) {
    clxent_context *ctx = *state;
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(4, 5, 81);
        k.opt.reduction = (clxent_reduction)red;
        k.opt.z_loss = 1e-2f;
        k.opt.label_smoothing = 0.1f;
        for (size_t c = 0; c < k.C; ++c)
            k.x[2 * k.C + c] = c % 2 ? NAN : INFINITY;
        k.y[2] = -100;
        check_case(ctx, &k, "ignored NaN row");
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t i = 0; i < loss_len(&k); ++i) {
            assert_true(isfinite(o.loss[i]));
            if (red == CLXENT_REDUCTION_NONE && i == 2)
                assert_true(o.loss[i] == 0.0f);
        }
        for (size_t i = 0; i < k.R * k.C; ++i) {
            assert_true(isfinite(o.grad[i]));
            if (i / k.C == 2) assert_true(o.grad[i] == 0.0f);
        }
        outputs_free(&o);
        case_free(&k);
    }
}

/* -inf logits mask classes; the target class stays finite. */
static void test_masked_classes(void **state) {
    clxent_context *ctx = *state;
    for (int d = 0; d < 3; ++d) {
        xcase k = case_new(5, 8, 91);
        k.dt = dtypes[d];
        k.opt.reduction = CLXENT_REDUCTION_NONE;
        k.opt.z_loss = 1e-2f;
        case_weights(&k, 92);
        for (size_t r = 0; r < k.R; ++r)
            for (size_t c = 0; c < k.C; ++c)
                if ((r + c) % 3 == 0 && (int64_t)c != k.y[r])
                    k.x[r * k.C + c] = -INFINITY;
        k.off = 1;
        k.pad = 2;
        check_case(ctx, &k, "masked classes");
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t r = 0; r < k.R; ++r) {
            assert_true(isfinite(o.loss[r]));
            for (size_t c = 0; c < k.C; ++c)
                if (isinf(k.x[r * k.C + c]))
                    assert_true(o.grad[r * k.C + c] == 0.0f);
        }
        outputs_free(&o);
        case_free(&k);
    }
}

/* A bad class index: the status, a message naming the first bad row and
 * its value, nothing written; then a valid call works. */
static void test_target_out_of_range(void **state) {
    clxent_context *ctx = *state;
    const run_kind kinds[] = {RUN_FUSED, RUN_FORWARD, RUN_BACKWARD,
                              RUN_IN_PLACE, RUN_NLL, RUN_NLL_BACKWARD};
    for (int check = 0; check < 2; ++check)
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
            for (int idt = 0; idt < 2; ++idt) {
                xcase k = case_new(6, 3, 111);
                k.opt.target_check = (clxent_target_check)check;
                k.opt.reduction = (clxent_reduction)(i % 3);
                k.idt = idt ? CLXENT_I64 : CLXENT_I32;
                k.opt.ignore_index = -1;
                k.off = 1;
                k.pad = 1;
                k.y[0] = -1;  /* ignored: skipped before the range check */
                k.y[2] = 3;   /* first offending row */
                k.y[4] = -100;
                float lse[6] = {1, 1, 1, 1, 1, 1};
                outputs o;
                clxent_status st = run_op(ctx, &k, kinds[i], lse, k.x, &o);
                fx_assert_status(ctx, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
                const char *msg = o.message;
                if (!strstr(msg, "targets[2] = 3 ") ||
                    !strstr(msg, "[0, 3)") || !strstr(msg, "clxent_"))
                    fail_msg("%s: message \"%s\" should name row 2, value 3 "
                             "and the function",
                             run_name[kinds[i]], msg);
                expect_untouched(o.loss, loss_len(&k), "loss after error");
                expect_untouched(o.lse, k.R, "lse after error");
                if (kinds[i] == RUN_IN_PLACE) {
                    for (size_t j = 0; j < k.R * k.C; ++j)
                        assert_true(same_value(o.grad[j], k.x[j]));
                } else {
                    expect_untouched(o.grad, k.R * k.C, "grad after error");
                }
                outputs_free(&o);

                /* -100 is not ignore_index here: it is the first bad row */
                k.y[2] = 1;
                st = run_op(ctx, &k, kinds[i], lse, k.x, &o);
                fx_assert_status(ctx, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
                if (!strstr(o.message, "targets[4] = -100 "))
                    fail_msg("message \"%s\" should name row 4", o.message);
                outputs_free(&o);

                k.y[4] = 2;
                fx_assert_status(ctx, run_op(ctx, &k, kinds[i], lse, k.x, &o),
                                 CLXENT_STATUS_OK);
                outputs_free(&o);
                check_case(ctx, &k, "valid after an error");
                case_free(&k);
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        HOST_TEST(test_all_ignored),
        HOST_TEST(test_zero_rows),
        HOST_TEST(test_nan_row_isolated),
        HOST_TEST(test_ignored_nan_row),
        HOST_TEST(test_masked_classes),
        HOST_TEST(test_target_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
