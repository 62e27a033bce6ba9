/* PyTorch oracle, the tensor calls: every case of ops ce_nd, nll_nd and
 * softmax_nd in tests/oracle/manifest.txt (written by tests/gen_oracle.py
 * from PyTorch float64) through the public API, on the host backend and
 * on the OpenCL device: test_oracle.c's routes (but the host-array form)
 * through the tensor calls on PyTorch's (N, C, d..) and (C) shapes and
 * over each dim of a 4-d tensor, with softcap, logit_scale and
 * z_loss_out: contiguous, and channels-last with padding (class stride
 * 1), and in place.
 *
 * The cases, buffers and tolerances are common/oracle_harness.h's.
 */
#include "oracle_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Tensor cases (the *_nd calls): PyTorch's (N, C, d1..dk) and (C)
 * inputs, softmax over any dim of a 4-d tensor, softcap and logit_scale,
 * and z_loss_out. The files hold (outer, C, inner) in torch order; the
 * checks run on the rows x C view (row o*inner + i). */

/* Where a tensor lies in its buffer: an element offset, and padding that
 * the library must neither read (inputs: NaN) nor write (outputs). The
 * strided layout is channels-last, (outer, inner, C) in memory, so rows
 * are contiguous and the class stride is 1, unlike the contiguous
 * (N, C, d..) tensor whose class stride is inner. */
typedef struct nd_layout {
    size_t offset;
    int channels_last;
    size_t pad_inner, pad_outer; /* extra elements per step of each axis */
} nd_layout;

static const nd_layout ND_CONTIG = {0, 0, 0, 0};
static const nd_layout ND_IN = {3, 1, 1, 2};
static const nd_layout ND_OUT = {5, 1, 2, 1};
static const nd_layout ND_ROWS = {2, 0, 1, 3};

static size_t nd_pos(const clxent_tensor *t, size_t o, size_t k, size_t i) {
    return t->offset + o * t->outer_stride + k * t->class_stride +
           i * t->inner_stride;
}

/* The elements of buffer n covers: offset + the furthest element + 1. */
static size_t nd_extent(const clxent_tensor *t) {
    if (!t->outer || !t->classes || !t->inner) return t->offset + 1;
    return nd_pos(t, t->outer - 1, t->classes - 1, t->inner - 1) + 1;
}

/* A tensor of outer x classes x inner and dtype in layout L; values (in
 * torch order, f32 for float dtypes, raw for int dtypes) or NULL for an
 * output prefilled with 0x7f bytes. */
static clxent_tensor tensor_in(clxent_context *ctx, const oc_case *c,
                               const void *values, size_t outer,
                               size_t classes, size_t inner,
                               clxent_dtype dtype, nd_layout L, held *h) {
    clxent_tensor t = {NULL, L.offset, outer, classes, inner, 0, 0, 0,
                       dtype, 0, {0}};
    if (L.channels_last) {
        t.class_stride = 1;
        t.inner_stride = classes + L.pad_inner;
        t.outer_stride = inner * t.inner_stride + L.pad_outer;
    } else {
        t.inner_stride = 1;
        t.class_stride = inner + L.pad_inner;
        t.outer_stride = classes * t.class_stride + L.pad_outer;
    }
    /* PyTorch's d1..dk, for the messages (not on a reduced loss) */
    if (inner == c->inner && c->ndim > c->dim + 1 &&
        c->ndim - c->dim - 1 <= CLXENT_MAX_INNER_DIMS) {
        t.inner_rank = c->ndim - c->dim - 1;
        for (unsigned k = 0; k < t.inner_rank; ++k)
            t.inner_dims[k] = c->shape[c->dim + 1 + k];
    }
    size_t n = nd_extent(&t), es = clxent_dtype_size(dtype);
    int is_float = dtype == CLXENT_F32 || dtype == CLXENT_F16 ||
                   dtype == CLXENT_BF16;
    if (!values) {
        *h = upload_bytes(ctx, NULL, n * es);
    } else if (is_float) {
        float *staged = malloc(n * sizeof(float) + 4);
        assert_non_null(staged);
        for (size_t e = 0; e < n; ++e) staged[e] = NAN;
        const float *v = values;
        for (size_t o = 0; o < outer; ++o)
            for (size_t k = 0; k < classes; ++k)
                for (size_t i = 0; i < inner; ++i)
                    staged[nd_pos(&t, o, k, i)] =
                        v[(o * classes + k) * inner + i];
        void *converted = fx_to_dtype(staged, n, dtype);
        *h = upload_bytes(ctx, converted, n * es);
        free(converted);
        free(staged);
    } else {
        unsigned char *staged = malloc(n * es + 1);
        assert_non_null(staged);
        memset(staged, 0x7f, n * es);
        const unsigned char *v = values;
        for (size_t o = 0; o < outer; ++o)
            for (size_t k = 0; k < classes; ++k)
                for (size_t i = 0; i < inner; ++i)
                    memcpy(staged + nd_pos(&t, o, k, i) * es,
                           v + ((o * classes + k) * inner + i) * es, es);
        *h = upload_bytes(ctx, staged, n * es);
        free(staged);
    }
    t.buffer = h->buf;
    return t;
}

/* Reads a float tensor back in torch order as f32, checking that every
 * element outside it kept the bytes that were uploaded. */
static float *tensor_read(clxent_context *ctx, const clxent_tensor *t,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    size_t es = clxent_dtype_size(t->dtype), n = h->bytes / es;
    unsigned char *inside = calloc(n + 1, 1);
    assert_non_null(inside);
    size_t count = t->outer * t->classes * t->inner;
    for (size_t o = 0; o < t->outer; ++o)
        for (size_t k = 0; k < t->classes; ++k)
            for (size_t i = 0; i < t->inner; ++i)
                inside[nd_pos(t, o, k, i)] = 1;
    for (size_t e = 0; e < n; ++e)
        if (!inside[e] && memcmp(all + e * es, h->image + e * es, es) != 0)
            fail_msg("%s: element %zu outside the tensor was overwritten",
                     what, e);
    float *f = fx_from_dtype(all, n, t->dtype);
    float *out = malloc(count * sizeof(float) + 4);
    assert_non_null(out);
    for (size_t o = 0; o < t->outer; ++o)
        for (size_t k = 0; k < t->classes; ++k)
            for (size_t i = 0; i < t->inner; ++i)
                out[(o * t->classes + k) * t->inner + i] =
                    f[nd_pos(t, o, k, i)];
    free(f);
    free(inside);
    free(all);
    return out;
}

static clxent_options nd_options(const oc_case *c) {
    clxent_options o;
    clxent_options_init(&o);
    o.loss = options_of(c);
    o.softcap = c->softcap;
    o.logit_scale = c->logit_scale;
    return o;
}

typedef struct nd_expect {
    double *loss, *lse, *grad, *zloss; /* grad as rows x C */
} nd_expect;

/* One route through the tensor calls, as run_route: first then second,
 * strided (channels-last with padding everywhere), in place (the
 * gradient overwrites the strided logits). */
static void run_nd_route(clxent_context *ctx, const oc_case *c,
                         const oc_inputs *in, const nd_expect *e,
                         const char *route, ops_id first, ops_id second,
                         int strided, int in_place) {
    const ops_desc *ops[2] = {&ops_table[first],
                              second == OPS_COUNT ? NULL
                                                  : &ops_table[second]};
    size_t O = c->outer, C = c->cols, I = c->inner;
    int none = c->reduction == CLXENT_REDUCTION_NONE;
    size_t lo = none ? O : 1, li = none ? I : 1;
    nd_layout LX = strided ? ND_IN : ND_CONTIG,
              LG = strided ? ND_OUT : ND_CONTIG,
              LR = strided ? ND_ROWS : ND_CONTIG;
    clxent_options opt = nd_options(c);
    held hx, hidx = {0}, hprobs = {0}, hw = {0}, hg = {0}, hl, hs, hz, hgrad;
    clxent_tensor x = tensor_in(ctx, c, in->x, O, C, I, c->dtype, LX, &hx);
    clxent_tensor_targets tg;
    memset(&tg, 0, sizeof tg);
    if (in->indices)
        tg.indices = tensor_in(ctx, c, in->indices, O, 1, I, in->index_dtype,
                               LR, &hidx);
    if (in->probs)
        tg.probs = tensor_in(ctx, c, in->probs, O, C, I, c->dtype, LX,
                             &hprobs);
    clxent_vector w = {0};
    if (in->weights)
        w = vector_in(ctx, in->weights, C, CLXENT_F32, strided ? 1 : 0, &hw);
    clxent_tensor gr;
    memset(&gr, 0, sizeof gr);
    if (in->grad_rows)
        gr = tensor_in(ctx, c, in->grad_rows, O, 1, I, CLXENT_F32, LR, &hg);
    clxent_tensor loss = tensor_in(ctx, c, NULL, lo, 1, li, CLXENT_F32,
                                   none ? LR : ND_CONTIG, &hl);
    clxent_tensor zl = tensor_in(ctx, c, NULL, lo, 1, li, CLXENT_F32,
                                 none ? LR : ND_CONTIG, &hz);
    clxent_tensor lse = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32, LR, &hs);
    clxent_tensor grad;
    if (in_place) {
        grad = x;
        hgrad = hx;
    } else {
        grad = tensor_in(ctx, c, NULL, O, C, I, c->dtype, LG, &hgrad);
    }
    ops_nd_args args = {&x,   &tg,  &tg.indices, &w,    &opt, &gr,
                        &lse, &loss, &lse,       &zl,   &grad, NULL};
    unsigned io = 0;
    for (int k = 0; k < 2 && ops[k]; ++k) {
        opt.loss.in_place = in_place && (ops[k]->io & OPS_GRAD);
        ok_or_fail(ctx, c, route, ops[k]->function,
                   ops[k]->enqueue_nd(ctx, &args));
        io |= ops[k]->io;
    }
    ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
    float *gl = tensor_read(ctx, &loss, &hl, "loss");
    float *gz = tensor_read(ctx, &zl, &hz, "z_loss_out");
    float *gs = io & OPS_LSE_OUT ? tensor_read(ctx, &lse, &hs, "lse") : NULL;
    float *gg_t = tensor_read(ctx, &grad, &hgrad, "grad");
    float *gg = rows_of_f(c, gg_t);
    double *slack = io & OPS_LSE_IN ? saved_lse_slack(c, in, e->lse) : NULL;
    ce_expect ce = {e->loss, e->lse, e->grad};
    check_route(c, in, &ce, route, gl, gs, gg, slack);
    if (e->zloss && (io & OPS_LSE_OUT)) /* forward and fused write it */
        compare(c, route, "z_loss_out", gz, e->zloss, in->nloss, 0,
                tol_for(0.0, 2e-6, CLXENT_F32), none ? in->zero_rows : NULL);
    free(slack);
    free(gl);
    free(gz);
    free(gs);
    free(gg_t);
    free(gg);
    release(&hl);
    release(&hz);
    release(&hs);
    if (!in_place) release(&hgrad);
    release(&hx);
    release(&hidx);
    release(&hprobs);
    release(&hw);
    release(&hg);
}

static void run_ce_nd(clxent_context *ctx, const oc_case *c,
                      const oc_inputs *in) {
    double *grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    nd_expect e = {load_expect(c, "expect_loss.npy", in->nloss),
                   load_expect(c, "expect_lse.npy", c->rows),
                   rows_of_d(c, grad),
                   load_expect(c, "expect_zloss.npy", in->nloss)};
    free(grad);
    run_nd_route(ctx, c, in, &e, "nd fused", OPS_CE_FUSED, OPS_COUNT, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd forward+backward", OPS_CE_FORWARD,
                 OPS_CE_BACKWARD, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd fused strided", OPS_CE_FUSED, OPS_COUNT,
                 1, 0);
    run_nd_route(ctx, c, in, &e, "nd forward+backward strided",
                 OPS_CE_FORWARD, OPS_CE_BACKWARD, 1, 0);
    run_nd_route(ctx, c, in, &e, "nd fused in place", OPS_CE_FUSED,
                 OPS_COUNT, 1, 1);
    free(e.loss);
    free(e.lse);
    free(e.grad);
    free(e.zloss);
}

static void run_nll_nd(clxent_context *ctx, const oc_case *c,
                       const oc_inputs *in) {
    double *grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    nd_expect e = {load_expect(c, "expect_loss.npy", in->nloss), NULL,
                   rows_of_d(c, grad), NULL};
    free(grad);
    run_nd_route(ctx, c, in, &e, "nd nll", OPS_NLL, OPS_NLL_BACKWARD, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd nll strided", OPS_NLL,
                 OPS_NLL_BACKWARD, 1, 0);
    free(e.loss);
    free(e.grad);
}

static void run_softmax_nd(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in) {
    size_t O = c->outer, C = c->cols, I = c->inner, R = c->rows;
    double *want_max = load_expect(c, "expect_max.npy", R);
    double *want_sum = load_expect(c, "expect_expsum.npy", R);
    double *lsm_t = load_expect(c, "expect_logsoftmax.npy", R * C);
    double *sm_t = load_expect(c, "expect_softmax.npy", R * C);
    double *want_lsm = rows_of_d(c, lsm_t), *want_sm = rows_of_d(c, sm_t);
    free(lsm_t);
    free(sm_t);
    clxent_options opt = nd_options(c);
    for (int strided = 0; strided < 2; ++strided) {
        const char *route = strided ? "nd primitives strided"
                                    : "nd primitives";
        held hx, hm, hs, hl, hp;
        clxent_tensor x = tensor_in(ctx, c, in->x, O, C, I, c->dtype,
                                    strided ? ND_IN : ND_CONTIG, &hx);
        clxent_tensor mx = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32,
                                     strided ? ND_ROWS : ND_CONTIG, &hm);
        clxent_tensor sum = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32,
                                      strided ? ND_ROWS : ND_CONTIG, &hs);
        clxent_tensor lsm = tensor_in(ctx, c, NULL, O, C, I, c->dtype,
                                      strided ? ND_OUT : ND_CONTIG, &hl);
        /* softmax in the contiguous (N, C, d..) layout either way: the
         * input and output layouts need not match */
        clxent_tensor sm = tensor_in(ctx, c, NULL, O, C, I, c->dtype,
                                     strided ? ND_ROWS : ND_CONTIG, &hp);
        ok_or_fail(ctx, c, route, "clxent_row_max_nd",
                   clxent_row_max_nd(ctx, &x, &mx, NULL));
        ok_or_fail(ctx, c, route, "clxent_row_expsum_nd",
                   clxent_row_expsum_nd(ctx, &x, &mx, &sum, NULL));
        ok_or_fail(ctx, c, route, "clxent_log_softmax_nd",
                   clxent_log_softmax_nd(ctx, &x, &opt, &lsm, NULL));
        ok_or_fail(ctx, c, route, "clxent_softmax_nd",
                   clxent_softmax_nd(ctx, &x, &opt, &sm, NULL));
        ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
        float *gm = tensor_read(ctx, &mx, &hm, "row max");
        float *gs = tensor_read(ctx, &sum, &hs, "exp-sum");
        float *gl_t = tensor_read(ctx, &lsm, &hl, "log-softmax");
        float *gp_t = tensor_read(ctx, &sm, &hp, "softmax");
        float *gl = rows_of_f(c, gl_t), *gp = rows_of_f(c, gp_t);
        compare_stats(c, route, gm, gs, gl, gp, want_max, want_sum, want_lsm,
                      want_sm, R, C);
        free(gm);
        free(gs);
        free(gl_t);
        free(gp_t);
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
    static const oracle_op ops[] = {{"ce_nd", run_ce_nd},
                                    {"nll_nd", run_nll_nd},
                                    {"softmax_nd", run_softmax_nd}};
    return oracle_main("oracle_nd", 1, ops, sizeof ops / sizeof ops[0]);
}
