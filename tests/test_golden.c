/* The seed article's numbers (docs/semantics.md, last section) on the host
 * backend and on the OpenCL device: each value against its 4-decimal
 * golden text (0.5e-4 + 1e-6) and against the exact double value computed
 * here (1e-6, relative above 1). */
#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* x = [[1,2,3]] * 3; one-hot rows [0,0,1], [0,1,0], [1,0,0]. */
static const float seed_x[9] = {1, 2, 3, 1, 2, 3, 1, 2, 3};
static const int32_t seed_y[3] = {2, 1, 0};
static const float seed_onehot[9] = {0, 0, 1, 0, 1, 0, 1, 0, 0};

static const double gold_softmax[3] = {0.0900, 0.2447, 0.6652};
static const double gold_log_softmax[3] = {-2.4076, -1.4076, -0.4076};
static const double gold_single[3] = {2.4076, 1.4076, 0.4076};
static const double gold_batch = 1.4076;
static const double gold_grad[9] = {0.0300,  0.0816, -0.1116, /**/
                                    0.0300,  -0.2518, 0.2217, /**/
                                    -0.3033, 0.0816,  0.2217};
/* The article's exp/sum walk-through: exp(x) and its sum. */
static const double gold_exp_sum = 30.1929;

/* ---- exact values ---- */

static double exact_lse(void) { return log(exp(1.0) + exp(2.0) + exp(3.0)); }
static double exact_log_softmax(int c) { return (double)(c + 1) - exact_lse(); }
static double exact_softmax(int c) { return exp(exact_log_softmax(c)); }
/* The batch's mean loss (targets 2, 1, 0). */
static double exact_batch(void) {
    return -(exact_log_softmax(2) + exact_log_softmax(1) +
             exact_log_softmax(0)) / 3.0;
}
static double exact_grad(int r, int c) {
    return (exact_softmax(c) - (c == seed_y[r] ? 1.0 : 0.0)) / 3.0;
}

/* Both comparisons for one value. */
static void check(const char *what, size_t i, double got, double golden,
                  double exact) {
    if (!fx_close(got, golden, 0.5e-4 + 1e-6, 0.0))
        fail_msg("%s[%zu] = %.6f, golden %.4f", what, i, got, golden);
    double tight = 1e-6 * (fabs(exact) > 1.0 ? fabs(exact) : 1.0);
    if (!fx_close(got, exact, tight, 0.0))
        fail_msg("%s[%zu] = %.9g, exact %.9g (diff %.3g)", what, i, got,
                 exact, fabs(got - exact));
}

static void check_grad(const char *what, const float *g) {
    for (int i = 0; i < 9; ++i)
        check(what, (size_t)i, g[i], gold_grad[i], exact_grad(i / 3, i % 3));
}

/* ---- buffer helpers ---- */

static void read_floats(clxent_context *ctx, const clxent_buffer *buf,
                        float *out, size_t n) {
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 0, n * sizeof(float),
                                             out),
                     CLXENT_STATUS_OK);
}

static clxent_targets index_targets(clxent_buffer *y, size_t rows) {
    clxent_targets t;
    memset(&t, 0, sizeof t);
    t.indices = clxent_vector_of(y, rows, CLXENT_I32);
    return t;
}

static clxent_targets prob_targets(clxent_buffer *p, size_t rows) {
    clxent_targets t;
    memset(&t, 0, sizeof t);
    t.probs = clxent_matrix_of(p, rows, 3, CLXENT_F32);
    return t;
}

/* The seed batch on a context: logits, class indices, one-hot targets. */
typedef struct seed_batch {
    clxent_buffer *x, *y, *p;
    clxent_matrix xm;
    clxent_targets ti, tp;
} seed_batch;

static seed_batch seed_upload(clxent_context *ctx) {
    seed_batch b;
    b.x = fx_upload(ctx, seed_x, sizeof seed_x);
    b.y = fx_upload(ctx, seed_y, sizeof seed_y);
    b.p = fx_upload(ctx, seed_onehot, sizeof seed_onehot);
    b.xm = clxent_matrix_of(b.x, 3, 3, CLXENT_F32);
    b.ti = index_targets(b.y, 3);
    b.tp = prob_targets(b.p, 3);
    return b;
}

static void seed_release(seed_batch *b) {
    clxent_buffer_release(b->x);
    clxent_buffer_release(b->y);
    clxent_buffer_release(b->p);
}

/* ---- the seed walk-through on one context ---- */

static void seed_row_stats(clxent_context *ctx) {
    clxent_buffer *x = fx_upload(ctx, seed_x, sizeof seed_x);
    float zeros[3] = {0, 0, 0};
    clxent_buffer *zero = fx_upload(ctx, zeros, sizeof zeros);
    clxent_buffer *mx = fx_upload(ctx, NULL, 3 * sizeof(float));
    clxent_buffer *sum = fx_upload(ctx, NULL, 3 * sizeof(float));
    clxent_matrix xm = clxent_matrix_of(x, 3, 3, CLXENT_F32);
    clxent_vector mv = clxent_vector_of(mx, 3, CLXENT_F32);
    clxent_vector zv = clxent_vector_of(zero, 3, CLXENT_F32);
    clxent_vector sv = clxent_vector_of(sum, 3, CLXENT_F32);
    fx_assert_status(ctx, clxent_row_max(ctx, &xm, &mv, NULL),
                     CLXENT_STATUS_OK);
    /* With a "max" of 0 the exp-sum is the article's sum of exp(x). */
    fx_assert_status(ctx, clxent_row_expsum(ctx, &xm, &zv, &sv, NULL),
                     CLXENT_STATUS_OK);
    float m[3], s[3];
    read_floats(ctx, mx, m, 3);
    read_floats(ctx, sum, s, 3);
    double exact_sum = exp(1.0) + exp(2.0) + exp(3.0);
    for (size_t r = 0; r < 3; ++r) {
        check("row_max", r, m[r], 3.0, 3.0);
        check("sum exp(x)", r, s[r], gold_exp_sum, exact_sum);
    }
    clxent_buffer_release(x);
    clxent_buffer_release(zero);
    clxent_buffer_release(mx);
    clxent_buffer_release(sum);
}

static void seed_softmax(clxent_context *ctx) {
    clxent_buffer *x = fx_upload(ctx, seed_x, sizeof seed_x);
    clxent_buffer *out = fx_upload(ctx, NULL, sizeof seed_x);
    clxent_matrix xm = clxent_matrix_of(x, 3, 3, CLXENT_F32);
    clxent_matrix om = clxent_matrix_of(out, 3, 3, CLXENT_F32);
    float got[9];
    fx_assert_status(ctx, clxent_softmax(ctx, &xm, &om, NULL),
                     CLXENT_STATUS_OK);
    read_floats(ctx, out, got, 9);
    for (int i = 0; i < 9; ++i)
        check("softmax", (size_t)i, got[i], gold_softmax[i % 3],
              exact_softmax(i % 3));
    fx_assert_status(ctx, clxent_log_softmax(ctx, &xm, &om, NULL),
                     CLXENT_STATUS_OK);
    read_floats(ctx, out, got, 9);
    for (int i = 0; i < 9; ++i)
        check("log_softmax", (size_t)i, got[i], gold_log_softmax[i % 3],
              exact_log_softmax(i % 3));
    clxent_buffer_release(x);
    clxent_buffer_release(out);
}

/* The article's three single-row batches, each a 1x3 mean, by class
 * index and by one-hot probabilities; and all three at once with
 * reduction none. */
static void seed_single_rows(clxent_context *ctx) {
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    clxent_buffer *x = fx_upload(ctx, seed_x, 3 * sizeof(float));
    clxent_buffer *loss = fx_upload(ctx, NULL, 3 * sizeof(float));
    clxent_matrix xm = clxent_matrix_of(x, 1, 3, CLXENT_F32);
    clxent_vector lv = clxent_vector_of(loss, 1, CLXENT_F32);
    for (int32_t k = 0; k < 3; ++k) {
        float onehot[3] = {0, 0, 0};
        onehot[k] = 1;
        clxent_buffer *y = fx_upload(ctx, &k, sizeof k);
        clxent_buffer *p = fx_upload(ctx, onehot, sizeof onehot);
        clxent_targets ti = index_targets(y, 1), tp = prob_targets(p, 1);
        double exact = -exact_log_softmax(k);
        float got;
        fx_assert_status(ctx,
                         clxent_cross_entropy_forward(ctx, &xm, &ti, NULL,
                                                      &opt, &lv, NULL, NULL),
                         CLXENT_STATUS_OK);
        read_floats(ctx, loss, &got, 1);
        check("single-row loss (index)", (size_t)k, got, gold_single[k],
              exact);
        fx_assert_status(ctx,
                         clxent_cross_entropy_forward(ctx, &xm, &tp, NULL,
                                                      &opt, &lv, NULL, NULL),
                         CLXENT_STATUS_OK);
        read_floats(ctx, loss, &got, 1);
        check("single-row loss (one-hot)", (size_t)k, got, gold_single[k],
              exact);
        clxent_buffer_release(y);
        clxent_buffer_release(p);
    }
    clxent_buffer_release(x);

    int32_t ys[3] = {0, 1, 2};
    clxent_buffer *x3 = fx_upload(ctx, seed_x, sizeof seed_x);
    clxent_buffer *y3 = fx_upload(ctx, ys, sizeof ys);
    clxent_matrix x3m = clxent_matrix_of(x3, 3, 3, CLXENT_F32);
    clxent_targets t3 = index_targets(y3, 3);
    clxent_vector l3 = clxent_vector_of(loss, 3, CLXENT_F32);
    opt.reduction = CLXENT_REDUCTION_NONE;
    fx_assert_status(ctx,
                     clxent_cross_entropy_forward(ctx, &x3m, &t3, NULL, &opt,
                                                  &l3, NULL, NULL),
                     CLXENT_STATUS_OK);
    float got3[3];
    read_floats(ctx, loss, got3, 3);
    for (int k = 0; k < 3; ++k)
        check("per-row loss", (size_t)k, got3[k], gold_single[k],
              -exact_log_softmax(k));
    clxent_buffer_release(x3);
    clxent_buffer_release(y3);
    clxent_buffer_release(loss);
}

/* Batch loss 1.4076 by the three routes. */
static void seed_batch_loss(clxent_context *ctx) {
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    double exact = exact_batch();
    seed_batch b = seed_upload(ctx);
    clxent_buffer *lp = fx_upload(ctx, NULL, sizeof seed_x);
    clxent_buffer *loss = fx_upload(ctx, NULL, sizeof(float));
    clxent_matrix lpm = clxent_matrix_of(lp, 3, 3, CLXENT_F32);
    clxent_vector lv = clxent_vector_of(loss, 1, CLXENT_F32);
    float got;

    /* 1. probability (one-hot) targets with cross-entropy */
    fx_assert_status(ctx,
                     clxent_cross_entropy_forward(ctx, &b.xm, &b.tp, NULL,
                                                  &opt, &lv, NULL, NULL),
                     CLXENT_STATUS_OK);
    read_floats(ctx, loss, &got, 1);
    check("batch loss (probabilities)", 0, got, gold_batch, exact);

    /* 2. NLL over the log_softmax output */
    fx_assert_status(ctx, clxent_log_softmax(ctx, &b.xm, &lpm, NULL),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx,
                     clxent_nll_loss(ctx, &lpm, &b.ti.indices, NULL, &opt,
                                     &lv, NULL),
                     CLXENT_STATUS_OK);
    read_floats(ctx, loss, &got, 1);
    check("batch loss (nll over log_softmax)", 0, got, gold_batch, exact);

    /* 3. cross-entropy on logits with class indices */
    fx_assert_status(ctx,
                     clxent_cross_entropy_forward(ctx, &b.xm, &b.ti, NULL,
                                                  &opt, &lv, NULL, NULL),
                     CLXENT_STATUS_OK);
    read_floats(ctx, loss, &got, 1);
    check("batch loss (class indices)", 0, got, gold_batch, exact);

    seed_release(&b);
    clxent_buffer_release(lp);
    clxent_buffer_release(loss);
}

/* The 3x3 gradient: fused and forward + backward, indices and one-hot. */
static void seed_gradient(clxent_context *ctx) {
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    double exact_loss = exact_batch();
    seed_batch b = seed_upload(ctx);
    clxent_buffer *g = fx_upload(ctx, NULL, sizeof seed_x);
    clxent_buffer *loss = fx_upload(ctx, NULL, sizeof(float));
    clxent_buffer *lse = fx_upload(ctx, NULL, 3 * sizeof(float));
    clxent_matrix gm = clxent_matrix_of(g, 3, 3, CLXENT_F32);
    clxent_vector lv = clxent_vector_of(loss, 1, CLXENT_F32);
    clxent_vector sv = clxent_vector_of(lse, 3, CLXENT_F32);
    clxent_targets targets[2] = {b.ti, b.tp};
    const char *names[2] = {"gradient (indices)", "gradient (one-hot)"};
    float got[9], l, s[3];

    for (int k = 0; k < 2; ++k) {
        fx_assert_status(ctx,
                         clxent_cross_entropy(ctx, &b.xm, &targets[k], NULL,
                                              &opt, NULL, &lv, &sv, &gm, NULL),
                         CLXENT_STATUS_OK);
        read_floats(ctx, g, got, 9);
        read_floats(ctx, loss, &l, 1);
        read_floats(ctx, lse, s, 3);
        check_grad(names[k], got);
        check("fused loss", (size_t)k, l, gold_batch, exact_loss);
        for (size_t r = 0; r < 3; ++r)
            check("lse", r, s[r], 3.4076, exact_lse());

        fx_assert_status(ctx, clxent_buffer_write(ctx, g, 0, sizeof seed_x,
                                                  seed_x),
                         CLXENT_STATUS_OK);
        fx_assert_status(ctx,
                         clxent_cross_entropy_backward(ctx, &b.xm,
                                                       &targets[k], NULL,
                                                       &opt, &sv, NULL, &gm,
                                                       NULL),
                         CLXENT_STATUS_OK);
        read_floats(ctx, g, got, 9);
        check_grad(names[k], got);
    }
    seed_release(&b);
    clxent_buffer_release(g);
    clxent_buffer_release(loss);
    clxent_buffer_release(lse);
}

/* The blocking convenience form on host arrays. */
static void seed_blocking(clxent_context *ctx) {
    clxent_loss_options opt;
    clxent_loss_options_init(&opt);
    float loss = NAN, lse[3], grad[9];
    fx_assert_status(ctx,
                     clxent_cross_entropy_host(ctx, 3, 3, CLXENT_F32, seed_x,
                                               CLXENT_I32, seed_y, NULL, &opt,
                                               &loss, lse, grad),
                     CLXENT_STATUS_OK);
    check("blocking loss", 0, loss, gold_batch, exact_batch());
    for (size_t r = 0; r < 3; ++r) check("blocking lse", r, lse[r], 3.4076,
                                         exact_lse());
    check_grad("blocking gradient", grad);
}

/* ---- contexts: host per test, one device context for the group ---- */

#define ON_BOTH(name)                                                          \
    static void test_host_##name(void **state) {                               \
        (void)state;                                                           \
        clxent_context *ctx = fx_host_context();                               \
        name(ctx);                                                             \
        clxent_context_destroy(ctx);                                           \
    }                                                                          \
    static void test_device_##name(void **state) {                             \
        (void)state;                                                           \
        clxent_context *ctx = fx_device();                                     \
        if (ctx) name(ctx);                                                    \
    }

ON_BOTH(seed_row_stats)
ON_BOTH(seed_softmax)
ON_BOTH(seed_single_rows)
ON_BOTH(seed_batch_loss)
ON_BOTH(seed_gradient)
ON_BOTH(seed_blocking)

/* The exact values themselves must round to the article's text. */
static void test_exact_values_match_article(void **state) {
    (void)state;
    for (int c = 0; c < 3; ++c) {
        assert_true(fabs(exact_softmax(c) - gold_softmax[c]) < 0.5e-4);
        assert_true(fabs(exact_log_softmax(c) - gold_log_softmax[c]) < 0.5e-4);
    }
    for (int i = 0; i < 9; ++i)
        assert_true(fabs(exact_grad(i / 3, i % 3) - gold_grad[i]) < 0.5e-4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_values_match_article),
        cmocka_unit_test(test_host_seed_row_stats),
        cmocka_unit_test(test_host_seed_softmax),
        cmocka_unit_test(test_host_seed_single_rows),
        cmocka_unit_test(test_host_seed_batch_loss),
        cmocka_unit_test(test_host_seed_gradient),
        cmocka_unit_test(test_host_seed_blocking),
        cmocka_unit_test(test_device_seed_row_stats),
        cmocka_unit_test(test_device_seed_softmax),
        cmocka_unit_test(test_device_seed_single_rows),
        cmocka_unit_test(test_device_seed_batch_loss),
        cmocka_unit_test(test_device_seed_gradient),
        cmocka_unit_test(test_device_seed_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
