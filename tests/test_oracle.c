/* PyTorch oracle, the matrix calls: every case of ops ce, nll and
 * softmax in tests/oracle/manifest.txt (written by tests/gen_oracle.py
 * from PyTorch float64) through the public API, on the host backend and
 * on the OpenCL device, by every route:
 *
 *   ce       fused (contiguous), forward + backward (contiguous), fused
 *            with offsets and row strides, fused in place (the gradient
 *            overwrites the strided logits), and the blocking host-array
 *            form when no per-row upstream gradient is given
 *   nll      clxent_nll_loss + clxent_nll_loss_backward, contiguous and
 *            strided
 *   softmax  row max, exp-sum, log-softmax and softmax, contiguous and
 *            strided
 *
 * The tensor calls' cases are test_oracle_nd.c's; the cases, buffers and
 * tolerances, common/oracle_harness.h.
 */
#include "oracle_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Buffers with a layout: element offset and extra row stride. */

typedef struct layout {
    size_t offset, extra;
} layout;

static const layout CONTIG = {0, 0};
static const layout IN_LAYOUT = {3, 2};
static const layout OUT_LAYOUT = {5, 3};
static const layout PROBS_LAYOUT = {1, 4};

/* A rows x cols matrix of dtype in layout L; values NULL gives an output
 * matrix prefilled with 0x7f bytes, else the values (f32, contiguous)
 * with NaN padding around them. */
static clxent_matrix matrix_in(clxent_context *ctx, const float *values,
                               size_t rows, size_t cols, clxent_dtype dtype,
                               layout L, held *h) {
    size_t stride = cols + L.extra;
    size_t n = L.offset + rows * stride;
    size_t es = clxent_dtype_size(dtype);
    if (!values) {
        *h = upload_bytes(ctx, NULL, n * es);
    } else {
        float *staged = malloc(n * sizeof(float) + 4);
        assert_non_null(staged);
        for (size_t i = 0; i < n; ++i) staged[i] = NAN;
        for (size_t r = 0; r < rows; ++r)
            memcpy(staged + L.offset + r * stride, values + r * cols,
                   cols * sizeof(float));
        void *converted = fx_to_dtype(staged, n, dtype);
        *h = upload_bytes(ctx, converted, n * es);
        free(converted);
        free(staged);
    }
    clxent_matrix m = {h->buf, L.offset, rows, cols, stride, dtype};
    return m;
}

/* Reads back a matrix as f32 and checks that the bytes around it are what
 * was uploaded. */
static float *matrix_read(clxent_context *ctx, const clxent_matrix *m,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    size_t es = clxent_dtype_size(m->dtype);
    for (size_t i = 0; i < h->bytes / es; ++i) {
        size_t e = i;
        int inside = e >= m->offset &&
                     (e - m->offset) / m->stride < m->rows &&
                     (e - m->offset) % m->stride < m->cols;
        if (!inside && memcmp(all + i * es, h->image + i * es, es) != 0)
            fail_msg("%s: element %zu outside the matrix was overwritten",
                     what, i);
    }
    float *out = malloc(m->rows * m->cols * sizeof(float) + 4);
    assert_non_null(out);
    for (size_t r = 0; r < m->rows; ++r) {
        float *row = fx_from_dtype(all + (m->offset + r * m->stride) * es,
                                   m->cols, m->dtype);
        memcpy(out + r * m->cols, row, m->cols * sizeof(float));
        free(row);
    }
    free(all);
    return out;
}

static float *vector_read(clxent_context *ctx, const clxent_vector *v,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    for (size_t i = 0; i < h->bytes; ++i) {
        size_t e = i / 4;
        if ((e < v->offset || e >= v->offset + v->length) &&
            all[i] != h->image[i])
            fail_msg("%s: byte %zu outside the vector was overwritten", what,
                     i);
    }
    float *out = malloc(v->length * sizeof(float) + 4);
    assert_non_null(out);
    if (v->length)
        memcpy(out, all + v->offset * 4, v->length * sizeof(float));
    free(all);
    return out;
}

/* The argument buffers shared by the ce and nll routes. */
typedef struct oc_args {
    held hx, hidx, hprobs, hw, hg;
    clxent_matrix x;
    clxent_targets targets;
    clxent_vector weights, grad_rows;
} oc_args;

static oc_args args_upload(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in, int strided) {
    oc_args a;
    memset(&a, 0, sizeof a);
    size_t R = c->rows, C = c->cols;
    a.x = matrix_in(ctx, in->x, R, C, c->dtype, strided ? IN_LAYOUT : CONTIG,
                    &a.hx);
    if (in->indices)
        a.targets.indices = vector_in(ctx, in->indices, R, in->index_dtype,
                                      strided ? 2 : 0, &a.hidx);
    if (in->probs)
        a.targets.probs = matrix_in(ctx, in->probs, R, C, c->dtype,
                                    strided ? PROBS_LAYOUT : CONTIG,
                                    &a.hprobs);
    if (in->weights)
        a.weights = vector_in(ctx, in->weights, C, CLXENT_F32,
                              strided ? 1 : 0, &a.hw);
    if (in->grad_rows)
        a.grad_rows = vector_in(ctx, in->grad_rows, R, CLXENT_F32,
                                strided ? 3 : 0, &a.hg);
    return a;
}

static void args_release(oc_args *a) {
    release(&a->hx);
    release(&a->hidx);
    release(&a->hprobs);
    release(&a->hw);
    release(&a->hg);
}

/* ------------------------------------------------------------------ */
/* Loss routes: cross-entropy, and the NLL gather over log-probabilities. */

/* One route: the operations first and then second (OPS_COUNT: none) on
 * one set of arguments, the backward reading the lse the forward wrote;
 * strided: offsets and row strides on every argument; in_place: the
 * gradient overwrites the strided logits. Checks what the route wrote. */
static void run_route(clxent_context *ctx, const oc_case *c,
                      const oc_inputs *in, const ce_expect *e,
                      const char *route, ops_id first, ops_id second,
                      int strided, int in_place) {
    const ops_desc *ops[2] = {&ops_table[first],
                              second == OPS_COUNT ? NULL
                                                  : &ops_table[second]};
    clxent_loss_options opt = options_of(c);
    oc_args a = args_upload(ctx, c, in, strided);
    held hl, hs, hgrad;
    clxent_vector loss = vector_in(ctx, NULL, in->nloss, CLXENT_F32,
                                   strided ? 1 : 0, &hl);
    clxent_vector lse = vector_in(ctx, NULL, c->rows, CLXENT_F32,
                                  strided ? 2 : 0, &hs);
    clxent_matrix grad;
    if (in_place) {
        grad = a.x;
        hgrad = a.hx;
    } else {
        grad = matrix_in(ctx, NULL, c->rows, c->cols, c->dtype,
                         strided ? OUT_LAYOUT : CONTIG, &hgrad);
    }
    ops_args args = {&a.x, &a.targets, &a.targets.indices, &a.weights, &opt,
                     &a.grad_rows, &lse, &loss, &lse, &grad, NULL};
    unsigned io = 0;
    for (int k = 0; k < 2 && ops[k]; ++k) {
        opt.in_place = in_place && (ops[k]->io & OPS_GRAD);
        ok_or_fail(ctx, c, route, ops[k]->function,
                   ops[k]->enqueue(ctx, &args));
        io |= ops[k]->io;
    }
    ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
    float *gl = vector_read(ctx, &loss, &hl, "loss");
    float *gs = io & OPS_LSE_OUT ? vector_read(ctx, &lse, &hs, "lse") : NULL;
    float *gg = matrix_read(ctx, &grad, &hgrad, "grad");
    double *slack = io & OPS_LSE_IN ? saved_lse_slack(c, in, e->lse) : NULL;
    check_route(c, in, e, route, gl, gs, gg, slack);
    free(slack);
    free(gl);
    free(gs);
    free(gg);
    release(&hl);
    release(&hs);
    if (!in_place) release(&hgrad);
    args_release(&a);
}

static void ce_host_arrays(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in, const ce_expect *e) {
    const char *route = "host arrays";
    clxent_loss_options opt = options_of(c);
    size_t n = c->rows * c->cols;
    void *x = fx_to_dtype(in->x, n, c->dtype);
    void *probs = in->probs ? fx_to_dtype(in->probs, n, c->dtype) : NULL;
    size_t es = clxent_dtype_size(c->dtype);
    float *loss = malloc(in->nloss * sizeof(float) + 4);
    float *lse = malloc(c->rows * sizeof(float) + 4);
    void *grad = malloc(n * es + 4);
    assert_non_null(loss);
    assert_non_null(lse);
    assert_non_null(grad);
    ok_or_fail(ctx, c, route, "clxent_cross_entropy_host",
               clxent_cross_entropy_host(
                   ctx, c->rows, c->cols, c->dtype, x,
                   in->indices ? in->index_dtype : c->dtype,
                   in->indices ? in->indices : probs, in->weights, &opt, loss,
                   lse, grad));
    float *gg = fx_from_dtype(grad, n, c->dtype);
    check_route(c, in, e, route, loss, lse, gg, NULL);
    free(gg);
    free(grad);
    free(lse);
    free(loss);
    free(probs);
    free(x);
}

static void run_ce(clxent_context *ctx, const oc_case *c,
                   const oc_inputs *in) {
    ce_expect e;
    e.loss = load_expect(c, "expect_loss.npy", in->nloss);
    e.lse = load_expect(c, "expect_lse.npy", c->rows);
    e.grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    run_route(ctx, c, in, &e, "fused", OPS_CE_FUSED, OPS_COUNT, 0, 0);
    run_route(ctx, c, in, &e, "forward+backward", OPS_CE_FORWARD,
              OPS_CE_BACKWARD, 0, 0);
    run_route(ctx, c, in, &e, "fused strided", OPS_CE_FUSED, OPS_COUNT, 1, 0);
    run_route(ctx, c, in, &e, "fused in place", OPS_CE_FUSED, OPS_COUNT, 1,
              1);
    if (!in->grad_rows) ce_host_arrays(ctx, c, in, &e);
    free(e.loss);
    free(e.lse);
    free(e.grad);
}

/* ------------------------------------------------------------------ */
/* NLL gather over log-probabilities. */

static void run_nll(clxent_context *ctx, const oc_case *c,
                    const oc_inputs *in) {
    ce_expect e = {load_expect(c, "expect_loss.npy", in->nloss), NULL,
                   load_expect(c, "expect_grad.npy", c->rows * c->cols)};
    run_route(ctx, c, in, &e, "nll", OPS_NLL, OPS_NLL_BACKWARD, 0, 0);
    run_route(ctx, c, in, &e, "nll strided", OPS_NLL, OPS_NLL_BACKWARD, 1, 0);
    free(e.loss);
    free(e.grad);
}

/* ------------------------------------------------------------------ */
/* Primitives: row max, exp-sum, log-softmax, softmax. */

static void run_softmax(clxent_context *ctx, const oc_case *c,
                        const oc_inputs *in) {
    size_t R = c->rows, C = c->cols;
    double *want_max = load_expect(c, "expect_max.npy", R);
    double *want_sum = load_expect(c, "expect_expsum.npy", R);
    double *want_lsm = load_expect(c, "expect_logsoftmax.npy", R * C);
    double *want_sm = load_expect(c, "expect_softmax.npy", R * C);
    for (int strided = 0; strided < 2; ++strided) {
        const char *route = strided ? "primitives strided" : "primitives";
        held hx, hm, hs, hl, hp;
        clxent_matrix x = matrix_in(ctx, in->x, R, C, c->dtype,
                                    strided ? IN_LAYOUT : CONTIG, &hx);
        clxent_vector mx =
            vector_in(ctx, NULL, R, CLXENT_F32, strided ? 2 : 0, &hm);
        clxent_vector sum =
            vector_in(ctx, NULL, R, CLXENT_F32, strided ? 1 : 0, &hs);
        clxent_matrix lsm = matrix_in(ctx, NULL, R, C, c->dtype,
                                      strided ? OUT_LAYOUT : CONTIG, &hl);
        clxent_matrix sm = matrix_in(ctx, NULL, R, C, c->dtype,
                                     strided ? PROBS_LAYOUT : CONTIG, &hp);
        ok_or_fail(ctx, c, route, "clxent_row_max",
                   clxent_row_max(ctx, &x, &mx, NULL));
        ok_or_fail(ctx, c, route, "clxent_row_expsum",
                   clxent_row_expsum(ctx, &x, &mx, &sum, NULL));
        ok_or_fail(ctx, c, route, "clxent_log_softmax",
                   clxent_log_softmax(ctx, &x, &lsm, NULL));
        ok_or_fail(ctx, c, route, "clxent_softmax",
                   clxent_softmax(ctx, &x, &sm, NULL));
        ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
        float *gm = vector_read(ctx, &mx, &hm, "row max");
        float *gs = vector_read(ctx, &sum, &hs, "exp-sum");
        float *gl = matrix_read(ctx, &lsm, &hl, "log-softmax");
        float *gp = matrix_read(ctx, &sm, &hp, "softmax");
        compare_stats(c, route, gm, gs, gl, gp, want_max, want_sum, want_lsm,
                      want_sm, R, C);
        free(gm);
        free(gs);
        free(gl);
        free(gp);
        release(&hx);
        release(&hm);
        release(&hs);
        release(&hl);
        release(&hp);
    }
    free(want_max);
    free(want_sum);
    free(want_lsm);
    free(want_sm);
}

int main(void) {
    static const oracle_op ops[] = {
        {"ce", run_ce}, {"nll", run_nll}, {"softmax", run_softmax}};
    return oracle_main("oracle", 0, ops, sizeof ops / sizeof ops[0]);
}
